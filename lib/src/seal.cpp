#include "pbx/totp/seal.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <memory>

#include "file_util.hpp"
#include "pbx/totp/hotp.hpp"

namespace pbx::totp {
namespace {

constexpr std::uint8_t kVersion = 1;
constexpr std::uint8_t kStateMacVersion = 1;
constexpr std::size_t kNonceSize = 12;
constexpr std::size_t kTagSize = 16;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Error gcm_error(const char* what) {
  return make_error(Errc::kInternal, std::string("AES-GCM: ") + what);
}

}  // namespace

Result<SecretBytes> load_fleet_key(const std::string& path, uid_t owner) {
  FileCheck check{owner, 077, 4096};
  check.trusted_parents = true;  // whoever may write its directory could swap the key
  auto text = detail::read_checked_file(path, check, "fleet key");
  if (!text) return text.error();
  if (!text->has_value()) {
    return make_error(Errc::kIo, "fleet key " + path +
                                     " does not exist (copy it from a server "
                                     "of the fleet, or run 'pbx-mfa db init' on the first one)");
  }
  std::string_view v = (*text)->view();
  if (v.size() != kFleetKeySize) {
    return make_error(Errc::kUnsafe, "fleet key " + path + " must hold exactly 32 bytes, not " +
                                         std::to_string(v.size()));
  }
  return SecretBytes(bytes(v), v.size());
}

Status create_fleet_key(const std::string& path) {
  SecretBytes key(kFleetKeySize);
  if (auto st = random_bytes(key.data(), key.size()); !st) return st;
  detail::WriteOptions opts;
  opts.mode = 0400;
  opts.sync_dir = true;
  opts.no_replace = true;
  return detail::write_file_atomic(
      path, std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), opts,
      "fleet key");
}

Result<std::string> seal(const SecretBytes& key, std::string_view aad, std::string_view plain) {
  if (key.size() != kFleetKeySize) return make_error(Errc::kInternal, "fleet key size");
  std::string box(1 + kNonceSize + plain.size() + kTagSize, '\0');
  auto* out = reinterpret_cast<unsigned char*>(box.data());
  out[0] = kVersion;
  // A random 96-bit nonce per seal: rows are rewritten rarely (enroll, new recovery codes), far
  // below the 2^32 seals per key where random nonces start to risk a repeat.
  if (auto st = random_bytes(out + 1, kNonceSize); !st) return st.error();
  Ctx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), out + 1) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out + 1 + kNonceSize, &len, bytes(plain),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out + 1 + kNonceSize + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize),
                          out + 1 + kNonceSize + plain.size()) != 1) {
    return gcm_error("sealing failed");
  }
  return box;
}

Result<SecretString> open_sealed(const SecretBytes& key, std::string_view aad,
                                 std::string_view box) {
  if (key.size() != kFleetKeySize) return make_error(Errc::kInternal, "fleet key size");
  if (box.size() < 1 + kNonceSize + kTagSize || static_cast<std::uint8_t>(box[0]) != kVersion) {
    return make_error(Errc::kCorrupt, "sealed data is truncated or of an unknown version");
  }
  const auto* in = bytes(box);
  std::size_t ct_size = box.size() - 1 - kNonceSize - kTagSize;
  SecretString plain;
  plain.resize(ct_size);
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  Ctx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  unsigned char tag[kTagSize];
  std::copy(in + 1 + kNonceSize + ct_size, in + box.size(), tag);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), in + 1) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out, &len, in + 1 + kNonceSize, static_cast<int>(ct_size)) !=
          1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagSize), tag) != 1) {
    return gcm_error("opening failed");
  }
  // The tag check: a changed byte, another user's name as aad, or another key all end here.
  if (EVP_DecryptFinal_ex(ctx.get(), out + len, &len) != 1) {
    return make_error(Errc::kCorrupt,
                      "sealed data does not open with the fleet key: tampered "
                      "with, copied from another user, or sealed under another key");
  }
  return plain;
}

Result<SecretBytes> derive_fleet_subkey(const SecretBytes& fleet_key, std::string_view label) {
  if (fleet_key.size() != kFleetKeySize) return make_error(Errc::kInternal, "fleet key size");
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = kdf != nullptr ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return make_error(Errc::kInternal, "HKDF is not available");
  char digest[] = "SHA256";
  std::string info(label);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(fleet_key.data()), fleet_key.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes out(32);
  int rc = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) return make_error(Errc::kInternal, "HKDF derivation failed");
  return out;
}

Result<std::string> state_mac(const SecretBytes& mac_key, std::string_view user_name,
                              std::string_view enrollment_id, std::string_view text) {
  std::string data;
  data.reserve(user_name.size() + enrollment_id.size() + text.size() + 2);
  data.append(user_name).push_back('\0');
  data.append(enrollment_id).push_back('\0');
  data.append(text);
  std::string out(kStateMacSize, '\0');
  out[0] = static_cast<char>(kStateMacVersion);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
  EVP_MAC_free(mac);
  std::size_t len = 0;
  bool ok = ctx != nullptr && EVP_MAC_init(ctx, mac_key.data(), mac_key.size(), params) == 1 &&
            EVP_MAC_update(ctx, bytes(data), data.size()) == 1 &&
            EVP_MAC_final(ctx, reinterpret_cast<unsigned char*>(out.data()) + 1, &len,
                          out.size() - 1) == 1 &&
            len == out.size() - 1;
  EVP_MAC_CTX_free(ctx);
  if (!ok) return make_error(Errc::kInternal, "HMAC of the state row failed");
  return out;
}

Status check_state_mac(const SecretBytes& mac_key, std::string_view user_name,
                       std::string_view enrollment_id, std::string_view text,
                       std::string_view mac) {
  auto expected = state_mac(mac_key, user_name, enrollment_id, text);
  if (!expected) return expected.error();
  if (mac.size() != expected->size() ||
      CRYPTO_memcmp(mac.data(), expected->data(), mac.size()) != 0) {
    return make_error(Errc::kCorrupt,
                      "state MAC does not verify with the fleet key: tampered with, copied "
                      "from another user, or written under another key");
  }
  return Ok{};
}

}  // namespace pbx::totp

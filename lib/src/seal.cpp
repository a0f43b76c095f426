#include "pbx/totp/seal.hpp"

#include <openssl/evp.h>

#include <memory>

#include "file_util.hpp"
#include "pbx/totp/hotp.hpp"

namespace pbx::totp {
namespace {

constexpr std::uint8_t kVersion = 1;
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

}  // namespace pbx::totp

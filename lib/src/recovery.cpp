#include "pbx/totp/recovery.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

#include "hex.hpp"
#include "pbx/totp/code_shape.hpp"
#include "pbx/totp/hotp.hpp"
#include "text_format.hpp"

namespace pbx::totp {
namespace {

constexpr char kLetters[] = "abcdefghjkmnpqrstuvwxyz";  // 23 letters: no i, l, o
constexpr std::size_t kHashSize = 32;
constexpr std::size_t kSaltSize = 16;

Result<std::string> hash_code(std::string_view normalized, const std::vector<std::uint8_t>& salt,
                              const KdfParams& kdf) {
  std::uint8_t out[kHashSize];
  if (EVP_PBE_scrypt(normalized.data(), normalized.size(), salt.data(), salt.size(), kdf.n, kdf.r,
                     kdf.p, std::uint64_t{256} * 1024 * 1024, out, sizeof out) != 1) {
    return make_error(Errc::kInternal, "scrypt failed");
  }
  std::string hex = detail::to_hex(out, sizeof out);
  wipe(out, sizeof out);
  return hex;
}

}  // namespace

std::string kdf_text(const KdfParams& kdf) {
  return "scrypt " + std::to_string(kdf.n) + " " + std::to_string(kdf.r) + " " +
         std::to_string(kdf.p);
}

// "scrypt N r p"
bool parse_kdf_text(std::string_view v, KdfParams& kdf) {
  if (v.rfind("scrypt ", 0) != 0) return false;
  v.remove_prefix(7);
  std::int64_t parts[3];
  for (int i = 0; i < 3; ++i) {
    std::size_t sp = v.find(' ');
    if ((i < 2) != (sp != std::string_view::npos)) return false;
    if (!detail::parse_i64(v.substr(0, sp), 1, 1 << 22, parts[i])) return false;
    v = sp == std::string_view::npos ? std::string_view{} : v.substr(sp + 1);
  }
  // N must be a power of two above 1 for scrypt.
  if (parts[0] < 2 || (parts[0] & (parts[0] - 1)) != 0 || parts[1] > 64 || parts[2] > 16)
    return false;
  kdf.n = static_cast<std::uint64_t>(parts[0]);
  kdf.r = static_cast<std::uint32_t>(parts[1]);
  kdf.p = static_cast<std::uint32_t>(parts[2]);
  return true;
}

bool kdf_within_builtin_cost(const KdfParams& kdf) {
  constexpr KdfParams kBuiltin{};
  // parse_kdf_text's bounds (N ≤ 2^22, r ≤ 64, p ≤ 16) keep these products far from overflow.
  const std::uint64_t memory = kdf.n * kdf.r;
  return memory <= kBuiltin.n * kBuiltin.r &&
         memory * kdf.p <= kBuiltin.n * kBuiltin.r * kBuiltin.p;
}

Result<std::vector<SecretString>> generate_recovery_codes(int count, int groups) {
  if (count < 0 || count > kMaxRecoveryCodes) {
    return make_error(Errc::kInvalid, "recovery code count must be 0 to 20");
  }
  if (groups < 1 || groups > 8) return make_error(Errc::kInvalid, "code groups must be 1 to 8");
  std::vector<SecretString> codes;
  for (int i = 0; i < count; ++i) {
    SecretString code;
    int letters = 0;
    while (letters < groups * kRecoveryGroupSize) {
      std::uint8_t b[32];
      if (auto st = random_bytes(b, sizeof b); !st) return st.error();
      for (std::uint8_t v : b) {
        // 230 = 10 * 23: rejecting bytes at or above it keeps every letter equally likely.
        if (v >= 230 || letters == groups * kRecoveryGroupSize) continue;
        if (letters > 0 && letters % kRecoveryGroupSize == 0) {
          code.append(kRecoverySeparator);
        }
        code.append(kLetters[v % 23]);
        ++letters;
      }
      wipe(b, sizeof b);
    }
    codes.push_back(std::move(code));
  }
  return codes;
}

SecretString normalize_recovery_code(std::string_view input) {
  SecretString out;
  for (char c : input) {
    if (c == ' ' || c == '-' || c == '\t') continue;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out.append(c);
  }
  return out;
}

bool looks_like_recovery_code(std::string_view input, int totp_digits) {
  return classify_code(input, totp_digits, CodeForm::kTyped) == CodeShape::kRecovery;
}

Result<RecoverySet> hash_recovery_codes(const std::vector<SecretString>& codes,
                                        const KdfParams& kdf) {
  RecoverySet set;
  set.kdf = kdf;
  std::vector<std::uint8_t> salt(kSaltSize);
  if (auto st = random_bytes(salt.data(), salt.size()); !st) return st.error();
  set.salt = detail::to_hex(salt.data(), salt.size());
  for (const auto& code : codes) {
    SecretString n = normalize_recovery_code(code.view());
    auto h = hash_code(n.view(), salt, kdf);
    if (!h) return h.error();
    set.hashes.push_back(std::move(h.value()));
  }
  return set;
}

Result<std::optional<int>> match_recovery_code(const RecoverySet& set, std::string_view input,
                                               const std::vector<int>& used) {
  if (set.hashes.empty()) return std::optional<int>{};
  auto salt = detail::from_hex(set.salt);
  if (!salt) return make_error(Errc::kCorrupt, "recovery salt is not hex");
  SecretString n = normalize_recovery_code(input);
  if (n.view().empty()) return std::optional<int>{};
  auto h = hash_code(n.view(), *salt, set.kdf);
  if (!h) return h.error();
  SecretString attempt(std::move(h.value()));
  int found = -1;
  for (std::size_t i = 0; i < set.hashes.size(); ++i) {
    const std::string& stored = set.hashes[i];
    bool same = stored.size() == attempt.str().size() &&
                CRYPTO_memcmp(stored.data(), attempt.str().data(), stored.size()) == 0;
    bool spent = std::find(used.begin(), used.end(), static_cast<int>(i)) != used.end();
    if (same && !spent && found < 0) found = static_cast<int>(i);
  }
  if (found < 0) return std::optional<int>{};
  return std::optional<int>(found);
}

}  // namespace pbx::totp

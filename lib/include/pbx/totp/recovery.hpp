// Recovery codes: one-time codes for a lost phone, stored only as salted scrypt hashes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

// scrypt cost; written with the hashes so it can be raised later without breaking old files.
struct KdfParams {
  std::uint64_t n = 16384;
  std::uint32_t r = 8;
  std::uint32_t p = 1;
  bool operator==(const KdfParams&) const = default;
};

// "scrypt N r p", as written in the secret file; parse_kdf_text refuses values scrypt cannot use.
std::string kdf_text(const KdfParams& kdf);
bool parse_kdf_text(std::string_view text, KdfParams& kdf);
// Whether `kdf` costs no more than the built-in KdfParams{}, in memory (N·r) and in time
// (N·r·p). The secret file may sit in the user's home, so its parameters are the user's choice;
// a login, run as root, pays at most the built-in cost (pbx-mfa.conf(5) SECRET FILE).
bool kdf_within_builtin_cost(const KdfParams& kdf);

struct RecoverySet {
  std::string salt;  // hex, one per user: an attempt costs one hash
  KdfParams kdf;
  std::vector<std::string> hashes;  // hex, one per code, in the order they were made
  bool operator==(const RecoverySet&) const = default;
};

constexpr int kMaxRecoveryCodes = 20;

// The printed form of a recovery code: kRecoveryGroups groups of kRecoveryGroupSize letters,
// joined by kRecoverySeparator ("kxmr-tpqz-wbnf"). classify_code (code_shape.hpp) reads it.
inline constexpr int kRecoveryGroupSize = 4;
inline constexpr int kRecoveryGroups = 3;
inline constexpr char kRecoverySeparator = '-';
inline constexpr std::size_t kRecoveryCodeLength =
    static_cast<std::size_t>(kRecoveryGroups * (kRecoveryGroupSize + 1) - 1);

// Codes look like "kxmr-tpqz-wbnf": lower-case letters and dashes, never digits only, so a
// mistyped TOTP code never costs a slow hash. 12 letters from 23 (no i, l, o): 54 bits.
// Break-glass codes use the same alphabet in 4 groups.
Result<std::vector<SecretString>> generate_recovery_codes(int count, int groups = kRecoveryGroups);

// Lower case, without spaces and dashes: the form that is hashed.
SecretString normalize_recovery_code(std::string_view input);

// Could this input be a recovery code rather than a TOTP code of `totp_digits` digits?
// Letters-and-dashes codes, and digit strings of another length (imported scratch codes).
// The same as classify_code(input, totp_digits, CodeForm::kTyped) == CodeShape::kRecovery.
bool looks_like_recovery_code(std::string_view input, int totp_digits);

Result<RecoverySet> hash_recovery_codes(const std::vector<SecretString>& codes,
                                        const KdfParams& kdf = {});

// Index of the matching code among those not in `used`; every hash is compared (no early exit).
Result<std::optional<int>> match_recovery_code(const RecoverySet& set, std::string_view input,
                                               const std::vector<int>& used);

}  // namespace pbx::totp

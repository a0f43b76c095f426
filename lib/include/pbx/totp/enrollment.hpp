// Enrollment: what the secret file holds, and its versioned text format.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pbx/totp/hotp.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

inline constexpr std::size_t kMaxSecretFileSize = std::size_t{16} * 1024;

struct Enrollment {
  std::string id;  // 32 hex digits, fresh for every enrollment; ties state to this secret
  SecretBytes secret;
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
  std::int64_t created = 0;  // Unix seconds
  RecoverySet recovery;
};

// A fresh id from the CSPRNG.
Result<std::string> new_enrollment_id();

// Format (version 1), one `key value` per line, '#' comments:
//   # pbx-mfa secret file
//   version 1
//   id 0123…
//   secret BASE32
//   algorithm SHA1
//   digits 6
//   period 30
//   created 1700000000
//   recovery-salt HEX
//   recovery-kdf scrypt 16384 8 1
//   recovery HEX        (once per code)
//   end
// A file without its end line is truncated and refused.
std::string serialize_enrollment(const Enrollment& e);
Result<Enrollment> parse_enrollment(std::string_view text);

}  // namespace pbx::totp

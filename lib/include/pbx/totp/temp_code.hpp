// Temporary access codes (pbx-mfa temp-code): a helpdesk-issued code of the recovery-code
// alphabet in kTempCodeGroups groups ("kxmr-tpqz-wbnf-hgcd"), valid until it expires or its
// uses run out, stored only as a salted scrypt hash in the user's state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pbx/totp/recovery.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/state.hpp"

namespace pbx::totp {

inline constexpr int kTempCodeGroups = 4;  // 16 letters from 23: 72 bits
inline constexpr std::int64_t kTempCodeDefaultTtl = 3600;
inline constexpr std::int64_t kTempCodeMaxTtl = std::int64_t{72} * 3600;
inline constexpr int kTempCodeDefaultUses = 1;
inline constexpr int kTempCodeMaxUses = 10;

struct IssuedTempCode {
  SecretString code;  // shown once, never stored
  TempCode record;    // what goes into the user's state
};

// A new random code and its record. Errc::kInvalid for a ttl outside 1..kTempCodeMaxTtl, uses
// outside 1..kTempCodeMaxUses, an issuer that is not a plain user name, or a reason that is not
// printable or longer than kMaxTempCodeReason.
Result<IssuedTempCode> make_temp_code(std::int64_t now, std::int64_t ttl, int uses,
                                      std::string_view issuer, std::string_view reason,
                                      const KdfParams& kdf = {});

// Is this typed answer shaped like a temp code (16 letters once spaces and dashes are gone)?
// Such an answer is checked against the temp code only, so an attempt costs one slow hash.
bool looks_like_temp_code(std::string_view input);

// Whether `input` is this code (one scrypt hash, constant-time compare). Neither expiry nor
// uses are looked at: the caller asks TempCode::active first.
Result<bool> match_temp_code(const TempCode& code, std::string_view input);

// Checks a reason text (printable, no control characters, at most kMaxTempCodeReason bytes).
bool valid_temp_code_reason(std::string_view reason);

}  // namespace pbx::totp

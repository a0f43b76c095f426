// otpauth:// Key URI (the format authenticator apps scan): builder and parser.
#pragma once

#include <string>
#include <string_view>

#include "pbx/totp/hotp.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

struct OtpParams {
  std::string issuer;
  std::string account;  // the label's account name (the user)
  SecretBytes secret;
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
};

// otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…
// Issuer and account are percent-encoded; algorithm, digits and period are always written.
std::string build_otpauth_uri(const OtpParams& params);

// Accepts only TOTP URIs with a valid base32 secret; digits 6–8, period 1–300 (the URI format
// allows more than new enrollments do), known algorithms. Caps the input at 4 KiB.
Result<OtpParams> parse_otpauth_uri(std::string_view uri);

std::string percent_encode(std::string_view text);
Result<std::string> percent_decode(std::string_view text);

}  // namespace pbx::totp

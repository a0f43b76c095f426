// RFC 4648 base32: strict encoder, lenient-in-form but strict-in-content decoder.
#pragma once

#include <string>
#include <string_view>

#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

// Upper case with '=' padding when `pad`; otherwise without padding (as authenticator URIs use).
std::string base32_encode(const std::uint8_t* data, std::size_t size, bool pad = true);
inline std::string base32_encode(const SecretBytes& bytes, bool pad = true) {
  return base32_encode(bytes.data(), bytes.size(), pad);
}

// Accepts lower case, spaces (and tabs, dashes are not accepted) and missing or full padding.
// Rejects any other character, misplaced padding, impossible lengths and non-zero trailing bits.
Result<SecretBytes> base32_decode(std::string_view text);

// "ABCD EFGH IJKL ..." for people to type.
std::string group_by_four(std::string_view text);

}  // namespace pbx::totp

// Digests without OpenSSL's EVP provider set-up (issue 20): SHA-256 for code that hashes per login.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace pbx::totp::detail {

constexpr std::size_t kSha256Size = 32;
// The longest MAC Hmac::mac writes (HMAC-SHA512).
constexpr std::size_t kMaxMacSize = 64;

// SHA-256 of `data` through OpenSSL's low-level SHA256_* functions: unlike EVP_Digest, the first
// call in a process does not initialise OpenSSL and its default provider (~6.7 M instructions on
// a host that has not, bench/login/PROFILE-issue20.md). For hashes on the login path (grace host
// keys, a state file checksum). The Hmac class (pbx/totp/hotp.hpp) lives in the same file,
// hmac.cpp. Nothing when OpenSSL's SHA256_* fails (3.0's never do): a caller must not use an
// all-zero digest in its place (every host would get the same grace key).
std::optional<std::array<unsigned char, kSha256Size>> sha256(std::string_view data) noexcept;

}  // namespace pbx::totp::detail

// RFC 4226 HOTP and RFC 6238 TOTP over HMAC-SHA1/256/512, and secret generation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

enum class Algorithm { kSha1, kSha256, kSha512 };

const char* algorithm_name(Algorithm a) noexcept;                 // "SHA1", ...
std::optional<Algorithm> parse_algorithm(std::string_view name);  // case-insensitive

constexpr int kMinDigits = 6;
constexpr int kMaxDigits = 8;

// Reusable HMAC context for one key: computing many codes costs one key set-up.
class Hmac {
 public:
  Hmac(Algorithm algorithm, const SecretBytes& key);
  ~Hmac();
  Hmac(const Hmac&) = delete;
  Hmac& operator=(const Hmac&) = delete;
  bool ok() const noexcept { return ctx_ != nullptr; }
  // Writes the MAC of `data` to `out` (at least 64 bytes); returns its length or 0 on failure.
  std::size_t mac(const std::uint8_t* data, std::size_t size, std::uint8_t* out) noexcept;

 private:
  void* ctx_ = nullptr;  // the prepared key (lib/src/hmac.cpp), opaque: no OpenSSL header leaks out
};

// Dynamic truncation of RFC 4226 §5.3; returns the code as a number (< 10^digits),
// or nullopt when the HMAC could not be computed.
std::optional<std::uint32_t> hotp(Hmac& hmac, std::uint64_t counter, int digits) noexcept;
std::optional<std::uint32_t> hotp(const SecretBytes& key, Algorithm algorithm,
                                  std::uint64_t counter, int digits);

// Zero-padded decimal form of a code.
std::string format_code(std::uint32_t code, int digits);

// RFC 6238 time step for a Unix time (T0 = 0).
inline std::int64_t time_step(std::int64_t unix_time, int period) {
  return unix_time >= 0 ? unix_time / period : -((-unix_time + period - 1) / period);
}

// Recommended key size: 20 bytes for SHA1, 32 for SHA256, 64 for SHA512.
std::size_t secret_size(Algorithm algorithm) noexcept;

// Fresh key from the OS CSPRNG (RAND_bytes).
Result<SecretBytes> generate_secret(Algorithm algorithm);
Status random_bytes(std::uint8_t* out, std::size_t size);

}  // namespace pbx::totp

#include "pbx/totp/hotp.hpp"

#include <openssl/rand.h>

#include <cctype>

#include "hmac.hpp"

namespace pbx::totp {

const char* algorithm_name(Algorithm a) noexcept {
  switch (a) {
    case Algorithm::kSha1:
      return "SHA1";
    case Algorithm::kSha256:
      return "SHA256";
    case Algorithm::kSha512:
      return "SHA512";
  }
  return "SHA1";
}

std::optional<Algorithm> parse_algorithm(std::string_view name) {
  std::string upper;
  for (char c : name)
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (upper == "SHA1") return Algorithm::kSha1;
  if (upper == "SHA256") return Algorithm::kSha256;
  if (upper == "SHA512") return Algorithm::kSha512;
  return std::nullopt;
}

std::size_t secret_size(Algorithm algorithm) noexcept {
  switch (algorithm) {
    case Algorithm::kSha1:
      return 20;
    case Algorithm::kSha256:
      return 32;
    case Algorithm::kSha512:
      return 64;
  }
  return 20;
}

std::optional<std::uint32_t> hotp(Hmac& hmac, std::uint64_t counter, int digits) noexcept {
  if (digits < kMinDigits || digits > kMaxDigits) return std::nullopt;
  std::uint8_t msg[8];
  for (int i = 7; i >= 0; --i) {
    msg[i] = static_cast<std::uint8_t>(counter & 0xFFU);
    counter >>= 8;
  }
  std::uint8_t out[detail::kMaxMacSize];
  std::size_t len = hmac.mac(msg, sizeof msg, out);
  if (len < 20) {
    wipe(out, sizeof out);
    return std::nullopt;
  }
  std::size_t offset = out[len - 1] & 0x0FU;
  std::uint32_t binary = (static_cast<std::uint32_t>(out[offset] & 0x7FU) << 24) |
                         (static_cast<std::uint32_t>(out[offset + 1]) << 16) |
                         (static_cast<std::uint32_t>(out[offset + 2]) << 8) |
                         static_cast<std::uint32_t>(out[offset + 3]);
  wipe(out, sizeof out);
  std::uint32_t modulus = 1;
  for (int i = 0; i < digits; ++i) modulus *= 10;
  return binary % modulus;
}

std::optional<std::uint32_t> hotp(const SecretBytes& key, Algorithm algorithm,
                                  std::uint64_t counter, int digits) {
  Hmac hmac(algorithm, key);
  if (!hmac.ok()) return std::nullopt;
  return hotp(hmac, counter, digits);
}

std::string format_code(std::uint32_t code, int digits) {
  std::string s(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    s[static_cast<std::size_t>(i)] = static_cast<char>('0' + code % 10);
    code /= 10;
  }
  return s;
}

Status random_bytes(std::uint8_t* out, std::size_t size) {
  if (size > 0 && RAND_bytes(out, static_cast<int>(size)) != 1) {
    return make_error(Errc::kInternal, "the system random generator failed");
  }
  return Ok{};
}

Result<SecretBytes> generate_secret(Algorithm algorithm) {
  SecretBytes key(secret_size(algorithm));
  if (auto st = random_bytes(key.data(), key.size()); !st) return st.error();
  return key;
}

}  // namespace pbx::totp

#include "pbx/totp/secret.hpp"

#include <openssl/crypto.h>

namespace pbx::totp {

void wipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size > 0) OPENSSL_cleanse(data, size);
}

void wipe(std::string& s) noexcept {
  // The whole capacity: a shrunk string may still hold older characters past size().
  if (s.capacity() > 0) OPENSSL_cleanse(s.data(), s.capacity());
  s.clear();
}

namespace detail {

bool equal_constant_time(const void* a, const void* b, std::size_t size) noexcept {
  return CRYPTO_memcmp(a, b, size) == 0;
}

}  // namespace detail

}  // namespace pbx::totp

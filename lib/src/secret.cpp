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

SecretBytes& SecretBytes::operator=(const SecretBytes& other) {
  if (this != &other) {
    clear();
    bytes_ = other.bytes_;
  }
  return *this;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    clear();
    bytes_ = std::move(other.bytes_);
    other.clear();
  }
  return *this;
}

void SecretBytes::push_back(std::uint8_t b) {
  if (bytes_.size() == bytes_.capacity()) {
    // Grow by hand so the old buffer is wiped rather than freed with the secret in it.
    std::vector<std::uint8_t> bigger;
    bigger.reserve(bytes_.capacity() < 32 ? 64 : bytes_.capacity() * 2);
    bigger.assign(bytes_.begin(), bytes_.end());
    clear();
    bytes_ = std::move(bigger);
  }
  bytes_.push_back(b);
}

void SecretBytes::clear() noexcept {
  if (bytes_.capacity() > 0) OPENSSL_cleanse(bytes_.data(), bytes_.capacity());
  bytes_.clear();
}

bool SecretBytes::operator==(const SecretBytes& other) const noexcept {
  if (size() != other.size()) return false;
  if (empty()) return true;
  return CRYPTO_memcmp(data(), other.data(), size()) == 0;
}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    wipe(s_);
    s_ = std::move(other.s_);
    wipe(other.s_);
  }
  return *this;
}

}  // namespace pbx::totp

// SecretBytes: a byte buffer that is wiped when it goes away (keys, codes, passwords).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pbx::totp {

// Overwrites memory in a way the compiler may not optimise away (OPENSSL_cleanse).
void wipe(void* data, std::size_t size) noexcept;
void wipe(std::string& s) noexcept;

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::size_t size) : bytes_(size) {}
  SecretBytes(const std::uint8_t* data, std::size_t size) : bytes_(data, data + size) {}
  SecretBytes(const SecretBytes& other) = default;
  SecretBytes(SecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) { other.clear(); }
  SecretBytes& operator=(const SecretBytes& other);
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  ~SecretBytes() { clear(); }

  std::uint8_t* data() noexcept { return bytes_.data(); }
  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }
  bool empty() const noexcept { return bytes_.empty(); }
  void push_back(std::uint8_t b);
  void clear() noexcept;
  bool operator==(const SecretBytes& other) const noexcept;  // constant time for equal sizes

 private:
  std::vector<std::uint8_t> bytes_;
};

// A string that is wiped when it goes away (a typed code or password, a base32 secret).
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string s) : s_(std::move(s)) {}
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  SecretString(SecretString&& other) noexcept : s_(std::move(other.s_)) { wipe(other.s_); }
  SecretString& operator=(SecretString&& other) noexcept;
  ~SecretString() { wipe(s_); }

  std::string_view view() const noexcept { return s_; }
  const std::string& str() const noexcept { return s_; }
  std::string& mut() noexcept { return s_; }

 private:
  std::string s_;
};

}  // namespace pbx::totp

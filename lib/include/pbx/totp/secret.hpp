// SecretBytes, SecretString: buffers for keys, codes and passwords whose memory is wiped whenever
// it is given back — on growth, shrinking, reassignment and destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pbx::totp {

// Overwrites memory in a way the compiler may not optimise away (OPENSSL_cleanse).
void wipe(void* data, std::size_t size) noexcept;
void wipe(std::string& s) noexcept;

namespace detail {
// CRYPTO_memcmp: kept in secret.cpp so OpenSSL stays out of this header.
bool equal_constant_time(const void* a, const void* b, std::size_t size) noexcept;
}  // namespace detail

// An allocator that wipes every block before handing it back to Base. A container that grows
// frees its old block through deallocate(), so no copy of a secret is ever freed unwiped, however
// the buffer is grown. Base is std::allocator except in the tests, which record what is freed.
template <class T, class Base = std::allocator<T>>
class CleansingAllocator {
  using BaseTraits = std::allocator_traits<Base>;

 public:
  using value_type = T;
  using propagate_on_container_copy_assignment =
      typename BaseTraits::propagate_on_container_copy_assignment;
  using propagate_on_container_move_assignment =
      typename BaseTraits::propagate_on_container_move_assignment;
  using propagate_on_container_swap = typename BaseTraits::propagate_on_container_swap;
  using is_always_equal = typename BaseTraits::is_always_equal;
  // Spelled out: the default rebind would keep Base's old value type.
  template <class U>
  struct rebind {  // NOLINT(readability-identifier-naming): the name allocators must use
    using other = CleansingAllocator<U, typename BaseTraits::template rebind_alloc<U>>;
  };

  CleansingAllocator() = default;
  explicit CleansingAllocator(const Base& base) noexcept : base_(base) {}
  template <class U, class B>
  CleansingAllocator(const CleansingAllocator<U, B>& other) noexcept  // implicit: for rebinding
      : base_(other.base()) {}

  T* allocate(std::size_t n) { return BaseTraits::allocate(base_, n); }
  void deallocate(T* p, std::size_t n) noexcept {
    wipe(p, n * sizeof(T));  // the whole block: capacity, not just the part in use
    BaseTraits::deallocate(base_, p, n);
  }

  const Base& base() const noexcept { return base_; }
  friend bool operator==(const CleansingAllocator& a, const CleansingAllocator& b) noexcept {
    return a.base_ == b.base_;
  }

 private:
  [[no_unique_address]] Base base_;
};

// A byte buffer (a key, a decoded secret). Base: see CleansingAllocator.
template <class Base = std::allocator<std::uint8_t>>
class BasicSecretBytes {
 public:
  using Buffer = std::vector<std::uint8_t, CleansingAllocator<std::uint8_t, Base>>;

  BasicSecretBytes() = default;
  explicit BasicSecretBytes(std::size_t size) : bytes_(size) {}
  BasicSecretBytes(const std::uint8_t* data, std::size_t size) : bytes_(data, data + size) {}
  BasicSecretBytes(const BasicSecretBytes& other) = default;
  BasicSecretBytes(BasicSecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) {
    other.clear();
  }
  BasicSecretBytes& operator=(const BasicSecretBytes& other) {
    if (this != &other) {
      clear();  // a copy that fits reuses the block: wipe what it does not overwrite
      bytes_ = other.bytes_;
    }
    return *this;
  }
  BasicSecretBytes& operator=(BasicSecretBytes&& other) noexcept {
    if (this != &other) {
      clear();
      bytes_ = std::move(other.bytes_);
      other.clear();
    }
    return *this;
  }
  ~BasicSecretBytes() = default;  // the allocator wipes the block

  std::uint8_t* data() noexcept { return bytes_.data(); }
  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }
  bool empty() const noexcept { return bytes_.empty(); }
  void push_back(std::uint8_t b) { bytes_.push_back(b); }
  void append(const std::uint8_t* data, std::size_t size) {
    bytes_.insert(bytes_.end(), data, data + size);
  }
  // Wipes the contents and keeps the block for reuse.
  void clear() noexcept {
    if (bytes_.capacity() > 0) wipe(bytes_.data(), bytes_.capacity());
    bytes_.clear();
  }
  bool operator==(const BasicSecretBytes& other) const noexcept {  // constant time, equal sizes
    if (size() != other.size()) return false;
    if (empty()) return true;
    return detail::equal_constant_time(data(), other.data(), size());
  }

 private:
  Buffer bytes_;
};

// A string (a typed code or password, a base32 secret, a file's contents). There is no access to
// the inner string for writing: append() and friends grow it through the wiping allocator.
template <class Base = std::allocator<char>>
class BasicSecretString {
 public:
  using String = std::basic_string<char, std::char_traits<char>, CleansingAllocator<char, Base>>;

  BasicSecretString() = default;
  // Copies s into the wiped buffer and wipes s, which the caller gave away (also when the copy
  // cannot be allocated).
  explicit BasicSecretString(std::string s) {
    try {
      s_.assign(s.data(), s.size());
    } catch (...) {
      wipe(s);
      throw;
    }
    wipe(s);
  }
  BasicSecretString(const BasicSecretString&) = delete;
  BasicSecretString& operator=(const BasicSecretString&) = delete;
  BasicSecretString(BasicSecretString&& other) noexcept : s_(std::move(other.s_)) {
    other.wipe_all();
  }
  BasicSecretString& operator=(BasicSecretString&& other) noexcept {
    if (this != &other) {
      wipe_all();
      s_ = std::move(other.s_);
      other.wipe_all();
    }
    return *this;
  }
  // The allocator wipes a heap block, but a short string lives inside the object (the small
  // string buffer), which no allocator sees.
  ~BasicSecretString() { wipe_all(); }

  std::string_view view() const noexcept { return s_; }
  const String& str() const noexcept { return s_; }
  const char* c_str() const noexcept { return s_.c_str(); }
  std::size_t size() const noexcept { return s_.size(); }
  bool empty() const noexcept { return s_.empty(); }

  void append(std::string_view text) { s_.append(text); }
  void append(char c) { s_.push_back(c); }
  void pop_back() { s_.pop_back(); }
  void reserve(std::size_t capacity) { s_.reserve(capacity); }
  // For a C API that writes into a buffer: resize(n), then fill data()[0, n).
  void resize(std::size_t size) { s_.resize(size); }
  char* data() noexcept { return s_.data(); }

  // std::getline straight into the wiped buffer; what the line replaces is wiped first.
  friend std::istream& read_line(std::istream& in, BasicSecretString& line) {
    line.wipe_all();
    return std::getline(in, line.s_);
  }

 private:
  void wipe_all() noexcept {
    // The whole capacity: a shrunk string may still hold older characters past size().
    wipe(s_.data(), s_.capacity());
    s_.clear();
  }

  String s_;
};

using SecretBytes = BasicSecretBytes<>;
using SecretString = BasicSecretString<>;

}  // namespace pbx::totp

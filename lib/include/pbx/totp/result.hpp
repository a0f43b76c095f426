// Result<T>: a value or a typed error; how the library reports expected failures.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace pbx::totp {

enum class Errc {
  kInvalid,      // malformed input (base32, URI, code syntax, bad argument)
  kConfig,       // configuration file or option error
  kNotEnrolled,  // the user has no secret
  kUnsafe,       // wrong owner, mode, type, symlink, oversize
  kCorrupt,      // a stored file does not parse
  kIo,           // a system call failed (disk full, read-only, permission)
  kNoUser,       // the account does not exist
  kExists,       // an enrollment exists and overwrite was not asked for
  kInternal,     // a library call failed unexpectedly
  kUnavailable,  // the database cannot be reached (no connection, or no answer in time)
};

const char* errc_name(Errc errc) noexcept;

struct Error {
  Errc code;
  std::string message;  // says what and where; never holds a secret or a code
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace pbx::totp

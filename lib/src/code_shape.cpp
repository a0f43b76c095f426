#include "pbx/totp/code_shape.hpp"

#include <algorithm>
#include <cstddef>

#include "pbx/totp/recovery.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {
namespace {

// A typed recovery code, without dashes and spaces, has this many characters: the printed
// codes have 12 letters, imported scratch codes (Google Authenticator: 8 digits) fewer or more.
constexpr std::size_t kMinTypedRecovery = 6;
constexpr std::size_t kMaxTypedRecovery = 32;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }

bool all_digits(std::string_view s) { return std::all_of(s.begin(), s.end(), is_digit); }

bool is_totp(std::string_view s, int digits) {
  return !s.empty() && s.size() == static_cast<std::size_t>(digits) && all_digits(s);
}

// A separator where the printed form has one, i.e. after each group but the last.
bool is_separator_at(std::size_t i) {
  return (i + 1) % (static_cast<std::size_t>(kRecoveryGroupSize) + 1) == 0;
}

// The printed form's length with its separators where printed; the rest is not looked at.
bool separators_as_printed(std::string_view s) {
  if (s.size() != kRecoveryCodeLength) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (is_separator_at(i) && s[i] != kRecoverySeparator) return false;
  }
  return true;
}

bool is_printed_recovery(std::string_view s) {
  if (!separators_as_printed(s)) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!is_separator_at(i) && !is_lower(s[i])) return false;
  }
  return true;
}

// Letters and digits once normalized, of a length a recovery or scratch code has; digits only
// when they cannot be a TOTP code (so a mistyped TOTP code never costs a slow hash).
bool is_typed_recovery(std::string_view input, int digits) {
  SecretString n = normalize_recovery_code(input);
  std::string_view s = n.view();
  if (s.size() < kMinTypedRecovery || s.size() > kMaxTypedRecovery) return false;
  if (all_digits(s)) return s.size() != static_cast<std::size_t>(digits);
  return std::all_of(s.begin(), s.end(), [](char c) { return is_digit(c) || is_lower(c); });
}

}  // namespace

CodeShape classify_code(std::string_view input, int digits, CodeForm form) {
  if (form == CodeForm::kExact) {
    if (is_totp(input, digits)) return CodeShape::kTotp;
    if (is_printed_recovery(input)) return CodeShape::kRecovery;
    return CodeShape::kNeither;
  }
  std::string_view s = input;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (is_totp(s, digits)) return CodeShape::kTotp;
  if (is_typed_recovery(s, digits)) return CodeShape::kRecovery;
  return CodeShape::kNeither;
}

SplitCode split_trailing_code(std::string_view input, int digits) {
  auto split_at = [&](std::size_t code_len) {
    return SplitCode{input.substr(0, input.size() - code_len),
                     input.substr(input.size() - code_len)};
  };
  auto totp_len = static_cast<std::size_t>(digits);
  if (input.size() >= totp_len && all_digits(input.substr(input.size() - totp_len))) {
    return split_at(totp_len);
  }
  if (input.size() >= kRecoveryCodeLength) {
    std::string_view tail = input.substr(input.size() - kRecoveryCodeLength);
    if (separators_as_printed(tail) &&
        classify_code(tail, digits, CodeForm::kTyped) == CodeShape::kRecovery) {
      return split_at(kRecoveryCodeLength);
    }
  }
  return split_at(0);
}

}  // namespace pbx::totp

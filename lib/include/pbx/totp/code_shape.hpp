// classify_code, split_trailing_code: what a typed answer looks like (TOTP, recovery code, other).
#pragma once

#include <string_view>

namespace pbx::totp {

enum class CodeShape { kTotp, kRecovery, kNeither };

// How strictly an answer is read.
enum class CodeForm {
  // Only the shapes handed out: `digits` digits, or a recovery code as printed ("kxmr-tpqz-wbnf",
  // lower-case letters in dashed groups). For an answer that may be something else, such as the
  // password in PAM_AUTHTOK (try_first_pass), which must never count as a failed code.
  kExact,
  // As a person types at the code prompt: spaces around it; a recovery code in either case,
  // with or without dashes and spaces; imported scratch codes (digits of another length,
  // letters and digits). Anything kTotp is `digits` digits once the spaces around are gone.
  kTyped,
};

// Tells the shape alone: it neither checks the code nor needs a secret.
CodeShape classify_code(std::string_view input, int digits, CodeForm form = CodeForm::kExact);

// forward_pass: a password followed by a code in one answer. The code is the trailing `digits`
// digits, else a trailing recovery code with its dashes where printed (case and letters as
// typed); else there is none (`code` empty) and all of `input` is the password.
struct SplitCode {
  std::string_view password;
  std::string_view code;
};
SplitCode split_trailing_code(std::string_view input, int digits);

}  // namespace pbx::totp

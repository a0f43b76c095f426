#include <optional>
#include <string>
#include <string_view>

#include "flow.hpp"
#include "pbx/totp/code_shape.hpp"

namespace pbx::pam {
namespace {

using totp::SecretString;

constexpr std::string_view kForwardPrompt = "Password and security code: ";

}  // namespace

std::optional<SecretString> clamp_input(std::optional<SecretString> answer) {
  if (answer && answer->view().size() > kMaxCodeInput) return SecretString(std::string());
  return answer;
}

// `from_authtok` tells whether the answer came from PAM_AUTHTOK rather than a prompt.
std::optional<SecretString> Flow::read_code(int digits, bool& from_authtok) {
  from_authtok = false;
  if (args_.use_first_pass || args_.try_first_pass) {
    auto tok = ctx_.authtok();
    bool usable = tok && !tok->view().empty();
    // try_first_pass: PAM_AUTHTOK is usually the password an earlier module read. Only the
    // exact shapes we hand out count as our code; anything else is asked for rather than
    // checked, so a password is never counted as a failed code (which could also lock the
    // user out before the prompt).
    if (usable && args_.try_first_pass) {
      usable = totp::classify_code(tok->view(), digits) != totp::CodeShape::kNeither;
    }
    if (usable) {
      from_authtok = true;
      return clamp_input(std::move(tok));
    }
    if (args_.use_first_pass) return SecretString(std::string());
  }
  if (args_.forward_pass) {
    return read_forwarded(
        digits, args_.prompt == kDefaultCodePrompt ? std::string(kForwardPrompt) : args_.prompt);
  }
  return ask_code();
}

// The code prompt itself.
std::optional<SecretString> Flow::ask_code() {
  return clamp_input(ctx_.prompt(args_.prompt, args_.echo_code));
}

// The confirmation code of an enrollment. It never comes from PAM_AUTHTOK (that holds the
// password).
std::optional<SecretString> Flow::read_enroll_code() {
  return clamp_input(ctx_.prompt("Code from the app: ", args_.echo_code));
}

// "password" + "code" in one answer: the code is the trailing `digits` digits, or a trailing
// recovery code (so never longer than kMaxCodeInput); the password goes on to the next module
// as PAM_AUTHTOK.
std::optional<SecretString> Flow::read_forwarded(int digits, const std::string& prompt) {
  auto both = ctx_.prompt(prompt, false);
  if (!both) return both;
  auto split = totp::split_trailing_code(both->view(), digits);
  SecretString password{std::string(split.password)};
  SecretString code{std::string(split.code)};
  ctx_.set_authtok(password.view());
  return code;
}

}  // namespace pbx::pam

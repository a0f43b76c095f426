#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "flow.hpp"
#include "pbx/totp/recovery.hpp"

namespace pbx::pam {
namespace {

using totp::SecretString;

constexpr std::string_view kDefaultPrompt = "Security code: ";
constexpr std::string_view kForwardPrompt = "Password and security code: ";

// try_first_pass: is PAM_AUTHTOK (usually the password an earlier module read) one of our
// codes? Only the exact shapes we hand out count: `digits` digits, or a recovery code as printed
// ("abcd-efgh-jkmn"). Anything else is asked for rather than checked, so a password is never
// counted as a failed code (which could also lock the user out before the prompt).
bool looks_like_code(std::string_view s, int digits) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.size() == static_cast<std::size_t>(digits) && std::all_of(s.begin(), s.end(), is_digit)) {
    return true;
  }
  if (s.size() != 14 || s[4] != '-' || s[9] != '-') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i != 4 && i != 9 && !(s[i] >= 'a' && s[i] <= 'z')) return false;
  }
  return true;
}

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
    if (usable && args_.try_first_pass) usable = looks_like_code(tok->view(), digits);
    if (usable) {
      from_authtok = true;
      return clamp_input(std::move(tok));
    }
    if (args_.use_first_pass) return SecretString(std::string());
  }
  if (args_.forward_pass) {
    return read_forwarded(
        digits, args_.prompt == kDefaultPrompt ? std::string(kForwardPrompt) : args_.prompt);
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
// recovery code; the password goes on to the next module as PAM_AUTHTOK.
std::optional<SecretString> Flow::read_forwarded(int digits, const std::string& prompt) {
  auto both = ctx_.prompt(prompt, false);
  if (!both) return both;
  std::string_view all = both->view();
  std::size_t code_len = static_cast<std::size_t>(digits);
  bool digits_tail =
      all.size() >= code_len && std::all_of(all.end() - static_cast<std::ptrdiff_t>(code_len),
                                            all.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits_tail) {
    constexpr std::size_t kRecoveryLen = 14;  // xxxx-xxxx-xxxx
    if (all.size() >= kRecoveryLen &&
        totp::looks_like_recovery_code(all.substr(all.size() - kRecoveryLen), digits) &&
        all[all.size() - 5] == '-' && all[all.size() - 10] == '-') {
      code_len = kRecoveryLen;
    } else {
      code_len = 0;
    }
  }
  SecretString password(std::string(all.substr(0, all.size() - code_len)));
  SecretString code(std::string(all.substr(all.size() - code_len)));
  ctx_.set_authtok(password.view());
  return code;
}

}  // namespace pbx::pam

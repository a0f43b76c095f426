#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flow.hpp"
#include "pbx/totp/code_shape.hpp"

namespace pbx::pam {
namespace {

using totp::SecretString;

constexpr std::string_view kForwardPrompt = "Password and security code: ";

bool ends_in_digits(std::string_view s, int n) {
  auto len = static_cast<std::size_t>(n);
  if (n <= 0 || s.size() < len) return false;
  return std::all_of(s.end() - n, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// forward_pass: where the password ends. One code length: split_trailing_code. Several (devices
// of different digits), when the answer ends in digits enough for more than one of them: the
// longest whose trailing digits are a current code of some device (every length and device is
// computed, nothing recorded), else the longest.
totp::SplitCode split_forwarded(std::string_view input, const CodeLengths& lengths) {
  std::vector<int> fits;
  for (int d : lengths.digits) {
    if (ends_in_digits(input, d)) fits.push_back(d);
  }
  if (fits.size() <= 1) {
    int digits = !fits.empty() ? fits.front() : lengths.digits.front();
    return totp::split_trailing_code(input, digits);
  }
  std::optional<int> chosen;
  for (int d : fits) {
    bool match = lengths.matches && lengths.matches(input.substr(input.size() - d));
    if (match && !chosen) chosen = d;
  }
  return totp::split_trailing_code(input, chosen.value_or(fits.front()));
}

}  // namespace

std::vector<int> code_lengths(const std::vector<totp::DeviceStatus>& devices, int fallback) {
  std::vector<int> out;
  for (const auto& d : devices) {
    if (std::find(out.begin(), out.end(), d.digits) == out.end()) out.push_back(d.digits);
  }
  if (out.empty()) out.push_back(fallback);
  std::sort(out.begin(), out.end(), std::greater<>());
  return out;
}

std::optional<SecretString> clamp_input(std::optional<SecretString> answer) {
  if (answer && answer->view().size() > kMaxCodeInput) return SecretString(std::string());
  return answer;
}

// `from_authtok` tells whether the answer came from PAM_AUTHTOK rather than a prompt.
std::optional<SecretString> Flow::read_code(const CodeLengths& lengths, bool& from_authtok) {
  from_authtok = false;
  if (args_.use_first_pass || args_.try_first_pass) {
    auto tok = ctx_.authtok();
    bool usable = tok && !tok->view().empty();
    // try_first_pass: PAM_AUTHTOK is usually the password an earlier module read. Only the
    // exact shapes we hand out count as our code; anything else is asked for rather than
    // checked, so a password is never counted as a failed code (which could also lock the
    // user out before the prompt). With devices of different digits, any device's length.
    if (usable && args_.try_first_pass) {
      usable = std::any_of(lengths.digits.begin(), lengths.digits.end(), [&](int digits) {
        return totp::classify_code(tok->view(), digits) != totp::CodeShape::kNeither;
      });
    }
    if (usable) {
      from_authtok = true;
      return clamp_input(std::move(tok));
    }
    if (args_.use_first_pass) return SecretString(std::string());
  }
  if (args_.forward_pass) {
    return read_forwarded(
        lengths, args_.prompt == kDefaultCodePrompt ? std::string(kForwardPrompt) : args_.prompt);
  }
  return ask_code();
}

// The code prompt itself.
std::optional<SecretString> Flow::ask_code() {
  return clamp_input(ask(args_.prompt, args_.echo_code));
}

// The confirmation code of an enrollment, asked with `prompt` (enroll_code_prompt). It never
// comes from PAM_AUTHTOK (that holds the password).
std::optional<SecretString> Flow::read_enroll_code(std::string_view prompt) {
  return clamp_input(ask(prompt, args_.echo_code));
}

// "password" + "code" in one answer: the code is the trailing digits of a device's length
// (split_forwarded), or a trailing recovery code (so never longer than kMaxCodeInput); the
// password goes on to the next module as PAM_AUTHTOK.
std::optional<SecretString> Flow::read_forwarded(const CodeLengths& lengths,
                                                 const std::string& prompt) {
  auto both = ask(prompt, false);
  if (!both) return both;
  auto split = split_forwarded(both->view(), lengths);
  SecretString password{std::string(split.password)};
  SecretString code{std::string(split.code)};
  ctx_.set_authtok(password.view());
  return code;
}

}  // namespace pbx::pam

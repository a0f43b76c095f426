// Flow: one login through the module. Private to pam/: authenticate.cpp holds the flow itself,
// enroll_at_login.cpp the enrollment inside a login, code_input.cpp how the code is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "authenticate.hpp"
#include "module_args.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"

namespace pbx::pam {

// An absurdly long answer is a wrong code like any other: it is not hashed or copied around.
inline constexpr std::size_t kMaxCodeInput = 512;

// What a text-display login (enroll_display=text) shows of `text`: printable ASCII and line
// ends only. Each other character (a UTF-8 sequence counts as one) or control byte becomes
// '?'. Cockpit's login page would print '?' for every byte >= 0x80 anyway.
totp::SecretString ascii_text(std::string_view text);

// `answer`, or an empty answer when it is longer than kMaxCodeInput.
std::optional<totp::SecretString> clamp_input(std::optional<totp::SecretString> answer);

// The code lengths a user's answer may have (every device's digits, longest first, no repeats),
// and for forward_pass when they differ, whether a code of some device is `code` now (checks
// every device, records nothing): which of the trailing digit runs is the code.
struct CodeLengths {
  std::vector<int> digits;
  std::function<bool(std::string_view code)> matches;
};

// The distinct `digits` of the user's devices, longest first (`fallback` when there is none).
std::vector<int> code_lengths(const std::vector<totp::DeviceStatus>& devices, int fallback);

class Flow {
 public:
  Flow(PamContext& ctx, const AuthOptions& opts, const totp::Clock& clock)
      : ctx_(ctx), opts_(opts), clock_(clock) {}

  AuthResult run(const std::vector<std::string>& args);
  // The one syslog line of the login, then its security event (the row's, or the transition's)
  // in the store's event log. Recording the event never changes `r`: when it fails, one more
  // line ("event log: ...") at error level.
  void log_outcome(AuthResult r);
  // An exception ended the flow: its detail, and no event of a transition.
  void set_detail(std::string d) {
    detail_ = std::move(d);
    event_ = {};
  }

 private:
  // authenticate.cpp
  // Ends the login with `r` (a success too), `detail` going to the log line (and the event's
  // detail). `transition`: the event kind of a failure that locked something (locked-out,
  // break-glass-locked), recorded instead of the row's (which has none).
  AuthResult finish(AuthResult r, std::string detail, std::string_view transition = {}) {
    detail_ = std::move(detail);
    event_ = transition;
    return r;
  }
  void record_event(AuthResult r);
  AuthResult judge(const totp::Result<totp::Outcome>& verified, const totp::SecretString& code);
  AuthResult store_failed(const totp::Error& e, const totp::SecretString* typed);
  AuthResult unreachable(const totp::Error& e, const totp::SecretString* typed);
  AuthResult break_glass_locked(const totp::Error& e, int failures);
  AuthResult ask_then(AuthResult r, std::string detail);
  void debug(const std::string& text);
  void tell(const std::string& text, bool error);
  // Every message and prompt of the flow goes through these two: in text display only ASCII.
  bool say(std::string_view text, bool error);
  std::optional<totp::SecretString> ask(std::string_view text, bool echo);
  void tell_locked(std::int64_t until);
  void tell_failures(const totp::Outcome& outcome);
  static std::string temp_code_detail(const totp::Outcome& outcome);

  // enroll_at_login.cpp
  AuthResult enroll_now(const totp::User& user, totp::Store& store, const std::string& via);
  AuthResult enroll_with_code(const totp::User& user, totp::Store& store, totp::Verifier& verifier,
                              const totp::UserStatus& status);
  AuthResult refuse_forward_pass();
  bool show_setup(const totp::NewEnrollment& pending, const totp::User& user);
  totp::SecretString enroll_code_prompt(const totp::NewEnrollment& pending) const;
  bool show_recovery_codes(const std::vector<totp::SecretString>& codes);

  // code_input.cpp. No code they return is longer than kMaxCodeInput.
  std::optional<totp::SecretString> read_code(const CodeLengths& lengths, bool& from_authtok);
  std::optional<totp::SecretString> read_code(int digits, bool& from_authtok) {
    return read_code(CodeLengths{{digits}, nullptr}, from_authtok);
  }
  std::optional<totp::SecretString> ask_code();
  std::optional<totp::SecretString> read_enroll_code(std::string_view prompt);
  std::optional<totp::SecretString> read_forwarded(const CodeLengths& lengths,
                                                   const std::string& prompt);

  PamContext& ctx_;
  const AuthOptions& opts_;
  const totp::Clock& clock_;
  ModuleArgs args_;
  // enroll_display resolved for this login's service: no QR code, secrets only in prompts,
  // every message and prompt ASCII.
  bool text_display_ = false;
  std::string user_name_;
  std::string rhost_;
  std::string detail_;
  std::string device_;      // the device of an accepted or replayed TOTP code, for the log line
  std::string_view event_;  // a transition's event kind (kEventKinds), "" for none
  // The store the login opened: it outlives the decision, so that the event is recorded after.
  std::unique_ptr<totp::Store> store_;
};

}  // namespace pbx::pam

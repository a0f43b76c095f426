#include <unistd.h>

#include <optional>
#include <string>
#include <string_view>

#include "flow.hpp"
#include "pbx/totp/qr.hpp"

namespace pbx::pam {
namespace {

using totp::SecretString;

constexpr int kEnrollTries = 3;

// The issuer when the config names none; empty when unknown (the plan then says "pbx-mfa").
std::string host_name() {
  char host[256] = "";
  if (::gethostname(host, sizeof host - 1) != 0) return {};
  return host;
}

}  // namespace

// enroll_at_login: shows a fresh secret (show_setup, enroll_code_prompt), asks for a current
// code (kEnrollTries), shows the recovery codes and only then saves: a failure or a dropped
// connection before that leaves nothing behind, and the next login starts afresh.
// `via`: how the login earned the enrollment (with-code: the temp code's issuer), for the log.
AuthResult Flow::enroll_now(const totp::User& user, totp::Store& store, const std::string& via) {
  const totp::Config& c = args_.config;
  // forward_pass puts this module before the password module: the password is not checked
  // yet, and whoever knows a user name could bind their own phone to that account.
  if (args_.forward_pass) return refuse_forward_pass();
  // An unusable state_dir, or no directory for the secret (a home made only at session
  // start), would refuse the save: find out before a key is shown that would then sit in the
  // user's app as a dead entry.
  auto state = store.peek_state(user);
  if (!state) return finish(AuthResult::kUnavailable, state.error().message);
  if (!state->enrollment_id.empty()) {
    // The user was enrolled and logged in with it, and now the secret is gone: deleted
    // through some other way into the home, or not visible yet. Re-enrolling with only the
    // password would hand the account to whoever removed it.
    tell("Two-factor authentication was set up for " + user.name +
             ", but its key is missing. Ask an administrator (pbx-mfa reset).",
         true);
    return finish(AuthResult::kUnavailable, "secret missing, but state of enrollment " +
                                                state->enrollment_id + " exists: not re-enrolled");
  }
  if (auto st = store.check_saveable(user); !st) {
    tell("Two-factor authentication cannot be set up at this login; ask an administrator.", true);
    return finish(AuthResult::kUnavailable, st.error().message);
  }
  const auto plan = totp::EnrollmentPlan::from(c, user.name, host_name());
  auto created = totp::NewEnrollment::create(plan);
  if (!created) return finish(AuthResult::kInternal, created.error().message);
  totp::NewEnrollment& pending = *created;
  if (!show_setup(pending, user)) {
    return finish(AuthResult::kConvError, "conversation failed during enrollment");
  }
  const std::string dead_entry =
      " Delete the entry just added to the app, then log in again to start over.";
  const SecretString code_prompt = enroll_code_prompt(pending);
  std::int64_t step = totp::kNoStep;
  for (int attempt = 1;; ++attempt) {
    auto typed = read_enroll_code(code_prompt.view());
    if (!typed) return finish(AuthResult::kConvError, "conversation failed during enrollment");
    if (auto m = pending.match(typed->view(), c.window, clock_.now())) {
      step = *m;
      break;
    }
    if (attempt == kEnrollTries) {
      tell("Wrong code " + std::to_string(kEnrollTries) +
               " times; nothing was saved. Check the phone's clock." + dead_entry,
           true);
      return finish(AuthResult::kEnrollFailed,
                    "wrong code " + std::to_string(kEnrollTries) + " times, nothing saved");
    }
    int left = kEnrollTries - attempt;
    tell("Wrong code: it does not match the new key. Type the " + std::to_string(plan.digits) +
             " digits the app shows now (" + std::to_string(left) +
             (left == 1 ? " try" : " tries") + " left).",
         true);
  }
  auto codes = pending.make_recovery_codes(opts_.recovery_kdf);
  if (!codes) return finish(AuthResult::kInternal, codes.error().message);
  if (!codes->empty() && !show_recovery_codes(*codes)) {
    return finish(AuthResult::kConvError, "conversation failed during enrollment");
  }
  totp::SaveOptions save;
  save.reset_state = true;  // the confirmation code is used up, like any accepted code
  auto saved = pending.save(store, user, clock_.now(), step, save);
  if (!saved) {
    std::string why = saved.error().message;
    if (saved.error().code == totp::Errc::kExists) {
      // Something took the secret's place meanwhile: a parallel first login or an
      // administrator (a readable enrollment), or something else (a symlink, garbage) that
      // must not be passed off as one.
      auto there = store.load(user);
      if (there) {
        tell("Two-factor authentication for " + user.name +
                 " was set up meanwhile (by another login or an administrator); this setup "
                 "was not saved." +
                 dead_entry,
             true);
        return finish(AuthResult::kEnrollFailed, "enrolled meanwhile by another login or root");
      }
      why = there.error().message;
    }
    tell("The new key could not be saved; nothing changed. Ask an administrator." + dead_entry,
         true);
    return finish(AuthResult::kUnavailable, "enrollment not saved: " + why);
  }
  // Saved, but when the state could not be written the confirmation code's use is not
  // recorded (the old state is stale under the new id): that code must not open this login,
  // or it opens a second one later (fail closed, like any login whose outcome cannot be
  // recorded). The key is kept: the app holds it, and the next login asks for a code.
  if (const auto& state_error = saved->state_error) {
    tell("Two-factor authentication is set up for " + user.name +
             ", but this login could not be recorded. Ask an administrator; the app's codes "
             "will work once the problem is fixed.",
         true);
    return finish(AuthResult::kUnavailable,
                  "enrolled, but the login could not be recorded: " + state_error->message);
  }
  tell("Two-factor authentication is set up for " + user.name + ".", false);
  return finish(AuthResult::kEnrolled, via);
}

AuthResult Flow::refuse_forward_pass() {
  return ask_then(AuthResult::kNotEnrolled,
                  "required but not enrolled; enroll_at_login is not offered with "
                  "forward_pass (the password is checked only after this module)");
}

// enroll_at_login = with-code: the same "Security code:" prompt as any login, so nothing tells
// a stranger holding the password that the account is not enrolled. Only a valid temp code
// issued for this user (pbx-mfa temp-code) leads on to enroll_now(); the verifier checks it,
// spends one use and counts a wrong answer toward the lockout. The use is spent when the code
// is accepted: an enrollment that then fails or is abandoned has used it up.
AuthResult Flow::enroll_with_code(const totp::User& user, totp::Store& store,
                                  totp::Verifier& verifier, const totp::UserStatus& status) {
  if (args_.forward_pass) return refuse_forward_pass();
  if (status.locked) {
    tell_locked(status.state.locked_until);
    return finish(AuthResult::kLockedOut, "locked out");
  }
  bool from_authtok = false;
  auto code = read_code(args_.config.digits, from_authtok);
  if (!code) return finish(AuthResult::kConvError, "conversation failed");
  auto verified = verifier.verify(user, code->view(), rhost_);
  if (verified && from_authtok && args_.try_first_pass &&
      verified->verdict != totp::Verdict::kTempCodeAccepted &&
      verified->verdict != totp::Verdict::kLockedOut && verified->locked_until <= clock_.now()) {
    // try_first_pass: the earlier module's token was not a temp code; ask for one.
    code = ask_code();
    if (!code) return finish(AuthResult::kConvError, "conversation failed");
    verified = verifier.verify(user, code->view(), rhost_);
  }
  if (verified && verified->verdict == totp::Verdict::kTempCodeAccepted) {
    debug("temp code accepted: enrolling");
    tell("Temporary access code accepted.", false);
    return enroll_now(user, store, "with a " + temp_code_detail(*verified));
  }
  if (verified && verified->verdict == totp::Verdict::kNotEnrolled) {
    return finish(AuthResult::kNotEnrolled,
                  status.temp_code_active
                      ? "required but not enrolled; the answer was no temp code"
                      : "required but not enrolled; no temp code issued (enroll_at_login = "
                        "with-code)");
  }
  // Wrong (counted), locked out, an error; or enrolled meanwhile and a code of that enrollment.
  return judge(verified, *code);
}

// Terminal display: one info message with what is happening, the QR code (UTF-8 half blocks:
// OpenSSH strips escape sequences from keyboard-interactive text), the key in groups of four
// and the URI. Built in one wiped buffer (SecretString wipes what its growth frees).
// Text display: what is happening only. cockpit-session writes every info and error message
// to the journal (warnx) and its JSON turns each byte >= 0x80 into '?': the key and the URI
// go into the code prompt instead (enroll_code_prompt), which it does not log.
bool Flow::show_setup(const totp::NewEnrollment& pending, const totp::User& user) {
  const std::string intro = "Two-factor authentication is required for " + user.name +
                            ", and no authenticator app is set up yet. Set it up now";
  if (text_display_) return say(intro + ".", false);
  SecretString uri = pending.uri();
  auto drawing = totp::render_qr(uri.view(), totp::QrStyle::kUtf8);
  if (!drawing) return false;
  SecretString picture(std::move(drawing.value()));
  SecretString grouped = pending.secret_grouped();
  SecretString text;
  text.append(intro);
  text.append(
      ": scan this QR code with an authenticator app (or type the key into it), then type the "
      "code it shows.\n\n");
  text.append(picture.view());
  text.append("\nKey: ");
  text.append(grouped.view());
  text.append("\nURI: ");
  text.append(uri.view());
  text.append('\n');
  return say(text.view(), false);
}

// The prompt for the confirmation code. Text display: the key and the URI are part of it, one
// item a line (a terminal shows the lines; Cockpit's login page runs them together), and asked
// again with each retry (each Cockpit prompt replaces the one before).
SecretString Flow::enroll_code_prompt(const totp::NewEnrollment& pending) const {
  static constexpr std::string_view kCodePrompt = "Code from the app: ";
  SecretString text;
  if (!text_display_) {
    text.append(kCodePrompt);
    return text;
  }
  const totp::EnrollmentPlan& plan = pending.plan();
  SecretString uri = pending.uri();
  SecretString grouped = pending.secret_grouped();
  text.append(
      "Add this key to your authenticator app (or open the link on the phone), then type the "
      "code it shows.\nAccount: ");
  text.append(plan.issuer);  // ask() makes it ASCII; the URI has it percent-encoded
  text.append(':');
  text.append(plan.account);
  text.append("\nKey: ");
  text.append(grouped.view());
  text.append("\nURI: ");
  text.append(uri.view());
  text.append('\n');
  text.append(kCodePrompt);
  return text;
}

// The recovery codes, once; an answer proves they reached the screen (sshd shows messages with
// the next prompt), and without one nothing is saved. Text display: inside the prompt itself,
// never in an info message (Cockpit journals those).
bool Flow::show_recovery_codes(const std::vector<SecretString>& codes) {
  SecretString text;
  if (text_display_) {
    text.append("Code accepted. Recovery codes (each works once, shown only now):");
    for (const auto& rc : codes) {
      text.append("\n  ");
      text.append(rc.view());
    }
    text.append("\nStore them somewhere safe. Press Enter to continue: ");
    return ask(text.view(), true).has_value();
  }
  text.append(
      "Code accepted. Recovery codes, for when the phone is lost: each works once instead of "
      "a code, and they are shown only now, so store them somewhere safe:\n");
  for (const auto& rc : codes) {
    text.append("  ");
    text.append(rc.view());
    text.append('\n');
  }
  if (!say(text.view(), false)) return false;
  return ask("Press Enter once you have stored them: ", true).has_value();
}

}  // namespace pbx::pam

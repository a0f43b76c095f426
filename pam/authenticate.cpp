#include "authenticate.hpp"

#include <security/_pam_types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <new>

#include "module_args.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/qr.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"

namespace pbx::pam {
namespace {

using totp::SecretString;

constexpr unsigned kFailDelayUs = 2'000'000;  // as pam_unix
constexpr std::size_t kMaxCodeInput = 512;
constexpr int kEnrollTries = 3;

// Keeps log lines on one line and printable, whatever a user name or host name holds.
// `field`: a name=value field, where a space would let a name forge the next field.
std::string printable(std::string_view s, std::size_t max = 128, bool field = true) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F || (field && (c == ' ' || c == '"')) || c == '\\') {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  if (s.size() > max) out += "...";
  return out.empty() ? "-" : out;
}

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

std::string when_text(std::int64_t seconds) {
  if (seconds < 60) return std::to_string(seconds) + " second" + (seconds == 1 ? "" : "s");
  std::int64_t minutes = (seconds + 59) / 60;
  return std::to_string(minutes) + " minute" + (minutes == 1 ? "" : "s");
}

class Flow {
 public:
  Flow(PamContext& ctx, const AuthOptions& opts, const totp::Clock& clock)
      : ctx_(ctx), opts_(opts), clock_(clock) {}

  AuthResult run(const std::vector<std::string>& args) {
    auto parsed = parse_module_args(args, opts_.trusted_uid);
    if (!parsed) return fail(AuthResult::kBadConfig, parsed.error().message);
    args_ = std::move(parsed.value());
    if (!args_.nodelay) ctx_.fail_delay(kFailDelayUs);

    auto name = ctx_.user();
    if (!name || name->empty()) return fail(AuthResult::kConvError, "no user name");
    user_name_ = *name;
    rhost_ = ctx_.rhost();

    for (const auto& net : args_.config.exempt_networks) {
      if (!rhost_.empty() && totp::cidr_contains(net, rhost_)) {
        return fail(AuthResult::kExempt, "exempt network");
      }
    }
    auto user = totp::lookup_user(user_name_);
    if (!user) {
      if (user.error().code != totp::Errc::kNoUser) {
        return fail(AuthResult::kUnavailable, user.error().message);
      }
      // Ask anyway so an unknown name looks like any other.
      return ask_then(AuthResult::kUnknownUser, "unknown user");
    }
    std::vector<std::string> groups;
    bool need_groups = !args_.config.exempt_groups.empty() || !args_.config.require_groups.empty();
    if (need_groups) groups = totp::user_groups(*user);
    auto member = [&](const std::vector<std::string>& of) {
      return std::any_of(of.begin(), of.end(), [&](const std::string& g) {
        return std::find(groups.begin(), groups.end(), g) != groups.end();
      });
    };
    if (member(args_.config.exempt_groups)) return fail(AuthResult::kExempt, "exempt group");
    bool required = args_.config.require_all || member(args_.config.require_groups);

    auto store = totp::open_store(args_.config);
    if (!store) return fail(AuthResult::kBadConfig, store.error().message);
    totp::Verifier verifier(args_.config, **store, clock_);

    auto status = verifier.status(*user);
    if (!status) return store_failed(status.error(), nullptr);
    debug(std::string("required=") + (required ? "yes" : "no") + " enrolled=" +
          (status->enrolled ? "yes" : "no") + " locked=" + (status->locked ? "yes" : "no"));
    if (!status->enrolled) {
      if (!required) return fail(AuthResult::kNotRequired, "not enrolled, not required");
      // PAM_SILENT: the QR code and the key could not be shown, so there is nothing to confirm.
      if (args_.config.enroll_at_login && !opts_.silent) return enroll_now(*user, **store);
      return ask_then(AuthResult::kNotEnrolled, "required but not enrolled");
    }
    if (status->locked) {
      tell_locked(status->state.locked_until);
      return fail(AuthResult::kLockedOut, "locked out");
    }
    if (args_.config.grace_period > 0 && !rhost_.empty()) {
      auto grace = verifier.in_grace(*user, rhost_);
      if (!grace) return store_failed(grace.error(), nullptr);
      if (*grace) return fail(AuthResult::kGrace, "within grace period");
    }

    bool from_authtok = false;
    auto code = read_code(status->digits, from_authtok);
    if (!code) return fail(AuthResult::kConvError, "conversation failed");
    // An absurdly long answer is a wrong code like any other; don't hash or copy it around.
    if (code->view().size() > kMaxCodeInput) code = SecretString(std::string());
    auto outcome = verifier.verify(*user, code->view(), rhost_);
    if (from_authtok && args_.try_first_pass && outcome.verdict == totp::Verdict::kRejected &&
        outcome.locked_until <= clock_.now()) {
      // try_first_pass: the earlier module's token was not our code after all; ask for it.
      code = ctx_.prompt(args_.prompt, args_.echo_code);
      if (!code) return fail(AuthResult::kConvError, "conversation failed");
      if (code->view().size() > kMaxCodeInput) code = SecretString(std::string());
      outcome = verifier.verify(*user, code->view(), rhost_);
    }
    switch (outcome.verdict) {
      case totp::Verdict::kAccepted:
        return fail(AuthResult::kAccepted, "");
      case totp::Verdict::kRecoveryAccepted:
        tell("Recovery code accepted. " + std::to_string(outcome.recovery_left) + " recovery code" +
                 (outcome.recovery_left == 1 ? "" : "s") +
                 " left; make new ones with 'pbx-mfa recovery-codes'.",
             false);
        return fail(AuthResult::kRecoveryAccepted,
                    "recovery codes left " + std::to_string(outcome.recovery_left));
      case totp::Verdict::kRejected:
      case totp::Verdict::kReplayed: {
        AuthResult r = outcome.verdict == totp::Verdict::kRejected ? AuthResult::kRejected
                                                                   : AuthResult::kReplayed;
        std::string detail = "failures " + std::to_string(outcome.failures);
        if (outcome.locked_until > clock_.now()) {
          tell_locked(outcome.locked_until);
          detail += ", now locked out";
        }
        return fail(r, detail);
      }
      case totp::Verdict::kLockedOut:
        tell_locked(outcome.locked_until);
        return fail(AuthResult::kLockedOut, "locked out");
      case totp::Verdict::kNotEnrolled:
        return fail(AuthResult::kNotEnrolled, "enrollment removed during login");
      case totp::Verdict::kError:
        if (!outcome.error) return fail(AuthResult::kUnavailable, "store error");
        return store_failed(*outcome.error, &*code);
    }
    return fail(AuthResult::kInternal, "unexpected verdict");
  }

  void log_outcome(AuthResult r) {
    std::string line = "service=" + printable(ctx_.service()) + " user=" + printable(user_name_) +
                       " rhost=" + printable(rhost_) + " outcome=" + result_name(r);
    if (!detail_.empty()) line += " (" + printable(detail_, 400, false) + ")";
    LogLevel level = LogLevel::kNotice;
    switch (r) {
      case AuthResult::kAccepted:
      case AuthResult::kGrace:
      case AuthResult::kExempt:
      case AuthResult::kNotRequired:
        level = LogLevel::kInfo;
        break;
      case AuthResult::kBreakGlass:  // a way in that bypasses the user's own second factor
        level = LogLevel::kWarning;
        break;
      case AuthResult::kRecoveryAccepted:
      case AuthResult::kEnrolled:  // a new second factor bound to the account
      case AuthResult::kRejected:
      case AuthResult::kReplayed:
      case AuthResult::kLockedOut:
      case AuthResult::kNotEnrolled:
      case AuthResult::kEnrollFailed:
      case AuthResult::kUnknownUser:
        level = LogLevel::kNotice;
        break;
      default:
        level = LogLevel::kError;
    }
    ctx_.log(level, line);
  }

  void set_detail(std::string d) { detail_ = std::move(d); }

 private:
  AuthResult fail(AuthResult r, std::string detail) {
    detail_ = std::move(detail);
    return r;
  }

  // The store could not answer: PAM_AUTHINFO_UNAVAIL, and when the database cannot be reached
  // at all, the break-glass path below.
  AuthResult store_failed(const totp::Error& e, const SecretString* typed) {
    if (e.code == totp::Errc::kUnavailable) return unreachable(e, typed);
    return fail(AuthResult::kUnavailable, e.message);
  }

  // The database cannot be reached: fail closed, unless this host has break-glass codes and
  // the user types one (`typed`: the code already read, when the database went away between
  // the first look and the check).
  AuthResult unreachable(const totp::Error& e, const SecretString* typed) {
    auto left = totp::break_glass_left(args_.config);
    if (!left) return fail(AuthResult::kStoreUnreachable, e.message + "; " + left.error().message);
    if (*left <= 0) {
      return fail(AuthResult::kStoreUnreachable, e.message + "; no break-glass codes on this host");
    }
    std::optional<SecretString> code;
    if (typed == nullptr) {
      tell(
          "The two-factor database cannot be reached: a break-glass code of this server is "
          "needed.",
          false);
      bool from_authtok = false;
      code = read_code(args_.config.digits, from_authtok);
      if (!code) return fail(AuthResult::kConvError, "conversation failed");
      if (code->view().size() > kMaxCodeInput) code = SecretString(std::string());
      typed = &*code;
    }
    auto used = totp::use_break_glass_code(args_.config, typed->view());
    if (!used) return fail(AuthResult::kStoreUnreachable, e.message + "; " + used.error().message);
    if (!*used)
      return fail(AuthResult::kStoreUnreachable, e.message + "; no break-glass code given");
    return fail(AuthResult::kBreakGlass,
                e.message + "; break-glass code used, " + std::to_string(*left - 1) + " left");
  }

  // Reads an answer exactly as for an enrolled user, then refuses: the prompts must not tell
  // an unknown or unenrolled user from an enrolled one.
  AuthResult ask_then(AuthResult r, std::string detail) {
    bool from_authtok = false;
    auto ignored = read_code(args_.config.digits, from_authtok);
    if (!ignored) return fail(AuthResult::kConvError, "conversation failed");
    if (from_authtok && args_.try_first_pass) {
      ignored = ctx_.prompt(args_.prompt, args_.echo_code);
      if (!ignored) return fail(AuthResult::kConvError, "conversation failed");
    }
    return fail(r, std::move(detail));
  }

  // enroll_at_login: shows a fresh secret (QR code as UTF-8 half blocks — OpenSSH strips escape
  // sequences from keyboard-interactive text — the key in groups of four and the URI), asks for
  // a current code (kEnrollTries), shows the recovery codes and only then saves: a failure or a
  // dropped connection before that leaves nothing behind, and the next login starts afresh.
  AuthResult enroll_now(const totp::User& user, totp::Store& store) {
    const totp::Config& c = args_.config;
    // forward_pass puts this module before the password module: the password is not checked
    // yet, and whoever knows a user name could bind their own phone to that account.
    if (args_.forward_pass) {
      return ask_then(AuthResult::kNotEnrolled,
                      "required but not enrolled; enroll_at_login is not offered with "
                      "forward_pass (the password is checked only after this module)");
    }
    // An unusable state_dir, or no directory for the secret (a home made only at session
    // start), would refuse the save: find out before a key is shown that would then sit in the
    // user's app as a dead entry.
    auto state = store.peek_state(user);
    if (!state) return fail(AuthResult::kUnavailable, state.error().message);
    if (!state->enrollment_id.empty()) {
      // The user was enrolled and logged in with it, and now the secret is gone: deleted
      // through some other way into the home, or not visible yet. Re-enrolling with only the
      // password would hand the account to whoever removed it.
      tell("Two-factor authentication was set up for " + user.name +
               ", but its key is missing. Ask an administrator (pbx-mfa reset).",
           true);
      return fail(AuthResult::kUnavailable, "secret missing, but state of enrollment " +
                                                state->enrollment_id + " exists: not re-enrolled");
    }
    if (auto st = store.check_saveable(user); !st) {
      tell("Two-factor authentication cannot be set up at this login; ask an administrator.", true);
      return fail(AuthResult::kUnavailable, st.error().message);
    }
    totp::EnrollmentPlan plan;
    plan.algorithm = c.algorithm;
    plan.digits = c.digits;
    plan.period = c.period;
    plan.recovery_codes = c.recovery_codes;
    plan.issuer = c.issuer.empty() ? host_name() : c.issuer;
    plan.account = user.name;
    auto created = totp::NewEnrollment::create(plan);
    if (!created) return fail(AuthResult::kInternal, created.error().message);
    totp::NewEnrollment& pending = *created;
    if (!show_setup(pending, user)) {
      return fail(AuthResult::kConvError, "conversation failed during enrollment");
    }
    const std::string dead_entry =
        " Delete the entry just added to the app, then log in again to start over.";
    std::int64_t step = totp::kNoStep;
    for (int attempt = 1;; ++attempt) {
      auto typed = read_enroll_code();
      if (!typed) return fail(AuthResult::kConvError, "conversation failed during enrollment");
      if (typed->view().size() <= kMaxCodeInput) {
        if (auto m = pending.match(typed->view(), c.window, clock_.now())) {
          step = *m;
          break;
        }
      }
      if (attempt == kEnrollTries) {
        tell("Wrong code " + std::to_string(kEnrollTries) +
                 " times; nothing was saved. Check the phone's clock." + dead_entry,
             true);
        return fail(AuthResult::kEnrollFailed,
                    "wrong code " + std::to_string(kEnrollTries) + " times, nothing saved");
      }
      int left = kEnrollTries - attempt;
      tell("Wrong code: it does not match the new key. Type the " + std::to_string(plan.digits) +
               " digits the app shows now (" + std::to_string(left) +
               (left == 1 ? " try" : " tries") + " left).",
           true);
    }
    auto codes = pending.make_recovery_codes(opts_.recovery_kdf);
    if (!codes) return fail(AuthResult::kInternal, codes.error().message);
    if (!codes->empty()) {
      static constexpr std::string_view kIntro =
          "Code accepted. Recovery codes, for when the phone is lost: each works once instead of "
          "a code, and they are shown only now, so store them somewhere safe:\n";
      SecretString text;
      text.append(kIntro);
      for (const auto& rc : *codes) {
        text.append("  ");
        text.append(rc.view());
        text.append('\n');
      }
      if (!ctx_.message(text.view(), false)) {
        return fail(AuthResult::kConvError, "conversation failed during enrollment");
      }
      // An answer proves the codes reached the screen (sshd shows messages with the next
      // prompt); without one nothing is saved.
      if (!ctx_.prompt("Press Enter once you have stored them: ", true)) {
        return fail(AuthResult::kConvError, "conversation failed during enrollment");
      }
    }
    totp::SaveOptions save;
    save.reset_state = true;  // the confirmation code is used up, like any accepted code
    std::optional<totp::Error> state_error;
    if (auto st = pending.save(store, user, clock_.now(), step, save, &state_error); !st) {
      std::string why = st.error().message;
      if (st.error().code == totp::Errc::kExists) {
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
          return fail(AuthResult::kEnrollFailed, "enrolled meanwhile by another login or root");
        }
        why = there.error().message;
      }
      tell("The new key could not be saved; nothing changed. Ask an administrator." + dead_entry,
           true);
      return fail(AuthResult::kUnavailable, "enrollment not saved: " + why);
    }
    // Saved, but when the state could not be written the confirmation code's use is not
    // recorded (the old state is stale under the new id): that code must not open this login,
    // or it opens a second one later (fail closed, like any login whose outcome cannot be
    // recorded). The key is kept: the app holds it, and the next login asks for a code.
    if (state_error) {
      tell("Two-factor authentication is set up for " + user.name +
               ", but this login could not be recorded. Ask an administrator; the app's codes "
               "will work once the problem is fixed.",
           true);
      return fail(AuthResult::kUnavailable,
                  "enrolled, but the login could not be recorded: " + state_error->message);
    }
    tell("Two-factor authentication is set up for " + user.name + ".", false);
    return fail(AuthResult::kEnrolled, "");
  }

  // One info message: what is happening, the QR code (UTF-8 half blocks), the key and the URI.
  // Built in one wiped buffer (SecretString wipes what its growth frees).
  bool show_setup(const totp::NewEnrollment& pending, const totp::User& user) {
    SecretString uri = pending.uri();
    auto drawing = totp::render_qr(uri.view(), totp::QrStyle::kUtf8);
    if (!drawing) return false;
    SecretString picture(std::move(drawing.value()));
    SecretString grouped = pending.secret_grouped();
    const std::string intro =
        "Two-factor authentication is required for " + user.name +
        ", and no authenticator app is set up yet. Set it up now: scan this QR code with an "
        "authenticator app (or type the key into it), then type the code it shows.\n\n";
    SecretString text;
    text.append(intro);
    text.append(picture.view());
    text.append("\nKey: ");
    text.append(grouped.view());
    text.append("\nURI: ");
    text.append(uri.view());
    text.append('\n');
    return ctx_.message(text.view(), false);
  }

  // The confirmation code of an enrollment. It never comes from PAM_AUTHTOK (that holds the
  // password).
  std::optional<SecretString> read_enroll_code() {
    return ctx_.prompt("Code from the app: ", args_.echo_code);
  }

  static std::string host_name() {
    char host[256] = "";
    if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "pbx-mfa";
    return host;
  }

  // Extra syslog lines with the `debug` argument: decisions, never codes or secrets.
  void debug(const std::string& text) {
    if (args_.debug) {
      ctx_.log(LogLevel::kDebug, "debug: user=" + printable(user_name_) + " " + text);
    }
  }

  void tell(const std::string& text, bool error) {
    if (!opts_.silent) ctx_.message(text, error);
  }

  void tell_locked(std::int64_t until) {
    std::int64_t left = std::max<std::int64_t>(1, until - clock_.now());
    tell("Too many wrong security codes. Try again in " + when_text(left) + ".", true);
  }

  // `from_authtok` tells whether the answer came from PAM_AUTHTOK rather than a prompt.
  std::optional<SecretString> read_code(int digits, bool& from_authtok) {
    from_authtok = false;
    if (args_.use_first_pass || args_.try_first_pass) {
      auto tok = ctx_.authtok();
      bool usable = tok && !tok->view().empty();
      if (usable && args_.try_first_pass) usable = looks_like_code(tok->view(), digits);
      if (usable) {
        from_authtok = true;
        return tok;
      }
      if (args_.use_first_pass) return SecretString(std::string());
    }
    if (args_.forward_pass) {
      return read_forwarded(digits, args_.prompt == "Security code: "
                                        ? "Password and security code: "
                                        : args_.prompt);
    }
    return ctx_.prompt(args_.prompt, args_.echo_code);
  }

  // "password" + "code" in one answer: the code is the trailing `digits` digits, or a trailing
  // recovery code; the password goes on to the next module as PAM_AUTHTOK.
  std::optional<SecretString> read_forwarded(int digits, const std::string& prompt) {
    auto both = ctx_.prompt(prompt, false);
    if (!both) return both;
    std::string_view all = both->view();
    std::size_t code_len = static_cast<std::size_t>(digits);
    bool digits_tail = all.size() >= code_len &&
                       std::all_of(all.end() - static_cast<std::ptrdiff_t>(code_len), all.end(),
                                   [](char c) { return c >= '0' && c <= '9'; });
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

  PamContext& ctx_;
  const AuthOptions& opts_;
  const totp::Clock& clock_;
  ModuleArgs args_;
  std::string user_name_;
  std::string rhost_;
  std::string detail_;
};

}  // namespace

int pam_code(AuthResult r) noexcept {
  switch (r) {
    case AuthResult::kAccepted:
    case AuthResult::kRecoveryAccepted:
    case AuthResult::kGrace:
    case AuthResult::kEnrolled:
    case AuthResult::kBreakGlass:
      return PAM_SUCCESS;
    case AuthResult::kExempt:
    case AuthResult::kNotRequired:
      return PAM_IGNORE;
    case AuthResult::kRejected:
    case AuthResult::kReplayed:
    case AuthResult::kLockedOut:
    case AuthResult::kNotEnrolled:
    case AuthResult::kEnrollFailed:
    case AuthResult::kUnknownUser:
      return PAM_AUTH_ERR;
    case AuthResult::kUnavailable:
    case AuthResult::kStoreUnreachable:
      return PAM_AUTHINFO_UNAVAIL;
    case AuthResult::kConvError:
      return PAM_CONV_ERR;
    case AuthResult::kNoMemory:
      return PAM_BUF_ERR;
    case AuthResult::kBadConfig:
    case AuthResult::kInternal:
      return PAM_SERVICE_ERR;
  }
  return PAM_SERVICE_ERR;
}

const char* result_name(AuthResult r) noexcept {
  switch (r) {
    case AuthResult::kAccepted:
      return "accepted";
    case AuthResult::kRecoveryAccepted:
      return "recovery-code-accepted";
    case AuthResult::kGrace:
      return "grace-period";
    case AuthResult::kBreakGlass:
      return "break-glass-accepted";
    case AuthResult::kEnrolled:
      return "enrolled-at-login";
    case AuthResult::kExempt:
      return "exempt";
    case AuthResult::kNotRequired:
      return "not-enrolled-not-required";
    case AuthResult::kRejected:
      return "wrong-code";
    case AuthResult::kReplayed:
      return "replayed-code";
    case AuthResult::kLockedOut:
      return "locked-out";
    case AuthResult::kNotEnrolled:
      return "not-enrolled";
    case AuthResult::kEnrollFailed:
      return "enrollment-failed";
    case AuthResult::kUnknownUser:
      return "unknown-user";
    case AuthResult::kUnavailable:
      return "unavailable";
    case AuthResult::kStoreUnreachable:
      return "store-unavailable";
    case AuthResult::kBadConfig:
      return "bad-config";
    case AuthResult::kConvError:
      return "conversation-error";
    case AuthResult::kNoMemory:
      return "out-of-memory";
    case AuthResult::kInternal:
      return "internal-error";
  }
  return "internal-error";
}

int authenticate(PamContext& ctx, const std::vector<std::string>& args, const AuthOptions& opts,
                 const totp::Clock& clock) noexcept {
  AuthResult r = AuthResult::kInternal;
  try {
    Flow flow(ctx, opts, clock);
    try {
      r = flow.run(args);
    } catch (const std::bad_alloc&) {
      r = AuthResult::kNoMemory;
      flow.set_detail("out of memory");
    } catch (const std::exception& e) {
      r = AuthResult::kInternal;
      flow.set_detail(e.what());
    }
    flow.log_outcome(r);
  } catch (const std::bad_alloc&) {
    r = AuthResult::kNoMemory;
  } catch (...) {
    r = AuthResult::kInternal;
  }
  // An exception must never turn into success: only a completed flow decides that.
  return pam_code(r);
}

}  // namespace pbx::pam

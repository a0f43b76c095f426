#include "authenticate.hpp"

#include <algorithm>
#include <ctime>
#include <exception>
#include <new>

#include "flow.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/devices.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/requirement.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::pam {
namespace {

using totp::SecretString;

constexpr unsigned kFailDelayUs = 2'000'000;  // as pam_unix

// Log fields stay on one line and printable, whatever a user name or host name holds. A
// name=value field escapes ' ' and '"' too, so that a name cannot forge the next field.
constexpr totp::EscapeSet kLogField{" \"", 128, "..."};
// The free text in parentheses at the end of the outcome line.
constexpr totp::EscapeSet kLogDetail{"", 400, "..."};

std::string printable(std::string_view s, const totp::EscapeSet& set = kLogField) {
  return totp::escape_field(s, set);
}

std::string when_text(std::int64_t seconds) {
  if (seconds < 60) return std::to_string(seconds) + " second" + (seconds == 1 ? "" : "s");
  std::int64_t minutes = (seconds + 59) / 60;
  return std::to_string(minutes) + " minute" + (minutes == 1 ? "" : "s");
}

// "2026-12-05 03:12:07 UTC": the local time with the zone's abbreviation.
std::string local_time_text(std::int64_t t) {
  const auto when = static_cast<std::time_t>(t);
  std::tm tm{};
  if (::localtime_r(&when, &tm) == nullptr) return "an unknown time";
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
  if (n == 0) return "an unknown time";
  return std::string(buf, n);
}

}  // namespace

// The log detail of an accepted temp code: who issued it and how many uses are left, never
// the code.
std::string Flow::temp_code_detail(const totp::Outcome& outcome) {
  return "temp code issued by " + printable(outcome.temp_code_issuer) + ", " +
         std::to_string(outcome.temp_code_uses_left) + " use" +
         (outcome.temp_code_uses_left == 1 ? "" : "s") + " left";
}

AuthResult Flow::run(const std::vector<std::string>& args) {
  auto parsed = parse_module_args(args, opts_.trusted_uid);
  if (!parsed) return finish(AuthResult::kBadConfig, parsed.error().message);
  args_ = std::move(parsed.value());
  text_display_ = resolve_display(args_.enroll_display, ctx_.service()) == EnrollDisplay::kText;
  if (!args_.nodelay) ctx_.fail_delay(kFailDelayUs);

  auto name = ctx_.user();
  if (!name || name->empty()) return finish(AuthResult::kConvError, "no user name");
  user_name_ = *name;
  rhost_ = ctx_.rhost();

  // Where the login comes from is known before the account: from an exempt network no name is
  // looked up at all.
  if (totp::in_exempt_network(args_.config, rhost_)) {
    return finish(AuthResult::kExempt, "exempt network");
  }
  auto user = totp::lookup_user(user_name_);
  if (!user) {
    if (user.error().code != totp::Errc::kNoUser) {
      return finish(AuthResult::kUnavailable, user.error().message);
    }
    // Ask anyway so an unknown name looks like any other.
    return ask_then(AuthResult::kUnknownUser, "unknown user");
  }
  // The network was decided above, so an exemption here is a group's. The per-user mark
  // (pbx-mfa require) lives in the store: an exempt group wins over it and is decided here,
  // before the store is opened; the mark is read below with the status the flow needs anyway.
  auto requirement = totp::requirement_for(args_.config, *user, rhost_, opts_.group_lookup);
  if (requirement && requirement->kind == totp::RequirementKind::kExempt) {
    return finish(AuthResult::kExempt, "exempt group");
  }

  auto opened = totp::open_store(args_.config);
  if (!opened) return finish(AuthResult::kBadConfig, opened.error().message);
  store_ = std::move(opened.value());
  totp::Store& store = *store_;
  totp::Verifier verifier(args_.config, store, clock_);

  auto status = verifier.status(*user);
  if (!status) return store_failed(status.error(), nullptr);
  // The mark comes before the require groups (requirement.hpp): a marked user is required even
  // when a require group cannot be looked up.
  const bool marked = status->state.required.on;
  if (!requirement && !marked) {
    return finish(AuthResult::kGroupLookupFailed, requirement.error().message);
  }
  std::string required_by = "marked";
  if (requirement && requirement->required()) required_by = requirement->reason;
  const bool required = marked || (requirement && requirement->required());
  if (args_.debug) {  // the line is not even built without `debug`
    debug(std::string("required=") + (required ? "yes (" + required_by + ")" : "no") +
          " enrolled=" + (status->enrolled ? "yes" : "no") +
          " locked=" + (status->locked ? "yes" : "no") +
          " temp_code=" + (status->temp_code_active ? "active" : "none") +
          " display=" + (text_display_ ? "text" : "terminal"));
  }
  if (!status->enrolled) {
    if (!required) return finish(AuthResult::kNotRequired, "not enrolled, not required");
    // PAM_SILENT: the QR code and the key could not be shown, so there is nothing to confirm.
    if (args_.config.enroll_at_login && !opts_.silent) {
      if (args_.config.enroll_with_code) return enroll_with_code(*user, store, verifier, *status);
      return enroll_now(*user, store, "");
    }
    return ask_then(AuthResult::kNotEnrolled, "required (" + required_by + ") but not enrolled");
  }
  if (status->locked) {
    tell_locked(status->state.locked_until);
    return finish(AuthResult::kLockedOut, "locked out");
  }
  if (args_.config.grace_period > 0 && !rhost_.empty()) {
    auto grace = verifier.in_grace(*user, rhost_);
    if (!grace) return store_failed(grace.error(), nullptr);
    if (*grace) return finish(AuthResult::kGrace, "within grace period");
  }

  // Every device's code length counts (a 6- and an 8-digit device). forward_pass may need to
  // tell which trailing digits are the code: then the enrollment is read once and every device
  // checked, nothing recorded (the verifier below decides and records).
  CodeLengths lengths{code_lengths(status->devices, status->digits), nullptr};
  std::optional<totp::Result<totp::Enrollment>> loaded;
  if (lengths.digits.size() > 1) {
    lengths.matches = [&](std::string_view candidate) {
      if (!loaded) loaded.emplace(store.load(*user));
      return *loaded &&
             totp::match_existing_device(**loaded, candidate, args_.config.window, clock_.now())
                 .has_value();
    };
  }
  bool from_authtok = false;
  auto code = read_code(lengths, from_authtok);
  loaded.reset();  // the secrets are not kept longer than the split needs them
  if (!code) return finish(AuthResult::kConvError, "conversation failed");
  auto verified = verifier.verify(*user, code->view(), rhost_);
  if (verified && from_authtok && args_.try_first_pass &&
      verified->verdict == totp::Verdict::kRejected && verified->locked_until <= clock_.now()) {
    // try_first_pass: the earlier module's token was not our code after all; ask for it.
    code = ask_code();
    if (!code) return finish(AuthResult::kConvError, "conversation failed");
    verified = verifier.verify(*user, code->view(), rhost_);
  }
  return judge(verified, *code);
}

// What the verifier said about `code` (or the error it could not say it for), as the login's
// outcome.
AuthResult Flow::judge(const totp::Result<totp::Outcome>& verified, const SecretString& code) {
  if (!verified) return store_failed(verified.error(), &code);
  const totp::Outcome& outcome = *verified;
  switch (outcome.verdict) {
    case totp::Verdict::kAccepted:
      device_ = outcome.device;
      tell_failures(outcome);
      return finish(AuthResult::kAccepted, "");
    case totp::Verdict::kRecoveryAccepted:
      tell("Recovery code accepted. " + std::to_string(outcome.recovery_left) + " recovery code" +
               (outcome.recovery_left == 1 ? "" : "s") +
               " left; make new ones with 'pbx-mfa recovery-codes'.",
           false);
      tell_failures(outcome);
      return finish(AuthResult::kRecoveryAccepted,
                    "recovery codes left " + std::to_string(outcome.recovery_left));
    case totp::Verdict::kRejected:
    case totp::Verdict::kReplayed: {
      AuthResult r = outcome.verdict == totp::Verdict::kRejected ? AuthResult::kRejected
                                                                 : AuthResult::kReplayed;
      if (r == AuthResult::kReplayed) device_ = outcome.device;
      std::string detail = "failures " + std::to_string(outcome.failures);
      if (outcome.locked_until > clock_.now()) {
        // This counted failure locked the user (an attempt while locked is kLockedOut).
        tell_locked(outcome.locked_until);
        detail += ", now locked out";
        return finish(r, detail, "locked-out");
      }
      return finish(r, detail);
    }
    case totp::Verdict::kLockedOut:
      tell_locked(outcome.locked_until);
      return finish(AuthResult::kLockedOut, "locked out");
    case totp::Verdict::kNotEnrolled:
      return finish(AuthResult::kNotEnrolled, "enrollment removed during login");
    case totp::Verdict::kTempCodeAccepted: {
      const int left = outcome.temp_code_uses_left;
      tell("Temporary access code accepted (" + std::to_string(left) + " use" +
               (left == 1 ? "" : "s") +
               " left). Set up your authenticator again: pbx-mfa enroll --force",
           false);
      tell_failures(outcome);
      return finish(AuthResult::kTempCodeAccepted, temp_code_detail(outcome));
    }
  }
  return finish(AuthResult::kInternal, "unexpected verdict");
}

// The store could not answer: PAM_AUTHINFO_UNAVAIL, and when the database cannot be reached
// at all, the break-glass path below.
AuthResult Flow::store_failed(const totp::Error& e, const SecretString* typed) {
  if (e.code == totp::Errc::kUnavailable) return unreachable(e, typed);
  return finish(AuthResult::kUnavailable, e.message);
}

// The database cannot be reached: fail closed, unless this host has break-glass codes and
// the user types one (`typed`: the code already read, when the database went away between
// the first look and the check). Wrong break-glass answers are counted on this host; after
// kBreakGlassMaxFailures of them none is checked until root unlocks.
AuthResult Flow::unreachable(const totp::Error& e, const SecretString* typed) {
  auto status = totp::break_glass_status(args_.config);
  if (!status) {
    return finish(AuthResult::kStoreUnreachable, e.message + "; " + status.error().message);
  }
  if (status->left <= 0) {
    return finish(AuthResult::kStoreUnreachable, e.message + "; no break-glass codes on this host");
  }
  if (status->locked()) return break_glass_locked(e, status->failures);
  std::optional<SecretString> code;
  if (typed == nullptr) {
    tell(
        "The two-factor database cannot be reached: a break-glass code of this server is "
        "needed.",
        false);
    bool from_authtok = false;
    code = read_code(args_.config.digits, from_authtok);
    if (!code) return finish(AuthResult::kConvError, "conversation failed");
    typed = &*code;
  }
  auto answer = totp::answer_break_glass(args_.config, typed->view());
  if (!answer) {
    return finish(AuthResult::kStoreUnreachable, e.message + "; " + answer.error().message);
  }
  switch (answer->verdict) {
    case totp::BreakGlassVerdict::kNotACode:
      return finish(AuthResult::kStoreUnreachable, e.message + "; no break-glass code given");
    case totp::BreakGlassVerdict::kLocked:  // locked by another login since the look above
      return break_glass_locked(e, answer->failures);
    case totp::BreakGlassVerdict::kWrong: {
      std::string detail = e.message + "; wrong break-glass code, " +
                           std::to_string(answer->failures) + " of " +
                           std::to_string(totp::kBreakGlassMaxFailures) + " wrong answers";
      if (answer->failures >= totp::kBreakGlassMaxFailures) {
        detail += ", break-glass now locked on this host";
        return finish(AuthResult::kBreakGlassWrong, detail, "break-glass-locked");
      }
      return finish(AuthResult::kBreakGlassWrong, detail);
    }
    case totp::BreakGlassVerdict::kAccepted:
      return finish(AuthResult::kBreakGlass, e.message + "; break-glass code used, " +
                                                 std::to_string(answer->left) + " left");
  }
  return finish(AuthResult::kInternal, "unexpected break-glass verdict");
}

// Break-glass is locked on this host: no answer is read or checked.
AuthResult Flow::break_glass_locked(const totp::Error& e, int failures) {
  tell(
      "The two-factor database cannot be reached, and this server's break-glass codes are "
      "locked after too many wrong ones.",
      true);
  return finish(AuthResult::kBreakGlassLocked,
                e.message + "; break-glass locked on this host after " + std::to_string(failures) +
                    " wrong answers (root: pbx-mfa break-glass --unlock)");
}

// Reads an answer exactly as for an enrolled user, then refuses: the prompts must not tell
// an unknown or unenrolled user from an enrolled one.
AuthResult Flow::ask_then(AuthResult r, std::string detail) {
  bool from_authtok = false;
  auto ignored = read_code(args_.config.digits, from_authtok);
  if (!ignored) return finish(AuthResult::kConvError, "conversation failed");
  if (from_authtok && args_.try_first_pass) {
    ignored = ask_code();
    if (!ignored) return finish(AuthResult::kConvError, "conversation failed");
  }
  return finish(r, std::move(detail));
}

void Flow::log_outcome(AuthResult r) {
  std::string line = "service=" + printable(ctx_.service()) + " user=" + printable(user_name_) +
                     " rhost=" + printable(rhost_) + " outcome=";
  line += result_name(r);
  // The device of an accepted or replayed TOTP code: a name of [a-z0-9-], escaped all the same.
  if (!device_.empty()) line += " device=" + printable(device_);
  if (!detail_.empty()) line += " (" + printable(detail_, kLogDetail) + ")";
  ctx_.log(log_level(r), line);
  if (store_) {
    try {  // a line that cannot be built changes no outcome
      const std::string notice = store_->take_notice();
      if (!notice.empty()) {
        ctx_.log(LogLevel::kWarning,
                 "user=" + printable(user_name_) + " " + printable(notice, kLogDetail));
      }
    } catch (const std::exception&) {
      // nothing to do: the outcome's line is written, the notice is lost
    }
  }
  record_event(r);
}

// The login's security event, if it has one: a plain outcome's from its row, a transition's
// from finish(). Nothing is opened for a login without one (the common path: an accepted or a
// wrong code). Never a code or secret: the detail is the log line's.
void Flow::record_event(AuthResult r) {
  std::string_view kind = !event_.empty() ? event_ : outcome_row(r).event;
  if (kind.empty() || !store_) return;
  totp::Event e = totp::make_event(kind, clock_);
  e.service = ctx_.service();
  e.user = user_name_;
  e.rhost = totp::rhost_text(rhost_);
  if (!detail_.empty()) e.detail = printable(detail_, kLogDetail);
  if (auto st = store_->append_event(e); !st) {
    ctx_.log(LogLevel::kError, "event log: service=" + printable(e.service) +
                                   " user=" + printable(user_name_) +
                                   " event=" + std::string(kind) + " not recorded (" +
                                   printable(st.error().message, kLogDetail) + ")");
  }
}

// Extra syslog lines with the `debug` argument: decisions, never codes or secrets.
void Flow::debug(const std::string& text) {
  if (args_.debug) ctx_.log(LogLevel::kDebug, "debug: user=" + printable(user_name_) + " " + text);
}

void Flow::tell(const std::string& text, bool error) {
  if (!opts_.silent) say(text, error);
}

bool Flow::say(std::string_view text, bool error) {
  if (!text_display_) return ctx_.message(text, error);
  return ctx_.message(ascii_text(text).view(), error);
}

std::optional<SecretString> Flow::ask(std::string_view text, bool echo) {
  if (!text_display_) return ctx_.prompt(text, echo);
  return ctx_.prompt(ascii_text(text).view(), echo);
}

SecretString ascii_text(std::string_view text) {
  SecretString out;
  out.reserve(text.size());
  bool in_sequence = false;  // after a byte >= 0x80: its continuation bytes add no '?'
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      const bool continuation = c < 0xC0;
      if (!(continuation && in_sequence)) out.append('?');
      in_sequence = true;
      continue;
    }
    in_sequence = false;
    out.append((c >= 0x20 && c < 0x7F) || c == '\n' ? ch : '?');
  }
  return out;
}

void Flow::tell_locked(std::int64_t until) {
  std::int64_t left = std::max<std::int64_t>(1, until - clock_.now());
  tell("Too many wrong security codes. Try again in " + when_text(left) + ".", true);
}

// A success after counted failures: how many, and the last one's host and time. Not for a
// grace period or an exemption (no code was asked for); never under PAM_SILENT.
void Flow::tell_failures(const totp::Outcome& outcome) {
  const int n = outcome.failures_before;
  if (n <= 0) return;
  std::string text =
      std::to_string(n) + " failed attempt" + (n == 1 ? "" : "s") + " since your last login";
  if (outcome.last_failure > 0) {
    const std::string host = outcome.last_failure_rhost.empty()
                                 ? "this host (no remote address)"
                                 : totp::rhost_text(outcome.last_failure_rhost);
    text += ", the last from " + host + " at " + local_time_text(outcome.last_failure);
  }
  tell(text + ".", false);
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

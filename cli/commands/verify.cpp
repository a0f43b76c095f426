// verify: check a code exactly as a login would, using it up.
#include "commands.hpp"

namespace pbx::cli {

namespace {

int verdict_exit(totp::Verdict v) {
  switch (v) {
    case totp::Verdict::kAccepted:
    case totp::Verdict::kRecoveryAccepted:
    case totp::Verdict::kTempCodeAccepted:
      return kExitOk;
    case totp::Verdict::kRejected:
    case totp::Verdict::kReplayed:
      return kExitRejected;
    case totp::Verdict::kLockedOut:
      return kExitLocked;
    case totp::Verdict::kNotEnrolled:
      return kExitNotEnrolled;
  }
  return kExitInternal;
}

// The code to check: asked for without echo when none is given, one line of standard input
// for "-", or (still accepted, with a warning) the argument itself.
std::optional<totp::SecretString> code_to_check(Session& s, totp::SecretString given,
                                                bool given_at_all) {
  if (given_at_all && given.view() != "-") {
    // Another local user sees it in ps or /proc/PID/cmdline while pbx-mfa runs; with the file
    // store the code also works on the other hosts of a fleet until its step has passed.
    s.err() << "pbx-mfa: warning: a code on the command line can be seen by other users of "
               "this host while pbx-mfa runs (ps, /proc); give - and the code on standard "
               "input, or no code to be asked for it\n";
    return given;
  }
  totp::SecretString line;
  if (given_at_all) {
    if (s.env.in == nullptr || !read_line(*s.env.in, line)) return std::nullopt;
  } else {
    if (!s.env.read_secret) return std::nullopt;
    auto typed = s.env.read_secret("Code: ");
    if (!typed) return std::nullopt;
    line = std::move(*typed);
  }
  if (!line.empty() && line.view().back() == '\r') line.pop_back();
  return line;
}

}  // namespace

Command add_verify(CLI::App& app) {
  auto* sub = app.add_subcommand("verify", "check a code exactly as a login would (uses it up)");
  auto user = std::make_shared<std::string>();
  auto code = std::make_shared<std::string>();
  sub->add_option("--user", *user, "another user (root only)");
  auto* code_opt =
      sub->add_option("CODE", *code,
                      "- to read the code (or a recovery code) from standard input; without it, "
                      "pbx-mfa asks for it without echo. A code given here works but other users "
                      "can see it (ps)");
  return {sub, [user, code, code_opt](Session& s) -> int {
            const bool given = code_opt->count() > 0;
            auto u = target_user(s, *user);
            if (!u) return fail(s, u.error());
            auto read = code_to_check(s, totp::SecretString(std::move(*code)), given);
            if (!read || read->empty()) return fail(s, kExitUsage, "no code given");
            totp::SecretString typed(std::move(*read));
            auto store = open_store(s);
            if (!store) return fail(s, store.error());
            totp::Verifier verifier(s.config, **store, *s.env.clock);
            auto verified = verifier.verify(*u, typed.view());
            if (!verified) {
              audit(s, "verify user=" + audit_field(u->name) + " outcome=error");
              return fail(s, verified.error());
            }
            const totp::Outcome& outcome = *verified;
            std::string line = "verify user=" + audit_field(u->name) +
                               " outcome=" + totp::verdict_name(outcome.verdict);
            if (outcome.locked_until > s.env.clock->now()) {
              line += " (failures " + std::to_string(outcome.failures) + ", locked out until " +
                      iso8601(outcome.locked_until).get<std::string>() + ")";
            }
            audit(s, line);
            switch (outcome.verdict) {
              case totp::Verdict::kAccepted:
                s.out() << "code accepted\n";
                break;
              case totp::Verdict::kRecoveryAccepted:
                s.out() << "recovery code accepted; " << outcome.recovery_left << " left\n";
                break;
              case totp::Verdict::kRejected:
                s.err() << "pbx-mfa: code rejected\n";
                break;
              case totp::Verdict::kReplayed:
                s.err() << "pbx-mfa: code rejected: already used\n";
                break;
              case totp::Verdict::kLockedOut:
                s.err() << "pbx-mfa: locked out until "
                        << iso8601(outcome.locked_until).get<std::string>() << "\n";
                break;
              case totp::Verdict::kNotEnrolled:
                s.err() << "pbx-mfa: " << u->name << " is not enrolled\n";
                break;
              case totp::Verdict::kTempCodeAccepted:
                s.out() << "temporary access code accepted; " << outcome.temp_code_uses_left
                        << " use" << (outcome.temp_code_uses_left == 1 ? "" : "s") << " left\n";
                break;
            }
            return verdict_exit(outcome.verdict);
          }};
}

}  // namespace pbx::cli

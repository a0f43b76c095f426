// verify: check a code exactly as a login would, using it up.
#include "commands.hpp"

namespace pbx::cli {

namespace {

int verdict_exit(totp::Verdict v) {
  switch (v) {
    case totp::Verdict::kAccepted:
    case totp::Verdict::kRecoveryAccepted:
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

}  // namespace

Command add_verify(CLI::App& app) {
  auto* sub = app.add_subcommand("verify", "check a code exactly as a login would (uses it up)");
  auto user = std::make_shared<std::string>();
  auto code = std::make_shared<std::string>();
  sub->add_option("--user", *user, "another user (root only)");
  sub->add_option("CODE", *code, "the code (or a recovery code)")->required();
  return {sub, [user, code](Session& s) -> int {
            totp::SecretString typed(std::move(*code));
            auto u = target_user(s, *user);
            if (!u) return fail(s, u.error());
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
            }
            return verdict_exit(outcome.verdict);
          }};
}

}  // namespace pbx::cli

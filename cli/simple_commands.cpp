// status, verify, reset, unlock: small subcommands over the verifier and the store.
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
    case totp::Verdict::kError:
      return kExitStore;
  }
  return kExitInternal;
}

}  // namespace

Command add_status(CLI::App& app) {
  auto* sub = app.add_subcommand("status", "show a user's enrollment, failures and lockout");
  auto user = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("--user", *user, "another user (root only)");
  sub->add_flag("--json", *json, "print one JSON object");
  return {sub, [user, json](Session& s) -> int {
            auto u = target_user(s, *user);
            if (!u) return fail(s, u.error());
            auto store = open_store(s);
            if (!store) return fail(s, store.error());
            totp::Verifier verifier(s.config, **store, *s.env.clock);
            auto st = verifier.status(*u);
            if (!st) return fail(s, st.error());
            if (*json) {
              nlohmann::json j = {{"user", u->name}, {"enrolled", st->enrolled}};
              if (st->enrolled) {
                j["algorithm"] = totp::algorithm_name(st->algorithm);
                j["digits"] = st->digits;
                j["period"] = st->period;
                j["recovery_codes_left"] = st->recovery_left;
                j["failures"] = st->state.failures;
                j["locked_until"] = st->locked ? iso8601(st->state.locked_until) : nullptr;
                j["last_success"] = iso8601(st->state.last_success);
              } else {
                for (const char* k : {"algorithm", "digits", "period", "recovery_codes_left",
                                      "failures", "locked_until", "last_success"}) {
                  j[k] = nullptr;
                }
              }
              print_json(s, j);
            } else if (!st->enrolled) {
              s.out() << u->name << ": not enrolled\n";
            } else {
              s.out() << u->name << ": enrolled (" << totp::algorithm_name(st->algorithm) << ", "
                      << st->digits << " digits, " << st->period << " s)\n"
                      << "  recovery codes left: " << st->recovery_left << "\n"
                      << "  failures: " << st->state.failures << "\n"
                      << "  locked until: "
                      << (st->locked ? iso8601(st->state.locked_until).get<std::string>()
                                     : std::string("not locked"))
                      << "\n"
                      << "  last success: "
                      << (st->state.last_success > 0
                              ? iso8601(st->state.last_success).get<std::string>()
                              : std::string("never"))
                      << "\n";
            }
            return st->enrolled ? kExitOk : kExitNotEnrolled;
          }};
}

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
            auto outcome = verifier.verify(*u, typed.view());
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
              case totp::Verdict::kError:
                s.err() << "pbx-mfa: "
                        << (outcome.error ? outcome.error->message : std::string("store error"))
                        << "\n";
                if (outcome.error) return exit_for(*outcome.error);
                break;
            }
            return verdict_exit(outcome.verdict);
          }};
}

// A root-only subcommand acting on --user U through the store: reset and unlock.
Command add_admin_command(CLI::App& app, const char* name, const char* description,
                          std::function<int(Session&, totp::Store&, const totp::User&)> act) {
  auto* sub = app.add_subcommand(name, description);
  auto user = std::make_shared<std::string>();
  sub->add_option("--user", *user, "the user")->required();
  return {sub, [user, act = std::move(act)](Session& s) -> int {
            auto u = target_user(s, *user, true);
            if (!u) return fail(s, u.error());
            auto store = open_store(s);
            if (!store) return fail(s, store.error());
            return act(s, **store, *u);
          }};
}

Command add_reset(CLI::App& app) {
  return add_admin_command(
      app, "reset", "remove a user's secret and state (root)",
      [](Session& s, totp::Store& store, const totp::User& u) -> int {
        if (auto st = store.remove(u); !st) return fail(s, st.error());
        audit(s, "reset user=" + audit_field(u.name) + " (secret and state removed)");
        s.out() << u.name << ": secret and state removed; the next enrollment starts afresh\n";
        return kExitOk;
      });
}

Command add_unlock(CLI::App& app) {
  return add_admin_command(
      app, "unlock", "clear a user's failures and lockout (root)",
      [](Session& s, totp::Store& store, const totp::User& u) -> int {
        totp::Verifier verifier(s.config, store, *s.env.clock);
        if (auto st = verifier.unlock(u); !st) return fail(s, st.error());
        audit(s, "unlock user=" + audit_field(u.name) + " (failures and lockout cleared)");
        s.out() << u.name << ": failures and lockout cleared\n";
        return kExitOk;
      });
}

}  // namespace pbx::cli

// status: a user's enrollment, whether a second factor is required of them and why, failures
// and lockout, as text or one JSON object.
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "pbx/totp/requirement.hpp"

namespace pbx::cli {

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
            // No remote host: where a login comes from is unknown here, so no network
            // exemption applies (pbx-mfa(1) STATUS).
            auto required = totp::requirement_for(s.config, *u, std::nullopt);
            if (!required) return fail(s, required.error());
            const totp::Requirement& need = *required;
            const std::string need_line = std::string("  required: ") +
                                          (need.required() ? "yes" : "no") + " (" + need.reason +
                                          ")\n";
            if (*json) {
              nlohmann::json j = {{"user", u->name},
                                  {"enrolled", st->enrolled},
                                  {"required", need.required()},
                                  {"required_by", need.reason}};
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
              s.out() << u->name << ": not enrolled\n" << need_line;
            } else {
              s.out() << u->name << ": enrolled (" << totp::algorithm_name(st->algorithm) << ", "
                      << st->digits << " digits, " << st->period << " s)\n"
                      << need_line << "  recovery codes left: " << st->recovery_left << "\n"
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

}  // namespace pbx::cli

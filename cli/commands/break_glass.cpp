// break-glass: this host's one-time codes for when the database of store = postgresql is down;
// --status shows what is left and how many wrong answers were given, --unlock forgets them.
#include "pbx/totp/break_glass.hpp"

#include "commands.hpp"
#include "events_record.hpp"

namespace pbx::cli {
namespace {

int show_status(Session& s, bool json) {
  auto st = totp::break_glass_status(s.config);
  if (!st) return fail(s, st.error());
  if (json) {
    print_json(s, {{"codes", st->codes},
                   {"left", st->left},
                   {"wrong_answers", st->failures},
                   {"max_wrong_answers", totp::kBreakGlassMaxFailures},
                   {"locked", st->locked()}});
    return kExitOk;
  }
  s.out() << "Break-glass codes on this host: " << st->left << " unused of " << st->codes
          << "; wrong answers: " << st->failures << " of " << totp::kBreakGlassMaxFailures;
  if (st->locked()) s.out() << "; LOCKED (pbx-mfa break-glass --unlock)";
  s.out() << "\n";
  return kExitOk;
}

int unlock(Session& s, bool json) {
  auto forgotten = totp::unlock_break_glass(s.config);
  if (!forgotten) return fail(s, forgotten.error());
  audit(s, "break-glass unlock wrong_answers=" + std::to_string(*forgotten));
  if (json) {
    print_json(s, {{"wrong_answers_forgotten", *forgotten}});
    return kExitOk;
  }
  s.out() << "Break-glass unlocked on this host: " << *forgotten
          << " wrong answers forgotten; the codes are unchanged.\n";
  return kExitOk;
}

}  // namespace

Command add_break_glass(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "break-glass", "make this host's one-time codes for when the database is down (root)");
  auto count = std::make_shared<int>(5);
  auto json = std::make_shared<bool>(false);
  auto status = std::make_shared<bool>(false);
  auto unlock_flag = std::make_shared<bool>(false);
  auto* count_opt = sub->add_option("--count", *count, "how many codes (1 to 20, default 5)")
                        ->check(CLI::Range(1, totp::kMaxBreakGlassCodes));
  auto* status_opt = sub->add_flag("--status", *status,
                                   "show unused codes and wrong answers instead of making codes");
  sub->add_flag("--unlock", *unlock_flag,
                "forget the wrong answers that locked break-glass; keep the codes")
      ->excludes(count_opt)
      ->excludes(status_opt);
  status_opt->excludes(count_opt);
  sub->add_flag("--json", *json, "print one JSON object");
  return {sub, [count, json, status, unlock_flag](Session& s) -> int {
            if (auto st = need_database(s); !st) return fail(s, st.error());
            if (*status) return show_status(s, *json);
            if (*unlock_flag) return unlock(s, *json);
            auto codes = totp::make_break_glass_codes(s.config, *count);
            if (!codes) return fail(s, codes.error());
            audit(s, "break-glass codes=" + std::to_string(*count) +
                         " (earlier codes and wrong answers replaced)");
            // This host's codes: this host's log, which is written when the database is down
            // too (pbx-mfa events on the database store reads it with the table). For no user.
            record_event(s, "break-glass-issued", "",
                         std::to_string(*count) + " new break-glass code" +
                             (*count == 1 ? "" : "s") +
                             " for this host, earlier codes and wrong answers replaced",
                         nullptr, EventLog::kThisHost);
            if (*json) {
              nlohmann::json j = {{"codes", nlohmann::json::array()}};
              for (const auto& c : *codes) j["codes"].push_back(c.str());
              print_secret_json(s, j);
              return kExitOk;
            }
            s.out() << "Break-glass codes for this server. Each works once, for any user, and "
                       "only while the database cannot be reached; earlier codes no longer "
                       "work. Keep them offline, like a root password:\n";
            for (const auto& c : *codes) s.out() << "  " << c.str() << "\n";
            return kExitOk;
          }};
}

}  // namespace pbx::cli

// reset: remove a user's secret and state (root), so the next enrollment starts afresh. What
// belongs to the account (the required mark, an active temp code) stays.
#include "commands.hpp"
#include "events_record.hpp"

namespace pbx::cli {

Command add_reset(CLI::App& app) {
  return add_admin_command(
      app, "reset", "remove a user's secret and state (root)",
      [](Session& s, totp::Store& store, const totp::User& u, bool json) -> int {
        totp::Verifier verifier(s.config, store, *s.env.clock);
        auto report = verifier.reset(u);
        if (!report) return fail(s, report.error());
        std::string note;
        if (report->kept_mark || report->kept_temp_code) {
          note = std::string("; kept: ") + (report->kept_mark ? "the required mark" : "") +
                 (report->kept_mark && report->kept_temp_code ? " and " : "") +
                 (report->kept_temp_code ? "the active temp code" : "");
        } else if (report->state_unreadable) {
          note =
              "; the state did not read and was removed whole (a required mark or temp code "
              "in it is gone: set them again)";
        }
        audit(s, "reset user=" + audit_field(u.name) + " (secret and state removed" + note + ")");
        record_event(s, "reset", u.name, "secret and state removed" + note, &store);
        if (json) {
          print_done(s, u.name, "reset");
        } else {
          s.out() << u.name << ": secret and state removed" << note
                  << "; the next enrollment starts afresh\n";
        }
        return kExitOk;
      });
}

}  // namespace pbx::cli

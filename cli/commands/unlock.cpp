// unlock: clear a user's failures and lockout (root).
#include "commands.hpp"
#include "events_record.hpp"

namespace pbx::cli {

Command add_unlock(CLI::App& app) {
  return add_admin_command(
      app, "unlock", "clear a user's failures and lockout (root)",
      [](Session& s, totp::Store& store, const totp::User& u, bool json) -> int {
        totp::Verifier verifier(s.config, store, *s.env.clock);
        if (auto st = verifier.unlock(u); !st) return fail(s, st.error());
        audit(s, "unlock user=" + audit_field(u.name) + " (failures and lockout cleared)");
        record_event(s, "unlock", u.name, "failures and lockout cleared", &store);
        if (json) {
          print_done(s, u.name, "unlock");
        } else {
          s.out() << u.name << ": failures and lockout cleared\n";
        }
        return kExitOk;
      });
}

}  // namespace pbx::cli

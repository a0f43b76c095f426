// reset: remove a user's secret and state (root), so the next enrollment starts afresh.
#include "commands.hpp"

namespace pbx::cli {

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

}  // namespace pbx::cli

// reset: remove a user's secret and state (root), so the next enrollment starts afresh. What
// belongs to the account (the required mark, an active temp code) stays.
#include "commands.hpp"

namespace pbx::cli {

Command add_reset(CLI::App& app) {
  return add_admin_command(
      app, "reset", "remove a user's secret and state (root)",
      [](Session& s, totp::Store& store, const totp::User& u) -> int {
        totp::Verifier verifier(s.config, store, *s.env.clock);
        if (auto st = verifier.reset(u); !st) return fail(s, st.error());
        auto kept = verifier.status(u);
        const bool temp = kept && kept->temp_code_active;
        const bool marked = kept && kept->state.required.on;
        std::string note;
        if (temp || marked) {
          note = std::string("; kept: ") + (marked ? "the required mark" : "") +
                 (temp && marked ? " and " : "") + (temp ? "the active temp code" : "");
        }
        audit(s, "reset user=" + audit_field(u.name) + " (secret and state removed" + note + ")");
        s.out() << u.name << ": secret and state removed" << note
                << "; the next enrollment starts afresh\n";
        return kExitOk;
      });
}

}  // namespace pbx::cli

// require: mark one user as required to use a second factor whatever the require groups say
// (root; fleet-wide with store = postgresql), or clear the mark with --off.
#include <string>

#include "commands.hpp"
#include "events_record.hpp"
#include "pbx/totp/requirement.hpp"

namespace pbx::cli {

Command add_require(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "require", "require a second factor of a user whatever the require groups say (root)");
  auto user = std::make_shared<std::string>();
  auto off = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  sub->add_option("--user", *user, "the user")->required();
  sub->add_flag("--off", *off, "remove the mark: the config's require and exempt rules decide");
  sub->add_flag("--json", *json, "print one JSON object");
  return {sub, [user, off, json](Session& s) -> int {
            s.batch = *json;
            auto u = target_user(s, *user, true);
            if (!u) return fail(s, u.error());
            auto store = open_store(s);
            if (!store) return fail(s, store.error());
            totp::Verifier verifier(s.config, **store, *s.env.clock);
            auto before = verifier.status(*u);
            if (!before) return fail(s, before.error());
            const bool was = before->state.required.on;
            const bool on = !*off;
            totp::RequiredMark mark;
            if (on) mark = {true, acting_user(s), s.env.clock->now()};
            // Unchanged: nothing is written (an earlier mark keeps who set it and when).
            if (was != on) {
              if (auto st = verifier.set_required(*u, mark); !st) return fail(s, st.error());
            }
            audit(s, std::string("require user=") + audit_field(u->name) + (on ? " on" : " off") +
                         (was == on ? " (unchanged)" : ""));
            // An unchanged mark is no event: nothing was written.
            if (was != on) {
              record_event(s, on ? "required" : "not-required", u->name,
                           on ? "marked as required" : "required mark removed", store->get());
            }

            auto need = totp::requirement_for(s.config, *u, std::nullopt, totp::lookup_group, on);
            if (*json) {
              // required: whether a second factor is now needed (null when undecidable).
              print_done(s, u->name, "require",
                         {{"marked", on},
                          {"changed", was != on},
                          {"required", need ? nlohmann::json(need->required()) : nullptr}});
            } else {
              s.out() << u->name << ": "
                      << (on ? (was ? "already marked as required" : "marked as required")
                             : (was ? "required mark removed" : "was not marked as required"))
                      << "\n";
            }
            if (!need) {
              s.err() << "pbx-mfa: the mark is saved, but whether " << u->name
                      << " is required could not be decided: " << need.error().message << "\n";
              return kExitOk;
            }
            if (!*json) {
              s.out() << "  required: " << (need->required() ? "yes" : "no") << " (" << need->reason
                      << ")\n";
            }
            if (on && need->kind == totp::RequirementKind::kExempt) {
              s.err() << "pbx-mfa: warning: " << u->name << " stays exempt (" << need->reason
                      << "): exempt_groups wins over the mark\n";
            }
            return kExitOk;
          }};
}

}  // namespace pbx::cli

// recovery-codes: replace a user's recovery codes with a fresh set and print it once.
#include "commands.hpp"
#include "events_record.hpp"
#include "pbx/totp/recovery.hpp"

namespace pbx::cli {
namespace {

// How many: config.recovery_codes, the current policy, rather than the previous count (which
// may come from an import of someone else's scratch codes, or from an older policy).
int replace_codes(Session& s, const std::string& requested, bool json) {
  auto user = target_user(s, requested);
  if (!user) return fail(s, user.error());
  const totp::User& u = *user;
  auto store = open_store(s);
  if (!store) return fail(s, store.error());

  // The state's used-code marks are indices into the stored set. Under the user's lock: save
  // the new set, then clear the marks, so no login sees new codes with old marks. The id stays:
  // a new one would also drop the replay mark of the last accepted TOTP code and the lockout.
  auto txn = (*store)->lock_state(u);
  if (!txn && !s.is_root()) {
    // The used-code marks are in the state, which is root's (state_dir): new codes without
    // clearing them would come out partly spent.
    return fail(s, exit_for(txn.error()),
                "new recovery codes need root where the state is root's; ask an administrator "
                "(sudo pbx-mfa recovery-codes --user " +
                    u.name + "): " + txn.error().message);
  }
  if (!txn) return fail(s, txn.error());
  auto enrollment = (*store)->load(u);
  if (!enrollment) {
    if (enrollment.error().code == totp::Errc::kNotEnrolled) {
      return fail(s, kExitNotEnrolled, u.name + " is not enrolled (run 'pbx-mfa enroll')");
    }
    return fail(s, enrollment.error());
  }
  totp::Enrollment& e = *enrollment;

  auto codes = totp::generate_recovery_codes(s.config.recovery_codes);
  if (!codes) return fail(s, codes.error());
  auto hashed = totp::hash_recovery_codes(*codes);  // today's cost, not the old file's
  if (!hashed) return fail(s, hashed.error());
  e.recovery = std::move(hashed.value());

  if (auto st = (*store)->save(u, e, true); !st) return fail(s, st.error());
  totp::UserState state = (*txn)->state();
  if (state.enrollment_id == e.id) state.used_recovery.clear();
  // Always committed: with the database store the new set is saved inside this transaction and
  // would be rolled back without it.
  if (auto st = (*txn)->commit(state); !st) {
    // Fails closed: with files some new codes count as used until this is fixed; with the
    // database nothing changed.
    return fail(s, exit_for(st.error()),
                "the new recovery codes may not have been saved (" + st.error().message +
                    "); run recovery-codes again");
  }

  audit(s, "recovery-codes user=" + audit_field(u.name) + " (" + std::to_string(codes->size()) +
               " new codes; the old ones no longer work)");
  record_event(s, "recovery-codes-replaced", u.name,
               codes->empty()
                   ? "recovery codes removed (recovery_codes = 0)"
                   : std::to_string(codes->size()) + " new recovery code" +
                         (codes->size() == 1 ? "" : "s") + ", the old ones no longer work",
               store->get());

  if (json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : *codes) list.push_back(c.str());
    nlohmann::json j = {{"user", u.name}, {"recovery_codes", std::move(list)}};
    print_secret_json(s, j);
    return kExitOk;
  }
  if (codes->empty()) {
    s.out() << u.name << ": recovery codes removed (recovery_codes = 0 in the config)\n";
    return kExitOk;
  }
  s.out() << u.name
          << ": new recovery codes; the old ones no longer work. Each works once; they "
             "are shown only now, so store them somewhere safe:\n";
  for (const auto& c : *codes) s.out() << "  " << c.str() << "\n";
  return kExitOk;
}

}  // namespace

Command add_recovery_codes(CLI::App& app) {
  auto* sub = app.add_subcommand("recovery-codes", "replace the recovery codes; prints them once");
  auto user = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("--user", *user, "another user (root only)");
  sub->add_flag("--json", *json, "print one JSON object");
  return {sub, [user, json](Session& s) -> int { return replace_codes(s, *user, *json); }};
}

}  // namespace pbx::cli

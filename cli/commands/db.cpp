// db init, db migrate [--from files]: set up and upgrade the shared database of
// store = postgresql.
#include "commands.hpp"
#include "pbx/totp/db_admin.hpp"

namespace pbx::cli {
namespace {

// db init, and db migrate without --from (upgrade only: never creates a schema or a key).
int db_init(Session& s, bool may_create) {
  if (auto st = need_database(s); !st) return fail(s, st.error());
  auto r = may_create ? totp::db_init(s.config) : totp::db_upgrade(s.config);
  if (!r) return fail(s, r.error());
  if (r->key_created) {
    s.out() << "created the fleet key " << s.config.fleet_key
            << " (root, 0400): copy it to every server of the fleet, the same way\n";
  }
  const bool rows_touched = r->enrollments_upgraded > 0 || r->states_upgraded > 0;
  if (r->from_version == r->to_version) {
    s.out() << "database schema is at version " << r->to_version
            << (rows_touched || !r->rows_left.empty() ? "" : "; nothing to do") << "\n";
  } else if (r->from_version == 0) {
    s.out() << "database schema created (version " << r->to_version << ")\n";
  } else {
    s.out() << "database schema upgraded from version " << r->from_version << " to "
            << r->to_version << "\n";
  }
  if (r->from_version > 0 && r->from_version < 2) {
    // The MACs vouch for the rows as they are now: whoever could write them before is trusted.
    s.out() << r->states_authenticated << " state row" << (r->states_authenticated == 1 ? "" : "s")
            << " authenticated under the fleet key as they are now";
    if (r->states_grace_dropped > 0) {
      s.out() << "; grace entries dropped from " << r->states_grace_dropped
              << " (those users type a code at their next login)";
    }
    if (r->states_unreadable > 0) {
      s.out() << "; " << r->states_unreadable
              << " unreadable, left without a MAC (refused at login, as before: "
                 "'pbx-mfa reset' those users and enroll them again)";
    }
    s.out() << "\n";
  }
  // Rows of format version 1 (one secret per user) rewritten as version 2 (devices).
  if (r->from_version > 0 && (r->from_version < 3 || rows_touched)) {
    s.out() << r->enrollments_upgraded << " enrollment" << (r->enrollments_upgraded == 1 ? "" : "s")
            << ", " << r->states_upgraded << " state" << (r->states_upgraded == 1 ? "" : "s")
            << " upgraded to format version 2 (enrollment ids, secrets and replay marks kept)\n";
  }
  if (r->events_table_created) {
    // A role that is not the owner (README: a separate owner for db init) needs its grant.
    s.out() << "events table pbx_mfa_event created (the fleet's one event log); a servers' role "
               "that does not own it needs: GRANT SELECT, INSERT ON pbx_mfa_event\n";
  }
  for (const auto& why : r->rows_left) s.err() << "pbx-mfa: " << why << "\n";
  if (!r->rows_left.empty()) {
    s.err() << "pbx-mfa: " << r->rows_left.size() << " row" << (r->rows_left.size() == 1 ? "" : "s")
            << " left as " << (r->rows_left.size() == 1 ? "it is" : "they are")
            << " (refused at login, as before): 'pbx-mfa reset' those users and enroll them "
               "again\n";
  }
  std::string rows = r->from_version > 0
                         ? " enrollments_upgraded=" + std::to_string(r->enrollments_upgraded) +
                               " states_upgraded=" + std::to_string(r->states_upgraded) +
                               " rows_left=" + std::to_string(r->rows_left.size())
                         : "";
  audit(s, std::string(may_create ? "db-init" : "db-upgrade") +
               " schema=" + std::to_string(r->to_version) + rows +
               (r->key_created ? " (fleet key created)" : ""));
  return kExitOk;
}

// Copies each enrollment of this host's files, with its state, into the database in one
// transaction per user: a user already in the database is kept as it is.
int db_migrate(Session& s) {
  if (auto st = need_database(s); !st) return fail(s, st.error());
  totp::Config files = s.config;
  files.store = "files";
  auto src = totp::open_store(files);
  if (!src) return fail(s, src.error());
  auto dst = open_store(s);
  if (!dst) return fail(s, dst.error());
  int copied = 0;
  int kept = 0;
  int failed = 0;
  for (const auto& name : totp::all_user_names()) {
    auto user = totp::lookup_user(name);
    if (!user) continue;
    auto e = (*src)->load(*user);
    if (!e) {
      if (e.error().code == totp::Errc::kNotEnrolled) continue;
      s.err() << "pbx-mfa: " << name << ": not copied: " << e.error().message << "\n";
      ++failed;
      continue;
    }
    auto state = (*src)->peek_state(*user);
    if (!state) {
      s.err() << "pbx-mfa: " << name << ": not copied: " << state.error().message << "\n";
      ++failed;
      continue;
    }
    totp::UserState next = *state;
    if (next.enrollment_id != e->id) {  // state of an earlier enrollment: starts afresh
      next = totp::UserState{};
      next.enrollment_id = e->id;
    }
    auto txn = (*dst)->lock_state(*user);
    if (!txn) return fail(s, txn.error());
    auto saved = (*dst)->save(*user, *e, /*overwrite=*/false);
    if (!saved && saved.error().code == totp::Errc::kExists) {
      s.out() << name << ": already in the database, kept\n";
      ++kept;
      continue;  // the transaction rolls back when txn goes away
    }
    if (!saved) return fail(s, saved.error());
    if (auto st = (*txn)->commit(next); !st) return fail(s, st.error());
    int left =
        static_cast<int>(e->recovery.hashes.size()) - static_cast<int>(next.used_recovery.size());
    s.out() << name << ": copied (" << left << " recovery code" << (left == 1 ? "" : "s")
            << " left, replay mark and failures kept)\n";
    audit(s, "db-migrate user=" + audit_field(name));
    ++copied;
  }
  s.out() << copied << " copied, " << kept << " already in the database, " << failed << " failed\n";
  return failed == 0 ? kExitOk : kExitStore;
}

}  // namespace

Command add_db(CLI::App& app) {
  auto* sub = app.add_subcommand("db", "set up the shared database of store = postgresql (root)");
  sub->require_subcommand(1, 1);
  auto* init = sub->add_subcommand("init", "create or upgrade the database schema");
  auto* migrate = sub->add_subcommand(
      "migrate",
      "upgrade the schema and its rows; with --from files, copy this host's enrollments and "
      "state into the database");
  auto from = std::make_shared<std::string>();
  migrate->add_option("--from", *from, "where the enrollments are now")
      ->check(CLI::IsMember({"files"}));
  // `from` is captured to keep --from's target alive while CLI11 parses into it.
  return {sub, [init, migrate, from](Session& s) -> int {
            if (init->parsed()) return db_init(s, /*may_create=*/true);
            if (migrate->parsed()) {
              return from->empty() ? db_init(s, /*may_create=*/false) : db_migrate(s);
            }
            return fail(s, kExitUsage, "db: init or migrate");
          }};
}

}  // namespace pbx::cli

// db init, db migrate [--from files], db rotate-key: set up, upgrade and re-key the shared
// database of store = postgresql.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "commands.hpp"
#include "events_record.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/seal.hpp"

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

// The steps of a rotation, for the messages that stop before one.
std::string rotation_procedure(const std::string& new_key, const std::string& old_key) {
  return "the procedure: (1) 'pbx-mfa db rotate-key --new-key " + new_key +
         "' once, which creates the new key; (2) copy " + new_key +
         " to every server (install -m 0400 -o root); (3) on every server add 'fleet_key_previous "
         "= " +
         new_key +
         "' to pbx-mfa.conf (it reads both keys, still writes the old); (4) when every "
         "server has it, on every server set 'fleet_key = " +
         new_key + "' and 'fleet_key_previous = " + old_key +
         "'; (5) when every server has that, run 'pbx-mfa db rotate-key --new-key " + new_key +
         "' again on one server; (6) remove fleet_key_previous everywhere and destroy the old key";
}

std::string plural(long n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : word.back() == 'h' ? "es" : "s");
}

// db rotate-key --new-key FILE [--batch N].
int db_rotate_key(Session& s, const std::string& new_key, int batch) {
  if (auto st = need_database(s); !st) return fail(s, st.error());
  if (new_key.empty() || new_key.front() != '/') {
    return fail(s, kExitUsage, "--new-key must be an absolute path");
  }
  if (batch < 1 || batch > totp::kRotateBatchMax) {
    return fail(s, kExitUsage,
                "--batch must be from 1 to " + std::to_string(totp::kRotateBatchMax));
  }
  const totp::Config& c = s.config;
  struct stat st {};
  if (::lstat(new_key.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return fail(s, kExitStore, new_key + ": " + std::strerror(errno));
    }
    // Step 1: a new key, recorded in the database (next key check). No row changes.
    if (auto made = totp::db_begin_rotation(c, new_key); !made) {
      auto e = made.error();
      if (e.code == totp::Errc::kConfig)
        e.message += "; " + rotation_procedure(new_key, c.fleet_key);
      return fail(s, e);
    }
    s.out() << "created the new fleet key " << new_key
            << " (root, 0400) and recorded it in the database; no row was changed. Next, with "
               "the same two keys:\n"
            << "  1. copy " << new_key
            << " to every server of the fleet (install -m 0400 -o root)\n"
            << "  2. on every server, in " << s.config_path
            << ": add fleet_key_previous = " << new_key
            << " (the server reads both keys and still writes under " << c.fleet_key << ")\n"
            << "  3. when every server has it: on every server, fleet_key = " << new_key
            << " and fleet_key_previous = " << c.fleet_key << "\n"
            << "  4. when every server has that: run 'pbx-mfa db rotate-key --new-key " << new_key
            << "' again, on one server\n"
            << "  5. then remove fleet_key_previous from every server and destroy the old key "
            << c.fleet_key << "\n";
    audit(s, "db-rotate-key new key created");
    return kExitOk;
  }
  // Step 4: the new key must be the one this host writes with, and the old one readable.
  struct stat configured {};
  bool is_fleet_key = ::stat(c.fleet_key.c_str(), &configured) == 0 &&
                      ::stat(new_key.c_str(), &st) == 0 && configured.st_dev == st.st_dev &&
                      configured.st_ino == st.st_ino;
  // The old key: fleet_key_previous, or before the change of configuration the fleet_key.
  std::string old_key = !c.fleet_key_previous.empty() ? c.fleet_key_previous
                        : !is_fleet_key               ? c.fleet_key
                                                      : "<the old key>";
  if (!is_fleet_key) {
    return fail(s, kExitUsage,
                new_key + " exists but is not fleet_key (" + c.fleet_key + ") in " + s.config_path +
                    ": rotating while this host cannot write with the new key "
                    "would lock users out; " +
                    rotation_procedure(new_key, old_key));
  }
  if (c.fleet_key_previous.empty()) {
    return fail(s, kExitUsage,
                "fleet_key_previous is not set in " + s.config_path +
                    ": rotating while this host cannot read both keys would lock users out; " +
                    rotation_procedure(new_key, old_key));
  }
  auto started = std::chrono::steady_clock::now();
  long next_report = -1;
  bool told_key_check = false;
  auto tell_key_check = [&](const totp::DbRotateResult& r) {
    if (told_key_check || !r.key_check_updated) return;
    told_key_check = true;
    s.out() << "key check of the database set to the new key " << c.fleet_key << std::endl;
  };
  auto progress = [&](const totp::DbRotateResult& r) {
    tell_key_check(r);
    // A line per batch, at most about one per tenth of the users (the first at a tenth).
    long step = std::max(r.users_total / 10, 1L);
    if (next_report < 0) next_report = step;
    if (r.users_done < next_report) return;
    next_report = r.users_done + step;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    char elapsed[32];
    (void)std::snprintf(elapsed, sizeof elapsed, "%.1f", secs);
    s.out() << "rotated " << r.users_done << " of " << r.users_total << " users (batch "
            << r.batches << ", " << r.enrollments_resealed + r.states_remaced << " rows re-sealed, "
            << elapsed << " s)" << std::endl;
  };
  auto r = totp::db_rotate_key(c, batch, progress);
  if (!r) {
    audit(s, "db-rotate-key failed");
    return fail(s, r.error());
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  char elapsed[32];
  (void)std::snprintf(elapsed, sizeof elapsed, "%.1f", secs);
  tell_key_check(*r);
  s.out() << "done: " << r->users_done << " users in " << elapsed << " s ("
          << plural(r->batches, "batch") << "): " << plural(r->enrollments_resealed, "enrollment")
          << " re-sealed and " << plural(r->states_remaced, "state row")
          << " re-authenticated under " << c.fleet_key << ", " << r->already_current
          << " rows already under it, " << r->rows_left.size() << " left as they are\n";
  for (const auto& why : r->rows_left) s.err() << "pbx-mfa: " << why << "\n";
  if (r->rows_left.empty()) {
    s.out() << "no row is under the old key any more: when every server has fleet_key = "
            << c.fleet_key << ", remove fleet_key_previous from every server's config and "
            << "destroy the old key " << c.fleet_key_previous << "\n";
  } else {
    s.err() << "pbx-mfa: " << plural(static_cast<long>(r->rows_left.size()), "row")
            << " under neither key were left as they are (refused at login, as before): "
               "first check fleet_key and fleet_key_previous on this host (a row under a key "
               "this host does not have is not damaged); if they are right, 'pbx-mfa reset' "
               "those users and enroll them again\n";
  }
  std::string counts = "enrollments_resealed=" + std::to_string(r->enrollments_resealed) +
                       " states_remaced=" + std::to_string(r->states_remaced) +
                       " already=" + std::to_string(r->already_current) +
                       " rows_left=" + std::to_string(r->rows_left.size());
  audit(s, "db-rotate-key " + counts);
  record_event(s, "fleet-key-rotated", "", std::to_string(r->users_done) + " users: " + counts);
  return kExitOk;
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
  auto* rotate = sub->add_subcommand(
      "rotate-key",
      "re-seal every enrollment and state row under a new fleet key, in batches, online");
  auto new_key = std::make_shared<std::string>();
  auto batch = std::make_shared<int>(totp::kRotateBatchDefault);
  rotate->add_option("--new-key", *new_key, "the new key file (created when missing)")->required();
  rotate->add_option("--batch", *batch, "users per transaction (1 to 10000, default 100)");
  // `from` is captured to keep --from's target alive while CLI11 parses into it.
  return {sub, [init, migrate, from, rotate, new_key, batch](Session& s) -> int {
            if (init->parsed()) return db_init(s, /*may_create=*/true);
            if (rotate->parsed()) return db_rotate_key(s, *new_key, *batch);
            if (migrate->parsed()) {
              return from->empty() ? db_init(s, /*may_create=*/false) : db_migrate(s);
            }
            return fail(s, kExitUsage, "db: init, migrate or rotate-key");
          }};
}

}  // namespace pbx::cli

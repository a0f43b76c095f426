// Database administration for store = postgresql: the schema, the fleet key, doctor's checks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::totp {

// 1: enrollments sealed, state in clear. 2: every state row carries a MAC (state_mac).
// 3: the rows are of format version 2 (devices): the upgrade re-sealed every enrollment and
// rewrote every state row of format version 1 (the tables are those of version 2).
// 4: the events table pbx_mfa_event (one log for the fleet); the other tables as in 3.
inline constexpr int kDbSchemaVersion = 4;

struct DbInitResult {
  int from_version = 0;  // 0: there was no schema
  int to_version = 0;
  bool key_created = false;  // the fleet key file was made by this call
  // Upgrading to version 2: state rows given a MAC (trusted as they were), and rows left
  // without one because they do not parse (refused at login, as they were before).
  long states_authenticated = 0;
  long states_unreadable = 0;
  // ... of which had grace entries, dropped before the MAC: a MAC must not vouch for a login
  // without a code that anyone with write access could have planted under schema 1.
  long states_grace_dropped = 0;
  // Rows of format version 1 (one secret, one replay mark) rewritten as version 2 (devices),
  // by every upgrade or init of an existing database (a row of an older pbx-mfa written since
  // is upgraded by the next run): enrollments re-sealed with their id kept, state rows given a
  // fresh MAC. Only state rows whose MAC verifies are rewritten.
  long enrollments_upgraded = 0;
  long states_upgraded = 0;
  // Rows left as they are, one "user NAME: why" line each: an enrollment that does not open
  // under the fleet key or does not parse (whatever its version), a state row of version 1
  // without a MAC that verifies (forged or damaged) or that does not parse. Each was refused
  // at login before the upgrade and still is; every run names them again.
  std::vector<std::string> rows_left;
  // An existing database of schema 1 to 3 was given the events table (version 4).
  bool events_table_created = false;
};

// Creates or upgrades the schema in one transaction (idempotent). Creates the fleet key when it
// is missing and the database has no schema yet; refuses a key other than the one the database
// was set up with. The upgrade to version 2 computes the MAC of every existing state row: it
// trusts the rows as they are at that moment, except their grace entries, which it drops.
// Then, on every run, rows of format version 1 are rewritten as version 2, one user per
// transaction under the user's row locks (logins go on meanwhile). The events table is made
// in the schema's transaction (version 4); the schema says 4 after the rows' pass. A second run
// changes nothing.
Result<DbInitResult> db_init(const Config& config);

// The same upgrade without ever creating a schema or a key: kConfig when the database has no
// pbx-mfa schema yet (`db migrate` without --from).
Result<DbInitResult> db_upgrade(const Config& config);

enum class KeyCheck { kMatches, kDiffers, kNoSchema, kKeyUnusable };

// What doctor reports: the connection as made, the schema and whether the fleet key fits.
struct DbReport {
  std::int64_t connect_ms = 0;  // connecting plus the first query
  std::string host, port, dbname, user, server_version, sslmode, ssl_protocol, ssl_cipher;
  bool unix_socket = false;
  bool ssl = false;
  bool gssenc = false;     // GSSAPI encryption in use (it replaces TLS)
  int schema_version = 0;  // 0: no schema
  long enrollments = 0;
  KeyCheck key = KeyCheck::kNoSchema;
  // kMatches only through fleet_key_previous: the key check is not under this host's fleet_key.
  bool key_check_previous_only = false;
  std::string key_problem;  // why the key is unusable

  // replication (doctor's failover warning)
  bool replication_known = false;         // the query below answered
  std::string synchronous_standby_names;  // the connected server's settings
  std::string synchronous_commit;
  long standbys = 0;                // rows of pg_stat_replication
  bool sync_state_visible = false;  // every row shows its sync_state (superuser, pg_read_all_stats)
  long sync_standbys = 0;           // rows whose sync_state is sync or quorum
};

// Errors: plugin not loadable, database unreachable (kUnavailable) or failing.
Result<DbReport> db_probe(const Config& config);

// Fleet-key rotation (pbx-mfa db rotate-key, db_rotate.cpp). Rows are found under a key by
// trying it: an enrollment that opens, a state MAC that verifies.
// Which of this host's keys a check in pbx_mfa_schema opens under; kNone: no such check.
enum class KeyUnder { kCurrent, kPrevious, kNeither, kNone };

struct DbKeyUsage {
  bool has_previous = false;  // fleet_key_previous is set
  KeyUnder key_check = KeyUnder::kNone;
  // Set by step 1 of a rotation (the new key), cleared when db rotate-key has been through.
  KeyUnder next_key_check = KeyUnder::kNone;
  long enrollments_current = 0, enrollments_previous = 0, enrollments_neither = 0;
  long states_current = 0, states_previous = 0, states_neither = 0;  // rows with state text
  // "user NAME: ..." for rows under neither key (refused at login), the first kMaxNamed.
  std::vector<std::string> neither;
  static constexpr std::size_t kMaxNamed = 20;
  long previous() const { return enrollments_previous + states_previous; }
  long neither_count() const { return enrollments_neither + states_neither; }
};

// Reads every enrollment and state row (in pages) and counts which key each is under.
Result<DbKeyUsage> db_key_usage(const Config& config);

struct DbRotateResult {
  long users_total = 0;  // users with a row when the rotation started (for progress)
  long users_done = 0;
  long batches = 0;
  long enrollments_resealed = 0;       // opened under the previous key, sealed under fleet_key
  long states_remaced = 0;             // verified under the previous key, MAC under fleet_key
  long already_current = 0;            // rows already under fleet_key (skipped)
  std::vector<std::string> rows_left;  // "user NAME: ..." under neither key, left as they are
  bool key_check_updated = false;      // pbx_mfa_schema.key_check set to fleet_key
};

inline constexpr int kRotateBatchDefault = 100;
inline constexpr int kRotateBatchMax = 10000;

// Re-seals every enrollment and re-MACs every state row under config.fleet_key that is under
// config.fleet_key_previous, `batch` users per transaction (state rows then enrollment rows
// locked FOR UPDATE, in name order: the order of a login). Needs fleet_key_previous (kConfig
// otherwise) and a key check that opens under one of the two keys (kConfig: another fleet);
// the key check is set to fleet_key first. A batch's new values are written with one UPDATE
// per table. A batch commits whole or not at all: run again, it goes on (rows under fleet_key
// are skipped). A failed batch is tried again with half the users, down to one user tried
// twice. `progress` is called after each batch.
Result<DbRotateResult> db_rotate_key(const Config& config, int batch,
                                     const std::function<void(const DbRotateResult&)>& progress);

// Step 1 of a rotation: creates the new fleet key at `new_key` (must not exist; root, 0400)
// and records pbx_mfa_schema.next_key_check sealed under it, so that db_rotate_key later
// accepts only that key as fleet_key. Refused (kConfig, nothing created) when
// fleet_key_previous is set, a new key is recorded already (a rotation is pending), or
// fleet_key is not the database's key.
Status db_begin_rotation(const Config& config, const std::string& new_key);

}  // namespace pbx::totp

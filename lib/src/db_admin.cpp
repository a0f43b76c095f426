// Database administration for store = postgresql: making and upgrading the schema, checking
// the fleet key against it, and what doctor reports about the database.
#include "pbx/totp/db_admin.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "db_events.hpp"
#include "db_store.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/seal.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/strings.hpp"
#include "pg_link.hpp"
#include "text_format.hpp"

namespace pbx::totp {
namespace {

using detail::PgLink;

using detail::kKeyCheckAad;

// Version 1. Later versions add steps (kSchemaV2...); db_init applies those above the stored
// version, also right after creating version 1.
constexpr const char* kSchemaV1 =
    "CREATE TABLE pbx_mfa_enrollment ("
    " user_name text PRIMARY KEY,"
    " enrollment_id text NOT NULL,"
    " sealed bytea NOT NULL,"
    " created bigint NOT NULL,"
    " updated timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE pbx_mfa_state ("
    " user_name text PRIMARY KEY,"
    " state text)";

// Version 2: the state row carries a MAC. The column is renamed as well, so a pbx-mfa of
// schema 1 still running somewhere fails (a database error) instead of writing state without
// a MAC, which every updated server would refuse.
constexpr const char* kSchemaV2 =
    "ALTER TABLE pbx_mfa_state RENAME COLUMN state TO state_text;"
    "ALTER TABLE pbx_mfa_state ADD COLUMN state_mac bytea";

// Gives every existing state row its MAC (step 2 of the upgrade, in db_init's transaction,
// which holds the table's lock from the ALTER TABLE). Rows that do not parse stay without a
// MAC: they were refused before and still are.
Status authenticate_states(PgLink& db, const SecretBytes& fleet_key, DbInitResult& result) {
  auto mac_key = derive_fleet_subkey(fleet_key, kStateMacLabel);
  if (!mac_key) return mac_key.error();
  db.start_exchange();
  static const std::string kSelect =
      "SELECT user_name, CASE WHEN octet_length(state_text) <= " +
      std::to_string(kMaxStateFileSize) +
      " THEN state_text END FROM pbx_mfa_state WHERE state_text IS NOT NULL";
  auto rows = db.exec(kSelect.c_str());
  if (!rows) return rows.error();
  for (const auto& row : *rows) {
    if (!row.at(0)) continue;
    if (!row.at(1)) {  // over the size cap
      ++result.states_unreadable;
      continue;
    }
    auto parsed = parse_state(*row.at(1));
    if (!parsed) {
      ++result.states_unreadable;
      continue;
    }
    // A grace entry is a login without a code, and before schema 2 anyone who could write the
    // table could plant one, also one that starts in the future. The MAC must not vouch for
    // them: they are dropped (a user in a grace window types a code once more).
    std::string text = *row.at(1);
    if (!parsed->grace.empty()) {
      parsed->grace.clear();
      text = serialize_state(*parsed);
      ++result.states_grace_dropped;
    }
    auto mac = state_mac(*mac_key, *row.at(0), parsed->enrollment_id, text);
    if (!mac) return mac.error();
    // One deadline per row: a fleet of many users must not hit pg_timeout_ms as a whole.
    db.start_exchange();
    if (auto r =
            db.exec("UPDATE pbx_mfa_state SET state_text = $3, state_mac = $2 WHERE user_name = $1",
                    {{*row.at(0)}, {*mac, false, true}, {text}});
        !r) {
      return r.error();
    }
    ++result.states_authenticated;
  }
  return Ok{};
}

// The format version of a secret or state text: N of its first line that is neither empty nor a
// comment, when that line is "version N"; 0 otherwise (the parser then says what is wrong).
int format_version(std::string_view text) {
  constexpr std::string_view kPrefix = "version ";
  for (std::string_view line : split_lines(text)) {
    if (line.empty() || line.front() == '#') continue;
    std::int64_t n = 0;
    if (line.substr(0, kPrefix.size()) != kPrefix ||
        !detail::parse_i64(line.substr(kPrefix.size()), 1, 1000, n)) {
      return 0;
    }
    return static_cast<int>(n);
  }
  return 0;
}

// The largest sealed enrollment the store reads (DbStore::load).
constexpr const char* kSealedCap = "65536";

// The users with a row that may need the upgrade to format version 2: an enrollment whose
// sealed text is version 1 or does not open, a state row whose text is version 1. Read without
// locks; upgrade_user reads each again under its locks.
Result<std::set<std::string>> upgrade_candidates(PgLink& db, detail::FleetKeys& keys) {
  std::set<std::string> users;
  db.start_exchange();
  static const std::string kEnrollments =
      std::string("SELECT user_name, CASE WHEN octet_length(sealed) <= ") + kSealedCap +
      " THEN sealed END FROM pbx_mfa_enrollment";
  auto rows = db.exec(kEnrollments.c_str());
  if (!rows) return rows.error();
  for (const auto& row : *rows) {
    if (!row.at(0)) continue;
    auto box = detail::bytea_of(row.at(1));
    auto plain = box ? keys.open(detail::enrollment_aad(*row.at(0)), *box)
                     : Result<SecretString>(box.error());
    if (!plain && plain.error().code != Errc::kCorrupt && box) return plain.error();
    if (!plain || format_version(plain->view()) == 1) users.insert(*row.at(0));
  }
  db.start_exchange();
  static const std::string kStates =
      "SELECT user_name, CASE WHEN octet_length(state_text) <= " +
      std::to_string(kMaxStateFileSize) +
      " THEN state_text END FROM pbx_mfa_state WHERE state_text IS NOT NULL";
  rows = db.exec(kStates.c_str());
  if (!rows) return rows.error();
  for (const auto& row : *rows) {
    if (row.at(0) && row.at(1) && format_version(*row.at(1)) == 1) users.insert(*row.at(0));
  }
  return users;
}

// The enrollment row of a user, read under its lock for the upgrade.
struct LockedEnrollment {
  bool exists = false;
  std::optional<std::string> id_column;
  std::optional<Enrollment> enrollment;  // when it opens and parses
  int version = 0;                       // of the sealed text, when it opens
  std::string problem;                   // why it does not open or parse
};

Result<LockedEnrollment> lock_enrollment(PgLink& db, detail::FleetKeys& keys,
                                         const std::string& user) {
  static const std::string kSelect =
      std::string("SELECT enrollment_id, CASE WHEN octet_length(sealed) <= ") + kSealedCap +
      " THEN sealed END FROM pbx_mfa_enrollment WHERE user_name = $1 FOR UPDATE";
  auto rows = db.exec(kSelect.c_str(), {{user}});
  if (!rows) return rows.error();
  LockedEnrollment out;
  if (rows->empty()) return out;
  out.exists = true;
  out.id_column = rows->front().at(0);
  auto box = detail::bytea_of(rows->front().at(1));
  if (!box) {
    out.problem = "the sealed value is missing, larger than 64 KiB or not bytea";
    return out;
  }
  auto plain = keys.open(detail::enrollment_aad(user), *box);
  if (!plain) {
    if (plain.error().code != Errc::kCorrupt) return plain.error();
    out.problem = "it does not open under the fleet key (" + plain.error().message + ")";
    return out;
  }
  out.version = format_version(plain->view());
  auto e = parse_enrollment(plain->view());
  if (!e) {
    out.problem = "it does not parse (" + e.error().message + ")";
    return out;
  }
  if (!out.id_column || *out.id_column != e->id) {
    out.problem = "its enrollment id column differs from the sealed id";
    return out;
  }
  out.enrollment = std::move(e.value());
  return out;
}

// Rewrites the rows of one user that are of format version 1, in one transaction that holds the
// state row's lock, then the enrollment row's (the order of a login and of an enrollment): a
// concurrent login or enrollment waits and then sees the upgraded rows, or went first and the
// upgrade sees what it wrote.
Status upgrade_user(PgLink& db, const Config& config, detail::FleetKeys& keys,
                    const std::string& user, DbInitResult& result) {
  auto fleet_key = keys.current();
  if (!fleet_key) return fleet_key.error();
  auto mac_key = keys.current_mac();
  if (!mac_key) return mac_key.error();
  db.start_exchange();
  // A lock held too long is an error of this run (run it again), never a lost connection.
  std::string begin =
      "BEGIN; SET LOCAL lock_timeout = " + std::to_string(config.pg_timeout_ms * 3 / 4);
  if (auto r = db.exec(begin.c_str()); !r) {
    (void)db.exec("ROLLBACK");
    return r.error();
  }
  auto fail = [&](Error e) -> Status {
    (void)db.exec("ROLLBACK");
    return e;
  };
  auto left = [&](const std::string& why) {
    result.rows_left.push_back("user " + user + ": " + why);
  };
  static const std::string kState =
      "SELECT CASE WHEN octet_length(state_text) <= " + std::to_string(kMaxStateFileSize) +
      " THEN state_text END, CASE WHEN octet_length(state_mac) <= 64 THEN state_mac END, "
      "state_mac IS NOT NULL FROM pbx_mfa_state WHERE user_name = $1 FOR UPDATE";
  auto state_rows = db.exec(kState.c_str(), {{user}});
  if (!state_rows) return fail(state_rows.error());
  auto locked = lock_enrollment(db, keys, user);
  if (!locked) return fail(locked.error());
  const LockedEnrollment& le = *locked;

  if (le.exists && !le.enrollment) {
    left("enrollment row left as it is: " + le.problem);
  } else if (le.enrollment && le.version == 1) {
    SecretString text(serialize_enrollment(*le.enrollment));
    auto box = seal(**fleet_key, detail::enrollment_aad(user), text.view());
    if (!box) return fail(box.error());
    if (auto r = db.exec(
            "UPDATE pbx_mfa_enrollment SET sealed = $2, updated = now() WHERE user_name = $1",
            {{user}, {*box, false, true}});
        !r) {
      return fail(r.error());
    }
    ++result.enrollments_upgraded;
  }

  const bool has_text = !state_rows->empty() && state_rows->front().at(0).has_value();
  if (has_text && format_version(*state_rows->front().at(0)) == 1) {
    const auto& row = state_rows->front();
    const std::string& text = *row.at(0);
    auto parsed = parse_state(text);
    auto mac = detail::bytea_of(row.at(1));
    Status checked = parsed && mac ? keys.check_mac(user, parsed->enrollment_id, text, *mac)
                                   : Status(make_error(Errc::kCorrupt, ""));
    if (!checked && checked.error().code != Errc::kCorrupt) return fail(checked.error());
    if (!parsed) {
      left("state row left as it is: it does not parse (" + parsed.error().message + ")");
    } else if (row.at(2) != "t") {
      left("state row left as it is: it has no MAC (refused at login)");
    } else if (!checked) {
      left(
          "state row left as it is: its MAC does not verify (forged or damaged; refused at login)");
    } else {
      // A version 1 replay mark belongs to the device "default" of the same enrollment: it is
      // tied to that device's created time, as a login would. Without that enrollment to read
      // it stays unbound (kAnyCreated), as the verifier takes it.
      UserState next = std::move(parsed.value());
      const Enrollment* e =
          le.enrollment && le.enrollment->id == next.enrollment_id ? &*le.enrollment : nullptr;
      for (DeviceMark& m : next.marks) {
        const Device* d = e != nullptr ? e->find_device(m.device) : nullptr;
        if (m.created == kAnyCreated && d != nullptr) m.created = d->created;
      }
      std::string upgraded = serialize_state(next);
      auto new_mac = state_mac(**mac_key, user, next.enrollment_id, upgraded);
      if (!new_mac) return fail(new_mac.error());
      if (auto r = db.exec(
              "UPDATE pbx_mfa_state SET state_text = $2, state_mac = $3 WHERE user_name = $1",
              {{user}, {upgraded}, {*new_mac, false, true}});
          !r) {
        return fail(r.error());
      }
      ++result.states_upgraded;
    }
  }
  if (auto r = db.exec("COMMIT"); !r) return r.error();
  return Ok{};
}

// Every row of format version 1 rewritten as version 2 (DbInitResult says what it did).
// Rows under fleet_key_previous (a rotation under way) are read as well; what is rewritten is
// written under fleet_key.
Status upgrade_rows(PgLink& db, const Config& config, DbInitResult& result) {
  detail::FleetKeys keys(config);
  auto users = upgrade_candidates(db, keys);
  if (!users) return users.error();
  for (const auto& user : *users) {
    if (auto st = upgrade_user(db, config, keys, user, result); !st) {
      return make_error(st.error().code,
                        "upgrading the rows of user '" + user + "': " + st.error().message);
    }
  }
  return Ok{};
}

Result<int> schema_version(PgLink& link, std::optional<std::string>* key_check) {
  auto exists = link.exec("SELECT to_regclass('pbx_mfa_schema') IS NOT NULL");
  if (!exists) return exists.error();
  if (exists->empty() || exists->front().at(0) != "t") return 0;
  auto rows = link.exec("SELECT version, key_check FROM pbx_mfa_schema");
  if (!rows) return rows.error();
  if (rows->size() != 1 || !rows->front().at(0)) {
    return make_error(Errc::kCorrupt, "pbx_mfa_schema must hold exactly one row");
  }
  if (key_check != nullptr) *key_check = rows->front().at(1);
  const std::string& text = *rows->front().at(0);
  std::int64_t version = 0;
  if (!detail::parse_i64(text, 1, std::numeric_limits<int>::max(), version)) {
    return make_error(Errc::kCorrupt, "pbx_mfa_schema: version '" + text.substr(0, 32) +
                                          "' is not a schema version (a whole number from 1)");
  }
  return static_cast<int>(version);
}

Result<bool> key_fits(const SecretBytes& key, const std::optional<std::string>& check) {
  auto box = detail::bytea_of(check);
  if (!box) return box.error();
  return open_sealed(key, kKeyCheckAad, *box).ok();
}

// The key check opens under `key`, or (a rotation under way) under fleet_key_previous.
Result<bool> keys_fit(const Config& config, const SecretBytes& key,
                      const std::optional<std::string>& check) {
  auto fits = key_fits(key, check);
  if (!fits || *fits || config.fleet_key_previous.empty()) return fits;
  auto old = load_fleet_key(config.fleet_key_previous, config.trusted_uid);
  if (!old) {
    return make_error(old.error().code, "fleet_key_previous: " + old.error().message);
  }
  return key_fits(*old, check);
}

}  // namespace

namespace {

Result<DbInitResult> init_or_upgrade(const Config& config, bool may_create) {
  auto link = PgLink::open(config);
  if (!link) return link.error();
  PgLink& db = **link;
  db.start_exchange();
  // Two servers running db init at once: the second waits here, then sees the first's schema.
  // A session lock: it also covers the row upgrade's transactions after the schema's, and goes
  // with the connection when this returns (a pbx-mfa of schema 2 takes the same key per
  // transaction).
  if (auto r = db.exec("SELECT pg_advisory_lock(7283551); BEGIN"); !r) return r.error();
  auto fail = [&](Error e) -> Result<DbInitResult> {
    (void)db.exec("ROLLBACK");
    return e;
  };
  std::optional<std::string> check;
  auto version = schema_version(db, &check);
  if (!version) return fail(version.error());
  DbInitResult result;
  result.from_version = *version;
  if (*version > kDbSchemaVersion) {
    return fail(make_error(Errc::kConfig, "the database schema is version " +
                                              std::to_string(*version) +
                                              ", newer than this "
                                              "pbx-mfa understands (" +
                                              std::to_string(kDbSchemaVersion) + ")"));
  }
  if (*version == 0 && !may_create) {
    return fail(make_error(Errc::kConfig,
                           "the database has no pbx-mfa schema to upgrade: run 'pbx-mfa db init'"));
  }
  auto key = load_fleet_key(config.fleet_key, config.trusted_uid);
  if (!key) {
    struct stat st {};
    bool missing = ::lstat(config.fleet_key.c_str(), &st) != 0 && errno == ENOENT;
    if (!missing || *version != 0) return fail(key.error());
    // A new fleet: the first server makes the key; the others get a copy of it.
    if (auto st2 = create_fleet_key(config.fleet_key); !st2) return fail(st2.error());
    result.key_created = true;
    key = load_fleet_key(config.fleet_key, config.trusted_uid);
    if (!key) return fail(key.error());
  }
  if (*version == 0) {
    auto box = seal(*key, kKeyCheckAad, "");
    if (!box) return fail(box.error());
    if (auto r = db.exec("CREATE TABLE pbx_mfa_schema (version integer NOT NULL,"
                         " key_check bytea NOT NULL, updated timestamptz NOT NULL DEFAULT now())");
        !r) {
      return fail(r.error());
    }
    if (auto r = db.exec(kSchemaV1); !r) return fail(r.error());
    if (auto r = db.exec(kSchemaV2); !r) return fail(r.error());
    if (auto r = db.exec(detail::kEventTableSql); !r) return fail(r.error());
    if (auto r = db.exec("INSERT INTO pbx_mfa_schema (version, key_check) VALUES ($1, $2)",
                         {{std::to_string(kDbSchemaVersion)}, {*box, false, true}});
        !r) {
      return fail(r.error());
    }
  } else {
    auto fits = keys_fit(config, *key, check);
    if (!fits) return fail(fits.error());
    if (!*fits) {
      return fail(make_error(Errc::kConfig, "fleet key " + config.fleet_key +
                                                " is not the key this database was set up with; "
                                                "copy the key from a server of the fleet"));
    }
    if (*version < 2) {
      if (auto r = db.exec(kSchemaV2); !r) return fail(r.error());
      if (auto st = authenticate_states(db, *key, result); !st) return fail(st.error());
      db.start_exchange();
      if (auto r = db.exec("UPDATE pbx_mfa_schema SET version = 2, updated = now()"); !r) {
        return fail(r.error());
      }
    }
    if (*version < 4) {
      // Version 4: the events table. Servers of an older pbx-mfa do not know it and go on as
      // before; updated servers on an older schema keep their events in their own files.
      db.start_exchange();
      if (auto r = db.exec(detail::kEventTableSql); !r) return fail(r.error());
      result.events_table_created = true;
    }
  }
  // The record of a rotation's new key (db rotate-key), optional: no version of its own.
  if (auto r = db.exec(detail::kAddNextKeyCheck); !r) return fail(r.error());
  if (auto r = db.exec("COMMIT"); !r) return r.error();
  if (*version > 0) {
    // Version 3: the rows (version 4 adds only the events table, above). Every run looks (a server
    // of an older pbx-mfa may have written a row of version 1 since); the schema says 3 only once a
    // pass has gone through.
    if (auto st = upgrade_rows(db, config, result); !st) return st.error();
    if (*version < kDbSchemaVersion) {
      db.start_exchange();
      if (auto r = db.exec("UPDATE pbx_mfa_schema SET version = $1, updated = now()",
                           {{std::to_string(kDbSchemaVersion)}});
          !r) {
        return r.error();
      }
    }
  }
  result.to_version = kDbSchemaVersion;
  return result;
}

}  // namespace

Result<DbInitResult> db_init(const Config& config) { return init_or_upgrade(config, true); }

Result<DbInitResult> db_upgrade(const Config& config) { return init_or_upgrade(config, false); }

namespace {

// Whether the connected server waits for a synchronous standby before it acknowledges a commit
// (doctor's failover warning). Best effort: a server that cannot answer leaves it unknown.
void probe_replication(PgLink& db, DbReport& report) {
  db.start_exchange();
  auto rows = db.exec(
      "SELECT current_setting('synchronous_standby_names'), "
      "current_setting('synchronous_commit'), count(*), count(sync_state), "
      "count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) FROM pg_stat_replication");
  if (!rows || rows->size() != 1 || rows->front().size() != 5) return;
  const auto& row = rows->front();
  std::int64_t counts[3] = {0, 0, 0};
  for (std::size_t i = 0; i < 3; ++i) {
    if (!row.at(2 + i) ||
        !detail::parse_i64(*row.at(2 + i), 0, std::numeric_limits<long>::max(), counts[i])) {
      return;
    }
  }
  report.synchronous_standby_names = row.at(0).value_or("");
  report.synchronous_commit = row.at(1).value_or("");
  report.standbys = static_cast<long>(counts[0]);
  report.sync_state_visible = counts[1] == counts[0];
  report.sync_standbys = static_cast<long>(counts[2]);
  report.replication_known = true;
}

}  // namespace

Result<DbReport> db_probe(const Config& config) {
  auto link = PgLink::open(config);
  if (!link) return link.error();
  PgLink& db = **link;
  DbReport report;
  std::int64_t start = detail::now_ms();
  db.start_exchange();
  std::optional<std::string> check;
  auto version = schema_version(db, &check);
  if (!version) return version.error();
  report.connect_ms = detail::now_ms() - start;
  report.schema_version = *version;
  report.host = db.info("host");
  report.port = db.info("port");
  report.dbname = db.info("dbname");
  report.user = db.info("user");
  report.server_version = db.info("server_version");
  report.sslmode = db.info("sslmode");
  report.ssl = db.info("ssl") == "on";
  report.ssl_protocol = db.info("ssl_protocol");
  report.ssl_cipher = db.info("ssl_cipher");
  report.gssenc = db.info("gssenc") == "on";
  report.unix_socket = !report.host.empty() && report.host.front() == '/';
  probe_replication(db, report);
  if (*version == 0) return report;
  db.start_exchange();
  auto count = db.exec("SELECT count(*) FROM pbx_mfa_enrollment");
  if (!count) return count.error();
  if (!count->empty() && count->front().at(0)) {
    const std::string& text = *count->front().at(0);
    std::int64_t n = 0;
    if (!detail::parse_i64(text, 0, std::numeric_limits<long>::max(), n)) {
      return make_error(Errc::kCorrupt, "pbx_mfa_enrollment: row count '" + text.substr(0, 32) +
                                            "' is not a number");
    }
    report.enrollments = static_cast<long>(n);
  }
  auto key = load_fleet_key(config.fleet_key, config.trusted_uid);
  if (!key) {
    report.key = KeyCheck::kKeyUnusable;
    report.key_problem = key.error().message;
    return report;
  }
  auto fits = keys_fit(config, *key, check);
  if (!fits && fits.error().code != Errc::kCorrupt) {
    report.key = KeyCheck::kKeyUnusable;
    report.key_problem = fits.error().message;
    return report;
  }
  report.key = fits.ok() && *fits ? KeyCheck::kMatches : KeyCheck::kDiffers;
  if (report.key == KeyCheck::kMatches) {
    auto own = key_fits(*key, check);
    report.key_check_previous_only = own.ok() && !*own;
  }
  return report;
}

}  // namespace pbx::totp

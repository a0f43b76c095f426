// Database administration for store = postgresql: making and upgrading the schema, checking
// the fleet key against it, and what doctor reports about the database.
#include "pbx/totp/db_admin.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "pbx/totp/seal.hpp"
#include "pbx/totp/state.hpp"
#include "pg_link.hpp"
#include "text_format.hpp"

namespace pbx::totp {
namespace {

using detail::PgLink;

// The associated data of the key check sealed into pbx_mfa_schema.
constexpr const char* kKeyCheckAad = "pbx-mfa key check";

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

}  // namespace

namespace {

Result<DbInitResult> init_or_upgrade(const Config& config, bool may_create) {
  auto link = PgLink::open(config);
  if (!link) return link.error();
  PgLink& db = **link;
  db.start_exchange();
  // Two servers running db init at once: the second waits here, then sees the first's schema.
  if (auto r = db.exec("BEGIN; SELECT pg_advisory_xact_lock(7283551)"); !r) return r.error();
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
    if (auto r = db.exec("INSERT INTO pbx_mfa_schema (version, key_check) VALUES ($1, $2)",
                         {{std::to_string(kDbSchemaVersion)}, {*box, false, true}});
        !r) {
      return fail(r.error());
    }
  } else {
    auto fits = key_fits(*key, check);
    if (!fits) return fail(fits.error());
    if (!*fits) {
      return fail(make_error(Errc::kConfig, "fleet key " + config.fleet_key +
                                                " is not the key this database was set up with; "
                                                "copy the key from a server of the fleet"));
    }
    if (*version < 2) {
      if (auto r = db.exec(kSchemaV2); !r) return fail(r.error());
      if (auto st = authenticate_states(db, *key, result); !st) return fail(st.error());
    }
    if (*version < kDbSchemaVersion) {
      db.start_exchange();
      if (auto r = db.exec("UPDATE pbx_mfa_schema SET version = $1, updated = now()",
                           {{std::to_string(kDbSchemaVersion)}});
          !r) {
        return fail(r.error());
      }
    }
  }
  if (auto r = db.exec("COMMIT"); !r) return r.error();
  result.to_version = kDbSchemaVersion;
  return result;
}

}  // namespace

Result<DbInitResult> db_init(const Config& config) { return init_or_upgrade(config, true); }

Result<DbInitResult> db_upgrade(const Config& config) { return init_or_upgrade(config, false); }

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
  auto fits = key_fits(*key, check);
  report.key = fits.ok() && *fits ? KeyCheck::kMatches : KeyCheck::kDiffers;
  return report;
}

}  // namespace pbx::totp

// The PostgreSQL store: enrollments sealed under the fleet key, state under a row lock, through
// the plugin that holds libpq (loaded here, only when configured).
#include "db_store.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <vector>

#include "file_util.hpp"
#include "hex.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/db_plugin.h"
#include "pbx/totp/seal.hpp"

namespace pbx::totp::detail {
namespace {

// The associated data of the key check sealed into pbx_mfa_schema.
constexpr const char* kKeyCheckAad = "pbx-mfa key check";

// The associated data that binds a sealed enrollment to its user.
std::string enrollment_aad(const std::string& user_name) {
  std::string aad = "pbx-mfa enrollment v1";
  aad.push_back('\0');
  return aad + user_name;
}

// Loads the plugin named by pg_plugin after the same checks as a config file (regular, owned
// by the trusted uid, not writable by group or others); dlopen goes through the checked file
// descriptor, so the file cannot be swapped between the check and the load.
Result<const pbx_db_plugin*> load_plugin(const Config& config) {
  auto fd = open_checked_file(config.pg_plugin, config.trusted_uid, 022, 64 * 1024 * 1024,
                              "database plugin (pg_plugin)");
  if (!fd) return fd.error();
  if (!fd->valid()) {
    return make_error(Errc::kConfig, "database plugin " + config.pg_plugin +
                                         " does not exist (is the package that has it installed?)");
  }
  std::string via = "/proc/self/fd/" + std::to_string(fd->get());
  // RTLD_NODELETE: libpq and OpenSSL register exit handlers; never unmap them under a host app.
  void* handle = ::dlopen(via.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return make_error(Errc::kConfig, "database plugin " + config.pg_plugin + " cannot be loaded: " +
                                         (why != nullptr ? why : "unknown error"));
  }
  auto entry = reinterpret_cast<pbx_db_plugin_entry_fn>(::dlsym(handle, PBX_DB_PLUGIN_ENTRY));
  const pbx_db_plugin* api = entry != nullptr ? entry() : nullptr;
  if (api == nullptr || api->abi != PBX_DB_PLUGIN_ABI) {
    return make_error(Errc::kConfig, "database plugin " + config.pg_plugin +
                                         " is not a pbx-mfa plugin of ABI " +
                                         std::to_string(PBX_DB_PLUGIN_ABI));
  }
  return api;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// PgLink

std::int64_t now_ms() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Result<std::unique_ptr<PgLink>> PgLink::open(const Config& config) {
  if (config.pg_conninfo.empty()) {
    return make_error(Errc::kConfig, "store = postgresql needs pg_conninfo");
  }
  auto api = load_plugin(config);
  if (!api) return api.error();
  return std::unique_ptr<PgLink>(new PgLink(*api, config.pg_conninfo, config.pg_timeout_ms));
}

PgLink::~PgLink() { api_->finish(conn_); }

void PgLink::start_exchange() { deadline_ms_ = now_ms() + timeout_ms_; }

Error PgLink::error_from(const pbx_db_error& e) {
  std::string msg(e.message, strnlen(e.message, sizeof e.message));
  if (e.status == PBX_DB_UNREACHABLE) {
    // One deadline per exchange, and no second chance within this store: a login against a
    // hung server costs one deadline, never several.
    api_->finish(conn_);
    // A server that had let us in and then lost the connection or answered too slowly is a
    // failed login, never "cannot be reached": a held lock, a table locked by a DBA or a huge
    // row must not open the door to break-glass codes.
    down_ = conn_ != nullptr ? make_error(Errc::kIo, "database connection lost or too slow: " + msg)
                             : make_error(Errc::kUnavailable, "database unreachable: " + msg);
    conn_ = nullptr;
    return *down_;
  }
  if (e.status == PBX_DB_FAILED) {
    std::string state(e.sqlstate, strnlen(e.sqlstate, sizeof e.sqlstate));
    if (state == "42P01") {
      return make_error(Errc::kIo,
                        "the database has no pbx-mfa tables (run 'pbx-mfa db init'): " + msg);
    }
    return make_error(Errc::kIo,
                      "database error" + (state.empty() ? "" : " " + state) + ": " + msg);
  }
  return make_error(Errc::kInternal, "database plugin: " + msg);
}

Status PgLink::connect() {
  if (down_) return *down_;
  if (conn_ != nullptr) return Ok{};
  pbx_db_error err{};
  conn_ = api_->connect(conninfo_.c_str(), deadline_ms_, &err);
  if (conn_ == nullptr) {
    // A refusal (wrong role, failed certificate check) is no reason to ask again within this
    // store either: one attempt per login.
    Error e = error_from(err);
    if (!down_) down_ = e;
    return e;
  }
  return Ok{};
}

Result<PgLink::Rows> PgLink::exec(const char* sql, std::initializer_list<Param> params) {
  if (auto st = connect(); !st) return st.error();
  std::vector<std::string> copies;  // NUL-terminated text parameters
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  copies.reserve(params.size());  // no reallocation: values point into the copies
  for (const Param& p : params) {
    copies.emplace_back(p.value);
    values.push_back(p.null ? nullptr : copies.back().c_str());
    lengths.push_back(static_cast<int>(p.value.size()));
    formats.push_back(p.binary ? 1 : 0);
  }
  pbx_db_result* res = nullptr;
  pbx_db_error err{};
  int rc = api_->exec(conn_, sql, static_cast<int>(values.size()), values.data(), lengths.data(),
                      formats.data(), deadline_ms_, &res, &err);
  if (rc != PBX_DB_OK || res == nullptr) {
    if (rc == PBX_DB_OK) err.status = PBX_DB_INTERNAL;
    return error_from(err);
  }
  Rows rows;
  int n = api_->ntuples(res);
  int f = api_->nfields(res);
  for (int r = 0; r < n; ++r) {
    Row row;
    for (int c = 0; c < f; ++c) {
      const char* v = api_->value(res, r, c);
      row.push_back(v != nullptr ? std::optional<std::string>(v) : std::nullopt);
    }
    rows.push_back(std::move(row));
  }
  api_->clear(res);
  return rows;
}

std::string PgLink::info(const char* key) const {
  char buf[256] = {};
  if (conn_ == nullptr || api_->info(conn_, key, buf, sizeof buf) != 1) return {};
  return buf;
}

// ---------------------------------------------------------------------------------------------
// DbStore

namespace {

Result<std::string> bytea_of(const std::optional<std::string>& text) {
  // Text-format bytea is "\x" and hex.
  if (!text || text->size() < 2 || (*text)[0] != '\\' || (*text)[1] != 'x') {
    return make_error(Errc::kCorrupt, "sealed column is not bytea hex");
  }
  auto raw = from_hex(std::string_view(*text).substr(2));
  if (!raw) return make_error(Errc::kCorrupt, "sealed column is not bytea hex");
  return std::string(raw->begin(), raw->end());
}

class DbStore;

class DbStateTxn final : public StateTxn {
 public:
  DbStateTxn(DbStore& store, std::string user, UserState state)
      : store_(store), user_(std::move(user)), state_(std::move(state)) {}
  ~DbStateTxn() override;
  const UserState& state() const override { return state_; }
  Status commit(const UserState& next) override;

 private:
  DbStore& store_;
  std::string user_;
  UserState state_;
  bool open_ = true;
};

class DbStore final : public Store {
 public:
  DbStore(const Config& config, std::unique_ptr<PgLink> link)
      : config_(config), link_(std::move(link)) {}

  Result<Enrollment> load(const User& user) override {
    begin_call();
    // A value over the cap is not sent at all (NULL and its size instead): a hostile row must
    // cost neither the deadline nor the memory of a login.
    auto rows = link_->exec(
        "SELECT enrollment_id, CASE WHEN octet_length(sealed) <= 65536 THEN sealed END, "
        "octet_length(sealed) FROM pbx_mfa_enrollment WHERE user_name = $1",
        {{user.name}});
    if (!rows) return rows.error();
    if (rows->empty())
      return make_error(Errc::kNotEnrolled, "user '" + user.name + "' is not enrolled");
    const auto& row = rows->front();
    if (!row.at(1)) return refused(user, "sealed value missing or larger than 64 KiB");
    auto box = bytea_of(row.at(1));
    if (!box) return refused(user, box.error().message);
    auto key = fleet_key();
    if (!key) return key.error();
    auto plain = open_sealed(*key, enrollment_aad(user.name), *box);
    if (!plain) return refused(user, plain.error().message);
    auto e = parse_enrollment(plain->view());
    if (!e) return refused(user, e.error().message);
    if (!row.at(0) || *row.at(0) != e->id) return refused(user, "enrollment id column differs");
    return e;
  }

  Status save(const User& user, const Enrollment& enrollment, bool overwrite) override {
    begin_call();
    auto key = fleet_key();
    if (!key) return key.error();
    SecretString text(serialize_enrollment(enrollment));
    auto box = seal(*key, enrollment_aad(user.name), text.view());
    if (!box) return box.error();
    std::string created = std::to_string(enrollment.created);
    const char* sql =
        overwrite
            ? "INSERT INTO pbx_mfa_enrollment (user_name, enrollment_id, sealed, created) "
              "VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO UPDATE SET "
              "enrollment_id = EXCLUDED.enrollment_id, sealed = EXCLUDED.sealed, "
              "created = EXCLUDED.created, updated = now() RETURNING user_name"
            : "INSERT INTO pbx_mfa_enrollment (user_name, enrollment_id, sealed, created) "
              "VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO NOTHING RETURNING user_name";
    auto rows = link_->exec(sql, {{user.name}, {enrollment.id}, {*box, false, true}, {created}});
    if (!rows) return rows.error();
    if (rows->empty()) {
      return make_error(Errc::kExists, "user '" + user.name + "' is already enrolled");
    }
    return Ok{};
  }

  Status check_saveable(const User&) override {
    // An enrollment is confirmed only after the key is shown: make sure it can be sealed and
    // written before showing it.
    begin_call();
    auto key = fleet_key();
    if (!key) return key.error();
    return link_->connect();
  }

  Status remove(const User& user) override {
    begin_call();
    // One statement, so secret and state go together or not at all.
    auto rows = link_->exec(
        "WITH e AS (DELETE FROM pbx_mfa_enrollment WHERE user_name = $1 RETURNING 1), "
        "s AS (DELETE FROM pbx_mfa_state WHERE user_name = $1 RETURNING state) "
        "SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM s WHERE state IS NOT NULL)",
        {{user.name}});
    if (!rows) return rows.error();
    if (rows->size() == 1 && rows->front().at(0) == "0" && rows->front().at(1) == "0") {
      return make_error(Errc::kNotEnrolled, "user '" + user.name + "' is not enrolled");
    }
    return Ok{};
  }

  Result<std::unique_ptr<StateTxn>> lock_state(const User& user) override {
    if (in_txn_) return make_error(Errc::kInternal, "nested state transaction");
    link_->start_exchange();
    // lock_timeout below the deadline: a lock held too long is an error of this login, not a
    // database that cannot be reached (which would open the door to break-glass codes).
    std::string begin =
        "BEGIN; SET LOCAL lock_timeout = " + std::to_string(config_.pg_timeout_ms * 3 / 4) + ";";
    if (auto r = link_->exec(begin.c_str()); !r) {
      (void)link_->exec("ROLLBACK");  // BEGIN may have run without the SET: never leave it open
      return r.error();
    }
    in_txn_ = true;
    auto fail = [&](Error e) -> Result<std::unique_ptr<StateTxn>> {
      rollback();
      return e;
    };
    // The row must exist to be locked, also before the first login and during an enrollment.
    auto ins = link_->exec(
        "INSERT INTO pbx_mfa_state (user_name) VALUES ($1) ON CONFLICT (user_name) DO NOTHING",
        {{user.name}});
    if (!ins) return fail(ins.error());
    auto state = read_state(user, /*lock=*/true);
    if (!state) return fail(state.error());
    return std::unique_ptr<StateTxn>(std::make_unique<DbStateTxn>(*this, user.name, *state));
  }

  Result<UserState> peek_state(const User& user) override {
    begin_call();
    return read_state(user, /*lock=*/false);
  }

  Status commit(const std::string& user, const UserState& next) {
    std::string text = serialize_state(next);
    auto r =
        link_->exec("UPDATE pbx_mfa_state SET state = $2 WHERE user_name = $1", {{user}, {text}});
    if (!r) {
      rollback();
      return r.error();
    }
    auto c = link_->exec("COMMIT");
    in_txn_ = false;
    if (!c) return c.error();
    return Ok{};
  }

  void rollback() {
    if (!in_txn_) return;
    in_txn_ = false;
    (void)link_->exec("ROLLBACK");  // a dead connection rolls back on the server by itself
  }

 private:
  // A call outside a transaction is an exchange of its own, with its own deadline; inside one,
  // it shares the transaction's.
  void begin_call() {
    if (!in_txn_) link_->start_exchange();
  }

  Result<SecretBytes> fleet_key() {
    if (!key_) {
      auto k = load_fleet_key(config_.fleet_key, config_.trusted_uid);
      if (!k) return k.error();
      key_ = std::move(k.value());
    }
    return *key_;
  }

  // A row that does not open is never accepted; the message goes to the log with the outcome.
  Error refused(const User& user, const std::string& why) const {
    return make_error(Errc::kCorrupt, "database row of user '" + user.name + "' refused: " + why);
  }

  // The user's state row (none: no state yet), FOR UPDATE with `lock`. A value over the state
  // file's size cap is not sent (NULL and its size instead) and is refused like such a file.
  Result<UserState> read_state(const User& user, bool lock) {
    static const std::string kSelect =
        "SELECT CASE WHEN octet_length(state) <= " + std::to_string(kMaxStateFileSize) +
        " THEN state END, octet_length(state) FROM pbx_mfa_state WHERE user_name = $1";
    static const std::string kSelectForUpdate = kSelect + " FOR UPDATE";
    auto rows = link_->exec((lock ? kSelectForUpdate : kSelect).c_str(), {{user.name}});
    if (!rows) return rows.error();
    if (!rows->empty() && !rows->front().at(0) && rows->front().at(1)) {
      return make_error(Errc::kCorrupt, "database state row larger than " +
                                            std::to_string(kMaxStateFileSize / 1024) + " KiB");
    }
    if (rows->empty() || !rows->front().at(0)) return UserState{};
    auto parsed = parse_state(*rows->front().at(0));
    if (!parsed) {
      return make_error(parsed.error().code, parsed.error().message + " (database state row)");
    }
    return parsed;
  }

  Config config_;
  std::unique_ptr<PgLink> link_;
  std::optional<SecretBytes> key_;
  bool in_txn_ = false;
};

DbStateTxn::~DbStateTxn() {
  if (open_) store_.rollback();
}

Status DbStateTxn::commit(const UserState& next) {
  if (!open_) return make_error(Errc::kInternal, "state transaction already committed");
  open_ = false;
  auto st = store_.commit(user_, next);
  if (st) state_ = next;
  return st;
}

}  // namespace

Result<std::unique_ptr<Store>> make_db_store(const Config& config) {
  auto link = PgLink::open(config);
  if (!link) return link.error();
  return std::unique_ptr<Store>(std::make_unique<DbStore>(config, std::move(link.value())));
}

}  // namespace pbx::totp::detail

// ---------------------------------------------------------------------------------------------
// Administration

namespace pbx::totp {
namespace {

using detail::PgLink;

// Version 1. Later versions add steps here; db_init applies those above the stored version.
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
  return std::atoi(rows->front().at(0)->c_str());
}

Result<bool> key_fits(const SecretBytes& key, const std::optional<std::string>& check) {
  auto box = detail::bytea_of(check);
  if (!box) return box.error();
  return open_sealed(key, detail::kKeyCheckAad, *box).ok();
}

}  // namespace

Result<DbInitResult> db_init(const Config& config) {
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
    auto box = seal(*key, detail::kKeyCheckAad, "");
    if (!box) return fail(box.error());
    if (auto r = db.exec("CREATE TABLE pbx_mfa_schema (version integer NOT NULL,"
                         " key_check bytea NOT NULL, updated timestamptz NOT NULL DEFAULT now())");
        !r) {
      return fail(r.error());
    }
    if (auto r = db.exec(kSchemaV1); !r) return fail(r.error());
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
    // Upgrades from older versions go here (none yet).
  }
  if (auto r = db.exec("COMMIT"); !r) return r.error();
  result.to_version = kDbSchemaVersion;
  return result;
}

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
  report.unix_socket = !report.host.empty() && report.host.front() == '/';
  if (*version == 0) return report;
  db.start_exchange();
  auto count = db.exec("SELECT count(*) FROM pbx_mfa_enrollment");
  if (!count) return count.error();
  if (!count->empty() && count->front().at(0))
    report.enrollments = std::atol(count->front().at(0)->c_str());
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

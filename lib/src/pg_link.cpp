// The connection to PostgreSQL through the plugin that holds libpq (loaded here, only when
// configured): one deadline per exchange, and a link that stays down once the server was lost.
#include "pg_link.hpp"

#include <dlfcn.h>
#include <time.h>

#include <cstring>

#include "file_util.hpp"
#include "hex.hpp"
#include "pbx/totp/build_paths.hpp"

namespace pbx::totp::detail {
namespace {

// The error for a pg_plugin that does not exist (ENOENT; any other failure to open it keeps its
// own message): the plugin ships in a package of its own, so hosts on files need no libpq, and
// the error says which package to install. A path other than the default gets the default too,
// where the package puts the plugin.
Error plugin_missing(const std::string& path) {
  const std::string package = PBX_PG_PLUGIN_PACKAGE;
  if (package.empty()) {
    return make_error(Errc::kConfig, "database plugin " + path +
                                         " is not installed (store = postgresql needs it)");
  }
  std::string msg = "database plugin " + path + " is not installed: install the package " +
                    package + " (store = postgresql needs it)";
  if (path != PBX_DEFAULT_PG_PLUGIN) {
    msg += "; the package installs it as " + std::string(PBX_DEFAULT_PG_PLUGIN) +
           ", the default of pg_plugin";
  }
  return make_error(Errc::kConfig, msg);
}

// Loads the plugin named by pg_plugin after the same checks as a config file (regular, owned
// by the trusted uid, not writable by group or others); dlopen goes through the checked file
// descriptor, so the file cannot be swapped between the check and the load.
Result<const pbx_db_plugin*> load_plugin(const Config& config) {
  FileCheck check{config.trusted_uid, 022, std::size_t{64} * 1024 * 1024};
  check.trusted_parents = true;  // code loaded into root's process: its directories too
  auto fd = open_checked_file(config.pg_plugin, check, "database plugin (pg_plugin)");
  if (!fd) return fd.error();
  if (!fd->valid()) return plugin_missing(config.pg_plugin);
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

Result<std::string> bytea_of(const std::optional<std::string>& text) {
  // Text-format bytea is "\x" and hex.
  if (!text || text->size() < 2 || (*text)[0] != '\\' || (*text)[1] != 'x') {
    return make_error(Errc::kCorrupt, "sealed column is not bytea hex");
  }
  auto raw = from_hex(std::string_view(*text).substr(2));
  if (!raw) return make_error(Errc::kCorrupt, "sealed column is not bytea hex");
  return std::string(raw->begin(), raw->end());
}

}  // namespace pbx::totp::detail

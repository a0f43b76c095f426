// Tests against the throwaway PostgreSQL cluster (tests/db/cluster.sh): one private schema per
// test, raw SQL for tampering with rows, and a Config that points the store at it.
#pragma once

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>

#include "pbx/totp/config.hpp"
#include "pbx/totp/seal.hpp"

namespace pbx::totp::testing {

// Set by ctest for the runs against the database (PBX_TEST_STORE=postgresql); unset otherwise.
inline bool pg_store_wanted() {
  const char* s = std::getenv("PBX_TEST_STORE");
  return s != nullptr && std::string(s) == "postgresql";
}

// Where tests/db/cluster.sh records the cluster (PBX_TEST_PG_DIR overrides); nullptr if unknown.
inline const char* pg_cluster_dir() {
  const char* dir = std::getenv("PBX_TEST_PG_DIR");
#ifdef PBX_TEST_PG_DIR_DEFAULT
  if (dir == nullptr) dir = PBX_TEST_PG_DIR_DEFAULT;
#endif
  return dir;
}

// Whether the cluster's conninfo is recorded, i.e. the cluster is running.
inline bool pg_cluster_recorded() {
  const char* dir = pg_cluster_dir();
  return dir != nullptr && ::access((std::string(dir) + "/conninfo").c_str(), F_OK) == 0;
}

// The cluster's socket conninfo; throws when the run asked for the database and it is not there
// (a test against the database must fail, never pass by skipping it).
inline std::string pg_cluster_conninfo(const char* file = "conninfo") {
  const char* dir = pg_cluster_dir();
  if (dir == nullptr) throw std::runtime_error("PBX_TEST_PG_DIR is not set");
  std::string path = std::string(dir) + "/" + file;
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) throw std::runtime_error("no " + path + ": is the test cluster running?");
  char buf[1024] = {};
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  std::string s(buf, n);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

inline std::string pg_plugin_path() {
  const char* p = std::getenv("PBX_TEST_PG_PLUGIN");
#ifdef PBX_TEST_PG_PLUGIN_DEFAULT
  if (p == nullptr) p = PBX_TEST_PG_PLUGIN_DEFAULT;
#endif
  if (p == nullptr) throw std::runtime_error("PBX_TEST_PG_PLUGIN is not set");
  return p;
}

// For the SetUp of a fixture that needs the cluster. Only root can start it (its ctest fixture
// pg_cluster is skipped otherwise), so as a normal user without it the test is skipped; as root
// a missing cluster stays a failure (pg_cluster_conninfo throws), so a broken CI cannot pass.
#define PBX_SKIP_UNLESS_PG_CLUSTER()                                        \
  do {                                                                      \
    if (::geteuid() != 0 && !::pbx::totp::testing::pg_cluster_recorded()) { \
      GTEST_SKIP() << "needs root (the test cluster is started as root)";   \
    }                                                                       \
  } while (0)

// A schema of its own for one test (so tests can run in parallel against one cluster), dropped
// at the end. conninfo() makes it the only schema on the search path.
class PgSchema {
 public:
  explicit PgSchema(std::string base = pg_cluster_conninfo()) : base_(std::move(base)) {
    std::random_device rd;
    name_ = "pbx_t" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000000U);
    exec("CREATE SCHEMA " + name_);
  }
  ~PgSchema() {
    try {
      exec("DROP SCHEMA " + name_ + " CASCADE");
    } catch (...) {
    }
  }
  PgSchema(const PgSchema&) = delete;
  PgSchema& operator=(const PgSchema&) = delete;

  const std::string& name() const { return name_; }
  std::string conninfo() const { return base_ + " options='-csearch_path=" + name_ + "'"; }

  // The column that holds the state text: state_text from schema version 2 on, state before.
  std::string state_column() const {
    return exec(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = 'pbx_mfa_state' AND column_name IN "
        "('state', 'state_text')");
  }

  // Turns the tables back into the layout of schema version 1 (state in clear, no MAC column,
  // no events table), keeping the rows: what an older pbx-mfa made. A no-op for the tables of a
  // schema-1 build.
  void downgrade_to_schema_1() const {
    exec(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = 'pbx_mfa_state' AND column_name = 'state_mac') THEN "
        "ALTER TABLE pbx_mfa_state DROP COLUMN state_mac; "
        "ALTER TABLE pbx_mfa_state RENAME COLUMN state_text TO state; END IF; END $$; "
        "DROP TABLE IF EXISTS pbx_mfa_event; UPDATE pbx_mfa_schema SET version = 1");
  }

  // Runs SQL on the schema; returns the first column of the first row ("" when none).
  std::string exec(const std::string& sql) const {
    PGconn* c = PQconnectdb((base_ + " options='-csearch_path=" + name_ + "'").c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      std::string m = PQerrorMessage(c);
      PQfinish(c);
      // The schema may not exist yet (the constructor): connect without the search path.
      c = PQconnectdb(base_.c_str());
      if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        throw std::runtime_error("cannot connect to the test cluster: " + m);
      }
    }
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);  // "drop cascades to ..."
    PGresult* r = PQexec(c, sql.c_str());
    auto st = PQresultStatus(r);
    std::string out;
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0)) {
      out = PQgetvalue(r, 0, 0);
    }
    std::string err = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      throw std::runtime_error("SQL failed: " + sql + ": " + err);
    }
    return out;
  }

 private:
  std::string base_;
  std::string name_;
};

// Points `config` at `schema` with a fresh fleet key in `key_path`.
inline void use_pg_store(Config& config, const PgSchema& schema, const std::string& key_path) {
  config.store = "postgresql";
  config.pg_conninfo = schema.conninfo();
  config.pg_plugin = pg_plugin_path();
  config.fleet_key = key_path;
  if (!create_fleet_key(key_path).ok()) throw std::runtime_error("cannot create the fleet key");
}

// A loopback port where nothing listens: a stopped database server.
inline int refused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error("cannot bind on loopback");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// A loopback port that accepts connections (the kernel completes the handshake into the
// backlog) and never answers: a hung server.
class HungPort {
 public:
  HungPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 64) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot listen on loopback");
    }
    port_ = ntohs(a.sin_port);
  }
  ~HungPort() { ::close(fd_); }
  HungPort(const HungPort&) = delete;
  HungPort& operator=(const HungPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace pbx::totp::testing

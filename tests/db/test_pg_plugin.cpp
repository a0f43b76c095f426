// pbx_store_postgresql.so through its C interface (db_plugin.h), against the throwaway cluster
// of cluster.sh: statements, errors, TLS, and the deadlines that keep a login from hanging.
//
// PBX_TEST_PG_DIR (the cluster's DIR) and PBX_TEST_PG_PLUGIN (the .so) come from ctest. Without
// PBX_TEST_PG_DIR the tests skip; with it, anything that does not work is a failure.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pbx/totp/db_plugin.h"

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

// The deadline clock of db_plugin.h.
int64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Milliseconds since `start`, for the timing checks.
int64_t elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

// A loopback TCP port that refuses connections: bound (so nobody else takes it) but not
// listening, so the kernel answers a SYN with a reset.
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot bind a loopback socket: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~RefusingPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  int port() const { return port_; }

 protected:
  int fd_;
  int port_ = 0;
};

// A "hung server": a loopback port whose kernel completes the TCP handshake (listen backlog)
// but where nothing ever reads or answers, like a stopped or wedged database host.
class HungPort : public RefusingPort {
 public:
  HungPort() {
    if (port_ != 0 && ::listen(fd_, 64) != 0) ADD_FAILURE() << "listen: " << std::strerror(errno);
  }
};

class PgPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = env("PBX_TEST_PG_DIR");
    if (dir == nullptr) GTEST_SKIP() << "PBX_TEST_PG_DIR not set (run through ctest)";
    const char* path = env("PBX_TEST_PG_PLUGIN");
    ASSERT_NE(path, nullptr) << "PBX_TEST_PG_DIR is set but PBX_TEST_PG_PLUGIN is not";
    handle_ = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle_, nullptr) << ::dlerror();
    auto entry = reinterpret_cast<pbx_db_plugin_entry_fn>(::dlsym(handle_, PBX_DB_PLUGIN_ENTRY));
    ASSERT_NE(entry, nullptr) << PBX_DB_PLUGIN_ENTRY << " not exported by " << path;
    db_ = entry();
    ASSERT_NE(db_, nullptr);
    ASSERT_EQ(db_->abi, static_cast<unsigned>(PBX_DB_PLUGIN_ABI));

    std::string d(dir);
    conninfo_ = read_line(d + "/conninfo");
    conninfo_tls_ = read_line(d + "/conninfo_tls");
    socketdir_ = read_line(d + "/socketdir");
    port_ = read_line(d + "/port");
    ASSERT_FALSE(conninfo_.empty() || conninfo_tls_.empty() || socketdir_.empty() || port_.empty())
        << "no running cluster recorded in " << d << " (did pg_cluster_start pass?)";
  }

  void TearDown() override {
    for (pbx_db_conn* c : conns_) db_->finish(c);
    // Not dlclose()d: the library loads the plugin with RTLD_NODELETE too (libpq and OpenSSL
    // keep process-wide state that does not like being unloaded).
  }

  // Connects or fails the test; the connection is closed in TearDown.
  pbx_db_conn* connect(const std::string& conninfo, int64_t timeout_ms = 10000) {
    pbx_db_error err{};
    pbx_db_conn* c = db_->connect(conninfo.c_str(), monotonic_ms() + timeout_ms, &err);
    EXPECT_NE(c, nullptr) << "status " << err.status << ": " << err.message;
    EXPECT_EQ(err.status, PBX_DB_OK);
    if (c != nullptr) conns_.push_back(c);
    return c;
  }

  struct Exec {
    int status = -1;
    pbx_db_result* res = nullptr;
    pbx_db_error err{};
  };

  Exec exec(pbx_db_conn* c, const std::string& sql, const std::vector<const char*>& values = {},
            const std::vector<int>& lengths = {}, const std::vector<int>& formats = {},
            int64_t timeout_ms = 10000) {
    Exec e;
    e.status = db_->exec(c, sql.c_str(), static_cast<int>(values.size()), values.data(),
                         lengths.empty() ? nullptr : lengths.data(),
                         formats.empty() ? nullptr : formats.data(), monotonic_ms() + timeout_ms,
                         &e.res, &e.err);
    if (e.res != nullptr) results_.emplace_back(e.res, db_->clear);
    return e;
  }

  // The single value of a statement that must succeed ("" when it did not).
  std::string scalar(pbx_db_conn* c, const std::string& sql,
                     const std::vector<const char*>& values = {}) {
    Exec e = exec(c, sql, values);
    EXPECT_EQ(e.status, PBX_DB_OK) << sql << ": " << e.err.sqlstate << " " << e.err.message;
    if (e.status != PBX_DB_OK) return "";
    EXPECT_EQ(db_->ntuples(e.res), 1);
    const char* v = db_->value(e.res, 0, 0);
    return v != nullptr ? v : "<NULL>";
  }

  std::string info(pbx_db_conn* c, const char* key) {
    char out[256];
    return db_->info(c, key, out, sizeof out) == 1 ? std::string(out) : "<none>";
  }

  void* handle_ = nullptr;
  const pbx_db_plugin* db_ = nullptr;
  std::string conninfo_, conninfo_tls_, socketdir_, port_;
  std::vector<pbx_db_conn*> conns_;
  std::vector<std::unique_ptr<pbx_db_result, void (*)(pbx_db_result*)>> results_;
};

// ---------------------------------------------------------------------------------------------
// The shared object.

TEST(PgPluginExportsTest, ExportsExactlyTheEntryPoint) {
  const char* path = env("PBX_TEST_PG_PLUGIN");
  if (path == nullptr) {
    ASSERT_EQ(env("PBX_TEST_PG_DIR"), nullptr) << "PBX_TEST_PG_DIR set without PBX_TEST_PG_PLUGIN";
    GTEST_SKIP() << "PBX_TEST_PG_PLUGIN not set (run through ctest)";
  }
  std::string command = std::string("nm -D --defined-only '") + path + "' 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::set<std::string> names;
  std::string all;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    all += line;
    std::string text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    std::size_t last_space = text.rfind(' ');
    names.insert(last_space == std::string::npos ? text : text.substr(last_space + 1));
  }
  ASSERT_EQ(::pclose(pipe), 0) << "nm failed on " << path;
  EXPECT_EQ(names, (std::set<std::string>{PBX_DB_PLUGIN_ENTRY})) << all;
}

TEST_F(PgPluginTest, TableIsComplete) {
  EXPECT_NE(db_->connect, nullptr);
  EXPECT_NE(db_->finish, nullptr);
  EXPECT_NE(db_->exec, nullptr);
  EXPECT_NE(db_->ntuples, nullptr);
  EXPECT_NE(db_->nfields, nullptr);
  EXPECT_NE(db_->value, nullptr);
  EXPECT_NE(db_->clear, nullptr);
  EXPECT_NE(db_->info, nullptr);
}

// ---------------------------------------------------------------------------------------------
// Connecting, and what info() tells doctor.

TEST_F(PgPluginTest, ConnectsOverTheUnixSocket) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(scalar(c, "SELECT 1"), "1");
  EXPECT_EQ(info(c, "host"), socketdir_);
  EXPECT_EQ(info(c, "port"), port_);
  EXPECT_EQ(info(c, "dbname"), "postgres");
  EXPECT_EQ(info(c, "user"), "postgres");
  EXPECT_EQ(info(c, "server_version").rfind("15.", 0), 0u) << info(c, "server_version");
  EXPECT_EQ(info(c, "ssl"), "off");
  EXPECT_EQ(info(c, "ssl_protocol"), "<none>");
  EXPECT_EQ(info(c, "gssenc"), "off");
  EXPECT_EQ(info(c, "sslmode"), "prefer");  // libpq's default, as requested (none)
}

TEST_F(PgPluginTest, ConnectsOverTcpWithTls) {
  pbx_db_conn* c = connect(conninfo_tls_);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(info(c, "host"), "127.0.0.1");
  EXPECT_EQ(info(c, "ssl"), "on");
  std::string protocol = info(c, "ssl_protocol");
  EXPECT_TRUE(protocol == "TLSv1.3" || protocol == "TLSv1.2") << protocol;
  EXPECT_NE(info(c, "ssl_cipher"), "<none>");
  EXPECT_EQ(info(c, "sslmode"), "require");
  // The server agrees.
  EXPECT_EQ(scalar(c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t");
}

TEST_F(PgPluginTest, InfoRefusesUnknownKeysSmallBuffersAndNulls) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  char out[4] = "xyz";
  EXPECT_EQ(db_->info(c, "password", out, sizeof out), 0);
  EXPECT_EQ(db_->info(c, "user", out, sizeof out), 0);  // "postgres" does not fit: not cut
  EXPECT_EQ(db_->info(c, nullptr, out, sizeof out), 0);
  EXPECT_EQ(db_->info(c, "user", nullptr, 10), 0);
  EXPECT_EQ(db_->info(nullptr, "user", out, sizeof out), 0);
  EXPECT_EQ(db_->info(c, "user", out, 0), 0);
}

TEST_F(PgPluginTest, NullArgumentsAreRefusedNotFollowed) {
  pbx_db_error err{};
  EXPECT_EQ(db_->connect(nullptr, monotonic_ms() + 1000, &err), nullptr);
  EXPECT_EQ(err.status, PBX_DB_INTERNAL);
  EXPECT_EQ(db_->connect(nullptr, monotonic_ms() + 1000, nullptr), nullptr);
  pbx_db_result* res = reinterpret_cast<pbx_db_result*>(&err);  // must be reset to NULL
  EXPECT_EQ(db_->exec(nullptr, "SELECT 1", 0, nullptr, nullptr, nullptr, monotonic_ms() + 1000,
                      &res, &err),
            PBX_DB_INTERNAL);
  EXPECT_EQ(res, nullptr);
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(db_->exec(c, nullptr, 0, nullptr, nullptr, nullptr, monotonic_ms() + 1000, &res, &err),
            PBX_DB_INTERNAL);
  EXPECT_EQ(
      db_->exec(c, "SELECT 1", 0, nullptr, nullptr, nullptr, monotonic_ms() + 1000, nullptr, &err),
      PBX_DB_INTERNAL);
  EXPECT_EQ(
      db_->exec(c, "SELECT $1", 1, nullptr, nullptr, nullptr, monotonic_ms() + 1000, &res, &err),
      PBX_DB_INTERNAL);
  // A binary parameter needs its length.
  const char* values[] = {"ab"};
  const int formats[] = {1};
  EXPECT_EQ(db_->exec(c, "SELECT $1::bytea", 1, values, nullptr, formats, monotonic_ms() + 1000,
                      &res, &err),
            PBX_DB_INTERNAL);
  // The connection is still fine, and a NULL err is allowed.
  EXPECT_EQ(
      db_->exec(c, "SELECT 1", 0, nullptr, nullptr, nullptr, monotonic_ms() + 1000, &res, nullptr),
      PBX_DB_OK);
  db_->clear(res);
  db_->finish(nullptr);
  db_->clear(nullptr);
  EXPECT_EQ(db_->ntuples(nullptr), 0);
  EXPECT_EQ(db_->nfields(nullptr), 0);
  EXPECT_EQ(db_->value(nullptr, 0, 0), nullptr);
}

TEST_F(PgPluginTest, BadConninfoIsInternalAndNotEchoed) {
  pbx_db_error err{};
  EXPECT_EQ(db_->connect("password=hunter2-secret nonsense_key=1", monotonic_ms() + 1000, &err),
            nullptr);
  EXPECT_EQ(err.status, PBX_DB_INTERNAL);
  EXPECT_NE(std::string(err.message).find("nonsense_key"), std::string::npos) << err.message;
  EXPECT_EQ(std::string(err.message).find("hunter2"), std::string::npos) << err.message;
  // Syntax errors: libpq's own messages would quote the text at the mistake (a password with
  // an unquoted space, a bad %-escape in a URI's password).
  for (const char* bad : {"host=x password=hunter2 secret-part", "password='hunter2-secret",
                          "postgresql://u:hunter2-secret%zz@h/db"}) {
    err = pbx_db_error{};
    EXPECT_EQ(db_->connect(bad, monotonic_ms() + 1000, &err), nullptr) << bad;
    EXPECT_EQ(err.status, PBX_DB_INTERNAL) << bad;
    EXPECT_EQ(std::string(err.message).find("secret"), std::string::npos) << err.message;
  }
}

// ---------------------------------------------------------------------------------------------
// Statements.

TEST_F(PgPluginTest, TextParameters) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  Exec e = exec(c, "SELECT $1::text || '-' || $2::text, length($1::text), $3::int + 1",
                {"h\xc3\xa9llo", "w\xc3\xb6rld", "41"});
  ASSERT_EQ(e.status, PBX_DB_OK) << e.err.message;
  EXPECT_EQ(e.err.status, PBX_DB_OK);
  ASSERT_EQ(db_->ntuples(e.res), 1);
  ASSERT_EQ(db_->nfields(e.res), 3);
  EXPECT_STREQ(db_->value(e.res, 0, 0), "h\xc3\xa9llo-w\xc3\xb6rld");
  EXPECT_STREQ(db_->value(e.res, 0, 1), "5");
  EXPECT_STREQ(db_->value(e.res, 0, 2), "42");
  EXPECT_EQ(db_->value(e.res, 1, 0), nullptr);  // out of range
  EXPECT_EQ(db_->value(e.res, 0, 3), nullptr);
  EXPECT_EQ(db_->value(e.res, -1, 0), nullptr);
}

TEST_F(PgPluginTest, NullParameterIsSqlNull) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  Exec e = exec(c, "SELECT $1::text IS NULL, $1::text, $2::text", {nullptr, "x"});
  ASSERT_EQ(e.status, PBX_DB_OK) << e.err.message;
  EXPECT_STREQ(db_->value(e.res, 0, 0), "t");
  EXPECT_EQ(db_->value(e.res, 0, 1), nullptr);
  EXPECT_STREQ(db_->value(e.res, 0, 2), "x");
}

TEST_F(PgPluginTest, BinaryByteaRoundTrip) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  std::string bytes;
  std::string hex = "\\x";
  for (int i = 0; i < 256; ++i) {
    bytes.push_back(static_cast<char>(i));
    char h[3];
    std::snprintf(h, sizeof h, "%02x", i);
    hex += h;
  }
  ASSERT_EQ(exec(c, "CREATE TEMP TABLE blobs(name text, b bytea)").status, PBX_DB_OK);
  Exec ins = exec(c, "INSERT INTO blobs VALUES ($1, $2)", {"all", bytes.data()},
                  {0, static_cast<int>(bytes.size())}, {0, 1});
  ASSERT_EQ(ins.status, PBX_DB_OK) << ins.err.message;
  Exec e = exec(c, "SELECT b, length(b), b = $1 FROM blobs WHERE name = 'all'", {bytes.data()},
                {static_cast<int>(bytes.size())}, {1});
  ASSERT_EQ(e.status, PBX_DB_OK) << e.err.message;
  ASSERT_EQ(db_->ntuples(e.res), 1);
  EXPECT_EQ(std::string(db_->value(e.res, 0, 0)), hex);  // text results: bytea as "\x" hex
  EXPECT_STREQ(db_->value(e.res, 0, 1), "256");
  EXPECT_STREQ(db_->value(e.res, 0, 2), "t");
}

// Bigger than the socket buffers both ways: the non-blocking send (PQflush) and receive loops.
TEST_F(PgPluginTest, LargeParameterAndResult) {
  pbx_db_conn* c = connect(conninfo_tls_);
  ASSERT_NE(c, nullptr);
  std::string big(4 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + (i >> 9));
  Exec e = exec(c, "SELECT length($1::bytea), md5($1::bytea), $1::bytea", {big.data()},
                {static_cast<int>(big.size())}, {1});
  ASSERT_EQ(e.status, PBX_DB_OK) << e.err.message;
  EXPECT_STREQ(db_->value(e.res, 0, 0), std::to_string(big.size()).c_str());
  EXPECT_EQ(std::strlen(db_->value(e.res, 0, 2)), 2 + 2 * big.size());
}

TEST_F(PgPluginTest, MultiStatementReturnsTheLastResult) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  Exec e = exec(c,
                "CREATE TEMP TABLE m(x int); INSERT INTO m VALUES (1), (2), (3);"
                " SELECT count(*), sum(x) FROM m");
  ASSERT_EQ(e.status, PBX_DB_OK) << e.err.message;
  EXPECT_STREQ(db_->value(e.res, 0, 0), "3");
  EXPECT_STREQ(db_->value(e.res, 0, 1), "6");
  // A last statement without rows: its (empty) result, not an earlier one.
  Exec d = exec(c, "SELECT 1; DELETE FROM m WHERE x > 100");
  ASSERT_EQ(d.status, PBX_DB_OK) << d.err.message;
  EXPECT_EQ(db_->ntuples(d.res), 0);
  EXPECT_EQ(db_->nfields(d.res), 0);
}

TEST_F(PgPluginTest, EmptyStatementIsOk) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  Exec e = exec(c, "  ");
  ASSERT_EQ(e.status, PBX_DB_OK) << e.err.message;
  EXPECT_EQ(db_->ntuples(e.res), 0);
}

TEST_F(PgPluginTest, SqlErrorIsFailedWithSqlstate) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  Exec e = exec(c, "SELECT * FROM pbx_no_such_table");
  EXPECT_EQ(e.status, PBX_DB_FAILED);
  EXPECT_EQ(e.res, nullptr);
  EXPECT_EQ(e.err.status, PBX_DB_FAILED);
  EXPECT_STREQ(e.err.sqlstate, "42P01");
  std::string message = e.err.message;
  EXPECT_NE(message.find("pbx_no_such_table"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  // The connection stays usable after a server error.
  EXPECT_EQ(scalar(c, "SELECT 2"), "2");
}

TEST_F(PgPluginTest, ErrorInAMultiStatementFails) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  Exec e = exec(c, "SELECT 1; SELECT * FROM pbx_no_such_table; SELECT 2");
  EXPECT_EQ(e.status, PBX_DB_FAILED);
  EXPECT_STREQ(e.err.sqlstate, "42P01");
  EXPECT_EQ(e.res, nullptr);
  EXPECT_EQ(scalar(c, "SELECT 3"), "3");
}

// "invalid input syntax for type integer: "<value>"": the value may be a parameter.
TEST_F(PgPluginTest, ErrorMessagesDoNotQuoteParameterValues) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  Exec e = exec(c, "SELECT $1::int", {"not-a-number-secret"});
  EXPECT_EQ(e.status, PBX_DB_FAILED);
  EXPECT_STREQ(e.err.sqlstate, "22P02");
  EXPECT_EQ(std::string(e.err.message).find("secret"), std::string::npos) << e.err.message;
  // Nor does a unique violation (the key is in DETAIL, which is never used).
  ASSERT_EQ(exec(c, "CREATE TEMP TABLE u(k text PRIMARY KEY)").status, PBX_DB_OK);
  ASSERT_EQ(exec(c, "INSERT INTO u VALUES ($1)", {"key-secret"}).status, PBX_DB_OK);
  Exec dup = exec(c, "INSERT INTO u VALUES ($1)", {"key-secret"});
  EXPECT_EQ(dup.status, PBX_DB_FAILED);
  EXPECT_STREQ(dup.err.sqlstate, "23505");
  EXPECT_EQ(std::string(dup.err.message).find("secret"), std::string::npos) << dup.err.message;
}

// libpq's default notice processor would print on stderr, i.e. on the login's terminal.
TEST_F(PgPluginTest, ServerNoticesAreNotPrinted) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  ::testing::internal::CaptureStderr();
  Exec e = exec(c, "DO $$ BEGIN RAISE NOTICE 'pbx-notice'; RAISE WARNING 'pbx-warning'; END $$");
  std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(e.status, PBX_DB_OK) << e.err.message;
  EXPECT_EQ(printed, "");
}

// ---------------------------------------------------------------------------------------------
// Deadlines and lost servers: never wait past the deadline, never retry a dead connection.

TEST_F(PgPluginTest, RefusedPortIsUnreachableQuickly) {
  RefusingPort refused;
  ASSERT_NE(refused.port(), 0);
  std::string conninfo = "host=127.0.0.1 port=" + std::to_string(refused.port()) +
                         " user=postgres dbname=postgres password=hunter2-secret";
  pbx_db_error err{};
  auto start = std::chrono::steady_clock::now();
  pbx_db_conn* c = db_->connect(conninfo.c_str(), monotonic_ms() + 5000, &err);
  int64_t took = elapsed_ms(start);
  EXPECT_EQ(c, nullptr);
  db_->finish(c);
  EXPECT_EQ(err.status, PBX_DB_UNREACHABLE);
  EXPECT_NE(std::string(err.message).find("refused"), std::string::npos) << err.message;
  EXPECT_EQ(std::string(err.message).find("hunter2"), std::string::npos) << err.message;
  EXPECT_EQ(std::string(err.message).find('\n'), std::string::npos) << err.message;
  EXPECT_LT(took, 1000) << "a refused connection must not wait for the deadline";
  RecordProperty("refused_ms", std::to_string(took));
  std::printf("refused port: UNREACHABLE after %lld ms (deadline 5000 ms)\n",
              static_cast<long long>(took));
}

TEST_F(PgPluginTest, HungServerIsUnreachableAtTheDeadline) {
  HungPort hung;
  ASSERT_NE(hung.port(), 0);
  std::string conninfo =
      "host=127.0.0.1 port=" + std::to_string(hung.port()) + " user=postgres dbname=postgres";
  pbx_db_error err{};
  auto start = std::chrono::steady_clock::now();
  pbx_db_conn* c = db_->connect(conninfo.c_str(), monotonic_ms() + 400, &err);
  int64_t took = elapsed_ms(start);
  EXPECT_EQ(c, nullptr);
  db_->finish(c);
  EXPECT_EQ(err.status, PBX_DB_UNREACHABLE);
  EXPECT_NE(std::string(err.message).find("timeout"), std::string::npos) << err.message;
  // The deadline is in whole milliseconds: 1 ms of rounding either way.
  EXPECT_GE(took, 399) << "gave up before the deadline";
  EXPECT_LE(took, 400 + 300) << "waited past the deadline";
  RecordProperty("hung_ms", std::to_string(took));
  std::printf("hung server: UNREACHABLE after %lld ms (deadline 400 ms)\n",
              static_cast<long long>(took));
}

TEST_F(PgPluginTest, DeadlineAlreadyPassedFailsAtOnce) {
  pbx_db_error err{};
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(db_->connect(conninfo_.c_str(), monotonic_ms() - 1, &err), nullptr);
  EXPECT_EQ(err.status, PBX_DB_UNREACHABLE);
  EXPECT_LT(elapsed_ms(start), 100);
}

// libpq's asynchronous API has no per-host timeout, so the plugin gives each host of a list a
// share of the time: a hung first host must not keep the second from being tried.
TEST_F(PgPluginTest, HostListSkipsAHungFirstHost) {
  HungPort hung;
  ASSERT_NE(hung.port(), 0);
  std::string conninfo = "host=127.0.0.1," + socketdir_ + " port=" + std::to_string(hung.port()) +
                         "," + port_ + " user=postgres dbname=postgres";
  auto start = std::chrono::steady_clock::now();
  pbx_db_conn* c = connect(conninfo, 2000);
  int64_t took = elapsed_ms(start);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(info(c, "host"), socketdir_);
  EXPECT_EQ(info(c, "port"), port_);
  EXPECT_EQ(scalar(c, "SELECT 1"), "1");
  // The first host had half of the 2000 ms.
  EXPECT_GE(took, 990);
  EXPECT_LT(took, 2000);
  std::printf("host list (hung, live): connected to the second host after %lld ms\n",
              static_cast<long long>(took));
}

TEST_F(PgPluginTest, HostListSkipsARefusingFirstHost) {
  RefusingPort refused;
  ASSERT_NE(refused.port(), 0);
  std::string conninfo = "host=127.0.0.1," + socketdir_ +
                         " port=" + std::to_string(refused.port()) + "," + port_ +
                         " user=postgres dbname=postgres";
  auto start = std::chrono::steady_clock::now();
  pbx_db_conn* c = connect(conninfo, 5000);
  int64_t took = elapsed_ms(start);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(info(c, "host"), socketdir_);
  EXPECT_LT(took, 1000);
}

TEST_F(PgPluginTest, HostListInAUriWithOnePort) {
  // Both hosts share the one port: the first (a socket dir that does not exist) fails at once.
  std::string conninfo = "postgresql:///postgres?host=/nonexistent-pbx-socket-dir," + socketdir_ +
                         "&port=" + port_ + "&user=postgres";
  pbx_db_conn* c = connect(conninfo, 5000);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(info(c, "host"), socketdir_);
}

TEST_F(PgPluginTest, HostListOfHungHostsIsUnreachableAtTheDeadline) {
  HungPort hung1, hung2;
  std::string conninfo = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(hung1.port()) + "," +
                         std::to_string(hung2.port()) + " user=postgres dbname=postgres";
  pbx_db_error err{};
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(db_->connect(conninfo.c_str(), monotonic_ms() + 400, &err), nullptr);
  int64_t took = elapsed_ms(start);
  EXPECT_EQ(err.status, PBX_DB_UNREACHABLE);
  std::string message = err.message;
  EXPECT_NE(message.find("timeout"), message.rfind("timeout")) << "both hosts named: " << message;
  EXPECT_GE(took, 399);
  EXPECT_LE(took, 700);
}

TEST_F(PgPluginTest, StatementTimeoutKillsTheConnection) {
  pbx_db_conn* c = connect(conninfo_);
  ASSERT_NE(c, nullptr);
  auto start = std::chrono::steady_clock::now();
  Exec e = exec(c, "SELECT pg_sleep(3)", {}, {}, {}, 400);
  int64_t took = elapsed_ms(start);
  EXPECT_EQ(e.status, PBX_DB_UNREACHABLE);
  EXPECT_EQ(e.res, nullptr);
  EXPECT_NE(std::string(e.err.message).find("timeout"), std::string::npos) << e.err.message;
  EXPECT_GE(took, 399);
  EXPECT_LE(took, 700);
  std::printf("statement past its deadline: UNREACHABLE after %lld ms (deadline 400 ms)\n",
              static_cast<long long>(took));
  // The exchange cannot be resumed: the next statement fails at once, without waiting.
  start = std::chrono::steady_clock::now();
  Exec next = exec(c, "SELECT 1", {}, {}, {}, 5000);
  EXPECT_EQ(next.status, PBX_DB_UNREACHABLE);
  EXPECT_LT(elapsed_ms(start), 50);
}

TEST_F(PgPluginTest, TerminatedBackendIsUnreachable) {
  pbx_db_conn* victim = connect(conninfo_);
  pbx_db_conn* admin = connect(conninfo_);
  ASSERT_NE(victim, nullptr);
  ASSERT_NE(admin, nullptr);
  std::string pid = scalar(victim, "SELECT pg_backend_pid()");
  ASSERT_FALSE(pid.empty());
  // With a timeout, pg_terminate_backend waits until the backend is gone.
  ASSERT_EQ(scalar(admin, "SELECT pg_terminate_backend($1::int, 5000)", {pid.c_str()}), "t");
  Exec e = exec(victim, "SELECT 1");
  EXPECT_EQ(e.status, PBX_DB_UNREACHABLE) << e.err.sqlstate << " " << e.err.message;
  EXPECT_EQ(e.res, nullptr);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(exec(victim, "SELECT 1").status, PBX_DB_UNREACHABLE);
  EXPECT_LT(elapsed_ms(start), 50);
  // The other connection is unaffected.
  EXPECT_EQ(scalar(admin, "SELECT 1"), "1");
}

}  // namespace

// doctor's pg_conninfo reader: libpq's key=value and URI grammar, and which hosts are TCP; the
// failover warning for host lists.
#include "doctor/conninfo.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "doctor/checks.hpp"

namespace pbx::cli::doctor {
namespace {

ConninfoParams parsed(const std::string& text) {
  auto p = parse_conninfo(text);
  EXPECT_TRUE(p.ok()) << text << ": " << (p ? "" : p.error().message);
  return p ? *p : ConninfoParams{};
}

// "name/tcp" or "name/socket" for each host, to compare at a glance.
std::vector<std::string> hosts(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& h : conninfo_hosts(parsed(text))) {
    out.push_back(h.name + (h.tcp ? "/tcp" : "/socket"));
  }
  return out;
}

using Lines = std::vector<std::string>;

TEST(Conninfo, KeyValuesAsLibpqReadsThem) {
  EXPECT_EQ(parsed("host=db1 port=5432 dbname=pbx"),
            (ConninfoParams{{"host", "db1"}, {"port", "5432"}, {"dbname", "pbx"}}));
  EXPECT_EQ(parsed("  host = db1\tgssencmode =prefer  "),
            (ConninfoParams{{"host", "db1"}, {"gssencmode", "prefer"}}));
  EXPECT_EQ(parsed("options='-c search_path=x'"),
            (ConninfoParams{{"options", "-c search_path=x"}}));
  EXPECT_FALSE(parse_conninfo("password='it''s'").ok())
      << "no SQL-style doubling: the quote ends the value and 's' is a keyword without '='";
  EXPECT_EQ(parsed(R"(password='a\'b\\c d' sslmode=verify\-full)"),
            (ConninfoParams{{"password", R"(a'b\c d)"}, {"sslmode", "verify-full"}}));
  EXPECT_EQ(parsed("gssencmode=disable gssencmode=prefer"),
            (ConninfoParams{{"gssencmode", "prefer"}}))
      << "the later value wins";
  EXPECT_EQ(parsed("host= dbname=x"), (ConninfoParams{{"host", "dbname=x"}}))
      << "white space after '=' is skipped: the next word is the value";
  EXPECT_EQ(parsed("host='' dbname=x"), (ConninfoParams{{"host", ""}, {"dbname", "x"}}));
  EXPECT_EQ(parsed(""), ConninfoParams{});
}

TEST(Conninfo, UrisAreTakenApart) {
  EXPECT_EQ(parsed("postgresql://pbx:s%40cret@db1.example:5433/pbx?sslmode=verify-full&"
                   "gssencmode=prefer"),
            (ConninfoParams{{"user", "pbx"},
                            {"password", "s@cret"},
                            {"host", "db1.example"},
                            {"port", "5433"},
                            {"dbname", "pbx"},
                            {"sslmode", "verify-full"},
                            {"gssencmode", "prefer"}}));
  EXPECT_EQ(parsed("postgres://[2001:db8::1]:5432,db2/x"),
            (ConninfoParams{{"host", "2001:db8::1,db2"}, {"port", "5432,"}, {"dbname", "x"}}));
  EXPECT_EQ(parsed("postgresql:///pbx?host=%2Frun%2Fpostgresql"),
            (ConninfoParams{{"dbname", "pbx"}, {"host", "/run/postgresql"}}));
  EXPECT_EQ(parsed("postgresql://%2Fvar%2Frun%2Fpostgresql/pbx"),
            (ConninfoParams{{"host", "/var/run/postgresql"}, {"dbname", "pbx"}}));
  EXPECT_EQ(parsed("postgresql://db1?host=/tmp"), (ConninfoParams{{"host", "/tmp"}}))
      << "a query parameter replaces the host of the address";
  EXPECT_EQ(parsed("postgresql://db1?ssl=true"),
            (ConninfoParams{{"host", "db1"}, {"sslmode", "require"}}));
  EXPECT_EQ(parsed("postgresql://"), ConninfoParams{});
}

TEST(Conninfo, ErrorsNeverQuoteTheText) {
  for (const char* bad : {"host=db1 hunter2", "password='hunter2", "hunter2",
                          "postgresql://u:hunter2@db1/x?gssencmode", "postgresql://db1/x?a=b=c",
                          "postgresql://u:hunter2%zz@db1", "postgresql://db1/x%00",
                          "postgresql://[::1/x", "=hunter2"}) {
    auto p = parse_conninfo(bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.error().message.find("hunter2"), std::string::npos) << p.error().message;
    EXPECT_EQ(p.error().message.rfind("pg_conninfo: ", 0), 0U) << p.error().message;
  }
}

TEST(Conninfo, HostsAreTcpUnlessASocketDirectory) {
  EXPECT_EQ(hosts(""), (Lines{"/socket"})) << "libpq's default socket directory";
  EXPECT_EQ(hosts("host=/run/postgresql"), (Lines{"/run/postgresql/socket"}));
  EXPECT_EQ(hosts("host=@pbx"), (Lines{"@pbx/socket"})) << "abstract socket name";
  EXPECT_EQ(hosts("host=db1"), (Lines{"db1/tcp"}));
  EXPECT_EQ(hosts("host=localhost"), (Lines{"localhost/tcp"}));
  EXPECT_EQ(hosts("host=/run/postgresql,db2"), (Lines{"/run/postgresql/socket", "db2/tcp"}));
  EXPECT_EQ(hosts("host=/run/postgresql hostaddr=192.0.2.7"), (Lines{"/run/postgresql/tcp"}))
      << "a hostaddr is TCP whatever host says";
  EXPECT_EQ(hosts("hostaddr=192.0.2.7,"), (Lines{"192.0.2.7/tcp", "/socket"}));
  EXPECT_EQ(hosts("host=db1,db2,db3 hostaddr=192.0.2.7"), (Lines{"db1/tcp", "db2/tcp", "db3/tcp"}))
      << "lists of different lengths (libpq refuses them): the longer one counts";
  EXPECT_EQ(hosts("postgresql://db1,[::1]/x"), (Lines{"db1/tcp", "::1/tcp"}));
  EXPECT_EQ(hosts("postgresql:///x"), (Lines{"/socket"}));
  EXPECT_EQ(hosts("postgresql://%2Frun%2Fpostgresql/x"), (Lines{"/run/postgresql/socket"}));
}

}  // namespace
}  // namespace pbx::cli::doctor

// Issue 18: doctor's failover warning from what the server said (DbReport), for host lists only.
TEST(Conninfo, ReplicationWarningNeedsAHostListAndNoSynchronousStandby) {
  using pbx::cli::doctor::replication_checks;
  using pbx::cli::doctor::Status;
  pbx::totp::DbReport r;
  r.replication_known = true;
  r.synchronous_standby_names = "ANY 1 (s1, s2)";
  r.synchronous_commit = "on";
  r.standbys = 2;
  r.sync_state_visible = true;
  r.sync_standbys = 2;
  const std::string two = "host=db1,db2 target_session_attrs=read-write";
  EXPECT_TRUE(replication_checks("host=db1", r).empty());
  auto c = replication_checks(two, r);
  ASSERT_EQ(c.size(), 1U);
  EXPECT_EQ(c[0].status, Status::kPass) << c[0].message;
  EXPECT_EQ(replication_checks("postgresql://db1,db2/pbx", r).at(0).status, Status::kPass);

  auto warns = [&](const pbx::totp::DbReport& report, const std::string& why) {
    auto checks = replication_checks(two, report);
    ASSERT_EQ(checks.size(), 1U);
    EXPECT_EQ(checks[0].status, Status::kWarn) << checks[0].message;
    EXPECT_NE(checks[0].message.find(why), std::string::npos) << checks[0].message;
    EXPECT_NE(checks[0].fix.find("High availability"), std::string::npos) << checks[0].fix;
  };
  auto off = r;
  off.synchronous_commit = "local";
  warns(off, "synchronous_commit = local");
  auto none = r;
  none.synchronous_standby_names = "";
  warns(none, "synchronous_standby_names is empty");
  auto async = r;
  async.sync_standbys = 0;
  warns(async, "2 standbys connected, none of them synchronous");
  auto gone = r;
  gone.standbys = 0;
  gone.sync_standbys = 0;
  warns(gone, "no standby is connected");
  auto hidden = async;  // a role that cannot read sync_state: the settings decide
  hidden.sync_state_visible = false;
  EXPECT_EQ(replication_checks(two, hidden).at(0).status, Status::kPass);
  auto unknown = r;
  unknown.replication_known = false;
  EXPECT_EQ(replication_checks(two, unknown).at(0).status, Status::kWarn);
  // A URI with several hosts is a host list too.
  EXPECT_EQ(replication_checks("postgresql://db1:5432,db2:5432/pbx", none).at(0).status,
            Status::kWarn);
}

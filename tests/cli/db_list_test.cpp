// pbx-mfa list, temp-code and require on the database store (ctest pg.DbListTest.*): a user
// enrolled elsewhere in the fleet without an account here gets a row of their own; the temp
// code and the required mark live in the database rows.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "enroll_fixture.hpp"
#include "pg_test_db.hpp"
#include "session.hpp"

namespace pbx::cli::testing {
namespace {

using totp::testing::PgSchema;

class DbListTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    PBX_SKIP_UNLESS_PG_CLUSTER();
    schema_ = std::make_unique<PgSchema>();
    write_config(
        "recovery_codes = 2\nrequire = group:pbxtest-nosuchgroup\nstore = postgresql\n"
        "pg_conninfo = " +
        schema_->conninfo() + "\npg_plugin = " + totp::testing::pg_plugin_path() +
        "\nfleet_key = " + (tmp_ / "fleet.key") + "\n");
    ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  }
  nlohmann::json json_of(std::vector<std::string> args, int exit) {
    clear();
    EXPECT_EQ(run_cli(std::move(args)), exit) << err();
    return out().empty() ? nlohmann::json() : nlohmann::json::parse(out(), nullptr, false);
  }
  std::unique_ptr<PgSchema> schema_;
};

TEST_F(DbListTest, FleetUsersWithoutAnAccountHereHaveARow) {
  json_of({"enroll", "--user", "daemon", "--no-confirm", "--json"}, 0);
  // Another server's user: the same enrollment saved under a name this host does not know.
  auto s = store();
  auto e = s->load(user("daemon"));
  ASSERT_TRUE(e.ok()) << e.error().message;
  totp::User fleet{"pbxtest-fleet-only", static_cast<uid_t>(-1), static_cast<gid_t>(-1), ""};
  ASSERT_TRUE(s->save(fleet, *e, false).ok());

  auto j = json_of({"list", "--json"}, 0);
  ASSERT_TRUE(j.is_object()) << out();
  int fleet_rows = 0;
  for (const auto& row : j["users"]) {
    if (row["user"] == "pbxtest-fleet-only") {
      ++fleet_rows;
      EXPECT_EQ(row["enrolled"], true);
      EXPECT_EQ(row["required"], false);
      EXPECT_EQ(row["required_by"], "not-required");
      EXPECT_TRUE(row["login_shell"].is_null());
      EXPECT_EQ(row["created"], iso8601(kNow));
    } else if (row["user"] == "daemon") {
      clear();
      ASSERT_EQ(run_cli({"status", "--user", "daemon", "--json"}), 0) << err();
      EXPECT_EQ(row, nlohmann::json::parse(out()));
    }
  }
  EXPECT_EQ(fleet_rows, 1);
  clear();
  ASSERT_EQ(run_cli({"list"}), 0) << err();
  EXPECT_NE(out().find("no account on this host"), std::string::npos) << out();
}

TEST_F(DbListTest, TempCodeAndMarkAreInTheDatabase) {
  auto code = json_of({"temp-code", "--user", "daemon", "--json"}, 0);
  ASSERT_TRUE(code.is_object()) << out();
  ASSERT_EQ(run_cli({"require", "--user", "daemon"}), 0) << err();
  EXPECT_EQ(schema_->exec("SELECT count(*) FROM pbx_mfa_state"), "1");
  auto row = json_of({"status", "--user", "daemon", "--json"}, 3);
  EXPECT_EQ(row["required_by"], "marked");
  EXPECT_EQ(row["temp_code_expires"], iso8601(kNow + 3600));
  // Required and not enrolled, but daemon has no login shell: listed, not failing the check.
  json_of({"list", "--json"}, 0);
  // root has one: list says so by its exit status.
  ASSERT_EQ(run_cli({"require", "--user", "root"}), 0) << err();
  json_of({"list", "--json"}, 1);
  ASSERT_EQ(run_cli({"require", "--user", "root", "--off"}), 0) << err();
  clear();
  ASSERT_EQ(run_cli({"temp-code", "--user", "daemon", "--revoke"}), 0) << err();
  EXPECT_TRUE(json_of({"status", "--user", "daemon", "--json"}, 3)["temp_code_expires"].is_null());
}

}  // namespace
}  // namespace pbx::cli::testing

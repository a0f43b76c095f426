// pbx-mfa list: one row per account of the password database; every row equals status --json
// for that user; exit 1 while a required user is not enrolled; --not-enrolled and --stale.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "helpdesk_fixture.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::cli::testing {
namespace {

class ListTest : public HelpdeskTest {
 protected:
  void SetUp() override {
    HelpdeskTest::SetUp();
    if (IsSkipped()) return;
    write_config("recovery_codes = 2\nrequire = group:pbxtest-nosuchgroup\n");
  }
  nlohmann::json list(std::vector<std::string> extra, int exit) {
    std::vector<std::string> args = {"list", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return json_of(args, exit);
  }
  // Other tests add and remove pbxtest* accounts while this one runs: those are left out.
  static bool transient(const std::string& name) { return name.starts_with("pbxtest"); }
  static std::set<std::string> names(const nlohmann::json& j) {
    std::set<std::string> n;
    for (const auto& row : j["users"]) {
      const std::string name = row["user"];
      if (!transient(name)) n.insert(name);
    }
    return n;
  }
};

TEST_F(ListTest, OneRowPerAccountWithTheIssuesFields) {
  auto j = list({}, 0);
  ASSERT_TRUE(j.is_object()) << out();
  ASSERT_EQ(j.size(), 1u);
  std::set<std::string> accounts;
  for (const auto& n : totp::all_user_names()) {
    if (!transient(n)) accounts.insert(n);
  }
  EXPECT_EQ(names(j), accounts);
  std::size_t stable_rows = 0;  // one row per name
  for (const auto& row : j["users"]) stable_rows += transient(row["user"]) ? 0 : 1;
  EXPECT_EQ(stable_rows, accounts.size());
  for (const auto& row : j["users"]) {
    for (const char* k :
         {"user", "required", "required_by", "exempt", "enrolled", "devices", "created",
          "last_success", "recovery_codes_left", "locked_until", "temp_code_expires"}) {
      EXPECT_TRUE(row.contains(k)) << k << " in " << row.dump();
    }
  }
}

TEST_F(ListTest, EveryRowEqualsStatusJson) {
  write_config("recovery_codes = 2\nrequire = group:daemon\nexempt_groups = bin\n");
  enroll("daemon");
  clear();
  ASSERT_EQ(run_cli({"require", "--user", "root"}), 0) << err();
  clear();
  ASSERT_EQ(run_cli({"temp-code", "--user", "daemon", "--ttl", "2h"}), 0) << err();
  clock_.advance(60);
  auto j = list({}, 1);  // root is marked and not enrolled
  ASSERT_TRUE(j.is_object()) << out();
  ASSERT_GT(j["users"].size(), 2u);
  std::set<std::string> reasons;
  for (const auto& row : j["users"]) {
    const std::string name = row["user"];
    if (transient(name)) continue;
    EXPECT_EQ(row, status_json(name)) << name;
    reasons.insert(row["required_by"].get<std::string>());
  }
  // The rows cover each kind of rule.
  EXPECT_TRUE(reasons.count("marked")) << j.dump();
  EXPECT_TRUE(reasons.count("group:daemon")) << j.dump();
  EXPECT_TRUE(reasons.count("not-required")) << j.dump();
  for (const auto& row : j["users"]) {
    if (row["user"] == "daemon") {
      EXPECT_EQ(row["enrolled"], true);
      EXPECT_EQ(row["created"], iso8601(kNow));
      EXPECT_EQ(row["temp_code_expires"], iso8601(kNow + 7200));
      EXPECT_EQ(row["login_shell"], false);  // /usr/sbin/nologin
    }
    if (row["user"] == "root") {
      EXPECT_EQ(row["login_shell"], true);
    }
  }
}

// Membership through the group's member list (not the primary group), as list reads it once
// for all accounts and status asks it per account (getgrouplist).
TEST_F(ListTest, SupplementaryGroupsCountAsInStatus) {
  const std::string group = "pbxtestlistgrp";
  (void)std::system(("groupdel " + group + " 2>/dev/null").c_str());
  ASSERT_EQ(
      std::system(("groupadd " + group + " && gpasswd -a daemon " + group + " >/dev/null").c_str()),
      0);
  struct Cleanup {
    std::string name;
    ~Cleanup() { (void)std::system(("groupdel " + name).c_str()); }
  } cleanup{group};
  for (const std::string& rules : {"require = group:" + group + "\n",
                                   "require = group:root\nexempt_groups = " + group + "\n"}) {
    write_config("recovery_codes = 2\n" + rules);
    // daemon (no login shell) does not fail the check; root, required by group:root, does.
    auto j = list({}, rules.starts_with("require = group:pbx") ? 0 : 1);
    ASSERT_TRUE(j.is_object()) << out();
    bool saw_daemon = false;
    for (const auto& row : j["users"]) {
      const std::string name = row["user"];
      if (transient(name)) continue;
      EXPECT_EQ(row, status_json(name)) << name;
      if (name == "daemon") {
        saw_daemon = true;
        EXPECT_EQ(row["required_by"], rules.starts_with("require = group:pbx")
                                          ? "group:" + group
                                          : "exempt-group:" + group);
      }
    }
    EXPECT_TRUE(saw_daemon);
  }
}

TEST_F(ListTest, ExitOneWhileARequiredUserIsNotEnrolled) {
  list({}, 0);  // nobody is required
  clear();
  // daemon has no login shell: listed as required, but it does not fail the check.
  ASSERT_EQ(run_cli({"require", "--user", "daemon"}), 0) << err();
  auto quiet = list({}, 0);
  bool saw = false;
  for (const auto& row : quiet["users"]) {
    if (row["user"] != "daemon") continue;
    saw = true;
    EXPECT_EQ(row["required"], true);
    EXPECT_EQ(row["login_shell"], false);
  }
  EXPECT_TRUE(saw);
  clear();
  ASSERT_EQ(run_cli({"require", "--user", "root"}), 0) << err();
  auto j = list({}, 1);
  EXPECT_TRUE(j.is_object()) << out();  // the report is printed all the same
  clear();
  EXPECT_EQ(run_cli({"list"}), 1);
  enroll("root");
  list({}, 0);
  // require = all: every account not enrolled counts.
  write_config("recovery_codes = 2\n");
  list({}, 1);
}

TEST_F(ListTest, NotEnrolledFilter) {
  enroll("daemon");
  auto all = list({}, 0);
  auto j = list({"--not-enrolled"}, 0);
  std::set<std::string> want = names(all);
  want.erase("daemon");
  EXPECT_EQ(names(j), want);
  for (const auto& row : j["users"]) EXPECT_EQ(row["enrolled"], false);
}

TEST_F(ListTest, StaleFilter) {
  enroll("daemon");
  auto bin = json_of({"enroll", "--user", "bin", "--no-confirm", "--json"}, 0);
  // bin logs in 5 days later; daemon never does.
  clock_.advance(5 * 86400);
  ASSERT_EQ(verify("bin", code_for(bin["otpauth_uri"], clock_.now())), totp::Verdict::kAccepted);
  clock_.advance(5 * 86400);  // day 10: daemon enrolled 10 days ago, bin last in 5 days ago
  EXPECT_EQ(names(list({"--stale", "30"}, 0)), std::set<std::string>{});
  EXPECT_EQ(names(list({"--stale", "7"}, 0)), std::set<std::string>{"daemon"});
  EXPECT_EQ(names(list({"--stale", "3"}, 0)), (std::set<std::string>{"bin", "daemon"}));
  EXPECT_EQ(names(list({"--stale", "0"}, 0)), (std::set<std::string>{"bin", "daemon"}));
  // Not enrolled users are never stale; the filters exclude each other; DAYS is a number.
  EXPECT_EQ(json_of({"list", "--stale", "7", "--not-enrolled"}, 2), nullptr);
  EXPECT_EQ(json_of({"list", "--stale", "x"}, 2), nullptr);
  EXPECT_EQ(json_of({"list", "--stale", "-1"}, 2), nullptr);
}

TEST_F(ListTest, TextIsAnAlignedTable) {
  enroll("daemon");
  clear();
  ASSERT_EQ(run_cli({"list"}), 0) << err();
  auto lines = pbx::test::split_lines(out());
  ASSERT_GT(lines.size(), 2u);
  EXPECT_TRUE(lines[0].starts_with("USER ")) << lines[0];
  const std::size_t col = lines[0].find("REQUIRED");
  const std::size_t enrolled_col = lines[0].find("ENROLLED");
  ASSERT_NE(col, std::string::npos);
  bool saw_daemon = false;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].find_first_not_of(' ', col - 2), col) << lines[i];
    EXPECT_TRUE(lines[i].compare(col, 3, "yes") == 0 || lines[i].compare(col, 2, "no") == 0)
        << lines[i];
    if (lines[i].starts_with("daemon ")) {
      saw_daemon = true;
      EXPECT_EQ(lines[i].compare(enrolled_col, 4, "yes "), 0) << lines[i];
      EXPECT_NE(lines[i].find("no login shell"), std::string::npos) << lines[i];
    }
  }
  EXPECT_TRUE(saw_daemon) << out();
}

TEST_F(ListTest, NeedsRoot) {
  become("daemon");
  EXPECT_EQ(json_of({"list"}, 4), nullptr);
  EXPECT_NE(err().find("list needs root"), std::string::npos) << err();
}

}  // namespace
}  // namespace pbx::cli::testing

// pbx-mfa require: the per-user mark makes status say "marked" (and who set it, when), --off
// hands the decision back to the config, an exempt group still wins, each act is one audit line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "helpdesk_fixture.hpp"

namespace pbx::cli::testing {
namespace {

class RequireTest : public HelpdeskTest {
 protected:
  void SetUp() override {
    HelpdeskTest::SetUp();
    if (IsSkipped()) return;
    // Nobody required by the config: the mark alone decides.
    write_config("recovery_codes = 2\nrequire = group:pbxtest-nosuchgroup\n");
  }
};

TEST_F(RequireTest, MarkOnAndOff) {
  auto j = status_json("daemon");
  EXPECT_EQ(j["required"], false);
  EXPECT_EQ(j["required_by"], "not-required");

  clear();
  ASSERT_EQ(run_cli({"require", "--user", "daemon"}), 0) << err();
  EXPECT_EQ(out(), "daemon: marked as required\n  required: yes (marked)\n");
  j = status_json("daemon");
  EXPECT_EQ(j["required"], true);
  EXPECT_EQ(j["required_by"], "marked");
  EXPECT_EQ(j["exempt"], false);
  clear();
  EXPECT_EQ(run_cli({"status", "--user", "daemon"}), 3);
  EXPECT_EQ(out(),
            "daemon: not enrolled\n  required: yes (marked)\n  required mark: set by root at " +
                iso8601(kNow).get<std::string>() + " (pbx-mfa require)\n");

  // Again: unchanged, who set it and when are kept.
  clock_.advance(100);
  clear();
  ASSERT_EQ(run_cli({"require", "--user", "daemon"}), 0) << err();
  EXPECT_EQ(out(), "daemon: already marked as required\n  required: yes (marked)\n");
  clear();
  EXPECT_EQ(run_cli({"status", "--user", "daemon"}), 3);
  EXPECT_NE(out().find("set by root at " + iso8601(kNow).get<std::string>()), std::string::npos);

  clear();
  ASSERT_EQ(run_cli({"require", "--user", "daemon", "--off"}), 0) << err();
  EXPECT_EQ(out(), "daemon: required mark removed\n  required: no (not-required)\n");
  j = status_json("daemon");
  EXPECT_EQ(j["required"], false);
  EXPECT_EQ(j["required_by"], "not-required");
  clear();
  EXPECT_EQ(run_cli({"status", "--user", "daemon"}), 3);
  EXPECT_EQ(out().find("required mark"), std::string::npos) << out();

  ASSERT_EQ(audit_.size(), 3u);
  EXPECT_EQ(audit_[0], "by=root require user=daemon on");
  EXPECT_EQ(audit_[1], "by=root require user=daemon on (unchanged)");
  EXPECT_EQ(audit_[2], "by=root require user=daemon off");
}

TEST_F(RequireTest, TheMarkSurvivesEnrollmentAndReset) {
  clear();
  ASSERT_EQ(run_cli({"require", "--user", "daemon"}), 0) << err();
  enroll("daemon");
  EXPECT_EQ(status_json("daemon")["required_by"], "marked");
  clear();
  ASSERT_EQ(run_cli({"reset", "--user", "daemon"}), 0) << err();
  auto j = status_json("daemon");
  EXPECT_EQ(j["enrolled"], false);
  EXPECT_EQ(j["required_by"], "marked");
}

TEST_F(RequireTest, AnExemptGroupStillWins) {
  write_config("recovery_codes = 2\nrequire = group:pbxtest-nosuchgroup\nexempt_groups = daemon\n");
  clear();
  ASSERT_EQ(run_cli({"require", "--user", "daemon"}), 0) << err();
  EXPECT_EQ(out(), "daemon: marked as required\n  required: no (exempt-group:daemon)\n");
  EXPECT_NE(err().find("exempt_groups wins over the mark"), std::string::npos) << err();
  auto j = status_json("daemon");
  EXPECT_EQ(j["exempt"], true);
  EXPECT_EQ(j["required_by"], "exempt-group:daemon");
}

TEST_F(RequireTest, NeedsRootAndAUser) {
  const auto before = snapshot();
  EXPECT_EQ(json_of({"require"}, 2), nullptr);
  EXPECT_EQ(json_of({"require", "--user", "pbxtest-nosuchuser"}, 2), nullptr);
  become("daemon");
  EXPECT_EQ(json_of({"require", "--user", "daemon"}, 4), nullptr);
  EXPECT_EQ(json_of({"require", "--user", "daemon", "--off"}, 4), nullptr);
  EXPECT_EQ(snapshot(), before);
  EXPECT_TRUE(audit_.empty());
}

}  // namespace
}  // namespace pbx::cli::testing

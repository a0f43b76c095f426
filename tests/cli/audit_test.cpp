// The syslog side of administrative acts: every enrollment, reset, unlock, new recovery codes
// and lockout made through the CLI is one audit line naming who did what to whom; failures
// that change nothing log nothing; no line holds a secret or a code.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "enroll_fixture.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

class AuditTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
  }
  // Enrolls daemon as root without confirmation; returns the JSON printed.
  nlohmann::json enroll_daemon() {
    clear();
    EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--json"}), 0) << err();
    auto j = nlohmann::json::parse(out());
    forbidden_.push_back(j["secret"].get<std::string>());
    for (const auto& c : j["recovery_codes"]) forbidden_.push_back(c.get<std::string>());
    return j;
  }

  void TearDown() override {
    for (const auto& line : audit_) {
      for (const auto& secret : forbidden_) {
        EXPECT_EQ(line.find(secret), std::string::npos) << "audit line holds a secret: " << line;
      }
    }
  }

  std::vector<std::string> forbidden_;
};

TEST_F(AuditTest, EnrollIsOneLineNamingCallerAndUser) {
  enroll_daemon();
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_EQ(audit_[0], "by=root enrolled user=daemon");
}

TEST_F(AuditTest, ConfirmedSelfEnrollmentIsLoggedAndAFailedOneIsNot) {
  become("daemon");
  answers_ = {wrong_code(), wrong_code(), wrong_code()};
  EXPECT_EQ(run_cli({"enroll"}), 1);
  EXPECT_TRUE(audit_.empty());
  clear();
  answers_ = {right_code(), text(kRightPassword)};
  EXPECT_EQ(run_cli({"enroll"}), 0) << err();
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_EQ(audit_[0], "by=daemon enrolled user=daemon");
}

TEST_F(AuditTest, ForcedReEnrollmentSaysItReplacedOne) {
  enroll_daemon();
  clear();
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--force", "--json"}), 0);
  ASSERT_EQ(audit_.size(), 2u);
  EXPECT_EQ(audit_[1], "by=root enrolled user=daemon (replacing an earlier enrollment)");
}

TEST_F(AuditTest, ResetIsOneLineAndResetOfNobodyNone) {
  EXPECT_NE(run_cli({"reset", "--user", "daemon"}), 0);  // nothing to reset
  EXPECT_TRUE(audit_.empty());
  enroll_daemon();
  EXPECT_EQ(run_cli({"reset", "--user", "daemon"}), 0) << err();
  ASSERT_EQ(audit_.size(), 2u);
  EXPECT_EQ(audit_[1], "by=root reset user=daemon (secret and state removed)");
}

TEST_F(AuditTest, LockoutAndUnlockAreLogged) {
  write_config("recovery_codes = 0\nmax_failures = 2\nlockout = 60\n");
  enroll_daemon();
  EXPECT_EQ(run_cli({"verify", "--user", "daemon", "000000"}), 1);
  // The second wrong code locks the user out: its line says so and until when.
  run_cli({"verify", "--user", "daemon", "000001"});
  ASSERT_EQ(audit_.size(), 3u);
  EXPECT_EQ(audit_[1].find("locked out"), std::string::npos) << audit_[1];
  EXPECT_NE(audit_[2].find("verify user=daemon outcome="), std::string::npos) << audit_[2];
  EXPECT_NE(audit_[2].find("(failures 2, locked out until "), std::string::npos) << audit_[2];
  EXPECT_EQ(audit_[2].find("000001"), std::string::npos) << "a code in the log: " << audit_[2];
  clear();
  EXPECT_EQ(run_cli({"unlock", "--user", "daemon"}), 0) << err();
  ASSERT_EQ(audit_.size(), 4u);
  EXPECT_EQ(audit_[3], "by=root unlock user=daemon (failures and lockout cleared)");
}

TEST_F(AuditTest, NewRecoveryCodesAreLoggedWithoutThem) {
  enroll_daemon();
  clear();
  EXPECT_EQ(run_cli({"recovery-codes", "--user", "daemon", "--json"}), 0) << err();
  auto j = nlohmann::json::parse(out());
  for (const auto& c : j["recovery_codes"]) forbidden_.push_back(c.get<std::string>());
  ASSERT_EQ(audit_.size(), 2u);
  EXPECT_EQ(audit_[1],
            "by=root recovery-codes user=daemon (2 new codes; the old ones no longer work)");
}

TEST_F(AuditTest, NamesCannotForgeALineOrAField) {
  env_.invoking_user = "root\nfake line";
  enroll_daemon();
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_EQ(audit_[0].find('\n'), std::string::npos) << audit_[0];
  env_.invoking_user = "x user=root";  // a directory user name with a space
  EXPECT_EQ(run_cli({"unlock", "--user", "daemon"}), 0) << err();
  ASSERT_EQ(audit_.size(), 2u);
  EXPECT_EQ(audit_[1], "by=x\\x20user\\x3droot unlock user=daemon (failures and lockout cleared)");
}

}  // namespace
}  // namespace pbx::cli::testing

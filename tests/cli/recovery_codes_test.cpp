// pbx-mfa recovery-codes, in-process: a fresh set replaces the old, used-code marks are
// cleared with it (and nothing else in the state), --json, not enrolled, permissions.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "enroll_fixture.hpp"
#include "pbx/totp/verifier.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

class RecoveryCodesTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
  }
  // Enrolls daemon as root and returns the recovery codes it printed.
  std::vector<std::string> enroll_daemon(int codes = 2) {
    clear();
    EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--json", "--recovery-codes",
                       std::to_string(codes)}),
              0)
        << err();
    auto j = nlohmann::json::parse(out());
    uri_ = j["otpauth_uri"];
    return j["recovery_codes"].get<std::vector<std::string>>();
  }
  std::vector<std::string> regenerate_json(int expect_exit = 0) {
    clear();
    EXPECT_EQ(run_cli({"recovery-codes", "--user", "daemon", "--json"}), expect_exit) << err();
    if (expect_exit != 0) return {};
    auto j = nlohmann::json::parse(out());
    return j["recovery_codes"].get<std::vector<std::string>>();
  }
  std::optional<totp::Verdict> verify(const std::string& code) {
    auto c = config();
    auto s = store();
    totp::Verifier v(c, *s, clock_);
    return verdict_of(v.verify(user("daemon"), code));
  }
  totp::UserState state() {
    auto txn = store()->lock_state(user("daemon"));
    if (!txn) throw std::runtime_error(txn.error().message);
    return (*txn)->state();
  }

  std::string uri_;
};

TEST_F(RecoveryCodesTest, NotEnrolledExitsThree) {
  EXPECT_EQ(run_cli({"recovery-codes", "--user", "daemon"}), 3);
  EXPECT_NE(err().find("daemon is not enrolled"), std::string::npos) << err();
  EXPECT_EQ(out(), "");
}

TEST_F(RecoveryCodesTest, NewCodesWorkAndOldOnesNoLonger) {
  auto old_codes = enroll_daemon();
  auto before = load("daemon");
  ASSERT_TRUE(before.ok());
  auto new_codes = regenerate_json();
  ASSERT_EQ(new_codes.size(), 2u);
  auto after = load("daemon");
  ASSERT_TRUE(after.ok());
  // Same enrollment: id, secret and settings stay; only the recovery set changes.
  EXPECT_EQ(after->id, before->id);
  EXPECT_TRUE(dev0(*after).secret == dev0(*before).secret);
  EXPECT_EQ(after->created, before->created);
  EXPECT_NE(after->recovery.salt, before->recovery.salt);
  EXPECT_EQ(verify(old_codes[0]), totp::Verdict::kRejected);
  EXPECT_EQ(verify(new_codes[0]), totp::Verdict::kRecoveryAccepted);
  EXPECT_EQ(verify(new_codes[1]), totp::Verdict::kRecoveryAccepted);
}

TEST_F(RecoveryCodesTest, UsedMarksAreClearedButTheReplayMarkStays) {
  auto old_codes = enroll_daemon();
  // A TOTP login and a recovery code used under the old set.
  std::string totp_code = code_for(uri_, kNow);
  ASSERT_EQ(verify(totp_code), totp::Verdict::kAccepted);
  ASSERT_EQ(verify(old_codes[0]), totp::Verdict::kRecoveryAccepted);
  auto marked = state();
  ASSERT_EQ(marked.used_recovery, std::vector<int>{0});
  auto new_codes = regenerate_json();
  ASSERT_EQ(new_codes.size(), 2u);
  auto cleared = state();
  EXPECT_TRUE(cleared.used_recovery.empty());
  EXPECT_EQ(mark(cleared).last_step, mark(marked).last_step);
  EXPECT_EQ(cleared.enrollment_id, marked.enrollment_id);
  // Index 0 of the new set works: it was not inherited as "used".
  EXPECT_EQ(verify(new_codes[0]), totp::Verdict::kRecoveryAccepted);
  // And the TOTP code accepted before is still a replay.
  EXPECT_EQ(verify(totp_code), totp::Verdict::kReplayed);
}

TEST_F(RecoveryCodesTest, FailuresAndLockoutAreNotReset) {
  enroll_daemon();
  for (int i = 0; i < 5; ++i) (void)verify("000000");
  auto locked = state();
  ASSERT_GT(locked.locked_until, kNow);
  regenerate_json();
  auto after = state();
  EXPECT_EQ(after.failures, locked.failures);
  EXPECT_EQ(after.locked_until, locked.locked_until);
}

TEST_F(RecoveryCodesTest, CountIsTheConfigsCurrentPolicy) {
  enroll_daemon(2);
  write_config("recovery_codes = 7\n");
  EXPECT_EQ(regenerate_json().size(), 7u);
  EXPECT_EQ(load("daemon")->recovery.hashes.size(), 7u);
  write_config("recovery_codes = 0\n");
  clear();
  EXPECT_EQ(run_cli({"recovery-codes", "--user", "daemon"}), 0);
  EXPECT_NE(out().find("recovery codes removed"), std::string::npos) << out();
  EXPECT_EQ(load("daemon")->recovery.hashes.size(), 0u);
}

TEST_F(RecoveryCodesTest, JsonIsOneObjectWithUserAndCodes) {
  enroll_daemon();
  clear();
  ASSERT_EQ(run_cli({"recovery-codes", "--user", "daemon", "--json"}), 0);
  std::string text = out();
  EXPECT_EQ(text.find('\n'), text.size() - 1);
  auto j = nlohmann::json::parse(text);
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"recovery_codes", "user"}));
  EXPECT_EQ(j["user"], "daemon");
  for (const auto& c : j["recovery_codes"]) {
    EXPECT_TRUE(is_recovery_code(c.get<std::string>())) << c;
  }
  EXPECT_EQ(err(), "");
}

TEST_F(RecoveryCodesTest, TextPrintsEachCodeOnce) {
  enroll_daemon();
  clear();
  ASSERT_EQ(run_cli({"recovery-codes", "--user", "daemon"}), 0);
  const std::string printed = out();
  EXPECT_EQ(listed_codes(printed).size(), 2u);
  EXPECT_NE(printed.find("the old ones no longer work"), std::string::npos);
}

TEST_F(RecoveryCodesTest, AnotherUsersCodesNeedRoot) {
  enroll_daemon();
  auto before = load("daemon");
  become("bin");
  clear();
  EXPECT_EQ(run_cli({"recovery-codes", "--user", "daemon"}), 4);
  EXPECT_NE(err().find("needs root"), std::string::npos) << err();
  EXPECT_EQ(load("daemon")->recovery.salt, before->recovery.salt);
}

TEST_F(RecoveryCodesTest, UsageErrors) {
  EXPECT_EQ(run_cli({"recovery-codes", "--count", "3"}), 2);
  EXPECT_NE(err().find("--count"), std::string::npos) << err();
  clear();
  EXPECT_EQ(run_cli({"recovery-codes", "--help"}), 0);
  EXPECT_NE(out().find("--json"), std::string::npos);
}

}  // namespace
}  // namespace pbx::cli::testing

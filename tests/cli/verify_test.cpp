// pbx-mfa verify when the store cannot answer: the error's exit status and message, and one
// audit line that says so (never a verdict it did not reach).
#include <gtest/gtest.h>

#include <string>

#include "enroll_fixture.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

class VerifyErrorTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
    ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--qr", "none"}), 0) << err();
    clear();
    audit_.clear();
  }
};

TEST_F(VerifyErrorTest, ACorruptSecretIsAStoreErrorAndAudited) {
  ASSERT_TRUE(totp::testing::write_file(secret_file("daemon"), "not an enrollment\n", 0600));
  EXPECT_EQ(run_cli({"verify", "--user", "daemon", "123456"}), kExitStore);
  EXPECT_TRUE(err().starts_with("pbx-mfa: ")) << err();
  EXPECT_EQ(out(), "");
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_EQ(audit_[0], "by=root verify user=daemon outcome=error");
}

TEST_F(VerifyErrorTest, AnUnsafeSecretIsAStoreError) {
  ASSERT_EQ(::chmod(secret_file("daemon").c_str(), 0644), 0);
  EXPECT_EQ(run_cli({"verify", "--user", "daemon", "123456"}), kExitStore);
  EXPECT_TRUE(err().starts_with("pbx-mfa: ")) << err();
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_EQ(audit_[0], "by=root verify user=daemon outcome=error");
}

// Review L7: a code on the command line is visible to every local user (ps, /proc/PID/cmdline).
// verify reads it from standard input with "-", or asks for it without echo when none is given;
// a code given as an argument still works, with a warning that says why it is a risk.
class VerifyCodeInputTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
    ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--qr", "none"}), 0) << err();
    uri_ = find_uri(out());
    ASSERT_FALSE(uri_.empty()) << out();
    clear();
  }
  std::string uri_;
};

constexpr std::string_view kArgvWarning =
    "pbx-mfa: warning: a code on the command line can be seen by other users";

TEST_F(VerifyCodeInputTest, DashReadsTheCodeFromStandardInput) {
  in_.str(code_for(uri_, kNow) + "\n");
  EXPECT_EQ(run_cli({"verify", "--user", "daemon", "-"}), 0) << err();
  EXPECT_EQ(out(), "code accepted\n");
  EXPECT_EQ(err().find("warning"), std::string::npos) << err();
  EXPECT_TRUE(prompts_.empty()) << "'-' reads standard input without a prompt";
}

TEST_F(VerifyCodeInputTest, AWrongCodeOnStandardInputIsRejected) {
  std::string right = code_for(uri_, kNow);
  std::string wrong = right == "000000" ? "000001" : "000000";
  for (int d = -3; d <= 3; ++d) {
    if (code_for(uri_, kNow, d) == wrong) GTEST_SKIP() << "the wrong code is in the window";
  }
  in_.str(wrong + "\r\n");
  EXPECT_EQ(run_cli({"verify", "--user", "daemon", "-"}), kExitRejected);
  EXPECT_NE(err().find("code rejected"), std::string::npos) << err();
}

TEST_F(VerifyCodeInputTest, EmptyStandardInputIsAUsageError) {
  in_.str("");
  EXPECT_EQ(run_cli({"verify", "--user", "daemon", "-"}), kExitUsage);
  EXPECT_NE(err().find("no code given"), std::string::npos) << err();
}

TEST_F(VerifyCodeInputTest, NoCodeArgumentAsksWithoutEcho) {
  answers_.push_back(text(code_for(uri_, kNow)));
  EXPECT_EQ(run_cli({"verify", "--user", "daemon"}), 0) << err();
  ASSERT_EQ(prompts_.size(), 1u);
  EXPECT_EQ(prompts_[0], "Code: ");
  EXPECT_EQ(err().find("warning"), std::string::npos) << err();
}

TEST_F(VerifyCodeInputTest, ACodeOnTheCommandLineWorksWithAWarning) {
  EXPECT_EQ(run_cli({"verify", "--user", "daemon", code_for(uri_, kNow)}), 0) << err();
  EXPECT_EQ(out(), "code accepted\n");
  EXPECT_TRUE(err().starts_with(kArgvWarning)) << err();
  EXPECT_NE(err().find("(ps, /proc)"), std::string::npos) << err();
}

}  // namespace
}  // namespace pbx::cli::testing

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

}  // namespace
}  // namespace pbx::cli::testing

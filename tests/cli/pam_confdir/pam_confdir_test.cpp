// PBX_MFA_PAM_CONFDIR is honoured only by a build made with PBX_PAM_CONFDIR_ENV (development and
// test builds), never by a packaged one (review M3): there, anything running as a user could
// answer enroll's password check with a pam_permit stack. The real process environment's
// password check is built twice (cli/process_env.cpp with the switch on and off) and asked
// about a user that does not exist, with a service directory that permits everyone.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "cli.hpp"
#include "store_fixture.hpp"

#ifndef PBX_EXPECT_HONOURED
#error "PBX_EXPECT_HONOURED must be 0 or 1"
#endif

namespace pbx::cli::testing {
namespace {

TEST(PamConfdirTest, ThePasswordCheckUsesTheVariableOnlyInADevelopmentBuild) {
  totp::testing::TempDir dir;
  ASSERT_TRUE(totp::testing::write_file(
      dir / "pbx-mfa", "auth required pam_permit.so\naccount required pam_permit.so\n", 0644));
  ASSERT_EQ(::setenv("PBX_MFA_PAM_CONFDIR", dir.path().c_str(), 1), 0);
  Env env = process_env();
  // Unknown to pam_unix (the system's service or "other"); pam_permit accepts anyone.
  bool accepted = env.check_password("pbxtest-no-such-user", totp::SecretString("not-it"));
  ::unsetenv("PBX_MFA_PAM_CONFDIR");
  EXPECT_EQ(accepted, PBX_EXPECT_HONOURED != 0)
      << (accepted ? "PBX_MFA_PAM_CONFDIR was honoured" : "PBX_MFA_PAM_CONFDIR was ignored");
}

}  // namespace
}  // namespace pbx::cli::testing

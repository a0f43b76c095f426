// pbx-mfa refuses to run with privileges its caller does not have: set-uid (uid != euid) and
// anything else the kernel flags with AT_SECURE (set-gid, file capabilities). Review L9.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "cli.hpp"

namespace pbx::cli::testing {
namespace {

struct Refusal {
  int rc;
  std::string err;
};

Refusal run_with(uid_t uid, uid_t euid, bool secure_exec) {
  std::istringstream in;
  std::ostringstream out;
  std::ostringstream err;
  Env env;
  env.in = &in;
  env.out = &out;
  env.err = &err;
  env.uid = uid;
  env.euid = euid;
  env.secure_exec = secure_exec;
  int rc = run({"--version"}, env);
  return {rc, err.str()};
}

TEST(PrivilegeTest, SetUidIsRefused) {
  auto r = run_with(1000, 0, true);
  EXPECT_EQ(r.rc, kExitStore);
  EXPECT_NE(r.err.find("refusing to run with privileges its caller does not have"),
            std::string::npos)
      << r.err;
}

TEST(PrivilegeTest, SetGidOrFileCapabilitiesAreRefusedToo) {
  auto r = run_with(1000, 1000, true);
  EXPECT_EQ(r.rc, kExitStore);
  EXPECT_NE(r.err.find("set-gid or file capabilities"), std::string::npos) << r.err;
}

TEST(PrivilegeTest, AnOrdinaryProcessRuns) {
  auto r = run_with(1000, 1000, false);
  EXPECT_EQ(r.rc, 0) << r.err;
}

}  // namespace
}  // namespace pbx::cli::testing

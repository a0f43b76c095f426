// Review L9: the directories above files root trusts (config, fleet key, a secret outside a
// home, state_dir) are checked like OpenSSH's safe_path: root-owned and not writable by group
// or others, up to /. A sticky directory writable by others (/tmp) is accepted only where the
// entry below it on the path is root's, which the sticky bit keeps others from replacing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "pbx/totp/config.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/seal.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::TempDir;
using testing::write_file;

constexpr uid_t kNobody = 65534;

class TrustedParentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("directories of another owner are made with chown");
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
  }
  // A directory below the temp dir with an owner and an exact mode.
  std::string dir(const std::string& name, uid_t owner, mode_t mode) {
    std::string path = tmp_ / name;
    EXPECT_EQ(::mkdir(path.c_str(), 0700), 0) << path;
    EXPECT_EQ(::chown(path.c_str(), owner, owner), 0) << path;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0) << path;
    return path;
  }
  std::string config_in(const std::string& d) {
    std::string path = d + "/pbx-mfa.conf";
    EXPECT_TRUE(write_file(path, "digits = 8\n", 0644, 0, 0));
    return path;
  }
  static void expect_refused(const Result<Config>& r, const std::string& naming,
                             const std::string& why) {
    ASSERT_FALSE(r.ok()) << "accepted";
    EXPECT_EQ(r.error().code, Errc::kConfig);
    EXPECT_NE(r.error().message.find("its directory " + naming + " "), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  }
  TempDir tmp_;
};

TEST_F(TrustedParentsTest, ConfigInADirectoryOfAnotherUserIsRefused) {
  std::string d = dir("nobodys", kNobody, 0755);
  expect_refused(load_config(config_in(d), true, 0), d, "owned by uid 65534");
}

TEST_F(TrustedParentsTest, ConfigInAWorldWritableDirectoryIsRefused) {
  std::string d = dir("open", 0, 0777);
  expect_refused(load_config(config_in(d), true, 0), d, "mode 0777");
}

TEST_F(TrustedParentsTest, ConfigInAGroupWritableDirectoryIsRefused) {
  std::string d = dir("group", 0, 0775);
  expect_refused(load_config(config_in(d), true, 0), d, "mode 0775");
}

TEST_F(TrustedParentsTest, ADirectoryOfAnotherUserFurtherUpIsRefusedToo) {
  std::string up = dir("nobodys", kNobody, 0755);
  std::string d = up + "/etc";
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  expect_refused(load_config(config_in(d), true, 0), up, "owned by uid 65534");
}

TEST_F(TrustedParentsTest, ALinkToATrustedDirectoryIsJudgedByWhereItLeads) {
  // The file read is the one in the trusted directory, wherever the link sits.
  std::string trusted = dir("etc", 0, 0755);
  config_in(trusted);
  std::string theirs = dir("nobodys", kNobody, 0755);
  ASSERT_EQ(::symlink(trusted.c_str(), (theirs + "/link").c_str()), 0);
  auto r = load_config(theirs + "/link/pbx-mfa.conf", true, 0);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->digits, 8);
  // And a link into a directory of theirs is refused for that directory.
  config_in(theirs);
  ASSERT_EQ(::symlink(theirs.c_str(), (trusted + "/theirs").c_str()), 0);
  expect_refused(load_config(trusted + "/theirs/pbx-mfa.conf", true, 0), theirs,
                 "owned by uid 65534");
}

TEST_F(TrustedParentsTest, StickyDirectoryIsAcceptedOnlyAboveAnEntryOfRoot) {
  std::string sticky = dir("sticky", 0, 01777);
  // Root's file right in it, and root's directory in it: others cannot replace either.
  auto direct = load_config(config_in(sticky), true, 0);
  ASSERT_TRUE(direct.ok()) << direct.error().message;
  std::string roots = sticky + "/roots";
  ASSERT_EQ(::mkdir(roots.c_str(), 0755), 0);
  auto below = load_config(config_in(roots), true, 0);
  ASSERT_TRUE(below.ok()) << below.error().message;
  // Someone else's directory in it: they own that entry, so it is refused (for that
  // directory's owner)...
  std::string theirs = sticky + "/theirs";
  ASSERT_EQ(::mkdir(theirs.c_str(), 0755), 0);
  ASSERT_EQ(::chown(theirs.c_str(), kNobody, kNobody), 0);
  expect_refused(load_config(config_in(theirs), true, 0), theirs, "owned by uid 65534");
  // ...and a sticky directory that is not root's is refused whatever is below it.
  std::string their_sticky = dir("their-sticky", kNobody, 01777);
  std::string inner = their_sticky + "/roots";
  ASSERT_EQ(::mkdir(inner.c_str(), 0755), 0);
  expect_refused(load_config(config_in(inner), true, 0), their_sticky, "owned by uid 65534");
}

TEST_F(TrustedParentsTest, FleetKeyInAWritableDirectoryIsRefused) {
  std::string d = dir("keys", 0, 0777);
  std::string key = d + "/fleet.key";
  ASSERT_TRUE(write_file(key, std::string(32, 'k'), 0400, 0, 0));
  auto r = load_fleet_key(key, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnsafe);
  EXPECT_NE(r.error().message.find("its directory " + d + " has mode 0777"), std::string::npos)
      << r.error().message;
  ASSERT_EQ(::chmod(d.c_str(), 0700), 0);
  EXPECT_TRUE(load_fleet_key(key, 0).ok());
}

TEST_F(TrustedParentsTest, SecretOutsideAHomeAndStateDirInADirectoryOfAnotherUserAreRefused) {
  std::string theirs = dir("nobodys", kNobody, 0755);
  std::string secrets = theirs + "/secrets";
  ASSERT_EQ(::mkdir(secrets.c_str(), 0700), 0);
  ASSERT_TRUE(write_file(secrets + "/daemon", "not read\n", 0600, 0, 0));
  Config config;
  config.secret_path = secrets + "/%u";
  config.state_dir = theirs + "/state";
  ASSERT_EQ(::mkdir(config.state_dir.c_str(), 0700), 0);
  auto store = open_store(config);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto user = lookup_user("daemon");
  ASSERT_TRUE(user.ok());
  auto loaded = (*store)->load(*user);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, Errc::kUnsafe);
  EXPECT_NE(loaded.error().message.find("its directory " + theirs + " is owned by uid 65534"),
            std::string::npos)
      << loaded.error().message;
  // Nor does root write a secret there (whoever owns the directory could move it).
  Enrollment e;
  e.id = std::string(testing::kIdA);
  dev0(e).secret = testing::bytes_of(testing::kRfcKey);
  e.created = testing::kT0;
  ASSERT_EQ(::unlink((secrets + "/daemon").c_str()), 0);
  auto saved = (*store)->save(*user, e, true);
  ASSERT_FALSE(saved.ok());
  EXPECT_EQ(saved.error().code, Errc::kUnsafe);
  EXPECT_NE(saved.error().message.find("its directory " + theirs + " is owned by uid 65534"),
            std::string::npos)
      << saved.error().message;
  EXPECT_NE(::access((secrets + "/daemon").c_str(), F_OK), 0) << "written anyway";
  auto state = (*store)->lock_state(*user);
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.error().code, Errc::kUnsafe);
  EXPECT_NE(state.error().message.find("state_dir " + config.state_dir + ": its directory " +
                                       theirs + " is owned by uid 65534"),
            std::string::npos)
      << state.error().message;
}

}  // namespace
}  // namespace pbx::totp

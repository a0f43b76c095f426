// Owner checks and the process's effective uid: root trusts only root; a process that is not
// root trusts root and its own euid where root is required (what lets scripts/demo run the
// module and the CLI on a sandbox the invoking user owns), and nothing else changes.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>

#include "pbx/totp/config.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/store.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::errc_or_ok;
using testing::kOtherUid;  // 65534
using testing::run_in_child;
using testing::TempDir;
using testing::write_file;

constexpr uid_t kThirdUid = 65533;
constexpr int kOk = -1;  // what errc_or_ok returns for success

// Runs `fn` in a child whose real, effective and saved uid and gid are `uid` (needs root).
int as_uid(uid_t uid, const std::function<int()>& fn) {
  auto r = run_in_child(
      [&] {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 ||
            ::setresuid(uid, uid, uid) != 0 || ::geteuid() != uid) {
          return -100;
        }
        return fn();
      },
      std::chrono::seconds(20));
  return r.value_or(-101);
}

std::string config_text(const std::string& dir) {
  return "secret_path = " + dir + "/secrets/%u\nstate_dir = " + dir + "/state\n";
}

Enrollment test_enrollment() {
  Enrollment e;
  e.id = std::string(testing::kIdA);
  dev0(e).secret = testing::bytes_of(testing::kRfcKey);
  e.created = testing::kT0;
  return e;
}

// A tree other uids can walk through: <tmp>/secrets (0711) and <tmp>/state.
class EuidTrust : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0711), 0);
    ASSERT_EQ(::mkdir((tmp_ / "secrets").c_str(), 0711), 0);
    ASSERT_EQ(::mkdir((tmp_ / "state").c_str(), 0700), 0);
    config_.secret_path = tmp_ / "secrets/%u";
    config_.state_dir = tmp_ / "state";
    config_.trusted_uid = 0;  // as the module and the CLI set it
  }

  // A secret for `user` outside every home, owned by `owner`.
  void write_secret(const User& user, uid_t owner) {
    ASSERT_TRUE(write_file(tmp_ / ("secrets/" + user.name), serialize_enrollment(test_enrollment()),
                           0600, owner, owner));
  }

  int load_as(uid_t euid, const User& user) {
    Config config = config_;
    return as_uid(euid, [config, user] {
      auto store = open_store(config);
      if (!store) return errc_or_ok(store);
      return errc_or_ok((*store)->load(user));
    });
  }

  TempDir tmp_;
  Config config_;
  User demo_{"demo", kOtherUid, kOtherUid, "/nonexistent/home/demo"};
};

bool mentions(const Result<Config>& r, const std::string& text) {
  return !r.ok() && r.error().message.find(text) != std::string::npos;
}

TEST_F(EuidTrust, RootProcessRefusesAConfigOwnedByAnyoneElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing an owner needs root";
  std::string path = tmp_ / "pbx-mfa.conf";
  ASSERT_TRUE(write_file(path, config_text(tmp_.path()), 0644, kOtherUid, kOtherUid));
  auto r = load_config(path, true, 0);
  EXPECT_TRUE(mentions(r, "owned by uid 65534, expected uid 0"))
      << (r.ok() ? "accepted" : r.error().message);
  ASSERT_TRUE(write_file(path, config_text(tmp_.path()), 0644, 0, 0));
  EXPECT_TRUE(load_config(path, true, 0).ok());
}

TEST_F(EuidTrust, NonRootProcessTrustsRootAndItsOwnEuidOnly) {
  std::string path = tmp_ / "pbx-mfa.conf";
  if (::geteuid() != 0) {
    // Not root: our own file is trusted where root is required.
    ASSERT_TRUE(write_file(path, config_text(tmp_.path()), 0644, ::geteuid(), ::getegid()));
    auto r = load_config(path, true, 0);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return;
  }
  auto load = [path] { return errc_or_ok(load_config(path, true, 0)); };
  ASSERT_TRUE(write_file(path, config_text(tmp_.path()), 0644, kOtherUid, kOtherUid));
  EXPECT_EQ(as_uid(kOtherUid, load), kOk) << "its own euid's config";
  EXPECT_NE(as_uid(kThirdUid, load), kOk) << "another uid's config";
  ASSERT_TRUE(write_file(path, config_text(tmp_.path()), 0644, 0, 0));
  EXPECT_EQ(as_uid(kOtherUid, load), kOk) << "root stays trusted";
  EXPECT_EQ(as_uid(kThirdUid, load), kOk) << "root stays trusted";
  // The other checks stay: group-writable is refused whoever owns it.
  ASSERT_TRUE(write_file(path, config_text(tmp_.path()), 0664, kOtherUid, kOtherUid));
  EXPECT_NE(as_uid(kOtherUid, load), kOk) << "group-writable config of its own euid";
}

TEST_F(EuidTrust, SecretOutsideAHomeOwnedByTheEuidIsAcceptedOnlyWhenTheEuidMatches) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing owners and uids needs root";
  write_secret(demo_, kOtherUid);
  EXPECT_EQ(load_as(kOtherUid, demo_), kOk) << "process euid owns the secret";
  EXPECT_NE(load_as(kThirdUid, demo_), kOk) << "process of another uid";
  // A root process: a secret outside a home must be root's.
  auto store = open_store(config_);
  ASSERT_TRUE(store.ok());
  auto r = (*store)->load(demo_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnsafe) << r.error().message;
  EXPECT_NE(r.error().message.find("owned by uid 65534, expected uid 0"), std::string::npos)
      << r.error().message;
  // A root-owned secret stays good for everyone (root reads it; others cannot open 0600).
  write_secret(demo_, 0);
  EXPECT_TRUE((*store)->load(demo_).ok());
}

TEST_F(EuidTrust, StateDirOfAnotherNonRootUidIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing owners and uids needs root";
  ASSERT_EQ(::chown(config_.state_dir.c_str(), kOtherUid, kOtherUid), 0);
  Config config = config_;
  User demo = demo_;
  auto peek = [config, demo] {
    auto store = open_store(config);
    if (!store) return errc_or_ok(store);
    return errc_or_ok((*store)->peek_state(demo));
  };
  EXPECT_EQ(as_uid(kOtherUid, peek), kOk) << "its own state_dir";
  EXPECT_EQ(as_uid(kThirdUid, peek), static_cast<int>(Errc::kUnsafe)) << "another uid's state_dir";
  auto store = open_store(config_);
  ASSERT_TRUE(store.ok());
  auto r = (*store)->peek_state(demo_);
  ASSERT_FALSE(r.ok()) << "root process, state_dir of uid 65534";
  EXPECT_EQ(r.error().code, Errc::kUnsafe) << r.error().message;
}

}  // namespace
}  // namespace pbx::totp

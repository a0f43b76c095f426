// Issue 20: what the file store remembers within one login (one store object) to save system
// calls: the directories its parent walks found trusted, and the secret it read. Neither may
// outlive the store, hide a directory made hostile, or let a secret replaced during the login
// be used with the state of another enrollment.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>
#include <thread>

#include "device_access.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/verifier.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::code_for_step;
using testing::kIdA;
using testing::kIdB;
using testing::kT0;
using testing::step_of;

constexpr uid_t kNobody = 65534;

class LoginFileCacheTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("directories of another owner are made with chown");
    if (testing::pg_store_wanted()) GTEST_SKIP() << "files store only";
    SetUpFiles();
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
  }

  // secrets and state below <tmp>/top/mid, all root's and 0755 above the private ones.
  void nest() {
    top_ = tmp_ / "top";
    mid_ = top_ + "/mid";
    make_tree(top_, 0);
    config_.secret_path = mid_ + "/secrets/%u";
    config_.state_dir = mid_ + "/state";
    secrets_dir_ = mid_ + "/secrets";
    state_dir_ = config_.state_dir;
    reopen();
  }
  static void make_tree(const std::string& top, uid_t top_owner) {
    ASSERT_EQ(::mkdir(top.c_str(), 0755), 0);
    ASSERT_EQ(::chown(top.c_str(), top_owner, top_owner), 0);
    ASSERT_EQ(::mkdir((top + "/mid").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((top + "/mid/secrets").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((top + "/mid/state").c_str(), 0700), 0);
  }
  std::unique_ptr<Store> login_store() {
    auto s = open_store(config_);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return std::move(s.value());
  }
  // Waits until the secret's last change is old enough for the store to keep what it read
  // (file_store.cpp, kRacyCtimeSeconds): at most about two seconds.
  void wait_secret_settled(const User& user) {
    struct stat st {};
    ASSERT_EQ(::lstat(secret_file(user).c_str(), &st), 0);
    while (std::time(nullptr) <= st.st_ctim.tv_sec + 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  static void expect_unsafe_naming(const Status& st, const std::string& dir) {
    ASSERT_FALSE(st.ok()) << "accepted";
    EXPECT_EQ(st.error().code, Errc::kUnsafe) << st.error().message;
    EXPECT_NE(st.error().message.find("its directory " + dir + " "), std::string::npos)
        << st.error().message;
  }
  template <class T>
  static Status status_of(const Result<T>& r) {
    if (r.ok()) return Ok{};
    return r.error();
  }

  std::string top_;
  std::string mid_;
};

TEST_F(LoginFileCacheTest, ADirectoryMadeHostileBetweenTwoLoginsIsRefusedAtTheSecond) {
  nest();
  enroll(alice_);
  {
    auto first = login_store();
    ASSERT_TRUE(first->load(alice_).ok());
    ASSERT_TRUE(first->lock_state(alice_).ok());
  }
  ASSERT_EQ(::chmod(top_.c_str(), 0777), 0);
  auto second = login_store();
  expect_unsafe_naming(status_of(second->load(alice_)), top_);
  expect_unsafe_naming(status_of(second->lock_state(alice_)), top_);
  expect_unsafe_naming(status_of(second->peek_state(alice_)), top_);
}

TEST_F(LoginFileCacheTest, TheDirectoryAboveIsCheckedAgainWithinALogin) {
  nest();
  enroll(alice_);
  auto login = login_store();
  ASSERT_TRUE(login->peek_state(alice_).ok());
  // state_dir's own directory, made writable by others after the first look.
  ASSERT_EQ(::chmod(mid_.c_str(), 0777), 0);
  expect_unsafe_naming(status_of(login->lock_state(alice_)), mid_);
}

TEST_F(LoginFileCacheTest, ADirectoryReplacedAtTheSamePathIsWalkedAgain) {
  nest();
  enroll(alice_);
  auto login = login_store();
  ASSERT_TRUE(login->peek_state(alice_).ok());
  // Another tree at the same path, its top someone else's: the remembered (dev, ino) of top
  // and mid no longer match, so the walk goes on and finds it.
  ASSERT_EQ(::rename(top_.c_str(), (top_ + ".old").c_str()), 0);
  make_tree(top_, kNobody);
  expect_unsafe_naming(status_of(login->lock_state(alice_)), top_);
}

TEST_F(LoginFileCacheTest, ASecretReplacedDuringALoginIsReadAgainUnderTheLock) {
  Enrollment a = enroll(alice_, kIdA);
  wait_secret_settled(alice_);
  FixedClock clock(kT0);
  auto login = login_store();
  Verifier verifier(config_, *login, clock);
  auto st = verifier.status(alice_);
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_TRUE(st->enrolled);
  // Re-enrolled meanwhile (another process: a new file renamed into place), another key.
  Enrollment b = make_enrollment(kIdB);
  dev0(b).secret = testing::bytes_of("abcdefghijabcdefghij");
  ASSERT_TRUE(store().save(alice_, b, /*overwrite=*/true).ok());
  ASSERT_NE(code_for_step(a, step_of(a, kT0)), code_for_step(b, step_of(b, kT0)));
  auto old_code = verifier.verify(alice_, code_for_step(a, step_of(a, kT0)));
  ASSERT_TRUE(old_code.ok()) << old_code.error().message;
  EXPECT_EQ(old_code->verdict, Verdict::kRejected);
  auto new_code = verifier.verify(alice_, code_for_step(b, step_of(b, kT0)));
  ASSERT_TRUE(new_code.ok()) << new_code.error().message;
  EXPECT_EQ(new_code->verdict, Verdict::kAccepted);
  EXPECT_EQ(read_state(alice_).enrollment_id, kIdB);
}

TEST_F(LoginFileCacheTest, ASecretRewrittenInPlaceDuringALoginIsReadAgain) {
  Enrollment a = enroll(alice_, kIdA);
  // B's bytes, of the same length, written over A's file (same inode): only its times tell.
  Enrollment b = make_enrollment(kIdB);
  dev0(b).secret = testing::bytes_of("abcdefghijabcdefghij");
  ASSERT_TRUE(store().save(bob_, b, /*overwrite=*/true).ok());
  auto b_bytes = testing::read_file(secret_file(bob_));
  ASSERT_TRUE(b_bytes.has_value());
  wait_secret_settled(alice_);
  FixedClock clock(kT0);
  auto login = login_store();
  Verifier verifier(config_, *login, clock);
  ASSERT_TRUE(verifier.status(alice_).ok());
  int fd = ::open(secret_file(alice_).c_str(), O_WRONLY | O_TRUNC | O_NOFOLLOW);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, b_bytes->data(), b_bytes->size()), static_cast<ssize_t>(b_bytes->size()));
  ::close(fd);
  auto old_code = verifier.verify(alice_, code_for_step(a, step_of(a, kT0)));
  ASSERT_TRUE(old_code.ok()) << old_code.error().message;
  EXPECT_EQ(old_code->verdict, Verdict::kRejected);
  EXPECT_EQ(read_state(alice_).enrollment_id, kIdB);
}

TEST_F(LoginFileCacheTest, ASecretMadeUnsafeDuringALoginIsRefused) {
  enroll(alice_, kIdA);
  wait_secret_settled(alice_);
  auto login = login_store();
  ASSERT_TRUE(login->load(alice_).ok());
  ASSERT_EQ(::chmod(secret_file(alice_).c_str(), 0644), 0);
  auto again = login->load(alice_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::kUnsafe) << again.error().message;
}

}  // namespace
}  // namespace pbx::totp

// The file store: round trips, ownership and modes, and hostile files refused without a change.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/state_file.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/verifier.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using namespace std::chrono_literals;
using testing::code_for_step;
using testing::errc_or_ok;
using testing::exists_nofollow;
using testing::has_errc;
using testing::is_ok;
using testing::kIdA;
using testing::kIdB;
using testing::kOtherUid;
using testing::kStep;
using testing::kT0;
using testing::kVerifyError;
using testing::lstat_of;
using testing::read_file;
using testing::run_in_child;
using testing::snapshot;
using testing::snapshot_diff;
using testing::step_of;
using testing::verdict_code;
using testing::verdict_code_name;
using testing::verdict_of;
using testing::write_file;

constexpr int kOk = -1;  // what errc_or_ok returns for success

std::string octal(mode_t mode) {
  char buf[16];
  (void)std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
  return buf;
}

// Names in `dir` that look like the store's temp files for `user`.
int temp_files(const std::string& dir, const std::string& user) {
  int n = 0;
  for (const auto& [name, info] : testing::snapshot(dir)) {
    if (name.rfind("./." + user + ".state.", 0) == 0) ++n;
  }
  return n;
}

class FileStoreTest : public testing::StoreFixture {
 protected:
  // Enrolls alice and logs her in once, so her secret, state and lock files all exist.
  void enroll_and_login() {
    enrollment_ = enroll(alice_);
    ASSERT_EQ(verify_at(alice_, kT0, code_at(kT0)), Verdict::kAccepted);
    ASSERT_TRUE(exists_nofollow(state_file(alice_)));
    ASSERT_TRUE(exists_nofollow(lock_file(alice_)));
  }

  std::string code_at(std::int64_t t, int offset = 0) const {
    return code_for_step(enrollment_, step_of(enrollment_, t) + offset);
  }

  std::optional<Verdict> verify_at(const User& user, std::int64_t t, const std::string& code) {
    FixedClock clock(t);
    Verifier verifier(config_, store(), clock);
    return verdict_of(verifier.verify(user, code));
  }

  // store.load(alice) with a fresh store in a child: the error (or kOk), nullopt if it hung.
  std::optional<int> load_in_child() {
    return run_in_child(
        [this] {
          auto opened = open_store(config_);
          if (!opened.ok()) return errc_or_ok(opened);
          return errc_or_ok(opened.value()->load(alice_));
        },
        1000ms);
  }

  // A login by alice with a right code, in a child: verdict_code * 100 + error code + 1 (0:
  // none).
  std::optional<int> verify_in_child(std::int64_t t) {
    std::string code = code_at(t);
    return run_in_child(
        [this, t, code] {
          auto opened = open_store(config_);
          if (!opened.ok()) return kVerifyError * 100;
          FixedClock clock(t);
          Verifier verifier(config_, *opened.value(), clock);
          auto out = verifier.verify(alice_, code);
          return verdict_code(out) * 100 + (out.ok() ? 0 : static_cast<int>(out.error().code) + 1);
        },
        1000ms);
  }

  // Both load()/lock_state() (whichever `probe` says) and a login refuse with `expected`,
  // quickly, and leave every file exactly as it was.
  void expect_refused(const std::function<std::optional<int>()>& probe, Errc expected,
                      const std::string& what) {
    SCOPED_TRACE(what);
    testing::Snapshot before = snapshot(tmp_.path());
    std::optional<int> got = probe();
    ASSERT_TRUE(got.has_value()) << "did not return within 1 s";
    EXPECT_EQ(*got, static_cast<int>(expected))
        << "got " << (*got == kOk ? "success" : errc_name(static_cast<Errc>(*got)));
    EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");

    // A login with a right code (one step later than the last one) fails closed.
    std::optional<int> login = verify_in_child(kT0 + 30);
    ASSERT_TRUE(login.has_value()) << "login did not return within 1 s";
    EXPECT_EQ(*login / 100, kVerifyError) << "verdict " << verdict_code_name(*login / 100);
    EXPECT_EQ(*login % 100, static_cast<int>(expected) + 1) << "the error";
    EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
  }

  void expect_secret_refused(Errc expected, const std::string& what) {
    expect_refused([this] { return load_in_child(); }, expected, what);
  }
  void expect_state_refused(Errc expected, const std::string& what) {
    expect_refused([this] { return lock_in_child(); }, expected, what);
  }

  // Replaces alice's secret file with `content` (a regular file with this mode and owner).
  void plant_secret(const std::string& content, mode_t mode = 0600, uid_t uid = 0) {
    ASSERT_EQ(::unlink(secret_file(alice_).c_str()), 0);
    ASSERT_TRUE(write_file(secret_file(alice_), content, mode, uid, uid));
  }
  void plant_state(const std::string& content, mode_t mode = 0600, uid_t uid = 0) {
    ASSERT_EQ(::unlink(state_file(alice_).c_str()), 0);
    ASSERT_TRUE(write_file(state_file(alice_), content, mode, uid, uid));
  }

  Enrollment enrollment_;
};

void expect_same(const Enrollment& a, const Enrollment& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_TRUE(dev0(a).secret == dev0(b).secret);
  EXPECT_EQ(dev0(a).algorithm, dev0(b).algorithm);
  EXPECT_EQ(dev0(a).digits, dev0(b).digits);
  EXPECT_EQ(dev0(a).period, dev0(b).period);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.recovery.salt, b.recovery.salt);
  EXPECT_EQ(a.recovery.hashes, b.recovery.hashes);
}

// ---------------------------------------------------------------------------------------------
// Round trips, owners, modes

TEST_F(FileStoreTest, SaveThenLoadRoundTrip) {
  Enrollment e = make_enrollment();
  dev0(e).algorithm = Algorithm::kSha512;
  dev0(e).digits = 8;
  dev0(e).period = 60;
  ASSERT_TRUE(is_ok(store().save(alice_, e, false)));
  auto loaded = store().load(alice_);
  ASSERT_TRUE(is_ok(loaded));
  expect_same(e, loaded.value());
  // Another store instance (another login) sees the same.
  reopen();
  loaded = store().load(alice_);
  ASSERT_TRUE(is_ok(loaded));
  expect_same(e, loaded.value());
}

TEST_F(FileStoreTest, SecretOutsideHomeIsRootOwnedMode0600) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll(alice_);
  auto st = lstat_of(secret_file(alice_));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISREG(st->st_mode));
  EXPECT_EQ(st->st_uid, 0U);
  EXPECT_EQ(st->st_mode & 07777, 0600U);
  // No temp file is left next to it.
  testing::Snapshot files = snapshot(secrets_dir_);
  EXPECT_EQ(files.size(), 2U) << snapshot_diff({}, files);
}

TEST_F(FileStoreTest, LoadAcceptsReadOnlyMode0400) {
  Enrollment e = enroll(alice_);
  ASSERT_EQ(::chmod(secret_file(alice_).c_str(), 0400), 0);
  auto loaded = store().load(alice_);
  ASSERT_TRUE(is_ok(loaded));
  expect_same(e, loaded.value());
}

TEST_F(FileStoreTest, LoadWithoutSecretIsNotEnrolled) {
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kNotEnrolled));
}

TEST_F(FileStoreTest, SaveWithoutOverwriteKeepsTheExistingEnrollment) {
  Enrollment first = enroll(alice_, kIdA);
  std::string bytes = read_file(secret_file(alice_)).value();
  testing::Snapshot before = snapshot(tmp_.path());
  Enrollment second = make_enrollment(kIdB);
  EXPECT_TRUE(has_errc(store().save(alice_, second, false), Errc::kExists));
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
  auto loaded = store().load(alice_);
  ASSERT_TRUE(is_ok(loaded));
  EXPECT_EQ(loaded->id, std::string(kIdA));
  EXPECT_EQ(read_file(secret_file(alice_)), bytes);
}

TEST_F(FileStoreTest, SaveWithOverwriteReplaces) {
  enroll(alice_, kIdA);
  Enrollment second = make_enrollment(kIdB);
  dev0(second).secret = testing::bytes_of("another secret of 20");
  ASSERT_TRUE(is_ok(store().save(alice_, second, true)));
  auto loaded = store().load(alice_);
  ASSERT_TRUE(is_ok(loaded));
  expect_same(second, loaded.value());
}

TEST_F(FileStoreTest, RemoveDeletesSecretAndState) {
  enroll_and_login();
  ASSERT_TRUE(is_ok(store().remove(alice_)));
  EXPECT_FALSE(exists_nofollow(secret_file(alice_)));
  EXPECT_FALSE(exists_nofollow(state_file(alice_)));
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kNotEnrolled));
  EXPECT_TRUE(has_errc(store().remove(alice_), Errc::kNotEnrolled));
  EXPECT_EQ(verify_at(alice_, kT0 + 30, code_at(kT0 + 30)), Verdict::kNotEnrolled);
}

TEST_F(FileStoreTest, RemoveLeavesOtherUsersAlone) {
  enroll_and_login();
  enroll(bob_, kIdB);
  ASSERT_EQ(verify_at(bob_, kT0, code_at(kT0)), Verdict::kAccepted);
  ASSERT_TRUE(is_ok(store().remove(alice_)));
  EXPECT_TRUE(is_ok(store().load(bob_)));
  EXPECT_TRUE(exists_nofollow(state_file(bob_)));
}

TEST_F(FileStoreTest, StateRoundTripIsRootOwnedMode0600) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll(alice_);
  {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    EXPECT_EQ(mark(txn.value()->state()).last_step, kNoStep) << "no state yet: empty";
    EXPECT_EQ(txn.value()->state().failures, 0);
    UserState next;
    next.enrollment_id = std::string(kIdA);
    mark(next).last_step = 123;
    next.failures = 2;
    next.used_recovery = {1};
    ASSERT_TRUE(is_ok(txn.value()->commit(next)));
  }
  reopen();
  UserState got = read_state(alice_);
  EXPECT_EQ(got.enrollment_id, std::string(kIdA));
  EXPECT_EQ(mark(got).last_step, 123);
  EXPECT_EQ(got.failures, 2);
  EXPECT_EQ(got.used_recovery, std::vector<int>{1});
  auto st = lstat_of(state_file(alice_));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISREG(st->st_mode));
  EXPECT_EQ(st->st_uid, 0U);
  EXPECT_EQ(st->st_mode & 07777, 0600U);
  EXPECT_EQ(temp_files(state_dir_, "alice"), 0) << "temp file left behind";
}

TEST_F(FileStoreTest, MissingStateDirIsCreatedRootOnly) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  config_.state_dir = tmp_ / "new-state";
  reopen();
  enroll(alice_);
  auto txn = store().lock_state(alice_);
  ASSERT_TRUE(is_ok(txn));
  auto st = lstat_of(config_.state_dir);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISDIR(st->st_mode));
  EXPECT_EQ(st->st_uid, 0U);
  EXPECT_EQ(st->st_mode & 07777, 0700U);
}

TEST_F(FileStoreTest, StateDirWithoutParentIsAnErrorNotCreated) {
  config_.state_dir = tmp_ / "missing-parent/state";
  reopen();
  enroll(alice_);
  testing::Snapshot before = snapshot(tmp_.path());
  std::optional<int> got = lock_in_child();
  ASSERT_TRUE(got.has_value());
  EXPECT_NE(*got, kOk);
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

// ---------------------------------------------------------------------------------------------
// Secrets in the user's home: owned by and written as the user

class FileStoreHomeTest : public FileStoreTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("chowns the home to another user");
    FileStoreTest::SetUp();
    // The user must be able to walk to its home, as on a real system.
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0711), 0);
    home_ = tmp_ / "home";
    ASSERT_EQ(::mkdir(home_.c_str(), 0700), 0);
    ASSERT_EQ(::chown(home_.c_str(), kOtherUid, kOtherUid), 0);
    carol_ = User{"carol", kOtherUid, kOtherUid, home_};
    config_.secret_path = "%h/.pbx-mfa";
    reopen();
  }

  std::string home_secret() const { return home_ + "/.pbx-mfa"; }

  std::string home_;
  User carol_;
};

TEST_F(FileStoreHomeTest, SecretInHomeIsOwnedByTheUserMode0600) {
  Enrollment e = enroll(carol_);
  auto st = lstat_of(home_secret());
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISREG(st->st_mode));
  EXPECT_EQ(st->st_uid, kOtherUid);
  EXPECT_EQ(st->st_mode & 07777, 0600U);
  auto loaded = store().load(carol_);
  ASSERT_TRUE(is_ok(loaded));
  expect_same(e, loaded.value());
  // The state still lives in the root-owned state dir, never in the home.
  enrollment_ = e;
  EXPECT_EQ(verify_at(carol_, kT0, code_at(kT0)), Verdict::kAccepted);
  auto state = lstat_of(state_file(carol_));
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->st_uid, 0U);
  testing::Snapshot home = snapshot(home_);
  EXPECT_EQ(home.size(), 2U) << snapshot_diff({}, home);
}

TEST_F(FileStoreHomeTest, SecretInHomeIsWrittenWithTheUsersIds) {
  // A home the user cannot write to: root could, the user cannot, so saving must fail.
  ASSERT_EQ(::chown(home_.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(home_.c_str(), 0755), 0);
  testing::Snapshot before = snapshot(tmp_.path());
  EXPECT_FALSE(store().save(carol_, make_enrollment(), true).ok());
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(FileStoreHomeTest, SymlinkInHomeIsNeitherReadNorWrittenThrough) {
  // The user points ~/.pbx-mfa at a root-only file: a valid secret file, but not theirs.
  std::string target = tmp_ / "root-only";
  Enrollment e = make_enrollment();
  ASSERT_TRUE(write_file(target, serialize_enrollment(e), 0600, 0, 0));
  ASSERT_EQ(::symlink(target.c_str(), home_secret().c_str()), 0);
  ASSERT_EQ(::lchown(home_secret().c_str(), kOtherUid, kOtherUid), 0);
  testing::Snapshot before = snapshot(tmp_.path());
  EXPECT_FALSE(store().load(carol_).ok());
  (void)store().save(carol_, make_enrollment(kIdB), false);
  EXPECT_EQ(read_file(target), serialize_enrollment(e));
  // Even with overwrite the target keeps its bytes (the link itself may be replaced).
  auto saved = store().save(carol_, make_enrollment(kIdB), true);
  EXPECT_EQ(read_file(target), serialize_enrollment(e));
  auto st = lstat_of(target);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_uid, 0U);
  EXPECT_EQ(st->st_mode & 07777, 0600U);
  if (saved.ok()) {
    auto link = lstat_of(home_secret());
    ASSERT_TRUE(link.has_value());
    EXPECT_TRUE(S_ISREG(link->st_mode)) << "saved through the link";
    EXPECT_EQ(link->st_uid, kOtherUid);
  }
}

TEST_F(FileStoreHomeTest, SecretInHomeOwnedBySomeoneElseIsRefused) {
  enroll(carol_);
  std::string text = read_file(home_secret()).value();
  for (uid_t owner : {uid_t{0}, uid_t{kOtherUid - 1}}) {
    ASSERT_TRUE(write_file(home_secret(), text, 0600, owner, owner));
    testing::Snapshot before = snapshot(tmp_.path());
    auto loaded = store().load(carol_);
    ASSERT_FALSE(loaded.ok()) << "owner " << owner;
    EXPECT_TRUE(loaded.error().code == Errc::kUnsafe || loaded.error().code == Errc::kIo)
        << errc_name(loaded.error().code);
    EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
  }
}

TEST_F(FileStoreHomeTest, GroupReadableSecretInHomeIsUnsafe) {
  enroll(carol_);
  ASSERT_EQ(::chmod(home_secret().c_str(), 0640), 0);
  EXPECT_TRUE(has_errc(store().load(carol_), Errc::kUnsafe));
}

// ---------------------------------------------------------------------------------------------
// Hostile secret files: refused with the right error, nothing on disk changed

TEST_F(FileStoreTest, SecretSymlinkIsUnsafe) {
  enroll_and_login();
  std::string real = tmp_ / "real-secret";
  ASSERT_EQ(::rename(secret_file(alice_).c_str(), real.c_str()), 0);
  ASSERT_EQ(::symlink(real.c_str(), secret_file(alice_).c_str()), 0);
  expect_secret_refused(Errc::kUnsafe, "symlink to a valid secret");
  ASSERT_EQ(::unlink(secret_file(alice_).c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ / "nowhere").c_str(), secret_file(alice_).c_str()), 0);
  expect_secret_refused(Errc::kUnsafe, "dangling symlink");
}

TEST_F(FileStoreTest, SecretFifoIsUnsafeAndDoesNotHang) {
  enroll_and_login();
  ASSERT_EQ(::unlink(secret_file(alice_).c_str()), 0);
  ASSERT_EQ(::mkfifo(secret_file(alice_).c_str(), 0600), 0);
  expect_secret_refused(Errc::kUnsafe, "fifo");
}

TEST_F(FileStoreTest, SecretDirectoryIsUnsafe) {
  enroll_and_login();
  ASSERT_EQ(::unlink(secret_file(alice_).c_str()), 0);
  ASSERT_EQ(::mkdir(secret_file(alice_).c_str(), 0700), 0);
  expect_secret_refused(Errc::kUnsafe, "directory");
}

TEST_F(FileStoreTest, SecretOwnedBySomeoneElseIsUnsafe) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  std::string text = read_file(secret_file(alice_)).value();
  plant_secret(text, 0600, kOtherUid);
  expect_secret_refused(Errc::kUnsafe, "owned by 65534");
}

TEST_F(FileStoreTest, SecretReadableByOthersIsUnsafe) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  std::string text = read_file(secret_file(alice_)).value();
  for (mode_t mode : {0644, 0640, 0604, 0660, 0606, 0602, 0620}) {
    plant_secret(text, mode);
    expect_secret_refused(Errc::kUnsafe, "mode " + octal(mode));
  }
}

TEST_F(FileStoreTest, OversizeSecretIsUnsafe) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  std::string text = read_file(secret_file(alice_)).value();
  // Exactly the cap (a valid file padded with comments) still loads.
  std::string padded = text;
  while (padded.size() < kMaxSecretFileSize) {
    std::size_t room = kMaxSecretFileSize - padded.size();
    std::size_t len = std::min<std::size_t>(room, 100);
    padded += len == 1 ? "\n" : "#" + std::string(len - 2, 'x') + "\n";
  }
  ASSERT_EQ(padded.size(), kMaxSecretFileSize);
  plant_secret(padded);
  EXPECT_TRUE(is_ok(store().load(alice_)));
  plant_secret(padded + "\n");
  expect_secret_refused(Errc::kUnsafe, "one byte over the cap");
  plant_secret(padded + std::string(1 << 20, '#'));
  expect_secret_refused(Errc::kUnsafe, "a megabyte");
}

TEST_F(FileStoreTest, DamagedSecretIsCorrupt) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  std::string text = read_file(secret_file(alice_)).value();
  plant_secret(text.substr(0, text.find("\nsecret ") + 1));
  expect_secret_refused(Errc::kCorrupt, "truncated before the secret");
  plant_secret("");
  expect_secret_refused(Errc::kCorrupt, "empty");
  plant_secret(std::string("\x7f") + "ELF garbage \xff\xfe\n");
  expect_secret_refused(Errc::kCorrupt, "garbage");
  std::string with_nul = text;
  with_nul.insert(with_nul.find("\nsecret ") + 9, 1, '\0');
  plant_secret(with_nul);
  expect_secret_refused(Errc::kCorrupt, "NUL byte");
  plant_secret(std::string(2000, '\0'));
  expect_secret_refused(Errc::kCorrupt, "all NUL");
}

TEST_F(FileStoreTest, SaveNeverWritesThroughASymlink) {
  std::string target = tmp_ / "precious";
  ASSERT_TRUE(write_file(target, "precious\n", 0644));
  ASSERT_EQ(::symlink(target.c_str(), secret_file(alice_).c_str()), 0);
  auto kept = store().save(alice_, make_enrollment(), false);
  EXPECT_FALSE(kept.ok());
  EXPECT_EQ(read_file(target), "precious\n");
  auto replaced = store().save(alice_, make_enrollment(), true);
  EXPECT_EQ(read_file(target), "precious\n");
  EXPECT_EQ(lstat_of(target)->st_mode & 07777, 0644U);
  if (replaced.ok()) {
    EXPECT_TRUE(S_ISREG(lstat_of(secret_file(alice_))->st_mode));
  }

  std::string dangling = tmp_ / "created-through-link";
  ASSERT_EQ(::symlink(dangling.c_str(), secret_file(bob_).c_str()), 0);
  (void)store().save(bob_, make_enrollment(), false);
  (void)store().save(bob_, make_enrollment(), true);
  EXPECT_FALSE(exists_nofollow(dangling));
}

// ---------------------------------------------------------------------------------------------
// Hostile state files

TEST_F(FileStoreTest, StateSymlinkIsUnsafe) {
  enroll_and_login();
  std::string real = tmp_ / "real-state";
  ASSERT_EQ(::rename(state_file(alice_).c_str(), real.c_str()), 0);
  ASSERT_EQ(::symlink(real.c_str(), state_file(alice_).c_str()), 0);
  expect_state_refused(Errc::kUnsafe, "symlink to a valid state");
  ASSERT_EQ(::unlink(state_file(alice_).c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ / "nowhere").c_str(), state_file(alice_).c_str()), 0);
  expect_state_refused(Errc::kUnsafe, "dangling symlink");
  EXPECT_FALSE(exists_nofollow(tmp_ / "nowhere"));
}

TEST_F(FileStoreTest, StateFifoIsUnsafeAndDoesNotHang) {
  enroll_and_login();
  ASSERT_EQ(::unlink(state_file(alice_).c_str()), 0);
  ASSERT_EQ(::mkfifo(state_file(alice_).c_str(), 0600), 0);
  expect_state_refused(Errc::kUnsafe, "fifo");
}

TEST_F(FileStoreTest, StateDirectoryIsUnsafe) {
  enroll_and_login();
  ASSERT_EQ(::unlink(state_file(alice_).c_str()), 0);
  ASSERT_EQ(::mkdir(state_file(alice_).c_str(), 0700), 0);
  expect_state_refused(Errc::kUnsafe, "directory");
}

TEST_F(FileStoreTest, StateOwnedBySomeoneElseIsUnsafe) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  std::string text = read_file(state_file(alice_)).value();
  plant_state(text, 0600, kOtherUid);
  expect_state_refused(Errc::kUnsafe, "owned by 65534");
}

TEST_F(FileStoreTest, StateReadableByOthersIsUnsafe) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  std::string text = read_file(state_file(alice_)).value();
  for (mode_t mode : {0644, 0640, 0604, 0660, 0606}) {
    plant_state(text, mode);
    expect_state_refused(Errc::kUnsafe, "mode " + octal(mode));
  }
}

TEST_F(FileStoreTest, OversizeStateIsUnsafe) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  std::string text = read_file(state_file(alice_)).value();
  plant_state(text + std::string(kMaxStateSlotFileSize, '\n'));
  expect_state_refused(Errc::kUnsafe, "over the cap");
}

TEST_F(FileStoreTest, DamagedStateIsCorruptAndNotRepaired) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  // A locked-out state that a "repair" would silently unlock.
  {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    UserState locked = txn.value()->state();
    locked.failures = 7;
    locked.locked_until = kT0 + 3600;
    ASSERT_TRUE(is_ok(txn.value()->commit(locked)));
  }
  // As a text-format file (the format of earlier releases, still read): damage to the slots
  // of today's format is state_slots_test.cpp's.
  std::string text = stored_state_text(alice_);
  ASSERT_EQ(text.rfind("version ", 0), 0u);
  plant_state(text.substr(0, 4));
  expect_state_refused(Errc::kCorrupt, "truncated");
  plant_state("");
  expect_state_refused(Errc::kCorrupt, "empty");
  plant_state("\x01\x02garbage\xff\n");
  expect_state_refused(Errc::kCorrupt, "garbage");
  std::string with_nul = text;
  with_nul.insert(with_nul.find("version ") + 9, 1, '\0');
  plant_state(with_nul);
  expect_state_refused(Errc::kCorrupt, "NUL byte");
  plant_state(text + "failures 0\n");
  expect_state_refused(Errc::kCorrupt, "second failures line");
}

// H2 (file store too): a skew planted in the state file is clamped to the learning bound, so a
// code 500 steps old stays a wrong code.
TEST_F(FileStoreTest, APlantedSkewIsClampedAndAnOldCodeStaysWrong) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  UserState planted = read_state(alice_);
  std::int64_t old_step = step_of(enrollment_, kT0) - 500;
  mark(planted).skew = -500;
  mark(planted).last_step = old_step - 1;
  plant_state(serialize_state(planted));
  EXPECT_EQ(mark(read_state(alice_)).skew, -kMaxSkewSteps);
  EXPECT_EQ(verify_at(alice_, kT0, code_for_step(enrollment_, old_step)), Verdict::kRejected);
}

// ---------------------------------------------------------------------------------------------
// Hostile lock files

TEST_F(FileStoreTest, LockSymlinkIsUnsafeAndTargetUntouched) {
  enroll_and_login();
  std::string target = tmp_ / "lock-target";
  ASSERT_TRUE(write_file(target, "keep me\n", 0644));
  ASSERT_EQ(::unlink(lock_file(alice_).c_str()), 0);
  ASSERT_EQ(::symlink(target.c_str(), lock_file(alice_).c_str()), 0);
  expect_state_refused(Errc::kUnsafe, "lock symlink to a file");
  ASSERT_EQ(::unlink(lock_file(alice_).c_str()), 0);
  std::string dangling = tmp_ / "created-by-lock";
  ASSERT_EQ(::symlink(dangling.c_str(), lock_file(alice_).c_str()), 0);
  expect_state_refused(Errc::kUnsafe, "dangling lock symlink");
  EXPECT_FALSE(exists_nofollow(dangling));
}

TEST_F(FileStoreTest, LockFileThatIsNotARegularFileIsRefusedQuickly) {
  enroll_and_login();
  for (bool fifo : {true, false}) {
    SCOPED_TRACE(fifo ? "fifo" : "directory");
    std::filesystem::remove(lock_file(alice_));
    ASSERT_EQ(
        fifo ? ::mkfifo(lock_file(alice_).c_str(), 0600) : ::mkdir(lock_file(alice_).c_str(), 0700),
        0);
    testing::Snapshot before = snapshot(tmp_.path());
    std::optional<int> got = lock_in_child();
    ASSERT_TRUE(got.has_value()) << "lock_state hung";
    EXPECT_TRUE(*got == static_cast<int>(Errc::kUnsafe) || *got == static_cast<int>(Errc::kIo))
        << (*got == kOk ? "success" : errc_name(static_cast<Errc>(*got)));
    std::optional<int> login = verify_in_child(kT0 + 30);
    ASSERT_TRUE(login.has_value()) << "login hung";
    EXPECT_EQ(*login / 100, kVerifyError) << verdict_code_name(*login / 100);
    EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
  }
}

// ---------------------------------------------------------------------------------------------
// Unsafe state directory

TEST_F(FileStoreTest, StateDirWithGroupOrOtherBitsIsUnsafe) {
  enrollment_ = enroll(alice_);
  for (mode_t mode : {0777, 0750, 0701, 0710, 0705}) {
    ASSERT_EQ(::chmod(state_dir_.c_str(), mode), 0);
    expect_state_refused(Errc::kUnsafe, "state dir mode " + octal(mode));
  }
}

TEST_F(FileStoreTest, StateDirOwnedBySomeoneElseIsUnsafe) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enrollment_ = enroll(alice_);
  ASSERT_EQ(::chown(state_dir_.c_str(), kOtherUid, kOtherUid), 0);
  expect_state_refused(Errc::kUnsafe, "state dir owned by 65534");
}

TEST_F(FileStoreTest, StateDirSymlinkIsUnsafe) {
  enrollment_ = enroll(alice_);
  std::string real = tmp_ / "real-state-dir";
  ASSERT_EQ(::rename(state_dir_.c_str(), real.c_str()), 0);
  ASSERT_EQ(::symlink(real.c_str(), state_dir_.c_str()), 0);
  expect_state_refused(Errc::kUnsafe, "state dir symlink");
}

TEST_F(FileStoreTest, StateDirThatIsAFileIsRefused) {
  enroll(alice_);
  ASSERT_EQ(::rmdir(state_dir_.c_str()), 0);
  ASSERT_TRUE(write_file(state_dir_, "not a directory\n", 0600));
  testing::Snapshot before = snapshot(tmp_.path());
  std::optional<int> got = lock_in_child();
  ASSERT_TRUE(got.has_value());
  EXPECT_NE(*got, kOk);
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

// ---------------------------------------------------------------------------------------------
// Leftovers of crashed logins

TEST_F(FileStoreTest, LeftoverTempFilesAndStaleLockNeverBlockALogin) {
  PBX_SKIP_UNLESS_ROOT("the store trusts only root-owned files");
  enroll_and_login();
  // What crashed logins may leave: temp files in any state, a lock file nobody holds.
  ASSERT_TRUE(write_file(state_dir_ + "/.alice.state.Ab12Cd", "version 1\nfail", 0600));
  ASSERT_TRUE(write_file(state_dir_ + "/.alice.state.XXXXXX", "", 0600));
  ASSERT_TRUE(write_file(state_dir_ + "/.alice.state.zz9999", "garbage", 0644, kOtherUid));
  ASSERT_EQ(::mkfifo((state_dir_ + "/.alice.state.fifo00").c_str(), 0600), 0);
  ASSERT_TRUE(write_file(lock_file(alice_), "12345\n", 0600));
  for (int i = 1; i <= 3; ++i) {
    std::optional<int> login = verify_in_child(kT0 + kStep * i);
    ASSERT_TRUE(login.has_value()) << "login hung";
    EXPECT_EQ(*login / 100, static_cast<int>(Verdict::kAccepted))
        << verdict_code_name(*login / 100);
  }
  UserState state = read_state(alice_);
  EXPECT_EQ(mark(state).last_step, step_of(enrollment_, kT0 + 90));
}

TEST_F(FileStoreTest, LockOfAKilledProcessIsReleased) {
  enroll_and_login();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(ready[0]);
    auto opened = open_store(config_);
    if (!opened.ok()) ::_exit(1);
    auto txn = opened.value()->lock_state(alice_);
    if (!txn.ok()) ::_exit(2);
    char c = 'x';
    if (::write(ready[1], &c, 1) != 1) ::_exit(3);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ssize_t got = ::read(ready[0], &c, 1);
  ::close(ready[0]);
  if (got != 1) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    FAIL() << "child could not take the lock";
  }
  // While the child holds the lock, a login waits or fails; it never barges in...
  std::string code = code_at(kT0 + 30);
  std::optional<int> blocked = run_in_child(
      [this, code] {
        auto opened = open_store(config_);
        if (!opened.ok()) return -1;
        FixedClock clock(kT0 + 30);
        Verifier verifier(config_, *opened.value(), clock);
        return verdict_code(verifier.verify(alice_, code));
      },
      300ms);
  if (blocked) {
    EXPECT_NE(*blocked, static_cast<int>(Verdict::kAccepted));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  // ...and once the holder is dead the lock is free at once.
  std::optional<int> login = verify_in_child(kT0 + 30);
  ASSERT_TRUE(login.has_value()) << "lock of a killed process still held";
  EXPECT_EQ(*login / 100, static_cast<int>(Verdict::kAccepted));
}

}  // namespace
}  // namespace pbx::totp

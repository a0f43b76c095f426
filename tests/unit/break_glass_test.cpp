// Break-glass codes against guessing (review finding L5): wrong answers are counted on this
// host under the break-glass lock, break-glass locks after kBreakGlassMaxFailures of them until
// root unlocks or makes a new set, and a count that is not ours fails closed.
#include "pbx/totp/break_glass.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::has_errc;
using testing::is_ok;
using testing::kCheapKdf;
using testing::read_file;
using testing::snapshot;
using testing::snapshot_diff;
using testing::TempDir;
using testing::write_file;

// Shaped like a break-glass code, never one (the alphabet has no i, l, o).
constexpr const char* kWrong = "abcd-efgh-jkmn-pqrs";

class BreakGlassLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.state_dir = tmp_ / "state";
    config_.trusted_uid = 0;
    auto codes = make_break_glass_codes(config_, 3, kCheapKdf);
    ASSERT_TRUE(is_ok(codes));
    for (const auto& c : *codes) codes_.emplace_back(c.view());
  }
  BreakGlassVerdict verdict_of(std::string_view input) {
    auto r = answer_break_glass(config_, input);
    if (!r) throw std::runtime_error(r.error().message);
    return r->verdict;
  }
  int failures() {
    auto st = break_glass_status(config_);
    if (!st) throw std::runtime_error(st.error().message);
    return st->failures;
  }
  void lock_it() {
    for (int i = 0; i < kBreakGlassMaxFailures; ++i) {
      ASSERT_EQ(verdict_of(kWrong), BreakGlassVerdict::kWrong) << i;
    }
  }
  TempDir tmp_;
  Config config_;
  std::vector<std::string> codes_;
};

TEST_F(BreakGlassLimitTest, WrongAnswersAreCountedAndThenEvenARightCodeIsRefusedUnchecked) {
  for (int i = 1; i <= kBreakGlassMaxFailures; ++i) {
    auto r = answer_break_glass(config_, kWrong);
    ASSERT_TRUE(is_ok(r));
    EXPECT_EQ(r->verdict, BreakGlassVerdict::kWrong);
    EXPECT_EQ(r->failures, i);
    EXPECT_EQ(failures(), i);
  }
  auto st = break_glass_status(config_);
  ASSERT_TRUE(is_ok(st));
  EXPECT_TRUE(st->locked());
  std::string file = read_file(break_glass_path(config_)).value();
  for (const auto& c : codes_) EXPECT_EQ(file.find(c), std::string::npos);

  // Locked: the right code is refused unchecked (it would have been counted before its hash)
  // and nothing on disk changes.
  auto before = snapshot(config_.state_dir);
  auto r = answer_break_glass(config_, codes_[0]);
  ASSERT_TRUE(is_ok(r));
  EXPECT_EQ(r->verdict, BreakGlassVerdict::kLocked);
  EXPECT_EQ(r->left, 3);
  EXPECT_EQ(verdict_of(kWrong), BreakGlassVerdict::kLocked);
  EXPECT_EQ(snapshot_diff(before, snapshot(config_.state_dir)), "");
  EXPECT_EQ(*break_glass_left(config_), 3);
  EXPECT_FALSE(*use_break_glass_code(config_, codes_[1]));
}

TEST_F(BreakGlassLimitTest, OnlyAnswersShapedLikeACodeCountAndARightCodeCountsNothing) {
  for (const char* not_a_code : {"123456", "", "abcd-efgh-jkmn", "x", "12345678"}) {
    EXPECT_EQ(verdict_of(not_a_code), BreakGlassVerdict::kNotACode) << not_a_code;
  }
  EXPECT_EQ(failures(), 0);
  EXPECT_EQ(verdict_of(kWrong), BreakGlassVerdict::kWrong);
  auto ok = answer_break_glass(config_, codes_[0]);
  ASSERT_TRUE(is_ok(ok));
  EXPECT_EQ(ok->verdict, BreakGlassVerdict::kAccepted);
  EXPECT_EQ(ok->left, 2);
  EXPECT_EQ(ok->failures, 1);  // the earlier wrong answer stays counted
  EXPECT_EQ(failures(), 1);
  EXPECT_EQ(verdict_of(codes_[0]), BreakGlassVerdict::kWrong);  // a used code is a wrong one
  EXPECT_EQ(failures(), 2);
}

TEST_F(BreakGlassLimitTest, UnlockForgetsTheWrongAnswersAndKeepsTheCodes) {
  lock_it();
  auto forgotten = unlock_break_glass(config_);
  ASSERT_TRUE(is_ok(forgotten));
  EXPECT_EQ(*forgotten, kBreakGlassMaxFailures);
  EXPECT_EQ(failures(), 0);
  EXPECT_EQ(verdict_of(codes_[2]), BreakGlassVerdict::kAccepted);
  auto again = unlock_break_glass(config_);
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(*again, 0);
}

TEST_F(BreakGlassLimitTest, ANewSetStartsWithoutWrongAnswers) {
  lock_it();
  auto fresh = make_break_glass_codes(config_, 1, kCheapKdf);
  ASSERT_TRUE(is_ok(fresh));
  EXPECT_EQ(failures(), 0);
  EXPECT_EQ(verdict_of((*fresh)[0].view()), BreakGlassVerdict::kAccepted);
}

TEST_F(BreakGlassLimitTest, ACountThatIsNotOursFailsClosedAndChangesNothing) {
  std::string path = break_glass_path(config_);
  std::string good = read_file(path).value();
  ASSERT_EQ(good.substr(good.size() - 4), "end\n");
  std::string head = good.substr(0, good.size() - 4);
  for (const std::string& bad :
       {std::string("failures 0\n"), std::string("failures 6\n"), std::string("failures -1\n"),
        std::string("failures 99999999999999999999\n"), std::string("failures x\n"),
        std::string("failures 1\nfailures 1\n"), std::string("failures\n")}) {
    ASSERT_TRUE(write_file(path, head + bad + "end\n"));
    auto before = snapshot(config_.state_dir);
    EXPECT_TRUE(has_errc(answer_break_glass(config_, codes_[0]), Errc::kCorrupt)) << bad;
    EXPECT_TRUE(has_errc(answer_break_glass(config_, kWrong), Errc::kCorrupt)) << bad;
    EXPECT_TRUE(has_errc(break_glass_status(config_), Errc::kCorrupt)) << bad;
    EXPECT_TRUE(has_errc(unlock_break_glass(config_), Errc::kCorrupt)) << bad;
    EXPECT_EQ(snapshot_diff(before, snapshot(config_.state_dir)), "") << bad;
  }
  // A count written by someone else than root, or behind a symlink: refused, left alone.
  ASSERT_TRUE(write_file(path, head + "failures 1\nend\n"));
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  auto before = snapshot(config_.state_dir);
  EXPECT_TRUE(has_errc(answer_break_glass(config_, codes_[0]), Errc::kUnsafe));
  EXPECT_TRUE(has_errc(unlock_break_glass(config_), Errc::kUnsafe));
  EXPECT_EQ(snapshot_diff(before, snapshot(config_.state_dir)), "");
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_TRUE(write_file(tmp_ / "elsewhere", head + "failures 1\nend\n"));
  ASSERT_EQ(::symlink((tmp_ / "elsewhere").c_str(), path.c_str()), 0);
  EXPECT_TRUE(has_errc(unlock_break_glass(config_), Errc::kUnsafe));
  EXPECT_TRUE(has_errc(answer_break_glass(config_, kWrong), Errc::kUnsafe));
  EXPECT_EQ(read_file(tmp_ / "elsewhere").value(), head + "failures 1\nend\n");
}

// Several processes answering wrong at once: every answer is counted, none beyond the limit
// is checked.
TEST_F(BreakGlassLimitTest, ConcurrentWrongAnswersAreEachCounted) {
  constexpr int kProcs = kBreakGlassMaxFailures + 3;
  int gun[2];
  ASSERT_EQ(::pipe(gun), 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcs; ++i) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(gun[1]);
      char c = 0;
      ssize_t n = ::read(gun[0], &c, 1);  // 0 when the parent closes its end: all start at once
      (void)n;
      int status = 10;
      try {
        auto r = answer_break_glass(config_, kWrong);
        status = r ? static_cast<int>(r->verdict) : 11;
      } catch (...) {
        status = 12;  // never unwind into gtest in a forked child
      }
      ::_exit(status);
    }
    pids.push_back(pid);
  }
  ::close(gun[0]);
  ::close(gun[1]);
  int wrong = 0;
  int locked = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    if (code == static_cast<int>(BreakGlassVerdict::kWrong)) {
      ++wrong;
    } else if (code == static_cast<int>(BreakGlassVerdict::kLocked)) {
      ++locked;
    } else {
      ADD_FAILURE() << "child status " << code;
    }
  }
  EXPECT_EQ(wrong, kBreakGlassMaxFailures);
  EXPECT_EQ(locked, kProcs - kBreakGlassMaxFailures);
  EXPECT_EQ(failures(), kBreakGlassMaxFailures);
  EXPECT_EQ(verdict_of(codes_[0]), BreakGlassVerdict::kLocked);
}

TEST_F(BreakGlassLimitTest, FewerConcurrentWrongAnswersThanTheLimitAreAllCounted) {
  constexpr int kProcs = kBreakGlassMaxFailures - 1;
  int gun[2];
  ASSERT_EQ(::pipe(gun), 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcs; ++i) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(gun[1]);
      char c = 0;
      ssize_t n = ::read(gun[0], &c, 1);
      (void)n;
      int status = 10;
      try {
        status = use_break_glass_code(config_, kWrong).ok() ? 0 : 11;
      } catch (...) {
        status = 12;
      }
      ::_exit(status);
    }
    pids.push_back(pid);
  }
  ::close(gun[0]);
  ::close(gun[1]);
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(failures(), kProcs);
  EXPECT_EQ(verdict_of(codes_[0]), BreakGlassVerdict::kAccepted);  // one below the limit
}

}  // namespace
}  // namespace pbx::totp

// Two servers, one database: two configs (each with its own state_dir, as on two hosts) and a
// store per process. What one server records, the other must honour.
#include <gtest/gtest.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "pbx/totp/store.hpp"
#include "pbx/totp/verifier.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::code_for_step;
using testing::has_errc;
using testing::is_ok;
using testing::kStep;
using testing::kT0;
using testing::kVerifyError;
using testing::step_of;
using testing::verdict_code;

class DbTwoServersTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(on_database()) << "DbTwoServersTest runs with PBX_TEST_STORE=postgresql only";
    server_a_ = config_;
    server_a_.state_dir = tmp_ / "host-a-state";
    server_b_ = config_;
    server_b_.state_dir = tmp_ / "host-b-state";
    e_ = enroll(alice_);
  }

  Outcome login(const Config& server, const std::string& code, std::int64_t t = kT0) {
    auto s = open_store(server);
    if (!s.ok()) {
      ADD_FAILURE() << s.error().message;
      return {};
    }
    FixedClock clock(t);
    Verifier verifier(server, **s, clock);
    auto out = verifier.verify(alice_, code);
    if (!out.ok()) {
      ADD_FAILURE() << out.error().message;
      return {};
    }
    return *out;
  }
  std::string code_at(std::int64_t t) const { return code_for_step(e_, step_of(e_, t)); }

  Config server_a_;
  Config server_b_;
  Enrollment e_;
};

TEST_F(DbTwoServersTest, ACodeAcceptedOnAIsRefusedOnB) {
  EXPECT_EQ(login(server_a_, code_at(kT0)).verdict, Verdict::kAccepted);
  EXPECT_EQ(login(server_b_, code_at(kT0)).verdict, Verdict::kReplayed);
  EXPECT_EQ(login(server_a_, code_at(kT0)).verdict, Verdict::kReplayed);
  // The next step works on either.
  EXPECT_EQ(login(server_b_, code_at(kT0 + kStep), kT0 + kStep).verdict, Verdict::kAccepted);
}

TEST_F(DbTwoServersTest, ALockoutOnAHoldsOnB) {
  server_a_.max_failures = server_b_.max_failures = 3;
  std::string wrong = code_for_step(e_, step_of(e_, kT0) + 1000);
  for (int i = 0; i < 3; ++i) login(server_a_, wrong);
  Outcome on_b = login(server_b_, code_at(kT0));
  EXPECT_EQ(on_b.verdict, Verdict::kLockedOut);
  EXPECT_GT(on_b.locked_until, kT0);
  // Unlocked once (on B), unlocked everywhere.
  auto s = open_store(server_b_);
  ASSERT_TRUE(is_ok(s));
  FixedClock clock(kT0);
  ASSERT_TRUE(is_ok(Verifier(server_b_, **s, clock).unlock(alice_)));
  EXPECT_EQ(login(server_a_, code_at(kT0)).verdict, Verdict::kAccepted);
}

TEST_F(DbTwoServersTest, AResetOnceIsSeenByBoth) {
  ASSERT_EQ(login(server_a_, code_at(kT0)).verdict, Verdict::kAccepted);
  auto s = open_store(server_a_);
  ASSERT_TRUE(is_ok(s));
  ASSERT_TRUE(is_ok((*s)->remove(alice_)));
  EXPECT_EQ(login(server_a_, code_at(kT0 + kStep), kT0 + kStep).verdict, Verdict::kNotEnrolled);
  EXPECT_EQ(login(server_b_, code_at(kT0 + kStep), kT0 + kStep).verdict, Verdict::kNotEnrolled);
}

TEST_F(DbTwoServersTest, ARecoveryCodeUsedOnAIsSpentOnB) {
  std::string rc(codes_[1].view());
  EXPECT_EQ(login(server_a_, rc).verdict, Verdict::kRecoveryAccepted);
  EXPECT_EQ(login(server_b_, rc).verdict, Verdict::kRejected);
}

// Shared by the racing processes: one starting signal per process, one "done" for the parent.
constexpr int kRounds = 30;
constexpr int kProcs = 8;
struct Board {
  sem_t go[kProcs];
  sem_t done;
  int verdicts[kRounds][kProcs];
};

TEST_F(DbTwoServersTest, EightLoginsRacingAcrossBothAcceptACodeOnce) {
  server_a_.max_failures = server_b_.max_failures = 1000;  // replays are failures
  void* mem =
      ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* board = static_cast<Board*>(mem);
  for (auto& go : board->go) ASSERT_EQ(::sem_init(&go, 1, 0), 0);
  ASSERT_EQ(::sem_init(&board->done, 1, 0), 0);
  std::vector<pid_t> pids;
  for (int proc = 0; proc < kProcs; ++proc) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Even processes are logins on server A, odd ones on server B; each its own connection.
      const Config& server = proc % 2 == 0 ? server_a_ : server_b_;
      auto opened = open_store(server);
      FixedClock clock(kT0);
      for (int round = 0; round < kRounds; ++round) {
        clock.set(kT0 + kStep * round);
        std::string code = code_for_step(e_, step_of(e_, clock.now()));
        while (::sem_wait(&board->go[proc]) != 0) {
        }
        int verdict = 100;
        if (opened.ok()) {
          Verifier verifier(server, *opened.value(), clock);
          verdict = verdict_code(verifier.verify(alice_, code));
        }
        board->verdicts[round][proc] = verdict;
        ::sem_post(&board->done);
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  auto stop_all = [&] {
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
    pids.clear();
  };
  std::map<int, int> winners_by_server;
  for (int round = 0; round < kRounds; ++round) {
    for (auto& go : board->go) ::sem_post(&go);
    for (int proc = 0; proc < kProcs; ++proc) {
      timespec deadline{};
      ::clock_gettime(CLOCK_REALTIME, &deadline);
      deadline.tv_sec += 30;
      int rc = 0;
      while ((rc = ::sem_timedwait(&board->done, &deadline)) != 0 && errno == EINTR) {
      }
      if (rc != 0) {
        stop_all();
        FAIL() << "round " << round << ": a login never finished";
      }
    }
    std::map<int, int> verdicts;
    for (int proc = 0; proc < kProcs; ++proc) {
      int v = board->verdicts[round][proc];
      ++verdicts[v];
      if (v == static_cast<int>(Verdict::kAccepted)) ++winners_by_server[proc % 2];
    }
    if (verdicts[static_cast<int>(Verdict::kAccepted)] != 1 ||
        verdicts[static_cast<int>(Verdict::kReplayed)] != kProcs - 1) {
      stop_all();
      FAIL() << "round " << round << ": " << verdicts[static_cast<int>(Verdict::kAccepted)]
             << " accepted, " << verdicts[static_cast<int>(Verdict::kReplayed)] << " replayed, "
             << verdicts[kVerifyError] << " errors";
    }
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  for (auto& go : board->go) ::sem_destroy(&go);
  ::sem_destroy(&board->done);
  ::munmap(mem, sizeof(Board));
  std::printf("[ figures  ] %d rounds of 8 racing logins: winners on A %d, on B %d\n", kRounds,
              winners_by_server[0], winners_by_server[1]);
  UserState state = read_state(alice_);
  EXPECT_EQ(mark(state).last_step, step_of(e_, kT0 + kStep * (kRounds - 1)));
}

}  // namespace
}  // namespace pbx::totp

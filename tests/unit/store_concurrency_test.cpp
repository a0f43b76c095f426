// Many logins at once, and logins killed mid-update: a code is accepted once, state stays whole.
#include <gtest/gtest.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/verifier.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::code_for_step;
using testing::is_ok;
using testing::kIdA;
using testing::kIdB;
using testing::kStep;
using testing::kT0;
using testing::lstat_of;
using testing::read_file;
using testing::step_of;
using testing::verdict_code;
using testing::verdict_code_name;
using testing::verdict_of;

constexpr std::string_view kIdC = "00000000000000000000000000000ccc";

// What a forked child runs; it calls `start()` once it is set up, and returns its exit status.
using ChildFn = std::function<int(const std::function<void()>& start)>;

// Runs each function in its own child process. Every child sets up, reports ready, then waits
// for one starting gun (a pipe the parent closes), so their critical parts overlap. Returns the
// exit statuses (-signal when killed by a signal).
std::vector<int> run_together(const std::vector<ChildFn>& fns) {
  int ready[2];
  int gun[2];
  if (::pipe(ready) != 0 || ::pipe(gun) != 0) throw std::runtime_error("pipe failed");
  std::vector<pid_t> pids;
  for (const auto& fn : fns) {
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(ready[0]);
      ::close(gun[1]);
      auto start = [&] {
        char c = 'r';
        if (::write(ready[1], &c, 1) != 1) ::_exit(120);
        ::close(ready[1]);
        ssize_t n = ::read(gun[0], &c, 1);  // returns 0 when the parent closes its end
        (void)n;
      };
      int status = 121;
      try {
        status = fn(start);
      } catch (...) {
        status = 122;  // never unwind into gtest in a forked child
      }
      ::_exit(status);
    }
    pids.push_back(pid);
  }
  ::close(ready[1]);
  ::close(gun[0]);
  for (std::size_t i = 0; i < fns.size(); ++i) {
    char c = 0;
    if (::read(ready[0], &c, 1) != 1) break;  // a child died during set-up
  }
  ::close(ready[0]);
  ::close(gun[1]);  // fire
  std::vector<int> statuses;
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    statuses.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
  }
  return statuses;
}

class ConcurrencyTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped()) return;
    // Replays are failures; eight racing logins must not lock the user out between rounds.
    config_.max_failures = 100;
    e_ = enroll(alice_);
  }

  // A child that logs `user` in with `input` at time `t` once the gun fires.
  ChildFn login(const User& user, const std::string& input, std::int64_t t) {
    return [this, user, input, t](const std::function<void()>& start) {
      auto opened = open_store(config_);
      if (!opened.ok()) return 100;
      FixedClock clock(t);
      Verifier verifier(config_, *opened.value(), clock);
      start();
      return verdict_code(verifier.verify(user, input));
    };
  }

  Enrollment e_;
};

// Shared by the racing processes: one starting signal per process, one "done" for the parent.
template <int kRounds, int kProcs>
struct RaceBoard {
  sem_t go[kProcs];
  sem_t done;
  int verdicts[kRounds][kProcs];
};

TEST_F(ConcurrencyTest, EightRacingLoginsAcceptACodeOnce) {
  constexpr int kRounds = 50;
  constexpr int kProcs = 8;
  using Board = RaceBoard<kRounds, kProcs>;
  // The same eight processes race every round (forking 400 would be slow under ASan): each
  // waits on its own semaphore, the parent releases all eight at once.
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
      auto opened = open_store(config_);
      FixedClock clock(kT0);
      for (int round = 0; round < kRounds; ++round) {
        clock.set(kT0 + kStep * round);
        std::string code = code_for_step(e_, step_of(e_, clock.now()));
        while (::sem_wait(&board->go[proc]) != 0) {
        }
        int verdict = 100;
        if (opened.ok()) {
          Verifier verifier(config_, *opened.value(), clock);
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
    for (int v : board->verdicts[round]) ++verdicts[v];
    if (verdicts[static_cast<int>(Verdict::kAccepted)] != 1 ||
        verdicts[static_cast<int>(Verdict::kReplayed)] != kProcs - 1) {
      stop_all();
      FAIL() << "round " << round << ": " << verdicts[static_cast<int>(Verdict::kAccepted)]
             << " accepted, " << verdicts[static_cast<int>(Verdict::kReplayed)]
             << " replayed (the losers must see the winner's mark, not an error)";
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
  UserState state = read_state(alice_);
  EXPECT_EQ(mark(state).last_step, step_of(e_, kT0 + kStep * (kRounds - 1)));
  EXPECT_EQ(state.failures, kProcs - 1);
}

TEST_F(ConcurrencyTest, UsersNeverInterfere) {
  constexpr int kRounds = 100;
  Enrollment bob = enroll(bob_, kIdB);
  dev0(bob).secret = testing::bytes_of("bob's secret, twenty");
  ASSERT_TRUE(is_ok(store().save(bob_, bob, true)));
  User carol{"carol", 1003, 1003, "/nonexistent/home/carol"};
  enroll(carol, kIdC);

  // Alice and bob log in every step; carol hammers wrong codes (and gets locked out) meanwhile.
  auto every_step = [this](const User& user, const Enrollment& e) -> ChildFn {
    return [this, user, e](const std::function<void()>& start) {
      auto opened = open_store(config_);
      if (!opened.ok()) return 100;
      FixedClock clock(kT0);
      Verifier verifier(config_, *opened.value(), clock);
      start();
      int misses = 0;
      for (int round = 0; round < kRounds; ++round) {
        clock.set(kT0 + kStep * round);
        std::string code = code_for_step(e, step_of(e, clock.now()));
        if (verdict_of(verifier.verify(user, code)) != Verdict::kAccepted) ++misses;
      }
      return std::min(misses, 99);
    };
  };
  ChildFn hammer = [this, carol](const std::function<void()>& start) {
    Config strict = config_;
    strict.max_failures = 5;
    auto opened = open_store(strict);
    if (!opened.ok()) return 100;
    FixedClock clock(kT0);
    Verifier verifier(strict, *opened.value(), clock);
    start();
    for (int round = 0; round < kRounds; ++round) {
      auto v = verdict_of(verifier.verify(carol, "000000"));
      if (!v || *v == Verdict::kAccepted) return 101;
    }
    return 0;
  };
  std::vector<int> statuses = run_together({every_step(alice_, e_), every_step(bob_, bob), hammer});
  EXPECT_EQ(statuses[0], 0) << "alice's logins that failed";
  EXPECT_EQ(statuses[1], 0) << "bob's logins that failed";
  EXPECT_EQ(statuses[2], 0) << "carol's wrong codes gave an error or were accepted";

  UserState a = read_state(alice_);
  UserState b = read_state(bob_);
  UserState c = read_state(carol);
  EXPECT_EQ(a.enrollment_id, std::string(kIdA));
  EXPECT_EQ(b.enrollment_id, std::string(kIdB));
  EXPECT_EQ(mark(a).last_step, step_of(e_, kT0 + kStep * (kRounds - 1)));
  EXPECT_EQ(mark(b).last_step, step_of(bob, kT0 + kStep * (kRounds - 1)));
  EXPECT_EQ(a.failures, 0);
  EXPECT_EQ(b.failures, 0);
  EXPECT_GE(c.failures, 5);
  EXPECT_GT(c.locked_until, kT0);
}

// Counters the killed child leaves in shared memory.
struct Progress {
  std::atomic<int> started{0};
  std::atomic<int> updates{0};
  std::atomic<std::int64_t> busy_ns{0};  // time the child spent in its updates
};

TEST_F(ConcurrencyTest, KilledLoginsNeverTearTheState) {
  PBX_SKIP_UNLESS_ROOT("the store's files are root-owned");
  // Kill until at least kMinKills children died and they had made kMinUpdates state writes
  // between them. Each kill comes after a random number of whole updates plus a random part
  // of one (scaled to the measured update time), so kills land all over the update path
  // whatever the disk's speed.
  constexpr int kMinKills = 100;
  constexpr int kMaxKills = 400;
  constexpr int kMinUpdates = 200;
  void* mem =
      ::mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* progress = new (mem) Progress;
  std::string secret_bytes = stored_secret(alice_);
  ASSERT_NE(secret_bytes, "");
  // Fixed seed: a failure can be replayed.
  std::mt19937 rng(20240611);  // NOLINT(cert-msc32-c,cert-msc51-cpp)
  std::uniform_int_distribution<int> whole_updates(0, 3);
  std::uniform_real_distribution<double> part_of_update(0.0, 1.2);
  int kills = 0;
  int total_updates = 0;
  std::int64_t total_busy_ns = 0;

  for (int i = 0; i < kMaxKills && (kills < kMinKills || total_updates < kMinUpdates); ++i) {
    SCOPED_TRACE("kill " + std::to_string(i));
    std::int64_t t = kT0 + kStep * i;
    std::string wrong = code_for_step(e_, step_of(e_, t) + 1000);
    progress->started = 0;
    progress->updates = 0;
    progress->busy_ns = 0;
    int after_updates = whole_updates(rng);
    double update_us =
        total_updates > 0 ? static_cast<double>(total_busy_ns) / total_updates / 1000 : 2000;
    auto delay =
        std::chrono::microseconds(static_cast<std::int64_t>(part_of_update(rng) * update_us));
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Wrong codes (failures, lockouts) and unlocks, a state write each, until killed.
      Config strict = config_;
      strict.max_failures = 3;
      auto opened = open_store(strict);
      if (!opened.ok()) ::_exit(100);
      FixedClock clock(t);
      Verifier verifier(strict, *opened.value(), clock);
      progress->started = 1;
      for (;;) {
        auto began = std::chrono::steady_clock::now();
        auto verdict = verdict_of(verifier.verify(alice_, wrong));
        if (verdict == Verdict::kLockedOut) {
          if (!verifier.unlock(alice_).ok()) ::_exit(101);
        } else if (verdict != Verdict::kRejected) {
          ::_exit(102);
        }
        progress->busy_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now() - began)
                                 .count();
        ++progress->updates;
      }
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((progress->started == 0 || progress->updates < after_updates) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(10));
    }
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "the child's own logins failed: exit " << WEXITSTATUS(status);
    ++kills;
    total_updates += progress->updates;
    total_busy_ns += progress->busy_ns;

    // The secret (file or sealed row) is never touched by a login.
    ASSERT_EQ(stored_secret(alice_), secret_bytes);
    // The state file is whole: root-owned 0600, and it parses, with and without the lock.
    if (auto st = lstat_of(state_file(alice_)); st && !on_database()) {
      ASSERT_TRUE(S_ISREG(st->st_mode));
      ASSERT_EQ(st->st_uid, 0U);
      ASSERT_EQ(st->st_mode & 07777, 0600U);
    }
    // Locked read first: on the database, a COMMIT the child sent just before it died may still
    // be running in its server process; taking the row lock waits for that transaction to end,
    // so the unlocked read after it sees the same committed state (read the other way round,
    // the two could straddle that COMMIT).
    int locked_failures = 0;
    {
      auto txn = store().lock_state(alice_);
      ASSERT_TRUE(is_ok(txn)) << "state unreadable after a kill";
      const UserState& state = txn.value()->state();
      ASSERT_TRUE(state.enrollment_id.empty() || state.enrollment_id == kIdA);
      locked_failures = state.failures;
    }
    auto peeked = store().peek_state(alice_);
    ASSERT_TRUE(is_ok(peeked)) << "state unreadable after a kill";
    ASSERT_EQ(peeked->failures, locked_failures);
    // As `pbx-mfa unlock` would: the child may have left alice locked out.
    FixedClock clock(t);
    Verifier verifier(config_, store(), clock);
    ASSERT_TRUE(is_ok(verifier.unlock(alice_)));
    // Leftover temp or lock files never block the next real login.
    auto out = verifier.verify(alice_, code_for_step(e_, step_of(e_, t)));
    ASSERT_EQ(verdict_of(out), Verdict::kAccepted) << verdict_code_name(verdict_code(out));
  }
  progress->~Progress();
  ::munmap(mem, sizeof(Progress));
  EXPECT_GE(kills, kMinKills);
  EXPECT_GE(total_updates, kMinUpdates);
  std::printf("[          ] %d kills, %d state updates in the killed children, %.0f us each\n",
              kills, total_updates,
              total_updates > 0 ? static_cast<double>(total_busy_ns) / total_updates / 1000 : 0.0);
}

}  // namespace
}  // namespace pbx::totp

// Load: 2,000 logins over 20 users from 8 concurrent worker processes through the real PAM stack
// (pam_start_confdir and the built module), half with valid codes, half wrong or replayed.
//
// The module reads the real clock, so the plan makes every outcome computable anyway:
// - Valid codes are the codes of steps S and S+1 (S: the step when the run starts) and the
//   users' recovery codes. With window = 1 both TOTP codes stay acceptable while the clock is in
//   step S or S+1, which holds for at least 30 s after S was read; the test checks it did.
// - The run goes in phases; the workers race inside a phase, never across phases. Each valid
//   code is submitted several times in one phase (a race group): exactly one submission wins,
//   the others are replays. Code S+1 only comes in a later phase than code S, so accepting it
//   never turns code S into a replay before its group was done.
// - A success resets the failure count, so for the 16 ordinary users the failures in two
//   consecutive phases bound any run of failures; the plan keeps that below max_failures.
// - The 4 lockout users get one success alone, then only wrong codes and replays, more than
//   max_failures of them: exactly max_failures - 1 are refused without a message, every later
//   one shows the lockout; in the last phases their valid codes are refused without a prompt.
// The 20 accounts exist only in this process's private mount namespace (an /etc/passwd copy
// bound over the real one), so the host's account database is never touched.
#include <pwd.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include "pam_stack.hpp"
#include "pbx/totp/state.hpp"

namespace pbx::pam::testing {
namespace {

constexpr int kUsers = 20;
constexpr int kLockoutUsers = 4;  // the last ones
constexpr int kWorkers = 8;
constexpr int kMaxFailures = 40;
constexpr int kRecoveryCodes = 6;
constexpr int kPhases = 5;
constexpr int kPeriod = 30;

enum class Kind { kValid, kWrong, kReplay };

struct Task {
  int user = 0;
  int phase = 0;
  std::string code;
  Kind kind = Kind::kWrong;
  int group = -1;  // race group of a valid code; -1 for wrong codes and replays
};

// What a worker saw, in memory shared with the parent (plain data only).
struct Seen {
  int rc;  // PAM code; -1: not run, or the worker died
  int prompts;
  int try_again;       // messages announcing a lockout ("Try again in ...")
  int recovery_left;   // N from "Recovery code accepted. N recovery codes left"; -1 if none
  int failed_notices;  // "N failed attempts since your last login, ..." (issue 17)
  int other_messages;  // anything else
  std::int64_t micros;
};

struct Shared {
  std::atomic<int> next;
  Seen seen[2000];
};

bool is_lockout_user(int u) { return u >= kUsers - kLockoutUsers; }

std::string user_name(int u) {
  char name[32];
  std::snprintf(name, sizeof name, "pbxload-%02d", u);
  return name;
}

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the module trusts only root-owned files: run as root";
    files_ = std::make_unique<TestFiles>(0);
    confdir_ = files_->root() + "/pam.d";
    ASSERT_EQ(::mkdir(confdir_.c_str(), 0755), 0);
    ASSERT_TRUE(write_file(
        confdir_ + "/" + kService,
        std::string("auth required ") + kModule + " config=" + files_->config_path() + " nodelay\n",
        0644, 0, 0));
    add_accounts();
  }

  // A private mount namespace with an /etc/passwd that also holds pbxload-00..19.
  void add_accounts() {
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << "unshare(CLONE_NEWNS): " << std::strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0)
        << std::strerror(errno);
    std::string passwd = read_all("/etc/passwd");
    if (!passwd.empty() && passwd.back() != '\n') passwd += '\n';
    uid_t uid = 64100;
    for (int u = 0; u < kUsers; ++u) {
      ASSERT_EQ(::getpwnam(user_name(u).c_str()), nullptr) << user_name(u) << " exists already";
      while (::getpwuid(uid) != nullptr) ++uid;
      passwd +=
          user_name(u) + ":x:" + std::to_string(uid++) + ":65534::/nonexistent:/usr/sbin/nologin\n";
    }
    passwd_copy_ = files_->root() + "/passwd";
    ASSERT_TRUE(write_file(passwd_copy_, passwd, 0644, 0, 0));
    ASSERT_EQ(::mount(passwd_copy_.c_str(), "/etc/passwd", nullptr, MS_BIND, nullptr), 0)
        << std::strerror(errno);
    for (int u = 0; u < kUsers; ++u) ASSERT_NE(::getpwnam(user_name(u).c_str()), nullptr);
  }

  std::unique_ptr<TestFiles> files_;
  std::string confdir_;
  std::string passwd_copy_;
};

// A code of the right length that no step in [from, to] produces, and not in `taken`.
std::string wrong_code(const Enrolled& e, std::int64_t from, std::int64_t to, std::mt19937& rng,
                       std::set<std::string>& taken) {
  for (;;) {
    std::string code = totp::format_code(static_cast<std::uint32_t>(rng() % 1000000), 6);
    bool valid = false;
    for (std::int64_t s = from; s <= to; ++s) valid = valid || e.code_for_step(s) == code;
    if (!valid && taken.insert(code).second) return code;
  }
}

// Runs tasks[begin, end) on kWorkers processes that claim them one by one.
void run_phase(const std::vector<Task>& tasks, std::size_t begin, std::size_t end,
               const std::string& confdir, Shared* shared) {
  shared->next.store(static_cast<int>(begin));
  std::vector<pid_t> pids;
  for (int w = 0; w < kWorkers; ++w) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (;;) {
        auto i = static_cast<std::size_t>(shared->next.fetch_add(1));
        if (i >= end) break;
        const Task& t = tasks[i];
        LoginSpec s;
        s.confdir = confdir;
        s.user = user_name(t.user);
        s.answers = {t.code};
        Conversation conv;
        auto start = steady_clock::now();
        int rc = pam_login(s, conv);
        Seen seen{rc,
                  static_cast<int>(conv.prompts.size()),
                  0,
                  -1,
                  0,
                  0,
                  std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - start)
                      .count()};
        for (const auto& m : conv.messages) {
          const std::string kRecovery = "Recovery code accepted. ";
          if (m.text.find("Try again in") != std::string::npos) {
            ++seen.try_again;
          } else if (m.text.rfind(kRecovery, 0) == 0) {
            seen.recovery_left = std::atoi(m.text.c_str() + kRecovery.size());
          } else if (m.text.find(" since your last login, the last from ") != std::string::npos) {
            ++seen.failed_notices;
          } else {
            ++seen.other_messages;
          }
        }
        shared->seen[i] = seen;
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  auto deadline = steady_clock::now() + std::chrono::seconds(60);
  for (pid_t pid : pids) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        ADD_FAILURE() << "a worker missed the deadline";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker " << pid << " died";
  }
}

TEST_F(LoadTest, TwoThousandLoginsFromEightWorkersHaveTheOutcomesThePolicySays) {
  files_->write_config("max_failures = " + std::to_string(kMaxFailures) + "\nlockout = 600\n");

  std::vector<Enrolled> enrolled;
  for (int u = 0; u < kUsers; ++u) enrolled.push_back(files_->enroll(user_name(u), kRecoveryCodes));
  const std::int64_t start_time = unix_now();
  const std::int64_t S = totp::time_step(start_time, kPeriod);
  for (int u = 0; u < kUsers; ++u) {
    // Two steps sharing a code (one in a million) would make code S+1 a replay of code S.
    while (enrolled[u].code_for_step(S) == enrolled[u].code_for_step(S + 1)) {
      enrolled[u] = files_->enroll(user_name(u), kRecoveryCodes);
    }
  }

  // The plan: per phase, per user, a list of tasks.
  std::mt19937 rng(20261122);
  std::vector<std::vector<std::vector<Task>>> plan(kPhases, std::vector<std::vector<Task>>(kUsers));
  int groups = 0;
  std::vector<int> group_user;
  for (int u = 0; u < kUsers; ++u) {
    const Enrolled& e = enrolled[u];
    std::set<std::string> taken;
    auto add = [&](int phase, const std::string& code, Kind kind, int times, int group = -1) {
      for (int i = 0; i < times; ++i) plan[phase][u].push_back(Task{u, phase, code, kind, group});
    };
    auto race = [&](int phase, const std::string& code, int times) {
      group_user.push_back(u);
      add(phase, code, Kind::kValid, times, groups++);
    };
    // Wrong for every step the module could look at: centre S-1..S+2 (skew), window 1.
    auto wrong = [&](int phase, int times) {
      for (int i = 0; i < times; ++i)
        add(phase, wrong_code(e, S - 3, S + 4, rng, taken), Kind::kWrong, 1);
    };
    const std::string now_code = e.code_for_step(S);
    const std::string next_code = e.code_for_step(S + 1);
    const auto& rc = e.recovery_codes;
    if (!is_lockout_user(u)) {
      race(0, now_code, 10);
      wrong(0, 10);
      race(1, next_code, 10);
      add(1, now_code, Kind::kReplay, 5);
      wrong(1, 5);
      race(2, rc[0], 5);
      race(2, rc[1], 5);
      add(2, next_code, Kind::kReplay, 5);
      wrong(2, 5);
      race(3, rc[2], 5);
      race(3, rc[3], 5);
      add(3, rc[0], Kind::kReplay, 5);
      wrong(3, 5);
      race(4, rc[4], 5);
      race(4, rc[5], 5);
      add(4, rc[1], Kind::kReplay, 5);
      wrong(4, 5);
    } else {
      race(0, now_code, 1);
      wrong(1, 15);
      add(1, now_code, Kind::kReplay, 10);
      wrong(2, 15);
      add(2, now_code, Kind::kReplay, 10);
      // Valid, but the user is locked out by now.
      add(3, next_code, Kind::kValid, 10);
      add(3, rc[0], Kind::kValid, 15);
      add(4, rc[1], Kind::kValid, 12);
      add(4, rc[2], Kind::kValid, 12);
    }
  }
  // Ordinary users never reach max_failures: at most one success-free stretch of two phases.
  // A phase's possible failures: its logins less one winner per race group.
  auto failures_in = [&](int p, int u) {
    std::set<int> won;
    for (const Task& t : plan[p][u]) won.insert(t.group);
    won.erase(-1);
    return plan[p][u].size() - won.size();
  };
  for (int u = 0; u < kUsers - kLockoutUsers; ++u) {
    for (int p = 0; p + 1 < kPhases; ++p) {
      ASSERT_LT(failures_in(p, u) + failures_in(p + 1, u), std::size_t{kMaxFailures});
    }
  }

  // Task order: per phase, each user's tasks shuffled, then dealt out four at a time per user,
  // so the eight workers are mostly two users' logins at once (the same code racing).
  std::vector<Task> tasks;
  std::vector<std::size_t> phase_end;
  for (int p = 0; p < kPhases; ++p) {
    for (auto& list : plan[p]) std::shuffle(list.begin(), list.end(), rng);
    std::vector<std::size_t> at(kUsers, 0);
    for (bool more = true; more;) {
      more = false;
      for (int u = 0; u < kUsers; ++u) {
        for (int k = 0; k < 4 && at[u] < plan[p][u].size(); ++k)
          tasks.push_back(plan[p][u][at[u]++]);
        more = more || at[u] < plan[p][u].size();
      }
    }
    phase_end.push_back(tasks.size());
  }
  ASSERT_EQ(tasks.size(), 2000u);
  std::size_t valid_count = std::count_if(tasks.begin(), tasks.end(),
                                          [](const Task& t) { return t.kind == Kind::kValid; });
  ASSERT_EQ(valid_count, 1000u);

  void* mem =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* shared = new (mem) Shared;
  for (auto& s : shared->seen) s = Seen{-1, 0, 0, -1, 0, 0, 0};

  auto t0 = steady_clock::now();
  std::size_t begin = 0;
  std::vector<double> phase_seconds;
  for (int p = 0; p < kPhases; ++p) {
    auto p0 = steady_clock::now();
    run_phase(tasks, begin, phase_end[p], confdir_, shared);
    phase_seconds.push_back(std::chrono::duration<double>(steady_clock::now() - p0).count());
    begin = phase_end[p];
  }
  double elapsed = std::chrono::duration<double>(steady_clock::now() - t0).count();
  const std::int64_t end_step = totp::time_step(unix_now(), kPeriod);
  ASSERT_LE(end_step, S + 1) << "the run outlasted step S+1 (" << elapsed
                             << " s): codes S and S+1 are no longer both acceptable, so the "
                                "expected outcomes are unknown";

  // Check every login against the plan.
  int wrong_outcomes = 0;
  auto bad = [&](std::size_t i, const std::string& why) {
    if (++wrong_outcomes <= 20) {
      const Task& t = tasks[i];
      const Seen& s = shared->seen[i];
      ADD_FAILURE() << "login " << i << " (phase " << t.phase + 1 << ", " << user_name(t.user)
                    << ", kind " << static_cast<int>(t.kind) << ", group " << t.group
                    << "): " << why << " — rc " << s.rc << ", prompts " << s.prompts
                    << ", try-again " << s.try_again << ", recovery-left " << s.recovery_left
                    << ", other messages " << s.other_messages;
    }
  };
  std::vector<int> group_wins(static_cast<std::size_t>(groups), 0);
  std::vector<std::multiset<int>> recovery_left(kUsers);
  // Lockout users: failures refused without a message, per phase.
  std::map<std::pair<int, int>, int> quiet_refusals, lockout_refusals;
  std::map<std::string, int> counts;
  std::vector<std::int64_t> micros;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const Task& t = tasks[i];
    const Seen& s = shared->seen[i];
    micros.push_back(s.micros);
    bool refused = s.rc == PAM_AUTH_ERR;
    if (s.rc == PAM_SUCCESS) {
      counts[s.recovery_left >= 0 ? "PAM_SUCCESS (recovery code)" : "PAM_SUCCESS (TOTP code)"]++;
    } else if (refused && s.try_again > 0) {
      counts[s.prompts > 0 ? "PAM_AUTH_ERR, lockout message"
                           : "PAM_AUTH_ERR, lockout message, not prompted"]++;
    } else if (refused) {
      counts["PAM_AUTH_ERR, no message"]++;
    } else {
      counts["other (rc " + std::to_string(s.rc) + ")"]++;
    }
    if (s.other_messages != 0) bad(i, "unexpected message");
    // The failed-attempts notice comes only with a success (the wrong codes of other phases).
    if (s.failed_notices != 0 && s.rc != PAM_SUCCESS) bad(i, "failed-attempts notice on a failure");
    if (!is_lockout_user(t.user)) {
      if (s.prompts != 1) bad(i, "expected exactly one prompt");
      if (s.try_again != 0) bad(i, "ordinary user shown a lockout");
      if (t.kind == Kind::kValid) {
        if (s.rc == PAM_SUCCESS) {
          ++group_wins[static_cast<std::size_t>(t.group)];
          if (t.code.size() != 6) recovery_left[t.user].insert(s.recovery_left);
          if ((t.code.size() == 6) != (s.recovery_left < 0)) bad(i, "recovery message mismatch");
        } else if (!refused || s.recovery_left >= 0) {
          bad(i, "a lost race must be refused (PAM_AUTH_ERR)");
        }
      } else if (!refused || s.recovery_left >= 0) {
        bad(i, "wrong or replayed code not refused");
      }
      continue;
    }
    // Lockout users.
    if (t.phase == 0) {
      if (s.rc != PAM_SUCCESS || s.prompts != 1 || s.try_again != 0) bad(i, "first code refused");
      if (s.rc == PAM_SUCCESS) ++group_wins[static_cast<std::size_t>(t.group)];
    } else if (t.phase <= 2) {
      if (!refused || s.try_again > 1)
        bad(i, "failure not refused");
      else if (s.try_again == 0 && s.prompts != 1)
        bad(i, "refused without prompt, no lockout");
      else
        (s.try_again == 0 ? quiet_refusals : lockout_refusals)[{t.user, t.phase}]++;
    } else {
      // Locked since phase 3: refused before the prompt, with the lockout message.
      if (!refused || s.prompts != 0 || s.try_again != 1) bad(i, "valid code of a locked user");
    }
  }
  for (int g = 0; g < groups; ++g) {
    if (group_wins[static_cast<std::size_t>(g)] != 1) {
      ++wrong_outcomes;
      ADD_FAILURE() << "a valid code of " << user_name(group_user[static_cast<std::size_t>(g)])
                    << " was accepted " << group_wins[static_cast<std::size_t>(g)] << " times";
    }
  }
  const std::multiset<int> all_left{0, 1, 2, 3, 4, 5};
  for (int u = 0; u < kUsers - kLockoutUsers; ++u) {
    if (recovery_left[u] != all_left) {
      ++wrong_outcomes;
      ADD_FAILURE() << user_name(u) << ": the recovery successes did not count 5 down to 0";
    }
  }
  for (int u = kUsers - kLockoutUsers; u < kUsers; ++u) {
    // Phase 2: 25 failures, none reaching the limit. Phase 3: the rest up to max_failures - 1
    // quietly, then the one that locks and all later ones with the lockout message.
    int quiet2 = quiet_refusals[{u, 1}], quiet3 = quiet_refusals[{u, 2}];
    int loud2 = lockout_refusals[{u, 1}], loud3 = lockout_refusals[{u, 2}];
    if (quiet2 != 25 || loud2 != 0 || quiet3 != kMaxFailures - 1 - 25 ||
        loud3 != 25 - (kMaxFailures - 1 - 25)) {
      ++wrong_outcomes;
      ADD_FAILURE() << user_name(u) << ": lockout not where the policy puts it: phase 2 quiet "
                    << quiet2 << " loud " << loud2 << ", phase 3 quiet " << quiet3 << " loud "
                    << loud3 << " (expected 25/0, " << kMaxFailures - 1 - 25 << "/"
                    << 25 - (kMaxFailures - 1 - 25) << ")";
    }
  }

  // The state files afterwards.
  for (int u = 0; u < kUsers; ++u) {
    auto state = totp::parse_state(state_text(files_->state_file(user_name(u))));
    ASSERT_TRUE(state) << user_name(u);
    if (is_lockout_user(u)) {
      EXPECT_EQ(mark(*state).last_step, S) << user_name(u);
      EXPECT_EQ(state->failures, kMaxFailures) << user_name(u);
      EXPECT_GT(state->locked_until, unix_now()) << user_name(u);
      EXPECT_TRUE(state->used_recovery.empty()) << user_name(u);
    } else {
      EXPECT_EQ(mark(*state).last_step, S + 1) << user_name(u);
      EXPECT_LT(state->failures, kMaxFailures) << user_name(u);
      EXPECT_EQ(state->locked_until, 0) << user_name(u);
      EXPECT_EQ(state->used_recovery.size(), std::size_t{kRecoveryCodes}) << user_name(u);
    }
  }
  EXPECT_EQ(wrong_outcomes, 0);

  std::sort(micros.begin(), micros.end());
  auto ms = [](std::int64_t us) { return static_cast<double>(us) / 1000.0; };
  std::printf("load: %zu logins, %d users (%d to be locked out), %d worker processes\n",
              tasks.size(), kUsers, kLockoutUsers, kWorkers);
  std::printf("load: %zu with valid codes, %zu with wrong or replayed ones; %d race groups\n",
              valid_count, tasks.size() - valid_count, groups);
  for (const auto& [what, n] : counts) std::printf("load:   %-45s %5d\n", what.c_str(), n);
  std::printf("load: elapsed %.2f s (phases", elapsed);
  for (double s : phase_seconds) std::printf(" %.2f", s);
  std::printf("), %.0f logins/s; per login p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              static_cast<double>(tasks.size()) / elapsed, ms(micros[micros.size() / 2]),
              ms(micros[micros.size() * 99 / 100]), ms(micros.back()));
  std::printf("load: wrong outcomes %d\n", wrong_outcomes);
  ::munmap(mem, sizeof(Shared));
}

}  // namespace
}  // namespace pbx::pam::testing

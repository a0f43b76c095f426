// Fleet-key rotation under concurrent logins (issue 18): many users in the database, logins
// from forked processes through real libpam and the built module on a host with both keys,
// `pbx-mfa db rotate-key --batch 20` SIGKILLed after its first progress line, then run again to
// the end; logins never fail because of the rotation, every row opens under one of the keys at
// every point, and afterwards the new key alone logs in while the old key alone is refused.
// Runs against the throwaway cluster (ctest pg.*), as root (the module trusts root's files).
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <thread>

#include "pam_stack.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/seal.hpp"
#include "pg_test_db.hpp"

namespace pbx::pam::testing {
namespace {

constexpr int kLoginUsers = 12;     // real accounts (a private /etc/passwd), logging in
constexpr int kFillUsers = 1500;    // rows only: what the rotation has to go through
constexpr int kRecoveryCodes = 20;  // each one login
constexpr int kWorkers = 4;
constexpr int kMaxLogins = 1024;

// Named to sort among the fill users ("pbxtestfill-%05d"), one after every tenth of the first
// 120: their rows are in the first batches, which run while they log in.
std::string login_user(int u) {
  char name[32];
  std::snprintf(name, sizeof name, "pbxtestfill-%05d-r", u * 10);
  return name;
}

struct Shared {
  std::atomic<int> stop;
  std::atomic<int> count;
  int next_code[kLoginUsers];  // each user's next unused recovery code (its worker's alone)
  int rc[kMaxLogins];
  int user[kMaxLogins];
};

// Recovery codes kept for the checks at the end.
constexpr int kReserved = 2;

class RotateUnderLoginsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the module trusts only root-owned files: run as root";
    PBX_SKIP_UNLESS_PG_CLUSTER();
    files_ = std::make_unique<TestFiles>(0);
    confdir_ = files_->root() + "/pam.d";
    ASSERT_EQ(::mkdir(confdir_.c_str(), 0755), 0);
    ASSERT_TRUE(write_file(
        confdir_ + "/" + kService,
        std::string("auth required ") + kModule + " config=" + files_->config_path() + " nodelay\n",
        0644, 0, 0));
    add_accounts();
    schema_ = std::make_unique<totp::testing::PgSchema>();
    old_key_ = files_->root() + "/fleet.key";
    new_key_ = files_->root() + "/fleet.key.new";
    ASSERT_TRUE(totp::create_fleet_key(old_key_).ok());
  }

  // A private mount namespace with an /etc/passwd that also holds the login users.
  void add_accounts() {
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << "unshare(CLONE_NEWNS): " << std::strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0)
        << std::strerror(errno);
    std::string passwd = read_all("/etc/passwd");
    if (!passwd.empty() && passwd.back() != '\n') passwd += '\n';
    uid_t uid = 64300;
    for (int u = 0; u < kLoginUsers; ++u) {
      ASSERT_EQ(::getpwnam(login_user(u).c_str()), nullptr) << login_user(u) << " exists already";
      while (::getpwuid(uid) != nullptr) ++uid;
      passwd += login_user(u) + ":x:" + std::to_string(uid++) +
                ":65534::/nonexistent:/usr/sbin/nologin\n";
    }
    std::string copy = files_->root() + "/passwd";
    ASSERT_TRUE(write_file(copy, passwd, 0644, 0, 0));
    ASSERT_EQ(::mount(copy.c_str(), "/etc/passwd", nullptr, MS_BIND, nullptr), 0)
        << std::strerror(errno);
  }

  // The config of this host: `fleet_key`, and `fleet_key_previous` unless empty.
  totp::Config use_keys(const std::string& key, const std::string& previous) {
    std::string extra = "store = postgresql\npg_conninfo = " + schema_->conninfo() +
                        "\npg_plugin = " + totp::testing::pg_plugin_path() +
                        "\nfleet_key = " + key + "\n";
    if (!previous.empty()) extra += "fleet_key_previous = " + previous + "\n";
    files_->write_config(extra);
    totp::Config c = files_->store_config();
    c.store = "postgresql";
    c.pg_conninfo = schema_->conninfo();
    c.pg_plugin = totp::testing::pg_plugin_path();
    c.fleet_key = key;
    c.fleet_key_previous = previous;
    return c;
  }

  // Enrollments (and a state row each) written through the library under `config`'s key.
  void enroll_all(const totp::Config& config) {
    auto store = totp::open_store(config);
    ASSERT_TRUE(store.ok()) << store.error().message;
    for (int u = 0; u < kLoginUsers; ++u) {
      auto account = totp::lookup_user(login_user(u));
      ASSERT_TRUE(account.ok());
      Enrolled out;
      auto id = totp::new_enrollment_id();
      auto secret = totp::generate_secret(totp::Algorithm::kSha1);
      ASSERT_TRUE(id.ok() && secret.ok());
      out.enrollment = totp::single_device_enrollment(*id, std::move(secret.value()),
                                                      totp::Algorithm::kSha1, 6, 30, 1700000000);
      auto codes = totp::generate_recovery_codes(kRecoveryCodes);
      ASSERT_TRUE(codes.ok());
      auto set = totp::hash_recovery_codes(*codes, kCheapKdf);
      ASSERT_TRUE(set.ok());
      out.enrollment.recovery = std::move(set.value());
      for (const auto& c : *codes) out.recovery_codes.emplace_back(c.view());
      ASSERT_TRUE((*store)->save(*account, out.enrollment, true).ok());
      enrolled_.push_back(std::move(out));
    }
    // The other users: rows only (no account needed to hold rows), one secret for all.
    auto secret = totp::generate_secret(totp::Algorithm::kSha1);
    ASSERT_TRUE(secret.ok());
    auto fill_id = totp::new_enrollment_id();
    ASSERT_TRUE(fill_id.ok());
    totp::Enrollment e = totp::single_device_enrollment(*fill_id, std::move(secret.value()),
                                                        totp::Algorithm::kSha1, 6, 30, 1700000000);
    for (int u = 0; u < kFillUsers; ++u) {
      char name[32];
      std::snprintf(name, sizeof name, "pbxtestfill-%05d", u);
      totp::User user{name, static_cast<uid_t>(70000 + u), 65534, "/nonexistent"};
      auto txn = (*store)->lock_state(user);
      ASSERT_TRUE(txn.ok()) << txn.error().message;
      ASSERT_TRUE((*store)->save(user, e, true).ok());
      totp::UserState s;
      s.enrollment_id = e.id;
      s.failures = u % 3;
      ASSERT_TRUE((*txn)->commit(s).ok());
    }
  }

  // Logins from kWorkers processes until `stop` (or the codes run out), each with the next
  // recovery code of one of its users: every one is a valid code.
  std::vector<pid_t> start_logins(Shared* shared) {
    shared->stop.store(0);
    shared->count.store(0);
    std::vector<pid_t> pids;
    for (int w = 0; w < kWorkers; ++w) {
      pid_t pid = ::fork();
      if (pid == 0) {
        bool any = true;
        while (shared->stop.load() == 0 && any) {
          any = false;
          for (int u = w; u < kLoginUsers && shared->stop.load() == 0; u += kWorkers) {
            if (shared->next_code[u] >= kRecoveryCodes - kReserved) continue;
            int i = shared->count.fetch_add(1);
            if (i >= kMaxLogins) ::_exit(0);
            any = true;
            shared->user[i] = u;
            shared->rc[i] = login(u, enrolled_[u].recovery_codes[shared->next_code[u]++]);
            std::this_thread::sleep_for(std::chrono::milliseconds(40));
          }
        }
        ::_exit(0);
      }
      pids.push_back(pid);
    }
    return pids;
  }

  // Until the workers are logging in (a loaded machine may take a while to start them).
  static void wait_for_logins(const Shared* shared) {
    auto end = steady_clock::now() + std::chrono::seconds(10);
    while (shared->count.load() < 2 * kWorkers && steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  static void stop_logins(Shared* shared, const std::vector<pid_t>& pids) {
    shared->stop.store(1);
    for (pid_t pid : pids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
  }

  // pbx-mfa db rotate-key; with `kill_after_first_line`, SIGKILLed after its first progress
  // line. Returns the exit status (-SIGKILL when killed) and the output.
  int rotate(bool kill_after_first_line, std::string& output) {
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::close(out[0]);
      ::execl(PBX_CLI_PATH, PBX_CLI_PATH, "--config", files_->config_path().c_str(), "db",
              "rotate-key", "--new-key", new_key_.c_str(), "--batch", "20",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    char buf[4096];
    bool killed = false;
    for (;;) {
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      output.append(buf, static_cast<std::size_t>(n));
      if (kill_after_first_line && !killed && output.find("rotated ") != std::string::npos &&
          output.find('\n', output.find("rotated ")) != std::string::npos) {
        ::kill(pid, SIGKILL);
        killed = true;
      }
    }
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  totp::DbKeyUsage usage(const totp::Config& c) {
    auto u = totp::db_key_usage(c);
    EXPECT_TRUE(u.ok()) << u.error().message;
    return u.ok() ? *u : totp::DbKeyUsage{};
  }

  int login(int u, const std::string& code) {
    LoginSpec s;
    s.confdir = confdir_;
    s.user = login_user(u);
    s.answers = {code};
    Conversation conv;
    return pam_login(s, conv);
  }

  std::unique_ptr<TestFiles> files_;
  std::unique_ptr<totp::testing::PgSchema> schema_;
  std::string confdir_, old_key_, new_key_;
  std::vector<Enrolled> enrolled_;
};

void expect_all_accepted(const Shared* shared, const char* phase) {
  int n = std::min(shared->count.load(), kMaxLogins);
  int bad = 0;
  for (int i = 0; i < n; ++i) {
    if (shared->rc[i] != PAM_SUCCESS) ++bad;
  }
  EXPECT_EQ(bad, 0) << phase << ": " << bad << " of " << n << " logins with a valid code refused";
  EXPECT_GT(n, kWorkers) << phase << ": too few logins to tell";
  std::printf("%s: %d logins with a valid code, %d refused\n", phase, n, bad);
}

TEST_F(RotateUnderLoginsTest, KilledMidwayThenResumedLoginsKeepWorking) {
  totp::Config old_only = use_keys(old_key_, "");
  ASSERT_TRUE(totp::db_init(old_only).ok());
  enroll_all(old_only);

  // Step 1: the new key is made; nothing changes.
  std::string output;
  ASSERT_EQ(rotate(false, output), 0) << output;
  ASSERT_NE(output.find("created the new fleet key"), std::string::npos) << output;
  EXPECT_EQ(usage(old_only).previous(), 0);
  // Steps 2-3: this host has both keys.
  totp::Config both = use_keys(new_key_, old_key_);
  EXPECT_EQ(usage(both).previous(), kLoginUsers + 2 * kFillUsers);

  auto* shared = static_cast<Shared*>(
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(shared, MAP_FAILED);
  std::fill(std::begin(shared->next_code), std::end(shared->next_code), 0);
  // Step 4, killed after its first progress line while logins go on.
  auto pids = start_logins(shared);
  wait_for_logins(shared);
  output.clear();
  int rc = rotate(true, output);
  stop_logins(shared, pids);
  EXPECT_EQ(rc, -SIGKILL) << output;
  expect_all_accepted(shared, "during the killed rotation");
  // The last recovery code each user spent while the killed rotation ran (checked at the end).
  int spent_midway[kLoginUsers];
  std::copy(std::begin(shared->next_code), std::end(shared->next_code), spent_midway);
  auto midway = usage(both);
  std::printf("killed midway: %ld rows under the new key, %ld under the old\n",
              midway.enrollments_current + midway.states_current, midway.previous());
  EXPECT_EQ(midway.neither_count(), 0) << "a row that opens under neither key";
  EXPECT_GT(midway.previous(), 0) << "the rotation was killed after it had finished";
  EXPECT_GT(midway.enrollments_current, kLoginUsers) << "the first batches were not committed";

  // Run again: it goes on to the end, logins still going.
  pids = start_logins(shared);
  wait_for_logins(shared);
  output.clear();
  rc = rotate(false, output);
  stop_logins(shared, pids);
  ASSERT_EQ(rc, 0) << output;
  EXPECT_NE(output.find("rotated "), std::string::npos) << output;
  EXPECT_NE(output.find("remove fleet_key_previous"), std::string::npos) << output;
  expect_all_accepted(shared, "during the resumed rotation");
  auto done = usage(both);
  EXPECT_EQ(done.previous(), 0);
  EXPECT_EQ(done.neither_count(), 0);
  EXPECT_EQ(done.enrollments_current, kLoginUsers + kFillUsers);

  // The old key removed: the new key alone logs in; the old key alone is refused.
  use_keys(new_key_, "");
  int checked = 0;
  for (int u = 0; u < kLoginUsers; ++u) {
    int next = shared->next_code[u];
    ASSERT_LE(next + kReserved, kRecoveryCodes);
    EXPECT_EQ(login(u, enrolled_[u].recovery_codes[next]), PAM_SUCCESS) << login_user(u);
    EXPECT_EQ(login(u, enrolled_[u].code_at(std::time(nullptr))), PAM_SUCCESS) << login_user(u);
    // A recovery code used while a rotation ran stays used (no lost update of the state):
    // the last one spent during the killed run, else during the resumed run.
    int spent = spent_midway[u] > 0 ? spent_midway[u] - 1 : next - 1;
    if (spent < 0) continue;  // the user did not log in during either run
    ++checked;
    EXPECT_NE(login(u, enrolled_[u].recovery_codes[spent]), PAM_SUCCESS)
        << login_user(u) << ": a recovery code used during the rotation accepted again";
  }
  EXPECT_GE(checked, kLoginUsers / 2) << "too few users logged in during the rotation";
  use_keys(old_key_, "");
  for (int u = 0; u < kLoginUsers; ++u) {
    EXPECT_EQ(login(u, enrolled_[u].recovery_codes[shared->next_code[u] + 1]), PAM_AUTHINFO_UNAVAIL)
        << login_user(u);
  }
  ::munmap(shared, sizeof(Shared));
}

}  // namespace
}  // namespace pbx::pam::testing

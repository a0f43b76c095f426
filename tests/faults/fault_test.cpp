// Faults: state_dir on a full and on a read-only filesystem, SIGKILL at random instants of
// logins and enrollments, and clock jumps backwards, through the built module and the library.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "authenticate.hpp"
#include "fake_context.hpp"
#include "pam_stack.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/store.hpp"

namespace pbx::pam::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// Helpers

// A tmpfs mounted over `dir` for the life of the object: unmounted (lazily, so a file still
// open cannot keep it) when the test ends, whether its assertions held or not.
class TmpfsMount {
 public:
  TmpfsMount(std::string dir, const std::string& options) : dir_(std::move(dir)) {
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      throw std::runtime_error("mount tmpfs on " + dir_ + ": " + std::strerror(errno));
    }
  }
  ~TmpfsMount() { ::umount2(dir_.c_str(), MNT_DETACH); }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  // 0 or an errno.
  int remount(bool read_only) {
    unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV;
    if (read_only) flags |= MS_RDONLY;
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", flags, nullptr) == 0 ? 0 : errno;
  }

 private:
  std::string dir_;
};

// Every file in a directory with its bytes (temp files included, hence the dot files).
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) throw std::runtime_error("opendir " + dir);
  while (dirent* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    if (name == "." || name == "..") continue;
    out[name] = read_all(dir + "/" + name);
  }
  ::closedir(d);
  return out;
}

// Fills the filesystem holding `dir`: first every data page (one file grown until ENOSPC),
// then, when `inodes`, every inode (empty files until ENOSPC).
void fill_filesystem(const std::string& dir, bool inodes) {
  std::string filler = dir + "/filler";
  int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  must(fd >= 0, "create filler");
  std::string page(4096, 'x');
  for (;;) {
    ssize_t n = ::write(fd, page.data(), page.size());
    if (n < 0) {
      must(errno == ENOSPC, std::string("fill: ") + std::strerror(errno));
      break;
    }
  }
  ::close(fd);
  if (!inodes) return;
  for (int i = 0;; ++i) {
    std::string name = dir + "/inode-" + std::to_string(i);
    int f = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (f < 0) {
      must(errno == ENOSPC, std::string("fill inodes: ") + std::strerror(errno));
      break;
    }
    ::close(f);
  }
}

void free_filesystem(const std::string& dir) {
  for (const auto& [name, bytes] : snapshot(dir)) {
    if (name == "filler" || name.rfind("inode-", 0) == 0) ::unlink((dir + "/" + name).c_str());
  }
}

// Waits until at least `margin` seconds remain in the current 30-second step, so codes worked
// out now are still the same codes when the login runs.
void away_from_step_edge(int margin = 5) {
  while (30 - unix_now() % 30 < margin) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

totp::UserState parsed_state(const std::string& path) {
  auto s = totp::parse_state(state_text(path));
  if (!s) throw std::runtime_error("state file " + path + " does not parse: " + s.error().message);
  return s.value();
}

// One login through the module flow (the code the built module runs) with a FakeContext, to
// see the log line the real module would hand to syslog.
struct FlowAttempt {
  int rc = -1;
  std::string logs;
  std::string messages;
};

FlowAttempt flow_login(const std::string& config_path, const std::string& user,
                       const std::string& answer, const totp::Clock& clock, uid_t trusted_uid = 0) {
  FakeContext ctx;
  ctx.user_name = user;
  ctx.answer(answer);
  AuthOptions opts;
  opts.trusted_uid = trusted_uid;
  FlowAttempt a;
  a.rc = authenticate(ctx, {"config=" + config_path, "nodelay"}, opts, clock);
  a.logs = ctx.all_logs();
  a.messages = ctx.all_messages();
  return a;
}

// ---------------------------------------------------------------------------------------------
// state_dir on a full or read-only filesystem

class StateDirFaultTest : public PamStackTest {
 protected:
  void SetUp() override {
    PamStackTest::SetUp();
    if (IsSkipped()) return;
    mount_ = std::make_unique<TmpfsMount>(files_->state_dir(), "size=64k,nr_inodes=64,mode=0700");
  }
  void TearDown() override {
    mount_.reset();  // before TestFiles removes the tree
    PamStackTest::TearDown();
  }

  // Logs `user` in once with the code of the step before now (inside the window), so the lock
  // and state files exist and the current step's code is still unused.
  std::int64_t first_login(const Enrolled& e) {
    away_from_step_edge();
    std::int64_t step = totp::time_step(unix_now(), 30);
    EXPECT_EQ(login(spec({e.code_for_step(step - 1)})), PAM_SUCCESS);
    return step - 1;
  }

  // While the fault holds: the current code, a wrong code, the replayed one and a recovery
  // code all end in the
  // same PAM_AUTHINFO_UNAVAIL (nothing to tell a guesser apart), nothing changes in state_dir
  // or in the secret, and the flow's log line names the file and the system error.
  void expect_fails_closed(const Enrolled& e, const std::string& used_code,
                           const std::string& errno_text, const std::string& state_before) {
    std::string secret_before = read_all(files_->secret_file(kUser));
    auto dir_before = snapshot(files_->state_dir());
    std::string fresh = e.code_at(unix_now());
    for (const std::string& code :
         {fresh, e.wrong_code_at(unix_now()), used_code, e.recovery_codes.at(0), fresh}) {
      Conversation conv;
      EXPECT_EQ(login(spec({code}), conv), PAM_AUTHINFO_UNAVAIL) << "code " << code;
      EXPECT_EQ(conv.prompts.size(), 1u);
    }
    totp::SystemClock clock;
    FlowAttempt a = flow_login(files_->config_path(), kUser, fresh, clock);
    EXPECT_EQ(a.rc, PAM_AUTHINFO_UNAVAIL);
    EXPECT_NE(a.logs.find("outcome=unavailable"), std::string::npos) << a.logs;
    EXPECT_NE(a.logs.find(files_->state_dir() + "/" + kUser), std::string::npos) << a.logs;
    EXPECT_NE(a.logs.find(errno_text), std::string::npos) << a.logs;
    EXPECT_EQ(a.logs.find(fresh), std::string::npos) << "the code is in the log: " << a.logs;
    std::cout << "[ log line ] " << a.logs;

    EXPECT_EQ(read_all(files_->secret_file(kUser)), secret_before) << "the secret changed";
    EXPECT_EQ(snapshot(files_->state_dir()), dir_before) << "state_dir changed (or kept a temp)";
    if (!state_before.empty()) {
      EXPECT_EQ(read_all(files_->state_file(kUser)), state_before);
      EXPECT_NO_THROW(parsed_state(files_->state_file(kUser)));
    }
  }

  // Once the fault is gone: the codes refused during the fault (a TOTP code and a recovery
  // code) are accepted once (they were never accepted), then refused (their use is recorded).
  void expect_recovers(const Enrolled& e) {
    EXPECT_EQ(login(spec({e.recovery_codes.at(0)})), PAM_SUCCESS);
    EXPECT_EQ(login(spec({e.recovery_codes.at(0)})), PAM_AUTH_ERR) << "recovery code used twice";
    away_from_step_edge(2);
    std::string fresh = e.code_at(unix_now());
    EXPECT_EQ(login(spec({fresh})), PAM_SUCCESS);
    Conversation again;
    EXPECT_EQ(login(spec({fresh}), again), PAM_AUTH_ERR) << "accepted twice";
    totp::UserState s = parsed_state(files_->state_file(kUser));
    EXPECT_EQ(mark(s).last_step, totp::time_step(unix_now(), 30));
  }

  std::unique_ptr<TmpfsMount> mount_;
};

// A full filesystem does not stop a login that has its state file: a change is written into
// the file's own blocks (two slots, in place, pam_pbx_totp(8) FILES), so it needs no free block,
// and every code is still recorded: accepted once, then refused. A login that needs a new file
// still fails closed (the next test).
TEST_F(StateDirFaultTest, FullFilesystemStillRecordsInPlace) {
  Enrolled e = files_->enroll(kUser);
  std::int64_t used_step = first_login(e);
  struct stat before {};
  ASSERT_EQ(::stat(files_->state_file(kUser).c_str(), &before), 0);
  fill_filesystem(files_->state_dir(), /*inodes=*/false);
  std::map<std::string, std::string> dir_before = snapshot(files_->state_dir());
  EXPECT_EQ(login(spec({e.code_for_step(used_step)})), PAM_AUTH_ERR) << "replayed code";
  EXPECT_EQ(login(spec({e.recovery_codes.at(0)})), PAM_SUCCESS);
  EXPECT_EQ(login(spec({e.recovery_codes.at(0)})), PAM_AUTH_ERR) << "recovery code used twice";
  away_from_step_edge(2);
  std::string fresh = e.code_at(unix_now());
  EXPECT_EQ(login(spec({fresh})), PAM_SUCCESS);
  EXPECT_EQ(login(spec({fresh})), PAM_AUTH_ERR) << "accepted twice";
  totp::UserState s = parsed_state(files_->state_file(kUser));
  EXPECT_EQ(mark(s).last_step, totp::time_step(unix_now(), 30));
  struct stat after {};
  ASSERT_EQ(::stat(files_->state_file(kUser).c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the state file was replaced, not written in place";
  std::map<std::string, std::string> dir_after = snapshot(files_->state_dir());
  for (const auto& [name, bytes] : dir_before) EXPECT_EQ(dir_after.count(name), 1u) << name;
  for (const auto& [name, bytes] : dir_after) {
    // The event log's files may appear (an inode is left; its lines are not, and recording an
    // event never decides an outcome); no temp file of the state.
    EXPECT_TRUE(dir_before.count(name) == 1 || name.rfind(".events.", 0) == 0)
        << "left in state_dir: " << name;
  }
  free_filesystem(files_->state_dir());
}

TEST_F(StateDirFaultTest, FullFilesystemBeforeTheFirstLoginFailsClosed) {
  // No lock or state file yet, and no inode left to make one.
  Enrolled e = files_->enroll(kUser);
  fill_filesystem(files_->state_dir(), /*inodes=*/true);
  expect_fails_closed(e, e.wrong_code_at(unix_now()), "No space left on device", "");
  free_filesystem(files_->state_dir());
  expect_recovers(e);
}

TEST_F(StateDirFaultTest, ReadOnlyFilesystemFailsClosed) {
  Enrolled e = files_->enroll(kUser);
  std::int64_t used_step = first_login(e);
  std::string state_before = read_all(files_->state_file(kUser));
  ASSERT_EQ(mount_->remount(/*read_only=*/true), 0);
  expect_fails_closed(e, e.code_for_step(used_step), "Read-only file system", state_before);
  ASSERT_EQ(mount_->remount(/*read_only=*/false), 0);
  expect_recovers(e);
}

TEST_F(StateDirFaultTest, ReadOnlyFilesystemBeforeTheFirstLoginFailsClosed) {
  Enrolled e = files_->enroll(kUser);
  ASSERT_EQ(mount_->remount(/*read_only=*/true), 0);
  expect_fails_closed(e, e.wrong_code_at(unix_now()), "Read-only file system", "");
  ASSERT_EQ(mount_->remount(/*read_only=*/false), 0);
  expect_recovers(e);
}

// enroll_at_login with a full state_dir: the secret lands (its directory has room), but the
// confirmation code's use cannot be recorded, so that code must not open this login either:
// otherwise one code logs in twice once the disk has room again.
TEST_F(StateDirFaultTest, EnrollAtLoginOnAFullFilesystemAcceptsNoCodeItCannotRecord) {
  files_->write_config("enroll_at_login = yes\nrecovery_codes = 1\nissuer = pbx-test\n");
  fill_filesystem(files_->state_dir(), /*inodes=*/false);  // the lock file can still be made
  away_from_step_edge();
  Conversation conv;
  std::string key;
  std::string typed;
  conv.responder = [&](const Conversation& c,
                       const std::string& prompt) -> std::optional<std::string> {
    if (prompt == "Press Enter once you have stored them: ") return std::string();
    if (prompt != "Code from the app: ") return std::nullopt;
    for (const auto& m : c.messages) {  // the key the setup shows: "\nKey: ABCD EFGH ...\n"
      std::size_t at = m.text.find("\nKey: ");
      if (at == std::string::npos) continue;
      std::size_t end = m.text.find('\n', at + 6);
      for (char ch : m.text.substr(at + 6, end - at - 6)) {
        if (ch != ' ') key.push_back(ch);
      }
    }
    auto bytes = totp::base32_decode(key);
    if (!bytes) return std::nullopt;
    auto code = totp::hotp(*bytes, totp::Algorithm::kSha1,
                           static_cast<std::uint64_t>(totp::time_step(unix_now(), 30)), 6);
    if (!code) return std::nullopt;
    typed = totp::format_code(*code, 6);
    return typed;
  };
  int rc = login(spec(), conv);
  ASSERT_FALSE(typed.empty()) << "no setup was offered";
  ASSERT_FALSE(conv.messages.empty());
  std::cout << "[ message  ] " << conv.messages.back().text << "\n";
  EXPECT_EQ(rc, PAM_AUTHINFO_UNAVAIL)
      << "the confirmation code opened the login, but its use could not be recorded";
  // The new secret is kept (the app holds it). The confirmation code itself never logs in, not
  // even after the disk has room (the enrollment is dated after its step); the next code does.
  EXPECT_NE(read_all(files_->secret_file(kUser)).find(" " + key + "\n"), std::string::npos);
  free_filesystem(files_->state_dir());
  EXPECT_EQ(login(spec({typed})), PAM_AUTH_ERR) << "the confirmation code logged in";
  auto bytes = totp::base32_decode(key);
  ASSERT_TRUE(bytes.ok());
  auto next = totp::hotp(*bytes, totp::Algorithm::kSha1,
                         static_cast<std::uint64_t>(totp::time_step(unix_now(), 30) + 1), 6);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(login(spec({totp::format_code(*next, 6)})), PAM_SUCCESS);
}

// ---------------------------------------------------------------------------------------------
// SIGKILL at random instants of logins and enrollments

inline constexpr const char* kCli = PBX_CLI_PATH;

// The string value of "key" in a JSON object printed by pbx-mfa (no escapes in a base32 value).
std::string json_string_field(const std::string& json, const std::string& key) {
  std::size_t at = json.find("\"" + key + "\"");
  if (at == std::string::npos) return {};
  std::size_t open = json.find('"', json.find(':', at) + 1);
  std::size_t close = json.find('"', open + 1);
  if (open == std::string::npos || close == std::string::npos) return {};
  return json.substr(open + 1, close - open - 1);
}

int fault_kills() {
  const char* env = std::getenv("PBX_FAULT_KILLS");
  if (env == nullptr || *env == '\0') return 100;
  int n = std::atoi(env);
  return n > 0 ? n : 100;
}

class KillTest : public PamStackTest {
 protected:
  // A code for `e` that the module accepts now: within the window around the learned skew, and
  // after the last accepted step of this enrollment's state.
  std::string acceptable_code(const totp::Enrollment& e, const std::string& user) {
    const totp::Device& d = dev0(e);
    std::int64_t centre = totp::time_step(unix_now(), d.period);
    // The steps before the device was made count as used whatever the state says (the
    // confirmation code of a self-enrollment cannot log in); the device's mark in the state of
    // this enrollment, when there is one, moves that on and centres the window.
    std::int64_t last = d.created > 0 ? totp::time_step(d.created, d.period) - 1 : totp::kNoStep;
    struct stat st {};
    if (::stat(files_->state_file(user).c_str(), &st) == 0) {
      totp::UserState s = parsed_state(files_->state_file(user));
      const totp::DeviceMark m = mark(static_cast<const totp::UserState&>(s), d.name);
      if (s.enrollment_id == e.id && (m.created == d.created || m.created == totp::kAnyCreated)) {
        centre += m.skew;
        last = std::max(last, m.last_step);
      }
    }
    for (std::int64_t step = centre - 1; step <= centre + 1; ++step) {
      if (step > last) {
        auto code = totp::hotp(dev0(e).secret, dev0(e).algorithm, static_cast<std::uint64_t>(step),
                               dev0(e).digits);
        if (!code) throw std::runtime_error("hotp failed");
        return totp::format_code(*code, dev0(e).digits);
      }
    }
    throw std::runtime_error("no unused step in the window for " + user);
  }
};

TEST_F(KillTest, KilledLoginsAndEnrollmentsLoseNothingAndBlockNothing) {
  const int kills = fault_kills();
  const std::vector<std::string> users{"daemon", "bin", "sys", "games"};
  // Failures never lock anyone out here: a lockout would hide whether a leftover blocks a login.
  files_->write_config("max_failures = 1000\n");
  std::map<std::string, std::string> secret_bytes;  // what was last saved, byte for byte
  for (const auto& u : users) {
    files_->enroll(u, 1);
    secret_bytes[u] = read_all(files_->secret_file(u));
  }
  auto store = totp::open_store(files_->store_config());
  ASSERT_TRUE(store.ok());

  std::mt19937 rng(20261122);  // fixed seed: a failure can be replayed
  std::uniform_int_distribution<std::size_t> pick_user(0, users.size() - 1);
  std::uniform_int_distribution<int> pick_kind(0, 9);
  // Each kill comes after a random part (0 to 1.2) of what an operation of that kind takes
  // (fork to exit, measured on the first three of each kind, which are not killed), so kills
  // land all over the operation whatever the machine's speed.
  std::uniform_real_distribution<double> part(0.0, 1.2);
  std::map<int, std::pair<double, int>> took_us;  // kind -> (sum, count) of finished ones
  auto typical_us = [&](int kind) {
    auto it = took_us.find(kind);
    return it == took_us.end() || it->second.second == 0 ? 0.0
                                                         : it->second.first / it->second.second;
  };
  int cli_finished = 0;
  int killed = 0, finished = 0, enrollments = 0, enrollments_saved = 0, logins_ok = 0;
  auto started = std::chrono::steady_clock::now();

  for (int i = 0; i < kills; ++i) {
    const std::string& user = users[pick_user(rng)];
    // 0-3 valid login, 4-6 wrong login, 7-8 enrollment through the library, 9 through the CLI
    int kind = pick_kind(rng);
    int kind_class = kind == 9 ? 3 : kind >= 7 ? 2 : kind >= 4 ? 1 : 0;
    const bool cli = kind == 9;
    SCOPED_TRACE("operation " + std::to_string(i) + " user " + user + " kind " +
                 std::to_string(kind));
    auto current = totp::parse_enrollment(secret_bytes[user]);
    ASSERT_TRUE(current.ok());
    std::optional<totp::NewEnrollment> pending;
    std::string code;
    if (cli) {
      ++enrollments;
    } else if (kind >= 7) {
      ++enrollments;
      totp::EnrollmentPlan plan;
      plan.recovery_codes = 1;
      auto made = totp::NewEnrollment::create(plan);
      ASSERT_TRUE(made.ok());
      pending.emplace(std::move(made.value()));
      ASSERT_TRUE(pending->make_recovery_codes(kCheapKdf).ok());
    } else if (kind >= 4) {
      code = Enrolled{*current, {}}.wrong_code_at(unix_now());
    } else {
      code = acceptable_code(*current, user);
    }

    int report[2];
    ASSERT_EQ(::pipe(report), 0);
    int cli_out[2];
    ASSERT_EQ(::pipe(cli_out), 0);
    auto forked_at = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(report[0]);
      ::close(cli_out[0]);
      int rc = -1;
      if (cli) {
        // The real binary, as root: replaces the enrollment and resets the state. Its JSON
        // (with the new secret) goes to the parent; it reports nothing else.
        ::close(report[1]);
        int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null < 0 || ::dup2(cli_out[1], 1) < 0 || ::dup2(null, 2) < 0) ::_exit(1);
        std::string config = files_->config_path();
        const char* argv[] = {
            kCli,           "--config", config.c_str(), "enroll",           "--user", user.c_str(),
            "--no-confirm", "--force",  "--json",       "--recovery-codes", "0",      nullptr};
        ::execv(kCli, const_cast<char* const*>(argv));
        ::_exit(127);
      }
      ::close(cli_out[1]);
      if (pending) {
        auto account = totp::lookup_user(user);
        auto child_store = totp::open_store(files_->store_config());
        if (!account || !child_store) ::_exit(1);
        std::int64_t now = unix_now();
        totp::SaveOptions opts;
        opts.overwrite = true;
        opts.reset_state = true;
        auto st = pending->save(**child_store, *account, now, totp::time_step(now, 30) - 5, opts);
        rc = st ? PAM_SUCCESS : 200;
      } else {
        LoginSpec s = spec({code}, user);
        Conversation conv;
        rc = pam_login(s, conv);
      }
      ssize_t ignored = ::write(report[1], &rc, sizeof rc);
      (void)ignored;
      ::_exit(0);
    }
    ::close(report[1]);
    ::close(cli_out[1]);
    bool calibrating = took_us[kind_class].second < 3;
    if (!calibrating) {
      std::this_thread::sleep_for(
          std::chrono::microseconds(static_cast<std::int64_t>(part(rng) * typical_us(kind_class))));
      ::kill(pid, SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (calibrating) {
      took_us[kind_class].first +=
          static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::steady_clock::now() - forked_at)
                                  .count());
      ++took_us[kind_class].second;
    }
    int rc = -1;
    bool reported = ::read(report[0], &rc, sizeof rc) == static_cast<ssize_t>(sizeof rc);
    ::close(report[0]);
    std::string cli_json;
    char buf[4096];
    for (ssize_t n; (n = ::read(cli_out[0], buf, sizeof buf)) > 0;) {
      cli_json.append(buf, static_cast<std::size_t>(n));
    }
    ::close(cli_out[0]);
    if (cli) {
      reported = WIFEXITED(status);
      ASSERT_TRUE(!reported || WEXITSTATUS(status) == 0)
          << "pbx-mfa enroll failed without a kill: exit " << WEXITSTATUS(status);
      rc = reported ? PAM_SUCCESS : -1;
      cli_finished += reported ? 1 : 0;
    }
    if (reported) {
      ++finished;
    } else {
      ++killed;
    }

    // The secret: parses, and is the last saved one or (a killed or finished enrollment) the
    // new one; a finished enrollment left the new one.
    std::string now_bytes = read_all(files_->secret_file(user));
    auto parsed = totp::parse_enrollment(now_bytes);
    ASSERT_TRUE(parsed.ok()) << "secret file does not parse: " << parsed.error().message;
    if (cli) {
      // The new secret is known only from the JSON of a run that finished; a killed run left
      // the old bytes or a whole new enrollment (a fresh id: never the old one altered).
      if (reported) {
        std::string shown = json_string_field(cli_json, "secret");
        ASSERT_FALSE(shown.empty()) << cli_json;
        ASSERT_EQ(
            totp::base32_encode(dev0(*parsed).secret.data(), dev0(*parsed).secret.size(), false),
            shown)
            << "a saved enrollment is not on disk";
      } else if (now_bytes != secret_bytes[user]) {
        ASSERT_NE(parsed->id, current->id) << "the old secret was altered";
      }
      if (now_bytes != secret_bytes[user]) ++enrollments_saved;
    } else if (pending) {
      bool is_new = dev0(*parsed).secret.size() == pending->secret().size() &&
                    std::memcmp(dev0(*parsed).secret.data(), pending->secret().data(),
                                dev0(*parsed).secret.size()) == 0;
      if (reported) {
        ASSERT_EQ(rc, PAM_SUCCESS) << "enrollment failed without a kill";
        ASSERT_TRUE(is_new) << "a saved enrollment is not on disk";
      }
      if (!is_new) {
        ASSERT_EQ(now_bytes, secret_bytes[user]) << "the old secret was altered";
      }
      if (is_new) ++enrollments_saved;
    } else {
      ASSERT_EQ(now_bytes, secret_bytes[user]) << "a login changed the secret";
      if (reported && kind >= 4) {
        ASSERT_NE(rc, PAM_SUCCESS) << "a wrong code was accepted";
      }
      if (reported && rc == PAM_SUCCESS) ++logins_ok;
    }
    secret_bytes[user] = now_bytes;
    // The state, when there is one, parses.
    struct stat st {};
    if (::stat(files_->state_file(user).c_str(), &st) == 0) {
      ASSERT_NO_THROW(parsed_state(files_->state_file(user)));
    }
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  // Whatever the kills left behind (temp files, lock files), every user logs in with a fresh
  // valid code, and that code is then used up.
  away_from_step_edge(3);
  std::size_t leftovers = 0;
  for (const auto& dir : {files_->secrets_dir(), files_->state_dir()}) {
    for (const auto& [name, bytes] : snapshot(dir)) leftovers += name[0] == '.' ? 1 : 0;
  }
  for (const auto& u : users) {
    SCOPED_TRACE("final login of " + u);
    auto e = totp::parse_enrollment(read_all(files_->secret_file(u)));
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(read_all(files_->secret_file(u)), secret_bytes[u]);
    std::string fresh = acceptable_code(*e, u);
    EXPECT_EQ(login(spec({fresh}, u)), PAM_SUCCESS);
    EXPECT_EQ(login(spec({fresh}, u)), PAM_AUTH_ERR);
    EXPECT_NO_THROW(parsed_state(files_->state_file(u)));
  }
  std::cout << "[ kills    ] " << kills << " operations in " << seconds << " s: " << killed
            << " killed before they reported, " << finished << " finished; " << enrollments
            << " enrollments (" << enrollments_saved << " on disk, " << cli_finished
            << " CLI runs finished), " << logins_ok << " logins accepted; " << leftovers
            << " temp files left behind; typical " << typical_us(0) / 1000 << " / "
            << typical_us(1) / 1000 << " / " << typical_us(2) / 1000 << " / "
            << typical_us(3) / 1000
            << " ms (valid login / wrong login / library enrollment / CLI enrollment)\n";
  EXPECT_GE(killed, kills / 10) << "the delays are too long to kill much";
}

// ---------------------------------------------------------------------------------------------
// The clock jumps backwards
//
// The verifier itself is covered by VerifierTest.ClockJumpBackwardsNeverReopensAUsedCode
// (tests/unit/verifier_test.cpp: 30 s, 60 s, 1 h, 1 day back, every code in the window). Here
// the same through the module flow and the file store, at 300 s and 30 s back.

TEST(ClockJumpTest, UsedCodesStayUsedThroughTheFlowAfterAJumpBack) {
  TestFiles files(::geteuid());
  files.write_config("max_failures = 1000\n");
  Enrolled e = files.enroll(kUser);
  constexpr std::int64_t kT = 56666667LL * 30;  // the start of a step
  const std::int64_t used_step = totp::time_step(kT, 30);
  totp::FixedClock clock(kT);
  auto attempt = [&](const std::string& code) {
    return flow_login(files.config_path(), kUser, code, clock, ::geteuid());
  };

  FlowAttempt first = attempt(e.code_at(kT));
  ASSERT_EQ(first.rc, PAM_SUCCESS) << first.logs;
  for (std::int64_t back : {300, 30}) {
    SCOPED_TRACE("clock set " + std::to_string(back) + " s back");
    clock.set(kT - back);
    // The used code: a replay while the window still reaches its step, a wrong code beyond.
    FlowAttempt again = attempt(e.code_at(kT));
    EXPECT_EQ(again.rc, PAM_AUTH_ERR);
    const char* expected = back <= 30 ? "outcome=replayed-code" : "outcome=wrong-code";
    EXPECT_NE(again.logs.find(expected), std::string::npos) << again.logs;
    // Every code the window now covers is at or before the used step: all replays.
    std::int64_t centre = totp::time_step(kT - back, 30);
    for (std::int64_t step = centre - 1; step <= centre + 1; ++step) {
      ASSERT_LE(step, used_step);
      FlowAttempt older = attempt(e.code_for_step(step));
      EXPECT_EQ(older.rc, PAM_AUTH_ERR) << "step " << step;
      EXPECT_NE(older.logs.find("outcome=replayed-code"), std::string::npos) << older.logs;
    }
    // A code older than the window is refused too.
    EXPECT_EQ(attempt(e.code_for_step(centre - 5)).rc, PAM_AUTH_ERR);
    totp::UserState s = parsed_state(files.state_file(kUser));
    EXPECT_EQ(mark(s).last_step, used_step) << "the replay mark moved back";
  }
  // Time moves on: the next step's code is accepted, once.
  clock.set(kT + 30);
  EXPECT_EQ(attempt(e.code_at(kT + 30)).rc, PAM_SUCCESS);
  EXPECT_EQ(attempt(e.code_at(kT + 30)).rc, PAM_AUTH_ERR);
}

}  // namespace
}  // namespace pbx::pam::testing

// The notifier of `events --follow --notify` in-process, with real commands: the JSON line on
// stdin, once per event of a kind notify_events names, the minimal environment, failures
// logged, a hanging command killed (its whole process group) without holding up the next,
// the per-kind rate limit over an injected clock, and the cap on commands at a time.
#include "notify.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "oathtool.hpp"
#include "pbx/totp/strings.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace pbx::cli::testing {
namespace {

using Clock = std::chrono::steady_clock;
using totp::testing::TempDir;
using totp::testing::write_file;

constexpr std::int64_t kT0 = 1796440327;  // 2026-12-05T03:12:07Z

totp::Event event(const std::string& kind, const std::string& user, std::int64_t t) {
  totp::Event e;
  e.time = t;
  e.host = "pbx1";
  e.service = "sshd";
  e.user = user;
  e.rhost = "203.0.113.5";
  e.event = kind;
  e.detail = "test";
  return e;
}

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("notify_command must be root-owned");
    out_ = tmp_ / "out";
    ASSERT_EQ(::mkdir(out_.c_str(), 0700), 0);
    command_ = tmp_ / "notify.sh";
    // Each run leaves KIND.PID.json (its stdin) and KIND.PID.env; reset fails, the
    // break-glass kinds hang (one ignoring SIGTERM, with a child in its process group).
    ASSERT_TRUE(write_file(command_,
                           "#!/bin/sh\n"
                           "f=" +
                               out_ +
                               "/$PBX_MFA_EVENT.$$\n"
                               "cat > \"$f.tmp\"\n"
                               "env | sort > \"$f.env\"\n"
                               "mv \"$f.tmp\" \"$f.json\"\n"
                               "case \"$PBX_MFA_EVENT\" in\n"
                               "  reset) exit 3 ;;\n"
                               "  break-glass-accepted) trap '' TERM\n"
                               "    sleep 600 & echo $! > " +
                               out_ +
                               "/child.pid\n"
                               "    echo $$ > " +
                               out_ +
                               "/hang.pid\n"
                               "    while :; do sleep 1; done ;;\n"
                               "  break-glass-locked) exec sleep 600 ;;\n"
                               "esac\n",
                           0755));
    options_.command = command_;
    options_.events = {"locked-out", "reset", "recovery", "break-glass"};
    options_.timeout_s = 1;
    options_.kill_grace_ms = 500;
    options_.rate = 2;
  }

  // The files of the output directory ending in `suffix`, sorted.
  std::vector<std::string> outputs(const std::string& suffix = ".json") const {
    std::vector<std::string> names;
    DIR* d = ::opendir(out_.c_str());
    if (d == nullptr) return names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.ends_with(suffix)) names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  // Polls the notifier until `done` or `limit`; true when done.
  static bool wait_for(Notifier& n, const std::function<bool()>& done,
                       std::chrono::milliseconds limit) {
    auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      n.poll();
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    n.poll();
    return done();
  }

  std::string json_of(const std::string& name) const {
    return totp::testing::read_file(out_ + "/" + name).value_or("<missing>");
  }

  TempDir tmp_;
  std::string out_;
  std::string command_;
  NotifyOptions options_;
  totp::FixedClock clock_{kT0};
  std::ostringstream log_;
};

TEST_F(NotifierTest, RunsOncePerEventItsKindIsNamedForWithTheJsonOnStdin) {
  ::setenv("PBX_TEST_CANARY", "must-not-pass", 1);
  Notifier n(options_, clock_, log_);
  const auto locked = event("locked-out", "bob", kT0);
  const auto unlock = event("unlock", "bob", kT0 + 1);
  const auto recovery = event("recovery-code-accepted", "alice", kT0 + 2);
  EXPECT_TRUE(n.notify(locked));
  EXPECT_FALSE(n.notify(unlock)) << "unlock is not in notify_events";
  EXPECT_TRUE(n.notify(recovery)) << "'recovery' names recovery-code-accepted";
  ASSERT_TRUE(wait_for(
      n, [&] { return n.running() == 0; }, std::chrono::seconds(10)))
      << log_.str();
  ::unsetenv("PBX_TEST_CANARY");
  auto files = outputs();
  ASSERT_EQ(files.size(), 2U) << log_.str();
  std::vector<std::string> got = {json_of(files[0]), json_of(files[1])};
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = {totp::event_to_json(locked) + "\n",
                                   totp::event_to_json(recovery) + "\n"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_TRUE(files[0].starts_with("locked-out.")) << files[0];
  EXPECT_TRUE(files[1].starts_with("recovery-code-accepted.")) << files[1];
  // The environment: PATH and PBX_MFA_EVENT (the shell adds PWD, "/"), nothing of ours.
  for (const auto& env : outputs(".env")) {
    std::string text = json_of(env);
    const std::string kind = env.substr(0, env.find('.'));
    for (const auto& line : pbx::test::split_lines(text)) {
      if (line.starts_with("PWD=")) {
        EXPECT_EQ(line, "PWD=/");
      } else if (line.starts_with("PATH=")) {
        EXPECT_EQ(line, std::string("PATH=") + kNotifyPath);
      } else if (line.starts_with("PBX_MFA_EVENT=")) {
        EXPECT_EQ(line, "PBX_MFA_EVENT=" + kind);
      } else if (!line.starts_with("OLDPWD=") && !line.starts_with("SHLVL=") &&
                 !line.starts_with("_=")) {
        ADD_FAILURE() << "unexpected variable in the command's environment: " << line;
      }
    }
  }
  EXPECT_EQ(n.counts().started, 2);
  EXPECT_EQ(n.counts().failed, 0);
}

TEST_F(NotifierTest, AFailingCommandIsLogged) {
  Notifier n(options_, clock_, log_);
  ASSERT_TRUE(n.notify(event("reset", "bob", kT0)));
  ASSERT_TRUE(wait_for(
      n, [&] { return n.running() == 0; }, std::chrono::seconds(10)));
  EXPECT_NE(log_.str().find("notify_command exited 3 for event reset (user bob, "
                            "2026-12-05T03:12:07Z)"),
            std::string::npos)
      << log_.str();
  EXPECT_EQ(n.counts().failed, 1);
}

TEST_F(NotifierTest, AHangingCommandIsKilledWholeAndDoesNotHoldUpTheNext) {
  Notifier n(options_, clock_, log_);
  const auto start = Clock::now();
  ASSERT_TRUE(n.notify(event("break-glass-accepted", "bob", kT0)));
  ASSERT_TRUE(wait_for(
      n, [&] { return totp::testing::exists_nofollow(out_ + "/child.pid"); },
      std::chrono::seconds(5)));
  // The next event's command runs and ends while the first one hangs.
  ASSERT_TRUE(n.notify(event("locked-out", "carol", kT0 + 1)));
  ASSERT_TRUE(wait_for(
      n, [&] { return outputs().size() == 2 && n.running() == 1; }, std::chrono::seconds(5)))
      << log_.str();
  const auto second_done = Clock::now() - start;
  EXPECT_LT(second_done, std::chrono::milliseconds(900)) << "before the first one's timeout";
  // notify_timeout 1 s: SIGTERM (ignored by that script), SIGKILL 0.5 s later, reaped.
  ASSERT_TRUE(wait_for(
      n, [&] { return n.running() == 0; }, std::chrono::seconds(5)))
      << log_.str();
  const auto gone = Clock::now() - start;
  EXPECT_GE(gone, std::chrono::milliseconds(1000));
  EXPECT_LT(gone, std::chrono::milliseconds(3000));
  EXPECT_NE(log_.str().find("notify_command killed after 1 s (notify_timeout) for event "
                            "break-glass-accepted (user bob"),
            std::string::npos)
      << log_.str();
  EXPECT_EQ(n.counts().killed, 1);
  // Its child in the same process group went too.
  auto child = totp::testing::read_file(out_ + "/child.pid");
  ASSERT_TRUE(child.has_value());
  const pid_t child_pid = std::stoi(*child);
  bool child_gone = false;
  for (int i = 0; i < 100 && !child_gone; ++i) {
    // Not our child: once killed, init reaps it; a zombie has "Z" in /proc/PID/stat.
    auto stat = totp::testing::read_file("/proc/" + std::to_string(child_pid) + "/stat");
    child_gone = !stat || stat->find(") Z ") != std::string::npos;
    if (!child_gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(child_gone) << "sleep " << child_pid << " of the killed command still runs";
}

TEST_F(NotifierTest, RateLimitPerKindPerHourAndTheNextRunSaysHowManyWereSuppressed) {
  Notifier n(options_, clock_, log_);
  auto e1 = event("locked-out", "u1", kT0);
  auto e2 = event("locked-out", "u2", kT0 + 10);
  auto e3 = event("locked-out", "u3", kT0 + 20);
  auto e4 = event("locked-out", "u4", kT0 + 30);
  EXPECT_TRUE(n.notify(e1));
  clock_.advance(10);
  EXPECT_TRUE(n.notify(e2));
  clock_.advance(10);
  EXPECT_FALSE(n.notify(e3)) << "notify_rate = 2: the third in the hour is not run";
  clock_.advance(10);
  EXPECT_FALSE(n.notify(e4));
  EXPECT_TRUE(n.notify(event("reset", "u1", kT0 + 30))) << "another kind has its own limit";
  EXPECT_EQ(n.counts().suppressed, 2);
  EXPECT_NE(log_.str().find("event locked-out (user u3, 2026-12-05T03:12:27Z) not sent: "
                            "notify_rate 2 runs of locked-out in the last hour reached"),
            std::string::npos)
      << log_.str();
  // A sliding hour: the first run leaves the window an hour after it, not at a full hour.
  clock_.set(kT0 + 1800);
  EXPECT_FALSE(n.notify(event("locked-out", "u5", kT0 + 1800)));
  clock_.set(kT0 + 3600);
  auto e6 = event("locked-out", "u6", kT0 + 3600);
  EXPECT_TRUE(n.notify(e6));
  ASSERT_TRUE(wait_for(
      n, [&] { return n.running() == 0; }, std::chrono::seconds(10)));
  std::vector<std::string> got;
  for (const auto& f : outputs()) {
    if (f.starts_with("locked-out.")) got.push_back(json_of(f));
  }
  ASSERT_EQ(got.size(), 3U);
  const std::string with = Notifier::payload(e6, 3) + "\n";
  EXPECT_EQ(with, totp::event_to_json(e6).substr(0, totp::event_to_json(e6).size() - 1) +
                      ",\"suppressed\":3}\n");
  EXPECT_EQ(std::count(got.begin(), got.end(), with), 1) << "the run after carries the count";
  EXPECT_EQ(std::count(got.begin(), got.end(), totp::event_to_json(e1) + "\n"), 1);
  EXPECT_EQ(std::count(got.begin(), got.end(), totp::event_to_json(e2) + "\n"), 1);
  // The count starts again after a run.
  EXPECT_EQ(Notifier::payload(e6, 0), totp::event_to_json(e6));
}

TEST_F(NotifierTest, OverTheCapOfCommandsAtATimeAnEventIsDroppedAndCounted) {
  options_.max_running = 2;
  options_.timeout_s = 30;
  options_.rate = 100;
  Notifier n(options_, clock_, log_);
  EXPECT_TRUE(n.notify(event("break-glass-locked", "a", kT0)));
  EXPECT_TRUE(n.notify(event("break-glass-locked", "b", kT0)));
  EXPECT_FALSE(n.notify(event("break-glass-locked", "c", kT0)));
  EXPECT_EQ(n.counts().dropped, 1);
  EXPECT_NE(log_.str().find("dropped: 2 notify_command runs still going"), std::string::npos)
      << log_.str();
  // stop() ends them (SIGTERM to their groups) and reaps them.
  const auto start = Clock::now();
  n.stop();
  EXPECT_EQ(n.running(), 0U);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST_F(NotifierTest, ACommandMadeUnsafeAfterStartIsNotRun) {
  Notifier n(options_, clock_, log_);
  ASSERT_EQ(::chmod(command_.c_str(), 0777), 0);
  EXPECT_FALSE(n.notify(event("locked-out", "bob", kT0)));
  EXPECT_NE(log_.str().find("not sent: notify_command " + command_ + ": mode 0777"),
            std::string::npos)
      << log_.str();
  EXPECT_TRUE(outputs().empty());
}

TEST(NotifyCommandCheckTest, OnlyARootOwnedExecutableNotWritableByOthers) {
  PBX_SKIP_UNLESS_ROOT("the files must be root-owned");
  TempDir tmp;
  const std::string good = tmp / "good";
  ASSERT_TRUE(write_file(good, "#!/bin/sh\n", 0755));
  EXPECT_TRUE(check_notify_command(good, 0).ok()) << check_notify_command(good, 0).error().message;
  ASSERT_TRUE(write_file(tmp / "ro", "#!/bin/sh\n", 0500));
  EXPECT_TRUE(check_notify_command(tmp / "ro", 0).ok());

  auto refused = [](const std::string& path, totp::Errc code, const std::string& says) {
    auto r = check_notify_command(path, 0);
    if (r.ok()) return ::testing::AssertionFailure() << path << " accepted";
    if (r.error().code != code || r.error().message.find(says) == std::string::npos) {
      return ::testing::AssertionFailure() << path << ": " << r.error().message;
    }
    return ::testing::AssertionSuccess();
  };
  EXPECT_TRUE(refused("", totp::Errc::kConfig, "not set"));
  EXPECT_TRUE(refused("notify.sh", totp::Errc::kConfig, "absolute"));
  EXPECT_TRUE(refused(tmp / "missing", totp::Errc::kConfig, "does not exist"));
  ASSERT_TRUE(write_file(tmp / "gw", "#!/bin/sh\n", 0775));
  EXPECT_TRUE(refused(tmp / "gw", totp::Errc::kUnsafe, "lets group or others write"));
  ASSERT_TRUE(write_file(tmp / "ow", "#!/bin/sh\n", 0757));
  EXPECT_TRUE(refused(tmp / "ow", totp::Errc::kUnsafe, "lets group or others write"));
  ASSERT_TRUE(write_file(tmp / "noexec", "#!/bin/sh\n", 0644));
  EXPECT_TRUE(refused(tmp / "noexec", totp::Errc::kUnsafe, "not executable"));
  ASSERT_TRUE(write_file(tmp / "daemon", "#!/bin/sh\n", 0755));
  ASSERT_EQ(::chown((tmp / "daemon").c_str(), 1, 1), 0);  // daemon
  EXPECT_TRUE(refused(tmp / "daemon", totp::Errc::kUnsafe, "owned by"));
  ASSERT_EQ(::symlink(good.c_str(), (tmp / "link").c_str()), 0);
  EXPECT_TRUE(refused(tmp / "link", totp::Errc::kUnsafe, "symbolic link"));
  ASSERT_EQ(::mkdir((tmp / "dir").c_str(), 0755), 0);
  EXPECT_TRUE(refused(tmp / "dir", totp::Errc::kUnsafe, "not a regular file"));
  // A directory above it that others can write: they could swap the file.
  ASSERT_EQ(::mkdir((tmp / "open").c_str(), 0777), 0);
  ASSERT_EQ(::chmod((tmp / "open").c_str(), 0777), 0);
  ASSERT_TRUE(write_file(tmp / "open/cmd", "#!/bin/sh\n", 0755));
  EXPECT_TRUE(refused(tmp / "open/cmd", totp::Errc::kUnsafe, "its directory " + (tmp / "open")));
}

}  // namespace
}  // namespace pbx::cli::testing

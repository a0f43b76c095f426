// Hostile review of issue 17's CLI side: the notifier against a command that forks and exits,
// and a helpdesk member flooding helpdesk-refused events to rotate earlier evidence away.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "enroll_fixture.hpp"
#include "events.hpp"
#include "notify.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/store.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace pbx::cli::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;
using totp::testing::TempDir;
using totp::testing::write_file;

constexpr std::int64_t kT0 = 1796440327;  // 2026-12-05T03:12:07Z

totp::Event review_event(const std::string& kind) {
  totp::Event e;
  e.time = kT0;
  e.host = "pbx1";
  e.service = "sshd";
  e.user = "bob";
  e.rhost = "203.0.113.5";
  e.event = kind;
  e.detail = "test";
  return e;
}

// A process that is gone or a zombie nobody reaped yet (init here may not reap at once).
bool gone(pid_t pid) {
  auto stat = totp::testing::read_file("/proc/" + std::to_string(pid) + "/stat");
  return !stat || stat->find(") Z ") != std::string::npos;
}

bool poll_until(Notifier& n, const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto end = SteadyClock::now() + limit;
  while (SteadyClock::now() < end) {
    n.poll();
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  n.poll();
  return done();
}

// A notify command that leaves a process behind in its group and exits 0 at once (`curl ... &`
// in a script, or a hostile/hanging helper) must still count against the cap of commands at a
// time and be killed at notify_timeout: before the fix the notifier forgot the group as soon as
// the leader was reaped, so every event could leave one more hanging process, unbounded.
TEST(NotifierReviewTest, AGroupWhoseLeaderExitedStillCountsAndIsKilledAtTheTimeout) {
  PBX_SKIP_UNLESS_ROOT("notify_command must be root-owned");
  TempDir tmp;
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  const std::string pidfile = tmp / "bg.pid";
  const std::string command = tmp / "notify.sh";
  ASSERT_TRUE(write_file(command,
                         "#!/bin/sh\n"
                         "sleep 600 </dev/null >/dev/null 2>&1 &\n"
                         "echo $! > " +
                             pidfile +
                             ".tmp\n"
                             "mv " +
                             pidfile + ".tmp " + pidfile +
                             "\n"
                             "exit 0\n",
                         0755));
  NotifyOptions o;
  o.command = command;
  o.events = {"all"};
  o.timeout_s = 1;
  o.kill_grace_ms = 300;
  o.max_running = 1;
  o.rate = 100;
  totp::FixedClock clock{kT0};
  std::ostringstream log;
  Notifier n(o, clock, log);
  const auto start = SteadyClock::now();
  ASSERT_TRUE(n.notify(review_event("locked-out")));
  ASSERT_TRUE(poll_until(
      n, [&] { return totp::testing::exists_nofollow(pidfile); }, std::chrono::seconds(5)));
  const pid_t bg = std::stoi(totp::testing::read_file(pidfile).value_or("0"));
  ASSERT_GT(bg, 0);
  // The leader has exited (and been reaped) but its group still runs: still one of the cap.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  n.poll();
  EXPECT_FALSE(gone(bg));
  EXPECT_EQ(n.running(), 1U) << log.str();
  EXPECT_FALSE(n.notify(review_event("reset"))) << "over the cap of 1: dropped";
  EXPECT_EQ(n.counts().dropped, 1);
  // notify_timeout: the group is killed and forgotten.
  ASSERT_TRUE(poll_until(
      n, [&] { return n.running() == 0 && gone(bg); }, std::chrono::seconds(5)))
      << log.str();
  EXPECT_GE(SteadyClock::now() - start, std::chrono::milliseconds(1000));
  EXPECT_EQ(n.counts().killed, 1) << log.str();
  if (!gone(bg)) ::kill(bg, SIGKILL);
}

// stop() (service stopping) also ends a group whose leader already exited.
TEST(NotifierReviewTest, StopKillsAGroupWhoseLeaderExited) {
  PBX_SKIP_UNLESS_ROOT("notify_command must be root-owned");
  TempDir tmp;
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  const std::string pidfile = tmp / "bg.pid";
  const std::string command = tmp / "notify.sh";
  ASSERT_TRUE(write_file(command,
                         "#!/bin/sh\n"
                         "trap '' TERM\n"
                         "sh -c 'trap \"\" TERM; exec sleep 600' </dev/null >/dev/null 2>&1 &\n"
                         "echo $! > " +
                             pidfile +
                             ".tmp\n"
                             "mv " +
                             pidfile + ".tmp " + pidfile + "\n",
                         0755));
  NotifyOptions o;
  o.command = command;
  o.events = {"all"};
  o.timeout_s = 600;
  o.kill_grace_ms = 300;
  totp::FixedClock clock{kT0};
  std::ostringstream log;
  pid_t bg = 0;
  {
    Notifier n(o, clock, log);
    ASSERT_TRUE(n.notify(review_event("locked-out")));
    ASSERT_TRUE(poll_until(
        n, [&] { return totp::testing::exists_nofollow(pidfile); }, std::chrono::seconds(5)));
    bg = std::stoi(totp::testing::read_file(pidfile).value_or("0"));
    ASSERT_GT(bg, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    n.poll();
    n.stop();
    EXPECT_EQ(n.running(), 0U);
  }
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {
    ok = gone(bg);
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(ok) << "sleep " << bg << " left running after stop()";
  if (!ok) ::kill(bg, SIGKILL);
}

// Payload and environment stay free of control characters whatever a remote user name or
// rhost held (the sample script feeds `jq -r` output to `mail -s`).
TEST(NotifierReviewTest, PayloadHasNoControlCharactersForJqRaw) {
  totp::Event e = review_event("locked-out");
  e.user = "bob\n\x1b]0;owned\x07";
  e.rhost =
      "x\r\nSubject: forged\xc2\x9b"
      "31m";
  e.detail = "d\tx\x7f";
  std::string line = Notifier::payload(e, 2);
  for (unsigned char c : line) EXPECT_GE(c, 0x20) << line;
  EXPECT_EQ(line.find("\\u00"), std::string::npos) << "jq -r would decode it back: " << line;
  EXPECT_EQ(line.find("\\n"), std::string::npos) << line;
  EXPECT_EQ(line.find("\xc2\x9b"), std::string::npos) << line;
  EXPECT_NE(line.find("\"suppressed\":2}"), std::string::npos) << line;
  // events' readable line: one printable line.
  std::string text = event_line(e);
  for (unsigned char c : text) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << text;
  }
}

// notify_command named through a symbolic link in a directory another user can write: the
// check followed the link and checked the real directories, but every run names the path again,
// so whoever owns that directory could point the link elsewhere between the check and
// posix_spawn (or just after the check at start) and have root run their program. Refused now:
// only a path with no symbolic link on it names the checked file for good.
TEST(NotifierReviewTest, ACommandNamedThroughALinkInSomeoneElsesDirectoryIsRefused) {
  PBX_SKIP_UNLESS_ROOT("notify_command must be root-owned");
  TempDir tmp;
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  const std::string good = tmp / "good";
  const std::string user_dir = tmp / "user";  // stands for a directory an attacker owns
  ASSERT_EQ(::mkdir(good.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(user_dir.c_str(), 0755), 0);
  ASSERT_EQ(::chown(user_dir.c_str(), 65534, 65534), 0);
  ASSERT_TRUE(write_file(good + "/notify.sh", "#!/bin/sh\nexit 0\n", 0755));
  ASSERT_EQ(::symlink(good.c_str(), (user_dir + "/bin").c_str()), 0);
  const std::string via_link = user_dir + "/bin/notify.sh";
  auto st = check_notify_command(via_link, 0);
  ASSERT_FALSE(st.ok()) << "root would run whatever " << via_link << " names at spawn time";
  EXPECT_EQ(st.error().code, totp::Errc::kUnsafe);
  EXPECT_NE(st.error().message.find("real path, " + good + "/notify.sh"), std::string::npos)
      << st.error().message;
  // Its plain form passes; ".." and "//" forms are refused like links.
  EXPECT_TRUE(check_notify_command(good + "/notify.sh", 0).ok());
  EXPECT_FALSE(check_notify_command(good + "/../good/notify.sh", 0).ok());
  EXPECT_FALSE(check_notify_command(tmp / "good//notify.sh", 0).ok());
}

// With notify_events = all, an event kind this version does not know (text another writer of
// the database's events table chose: "$(reboot)") is not run: it would reach the script as
// PBX_MFA_EVENT and as "event" in the JSON.
TEST(NotifierReviewTest, AnUnknownEventKindIsNotRun) {
  NotifyOptions o;
  o.command = "/nonexistent/never-run";
  o.events = {"all"};
  totp::FixedClock clock{kT0};
  std::ostringstream log;
  Notifier n(o, clock, log);
  EXPECT_FALSE(n.notify(review_event("locked-out$(reboot)")));
  EXPECT_EQ(n.counts().failed, 0) << log.str();
  EXPECT_NE(log.str().find("not a known event kind"), std::string::npos) << log.str();
}

class EventsReviewTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the event log, secrets and state must be root-owned");
    CliTest::SetUp();
    env_.system_config_path = config_path_;
  }

  std::vector<totp::Event> all_events() {
    totp::Config c = config();
    c.store = "files";
    auto s = totp::open_store(c);
    EXPECT_TRUE(s.ok());
    if (!s) return {};
    std::vector<totp::Event> all;
    totp::EventCursor cursor;
    for (;;) {
      auto page = (*s)->read_events(totp::EventQuery{}, cursor);
      EXPECT_TRUE(page.ok());
      if (!page || page->events.empty()) break;
      all.insert(all.end(), page->events.begin(), page->events.end());
      cursor = page->next;
    }
    return all;
  }
};

// A helpdesk member's refusals each carry up to ~1.3 KB of text the member chose (the target
// name): unlimited, a few hundred refused calls would rotate the log twice and push earlier
// events (e.g. the member's own reset) out of .events.log and .events.log.1. Allowed actions
// (unlock, temp-code) are real actions, each worth its event, and carry small lines.
// A member looping on refused commands (1 KiB of junk each) records 20 refusals an hour, the
// 20th saying so, and cannot rotate the enrollment's event out of a 64 KiB log.
TEST_F(EventsReviewTest, RefusalFloodDoesNotRotateAwayEarlierEvidence) {
  write_config("recovery_codes = 2\nhelpdesk_groups = daemon\nevents_max_size = 64K\n");
  ASSERT_EQ(run_cli({"enroll", "--user", "lp", "--no-confirm", "--json"}), 0) << err();
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "daemon";
  const std::string junk(1000, 'A');
  for (int i = 0; i < 150; ++i) {
    clear();
    EXPECT_NE(run({"--config", config_path_, "unlock", "--user", junk}, env_), 0);
  }
  bool enrolled_seen = false;
  int refusals = 0;
  std::string last_detail;
  for (const auto& e : all_events()) {
    enrolled_seen |= e.event == "enrolled" && e.user == "lp";
    if (e.event == "helpdesk-refused") {
      ++refusals;
      last_detail = e.detail;
    }
  }
  EXPECT_TRUE(enrolled_seen) << "150 refusals rotated the enrollment event away";
  EXPECT_EQ(refusals, 20);
  EXPECT_NE(last_detail.find("further ones this hour are in syslog only"), std::string::npos)
      << last_detail;
  // An hour later the member's refusals are recorded again.
  clock_.set(clock_.now() + 3601);
  clear();
  EXPECT_NE(run({"--config", config_path_, "unlock", "--user", "nosuchpbxtest"}, env_), 0);
  int after = 0;
  for (const auto& e : all_events()) after += e.event == "helpdesk-refused" ? 1 : 0;
  EXPECT_EQ(after, 21);
}

// SUDO_USER that does not name the account of SUDO_UID (only settable by a caller allowed to
// set sudo's environment) is refused; its event must not name whoever SUDO_USER claims (here
// root: "root was refused") as the actor.
TEST_F(EventsReviewTest, AMismatchedSudoUserIsNotTheActorOfTheRefusal) {
  write_config("recovery_codes = 2\nhelpdesk_groups = daemon\n");
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "root";
  EXPECT_NE(run({"unlock", "--user", "lp"}, env_), 0) << err();
  auto events = all_events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events.front().event, "helpdesk-refused");
  EXPECT_EQ(events.front().actor, "uid-" + std::to_string(user("daemon").uid));
}

// What a refusal records of the member's text is bounded (the event line stays small).
TEST_F(EventsReviewTest, RefusalRecordsTheMembersTextCut) {
  write_config("recovery_codes = 2\nhelpdesk_groups = daemon\n");
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "daemon";
  const std::string junk(1000, 'A');
  EXPECT_NE(run({"--config", config_path_, "unlock", "--user", junk}, env_), 0) << err();
  auto events = all_events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events.front().event, "helpdesk-refused");
  EXPECT_EQ(events.front().actor, "daemon");
  EXPECT_LE(events.front().user.size(), totp::kMaxEventField);
  EXPECT_LE(events.front().detail.size(), totp::kMaxEventDetail);
}

}  // namespace
}  // namespace pbx::cli::testing

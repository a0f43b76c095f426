// pbx-mfa events in-process: the event log read back through the store (--user, --since,
// --json), readable lines that stay printable, who may read it, and --notify's refusals.
#include "events.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "enroll_fixture.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/strings.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

using totp::testing::write_file;

class EventsTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the event log must be root-owned");
    CliTest::SetUp();
  }

  // Appends an event through the library, as the module and the CLI record them.
  totp::Event record(const std::string& kind, const std::string& user, std::int64_t t,
                     const std::string& detail = "") {
    totp::FixedClock at(t);
    totp::Event e = totp::make_event(kind, at);
    e.service = kind == "locked-out" ? "sshd" : "pbx-mfa";
    e.user = user;
    e.rhost = kind == "locked-out" ? "203.0.113.5" : "";
    e.actor = kind == "locked-out" ? "" : "root";
    e.detail = detail;
    auto ok = store()->append_event(e);
    EXPECT_TRUE(ok.ok()) << ok.error().message;
    return e;
  }

  std::vector<std::string> lines(std::vector<std::string> args, int expected = 0) {
    clear();
    EXPECT_EQ(run_cli(std::move(args)), expected) << err();
    return pbx::test::split_lines(out());
  }

  // An executable notify_command in the test directory (root's, 0755).
  std::string notify_script(mode_t mode = 0755) {
    std::string path = tmp_ / "notify.sh";
    EXPECT_TRUE(write_file(path, "#!/bin/sh\ncat >/dev/null\n", mode));
    return path;
  }
};

TEST_F(EventsTest, PrintsEachEventOnOneLineOldestFirst) {
  record("reset", "daemon", kNow - 600, "enrollment removed");
  record("locked-out", "bin", kNow - 300, "5 wrong codes");
  auto out = lines({"events"});
  ASSERT_EQ(out.size(), 2U);
  // TIME HOST SERVICE USER RHOST EVENT ACTOR DETAIL, "-" for an empty field.
  auto words = [](const std::string& l) {
    auto v = totp::split_ws(l);
    return std::vector<std::string>(v.begin(), v.end());
  };
  auto a = words(out[0]);
  ASSERT_GE(a.size(), 9U) << out[0];
  EXPECT_EQ(a[1], totp::make_event("reset", clock_).host);
  EXPECT_EQ(a[2], "pbx-mfa");
  EXPECT_EQ(a[3], "daemon");
  EXPECT_EQ(a[4], "-");
  EXPECT_EQ(a[5], "reset");
  EXPECT_EQ(a[6], "root");
  EXPECT_TRUE(out[0].ends_with(" enrollment removed")) << out[0];
  auto b = words(out[1]);
  EXPECT_EQ(b[2], "sshd");
  EXPECT_EQ(b[3], "bin");
  EXPECT_EQ(b[4], "203.0.113.5");
  EXPECT_EQ(b[5], "locked-out");
  EXPECT_EQ(b[6], "-");
}

TEST_F(EventsTest, TimeIsLocalTimeWithItsOffset) {
  const char* old = std::getenv("TZ");
  std::string saved = old != nullptr ? old : "";
  ::setenv("TZ", "Europe/Berlin", 1);
  ::tzset();
  totp::Event e;
  e.time = 1796440327;  // 2026-12-05T03:12:07Z
  e.event = "reset";
  std::string line = event_line(e);
  if (old != nullptr) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
  EXPECT_TRUE(line.starts_with("2026-12-05T04:12:07+01:00 ")) << line;
}

TEST_F(EventsTest, JsonPrintsTheLibrarysLinePerEvent) {
  auto a = record("reset", "daemon", kNow - 600);
  auto b = record("temp-code-issued", "bin", kNow - 300, "temp code issued by root, 1 use left");
  auto out = lines({"events", "--json"});
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[0], totp::event_to_json(a));
  EXPECT_EQ(out[1], totp::event_to_json(b));
  auto back = totp::event_from_json(out[1]);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, b);
}

TEST_F(EventsTest, UserKeepsOnlyThatUsersEvents) {
  record("reset", "daemon", kNow - 600);
  auto b = record("unlock", "bin", kNow - 500);
  record("reset", "daemon", kNow - 400);
  auto out = lines({"events", "--json", "--user", "bin"});
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0], totp::event_to_json(b));
  EXPECT_TRUE(lines({"events", "--user", "nobody-has-events"}).empty());
}

TEST_F(EventsTest, SinceTakesIsoTimesAndDurationsAgo) {
  auto a = record("reset", "daemon", kNow - 3 * 3600);
  auto b = record("unlock", "daemon", kNow - 3600);
  auto c = record("reset", "daemon", kNow - 600);
  auto shown = [&](const std::string& since) {
    std::vector<std::string> users;
    for (const auto& l : lines({"events", "--json", "--since", since})) {
      users.push_back(totp::event_from_json(l)->event + "@" +
                      std::to_string(totp::event_from_json(l)->time));
    }
    return users;
  };
  auto key = [](const totp::Event& e) { return e.event + "@" + std::to_string(e.time); };
  using V = std::vector<std::string>;
  EXPECT_EQ(shown("2h"), (V{key(b), key(c)}));
  EXPECT_EQ(shown("30m"), (V{key(c)}));
  EXPECT_EQ(shown("7d"), (V{key(a), key(b), key(c)}));
  EXPECT_EQ(shown("1800s"), (V{key(c)}));
  // An ISO time is inclusive: the event at that second counts.
  EXPECT_EQ(shown(totp::iso_time(b.time)), (V{key(b), key(c)}));
  EXPECT_EQ(shown(totp::iso_time(b.time + 1)), (V{key(c)}));
  EXPECT_TRUE(shown(totp::iso_time(kNow + 1)).empty());
}

TEST(ParseSinceTest, IsoForms) {
  const std::int64_t now = 1796440327;  // 2026-12-05T03:12:07Z
  EXPECT_EQ(parse_since("2026-12-05T03:00:00Z", now).value(), 1796439600);
  EXPECT_EQ(parse_since("2026-12-05T03:00Z", now).value(), 1796439600);
  EXPECT_EQ(parse_since("2026-12-05T04:00:00+01:00", now).value(), 1796439600);
  EXPECT_EQ(parse_since("2026-12-05T02:00:00-0100", now).value(), 1796439600);
  EXPECT_EQ(parse_since("2026-12-05T03:00:00.750Z", now).value(), 1796439600);
  EXPECT_EQ(parse_since("30m", now).value(), now - 1800);
  EXPECT_EQ(parse_since("2h", now).value(), now - 7200);
  EXPECT_EQ(parse_since("7d", now).value(), now - 7 * 86400);
  EXPECT_EQ(parse_since("1w", now).value(), now - 7 * 86400);
  // Without a zone: local time.
  const char* old = std::getenv("TZ");
  std::string saved = old != nullptr ? old : "";
  ::setenv("TZ", "Europe/Berlin", 1);
  ::tzset();
  auto day = parse_since("2026-12-05", now);
  auto minute = parse_since("2026-12-05T04:00", now);
  auto second = parse_since("2026-12-05 04:00:00", now);
  auto summer = parse_since("2026-07-01T02:00", now);
  if (old != nullptr) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
  EXPECT_EQ(day.value(), 1796425200);  // 2026-12-04T23:00:00Z
  EXPECT_EQ(minute.value(), 1796439600);
  EXPECT_EQ(second.value(), 1796439600);
  EXPECT_EQ(summer.value(), 1782864000);  // 2026-07-01T00:00:00Z (CEST, +02:00)
}

TEST(ParseSinceTest, GarbageIsRefused) {
  for (const char* bad : {"",
                          " ",
                          "yesterday",
                          "now",
                          "5",
                          "5x",
                          "-5m",
                          "m",
                          "2026",
                          "2026-12",
                          "2026-13-01",
                          "2026-02-29",
                          "2026-12-32",
                          "2026-12-05T",
                          "2026-12-05T25:00",
                          "2026-12-05T03:60",
                          "2026-12-05T03:00:61",
                          "2026-12-05T03:00+25:00",
                          "2026-12-05T03:00Zjunk",
                          "2026-12-05X03:00",
                          "26-12-05",
                          "1969-12-31",
                          "99999999999999d",
                          "2026-12-05T3:00",
                          "\x1b[31m2h"}) {
    EXPECT_FALSE(parse_since(bad, 1796440327).ok()) << "accepted: " << bad;
  }
  EXPECT_TRUE(parse_since("2028-02-29", 1796440327).ok()) << "a leap day";
}

TEST_F(EventsTest, GarbageSinceExitsTwoAndPrintsNothing) {
  record("reset", "daemon", kNow - 600);
  for (const char* bad : {"yesterday", "2026-13-01", "5x"}) {
    clear();
    EXPECT_EQ(run_cli({"events", "--since", bad}), kExitUsage) << bad;
    EXPECT_EQ(out(), "");
    EXPECT_NE(err().find("not a time"), std::string::npos) << err();
  }
}

TEST_F(EventsTest, NoEventLogIsNoEventsAndExitZero) {
  EXPECT_TRUE(lines({"events"}).empty());
  EXPECT_EQ(err(), "");
  EXPECT_TRUE(lines({"events", "--json", "--since", "1h"}).empty());
}

TEST_F(EventsTest, FieldsArePrintedPrintable) {
  record("reset", "daemon", kNow - 60, "line one\nline two \x1b[31mred\x1b[0m\r");
  auto out = lines({"events"});
  ASSERT_EQ(out.size(), 1U) << this->out();
  for (unsigned char c : out[0]) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7F) << "byte " << static_cast<int>(c) << " in " << out[0];
  }
  EXPECT_NE(out[0].find("line one?line two ?[31mred"), std::string::npos) << out[0];
}

TEST_F(EventsTest, NonRootIsRefused) {
  record("reset", "daemon", kNow - 60);
  become("daemon");
  clear();
  EXPECT_EQ(run_cli({"events"}), kExitStore);
  EXPECT_EQ(out(), "");
  EXPECT_NE(err().find("events needs root"), std::string::npos) << err();
}

TEST_F(EventsTest, HelpdeskMemberThroughSudoIsRefused) {
  record("reset", "daemon", kNow - 60);
  write_config("helpdesk_groups = daemon\nhelpdesk_actions = status,unlock,temp-code,reset\n");
  env_.system_config_path = config_path_;
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "daemon";
  clear();
  EXPECT_EQ(run({"events"}, env_), kExitStore);
  EXPECT_EQ(out(), "");
  EXPECT_NE(err().find("'events' is not a helpdesk command"), std::string::npos) << err();
  ASSERT_FALSE(audit_.empty());
  EXPECT_NE(audit_.back().find("refused events"), std::string::npos) << audit_.back();
}

TEST_F(EventsTest, NotifyNeedsFollowAndACommand) {
  clear();
  EXPECT_EQ(run_cli({"events", "--notify"}), kExitUsage);
  EXPECT_NE(err().find("--notify requires --follow"), std::string::npos) << err();
  clear();
  EXPECT_EQ(run_cli({"events", "--follow", "--notify"}), kExitUsage);
  EXPECT_NE(err().find("notify_command is not set"), std::string::npos) << err();
  clear();
  EXPECT_EQ(run_cli({"events", "--follow", "--notify", "--json"}), kExitUsage);
}

TEST_F(EventsTest, NotifyRefusesAnUnsafeOrMissingCommand) {
  const std::string script = notify_script();
  const std::string link = tmp_ / "notify-link";
  ASSERT_EQ(::symlink(script.c_str(), link.c_str()), 0);
  struct Case {
    std::string path;
    std::function<void()> prepare;
    int exit;
    std::string says;
  };
  const std::vector<Case> cases = {
      {script, [&] { ASSERT_EQ(::chmod(script.c_str(), 0775), 0); }, kExitStore,
       "lets group or others write"},
      {script, [&] { ASSERT_EQ(::chmod(script.c_str(), 0757), 0); }, kExitStore,
       "lets group or others write"},
      {script,
       [&] {
         ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
         ASSERT_EQ(::chown(script.c_str(), user("daemon").uid, 0), 0);
       },
       kExitStore, "owned by"},
      {script,
       [&] {
         ASSERT_EQ(::chown(script.c_str(), 0, 0), 0);
         ASSERT_EQ(::chmod(script.c_str(), 0644), 0);
       },
       kExitStore, "not executable"},
      {link, [&] { ASSERT_EQ(::chmod(script.c_str(), 0755), 0); }, kExitStore, "symbolic link"},
      {tmp_ / "missing", [] {}, kExitUsage, "does not exist"},
  };
  for (const auto& c : cases) {
    c.prepare();
    write_config("notify_command = " + c.path + "\n");
    clear();
    EXPECT_EQ(run_cli({"events", "--follow", "--notify"}), c.exit) << c.path << ": " << err();
    EXPECT_NE(err().find(c.says), std::string::npos) << err();
    EXPECT_EQ(out(), "");
  }
}

TEST_F(EventsTest, NotifyRefusesACommandInADirectoryOthersCanWrite) {
  const std::string dir = tmp_ / "bin";
  ASSERT_EQ(::mkdir(dir.c_str(), 0775), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0775), 0);
  const std::string script = dir + "/notify.sh";
  ASSERT_TRUE(write_file(script, "#!/bin/sh\n", 0755));
  write_config("notify_command = " + script + "\n");
  clear();
  EXPECT_EQ(run_cli({"events", "--follow", "--notify"}), kExitStore) << err();
  EXPECT_NE(err().find("its directory " + dir), std::string::npos) << err();
}

}  // namespace
}  // namespace pbx::cli::testing

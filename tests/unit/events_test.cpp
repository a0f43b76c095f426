// Security events (issue 17): the JSON line, the kinds table, notify_events matching, and the
// file store's event log (append, rotation, reading after a cursor, hostile files).
#include "pbx/totp/events.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "pbx/totp/config.hpp"
#include "pbx/totp/state.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::has_errc;
using testing::is_ok;
using testing::read_file;
using testing::write_file;

Event sample(std::string kind = "reset", std::string user = "alice", std::int64_t t = 1764900727) {
  Event e;
  e.time = t;
  e.host = "pbx1";
  e.service = "pbx-mfa";
  e.user = std::move(user);
  e.rhost = "";
  e.event = std::move(kind);
  e.actor = "helen";
  e.detail = "by the helpdesk";
  return e;
}

TEST(EventJson, OneLineWithEveryFieldInOrderAndRoundTrips) {
  Event e = sample();
  e.rhost = "192.0.2.7";
  std::string line = event_to_json(e);
  EXPECT_EQ(line,
            R"({"time":"2025-12-05T02:12:07Z","host":"pbx1","service":"pbx-mfa","user":"alice",)"
            R"("rhost":"192.0.2.7","event":"reset","actor":"helen","detail":"by the helpdesk"})");
  auto back = event_from_json(line);
  ASSERT_TRUE(is_ok(back));
  EXPECT_EQ(*back, e);
}

TEST(EventJson, HostileTextStaysOneLineAndInvalidUtf8IsReplaced) {
  Event e = sample();
  e.user = std::string("al\nice\"}\xff", 10);
  e.detail = std::string(5000, 'x');
  std::string line = event_to_json(e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto back = event_from_json(line);
  ASSERT_TRUE(is_ok(back));
  EXPECT_EQ(back->detail.size(), kMaxEventDetail);
  EXPECT_EQ(back->user.substr(0, 6), "al?ice") << "control characters as '?'";
  EXPECT_NE(back->user.find("\xef\xbf\xbd"), std::string::npos) << "U+FFFD for the bad byte";
}

TEST(EventJson, RefusesWhatIsNotAnEvent) {
  for (const char* bad : {"", "[]", "{}", "not json",
                          R"({"time":"yesterday","host":"h","service":"s",)"
                          R"("user":"u","rhost":"","event":"reset","actor":"","detail":""})",
                          R"({"time":"2025-12-05T02:12:07Z","host":1,"service":"s","user":"u",)"
                          R"("rhost":"","event":"reset","actor":"","detail":""})"}) {
    EXPECT_TRUE(has_errc(event_from_json(bad), Errc::kCorrupt)) << bad;
  }
}

TEST(EventKinds, NamesAreUniqueAndNotifyEntriesMatchByWholeWords) {
  for (std::size_t i = 0; i < std::size(kEventKinds); ++i) {
    for (std::size_t j = i + 1; j < std::size(kEventKinds); ++j) {
      EXPECT_NE(kEventKinds[i].name, kEventKinds[j].name);
    }
    EXPECT_EQ(find_event_kind(kEventKinds[i].name), &kEventKinds[i]);
  }
  EXPECT_TRUE(event_entry_matches("temp-code", "temp-code-accepted"));
  EXPECT_TRUE(event_entry_matches("recovery", "recovery-code-accepted"));
  EXPECT_TRUE(event_entry_matches("reset", "reset"));
  EXPECT_TRUE(event_entry_matches("all", "unlock"));
  EXPECT_FALSE(event_entry_matches("temp", "temp-code-accepted") &&
               !event_entry_matches("temp-code", "temp-code-accepted"));
  EXPECT_FALSE(event_entry_matches("rec", "recovery-code-accepted"));
  EXPECT_FALSE(event_entry_matches("reset", "unlock"));
  EXPECT_FALSE(entry_names_events("nothing"));
  EXPECT_FALSE(entry_names_events("rec"));
  EXPECT_TRUE(entry_names_events("break-glass"));
}

TEST(EventConfig, KeysParseAndRefuseGarbage) {
  Config c;
  EXPECT_TRUE(apply_setting(c, "notify_events", "temp-code, locked-out").ok());
  EXPECT_EQ(c.notify_events, (std::vector<std::string>{"temp-code", "locked-out"}));
  EXPECT_FALSE(apply_setting(c, "notify_events", "recovery,bogus").ok());
  EXPECT_EQ(c.notify_events, (std::vector<std::string>{"temp-code", "locked-out"}));
  EXPECT_TRUE(apply_setting(c, "notify_command", "/usr/local/bin/page-oncall").ok());
  EXPECT_EQ(c.notify_command, "/usr/local/bin/page-oncall");
  EXPECT_FALSE(apply_setting(c, "notify_command", "page-oncall").ok());
  EXPECT_TRUE(apply_setting(c, "notify_command", "").ok());
  EXPECT_TRUE(c.notify_command.empty());
  EXPECT_TRUE(apply_setting(c, "events_max_size", "64K").ok());
  EXPECT_EQ(c.events_max_size, 65536);
  EXPECT_TRUE(apply_setting(c, "events_max_size", "1G").ok());
  for (const char* bad : {"63K", "2G", "10X", "", "-1M", "99999999999999999999"}) {
    EXPECT_FALSE(apply_setting(c, "events_max_size", bad).ok()) << bad;
  }
  EXPECT_FALSE(apply_setting(c, "notify_timeout", "0").ok());
  EXPECT_FALSE(apply_setting(c, "notify_rate", "1001").ok());
}

class EventLogTest : public testing::StoreFixture {
 protected:
  std::string log_path() const { return state_dir_ + "/.events.log"; }
};

TEST_F(EventLogTest, AppendsRootOnlyLinesAndReadsThemBackOldestFirst) {
  ASSERT_TRUE(is_ok(store().append_event(sample("reset", "alice", 100))));
  ASSERT_TRUE(is_ok(store().append_event(sample("unlock", "bob", 200))));
  struct stat st {};
  ASSERT_EQ(::lstat(log_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, 0u);
  auto page = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(page));
  ASSERT_EQ(page->events.size(), 2u);
  EXPECT_EQ(page->events[0].event, "reset");
  EXPECT_EQ(page->events[1].user, "bob");

  auto only_bob = store().read_events(EventQuery{0, "bob"}, EventCursor{});
  ASSERT_TRUE(is_ok(only_bob));
  ASSERT_EQ(only_bob->events.size(), 1u);
  auto since = store().read_events(EventQuery{150, ""}, EventCursor{});
  ASSERT_TRUE(is_ok(since));
  ASSERT_EQ(since->events.size(), 1u);
  EXPECT_EQ(since->events[0].event, "unlock");
}

TEST_F(EventLogTest, AFollowerReadsEachEventOnceAcrossRotation) {
  config_.events_max_size = 64 * 1024;
  reopen();
  auto first = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(first));
  EXPECT_TRUE(first->events.empty());
  EventCursor cursor = first->next;
  int written = 0;
  int seen = 0;
  // Far more than one file holds: several rotations between reads.
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 40; ++i) {
      Event e = sample("unlock", "user" + std::to_string(written), 1000 + written);
      e.detail = std::string(300, 'd');
      ASSERT_TRUE(is_ok(store().append_event(e)));
      ++written;
    }
    auto page = store().read_events(EventQuery{}, cursor);
    ASSERT_TRUE(is_ok(page));
    for (const Event& e : page->events) {
      EXPECT_EQ(e.user, "user" + std::to_string(seen)) << "out of order or repeated";
      ++seen;
    }
    cursor = page->next;
  }
  EXPECT_EQ(seen, written);
  struct stat st {};
  ASSERT_EQ(::lstat(log_path().c_str(), &st), 0);
  EXPECT_LE(st.st_size, config_.events_max_size);
  ASSERT_EQ(::lstat((log_path() + ".1").c_str(), &st), 0);
  EXPECT_LE(st.st_size, config_.events_max_size);
}

TEST_F(EventLogTest, ATornLastLineIsLeftForTheNextRead) {
  ASSERT_TRUE(is_ok(store().append_event(sample("reset", "alice", 100))));
  std::string whole = event_to_json(sample("unlock", "bob", 200)) + "\n";
  std::string text = *read_file(log_path()) + whole.substr(0, 20);
  ASSERT_TRUE(write_file(log_path(), text, 0600, 0, 0));
  auto page = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(page));
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->skipped, 0);
  ASSERT_TRUE(write_file(log_path(), *read_file(log_path()) + whole.substr(20), 0600, 0, 0));
  auto next = store().read_events(EventQuery{}, page->next);
  ASSERT_TRUE(is_ok(next));
  ASSERT_EQ(next->events.size(), 1u);
  EXPECT_EQ(next->events[0].user, "bob");
}

TEST_F(EventLogTest, GarbageLinesAreSkippedAndCounted) {
  ASSERT_TRUE(write_file(
      log_path(),
      "garbage\n{\"time\":1}\n" + std::string(40000, 'x') + "\n" + event_to_json(sample()) + "\n",
      0600, 0, 0));
  auto page = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(page));
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->skipped, 3);
}

TEST_F(EventLogTest, HostileLogFilesAreRefusedAndLeftAlone) {
  // Group-readable: refused for reading and for writing, not changed.
  ASSERT_TRUE(write_file(log_path(), event_to_json(sample()) + "\n", 0640, 0, 0));
  const std::string before = *read_file(log_path());
  EXPECT_TRUE(has_errc(store().append_event(sample()), Errc::kUnsafe));
  EXPECT_TRUE(has_errc(store().read_events(EventQuery{}, EventCursor{}), Errc::kUnsafe));
  EXPECT_EQ(*read_file(log_path()), before);
  // A symlink is never followed.
  ASSERT_EQ(::unlink(log_path().c_str()), 0);
  const std::string target = tmp_ / "elsewhere";
  ASSERT_TRUE(write_file(target, "", 0600, 0, 0));
  ASSERT_EQ(::symlink(target.c_str(), log_path().c_str()), 0);
  EXPECT_FALSE(store().append_event(sample()).ok());
  EXPECT_EQ(*read_file(target), "");
  // Another owner.
  ASSERT_EQ(::unlink(log_path().c_str()), 0);
  ASSERT_TRUE(write_file(log_path(), "", 0600, testing::kOtherUid, testing::kOtherUid));
  EXPECT_TRUE(has_errc(store().append_event(sample()), Errc::kUnsafe));
  // A FIFO does not hang the writer.
  ASSERT_EQ(::unlink(log_path().c_str()), 0);
  ASSERT_EQ(::mkfifo(log_path().c_str(), 0600), 0);
  EXPECT_FALSE(store().append_event(sample()).ok());
}

TEST(StateLastFailure, VersionThreeOnlyWhenThereIsALastFailure) {
  UserState s;
  s.enrollment_id = std::string(testing::kIdA);
  EXPECT_EQ(serialize_state(s).rfind("version 2\n", 0), 0u);
  s.failures = 2;
  s.last_failure = 1764900727;
  s.last_failure_rhost = rhost_text("198.51.100.9");
  std::string text = serialize_state(s);
  EXPECT_EQ(text.rfind("version 3\n", 0), 0u);
  EXPECT_NE(text.find("\nlast-failure 1764900727 198.51.100.9\n"), std::string::npos);
  auto back = parse_state(text);
  ASSERT_TRUE(is_ok(back));
  EXPECT_EQ(back->last_failure, s.last_failure);
  EXPECT_EQ(back->last_failure_rhost, "198.51.100.9");
  // A local login: "-".
  s.last_failure_rhost.clear();
  back = parse_state(serialize_state(s));
  ASSERT_TRUE(is_ok(back));
  EXPECT_EQ(back->last_failure_rhost, "");
  // A host of any bytes cannot add a line.
  EXPECT_EQ(rhost_text("evil\nid 00\x01 x"), "evil?id?00??x");
  // Version 2 has no such line.
  std::string v2 = text;
  v2.replace(0, 9, "version 2");
  EXPECT_TRUE(has_errc(parse_state(v2), Errc::kCorrupt));
}

TEST_F(EventLogTest, AGoodLoginAfterFailuresReportsThemOnce) {
  Enrollment e = make_enrollment();
  ASSERT_TRUE(is_ok(store().save(alice_, e, true)));
  FixedClock clock(testing::kT0);
  Verifier v(config_, store(), clock);
  ASSERT_TRUE(is_ok(v.verify(alice_, "000000", "203.0.113.5")));
  clock.set(testing::kT0 + 5);
  ASSERT_TRUE(is_ok(v.verify(alice_, "000001", "203.0.113.6")));
  auto ok = v.verify(alice_, testing::code_for_step(e, testing::kT0 / 30), "");
  ASSERT_TRUE(is_ok(ok));
  ASSERT_EQ(ok->verdict, Verdict::kAccepted);
  EXPECT_EQ(ok->failures_before, 2);
  EXPECT_EQ(ok->last_failure, testing::kT0 + 5);
  EXPECT_EQ(ok->last_failure_rhost, "203.0.113.6");
  clock.set(testing::kT0 + 30);
  auto again = v.verify(alice_, testing::code_for_step(e, testing::kT0 / 30 + 1));
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(again->failures_before, 0);
}

}  // namespace
}  // namespace pbx::totp

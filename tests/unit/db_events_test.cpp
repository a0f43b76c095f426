// The fleet's one event log on PostgreSQL (issue 17): two servers append to pbx_mfa_event and
// each reads both; a cursor reads only newer events; events that cannot reach the database go
// to the host's file and are read with the table's; forged rows are skipped; db migrate adds
// the table to a database of schema 3. Runs only in ctest's pg.* runs (the throwaway cluster).
#include <gtest/gtest.h>
#include <unistd.h>

#include <limits>
#include <random>
#include <string>
#include <vector>

#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/store.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::has_errc;
using testing::is_ok;
using testing::kT0;
using testing::read_file;
using testing::refused_port;

Event event_at(std::int64_t t, std::string host, std::string kind = "reset",
               std::string user = "alice") {
  Event e;
  e.time = t;
  e.host = std::move(host);  // set by hand: both "hosts" of a test run on this machine
  e.service = "pbx-mfa";
  e.user = std::move(user);
  e.rhost = "";
  e.event = std::move(kind);
  e.actor = "helen";
  e.detail = "by the helpdesk";
  return e;
}

std::vector<std::string> hosts_and_times(const std::vector<Event>& events) {
  std::vector<std::string> out;
  out.reserve(events.size());
  for (const Event& e : events) out.push_back(e.host + "@" + std::to_string(e.time));
  return out;
}

class DbEventsTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(on_database()) << "DbEventsTest runs with PBX_TEST_STORE=postgresql only";
    host_a_ = config_;
    host_a_.state_dir = tmp_ / "host-a-state";
    host_b_ = config_;
    host_b_.state_dir = tmp_ / "host-b-state";
  }

  static std::unique_ptr<Store> store_of(const Config& c) {
    auto s = open_store(c);
    if (!s.ok()) throw std::runtime_error("open_store: " + s.error().message);
    return std::move(s.value());
  }
  static EventPage read_all(const Config& c, const EventQuery& q = {},
                            const EventCursor& from = {}) {
    auto page = store_of(c)->read_events(q, from);
    if (!page.ok()) throw std::runtime_error("read_events: " + page.error().message);
    return std::move(page.value());
  }
  std::string rows() const { return pg_->exec("SELECT count(*) FROM pbx_mfa_event"); }

  // The database as a pbx-mfa before issue 17 left it: schema 3, no events table.
  void schema_3() const {
    pg_->exec("DROP TABLE pbx_mfa_event; UPDATE pbx_mfa_schema SET version = 3");
  }

  Config host_a_;
  Config host_b_;
};

TEST_F(DbEventsTest, TwoHostsAppendAndEachReadsTheFleetsOneLogInOrder) {
  auto a = store_of(host_a_);
  auto b = store_of(host_b_);
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0, "pbx1", "enrolled"))));
  ASSERT_TRUE(is_ok(b->append_event(event_at(kT0 + 5, "pbx2", "locked-out"))));
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0 + 9, "pbx1", "unlock"))));
  ASSERT_TRUE(is_ok(b->append_event(event_at(kT0 + 12, "pbx2", "recovery-code-accepted", "bob"))));
  EXPECT_EQ(rows(), "4");
  // Nothing in either host's file: the table holds them.
  EXPECT_FALSE(testing::exists_nofollow(host_a_.state_dir + "/.events.log"));
  EXPECT_FALSE(testing::exists_nofollow(host_b_.state_dir + "/.events.log"));

  const std::vector<std::string> fleet = {
      "pbx1@" + std::to_string(kT0), "pbx2@" + std::to_string(kT0 + 5),
      "pbx1@" + std::to_string(kT0 + 9), "pbx2@" + std::to_string(kT0 + 12)};
  for (const Config* host : {&host_a_, &host_b_}) {
    EventPage page = read_all(*host);
    EXPECT_EQ(hosts_and_times(page.events), fleet);
    EXPECT_EQ(page.skipped, 0);
    EXPECT_EQ(page.warning, "");
  }
  // Every field comes back as written.
  EventPage page = read_all(host_a_);
  ASSERT_EQ(page.events.size(), 4U);
  EXPECT_EQ(page.events[3], event_at(kT0 + 12, "pbx2", "recovery-code-accepted", "bob"));
  // The query: one user, or from a time on.
  EXPECT_EQ(hosts_and_times(read_all(host_b_, EventQuery{0, "bob"}).events),
            std::vector<std::string>{"pbx2@" + std::to_string(kT0 + 12)});
  EXPECT_EQ(read_all(host_b_, EventQuery{kT0 + 9, ""}).events.size(), 2U);
  EXPECT_EQ(read_all(host_b_, EventQuery{kT0 + 9, "carol"}).events.size(), 0U);
  // The recording host's clock is the event's time; the server's own is kept beside it.
  EXPECT_EQ(pg_->exec("SELECT min(at) || ' ' || bool_and(recorded > now() - interval '1 hour') "
                      "FROM pbx_mfa_event"),
            std::to_string(kT0) + " true");
}

TEST_F(DbEventsTest, ACursorReadReturnsOnlyNewerEvents) {
  auto a = store_of(host_a_);
  auto b = store_of(host_b_);
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0, "pbx1"))));
  ASSERT_TRUE(is_ok(b->append_event(event_at(kT0 + 1, "pbx2"))));
  auto first = a->read_events({}, {});
  ASSERT_TRUE(is_ok(first));
  ASSERT_EQ(first->events.size(), 2U);
  EXPECT_TRUE(first->next.started);
  EXPECT_GT(first->next.db_id, 0);

  auto none = a->read_events({}, first->next);
  ASSERT_TRUE(is_ok(none));
  EXPECT_TRUE(none->events.empty());
  EXPECT_EQ(none->next.db_id, first->next.db_id);

  // An event older by its clock than those read (another host's clock behind) is still new.
  ASSERT_TRUE(is_ok(b->append_event(event_at(kT0 - 100, "pbx2", "unlock"))));
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0 + 2, "pbx1", "reset"))));
  auto second = a->read_events({}, none->next);
  ASSERT_TRUE(is_ok(second));
  EXPECT_EQ(hosts_and_times(second->events),
            (std::vector<std::string>{"pbx2@" + std::to_string(kT0 - 100),
                                      "pbx1@" + std::to_string(kT0 + 2)}));
  // A cursor outlives the store that made it (a follower that reopens its store).
  auto again = store_of(host_b_)->read_events({}, second->next);
  ASSERT_TRUE(is_ok(again));
  EXPECT_TRUE(again->events.empty());
}

TEST_F(DbEventsTest, AQueryThatMatchesNothingStillMovesTheCursorToTheEnd) {
  auto a = store_of(host_a_);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(is_ok(a->append_event(event_at(kT0 + i, "pbx1"))));
  // A notifier starts at the end: it asks for nothing, and the cursor is past every row.
  EventQuery nothing{std::numeric_limits<std::int64_t>::max(), ""};
  auto start = a->read_events(nothing, {});
  ASSERT_TRUE(is_ok(start));
  EXPECT_TRUE(start->events.empty());
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0 + 10, "pbx1", "locked-out"))));
  auto next = a->read_events({}, start->next);
  ASSERT_TRUE(is_ok(next));
  EXPECT_EQ(hosts_and_times(next->events),
            std::vector<std::string>{"pbx1@" + std::to_string(kT0 + 10)});
  // A follower of one user does not read the others' rows again on every poll.
  auto bobs = a->read_events(EventQuery{0, "bob"}, {});
  ASSERT_TRUE(is_ok(bobs));
  EXPECT_TRUE(bobs->events.empty());
  EXPECT_EQ(bobs->next.db_id, next->next.db_id);
}

TEST_F(DbEventsTest, AFollowersStoreReadsAgainOnceTheDatabaseIsBack) {
  Config c = host_a_;
  std::string tag = "pbx_follower_" + pg_->name();
  c.pg_conninfo += " application_name=" + tag;
  auto follower = store_of(c);
  ASSERT_TRUE(is_ok(follower->read_events({}, {})));  // connected
  ASSERT_EQ(pg_->exec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                      "application_name = '" +
                      tag + "'"),
            "1");
  ASSERT_TRUE(is_ok(store_of(host_b_)->append_event(event_at(kT0, "pbx2", "locked-out"))));
  // The connection is gone: that read fails; the next one connects again.
  EXPECT_FALSE(follower->read_events({}, {}).ok());
  auto again = follower->read_events({}, {});
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(again->events.size(), 1U);
  EXPECT_EQ(again->warning, "");
}

TEST_F(DbEventsTest, ALongLogIsReadInChunksAndWholly) {
  // Over one chunk (1000 rows) of the reader: every row once, in order.
  pg_->exec(
      "INSERT INTO pbx_mfa_event (at, host, service, user_name, rhost, event, actor, detail) "
      "SELECT " +
      std::to_string(kT0) +
      " + i, 'pbx1', 'sshd', 'alice', '', 'locked-out', '', '' FROM generate_series(1, 2500) i");
  EventPage page = read_all(host_a_);
  ASSERT_EQ(page.events.size(), 2500U);
  for (std::size_t i = 0; i < page.events.size(); ++i) {
    ASSERT_EQ(page.events[i].time, kT0 + static_cast<std::int64_t>(i) + 1);
  }
  EXPECT_TRUE(read_all(host_a_, {}, page.next).events.empty());
}

TEST_F(DbEventsTest, AnUnreachableDatabaseKeepsTheEventInTheHostsFileAndReadsMergeIt) {
  auto b = store_of(host_b_);
  ASSERT_TRUE(is_ok(b->append_event(event_at(kT0, "pbx2", "enrolled"))));
  ASSERT_TRUE(is_ok(b->append_event(event_at(kT0 + 20, "pbx2", "unlock"))));
  // Host A cannot reach the database (a break-glass login): the event goes to A's file, and
  // that is no error.
  Config down = host_a_;
  down.pg_conninfo = "host=127.0.0.1 port=" + std::to_string(refused_port()) + " user=postgres";
  auto offline = store_of(down);
  ASSERT_TRUE(is_ok(offline->append_event(event_at(kT0 + 10, "pbx1", "break-glass-accepted"))));
  auto line = read_file(host_a_.state_dir + "/.events.log");
  ASSERT_TRUE(line.has_value());
  EXPECT_NE(line->find("\"break-glass-accepted\""), std::string::npos) << *line;
  EXPECT_EQ(rows(), "2");
  // Read while the database is down: the file alone, and a warning that says so.
  auto alone = offline->read_events({}, {});
  ASSERT_TRUE(is_ok(alone));
  EXPECT_EQ(hosts_and_times(alone->events),
            std::vector<std::string>{"pbx1@" + std::to_string(kT0 + 10)});
  EXPECT_NE(alone->warning.find("only this host's events"), std::string::npos) << alone->warning;

  // Once it is back, A reads the table and its file as one log, by time.
  EventPage page = read_all(host_a_);
  EXPECT_EQ(page.warning, "");
  EXPECT_EQ(
      hosts_and_times(page.events),
      (std::vector<std::string>{"pbx2@" + std::to_string(kT0), "pbx1@" + std::to_string(kT0 + 10),
                                "pbx2@" + std::to_string(kT0 + 20)}));
  // The cursor carries both parts: nothing twice, and each new event once.
  EXPECT_TRUE(read_all(host_a_, {}, page.next).events.empty());
  ASSERT_TRUE(is_ok(offline->append_event(event_at(kT0 + 30, "pbx1", "break-glass-accepted"))));
  ASSERT_TRUE(is_ok(b->append_event(event_at(kT0 + 31, "pbx2", "reset"))));
  EventPage next = read_all(host_a_, {}, page.next);
  EXPECT_EQ(hosts_and_times(next.events),
            (std::vector<std::string>{"pbx1@" + std::to_string(kT0 + 30),
                                      "pbx2@" + std::to_string(kT0 + 31)}));
  // B does not see A's file: it never reached the database.
  EXPECT_EQ(read_all(host_b_).events.size(), 3U);
}

TEST_F(DbEventsTest, ForgedRowsAreSkippedAndCountedNeverBreakingTheReader) {
  auto a = store_of(host_a_);
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0, "pbx1", "enrolled"))));
  // Someone who owns the table drops its checks and writes rows of their own.
  pg_->exec(
      "ALTER TABLE pbx_mfa_event DROP CONSTRAINT pbx_mfa_event_host_check, "
      "DROP CONSTRAINT pbx_mfa_event_detail_check");
  const std::string insert =
      "INSERT INTO pbx_mfa_event (at, host, service, user_name, rhost, event, actor, detail) "
      "VALUES ";
  pg_->exec(insert + "(-5, 'pbx9', 'sshd', 'alice', '', 'reset', '', 'before 1970')");
  pg_->exec(insert + "(99999999999999, 'pbx9', 'sshd', 'alice', '', 'reset', '', 'year 3e6')");
  pg_->exec(insert + "(" + std::to_string(kT0 + 1) +
            ", repeat('h', 100000), 'sshd', 'alice', '', 'reset', '', 'long host')");
  pg_->exec(insert + "(" + std::to_string(kT0 + 2) +
            ", 'pbx9', 'sshd', 'alice', '', 'reset', '', repeat('d', 5000000))");
  // Control characters fit the checks: read as '?', as the file's lines are.
  pg_->exec(insert + "(" + std::to_string(kT0 + 3) +
            ", 'pbx9', 'sshd', 'alice', '', 'reset', '', E'a\\x1b[31mred\\nline')");
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0 + 4, "pbx1", "unlock"))));

  EventPage page = read_all(host_a_);
  EXPECT_EQ(page.skipped, 3);  // the time before 1970 is before every `since`: not even read
  ASSERT_EQ(page.events.size(), 3U);
  EXPECT_EQ(page.events[0].event, "enrolled");
  EXPECT_EQ(page.events[1].detail, "a?[31mred?line");
  EXPECT_EQ(page.events[2].event, "unlock");
  // The cursor is past them: read once, never again.
  EventPage next = read_all(host_a_, {}, page.next);
  EXPECT_TRUE(next.events.empty());
  EXPECT_EQ(next.skipped, 0);
  // A JSON line of each event read stays one line.
  for (const Event& e : page.events) {
    EXPECT_EQ(event_to_json(e).find('\n'), std::string::npos);
  }
}

TEST_F(DbEventsTest, HostileTextIsStoredAsValidUtf8WithinTheCaps) {
  Event e = event_at(kT0, "pbx1");
  e.rhost = std::string("evil\xff\xfe", 6) + std::string(1, '\0') + "host";
  e.user = "ali\xc3";                                  // a cut sequence
  e.detail = std::string(2000, 'x') + "\xe2\x82\xac";  // over the cap
  e.actor = std::string(255, 'a') + "\xe2\x82\xac";    // a character that does not fit
  e.service = "ss\x1b[2Jh\x7f\xc2\x9b\xc2\xa0";        // C0, DEL, C1; U+00A0 is kept
  auto a = store_of(host_a_);
  ASSERT_TRUE(is_ok(a->append_event(e)));
  EventPage page = read_all(host_a_);
  ASSERT_EQ(page.events.size(), 1U);
  const Event& got = page.events[0];
  EXPECT_EQ(got.rhost, "evil\xef\xbf\xbd\xef\xbf\xbd?host");
  EXPECT_EQ(got.user, "ali\xef\xbf\xbd");
  EXPECT_EQ(got.detail, std::string(1024, 'x'));
  EXPECT_EQ(got.actor, std::string(255, 'a'));
  EXPECT_EQ(got.host, "pbx1");
  EXPECT_EQ(got.service, "ss?[2Jh??\xc2\xa0");
}

TEST_F(DbEventsTest, AnAppendNeverRunsInsideAStateTransaction) {
  enroll(alice_);
  auto a = store_of(host_a_);
  auto txn = a->lock_state(alice_);
  ASSERT_TRUE(is_ok(txn));
  // Inside the transaction: the table is left alone (a failed insert would abort the
  // transaction and so decide the login), the event kept in the file, the misuse reported.
  auto st = a->append_event(event_at(kT0, "pbx1", "locked-out"));
  EXPECT_TRUE(has_errc(st, Errc::kInternal));
  EXPECT_TRUE(has_errc(a->read_events({}, {}), Errc::kInternal));
  UserState next = (*txn)->state();
  next.failures = 3;
  ASSERT_TRUE(is_ok((*txn)->commit(next)));
  txn->reset();
  EXPECT_EQ(a->peek_state(alice_)->failures, 3);
  EXPECT_EQ(rows(), "0");
  // After the commit: into the table; the earlier one is read from the file.
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0 + 1, "pbx1", "unlock"))));
  EXPECT_EQ(rows(), "1");
  EXPECT_EQ(read_all(host_a_).events.size(), 2U);
}

TEST_F(DbEventsTest, AFailingInsertKeepsTheEventInTheFileAndSaysSo) {
  // A table that refuses the row (a DBA's trigger, a full disk): an error, and the event kept.
  pg_->exec("ALTER TABLE pbx_mfa_event ADD CONSTRAINT no_resets CHECK (event <> 'reset')");
  auto a = store_of(host_a_);
  auto st = a->append_event(event_at(kT0, "pbx1", "reset"));
  ASSERT_TRUE(has_errc(st, Errc::kIo));
  EXPECT_NE(st.error().message.find("in this host's event file instead"), std::string::npos)
      << st.error().message;
  EXPECT_EQ(rows(), "0");
  ASSERT_TRUE(is_ok(a->append_event(event_at(kT0 + 1, "pbx1", "unlock"))));  // link still up
  EXPECT_EQ(
      hosts_and_times(read_all(host_a_).events),
      (std::vector<std::string>{"pbx1@" + std::to_string(kT0), "pbx1@" + std::to_string(kT0 + 1)}));
}

TEST_F(DbEventsTest, MigrateFromSchema3AddsTheTableKeepingEveryRow) {
  Enrollment e = enroll(alice_);
  schema_3();
  reopen();
  std::string enrollment_before = stored_secret(alice_);
  // An updated server on the old schema: events go to its file (an error names db migrate),
  // reads show the file's with a warning.
  auto a = store_of(host_a_);
  auto st = a->append_event(event_at(kT0, "pbx1", "enrolled"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("no events table"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("db migrate"), std::string::npos) << st.error().message;
  auto before = a->read_events({}, {});
  ASSERT_TRUE(is_ok(before));
  EXPECT_EQ(before->events.size(), 1U);
  EXPECT_NE(before->warning.find("db migrate"), std::string::npos) << before->warning;
  EXPECT_EQ(store().load(alice_)->id, e.id);  // logins go on

  auto up = db_upgrade(config_);
  ASSERT_TRUE(is_ok(up));
  EXPECT_EQ(up->from_version, 3);
  EXPECT_EQ(up->to_version, kDbSchemaVersion);
  EXPECT_TRUE(up->events_table_created);
  EXPECT_EQ(up->enrollments_upgraded, 0);
  EXPECT_EQ(db_probe(config_)->schema_version, 4);
  EXPECT_EQ(stored_secret(alice_), enrollment_before);
  EXPECT_EQ(store().load(alice_)->id, e.id);

  ASSERT_TRUE(is_ok(store_of(host_b_)->append_event(event_at(kT0 + 1, "pbx2", "unlock"))));
  EventPage page = read_all(host_a_);
  EXPECT_EQ(page.warning, "");
  EXPECT_EQ(
      hosts_and_times(page.events),
      (std::vector<std::string>{"pbx1@" + std::to_string(kT0), "pbx2@" + std::to_string(kT0 + 1)}));
  // Run again: nothing changes, the rows stay.
  auto again = db_upgrade(config_);
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(again->from_version, 4);
  EXPECT_FALSE(again->events_table_created);
  EXPECT_EQ(rows(), "1");
}

TEST_F(DbEventsTest, TheServersRoleNeedsOnlyInsertAndSelectOnTheTable) {
  // The README's setup with a separate owner: the servers' role gets SELECT, INSERT, UPDATE,
  // DELETE on the three tables and SELECT, INSERT on the events table, nothing else.
  std::random_device rd;
  const std::string role =
      "pbxtest_srv_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000U);
  pg_->exec("CREATE ROLE " + role + " LOGIN");
  struct DropRole {
    const testing::PgSchema& pg;
    std::string role;
    ~DropRole() {
      try {
        pg.exec("DROP OWNED BY " + role + "; DROP ROLE " + role);
      } catch (...) {
      }
    }
  } drop{*pg_, role};
  pg_->exec("GRANT USAGE ON SCHEMA " + pg_->name() + " TO " + role +
            "; GRANT SELECT, INSERT, UPDATE, DELETE ON pbx_mfa_schema, pbx_mfa_enrollment, "
            "pbx_mfa_state TO " +
            role + "; GRANT SELECT, INSERT ON pbx_mfa_event TO " + role);
  Config server = host_a_;
  const std::string from = "user=postgres";
  std::size_t at = server.pg_conninfo.find(from);
  ASSERT_NE(at, std::string::npos) << server.pg_conninfo;
  server.pg_conninfo.replace(at, from.size(), "user=" + role);

  enroll(alice_);
  auto s = store_of(server);
  ASSERT_TRUE(is_ok(s->load(alice_)));  // the role works for the other tables
  ASSERT_TRUE(is_ok(s->append_event(event_at(kT0, "pbx1", "unlock"))));
  ASSERT_TRUE(is_ok(s->append_event(event_at(kT0 + 1, "pbx1", "reset"))));
  auto page = s->read_events({}, {});
  ASSERT_TRUE(is_ok(page));
  EXPECT_EQ(page->events.size(), 2U);
  EXPECT_EQ(page->warning, "");
  EXPECT_FALSE(testing::exists_nofollow(host_a_.state_dir + "/.events.log"));
  // ... and cannot rewrite the log.
  EXPECT_THROW(pg_->exec("SET ROLE " + role + "; DELETE FROM pbx_mfa_event"), std::runtime_error);
  EXPECT_THROW(pg_->exec("SET ROLE " + role + "; UPDATE pbx_mfa_event SET detail = ''"),
               std::runtime_error);
  EXPECT_EQ(rows(), "2");
}

}  // namespace
}  // namespace pbx::totp

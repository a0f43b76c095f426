// Hostile review of the security events (issue 17): what a remote password holder (user name,
// PAM_RHOST), a local user or a racing writer can do to the event log, its readers and the
// state's last-failure line. Each test failed before the fix it names, or guards a property the
// review checked.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pbx/totp/events.hpp"
#include "pbx/totp/state.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::has_errc;
using testing::is_ok;
using testing::read_file;
using testing::write_file;

Event review_event(std::string user, std::int64_t t = 1764900727) {
  Event e;
  e.time = t;
  e.host = "pbx1";
  e.service = "sshd";
  e.user = std::move(user);
  e.rhost = "203.0.113.9";
  e.event = "locked-out";
  e.detail = "5 failures";
  return e;
}

// No byte a terminal acts on: C0 controls, DEL, and C1 controls (U+0080..U+009F, UTF-8 C2 80..9F).
bool terminal_safe(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return false;
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9F) {
      return false;
    }
  }
  return true;
}

// Finding 1 (user name and PAM_RHOST are the remote attacker's text): an escape sequence in
// them must not reach `pbx-mfa events`, the notify command or a mail/chat message built from
// the JSON. Before the fix the JSON kept them (escaped) and every reader got them back raw.
TEST(EventReview, ControlCharactersNeverComeBackFromTheLog) {
  Event e = review_event("\x1b]0;pwned\x07\x1b[2Jroot");
  e.rhost =
      "evil\r\n\x1b[1A\x9b"
      "31m";
  e.detail = std::string("device \xc2\x9b") + "2J" + "\x7f";
  std::string line = event_to_json(e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto back = event_from_json(line);
  ASSERT_TRUE(is_ok(back));
  for (const std::string* f : {&back->user, &back->rhost, &back->detail}) {
    EXPECT_TRUE(terminal_safe(*f)) << *f;
  }
  EXPECT_EQ(back->user, "?]0;pwned??[2Jroot");
  // A line written by someone else (the database, an older writer) is cleaned on reading too.
  auto forged = event_from_json(
      R"({"time":"2025-12-05T02:12:07Z","host":"h","service":"s","user":"a\u001b[2Jb",)"
      R"("rhost":"","event":"reset","actor":"\u009b1m","detail":""})");
  ASSERT_TRUE(is_ok(forged));
  EXPECT_TRUE(terminal_safe(forged->user));
  EXPECT_TRUE(terminal_safe(forged->actor));
}

// Finding 2b: the cut to kMaxEventField came before the U+FFFD replacement (three bytes for
// one), and the reader refuses a field over the limit: an rhost (or user name) of 86 or more
// bytes that are not UTF-8 made the whole event unreadable, a locked-out alert hidden by the
// attacker who caused it. Random bytes in every field: the line always reads back, within the
// limits, as UTF-8 without control characters.
TEST(EventReview, AnyBytesInAnyFieldReadBackWithinTheLimits) {
  Event e = review_event("alice");
  e.rhost = std::string(100, '\xff');
  auto back = event_from_json(event_to_json(e));
  ASSERT_TRUE(is_ok(back)) << back.error().message;
  EXPECT_EQ(back->user, "alice");
  std::uint32_t seed = 12345;
  auto next_byte = [&] {
    seed = seed * 1103515245 + 12345;
    return static_cast<char>((seed >> 16) & 0xFF);
  };
  for (int round = 0; round < 500; ++round) {
    Event r;
    r.time = 1764900727;
    for (std::string* f : {&r.host, &r.service, &r.user, &r.rhost, &r.event, &r.actor, &r.detail}) {
      f->clear();
      const int len = static_cast<int>(static_cast<unsigned char>(next_byte())) * 5;
      for (int i = 0; i < len; ++i) f->push_back(next_byte());
    }
    const std::string line = event_to_json(r);
    ASSERT_EQ(line.find('\n'), std::string::npos);
    auto got = event_from_json(line);
    ASSERT_TRUE(is_ok(got)) << "round " << round;
    for (const std::string* f :
         {&got->host, &got->service, &got->user, &got->rhost, &got->event, &got->actor}) {
      EXPECT_LE(f->size(), kMaxEventField);
      EXPECT_TRUE(terminal_safe(*f));
    }
    EXPECT_LE(got->detail.size(), kMaxEventDetail);
    EXPECT_TRUE(terminal_safe(got->detail));
    // What the log keeps is what it gives back: writing it again changes nothing.
    EXPECT_EQ(event_to_json(*got), line);
  }
}

class EventReviewLog : public testing::StoreFixture {
 protected:
  std::string log_path() const { return state_dir_ + "/.events.log"; }

  // Every event in the two files, oldest first, parsed straight from disk.
  std::vector<std::string> users_on_disk() const {
    std::vector<std::string> users;
    for (const std::string& p : {log_path() + ".1", log_path()}) {
      std::istringstream in(read_file(p).value_or(""));
      for (std::string line; std::getline(in, line);) {
        if (auto e = event_from_json(line)) users.push_back(e->user);
      }
    }
    return users;
  }

  void append_users(int from, int count) {
    for (int i = from; i < from + count; ++i) {
      Event e = review_event("user" + std::to_string(i), 1000 + i);
      e.detail = std::string(300, 'd');
      ASSERT_TRUE(is_ok(store().append_event(e)));
    }
  }
};

std::vector<std::string> users_of(const EventPage& page) {
  std::vector<std::string> users;
  for (const Event& e : page.events) users.push_back(e.user);
  return users;
}

// Finding 2: the reader skipped lines over 16 KiB as garbage, but the writer could make longer
// ones (a control byte is escaped as \u00XX, six bytes): a recorded event nobody could read.
TEST_F(EventReviewLog, TheLongestLineTheWriterMakesIsReadBack) {
  for (char filler : {'\x01', '"', '\xff'}) {
    ASSERT_EQ(::unlink(log_path().c_str()) == 0 || errno == ENOENT, true);
    Event e;
    e.time = 1764900727;
    for (std::string* f : {&e.host, &e.service, &e.user, &e.rhost, &e.event, &e.actor}) {
      *f = std::string(1000, filler);
    }
    e.detail = std::string(5000, filler);
    ASSERT_TRUE(is_ok(store().append_event(e)));
    auto page = store().read_events(EventQuery{}, EventCursor{});
    ASSERT_TRUE(is_ok(page));
    EXPECT_EQ(page->events.size(), 1u) << "filler " << int(filler);
    EXPECT_EQ(page->skipped, 0) << "filler " << int(filler);
  }
}

// Finding 3: a follower that fell two rotations behind (more than events_max_size of events
// between two reads, e.g. a burst, or a notifier that was stopped) skipped all of
// .events.log.1 though every event in it was newer than its cursor; and ext4 reuses the freed
// inode for the new .events.log, so the cursor's inode number alone could name a new file.
TEST_F(EventReviewLog, AFollowerTwoRotationsBehindReadsEverythingStillOnDisk) {
  config_.events_max_size = 64 * 1024;
  reopen();
  append_users(0, 10);
  auto first = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(first));
  ASSERT_EQ(first->events.size(), 10u);
  append_users(10, 320);  // about 120 lines a file: two rotations and then some
  auto on_disk = users_on_disk();
  ASSERT_LT(on_disk.size(), 320u) << "the test needs the cursor's file rotated away";
  auto page = store().read_events(EventQuery{}, first->next);
  ASSERT_TRUE(is_ok(page));
  EXPECT_EQ(users_of(*page), on_disk);
  EXPECT_EQ(page->skipped, 0);
}

// Finding 3 again, the common case: a follower started on an empty (or missing) log got the
// cursor "started, no file"; if the log then filled and rotated before its next read, the whole
// older file was skipped.
TEST_F(EventReviewLog, AFollowerStartedOnAnEmptyLogReadsTheRotatedFile) {
  config_.events_max_size = 64 * 1024;
  reopen();
  auto first = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(first));
  ASSERT_TRUE(first->events.empty());
  append_users(0, 180);  // one rotation
  struct stat st {};
  ASSERT_EQ(::lstat((log_path() + ".1").c_str(), &st), 0);
  auto page = store().read_events(EventQuery{}, first->next);
  ASSERT_TRUE(is_ok(page));
  EXPECT_EQ(page->events.size(), 180u);
  EXPECT_EQ(users_of(*page), users_on_disk());
}

// Finding 3, a reader between rename and re-create: it saw only .events.log.1; its cursor must
// point into that file, not at "no file" (which made the next read skip it or re-read it).
TEST_F(EventReviewLog, AReaderThatFindsOnlyTheRotatedFileContinuesFromIt) {
  append_users(0, 3);
  ASSERT_EQ(::rename(log_path().c_str(), (log_path() + ".1").c_str()), 0);
  auto first = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(first));
  ASSERT_EQ(first->events.size(), 3u);
  append_users(3, 2);
  auto next = store().read_events(EventQuery{}, first->next);
  ASSERT_TRUE(is_ok(next));
  EXPECT_EQ(users_of(*next), (std::vector<std::string>{"user3", "user4"}));
}

// Finding 4: a line torn by a crash or a full disk (write() cut short) was glued to the next
// event's line: that event, a whole valid one, was skipped as garbage, by `pbx-mfa events` and
// by a follower waiting at the torn line.
TEST_F(EventReviewLog, ATornLineDoesNotSwallowTheNextEvent) {
  append_users(0, 1);
  auto first = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(first));
  const std::string torn = event_to_json(review_event("torn")).substr(0, 40);
  ASSERT_TRUE(write_file(log_path(), *read_file(log_path()) + torn, 0600, 0, 0));
  append_users(1, 1);
  auto all = store().read_events(EventQuery{}, EventCursor{});
  ASSERT_TRUE(is_ok(all));
  EXPECT_EQ(users_of(*all), (std::vector<std::string>{"user0", "user1"}));
  EXPECT_EQ(all->skipped, 1);
  auto follower = store().read_events(EventQuery{}, first->next);
  ASSERT_TRUE(is_ok(follower));
  EXPECT_EQ(users_of(*follower), (std::vector<std::string>{"user1"}));
}

// Concurrent writers and a follower across many rotations: no torn or glued line, no event
// read twice, none lost, each writer's events in its order, and the files stay bounded. The
// writers meet the follower after each batch (less than a file's worth of lines), so that a
// follower the scheduler starves cannot fall two rotations behind (that loses events by design:
// the log keeps two files); within a batch it reads while they write.
TEST_F(EventReviewLog, ConcurrentWritersAndAFollowerAcrossRotations) {
  config_.events_max_size = 64 * 1024;
  reopen();
  constexpr int kWriters = 4;
  constexpr int kBatches = 8;
  constexpr int kBatch = 20;  // 4 x 20 lines of ~560 bytes: less than 64 KiB
  struct Kid {
    pid_t pid = -1;
    int ready = -1;  // the kid writes a byte after each batch
    int go = -1;     // and reads one before the next
  };
  std::vector<Kid> kids;
  for (int w = 0; w < kWriters; ++w) {
    int ready[2];
    int go[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(go), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto st = open_store(config_);
      if (!st) ::_exit(2);
      char byte = 0;
      for (int b = 0; b < kBatches; ++b) {
        for (int i = b * kBatch; i < (b + 1) * kBatch; ++i) {
          Event e = review_event("w" + std::to_string(w) + "-" + std::to_string(i), 1000 + i);
          e.detail = std::string(300, 'd');
          if (!(*st)->append_event(e)) ::_exit(3);
        }
        if (::write(ready[1], "r", 1) != 1 || ::read(go[0], &byte, 1) != 1) ::_exit(4);
      }
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(go[0]);
    kids.push_back(Kid{pid, ready[0], go[1]});
  }
  std::vector<std::string> seen;
  int skipped = 0;
  EventCursor cursor;
  auto poll_once = [&] {
    auto page = store().read_events(EventQuery{}, cursor);
    ASSERT_TRUE(is_ok(page));
    for (const Event& e : page->events) seen.push_back(e.user);
    skipped += page->skipped;
    cursor = page->next;
  };
  for (int b = 0; b < kBatches; ++b) {
    std::vector<bool> ready(kids.size(), false);
    std::size_t done = 0;
    while (done < kids.size()) {
      poll_once();
      for (std::size_t k = 0; k < kids.size(); ++k) {
        if (ready[k]) continue;
        pollfd p{kids[k].ready, POLLIN, 0};
        if (::poll(&p, 1, 0) == 1) {
          char byte = 0;
          ASSERT_EQ(::read(kids[k].ready, &byte, 1), 1) << "writer " << k << " failed";
          ready[k] = true;
          ++done;
        }
      }
    }
    poll_once();
    for (const Kid& k : kids) ASSERT_EQ(::write(k.go, "g", 1), 1);
  }
  for (const Kid& k : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(k.pid, &status, 0), k.pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ::close(k.ready);
    ::close(k.go);
  }
  poll_once();
  EXPECT_EQ(skipped, 0);
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "an event was read twice";
  EXPECT_EQ(seen.size(), std::size_t{kWriters * kBatches * kBatch}) << "events lost";
  for (int w = 0; w < kWriters; ++w) {
    int last = -1;
    const std::string prefix = "w" + std::to_string(w) + "-";
    for (const std::string& u : seen) {
      if (u.rfind(prefix, 0) != 0) continue;
      int i = std::stoi(u.substr(prefix.size()));
      EXPECT_GT(i, last) << u;
      last = i;
    }
  }
  for (const std::string& p : {log_path(), log_path() + ".1"}) {
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0);
    // One line per other writer may land after the size check: bounded, never doubling.
    EXPECT_LE(st.st_size, config_.events_max_size + kWriters * 1024) << p;
  }
}

// Nothing the writer does leaves state_dir or follows a link: a symlink at .events.log.1 is
// replaced by the rotation (its target untouched), one at .events.lock is refused.
TEST_F(EventReviewLog, RotationFollowsNoLinkAndWritesOnlyItsFiles) {
  config_.events_max_size = 64 * 1024;
  reopen();
  const std::string target = tmp_ / "target";
  ASSERT_TRUE(write_file(target, "keep\n", 0600, 0, 0));
  ASSERT_EQ(::symlink(target.c_str(), (log_path() + ".1").c_str()), 0);
  append_users(0, 180);
  EXPECT_EQ(*read_file(target), "keep\n");
  struct stat st {};
  ASSERT_EQ(::lstat((log_path() + ".1").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir_)) {
    names.insert(entry.path().filename().string());
  }
  EXPECT_EQ(names, (std::set<std::string>{".events.log", ".events.log.1", ".events.lock"}));

  ASSERT_EQ(::unlink((state_dir_ + "/.events.lock").c_str()), 0);
  ASSERT_EQ(::symlink(target.c_str(), (state_dir_ + "/.events.lock").c_str()), 0);
  Status st_rot = Ok{};
  for (int i = 0; i < 200 && st_rot.ok(); ++i) {
    Event e = review_event("more" + std::to_string(i));
    e.detail = std::string(300, 'd');
    st_rot = store().append_event(e);
  }
  EXPECT_FALSE(st_rot.ok()) << "the rotation must refuse a symlinked lock file";
  EXPECT_EQ(*read_file(target), "keep\n");
}

// A failed event write decides nothing: the library's verifier never touches the event log,
// and append_event reports an unusable log as an error (no exception).
TEST_F(EventReviewLog, AnUnusableEventLogChangesNoLoginOutcome) {
  ASSERT_EQ(::mkdir(log_path().c_str(), 0700), 0);
  Status st = Ok{};
  EXPECT_NO_THROW(st = store().append_event(review_event("alice")));
  EXPECT_FALSE(st.ok());
  Enrollment e = enroll(alice_);
  FixedClock clock(testing::kT0);
  Verifier v(config_, store(), clock);
  auto bad = v.verify(alice_, "000000", "203.0.113.5");
  ASSERT_TRUE(is_ok(bad));
  EXPECT_EQ(bad->verdict, Verdict::kRejected);
  auto good = v.verify(alice_, testing::code_for_step(e, testing::kT0 / 30), "203.0.113.5");
  ASSERT_TRUE(is_ok(good));
  EXPECT_EQ(good->verdict, Verdict::kAccepted);
  EXPECT_EQ(good->failures_before, 1);
}

// The remote attacker's PAM_RHOST in the state's last-failure line: whatever its bytes, the
// state stays readable (no login denied as corrupt), has one such line and no planted key.
TEST_F(EventReviewLog, AHostileRhostCannotBreakOrExtendTheState) {
  config_.max_failures = 1000;
  reopen();
  Enrollment e = enroll(alice_);
  FixedClock clock(testing::kT0);
  Verifier v(config_, store(), clock);
  const std::vector<std::string> hosts = {
      "198.51.100.1\nfailures 0\nlocked-until 0\nend",
      std::string(5000, 'h'),
      std::string("a\0b", 3),
      "   ",
      "\xff\xfe\x80",
      "#comment",
      "x\tend",
  };
  for (const std::string& host : hosts) {
    auto r = v.verify(alice_, "000000", host);
    ASSERT_TRUE(is_ok(r));
    EXPECT_EQ(r->verdict, Verdict::kRejected);
    const std::string text = stored_state_text(alice_);
    auto parsed = parse_state(text);
    ASSERT_TRUE(is_ok(parsed)) << "state unreadable after rhost " << ::testing::PrintToString(host);
    EXPECT_LE(parsed->last_failure_rhost.size(), kMaxRhostText);
    EXPECT_TRUE(printable_rhost(parsed->last_failure_rhost));
    std::size_t lines = 0;
    for (std::size_t at = text.find("\nlast-failure "); at != std::string::npos;
         at = text.find("\nlast-failure ", at + 1)) {
      ++lines;
    }
    EXPECT_EQ(lines, 1u);
    EXPECT_EQ(text.find("\nfailures 0\n"), std::string::npos);
  }
  auto good = v.verify(alice_, testing::code_for_step(e, testing::kT0 / 30), "");
  ASSERT_TRUE(is_ok(good));
  EXPECT_EQ(good->verdict, Verdict::kAccepted);
  EXPECT_EQ(good->failures_before, static_cast<int>(hosts.size()));
}

// For the PAM part: failures counted by a release before version 3 (or a state upgraded with
// failures pending) carry no time or host: the outcome says how many, with last_failure 0 and
// no host. The notice must not print "at 1970-01-01" or "from " then.
TEST_F(EventReviewLog, FailuresFromAVersionTwoStateComeWithoutTimeOrHost) {
  Enrollment e = enroll(alice_);
  ASSERT_TRUE(write_file(state_file(alice_),
                         "version 2\nid " + std::string(testing::kIdA) +
                             "\nfailures 2\nlocked-until 0\nlast-success 0\nend\n",
                         0600, 0, 0));
  FixedClock clock(testing::kT0);
  Verifier v(config_, store(), clock);
  auto good = v.verify(alice_, testing::code_for_step(e, testing::kT0 / 30), "203.0.113.5");
  ASSERT_TRUE(is_ok(good));
  ASSERT_EQ(good->verdict, Verdict::kAccepted);
  EXPECT_EQ(good->failures_before, 2);
  EXPECT_EQ(good->last_failure, 0);
  EXPECT_EQ(good->last_failure_rhost, "");
}

// Finding 5 (minor): a PAM_RHOST of "-" was kept as "-", which the state reads as a local login:
// the notice then hid that the last failure came from a remote host.
TEST(StateReview, ARemoteHostNamedDashIsNotALocalLogin) {
  EXPECT_NE(rhost_text("-"), "-");
  UserState s;
  s.enrollment_id = std::string(testing::kIdA);
  s.failures = 1;
  s.last_failure = 1764900727;
  s.last_failure_rhost = rhost_text("-");
  auto back = parse_state(serialize_state(s));
  ASSERT_TRUE(is_ok(back));
  EXPECT_FALSE(back->last_failure_rhost.empty());
}

}  // namespace
}  // namespace pbx::totp

// Issue 17 through the flow (FakeContext): the security events a login records in the store's
// event log (state_dir/.events.log), and the notice of failed attempts since the last login.
#include <security/pam_appl.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "flow_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/hotp.hpp"
#include "pg_test_db.hpp"

namespace pbx::pam::testing {
namespace {

constexpr const char* kHost = "203.0.113.5";
constexpr const char* kOtherHost = "198.51.100.7";

// The base32 key an enrollment at login showed ("\nKey: ABCD EFGH ...\n"), spaces removed.
std::string shown_key(const FakeContext& ctx) {
  for (const auto& m : ctx.messages) {
    std::size_t at = m.text.find("\nKey: ");
    if (at == std::string::npos) continue;
    std::size_t end = m.text.find('\n', at + 6);
    std::string key;
    for (char c : m.text.substr(at + 6, end - at - 6)) {
      if (c != ' ') key.push_back(c);
    }
    return key;
  }
  return {};
}

std::optional<std::string> code_for_key(const std::string& base32_key, std::int64_t now) {
  auto key = totp::base32_decode(base32_key);
  if (!key) return std::nullopt;
  auto code = totp::hotp(*key, totp::Algorithm::kSha1,
                         static_cast<std::uint64_t>(totp::time_step(now, 30)), 6);
  if (!code) return std::nullopt;
  return totp::format_code(*code, 6);
}

// Sets TZ for one test and puts the old value back.
class ScopedTz {
 public:
  explicit ScopedTz(const char* tz) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~ScopedTz() {
    if (old_) {
      ::setenv("TZ", old_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  ScopedTz(const ScopedTz&) = delete;
  ScopedTz& operator=(const ScopedTz&) = delete;

 private:
  std::optional<std::string> old_;
};

class EventsFlowTest : public FlowTest {
 protected:
  std::string event_log() const { return files_.state_dir() + "/.events.log"; }
  bool event_log_exists() const {
    struct stat st {};
    return ::lstat(event_log().c_str(), &st) == 0;
  }
  std::string event_text() const {
    std::ifstream in(event_log());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Every line of the event log as an event (a line that is not one fails the test).
  std::vector<totp::Event> events() const {
    std::vector<totp::Event> out;
    std::istringstream in(event_text());
    std::string line;
    while (std::getline(in, line)) {
      auto e = totp::event_from_json(line);
      EXPECT_TRUE(e.ok()) << "not an event: " << line;
      if (e.ok()) out.push_back(*e);
    }
    return out;
  }
  // Nothing the log must never hold is in the event log either (and the test's own strings:
  // the enrollment's key, recovery codes, temp and break-glass codes, what was typed).
  void expect_no_secret_in_event_log(const std::vector<std::string>& more = {}) {
    const std::string text = event_text();
    for (const auto& s : secrets_) {
      EXPECT_EQ(text.find(s), std::string::npos) << "the event log holds '" << s << "'";
    }
    for (const auto& s : more) {
      ASSERT_GE(s.size(), 6u);
      EXPECT_EQ(text.find(s), std::string::npos) << "the event log holds '" << s << "'";
    }
  }
  void expect_event(const totp::Event& e, std::string_view kind, std::string_view rhost,
                    std::string_view detail) {
    EXPECT_EQ(e.event, kind);
    EXPECT_EQ(e.service, "pbx-test");
    EXPECT_EQ(e.user, kUser);
    EXPECT_EQ(e.rhost, rhost);
    EXPECT_EQ(e.actor, "");
    EXPECT_EQ(e.detail, detail);
    EXPECT_EQ(e.time, clock_.now());
    EXPECT_FALSE(e.host.empty());
  }
  // The database cannot be reached (a refused port): break-glass codes of this host decide.
  void unreachable_database() {
    files_.write_config(
        "store = postgresql\npg_conninfo = host=127.0.0.1 port=" +
        std::to_string(totp::testing::refused_port()) +
        " user=postgres\npg_timeout_ms = 800\npg_plugin = " + totp::testing::pg_plugin_path() +
        "\nfleet_key = " + files_.root() + "/fleet.key\n");
  }
  std::string break_glass_code() {
    auto codes = totp::make_break_glass_codes(files_.store_config(), 1, kCheapKdf);
    if (!codes.ok()) throw std::runtime_error(codes.error().message);
    std::string code((*codes)[0].view());
    never_log(code);
    return code;
  }
};

// ---------------------------------------------------------------------------------------------
// Each login event kind: once, with its fields, and no secret.

TEST_F(EventsFlowTest, ARecoveryCodeLoginRecordsRecoveryCodeAccepted) {
  Enrolled e = enroll(kUser, 2);
  never_log(e.recovery_codes[1]);
  FakeContext ctx = with_answers({e.recovery_codes[0]});
  ctx.remote_host = kHost;
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  expect_event(got[0], "recovery-code-accepted", kHost, "recovery codes left 1");
  expect_no_secret_in_event_log();
  struct stat st {};
  ASSERT_EQ(::stat(event_log().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(EventsFlowTest, ATempCodeLoginRecordsTempCodeAccepted) {
  enroll();
  std::string code = issue_temp_code(kUser, 2);
  FakeContext ctx = with_answers({code});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  expect_event(got[0], "temp-code-accepted", "", "temp code issued by pbxhelp, 1 use left");
  expect_no_secret_in_event_log({code});
}

TEST_F(EventsFlowTest, AnEnrollmentAtLoginRecordsEnrolledAtLogin) {
  files_.write_config("enroll_at_login = yes\nrecovery_codes = 1\nissuer = pbx-test\n");
  opts_.recovery_kdf = kCheapKdf;
  std::int64_t now = clock_.now();
  std::vector<std::string> typed;
  FakeContext ctx;
  ctx.user_name = kUser;
  ctx.remote_host = kHost;
  ctx.responder = [&typed, now](const FakeContext& c,
                                std::string_view prompt) -> std::optional<std::string> {
    if (prompt != "Code from the app: ") return std::string();  // "Press Enter ..."
    auto code = code_for_key(shown_key(c), now);
    if (code) typed.push_back(*code);
    return code;
  };
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "enrolled-at-login");
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  expect_event(got[0], "enrolled-at-login", kHost, "");
  const std::string key = shown_key(ctx);
  ASSERT_FALSE(key.empty());
  ASSERT_EQ(typed.size(), 1u);
  std::vector<std::string> shown{key, typed[0]};
  // The recovery code shown ("  xxxx-xxxx-...").
  for (const auto& m : ctx.messages) {
    std::size_t at = m.text.find("\n  ");
    if (at != std::string::npos)
      shown.push_back(m.text.substr(at + 3, m.text.find('\n', at + 3) - at - 3));
  }
  ASSERT_EQ(shown.size(), 3u);
  expect_no_secret_in_event_log(shown);
}

TEST_F(EventsFlowTest, AnEnrollmentWithATempCodeRecordsOnlyEnrolledAtLogin) {
  files_.write_config(
      "enroll_at_login = with-code\nrecovery_codes = 0\nissuer = pbx-test\nrequire = all\n");
  std::string temp = issue_temp_code();
  std::int64_t now = clock_.now();
  FakeContext ctx;
  ctx.user_name = kUser;
  ctx.responder = [temp, now](const FakeContext& c,
                              std::string_view prompt) -> std::optional<std::string> {
    if (prompt == "Security code: ") return temp;
    if (prompt != "Code from the app: ") return std::string();
    return code_for_key(shown_key(c), now);
  };
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  expect_event(got[0], "enrolled-at-login", "", "with a temp code issued by pbxhelp, 0 uses left");
  expect_no_secret_in_event_log({temp, shown_key(ctx)});
}

TEST_F(EventsFlowTest, ABreakGlassLoginRecordsBreakGlassAccepted) {
  unreachable_database();
  std::string code = break_glass_code();
  FakeContext ctx = with_answers({code});
  ctx.remote_host = kHost;
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "break-glass-accepted");
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  EXPECT_EQ(got[0].event, "break-glass-accepted");
  EXPECT_EQ(got[0].user, kUser);
  EXPECT_EQ(got[0].rhost, kHost);
  EXPECT_EQ(got[0].service, "pbx-test");
  // The log line's words: the database error, then what happened.
  EXPECT_NE(got[0].detail.find("; break-glass code used, 0 left"), std::string::npos)
      << got[0].detail;
  EXPECT_NE(logs_.find("(" + got[0].detail + ")"), std::string::npos) << logs_;
  expect_no_secret_in_event_log({code});
}

TEST_F(EventsFlowTest, OnlyTheWrongAnswerThatLocksBreakGlassRecordsBreakGlassLocked) {
  unreachable_database();
  std::string code = break_glass_code();
  for (int i = 1; i <= totp::kBreakGlassMaxFailures; ++i) {
    FakeContext wrong = with_answers({"abcd-efgh-jkmn-pqrs"});
    EXPECT_EQ(run(wrong), PAM_AUTHINFO_UNAVAIL);
    EXPECT_EQ(outcome_of(wrong), "break-glass-wrong");
    if (i < totp::kBreakGlassMaxFailures) {
      EXPECT_FALSE(event_log_exists()) << "after wrong answer " << i;
    }
  }
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  expect_event(got[0], "break-glass-locked", "", got[0].detail);
  EXPECT_NE(got[0].detail.find("break-glass now locked on this host"), std::string::npos)
      << got[0].detail;
  // Locked now: the right code is not even checked, and nothing more is recorded.
  FakeContext locked = with_answers({code});
  EXPECT_EQ(run(locked), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(locked), "break-glass-locked");
  EXPECT_EQ(events().size(), 1u) << event_text();
  expect_no_secret_in_event_log({code});
}

// ---------------------------------------------------------------------------------------------
// locked-out: the counted failure that locks, once; not the attempts while locked.

TEST_F(EventsFlowTest, TheWrongCodeThatLocksRecordsLockedOutOnceAndLockedAttemptsNothing) {
  files_.write_config("max_failures = 3\nlockout = 60\n");
  Enrolled e = enroll();
  std::vector<std::string> typed;
  for (int i = 1; i <= 3; ++i) {
    std::string wrong = e.wrong_code_at(clock_.now());
    typed.push_back(wrong);
    FakeContext ctx = with_answers({wrong});
    ctx.remote_host = kOtherHost;
    EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
    EXPECT_EQ(outcome_of(ctx), "wrong-code");
    if (i < 3) EXPECT_FALSE(event_log_exists()) << "after wrong code " << i;
  }
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  expect_event(got[0], "locked-out", kOtherHost, "failures 3, now locked out");
  // While locked: outcome locked-out, but no event.
  for (int i = 0; i < 3; ++i) {
    clock_.advance(5);
    FakeContext again = with_answers({e.code_at(clock_.now())});
    again.remote_host = kOtherHost;
    EXPECT_EQ(run(again), PAM_AUTH_ERR);
    EXPECT_EQ(outcome_of(again), "locked-out");
  }
  EXPECT_EQ(events().size(), 1u) << event_text();
  expect_no_secret_in_event_log(typed);
}

TEST_F(EventsFlowTest, AReplayedCodeThatLocksRecordsLockedOut) {
  files_.write_config("max_failures = 1\nlockout = 60\n");
  Enrolled e = enroll();
  FakeContext first = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(first), PAM_SUCCESS);
  EXPECT_FALSE(event_log_exists());
  clock_.advance(10);
  FakeContext replay = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(replay), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(replay), "replayed-code");
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  expect_event(got[0], "locked-out", "", "failures 1, now locked out");
  expect_no_secret_in_event_log({e.code_at(kT0)});
}

TEST_F(EventsFlowTest, AWrongAnswerOfAnUnenrolledUserThatLocksRecordsLockedOut) {
  // enroll_at_login = with-code: the verifier checks the answer as a temp code
  // (verify_unenrolled) and counts a wrong one.
  files_.write_config(
      "enroll_at_login = with-code\nrequire = all\nmax_failures = 1\nlockout = 60\n");
  std::string temp = issue_temp_code();
  FakeContext ctx = with_answers({"abcd-efgh-jkmn-pqrs"});
  ctx.remote_host = kHost;
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text() << logs_;
  expect_event(got[0], "locked-out", kHost, "failures 1, now locked out");
  FakeContext locked = with_answers({temp});
  EXPECT_EQ(run(locked), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(locked), "locked-out");
  EXPECT_EQ(events().size(), 1u) << event_text();
  expect_no_secret_in_event_log({temp});
}

// ---------------------------------------------------------------------------------------------
// The common path records nothing.

TEST_F(EventsFlowTest, AcceptedAndWrongCodesThatDoNotLockLeaveNoEventLog) {
  Enrolled e = enroll();
  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(wrong), PAM_AUTH_ERR);
  FakeContext right = with_answers({e.code_at(kT0)});
  right.remote_host = kHost;
  EXPECT_EQ(run(right), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(right), "accepted");
  EXPECT_FALSE(event_log_exists());
  EXPECT_FALSE(std::filesystem::exists(files_.state_dir() + "/.events.lock"));
}

// ---------------------------------------------------------------------------------------------
// An event log that cannot be written changes no outcome.

TEST_F(EventsFlowTest, AnUnwritableEventLogLeavesARecoveryLoginSuccessfulAndLogsAnError) {
  Enrolled e = enroll(kUser, 2);
  ASSERT_EQ(::mkdir(event_log().c_str(), 0700), 0);
  FakeContext ctx = with_answers({e.recovery_codes[0]});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  ASSERT_EQ(ctx.logs.size(), 2u) << logs_;
  EXPECT_NE(ctx.logs[0].text.find(" outcome=recovery-code-accepted "), std::string::npos)
      << ctx.logs[0].text;
  EXPECT_EQ(ctx.logs[1].level, LogLevel::kError);
  EXPECT_EQ(ctx.logs[1].text.rfind("event log: ", 0), 0u) << ctx.logs[1].text;
  EXPECT_NE(ctx.logs[1].text.find("event=recovery-code-accepted"), std::string::npos)
      << ctx.logs[1].text;
  // The code is spent all the same.
  FakeContext again = with_answers({e.recovery_codes[0]});
  EXPECT_EQ(run(again), PAM_AUTH_ERR);
}

// ---------------------------------------------------------------------------------------------
// The notice: failed attempts since the last login.

TEST_F(EventsFlowTest, ALoginAfterFailuresTellsHowManyFromWhereAndWhen) {
  ScopedTz utc("UTC");
  Enrolled e = enroll();
  FakeContext w1 = with_answers({e.wrong_code_at(kT0)});
  w1.remote_host = kHost;
  EXPECT_EQ(run(w1), PAM_AUTH_ERR);
  clock_.advance(5);
  FakeContext w2 = with_answers({e.wrong_code_at(kT0)});
  w2.remote_host = kOtherHost;
  EXPECT_EQ(run(w2), PAM_AUTH_ERR);
  clock_.advance(60);
  FakeContext ok = with_answers({e.code_at(clock_.now())});
  EXPECT_EQ(run(ok), PAM_SUCCESS);
  ASSERT_EQ(ok.messages.size(), 1u);
  EXPECT_EQ(ok.messages[0].text,
            "2 failed attempts since your last login, the last from 198.51.100.7 at "
            "2023-11-14 22:13:35 UTC.");
  EXPECT_FALSE(ok.messages[0].error);
  // Told once: the count starts again.
  clock_.advance(30);
  FakeContext next = with_answers({e.code_at(clock_.now())});
  EXPECT_EQ(run(next), PAM_SUCCESS);
  EXPECT_TRUE(next.messages.empty());
  EXPECT_FALSE(event_log_exists());
}

TEST_F(EventsFlowTest, TheNoticeSaysOneLocalFailureInTheLocalZone) {
  ScopedTz ny("America/New_York");
  Enrolled e = enroll();
  FakeContext w1 = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(w1), PAM_AUTH_ERR);
  clock_.advance(40);
  FakeContext ok = with_answers({e.code_at(clock_.now())});
  ok.remote_host = kHost;
  EXPECT_EQ(run(ok), PAM_SUCCESS);
  ASSERT_EQ(ok.messages.size(), 1u);
  EXPECT_EQ(ok.messages[0].text,
            "1 failed attempt since your last login, the last from this host (no remote "
            "address) at 2023-11-14 17:13:30 EST.");
}

TEST_F(EventsFlowTest, ATempCodeLoginAfterFailuresTellsThemToo) {
  ScopedTz utc("UTC");
  enroll();
  std::string temp = issue_temp_code();
  FakeContext w1 = with_answers({"abcd-efgh-jkmn-pqrs"});
  w1.remote_host = kHost;
  EXPECT_EQ(run(w1), PAM_AUTH_ERR);
  FakeContext ok = with_answers({temp});
  EXPECT_EQ(run(ok), PAM_SUCCESS);
  EXPECT_NE(ok.all_messages().find("1 failed attempt since your last login, the last from "
                                   "203.0.113.5 at 2023-11-14 22:13:30 UTC."),
            std::string::npos)
      << ok.all_messages();
}

TEST_F(EventsFlowTest, NoNoticeUnderPamSilentOrWithoutFailures) {
  Enrolled e = enroll();
  FakeContext first = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(first), PAM_SUCCESS);
  EXPECT_TRUE(first.messages.empty());
  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(wrong), PAM_AUTH_ERR);
  clock_.advance(30);
  opts_.silent = true;
  FakeContext silent = with_answers({e.code_at(clock_.now())});
  EXPECT_EQ(run(silent), PAM_SUCCESS);
  EXPECT_TRUE(silent.messages.empty());
}

TEST_F(EventsFlowTest, AHostileRemoteHostIsShownPrintable) {
  Enrolled e = enroll();
  FakeContext w1 = with_answers({e.wrong_code_at(kT0)});
  w1.remote_host = "evil\n\x1b[2Jhost";
  EXPECT_EQ(run(w1), PAM_AUTH_ERR);
  clock_.advance(30);
  FakeContext ok = with_answers({e.code_at(clock_.now())});
  EXPECT_EQ(run(ok), PAM_SUCCESS);
  ASSERT_EQ(ok.messages.size(), 1u);
  EXPECT_NE(ok.messages[0].text.find("the last from evil??[2Jhost at "), std::string::npos)
      << ok.messages[0].text;
}

}  // namespace
}  // namespace pbx::pam::testing

// Issue 17 through the built module and the real libpam stack: the login events in the event
// log (read back with Store::read_events), the failed-attempts notice (PAM_TEXT_INFO, not under
// PAM_SILENT), and nothing written on the common path.
#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "pam_stack.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/temp_code.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"
#include "pg_test_db.hpp"

namespace pbx::pam::testing {
namespace {

constexpr const char* kHost = "203.0.113.9";

std::string all_messages(const Conversation& conv) {
  std::string out;
  for (const auto& m : conv.messages) out += m.text + "\n";
  return out;
}

// The base32 key the setup message shows ("\nKey: ABCD EFGH ...\n"), spaces removed.
std::string shown_key(const Conversation& conv) {
  for (const auto& m : conv.messages) {
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

std::string app_code_now(const std::string& base32_key) {
  auto key = totp::base32_decode(base32_key);
  if (!key) return "000000";
  auto code = totp::hotp(*key, totp::Algorithm::kSha1,
                         static_cast<std::uint64_t>(totp::time_step(unix_now(), 30)), 6);
  return code ? totp::format_code(*code, 6) : "000000";
}

class EventsStackTest : public PamStackTest {
 protected:
  std::string event_log() const { return files_->state_dir() + "/.events.log"; }
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
  // Through the library, as pbx-mfa events reads them.
  std::vector<totp::Event> events() const {
    totp::Config config = files_->store_config();
    auto store = totp::open_store(config);
    if (!store) throw std::runtime_error(store.error().message);
    auto page = (*store)->read_events(totp::EventQuery{}, totp::EventCursor{});
    if (!page) throw std::runtime_error(page.error().message);
    EXPECT_EQ(page->skipped, 0);
    return page->events;
  }
  void expect_absent(const std::vector<std::string>& secrets) const {
    const std::string text = event_text();
    for (const auto& s : secrets) {
      ASSERT_GE(s.size(), 6u);
      EXPECT_EQ(text.find(s), std::string::npos) << "the event log holds '" << s << "'";
    }
  }
  LoginSpec from(std::vector<std::string> answers, const std::string& rhost = kHost,
                 int flags = 0) const {
    LoginSpec s = spec(std::move(answers));
    s.rhost = rhost;
    s.flags = flags;
    return s;
  }
  std::string issue_temp_code() {
    auto issued = totp::make_temp_code(unix_now(), 3600, 1, "pbxhelp", "lost phone", kCheapKdf);
    if (!issued) throw std::runtime_error(issued.error().message);
    totp::Config config = files_->store_config();
    auto store = totp::open_store(config);
    auto account = totp::lookup_user(kUser);
    if (!store || !account) throw std::runtime_error("cannot open the store");
    totp::SystemClock clock;
    totp::Verifier v(config, **store, clock);
    if (auto st = v.set_temp_code(*account, issued->record); !st) {
      throw std::runtime_error(st.error().message);
    }
    return std::string(issued->code.view());
  }
};

TEST_F(EventsStackTest, RecoveryAndTempCodeLoginsRecordOneEventEachWithTheirFields) {
  Enrolled e = files_->enroll(kUser, 2);
  EXPECT_EQ(login(from({e.recovery_codes[0]})), PAM_SUCCESS);
  std::string temp = issue_temp_code();
  EXPECT_EQ(login(from({temp}, "")), PAM_SUCCESS);
  auto got = events();
  ASSERT_EQ(got.size(), 2u) << event_text();
  EXPECT_EQ(got[0].event, "recovery-code-accepted");
  EXPECT_EQ(got[0].service, kService);
  EXPECT_EQ(got[0].user, kUser);
  EXPECT_EQ(got[0].rhost, kHost);
  EXPECT_EQ(got[0].actor, "");
  EXPECT_EQ(got[0].detail, "recovery codes left 1");
  EXPECT_LE(std::abs(got[0].time - unix_now()), 60);
  EXPECT_EQ(got[1].event, "temp-code-accepted");
  EXPECT_EQ(got[1].rhost, "");
  EXPECT_EQ(got[1].detail, "temp code issued by pbxhelp, 0 uses left");
  expect_absent({secret_base32(e.enrollment), e.recovery_codes[0], e.recovery_codes[1], temp});
  struct stat st {};
  ASSERT_EQ(::stat(event_log().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(EventsStackTest, TheLoginThatLocksRecordsLockedOutOnceAndLockedLoginsNothing) {
  files_->write_config("max_failures = 2\nlockout = 300\n");
  Enrolled e = files_->enroll(kUser, 0);
  std::string wrong = e.wrong_code_at(unix_now());
  EXPECT_EQ(login(from({wrong})), PAM_AUTH_ERR);
  EXPECT_FALSE(event_log_exists());
  Conversation second;
  EXPECT_EQ(login(from({wrong}), second), PAM_AUTH_ERR);
  EXPECT_NE(all_messages(second).find("Try again in"), std::string::npos);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(login(from({e.code_at(unix_now())})), PAM_AUTH_ERR);
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  EXPECT_EQ(got[0].event, "locked-out");
  EXPECT_EQ(got[0].user, kUser);
  EXPECT_EQ(got[0].rhost, kHost);
  EXPECT_EQ(got[0].detail, "failures 2, now locked out");
  expect_absent({secret_base32(e.enrollment), wrong, e.code_at(unix_now())});
}

TEST_F(EventsStackTest, AnEnrollmentAtLoginRecordsEnrolledAtLogin) {
  files_->write_config("enroll_at_login = yes\nrecovery_codes = 1\nissuer = pbx-test\n");
  std::string typed;
  Conversation conv;
  conv.responder = [&typed](const Conversation& c,
                            const std::string& prompt) -> std::optional<std::string> {
    if (prompt != "Code from the app: ") return std::string();  // "Press Enter ..."
    typed = app_code_now(shown_key(c));
    return typed;
  };
  EXPECT_EQ(login(from({}), conv), PAM_SUCCESS);
  auto got = events();
  ASSERT_EQ(got.size(), 1u) << event_text();
  EXPECT_EQ(got[0].event, "enrolled-at-login");
  EXPECT_EQ(got[0].user, kUser);
  EXPECT_EQ(got[0].rhost, kHost);
  EXPECT_EQ(got[0].service, kService);
  EXPECT_EQ(got[0].detail, "");
  std::vector<std::string> shown{shown_key(conv), typed};
  for (const auto& m : conv.messages) {
    std::size_t at = m.text.find("\n  ");
    if (at != std::string::npos) {
      shown.push_back(m.text.substr(at + 3, m.text.find('\n', at + 3) - at - 3));
    }
  }
  ASSERT_EQ(shown.size(), 3u);
  expect_absent(shown);
}

TEST_F(EventsStackTest, BreakGlassAcceptedAndLockedAreRecordedOnThisHost) {
  files_->write_config(
      "store = postgresql\npg_conninfo = host=127.0.0.1 port=" +
      std::to_string(totp::testing::refused_port()) +
      " user=postgres\npg_timeout_ms = 800\npg_plugin = " + totp::testing::pg_plugin_path() +
      "\nfleet_key = " + files_->root() + "/fleet.key\n");
  auto codes = totp::make_break_glass_codes(files_->store_config(), 2, kCheapKdf);
  ASSERT_TRUE(codes.ok()) << codes.error().message;
  const std::string used((*codes)[0].view());
  const std::string unused((*codes)[1].view());
  EXPECT_EQ(login(from({used})), PAM_SUCCESS);
  for (int i = 0; i < totp::kBreakGlassMaxFailures; ++i) {
    EXPECT_EQ(login(from({"abcd-efgh-jkmn-pqrs"})), PAM_AUTHINFO_UNAVAIL);
  }
  EXPECT_EQ(login(from({unused})), PAM_AUTHINFO_UNAVAIL);  // locked: not checked
  auto got = events();                                     // the file store reads this host's file
  ASSERT_EQ(got.size(), 2u) << event_text();
  EXPECT_EQ(got[0].event, "break-glass-accepted");
  EXPECT_EQ(got[0].rhost, kHost);
  EXPECT_NE(got[0].detail.find("break-glass code used, 1 left"), std::string::npos);
  EXPECT_EQ(got[1].event, "break-glass-locked");
  EXPECT_NE(got[1].detail.find("break-glass now locked on this host"), std::string::npos);
  expect_absent({used, unused});
}

TEST_F(EventsStackTest, AcceptedAndWrongCodesWriteNoEventLog) {
  Enrolled e = files_->enroll(kUser, 0);
  EXPECT_EQ(login(from({e.wrong_code_at(unix_now())})), PAM_AUTH_ERR);
  EXPECT_EQ(login(from({e.code_at(unix_now())})), PAM_SUCCESS);
  EXPECT_FALSE(event_log_exists());
  EXPECT_FALSE(std::filesystem::exists(files_->state_dir() + "/.events.lock"));
}

TEST_F(EventsStackTest, AnEventLogThatCannotBeWrittenLeavesARecoveryLoginSuccessful) {
  Enrolled e = files_->enroll(kUser, 1);
  ASSERT_EQ(::mkdir(event_log().c_str(), 0700), 0);
  EXPECT_EQ(login(from({e.recovery_codes[0]})), PAM_SUCCESS);
  struct stat st {};
  ASSERT_EQ(::lstat(event_log().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(EventsStackTest, ALoginAfterFailuresShowsTheNoticeButNotUnderPamSilent) {
  Enrolled e = files_->enroll(kUser, 1);
  EXPECT_EQ(login(from({e.wrong_code_at(unix_now())}, "198.51.100.23")), PAM_AUTH_ERR);
  EXPECT_EQ(login(from({e.wrong_code_at(unix_now())}, "198.51.100.24")), PAM_AUTH_ERR);
  Conversation told;
  EXPECT_EQ(login(from({e.code_at(unix_now())}), told), PAM_SUCCESS);
  ASSERT_EQ(told.messages.size(), 1u) << all_messages(told);
  EXPECT_EQ(told.messages[0].style, PAM_TEXT_INFO);
  const std::string& text = told.messages[0].text;
  EXPECT_EQ(
      text.rfind("2 failed attempts since your last login, the last from 198.51.100.24 at ", 0), 0u)
      << text;
  // "... at YYYY-MM-DD HH:MM:SS ZONE."
  EXPECT_EQ(text.back(), '.') << text;
  EXPECT_NE(text.find(" at 20"), std::string::npos) << text;
  EXPECT_FALSE(event_log_exists());
  // A failure, then PAM_SILENT: nothing is shown (the recovery code's own message neither).
  EXPECT_EQ(login(from({e.wrong_code_at(unix_now())})), PAM_AUTH_ERR);
  Conversation silent;
  EXPECT_EQ(login(from({e.recovery_codes[0]}, kHost, PAM_SILENT), silent), PAM_SUCCESS);
  EXPECT_TRUE(silent.messages.empty()) << all_messages(silent);
}

}  // namespace
}  // namespace pbx::pam::testing

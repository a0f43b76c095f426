// Every CLI action records its security event (issue 17, cli/events_record.hpp): one event of
// its kind with service "pbx-mfa", the target user, the actor and a detail in words; never a
// secret, a URI, a recovery code, a temp code or a break-glass code. A failed or refused action
// records nothing (but a refused helpdesk action records helpdesk-refused). The event log is
// read back through the library (Store::read_events) and is a root-only 0600 file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "enroll_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/events.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

class CliEventsTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the event log, secrets and state must be root-owned");
    CliTest::SetUp();
    // Through sudo, the helpdesk gate reads this as the system config.
    env_.system_config_path = config_path_;
  }

  // The events recorded since the last call (the library's reader, with its cursor). The log is
  // this host's file in state_dir whatever the store: read through a files store.
  std::vector<totp::Event> new_events() {
    totp::Config c = config();
    c.store = "files";
    auto s = totp::open_store(c);
    EXPECT_TRUE(s.ok());
    if (!s) return {};
    auto page = (*s)->read_events(totp::EventQuery{}, cursor_);
    EXPECT_TRUE(page.ok()) << (page ? "" : page.error().message);
    if (!page) return {};
    EXPECT_EQ(page->skipped, 0);
    cursor_ = page->next;
    return page->events;
  }

  // Runs `args` expecting exit 0 and exactly one new event of `kind` about `user`; returns it.
  totp::Event one_event(std::vector<std::string> args, const std::string& kind,
                        const std::string& user, const std::string& actor = "root") {
    clear();
    std::string call = ::testing::PrintToString(args);
    EXPECT_EQ(run_cli(std::move(args)), 0) << call << ": " << err();
    EXPECT_EQ(err().find("warning: the event was not recorded"), std::string::npos) << err();
    auto events = new_events();
    EXPECT_EQ(events.size(), 1U) << call;
    if (events.size() != 1) return {};
    const totp::Event& e = events.front();
    EXPECT_EQ(e.event, kind) << call;
    EXPECT_EQ(e.service, "pbx-mfa") << call;
    EXPECT_EQ(e.user, user) << call;
    EXPECT_EQ(e.actor, actor) << call;
    EXPECT_EQ(e.rhost, "") << call;
    EXPECT_EQ(e.time, kNow) << call;
    EXPECT_FALSE(e.host.empty()) << call;
    seen_.insert(e.event);
    return e;
  }

  // Runs `args` expecting `exit` (not 0) and no event.
  void no_event(std::vector<std::string> args, int exit) {
    clear();
    std::string call = ::testing::PrintToString(args);
    EXPECT_EQ(run_cli(std::move(args)), exit) << call << ": " << err();
    auto events = new_events();
    EXPECT_TRUE(events.empty()) << call << " recorded " << events.front().event;
  }

  nlohmann::json json_out() { return nlohmann::json::parse(out(), nullptr, false); }

  std::string log_path() const { return state_dir_ + "/.events.log"; }
  std::string log_text() const { return totp::testing::read_file(log_path()).value_or(""); }

  totp::EventCursor cursor_;
  std::set<std::string> seen_;
  std::vector<std::string> secrets_;  // everything secret a command printed
};

constexpr const char* kUriSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQMFRGGZDF";     // 25 bytes
constexpr const char* kUriSecret2 = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43UOV3HO6DZPI";  // 26 bytes

TEST_F(CliEventsTest, EveryCliActionRecordsItsKindOnceWithItsFieldsAndNoSecret) {
  // enroll (root, provisioning): the secret, URI and recovery codes stay out of the log.
  auto e = one_event({"enroll", "--user", "lp", "--no-confirm", "--json"}, "enrolled", "lp");
  EXPECT_EQ(e.detail, "via enroll, 2 recovery codes, not confirmed (--no-confirm)");
  auto j = json_out();
  secrets_.push_back(j.at("secret"));
  secrets_.push_back(j.at("otpauth_uri"));
  for (const auto& c : j.at("recovery_codes")) secrets_.push_back(c);

  // enroll --force with a confirmed code: another enrolled event.
  answers_ = {right_code()};
  e = one_event({"enroll", "--user", "lp", "--force", "--qr", "none"}, "enrolled", "lp");
  EXPECT_EQ(e.detail, "via enroll, 2 recovery codes, replacing an earlier enrollment");
  secrets_.push_back(find_uri(out()));
  for (const auto& c : listed_codes(out())) secrets_.push_back(c);
  secrets_.push_back(secret_line(out()));

  e = one_event({"device", "add", "phone2", "--user", "lp", "--no-confirm", "--json"},
                "device-added", "lp");
  EXPECT_EQ(e.detail, "device phone2");
  j = json_out();
  secrets_.push_back(j.at("secret"));
  secrets_.push_back(j.at("otpauth_uri"));

  e = one_event({"device", "remove", "phone2", "--user", "lp"}, "device-removed", "lp");
  EXPECT_EQ(e.detail, "device phone2");

  e = one_event({"recovery-codes", "--user", "lp", "--json"}, "recovery-codes-replaced", "lp");
  EXPECT_EQ(e.detail, "2 new recovery codes, the old ones no longer work");
  j = json_out();
  for (const auto& c : j.at("recovery_codes")) secrets_.push_back(c);

  e = one_event({"temp-code", "--user", "lp", "--ttl", "3h", "--reason", "lost phone", "--json"},
                "temp-code-issued", "lp");
  EXPECT_EQ(e.detail, "expires " + totp::iso_time(kNow + 3 * 3600) + ", 1 use, reason: lost phone");
  secrets_.push_back(json_out().at("code"));

  e = one_event({"temp-code", "--user", "lp", "--uses", "2", "--json"}, "temp-code-issued", "lp");
  EXPECT_EQ(e.detail,
            "expires " + totp::iso_time(kNow + 3600) + ", 2 uses, replacing an active one");
  secrets_.push_back(json_out().at("code"));

  e = one_event({"temp-code", "--user", "lp", "--revoke", "--reason", "found it"},
                "temp-code-revoked", "lp");
  EXPECT_EQ(e.detail, "the active code no longer works, reason: found it");
  clear();
  EXPECT_EQ(run_cli({"temp-code", "--user", "lp", "--revoke"}), 0) << err();
  EXPECT_TRUE(new_events().empty()) << "revoking when none is active is no event";

  e = one_event({"require", "--user", "lp"}, "required", "lp");
  EXPECT_EQ(e.detail, "marked as required");
  clear();
  EXPECT_EQ(run_cli({"require", "--user", "lp"}), 0) << err();
  EXPECT_TRUE(new_events().empty()) << "an unchanged mark is no event";
  e = one_event({"require", "--user", "lp", "--off"}, "not-required", "lp");
  EXPECT_EQ(e.detail, "required mark removed");

  e = one_event({"unlock", "--user", "lp"}, "unlock", "lp");
  EXPECT_EQ(e.detail, "failures and lockout cleared");

  e = one_event({"reset", "--user", "lp"}, "reset", "lp");
  EXPECT_EQ(e.detail, "secret and state removed");

  // import: an enrollment, then a device of it.
  const std::string uri = std::string("otpauth://totp/Old:lp?secret=") + kUriSecret;
  secrets_.push_back(uri);
  in_.str(uri + "\n");
  e = one_event({"import", "--user", "lp", "--from", "uri", "-"}, "enrolled", "lp");
  EXPECT_EQ(e.detail, "via import from uri");
  in_.clear();
  const std::string uri2 = std::string("otpauth://totp/Old:lp?secret=") + kUriSecret2;
  secrets_.push_back(uri2);
  in_.str(uri2 + "\n");
  e = one_event({"import", "--user", "lp", "--from", "uri", "--device", "phone3", "-"},
                "device-added", "lp");
  EXPECT_EQ(e.detail, "device phone3, via import from uri");

  // break-glass: this host's codes, in this host's log even though the database is down.
  write_config("recovery_codes = 2\nstore = postgresql\npg_conninfo = host=/nonexistent\n");
  e = one_event({"break-glass", "--count", "3", "--json"}, "break-glass-issued", "");
  EXPECT_EQ(e.detail,
            "3 new break-glass codes for this host, earlier codes and wrong answers "
            "replaced");
  j = json_out();
  for (const auto& c : j.at("codes")) secrets_.push_back(c);

  // Every CLI kind but helpdesk-refused (HelpdeskEvents below) and fleet-key-rotated (a
  // database's alone: DbRotateCliTest in db_test.cpp) was seen.
  for (const auto& kind : totp::kEventKinds) {
    if (kind.source != totp::EventSource::kCli || kind.name == "helpdesk-refused" ||
        kind.name == "fleet-key-rotated") {
      continue;
    }
    EXPECT_TRUE(seen_.count(std::string(kind.name))) << kind.name << " was never recorded";
  }

  // No secret, in any spelling the commands printed, is in the log file.
  const std::string log = log_text();
  ASSERT_FALSE(log.empty());
  std::string lower = log;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(secrets_.size(), 19U) << ::testing::PrintToString(secrets_);
  for (std::string s : secrets_) {
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(log.find(s), std::string::npos) << "a secret in the event log: " << s;
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string no_spaces;
    for (char c : s) {
      if (c != ' ' && c != '-') no_spaces += c;
    }
    EXPECT_EQ(lower.find(no_spaces), std::string::npos) << "a secret in the event log: " << s;
  }
  EXPECT_EQ(log.find("otpauth"), std::string::npos);
  EXPECT_EQ(log.find(kUriSecret), std::string::npos);
  EXPECT_EQ(log.find(kUriSecret2), std::string::npos);
}

TEST_F(CliEventsTest, TheEventLogIsARootOnly0600File) {
  one_event({"enroll", "--user", "lp", "--no-confirm", "--json"}, "enrolled", "lp");
  struct stat st {};
  ASSERT_EQ(::lstat(log_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_uid, 0U);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  // One JSON object per line.
  const std::string log = log_text();
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1);
  EXPECT_TRUE(totp::event_from_json(log.substr(0, log.size() - 1)).ok()) << log;
}

TEST_F(CliEventsTest, FailedActionsRecordNothing) {
  one_event({"enroll", "--user", "lp", "--no-confirm", "--json"}, "enrolled", "lp");
  no_event({"enroll", "--user", "lp", "--no-confirm"}, kExitStore);  // already enrolled
  answers_ = {wrong_code(), wrong_code(), wrong_code()};
  no_event({"enroll", "--user", "lp", "--force", "--qr", "none"}, kExitRejected);
  no_event({"enroll", "--user", "news", "--digits", "9", "--no-confirm"}, kExitUsage);
  no_event({"device", "add", "Bad_Name", "--user", "lp", "--no-confirm"}, kExitUsage);
  no_event({"device", "add", "phone2", "--user", "news", "--no-confirm"}, kExitNotEnrolled);
  no_event({"device", "remove", "phone9", "--user", "lp"}, kExitUsage);
  no_event({"device", "remove", "default", "--user", "lp"}, kExitStore);  // the last device
  no_event({"recovery-codes", "--user", "news"}, kExitNotEnrolled);
  no_event({"temp-code", "--user", "lp", "--ttl", "73h"}, kExitUsage);
  no_event({"unlock", "--user", "pbxtest-no-such-user"}, kExitUsage);
  no_event({"require", "--user", "pbxtest-no-such-user"}, kExitUsage);
  no_event({"import", "--user", "lp", "--from", "uri",
            std::string("otpauth://totp/x?secret=") + kUriSecret},
           kExitStore);                   // already enrolled
  no_event({"break-glass"}, kExitUsage);  // store = files
  // Not root: another user is refused before anything happens.
  become("daemon");
  no_event({"unlock", "--user", "lp"}, kExitStore);
  no_event({"enroll", "--user", "lp"}, kExitStore);
}

// A user acting on themselves cannot write root's event log: nothing is recorded and nothing is
// said (the audit line in syslog tells); the action works as before.
TEST_F(CliEventsTest, UserActingOnThemselvesRecordsNothingQuietly) {
  become("daemon");
  answers_ = {right_code(), text(kRightPassword)};
  clear();
  EXPECT_EQ(run_cli({"enroll", "--qr", "none"}), 0) << err();
  EXPECT_EQ(err().find("warning"), std::string::npos) << err();
  EXPECT_EQ(err().find("event"), std::string::npos) << err();
  EXPECT_TRUE(load("daemon").ok());
  EXPECT_TRUE(new_events().empty());
  struct stat st {};
  EXPECT_NE(::lstat(log_path().c_str(), &st), 0) << "not even created";
}

// Recording can fail (a log someone made group-readable): one warning line, and the action and
// its exit status stand.
TEST_F(CliEventsTest, AFailedRecordWarnsOnceAndChangesNeitherActionNorExit) {
  one_event({"enroll", "--user", "lp", "--no-confirm", "--json"}, "enrolled", "lp");
  ASSERT_EQ(::chmod(log_path().c_str(), 0644), 0);
  clear();
  EXPECT_EQ(run_cli({"require", "--user", "lp"}), 0) << err();
  EXPECT_EQ(err().rfind("pbx-mfa: warning: the event was not recorded: ", 0), 0U) << err();
  const std::string warned = err();
  EXPECT_EQ(std::count(warned.begin(), warned.end(), '\n'), 1) << warned;
  EXPECT_NE(out().find("lp: marked as required"), std::string::npos) << out();
  ASSERT_EQ(::chmod(log_path().c_str(), 0600), 0);
  clear();
  EXPECT_EQ(run_cli({"status", "--user", "lp", "--json"}), 0) << err();
  EXPECT_EQ(json_out().at("required"), true) << out();
}

// Root through sudo (not for a helpdesk member): the actor is the user who ran sudo.
TEST_F(CliEventsTest, ActorIsTheSudoUserWhenRootRunsThroughSudo) {
  one_event({"enroll", "--user", "lp", "--no-confirm", "--json"}, "enrolled", "lp");
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "daemon";
  one_event({"unlock", "--user", "lp"}, "unlock", "lp", "daemon");
  env_.sudo_uid = 0;  // root's own sudo
  env_.sudo_user = "root";
  one_event({"unlock", "--user", "lp"}, "unlock", "lp", "root");
}

// Delegated helpdesk (accounts of every Debian system: the member daemon, protected bin):
// its allowed actions name it as the actor; every refusal is one helpdesk-refused event
// naming the member, the target and why; the refused action records nothing else.
TEST_F(CliEventsTest, HelpdeskActionsAndRefusalsNameTheMemberAndTarget) {
  write_config("recovery_codes = 2\nhelpdesk_groups = daemon,sys\nprotected_groups = bin\n");
  one_event({"enroll", "--user", "lp", "--no-confirm", "--json"}, "enrolled", "lp");
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "daemon";
  // Helpdesk commands run without --config.
  auto hd = [&](std::vector<std::string> args, int exit) {
    clear();
    std::string call = ::testing::PrintToString(args);
    EXPECT_EQ(run(args, env_), exit) << call << ": " << err();
    auto events = new_events();
    EXPECT_EQ(events.size(), 1U) << call;
    if (events.size() != 1) return totp::Event{};
    EXPECT_EQ(events.front().actor, "daemon") << call;
    EXPECT_EQ(events.front().service, "pbx-mfa") << call;
    return events.front();
  };
  auto e = hd({"unlock", "--user", "lp"}, 0);
  EXPECT_EQ(e.event, "unlock");
  EXPECT_EQ(e.user, "lp");

  e = hd({"unlock", "--user", "root"}, kExitStore);
  EXPECT_EQ(e.event, "helpdesk-refused");
  EXPECT_EQ(e.user, "root");
  EXPECT_EQ(e.detail, "unlock of root refused: root is always protected");

  e = hd({"temp-code", "--user", "bin"}, kExitStore);
  EXPECT_EQ(e.event, "helpdesk-refused");
  EXPECT_EQ(e.user, "bin");
  EXPECT_EQ(e.detail,
            "temp-code of bin refused: member of protected group 'bin' (protected_groups)");

  e = hd({"reset", "--user", "lp"}, kExitStore);
  EXPECT_EQ(e.event, "helpdesk-refused");
  EXPECT_EQ(e.user, "lp");
  EXPECT_EQ(e.detail, "reset of lp refused: 'reset' is not in helpdesk_actions");
  EXPECT_TRUE(load("lp").ok());

  e = hd({"recovery-codes", "--user", "lp"}, kExitStore);
  EXPECT_EQ(e.detail, "recovery-codes of lp refused: 'recovery-codes' is not a helpdesk command");

  e = hd({"--config", config_path_, "unlock", "--user", "lp"}, kExitStore);
  EXPECT_EQ(e.detail, "unlock of lp refused: --config is not allowed");

  // A sudo user whose membership cannot be told is refused too, and recorded as such.
  env_.sudo_user = "lp";  // not the account of SUDO_UID
  clear();
  EXPECT_EQ(run({"unlock", "--user", "lp"}, env_), kExitStore) << err();
  auto events = new_events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events.front().event, "helpdesk-refused");
  // Not the name SUDO_USER claims (events_review_test.cpp): the uid sudo ran as.
  EXPECT_EQ(events.front().actor, "uid-" + std::to_string(user("daemon").uid));
  EXPECT_EQ(events.front().detail.rfind("unlock of lp refused (sudo): SUDO_USER does not name", 0),
            0U)
      << events.front().detail;
}

}  // namespace
}  // namespace pbx::cli::testing

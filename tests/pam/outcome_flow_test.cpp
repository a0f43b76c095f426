// Every row of kOutcomes, reached by a login through the flow: the PAM code the login returns,
// the outcome= name and the priority of its log line are the row's.
#include <security/pam_appl.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flow_fixture.hpp"
#include "outcome.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/hotp.hpp"
#include "pg_test_db.hpp"

namespace pbx::pam::testing {
namespace {

constexpr const char* kHost = "203.0.113.5";

// The code the app would show now for the key an enrollment at login displayed ("Key: ...").
std::optional<std::string> code_for_shown_key(const FakeContext& ctx, std::int64_t now) {
  for (const auto& m : ctx.messages) {
    std::size_t at = m.text.find("\nKey: ");
    if (at == std::string::npos) continue;
    std::size_t end = m.text.find('\n', at + 6);
    auto key = totp::base32_decode(m.text.substr(at + 6, end - at - 6));
    if (!key) return std::nullopt;
    auto code = totp::hotp(*key, totp::Algorithm::kSha1,
                           static_cast<std::uint64_t>(totp::time_step(now, 30)), 6);
    if (!code) return std::nullopt;
    return totp::format_code(*code, 6);
  }
  return std::nullopt;
}

class OutcomeFlowTest : public FlowTest, public ::testing::WithParamInterface<OutcomeRow> {
 protected:
  struct Login {
    int rc = 0;
    FakeContext ctx;
  };

  // Sets the scene for `r`, then runs the one login that ends in it.
  Login reach(AuthResult r) {
    Login last;
    std::vector<std::string> args;
    switch (r) {
      case AuthResult::kAccepted: {
        Enrolled e = enroll();
        last.ctx = with_answers({e.code_at(kT0)});
        break;
      }
      case AuthResult::kRecoveryAccepted: {
        Enrolled e = enroll(kUser, 2);
        last.ctx = with_answers({e.recovery_codes[0]});
        break;
      }
      case AuthResult::kGrace: {
        files_.write_config("grace_period = 300\n");
        Enrolled e = enroll();
        FakeContext first = with_answers({e.code_at(kT0)});
        first.remote_host = kHost;
        EXPECT_EQ(run(first), PAM_SUCCESS);
        clock_.advance(10);
        last.ctx = with_answers({});
        last.ctx.remote_host = kHost;
        break;
      }
      case AuthResult::kBreakGlass:
      case AuthResult::kBreakGlassWrong:
      case AuthResult::kBreakGlassLocked:
      case AuthResult::kStoreUnreachable: {
        files_.write_config(
            "store = postgresql\npg_conninfo = host=127.0.0.1 port=" +
            std::to_string(totp::testing::refused_port()) +
            " user=postgres\npg_timeout_ms = 800\npg_plugin = " + totp::testing::pg_plugin_path() +
            "\nfleet_key = " + files_.root() + "/fleet.key\n");
        std::string typed = "123456";
        if (r != AuthResult::kStoreUnreachable) {
          auto codes = totp::make_break_glass_codes(files_.store_config(), 1, kCheapKdf);
          EXPECT_TRUE(codes.ok());
          if (codes.ok()) typed = std::string((*codes)[0].view());
          never_log(typed);
        }
        if (r == AuthResult::kBreakGlassWrong) typed = "abcd-efgh-jkmn-pqrs";
        if (r == AuthResult::kBreakGlassLocked) {
          for (int i = 0; i < totp::kBreakGlassMaxFailures; ++i) {
            FakeContext wrong = with_answers({"abcd-efgh-jkmn-pqrs"});
            EXPECT_EQ(run(wrong), PAM_AUTHINFO_UNAVAIL);
          }
        }
        last.ctx = with_answers({typed});
        break;
      }
      case AuthResult::kEnrolled:
      case AuthResult::kEnrollFailed: {
        files_.write_config("enroll_at_login = yes\nrecovery_codes = 1\nissuer = pbx-test\n");
        opts_.recovery_kdf = kCheapKdf;
        bool right = r == AuthResult::kEnrolled;
        std::int64_t now = clock_.now();
        last.ctx.user_name = kUser;
        last.ctx.responder = [right, now](const FakeContext& c,
                                          std::string_view prompt) -> std::optional<std::string> {
          if (prompt != "Code from the app: ") return std::string();  // "Press Enter ..."
          if (!right) return std::string("not-a-code");
          return code_for_shown_key(c, now);
        };
        break;
      }
      case AuthResult::kExempt:
        files_.write_config("exempt_groups = " + std::string(kUserGroup) + "\n");
        enroll();
        break;
      case AuthResult::kNotRequired:
        files_.write_config("require = none\n");
        break;
      case AuthResult::kRejected: {
        Enrolled e = enroll();
        last.ctx = with_answers({e.wrong_code_at(kT0)});
        break;
      }
      case AuthResult::kReplayed: {
        Enrolled e = enroll();
        FakeContext first = with_answers({e.code_at(kT0)});
        EXPECT_EQ(run(first), PAM_SUCCESS);
        clock_.advance(10);
        last.ctx = with_answers({e.code_at(kT0)});
        break;
      }
      case AuthResult::kLockedOut: {
        files_.write_config("max_failures = 1\nlockout = 60\n");
        Enrolled e = enroll();
        FakeContext first = with_answers({e.wrong_code_at(kT0)});
        EXPECT_EQ(run(first), PAM_AUTH_ERR);
        last.ctx = with_answers({e.code_at(kT0)});
        break;
      }
      case AuthResult::kNotEnrolled:  // required by default
        last.ctx = with_answers({"123456"});
        break;
      case AuthResult::kUnknownUser:
        last.ctx = with_answers({"123456"}, kNoSuchUser);
        break;
      case AuthResult::kUnavailable: {
        Enrolled e = enroll();
        must(write_file(files_.state_file(kUser), "not a state file\n", 0600, files_.trusted_uid()),
             "corrupt state");
        last.ctx = with_answers({e.code_at(kT0)});
        break;
      }
      case AuthResult::kBadConfig:
        args.emplace_back("no_such_argument");
        break;
      case AuthResult::kConvError:
        enroll();
        last.ctx = with_answers({});  // the prompt fails
        break;
      case AuthResult::kNoMemory:
        enroll();
        last.ctx.prompt_fault = FakeContext::Fault::kBadAlloc;
        break;
      case AuthResult::kInternal:
        enroll();
        last.ctx.prompt_fault = FakeContext::Fault::kRuntimeError;
        break;
      case AuthResult::kGroupLookupFailed:  // the directory holding the group is down
        files_.write_config("require = group:pbxtest-directory-admins\n");
        opts_.group_lookup = [](std::string_view) -> totp::Result<std::optional<totp::Group>> {
          return totp::make_error(totp::Errc::kIo, "cannot look up group");
        };
        break;
      case AuthResult::kTempCodeAccepted: {  // the lost phone: a helpdesk-issued code
        enroll();
        last.ctx = with_answers({issue_temp_code()});
        break;
      }
      case AuthResult::kCount:
        ADD_FAILURE() << "kCount is not an outcome";
        break;
    }
    events_before_ = event_lines().size();
    last.rc = run(last.ctx, args);
    return last;
  }

  // The lines of the event log (state_dir/.events.log); none when there is no file.
  std::vector<std::string> event_lines() const {
    std::vector<std::string> out;
    std::ifstream in(files_.state_dir() + "/.events.log");
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
  }

  std::size_t events_before_ = 0;
};

TEST_P(OutcomeFlowTest, ALoginEndsWithTheRowsPamCodeNameAndPriority) {
  const OutcomeRow& row = GetParam();
  Login login = reach(row.result);
  EXPECT_EQ(login.rc, row.pam_code);
  EXPECT_EQ(outcome_of(login.ctx), row.name) << logs_;
  ASSERT_EQ(login.ctx.logs.size(), 1u);
  EXPECT_EQ(login.ctx.logs[0].level, row.level);
  // The row's event, once, from this login (the scene's own logins may have recorded a
  // transition: the failure that locked the user, the answer that locked break-glass).
  std::vector<std::string> lines = event_lines();
  ASSERT_GE(lines.size(), events_before_);
  lines.erase(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(events_before_));
  if (row.event.empty()) {
    EXPECT_TRUE(lines.empty()) << lines.front();
    return;
  }
  ASSERT_EQ(lines.size(), 1u);
  auto e = totp::event_from_json(lines[0]);
  ASSERT_TRUE(e.ok()) << lines[0];
  EXPECT_EQ(e->event, row.event);
  EXPECT_EQ(e->user, kUser);
  EXPECT_EQ(e->service, login.ctx.service_name);
  EXPECT_EQ(e->actor, "");
  for (const auto& s : secrets_) EXPECT_EQ(lines[0].find(s), std::string::npos) << s;
}

std::string test_name(const ::testing::TestParamInfo<OutcomeRow>& info) {
  std::string out;
  for (char c : info.param.name) out.push_back(c == '-' ? '_' : c);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Outcomes, OutcomeFlowTest, ::testing::ValuesIn(kOutcomes), test_name);

}  // namespace
}  // namespace pbx::pam::testing

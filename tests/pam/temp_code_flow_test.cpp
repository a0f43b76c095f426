// Temp codes, the per-user required mark and enroll_at_login = with-code through the flow
// (FakeContext, FixedClock): what is logged and told, and expiry on an injected clock.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "flow_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/hotp.hpp"

namespace pbx::pam::testing {
namespace {

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

bool shows_a_key(const FakeContext& ctx) {
  return ctx.all_messages().find("\nKey: ") != std::string::npos;
}

class TempCodeFlowTest : public FlowTest {
 protected:
  totp::UserStatus status_of(const std::string& user = kUser) {
    totp::Config config = files_.store_config();
    auto store = totp::open_store(config);
    auto account = totp::lookup_user(user);
    if (!store || !account) throw std::runtime_error("cannot open the store");
    totp::Verifier v(config, **store, clock_);
    auto st = v.status(*account);
    if (!st) throw std::runtime_error(st.error().message);
    return *st;
  }
  void mark_required(const std::string& user = kUser) {
    totp::Config config = files_.store_config();
    auto store = totp::open_store(config);
    auto account = totp::lookup_user(user);
    if (!store || !account) throw std::runtime_error("cannot open the store");
    totp::Verifier v(config, **store, clock_);
    if (!v.set_required(*account, totp::RequiredMark{true, "pbxhelp", clock_.now()})) {
      throw std::runtime_error("cannot mark");
    }
  }
  // A user who types `first` at the code prompt, then the code of the key shown.
  FakeContext user_typing(std::string first) {
    FakeContext ctx;
    ctx.user_name = kUser;
    std::int64_t now = clock_.now();
    ctx.responder = [first, now](const FakeContext& c,
                                 std::string_view prompt) -> std::optional<std::string> {
      if (prompt == kDefaultPrompt) return first;
      if (prompt == "Code from the app: ") return code_for_shown_key(c, now);
      return std::string();
    };
    return ctx;
  }
};

TEST_F(TempCodeFlowTest, AnAcceptedTempCodeIsLoggedAtWarningWithItsIssuerAndUsesLeft) {
  enroll();
  std::string code = issue_temp_code(kUser, 3);
  FakeContext ctx = with_answers({code});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "temp-code-accepted");
  EXPECT_EQ(ctx.logs.at(0).level, LogLevel::kWarning);
  EXPECT_NE(logs_.find("issued by pbxhelp, 2 uses left"), std::string::npos) << logs_;
  EXPECT_NE(ctx.all_messages().find("Temporary access code accepted (2 uses left). Set up your "
                                    "authenticator again: pbx-mfa enroll --force"),
            std::string::npos)
      << ctx.all_messages();
}

TEST_F(TempCodeFlowTest, ATempCodeExpiresOnTheClock) {
  enroll();
  std::string code = issue_temp_code(kUser, 2, 600);
  clock_.advance(599);
  FakeContext in_time = with_answers({code});
  EXPECT_EQ(run(in_time), PAM_SUCCESS);
  clock_.advance(1);  // now == expires: refused from then on
  FakeContext late = with_answers({code});
  EXPECT_EQ(run(late), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(late), "wrong-code");
  EXPECT_NE(logs_.find("failures 1"), std::string::npos) << logs_;
}

TEST_F(TempCodeFlowTest, NotEnrolledUserWithATempCodeIsStillRefusedWithoutEnrollAtLogin) {
  std::string code = issue_temp_code();
  FakeContext ctx = with_answers({code});
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled");
  EXPECT_TRUE(status_of().temp_code_active);  // not looked at, not spent
}

TEST_F(TempCodeFlowTest, TheMarkMakesAUserRequiredOverRequireNone) {
  files_.write_config("require = none\n");
  FakeContext before = with_answers({"123456"});
  EXPECT_EQ(run(before), PAM_IGNORE);
  EXPECT_EQ(outcome_of(before), "not-enrolled-not-required");
  mark_required();
  FakeContext after = with_answers({"123456"});
  EXPECT_EQ(run(after), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(after), "not-enrolled");
  EXPECT_NE(logs_.find("required (marked) but not enrolled"), std::string::npos) << logs_;
  EXPECT_EQ(after.prompts.size(), 1u);
}

TEST_F(TempCodeFlowTest, TheMarkDecidesWhenARequireGroupCannotBeLookedUp) {
  files_.write_config("require = group:pbxtest-directory-admins\n");
  opts_.group_lookup = [](std::string_view) -> totp::Result<std::optional<totp::Group>> {
    return totp::make_error(totp::Errc::kIo, "cannot look up group");
  };
  FakeContext unmarked = with_answers({"123456"});
  EXPECT_EQ(run(unmarked), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(unmarked), "group-lookup-failed");
  mark_required();
  FakeContext marked = with_answers({"123456"});
  EXPECT_EQ(run(marked), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(marked), "not-enrolled");
}

TEST_F(TempCodeFlowTest, AnExemptGroupWinsOverTheMark) {
  files_.write_config("require = none\nexempt_groups = " + std::string(kUserGroup) + "\n");
  mark_required();
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx), PAM_IGNORE);
  EXPECT_EQ(outcome_of(ctx), "exempt");
}

TEST_F(TempCodeFlowTest, AMarkedUserIsEnrolledAtLoginWithYes) {
  files_.write_config("require = none\nenroll_at_login = yes\nrecovery_codes = 0\n");
  mark_required();
  FakeContext ctx = user_typing("unused");
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "enrolled-at-login");
  EXPECT_TRUE(status_of().state.required.on);  // the mark survives the enrollment
}

class WithCodeFlowTest : public TempCodeFlowTest {
 protected:
  WithCodeFlowTest() { files_.write_config("enroll_at_login = with-code\nrecovery_codes = 0\n"); }
};

TEST_F(WithCodeFlowTest, WithoutATempCodeItAsksLikeAnyLoginAndShowsNothing) {
  FakeContext ctx = user_typing("123456");
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled");
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(ctx.prompts[0].text, kDefaultPrompt);
  EXPECT_TRUE(ctx.messages.empty()) << ctx.all_messages();
  EXPECT_NE(logs_.find("no temp code issued"), std::string::npos) << logs_;
}

TEST_F(WithCodeFlowTest, ATempCodeLeadsToTheEnrollmentLoggedWithItsIssuer) {
  std::string code = issue_temp_code();
  FakeContext ctx = user_typing(code);
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "enrolled-at-login");
  EXPECT_NE(logs_.find("temp code issued by pbxhelp, 0 uses left"), std::string::npos) << logs_;
  EXPECT_TRUE(shows_a_key(ctx));
  totp::UserStatus st = status_of();
  EXPECT_TRUE(st.enrolled);
  EXPECT_FALSE(st.temp_code_active);
}

TEST_F(WithCodeFlowTest, AWrongTempCodeIsAWrongCodeAndCounted) {
  issue_temp_code();
  FakeContext ctx = user_typing("abcd-efgh-jkmn-pqrs");
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "wrong-code");
  EXPECT_FALSE(shows_a_key(ctx));
  EXPECT_EQ(status_of().state.failures, 1);
}

TEST_F(WithCodeFlowTest, AnExpiredTempCodeShowsNoQrCode) {
  std::string code = issue_temp_code(kUser, 1, 60);
  clock_.advance(60);
  FakeContext ctx = user_typing(code);
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_FALSE(shows_a_key(ctx));
  EXPECT_FALSE(status_of().enrolled);
}

TEST_F(WithCodeFlowTest, LockedOutIsToldWithoutAPrompt) {
  files_.write_config(
      "enroll_at_login = with-code\nrecovery_codes = 0\nmax_failures = 1\nlockout = 60\n");
  std::string code = issue_temp_code();
  FakeContext wrong = user_typing("abcd-efgh-jkmn-pqrs");
  EXPECT_EQ(run(wrong), PAM_AUTH_ERR);
  FakeContext locked = user_typing(code);
  EXPECT_EQ(run(locked), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(locked), "locked-out");
  EXPECT_TRUE(locked.prompts.empty());
  EXPECT_TRUE(status_of().temp_code_active);
}

TEST_F(WithCodeFlowTest, SilentOffersNoEnrollmentAndSpendsNothing) {
  std::string code = issue_temp_code();
  opts_.silent = true;
  FakeContext ctx = user_typing(code);
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled");
  EXPECT_TRUE(status_of().temp_code_active);
}

TEST_F(WithCodeFlowTest, ForwardPassOffersNoEnrollmentAndSpendsNothing) {
  std::string code = issue_temp_code();
  FakeContext ctx = with_answers({"password" + code});
  EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled");
  EXPECT_TRUE(status_of().temp_code_active);
}

TEST_F(WithCodeFlowTest, TheModuleArgumentSelectsWithCodeToo) {
  files_.write_config("recovery_codes = 0\n");
  FakeContext ctx = user_typing("123456");
  EXPECT_EQ(run(ctx, {"enroll_at_login=with-code"}), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled");
  EXPECT_FALSE(shows_a_key(ctx));
  std::string code = issue_temp_code();
  FakeContext with = user_typing(code);
  EXPECT_EQ(run(with, {"enroll_at_login=with-code"}), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(with), "enrolled-at-login");
}

}  // namespace
}  // namespace pbx::pam::testing

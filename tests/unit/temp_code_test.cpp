// Temporary access codes and the per-user required mark: the code, its record in the state,
// and what the verifier does with it (on both stores: also run as "pg.TempCodeTest.*").
#include "pbx/totp/temp_code.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/requirement.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/verifier.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::kCheapKdf;
using testing::kT0;

IssuedTempCode issue(std::int64_t now, std::int64_t ttl = kTempCodeDefaultTtl, int uses = 1,
                     std::string_view reason = "lost phone") {
  auto made = make_temp_code(now, ttl, uses, "helpdesk1", reason, kCheapKdf);
  if (!made.ok()) throw std::runtime_error("make_temp_code: " + made.error().message);
  return std::move(made.value());
}

TEST(TempCodeShape, IsFourGroupsOfFourLettersAndNotARecoveryCode) {
  IssuedTempCode t = issue(kT0);
  std::string_view code = t.code.view();
  ASSERT_EQ(code.size(), 19U) << "xxxx-xxxx-xxxx-xxxx";
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (i % 5 == 4) {
      EXPECT_EQ(code[i], '-');
    } else {
      EXPECT_TRUE(code[i] >= 'a' && code[i] <= 'z') << code;
      EXPECT_EQ(std::string_view("ilo").find(code[i]), std::string_view::npos) << code;
    }
  }
  EXPECT_TRUE(looks_like_temp_code(code));
  EXPECT_TRUE(looks_like_temp_code("KXMR TPQZ WBNF HGCD"));  // as read out over the phone
  EXPECT_FALSE(looks_like_temp_code("kxmr-tpqz-wbnf"));      // a recovery code
  EXPECT_FALSE(looks_like_temp_code("123456"));
  EXPECT_FALSE(looks_like_temp_code("kxmr-tpqz-wbnf-hgc1"));
  // Nothing but the hash is kept.
  EXPECT_EQ(t.record.hash.hashes.size(), 1U);
  EXPECT_EQ(t.record.hash.hashes.front().find(std::string(code)), std::string::npos);
}

TEST(TempCodeShape, BoundsAreRefused) {
  EXPECT_FALSE(make_temp_code(kT0, 0, 1, "a", "").ok());
  EXPECT_FALSE(make_temp_code(kT0, kTempCodeMaxTtl + 1, 1, "a", "").ok());
  EXPECT_FALSE(make_temp_code(kT0, 60, 0, "a", "").ok());
  EXPECT_FALSE(make_temp_code(kT0, 60, kTempCodeMaxUses + 1, "a", "").ok());
  EXPECT_FALSE(make_temp_code(kT0, 60, 1, "", "").ok());
  EXPECT_FALSE(make_temp_code(kT0, 60, 1, "a b", "").ok());
  EXPECT_FALSE(make_temp_code(kT0, 60, 1, "a", "two\nlines").ok());
  EXPECT_FALSE(make_temp_code(kT0, 60, 1, "a", std::string(kMaxTempCodeReason + 1, 'x')).ok());
  EXPECT_TRUE(make_temp_code(kT0, kTempCodeMaxTtl, kTempCodeMaxUses, "a", "", kCheapKdf).ok());
}

TEST(TempCodeState, RoundTripsAndHostileLinesAreCorrupt) {
  UserState s;
  s.enrollment_id = "";
  s.required = RequiredMark{true, "root", kT0};
  s.temp_code = issue(kT0, 3600, 3, "ticket 4711: phone stolen").record;
  std::string text = serialize_state(s);
  auto back = parse_state(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->required, s.required);
  ASSERT_TRUE(back->temp_code.has_value());
  EXPECT_EQ(*back->temp_code, *s.temp_code);
  EXPECT_EQ(serialize_state(*back), text);

  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    auto at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  const std::string uses = " 3 helpdesk1\n";
  EXPECT_FALSE(parse_state(with(uses, " 11 helpdesk1\n")).ok()) << "more uses than allowed";
  EXPECT_FALSE(parse_state(with(uses, " 3 help desk\n")).ok());
  EXPECT_FALSE(parse_state(with("temp-code-kdf scrypt 1024 8 1",
                                "temp-code-kdf scrypt "
                                "1048576 8 1"))
                   .ok())
      << "a planted cost above the built-in one";
  EXPECT_FALSE(parse_state(with("required root", "required ro ot")).ok());
  std::string no_kdf = text;
  no_kdf.erase(no_kdf.find("temp-code-kdf"),
               no_kdf.find('\n', no_kdf.find("temp-code-kdf")) - no_kdf.find("temp-code-kdf") + 1);
  EXPECT_FALSE(parse_state(no_kdf).ok());
}

class TempCodeTest : public testing::StoreFixture {
 protected:
  Verifier verifier() { return Verifier(config_, store(), clock_); }

  Outcome verify(const User& user, std::string_view input) {
    auto out = verifier().verify(user, input);
    if (!out.ok()) {
      ADD_FAILURE() << "verify: " << out.error().message;
      return {};
    }
    return *out;
  }

  SecretString give(const User& user, std::int64_t ttl = 3600, int uses = 1) {
    IssuedTempCode t = issue(clock_.now(), ttl, uses);
    auto st = verifier().set_temp_code(user, t.record);
    EXPECT_TRUE(st.ok()) << st.error().message;
    return std::move(t.code);
  }

  FixedClock clock_{kT0};
};

TEST_F(TempCodeTest, AcceptedOnceForAnEnrolledUserThenUsedUp) {
  enroll(alice_);
  SecretString code = give(alice_);
  Outcome out = verify(alice_, code.view());
  EXPECT_EQ(out.verdict, Verdict::kTempCodeAccepted);
  EXPECT_EQ(out.temp_code_uses_left, 0);
  EXPECT_EQ(out.temp_code_issuer, "helpdesk1");
  EXPECT_EQ(verify(alice_, code.view()).verdict, Verdict::kRejected) << "used up";
  EXPECT_EQ(read_state(alice_).failures, 1);
}

TEST_F(TempCodeTest, SeveralUsesAndExpiry) {
  enroll(alice_);
  SecretString code = give(alice_, 600, 3);
  EXPECT_EQ(verify(alice_, code.view()).verdict, Verdict::kTempCodeAccepted);
  clock_.advance(599);
  Outcome second = verify(alice_, code.view());
  EXPECT_EQ(second.verdict, Verdict::kTempCodeAccepted);
  EXPECT_EQ(second.temp_code_uses_left, 1);
  clock_.advance(1);
  EXPECT_EQ(verify(alice_, code.view()).verdict, Verdict::kRejected) << "expired";
}

TEST_F(TempCodeTest, OneUsersCodeNeverOpensAnother) {
  enroll(alice_);
  enroll(bob_, testing::kIdB);
  SecretString alices = give(alice_);
  give(bob_);
  EXPECT_EQ(verify(bob_, alices.view()).verdict, Verdict::kRejected);
  EXPECT_EQ(verify(alice_, alices.view()).verdict, Verdict::kTempCodeAccepted);
}

TEST_F(TempCodeTest, WrongOnesCountTowardLockoutAndALockedUserIsNotChecked) {
  enroll(alice_);
  SecretString code = give(alice_);
  for (int i = 0; i < config_.max_failures; ++i) {
    EXPECT_EQ(verify(alice_, "zzzz-zzzz-zzzz-zzzz").verdict, Verdict::kRejected);
  }
  EXPECT_EQ(verify(alice_, code.view()).verdict, Verdict::kLockedOut);
  ASSERT_TRUE(verifier().unlock(alice_).ok());
  EXPECT_EQ(verify(alice_, code.view()).verdict, Verdict::kTempCodeAccepted);
}

TEST_F(TempCodeTest, AcceptedCodeMovesNoReplayMarkAndRestoresNoRecoveryCode) {
  Enrollment e = enroll(alice_);
  SecretString code = give(alice_);
  ASSERT_EQ(verify(alice_, code.view()).verdict, Verdict::kTempCodeAccepted);
  UserState after = read_state(alice_);
  // Still where the enrollment put it (the steps before its creation): the TOTP codes of now
  // stay unused.
  EXPECT_EQ(mark(after).last_step, time_step(e.created, dev0(e).period) - 1);
  EXPECT_EQ(mark(after).skew, 0);
  EXPECT_TRUE(after.used_recovery.empty());
  EXPECT_EQ(after.last_success, clock_.now());
}

TEST_F(TempCodeTest, NotEnrolledUserGetsInOnlyWithAnActiveCode) {
  EXPECT_EQ(verify(bob_, "123456").verdict, Verdict::kNotEnrolled);
  EXPECT_EQ(verify(bob_, "zzzz-zzzz-zzzz-zzzz").verdict, Verdict::kNotEnrolled)
      << "no code: nothing checked, nothing counted";
  EXPECT_EQ(read_state(bob_).failures, 0);
  SecretString code = give(bob_);
  EXPECT_EQ(verify(bob_, "123456").verdict, Verdict::kRejected);
  EXPECT_EQ(read_state(bob_).failures, 1);
  EXPECT_EQ(verify(bob_, code.view()).verdict, Verdict::kTempCodeAccepted);
  EXPECT_EQ(read_state(bob_).failures, 0);
  EXPECT_EQ(verify(bob_, code.view()).verdict, Verdict::kNotEnrolled) << "used up";
}

TEST_F(TempCodeTest, RevokeAndReplace) {
  enroll(alice_);
  SecretString first = give(alice_);
  SecretString second = give(alice_);
  EXPECT_EQ(verify(alice_, first.view()).verdict, Verdict::kRejected) << "replaced";
  auto revoked = verifier().revoke_temp_code(alice_);
  ASSERT_TRUE(revoked.ok());
  EXPECT_TRUE(*revoked);
  EXPECT_EQ(verify(alice_, second.view()).verdict, Verdict::kRejected) << "revoked";
  auto again = verifier().revoke_temp_code(alice_);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

TEST_F(TempCodeTest, ResetKeepsTheAccountsMarkAndCode) {
  enroll(alice_);
  SecretString code = give(alice_);
  ASSERT_TRUE(verifier().set_required(alice_, RequiredMark{true, "root", kT0}).ok());
  ASSERT_TRUE(verifier().reset(alice_).ok());
  auto st = verifier().status(alice_);
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->enrolled);
  EXPECT_TRUE(st->state.required.on);
  EXPECT_TRUE(st->temp_code_active);
  EXPECT_EQ(verifier().reset(alice_).error().code, Errc::kNotEnrolled);
  EXPECT_EQ(verify(alice_, code.view()).verdict, Verdict::kTempCodeAccepted);
}

TEST_F(TempCodeTest, ReEnrollmentKeepsTheMarkAndStatusReportsIt) {
  ASSERT_TRUE(verifier().set_required(bob_, RequiredMark{true, "root", kT0}).ok());
  give(bob_);
  enroll(bob_, testing::kIdB);
  auto st = verifier().status(bob_);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->enrolled);
  EXPECT_EQ(st->created, kT0 - 86400);
  EXPECT_EQ(st->state.required, (RequiredMark{true, "root", kT0}));
  EXPECT_TRUE(st->temp_code_active);
  ASSERT_TRUE(verifier().set_required(bob_, RequiredMark{}).ok());
  st = verifier().status(bob_);
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->state.required.on);
}

TEST(RequiredMark, WinsOverRequireGroupsButNotOverAnExemption) {
  Config c;
  c.require_all = false;
  c.require_groups = {"voip"};
  c.exempt_groups = {"robots"};
  EXPECT_EQ(requirement(c, {"staff"}, std::nullopt).reason, "not-required");
  EXPECT_EQ(requirement(c, {"staff"}, std::nullopt, true).reason, "marked");
  EXPECT_TRUE(requirement(c, {"staff"}, std::nullopt, true).required());
  EXPECT_EQ(requirement(c, {"robots"}, std::nullopt, true).reason, "exempt-group:robots");
}

}  // namespace
}  // namespace pbx::totp

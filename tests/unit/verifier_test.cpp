// The verifier's policy: window, replay, lockout, skew, recovery codes, stale state, grace.
#include "pbx/totp/verifier.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/store.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::code_for_step;
using testing::has_errc;
using testing::is_ok;
using testing::kIdA;
using testing::kIdB;
using testing::kStep;
using testing::kT0;
using testing::read_file;
using testing::snapshot;
using testing::snapshot_diff;
using testing::step_of;
using testing::verdict_of;

class VerifierTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped()) return;
    e_ = enroll(alice_);
  }

  // The outcome of a verify that must not fail (an error fails the test).
  Outcome verify(const User& user, std::string_view input, std::string_view rhost = {}) {
    Verifier verifier(config_, store(), clock_);
    auto out = verifier.verify(user, input, rhost);
    if (!out.ok()) {
      ADD_FAILURE() << "verify failed: " << errc_name(out.error().code) << ": "
                    << out.error().message;
      return {};
    }
    return *out;
  }
  Outcome verify(std::string_view input) { return verify(alice_, input); }

  std::optional<bool> in_grace(const User& user, std::string_view rhost) {
    Verifier verifier(config_, store(), clock_);
    auto r = verifier.in_grace(user, rhost);
    if (!r.ok()) return std::nullopt;
    return r.value();
  }

  std::int64_t now_step() const { return step_of(e_, clock_.now()); }
  // The code the user's phone shows `offset` steps from now.
  std::string code(std::int64_t offset = 0) const { return code_for_step(e_, now_step() + offset); }
  // A well-formed code that is right at no step near now.
  std::string wrong_code() const {
    for (int candidate = 0;; ++candidate) {
      std::string c = format_code(static_cast<std::uint32_t>(candidate * 7919 % 1000000), 6);
      bool used = false;
      for (int d = -3 * kMaxSkewSteps; d <= 3 * kMaxSkewSteps; ++d) used |= c == code(d);
      if (!used) return c;
    }
  }

  // Fails `n` times with wrong codes at the current time; returns the last outcome.
  Outcome fail(int n) {
    Outcome out;
    for (int i = 0; i < n; ++i) out = verify(wrong_code());
    return out;
  }

  FixedClock clock_{kT0};
  Enrollment e_;
};

// ---------------------------------------------------------------------------------------------
// Right, wrong, replayed

TEST_F(VerifierTest, AcceptsTheCurrentCodeAndRecordsIt) {
  Outcome out = verify(code());
  EXPECT_EQ(out.verdict, Verdict::kAccepted);
  EXPECT_EQ(out.failures, 0);
  UserState state = read_state(alice_);
  EXPECT_EQ(state.enrollment_id, std::string(kIdA));
  EXPECT_EQ(mark(state).last_step, now_step());
  EXPECT_EQ(state.failures, 0);
  EXPECT_EQ(state.last_success, kT0);
}

TEST_F(VerifierTest, WrongCodeIsRejectedAndCounted) {
  Outcome out = verify(wrong_code());
  EXPECT_EQ(out.verdict, Verdict::kRejected);
  EXPECT_EQ(out.failures, 1);
  EXPECT_EQ(out.locked_until, 0);
  out = verify(wrong_code());
  EXPECT_EQ(out.verdict, Verdict::kRejected);
  EXPECT_EQ(out.failures, 2);
  EXPECT_EQ(read_state(alice_).failures, 2);
}

TEST_F(VerifierTest, MalformedInputIsRejectedNeverAccepted) {
  config_.max_failures = 1000;
  std::string right = code();
  std::vector<std::string> inputs = {
      "",
      right.substr(0, 5),
      right + "0",
      "0" + right,
      right + std::string(1, '\0') + "junk",  // must not be cut at the NUL
      std::string(1, '\0') + right,
      "abcdef",
      "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94\xef\xbc\x95\xef\xbc\x96",  // fullwidth
      std::string(100000, '1'),
      std::string(100000, 'a'),
      "-" + right.substr(1),
      "+" + right.substr(1),
  };
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Outcome out = verify(inputs[i]);
    EXPECT_EQ(out.verdict, Verdict::kRejected) << "input " << i;
  }
  // None of that used up the right code.
  EXPECT_EQ(verify(right).verdict, Verdict::kAccepted);
}

TEST_F(VerifierTest, SameCodeTwiceIsReplayedAndCountsAsFailure) {
  std::string c = code();
  ASSERT_EQ(verify(c).verdict, Verdict::kAccepted);
  Outcome out = verify(c);
  EXPECT_EQ(out.verdict, Verdict::kReplayed);
  EXPECT_EQ(out.failures, 1);
  // Still replayed later within the same step.
  clock_.advance(29);
  EXPECT_EQ(verify(c).verdict, Verdict::kReplayed);
  EXPECT_EQ(read_state(alice_).failures, 2);
}

TEST_F(VerifierTest, EarlierStepAfterALaterOneIsReplayed) {
  ASSERT_EQ(verify(code(+1)).verdict, Verdict::kAccepted);
  EXPECT_EQ(verify(code(0)).verdict, Verdict::kReplayed);
  // (The success at +1 may have moved the learned skew so that -1 is out of the window.)
  Outcome out = verify(code(-1));
  EXPECT_TRUE(out.verdict == Verdict::kReplayed || out.verdict == Verdict::kRejected)
      << verdict_name(out.verdict);
  EXPECT_EQ(out.failures, 2);
  EXPECT_EQ(mark(read_state(alice_)).last_step, now_step() + 1);
}

TEST_F(VerifierTest, RepeatedReplaysLockTheUserOut) {
  std::string c = code();
  ASSERT_EQ(verify(c).verdict, Verdict::kAccepted);
  Outcome out;
  for (int i = 0; i < config_.max_failures; ++i) out = verify(c);
  EXPECT_EQ(out.verdict, Verdict::kReplayed);
  EXPECT_EQ(out.failures, config_.max_failures);
  EXPECT_EQ(out.locked_until, kT0 + config_.lockout);
  EXPECT_EQ(verify(code(1)).verdict, Verdict::kLockedOut);
}

TEST_F(VerifierTest, NextStepAfterASuccessIsAccepted) {
  ASSERT_EQ(verify(code()).verdict, Verdict::kAccepted);
  clock_.advance(30);
  EXPECT_EQ(verify(code()).verdict, Verdict::kAccepted);
}

// ---------------------------------------------------------------------------------------------
// Window

TEST_F(VerifierTest, WindowEdges) {
  for (int window : {1, 3}) {
    config_.window = window;
    struct Probe {
      int offset;
      Verdict expected;
    };
    std::vector<Probe> probes;
    for (int d = -window; d <= window; ++d) probes.push_back({d, Verdict::kAccepted});
    probes.push_back({-window - 1, Verdict::kRejected});
    probes.push_back({window + 1, Verdict::kRejected});
    probes.push_back({-window - 5, Verdict::kRejected});
    probes.push_back({window + 5, Verdict::kRejected});
    for (const Probe& p : probes) {
      // A fresh user for each probe: no replay mark, no learned skew from the last probe.
      User user{"w" + std::to_string(window) + "_" + std::to_string(p.offset + 50), 2000, 2000,
                "/nonexistent"};
      enroll(user);
      if (p.expected == Verdict::kRejected) {
        for (int d = -window; d <= window; ++d) ASSERT_NE(code(p.offset), code(d));
      }
      EXPECT_EQ(verify(user, code(p.offset)).verdict, p.expected)
          << "window " << window << " offset " << p.offset;
    }
  }
}

TEST_F(VerifierTest, WindowEdgesHoldAnywhereInTheStep) {
  // The window is counted in steps from the current step, wherever in it "now" is.
  for (int second : {0, 1, 15, 29}) {
    clock_.set(kT0 + second);
    User user{"s" + std::to_string(second), 2000, 2000, "/nonexistent"};
    enroll(user);
    EXPECT_EQ(verify(user, code(-1)).verdict, Verdict::kAccepted) << second;
    User other{"t" + std::to_string(second), 2000, 2000, "/nonexistent"};
    enroll(other);
    EXPECT_EQ(verify(other, code(+2)).verdict, Verdict::kRejected) << second;
  }
}

// ---------------------------------------------------------------------------------------------
// Lockout

TEST(VerifierLockout, LockoutSecondsDoublesAndIsCapped) {
  Config config;
  config.max_failures = 5;
  config.lockout = 60;
  for (int f = 0; f < 5; ++f) EXPECT_EQ(lockout_seconds(config, f), 0) << f;
  EXPECT_EQ(lockout_seconds(config, 5), 60);
  EXPECT_EQ(lockout_seconds(config, 6), 120);
  EXPECT_EQ(lockout_seconds(config, 7), 240);
  EXPECT_EQ(lockout_seconds(config, 10), 1920);
  EXPECT_EQ(lockout_seconds(config, 11), 3600);  // 3840 capped
  EXPECT_EQ(lockout_seconds(config, 12), 3600);
  // No overflow, however many failures were recorded.
  for (int f : {40, 63, 64, 65, 1000, std::numeric_limits<int>::max()}) {
    EXPECT_EQ(lockout_seconds(config, f), kMaxLockoutSeconds) << f;
  }
  config.lockout = 7200;
  EXPECT_EQ(lockout_seconds(config, 5), kMaxLockoutSeconds);
  config.max_failures = 1;
  config.lockout = 1;
  EXPECT_EQ(lockout_seconds(config, 1), 1);
  EXPECT_EQ(lockout_seconds(config, 2), 2);
  EXPECT_EQ(lockout_seconds(config, 13), 3600);  // 4096 capped
}

TEST_F(VerifierTest, LocksOutAfterMaxFailures) {
  for (int f = 1; f < config_.max_failures; ++f) {
    Outcome out = verify(wrong_code());
    ASSERT_EQ(out.verdict, Verdict::kRejected);
    EXPECT_EQ(out.locked_until, 0) << f;
  }
  Outcome out = verify(wrong_code());
  EXPECT_EQ(out.verdict, Verdict::kRejected);
  EXPECT_EQ(out.failures, config_.max_failures);
  EXPECT_EQ(out.locked_until, kT0 + 60);
  UserState state = read_state(alice_);
  EXPECT_EQ(state.locked_until, kT0 + 60);
  out = verify(code());
  EXPECT_EQ(out.verdict, Verdict::kLockedOut);
  EXPECT_EQ(out.locked_until, kT0 + 60);
}

TEST_F(VerifierTest, EachFurtherFailureDoublesTheLockoutUpToAnHour) {
  Outcome out = fail(config_.max_failures);
  ASSERT_EQ(out.locked_until, kT0 + 60);
  std::int64_t expected = 60;
  for (int f = config_.max_failures + 1; f <= config_.max_failures + 9; ++f) {
    clock_.set(out.locked_until);  // the lockout is just over
    out = verify(wrong_code());
    expected = std::min<std::int64_t>(expected * 2, 3600);
    EXPECT_EQ(out.verdict, Verdict::kRejected) << f;
    EXPECT_EQ(out.failures, f);
    EXPECT_EQ(out.locked_until, clock_.now() + expected) << "after " << f << " failures";
  }
  EXPECT_EQ(expected, 3600);
}

TEST_F(VerifierTest, LockoutExpires) {
  Outcome out = fail(config_.max_failures);
  ASSERT_EQ(out.locked_until, kT0 + 60);
  clock_.set(kT0 + 59);
  EXPECT_EQ(verify(code()).verdict, Verdict::kLockedOut);
  clock_.set(kT0 + 60);
  out = verify(code());
  EXPECT_EQ(out.verdict, Verdict::kAccepted);
  EXPECT_EQ(out.failures, 0);
  UserState state = read_state(alice_);
  EXPECT_EQ(state.failures, 0);
  EXPECT_LE(state.locked_until, clock_.now());
}

TEST_F(VerifierTest, LockedOutChecksNothingAndChangesNothing) {
  fail(config_.max_failures);  // locked at kT0 (a step start) until kT0 + 60
  clock_.set(kT0 + 59);
  std::string right = code();
  testing::Snapshot before = snapshot(state_dir_);
  std::string stored = stored_state(alice_);
  ASSERT_NE(stored, "");
  for (const std::string& input :
       {right, wrong_code(), std::string(codes_[0].str()), std::string("")}) {
    Outcome out = verify(input);
    EXPECT_EQ(out.verdict, Verdict::kLockedOut);
    EXPECT_EQ(out.locked_until, kT0 + 60);
  }
  EXPECT_EQ(snapshot_diff(before, snapshot(state_dir_)), "");
  EXPECT_EQ(stored_state(alice_), stored);
  // Once the lockout is over, neither the TOTP code nor the recovery code was used up.
  clock_.set(kT0 + 60);
  ASSERT_EQ(now_step(), step_of(e_, kT0 + 59) + 1);
  EXPECT_EQ(verify(right).verdict, Verdict::kAccepted);
  EXPECT_EQ(verify(codes_[0].view()).verdict, Verdict::kRecoveryAccepted);
}

TEST_F(VerifierTest, SuccessResetsFailures) {
  fail(config_.max_failures - 1);
  Outcome out = verify(code());
  ASSERT_EQ(out.verdict, Verdict::kAccepted);
  EXPECT_EQ(read_state(alice_).failures, 0);
  // A full allowance again: max_failures - 1 more failures do not lock.
  clock_.advance(30);
  out = fail(config_.max_failures - 1);
  EXPECT_EQ(out.failures, config_.max_failures - 1);
  EXPECT_EQ(out.locked_until, 0);
  EXPECT_EQ(verify(code()).verdict, Verdict::kAccepted);
}

// ---------------------------------------------------------------------------------------------
// Clock skew

TEST_F(VerifierTest, FastPhoneClockIsLearnedButBounded) {
  config_.max_failures = 1000;
  int skew = 0;
  for (int round = 0; round < 3 * kMaxSkewSteps; ++round) {
    clock_.set(kT0 + kStep * round);
    // The newest code the window around the learned skew allows.
    Outcome out = verify(code(skew + config_.window));
    ASSERT_EQ(out.verdict, Verdict::kAccepted) << "round " << round << ", skew " << skew;
    skew = mark(read_state(alice_)).skew;
    ASSERT_LE(std::abs(skew), kMaxSkewSteps) << "round " << round;
  }
  EXPECT_GT(skew, 0) << "a phone that runs ahead was never followed";
  // However consistent the drift, nothing beyond the bound is accepted.
  clock_.advance(30);
  int beyond = kMaxSkewSteps + config_.window + 1;
  ASSERT_GT(now_step() + beyond, mark(read_state(alice_)).last_step);
  EXPECT_EQ(verify(code(beyond)).verdict, Verdict::kRejected);
  EXPECT_EQ(verify(code(beyond + 5)).verdict, Verdict::kRejected);
}

TEST_F(VerifierTest, SlowPhoneClockIsLearnedButBounded) {
  config_.max_failures = 1000;
  int skew = 0;
  for (int round = 0; round < 3 * kMaxSkewSteps; ++round) {
    clock_.set(kT0 + 2 * kStep * round);  // two steps a round, so older codes are still unused
    Outcome out = verify(code(skew - config_.window));
    ASSERT_EQ(out.verdict, Verdict::kAccepted) << "round " << round << ", skew " << skew;
    skew = mark(read_state(alice_)).skew;
    ASSERT_LE(std::abs(skew), kMaxSkewSteps) << "round " << round;
  }
  EXPECT_LT(skew, 0) << "a phone that runs behind was never followed";
  clock_.advance(60);
  int beyond = -(kMaxSkewSteps + config_.window + 1);
  ASSERT_GT(now_step() + beyond, mark(read_state(alice_)).last_step);
  EXPECT_EQ(verify(code(beyond)).verdict, Verdict::kRejected);
}

TEST_F(VerifierTest, ClockJumpBackwardsNeverReopensAUsedCode) {
  config_.max_failures = 1000;
  std::string used = code();
  std::int64_t used_step = now_step();
  ASSERT_EQ(verify(used).verdict, Verdict::kAccepted);
  for (std::int64_t back : {30, 60, 3600, 86400}) {
    clock_.set(kT0 - back);
    EXPECT_NE(verify(used).verdict, Verdict::kAccepted) << back;
    for (int d = -config_.window; d <= config_.window; ++d) {
      if (now_step() + d > used_step) continue;
      EXPECT_EQ(verify(code(d)).verdict, Verdict::kReplayed) << "back " << back << " d " << d;
    }
  }
  clock_.set(kT0 + 30);
  EXPECT_EQ(verify(code()).verdict, Verdict::kAccepted);
}

// ---------------------------------------------------------------------------------------------
// Recovery codes

TEST_F(VerifierTest, RecoveryCodeIsAcceptedOnce) {
  Outcome out = verify(codes_[0].view());
  EXPECT_EQ(out.verdict, Verdict::kRecoveryAccepted);
  EXPECT_EQ(out.recovery_left, 2);
  out = verify(codes_[0].view());
  EXPECT_EQ(out.verdict, Verdict::kRejected);
  EXPECT_EQ(out.failures, 1);
  out = verify(codes_[2].view());
  EXPECT_EQ(out.verdict, Verdict::kRecoveryAccepted);
  EXPECT_EQ(out.recovery_left, 1);
  EXPECT_EQ(out.failures, 0);
  EXPECT_EQ(read_state(alice_).used_recovery.size(), 2U);
  // Another store instance (another login) agrees.
  reopen();
  EXPECT_EQ(verify(codes_[2].view()).verdict, Verdict::kRejected);
  EXPECT_EQ(verify(codes_[1].view()).recovery_left, 0);
}

TEST_F(VerifierTest, RecoveryCodeInTheFormsPeopleType) {
  std::string upper;
  for (char c : codes_[1].view()) {
    upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  EXPECT_EQ(verify(upper).verdict, Verdict::kRecoveryAccepted);
  std::string spaced = " " + std::string(codes_[2].view()) + " ";
  std::replace(spaced.begin(), spaced.end(), '-', ' ');
  EXPECT_EQ(verify(spaced).verdict, Verdict::kRecoveryAccepted);
}

TEST_F(VerifierTest, RecoveryCodeResetsFailuresAndLeavesTotpAlone) {
  fail(config_.max_failures - 1);
  Outcome out = verify(codes_[0].view());
  ASSERT_EQ(out.verdict, Verdict::kRecoveryAccepted);
  EXPECT_EQ(out.failures, 0);
  EXPECT_EQ(read_state(alice_).failures, 0);
  // The phone's current code was not used up by the recovery code.
  EXPECT_EQ(verify(code()).verdict, Verdict::kAccepted);
}

TEST_F(VerifierTest, RecoveryCodeOfAnotherUserIsRejected) {
  std::vector<SecretString> alice_codes = std::move(codes_);
  enroll(bob_, kIdB);
  EXPECT_EQ(verify(bob_, alice_codes[0].view()).verdict, Verdict::kRejected);
  EXPECT_EQ(verify(alice_, codes_[0].view()).verdict, Verdict::kRejected);
  EXPECT_EQ(verify(alice_, alice_codes[0].view()).verdict, Verdict::kRecoveryAccepted);
}

// ---------------------------------------------------------------------------------------------
// State of an older enrollment

TEST_F(VerifierTest, ReEnrollmentStartsAfresh) {
  ASSERT_EQ(verify(code()).verdict, Verdict::kAccepted);
  ASSERT_EQ(verify(codes_[0].view()).verdict, Verdict::kRecoveryAccepted);
  Outcome out = fail(config_.max_failures);
  ASSERT_GT(out.locked_until, clock_.now());
  ASSERT_EQ(verify(code()).verdict, Verdict::kLockedOut);

  // Re-enrolled (same key, new id, new recovery codes), as a user without root could.
  Enrollment again = make_enrollment(kIdB);
  ASSERT_TRUE(is_ok(store().save(alice_, again, true)));
  e_ = again;
  out = verify(code());
  EXPECT_EQ(out.verdict, Verdict::kAccepted) << "inherited the old lockout or replay mark";
  UserState state = read_state(alice_);
  EXPECT_EQ(state.enrollment_id, std::string(kIdB));
  EXPECT_EQ(state.failures, 0);
  EXPECT_TRUE(state.used_recovery.empty());
  // Recovery code 0 of the new set was not "used" by the old state.
  out = verify(codes_[0].view());
  EXPECT_EQ(out.verdict, Verdict::kRecoveryAccepted);
  EXPECT_EQ(out.recovery_left, 2);
}

// L9: `pbx-mfa enroll` as the user saves the secret but cannot write the root-owned state, so
// nothing recorded its confirmation code as used: that code must not also open a login.
TEST_F(VerifierTest, SelfEnrollmentConfirmationCodeIsReplayed) {
  for (int phone_offset : {0, 1, -1}) {
    SCOPED_TRACE("phone clock offset " + std::to_string(phone_offset) + " steps");
    auto made = NewEnrollment::create(EnrollmentPlan{});
    ASSERT_TRUE(is_ok(made));
    const NewEnrollment& pending = *made;
    auto code_at_step = [&](std::int64_t step) {
      auto v = hotp(pending.secret(), pending.plan().algorithm, static_cast<std::uint64_t>(step),
                    pending.plan().digits);
      EXPECT_TRUE(v.has_value());
      return format_code(*v, pending.plan().digits);
    };
    const std::int64_t now = clock_.now();
    const std::string confirmation = code_at_step(time_step(now, 30) + phone_offset);
    auto confirmed = pending.match(confirmation, config_.window, now);
    ASSERT_TRUE(confirmed.has_value());
    SaveOptions self;  // as the user: no state write
    self.overwrite = true;
    ASSERT_TRUE(is_ok(pending.save(store(), alice_, now, *confirmed, self)));

    Outcome out = verify(confirmation);
    EXPECT_EQ(out.verdict, Verdict::kReplayed) << "the confirmation code logged in";
    // The codes of later steps work as usual.
    clock_.advance(30);
    const std::int64_t next = std::max(time_step(clock_.now(), 30), *confirmed + 1);
    EXPECT_EQ(verify(code_at_step(next)).verdict, Verdict::kAccepted);
  }
}

TEST_F(VerifierTest, StaleStateDoesNotLockANewEnrollment) {
  // Root-owned state of an older enrollment, written by hand.
  {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    UserState old;
    old.enrollment_id = std::string(kIdB);
    old.failures = 50;
    old.locked_until = kT0 + 3600;
    mark(old).last_step = now_step() + 5;
    ASSERT_TRUE(is_ok(txn.value()->commit(old)));
  }
  EXPECT_EQ(verify(code()).verdict, Verdict::kAccepted);
  EXPECT_EQ(read_state(alice_).enrollment_id, std::string(kIdA));
}

// ---------------------------------------------------------------------------------------------
// Grace period

TEST_F(VerifierTest, GraceIsPerUserAndHostAndExpires) {
  config_.grace_period = 300;
  enroll(bob_, kIdB);
  EXPECT_EQ(in_grace(alice_, "ws1.example.net"), false);
  ASSERT_EQ(verify(alice_, code(), "ws1.example.net").verdict, Verdict::kAccepted);
  EXPECT_EQ(in_grace(alice_, "ws1.example.net"), true);
  EXPECT_EQ(in_grace(alice_, "ws2.example.net"), false);
  EXPECT_EQ(in_grace(alice_, "WS1.example.net.evil"), false);
  EXPECT_NE(in_grace(bob_, "ws1.example.net"), true);
  clock_.set(kT0 + 299);
  EXPECT_EQ(in_grace(alice_, "ws1.example.net"), true);
  clock_.set(kT0 + 301);
  EXPECT_EQ(in_grace(alice_, "ws1.example.net"), false);
  // Far in the future, no grace either.
  clock_.set(kT0 + 86400);
  EXPECT_EQ(in_grace(alice_, "ws1.example.net"), false);
}

TEST_F(VerifierTest, GraceNeedsASuccessAndAPeriod) {
  config_.grace_period = 300;
  ASSERT_EQ(verify(alice_, wrong_code(), "ws1").verdict, Verdict::kRejected);
  EXPECT_EQ(in_grace(alice_, "ws1"), false);
  config_.grace_period = 0;
  ASSERT_EQ(verify(alice_, code(), "ws1").verdict, Verdict::kAccepted);
  EXPECT_EQ(in_grace(alice_, "ws1"), false);
}

TEST_F(VerifierTest, GraceDoesNotSurviveReEnrollment) {
  config_.grace_period = 300;
  ASSERT_EQ(verify(alice_, code(), "ws1").verdict, Verdict::kAccepted);
  ASSERT_EQ(in_grace(alice_, "ws1"), true);
  ASSERT_TRUE(is_ok(store().save(alice_, make_enrollment(kIdB), true)));
  EXPECT_EQ(in_grace(alice_, "ws1"), false);
}

TEST_F(VerifierTest, GraceStoresNoHostNameAndStaysBounded) {
  config_.grace_period = 3600;
  for (int i = 0; i < 3 * kMaxGraceEntries; ++i) {
    clock_.set(kT0 + kStep * i);
    std::string host = "host-" + std::to_string(i) + ".example.org";
    ASSERT_EQ(verify(alice_, code(), host).verdict, Verdict::kAccepted) << i;
    EXPECT_EQ(in_grace(alice_, host), true) << i;
  }
  std::string text = stored_state_text(alice_);
  ASSERT_NE(text, "");
  EXPECT_EQ(text.find("example.org"), std::string::npos) << "host name stored in the state";
  UserState state = read_state(alice_);
  EXPECT_LE(state.grace.size(), static_cast<std::size_t>(kMaxGraceEntries));
}

// ---------------------------------------------------------------------------------------------
// Per-enrollment parameters, not enrolled, store errors

TEST_F(VerifierTest, UsesTheEnrollmentsAlgorithmDigitsAndPeriod) {
  Enrollment e = make_enrollment(kIdB);
  dev0(e).algorithm = Algorithm::kSha512;
  dev0(e).secret =
      testing::bytes_of("1234567890123456789012345678901234567890123456789012345678901234");
  dev0(e).digits = 8;
  dev0(e).period = 60;
  ASSERT_TRUE(is_ok(store().save(bob_, e, true)));
  e_ = e;
  std::string right = code();
  ASSERT_EQ(right.size(), 8U);
  Enrollment sha1 = e;
  dev0(sha1).algorithm = Algorithm::kSha1;
  EXPECT_EQ(verify(bob_, right.substr(2)).verdict, Verdict::kRejected);
  EXPECT_EQ(verify(bob_, code_for_step(sha1, step_of(e, kT0))).verdict, Verdict::kRejected);
  EXPECT_EQ(verify(bob_, right).verdict, Verdict::kAccepted);
  // A 60-second period: 59 s later is still the same step, so the code is used up.
  clock_.set(step_of(e, kT0) * 60 + 59);
  EXPECT_EQ(verify(bob_, right).verdict, Verdict::kReplayed);
}

TEST_F(VerifierTest, NotEnrolled) {
  Outcome out = verify(bob_, "123456");
  EXPECT_EQ(out.verdict, Verdict::kNotEnrolled);
}

// A store whose every step can be made to fail.
class FakeStore final : public Store {
 public:
  Result<Enrollment> load(const User&) override {
    if (load_error) return *load_error;
    return enrollment;
  }
  Status save(const User&, const Enrollment&, bool) override {
    return make_error(Errc::kInternal, "not in this test");
  }
  Status check_saveable(const User&) override { return Ok{}; }
  Status remove(const User&) override { return make_error(Errc::kInternal, "not in this test"); }
  Result<std::unique_ptr<StateTxn>> lock_state(const User&) override {
    if (lock_error) return *lock_error;
    return std::unique_ptr<StateTxn>(std::make_unique<Txn>(*this));
  }
  Result<UserState> peek_state(const User&) override {
    if (lock_error) return *lock_error;
    return state;
  }
  Result<std::vector<std::string>> enrolled_users() override { return std::vector<std::string>{}; }
  Status append_event(const Event&) override { return Ok{}; }
  Result<EventPage> read_events(const EventQuery&, const EventCursor&) override {
    return EventPage{};
  }
  Result<bool> remove_secret(const User&) override {
    return make_error(Errc::kInternal, "not in this test");
  }

  std::optional<Error> load_error;
  std::optional<Error> lock_error;
  std::optional<Error> commit_error;
  Enrollment enrollment;
  UserState state;

 private:
  class Txn final : public StateTxn {
   public:
    explicit Txn(FakeStore& store) : store_(store), state_(store.state) {}
    const UserState& state() const override { return state_; }
    Status commit(const UserState& next) override {
      if (store_.commit_error) return *store_.commit_error;
      store_.state = next;
      return Ok{};
    }

   private:
    FakeStore& store_;
    UserState state_;
  };
};

class VerifierFailClosedTest : public VerifierTest {
 protected:
  Result<Outcome> fake_verify(std::string_view input) {
    Verifier verifier(config_, fake_, clock_);
    return verifier.verify(alice_, input);
  }
  void SetUp() override {
    VerifierTest::SetUp();
    fake_.enrollment = e_;
  }
  FakeStore fake_;
};

TEST_F(VerifierFailClosedTest, UnreadableSecretIsAnError) {
  for (Errc errc : {Errc::kCorrupt, Errc::kUnsafe, Errc::kIo, Errc::kInternal}) {
    fake_.load_error = make_error(errc, "test");
    EXPECT_TRUE(has_errc(fake_verify(code()), errc)) << errc_name(errc);
  }
  fake_.load_error = make_error(Errc::kNotEnrolled, "test");
  EXPECT_EQ(verdict_of(fake_verify(code())), Verdict::kNotEnrolled);
}

TEST_F(VerifierFailClosedTest, UnlockableStateIsAnError) {
  fake_.lock_error = make_error(Errc::kIo, "flock failed");
  EXPECT_TRUE(has_errc(fake_verify(code()), Errc::kIo));
}

TEST_F(VerifierFailClosedTest, UnrecordableOutcomeIsAnError) {
  fake_.commit_error = make_error(Errc::kIo, "disk full");
  for (const std::string& input : {code(), wrong_code(), std::string(codes_[0].str())}) {
    EXPECT_TRUE(has_errc(fake_verify(input), Errc::kIo)) << "a result that could not be recorded";
  }
  EXPECT_EQ(fake_.state.failures, 0);
  EXPECT_EQ(mark(fake_.state).last_step, kNoStep);
  // Once the disk has room again, nothing was used up.
  fake_.commit_error.reset();
  EXPECT_EQ(verdict_of(fake_verify(code())), Verdict::kAccepted);
  EXPECT_EQ(verdict_of(fake_verify(codes_[0].view())), Verdict::kRecoveryAccepted);
  EXPECT_EQ(mark(fake_.state).last_step, now_step());
}

}  // namespace
}  // namespace pbx::totp

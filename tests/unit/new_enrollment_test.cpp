// NewEnrollment: the plan both front ends build from the config, and what save() reports when
// the secret is saved but its fresh state is not.
#include "pbx/totp/new_enrollment.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pbx/totp/base32.hpp"
#include "pbx/totp/hotp.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::has_errc;
using testing::is_ok;
using testing::kT0;

TEST(EnrollmentPlanTest, TakesTheEnrollmentSettingsOfTheConfig) {
  Config c;
  ASSERT_TRUE(is_ok(parse_config_text(
      c, "algorithm = SHA256\ndigits = 8\nperiod = 60\nrecovery_codes = 7\nissuer = PBX Lab\n",
      "test.conf")));
  EnrollmentPlan plan = EnrollmentPlan::from(c, "alice", "host.example.org");
  EXPECT_EQ(plan.algorithm, Algorithm::kSha256);
  EXPECT_EQ(plan.digits, 8);
  EXPECT_EQ(plan.period, 60);
  EXPECT_EQ(plan.recovery_codes, 7);
  EXPECT_EQ(plan.issuer, "PBX Lab");
  EXPECT_EQ(plan.account, "alice");
}

TEST(EnrollmentPlanTest, DefaultsAreTheConfigDefaults) {
  const Config c;
  EnrollmentPlan plan = EnrollmentPlan::from(c, "bob", "host");
  EXPECT_EQ(plan.algorithm, c.algorithm);
  EXPECT_EQ(plan.digits, c.digits);
  EXPECT_EQ(plan.period, c.period);
  EXPECT_EQ(plan.recovery_codes, c.recovery_codes);
}

TEST(EnrollmentPlanTest, WithoutAnIssuerTheFallbackThenPbxMfa) {
  const Config c;  // issuer unset
  EXPECT_EQ(EnrollmentPlan::from(c, "alice", "host.example.org").issuer, "host.example.org");
  EXPECT_EQ(EnrollmentPlan::from(c, "alice", "").issuer, "pbx-mfa");
}

// Keeps one enrollment and one state in memory; the state commit can be made to fail, and to
// take the saved enrollment with it (as the database store's transaction does).
class MemoryStore final : public Store {
 public:
  Result<Enrollment> load(const User&) override {
    if (!enrollment) return make_error(Errc::kNotEnrolled, "none");
    return *enrollment;
  }
  Status save(const User&, const Enrollment& e, bool overwrite) override {
    if (enrollment && !overwrite) return make_error(Errc::kExists, "exists");
    enrollment = e;
    return Ok{};
  }
  Status check_saveable(const User&) override { return Ok{}; }
  Status remove(const User&) override { return make_error(Errc::kInternal, "not in this test"); }
  Result<std::unique_ptr<StateTxn>> lock_state(const User&) override {
    return std::unique_ptr<StateTxn>(std::make_unique<Txn>(*this));
  }
  Result<UserState> peek_state(const User&) override { return state; }
  Result<std::vector<std::string>> enrolled_users() override { return std::vector<std::string>{}; }
  Status append_event(const Event&) override { return Ok{}; }
  Result<EventPage> read_events(const EventQuery&, const EventCursor&) override {
    return EventPage{};
  }
  Result<bool> remove_secret(const User&) override {
    return make_error(Errc::kInternal, "not in this test");
  }

  std::optional<Enrollment> enrollment;
  UserState state;
  std::optional<Error> commit_error;
  bool commit_error_drops_enrollment = false;

 private:
  class Txn final : public StateTxn {
   public:
    explicit Txn(MemoryStore& store) : store_(store), state_(store.state) {}
    const UserState& state() const override { return state_; }
    Status commit(const UserState& next) override {
      if (store_.commit_error) {
        if (store_.commit_error_drops_enrollment) store_.enrollment.reset();
        return *store_.commit_error;
      }
      store_.state = next;
      return Ok{};
    }

   private:
    MemoryStore& store_;
    UserState state_;
  };
};

class NewEnrollmentSaveTest : public ::testing::Test {
 protected:
  NewEnrollment fresh() {
    EnrollmentPlan plan;
    plan.recovery_codes = 0;
    auto made = NewEnrollment::create(plan);
    EXPECT_TRUE(is_ok(made));
    return std::move(made.value());
  }

  MemoryStore store_;
  User alice_{"alice", 1000, 1000, "/home/alice"};
  std::int64_t step_ = time_step(kT0, 30);
};

TEST_F(NewEnrollmentSaveTest, ResetStateWritesAFreshStateWithTheStepUsed) {
  SaveOptions opts;
  opts.reset_state = true;
  auto saved = fresh().save(store_, alice_, kT0, step_, opts);
  ASSERT_TRUE(is_ok(saved));
  EXPECT_FALSE(saved->state_error.has_value());
  ASSERT_TRUE(store_.enrollment.has_value());
  EXPECT_EQ(store_.state.enrollment_id, store_.enrollment->id);
  EXPECT_EQ(mark(store_.state).last_step, step_);
}

TEST_F(NewEnrollmentSaveTest, WithoutResetStateTheStateIsLeftAlone) {
  store_.commit_error = make_error(Errc::kIo, "not to be called");
  auto saved = fresh().save(store_, alice_, kT0, step_, SaveOptions{});
  ASSERT_TRUE(is_ok(saved));
  EXPECT_FALSE(saved->state_error.has_value());
  EXPECT_TRUE(store_.enrollment.has_value());
  EXPECT_EQ(store_.state.enrollment_id, "");
}

TEST_F(NewEnrollmentSaveTest, AStateThatCouldNotBeWrittenIsReportedNotFailed) {
  store_.commit_error = make_error(Errc::kIo, "disk full");
  SaveOptions opts;
  opts.reset_state = true;
  auto saved = fresh().save(store_, alice_, kT0, step_, opts);
  ASSERT_TRUE(is_ok(saved)) << "the secret is saved";
  ASSERT_TRUE(saved->state_error.has_value());
  EXPECT_EQ(saved->state_error->code, Errc::kIo);
  EXPECT_EQ(saved->state_error->message, "disk full");
  EXPECT_TRUE(store_.enrollment.has_value());
}

TEST_F(NewEnrollmentSaveTest, AStateCommitThatTookTheEnrollmentWithItIsAnError) {
  store_.commit_error = make_error(Errc::kIo, "rolled back");
  store_.commit_error_drops_enrollment = true;
  SaveOptions opts;
  opts.reset_state = true;
  EXPECT_TRUE(has_errc(fresh().save(store_, alice_, kT0, step_, opts), Errc::kIo));
}

TEST_F(NewEnrollmentSaveTest, AnEnrollmentMadeMeanwhileWinsWithoutOverwrite) {
  ASSERT_TRUE(is_ok(fresh().save(store_, alice_, kT0, step_, SaveOptions{})));
  std::string first = store_.enrollment->id;
  EXPECT_TRUE(has_errc(fresh().save(store_, alice_, kT0, step_, SaveOptions{}), Errc::kExists));
  EXPECT_EQ(store_.enrollment->id, first);
  SaveOptions overwrite;
  overwrite.overwrite = true;
  ASSERT_TRUE(is_ok(fresh().save(store_, alice_, kT0, step_, overwrite)));
  EXPECT_NE(store_.enrollment->id, first);
}

// enroll --finish: the key `enroll --begin` printed comes back and must behave as the secret
// that was made (same URI, same codes); a key of another size is refused.
TEST(NewEnrollmentRestoreTest, AGivenBackKeyIsTheSameEnrollment) {
  for (Algorithm a : {Algorithm::kSha1, Algorithm::kSha256, Algorithm::kSha512}) {
    EnrollmentPlan plan;
    plan.algorithm = a;
    plan.issuer = "PBX";
    plan.account = "alice";
    auto made = NewEnrollment::create(plan);
    ASSERT_TRUE(is_ok(made));
    auto decoded = base32_decode(made->secret_base32().view());
    ASSERT_TRUE(is_ok(decoded));
    auto back = NewEnrollment::restore(plan, std::move(decoded.value()));
    ASSERT_TRUE(is_ok(back)) << algorithm_name(a);
    EXPECT_TRUE(back->secret() == made->secret());
    EXPECT_EQ(back->uri().str(), made->uri().str());
    const std::int64_t step = time_step(kT0, plan.period);
    auto code = hotp(made->secret(), a, static_cast<std::uint64_t>(step), plan.digits);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(back->match(format_code(*code, plan.digits), 1, kT0), step);
  }
}

// The key of a fresh enrollment of `plan`, as enroll --begin prints it and --finish reads it.
SecretBytes fresh_key(const EnrollmentPlan& plan) {
  auto made = NewEnrollment::create(plan);
  EXPECT_TRUE(is_ok(made));
  auto decoded = base32_decode(made->secret_base32().view());
  EXPECT_TRUE(is_ok(decoded));
  return std::move(decoded.value());
}

SecretBytes key_of(std::string_view text) {
  SecretBytes key(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(text[i]);
  return key;
}

// A key a person made up is refused (review of issue 19: --finish took an all-zero key):
// one byte value, few values, a repeating pattern (the RFC 6238 test key is one).
TEST(NewEnrollmentRestoreTest, AMadeUpKeyIsRefused) {
  EnrollmentPlan plan;  // SHA1: 20 bytes
  for (std::string_view made_up :
       {std::string_view("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20),
        std::string_view("aaaaaaaaaaaaaaaaaaaa"), std::string_view("abcdefgabcdefgabcdef"),
        std::string_view("12345678901234567890"), std::string_view("abababababababababab"),
        std::string_view("abcdefghijklmnopqrsa")}) {
    const bool periodic_or_few = made_up != "abcdefghijklmnopqrsa";
    EXPECT_EQ(has_errc(NewEnrollment::restore(plan, key_of(made_up)), Errc::kInvalid),
              periodic_or_few)
        << made_up;
  }
  for (int i = 0; i < 200; ++i) {  // fresh keys always pass
    ASSERT_TRUE(is_ok(NewEnrollment::restore(plan, fresh_key(plan))));
  }
}

TEST(NewEnrollmentRestoreTest, AKeyOfAnotherSizeIsRefused) {
  EnrollmentPlan plan;  // SHA1: 20 bytes
  for (std::size_t size :
       {std::size_t{0}, std::size_t{10}, std::size_t{19}, std::size_t{21}, std::size_t{32}}) {
    SecretBytes key(size);
    EXPECT_TRUE(has_errc(NewEnrollment::restore(plan, std::move(key)), Errc::kInvalid)) << size;
  }
  plan.algorithm = Algorithm::kSha256;  // a SHA1-sized key is not one this plan made
  EXPECT_TRUE(has_errc(NewEnrollment::restore(plan, SecretBytes(20)), Errc::kInvalid));
  EXPECT_TRUE(is_ok(NewEnrollment::restore(plan, fresh_key(plan))));
}

TEST(NewEnrollmentRestoreTest, ThePlanIsCheckedAsCreateChecksIt) {
  EnrollmentPlan plan;
  plan.digits = 9;
  EXPECT_TRUE(has_errc(NewEnrollment::restore(plan, SecretBytes(20)), Errc::kInvalid));
  plan.digits = 6;
  plan.period = 0;
  EXPECT_TRUE(has_errc(NewEnrollment::restore(plan, SecretBytes(20)), Errc::kInvalid));
}

}  // namespace
}  // namespace pbx::totp

// NewEnrollment: the plan both front ends build from the config, and what save() reports when
// the secret is saved but its fresh state is not.
#include "pbx/totp/new_enrollment.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

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

}  // namespace
}  // namespace pbx::totp

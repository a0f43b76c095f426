// What every store promises, whatever keeps the data: run once on files and once (ctest pg.*)
// on the database store.
#include <gtest/gtest.h>

#include <string>

#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/verifier.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::code_for_step;
using testing::has_errc;
using testing::is_ok;
using testing::kIdA;
using testing::kIdB;
using testing::kT0;
using testing::step_of;
using testing::verdict_of;

class StoreContractTest : public testing::StoreFixture {};

TEST_F(StoreContractTest, SaveThenLoadGivesTheSameEnrollment) {
  Enrollment e = enroll(alice_);
  auto loaded = store().load(alice_);
  ASSERT_TRUE(is_ok(loaded));
  EXPECT_EQ(loaded->id, e.id);
  EXPECT_TRUE(dev0(*loaded).secret == dev0(e).secret);
  EXPECT_EQ(dev0(*loaded).digits, dev0(e).digits);
  EXPECT_EQ(dev0(*loaded).period, dev0(e).period);
  EXPECT_EQ(loaded->created, e.created);
  EXPECT_EQ(loaded->recovery.hashes, e.recovery.hashes);
  EXPECT_EQ(loaded->recovery.salt, e.recovery.salt);
}

TEST_F(StoreContractTest, NotEnrolledUntilSaved) {
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kNotEnrolled));
  auto state = store().peek_state(alice_);
  ASSERT_TRUE(is_ok(state));
  EXPECT_EQ(state->enrollment_id, "");
}

TEST_F(StoreContractTest, WithoutOverwriteTheExistingEnrollmentWins) {
  enroll(alice_, kIdA);
  Enrollment other = make_enrollment(kIdB);
  EXPECT_TRUE(has_errc(store().save(alice_, other, false), Errc::kExists));
  EXPECT_EQ(store().load(alice_)->id, std::string(kIdA));
  EXPECT_TRUE(is_ok(store().save(alice_, other, true)));
  EXPECT_EQ(store().load(alice_)->id, std::string(kIdB));
}

TEST_F(StoreContractTest, RemoveTakesSecretAndStateAndOnlyThatUsers) {
  Enrollment a = enroll(alice_, kIdA);
  Enrollment b = enroll(bob_, kIdB);
  FixedClock clock(kT0);
  Verifier verifier(config_, store(), clock);
  ASSERT_EQ(verdict_of(verifier.verify(alice_, code_for_step(a, step_of(a, kT0)))),
            Verdict::kAccepted);
  ASSERT_EQ(verdict_of(verifier.verify(bob_, code_for_step(b, step_of(b, kT0)))),
            Verdict::kAccepted);
  EXPECT_TRUE(is_ok(store().remove(alice_)));
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kNotEnrolled));
  EXPECT_EQ(store().peek_state(alice_)->enrollment_id, "");
  EXPECT_TRUE(has_errc(store().remove(alice_), Errc::kNotEnrolled));
  EXPECT_EQ(store().load(bob_)->id, std::string(kIdB));
  EXPECT_EQ(mark(*store().peek_state(bob_)).last_step, step_of(b, kT0));
}

TEST_F(StoreContractTest, StateCommitsOnceAndADroppedTransactionChangesNothing) {
  enroll(alice_);
  {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    UserState next = (*txn)->state();
    next.enrollment_id = std::string(kIdA);
    next.failures = 2;
    (void)next;  // dropped without commit
  }
  EXPECT_EQ(store().peek_state(alice_)->failures, 0);
  {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    UserState next;
    next.enrollment_id = std::string(kIdA);
    next.failures = 3;
    ASSERT_TRUE(is_ok((*txn)->commit(next)));
    EXPECT_EQ((*txn)->state().failures, 3);
  }
  EXPECT_EQ(store().peek_state(alice_)->failures, 3);
  EXPECT_EQ(read_state(alice_).failures, 3);
}

TEST_F(StoreContractTest, TwoEnrollmentsAtOnceSaveOneSecret) {
  // As NewEnrollment::save does it: under the state lock, save without replacing.
  Enrollment first = make_enrollment(kIdA);
  Enrollment second = make_enrollment(kIdB);
  {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    ASSERT_TRUE(is_ok(store().save(alice_, first, false)));
    UserState fresh;
    fresh.enrollment_id = first.id;
    ASSERT_TRUE(is_ok((*txn)->commit(fresh)));
  }
  {
    auto txn = store().lock_state(alice_);
    ASSERT_TRUE(is_ok(txn));
    EXPECT_TRUE(has_errc(store().save(alice_, second, false), Errc::kExists));
  }
  EXPECT_EQ(store().load(alice_)->id, std::string(kIdA));
  EXPECT_EQ(store().peek_state(alice_)->enrollment_id, std::string(kIdA));
}

}  // namespace
}  // namespace pbx::totp

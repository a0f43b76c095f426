// The database store's own promises: sealed rows bound to their user and key, a schema made
// once, and a database that cannot be reached failing closed within the deadline. Runs only in
// ctest's pg.* runs (the throwaway cluster of tests/db).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pbx/totp/base32.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/seal.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/verifier.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::code_for_step;
using testing::has_errc;
using testing::HungPort;
using testing::is_ok;
using testing::kIdA;
using testing::kIdB;
using testing::kT0;
using testing::refused_port;
using testing::step_of;
using testing::verdict_of;
using testing::write_file;

// What verify_at() answers for an error.
constexpr std::nullopt_t kVerifyFailed = std::nullopt;

class DbStoreTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(on_database()) << "DbStoreTest runs with PBX_TEST_STORE=postgresql only";
  }
  // The verdict, or nullopt (kVerifyFailed) when verify answered an error.
  std::optional<Verdict> verify_at(const User& user, const std::string& code, Store& s,
                                   std::int64_t t = kT0) {
    FixedClock clock(t);
    Verifier verifier(config_, s, clock);
    return verdict_of(verifier.verify(user, code));
  }
  std::string code_now(const Enrollment& e, std::int64_t t = kT0) {
    return code_for_step(e, step_of(e, t));
  }
};

TEST_F(DbStoreTest, TheRowHoldsNoSecretInClear) {
  Enrollment e = enroll(alice_);
  ASSERT_EQ(verify_at(alice_, code_now(e), store()), Verdict::kAccepted);
  std::string row = pg_->exec(
      "SELECT user_name || enrollment_id || created || encode(sealed, 'escape') || "
      "coalesce((SELECT state_text FROM pbx_mfa_state WHERE user_name = 'alice'), '') "
      "FROM pbx_mfa_enrollment WHERE user_name = 'alice'");
  ASSERT_NE(row, "");
  EXPECT_EQ(row.find(base32_encode(dev0(e).secret, false)), std::string::npos);
  EXPECT_EQ(row.find(std::string(testing::kRfcKey)), std::string::npos);
  for (const auto& h : e.recovery.hashes) EXPECT_EQ(row.find(h), std::string::npos);
}

TEST_F(DbStoreTest, ARowCopiedToAnotherUserIsRefused) {
  Enrollment a = enroll(alice_, kIdA);
  enroll(bob_, kIdB);
  // Bob's row replaced by alice's (both columns): he would log in with her phone.
  pg_->exec(
      "UPDATE pbx_mfa_enrollment SET (enrollment_id, sealed) = (SELECT enrollment_id, sealed"
      " FROM pbx_mfa_enrollment WHERE user_name = 'alice') WHERE user_name = 'bob'");
  auto loaded = store().load(bob_);
  ASSERT_TRUE(has_errc(loaded, Errc::kCorrupt));
  EXPECT_NE(loaded.error().message.find("bob"), std::string::npos);
  EXPECT_EQ(verify_at(bob_, code_now(a), store()), kVerifyFailed);
  EXPECT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);  // hers still works
}

TEST_F(DbStoreTest, ATamperedRowIsRefused) {
  Enrollment a = enroll(alice_, kIdA);
  std::string good = pg_->exec("SELECT encode(sealed, 'hex') FROM pbx_mfa_enrollment");
  int n = static_cast<int>(good.size() / 2);
  for (int at : {0, 1, 12, 13, n / 2, n - 1}) {
    SCOPED_TRACE("byte " + std::to_string(at));
    pg_->exec("UPDATE pbx_mfa_enrollment SET sealed = set_byte(sealed, " + std::to_string(at) +
              ", get_byte(sealed, " + std::to_string(at) + ") # 1)");
    EXPECT_TRUE(has_errc(store().load(alice_), Errc::kCorrupt));
    EXPECT_EQ(verify_at(alice_, code_now(a), store()), kVerifyFailed);
    pg_->exec("UPDATE pbx_mfa_enrollment SET sealed = decode('" + good + "', 'hex')");
  }
  // The id column must match the sealed id (state belongs to one enrollment).
  pg_->exec("UPDATE pbx_mfa_enrollment SET enrollment_id = '" + std::string(kIdB) + "'");
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kCorrupt));
  pg_->exec("UPDATE pbx_mfa_enrollment SET enrollment_id = '" + std::string(kIdA) + "'");
  pg_->exec("UPDATE pbx_mfa_enrollment SET sealed = substring(sealed from 1 for 20)");
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kCorrupt));
}

TEST_F(DbStoreTest, AnotherFleetKeyIsRefused) {
  Enrollment a = enroll(alice_);
  ASSERT_TRUE(write_file(config_.fleet_key, std::string(32, 'z'), 0400));
  reopen();
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kCorrupt));
  EXPECT_EQ(verify_at(alice_, code_now(a), store()), kVerifyFailed);
  auto init = db_init(config_);
  ASSERT_TRUE(has_errc(init, Errc::kConfig));
  EXPECT_NE(init.error().message.find("not the key"), std::string::npos);
  auto probe = db_probe(config_);
  ASSERT_TRUE(is_ok(probe));
  EXPECT_EQ(probe->key, KeyCheck::kDiffers);
}

TEST_F(DbStoreTest, InitIsIdempotentAndRefusesANewerSchema) {
  auto again = db_init(config_);
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(again->from_version, kDbSchemaVersion);
  EXPECT_EQ(again->to_version, kDbSchemaVersion);
  EXPECT_FALSE(again->key_created);
  Enrollment a = enroll(alice_);
  ASSERT_TRUE(is_ok(db_init(config_)));
  EXPECT_EQ(store().load(alice_)->id, a.id);  // data kept
  pg_->exec("UPDATE pbx_mfa_schema SET version = 99");
  EXPECT_TRUE(has_errc(db_init(config_), Errc::kConfig));
}

TEST_F(DbStoreTest, ASchemaVersionThatIsNotAWholeNumberIsRefused) {
  // The column is an integer as db init makes it; a hand-altered table must not be read as
  // "version 1" (what atoi made of "1x") or as "no schema" (what it made of "garbage").
  pg_->exec("ALTER TABLE pbx_mfa_schema ALTER COLUMN version TYPE text");
  for (const char* bad : {"1x", "garbage", "0", "-1", "99999999999"}) {
    SCOPED_TRACE(bad);
    pg_->exec(std::string("UPDATE pbx_mfa_schema SET version = '") + bad + "'");
    auto init = db_init(config_);
    ASSERT_TRUE(has_errc(init, Errc::kCorrupt));
    EXPECT_NE(init.error().message.find(std::string("version '") + bad + "'"), std::string::npos)
        << init.error().message;
    EXPECT_TRUE(has_errc(db_probe(config_), Errc::kCorrupt));
  }
  pg_->exec("UPDATE pbx_mfa_schema SET version = '" + std::to_string(kDbSchemaVersion) + "'");
  EXPECT_TRUE(is_ok(db_init(config_)));
  auto probe = db_probe(config_);
  ASSERT_TRUE(is_ok(probe));
  EXPECT_EQ(probe->schema_version, kDbSchemaVersion);
  EXPECT_EQ(probe->enrollments, 0);
}

TEST_F(DbStoreTest, InitCreatesTheKeyOnlyForANewDatabase) {
  testing::PgSchema fresh;
  Config c = config_;
  c.pg_conninfo = fresh.conninfo();
  c.fleet_key = tmp_ / "new.key";
  auto init = db_init(c);
  ASSERT_TRUE(is_ok(init));
  EXPECT_TRUE(init->key_created);
  EXPECT_EQ(init->from_version, 0);
  EXPECT_EQ(load_fleet_key(c.fleet_key, 0)->size(), 32U);
  // A second server without its copy of the key: no new key, a clear error.
  c.fleet_key = tmp_ / "missing.key";
  auto second = db_init(c);
  ASSERT_FALSE(second.ok());
  EXPECT_FALSE(testing::exists_nofollow(c.fleet_key));
}

TEST_F(DbStoreTest, WithoutSchemaTheErrorSaysWhatToRun) {
  testing::PgSchema empty;
  Config c = config_;
  c.pg_conninfo = empty.conninfo();
  auto s = open_store(c);
  ASSERT_TRUE(is_ok(s));
  auto loaded = (*s)->load(alice_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("pbx-mfa db init"), std::string::npos);
}

// Failure modes: each measured, none ever accepted.
struct Timed {
  Result<Outcome> outcome;
  std::int64_t ms;
};

Timed timed_verify(const Config& c, const User& u, const std::string& code) {
  auto began = std::chrono::steady_clock::now();
  Result<Outcome> out = make_error(Errc::kInternal, "no store");
  auto s = open_store(c);
  if (s.ok()) {
    FixedClock clock(kT0);
    Verifier verifier(c, **s, clock);
    out = verifier.verify(u, code);
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  began)
                .count();
  return {out, ms};
}

TEST_F(DbStoreTest, AStoppedDatabaseFailsClosedAtOnce) {
  Enrollment a = enroll(alice_);
  Config c = config_;
  c.pg_conninfo = "host=127.0.0.1 port=" + std::to_string(refused_port()) + " user=postgres";
  c.pg_timeout_ms = 2500;
  Timed t = timed_verify(c, alice_, code_now(a));
  EXPECT_TRUE(has_errc(t.outcome, Errc::kUnavailable));
  EXPECT_LT(t.ms, 1000);
  std::printf("[ figures  ] stopped database: failed closed in %lld ms\n",
              static_cast<long long>(t.ms));
}

TEST_F(DbStoreTest, AHungDatabaseFailsClosedWithinTheDeadline) {
  Enrollment a = enroll(alice_);
  HungPort hung;
  Config c = config_;
  c.pg_conninfo = "host=127.0.0.1 port=" + std::to_string(hung.port()) + " user=postgres";
  c.pg_timeout_ms = 600;
  Timed t = timed_verify(c, alice_, code_now(a));
  EXPECT_TRUE(has_errc(t.outcome, Errc::kUnavailable));
  // The deadline is set from a clock read in whole milliseconds and the test measures in whole
  // milliseconds too: the two truncations can make the time look 1 ms short (seen: 599).
  EXPECT_GE(t.ms, 600 - 1);
  EXPECT_LT(t.ms, 600 + 400);  // one deadline, not one per statement
  std::printf("[ figures  ] hung database (pg_timeout_ms 600): failed closed in %lld ms\n",
              static_cast<long long>(t.ms));
  // Status (what the module asks first) is bounded the same way.
  auto began = std::chrono::steady_clock::now();
  auto s = open_store(c);
  ASSERT_TRUE(is_ok(s));
  FixedClock clock(kT0);
  Verifier verifier(c, **s, clock);
  EXPECT_TRUE(has_errc(verifier.status(alice_), Errc::kUnavailable));
  EXPECT_TRUE(has_errc(verifier.status(alice_), Errc::kUnavailable));  // down stays down, fast
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  began)
                .count();
  EXPECT_LT(ms, 600 + 400);
}

TEST_F(DbStoreTest, AServerThatDiesMidLoginFailsClosed) {
  Enrollment a = enroll(alice_);
  Config c = config_;
  std::string tag = "pbx_victim_" + pg_->name();
  c.pg_conninfo += " application_name=" + tag;
  auto s = open_store(c);
  ASSERT_TRUE(is_ok(s));
  ASSERT_TRUE(is_ok((*s)->peek_state(alice_)));  // connected
  ASSERT_EQ(pg_->exec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                      "application_name = '" +
                      tag + "'"),
            "1");
  // Its backend gone, the next call cannot be answered: an error, never a success.
  EXPECT_EQ(verify_at(alice_, code_now(a), **s), kVerifyFailed);
  // A fresh store (the next login) works and the code was not used up.
  EXPECT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
}

// Found in review: a server that has let us in and then answers too slowly (a lock held by a
// DBA, a lock chain, a huge row) is a failed login, never "cannot be reached": only that opens
// the door to break-glass codes.
TEST_F(DbStoreTest, ASlowAnswerAfterConnectingIsAFailureNotUnreachable) {
  Enrollment a = enroll(alice_);
  // A DBA's VACUUM FULL or ALTER: the table locked longer than the deadline. The first look
  // (status: the enrollment, outside a transaction) waits for it until the deadline passes.
  PGconn* dba = PQconnectdb(pg_->conninfo().c_str());
  ASSERT_EQ(PQstatus(dba), CONNECTION_OK);
  PQclear(PQexec(dba, "BEGIN; LOCK TABLE pbx_mfa_enrollment IN ACCESS EXCLUSIVE MODE"));
  Config c = config_;
  c.pg_timeout_ms = 500;
  auto began = std::chrono::steady_clock::now();
  auto s = open_store(c);
  ASSERT_TRUE(is_ok(s));
  FixedClock clock(kT0);
  auto st = Verifier(c, **s, clock).status(alice_);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  began)
                .count();
  Timed t = timed_verify(c, alice_, code_now(a));
  PQclear(PQexec(dba, "ROLLBACK"));
  PQfinish(dba);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kIo) << st.error().message;
  EXPECT_GE(ms, 500);
  EXPECT_LT(ms, 500 + 400);
  EXPECT_TRUE(has_errc(t.outcome, Errc::kIo));
  // Nothing was used up: the same code works once the lock is gone.
  EXPECT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
}

TEST_F(DbStoreTest, HugeValuesAreRefusedWithoutBeingRead) {
  Enrollment a = enroll(alice_);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  pg_->exec("UPDATE pbx_mfa_state SET state_text = repeat('x', 20000000)");
  auto peeked = store().peek_state(alice_);
  ASSERT_TRUE(has_errc(peeked, Errc::kCorrupt));
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), kVerifyFailed);
  pg_->exec("UPDATE pbx_mfa_state SET state_text = NULL, state_mac = NULL");
  pg_->exec("UPDATE pbx_mfa_enrollment SET sealed = decode(repeat('00', 100000), 'hex')");
  auto loaded = store().load(alice_);
  ASSERT_TRUE(has_errc(loaded, Errc::kCorrupt));
  EXPECT_NE(loaded.error().message.find("64 KiB"), std::string::npos);
}

// Found in review: an enrollment whose state could not be committed is gone with it on the
// database store, so its save must fail rather than tell the user it was saved.
TEST_F(DbStoreTest, AnEnrollmentWhoseStateCannotBeCommittedIsNotReportedSaved) {
  pg_->exec(
      "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
      "'boom'; END $$; CREATE TRIGGER boom BEFORE UPDATE ON pbx_mfa_state FOR EACH ROW "
      "EXECUTE FUNCTION boom()");
  EnrollmentPlan plan;
  plan.recovery_codes = 0;
  auto fresh = NewEnrollment::create(plan);
  ASSERT_TRUE(is_ok(fresh));
  SaveOptions opts;
  opts.reset_state = true;
  auto saved = fresh->save(store(), alice_, kT0, time_step(kT0, 30), opts);
  EXPECT_FALSE(saved.ok()) << "told saved, but nothing is in the database";
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kNotEnrolled));
}

// H2: authenticated state rows. What a writer to pbx_mfa_state (without the fleet key) may try.

// Every state write carries a MAC: an untouched row keeps working, and each login renews it.
TEST_F(DbStoreTest, EveryStateWriteCarriesAMacAndAnUntouchedRowKeepsWorking) {
  Enrollment a = enroll(alice_);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  std::string first = pg_->exec("SELECT encode(state_mac, 'hex') FROM pbx_mfa_state");
  ASSERT_EQ(first.size(), 66U);  // 0x01 and an HMAC-SHA256, in hex
  EXPECT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kReplayed);  // state trusted
  std::string second = pg_->exec("SELECT encode(state_mac, 'hex') FROM pbx_mfa_state");
  EXPECT_NE(second, first);  // the failure was recorded with a new MAC
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), Verdict::kAccepted);
  EXPECT_EQ(store().peek_state(alice_)->failures, 0);
}

// A row copied from another user (same enrollment id, so the ids alone would not tell) does not
// verify: on schema 1 alice's lockout was lifted by copying bob's clean row over hers.
TEST_F(DbStoreTest, AStateRowCopiedFromAnotherUserFailsItsMac) {
  Enrollment a = enroll(alice_, kIdA);
  enroll(bob_, kIdA);
  ASSERT_EQ(verify_at(bob_, code_now(a), store()), Verdict::kAccepted);
  for (int i = 0; i < config_.max_failures; ++i) {
    ASSERT_EQ(verify_at(alice_, "000000", store()), Verdict::kRejected);
  }
  ASSERT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), Verdict::kLockedOut);
  std::string col = pg_->state_column();
  std::string cols = col == "state_text" ? "(state_text, state_mac)" : "(" + col + ")";
  pg_->exec("UPDATE pbx_mfa_state SET " + cols + " = (SELECT " +
            (col == "state_text" ? "state_text, state_mac" : col) +
            " FROM pbx_mfa_state WHERE user_name = 'bob') WHERE user_name = 'alice'");
  auto peeked = store().peek_state(alice_);
  ASSERT_TRUE(has_errc(peeked, Errc::kCorrupt)) << "bob's row accepted as alice's";
  EXPECT_NE(peeked.error().message.find("MAC"), std::string::npos) << peeked.error().message;
  EXPECT_NE(peeked.error().message.find("alice"), std::string::npos);
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 60), store(), kT0 + 60), kVerifyFailed);
  EXPECT_EQ(verify_at(bob_, code_now(a, kT0 + 60), store(), kT0 + 60), Verdict::kAccepted);
}

// State without a MAC (written by hand) is refused; the empty row that lock_state makes (no text,
// no MAC) is "no state yet", and a MAC without text is refused too.
TEST_F(DbStoreTest, StateWithoutMacIsRefusedAndTheEmptyRowIsNoState) {
  Enrollment a = enroll(alice_);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  pg_->exec("UPDATE pbx_mfa_state SET state_mac = NULL");
  auto peeked = store().peek_state(alice_);
  ASSERT_TRUE(has_errc(peeked, Errc::kCorrupt));
  EXPECT_NE(peeked.error().message.find("without MAC"), std::string::npos);
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), kVerifyFailed);

  pg_->exec("UPDATE pbx_mfa_state SET state_text = NULL, state_mac = '\\x01'::bytea");
  EXPECT_TRUE(has_errc(store().peek_state(alice_), Errc::kCorrupt));

  pg_->exec("UPDATE pbx_mfa_state SET state_text = NULL, state_mac = NULL");
  auto fresh = store().peek_state(alice_);
  ASSERT_TRUE(is_ok(fresh));
  EXPECT_EQ(fresh->enrollment_id, "");
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 60), store(), kT0 + 60), Verdict::kAccepted);
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 60), store(), kT0 + 60), Verdict::kReplayed);
}

// db init upgrades a schema-1 database: every state row gets its MAC (trusted as it is then),
// the replay mark and lockout carry over, and logins keep working. Before the upgrade this
// pbx-mfa refuses to run on the old layout rather than trust clear state.
TEST_F(DbStoreTest, InitUpgradesSchema1StateRowsAndLoginsKeepWorking) {
  Enrollment a = enroll(alice_, kIdA);
  Enrollment b = enroll(bob_, kIdB);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  ASSERT_EQ(verify_at(bob_, "000000", store()), Verdict::kRejected);
  enroll(User{"carol", 1003, 1003, "/nonexistent"}, kIdB);
  reopen();
  pg_->downgrade_to_schema_1();
  pg_->exec("INSERT INTO pbx_mfa_state (user_name, state) VALUES ('carol', 'garbage')");
  EXPECT_FALSE(store().peek_state(alice_).ok()) << "schema 1 state read without a MAC";
  reopen();

  auto init = db_init(config_);
  ASSERT_TRUE(is_ok(init));
  EXPECT_EQ(init->from_version, 1);
  EXPECT_EQ(init->to_version, kDbSchemaVersion);
  EXPECT_EQ(init->states_authenticated, 2);
  EXPECT_EQ(init->states_unreadable, 1);
  EXPECT_EQ(db_probe(config_)->schema_version, kDbSchemaVersion);
  EXPECT_EQ(pg_->exec("SELECT count(*) FROM pbx_mfa_state WHERE state_mac IS NOT NULL"), "2");

  EXPECT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kReplayed);  // mark kept
  EXPECT_EQ(store().peek_state(bob_)->failures, 1);                        // failures kept
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), Verdict::kAccepted);
  EXPECT_EQ(verify_at(bob_, code_now(b, kT0 + 30), store(), kT0 + 30), Verdict::kAccepted);
  auto again = db_init(config_);
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(again->from_version, kDbSchemaVersion);
  EXPECT_EQ(again->states_authenticated, 0);
}

// Under schema 1 anyone who could write pbx_mfa_state could plant a grace entry, also one that
// starts in the future (a login without a code then). The upgrade's MAC must not vouch for it:
// grace entries are dropped, the rest of the row is kept (review-14).
TEST_F(DbStoreTest, Schema1UpgradeDropsPlantedGraceEntries) {
  Enrollment a = enroll(alice_, kIdA);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  reopen();
  pg_->downgrade_to_schema_1();
  pg_->exec(
      "UPDATE pbx_mfa_state SET state = replace(state, E'end\\n', "
      "E'grace 0123456789abcdef0123456789abcdef " +
      std::to_string(kT0 + 86400) + "\\nend\\n') WHERE user_name = 'alice'");
  ASSERT_EQ(pg_->exec("SELECT count(*) FROM pbx_mfa_state WHERE state LIKE '%grace %'"), "1");
  reopen();

  auto init = db_init(config_);
  ASSERT_TRUE(is_ok(init));
  EXPECT_EQ(init->states_authenticated, 1);
  EXPECT_EQ(init->states_grace_dropped, 1);
  auto st = store().peek_state(alice_);
  ASSERT_TRUE(is_ok(st));
  EXPECT_TRUE(st->grace.empty()) << "a grace entry planted under schema 1 got a MAC";
  EXPECT_EQ(st->enrollment_id, kIdA);
  EXPECT_NE(mark(*st).last_step, kNoStep);  // the replay mark is kept
}

// A connection of the test's own, for holding row locks across statements.
class RawConn {
 public:
  explicit RawConn(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {}
  ~RawConn() { PQfinish(c_); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool ok() const { return PQstatus(c_) == CONNECTION_OK; }
  // "" when the statement succeeded, else its SQLSTATE and message.
  std::string run(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    auto st = PQresultStatus(r);
    std::string err;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      err = std::string(code != nullptr ? code : "?") + " " + PQresultErrorMessage(r);
    }
    PQclear(r);
    return err;
  }

 private:
  PGconn* c_;
};

TEST_F(DbStoreTest, ResetLocksTheStateRowFirstAndDoesNotDeadlockWithALogin) {
  // A login (and the rotation, an enrollment, 'db init') locks the state row, then the
  // enrollment row. A reset that took them in the other order deadlocked (40P01).
  Enrollment a = enroll(alice_);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  RawConn login(pg_->conninfo());
  ASSERT_TRUE(login.ok());
  ASSERT_EQ(login.run("BEGIN"), "");
  ASSERT_EQ(login.run("SELECT 1 FROM pbx_mfa_state WHERE user_name = 'alice' FOR UPDATE"), "");
  auto reset = std::async(std::launch::async, [&] { return store().remove(alice_); });
  // Until the reset waits for a row lock.
  bool waiting = false;
  for (int i = 0; i < 200 && !waiting; ++i) {
    waiting = pg_->exec(
                  "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                  "query LIKE '%pbx_mfa_%' AND query NOT LIKE '%pg_stat_activity%'") != "0";
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(waiting);
  // Longer than deadlock_timeout (1 s): the deadlock, if any, is found by then.
  EXPECT_EQ(login.run("SELECT 1 FROM pbx_mfa_enrollment WHERE user_name = 'alice' FOR UPDATE; "
                      "SELECT pg_sleep(1.2)"),
            "");
  EXPECT_EQ(login.run("COMMIT"), "");
  auto st = reset.get();
  EXPECT_TRUE(is_ok(st)) << st.error().message;
  EXPECT_EQ(pg_->exec("SELECT count(*) FROM pbx_mfa_enrollment"), "0");
  EXPECT_EQ(pg_->exec("SELECT count(*) FROM pbx_mfa_state WHERE state_text IS NOT NULL"), "0");
  // Still "not enrolled" the second time.
  EXPECT_TRUE(has_errc(store().remove(alice_), Errc::kNotEnrolled));
}

// Fleet-key rotation (pbx-mfa db rotate-key): rows under fleet_key_previous are read, every
// write goes under fleet_key, and the rotation moves the rest.
class DbKeyRotationTest : public DbStoreTest {
 protected:
  // The key the database was set up with becomes the previous one; a new key the current.
  void switch_to_new_key() {
    old_key_ = config_.fleet_key;
    new_key_ = config_.fleet_key + ".new";
    ASSERT_TRUE(is_ok(db_begin_rotation(config_, new_key_)));  // step 1
    config_.fleet_key = new_key_;
    config_.fleet_key_previous = old_key_;
    reopen();
  }
  void only(const std::string& key) {
    config_.fleet_key = key;
    config_.fleet_key_previous.clear();
    reopen();
  }
  std::string old_key_, new_key_;
};

TEST_F(DbKeyRotationTest, ARowUnderThePreviousKeyIsReadAndWrittenUnderTheNewOne) {
  Enrollment a = enroll(alice_);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  std::string sealed = stored_secret(alice_);
  switch_to_new_key();
  // Both keys configured: the old rows are read, the login works and its state write goes
  // under the new key; the enrollment row is not touched by a login.
  ASSERT_TRUE(is_ok(store().load(alice_)));
  ASSERT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), Verdict::kAccepted);
  EXPECT_EQ(stored_secret(alice_), sealed);
  auto usage = db_key_usage(config_);
  ASSERT_TRUE(is_ok(usage));
  EXPECT_EQ(usage->enrollments_previous, 1);
  EXPECT_EQ(usage->states_current, 1);
  EXPECT_EQ(usage->states_previous, 0);
  // The new key alone: the enrollment under the old key is refused (fail closed).
  only(new_key_);
  EXPECT_TRUE(has_errc(store().load(alice_), Errc::kCorrupt));
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 60), store(), kT0 + 60), kVerifyFailed);
  // The old key alone: the state row now under the new key is refused.
  only(old_key_);
  EXPECT_TRUE(has_errc(store().peek_state(alice_), Errc::kCorrupt));
  // A new enrollment with both keys is sealed under the new key.
  config_.fleet_key = new_key_;
  config_.fleet_key_previous = old_key_;
  reopen();
  Enrollment b = enroll(bob_, kIdB);
  only(new_key_);
  EXPECT_TRUE(is_ok(store().load(bob_)));
}

TEST_F(DbKeyRotationTest, ThePreviousKeyIsReadOnlyWhenARowDoesNotOpenUnderTheCurrentOne) {
  // A previous key that cannot be read: rows under the current key never need it (the common
  // login path reads one key file); a row under another key fails closed naming it.
  Enrollment a = enroll(alice_);
  config_.fleet_key_previous = config_.fleet_key + ".missing";
  reopen();
  ASSERT_TRUE(is_ok(store().load(alice_)));
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  pg_->exec(
      "UPDATE pbx_mfa_enrollment SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1)");
  auto refused = store().load(alice_);
  ASSERT_FALSE(is_ok(refused));
  EXPECT_NE(refused.error().message.find("fleet_key_previous"), std::string::npos)
      << refused.error().message;
}

TEST_F(DbKeyRotationTest, TheKeyCheckIsAcceptedUnderEitherKey) {
  switch_to_new_key();
  EXPECT_TRUE(is_ok(db_init(config_)));
  auto probe = db_probe(config_);
  ASSERT_TRUE(is_ok(probe));
  EXPECT_EQ(probe->key, KeyCheck::kMatches);
  only(new_key_);
  EXPECT_TRUE(has_errc(db_init(config_), Errc::kConfig));
  // A previous key that cannot be read is an error, not "another fleet".
  config_.fleet_key_previous = old_key_ + ".missing";
  EXPECT_FALSE(is_ok(db_init(config_)));
}

TEST_F(DbKeyRotationTest, RotateMovesEveryRowAndRunsAgainAsANoOp) {
  const User carol{"carol", 1003, 1003, "/nonexistent/home/carol"};
  Enrollment a = enroll(alice_, kIdA);
  Enrollment b = enroll(bob_, kIdB);
  Enrollment c = enroll(carol, kIdA);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  ASSERT_EQ(verify_at(bob_, code_now(b), store()), Verdict::kAccepted);
  // Refused before any row changes: no previous key, or keys of another fleet.
  ASSERT_TRUE(is_ok(create_fleet_key(config_.fleet_key + ".other")));
  EXPECT_TRUE(has_errc(db_rotate_key(config_, 2, nullptr), Errc::kConfig));
  std::string before = stored_secret(alice_);
  Config other = config_;
  other.fleet_key_previous = config_.fleet_key + ".other";
  other.fleet_key = config_.fleet_key + ".other2";
  ASSERT_TRUE(is_ok(create_fleet_key(other.fleet_key)));
  auto wrong = db_rotate_key(other, 2, nullptr);
  ASSERT_TRUE(has_errc(wrong, Errc::kConfig));
  EXPECT_NE(wrong.error().message.find("another fleet"), std::string::npos);
  EXPECT_EQ(stored_secret(alice_), before);

  switch_to_new_key();
  int calls = 0;
  auto r = db_rotate_key(config_, 2, [&](const DbRotateResult&) { ++calls; });
  ASSERT_TRUE(is_ok(r));
  EXPECT_TRUE(r->key_check_updated);
  EXPECT_EQ(r->users_total, 3);
  EXPECT_EQ(r->users_done, 3);
  EXPECT_EQ(r->batches, 2);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r->enrollments_resealed, 3);
  EXPECT_EQ(r->states_remaced, 2);
  EXPECT_TRUE(r->rows_left.empty());
  auto usage = db_key_usage(config_);
  ASSERT_TRUE(is_ok(usage));
  EXPECT_EQ(usage->previous(), 0);
  EXPECT_EQ(usage->enrollments_current, 3);
  EXPECT_EQ(usage->states_current, 2);
  // Again: nothing to do.
  auto again = db_rotate_key(config_, 2, nullptr);
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(again->key_check_updated);
  EXPECT_EQ(again->enrollments_resealed + again->states_remaced, 0);
  EXPECT_EQ(again->already_current, 5);
  // The new key alone: every user logs in (no replay: the next step); the old key alone: no
  // one, and the database is not its fleet's any more.
  only(new_key_);
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), Verdict::kAccepted);
  EXPECT_EQ(verify_at(carol, code_now(c, kT0 + 30), store(), kT0 + 30), Verdict::kAccepted);
  EXPECT_TRUE(is_ok(db_init(config_)));
  only(old_key_);
  EXPECT_TRUE(has_errc(store().load(bob_), Errc::kCorrupt));
  EXPECT_TRUE(has_errc(db_init(config_), Errc::kConfig));
}

TEST_F(DbKeyRotationTest, ABatchThatTimesOutIsTriedAgainWithFewerUsers) {
  // A login stuck on the fourth user's row: the batch of four times out, the rotation goes on
  // in smaller batches and stops only at that user (before: nothing rotated at all).
  std::vector<User> users;
  for (int i = 1; i <= 4; ++i) {
    std::string name = "pbxu" + std::to_string(i);
    users.push_back(User{name, static_cast<uid_t>(2000 + i), static_cast<gid_t>(2000 + i),
                         "/nonexistent/home/" + name});
    enroll(users.back(), i % 2 == 1 ? kIdA : kIdB);
  }
  switch_to_new_key();
  config_.pg_timeout_ms = 400;  // lock_timeout 300 ms
  RawConn login(pg_->conninfo());
  ASSERT_TRUE(login.ok());
  ASSERT_EQ(login.run("BEGIN; SELECT 1 FROM pbx_mfa_enrollment WHERE user_name = 'pbxu4' "
                      "FOR UPDATE"),
            "");
  auto r = db_rotate_key(config_, 4, nullptr);
  ASSERT_FALSE(is_ok(r));
  EXPECT_NE(r.error().message.find("after 'pbxu3'"), std::string::npos) << r.error().message;
  EXPECT_EQ(login.run("COMMIT"), "");
  auto usage = db_key_usage(config_);
  ASSERT_TRUE(is_ok(usage));
  EXPECT_EQ(usage->enrollments_current, 3);
  EXPECT_EQ(usage->enrollments_previous, 1);
  // Run again: the rest.
  auto again = db_rotate_key(config_, 4, nullptr);
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(again->enrollments_resealed, 1);
  EXPECT_EQ(again->already_current, 3);
  only(new_key_);
  for (const auto& u : users) EXPECT_TRUE(is_ok(store().load(u))) << u.name;
}

TEST_F(DbKeyRotationTest, StepOneRecordsTheNewKeyAndOnlyItIsAccepted) {
  Enrollment a = enroll(alice_);
  const std::string old_key = config_.fleet_key;
  const std::string new_key = old_key + ".new";
  // A database of a build without the column (optional: older binaries ignore it): doctor's
  // counts work, and step 1 adds it.
  pg_->exec("ALTER TABLE pbx_mfa_schema DROP COLUMN next_key_check");
  auto without = db_key_usage(config_);
  ASSERT_TRUE(is_ok(without));
  EXPECT_EQ(without->next_key_check, KeyUnder::kNone);
  EXPECT_EQ(without->key_check, KeyUnder::kCurrent);
  // Refused while a rotation is under way on this host (fleet_key_previous set).
  Config busy = config_;
  busy.fleet_key_previous = old_key + ".whatever";
  auto refused = db_begin_rotation(busy, new_key);
  ASSERT_TRUE(has_errc(refused, Errc::kConfig));
  EXPECT_NE(refused.error().message.find("fleet_key_previous is set"), std::string::npos);
  EXPECT_NE(::access(new_key.c_str(), F_OK), 0);
  ASSERT_TRUE(is_ok(db_begin_rotation(config_, new_key)));
  EXPECT_NE(pg_->exec("SELECT next_key_check IS NOT NULL FROM pbx_mfa_schema"), "f");
  // A second step 1 while the first is pending: refused, no key made.
  auto pending = db_begin_rotation(config_, old_key + ".new2");
  ASSERT_TRUE(has_errc(pending, Errc::kConfig));
  EXPECT_NE(pending.error().message.find("a rotation is pending"), std::string::npos);
  EXPECT_NE(::access((old_key + ".new2").c_str(), F_OK), 0);
  // The first change (reads the new key, writes the old): the phases as doctor sees them.
  config_.fleet_key_previous = new_key;
  auto usage = db_key_usage(config_);
  ASSERT_TRUE(is_ok(usage));
  EXPECT_EQ(usage->key_check, KeyUnder::kCurrent);
  EXPECT_EQ(usage->next_key_check, KeyUnder::kPrevious);
  // Step 4 with a key that is not the recorded new one (another new key): refused.
  const std::string stranger = old_key + ".stranger";
  ASSERT_TRUE(is_ok(create_fleet_key(stranger)));
  Config wrong = config_;
  wrong.fleet_key = stranger;
  wrong.fleet_key_previous = old_key;
  std::string before = stored_secret(alice_);
  auto r = db_rotate_key(wrong, 10, nullptr);
  ASSERT_TRUE(has_errc(r, Errc::kConfig));
  EXPECT_NE(r.error().message.find("not the new key"), std::string::npos) << r.error().message;
  // Both settings holding the same key: refused.
  const std::string copy = old_key + ".copy";
  ASSERT_TRUE(write_file(copy, testing::read_file(new_key).value_or(""), 0400));
  wrong.fleet_key = new_key;
  wrong.fleet_key_previous = copy;
  r = db_rotate_key(wrong, 10, nullptr);
  ASSERT_TRUE(has_errc(r, Errc::kConfig));
  EXPECT_NE(r.error().message.find("same key"), std::string::npos) << r.error().message;
  EXPECT_EQ(stored_secret(alice_), before);
  // The second change, then step 4 with the recorded key.
  config_.fleet_key = new_key;
  config_.fleet_key_previous = old_key;
  usage = db_key_usage(config_);
  ASSERT_TRUE(is_ok(usage));
  EXPECT_EQ(usage->key_check, KeyUnder::kPrevious);
  EXPECT_EQ(usage->next_key_check, KeyUnder::kCurrent);
  ASSERT_TRUE(is_ok(db_rotate_key(config_, 10, nullptr)));
  usage = db_key_usage(config_);
  ASSERT_TRUE(is_ok(usage));
  EXPECT_EQ(usage->key_check, KeyUnder::kCurrent);
  EXPECT_EQ(usage->next_key_check, KeyUnder::kNone);        // cleared: no rotation under way
  EXPECT_TRUE(is_ok(db_rotate_key(config_, 10, nullptr)));  // a rerun is accepted
}

TEST_F(DbKeyRotationTest, TwoRotationsAtOnceTheSecondIsRefused) {
  enroll(alice_);
  switch_to_new_key();
  // Another run holding the rotation lock (its own session, the same schema).
  RawConn other(pg_->conninfo());
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other.run("SELECT pg_advisory_lock(1885437293, hashtext('pbx-mfa rotate-key ' || "
                      "current_schema()))"),
            "");
  std::string before = stored_secret(alice_);
  auto r = db_rotate_key(config_, 10, nullptr);
  ASSERT_TRUE(has_errc(r, Errc::kConfig));
  EXPECT_NE(r.error().message.find("another 'pbx-mfa db rotate-key' is running"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(stored_secret(alice_), before);
  ASSERT_EQ(other.run("SELECT pg_advisory_unlock_all()"), "");
  EXPECT_TRUE(is_ok(db_rotate_key(config_, 10, nullptr)));
}

TEST_F(DbKeyRotationTest, ForgedRowsUnderTheOldKeyAreLeftAsTheyAreAndStillRefused) {
  // Carol's state row with a bad MAC, and dave's enrollment and state copied from alice's:
  // the rotation re-seals neither (it would launder them) and logins still refuse them.
  const User carol{"carol", 1003, 1003, "/nonexistent/home/carol"};
  const User dave{"dave", 1004, 1004, "/nonexistent/home/dave"};
  Enrollment a = enroll(alice_, kIdA);
  Enrollment c = enroll(carol, kIdB);
  enroll(dave, kIdB);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  ASSERT_EQ(verify_at(carol, code_now(c), store()), Verdict::kAccepted);
  pg_->exec(
      "UPDATE pbx_mfa_state SET state_mac = set_byte(state_mac, 3, get_byte(state_mac, 3) # 1) "
      "WHERE user_name = 'carol'");
  pg_->exec(
      "UPDATE pbx_mfa_enrollment SET (enrollment_id, sealed) = (SELECT enrollment_id, sealed "
      "FROM pbx_mfa_enrollment WHERE user_name = 'alice') WHERE user_name = 'dave'");
  pg_->exec(
      "INSERT INTO pbx_mfa_state (user_name, state_text, state_mac) SELECT 'dave', state_text, "
      "state_mac FROM pbx_mfa_state WHERE user_name = 'alice' ON CONFLICT (user_name) DO UPDATE "
      "SET state_text = EXCLUDED.state_text, state_mac = EXCLUDED.state_mac");
  auto forged = [&] {
    return pg_->exec(
        "SELECT string_agg(encode(state_mac, 'hex'), ',' ORDER BY user_name) || (SELECT "
        "encode(sealed, 'hex') FROM pbx_mfa_enrollment WHERE user_name = 'dave') FROM "
        "pbx_mfa_state WHERE user_name IN ('carol', 'dave')");
  };
  const std::string before = forged();
  switch_to_new_key();
  auto r = db_rotate_key(config_, 2, nullptr);
  ASSERT_TRUE(is_ok(r));
  EXPECT_EQ(r->rows_left.size(), 3U);  // carol's state, dave's enrollment and state
  EXPECT_EQ(forged(), before);
  only(new_key_);
  EXPECT_EQ(verify_at(carol, code_now(c, kT0 + 30), store(), kT0 + 30), kVerifyFailed);
  EXPECT_EQ(verify_at(dave, code_now(a, kT0 + 30), store(), kT0 + 30), kVerifyFailed);
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), Verdict::kAccepted);
}

TEST_F(DbKeyRotationTest, RowsUnderTheNewKeyNeedNoPreviousKeyFile) {
  // After the rotation, fleet_key_previous naming a file that is gone (destroyed early, or
  // not copied to this host): the previous key is loaded only for a row not under fleet_key.
  Enrollment a = enroll(alice_);
  ASSERT_EQ(verify_at(alice_, code_now(a), store()), Verdict::kAccepted);
  switch_to_new_key();
  ASSERT_TRUE(is_ok(db_rotate_key(config_, 10, nullptr)));
  ASSERT_EQ(::unlink(old_key_.c_str()), 0);
  reopen();
  ASSERT_TRUE(is_ok(store().load(alice_)));
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 30), store(), kT0 + 30), Verdict::kAccepted);
  EXPECT_EQ(verify_at(alice_, code_now(a, kT0 + 60), store(), kT0 + 60), Verdict::kAccepted);
}

TEST_F(DbKeyRotationTest, ARowUnderNeitherKeyIsLeftAndNamed) {
  enroll(alice_, kIdA);
  enroll(bob_, kIdB);
  pg_->exec(
      "UPDATE pbx_mfa_enrollment SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1)"
      " WHERE user_name = 'bob'");
  std::string damaged = stored_secret(bob_);
  switch_to_new_key();
  auto r = db_rotate_key(config_, 100, nullptr);
  ASSERT_TRUE(is_ok(r));
  EXPECT_EQ(r->enrollments_resealed, 1);
  ASSERT_EQ(r->rows_left.size(), 1U);
  EXPECT_NE(r->rows_left[0].find("user bob: enrollment does not open under either key"),
            std::string::npos);
  EXPECT_EQ(stored_secret(bob_), damaged);
  auto usage = db_key_usage(config_);
  ASSERT_TRUE(is_ok(usage));
  EXPECT_EQ(usage->enrollments_neither, 1);
  EXPECT_EQ(usage->enrollments_current, 1);
  ASSERT_EQ(usage->neither.size(), 1U);
}

TEST_F(DbKeyRotationTest, ANameFromTheDatabaseIsEscapedBeforeItIsShown) {
  // A row planted under a name with terminal escapes: named, but never with the raw bytes.
  enroll(alice_, kIdA);
  pg_->exec(
      "INSERT INTO pbx_mfa_enrollment (user_name, enrollment_id, sealed, created) SELECT "
      "E'evil\\x1b[2J\\x07', enrollment_id, sealed, created FROM pbx_mfa_enrollment "
      "WHERE user_name = 'alice'");
  switch_to_new_key();
  auto r = db_rotate_key(config_, 100, nullptr);
  ASSERT_TRUE(is_ok(r));
  ASSERT_EQ(r->rows_left.size(), 1U);
  EXPECT_EQ(r->rows_left[0].find('\x1b'), std::string::npos);
  EXPECT_EQ(r->rows_left[0].find('\x07'), std::string::npos);
  EXPECT_NE(r->rows_left[0].find("user evil\\x1b[2J\\x07:"), std::string::npos) << r->rows_left[0];
  auto usage = db_key_usage(config_);
  ASSERT_TRUE(is_ok(usage));
  ASSERT_EQ(usage->neither.size(), 1U);
  EXPECT_EQ(usage->neither[0].find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace pbx::totp

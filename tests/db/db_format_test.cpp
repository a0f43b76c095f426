// The database store across the change of the row formats (issue 16): rows written as the
// release before devices wrote them (a version 1 sealed enrollment, a version 1 state row with
// its MAC) log in unchanged, `db migrate` (db_upgrade) rewrites them as version 2 once and only
// once, a forged state row is not blessed by it, and an enrollment of two devices keeps both
// secrets sealed. Against the throwaway cluster (tests/db/cluster.sh), a schema per test.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pbx/totp/base32.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/seal.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"
#include "pg_test_db.hpp"

namespace pbx::totp {

// Readable gtest output (found by ADL).
void PrintTo(Verdict verdict, std::ostream* os) { *os << verdict_name(verdict); }

namespace {

using testing::PgSchema;

// The RFC 6238 key, and a second device's key (32 bytes, as pbx-mfa makes them).
constexpr std::string_view kRfcKey = "12345678901234567890";
constexpr std::string_view kPhone2Key = "0123456789abcdefghijklmnopqrstuv";
constexpr std::string_view kIdA = "0123456789abcdef0123456789abcdef";
constexpr std::string_view kIdB = "fedcba9876543210fedcba9876543210";
constexpr std::int64_t kT0 = 56666667LL * 30;  // the start of a 30-second step
constexpr std::int64_t kCreated = kT0 - 86400;
constexpr KdfParams kCheapKdf{1024, 8, 1};

SecretBytes bytes_of(std::string_view text) {
  return SecretBytes(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

std::string code_at(std::string_view key, std::int64_t t, Algorithm alg = Algorithm::kSha1,
                    int digits = 6, int period = 30) {
  auto code = hotp(bytes_of(key), alg, static_cast<std::uint64_t>(time_step(t, period)), digits);
  if (!code) throw std::runtime_error("hotp failed");
  return format_code(*code, digits);
}

std::string hex_of(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// The sealed text of a user's enrollment as the release before devices wrote it: version 1, one
// secret, its parameters as lines of their own (lib/src/enrollment.cpp before 36d3465).
std::string v1_enrollment_text(std::string_view id, std::string_view key,
                               const RecoverySet& recovery) {
  std::string s = "# pbx-mfa secret file: written by pbx-mfa, do not edit\nversion 1\n";
  s += "id " + std::string(id) + "\n";
  s += "secret " + base32_encode(bytes_of(key), false) + "\n";
  s += "algorithm SHA1\ndigits 6\nperiod 30\n";
  s += "created " + std::to_string(kCreated) + "\n";
  if (!recovery.hashes.empty()) {
    s += "recovery-salt " + recovery.salt + "\n";
    s += "recovery-kdf " + kdf_text(recovery.kdf) + "\n";
    for (const auto& h : recovery.hashes) s += "recovery " + h + "\n";
  }
  return s + "end\n";
}

// A state row of that release: version 1, one replay mark (last-step) and skew.
std::string v1_state_text(std::string_view id, std::int64_t last_step, int failures) {
  return "version 1\nid " + std::string(id) + "\nlast-step " + std::to_string(last_step) +
         "\nfailures " + std::to_string(failures) + "\nlocked-until 0\nskew 0\nlast-success " +
         std::to_string(kT0) + "\nend\n";
}

class DbFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_PG_CLUSTER();
    char dir[] = "/tmp/pbx-dbformat-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    tmp_ = dir;
    pg_ = std::make_unique<PgSchema>();
    testing::use_pg_store(config_, *pg_, tmp_ + "/fleet.key");
    config_.trusted_uid = 0;
    config_.window = 1;
    config_.max_failures = 5;
    config_.grace_period = 0;
    auto init = db_init(config_);
    ASSERT_TRUE(init.ok()) << init.error().message;
    auto key = load_fleet_key(config_.fleet_key, 0);
    ASSERT_TRUE(key.ok()) << key.error().message;
    key_ = std::move(key.value());
    auto codes = generate_recovery_codes(2);
    ASSERT_TRUE(codes.ok());
    auto set = hash_recovery_codes(codes.value(), kCheapKdf);
    ASSERT_TRUE(set.ok());
    recovery_ = set.value();
    codes_ = std::move(codes.value());
  }
  void TearDown() override {
    store_.reset();
    pg_.reset();
    if (!tmp_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(tmp_, ec);
    }
  }

  Store& store() {
    if (!store_) {
      auto opened = open_store(config_);
      if (!opened.ok()) throw std::runtime_error("open_store: " + opened.error().message);
      store_ = std::move(opened.value());
    }
    return *store_;
  }

  // Writes the rows the release before devices wrote: the enrollment sealed under the fleet
  // key with the user's binding, the state with its MAC (seal() and state_mac() of the lib).
  void put_v1_enrollment(const std::string& user, std::string_view id, std::string_view key) {
    std::string aad = "pbx-mfa enrollment v1";
    aad.push_back('\0');
    auto box = seal(key_, aad + user, v1_enrollment_text(id, key, recovery_));
    ASSERT_TRUE(box.ok()) << box.error().message;
    pg_->exec(
        "INSERT INTO pbx_mfa_enrollment (user_name, enrollment_id, sealed, created) VALUES ('" +
        user + "', '" + std::string(id) + "', decode('" + hex_of(*box) + "', 'hex'), " +
        std::to_string(kCreated) + ")");
  }
  void put_v1_state(const std::string& user, const std::string& text, std::string_view id) {
    auto mac_key = derive_fleet_subkey(key_, kStateMacLabel);
    ASSERT_TRUE(mac_key.ok());
    auto mac = state_mac(*mac_key, user, id, text);
    ASSERT_TRUE(mac.ok());
    pg_->exec("INSERT INTO pbx_mfa_state (user_name, state_text, state_mac) VALUES ('" + user +
              "', '" + text + "', decode('" + hex_of(*mac) + "', 'hex'))");
  }
  // The database as the release before devices left it: schema version 2.
  void schema_of_previous_release() { pg_->exec("UPDATE pbx_mfa_schema SET version = 2"); }

  // The opened sealed text of a user's enrollment row.
  std::string sealed_text(const std::string& user) {
    std::string hex = pg_->exec(
        "SELECT encode(sealed, 'hex') FROM pbx_mfa_enrollment WHERE "
        "user_name = '" +
        user + "'");
    std::string box;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
      box.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    std::string aad = "pbx-mfa enrollment v1";
    aad.push_back('\0');
    auto plain = open_sealed(key_, aad + user, box);
    if (!plain) return "<does not open: " + plain.error().message + ">";
    return std::string(plain->view());
  }
  std::string row(const std::string& user) {
    return pg_->exec(
        "SELECT e.enrollment_id || ' ' || encode(e.sealed, 'hex') || ' ' || "
        "coalesce(s.state_text, '-') || ' ' || coalesce(encode(s.state_mac, 'hex'), "
        "'-') FROM pbx_mfa_enrollment e FULL JOIN pbx_mfa_state s USING (user_name) "
        "WHERE user_name = '" +
        user + "'");
  }

  Result<Outcome> verify(const User& user, const std::string& code, std::int64_t t) {
    FixedClock clock(t);
    Verifier verifier(config_, store(), clock);
    return verifier.verify(user, code);
  }

  std::string tmp_;
  std::unique_ptr<PgSchema> pg_;
  Config config_;
  SecretBytes key_;
  RecoverySet recovery_;
  std::vector<SecretString> codes_;
  std::unique_ptr<Store> store_;
  User alice_{"alice", 1001, 1001, "/nonexistent"};
  User bob_{"bob", 1002, 1002, "/nonexistent"};
};

// (a) An old row logs in unchanged: its secret is the device "default", the replay mark of the
// old state row is honoured (the code of its last-step is refused as replayed), the next step's
// code is accepted and named by its device.
TEST_F(DbFormatTest, AVersion1RowLogsInAndItsReplayMarkIsHonoured) {
  const std::int64_t last = time_step(kT0, 30);
  put_v1_enrollment("alice", kIdA, kRfcKey);
  put_v1_state("alice", v1_state_text(kIdA, last, 1), kIdA);
  schema_of_previous_release();

  auto e = store().load(alice_);
  ASSERT_TRUE(e.ok()) << e.error().message;
  ASSERT_EQ(e->devices.size(), 1U);
  EXPECT_EQ(e->devices[0].name, "default");
  EXPECT_EQ(e->devices[0].created, kCreated);
  EXPECT_EQ(e->id, kIdA);
  auto peeked = store().peek_state(alice_);
  ASSERT_TRUE(peeked.ok()) << peeked.error().message;
  EXPECT_EQ(peeked->failures, 1);

  auto replay = verify(alice_, code_at(kRfcKey, kT0), kT0 + 10);
  ASSERT_TRUE(replay.ok()) << replay.error().message;
  EXPECT_EQ(replay->verdict, Verdict::kReplayed) << "the old state row's replay mark was lost";
  EXPECT_EQ(replay->device, "default");
  auto next = verify(alice_, code_at(kRfcKey, kT0 + 30), kT0 + 30);
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(next->verdict, Verdict::kAccepted);
  EXPECT_EQ(next->device, "default");
  auto again = verify(alice_, code_at(kRfcKey, kT0 + 30), kT0 + 31);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->verdict, Verdict::kReplayed);
  // A recovery code of the old row works too.
  auto rec = verify(alice_, std::string(codes_[0].view()), kT0 + 40);
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  EXPECT_EQ(rec->verdict, Verdict::kRecoveryAccepted);
  // The login wrote its state in the new format (the mark tied to the device; version 2, as the
  // recovery code's success cleared the replay's last-failure line); the enrollment row is left
  // as it was until db migrate.
  std::string state = pg_->exec("SELECT state_text FROM pbx_mfa_state WHERE user_name = 'alice'");
  EXPECT_EQ(state.rfind("version 2\n", 0), 0U) << state;
  EXPECT_NE(state.find("device default " + std::to_string(kCreated) + " " +
                       std::to_string(time_step(kT0 + 30, 30)) + " "),
            std::string::npos)
      << state;
  EXPECT_NE(sealed_text("alice").find("\nversion 1\n"), std::string::npos);
}

// (b) db migrate rewrites both rows as version 2 (id kept, the secret and the replay mark with
// them), a forged version 1 state row stays as it is and is reported, the schema says 4 (3 plus the
// events table), and a second run changes nothing.
TEST_F(DbFormatTest, MigrateUpgradesVersion1RowsOnceAndBlessesNoForgedState) {
  const std::int64_t last = time_step(kT0, 30);
  put_v1_enrollment("alice", kIdA, kRfcKey);
  put_v1_state("alice", v1_state_text(kIdA, last, 2), kIdA);
  // Bob's state row was changed after its MAC: failures 4 -> 0 (someone with write access to
  // the table wiping his failures).
  put_v1_enrollment("bob", kIdB, kPhone2Key);
  put_v1_state("bob", v1_state_text(kIdB, kNoStep, 4), kIdB);
  pg_->exec(
      "UPDATE pbx_mfa_state SET state_text = replace(state_text, 'failures 4', "
      "'failures 0') WHERE user_name = 'bob'");
  // Carol has only a state row of version 1 (an earlier enrollment's, say): it is upgraded, its
  // mark kept unbound (created -1) as the verifier reads it.
  put_v1_state("carol", v1_state_text(kIdB, last, 0), kIdB);
  schema_of_previous_release();
  std::string alice_id_before = pg_->exec(
      "SELECT enrollment_id || ' ' || created FROM pbx_mfa_enrollment WHERE user_name = 'alice'");
  std::string bob_state_before = pg_->exec(
      "SELECT state_text || encode(state_mac, 'hex') FROM pbx_mfa_state WHERE user_name = 'bob'");
  EXPECT_FALSE(store().peek_state(bob_).ok()) << "a forged state row was read";
  store_.reset();

  auto up = db_upgrade(config_);
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_EQ(up->from_version, 2);
  EXPECT_EQ(up->to_version, kDbSchemaVersion);
  EXPECT_EQ(up->enrollments_upgraded, 2);
  EXPECT_EQ(up->states_upgraded, 2);  // alice, carol
  EXPECT_EQ(up->rows_left.size(), 1U);
  std::string left = up->rows_left.empty() ? "" : up->rows_left.front();
  EXPECT_NE(left.find("user bob: state row"), std::string::npos) << left;
  EXPECT_NE(left.find("MAC does not verify"), std::string::npos) << left;
  auto probe = db_probe(config_);
  ASSERT_TRUE(probe.ok());
  EXPECT_EQ(probe->schema_version, kDbSchemaVersion);

  // The rows, as SQL sees them: ids and created kept, sealed text of version 2 with the one
  // device "default" (created with the enrollment), state of version 2 with the mark tied to it.
  EXPECT_EQ(pg_->exec("SELECT enrollment_id || ' ' || created FROM pbx_mfa_enrollment WHERE "
                      "user_name = 'alice'"),
            alice_id_before);
  std::string text = sealed_text("alice");
  EXPECT_NE(text.find("\nversion 2\n"), std::string::npos) << "not upgraded";
  EXPECT_NE(text.find("\nid " + std::string(kIdA) + "\n"), std::string::npos);
  EXPECT_NE(text.find("\ndevice default " + std::to_string(kCreated) + " SHA1 6 30 " +
                      base32_encode(bytes_of(kRfcKey), false) + "\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nrecovery " + recovery_.hashes[1] + "\n"), std::string::npos);
  EXPECT_NE(sealed_text("bob").find("\nversion 2\n"), std::string::npos);
  std::string state = pg_->exec("SELECT state_text FROM pbx_mfa_state WHERE user_name = 'alice'");
  EXPECT_EQ(state.rfind("version 2\n", 0), 0U) << state;
  EXPECT_NE(state.find("\ndevice default " + std::to_string(kCreated) + " " + std::to_string(last) +
                       " 0 " + std::to_string(kT0) + "\n"),
            std::string::npos)
      << state;
  EXPECT_NE(state.find("\nfailures 2\n"), std::string::npos) << state;
  std::string carol = pg_->exec("SELECT state_text FROM pbx_mfa_state WHERE user_name = 'carol'");
  EXPECT_EQ(carol.rfind("version 2\n", 0), 0U) << carol;
  EXPECT_NE(carol.find("\ndevice default -1 " + std::to_string(last) + " 0 "), std::string::npos)
      << carol;
  EXPECT_EQ(pg_->exec("SELECT state_text || encode(state_mac, 'hex') FROM pbx_mfa_state WHERE "
                      "user_name = 'bob'"),
            bob_state_before)
      << "the forged state row was rewritten";

  // A second run changes nothing (byte for byte) and reports the forged row again.
  std::string alice_row = row("alice");
  std::string bob_row = row("bob");
  std::string carol_row = row("carol");
  auto again = db_upgrade(config_);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->from_version, kDbSchemaVersion);
  EXPECT_EQ(again->enrollments_upgraded, 0);
  EXPECT_EQ(again->states_upgraded, 0);
  EXPECT_EQ(again->rows_left.size(), 1U);
  EXPECT_EQ(row("alice"), alice_row);
  EXPECT_EQ(row("bob"), bob_row);
  EXPECT_EQ(row("carol"), carol_row);
  ASSERT_TRUE(db_init(config_).ok());  // db init of an upgraded database: the same
  EXPECT_EQ(row("alice"), alice_row);

  // Alice logs in with the same secret; the old replay mark still holds; her recovery codes
  // too. Bob's forged state is still refused (no MAC was made for it).
  auto replay = verify(alice_, code_at(kRfcKey, kT0), kT0 + 10);
  ASSERT_TRUE(replay.ok()) << replay.error().message;
  EXPECT_EQ(replay->verdict, Verdict::kReplayed);
  auto next = verify(alice_, code_at(kRfcKey, kT0 + 30), kT0 + 30);
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(next->verdict, Verdict::kAccepted);
  EXPECT_EQ(next->device, "default");
  auto rec = verify(alice_, std::string(codes_[1].view()), kT0 + 40);
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  EXPECT_EQ(rec->verdict, Verdict::kRecoveryAccepted);
  EXPECT_FALSE(verify(bob_, code_at(kPhone2Key, kT0 + 60), kT0 + 60).ok())
      << "the forged state row of bob was blessed by the upgrade";
  EXPECT_FALSE(store().peek_state(bob_).ok());
}

// Rows of version 1 written after the upgrade (a server still on the previous release) are
// upgraded by the next run; a version 1 enrollment that does not open is reported, not touched.
TEST_F(DbFormatTest, MigrateAgainUpgradesLateRowsAndReportsRowsThatDoNotOpen) {
  auto first = db_upgrade(config_);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->from_version, kDbSchemaVersion);
  EXPECT_EQ(first->enrollments_upgraded + first->states_upgraded, 0);
  EXPECT_TRUE(first->rows_left.empty());

  put_v1_enrollment("alice", kIdA, kRfcKey);
  put_v1_state("alice", v1_state_text(kIdA, time_step(kT0, 30), 0), kIdA);
  put_v1_enrollment("bob", kIdB, kPhone2Key);
  // Bob's row moved to dave: the sealed text is bound to bob and does not open for dave.
  pg_->exec("UPDATE pbx_mfa_enrollment SET user_name = 'dave' WHERE user_name = 'bob'");
  std::string dave_before = row("dave");
  auto late = db_upgrade(config_);
  ASSERT_TRUE(late.ok()) << late.error().message;
  EXPECT_EQ(late->enrollments_upgraded, 1);
  EXPECT_EQ(late->states_upgraded, 1);
  ASSERT_EQ(late->rows_left.size(), 1U);
  EXPECT_NE(late->rows_left[0].find("user dave: enrollment row"), std::string::npos)
      << late->rows_left[0];
  EXPECT_EQ(row("dave"), dave_before);
  auto next = verify(alice_, code_at(kRfcKey, kT0 + 30), kT0 + 30);
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(next->verdict, Verdict::kAccepted);
}

// The upgrade rewrites a user's rows under the state row's lock: a login that holds the lock
// and writes the state (version 2, a later replay mark) while db migrate runs is not undone by
// the upgrade, which waits for it and then finds nothing left to do for that state row.
TEST_F(DbFormatTest, MigrateWaitsForALoginThatHoldsTheRowAndKeepsWhatItWrote) {
  const std::int64_t last = time_step(kT0, 30);
  put_v1_enrollment("alice", kIdA, kRfcKey);
  put_v1_state("alice", v1_state_text(kIdA, last, 0), kIdA);
  std::string login_text =
      "version 2\nid " + std::string(kIdA) + "\nfailures 0\nlocked-until 0\nlast-success " +
      std::to_string(kT0 + 150) + "\ndevice default " + std::to_string(kCreated) + " " +
      std::to_string(last + 5) + " 0 " + std::to_string(kT0 + 150) + "\nend\n";
  auto mac_key = derive_fleet_subkey(key_, kStateMacLabel);
  ASSERT_TRUE(mac_key.ok());
  auto login_mac = state_mac(*mac_key, "alice", kIdA, login_text);
  ASSERT_TRUE(login_mac.ok());

  PGconn* login = PQconnectdb(pg_->conninfo().c_str());
  ASSERT_EQ(PQstatus(login), CONNECTION_OK);
  auto run = [&](const std::string& sql) {
    PGresult* r = PQexec(login, sql.c_str());
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
  };
  ASSERT_TRUE(run("BEGIN"));
  ASSERT_TRUE(run("SELECT 1 FROM pbx_mfa_state WHERE user_name = 'alice' FOR UPDATE"));
  std::atomic<bool> done{false};
  std::optional<Result<DbInitResult>> up;
  std::thread migrate([&] {
    up = db_upgrade(config_);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_FALSE(done) << "db migrate did not wait for the row lock of a login";
  EXPECT_TRUE(run("UPDATE pbx_mfa_state SET state_text = '" + login_text +
                  "', state_mac = decode('" + hex_of(*login_mac) +
                  "', 'hex') WHERE user_name = 'alice'"));
  EXPECT_TRUE(run("COMMIT"));
  migrate.join();
  PQfinish(login);
  ASSERT_TRUE(up.has_value() && up->ok()) << (up && !up->ok() ? up->error().message : "");
  EXPECT_EQ((*up)->enrollments_upgraded, 1);
  EXPECT_EQ((*up)->states_upgraded, 0);
  EXPECT_EQ(pg_->exec("SELECT state_text FROM pbx_mfa_state WHERE user_name = 'alice'"), login_text)
      << "the upgrade overwrote what the login wrote";
  auto replay = verify(alice_, code_at(kRfcKey, kT0 + 150), kT0 + 150);
  ASSERT_TRUE(replay.ok()) << replay.error().message;
  EXPECT_EQ(replay->verdict, Verdict::kReplayed);
}

// (c) An enrollment of two devices round-trips through the database store, each device's
// secret sealed: no base32 (nor hex, nor raw bytes) of either secret in any column.
TEST_F(DbFormatTest, TwoDevicesRoundTripAndNeitherSecretIsInAnyColumn) {
  Enrollment e = single_device_enrollment(std::string(kIdA), bytes_of(kRfcKey), Algorithm::kSha1, 6,
                                          30, kCreated);
  Device phone2;
  phone2.name = "phone2";
  phone2.secret = bytes_of(kPhone2Key);
  phone2.algorithm = Algorithm::kSha256;
  phone2.digits = 8;
  phone2.period = 60;
  phone2.created = kCreated + 3600;
  e.devices.push_back(std::move(phone2));
  e.recovery = recovery_;
  ASSERT_TRUE(store().save(alice_, e, /*overwrite=*/true).ok());

  auto loaded = store().load(alice_);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->devices.size(), 2U);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(e.devices[i].name);
    EXPECT_EQ(loaded->devices[i].name, e.devices[i].name);
    EXPECT_TRUE(loaded->devices[i].secret == e.devices[i].secret);
    EXPECT_EQ(loaded->devices[i].algorithm, e.devices[i].algorithm);
    EXPECT_EQ(loaded->devices[i].digits, e.devices[i].digits);
    EXPECT_EQ(loaded->devices[i].period, e.devices[i].period);
    EXPECT_EQ(loaded->devices[i].created, e.devices[i].created);
  }
  EXPECT_EQ(loaded->recovery.hashes, e.recovery.hashes);

  // One login per device, each mark of its own.
  auto one = verify(alice_, code_at(kRfcKey, kT0), kT0);
  ASSERT_TRUE(one.ok()) << one.error().message;
  EXPECT_EQ(one->verdict, Verdict::kAccepted);
  EXPECT_EQ(one->device, "default");
  auto two = verify(alice_, code_at(kPhone2Key, kT0 + 1, Algorithm::kSha256, 8, 60), kT0 + 1);
  ASSERT_TRUE(two.ok()) << two.error().message;
  EXPECT_EQ(two->verdict, Verdict::kAccepted);
  EXPECT_EQ(two->device, "phone2");
  auto replay = verify(alice_, code_at(kPhone2Key, kT0 + 1, Algorithm::kSha256, 8, 60), kT0 + 2);
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(replay->verdict, Verdict::kReplayed);
  EXPECT_EQ(replay->device, "phone2");

  // Every column of both tables as text (bytea as hex and as escaped bytes), searched for each
  // secret in base32 (upper and lower case), hex and raw.
  std::string all = pg_->exec(
      "SELECT string_agg(t, ' ') FROM ("
      " SELECT user_name || ' ' || enrollment_id || ' ' || encode(sealed, 'hex') || ' ' ||"
      " encode(sealed, 'escape') || ' ' || encode(sealed, 'base64') || ' ' || created AS t"
      " FROM pbx_mfa_enrollment UNION ALL"
      " SELECT user_name || ' ' || coalesce(state_text, '') || ' ' ||"
      " coalesce(encode(state_mac, 'hex'), '') AS t FROM pbx_mfa_state) rows");
  ASSERT_NE(all.find("alice"), std::string::npos);
  for (std::string_view key : {kRfcKey, kPhone2Key}) {
    SCOPED_TRACE(std::string(key));
    std::string b32 = base32_encode(bytes_of(key), false);
    std::string lower = b32;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(all.find(b32.substr(0, 16)), std::string::npos);
    EXPECT_EQ(all.find(lower.substr(0, 16)), std::string::npos);
    EXPECT_EQ(all.find(hex_of(key).substr(0, 16)), std::string::npos);
    EXPECT_EQ(all.find(std::string(key)), std::string::npos);
  }
  for (const auto& h : e.recovery.hashes) EXPECT_EQ(all.find(h), std::string::npos);

  // The row is of version 2 already: db migrate leaves it as it is.
  std::string before = row("alice");
  auto up = db_upgrade(config_);
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_EQ(up->enrollments_upgraded + up->states_upgraded, 0);
  EXPECT_EQ(row("alice"), before);
}

}  // namespace
}  // namespace pbx::totp

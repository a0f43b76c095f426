// The module flow with store = postgresql: a database that cannot be reached fails closed, and
// only then do this host's break-glass codes open a login (logged at warning level). The Live
// tests run against the throwaway cluster (ctest pg.*).

#include "flow_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/seal.hpp"
#include "pg_test_db.hpp"

namespace pbx::pam::testing {
namespace {

using totp::testing::refused_port;

std::string db_lines(const std::string& conninfo, const std::string& key) {
  return "store = postgresql\npg_conninfo = " + conninfo + "\npg_timeout_ms = 800\n" +
         "pg_plugin = " + totp::testing::pg_plugin_path() + "\nfleet_key = " + key + "\n";
}

class DbDownFlowTest : public FlowTest {
 protected:
  DbDownFlowTest() {
    files_.write_config(
        db_lines("host=127.0.0.1 port=" + std::to_string(refused_port()) + " user=postgres",
                 files_.root() + "/fleet.key"));
  }
  std::vector<std::string> make_codes(int n) {
    auto codes = totp::make_break_glass_codes(files_.store_config(), n, kCheapKdf);
    if (!codes) throw std::runtime_error(codes.error().message);
    std::vector<std::string> out;
    for (const auto& c : *codes) {
      out.emplace_back(c.view());
      never_log(out.back());
    }
    return out;
  }
};

TEST_F(DbDownFlowTest, WithoutBreakGlassCodesItFailsClosedWithoutAPrompt) {
  FakeContext ctx = with_answers({"123456"});
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  EXPECT_TRUE(ctx.prompts.empty());
  EXPECT_EQ(outcome_of(ctx), "store-unavailable");
  EXPECT_NE(logs_.find("database unreachable"), std::string::npos) << logs_;
  EXPECT_NE(logs_.find("no break-glass codes"), std::string::npos) << logs_;
  EXPECT_EQ(ctx.logs.at(0).level, LogLevel::kError);
}

TEST_F(DbDownFlowTest, ABreakGlassCodeLetsInOnceAndIsLoggedAtWarning) {
  auto codes = make_codes(2);
  FakeContext ctx = with_answers({codes[1]});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(ctx.prompts[0].text, kDefaultPrompt);
  EXPECT_NE(ctx.all_messages().find("break-glass"), std::string::npos);
  EXPECT_EQ(outcome_of(ctx), "break-glass-accepted");
  EXPECT_EQ(ctx.logs.at(0).level, LogLevel::kWarning);
  EXPECT_NE(logs_.find("1 left"), std::string::npos) << logs_;

  FakeContext again = with_answers({codes[1]});
  EXPECT_EQ(run(again), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(again), "break-glass-wrong");  // a used code is a wrong one
  auto left = totp::break_glass_left(files_.store_config());
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 1);
}

TEST_F(DbDownFlowTest, NothingElseOpensTheDoor) {
  auto codes = make_codes(1);
  for (const std::string& typed :
       {std::string("123456"), std::string("abcd-efgh-jkmn"), std::string("")}) {
    FakeContext ctx = with_answers({typed});
    EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL) << typed;
    EXPECT_EQ(outcome_of(ctx), "store-unavailable") << typed;
  }
  FakeContext wrong = with_answers({"abcd-efgh-jkmn-pqrs"});
  EXPECT_EQ(run(wrong), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(wrong), "break-glass-wrong");
  EXPECT_EQ(*totp::break_glass_left(files_.store_config()), 1);
}

// Review finding L5: "unreachable" can be induced from the network, and a break-glass code
// opens any account. Wrong break-glass answers are logged at warning and counted on this host;
// after kBreakGlassMaxFailures of them even the right code is refused, without a prompt.
TEST_F(DbDownFlowTest, WrongBreakGlassAnswersAreLoggedAtWarningAndThenLockBreakGlass) {
  auto codes = make_codes(2);
  const std::vector<std::string> wrong = {"abcd-efgh-jkmn-pqrs", "ABCD EFGH JKMN PQRT",
                                          "zzzz-zzzz-zzzz-zzzz", "qrst-uvwx-yzab-cdef",
                                          "hjkm-npqr-stuv-wxyz"};
  ASSERT_EQ(wrong.size(), static_cast<std::size_t>(totp::kBreakGlassMaxFailures));
  for (std::size_t i = 0; i < wrong.size(); ++i) {
    FakeContext ctx = with_answers({wrong[i]});
    EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL) << i;
    ASSERT_EQ(ctx.prompts.size(), 1u) << i;
    EXPECT_EQ(outcome_of(ctx), "break-glass-wrong") << i;
    EXPECT_EQ(ctx.logs.at(0).level, LogLevel::kWarning) << i;
    EXPECT_NE(ctx.logs.at(0).text.find(std::to_string(i + 1) + " of " +
                                       std::to_string(totp::kBreakGlassMaxFailures)),
              std::string::npos)
        << ctx.logs.at(0).text;
  }
  EXPECT_NE(logs_.find("break-glass now locked"), std::string::npos) << logs_;

  FakeContext right = with_answers({codes[0]});
  EXPECT_EQ(run(right), PAM_AUTHINFO_UNAVAIL);
  EXPECT_TRUE(right.prompts.empty());
  EXPECT_EQ(outcome_of(right), "break-glass-locked");
  EXPECT_EQ(right.logs.at(0).level, LogLevel::kError);
  EXPECT_NE(right.all_messages().find("locked"), std::string::npos);
  EXPECT_NE(logs_.find("pbx-mfa break-glass --unlock"), std::string::npos) << logs_;
  EXPECT_EQ(*totp::break_glass_left(files_.store_config()), 2);  // not spent
}

TEST_F(DbDownFlowTest, RootsUnlockRestoresBreakGlass) {
  auto codes = make_codes(1);
  for (int i = 0; i < totp::kBreakGlassMaxFailures; ++i) {
    FakeContext ctx = with_answers({"abcd-efgh-jkmn-pqrs"});
    EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  }
  FakeContext locked = with_answers({codes[0]});
  EXPECT_EQ(run(locked), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(locked), "break-glass-locked");

  auto forgotten = totp::unlock_break_glass(files_.store_config());
  ASSERT_TRUE(forgotten.ok());
  EXPECT_EQ(*forgotten, totp::kBreakGlassMaxFailures);
  FakeContext ctx = with_answers({codes[0]});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "break-glass-accepted");
}

TEST_F(DbDownFlowTest, ExemptionsAreDecidedWithoutTheDatabase) {
  files_.write_config(
      db_lines("host=127.0.0.1 port=" + std::to_string(refused_port()) + " user=postgres",
               files_.root() + "/fleet.key") +
      "exempt_groups = " + kUserGroup + "\n");
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx), PAM_IGNORE);
  EXPECT_EQ(outcome_of(ctx), "exempt");
}

// store = postgresql on a host without the plugin's package (issue 18: the plugin ships in
// libpam-pbx-totp-postgresql): the login is refused without a prompt, a service error and no
// break-glass, and the log line names the package to install. No cluster: the plugin is never
// loaded.
TEST_F(DbDownFlowTest, AMissingPluginFailsClosedNamingItsPackage) {
  auto codes = make_codes(1);  // break-glass codes do not open a host whose config is broken
  const std::string missing = files_.root() + "/no-such-dir/pbx_store_postgresql.so";
  files_.write_config(
      "store = postgresql\npg_conninfo = host=127.0.0.1 port=" + std::to_string(refused_port()) +
      " user=postgres\npg_plugin = " + missing + "\nfleet_key = " + files_.root() + "/fleet.key\n");
  for (const std::string& typed : {std::string("123456"), codes[0]}) {
    FakeContext ctx = with_answers({typed});
    EXPECT_EQ(run(ctx), PAM_SERVICE_ERR);
    EXPECT_TRUE(ctx.prompts.empty());
    EXPECT_EQ(outcome_of(ctx), "bad-config");
    ASSERT_EQ(ctx.logs.size(), 1u);
    EXPECT_EQ(ctx.logs[0].level, LogLevel::kError);
    EXPECT_NE(ctx.logs[0].text.find("database plugin " + missing +
                                    " is not installed: install the package "
                                    "libpam-pbx-totp-postgresql (store = postgresql needs it)"),
              std::string::npos)
        << ctx.logs[0].text;
  }
  EXPECT_EQ(*totp::break_glass_left(files_.store_config()), 1);  // not spent

  // Any other reason the plugin cannot be used keeps its own message: not a plugin at all.
  const std::string junk = files_.root() + "/junk.so";
  ASSERT_TRUE(write_file(junk, "not an ELF file\n", 0644, files_.trusted_uid()));
  files_.write_config(
      "store = postgresql\npg_conninfo = host=127.0.0.1 port=" + std::to_string(refused_port()) +
      " user=postgres\npg_plugin = " + junk + "\nfleet_key = " + files_.root() + "/fleet.key\n");
  FakeContext ctx = with_answers({"123456"});
  EXPECT_EQ(run(ctx), PAM_SERVICE_ERR);
  EXPECT_EQ(outcome_of(ctx), "bad-config");
  EXPECT_NE(logs_.find("database plugin " + junk + " cannot be loaded"), std::string::npos)
      << logs_;
  EXPECT_EQ(logs_.find(junk + " is not installed"), std::string::npos) << logs_;
}

// Against the live test cluster.
class DbLiveFlowTest : public FlowTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_PG_CLUSTER();
    schema_ = std::make_unique<totp::testing::PgSchema>();
    std::string key = files_.root() + "/fleet.key";
    files_.write_config(db_lines(schema_->conninfo(), key));
    config_ = files_.store_config();
    totp::testing::use_pg_store(config_, *schema_, key);
    auto init = totp::db_init(config_);
    ASSERT_TRUE(init.ok()) << init.error().message;
  }
  // Saves a fresh secret for `user` in the database (TestFiles::enroll writes files).
  Enrolled enroll_in_db(const char* user = kUser) {
    auto account = totp::lookup_user(user);
    Enrolled out;
    auto id = totp::new_enrollment_id();
    auto secret = totp::generate_secret(totp::Algorithm::kSha1);
    out.enrollment.id = *id;
    dev0(out.enrollment).secret = std::move(secret.value());
    out.enrollment.created = 1700000000;
    auto store = totp::open_store(config_);
    if (!store || !(*store)->save(*account, out.enrollment, true)) {
      throw std::runtime_error("cannot enroll in the database");
    }
    never_log(secret_base32(out.enrollment));
    return out;
  }
  std::unique_ptr<totp::testing::PgSchema> schema_;
  totp::Config config_;
};

TEST_F(DbLiveFlowTest, ACodeIsAcceptedOnceAndABreakGlassCodeIsNoCodeWhileTheDatabaseIsUp) {
  Enrolled e = enroll_in_db();
  auto codes = totp::make_break_glass_codes(files_.store_config(), 1, kCheapKdf);
  ASSERT_TRUE(codes.ok());
  never_log(std::string((*codes)[0].view()));
  FakeContext bg = with_answers({std::string((*codes)[0].view())});
  EXPECT_EQ(run(bg), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(bg), "wrong-code");
  EXPECT_EQ(*totp::break_glass_left(files_.store_config()), 1);  // not spent either

  FakeContext ok = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ok), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ok), "accepted");
  FakeContext replay = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(replay), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(replay), "replayed-code");
}

TEST_F(DbLiveFlowTest, ARowOfAnotherUserIsRefusedAndLogged) {
  enroll_in_db(kUser);
  Enrolled other = enroll_in_db(kOtherUser);
  // The other user's row copied over this user's: the other user's phone would let them in.
  schema_->exec(std::string("UPDATE pbx_mfa_enrollment SET (enrollment_id, sealed) = (SELECT "
                            "enrollment_id, sealed FROM pbx_mfa_enrollment WHERE user_name = '") +
                kOtherUser + "') WHERE user_name = '" + kUser + "'");
  FakeContext ctx = with_answers({other.code_at(kT0)});
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(ctx), "unavailable");
  EXPECT_NE(logs_.find("refused"), std::string::npos) << logs_;
  EXPECT_TRUE(ctx.prompts.empty());
}

// Found in review: a database that let us in and then does not answer in time (a table locked
// by a DBA) must not count as unreachable, or break-glass codes would open every login.
TEST_F(DbLiveFlowTest, ASlowDatabaseIsNoReasonForBreakGlass) {
  enroll_in_db();
  auto codes = totp::make_break_glass_codes(files_.store_config(), 1, kCheapKdf);
  ASSERT_TRUE(codes.ok());
  std::string code((*codes)[0].view());
  never_log(code);
  PGconn* dba = PQconnectdb(schema_->conninfo().c_str());
  ASSERT_EQ(PQstatus(dba), CONNECTION_OK);
  PQclear(PQexec(dba, "BEGIN; LOCK TABLE pbx_mfa_enrollment IN ACCESS EXCLUSIVE MODE"));
  FakeContext ctx = with_answers({code});
  int rc = run(ctx);
  PQclear(PQexec(dba, "ROLLBACK"));
  PQfinish(dba);
  EXPECT_EQ(rc, PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(ctx), "unavailable");
  EXPECT_EQ(*totp::break_glass_left(files_.store_config()), 1);
}

// H2: a writer to pbx_mfa_state without the fleet key. The attacks of the review: plant a state
// text of their making (the victim's enrollment id is a clear column) and log in with the
// password only, or with a code hours old. Both are refused (PAM_AUTHINFO_UNAVAIL, logged),
// before any prompt.
std::string planted_state(const std::string& id, std::int64_t last_step, int skew,
                          const std::string& grace_sql) {
  return "'version 1\nid " + id + "\nlast-step " + std::to_string(last_step) +
         "\nfailures 0\nlocked-until 0\nskew " + std::to_string(skew) + "\nlast-success 0\n' || " +
         grace_sql + " || 'end\n'";
}

void plant(const totp::testing::PgSchema& pg, const char* user, const std::string& text_sql) {
  std::string col = pg.state_column();
  pg.exec("INSERT INTO pbx_mfa_state (user_name, " + col + ") VALUES ('" + user + "', E" +
          text_sql + ") ON CONFLICT (user_name) DO UPDATE SET " + col + " = EXCLUDED." + col);
}

TEST_F(DbLiveFlowTest, APlantedGraceEntryIsRefusedNotALoginWithoutACode) {
  files_.write_config(db_lines(schema_->conninfo(), files_.root() + "/fleet.key") +
                      "grace_period = 600\n");
  Enrolled e = enroll_in_db();
  const std::string rhost = "203.0.113.66";
  // grace <first 32 hex digits of SHA-256(rhost)> <10 s ago>
  std::string grace = "'grace ' || left(encode(sha256(convert_to('" + rhost +
                      "', 'UTF8')), 'hex'), 32) || ' " + std::to_string(kT0 - 10) + "\n'";
  plant(*schema_, kUser, planted_state(e.enrollment.id, -1, 0, grace));
  FakeContext ctx = with_answers({});
  ctx.remote_host = rhost;
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(ctx), "unavailable");
  EXPECT_NE(logs_.find("state without MAC"), std::string::npos) << logs_;
  EXPECT_TRUE(ctx.prompts.empty());
}

TEST_F(DbLiveFlowTest, APlantedSkewDoesNotMakeAnOldCodeWork) {
  Enrolled e = enroll_in_db();
  // A code the attacker saw about four hours ago, and the state that would centre the window
  // on it.
  std::int64_t old_step = totp::time_step(kT0, 30) - 500;
  FakeContext first = with_answers({e.code_at(kT0)});
  ASSERT_EQ(run(first), PAM_SUCCESS);  // a row with a valid MAC exists
  logs_.clear();
  plant(*schema_, kUser, planted_state(e.enrollment.id, old_step - 1, -500, "''"));
  FakeContext ctx = with_answers({e.code_for_step(old_step)});
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(ctx), "unavailable");
  EXPECT_NE(logs_.find("MAC does not verify"), std::string::npos) << logs_;
}

// The row a login writes is trusted by the next login (on any server), with a MAC renewed
// on every write.
TEST_F(DbLiveFlowTest, AnUntouchedStateRowKeepsWorkingAndEachLoginRenewsItsMac) {
  Enrolled e = enroll_in_db();
  FakeContext ok = with_answers({e.code_at(kT0)});
  ASSERT_EQ(run(ok), PAM_SUCCESS);
  std::string mac = schema_->exec("SELECT encode(state_mac, 'hex') FROM pbx_mfa_state");
  EXPECT_FALSE(mac.empty());
  clock_.set(kT0 + 30);
  FakeContext next = with_answers({e.code_at(kT0 + 30)});
  EXPECT_EQ(run(next), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(next), "accepted");
  EXPECT_NE(schema_->exec("SELECT encode(state_mac, 'hex') FROM pbx_mfa_state"), mac);
  FakeContext replay = with_answers({e.code_at(kT0 + 30)});
  EXPECT_EQ(run(replay), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(replay), "replayed-code");
}

// Issue 16: an enrollment of two devices in the database: a code of each logs in, and each
// device's replay mark is its own.
TEST_F(DbLiveFlowTest, EachDeviceOfATwoDeviceEnrollmentLogsIn) {
  Enrolled e = enroll_in_db();
  totp::Device phone2;
  phone2.name = "phone2";
  phone2.secret = totp::generate_secret(totp::Algorithm::kSha256).value();
  phone2.algorithm = totp::Algorithm::kSha256;
  phone2.created = e.enrollment.created;
  never_log(totp::base32_encode(phone2.secret, false));
  e.enrollment.devices.push_back(std::move(phone2));
  auto account = totp::lookup_user(kUser);
  auto store = totp::open_store(config_);
  ASSERT_TRUE(store.ok() && account.ok());
  ASSERT_TRUE((*store)->save(*account, e.enrollment, true).ok());

  FakeContext one = with_answers({e.code_at(kT0, 0)});
  EXPECT_EQ(run(one), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(one), "accepted");
  FakeContext two = with_answers({e.code_at(kT0, 1)});
  EXPECT_EQ(run(two), PAM_SUCCESS) << logs_;
  EXPECT_EQ(outcome_of(two), "accepted");
  FakeContext replay = with_answers({e.code_at(kT0, 1)});
  EXPECT_EQ(run(replay), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(replay), "replayed-code");
}

// Issue 16: rows as the release before devices wrote them (a sealed enrollment and a state row
// of format version 1, with its MAC) log in unchanged, the old replay mark honoured; so do they
// after `db migrate` (db_upgrade) rewrote them as version 2.
TEST_F(DbLiveFlowTest, RowsOfTheReleaseBeforeDevicesLogInBeforeAndAfterTheUpgrade) {
  auto key = totp::load_fleet_key(config_.fleet_key, 0);
  ASSERT_TRUE(key.ok()) << key.error().message;
  auto mac_key = totp::derive_fleet_subkey(*key, totp::kStateMacLabel);
  ASSERT_TRUE(mac_key.ok());
  auto hex = [](std::string_view bytes) {
    std::string out;
    for (unsigned char c : bytes) {
      out += "0123456789abcdef"[c >> 4];
      out += "0123456789abcdef"[c & 15];
    }
    return out;
  };
  auto put_v1 = [&](const char* user, const Enrolled& e) {
    const std::string& id = e.enrollment.id;
    std::string text = "# pbx-mfa secret file: written by pbx-mfa, do not edit\nversion 1\nid " +
                       id + "\nsecret " + secret_base32(e.enrollment) +
                       "\nalgorithm SHA1\ndigits 6\nperiod 30\ncreated " +
                       std::to_string(e.enrollment.created) + "\nend\n";
    std::string aad = "pbx-mfa enrollment v1";
    aad.push_back('\0');
    auto box = totp::seal(*key, aad + user, text);
    ASSERT_TRUE(box.ok());
    std::string state =
        "version 1\nid " + id + "\nlast-step " + std::to_string(totp::time_step(kT0, 30)) +
        "\nfailures 0\nlocked-until 0\nskew 0\nlast-success " + std::to_string(kT0) + "\nend\n";
    auto mac = totp::state_mac(*mac_key, user, id, state);
    ASSERT_TRUE(mac.ok());
    schema_->exec("UPDATE pbx_mfa_enrollment SET sealed = decode('" + hex(*box) +
                  "', 'hex') WHERE user_name = '" + user + "'");
    schema_->exec("INSERT INTO pbx_mfa_state (user_name, state_text, state_mac) VALUES ('" +
                  std::string(user) + "', '" + state + "', decode('" + hex(*mac) + "', 'hex'))");
  };
  Enrolled before = enroll_in_db(kUser);
  Enrolled after = enroll_in_db(kOtherUser);
  put_v1(kUser, before);
  put_v1(kOtherUser, after);
  schema_->exec("UPDATE pbx_mfa_schema SET version = 2");

  FakeContext replay = with_answers({before.code_at(kT0)});
  EXPECT_EQ(run(replay), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(replay), "replayed-code") << "the old row's replay mark was lost";

  auto up = totp::db_upgrade(config_);
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_EQ(up->enrollments_upgraded, 2);
  EXPECT_EQ(up->states_upgraded, 1);  // kUser's state is version 2 since the login above
  FakeContext replay2 = with_answers({after.code_at(kT0)}, kOtherUser);
  EXPECT_EQ(run(replay2), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(replay2), "replayed-code") << "the replay mark was lost in the upgrade";

  clock_.set(kT0 + 30);
  FakeContext ok = with_answers({before.code_at(kT0 + 30)});
  EXPECT_EQ(run(ok), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ok), "accepted");
  FakeContext ok2 = with_answers({after.code_at(kT0 + 30)}, kOtherUser);
  EXPECT_EQ(run(ok2), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ok2), "accepted");
}

}  // namespace
}  // namespace pbx::pam::testing

// db init, db migrate --from files, break-glass, doctor's database checks, and every other
// subcommand on the database store. DbCliTest runs against the throwaway cluster (ctest pg.*).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "enroll_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/seal.hpp"
#include "pbx/totp/state.hpp"
#include "pg_test_db.hpp"

namespace pbx::cli::testing {
namespace {

using totp::testing::PgSchema;

std::map<std::string, std::string> doctor_checks(const std::string& json_text) {
  std::map<std::string, std::string> by_name;
  auto j = nlohmann::json::parse(json_text);
  for (const auto& c : j.at("checks")) {
    by_name[c.at("name").get<std::string>()] =
        c.at("status").get<std::string>() + " " + c.at("message").get<std::string>();
  }
  return by_name;
}

class DbCliTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    PBX_SKIP_UNLESS_PG_CLUSTER();
    schema_ = std::make_unique<PgSchema>();
    use_database(schema_->conninfo());
  }
  void use_database(const std::string& conninfo) {
    write_config("recovery_codes = 2\nstore = postgresql\npg_conninfo = " + conninfo +
                 "\npg_plugin = " + totp::testing::pg_plugin_path() +
                 "\nfleet_key = " + key_path() + "\n");
  }
  void use_files() { write_config("recovery_codes = 2\n"); }
  std::string key_path() const { return tmp_ / "fleet.key"; }
  // Enrolls `name` without confirmation and returns the JSON the CLI printed.
  nlohmann::json enroll(const std::string& name) {
    clear();
    EXPECT_EQ(run_cli({"enroll", "--user", name, "--no-confirm", "--json", "--qr", "none"}), 0)
        << err();
    return nlohmann::json::parse(out());
  }
  nlohmann::json status(const std::string& name) {
    clear();
    EXPECT_EQ(run_cli({"status", "--user", name, "--json"}), 0) << err();
    return nlohmann::json::parse(out());
  }
  int verify(const std::string& name, const std::string& code) {
    clear();
    return run_cli({"verify", "--user", name, code});
  }
  std::unique_ptr<PgSchema> schema_;
};

TEST_F(DbCliTest, InitMakesTheKeyAndSchemaOnceAndIsIdempotent) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  EXPECT_NE(out().find("created the fleet key"), std::string::npos) << out();
  EXPECT_NE(out().find("schema created (version 4)"), std::string::npos) << out();
  struct stat st {};
  ASSERT_EQ(::lstat(key_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400U);
  EXPECT_EQ(st.st_size, 32);
  clear();
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  EXPECT_NE(out().find("nothing to do"), std::string::npos) << out();
  EXPECT_EQ(out().find("created the fleet key"), std::string::npos) << out();
  EXPECT_EQ(schema_->exec("SELECT count(*) FROM pbx_mfa_schema"), "1");
  ASSERT_FALSE(audit_.empty());
  EXPECT_NE(audit_.front().find("db-init"), std::string::npos);
}

TEST_F(DbCliTest, EverySubcommandWorksOnTheDatabase) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  auto j = enroll("daemon");
  std::string uri = j.at("otpauth_uri");
  auto st = status("daemon");
  EXPECT_EQ(st.at("enrolled"), true);
  EXPECT_EQ(st.at("recovery_codes_left"), 2);
  EXPECT_EQ(verify("daemon", code_for(uri, kNow)), 0) << err();
  EXPECT_EQ(verify("daemon", code_for(uri, kNow)), 1) << "replayed";
  EXPECT_EQ(verify("daemon", j.at("recovery_codes")[0].get<std::string>()), 0) << err();
  EXPECT_EQ(status("daemon").at("recovery_codes_left"), 1);
  clear();
  ASSERT_EQ(run_cli({"recovery-codes", "--user", "daemon", "--json"}), 0) << err();
  EXPECT_EQ(status("daemon").at("recovery_codes_left"), 2);
  for (int i = 0; i < 5; ++i) verify("daemon", "000000");
  EXPECT_NE(status("daemon").at("locked_until"), nullptr);
  clear();
  ASSERT_EQ(run_cli({"unlock", "--user", "daemon"}), 0) << err();
  EXPECT_EQ(status("daemon").at("locked_until"), nullptr);
  clear();
  ASSERT_EQ(run_cli({"reset", "--user", "daemon"}), 0) << err();
  clear();
  EXPECT_EQ(run_cli({"status", "--user", "daemon"}), 3) << out() << err();  // not enrolled
  EXPECT_EQ(schema_->exec("SELECT count(*) FROM pbx_mfa_enrollment"), "0");
}

TEST_F(DbCliTest, MigrateKeepsRecoveryCodesAndTheReplayMark) {
  // On files first: enrolled, logged in once, one recovery code used, one failure.
  use_files();
  auto j = enroll("daemon");
  std::string uri = j.at("otpauth_uri");
  ASSERT_EQ(verify("daemon", code_for(uri, kNow)), 0) << err();
  ASSERT_EQ(verify("daemon", j.at("recovery_codes")[0].get<std::string>()), 0) << err();
  ASSERT_EQ(verify("daemon", "000000"), 1);
  auto on_files = status("daemon");

  use_database(schema_->conninfo());
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  clear();
  ASSERT_EQ(run_cli({"db", "migrate", "--from", "files"}), 0) << err();
  EXPECT_NE(out().find("daemon: copied (1 recovery code left"), std::string::npos) << out();
  EXPECT_NE(out().find("1 copied, 0 already in the database, 0 failed"), std::string::npos)
      << out();
  auto on_db = status("daemon");
  EXPECT_EQ(on_db.at("recovery_codes_left"), 1);
  EXPECT_EQ(on_db.at("failures"), on_files.at("failures"));
  EXPECT_EQ(on_db.at("last_success"), on_files.at("last_success"));
  // The code used on files stays used; so does the recovery code; the other one works.
  EXPECT_EQ(verify("daemon", code_for(uri, kNow)), 1) << "a code used before the move";
  EXPECT_EQ(verify("daemon", j.at("recovery_codes")[0].get<std::string>()), 1);
  EXPECT_EQ(verify("daemon", j.at("recovery_codes")[1].get<std::string>()), 0) << err();
  clock_.set(kNow + 30);
  EXPECT_EQ(verify("daemon", code_for(uri, kNow + 30)), 0) << err();
  // Again: already there, kept as it is (not overwritten with the older file state).
  clear();
  ASSERT_EQ(run_cli({"db", "migrate", "--from", "files"}), 0) << err();
  EXPECT_NE(out().find("daemon: already in the database, kept"), std::string::npos) << out();
  EXPECT_EQ(status("daemon").at("recovery_codes_left"), 0);
}

// H2: `db migrate` without --from upgrades a schema-1 database in place: its state rows get
// their MACs, the replay mark is kept and logins keep working; it never creates a schema.
TEST_F(DbCliTest, MigrateUpgradesASchema1DatabaseAndLoginsKeepWorking) {
  clear();
  EXPECT_EQ(run_cli({"db", "migrate"}), 2) << out();  // usage or config error
  EXPECT_NE(err().find("run 'pbx-mfa db init'"), std::string::npos) << err();
  EXPECT_EQ(schema_->exec("SELECT to_regclass('pbx_mfa_schema') IS NULL"), "t");

  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  auto j = enroll("daemon");
  std::string uri = j.at("otpauth_uri");
  ASSERT_EQ(verify("daemon", code_for(uri, kNow)), 0) << err();
  schema_->downgrade_to_schema_1();
  clear();
  ASSERT_EQ(run_cli({"db", "migrate"}), 0) << err();
  EXPECT_NE(out().find("upgraded from version 1 to 4"), std::string::npos) << out();
  EXPECT_NE(out().find("1 state row authenticated"), std::string::npos) << out();
  EXPECT_EQ(verify("daemon", code_for(uri, kNow)), 1) << "replay mark lost in the upgrade";
  clock_.set(kNow + 30);
  EXPECT_EQ(verify("daemon", code_for(uri, kNow + 30)), 0) << err();
  clear();
  ASSERT_EQ(run_cli({"db", "migrate"}), 0) << err();
  EXPECT_NE(out().find("nothing to do"), std::string::npos) << out();
}

// Issue 16: `db migrate` rewrites rows of format version 1 (as the release before devices wrote
// them: one secret, one replay mark) as version 2, says how many, names a forged state row
// and leaves it; the user logs in with the same phone and the old replay mark holds; a
// second run changes nothing. Doctor warns about schema version 2 until then.
TEST_F(DbCliTest, MigrateUpgradesRowsOfFormatVersion1) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  auto daemon = enroll("daemon");
  auto bin = enroll("bin");
  std::string uri = daemon.at("otpauth_uri");
  auto params = totp::parse_otpauth_uri(uri);
  ASSERT_TRUE(params.ok());
  auto key = totp::load_fleet_key(key_path(), 0);
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
  // The rows as the previous release wrote them, ids kept.
  auto put_v1 = [&](const std::string& user, const std::string& secret_b32, std::int64_t last) {
    std::string id = schema_->exec(
        "SELECT enrollment_id FROM pbx_mfa_enrollment WHERE "
        "user_name = '" +
        user + "'");
    std::string text = "version 1\nid " + id + "\nsecret " + secret_b32 +
                       "\nalgorithm SHA1\ndigits 6\nperiod 30\ncreated " +
                       std::to_string(kNow - 3600) + "\nend\n";
    std::string aad = "pbx-mfa enrollment v1";
    aad.push_back('\0');
    auto box = totp::seal(*key, aad + user, text);
    ASSERT_TRUE(box.ok());
    std::string state = "version 1\nid " + id + "\nlast-step " + std::to_string(last) +
                        "\nfailures 0\nlocked-until 0\nskew 0\nlast-success " +
                        std::to_string(kNow) + "\nend\n";
    auto mac = totp::state_mac(*mac_key, user, id, state);
    ASSERT_TRUE(mac.ok());
    schema_->exec("UPDATE pbx_mfa_enrollment SET sealed = decode('" + hex(*box) +
                  "', 'hex') WHERE user_name = '" + user + "'");
    schema_->exec("INSERT INTO pbx_mfa_state (user_name, state_text, state_mac) VALUES ('" + user +
                  "', '" + state + "', decode('" + hex(*mac) +
                  "', 'hex')) ON CONFLICT (user_name) DO UPDATE SET state_text = "
                  "EXCLUDED.state_text, state_mac = EXCLUDED.state_mac");
  };
  put_v1("daemon", totp::base32_encode(params->secret, false), totp::time_step(kNow, 30));
  put_v1("bin", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", totp::kNoStep);
  schema_->exec(
      "UPDATE pbx_mfa_state SET state_text = replace(state_text, 'failures 0', "
      "'failures 1') WHERE user_name = 'bin'");  // after its MAC: forged
  schema_->exec("UPDATE pbx_mfa_schema SET version = 2");
  std::vector<std::string> doctor = {"doctor",    "--json",        "--pam-dir",
                                     tmp_.path(), "--sshd-config", tmp_ / "none"};
  clear();
  run_cli(doctor);
  std::string check = doctor_checks(out())["db-schema"];
  EXPECT_EQ(check.rfind("WARN schema version 2", 0), 0U) << check;

  clear();
  ASSERT_EQ(run_cli({"db", "migrate"}), 0) << err();
  EXPECT_NE(out().find("upgraded from version 2 to 4"), std::string::npos) << out();
  EXPECT_NE(out().find("2 enrollments, 1 state upgraded to format version 2"), std::string::npos)
      << out();
  EXPECT_NE(err().find("user bin: state row left as it is: its MAC does not verify"),
            std::string::npos)
      << err();
  EXPECT_EQ(schema_->exec("SELECT count(*) FROM pbx_mfa_state WHERE state_text LIKE "
                          "'version 1%'"),
            "1");  // bin's, forged
  clear();
  run_cli(doctor);
  check = doctor_checks(out())["db-schema"];
  EXPECT_EQ(check.rfind("PASS version 4", 0), 0U) << check;

  EXPECT_EQ(verify("daemon", code_for(uri, kNow)), 1) << "replay mark lost in the upgrade";
  clock_.set(kNow + 30);
  EXPECT_EQ(verify("daemon", code_for(uri, kNow + 30)), 0) << err();
  EXPECT_NE(verify("bin", "123456"), 0);
  clear();
  ASSERT_EQ(run_cli({"db", "migrate"}), 0) << err();
  EXPECT_EQ(out().find("upgraded to format version 2"), std::string::npos) << out();
  EXPECT_NE(err().find("user bin: state row left as it is"), std::string::npos) << err();
  (void)bin;
}

// Issue 17: schema 4 adds the fleet's event log. A database of schema 3: doctor warns (events
// stay in each server's file), db migrate adds the table and says what to grant, and the
// enrollment made before is still there.
TEST_F(DbCliTest, MigrateFromSchema3AddsTheEventTable) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  auto j = enroll("daemon");
  std::string uri = j.at("otpauth_uri");
  schema_->exec("DROP TABLE pbx_mfa_event; UPDATE pbx_mfa_schema SET version = 3");
  std::vector<std::string> doctor = {"doctor",    "--json",        "--pam-dir",
                                     tmp_.path(), "--sshd-config", tmp_ / "none"};
  clear();
  run_cli(doctor);
  std::string check = doctor_checks(out())["db-schema"];
  EXPECT_EQ(check.rfind("WARN schema version 3, this pbx-mfa uses 4: no events table", 0), 0U)
      << check;

  clear();
  ASSERT_EQ(run_cli({"db", "migrate"}), 0) << err();
  EXPECT_NE(out().find("upgraded from version 3 to 4"), std::string::npos) << out();
  EXPECT_NE(out().find("events table pbx_mfa_event created"), std::string::npos) << out();
  EXPECT_NE(out().find("GRANT SELECT, INSERT ON pbx_mfa_event"), std::string::npos) << out();
  EXPECT_EQ(out().find("upgraded to format version 2"), std::string::npos) << out();
  EXPECT_EQ(schema_->exec("SELECT count(*) FROM pbx_mfa_event"), "0");
  clear();
  run_cli(doctor);
  check = doctor_checks(out())["db-schema"];
  EXPECT_EQ(check.rfind("PASS version 4, 1 enrollments", 0), 0U) << check;
  EXPECT_EQ(verify("daemon", code_for(uri, kNow)), 0) << err();

  clear();
  ASSERT_EQ(run_cli({"db", "migrate"}), 0) << err();
  EXPECT_EQ(out().find("events table"), std::string::npos) << out();  // once
}

TEST_F(DbCliTest, DoctorChecksTheDatabase) {
  std::vector<std::string> args = {"doctor",    "--json",        "--pam-dir",
                                   tmp_.path(), "--sshd-config", tmp_ / "none"};
  clear();
  run_cli(args);
  auto checks = doctor_checks(out());
  EXPECT_EQ(checks["fleet-key"].rfind("FAIL", 0), 0U) << checks["fleet-key"];
  EXPECT_EQ(checks["db-connect"].rfind("PASS", 0), 0U) << checks["db-connect"];
  EXPECT_EQ(checks["db-tls"].rfind("PASS", 0), 0U) << checks["db-tls"];  // Unix socket
  EXPECT_EQ(checks["db-gssenc"].rfind("PASS Unix socket only", 0), 0U) << checks["db-gssenc"];
  EXPECT_EQ(checks["db-schema"].rfind("FAIL", 0), 0U) << checks["db-schema"];
  EXPECT_EQ(checks["break-glass"].rfind("WARN", 0), 0U) << checks["break-glass"];

  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  ASSERT_EQ(run_cli({"break-glass", "--json"}), 0) << err();
  clear();
  run_cli(args);
  checks = doctor_checks(out());
  EXPECT_EQ(checks["fleet-key"].rfind("PASS", 0), 0U) << checks["fleet-key"];
  EXPECT_EQ(checks["db-schema"].rfind("PASS", 0), 0U) << checks["db-schema"];
  EXPECT_EQ(checks["db-key"].rfind("PASS", 0), 0U) << checks["db-key"];
  EXPECT_EQ(checks["break-glass"].rfind("PASS 5 unused", 0), 0U) << checks["break-glass"];

  // TLS without verifying the server: a warning.
  use_database(totp::testing::pg_cluster_conninfo("conninfo_tls") +
               " options='-csearch_path=" + schema_->name() + "'");
  clear();
  run_cli(args);
  checks = doctor_checks(out());
  EXPECT_EQ(checks["db-tls"].rfind("WARN", 0), 0U) << checks["db-tls"];
  EXPECT_NE(checks["db-tls"].find("TLSv1."), std::string::npos) << checks["db-tls"];
  EXPECT_NE(checks["db-tls"].find("no GSSAPI encryption"), std::string::npos) << checks["db-tls"];
  EXPECT_EQ(checks["db-gssenc"].rfind("PASS TCP to ", 0), 0U) << checks["db-gssenc"];

  // H1: the same over TCP asking for GSSAPI encryption fails (before connecting), and the
  // connection reports whether GSSAPI encryption is in use (no Kerberos here: off).
  use_database(totp::testing::pg_cluster_conninfo("conninfo_tls") +
               " gssencmode=prefer options='-csearch_path=" + schema_->name() + "'");
  clear();
  EXPECT_EQ(run_cli(args), 1);
  checks = doctor_checks(out());
  EXPECT_EQ(checks["db-gssenc"].rfind("FAIL pg_conninfo asks for gssencmode=prefer over TCP", 0),
            0U)
      << checks["db-gssenc"];
  EXPECT_NE(checks["db-tls"].find("no GSSAPI encryption"), std::string::npos) << checks["db-tls"];

  // Another key: every row would be refused.
  ASSERT_TRUE(totp::testing::write_file(key_path(), std::string(32, 'q'), 0400));
  clear();
  EXPECT_EQ(run_cli(args), 1);
  checks = doctor_checks(out());
  EXPECT_EQ(checks["db-key"].rfind("FAIL", 0), 0U) << checks["db-key"];

  // A password in a world-readable config.
  use_database(schema_->conninfo() + " password=hunter2");
  clear();
  EXPECT_EQ(run_cli(args), 1);
  checks = doctor_checks(out());
  EXPECT_EQ(checks["db-password"].rfind("FAIL", 0), 0U) << checks["db-password"];
  EXPECT_EQ(out().find("hunter2"), std::string::npos);

  // Nothing listening.
  use_database("host=127.0.0.1 port=1 user=postgres");
  clear();
  EXPECT_EQ(run_cli(args), 1);
  checks = doctor_checks(out());
  EXPECT_EQ(checks["db-connect"].rfind("FAIL", 0), 0U) << checks["db-connect"];
}

// Issue 18: a host list (failover) whose primary has no synchronous standby is a WARN: a
// failover can give back a used code. The test cluster has none (synchronous_standby_names
// empty); one host says nothing. (The failover test, e2e_db_failover, sees the PASS with a
// real synchronous standby.)
TEST_F(DbCliTest, DoctorWarnsOfAHostListWithoutASynchronousStandby) {
  std::vector<std::string> args = {"doctor",    "--json",        "--pam-dir",
                                   tmp_.path(), "--sshd-config", tmp_ / "none"};
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  clear();
  run_cli(args);
  auto checks = doctor_checks(out());
  EXPECT_EQ(checks.count("db-replication"), 0U) << checks["db-replication"];  // one host

  std::string tls = totp::testing::pg_cluster_conninfo("conninfo_tls");
  auto port_at = tls.find(" port=");
  ASSERT_NE(port_at, std::string::npos) << tls;
  std::string port = tls.substr(port_at + 6, tls.find(' ', port_at + 6) - port_at - 6);
  use_database("host=127.0.0.1,127.0.0.1 port=" + port + "," + port +
               " user=postgres dbname=postgres sslmode=require target_session_attrs=read-write"
               " options='-csearch_path=" +
               schema_->name() + "'");
  clear();
  run_cli(args);
  checks = doctor_checks(out());
  const std::string& c = checks["db-replication"];
  EXPECT_EQ(c.rfind("WARN pg_conninfo lists 2 hosts (failover), but the connected primary has "
                    "no synchronous standby (synchronous_standby_names is empty)",
                    0),
            0U)
      << c;
  EXPECT_NE(c.find("a used code may be accepted again"), std::string::npos) << c;
  EXPECT_NE(out().find("High availability"), std::string::npos) << out();
  EXPECT_EQ(checks["db-connect"].rfind("PASS", 0), 0U) << checks["db-connect"];
}

// Found in review: with nothing used yet, new recovery codes were saved inside a transaction
// that was never committed: printed, but the old ones kept working.
TEST_F(DbCliTest, NewRecoveryCodesReplaceTheOldOnesOnTheDatabase) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  auto j = enroll("daemon");
  std::string old_code = j.at("recovery_codes")[0];
  clear();
  ASSERT_EQ(run_cli({"recovery-codes", "--user", "daemon", "--json"}), 0) << err();
  auto fresh = nlohmann::json::parse(out());
  std::string new_code = fresh.at("recovery_codes")[0];
  EXPECT_EQ(verify("daemon", old_code), 1) << "an old recovery code still works";
  EXPECT_EQ(verify("daemon", new_code), 0) << err();
}

class BreakGlassCliTest : public CliTest {};

TEST_F(BreakGlassCliTest, MakesHashedCodesOnlyForTheDatabaseStoreAndOnlyForRoot) {
  EXPECT_EQ(run_cli({"break-glass"}), 2) << "store = files has no use for them";
  EXPECT_NE(err().find("store = postgresql"), std::string::npos) << err();
  write_config("store = postgresql\npg_conninfo = host=/nonexistent\n");
  clear();
  ASSERT_EQ(run_cli({"break-glass", "--count", "3", "--json"}), 0) << err();
  auto j = nlohmann::json::parse(out());
  ASSERT_EQ(j.at("codes").size(), 3U);
  std::string file = totp::testing::read_file(state_dir_ + "/break-glass").value_or("");
  ASSERT_NE(file, "");
  for (const auto& c : j.at("codes")) {
    std::string code = c.get<std::string>();
    EXPECT_EQ(code.size(), 19U) << code;
    EXPECT_EQ(file.find(code), std::string::npos) << "stored in clear";
  }
  ASSERT_FALSE(audit_.empty());
  EXPECT_NE(audit_.back().find("break-glass codes=3"), std::string::npos) << audit_.back();
  for (const auto& line : audit_) {
    for (const auto& c : j.at("codes"))
      EXPECT_EQ(line.find(c.get<std::string>()), std::string::npos);
  }
  clear();
  EXPECT_EQ(run_cli({"break-glass", "--count", "21"}), 2);
  become("daemon");
  clear();
  EXPECT_EQ(run_cli({"break-glass"}), 4);
}

// Review finding L5: after too many wrong break-glass answers root sees the lock and lifts it
// with --unlock, which keeps the codes; a new set starts without wrong answers.
TEST_F(BreakGlassCliTest, StatusShowsTheLockAndUnlockLiftsItKeepingTheCodes) {
  write_config("store = postgresql\npg_conninfo = host=/nonexistent\n");
  ASSERT_EQ(run_cli({"break-glass", "--count", "2", "--json"}), 0) << err();
  std::string code = nlohmann::json::parse(out()).at("codes")[0];
  totp::Config config;
  config.state_dir = state_dir_;
  config.trusted_uid = 0;
  for (int i = 0; i < totp::kBreakGlassMaxFailures; ++i) {
    auto r = totp::answer_break_glass(config, "abcd-efgh-jkmn-pqrs");
    ASSERT_TRUE(r.ok());
  }
  clear();
  ASSERT_EQ(run_cli({"break-glass", "--status", "--json"}), 0) << err();
  auto st = nlohmann::json::parse(out());
  EXPECT_EQ(st.at("left"), 2);
  EXPECT_EQ(st.at("wrong_answers"), totp::kBreakGlassMaxFailures);
  EXPECT_EQ(st.at("locked"), true);
  clear();
  ASSERT_EQ(run_cli({"break-glass", "--status"}), 0) << err();
  EXPECT_NE(out().find("LOCKED"), std::string::npos) << out();
  EXPECT_EQ(out().find(code), std::string::npos);
  std::vector<std::string> doctor = {"doctor",    "--json",        "--pam-dir",
                                     tmp_.path(), "--sshd-config", tmp_ / "none"};
  clear();
  run_cli(doctor);
  std::string check = doctor_checks(out())["break-glass"];
  EXPECT_EQ(check.rfind("FAIL", 0), 0U) << check;
  EXPECT_NE(check.find("locked"), std::string::npos) << check;

  clear();
  EXPECT_EQ(run_cli({"break-glass", "--unlock", "--count", "3"}), 2);
  clear();
  ASSERT_EQ(run_cli({"break-glass", "--unlock"}), 0) << err();
  EXPECT_NE(out().find("5 wrong answers forgotten"), std::string::npos) << out();
  ASSERT_FALSE(audit_.empty());
  EXPECT_NE(audit_.back().find("break-glass unlock wrong_answers=5"), std::string::npos)
      << audit_.back();
  auto used = totp::use_break_glass_code(config, code);  // the same codes work again
  ASSERT_TRUE(used.ok());
  EXPECT_TRUE(*used);

  auto r = totp::answer_break_glass(config, "abcd-efgh-jkmn-pqrs");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->failures, 1);
  clear();
  run_cli(doctor);
  check = doctor_checks(out())["break-glass"];
  EXPECT_EQ(check.rfind("WARN", 0), 0U) << check;
  clear();
  ASSERT_EQ(run_cli({"break-glass", "--json"}), 0) << err();  // a new set: no wrong answers
  clear();
  ASSERT_EQ(run_cli({"break-glass", "--status", "--json"}), 0) << err();
  st = nlohmann::json::parse(out());
  EXPECT_EQ(st.at("wrong_answers"), 0);
  EXPECT_EQ(st.at("left"), 5);

  become("daemon");
  clear();
  EXPECT_EQ(run_cli({"break-glass", "--unlock"}), 4);
}

// Issue 18: db rotate-key. Rows written through the library (no accounts needed to hold rows).
class DbRotateCliTest : public DbCliTest {
 protected:
  std::string new_key() const { return tmp_ / "fleet.key.new"; }
  void use_keys(const std::string& key, const std::string& previous) {
    std::string extra =
        "recovery_codes = 2\nstore = postgresql\npg_conninfo = " + schema_->conninfo() +
        "\npg_plugin = " + totp::testing::pg_plugin_path() + "\nfleet_key = " + key + "\n";
    if (!previous.empty()) extra += "fleet_key_previous = " + previous + "\n";
    write_config(extra);
  }
  // `n` users with an enrollment and a state row each, under the configured fleet key.
  void fill(int n) {
    auto st = store();
    auto secret = totp::generate_secret(totp::Algorithm::kSha1);
    ASSERT_TRUE(secret.ok());
    auto id = totp::new_enrollment_id();
    ASSERT_TRUE(id.ok());
    totp::Enrollment e = totp::single_device_enrollment(*id, std::move(secret.value()),
                                                        totp::Algorithm::kSha1, 6, 30, kNow);
    for (int u = 0; u < n; ++u) {
      totp::User user{"pbxtestrot" + std::to_string(1000 + u), static_cast<uid_t>(70000 + u), 65534,
                      "/nonexistent"};
      auto txn = st->lock_state(user);
      ASSERT_TRUE(txn.ok()) << txn.error().message;
      ASSERT_TRUE(st->save(user, e, true).ok());
      totp::UserState state;
      state.enrollment_id = e.id;
      ASSERT_TRUE((*txn)->commit(state).ok());
    }
  }
  std::string rows() const {
    return schema_->exec(
        "SELECT md5(string_agg(encode(sealed, 'hex'), ',' ORDER BY user_name)) || "
        "(SELECT md5(string_agg(encode(state_mac, 'hex'), ',' ORDER BY user_name)) FROM "
        "pbx_mfa_state) FROM pbx_mfa_enrollment");
  }
  totp::DbKeyUsage usage() {
    auto u = totp::db_key_usage(config());
    EXPECT_TRUE(u.ok()) << u.error().message;
    return u.ok() ? *u : totp::DbKeyUsage{};
  }
  std::map<std::string, std::string> doctor() {
    clear();
    run_cli({"doctor", "--json", "--pam-dir", tmp_.path(), "--sshd-config", tmp_ / "none"});
    return doctor_checks(out());
  }
};

TEST_F(DbRotateCliTest, MissingFileIsCreatedAndNoRowChanges) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  fill(3);
  std::string before = rows();
  clear();
  ASSERT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key()}), 0) << err();
  EXPECT_NE(out().find("created the new fleet key " + new_key()), std::string::npos) << out();
  EXPECT_NE(out().find("fleet_key_previous = " + key_path()), std::string::npos) << out();
  // Two config pushes with the same two keys: first the new key to read only.
  EXPECT_NE(out().find("add fleet_key_previous = " + new_key() + " (the server reads both keys"),
            std::string::npos)
      << out();
  struct stat st {};
  ASSERT_EQ(::lstat(new_key().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400U);
  EXPECT_EQ(st.st_size, 32);
  EXPECT_EQ(rows(), before);
  auto checks = doctor();
  EXPECT_EQ(checks["db-key-rotation"].rfind("WARN a new fleet key was made for this database", 0),
            0U)
      << checks["db-key-rotation"];
  // The first change (reads the new key, still writes the old): not "rotation complete".
  use_keys(key_path(), new_key());
  checks = doctor();
  EXPECT_EQ(checks["db-key-rotation"].rfind("WARN rotation, first change", 0), 0U)
      << checks["db-key-rotation"];
  EXPECT_EQ(checks["db-key"].rfind("PASS", 0), 0U) << checks["db-key"];
  // A second step 1 while this one is pending is refused.
  use_keys(key_path(), "");
  clear();
  EXPECT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key() + "2"}), 2);
  EXPECT_NE(err().find("a rotation is pending"), std::string::npos) << err();
}

TEST_F(DbRotateCliTest, RefusesWhileThisHostCannotReadBothKeys) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  fill(3);
  clear();
  ASSERT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key()}), 0) << err();
  std::string before = rows();
  // The new key exists but is not this host's fleet_key.
  clear();
  EXPECT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key()}), 2);
  EXPECT_NE(err().find("is not fleet_key"), std::string::npos) << err();
  EXPECT_NE(err().find("fleet_key_previous = " + key_path()), std::string::npos) << err();
  // fleet_key is the new key, but fleet_key_previous is not set.
  use_keys(new_key(), "");
  clear();
  EXPECT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key()}), 2);
  EXPECT_NE(err().find("fleet_key_previous is not set"), std::string::npos) << err();
  // Both set, but the previous key is not this database's: another fleet.
  std::string stranger = tmp_ / "stranger.key";
  ASSERT_TRUE(totp::create_fleet_key(stranger).ok());
  use_keys(new_key(), stranger);
  clear();
  EXPECT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key()}), 2);
  EXPECT_NE(err().find("another fleet"), std::string::npos) << err();
  clear();
  EXPECT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key(), "--batch", "0"}), 2);
  EXPECT_EQ(rows(), before);
  EXPECT_EQ(schema_->exec("SELECT count(*) FROM pbx_mfa_event"), "0");
}

TEST_F(DbRotateCliTest, ARowUnderNeitherKeySaysCheckTheKeysFirst) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  fill(2);
  schema_->exec(
      "UPDATE pbx_mfa_enrollment SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1), "
      "user_name = E'pbxtestrot\\x1b[2J' WHERE user_name = 'pbxtestrot1001'");
  clear();
  ASSERT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key()}), 0) << err();
  use_keys(new_key(), key_path());
  clear();
  ASSERT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key()}), 0) << err();
  const std::string e = err();
  EXPECT_NE(e.find("first check fleet_key and fleet_key_previous on this host"), std::string::npos)
      << e;
  EXPECT_LT(e.find("first check fleet_key"), e.find("'pbx-mfa reset' those users")) << e;
  EXPECT_EQ(e.find('\x1b'), std::string::npos) << e;
  EXPECT_NE(e.find("user pbxtestrot\\x1b[2J:"), std::string::npos) << e;
}

TEST_F(DbRotateCliTest, RotatesEveryRowInBatchesAndDoctorFollows) {
  ASSERT_EQ(run_cli({"db", "init"}), 0) << err();
  fill(300);
  clear();
  ASSERT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key()}), 0) << err();
  use_keys(new_key(), key_path());
  auto checks = doctor();
  EXPECT_EQ(checks["db-key-rotation"].rfind("WARN rotation, second change", 0), 0U)
      << checks["db-key-rotation"];
  EXPECT_NE(checks["db-key-rotation"].find("600 rows under it"), std::string::npos)
      << checks["db-key-rotation"];
  EXPECT_EQ(checks["db-key"].rfind("WARN the database's key check opens only under "
                                   "fleet_key_previous",
                                   0),
            0U)
      << checks["db-key"];

  clear();
  ASSERT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key(), "--batch", "50"}), 0) << err();
  std::string o = out();
  EXPECT_NE(o.find("rotated 50 of 300 users (batch 1, "), std::string::npos) << o;
  EXPECT_NE(o.find("rotated 300 of 300 users (batch 6, 600 rows re-sealed"), std::string::npos)
      << o;
  EXPECT_NE(o.find("done: 300 users in "), std::string::npos) << o;
  EXPECT_NE(o.find("300 enrollments re-sealed and 300 state rows re-authenticated"),
            std::string::npos)
      << o;
  EXPECT_NE(o.find("remove fleet_key_previous from every server's config"), std::string::npos) << o;
  EXPECT_TRUE(err().empty()) << err();
  ASSERT_FALSE(audit_.empty());
  EXPECT_NE(audit_.back().find("db-rotate-key enrollments_resealed=300 states_remaced=300"),
            std::string::npos)
      << audit_.back();
  EXPECT_EQ(schema_->exec("SELECT event FROM pbx_mfa_event"), "fleet-key-rotated");
  EXPECT_EQ(schema_->exec("SELECT user_name || '|' || detail FROM pbx_mfa_event"),
            "|300 users: enrollments_resealed=300 states_remaced=300 already=0 rows_left=0");
  auto u = usage();
  EXPECT_EQ(u.enrollments_current, 300);
  EXPECT_EQ(u.states_current, 300);
  EXPECT_EQ(u.previous(), 0);
  checks = doctor();
  EXPECT_EQ(checks["db-key-rotation"].rfind("WARN rotation complete", 0), 0U)
      << checks["db-key-rotation"];

  // Again: nothing left to do.
  clear();
  ASSERT_EQ(run_cli({"db", "rotate-key", "--new-key", new_key(), "--batch", "50"}), 0) << err();
  EXPECT_NE(out().find("0 enrollments re-sealed and 0 state rows re-authenticated under " +
                       new_key() + ", 600 rows already under it"),
            std::string::npos)
      << out();

  // The new key alone opens every row; the old key alone none.
  use_keys(new_key(), "");
  u = usage();
  EXPECT_EQ(u.enrollments_current + u.states_current, 600);
  checks = doctor();
  EXPECT_EQ(checks["db-key-rotation"].rfind("PASS all 600 rows", 0), 0U)
      << checks["db-key-rotation"];
  use_keys(key_path(), "");
  u = usage();
  EXPECT_EQ(u.enrollments_neither, 300);
  EXPECT_EQ(u.states_neither, 300);
  checks = doctor();
  EXPECT_EQ(checks["db-key"].rfind("FAIL", 0), 0U) << checks["db-key"];
  // The keys swapped the wrong way on a host (the old one as fleet_key): no match reported.
  use_keys(key_path(), new_key());
  checks = doctor();
  EXPECT_EQ(checks["db-key"].rfind("WARN the database's key check opens only under "
                                   "fleet_key_previous",
                                   0),
            0U)
      << checks["db-key"];
  EXPECT_EQ(checks["db-key-rotation"].rfind("WARN the database's key check opens only under "
                                            "fleet_key_previous",
                                            0),
            0U)
      << checks["db-key-rotation"];
  EXPECT_NE(checks["db-key-rotation"].find("is not the fleet's key"), std::string::npos)
      << checks["db-key-rotation"];
}

}  // namespace
}  // namespace pbx::cli::testing

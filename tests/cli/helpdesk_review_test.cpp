// Review 2 of the delegated helpdesk (issue 15 item 4, with items 1, 2, 5): attacks by a
// helpdesk member running `sudo pbx-mfa ...`. Same stand-ins as helpdesk_test.cpp: the member
// is daemon (group daemon), another member sys, the protected user bin (group bin), target lp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "doctor/sudo_checks.hpp"
#include "enroll_fixture.hpp"
#include "helpdesk.hpp"
#include "root.hpp"
#include "session.hpp"

namespace pbx::cli::testing {
namespace {

class HelpdeskReviewTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
    env_.system_config_path = config_path_;
    write_config("helpdesk_groups = daemon,sys\nprotected_groups = bin\n");
    ASSERT_EQ(run_cli({"enroll", "--user", "lp", "--no-confirm", "--json"}), 0) << err();
    clear();
    audit_.clear();
  }

  int hd(std::vector<std::string> args) {
    env_.sudo_uid = user("daemon").uid;
    env_.sudo_user = "daemon";
    std::size_t before = audit_.size();
    int rc = run(args, env_);
    EXPECT_EQ(audit_.size(), before + 1) << "pbx-mfa " << ::testing::PrintToString(args);
    return rc;
  }
  std::string last_audit() const { return audit_.empty() ? "" : audit_.back(); }
};

// `status --user root` and `status --user bin` are refused, but `list` (which needs only the
// status action) prints the very same rows for them: root's and the protected users' lockout,
// last success, recovery codes left and temp-code expiry, and other helpdesk members' too.
TEST_F(HelpdeskReviewTest, ListShowsNoRowStatusWouldRefuse) {
  EXPECT_EQ(hd({"status", "--user", "bin", "--json"}), kExitStore);
  clear();
  int rc = hd({"list", "--json"});
  EXPECT_TRUE(rc == 0 || rc == 1) << rc << " " << err();
  auto j = nlohmann::json::parse(out(), nullptr, false);
  ASSERT_TRUE(j.is_object()) << out();
  bool saw_lp = false;
  for (const auto& row : j["users"]) {
    const std::string name = row["user"].get<std::string>();
    saw_lp = saw_lp || name == "lp";
    EXPECT_NE(name, "root") << "list shows root's row, which status refuses";
    EXPECT_NE(name, "bin") << "list shows a protected user's row, which status refuses";
    EXPECT_NE(name, "sys") << "list shows another helpdesk member's row, which status refuses";
  }
  EXPECT_TRUE(saw_lp);
}

// Attack surface of argument parsing: every form of --user root is refused with exit 4 and one
// audit line; --user twice never lets the gate check one user and the command act on another.
TEST_F(HelpdeskReviewTest, UserOptionFormsCannotSmuggleRoot) {
  EXPECT_EQ(hd({"unlock", "--user=root"}), kExitStore);
  EXPECT_EQ(hd({"unlock", "--user", "toor-pbxtest-none"}), kExitUsage);
  EXPECT_EQ(hd({"unlock", "--user", "0"}), kExitUsage);
  EXPECT_EQ(hd({"unlock", "--user", "root "}), kExitUsage);
  EXPECT_EQ(hd({"unlock", "--user", "Root"}), kExitUsage);
  // Given twice: either a usage error (no audit line: parse errors come before the gate) or the
  // same user for the gate and the command.
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "daemon";
  clear();
  std::size_t before = audit_.size();
  int rc = run(std::vector<std::string>{"temp-code", "--user", "lp", "--user", "root"}, env_);
  EXPECT_NE(rc, 0) << out();
  EXPECT_EQ(out().find("Temporary access code"), std::string::npos) << out();
  (void)before;
  clear();
  rc = run(std::vector<std::string>{"temp-code", "--user", "root", "--user", "lp"}, env_);
  EXPECT_EQ(out().find("Temporary access code for root"), std::string::npos) << out();
}

// A --reason of up to 200 bytes is accepted, but audit_field kept 128 bytes of it with no mark:
// the audit line showed another, shorter reason ("ticket 4711 ... not for X" cut before "not").
TEST_F(HelpdeskReviewTest, TheAuditLineHoldsTheWholeReason) {
  const std::string reason = std::string(150, 'a') + "-not-approved";
  EXPECT_EQ(hd({"temp-code", "--user", "lp", "--reason", reason, "--json"}), 0) << err();
  EXPECT_NE(last_audit().find("reason=" + reason), std::string::npos) << last_audit();
}

// A second account with the uid of a protected user (useradd -o), whose name and primary group
// are not in protected_groups: the gate asks only the alias's name and gid, so the helpdesk
// acts on the protected uid (a temp code for the alias logs in as uid 2, bin).
TEST_F(HelpdeskReviewTest, AliasOfAProtectedUidIsProtected) {
  const std::string alias = "pbxtest-rv2-alias";
  std::string add = "useradd -o -u " + std::to_string(user("bin").uid) +
                    " -g lp -M -N -d /nonexistent -s /usr/sbin/nologin " + alias +
                    " >/dev/null 2>&1";
  ASSERT_EQ(std::system(add.c_str()), 0);
  struct Cleanup {
    std::string name;
    ~Cleanup() { (void)std::system(("userdel " + name + " >/dev/null 2>&1").c_str()); }
  } cleanup{alias};
  EXPECT_EQ(hd({"temp-code", "--user", alias, "--json"}), kExitStore) << out();
  EXPECT_EQ(out().find("\"code\""), std::string::npos) << "a temp code for uid 2 (bin) was printed";
  EXPECT_NE(last_audit().find("refused temp-code user=" + alias), std::string::npos)
      << last_audit();
  // The same for an alias of another helpdesk member (sys).
  const std::string alias2 = "pbxtest-rv2-alias2";
  add = "useradd -o -u " + std::to_string(user("sys").uid) +
        " -g lp -M -N -d /nonexistent -s /usr/sbin/nologin " + alias2 + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(add.c_str()), 0);
  Cleanup cleanup2{alias2};
  clear();
  EXPECT_EQ(hd({"temp-code", "--user", alias2, "--json"}), kExitStore) << out();
}

}  // namespace
}  // namespace pbx::cli::testing

namespace pbx::cli::doctor {
namespace {

// A rule giving pbx-mfa to a user (not a %group) outside helpdesk_groups makes that user full
// root for pbx-mfa, exactly like a group outside helpdesk_groups, which doctor fails. The same
// through a Cmnd_Alias naming pbx-mfa.
TEST(SudoersReview, PbxMfaThroughACmndAliasFails) {
  totp::Config config;
  config.helpdesk_groups = {"pbx-helpdesk"};
  auto verdict = [&](const std::string& text) {
    SudoersScan scan;
    SudoersFile f;
    f.path = "/etc/sudoers.d/pbx-helpdesk";
    f.text = text;
    scan.files.push_back(f);
    auto checks =
        sudoers_checks(scan, "/etc/sudoers.d", config, [](const std::vector<std::string>&) {
          return std::optional<ProgramResult>(ProgramResult{0, ""});
        });
    return checks.empty() ? Status::kPass : checks[0].status;
  };
  EXPECT_EQ(verdict("%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa\n"), Status::kPass);
  // A user named in a rule is an administrator given pbx-mfa as full root on purpose (the
  // e2e test's pbxtest-adm): pbx-mfa(1) HELPDESK says so; only groups are judged.
  EXPECT_EQ(verdict("%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa\nmallory ALL=(root) "
                    "/usr/bin/pbx-mfa\n"),
            Status::kPass);
  EXPECT_EQ(verdict("%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa\nCmnd_Alias MFA = "
                    "/usr/bin/pbx-mfa\n%ops ALL=(root) MFA\n"),
            Status::kFail)
      << "%ops gets pbx-mfa through a Cmnd_Alias";
}

// A rule with a run-as list beyond root lets a member run pbx-mfa as any other user (uid not 0:
// no helpdesk gate), e.g. `sudo -u alice pbx-mfa recovery-codes` prints a fresh set of alice's
// recovery codes (a user replaces their own without a password), for a protected alice too.
TEST(SudoersReview, RunAsOtherThanRootFails) {
  totp::Config config;
  config.helpdesk_groups = {"pbx-helpdesk"};
  auto verdict = [&](const std::string& text) {
    SudoersScan scan;
    SudoersFile f;
    f.path = "/etc/sudoers.d/pbx-helpdesk";
    f.text = text;
    scan.files.push_back(f);
    auto checks =
        sudoers_checks(scan, "/etc/sudoers.d", config, [](const std::vector<std::string>&) {
          return std::optional<ProgramResult>(ProgramResult{0, ""});
        });
    return checks.empty() ? Status::kPass : checks[0].status;
  };
  EXPECT_EQ(verdict("%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa\n"), Status::kPass);
  EXPECT_EQ(verdict("%pbx-helpdesk ALL = /usr/bin/pbx-mfa\n"), Status::kPass);  // root
  EXPECT_EQ(verdict("%pbx-helpdesk ALL=(ALL) /usr/bin/pbx-mfa\n"), Status::kFail);
  EXPECT_EQ(verdict("%pbx-helpdesk ALL=(ALL:ALL) NOPASSWD: /usr/bin/pbx-mfa\n"), Status::kFail);
  EXPECT_EQ(verdict("%pbx-helpdesk ALL=(root,alice) /usr/bin/pbx-mfa\n"), Status::kFail);
}

}  // namespace
}  // namespace pbx::cli::doctor

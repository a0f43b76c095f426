// The delegated helpdesk in-process: root run through sudo (Env::sudo_uid) for a member of
// helpdesk_groups does only the allowed actions, never on protected users, never with --config,
// and every action, allowed or refused, is one audit line naming the member, the action and the
// target. Accounts and groups of every Debian system stand in: the member is daemon (group
// daemon), another member sys (group sys), the protected user bin (group bin), the target lp.
#include "helpdesk.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "enroll_fixture.hpp"
#include "root.hpp"
#include "session.hpp"

namespace pbx::cli::testing {
namespace {

class HelpdeskTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
    env_.system_config_path = config_path_;
    set_config("");
    // lp is enrolled by root itself (no sudo).
    ASSERT_EQ(run_cli({"enroll", "--user", "lp", "--no-confirm", "--json"}), 0) << err();
    clear();
    audit_.clear();
  }

  void set_config(const std::string& extra) {
    write_config("helpdesk_groups = daemon,sys\nprotected_groups = bin\n" + extra);
  }

  // pbx-mfa as root through sudo for `member` (SUDO_UID, SUDO_USER), without --config unless
  // given; returns the exit status and checks that exactly one audit line was written.
  int as(const std::string& member, std::vector<std::string> args) {
    env_.sudo_uid = user(member).uid;
    env_.sudo_user = member;
    std::size_t before = audit_.size();
    int rc = run(args, env_);
    EXPECT_EQ(audit_.size(), before + 1) << "pbx-mfa " << ::testing::PrintToString(args);
    return rc;
  }
  int hd(std::vector<std::string> args) { return as("daemon", std::move(args)); }
  std::string last_audit() const { return audit_.empty() ? "" : audit_.back(); }
};

TEST_F(HelpdeskTest, AllowedStatusAndUnlockWorkAndAreLogged) {
  EXPECT_EQ(hd({"status", "--user", "lp", "--json"}), 0) << err();
  EXPECT_EQ(nlohmann::json::parse(out())["user"], "lp");
  EXPECT_EQ(last_audit(), "by=daemon helpdesk status user=lp (exit 0)");
  clear();
  EXPECT_EQ(hd({"unlock", "--user", "lp"}), 0) << err();
  EXPECT_EQ(last_audit(), "by=daemon helpdesk unlock user=lp (failures and lockout cleared)");
}

TEST_F(HelpdeskTest, RootIsAlwaysProtectedAlsoAsTheDefaultTarget) {
  EXPECT_EQ(hd({"status"}), kExitStore);  // without --user: root, the invoking user
  EXPECT_NE(err().find("helpdesk: --user root: root is always protected"), std::string::npos)
      << err();
  EXPECT_EQ(last_audit(), "by=daemon helpdesk refused status user=root (root is always protected)");
  EXPECT_EQ(hd({"unlock", "--user", "root"}), kExitStore);
  EXPECT_EQ(last_audit(), "by=daemon helpdesk refused unlock user=root (root is always protected)");
}

TEST_F(HelpdeskTest, ProtectedGroupMemberIsRefused) {
  EXPECT_EQ(hd({"unlock", "--user", "bin"}), kExitStore);
  EXPECT_NE(err().find("member of protected group 'bin' (protected_groups)"), std::string::npos)
      << err();
  EXPECT_EQ(last_audit(),
            "by=daemon helpdesk refused unlock user=bin (member of protected group 'bin' "
            "(protected_groups))");
}

TEST_F(HelpdeskTest, AnotherHelpdeskMemberIsProtectedButNotOneself) {
  EXPECT_EQ(hd({"unlock", "--user", "sys"}), kExitStore);
  EXPECT_NE(last_audit().find("refused unlock user=sys (another helpdesk member (group 'sys'"),
            std::string::npos)
      << last_audit();
  EXPECT_EQ(hd({"status", "--user", "daemon"}), kExitNotEnrolled) << err();
  EXPECT_EQ(last_audit(), "by=daemon helpdesk status user=daemon (exit 3)");
}

TEST_F(HelpdeskTest, ConfigOptionIsRefusedEvenNamingTheSystemConfig) {
  EXPECT_EQ(hd({"--config", config_path_, "status", "--user", "lp"}), kExitStore);
  EXPECT_NE(err().find("pbx-mfa: helpdesk: --config is not allowed"), std::string::npos) << err();
  EXPECT_EQ(last_audit(), "by=daemon helpdesk refused status user=lp (--config is not allowed)");
  EXPECT_EQ(hd({"status", "--user", "lp", "--config", "/nonexistent"}), kExitStore);
  EXPECT_EQ(out(), "");
}

TEST_F(HelpdeskTest, ActionOutsideHelpdeskActionsIsRefusedAndChangesNothing) {
  EXPECT_EQ(hd({"reset", "--user", "lp"}), kExitStore);
  EXPECT_NE(err().find("pbx-mfa: helpdesk: 'reset' is not in helpdesk_actions (status, unlock, "
                       "temp-code)"),
            std::string::npos)
      << err();
  EXPECT_EQ(last_audit(),
            "by=daemon helpdesk refused reset user=lp ('reset' is not in helpdesk_actions)");
  EXPECT_TRUE(load("lp").ok()) << "lp's enrollment must survive a refused reset";

  set_config("helpdesk_actions = status\n");
  EXPECT_EQ(hd({"unlock", "--user", "lp"}), kExitStore);
  set_config("helpdesk_actions = status,reset\n");
  EXPECT_EQ(hd({"reset", "--user", "lp"}), 0) << err();
  EXPECT_EQ(last_audit(), "by=daemon helpdesk reset user=lp (secret and state removed)");
  EXPECT_FALSE(load("lp").ok());
}

TEST_F(HelpdeskTest, CommandsOutsideTheTableAreRefused) {
  const std::vector<std::vector<std::string>> calls = {
      {"enroll", "--user", "news", "--no-confirm"},
      {"import", "--user", "news", "--from", "uri", "-"},
      {"recovery-codes", "--user", "lp"},
      {"verify", "--user", "lp", "123456"},
      {"doctor"},
      {"db", "init"},
      {"break-glass"},
  };
  for (const auto& call : calls) {
    clear();
    EXPECT_EQ(hd(call), kExitStore) << call[0];
    // A command with subcommands is named down to the one given ("db init").
    const std::string name = call[0] == "db" ? call[0] + " " + call[1] : call[0];
    EXPECT_NE(err().find("helpdesk: '" + name + "' is not a helpdesk command"), std::string::npos)
        << err();
    EXPECT_NE(last_audit().find("by=daemon helpdesk refused " + name), std::string::npos)
        << last_audit();
    EXPECT_EQ(out(), "");
  }
  EXPECT_FALSE(load("news").ok());
}

TEST_F(HelpdeskTest, UnknownTargetIsOneLineAndAUsageError) {
  EXPECT_EQ(hd({"unlock", "--user", "pbxtest-no-such-user"}), kExitUsage);
  EXPECT_NE(last_audit().find("refused unlock user=pbxtest-no-such-user (cannot look up"),
            std::string::npos)
      << last_audit();
}

TEST_F(HelpdeskTest, SudoOnlyRestrictsNonMembersAndRootAreFullRoot) {
  env_.sudo_uid = user("lp").uid;  // through sudo, but not a helpdesk member
  env_.sudo_user = "lp";
  EXPECT_EQ(run_cli({"reset", "--user", "lp"}), 0) << err();  // --config allowed too
  EXPECT_EQ(last_audit(), "by=root reset user=lp (secret and state removed)");
  env_.sudo_uid = 0;  // root's own sudo
  env_.sudo_user = "root";
  EXPECT_EQ(run_cli({"enroll", "--user", "lp", "--no-confirm", "--json"}), 0) << err();
  // Delegation off: a helpdesk group member through sudo is full root.
  write_config("");
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "daemon";
  EXPECT_EQ(run_cli({"status", "--user", "lp"}), 0) << err();
}

TEST_F(HelpdeskTest, UndecidableSudoUserIsRefusedNotFullRoot) {
  env_.sudo_uid.reset();
  env_.sudo_uid_invalid = true;  // SUDO_UID=abc
  EXPECT_EQ(run(std::vector<std::string>{"status", "--user", "lp"}, env_), kExitStore);
  EXPECT_NE(err().find("SUDO_UID is set but is not a user id"), std::string::npos) << err();
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_NE(audit_[0].find(" sudo refused status user=lp ("), std::string::npos) << audit_[0];
  // SUDO_USER naming another account than SUDO_UID's.
  env_.sudo_uid_invalid = false;
  env_.sudo_uid = user("lp").uid;
  env_.sudo_user = "daemon";
  clear();
  EXPECT_EQ(run(std::vector<std::string>{"status", "--user", "lp"}, env_), kExitStore);
  EXPECT_NE(err().find("SUDO_USER does not name the account of SUDO_UID"), std::string::npos);
  // A system config that does not load: whether the caller is a member cannot be told.
  ASSERT_TRUE(totp::testing::write_file(config_path_, "no_such_key = 1\n", 0644));
  env_.sudo_user = "lp";
  clear();
  EXPECT_EQ(run(std::vector<std::string>{"doctor"}, env_), kExitUsage);
  EXPECT_NE(err().find("the system config does not load"), std::string::npos) << err();
}

TEST_F(HelpdeskTest, NotRootIgnoresSudoVariables) {
  become("daemon");
  env_.sudo_uid = user("daemon").uid;
  env_.sudo_user = "daemon";
  EXPECT_EQ(run(std::vector<std::string>{"status"}, env_), kExitNotEnrolled) << err();
  EXPECT_TRUE(audit_.empty());
}

// ---- the policy's pieces --------------------------------------------------------------------

TEST(HelpdeskTable, EveryRowNeedsAKnownActionAndOthersNone) {
  for (const auto& row : kHelpdeskCommands) {
    bool known = false;
    for (auto a : totp::kHelpdeskActions) known = known || a == row.action;
    EXPECT_TRUE(known) << row.command;
  }
  EXPECT_EQ(helpdesk_action("list"), "status");
  EXPECT_EQ(helpdesk_action("temp-code"), "temp-code");
  EXPECT_EQ(helpdesk_action("require"), "require");
  EXPECT_EQ(helpdesk_action("device list"), "status");
  for (const char* c :
       {"enroll", "import", "db", "break-glass", "recovery-codes", "verify", "doctor", "device",
        "device add", "device remove", "events", "", "STATUS"}) {
    EXPECT_FALSE(helpdesk_action(c)) << c;
  }
}

TEST(ParseSudoUid, StrictDecimal) {
  EXPECT_FALSE(parse_sudo_uid(nullptr).value());
  EXPECT_EQ(parse_sudo_uid("0").value(), 0u);
  EXPECT_EQ(parse_sudo_uid("1000").value(), 1000u);
  EXPECT_EQ(parse_sudo_uid("4294967294").value(), 4294967294u);
  for (const char* bad :
       {"", "01", "-1", "+1", " 1", "1 ", "12a", "4294967295", "99999999999", "0x10"}) {
    EXPECT_FALSE(parse_sudo_uid(bad).ok()) << bad;
  }
}

totp::Result<std::optional<totp::Group>> failing_lookup(std::string_view) {
  return totp::make_error(totp::Errc::kIo, "cannot look up group: directory down");
}

TEST(HelpdeskPolicy, FailedGroupLookupFailsClosed) {
  Env env;
  env.uid = 0;
  env.sudo_uid = 1;  // daemon
  totp::Config config;
  config.helpdesk_groups = {"pbxtest-not-listed"};
  auto actor = helpdesk_actor(env, config, failing_lookup);
  EXPECT_FALSE(actor.ok()) << "a failed lookup must not make the caller full root";
  // A group that certainly holds the caller decides, whatever another lookup says.
  config.helpdesk_groups = {"pbxtest-not-listed", "daemon"};
  actor = helpdesk_actor(env, config, failing_lookup);
  ASSERT_TRUE(actor.ok()) << actor.error().message;
  ASSERT_TRUE(actor->has_value());
  EXPECT_EQ((*actor)->group, "daemon");

  auto lp = totp::lookup_user("lp");
  ASSERT_TRUE(lp.ok());
  config.protected_groups = {"pbxtest-not-listed"};
  EXPECT_FALSE(helpdesk_protection(config, *lp, 1, failing_lookup).ok());
  config.protected_groups.clear();
  config.helpdesk_groups = {"pbxtest-not-listed"};
  EXPECT_FALSE(helpdesk_protection(config, *lp, 1, failing_lookup).ok());
  // Acting on oneself asks no helpdesk group.
  auto self = helpdesk_protection(config, *lp, lp->uid, failing_lookup);
  ASSERT_TRUE(self.ok());
  EXPECT_FALSE(self->has_value());
}

TEST(HelpdeskPolicy, ActingUserIsTheMemberInHelpdeskMode) {
  Env env;
  env.invoking_user = "root";
  Session root{env, {}, "", false, std::nullopt, std::nullopt};
  EXPECT_EQ(acting_user(root), "root");
  HelpdeskActor member;
  member.name = "alice";
  Session desk{env, {}, "", false, std::nullopt, member};
  EXPECT_EQ(acting_user(desk), "alice");  // a temp code's issuer is alice, not root
}

}  // namespace
}  // namespace pbx::cli::testing

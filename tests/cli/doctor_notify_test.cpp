// doctor's alert checks: notify-command (unset, safe, unsafe with its fix) and notify-unit
// (whether pbx-mfa-notify.service is enabled: the WantedBy link, or systemctl is-enabled).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "doctor/notify_checks.hpp"
#include "enroll_fixture.hpp"
#include "root.hpp"
#include "store_fixture.hpp"

namespace pbx::cli::doctor {
namespace {

using totp::testing::TempDir;
using totp::testing::write_file;

const Check* find(const std::vector<Check>& checks, const std::string& name) {
  for (const auto& c : checks) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

::testing::AssertionResult says(const std::vector<Check>& checks, const std::string& name,
                                Status status, const std::string& text) {
  const Check* c = find(checks, name);
  if (c == nullptr) return ::testing::AssertionFailure() << "no check " << name;
  std::string line = std::string(status_name(c->status)) + " " + c->message + " Fix: " + c->fix;
  if (c->status != status || line.find(text) == std::string::npos) {
    return ::testing::AssertionFailure() << name << ": " << line;
  }
  return ::testing::AssertionSuccess();
}

const UnitState kEnabled{true, "LINK exists"};
const UnitState kDisabled{false, "LINK does not exist"};

TEST(DoctorNotifyTest, NoCommandIsNoAlertsConfigured) {
  totp::Config config;
  auto checks = notify_checks(config, "/etc/security/pbx-mfa.conf", kDisabled);
  EXPECT_TRUE(says(checks, "notify-command", Status::kPass, "no alerts configured"));
  EXPECT_EQ(checks.size(), 1U) << "no unit line when neither is set";
  // Enabled without a command: the service exits at every start.
  checks = notify_checks(config, "/etc/security/pbx-mfa.conf", kEnabled);
  EXPECT_TRUE(says(checks, "notify-unit", Status::kWarn, "notify_command is not set"));
  EXPECT_TRUE(says(checks, "notify-unit", Status::kWarn, "systemctl disable --now"));
}

TEST(DoctorNotifyTest, ASafeCommandPassesAndTheUnitMustBeEnabled) {
  PBX_SKIP_UNLESS_ROOT("the command must be root-owned");
  TempDir tmp;
  totp::Config config;
  config.notify_command = tmp / "notify";
  ASSERT_TRUE(write_file(config.notify_command, "#!/bin/sh\n", 0755));
  auto checks = notify_checks(config, "C", kDisabled);
  EXPECT_TRUE(says(checks, "notify-command", Status::kPass, "root-owned executable"));
  EXPECT_TRUE(says(checks, "notify-unit", Status::kWarn,
                   "notify_command is set but pbx-mfa-notify.service is not enabled"));
  EXPECT_TRUE(says(checks, "notify-unit", Status::kWarn,
                   "Fix: systemctl enable --now pbx-mfa-notify.service"));
  checks = notify_checks(config, "C", kEnabled);
  EXPECT_TRUE(says(checks, "notify-unit", Status::kPass, "is enabled (LINK exists)"));
}

TEST(DoctorNotifyTest, AnUnsafeOrMissingCommandFailsWithAFix) {
  PBX_SKIP_UNLESS_ROOT("the command must be root-owned");
  TempDir tmp;
  totp::Config config;
  config.notify_command = tmp / "notify";
  ASSERT_TRUE(write_file(config.notify_command, "#!/bin/sh\n", 0775));
  auto checks = notify_checks(config, "C", kEnabled);
  EXPECT_TRUE(says(checks, "notify-command", Status::kFail, "lets group or others write"));
  EXPECT_TRUE(says(checks, "notify-command", Status::kFail,
                   "Fix: make it a root-owned executable not writable by group or others"));
  ASSERT_EQ(::chmod(config.notify_command.c_str(), 0755), 0);
  ASSERT_EQ(::chown(config.notify_command.c_str(), 1, 1), 0);
  EXPECT_TRUE(says(notify_checks(config, "C", kEnabled), "notify-command", Status::kFail,
                   "owned by uid 1"));
  config.notify_command = tmp / "missing";
  EXPECT_TRUE(says(notify_checks(config, "C", kEnabled), "notify-command", Status::kFail,
                   "does not exist"));
}

TEST(DoctorNotifyTest, UnitStateFromTheLinkOrSystemctl) {
  TempDir tmp;
  const std::string link = tmp / "pbx-mfa-notify.service";
  std::vector<std::vector<std::string>> asked;
  std::string answer = "disabled\n";
  auto systemctl = [&](const std::vector<std::string>& argv) -> std::optional<ProgramResult> {
    asked.push_back(argv);
    return ProgramResult{answer == "enabled\n" ? 0 : 1, answer};
  };
  UnitState s = notify_unit_state(link, nullptr);
  EXPECT_EQ(s.enabled, false);
  EXPECT_NE(s.how.find("does not exist"), std::string::npos) << s.how;
  s = notify_unit_state(link, systemctl);
  EXPECT_EQ(s.enabled, false);
  EXPECT_EQ(s.how, "systemctl is-enabled: disabled");
  ASSERT_EQ(asked.size(), 1U);
  EXPECT_EQ(asked[0], (std::vector<std::string>{"/usr/bin/systemctl", "is-enabled",
                                                "pbx-mfa-notify.service"}));
  answer = "enabled\n";
  s = notify_unit_state(link, systemctl);
  EXPECT_EQ(s.enabled, true);
  // What systemctl enable makes: a link in multi-user.target.wants.
  ASSERT_EQ(::symlink("/lib/systemd/system/pbx-mfa-notify.service", link.c_str()), 0);
  asked.clear();
  s = notify_unit_state(link, systemctl);
  EXPECT_EQ(s.enabled, true);
  EXPECT_EQ(s.how, link + " exists");
  EXPECT_TRUE(asked.empty());
}

// Through `pbx-mfa doctor --json`: the two checks are among doctor's.
class DoctorNotifyRunTest : public pbx::cli::testing::CliTest {};

TEST_F(DoctorNotifyRunTest, DoctorReportsTheCommand) {
  PBX_SKIP_UNLESS_ROOT("the config and the command must be root-owned");
  const std::string fixtures = std::string(PBX_CLI_FIXTURES) + "/doctor";
  const std::string command = tmp_ / "notify";
  ASSERT_TRUE(write_file(command, "#!/bin/sh\n", 0757));
  write_config("notify_command = " + command + "\n");
  clear();
  EXPECT_EQ(run_cli({"doctor", "--json", "--pam-dir", fixtures + "/pam/good", "--sshd-config",
                     fixtures + "/sshd/good.conf"}),
            kExitRejected);
  auto j = nlohmann::json::parse(out());
  std::map<std::string, std::string> status;
  for (const auto& c : j["checks"]) status[c["name"]] = c["status"];
  EXPECT_EQ(status["notify-command"], "FAIL") << out();
  EXPECT_EQ(status.count("notify-unit"), 1U) << out();
}

}  // namespace
}  // namespace pbx::cli::doctor

// doctor's helpdesk checks: the sudoers files handing pbx-mfa to the helpdesk (owner, mode,
// visudo syntax, SETENV and friends) and the groups helpdesk_groups and protected_groups name.
#include "doctor/sudo_checks.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace pbx::cli::doctor {
namespace {

const std::string kDir = "/etc/sudoers.d";
const std::string kRule = "%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa\n";

class SudoersTest : public ::testing::Test {
 protected:
  SudoersTest() { config_.helpdesk_groups = {"pbx-helpdesk"}; }

  SudoersFile file(const std::string& text, const std::string& name = "pbx-helpdesk") {
    SudoersFile f;
    f.path = kDir + "/" + name;
    f.text = text;
    return f;
  }

  std::vector<Check> judge(std::vector<SudoersFile> files) {
    SudoersScan scan;
    scan.files = std::move(files);
    return sudoers_checks(scan, kDir, config_, [this](const std::vector<std::string>& argv) {
      ran_.push_back(argv);
      return visudo_;
    });
  }
  Check one(const SudoersFile& f) {
    auto checks = judge({f});
    EXPECT_EQ(checks.size(), 1u);
    return checks.empty() ? Check{} : checks[0];
  }

  totp::Config config_;
  std::optional<ProgramResult> visudo_ = ProgramResult{0, "parsed OK\n"};
  std::vector<std::vector<std::string>> ran_;
};

TEST_F(SudoersTest, TheRecommendedRulePasses) {
  Check c = one(file(kRule));
  EXPECT_EQ(c.status, Status::kPass) << c.message;
  EXPECT_EQ(c.name, "sudoers");
  EXPECT_NE(c.message.find("grants pbx-mfa to %pbx-helpdesk"), std::string::npos) << c.message;
  ASSERT_EQ(ran_.size(), 1u);
  EXPECT_EQ(ran_[0], (std::vector<std::string>{"/usr/sbin/visudo", "-c", "-f",
                                               "/etc/sudoers.d/pbx-helpdesk"}));
}

TEST_F(SudoersTest, OwnerModeAndLinkAreChecked) {
  auto f = file(kRule);
  f.owner = 1000;
  EXPECT_EQ(one(f).status, Status::kFail);
  f = file(kRule);
  f.mode = 0664;
  Check c = one(f);
  EXPECT_EQ(c.status, Status::kFail);
  EXPECT_NE(c.message.find("mode 0664"), std::string::npos) << c.message;
  EXPECT_NE(c.fix.find("chmod 0440"), std::string::npos) << c.fix;
  f.mode = 0644;
  EXPECT_EQ(one(f).status, Status::kWarn);
  f.mode = 0400;
  EXPECT_EQ(one(f).status, Status::kPass);
  f = file(kRule);
  f.is_link = true;
  EXPECT_EQ(one(f).status, Status::kFail);
}

TEST_F(SudoersTest, VisudoVerdictDecides) {
  visudo_ = ProgramResult{1, ""};
  Check c = one(file(kRule));
  EXPECT_EQ(c.status, Status::kFail);
  EXPECT_NE(c.message.find("visudo -c -f says its syntax is wrong"), std::string::npos);
  visudo_ = std::nullopt;  // sudo not installed
  EXPECT_EQ(one(file(kRule)).status, Status::kWarn);
}

TEST_F(SudoersTest, WhatLetsAMemberForgeSudoUidFails) {
  for (const std::string& text : std::vector<std::string>{
           "%pbx-helpdesk ALL=(root) SETENV: /usr/bin/pbx-mfa\n",
           "%pbx-helpdesk ALL=(root) NOPASSWD:SETENV: /usr/bin/pbx-mfa\n",
           "Defaults setenv\n" + kRule,
           "Defaults:%pbx-helpdesk env_keep += \"SUDO_UID SUDO_USER\"\n" + kRule,
           "%pbx-helpdesk ALL=(ALL:ALL) ALL\n",
           "%pbx-helpdesk ALL=(root) NOPASSWD: ALL\n",
           "%pbx-helpdesk, %wheel ALL = (root) /usr/bin/pbx-mfa, \\\n    ALL\n",
       }) {
    Check c = one(file(text));
    EXPECT_EQ(c.status, Status::kFail) << text << " -> " << c.message;
  }
  for (const std::string& text : std::vector<std::string>{
           "Defaults !setenv\n" + kRule,
           "%pbx-helpdesk ALL=(root) NOSETENV: /usr/bin/pbx-mfa\n",
           "# %pbx-helpdesk ALL=(ALL) ALL   a comment\n" + kRule,
           "Defaults env_keep += \"LANG\"\n" + kRule,
       }) {
    Check c = one(file(text));
    EXPECT_EQ(c.status, Status::kPass) << text << " -> " << c.message;
  }
}

TEST_F(SudoersTest, PbxMfaForAGroupOutsideHelpdeskGroupsIsFullRootAndFails) {
  config_.helpdesk_groups.clear();
  Check c = one(file(kRule));
  EXPECT_EQ(c.status, Status::kFail);
  EXPECT_NE(c.message.find("helpdesk_groups does not name"), std::string::npos) << c.message;
}

TEST_F(SudoersTest, WhichFilesAreJudged) {
  // Another file mentioning pbx-mfa is judged; one about other things is not.
  auto checks = judge({file("%ops ALL=(root) /usr/bin/systemctl\n", "ops"),
                       file("%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa\n", "helpdesk"),
                       file("#1000 ALL=(root) /usr/bin/pbx-mfa\n", "uid")});
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_NE(checks[0].message.find("/etc/sudoers.d/helpdesk"), std::string::npos);
  EXPECT_EQ(checks[1].status, Status::kPass)
      << checks[1].message;  // "#1000" is a uid, not a comment
  // The snippet's name alone: commented out, it grants nothing.
  Check c = one(file("#%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa\n"));
  EXPECT_EQ(c.status, Status::kWarn);
  EXPECT_NE(c.message.find("grants pbx-mfa to nobody"), std::string::npos);
  // No file: a WARN with helpdesk_groups set, nothing without.
  auto none = judge({});
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].status, Status::kWarn);
  config_.helpdesk_groups.clear();
  EXPECT_TRUE(judge({}).empty());
}

TEST_F(SudoersTest, TheShippedExampleIsInactiveAndItsRulePasses) {
  std::ifstream in(std::string(PBX_CLI_FIXTURES) + "/../../../config/sudoers.d/pbx-helpdesk");
  ASSERT_TRUE(in) << "config/sudoers.d/pbx-helpdesk";
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(one(file(text.str())).status, Status::kWarn);
  std::string active = text.str();
  auto at = active.find("#%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa");
  ASSERT_NE(at, std::string::npos);
  active.erase(at, 1);
  Check c = one(file(active));
  EXPECT_EQ(c.status, Status::kPass) << c.message;
}

TEST(HelpdeskGroups, MissingOrFailingGroupsWarn) {
  totp::Config config;
  auto resolve = [](const std::string& name) {
    if (name == "gone") return GroupLookup{GroupLookup::Kind::kMissing, ""};
    if (name == "down") return GroupLookup{GroupLookup::Kind::kError, "Input/output error"};
    return GroupLookup{};
  };
  EXPECT_TRUE(helpdesk_group_checks(config, resolve).empty());
  config.helpdesk_groups = {"pbx-helpdesk"};
  config.protected_groups = {"admins"};
  auto c = helpdesk_group_checks(config, resolve);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, Status::kPass);
  EXPECT_EQ(c[0].name, "helpdesk-groups");
  config.helpdesk_groups = {"gone"};
  config.protected_groups = {"down"};
  c = helpdesk_group_checks(config, resolve);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, Status::kWarn);
  EXPECT_NE(c[0].message.find("helpdesk_groups names group gone, which does not exist"),
            std::string::npos)
      << c[0].message;
  EXPECT_NE(c[0].message.find("cannot look up group down"), std::string::npos);
}

}  // namespace
}  // namespace pbx::cli::doctor

// pbx-mfa status: whether a second factor is required of the user and why ("required",
// "required_by"), as text and JSON, for every reason of pbx-mfa(1) STATUS.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "enroll_fixture.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

// daemon's only group is "daemon" (Debian's base-passwd); root's is "root".
class StatusTest : public CliTest {
 protected:
  nlohmann::json status_json(const std::string& name, int expected_exit) {
    clear();
    EXPECT_EQ(run_cli({"status", "--user", name, "--json"}), expected_exit) << err();
    return nlohmann::json::parse(out());
  }
  std::string status_text(const std::string& name, int expected_exit) {
    clear();
    EXPECT_EQ(run_cli({"status", "--user", name}), expected_exit) << err();
    return out();
  }
  void enroll_daemon() {
    clear();
    ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--qr", "none"}), 0) << err();
  }
};

TEST_F(StatusTest, ByDefaultEveryoneIsRequired) {
  auto j = status_json("daemon", 3);
  EXPECT_EQ(j["enrolled"], false);
  EXPECT_EQ(j["required"], true);
  EXPECT_EQ(j["required_by"], "all");
  EXPECT_EQ(status_text("daemon", 3), "daemon: not enrolled\n  required: yes (all)\n");
}

TEST_F(StatusTest, EnrolledUserShowsTheRequirementToo) {
  PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
  enroll_daemon();
  auto j = status_json("daemon", 0);
  EXPECT_EQ(j["enrolled"], true);
  EXPECT_EQ(j["required"], true);
  EXPECT_EQ(j["required_by"], "all");
  std::string text = status_text("daemon", 0);
  EXPECT_TRUE(text.starts_with("daemon: enrolled (SHA1, 6 digits, 30 s)\n  required: yes (all)\n"))
      << text;
}

// L3: a secret line whose key was lost or mistyped is reported by line number; not a byte of
// the secret reaches root's terminal.
TEST_F(StatusTest, ACorruptSecretFileIsNotQuoted) {
  PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
  enroll_daemon();
  auto text = totp::testing::read_file(secret_file("daemon"));
  ASSERT_TRUE(text.has_value());
  // The device line: "device default CREATED SHA1 6 30 SECRET".
  std::size_t at = text->find("\ndevice ");
  ASSERT_NE(at, std::string::npos);
  std::size_t end = text->find('\n', at + 1);
  const std::string line = text->substr(at + 1, end - at - 1);
  const std::string secret = line.substr(line.rfind(' ') + 1);
  ASSERT_GE(secret.size(), 16u);
  for (const std::string& broken : {secret, "secret=" + secret}) {
    std::string changed = *text;
    changed.replace(at + 1, line.size(), broken);  // the key lost, or mistyped
    ASSERT_TRUE(totp::testing::write_file(secret_file("daemon"), changed, 0600));
    clear();
    EXPECT_NE(run_cli({"status", "--user", "daemon"}), 0);
    const std::string shown = out() + err();
    EXPECT_NE(shown.find("unknown key"), std::string::npos) << shown;
    for (std::size_t i = 0; i + 4 <= secret.size(); ++i) {
      ASSERT_EQ(shown.find(secret.substr(i, 4)), std::string::npos)
          << "status quotes the secret: " << shown;
    }
  }
}

TEST_F(StatusTest, RequiredByAGroupNamesTheGroup) {
  write_config("recovery_codes = 2\nrequire = group:root,group:daemon\n");
  auto j = status_json("daemon", 3);
  EXPECT_EQ(j["required"], true);
  EXPECT_EQ(j["required_by"], "group:daemon");
  EXPECT_NE(status_text("daemon", 3).find("\n  required: yes (group:daemon)\n"), std::string::npos);
  EXPECT_EQ(status_json("root", 3)["required_by"], "group:root");
}

TEST_F(StatusTest, OutsideTheRequiredGroupsNotRequired) {
  write_config("recovery_codes = 2\nrequire = group:root\n");
  auto j = status_json("daemon", 3);
  EXPECT_EQ(j["required"], false);
  EXPECT_EQ(j["required_by"], "not-required");
  EXPECT_NE(status_text("daemon", 3).find("\n  required: no (not-required)\n"), std::string::npos);
}

TEST_F(StatusTest, RequireNoneRequiresNobody) {
  PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
  write_config("recovery_codes = 2\nrequire = none\n");
  enroll_daemon();
  auto j = status_json("daemon", 0);
  EXPECT_EQ(j["required"], false);
  EXPECT_EQ(j["required_by"], "not-required");
}

TEST_F(StatusTest, AnExemptGroupWinsAndIsNamed) {
  PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
  write_config("recovery_codes = 2\nrequire = group:daemon\nexempt_groups = daemon\n");
  enroll_daemon();
  auto j = status_json("daemon", 0);
  EXPECT_EQ(j["required"], false);
  EXPECT_EQ(j["required_by"], "exempt-group:daemon");
  EXPECT_NE(status_text("daemon", 0).find("\n  required: no (exempt-group:daemon)\n"),
            std::string::npos);
  // Not in that group: the require setting decides.
  EXPECT_EQ(status_json("root", 3)["required_by"], "not-required");
}

TEST_F(StatusTest, NetworkExemptionsAreNotApplied) {
  // Where a login comes from is unknown to status: every address is exempt, and still the
  // user is required (pbx-mfa(1) STATUS).
  write_config("recovery_codes = 2\nexempt_networks = 0.0.0.0/0, ::/0\n");
  auto j = status_json("daemon", 3);
  EXPECT_EQ(j["required"], true);
  EXPECT_EQ(j["required_by"], "all");
}

TEST_F(StatusTest, JsonKeysOfANotEnrolledUser) {
  auto j = status_json("daemon", 3);
  for (const char* key : {"user", "enrolled", "required", "required_by", "exempt", "login_shell"}) {
    EXPECT_FALSE(j[key].is_null()) << key;
  }
  for (const char* key : {"created", "algorithm", "digits", "period", "recovery_codes_left",
                          "locked_until", "last_success", "temp_code_expires"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_null()) << key;
  }
  EXPECT_EQ(j["devices"], nlohmann::json::array());  // none, rather than null
  // A wrong temp code counts for a user who is not enrolled too.
  EXPECT_EQ(j["failures"], 0);
  EXPECT_EQ(j["exempt"], false);
  EXPECT_EQ(j["login_shell"], false);  // daemon: /usr/sbin/nologin
}

}  // namespace
}  // namespace pbx::cli::testing

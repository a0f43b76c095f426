// doctor's checks of the settings as pure functions: group names (L1), guessing limits (L6),
// in-home secrets guarding sudo/su (M3) and GSSAPI encryption in pg_conninfo (H1).
#include "doctor/config_checks.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace pbx::cli::doctor {
namespace {

totp::Config config(const std::string& text) {
  totp::Config c;
  auto st = totp::parse_config_text(c, text, "test.conf");
  EXPECT_TRUE(st.ok()) << (st ? "" : st.error().message);
  return c;
}

PamEntry entry(const std::string& module, std::vector<std::string> args, const std::string& where) {
  PamEntry e;
  e.control = "required";
  e.module = module;
  e.args = std::move(args);
  e.where = where;
  return e;
}

// A stack that runs the password module and then ours, from `file`.
std::vector<PamEntry> guarded(const std::string& file, std::vector<std::string> args = {}) {
  return {entry("pam_unix.so", {}, file + ":1"), entry(kModuleName, std::move(args), file + ":2")};
}

// The one check named `name`, or a failure.
const Check* find(const std::vector<Check>& checks, const std::string& name) {
  const Check* found = nullptr;
  for (const auto& c : checks) {
    if (c.name != name) continue;
    EXPECT_EQ(found, nullptr) << name << " reported twice";
    found = &c;
  }
  return found;
}

::testing::AssertionResult says(const std::vector<Check>& checks, const std::string& name,
                                Status status, const std::string& fragment) {
  const Check* c = find(checks, name);
  if (c == nullptr) return ::testing::AssertionFailure() << name << " is missing";
  if (c->status != status) {
    return ::testing::AssertionFailure()
           << name << " is " << status_name(c->status) << ", expected " << status_name(status)
           << ": " << c->message;
  }
  if ((c->message + ". Fix: " + c->fix).find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << name << " does not say '" << fragment << "': " << c->message << ". Fix: " << c->fix;
  }
  return ::testing::AssertionSuccess();
}

// A group database: these names exist, "pbxtest-down" fails like a directory that is down.
GroupLookup fake_groups(const std::string& name) {
  if (name == "pbxtest-down") return {GroupLookup::Kind::kError, "Connection refused"};
  if (name == "pbxtest-admins" || name == "pbxtest-ops") return {GroupLookup::Kind::kFound, ""};
  return {GroupLookup::Kind::kMissing, ""};
}

// L1: a group name in require or exempt_groups that does not resolve is a FAIL, naming it.
TEST(ConfigChecks, GroupsThatDoNotResolveFail) {
  PamScan none;
  EXPECT_TRUE(group_checks(config(""), none, fake_groups).empty()) << "require = all: no groups";
  EXPECT_TRUE(group_checks(config("require = none\n"), none, fake_groups).empty());

  auto checks = group_checks(config("require = group:pbxtest-admins, group:pbxtest-ops\n"), none,
                             fake_groups);
  EXPECT_EQ(checks.size(), 1U);
  EXPECT_TRUE(says(checks, "require-groups", Status::kPass, "pbxtest-admins, pbxtest-ops"));

  checks = group_checks(config("require = group:pbxtest-admins, group:pbxtest-admin\n"
                               "exempt_groups = pbxtest-ops, pbxtest-nosuch\n"),
                        none, fake_groups);
  EXPECT_TRUE(says(checks, "require-groups", Status::kFail,
                   "require names group pbxtest-admin (the config), which does not exist"));
  EXPECT_TRUE(says(checks, "require-groups", Status::kFail, "password alone"));
  EXPECT_TRUE(says(checks, "require-groups", Status::kFail, "getent group"));
  EXPECT_EQ(find(checks, "require-groups")->message.find("pbxtest-admins"), std::string::npos)
      << "only the names that do not resolve";
  EXPECT_TRUE(says(checks, "exempt-groups", Status::kFail,
                   "exempt_groups names group pbxtest-nosuch (the config), which does not exist"));

  // A lookup error is a FAIL too, with the error.
  checks = group_checks(config("require = group:pbxtest-down\n"), none, fake_groups);
  EXPECT_TRUE(says(checks, "require-groups", Status::kFail,
                   "cannot look up group pbxtest-down (the config): Connection refused"));
}

TEST(ConfigChecks, GroupsOfModuleArgumentsAreCheckedToo) {
  PamScan pam;
  pam.stacks["sshd"] = guarded("/etc/pam.d/sshd", {"require=group:pbxtest-missing"});
  pam.stacks["login"] = guarded("/etc/pam.d/login", {"exempt_groups=pbxtest-ops,pbxtest-gone"});
  auto checks = group_checks(config(""), pam, fake_groups);
  EXPECT_TRUE(says(checks, "require-groups", Status::kFail,
                   "pbxtest-missing (pam_pbx_totp.so argument (/etc/pam.d/sshd:2))"));
  EXPECT_TRUE(says(checks, "exempt-groups", Status::kFail,
                   "pbxtest-gone (pam_pbx_totp.so argument (/etc/pam.d/login:2))"));
}

// L6: permissive limits and a /0 exemption are warnings with the odds and the fix.
TEST(ConfigChecks, PermissiveLimitsWarn) {
  EXPECT_TRUE(limit_checks(config("")).empty()) << "the defaults";
  EXPECT_TRUE(limit_checks(config("window = 2\nmax_failures = 10\n"
                                  "exempt_networks = 10.0.0.0/8, fd00::/8, 192.0.2.7\n"))
                  .empty())
      << "the limits themselves";

  auto checks =
      limit_checks(config("window = 10\nmax_failures = 1000\n"
                          "exempt_networks = 10.0.0.0/8, 0.0.0.0/0, ::/0\n"));
  ASSERT_EQ(checks.size(), 3U);
  EXPECT_TRUE(says(checks, "window", Status::kWarn, "window = 10 accepts 21 codes at a time"));
  EXPECT_TRUE(says(checks, "window", Status::kWarn, "21 times as likely"));
  EXPECT_TRUE(says(checks, "window", Status::kWarn, "Fix: window = 1 (the default) or 2"));
  EXPECT_TRUE(says(checks, "max-failures", Status::kWarn,
                   "max_failures = 1000 lets someone who has the password try that many codes"));
  // 1000 guesses at 21 in a million each: 1 - (1 - 21e-6)^1000, about 2.1 %.
  EXPECT_TRUE(says(checks, "max-failures", Status::kWarn, "2.1 % odds"));
  EXPECT_TRUE(says(checks, "max-failures", Status::kWarn, "Fix: max_failures = 5"));
  EXPECT_TRUE(says(checks, "exempt-networks", Status::kWarn,
                   "exempt_networks has 0.0.0.0/0, ::/0, which matches every address"));
  EXPECT_TRUE(says(checks, "exempt-networks", Status::kWarn, "password alone"));
  EXPECT_TRUE(says(checks, "exempt-networks", Status::kWarn, "Fix: name only the networks"));

  checks = limit_checks(config("window = 3\n"));
  // 5 guesses at 7 in a million each.
  EXPECT_TRUE(says(checks, "window", Status::kWarn,
                   "(0.0035 % odds in the 5 guesses before the first lockout, with 6-digit"));
  checks = limit_checks(config("max_failures = 11\n"));
  EXPECT_TRUE(says(checks, "max-failures", Status::kWarn, "max_failures = 11"));
}

// M3: the module in sudo's or su's stack with the secret in the home warns.
TEST(ConfigChecks, InHomeSecretGuardingSudoOrSuWarns) {
  EXPECT_TRUE(secret_path_in_home("%h/.pbx-mfa"));
  EXPECT_TRUE(secret_path_in_home("/home/%u/.pbx-mfa"));
  EXPECT_FALSE(secret_path_in_home("/var/lib/pbx-mfa-secrets/%u"));

  PamScan pam;
  pam.stacks["sshd"] = guarded("/etc/pam.d/sshd");
  pam.stacks["sudo"] = {entry("pam_unix.so", {}, "/etc/pam.d/sudo:1")};
  EXPECT_TRUE(secret_path_checks(config(""), pam).empty()) << "neither sudo nor su guarded";

  for (const char* service : {"sudo", "sudo-i", "su", "su-l"}) {
    PamScan one;
    one.stacks[service] = guarded(std::string("/etc/pam.d/") + service);
    auto checks = secret_path_checks(config(""), one);
    EXPECT_TRUE(
        says(checks, "secret-path", Status::kWarn,
             std::string(service) + " (/etc/pam.d/" + service + ":2, secret_path = %h/.pbx-mfa)"))
        << service;
    EXPECT_TRUE(says(checks, "secret-path", Status::kWarn,
                     "a compromised session (anything running as the user) can read the secret "
                     "and pass sudo/su"));
    EXPECT_TRUE(says(checks, "secret-path", Status::kWarn, "use a root-owned secret_path"));
  }

  // Through an include (Debian's su-l includes su, which includes common-auth).
  pam.stacks["su-l"] = {entry("pam_unix.so", {}, "/etc/pam.d/common-auth:1"),
                        entry(kModuleName, {}, "/etc/pam.d/common-auth:2")};
  EXPECT_TRUE(says(secret_path_checks(config(""), pam), "secret-path", Status::kWarn,
                   "su-l (/etc/pam.d/common-auth:2"));

  // Root-owned secrets: a PASS; a module argument decides for its line.
  EXPECT_TRUE(says(secret_path_checks(config("secret_path = /var/lib/pbx-mfa-secrets/%u\n"), pam),
                   "secret-path", Status::kPass, "su-l"));
  PamScan arg;
  arg.stacks["sudo"] = guarded("/etc/pam.d/sudo", {"secret_path=/etc/pbx-mfa/%u"});
  EXPECT_TRUE(says(secret_path_checks(config(""), arg), "secret-path", Status::kPass,
                   "sudo (/etc/pam.d/sudo:2, secret_path = /etc/pbx-mfa/%u)"));
  arg.stacks["sudo"] = guarded("/etc/pam.d/sudo", {"secret_path=%h/.config/pbx-mfa"});
  EXPECT_TRUE(says(secret_path_checks(config("secret_path = /etc/pbx-mfa/%u\n"), arg),
                   "secret-path", Status::kWarn, "secret_path = %h/.config/pbx-mfa"));
}

// H1: a TCP conninfo that would negotiate GSSAPI encryption fails.
TEST(ConfigChecks, GssapiEncryptionOverTcpFails) {
  // Named and not disable, over TCP.
  for (const char* conninfo :
       {"host=db1.example gssencmode=prefer", "host=db1 gssencmode=require sslmode=require",
        "host=/run/postgresql,db2 gssencmode=prefer", "hostaddr=192.0.2.7 gssencmode=prefer",
        "postgresql://pbx@db1.example/pbx?gssencmode=prefer",
        "postgresql://[2001:db8::1]:5432/pbx?gssencmode=prefer"}) {
    auto checks = gssenc_checks(conninfo);
    EXPECT_TRUE(says(checks, "db-gssenc", Status::kFail, "Kerberos credential cache")) << conninfo;
    EXPECT_TRUE(says(checks, "db-gssenc", Status::kFail, "Fix: write gssencmode=disable"))
        << conninfo;
  }
  EXPECT_TRUE(says(gssenc_checks("host=/run/postgresql,db2 gssencmode=prefer"), "db-gssenc",
                   Status::kFail, "over TCP (db2)"));
  // With verify-*: GSSAPI encryption would replace the verified TLS.
  EXPECT_TRUE(says(gssenc_checks("host=db1 sslmode=verify-full gssencmode=prefer"), "db-gssenc",
                   Status::kFail, "whatever sslmode=verify-full says"));
  EXPECT_TRUE(says(gssenc_checks("postgresql://db1/x?sslmode=verify-ca&gssencmode=require"),
                   "db-gssenc", Status::kFail, "whatever sslmode=verify-ca says"));

  // Fine: disable, left out (the plugin passes disable), or a Unix socket only.
  EXPECT_TRUE(says(gssenc_checks("host=db1 sslmode=verify-full gssencmode=disable"), "db-gssenc",
                   Status::kPass, "with gssencmode=disable"));
  EXPECT_TRUE(says(gssenc_checks("host=db1 sslmode=verify-full"), "db-gssenc", Status::kPass,
                   "the plugin passes gssencmode=disable"));
  EXPECT_TRUE(says(gssenc_checks("postgresql://db1/x?gssencmode="), "db-gssenc", Status::kPass,
                   "gssencmode not named"));
  for (const char* conninfo :
       {"host=/run/postgresql gssencmode=prefer", "dbname=pbx gssencmode=require",
        "postgresql:///pbx?host=%2Frun%2Fpostgresql&gssencmode=prefer"}) {
    EXPECT_TRUE(says(gssenc_checks(conninfo), "db-gssenc", Status::kPass, "Unix socket only"))
        << conninfo;
  }
  // Not parsable: db-connect reports it (with the plugin's words), not this check.
  EXPECT_TRUE(gssenc_checks("host=db1 gssencmode='prefer").empty());
  // The password never appears.
  auto checks = gssenc_checks("host=db1 password=hunter2 gssencmode=prefer");
  EXPECT_EQ(find(checks, "db-gssenc")->message.find("hunter2"), std::string::npos);
}

}  // namespace
}  // namespace pbx::cli::doctor

// requirement(): who must use a second factor and why, for every branch of the require,
// exempt_groups and exempt_networks keys, built through the config parser as a sysadmin writes
// them.
#include "pbx/totp/requirement.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pbx::totp {
namespace {

using Groups = std::vector<std::string>;

Config config_of(std::string_view text) {
  Config c;
  auto st = parse_config_text(c, text, "test.conf");
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  return c;
}

void expect(const Requirement& r, RequirementKind kind, std::string_view reason) {
  EXPECT_EQ(r.kind, kind);
  EXPECT_EQ(r.reason, reason);
  EXPECT_EQ(r.required(), kind == RequirementKind::kRequired);
}

TEST(RequirementTest, DefaultRequiresEveryone) {
  const Config c;
  expect(requirement(c, {}, std::nullopt), RequirementKind::kRequired, "all");
  expect(requirement(c, {"users"}, "192.0.2.7"), RequirementKind::kRequired, "all");
}

TEST(RequirementTest, RequireAllSaysAll) {
  auto c = config_of("require = all\n");
  expect(requirement(c, {"wheel"}, std::nullopt), RequirementKind::kRequired, "all");
}

TEST(RequirementTest, RequireNoneRequiresNobody) {
  auto c = config_of("require = none\n");
  expect(requirement(c, {"wheel"}, std::nullopt), RequirementKind::kNotRequired, "not-required");
  expect(requirement(c, {}, ""), RequirementKind::kNotRequired, "not-required");
}

TEST(RequirementTest, RequireGroupNamesTheFirstListedGroupTheUserIsIn) {
  auto c = config_of("require = group:admins,group:voip\n");
  expect(requirement(c, {"users", "voip"}, std::nullopt), RequirementKind::kRequired, "group:voip");
  // Config order decides, not the order of the user's groups.
  expect(requirement(c, {"voip", "admins"}, std::nullopt), RequirementKind::kRequired,
         "group:admins");
}

TEST(RequirementTest, RequireGroupLeavesOthersNotRequired) {
  auto c = config_of("require = group:admins\n");
  expect(requirement(c, {"users", "admin"}, std::nullopt), RequirementKind::kNotRequired,
         "not-required");
  expect(requirement(c, {}, std::nullopt), RequirementKind::kNotRequired, "not-required");
}

TEST(RequirementTest, ExemptGroupWinsOverRequireAll) {
  auto c = config_of("exempt_groups = robots,ops\n");
  expect(requirement(c, {"users", "ops"}, std::nullopt), RequirementKind::kExempt,
         "exempt-group:ops");
  expect(requirement(c, {"ops", "robots"}, std::nullopt), RequirementKind::kExempt,
         "exempt-group:robots");
  expect(requirement(c, {"users"}, std::nullopt), RequirementKind::kRequired, "all");
}

TEST(RequirementTest, ExemptGroupWinsOverARequireGroup) {
  auto c = config_of("require = group:voip\nexempt_groups = ops\n");
  expect(requirement(c, {"voip", "ops"}, std::nullopt), RequirementKind::kExempt,
         "exempt-group:ops");
  expect(requirement(c, {"voip"}, std::nullopt), RequirementKind::kRequired, "group:voip");
}

TEST(RequirementTest, ExemptGroupAlsoExemptsWhereNothingIsRequired) {
  auto c = config_of("require = none\nexempt_groups = ops\n");
  expect(requirement(c, {"ops"}, std::nullopt), RequirementKind::kExempt, "exempt-group:ops");
}

TEST(RequirementTest, ExemptNetworkWinsOverEverything) {
  auto c = config_of(
      "require = group:voip\nexempt_groups = ops\n"
      "exempt_networks = 192.0.2.0/24, 2001:db8::/32\n");
  for (std::string_view host : {"192.0.2.7", "2001:db8::1", "::ffff:192.0.2.9"}) {
    SCOPED_TRACE(host);
    expect(requirement(c, {"voip", "ops"}, host), RequirementKind::kExempt, "exempt-network");
  }
}

TEST(RequirementTest, AnAddressOutsideTheExemptNetworksIsDecidedByGroups) {
  auto c = config_of("exempt_networks = 192.0.2.0/24\n");
  expect(requirement(c, {}, "198.51.100.1"), RequirementKind::kRequired, "all");
  expect(requirement(c, {}, "2001:db8::1"), RequirementKind::kRequired, "all");
}

TEST(RequirementTest, NoRemoteHostOrAHostNameIsInNoNetwork) {
  auto c = config_of("exempt_networks = 0.0.0.0/0, ::/0\n");
  expect(requirement(c, {}, ""), RequirementKind::kRequired, "all");
  expect(requirement(c, {}, "gateway.example.org"), RequirementKind::kRequired, "all");
  EXPECT_FALSE(in_exempt_network(c, ""));
  EXPECT_FALSE(in_exempt_network(c, "gateway.example.org"));
  EXPECT_TRUE(in_exempt_network(c, "203.0.113.5"));
}

TEST(RequirementTest, AnUnknownRemoteHostAppliesNoNetworkExemption) {
  // `pbx-mfa status` does not know where a login will come from.
  auto c = config_of("exempt_networks = 0.0.0.0/0, ::/0\n");
  expect(requirement(c, {}, std::nullopt), RequirementKind::kRequired, "all");
}

TEST(RequirementTest, InExemptNetworkWithoutNetworksIsFalse) {
  const Config c;
  EXPECT_FALSE(in_exempt_network(c, "192.0.2.7"));
}

TEST(RequirementTest, GroupsAreNeededOnlyWhenAGroupKeyIsSet) {
  EXPECT_FALSE(requirement_needs_groups(Config{}));
  EXPECT_FALSE(requirement_needs_groups(config_of("require = none\n")));
  EXPECT_FALSE(requirement_needs_groups(config_of("exempt_networks = 192.0.2.0/24\n")));
  EXPECT_TRUE(requirement_needs_groups(config_of("require = group:voip\n")));
  EXPECT_TRUE(requirement_needs_groups(config_of("exempt_groups = ops\n")));
}

TEST(RequirementTest, GroupNamesMatchExactly) {
  auto c = config_of("require = group:voip\nexempt_groups = ops\n");
  expect(requirement(c, {"Ops", "opsx", "voip2", "VOIP"}, std::nullopt),
         RequirementKind::kNotRequired, "not-required");
}

TEST(RequirementTest, ALaterRequireKeyReplacesAnEarlierOne) {
  // As the module's nullok argument does after the file: require = none.
  auto c = config_of("require = group:voip\nrequire = none\n");
  expect(requirement(c, {"voip"}, std::nullopt), RequirementKind::kNotRequired, "not-required");
  c = config_of("require = none\nrequire = all\n");
  expect(requirement(c, {}, std::nullopt), RequirementKind::kRequired, "all");
}

// ---------------------------------------------------------------------------------------------
// requirement_for(): membership resolved by group name, and a group database that cannot answer.

namespace fake {

// An account no real group lists: getgrouplist() finds nothing for it, so only the fake
// directory below decides.
User account() {
  User u;
  u.name = "pbxtest-nobody";
  u.uid = 4000001;
  u.gid = 4000001;
  return u;
}

// pbxtest-admins lists the account; pbxtest-primary is its primary group; pbxtest-others lists
// someone else; pbxtest-down* cannot be looked up; anything else does not exist.
Result<std::optional<Group>> directory(std::string_view name) {
  if (name.rfind("pbxtest-down", 0) == 0) {
    return make_error(Errc::kIo, "cannot look up group '" + std::string(name) + "'");
  }
  if (name == "pbxtest-admins") return std::optional<Group>{Group{4100, {"x", "pbxtest-nobody"}}};
  if (name == "pbxtest-primary") return std::optional<Group>{Group{4000001, {}}};
  if (name == "pbxtest-others") return std::optional<Group>{Group{4200, {"pbxtest-else"}}};
  return std::optional<Group>{};
}

}  // namespace fake

Requirement decided(const Config& c, std::optional<std::string_view> rhost = std::nullopt) {
  auto r = requirement_for(c, fake::account(), rhost, fake::directory);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : Requirement{RequirementKind::kExempt, "<error>"};
}

TEST(RequirementTest, GroupLookupErrorFailsClosed) {
  // The account might be in the group: not knowing is an error, never "not required".
  auto r = requirement_for(config_of("require = group:pbxtest-down\n"), fake::account(),
                           std::nullopt, fake::directory);
  ASSERT_FALSE(r.ok()) << r->reason;
  EXPECT_EQ(r.error().code, Errc::kIo);
  EXPECT_EQ(r.error().message, "cannot look up group 'pbxtest-down'");
  // Also when a group that does resolve does not hold the account.
  EXPECT_FALSE(requirement_for(config_of("require = group:pbxtest-others,group:pbxtest-down\n"),
                               fake::account(), std::nullopt, fake::directory)
                   .ok());
  // A group the account is certainly in decides, before or after the one that failed.
  expect(decided(config_of("require = group:pbxtest-down,group:pbxtest-admins\n")),
         RequirementKind::kRequired, "group:pbxtest-admins");
  expect(decided(config_of("require = group:pbxtest-admins,group:pbxtest-down\n")),
         RequirementKind::kRequired, "group:pbxtest-admins");
  // require = all needs no group, and an exempt network is decided before any group.
  expect(decided(config_of("require = all\nexempt_groups = pbxtest-down\n")),
         RequirementKind::kRequired, "all");
  expect(decided(config_of("require = group:pbxtest-down\nexempt_networks = 192.0.2.0/24\n"),
                 "192.0.2.7"),
         RequirementKind::kExempt, "exempt-network");
}

TEST(RequirementTest, ExemptGroupLookupErrorExemptsNobody) {
  expect(decided(config_of("exempt_groups = pbxtest-down\n")), RequirementKind::kRequired, "all");
  expect(decided(config_of("exempt_groups = pbxtest-down\nrequire = none\n")),
         RequirementKind::kNotRequired, "not-required");
  // A later exempt group the account is in still exempts it.
  expect(decided(config_of("exempt_groups = pbxtest-down, pbxtest-admins\n")),
         RequirementKind::kExempt, "exempt-group:pbxtest-admins");
}

TEST(RequirementTest, GroupMembershipIsTheMemberListOrThePrimaryGroup) {
  expect(decided(config_of("require = group:pbxtest-admins\n")), RequirementKind::kRequired,
         "group:pbxtest-admins");
  expect(decided(config_of("require = group:pbxtest-primary\n")), RequirementKind::kRequired,
         "group:pbxtest-primary");
  expect(decided(config_of("require = group:pbxtest-others\n")), RequirementKind::kNotRequired,
         "not-required");
  // A group that does not exist has no members (doctor reports the name).
  expect(decided(config_of("require = group:pbxtest-no-such-group\n")),
         RequirementKind::kNotRequired, "not-required");
  expect(decided(config_of("exempt_groups = pbxtest-primary\n")), RequirementKind::kExempt,
         "exempt-group:pbxtest-primary");
}

TEST(RequirementTest, RealGroupLookupResolvesAndMissesCleanly) {
  // The primary group of root, by name, through getgrnam_r.
  auto root = lookup_group("root");
  ASSERT_TRUE(root.ok()) << root.error().message;
  ASSERT_TRUE(root->has_value());
  EXPECT_EQ((*root)->gid, 0u);
  auto none = lookup_group("pbxtest-no-such-group");
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->has_value());
}

}  // namespace
}  // namespace pbx::totp

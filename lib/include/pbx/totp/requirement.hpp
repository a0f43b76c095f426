// Requirement: who must use a second factor and why — the policy the module and `pbx-mfa status`
// share (the require, exempt_groups and exempt_networks keys of pbx-mfa.conf(5)).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::totp {

enum class RequirementKind {
  kExempt,       // skips the second factor, enrolled or not
  kNotRequired,  // asked for a code only once enrolled; passes through the module until then
  kRequired,     // a login without an enrollment is refused (or enrolls, enroll_at_login)
};

struct Requirement {
  RequirementKind kind = RequirementKind::kRequired;
  // Why, as a stable token that `pbx-mfa status` prints (pbx-mfa(1) STATUS): "all",
  // "group:NAME", "marked" (pbx-mfa require), "exempt-group:NAME", "exempt-network" or
  // "not-required".
  std::string reason;

  bool required() const noexcept { return kind == RequirementKind::kRequired; }
};

// Is `rhost` an address inside one of the exempt networks? A login without a remote host (the
// console) or with a host name instead of an address is in none. It needs no account, so the
// module asks it before looking the user up.
bool in_exempt_network(const Config& config, std::string_view rhost);

// Does the answer depend on the user's groups? Looking them up costs name-service calls, so the
// front ends do it only then.
bool requirement_needs_groups(const Config& config);

// Decides, first match wins: an exempt network (only when `rhost` is given: nullopt means where
// the login comes from is unknown, as for `pbx-mfa status`, and no network exemption applies),
// the first of exempt_groups the user is in, the per-user mark (`marked`: pbx-mfa require),
// require = all, the first of the require groups the user is in, else not required. `groups`:
// the names of the user's groups, primary and supplementary (totp::user_groups).
Requirement requirement(const Config& config, const std::vector<std::string>& groups,
                        std::optional<std::string_view> rhost, bool marked = false);

// How a group name resolves (totp::lookup_group; tests pass a fake that fails).
using GroupLookup = Result<std::optional<Group>> (*)(std::string_view name);

// requirement() for an account, the way the module and `pbx-mfa status` ask it. The user is in
// a configured group when getgrouplist() says so (user_groups), or the group, resolved by name
// through `lookup`, is the user's primary group or lists the user. Fails closed when the group
// database cannot answer: an exempt group whose lookup fails exempts nobody, and a require group
// whose lookup fails makes the answer an error (never "not required") unless an earlier rule or
// another require group already decided.
Result<Requirement> requirement_for(const Config& config, const User& user,
                                    std::optional<std::string_view> rhost,
                                    GroupLookup lookup = lookup_group, bool marked = false);

}  // namespace pbx::totp

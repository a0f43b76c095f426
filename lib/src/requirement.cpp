#include "pbx/totp/requirement.hpp"

#include <algorithm>
#include <utility>

namespace pbx::totp {
namespace {

bool holds(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The decision of requirement(), with group membership asked of `member(name)`, which answers
// true, false or an error (the group database could not say).
template <class Member>
Result<Requirement> decide(const Config& config, std::optional<std::string_view> rhost, bool marked,
                           Member member) {
  if (rhost && in_exempt_network(config, *rhost)) {
    return Requirement{RequirementKind::kExempt, "exempt-network"};
  }
  for (const auto& g : config.exempt_groups) {
    // An exemption is only ever granted on a positive answer: a failed lookup exempts nobody.
    auto in = member(g);
    if (in && *in) return Requirement{RequirementKind::kExempt, "exempt-group:" + g};
  }
  if (marked) return Requirement{RequirementKind::kRequired, "marked"};
  if (config.require_all) return Requirement{RequirementKind::kRequired, "all"};
  std::optional<Error> failed;
  for (const auto& g : config.require_groups) {
    auto in = member(g);
    if (!in) {
      if (!failed) failed = in.error();
      continue;  // a later group the user is certainly in still requires the code
    }
    if (*in) return Requirement{RequirementKind::kRequired, "group:" + g};
  }
  // The user may be in a group that could not be looked up: not knowing is not "not required".
  if (failed) return *failed;
  return Requirement{RequirementKind::kNotRequired, "not-required"};
}

}  // namespace

bool in_exempt_network(const Config& config, std::string_view rhost) {
  if (rhost.empty()) return false;
  return std::any_of(config.exempt_networks.begin(), config.exempt_networks.end(),
                     [&](const Cidr& net) { return cidr_contains(net, rhost); });
}

bool requirement_needs_groups(const Config& config) {
  return !config.exempt_groups.empty() || !config.require_groups.empty();
}

Requirement requirement(const Config& config, const std::vector<std::string>& groups,
                        std::optional<std::string_view> rhost, bool marked) {
  auto r = decide(config, rhost, marked,
                  [&](const std::string& g) -> Result<bool> { return holds(groups, g); });
  return std::move(r.value());  // name lists never fail
}

Result<Requirement> requirement_for(const Config& config, const User& user,
                                    std::optional<std::string_view> rhost, GroupLookup lookup,
                                    bool marked) {
  std::vector<std::string> listed;
  if (requirement_needs_groups(config)) listed = user_groups(user);
  return decide(config, rhost, marked, [&](const std::string& g) -> Result<bool> {
    if (holds(listed, g)) return true;
    auto found = lookup(g);
    if (!found) return found.error();
    if (!*found) return false;  // no such group: nobody is in it
    const Group& group = **found;
    return group.gid == user.gid || holds(group.members, user.name);
  });
}

}  // namespace pbx::totp

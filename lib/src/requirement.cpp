#include "pbx/totp/requirement.hpp"

#include <algorithm>

namespace pbx::totp {
namespace {

// The first of `wanted`, in the config's order, that `groups` holds.
const std::string* first_member(const std::vector<std::string>& wanted,
                                const std::vector<std::string>& groups) {
  for (const auto& g : wanted) {
    if (std::find(groups.begin(), groups.end(), g) != groups.end()) return &g;
  }
  return nullptr;
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
                        std::optional<std::string_view> rhost) {
  if (rhost && in_exempt_network(config, *rhost)) {
    return {RequirementKind::kExempt, "exempt-network"};
  }
  if (const std::string* g = first_member(config.exempt_groups, groups)) {
    return {RequirementKind::kExempt, "exempt-group:" + *g};
  }
  if (config.require_all) return {RequirementKind::kRequired, "all"};
  if (const std::string* g = first_member(config.require_groups, groups)) {
    return {RequirementKind::kRequired, "group:" + *g};
  }
  return {RequirementKind::kNotRequired, "not-required"};
}

}  // namespace pbx::totp

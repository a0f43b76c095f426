// doctor's checks of alerts: notify_command (as events --notify checks it before running it) and
// whether the pbx-mfa-notify service that runs it is enabled.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "checks.hpp"
#include "pbx/totp/config.hpp"

namespace pbx::cli::doctor {

inline constexpr const char* kNotifyUnit = "pbx-mfa-notify.service";
// What `systemctl enable` creates for the unit's WantedBy=multi-user.target.
inline constexpr const char* kNotifyUnitLink =
    "/etc/systemd/system/multi-user.target.wants/pbx-mfa-notify.service";

// Whether the unit is enabled, and how doctor found out ("LINK exists", "systemctl is-enabled:
// disabled"). `enabled` is nullopt when neither the link nor systemctl could tell.
struct UnitState {
  std::optional<bool> enabled;
  std::string how;
};

using ProgramRunner = std::function<std::optional<ProgramResult>(const std::vector<std::string>&)>;

// The link `wants_link` (lstat: present means enabled), else `systemctl is-enabled` through
// `run_program` (absent, or no answer: the link alone decides).
UnitState notify_unit_state(
    const std::string& wants_link,
    const std::function<std::optional<ProgramResult>(const std::vector<std::string>&)>&
        run_program);

// "notify-command": PASS "no alerts configured" when unset; else PASS or FAIL (with the fix)
// for check_notify_command (notify.hpp). "notify-unit", when notify_command is set: PASS when
// the unit is enabled, WARN when not (no alert is sent); when it is not set, only a WARN for an
// enabled unit (the service exits at every start).
std::vector<Check> notify_checks(const totp::Config& config, const std::string& config_path,
                                 const UnitState& unit);

}  // namespace pbx::cli::doctor

// doctor: notify_command and the pbx-mfa-notify service (notify_checks.hpp).
#include "notify_checks.hpp"

#include <sys/stat.h>

#include "notify.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::cli::doctor {

UnitState notify_unit_state(
    const std::string& wants_link,
    const std::function<std::optional<ProgramResult>(const std::vector<std::string>&)>&
        run_program) {
  struct stat st {};
  if (::lstat(wants_link.c_str(), &st) == 0) return {true, wants_link + " exists"};
  if (run_program) {
    auto r = run_program({"/usr/bin/systemctl", "is-enabled", kNotifyUnit});
    if (r) {
      std::string state(totp::trim(r->out.substr(0, r->out.find('\n'))));
      if (state == "enabled" || state == "enabled-runtime") {
        return {true, "systemctl is-enabled: " + state};
      }
      if (!state.empty() && state.size() < 64) {
        return {false, "systemctl is-enabled: " + state};
      }
    }
  }
  return {false, wants_link + " does not exist"};
}

std::vector<Check> notify_checks(const totp::Config& config, const std::string& config_path,
                                 const UnitState& unit) {
  std::vector<Check> checks;
  const bool set = !config.notify_command.empty();
  const bool enabled = unit.enabled.value_or(false);
  if (!set) {
    // One line on the usual host without alerts; the unit only when it is enabled for nothing.
    checks.push_back({"notify-command", Status::kPass,
                      "notify_command is not set: no alerts configured (pbx-mfa events still "
                      "shows the event log)",
                      ""});
    if (enabled) {
      checks.push_back({"notify-unit", Status::kWarn,
                        std::string(kNotifyUnit) + " is enabled (" + unit.how +
                            ") but notify_command is not set in " + config_path +
                            ": the service exits at every start and is restarted",
                        "set notify_command (pbx-mfa.conf(5)), or systemctl disable --now " +
                            std::string(kNotifyUnit)});
    }
    return checks;
  }
  const std::string& path = config.notify_command;
  if (auto ok = check_notify_command(path, config.trusted_uid); !ok) {
    checks.push_back({"notify-command", Status::kFail,
                      ok.error().message + "; pbx-mfa events --notify refuses to start and no "
                                           "alert is sent",
                      "make it a root-owned executable not writable by group or others, in "
                      "directories only root can write (chown root:root " +
                          path + " && chmod 0755 " + path + "), or correct notify_command in " +
                          config_path});
  } else {
    std::string kinds;
    for (const auto& k : config.notify_events) kinds += (kinds.empty() ? "" : ",") + k;
    checks.push_back({"notify-command", Status::kPass,
                      "notify_command " + path +
                          " is a root-owned executable, not writable by group or others, in "
                          "root's directories; it runs for notify_events " +
                          kinds,
                      ""});
  }
  if (enabled) {
    checks.push_back({"notify-unit", Status::kPass,
                      std::string(kNotifyUnit) + " is enabled (" + unit.how + ")", ""});
  } else {
    checks.push_back({"notify-unit", Status::kWarn,
                      "notify_command is set but " + std::string(kNotifyUnit) +
                          " is not enabled (" + unit.how + "): no alert is sent",
                      "systemctl enable --now " + std::string(kNotifyUnit)});
  }
  return checks;
}

std::vector<Check> check_notify(const Facts& f) {
  if (f.session.config_error) return {};
  // Without notify_command the link alone tells (systemctl is asked only when alerts are set).
  const bool set = !f.session.config.notify_command.empty();
  return notify_checks(f.session.config, f.session.config_path,
                       notify_unit_state(f.options.notify_unit_link,
                                         set ? f.session.env.run_program : ProgramRunner{}));
}

}  // namespace pbx::cli::doctor

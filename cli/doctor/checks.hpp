// doctor's checks: each one looks at the gathered facts and returns its PASS/WARN/FAIL lines.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "file_reader.hpp"
#include "pam_stack.hpp"
#include "pbx/totp/db_admin.hpp"
#include "session.hpp"
#include "sshd_config.hpp"

namespace pbx::cli::doctor {

inline constexpr const char* kModuleName = "pam_pbx_totp.so";

enum class Status { kPass, kWarn, kFail };
const char* status_name(Status s);

struct Check {
  std::string name;
  Status status = Status::kPass;
  std::string message;
  std::string fix;  // empty for PASS
};

struct DoctorOptions {
  std::string pam_dir = "/etc/pam.d";
  std::string sshd_config = "/etc/ssh/sshd_config";
  std::string module;
  bool json = false;
  bool sshd_config_given = false;
  std::string sudoers_dir = "/etc/sudoers.d";  // no option: the tests call sudoers_checks()
  // What `systemctl enable pbx-mfa-notify.service` creates (notify_checks.hpp); no option.
  std::string notify_unit_link =
      "/etc/systemd/system/multi-user.target.wants/pbx-mfa-notify.service";
};

// The services of the PAM directory and their auth stacks.
struct PamScan {
  std::optional<std::string> dir_error;                 // the directory cannot be listed (strerror)
  std::map<std::string, std::vector<PamEntry>> stacks;  // the modules of each flow
  std::map<std::string, std::vector<PamEntry>> flows;   // PamStackReader::auth_flow()
  std::set<std::string> included;                       // include files, not services
  std::vector<std::string> problems;
};

// The sshd configuration, or why it could not be read.
struct SshdScan {
  std::optional<SshdConfig> config;
  std::string error;
};

// What the checks look at, read once. The database is probed when the first check asks.
class Facts {
 public:
  Facts(const Session& s, const DoctorOptions& o, const FileReader& files);

  const Session& session;
  const DoctorOptions& options;
  PamScan pam;
  SshdScan sshd;

  // Whether the database checks apply: store = postgresql and a config that loads.
  bool uses_database() const;
  const totp::Result<totp::DbReport>& db_report() const;

 private:
  mutable std::optional<totp::Result<totp::DbReport>> db_report_;
};

using CheckFn = std::vector<Check> (*)(const Facts&);

// checks.cpp: config, state_dir, module, clock.
std::vector<Check> check_config(const Facts& f);
std::vector<Check> check_state_dir(const Facts& f);
std::vector<Check> check_module(const Facts& f);
std::vector<Check> check_clock(const Facts& f);

// config_checks.cpp: group names, guessing limits, where the secrets of sudo and su live.
std::vector<Check> check_groups(const Facts& f);
std::vector<Check> check_limits(const Facts& f);
std::vector<Check> check_secret_path(const Facts& f);

// sudo_checks.cpp: the sudoers files that hand pbx-mfa to the helpdesk, and its groups.
std::vector<Check> check_sudoers(const Facts& f);
std::vector<Check> check_helpdesk_groups(const Facts& f);

// notify_checks.cpp: notify_command and whether the pbx-mfa-notify service is enabled.
std::vector<Check> check_notify(const Facts& f);

// db_checks.cpp, with store = postgresql (none otherwise).
std::vector<Check> check_db_password(const Facts& f);
std::vector<Check> check_db_gssenc(const Facts& f);  // from pg_conninfo, before connecting
std::vector<Check> check_fleet_key(const Facts& f);
std::vector<Check> check_db_connect(const Facts& f);
std::vector<Check> check_db_tls(const Facts& f);
std::vector<Check> check_db_schema(const Facts& f);  // and whether the fleet key fits
// WARN when pg_conninfo lists several hosts and the connected server acknowledges commits
// without a synchronous standby (a failover may lose the last logins); nothing for one host.
std::vector<Check> check_db_replication(const Facts& f);
std::vector<Check> replication_checks(const std::string& conninfo, const totp::DbReport& r);
// Rows under fleet_key_previous or under neither key (a fleet-key rotation).
std::vector<Check> check_db_key_rotation(const Facts& f);
std::vector<Check> check_break_glass(const Facts& f);

// pam_checks.cpp.
PamScan scan_pam_dir(const std::string& dir, const FileReader& files);
std::vector<Check> check_pam_stacks(const Facts& f);    // which services use the module
std::vector<Check> check_pam_services(const Facts& f);  // the module's place in each of them
std::vector<Check> check_pam_sshd(const Facts& f);      // sshd's service without the module
// Every file of the PAM directory whose auth stack (includes and substacks followed) names the
// module, by name or by path; each is judged as a service, also when another one includes it.
std::vector<std::string> services_with_module(const PamScan& scan);
// The check of one service's auth flow (PamStackReader::auth_flow(), walked by pam_walk.hpp):
// FAIL when a correct password logs in without the module or a failed code still logs in,
// WARN for forward_pass and when the module runs before a password succeeded (lockout).
// enroll_at_login (pbx-mfa.conf(5)); WARN for yes on sshd (with-code is the safe one there).
enum class EnrollMode { kNo, kYes, kWithCode };
Check judge_pam_service(const std::string& service, const std::vector<PamEntry>& flow,
                        EnrollMode enroll_default);
// The absolute paths the stacks name the module by ("/usr/lib/security/pam_pbx_totp.so").
std::vector<std::string> module_paths_in_stacks(const PamScan& scan);

// sshd_checks.cpp; only the first when the configuration cannot be read.
std::vector<Check> check_sshd_config(const Facts& f);
std::vector<Check> check_sshd_usepam(const Facts& f);
std::vector<Check> check_sshd_kbdinteractive(const Facts& f);
std::vector<Check> check_sshd_authmethods(const Facts& f);
std::vector<Check> check_sshd_password(const Facts& f);
std::vector<Check> check_sshd_match(const Facts& f);

// A file mode as doctor prints it ("0640").
std::string octal(mode_t mode);
// Names as doctor lists them: "a, b, c".
std::string join(const std::vector<std::string>& items, const char* sep = ", ");

// Every check in the order doctor prints them.
// clang-format off
inline constexpr CheckFn kChecks[] = {check_config,
                                      check_state_dir,
                                      check_groups,
                                      check_limits,
                                      check_secret_path,
                                      check_helpdesk_groups,
                                      check_sudoers,
                                      check_notify,
                                      check_db_password,
                                      check_db_gssenc,
                                      check_fleet_key,
                                      check_db_connect,
                                      check_db_tls,
                                      check_db_schema,
                                      check_db_replication,
                                      check_db_key_rotation,
                                      check_break_glass,
                                      check_module,
                                      check_pam_stacks,
                                      check_pam_services,
                                      check_pam_sshd,
                                      check_sshd_config,
                                      check_sshd_usepam,
                                      check_sshd_kbdinteractive,
                                      check_sshd_authmethods,
                                      check_sshd_password,
                                      check_sshd_match,
                                      check_clock};
// clang-format on

}  // namespace pbx::cli::doctor

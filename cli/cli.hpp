// pbx::cli — the pbx-mfa command line: run() parses and dispatches; main() only wires real I/O.
#pragma once

#include <sys/types.h>

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::cli {

// Exit status, as pbx-mfa(1) EXIT STATUS documents it.
enum Exit : int {
  kExitOk = 0,
  kExitRejected = 1,  // code rejected, or a doctor check failed
  kExitUsage = 2,     // usage or config error
  kExitNotEnrolled = 3,
  kExitStore = 4,  // store or permission error
  kExitLocked = 5,
  kExitInternal = 70,
};

// What a helper program printed (doctor asks timedatectl or chronyc about the clock).
struct ProgramResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;     // standard output, capped
};

// Everything run() touches outside the process, so tests can drive it in-process.
struct Env {
  std::istream* in = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  bool out_is_tty = false;
  uid_t uid = 0;   // real uid of the caller
  uid_t euid = 0;  // refuses to run set-uid when uid != euid
  // getauxval(AT_SECURE): the kernel ran this process with privileges its caller does not
  // have (set-uid, set-gid, file capabilities, an LSM transition). Refused like set-uid.
  bool secure_exec = false;
  std::string invoking_user;  // name of the caller (from uid)
  // sudo's SUDO_UID and SUDO_USER: whom root runs for when started through sudo(8). They only
  // ever restrict (helpdesk.hpp, pbx-mfa(1) HELPDESK): root without them, or through sudo for
  // someone outside helpdesk_groups, is full root.
  std::optional<uid_t> sudo_uid;
  bool sudo_uid_invalid = false;  // SUDO_UID set but not a user id (parse_sudo_uid)
  std::string sudo_user;
  // The configuration used without --config, and the only one a helpdesk member gets.
  std::string system_config_path = totp::kDefaultConfigPath;
  const totp::Clock* clock = nullptr;
  uid_t trusted_uid = 0;  // owner of a safe config file and state_dir
  // Reads a line without echo (a code or a password); nullopt on end of input.
  std::function<std::optional<totp::SecretString>(std::string_view prompt)> read_secret;
  // Checks a user's password through the PAM service "pbx-mfa".
  std::function<bool(const std::string& user, const totp::SecretString& password)> check_password;
  std::string host_name;  // default issuer
  // Runs argv (argv[0] an absolute path, no shell, stdin empty, a few seconds at most);
  // nullopt when it is missing, cannot start or takes too long. Unset: nothing is run.
  std::function<std::optional<ProgramResult>(const std::vector<std::string>& argv)> run_program;
  // One authpriv syslog line for an administrative act (enroll, reset, unlock, ...); never a
  // secret or a code. Unset: nothing is logged.
  std::function<void(std::string_view line)> audit;
};

int run(const std::vector<std::string>& args, Env& env);

// The real process environment: std::cin/cout/cerr, the terminal, getuid, libpam.
Env process_env();

}  // namespace pbx::cli

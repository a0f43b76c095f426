// doctor's checks of the delegated helpdesk: the sudoers files that hand pbx-mfa to it, and the
// groups helpdesk_groups and protected_groups name (pbx-mfa(1) HELPDESK).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "checks.hpp"
#include "config_checks.hpp"

namespace pbx::cli::doctor {

inline constexpr const char* kSudoersDir = "/etc/sudoers.d";
inline constexpr const char* kSudoersSnippet = "pbx-helpdesk";  // the packaged example's name
inline constexpr const char* kVisudo = "/usr/sbin/visudo";

// One file of the sudoers directory as doctor found it (lstat, then its text).
struct SudoersFile {
  std::string path;
  bool is_link = false;
  bool is_regular = true;
  uid_t owner = 0;
  mode_t mode = 0440;
  std::optional<std::string> text;  // nullopt: could not be read (`error` says why)
  std::string error;
};

// The files sudo reads from a sudoers directory (#includedir skips names with a '.' or ending
// in '~'), sorted; `error` when the directory exists but cannot be listed.
struct SudoersScan {
  std::vector<SudoersFile> files;
  std::string error;
};
SudoersScan scan_sudoers_dir(const std::string& dir);

// Runs a helper program (Env::run_program).
using ProgramRunner =
    std::function<std::optional<ProgramResult>(const std::vector<std::string>& argv)>;

// "sudoers", one per file that is the snippet (pbx-helpdesk), mentions pbx-mfa or names a group
// of helpdesk_groups (%GROUP). FAIL: not owned by root, writable by group or others, a symbolic
// link or not a regular file, unreadable, `visudo -c -f FILE` fails, SETENV or Defaults setenv
// (a member could set SUDO_UID), env_keep of SUDO_*, the command ALL for a helpdesk group (it
// implies SETENV), pbx-mfa granted to a %group that helpdesk_groups does not name (its members
// would run it as full root). WARN: a mode other than 0440 or 0400, visudo missing, !env_reset,
// a snippet that grants nothing. With helpdesk_groups set and no such file, one WARN; nothing
// otherwise.
std::vector<Check> sudoers_checks(const SudoersScan& scan, const std::string& dir,
                                  const totp::Config& config, const ProgramRunner& run);

// "helpdesk-groups": WARN for a group of helpdesk_groups or protected_groups that does not exist
// or cannot be looked up; PASS when all resolve; nothing when both are empty.
std::vector<Check> helpdesk_group_checks(const totp::Config& config, const GroupResolver& resolve);

}  // namespace pbx::cli::doctor

// Delegated helpdesk: what a member of helpdesk_groups may do running pbx-mfa as root through
// sudo, and on whom (pbx-mfa(1) HELPDESK).
//
// Trust model. The CLI trusts sudo's SUDO_UID (and SUDO_USER) only to RESTRICT root: root without
// them, root through sudo for root, or through sudo for someone outside helpdesk_groups is full
// root, as before. A helpdesk member cannot shed SUDO_UID through a sudoers rule that names
// /usr/bin/pbx-mfa (sudo sets it and resets the rest of the environment); only SETENV, the
// command ALL (which implies SETENV) or env_keep of SUDO_* would let them forge it, and doctor
// FAILs such a sudoers file. When the CLI cannot tell whether the sudo user is a member (a
// helpdesk group that cannot be looked up, a SUDO_UID that is not a user id or names no account,
// a SUDO_USER of another uid, a system config that does not load) it refuses instead of acting
// as full root: restricting a real admin is recoverable (unset SUDO_UID in a root shell),
// granting a helpdesk member root is not.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/requirement.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::cli {

// The helpdesk_actions entry (totp::kHelpdeskActions) each subcommand needs in helpdesk mode.
// A subcommand without a row (enroll, import, db, break-glass, recovery-codes, verify, doctor,
// device add and device remove, and any name added later until it gets one) is refused in
// helpdesk mode. A command with subcommands is named down to the one given ("device list").
struct HelpdeskCommand {
  std::string_view command;
  std::string_view action;
};
inline constexpr HelpdeskCommand kHelpdeskCommands[] = {
    {"status", "status"},       {"list", "status"},     {"unlock", "unlock"},
    {"temp-code", "temp-code"}, {"require", "require"}, {"reset", "reset"},
    {"device list", "status"},
};

// The action `command` needs, or nullopt: not a helpdesk command.
std::optional<std::string_view> helpdesk_action(std::string_view command);

// SUDO_UID as sudo writes it: decimal digits, no sign, no leading zero (but "0"), a valid uid.
// nullptr (not set) is nullopt; anything else that is not a uid is an error.
totp::Result<std::optional<uid_t>> parse_sudo_uid(const char* text);

// Who the CLI acts for in helpdesk mode, and on whom.
struct HelpdeskActor {
  // "helpdesk"; "sudo" for a sudo user refused because membership cannot be told.
  std::string role = "helpdesk";
  std::string name;   // the sudo user
  uid_t uid = 0;      // SUDO_UID
  std::string group;  // the helpdesk group that made them a member
  std::string command;
  std::string action;
  // The --user the command acts on (the invoking user, root, when it has --user and none was
  // given); unset for a command without --user (list).
  std::optional<std::string> target;
  std::optional<uid_t> target_uid;  // once the target passed the protection check
  bool audited = false;             // its one audit line is written
  // s.config is the system config (loaded): a refusal is also a helpdesk-refused event in its
  // event log. Not when the system config does not load (no log to write to).
  bool config_loaded = false;
};

// The first of `groups` `user` is in (as requirement_for decides membership: getgrouplist, or
// the group resolved by name is the user's primary one or lists them); nullopt when none. An
// error when none says yes and one could not be looked up: the caller must fail closed.
totp::Result<std::optional<std::string>> first_group_of(const std::vector<std::string>& groups,
                                                        const totp::User& user,
                                                        totp::GroupLookup lookup);

// The helpdesk member root runs for (name, uid and group set), or nullopt for full root: not
// root, no SUDO_UID, SUDO_UID 0, helpdesk_groups empty, or a sudo user in none of them. An error
// when that cannot be told (see the trust model above).
totp::Result<std::optional<HelpdeskActor>> helpdesk_actor(
    const Env& env, const totp::Config& system_config,
    totp::GroupLookup lookup = totp::lookup_group);

// Why the helpdesk `actor_uid` may not act on `target` ("root is always protected", "member of
// protected group 'G' (protected_groups)", "another helpdesk member (group 'G')"), or nullopt
// when it may. A helpdesk member acting on themselves is not "another". An error when a group
// cannot be looked up: the caller refuses.
totp::Result<std::optional<std::string>> helpdesk_protection(
    const totp::Config& config, const totp::User& target, uid_t actor_uid,
    totp::GroupLookup lookup = totp::lookup_group);

// The same with the accounts of target's uid given (target among them; list, which has them all
// already, instead of a getpwent per account).
totp::Result<std::optional<std::string>> helpdesk_protection_of(
    const totp::Config& config, const totp::User& target, const std::vector<totp::User>& accounts,
    uid_t actor_uid, totp::GroupLookup lookup = totp::lookup_group);

struct Session;

// run()'s gate, after parsing and before the config is loaded: when root runs for a helpdesk
// member, sets s.helpdesk and s.config (the system config) and checks the command (no --config,
// a command of the table, its action in helpdesk_actions) and its --user target. Returns the
// exit status of a refusal (4; 2 when the system config does not load) after its one audit
// line and its helpdesk-refused event, or nullopt to go on (helpdesk mode, or full root with
// nothing set).
std::optional<int> helpdesk_gate(Session& s, const std::string& command,
                                 const std::optional<std::string>& user_option,
                                 bool has_user_option);

// target_user()'s check in helpdesk mode: `target` must be the user the gate checked (a command
// that resolves its user some other way is refused, fail closed). An error (exit 4) after the
// refusal's audit line and event, or Ok.
totp::Status helpdesk_check_target(Session& s, const totp::User& target);

// After the command: its one audit line when it wrote none ("status user=U (exit 0)").
void helpdesk_finish(Session& s, int exit_code);

}  // namespace pbx::cli

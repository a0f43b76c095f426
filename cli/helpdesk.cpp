// Delegated helpdesk (helpdesk.hpp): the command table, who the sudo user is, who is protected,
// and run()'s gate with its audit lines.
#include "helpdesk.hpp"

#include <pwd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <utility>

#include "events_record.hpp"
#include "session.hpp"

namespace pbx::cli {
namespace {

// helpdesk-refused events recorded per member an hour (see refusal()).
constexpr int kRefusalEventsPerHour = 20;

bool holds(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

std::string command_list() {
  std::string out;
  for (const auto& row : kHelpdeskCommands) {
    out.append(out.empty() ? "" : ", ").append(row.command);
  }
  return out;
}

// The account of a uid (getpwuid_r).
totp::Result<totp::User> user_of_uid(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = 0;
  while ((rc = getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < (1U << 22)) {
    buf.resize(buf.size() * 2);
  }
  if (rc != 0) {
    return totp::make_error(totp::Errc::kIo,
                            "cannot look up uid " + std::to_string(uid) + ": " + std::strerror(rc));
  }
  if (found == nullptr) {
    return totp::make_error(totp::Errc::kNoUser, "uid " + std::to_string(uid) + " has no account");
  }
  return totp::User{pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir != nullptr ? pw.pw_dir : ""};
}

// The audit line of a refusal ("refused COMMAND user=U (RULE)") and its helpdesk-refused event
// ("unlock of root refused: root is always protected"), then the error for stderr.
totp::Error refusal(Session& s, int exit_code, const std::string& rule,
                    const std::string& message) {
  const HelpdeskActor& a = *s.helpdesk;
  std::string what = "refused " + a.command;
  if (a.target) what += " user=" + audit_field(*a.target);
  what += " (" + rule + ")";
  audit(s, what);
  if (a.config_loaded) {
    std::string detail = a.command + (a.target ? " of " + *a.target : "") + " refused" +
                         (a.role == "helpdesk" ? "" : " (" + a.role + ")") + ": " + rule;
    // A member who loops on refused commands must not push earlier evidence out of the bounded
    // log (events_max_size): kRefusalEventsPerHour events per member an hour, the last saying
    // so; syslog's audit line has every refusal. A log that cannot be read does not stop one.
    auto recent = s.env.clock != nullptr
                      ? count_events(s, "helpdesk-refused", event_actor(s),
                                     s.env.clock->now() - 3600, kRefusalEventsPerHour)
                      : std::nullopt;
    if (!recent || *recent < kRefusalEventsPerHour - 1) {
      record_event(s, "helpdesk-refused", a.target.value_or(""), detail);
    } else if (*recent == kRefusalEventsPerHour - 1) {
      // First, so that the cut of a long detail keeps it.
      record_event(s, "helpdesk-refused", a.target.value_or(""),
                   std::to_string(kRefusalEventsPerHour) +
                       " refusals of this member within an hour, further ones this hour are in "
                       "syslog only; " +
                       detail);
    }
  }
  // The exit status travels as the error code exit_for() maps back to it.
  totp::Errc code = exit_code == kExitUsage ? totp::Errc::kConfig : totp::Errc::kIo;
  return totp::make_error(code, "helpdesk: " + message);
}

int refuse(Session& s, int exit_code, const std::string& rule, const std::string& message) {
  return fail(s, exit_code, refusal(s, exit_code, rule, message).message);
}

// Root's helpdesk may act on `target`? An error (after the refusal's audit line) when not.
totp::Status check_protection(Session& s, const totp::User& target) {
  auto why = helpdesk_protection(s.config, target, s.helpdesk->uid);
  if (!why) {
    return refusal(s, kExitStore,
                   "cannot tell whether the user is protected: " + why.error().message,
                   "--user " + target.name + ": cannot tell whether the user is protected (" +
                       why.error().message + "), so the helpdesk may not act on them");
  }
  if (*why) return refusal(s, kExitStore, **why, "--user " + target.name + ": " + **why);
  return totp::Ok{};
}

}  // namespace

std::optional<std::string_view> helpdesk_action(std::string_view command) {
  for (const auto& row : kHelpdeskCommands) {
    if (row.command == command) return row.action;
  }
  return std::nullopt;
}

totp::Result<std::optional<uid_t>> parse_sudo_uid(const char* text) {
  if (text == nullptr) return std::optional<uid_t>{};
  std::string_view t(text);
  auto bad = [&] {
    return totp::make_error(totp::Errc::kInvalid, "SUDO_UID is not a user id (it holds " +
                                                      std::to_string(t.size()) +
                                                      " characters that are not one)");
  };
  if (t.empty() || t.size() > 10 || (t.size() > 1 && t[0] == '0')) return bad();
  if (!std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) return bad();
  unsigned long long v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size()) return bad();
  // (uid_t)-1 is "no uid" to chown and setreuid.
  if (v >= std::numeric_limits<uid_t>::max()) return bad();
  return std::optional<uid_t>{static_cast<uid_t>(v)};
}

totp::Result<std::optional<std::string>> first_group_of(const std::vector<std::string>& groups,
                                                        const totp::User& user,
                                                        totp::GroupLookup lookup) {
  if (groups.empty()) return std::optional<std::string>{};
  const std::vector<std::string> listed = totp::user_groups(user);
  std::optional<totp::Error> failed;
  for (const auto& g : groups) {
    if (holds(listed, g)) return std::optional<std::string>{g};
    auto found = lookup(g);
    if (!found) {
      if (!failed) failed = found.error();
      continue;  // a later group the user is certainly in still answers yes
    }
    if (*found && ((*found)->gid == user.gid || holds((*found)->members, user.name))) {
      return std::optional<std::string>{g};
    }
  }
  if (failed) return *failed;
  return std::optional<std::string>{};
}

totp::Result<std::optional<HelpdeskActor>> helpdesk_actor(const Env& env,
                                                          const totp::Config& system_config,
                                                          totp::GroupLookup lookup) {
  using None = std::optional<HelpdeskActor>;
  if (env.uid != 0 || (!env.sudo_uid && !env.sudo_uid_invalid)) return None{};
  if (system_config.helpdesk_groups.empty()) return None{};  // no delegation: nothing to restrict
  if (env.sudo_uid_invalid) {
    return totp::make_error(totp::Errc::kInvalid,
                            "SUDO_UID is set but is not a user id, so whether the sudo user is "
                            "in helpdesk_groups cannot be told");
  }
  if (*env.sudo_uid == 0) return None{};  // root's own sudo
  auto account = user_of_uid(*env.sudo_uid);
  if (!account) {
    return totp::make_error(account.error().code, "SUDO_UID " + std::to_string(*env.sudo_uid) +
                                                      ": " + account.error().message +
                                                      ", so whether the sudo user is in "
                                                      "helpdesk_groups cannot be told");
  }
  // sudo sets SUDO_USER to the same account; two names of one uid are both asked.
  std::vector<totp::User> names = {*account};
  if (!env.sudo_user.empty() && env.sudo_user != account->name) {
    auto other = totp::lookup_user(env.sudo_user);
    if (!other || other->uid != account->uid) {
      return totp::make_error(totp::Errc::kInvalid,
                              "SUDO_USER does not name the account of SUDO_UID " +
                                  std::to_string(*env.sudo_uid) +
                                  ", so who ran sudo cannot be told");
    }
    names.push_back(*other);
  }
  std::optional<totp::Error> failed;
  for (const auto& n : names) {
    auto group = first_group_of(system_config.helpdesk_groups, n, lookup);
    if (!group) {
      if (!failed) failed = group.error();
      continue;
    }
    if (*group) {
      HelpdeskActor a;
      a.name = env.sudo_user.empty() ? account->name : env.sudo_user;
      a.uid = account->uid;
      a.group = **group;
      return None{std::move(a)};
    }
  }
  if (failed) {
    return totp::make_error(failed->code, "cannot tell whether the sudo user (uid " +
                                              std::to_string(*env.sudo_uid) +
                                              ") is in helpdesk_groups: " + failed->message);
  }
  return None{};
}

namespace {

// `target` and every other account of its uid (useradd -o aliases): getpwuid's and those
// getpwent lists. Protection follows the uid: a second name of a protected uid, with a primary
// group outside protected_groups, logs in as the same uid.
std::vector<totp::User> accounts_of_uid(const totp::User& target) {
  std::vector<totp::User> out = {target};
  auto add = [&](const passwd* pw) {
    if (pw == nullptr || pw->pw_name == nullptr || pw->pw_uid != target.uid) return;
    for (const auto& u : out) {
      if (u.name == pw->pw_name && u.gid == pw->pw_gid) return;
    }
    out.push_back(
        totp::User{pw->pw_name, pw->pw_uid, pw->pw_gid, pw->pw_dir != nullptr ? pw->pw_dir : ""});
  };
  if (auto canonical = user_of_uid(target.uid)) {
    passwd pw{};
    pw.pw_name = canonical->name.data();
    pw.pw_uid = canonical->uid;
    pw.pw_gid = canonical->gid;
    add(&pw);
  }
  setpwent();
  while (passwd* pw = getpwent()) add(pw);
  endpwent();
  return out;
}

}  // namespace

totp::Result<std::optional<std::string>> helpdesk_protection(const totp::Config& config,
                                                             const totp::User& target,
                                                             uid_t actor_uid,
                                                             totp::GroupLookup lookup) {
  if (target.uid == 0) return std::optional<std::string>{"root is always protected"};
  return helpdesk_protection_of(config, target, accounts_of_uid(target), actor_uid, lookup);
}

totp::Result<std::optional<std::string>> helpdesk_protection_of(
    const totp::Config& config, const totp::User& target, const std::vector<totp::User>& accounts,
    uid_t actor_uid, totp::GroupLookup lookup) {
  using Why = std::optional<std::string>;
  if (target.uid == 0) return Why{"root is always protected"};
  for (const totp::User& account : accounts) {
    const std::string of =
        account.name == target.name ? "" : " (as '" + account.name + "', of the same uid)";
    auto prot = first_group_of(config.protected_groups, account, lookup);
    if (!prot) return prot.error();
    if (*prot) return Why{"member of protected group '" + **prot + "' (protected_groups)" + of};
    if (target.uid != actor_uid) {
      auto desk = first_group_of(config.helpdesk_groups, account, lookup);
      if (!desk) return desk.error();
      if (*desk) {
        return Why{"another helpdesk member (group '" + **desk + "' of helpdesk_groups)" + of};
      }
    }
  }
  return Why{};
}

std::optional<int> helpdesk_gate(Session& s, const std::string& command,
                                 const std::optional<std::string>& user_option,
                                 bool has_user_option) {
  const Env& env = s.env;
  if (env.uid != 0 || (!env.sudo_uid && !env.sudo_uid_invalid)) return std::nullopt;
  if (env.sudo_uid && *env.sudo_uid == 0) return std::nullopt;
  // A command with --user acts on the invoking user (root) without it.
  std::optional<std::string> target = user_option;
  if (!target && has_user_option) target = env.invoking_user;

  // Who the sudo user is cannot be told: refuse rather than act as full root (helpdesk.hpp).
  // With the system config loaded, into its event log too.
  auto undecided = [&](int exit_code, const std::string& why, totp::Config* system = nullptr) {
    HelpdeskActor who;
    if (system != nullptr) {
      s.config = std::move(*system);
      who.config_loaded = true;
    }
    who.role = "sudo";
    // The actor of its event: SUDO_USER only when it names the account of SUDO_UID (a
    // mismatched one is text the caller chose: it must not put another name in the log).
    auto names_sudo_uid = [&] {
      auto u = totp::lookup_user(env.sudo_user);
      return u.ok() && u->uid == *env.sudo_uid;
    };
    who.name = env.sudo_uid             ? (!env.sudo_user.empty() && names_sudo_uid()
                                               ? env.sudo_user
                                               : "uid-" + std::to_string(*env.sudo_uid))
               : !env.sudo_user.empty() ? env.sudo_user
                                        : "unknown";
    who.command = command;
    who.target = target;
    s.helpdesk = std::move(who);
    return refuse(s, exit_code, why,
                  why +
                      "; as root without sudo's SUDO_UID (sudo env -u SUDO_UID pbx-mfa ...) "
                      "full root is not restricted");
  };
  auto system = totp::load_config(env.system_config_path, false, env.trusted_uid);
  if (!system) {
    return undecided(kExitUsage, "the system config does not load (" + system.error().message +
                                     "), so whether the sudo user is in helpdesk_groups cannot "
                                     "be told");
  }
  auto actor = helpdesk_actor(env, *system);
  if (!actor) return undecided(kExitStore, actor.error().message, &system.value());
  if (!*actor) return std::nullopt;  // full root: the command runs as before

  HelpdeskActor& a = s.helpdesk.emplace(std::move(**actor));
  a.command = command;
  a.target = target;
  // Helpdesk mode runs on the system config; a refusal below records its event in its log.
  s.config = std::move(*system);
  a.config_loaded = true;
  const totp::Config& sys = s.config;
  if (s.config_explicit) {
    return refuse(
        s, kExitStore, "--config is not allowed",
        "--config is not allowed: the helpdesk uses the system config " + env.system_config_path);
  }
  auto action = helpdesk_action(command);
  if (!action) {
    return refuse(
        s, kExitStore, "'" + command + "' is not a helpdesk command",
        "'" + command + "' is not a helpdesk command (helpdesk commands: " + command_list() + ")");
  }
  a.action = std::string(*action);
  if (!holds(sys.helpdesk_actions, *action)) {
    std::string rule = a.action == command ? "'" + a.action + "' is not in helpdesk_actions"
                                           : "'" + command + "' needs '" + a.action +
                                                 "', which is not in helpdesk_actions";
    return refuse(s, kExitStore, rule,
                  rule + " (" + join(sys.helpdesk_actions) + ") of " + env.system_config_path);
  }
  if (a.target) {
    auto u = totp::lookup_user(*a.target);
    if (!u) {
      int code = exit_for(u.error());
      return fail(s, code, refusal(s, code, "cannot look up the user", u.error().message).message);
    }
    if (auto ok = check_protection(s, *u); !ok) return fail(s, kExitStore, ok.error().message);
    a.target_uid = u->uid;
  }
  return std::nullopt;
}

totp::Status helpdesk_check_target(Session& s, const totp::User& target) {
  const HelpdeskActor& a = *s.helpdesk;
  if (!a.target_uid || *a.target_uid != target.uid) {
    // A command resolving its user other than through --user: refused, fail closed.
    return refusal(s, kExitStore, "not the user the helpdesk check saw",
                   "--user " + target.name + ": not the user the helpdesk check saw");
  }
  return check_protection(s, target);
}

void helpdesk_finish(Session& s, int exit_code) {
  if (!s.helpdesk || s.helpdesk->audited) return;
  std::string what = s.helpdesk->command;
  if (s.helpdesk->target) what += " user=" + audit_field(*s.helpdesk->target);
  what += " (exit " + std::to_string(exit_code) + ")";
  audit(s, what);
}

}  // namespace pbx::cli

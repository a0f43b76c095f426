// The sshd checks: does sshd run the PAM stack, can it ask for the code, and can a login
// get around it.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "checks.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::cli::doctor {
namespace {

std::string first_word(const std::string& value) {
  auto words = totp::split_ws(value);
  return words.empty() ? std::string() : totp::to_lower(words[0]);
}

const SshdValue* get(const Facts& f, const char* key) {
  auto it = f.sshd.config->global.find(key);
  return it == f.sshd.config->global.end() ? nullptr : &it->second;
}

bool is_no(const SshdValue* v) { return v != nullptr && first_word(v->value) == "no"; }

std::string at(const SshdValue* v) { return " (" + v->where + ")"; }

bool has(const std::vector<std::string>& list, const char* name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

// AuthenticationMethods as lists of method names ("publickey", "keyboard-interactive"; a
// ":submethod" dropped). None when it is not set or "any".
std::vector<std::vector<std::string>> method_lists(const SshdValue* methods) {
  std::vector<std::vector<std::string>> lists;
  if (methods == nullptr || first_word(methods->value) == "any") return lists;
  for (std::string_view list : totp::split_ws(methods->value)) {
    std::vector<std::string> m;
    std::string_view rest = list;
    while (!rest.empty()) {
      std::size_t comma = rest.find(',');
      std::string name = totp::to_lower(rest.substr(0, comma));
      if (std::size_t colon = name.find(':'); colon != std::string::npos) name.erase(colon);
      if (!name.empty()) m.push_back(name);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    lists.push_back(m);
  }
  return lists;
}

}  // namespace

std::vector<Check> check_sshd_config(const Facts& f) {
  const DoctorOptions& o = f.options;
  Check file{"sshd-config", Status::kPass, "", ""};
  if (!f.sshd.config) {
    bool missing = f.sshd.error == std::strerror(ENOENT);
    if (missing && !o.sshd_config_given) {
      file.status = Status::kWarn;
      file.message = o.sshd_config +
                     " not found (is openssh-server installed?): sshd checks "
                     "skipped";
      file.fix = "name the server configuration with --sshd-config";
    } else {
      file.status = Status::kFail;
      file.message = "cannot read " + o.sshd_config + ": " + f.sshd.error;
      file.fix = "name a readable sshd configuration with --sshd-config";
    }
    return {file};
  }
  const SshdConfig& cfg = *f.sshd.config;
  file.message = "read " + o.sshd_config +
                 (cfg.files > 1 ? " and " + std::to_string(cfg.files - 1) + " included file" +
                                      (cfg.files > 2 ? "s" : "")
                                : std::string());
  for (const auto& p : cfg.problems) {
    file.status = Status::kWarn;
    file.message += "; " + p;
    file.fix = "fix the Include named above";
  }
  return {file};
}

// UsePAM: OpenSSH's default is no; Debian's file says yes.
std::vector<Check> check_sshd_usepam(const Facts& f) {
  if (!f.sshd.config) return {};
  const SshdValue* use_pam = get(f, "usepam");
  if (use_pam == nullptr) {
    return {{"sshd-usepam", Status::kFail,
             "UsePAM is not set and OpenSSH's default is no: sshd never runs the PAM "
             "stack",
             "add 'UsePAM yes' to " + f.options.sshd_config + " and reload sshd"}};
  }
  if (first_word(use_pam->value) != "yes") {
    return {{"sshd-usepam", Status::kFail,
             "UsePAM " + use_pam->value + at(use_pam) +
                 ": sshd never runs the PAM stack, so no code is asked",
             "set 'UsePAM yes' and reload sshd"}};
  }
  return {{"sshd-usepam", Status::kPass, "UsePAM yes" + at(use_pam), ""}};
}

// KbdInteractiveAuthentication (ChallengeResponseAuthentication before OpenSSH 8.7): the
// method that lets PAM ask for the code. Default yes; Debian's file sets it to no.
std::vector<Check> check_sshd_kbdinteractive(const Facts& f) {
  if (!f.sshd.config) return {};
  const SshdValue* kbd = get(f, "kbdinteractiveauthentication");
  if (kbd == nullptr) {
    return {{"sshd-kbdinteractive", Status::kPass,
             "KbdInteractiveAuthentication not set: OpenSSH's default is yes", ""}};
  }
  if (is_no(kbd)) {
    return {{"sshd-kbdinteractive", Status::kFail,
             "KbdInteractiveAuthentication no" + at(kbd) +
                 ": sshd cannot ask for the code (Debian ships this line)",
             "set 'KbdInteractiveAuthentication yes' (ChallengeResponseAuthentication "
             "yes on OpenSSH before 8.7) and reload sshd"}};
  }
  return {{"sshd-kbdinteractive", Status::kPass,
           "KbdInteractiveAuthentication " + kbd->value + at(kbd), ""}};
}

// AuthenticationMethods: each space-separated list is one way in; a list without
// keyboard-interactive is a way in without the code.
std::vector<Check> check_sshd_authmethods(const Facts& f) {
  if (!f.sshd.config) return {};
  const SshdValue* methods = get(f, "authenticationmethods");
  const SshdValue* pubkey = get(f, "pubkeyauthentication");
  std::vector<std::vector<std::string>> lists = method_lists(methods);
  std::string want = "AuthenticationMethods publickey,keyboard-interactive";
  if (lists.empty()) {
    if (is_no(pubkey)) {
      return {{"sshd-authmethods", Status::kPass,
               "public-key logins are off (PubkeyAuthentication no" + at(pubkey) + ")", ""}};
    }
    return {{"sshd-authmethods", Status::kWarn,
             std::string(methods == nullptr ? "AuthenticationMethods is not set"
                                            : "AuthenticationMethods any" + at(methods)) +
                 ": a public-key login skips the second factor (sshd does not run the PAM auth "
                 "stack for it)",
             "require both with '" + want + "' (or 'keyboard-interactive' alone)"}};
  }
  std::vector<std::string> bypass;
  for (std::size_t i = 0; i < lists.size(); ++i) {
    if (!has(lists[i], "keyboard-interactive"))
      bypass.emplace_back(totp::split_ws(methods->value)[i]);
  }
  if (bypass.empty()) {
    return {{"sshd-authmethods", Status::kPass,
             "AuthenticationMethods " + methods->value + at(methods) +
                 ": every login needs keyboard-interactive",
             ""}};
  }
  std::string names;
  for (const auto& b : bypass) names += (names.empty() ? "" : "', '") + b;
  return {{"sshd-authmethods", Status::kWarn,
           "AuthenticationMethods " + methods->value + at(methods) + ": '" + names +
               "' lets a login in without keyboard-interactive, so without the "
               "code",
           "add keyboard-interactive to every list, e.g. '" + want + "'"}};
}

// PasswordAuthentication: sshd's password method answers every PAM prompt with the
// password, so the code cannot be asked that way (and each try counts as a failure).
std::vector<Check> check_sshd_password(const Facts& f) {
  if (!f.sshd.config) return {};
  const SshdValue* password = get(f, "passwordauthentication");
  std::vector<std::vector<std::string>> lists = method_lists(get(f, "authenticationmethods"));
  bool password_on = !is_no(password);
  bool password_allowed =
      lists.empty() ||
      std::any_of(lists.begin(), lists.end(), [&](const auto& l) { return has(l, "password"); });
  if (password_on && password_allowed) {
    return {{"sshd-password", Status::kWarn,
             std::string(password == nullptr ? "PasswordAuthentication not set (default yes)"
                                             : "PasswordAuthentication yes" + at(password)) +
                 ": the password method bypasses keyboard-interactive and cannot ask for the code; "
                 "enrolled users fail that way and collect failures",
             "set 'PasswordAuthentication no': keyboard-interactive still asks for the password, "
             "then the code"}};
  }
  return {{"sshd-password", Status::kPass,
           password_on ? "the password method is not in AuthenticationMethods"
                       : "PasswordAuthentication no" + at(password),
           ""}};
}

std::vector<Check> check_sshd_match(const Facts& f) {
  if (!f.sshd.config) return {};
  const SshdConfig& cfg = *f.sshd.config;
  if (cfg.match_overrides.empty()) {
    return {{"sshd-match", Status::kPass,
             cfg.match_blocks == 0 ? std::string("no Match blocks")
                                   : std::to_string(cfg.match_blocks) +
                                         " Match block(s); none changes the settings checked above",
             ""}};
  }
  std::string list;
  for (const auto& m : cfg.match_overrides) list += (list.empty() ? "" : "; ") + m;
  return {{"sshd-match", Status::kWarn,
           "Match blocks change the settings checked above for some logins: " + list,
           "check that the users and hosts matched there still need "
           "keyboard-interactive and the code"}};
}

}  // namespace pbx::cli::doctor

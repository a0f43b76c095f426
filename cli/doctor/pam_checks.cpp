// The PAM checks: which services ask for the code, and whether each asks at a safe place.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "checks.hpp"
#include "pam_walk.hpp"

namespace pbx::cli::doctor {
namespace {

bool skipped_pam_file(const std::string& name) {
  if (name.empty() || name.front() == '.' || name.back() == '~') return true;
  for (const char* suffix : {".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-bak", ".ucf-old",
                             ".ucf-new", ".ucf-dist", ".rpmnew", ".rpmsave", ".bak", ".orig"}) {
    std::string_view sv = suffix;
    if (name.size() > sv.size() && name.compare(name.size() - sv.size(), sv.size(), sv) == 0) {
      return true;
    }
  }
  return false;
}

// enroll_at_login from the module's arguments, else the config's.
EnrollMode enroll_mode(const PamEntry& e, EnrollMode config_default) {
  EnrollMode mode = config_default;
  for (const auto& a : e.args) {
    if (a.rfind("enroll_at_login=", 0) != 0) continue;
    std::string v = a.substr(16);
    mode = v == "with-code"                                     ? EnrollMode::kWithCode
           : v == "yes" || v == "true" || v == "on" || v == "1" ? EnrollMode::kYes
                                                                : EnrollMode::kNo;
  }
  return mode;
}

// "'auth sufficient pam_unix.so' (/etc/pam.d/sshd:1)"
std::string quoted(const PamEntry& e) {
  std::string text = e.kind == PamEntry::Kind::kModule ? "auth " + e.control + " " + e.path
                     : e.control == "@include"         ? "@include " + e.module
                                                       : "auth " + e.control + " " + e.module;
  return "'" + text + "' (" + e.where + ")";
}

// The stacks doctor recommends: a wrong password ends the stack before the module runs, so
// only a holder of the password can reach the code (and move its failure counter).
const char* const kSafeStacks =
    "check the password first and stop on a wrong one, with nothing before the module that can "
    "end the stack in success: Debian's 'auth [success=1 default=ignore] pam_unix.so', 'auth "
    "requisite pam_deny.so', 'auth required pam_permit.so' (that is, '@include common-auth'), "
    "or 'auth requisite pam_unix.so'; then 'auth required pam_pbx_totp.so'";

std::string password_text(const std::vector<PamEntry>& flow, std::optional<std::size_t> i) {
  return flow[*i].module + " (" + flow[*i].where + ")";
}

}  // namespace

Check judge_pam_service(const std::string& service, const std::vector<PamEntry>& flow,
                        EnrollMode enroll_default) {
  Check c{"pam:" + service, Status::kPass, "", ""};
  PamWalk w = walk_auth_flow(flow);
  std::size_t ours = 0;
  while (ours < flow.size() &&
         !(flow[ours].kind == PamEntry::Kind::kModule && is_totp_entry(flow[ours]))) {
    ++ours;
  }
  std::size_t password = 0;
  while (password < flow.size() && !(flow[password].kind == PamEntry::Kind::kModule &&
                                     module_role(flow[password]) == ModuleRole::kPassword)) {
    ++password;
  }
  if (ours == flow.size()) {
    c.status = Status::kWarn;
    c.message = std::string("the auth stack does not use ") + kModuleName;
    c.fix = "add 'auth required " + std::string(kModuleName) + "' after '@include common-auth'";
    return c;
  }
  const PamEntry& e = flow[ours];
  const bool forward = std::find(e.args.begin(), e.args.end(), "forward_pass") != e.args.end();
  if (w.bypass) {
    c.status = Status::kFail;
    c.message = "a correct password to " + password_text(flow, w.bypass_password) +
                " logs in without a code: " + quoted(flow[*w.bypass]) +
                " opens a path on which the stack succeeds and " + kModuleName + " never runs";
    c.fix = std::string(
                "no 'sufficient', 'done' or jump past the module after a password "
                "check; ") +
            kSafeStacks;
    return c;
  }
  if (w.ignored_failure) {
    c.status = Status::kFail;
    c.message = quoted(flow[*w.ignored_failure]) +
                ": a wrong or missing code does not fail the stack (on some path the module "
                "fails and the stack still succeeds)";
    c.fix = "use 'auth required " + std::string(kModuleName) +
            "' (or '[success=ok default=die]'), with nothing after it that can end the stack "
            "in success on its own";
    return c;
  }
  // enroll_at_login binds a new phone to the account inside the login: only safe when a wrong
  // password has already ended the stack (forward_pass: the module never enrolls).
  const EnrollMode enroll = enroll_mode(e, enroll_default);
  if (enroll != EnrollMode::kNo && !forward && (!w.has_password || w.unguarded)) {
    std::string why = !w.has_password ? std::string("no password module in this stack")
                      : w.unguarded_after
                          ? "a wrong password to " + password_text(flow, w.unguarded_after) +
                                " does not end the stack before it"
                          : std::string("it can run before any password module has succeeded");
    c.status = Status::kFail;
    c.message = quoted(e) + " with enroll_at_login: " + why +
                ", so anyone who knows the name of a user who is not enrolled yet can enroll "
                "their own phone for that user";
    c.fix = std::string(kSafeStacks) + "; or enroll_at_login = no";
    return c;
  }
  if (!w.incomplete.empty()) {
    c.status = Status::kWarn;
    c.message = quoted(e) + ": not every path through the stack could be followed (" +
                w.incomplete + "), so doctor cannot tell whether a password alone logs in";
    c.fix = "keep the auth stack inside the PAM directory and simple enough to follow";
    return c;
  }
  if (forward) {
    c.status = Status::kWarn;
    c.message = quoted(e) +
                " with forward_pass: the code is checked before the password, so anyone who "
                "knows a user name can send wrong codes, run up the failures that lock the user "
                "out of every service using the module, and learn whether the user is enrolled";
    c.fix =
        "drop forward_pass and ask for the code after the password: " + std::string(kSafeStacks);
    return c;
  }
  if (w.unguarded) {
    std::string when = w.unguarded_after
                           ? "after a wrong password to " + password_text(flow, w.unguarded_after) +
                                 ": its failure does not end the stack first"
                           : std::string("before any password module has succeeded");
    c.status = Status::kWarn;
    c.message = quoted(flow[*w.unguarded]) + " runs " + when +
                "; anyone who knows a user name can guess codes and run up the failures that "
                "lock the user out, without knowing the password";
    c.fix = kSafeStacks;
    return c;
  }
  if (!w.module_runs) {
    c.status = Status::kWarn;
    c.message = quoted(e) + " runs on no path through the stack: nobody is asked for a code";
    c.fix = kSafeStacks;
    return c;
  }
  if (!w.has_password) {
    c.message = quoted(e) + "; no password module in this stack: the code is the only PAM factor";
    return c;
  }
  // enroll_at_login = yes over ssh: a password that leaked binds a stranger's phone to any
  // account not enrolled yet. with-code needs a temp code made for the user as well.
  if (enroll == EnrollMode::kYes && service == "sshd") {
    c.status = Status::kWarn;
    c.message = quoted(e) +
                " with enroll_at_login = yes: over ssh, whoever has the password of a user who "
                "is not enrolled yet can bind their own phone to that account";
    c.fix =
        "enroll_at_login = with-code (the QR code only after a temp code from pbx-mfa "
        "temp-code)";
    return c;
  }
  c.message = quoted(e) + ": every path on which " + flow[password].module + " (" +
              flow[password].where +
              ") accepts the password runs the module, a wrong code fails the stack, and a "
              "wrong password ends it before the module";
  return c;
}

std::vector<std::string> services_with_module(const PamScan& scan) {
  std::vector<std::string> users;
  for (const auto& [name, stack] : scan.stacks) {
    if (std::any_of(stack.begin(), stack.end(), is_totp_entry)) users.push_back(name);
  }
  return users;
}

std::vector<std::string> module_paths_in_stacks(const PamScan& scan) {
  std::vector<std::string> paths;
  for (const auto& [name, stack] : scan.stacks) {
    for (const auto& e : stack) {
      if (e.path.empty() || e.path.front() != '/' || !is_totp_entry(e)) continue;
      if (std::find(paths.begin(), paths.end(), e.path) == paths.end()) paths.push_back(e.path);
    }
  }
  return paths;
}

PamScan scan_pam_dir(const std::string& dir_path, const FileReader& files) {
  PamScan scan;
  DIR* dir = ::opendir(dir_path.c_str());
  if (dir == nullptr) {
    scan.dir_error = std::strerror(errno);
    return scan;
  }
  std::vector<std::string> names;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string name = ent->d_name;
    if (name == "." || name == ".." || skipped_pam_file(name)) continue;
    struct stat st {};
    std::string file = dir_path;
    file.append("/").append(name);
    if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());

  PamStackReader reader(dir_path, files);
  for (const auto& name : names) {
    scan.flows[name] = reader.auth_flow(name);
    scan.stacks[name] = modules_only(scan.flows[name]);
  }
  scan.included = reader.included();
  scan.problems = reader.problems();
  return scan;
}

std::vector<Check> check_pam_stacks(const Facts& f) {
  const std::string& dir = f.options.pam_dir;
  Check summary{"pam-stacks", Status::kPass, "", ""};
  if (f.pam.dir_error) {
    summary.status = Status::kFail;
    summary.message = "cannot read " + dir + ": " + *f.pam.dir_error;
    summary.fix = "name the PAM configuration directory with --pam-dir";
    return {summary};
  }
  std::vector<std::string> users = services_with_module(f.pam);
  if (users.empty()) {
    summary.status = Status::kFail;
    summary.message =
        "no PAM service in " + dir + " uses " + kModuleName + ": nobody is asked for a code";
    summary.fix = "add 'auth required " + std::string(kModuleName) + "' after '@include " +
                  "common-auth' in " + dir + "/sshd (or enable it with pam-auth-update)";
  } else {
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    summary.message = kModuleName + std::string(" is in the auth stack of: ") + list;
  }
  for (const auto& p : f.pam.problems) {
    if (summary.status == Status::kPass) summary.status = Status::kWarn;
    summary.message += "; " + p;
    if (summary.fix.empty()) summary.fix = "fix the include named above";
  }
  return {summary};
}

std::vector<Check> check_pam_services(const Facts& f) {
  std::vector<Check> checks;
  for (const auto& u : services_with_module(f.pam)) {
    const totp::Config& config = f.session.config;
    EnrollMode mode = !config.enroll_at_login   ? EnrollMode::kNo
                      : config.enroll_with_code ? EnrollMode::kWithCode
                                                : EnrollMode::kYes;
    checks.push_back(judge_pam_service(u, f.pam.flows.at(u), mode));
  }
  return checks;
}

std::vector<Check> check_pam_sshd(const Facts& f) {
  const PamScan& scan = f.pam;
  std::vector<std::string> users = services_with_module(scan);
  if (scan.stacks.count("sshd") == 0 ||
      std::find(users.begin(), users.end(), "sshd") != users.end() ||
      scan.included.count("sshd") > 0) {
    return {};
  }
  const std::string& dir = f.options.pam_dir;
  return {{"pam:sshd", Status::kWarn,
           dir + "/sshd does not use " + kModuleName + ": ssh logins are not asked for a code",
           "add 'auth required " + std::string(kModuleName) + "' after '@include common-auth' in " +
               dir + "/sshd"}};
}

}  // namespace pbx::cli::doctor

// The PAM checks: which services ask for the code, and whether each asks at a safe place.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "checks.hpp"

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

bool is_password_module(const std::string& module) {
  static const std::set<std::string> kPasswordModules = {
      "pam_unix.so", "pam_unix2.so",   "pam_sss.so",         "pam_ldap.so",
      "pam_krb5.so", "pam_winbind.so", "pam_userdb.so",      "pam_radius_auth.so",
      "pam_pwdb.so", "pam_tacplus.so", "pam_systemd_home.so"};
  return kPasswordModules.count(module) > 0;
}

// Services (not include files) whose auth stack has the module.
std::vector<std::string> users_of_module(const PamScan& scan) {
  std::vector<std::string> users;
  for (const auto& [name, stack] : scan.stacks) {
    if (scan.included.count(name) > 0) continue;
    bool ours = std::any_of(stack.begin(), stack.end(),
                            [](const PamEntry& e) { return e.module == kModuleName; });
    if (ours) users.push_back(name);
  }
  return users;
}

// enroll_at_login from the module's arguments, else the config's.
bool enrolls_at_login(const PamEntry& e, bool config_default) {
  bool on = config_default;
  for (const auto& a : e.args) {
    if (a.rfind("enroll_at_login=", 0) != 0) continue;
    std::string v = a.substr(16);
    on = v == "yes" || v == "true" || v == "on" || v == "1";
  }
  return on;
}

// Whether a failed password module at `password` ends the stack before `ours`: the module is
// requisite (or dies by default), or a requisite pam_deny.so stands between them (Debian's
// common-auth: "[success=1 default=ignore] pam_unix.so" then "requisite pam_deny.so").
bool password_failure_stops(const std::vector<PamEntry>& stack, std::size_t password,
                            std::size_t ours) {
  auto stops = [](const std::string& control) {
    return control == "requisite" || control.find("=die") != std::string::npos;
  };
  if (stops(stack[password].control)) return true;
  for (std::size_t i = password + 1; i < ours; ++i) {
    if (stack[i].module == "pam_deny.so" && stops(stack[i].control)) return true;
  }
  return false;
}

Check check_one_stack(const std::string& service, const std::vector<PamEntry>& stack,
                      bool enroll_default) {
  Check c{"pam:" + service, Status::kPass, "", ""};
  std::size_t ours = stack.size();
  std::size_t password = stack.size();
  for (std::size_t i = 0; i < stack.size(); ++i) {
    if (stack[i].module == kModuleName && ours == stack.size()) ours = i;
    if (is_password_module(stack[i].module) && password == stack.size()) password = i;
  }
  const PamEntry& e = stack[ours];
  std::string line = "auth " + e.control + " " + kModuleName + " (" + e.where + ")";
  const bool forward = std::find(e.args.begin(), e.args.end(), "forward_pass") != e.args.end();
  // enroll_at_login binds a new phone to the account inside the login: only safe when a wrong
  // password has already ended the stack (forward_pass: the module never enrolls).
  if (enrolls_at_login(e, enroll_default) && !forward &&
      (password == stack.size() || ours < password ||
       !password_failure_stops(stack, password, ours))) {
    c.status = Status::kFail;
    c.message = line + " with enroll_at_login: " +
                (password == stack.size()
                     ? std::string("no password module in this stack")
                     : "a wrong password to " + stack[password].module + " (" +
                           stack[password].where + ") does not end the stack before it") +
                ", so anyone who knows the name of a user who is not enrolled yet can enroll "
                "their own phone for that user";
    c.fix =
        "check the password first and stop on failure: 'auth requisite pam_unix.so' above "
        "this line, or this line after '@include common-auth'; or enroll_at_login = no";
    return c;
  }
  if (e.control == "optional" || e.control == "sufficient") {
    c.status = Status::kWarn;
    c.message = line + ": '" + e.control +
                "' does not enforce the code: a wrong or missing code is ignored";
    c.fix = "use 'auth required " + std::string(kModuleName) + "'";
    return c;
  }
  if (password == stack.size()) {
    c.message = line + "; no password module in this stack: the code is the only PAM factor";
    return c;
  }
  const PamEntry& p = stack[password];
  if (ours < password) {
    if (forward) {
      c.message = line + " comes before " + p.module + " (" + p.where +
                  ") with forward_pass: password and code are typed together";
      return c;
    }
    c.status = Status::kWarn;
    c.message = line + " comes before the password module " + p.module + " (" + p.where +
                "): anyone who knows a user name can guess codes and run up the failures "
                "that lock the user out, without knowing the password";
    c.fix = "move the line below '" + p.module +
            "' (or below '@include common-auth'), or add "
            "forward_pass";
    return c;
  }
  c.message = line + " comes after " + p.module + " (" + p.where + ")";
  return c;
}

}  // namespace

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
  for (const auto& name : names) scan.stacks[name] = reader.auth_stack(name);
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
  std::vector<std::string> users = users_of_module(f.pam);
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
  for (const auto& u : users_of_module(f.pam)) {
    checks.push_back(check_one_stack(u, f.pam.stacks.at(u), f.session.config.enroll_at_login));
  }
  return checks;
}

std::vector<Check> check_pam_sshd(const Facts& f) {
  const PamScan& scan = f.pam;
  std::vector<std::string> users = users_of_module(scan);
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

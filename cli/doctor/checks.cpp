// The checks of the host itself: config, state_dir, module and clock.
#include "checks.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "pbx/totp/strings.hpp"

#ifndef PBX_MODULE_INSTALL_DIR
#define PBX_MODULE_INSTALL_DIR ""
#endif
#ifndef PBX_MULTIARCH
#define PBX_MULTIARCH ""
#endif

namespace pbx::cli::doctor {

std::string octal(mode_t mode) {
  char buf[16];
  (void)std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

namespace {

std::vector<std::string> module_candidates() {
  std::vector<std::string> dirs;
  std::string multiarch = PBX_MULTIARCH;
  if (!multiarch.empty()) {
    dirs.push_back("/lib/" + multiarch + "/security");
    dirs.push_back("/usr/lib/" + multiarch + "/security");
  }
  for (const char* d :
       {"/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security",
        "/lib/aarch64-linux-gnu/security", "/usr/lib/aarch64-linux-gnu/security", "/lib/security",
        "/usr/lib/security", "/lib64/security", "/usr/lib64/security"}) {
    dirs.emplace_back(d);
  }
  std::string installed = PBX_MODULE_INSTALL_DIR;
  if (!installed.empty()) dirs.push_back(installed);
  std::vector<std::string> out;
  for (const auto& d : dirs) {
    std::string p = d + "/" + kModuleName;
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

}  // namespace

const char* status_name(Status s) {
  switch (s) {
    case Status::kPass:
      return "PASS";
    case Status::kWarn:
      return "WARN";
    case Status::kFail:
      return "FAIL";
  }
  return "FAIL";
}

std::vector<Check> check_config(const Facts& f) {
  const Session& s = f.session;
  Check c{"config", Status::kPass, "", ""};
  if (s.config_error) {
    c.status = Status::kFail;
    c.message = s.config_error->message;
    c.fix =
        "correct the file (root-owned, not writable by group or others, no symlink; keys "
        "and values as in pbx-mfa.conf(5)); the module refuses every login meanwhile";
    return {c};
  }
  struct stat st {};
  if (::lstat(s.config_path.c_str(), &st) != 0) {
    c.message = s.config_path + " not present: all defaults";
    return {c};
  }
  c.message = s.config_path + " parses; owned by uid " + std::to_string(st.st_uid) + ", mode " +
              octal(st.st_mode) + " (not writable by group or others)";
  return {c};
}

std::vector<Check> check_state_dir(const Facts& f) {
  Check c{"state-dir", Status::kPass, "", ""};
  const std::string& dir = f.session.config.state_dir;
  uid_t owner = f.session.config.trusted_uid;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      c.status = Status::kWarn;
      c.message = "state_dir " + dir + " does not exist yet: created on first use (by root)";
      c.fix = "nothing to do, or create it now: install -d -m 0700 -o root -g root " + dir;
      return {c};
    }
    c.status = Status::kFail;
    c.message = "state_dir " + dir + ": " + std::strerror(errno);
    c.fix = "make it a root-owned directory: install -d -m 0700 -o root -g root " + dir;
    return {c};
  }
  if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
    c.status = Status::kFail;
    c.message = "state_dir " + dir +
                (S_ISLNK(st.st_mode) ? " is a symbolic link" : " is not a directory") +
                ": every login fails closed";
    c.fix = "replace it with a real directory: install -d -m 0700 -o root -g root " + dir;
    return {c};
  }
  if (st.st_uid != owner || (st.st_mode & 077) != 0) {
    c.status = Status::kFail;
    c.message = "state_dir " + dir + " is owned by uid " + std::to_string(st.st_uid) +
                " with mode " + octal(st.st_mode) + " (must be uid " + std::to_string(owner) +
                ", 0700): every login fails closed";
    c.fix = "chown " + std::to_string(owner) + ":0 " + dir + " && chmod 0700 " + dir;
    return {c};
  }
  c.message = "state_dir " + dir + " is a directory of uid " + std::to_string(owner) +
              " with mode " + octal(st.st_mode);
  return {c};
}

std::vector<Check> check_module(const Facts& f) {
  const std::string& module = f.options.module;
  Check c{"module", Status::kPass, "", ""};
  std::vector<std::string> candidates =
      module.empty() ? module_candidates() : std::vector<std::string>{module};
  // A stack naming the module by path loads that file: check it first.
  if (module.empty()) {
    std::vector<std::string> named = module_paths_in_stacks(f.pam);
    candidates.insert(candidates.begin(), named.begin(), named.end());
  }
  for (const auto& path : candidates) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode)) {
      c.status = Status::kFail;
      c.message = path + " is not a regular file";
      c.fix = "reinstall the package (or cmake --install)";
      return {c};
    }
    if (st.st_uid != f.session.config.trusted_uid || (st.st_mode & 022) != 0) {
      c.status = Status::kFail;
      c.message = path + " is owned by uid " + std::to_string(st.st_uid) + " with mode " +
                  octal(st.st_mode) + ": whoever can change it controls every login";
      c.fix = "chown root:root " + path;
      c.fix += " && chmod 0644 " + path;
      return {c};
    }
    c.message = "installed: " + path;
    return {c};
  }
  c.status = Status::kFail;
  c.message = module.empty() ? std::string(kModuleName) +
                                   " not found in the PAM module "
                                   "directories (" +
                                   candidates.front() + ", ...)"
                             : module + " not found";
  c.fix =
      "install the libpam-pbx-totp package, or run cmake --install with the Debian multiarch "
      "layout";
  return {c};
}

std::vector<Check> check_clock(const Facts& f) {
  Check c{"clock", Status::kWarn, "", ""};
  const auto& run = f.session.env.run_program;
  if (run) {
    auto td = run({"/usr/bin/timedatectl", "show", "-p", "NTPSynchronized", "--value"});
    if (td && td->exit_code == 0) {
      std::string v = totp::to_lower(totp::trim(td->out.substr(0, td->out.find('\n'))));
      if (v == "yes") {
        c.status = Status::kPass;
        c.message = "synchronised (timedatectl: NTPSynchronized=yes)";
        return {c};
      }
      if (v == "no") {
        c.message =
            "not synchronised (timedatectl: NTPSynchronized=no): codes fail when the "
            "clock is off by more than the window";
        c.fix = "enable time sync: timedatectl set-ntp true (or install chrony)";
        return {c};
      }
    }
    auto ch = run({"/usr/bin/chronyc", "-n", "tracking"});
    if (ch && ch->exit_code == 0) {
      for (std::string_view line : totp::split_lines(ch->out)) {
        if (totp::to_lower(line).rfind("leap status", 0) != 0) continue;
        std::string_view v = totp::trim(line.substr(line.find(':') + 1));
        if (v == "Normal") {
          c.status = Status::kPass;
          c.message = "synchronised (chronyc: Leap status Normal)";
          return {c};
        }
        c.message = "chronyc reports '" + std::string(v) + "': the clock is not synchronised";
        c.fix = "check chronyd's sources: chronyc sources";
        return {c};
      }
    }
  }
  c.message = "clock synchronisation unknown (no answer from timedatectl or chronyc)";
  c.fix = "make sure NTP runs (systemd-timesyncd or chrony): codes fail when the clock drifts";
  return {c};
}

}  // namespace pbx::cli::doctor

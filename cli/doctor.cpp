// doctor: check config, state dir, module, PAM stacks, sshd settings and the clock.
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "commands.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/seal.hpp"

#ifndef PBX_MODULE_INSTALL_DIR
#define PBX_MODULE_INSTALL_DIR ""
#endif
#ifndef PBX_MULTIARCH
#define PBX_MULTIARCH ""
#endif

namespace pbx::cli {
namespace {

constexpr const char* kModuleName = "pam_pbx_totp.so";
constexpr std::size_t kMaxTextFile = std::size_t{1024} * 1024;
constexpr int kMaxIncludeDepth = 16;
constexpr std::size_t kMaxIncludedFiles = 256;

enum class Status { kPass, kWarn, kFail };

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
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    std::size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

std::string octal(mode_t mode) {
  char buf[16];
  (void)std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Reads a configuration file: never blocks on a FIFO, refuses non-regular files, caps size.
std::optional<std::string> read_text(const std::string& path, std::string& error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = "not a regular file";
    return std::nullopt;
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxTextFile) {
    ::close(fd);
    error = "larger than 1 MiB";
    return std::nullopt;
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxTextFile) {
      ::close(fd);
      error = "larger than 1 MiB";
      return std::nullopt;
    }
  }
  ::close(fd);
  return text;
}

std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    lines.emplace_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return lines;
}

// ---- config, state_dir, module ----

Check check_config(const Session& s) {
  Check c{"config", Status::kPass, "", ""};
  if (s.config_error) {
    c.status = Status::kFail;
    c.message = s.config_error->message;
    c.fix =
        "correct the file (root-owned, not writable by group or others, no symlink; keys "
        "and values as in pbx-mfa.conf(5)); the module refuses every login meanwhile";
    return c;
  }
  struct stat st {};
  if (::lstat(s.config_path.c_str(), &st) != 0) {
    c.message = s.config_path + " not present: all defaults";
    return c;
  }
  c.message = s.config_path + " parses; owned by uid " + std::to_string(st.st_uid) + ", mode " +
              octal(st.st_mode) + " (not writable by group or others)";
  return c;
}

Check check_state_dir(const Session& s) {
  Check c{"state-dir", Status::kPass, "", ""};
  const std::string& dir = s.config.state_dir;
  uid_t owner = s.config.trusted_uid;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      c.status = Status::kWarn;
      c.message = "state_dir " + dir + " does not exist yet: created on first use (by root)";
      c.fix = "nothing to do, or create it now: install -d -m 0700 -o root -g root " + dir;
      return c;
    }
    c.status = Status::kFail;
    c.message = "state_dir " + dir + ": " + std::strerror(errno);
    c.fix = "make it a root-owned directory: install -d -m 0700 -o root -g root " + dir;
    return c;
  }
  if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
    c.status = Status::kFail;
    c.message = "state_dir " + dir +
                (S_ISLNK(st.st_mode) ? " is a symbolic link" : " is not a directory") +
                ": every login fails closed";
    c.fix = "replace it with a real directory: install -d -m 0700 -o root -g root " + dir;
    return c;
  }
  if (st.st_uid != owner || (st.st_mode & 077) != 0) {
    c.status = Status::kFail;
    c.message = "state_dir " + dir + " is owned by uid " + std::to_string(st.st_uid) +
                " with mode " + octal(st.st_mode) + " (must be uid " + std::to_string(owner) +
                ", 0700): every login fails closed";
    c.fix = "chown " + std::to_string(owner) + ":0 " + dir + " && chmod 0700 " + dir;
    return c;
  }
  c.message = "state_dir " + dir + " is a directory of uid " + std::to_string(owner) +
              " with mode " + octal(st.st_mode);
  return c;
}

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

Check check_module(const Session& s, const DoctorOptions& o) {
  Check c{"module", Status::kPass, "", ""};
  std::vector<std::string> candidates =
      o.module.empty() ? module_candidates() : std::vector<std::string>{o.module};
  for (const auto& path : candidates) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode)) {
      c.status = Status::kFail;
      c.message = path + " is not a regular file";
      c.fix = "reinstall the package (or cmake --install)";
      return c;
    }
    if (st.st_uid != s.config.trusted_uid || (st.st_mode & 022) != 0) {
      c.status = Status::kFail;
      c.message = path + " is owned by uid " + std::to_string(st.st_uid) + " with mode " +
                  octal(st.st_mode) + ": whoever can change it controls every login";
      c.fix = "chown root:root " + path + " && chmod 0644 " + path;
      return c;
    }
    c.message = "installed: " + path;
    return c;
  }
  c.status = Status::kFail;
  c.message = o.module.empty() ? std::string(kModuleName) +
                                     " not found in the PAM module "
                                     "directories (" +
                                     candidates.front() + ", ...)"
                               : o.module + " not found";
  c.fix =
      "install the libpam-pbx-totp package, or run cmake --install with the Debian multiarch "
      "layout";
  return c;
}

// ---- PAM stacks ----

struct PamEntry {
  std::string control;
  std::string module;  // base name
  std::vector<std::string> args;
  std::string where;  // FILE:LINE
};

// Splits a PAM line into fields; a field opening with '[' runs to the matching ']'.
std::vector<std::string> pam_fields(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::size_t start = i;
    if (line[i] == '[') {
      // Shown to people: white space inside the brackets (a continued line) becomes one space.
      std::size_t close = line.find(']', i);
      i = close == std::string_view::npos ? line.size() : close + 1;
      std::string field;
      for (char c : line.substr(start, i - start)) {
        bool space = c == ' ' || c == '\t';
        if (space && !field.empty() && field.back() == ' ') continue;
        field.push_back(space ? ' ' : c);
      }
      out.push_back(std::move(field));
      continue;
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    }
    out.emplace_back(line.substr(start, i - start));
  }
  return out;
}

std::string base_name(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool is_password_module(const std::string& module) {
  static const std::set<std::string> kPasswordModules = {
      "pam_unix.so", "pam_unix2.so",   "pam_sss.so",         "pam_ldap.so",
      "pam_krb5.so", "pam_winbind.so", "pam_userdb.so",      "pam_radius_auth.so",
      "pam_pwdb.so", "pam_tacplus.so", "pam_systemd_home.so"};
  return kPasswordModules.count(module) > 0;
}

class PamReader {
 public:
  explicit PamReader(std::string dir) : dir_(std::move(dir)) {}

  // The auth lines of `service`, with @include, include and substack expanded.
  std::vector<PamEntry> auth_stack(const std::string& service) {
    std::vector<PamEntry> out;
    expand(service, 0, out);
    return out;
  }

  const std::set<std::string>& included() const { return included_; }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  void expand(const std::string& service, int depth, std::vector<PamEntry>& out) {
    if (depth > kMaxIncludeDepth) {
      std::string p = service + ": includes nested too deep (a loop?)";
      if (std::find(problems_.begin(), problems_.end(), p) == problems_.end()) {
        problems_.push_back(p);
      }
      return;
    }
    if (service.empty() || service.find('/') != std::string::npos) {
      problems_.push_back("include of '" + service + "' outside " + dir_ + " not followed");
      return;
    }
    std::string path = dir_ + "/" + service;
    std::string error;
    auto text = read_text(path, error);
    if (!text) {
      if (depth > 0) problems_.push_back(path + " (included): " + error);
      return;
    }
    std::vector<std::string> lines = lines_of(*text);
    std::string joined;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      std::string line = lines[i];
      std::size_t hash = line.find('#');
      if (hash != std::string::npos) line.erase(hash);
      // A trailing backslash continues the line.
      std::string_view t = trim(line);
      if (!t.empty() && t.back() == '\\') {
        joined += std::string(t.substr(0, t.size() - 1)) + " ";
        continue;
      }
      joined += line;
      std::string where = path + ":" + std::to_string(i + 1);
      std::vector<std::string> f = pam_fields(joined);
      joined.clear();
      if (f.empty()) continue;
      if (f[0] == "@include") {
        if (f.size() >= 2) {
          included_.insert(f[1]);
          expand(f[1], depth + 1, out);
        }
        continue;
      }
      std::string type = lower(f[0]);
      if (!type.empty() && type.front() == '-') type.erase(0, 1);
      if (type != "auth" || f.size() < 3) continue;
      if (f[1] == "include" || f[1] == "substack") {
        included_.insert(f[2]);
        expand(f[2], depth + 1, out);
        continue;
      }
      PamEntry e;
      e.control = f[1];
      e.module = base_name(f[2]);
      e.args.assign(f.begin() + 3, f.end());
      e.where = where;
      out.push_back(std::move(e));
    }
  }

  std::string dir_;
  std::set<std::string> included_;
  std::vector<std::string> problems_;
};

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

void check_pam(const DoctorOptions& o, bool enroll_default, std::vector<Check>& checks) {
  Check summary{"pam-stacks", Status::kPass, "", ""};
  DIR* dir = ::opendir(o.pam_dir.c_str());
  if (dir == nullptr) {
    summary.status = Status::kFail;
    summary.message = "cannot read " + o.pam_dir + ": " + std::strerror(errno);
    summary.fix = "name the PAM configuration directory with --pam-dir";
    checks.push_back(summary);
    return;
  }
  std::vector<std::string> names;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string name = ent->d_name;
    if (name == "." || name == ".." || skipped_pam_file(name)) continue;
    struct stat st {};
    if (::stat((o.pam_dir + "/" + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());

  PamReader reader(o.pam_dir);
  std::map<std::string, std::vector<PamEntry>> stacks;
  for (const auto& name : names) stacks[name] = reader.auth_stack(name);
  std::vector<std::string> users;  // services (not include files) whose auth stack has us
  for (const auto& [name, stack] : stacks) {
    if (reader.included().count(name) > 0) continue;
    bool ours = std::any_of(stack.begin(), stack.end(),
                            [](const PamEntry& e) { return e.module == kModuleName; });
    if (ours) users.push_back(name);
  }
  if (users.empty()) {
    summary.status = Status::kFail;
    summary.message =
        "no PAM service in " + o.pam_dir + " uses " + kModuleName + ": nobody is asked for a code";
    summary.fix = "add 'auth required " + std::string(kModuleName) + "' after '@include " +
                  "common-auth' in " + o.pam_dir + "/sshd (or enable it with pam-auth-update)";
  } else {
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    summary.message = kModuleName + std::string(" is in the auth stack of: ") + list;
  }
  for (const auto& p : reader.problems()) {
    if (summary.status == Status::kPass) summary.status = Status::kWarn;
    summary.message += "; " + p;
    if (summary.fix.empty()) summary.fix = "fix the include named above";
  }
  checks.push_back(summary);
  for (const auto& u : users) checks.push_back(check_one_stack(u, stacks[u], enroll_default));
  if (stacks.count("sshd") > 0 && std::find(users.begin(), users.end(), "sshd") == users.end() &&
      reader.included().count("sshd") == 0) {
    checks.push_back(
        {"pam:sshd", Status::kWarn,
         o.pam_dir + "/sshd does not use " + kModuleName + ": ssh logins are not asked for a code",
         "add 'auth required " + std::string(kModuleName) + "' after '@include common-auth' in " +
             o.pam_dir + "/sshd"});
  }
}

// ---- sshd ----

struct SshdValue {
  std::string value;  // everything after the keyword
  std::string where;  // FILE:LINE
};

struct SshdConfig {
  std::map<std::string, SshdValue> global;   // lower-case keyword, first value wins
  std::vector<std::string> match_overrides;  // relevant settings inside Match blocks
  int match_blocks = 0;
  std::size_t files = 0;
  std::vector<std::string> problems;
};

const std::set<std::string>& relevant_sshd_keys() {
  static const std::set<std::string> kKeys = {"usepam", "kbdinteractiveauthentication",
                                              "authenticationmethods", "passwordauthentication",
                                              "pubkeyauthentication"};
  return kKeys;
}

class SshdReader {
 public:
  explicit SshdReader(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  // false when the top file itself cannot be read (the error is in `error`).
  bool read(const std::string& path, SshdConfig& out, std::string& error) {
    auto text = read_text(path, error);
    if (!text) return false;
    parse(path, *text, false, 0, out);
    return true;
  }

 private:
  void parse(const std::string& path, const std::string& text, bool in_match, int depth,
             SshdConfig& out) {
    ++out.files;
    std::vector<std::string> lines = lines_of(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      std::string_view line = trim(lines[i]);
      if (line.empty() || line.front() == '#') continue;
      std::string where = path + ":" + std::to_string(i + 1);
      // "Keyword value", "Keyword=value" or "Keyword = value".
      std::size_t end = line.find_first_of(" \t=");
      std::string key = lower(line.substr(0, end));
      std::string_view value =
          end == std::string_view::npos ? std::string_view{} : line.substr(end);
      value = trim(value);
      if (!value.empty() && value.front() == '=') value = trim(value.substr(1));
      if (key == "challengeresponseauthentication") key = "kbdinteractiveauthentication";
      if (key == "match") {
        in_match = true;  // until the end of this file: sshd has no end marker
        ++out.match_blocks;
        continue;
      }
      if (key == "include") {
        include(value, where, in_match, depth, out);
        continue;
      }
      if (relevant_sshd_keys().count(key) == 0) continue;
      if (in_match) {
        out.match_overrides.push_back(where + ": " + std::string(line));
      } else if (out.global.count(key) == 0) {
        out.global[key] = SshdValue{std::string(value), where};
      }
    }
  }

  void include(std::string_view value, const std::string& where, bool in_match, int depth,
               SshdConfig& out) {
    if (depth >= kMaxIncludeDepth) {
      out.problems.push_back(where + ": Include nested too deep (a loop?)");
      return;
    }
    for (const auto& word : split_words(value)) {
      std::string pattern = word;
      if (pattern.size() >= 2 && pattern.front() == '"' && pattern.back() == '"') {
        pattern = pattern.substr(1, pattern.size() - 2);
      }
      // Relative names are relative to the directory of the top file, as sshd takes them
      // relative to /etc/ssh.
      if (pattern.empty()) continue;
      if (pattern.front() != '/') pattern = base_dir_ + "/" + pattern;
      glob_t g{};
      int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
      if (rc == 0) {
        for (std::size_t k = 0; k < g.gl_pathc; ++k) {
          std::string file = g.gl_pathv[k];
          if (out.files >= kMaxIncludedFiles) {
            out.problems.push_back(where + ": too many included files");
            break;
          }
          std::string error;
          auto text = read_text(file, error);
          if (!text) {
            out.problems.push_back(where + ": Include " + file + ": " + error);
            continue;
          }
          parse(file, *text, in_match, depth + 1, out);
        }
      }
      ::globfree(&g);
    }
  }

  std::string base_dir_;
};

std::string first_word(const std::string& value) {
  auto words = split_words(value);
  return words.empty() ? std::string() : lower(words[0]);
}

void check_sshd(const DoctorOptions& o, std::vector<Check>& checks) {
  Check file{"sshd-config", Status::kPass, "", ""};
  std::string dir = o.sshd_config;
  std::size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : dir.substr(0, slash));
  SshdReader reader(dir);
  SshdConfig cfg;
  std::string error;
  if (!reader.read(o.sshd_config, cfg, error)) {
    bool missing = error == std::strerror(ENOENT);
    if (missing && !o.sshd_config_given) {
      file.status = Status::kWarn;
      file.message = o.sshd_config +
                     " not found (is openssh-server installed?): sshd checks "
                     "skipped";
      file.fix = "name the server configuration with --sshd-config";
    } else {
      file.status = Status::kFail;
      file.message = "cannot read " + o.sshd_config + ": " + error;
      file.fix = "name a readable sshd configuration with --sshd-config";
    }
    checks.push_back(file);
    return;
  }
  file.message = "read " + o.sshd_config +
                 (cfg.files > 1 ? " and " + std::to_string(cfg.files - 1) + " included file" +
                                      (cfg.files > 2 ? "s" : "")
                                : std::string());
  for (const auto& p : cfg.problems) {
    file.status = Status::kWarn;
    file.message += "; " + p;
    file.fix = "fix the Include named above";
  }
  checks.push_back(file);

  auto get = [&](const char* key) -> const SshdValue* {
    auto it = cfg.global.find(key);
    return it == cfg.global.end() ? nullptr : &it->second;
  };
  auto is_no = [](const SshdValue* v) { return v != nullptr && first_word(v->value) == "no"; };
  auto at = [](const SshdValue* v) { return " (" + v->where + ")"; };

  // UsePAM: OpenSSH's default is no; Debian's file says yes.
  const SshdValue* use_pam = get("usepam");
  if (use_pam == nullptr) {
    checks.push_back({"sshd-usepam", Status::kFail,
                      "UsePAM is not set and OpenSSH's default is no: sshd never runs the PAM "
                      "stack",
                      "add 'UsePAM yes' to " + o.sshd_config + " and reload sshd"});
  } else if (first_word(use_pam->value) != "yes") {
    checks.push_back({"sshd-usepam", Status::kFail,
                      "UsePAM " + use_pam->value + at(use_pam) +
                          ": sshd never runs the PAM stack, so no code is asked",
                      "set 'UsePAM yes' and reload sshd"});
  } else {
    checks.push_back({"sshd-usepam", Status::kPass, "UsePAM yes" + at(use_pam), ""});
  }

  // KbdInteractiveAuthentication (ChallengeResponseAuthentication before OpenSSH 8.7): the
  // method that lets PAM ask for the code. Default yes; Debian's file sets it to no.
  const SshdValue* kbd = get("kbdinteractiveauthentication");
  if (kbd == nullptr) {
    checks.push_back({"sshd-kbdinteractive", Status::kPass,
                      "KbdInteractiveAuthentication not set: OpenSSH's default is yes", ""});
  } else if (is_no(kbd)) {
    checks.push_back({"sshd-kbdinteractive", Status::kFail,
                      "KbdInteractiveAuthentication no" + at(kbd) +
                          ": sshd cannot ask for the code (Debian ships this line)",
                      "set 'KbdInteractiveAuthentication yes' (ChallengeResponseAuthentication "
                      "yes on OpenSSH before 8.7) and reload sshd"});
  } else {
    checks.push_back({"sshd-kbdinteractive", Status::kPass,
                      "KbdInteractiveAuthentication " + kbd->value + at(kbd), ""});
  }

  // AuthenticationMethods: each space-separated list is one way in; a list without
  // keyboard-interactive is a way in without the code.
  const SshdValue* methods = get("authenticationmethods");
  const SshdValue* pubkey = get("pubkeyauthentication");
  bool pubkey_on = !is_no(pubkey);
  std::vector<std::vector<std::string>> lists;
  if (methods != nullptr && first_word(methods->value) != "any") {
    for (const auto& list : split_words(methods->value)) {
      std::vector<std::string> m;
      std::string_view rest = list;
      while (!rest.empty()) {
        std::size_t comma = rest.find(',');
        std::string name = lower(rest.substr(0, comma));
        if (std::size_t colon = name.find(':'); colon != std::string::npos) name.erase(colon);
        if (!name.empty()) m.push_back(name);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
      lists.push_back(m);
    }
  }
  auto has = [](const std::vector<std::string>& l, const char* name) {
    return std::find(l.begin(), l.end(), name) != l.end();
  };
  std::string want = "AuthenticationMethods publickey,keyboard-interactive";
  if (lists.empty()) {
    if (pubkey_on) {
      checks.push_back(
          {"sshd-authmethods", Status::kWarn,
           std::string(methods == nullptr ? "AuthenticationMethods is not set"
                                          : "AuthenticationMethods any" + at(methods)) +
               ": a public-key login skips the second factor (sshd does not run the PAM auth "
               "stack for it)",
           "require both with '" + want + "' (or 'keyboard-interactive' alone)"});
    } else {
      checks.push_back({"sshd-authmethods", Status::kPass,
                        "public-key logins are off (PubkeyAuthentication no" + at(pubkey) + ")",
                        ""});
    }
  } else {
    std::vector<std::string> bypass;
    for (std::size_t i = 0; i < lists.size(); ++i) {
      if (!has(lists[i], "keyboard-interactive")) bypass.push_back(split_words(methods->value)[i]);
    }
    if (bypass.empty()) {
      checks.push_back({"sshd-authmethods", Status::kPass,
                        "AuthenticationMethods " + methods->value + at(methods) +
                            ": every login needs keyboard-interactive",
                        ""});
    } else {
      std::string names;
      for (const auto& b : bypass) names += (names.empty() ? "" : "', '") + b;
      checks.push_back({"sshd-authmethods", Status::kWarn,
                        "AuthenticationMethods " + methods->value + at(methods) + ": '" + names +
                            "' lets a login in without keyboard-interactive, so without the "
                            "code",
                        "add keyboard-interactive to every list, e.g. '" + want + "'"});
    }
  }

  // PasswordAuthentication: sshd's password method answers every PAM prompt with the
  // password, so the code cannot be asked that way (and each try counts as a failure).
  const SshdValue* password = get("passwordauthentication");
  bool password_on = !is_no(password);
  bool password_allowed =
      lists.empty() ||
      std::any_of(lists.begin(), lists.end(), [&](const auto& l) { return has(l, "password"); });
  if (password_on && password_allowed) {
    checks.push_back(
        {"sshd-password", Status::kWarn,
         std::string(password == nullptr ? "PasswordAuthentication not set (default yes)"
                                         : "PasswordAuthentication yes" + at(password)) +
             ": the password method bypasses keyboard-interactive and cannot ask for the code; "
             "enrolled users fail that way and collect failures",
         "set 'PasswordAuthentication no': keyboard-interactive still asks for the password, "
         "then the code"});
  } else {
    checks.push_back({"sshd-password", Status::kPass,
                      password_on ? "the password method is not in AuthenticationMethods"
                                  : "PasswordAuthentication no" + at(password),
                      ""});
  }

  if (cfg.match_overrides.empty()) {
    checks.push_back({"sshd-match", Status::kPass,
                      cfg.match_blocks == 0
                          ? std::string("no Match blocks")
                          : std::to_string(cfg.match_blocks) +
                                " Match block(s); none changes the settings checked above",
                      ""});
  } else {
    std::string list;
    for (const auto& m : cfg.match_overrides) list += (list.empty() ? "" : "; ") + m;
    checks.push_back({"sshd-match", Status::kWarn,
                      "Match blocks change the settings checked above for some logins: " + list,
                      "check that the users and hosts matched there still need "
                      "keyboard-interactive and the code"});
  }
}

// ---- clock ----

Check check_clock(const Session& s) {
  Check c{"clock", Status::kWarn, "", ""};
  const auto& run = s.env.run_program;
  if (run) {
    auto td = run({"/usr/bin/timedatectl", "show", "-p", "NTPSynchronized", "--value"});
    if (td && td->exit_code == 0) {
      std::string v = lower(trim(td->out.substr(0, td->out.find('\n'))));
      if (v == "yes") {
        c.status = Status::kPass;
        c.message = "synchronised (timedatectl: NTPSynchronized=yes)";
        return c;
      }
      if (v == "no") {
        c.message =
            "not synchronised (timedatectl: NTPSynchronized=no): codes fail when the "
            "clock is off by more than the window";
        c.fix = "enable time sync: timedatectl set-ntp true (or install chrony)";
        return c;
      }
    }
    auto ch = run({"/usr/bin/chronyc", "-n", "tracking"});
    if (ch && ch->exit_code == 0) {
      for (const auto& line : lines_of(ch->out)) {
        if (lower(line).rfind("leap status", 0) != 0) continue;
        std::string_view v = trim(std::string_view(line).substr(line.find(':') + 1));
        if (v == "Normal") {
          c.status = Status::kPass;
          c.message = "synchronised (chronyc: Leap status Normal)";
          return c;
        }
        c.message = "chronyc reports '" + std::string(v) + "': the clock is not synchronised";
        c.fix = "check chronyd's sources: chronyc sources";
        return c;
      }
    }
  }
  c.message = "clock synchronisation unknown (no answer from timedatectl or chronyc)";
  c.fix = "make sure NTP runs (systemd-timesyncd or chrony): codes fail when the clock drifts";
  return c;
}

// ---- store = postgresql: plugin, fleet key, connection, TLS, schema, break-glass ----

void check_database(const Session& s, std::vector<Check>& checks) {
  const totp::Config& c = s.config;
  // A password in pg_conninfo is the database role's password in a file every user may read.
  std::string conninfo = lower(c.pg_conninfo);
  if (conninfo.find("password") != std::string::npos ||
      (conninfo.rfind("postgres", 0) == 0 && conninfo.find('@') != std::string::npos &&
       conninfo.find(':', conninfo.find("//") + 2) < conninfo.find('@'))) {
    struct stat st {};
    bool readable = ::stat(s.config_path.c_str(), &st) != 0 || (st.st_mode & 0044) != 0;
    checks.push_back({"db-password", readable ? Status::kFail : Status::kWarn,
                      std::string("pg_conninfo holds a password") +
                          (readable ? ", in a config file others can read" : ""),
                      "put it in a root-only file named by passfile= (mode 0600), or use a "
                      "client certificate (sslcert=, sslkey=)"});
  }
  auto key = totp::load_fleet_key(c.fleet_key, c.trusted_uid);
  if (key) {
    checks.push_back({"fleet-key", Status::kPass, c.fleet_key + ": 32 bytes, root-only", ""});
  } else {
    checks.push_back({"fleet-key", Status::kFail, key.error().message,
                      "copy the fleet key from a server of the fleet (install -m 0400 -o root), "
                      "or run 'pbx-mfa db init' on the first server"});
  }
  auto report = totp::db_probe(c);
  if (!report) {
    checks.push_back({"db-connect", Status::kFail, report.error().message,
                      report.error().code == totp::Errc::kUnavailable
                          ? "check pg_conninfo, that the server runs and that this host may "
                            "connect (pg_hba.conf); logins fail closed until then"
                          : "check pg_plugin and pg_conninfo in " + s.config_path});
  } else {
    const totp::DbReport& r = *report;
    std::string where = r.unix_socket ? "socket " + r.host : r.host + ":" + r.port;
    Check conn{"db-connect", Status::kPass,
               "connected to " + where + " database " + r.dbname + " as " + r.user + " (server " +
                   r.server_version + ") in " + std::to_string(r.connect_ms) + " ms",
               ""};
    if (r.connect_ms * 2 > c.pg_timeout_ms) {
      conn.status = Status::kWarn;
      conn.message += ", more than half of pg_timeout_ms (" + std::to_string(c.pg_timeout_ms) + ")";
      conn.fix = "a slower answer fails logins closed: raise pg_timeout_ms or use a nearer server";
    }
    checks.push_back(conn);
    if (r.unix_socket) {
      checks.push_back({"db-tls", Status::kPass, "Unix socket: nothing crosses the network", ""});
    } else if (r.ssl && (r.sslmode == "verify-full" || r.sslmode == "verify-ca")) {
      checks.push_back({"db-tls", Status::kPass,
                        r.ssl_protocol + " " + r.ssl_cipher + ", sslmode=" + r.sslmode, ""});
    } else {
      checks.push_back(
          {"db-tls", Status::kWarn,
           r.ssl ? "TLS (" + r.ssl_protocol + ") without verifying the server: sslmode=" + r.sslmode
                 : "TCP without TLS: login state crosses the network in clear",
           "add sslmode=verify-full sslrootcert=/etc/ssl/certs/YOUR-CA.pem to pg_conninfo "
           "(and sslcert/sslkey for client certificates)"});
    }
    if (r.schema_version == 0) {
      checks.push_back({"db-schema", Status::kFail, "the database has no pbx-mfa schema",
                        "run 'pbx-mfa db init'"});
    } else if (r.schema_version != totp::kDbSchemaVersion) {
      checks.push_back({"db-schema", Status::kFail,
                        "schema version " + std::to_string(r.schema_version) +
                            ", this pbx-mfa "
                            "uses " +
                            std::to_string(totp::kDbSchemaVersion),
                        "run 'pbx-mfa db init' with the newer pbx-mfa"});
    } else {
      checks.push_back({"db-schema", Status::kPass,
                        "version " + std::to_string(r.schema_version) + ", " +
                            std::to_string(r.enrollments) + " enrollments",
                        ""});
      if (r.key == totp::KeyCheck::kMatches) {
        checks.push_back({"db-key", Status::kPass, "the fleet key opens this database's rows", ""});
      } else if (r.key == totp::KeyCheck::kDiffers) {
        checks.push_back({"db-key", Status::kFail,
                          "the fleet key is not the one this database was set up with: every "
                          "login would be refused",
                          "copy the fleet key from a server of the fleet"});
      }
    }
  }
  auto left = totp::break_glass_left(c);
  if (!left) {
    checks.push_back({"break-glass", Status::kFail, left.error().message,
                      "run 'pbx-mfa break-glass' to write a fresh set"});
  } else if (*left <= 0) {
    checks.push_back({"break-glass", Status::kWarn,
                      "no unused break-glass codes on this host: while the database cannot be "
                      "reached nobody can log in with a second factor",
                      "run 'pbx-mfa break-glass' and keep the codes offline"});
  } else {
    checks.push_back({"break-glass", Status::kPass,
                      std::to_string(*left) + " unused break-glass codes on this host", ""});
  }
}

int run_doctor(Session& s, const DoctorOptions& o) {
  std::vector<Check> checks;
  checks.push_back(check_config(s));
  checks.push_back(check_state_dir(s));
  if (s.config.store == "postgresql" && !s.config_error) check_database(s, checks);
  checks.push_back(check_module(s, o));
  check_pam(o, s.config.enroll_at_login, checks);
  check_sshd(o, checks);
  checks.push_back(check_clock(s));

  int fails = 0;
  int warns = 0;
  for (const auto& c : checks) {
    if (c.status == Status::kFail) ++fails;
    if (c.status == Status::kWarn) ++warns;
  }
  if (o.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : checks) {
      list.push_back({{"name", c.name},
                      {"status", status_name(c.status)},
                      {"message", c.message},
                      {"fix", c.fix}});
    }
    print_json(s, {{"checks", list}, {"ok", fails == 0}});
  } else {
    for (const auto& c : checks) {
      s.out() << status_name(c.status) << "  " << c.name << ": " << c.message;
      if (!c.fix.empty()) s.out() << ". Fix: " << c.fix;
      s.out() << "\n";
    }
    s.out() << "doctor: " << checks.size() << " checks, " << fails << " failed, " << warns
            << " warning" << (warns == 1 ? "" : "s") << "\n";
  }
  return fails > 0 ? kExitRejected : kExitOk;
}

}  // namespace

Command add_doctor(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "doctor", "check config, state dir, module, PAM stacks, sshd settings and the clock");
  auto o = std::make_shared<DoctorOptions>();
  sub->add_option("--pam-dir", o->pam_dir, "PAM configuration directory (default /etc/pam.d)");
  sub->add_option("--sshd-config", o->sshd_config,
                  "sshd configuration (default /etc/ssh/sshd_config; Include followed, relative "
                  "names taken from its directory)");
  sub->add_option("--module", o->module,
                  "the installed module to check (default: search the PAM module directories)");
  sub->add_flag("--json", o->json, "print one JSON object");
  sub->footer(
      "One line per check: PASS, WARN or FAIL, what was found and the fix. Exit status 1 "
      "when a check failed.");
  return {sub, [o, sub](Session& s) -> int {
            DoctorOptions opts = *o;
            opts.sshd_config_given = sub->count("--sshd-config") > 0;
            return run_doctor(s, opts);
          }};
}

}  // namespace pbx::cli

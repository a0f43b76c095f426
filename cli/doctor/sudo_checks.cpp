// The checks of the delegated helpdesk: sudoers files handing pbx-mfa to it, and its groups.
#include "sudo_checks.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

namespace pbx::cli::doctor {
namespace {

std::string trim(std::string s) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!s.empty() && space(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && space(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

bool holds(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The lines sudo parses: continuations joined, comments cut ('#' followed by a digit is a uid,
// "#include" a directive), blank lines dropped.
std::vector<std::string> logical_lines(const std::string& text) {
  std::vector<std::string> out;
  std::string line;
  std::size_t i = 0;
  while (i <= text.size()) {
    std::size_t end = text.find('\n', i);
    if (end == std::string::npos) end = text.size();
    std::string part = text.substr(i, end - i);
    i = end + 1;
    if (!part.empty() && part.back() == '\\') {
      part.pop_back();
      line += part + " ";
      if (i <= text.size()) continue;
    } else {
      line += part;
    }
    std::string t = trim(line);
    line.clear();
    if (t.rfind("#include", 0) == 0 || t.rfind("@include", 0) == 0) continue;
    for (std::size_t at = 0; (at = t.find('#', at)) != std::string::npos; ++at) {
      if (at + 1 < t.size() && std::isdigit(static_cast<unsigned char>(t[at + 1])) != 0) continue;
      t.erase(at);
      break;
    }
    t = trim(t);
    if (!t.empty()) out.push_back(t);
  }
  return out;
}

// Does `line` hold `word` not preceded by a letter, '_' or '!' and not followed by a letter/'_'?
bool has_word(const std::string& line, const std::string& word) {
  auto part = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  for (std::size_t at = 0; (at = line.find(word, at)) != std::string::npos; ++at) {
    bool before = at > 0 && (part(line[at - 1]) || line[at - 1] == '!');
    bool after = at + word.size() < line.size() && part(line[at + word.size()]);
    if (!before && !after) return true;
  }
  return false;
}

// The commands of a user specification: after the first '=', run-as lists "(...)" removed,
// split at ',' and ':' (tags end with ':').
std::vector<std::string> spec_commands(const std::string& line) {
  std::size_t eq = line.find('=');
  if (eq == std::string::npos) return {};
  std::string rest;
  int depth = 0;
  for (char c : line.substr(eq + 1)) {
    if (c == '(') ++depth;
    if (depth == 0) rest += c;
    if (c == ')' && depth > 0) --depth;
  }
  std::vector<std::string> out;
  std::string cur;
  for (char c : rest + ",") {
    if (c == ',' || c == ':') {
      if (auto t = trim(cur); !t.empty()) out.push_back(t);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

// The user list of a user specification ("%a,%b bob"): the first token once ", " is closed up.
std::vector<std::string> spec_users(const std::string& line) {
  std::string closed;
  for (std::size_t i = 0; i < line.size(); ++i) {
    closed += line[i];
    if (line[i] == ',') {
      while (i + 1 < line.size() && std::isspace(static_cast<unsigned char>(line[i + 1])) != 0) {
        ++i;
      }
    }
  }
  std::string first = closed.substr(0, closed.find_first_of(" \t"));
  std::vector<std::string> out;
  std::string cur;
  for (char c : first + ",") {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

// The run-as users of a user specification: what precedes ':' in each "(...)" after the first
// '=' ("(root)" -> root, "(ALL:ALL)" -> ALL, "(root,alice)" -> root, alice). None: root.
std::vector<std::string> spec_runas_users(const std::string& line) {
  std::vector<std::string> out;
  std::size_t eq = line.find('=');
  if (eq == std::string::npos) return out;
  for (std::size_t at = line.find('(', eq); at != std::string::npos; at = line.find('(', at + 1)) {
    std::size_t close = line.find(')', at);
    if (close == std::string::npos) break;
    std::string inside = line.substr(at + 1, close - at - 1);
    inside = inside.substr(0, inside.find(':'));
    std::string cur;
    for (char c : inside + ",") {
      if (c == ',') {
        if (auto t = trim(cur); !t.empty()) out.push_back(t);
        cur.clear();
      } else {
        cur += c;
      }
    }
  }
  return out;
}

struct Finding {
  Status status;
  std::string message;
  std::string fix;
};

// What the text grants and allows, as findings; `granted` collects the users given pbx-mfa.
std::vector<Finding> judge_text(const std::string& path, const std::string& text,
                                const totp::Config& config, std::vector<std::string>& granted) {
  std::vector<Finding> out;
  for (const auto& line : logical_lines(text)) {
    std::string first = line.substr(0, line.find_first_of(" \t:@!>"));
    if (first == "Defaults") {
      if (has_word(line, "setenv")) {
        out.push_back({Status::kFail,
                       "'" + line +
                           "' lets users set any variable, SUDO_UID too, and so escape "
                           "the helpdesk's limits",
                       "remove setenv"});
      }
      if (line.find("env_keep") != std::string::npos && line.find("SUDO_") != std::string::npos) {
        out.push_back({Status::kFail,
                       "'" + line +
                           "' keeps the caller's SUDO_* variables, so a helpdesk "
                           "member can forge SUDO_UID",
                       "remove SUDO_* from env_keep"});
      }
      if (line.find("!env_reset") != std::string::npos) {
        out.push_back({Status::kWarn,
                       "'" + line + "' passes the caller's environment to the commands",
                       "keep env_reset (the default)"});
      }
      continue;
    }
    if (first.size() > 6 && first.compare(first.size() - 6, 6, "_Alias") == 0) {
      // Who gets an alias's commands is decided elsewhere: doctor cannot tell helpdesk
      // members from full admins through it.
      if (first == "Cmnd_Alias" && line.find("pbx-mfa") != std::string::npos) {
        out.push_back({Status::kFail,
                       "'" + line +
                           "' puts pbx-mfa in a command alias: whoever is given the alias "
                           "runs pbx-mfa as root, helpdesk member or not",
                       "name /usr/bin/pbx-mfa directly in a %group rule of helpdesk_groups"});
      }
      continue;
    }
    const bool pbx = line.find("pbx-mfa") != std::string::npos;
    std::vector<std::string> desk_groups;
    std::vector<std::string> other_groups;
    for (const auto& u : spec_users(line)) {
      if (u.size() > 1 && u[0] == '%' && u[1] != ':') {
        (holds(config.helpdesk_groups, u.substr(1)) ? desk_groups : other_groups).push_back(u);
      }
    }
    if (!pbx && desk_groups.empty()) continue;
    if (has_word(line, "SETENV")) {
      out.push_back({Status::kFail,
                     "'" + line +
                         "' has the SETENV tag: a member can set SUDO_UID and escape "
                         "the helpdesk's limits",
                     "remove SETENV"});
    }
    if (pbx) {
      std::vector<std::string> others;
      for (const auto& r : spec_runas_users(line)) {
        if (r != "root" && r != "#0") others.push_back(r);
      }
      if (!others.empty()) {
        out.push_back({Status::kFail,
                       "'" + line + "' lets its users run pbx-mfa as " + join(others) +
                           ": as a user other than root pbx-mfa is that user, outside the "
                           "helpdesk's limits (sudo -u alice pbx-mfa recovery-codes)",
                       "run pbx-mfa as root only: ALL=(root) /usr/bin/pbx-mfa"});
      }
    }
    auto commands = spec_commands(line);
    if (!desk_groups.empty() && holds(commands, "ALL")) {
      out.push_back(
          {Status::kFail,
           "'" + line + "' gives " + join(desk_groups) + " the command ALL, which " +
               "implies SETENV: members are root anyway and can forge SUDO_UID",
           "grant only /usr/bin/pbx-mfa: " + desk_groups[0] + " ALL=(root) /usr/bin/pbx-mfa"});
    }
    if (pbx) {
      for (const auto& u : spec_users(line)) {
        if (!holds(granted, u)) granted.push_back(u);
      }
      for (const auto& g : other_groups) {
        out.push_back(
            {Status::kFail,
             "grants pbx-mfa to " + g +
                 ", which helpdesk_groups does not name: its "
                 "members run pbx-mfa as full root (reset root's enrollment, enroll anyone)",
             "add " + g.substr(1) + " to helpdesk_groups, or remove the rule from " + path});
      }
    }
  }
  return out;
}

bool relevant(const SudoersFile& f, const totp::Config& config) {
  std::string name = f.path.substr(f.path.rfind('/') + 1);
  if (name == kSudoersSnippet) return true;
  if (!f.text) return false;
  if (f.text->find("pbx-mfa") != std::string::npos) return true;
  return std::any_of(config.helpdesk_groups.begin(), config.helpdesk_groups.end(),
                     [&](const std::string& g) { return has_word(*f.text, "%" + g); });
}

Check judge_file(const SudoersFile& f, const totp::Config& config, const ProgramRunner& run) {
  std::vector<Finding> found;
  const std::string fix_owner = "chown root:root " + f.path + " && chmod 0440 " + f.path;
  if (f.is_link || !f.is_regular) {
    found.push_back({Status::kFail, f.is_link ? "is a symbolic link" : "is not a regular file",
                     "make it a regular file: install -m 0440 -o root -g root SOURCE " + f.path});
  } else {
    if (f.owner != 0) {
      found.push_back({Status::kFail,
                       "is owned by uid " + std::to_string(f.owner) +
                           ", not root: sudo refuses it, and its owner can change the rules",
                       fix_owner});
    }
    if ((f.mode & 022) != 0) {
      found.push_back({Status::kFail,
                       "has mode " + octal(f.mode) +
                           ": writable by group or others, who can "
                           "then grant themselves anything",
                       fix_owner});
    } else if ((f.mode & 07777) != 0440 && (f.mode & 07777) != 0400) {
      found.push_back({Status::kWarn, "has mode " + octal(f.mode) + " (sudoers files are 0440)",
                       "chmod 0440 " + f.path});
    }
  }
  std::vector<std::string> granted;
  if (!f.text) {
    found.push_back({Status::kFail, "cannot be read: " + f.error, "run doctor as root"});
  } else {
    auto text = judge_text(f.path, *f.text, config, granted);
    found.insert(found.end(), text.begin(), text.end());
    if (granted.empty()) {
      found.push_back({Status::kWarn, "grants pbx-mfa to nobody (the rule is commented out)",
                       "uncomment '%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa' with your group"});
    }
  }
  std::string syntax;
  if (f.is_regular && !f.is_link) {
    auto r = run ? run({kVisudo, "-c", "-f", f.path}) : std::nullopt;
    if (!r) {
      found.push_back(
          {Status::kWarn,
           std::string("cannot check its syntax: ") + kVisudo + " is missing or did not answer",
           "install sudo, then: visudo -c -f " + f.path});
    } else if (r->exit_code != 0) {
      found.push_back({Status::kFail,
                       "visudo -c -f says its syntax is wrong: sudo stops working for everyone "
                       "while it is in " +
                           std::string(kSudoersDir),
                       "visudo -f " + f.path + " (it shows where), or remove the file"});
    } else {
      syntax = ", visudo -c passes";
    }
  }
  Check c{"sudoers", Status::kPass, "", ""};
  std::vector<std::string> messages;
  std::vector<std::string> fixes;
  for (const auto& x : found) {
    if (x.status == Status::kFail || (x.status == Status::kWarn && c.status == Status::kPass)) {
      c.status = x.status;
    }
    messages.push_back(x.message);
    if (!holds(fixes, x.fix)) fixes.push_back(x.fix);
  }
  if (found.empty()) {
    c.message = f.path + ": root-owned, mode " + octal(f.mode) + syntax + "; grants pbx-mfa to " +
                join(granted) + " (no SETENV, no ALL, no SUDO_* kept)";
    return c;
  }
  c.message = f.path + ": " + join(messages, "; ");
  c.fix = join(fixes, "; ");
  return c;
}

}  // namespace

SudoersScan scan_sudoers_dir(const std::string& dir) {
  SudoersScan scan;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno != ENOENT) scan.error = std::strerror(errno);
    return scan;
  }
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    // sudo's #includedir skips these (sudoers(5)).
    if (name.find('.') != std::string::npos || name.empty() || name.back() == '~') continue;
    names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  DiskFiles disk;
  for (const auto& name : names) {
    SudoersFile f;
    f.path = dir;
    f.path.append("/").append(name);
    struct stat st {};
    if (::lstat(f.path.c_str(), &st) != 0) continue;
    f.is_link = S_ISLNK(st.st_mode);
    f.is_regular = S_ISREG(st.st_mode);
    f.owner = st.st_uid;
    f.mode = st.st_mode;
    if (!f.is_link && !f.is_regular) continue;  // sudo reads regular files only
    f.text = disk.read(f.path, f.error);
    scan.files.push_back(std::move(f));
  }
  return scan;
}

std::vector<Check> sudoers_checks(const SudoersScan& scan, const std::string& dir,
                                  const totp::Config& config, const ProgramRunner& run) {
  std::vector<Check> out;
  for (const auto& f : scan.files) {
    if (relevant(f, config)) out.push_back(judge_file(f, config, run));
  }
  if (!out.empty() || config.helpdesk_groups.empty()) return out;
  if (!scan.error.empty()) {
    return {{"sudoers", Status::kWarn,
             "helpdesk_groups is set but " + dir + " cannot be read (" + scan.error + ")",
             "run doctor as root"}};
  }
  return {{"sudoers", Status::kWarn,
           "helpdesk_groups is set but no file in " + dir + " grants pbx-mfa (a rule in " +
               "/etc/sudoers itself is not checked)",
           "install -m 0440 /usr/share/doc/pbx-mfa/examples/sudoers.d/pbx-helpdesk " + dir +
               "/pbx-helpdesk, uncomment its rule, then visudo -c"}};
}

std::vector<Check> helpdesk_group_checks(const totp::Config& config, const GroupResolver& resolve) {
  if (config.helpdesk_groups.empty() && config.protected_groups.empty()) return {};
  std::vector<std::string> problems;
  std::vector<std::string> found;
  auto look = [&](const std::vector<std::string>& groups, const std::string& key,
                  const std::string& missing_means) {
    for (const auto& g : groups) {
      GroupLookup r = resolve(g);
      if (r.kind == GroupLookup::Kind::kFound) {
        found.push_back(g);
      } else if (r.kind == GroupLookup::Kind::kMissing) {
        std::string p = key;
        p.append(" names group ")
            .append(g)
            .append(", which does not exist: ")
            .append(missing_means);
        problems.push_back(std::move(p));
      } else {
        std::string p = "cannot look up group ";
        p.append(g).append(" of ").append(key).append(" (").append(r.error);
        p.append("): pbx-mfa refuses the helpdesk while it fails");
        problems.push_back(std::move(p));
      }
    }
  };
  look(config.helpdesk_groups, "helpdesk_groups", "nobody acts as the helpdesk through it");
  look(config.protected_groups, "protected_groups",
       "it protects nobody, so the users it was meant for can be acted on by the helpdesk");
  if (problems.empty()) {
    return {{"helpdesk-groups", Status::kPass,
             "helpdesk_groups and protected_groups name groups that resolve: " + join(found), ""}};
  }
  return {{"helpdesk-groups", Status::kWarn, join(problems, "; "),
           "correct the name (getent group NAME shows what this host resolves), or create the "
           "group (groupadd NAME)"}};
}

std::vector<Check> check_sudoers(const Facts& f) {
  if (f.session.config_error) return {};
  return sudoers_checks(scan_sudoers_dir(f.options.sudoers_dir), f.options.sudoers_dir,
                        f.session.config, f.session.env.run_program);
}

std::vector<Check> check_helpdesk_groups(const Facts& f) {
  if (f.session.config_error) return {};
  return helpdesk_group_checks(f.session.config, lookup_group);
}

}  // namespace pbx::cli::doctor

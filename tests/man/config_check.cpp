// pbx-man-config-check: the settings table (pbx::totp::settings()) for the man-page check, and
// config/pbx-mfa.conf against it. As shipped the file must mean "all defaults"; each
// `#key = value` line must name a key of the table and show its default; and every key of the
// table must have such a line.
//
// Usage: pbx-man-config-check --list          prints "KEY = DEFAULT" per key, in table order
//        pbx-man-config-check --events        prints the name of each event kind (kEventKinds),
//                                             for pbx-mfa(1) EVENTS
//        pbx-man-config-check CONFIG_FILE     checks the file; exit 0 when all holds, 1 otherwise
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/events.hpp"

namespace {

using pbx::totp::Config;
using pbx::totp::Setting;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

int list() {
  for (const Setting& s : pbx::totp::settings()) {
    std::cout << s.name << " =" << (s.default_value.empty() ? "" : " ") << s.default_value << "\n";
  }
  return 0;
}

int events() {
  for (const auto& k : pbx::totp::kEventKinds) std::cout << k.name << "\n";
  return 0;
}

// Does `value` on the line of `s` mean the default? The text must be the table's default, and
// must parse to the defaults (an empty default means "unset", which the key may not accept).
std::string default_problem(const Setting& s, const std::string& value) {
  if (!s.default_per_build && value != s.default_value) {
    return "shows '" + value + "', the default is '" + std::string(s.default_value) + "'";
  }
  Config c;
  auto st = s.apply(c, s.name, value);
  if (!st) {
    if (value.empty()) return "";
    return "'" + value + "' does not parse: " + st.error().message;
  }
  if (s.default_per_build) return "";  // the Debian path; this build may install elsewhere
  if (!(c == Config{})) return "'" + value + "' is not the default of " + std::string(s.name);
  return "";
}

int check(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::cout << "FAIL: cannot read " << path << "\n";
    return 1;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  int failures = 0;
  auto fail = [&](const std::string& why) {
    std::cout << "FAIL: " << why << "\n";
    ++failures;
  };

  Config parsed;
  if (auto st = pbx::totp::parse_config_text(parsed, text, path); !st) {
    fail(path + " does not parse: " + st.error().message);
  }

  // "key = value" sets a key; "#key = value" shows one (explanations start with "# ").
  std::map<std::string, int> shown;
  std::vector<std::string> set;
  std::istringstream lines(text);
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n) {
    std::string where = path + ":" + std::to_string(n) + ": ";
    std::string t = trimmed(line);
    if (t.empty() || (t[0] == '#' && (t.size() < 2 || t[1] < 'a' || t[1] > 'z'))) continue;
    bool commented = t[0] == '#';
    std::size_t eq = t.find('=');
    if (eq == std::string::npos) {
      fail(where + "expected '#key = default', got '" + line + "'");
      continue;
    }
    std::string key = trimmed(t.substr(commented ? 1 : 0, eq - (commented ? 1 : 0)));
    std::string value = trimmed(t.substr(eq + 1));
    const Setting* s = pbx::totp::find_setting(key);
    if (s == nullptr) {
      fail(where + "'" + key + "' is not a key of the settings table");
      continue;
    }
    if (!commented) {
      set.push_back(key);
      continue;
    }
    if (shown.count(key) > 0) fail(where + "'" + key + "' shown twice");
    shown[key] = n;
    if (auto problem = default_problem(*s, value); !problem.empty()) fail(where + problem);
  }
  if (!(parsed == Config{})) {
    fail(path + " as shipped does not mean all defaults; it sets: " + join(set));
  }

  for (const Setting& s : pbx::totp::settings()) {
    if (shown.count(std::string(s.name)) == 0) {
      fail(path + " has no '#" + std::string(s.name) + " = DEFAULT' line");
    }
  }
  if (failures == 0) {
    std::cout << "ok: " << path << " parses as all defaults and shows all " << shown.size()
              << " keys of the settings table with their defaults\n";
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--list") return list();
  if (argc == 2 && std::string_view(argv[1]) == "--events") return events();
  if (argc == 2 && argv[1][0] != '-') return check(argv[1]);
  std::cerr << "usage: pbx-man-config-check --list | --events | CONFIG_FILE\n";
  return 2;
}

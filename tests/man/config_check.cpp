// pbx-man-config-check: config/pbx-mfa.conf against the parser. As shipped the file must mean
// "all defaults"; each `#key = value` line must name a real key and show its real default; and
// every key named on the command line (from lib/src/config.cpp) must have such a line.
//
// Usage: pbx-man-config-check CONFIG_FILE KEY...   Exit 0 when all holds, 1 otherwise.
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "pbx/totp/config.hpp"

namespace {

using pbx::totp::Cidr;
using pbx::totp::Config;

bool same_cidrs(const std::vector<Cidr>& a, const std::vector<Cidr>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].v6 != b[i].v6 || a[i].prefix != b[i].prefix) return false;
    for (int j = 0; j < 16; ++j) {
      if (a[i].addr[j] != b[i].addr[j]) return false;
    }
  }
  return true;
}

// The names of the settings in which `c` differs from the defaults.
std::vector<std::string> differences(const Config& c) {
  const Config d;
  std::vector<std::string> out;
  auto check = [&](bool same, const char* name) {
    if (!same) out.emplace_back(name);
  };
  check(c.secret_path == d.secret_path, "secret_path");
  check(c.state_dir == d.state_dir, "state_dir");
  check(c.issuer == d.issuer, "issuer");
  check(c.algorithm == d.algorithm, "algorithm");
  check(c.digits == d.digits, "digits");
  check(c.period == d.period, "period");
  check(c.window == d.window, "window");
  check(c.max_failures == d.max_failures, "max_failures");
  check(c.lockout == d.lockout, "lockout");
  check(c.recovery_codes == d.recovery_codes, "recovery_codes");
  check(c.require_all == d.require_all && c.require_groups == d.require_groups, "require");
  check(c.exempt_groups == d.exempt_groups, "exempt_groups");
  check(same_cidrs(c.exempt_networks, d.exempt_networks), "exempt_networks");
  check(c.enroll_at_login == d.enroll_at_login, "enroll_at_login");
  check(c.grace_period == d.grace_period, "grace_period");
  check(c.store == d.store, "store");
  check(c.pg_conninfo == d.pg_conninfo, "pg_conninfo");
  check(c.pg_timeout_ms == d.pg_timeout_ms, "pg_timeout_ms");
  check(c.fleet_key == d.fleet_key, "fleet_key");
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool known_key(const std::string& key) {
  Config scratch;
  auto st = pbx::totp::apply_setting(scratch, key, "");
  return st || st.error().message.rfind("unknown key", 0) != 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: pbx-man-config-check CONFIG_FILE KEY...\n";
    return 2;
  }
  const std::string path = argv[1];
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
  } else if (auto diff = differences(parsed); !diff.empty()) {
    fail(path + " as shipped does not mean all defaults; it sets: " + join(diff));
  }

  // "#key = value": the commented setting lines (explanations start with "# ").
  std::map<std::string, int> shown;
  std::istringstream lines(text);
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n) {
    if (line.size() < 2 || line[0] != '#' || line[1] < 'a' || line[1] > 'z') continue;
    std::string where = path + ":" + std::to_string(n) + ": ";
    std::size_t eq = line.find(" =");
    if (eq == std::string::npos) {
      fail(where + "expected '#key = default', got '" + line + "'");
      continue;
    }
    std::string key = line.substr(1, eq - 1);
    std::string value = line.substr(eq + 2);
    if (!known_key(key)) {
      fail(where + "'" + key + "' is not a key of the parser");
      continue;
    }
    if (shown.count(key) > 0) fail(where + "'" + key + "' shown twice");
    shown[key] = n;
    Config c;
    auto st = pbx::totp::apply_setting(c, key, value);
    bool empty_default = value.find_first_not_of(" \t") == std::string::npos;
    if (!st && !(empty_default && key == "issuer" && Config{}.issuer.empty())) {
      fail(where + "'" + key + " =" + value + "' does not parse: " + st.error().message);
    } else if (st && !differences(c).empty()) {
      fail(where + "'" + key + " =" + value + "' is not the default of " + key);
    }
  }

  for (int i = 2; i < argc; ++i) {
    std::string key = argv[i];
    if (!known_key(key)) fail("'" + key + "' (from config.cpp) is not accepted by apply_setting");
    if (shown.count(key) == 0) fail(path + " has no '#" + key + " = DEFAULT' line");
  }
  if (failures == 0) {
    std::cout << "ok: " << path << " parses as all defaults and shows " << shown.size()
              << " keys with their defaults\n";
  }
  return failures == 0 ? 0 : 1;
}

// The checks of the settings: group names that resolve, guessing limits, and where the secrets
// of sudo and su live.
#include "config_checks.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

#include "pbx/totp/user.hpp"

namespace pbx::cli::doctor {
namespace {

// The odds in percent, to two significant digits ("0.0035 %", "2.1 %", "21 %").
std::string percent(double odds) {
  double p = odds * 100.0;
  if (!(p > 0.0)) return "0 %";
  if (p >= 100.0) return "100 %";
  int decimals = p >= 10.0 ? 0 : 1 - static_cast<int>(std::floor(std::log10(p)));
  char buf[64];
  (void)std::snprintf(buf, sizeof buf, "%.*f %%", decimals, p);
  return buf;
}

double guess_odds(const totp::Config& c, int guesses) {
  double per_guess = (2.0 * c.window + 1.0) / std::pow(10.0, c.digits);
  return 1.0 - std::pow(1.0 - per_guess, guesses);
}

std::string cidr_text(const totp::Cidr& net) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (::inet_ntop(net.v6 ? AF_INET6 : AF_INET, net.addr, buf, sizeof buf) == nullptr) {
    return net.v6 ? "::" : "0.0.0.0";
  }
  return std::string(buf) + "/" + std::to_string(net.prefix);
}

// A group named by a setting, and where: "the config" or "pam_pbx_totp.so argument (FILE:LINE)".
struct NamedGroup {
  std::string name;
  std::string where;
};

// The module's lines in every stack, each once (an include file appears in many stacks).
std::vector<const PamEntry*> module_lines(const PamScan& pam) {
  std::vector<const PamEntry*> out;
  std::set<std::string> seen;
  for (const auto& [service, stack] : pam.stacks) {
    for (const auto& e : stack) {
      if (e.module == kModuleName && seen.insert(e.where).second) out.push_back(&e);
    }
  }
  return out;
}

// The groups `key` ("require" or "exempt_groups") names: the config's, then the module's
// arguments'. An argument that does not parse is the module's problem (it refuses every login),
// not a group's.
std::vector<NamedGroup> named_groups(const totp::Config& config, const PamScan& pam,
                                     const std::string& key) {
  auto groups_of = [&](const totp::Config& c) {
    if (key == "require") return c.require_all ? std::vector<std::string>{} : c.require_groups;
    return c.exempt_groups;
  };
  std::vector<NamedGroup> out;
  for (const auto& g : groups_of(config)) out.push_back({g, "the config"});
  for (const PamEntry* e : module_lines(pam)) {
    for (const auto& a : e->args) {
      if (a.rfind(key + "=", 0) != 0) continue;
      totp::Config scratch;
      scratch.require_all = true;
      scratch.exempt_groups.clear();
      if (!totp::apply_setting(scratch, key, a.substr(key.size() + 1))) continue;
      for (const auto& g : groups_of(scratch)) {
        std::string where = kModuleName;
        where.append(" argument (").append(e->where).append(")");
        out.push_back({g, where});
      }
    }
  }
  return out;
}

Check group_check(const std::string& check_name, const std::string& key,
                  const std::vector<NamedGroup>& groups, const GroupResolver& resolve) {
  std::vector<std::string> missing;
  std::vector<std::string> failed;
  std::vector<std::string> found;
  std::set<std::string> done;
  for (const auto& g : groups) {
    std::string label = g.name;
    label.append(" (").append(g.where).append(")");
    if (!done.insert(label).second) continue;
    GroupLookup r = resolve(g.name);
    switch (r.kind) {
      case GroupLookup::Kind::kFound:
        found.push_back(g.name);
        break;
      case GroupLookup::Kind::kMissing:
        missing.push_back(label);
        break;
      case GroupLookup::Kind::kError:
        failed.push_back(label + ": " + r.error);
        break;
    }
  }
  Check c{check_name, Status::kPass, "", ""};
  if (missing.empty() && failed.empty()) {
    c.message = key + " names group" + (found.size() == 1 ? " " : "s ") + join(found) +
                (found.size() == 1 ? ": it resolves" : ": all resolve");
    return c;
  }
  c.status = Status::kFail;
  std::vector<std::string> parts;
  if (!missing.empty()) {
    std::string what = key + " names group" + (missing.size() == 1 ? " " : "s ") + join(missing) +
                       (missing.size() == 1 ? ", which does" : ", which do") + " not exist: ";
    if (key == "require") {
      what +=
          "nobody is required through it, so the users meant who are not enrolled log in "
          "with the password alone";
    } else {
      what +=
          "it exempts nobody now, and whoever later creates a group of that name exempts its "
          "members from the second factor";
    }
    parts.push_back(what);
  }
  if (!failed.empty()) {
    parts.push_back("cannot look up group" + std::string(failed.size() == 1 ? " " : "s ") +
                    join(failed) + "; the module cannot tell who is in " +
                    (failed.size() == 1 ? "it" : "them") + " while the group database fails");
  }
  c.message = parts.size() == 1 ? parts[0] : parts[0] + "; " + parts[1];
  c.fix =
      "correct the name (getent group NAME shows what this host resolves), or make the group "
      "database answer (nsswitch.conf, sssd/LDAP)";
  return c;
}

Check limit_warning(const std::string& name, std::string message, std::string fix) {
  return Check{name, Status::kWarn, std::move(message), std::move(fix)};
}

}  // namespace

GroupLookup lookup_group(const std::string& name) {
  auto found = totp::lookup_group(name);  // the module's own lookup: the same answers
  if (!found) return {GroupLookup::Kind::kError, found.error().message};
  if (!found->has_value()) return {GroupLookup::Kind::kMissing, ""};
  return {GroupLookup::Kind::kFound, ""};
}

std::vector<Check> group_checks(const totp::Config& config, const PamScan& pam,
                                const GroupResolver& resolve) {
  std::vector<Check> checks;
  auto require = named_groups(config, pam, "require");
  if (!require.empty())
    checks.push_back(group_check("require-groups", "require", require, resolve));
  auto exempt = named_groups(config, pam, "exempt_groups");
  if (!exempt.empty()) {
    checks.push_back(group_check("exempt-groups", "exempt_groups", exempt, resolve));
  }
  return checks;
}

std::vector<Check> limit_checks(const totp::Config& c) {
  std::vector<Check> checks;
  const std::string digits = std::to_string(c.digits) + "-digit";
  if (c.window > 2) {
    int codes = 2 * c.window + 1;
    checks.push_back(limit_warning(
        "window",
        "window = " + std::to_string(c.window) + " accepts " + std::to_string(codes) +
            " codes at a time, so each guess by someone who has the password is " +
            std::to_string(codes) + " times as likely to hit as with a single code (" +
            percent(guess_odds(c, c.max_failures)) + " odds in the " +
            std::to_string(c.max_failures) + " guesses before the first lockout, with " + digits +
            " codes); the learned clock skew already follows a phone whose clock "
            "drifts",
        "window = 1 (the default) or 2"));
  }
  if (c.max_failures > 10) {
    checks.push_back(limit_warning(
        "max-failures",
        "max_failures = " + std::to_string(c.max_failures) +
            " lets someone who has the password try that many codes before the first lockout: " +
            percent(guess_odds(c, c.max_failures)) + " odds of getting in with " + digits +
            " codes and window = " + std::to_string(c.window) + ", and again after each lockout",
        "max_failures = 5 (the default); at most 10"));
  }
  std::vector<std::string> everything;
  for (const auto& net : c.exempt_networks) {
    if (net.prefix == 0) everything.push_back(cidr_text(net));
  }
  if (!everything.empty()) {
    checks.push_back(limit_warning(
        "exempt-networks",
        "exempt_networks has " + join(everything) + ", which matches every address" +
            " of its family: every login with a remote host (any ssh login) skips the second "
            "factor, and a password alone is enough",
        "name only the networks you trust (e.g. 10.0.0.0/8), or remove the entry"));
  }
  return checks;
}

bool secret_path_in_home(const std::string& secret_path) {
  return secret_path.rfind("%h", 0) == 0 || secret_path.rfind("/home/", 0) == 0;
}

bool is_sudo_or_su(const std::string& service) {
  return service == "sudo" || service == "sudo-i" || service == "su" || service == "su-l";
}

std::vector<Check> secret_path_checks(const totp::Config& config, const PamScan& pam) {
  std::vector<std::string> in_home;
  std::vector<std::string> outside;
  for (const auto& [service, stack] : pam.stacks) {
    if (!is_sudo_or_su(service)) continue;
    for (const auto& e : stack) {
      if (e.module != kModuleName) continue;
      std::string path = config.secret_path;
      for (const auto& a : e.args) {
        if (a.rfind("secret_path=", 0) == 0) path = a.substr(12);
      }
      std::string label = service;
      label.append(" (").append(e.where).append(", secret_path = ").append(path).append(")");
      (secret_path_in_home(path) ? in_home : outside).push_back(label);
      break;
    }
  }
  if (!in_home.empty()) {
    return {{"secret-path", Status::kWarn,
             kModuleName + std::string(" guards ") + join(in_home) +
                 " with the secret in the user's home: a compromised session (anything running "
                 "as the user) can read the secret and pass sudo/su",
             "use a root-owned secret_path outside the home (e.g. secret_path = "
             "/var/lib/pbx-mfa-secrets/%u; root enrolls users with 'pbx-mfa enroll --user') on "
             "hosts where sudo/su must hold against a compromised session"}};
  }
  if (!outside.empty()) {
    return {{"secret-path", Status::kPass,
             kModuleName + std::string(" guards ") + join(outside) +
                 " with the secret outside the home",
             ""}};
  }
  return {};
}

// The rows of the checks table.
std::vector<Check> check_groups(const Facts& f) {
  if (f.session.config_error) return {};
  return group_checks(f.session.config, f.pam, lookup_group);
}

std::vector<Check> check_limits(const Facts& f) {
  if (f.session.config_error) return {};
  return limit_checks(f.session.config);
}

std::vector<Check> check_secret_path(const Facts& f) {
  if (f.session.config_error) return {};
  return secret_path_checks(f.session.config, f.pam);
}

}  // namespace pbx::cli::doctor

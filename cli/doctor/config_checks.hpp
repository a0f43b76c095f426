// doctor's checks of the settings themselves, as pure functions of the config and looked-up facts.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "checks.hpp"
#include "pbx/totp/config.hpp"

namespace pbx::cli::doctor {

// What the group database says about one name.
struct GroupLookup {
  enum class Kind { kFound, kMissing, kError };
  Kind kind = Kind::kFound;
  std::string error;  // kError: strerror of the lookup
};
using GroupResolver = std::function<GroupLookup(const std::string& name)>;

// getgrnam_r(): no entry is kMissing, an error (directory down, ...) kError.
GroupLookup lookup_group(const std::string& name);

// "require-groups" and "exempt-groups": FAIL for a name that does not resolve or whose lookup
// fails, PASS when all resolve; nothing when the setting names no group. The groups come from
// the config and from require=/exempt_groups= arguments of the module in `pam`'s stacks.
std::vector<Check> group_checks(const totp::Config& config, const PamScan& pam,
                                const GroupResolver& resolve);

// "window", "max-failures", "exempt-networks": a WARN each for window > 2, max_failures > 10
// and a network of prefix length 0; nothing otherwise.
std::vector<Check> limit_checks(const totp::Config& config);

// Whether a secret_path template lies in the user's home: %h..., or a literal /home/ path.
bool secret_path_in_home(const std::string& secret_path);

// The services that are sudo or su (by name: sudo, sudo-i, su, su-l).
bool is_sudo_or_su(const std::string& service);

// "secret-path": WARN when the module is in the auth stack of sudo or su (as named above; the
// stack with its includes) while the secret it reads there (the config's secret_path, or the
// module's secret_path= argument) is in the home; PASS when it guards them with secrets outside
// the home; nothing when it guards neither.
std::vector<Check> secret_path_checks(const totp::Config& config, const PamScan& pam);

// "db-gssenc": FAIL when pg_conninfo reaches a server over TCP with gssencmode named and not
// disable (libpq then reads the Kerberos credential cache before connecting, and GSSAPI
// encryption replaces TLS whatever sslmode says); PASS otherwise (an unnamed gssencmode is
// passed as disable by the plugin). Nothing when the conninfo does not parse (db-connect says
// why).
std::vector<Check> gssenc_checks(const std::string& conninfo);

}  // namespace pbx::cli::doctor

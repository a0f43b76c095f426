// Config: the settings of /etc/security/pbx-mfa.conf, one parser for module and CLI.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/build_paths.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::totp {

inline constexpr const char* kDefaultConfigPath = "/etc/security/pbx-mfa.conf";
inline constexpr std::size_t kMaxConfigSize = std::size_t{64} * 1024;

// The actions helpdesk_actions may name (pbx-mfa(1) HELPDESK), as subcommand names.
inline constexpr std::string_view kHelpdeskActions[] = {"status", "unlock", "temp-code", "require",
                                                        "reset"};

struct Cidr {
  bool v6 = false;
  std::uint8_t addr[16] = {};
  int prefix = 0;
  bool operator==(const Cidr&) const = default;
};

struct Config {
  std::string secret_path = "%h/.pbx-mfa";
  std::string state_dir = "/var/lib/pbx-mfa";
  std::string issuer;  // empty: the host name
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
  int window = 1;
  int max_failures = 5;
  int lockout = 60;
  int recovery_codes = 5;
  int max_devices = 2;      // devices per user (pbx-mfa device add), 1 to kMaxDevices
  bool require_all = true;  // require = all
  std::vector<std::string> require_groups;  // require = group:a,group:b (require_all false)
  std::vector<std::string> exempt_groups;
  std::vector<Cidr> exempt_networks;
  bool enroll_at_login = false;
  // enroll_at_login = with-code (enroll_at_login is then true too): the QR code only after a
  // valid temporary access code issued for the user (pbx-mfa temp-code).
  bool enroll_with_code = false;
  int grace_period = 0;
  std::string store = "files";
  std::string pg_conninfo;
  int pg_timeout_ms = 2500;
  std::string fleet_key = "/etc/security/pbx-mfa.key";
  // During a fleet-key rotation (pbx-mfa db rotate-key): the old key, accepted for reading
  // rows only (every write uses fleet_key); empty: none. Never the same path as fleet_key.
  std::string fleet_key_previous;
  // The PostgreSQL plugin, loaded only with store = postgresql (root-owned, not writable by
  // others). A config key, never an environment variable: a PAM module runs inside su and sudo.
  std::string pg_plugin = PBX_DEFAULT_PG_PLUGIN;
  // Delegated helpdesk (pbx-mfa(1) HELPDESK): members of these groups, running pbx-mfa as root
  // through sudo, may do only helpdesk_actions, never to root or members of protected_groups.
  std::vector<std::string> helpdesk_groups;
  std::vector<std::string> helpdesk_actions = {"status", "unlock", "temp-code"};
  std::vector<std::string> protected_groups;

  // Security events (events.hpp): the file store's event log is rotated at this size (bytes;
  // one older file is kept, so the log takes at most twice this).
  std::int64_t events_max_size = std::int64_t{10} * 1024 * 1024;
  // Alerts (pbx-mfa events --follow --notify, never the module): the program run once per
  // event whose kind notify_events names, the event's JSON on its stdin; empty: none.
  std::string notify_command;
  std::vector<std::string> notify_events = {"recovery", "temp-code", "break-glass", "locked-out",
                                            "reset"};
  int notify_timeout = 30;  // seconds before a command that has not finished is killed
  int notify_rate = 10;     // commands per event kind per hour; more are counted, not run

  // Who owns a safe config file and the state directory; a parameter so tests can vary it.
  uid_t trusted_uid = 0;

  bool operator==(const Config&) const = default;
};

// One key of the config file (and of the module's key=value arguments). settings() is the one
// list of keys: apply_setting dispatches through it, and the tests check pbx-mfa.conf(5) and the
// shipped config/pbx-mfa.conf against it.
struct Setting {
  std::string_view name;
  // The default as pbx-mfa.conf shows it; empty for "unset" (issuer: the host name).
  std::string_view default_value;
  // Checks a value (trimmed) and stores it. Errors start with the key.
  Status (*apply)(Config& config, std::string_view key, std::string_view value);
  std::string_view help;  // one line
  // The default depends on where the build installs (pg_plugin): the shipped file shows the
  // Debian package's.
  bool default_per_build = false;
};

// Every key, in the order of pbx-mfa.conf(5).
std::span<const Setting> settings();
// The key's row, or nullptr for an unknown key.
const Setting* find_setting(std::string_view name);

// Sets one key (as in the file or a module argument). The error names the key.
Status apply_setting(Config& config, std::string_view key, std::string_view value);

// Parses the text of a config file; `source` names it in error messages ("FILE:LINE: ...").
Status parse_config_text(Config& config, std::string_view text, std::string_view source);

// Loads `path`. A missing file is all defaults unless `explicit_path` (then an error). The file
// must be a regular file owned by config.trusted_uid (or, in a process that is not root, by its
// effective uid), not group/other-writable, not a symlink.
Result<Config> load_config(const std::string& path, bool explicit_path, uid_t trusted_uid = 0);

Result<Cidr> parse_cidr(std::string_view text);
// Is the address text (IPv4, IPv6, or IPv4-mapped IPv6) inside the network?
bool cidr_contains(const Cidr& net, std::string_view address);

}  // namespace pbx::totp

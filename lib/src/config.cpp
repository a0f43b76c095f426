#include "pbx/totp/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>

#include "file_util.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::totp {
namespace {

Error bad(std::string_view key, const std::string& why) {
  return make_error(Errc::kConfig, std::string(key) + ": " + why);
}

Status set_int(int& out, std::string_view key, std::string_view value, int lo, int hi) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc{} || ptr != value.data() + value.size() || v < lo ||
      v > hi) {
    return bad(key, "must be a whole number from " + std::to_string(lo) + " to " +
                        std::to_string(hi) + ", not '" + std::string(value) + "'");
  }
  out = v;
  return Ok{};
}

Status set_bool(bool& out, std::string_view key, std::string_view value) {
  if (value == "yes" || value == "true" || value == "on" || value == "1") {
    out = true;
  } else if (value == "no" || value == "false" || value == "off" || value == "0") {
    out = false;
  } else {
    return bad(key, "must be yes or no, not '" + std::string(value) + "'");
  }
  return Ok{};
}

bool printable(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return false;
  }
  return true;
}

bool valid_group_name(std::string_view g) {
  if (g.empty() || g.size() > 256) return false;
  for (char c : g) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F || c == ',' || c == ':') return false;
  }
  return true;
}

Result<std::vector<std::string>> split_list(std::string_view key, std::string_view value) {
  std::vector<std::string> out;
  if (trim(value).empty()) return out;
  while (true) {
    std::size_t comma = value.find(',');
    std::string_view item = trim(value.substr(0, comma));
    if (item.empty()) return bad(key, "empty item in comma list");
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    value = value.substr(comma + 1);
  }
  return out;
}

Status set_groups(std::vector<std::string>& out, std::string_view key, std::string_view value) {
  auto items = split_list(key, value);
  if (!items) return items.error();
  for (const auto& g : *items) {
    if (!valid_group_name(g)) return bad(key, "'" + g + "' is not a valid group name");
  }
  out = std::move(items.value());
  return Ok{};
}

Status set_path(std::string& out, std::string_view key, std::string_view value) {
  if (value.empty() || value.front() != '/' || !printable(value) || value.size() > 1024) {
    return bad(key, "must be an absolute path");
  }
  out = value;
  return Ok{};
}

Status check_secret_path(std::string_view value) {
  if (value.empty() || value.size() > 1024 || !printable(value)) {
    return bad("secret_path", "must be a path template");
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') continue;
    if (i + 1 >= value.size() || std::strchr("uhU%", value[i + 1]) == nullptr) {
      return bad("secret_path", "unknown escape (use %u, %h, %U or %%)");
    }
    ++i;
  }
  if (value.front() != '/' && value.substr(0, 2) != "%h") {
    return bad("secret_path", "must start with / or %h");
  }
  if (value.back() == '/') return bad("secret_path", "must name a file, not a directory");
  return Ok{};
}

Status set_require(Config& c, std::string_view value) {
  if (value == "all") {
    c.require_all = true;
    c.require_groups.clear();
    return Ok{};
  }
  if (value == "none") {
    c.require_all = false;
    c.require_groups.clear();
    return Ok{};
  }
  auto items = split_list("require", value);
  if (!items) return items.error();
  if (items->empty()) return bad("require", "must be all, none, or a list of group:NAME");
  std::vector<std::string> groups;
  for (const auto& item : *items) {
    if (item.rfind("group:", 0) != 0 || !valid_group_name(item.substr(6))) {
      return bad("require", "must be all, none, or a list of group:NAME, not '" + item + "'");
    }
    groups.push_back(item.substr(6));
  }
  c.require_all = false;
  c.require_groups = std::move(groups);
  return Ok{};
}

Status set_networks(std::vector<Cidr>& out, std::string_view value) {
  auto items = split_list("exempt_networks", value);
  if (!items) return items.error();
  std::vector<Cidr> nets;
  for (const auto& item : *items) {
    auto net = parse_cidr(item);
    if (!net)
      return bad("exempt_networks", "'" + item + "' is not a network (use 10.0.0.0/8 or fd00::/8)");
    nets.push_back(*net);
  }
  out = std::move(nets);
  return Ok{};
}

Status set_secret_path(Config& c, std::string_view, std::string_view value) {
  if (auto st = check_secret_path(value); !st) return st;
  c.secret_path = value;
  return Ok{};
}

Status set_issuer(Config& c, std::string_view key, std::string_view value) {
  if (value.empty() || value.size() > 128 || !printable(value)) {
    return bad(key, "must be 1 to 128 printable characters");
  }
  // In the otpauth:// label a colon separates issuer and account: apps would split it wrongly.
  if (value.find(':') != std::string_view::npos) return bad(key, "must not contain ':'");
  c.issuer = value;
  return Ok{};
}

Status set_algorithm(Config& c, std::string_view key, std::string_view value) {
  auto a = parse_algorithm(value);
  if (!a) return bad(key, "must be SHA1, SHA256 or SHA512, not '" + std::string(value) + "'");
  c.algorithm = *a;
  return Ok{};
}

Status set_store(Config& c, std::string_view key, std::string_view value) {
  if (value != "files" && value != "postgresql") {
    return bad(key, "must be files or postgresql, not '" + std::string(value) + "'");
  }
  c.store = value;
  return Ok{};
}

Status set_pg_conninfo(Config& c, std::string_view key, std::string_view value) {
  if (value.size() > 4096 || !printable(value))
    return bad(key, "must be a libpq connection string");
  c.pg_conninfo = value;
  return Ok{};
}

// Row parsers for the common kinds of value: a whole number in [Lo, Hi], an absolute path, a
// yes/no switch, each stored into one member of Config.
template <auto Member, int Lo, int Hi>
Status int_in(Config& c, std::string_view key, std::string_view value) {
  return set_int(c.*Member, key, value, Lo, Hi);
}
template <auto Member>
Status path_in(Config& c, std::string_view key, std::string_view value) {
  return set_path(c.*Member, key, value);
}
template <auto Member>
Status bool_in(Config& c, std::string_view key, std::string_view value) {
  return set_bool(c.*Member, key, value);
}
template <auto Member>
Status groups_in(Config& c, std::string_view key, std::string_view value) {
  return set_groups(c.*Member, key, value);
}
Status require_in(Config& c, std::string_view, std::string_view value) {
  return set_require(c, value);
}
Status networks_in(Config& c, std::string_view, std::string_view value) {
  return set_networks(c.exempt_networks, value);
}
Status enroll_in(Config& c, std::string_view key, std::string_view value) {
  if (value == "with-code") {
    c.enroll_at_login = true;
    c.enroll_with_code = true;
    return Ok{};
  }
  bool on = false;
  if (!set_bool(on, key, value)) return bad(key, "must be yes, no or with-code");
  c.enroll_at_login = on;
  c.enroll_with_code = false;
  return Ok{};
}
Status actions_in(Config& c, std::string_view key, std::string_view value) {
  auto items = split_list(key, value);
  if (!items) return items.error();
  for (const auto& a : *items) {
    if (std::find(std::begin(kHelpdeskActions), std::end(kHelpdeskActions), a) ==
        std::end(kHelpdeskActions)) {
      return bad(key, "'" + a + "' is not one of status, unlock, temp-code, require, reset");
    }
  }
  c.helpdesk_actions = std::move(items.value());
  return Ok{};
}

Status optional_path_in(Config& c, std::string_view key, std::string_view value) {
  if (value.empty()) {
    c.notify_command.clear();
    return Ok{};
  }
  return set_path(c.notify_command, key, value);
}
Status previous_key_in(Config& c, std::string_view key, std::string_view value) {
  if (value.empty()) {
    c.fleet_key_previous.clear();
    return Ok{};
  }
  return set_path(c.fleet_key_previous, key, value);
}
Status notify_events_in(Config& c, std::string_view key, std::string_view value) {
  auto items = split_list(key, value);
  if (!items) return items.error();
  for (const auto& e : *items) {
    if (!entry_names_events(e)) {
      return bad(key, "'" + e + "' names no event kind (pbx-mfa(1) EVENTS), nor is it 'all'");
    }
  }
  c.notify_events = std::move(items.value());
  return Ok{};
}
// A size in bytes with an optional K, M or G suffix (powers of 1024), 64K to 1G.
Status size_in(Config& c, std::string_view key, std::string_view value) {
  constexpr std::int64_t kMin = std::int64_t{64} * 1024;
  constexpr std::int64_t kMax = std::int64_t{1024} * 1024 * 1024;
  std::int64_t unit = 1;
  std::string_view digits = value;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'K':
      case 'k':
        unit = 1024;
        break;
      case 'M':
      case 'm':
        unit = std::int64_t{1024} * 1024;
        break;
      case 'G':
      case 'g':
        unit = std::int64_t{1024} * 1024 * 1024;
        break;
      default:
        break;
    }
    if (unit != 1) digits.remove_suffix(1);
  }
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc{} || ptr != digits.data() + digits.size() || v < 0 ||
      v > kMax / unit || v * unit < kMin) {
    return bad(key, "must be a size from 64K to 1G (bytes, or with K, M or G), not '" +
                        std::string(value) + "'");
  }
  c.events_max_size = v * unit;
  return Ok{};
}

// clang-format off
constexpr Setting kSettings[] = {
    {"secret_path", "%h/.pbx-mfa", set_secret_path,
     "where a user's secret lives: %u user, %h home, %U uid, %% a percent sign"},
    {"state_dir", "/var/lib/pbx-mfa", path_in<&Config::state_dir>,
     "root-owned 0700 directory of the per-user state"},
    {"issuer", "", set_issuer,
     "name shown in the authenticator app (empty: this host's name)"},
    {"algorithm", "SHA1", set_algorithm,
     "HMAC of new enrollments: SHA1, SHA256 or SHA512"},
    {"digits", "6", int_in<&Config::digits, kMinDigits, kMaxDigits>,
     "code length of new enrollments, 6 to 8"},
    {"period", "30", int_in<&Config::period, 15, 300>,
     "seconds per code of new enrollments, 15 to 300"},
    {"window", "1", int_in<&Config::window, 0, 10>,
     "time steps accepted on each side of now, 0 to 10"},
    {"max_failures", "5", int_in<&Config::max_failures, 1, 1000>,
     "consecutive wrong codes before a lockout, 1 to 1000"},
    {"lockout", "60", int_in<&Config::lockout, 1, 3600>,
     "first lockout in seconds, 1 to 3600 (doubles with each further failure)"},
    {"recovery_codes", "5", int_in<&Config::recovery_codes, 0, 20>,
     "one-time recovery codes made at enrollment, 0 to 20"},
    {"max_devices", "2", int_in<&Config::max_devices, 1, kMaxDevices>,
     "authenticator devices a user may have (pbx-mfa device add), 1 to 5"},
    {"require", "all", require_in,
     "who must use a second factor: all, none, or a comma list of group:NAME"},
    {"exempt_groups", "", groups_in<&Config::exempt_groups>,
     "comma list of groups whose members skip the second factor"},
    {"exempt_networks", "", networks_in,
     "comma list of networks (CIDR) whose logins skip the second factor"},
    {"enroll_at_login", "no", enroll_in,
     "yes: a required user not yet enrolled enrolls in the login; with-code: after a temp code"},
    {"grace_period", "0", int_in<&Config::grace_period, 0, 86400>,
     "seconds after a good code in which the same user and host need none, 0 to 86400"},
    {"store", "files", set_store,
     "where enrollments and state live: files or postgresql"},
    {"pg_conninfo", "", set_pg_conninfo,
     "libpq connection string for store = postgresql"},
    {"pg_timeout_ms", "2500", int_in<&Config::pg_timeout_ms, 100, 60000>,
     "deadline of one database exchange in milliseconds, 100 to 60000"},
    {"fleet_key", "/etc/security/pbx-mfa.key", path_in<&Config::fleet_key>,
     "key sealing the secrets in the database (32 bytes, root-owned)"},
    {"fleet_key_previous", "", previous_key_in,
     "during a fleet-key rotation: the old key, for reading rows only (empty: none)"},
    {"pg_plugin", PBX_DEFAULT_PG_PLUGIN, path_in<&Config::pg_plugin>,
     "the PostgreSQL plugin, loaded only with store = postgresql", true},
    {"helpdesk_groups", "", groups_in<&Config::helpdesk_groups>,
     "comma list of groups whose members may run helpdesk actions through sudo (empty: off)"},
    {"helpdesk_actions", "status,unlock,temp-code", actions_in,
     "what helpdesk members may do: a subset of status,unlock,temp-code,require,reset"},
    {"protected_groups", "", groups_in<&Config::protected_groups>,
     "comma list of groups whose members the helpdesk may not act on (root never)"},
    {"events_max_size", "10M", size_in,
     "the event log (state_dir/.events.log) is rotated at this size; one old file is kept"},
    {"notify_command", "", optional_path_in,
     "program run once per alerted event, JSON on stdin (root-owned; none when unset)"},
    {"notify_events", "recovery,temp-code,break-glass,locked-out,reset", notify_events_in,
     "event kinds (or their first words, or all) that run notify_command"},
    {"notify_timeout", "30", int_in<&Config::notify_timeout, 1, 600>,
     "seconds before a notify_command that has not finished is killed"},
    {"notify_rate", "10", int_in<&Config::notify_rate, 1, 1000>,
     "notify_command runs per event kind per hour; more are counted in the next one"},
};
// clang-format on

}  // namespace

std::span<const Setting> settings() { return kSettings; }

const Setting* find_setting(std::string_view name) {
  for (const Setting& s : kSettings) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Status apply_setting(Config& c, std::string_view key, std::string_view value) {
  const Setting* setting = find_setting(key);
  if (setting == nullptr)
    return make_error(Errc::kConfig, "unknown key '" + std::string(key) + "'");
  return setting->apply(c, setting->name, trim(value));
}

Status parse_config_text(Config& config, std::string_view text, std::string_view source) {
  Config next = config;
  int line_no = 0;
  for (std::string_view line : split_lines(text)) {
    ++line_no;
    std::string where = std::string(source) + ":" + std::to_string(line_no) + ": ";
    if (line.find('\0') != std::string_view::npos) {
      return make_error(Errc::kConfig, where + "NUL byte in line");
    }
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return make_error(Errc::kConfig, where + "expected 'key = value'");
    }
    std::string_view key = trim(line.substr(0, eq));
    if (auto st = apply_setting(next, key, line.substr(eq + 1)); !st) {
      return make_error(Errc::kConfig, where + st.error().message);
    }
  }
  if (!next.fleet_key_previous.empty() && next.fleet_key_previous == next.fleet_key) {
    return make_error(Errc::kConfig, std::string(source) +
                                         ": fleet_key_previous: must be the old key, not the "
                                         "file fleet_key names (" +
                                         next.fleet_key + ")");
  }
  config = std::move(next);
  return Ok{};
}

Result<Config> load_config(const std::string& path, bool explicit_path, uid_t trusted_uid) {
  Config config;
  config.trusted_uid = trusted_uid;
  FileCheck check{trusted_uid, 022, kMaxConfigSize};
  check.trusted_parents = true;  // root acts on it: its directories must be root's alone
  auto text = detail::read_checked_file(path, check, "config file");
  if (!text) return make_error(Errc::kConfig, text.error().message);
  if (!text->has_value()) {
    if (explicit_path) return make_error(Errc::kConfig, "config file " + path + ": does not exist");
    return config;
  }
  if (auto st = parse_config_text(config, (*text)->view(), path); !st) return st.error();
  return config;
}

Result<Cidr> parse_cidr(std::string_view text) {
  text = trim(text);
  if (text.find('\0') != std::string_view::npos) return make_error(Errc::kInvalid, "NUL byte");
  std::size_t slash = text.find('/');
  std::string addr(text.substr(0, slash));
  Cidr net;
  if (inet_pton(AF_INET, addr.c_str(), net.addr) == 1) {
    net.v6 = false;
    net.prefix = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), net.addr) == 1) {
    net.v6 = true;
    net.prefix = 128;
  } else {
    return make_error(Errc::kInvalid, "not an IP address");
  }
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    int prefix = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc{} || ptr != p.data() + p.size() || prefix < 0 ||
        prefix > net.prefix) {
      return make_error(Errc::kInvalid, "bad prefix length");
    }
    net.prefix = prefix;
  }
  return net;
}

bool cidr_contains(const Cidr& net, std::string_view address) {
  if (address.find('\0') != std::string_view::npos) return false;
  std::string addr(trim(address));
  std::uint8_t bytes[16] = {};
  bool v6 = false;
  if (inet_pton(AF_INET, addr.c_str(), bytes) == 1) {
    v6 = false;
  } else if (inet_pton(AF_INET6, addr.c_str(), bytes) == 1) {
    v6 = true;
    static const std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (!net.v6 && std::memcmp(bytes, kMapped, 12) == 0) {
      std::memmove(bytes, bytes + 12, 4);
      v6 = false;
    }
  } else {
    return false;  // a host name, or garbage: never inside a network
  }
  if (v6 != net.v6) return false;
  int full = net.prefix / 8;
  if (std::memcmp(bytes, net.addr, static_cast<std::size_t>(full)) != 0) return false;
  int rest = net.prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (bytes[full] & mask) == (net.addr[full] & mask);
}

}  // namespace pbx::totp

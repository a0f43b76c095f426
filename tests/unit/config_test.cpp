// Config: defaults of pbx-mfa.conf(5) OPTIONS, every key's good and bad values, the file grammar,
// unsafe files, and CIDR matching for exempt_networks.
#include "pbx/totp/config.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "root.hpp"

namespace pbx::totp {
namespace {

using namespace std::literals;

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Defaults

TEST(ConfigDefaults, MatchTheContract) {
  const Config c;
  EXPECT_EQ(c.secret_path, "%h/.pbx-mfa");
  EXPECT_EQ(c.state_dir, "/var/lib/pbx-mfa");
  EXPECT_EQ(c.issuer, "");  // resolved to the host name by the caller
  EXPECT_EQ(c.algorithm, Algorithm::kSha1);
  EXPECT_EQ(c.digits, 6);
  EXPECT_EQ(c.period, 30);
  EXPECT_EQ(c.window, 1);
  EXPECT_EQ(c.max_failures, 5);
  EXPECT_EQ(c.lockout, 60);
  EXPECT_EQ(c.recovery_codes, 5);
  EXPECT_EQ(c.max_devices, 2);
  EXPECT_TRUE(c.require_all);
  EXPECT_TRUE(c.require_groups.empty());
  EXPECT_TRUE(c.exempt_groups.empty());
  EXPECT_TRUE(c.exempt_networks.empty());
  EXPECT_FALSE(c.enroll_at_login);
  EXPECT_FALSE(c.enroll_with_code);
  EXPECT_TRUE(c.helpdesk_groups.empty());
  EXPECT_EQ(c.helpdesk_actions, (std::vector<std::string>{"status", "unlock", "temp-code"}));
  EXPECT_TRUE(c.protected_groups.empty());
  EXPECT_EQ(c.grace_period, 0);
  EXPECT_EQ(c.store, "files");
  EXPECT_EQ(c.pg_conninfo, "");
  EXPECT_EQ(c.pg_timeout_ms, 2500);
  EXPECT_EQ(c.fleet_key, "/etc/security/pbx-mfa.key");
  EXPECT_EQ(c.fleet_key_previous, "");
  EXPECT_EQ(c.pg_plugin, PBX_DEFAULT_PG_PLUGIN);
  EXPECT_EQ(c.trusted_uid, 0U);
  EXPECT_STREQ(kDefaultConfigPath, "/etc/security/pbx-mfa.conf");
  EXPECT_EQ(kMaxConfigSize, 65536U);
}

// Every member, through Config's operator== (a member added later is compared too).
void expect_same(const Config& a, const Config& b) { EXPECT_TRUE(a == b); }

TEST(ConfigDefaults, EmptyOrCommentOnlyTextKeepsDefaults) {
  for (std::string_view text : {""sv, "\n\n"sv, "# nothing here\n   # indented\n\t\n"sv}) {
    Config c;
    auto st = parse_config_text(c, text, "test.conf");
    ASSERT_TRUE(st.ok()) << st.error().message;
    expect_same(c, Config{});
  }
}

// ---------------------------------------------------------------------------------------------
// apply_setting: one key at a time

struct Good {
  const char* key;
  const char* value;
  std::function<void(const Config&)> check;
};

TEST(ConfigApply, EveryKeyAcceptsAGoodValue) {
  const std::vector<Good> cases = {
      {"secret_path", "/var/lib/pbx-mfa/secrets/%u",
       [](const Config& c) { EXPECT_EQ(c.secret_path, "/var/lib/pbx-mfa/secrets/%u"); }},
      {"secret_path", "%h/.config/pbx-mfa",
       [](const Config& c) { EXPECT_EQ(c.secret_path, "%h/.config/pbx-mfa"); }},
      {"secret_path", "/srv/otp/%U-%%-%u",
       [](const Config& c) { EXPECT_EQ(c.secret_path, "/srv/otp/%U-%%-%u"); }},
      {"state_dir", "/run/pbx-mfa",
       [](const Config& c) { EXPECT_EQ(c.state_dir, "/run/pbx-mfa"); }},
      {"issuer", "ACME Corp", [](const Config& c) { EXPECT_EQ(c.issuer, "ACME Corp"); }},
      {"algorithm", "SHA1", [](const Config& c) { EXPECT_EQ(c.algorithm, Algorithm::kSha1); }},
      {"algorithm", "SHA256", [](const Config& c) { EXPECT_EQ(c.algorithm, Algorithm::kSha256); }},
      {"algorithm", "SHA512", [](const Config& c) { EXPECT_EQ(c.algorithm, Algorithm::kSha512); }},
      {"algorithm", "sha256", [](const Config& c) { EXPECT_EQ(c.algorithm, Algorithm::kSha256); }},
      {"digits", "6", [](const Config& c) { EXPECT_EQ(c.digits, 6); }},
      {"digits", "7", [](const Config& c) { EXPECT_EQ(c.digits, 7); }},
      {"digits", "8", [](const Config& c) { EXPECT_EQ(c.digits, 8); }},
      {"period", "15", [](const Config& c) { EXPECT_EQ(c.period, 15); }},
      {"period", "60", [](const Config& c) { EXPECT_EQ(c.period, 60); }},
      {"period", "300", [](const Config& c) { EXPECT_EQ(c.period, 300); }},
      {"window", "0", [](const Config& c) { EXPECT_EQ(c.window, 0); }},
      {"window", "3", [](const Config& c) { EXPECT_EQ(c.window, 3); }},
      {"max_failures", "1", [](const Config& c) { EXPECT_EQ(c.max_failures, 1); }},
      {"max_failures", "10", [](const Config& c) { EXPECT_EQ(c.max_failures, 10); }},
      {"lockout", "30", [](const Config& c) { EXPECT_EQ(c.lockout, 30); }},
      {"lockout", "3600", [](const Config& c) { EXPECT_EQ(c.lockout, 3600); }},
      {"recovery_codes", "0", [](const Config& c) { EXPECT_EQ(c.recovery_codes, 0); }},
      {"recovery_codes", "20", [](const Config& c) { EXPECT_EQ(c.recovery_codes, 20); }},
      {"max_devices", "1", [](const Config& c) { EXPECT_EQ(c.max_devices, 1); }},
      {"max_devices", "5", [](const Config& c) { EXPECT_EQ(c.max_devices, 5); }},
      {"require", "none",
       [](const Config& c) {
         EXPECT_FALSE(c.require_all);
         EXPECT_TRUE(c.require_groups.empty());
       }},
      {"require", "all",
       [](const Config& c) {
         EXPECT_TRUE(c.require_all);
         EXPECT_TRUE(c.require_groups.empty());
       }},
      {"require", "group:wheel",
       [](const Config& c) {
         EXPECT_FALSE(c.require_all);
         EXPECT_EQ(c.require_groups, (std::vector<std::string>{"wheel"}));
       }},
      {"require", "group:wheel,group:admins",
       [](const Config& c) {
         EXPECT_FALSE(c.require_all);
         EXPECT_EQ(c.require_groups, (std::vector<std::string>{"wheel", "admins"}));
       }},
      {"require", "group:wheel, group:admins",
       [](const Config& c) {
         EXPECT_EQ(c.require_groups, (std::vector<std::string>{"wheel", "admins"}));
       }},
      {"exempt_groups", "sso",
       [](const Config& c) { EXPECT_EQ(c.exempt_groups, (std::vector<std::string>{"sso"})); }},
      {"exempt_groups", "sso,contractors",
       [](const Config& c) {
         EXPECT_EQ(c.exempt_groups, (std::vector<std::string>{"sso", "contractors"}));
       }},
      {"exempt_groups", "", [](const Config& c) { EXPECT_TRUE(c.exempt_groups.empty()); }},
      {"exempt_networks", "10.0.0.0/8,192.168.1.0/24,fd00::/8",
       [](const Config& c) {
         ASSERT_EQ(c.exempt_networks.size(), 3U);
         EXPECT_FALSE(c.exempt_networks[0].v6);
         EXPECT_EQ(c.exempt_networks[0].prefix, 8);
         EXPECT_EQ(c.exempt_networks[1].prefix, 24);
         EXPECT_TRUE(c.exempt_networks[2].v6);
         EXPECT_TRUE(cidr_contains(c.exempt_networks[1], "192.168.1.77"));
         EXPECT_TRUE(cidr_contains(c.exempt_networks[2], "fd12::1"));
       }},
      {"exempt_networks", "", [](const Config& c) { EXPECT_TRUE(c.exempt_networks.empty()); }},
      {"enroll_at_login", "yes", [](const Config& c) { EXPECT_TRUE(c.enroll_at_login); }},
      {"enroll_at_login", "no", [](const Config& c) { EXPECT_FALSE(c.enroll_at_login); }},
      {"grace_period", "0", [](const Config& c) { EXPECT_EQ(c.grace_period, 0); }},
      {"grace_period", "300", [](const Config& c) { EXPECT_EQ(c.grace_period, 300); }},
      {"store", "files", [](const Config& c) { EXPECT_EQ(c.store, "files"); }},
      {"store", "postgresql", [](const Config& c) { EXPECT_EQ(c.store, "postgresql"); }},
      {"pg_conninfo", "host=db1,db2 dbname=pbx user=pbx target_session_attrs=read-write",
       [](const Config& c) {
         EXPECT_EQ(c.pg_conninfo,
                   "host=db1,db2 dbname=pbx user=pbx target_session_attrs=read-write");
       }},
      {"pg_timeout_ms", "2500", [](const Config& c) { EXPECT_EQ(c.pg_timeout_ms, 2500); }},
      {"pg_timeout_ms", "500", [](const Config& c) { EXPECT_EQ(c.pg_timeout_ms, 500); }},
      {"fleet_key", "/etc/pbx/fleet.key",
       [](const Config& c) { EXPECT_EQ(c.fleet_key, "/etc/pbx/fleet.key"); }},
      {"pg_plugin", "/opt/pbx/pbx_store_postgresql.so",
       [](const Config& c) { EXPECT_EQ(c.pg_plugin, "/opt/pbx/pbx_store_postgresql.so"); }},
      {"fleet_key_previous", "/etc/security/pbx-mfa.key.old",
       [](const Config& c) { EXPECT_EQ(c.fleet_key_previous, "/etc/security/pbx-mfa.key.old"); }},
      {"fleet_key_previous", "",
       [](const Config& c) { EXPECT_TRUE(c.fleet_key_previous.empty()); }},
      {"enroll_at_login", "with-code",
       [](const Config& c) { EXPECT_TRUE(c.enroll_at_login && c.enroll_with_code); }},
      {"helpdesk_groups", "noc, tier1",
       [](const Config& c) {
         EXPECT_EQ(c.helpdesk_groups, (std::vector<std::string>{"noc", "tier1"}));
       }},
      {"helpdesk_groups", "", [](const Config& c) { EXPECT_TRUE(c.helpdesk_groups.empty()); }},
      {"helpdesk_actions", "status,reset",
       [](const Config& c) {
         EXPECT_EQ(c.helpdesk_actions, (std::vector<std::string>{"status", "reset"}));
       }},
      {"helpdesk_actions", "status, unlock, temp-code, require, reset",
       [](const Config& c) { EXPECT_EQ(c.helpdesk_actions.size(), 5U); }},
      {"protected_groups", "sudo",
       [](const Config& c) { EXPECT_EQ(c.protected_groups, (std::vector<std::string>{"sudo"})); }},
      {"events_max_size", "10M",
       [](const Config& c) { EXPECT_EQ(c.events_max_size, 10 * 1024 * 1024); }},
      {"events_max_size", "65536", [](const Config& c) { EXPECT_EQ(c.events_max_size, 65536); }},
      {"notify_command", "/usr/local/sbin/page-oncall",
       [](const Config& c) { EXPECT_EQ(c.notify_command, "/usr/local/sbin/page-oncall"); }},
      {"notify_command", "", [](const Config& c) { EXPECT_TRUE(c.notify_command.empty()); }},
      {"notify_events", "all",
       [](const Config& c) { EXPECT_EQ(c.notify_events, (std::vector<std::string>{"all"})); }},
      {"notify_events", "recovery-code-accepted, temp-code",
       [](const Config& c) {
         EXPECT_EQ(c.notify_events,
                   (std::vector<std::string>{"recovery-code-accepted", "temp-code"}));
       }},
      {"notify_timeout", "5", [](const Config& c) { EXPECT_EQ(c.notify_timeout, 5); }},
      {"notify_rate", "60", [](const Config& c) { EXPECT_EQ(c.notify_rate, 60); }},
  };
  for (const auto& g : cases) {
    SCOPED_TRACE(std::string(g.key) + " = " + g.value);
    Config c;
    auto st = apply_setting(c, g.key, g.value);
    ASSERT_TRUE(st.ok()) << st.error().message;
    g.check(c);
  }
  for (const Setting& s : settings()) {
    bool covered = false;
    for (const auto& g : cases) covered = covered || g.key == s.name;
    EXPECT_TRUE(covered) << "no good value tried for " << s.name;
  }
}

TEST(ConfigApply, RequireAllAfterGroupsForgetsTheGroups) {
  Config c;
  ASSERT_TRUE(apply_setting(c, "require", "group:wheel").ok());
  ASSERT_TRUE(apply_setting(c, "require", "all").ok());
  EXPECT_TRUE(c.require_all);
  EXPECT_TRUE(c.require_groups.empty());
}

struct Bad {
  const char* key;
  std::string value;
};

TEST(ConfigApply, EveryKeyRejectsBadValuesNamingTheKey) {
  const std::vector<Bad> cases = {
      {"secret_path", ""},
      {"secret_path", "%x/.pbx-mfa"},  // unknown escape
      {"secret_path", "/srv/otp/%"},   // dangling escape
      {"state_dir", ""},
      {"state_dir", "var/lib/pbx-mfa"},  // relative
      {"issuer", "ACME\x01"},
      {"issuer", "ACME:pbx"},  // the label separator
      {"algorithm", "MD5"},
      {"algorithm", "SHA384"},
      {"algorithm", ""},
      {"digits", "5"},
      {"digits", "9"},
      {"digits", "0"},
      {"digits", "-6"},
      {"digits", "six"},
      {"digits", ""},
      {"digits", "6x"},
      {"digits", "6.5"},
      {"digits", "99999999999999999999"},
      {"period", "14"},
      {"period", "301"},
      {"period", "0"},
      {"period", "-30"},
      {"period", "30s"},
      {"period", ""},
      {"window", "-1"},
      {"window", "1000000"},
      {"window", "99999999999999999999"},
      {"window", "one"},
      {"max_failures", "-1"},
      {"max_failures", "0"},  // a lockout before the first failure locks everyone out
      {"max_failures", "lots"},
      {"max_failures", "99999999999999999999"},
      {"lockout", "-60"},
      {"lockout", "60s"},
      {"lockout", "99999999999999999999"},
      {"lockout", "3601"},  // the cap is 3600
      {"recovery_codes", "21"},
      {"recovery_codes", "-1"},
      {"recovery_codes", "five"},
      {"max_devices", "0"},
      {"max_devices", "6"},
      {"max_devices", "two"},
      {"require", "bogus"},
      {"require", "wheel"},
      {"require", "group:"},
      {"require", "user:alice"},
      {"require", "group:wheel,"},
      {"require", "group:wheel,,group:admins"},
      {"require", ""},
      {"exempt_groups", "sso,,ops"},
      {"exempt_groups", "sso,"},
      {"exempt_networks", "10.0.0.0/33"},
      {"exempt_networks", "10.0.0.0/8,garbage"},
      {"exempt_networks", "300.0.0.0/8"},
      {"exempt_networks", "fd00::/129"},
      {"exempt_networks", "10.0.0.0/-1"},
      {"exempt_networks", "localhost"},
      {"exempt_networks", "10.0.0.0/8,"},
      {"enroll_at_login", "maybe"},
      {"enroll_at_login", "2"},
      {"enroll_at_login", ""},
      {"enroll_at_login", "yess"},
      {"grace_period", "-1"},
      {"grace_period", "soon"},
      {"grace_period", "99999999999999999999"},
      {"store", "mysql"},
      {"store", ""},
      {"store", "file"},
      {"store", "postgres ql"},
      {"pg_timeout_ms", "-1"},
      {"pg_timeout_ms", "abc"},
      {"pg_timeout_ms", ""},
      {"pg_timeout_ms", "99999999999999999999"},
      {"fleet_key", ""},
      {"fleet_key", "pbx-mfa.key"},               // relative
      {"fleet_key_previous", "pbx-mfa.key.old"},  // relative
      {"fleet_key_previous", "/etc/x\x01"},
      {"pg_conninfo", "host=db1\x01"},
      {"pg_plugin", ""},
      {"enroll_at_login", "with_code"},
      {"helpdesk_groups", "noc,,tier1"},
      {"helpdesk_groups", "bad group"},
      {"helpdesk_actions", "enroll"},
      {"helpdesk_actions", "status,break-glass"},
      {"helpdesk_actions", "status,"},
      {"protected_groups", "a:b"},
      {"pg_plugin", "pbx_store_postgresql.so"},  // relative: found through the search path
      {"events_max_size", "1K"},
      {"events_max_size", "2G"},
      {"events_max_size", "10 M"},
      {"events_max_size", "lots"},
      {"notify_command", "page-oncall"},  // relative
      {"notify_command", "/usr/bin/x\x01"},
      {"notify_events", "recovery,nonsense"},
      {"notify_events", "rec"},  // not a whole first word
      {"notify_events", "reset,"},
      {"notify_timeout", "0"},
      {"notify_timeout", "601"},
      {"notify_rate", "0"},
      {"notify_rate", "often"},
  };
  for (const auto& b : cases) {
    SCOPED_TRACE(std::string(b.key) + " = '" + b.value + "'");
    Config c;
    auto st = apply_setting(c, b.key, b.value);
    ASSERT_FALSE(st.ok()) << "accepted";
    EXPECT_EQ(st.error().code, Errc::kConfig);
    EXPECT_TRUE(contains(st.error().message, b.key)) << st.error().message;
  }
  for (const Setting& s : settings()) {
    bool covered = false;
    for (const auto& b : cases) covered = covered || b.key == s.name;
    EXPECT_TRUE(covered) << "no bad value tried for " << s.name;
  }
}

TEST(ConfigApply, UnknownKeyIsAnErrorNamingIt) {
  for (const char* key : {"colour", "digit", "secret", "", "window "}) {
    Config c;
    auto st = apply_setting(c, key, "1");
    ASSERT_FALSE(st.ok()) << "'" << key << "' accepted";
    EXPECT_EQ(st.error().code, Errc::kConfig);
    if (*key != '\0') {
      EXPECT_TRUE(contains(st.error().message, key)) << st.error().message;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// settings(): the one list of keys

TEST(SettingsTable, NamesAreUniqueKeysWithOneLineOfHelp) {
  ASSERT_FALSE(settings().empty());
  for (std::size_t i = 0; i < settings().size(); ++i) {
    const Setting& s = settings()[i];
    SCOPED_TRACE(std::string(s.name));
    EXPECT_FALSE(s.name.empty());
    EXPECT_EQ(s.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string_view::npos);
    EXPECT_NE(s.apply, nullptr);
    EXPECT_FALSE(s.help.empty());
    EXPECT_EQ(s.help.find('\n'), std::string_view::npos);
    EXPECT_LE(s.help.size(), 90U);
    EXPECT_EQ(find_setting(s.name), &s);
    for (std::size_t j = i + 1; j < settings().size(); ++j) EXPECT_NE(settings()[j].name, s.name);
  }
  EXPECT_EQ(find_setting("colour"), nullptr);
  EXPECT_EQ(find_setting(""), nullptr);
}

TEST(SettingsTable, EveryDefaultMeansTheDefault) {
  for (const Setting& s : settings()) {
    SCOPED_TRACE(std::string(s.name) + " = '" + std::string(s.default_value) + "'");
    Config c;
    auto st = apply_setting(c, s.name, s.default_value);
    if (!st) {
      // Only "unset" may be refused as a value (issuer: empty means the host name).
      EXPECT_TRUE(s.default_value.empty()) << st.error().message;
      continue;
    }
    expect_same(c, Config{});
  }
}

TEST(SettingsTable, EveryKeyIsReachableThroughTheFile) {
  for (const Setting& s : settings()) {
    if (s.default_value.empty()) continue;
    SCOPED_TRACE(std::string(s.name));
    Config c;
    std::string text = "  " + std::string(s.name) + " =\t" + std::string(s.default_value) + " \n";
    auto st = parse_config_text(c, text, "test.conf");
    ASSERT_TRUE(st.ok()) << st.error().message;
    expect_same(c, Config{});
  }
}

// ---------------------------------------------------------------------------------------------
// parse_config_text: the grammar

TEST(ConfigText, CommentsBlankLinesAndWhitespaceAroundEquals) {
  const std::string text =
      "# pbx-mfa configuration\n"
      "\n"
      "   # an indented comment\n"
      "digits=8\n"
      "  period   =   60  \n"
      "\twindow\t=\t2\t\n"
      "issuer = ACME Corp\n"
      "algorithm =SHA256\n"
      "enroll_at_login= yes\n"
      "exempt_groups = sso, contractors\n"
      "require = group:wheel\n"
      "exempt_networks = 10.0.0.0/8, fd00::/8\n"
      "secret_path = /var/lib/pbx-mfa/secrets/%u\n"
      "pg_conninfo = host=db1,db2 dbname=pbx connect_timeout=2\n"
      "\n";
  Config c;
  auto st = parse_config_text(c, text, "test.conf");
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(c.digits, 8);
  EXPECT_EQ(c.period, 60);
  EXPECT_EQ(c.window, 2);
  EXPECT_EQ(c.issuer, "ACME Corp");
  EXPECT_EQ(c.algorithm, Algorithm::kSha256);
  EXPECT_TRUE(c.enroll_at_login);
  EXPECT_EQ(c.exempt_groups, (std::vector<std::string>{"sso", "contractors"}));
  EXPECT_FALSE(c.require_all);
  EXPECT_EQ(c.require_groups, (std::vector<std::string>{"wheel"}));
  EXPECT_EQ(c.exempt_networks.size(), 2U);
  EXPECT_EQ(c.secret_path, "/var/lib/pbx-mfa/secrets/%u");
  // Only the first '=' separates key and value.
  EXPECT_EQ(c.pg_conninfo, "host=db1,db2 dbname=pbx connect_timeout=2");
  // Untouched keys keep their defaults.
  EXPECT_EQ(c.max_failures, 5);
  EXPECT_EQ(c.store, "files");
}

TEST(ConfigText, NoFinalNewlineAndCrLfLineEndings) {
  Config c;
  auto st = parse_config_text(c, "digits = 7\r\nperiod = 45\r\n# done\r\nwindow = 0", "t.conf");
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(c.digits, 7);
  EXPECT_EQ(c.period, 45);
  EXPECT_EQ(c.window, 0);
}

TEST(ConfigText, BadValueNamesSourceLineAndKey) {
  Config c;
  auto st = parse_config_text(c, "# header\n\ndigits = 6\nperiod = 14\nwindow = 1\n",
                              "/etc/security/pbx-mfa.conf");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kConfig);
  EXPECT_TRUE(contains(st.error().message, "/etc/security/pbx-mfa.conf:4")) << st.error().message;
  EXPECT_TRUE(contains(st.error().message, "period")) << st.error().message;
}

TEST(ConfigText, EveryBadValueNamesItsLine) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"digits", "9"},      {"period", "301"},
      {"window", "-1"},     {"recovery_codes", "21"},
      {"require", "bogus"}, {"exempt_networks", "1.2.3.4/40"},
      {"store", "mysql"},   {"enroll_at_login", "perhaps"},
      {"algorithm", "MD5"},
  };
  for (const auto& [key, value] : bad) {
    const std::string text = "issuer = ACME\n# comment\n\n" + key + " = " + value + "\n";
    Config c;
    auto st = parse_config_text(c, text, "x.conf");
    ASSERT_FALSE(st.ok()) << key << " = " << value;
    EXPECT_TRUE(contains(st.error().message, "x.conf:4")) << st.error().message;
    EXPECT_TRUE(contains(st.error().message, key)) << st.error().message;
  }
}

TEST(ConfigText, UnknownKeyNamesItsLine) {
  Config c;
  auto st = parse_config_text(c, "digits = 6\ncolour = blue\n", "x.conf");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kConfig);
  EXPECT_TRUE(contains(st.error().message, "x.conf:2")) << st.error().message;
  EXPECT_TRUE(contains(st.error().message, "colour")) << st.error().message;
}

TEST(ConfigText, LineWithoutEqualsIsAnError) {
  for (std::string_view text : {"digits 8\n"sv, "digits\n"sv, "[section]\n"sv}) {
    Config c;
    auto st = parse_config_text(c, text, "x.conf");
    ASSERT_FALSE(st.ok()) << text;
    EXPECT_EQ(st.error().code, Errc::kConfig);
    EXPECT_TRUE(contains(st.error().message, "x.conf:1")) << st.error().message;
  }
}

TEST(ConfigText, APreviousFleetKeyThatIsTheFleetKeyIsAnError) {
  for (const char* text : {"fleet_key_previous = /etc/security/pbx-mfa.key\n",
                           "fleet_key_previous = /k/a\nfleet_key = /k/a\n"}) {
    SCOPED_TRACE(text);
    Config c;
    auto st = parse_config_text(c, text, "x.conf");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, Errc::kConfig);
    EXPECT_TRUE(contains(st.error().message, "fleet_key_previous")) << st.error().message;
    EXPECT_TRUE(c == Config{});  // nothing applied
  }
  Config c;
  ASSERT_TRUE(parse_config_text(c, "fleet_key = /k/new\nfleet_key_previous = /k/old\n", "x.conf"));
  EXPECT_EQ(c.fleet_key_previous, "/k/old");
}

TEST(ConfigText, NulByteIsAnError) {
  Config c;
  auto st = parse_config_text(c, "digits = 6\nissuer = AC\0ME\n"s, "x.conf");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.error().message, "x.conf:2")) << st.error().message;
}

// ---------------------------------------------------------------------------------------------
// load_config: files on disk

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pbx-config-test.XXXXXX");
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    uid_ = ::geteuid();
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes `text` to a file with exactly `mode`, owned by us; returns its path.
  std::string write(const std::string& name, std::string_view text, mode_t mode = 0644) {
    std::string path = dir_ + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << path;
    if (fd < 0) return path;
    EXPECT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    EXPECT_EQ(::fchmod(fd, mode), 0);  // not subject to the umask
    ::close(fd);
    return path;
  }

  void expect_unsafe(const std::string& path, uid_t trusted, const std::string& why) {
    SCOPED_TRACE(why);
    auto r = load_config(path, true, trusted);
    ASSERT_FALSE(r.ok()) << path << " accepted";
    EXPECT_EQ(r.error().code, Errc::kConfig);
    EXPECT_TRUE(contains(r.error().message, path)) << r.error().message;
    // The default path is treated the same way: only a missing file means defaults.
    auto implicit = load_config(path, false, trusted);
    EXPECT_FALSE(implicit.ok()) << path << " accepted as the default file";
  }

  std::string dir_;
  uid_t uid_ = 0;
};

TEST_F(ConfigFile, LoadsASafeFile) {
  std::string path = write("pbx-mfa.conf", "digits = 8\nperiod = 60\nstore = postgresql\n");
  auto r = load_config(path, true, uid_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->digits, 8);
  EXPECT_EQ(r->period, 60);
  EXPECT_EQ(r->store, "postgresql");
  EXPECT_EQ(r->window, 1);
  EXPECT_EQ(r->trusted_uid, uid_);
}

TEST_F(ConfigFile, EmptyFileMeansDefaults) {
  PBX_SKIP_UNLESS_ROOT("the defaults trust root (trusted_uid 0)");
  auto r = load_config(write("empty.conf", ""), true, uid_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  expect_same(*r, Config{});
}

TEST_F(ConfigFile, MissingDefaultFileMeansDefaults) {
  PBX_SKIP_UNLESS_ROOT("the defaults trust root (trusted_uid 0)");
  auto r = load_config(dir_ + "/absent.conf", false, uid_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  expect_same(*r, Config{});
}

TEST_F(ConfigFile, MissingExplicitFileIsAnError) {
  const std::string path = dir_ + "/absent.conf";
  auto r = load_config(path, true, uid_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kConfig);
  EXPECT_TRUE(contains(r.error().message, path)) << r.error().message;
}

TEST_F(ConfigFile, BadValueNamesFileLineAndKey) {
  std::string path = write("bad.conf", "# comment\ndigits = 8\n\nmax_failures = lots\n");
  auto r = load_config(path, true, uid_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kConfig);
  EXPECT_TRUE(contains(r.error().message, path + ":4")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "max_failures")) << r.error().message;
}

TEST_F(ConfigFile, UnknownKeyNamesFileAndLine) {
  std::string path = write("unknown.conf", "digits = 8\nwindwo = 2\n");
  auto r = load_config(path, false, uid_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message, path + ":2")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "windwo")) << r.error().message;
}

TEST_F(ConfigFile, ReadableByOthersIsFine) {
  PBX_SKIP_UNLESS_ROOT("rewrites a read-only file");
  for (mode_t mode : {0600, 0400, 0640, 0644, 0444}) {
    std::string path = write("mode.conf", "digits = 7\n", mode);
    auto r = load_config(path, true, uid_);
    ASSERT_TRUE(r.ok()) << std::oct << mode << ": " << r.error().message;
    EXPECT_EQ(r->digits, 7);
  }
}

TEST_F(ConfigFile, GroupOrOtherWritableIsRefused) {
  for (mode_t mode : {0664, 0620, 0646, 0602, 0666, 0777}) {
    std::string path = write("writable.conf", "digits = 7\n", mode);
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    expect_unsafe(path, uid_, std::string("mode ") + octal);
  }
}

TEST_F(ConfigFile, SymlinkIsRefused) {
  std::string target = write("real.conf", "digits = 7\n");
  std::string link = dir_ + "/link.conf";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  expect_unsafe(link, uid_, "symlink to a safe file");
  std::string dangling = dir_ + "/dangling.conf";
  ASSERT_EQ(::symlink((dir_ + "/nowhere").c_str(), dangling.c_str()), 0);
  expect_unsafe(dangling, uid_, "dangling symlink");
}

TEST_F(ConfigFile, NotOwnedByTheTrustedUserIsRefused) {
  std::string path = write("owner.conf", "digits = 7\n");
  expect_unsafe(path, uid_ + 1, "trusted uid differs from the owner");
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
    expect_unsafe(path, 0, "owned by nobody, root expected");
    auto r = load_config(path, true, 65534);  // the owner check is a parameter
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->digits, 7);
  }
}

TEST_F(ConfigFile, DirectoryIsRefused) {
  std::string path = dir_ + "/dir.conf";
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  expect_unsafe(path, uid_, "directory");
}

TEST_F(ConfigFile, DeviceIsRefused) { expect_unsafe("/dev/null", 0, "character device"); }

TEST_F(ConfigFile, FifoIsRefusedWithoutHanging) {
  std::string path = dir_ + "/fifo.conf";
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
  const auto started = std::chrono::steady_clock::now();
  auto pending = std::async(std::launch::async, [&] { return load_config(path, true, uid_); });
  if (pending.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    // Unblock the reader so the test can end: open the FIFO for writing, then close it.
    int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
    pending.wait();
    FAIL() << "load_config hung on a FIFO for more than 5 seconds";
  }
  auto r = pending.get();
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  ASSERT_FALSE(r.ok()) << "a FIFO was accepted as a config file";
  EXPECT_EQ(r.error().code, Errc::kConfig);
}

TEST_F(ConfigFile, OversizeFileIsRefused) {
  std::string big(kMaxConfigSize + 1, '#');
  big.back() = '\n';
  std::string path = write("big.conf", big);
  expect_unsafe(path, uid_, "larger than 64 KiB");
}

TEST_F(ConfigFile, LargeButAllowedFileLoads) {
  std::string text;
  while (text.size() + 64 < kMaxConfigSize) text += "# " + std::string(60, 'x') + "\n";
  text += "digits = 7\n";
  ASSERT_LE(text.size(), kMaxConfigSize);
  auto r = load_config(write("large.conf", text), true, uid_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->digits, 7);
}

// ---------------------------------------------------------------------------------------------
// CIDR

Cidr cidr(std::string_view text) {
  auto r = parse_cidr(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : Cidr{};
}

TEST(CidrParse, Ipv4) {
  auto n = parse_cidr("127.0.0.0/8");
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_FALSE(n->v6);
  EXPECT_EQ(n->prefix, 8);
  EXPECT_EQ(n->addr[0], 127);
  EXPECT_EQ(cidr("10.1.2.3/32").prefix, 32);
  EXPECT_EQ(cidr("0.0.0.0/0").prefix, 0);
  EXPECT_EQ(cidr("192.168.100.0/22").prefix, 22);
}

TEST(CidrParse, Ipv6) {
  auto n = parse_cidr("2001:db8::/32");
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_TRUE(n->v6);
  EXPECT_EQ(n->prefix, 32);
  EXPECT_EQ(n->addr[0], 0x20);
  EXPECT_EQ(n->addr[1], 0x01);
  EXPECT_EQ(n->addr[2], 0x0d);
  EXPECT_EQ(n->addr[3], 0xb8);
  EXPECT_EQ(cidr("::1/128").prefix, 128);
  EXPECT_EQ(cidr("::/0").prefix, 0);
  EXPECT_EQ(cidr("fe80::/10").prefix, 10);
}

TEST(CidrParse, SingleAddressIsAHostNetwork) {
  EXPECT_EQ(cidr("192.0.2.7").prefix, 32);
  EXPECT_EQ(cidr("2001:db8::7").prefix, 128);
}

TEST(CidrParse, RejectsBadPrefixesAndAddresses) {
  for (std::string_view bad : {""sv,
                               "/8"sv,
                               "10.0.0.0/"sv,
                               "10.0.0.0/33"sv,
                               "10.0.0.0/-1"sv,
                               "10.0.0.0/8x"sv,
                               "10.0.0.0/ 8"sv,
                               "10.0.0.0/+8"sv,
                               "10.0.0.0/8/8"sv,
                               "10.0.0.0/99999999999999999999"sv,
                               "::/129"sv,
                               "::1/200"sv,
                               "garbage"sv,
                               "garbage/8"sv,
                               "localhost/8"sv,
                               "256.0.0.0/8"sv,
                               "1.2.3/24"sv,
                               "1.2.3.4.5/32"sv,
                               "1.2.3.-4/32"sv,
                               "gggg::/16"sv,
                               "1:2:3:4:5:6:7:8:9/64"sv,
                               "2001:db8:::/48"sv}) {
    auto r = parse_cidr(bad);
    EXPECT_FALSE(r.ok()) << "accepted '" << bad << "'";
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, Errc::kInvalid) << bad;
    }
  }
}

TEST(CidrParse, RejectsEmbeddedNul) {
  // The whole string_view is the input; a C-string conversion must not cut it short.
  for (std::string_view bad :
       {"10.0.0.0\0/8"sv, "10.0.0.0/8\0garbage"sv, "10.0.0.0\0garbage/8"sv, "::1\0junk/128"sv}) {
    auto r = parse_cidr(bad);
    EXPECT_FALSE(r.ok()) << "accepted '" << bad << "' (length " << bad.size() << ")";
  }
}

TEST(CidrContains, Ipv4) {
  const Cidr loopback = cidr("127.0.0.0/8");
  EXPECT_TRUE(cidr_contains(loopback, "127.0.0.1"));
  EXPECT_TRUE(cidr_contains(loopback, "127.0.0.0"));
  EXPECT_TRUE(cidr_contains(loopback, "127.255.255.255"));
  EXPECT_FALSE(cidr_contains(loopback, "128.0.0.1"));
  EXPECT_FALSE(cidr_contains(loopback, "126.255.255.255"));

  const Cidr lan = cidr("192.168.1.0/24");
  EXPECT_TRUE(cidr_contains(lan, "192.168.1.0"));
  EXPECT_TRUE(cidr_contains(lan, "192.168.1.255"));
  EXPECT_FALSE(cidr_contains(lan, "192.168.2.1"));
  EXPECT_FALSE(cidr_contains(lan, "192.168.0.255"));

  const Cidr odd = cidr("10.0.0.0/9");  // a prefix that is not a whole number of bytes
  EXPECT_TRUE(cidr_contains(odd, "10.127.255.255"));
  EXPECT_FALSE(cidr_contains(odd, "10.128.0.0"));

  const Cidr host = cidr("10.1.2.3/32");
  EXPECT_TRUE(cidr_contains(host, "10.1.2.3"));
  EXPECT_FALSE(cidr_contains(host, "10.1.2.4"));
  EXPECT_FALSE(cidr_contains(host, "10.1.2.2"));

  const Cidr all = cidr("0.0.0.0/0");
  EXPECT_TRUE(cidr_contains(all, "0.0.0.0"));
  EXPECT_TRUE(cidr_contains(all, "1.2.3.4"));
  EXPECT_TRUE(cidr_contains(all, "255.255.255.255"));
}

TEST(CidrContains, Ipv6) {
  const Cidr doc = cidr("2001:db8::/32");
  EXPECT_TRUE(cidr_contains(doc, "2001:db8::1"));
  EXPECT_TRUE(cidr_contains(doc, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
  EXPECT_TRUE(cidr_contains(doc, "2001:DB8::abcd"));
  EXPECT_FALSE(cidr_contains(doc, "2001:db9::1"));
  EXPECT_FALSE(cidr_contains(doc, "2001:db7:ffff::1"));

  const Cidr link_local = cidr("fe80::/10");
  EXPECT_TRUE(cidr_contains(link_local, "fe80::1"));
  EXPECT_TRUE(cidr_contains(link_local, "febf:ffff::1"));
  EXPECT_FALSE(cidr_contains(link_local, "fec0::1"));

  const Cidr one = cidr("::1/128");
  EXPECT_TRUE(cidr_contains(one, "::1"));
  EXPECT_TRUE(cidr_contains(one, "0:0:0:0:0:0:0:1"));
  EXPECT_FALSE(cidr_contains(one, "::2"));
  EXPECT_FALSE(cidr_contains(one, "::"));

  const Cidr all = cidr("::/0");
  EXPECT_TRUE(cidr_contains(all, "::1"));
  EXPECT_TRUE(cidr_contains(all, "2001:db8::1"));
  EXPECT_TRUE(cidr_contains(all, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
}

TEST(CidrContains, Ipv4MappedIpv6AddressMatchesIpv4Network) {
  // sshd reports IPv4 clients of a dual-stack socket as ::ffff:a.b.c.d.
  const Cidr loopback = cidr("127.0.0.0/8");
  EXPECT_TRUE(cidr_contains(loopback, "::ffff:127.0.0.1"));
  EXPECT_TRUE(cidr_contains(loopback, "::FFFF:127.1.2.3"));
  EXPECT_FALSE(cidr_contains(loopback, "::ffff:128.0.0.1"));
  const Cidr lan = cidr("192.168.1.0/24");
  EXPECT_TRUE(cidr_contains(lan, "::ffff:192.168.1.20"));
  EXPECT_TRUE(cidr_contains(lan, "::ffff:c0a8:0114"));  // the same address in hex
  EXPECT_FALSE(cidr_contains(lan, "::ffff:192.168.2.20"));
  // Not mapped: an IPv4-compatible or NAT64 address is a different address.
  EXPECT_FALSE(cidr_contains(loopback, "::127.0.0.1"));
  EXPECT_FALSE(cidr_contains(loopback, "64:ff9b::127.0.0.1"));
}

TEST(CidrContains, FamiliesDoNotMix) {
  EXPECT_FALSE(cidr_contains(cidr("127.0.0.0/8"), "::1"));
  EXPECT_FALSE(cidr_contains(cidr("0.0.0.0/0"), "2001:db8::1"));
  EXPECT_FALSE(cidr_contains(cidr("::1/128"), "127.0.0.1"));
  EXPECT_FALSE(cidr_contains(cidr("2001:db8::/32"), "32.1.13.184"));
}

TEST(CidrContains, GarbageAddressesAreNeverInside) {
  const Cidr all4 = cidr("0.0.0.0/0");
  const Cidr all6 = cidr("::/0");
  for (std::string_view bad :
       {""sv, "localhost"sv, "example.com"sv, "127.0.0.1/8"sv, "127.0.0.1.1"sv, "127.0.0"sv,
        "300.0.0.1"sv, "1.2.3.4 5"sv, "::ffff:999.0.0.1"sv, "::g"sv, "1::2::3"sv, ":::"sv,
        "fe80::1%eth0"sv, "[::1]"sv, "127.0.0.1:22"sv}) {
    EXPECT_FALSE(cidr_contains(all4, bad)) << "'" << bad << "' inside 0.0.0.0/0";
    EXPECT_FALSE(cidr_contains(all6, bad)) << "'" << bad << "' inside ::/0";
  }
}

TEST(CidrContains, EmbeddedNulIsNeverInside) {
  const Cidr all4 = cidr("0.0.0.0/0");
  const Cidr all6 = cidr("::/0");
  for (std::string_view bad : {"127.0.0.1\0"sv, "127.0.0.1\0evil"sv, "::1\0garbage"sv}) {
    EXPECT_FALSE(cidr_contains(all4, bad)) << "'" << bad << "' inside 0.0.0.0/0";
    EXPECT_FALSE(cidr_contains(all6, bad)) << "'" << bad << "' inside ::/0";
  }
}

}  // namespace
}  // namespace pbx::totp

// The checks of store = postgresql: password, GSSAPI encryption, fleet key, connection, TLS,
// schema, replication (a host list without a synchronous standby), break-glass.
#include <sys/stat.h>

#include <cerrno>

#include "checks.hpp"
#include "config_checks.hpp"
#include "conninfo.hpp"
#include "pbx/totp/break_glass.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/seal.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::cli::doctor {

std::vector<Check> check_db_password(const Facts& f) {
  if (!f.uses_database()) return {};
  const Session& s = f.session;
  // A password in pg_conninfo is the database role's password in a file every user may read.
  std::string conninfo = totp::to_lower(s.config.pg_conninfo);
  bool password = conninfo.find("password") != std::string::npos ||
                  (conninfo.rfind("postgres", 0) == 0 && conninfo.find('@') != std::string::npos &&
                   conninfo.find(':', conninfo.find("//") + 2) < conninfo.find('@'));
  if (!password) return {};
  struct stat st {};
  bool readable = ::stat(s.config_path.c_str(), &st) != 0 || (st.st_mode & 0044) != 0;
  return {{"db-password", readable ? Status::kFail : Status::kWarn,
           std::string("pg_conninfo holds a password") +
               (readable ? ", in a config file others can read" : ""),
           "put it in a root-only file named by passfile= (mode 0600), or use a "
           "client certificate (sslcert=, sslkey=)"}};
}

std::vector<Check> gssenc_checks(const std::string& conninfo) {
  auto params = parse_conninfo(conninfo);
  if (!params) return {};
  auto named = [&](const char* key) {
    auto it = params->find(key);
    return it == params->end() ? std::string() : it->second;
  };
  std::string mode = named("gssencmode");
  std::vector<std::string> tcp;
  for (const auto& h : conninfo_hosts(*params)) {
    if (h.tcp) tcp.push_back(h.name);
  }
  Check c{"db-gssenc", Status::kPass, "", ""};
  if (tcp.empty()) {
    c.message = "Unix socket only: libpq does not use GSSAPI encryption there";
    return {c};
  }
  std::string hosts;
  for (const auto& h : tcp) hosts += (hosts.empty() ? "" : ", ") + h;
  if (mode.empty() || mode == "disable") {
    c.message = "TCP to " + hosts +
                (mode.empty() ? " with gssencmode not named: the plugin passes gssencmode=disable"
                              : " with gssencmode=disable") +
                ", so the Kerberos credential cache is not read to set up encryption";
    return {c};
  }
  std::string sslmode = named("sslmode");
  c.status = Status::kFail;
  c.message = "pg_conninfo asks for gssencmode=" + mode + " over TCP (" + hosts +
              "): libpq then opens the Kerberos credential cache (by default /tmp/krb5cc_UID, "
              "a name any local user can plant) before TLS, so a planted file can stall or "
              "fail database logins, and a planted ticket makes libpq use GSSAPI encryption "
              "instead of TLS";
  if (sslmode == "verify-full" || sslmode == "verify-ca") {
    c.message +=
        ", whatever sslmode=" + sslmode + " says: the server's certificate would not be checked";
  }
  c.fix =
      "write gssencmode=disable in pg_conninfo (or leave gssencmode out), with "
      "sslmode=verify-full for TCP";
  return {c};
}

std::vector<Check> check_db_gssenc(const Facts& f) {
  if (!f.uses_database()) return {};
  return gssenc_checks(f.session.config.pg_conninfo);
}

std::vector<Check> check_fleet_key(const Facts& f) {
  if (!f.uses_database()) return {};
  const totp::Config& c = f.session.config;
  auto key = totp::load_fleet_key(c.fleet_key, c.trusted_uid);
  if (key) return {{"fleet-key", Status::kPass, c.fleet_key + ": 32 bytes, root-only", ""}};
  return {{"fleet-key", Status::kFail, key.error().message,
           "copy the fleet key from a server of the fleet (install -m 0400 -o root), "
           "or run 'pbx-mfa db init' on the first server"}};
}

namespace {

// pg_plugin names no file (the plugin's package is not installed): as the library sees it, an
// open that fails with ENOENT (a dangling symlink is an error of its own).
bool plugin_missing(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) != 0 && errno == ENOENT;
}

std::string plugin_fix(const std::string& path, const std::string& config_path) {
  const std::string package = PBX_PG_PLUGIN_PACKAGE;
  std::string fix = package.empty() ? "install the database plugin" : "apt-get install " + package;
  if (path != PBX_DEFAULT_PG_PLUGIN) fix += ", or correct pg_plugin in " + config_path;
  return fix + "; until then every login fails closed";
}

}  // namespace

std::vector<Check> check_db_connect(const Facts& f) {
  if (!f.uses_database()) return {};
  const totp::Config& c = f.session.config;
  const auto& report = f.db_report();
  if (!report) {
    std::string fix = "check pg_plugin and pg_conninfo in " + f.session.config_path;
    if (report.error().code == totp::Errc::kUnavailable) {
      fix =
          "check pg_conninfo, that the server runs and that this host may connect "
          "(pg_hba.conf); logins fail closed until then";
    } else if (plugin_missing(c.pg_plugin)) {
      fix = plugin_fix(c.pg_plugin, f.session.config_path);
    }
    return {{"db-connect", Status::kFail, report.error().message, fix}};
  }
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
  return {conn};
}

std::vector<Check> check_db_tls(const Facts& f) {
  if (!f.uses_database() || !f.db_report()) return {};
  const totp::DbReport& r = *f.db_report();
  if (r.unix_socket) {
    return {{"db-tls", Status::kPass, "Unix socket: nothing crosses the network", ""}};
  }
  bool verify = r.sslmode == "verify-full" || r.sslmode == "verify-ca";
  if (r.gssenc) {
    // libpq uses GSSAPI encryption instead of TLS whatever sslmode says.
    return {{"db-tls", verify ? Status::kFail : Status::kWarn,
             "GSSAPI encryption instead of TLS (gssenc on): sslmode=" + r.sslmode +
                 " is not applied and the server is not verified by its certificate",
             "write gssencmode=disable in pg_conninfo"}};
  }
  if (r.ssl && verify) {
    return {
        {"db-tls", Status::kPass,
         r.ssl_protocol + " " + r.ssl_cipher + ", sslmode=" + r.sslmode + ", no GSSAPI encryption",
         ""}};
  }
  return {
      {"db-tls", Status::kWarn,
       (r.ssl ? "TLS (" + r.ssl_protocol + ") without verifying the server: sslmode=" + r.sslmode
              : std::string("TCP without TLS: login state crosses the network in clear")) +
           ", no GSSAPI encryption",
       "add sslmode=verify-full sslrootcert=/etc/ssl/certs/YOUR-CA.pem to pg_conninfo "
       "(and sslcert/sslkey for client certificates)"}};
}

std::vector<Check> check_db_schema(const Facts& f) {
  if (!f.uses_database() || !f.db_report()) return {};
  const totp::DbReport& r = *f.db_report();
  if (r.schema_version == 0) {
    return {{"db-schema", Status::kFail, "the database has no pbx-mfa schema",
             "run 'pbx-mfa db init'"}};
  }
  if (r.schema_version >= 2 && r.schema_version < totp::kDbSchemaVersion) {
    // Logins work on schema 2 (rows of format version 1 are read as they are); its rows are
    // not upgraded to format version 2 (devices) yet. Before 4 there is no events table: each
    // server keeps its events in its own file.
    return {{"db-schema", Status::kWarn,
             "schema version " + std::to_string(r.schema_version) + ", this pbx-mfa uses " +
                 std::to_string(totp::kDbSchemaVersion) + ": " +
                 (r.schema_version < 3 ? "rows of format version 1 not upgraded yet, " : "") +
                 "no events table (events stay in each server's file; logins work)",
             "run 'pbx-mfa db migrate' once every server of the fleet runs this pbx-mfa"}};
  }
  if (r.schema_version != totp::kDbSchemaVersion) {
    return {{"db-schema", Status::kFail,
             "schema version " + std::to_string(r.schema_version) +
                 ", this pbx-mfa "
                 "uses " +
                 std::to_string(totp::kDbSchemaVersion),
             "run 'pbx-mfa db init' with the newer pbx-mfa"}};
  }
  std::vector<Check> checks = {{"db-schema", Status::kPass,
                                "version " + std::to_string(r.schema_version) + ", " +
                                    std::to_string(r.enrollments) + " enrollments",
                                ""}};
  if (r.key == totp::KeyCheck::kMatches && r.key_check_previous_only) {
    checks.push_back({"db-key", Status::kWarn,
                      "the database's key check opens only under fleet_key_previous, not under "
                      "this host's fleet_key",
                      "expected in the second change of a rotation until 'pbx-mfa db rotate-key' "
                      "has run; otherwise check fleet_key and fleet_key_previous on this host"});
  } else if (r.key == totp::KeyCheck::kMatches) {
    checks.push_back({"db-key", Status::kPass, "the fleet key opens this database's rows", ""});
  } else if (r.key == totp::KeyCheck::kDiffers) {
    checks.push_back({"db-key", Status::kFail,
                      "the fleet key is not the one this database was set up with: every "
                      "login would be refused",
                      "copy the fleet key from a server of the fleet"});
  }
  return checks;
}

std::vector<Check> replication_checks(const std::string& conninfo, const totp::DbReport& r) {
  auto params = parse_conninfo(conninfo);
  if (!params || conninfo_hosts(*params).size() < 2) return {};  // no failover to judge
  std::string hosts = std::to_string(conninfo_hosts(*params).size());
  const std::string fix =
      "on the primary (and on every server that may become it): synchronous_standby_names = "
      "'ANY 1 (standby1, standby2)' and synchronous_commit = on; with Patroni "
      "synchronous_mode: true (README \"High availability\")";
  const std::string risk =
      ": a failover can lose the last logins: a used code may be accepted again, and a "
      "lockout, reset or used recovery code be undone";
  if (!r.replication_known) {
    return {{"db-replication", Status::kWarn,
             "pg_conninfo lists " + hosts +
                 " hosts, but the server did not say whether it has a synchronous standby",
             fix}};
  }
  std::string why;
  const std::string& commit = r.synchronous_commit;
  if (r.synchronous_standby_names.empty()) {
    why = "synchronous_standby_names is empty";
  } else if (commit == "off" || commit == "local") {
    why = "synchronous_commit = " + commit;
  } else if (r.sync_state_visible && r.standbys == 0) {
    why =
        "no standby is connected (commits wait for one: logins fail closed after "
        "pg_timeout_ms)";
  } else if (r.sync_state_visible && r.sync_standbys == 0) {
    why = std::to_string(r.standbys) +
          " standbys connected, none of them synchronous (pg_stat_replication sync_state)";
  }
  if (!why.empty()) {
    return {{"db-replication", Status::kWarn,
             "pg_conninfo lists " + hosts +
                 " hosts (failover), but the connected primary has no synchronous standby (" + why +
                 ")" + risk,
             fix}};
  }
  std::string seen = r.sync_state_visible ? ", " + std::to_string(r.sync_standbys) + " of " +
                                                std::to_string(r.standbys) + " standbys synchronous"
                                          : " (pg_stat_replication's sync_state not readable "
                                            "by this role)";
  return {{"db-replication", Status::kPass,
           "synchronous standby: synchronous_standby_names = '" + r.synchronous_standby_names +
               "', synchronous_commit = " + commit + seen,
           ""}};
}

std::vector<Check> check_db_replication(const Facts& f) {
  if (!f.uses_database() || !f.db_report()) return {};
  return replication_checks(f.session.config.pg_conninfo, *f.db_report());
}

// A rotation of the fleet key (pbx-mfa db rotate-key): the previous key when configured, and
// which key the rows are under (every row is read: fast, each an AES-GCM open or an HMAC).
std::vector<Check> check_db_key_rotation(const Facts& f) {
  if (!f.uses_database() || !f.db_report()) return {};
  const totp::DbReport& r = *f.db_report();
  const totp::Config& c = f.session.config;
  if (r.schema_version < 2 || r.key != totp::KeyCheck::kMatches) return {};
  std::vector<Check> checks;
  if (!c.fleet_key_previous.empty()) {
    auto old = totp::load_fleet_key(c.fleet_key_previous, c.trusted_uid);
    if (!old) {
      checks.push_back({"fleet-key-previous", Status::kFail,
                        "fleet_key_previous: " + old.error().message,
                        "copy the old fleet key from a server of the fleet (install -m 0400 -o "
                        "root), or remove fleet_key_previous once the rotation is complete"});
      return checks;
    }
  }
  auto usage = totp::db_key_usage(c);
  if (!usage) {
    checks.push_back({"db-key-rotation", Status::kWarn,
                      "could not count the rows under each fleet key: " + usage.error().message,
                      ""});
    return checks;
  }
  const totp::DbKeyUsage& u = *usage;
  const long rows = u.enrollments_current + u.enrollments_previous + u.enrollments_neither +
                    u.states_current + u.states_previous + u.states_neither;
  using totp::KeyUnder;
  // The phases of a rotation, told apart by the next key check (made by step 1 under the new
  // key, cleared by db rotate-key at its end) and the key check (moved by db rotate-key).
  if (u.has_previous && u.next_key_check == KeyUnder::kPrevious &&
      u.key_check == KeyUnder::kCurrent) {
    checks.push_back({"db-key-rotation", Status::kWarn,
                      "rotation, first change: this host reads the new key (fleet_key_previous = " +
                          c.fleet_key_previous +
                          ") and still writes under fleet_key = " + c.fleet_key,
                      "when every server has fleet_key_previous = " + c.fleet_key_previous +
                          ", on every server set fleet_key = " + c.fleet_key_previous +
                          " and fleet_key_previous = " + c.fleet_key});
  } else if (u.key_check == KeyUnder::kPrevious && u.next_key_check == KeyUnder::kCurrent) {
    checks.push_back(
        {"db-key-rotation", Status::kWarn,
         "rotation, second change: this host writes under the new key (fleet_key = " + c.fleet_key +
             "); the database is still under fleet_key_previous (" + c.fleet_key_previous + "), " +
             std::to_string(u.previous()) + " rows under it",
         "when every server has fleet_key = " + c.fleet_key +
             " and fleet_key_previous = " + c.fleet_key_previous +
             ", run 'pbx-mfa db rotate-key --new-key " + c.fleet_key + "' on one server"});
  } else if (u.key_check == KeyUnder::kPrevious) {
    checks.push_back(
        {"db-key-rotation", Status::kWarn,
         "the database's key check opens only under fleet_key_previous (" + c.fleet_key_previous +
             "): this host's fleet_key (" + c.fleet_key +
             ") is not the fleet's key, and its writes are refused by the servers that do not "
             "read it",
         "check fleet_key and fleet_key_previous on this host: fleet_key must be the fleet's "
         "key (or the new key of a rotation, see 'pbx-mfa db rotate-key')"});
  } else if (u.previous() > 0) {
    checks.push_back({"db-key-rotation", Status::kWarn,
                      std::to_string(u.previous()) + " rows still under the previous fleet key (" +
                          std::to_string(u.enrollments_previous) + " enrollments, " +
                          std::to_string(u.states_previous) + " state rows)",
                      "run 'pbx-mfa db rotate-key --new-key " + c.fleet_key + "'"});
  } else if (u.has_previous && u.next_key_check == KeyUnder::kCurrent) {
    checks.push_back({"db-key-rotation", Status::kWarn,
                      "rotation under way: db rotate-key has not been through to the end",
                      "run 'pbx-mfa db rotate-key --new-key " + c.fleet_key + "' again"});
  } else if (u.has_previous) {
    checks.push_back(
        {"db-key-rotation", Status::kWarn,
         "rotation complete: no row is under fleet_key_previous (" + c.fleet_key_previous + ")",
         "once every server has fleet_key = " + c.fleet_key +
             ", remove fleet_key_previous from every server's config and destroy "
             "the old key"});
  }
  if (u.neither_count() > 0) {
    std::string names;
    for (const auto& line : u.neither) names += (names.empty() ? "" : "; ") + line;
    checks.push_back({"db-key-rows", Status::kWarn,
                      std::to_string(u.neither_count()) +
                          " rows under neither fleet key (refused at login): " + names,
                      "first check fleet_key and fleet_key_previous on this host (a row under "
                      "a key this host does not have is not damaged); if they are right, "
                      "'pbx-mfa reset' those users and enroll them again"});
  }
  if (!u.has_previous && u.next_key_check != KeyUnder::kNone) {
    checks.push_back({"db-key-rotation", Status::kWarn,
                      "a new fleet key was made for this database (step 1 of a rotation) and is "
                      "not configured on this host yet",
                      "copy it to every server, then on every server add fleet_key_previous = "
                      "<the new key> (first change: it reads both keys and still writes under " +
                          c.fleet_key + "); see 'pbx-mfa db rotate-key' in pbx-mfa(1)"});
  }
  if (checks.empty()) {
    checks.push_back({"db-key-rotation", Status::kPass,
                      "all " + std::to_string(rows) + " rows under the fleet key", ""});
  }
  return checks;
}

std::vector<Check> check_break_glass(const Facts& f) {
  if (!f.uses_database()) return {};
  auto st = totp::break_glass_status(f.session.config);
  if (!st) {
    return {{"break-glass", Status::kFail, st.error().message,
             "run 'pbx-mfa break-glass' to write a fresh set"}};
  }
  if (st->left <= 0) {
    return {{"break-glass", Status::kWarn,
             "no unused break-glass codes on this host: while the database cannot be "
             "reached nobody can log in with a second factor",
             "run 'pbx-mfa break-glass' and keep the codes offline"}};
  }
  std::string wrong = std::to_string(st->failures) + " wrong break-glass answers on this host";
  if (st->locked()) {
    return {{"break-glass", Status::kFail,
             wrong + ": break-glass is locked, no code is accepted while the database is down",
             "find out who typed them (syslog outcome=break-glass-wrong), then 'pbx-mfa "
             "break-glass --unlock', or 'pbx-mfa break-glass' if a code may have leaked"}};
  }
  if (st->failures > 0) {
    return {{"break-glass", Status::kWarn,
             wrong + " (locked at " + std::to_string(totp::kBreakGlassMaxFailures) + ")",
             "check syslog for outcome=break-glass-wrong, then 'pbx-mfa break-glass --unlock'"}};
  }
  return {{"break-glass", Status::kPass,
           std::to_string(st->left) + " unused break-glass codes on this host", ""}};
}

}  // namespace pbx::cli::doctor

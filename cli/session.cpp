#include "session.hpp"

#include <ctime>
#include <ostream>

#include "pbx/totp/strings.hpp"

namespace pbx::cli {

int fail_as(Session& s, int code, std::string_view error, const std::string& message) {
  if (s.batch) print_json(s, {{"error", error}, {"message", message}});
  s.err() << "pbx-mfa: " << message << "\n";
  return code;
}

int fail(Session& s, int code, const std::string& message) {
  return fail_as(s, code, "failed", message);
}

int exit_for(const totp::Error& e) {
  switch (e.code) {
    case totp::Errc::kInvalid:
    case totp::Errc::kConfig:
    case totp::Errc::kNoUser:
      return kExitUsage;
    case totp::Errc::kNotEnrolled:
      return kExitNotEnrolled;
    case totp::Errc::kUnsafe:
    case totp::Errc::kCorrupt:
    case totp::Errc::kIo:
    case totp::Errc::kExists:
    case totp::Errc::kUnavailable:
      return kExitStore;
    case totp::Errc::kInternal:
      return kExitInternal;
  }
  return kExitInternal;
}

int fail(Session& s, const totp::Error& e) { return fail(s, exit_for(e), e.message); }

totp::Result<totp::User> target_user(Session& s, const std::string& requested, bool root_only) {
  if (root_only && !s.is_root()) {
    return totp::make_error(totp::Errc::kIo, "this subcommand needs root");
  }
  std::string name = requested.empty() ? s.env.invoking_user : requested;
  if (name != s.env.invoking_user && !s.is_root()) {
    return totp::make_error(totp::Errc::kIo,
                            "--user " + name + ": acting on another user needs root");
  }
  auto user = totp::lookup_user(name);
  if (!user) return user.error();
  if (!s.is_root() && user->uid != s.env.uid) {
    return totp::make_error(totp::Errc::kIo, "--user " + name + ": not your account");
  }
  if (s.helpdesk) {
    if (auto ok = helpdesk_check_target(s, *user); !ok) return ok.error();
  }
  return user;
}

totp::Result<std::unique_ptr<totp::Store>> open_store(Session& s) {
  return totp::open_store(s.config);
}

void print_json(Session& s, const nlohmann::json& j) { s.out() << j.dump() << "\n"; }

namespace {

void wipe_strings(nlohmann::json& j) {
  if (j.is_string()) {
    totp::wipe(j.get_ref<std::string&>());
  } else if (j.is_structured()) {
    for (auto& child : j) wipe_strings(child);
  }
}

}  // namespace

void print_secret_json(Session& s, nlohmann::json& j) {
  totp::SecretString text(j.dump());
  s.out() << text.str() << "\n";
  wipe_strings(j);
}

std::string audit_field(std::string_view value) {
  // ' ' and '=' would start another field, '"' and brackets would fake a quoted or bracketed one.
  // 256 bytes: a whole user name (lookup_user's limit) or --reason (kMaxTempCodeReason); a
  // longer value is marked as cut rather than shown as another, shorter one.
  static constexpr totp::EscapeSet kAuditField{" =\"()", 256, "..."};
  return totp::escape_field(value, kAuditField);
}

const std::string& acting_user(const Session& s) {
  return s.helpdesk ? s.helpdesk->name : s.env.invoking_user;
}

void audit(Session& s, const std::string& what) {
  std::string line;
  if (s.helpdesk) {
    // One line per helpdesk command (helpdesk_finish writes it when the command wrote none).
    s.helpdesk->audited = true;
    line = "by=" + audit_field(s.helpdesk->name) + " " + s.helpdesk->role + " " + what;
  } else {
    line = "by=" + audit_field(s.env.invoking_user) + " " + what;
  }
  if (!s.env.audit) return;
  for (char& c : line) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = '?';  // one line, whatever the caller put in `what`
  }
  s.env.audit(line);
}

Command add_admin_command(
    CLI::App& app, const char* name, const char* description,
    std::function<int(Session&, totp::Store&, const totp::User&, bool json)> act) {
  auto* sub = app.add_subcommand(name, description);
  auto user = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("--user", *user, "the user")->required();
  sub->add_flag("--json", *json, "print one JSON object");
  return {sub, [user, json, act = std::move(act)](Session& s) -> int {
            s.batch = *json;
            auto u = target_user(s, *user, true);
            if (!u) return fail(s, u.error());
            auto store = open_store(s);
            if (!store) return fail(s, store.error());
            return act(s, **store, *u, *json);
          }};
}

void print_done(Session& s, const std::string& user, std::string_view action,
                const nlohmann::json& extra) {
  nlohmann::json j = {{"user", user}, {"action", action}, {"done", true}};
  j.update(extra);
  print_json(s, j);
}

totp::Status need_database(Session& s) {
  if (!s.is_root()) return totp::make_error(totp::Errc::kIo, "this subcommand needs root");
  if (s.config.store != "postgresql") {
    return totp::make_error(totp::Errc::kConfig,
                            "store is '" + s.config.store + "' in " + s.config_path +
                                "; set store = postgresql and pg_conninfo first");
  }
  return totp::Ok{};
}

nlohmann::json iso8601(std::int64_t unix_time) {
  if (unix_time <= 0) return nullptr;
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return nullptr;
  return std::string(buf);
}

}  // namespace pbx::cli

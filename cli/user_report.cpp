#include "user_report.hpp"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <unordered_set>
#include <utility>

#include "pbx/totp/hotp.hpp"
#include "session.hpp"

namespace pbx::cli {
GroupIndex::GroupIndex(const totp::Config& config) {
  if (!totp::requirement_needs_groups(config)) return;
  for (const auto* names : {&config.exempt_groups, &config.require_groups}) {
    for (const auto& name : *names) {
      bool seen = false;
      for (const auto& e : groups_) seen = seen || e.name == name;
      if (!seen) groups_.push_back(Entry{name, {}, {}});
    }
  }
  // Every entry of each name (a name may appear more than once, in one source or several) ...
  setgrent();
  while (group* gr = getgrent()) {
    if (gr->gr_name == nullptr) continue;
    for (auto& e : groups_) {
      if (e.name != gr->gr_name) continue;
      e.gids.push_back(gr->gr_gid);
      for (char** m = gr->gr_mem; m != nullptr && *m != nullptr; ++m) e.members.insert(*m);
    }
  }
  endgrent();
  // ... and what getgrnam says, as the module asks it (a directory may not enumerate).
  for (auto& e : groups_) {
    auto found = totp::lookup_group(e.name);
    if (!found) {
      failed_ = true;
      continue;
    }
    if (!*found) continue;
    e.gids.push_back((*found)->gid);
    for (const auto& m : (*found)->members) e.members.insert(m);
  }
}

std::optional<std::vector<std::string>> GroupIndex::groups_of(const totp::User& user) const {
  if (failed_) return std::nullopt;
  std::vector<std::string> in;
  for (const auto& e : groups_) {
    bool primary = false;
    for (gid_t g : e.gids) primary = primary || g == user.gid;
    if (primary || e.members.count(user.name) > 0) in.push_back(e.name);
  }
  return in;
}

// A login shell is one /etc/shells lists (getusershell(3)); an empty field is /bin/sh. Without
// /etc/shells, anything but nologin and false.
bool is_login_shell(std::string_view shell) {
  static const std::set<std::string> kListed = [] {
    std::set<std::string> out;
    std::ifstream in("/etc/shells");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.front() == '/') out.insert(line);
    }
    return out;
  }();
  if (shell.empty()) shell = "/bin/sh";
  if (!kListed.empty()) return kListed.count(std::string(shell)) > 0;
  std::size_t slash = shell.rfind('/');
  std::string_view base = slash == std::string_view::npos ? shell : shell.substr(slash + 1);
  return base != "nologin" && base != "false";
}

Account account_of(const totp::User& user) {
  Account a{user, true, true};
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(user.name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      pw.pw_shell != nullptr) {
    a.login_shell = is_login_shell(pw.pw_shell);
  }
  return a;
}

std::vector<Account> all_accounts() {
  std::vector<Account> accounts;
  std::unordered_set<std::string> seen;
  setpwent();
  while (passwd* pw = getpwent()) {
    if (pw->pw_name == nullptr || !seen.insert(pw->pw_name).second) continue;
    Account a;
    a.user.name = pw->pw_name;
    a.user.uid = pw->pw_uid;
    a.user.gid = pw->pw_gid;
    a.user.home = pw->pw_dir != nullptr ? pw->pw_dir : "";
    a.login_shell = is_login_shell(pw->pw_shell != nullptr ? pw->pw_shell : "");
    accounts.push_back(std::move(a));
  }
  endpwent();
  return accounts;
}

std::string aligned_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  std::string text;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t c = 0; c < r.size(); ++c) {
      line += r[c];
      if (c + 1 < r.size()) line.append(width[c] - r[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line;
    text += '\n';
  }
  return text;
}

nlohmann::json device_json(const totp::DeviceStatus& d) {
  return {{"name", d.name},
          {"created", iso8601(d.created)},
          {"algorithm", totp::algorithm_name(d.algorithm)},
          {"digits", d.digits},
          {"period", d.period},
          {"last_used", iso8601(d.last_used)}};
}

nlohmann::json devices_json(const totp::UserStatus& s) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& d : s.devices) list.push_back(device_json(d));
  return list;
}

totp::Result<UserRow> user_row(const totp::Config& config, totp::Verifier& verifier,
                               const Account& account, const GroupIndex* groups,
                               totp::StateRead read) {
  const totp::User& u = account.user;
  auto st = verifier.status(u, read);
  if (!st) return st.error();
  // No remote host: where a login comes from is unknown here, so no network exemption applies
  // (pbx-mfa(1) STATUS).
  const bool marked = st->state.required.on;
  std::optional<std::vector<std::string>> in = groups ? groups->groups_of(u) : std::nullopt;
  auto need =
      in ? totp::Result<totp::Requirement>(totp::requirement(config, *in, std::nullopt, marked))
         : totp::requirement_for(config, u, std::nullopt, totp::lookup_group, marked);
  if (!need) return need.error();

  UserRow row{{}, std::move(st.value()), std::move(need.value())};
  const totp::UserStatus& s = row.status;
  nlohmann::json& j = row.json;
  j["user"] = u.name;
  j["enrolled"] = s.enrolled;
  j["required"] = row.requirement.required();
  j["required_by"] = row.requirement.reason;
  j["exempt"] = row.requirement.kind == totp::RequirementKind::kExempt;
  j["login_shell"] = account.has_account ? nlohmann::json(account.login_shell) : nullptr;
  if (s.enrolled) {
    j["created"] = iso8601(s.created);
    j["algorithm"] = totp::algorithm_name(s.algorithm);
    j["digits"] = s.digits;
    j["period"] = s.period;
    j["recovery_codes_left"] = s.recovery_left;
  } else {
    for (const char* k : {"created", "algorithm", "digits", "period", "recovery_codes_left"}) {
      j[k] = nullptr;
    }
  }
  j["devices"] = devices_json(s);
  // Failures and a lockout count for a user who is not enrolled too: a wrong temp code is one.
  j["failures"] = s.state.failures;
  j["locked_until"] = s.locked ? iso8601(s.state.locked_until) : nullptr;
  j["last_success"] = iso8601(s.state.last_success);
  j["temp_code_expires"] =
      s.temp_code_active && s.state.temp_code ? iso8601(s.state.temp_code->expires) : nullptr;
  if (!s.state_known) {
    for (const char* k :
         {"recovery_codes_left", "failures", "locked_until", "last_success", "temp_code_expires"}) {
      j[k] = nullptr;
    }
    for (auto& d : j["devices"]) d["last_used"] = nullptr;
  }
  return row;
}

}  // namespace pbx::cli

// list: the coverage report, one row per account of the password database (and, with store =
// postgresql, per user enrolled anywhere in the fleet): required and why, enrolled, last
// success, recovery codes, lockout, temp code. Exit 1 while a required user is not enrolled.
#include <algorithm>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "commands.hpp"
#include "user_report.hpp"

namespace pbx::cli {
namespace {

// Stale: enrolled, and neither a successful login nor the enrollment itself within `days`
// days (never used and of unknown age counts as stale).
bool is_stale(const UserRow& row, std::int64_t now, int days) {
  if (!row.status.enrolled) return false;
  const std::int64_t since = std::max(row.status.state.last_success, row.status.created);
  return since <= 0 || now - since > std::int64_t{days} * 86400;
}

std::string cell(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void print_table(Session& s, const std::vector<UserRow>& rows,
                 const std::vector<const Account*>& accounts) {
  const std::vector<std::string> head = {
      "USER",         "REQUIRED", "ENROLLED",     "DEVICES",         "CREATED",
      "LAST SUCCESS", "RECOVERY", "LOCKED UNTIL", "TEMP CODE UNTIL", "NOTE"};
  std::vector<std::vector<std::string>> table;
  table.reserve(rows.size() + 1);
  table.push_back(head);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const nlohmann::json& j = rows[i].json;
    const Account& a = *accounts[i];
    std::string note;
    if (!a.has_account) {
      note = "no account on this host";
    } else if (!a.login_shell) {
      note = "no login shell";
    }
    table.push_back(
        {cell(j["user"]),
         std::string(j["required"].get<bool>() ? "yes" : "no") + " (" +
             j["required_by"].get<std::string>() + ")",
         cell(j["enrolled"]),
         rows[i].status.enrolled ? std::to_string(rows[i].status.devices.size()) : std::string("-"),
         cell(j["created"]), cell(j["last_success"]), cell(j["recovery_codes_left"]),
         cell(j["locked_until"]), cell(j["temp_code_expires"]), note});
  }
  s.out() << aligned_table(table);
}

}  // namespace

Command add_list(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "list", "one row per account: required and why, enrolled, last success, lockout (root)");
  auto json = std::make_shared<bool>(false);
  auto not_enrolled = std::make_shared<bool>(false);
  auto stale = std::make_shared<int>(-1);
  sub->add_flag("--json", *json, "print one JSON object: {\"users\":[...]}");
  auto* ne = sub->add_flag("--not-enrolled", *not_enrolled, "only users who are not enrolled");
  sub->add_option("--stale", *stale, "only enrolled users without a successful login in DAYS days")
      ->type_name("DAYS")
      ->check(CLI::Range(0, 36500))
      ->excludes(ne);
  return {sub, [json, not_enrolled, stale](Session& s) -> int {
            if (!s.is_root()) return fail(s, kExitStore, "list needs root");
            auto store = open_store(s);
            if (!store) return fail(s, store.error());
            totp::Verifier verifier(s.config, **store, *s.env.clock);
            const std::int64_t now = s.env.clock->now();

            std::vector<Account> accounts = all_accounts();
            // The fleet: users the store knows (store = postgresql) without an account here.
            auto fleet = (*store)->enrolled_users();
            if (!fleet) return fail(s, fleet.error());
            {
              std::unordered_set<std::string> known;
              known.reserve(accounts.size());
              for (const auto& a : accounts) known.insert(a.user.name);
              std::sort(fleet->begin(), fleet->end());
              for (const auto& name : *fleet) {
                if (!known.insert(name).second) continue;
                auto here = totp::lookup_user(name);  // a directory that does not enumerate
                if (here) {
                  accounts.push_back(account_of(*here));
                } else {
                  // No groups here (no gid matches -1); the store knows the user by name.
                  Account a;
                  a.user.name = name;
                  a.user.uid = static_cast<uid_t>(-1);
                  a.user.gid = static_cast<gid_t>(-1);
                  a.has_account = false;
                  a.login_shell = false;
                  accounts.push_back(std::move(a));
                }
              }
            }

            // The helpdesk sees the rows status would show it: no root, protected user,
            // other helpdesk member, or user without an account here (pbx-mfa(1) HELPDESK).
            std::unordered_map<uid_t, std::vector<totp::User>> by_uid;
            if (s.helpdesk) {
              for (const auto& a : accounts) {
                if (a.has_account) by_uid[a.user.uid].push_back(a.user);
              }
            }
            auto hidden = [&](const Account& a) {
              if (!s.helpdesk) return false;
              if (!a.has_account) return true;
              auto why =
                  helpdesk_protection_of(s.config, a.user, by_uid[a.user.uid], s.helpdesk->uid);
              return !why || why->has_value();  // undecided counts as protected
            };

            const GroupIndex groups(s.config);  // read once, not once per account
            std::vector<UserRow> rows;
            std::vector<const Account*> shown;
            bool missing = false;
            bool errors = false;
            for (const auto& a : accounts) {
              if (hidden(a)) continue;
              auto row = user_row(s.config, verifier, a, &groups);
              if (!row) {
                // The database gone: every further row would fail the same way.
                if (row.error().code == totp::Errc::kUnavailable) return fail(s, row.error());
                s.err() << "pbx-mfa: " << a.user.name << ": " << row.error().message << "\n";
                errors = true;
                continue;
              }
              // An account without a login shell (nologin, false) is shown but does not fail
              // the check: a monitoring run would otherwise never pass on a stock system.
              if (row->requirement.required() && !row->status.enrolled && a.login_shell) {
                missing = true;
              }
              if (*not_enrolled && row->status.enrolled) continue;
              if (*stale >= 0 && !is_stale(*row, now, *stale)) continue;
              rows.push_back(std::move(row.value()));
              shown.push_back(&a);
            }

            if (*json) {
              nlohmann::json list = nlohmann::json::array();
              for (auto& r : rows) list.push_back(std::move(r.json));
              print_json(s, {{"users", std::move(list)}});
            } else {
              print_table(s, rows, shown);
            }
            if (errors) return kExitStore;
            return missing ? kExitRejected : kExitOk;
          }};
}

}  // namespace pbx::cli

// A user's report row: the one object `status --json` prints and each row of `list --json` is.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/requirement.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"

namespace pbx::cli {

// An account of the password database, or (has_account false) a user the store knows of whom
// this host has no account (store = postgresql: enrolled elsewhere in the fleet).
struct Account {
  totp::User user;
  bool has_account = true;
  // Whether the login shell can run a session: false for nologin and false (system accounts).
  bool login_shell = true;
};

class GroupIndex;

struct UserRow {
  nlohmann::json json;  // pbx-mfa(1) STATUS: the object status --json prints
  totp::UserStatus status;
  totp::Requirement requirement;
};

// One device as status --json and device list --json show it, never its secret:
// {"name","created","algorithm","digits","period","last_used"}, times as iso8601() (last_used
// null until a code of it is accepted).
nlohmann::json device_json(const totp::DeviceStatus& d);
// Every device of `s`, oldest first ([] when not enrolled).
nlohmann::json devices_json(const totp::UserStatus& s);

// Rows of cells as text: columns two spaces apart, aligned, no trailing blanks (the first row is
// the header).
std::string aligned_table(const std::vector<std::vector<std::string>>& rows);

// Builds the row from the store (through `verifier`) and the config's policy: group membership
// as the module asks it (requirement_for), or from `groups` when given (list). Errors: the store
// or the group database failed. With `read` kOptional (a user's own status where the state is
// root's) an unreadable state is no error: its fields (failures, locked_until, last_success,
// recovery_codes_left, temp_code_expires, each device's last_used) are null.
totp::Result<UserRow> user_row(const totp::Config& config, totp::Verifier& verifier,
                               const Account& account, const GroupIndex* groups = nullptr,
                               totp::StateRead read = totp::StateRead::kRequired);

// The account named `user` as status sees it (its login shell from getpwnam).
Account account_of(const totp::User& user);

// Every account of the password database (getpwent), first entry of a name only, in its order.
std::vector<Account> all_accounts();

// Is `shell` one that runs no session (nologin, false)? An empty shell is /bin/sh.
bool is_login_shell(std::string_view shell);

// The configured groups (exempt_groups, require) with their gids and members, read once for
// many accounts: one pass over the group database (getgrent) plus getgrnam per configured name.
// requirement_for asks getgrouplist() for each account, which reads the whole group database
// each time: for list over 10,000 accounts that is quadratic.
class GroupIndex {
 public:
  explicit GroupIndex(const totp::Config& config);
  // The configured groups `user` is in (the primary group or listed as a member); nullopt when
  // a configured group could not be looked up, so the caller asks requirement_for instead.
  std::optional<std::vector<std::string>> groups_of(const totp::User& user) const;

 private:
  struct Entry {
    std::string name;
    std::vector<gid_t> gids;
    std::unordered_set<std::string> members;
  };
  std::vector<Entry> groups_;
  bool failed_ = false;
};

}  // namespace pbx::cli

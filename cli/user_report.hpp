// A user's report row: the one object `status --json` prints and each row of `list --json` is.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
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

struct UserRow {
  nlohmann::json json;  // pbx-mfa(1) STATUS: the object status --json prints
  totp::UserStatus status;
  totp::Requirement requirement;
};

// Builds the row from the store (through `verifier`) and the config's policy. `lookup` resolves
// group names (list passes a GroupCache's). Errors: the store or the group database failed.
totp::Result<UserRow> user_row(const totp::Config& config, totp::Verifier& verifier,
                               const Account& account,
                               totp::GroupLookup lookup = totp::lookup_group);

// The account named `user` as status sees it (its login shell from getpwnam).
Account account_of(const totp::User& user);

// Every account of the password database (getpwent), first entry of a name only, in its order.
std::vector<Account> all_accounts();

// Is `shell` one that runs no session (nologin, false)? An empty shell is /bin/sh.
bool is_login_shell(std::string_view shell);

// While alive, GroupCache::lookup answers every group name from one getgrnam_r per name: list
// asks the same few groups for every account. One per thread at a time.
class GroupCache {
 public:
  GroupCache();
  ~GroupCache();
  GroupCache(const GroupCache&) = delete;
  GroupCache& operator=(const GroupCache&) = delete;

  static totp::Result<std::optional<totp::Group>> lookup(std::string_view name);

 private:
  std::map<std::string, totp::Result<std::optional<totp::Group>>, std::less<>> groups_;
  GroupCache* previous_;
};

}  // namespace pbx::cli

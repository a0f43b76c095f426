// User: the account a secret belongs to, resolved from the password database.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/result.hpp"

namespace pbx::totp {

struct User {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

Result<User> lookup_user(std::string_view name);
// Every account name of the password database, in its order (for `db migrate`).
std::vector<std::string> all_user_names();
// Names of the groups the user is in (primary and supplementary). Best effort: getgrouplist()
// leaves out name-service sources that cannot be reached, so a policy must not rely on it alone
// (requirement_for resolves each configured group by name).
std::vector<std::string> user_groups(const User& user);

// A group of the group database.
struct Group {
  gid_t gid = 0;
  std::vector<std::string> members;  // gr_mem: the users listed (not those whose primary it is)
};

// getgrnam_r(): the group, nullopt when there is no such group, an error (kIo) when the lookup
// itself failed (a directory that cannot be reached, an expired cache).
Result<std::optional<Group>> lookup_group(std::string_view name);

// Expands %u %h %U %% in a secret_path template; rejects other escapes and relative results.
Result<std::string> expand_path_template(std::string_view templ, const User& user);

}  // namespace pbx::totp

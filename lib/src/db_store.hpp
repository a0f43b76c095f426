// The PostgreSQL store: enrollments and state in the database, over a PgLink.
#pragma once

#include <memory>
#include <string>

#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/store.hpp"

namespace pbx::totp::detail {

Result<std::unique_ptr<Store>> make_db_store(const Config& config);

// The associated data that binds a sealed enrollment to its user (db_admin re-seals rows).
std::string enrollment_aad(const std::string& user_name);

}  // namespace pbx::totp::detail

// The PostgreSQL store: enrollments and state in the database, over a PgLink.
#pragma once

#include <memory>

#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/store.hpp"

namespace pbx::totp::detail {

Result<std::unique_ptr<Store>> make_db_store(const Config& config);

}  // namespace pbx::totp::detail

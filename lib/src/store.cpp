#include "pbx/totp/store.hpp"

#include "db_store.hpp"
#include "file_store.hpp"

namespace pbx::totp {

Result<std::unique_ptr<Store>> open_store(const Config& config) {
  if (config.store == "files") return detail::make_file_store(config);
  if (config.store == "postgresql") return detail::make_db_store(config);
  return make_error(Errc::kConfig, "store '" + config.store + "' is not available in this build");
}

}  // namespace pbx::totp

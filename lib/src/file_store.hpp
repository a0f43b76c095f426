// FileStore: secrets in per-user files (secret_path), state in state_dir. The default backend.
#pragma once

#include <memory>

#include "pbx/totp/store.hpp"

namespace pbx::totp::detail {

std::unique_ptr<Store> make_file_store(const Config& config);

}  // namespace pbx::totp::detail

// Break-glass codes: per-host one-time codes for logins while the shared database is down.
#pragma once

#include <string_view>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

inline constexpr int kBreakGlassGroups = 4;  // "xxxx-xxxx-xxxx-xxxx"; recovery codes have 3
inline constexpr int kMaxBreakGlassCodes = 20;

// <state_dir>/break-glass: the salted scrypt hashes and which were used; root-only.
std::string break_glass_path(const Config& config);

// Replaces this host's set with `count` fresh codes and returns them (shown once, never stored
// in clear).
Result<std::vector<SecretString>> make_break_glass_codes(const Config& config, int count,
                                                         const KdfParams& kdf = {});

// Whether this host has unused break-glass codes (no file: false).
Result<int> break_glass_left(const Config& config);

// Consumes `input` if it is an unused code of this host: true, and it never works again. The
// caller accepts it only while the database cannot be reached.
Result<bool> use_break_glass_code(const Config& config, std::string_view input);

}  // namespace pbx::totp

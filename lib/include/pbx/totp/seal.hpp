// Sealing: AES-256-GCM under the fleet key, for secrets kept in a shared database.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

inline constexpr std::size_t kFleetKeySize = 32;

// Reads the fleet key: a regular file (never a symlink or FIFO) of exactly 32 bytes, owned by
// `owner`, with no group or other permission bits.
Result<SecretBytes> load_fleet_key(const std::string& path, uid_t owner);

// Writes a fresh key from the CSPRNG to `path` (mode 0400, never over an existing file).
Status create_fleet_key(const std::string& path);

// 0x01 || 12-byte random nonce || ciphertext || 16-byte tag. `aad` is authenticated, not
// stored: the same aad must be given to open() (the user name binds a row to its user).
Result<std::string> seal(const SecretBytes& key, std::string_view aad, std::string_view plain);

// kCorrupt when the box was tampered with, was sealed with another aad or another key.
Result<SecretString> open_sealed(const SecretBytes& key, std::string_view aad,
                                 std::string_view box);

}  // namespace pbx::totp

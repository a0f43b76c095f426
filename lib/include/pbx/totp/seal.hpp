// Sealing: AES-256-GCM under the fleet key, for secrets kept in a shared database; and the MAC
// that authenticates a clear-text state row under a key derived from it.
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

// The HKDF label (info) of the key that authenticates state rows.
inline constexpr std::string_view kStateMacLabel = "pbx-mfa state v1";
inline constexpr std::size_t kStateMacSize = 1 + 32;

// A key for one purpose derived from the fleet key: HKDF-SHA256 with `label` as info, no salt.
Result<SecretBytes> derive_fleet_subkey(const SecretBytes& fleet_key, std::string_view label);

// The MAC of a state row: 0x01 || HMAC-SHA256 under `mac_key` (derive_fleet_subkey with
// kStateMacLabel) over user name || NUL || enrollment id || NUL || state text. The user name
// and the id bind the row to its user and its enrollment: a row copied from another user, or
// any changed byte, does not verify.
Result<std::string> state_mac(const SecretBytes& mac_key, std::string_view user_name,
                              std::string_view enrollment_id, std::string_view text);

// Ok when `mac` is the state MAC of those values (compared in constant time); kCorrupt otherwise.
Status check_state_mac(const SecretBytes& mac_key, std::string_view user_name,
                       std::string_view enrollment_id, std::string_view text, std::string_view mac);

}  // namespace pbx::totp

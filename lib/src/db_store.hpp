// The PostgreSQL store: enrollments and state in the database, over a PgLink.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/store.hpp"

namespace pbx::totp::detail {

Result<std::unique_ptr<Store>> make_db_store(const Config& config);

// The associated data that binds a sealed enrollment to its user (db_admin re-seals rows).
std::string enrollment_aad(const std::string& user_name);

// The associated data of the key check sealed into pbx_mfa_schema.key_check.
inline constexpr std::string_view kKeyCheckAad = "pbx-mfa key check";

// The associated data of pbx_mfa_schema.next_key_check: sealed under the new key by step 1 of
// a rotation (db rotate-key with a FILE that does not exist), so that the later steps know which
// key is the new one; NULL when no rotation is under way. The column is optional (added by
// db init/migrate and by rotate-key; older binaries do not read it): no schema version.
inline constexpr std::string_view kNextKeyCheckAad = "pbx-mfa next key check";
inline constexpr const char* kAddNextKeyCheck =
    "ALTER TABLE pbx_mfa_schema ADD COLUMN IF NOT EXISTS next_key_check bytea";

// Which fleet key a row opens (or its MAC verifies) under.
enum class KeyUsed { kCurrent, kPrevious, kNeither };

// The fleet key and, during a rotation (fleet_key_previous), the old one, which only reads:
// a row that does not open under the current key is tried under the previous one. Each key is
// loaded when first needed, the previous only when a row does not open under the current one
// (a host without fleet_key_previous reads one file, as before).
class FleetKeys {
 public:
  explicit FleetKeys(const Config& config) : config_(config) {}

  Result<const SecretBytes*> current();
  Result<const SecretBytes*> current_mac();  // the state MAC's key derived from it
  // nullptr when no previous key is configured.
  Result<const SecretBytes*> previous();
  Result<const SecretBytes*> previous_mac();
  bool has_previous() const { return !config_.fleet_key_previous.empty(); }

  // Opens `box` under the current key, else under the previous one; `used` says which
  // (kNeither with kCorrupt: under neither). Other errors: a key could not be loaded.
  Result<SecretString> open(std::string_view aad, std::string_view box, KeyUsed* used = nullptr);
  // The state MAC under the current key's MAC key, else the previous one's.
  Status check_mac(std::string_view user_name, std::string_view enrollment_id,
                   std::string_view text, std::string_view mac, KeyUsed* used = nullptr);

 private:
  const Config& config_;
  std::optional<SecretBytes> key_, mac_key_, previous_, previous_mac_;
};

}  // namespace pbx::totp::detail

// Database administration for store = postgresql: the schema, the fleet key, doctor's checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::totp {

inline constexpr int kDbSchemaVersion = 1;

struct DbInitResult {
  int from_version = 0;  // 0: there was no schema
  int to_version = 0;
  bool key_created = false;  // the fleet key file was made by this call
};

// Creates or upgrades the schema in one transaction (idempotent). Creates the fleet key when it
// is missing and the database has no schema yet; refuses a key other than the one the database
// was set up with.
Result<DbInitResult> db_init(const Config& config);

enum class KeyCheck { kMatches, kDiffers, kNoSchema, kKeyUnusable };

// What doctor reports: the connection as made, the schema and whether the fleet key fits.
struct DbReport {
  std::int64_t connect_ms = 0;  // connecting plus the first query
  std::string host, port, dbname, user, server_version, sslmode, ssl_protocol, ssl_cipher;
  bool unix_socket = false;
  bool ssl = false;
  bool gssenc = false;     // GSSAPI encryption in use (it replaces TLS)
  int schema_version = 0;  // 0: no schema
  long enrollments = 0;
  KeyCheck key = KeyCheck::kNoSchema;
  std::string key_problem;  // why the key is unusable
};

// Errors: plugin not loadable, database unreachable (kUnavailable) or failing.
Result<DbReport> db_probe(const Config& config);

}  // namespace pbx::totp

// Enrollment: what the secret file holds (the user's devices and recovery codes), and its
// versioned text format.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/hotp.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

inline constexpr std::size_t kMaxSecretFileSize = std::size_t{16} * 1024;
// The hard cap of devices per user; the config's max_devices (1 to this) is the policy.
inline constexpr int kMaxDevices = 5;
// The name of the device an enrollment starts with, and of the secret of a version 1 file.
inline constexpr std::string_view kDefaultDevice = "default";

// A device name: 1 to 32 of [a-z0-9-].
bool valid_device_name(std::string_view name) noexcept;

// One authenticator: its own secret and parameters.
struct Device {
  std::string name = std::string(kDefaultDevice);
  SecretBytes secret;
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
  std::int64_t created = 0;  // Unix seconds; with the name, ties a replay mark to this device
};

struct Enrollment {
  std::string id;  // 32 hex digits, fresh for every enrollment; ties state to this secret
  // 1 to kMaxDevices, distinct names, in the order they were added (the first is the oldest).
  std::vector<Device> devices;
  std::int64_t created = 0;  // Unix seconds, of the enrollment (its first device)
  RecoverySet recovery;

  const Device* find_device(std::string_view name) const noexcept;
};

// A fresh id from the CSPRNG.
Result<std::string> new_enrollment_id();

// An enrollment of one device named "default" made of these (tests, importers).
Enrollment single_device_enrollment(std::string id, SecretBytes secret, Algorithm algorithm,
                                    int digits, int period, std::int64_t created);

// Format, one `key value` per line, '#' comments. Version 2 (written):
//   # pbx-mfa secret file
//   version 2
//   id 0123…
//   created 1700000000
//   device NAME CREATED ALGORITHM DIGITS PERIOD BASE32    (once per device, 1 to 5)
//   recovery-salt HEX
//   recovery-kdf scrypt 16384 8 1
//   recovery HEX        (once per code)
//   end
// Version 1 (read, never written) has one secret in `secret`, `algorithm`, `digits`, `period`
// lines instead of the device lines: it reads as the one device "default", created with the
// enrollment. A file without its end line is truncated and refused.
std::string serialize_enrollment(const Enrollment& e);
Result<Enrollment> parse_enrollment(std::string_view text);

}  // namespace pbx::totp

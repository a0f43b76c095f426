// UserState: what a login changes (replay mark, failures, lockout, skew), and its text format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/recovery.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::totp {

inline constexpr std::size_t kMaxStateFileSize = std::size_t{16} * 1024;
inline constexpr std::int64_t kNoStep = -1;
inline constexpr int kMaxGraceEntries = 16;
// The learning bound of `skew`: the verifier never learns more, and parse_state clamps a stored
// value to it (a planted skew must not move the window further).
inline constexpr int kMaxSkewSteps = 10;

struct GraceEntry {
  std::string host;  // hex SHA-256 prefix of the remote host name, never the name itself
  std::int64_t at = 0;
};

// A temporary access code (pbx-mfa temp-code): only its salted scrypt hash is stored, as a
// RecoverySet of one code.
struct TempCode {
  RecoverySet hash;
  std::int64_t issued = 0;
  std::int64_t expires = 0;  // refused from this time on
  int uses_left = 0;
  std::string issuer;  // user name of who made it (a name: [A-Za-z0-9._-], up to 64)
  std::string reason;  // printable text, up to kMaxTempCodeReason bytes, may be empty

  bool active(std::int64_t now) const noexcept { return uses_left > 0 && now < expires; }
  bool operator==(const TempCode&) const = default;
};
inline constexpr std::size_t kMaxTempCodeReason = 200;

// pbx-mfa require --user U: required whatever the require groups say.
struct RequiredMark {
  bool on = false;
  std::string by;  // who set it (a user name)
  std::int64_t at = 0;
  bool operator==(const RequiredMark&) const = default;
};

// What a login changes for one device: its replay mark and learned clock offset.
struct DeviceMark {
  std::string device;  // the device's name
  // The device's created time: a device removed and added again under the same name starts
  // afresh. kAnyCreated (written as -1): read from a version 1 state, whose one mark is the
  // device "default"'s, until a login binds it.
  std::int64_t created = 0;
  std::int64_t last_step = kNoStep;  // the last accepted time step (replay mark)
  int skew = 0;                      // learned clock offset, in time steps
  std::int64_t last_used = 0;        // Unix time of its last accepted code (0: never)
  bool operator==(const DeviceMark&) const = default;
};
inline constexpr std::int64_t kAnyCreated = -1;

struct UserState {
  std::string enrollment_id;  // the enrollment this state belongs to
  // One per device that has one; a device without a mark has never been used here (its steps
  // before its created time count as used). Marks of devices no longer in the enrollment mean
  // nothing and are dropped at the next login.
  std::vector<DeviceMark> marks;
  int failures = 0;
  std::int64_t locked_until = 0;
  std::int64_t last_success = 0;
  // The last counted failure, for the notice at the next good login ("N failed attempts since
  // your last login, the last from RHOST at TIME"); cleared with `failures` by a success (so
  // a state is written as version 3 only while failures are pending). The host as rhost_text
  // made it (empty: a local login).
  std::int64_t last_failure = 0;
  std::string last_failure_rhost;
  std::vector<int> used_recovery;
  std::vector<GraceEntry> grace;
  // Of the account, not of an enrollment: they survive re-enrollment and reset.
  RequiredMark required;
  std::optional<TempCode> temp_code;
};

// Format (version 3, written when there is a `last-failure` line, else version 2): then `id`,
// `failures`, `locked-until`, `last-success`, `device NAME CREATED LAST_STEP SKEW LAST_USED` (once
// per mark, at most kMaxDevices), `last-failure TIME HOST` (HOST `-` for a local login; version 3
// only), `used-recovery I,J`, `grace HOST TIME` lines, the account's `required BY AT` and
// `temp-code SALT HASH ISSUED EXPIRES USES ISSUER` (+ `temp-code-kdf scrypt N r p`,
// `temp-code-reason TEXT`), and a last `end` line. Version 1 (read, never written) has
// `last-step` and `skew` lines instead of device lines: they read as the mark of the device
// "default" (created kAnyCreated); version 2 is version 3 without `last-failure`. A skew outside
// -1000..1000 is corrupt; within it, it is clamped to ±kMaxSkewSteps. A remote host as the state
// keeps it: at most kMaxRhostText bytes, every byte that is not printable ASCII (or is a space) as
// '?', so a PAM_RHOST of any bytes cannot add a line; a host named "-" as "?" (not local).
inline constexpr std::size_t kMaxRhostText = 128;
std::string rhost_text(std::string_view rhost);
bool printable_rhost(std::string_view host) noexcept;

std::string serialize_state(const UserState& s);
Result<UserState> parse_state(std::string_view text);

}  // namespace pbx::totp

// UserState: what a login changes (replay mark, failures, lockout, skew), and its text format.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

struct UserState {
  std::string enrollment_id;  // the enrollment this state belongs to
  std::int64_t last_step = kNoStep;
  int failures = 0;
  std::int64_t locked_until = 0;
  int skew = 0;  // learned clock offset, in time steps
  std::int64_t last_success = 0;
  std::vector<int> used_recovery;
  std::vector<GraceEntry> grace;
};

// Format (version 1): `version 1`, then `id`, `last-step`, `failures`, `locked-until`, `skew`,
// `last-success`, `used-recovery I,J`, `grace HOST TIME` lines, and a last `end` line. A `skew`
// outside -1000..1000 is corrupt; within it, it is clamped to ±kMaxSkewSteps.
std::string serialize_state(const UserState& s);
Result<UserState> parse_state(std::string_view text);

}  // namespace pbx::totp

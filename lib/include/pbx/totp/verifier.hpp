// Verifier: checks a code for a user and records the outcome, all under the user's lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::totp {

enum class Verdict {
  kAccepted,          // a TOTP code, now used up
  kRecoveryAccepted,  // a recovery code, now used up
  kRejected,          // wrong code (counted as a failure)
  kReplayed,          // a valid code at or before the last accepted time step (a failure too)
  kLockedOut,         // too many failures: nothing was checked
  kNotEnrolled,
};

const char* verdict_name(Verdict v) noexcept;

struct Outcome {
  Verdict verdict = Verdict::kRejected;
  std::int64_t locked_until = 0;  // set when locked out, also when this failure locked the user
  int failures = 0;
  int recovery_left = 0;
};

constexpr int kMaxLockoutSeconds = 3600;

// What a user's enrollment and state look like now (for status, and to tell a locked-out user
// before asking for a code). State of an earlier enrollment is reported as fresh.
struct UserStatus {
  bool enrolled = false;
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
  int recovery_left = 0;
  UserState state;
  bool locked = false;  // locked_until is in the future
};

class Verifier {
 public:
  Verifier(const Config& config, Store& store, const Clock& clock)
      : config_(config), store_(store), clock_(clock) {}

  // Never throws for bad input. `rhost` keys the grace period (may be empty). Errors: store
  // unreadable, unsafe, corrupt or unreachable, or the outcome could not be recorded (then
  // nothing counts as accepted: fail closed).
  Result<Outcome> verify(const User& user, std::string_view input, std::string_view rhost = {});

  // Reads without changing anything. Errors: store unreadable, unsafe or corrupt.
  Result<UserStatus> status(const User& user);

  // Clears failures and lockout (keeps the replay mark). kNotEnrolled when not enrolled.
  Status unlock(const User& user);

  // True when grace_period > 0 and this user succeeded from this host recently enough.
  Result<bool> in_grace(const User& user, std::string_view rhost);

 private:
  const Config& config_;
  Store& store_;
  const Clock& clock_;
};

// Lockout length after `failures` consecutive failures (0 below max_failures).
std::int64_t lockout_seconds(const Config& config, int failures);

}  // namespace pbx::totp

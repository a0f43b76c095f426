// Verifier: checks a code for a user and records the outcome, all under the user's lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

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
  kTempCodeAccepted,  // a temporary access code (pbx-mfa temp-code), one use spent
};

const char* verdict_name(Verdict v) noexcept;

struct Outcome {
  Verdict verdict = Verdict::kRejected;
  std::int64_t locked_until = 0;  // set when locked out, also when this failure locked the user
  int failures = 0;
  int recovery_left = 0;
  // kTempCodeAccepted: uses left after this one, and who issued the code.
  int temp_code_uses_left = 0;
  std::string temp_code_issuer;
  // kAccepted and kReplayed: the device whose code it was.
  std::string device;
  // A success: the failures counted before it (now cleared) and, when there were some, the
  // last one's time and remote host (rhost_text; empty for a local login).
  int failures_before = 0;
  std::int64_t last_failure = 0;
  std::string last_failure_rhost;
};

// One device as status reports it (never its secret).
struct DeviceStatus {
  std::string name;
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
  std::int64_t created = 0;
  std::int64_t last_used = 0;  // 0: no code of it accepted yet
};

constexpr int kMaxLockoutSeconds = 3600;

// What a user's enrollment and state look like now (for status, and to tell a locked-out user
// before asking for a code). State of an earlier enrollment is reported as fresh.
struct UserStatus {
  bool enrolled = false;
  // The first device's (the oldest): what a single-device report shows.
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
  std::vector<DeviceStatus> devices;  // in the order added; empty when not enrolled
  int recovery_left = 0;
  std::int64_t created = 0;  // of the enrollment (0: unknown or not enrolled)
  // The stored state; for a user who is not enrolled only failures, lockout, the required mark
  // and the temp code mean anything.
  UserState state;
  bool locked = false;            // locked_until is in the future
  bool temp_code_active = false;  // state.temp_code is set, not expired and not used up
  // false: the state could not be read (status with StateRead::kOptional, a user whose state
  // is root's): state, locked, temp_code_active, recovery_left and each device's last_used
  // are unknown and left at their defaults; only the enrollment's own fields are meaningful.
  bool state_known = true;
};

// Whether status() needs the state. kOptional is for a user looking at their own account where
// the state is root's (state_dir, the files store): the enrollment is read from the secret.
enum class StateRead { kRequired, kOptional };

struct ResetReport {
  bool kept_mark = false;
  bool kept_temp_code = false;
  bool state_unreadable = false;  // removed whole: a mark or temp code in it is gone too
};

class Verifier {
 public:
  Verifier(const Config& config, Store& store, const Clock& clock)
      : config_(config), store_(store), clock_(clock) {}

  // Never throws for bad input. `rhost` keys the grace period (may be empty). Errors: store
  // unreadable, unsafe, corrupt or unreachable, or the outcome could not be recorded (then
  // nothing counts as accepted: fail closed). An answer shaped like a temp code is checked
  // against the user's active temp code only (kTempCodeAccepted, or kRejected and counted);
  // that is also how a user who is not enrolled gets past kNotEnrolled (enroll_at_login =
  // with-code). A temp code moves no replay mark, opens no grace period and restores no used
  // recovery code. A TOTP code is computed and compared for every device over the whole window
  // (no early exit, so the time taken tells neither which device nor whether one matched); the
  // first device with a fresh match is accepted and only its replay mark moves.
  Result<Outcome> verify(const User& user, std::string_view input, std::string_view rhost = {});

  // Reads without changing anything. Errors: store unreadable, unsafe or corrupt (with
  // kOptional a state that cannot be read is no error: state_known is false).
  Result<UserStatus> status(const User& user, StateRead read = StateRead::kRequired);

  // Clears failures and lockout (keeps the replay mark). kNotEnrolled when not enrolled and
  // nothing is recorded for the user.
  Status unlock(const User& user);

  // Stores `code` as the user's temp code, replacing any earlier one (enrolled or not).
  Status set_temp_code(const User& user, const TempCode& code);
  // Ends the user's temp code; true when one was active.
  Result<bool> revoke_temp_code(const User& user);
  // Sets or clears (mark.on false) the per-user required mark.
  Status set_required(const User& user, const RequiredMark& mark);
  // Removes the enrollment (secret, replay mark, failures, recovery codes used) and keeps what
  // belongs to the account: the required mark and an active temp code, rewritten under the
  // user's lock. A state that does not read is removed whole (state_unreadable). kNotEnrolled
  // when there was neither a secret nor an enrollment's state.
  Result<ResetReport> reset(const User& user);

  // True when grace_period > 0 and this user succeeded from this host recently enough.
  Result<bool> in_grace(const User& user, std::string_view rhost);

 private:
  Result<Outcome> verify_unenrolled(StateTxn& txn, std::string_view input, std::string_view rhost);
  template <class Change>
  Status update_state(const User& user, Change change);

  const Config& config_;
  Store& store_;
  const Clock& clock_;
};

// Lockout length after `failures` consecutive failures (0 below max_failures).
std::int64_t lockout_seconds(const Config& config, int failures);

}  // namespace pbx::totp

// NewEnrollment: a secret being set up — shown, confirmed with a code, then saved. Shared by
// `pbx-mfa enroll` and enrollment inside a login (enroll_at_login).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::totp {

struct EnrollmentPlan {
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
  int recovery_codes = 5;
  std::string issuer;   // shown in the authenticator app
  std::string account;  // the label's account name

  // What `config` says an enrollment of `account` looks like: its algorithm, digits, period
  // and number of recovery codes, and its issuer, else `issuer_fallback` (the host name), else
  // "pbx-mfa". The one place both front ends take an enrollment's settings from.
  static EnrollmentPlan from(const Config& config, std::string account,
                             std::string_view issuer_fallback);
};

// What save() did besides saving the secret.
struct SaveReport {
  // The secret is saved, but the fresh state (reset_state) could not be written: the
  // confirmation code's use is not recorded. Empty when the state was written or not asked for.
  std::optional<Error> state_error;
};

// How save() treats what is already there.
struct SaveOptions {
  bool overwrite = false;  // replace an existing enrollment (else kExists and nothing changes)
  // Write fresh state under the user's lock (needs write access to state_dir, i.e. root for
  // the file store), with the confirmation code's step marked used so it cannot log in again.
  bool reset_state = false;
};

class NewEnrollment {
 public:
  // A fresh secret from the CSPRNG for `plan`.
  static Result<NewEnrollment> create(const EnrollmentPlan& plan);
  // The secret a create() for the same plan made earlier, given back (`pbx-mfa enroll
  // --finish`: the key round-trips through a web page, nothing is kept on disk meanwhile). It
  // must have exactly the size create() gives the plan's algorithm (secret_size), else kInvalid:
  // a key of another size was not made here.
  static Result<NewEnrollment> restore(const EnrollmentPlan& plan, SecretBytes secret);

  const EnrollmentPlan& plan() const { return plan_; }
  const SecretBytes& secret() const { return secret_; }
  SecretString secret_base32() const;   // unpadded
  SecretString secret_grouped() const;  // in groups of four, as apps show a key to type
  SecretString uri() const;             // otpauth://totp/ISSUER:ACCOUNT?…

  // The time step whose code `typed` is, within ±`window` steps of `now`; spaces are ignored
  // ("123 456" as apps show it). Every step is computed and compared (no early exit).
  std::optional<std::int64_t> match(std::string_view typed, int window, std::int64_t now) const;

  // This secret as a device named `name`, dated after the confirmation code's time step
  // (`confirmed_step`, kNoStep when none was confirmed) so that code cannot also log in.
  Device device(std::string name, std::int64_t now, std::int64_t confirmed_step) const;

  // Makes plan().recovery_codes codes and keeps their hashes for save(); returns them in clear,
  // to be shown once. Calling it again replaces them.
  Result<std::vector<SecretString>> make_recovery_codes(const KdfParams& kdf = {});

  // Saves the secret as the device "default" of a new enrollment (with the recovery codes made
  // so far, if any) atomically; without
  // overwrite an enrollment made meanwhile wins (kExists) and nothing changes. With
  // reset_state the user's lock is held across the save, so a concurrent login sees the old
  // enrollment or the new one with its state, never a mix. A failure to write that state after
  // the secret was saved is no error: the report's state_error says so.
  Result<SaveReport> save(Store& store, const User& user, std::int64_t now,
                          std::int64_t confirmed_step, const SaveOptions& options) const;

 private:
  NewEnrollment() = default;
  EnrollmentPlan plan_;
  SecretBytes secret_;
  RecoverySet recovery_;
};

}  // namespace pbx::totp

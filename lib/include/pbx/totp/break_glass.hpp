// Break-glass codes: per-host one-time codes for logins while the shared database is down.
#pragma once

#include <string_view>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp {

inline constexpr int kBreakGlassGroups = 4;  // "xxxx-xxxx-xxxx-xxxx"; recovery codes have 3
inline constexpr int kMaxBreakGlassCodes = 20;
// Wrong break-glass answers after which this host refuses every break-glass answer, right or
// wrong, until root runs `pbx-mfa break-glass --unlock` or makes a new set.
inline constexpr int kBreakGlassMaxFailures = 5;

// <state_dir>/break-glass: the salted scrypt hashes, which were used and how many wrong answers
// were given since the set was made or unlocked; root-only.
std::string break_glass_path(const Config& config);

// Replaces this host's set with `count` fresh codes and returns them (shown once, never stored
// in clear).
Result<std::vector<SecretString>> make_break_glass_codes(const Config& config, int count,
                                                         const KdfParams& kdf = {});

// How many unused break-glass codes this host has (no file: 0).
Result<int> break_glass_left(const Config& config);

struct BreakGlassStatus {
  int codes = 0;     // in the set
  int left = 0;      // unused
  int failures = 0;  // wrong answers since the set was made or unlocked
  bool locked() const noexcept { return failures >= kBreakGlassMaxFailures; }
};

// This host's set at a glance (no file: all zero). Read without the lock: a hint for prompts
// and reports; answer_break_glass decides under the lock.
Result<BreakGlassStatus> break_glass_status(const Config& config);

enum class BreakGlassVerdict {
  kNotACode,  // not shaped like a break-glass code (or no set): no hash, nothing counted
  kWrong,     // shaped like one but no unused code of this host: counted
  kLocked,    // refused unchecked: kBreakGlassMaxFailures wrong answers were given
  kAccepted,  // an unused code of this host, now used
};

struct BreakGlassAnswer {
  BreakGlassVerdict verdict = BreakGlassVerdict::kNotACode;
  int failures = 0;  // wrong answers counted after this one
  int left = 0;      // unused codes after this one
};

// Judges `input` under the break-glass lock. An answer shaped like a code is counted as wrong
// on disk before its hash is computed and uncounted only when it matches, so a crash in between
// counts it; when the count cannot be written nothing is accepted (an error). Once the count
// reaches kBreakGlassMaxFailures every answer is kLocked without a hash. A corrupt or unsafe file
// is an error and is left alone. The caller accepts kAccepted only while the database cannot be
// reached.
Result<BreakGlassAnswer> answer_break_glass(const Config& config, std::string_view input);

// answer_break_glass, as yes or no: true only for kAccepted.
Result<bool> use_break_glass_code(const Config& config, std::string_view input);

// Root's reset: forgets the wrong answers, so break-glass works again with the same codes.
// Returns how many were forgotten (no file: 0, nothing written).
Result<int> unlock_break_glass(const Config& config);

}  // namespace pbx::totp

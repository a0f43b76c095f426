#include "pbx/totp/verifier.hpp"

#include <openssl/crypto.h>

#include <algorithm>

#include "device_marks.hpp"
#include "hex.hpp"
#include "hmac.hpp"
#include "pbx/totp/code_shape.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/temp_code.hpp"

namespace pbx::totp {
namespace detail {

bool mark_is_of(const DeviceMark& m, const Device& d) noexcept {
  return m.device == d.name &&
         (m.created == d.created || (m.created == kAnyCreated && d.name == kDefaultDevice));
}

// The steps before the device was made count as used, whatever the state says: a
// self-enrollment or a device added by its user (who cannot write the root-owned state) records
// the confirmation code's use nowhere but in the created time, which is put after that code's
// step (NewEnrollment), so the confirmation code (seen over a shoulder, say) cannot also log in.
DeviceMark mark_of(const Device& d, const UserState& state) {
  DeviceMark m{d.name, d.created};
  for (const auto& stored : state.marks) {
    if (mark_is_of(stored, d)) {
      m.last_step = stored.last_step;
      m.skew = stored.skew;
      m.last_used = stored.last_used;
    }
  }
  if (d.created > 0) {
    m.last_step = std::max(m.last_step, time_step(d.created, d.period) - 1);
  }
  return m;
}

}  // namespace detail

namespace {

// 16 bytes of SHA-256: enough to tell hosts apart without keeping their names. detail::sha256,
// not EVP_Digest: a grace login must not pay OpenSSL's provider set-up (issue 20). Empty when
// the hash fails: such a host neither opens nor finds a grace period.
std::string host_key(std::string_view rhost) {
  const auto md = detail::sha256(rhost);
  return md ? detail::to_hex(md->data(), 16) : std::string();
}

int recovery_left(const Enrollment& e, const UserState& s) {
  int used = 0;
  for (int i : s.used_recovery) {
    if (i >= 0 && static_cast<std::size_t>(i) < e.recovery.hashes.size()) ++used;
  }
  return static_cast<int>(e.recovery.hashes.size()) - used;
}

// Index of the matching step offset in [-window, window], or nullopt. Every candidate is
// computed and compared, so the time taken does not depend on where (or whether) it matched.
struct Match {
  std::int64_t step;
  int offset;
};

std::optional<Match> match_totp(const Device& d, std::string_view code, std::int64_t centre,
                                int window, std::int64_t last_step, bool& hmac_failed) {
  Hmac hmac(d.algorithm, d.secret);
  if (!hmac.ok()) {
    hmac_failed = true;
    return std::nullopt;
  }
  std::optional<Match> best;
  for (int w = -window; w <= window; ++w) {
    std::int64_t step = centre + w;
    if (step < 0) continue;
    auto value = hotp(hmac, static_cast<std::uint64_t>(step), d.digits);
    if (!value) {
      hmac_failed = true;
      return std::nullopt;
    }
    std::string expected = format_code(*value, d.digits);
    bool same = expected.size() == code.size() &&
                CRYPTO_memcmp(expected.data(), code.data(), code.size()) == 0;
    wipe(expected);
    // Prefer a match after the last accepted step: two steps may share a code.
    if (same && (!best || (best->step <= last_step && step > last_step))) best = Match{step, w};
  }
  return best;
}

// The marks of the enrollment's devices, in its order; marks of other devices are dropped.
std::vector<DeviceMark> marks_of(const Enrollment& e, const UserState& state) {
  std::vector<DeviceMark> marks;
  marks.reserve(e.devices.size());
  for (const auto& d : e.devices) marks.push_back(detail::mark_of(d, state));
  return marks;
}

// The TOTP check over every device: all are computed and compared (no early exit across
// devices or steps). The first device with a match after its replay mark wins; else the first
// with a match at or before it (a replay).
struct TotpHit {
  std::size_t device = 0;
  Match match{};
  bool fresh = false;
};

Result<std::optional<TotpHit>> match_devices(const Enrollment& e,
                                             const std::vector<DeviceMark>& marks,
                                             std::string_view code, std::int64_t now, int window) {
  std::optional<TotpHit> hit;
  for (std::size_t i = 0; i < e.devices.size(); ++i) {
    const Device& d = e.devices[i];
    std::int64_t centre = time_step(now, d.period) + marks[i].skew;
    bool hmac_failed = false;
    auto m = match_totp(d, code, centre, window, marks[i].last_step, hmac_failed);
    if (hmac_failed) return make_error(Errc::kInternal, "HMAC computation failed");
    if (!m) continue;
    bool fresh = m->step > marks[i].last_step;
    if (!hit || (fresh && !hit->fresh)) hit = TotpHit{i, *m, fresh};
  }
  return hit;
}

// Whether `code` has `shape` for some device (an 8-digit answer is a TOTP code of an 8-digit
// device and an imported scratch code of a 6-digit one).
bool shaped(const Enrollment& e, std::string_view code, CodeShape shape) {
  bool any = false;
  for (const auto& d : e.devices) {
    any = classify_code(code, d.digits, CodeForm::kTyped) == shape || any;
  }
  return any;
}

// The state a login starts from when there is none for this enrollment (none yet, or an
// earlier enrollment's): no marks (each device's starts at its created time, mark_of).
// What belongs to the account rather than to an enrollment (the required mark, the temp code)
// is carried over from `prior`.
UserState fresh_state(const Enrollment& e, const UserState& prior) {
  UserState s;
  s.enrollment_id = e.id;
  s.required = prior.required;
  s.temp_code = prior.temp_code;
  return s;
}

// The state of a user who is not enrolled is the stored one, whole. It is usually the
// account's alone (enrollment id ""), but it may still be an enrollment's whose secret is
// missing (deleted some other way from a home, a home not mounted yet, a database row
// deleted): its id, replay mark, used recovery codes and lockout must survive a helpdesk
// action or a login attempt, or enroll_at_login's "key is missing" guard and the used
// recovery codes would be gone when the secret comes back. Only `reset` clears it.
UserState unenrolled_state(const UserState& stored) { return stored; }

// What is about to be written must read back as exactly itself: a field that parse_state
// refuses (a name with '@', a reason with a newline) would make the user's state unreadable,
// or plant lines of its own (a grace entry: a login without a code). Bad input writes nothing.
Status check_writable(const UserState& state) {
  const std::string text = serialize_state(state);
  auto back = parse_state(text);
  if (!back || serialize_state(*back) != text) {
    return make_error(Errc::kInvalid, "the state would not read back (a bad name or reason)");
  }
  return Ok{};
}

// A success (TOTP, recovery or temp code): failures and lockout cleared; the outcome says how
// many there were (the notice "N failed attempts since your last login").
void count_success(UserState& state, std::int64_t now, Outcome& out) {
  out.failures_before = state.failures;
  if (state.failures > 0) {
    out.last_failure = state.last_failure;
    out.last_failure_rhost = state.last_failure_rhost;
  }
  state.failures = 0;
  state.last_failure = 0;
  state.last_failure_rhost.clear();
  state.locked_until = 0;
  state.last_success = now;
}

// The answer to a locked-out user: nothing was checked.
Outcome locked_out(const UserState& state) {
  Outcome out;
  out.verdict = Verdict::kLockedOut;
  out.locked_until = state.locked_until;
  out.failures = state.failures;
  return out;
}

// A failure: counted, and a lockout once there are enough. When and where from is kept for the
// notice at the next good login.
void count_failure(const Config& config, UserState& state, std::int64_t now,
                   std::string_view rhost) {
  state.failures = std::min(state.failures + 1, 1000000);
  state.last_failure = now;
  state.last_failure_rhost = rhost_text(rhost);
  std::int64_t lock = lockout_seconds(config, state.failures);
  if (lock > 0) state.locked_until = now + lock;
}

// Checks `code` against the user's temp code when it has the shape of one and one is active:
// nullopt when it was not checked, else whether it matched (one use is then spent).
Result<std::optional<bool>> try_temp_code(UserState& state, std::string_view code, std::int64_t now,
                                          Outcome& out) {
  if (!state.temp_code || !state.temp_code->active(now) || !looks_like_temp_code(code)) {
    return std::optional<bool>{};
  }
  auto match = match_temp_code(*state.temp_code, code);
  if (!match) return match.error();
  if (!*match) return std::optional<bool>(false);
  state.temp_code->uses_left -= 1;
  out.verdict = Verdict::kTempCodeAccepted;
  out.temp_code_uses_left = state.temp_code->uses_left;
  out.temp_code_issuer = state.temp_code->issuer;
  return std::optional<bool>(true);
}

std::string_view trim_spaces(std::string_view code) {
  while (!code.empty() && code.front() == ' ') code.remove_prefix(1);
  while (!code.empty() && code.back() == ' ') code.remove_suffix(1);
  return code;
}

}  // namespace

const char* verdict_name(Verdict v) noexcept {
  switch (v) {
    case Verdict::kAccepted:
      return "accepted";
    case Verdict::kRecoveryAccepted:
      return "recovery-code-accepted";
    case Verdict::kRejected:
      return "rejected";
    case Verdict::kReplayed:
      return "replayed";
    case Verdict::kLockedOut:
      return "locked-out";
    case Verdict::kNotEnrolled:
      return "not-enrolled";
    case Verdict::kTempCodeAccepted:
      return "temp-code-accepted";
  }
  return "unknown";
}

std::int64_t lockout_seconds(const Config& config, int failures) {
  if (failures < config.max_failures) return 0;
  std::int64_t secs = config.lockout;
  if (secs <= 0) return 0;  // a hand-built Config; the parser allows 1 to 3600
  for (int i = config.max_failures; i < failures && secs < kMaxLockoutSeconds; ++i) secs *= 2;
  return std::min<std::int64_t>(secs, kMaxLockoutSeconds);
}

Result<Outcome> Verifier::verify(const User& user, std::string_view input, std::string_view rhost) {
  try {
    auto txn = store_.lock_state(user);
    // Load the secret under the lock so a concurrent re-enrollment is seen whole. Without the
    // lock, its error is the answer (an unreachable-looking load after a failed lock must not
    // hide what went wrong), except that a user without a secret is simply not enrolled.
    auto enrollment = store_.load(user);
    if (!txn && (enrollment.ok() || enrollment.error().code != Errc::kNotEnrolled)) {
      return txn.error();
    }
    if (!enrollment) {
      if (enrollment.error().code != Errc::kNotEnrolled) return enrollment.error();
      if (!txn) {
        Outcome o;
        o.verdict = Verdict::kNotEnrolled;
        return o;
      }
      return verify_unenrolled(**txn, input, rhost);
    }
    if (!txn) return txn.error();
    const Enrollment& e = *enrollment;
    if (e.devices.empty()) return make_error(Errc::kCorrupt, "the enrollment has no device");
    UserState state = (*txn)->state();
    // None yet, or stale: belongs to an earlier enrollment.
    if (state.enrollment_id != e.id) state = fresh_state(e, state);

    const std::int64_t now = clock_.now();
    if (state.locked_until > now) {
      Outcome out = locked_out(state);
      out.recovery_left = recovery_left(e, state);
      return out;
    }
    Outcome out;

    std::string_view code = trim_spaces(input);

    bool success = false;
    bool temp_code = false;
    std::vector<DeviceMark> marks = marks_of(e, state);
    auto temp = try_temp_code(state, code, now, out);
    if (!temp) return temp.error();
    if (temp->has_value()) {
      // A temp code's shape is checked against the temp code only: one slow hash.
      success = **temp;
      temp_code = success;
      if (!success) out.verdict = Verdict::kRejected;
    } else {
      bool totp_hit = false;
      if (shaped(e, code, CodeShape::kTotp)) {
        auto hit = match_devices(e, marks, code, now, config_.window);
        if (!hit) return hit.error();
        totp_hit = hit->has_value();
        if (totp_hit && (*hit)->fresh) {
          DeviceMark& mark = marks[(*hit)->device];
          out.verdict = Verdict::kAccepted;
          mark.last_step = (*hit)->match.step;
          mark.skew = std::clamp(mark.skew + (*hit)->match.offset, -kMaxSkewSteps, kMaxSkewSteps);
          mark.last_used = now;
          out.device = mark.device;
          success = true;
        } else if (totp_hit) {
          out.verdict = Verdict::kReplayed;
          out.device = marks[(*hit)->device].device;
        } else {
          out.verdict = Verdict::kRejected;
        }
      }
      // Not a code of any device: a recovery code (or a scratch code of the same length as
      // another device's codes) is checked next.
      if (!totp_hit && shaped(e, code, CodeShape::kRecovery)) {
        auto idx = match_recovery_code(e.recovery, code, state.used_recovery);
        if (!idx) return idx.error();
        if (idx->has_value()) {
          out.verdict = Verdict::kRecoveryAccepted;
          state.used_recovery.push_back(**idx);
          success = true;
        } else {
          out.verdict = Verdict::kRejected;
        }
      } else if (!totp_hit) {
        out.verdict = Verdict::kRejected;
      }
    }
    state.marks = std::move(marks);

    if (success) {
      count_success(state, now, out);
      // A temp code opens no grace period: the next login asks again.
      std::string key = config_.grace_period > 0 && !rhost.empty() && !temp_code ? host_key(rhost)
                                                                                 : std::string();
      if (!key.empty()) {
        std::erase_if(state.grace, [&](const GraceEntry& g) {
          return g.host == key || g.at + config_.grace_period <= now;
        });
        if (state.grace.size() >= static_cast<std::size_t>(kMaxGraceEntries)) {
          state.grace.erase(state.grace.begin());
        }
        state.grace.push_back(GraceEntry{key, now});
      }
    } else {
      count_failure(config_, state, now, rhost);
    }
    // Record before answering: an outcome that cannot be written is no success (fail closed).
    if (auto st = (*txn)->commit(state); !st) return st.error();
    out.failures = state.failures;
    out.locked_until = state.locked_until;
    out.recovery_left = recovery_left(e, state);
    return out;
  } catch (const std::exception& ex) {
    return make_error(Errc::kInternal, ex.what());
  }
}

// verify() for a user without an enrollment: only an active temp code can be right (it is the
// key to enrollment at login, enroll_at_login = with-code). Without one nothing is checked or
// counted (kNotEnrolled); with one, any other answer is a counted failure.
Result<Outcome> Verifier::verify_unenrolled(StateTxn& txn, std::string_view input,
                                            std::string_view rhost) {
  UserState state = unenrolled_state(txn.state());
  const std::int64_t now = clock_.now();
  if (state.locked_until > now) return locked_out(state);
  Outcome out;
  if (!state.temp_code || !state.temp_code->active(now)) {
    out.verdict = Verdict::kNotEnrolled;
    return out;
  }
  auto temp = try_temp_code(state, trim_spaces(input), now, out);
  if (!temp) return temp.error();
  if (temp->has_value() && **temp) {
    count_success(state, now, out);
  } else {
    out.verdict = Verdict::kRejected;
    count_failure(config_, state, now, rhost);
  }
  if (auto st = txn.commit(state); !st) return st.error();
  out.failures = state.failures;
  out.locked_until = state.locked_until;
  return out;
}

Result<UserStatus> Verifier::status(const User& user, StateRead read) {
  UserStatus st;
  auto enrollment = store_.load(user);
  if (!enrollment && enrollment.error().code != Errc::kNotEnrolled) return enrollment.error();
  auto state = store_.peek_state(user);
  if (!state) {
    if (read == StateRead::kRequired) return state.error();
    st.state_known = false;
    state = UserState{};
  }
  const std::int64_t now = clock_.now();
  if (!enrollment) {
    st.state = unenrolled_state(*state);
  } else {
    const Enrollment& e = *enrollment;
    if (e.devices.empty()) return make_error(Errc::kCorrupt, "the enrollment has no device");
    st.enrolled = true;
    st.algorithm = e.devices.front().algorithm;
    st.digits = e.devices.front().digits;
    st.period = e.devices.front().period;
    st.created = e.created;
    st.state = state->enrollment_id == e.id ? std::move(state.value()) : fresh_state(e, *state);
    st.state.marks = marks_of(e, st.state);
    for (std::size_t i = 0; i < e.devices.size(); ++i) {
      const Device& d = e.devices[i];
      st.devices.push_back(DeviceStatus{d.name, d.algorithm, d.digits, d.period, d.created,
                                        st.state.marks[i].last_used});
    }
    st.recovery_left = recovery_left(e, st.state);
  }
  if (!st.state_known) st.recovery_left = 0;
  st.locked = st.state.locked_until > now;
  st.temp_code_active = st.state.temp_code && st.state.temp_code->active(now);
  return st;
}

// Runs `change` on the user's state under the lock and commits it; the state is the
// enrollment's (fresh when stale) or, without an enrollment, the account's.
template <class Change>
Status Verifier::update_state(const User& user, Change change) {
  try {
    auto txn = store_.lock_state(user);
    if (!txn) return txn.error();
    auto enrollment = store_.load(user);
    if (!enrollment && enrollment.error().code != Errc::kNotEnrolled) return enrollment.error();
    UserState state = (*txn)->state();
    if (!enrollment) {
      state = unenrolled_state(state);
    } else if (state.enrollment_id != enrollment->id) {
      state = fresh_state(*enrollment, state);
    }
    if (auto st = change(state, enrollment.ok()); !st) return st;
    if (auto st = check_writable(state); !st) return st;
    return (*txn)->commit(state);
  } catch (const std::exception& ex) {
    return make_error(Errc::kInternal, ex.what());
  }
}

Status Verifier::set_temp_code(const User& user, const TempCode& code) {
  return update_state(user, [&](UserState& s, bool) -> Status {
    s.temp_code = code;
    return Ok{};
  });
}

Result<bool> Verifier::revoke_temp_code(const User& user) {
  bool was_active = false;
  auto st = update_state(user, [&](UserState& s, bool) -> Status {
    was_active = s.temp_code && s.temp_code->active(clock_.now());
    s.temp_code.reset();
    return Ok{};
  });
  if (!st) return st.error();
  return was_active;
}

Status Verifier::set_required(const User& user, const RequiredMark& mark) {
  return update_state(user, [&](UserState& s, bool) -> Status {
    s.required = mark.on ? mark : RequiredMark{};
    return Ok{};
  });
}

Result<ResetReport> Verifier::reset(const User& user) {
  try {
    ResetReport report;
    auto txn = store_.lock_state(user);
    if (!txn) {
      // Reset is the repair: a state that does not read goes with the secret, and a required
      // mark or temp code in it with it (the report says so).
      if (txn.error().code != Errc::kCorrupt) return txn.error();
      if (auto st = store_.remove(user); !st) return st.error();
      report.state_unreadable = true;
      return report;
    }
    const UserState current = (*txn)->state();
    // A secret that does not load (missing while its state is left, unreadable, corrupt) is
    // removed like any other. Not enrolled means neither a secret nor an enrollment's state.
    auto enrollment = store_.load(user);
    if (!enrollment && enrollment.error().code == Errc::kNotEnrolled &&
        current.enrollment_id.empty()) {
      return enrollment.error();
    }
    report.kept_mark = current.required.on;
    report.kept_temp_code = current.temp_code && current.temp_code->active(clock_.now());
    if (!report.kept_mark && !report.kept_temp_code) {
      txn->reset();  // nothing to keep: secret and state go, as before the account's part
      if (auto st = store_.remove(user); !st) return st.error();
      return report;
    }
    // Something to keep: the secret goes and the state is replaced under the same lock, so a
    // login or a revoke meanwhile can neither be undone nor revived.
    auto removed = store_.remove_secret(user);
    if (!removed) return removed.error();
    UserState kept;
    if (report.kept_mark) kept.required = current.required;
    if (report.kept_temp_code) kept.temp_code = current.temp_code;
    if (auto st = (*txn)->commit(kept); !st) return st.error();
    return report;
  } catch (const std::exception& ex) {
    return make_error(Errc::kInternal, ex.what());
  }
}

Status Verifier::unlock(const User& user) {
  return update_state(user, [&](UserState& s, bool enrolled) -> Status {
    if (!enrolled && s.failures == 0 && s.locked_until == 0) {
      return make_error(Errc::kNotEnrolled, "user '" + user.name + "' is not enrolled");
    }
    s.failures = 0;
    s.locked_until = 0;
    // The failed-attempts notice counts from here (the helpdesk has seen them).
    s.last_failure = 0;
    s.last_failure_rhost.clear();
    return Ok{};
  });
}

Result<bool> Verifier::in_grace(const User& user, std::string_view rhost) {
  if (config_.grace_period <= 0 || rhost.empty()) return false;
  auto txn = store_.lock_state(user);
  if (!txn) return txn.error();
  auto enrollment = store_.load(user);
  if (!enrollment) return enrollment.error();
  const UserState& state = (*txn)->state();
  if (state.enrollment_id != enrollment->id) return false;
  const std::int64_t now = clock_.now();
  if (state.locked_until > now) return false;
  std::string key = host_key(rhost);
  if (key.empty()) return false;
  for (const auto& g : state.grace) {
    if (g.host == key && g.at <= now && now < g.at + config_.grace_period) return true;
  }
  return false;
}

}  // namespace pbx::totp

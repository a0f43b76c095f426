#include "pbx/totp/new_enrollment.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "pbx/totp/base32.hpp"
#include "pbx/totp/otpauth_uri.hpp"
#include "pbx/totp/state.hpp"

namespace pbx::totp {

EnrollmentPlan EnrollmentPlan::from(const Config& config, std::string account,
                                    std::string_view issuer_fallback) {
  EnrollmentPlan plan;
  plan.algorithm = config.algorithm;
  plan.digits = config.digits;
  plan.period = config.period;
  plan.recovery_codes = config.recovery_codes;
  if (!config.issuer.empty()) {
    plan.issuer = config.issuer;
  } else if (!issuer_fallback.empty()) {
    plan.issuer = issuer_fallback;
  } else {
    plan.issuer = "pbx-mfa";
  }
  plan.account = std::move(account);
  return plan;
}

namespace {

Status check_plan(const EnrollmentPlan& plan) {
  if (plan.digits < kMinDigits || plan.digits > kMaxDigits) {
    return make_error(Errc::kInvalid, "digits must be " + std::to_string(kMinDigits) + " to " +
                                          std::to_string(kMaxDigits));
  }
  if (plan.period < 1 || plan.recovery_codes < 0 || plan.recovery_codes > kMaxRecoveryCodes) {
    return make_error(Errc::kInvalid, "bad period or number of recovery codes");
  }
  return Ok{};
}

}  // namespace

Result<NewEnrollment> NewEnrollment::create(const EnrollmentPlan& plan) {
  if (auto ok = check_plan(plan); !ok) return ok.error();
  auto secret = generate_secret(plan.algorithm);
  if (!secret) return secret.error();
  return restore(plan, std::move(secret.value()));
}

namespace {

// A key typed or chosen by a person rather than drawn from the CSPRNG: fewer than 8 different
// byte values, or a pattern that repeats (period up to half the key). A key of 20 random bytes
// is either with a probability far below 1e-15, so a fresh key never trips this.
bool looks_made_up(const SecretBytes& key) {
  const std::size_t n = key.size();
  std::array<bool, 256> seen{};
  std::size_t distinct = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!seen[key.data()[i]]) {
      seen[key.data()[i]] = true;
      ++distinct;
    }
  }
  if (distinct < 8) return true;
  for (std::size_t period = 1; period <= n / 2; ++period) {
    bool repeats = true;
    for (std::size_t i = 0; i + period < n && repeats; ++i)
      repeats = key.data()[i] == key.data()[i + period];
    if (repeats) return true;
  }
  return false;
}

}  // namespace

Result<NewEnrollment> NewEnrollment::restore(const EnrollmentPlan& plan, SecretBytes secret) {
  if (auto ok = check_plan(plan); !ok) return ok.error();
  const std::size_t expected = secret_size(plan.algorithm);
  if (secret.size() != expected) {
    return make_error(Errc::kInvalid, "a key of " + std::to_string(secret.size()) +
                                          " bytes, where " +
                                          std::string(algorithm_name(plan.algorithm)) +
                                          " enrollments get " + std::to_string(expected));
  }
  if (looks_made_up(secret)) {
    return make_error(Errc::kInvalid,
                      "the key is not random (too few different bytes, or a repeating pattern)");
  }
  NewEnrollment e;
  e.plan_ = plan;
  e.secret_ = std::move(secret);
  return e;
}

SecretString NewEnrollment::secret_base32() const {
  return SecretString(base32_encode(secret_, false));
}

SecretString NewEnrollment::secret_grouped() const {
  SecretString plain = secret_base32();
  return SecretString(group_by_four(plain.view()));
}

SecretString NewEnrollment::uri() const {
  OtpParams params;
  params.issuer = plan_.issuer;
  params.account = plan_.account;
  params.secret = secret_;
  params.algorithm = plan_.algorithm;
  params.digits = plan_.digits;
  params.period = plan_.period;
  return SecretString(build_otpauth_uri(params));
}

std::optional<std::int64_t> NewEnrollment::match(std::string_view typed, int window,
                                                 std::int64_t now) const {
  SecretString code;
  for (char c : typed) {
    if (c != ' ' && c != '\t') code.append(c);
  }
  if (code.view().size() != static_cast<std::size_t>(plan_.digits)) return std::nullopt;
  Hmac hmac(plan_.algorithm, secret_);
  if (!hmac.ok()) return std::nullopt;
  const std::int64_t centre = time_step(now, plan_.period);
  std::optional<std::int64_t> found;
  for (int d = -window; d <= window; ++d) {
    std::int64_t step = centre + d;
    if (step < 0) continue;
    auto value = hotp(hmac, static_cast<std::uint64_t>(step), plan_.digits);
    if (!value) return std::nullopt;
    SecretString expected(format_code(*value, plan_.digits));
    bool same = CRYPTO_memcmp(expected.view().data(), code.view().data(), code.view().size()) == 0;
    if (same && !found) found = step;
  }
  return found;
}

Result<std::vector<SecretString>> NewEnrollment::make_recovery_codes(const KdfParams& kdf) {
  auto codes = generate_recovery_codes(plan_.recovery_codes);
  if (!codes) return codes.error();
  auto hashed = hash_recovery_codes(*codes, kdf);
  if (!hashed) return hashed.error();
  recovery_ = std::move(hashed.value());
  return codes;
}

Device NewEnrollment::device(std::string name, std::int64_t now,
                             std::int64_t confirmed_step) const {
  Device d;
  d.name = std::move(name);
  d.secret = secret_;
  d.algorithm = plan_.algorithm;
  d.digits = plan_.digits;
  d.period = plan_.period;
  d.created = now;
  // Dated after the confirmation code's time step (up to window + 1 steps ahead, for a phone
  // whose clock is ahead): until a login writes state, the verifier counts the steps before
  // the creation as used, so the confirmation code cannot also log in even when the state
  // could not be written (a self-enrollment).
  if (confirmed_step != kNoStep && confirmed_step < (INT64_C(1) << 40) / plan_.period) {
    d.created = std::max(now, (confirmed_step + 1) * plan_.period);
  }
  return d;
}

Result<SaveReport> NewEnrollment::save(Store& store, const User& user, std::int64_t now,
                                       std::int64_t confirmed_step,
                                       const SaveOptions& options) const {
  auto id = new_enrollment_id();
  if (!id) return id.error();
  Enrollment e;
  e.id = *id;
  e.devices.push_back(device(std::string(kDefaultDevice), now, confirmed_step));
  e.created = e.devices.front().created;
  e.recovery = recovery_;

  std::unique_ptr<StateTxn> txn;
  if (options.reset_state) {
    auto locked = store.lock_state(user);
    if (!locked) return locked.error();
    txn = std::move(locked.value());
  }
  if (auto st = store.save(user, e, options.overwrite); !st) return st.error();
  SaveReport report;
  if (txn) {
    UserState fresh;
    fresh.enrollment_id = e.id;
    fresh.marks.push_back(DeviceMark{e.devices.front().name, e.created, confirmed_step});
    // The account's part (state.hpp) survives a new enrollment: the required mark, and a temp
    // code that still has uses left.
    fresh.required = txn->state().required;
    fresh.temp_code = txn->state().temp_code;
    if (auto st = txn->commit(fresh); !st) {
      txn.reset();
      // The database store saves inside the state transaction: a failed commit took the
      // enrollment with it, and the user must not be told it was saved.
      auto saved = store.load(user);
      if (!saved || saved->id != e.id) return st.error();
      report.state_error = st.error();
    }
  }
  return report;
}

}  // namespace pbx::totp

// Micro-benchmarks: one bare HMAC-SHA1 against the library's full check of one code.
//
// The target is BM_FullCodeCheck <= 3.5x BM_BareHmacSha1 (bench/run prints the ratio).
// BM_VerifierEndToEnd is a whole Verifier::verify with its file store (lock, read, fsync,
// rename) and is reported on its own: it is dominated by the file system, not by HMAC.
// The BM_Part* benchmarks break the full check down so a regression can be pinned on a part.
// BM_MatchDevices/N and BM_VerifierDevices/N (issue 16): one check against N devices, which
// must grow linearly with N (every device is computed, no early exit).

#include <benchmark/benchmark.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/devices.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"

namespace {

namespace totp = pbx::totp;

// RFC 4226 appendix D key, "12345678901234567890": 20 bytes, the SHA1 secret size.
constexpr std::uint8_t kKey[20] = {'1', '2', '3', '4', '5', '6', '7', '8', '9', '0',
                                   '1', '2', '3', '4', '5', '6', '7', '8', '9', '0'};
constexpr std::int64_t kNow = 1'700'000'000;
constexpr int kPeriod = 30;
constexpr int kDigits = 6;

void put_counter(std::uint64_t counter, std::uint8_t (&msg)[8]) {
  for (int i = 7; i >= 0; --i) {
    msg[i] = static_cast<std::uint8_t>(counter & 0xFFU);
    counter >>= 8;
  }
}

// (a) One bare HMAC-SHA1 of an 8-byte counter with a 20-byte key, the cheapest normal way
// OpenSSL 3 offers for a key it has not seen before. What does not depend on the key is done
// once, outside the loop: fetching the HMAC implementation (EVP_MAC_fetch), making the
// context and choosing SHA1. Every iteration pays what one HMAC with a given key costs: the
// key set-up (EVP_MAC_init with the key: ipad/opad), the update with the counter, the final.
// Reusing a prepared key across iterations would not be "one HMAC" but the marginal cost of
// one more message (that is BM_PartHotpReusedKey); fetching per iteration would charge the
// reference for a provider lookup a careful caller does once.
void BM_BareHmacSha1(benchmark::State& state) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
  char digest[] = "SHA1";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (ctx == nullptr || EVP_MAC_CTX_set_params(ctx, params) != 1) {
    state.SkipWithError("EVP_MAC set-up failed");
  } else {
    std::uint8_t msg[8];
    put_counter(static_cast<std::uint64_t>(totp::time_step(kNow, kPeriod)), msg);
    std::uint8_t out[EVP_MAX_MD_SIZE];
    for (auto _ : state) {
      std::size_t len = 0;
      if (EVP_MAC_init(ctx, kKey, sizeof kKey, nullptr) != 1 ||
          EVP_MAC_update(ctx, msg, sizeof msg) != 1 ||
          EVP_MAC_final(ctx, out, &len, sizeof out) != 1 || len != 20) {
        state.SkipWithError("HMAC failed");
        break;
      }
      benchmark::DoNotOptimize(out);
      benchmark::ClobberMemory();
    }
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
}
BENCHMARK(BM_BareHmacSha1);

// The same one HMAC-SHA1 under a key, by the library's own pbx::totp::Hmac (RFC 2104 over
// OpenSSL's SHA1_* since issue 20): key set-up and one MAC per iteration, as BM_BareHmacSha1
// does with EVP_MAC. BM_BareHmacSha1 stays the independent reference of the ratio above;
// this one shows what the login's HMAC costs next to it.
void BM_BareHmacSha1Ours(benchmark::State& state) {
  const totp::SecretBytes key(kKey, sizeof kKey);
  std::uint8_t msg[8];
  put_counter(static_cast<std::uint64_t>(totp::time_step(kNow, kPeriod)), msg);
  std::uint8_t out[64];
  for (auto _ : state) {
    totp::Hmac hmac(totp::Algorithm::kSha1, key);
    if (!hmac.ok() || hmac.mac(msg, sizeof msg, out) != 20) {
      state.SkipWithError("HMAC failed");
      break;
    }
    benchmark::DoNotOptimize(out);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_BareHmacSha1Ours);

// (b) The full check of one typed code over window 1, as the Verifier does it for a login:
// a pbx::totp::Hmac made from the key (once per login), then hotp() for steps t-1, t, t+1,
// each formatted and compared with the typed code in constant time, all three always.
void BM_FullCodeCheck(benchmark::State& state) {
  const totp::SecretBytes key(kKey, sizeof kKey);
  const std::int64_t step = totp::time_step(kNow, kPeriod);
  // A right code (step t): the check must not get cheaper for it, there is no early exit.
  const auto typed_code =
      totp::hotp(key, totp::Algorithm::kSha1, static_cast<std::uint64_t>(step), kDigits);
  if (!typed_code) {
    state.SkipWithError("hotp failed");
    return;
  }
  const std::string typed = totp::format_code(*typed_code, kDigits);
  for (auto _ : state) {
    totp::Hmac hmac(totp::Algorithm::kSha1, key);
    if (!hmac.ok()) {
      state.SkipWithError("Hmac failed");
      break;
    }
    int matched = -1;
    bool failed = false;
    for (int d = -1; d <= 1; ++d) {
      const auto code = totp::hotp(hmac, static_cast<std::uint64_t>(step + d), kDigits);
      failed |= !code.has_value();
      std::string expected = totp::format_code(code.value_or(0), kDigits);
      const bool equal = CRYPTO_memcmp(expected.data(), typed.data(), expected.size()) == 0;
      matched = equal ? d : matched;
      totp::wipe(expected);
    }
    if (failed) {
      state.SkipWithError("hotp failed");
      break;
    }
    benchmark::DoNotOptimize(matched);
  }
}
BENCHMARK(BM_FullCodeCheck);

// Parts of (b), to explain it; not part of the ratio.
void BM_PartHmacConstruct(benchmark::State& state) {
  const totp::SecretBytes key(kKey, sizeof kKey);
  for (auto _ : state) {
    totp::Hmac hmac(totp::Algorithm::kSha1, key);
    benchmark::DoNotOptimize(hmac.ok());
  }
}
BENCHMARK(BM_PartHmacConstruct);

void BM_PartHotpReusedKey(benchmark::State& state) {
  const totp::SecretBytes key(kKey, sizeof kKey);
  totp::Hmac hmac(totp::Algorithm::kSha1, key);
  const auto step = static_cast<std::uint64_t>(totp::time_step(kNow, kPeriod));
  for (auto _ : state) {
    auto code = totp::hotp(hmac, step, kDigits);
    benchmark::DoNotOptimize(code);
  }
}
BENCHMARK(BM_PartHotpReusedKey);

void BM_PartEvpMacFetch(benchmark::State& state) {
  for (auto _ : state) {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    benchmark::DoNotOptimize(mac);
    EVP_MAC_free(mac);
  }
}
BENCHMARK(BM_PartEvpMacFetch);

// EVP_MAC_CTX_new + choosing SHA1 (an EVP_MD_fetch inside the provider) + free, with the
// EVP_MAC already fetched: what Hmac's constructor pays besides the fetch and the key set-up.
void BM_PartMacCtxNewSha1(benchmark::State& state) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  char digest[] = "SHA1";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  for (auto _ : state) {
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
    if (ctx == nullptr || EVP_MAC_CTX_set_params(ctx, params) != 1) {
      state.SkipWithError("EVP_MAC_CTX set-up failed");
      EVP_MAC_CTX_free(ctx);
      break;
    }
    benchmark::DoNotOptimize(ctx);
    EVP_MAC_CTX_free(ctx);
  }
  EVP_MAC_free(mac);
}
BENCHMARK(BM_PartMacCtxNewSha1);

// The key set-up alone (EVP_MAC_init with the key on a ready context): the only part of
// Hmac's constructor that is cryptographic work.
void BM_PartKeySetup(benchmark::State& state) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
  char digest[] = "SHA1";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (ctx == nullptr || EVP_MAC_CTX_set_params(ctx, params) != 1) {
    state.SkipWithError("EVP_MAC set-up failed");
  } else {
    for (auto _ : state) {
      if (EVP_MAC_init(ctx, kKey, sizeof kKey, nullptr) != 1) {
        state.SkipWithError("EVP_MAC_init failed");
        break;
      }
      benchmark::ClobberMemory();
    }
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
}
BENCHMARK(BM_PartKeySetup);

// (c) Verifier::verify end to end against the file store in a fresh directory under `base`
// (TMPDIR or /tmp when empty): per-user lock, reading secret and state, deciding, writing the
// state to a temp file, fsync, rename. A FixedClock moves one step per iteration, so every
// login is a new, accepted code. Not part of the ratio.
void BM_VerifierEndToEnd(benchmark::State& state, const char* base) {
  std::string root = base;
  if (root.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    root = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::string templ = root + "/pbx-bench-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    state.SkipWithError(("mkdtemp failed under " + root).c_str());
    return;
  }
  const std::filesystem::path dir = templ;
  struct Cleanup {
    std::filesystem::path p;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(p, ec);
    }
  } cleanup{dir};

  const std::string home = (dir / "home").string();
  const std::string state_dir = (dir / "state").string();
  if (mkdir(home.c_str(), 0700) != 0 || mkdir(state_dir.c_str(), 0700) != 0) {
    state.SkipWithError("mkdir failed");
    return;
  }
  totp::Config config;
  config.secret_path = "%h/.pbx-mfa";
  config.state_dir = state_dir;
  config.recovery_codes = 0;
  config.trusted_uid = geteuid();
  const totp::User user{"pbx-bench", geteuid(), getegid(), home};

  auto store = totp::open_store(config);
  if (!store) {
    state.SkipWithError(("open_store: " + store.error().message).c_str());
    return;
  }
  auto id = totp::new_enrollment_id();
  if (!id) {
    state.SkipWithError("new_enrollment_id failed");
    return;
  }
  totp::Enrollment enrollment = totp::single_device_enrollment(
      *id, totp::SecretBytes(kKey, sizeof kKey), totp::Algorithm::kSha1, kDigits, kPeriod, kNow);
  if (auto saved = (*store)->save(user, enrollment, true); !saved) {
    state.SkipWithError(("save: " + saved.error().message).c_str());
    return;
  }

  totp::FixedClock clock(kNow);
  totp::Verifier verifier(config, **store, clock);
  for (auto _ : state) {
    clock.advance(kPeriod);
    const auto code =
        totp::hotp(enrollment.devices.front().secret, totp::Algorithm::kSha1,
                   static_cast<std::uint64_t>(totp::time_step(clock.now(), kPeriod)), kDigits);
    const std::string typed = totp::format_code(code.value_or(0), kDigits);
    const auto outcome = verifier.verify(user, typed);
    if (!outcome.ok() || outcome->verdict != totp::Verdict::kAccepted) {
      std::string why =
          "verify: " + (outcome.ok() ? std::string(totp::verdict_name(outcome->verdict))
                                     : "error: " + outcome.error().message);
      state.SkipWithError(why.c_str());
      break;
    }
  }
}
BENCHMARK_CAPTURE(BM_VerifierEndToEnd, tmpdir, "")->UseRealTime();
BENCHMARK_CAPTURE(BM_VerifierEndToEnd, dev_shm, "/dev/shm")->UseRealTime();

// ---------------------------------------------------------------------------------------------
// Issue 16: one check against N devices (N = 1..5), each SHA1, 6 digits, 30 s, a key of its
// own; the typed code is the LAST device's, so a check that stopped early would show as a flat
// line. Both must grow linearly with N.

// N devices; the i-th key is kKey with its first byte changed.
totp::Enrollment devices_enrollment(int n, std::string id) {
  totp::Enrollment e;
  e.id = std::move(id);
  e.created = kNow - 86400;
  for (int i = 0; i < n; ++i) {
    totp::Device d;
    d.name = "phone-" + std::to_string(i + 1);
    std::uint8_t key[sizeof kKey];
    std::copy(std::begin(kKey), std::end(kKey), key);
    key[0] = static_cast<std::uint8_t>('a' + i);
    d.secret = totp::SecretBytes(key, sizeof key);
    d.algorithm = totp::Algorithm::kSha1;
    d.digits = kDigits;
    d.period = kPeriod;
    d.created = e.created;
    e.devices.push_back(std::move(d));
  }
  return e;
}

std::string last_device_code(const totp::Enrollment& e, std::int64_t now) {
  const totp::Device& d = e.devices.back();
  auto code = totp::hotp(d.secret, d.algorithm,
                         static_cast<std::uint64_t>(totp::time_step(now, d.period)), d.digits);
  return totp::format_code(code.value_or(0), d.digits);
}

// (d) The matching alone (match_existing_device: per device an Hmac from its key, hotp() for
// steps t-1, t, t+1, format, CRYPTO_memcmp), with window 1. CPU time.
void BM_MatchDevices(benchmark::State& state) {
  const auto n = static_cast<int>(state.range(0));
  const totp::Enrollment e = devices_enrollment(n, std::string(32, '0'));
  const std::string typed = last_device_code(e, kNow);
  for (auto _ : state) {
    auto found = totp::match_existing_device(e, typed, 1, kNow);
    if (!found) {
      state.SkipWithError("the last device's code did not match");
      break;
    }
    benchmark::DoNotOptimize(found);
  }
  state.counters["devices"] = n;
}
BENCHMARK(BM_MatchDevices)->DenseRange(1, 5);

// (e) Verifier::verify of the last device's right code with N devices on tmpfs (/dev/shm:
// fsync costs nothing, so the devices' share shows): lock, read, check every device, write.
void BM_VerifierDevices(benchmark::State& state) {
  const auto n = static_cast<int>(state.range(0));
  std::string templ = "/dev/shm/pbx-bench-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed under /dev/shm");
    return;
  }
  const std::filesystem::path dir = templ;
  struct Cleanup {
    std::filesystem::path p;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(p, ec);
    }
  } cleanup{dir};
  const std::string home = (dir / "home").string();
  const std::string state_dir = (dir / "state").string();
  if (mkdir(home.c_str(), 0700) != 0 || mkdir(state_dir.c_str(), 0700) != 0) {
    state.SkipWithError("mkdir failed");
    return;
  }
  totp::Config config;
  config.secret_path = "%h/.pbx-mfa";
  config.state_dir = state_dir;
  config.recovery_codes = 0;
  config.trusted_uid = geteuid();
  config.max_devices = 5;
  const totp::User user{"pbx-bench", geteuid(), getegid(), home};
  auto store = totp::open_store(config);
  auto id = totp::new_enrollment_id();
  if (!store || !id) {
    state.SkipWithError("open_store or new_enrollment_id failed");
    return;
  }
  const totp::Enrollment e = devices_enrollment(n, *id);
  if (auto saved = (*store)->save(user, e, true); !saved) {
    state.SkipWithError(("save: " + saved.error().message).c_str());
    return;
  }
  totp::FixedClock clock(kNow);
  totp::Verifier verifier(config, **store, clock);
  for (auto _ : state) {
    clock.advance(kPeriod);
    const std::string typed = last_device_code(e, clock.now());
    const auto outcome = verifier.verify(user, typed);
    if (!outcome.ok() || outcome->verdict != totp::Verdict::kAccepted) {
      state.SkipWithError("verify did not accept the last device's code");
      break;
    }
  }
  state.counters["devices"] = n;
}
BENCHMARK(BM_VerifierDevices)->DenseRange(1, 5)->UseRealTime();

}  // namespace

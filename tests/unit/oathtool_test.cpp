// Cross-checks HOTP/TOTP against the independent oathtool program on random cases.
#include "oathtool.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "pbx/totp/hotp.hpp"

namespace pbx::totp {
namespace {

// Fixed so that a failure reproduces; PBX_TEST_SEED=N explores other cases.
constexpr std::uint64_t kDefaultSeed = 0x7074703230323401ULL;
constexpr int kTotpCases = 1000;
constexpr int kTotpWindow = 4;  // oathtool prints this many further codes: 5 per case
constexpr int kHotpCases = 60;
constexpr int kHotpWindow = 9;
constexpr int kMaxReportedFailures = 10;

std::uint64_t test_seed() {
  if (const char* s = std::getenv("PBX_TEST_SEED"); s != nullptr && *s != '\0') {
    return std::strtoull(s, nullptr, 0);
  }
  return kDefaultSeed;
}

// Uniform enough for test case generation, and identical on every standard library
// (std::uniform_int_distribution is not).
std::uint64_t below(std::mt19937_64& rng, std::uint64_t n) { return rng() % n; }

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

SecretBytes random_key(std::mt19937_64& rng, Algorithm algorithm) {
  std::size_t size = 0;
  switch (below(rng, 4)) {
    case 0:
      size = secret_size(algorithm);
      break;
    case 1:
      size = 10 + below(rng, 31);
      break;  // 80..320 bits, common in the wild
    case 2:
      size = 41 + below(rng, 88);
      break;  // up to and past the SHA1/256 block size
    default:
      size = 129 + below(rng, 72);
      break;  // past the SHA512 block size: key is hashed
  }
  SecretBytes key(size);
  for (std::size_t i = 0; i < size; ++i) key.data()[i] = static_cast<std::uint8_t>(rng());
  return key;
}

std::int64_t random_time(std::mt19937_64& rng, int period) {
  switch (below(rng, 4)) {
    case 0:
      return static_cast<std::int64_t>(below(rng, 1ULL << 31));  // up to 2038
    case 1:
      return static_cast<std::int64_t>((1ULL << 31) + below(rng, 1ULL << 34));  // after
    case 2:
      return static_cast<std::int64_t>(below(rng, 2000));  // near the epoch
    default: {                                             // on a step boundary or just before it
      auto k = static_cast<std::int64_t>(1 + below(rng, 1ULL << 26));
      return k * period - static_cast<std::int64_t>(below(rng, 2));
    }
  }
}

class OathtoolCrossCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    oathtool_ = test::find_oathtool();
    ASSERT_FALSE(oathtool_.empty()) << test::kInstallOathtool;
    auto version = test::run_program({oathtool_, "--version"});
    ASSERT_TRUE(version.has_value() && version->exit_code == 0)
        << oathtool_ << " does not run. " << test::kInstallOathtool;
  }

  // Runs oathtool and returns its codes, one per line; fails the test if it does not work.
  std::vector<std::string> codes(const std::vector<std::string>& argv, std::size_t expected) {
    auto r = test::run_program(argv);
    if (!r.has_value()) {
      ADD_FAILURE() << "could not start: " << join(argv);
      return {};
    }
    if (r->exit_code != 0) {
      ADD_FAILURE() << "exit " << r->exit_code << " from: " << join(argv) << "\n" << r->err;
      return {};
    }
    auto lines = test::split_lines(r->out);
    if (lines.size() != expected) {
      ADD_FAILURE() << "expected " << expected << " lines from: " << join(argv) << "\ngot:\n"
                    << r->out;
      return {};
    }
    return lines;
  }

  std::string oathtool_;
};

TEST_F(OathtoolCrossCheck, TotpRandomCasesMatch) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 rng(seed);
  const auto started = std::chrono::steady_clock::now();
  int failures = 0;
  int compared = 0;
  for (int i = 0; i < kTotpCases && failures < kMaxReportedFailures; ++i) {
    const auto algorithm = static_cast<Algorithm>(below(rng, 3));
    const int digits = 6 + static_cast<int>(below(rng, 3));
    const int period = 15 + static_cast<int>(below(rng, 286));
    const SecretBytes key = random_key(rng, algorithm);
    const std::int64_t now = random_time(rng, period);
    const std::vector<std::string> argv = {
        oathtool_,
        std::string("--totp=") + algorithm_name(algorithm),
        "--digits=" + std::to_string(digits),
        "--time-step-size=" + std::to_string(period) + "s",
        "--now=@" + std::to_string(now),
        "--window=" + std::to_string(kTotpWindow),
        test::to_hex(key.data(), key.size()),
    };
    std::ostringstream where;
    where << "seed " << seed << " case " << i << ": " << algorithm_name(algorithm) << " digits "
          << digits << " period " << period << " time " << now << " key bytes " << key.size()
          << "\n  reference: " << join(argv);
    const auto expected = codes(argv, kTotpWindow + 1);
    if (expected.empty()) {
      ADD_FAILURE() << where.str();
      ++failures;
      continue;
    }

    Hmac hmac(algorithm, key);
    ASSERT_TRUE(hmac.ok()) << where.str();
    const std::int64_t step = time_step(now, period);
    for (int w = 0; w <= kTotpWindow; ++w) {
      const auto counter = static_cast<std::uint64_t>(step + w);
      const auto ours = hotp(hmac, counter, digits);
      const auto ours_once = hotp(key, algorithm, counter, digits);
      ++compared;
      if (!ours || !ours_once || format_code(*ours, digits) != expected[w] || *ours_once != *ours) {
        ADD_FAILURE() << where.str() << "\n  step " << counter << " (window +" << w
                      << "): oathtool " << expected[w] << ", ours "
                      << (ours ? format_code(*ours, digits) : "nullopt") << " / "
                      << (ours_once ? format_code(*ours_once, digits) : "nullopt");
        ++failures;
        break;
      }
    }
  }
  EXPECT_EQ(failures, 0) << "seed " << seed;
  EXPECT_EQ(compared, kTotpCases * (kTotpWindow + 1));
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  RecordProperty("cases", kTotpCases);
  RecordProperty("codes_compared", compared);
  EXPECT_LT(seconds, 60.0) << "cross-check took too long";
}

TEST_F(OathtoolCrossCheck, HotpRandomCountersMatch) {
  const std::uint64_t seed = test_seed() ^ 0x484f5450ULL;
  std::mt19937_64 rng(seed);
  int failures = 0;
  for (int i = 0; i < kHotpCases && failures < kMaxReportedFailures; ++i) {
    const int digits = 6 + static_cast<int>(below(rng, 3));
    const SecretBytes key = random_key(rng, Algorithm::kSha1);
    std::uint64_t counter = 0;
    switch (below(rng, 4)) {
      case 0:
        counter = below(rng, 1000);
        break;
      case 1:
        counter = below(rng, 1ULL << 32);
        break;
      case 2:
        counter = (1ULL << 32) - 5 + below(rng, 10);
        break;  // across 2^32
      default:
        counter = below(rng, ~0ULL - kHotpWindow);
        break;
    }
    const std::vector<std::string> argv = {
        oathtool_,
        "--hotp",
        "--digits=" + std::to_string(digits),
        "--counter=" + std::to_string(counter),
        "--window=" + std::to_string(kHotpWindow),
        test::to_hex(key.data(), key.size()),
    };
    const auto expected = codes(argv, kHotpWindow + 1);
    if (expected.empty()) {
      ++failures;
      continue;
    }
    for (int w = 0; w <= kHotpWindow; ++w) {
      const auto ours =
          hotp(key, Algorithm::kSha1, counter + static_cast<std::uint64_t>(w), digits);
      if (!ours || format_code(*ours, digits) != expected[w]) {
        ADD_FAILURE() << "seed " << seed << " case " << i << " counter " << counter + w
                      << ": oathtool " << expected[w] << ", ours "
                      << (ours ? format_code(*ours, digits) : "nullopt")
                      << "\n  reference: " << join(argv);
        ++failures;
        break;
      }
    }
  }
  EXPECT_EQ(failures, 0) << "seed " << seed;
}

TEST_F(OathtoolCrossCheck, RfcSeedsAgreeWithOathtool) {
  // Sanity check of the reference itself: oathtool reproduces RFC 6238's first row.
  const auto sha1 = codes({oathtool_, "--totp=SHA1", "--digits=8", "--now=@59",
                           "3132333435363738393031323334353637383930"},
                          1);
  ASSERT_EQ(sha1.size(), 1U);
  EXPECT_EQ(sha1[0], "94287082");
}

}  // namespace
}  // namespace pbx::totp

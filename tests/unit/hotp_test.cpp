// HOTP/TOTP against the tables of RFC 4226 Appendix D and RFC 6238 Appendix B, HMAC against
// RFC 2202/4231, plus formatting, time steps, algorithm names and secret generation.
#include "pbx/totp/hotp.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hex_text.hpp"

namespace pbx::totp {
namespace {

SecretBytes bytes_of(std::string_view s) {
  return SecretBytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

using pbx::testing::hex;

constexpr std::string_view kRfcSeed20 = "12345678901234567890";
constexpr std::string_view kRfcSeed32 = "12345678901234567890123456789012";
constexpr std::string_view kRfcSeed64 =
    "1234567890123456789012345678901234567890123456789012345678901234";

// RFC 4226 Appendix D: the 31-bit "Decimal" value of the truncation and the 6-digit HOTP.
struct HotpRow {
  std::uint64_t counter;
  std::uint32_t truncated;
  const char* code6;
};
constexpr HotpRow kRfc4226[] = {
    {0, 1284755224, "755224"}, {1, 1094287082, "287082"}, {2, 137359152, "359152"},
    {3, 1726969429, "969429"}, {4, 1640338314, "338314"}, {5, 868254676, "254676"},
    {6, 1918287922, "287922"}, {7, 82162583, "162583"},   {8, 673399871, "399871"},
    {9, 645520489, "520489"},
};

TEST(HotpRfc4226, AppendixDSixDigits) {
  const SecretBytes key = bytes_of(kRfcSeed20);
  for (const auto& row : kRfc4226) {
    auto code = hotp(key, Algorithm::kSha1, row.counter, 6);
    ASSERT_TRUE(code.has_value()) << "counter " << row.counter;
    EXPECT_EQ(format_code(*code, 6), row.code6) << "counter " << row.counter;
    EXPECT_EQ(*code, row.truncated % 1000000U) << "counter " << row.counter;
  }
}

TEST(HotpRfc4226, AppendixDSevenAndEightDigits) {
  // The same truncated values taken modulo 10^7 and 10^8.
  const SecretBytes key = bytes_of(kRfcSeed20);
  for (const auto& row : kRfc4226) {
    auto c7 = hotp(key, Algorithm::kSha1, row.counter, 7);
    auto c8 = hotp(key, Algorithm::kSha1, row.counter, 8);
    ASSERT_TRUE(c7.has_value() && c8.has_value()) << "counter " << row.counter;
    EXPECT_EQ(*c7, row.truncated % 10000000U) << "counter " << row.counter;
    EXPECT_EQ(*c8, row.truncated % 100000000U) << "counter " << row.counter;
  }
}

TEST(HotpRfc4226, ReusedHmacContextGivesTheSameCodes) {
  const SecretBytes key = bytes_of(kRfcSeed20);
  Hmac hmac(Algorithm::kSha1, key);
  ASSERT_TRUE(hmac.ok());
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& row : kRfc4226) {
      auto code = hotp(hmac, row.counter, 6);
      ASSERT_TRUE(code.has_value());
      EXPECT_EQ(format_code(*code, 6), row.code6) << "pass " << pass << " counter " << row.counter;
    }
  }
}

// RFC 6238 Appendix B, 8 digits, T0 = 0, X = 30.
struct TotpRow {
  std::int64_t time;
  std::int64_t step;  // the table's T column
  const char* sha1;
  const char* sha256;
  const char* sha512;
};
constexpr TotpRow kRfc6238[] = {
    {59, 0x0000001, "94287082", "46119246", "90693936"},
    {1111111109, 0x23523EC, "07081804", "68084774", "25091201"},
    {1111111111, 0x23523ED, "14050471", "67062674", "99943326"},
    {1234567890, 0x273EF07, "89005924", "91819424", "93441116"},
    {2000000000, 0x3F940AA, "69279037", "90698825", "38618901"},
    {20000000000, 0x27BC86AA, "65353130", "77737706", "47863826"},
};

void check_rfc6238(Algorithm algorithm, std::string_view seed, const char* TotpRow::*column) {
  const SecretBytes key = bytes_of(seed);
  for (const auto& row : kRfc6238) {
    SCOPED_TRACE(std::string(algorithm_name(algorithm)) + " time " + std::to_string(row.time));
    std::int64_t step = time_step(row.time, 30);
    EXPECT_EQ(step, row.step);
    auto code = hotp(key, algorithm, static_cast<std::uint64_t>(step), 8);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(format_code(*code, 8), row.*column);
  }
}

TEST(TotpRfc6238, AppendixBSha1) { check_rfc6238(Algorithm::kSha1, kRfcSeed20, &TotpRow::sha1); }

TEST(TotpRfc6238, AppendixBSha256) {
  check_rfc6238(Algorithm::kSha256, kRfcSeed32, &TotpRow::sha256);
}

TEST(TotpRfc6238, AppendixBSha512) {
  check_rfc6238(Algorithm::kSha512, kRfcSeed64, &TotpRow::sha512);
}

TEST(TotpRfc6238, AppendixBWithReusedContexts) {
  const SecretBytes k1 = bytes_of(kRfcSeed20);
  const SecretBytes k2 = bytes_of(kRfcSeed32);
  const SecretBytes k5 = bytes_of(kRfcSeed64);
  Hmac h1(Algorithm::kSha1, k1);
  Hmac h2(Algorithm::kSha256, k2);
  Hmac h5(Algorithm::kSha512, k5);
  ASSERT_TRUE(h1.ok() && h2.ok() && h5.ok());
  for (const auto& row : kRfc6238) {
    auto step = static_cast<std::uint64_t>(row.step);
    auto c1 = hotp(h1, step, 8);
    auto c2 = hotp(h2, step, 8);
    auto c5 = hotp(h5, step, 8);
    ASSERT_TRUE(c1 && c2 && c5) << "time " << row.time;
    EXPECT_EQ(format_code(*c1, 8), row.sha1) << "time " << row.time;
    EXPECT_EQ(format_code(*c2, 8), row.sha256) << "time " << row.time;
    EXPECT_EQ(format_code(*c5, 8), row.sha512) << "time " << row.time;
  }
}

TEST(TotpRfc6238, SixDigitCodesAreTheLastSixDigits) {
  const SecretBytes key = bytes_of(kRfcSeed20);
  for (const auto& row : kRfc6238) {
    auto code = hotp(key, Algorithm::kSha1, static_cast<std::uint64_t>(row.step), 6);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(format_code(*code, 6), std::string(row.sha1).substr(2)) << "time " << row.time;
  }
}

// RFC 2202 / RFC 4231 test case 2 (key "Jefe") and the larger-than-block-size key cases.
TEST(HotpHmac, Rfc2202And4231Vectors) {
  const std::string_view data = "what do ya want for nothing?";
  const SecretBytes jefe = bytes_of("Jefe");
  struct Case {
    Algorithm algorithm;
    const char* mac;
  };
  const Case cases[] = {
      {Algorithm::kSha1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
      {Algorithm::kSha256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {Algorithm::kSha512,
       "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8"
       "f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
  };
  for (const auto& c : cases) {
    Hmac hmac(c.algorithm, jefe);
    ASSERT_TRUE(hmac.ok());
    std::uint8_t out[64] = {};
    for (int pass = 0; pass < 2; ++pass) {  // the context is reusable
      std::size_t len =
          hmac.mac(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), out);
      EXPECT_EQ(hex(out, len), c.mac) << algorithm_name(c.algorithm) << " pass " << pass;
    }
  }
}

TEST(HotpHmac, KeysLongerThanTheBlockSize) {
  const std::string_view data = "Test Using Larger Than Block-Size Key - Hash Key First";
  std::uint8_t out[64] = {};
  {
    Hmac hmac(Algorithm::kSha1, SecretBytes(std::vector<std::uint8_t>(80, 0xaa).data(), 80));
    ASSERT_TRUE(hmac.ok());
    std::size_t len =
        hmac.mac(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), out);
    EXPECT_EQ(hex(out, len), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
  }
  const std::vector<std::uint8_t> key131(131, 0xaa);
  {
    Hmac hmac(Algorithm::kSha256, SecretBytes(key131.data(), key131.size()));
    ASSERT_TRUE(hmac.ok());
    std::size_t len =
        hmac.mac(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), out);
    EXPECT_EQ(hex(out, len), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  }
  {
    Hmac hmac(Algorithm::kSha512, SecretBytes(key131.data(), key131.size()));
    ASSERT_TRUE(hmac.ok());
    std::size_t len =
        hmac.mac(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), out);
    EXPECT_EQ(hex(out, len),
              "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd"
              "0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598");
  }
}

TEST(HotpFormat, ZeroPadsToTheDigitCount) {
  EXPECT_EQ(format_code(0, 6), "000000");
  EXPECT_EQ(format_code(42, 6), "000042");
  EXPECT_EQ(format_code(123456, 6), "123456");
  EXPECT_EQ(format_code(999999, 6), "999999");
  EXPECT_EQ(format_code(5, 7), "0000005");
  EXPECT_EQ(format_code(1234567, 7), "1234567");
  EXPECT_EQ(format_code(7081804, 8), "07081804");
  EXPECT_EQ(format_code(0, 8), "00000000");
  EXPECT_EQ(format_code(99999999, 8), "99999999");
}

TEST(TotpTimeStep, PositiveTimes) {
  EXPECT_EQ(time_step(0, 30), 0);
  EXPECT_EQ(time_step(29, 30), 0);
  EXPECT_EQ(time_step(30, 30), 1);
  EXPECT_EQ(time_step(59, 30), 1);
  EXPECT_EQ(time_step(60, 30), 2);
  EXPECT_EQ(time_step(1111111109, 30), 37037036);
  EXPECT_EQ(time_step(20000000000, 30), 666666666);
  EXPECT_EQ(time_step(299, 300), 0);
  EXPECT_EQ(time_step(300, 300), 1);
  EXPECT_EQ(time_step(44, 15), 2);
  EXPECT_EQ(time_step(45, 15), 3);
}

TEST(TotpTimeStep, NegativeTimesRoundTowardsMinusInfinity) {
  // A clock before 1970 must not share step 0 with the first 30 seconds after the epoch.
  EXPECT_EQ(time_step(-1, 30), -1);
  EXPECT_EQ(time_step(-29, 30), -1);
  EXPECT_EQ(time_step(-30, 30), -1);
  EXPECT_EQ(time_step(-31, 30), -2);
  EXPECT_EQ(time_step(-60, 30), -2);
  EXPECT_EQ(time_step(-61, 30), -3);
}

TEST(HotpSecret, RecommendedSizes) {
  EXPECT_EQ(secret_size(Algorithm::kSha1), 20U);
  EXPECT_EQ(secret_size(Algorithm::kSha256), 32U);
  EXPECT_EQ(secret_size(Algorithm::kSha512), 64U);
}

TEST(HotpSecret, GeneratedSecretsHaveTheRightSizeAndDiffer) {
  for (Algorithm a : {Algorithm::kSha1, Algorithm::kSha256, Algorithm::kSha512}) {
    auto first = generate_secret(a);
    auto second = generate_secret(a);
    ASSERT_TRUE(first.ok()) << first.error().message;
    ASSERT_TRUE(second.ok()) << second.error().message;
    EXPECT_EQ(first->size(), secret_size(a));
    EXPECT_EQ(second->size(), secret_size(a));
    EXPECT_FALSE(*first == *second) << algorithm_name(a);
    // 160+ random bits are never all zero in practice.
    bool all_zero = true;
    for (std::size_t i = 0; i < first->size(); ++i) all_zero = all_zero && first->data()[i] == 0;
    EXPECT_FALSE(all_zero);
  }
}

TEST(HotpSecret, RandomBytesFillsTheBuffer) {
  std::vector<std::uint8_t> a(48, 0);
  std::vector<std::uint8_t> b(48, 0);
  ASSERT_TRUE(random_bytes(a.data(), a.size()).ok());
  ASSERT_TRUE(random_bytes(b.data(), b.size()).ok());
  EXPECT_NE(a, b);
  EXPECT_NE(a, std::vector<std::uint8_t>(48, 0));
  EXPECT_TRUE(random_bytes(nullptr, 0).ok());
}

TEST(HotpAlgorithm, Names) {
  EXPECT_STREQ(algorithm_name(Algorithm::kSha1), "SHA1");
  EXPECT_STREQ(algorithm_name(Algorithm::kSha256), "SHA256");
  EXPECT_STREQ(algorithm_name(Algorithm::kSha512), "SHA512");
}

TEST(HotpAlgorithm, ParseIsCaseInsensitive) {
  EXPECT_EQ(parse_algorithm("SHA1"), Algorithm::kSha1);
  EXPECT_EQ(parse_algorithm("sha1"), Algorithm::kSha1);
  EXPECT_EQ(parse_algorithm("Sha1"), Algorithm::kSha1);
  EXPECT_EQ(parse_algorithm("SHA256"), Algorithm::kSha256);
  EXPECT_EQ(parse_algorithm("sha256"), Algorithm::kSha256);
  EXPECT_EQ(parse_algorithm("sHa256"), Algorithm::kSha256);
  EXPECT_EQ(parse_algorithm("SHA512"), Algorithm::kSha512);
  EXPECT_EQ(parse_algorithm("sha512"), Algorithm::kSha512);
  for (Algorithm a : {Algorithm::kSha1, Algorithm::kSha256, Algorithm::kSha512}) {
    EXPECT_EQ(parse_algorithm(algorithm_name(a)), a);
  }
}

TEST(HotpAlgorithm, ParseRejectsOtherNames) {
  // Only the three names of the contract (in any case); no aliases, no padding.
  for (std::string_view bad :
       {"", "MD5", "md5", "SHA", "SHA2", "SHA384", "SHA224", "SHA3-256", "SHA-1", "sha-1",
        "SHA-256", "SHA_256", " SHA1", "SHA1 ", "SHA1\n", "SHA11", "SHA5120", "HMAC-SHA1"}) {
    EXPECT_FALSE(parse_algorithm(bad).has_value()) << "\"" << bad << "\"";
  }
  EXPECT_FALSE(parse_algorithm(std::string_view("SHA1\0", 5)).has_value());
}

}  // namespace
}  // namespace pbx::totp

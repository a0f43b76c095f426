// otpauth:// URI builder and parser: exact output, round trips, and hostile input.
#include "pbx/totp/otpauth_uri.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/base32.hpp"

namespace pbx::totp {
namespace {

using namespace std::string_literals;

SecretBytes bytes_of(std::string_view s) {
  return SecretBytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

std::string to_string(const SecretBytes& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// "JBSWY3DPEHPK3PXP" is the secret of Google's Key URI Format example.
constexpr std::string_view kHelloSecret = "JBSWY3DPEHPK3PXP";
const std::string kHelloBytes = "Hello!\xde\xad\xbe\xef"s;
const std::string kGood =
    "otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME&algorithm=SHA1&digits=6"
    "&period=30";
// Without digits, period and algorithm, so a test can add exactly one of each.
const std::string kBase = "otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME";

OtpParams params(std::string issuer, std::string account, std::string_view secret,
                 Algorithm algorithm, int digits, int period) {
  OtpParams p;
  p.issuer = std::move(issuer);
  p.account = std::move(account);
  p.secret = bytes_of(secret);
  p.algorithm = algorithm;
  p.digits = digits;
  p.period = period;
  return p;
}

Result<OtpParams> parse_ok(std::string_view uri) {
  auto r = parse_otpauth_uri(uri);
  EXPECT_TRUE(r.ok()) << uri << ": " << (r.ok() ? "" : r.error().message);
  return r;
}

void expect_rejected(std::string_view uri) {
  auto r = parse_otpauth_uri(uri);
  std::string shown(uri.substr(0, 200));
  for (auto& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  ASSERT_FALSE(r.ok()) << "accepted: " << shown;
  EXPECT_EQ(r.error().code, Errc::kInvalid) << shown << ": " << r.error().message;
  EXPECT_FALSE(r.error().message.empty());
}

TEST(OtpAuthUriBuild, ExactStringForAKnownCase) {
  auto p = params("Example Co", "alice", "12345678901234567890", Algorithm::kSha1, 6, 30);
  EXPECT_EQ(build_otpauth_uri(p),
            "otpauth://totp/Example%20Co:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            "&issuer=Example%20Co&algorithm=SHA1&digits=6&period=30");
}

TEST(OtpAuthUriBuild, ColonInIssuerAndSpaceInAccountAreEncoded) {
  auto p = params("ACME:Prod", "bob smith", kHelloBytes, Algorithm::kSha256, 8, 60);
  EXPECT_EQ(build_otpauth_uri(p),
            "otpauth://totp/ACME%3AProd:bob%20smith?secret=JBSWY3DPEHPK3PXP"
            "&issuer=ACME%3AProd&algorithm=SHA256&digits=8&period=60");
}

TEST(OtpAuthUriBuild, SecretIsUnpaddedBase32) {
  auto p = params("X", "y", "foobar", Algorithm::kSha512, 7, 15);
  std::string uri = build_otpauth_uri(p);
  EXPECT_NE(uri.find("?secret=MZXW6YTBOI&"), std::string::npos) << uri;
  EXPECT_EQ(uri.find('='), uri.find("secret=") + 6) << "padding leaked: " << uri;
  EXPECT_NE(uri.find("&algorithm=SHA512&digits=7&period=15"), std::string::npos) << uri;
}

TEST(OtpAuthUriBuild, QueryDelimitersInNamesAreEncoded) {
  auto p = params("a&b=c?d#e%f+g/h", "x y", kHelloBytes, Algorithm::kSha1, 6, 30);
  std::string uri = build_otpauth_uri(p);
  EXPECT_NE(uri.find("a%26b%3Dc%3Fd%23e%25f%2Bg%2Fh"), std::string::npos) << uri;
  // Only the builder's own separators remain.
  EXPECT_EQ(uri.find('#'), std::string::npos) << uri;
  EXPECT_EQ(uri.find('+'), std::string::npos) << uri;
  EXPECT_EQ(uri.find(' '), std::string::npos) << uri;
}

TEST(OtpAuthUriParse, GoogleKeyUriExample) {
  auto r =
      parse_ok("otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->issuer, "Example");
  EXPECT_EQ(r->account, "alice@google.com");
  EXPECT_EQ(to_string(r->secret), kHelloBytes);
  EXPECT_EQ(r->algorithm, Algorithm::kSha1);
  EXPECT_EQ(r->digits, 6);
  EXPECT_EQ(r->period, 30);
}

TEST(OtpAuthUriParse, AllParameters) {
  auto r = parse_ok(
      "otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ"
      "&issuer=ACME%20Co&algorithm=SHA512&digits=8&period=60");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->issuer, "ACME Co");
  EXPECT_EQ(r->account, "john.doe@email.com");
  EXPECT_EQ(r->secret.size(), 20U);
  EXPECT_EQ(base32_encode(r->secret, false), "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ");
  EXPECT_EQ(r->algorithm, Algorithm::kSha512);
  EXPECT_EQ(r->digits, 8);
  EXPECT_EQ(r->period, 60);
}

TEST(OtpAuthUriParse, IssuerOnlyInTheLabel) {
  auto r = parse_ok("otpauth://totp/ACME%20Co:alice?secret=JBSWY3DPEHPK3PXP");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->issuer, "ACME Co");
  EXPECT_EQ(r->account, "alice");
}

TEST(OtpAuthUriParse, IssuerOnlyInTheQuery) {
  auto r = parse_ok("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->issuer, "ACME Co");
  EXPECT_EQ(r->account, "alice");
}

TEST(OtpAuthUriParse, NoIssuerAtAll) {
  auto r = parse_ok("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->issuer, "");
  EXPECT_EQ(r->account, "alice");
}

TEST(OtpAuthUriParse, OptionalSpacesAfterTheLabelColon) {
  auto r = parse_ok("otpauth://totp/ACME:%20alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->issuer, "ACME");
  EXPECT_EQ(r->account, "alice");
}

TEST(OtpAuthUriParse, ParametersInAnyOrderAndLowerCaseSecret) {
  auto r = parse_ok(
      "otpauth://totp/ACME:alice?period=45&digits=7&algorithm=SHA256&issuer=ACME"
      "&secret=jbswy3dpehpk3pxp");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(to_string(r->secret), kHelloBytes);
  EXPECT_EQ(r->algorithm, Algorithm::kSha256);
  EXPECT_EQ(r->digits, 7);
  EXPECT_EQ(r->period, 45);
}

TEST(OtpAuthUriParse, DigitAndPeriodLimitsOfTheUriFormat) {
  for (int digits : {6, 7, 8}) {
    auto r =
        parse_ok("otpauth://totp/A:b?secret=JBSWY3DPEHPK3PXP&digits=" + std::to_string(digits));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->digits, digits);
  }
  for (int period : {1, 15, 30, 299, 300}) {
    auto r =
        parse_ok("otpauth://totp/A:b?secret=JBSWY3DPEHPK3PXP&period=" + std::to_string(period));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->period, period);
  }
}

TEST(OtpAuthUriRoundTrip, AlgorithmsDigitsPeriodsAndNames) {
  std::mt19937_64 rng(0x0A7A0A7AULL);
  const std::vector<std::string> issuers = {"Example",
                                            "ACME Co",
                                            "a&b=c?d#e%f+g/h",
                                            "\xc3\x9c"
                                            "n"
                                            "\xc3\xaf"
                                            "c"
                                            "\xc3\xb8"
                                            "d"
                                            "\xc3\xa9"
                                            " \xe2\x98\x83",
                                            "x.y_z~w-v",
                                            ""};
  const std::vector<std::string> accounts = {"alice", "alice@example.com", "bob smith",
                                             "o'brien/ops", "ops:alice"};
  int n = 0;
  for (Algorithm a : {Algorithm::kSha1, Algorithm::kSha256, Algorithm::kSha512}) {
    for (int digits : {6, 7, 8}) {
      for (int period : {15, 30, 60, 90, 300}) {
        for (const auto& issuer : issuers) {
          const auto& account = accounts[static_cast<std::size_t>(n++) % accounts.size()];
          std::string secret(10 + rng() % 55, '\0');
          for (auto& c : secret) c = static_cast<char>(rng());
          auto p = params(issuer, account, secret, a, digits, period);
          std::string uri = build_otpauth_uri(p);
          SCOPED_TRACE(uri);
          auto r = parse_otpauth_uri(uri);
          ASSERT_TRUE(r.ok()) << r.error().message;
          EXPECT_EQ(r->issuer, issuer);
          EXPECT_EQ(r->account, account);
          EXPECT_EQ(to_string(r->secret), secret);
          EXPECT_EQ(r->algorithm, a);
          EXPECT_EQ(r->digits, digits);
          EXPECT_EQ(r->period, period);
        }
      }
    }
  }
}

TEST(OtpAuthUriRoundTrip, ColonInTheIssuer) {
  // The builder encodes ':' in the issuer as %3A, so the label's separator stays unambiguous;
  // the parser must not split the label at a decoded colon.
  auto p = params("ACME:Prod", "alice", kHelloBytes, Algorithm::kSha1, 6, 30);
  std::string uri = build_otpauth_uri(p);
  auto r = parse_otpauth_uri(uri);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->issuer, "ACME:Prod") << uri;
  EXPECT_EQ(r->account, "alice") << uri;
}

TEST(OtpAuthUriHostile, WrongSchemeOrType) {
  expect_rejected("");
  expect_rejected("otpauth://");
  expect_rejected("otpauth://totp");
  expect_rejected("http://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth:/totp/ACME:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth//totp/ACME:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauthx://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected(" otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://hotp/ACME:alice?secret=JBSWY3DPEHPK3PXP&counter=0");
  expect_rejected("otpauth://steam/ACME:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://totpx/ACME:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://tot/ACME:alice?secret=JBSWY3DPEHPK3PXP");
}

TEST(OtpAuthUriHostile, MissingOrBadSecret) {
  expect_rejected("otpauth://totp/ACME:alice");
  expect_rejected("otpauth://totp/ACME:alice?");
  expect_rejected("otpauth://totp/ACME:alice?issuer=ACME");
  expect_rejected("otpauth://totp/ACME:alice?secret=");
  expect_rejected("otpauth://totp/ACME:alice?secret");
  expect_rejected("otpauth://totp/ACME:alice?secrets=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PX1");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DP-EHPK3PXP");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PX!");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXPA");  // impossible length
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DP=EHPK3PXP");
  expect_rejected("otpauth://totp/ACME:alice?secret=%zzBSWY3DPEHPK3PXP");
  // The secret after a '#' is a fragment, not a parameter.
  expect_rejected("otpauth://totp/ACME:alice?issuer=ACME#&secret=JBSWY3DPEHPK3PXP");
}

TEST(OtpAuthUriHostile, BadDigits) {
  for (const char* d : {"5", "9", "0", "-6", "abc", "", "6x", "6.0", "0x6", " 6", "60",
                        "99999999999999999999", "-99999999999999999999"}) {
    expect_rejected(kBase + "&digits=" + d);
    expect_rejected("otpauth://totp/ACME:alice?digits=" + std::string(d) +
                    "&secret=JBSWY3DPEHPK3PXP");
  }
}

TEST(OtpAuthUriHostile, BadPeriod) {
  for (const char* p : {"0", "-1", "-30", "301", "3600", "99999999999999999999", "30s", "", "1e2",
                        "abc", "2147483648", "4294967326"}) {
    expect_rejected(kBase + "&period=" + p);
  }
}

TEST(OtpAuthUriHostile, UnknownAlgorithm) {
  for (const char* a : {"MD5", "SHA384", "SHA224", "", "SHA1x", "SHA-512%00"}) {
    expect_rejected(kBase + "&algorithm=" + a);
  }
}

TEST(OtpAuthUriHostile, OverLongInput) {
  const std::string account_4k(4200, 'a');
  auto p = params("ACME", account_4k, kHelloBytes, Algorithm::kSha1, 6, 30);
  expect_rejected(build_otpauth_uri(p));
  expect_rejected(kGood + "&image=" + std::string(5000, 'x'));
  expect_rejected(kGood + "&image=" + std::string(1 << 20, 'x'));
  // A long but reasonable URI is still fine.
  auto fine = params("ACME", std::string(3000, 'a'), kHelloBytes, Algorithm::kSha1, 6, 30);
  auto r = parse_otpauth_uri(build_otpauth_uri(fine));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->account.size(), 3000U);
}

TEST(OtpAuthUriHostile, BadPercentEscapes) {
  expect_rejected("otpauth://totp/ACME%zz:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://totp/ACME%4:alice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://totp/ACME:alice%?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://totp/ACME:alice%4?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME%4");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME%");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=%G1");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=%%41");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=%-1");
}

TEST(OtpAuthUriHostile, NulBytes) {
  expect_rejected("otpauth://totp/AC\0ME:alice?secret=JBSWY3DPEHPK3PXP"s);
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DP\0EHPK3PXP"s);
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP\0"s);
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=AC\0ME"s);
  expect_rejected("\0otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP"s);
  // Encoded NULs would cut names short in C strings, logs and files.
  expect_rejected("otpauth://totp/ACME:al%00ice?secret=JBSWY3DPEHPK3PXP");
  expect_rejected("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=AC%00ME");
}

TEST(OtpAuthUriHostile, RandomMutationsNeverCrash) {
  std::mt19937_64 rng(0xF022ULL);
  const std::string alphabet = "%=&?:/#+ 0123456789ABCDEFabcdefJPXZ27\x01\x7f\xff"s + '\0';
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string uri = kGood;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      std::size_t pos = rng() % (uri.size() + 1);
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          uri.insert(uri.begin() + static_cast<std::ptrdiff_t>(pos), c);
          break;
        case 1:
          if (pos < uri.size()) uri.erase(pos, 1 + rng() % 8);
          break;
        default:
          if (pos < uri.size()) uri[pos] = c;
          break;
      }
    }
    auto r = parse_otpauth_uri(uri);
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, Errc::kInvalid);
      continue;
    }
    ++accepted;
    EXPECT_GE(r->digits, 6) << uri;
    EXPECT_LE(r->digits, 8) << uri;
    EXPECT_GE(r->period, 1) << uri;
    EXPECT_LE(r->period, 300) << uri;
    EXPECT_FALSE(r->secret.empty()) << uri;
    EXPECT_EQ(r->issuer.find('\0'), std::string::npos) << uri;
    EXPECT_EQ(r->account.find('\0'), std::string::npos) << uri;
  }
  EXPECT_GT(accepted, 0);  // the mutations do not all break the URI
}

TEST(UriPercentEncode, UnreservedCharactersStay) {
  EXPECT_EQ(percent_encode(""), "");
  EXPECT_EQ(percent_encode("AZaz09-._~"), "AZaz09-._~");
}

TEST(UriPercentEncode, EverythingElseIsEncodedWithUpperCaseHex) {
  EXPECT_EQ(percent_encode(" "), "%20");
  EXPECT_EQ(percent_encode(":"), "%3A");
  EXPECT_EQ(percent_encode("/"), "%2F");
  EXPECT_EQ(percent_encode("%"), "%25");
  EXPECT_EQ(percent_encode("?&=#+"), "%3F%26%3D%23%2B");
  EXPECT_EQ(percent_encode("\xc3\xa9"), "%C3%A9");
  EXPECT_EQ(percent_encode("\xff"), "%FF");
  EXPECT_EQ(percent_encode("\x01"), "%01");
  EXPECT_EQ(percent_encode("ACME Co:alice"), "ACME%20Co%3Aalice");
}

TEST(UriPercentDecode, DecodesEscapesInEitherCase) {
  auto check = [](std::string_view in, std::string_view out) {
    auto r = percent_decode(in);
    ASSERT_TRUE(r.ok()) << in << ": " << r.error().message;
    EXPECT_EQ(*r, out) << in;
  };
  check("", "");
  check("abc", "abc");
  check("%41%42", "AB");
  check("%3a", ":");
  check("%3A", ":");
  check("ACME%20Co", "ACME Co");
  check("%C3%a9", "\xc3\xa9");
  check("%25", "%");
  check("%2541", "%41");  // decoded once, not twice
}

TEST(UriPercentDecode, RejectsBadEscapesAndNul) {
  for (std::string_view bad :
       {"%", "%4", "abc%", "abc%4", "%zz", "%G0", "%0G", "%%", "%%41", "% 1", "%00", "a%00b"}) {
    auto r = percent_decode(bad);
    ASSERT_FALSE(r.ok()) << "accepted \"" << bad << "\"";
    EXPECT_EQ(r.error().code, Errc::kInvalid) << bad;
  }
  auto raw_nul = percent_decode("a\0b"s);
  ASSERT_FALSE(raw_nul.ok());
  EXPECT_EQ(raw_nul.error().code, Errc::kInvalid);
}

TEST(UriPercentDecode, InvertsEncodeForEveryPrintableByte) {
  std::string all;
  for (int c = 0x20; c < 256; ++c) {
    if (c != 0x7F) all.push_back(static_cast<char>(c));
  }
  auto r = percent_decode(percent_encode(all));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, all);
}

TEST(UriPercentDecode, RefusesEscapedControlCharacters) {
  // They would reach terminals and logs through the issuer or account name.
  for (int c = 1; c < 0x20; ++c) {
    EXPECT_FALSE(percent_decode(percent_encode(std::string(1, static_cast<char>(c)))).ok()) << c;
  }
  EXPECT_FALSE(percent_decode("%7F").ok());
  EXPECT_FALSE(percent_decode("alice%0Aroot").ok());
}

TEST(UriPercentDecode, PlusIsLiteralInTheLabel) {
  auto p = parse_otpauth_uri("otpauth://totp/Acme:alice+otp@example.com?secret=JBSWY3DPEHPK3PXP");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->account, "alice+otp@example.com");
  auto q = parse_otpauth_uri("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP&issuer=Acme+Corp");
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->issuer, "Acme Corp");  // form-encoded query value
}

}  // namespace
}  // namespace pbx::totp

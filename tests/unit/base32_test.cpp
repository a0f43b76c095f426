// Base32 (RFC 4648) encoder and decoder against the RFC's vectors and an independent encoder.
#include "pbx/totp/base32.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace pbx::totp {
namespace {

std::string to_string(const SecretBytes& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string encode(std::string_view s, bool pad = true) {
  return base32_encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), pad);
}

// Deliberately naive reference encoder (bit by bit), written independently of the library.
std::string reference_encode(const std::vector<std::uint8_t>& bytes, bool pad) {
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  std::size_t nbits = bytes.size() * 8;
  for (std::size_t start = 0; start < nbits; start += 5) {
    int v = 0;
    for (std::size_t bit = start; bit < start + 5; ++bit) {
      int b = 0;
      if (bit < nbits) b = (bytes[bit / 8] >> (7 - bit % 8)) & 1;
      v = v * 2 + b;
    }
    out.push_back(alphabet[v]);
  }
  if (pad) {
    while (out.size() % 8 != 0) out.push_back('=');
  }
  return out;
}

struct Vector {
  const char* plain;
  const char* encoded;
};

// RFC 4648 section 10.
constexpr Vector kRfc4648[] = {
    {"", ""},
    {"f", "MY======"},
    {"fo", "MZXQ===="},
    {"foo", "MZXW6==="},
    {"foob", "MZXW6YQ="},
    {"fooba", "MZXW6YTB"},
    {"foobar", "MZXW6YTBOI======"},
};

std::string strip_padding(std::string s) {
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

void expect_invalid(std::string_view text) {
  SCOPED_TRACE("input: \"" + std::string(text) + "\"");
  auto r = base32_decode(text);
  ASSERT_FALSE(r.ok()) << "decoded to " << r->size() << " bytes";
  EXPECT_EQ(r.error().code, Errc::kInvalid);
  EXPECT_FALSE(r.error().message.empty());
}

void expect_decodes_to(std::string_view text, std::string_view plain) {
  SCOPED_TRACE("input: \"" + std::string(text) + "\"");
  auto r = base32_decode(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(to_string(*r), plain);
}

TEST(Base32Encode, Rfc4648Vectors) {
  for (const auto& v : kRfc4648) {
    EXPECT_EQ(encode(v.plain), v.encoded) << "plain \"" << v.plain << "\"";
  }
}

TEST(Base32Encode, Rfc4648VectorsWithoutPadding) {
  for (const auto& v : kRfc4648) {
    EXPECT_EQ(encode(v.plain, false), strip_padding(v.encoded)) << "plain \"" << v.plain << "\"";
  }
}

TEST(Base32Encode, SecretBytesOverloadMatches) {
  const std::string plain = "12345678901234567890";
  SecretBytes bytes(reinterpret_cast<const std::uint8_t*>(plain.data()), plain.size());
  EXPECT_EQ(base32_encode(bytes), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  EXPECT_EQ(base32_encode(bytes, false), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

TEST(Base32Encode, AllByteValues) {
  EXPECT_EQ(encode(std::string_view("\x00\x00\x00\x00\x00", 5)), "AAAAAAAA");
  EXPECT_EQ(encode("\xff\xff\xff\xff\xff"), "77777777");
  EXPECT_EQ(encode("\xff"), "74======");
}

TEST(Base32Decode, Rfc4648Vectors) {
  for (const auto& v : kRfc4648) expect_decodes_to(v.encoded, v.plain);
}

TEST(Base32Decode, AcceptsMissingPadding) {
  for (const auto& v : kRfc4648) expect_decodes_to(strip_padding(v.encoded), v.plain);
}

TEST(Base32Decode, AcceptsLowerAndMixedCase) {
  expect_decodes_to("mzxw6ytboi======", "foobar");
  expect_decodes_to("mzxw6ytboi", "foobar");
  expect_decodes_to("MzXw6YtBoI", "foobar");
  expect_decodes_to("gezdgnbvgy3tqojqgezdgnbvgy3tqojq", "12345678901234567890");
}

TEST(Base32Decode, AcceptsSpacesAndTabs) {
  expect_decodes_to("MZXW 6YTB OI", "foobar");
  expect_decodes_to("MZXW 6YTB OI== ====", "foobar");
  expect_decodes_to("mzxw\t6ytb\toi", "foobar");
  expect_decodes_to("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ", "12345678901234567890");
  expect_decodes_to("  MZXW6YTBOI  ", "foobar");  // pasted with surrounding blanks
}

TEST(Base32Decode, EmptyIsEmpty) { expect_decodes_to("", ""); }

TEST(Base32Decode, RejectsCharactersOutsideTheAlphabet) {
  // '0', '1', '8', '9' are not base32 symbols (easily confused with O, I, B, g).
  expect_invalid("MZXW6YT0");
  expect_invalid("MZXW6YT1");
  expect_invalid("MZXW6YT8");
  expect_invalid("MZXW6YT9");
  expect_invalid("MZXW6YT!");
  expect_invalid("MZXW-6YTB");
  expect_invalid("MZXW6YTB-OI");
  expect_invalid("MZXW.6YTB");
  expect_invalid("MZXW6YTB\n");
  expect_invalid(std::string_view("MZXW\0YTB", 8));
  expect_invalid("MZXW6YT\xc3\xa9");  // UTF-8 e-acute
  expect_invalid("MZXW6YTB+I");
  expect_invalid("MZXW6YTB/I");
}

TEST(Base32Decode, RejectsMisplacedPadding) {
  expect_invalid("=MY");
  expect_invalid("=MY=====");
  expect_invalid("M=Y=====");
  expect_invalid("MY=Q====");
  expect_invalid("MY======MZXQ====");  // padding in the middle of the text
  expect_invalid("MZXW6===YTBOI===");
  expect_invalid("=");
  expect_invalid("========");
}

TEST(Base32Decode, RejectsWrongAmountOfPadding) {
  expect_invalid("MZXW6YTB=");         // a complete group needs no padding
  expect_invalid("MZXW6YTB========");  // a whole group of padding
  expect_invalid("MY=======");         // one '=' too many
}

TEST(Base32Decode, RejectsImpossibleLengths) {
  // 1, 3 or 6 symbols in the last group can not come from any whole number of bytes.
  expect_invalid("M");
  expect_invalid("MZX");
  expect_invalid("MZXW6Y");
  expect_invalid("M=======");
  expect_invalid("MZX=====");
  expect_invalid("MZXW6Y==");
  expect_invalid("MZXW6YTBO");
  expect_invalid("MZXW6YTBOIA");
  expect_invalid("MZXW6YTBOIAAAA");
}

TEST(Base32Decode, RejectsNonZeroTrailingBits) {
  // "MY" is 'f' with two zero bits left over; "MZ" leaves the bits 01.
  expect_decodes_to("MY", "f");
  expect_invalid("MZ");
  expect_invalid("MZ======");
  expect_decodes_to("MZXQ", "fo");
  expect_invalid("MZXR");
  expect_decodes_to("MZXW6", "foo");
  expect_invalid("MZXW7");
  expect_decodes_to("MZXW6YQ", "foob");
  expect_invalid("MZXW6YR");
  expect_invalid("MZXW6YTBOJ======");
  expect_decodes_to("74", "\xff");
  expect_invalid("77");
}

TEST(Base32RoundTrip, RandomBytesOfEveryLength) {
  std::mt19937_64 rng(0xB32B32ULL);
  for (std::size_t len = 0; len <= 64; ++len) {
    for (int rep = 0; rep < 8; ++rep) {
      std::vector<std::uint8_t> bytes(len);
      for (auto& b : bytes) b = static_cast<std::uint8_t>(rng() & 0xFF);
      SCOPED_TRACE("length " + std::to_string(len) + ", repetition " + std::to_string(rep));

      std::string padded = base32_encode(bytes.data(), bytes.size(), true);
      std::string bare = base32_encode(bytes.data(), bytes.size(), false);
      EXPECT_EQ(padded, reference_encode(bytes, true));
      EXPECT_EQ(bare, reference_encode(bytes, false));
      EXPECT_EQ(padded.size(), (len + 4) / 5 * 8);
      EXPECT_EQ(bare.size(), (len * 8 + 4) / 5);

      std::string lower = bare;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (const std::string& text : {padded, bare, lower, group_by_four(bare)}) {
        auto decoded = base32_decode(text);
        ASSERT_TRUE(decoded.ok()) << "\"" << text << "\": " << decoded.error().message;
        ASSERT_EQ(decoded->size(), len) << text;
        EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), decoded->data())) << text;
      }
    }
  }
}

TEST(Base32Group, GroupsOfFourSeparatedBySingleSpaces) {
  EXPECT_EQ(group_by_four(""), "");
  EXPECT_EQ(group_by_four("ABC"), "ABC");
  EXPECT_EQ(group_by_four("ABCD"), "ABCD");
  EXPECT_EQ(group_by_four("ABCDE"), "ABCD E");
  EXPECT_EQ(group_by_four("ABCDEFGH"), "ABCD EFGH");
  EXPECT_EQ(group_by_four("ABCDEFGHIJ"), "ABCD EFGH IJ");
  EXPECT_EQ(group_by_four("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
}

TEST(Base32Group, GroupedSecretDecodesToTheSameBytes) {
  expect_decodes_to(group_by_four("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "12345678901234567890");
}

}  // namespace
}  // namespace pbx::totp

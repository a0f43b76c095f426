// Recovery codes: their shape, their hashing, and one-time matching in the forms people type.
#include "pbx/totp/recovery.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::has_errc;
using testing::is_ok;
using testing::kCheapKdf;

constexpr std::string_view kAlphabet = "abcdefghjkmnpqrstuvwxyz";  // 23 letters: no i, l, o

bool well_formed(std::string_view code) {
  if (code.size() != 14 || code[4] != '-' || code[9] != '-') return false;
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (i == 4 || i == 9) continue;
    if (kAlphabet.find(code[i]) == std::string_view::npos) return false;
  }
  return true;
}

bool is_hex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

std::vector<SecretString> make_codes(int count) {
  auto codes = generate_recovery_codes(count);
  EXPECT_TRUE(is_ok(codes));
  return std::move(codes.value());
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::optional<int> match(const RecoverySet& set, std::string_view input,
                         const std::vector<int>& used = {}) {
  auto r = match_recovery_code(set, input, used);
  EXPECT_TRUE(is_ok(r));
  return r.ok() ? r.value() : std::nullopt;
}

TEST(RecoveryGenerate, MakesTheAskedNumberOfWellFormedCodes) {
  for (int count : {0, 1, 5, kMaxRecoveryCodes}) {
    auto codes = make_codes(count);
    ASSERT_EQ(codes.size(), static_cast<std::size_t>(count));
    for (const auto& code : codes) {
      EXPECT_TRUE(well_formed(code.view())) << code.view();
      EXPECT_TRUE(std::none_of(code.view().begin(), code.view().end(), [](char c) {
        return c >= '0' && c <= '9';
      })) << code.view();
    }
  }
}

TEST(RecoveryGenerate, RefusesImpossibleCounts) {
  EXPECT_TRUE(has_errc(generate_recovery_codes(-1), Errc::kInvalid));
  EXPECT_TRUE(has_errc(generate_recovery_codes(kMaxRecoveryCodes + 1), Errc::kInvalid));
}

TEST(RecoveryGenerate, CodesAreUniqueAndUseTheWholeAlphabet) {
  std::set<std::string> seen;
  std::map<char, int> letters;
  for (int batch = 0; batch < 50; ++batch) {
    for (const auto& code : make_codes(kMaxRecoveryCodes)) {
      EXPECT_TRUE(seen.insert(std::string(code.view())).second) << "repeated code " << code.view();
      for (char c : code.view()) {
        if (c != '-') ++letters[c];
      }
    }
  }
  ASSERT_EQ(seen.size(), 1000U);
  // 12000 letters over 23: about 522 each; a skewed or short alphabet weakens the codes.
  EXPECT_EQ(letters.size(), kAlphabet.size());
  for (char c : kAlphabet) {
    EXPECT_GT(letters[c], 350) << c;
    EXPECT_LT(letters[c], 700) << c;
  }
}

TEST(RecoveryGenerate, CodesNeverLookLikeTotpCodes) {
  for (const auto& code : make_codes(kMaxRecoveryCodes)) {
    for (int digits = kMinDigits; digits <= kMaxDigits; ++digits) {
      EXPECT_TRUE(looks_like_recovery_code(code.view(), digits)) << code.view();
    }
  }
}

TEST(RecoveryNormalize, LowerCaseWithoutSpacesAndDashes) {
  EXPECT_EQ(normalize_recovery_code("abcd-efgh-jkmn").str(), "abcdefghjkmn");
  EXPECT_EQ(normalize_recovery_code("ABCD-EFGH-JKMN").str(), "abcdefghjkmn");
  EXPECT_EQ(normalize_recovery_code(" abcd efgh jkmn ").str(), "abcdefghjkmn");
  EXPECT_EQ(normalize_recovery_code("AbCd--eFgH - jkmn").str(), "abcdefghjkmn");
  EXPECT_EQ(normalize_recovery_code("abcdefghjkmn").str(), "abcdefghjkmn");
  EXPECT_EQ(normalize_recovery_code("").str(), "");
}

TEST(RecoveryLooksLike, LettersAreRecoveryCodesDigitsOfTheTotpLengthAreNot) {
  EXPECT_TRUE(looks_like_recovery_code("kxmr-tpqz-wbnf", 6));
  EXPECT_TRUE(looks_like_recovery_code("KXMR-TPQZ-WBNF", 6));
  EXPECT_TRUE(looks_like_recovery_code("kxmr tpqz wbnf", 6));
  EXPECT_TRUE(looks_like_recovery_code("kxmrtpqzwbnf", 6));
  // Imported google-authenticator scratch codes: 8 digits, not a 6-digit TOTP code.
  EXPECT_TRUE(looks_like_recovery_code("12345678", 6));

  EXPECT_FALSE(looks_like_recovery_code("123456", 6));
  EXPECT_FALSE(looks_like_recovery_code("000000", 6));
  EXPECT_FALSE(looks_like_recovery_code("1234567", 7));
  EXPECT_FALSE(looks_like_recovery_code("12345678", 8));
  EXPECT_FALSE(looks_like_recovery_code("", 6));
  EXPECT_FALSE(looks_like_recovery_code("----", 6));
}

TEST(RecoveryHash, StoresSaltedHashesOnly) {
  auto codes = make_codes(5);
  auto set = hash_recovery_codes(codes, kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  EXPECT_TRUE(is_hex(set->salt)) << set->salt;
  EXPECT_GE(set->salt.size(), 32U) << "a salt of at least 128 bits";
  EXPECT_EQ(set->kdf.n, kCheapKdf.n);
  EXPECT_EQ(set->kdf.r, kCheapKdf.r);
  EXPECT_EQ(set->kdf.p, kCheapKdf.p);
  ASSERT_EQ(set->hashes.size(), 5U);
  std::set<std::string> distinct(set->hashes.begin(), set->hashes.end());
  EXPECT_EQ(distinct.size(), 5U);
  for (std::size_t i = 0; i < codes.size(); ++i) {
    EXPECT_TRUE(is_hex(set->hashes[i]));
    EXPECT_GE(set->hashes[i].size(), 32U);
    EXPECT_EQ(set->hashes[i].find(normalize_recovery_code(codes[i].view()).str()),
              std::string::npos);
  }
  // Hashing the same codes again uses a fresh salt: nothing to compare across users or hosts.
  auto again = hash_recovery_codes(codes, kCheapKdf);
  ASSERT_TRUE(is_ok(again));
  EXPECT_NE(again->salt, set->salt);
  EXPECT_NE(again->hashes, set->hashes);
}

TEST(RecoveryMatch, EachCodeMatchesItsOwnIndexInAnyTypedForm) {
  auto codes = make_codes(4);
  auto set = hash_recovery_codes(codes, kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  for (int i = 0; i < 4; ++i) {
    std::string code(codes[static_cast<std::size_t>(i)].view());
    EXPECT_EQ(match(set.value(), code), i);
    EXPECT_EQ(match(set.value(), upper(code)), i);
    EXPECT_EQ(match(set.value(), normalize_recovery_code(code).str()), i);
    std::string spaced = code;
    std::replace(spaced.begin(), spaced.end(), '-', ' ');
    EXPECT_EQ(match(set.value(), " " + spaced + " "), i);
  }
}

TEST(RecoveryMatch, UsedCodeNoLongerMatches) {
  auto codes = make_codes(3);
  auto set = hash_recovery_codes(codes, kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  EXPECT_EQ(match(set.value(), codes[1].view(), {1}), std::nullopt);
  EXPECT_EQ(match(set.value(), codes[1].view(), {0, 1, 2}), std::nullopt);
  EXPECT_EQ(match(set.value(), codes[0].view(), {1}), 0);
  EXPECT_EQ(match(set.value(), codes[2].view(), {1}), 2);
}

TEST(RecoveryMatch, WrongCodeDoesNotMatch) {
  auto codes = make_codes(3);
  auto set = hash_recovery_codes(codes, kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  auto other = make_codes(1);
  EXPECT_EQ(match(set.value(), other[0].view()), std::nullopt);
  std::string one_off(codes[0].view());
  one_off[0] = one_off[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(match(set.value(), one_off), std::nullopt);
  EXPECT_EQ(match(set.value(), codes[0].str().substr(0, 9)), std::nullopt);
  EXPECT_EQ(match(set.value(), codes[0].str() + "a"), std::nullopt);
  // A code of another user (another salt) is not a code of this one.
  auto foreign = hash_recovery_codes(other, kCheapKdf);
  ASSERT_TRUE(is_ok(foreign));
  EXPECT_EQ(match(foreign.value(), codes[0].view()), std::nullopt);
  // Nothing matches an empty set.
  auto empty = hash_recovery_codes({}, kCheapKdf);
  ASSERT_TRUE(is_ok(empty));
  EXPECT_EQ(match(empty.value(), codes[0].view()), std::nullopt);
}

TEST(RecoveryMatch, TotpLookingInputNeverMatches) {
  auto codes = make_codes(3);
  auto set = hash_recovery_codes(codes, kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  for (std::string_view input : {"123456", "000000", "", " ", "-", "--------------"}) {
    auto r = match_recovery_code(set.value(), input, {});
    EXPECT_TRUE(!r.ok() || !r.value().has_value()) << input;
  }
}

TEST(RecoveryMatch, DamagedHashesNeverMatch) {
  auto codes = make_codes(2);
  auto set = hash_recovery_codes(codes, kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  RecoverySet damaged = set.value();
  damaged.hashes[0][0] = damaged.hashes[0][0] == '0' ? '1' : '0';
  damaged.hashes[1] = damaged.hashes[1].substr(0, 10);
  for (int i = 0; i < 2; ++i) {
    auto r = match_recovery_code(damaged, codes[static_cast<std::size_t>(i)].view(), {});
    EXPECT_TRUE(!r.ok() || !r.value().has_value()) << i;
  }
}

TEST(RecoveryMatch, DefaultCostRoundTrip) {
  auto codes = make_codes(2);
  auto set = hash_recovery_codes(codes);
  ASSERT_TRUE(is_ok(set));
  EXPECT_EQ(set->kdf.n, 16384U);
  EXPECT_EQ(set->kdf.r, 8U);
  EXPECT_EQ(set->kdf.p, 1U);
  EXPECT_EQ(match(set.value(), codes[1].view()), 1);
  EXPECT_EQ(match(set.value(), codes[1].view(), {1}), std::nullopt);
}

}  // namespace
}  // namespace pbx::totp

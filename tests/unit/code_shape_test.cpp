// classify_code and split_trailing_code: the one rule for what a typed answer looks like.
#include "pbx/totp/code_shape.hpp"

#include <gtest/gtest.h>

#include <string>

#include "pbx/totp/recovery.hpp"

namespace pbx::totp {
namespace {

CodeShape exact(std::string_view s, int digits = 6) { return classify_code(s, digits); }
CodeShape typed(std::string_view s, int digits = 6) {
  return classify_code(s, digits, CodeForm::kTyped);
}

TEST(CodeShapeTest, ExactTakesOnlyTheShapesHandedOut) {
  EXPECT_EQ(exact("123456"), CodeShape::kTotp);
  EXPECT_EQ(exact("12345678", 8), CodeShape::kTotp);
  EXPECT_EQ(exact("kxmr-tpqz-wbnf"), CodeShape::kRecovery);
  // Anything else may be a password: neither.
  EXPECT_EQ(exact("12345"), CodeShape::kNeither);
  EXPECT_EQ(exact("1234567"), CodeShape::kNeither);
  EXPECT_EQ(exact(" 123456"), CodeShape::kNeither);
  EXPECT_EQ(exact("123456 "), CodeShape::kNeither);
  EXPECT_EQ(exact("KXMR-TPQZ-WBNF"), CodeShape::kNeither);
  EXPECT_EQ(exact("kxmrtpqzwbnf"), CodeShape::kNeither);
  EXPECT_EQ(exact("kxmr tpqz wbnf"), CodeShape::kNeither);
  EXPECT_EQ(exact("kxmr-tpqz-wbn1"), CodeShape::kNeither);
  EXPECT_EQ(exact("kxmr-tpqz-wbnf-abcd"), CodeShape::kNeither);  // a break-glass code
  EXPECT_EQ(exact("kxmrt-pqz-wbnf"), CodeShape::kNeither);
  EXPECT_EQ(exact("Secret12"), CodeShape::kNeither);
  EXPECT_EQ(exact(""), CodeShape::kNeither);
}

TEST(CodeShapeTest, TypedAllowsSpacesCaseAndScratchCodes) {
  EXPECT_EQ(typed("123456"), CodeShape::kTotp);
  EXPECT_EQ(typed("  123456 "), CodeShape::kTotp);
  EXPECT_EQ(typed("kxmr-tpqz-wbnf"), CodeShape::kRecovery);
  EXPECT_EQ(typed("KXMR-TPQZ-WBNF"), CodeShape::kRecovery);
  EXPECT_EQ(typed("kxmr tpqz wbnf"), CodeShape::kRecovery);
  EXPECT_EQ(typed("kxmrtpqzwbnf"), CodeShape::kRecovery);
  EXPECT_EQ(typed("12345678"), CodeShape::kRecovery);  // an imported scratch code
  EXPECT_EQ(typed("12345678", 8), CodeShape::kTotp);
  // A password-like answer may be an imported code: this is why try_first_pass reads kExact.
  EXPECT_EQ(typed("Secret12"), CodeShape::kRecovery);
  EXPECT_EQ(typed("123 456"), CodeShape::kNeither);  // TOTP digits, but split: not a code
  EXPECT_EQ(typed("12345"), CodeShape::kNeither);
  EXPECT_EQ(typed("abcde"), CodeShape::kNeither);
  EXPECT_EQ(typed(std::string(33, 'a')), CodeShape::kNeither);
  EXPECT_EQ(typed(std::string(32, 'a')), CodeShape::kRecovery);
  EXPECT_EQ(typed("pass!word"), CodeShape::kNeither);
  EXPECT_EQ(typed("----"), CodeShape::kNeither);
  EXPECT_EQ(typed(""), CodeShape::kNeither);
  EXPECT_EQ(typed("   "), CodeShape::kNeither);
}

TEST(CodeShapeTest, TypedRecoveryIsLooksLikeRecoveryCode) {
  for (const char* s : {"kxmr-tpqz-wbnf", "KXMR tpqz-wbnf", "12345678", "123456", " 123456 ",
                        "123 456", "Secret12", "pass!word", "", "abcdef", "a1b2c3"}) {
    for (int digits : {6, 7, 8}) {
      EXPECT_EQ(typed(s, digits) == CodeShape::kRecovery, looks_like_recovery_code(s, digits))
          << "'" << s << "' digits " << digits;
    }
  }
}

TEST(CodeShapeTest, EveryGeneratedRecoveryCodeHasThePrintedShape) {
  auto codes = generate_recovery_codes(kMaxRecoveryCodes);
  ASSERT_TRUE(codes);
  for (const auto& c : *codes) {
    EXPECT_EQ(c.view().size(), kRecoveryCodeLength);
    EXPECT_EQ(exact(c.view()), CodeShape::kRecovery) << c.view();
    EXPECT_EQ(typed(c.view()), CodeShape::kRecovery) << c.view();
  }
}

struct Split {
  std::string password;
  std::string code;
};
Split split(std::string_view s, int digits = 6) {
  SplitCode p = split_trailing_code(s, digits);
  EXPECT_EQ(std::string(p.password) + std::string(p.code), s);
  return {std::string(p.password), std::string(p.code)};
}

TEST(CodeShapeTest, SplitTakesTrailingDigits) {
  Split s = split("hunter2123456");
  EXPECT_EQ(s.password, "hunter2");
  EXPECT_EQ(s.code, "123456");
  s = split("pw12345678", 8);
  EXPECT_EQ(s.password, "pw");
  EXPECT_EQ(s.code, "12345678");
  s = split("123456");  // no password
  EXPECT_EQ(s.password, "");
  EXPECT_EQ(s.code, "123456");
  s = split("99123456");  // digits in the password stay there
  EXPECT_EQ(s.password, "99");
  EXPECT_EQ(s.code, "123456");
}

TEST(CodeShapeTest, SplitTakesATrailingRecoveryCodeWithItsDashes) {
  Split s = split("hunter2kxmr-tpqz-wbnf");
  EXPECT_EQ(s.password, "hunter2");
  EXPECT_EQ(s.code, "kxmr-tpqz-wbnf");
  s = split("pwKXMR-TPQZ-WBNF");
  EXPECT_EQ(s.code, "KXMR-TPQZ-WBNF");
  s = split("kxmr-tpqz-wbnf");
  EXPECT_EQ(s.password, "");
  EXPECT_EQ(s.code, "kxmr-tpqz-wbnf");
  // Without the dashes where printed, no code: all of it is the password.
  s = split("hunter2kxmrtpqzwbnf");
  EXPECT_EQ(s.password, "hunter2kxmrtpqzwbnf");
  EXPECT_EQ(s.code, "");
  s = split("hunter2kxmr-tpqz-wbn!");
  EXPECT_EQ(s.code, "");
}

TEST(CodeShapeTest, SplitWithoutACodeLeavesThePassword) {
  Split s = split("hunter2");
  EXPECT_EQ(s.password, "hunter2");
  EXPECT_EQ(s.code, "");
  s = split("12345");
  EXPECT_EQ(s.password, "12345");
  EXPECT_EQ(s.code, "");
  s = split("");
  EXPECT_EQ(s.password, "");
  EXPECT_EQ(s.code, "");
}

}  // namespace
}  // namespace pbx::totp

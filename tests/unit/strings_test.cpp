// The shared text helpers (pbx/totp/strings.hpp): trim, the splitters, to_lower, log field
// escaping and percent-encoding, each at its edges.
#include "pbx/totp/strings.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace pbx::totp {
namespace {

using namespace std::literals;
using Views = std::vector<std::string_view>;

TEST(StringsTrim, StripsBlanksButKeepsInnerText) {
  EXPECT_EQ(trim("  a b \t\r"), "a b");
  EXPECT_EQ(trim("\t\r x"), "x");
  EXPECT_EQ(trim("x"), "x");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \t\r "), "");
}

TEST(StringsTrim, KeepsANewlineUnlessAsked) {
  // A value that still holds '\n' came from somewhere that should have split it: keep it
  // visible to the parser, which refuses it.
  EXPECT_EQ(trim(" 10.0.0.1\n"), "10.0.0.1\n");
  EXPECT_EQ(trim("\n 6 \r\n", kWhitespace), "6");
  EXPECT_EQ(trim("\n\n", kWhitespace), "");
}

TEST(StringsTrim, ReturnsAViewIntoTheInput) {
  const std::string s = "  key  ";
  std::string_view t = trim(s);
  EXPECT_EQ(t.data(), s.data() + 2);
  EXPECT_EQ(trim("   ").size(), 0U);
}

TEST(StringsSplitLines, LastLineWithoutNewlineCountsTrailingNewlineAddsNone) {
  EXPECT_EQ(split_lines(""), Views{});
  EXPECT_EQ(split_lines("\n"), Views{""});
  EXPECT_EQ(split_lines("a"), Views{"a"});
  EXPECT_EQ(split_lines("a\n"), Views{"a"});
  EXPECT_EQ(split_lines("a\n\nb"), (Views{"a", "", "b"}));
  EXPECT_EQ(split_lines("a\nb\n\n"), (Views{"a", "b", ""}));
}

TEST(StringsSplitLines, CarriageReturnKeptOrDropped) {
  EXPECT_EQ(split_lines("a\r\nb\r"), (Views{"a\r", "b\r"}));
  EXPECT_EQ(split_lines("a\r\nb\r", LineEnd::kCrLf), (Views{"a", "b"}));
  // Only one '\r' right before the end goes; others are the line's own.
  EXPECT_EQ(split_lines("a\r\r\n\rb", LineEnd::kCrLf), (Views{"a\r", "\rb"}));
}

TEST(StringsSplitLines, NulBytesStayInTheirLine) {
  const std::string text("a\0b\nc"s);
  auto lines = split_lines(text);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0], "a\0b"sv);
}

TEST(StringsSplitWs, RunsOfSpacesAndTabsSeparate) {
  EXPECT_EQ(split_ws(""), Views{});
  EXPECT_EQ(split_ws(" \t "), Views{});
  EXPECT_EQ(split_ws("a"), Views{"a"});
  EXPECT_EQ(split_ws("  a \t b\tc  "), (Views{"a", "b", "c"}));
  EXPECT_EQ(split_ws("a\rb"), Views{"a\rb"});  // only spaces and tabs
}

TEST(StringsToLower, AsciiOnlyWithoutLocale) {
  EXPECT_EQ(to_lower("OtpAuth://TOTP"), "otpauth://totp");
  EXPECT_EQ(to_lower("\xC3\x84Z@[`{"), "\xC3\x84z@[`{");
  EXPECT_EQ(to_lower(""), "");
}

TEST(StringsEscapeField, ControlNonAsciiAndBackslashAlwaysEscaped) {
  const EscapeSet plain{"", 128, ""};
  EXPECT_EQ(escape_field("alice", plain), "alice");
  EXPECT_EQ(escape_field("a\nb", plain), "a\\x0ab");
  EXPECT_EQ(escape_field("a\\x0ab", plain), "a\\x5cx0ab");  // no forged escape
  EXPECT_EQ(escape_field("\x7F\xC3\xA9", plain), "\\x7f\\xc3\\xa9");
  EXPECT_EQ(escape_field(std::string_view("a\0b", 3), plain), "a\\x00b");
  EXPECT_EQ(escape_field("a b=c", plain), "a b=c");
}

TEST(StringsEscapeField, TheSetAddsCharacters) {
  // A name=value log field: a space would let a name forge the next field.
  const EscapeSet field{" \"", 128, "..."};
  EXPECT_EQ(escape_field("bob outcome=success", field), "bob\\x20outcome=success");
  EXPECT_EQ(escape_field("\"q\"", field), "\\x22q\\x22");
  // An audit field: '=' and brackets too.
  const EscapeSet audit{" =\"()", 128, ""};
  EXPECT_EQ(escape_field("a=(b)", audit), "a\\x3d\\x28b\\x29");
}

TEST(StringsEscapeField, EmptyIsADashAndLongIsCut) {
  EXPECT_EQ(escape_field("", EscapeSet{"", 128, "..."}), "-");
  EXPECT_EQ(escape_field("abcdef", EscapeSet{"", 4, "..."}), "abcd...");
  EXPECT_EQ(escape_field("abcdef", EscapeSet{"", 4, ""}), "abcd");
  EXPECT_EQ(escape_field("abcd", EscapeSet{"", 4, "..."}), "abcd");
  // The cap counts input bytes, before escaping.
  EXPECT_EQ(escape_field("\n\n\n", EscapeSet{"", 2, "..."}), "\\x0a\\x0a...");
}

TEST(StringsPercentEncode, KeepsWhatThePredicateKeepsInUpperCaseHex) {
  auto alnum = [](unsigned char c, std::size_t) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  EXPECT_EQ(percent_encode("", alnum), "");
  EXPECT_EQ(percent_encode("abc123", alnum), "abc123");
  EXPECT_EQ(percent_encode("a b:\xFF\x00"sv, alnum), "a%20b%3A%FF%00");
  // The position lets a caller escape only a leading character (a file name's leading dot).
  auto no_leading_dot = [](unsigned char c, std::size_t at) { return c != '.' || at > 0; };
  EXPECT_EQ(percent_encode("..x", no_leading_dot), "%2E.x");
}

TEST(StringsPath, BaseNameIsTheLastPart) {
  EXPECT_EQ(base_name("/lib/security/pam_pbx_totp.so"), "pam_pbx_totp.so");
  EXPECT_EQ(base_name("pam_unix.so"), "pam_unix.so");
  EXPECT_EQ(base_name("/etc/"), "");
  EXPECT_EQ(base_name(""), "");
}

TEST(StringsPath, DirNameIsDotOrSlashAtTheEdges) {
  EXPECT_EQ(dir_name("/etc/ssh/sshd_config"), "/etc/ssh");
  EXPECT_EQ(dir_name("sshd_config"), ".");
  EXPECT_EQ(dir_name("/sshd_config"), "/");
  EXPECT_EQ(dir_name("a/b/"), "a/b");
}

}  // namespace
}  // namespace pbx::totp

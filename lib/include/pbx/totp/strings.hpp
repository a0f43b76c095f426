// Small text helpers: trim, line and word splitting, ASCII lower case, log-field escaping.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pbx::totp {

// What trim() strips by default: blanks and the '\r' of a CRLF line. Not '\n': a value that
// still holds one came from somewhere that should not have let it through.
inline constexpr std::string_view kBlanks = " \t\r";
// Blanks and line ends, for text that comes whole from another tool (an imported file).
inline constexpr std::string_view kWhitespace = " \t\r\n";

// `s` without leading and trailing characters of `chars`.
std::string_view trim(std::string_view s, std::string_view chars = kBlanks);

enum class LineEnd {
  kLf,    // lines end at '\n'; a '\r' stays in the line (a strict file format rejects it)
  kCrLf,  // a '\r' before the '\n' (or at the end of the last line) goes too
};

// The lines of `text` without their ending; a last line without '\n' counts, an empty text has
// none. The views point into `text`.
std::vector<std::string_view> split_lines(std::string_view text, LineEnd end = LineEnd::kLf);

// The words of `s`, separated by runs of spaces and tabs. The views point into `s`.
std::vector<std::string_view> split_ws(std::string_view s);

// ASCII letters in lower case; other bytes unchanged (no locale).
std::string to_lower(std::string_view s);

// What escape_field() turns into \xHH besides control characters, non-ASCII bytes and '\'.
struct EscapeSet {
  std::string_view also;      // printable characters escaped too (" \"" for a name=value field)
  std::size_t max = 128;      // bytes of the input kept
  std::string_view cut_mark;  // appended when the input was longer than `max` ("..." or "")
};

// One log or audit field: always on one line and printable, whatever a user name or host name
// holds; "-" when empty.
std::string escape_field(std::string_view s, const EscapeSet& set);

// The last part of a '/'-separated path (all of it when there is no '/').
std::string base_name(std::string_view path);
// The directory part of a path: "." when there is no '/', "/" for a name at the top.
std::string dir_name(std::string_view path);

// %XX (upper-case hex) for every byte that `keep(byte, index)` refuses.
std::string percent_encode(std::string_view text, bool (*keep)(unsigned char c, std::size_t at));

}  // namespace pbx::totp

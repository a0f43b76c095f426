// The line format shared by the secret and state files: "key value", '#' comments, version 1.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/result.hpp"

namespace pbx::totp::detail {

struct KeyValueLine {
  std::string key;
  std::string value;
  int line = 0;  // 1-based, for errors: they name the line, never quote it (the file is secret)
};

// Splits into lines; rejects NUL bytes, control characters, lines without a key, a missing
// first "version N" or one with N outside 1..max_version, and a missing last "end" line (a
// truncated file). `what` names the file kind in errors (kCorrupt), which name line numbers and
// never quote a byte of the file. `version`, when given, receives N.
Result<std::vector<KeyValueLine>> parse_key_values(std::string_view text, const char* what,
                                                   int max_version = 1, int* version = nullptr);

// Splits "a b c" into exactly `n` fields separated by single spaces; false otherwise.
bool split_fields(std::string_view v, std::size_t n, std::vector<std::string_view>& out);

// Strict whole-string integer in [lo, hi].
bool parse_i64(std::string_view text, std::int64_t lo, std::int64_t hi, std::int64_t& out);

// "I,J,K": indexes of used one-time codes. parse_index_list appends to `out`; false when an
// item is not an integer in [0, max] or there are more than `max_count`.
bool parse_index_list(std::string_view text, int max, std::size_t max_count, std::vector<int>& out);
std::string index_list(const std::vector<int>& indexes);

}  // namespace pbx::totp::detail

#include "text_format.hpp"

#include <charconv>

#include "pbx/totp/strings.hpp"

namespace pbx::totp::detail {

bool parse_i64(std::string_view text, std::int64_t lo, std::int64_t hi, std::int64_t& out) {
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || v < lo || v > hi) {
    return false;
  }
  out = v;
  return true;
}

bool split_fields(std::string_view v, std::size_t n, std::vector<std::string_view>& out) {
  out.clear();
  while (out.size() + 1 < n) {
    std::size_t sp = v.find(' ');
    if (sp == std::string_view::npos || sp == 0) return false;
    out.push_back(v.substr(0, sp));
    v.remove_prefix(sp + 1);
  }
  if (v.empty() || v.find(' ') != std::string_view::npos) return false;
  out.push_back(v);
  return true;
}

bool parse_index_list(std::string_view text, int max, std::size_t max_count,
                      std::vector<int>& out) {
  while (true) {
    std::size_t comma = text.find(',');
    std::int64_t n = 0;
    if (!parse_i64(text.substr(0, comma), 0, max, n) || out.size() >= max_count) return false;
    out.push_back(static_cast<int>(n));
    if (comma == std::string_view::npos) return true;
    text = text.substr(comma + 1);
  }
}

std::string index_list(const std::vector<int>& indexes) {
  std::string out;
  for (std::size_t i = 0; i < indexes.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(indexes[i]);
  }
  return out;
}

Result<std::vector<KeyValueLine>> parse_key_values(std::string_view text, const char* what,
                                                   int max_version, int* version) {
  std::vector<KeyValueLine> lines;
  bool versioned = false;
  bool ended = false;
  int line_no = 0;
  for (std::string_view line : split_lines(text)) {
    ++line_no;
    for (char c : line) {
      auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7F) {
        return make_error(Errc::kCorrupt, std::string(what) + ": line " + std::to_string(line_no) +
                                              ": control character");
      }
    }
    if (line.empty() || line.front() == '#') continue;
    if (ended) {
      return make_error(Errc::kCorrupt, std::string(what) + ": line " + std::to_string(line_no) +
                                            ": text after the end line");
    }
    std::size_t sp = line.find(' ');
    KeyValueLine kv{std::string(line.substr(0, sp)),
                    sp == std::string_view::npos ? std::string() : std::string(line.substr(sp + 1)),
                    line_no};
    if (!versioned) {
      if (kv.key != "version") {
        return make_error(Errc::kCorrupt,
                          std::string(what) + ": does not start with a version line");
      }
      std::int64_t n = 0;
      if (!parse_i64(kv.value, 1, max_version, n)) {
        return make_error(Errc::kCorrupt, std::string(what) + ": line " + std::to_string(line_no) +
                                              ": unknown version");
      }
      versioned = true;
      if (version != nullptr) *version = static_cast<int>(n);
      continue;
    }
    if (kv.key == "end" && kv.value.empty()) {
      ended = true;
      continue;
    }
    lines.push_back(std::move(kv));
  }
  if (!versioned || !ended) {
    return make_error(Errc::kCorrupt, std::string(what) + ": empty or truncated (no end line)");
  }
  return lines;
}

}  // namespace pbx::totp::detail

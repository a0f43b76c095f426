#include "pbx/totp/base32.hpp"

#include <string>

namespace pbx::totp {
namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

int symbol_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}
}  // namespace

std::string base32_encode(const std::uint8_t* data, std::size_t size, bool pad) {
  std::string out;
  out.reserve((size + 4) / 5 * 8);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (std::size_t i = 0; i < size; ++i) {
    buffer = (buffer << 8) | data[i];
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31U]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31U]);
  if (pad) {
    while (out.size() % 8 != 0) out.push_back('=');
  }
  return out;
}

Result<SecretBytes> base32_decode(std::string_view text) {
  SecretBytes out;
  std::uint32_t buffer = 0;
  int bits = 0;
  std::size_t symbols = 0;
  std::size_t padding = 0;
  for (char c : text) {
    if (c == ' ' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return make_error(Errc::kInvalid, "base32: characters after '=' padding");
    int v = symbol_value(c);
    if (v < 0) return make_error(Errc::kInvalid, "base32: invalid character");
    buffer = (buffer << 5) | static_cast<std::uint32_t>(v);
    bits += 5;
    ++symbols;
    if (bits >= 8) {
      out.push_back(static_cast<std::uint8_t>((buffer >> (bits - 8)) & 0xFFU));
      bits -= 8;
    }
  }
  // A final group of 8 symbols carries 1..5 bytes in 2, 4, 5, 7 or 8 symbols.
  std::size_t tail = symbols % 8;
  if (tail == 1 || tail == 3 || tail == 6) {
    return make_error(Errc::kInvalid, "base32: impossible length");
  }
  if (padding > 0 && (symbols + padding) % 8 != 0) {
    return make_error(Errc::kInvalid, "base32: wrong amount of '=' padding");
  }
  if (padding >= 8) return make_error(Errc::kInvalid, "base32: wrong amount of '=' padding");
  if (bits > 0) {
    std::uint32_t leftover = buffer & ((1U << bits) - 1U);
    if (leftover != 0) return make_error(Errc::kInvalid, "base32: non-zero trailing bits");
  }
  wipe(&buffer, sizeof buffer);
  return out;
}

std::string group_by_four(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i > 0 && i % 4 == 0) out.push_back(' ');
    out.push_back(text[i]);
  }
  return out;
}

}  // namespace pbx::totp

// Lower-case hex of bytes, for comparing MACs with the published test vectors (RFC 2202, 4231,
// 6238). The tests' own, not the library's detail::to_hex: the expected side stays independent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pbx::testing {

inline std::string hex(const std::uint8_t* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < size; ++i) {
    s.push_back(kHex[data[i] >> 4]);
    s.push_back(kHex[data[i] & 15]);
  }
  return s;
}

}  // namespace pbx::testing

// Hex: lower-case encoding for hashes, salts and ids in our text files, and reading digits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pbx::totp::detail {

std::string to_hex(const std::uint8_t* data, std::size_t size);
// Only lower-case hex of even length; nullopt otherwise.
std::optional<std::vector<std::uint8_t>> from_hex(std::string_view text);
bool is_hex(std::string_view text, std::size_t length);
// The value of one hex digit of either case, or -1: what a %-escape or an imported hex secret
// holds (text from other tools, unlike our own files).
int hex_value(char c);

}  // namespace pbx::totp::detail

// parse_oath_users (a pam_oath users.oath file) on any text. The input's first line is the
// user name to look up, the rest is the file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "import_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t nl = input.find('\n');
  if (nl == std::string_view::npos) return 0;
  std::string_view user = input.substr(0, nl);
  std::string_view text = input.substr(nl + 1);
  auto parsed = pbx::totp::parse_oath_users(text, user);
  if (parsed) check_import(*parsed);
  // Through the dispatcher too, as the CLI calls it.
  auto via = pbx::totp::parse_import(pbx::totp::ImportFormat::kOath, text, user);
  FUZZ_CHECK(via.ok() == parsed.ok());
  return 0;
}

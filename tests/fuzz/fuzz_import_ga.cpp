// parse_google_authenticator (a ~/.google_authenticator file) on any text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "import_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = pbx::totp::parse_google_authenticator(text);
  if (parsed) {
    check_import(*parsed);
    if (parsed->window_size) FUZZ_CHECK(*parsed->window_size >= 1);
    for (const auto& code : parsed->scratch_codes) FUZZ_CHECK(code.view().size() == 8);
  }
  return 0;
}

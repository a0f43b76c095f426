// parse_module_args on any argument list: the input split at NUL bytes and newlines into
// arguments. config= arguments are dropped (they would read files of this machine), so the
// default config path is loaded (absent on a build machine: all defaults).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "module_args.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= input.size(); ++i) {
    if (i == input.size() || input[i] == '\0' || input[i] == '\n') {
      std::string a(input.substr(start, i - start));
      if (a.rfind("config=", 0) != 0) args.push_back(std::move(a));
      start = i + 1;
    }
  }
  auto parsed = pbx::pam::parse_module_args(args, 0);
  if (parsed) {
    FUZZ_CHECK(!(parsed->use_first_pass && parsed->try_first_pass));
    FUZZ_CHECK(!parsed->prompt.empty() && parsed->prompt.size() <= 256);
    FUZZ_CHECK(parsed->config.digits >= 6 && parsed->config.digits <= 8);
    FUZZ_CHECK(parsed->config.period > 0);
  } else {
    FUZZ_CHECK(parsed.error().code == pbx::totp::Errc::kConfig);
  }
  return 0;
}

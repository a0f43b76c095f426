// parse_config_text on any text, over the defaults. A config that parses keeps its numbers in
// a sane range (the parser's own limits are checked by the unit tests; here: nothing absurd).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "pbx/totp/config.hpp"

using namespace pbx::totp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Config config;
  auto st = parse_config_text(config, text, "fuzz.conf");
  if (st) {
    FUZZ_CHECK(config.digits >= 6 && config.digits <= 8);
    FUZZ_CHECK(config.period > 0);
    FUZZ_CHECK(config.window >= 0);
    FUZZ_CHECK(config.max_failures >= 0);
    FUZZ_CHECK(config.lockout >= 0);
    FUZZ_CHECK(config.recovery_codes >= 0);
    FUZZ_CHECK(config.grace_period >= 0);
    FUZZ_CHECK(config.issuer.find(':') == std::string::npos);
    for (const auto& net : config.exempt_networks) {
      FUZZ_CHECK(net.prefix >= 0 && net.prefix <= (net.v6 ? 128 : 32));
    }
    // Parsing the same text again over the result is accepted too.
    Config twice = config;
    FUZZ_CHECK(parse_config_text(twice, text, "fuzz.conf").ok());
  } else {
    FUZZ_CHECK(!st.error().message.empty());
  }
  return 0;
}

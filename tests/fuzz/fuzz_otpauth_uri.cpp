// parse_otpauth_uri on any text; a URI that parses builds back to one that parses to the same
// fields. percent_decode -> percent_encode -> percent_decode is exact.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "pbx/totp/otpauth_uri.hpp"

using namespace pbx::totp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_otpauth_uri(text);
  if (parsed) {
    std::string uri = build_otpauth_uri(*parsed);
    auto again = parse_otpauth_uri(uri);
    // The parser caps a URI at 4 KiB and the builder escapes more than an input must (every
    // non-ASCII byte becomes %XX), so a long label can build past the cap: then it is refused
    // (as the unit test OtpAuthUriHostile.OverLongInput expects), not misread.
    if (uri.size() > 4096) {
      FUZZ_CHECK(!again.ok());
      return 0;
    }
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->issuer == parsed->issuer);
    FUZZ_CHECK(again->account == parsed->account);
    FUZZ_CHECK(again->secret == parsed->secret);
    FUZZ_CHECK(again->algorithm == parsed->algorithm);
    FUZZ_CHECK(again->digits == parsed->digits);
    FUZZ_CHECK(again->period == parsed->period);
    FUZZ_CHECK(build_otpauth_uri(*again) == uri);
  }
  auto dec = percent_decode(text);
  if (dec) {
    auto back = percent_decode(percent_encode(*dec));
    FUZZ_CHECK(back.ok());
    FUZZ_CHECK(*back == *dec);
  }
  return 0;
}

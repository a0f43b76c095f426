// parse_enrollment (the secret file) on any text; a file that parses serializes to text that
// parses back to the same enrollment (compared through its serialization).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "pbx/totp/enrollment.hpp"

using namespace pbx::totp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_enrollment(text);
  if (parsed) {
    FUZZ_CHECK(!parsed->devices.empty() &&
               parsed->devices.size() <= static_cast<std::size_t>(kMaxDevices));
    for (const auto& d : parsed->devices) {
      FUZZ_CHECK(valid_device_name(d.name));
      FUZZ_CHECK(!d.secret.empty());
      FUZZ_CHECK(d.digits >= 6 && d.digits <= 8);
      FUZZ_CHECK(d.period > 0);
    }
    std::string once = serialize_enrollment(*parsed);
    auto again = parse_enrollment(once);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->id == parsed->id);
    FUZZ_CHECK(again->devices.size() == parsed->devices.size());
    for (std::size_t i = 0; i < again->devices.size(); ++i) {
      const Device& a = again->devices[i];
      const Device& b = parsed->devices[i];
      FUZZ_CHECK(a.name == b.name && a.secret == b.secret && a.algorithm == b.algorithm &&
                 a.digits == b.digits && a.period == b.period && a.created == b.created);
    }
    FUZZ_CHECK(again->created == parsed->created);
    FUZZ_CHECK(again->recovery.salt == parsed->recovery.salt);
    FUZZ_CHECK(again->recovery.hashes == parsed->recovery.hashes);
    FUZZ_CHECK(again->recovery.kdf.n == parsed->recovery.kdf.n);
    FUZZ_CHECK(again->recovery.kdf.r == parsed->recovery.kdf.r);
    FUZZ_CHECK(again->recovery.kdf.p == parsed->recovery.kdf.p);
    FUZZ_CHECK(serialize_enrollment(*again) == once);
  }
  return 0;
}

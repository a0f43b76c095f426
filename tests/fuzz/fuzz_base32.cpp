// base32_decode on any text; decode -> encode -> decode gives the same bytes (padded and not),
// and any bytes encode to text that decodes back to them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "pbx/totp/base32.hpp"

using namespace pbx::totp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto decoded = base32_decode(text);
  if (decoded) {
    for (bool pad : {true, false}) {
      auto again = base32_decode(base32_encode(*decoded, pad));
      FUZZ_CHECK(again.ok());
      FUZZ_CHECK(*again == *decoded);
    }
  }
  // The input as bytes: the encoder's output is always accepted and exact.
  for (bool pad : {true, false}) {
    std::string enc = base32_encode(data, size, pad);
    auto back = base32_decode(enc);
    FUZZ_CHECK(back.ok());
    FUZZ_CHECK(back->size() == size);
    FUZZ_CHECK(*back == SecretBytes(data, size));
    (void)group_by_four(enc);
  }
  return 0;
}

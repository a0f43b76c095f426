// parse_state on any text; a state that parses serializes to text that parses back to the
// same state.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/state.hpp"

using namespace pbx::totp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_state(text);
  if (parsed) {
    FUZZ_CHECK(parsed->failures >= 0);
    for (const auto& m : parsed->marks) {
      FUZZ_CHECK(m.skew >= -kMaxSkewSteps && m.skew <= kMaxSkewSteps);
    }
    FUZZ_CHECK(parsed->grace.size() <= static_cast<std::size_t>(kMaxGraceEntries));
    std::string once = serialize_state(*parsed);
    auto again = parse_state(once);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->enrollment_id == parsed->enrollment_id);
    FUZZ_CHECK(again->marks == parsed->marks);
    FUZZ_CHECK(again->failures == parsed->failures);
    FUZZ_CHECK(again->locked_until == parsed->locked_until);
    FUZZ_CHECK(again->last_success == parsed->last_success);
    FUZZ_CHECK(again->used_recovery == parsed->used_recovery);
    FUZZ_CHECK(again->grace.size() == parsed->grace.size());
    for (std::size_t i = 0; i < again->grace.size(); ++i) {
      FUZZ_CHECK(again->grace[i].host == parsed->grace[i].host);
      FUZZ_CHECK(again->grace[i].at == parsed->grace[i].at);
    }
    FUZZ_CHECK(serialize_state(*again) == once);
  }
  return 0;
}

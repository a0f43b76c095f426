// The units of a duration typed on the command line ("30m", "2h", "7d"): one table for every
// option that takes one (temp-code --expires, events --since).
#pragma once

#include <cstdint>
#include <optional>

namespace pbx::cli {

// Seconds in one `unit`: s, m, h, d, and w when `weeks`; nullopt for any other character.
inline std::optional<std::int64_t> duration_unit(char unit, bool weeks) {
  switch (unit) {
    case 's':
      return 1;
    case 'm':
      return 60;
    case 'h':
      return 3600;
    case 'd':
      return 86400;
    case 'w':
      if (weeks) return std::int64_t{7} * 86400;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

}  // namespace pbx::cli

#include "pbx/totp/result.hpp"

namespace pbx::totp {

const char* errc_name(Errc errc) noexcept {
  switch (errc) {
    case Errc::kInvalid:
      return "invalid";
    case Errc::kConfig:
      return "config";
    case Errc::kNotEnrolled:
      return "not-enrolled";
    case Errc::kUnsafe:
      return "unsafe";
    case Errc::kCorrupt:
      return "corrupt";
    case Errc::kIo:
      return "io";
    case Errc::kNoUser:
      return "no-user";
    case Errc::kExists:
      return "exists";
    case Errc::kInternal:
      return "internal";
    case Errc::kUnavailable:
      return "unavailable";
  }
  return "unknown";
}

}  // namespace pbx::totp

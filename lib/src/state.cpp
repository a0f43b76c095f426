#include "pbx/totp/state.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <string_view>

#include "hex.hpp"
#include "text_format.hpp"

namespace pbx::totp {
namespace {
constexpr const char* kWhat = "state file";
constexpr std::int64_t kMaxTime = INT64_C(1) << 40;

Error corrupt(const std::string& why) {
  return make_error(Errc::kCorrupt, std::string(kWhat) + ": " + why);
}

// Errors name the line, never a byte of it (pam_pbx_totp(8) LOGGING).
Error corrupt_line(const detail::KeyValueLine& kv, const std::string& why) {
  return corrupt("line " + std::to_string(kv.line) + ": " + why);
}

constexpr std::string_view kKeys[] = {"id",   "last-step",    "failures",      "locked-until",
                                      "skew", "last-success", "used-recovery", "grace"};
}  // namespace

std::string serialize_state(const UserState& s) {
  std::string out = "version 1\n";
  out += "id " + s.enrollment_id + "\n";
  out += "last-step " + std::to_string(s.last_step) + "\n";
  out += "failures " + std::to_string(s.failures) + "\n";
  out += "locked-until " + std::to_string(s.locked_until) + "\n";
  out += "skew " + std::to_string(s.skew) + "\n";
  out += "last-success " + std::to_string(s.last_success) + "\n";
  if (!s.used_recovery.empty()) {
    out += "used-recovery " + detail::index_list(s.used_recovery) + "\n";
  }
  for (const auto& g : s.grace) out += "grace " + g.host + " " + std::to_string(g.at) + "\n";
  out += "end\n";
  return out;
}

Result<UserState> parse_state(std::string_view text) {
  auto lines = detail::parse_key_values(text, kWhat);
  if (!lines) return lines.error();
  UserState s;
  std::set<std::string> seen;
  for (const auto& kv : *lines) {
    if (std::find(std::begin(kKeys), std::end(kKeys), kv.key) == std::end(kKeys)) {
      return corrupt_line(kv, "unknown key");
    }
    if (kv.key != "grace" && !seen.insert(kv.key).second) {
      return corrupt_line(kv, "'" + kv.key + "' given twice");
    }
    std::int64_t n = 0;
    if (kv.key == "id") {
      if (!kv.value.empty() && !detail::is_hex(kv.value, 32)) return corrupt("bad id");
      s.enrollment_id = kv.value;
    } else if (kv.key == "last-step") {
      if (!detail::parse_i64(kv.value, kNoStep, kMaxTime, n)) return corrupt("bad last-step");
      s.last_step = n;
    } else if (kv.key == "failures") {
      if (!detail::parse_i64(kv.value, 0, 1000000, n)) return corrupt("bad failures");
      s.failures = static_cast<int>(n);
    } else if (kv.key == "locked-until") {
      if (!detail::parse_i64(kv.value, 0, kMaxTime, n)) return corrupt("bad locked-until");
      s.locked_until = n;
    } else if (kv.key == "skew") {
      if (!detail::parse_i64(kv.value, -1000, 1000, n)) return corrupt("bad skew");
      s.skew = static_cast<int>(std::clamp<std::int64_t>(n, -kMaxSkewSteps, kMaxSkewSteps));
    } else if (kv.key == "last-success") {
      if (!detail::parse_i64(kv.value, 0, kMaxTime, n)) return corrupt("bad last-success");
      s.last_success = n;
    } else if (kv.key == "used-recovery") {
      if (!detail::parse_index_list(kv.value, 19, 20, s.used_recovery)) {
        return corrupt("bad used-recovery");
      }
    } else if (kv.key == "grace") {
      std::size_t sp = kv.value.find(' ');
      if (sp == std::string::npos || !detail::is_hex(kv.value.substr(0, sp), 32) ||
          !detail::parse_i64(std::string_view(kv.value).substr(sp + 1), 0, kMaxTime, n) ||
          s.grace.size() >= static_cast<std::size_t>(kMaxGraceEntries)) {
        return corrupt("bad grace entry");
      }
      s.grace.push_back(GraceEntry{kv.value.substr(0, sp), n});
    } else {
      return corrupt_line(kv, "unknown key");
    }
  }
  for (const char* key : {"id", "last-step", "failures", "locked-until"}) {
    if (seen.count(key) == 0) return corrupt(std::string("missing '") + key + "'");
  }
  return s;
}

}  // namespace pbx::totp

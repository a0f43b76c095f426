#include "pbx/totp/state.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <string_view>

#include "hex.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/temp_code.hpp"
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

constexpr std::string_view kKeysV1[] = {
    "id",       "last-step",    "failures",      "locked-until",
    "skew",     "last-success", "used-recovery", "grace",
    "required", "temp-code",    "temp-code-kdf", "temp-code-reason"};
constexpr std::string_view kKeysV2[] = {
    "id",    "failures", "locked-until", "last-success",  "device",          "used-recovery",
    "grace", "required", "temp-code",    "temp-code-kdf", "temp-code-reason"};
// Version 3 adds the last counted failure (when and from where), for the notice on the next
// good login.
constexpr std::string_view kKeysV3[] = {
    "id",    "failures", "locked-until", "last-success",  "device",           "used-recovery",
    "grace", "required", "temp-code",    "temp-code-kdf", "temp-code-reason", "last-failure"};

bool parse_skew(std::string_view v, int& out) {
  std::int64_t n = 0;
  if (!detail::parse_i64(v, -1000, 1000, n)) return false;
  out = static_cast<int>(std::clamp<std::int64_t>(n, -kMaxSkewSteps, kMaxSkewSteps));
  return true;
}

// "device NAME CREATED LAST_STEP SKEW LAST_USED"
bool parse_mark(std::string_view v, DeviceMark& m) {
  std::vector<std::string_view> f;
  if (!detail::split_fields(v, 5, f) || !valid_device_name(f[0]) ||
      !detail::parse_i64(f[1], kAnyCreated, kMaxTime, m.created) ||
      !detail::parse_i64(f[2], kNoStep, kMaxTime, m.last_step) || !parse_skew(f[3], m.skew) ||
      !detail::parse_i64(f[4], 0, kMaxTime, m.last_used)) {
    return false;
  }
  m.device = std::string(f[0]);
  return true;
}

// "last-failure TIME HOST" (HOST "-": a local login)
bool parse_last_failure(std::string_view v, UserState& s) {
  std::vector<std::string_view> f;
  if (!detail::split_fields(v, 2, f) || !detail::parse_i64(f[0], 1, kMaxTime, s.last_failure) ||
      f[1].size() > kMaxRhostText || !printable_rhost(f[1])) {
    return false;
  }
  s.last_failure_rhost = f[1] == "-" ? "" : std::string(f[1]);
  return true;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// "required BY AT"
bool parse_required(std::string_view v, RequiredMark& m) {
  std::vector<std::string_view> f;
  std::int64_t at = 0;
  if (!detail::split_fields(v, 2, f) || !valid_name(f[0]) ||
      !detail::parse_i64(f[1], 0, kMaxTime, at)) {
    return false;
  }
  m = RequiredMark{true, std::string(f[0]), at};
  return true;
}

// "temp-code SALT HASH ISSUED EXPIRES USES ISSUER"
bool parse_temp_code(std::string_view v, TempCode& t) {
  std::vector<std::string_view> f;
  std::int64_t issued = 0, expires = 0, uses = 0;
  if (!detail::split_fields(v, 6, f) || !detail::is_hex(f[0], 32) || !detail::is_hex(f[1], 64) ||
      !detail::parse_i64(f[2], 0, kMaxTime, issued) ||
      !detail::parse_i64(f[3], 0, kMaxTime, expires) ||
      !detail::parse_i64(f[4], 0, kTempCodeMaxUses, uses) || !valid_name(f[5])) {
    return false;
  }
  // No code lives longer than `pbx-mfa temp-code` can make one (72 h), whoever wrote it.
  if (expires <= issued || expires - issued > kTempCodeMaxTtl) return false;
  t.hash.salt = f[0];
  t.hash.hashes = {std::string(f[1])};
  t.issued = issued;
  t.expires = expires;
  t.uses_left = static_cast<int>(uses);
  t.issuer = f[5];
  return true;
}
}  // namespace

bool printable_rhost(std::string_view host) noexcept {
  return !host.empty() &&
         std::all_of(host.begin(), host.end(), [](char c) { return c > ' ' && c <= '~'; });
}

std::string rhost_text(std::string_view rhost) {
  std::string out;
  for (char c : rhost.substr(0, kMaxRhostText)) out.push_back(c > ' ' && c <= '~' ? c : '?');
  if (out == "-") out = "?";  // "-" in the state is a local login: a remote host is never that
  return out;
}

std::string serialize_state(const UserState& s) {
  // Version 3 only when its one new line is needed: a state without it stays readable by the
  // releases before (a downgrade keeps working until the next counted failure).
  std::string out = s.last_failure > 0 ? "version 3\n" : "version 2\n";
  out += "id " + s.enrollment_id + "\n";
  out += "failures " + std::to_string(s.failures) + "\n";
  out += "locked-until " + std::to_string(s.locked_until) + "\n";
  out += "last-success " + std::to_string(s.last_success) + "\n";
  for (const auto& m : s.marks) {
    // A version 1 mark not yet bound to its device (kAnyCreated) is written as such: a change
    // that is not a login (unlock, temp-code) must keep the replay mark.
    out += "device " + m.device + " " + std::to_string(m.created) + " " +
           std::to_string(m.last_step) + " " + std::to_string(m.skew) + " " +
           std::to_string(m.last_used) + "\n";
  }
  if (s.last_failure > 0) {
    out += "last-failure " + std::to_string(s.last_failure) + " " +
           (s.last_failure_rhost.empty() ? std::string("-") : rhost_text(s.last_failure_rhost)) +
           "\n";
  }
  if (!s.used_recovery.empty()) {
    out += "used-recovery " + detail::index_list(s.used_recovery) + "\n";
  }
  for (const auto& g : s.grace) out += "grace " + g.host + " " + std::to_string(g.at) + "\n";
  if (s.required.on) {
    out += "required " + s.required.by + " " + std::to_string(s.required.at) + "\n";
  }
  if (s.temp_code && s.temp_code->hash.hashes.size() == 1) {
    const TempCode& t = *s.temp_code;
    out += "temp-code " + t.hash.salt + " " + t.hash.hashes.front() + " " +
           std::to_string(t.issued) + " " + std::to_string(t.expires) + " " +
           std::to_string(t.uses_left) + " " + t.issuer + "\n";
    out += "temp-code-kdf " + kdf_text(t.hash.kdf) + "\n";
    if (!t.reason.empty()) out += "temp-code-reason " + t.reason + "\n";
  }
  out += "end\n";
  return out;
}

Result<UserState> parse_state(std::string_view text) {
  int version = 0;
  auto lines = detail::parse_key_values(text, kWhat, 3, &version);
  if (!lines) return lines.error();
  const bool v1 = version == 1;
  UserState s;
  DeviceMark legacy{std::string(kDefaultDevice), kAnyCreated};  // version 1: last-step, skew
  std::set<std::string> seen;
  for (const auto& kv : *lines) {
    auto in = [&](const auto& keys) {
      return std::find(std::begin(keys), std::end(keys), kv.key) != std::end(keys);
    };
    bool known = v1 ? in(kKeysV1) : version == 2 ? in(kKeysV2) : in(kKeysV3);
    if (!known) return corrupt_line(kv, "unknown key");
    if (kv.key != "grace" && kv.key != "device" && !seen.insert(kv.key).second) {
      return corrupt_line(kv, "'" + kv.key + "' given twice");
    }
    std::int64_t n = 0;
    if (kv.key == "id") {
      if (!kv.value.empty() && !detail::is_hex(kv.value, 32)) return corrupt("bad id");
      s.enrollment_id = kv.value;
    } else if (kv.key == "last-step") {
      if (!detail::parse_i64(kv.value, kNoStep, kMaxTime, n)) return corrupt("bad last-step");
      legacy.last_step = n;
    } else if (kv.key == "failures") {
      if (!detail::parse_i64(kv.value, 0, 1000000, n)) return corrupt("bad failures");
      s.failures = static_cast<int>(n);
    } else if (kv.key == "locked-until") {
      if (!detail::parse_i64(kv.value, 0, kMaxTime, n)) return corrupt("bad locked-until");
      s.locked_until = n;
    } else if (kv.key == "skew") {
      if (!parse_skew(kv.value, legacy.skew)) return corrupt("bad skew");
    } else if (kv.key == "device") {
      DeviceMark m;
      if (!parse_mark(kv.value, m)) return corrupt_line(kv, "bad device mark");
      if (std::any_of(s.marks.begin(), s.marks.end(),
                      [&](const DeviceMark& o) { return o.device == m.device; })) {
        return corrupt_line(kv, "device mark given twice");
      }
      if (s.marks.size() >= static_cast<std::size_t>(kMaxDevices)) {
        return corrupt_line(kv, "more device marks than devices allowed");
      }
      s.marks.push_back(std::move(m));
    } else if (kv.key == "last-failure") {
      if (!parse_last_failure(kv.value, s)) return corrupt("bad last-failure");
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
    } else if (kv.key == "required") {
      if (!parse_required(kv.value, s.required)) return corrupt("bad required mark");
    } else if (kv.key == "temp-code") {
      TempCode t;
      if (!parse_temp_code(kv.value, t)) return corrupt("bad temp-code");
      if (s.temp_code) {  // its kdf or reason line came first
        t.hash.kdf = s.temp_code->hash.kdf;
        t.reason = s.temp_code->reason;
      }
      s.temp_code = std::move(t);
    } else if (kv.key == "temp-code-kdf") {
      if (!s.temp_code) s.temp_code = TempCode{};
      // A temp code is checked by root at every login: it never costs more than the built-in
      // scrypt parameters.
      if (!parse_kdf_text(kv.value, s.temp_code->hash.kdf) ||
          !kdf_within_builtin_cost(s.temp_code->hash.kdf)) {
        return corrupt("bad temp-code-kdf");
      }
    } else if (kv.key == "temp-code-reason") {
      if (!s.temp_code) s.temp_code = TempCode{};
      if (!valid_temp_code_reason(kv.value)) return corrupt("bad temp-code-reason");
      s.temp_code->reason = kv.value;
    } else {
      return corrupt_line(kv, "unknown key");
    }
  }
  for (const char* key : {"id", "failures", "locked-until"}) {
    if (seen.count(key) == 0) return corrupt(std::string("missing '") + key + "'");
  }
  if (v1) {
    if (seen.count("last-step") == 0) return corrupt("missing 'last-step'");
    legacy.last_used = s.last_success;
    s.marks.push_back(std::move(legacy));
  }
  if (s.temp_code && (seen.count("temp-code") == 0 || seen.count("temp-code-kdf") == 0)) {
    return corrupt("temp-code needs both 'temp-code' and 'temp-code-kdf'");
  }
  return s;
}

}  // namespace pbx::totp

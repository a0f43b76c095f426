#include "pbx/totp/enrollment.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <string_view>

#include "hex.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/recovery.hpp"
#include "text_format.hpp"

namespace pbx::totp {
namespace {
constexpr const char* kWhat = "secret file";
constexpr std::size_t kIdBytes = 16;

Error corrupt(const std::string& why) {
  return make_error(Errc::kCorrupt, std::string(kWhat) + ": " + why);
}

// Errors name the line, never a byte of it: a mistyped secret line ("secret=JBSW...", or the
// base32 text alone) would otherwise reach syslog and the terminal.
Error corrupt_line(const detail::KeyValueLine& kv, const std::string& why) {
  return corrupt("line " + std::to_string(kv.line) + ": " + why);
}

constexpr std::string_view kKeysV1[] = {"id",      "secret",  "algorithm",     "digits",
                                        "period",  "created", "recovery-salt", "recovery-kdf",
                                        "recovery"};
constexpr std::string_view kKeysV2[] = {"id",           "created", "device", "recovery-salt",
                                        "recovery-kdf", "recovery"};
constexpr std::int64_t kMaxTime = INT64_C(1) << 40;

bool parse_secret(std::string_view b32, SecretBytes& out) {
  auto bytes = base32_decode(b32);
  if (!bytes || bytes->size() < 10 || bytes->size() > 128) return false;
  out = std::move(bytes.value());
  return true;
}

bool parse_digits(std::string_view v, int& out) {
  std::int64_t n = 0;
  if (!detail::parse_i64(v, kMinDigits, kMaxDigits, n)) return false;
  out = static_cast<int>(n);
  return true;
}

bool parse_period(std::string_view v, int& out) {
  std::int64_t n = 0;
  if (!detail::parse_i64(v, 1, 300, n)) return false;
  out = static_cast<int>(n);
  return true;
}

// "device NAME CREATED ALGORITHM DIGITS PERIOD BASE32"
bool parse_device(std::string_view v, Device& d) {
  std::vector<std::string_view> f;
  std::int64_t created = 0;
  if (!detail::split_fields(v, 6, f) || !valid_device_name(f[0]) ||
      !detail::parse_i64(f[1], 0, kMaxTime, created)) {
    return false;
  }
  auto a = parse_algorithm(f[2]);
  if (!a || !parse_digits(f[3], d.digits) || !parse_period(f[4], d.period) ||
      !parse_secret(f[5], d.secret)) {
    return false;
  }
  d.name = std::string(f[0]);
  d.created = created;
  d.algorithm = *a;
  return true;
}

}  // namespace

bool valid_device_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 32) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

const Device* Enrollment::find_device(std::string_view name) const noexcept {
  for (const auto& d : devices) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

Result<std::string> new_enrollment_id() {
  std::uint8_t b[kIdBytes];
  if (auto st = random_bytes(b, sizeof b); !st) return st.error();
  return detail::to_hex(b, sizeof b);
}

Enrollment single_device_enrollment(std::string id, SecretBytes secret, Algorithm algorithm,
                                    int digits, int period, std::int64_t created) {
  Enrollment e;
  e.id = std::move(id);
  e.created = created;
  Device d;
  d.secret = std::move(secret);
  d.algorithm = algorithm;
  d.digits = digits;
  d.period = period;
  d.created = created;
  e.devices.push_back(std::move(d));
  return e;
}

std::string serialize_enrollment(const Enrollment& e) {
  // The base32 secrets go straight into `s`, which is reserved large enough never to move:
  // a temporary string or a grown buffer would be freed with a secret in it, unwiped.
  std::size_t size = 256 + e.id.size() + e.recovery.salt.size();
  for (const auto& h : e.recovery.hashes) size += 16 + h.size();
  for (const auto& d : e.devices) size += 96 + d.name.size() + (d.secret.size() * 8 + 4) / 5;
  std::string s;
  s.reserve(size);
  s += "# pbx-mfa secret file: written by pbx-mfa, do not edit\n";
  s += "version 2\n";
  s += "id " + e.id + "\n";
  s += "created " + std::to_string(e.created) + "\n";
  for (const auto& d : e.devices) {
    s += "device " + d.name + " " + std::to_string(d.created) + " " + algorithm_name(d.algorithm) +
         " " + std::to_string(d.digits) + " " + std::to_string(d.period) + " ";
    std::string secret = base32_encode(d.secret, false);
    s += secret;
    s += "\n";
    wipe(secret);
  }
  if (!e.recovery.hashes.empty()) {
    s += "recovery-salt " + e.recovery.salt + "\n";
    s += "recovery-kdf " + kdf_text(e.recovery.kdf) + "\n";
    for (const auto& h : e.recovery.hashes) s += "recovery " + h + "\n";
  }
  s += "end\n";
  return s;
}

Result<Enrollment> parse_enrollment(std::string_view text) {
  int version = 0;
  auto lines = detail::parse_key_values(text, kWhat, 2, &version);
  if (!lines) return lines.error();
  // The secret's base32 text sits in these lines: wipe them on every way out.
  struct WipeLines {
    std::vector<detail::KeyValueLine>& lines;
    ~WipeLines() {
      for (auto& kv : lines) {
        wipe(kv.key);  // a secret line without its key has the secret here
        wipe(kv.value);
      }
    }
  } guard{lines.value()};
  const bool v1 = version == 1;
  Enrollment e;
  Device one;  // version 1: the one secret
  std::set<std::string> seen;
  bool have_kdf = false;
  for (auto& kv : *lines) {
    bool known =
        v1 ? std::find(std::begin(kKeysV1), std::end(kKeysV1), kv.key) != std::end(kKeysV1)
           : std::find(std::begin(kKeysV2), std::end(kKeysV2), kv.key) != std::end(kKeysV2);
    if (!known) return corrupt_line(kv, "unknown key");
    if (kv.key != "recovery" && kv.key != "device" && !seen.insert(kv.key).second) {
      return corrupt_line(kv, "'" + kv.key + "' given twice");
    }
    std::int64_t n = 0;
    if (kv.key == "id") {
      if (!detail::is_hex(kv.value, kIdBytes * 2)) return corrupt("bad id");
      e.id = kv.value;
    } else if (kv.key == "secret") {
      if (!parse_secret(kv.value, one.secret)) return corrupt("bad secret");
    } else if (kv.key == "algorithm") {
      auto a = parse_algorithm(kv.value);
      if (!a) return corrupt("bad algorithm");
      one.algorithm = *a;
    } else if (kv.key == "digits") {
      if (!parse_digits(kv.value, one.digits)) return corrupt("bad digits");
    } else if (kv.key == "period") {
      if (!parse_period(kv.value, one.period)) return corrupt("bad period");
    } else if (kv.key == "created") {
      if (!detail::parse_i64(kv.value, 0, kMaxTime, n)) return corrupt("bad created time");
      e.created = n;
    } else if (kv.key == "device") {
      Device d;
      if (!parse_device(kv.value, d)) return corrupt_line(kv, "bad device");
      if (e.find_device(d.name) != nullptr) return corrupt_line(kv, "device given twice");
      if (e.devices.size() >= static_cast<std::size_t>(kMaxDevices)) {
        return corrupt_line(kv, "more than " + std::to_string(kMaxDevices) + " devices");
      }
      e.devices.push_back(std::move(d));
    } else if (kv.key == "recovery-salt") {
      if (!detail::is_hex(kv.value, 32)) return corrupt("bad recovery-salt");
      e.recovery.salt = kv.value;
    } else if (kv.key == "recovery-kdf") {
      if (!parse_kdf_text(kv.value, e.recovery.kdf)) return corrupt_line(kv, "bad recovery-kdf");
      if (!kdf_within_builtin_cost(e.recovery.kdf)) {
        return corrupt_line(kv,
                            "recovery-kdf costs more than the built-in " + kdf_text(KdfParams{}));
      }
      have_kdf = true;
    } else if (kv.key == "recovery") {
      if (!detail::is_hex(kv.value, 64)) return corrupt("bad recovery hash");
      if (e.recovery.hashes.size() >= static_cast<std::size_t>(kMaxRecoveryCodes)) {
        return corrupt("more than 20 recovery codes");
      }
      e.recovery.hashes.push_back(kv.value);
    } else {
      return corrupt_line(kv, "unknown key");
    }
  }
  if (v1) {
    for (const char* key : {"id", "secret", "algorithm", "digits", "period", "created"}) {
      if (seen.count(key) == 0) return corrupt(std::string("missing '") + key + "'");
    }
    one.created = e.created;
    e.devices.push_back(std::move(one));
  } else {
    for (const char* key : {"id", "created"}) {
      if (seen.count(key) == 0) return corrupt(std::string("missing '") + key + "'");
    }
    if (e.devices.empty()) return corrupt("no device");
  }
  if (!e.recovery.hashes.empty() && (e.recovery.salt.empty() || !have_kdf)) {
    return corrupt("recovery hashes without salt or kdf");
  }
  // A salt or kdf without codes means nothing (and is not written back): no recovery set.
  if (e.recovery.hashes.empty()) e.recovery = RecoverySet{};
  return e;
}

}  // namespace pbx::totp

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

constexpr std::string_view kKeys[] = {"id",      "secret",  "algorithm",     "digits",
                                      "period",  "created", "recovery-salt", "recovery-kdf",
                                      "recovery"};

}  // namespace

Result<std::string> new_enrollment_id() {
  std::uint8_t b[kIdBytes];
  if (auto st = random_bytes(b, sizeof b); !st) return st.error();
  return detail::to_hex(b, sizeof b);
}

std::string serialize_enrollment(const Enrollment& e) {
  std::string secret = base32_encode(e.secret, false);
  std::string s;
  s.reserve(512 + e.recovery.hashes.size() * 80);
  s += "# pbx-mfa secret file: written by pbx-mfa, do not edit\n";
  s += "version 1\n";
  s += "id " + e.id + "\n";
  s += "secret " + secret + "\n";
  s += std::string("algorithm ") + algorithm_name(e.algorithm) + "\n";
  s += "digits " + std::to_string(e.digits) + "\n";
  s += "period " + std::to_string(e.period) + "\n";
  s += "created " + std::to_string(e.created) + "\n";
  if (!e.recovery.hashes.empty()) {
    s += "recovery-salt " + e.recovery.salt + "\n";
    s += "recovery-kdf " + kdf_text(e.recovery.kdf) + "\n";
    for (const auto& h : e.recovery.hashes) s += "recovery " + h + "\n";
  }
  s += "end\n";
  wipe(secret);
  return s;
}

Result<Enrollment> parse_enrollment(std::string_view text) {
  auto lines = detail::parse_key_values(text, kWhat);
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
  Enrollment e;
  std::set<std::string> seen;
  bool have_kdf = false;
  for (auto& kv : *lines) {
    if (std::find(std::begin(kKeys), std::end(kKeys), kv.key) == std::end(kKeys)) {
      return corrupt_line(kv, "unknown key");
    }
    if (kv.key != "recovery" && !seen.insert(kv.key).second) {
      return corrupt_line(kv, "'" + kv.key + "' given twice");
    }
    std::int64_t n = 0;
    if (kv.key == "id") {
      if (!detail::is_hex(kv.value, kIdBytes * 2)) return corrupt("bad id");
      e.id = kv.value;
    } else if (kv.key == "secret") {
      auto bytes = base32_decode(kv.value);
      if (!bytes || bytes->size() < 10 || bytes->size() > 128) return corrupt("bad secret");
      e.secret = std::move(bytes.value());
    } else if (kv.key == "algorithm") {
      auto a = parse_algorithm(kv.value);
      if (!a) return corrupt("bad algorithm");
      e.algorithm = *a;
    } else if (kv.key == "digits") {
      if (!detail::parse_i64(kv.value, kMinDigits, kMaxDigits, n)) return corrupt("bad digits");
      e.digits = static_cast<int>(n);
    } else if (kv.key == "period") {
      if (!detail::parse_i64(kv.value, 1, 300, n)) return corrupt("bad period");
      e.period = static_cast<int>(n);
    } else if (kv.key == "created") {
      if (!detail::parse_i64(kv.value, 0, INT64_C(1) << 40, n)) return corrupt("bad created time");
      e.created = n;
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
  for (const char* key : {"id", "secret", "algorithm", "digits", "period", "created"}) {
    if (seen.count(key) == 0) return corrupt(std::string("missing '") + key + "'");
  }
  if (!e.recovery.hashes.empty() && (e.recovery.salt.empty() || !have_kdf)) {
    return corrupt("recovery hashes without salt or kdf");
  }
  // A salt or kdf without codes means nothing (and is not written back): no recovery set.
  if (e.recovery.hashes.empty()) e.recovery = RecoverySet{};
  return e;
}

}  // namespace pbx::totp

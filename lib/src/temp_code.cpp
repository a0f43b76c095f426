#include "pbx/totp/temp_code.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pbx::totp {
namespace {

constexpr std::size_t kTempCodeLetters =
    static_cast<std::size_t>(kTempCodeGroups) * static_cast<std::size_t>(kRecoveryGroupSize);

bool valid_issuer(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace

bool valid_temp_code_reason(std::string_view reason) {
  if (reason.size() > kMaxTempCodeReason) return false;
  // Printable ASCII or well-formed UTF-8 (the state file is one line a key; the reason, set by
  // a helpdesk member, is read by root in logs and reports): no control characters, C0 or C1
  // (U+0080..U+009F, CSI among them), no line or paragraph separators, no bidi overrides.
  for (std::size_t i = 0; i < reason.size();) {
    const auto u = static_cast<unsigned char>(reason[i]);
    if (u < 0x80) {
      if (u < 0x20 || u == 0x7f) return false;
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (u >= 0xc2 && u <= 0xdf) {
      len = 2;
      cp = u & 0x1fU;
    } else if (u >= 0xe0 && u <= 0xef) {
      len = 3;
      cp = u & 0x0fU;
    } else if (u >= 0xf0 && u <= 0xf4) {
      len = 4;
      cp = u & 0x07U;
    } else {
      return false;
    }
    if (reason.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(reason[i + k]);
      if ((c & 0xc0U) != 0x80U) return false;
      cp = (cp << 6U) | (c & 0x3fU);
    }
    const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    const bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
    const bool c1 = cp >= 0x80 && cp <= 0x9f;
    const bool separator_or_bidi = (cp >= 0x2028 && cp <= 0x202e) ||
                                   (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f;
    if (overlong || surrogate || c1 || separator_or_bidi || cp > 0x10ffff) return false;
    i += len;
  }
  return true;
}

Result<IssuedTempCode> make_temp_code(std::int64_t now, std::int64_t ttl, int uses,
                                      std::string_view issuer, std::string_view reason,
                                      const KdfParams& kdf) {
  if (ttl < 1 || ttl > kTempCodeMaxTtl) {
    return make_error(Errc::kInvalid, "a temp code lasts 1 second to 72 hours");
  }
  if (uses < 1 || uses > kTempCodeMaxUses) {
    return make_error(Errc::kInvalid, "a temp code has 1 to 10 uses");
  }
  if (!valid_issuer(issuer)) return make_error(Errc::kInvalid, "bad issuer name");
  if (!valid_temp_code_reason(reason)) {
    return make_error(Errc::kInvalid,
                      "the reason must be printable text of at most 200 bytes, one line");
  }
  auto codes = generate_recovery_codes(1, kTempCodeGroups);
  if (!codes) return codes.error();
  auto set = hash_recovery_codes(*codes, kdf);
  if (!set) return set.error();
  IssuedTempCode out{std::move(codes->front()), {}};
  out.record.hash = std::move(set.value());
  out.record.issued = now;
  out.record.expires = now + ttl;
  out.record.uses_left = uses;
  out.record.issuer = issuer;
  out.record.reason = reason;
  // Spaces would not survive the state file's trimming at the ends: keep the text as typed
  // inside, trimmed outside.
  while (!out.record.reason.empty() && out.record.reason.back() == ' ')
    out.record.reason.pop_back();
  while (!out.record.reason.empty() && out.record.reason.front() == ' ') {
    out.record.reason.erase(0, 1);
  }
  return out;
}

bool looks_like_temp_code(std::string_view input) {
  SecretString n = normalize_recovery_code(input);
  std::string_view s = n.view();
  return s.size() == kTempCodeLetters &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

Result<bool> match_temp_code(const TempCode& code, std::string_view input) {
  if (code.hash.hashes.size() != 1) return make_error(Errc::kCorrupt, "temp code has no hash");
  auto idx = match_recovery_code(code.hash, input, {});
  if (!idx) return idx.error();
  return idx->has_value();
}

}  // namespace pbx::totp

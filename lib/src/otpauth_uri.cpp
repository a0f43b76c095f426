#include "pbx/totp/otpauth_uri.hpp"

#include <charconv>

#include "hex.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::totp {
namespace {

constexpr std::size_t kMaxUriSize = 4096;
constexpr int kMaxUriPeriod = 300;

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

Result<int> parse_int_param(std::string_view name, std::string_view text, int lo, int hi) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size() || v < lo || v > hi) {
    return make_error(Errc::kInvalid, "otpauth URI: " + std::string(name) + " must be " +
                                          std::to_string(lo) + " to " + std::to_string(hi));
  }
  return v;
}

}  // namespace

std::string percent_encode(std::string_view text) {
  return percent_encode(text, [](unsigned char c, std::size_t) { return unreserved(c); });
}

namespace {

// '+' means a space only in form-encoded query values; in the label it is a literal plus.
Result<std::string> decode(std::string_view text, bool plus_is_space) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) {
        return make_error(Errc::kInvalid, "otpauth URI: truncated %-escape");
      }
      int hi = detail::hex_value(text[i + 1]);
      int lo = detail::hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return make_error(Errc::kInvalid, "otpauth URI: bad %-escape");
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return make_error(Errc::kInvalid, "otpauth URI: NUL byte");
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');  // some generators encode spaces the form way
    } else if (c == '\0') {
      return make_error(Errc::kInvalid, "otpauth URI: NUL byte");
    } else {
      out.push_back(c);
    }
  }
  for (char ch : out) {
    auto u = static_cast<unsigned char>(ch);
    // Escaped control characters would reach terminals and logs: refuse them.
    if (u < 0x20 || u == 0x7F) return make_error(Errc::kInvalid, "otpauth URI: control character");
  }
  return out;
}

}  // namespace

Result<std::string> percent_decode(std::string_view text) { return decode(text, false); }

std::string build_otpauth_uri(const OtpParams& params) {
  std::string secret = base32_encode(params.secret, false);
  std::string uri = "otpauth://totp/";
  if (!params.issuer.empty()) {
    uri += percent_encode(params.issuer) + ":";
  } else if (params.account.find(':') != std::string::npos) {
    // Without a literal ':' the parser takes an escaped %3A as the separator, so an account
    // holding ':' would come back split into issuer and account: an empty issuer keeps it whole.
    uri += ":";
  }
  uri += percent_encode(params.account);
  uri += "?secret=" + secret;
  if (!params.issuer.empty()) uri += "&issuer=" + percent_encode(params.issuer);
  uri += "&algorithm=";
  uri += algorithm_name(params.algorithm);
  uri += "&digits=" + std::to_string(params.digits);
  uri += "&period=" + std::to_string(params.period);
  wipe(secret);
  return uri;
}

Result<OtpParams> parse_otpauth_uri(std::string_view uri) {
  if (uri.size() > kMaxUriSize) return make_error(Errc::kInvalid, "otpauth URI: longer than 4 KiB");
  for (char c : uri) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return make_error(Errc::kInvalid, "otpauth URI: control character");
  }
  constexpr std::string_view kScheme = "otpauth://";
  if (to_lower(uri.substr(0, kScheme.size())) != kScheme) {
    return make_error(Errc::kInvalid, "not an otpauth:// URI");
  }
  std::string_view rest = uri.substr(kScheme.size());
  std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return make_error(Errc::kInvalid, "otpauth URI: no label");
  std::string type = to_lower(rest.substr(0, slash));
  if (type == "hotp") {
    return make_error(Errc::kInvalid,
                      "otpauth URI: HOTP (counter) codes are not supported, only TOTP");
  }
  if (type != "totp") return make_error(Errc::kInvalid, "otpauth URI: unknown type (not totp)");
  rest = rest.substr(slash + 1);
  std::size_t q = rest.find('?');
  std::string_view label_enc = rest.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
  if (std::size_t hash = query.find('#'); hash != std::string_view::npos)
    query = query.substr(0, hash);

  // Split "ISSUER:ACCOUNT" at a literal ':' first, so an issuer holding an escaped ':' (as our
  // builder writes it) survives; only without one is an escaped %3A the separator.
  std::string_view issuer_enc;
  std::string_view account_enc = label_enc;
  if (std::size_t colon = label_enc.find(':'); colon != std::string_view::npos) {
    issuer_enc = label_enc.substr(0, colon);
    account_enc = label_enc.substr(colon + 1);
  } else if (std::size_t esc = label_enc.find("%3A"); esc != std::string_view::npos) {
    issuer_enc = label_enc.substr(0, esc);
    account_enc = label_enc.substr(esc + 3);
  } else if (std::size_t esc2 = label_enc.find("%3a"); esc2 != std::string_view::npos) {
    issuer_enc = label_enc.substr(0, esc2);
    account_enc = label_enc.substr(esc2 + 3);
  }
  auto label_issuer = decode(issuer_enc, false);
  if (!label_issuer) return label_issuer.error();
  auto account = decode(account_enc, false);
  if (!account) return account.error();
  OtpParams p;
  p.account = std::move(account.value());
  while (!p.account.empty() && p.account.front() == ' ') p.account.erase(0, 1);

  bool have_secret = false;
  bool have_issuer = false;
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    auto value =
        decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!value) return value.error();
    SecretString v(std::move(value.value()));
    if (key == "secret") {
      if (have_secret) return make_error(Errc::kInvalid, "otpauth URI: secret given twice");
      auto bytes = base32_decode(v.view());
      if (!bytes) return make_error(Errc::kInvalid, "otpauth URI: secret is not valid base32");
      if (bytes->size() < 10)
        return make_error(Errc::kInvalid, "otpauth URI: secret shorter than 80 bits");
      if (bytes->size() > 128)
        return make_error(Errc::kInvalid, "otpauth URI: secret longer than 1024 bits");
      p.secret = std::move(bytes.value());
      have_secret = true;
    } else if (key == "issuer") {
      p.issuer = v.str();
      have_issuer = true;
    } else if (key == "algorithm") {
      auto a = parse_algorithm(v.view());
      if (!a)
        return make_error(Errc::kInvalid, "otpauth URI: algorithm must be SHA1, SHA256 or SHA512");
      p.algorithm = *a;
    } else if (key == "digits") {
      auto d = parse_int_param("digits", v.view(), kMinDigits, kMaxDigits);
      if (!d) return d.error();
      p.digits = *d;
    } else if (key == "period") {
      auto d = parse_int_param("period", v.view(), 1, kMaxUriPeriod);
      if (!d) return d.error();
      p.period = *d;
    }
    // Other parameters (image, counter from other apps) are ignored, as apps do.
  }
  if (!have_secret) return make_error(Errc::kInvalid, "otpauth URI: no secret");
  if (!have_issuer) p.issuer = std::move(label_issuer.value());
  return p;
}

}  // namespace pbx::totp

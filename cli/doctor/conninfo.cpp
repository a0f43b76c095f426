// libpq's conninfo grammar (PostgreSQL 15, fe-connect.c: conninfo_parse, conninfo_uri_parse),
// kept to what doctor needs to decide: which keywords a conninfo names, and its hosts.
#include "conninfo.hpp"

#include <algorithm>
#include <cstddef>

namespace pbx::cli::doctor {
namespace {

using totp::Errc;
using totp::make_error;

// libpq uses isspace() in the C locale.
bool space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

totp::Error bad(const std::string& why) {
  return make_error(Errc::kInvalid, "pg_conninfo: " + why);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding of a URI part; %00 and a '%' without two hex digits are errors, '+' stays.
totp::Result<std::string> uri_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return bad("invalid percent-encoded token");
    int hi = hex_value(s[i + 1]);
    int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return bad("invalid percent-encoded token");
    if (hi == 0 && lo == 0) return bad("forbidden value %00 in percent-encoded value");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// key=value pairs separated by white space.
totp::Result<ConninfoParams> parse_key_values(std::string_view s) {
  ConninfoParams params;
  std::size_t i = 0;
  while (i < s.size()) {
    if (space(s[i])) {
      ++i;
      continue;
    }
    std::size_t name_start = i;
    while (i < s.size() && s[i] != '=' && !space(s[i])) ++i;
    std::string name(s.substr(name_start, i - name_start));
    while (i < s.size() && space(s[i])) ++i;
    if (i >= s.size() || s[i] != '=') return bad("missing '=' after a keyword");
    if (name.empty()) return bad("a value without a keyword");
    ++i;
    while (i < s.size() && space(s[i])) ++i;
    std::string value;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      for (;;) {
        if (i >= s.size()) return bad("unterminated quoted string");
        if (s[i] == '\\') {
          ++i;
          if (i < s.size()) value.push_back(s[i++]);
          continue;
        }
        if (s[i] == '\'') {
          ++i;
          break;
        }
        value.push_back(s[i++]);
      }
    } else {
      while (i < s.size() && !space(s[i])) {
        if (s[i] == '\\') {
          ++i;
          if (i < s.size()) value.push_back(s[i++]);
        } else {
          value.push_back(s[i++]);
        }
      }
    }
    params[name] = std::move(value);
  }
  return params;
}

// Stores a decoded URI part under `key`; an empty part is not stored (libpq: not given).
totp::Status store_decoded(ConninfoParams& params, const std::string& key, std::string_view raw) {
  if (raw.empty()) return totp::Ok{};
  auto v = uri_decode(raw);
  if (!v) return v.error();
  params[key] = std::move(*v);
  return totp::Ok{};
}

// postgresql://[user[:password]@][host][:port][,...][/dbname][?param=value&...]
totp::Result<ConninfoParams> parse_uri(std::string_view s) {
  ConninfoParams params;
  std::size_t p = 0;
  // Credentials: libpq looks for '@' before the first '/' (not '?').
  std::size_t at = s.find_first_of("@/");
  if (at != std::string_view::npos && s[at] == '@') {
    std::string_view cred = s.substr(0, at);
    std::size_t colon = cred.find(':');
    if (auto st = store_decoded(params, "user", cred.substr(0, colon)); !st) return st.error();
    if (colon != std::string_view::npos) {
      if (auto st = store_decoded(params, "password", cred.substr(colon + 1)); !st) {
        return st.error();
      }
    }
    p = at + 1;
  }

  std::string hosts;
  std::string ports;
  char stop = '\0';
  for (;;) {
    if (p < s.size() && s[p] == '[') {  // IPv6 address
      std::size_t close = s.find(']', p);
      if (close == std::string_view::npos) return bad("missing ']' in an IPv6 host address");
      if (close == p + 1) return bad("empty IPv6 host address");
      hosts.append(s.substr(p + 1, close - p - 1));
      p = close + 1;
      if (p < s.size() && s[p] != ':' && s[p] != '/' && s[p] != '?' && s[p] != ',') {
        return bad("unexpected character after an IPv6 host address");
      }
    } else {
      std::size_t end = s.find_first_of(":/?,", p);
      if (end == std::string_view::npos) end = s.size();
      hosts.append(s.substr(p, end - p));
      p = end;
    }
    stop = p < s.size() ? s[p] : '\0';
    if (stop == ':') {
      std::size_t end = s.find_first_of("/?,", p + 1);
      if (end == std::string_view::npos) end = s.size();
      ports.append(s.substr(p + 1, end - p - 1));
      p = end;
      stop = p < s.size() ? s[p] : '\0';
    }
    if (stop != ',') break;
    ++p;
    hosts.push_back(',');
    ports.push_back(',');
  }
  if (auto st = store_decoded(params, "host", hosts); !st) return st.error();
  if (auto st = store_decoded(params, "port", ports); !st) return st.error();

  if (stop == '/') {
    std::size_t end = s.find('?', p + 1);
    if (end == std::string_view::npos) end = s.size();
    if (auto st = store_decoded(params, "dbname", s.substr(p + 1, end - p - 1)); !st) {
      return st.error();
    }
    p = end;
    stop = p < s.size() ? s[p] : '\0';
  }
  if (stop == '?') {
    std::string_view query = s.substr(p + 1);
    while (!query.empty()) {
      std::size_t amp = query.find('&');
      std::string_view item = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      std::size_t eq = item.find('=');
      if (eq == std::string_view::npos)
        return bad("missing key/value separator '=' in a URI query");
      if (item.find('=', eq + 1) != std::string_view::npos) {
        return bad("extra key/value separator '=' in a URI query");
      }
      auto key = uri_decode(item.substr(0, eq));
      if (!key) return key.error();
      if (key->empty()) return bad("a URI query parameter without a name");
      auto value = uri_decode(item.substr(eq + 1));
      if (!value) return value.error();
      if (*key == "ssl" && *value == "true") {
        params["sslmode"] = "require";
      } else {
        params[*key] = std::move(*value);
      }
    }
  }
  return params;
}

std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = list.find(',', start);
    out.push_back(list.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace

totp::Result<ConninfoParams> parse_conninfo(std::string_view text) {
  for (std::string_view prefix : {"postgresql://", "postgres://"}) {
    if (text.substr(0, prefix.size()) == prefix) return parse_uri(text.substr(prefix.size()));
  }
  return parse_key_values(text);
}

std::vector<ConninfoHost> conninfo_hosts(const ConninfoParams& params) {
  auto given = [&](const char* key) {
    auto it = params.find(key);
    return it == params.end() || it->second.empty() ? std::vector<std::string>{}
                                                    : split_commas(it->second);
  };
  std::vector<std::string> hosts = given("host");
  std::vector<std::string> addrs = given("hostaddr");
  std::size_t n = std::max<std::size_t>({hosts.size(), addrs.size(), 1});
  std::vector<ConninfoHost> out;
  for (std::size_t i = 0; i < n; ++i) {
    std::string host = i < hosts.size() ? hosts[i] : "";
    std::string addr = i < addrs.size() ? addrs[i] : "";
    if (!addr.empty()) {
      out.push_back({host.empty() ? addr : host, true});
    } else if (!host.empty()) {
      out.push_back({host, host.front() != '/' && host.front() != '@'});
    } else {
      out.push_back({"", false});
    }
  }
  return out;
}

}  // namespace pbx::cli::doctor

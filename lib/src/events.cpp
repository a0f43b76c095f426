#include "pbx/totp/events.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <iterator>
#include <nlohmann/json.hpp>

namespace pbx::totp {
namespace {

using nlohmann::json;

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: shortest form, no
// surrogates, at most U+10FFFF), 0 when there is none.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// A field as the log keeps it: at most `max` bytes of well-formed UTF-8, a byte that is not
// as U+FFFD, every control character (C0, DEL, C1) as '?', never cut inside a character. The
// user name and the remote host are a remote attacker's text: an escape sequence in them must
// not reach the terminal of `pbx-mfa events` or a mail a notify command builds from the JSON
// (JSON escaping alone gives them back raw to every reader), and the cut is made after the
// replacement so that the field a reader gets back is never over the limit (it would read
// the whole event as garbage: a user name of bytes that are not UTF-8 hid the event).
std::string clean(std::string_view s, std::size_t max) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_length(s, i);
    std::string_view piece = n == 0 ? kReplacement : s.substr(i, n);
    const auto c = static_cast<unsigned char>(s[i]);
    const bool control = (n == 1 && (c < 0x20 || c == 0x7F)) ||
                         (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) <= 0x9F);
    if (control) piece = "?";
    if (out.size() + piece.size() > max) break;
    out.append(piece);
    i += n == 0 ? 1 : n;
  }
  return out;
}

// Parses "YYYY-MM-DDTHH:MM:SSZ".
bool parse_iso(std::string_view s, std::int64_t& out) {
  if (s.size() != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != 'Z') {
    return false;
  }
  auto num = [&](std::size_t at, std::size_t len, int& v) {
    auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + len, v);
    return ec == std::errc{} && p == s.data() + at + len;
  };
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) ||
      !num(17, 2, se)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  out = static_cast<std::int64_t>(timegm(&tm));
  return true;
}

}  // namespace

const EventKind* find_event_kind(std::string_view name) noexcept {
  for (const EventKind& k : kEventKinds) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

bool event_entry_matches(std::string_view entry, std::string_view kind) noexcept {
  if (entry == "all") return true;
  if (kind == entry) return true;
  return kind.size() > entry.size() && kind.substr(0, entry.size()) == entry &&
         kind[entry.size()] == '-';
}

bool entry_names_events(std::string_view entry) noexcept {
  return entry == "all" ||
         std::any_of(std::begin(kEventKinds), std::end(kEventKinds),
                     [&](const EventKind& k) { return event_entry_matches(entry, k.name); });
}

std::string event_host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

Event make_event(std::string_view kind, const Clock& clock) {
  Event e;
  e.time = clock.now();
  e.host = event_host_name();
  e.event = kind;
  return e;
}

std::string iso_time(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (gmtime_r(&tt, &tm) == nullptr) return "";
  char buf[32] = {};
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "";
  return buf;
}

std::string event_to_json(const Event& e) {
  // An ordered object so every line has the same field order (easy to read, easy to grep).
  nlohmann::ordered_json j;
  j["time"] = iso_time(e.time);
  j["host"] = clean(e.host, kMaxEventField);
  j["service"] = clean(e.service, kMaxEventField);
  j["user"] = clean(e.user, kMaxEventField);
  j["rhost"] = clean(e.rhost, kMaxEventField);
  j["event"] = clean(e.event, kMaxEventField);
  j["actor"] = clean(e.actor, kMaxEventField);
  j["detail"] = clean(e.detail, kMaxEventDetail);
  // clean() left only UTF-8; replace all the same: never an exception.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<Event> event_from_json(std::string_view line) {
  auto j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(Errc::kCorrupt, "not a JSON object");
  Event e;
  auto text = [&](const char* key, std::string& out, std::size_t max) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return false;
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > max) return false;
    out = clean(s, max);  // a line from another writer (the database) is cleaned alike
    return true;
  };
  std::string time;
  if (!text("time", time, 32) || !parse_iso(time, e.time) ||
      !text("host", e.host, kMaxEventField) || !text("service", e.service, kMaxEventField) ||
      !text("user", e.user, kMaxEventField) || !text("rhost", e.rhost, kMaxEventField) ||
      !text("event", e.event, kMaxEventField) || !text("actor", e.actor, kMaxEventField) ||
      !text("detail", e.detail, kMaxEventDetail)) {
    return make_error(Errc::kCorrupt, "not an event (a field is missing or not text)");
  }
  return e;
}

}  // namespace pbx::totp

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

std::string cut(std::string_view s, std::size_t max) {
  if (s.size() <= max) return std::string(s);
  // Never cut inside a UTF-8 sequence: back off over continuation bytes.
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
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

Event make_event(std::string_view kind, const Clock& clock) {
  Event e;
  e.time = clock.now();
  e.host = host_name();
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
  j["host"] = cut(e.host, kMaxEventField);
  j["service"] = cut(e.service, kMaxEventField);
  j["user"] = cut(e.user, kMaxEventField);
  j["rhost"] = cut(e.rhost, kMaxEventField);
  j["event"] = cut(e.event, kMaxEventField);
  j["actor"] = cut(e.actor, kMaxEventField);
  j["detail"] = cut(e.detail, kMaxEventDetail);
  // Not UTF-8 (a user name or host name of raw bytes): U+FFFD, never an exception.
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
    out = s;
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

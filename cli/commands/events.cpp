// events: the security event log (pbx-mfa(1) EVENTS) — what matches --since and --user, as
// readable lines or JSON lines; --follow keeps reading it every kFollowPollMs, and with --notify
// runs notify_command per new event (notify.hpp) instead of printing.
#include "events.hpp"

#include <signal.h>

#include <cctype>
#include <charconv>
#include <ctime>
#include <limits>
#include <ostream>

#include "commands.hpp"
#include "duration.hpp"
#include "notify.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::cli {
namespace {

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `at` into `out`.
bool digits(std::string_view s, std::size_t& at, std::size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[at + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  at += n;
  return true;
}

bool take(std::string_view s, std::size_t& at, char c) {
  if (at < s.size() && s[at] == c) {
    ++at;
    return true;
  }
  return false;
}

totp::Error not_a_time(std::string_view text) {
  static constexpr totp::EscapeSet kShown{"", 64, "..."};
  return totp::make_error(totp::Errc::kInvalid,
                          "--since " + totp::escape_field(text, kShown) +
                              ": not a time (2026-12-05, 2026-12-05T03:00, 2026-12-05T03:00:00Z, "
                              "or a duration ago: 30m, 2h, 7d)");
}

// "30m", "2h", "7d": that long before `now`.
std::optional<std::int64_t> parse_duration(std::string_view t, std::int64_t now) {
  if (t.size() < 2) return std::nullopt;
  auto unit_or =
      duration_unit(static_cast<char>(std::tolower(static_cast<unsigned char>(t.back()))),
                    /*weeks=*/true);
  if (!unit_or) return std::nullopt;
  const std::int64_t unit = *unit_or;
  std::string_view number = t.substr(0, t.size() - 1);
  if (number.size() > 12) return std::nullopt;
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
  if (ec != std::errc() || end != number.data() + number.size() || n < 0) return std::nullopt;
  constexpr std::int64_t kMaxAgo = std::int64_t{100} * 366 * 86400;  // a century
  if (n > kMaxAgo / unit) return std::nullopt;
  return std::max<std::int64_t>(0, now - n * unit);
}

std::string local_time(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (localtime_r(&tt, &tm) == nullptr) return totp::iso_time(t);
  char buf[64];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm) == 0) return totp::iso_time(t);
  std::string s = buf;
  // +0100 -> +01:00 (RFC 3339)
  if (s.size() >= 5 && (s[s.size() - 5] == '+' || s[s.size() - 5] == '-')) {
    s.insert(s.size() - 2, ":");
  }
  return s;
}

std::string token(std::string_view s) {
  static constexpr totp::EscapeSet kToken{" ", totp::kMaxEventField, "..."};
  return totp::escape_field(s, kToken);
}

// Blocks SIGINT and SIGTERM while following: they are taken with sigtimedwait between reads,
// so one arriving at any moment ends the loop; the old mask comes back afterwards.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~StopSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // Waits up to `ms`; true when a stop signal came.
  bool wait(int ms) {
    timespec ts{ms / 1000, static_cast<long>(ms % 1000) * 1000000L};
    for (;;) {
      int sig = ::sigtimedwait(&set_, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) return true;
      if (sig < 0 && errno == EINTR) continue;  // another signal: the rest of the wait is lost
      return false;
    }
  }

 private:
  sigset_t set_{};
  sigset_t old_{};
};

struct EventsOptions {
  std::string since;
  std::string user;
  bool json = false;
  bool follow = false;
  bool notify = false;
};

// Lines that were not events, and the database store's warning (only this host's file could
// be read), on stderr; a warning is said again only when it changes.
void say_page_problems(Session& s, const totp::EventPage& page, std::string& last_warning) {
  if (page.skipped > 0) {
    s.err() << "pbx-mfa: events: " << page.skipped
            << " line(s) of the event log are not events (skipped)" << std::endl;
  }
  if (page.warning != last_warning) {
    if (!page.warning.empty()) s.err() << "pbx-mfa: events: warning: " << page.warning << std::endl;
    last_warning = page.warning;
  }
}

void print_events(Session& s, const std::vector<totp::Event>& events, bool json) {
  for (const auto& e : events) {
    s.out() << (json ? totp::event_to_json(e) : event_line(e)) << "\n";
  }
  s.out().flush();
}

int run_events(Session& s, const EventsOptions& o) {
  if (!s.is_root()) {
    return fail(s, kExitStore,
                "events needs root: the event log is root's alone (run it as root or with sudo)");
  }
  totp::EventQuery query;
  query.user = o.user;
  if (!o.since.empty()) {
    auto since = parse_since(o.since, s.env.clock->now());
    if (!since) return fail(s, kExitUsage, since.error().message);
    query.since = *since;
  }
  std::optional<Notifier> notifier;
  if (o.notify) {
    if (s.config.notify_command.empty()) {
      return fail(s, kExitUsage,
                  "--notify: notify_command is not set in " + s.config_path +
                      ": there is nothing to run (notify_command in pbx-mfa.conf(5))");
    }
    if (auto ok = check_notify_command(s.config.notify_command, s.config.trusted_uid); !ok) {
      return fail(s, exit_for(ok.error()), "--notify: " + ok.error().message);
    }
  }
  auto store = open_store(s);
  if (!store) return fail(s, store.error());

  totp::EventQuery first = query;
  if (o.notify) {
    // Only the end of the log is wanted: match nothing, so the log is streamed, not held (the
    // file reader's cursor passes every line read; the database's goes to the table's end).
    first.since = std::numeric_limits<std::int64_t>::max();
  }
  auto page = (*store)->read_events(first, totp::EventCursor{});
  if (!page) return fail(s, page.error());
  std::string last_warning;
  say_page_problems(s, *page, last_warning);
  if (!o.follow) {
    // The database answers in bounded pages: read on until one comes back empty.
    for (;;) {
      print_events(s, page->events, o.json);
      if (!s.out()) return kExitStore;
      if (page->events.empty()) break;
      auto more = (*store)->read_events(query, page->next);
      if (!more) return fail(s, more.error());
      say_page_problems(s, *more, last_warning);
      page = std::move(more);
    }
    return kExitOk;
  }

  totp::EventCursor cursor = page->next;
  if (o.notify) {
    // Alerts are for what happens from now on: the events already in the log were there before
    // this service started (or restarted) and are not sent again.
    std::string kinds;
    for (const auto& k : s.config.notify_events) kinds += (kinds.empty() ? "" : ",") + k;
    s.err() << "pbx-mfa: notify: following the event log (store " << s.config.store
            << ") from its end; notify_command " << s.config.notify_command
            << " runs for notify_events " << kinds << " (notify_timeout " << s.config.notify_timeout
            << " s, notify_rate " << s.config.notify_rate << " per kind per hour)" << std::endl;
    notifier.emplace(NotifyOptions::from(s.config), *s.env.clock, s.err());
  } else {
    print_events(s, page->events, o.json);
  }

  const std::string this_host = totp::event_host_name();
  StopSignals stop;
  std::string last_error;
  while (!stop.wait(kFollowPollMs)) {
    if (notifier) notifier->poll();
    auto next = (*store)->read_events(query, cursor);
    if (!next) {
      // A service keeps going (the database may come back); each new problem is said once.
      if (next.error().message != last_error) {
        last_error = next.error().message;
        s.err() << "pbx-mfa: events: " << last_error << " (trying again)" << std::endl;
      }
      continue;
    }
    if (!last_error.empty()) {
      s.err() << "pbx-mfa: events: the event log reads again" << std::endl;
      last_error.clear();
    }
    cursor = next->next;
    say_page_problems(s, *next, last_warning);
    if (notifier) {
      for (const auto& e : next->events) {
        // On PostgreSQL every server follows the fleet's one table: each alerts only the events
        // its own host recorded (and its file's, which only it can read), so running the unit
        // on every server sends each event once and none is missed.
        if (s.config.store != "files" && e.host != this_host) continue;
        notifier->notify(e);
      }
    } else if (!next->events.empty()) {
      print_events(s, next->events, o.json);
      if (!s.out()) return kExitStore;  // whoever read the output has gone
    }
  }
  if (notifier) {
    notifier->poll();
    notifier->stop();
    const auto& c = notifier->counts();
    s.err() << "pbx-mfa: notify: stopped; notify_command ran " << c.started << " time(s), "
            << c.failed << " failed, " << c.killed << " killed, " << c.suppressed
            << " over notify_rate, " << c.dropped << " dropped" << std::endl;
  }
  return kExitOk;
}

}  // namespace

totp::Result<std::int64_t> parse_since(std::string_view text, std::int64_t now) {
  std::string_view t = totp::trim(text);
  if (t.empty()) return not_a_time(text);
  if (auto ago = parse_duration(t, now)) return *ago;

  std::size_t at = 0;
  std::tm tm{};
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!digits(t, at, 4, year) || !take(t, at, '-') || !digits(t, at, 2, month) ||
      !take(t, at, '-') || !digits(t, at, 2, day)) {
    return not_a_time(text);
  }
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) {
    return not_a_time(text);
  }
  bool has_zone = false;
  int offset = 0;  // seconds east of UTC
  if (at < t.size()) {
    if (!(take(t, at, 'T') || take(t, at, 't') || take(t, at, ' '))) return not_a_time(text);
    if (!digits(t, at, 2, hour) || !take(t, at, ':') || !digits(t, at, 2, minute)) {
      return not_a_time(text);
    }
    if (take(t, at, ':')) {
      if (!digits(t, at, 2, second)) return not_a_time(text);
      if (take(t, at, '.') || take(t, at, ',')) {  // a fraction: the second it is in
        std::size_t start = at;
        while (at < t.size() && t[at] >= '0' && t[at] <= '9') ++at;
        if (at == start) return not_a_time(text);
      }
    }
    if (hour > 23 || minute > 59 || second > 59) return not_a_time(text);
    if (take(t, at, 'Z') || take(t, at, 'z')) {
      has_zone = true;
    } else if (at < t.size() && (t[at] == '+' || t[at] == '-')) {
      int sign = t[at] == '-' ? -1 : 1;
      ++at;
      int oh = 0;
      int om = 0;
      if (!digits(t, at, 2, oh)) return not_a_time(text);
      if (at < t.size()) {
        take(t, at, ':');
        if (!digits(t, at, 2, om)) return not_a_time(text);
      }
      if (oh > 23 || om > 59) return not_a_time(text);
      has_zone = true;
      offset = sign * (oh * 3600 + om * 60);
    }
    if (at != t.size()) return not_a_time(text);
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  std::time_t result = 0;
  if (has_zone) {
    result = ::timegm(&tm) - offset;
  } else {
    tm.tm_isdst = -1;  // local time: whatever daylight saving time says on that day
    result = std::mktime(&tm);
    if (result == static_cast<std::time_t>(-1)) return not_a_time(text);
  }
  return std::max<std::int64_t>(0, static_cast<std::int64_t>(result));
}

std::string event_line(const totp::Event& e) {
  static constexpr totp::EscapeSet kDetail{"", totp::kMaxEventDetail, "..."};
  std::string line = local_time(e.time);
  for (const std::string* f : {&e.host, &e.service, &e.user, &e.rhost, &e.event, &e.actor}) {
    line += ' ';
    line += token(*f);
  }
  line += ' ';
  line += totp::escape_field(e.detail, kDetail);
  return line;
}

Command add_events(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "events",
      "show the security event log: logins with recovery, temp or break-glass codes, "
      "lockouts, enrollments, resets (root)");
  auto o = std::make_shared<EventsOptions>();
  auto* since = sub->add_option("--since", o->since,
                                "only events since TIME: 2026-12-05, 2026-12-05T03:00 (local "
                                "time), 2026-12-05T03:00:00Z, or a duration ago (30m, 2h, 7d)");
  since->type_name("TIME");
  sub->add_option("--user", o->user, "only the events of this user");
  auto* json = sub->add_flag("--json", o->json, "one JSON object per line");
  auto* follow = sub->add_flag("--follow", o->follow,
                               "keep printing new events as they are recorded (until SIGINT or "
                               "SIGTERM)");
  sub->add_flag("--notify", o->notify,
                "with --follow: run notify_command for each new event notify_events names, "
                "starting at the end of the log (the pbx-mfa-notify service)")
      ->needs(follow)
      ->excludes(json)
      ->excludes(since);
  sub->footer(
      "Readable lines: TIME HOST SERVICE USER RHOST EVENT ACTOR DETAIL (local time, '-' for an "
      "empty field). The kinds of events are listed in pbx-mfa(1) EVENTS.");
  return {sub, [o](Session& s) -> int { return run_events(s, *o); }};
}

}  // namespace pbx::cli

#include "events_record.hpp"

#include <memory>
#include <ostream>

#include "pbx/totp/events.hpp"
#include "session.hpp"

namespace pbx::cli {

std::string event_actor(const Session& s) {
  if (s.helpdesk) return s.helpdesk->name;
  // Root through sudo: whoever ran sudo (only a name in the log: SUDO_* are trusted to restrict
  // root, never to grant anything).
  if (s.is_root() && !s.env.sudo_user.empty()) return s.env.sudo_user;
  return s.env.invoking_user;
}

void record_event(Session& s, std::string_view kind, const std::string& user,
                  const std::string& detail, totp::Store* store, EventLog where) {
  if (!s.is_root()) return;  // see events_record.hpp
  if (s.env.clock == nullptr) return;
  totp::Event e = totp::make_event(kind, *s.env.clock);
  e.service = "pbx-mfa";
  e.user = user;
  e.actor = event_actor(s);
  e.detail = detail;

  std::unique_ptr<totp::Store> opened;
  if (store == nullptr || where == EventLog::kThisHost) {
    totp::Config config = s.config;
    if (where == EventLog::kThisHost) config.store = "files";
    auto o = totp::open_store(config);
    if (!o) {
      s.err() << "pbx-mfa: warning: the event was not recorded: " << o.error().message << "\n";
      return;
    }
    opened = std::move(o.value());
    store = opened.get();
  }
  if (auto st = store->append_event(e); !st) {
    s.err() << "pbx-mfa: warning: the event was not recorded: " << st.error().message << "\n";
  }
}

std::optional<int> count_events(Session& s, std::string_view kind, const std::string& actor,
                                std::int64_t since, int enough) {
  auto store = totp::open_store(s.config);
  if (!store) return std::nullopt;
  totp::EventQuery query;
  query.since = since;
  int n = 0;
  totp::EventCursor cursor;
  // The database answers in bounded pages: read on until one comes back empty.
  for (;;) {
    auto page = (*store)->read_events(query, cursor);
    if (!page) return std::nullopt;
    if (page->events.empty()) return n;
    for (const auto& e : page->events) {
      if (e.event == kind && e.actor == actor && ++n >= enough) return n;
    }
    cursor = page->next;
  }
}

}  // namespace pbx::cli

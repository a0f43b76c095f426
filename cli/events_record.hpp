// The security event of a CLI action (events.hpp, pbx-mfa(1) EVENTS): one place that builds it
// (service "pbx-mfa", the actor) and appends it to the store's event log.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pbx/totp/store.hpp"

namespace pbx::cli {

struct Session;

// Who ran the command, for an event's actor: the helpdesk member in helpdesk mode, else the
// user who ran sudo (SUDO_USER) when root runs through sudo, else the name of the real uid.
std::string event_actor(const Session& s);

// Where a CLI event goes.
enum class EventLog {
  kStore,     // the store's log (files: state_dir/.events.log; the database: its table)
  kThisHost,  // this host's file in state_dir, whatever the store (break-glass: per host, and
              // made for when the database is down)
};

// Records the event `kind` (a row of kEventKinds) about `user` with `detail` (words; never a
// code, secret or password) after the action has happened: in `store` when given, else in a
// store opened from the session's config. The action is done, so a failure to record changes
// neither it nor the exit status: root gets one warning line on stderr ("pbx-mfa: warning: the
// event was not recorded: ..."). A process that is not root records nothing and says nothing:
// the event log is root's (a 0600 file, the database's credentials), so it could only fail —
// the audit line in syslog still tells.
void record_event(Session& s, std::string_view kind, const std::string& user,
                  const std::string& detail, totp::Store* store = nullptr,
                  EventLog where = EventLog::kStore);

// How many events of `kind` by `actor` the store's log holds from `since` on, counting up to
// `enough` (it stops reading there); nullopt when the log cannot be read.
std::optional<int> count_events(Session& s, std::string_view kind, const std::string& actor,
                                std::int64_t since, int enough);

}  // namespace pbx::cli

// Security events: the notable outcomes of logins and CLI actions, kept in an event log (one
// JSON object per line) for `pbx-mfa events`, its alerts and an auditor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::totp {

// One event. Never a code, a secret or a password: `detail` says what happened in words
// ("device phone2", "7 recovery codes left", "temp code issued by helen").
struct Event {
  std::int64_t time = 0;  // Unix time; JSON: ISO 8601 UTC ("2026-12-05T03:12:07Z")
  std::string host;       // the host name of the server that recorded it
  std::string service;    // the PAM service of a login ("sshd"), "pbx-mfa" for the CLI
  std::string user;       // whom it concerns
  std::string rhost;      // the remote host of a login (may be empty)
  std::string event;      // a kind of kEventKinds
  std::string actor;      // who ran the CLI action (empty for a login)
  std::string detail;     // printable text, may be empty
  bool operator==(const Event&) const = default;
};

// Where an event comes from.
enum class EventSource { kLogin, kCli };

// Every kind of event, in the order of pbx-mfa(1) EVENTS. A login that is accepted with the
// user's own code, or refused as a wrong code, records none (the common path writes nothing).
struct EventKind {
  std::string_view name;
  EventSource source;
  std::string_view help;  // one line, for the man page
};

// clang-format off
inline constexpr EventKind kEventKinds[] = {
    {"recovery-code-accepted", EventSource::kLogin, "a login with a recovery code"},
    {"temp-code-accepted", EventSource::kLogin, "a login with a temporary access code"},
    {"break-glass-accepted", EventSource::kLogin, "a login with a break-glass code (database unreachable)"},
    {"break-glass-locked", EventSource::kLogin, "wrong break-glass codes locked break-glass on this host"},
    {"locked-out", EventSource::kLogin, "a wrong or replayed code locked the user out"},
    {"enrolled-at-login", EventSource::kLogin, "the user enrolled inside a login (enroll_at_login)"},
    {"enrolled", EventSource::kCli, "pbx-mfa enroll or import saved an enrollment"},
    {"reset", EventSource::kCli, "pbx-mfa reset removed an enrollment"},
    {"unlock", EventSource::kCli, "pbx-mfa unlock cleared failures and lockout"},
    {"device-added", EventSource::kCli, "pbx-mfa device add"},
    {"device-removed", EventSource::kCli, "pbx-mfa device remove"},
    {"recovery-codes-replaced", EventSource::kCli, "pbx-mfa recovery-codes made new codes"},
    {"temp-code-issued", EventSource::kCli, "pbx-mfa temp-code issued a temporary access code"},
    {"temp-code-revoked", EventSource::kCli, "pbx-mfa temp-code --revoke ended one"},
    {"required", EventSource::kCli, "pbx-mfa require switched two-factor on for the user"},
    {"not-required", EventSource::kCli, "pbx-mfa require --off removed that mark"},
    {"break-glass-issued", EventSource::kCli, "pbx-mfa break-glass made new break-glass codes"},
    {"helpdesk-refused", EventSource::kCli, "a helpdesk member was refused an action"},
    {"fleet-key-rotated", EventSource::kCli, "pbx-mfa db rotate-key re-sealed the database's rows under a new fleet key"},
};
// clang-format on

// The kind named `name`, or nullptr.
const EventKind* find_event_kind(std::string_view name) noexcept;

// notify_events: an entry matches an event kind of the same name, or whose name starts with the
// entry and a dash ("temp-code" matches temp-code-accepted, -issued and -revoked); "all"
// matches every kind. An entry that matches no kind is a config error (config.cpp).
bool event_entry_matches(std::string_view entry, std::string_view kind) noexcept;
bool entry_names_events(std::string_view entry) noexcept;

// A new event of `kind` at the clock's time on this host (service, user and the rest are the
// caller's to fill in).
Event make_event(std::string_view kind, const Clock& clock);
// This host's name as make_event records it (gethostname).
std::string event_host_name();

// One line of JSON (no newline): the fields of Event in that order, all present (empty text as
// ""), time as ISO 8601 UTC. Bytes that are not UTF-8 become U+FFFD and control characters
// (C0, DEL, C1) '?' (here and in event_from_json: no reader gets an escape sequence back); then
// fields are cut to kMaxEventField bytes (detail: kMaxEventDetail), never inside a character.
inline constexpr std::size_t kMaxEventField = 256;
inline constexpr std::size_t kMaxEventDetail = 1024;
std::string event_to_json(const Event& e);
// The reverse; kCorrupt for a line that is not such an object.
Result<Event> event_from_json(std::string_view line);
// "2026-12-05T03:12:07Z"
std::string iso_time(std::int64_t t);

// Reading the event log, oldest first: the events at or after `since`, of `user` when not empty.
struct EventQuery {
  std::int64_t since = 0;
  std::string user;
};

// Where a reader got to, so that a follower reads each event once (`pbx-mfa events --follow`).
// Opaque to callers; a default one starts at the beginning.
struct EventCursor {
  bool started = false;
  std::int64_t db_id = 0;      // the database: the highest id read
  std::uint64_t file_ino = 0;  // the event file: the inode and offset read up to
  std::int64_t file_offset = 0;
  // and its birth time (ns, 0 where the filesystem has none): ext4 gives a rotated-away file's
  // inode number to the next .events.log, so the number alone may name another file.
  std::int64_t file_birth = 0;
};

struct EventPage {
  std::vector<Event> events;
  EventCursor next;  // pass it to the next read for the events after these
  int skipped = 0;   // lines that were not events (a torn last line is not counted: it is re-read)
  // The database store, when it could read only this host's file (the database cannot be
  // reached, or has no events table yet): why, for the reader to show. Empty otherwise.
  std::string warning;
};

}  // namespace pbx::totp

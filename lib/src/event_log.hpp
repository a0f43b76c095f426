// The event log of one host: `state_dir`/.events.log, one JSON event per line, appended with
// O_APPEND by any process that records an event, rotated to .events.log.1 at events_max_size.
#pragma once

#include <string>

#include "pbx/totp/config.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::totp::detail {

// Dot names: no user's state file can have one (file_name_for_user escapes a leading dot).
std::string event_log_path(const Config& config);

// Appends one line (creating state_dir and the file, root-only, when missing) and flushes it
// to disk (fdatasync): events are rare, and one that was recorded should survive a crash.
// Rotates first when the line would take the file past events_max_size (under .events.lock).
Status append_event_file(const Config& config, const Event& event);

// Events after `from` (.events.log.1, then .events.log; a follower whose file was rotated away
// finishes it first) that match `query`. A missing log is no events. A torn last line (being
// written) is left for the next read.
Result<EventPage> read_event_file(const Config& config, const EventQuery& query,
                                  const EventCursor& from);

// Does `e` match `query`?
bool event_matches(const Event& e, const EventQuery& query) noexcept;

}  // namespace pbx::totp::detail

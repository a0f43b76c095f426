// The event log of the database store: the table pbx_mfa_event (schema version 4), one row per
// event, written by every server of the fleet and read by any of them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/events.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::totp::detail {

class PgLink;

// The table and its index (db init, db migrate). `at` is Event::time, the recording host's
// clock; `recorded` is the database server's. The servers need only INSERT and SELECT on it
// (an identity column needs no grant on its sequence).
extern const char* const kEventTableSql;

// Inserts one event, in a statement of its own (never inside a state transaction): text
// cleaned and cut by db_event_text (PostgreSQL text refuses bad UTF-8 and NUL).
// Inserts are serialized (a transaction-scoped advisory lock), so ids become visible in
// increasing order and a reader that has seen id N never later finds a smaller new one.
Status db_append_event(PgLink& db, const Event& event);

struct DbEventRows {
  std::vector<Event> events;
  std::int64_t last_id = 0;  // the highest id read (the `after` given when none)
  int skipped = 0;           // rows that are not events of ours (forged by hand): skipped
};

// The rows after id `after` matching `query`, by id, in exchanges of kEventChunk rows each
// (each with its own deadline), at most kMaxEventRows per call (call again from last_id).
inline constexpr int kEventChunk = 1000;
inline constexpr int kMaxEventRows = 100000;
Result<DbEventRows> db_read_events(PgLink& db, const EventQuery& query, std::int64_t after);

// Whether the database has no events table (a schema before version 4): the caller then keeps
// to this host's file. An error when that cannot be asked.
Result<bool> db_event_table_missing(PgLink& db);

// `text` as the table holds it and as its reader returns it, cleaned as events.hpp cleans an
// event's fields: bytes that are not UTF-8 become U+FFFD, control characters (C0 with NUL,
// DEL, C1) '?'; then at most `cap` bytes, never cut inside a character.
std::string db_event_text(std::string_view text, std::size_t cap);

}  // namespace pbx::totp::detail

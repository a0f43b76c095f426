#include "db_events.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>

#include "pg_link.hpp"
#include "text_format.hpp"

namespace pbx::totp::detail {

// clang-format off
const char* const kEventTableSql =
    "CREATE TABLE IF NOT EXISTS pbx_mfa_event ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " at bigint NOT NULL,"
    " host text NOT NULL CHECK (octet_length(host) <= 256),"
    " service text NOT NULL CHECK (octet_length(service) <= 256),"
    " user_name text NOT NULL CHECK (octet_length(user_name) <= 256),"
    " rhost text NOT NULL CHECK (octet_length(rhost) <= 256),"
    " event text NOT NULL CHECK (octet_length(event) <= 256),"
    " actor text NOT NULL CHECK (octet_length(actor) <= 256),"
    " detail text NOT NULL CHECK (octet_length(detail) <= 1024),"
    " recorded timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX IF NOT EXISTS pbx_mfa_event_at ON pbx_mfa_event (at)";
// clang-format on

static_assert(kMaxEventField == 256 && kMaxEventDetail == 1024,
              "the CHECKs of kEventTableSql and the caps of kSelectEvents follow events.hpp");

namespace {

// Held by each insert until it commits (pg_advisory_xact_lock): one writer at a time, so ids
// commit in order. Not db_admin's key (7283551), which db init holds for a whole upgrade.
constexpr const char* kInsertEvent =
    "WITH l AS (SELECT pg_advisory_xact_lock(7283552)) "
    "INSERT INTO pbx_mfa_event (at, host, service, user_name, rhost, event, actor, detail) "
    "SELECT $1::bigint, $2, $3, $4, $5, $6, $7, $8 FROM l";

// A value over its cap is not sent (NULL instead): a forged row costs neither the deadline nor
// the memory of a reader, and is skipped. The first column is the highest id of the table in
// the same snapshot (one row with it and NULLs when no row matches): once a chunk is not full,
// the reader is at the end of the table even when the last rows did not match the query, so a
// follower with a query does not read them again, and a reader that asks for nothing
// (`since` beyond every time) gets a cursor at the end.
constexpr const char* kSelectEvents =
    "WITH top AS (SELECT coalesce(max(id), 0) AS top FROM pbx_mfa_event), "
    "page AS (SELECT id, at, "
    "CASE WHEN octet_length(host) <= 256 THEN host END AS host, "
    "CASE WHEN octet_length(service) <= 256 THEN service END AS service, "
    "CASE WHEN octet_length(user_name) <= 256 THEN user_name END AS user_name, "
    "CASE WHEN octet_length(rhost) <= 256 THEN rhost END AS rhost, "
    "CASE WHEN octet_length(event) <= 256 THEN event END AS event, "
    "CASE WHEN octet_length(actor) <= 256 THEN actor END AS actor, "
    "CASE WHEN octet_length(detail) <= 1024 THEN detail END AS detail "
    "FROM pbx_mfa_event WHERE id > $1::bigint AND at >= $2::bigint "
    "AND ($3::text = '' OR user_name = $3::text) ORDER BY id LIMIT 1000) "
    "SELECT top.top, page.* FROM top LEFT JOIN page ON true ORDER BY page.id";
static_assert(kEventChunk == 1000, "the LIMIT of kSelectEvents");

// The times an event can have: 1970 up to the end of year 9999 (what iso_time can print).
constexpr std::int64_t kMaxEventTime = 253402300799;

// The length of the valid UTF-8 sequence at the start of `s`, or 0.
std::size_t utf8_sequence(std::string_view s) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  unsigned char c = b(0);
  if (c <= 0x7F) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// C0 (NUL too: PostgreSQL text cannot hold it), DEL and C1: what events.hpp turns into '?'.
bool is_control(std::string_view piece) {
  auto c = static_cast<unsigned char>(piece[0]);
  if (piece.size() == 1) return c < 0x20 || c == 0x7F;
  return piece.size() == 2 && c == 0xC2 && static_cast<unsigned char>(piece[1]) <= 0x9F;
}

// One row (after the top column) as an event; nullopt when it is not one of ours.
std::optional<Event> event_of_row(const PgLink::Row& row) {
  for (std::size_t i = 2; i < 10; ++i) {
    if (i >= row.size() || !row[i]) return std::nullopt;  // missing, or over its cap
  }
  Event e;
  if (!parse_i64(*row[2], 0, kMaxEventTime, e.time)) return std::nullopt;
  // Cleaned as the file's lines are (event_from_json): no reader gets an escape sequence.
  e.host = db_event_text(*row[3], kMaxEventField);
  e.service = db_event_text(*row[4], kMaxEventField);
  e.user = db_event_text(*row[5], kMaxEventField);
  e.rhost = db_event_text(*row[6], kMaxEventField);
  e.event = db_event_text(*row[7], kMaxEventField);
  e.actor = db_event_text(*row[8], kMaxEventField);
  e.detail = db_event_text(*row[9], kMaxEventDetail);
  return e;
}

}  // namespace

std::string db_event_text(std::string_view text, std::size_t cap) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(std::min(text.size(), cap));
  while (!text.empty()) {
    std::size_t n = utf8_sequence(text);
    std::string_view piece = n > 0 ? text.substr(0, n) : kReplacement;
    if (is_control(piece)) piece = "?";
    if (out.size() + piece.size() > cap) break;
    out.append(piece);
    text.remove_prefix(n > 0 ? n : 1);
  }
  return out;
}

Status db_append_event(PgLink& db, const Event& e) {
  std::string at = std::to_string(e.time);
  std::string host = db_event_text(e.host, kMaxEventField);
  std::string service = db_event_text(e.service, kMaxEventField);
  std::string user = db_event_text(e.user, kMaxEventField);
  std::string rhost = db_event_text(e.rhost, kMaxEventField);
  std::string event = db_event_text(e.event, kMaxEventField);
  std::string actor = db_event_text(e.actor, kMaxEventField);
  std::string detail = db_event_text(e.detail, kMaxEventDetail);
  auto r =
      db.exec(kInsertEvent, {{at}, {host}, {service}, {user}, {rhost}, {event}, {actor}, {detail}});
  if (!r) return r.error();
  return Ok{};
}

Result<DbEventRows> db_read_events(PgLink& db, const EventQuery& query, std::int64_t after) {
  DbEventRows out;
  out.last_id = after;
  const std::string since = std::to_string(query.since);
  constexpr std::int64_t kMaxId = std::numeric_limits<std::int64_t>::max();
  int total = 0;
  for (;;) {
    db.start_exchange();  // one deadline per chunk: a long log is read in steps, each bounded
    const std::string from = std::to_string(out.last_id);
    auto rows = db.exec(kSelectEvents, {{from}, {since}, {query.user}});
    if (!rows) return rows.error();
    std::int64_t top = 0;
    int n = 0;
    for (const auto& row : *rows) {
      if (row.empty() || !row[0] || !parse_i64(*row[0], 0, kMaxId, top)) {
        return make_error(Errc::kCorrupt, "pbx_mfa_event: its highest id is not a number");
      }
      if (row.size() < 2 || !row[1]) continue;  // no row matched: only the top
      std::int64_t id = 0;
      if (!parse_i64(*row[1], out.last_id + 1, kMaxId, id)) {
        return make_error(Errc::kCorrupt, "pbx_mfa_event: an id that is not a number after " +
                                              std::to_string(out.last_id));
      }
      out.last_id = id;
      ++n;
      auto e = event_of_row(row);
      if (e) {
        out.events.push_back(std::move(*e));
      } else {
        ++out.skipped;
      }
    }
    total += n;
    if (n < kEventChunk) {
      // Every row up to the top was seen (ids commit in order: none below it comes later).
      out.last_id = std::max(out.last_id, top);
      break;
    }
    if (total >= kMaxEventRows) break;
  }
  return out;
}

Result<bool> db_event_table_missing(PgLink& db) {
  db.start_exchange();
  auto rows = db.exec("SELECT to_regclass('pbx_mfa_event') IS NULL");
  if (!rows) return rows.error();
  return !rows->empty() && rows->front().at(0) == "t";
}

}  // namespace pbx::totp::detail

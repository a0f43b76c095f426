// pbx-mfa events: reading the security event log (events.hpp) — --since, the readable line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pbx/totp/events.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::cli {

// --since: an ISO 8601 date or time — 2026-12-05, 2026-12-05T03:00, 2026-12-05T03:00:00 (local
// time), with Z or an offset (2026-12-05T03:00:00Z, ...+01:00) — or a duration before `now`:
// a number and s, m, h, d or w (30m, 2h, 7d). kInvalid for anything else.
totp::Result<std::int64_t> parse_since(std::string_view text, std::int64_t now);

// One event as one readable line (no newline): local time with its offset, host, service,
// user, rhost, event, actor, then the detail; "-" for an empty field; bytes that are not
// printable ASCII (and spaces, but in the detail) as \xHH.
std::string event_line(const totp::Event& e);

// How often --follow reads the log again.
inline constexpr int kFollowPollMs = 500;

}  // namespace pbx::cli

// The outcome table: every way a login through the module ends, its PAM code, name and priority.
#pragma once

#include <security/pam_modules.h>

#include <cstddef>
#include <iterator>
#include <string_view>

#include "pam_context.hpp"
#include "pbx/totp/events.hpp"

namespace pbx::pam {

// Every way a login through the module can end; kOutcomes gives each its PAM code, its name
// and its log priority.
enum class AuthResult {
  kAccepted,
  kRecoveryAccepted,
  kGrace,       // same user, same host, within grace_period
  kBreakGlass,  // database unreachable, a break-glass code of this host
  kEnrolled,    // enrolled inside this login (enroll_at_login)
  kExempt,
  kNotRequired,  // not enrolled and not required
  kRejected,
  kReplayed,
  kLockedOut,
  kNotEnrolled,       // required, not enrolled (asked anyway)
  kEnrollFailed,      // enrollment at login not confirmed; nothing saved
  kUnknownUser,       // asked anyway
  kUnavailable,       // secret or state unreadable, unsafe or corrupt
  kStoreUnreachable,  // the database cannot be reached
  kBadConfig,
  kConvError,
  kNoMemory,
  kInternal,
  // Database unreachable, an answer shaped like a break-glass code but not an unused one of
  // this host (counted).
  kBreakGlassWrong,
  // Database unreachable, break-glass locked on this host by wrong answers (no prompt).
  kBreakGlassLocked,
  kGroupLookupFailed,  // a require group could not be looked up (directory down)
  // A temporary access code (pbx-mfa temp-code) instead of the user's own second factor.
  kTempCodeAccepted,
  kCount,  // not an outcome: how many there are. Keep it last.
};

struct OutcomeRow {
  AuthResult result;
  int pam_code;
  std::string_view name;  // the outcome= field of the log line; pam_pbx_totp(8) RETURN VALUES
  LogLevel level;         // pam_pbx_totp(8) LOGGING
  // The security event a login ending so records (a login kind of totp::kEventKinds), "" for
  // none. The transitions of an outcome (the failure that locks the user: locked-out; the
  // wrong break-glass answer that locks break-glass: break-glass-locked) are the flow's.
  std::string_view event;
};

// One row per AuthResult, in enumerator order (checked below, so a new outcome without a row
// does not compile).
inline constexpr OutcomeRow kOutcomes[] = {
    {AuthResult::kAccepted, PAM_SUCCESS, "accepted", LogLevel::kInfo, ""},
    {AuthResult::kRecoveryAccepted, PAM_SUCCESS, "recovery-code-accepted", LogLevel::kNotice,
     "recovery-code-accepted"},
    {AuthResult::kGrace, PAM_SUCCESS, "grace-period", LogLevel::kInfo, ""},
    // A way in that bypasses the user's own second factor.
    {AuthResult::kBreakGlass, PAM_SUCCESS, "break-glass-accepted", LogLevel::kWarning,
     "break-glass-accepted"},
    // A new second factor bound to the account.
    {AuthResult::kEnrolled, PAM_SUCCESS, "enrolled-at-login", LogLevel::kNotice,
     "enrolled-at-login"},
    {AuthResult::kExempt, PAM_IGNORE, "exempt", LogLevel::kInfo, ""},
    {AuthResult::kNotRequired, PAM_IGNORE, "not-enrolled-not-required", LogLevel::kInfo, ""},
    {AuthResult::kRejected, PAM_AUTH_ERR, "wrong-code", LogLevel::kNotice, ""},
    {AuthResult::kReplayed, PAM_AUTH_ERR, "replayed-code", LogLevel::kNotice, ""},
    {AuthResult::kLockedOut, PAM_AUTH_ERR, "locked-out", LogLevel::kNotice, ""},
    {AuthResult::kNotEnrolled, PAM_AUTH_ERR, "not-enrolled", LogLevel::kNotice, ""},
    {AuthResult::kEnrollFailed, PAM_AUTH_ERR, "enrollment-failed", LogLevel::kNotice, ""},
    {AuthResult::kUnknownUser, PAM_AUTH_ERR, "unknown-user", LogLevel::kNotice, ""},
    {AuthResult::kUnavailable, PAM_AUTHINFO_UNAVAIL, "unavailable", LogLevel::kError, ""},
    {AuthResult::kStoreUnreachable, PAM_AUTHINFO_UNAVAIL, "store-unavailable", LogLevel::kError,
     ""},
    {AuthResult::kBadConfig, PAM_SERVICE_ERR, "bad-config", LogLevel::kError, ""},
    {AuthResult::kConvError, PAM_CONV_ERR, "conversation-error", LogLevel::kError, ""},
    {AuthResult::kNoMemory, PAM_BUF_ERR, "out-of-memory", LogLevel::kError, ""},
    {AuthResult::kInternal, PAM_SERVICE_ERR, "internal-error", LogLevel::kError, ""},
    // Someone holding a password tries codes that open any account of the host (L5).
    {AuthResult::kBreakGlassWrong, PAM_AUTHINFO_UNAVAIL, "break-glass-wrong", LogLevel::kWarning,
     ""},
    {AuthResult::kBreakGlassLocked, PAM_AUTHINFO_UNAVAIL, "break-glass-locked", LogLevel::kError,
     ""},
    {AuthResult::kGroupLookupFailed, PAM_AUTHINFO_UNAVAIL, "group-lookup-failed", LogLevel::kError,
     ""},
    // A helpdesk-issued code stood in for the user's own second factor (lost phone).
    {AuthResult::kTempCodeAccepted, PAM_SUCCESS, "temp-code-accepted", LogLevel::kWarning,
     "temp-code-accepted"},
};

namespace detail {
constexpr bool outcome_rows_in_order() {
  for (std::size_t i = 0; i < std::size(kOutcomes); ++i) {
    if (static_cast<std::size_t>(kOutcomes[i].result) != i) return false;
  }
  return true;
}

// Every event of a row is a login kind of the event table.
constexpr bool outcome_events_are_login_kinds() {
  for (const auto& row : kOutcomes) {
    if (row.event.empty()) continue;
    bool found = false;
    for (const auto& kind : totp::kEventKinds) {
      found = found || (kind.name == row.event && kind.source == totp::EventSource::kLogin);
    }
    if (!found) return false;
  }
  return true;
}
}  // namespace detail

static_assert(std::size(kOutcomes) == static_cast<std::size_t>(AuthResult::kCount),
              "kOutcomes needs exactly one row per AuthResult");
static_assert(detail::outcome_rows_in_order(),
              "kOutcomes rows must be in AuthResult order (row i is enumerator i)");
static_assert(detail::outcome_events_are_login_kinds(),
              "a kOutcomes event must be a login kind of totp::kEventKinds");

// The row of `r`; the kInternal row for a value that is not an outcome.
const OutcomeRow& outcome_row(AuthResult r) noexcept;

int pam_code(AuthResult r) noexcept;
std::string_view result_name(AuthResult r) noexcept;
LogLevel log_level(AuthResult r) noexcept;

}  // namespace pbx::pam

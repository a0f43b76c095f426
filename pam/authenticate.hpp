// authenticate(): the module's whole flow, from arguments to PAM return code.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "pam_context.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/recovery.hpp"

namespace pbx::pam {

// Every way a login through the module can end; pam_code() maps each to one PAM code.
enum class AuthResult {
  kAccepted,          // PAM_SUCCESS
  kRecoveryAccepted,  // PAM_SUCCESS
  kGrace,             // PAM_SUCCESS: same user, same host, within grace_period
  kBreakGlass,        // PAM_SUCCESS: database unreachable, a break-glass code of this host
  kEnrolled,          // PAM_SUCCESS: enrolled inside this login (enroll_at_login)
  kExempt,            // PAM_IGNORE
  kNotRequired,       // PAM_IGNORE: not enrolled and not required
  kRejected,          // PAM_AUTH_ERR
  kReplayed,          // PAM_AUTH_ERR
  kLockedOut,         // PAM_AUTH_ERR
  kNotEnrolled,       // PAM_AUTH_ERR: required, not enrolled (asked anyway)
  kEnrollFailed,      // PAM_AUTH_ERR: enrollment at login not confirmed; nothing saved
  kUnknownUser,       // PAM_AUTH_ERR (asked anyway)
  kUnavailable,       // PAM_AUTHINFO_UNAVAIL: secret or state unreadable, unsafe or corrupt
  kStoreUnreachable,  // PAM_AUTHINFO_UNAVAIL: the database cannot be reached
  kBadConfig,         // PAM_SERVICE_ERR
  kConvError,         // PAM_CONV_ERR
  kNoMemory,          // PAM_BUF_ERR
  kInternal,          // PAM_SERVICE_ERR
};

int pam_code(AuthResult r) noexcept;
const char* result_name(AuthResult r) noexcept;

struct AuthOptions {
  bool silent = false;           // PAM_SILENT
  uid_t trusted_uid = 0;         // owner of a safe config file and state_dir
  totp::KdfParams recovery_kdf;  // cost of recovery-code hashes made by enroll_at_login
};

// Never throws. Returns a PAM code.
int authenticate(PamContext& ctx, const std::vector<std::string>& args, const AuthOptions& opts,
                 const totp::Clock& clock) noexcept;

}  // namespace pbx::pam

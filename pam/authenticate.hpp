// authenticate(): the module's whole flow, from arguments to PAM return code.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "outcome.hpp"
#include "pam_context.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/requirement.hpp"

namespace pbx::pam {

struct AuthOptions {
  bool silent = false;           // PAM_SILENT
  uid_t trusted_uid = 0;         // owner of a safe config file and state_dir
  totp::KdfParams recovery_kdf;  // cost of recovery-code hashes made by enroll_at_login
  totp::GroupLookup group_lookup = totp::lookup_group;  // tests fake a directory that is down
};

// Never throws. Returns a PAM code.
int authenticate(PamContext& ctx, const std::vector<std::string>& args, const AuthOptions& opts,
                 const totp::Clock& clock) noexcept;

}  // namespace pbx::pam

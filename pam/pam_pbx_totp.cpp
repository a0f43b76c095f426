// The module's C entry points: thin, exception-free, and the only symbols exported.
#include <security/pam_modules.h>

#include <new>
#include <string>
#include <vector>

#include "authenticate.hpp"
#include "libpam_context.hpp"
#include "pbx/totp/clock.hpp"

#define PBX_EXPORT __attribute__((visibility("default")))

extern "C" {

PBX_EXPORT int pam_sm_authenticate(pam_handle_t* pamh, int flags, int argc, const char** argv) try {
  std::vector<std::string> args;
  if (argc > 0) args.reserve(static_cast<std::size_t>(argc));
  for (int i = 0; i < argc; ++i) args.emplace_back(argv[i] != nullptr ? argv[i] : "");
  pbx::pam::LibpamContext ctx(pamh);
  pbx::pam::AuthOptions opts;
  opts.silent = (flags & PAM_SILENT) != 0;
  const pbx::totp::SystemClock clock;
  return pbx::pam::authenticate(ctx, args, opts, clock);
} catch (const std::bad_alloc&) {
  return PAM_BUF_ERR;
} catch (...) {
  return PAM_SERVICE_ERR;
}

PBX_EXPORT int pam_sm_setcred(pam_handle_t* /*pamh*/, int /*flags*/, int /*argc*/,
                              const char** /*argv*/) {
  return PAM_SUCCESS;
}

}  // extern "C"

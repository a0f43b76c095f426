// recovery-codes: replace the recovery codes. (Being written: issue 4.)
#include "commands.hpp"

namespace pbx::cli {

Command add_recovery_codes(CLI::App& app) {
  auto* sub = app.add_subcommand("recovery-codes", "replace the recovery codes");
  sub->allow_extras();
  return {sub, [](Session& s) -> int { return fail(s, kExitInternal, "recovery-codes: not built yet"); }};
}

}  // namespace pbx::cli

// enroll: make a secret, show the QR code, confirm a code. (Being written: issue 4.)
#include "commands.hpp"

namespace pbx::cli {

Command add_enroll(CLI::App& app) {
  auto* sub = app.add_subcommand("enroll", "make a secret, show the QR code, confirm a code");
  sub->allow_extras();
  return {sub, [](Session& s) -> int { return fail(s, kExitInternal, "enroll: not built yet"); }};
}

}  // namespace pbx::cli

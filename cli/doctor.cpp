// doctor: check the PAM, sshd and clock setup. (Being written: issue 4.)
#include "commands.hpp"

namespace pbx::cli {

Command add_doctor(CLI::App& app) {
  auto* sub = app.add_subcommand("doctor", "check the PAM, sshd and clock setup");
  sub->allow_extras();
  return {sub, [](Session& s) -> int { return fail(s, kExitInternal, "doctor: not built yet"); }};
}

}  // namespace pbx::cli

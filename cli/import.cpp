// import: migrate from google-authenticator, oath or an otpauth URI. (Being written: issue 4.)
#include "commands.hpp"

namespace pbx::cli {

Command add_import(CLI::App& app) {
  auto* sub = app.add_subcommand("import", "migrate from google-authenticator, oath or an otpauth URI");
  sub->allow_extras();
  return {sub, [](Session& s) -> int { return fail(s, kExitInternal, "import: not built yet"); }};
}

}  // namespace pbx::cli

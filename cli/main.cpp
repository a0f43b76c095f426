// pbx-mfa: entry point. All the work is in run(), which tests call in-process.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"

int main(int argc, char** argv) {
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    pbx::cli::Env env = pbx::cli::process_env();
    return pbx::cli::run(args, env);
  } catch (const std::exception& e) {
    std::cerr << "pbx-mfa: internal error: " << e.what() << "\n";
    return pbx::cli::kExitInternal;
  }
}

// pbx-pam-tables: prints the module's tables one name a line, for the man-page check:
// `outcomes` (pam/outcome.hpp) or `args` (the module arguments of pam/module_args.hpp).
#include <cstring>
#include <iostream>

#include "module_args.hpp"
#include "outcome.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "outcomes") == 0) {
    for (const auto& row : pbx::pam::kOutcomes) std::cout << row.name << '\n';
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "args") == 0) {
    for (const auto& row : pbx::pam::module_args()) std::cout << row.name << '\n';
    return 0;
  }
  std::cerr << "usage: pbx-pam-tables outcomes|args\n";
  return 2;
}

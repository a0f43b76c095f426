// pbx-pam-outcomes: prints the outcome names of kOutcomes, one a line, for the man-page check.
#include <iostream>

#include "outcome.hpp"

int main() {
  for (const auto& row : pbx::pam::kOutcomes) std::cout << row.name << '\n';
  return 0;
}

#include "outcome.hpp"

namespace pbx::pam {

const OutcomeRow& outcome_row(AuthResult r) noexcept {
  auto i = static_cast<std::size_t>(r);
  // Fail closed: a value outside the enumeration (a cast, kCount) is an internal error.
  if (i >= std::size(kOutcomes)) i = static_cast<std::size_t>(AuthResult::kInternal);
  return kOutcomes[i];
}

int pam_code(AuthResult r) noexcept { return outcome_row(r).pam_code; }

std::string_view result_name(AuthResult r) noexcept { return outcome_row(r).name; }

LogLevel log_level(AuthResult r) noexcept { return outcome_row(r).level; }

}  // namespace pbx::pam

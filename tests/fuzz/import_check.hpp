// Shared by the importer targets: what an accepted import must satisfy. Its parameters build an
// otpauth URI that parses back to the same secret, algorithm, digits and period.
#pragma once

#include "fuzz_check.hpp"
#include "pbx/totp/importers.hpp"

inline void check_import(const pbx::totp::ImportedSecret& in) {
  using namespace pbx::totp;
  FUZZ_CHECK(!in.params.secret.empty());
  FUZZ_CHECK(in.params.digits >= 6 && in.params.digits <= 8);
  FUZZ_CHECK(in.params.period >= 1 && in.params.period <= 300);
  FUZZ_CHECK(in.scratch_codes.size() <= 20);
  OtpParams p = in.params;
  if (p.account.empty()) p.account = "fuzz";
  auto again = parse_otpauth_uri(build_otpauth_uri(p));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->secret == in.params.secret);
  FUZZ_CHECK(again->algorithm == in.params.algorithm);
  FUZZ_CHECK(again->digits == in.params.digits);
  FUZZ_CHECK(again->period == in.params.period);
}

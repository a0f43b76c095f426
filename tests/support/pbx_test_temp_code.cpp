// pbx-test-temp-code: test-only issuing of a temporary access code through the library, for the
// end-to-end tests while `pbx-mfa temp-code` is not there (they prefer the CLI when it is).
//   pbx-test-temp-code CONFIG USER [TTL_SECONDS [USES]]
// Stores the code's record in USER's state (as `pbx-mfa temp-code` does, issuer "root") and
// prints the code on stdout.
#include <cstdio>
#include <string>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/temp_code.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"

using namespace pbx::totp;

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s CONFIG USER [TTL_SECONDS [USES]]\n", argv[0]);
    return 2;
  }
  auto config = load_config(argv[1], true);
  if (!config) return std::fprintf(stderr, "%s\n", config.error().message.c_str()), 2;
  auto user = lookup_user(argv[2]);
  if (!user) return std::fprintf(stderr, "%s\n", user.error().message.c_str()), 2;
  const std::int64_t ttl = argc > 3 ? std::stoll(argv[3]) : kTempCodeDefaultTtl;
  const int uses = argc > 4 ? std::stoi(argv[4]) : kTempCodeDefaultUses;
  SystemClock clock;
  auto issued = make_temp_code(clock.now(), ttl, uses, "root", "e2e test");
  if (!issued) return std::fprintf(stderr, "%s\n", issued.error().message.c_str()), 2;
  auto store = open_store(*config);
  if (!store) return std::fprintf(stderr, "%s\n", store.error().message.c_str()), 4;
  Verifier verifier(*config, **store, clock);
  if (auto st = verifier.set_temp_code(*user, issued->record); !st) {
    return std::fprintf(stderr, "%s\n", st.error().message.c_str()), 4;
  }
  std::printf("%s\n", std::string(issued->code.view()).c_str());
  return 0;
}

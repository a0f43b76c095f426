// pbx-test-enroll: test-only provisioning through the library (the CLI is a separate issue).
//   pbx-test-enroll CONFIG USER SECRET_HEX [RECOVERY_CODE...]
// Writes USER's enrollment (SHA1, the config's digits and period) as the module will read it.
//   pbx-test-enroll --fill CONFIG PREFIX N
// Writes N users PREFIX00000... (no accounts needed) with an enrollment and a state row each,
// in one process: rows for the benchmarks of the database store (bench/login/rotate).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"

using namespace pbx::totp;

int fill(const char* config_path, const std::string& prefix, int n) {
  auto config = load_config(config_path, true);
  if (!config) return std::fprintf(stderr, "%s\n", config.error().message.c_str()), 2;
  auto store = open_store(*config);
  if (!store) return std::fprintf(stderr, "%s\n", store.error().message.c_str()), 2;
  SecretBytes secret(20);  // zeros: the rows are never logged in with
  auto id = new_enrollment_id();
  if (!id) return 70;
  Enrollment e = single_device_enrollment(*id, std::move(secret), Algorithm::kSha1, 6, 30,
                                          SystemClock().now());
  for (int u = 0; u < n; ++u) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%05d", u);
    User user{prefix + suffix, static_cast<uid_t>(200000 + u), 65534, "/nonexistent"};
    auto txn = (*store)->lock_state(user);
    if (!txn) return std::fprintf(stderr, "%s\n", txn.error().message.c_str()), 4;
    if (auto st = (*store)->save(user, e, true); !st) {
      return std::fprintf(stderr, "%s\n", st.error().message.c_str()), 4;
    }
    UserState state;
    state.enrollment_id = e.id;
    if (auto st = (*txn)->commit(state); !st) {
      return std::fprintf(stderr, "%s\n", st.error().message.c_str()), 4;
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--fill")
    return fill(argv[2], argv[3], std::atoi(argv[4]));
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s CONFIG USER SECRET_HEX [RECOVERY_CODE...]\n", argv[0]);
    return 2;
  }
  auto config = load_config(argv[1], true);
  if (!config) return std::fprintf(stderr, "%s\n", config.error().message.c_str()), 2;
  auto user = lookup_user(argv[2]);
  if (!user) return std::fprintf(stderr, "%s\n", user.error().message.c_str()), 2;
  std::string hex = argv[3];
  SecretBytes secret;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    secret.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  auto id = new_enrollment_id();
  if (!id) return 70;
  Enrollment e = single_device_enrollment(*id, std::move(secret), config->algorithm, config->digits,
                                          config->period, SystemClock().now());
  std::vector<SecretString> codes;
  for (int i = 4; i < argc; ++i) codes.emplace_back(std::string(argv[i]));
  if (!codes.empty()) {
    auto set = hash_recovery_codes(codes, KdfParams{1024, 8, 1});
    if (!set) return 70;
    e.recovery = *set;
  }
  auto store = open_store(*config);
  if (!store) return std::fprintf(stderr, "%s\n", store.error().message.c_str()), 2;
  auto st = (*store)->save(*user, e, true);
  if (!st) return std::fprintf(stderr, "%s\n", st.error().message.c_str()), 4;
  return 0;
}

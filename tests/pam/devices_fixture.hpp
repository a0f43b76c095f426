// Several devices per user (issue 16) for the module tests: enrollments of named devices saved
// through the library, their codes (by the library, or by the independent oathtool program),
// and the secret and state files of the release before devices, written by hand.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "oathtool.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::pam::testing::devices {

struct DeviceSpec {
  std::string name;
  totp::Algorithm algorithm = totp::Algorithm::kSha1;
  int digits = 6;
  int period = 30;
};

// An enrollment of these devices, each with a fresh key of its algorithm's size, all created
// at `created`; no recovery codes.
inline totp::Enrollment make_enrollment(const std::vector<DeviceSpec>& specs,
                                        std::int64_t created) {
  totp::Enrollment e;
  auto id = totp::new_enrollment_id();
  if (!id) throw std::runtime_error("new_enrollment_id failed");
  e.id = *id;
  e.created = created;
  for (const auto& s : specs) {
    auto key = totp::generate_secret(s.algorithm);
    if (!key) throw std::runtime_error("generate_secret failed");
    totp::Device d;
    d.name = s.name;
    d.secret = std::move(key.value());
    d.algorithm = s.algorithm;
    d.digits = s.digits;
    d.period = s.period;
    d.created = created;
    e.devices.push_back(std::move(d));
  }
  return e;
}

// Saves `e` as `user`'s enrollment in the store `config` names, replacing any earlier one.
inline void save_enrollment(const totp::Config& config, const std::string& user,
                            const totp::Enrollment& e) {
  auto account = totp::lookup_user(user);
  if (!account) throw std::runtime_error("no account " + user);
  auto store = totp::open_store(config);
  if (!store) throw std::runtime_error("open_store: " + store.error().message);
  if (auto st = (*store)->save(*account, e, /*overwrite=*/true); !st) {
    throw std::runtime_error("save: " + st.error().message);
  }
}

// The code of device `d` at `unix_time`, by the library.
inline std::string lib_code(const totp::Device& d, std::int64_t unix_time) {
  auto code =
      totp::hotp(d.secret, d.algorithm,
                 static_cast<std::uint64_t>(totp::time_step(unix_time, d.period)), d.digits);
  if (!code) throw std::runtime_error("hotp failed");
  return totp::format_code(*code, d.digits);
}

// The code of device `d` at `unix_time`, by the oathtool program at `oathtool`.
inline std::string oath_code(const std::string& oathtool, const totp::Device& d,
                             std::int64_t unix_time) {
  auto r = test::run_program({
      oathtool,
      std::string("--totp=") + totp::algorithm_name(d.algorithm),
      "--digits=" + std::to_string(d.digits),
      "--time-step-size=" + std::to_string(d.period) + "s",
      "--now=@" + std::to_string(unix_time),
      test::to_hex(d.secret.data(), d.secret.size()),
  });
  if (!r || r->exit_code != 0) throw std::runtime_error("oathtool failed");
  auto lines = test::split_lines(r->out);
  if (lines.empty() || lines[0].size() != static_cast<std::size_t>(d.digits)) {
    throw std::runtime_error("oathtool printed no code");
  }
  return lines[0];
}

// A code of `digits` digits that no device of `e` gives within ±3 of its steps at `unix_time`.
inline std::string wrong_code(const totp::Enrollment& e, int digits, std::int64_t unix_time) {
  for (std::uint32_t candidate = 12345678;; candidate += 1111111) {
    std::string code = totp::format_code(candidate, digits);
    bool valid = false;
    for (const auto& d : e.devices) {
      for (int w = -3; w <= 3; ++w) {
        valid = valid || lib_code(d, unix_time + static_cast<std::int64_t>(w) * d.period) == code;
      }
    }
    if (!valid) return code;
  }
}

// The secret file of the release before devices (version 1), as its serialize_enrollment
// wrote it, for one SHA1/SHA256/SHA512 key without recovery codes.
inline std::string version1_secret_text(const std::string& id, const totp::SecretBytes& key,
                                        totp::Algorithm algorithm, int digits, int period,
                                        std::int64_t created) {
  return "# pbx-mfa secret file: written by pbx-mfa, do not edit\n"
         "version 1\n"
         "id " +
         id + "\nsecret " + totp::base32_encode(key, false) + "\nalgorithm " +
         totp::algorithm_name(algorithm) + "\ndigits " + std::to_string(digits) + "\nperiod " +
         std::to_string(period) + "\ncreated " + std::to_string(created) + "\nend\n";
}

// The state file of the release before devices (version 1), as its serialize_state wrote it.
inline std::string version1_state_text(const std::string& id, std::int64_t last_step,
                                       int failures = 0, std::int64_t last_success = 0) {
  return "version 1\nid " + id + "\nlast-step " + std::to_string(last_step) + "\nfailures " +
         std::to_string(failures) + "\nlocked-until 0\nskew 0\nlast-success " +
         std::to_string(last_success) + "\nend\n";
}

}  // namespace pbx::pam::testing::devices

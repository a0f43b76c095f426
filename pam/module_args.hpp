// ModuleArgs: the module's arguments (pam_pbx_totp(8) OPTIONS) parsed over the config file.
#pragma once

#include <string>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::pam {

inline constexpr const char* kDefaultCodePrompt = "Security code: ";

struct ModuleArgs {
  totp::Config config;
  bool debug = false;
  bool try_first_pass = false;
  bool use_first_pass = false;
  bool forward_pass = false;
  bool echo_code = false;
  bool nodelay = false;
  std::string prompt = kDefaultCodePrompt;
};

// Loads the config file (config=PATH or the default), then applies key=value arguments over it
// in order. `trusted_uid` owns a safe config file. Errors are kConfig and name the argument.
totp::Result<ModuleArgs> parse_module_args(const std::vector<std::string>& args,
                                           uid_t trusted_uid = 0);

}  // namespace pbx::pam

// ModuleArgs: the module's arguments (pam_pbx_totp(8) OPTIONS) parsed over the config file.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::pam {

inline constexpr const char* kDefaultCodePrompt = "Security code: ";

// How enroll_at_login shows a new key (enroll_display=). kTerminal: a QR code in UTF-8 half
// blocks. kText: no drawing, plain ASCII, and the key, the URI and the recovery codes only in
// prompt texts (Cockpit journals every info message and turns non-ASCII into '?'). kAuto:
// kText for the PAM service "cockpit", else kTerminal.
enum class EnrollDisplay { kAuto, kTerminal, kText };

// The service whose logins enroll_display=auto shows as text: Cockpit's login page.
inline constexpr std::string_view kCockpitService = "cockpit";

struct ModuleArgs {
  totp::Config config;
  bool debug = false;
  bool try_first_pass = false;
  bool use_first_pass = false;
  bool forward_pass = false;
  bool echo_code = false;
  bool nodelay = false;
  std::string prompt = kDefaultCodePrompt;
  EnrollDisplay enroll_display = EnrollDisplay::kAuto;
};

// kText or kTerminal: what `display` means for a login through PAM service `service`.
EnrollDisplay resolve_display(EnrollDisplay display, std::string_view service);

// One row per module argument of pam_pbx_totp(8) OPTIONS: a flag (`debug`) or a valued argument
// (`prompt=TEXT`). Any other `key=value` is a config-file setting (pbx-mfa.conf(5)).
struct ModuleArg {
  std::string_view name;
  bool takes_value;
  totp::Status (*apply)(ModuleArgs& out, std::string_view value);
  std::string_view help;
  std::string_view example;  // a value the argument accepts ("" for a flag), for the tests
};

// The table parse_module_args dispatches through; tests and the man-page check list it.
std::span<const ModuleArg> module_args();

// Loads the config file (config=PATH or the default), then applies key=value arguments over it
// in order. `trusted_uid` owns a safe config file. Errors are kConfig and name the argument.
totp::Result<ModuleArgs> parse_module_args(const std::vector<std::string>& args,
                                           uid_t trusted_uid = 0);

}  // namespace pbx::pam

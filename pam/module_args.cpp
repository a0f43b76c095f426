#include "module_args.hpp"

namespace pbx::pam {

using totp::Errc;
using totp::make_error;

namespace {

using totp::Ok;
using totp::Status;

template <bool ModuleArgs::*kMember>
Status set_flag(ModuleArgs& out, std::string_view /*value*/) {
  out.*kMember = true;
  return Ok{};
}

Status set_nullok(ModuleArgs& out, std::string_view /*value*/) {
  out.config.require_all = false;
  out.config.require_groups.clear();
  return Ok{};
}

Status set_prompt(ModuleArgs& out, std::string_view value) {
  if (value.empty() || value.size() > 256) {
    return make_error(Errc::kConfig, "prompt= must be 1 to 256 characters");
  }
  out.prompt = std::string(value);
  return Ok{};
}

Status set_enroll_display(ModuleArgs& out, std::string_view value) {
  if (value == "auto") {
    out.enroll_display = EnrollDisplay::kAuto;
  } else if (value == "terminal") {
    out.enroll_display = EnrollDisplay::kTerminal;
  } else if (value == "text") {
    out.enroll_display = EnrollDisplay::kText;
  } else {
    return make_error(Errc::kConfig, "enroll_display= must be auto, terminal or text");
  }
  return Ok{};
}

// config= is read before the table is applied (it chooses the file the others go over).
Status skip(ModuleArgs& /*out*/, std::string_view /*value*/) { return Ok{}; }

constexpr ModuleArg kModuleArgs[] = {
    {"config", true, skip, "read this config file instead of the default (absolute path)",
     "/etc/security/pbx-mfa.conf"},
    {"debug", false, set_flag<&ModuleArgs::debug>, "log each decision at debug level", ""},
    {"nullok", false, set_nullok, "users without an enrollment pass (require = none)", ""},
    {"try_first_pass", false, set_flag<&ModuleArgs::try_first_pass>,
     "try PAM_AUTHTOK as the code first, then ask", ""},
    {"use_first_pass", false, set_flag<&ModuleArgs::use_first_pass>,
     "take the code from PAM_AUTHTOK only, never ask", ""},
    {"forward_pass", false, set_flag<&ModuleArgs::forward_pass>,
     "ask once for password and code together; pass the password on", ""},
    {"echo_code", false, set_flag<&ModuleArgs::echo_code>, "show the code as it is typed", ""},
    {"nodelay", false, set_flag<&ModuleArgs::nodelay>, "no failure delay (pam_fail_delay)", ""},
    {"prompt", true, set_prompt, "the code prompt (1 to 256 characters)", "Token: "},
    {"enroll_display", true, set_enroll_display,
     "how enroll_at_login shows the key: auto, terminal (QR code) or text (ASCII, in prompts)",
     "text"},
};

const ModuleArg* find_arg(std::string_view name, bool with_value) {
  for (const auto& row : kModuleArgs) {
    if (row.name == name && row.takes_value == with_value) return &row;
  }
  return nullptr;
}

}  // namespace

std::span<const ModuleArg> module_args() { return kModuleArgs; }

EnrollDisplay resolve_display(EnrollDisplay display, std::string_view service) {
  if (display != EnrollDisplay::kAuto) return display;
  return service == kCockpitService ? EnrollDisplay::kText : EnrollDisplay::kTerminal;
}

totp::Result<ModuleArgs> parse_module_args(const std::vector<std::string>& args,
                                           uid_t trusted_uid) {
  std::string config_path = totp::kDefaultConfigPath;
  bool explicit_config = false;
  for (const auto& a : args) {
    if (a.rfind("config=", 0) == 0) {
      if (explicit_config) return make_error(Errc::kConfig, "config= given twice");
      config_path = a.substr(7);
      if (config_path.empty() || config_path.front() != '/') {
        return make_error(Errc::kConfig, "config= needs an absolute path");
      }
      explicit_config = true;
    }
  }
  auto config = totp::load_config(config_path, explicit_config, trusted_uid);
  if (!config) return config.error();

  ModuleArgs out;
  out.config = std::move(config.value());
  for (const auto& a : args) {
    std::size_t eq = a.find('=');
    bool with_value = eq != std::string::npos;
    std::string_view name = std::string_view(a).substr(0, with_value ? eq : a.size());
    std::string_view value = with_value ? std::string_view(a).substr(eq + 1) : std::string_view();
    if (const ModuleArg* row = find_arg(name, with_value)) {
      if (auto st = row->apply(out, value); !st) return st.error();
    } else if (with_value && eq > 0) {
      // Any other key=value is a config-file setting (pbx-mfa.conf(5)) over the file.
      if (auto st = totp::apply_setting(out.config, name, value); !st) {
        return make_error(Errc::kConfig, "module argument " + st.error().message);
      }
    } else {
      return make_error(Errc::kConfig, "unknown module argument '" + a + "'");
    }
  }
  if (out.use_first_pass && out.try_first_pass) {
    return make_error(Errc::kConfig, "use_first_pass and try_first_pass exclude each other");
  }
  if (out.forward_pass && (out.use_first_pass || out.try_first_pass)) {
    return make_error(Errc::kConfig,
                      "forward_pass cannot be combined with use_first_pass or try_first_pass");
  }
  return out;
}

}  // namespace pbx::pam

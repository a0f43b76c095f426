#include "module_args.hpp"

namespace pbx::pam {

using totp::Errc;
using totp::make_error;

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
    if (a.rfind("config=", 0) == 0) continue;
    if (a == "debug") {
      out.debug = true;
    } else if (a == "nullok") {
      out.config.require_all = false;
      out.config.require_groups.clear();
    } else if (a == "try_first_pass") {
      out.try_first_pass = true;
    } else if (a == "use_first_pass") {
      out.use_first_pass = true;
    } else if (a == "forward_pass") {
      out.forward_pass = true;
    } else if (a == "echo_code") {
      out.echo_code = true;
    } else if (a == "nodelay") {
      out.nodelay = true;
    } else if (a.rfind("prompt=", 0) == 0) {
      out.prompt = a.substr(7);
      if (out.prompt.empty() || out.prompt.size() > 256) {
        return make_error(Errc::kConfig, "prompt= must be 1 to 256 characters");
      }
    } else if (std::size_t eq = a.find('='); eq != std::string::npos && eq > 0) {
      if (auto st = totp::apply_setting(out.config, a.substr(0, eq), a.substr(eq + 1)); !st) {
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

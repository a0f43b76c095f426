#include <sstream>

#include "commands.hpp"

#ifndef PBX_VERSION
#define PBX_VERSION "0.0.0"
#endif

namespace pbx::cli {

int run(const std::vector<std::string>& args, Env& env) {
  // Installed set-uid, set-gid or with file capabilities, pbx-mfa would trust files its caller
  // owns (a non-root process trusts its own euid's config and plugin) inside a process with
  // more privileges than the caller: refuse all of them, not only a differing uid.
  if (env.uid != env.euid || env.secure_exec) {
    *env.err << "pbx-mfa: refusing to run with privileges its caller does not have (set-uid, "
                "set-gid or file capabilities); run it as root or as yourself\n";
    return kExitStore;
  }
  CLI::App app{"pbx-mfa: time-based one-time codes (TOTP) for logins to PBX servers", "pbx-mfa"};
  app.set_version_flag("--version", std::string("pbx-mfa ") + PBX_VERSION);
  app.require_subcommand(1, 1);
  app.fallthrough();  // --config may also follow the subcommand
  std::string config_path;
  app.add_option("--config", config_path, "config file (default /etc/security/pbx-mfa.conf)");

  std::vector<Command> commands = {add_enroll(app),      add_import(app),         add_status(app),
                                   add_verify(app),      add_recovery_codes(app), add_reset(app),
                                   add_unlock(app),      add_temp_code(app),      add_require(app),
                                   add_list(app),        add_device(app),         add_db(app),
                                   add_break_glass(app), add_events(app),         add_doctor(app)};
  std::ostringstream help_out;
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, *env.out, *env.err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, *env.out, *env.err);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, *env.out, *env.err);
  } catch (const CLI::ParseError& e) {
    *env.err << "pbx-mfa: " << e.what() << "\n";
    *env.err << "Run 'pbx-mfa --help' or 'pbx-mfa SUBCOMMAND --help' for usage.\n";
    return kExitUsage;
  }

  Session session{env,
                  {},
                  config_path.empty() ? env.system_config_path : config_path,
                  !config_path.empty(),
                  std::nullopt,
                  std::nullopt};
  Command* chosen = nullptr;
  for (auto& c : commands) {
    if (c.app->parsed()) chosen = &c;
  }
  if (chosen == nullptr) return fail(session, kExitUsage, "no subcommand given");

  // The command as typed down to its last subcommand ("device list"), whose options are the
  // ones given.
  CLI::App* leaf = chosen->app;
  std::string command_name = leaf->get_name();
  for (bool deeper = true; deeper;) {
    deeper = false;
    for (CLI::App* sub : leaf->get_subcommands()) {
      leaf = sub;
      command_name += " " + sub->get_name();
      deeper = true;
      break;
    }
  }

  // Root through sudo for a member of helpdesk_groups acts only as the helpdesk (helpdesk.hpp):
  // every command passes this gate, so one added later is refused until the table lists it.
  const CLI::Option* user_option = leaf->get_option_no_throw("--user");
  std::optional<std::string> user;
  if (user_option != nullptr && user_option->count() > 0) user = user_option->as<std::string>();
  if (auto refused = helpdesk_gate(session, command_name, user, user_option != nullptr)) {
    return *refused;
  }

  if (!session.helpdesk) {  // the helpdesk gate loaded the system config already
    auto config = totp::load_config(session.config_path, session.config_explicit, env.trusted_uid);
    if (config) {
      session.config = std::move(config.value());
    } else if (chosen->app->get_name() == "doctor") {
      session.config_error = config.error();  // doctor reports it as a failed check
      session.config.trusted_uid = env.trusted_uid;
    } else {
      return fail(session, kExitUsage, config.error().message);
    }
  }

  int rc = chosen->action(session);
  helpdesk_finish(session, rc);
  return rc;
}

}  // namespace pbx::cli

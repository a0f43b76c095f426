// doctor: check config, state dir, module, PAM stacks, sshd settings and the clock.
#include "checks.hpp"
#include "commands.hpp"

namespace pbx::cli {
namespace doctor {

Facts::Facts(const Session& s, const DoctorOptions& o, const FileReader& files)
    : session(s), options(o), pam(scan_pam_dir(o.pam_dir, files)) {
  sshd.config = read_sshd_config(o.sshd_config, files, sshd.error);
}

bool Facts::uses_database() const {
  return session.config.store == "postgresql" && !session.config_error;
}

const totp::Result<totp::DbReport>& Facts::db_report() const {
  if (!db_report_) db_report_.emplace(totp::db_probe(session.config));
  return *db_report_;
}

}  // namespace doctor

namespace {

using doctor::Check;
using doctor::Status;

int run_doctor(Session& s, const doctor::DoctorOptions& o) {
  doctor::DiskFiles files;
  doctor::Facts facts(s, o, files);
  std::vector<Check> checks;
  for (doctor::CheckFn check : doctor::kChecks) {
    for (auto& c : check(facts)) checks.push_back(std::move(c));
  }

  int fails = 0;
  int warns = 0;
  for (const auto& c : checks) {
    if (c.status == Status::kFail) ++fails;
    if (c.status == Status::kWarn) ++warns;
  }
  if (o.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : checks) {
      list.push_back({{"name", c.name},
                      {"status", doctor::status_name(c.status)},
                      {"message", c.message},
                      {"fix", c.fix}});
    }
    print_json(s, {{"checks", list}, {"ok", fails == 0}});
  } else {
    for (const auto& c : checks) {
      s.out() << doctor::status_name(c.status) << "  " << c.name << ": " << c.message;
      if (!c.fix.empty()) s.out() << ". Fix: " << c.fix;
      s.out() << "\n";
    }
    s.out() << "doctor: " << checks.size() << " checks, " << fails << " failed, " << warns
            << " warning" << (warns == 1 ? "" : "s") << "\n";
  }
  return fails > 0 ? kExitRejected : kExitOk;
}

}  // namespace

Command add_doctor(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "doctor", "check config, state dir, module, PAM stacks, sshd settings and the clock");
  auto o = std::make_shared<doctor::DoctorOptions>();
  sub->add_option("--pam-dir", o->pam_dir, "PAM configuration directory (default /etc/pam.d)");
  sub->add_option("--sshd-config", o->sshd_config,
                  "sshd configuration (default /etc/ssh/sshd_config; Include followed, relative "
                  "names taken from its directory)");
  sub->add_option("--module", o->module,
                  "the installed module to check (default: search the PAM module directories)");
  sub->add_flag("--json", o->json, "print one JSON object");
  sub->footer(
      "One line per check: PASS, WARN or FAIL, what was found and the fix. Exit status 1 "
      "when a check failed.");
  return {sub, [o, sub](Session& s) -> int {
            doctor::DoctorOptions opts = *o;
            opts.sshd_config_given = sub->count("--sshd-config") > 0;
            return run_doctor(s, opts);
          }};
}

}  // namespace pbx::cli

// status: a user's enrollment, whether a second factor is required of them and why, failures
// and lockout, the required mark and the temp code, as text or one JSON object (the same row
// as pbx-mfa list: user_report.hpp).
#include <string>

#include "commands.hpp"
#include "user_report.hpp"

namespace pbx::cli {
namespace {

std::string time_or(std::int64_t t, const char* none) {
  auto j = iso8601(t);
  return j.is_null() ? std::string(none) : j.get<std::string>();
}

void print_text(Session& s, const totp::User& u, const UserRow& row) {
  const totp::UserStatus& st = row.status;
  std::ostream& out = s.out();
  if (st.enrolled) {
    out << u.name << ": enrolled (" << totp::algorithm_name(st.algorithm) << ", " << st.digits
        << " digits, " << st.period << " s)\n";
  } else {
    out << u.name << ": not enrolled\n";
  }
  out << "  required: " << (row.requirement.required() ? "yes" : "no") << " ("
      << row.requirement.reason << ")\n";
  if (st.state.required.on) {
    out << "  required mark: set by " << st.state.required.by << " at "
        << time_or(st.state.required.at, "an unknown time") << " (pbx-mfa require)\n";
  }
  if (st.temp_code_active && st.state.temp_code) {
    const totp::TempCode& t = *st.state.temp_code;
    out << "  temp code: active until " << time_or(t.expires, "?") << ", " << t.uses_left
        << (t.uses_left == 1 ? " use" : " uses") << " left, issued by " << t.issuer << "\n";
  }
  if (st.enrolled) {
    if (st.created > 0) out << "  created: " << time_or(st.created, "unknown") << "\n";
    out << "  devices: " << st.devices.size() << " (max_devices " << s.config.max_devices << ")\n";
    for (const auto& d : st.devices) {
      out << "    " << d.name << ": " << totp::algorithm_name(d.algorithm) << ", " << d.digits
          << " digits, " << d.period << " s, created " << time_or(d.created, "unknown")
          << ", last used "
          << (st.state_known ? time_or(d.last_used, "never") : std::string("unknown")) << "\n";
    }
    if (!st.state_known) {
      out << "  recovery codes left, failures, lockout, last success: unknown (the state is "
             "root's: sudo pbx-mfa status)\n";
      return;
    }
    out << "  recovery codes left: " << st.recovery_left << "\n"
        << "  failures: " << st.state.failures << "\n"
        << "  locked until: "
        << (st.locked ? time_or(st.state.locked_until, "?") : std::string("not locked")) << "\n"
        << "  last success: " << time_or(st.state.last_success, "never") << "\n";
  } else if (st.locked) {
    // A wrong temp code counts toward the lockout of a user who is not enrolled too.
    out << "  failures: " << st.state.failures << "\n"
        << "  locked until: " << time_or(st.state.locked_until, "?") << "\n";
  }
}

}  // namespace

Command add_status(CLI::App& app) {
  auto* sub = app.add_subcommand("status", "show a user's enrollment, failures and lockout");
  auto user = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("--user", *user, "another user (root only)");
  sub->add_flag("--json", *json, "print one JSON object");
  return {sub, [user, json](Session& s) -> int {
            auto u = target_user(s, *user);
            if (!u) return fail(s, u.error());
            auto store = open_store(s);
            if (!store) return fail(s, store.error());
            totp::Verifier verifier(s.config, **store, *s.env.clock);
            // A user's own status where the state is root's (state_dir): what the secret says,
            // the state's fields unknown (null) rather than a refusal.
            auto row =
                user_row(s.config, verifier, account_of(*u), nullptr,
                         s.is_root() ? totp::StateRead::kRequired : totp::StateRead::kOptional);
            if (!row) return fail(s, row.error());
            if (*json) {
              print_json(s, row->json);
            } else {
              print_text(s, *u, *row);
            }
            return row->status.enrolled ? kExitOk : kExitNotEnrolled;
          }};
}

}  // namespace pbx::cli

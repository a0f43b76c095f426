// enroll: make a secret, show the QR code, confirm a code (and the password), save, print the
// recovery codes once.
#include <charconv>
#include <optional>
#include <string>

#include "commands.hpp"
#include "confirm.hpp"
#include "events_record.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/otpauth_uri.hpp"
#include "pbx/totp/qr.hpp"
#include "pbx/totp/recovery.hpp"
#include "setup_stage.hpp"

namespace pbx::cli {
namespace {

struct EnrollOptions {
  std::string user;
  std::string issuer;
  std::string label;
  std::string algorithm;
  std::string digits;
  std::string period;
  std::string qr;
  std::string recovery_codes;
  bool force = false;
  bool no_confirm = false;
  bool json = false;
  StageOptions stage;
  // Which options were given (an empty --issuer "" is an error, not "use the default").
  CLI::Option* issuer_opt = nullptr;
  CLI::Option* label_opt = nullptr;
  CLI::Option* algorithm_opt = nullptr;
  CLI::Option* digits_opt = nullptr;
  CLI::Option* period_opt = nullptr;
  CLI::Option* qr_opt = nullptr;
  CLI::Option* recovery_opt = nullptr;
};

// The validated settings of this enrollment: the config's (as for an enrollment at login),
// then the flags.
struct Plan {
  totp::EnrollmentPlan enrollment;
  std::optional<totp::QrStyle> qr;  // nullopt: none
};

std::optional<int> parse_int(std::string_view text, int lo, int hi) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size() || v < lo || v > hi) {
    return std::nullopt;
  }
  return v;
}

std::string range_message(std::string_view flag, int lo, int hi, std::string_view got) {
  return std::string(flag) + ": expected a whole number from " + std::to_string(lo) + " to " +
         std::to_string(hi) + ", got '" + std::string(got) + "'";
}

// Validates every flag against pbx-mfa(1) (enroll) and fills in the config defaults; on error the
// message names the flag and the accepted values.
totp::Result<Plan> make_plan(Session& s, const EnrollOptions& o, const std::string& user_name) {
  using totp::Errc;
  Plan p;
  p.enrollment = totp::EnrollmentPlan::from(s.config, user_name, s.env.host_name);
  totp::EnrollmentPlan& e = p.enrollment;
  if (o.algorithm_opt->count() > 0) {
    auto a = totp::parse_algorithm(o.algorithm);
    if (!a) {
      return totp::make_error(
          Errc::kInvalid,
          "--algorithm: expected SHA1, SHA256 or SHA512, got '" + o.algorithm + "'");
    }
    e.algorithm = *a;
  }
  if (o.digits_opt->count() > 0) {
    auto d = parse_int(o.digits, totp::kMinDigits, totp::kMaxDigits);
    if (!d) {
      return totp::make_error(
          Errc::kInvalid, range_message("--digits", totp::kMinDigits, totp::kMaxDigits, o.digits));
    }
    e.digits = *d;
  }
  if (o.period_opt->count() > 0) {
    auto d = parse_int(o.period, 15, 300);
    if (!d) return totp::make_error(Errc::kInvalid, range_message("--period", 15, 300, o.period));
    e.period = *d;
  }
  if (o.recovery_opt->count() > 0) {
    auto d = parse_int(o.recovery_codes, 0, totp::kMaxRecoveryCodes);
    if (!d) {
      return totp::make_error(
          Errc::kInvalid,
          range_message("--recovery-codes", 0, totp::kMaxRecoveryCodes, o.recovery_codes));
    }
    e.recovery_codes = *d;
  }
  auto qr = qr_style(s, *o.qr_opt, o.qr, o.json);
  if (!qr) return qr.error();
  p.qr = *qr;
  if (o.issuer_opt->count() > 0) {
    if (auto problem = name_problem(o.issuer)) {
      return totp::make_error(Errc::kInvalid, "--issuer: " + *problem);
    }
    e.issuer = o.issuer;
  } else if (auto problem = name_problem(e.issuer)) {
    return totp::make_error(Errc::kInvalid,
                            "issuer '" + e.issuer + "' " + *problem + "; choose one with --issuer");
  }
  if (o.label_opt->count() > 0) {
    if (auto problem = name_problem(o.label)) {
      return totp::make_error(Errc::kInvalid, "--label: " + *problem);
    }
    e.account = o.label;
  } else if (auto problem = name_problem(e.account)) {
    return totp::make_error(Errc::kInvalid, "account name '" + e.account + "' " + *problem +
                                                "; choose one with --label");
  }
  return p;
}

void print_codes(std::ostream& os, const std::vector<totp::SecretString>& codes) {
  for (const auto& c : codes) os << "  " << c.str() << "\n";
}

int enroll(Session& s, const EnrollOptions& o) {
  auto stage = stage_of(s, o.stage, o.json, o.no_confirm);
  if (!stage) return fail(s, stage.error());
  // --no-confirm provisions a secret nobody has proven to hold: an administrator's act. A user
  // enrolling themselves always proves the code and their password.
  if (o.no_confirm && !s.is_root()) {
    return fail(s, kExitStore, "--no-confirm needs root (it is for provisioning by root)");
  }
  auto user = target_user(s, o.user);
  if (!user) return fail(s, user.error());
  const totp::User& u = *user;
  auto plan = make_plan(s, o, u.name);
  if (!plan) return fail(s, plan.error());
  const Plan& p = *plan;
  const totp::EnrollmentPlan& ep = p.enrollment;

  auto store = open_store(s);
  if (!store) return fail(s, store.error());
  // Before a secret is shown: a QR code for an enrollment that is then refused would sit in
  // the user's app as a dead entry. Exit 4 (store) rather than 2: the command line is valid,
  // the store holds something that wins, and a save that loses a race reports kExists → 4 too.
  if (auto existing = (*store)->load(u); existing) {
    if (!o.force) {
      return fail_as(s, kExitStore, "enrolled",
                     u.name +
                         " is already enrolled; the enrollment is kept (--force replaces it, "
                         "and its recovery codes)");
    }
  } else if (existing.error().code != totp::Errc::kNotEnrolled && !o.force) {
    return fail(s, existing.error());  // unsafe or corrupt: say so; --force replaces it
  }
  // Root resets the state when saving (below); an unusable state_dir should stop us now, not
  // after the user has scanned a code.
  if (s.is_root()) {
    if (auto st = (*store)->peek_state(u); !st) return fail(s, st.error());
  }

  std::optional<totp::NewEnrollment> created;
  if (auto failed = new_secret(s, *stage, ep, "enroll", created)) return *failed;
  totp::NewEnrollment& pending = *created;
  if (*stage == Stage::kBegin) return print_begin(s, pending, {{"user", u.name}});
  totp::SecretString b32 = pending.secret_base32();
  totp::SecretString grouped = pending.secret_grouped();
  totp::SecretString uri = pending.uri();

  if (!o.json) {
    s.out() << "Enrolling " << u.name << " (" << ep.issuer << ": " << ep.account << ", "
            << totp::algorithm_name(ep.algorithm) << ", " << ep.digits << " digits, " << ep.period
            << " s).\n";
  }
  // With --json stdout is the JSON object alone, but the person confirming must see the secret
  // (--finish: the page showed it).
  if ((!o.json || !o.no_confirm) && *stage == Stage::kKeyboard) {
    if (auto shown = show_secret(s, p.qr, grouped, uri, o.json); !shown) {
      return fail(s, shown.error());
    }
  }

  std::int64_t confirmed_step = totp::kNoStep;
  if (!o.no_confirm) {
    if (auto refused =
            refused_check(s, confirm_code(s, pending, confirmed_step), "code", "wrong-code",
                          ". Check that the phone's clock is right and that the app "
                          "shows " +
                              ep.issuer + ": " + ep.account + ", then enroll again.")) {
      return *refused;
    }
    // Users enrolling themselves prove who they are at the keyboard; root needs no password.
    if (!s.is_root()) {
      if (auto refused =
              refused_check(s, confirm_password(s, u.name), "password", "wrong-password")) {
        return *refused;
      }
    }
  }

  auto codes = pending.make_recovery_codes();
  if (!codes) return fail(s, codes.error());
  // Root can write the state: the save then holds the user's lock so a login sees the old
  // enrollment or the new one with its state, and marks the confirmation code as used so it
  // cannot also log in. A user enrolling themselves cannot touch the root-owned state; the new
  // id makes the old state stale, which the verifier then ignores.
  totp::SaveOptions save_options;
  save_options.overwrite = o.force;
  save_options.reset_state = s.is_root();
  auto saved = pending.save(**store, u, s.env.clock->now(), confirmed_step, save_options);
  if (!saved) {
    if (saved.error().code == totp::Errc::kExists) {
      return fail_as(s, kExitStore, "enrolled",
                     u.name + " was enrolled meanwhile; that enrollment is kept");
    }
    return fail(s, saved.error());
  }
  if (const auto& state_error = saved->state_error) {
    s.err() << "pbx-mfa: warning: enrolled, but the state could not be reset: "
            << state_error->message << "\n";
  }
  audit(s, "enrolled user=" + audit_field(u.name) +
               (*stage == Stage::kFinish ? " (--finish: key given back by the caller)" : "") +
               (o.force ? " (replacing an earlier enrollment)" : ""));
  record_event(s, "enrolled", u.name,
               std::string(*stage == Stage::kFinish ? "via enroll --finish, " : "via enroll, ") +
                   std::to_string(codes->size()) + " recovery code" +
                   (codes->size() == 1 ? "" : "s") +
                   (o.force ? ", replacing an earlier enrollment" : "") +
                   (o.no_confirm ? ", not confirmed (--no-confirm)" : ""),
               store->get());

  if (o.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : *codes) list.push_back(c.str());
    nlohmann::json j = {{"user", u.name},
                        {"secret", b32.str()},
                        {"otpauth_uri", uri.str()},
                        {"recovery_codes", std::move(list)}};
    print_secret_json(s, j);
    return kExitOk;
  }
  s.out() << "Saved: " << u.name << " is enrolled.\n";
  if (codes->empty()) {
    s.out() << "No recovery codes were made (recovery_codes = 0).\n";
  } else {
    s.out() << "Recovery codes, for when the phone is lost. Each works once; they are shown only "
               "now, so store them somewhere safe:\n";
    print_codes(s.out(), *codes);
  }
  return kExitOk;
}

}  // namespace

Command add_enroll(CLI::App& app) {
  auto* sub = app.add_subcommand("enroll", "make a secret, show the QR code, confirm a code");
  auto o = std::make_shared<EnrollOptions>();
  sub->add_option("--user", o->user, "another user (root only)");
  o->issuer_opt = sub->add_option("--issuer", o->issuer,
                                  "name shown in the app (default: config issuer, or host name)");
  o->label_opt =
      sub->add_option("--label", o->label, "account name shown in the app (default: user)");
  o->algorithm_opt = sub->add_option("--algorithm", o->algorithm, "SHA1, SHA256 or SHA512");
  o->digits_opt = sub->add_option("--digits", o->digits, "code length, 6 to 8");
  o->period_opt = sub->add_option("--period", o->period, "seconds per code, 15 to 300");
  o->qr_opt = sub->add_option("--qr", o->qr,
                              "ansi, utf8, ascii or none (default: ansi on a terminal, else none)");
  o->recovery_opt = sub->add_option("--recovery-codes", o->recovery_codes,
                                    "how many recovery codes, 0 to 20 (default: config)");
  sub->add_flag("--force", o->force, "replace an existing enrollment");
  sub->add_flag("--no-confirm", o->no_confirm, "skip the code and password check (root only)");
  sub->add_flag("--json", o->json, "print one JSON object");
  add_stage_flags(*sub, o->stage);
  return {sub, [o](Session& s) -> int { return enroll(s, *o); }};
}

}  // namespace pbx::cli

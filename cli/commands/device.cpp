// device: add, list and remove a user's authenticators (named devices, each with its own secret).
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "confirm.hpp"
#include "events_record.hpp"
#include "pbx/totp/devices.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/new_enrollment.hpp"
#include "setup_stage.hpp"
#include "user_report.hpp"

namespace pbx::cli {
namespace {

struct AddOptions {
  std::string name;
  std::string user;
  std::string qr;
  bool no_confirm = false;
  bool json = false;
  StageOptions stage;
  CLI::Option* qr_opt = nullptr;
};

struct ListOptions {
  std::string user;
  bool json = false;
};

struct RemoveOptions {
  std::string name;
  std::string user;
  bool json = false;
};

// The device name check every subcommand makes before it touches the store.
totp::Status check_name(const std::string& name) {
  if (totp::valid_device_name(name)) return totp::Ok{};
  return totp::make_error(totp::Errc::kInvalid,
                          "device name '" + audit_field(name) + "'" +
                              ": expected 1 to 32 of a-z, 0-9 and '-' (such as phone2)");
}

std::string names_of(const totp::Enrollment& e) {
  std::string out;
  for (const auto& d : e.devices) out.append(out.empty() ? "" : ", ").append(d.name);
  return out;
}

// The user's enrollment, or the exit status of a failure (3 when not enrolled).
std::optional<int> load_enrollment(Session& s, totp::Store& store, const totp::User& u,
                                   totp::Enrollment& out) {
  auto e = store.load(u);
  if (e) {
    out = std::move(e.value());
    return std::nullopt;
  }
  if (e.error().code == totp::Errc::kNotEnrolled) {
    return fail(s, kExitNotEnrolled,
                u.name + " is not enrolled: a first device comes from 'pbx-mfa enroll'");
  }
  return fail(s, e.error());
}

// After add_device or remove_device: the exit status of a failure (3 when the user is no longer
// enrolled, else 4: the store changed meanwhile or failed; nothing was changed), or nullopt
// after the audit line and the event `what` ("device-added user=U device=N"), warning first
// when the secret was saved but the state could not be written.
std::optional<int> finish_change(Session& s, totp::Store& store,
                                 const totp::Result<totp::SaveReport>& r, const std::string& what,
                                 const totp::User& u, const std::string& name) {
  if (!r) {
    return fail(s, r.error().code == totp::Errc::kNotEnrolled ? kExitNotEnrolled : kExitStore,
                r.error().message + "; nothing was changed");
  }
  if (const auto& state_error = r->state_error) {
    s.err() << "pbx-mfa: warning: " << what
            << " saved, but the state could not be written: " << state_error->message << "\n";
  }
  audit(s, what + " user=" + audit_field(u.name) + " device=" + audit_field(name));
  record_event(s, what, u.name, "device " + name, &store);
  return std::nullopt;
}

int run_add(Session& s, const AddOptions& o) {
  auto stage = stage_of(s, o.stage, o.json, o.no_confirm);
  if (!stage) return fail(s, stage.error());
  // A device nobody has proven to hold is an administrator's provisioning act.
  if (o.no_confirm && !s.is_root()) {
    return fail(s, kExitStore, "--no-confirm needs root (it is for provisioning by root)");
  }
  auto user = target_user(s, o.user);
  if (!user) return fail(s, user.error());
  const totp::User& u = *user;
  if (auto ok = check_name(o.name); !ok) return fail(s, ok.error());
  auto qr = qr_style(s, *o.qr_opt, o.qr, o.json);
  if (!qr) return fail(s, qr.error());
  // The app lists the device as "alice (phone2)", beside the entry of the first one.
  totp::EnrollmentPlan plan =
      totp::EnrollmentPlan::from(s.config, u.name + " (" + o.name + ")", s.env.host_name);
  if (auto problem = name_problem(plan.issuer)) {
    return fail(s, kExitUsage, "issuer '" + plan.issuer + "' " + *problem);
  }
  if (auto problem = name_problem(plan.account)) {
    return fail(s, kExitUsage, "account name '" + plan.account + "' " + *problem);
  }

  auto store = open_store(s);
  if (!store) return fail(s, store.error());
  // Everything that would refuse the save is checked before a secret is shown: a QR code of a
  // device that is then refused would sit in the app as a dead entry. add_device checks again
  // under the lock.
  totp::Enrollment existing;
  if (auto failed = load_enrollment(s, **store, u, existing)) return *failed;
  if (existing.find_device(o.name) != nullptr) {
    return fail(s, kExitStore,
                u.name + " already has a device named '" + o.name + "' (pbx-mfa device remove " +
                    o.name + " first, or choose another name)");
  }
  if (existing.devices.size() >= static_cast<std::size_t>(s.config.max_devices)) {
    return fail(s, kExitStore,
                u.name + " has " + std::to_string(existing.devices.size()) + " device(s) (" +
                    names_of(existing) +
                    "), the most max_devices = " + std::to_string(s.config.max_devices) +
                    " allows; remove one first (pbx-mfa device remove NAME)");
  }
  if (s.is_root()) {  // root writes the state with the device: an unusable state_dir stops now
    if (auto st = (*store)->peek_state(u); !st) return fail(s, st.error());
  }

  std::optional<totp::NewEnrollment> created;
  if (auto failed = new_secret(s, *stage, plan, "device add", created)) return *failed;
  const totp::NewEnrollment& pending = *created;
  if (*stage == Stage::kBegin) {
    return print_begin(s, pending, {{"user", u.name}, {"device", o.name}});
  }
  totp::SecretString b32 = pending.secret_base32();
  totp::SecretString grouped = pending.secret_grouped();
  totp::SecretString uri = pending.uri();
  if (!o.json) {
    s.out() << "Adding device " << o.name << " for " << u.name << " (" << plan.issuer << ": "
            << plan.account << ", " << totp::algorithm_name(plan.algorithm) << ", " << plan.digits
            << " digits, " << plan.period << " s).\n";
  }
  if ((!o.json || !o.no_confirm) && *stage == Stage::kKeyboard) {
    if (auto shown = show_secret(s, *qr, grouped, uri, o.json); !shown) {
      return fail(s, shown.error());
    }
  }

  std::int64_t confirmed_step = totp::kNoStep;
  if (!o.no_confirm) {
    if (auto refused = refused_check(
            s, confirm_code(s, pending, confirmed_step, "Code from the new device: "), "code",
            "wrong-code", ". Check that the phone's clock is right, then add it again.")) {
      return *refused;
    }
    // A user adding to their own account proves who they are with the password, then that
    // they hold a device they already have: someone at an unlocked terminal gets neither the
    // new device nor, without the password, a way to try codes of the old ones (those tries
    // are recorded nowhere). Root needs neither.
    if (!s.is_root()) {
      if (auto refused =
              refused_check(s, confirm_password(s, u.name), "password", "wrong-password")) {
        return *refused;
      }
      const std::string wrong = "Wrong code: it is the code of none of " + u.name + "'s devices (" +
                                names_of(existing) +
                                "). Type the code an app set up earlier shows now";
      // After each device's replay mark, so a code that has just logged in (seen over a
      // shoulder) proves nothing; where the state is root's (the files store) only the devices'
      // created times count as marks.
      auto existing_code = [&](const totp::SecretString& typed) {
        const std::int64_t now = s.env.clock->now();
        auto state = (*store)->peek_state(u);
        return (state ? totp::match_existing_device(existing, *state, typed.view(), s.config.window,
                                                    now)
                      : totp::match_existing_device(existing, typed.view(), s.config.window, now))
            .has_value();
      };
      if (auto refused =
              refused_check(s, confirm(s, "Code from an existing device: ", existing_code, wrong),
                            "code of an existing device", "wrong-existing-code")) {
        return *refused;
      }
    }
  }

  totp::DeviceChange change{s.config.max_devices, s.is_root()};
  auto saved =
      totp::add_device(**store, u, pending.device(o.name, s.env.clock->now(), confirmed_step),
                       confirmed_step, change);
  // Only a change made meanwhile or a store failure fails here (name and count were checked).
  if (auto failed = finish_change(s, **store, saved, "device-added", u, o.name)) return *failed;

  if (o.json) {
    nlohmann::json j = {
        {"user", u.name}, {"device", o.name}, {"secret", b32.str()}, {"otpauth_uri", uri.str()}};
    print_secret_json(s, j);
    return kExitOk;
  }
  s.out() << "Saved: device " << o.name << " added for " << u.name << ".\n";
  return kExitOk;
}

int run_list(Session& s, const ListOptions& o) {
  auto user = target_user(s, o.user);
  if (!user) return fail(s, user.error());
  auto store = open_store(s);
  if (!store) return fail(s, store.error());
  totp::Verifier verifier(s.config, **store, *s.env.clock);
  // The state is root's (state_dir): a user listing their own devices gets them from the
  // secret, without when each was last used.
  auto st =
      verifier.status(*user, s.is_root() ? totp::StateRead::kRequired : totp::StateRead::kOptional);
  if (!st) return fail(s, st.error());
  if (!st->state_known && st->enrolled) {
    s.err() << "pbx-mfa: note: last_used is unknown (the state is root's: sudo pbx-mfa device "
               "list)\n";
  }
  const int rc = st->enrolled ? kExitOk : kExitNotEnrolled;
  if (o.json) {
    print_json(s, {{"user", user->name}, {"devices", devices_json(*st)}});
    return rc;
  }
  if (!st->enrolled) {
    s.out() << user->name << ": not enrolled\n";
    return rc;
  }
  std::vector<std::vector<std::string>> table = {
      {"NAME", "CREATED", "ALGORITHM", "DIGITS", "PERIOD", "LAST USED"}};
  for (const auto& d : st->devices) {
    const nlohmann::json j = device_json(d);
    table.push_back({d.name, j["created"].is_null() ? "-" : j["created"].get<std::string>(),
                     std::string(totp::algorithm_name(d.algorithm)), std::to_string(d.digits),
                     std::to_string(d.period),
                     !st->state_known           ? "unknown"
                     : j["last_used"].is_null() ? "never"
                                                : j["last_used"].get<std::string>()});
  }
  s.out() << user->name << ": " << st->devices.size() << " of max_devices " << s.config.max_devices
          << "\n"
          << aligned_table(table);
  return rc;
}

int run_remove(Session& s, const RemoveOptions& o) {
  s.batch = o.json;  // a page sends the password once; a failure is a JSON object too
  auto user = target_user(s, o.user);
  if (!user) return fail(s, user.error());
  const totp::User& u = *user;
  if (auto ok = check_name(o.name); !ok) return fail(s, ok.error());
  auto store = open_store(s);
  if (!store) return fail(s, store.error());
  totp::Enrollment existing;
  if (auto failed = load_enrollment(s, **store, u, existing)) return *failed;
  if (existing.find_device(o.name) == nullptr) {
    return fail(
        s, kExitUsage,
        u.name + " has no device named '" + o.name + "' (devices: " + names_of(existing) + ")");
  }
  if (existing.devices.size() == 1) {
    return fail(s, kExitStore,
                "'" + o.name + "' is " + u.name +
                    "'s last device and is kept; 'pbx-mfa reset --user " + u.name +
                    "' (root) removes the whole enrollment");
  }
  // Root removes without a question; a user removing their own device proves the password
  // (a device of theirs could otherwise go from an unlocked terminal).
  if (!s.is_root()) {
    if (auto refused =
            refused_check(s, confirm_password(s, u.name), "password", "wrong-password")) {
      return *refused;
    }
  }
  totp::DeviceChange change{s.config.max_devices, s.is_root()};
  auto removed = totp::remove_device(**store, u, o.name, change);
  if (auto failed = finish_change(s, **store, removed, "device-removed", u, o.name)) return *failed;
  if (o.json) {
    print_json(s, {{"user", u.name}, {"device", o.name}, {"removed", true}});
    return kExitOk;
  }
  s.out() << "Removed: device " << o.name << " of " << u.name << ".\n";
  return kExitOk;
}

}  // namespace

Command add_device(CLI::App& app) {
  auto* sub = app.add_subcommand("device", "add, list and remove a user's authenticators");
  sub->require_subcommand(1, 1);

  auto a = std::make_shared<AddOptions>();
  auto* add_cmd = sub->add_subcommand(
      "add",
      "add a device: show its QR code, confirm a code of it (and, for yourself, the "
      "password and a code of a device you have)");
  add_cmd->add_option("NAME", a->name, "the device's name: 1 to 32 of a-z, 0-9 and '-'")
      ->required();
  add_cmd->add_option("--user", a->user, "another user (root only)");
  a->qr_opt = add_cmd->add_option(
      "--qr", a->qr, "ansi, utf8, ascii or none (default: ansi on a terminal, else none)");
  add_cmd->add_flag("--no-confirm", a->no_confirm,
                    "skip the code and password check (root only, for provisioning)");
  add_cmd->add_flag("--json", a->json, "print one JSON object");
  add_stage_flags(*add_cmd, a->stage);

  auto l = std::make_shared<ListOptions>();
  auto* list_cmd = sub->add_subcommand("list", "a user's devices (never a secret)");
  list_cmd->add_option("--user", l->user, "another user (root only)");
  list_cmd->add_flag("--json", l->json, "print one JSON object");

  auto r = std::make_shared<RemoveOptions>();
  auto* remove_cmd =
      sub->add_subcommand("remove", "remove a device (not the last one: that is reset)");
  remove_cmd->add_option("NAME", r->name, "the device's name")->required();
  remove_cmd->add_option("--user", r->user, "another user (root only)");
  remove_cmd->add_flag("--json", r->json,
                       "print one JSON object; the password (not root) is read once from stdin");

  return {sub, [add_cmd, list_cmd, remove_cmd, a, l, r](Session& s) -> int {
            if (add_cmd->parsed()) return run_add(s, *a);
            if (list_cmd->parsed()) return run_list(s, *l);
            if (remove_cmd->parsed()) return run_remove(s, *r);
            return fail(s, kExitUsage, "device: add, list or remove");
          }};
}

}  // namespace pbx::cli

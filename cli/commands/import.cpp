// import: migrate a secret from google-authenticator, an oath users file or an otpauth:// URI.
#include <istream>

#include "commands.hpp"
#include "events_record.hpp"
#include "pbx/totp/devices.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/importers.hpp"
#include "pbx/totp/recovery.hpp"

namespace pbx::cli {
namespace {

struct ImportOptions {
  std::string user;
  std::string from;
  std::string source;
  std::string device;  // --device: add the secret as this device of an existing enrollment
  bool force = false;
  bool json = false;
};

// Standard input, capped: more than the cap is refused rather than cut.
totp::Result<totp::SecretString> read_stream(std::istream& in) {
  totp::SecretString content;
  content.reserve(std::size_t{64} * 1024);
  char buf[4096];
  while (in) {
    in.read(buf, sizeof buf);
    auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    if (content.size() + n > totp::kMaxImportSize) {
      totp::wipe(buf, sizeof buf);
      return totp::make_error(totp::Errc::kInvalid,
                              "standard input: more than 1 MiB; not a secret file");
    }
    content.append(std::string_view(buf, n));
  }
  totp::wipe(buf, sizeof buf);
  if (in.bad()) return totp::make_error(totp::Errc::kIo, "cannot read standard input");
  return content;
}

bool starts_with_otpauth(std::string_view s) {
  constexpr std::string_view kScheme = "otpauth:";
  if (s.size() < kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return false;
  }
  return true;
}

// import --device: the secret becomes one more device of the user's enrollment (its id,
// recovery codes, failures and the other devices stay); scratch codes are not carried over.
int import_device(Session& s, const ImportOptions& o, totp::Store& store, const totp::User& user,
                  totp::ImportFormat format, totp::ImportedSecret& in,
                  std::vector<std::string>& notes) {
  auto existing = store.load(user);
  if (!existing) {
    if (existing.error().code == totp::Errc::kNotEnrolled) {
      return fail(s, kExitNotEnrolled,
                  user.name +
                      " is not enrolled: --device adds to an enrollment (leave it out to "
                      "import the first secret)");
    }
    return fail(s, existing.error());
  }
  if (existing->find_device(o.device) != nullptr) {
    return fail(s, kExitStore, user.name + " already has a device named '" + o.device + "'");
  }
  const int codes = static_cast<int>(in.scratch_codes.size());
  if (codes > 0) {
    notes.push_back(std::to_string(codes) + " scratch code" + (codes == 1 ? " was" : "s were") +
                    " not imported: the enrollment keeps its own recovery codes");
  }
  totp::Device d;
  d.name = o.device;
  d.secret = std::move(in.params.secret);
  d.algorithm = in.params.algorithm;
  d.digits = in.params.digits;
  d.period = in.params.period;
  d.created = s.env.clock->now();
  const totp::Algorithm algorithm = d.algorithm;
  const int digits = d.digits;
  const int period = d.period;
  auto saved = totp::add_device(store, user, std::move(d), totp::kNoStep,
                                totp::DeviceChange{s.config.max_devices, s.is_root()});
  if (!saved) {
    const totp::Errc code = saved.error().code;
    return fail(s,
                code == totp::Errc::kNotEnrolled ? kExitNotEnrolled
                : code == totp::Errc::kInvalid || code == totp::Errc::kExists
                    ? kExitStore
                    : exit_for(saved.error()),
                saved.error().message + "; nothing was saved");
  }
  if (const auto& state_error = saved->state_error) {
    s.err() << "pbx-mfa: warning: device added, but the state could not be written: "
            << state_error->message << "\n";
  }
  audit(s, "device-added user=" + audit_field(user.name) + " device=" + audit_field(o.device) +
               " (imported from " + totp::import_format_name(format) + ")");
  record_event(
      s, "device-added", user.name,
      "device " + o.device + ", via import from " + std::string(totp::import_format_name(format)),
      &store);
  if (o.json) {
    print_json(s, {{"user", user.name},
                   {"device", o.device},
                   {"from", totp::import_format_name(format)},
                   {"algorithm", totp::algorithm_name(algorithm)},
                   {"digits", digits},
                   {"period", period},
                   {"recovery_codes_imported", 0},
                   {"notes", notes}});
    return kExitOk;
  }
  s.out() << user.name << ": imported from " << totp::import_format_name(format) << " as device "
          << o.device << " (" << totp::algorithm_name(algorithm) << ", " << digits << " digits, "
          << period << " s)\n";
  for (const auto& n : notes) s.out() << "  note: " << n << "\n";
  return kExitOk;
}

int run_import(Session& s, ImportOptions& o) {
  // The command line may hold a URI: take it out of the options so it is wiped.
  totp::SecretString source(std::move(o.source));
  auto format = totp::parse_import_format(o.from);
  if (!format) {
    return fail(s, kExitUsage, "--from: must be google-authenticator, oath or uri");
  }
  const bool as_device = !o.device.empty();
  if (as_device && o.force) {
    return fail(s, kExitUsage,
                "--device adds to an enrollment and --force replaces one: give one of them");
  }
  if (as_device && !totp::valid_device_name(o.device)) {
    return fail(s, kExitUsage,
                "--device " + audit_field(o.device) +
                    ": expected 1 to 32 of a-z, 0-9 and '-' (such as phone2)");
  }
  // A user changing an enrollment they have proves the password (and, for a device, a code of
  // one they hold) through device add or enroll --force; import asks nothing, so for an enrolled
  // user only root imports (someone at an unlocked terminal would otherwise add or swap in a
  // secret of their own).
  if ((as_device || o.force) && !s.is_root()) {
    return fail(s, kExitStore,
                std::string(as_device ? "--device" : "--force") +
                    " needs root: a user adds a device with 'pbx-mfa device add' and replaces "
                    "an enrollment with 'pbx-mfa enroll --force', which check the password");
  }
  auto user = target_user(s, o.user);
  if (!user) return fail(s, user.error());

  std::vector<std::string> notes;
  totp::SecretString text;
  if (source.str() == "-") {
    if (s.env.in == nullptr) return fail(s, kExitStore, "no standard input to read");
    auto read = read_stream(*s.env.in);
    if (!read) return fail(s, read.error());
    text = std::move(read.value());
  } else if (*format == totp::ImportFormat::kUri && starts_with_otpauth(source.view())) {
    text = std::move(source);
    notes.push_back(
        "the URI was given on the command line, where other users may see it (ps); next time "
        "pass '-' and give it on standard input");
  } else {
    auto read = totp::read_import_file(std::string(source.view()), *user);  // a path
    if (!read) return fail(s, read.error());
    text = std::move(read.value());
  }

  auto imported = totp::parse_import(*format, text.view(), user->name);
  if (!imported) return fail(s, kExitUsage, imported.error().message);
  totp::ImportedSecret& in = *imported;
  for (auto& n : in.notes) notes.push_back(std::move(n));
  if (in.window_size) {
    int each_side = (*in.window_size - 1) / 2;
    if (each_side != s.config.window) {
      notes.push_back("WINDOW_SIZE " + std::to_string(*in.window_size) + " accepted codes up to " +
                      std::to_string(each_side) +
                      " steps either side of now; pbx-mfa keeps no per-user window: this host's "
                      "window = " +
                      std::to_string(s.config.window) + " (config) applies");
    }
  }
  if (*format == totp::ImportFormat::kUri && !in.params.account.empty() &&
      in.params.account != user->name) {
    notes.push_back("the URI names the account '" + in.params.account + "'; imported for user '" +
                    user->name + "'");
  }

  auto store = open_store(s);
  if (!store) return fail(s, store.error());
  if (as_device) return import_device(s, o, **store, *user, *format, in, notes);
  auto existing = (*store)->load(*user);
  if (existing) {
    if (!o.force) {
      return fail(s, kExitStore,
                  user->name + " is already enrolled; use --force to replace the enrollment");
    }
  } else if (existing.error().code == totp::Errc::kUnsafe) {
    // A symlink, a FIFO or a file with the wrong owner or mode where the secret belongs is
    // someone's doing: never write over it, even with --force.
    return fail(s, kExitStore,
                existing.error().message + "; nothing written (inspect it, then 'pbx-mfa reset')");
  } else if (existing.error().code != totp::Errc::kNotEnrolled && !o.force) {
    return fail(s, existing.error());
  }

  auto id = totp::new_enrollment_id();
  if (!id) return fail(s, id.error());
  totp::Enrollment e = totp::single_device_enrollment(
      std::move(id.value()), std::move(in.params.secret), in.params.algorithm, in.params.digits,
      in.params.period, s.env.clock->now());
  const totp::Device& d = e.devices.front();
  int codes = static_cast<int>(in.scratch_codes.size());
  if (codes > 0) {
    auto set = totp::hash_recovery_codes(in.scratch_codes);
    if (!set) return fail(s, set.error());
    e.recovery = std::move(set.value());
  }
  if (auto st = (*store)->save(*user, e, o.force); !st) {
    if (st.error().code == totp::Errc::kExists) {
      return fail(s, kExitStore,
                  user->name + " is already enrolled; use --force to replace the enrollment");
    }
    return fail(s, st.error());
  }
  audit(s, "enrolled user=" + audit_field(user->name) + " (imported from " +
               totp::import_format_name(*format) +
               (o.force ? ", replacing an earlier enrollment" : "") + ")");
  record_event(s, "enrolled", user->name,
               "via import from " + std::string(totp::import_format_name(*format)) +
                   (codes > 0 ? ", " + std::to_string(codes) + " scratch code" +
                                    (codes == 1 ? "" : "s") + " kept as recovery codes"
                              : "") +
                   (o.force ? ", replacing an earlier enrollment" : ""),
               store->get());

  if (o.json) {
    print_json(s, {{"user", user->name},
                   {"from", totp::import_format_name(*format)},
                   {"algorithm", totp::algorithm_name(d.algorithm)},
                   {"digits", d.digits},
                   {"period", d.period},
                   {"recovery_codes_imported", codes},
                   {"notes", notes}});
    return kExitOk;
  }
  s.out() << user->name << ": imported from " << totp::import_format_name(*format) << " ("
          << totp::algorithm_name(d.algorithm) << ", " << d.digits << " digits, " << d.period
          << " s)\n";
  if (codes > 0) {
    s.out() << "  " << codes << " scratch code" << (codes == 1 ? "" : "s")
            << " kept as one-time recovery codes\n";
  }
  for (const auto& n : notes) s.out() << "  note: " << n << "\n";
  if (*format != totp::ImportFormat::kUri) {
    s.out() << "  the old tool's file is left as it was: remove the secret from it once logins "
               "work with pbx-mfa\n";
  }
  return kExitOk;
}

}  // namespace

Command add_import(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "import", "migrate a secret from google-authenticator, an oath users file or an otpauth URI");
  auto o = std::make_shared<ImportOptions>();
  sub->add_option("--user", o->user, "the user the secret belongs to (another user: root only)")
      ->required();
  sub->add_option("--from", o->from, "source format: google-authenticator, oath or uri")
      ->required()
      ->check(CLI::IsMember({"google-authenticator", "oath", "uri"}));
  sub->add_option("SOURCE", o->source,
                  "a ~/.google_authenticator file, a users.oath file, a file holding the URI "
                  "(or the URI itself), or - for standard input")
      ->required();
  sub->add_option("--device", o->device,
                  "add the secret as this device of an existing enrollment (instead of "
                  "creating the enrollment)");
  sub->add_flag("--force", o->force, "replace an existing enrollment");
  sub->add_flag("--json", o->json, "print one JSON object");
  sub->footer(
      "Scratch codes of a google-authenticator file become recovery codes. Counter-based (HOTP) "
      "secrets and users.oath PINs are refused. A SOURCE that is a symbolic link is refused.");
  return {sub, [o](Session& s) -> int { return run_import(s, *o); }};
}

}  // namespace pbx::cli

// enroll and device add in two stateless steps for a web page (--begin, --finish), or in one at
// the keyboard: which stage a command line asks for, the new secret of each, and --begin's
// object. pbx-mfa(1) NON-INTERACTIVE ENROLLMENT documents the contract.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/result.hpp"
#include "session.hpp"

namespace pbx::cli {

enum class Stage {
  kKeyboard,  // show the secret, confirm a code (and the password), save: one command
  kBegin,     // make a secret, print it as JSON, save nothing
  kFinish,    // read the key back and the answers from stdin (one try each), then save
};

struct StageOptions {
  bool begin = false;
  bool finish = false;
};

// Registers --begin and --finish on `sub` (enroll, device add).
void add_stage_flags(CLI::App& sub, StageOptions& o);

// The stage the flags ask for, and batch mode (Session::batch) for --begin and --finish.
// Usage errors: --begin with --finish, either without --json or with --no-confirm.
totp::Result<Stage> stage_of(Session& s, const StageOptions& o, bool json, bool no_confirm);

// The new secret of `plan`: a fresh one, or with --finish the key on stdin's first line
// (base32, spaces and case ignored) given back (NewEnrollment::restore). `command` names the
// --begin that made it in the refusal of a key of another size ("invalid-key", exit 2); no line
// is "no-answer" (exit 1). Returns the exit status of a failure, else nullopt and `out` set.
std::optional<int> new_secret(Session& s, Stage stage, const totp::EnrollmentPlan& plan,
                              std::string_view command, std::optional<totp::NewEnrollment>& out);

// --begin's object on stdout: `fields` (user, device) and the plan's issuer, account,
// algorithm, digits, period, the secret plain and grouped, the otpauth URI and its QR code
// {"size": N, "modules": N rows of N '0'/'1', no quiet zone}. Returns the exit status.
int print_begin(Session& s, const totp::NewEnrollment& pending, nlohmann::json fields);

}  // namespace pbx::cli

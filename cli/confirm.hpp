// What enroll and device add share: the QR style of --qr, showing a new secret, and proving a
// code and the password at the keyboard.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/qr.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"
#include "session.hpp"

namespace pbx::cli {

// Tries at each prompt of a confirmation (one in batch mode: a page sends each answer once).
inline constexpr int kTries = 3;
int tries(const Session& s);

enum class Check { kPassed, kWrong, kNoAnswer };

// The drawing --qr asks for (nullopt: none). `qr_opt` is --qr (its count tells whether it was
// given): without it ansi on a terminal, else none. With --json nothing is drawn (stdout holds
// the JSON object alone) and an explicit drawing is an error.
totp::Result<std::optional<totp::QrStyle>> qr_style(const Session& s, const CLI::Option& qr_opt,
                                                    const std::string& value, bool json);

// Why an issuer or account name cannot be shown in the app, or nullopt: 1 to 128 characters,
// no control characters, no ':' (it separates issuer and account in the URI label).
std::optional<std::string> name_problem(std::string_view value);

// Prints a new secret for the person setting up the app: the QR drawing (when `qr`), the
// secret in groups of four and the URI. `to_err`: on stderr and without a drawing (--json,
// whose stdout holds the JSON object alone).
totp::Status show_secret(Session& s, const std::optional<totp::QrStyle>& qr,
                         const totp::SecretString& grouped, const totp::SecretString& uri,
                         bool to_err);

// Asks with `prompt` (none in batch mode) up to tries(s) times until `matches(typed)`; after
// each wrong answer but the last prints "`wrong` (N tries left).".
Check confirm(Session& s, std::string_view prompt,
              const std::function<bool(const totp::SecretString& typed)>& matches,
              std::string_view wrong);

// A code of the new secret `pending`; `step` receives the matched time step.
Check confirm_code(Session& s, const totp::NewEnrollment& pending, std::int64_t& step,
                   std::string_view prompt = "Current code: ");

// The password of `user_name` (Env::check_password; without one nobody passes).
Check confirm_password(Session& s, const std::string& user_name);

// A check that did not pass ends the command with exit status 1 and "wrong WHAT 3 times;
// nothing was saved" + `hint` (refusal `error`, such as "wrong-code"), or "no WHAT entered;
// nothing was saved" (refusal "no-answer"); nullopt when it passed.
std::optional<int> refused_check(Session& s, Check check, std::string_view what,
                                 std::string_view error, std::string_view hint = {});

}  // namespace pbx::cli

// Shared pieces of the subcommands: the parsed session, user resolution, errors, JSON, time.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cli.hpp"
#include "helpdesk.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"

namespace pbx::cli {

// What every subcommand gets once the global options are parsed and the config is loaded.
struct Session {
  Env& env;
  totp::Config config;
  std::string config_path;
  bool config_explicit = false;
  // Set instead of failing when the config does not load and the subcommand diagnoses it
  // (doctor); `config` then holds the defaults.
  std::optional<totp::Error> config_error;
  // Set when root runs for a member of helpdesk_groups (helpdesk.hpp): only the allowed actions,
  // on unprotected users, each with one audit line naming the member.
  std::optional<HelpdeskActor> helpdesk;
  // The non-interactive modes a web page drives (enroll and device add --begin/--finish, the
  // --json of device remove, unlock, require and reset): each answer read from stdin gets one
  // try, and a failure also prints one JSON object {"error","message"} on stdout (fail: error
  // "failed"; fail_as: a named refusal such as "wrong-code").
  bool batch = false;

  std::ostream& out() { return *env.out; }
  std::ostream& err() { return *env.err; }
  bool is_root() const { return env.uid == 0; }
};

// A subcommand registers its options on `app` and returns the action to run after parsing.
using Action = std::function<int(Session&)>;
struct Command {
  CLI::App* app = nullptr;
  Action action;
};

// "pbx-mfa: MESSAGE" on stderr (in batch mode also {"error":"failed","message"} on stdout);
// returns `code`.
int fail(Session& s, int code, const std::string& message);
// The same for a refusal a page tells apart: in batch mode {"error":`error`,"message"}.
int fail_as(Session& s, int code, std::string_view error, const std::string& message);
// Exit status for a library error (pbx-mfa(1) EXIT STATUS).
int exit_for(const totp::Error& e);
int fail(Session& s, const totp::Error& e);

// The user a subcommand acts on: the caller by default; another user needs root. In helpdesk
// mode also an unprotected user (helpdesk_check_target).
totp::Result<totp::User> target_user(Session& s, const std::string& requested,
                                     bool root_only = false);

totp::Result<std::unique_ptr<totp::Store>> open_store(Session& s);

// Exactly one JSON object and a newline on stdout.
void print_json(Session& s, const nlohmann::json& j);
// The same for an object holding secrets (a TOTP secret, recovery codes): the dumped text and
// every string in `j` are wiped afterwards.
void print_secret_json(Session& s, nlohmann::json& j);

// Who acts, for a record that names them (a temp code's issuer): the helpdesk member in helpdesk
// mode, else the invoking user.
const std::string& acting_user(const Session& s);

// Logs one audit line (Env::audit) naming who did it: "by=CALLER " + `what`; in helpdesk mode
// "by=MEMBER helpdesk " + `what`.
void audit(Session& s, const std::string& what);
// A name as one audit field: spaces, '=', quotes, brackets and non-ASCII escaped as \xHH, so a
// name cannot forge another field.
std::string audit_field(std::string_view value);

// A root-only subcommand acting on --user U through the store (reset, unlock). With its --json
// (batch mode) `act` runs with `json` set and prints {"user","action":NAME,"done":true}.
Command add_admin_command(
    CLI::App& app, const char* name, const char* description,
    std::function<int(Session&, totp::Store&, const totp::User&, bool json)> act);

// What a --json run of an admin command prints when it is done: {"user","action","done":true}
// and `extra`.
void print_done(Session& s, const std::string& user, std::string_view action,
                const nlohmann::json& extra = nlohmann::json::object());

// Root and store = postgresql, or an error saying which is missing (db, break-glass).
totp::Status need_database(Session& s);

// ISO 8601 UTC ("2026-11-22T15:04:05Z"), or JSON null for 0.
nlohmann::json iso8601(std::int64_t unix_time);

}  // namespace pbx::cli

// Every path libpam's auth dispatcher (Linux-PAM libpam/pam_dispatch.c) can take through a stack.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pam_stack.hpp"

namespace pbx::cli::doctor {

inline constexpr std::string_view kTotpModule = "pam_pbx_totp.so";

// What a module can answer, as doctor models it: a password module succeeds or fails,
// pam_permit succeeds, pam_deny fails, pam_pbx_totp succeeds or fails, anything else either.
enum class ModuleRole { kPassword, kPermit, kDeny, kTotp, kOther };
ModuleRole module_role(const PamEntry& e);
bool is_password_module(std::string_view base_name);
// By name or by a path ending in /pam_pbx_totp.so (auth_stack() keeps base names).
bool is_totp_entry(const PamEntry& e);

// libpam's action for each return value (PAM_SUCCESS..PAM_INCOMPLETE) of a control field:
// required, requisite, optional, sufficient or [value=action ...], parsed as pam_misc.c does
// (an unparsable bracket makes every action "bad"). A jump N is N > 0.
inline constexpr int kReturnValues = 32;
enum PamAction : int {
  kActIgnore = 0,
  kActOk = -1,
  kActDone = -2,
  kActBad = -3,
  kActDie = -4,
  kActReset = -5,
};
std::array<int, kReturnValues> pam_actions(std::string_view control);

// The answer of a walk. Indices are into the walked flow.
struct PamWalk {
  bool has_totp = false;      // the flow has the module
  bool has_password = false;  // ... and a password module
  bool module_runs = false;   // on some path
  // A path on which a password module succeeds and the stack succeeds without the module:
  // the entry that opened it (a sufficient/done line, a jump, a die in a substack) and the
  // password entry.
  std::optional<std::size_t> bypass;
  std::optional<std::size_t> bypass_password;
  // A path on which the module runs and fails and the stack still succeeds: the module entry.
  std::optional<std::size_t> ignored_failure;
  // A path on which the module runs while no password module has succeeded yet (with a
  // password module in the stack): the module entry and, if one ran, the failed password entry.
  std::optional<std::size_t> unguarded;
  std::optional<std::size_t> unguarded_after;
  // Not every path could be followed: an include doctor does not read, or more states than
  // kMaxWalkStates. No verdict may be PASS then.
  std::string incomplete;
  std::size_t states = 0;
};

inline constexpr std::size_t kMaxWalkStates = 100000;

// Walks a flow from PamStackReader::auth_flow(). States (entry, libpam's impression and status,
// substack states, what has run) are merged, so the walk is polynomial; past `max_states` it
// stops and says so in `incomplete`.
PamWalk walk_auth_flow(const std::vector<PamEntry>& flow, std::size_t max_states = kMaxWalkStates);

}  // namespace pbx::cli::doctor

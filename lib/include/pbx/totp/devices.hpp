// Devices of an enrollment: add one, remove one, and check a code of the existing ones without
// recording anything (pbx-mfa device).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/new_enrollment.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::totp {

struct DeviceChange {
  int max_devices = 2;  // the config's max_devices: add refuses beyond it
  // Hold the user's lock across the change and write the state with it (root with the file
  // store; always with the database): the new device's mark is set to the confirmation step,
  // a removed device's mark goes. Without it (a user acting on themselves) only the secret is
  // written; the verifier then dates the new device's mark from its created time.
  bool write_state = false;
};

// Adds `device` to the user's enrollment, keeping its id (failures, lockout and recovery codes
// stay). `confirmed_step`: the new device's confirmed code (kNoStep: none). Errors: kNotEnrolled;
// kExists (a device of that name, or one with the same secret: its codes would log in once per
// device); kInvalid (a bad name, or max_devices reached: the message
// says which). A state that cannot be written after the secret was saved is the report's
// state_error, as for NewEnrollment::save.
Result<SaveReport> add_device(Store& store, const User& user, Device device,
                              std::int64_t confirmed_step, const DeviceChange& change);

// Removes the device `name`. Errors: kNotEnrolled; kInvalid (no such device, or it is the last
// one: that is `pbx-mfa reset`).
Result<SaveReport> remove_device(Store& store, const User& user, std::string_view name,
                                 const DeviceChange& change);

// The device whose code `typed` is within ±window steps of `now` (plus the device's learned
// skew) and after its replay mark in `state` (Store::peek_state; the steps before a device was
// made count as used; a state of another enrollment counts as none), or nullopt; nothing is
// recorded (the caller proves it holds an existing device before adding one). Without the state, a
// code that has just logged in (seen over a shoulder) would pass. Spaces are ignored. Every device
// and step is computed and compared.
std::optional<std::string> match_existing_device(const Enrollment& e, const UserState& state,
                                                 std::string_view typed, int window,
                                                 std::int64_t now);
// The same without a state: only the created times count as marks. Prefer the one above.
std::optional<std::string> match_existing_device(const Enrollment& e, std::string_view typed,
                                                 int window, std::int64_t now);

}  // namespace pbx::totp

// Replay marks of devices (internal): which stored mark is a device's, and the mark a device
// starts a login from. Shared by the verifier and by add_device / remove_device /
// match_existing_device so they agree on what a mark means.
#pragma once

#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/state.hpp"

namespace pbx::totp::detail {

// Whether the stored mark `m` is device `d`'s: the same name and created time, or a version 1
// state's unbound mark (kAnyCreated) and the device "default".
bool mark_is_of(const DeviceMark& m, const Device& d) noexcept;

// The mark of device `d`: its own from the state, else a fresh one; the steps before the device
// was made count as used, whatever the state says.
DeviceMark mark_of(const Device& d, const UserState& state);

}  // namespace pbx::totp::detail

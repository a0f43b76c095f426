// Test access to devices: the first device of an enrollment, and a device's replay mark and skew
// (UserState::marks). In pbx::totp so that argument-dependent lookup finds them everywhere.
#pragma once

#include <algorithm>
#include <string_view>

#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/state.hpp"

namespace pbx::totp {

// The first device of `e`, made when there is none (tests that fill in a secret by hand).
inline Device& dev0(Enrollment& e) {
  if (e.devices.empty()) e.devices.emplace_back();
  return e.devices.front();
}
inline const Device& dev0(const Enrollment& e) { return e.devices.at(0); }

// The mark of device `name`, made (unbound, as a version 1 state's) when there is none.
inline DeviceMark& mark(UserState& s, std::string_view name = kDefaultDevice) {
  auto it = std::find_if(s.marks.begin(), s.marks.end(),
                         [&](const DeviceMark& m) { return m.device == name; });
  if (it != s.marks.end()) return *it;
  s.marks.push_back(DeviceMark{std::string(name), kAnyCreated});
  return s.marks.back();
}
// A copy of it; kNoStep and skew 0 when there is none.
inline DeviceMark mark(const UserState& s, std::string_view name = kDefaultDevice) {
  for (const auto& m : s.marks) {
    if (m.device == name) return m;
  }
  return DeviceMark{std::string(name), kAnyCreated};
}

}  // namespace pbx::totp

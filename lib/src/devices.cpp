#include "pbx/totp/devices.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <memory>

#include "device_marks.hpp"
#include "pbx/totp/state.hpp"

namespace pbx::totp {
namespace {

// The length of a secret without its trailing zero bytes: HMAC pads a key shorter than its block
// with zeros, so a secret with zero bytes appended is the same key (the same codes).
std::size_t key_length(const SecretBytes& s) noexcept {
  std::size_t n = s.size();
  while (n > 0 && s.data()[n - 1] == 0) --n;
  return n;
}

// Whether two secrets are the same key, whatever the devices' algorithms, digits and periods (a
// 6-digit code is the last 6 digits of the same key's 8-digit code).
bool same_key(const SecretBytes& a, const SecretBytes& b) noexcept {
  const std::size_t n = key_length(a);
  return n == key_length(b) && CRYPTO_memcmp(a.data(), b.data(), n) == 0;
}

// The user's enrollment, changed by `change` and saved, under the user's lock when asked.
template <class Change>
Result<SaveReport> change_devices(Store& store, const User& user, const DeviceChange& options,
                                  Change change) {
  try {
    std::unique_ptr<StateTxn> txn;
    if (options.write_state) {
      auto locked = store.lock_state(user);
      if (!locked) return locked.error();
      txn = std::move(locked.value());
    }
    auto loaded = store.load(user);
    if (!loaded) return loaded.error();
    Enrollment e = std::move(loaded.value());
    UserState state = txn ? txn->state() : UserState{};
    if (auto st = change(e, state); !st) return st.error();
    // Only marks of the devices now enrolled are kept: marks a user's own change left behind
    // (they cannot write the state) would otherwise pile up beyond kMaxDevices, which
    // parse_state refuses, and the user could no longer log in.
    std::erase_if(state.marks, [&](const DeviceMark& m) {
      return std::none_of(e.devices.begin(), e.devices.end(),
                          [&](const Device& d) { return detail::mark_is_of(m, d); });
    });
    if (auto st = store.save(user, e, true); !st) return st.error();
    SaveReport report;
    // A state of another enrollment is left alone: the verifier ignores it.
    if (txn && txn->state().enrollment_id == e.id) {
      if (auto st = txn->commit(state); !st) report.state_error = st.error();
    }
    return report;
  } catch (const std::exception& ex) {
    return make_error(Errc::kInternal, ex.what());
  }
}

}  // namespace

Result<SaveReport> add_device(Store& store, const User& user, Device device,
                              std::int64_t confirmed_step, const DeviceChange& options) {
  // A bad name is not quoted: it may hold control characters (a terminal's or a log's).
  if (!valid_device_name(device.name)) {
    return make_error(Errc::kInvalid, "device name: expected 1 to 32 of a-z, 0-9 and '-'");
  }
  return change_devices(store, user, options, [&](Enrollment& e, UserState& state) -> Status {
    if (e.find_device(device.name) != nullptr) {
      return make_error(Errc::kExists, user.name + " already has a device named '" + device.name +
                                           "' (remove it first)");
    }
    const int limit = std::clamp(options.max_devices, 1, kMaxDevices);
    if (e.devices.size() >= static_cast<std::size_t>(limit)) {
      return make_error(Errc::kInvalid, user.name + " has " + std::to_string(e.devices.size()) +
                                            " device(s), the most max_devices = " +
                                            std::to_string(limit) + " allows");
    }
    // The same secret twice would let a code accepted for one device be accepted again for the
    // other (each has its own replay mark): one seen over a shoulder would log in a second time.
    for (const auto& d : e.devices) {
      if (same_key(d.secret, device.secret)) {
        return make_error(Errc::kExists,
                          user.name + "'s device '" + d.name + "' already has this secret");
      }
    }
    std::erase_if(state.marks, [&](const DeviceMark& m) { return m.device == device.name; });
    if (confirmed_step != kNoStep) {
      state.marks.push_back(DeviceMark{device.name, device.created, confirmed_step});
    }
    e.devices.push_back(std::move(device));
    return Ok{};
  });
}

Result<SaveReport> remove_device(Store& store, const User& user, std::string_view name,
                                 const DeviceChange& options) {
  if (!valid_device_name(name)) {
    return make_error(Errc::kInvalid, "device name: expected 1 to 32 of a-z, 0-9 and '-'");
  }
  return change_devices(store, user, options, [&](Enrollment& e, UserState& state) -> Status {
    auto it = std::find_if(e.devices.begin(), e.devices.end(),
                           [&](const Device& d) { return d.name == name; });
    if (it == e.devices.end()) {
      return make_error(Errc::kInvalid,
                        user.name + " has no device named '" + std::string(name) + "'");
    }
    if (e.devices.size() == 1) {
      return make_error(Errc::kInvalid, "'" + std::string(name) + "' is " + user.name +
                                            "'s last device; `pbx-mfa reset` removes the "
                                            "enrollment");
    }
    e.devices.erase(it);
    std::erase_if(state.marks, [&](const DeviceMark& m) { return m.device == name; });
    return Ok{};
  });
}

std::optional<std::string> match_existing_device(const Enrollment& e, const UserState& state,
                                                 std::string_view typed, int window,
                                                 std::int64_t now) {
  SecretString code;
  for (char c : typed) {
    if (c != ' ' && c != '\t') code.append(c);
  }
  // A state of another enrollment (an earlier one) holds no mark of these devices.
  const UserState none;
  const UserState& own = state.enrollment_id == e.id ? state : none;
  std::optional<std::string> found;
  for (const auto& d : e.devices) {
    const DeviceMark mark = detail::mark_of(d, own);
    Hmac hmac(d.algorithm, d.secret);
    if (!hmac.ok()) return std::nullopt;
    const std::int64_t centre = time_step(now, d.period) + mark.skew;
    for (int w = -window; w <= window; ++w) {
      std::int64_t step = centre + w;
      if (step < 0) continue;
      auto value = hotp(hmac, static_cast<std::uint64_t>(step), d.digits);
      if (!value) return std::nullopt;
      SecretString expected(format_code(*value, d.digits));
      bool same =
          expected.view().size() == code.view().size() &&
          CRYPTO_memcmp(expected.view().data(), code.view().data(), code.view().size()) == 0;
      // A step at or before the device's replay mark is used: a code that logged in (or was
      // dated before the device was made) proves nothing.
      if (same && step > mark.last_step && !found) found = d.name;
    }
  }
  return found;
}

std::optional<std::string> match_existing_device(const Enrollment& e, std::string_view typed,
                                                 int window, std::int64_t now) {
  return match_existing_device(e, UserState{}, typed, window, now);
}

}  // namespace pbx::totp

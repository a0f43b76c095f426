// Hostile review of issue 16 (several devices per user): replays across devices, marks that
// outgrow what the state format allows, a used code as proof of an existing device, and device
// names echoed in errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/devices.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/verifier.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::bytes_of;
using testing::code_for_step;
using testing::has_errc;
using testing::is_ok;
using testing::kKey256;
using testing::kKey512;
using testing::kStep;
using testing::kT0;
using testing::make_device;

class DevicesReviewTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped()) return;
    config_.max_devices = 5;
    e_ = enroll(alice_);  // the device "default", the RFC key, made a day ago
  }

  // root's change: the user's lock held and the state written.
  DeviceChange as_root() const { return DeviceChange{config_.max_devices, true}; }
  // The user's own change: only the secret is written (the state is root's).
  DeviceChange as_user() const { return DeviceChange{config_.max_devices, false}; }

  void reload() {
    auto loaded = store().load(alice_);
    ASSERT_TRUE(is_ok(loaded));
    e_ = std::move(loaded.value());
  }
  std::string code_of(std::string_view name, std::int64_t offset = 0) const {
    const Device* d = e_.find_device(name);
    if (d == nullptr) throw std::runtime_error("no device");
    return code_for_step(*d, time_step(clock_.now(), d->period) + offset);
  }
  Result<Outcome> verify(std::string_view input) {
    Verifier v(config_, store(), clock_);
    return v.verify(alice_, input);
  }
  std::optional<Verdict> verdict(std::string_view input) {
    return testing::verdict_of(verify(input));
  }

  Enrollment e_;
  FixedClock clock_{kT0};
};

// The same secret as a second device gives that device its own replay mark: a code accepted for
// one device (seen over a shoulder) logged in again as the other's. `import --device` of a secret
// already enrolled, or the QR code scanned twice, does exactly that.
TEST_F(DevicesReviewTest, AddRefusesASecretAnotherDeviceAlreadyHas) {
  const std::string before = stored_secret(alice_);
  // The same key; the same key with 8 digits (a 6-digit code is the tail of the 8-digit one);
  // the same key with a zero byte appended (HMAC pads keys with zeros: the same codes).
  std::string padded(testing::kRfcKey);
  padded.push_back('\0');
  struct Copy {
    const char* name;
    std::string key;
    int digits;
  };
  const Copy copies[] = {{"copy", std::string(testing::kRfcKey), 6},
                         {"copy8", std::string(testing::kRfcKey), 8},
                         {"padded", padded, 6}};
  for (const Copy& c : copies) {
    auto r =
        add_device(store(), alice_, make_device(c.name, c.key, Algorithm::kSha1, c.digits, 30, kT0),
                   kNoStep, as_root());
    EXPECT_TRUE(has_errc(r, Errc::kExists)) << c.name;
  }
  EXPECT_EQ(stored_secret(alice_), before) << "a refused add writes nothing";
  // What the refusal prevents: one code, one login.
  const std::string code = code_of("default");
  EXPECT_EQ(verdict(code), Verdict::kAccepted);
  EXPECT_EQ(verdict(code), Verdict::kReplayed);
  // A different secret is still welcome.
  EXPECT_TRUE(is_ok(add_device(store(), alice_,
                               make_device("phone2", kKey256, Algorithm::kSha1, 6, 30, kT0),
                               kNoStep, as_root())));
}

// A user's own remove leaves the removed device's mark in the state (they cannot write it); root
// adding a device with a confirmed code then wrote one mark more than parse_state allows
// (kMaxDevices), and the user could no longer log in at all (the state read as corrupt).
TEST_F(DevicesReviewTest, AddAfterTheUsersOwnRemoveKeepsTheStateReadable) {
  const std::string_view keys[] = {kKey256, kKey512, "abcdefghijklmnopqrst",
                                   "ABCDEFGHIJKLMNOPQRST"};
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(is_ok(add_device(
        store(), alice_,
        make_device("d" + std::to_string(i), keys[i], Algorithm::kSha1, 6, 30, kT0 - 3600), kNoStep,
        as_root())));
  }
  reload();
  ASSERT_EQ(verdict(code_of("default")), Verdict::kAccepted);  // a login writes 5 marks
  ASSERT_EQ(read_state(alice_).marks.size(), 5u);
  ASSERT_TRUE(is_ok(remove_device(store(), alice_, "d3", as_user())));
  clock_.advance(kStep);
  const std::int64_t confirmed = time_step(clock_.now(), 30);
  Device fresh =
      make_device("d4", "0123456789abcdefghij", Algorithm::kSha1, 6, 30, (confirmed + 1) * 30);
  ASSERT_TRUE(is_ok(add_device(store(), alice_, std::move(fresh), confirmed, as_root())));
  reload();
  EXPECT_LE(read_state(alice_).marks.size(), static_cast<std::size_t>(kMaxDevices));
  clock_.advance(2 * kStep);
  auto out = verify(code_of("default"));
  ASSERT_TRUE(is_ok(out)) << "alice cannot log in";
  EXPECT_EQ(out->verdict, Verdict::kAccepted);
}

// The version 1 state's unbound mark of "default" survives device changes by root (they write
// the state) as it survives unlock.
TEST_F(DevicesReviewTest, AVersionOneMarkSurvivesAddAndRemoveOfAnotherDevice) {
  if (on_database()) GTEST_SKIP() << "plants a state file";
  const std::int64_t step = time_step(clock_.now(), 30);
  const std::string used = code_of("default");
  ASSERT_TRUE(testing::write_file(state_file(alice_),
                                  "version 1\nid " + e_.id + "\nlast-step " + std::to_string(step) +
                                      "\nfailures 0\nlocked-until 0\nskew 0\nlast-success 0\nend\n",
                                  0600));
  ASSERT_TRUE(is_ok(add_device(store(), alice_,
                               make_device("phone2", kKey256, Algorithm::kSha1, 6, 30, kT0 - 60),
                               kNoStep, as_root())));
  ASSERT_TRUE(is_ok(remove_device(store(), alice_, "phone2", as_root())));
  EXPECT_EQ(mark(read_state(alice_)).last_step, step);
  EXPECT_EQ(verdict(used), Verdict::kReplayed);
}

// `device add` by a user acting on themselves asks for a code of an existing device. A code that
// has just logged in (typed in front of others) must not pass that check: whoever saw it could
// add a device of their own to the account.
TEST_F(DevicesReviewTest, AUsedCodeDoesNotProveAnExistingDevice) {
  const std::string code = code_of("default");
  ASSERT_EQ(verdict(code), Verdict::kAccepted);
  auto state = store().peek_state(alice_);
  ASSERT_TRUE(is_ok(state));
  EXPECT_EQ(match_existing_device(e_, *state, code, config_.window, clock_.now()), std::nullopt);
  // The next step's code still proves it, and nothing is recorded.
  const std::string before = stored_state(alice_);
  clock_.advance(kStep);
  EXPECT_EQ(match_existing_device(e_, *state, code_of("default"), config_.window, clock_.now()),
            std::optional<std::string>("default"));
  EXPECT_EQ(stored_state(alice_), before);
  // A code from before the device was made is none of its codes, with or without a state.
  Device late = make_device("late", kKey256, Algorithm::kSha1, 6, 30, clock_.now());
  Enrollment e = single_device_enrollment(e_.id, bytes_of(kKey512), Algorithm::kSha1, 6, 30, 0);
  e.devices.push_back(std::move(late));
  const std::string early = code_for_step(e.devices[1], time_step(clock_.now(), 30) - 1);
  EXPECT_EQ(match_existing_device(e, early, 1, clock_.now()), std::nullopt);
}

// A device name is the user's input: a bad one is refused without echoing it (it may carry a
// terminal escape or a newline into a log line).
TEST_F(DevicesReviewTest, BadDeviceNamesAreNotEchoed) {
  const std::string evil = "x\n\x1b[2Jpbx-mfa: accepted user=root";
  auto added = add_device(store(), alice_, make_device(evil, kKey256, Algorithm::kSha1, 6, 30, kT0),
                          kNoStep, as_root());
  ASSERT_TRUE(has_errc(added, Errc::kInvalid));
  EXPECT_EQ(added.error().message.find_first_of("\n\x1b"), std::string::npos)
      << added.error().message;
  auto removed = remove_device(store(), alice_, evil, as_root());
  ASSERT_TRUE(has_errc(removed, Errc::kInvalid));
  EXPECT_EQ(removed.error().message.find_first_of("\n\x1b"), std::string::npos)
      << removed.error().message;
}

// Not fixed (see the review report): root removes a device and adds the same secret again under
// its name (a hardware token re-provisioned) while a code it accepted ahead of the clock is still
// inside the window: remove dropped the mark, the new created time only covers steps before now,
// so that code logs in a second time.
TEST_F(DevicesReviewTest, DISABLED_ReAddingTheSameSecretCannotReplayItsLastCode) {
  const std::string ahead = code_of("default", +1);  // a phone whose clock runs ahead
  ASSERT_EQ(verdict(ahead), Verdict::kAccepted);
  ASSERT_TRUE(is_ok(add_device(store(), alice_,
                               make_device("spare", kKey256, Algorithm::kSha1, 6, 30, kT0 - 60),
                               kNoStep, as_root())));
  ASSERT_TRUE(is_ok(remove_device(store(), alice_, "default", as_root())));
  ASSERT_TRUE(is_ok(
      add_device(store(), alice_,
                 make_device("default", testing::kRfcKey, Algorithm::kSha1, 6, 30, clock_.now()),
                 kNoStep, as_root())));
  EXPECT_EQ(verdict(ahead), Verdict::kReplayed);
}

// What a crafted state may not do: more marks than kMaxDevices, one device's mark twice, and an
// unbound (-1) mark of a device other than "default" binds nothing.
TEST_F(DevicesReviewTest, CraftedStateMarks) {
  const std::string head = "version 2\nid " + e_.id + "\nfailures 0\nlocked-until 0\n";
  std::string six;
  for (int i = 0; i < 6; ++i) six += "device d" + std::to_string(i) + " 1 5 0 0\n";
  EXPECT_TRUE(has_errc(parse_state(head + six + "end\n"), Errc::kCorrupt)) << "6 marks";
  EXPECT_TRUE(
      has_errc(parse_state(head + "device a 1 5 0 0\ndevice a 2 6 0 0\nend\n"), Errc::kCorrupt))
      << "one device's mark twice";
  EXPECT_TRUE(has_errc(parse_state(head + "device a -2 5 0 0\nend\n"), Errc::kCorrupt));
  if (on_database()) return;  // the rest plants a state file
  ASSERT_TRUE(is_ok(add_device(store(), alice_,
                               make_device("phone2", kKey256, Algorithm::kSha1, 6, 30, kT0 - 60),
                               kNoStep, as_root())));
  reload();
  const std::int64_t step = time_step(clock_.now(), 30);
  // An unbound mark names "phone2": it is not phone2's (only "default" had a version 1 mark).
  ASSERT_TRUE(testing::write_file(
      state_file(alice_), head + "device phone2 -1 " + std::to_string(step + 5) + " 0 0\nend\n",
      0600));
  EXPECT_EQ(verdict(code_of("phone2")), Verdict::kAccepted);
}

// A user removes a device themselves (the state keeps its mark) and adds one of the same name
// again: the new device starts afresh, and the removed one's codes are refused.
TEST_F(DevicesReviewTest, RemoveAndReAddByTheUserAlone) {
  ASSERT_TRUE(is_ok(add_device(store(), alice_,
                               make_device("phone", kKey256, Algorithm::kSha1, 6, 30, kT0 - 60),
                               kNoStep, as_root())));
  reload();
  const std::string old_code = code_of("phone");
  ASSERT_EQ(verdict(old_code), Verdict::kAccepted);
  ASSERT_TRUE(is_ok(remove_device(store(), alice_, "phone", as_user())));
  ASSERT_TRUE(is_ok(add_device(store(), alice_,
                               make_device("phone", kKey512, Algorithm::kSha1, 6, 30, clock_.now()),
                               kNoStep, as_user())));
  reload();
  EXPECT_EQ(verdict(old_code), Verdict::kRejected) << "the removed device's code";
  clock_.advance(kStep);
  auto out = verify(code_of("phone"));
  ASSERT_TRUE(is_ok(out));
  EXPECT_EQ(out->verdict, Verdict::kAccepted);
  EXPECT_EQ(out->device, "phone");
}

// Not fixed (see the review report): a scratch code of 8 digits (imported from Google
// Authenticator) stops working once any device has 8 digits: the verifier checks an 8-digit
// answer as a TOTP code only, though the first device (whose digits decide the recovery shape)
// has 6.
TEST_F(DevicesReviewTest, AnEightDigitDeviceKeepsEightDigitScratchCodesWorking) {
  std::vector<SecretString> scratch;
  scratch.emplace_back(std::string("12345678"));
  auto set = hash_recovery_codes(scratch, testing::kCheapKdf);
  ASSERT_TRUE(is_ok(set));
  e_.recovery = set.value();
  ASSERT_TRUE(is_ok(store().save(alice_, e_, true)));
  ASSERT_TRUE(is_ok(add_device(store(), alice_,
                               make_device("token", kKey256, Algorithm::kSha1, 8, 30, kT0 - 60),
                               kNoStep, as_root())));
  EXPECT_EQ(verdict("12345678"), Verdict::kRecoveryAccepted);
}

}  // namespace
}  // namespace pbx::totp

// Several devices per user (issue 16): the version 2 secret and state formats and the reading of
// version 1, the verifier over every device, and add_device / remove_device.
#include "pbx/totp/devices.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "pbx/totp/base32.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/verifier.hpp"
#include "store_fixture.hpp"

namespace pbx::totp {
namespace {

using testing::bytes_of;
using testing::code_for_step;
using testing::has_errc;
using testing::is_ok;
using testing::kIdA;
using testing::kKey256;
using testing::kKey512;
using testing::kStep;
using testing::kT0;
using testing::make_device;

// A secret no device of the fixture has (add_device refuses a secret already enrolled).
constexpr std::string_view kKeyNew = "abcdefghijklmnopqrstuvwxyz012345";

std::string b32(std::string_view key) { return base32_encode(bytes_of(key), false); }

// ---- the secret file format ----

TEST(DeviceFormat, VersionTwoRoundTripsEveryDevice) {
  Enrollment e;
  e.id = std::string(kIdA);
  e.created = 1700000000;
  e.devices.push_back(
      make_device("default", testing::kRfcKey, Algorithm::kSha1, 6, 30, 1700000000));
  e.devices.push_back(make_device("phone-2", kKey256, Algorithm::kSha256, 8, 60, 1700000100));
  e.devices.push_back(make_device("yubi", kKey512, Algorithm::kSha512, 7, 30, 1700000200));
  std::string text = serialize_enrollment(e);
  EXPECT_NE(text.find("version 2\n"), std::string::npos);
  auto back = parse_enrollment(text);
  ASSERT_TRUE(is_ok(back));
  ASSERT_EQ(back->devices.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const Device& a = e.devices[i];
    const Device& b = back->devices[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_TRUE(a.secret == b.secret) << a.name;
    EXPECT_EQ(a.algorithm, b.algorithm);
    EXPECT_EQ(a.digits, b.digits);
    EXPECT_EQ(a.period, b.period);
    EXPECT_EQ(a.created, b.created);
  }
  EXPECT_EQ(serialize_enrollment(*back), text);
}

TEST(DeviceFormat, VersionOneFileReadsAsTheDeviceDefault) {
  // Exactly as the previous release wrote it.
  std::string v1 = "# pbx-mfa secret file: written by pbx-mfa, do not edit\nversion 1\nid " +
                   std::string(kIdA) + "\nsecret " + b32(kKey256) +
                   "\nalgorithm SHA256\ndigits 8\nperiod 60\ncreated 1700000000\nend\n";
  auto e = parse_enrollment(v1);
  ASSERT_TRUE(is_ok(e));
  ASSERT_EQ(e->devices.size(), 1u);
  EXPECT_EQ(e->devices[0].name, "default");
  EXPECT_TRUE(e->devices[0].secret == bytes_of(kKey256));
  EXPECT_EQ(e->devices[0].algorithm, Algorithm::kSha256);
  EXPECT_EQ(e->devices[0].digits, 8);
  EXPECT_EQ(e->devices[0].period, 60);
  EXPECT_EQ(e->devices[0].created, 1700000000);
  EXPECT_EQ(e->created, 1700000000);
}

TEST(DeviceFormat, BadDeviceLinesAreRefusedWithoutQuotingThem) {
  const std::string head = "version 2\nid " + std::string(kIdA) + "\ncreated 1700000000\n";
  const std::string key = b32(testing::kRfcKey);
  const std::string good = "device default 1700000000 SHA1 6 30 " + key + "\n";
  const std::string bad[] = {
      "",                                                               // no device
      "device Phone 1700000000 SHA1 6 30 " + key + "\n",                // upper case
      "device a/b 1700000000 SHA1 6 30 " + key + "\n",                  // '/'
      "device .. 1700000000 SHA1 6 30 " + key + "\n",                   // dots
      "device " + std::string(33, 'a') + " 1 SHA1 6 30 " + key + "\n",  // 33 characters
      "device x 1700000000 MD5 6 30 " + key + "\n",                     // algorithm
      "device x 1700000000 SHA1 9 30 " + key + "\n",                    // digits
      "device x 1700000000 SHA1 6 0 " + key + "\n",                     // period
      "device x 1700000000 SHA1 6 30\n",                                // no secret
      "device x 1700000000 SHA1 6 30 " + key + " extra\n",              // a field too many
      "device x -5 SHA1 6 30 " + key + "\n",                            // created
      "device x 1700000000 SHA1 6 30 " + key + "!\n",                   // not base32
      good + good,                                                      // twice
      "secret " + key + "\n" + good,                                    // a version 1 key
  };
  for (const auto& devices : bad) {
    auto e = parse_enrollment(head + devices + "end\n");
    EXPECT_TRUE(has_errc(e, Errc::kCorrupt)) << devices;
    if (!e) {
      EXPECT_EQ(e.error().message.find(key), std::string::npos) << e.error().message;
    }
  }
  std::string six;
  for (int i = 0; i < 6; ++i) {
    six += "device d" + std::to_string(i) + " 1700000000 SHA1 6 30 " + key + "\n";
  }
  EXPECT_TRUE(has_errc(parse_enrollment(head + six + "end\n"), Errc::kCorrupt)) << "6 devices";
  EXPECT_TRUE(is_ok(parse_enrollment(head + good + "end\n")));
  EXPECT_TRUE(
      has_errc(parse_enrollment("version 3\nid " + std::string(kIdA) + "\nend\n"), Errc::kCorrupt));
}

TEST(DeviceFormat, DeviceNames) {
  for (const char* ok :
       {"default", "phone2", "a", "on-call-2", "0123456789abcdef0123456789abcdef"}) {
    EXPECT_TRUE(valid_device_name(ok)) << ok;
  }
  for (const char* bad : {"", "Phone", "a b", "a/b", "..", "é", "a_b", "a.b",
                          "0123456789abcdef0123456789abcdefg", "a\n"}) {
    EXPECT_FALSE(valid_device_name(bad)) << bad;
  }
}

// ---- the state format ----

TEST(DeviceStateFormat, VersionOneStateIsTheMarkOfDefault) {
  std::string v1 = "version 1\nid " + std::string(kIdA) +
                   "\nlast-step 56666666\nfailures 2\nlocked-until 0\nskew -1\nlast-success "
                   "1700000000\nend\n";
  auto s = parse_state(v1);
  ASSERT_TRUE(is_ok(s));
  ASSERT_EQ(s->marks.size(), 1u);
  EXPECT_EQ(s->marks[0].device, "default");
  EXPECT_EQ(s->marks[0].created, kAnyCreated);
  EXPECT_EQ(s->marks[0].last_step, 56666666);
  EXPECT_EQ(s->marks[0].skew, -1);
  EXPECT_EQ(s->failures, 2);
  // Written back as version 2, still unbound: a change that is not a login keeps the mark.
  std::string v2 = serialize_state(*s);
  EXPECT_NE(v2.find("version 2\n"), std::string::npos);
  EXPECT_NE(v2.find("device default -1 56666666 -1 1700000000\n"), std::string::npos) << v2;
  auto again = parse_state(v2);
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(again->marks, s->marks);
  // Version 2 has no last-step or skew line of its own.
  EXPECT_TRUE(has_errc(parse_state("version 2\nid " + std::string(kIdA) +
                                   "\nlast-step 5\nfailures 0\nlocked-until 0\nend\n"),
                       Errc::kCorrupt));
  EXPECT_TRUE(has_errc(parse_state("version 2\nid \nfailures 0\nlocked-until 0\ndevice A 1 2 0 "
                                   "0\nend\n"),
                       Errc::kCorrupt));
}

// ---- the verifier and the store ----

class DevicesTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped()) return;
    config_.max_devices = 5;
    e_ = enroll(alice_);
    // Two more devices, made a day before now like the first.
    add(make_device("phone2", kKey256, Algorithm::kSha256, 8, 60, kT0 - 86400));
    add(make_device("tablet", kKey512, Algorithm::kSha512, 6, 30, kT0 - 86400));
  }

  void add(Device d) {
    auto r = add_device(store(), alice_, std::move(d), kNoStep, change());
    ASSERT_TRUE(is_ok(r));
    auto loaded = store().load(alice_);
    ASSERT_TRUE(is_ok(loaded));
    e_ = std::move(loaded.value());
  }
  DeviceChange change() const { return DeviceChange{config_.max_devices, true}; }

  const Device& device(std::string_view name) const {
    const Device* d = e_.find_device(name);
    if (d == nullptr) throw std::runtime_error("no device");
    return *d;
  }
  std::string code_of(std::string_view name, std::int64_t offset = 0) const {
    const Device& d = device(name);
    return code_for_step(d, time_step(clock_.now(), d.period) + offset);
  }
  Outcome verify(std::string_view input) {
    Verifier v(config_, store(), clock_);
    auto out = v.verify(alice_, input);
    if (!out) {
      ADD_FAILURE() << out.error().message;
      return {};
    }
    return *out;
  }

  Enrollment e_;
  FixedClock clock_{kT0};
};

TEST_F(DevicesTest, EveryDevicesCodeIsAcceptedAndNamed) {
  for (const char* name : {"tablet", "phone2", "default"}) {
    clock_.advance(2 * kStep);  // a new step for every device
    auto out = verify(code_of(name));
    EXPECT_EQ(out.verdict, Verdict::kAccepted) << name;
    EXPECT_EQ(out.device, name);
  }
}

TEST_F(DevicesTest, ReplayMarksAreIndependent) {
  ASSERT_EQ(verify(code_of("default")).verdict, Verdict::kAccepted);
  // Same time step, another device: its mark has not moved.
  auto other = verify(code_of("tablet"));
  EXPECT_EQ(other.verdict, Verdict::kAccepted);
  EXPECT_EQ(other.device, "tablet");
  auto again = verify(code_of("default"));
  EXPECT_EQ(again.verdict, Verdict::kReplayed);
  EXPECT_EQ(again.device, "default");
  EXPECT_EQ(verify(code_of("tablet")).verdict, Verdict::kReplayed);
  UserState s = read_state(alice_);
  ASSERT_EQ(s.marks.size(), 3u);
  EXPECT_EQ(mark(s, "default").last_step, time_step(clock_.now(), 30));
  EXPECT_EQ(mark(s, "tablet").last_step, time_step(clock_.now(), 30));
  EXPECT_EQ(mark(s, "phone2").last_step, time_step(kT0 - 86400, 60) - 1) << "never used";
  EXPECT_EQ(mark(s, "tablet").last_used, clock_.now());
  EXPECT_EQ(mark(s, "phone2").last_used, 0);
}

TEST_F(DevicesTest, LockoutIsSharedByEveryDevice) {
  config_.max_failures = 3;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(verify("000000").verdict, Verdict::kRejected);
  for (const char* name : {"default", "phone2", "tablet"}) {
    EXPECT_EQ(verify(code_of(name)).verdict, Verdict::kLockedOut) << name;
  }
}

TEST_F(DevicesTest, ARemovedDeviceIsRefusedAtItsNextCode) {
  ASSERT_EQ(verify(code_of("phone2")).verdict, Verdict::kAccepted);
  clock_.advance(2 * 60);
  const std::string next = code_of("phone2");
  ASSERT_TRUE(is_ok(remove_device(store(), alice_, "phone2", change())));
  EXPECT_EQ(verify(next).verdict, Verdict::kRejected);
  UserState s = read_state(alice_);
  for (const auto& m : s.marks) EXPECT_NE(m.device, "phone2");
  EXPECT_EQ(verify(code_of("default")).verdict, Verdict::kAccepted);
}

TEST_F(DevicesTest, AddRefusesATakenNameABadNameAndBeyondMaxDevices) {
  const std::string before = stored_secret(alice_);
  EXPECT_TRUE(has_errc(
      add_device(store(), alice_, make_device("phone2", kKey512, Algorithm::kSha1, 6, 30, kT0),
                 kNoStep, change()),
      Errc::kExists));
  EXPECT_TRUE(has_errc(
      add_device(store(), alice_, make_device("../x", kKey512, Algorithm::kSha1, 6, 30, kT0),
                 kNoStep, change()),
      Errc::kInvalid));
  config_.max_devices = 3;
  auto full =
      add_device(store(), alice_, make_device("four", kKeyNew, Algorithm::kSha1, 6, 30, kT0),
                 kNoStep, change());
  ASSERT_TRUE(has_errc(full, Errc::kInvalid));
  EXPECT_NE(full.error().message.find("max_devices = 3"), std::string::npos);
  EXPECT_EQ(stored_secret(alice_), before) << "a refused add writes nothing";
  EXPECT_TRUE(
      has_errc(add_device(store(), bob_, make_device("x", kKey512, Algorithm::kSha1, 6, 30, kT0),
                          kNoStep, change()),
               Errc::kNotEnrolled));
}

TEST_F(DevicesTest, TheLastDeviceCannotBeRemoved) {
  ASSERT_TRUE(is_ok(remove_device(store(), alice_, "tablet", change())));
  ASSERT_TRUE(is_ok(remove_device(store(), alice_, "default", change())));
  const std::string before = stored_secret(alice_);
  EXPECT_TRUE(has_errc(remove_device(store(), alice_, "phone2", change()), Errc::kInvalid));
  EXPECT_TRUE(has_errc(remove_device(store(), alice_, "nosuch", change()), Errc::kInvalid));
  EXPECT_EQ(stored_secret(alice_), before);
  EXPECT_EQ(verify(code_of("phone2")).verdict, Verdict::kAccepted);
}

TEST_F(DevicesTest, AddKeepsFailuresAndUsedRecoveryCodes) {
  ASSERT_EQ(verify(codes_.front().str()).verdict, Verdict::kRecoveryAccepted);
  ASSERT_EQ(verify("000000").verdict, Verdict::kRejected);
  ASSERT_TRUE(is_ok(remove_device(store(), alice_, "tablet", change())));
  add(make_device("tablet2", kKey512, Algorithm::kSha512, 6, 30, kT0));
  UserState s = read_state(alice_);
  EXPECT_EQ(s.failures, 1);
  EXPECT_EQ(s.used_recovery.size(), 1u);
  EXPECT_EQ(verify(codes_.front().str()).verdict, Verdict::kRejected) << "still used";
}

TEST_F(DevicesTest, ADeviceAddedWithoutStateCannotReuseItsConfirmationCode) {
  // A user adding a device cannot write the state: the created time, put after the confirmed
  // step, is the only record of the confirmation code's use.
  const std::int64_t confirmed = time_step(clock_.now(), 30);
  Device d = make_device("watch", kKeyNew, Algorithm::kSha1, 6, 30, (confirmed + 1) * 30);
  const std::string confirmation = code_for_step(d, confirmed);
  ASSERT_TRUE(is_ok(add_device(store(), alice_, std::move(d), confirmed,
                               DeviceChange{config_.max_devices, false})));
  auto out = verify(confirmation);
  EXPECT_EQ(out.verdict, Verdict::kReplayed);
  EXPECT_EQ(out.device, "watch");
}

TEST_F(DevicesTest, AVersionOneStateKeepsItsReplayMarkThroughUnlockAndLogin) {
  if (on_database()) GTEST_SKIP() << "plants a state file";
  const std::int64_t step = time_step(clock_.now(), 30);
  const std::string used = code_of("default");
  // The previous release's state: this step's code was the last accepted.
  ASSERT_TRUE(testing::write_file(state_file(alice_),
                                  "version 1\nid " + e_.id + "\nlast-step " + std::to_string(step) +
                                      "\nfailures 1\nlocked-until 0\nskew 0\nlast-success 0\nend\n",
                                  0600));
  Verifier v(config_, store(), clock_);
  ASSERT_TRUE(is_ok(v.unlock(alice_)));  // a change that is not a login
  EXPECT_EQ(verify(used).verdict, Verdict::kReplayed);
  clock_.advance(kStep);
  EXPECT_EQ(verify(code_of("default")).verdict, Verdict::kAccepted);
}

TEST_F(DevicesTest, StatusListsDevicesWithoutSecrets) {
  ASSERT_EQ(verify(code_of("phone2")).verdict, Verdict::kAccepted);
  Verifier v(config_, store(), clock_);
  auto st = v.status(alice_);
  ASSERT_TRUE(is_ok(st));
  ASSERT_EQ(st->devices.size(), 3u);
  EXPECT_EQ(st->devices[0].name, "default");
  EXPECT_EQ(st->devices[1].name, "phone2");
  EXPECT_EQ(st->devices[1].algorithm, Algorithm::kSha256);
  EXPECT_EQ(st->devices[1].digits, 8);
  EXPECT_EQ(st->devices[1].period, 60);
  EXPECT_EQ(st->devices[1].last_used, clock_.now());
  EXPECT_EQ(st->devices[2].last_used, 0);
}

TEST_F(DevicesTest, MatchExistingDeviceRecordsNothing) {
  const std::string before = stored_state(alice_);
  EXPECT_EQ(match_existing_device(e_, code_of("phone2"), 1, clock_.now()),
            std::optional<std::string>("phone2"));
  EXPECT_EQ(match_existing_device(e_, code_of("tablet", -1), 1, clock_.now()),
            std::optional<std::string>("tablet"));
  EXPECT_EQ(match_existing_device(e_, "000000", 0, clock_.now()), std::nullopt);
  EXPECT_EQ(stored_state(alice_), before);
}

}  // namespace
}  // namespace pbx::totp

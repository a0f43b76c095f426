// The verifier with several devices (issue 16): every device is computed and compared, a match
// of one device does not end the search, and each device's replay mark and clock drift are its
// own. The check's time is not measured (that is bench/); what is asserted is what only a
// check of every device can decide: a code that earlier devices also give, but at steps they
// have used, is the last device's.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"

namespace pbx::totp {
namespace {

// The start of a 30-second step.
constexpr std::int64_t kNow = 56666667LL * 30;
// RFC 4226's key: every device below that shares a key has this one.
constexpr std::uint8_t kKey[20] = {'1', '2', '3', '4', '5', '6', '7', '8', '9', '0',
                                   '1', '2', '3', '4', '5', '6', '7', '8', '9', '0'};

struct Spec {
  std::string name;
  Algorithm algorithm = Algorithm::kSha1;
  int digits = 6;
  int period = 30;
  bool own_key = false;  // false: kKey, the same as every other such device
};

class VerifierDevicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = "/tmp/pbx-unit-devices-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    ASSERT_EQ(::mkdir((dir_ + "/secrets").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir_ + "/state").c_str(), 0700), 0);
    config_.secret_path = dir_ + "/secrets/%u";
    config_.state_dir = dir_ + "/state";
    config_.trusted_uid = ::geteuid();
    config_.window = 1;
    config_.max_failures = 10;
    config_.max_devices = 5;
    auto store = open_store(config_);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(store.value());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void enroll(const std::vector<Spec>& specs) {
    auto id = new_enrollment_id();
    ASSERT_TRUE(id.ok());
    e_.id = *id;
    e_.created = kNow - 86400;
    for (const auto& s : specs) {
      Device d;
      d.name = s.name;
      if (s.own_key) {
        auto key = generate_secret(s.algorithm);
        ASSERT_TRUE(key.ok());
        d.secret = std::move(key.value());
      } else {
        d.secret = SecretBytes(kKey, sizeof kKey);
      }
      d.algorithm = s.algorithm;
      d.digits = s.digits;
      d.period = s.period;
      d.created = e_.created;
      e_.devices.push_back(std::move(d));
    }
    auto saved = store_->save(user_, e_, /*overwrite=*/true);
    ASSERT_TRUE(saved.ok()) << saved.error().message;
  }

  // The state with these marks (device name, last step, skew), as if earlier logins left them.
  void set_marks(const std::vector<DeviceMark>& marks) {
    auto txn = store_->lock_state(user_);
    ASSERT_TRUE(txn.ok()) << txn.error().message;
    UserState s;
    s.enrollment_id = e_.id;
    s.marks = marks;
    for (auto& m : s.marks) m.created = e_.created;
    auto st = (*txn)->commit(s);
    ASSERT_TRUE(st.ok()) << st.error().message;
  }

  UserState state() {
    auto txn = store_->lock_state(user_);
    if (!txn.ok()) throw std::runtime_error(txn.error().message);
    return (*txn)->state();
  }

  std::int64_t step(std::size_t device, std::int64_t at = kNow) const {
    return time_step(at, e_.devices.at(device).period);
  }
  std::string code_at_step(std::size_t device, std::int64_t s) const {
    const Device& d = e_.devices.at(device);
    auto c = hotp(d.secret, d.algorithm, static_cast<std::uint64_t>(s), d.digits);
    if (!c) throw std::runtime_error("hotp failed");
    return format_code(*c, d.digits);
  }

  Outcome verify(std::string_view code) {
    Verifier v(config_, *store_, clock_);
    auto out = v.verify(user_, code);
    if (!out.ok()) {
      ADD_FAILURE() << out.error().message;
      return {};
    }
    return *out;
  }

  std::int64_t mark_of(const std::string& name) {
    for (const auto& m : state().marks) {
      if (m.device == name) return m.last_step;
    }
    return kNoStep;
  }

  std::string dir_;
  Config config_;
  std::unique_ptr<Store> store_;
  User user_{"pbx-unit-devices", ::geteuid(), ::getegid(), "/nonexistent"};
  FixedClock clock_{kNow};
  Enrollment e_;
};

// Five devices with one key: each gives the same code. The first four have used this step;
// the fifth has not. Stopping at the first device that matches would call it a replay.
TEST_F(VerifierDevicesTest, TheLastDevicesCodeIsAcceptedWhenEarlierDevicesMatchUsedSteps) {
  enroll({{"d1"}, {"d2"}, {"d3"}, {"d4"}, {"d5"}});
  const std::int64_t s = step(0);
  set_marks({{"d1", 0, s}, {"d2", 0, s}, {"d3", 0, s + 1}, {"d4", 0, s}, {"d5", 0, s - 5}});
  Outcome out = verify(code_at_step(0, s));
  EXPECT_EQ(out.verdict, Verdict::kAccepted);
  EXPECT_EQ(out.device, "d5");
  EXPECT_EQ(mark_of("d5"), s);
  EXPECT_EQ(mark_of("d1"), s);  // the others' marks are as they were
  EXPECT_EQ(mark_of("d3"), s + 1);
  EXPECT_EQ(state().failures, 0);
}

// The same with the fresh device in the middle: the first fresh match wins, whatever its place.
TEST_F(VerifierDevicesTest, AFreshMatchAnywhereWinsOverUsedMatchesBeforeAndAfterIt) {
  enroll({{"d1"}, {"d2"}, {"d3"}});
  const std::int64_t s = step(0);
  set_marks({{"d1", 0, s}, {"d2", 0, s - 1}, {"d3", 0, s}});
  Outcome out = verify(code_at_step(0, s));
  EXPECT_EQ(out.verdict, Verdict::kAccepted);
  EXPECT_EQ(out.device, "d2");
}

// Every device matches only steps it has used: a replay, named after the first such device.
TEST_F(VerifierDevicesTest, WhenEveryMatchIsAUsedStepItIsAReplayOfTheFirstDevice) {
  enroll({{"d1"}, {"d2"}, {"d3"}, {"d4"}, {"d5"}});
  const std::int64_t s = step(0);
  set_marks({{"d1", 0, s}, {"d2", 0, s}, {"d3", 0, s}, {"d4", 0, s}, {"d5", 0, s}});
  Outcome out = verify(code_at_step(0, s));
  EXPECT_EQ(out.verdict, Verdict::kReplayed);
  EXPECT_EQ(out.device, "d1");
  EXPECT_EQ(out.failures, 1);
}

// The last device alone has 8 digits and a key of its own: its code is checked although the
// first device's codes have 6 (the shape is any device's), and found after all the others.
TEST_F(VerifierDevicesTest, ACodeOfTheLastDevicesLengthIsCheckedAndAccepted) {
  enroll({{"phone"},
          {"tablet", Algorithm::kSha256, 6, 30, true},
          {"laptop", Algorithm::kSha512, 6, 60, true},
          {"token", Algorithm::kSha512, 8, 60, true}});
  Outcome out = verify(code_at_step(3, step(3)));
  EXPECT_EQ(out.verdict, Verdict::kAccepted);
  EXPECT_EQ(out.device, "token");
  // Its 6-digit tail is no code of the 6-digit devices (a different key each).
  EXPECT_EQ(verify(code_at_step(3, step(3) + 1).substr(2)).verdict, Verdict::kRejected);
}

// Clock drift is learned per device: the drifting device's code far ahead is accepted, the
// other device's code at the same offset is not.
TEST_F(VerifierDevicesTest, EachDeviceKeepsItsOwnClockDrift) {
  enroll(
      {{"steady", Algorithm::kSha1, 6, 30, true}, {"drifting", Algorithm::kSha256, 6, 30, true}});
  const std::int64_t s = step(0);
  set_marks({{"steady", 0, s - 10, 0}, {"drifting", 0, s - 10, 2}});
  // Three steps ahead: within the drifting device's window (centre s + 2), not the steady one's.
  Outcome drifting = verify(code_at_step(1, s + 3));
  EXPECT_EQ(drifting.verdict, Verdict::kAccepted);
  EXPECT_EQ(drifting.device, "drifting");
  EXPECT_EQ(verify(code_at_step(0, s + 3)).verdict, Verdict::kRejected);
  EXPECT_EQ(verify(code_at_step(0, s + 1)).verdict, Verdict::kAccepted);
}

// Five devices of every algorithm, digits and period: each one's code accepted, the last first.
TEST_F(VerifierDevicesTest, EveryOneOfFiveDevicesIsAccepted) {
  enroll({{"a", Algorithm::kSha1, 6, 30, true},
          {"b", Algorithm::kSha256, 8, 60, true},
          {"c", Algorithm::kSha512, 6, 30, true},
          {"d", Algorithm::kSha1, 8, 60, true},
          {"e", Algorithm::kSha512, 8, 30, true}});
  for (std::size_t i = 5; i-- > 0;) {
    Outcome out = verify(code_at_step(i, step(i)));
    EXPECT_EQ(out.verdict, Verdict::kAccepted) << e_.devices[i].name;
    EXPECT_EQ(out.device, e_.devices[i].name);
  }
}

}  // namespace
}  // namespace pbx::totp

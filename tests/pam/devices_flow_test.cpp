// Several devices per user (issue 16) through the module flow (FakeContext, fixed clock): the
// log line names the device of an accepted or replayed code, codes of devices with other
// digits are read right with try_first_pass and forward_pass, and an enrollment at the login
// makes the device "default".
#include <cstdint>
#include <string>
#include <vector>

#include "devices_fixture.hpp"
#include "flow_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/store.hpp"

namespace pbx::pam::testing {
namespace {

using devices::DeviceSpec;
using totp::Algorithm;

class DevicesFlowTest : public FlowTest {
 protected:
  DevicesFlowTest() { files_.write_config("max_devices = 5\n"); }

  // kUser enrolled with these devices, made a day before the test's clock.
  totp::Enrollment enroll(const std::vector<DeviceSpec>& specs) {
    totp::Enrollment e = devices::make_enrollment(specs, kT0 - 86400);
    devices::save_enrollment(files_.store_config(), kUser, e);
    for (const auto& d : e.devices) never_log(totp::base32_encode(d.secret, false));
    return e;
  }

  std::string code(const totp::Enrollment& e, std::size_t i, std::int64_t seconds = 0) {
    std::string c = devices::lib_code(e.devices.at(i), clock_.now() + seconds);
    never_log(c);
    return c;
  }

  // The one log line of `ctx`.
  static std::string line(const FakeContext& ctx) {
    return ctx.logs.size() == 1 ? ctx.logs[0].text : "<" + std::to_string(ctx.logs.size()) + ">";
  }
};

const std::vector<DeviceSpec> kSixAndEight = {{"phone", Algorithm::kSha1, 6, 30},
                                              {"backup-phone", Algorithm::kSha256, 8, 60}};

TEST_F(DevicesFlowTest, TheLogLineNamesTheDeviceOfAnAcceptedCode) {
  totp::Enrollment e = enroll(kSixAndEight);
  FakeContext second = with_answers({code(e, 1)});
  EXPECT_EQ(run(second), PAM_SUCCESS);
  EXPECT_NE(line(second).find(" outcome=accepted device=backup-phone"), std::string::npos)
      << line(second);
  FakeContext first = with_answers({code(e, 0)});
  EXPECT_EQ(run(first), PAM_SUCCESS);
  EXPECT_NE(line(first).find(" outcome=accepted device=phone"), std::string::npos) << line(first);
  // The whole line: the device field before the detail, and nothing else new.
  EXPECT_EQ(line(first), "service=pbx-test user=daemon rhost=- outcome=accepted device=phone")
      << line(first);
}

TEST_F(DevicesFlowTest, TheLogLineNamesTheDeviceOfAReplayedCode) {
  totp::Enrollment e = enroll(kSixAndEight);
  const std::string b = code(e, 1);
  FakeContext ok = with_answers({b});
  ASSERT_EQ(run(ok), PAM_SUCCESS);
  FakeContext again = with_answers({b});
  EXPECT_EQ(run(again), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(again), "replayed-code");
  EXPECT_NE(line(again).find(" outcome=replayed-code device=backup-phone (failures 1)"),
            std::string::npos)
      << line(again);
}

TEST_F(DevicesFlowTest, AWrongCodeNamesNoDevice) {
  totp::Enrollment e = enroll(kSixAndEight);
  FakeContext ctx = with_answers({devices::wrong_code(e, 8, clock_.now())});
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "wrong-code");
  EXPECT_EQ(line(ctx).find("device="), std::string::npos) << line(ctx);
}

TEST_F(DevicesFlowTest, AnOldSingleSecretFileLogsDeviceDefault) {
  totp::Enrollment e = devices::make_enrollment({{"default", Algorithm::kSha1, 6, 30}}, kT0 - 600);
  const totp::Device& d = e.devices[0];
  never_log(totp::base32_encode(d.secret, false));
  ASSERT_TRUE(write_file(
      files_.secret_file(kUser),
      devices::version1_secret_text(e.id, d.secret, d.algorithm, d.digits, d.period, e.created),
      0600, files_.trusted_uid()));
  ASSERT_TRUE(write_file(files_.state_file(kUser),
                         devices::version1_state_text(e.id, totp::time_step(kT0, 30) - 1), 0600,
                         files_.trusted_uid()));
  FakeContext ctx = with_answers({code(e, 0)});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_NE(line(ctx).find(" outcome=accepted device=default"), std::string::npos) << line(ctx);
  // The old mark (the step before) is honoured: that step's code is a replay of "default".
  FakeContext old = with_answers({code(e, 0, -30)});
  EXPECT_EQ(run(old), PAM_AUTH_ERR);
  EXPECT_NE(line(old).find(" outcome=replayed-code device=default"), std::string::npos)
      << line(old);
}

// try_first_pass: a token of the second device's length (8 digits, the first has 6) is taken.
TEST_F(DevicesFlowTest, TryFirstPassTakesATokenOfAnyDevicesLength) {
  totp::Enrollment e = enroll(kSixAndEight);
  FakeContext ctx;
  ctx.authtok_item = code(e, 1);
  EXPECT_EQ(run(ctx, {"try_first_pass"}), PAM_SUCCESS);
  EXPECT_TRUE(ctx.prompts.empty());
  EXPECT_NE(line(ctx).find("device=backup-phone"), std::string::npos) << line(ctx);
  // A token of neither length is a password: asked for, never counted.
  FakeContext password;
  password.authtok_item = "1234567";
  password.answer(code(e, 0));
  EXPECT_EQ(run(password, {"try_first_pass"}), PAM_SUCCESS);
  EXPECT_EQ(password.prompts.size(), 1u);
}

// forward_pass with a 6- and an 8-digit device: the code is split off whatever the password
// ends in, and the password is passed on whole.
TEST_F(DevicesFlowTest, ForwardPassSplitsOffTheCodeOfEitherDevice) {
  totp::Enrollment e = enroll(kSixAndEight);
  struct Case {
    std::string password;
    std::size_t device;
    std::int64_t at;  // seconds after the clock's time: a fresh step for every case
  };
  const std::vector<Case> cases = {
      {"hunter", 0, 0},    {"hunter", 1, 0},      {"hunter21", 0, 30},
      {"hunter21", 1, 60}, {"hunter2012", 0, 60}, {"12345678", 1, 120},
      {"97", 0, 90},       {"", 1, 180},          {"pass 1234 5678", 0, 120},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.password + " + device " + std::to_string(c.device));
    clock_.set(kT0 + c.at);
    never_log(c.password);
    FakeContext ctx = with_answers({c.password + code(e, c.device)});
    EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_SUCCESS) << line(ctx);
    ASSERT_EQ(ctx.authtok_sets.size(), 1u);
    EXPECT_EQ(ctx.authtok_sets[0], c.password);
    EXPECT_NE(line(ctx).find("device=" + e.devices[c.device].name), std::string::npos) << line(ctx);
  }
}

// With one code length (all devices 6 digits) the split is the one it always was: the last 6.
TEST_F(DevicesFlowTest, ForwardPassWithDevicesOfOneLengthTakesTheLastDigits) {
  totp::Enrollment e =
      enroll({{"phone", Algorithm::kSha1, 6, 30}, {"tablet", Algorithm::kSha512, 6, 30}});
  FakeContext ctx = with_answers({"hunter21" + code(e, 1)});
  EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_SUCCESS);
  ASSERT_EQ(ctx.authtok_sets.size(), 1u);
  EXPECT_EQ(ctx.authtok_sets[0], "hunter21");
}

// enroll_at_login saves the new key as the device "default", and its next code names it.
TEST_F(DevicesFlowTest, EnrollmentAtTheLoginMakesTheDeviceDefault) {
  files_.write_config("enroll_at_login = yes\nrecovery_codes = 0\n");
  totp::SecretBytes key;
  FakeContext ctx;
  ctx.responder = [&](const FakeContext& c, std::string_view) -> std::optional<std::string> {
    for (const auto& m : c.messages) {
      std::size_t at = m.text.find("\nKey: ");
      if (at == std::string::npos) continue;
      std::size_t end = m.text.find('\n', at + 6);
      auto decoded = totp::base32_decode(m.text.substr(at + 6, end - at - 6));
      if (!decoded) return std::nullopt;
      key = std::move(decoded.value());
      never_log(totp::base32_encode(key, false));
      totp::Device d;
      d.secret = key;
      return devices::lib_code(d, clock_.now());
    }
    return std::string();
  };
  ASSERT_EQ(run(ctx), PAM_SUCCESS);
  ASSERT_EQ(outcome_of(ctx), "enrolled-at-login");
  ASSERT_EQ(key.size(), 20u);

  auto store = totp::open_store(files_.store_config());
  auto account = totp::lookup_user(kUser);
  ASSERT_TRUE(store.ok() && account.ok());
  auto saved = (*store)->load(*account);
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  ASSERT_EQ(saved->devices.size(), 1u);
  EXPECT_EQ(saved->devices[0].name, totp::kDefaultDevice);
  EXPECT_TRUE(saved->devices[0].secret == key);

  clock_.advance(30);
  FakeContext next = with_answers({devices::lib_code(saved->devices[0], clock_.now())});
  EXPECT_EQ(run(next), PAM_SUCCESS);
  EXPECT_NE(line(next).find(" outcome=accepted device=default"), std::string::npos) << line(next);
}

}  // namespace
}  // namespace pbx::pam::testing

// Several devices per user (issue 16) through the built module and the real libpam stack: every
// device's code accepted (SHA1, SHA256 and SHA512; 6 and 8 digits; 30 and 60 s; codes made by
// the independent oathtool program), each device's replay mark its own, one lockout for the
// user, a removed device refused at its next code, and the secret and state files of the
// release before devices logging in unchanged. The suite runs on the files store, and once more
// on the throwaway PostgreSQL cluster as "pg." (ctest sets PBX_TEST_STORE=postgresql; the
// hand-written files of the old release are the files store's only).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "devices_fixture.hpp"
#include "oathtool.hpp"
#include "pam_stack.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/devices.hpp"
#include "pbx/totp/state.hpp"
#include "pg_test_db.hpp"

namespace pbx::pam::testing {
namespace {

using devices::DeviceSpec;
using totp::Algorithm;

constexpr const char* kPassword = "hunter21";  // ends in digits, as passwords often do

class DevicesStackTest : public PamStackTest {
 protected:
  void SetUp() override {
    PamStackTest::SetUp();
    if (IsSkipped()) return;
    oathtool_ = test::find_oathtool();
    ASSERT_FALSE(oathtool_.empty()) << test::kInstallOathtool;
    config_ = files_->store_config();
    config_.max_devices = 5;
    if (totp::testing::pg_store_wanted()) {
      schema_ = std::make_unique<totp::testing::PgSchema>();
      const std::string key = files_->root() + "/fleet.key";
      totp::testing::use_pg_store(config_, *schema_, key);
      store_lines_ = "store = postgresql\npg_conninfo = " + schema_->conninfo() +
                     "\npg_timeout_ms = 5000\npg_plugin = " + totp::testing::pg_plugin_path() +
                     "\nfleet_key = " + key + "\n";
      auto init = totp::db_init(config_);
      ASSERT_TRUE(init.ok()) << init.error().message;
    }
    configure("");
  }

  bool on_database() const { return schema_ != nullptr; }

  // The test config: the store's lines, max_devices = 5, then `extra`.
  void configure(const std::string& extra) {
    files_->write_config(store_lines_ + "max_devices = 5\n" + extra);
  }

  // kUser enrolled with these devices, made a day ago.
  totp::Enrollment enroll(const std::vector<DeviceSpec>& specs) {
    totp::Enrollment e = devices::make_enrollment(specs, unix_now() - 86400);
    devices::save_enrollment(config_, kUser, e);
    return e;
  }

  std::unique_ptr<totp::Store> open() const {
    auto store = totp::open_store(config_);
    if (!store) throw std::runtime_error("open_store: " + store.error().message);
    return std::move(store.value());
  }

  // Device `i`'s code now (or `seconds` from now), by oathtool.
  std::string code(const totp::Enrollment& e, std::size_t i, std::int64_t seconds = 0) const {
    return devices::oath_code(oathtool_, e.devices.at(i), unix_now() + seconds);
  }

  // The stored state (a file, or a row), read under the user's lock.
  totp::UserState state() const {
    auto store = open();
    auto txn = store->lock_state(account());
    if (!txn) throw std::runtime_error("lock_state: " + txn.error().message);
    return (*txn)->state();
  }

  // The replay mark of device `name` in the state file (kNoStep when it has none).
  std::int64_t mark_of(const std::string& name) const {
    for (const auto& m : state().marks) {
      if (m.device == name) return m.last_step;
    }
    return totp::kNoStep;
  }

  totp::User account() const {
    auto u = totp::lookup_user(kUser);
    if (!u) throw std::runtime_error("no account");
    return *u;
  }

  std::string oathtool_;
  totp::Config config_;
  std::unique_ptr<totp::testing::PgSchema> schema_;
  std::string store_lines_;
};

// Five devices, every algorithm, 6 and 8 digits, 30 and 60 s.
const std::vector<DeviceSpec> kFive = {
    {"phone", Algorithm::kSha1, 6, 30},       {"backup-phone", Algorithm::kSha256, 8, 60},
    {"tablet", Algorithm::kSha512, 6, 30},    {"laptop", Algorithm::kSha1, 8, 60},
    {"yubikey-2", Algorithm::kSha512, 8, 30},
};

TEST_F(DevicesStackTest, EachOfTwoDevicesCodesIsAcceptedAtThePrompt) {
  // The second device has longer codes and another algorithm and period than the first.
  totp::Enrollment e =
      enroll({{"phone", Algorithm::kSha1, 6, 30}, {"backup-phone", Algorithm::kSha256, 8, 60}});
  for (std::size_t i : {1u, 0u}) {
    SCOPED_TRACE(e.devices[i].name);
    Conversation conv;
    EXPECT_EQ(login(spec({code(e, i)}), conv), PAM_SUCCESS);
    EXPECT_EQ(conv.prompts.size(), 1u);
    EXPECT_NE(mark_of(e.devices[i].name), totp::kNoStep);
  }
}

TEST_F(DevicesStackTest, EachOfFiveDevicesCodesIsAcceptedThenRefusedAsAReplay) {
  configure("max_failures = 10\n");
  totp::Enrollment e = enroll(kFive);
  std::vector<std::string> codes;
  for (std::size_t i = 0; i < kFive.size(); ++i) codes.push_back(code(e, i));
  // Last device first: a later device's code is found with all the earlier ones computed.
  for (std::size_t i = kFive.size(); i-- > 0;) {
    SCOPED_TRACE(kFive[i].name);
    EXPECT_EQ(login(spec({codes[i]})), PAM_SUCCESS);
    EXPECT_EQ(state().failures, 0);
  }
  for (std::size_t i = 0; i < kFive.size(); ++i) {
    SCOPED_TRACE(kFive[i].name);
    EXPECT_EQ(login(spec({codes[i]})), PAM_AUTH_ERR);
  }
  EXPECT_EQ(state().failures, static_cast<int>(kFive.size()));
}

TEST_F(DevicesStackTest, EachDevicesReplayMarkIsItsOwn) {
  // Same period, so "the same step" means the same for both.
  totp::Enrollment e =
      enroll({{"phone", Algorithm::kSha1, 6, 30}, {"backup-phone", Algorithm::kSha512, 8, 30}});
  const std::string a = code(e, 0);
  const std::string b = code(e, 1);
  EXPECT_EQ(login(spec({a})), PAM_SUCCESS);
  const std::int64_t step = mark_of("phone");
  // B's mark stays where its created time put it (the steps before it count as used).
  EXPECT_LT(mark_of("backup-phone"), step - 1) << "B's mark moved with A's code";
  // B's code of the step A just used is still B's to use.
  EXPECT_EQ(login(spec({b})), PAM_SUCCESS);
  EXPECT_GE(mark_of("backup-phone"), step);
  EXPECT_EQ(mark_of("phone"), step);
  // Each is used up now: A's again and B's again are replays.
  EXPECT_EQ(login(spec({a})), PAM_AUTH_ERR);
  EXPECT_EQ(login(spec({b})), PAM_AUTH_ERR);
  EXPECT_EQ(state().failures, 2);
  // A's next step is fresh (window 1) whatever B did.
  EXPECT_EQ(login(spec({code(e, 0, 30)})), PAM_SUCCESS);
}

TEST_F(DevicesStackTest, FailuresOfEveryKindAndDeviceCountTowardOneLockout) {
  configure("max_failures = 3\nlockout = 300\n");
  totp::Enrollment e = enroll({{"phone", Algorithm::kSha1, 6, 30},
                               {"backup-phone", Algorithm::kSha256, 8, 60},
                               {"tablet", Algorithm::kSha512, 6, 30}});
  const std::int64_t now = unix_now();
  const std::string b = code(e, 1);
  ASSERT_EQ(login(spec({b})), PAM_SUCCESS);
  EXPECT_EQ(login(spec({devices::wrong_code(e, 6, now)})), PAM_AUTH_ERR);  // wrong, 6 digits
  EXPECT_EQ(login(spec({b})), PAM_AUTH_ERR);                               // B's replay
  EXPECT_EQ(state().failures, 2);
  EXPECT_EQ(state().locked_until, 0);
  EXPECT_EQ(login(spec({devices::wrong_code(e, 8, now)})), PAM_AUTH_ERR);  // wrong, 8 digits
  EXPECT_EQ(state().failures, 3);
  EXPECT_GT(state().locked_until, unix_now());
  const std::vector<totp::DeviceMark> marks = state().marks;
  // Locked out: no device's right code gets in, and nobody is asked.
  for (std::size_t i = 0; i < e.devices.size(); ++i) {
    SCOPED_TRACE(e.devices[i].name);
    Conversation conv;
    EXPECT_EQ(login(spec({code(e, i, i == 1 ? 60 : 30)}), conv), PAM_AUTH_ERR);
    EXPECT_TRUE(conv.prompts.empty());
  }
  EXPECT_EQ(state().marks, marks) << "a locked-out login moved a replay mark";
  EXPECT_EQ(state().failures, 3);
}

TEST_F(DevicesStackTest, ARemovedDevicesCodeIsRefusedAtItsNextUse) {
  totp::Enrollment e =
      enroll({{"phone", Algorithm::kSha1, 6, 30}, {"old-phone", Algorithm::kSha256, 6, 30}});
  ASSERT_EQ(login(spec({code(e, 1)})), PAM_SUCCESS);  // it worked a moment ago
  auto store = open();
  auto removed = totp::remove_device(*store, account(), "old-phone",
                                     totp::DeviceChange{5, /*write_state=*/true});
  ASSERT_TRUE(removed.ok()) << removed.error().message;

  EXPECT_EQ(login(spec({code(e, 1, 30)})), PAM_AUTH_ERR);  // its next step: fresh, but gone
  EXPECT_EQ(state().failures, 1);
  EXPECT_EQ(login(spec({code(e, 0)})), PAM_SUCCESS);  // the other device is untouched
  for (const auto& m : state().marks) EXPECT_NE(m.device, "old-phone");
}

// try_first_pass: PAM_AUTHTOK (here stored by pam_exec, which asks for it) is taken as the code
// when it has the shape of any device's code, not only the first device's.
TEST_F(DevicesStackTest, TryFirstPassTakesACodeOfTheSecondDevicesLength) {
  write_service(kService, "try_first_pass",
                "auth required pam_exec.so quiet expose_authtok /bin/true\n");
  totp::Enrollment e =
      enroll({{"phone", Algorithm::kSha1, 6, 30}, {"backup-phone", Algorithm::kSha256, 8, 60}});
  Conversation conv;
  EXPECT_EQ(login(spec({code(e, 1)}), conv), PAM_SUCCESS);
  EXPECT_EQ(conv.prompts.size(), 1u) << "the token was a code: no second question";
  Conversation first;
  EXPECT_EQ(login(spec({code(e, 0)}), first), PAM_SUCCESS);
  EXPECT_EQ(first.prompts.size(), 1u);
}

// forward_pass with a 6- and an 8-digit device and a password that ends in digits: either
// device's code is split off right, and the password module after it gets the password.
TEST_F(DevicesStackTest, ForwardPassSplitsEitherDevicesCodeOffAPasswordEndingInDigits) {
  const std::string check = files_->root() + "/check-password";
  ASSERT_TRUE(write_file(check,
                         "#!/bin/sh\n"
                         "pw=$(head -c 256 | tr -d '\\000')\n"
                         "[ \"$pw\" = \"" +
                             std::string(kPassword) + "\" ]\n",
                         0755, 0, 0));
  const std::string text = "auth required " + std::string(kModule) +
                           " config=" + files_->config_path() +
                           " nodelay forward_pass\n"
                           "auth required pam_exec.so quiet expose_authtok " +
                           check + "\n";
  ASSERT_TRUE(write_file(confdir_ + "/" + kService, text, 0644, 0, 0));
  totp::Enrollment e =
      enroll({{"phone", Algorithm::kSha1, 6, 30}, {"backup-phone", Algorithm::kSha512, 8, 30}});
  for (std::size_t i : {1u, 0u}) {
    SCOPED_TRACE(e.devices[i].name);
    Conversation conv;
    EXPECT_EQ(login(spec({std::string(kPassword) + code(e, i)}), conv), PAM_SUCCESS);
    EXPECT_EQ(conv.prompts.size(), 1u);
  }
  // The wrong password with a right code: the code is taken, the password module refuses.
  EXPECT_NE(login(spec({"hunter22" + code(e, 1, 30)})), PAM_SUCCESS);
  EXPECT_EQ(state().failures, 0);
}

// The secret and state files of the release before devices, written by hand exactly as it
// wrote them: the one key is the device "default", its replay mark is honoured, and the
// secret file is left as it was.
TEST_F(DevicesStackTest, AnOldSingleSecretFileLogsInUnchangedAndItsReplayMarkHolds) {
  if (on_database()) GTEST_SKIP() << "files of the files store (old rows: tests/db)";
  struct Old {
    Algorithm algorithm;
    int digits;
    int period;
  };
  for (const Old& old : {Old{Algorithm::kSha1, 6, 30}, Old{Algorithm::kSha256, 8, 60},
                         Old{Algorithm::kSha512, 6, 30}}) {
    SCOPED_TRACE(totp::algorithm_name(old.algorithm));
    totp::Enrollment e = devices::make_enrollment(
        {{"default", old.algorithm, old.digits, old.period}}, unix_now() - 86400 * 30);
    const totp::Device& d = e.devices[0];
    const std::string secret_text =
        devices::version1_secret_text(e.id, d.secret, d.algorithm, d.digits, d.period, e.created);
    const std::int64_t step = totp::time_step(unix_now(), d.period);
    ASSERT_TRUE(write_file(files_->secret_file(kUser), secret_text, 0600, 0, 0));
    ASSERT_TRUE(write_file(files_->state_file(kUser), devices::version1_state_text(e.id, step),
                           0600, 0, 0));

    // The code of the step the old state marks as used: a replay.
    EXPECT_EQ(login(spec({code(e, 0)})), PAM_AUTH_ERR);
    EXPECT_EQ(state().failures, 1);
    // The next step's code (window 1): in.
    EXPECT_EQ(login(spec({code(e, 0, d.period)})), PAM_SUCCESS);
    EXPECT_EQ(read_all(files_->secret_file(kUser)), secret_text);
    totp::UserState after = state();
    EXPECT_EQ(after.failures, 0);
    ASSERT_EQ(after.marks.size(), 1u);
    EXPECT_EQ(after.marks[0].device, "default");
    EXPECT_EQ(after.marks[0].last_step, step + 1);
    EXPECT_EQ(login(spec({code(e, 0, d.period)})), PAM_AUTH_ERR);
  }
}

}  // namespace
}  // namespace pbx::pam::testing

// pbx-mfa device add/list/remove in-process (issue 16): the confirmation dialogue (a code of the
// new device; for a user on themselves also the password and a code of a device they have),
// root's provisioning, max_devices, names, nothing written on refusal, list and status JSON
// without secrets, the last device kept, import --device, and the helpdesk's device list.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "helpdesk_fixture.hpp"
#include "pbx/totp/base32.hpp"

namespace pbx::cli::testing {
namespace {

using Script = std::function<std::string()>;

class DeviceTest : public HelpdeskTest {
 protected:
  void SetUp() override {
    HelpdeskTest::SetUp();
    if (IsSkipped()) return;
    write_config("recovery_codes = 0\n");  // max_devices: its default, 2
    // Each prompt takes the next answer; the answers see what was printed so far.
    env_.read_secret = [this](std::string_view prompt) -> std::optional<totp::SecretString> {
      prompts_.emplace_back(prompt);
      err_ << prompt;
      if (script_.empty()) return std::nullopt;
      Script next = script_.front();
      script_.erase(script_.begin());
      return totp::SecretString(next());
    };
  }

  // Root enrolls `name` (device "default"); returns its URI.
  std::string enroll_uri(const std::string& name) {
    clear();
    EXPECT_EQ(run_cli({"enroll", "--user", name, "--no-confirm", "--json"}), 0) << err();
    return nlohmann::json::parse(out())["otpauth_uri"];
  }
  // Root adds `device` without confirmation; returns its URI.
  std::string add_uri(const std::string& name, const std::string& device) {
    clear();
    EXPECT_EQ(run_cli({"device", "add", device, "--user", name, "--no-confirm", "--json"}), 0)
        << err();
    return nlohmann::json::parse(out())["otpauth_uri"];
  }
  // Answers: the code the new device (the URI printed by this run) shows now, a code of `uri`,
  // a literal line.
  Script new_code() {
    return [this] { return code_for(find_uri(out_.str() + err_.str()), clock_.now()); };
  }
  Script code_of(const std::string& uri) {
    return [this, uri] { return code_for(uri, clock_.now()); };
  }
  // A code of the right shape that the new device shows at no step of a window of 3.
  Script wrong_new_code() {
    return [this] {
      const std::string uri = find_uri(out_.str() + err_.str());
      for (int candidate = 0;; ++candidate) {
        std::string c = totp::format_code(static_cast<std::uint32_t>(candidate), 6);
        bool used = false;
        for (int d = -3; d <= 3; ++d) used = used || c == code_for(uri, clock_.now(), d);
        if (!used) return c;
      }
    };
  }
  static Script line(std::string s) {
    return [s] { return s; };
  }
  std::vector<std::string> device_names(const std::string& name) {
    auto e = load(name);
    std::vector<std::string> names;
    if (e) {
      for (const auto& d : e->devices) names.push_back(d.name);
    }
    return names;
  }
  std::optional<totp::Outcome> outcome(const std::string& name, const std::string& code) {
    auto c = config();
    auto s = store();
    totp::Verifier v(c, *s, clock_);
    auto r = v.verify(user(name), code);
    if (!r) return std::nullopt;
    return *r;
  }

  std::vector<Script> script_;
};

using Names = std::vector<std::string>;

TEST_F(DeviceTest, UserAddsForThemselvesWithNewCodePasswordAndExistingCode) {
  const std::string first = enroll_uri("daemon");
  become("daemon");
  clear();
  script_ = {new_code(), line(kRightPassword), code_of(first)};
  ASSERT_EQ(run_cli({"device", "add", "phone2", "--qr", "none"}), 0) << err();
  EXPECT_EQ(prompts_,
            (Names{"Code from the new device: ", "Password: ", "Code from an existing device: "}));
  EXPECT_EQ(password_users_, Names{"daemon"});
  EXPECT_EQ(device_names("daemon"), (Names{"default", "phone2"}));
  EXPECT_NE(out().find("Saved: device phone2 added for daemon."), std::string::npos) << out();
  EXPECT_EQ(audit_.back(), "by=daemon device-added user=daemon device=phone2");
  // The label names the device; the stored secret is the one shown.
  const std::string uri = find_uri(out());
  EXPECT_NE(uri.find(":daemon%20%28phone2%29?"), std::string::npos) << uri;
  auto params = totp::parse_otpauth_uri(uri);
  ASSERT_TRUE(params.ok());
  EXPECT_TRUE(params->secret == load("daemon")->find_device("phone2")->secret);
  // The confirmation code does not also log in; the next one does, and names the device.
  auto replay = outcome("daemon", code_for(uri, kNow));
  ASSERT_TRUE(replay);
  EXPECT_NE(replay->verdict, totp::Verdict::kAccepted);
  clock_.advance(30);
  auto next = outcome("daemon", code_for(uri, clock_.now()));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->verdict, totp::Verdict::kAccepted);
  EXPECT_EQ(next->device, "phone2");
}

TEST_F(DeviceTest, TheNewDevicesCodeIsNoCodeOfAnExistingDevice) {
  enroll_uri("daemon");
  become("daemon");
  clear();
  auto before = snapshot();
  // Typing the new device's code where the old device's is asked for, three times.
  script_ = {new_code(), line(kRightPassword), new_code(), new_code(), new_code()};
  EXPECT_EQ(run_cli({"device", "add", "phone2"}), 1);
  EXPECT_EQ(prompts_.size(), 5u);
  EXPECT_NE(err().find("Wrong code: it is the code of none of daemon's devices (default)"),
            std::string::npos)
      << err();
  EXPECT_NE(err().find("wrong code of an existing device 3 times; nothing was saved"),
            std::string::npos)
      << err();
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(device_names("daemon"), Names{"default"});
}

TEST_F(DeviceTest, ACodeThatHasJustLoggedInProvesNoExistingDevice) {
  const std::string first = enroll_uri("daemon");
  clock_.advance(30);
  auto login = outcome("daemon", code_for(first, clock_.now()));
  ASSERT_TRUE(login);
  ASSERT_EQ(login->verdict, totp::Verdict::kAccepted);
  become("daemon");
  auto before = snapshot();
  clear();
  script_ = {new_code(), line(kRightPassword), code_of(first), code_of(first), code_of(first)};
  EXPECT_EQ(run_cli({"device", "add", "phone2"}), 1);
  EXPECT_NE(err().find("wrong code of an existing device 3 times"), std::string::npos) << err();
  EXPECT_EQ(snapshot(), before);
  // The next step's code proves it.
  clock_.advance(30);
  clear();
  script_ = {new_code(), line(kRightPassword), code_of(first)};
  EXPECT_EQ(run_cli({"device", "add", "phone2"}), 0) << err();
  EXPECT_EQ(device_names("daemon"), (Names{"default", "phone2"}));
}

// Review (issue 16), OPEN: the test above reads the state because the tests run as root. A
// real user cannot read root's state_dir (files store), so device add falls back to
// match_existing_device without a state and the code that has just logged in (seen over a
// shoulder) passes as "a device you have". Simulated here by a state_dir peek_state refuses.
// Disabled until device add refuses (or otherwise proves freshness) without the state.
TEST_F(DeviceTest, DISABLED_ACodeThatHasJustLoggedInProvesNothingWithoutTheState) {
  const std::string first = enroll_uri("daemon");
  clock_.advance(30);
  auto login = outcome("daemon", code_for(first, clock_.now()));
  ASSERT_TRUE(login);
  ASSERT_EQ(login->verdict, totp::Verdict::kAccepted);
  ASSERT_EQ(::chmod(state_dir_.c_str(), 0755), 0);  // peek_state: "state_dir is not private"
  become("daemon");
  clear();
  script_ = {new_code(), line(kRightPassword), code_of(first), code_of(first), code_of(first)};
  EXPECT_EQ(run_cli({"device", "add", "phone2"}), 1) << err();
  ASSERT_EQ(::chmod(state_dir_.c_str(), 0700), 0);
  EXPECT_EQ(device_names("daemon"), Names{"default"});
}

TEST_F(DeviceTest, WrongCodeOrPasswordOrNoAnswerWritesNothing) {
  const std::string first = enroll_uri("daemon");
  become("daemon");
  auto before = snapshot();
  const std::vector<std::pair<std::vector<Script>, std::string>> cases = {
      {{wrong_new_code(), wrong_new_code(), wrong_new_code()},
       "wrong code 3 times; nothing was saved"},
      {{new_code(), line("a"), line("b"), line("c")}, "wrong password 3 times; nothing was saved"},
      {{}, "no code entered; nothing was saved"},
      {{new_code(), line(kRightPassword)}, "no code of an existing device entered"},
  };
  for (const auto& [answers, message] : cases) {
    clear();
    script_ = answers;
    EXPECT_EQ(run_cli({"device", "add", "phone2"}), 1) << message;
    EXPECT_NE(err().find(message), std::string::npos) << err();
    EXPECT_EQ(snapshot(), before) << message;
  }
  EXPECT_EQ(device_names("daemon"), Names{"default"});
}

TEST_F(DeviceTest, RootAddsForAnyoneWithTheNewDevicesCodeOnly) {
  enroll_uri("daemon");
  clear();
  script_ = {new_code()};
  ASSERT_EQ(run_cli({"device", "add", "phone2", "--user", "daemon"}), 0) << err();
  EXPECT_EQ(prompts_, Names{"Code from the new device: "});
  EXPECT_TRUE(password_users_.empty());
  EXPECT_EQ(device_names("daemon"), (Names{"default", "phone2"}));
  EXPECT_EQ(audit_.back(), "by=root device-added user=daemon device=phone2");
  // Root writes the state: the confirmation code is marked used.
  auto replay = outcome("daemon", code_for(find_uri(out()), kNow));
  ASSERT_TRUE(replay);
  EXPECT_EQ(replay->verdict, totp::Verdict::kReplayed);
}

TEST_F(DeviceTest, NoConfirmIsForRootOnly) {
  enroll_uri("daemon");
  become("daemon");
  auto before = snapshot();
  clear();
  EXPECT_EQ(run_cli({"device", "add", "phone2", "--no-confirm"}), kExitStore);
  EXPECT_NE(err().find("--no-confirm needs root"), std::string::npos) << err();
  EXPECT_TRUE(prompts_.empty());
  EXPECT_EQ(find_uri(out() + err()), "");
  EXPECT_EQ(snapshot(), before);
}

TEST_F(DeviceTest, RootProvisionsWithNoConfirmAndJson) {
  enroll_uri("daemon");
  clear();
  ASSERT_EQ(run_cli({"device", "add", "phone2", "--user", "daemon", "--no-confirm", "--json"}), 0)
      << err();
  EXPECT_TRUE(prompts_.empty());
  auto j = nlohmann::json::parse(out());
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"user", "device", "secret", "otpauth_uri"}));
  EXPECT_EQ(j["user"], "daemon");
  EXPECT_EQ(j["device"], "phone2");
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  ASSERT_NE(e->find_device("phone2"), nullptr);
  EXPECT_EQ(j["secret"], totp::base32_encode(e->find_device("phone2")->secret, false));
  EXPECT_EQ(err(), "");  // nothing to confirm: the secret is on stdout only
}

TEST_F(DeviceTest, MaxDevicesIsEnforcedBeforeASecretIsShown) {
  enroll_uri("daemon");
  add_uri("daemon", "phone2");
  auto before = snapshot();
  clear();
  EXPECT_EQ(run_cli({"device", "add", "phone3", "--user", "daemon", "--no-confirm"}), kExitStore);
  EXPECT_NE(err().find("daemon has 2 device(s) (default, phone2), the most max_devices = 2 allows"),
            std::string::npos)
      << err();
  EXPECT_EQ(find_uri(out() + err()), "");
  EXPECT_EQ(snapshot(), before);
  // A user on themselves is stopped before any prompt too.
  become("daemon");
  clear();
  script_ = {new_code(), line(kRightPassword)};
  EXPECT_EQ(run_cli({"device", "add", "phone3"}), kExitStore);
  EXPECT_TRUE(prompts_.empty());
  EXPECT_EQ(snapshot(), before);
  // Raised, it allows a third.
  env_.uid = 0;
  env_.euid = 0;
  env_.invoking_user = "root";
  write_config("recovery_codes = 0\nmax_devices = 3\n");
  add_uri("daemon", "phone3");
  EXPECT_EQ(device_names("daemon"), (Names{"default", "phone2", "phone3"}));
}

TEST_F(DeviceTest, ATakenNameIsRefused) {
  enroll_uri("daemon");
  auto before = snapshot();
  clear();
  EXPECT_EQ(run_cli({"device", "add", "default", "--user", "daemon", "--no-confirm"}), kExitStore);
  EXPECT_NE(err().find("daemon already has a device named 'default'"), std::string::npos) << err();
  EXPECT_EQ(find_uri(out() + err()), "");
  EXPECT_EQ(snapshot(), before);
}

TEST_F(DeviceTest, BadNamesAreRefused) {
  enroll_uri("daemon");
  write_config("recovery_codes = 0\nmax_devices = 5\n");
  auto before = snapshot();
  for (const std::string& name :
       {std::string("Phone"), std::string("phone/2"), std::string(".."), std::string("a b"),
        std::string(33, 'a'), std::string("ph\x01one"), std::string("t\xc3\xa9l"),
        std::string("phone_2"), std::string("")}) {
    clear();
    EXPECT_EQ(run_cli({"device", "add", name, "--user", "daemon", "--no-confirm"}), kExitUsage)
        << name;
    EXPECT_EQ(find_uri(out() + err()), "") << name;
    EXPECT_EQ(snapshot(), before) << name;
    clear();
    EXPECT_EQ(run_cli({"device", "remove", name, "--user", "daemon"}), kExitUsage) << name;
    EXPECT_EQ(snapshot(), before) << name;
  }
  // The longest name and every allowed character are fine.
  add_uri("daemon", std::string(32, 'z'));
  add_uri("daemon", "a-0");
  EXPECT_EQ(device_names("daemon"), (Names{"default", std::string(32, 'z'), "a-0"}));
}

TEST_F(DeviceTest, NotEnrolledIsAClearError) {
  clear();
  EXPECT_EQ(run_cli({"device", "add", "phone2", "--user", "daemon", "--no-confirm"}),
            kExitNotEnrolled);
  EXPECT_NE(err().find("daemon is not enrolled"), std::string::npos) << err();
  EXPECT_EQ(find_uri(out() + err()), "");
  EXPECT_EQ(json_of({"device", "list", "--user", "daemon", "--json"}, kExitNotEnrolled),
            (nlohmann::json{{"user", "daemon"}, {"devices", nlohmann::json::array()}}));
  EXPECT_EQ(json_of({"device", "remove", "phone2", "--user", "daemon"}, kExitNotEnrolled), nullptr);
}

TEST_F(DeviceTest, ListShowsEveryDeviceAndNeverASecret) {
  const std::string first = enroll_uri("daemon");
  clock_.advance(60);
  const std::string second = add_uri("daemon", "phone2");
  clock_.advance(60);
  auto used = outcome("daemon", code_for(second, clock_.now()));
  ASSERT_TRUE(used);
  ASSERT_EQ(used->verdict, totp::Verdict::kAccepted);

  auto j = json_of({"device", "list", "--user", "daemon", "--json"}, 0);
  const nlohmann::json want = {{"user", "daemon"},
                               {"devices",
                                {{{"name", "default"},
                                  {"created", iso8601(kNow)},
                                  {"algorithm", "SHA1"},
                                  {"digits", 6},
                                  {"period", 30},
                                  {"last_used", nullptr}},
                                 {{"name", "phone2"},
                                  {"created", iso8601(kNow + 60)},
                                  {"algorithm", "SHA1"},
                                  {"digits", 6},
                                  {"period", 30},
                                  {"last_used", iso8601(kNow + 120)}}}}};
  EXPECT_EQ(j, want) << out();
  for (const auto& uri : {first, second}) {
    auto p = totp::parse_otpauth_uri(uri);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(out().find(totp::base32_encode(p->secret, false)), std::string::npos);
  }
  // The text: a table with one row per device.
  clear();
  ASSERT_EQ(run_cli({"device", "list", "--user", "daemon"}), 0) << err();
  auto lines = pbx::test::split_lines(out());
  ASSERT_EQ(lines.size(), 4u) << out();
  EXPECT_EQ(lines[0], "daemon: 2 of max_devices 2");
  EXPECT_TRUE(lines[1].starts_with("NAME     CREATED")) << lines[1];
  EXPECT_TRUE(lines[2].starts_with("default  ")) << lines[2];
  EXPECT_TRUE(lines[2].ends_with("never")) << lines[2];
  EXPECT_TRUE(lines[3].starts_with("phone2   ")) << lines[3];
  // A user lists their own; another's needs root.
  become("daemon");
  EXPECT_EQ(json_of({"device", "list", "--json"}, 0), want);
  EXPECT_EQ(json_of({"device", "list", "--user", "lp", "--json"}, kExitStore), nullptr);
}

TEST_F(DeviceTest, StatusAndListCarryTheDevices) {
  write_config("recovery_codes = 0\nrequire = none\n");  // list exits 0
  enroll_uri("daemon");
  add_uri("daemon", "phone2");
  auto status = status_json("daemon");
  auto devices = json_of({"device", "list", "--user", "daemon", "--json"}, 0);
  EXPECT_EQ(status["devices"], devices["devices"]);
  EXPECT_EQ(status["devices"].size(), 2u);
  // A row of list is status --json (the devices too); a user who is not enrolled has none.
  auto listed = json_of({"list", "--json"}, 0);
  bool saw = false;
  for (const auto& row : listed["users"]) {
    if (row["user"] == "daemon") {
      saw = true;
      EXPECT_EQ(row, status);
    }
    if (row["user"] == "lp") {
      EXPECT_EQ(row["devices"], nlohmann::json::array());
    }
  }
  EXPECT_TRUE(saw);
  // The text of status names each device; list counts them.
  clear();
  ASSERT_EQ(run_cli({"status", "--user", "daemon"}), 0);
  EXPECT_NE(out().find("  devices: 2 (max_devices 2)\n    default: SHA1, 6 digits, 30 s"),
            std::string::npos)
      << out();
  EXPECT_NE(out().find("    phone2: SHA1"), std::string::npos) << out();
  clear();
  ASSERT_EQ(run_cli({"list"}), 0);
  auto lines = pbx::test::split_lines(out());
  ASSERT_FALSE(lines.empty());
  const std::size_t col = lines[0].find("DEVICES");
  ASSERT_NE(col, std::string::npos) << lines[0];
  for (const auto& l : lines) {
    if (l.starts_with("daemon ")) {
      EXPECT_EQ(l.compare(col, 2, "2 "), 0) << l;
    }
    if (l.starts_with("lp ")) {
      EXPECT_EQ(l.compare(col, 2, "- "), 0) << l;
    }
  }
}

TEST_F(DeviceTest, RootRemovesADeviceAndItsCodesStopWorking) {
  enroll_uri("daemon");
  const std::string second = add_uri("daemon", "phone2");
  clear();
  ASSERT_EQ(run_cli({"device", "remove", "phone2", "--user", "daemon"}), 0) << err();
  EXPECT_TRUE(prompts_.empty());
  EXPECT_EQ(device_names("daemon"), Names{"default"});
  EXPECT_EQ(audit_.back(), "by=root device-removed user=daemon device=phone2");
  clock_.advance(30);
  auto o = outcome("daemon", code_for(second, clock_.now()));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->verdict, totp::Verdict::kRejected);
  // Unknown names are usage errors.
  clear();
  EXPECT_EQ(run_cli({"device", "remove", "phone9", "--user", "daemon"}), kExitUsage);
  EXPECT_NE(err().find("daemon has no device named 'phone9' (devices: default)"), std::string::npos)
      << err();
}

TEST_F(DeviceTest, TheLastDeviceIsKept) {
  enroll_uri("daemon");
  auto before = snapshot();
  clear();
  EXPECT_EQ(run_cli({"device", "remove", "default", "--user", "daemon"}), kExitStore);
  EXPECT_NE(err().find("'default' is daemon's last device and is kept; 'pbx-mfa reset --user "
                       "daemon' (root) removes the whole enrollment"),
            std::string::npos)
      << err();
  EXPECT_EQ(snapshot(), before);
}

TEST_F(DeviceTest, AUserRemovingTheirOwnDeviceGivesThePassword) {
  enroll_uri("daemon");
  add_uri("daemon", "phone2");
  become("daemon");
  auto before = snapshot();
  clear();
  script_ = {line("a"), line("b"), line("c")};
  EXPECT_EQ(run_cli({"device", "remove", "default"}), 1);
  EXPECT_NE(err().find("wrong password 3 times; nothing was saved"), std::string::npos) << err();
  EXPECT_EQ(snapshot(), before);
  clear();
  script_ = {line(kRightPassword)};
  EXPECT_EQ(run_cli({"device", "remove", "default"}), 0) << err();
  EXPECT_EQ(prompts_, Names{"Password: "});
  EXPECT_EQ(device_names("daemon"), Names{"phone2"});
  // Another user's device needs root.
  EXPECT_EQ(json_of({"device", "remove", "phone2", "--user", "lp"}, kExitStore), nullptr);
}

TEST_F(DeviceTest, ImportDeviceAddsToTheEnrollment) {
  enroll_uri("daemon");
  const std::string id = load("daemon")->id;
  const std::string uri = "otpauth://totp/old:daemon?secret=JBSWY3DPEHPK3PXP&issuer=old";
  in_.str(uri);
  auto j = json_of(
      {"import", "--user", "daemon", "--from", "uri", "--device", "phone2", "--json", "-"}, 0);
  EXPECT_EQ(j["device"], "phone2");
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->id, id);  // the same enrollment, one device more
  EXPECT_EQ(device_names("daemon"), (Names{"default", "phone2"}));
  auto o = outcome("daemon", code_for(uri, clock_.now()));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->verdict, totp::Verdict::kAccepted);
  EXPECT_EQ(o->device, "phone2");
  EXPECT_EQ(audit_.back(), "by=root device-added user=daemon device=phone2 (imported from uri)");
  // max_devices holds for imports too; without --device an enrolled user is still refused.
  auto before = snapshot();
  in_.clear();
  in_.str(uri);
  EXPECT_EQ(json_of({"import", "--user", "daemon", "--from", "uri", "--device", "phone3", "-"},
                    kExitStore),
            nullptr);
  EXPECT_NE(err().find("max_devices = 2"), std::string::npos) << err();
  in_.clear();
  in_.str(uri);
  EXPECT_EQ(json_of({"import", "--user", "daemon", "--from", "uri", "-"}, kExitStore), nullptr);
  EXPECT_EQ(snapshot(), before);
  // --device needs an enrollment, a valid name, and not --force.
  in_.clear();
  in_.str(uri);
  EXPECT_EQ(json_of({"import", "--user", "lp", "--from", "uri", "--device", "phone2", "-"},
                    kExitNotEnrolled),
            nullptr);
  EXPECT_EQ(json_of({"import", "--user", "daemon", "--from", "uri", "--device", "Phone", "-"},
                    kExitUsage),
            nullptr);
  EXPECT_EQ(
      json_of({"import", "--user", "daemon", "--from", "uri", "--device", "phone3", "--force", "-"},
              kExitUsage),
      nullptr);
  EXPECT_EQ(snapshot(), before);
}

// Review (issue 16): import --device is a second way to add a device. A user acting on
// themselves must not get one with neither the password nor a code of a device they have
// (someone at an unlocked terminal), nor replace the enrollment with import --force.
TEST_F(DeviceTest, AUserCannotImportADeviceWithoutTheChecksOfDeviceAdd) {
  enroll_uri("daemon");
  become("daemon");
  auto before = snapshot();
  const std::string uri = "otpauth://totp/evil:daemon?secret=JBSWY3DPEHPK3PXP&issuer=evil";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"import", "--user", "daemon", "--from", "uri", "--device",
                                 "phone2", "-"},
        std::vector<std::string>{"import", "--user", "daemon", "--from", "uri", "--force", "-"}}) {
    in_.clear();
    in_.str(uri);
    clear();
    EXPECT_NE(run_cli(args), 0) << args[5];
    EXPECT_NE(err().find(args[5] + " needs root"), std::string::npos) << err();
    EXPECT_EQ(snapshot(), before) << args[5];
    EXPECT_EQ(device_names("daemon"), Names{"default"}) << args[5];
  }
  auto o = outcome("daemon", code_for(uri, clock_.now()));
  ASSERT_TRUE(o);
  EXPECT_NE(o->verdict, totp::Verdict::kAccepted);
}

// Review (issue 16): a secret file the user controls (they own it in the files store) with the
// most devices and the longest secrets, too many devices, or a name twice: root's status, list
// and device list neither crash nor print a byte of any secret, on stdout, stderr or audit.
TEST_F(DeviceTest, APlantedSecretFileLeaksNoSecretToRootsReports) {
  enroll_uri("daemon");
  const std::string path = secrets_dir_ + "/daemon";
  const std::string id = load("daemon")->id;
  std::vector<std::string> secrets;
  auto file_of = [&](const std::vector<std::string>& names) {
    std::string text = "version 2\nid " + id + "\ncreated " + std::to_string(kNow) + "\n";
    for (std::size_t i = 0; i < names.size(); ++i) {
      std::vector<std::uint8_t> raw(128, static_cast<std::uint8_t>(0x41 + i));
      secrets.push_back(totp::base32_encode(raw.data(), raw.size(), false));
      text += "device " + names[i] + " " + std::to_string(kNow) + " SHA512 8 60 " + secrets.back() +
              "\n";
    }
    return text + "end\n";
  };
  const std::vector<std::pair<std::string, bool>> files = {
      {file_of({"a", "b", "c", "d", "e"}), true},
      {file_of({"a", "b", "c", "d", "e", "f"}), false},
      {file_of({"a", "a"}), false},
  };
  for (const auto& [text, valid] : files) {
    {
      std::ofstream f(path, std::ios::trunc);  // keeps the file's owner and mode
      f << text;
    }
    audit_.clear();
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"status", "--user", "daemon", "--json"},
          std::vector<std::string>{"device", "list", "--user", "daemon", "--json"},
          std::vector<std::string>{"device", "list", "--user", "daemon"},
          std::vector<std::string>{"list", "--json"}}) {
      clear();
      const int rc = run_cli(args);
      // list: 1 when a required user is not enrolled (other accounts here).
      if (valid && args[0] != "list") {
        EXPECT_EQ(rc, 0) << args[0] << ": " << err();
      }
      EXPECT_LT(rc, kExitInternal) << args[0] << ": " << err();
      std::string all = out() + err();
      for (const auto& line : audit_) all += line;
      for (const auto& secret : secrets) {
        // Any 16 characters of a secret in its base32 form.
        for (std::size_t at = 0; at + 16 <= secret.size(); at += 16) {
          EXPECT_EQ(all.find(secret.substr(at, 16)), std::string::npos) << args[0] << ": " << all;
        }
      }
    }
    if (valid) {
      clear();
      ASSERT_EQ(run_cli({"device", "list", "--user", "daemon", "--json"}), 0);
      EXPECT_EQ(nlohmann::json::parse(out())["devices"].size(), 5u);
    }
  }
}

// The helpdesk (root through sudo for daemon, a member of helpdesk_groups): device list with
// the status action, never add or remove.
class DeviceHelpdeskTest : public DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    if (IsSkipped()) return;
    env_.system_config_path = config_path_;
    set_actions("status,unlock");
    enroll_uri("lp");
    add_uri("lp", "phone2");
    clear();
    audit_.clear();
  }
  void set_actions(const std::string& actions) {
    write_config("recovery_codes = 0\nhelpdesk_groups = daemon\nprotected_groups = bin\n" +
                 std::string("helpdesk_actions = ") + actions + "\n");
  }
  int hd(std::vector<std::string> args) {
    env_.sudo_uid = user("daemon").uid;
    env_.sudo_user = "daemon";
    clear();
    int rc = run(args, env_);  // no --config: the helpdesk uses the system config
    env_.sudo_uid.reset();
    env_.sudo_user.clear();
    return rc;
  }
};

TEST_F(DeviceHelpdeskTest, MayListWithStatus) {
  EXPECT_EQ(hd({"device", "list", "--user", "lp", "--json"}), 0) << err();
  EXPECT_EQ(nlohmann::json::parse(out())["devices"].size(), 2u);
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_EQ(audit_.back(), "by=daemon helpdesk device list user=lp (exit 0)");
  // Protected users stay protected.
  EXPECT_EQ(hd({"device", "list", "--user", "bin"}), kExitStore);
  // Without the status action, no list either.
  set_actions("unlock");
  EXPECT_EQ(hd({"device", "list", "--user", "lp"}), kExitStore);
  EXPECT_NE(err().find("'device list' needs 'status', which is not in helpdesk_actions"),
            std::string::npos)
      << err();
}

TEST_F(DeviceHelpdeskTest, NeverAddsOrRemoves) {
  set_actions("status,unlock,temp-code,require,reset");  // every action there is
  auto before = snapshot();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"device", "add", "phone3", "--user", "lp", "--no-confirm"},
        std::vector<std::string>{"device", "add", "phone3", "--user", "lp"},
        std::vector<std::string>{"device", "remove", "phone2", "--user", "lp"}}) {
    const std::string command = args[0] + " " + args[1];
    audit_.clear();
    script_ = {new_code()};
    EXPECT_EQ(hd(args), kExitStore) << command;
    EXPECT_NE(err().find("helpdesk: '" + command + "' is not a helpdesk command"),
              std::string::npos)
        << err();
    EXPECT_TRUE(prompts_.empty());
    EXPECT_EQ(find_uri(out() + err()), "");
    ASSERT_EQ(audit_.size(), 1u);
    EXPECT_EQ(audit_.back().rfind("by=daemon helpdesk refused " + command + " user=lp", 0), 0u)
        << audit_.back();
  }
  // Nothing changed but the event log, which gained the three refusals (issue 17).
  const std::string log = state_dir_ + "/.events.log";
  auto after = snapshot();
  const std::string old_events = before[log];
  const std::string events = after[log];
  before.erase(log);
  after.erase(log);
  EXPECT_EQ(after, before);
  ASSERT_EQ(events.rfind(old_events, 0), 0u) << events;
  const auto added = pbx::test::split_lines(events.substr(old_events.size()));
  ASSERT_EQ(added.size(), 3u) << events;
  for (const auto& line : added) {
    EXPECT_NE(line.find("\"event\":\"helpdesk-refused\""), std::string::npos) << line;
  }
  EXPECT_EQ(device_names("lp"), (Names{"default", "phone2"}));
}

// Review (issue 16): the gate names the command by its first parsed subcommand and the
// dispatch runs add before list; a command line naming two of them must not pass as
// "device list" and then add or remove.
TEST_F(DeviceHelpdeskTest, TwoSubcommandsOnOneLineAreNoWayAround) {
  auto before = snapshot();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"device", "list", "add", "phone3", "--user", "lp", "--no-confirm"},
        std::vector<std::string>{"device", "list", "--user", "lp", "add", "phone3", "--no-confirm"},
        std::vector<std::string>{"device", "list", "--user", "lp", "remove", "phone2"},
        std::vector<std::string>{"device", "list", "remove", "phone2", "--user", "lp"},
        std::vector<std::string>{"status", "--user", "lp", "device", "remove", "phone2"}}) {
    script_ = {new_code()};
    EXPECT_NE(hd(args), 0) << args[2] << " " << args[3];
    EXPECT_EQ(find_uri(out() + err()), "");
  }
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(device_names("lp"), (Names{"default", "phone2"}));
}

}  // namespace
}  // namespace pbx::cli::testing

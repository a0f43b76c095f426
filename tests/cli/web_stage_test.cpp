// The non-interactive modes the Cockpit page drives (issue 19), in-process: enroll and device add
// --begin (a secret and its QR modules, nothing saved) and --finish (key, codes and password on
// stdin, one try each, a JSON refusal and nothing saved on any failure), device remove --json,
// and --json of unlock, require and reset. Codes come from oathtool, an independent
// implementation; the QR modules are drawn and read back with zbarimg.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "helpdesk_fixture.hpp"
#include "pbx/totp/base32.hpp"

namespace pbx::cli::testing {
namespace {

using Lines = std::vector<std::string>;

std::string oathtool() {
  std::string path = pbx::test::find_oathtool();
  if (path.empty()) throw std::runtime_error(pbx::test::kInstallOathtool);
  return path;
}

// What `oathtool --totp -b KEY` shows at `t` (KEY as --begin printed it).
std::string oath_code(const nlohmann::json& begun, std::int64_t t) {
  std::string algorithm = begun["algorithm"];
  std::transform(algorithm.begin(), algorithm.end(), algorithm.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto r = pbx::test::run_program(
      {oathtool(), "--totp=" + algorithm, "-b",
       "--digits=" + std::to_string(begun["digits"].get<int>()),
       "--time-step-size=" + std::to_string(begun["period"].get<int>()) + "s",
       "--now=@" + std::to_string(t), begun["secret"].get<std::string>()});
  if (!r || r->exit_code != 0) throw std::runtime_error("oathtool failed: " + (r ? r->err : ""));
  std::string out = r->out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// A code of the right length that no step within 3 of `t` has.
std::string wrong_code(const nlohmann::json& begun, std::int64_t t) {
  const int period = begun["period"];
  for (int candidate = 0;; ++candidate) {
    std::string c = totp::format_code(static_cast<std::uint32_t>(candidate), begun["digits"]);
    bool used = false;
    for (int d = -3; d <= 3; ++d) used = used || c == oath_code(begun, t + d * period);
    if (!used) return c;
  }
}

// The modules as a drawing of "##" and spaces with the 4-module quiet zone the page adds.
std::string drawing_of(const nlohmann::json& qr) {
  const int size = qr["size"];
  const std::string blank(static_cast<std::size_t>(size + 8) * 2, ' ');
  std::string out;
  for (int i = 0; i < 4; ++i) out += blank + "\n";
  for (const auto& row : qr["modules"]) {
    out += std::string(8, ' ');
    for (char c : row.get<std::string>()) out += c == '1' ? "##" : "  ";
    out += std::string(8, ' ') + "\n";
  }
  for (int i = 0; i < 4; ++i) out += blank + "\n";
  return out;
}

std::string str(const nlohmann::json& j) { return j.get<std::string>(); }

// What zbarimg reads from the modules, or "".
std::string scanned(const nlohmann::json& qr, const std::string& dir) {
  return zbar_decode(drawing_of(qr), kLightTheme, dir).value_or("");
}

std::vector<std::string> keys_of(const nlohmann::json& j) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

class WebStageTest : public HelpdeskTest {
 protected:
  void SetUp() override {
    HelpdeskTest::SetUp();
    if (IsSkipped()) return;
    // stdin as the page writes it: one line per answer, then the end.
    env_.read_secret = [this](std::string_view prompt) -> std::optional<totp::SecretString> {
      prompts_.emplace_back(prompt);
      if (stdin_.empty()) return std::nullopt;
      std::string next = stdin_.front();
      stdin_.pop_front();
      return totp::SecretString(next);
    };
  }

  // Runs with `lines` on stdin; stdout must be exactly one JSON object and a newline.
  nlohmann::json run_json(std::vector<std::string> args, const Lines& lines, int exit) {
    clear();
    stdin_.assign(lines.begin(), lines.end());
    EXPECT_EQ(run_cli(std::move(args)), exit) << err();
    const std::string text = out();
    EXPECT_FALSE(text.empty()) << err();
    if (text.empty()) return nullptr;
    EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line: " << text;
    return nlohmann::json::parse(text, nullptr, false);
  }

  // A refusal: {"error": error, "message": M}, and M on stderr as "pbx-mfa: M".
  void expect_refusal(const nlohmann::json& j, const std::string& error) {
    ASSERT_TRUE(j.is_object()) << out();
    EXPECT_EQ(keys_of(j), (Lines{"error", "message"})) << j.dump();
    EXPECT_EQ(j["error"], error) << j.dump();
    EXPECT_EQ(err(), "pbx-mfa: " + j["message"].get<std::string>() + "\n");
  }

  nlohmann::json begin(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"enroll", "--begin", "--json"};
    if (!name.empty()) args.insert(args.end(), {"--user", name});
    args.insert(args.end(), extra.begin(), extra.end());
    auto j = run_json(args, {}, 0);
    EXPECT_TRUE(prompts_.empty()) << "--begin reads nothing";
    return j;
  }
  std::vector<std::string> finish_args(const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = {"enroll", "--finish", "--json"};
    if (!name.empty()) args.insert(args.end(), {"--user", name});
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  bool enrolled(const std::string& name) { return load(name).ok(); }

  std::deque<std::string> stdin_;
};

// ---- enroll --begin -------------------------------------------------------------------------

TEST_F(WebStageTest, BeginPrintsTheSecretAndItsQrModulesAndSavesNothing) {
  const auto before = snapshot();
  auto j = begin("daemon");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(keys_of(j), (Lines{"account", "algorithm", "digits", "issuer", "otpauth_uri", "period",
                               "qr", "secret", "secret_grouped", "user"}));
  EXPECT_EQ(j["user"], "daemon");
  EXPECT_EQ(j["account"], "daemon");
  EXPECT_EQ(j["issuer"], "pbx-test-host");
  EXPECT_EQ(j["algorithm"], "SHA1");
  EXPECT_EQ(j["digits"], 6);
  EXPECT_EQ(j["period"], 30);
  const std::string secret = j["secret"];
  auto key = totp::base32_decode(secret);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->size(), 20u);
  EXPECT_EQ(j["secret_grouped"], totp::group_by_four(secret));
  auto params = totp::parse_otpauth_uri(j["otpauth_uri"].get<std::string>());
  ASSERT_TRUE(params.ok());
  EXPECT_TRUE(params->secret == *key);
  EXPECT_EQ(params->issuer, "pbx-test-host");
  // The modules, drawn as the page draws them, scan to the URI.
  ASSERT_EQ(keys_of(j["qr"]), (Lines{"modules", "size"}));
  const int size = j["qr"]["size"];
  ASSERT_EQ(j["qr"]["modules"].size(), static_cast<std::size_t>(size));
  for (const auto& row : j["qr"]["modules"]) {
    ASSERT_EQ(row.get<std::string>().size(), static_cast<std::size_t>(size));
    EXPECT_EQ(row.get<std::string>().find_first_not_of("01"), std::string::npos);
  }
  EXPECT_EQ(scanned(j["qr"], tmp_.path()), str(j["otpauth_uri"]));
  // Nothing saved, nothing logged, nothing on stderr.
  EXPECT_FALSE(enrolled("daemon"));
  EXPECT_EQ(snapshot(), before);
  EXPECT_TRUE(audit_.empty());
  EXPECT_EQ(err(), "");
  // Each run makes a fresh secret.
  EXPECT_NE(begin("daemon")["secret"], j["secret"]);
}

TEST_F(WebStageTest, BeginTakesTheEnrollFlags) {
  auto j = begin("daemon", {"--algorithm", "SHA512", "--digits", "8", "--period", "60", "--issuer",
                            "PBX Lab", "--label", "daemon@lab"});
  EXPECT_EQ(j["algorithm"], "SHA512");
  EXPECT_EQ(j["digits"], 8);
  EXPECT_EQ(j["period"], 60);
  EXPECT_EQ(j["issuer"], "PBX Lab");
  EXPECT_EQ(j["account"], "daemon@lab");
  EXPECT_EQ(totp::base32_decode(j["secret"].get<std::string>())->size(), 64u);
  EXPECT_EQ(scanned(j["qr"], tmp_.path()), str(j["otpauth_uri"]));
}

TEST_F(WebStageTest, BeginAndFinishNeedJsonAndExcludeNoConfirmAndEachOther) {
  for (const char* stage : {"--begin", "--finish"}) {
    clear();
    EXPECT_EQ(run_cli({"enroll", "--user", "daemon", stage}), 2);
    EXPECT_EQ(out(), "");
    EXPECT_NE(err().find(std::string(stage) + " needs --json"), std::string::npos) << err();
    auto j = run_json({"enroll", "--user", "daemon", stage, "--json", "--no-confirm"}, {}, 2);
    expect_refusal(j, "failed");
    EXPECT_NE(err().find("--no-confirm"), std::string::npos);
  }
  expect_refusal(run_json({"enroll", "--begin", "--finish", "--json"}, {}, 2), "failed");
  EXPECT_FALSE(enrolled("daemon"));
}

TEST_F(WebStageTest, BeginRefusesAnEnrolledUserWithoutForce) {
  enroll("daemon");
  const auto before = snapshot();
  expect_refusal(run_json({"enroll", "--begin", "--json", "--user", "daemon"}, {}, 4), "enrolled");
  EXPECT_EQ(snapshot(), before);
  EXPECT_TRUE(begin("daemon", {"--force"}).is_object());
  EXPECT_EQ(snapshot(), before);
}

// ---- enroll --finish ------------------------------------------------------------------------

TEST_F(WebStageTest, RootFinishesWithTheKeyAndAnOathtoolCode) {
  auto b = begin("daemon");
  // The key as a person might retype it: grouped, lower case.
  std::string typed = b["secret_grouped"];
  std::transform(typed.begin(), typed.end(), typed.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto j = run_json(finish_args("daemon", {}), {typed, oath_code(b, kNow)}, 0);
  EXPECT_EQ(prompts_.size(), 2u) << "root: key and code, no password";
  EXPECT_TRUE(password_users_.empty());
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(keys_of(j), (Lines{"otpauth_uri", "recovery_codes", "secret", "user"}));
  EXPECT_EQ(j["user"], "daemon");
  EXPECT_EQ(j["secret"], b["secret"]);
  EXPECT_EQ(j["otpauth_uri"], b["otpauth_uri"]);
  ASSERT_EQ(j["recovery_codes"].size(), 2u);  // the fixture's recovery_codes = 2
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(dev0(*e).secret == *totp::base32_decode(b["secret"].get<std::string>()));
  // status says so, the confirmation code cannot also log in, a recovery code works.
  auto st = json_of({"status", "--user", "daemon", "--json"}, 0);
  EXPECT_EQ(st["enrolled"], true);
  EXPECT_EQ(verify("daemon", oath_code(b, kNow)), totp::Verdict::kReplayed);
  EXPECT_EQ(verify("daemon", j["recovery_codes"][0].get<std::string>()),
            totp::Verdict::kRecoveryAccepted);
  EXPECT_EQ(audit_.back(), "by=root enrolled user=daemon (--finish: key given back by the caller)");
}

TEST_F(WebStageTest, UserFinishesWithKeyCodeAndPassword) {
  become("daemon");
  auto b = begin("");
  auto j = run_json(finish_args("", {}), {str(b["secret"]), oath_code(b, kNow), kRightPassword}, 0);
  EXPECT_EQ(prompts_, (Lines{"", "", ""})) << "three lines read, no prompt printed";
  EXPECT_EQ(password_users_, Lines{"daemon"});
  EXPECT_EQ(j["user"], "daemon");
  EXPECT_TRUE(enrolled("daemon"));
}

TEST_F(WebStageTest, AWrongCodeIsRefusedOnceAndThePasswordIsNeverRead) {
  become("daemon");
  auto b = begin("");
  const auto before = snapshot();
  auto j = run_json(finish_args("", {}),
                    {str(b["secret"]), wrong_code(b, kNow), oath_code(b, kNow), kRightPassword}, 1);
  expect_refusal(j, "wrong-code");
  EXPECT_EQ(prompts_.size(), 2u) << "one try, no password";
  EXPECT_TRUE(password_users_.empty());
  EXPECT_NE(j["message"].get<std::string>().find("nothing was saved"), std::string::npos);
  EXPECT_EQ(snapshot(), before);
  EXPECT_FALSE(enrolled("daemon"));
  EXPECT_TRUE(audit_.empty());
}

TEST_F(WebStageTest, AWrongPasswordIsRefusedOnce) {
  become("daemon");
  auto b = begin("");
  const auto before = snapshot();
  auto j = run_json(finish_args("", {}),
                    {str(b["secret"]), oath_code(b, kNow), "wrong", kRightPassword}, 1);
  expect_refusal(j, "wrong-password");
  EXPECT_EQ(password_users_, Lines{"daemon"}) << "one try";
  EXPECT_EQ(snapshot(), before);
  EXPECT_FALSE(enrolled("daemon"));
}

TEST_F(WebStageTest, StdinEndingEarlyIsNoAnswer) {
  become("daemon");
  auto b = begin("");
  const Lines partial[] = {{}, {str(b["secret"])}, {str(b["secret"]), oath_code(b, kNow)}};
  for (const auto& lines : partial) {
    expect_refusal(run_json(finish_args("", {}), lines, 1), "no-answer");
    EXPECT_FALSE(enrolled("daemon"));
  }
}

TEST_F(WebStageTest, AKeyNotMadeByBeginIsInvalid) {
  auto b = begin("daemon");
  const std::string secret = b["secret"];
  const Lines keys = {
      "",                                                                    // empty
      "not base32!",                                                         // not base32
      secret.substr(0, 16),                                                  // 10 bytes
      secret + "AAAAAAAA",                                                   // 25 bytes
      totp::base32_encode(std::vector<std::uint8_t>(32).data(), 32, false),  // a SHA256 size
  };
  for (const auto& key : keys) {
    auto j = run_json(finish_args("daemon", {}), {key, oath_code(b, kNow)}, 2);
    expect_refusal(j, "invalid-key");
    EXPECT_NE(j["message"].get<std::string>().find("not one `enroll --begin` made"),
              std::string::npos);
    EXPECT_EQ(prompts_.size(), 1u) << "no code is read after a bad key";
    EXPECT_FALSE(enrolled("daemon"));
  }
  // The size follows the algorithm of the finish's flags: a SHA1 key is no SHA512 key.
  expect_refusal(
      run_json(finish_args("daemon", {"--algorithm", "SHA512"}), {secret, oath_code(b, kNow)}, 2),
      "invalid-key");
}

TEST_F(WebStageTest, FinishWithOtherFlagsThanBeginFailsTheCode) {
  auto b = begin("daemon");  // 6 digits
  expect_refusal(
      run_json(finish_args("daemon", {"--digits", "8"}), {str(b["secret"]), oath_code(b, kNow)}, 1),
      "wrong-code");
  EXPECT_FALSE(enrolled("daemon"));
}

TEST_F(WebStageTest, FinishKeepsAnEnrollmentWithoutForceAndReplacesItWithForce) {
  auto b = begin("daemon");
  enroll("daemon");  // enrolled meanwhile (another tab, root)
  const auto before = snapshot();
  auto j = run_json(finish_args("daemon", {}), {str(b["secret"]), oath_code(b, kNow)}, 4);
  expect_refusal(j, "enrolled");
  EXPECT_TRUE(prompts_.empty()) << "refused before stdin is read";
  EXPECT_EQ(snapshot(), before);

  auto wrong =
      run_json(finish_args("daemon", {"--force"}), {str(b["secret"]), wrong_code(b, kNow)}, 1);
  expect_refusal(wrong, "wrong-code");
  EXPECT_EQ(snapshot(), before) << "the old enrollment is unchanged";

  auto ok = run_json(finish_args("daemon", {"--force"}), {str(b["secret"]), oath_code(b, kNow)}, 0);
  EXPECT_EQ(ok["secret"], b["secret"]);
  EXPECT_TRUE(dev0(*load("daemon")).secret == *totp::base32_decode(b["secret"].get<std::string>()));
  EXPECT_EQ(audit_.back(),
            "by=root enrolled user=daemon (--finish: key given back by the caller) (replacing an "
            "earlier enrollment)");
}

TEST_F(WebStageTest, HelpListsBeginAndFinish) {
  for (const Lines& cmd : {Lines{"enroll", "--help"}, Lines{"device", "add", "--help"}}) {
    clear();
    EXPECT_EQ(run_cli(cmd), 0);
    EXPECT_NE(out().find("--begin"), std::string::npos) << cmd[0];
    EXPECT_NE(out().find("--finish"), std::string::npos) << cmd[0];
  }
  clear();
  EXPECT_EQ(run_cli({"device", "remove", "--help"}), 0);
  EXPECT_NE(out().find("--json"), std::string::npos);
}

// ---- device add --begin / --finish, device remove --json -------------------------------------

class WebDeviceTest : public WebStageTest {
 protected:
  void SetUp() override {
    WebStageTest::SetUp();
    if (IsSkipped()) return;
    write_config("recovery_codes = 0\n");
    clear();
    ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--json"}), 0) << err();
    first_ = nlohmann::json::parse(out());
    first_["algorithm"] = "SHA1";
    first_["digits"] = 6;
    first_["period"] = 30;
    become("daemon");
  }
  std::vector<std::string> device_names() {
    std::vector<std::string> names;
    if (auto e = load("daemon")) {
      for (const auto& d : e->devices) names.push_back(d.name);
    }
    return names;
  }
  nlohmann::json first_;  // the "default" device, as oath_code needs it
};

TEST_F(WebDeviceTest, BeginThenFinishAddsTheDevice) {
  const auto before = snapshot();
  auto b = run_json({"device", "add", "phone2", "--begin", "--json"}, {}, 0);
  EXPECT_EQ(keys_of(b), (Lines{"account", "algorithm", "device", "digits", "issuer", "otpauth_uri",
                               "period", "qr", "secret", "secret_grouped", "user"}));
  EXPECT_EQ(b["user"], "daemon");
  EXPECT_EQ(b["device"], "phone2");
  EXPECT_EQ(b["account"], "daemon (phone2)");
  EXPECT_EQ(scanned(b["qr"], tmp_.path()), str(b["otpauth_uri"]));
  EXPECT_EQ(snapshot(), before) << "--begin saves nothing";

  auto j =
      run_json({"device", "add", "phone2", "--finish", "--json"},
               {str(b["secret"]), oath_code(b, kNow), kRightPassword, oath_code(first_, kNow)}, 0);
  EXPECT_EQ(prompts_, (Lines{"", "", "", ""})) << "four lines read, no prompt printed";
  EXPECT_EQ(keys_of(j), (Lines{"device", "otpauth_uri", "secret", "user"}));
  EXPECT_EQ(j["secret"], b["secret"]);
  EXPECT_EQ(device_names(), (Lines{"default", "phone2"}));
  EXPECT_EQ(audit_.back(), "by=daemon device-added user=daemon device=phone2");
}

TEST_F(WebDeviceTest, EachWrongAnswerIsItsOwnRefusalAndNothingIsAdded) {
  auto b = run_json({"device", "add", "phone2", "--begin", "--json"}, {}, 0);
  const auto before = snapshot();
  struct Case {
    Lines lines;
    int exit;
    const char* error;
    std::size_t prompts;
  };
  const std::string key = b["secret"];
  const Case cases[] = {
      {{key, wrong_code(b, kNow), kRightPassword, oath_code(first_, kNow)}, 1, "wrong-code", 2},
      {{key, oath_code(b, kNow), "wrong", oath_code(first_, kNow)}, 1, "wrong-password", 3},
      {{key, oath_code(b, kNow), kRightPassword, wrong_code(first_, kNow)},
       1,
       "wrong-existing-code",
       4},
      {{key, oath_code(b, kNow), kRightPassword}, 1, "no-answer", 4},
      {{key.substr(0, 8), oath_code(b, kNow)}, 2, "invalid-key", 1},
  };
  for (const auto& c : cases) {
    expect_refusal(run_json({"device", "add", "phone2", "--finish", "--json"}, c.lines, c.exit),
                   c.error);
    EXPECT_EQ(prompts_.size(), c.prompts) << c.error;
    EXPECT_EQ(snapshot(), before) << c.error;
  }
  EXPECT_EQ(device_names(), Lines{"default"});
}

TEST_F(WebDeviceTest, RootFinishesWithKeyAndNewCodeOnly) {
  env_.uid = 0;
  env_.euid = 0;
  env_.invoking_user = "root";
  auto b = run_json({"device", "add", "tablet", "--user", "daemon", "--begin", "--json"}, {}, 0);
  auto j = run_json({"device", "add", "tablet", "--user", "daemon", "--finish", "--json"},
                    {str(b["secret"]), oath_code(b, kNow)}, 0);
  EXPECT_EQ(prompts_.size(), 2u) << "root: key and the new device's code";
  EXPECT_EQ(j["device"], "tablet");
  EXPECT_EQ(device_names(), (Lines{"default", "tablet"}));
}

TEST_F(WebDeviceTest, RemoveJsonReadsThePasswordOnce) {
  env_.uid = 0;
  env_.euid = 0;
  env_.invoking_user = "root";
  clear();
  ASSERT_EQ(run_cli({"device", "add", "phone2", "--user", "daemon", "--no-confirm", "--json"}), 0);
  become("daemon");
  const auto before = snapshot();
  auto wrong = run_json({"device", "remove", "phone2", "--json"}, {"wrong", kRightPassword}, 1);
  expect_refusal(wrong, "wrong-password");
  EXPECT_EQ(password_users_, Lines{"daemon"}) << "one try";
  EXPECT_EQ(snapshot(), before);

  auto j = run_json({"device", "remove", "phone2", "--json"}, {kRightPassword}, 0);
  EXPECT_EQ(j, (nlohmann::json{{"user", "daemon"}, {"device", "phone2"}, {"removed", true}}));
  EXPECT_EQ(device_names(), Lines{"default"});
  // The last device is kept: a failure is a JSON object too.
  expect_refusal(run_json({"device", "remove", "default", "--json"}, {kRightPassword}, 4),
                 "failed");
}

// ---- --json of the root actions --------------------------------------------------------------

TEST_F(WebStageTest, UnlockRequireAndResetPrintWhatTheyDid) {
  enroll("daemon");
  EXPECT_EQ(json_of({"unlock", "--user", "daemon", "--json"}, 0),
            (nlohmann::json{{"user", "daemon"}, {"action", "unlock"}, {"done", true}}));
  // Without --json the text is as before.
  clear();
  EXPECT_EQ(run_cli({"unlock", "--user", "daemon"}), 0);
  EXPECT_EQ(out(), "daemon: failures and lockout cleared\n");
  auto on = json_of({"require", "--user", "daemon", "--json"}, 0);
  EXPECT_EQ(on, (nlohmann::json{{"user", "daemon"},
                                {"action", "require"},
                                {"done", true},
                                {"marked", true},
                                {"changed", true},
                                {"required", true}}));
  EXPECT_EQ(json_of({"require", "--user", "daemon", "--json"}, 0)["changed"], false);
  auto off = json_of({"require", "--user", "daemon", "--off", "--json"}, 0);
  EXPECT_EQ(off["marked"], false);
  EXPECT_EQ(off["changed"], true);
  EXPECT_EQ(json_of({"reset", "--user", "daemon", "--json"}, 0),
            (nlohmann::json{{"user", "daemon"}, {"action", "reset"}, {"done", true}}));
  EXPECT_FALSE(enrolled("daemon"));
  // A failure is one JSON object too.
  auto refused = run_json({"unlock", "--user", "no-such-user-pbx", "--json"}, {}, 2);
  expect_refusal(refused, "failed");
}

}  // namespace
}  // namespace pbx::cli::testing

// pbx-mfa enroll, in-process: every flag, every usage error, the confirmation dialogue, what is
// (and is not) written, --json, and QR drawings that really scan (zbarimg).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "enroll_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/qr.hpp"
#include "pbx/totp/verifier.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

using totp::testing::snapshot;
using totp::testing::snapshot_diff;

class EnrollTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
  }
  // The "Secret:" line without its grouping.
  std::string printed_secret(const std::string& text) {
    std::string s = secret_line(text);
    std::erase(s, ' ');
    return s;
  }
  totp::Verifier verifier(const totp::Config& c, totp::Store& s) {
    return totp::Verifier(c, s, clock_);
  }
};

TEST_F(EnrollTest, RootProvisionsWithNoConfirm) {
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 0) << err();
  EXPECT_TRUE(prompts_.empty());
  auto e = load("daemon");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(dev0(*e).algorithm, totp::Algorithm::kSha1);
  EXPECT_EQ(dev0(*e).secret.size(), 20u);  // 160 bits
  EXPECT_EQ(dev0(*e).digits, 6);
  EXPECT_EQ(dev0(*e).period, 30);
  EXPECT_EQ(e->created, kNow);
  EXPECT_EQ(e->id.size(), 32u);
  EXPECT_EQ(e->recovery.hashes.size(), 2u);
  EXPECT_EQ(e->recovery.kdf.n, totp::KdfParams{}.n);  // production cost, not a test cost
  EXPECT_EQ(printed_secret(out()), totp::base32_encode(dev0(*e).secret, false));
  EXPECT_NE(out().find("Saved: daemon is enrolled."), std::string::npos);
  // Outside any home directory the file is root's, and private.
  struct stat st {};
  ASSERT_EQ(::lstat(secret_file("daemon").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(EnrollTest, SecretIsShownInGroupsOfFourAndInTheUri) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 0) << err();
  // Eight groups of four base32 characters, one space apart.
  std::string line = secret_line(out());
  ASSERT_EQ(line.size(), 8u * 4 + 7) << line;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (i % 5 == 4) {
      EXPECT_EQ(line[i], ' ') << line;
    } else {
      EXPECT_TRUE((line[i] >= 'A' && line[i] <= 'Z') || (line[i] >= '2' && line[i] <= '7')) << line;
    }
  }
  std::string uri = find_uri(out());
  auto params = totp::parse_otpauth_uri(uri);
  ASSERT_TRUE(params.ok()) << uri;
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(params->secret == dev0(*e).secret);
  EXPECT_EQ(uri.rfind("otpauth://totp/pbx-test-host:daemon?secret=", 0), 0u) << uri;
  EXPECT_NE(uri.find("&issuer=pbx-test-host&algorithm=SHA1&digits=6&period=30"), std::string::npos)
      << uri;
}

TEST_F(EnrollTest, RootConfirmsACodeAndIsNotAskedForAPassword) {
  answers_ = {right_code()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 0) << err();
  EXPECT_EQ(prompts_, std::vector<std::string>{"Current code: "});
  EXPECT_TRUE(password_users_.empty());
  EXPECT_TRUE(load("daemon").ok());
}

TEST_F(EnrollTest, TheConfirmationCodeCannotAlsoLogIn) {
  answers_ = {right_code()};
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon"}), 0) << err();
  std::string code = code_for(find_uri(out()), kNow);
  auto c = config();
  auto s = store();
  EXPECT_EQ(verdict_of(verifier(c, *s).verify(user("daemon"), code)), totp::Verdict::kReplayed);
  clock_.advance(30);
  EXPECT_EQ(
      verdict_of(verifier(c, *s).verify(user("daemon"), code_for(find_uri(out()), kNow + 30))),
      totp::Verdict::kAccepted);
}

TEST_F(EnrollTest, ACodeFromTheNeighbouringStepIsAccepted) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--qr", "none"}), 0);
  // Same check again, now answering with the previous step's code (a slow phone).
  std::string uri = find_uri(out());
  ASSERT_EQ(run_cli({"reset", "--user", "daemon"}), 0);
  clear();
  env_.read_secret = [this](std::string_view p) -> std::optional<totp::SecretString> {
    prompts_.emplace_back(p);
    return totp::SecretString(code_for(find_uri(out_.str()), clock_.now(), -1));
  };
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 0) << err();
}

TEST_F(EnrollTest, WrongCodeThenRightCode) {
  answers_ = {wrong_code(), right_code()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 0) << err();
  EXPECT_EQ(prompts_.size(), 2u);
  EXPECT_NE(err().find("Wrong code"), std::string::npos) << err();
  EXPECT_NE(err().find("2 tries left"), std::string::npos) << err();
  EXPECT_TRUE(load("daemon").ok());
}

TEST_F(EnrollTest, WrongCodeThreeTimesWritesNothing) {
  auto before = snapshot(tmp_.path());
  answers_ = {wrong_code(), wrong_code(), wrong_code(), right_code()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 1);
  EXPECT_EQ(prompts_.size(), 3u);  // three tries, no fourth
  EXPECT_NE(err().find("wrong code 3 times; nothing was saved"), std::string::npos) << err();
  EXPECT_EQ(err().find("password"), std::string::npos) << err();
  EXPECT_EQ(out().find("Recovery codes"), std::string::npos);
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(EnrollTest, CodesOfAnotherShapeAreWrongCodes) {
  auto before = snapshot(tmp_.path());
  answers_ = {text(""), text("12345"), text("abcdef")};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 1);
  EXPECT_NE(err().find("wrong code"), std::string::npos);
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(EnrollTest, SpacesInTheCodeAreIgnored) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 0);
  ASSERT_EQ(run_cli({"reset", "--user", "daemon"}), 0);
  clear();
  env_.read_secret = [this](std::string_view) -> std::optional<totp::SecretString> {
    std::string c = code_for(find_uri(out_.str()), clock_.now());
    return totp::SecretString(" " + c.substr(0, 3) + " " + c.substr(3) + " ");
  };
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 0) << err();
}

TEST_F(EnrollTest, EndOfInputWritesNothing) {
  auto before = snapshot(tmp_.path());
  answers_ = {eof()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 1);
  EXPECT_NE(err().find("no code entered; nothing was saved"), std::string::npos) << err();
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(EnrollTest, UserEnrollingThemselvesConfirmsCodeThenPassword) {
  become("daemon");
  answers_ = {right_code(), text(kRightPassword)};
  EXPECT_EQ(run_cli({"enroll"}), 0) << err();
  EXPECT_EQ(prompts_, (std::vector<std::string>{"Current code: ", "Password: "}));
  EXPECT_EQ(password_users_, std::vector<std::string>{"daemon"});
  EXPECT_TRUE(load("daemon").ok());
}

TEST_F(EnrollTest, WrongPasswordThenRightPassword) {
  become("daemon");
  answers_ = {right_code(), text("guess"), text(kRightPassword)};
  EXPECT_EQ(run_cli({"enroll"}), 0) << err();
  EXPECT_NE(err().find("Wrong password (2 tries left)"), std::string::npos) << err();
  EXPECT_EQ(password_users_.size(), 2u);
  EXPECT_TRUE(load("daemon").ok());
}

TEST_F(EnrollTest, WrongPasswordThreeTimesWritesNothingAndSaysSo) {
  become("daemon");
  auto before = snapshot(tmp_.path());
  answers_ = {right_code(), text("a"), text("b"), text("c"), text(kRightPassword)};
  EXPECT_EQ(run_cli({"enroll"}), 1);
  EXPECT_EQ(password_users_.size(), 3u);
  EXPECT_NE(err().find("wrong password 3 times; nothing was saved"), std::string::npos) << err();
  EXPECT_EQ(err().find("wrong code"), std::string::npos) << err();
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(EnrollTest, WithoutAPasswordCheckerNobodyPasses) {
  become("daemon");
  env_.check_password = nullptr;
  answers_ = {right_code(), text(kRightPassword), text(kRightPassword), text(kRightPassword)};
  EXPECT_EQ(run_cli({"enroll"}), 1);
  EXPECT_FALSE(load("daemon").ok());
}

TEST_F(EnrollTest, NoConfirmIsForRootOnly) {
  become("daemon");
  auto before = snapshot(tmp_.path());
  EXPECT_EQ(run_cli({"enroll", "--no-confirm"}), 4);
  EXPECT_NE(err().find("--no-confirm needs root"), std::string::npos) << err();
  EXPECT_EQ(out(), "");
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(EnrollTest, AnotherUserNeedsRoot) {
  become("daemon");
  EXPECT_EQ(run_cli({"enroll", "--user", "bin"}), 4);
  EXPECT_NE(err().find("needs root"), std::string::npos) << err();
  EXPECT_TRUE(prompts_.empty());
}

TEST_F(EnrollTest, UnknownUserIsAUsageError) {
  EXPECT_EQ(run_cli({"enroll", "--user", "no-such-user-pbx", "--no-confirm"}), 2);
  EXPECT_NE(err().find("no-such-user-pbx"), std::string::npos) << err();
}

TEST_F(EnrollTest, AnExistingEnrollmentIsKeptWithoutForce) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 0);
  clear();
  env_.out_is_tty = true;  // would draw a QR code
  auto before = snapshot(tmp_.path());
  answers_ = {right_code()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 4);
  EXPECT_NE(err().find("daemon is already enrolled"), std::string::npos) << err();
  EXPECT_NE(err().find("--force"), std::string::npos) << err();
  // Refused before anything was shown or asked: no dead entry in the user's app.
  EXPECT_EQ(out(), "");
  EXPECT_TRUE(prompts_.empty());
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(EnrollTest, ASymlinkAtTheSecretPathIsRefusedClearly) {
  ASSERT_TRUE(totp::testing::write_file(tmp_ / "elsewhere", "x", 0600));
  ASSERT_EQ(::symlink((tmp_ / "elsewhere").c_str(), secret_file("daemon").c_str()), 0);
  auto before = snapshot(tmp_.path());
  answers_ = {right_code()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 4);
  EXPECT_NE(err().find("symbolic link"), std::string::npos) << err();
  EXPECT_EQ(out(), "");
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
  // --force replaces the link itself, never what it points to.
  clear();
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--force"}), 0) << err();
  EXPECT_EQ(totp::testing::read_file(tmp_ / "elsewhere"), "x");
  EXPECT_TRUE(load("daemon").ok());
}

TEST_F(EnrollTest, ACorruptSecretFileIsRefusedWithoutForce) {
  ASSERT_TRUE(totp::testing::write_file(secret_file("daemon"), "version 1\nid x\n", 0600));
  auto before = snapshot(tmp_.path());
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 4);
  EXPECT_EQ(out(), "");
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

TEST_F(EnrollTest, AnUnsafeStateDirStopsRootBeforeAnythingIsShown) {
  ASSERT_EQ(::mkdir(state_dir_.c_str(), 0755), 0);  // group/other may look in: unsafe
  env_.out_is_tty = true;
  answers_ = {right_code()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon"}), 4);
  EXPECT_NE(err().find("state_dir"), std::string::npos) << err();
  EXPECT_EQ(out(), "");
  EXPECT_TRUE(prompts_.empty());
  EXPECT_FALSE(totp::testing::exists_nofollow(secret_file("daemon")));
}

TEST_F(EnrollTest, ForceReplacesTheEnrollmentAndStartsAfresh) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 0);
  auto first = load("daemon");
  ASSERT_TRUE(first.ok());
  // Lock the user out under the first enrollment.
  auto c = config();
  auto s = store();
  for (int i = 0; i < c.max_failures; ++i) {
    (void)verifier(c, *s).verify(user("daemon"), "000000");
  }
  ASSERT_TRUE(verifier(c, *s).status(user("daemon"))->locked);
  clear();
  answers_ = {right_code()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--force"}), 0) << err();
  auto second = load("daemon");
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->id, first->id);
  EXPECT_FALSE(dev0(*second).secret == dev0(*first).secret);
  auto st = verifier(c, *s).status(user("daemon"));
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->locked);
  EXPECT_EQ(st->state.failures, 0);
}

TEST_F(EnrollTest, EveryFlagShapesTheEnrollment) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--issuer", "Example PBX",
                     "--label", "alice@example.org", "--algorithm", "sha256", "--digits", "8",
                     "--period", "60", "--recovery-codes", "3", "--qr", "none"}),
            0)
      << err();
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(dev0(*e).algorithm, totp::Algorithm::kSha256);
  EXPECT_EQ(dev0(*e).secret.size(), 32u);  // 256 bits for SHA256
  EXPECT_EQ(dev0(*e).digits, 8);
  EXPECT_EQ(dev0(*e).period, 60);
  EXPECT_EQ(e->recovery.hashes.size(), 3u);
  std::string uri = find_uri(out());
  EXPECT_EQ(uri.rfind("otpauth://totp/Example%20PBX:alice%40example.org?secret=", 0), 0u) << uri;
  EXPECT_NE(uri.find("&issuer=Example%20PBX&algorithm=SHA256&digits=8&period=60"),
            std::string::npos)
      << uri;
  EXPECT_EQ(listed_codes(out()).size(), 3u);
}

TEST_F(EnrollTest, Sha512GetsA512BitSecretAndConfirmsWithIt) {
  answers_ = {right_code()};
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--algorithm", "SHA512", "--digits", "7",
                     "--period", "15"}),
            0)
      << err();
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(dev0(*e).algorithm, totp::Algorithm::kSha512);
  EXPECT_EQ(dev0(*e).secret.size(), 64u);
  EXPECT_EQ(dev0(*e).digits, 7);
  EXPECT_EQ(dev0(*e).period, 15);
}

TEST_F(EnrollTest, TheConfigGivesTheDefaults) {
  write_config(
      "issuer = Acme Telephony\nalgorithm = SHA256\ndigits = 8\nperiod = 45\n"
      "recovery_codes = 4\n");
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 0) << err();
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(dev0(*e).algorithm, totp::Algorithm::kSha256);
  EXPECT_EQ(dev0(*e).digits, 8);
  EXPECT_EQ(dev0(*e).period, 45);
  EXPECT_EQ(e->recovery.hashes.size(), 4u);
  EXPECT_EQ(find_uri(out()).rfind("otpauth://totp/Acme%20Telephony:daemon?", 0), 0u);
}

TEST_F(EnrollTest, RecoveryCodeCountsZeroAndTwenty) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--recovery-codes", "0"}), 0);
  EXPECT_EQ(load("daemon")->recovery.hashes.size(), 0u);
  EXPECT_NE(out().find("No recovery codes were made"), std::string::npos);
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--force", "--recovery-codes",
                     "20", "--json"}),
            0);
  EXPECT_EQ(load("daemon")->recovery.hashes.size(), 20u);
}

TEST_F(EnrollTest, PrintedRecoveryCodesEachWorkOnce) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--recovery-codes", "3"}), 0);
  std::vector<std::string> codes = listed_codes(out());
  ASSERT_EQ(codes.size(), 3u);
  auto c = config();
  auto s = store();
  for (const auto& rc : codes) {
    EXPECT_EQ(verdict_of(verifier(c, *s).verify(user("daemon"), rc)),
              totp::Verdict::kRecoveryAccepted);
    EXPECT_EQ(verdict_of(verifier(c, *s).verify(user("daemon"), rc)), totp::Verdict::kRejected);
  }
}

TEST_F(EnrollTest, QrCodeDefaultsToAnsiOnATerminalAndNoneOtherwise) {
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 0);
  EXPECT_EQ(out().find("Scan this QR code"), std::string::npos);
  EXPECT_EQ(out().find('\x1b'), std::string::npos);
  clear();
  env_.out_is_tty = true;
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--force"}), 0);
  EXPECT_NE(out().find("Scan this QR code"), std::string::npos);
  EXPECT_NE(out().find("\x1b[30;47m"), std::string::npos);
  clear();
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--force", "--qr", "none"}), 0);
  EXPECT_EQ(out().find("Scan this QR code"), std::string::npos);
}

TEST_F(EnrollTest, JsonIsOneObjectWithTheContractFields) {
  ASSERT_EQ(
      run_cli({"enroll", "--user", "daemon", "--no-confirm", "--json", "--recovery-codes", "3"}), 0)
      << err();
  std::string text = out();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line only";
  auto j = nlohmann::json::parse(text);
  ASSERT_TRUE(j.is_object());
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"otpauth_uri", "recovery_codes", "secret", "user"}));
  EXPECT_EQ(j["user"], "daemon");
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(j["secret"], totp::base32_encode(dev0(*e).secret, false));
  auto params = totp::parse_otpauth_uri(j["otpauth_uri"].get<std::string>());
  ASSERT_TRUE(params.ok());
  EXPECT_TRUE(params->secret == dev0(*e).secret);
  ASSERT_TRUE(j["recovery_codes"].is_array());
  ASSERT_EQ(j["recovery_codes"].size(), 3u);
  auto c = config();
  auto s = store();
  EXPECT_EQ(
      verdict_of(verifier(c, *s).verify(user("daemon"), j["recovery_codes"][2].get<std::string>())),
      totp::Verdict::kRecoveryAccepted);
  EXPECT_EQ(err(), "");  // --no-confirm: nothing to show anyone
}

TEST_F(EnrollTest, JsonWithConfirmationShowsTheSecretOnStderrOnly) {
  env_.out_is_tty = true;  // still no drawing with --json
  answers_ = {wrong_code(), right_code()};
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--json"}), 0) << err();
  auto j = nlohmann::json::parse(out());  // throws if anything else is on stdout
  EXPECT_EQ(out().find('\n'), out().size() - 1);
  EXPECT_NE(err().find("Secret: "), std::string::npos);
  EXPECT_EQ(find_uri(err()), j["otpauth_uri"]);
  EXPECT_EQ(out().find('\x1b'), std::string::npos);
  EXPECT_EQ(err().find('\x1b'), std::string::npos);
}

TEST_F(EnrollTest, JsonFailureLeavesStdoutEmpty) {
  answers_ = {wrong_code(), wrong_code(), wrong_code()};
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--json"}), 1);
  EXPECT_EQ(out(), "");
}

// ---- usage errors --------------------------------------------------------------------------

struct UsageCase {
  std::vector<std::string> args;
  std::string must_say;  // the flag and the accepted values
};

void PrintTo(const UsageCase& c, std::ostream* os) {
  for (const auto& a : c.args) *os << "'" << a << "' ";
}

class EnrollUsageTest : public CliTest, public ::testing::WithParamInterface<UsageCase> {};

TEST_P(EnrollUsageTest, ExitsTwoNamingTheFlagAndWritesNothing) {
  auto before = snapshot(tmp_.path());
  std::vector<std::string> args = {"enroll", "--user", "daemon"};
  args.insert(args.end(), GetParam().args.begin(), GetParam().args.end());
  answers_ = {right_code()};
  EXPECT_EQ(run_cli(args), 2);
  EXPECT_NE(err().find(GetParam().must_say), std::string::npos) << err();
  EXPECT_EQ(out(), "");
  EXPECT_TRUE(prompts_.empty());
  EXPECT_EQ(snapshot_diff(before, snapshot(tmp_.path())), "");
}

INSTANTIATE_TEST_SUITE_P(
    Flags, EnrollUsageTest,
    ::testing::Values(
        UsageCase{{"--digits", "5"}, "--digits: expected a whole number from 6 to 8, got '5'"},
        UsageCase{{"--digits", "9"}, "--digits: expected a whole number from 6 to 8"},
        UsageCase{{"--digits", "six"}, "--digits: expected a whole number from 6 to 8"},
        UsageCase{{"--digits", "6.5"}, "--digits: expected a whole number from 6 to 8"},
        UsageCase{{"--digits", ""}, "--digits: expected a whole number from 6 to 8"},
        UsageCase{{"--period", "14"}, "--period: expected a whole number from 15 to 300"},
        UsageCase{{"--period", "301"}, "--period: expected a whole number from 15 to 300"},
        UsageCase{{"--period", "30s"}, "--period: expected a whole number from 15 to 300"},
        UsageCase{{"--period", "99999999999999999999"}, "--period: expected a whole number"},
        UsageCase{{"--algorithm", "MD5"}, "--algorithm: expected SHA1, SHA256 or SHA512"},
        UsageCase{{"--algorithm", "SHA-1"}, "--algorithm: expected SHA1, SHA256 or SHA512"},
        UsageCase{{"--recovery-codes", "21"},
                  "--recovery-codes: expected a whole number from 0 to 20"},
        UsageCase{{"--recovery-codes", "-1"},
                  "--recovery-codes: expected a whole number from 0 to 20"},
        UsageCase{{"--qr", "png"}, "--qr: expected ansi, utf8, ascii or none, got 'png'"},
        UsageCase{{"--qr", "ANSI"}, "--qr: expected ansi, utf8, ascii or none"},
        UsageCase{{"--issuer", ""}, "--issuer: must be 1 to 128 characters"},
        UsageCase{{"--issuer", std::string(129, 'x')}, "--issuer: must be 1 to 128 characters"},
        UsageCase{{"--issuer", "a:b"}, "--issuer: must not contain ':'"},
        UsageCase{{"--issuer", "bell\a"}, "--issuer: must not contain control characters"},
        UsageCase{{"--label", ""}, "--label: must be 1 to 128 characters"},
        UsageCase{{"--label", "alice:admin"}, "--label: must not contain ':'"},
        UsageCase{{"--label", "new\nline"}, "--label: must not contain control characters"},
        UsageCase{{"--json", "--qr", "ansi"}, "--qr ansi: no QR code is drawn with --json"},
        UsageCase{{"--digits"}, "--digits"}, UsageCase{{"--bogus"}, "--bogus"},
        UsageCase{{"--force=maybe"}, "--force"}));

// The config parser refuses it (the module too, so no login enrolls with a broken label).
TEST_F(EnrollTest, AConfigIssuerWithAColonIsAConfigError) {
  write_config("issuer = pbx:prod\n");
  EXPECT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm"}), 2);
  EXPECT_NE(err().find("issuer: must not contain ':'"), std::string::npos) << err();
  EXPECT_EQ(out(), "");
  struct stat st {};
  EXPECT_NE(::lstat(secret_file("daemon").c_str(), &st), 0) << "nothing is saved";
}

TEST_F(EnrollTest, HelpListsEveryFlag) {
  EXPECT_EQ(run_cli({"enroll", "--help"}), 0);
  for (const char* flag : {"--user", "--issuer", "--label", "--algorithm", "--digits", "--period",
                           "--qr", "--recovery-codes", "--force", "--no-confirm", "--json"}) {
    EXPECT_NE(out().find(flag), std::string::npos) << flag;
  }
}

// ---- QR codes that scan --------------------------------------------------------------------

struct ScanCase {
  std::string style;
  Theme theme;
  const char* theme_name;
};

void PrintTo(const ScanCase& c, std::ostream* os) { *os << c.style << " on " << c.theme_name; }

class EnrollQrTest : public CliTest, public ::testing::WithParamInterface<ScanCase> {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
  }
};

// The drawing in enroll's own output, turned into pixels the way a terminal shows it, decodes
// to the printed URI, and that URI holds the saved secret.
TEST_P(EnrollQrTest, TheDrawingScansToThePrintedUri) {
  const ScanCase& c = GetParam();
  ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--issuer",
                     "pbx-prod-01.example.net", "--label", "alice.smit", "--qr", c.style}),
            0)
      << err();
  std::string drawing = drawing_in(out());
  ASSERT_FALSE(drawing.empty()) << out();
  std::string uri = find_uri(out());
  auto decoded = zbar_decode(drawing, c.theme, tmp_.path());
  ASSERT_TRUE(decoded.has_value()) << c.style << " on a " << c.theme_name << " theme:\n" << drawing;
  EXPECT_EQ(*decoded, uri);
  auto params = totp::parse_otpauth_uri(*decoded);
  ASSERT_TRUE(params.ok());
  auto e = load("daemon");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(params->secret == dev0(*e).secret);
}

INSTANTIATE_TEST_SUITE_P(
    Styles, EnrollQrTest,
    ::testing::Values(ScanCase{"ansi", kDarkTheme, "dark"},  // explicit colours: any theme
                      ScanCase{"ansi", kLightTheme, "light"},
                      ScanCase{"utf8", kDarkTheme, "dark"},      // light ink on the usual dark
                      ScanCase{"ascii", kLightTheme, "light"}),  // dark ink: paper, light theme
    [](const ::testing::TestParamInfo<ScanCase>& case_info) {
      return case_info.param.style + "_" + case_info.param.theme_name;
    });

TEST_F(EnrollTest, EveryAlgorithmScans) {
  for (const char* alg : {"SHA1", "SHA256", "SHA512"}) {
    clear();
    ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--force", "--qr", "ansi",
                       "--algorithm", alg, "--digits", "8"}),
              0)
        << err();
    auto decoded = zbar_decode(drawing_in(out()), kDarkTheme, tmp_.path());
    ASSERT_TRUE(decoded.has_value()) << alg;
    EXPECT_EQ(*decoded, find_uri(out())) << alg;
  }
}

// The default drawing of a SHA1 enrollment fits an 80x30 terminal: at most 80 columns wide,
// 30 lines tall.
TEST_F(EnrollTest, DefaultSha1DrawingFitsEightyByThirty) {
  env_.out_is_tty = true;
  for (const auto& [issuer, label] : std::vector<std::pair<std::string, std::string>>{
           {"pbx-prod-01.example.net", "alice.smit"},
           {"voip-gw-frankfurt-02.example.com", "j.rodriguez"},
           {"asterisk.example.org", "root"},
           {"pbx1", "administrator"}}) {
    clear();
    ASSERT_EQ(run_cli({"enroll", "--user", "daemon", "--no-confirm", "--force", "--issuer", issuer,
                       "--label", label}),
              0)
        << err();
    std::string drawing = drawing_in(out());
    ASSERT_FALSE(drawing.empty());
    auto widths = line_widths(drawing);
    EXPECT_LE(widths.size(), 30u) << issuer;
    for (int w : widths) EXPECT_LE(w, 80) << issuer;
    EXPECT_EQ(zbar_decode(drawing, kDarkTheme, tmp_.path()), find_uri(out())) << issuer;
  }
}

// ---- render_qr itself ----------------------------------------------------------------------

TEST(RenderQr, RefusesEmptyOversizeAndNul) {
  using totp::QrStyle;
  EXPECT_EQ(totp::render_qr("", QrStyle::kAnsi).error().code, totp::Errc::kInvalid);
  EXPECT_EQ(totp::render_qr(std::string(totp::kMaxQrText + 1, 'a'), QrStyle::kAnsi).error().code,
            totp::Errc::kInvalid);
  EXPECT_EQ(totp::render_qr(std::string_view("ab\0cd", 5), QrStyle::kUtf8).error().code,
            totp::Errc::kInvalid);
  EXPECT_TRUE(totp::render_qr(std::string(totp::kMaxQrText, 'a'), QrStyle::kAscii).ok());
}

TEST(RenderQr, AnsiLinesAreBlackOnWhiteWithAFourModuleQuietZone) {
  auto r = totp::render_qr("otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP", totp::QrStyle::kAnsi);
  ASSERT_TRUE(r.ok());
  auto lines = pbx::test::split_lines(*r);
  ASSERT_GE(lines.size(), 15u);
  auto widths = line_widths(*r);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind("\x1b[30;47m", 0), 0u) << i;
    EXPECT_TRUE(lines[i].ends_with("\x1b[0m")) << i;
    EXPECT_EQ(widths[i], widths[0]) << i;
  }
  // Two modules per line: the first two lines are the quiet zone, all background.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(lines[i], "\x1b[30;47m" + std::string(widths[0], ' ') + "\x1b[0m");
  }
  // The finder pattern's top starts after 4 light columns.
  EXPECT_EQ(lines[2].substr(8, 4), "    ");
  EXPECT_EQ(lines[2].substr(12, 3), "\xE2\x96\x88");
}

TEST(RenderQr, AsciiIsTwoCharactersPerModuleOneLinePerRow) {
  auto r = totp::render_qr("otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP", totp::QrStyle::kAscii);
  ASSERT_TRUE(r.ok());
  auto lines = pbx::test::split_lines(*r);
  const std::size_t side = lines.size();
  for (std::size_t i = 0; i < side; ++i) EXPECT_EQ(lines[i].size(), 2 * side) << i;
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(lines[i], std::string(2 * side, ' '));
  EXPECT_EQ(lines[4].substr(0, 8 + 14), std::string(8, ' ') + std::string(14, '#'));
}

TEST(RenderQr, Utf8InksTheLightModules) {
  auto r = totp::render_qr("otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP", totp::QrStyle::kUtf8);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->find('\x1b'), std::string::npos);
  auto lines = pbx::test::split_lines(*r);
  // The quiet zone is light, so it is all ink (full blocks) on the first two lines.
  std::string full;
  for (int w = line_widths(*r)[0]; w > 0; --w) full += "\xE2\x96\x88";
  EXPECT_EQ(lines[0], full);
  EXPECT_EQ(lines[1], full);
}

}  // namespace
}  // namespace pbx::cli::testing

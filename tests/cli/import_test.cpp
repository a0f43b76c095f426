// pbx-mfa import: files written by the real google-authenticator program, oath users files,
// otpauth URIs on stdin, and hostile input. Codes come from oathtool, an independent program.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "enroll_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/importers.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

using pbx::test::run_program;
using totp::testing::snapshot;
using totp::testing::snapshot_diff;
using totp::testing::write_file;

constexpr const char* kGoogleAuthenticator = "/usr/bin/google-authenticator";
constexpr const char* kRfcHex = "3132333435363738393031323334353637383930";  // "1234...890"

std::string oathtool() {
  std::string path = pbx::test::find_oathtool();
  if (path.empty()) throw std::runtime_error(pbx::test::kInstallOathtool);
  return path;
}

// The code oathtool computes at `t` (extra options select base32, digits, step, algorithm).
std::string oath_code(std::vector<std::string> options, const std::string& key, std::int64_t t) {
  std::vector<std::string> argv = {oathtool()};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--now=@" + std::to_string(t));
  argv.push_back(key);
  auto r = run_program(argv);
  if (!r || r->exit_code != 0) throw std::runtime_error("oathtool failed: " + (r ? r->err : ""));
  std::string out = r->out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

class ImportTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the enrolled files must be root-owned");
    CliTest::SetUp();
  }
  // Runs the real google-authenticator non-interactively; returns the file it wrote.
  std::string google_authenticator(std::vector<std::string> options, const std::string& name) {
    if (::access(kGoogleAuthenticator, X_OK) != 0) {
      ADD_FAILURE() << "google-authenticator is required by these tests: "
                       "apt-get install libpam-google-authenticator";
      throw std::runtime_error("no google-authenticator");
    }
    std::string path = tmp_ / name;
    std::vector<std::string> argv = {
        kGoogleAuthenticator, "-f", "-C", "-q", "-Q", "NONE", "-s", path};
    argv.insert(argv.end(), options.begin(), options.end());
    auto r = run_program(argv);
    if (!r || r->exit_code != 0) {
      ADD_FAILURE() << "google-authenticator failed: " << (r ? r->out + r->err : "not run");
      throw std::runtime_error("google-authenticator failed");
    }
    return path;
  }

  static std::vector<std::string> lines_of(const std::string& path) {
    auto text = totp::testing::read_file(path);
    if (!text) throw std::runtime_error("cannot read " + path);
    return pbx::test::split_lines(*text);
  }

  // Everything import could write: the secret and state directories.
  totp::testing::Snapshot disk() {
    auto a = snapshot(secrets_dir_);
    auto b = snapshot(state_dir_);
    for (auto& [k, v] : b) a["state/" + k] = v;
    return a;
  }
};

// ---- google-authenticator ------------------------------------------------------------------

TEST_F(ImportTest, GoogleAuthenticatorFileCodesAndScratchCodes) {
  std::string file =
      google_authenticator({"-t", "-d", "-r", "3", "-R", "30", "-w", "3", "-e", "5"}, "ga");
  auto lines = lines_of(file);
  ASSERT_GE(lines.size(), 6U);
  const std::string secret = lines[0];
  std::vector<std::string> scratch(lines.end() - 5, lines.end());
  for (const auto& s : scratch) ASSERT_EQ(s.size(), 8U) << "not a scratch code line";

  ASSERT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", file}), 0)
      << err();
  EXPECT_NE(out().find("5 scratch codes kept as one-time recovery codes"), std::string::npos)
      << out();
  EXPECT_NE(out().find("RATE_LIMIT"), std::string::npos) << "the rate limit is not carried over";
  auto e = load("root");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(dev0(*e).algorithm, totp::Algorithm::kSha1);
  EXPECT_EQ(dev0(*e).digits, 6);
  EXPECT_EQ(dev0(*e).period, 30);
  EXPECT_EQ(e->recovery.hashes.size(), 5U);
  EXPECT_EQ(totp::base32_encode(dev0(*e).secret, false), secret);

  // A code from oathtool, with the secret as google-authenticator wrote it.
  clear();
  std::string code = oath_code({"--totp", "-b"}, secret, kNow);
  EXPECT_EQ(run_cli({"verify", "--user", "root", code}), 0) << err();
  EXPECT_EQ(out(), "code accepted\n");

  // A scratch code works once, then never again; the others still work.
  clear();
  EXPECT_EQ(run_cli({"verify", "--user", "root", scratch[2]}), 0) << err();
  EXPECT_EQ(out(), "recovery code accepted; 4 left\n");
  clear();
  EXPECT_EQ(run_cli({"verify", "--user", "root", scratch[2]}), 1);
  EXPECT_NE(err().find("code rejected"), std::string::npos) << err();
  clear();
  EXPECT_EQ(run_cli({"verify", "--user", "root", scratch[4]}), 0) << err();
  clear();
  ASSERT_EQ(run_cli({"status", "--user", "root", "--json"}), 0) << err();
  auto j = nlohmann::json::parse(out());
  EXPECT_EQ(j["recovery_codes_left"], 3);
  EXPECT_EQ(j["failures"], 0) << "the last code was right";
}

TEST_F(ImportTest, GoogleAuthenticatorStepSizeAndWindowNote) {
  std::string file =
      google_authenticator({"-t", "-D", "-u", "-S", "60", "-w", "17", "-e", "0"}, "ga60");
  const std::string secret = lines_of(file)[0];
  ASSERT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", file, "--json"}),
            0)
      << err();
  auto j = nlohmann::json::parse(out());
  EXPECT_EQ(j["user"], "root");
  EXPECT_EQ(j["algorithm"], "SHA1");
  EXPECT_EQ(j["digits"], 6);
  EXPECT_EQ(j["period"], 60);
  EXPECT_EQ(j["recovery_codes_imported"], 0);
  std::string notes = j["notes"].dump();
  EXPECT_NE(notes.find("WINDOW_SIZE 17"), std::string::npos) << notes;
  EXPECT_NE(notes.find("no per-user window"), std::string::npos) << notes;
  EXPECT_NE(notes.find("more than once"), std::string::npos) << "allow-reuse is noted: " << notes;

  clear();
  std::string code = oath_code({"--totp", "-b", "-s", "60"}, secret, kNow);
  EXPECT_EQ(run_cli({"verify", "--user", "root", code}), 0) << err();
}

TEST_F(ImportTest, GoogleAuthenticatorWindowLikeConfigIsNotNoted) {
  std::string file = google_authenticator({"-t", "-d", "-u", "-w", "3", "-e", "1"}, "ga3");
  ASSERT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", file}), 0)
      << err();
  EXPECT_EQ(out().find("WINDOW_SIZE"), std::string::npos) << out();
  EXPECT_NE(out().find("1 scratch code kept"), std::string::npos) << out();
}

TEST_F(ImportTest, GoogleAuthenticatorHotpFileIsRefused) {
  std::string file = google_authenticator({"-c", "-u", "-w", "5", "-e", "2"}, "hotp");
  auto before = disk();
  EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", file}), 2);
  EXPECT_NE(err().find("counter-based (HOTP_COUNTER)"), std::string::npos) << err();
  EXPECT_NE(err().find("time-based codes only"), std::string::npos) << err();
  EXPECT_EQ(snapshot_diff(before, disk()), "");
}

TEST_F(ImportTest, ExistingEnrollmentIsKeptUnlessForce) {
  std::string first = google_authenticator({"-t", "-d", "-u", "-w", "3", "-e", "0"}, "first");
  std::string second = google_authenticator({"-t", "-d", "-u", "-w", "3", "-e", "0"}, "second");
  ASSERT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", first}), 0)
      << err();
  auto before = disk();
  clear();
  EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", second}), 4);
  EXPECT_NE(err().find("already enrolled; use --force"), std::string::npos) << err();
  EXPECT_EQ(snapshot_diff(before, disk()), "");

  clear();
  ASSERT_EQ(
      run_cli({"import", "--user", "root", "--from", "google-authenticator", second, "--force"}), 0)
      << err();
  clear();
  EXPECT_EQ(
      run_cli({"verify", "--user", "root", oath_code({"--totp", "-b"}, lines_of(first)[0], kNow)}),
      1)
      << "the replaced secret's codes no longer work";
  clear();
  EXPECT_EQ(
      run_cli({"verify", "--user", "root", oath_code({"--totp", "-b"}, lines_of(second)[0], kNow)}),
      0)
      << err();
}

// ---- oath users file -----------------------------------------------------------------------

TEST_F(ImportTest, OathUsersFileLineOfTheUser) {
  std::string file = tmp_ / "users.oath";
  ASSERT_TRUE(write_file(file,
                         "# users.oath for pam_oath\n"
                         "HOTP/T30 alice - 00112233445566778899aabbccddeeff00112233\n"
                         "\n"
                         "HOTP/T60/8\troot\t-\t" +
                             std::string(kRfcHex) +
                             "\t0\n"
                             "HOTP bob - 00112233445566778899\n"));
  ASSERT_EQ(run_cli({"import", "--user", "root", "--from", "oath", file, "--json"}), 0) << err();
  auto j = nlohmann::json::parse(out());
  EXPECT_EQ(j["digits"], 8);
  EXPECT_EQ(j["period"], 60);
  EXPECT_EQ(j["recovery_codes_imported"], 0);

  clear();
  std::string code = oath_code({"--totp", "-d", "8", "-s", "60"}, kRfcHex, kNow);
  EXPECT_EQ(run_cli({"verify", "--user", "root", code}), 0) << err();
  clear();
  EXPECT_EQ(run_cli({"verify", "--user", "root", code}), 1) << "a code is accepted once";
}

TEST_F(ImportTest, OathHotpPinAndMissingLinesAreRefused) {
  struct Case {
    std::string line;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"HOTP root - " + std::string(kRfcHex), "counter-based (event) HOTP"},
      {"HOTP/E/8 root - " + std::string(kRfcHex), "counter-based (event) HOTP"},
      {"HOTP/T30 root 1234 " + std::string(kRfcHex), "has a PIN"},
      {"HOTP/T30 alice - " + std::string(kRfcHex), "no line for user 'root'"},
      {"HOTP/T30 root - " + std::string(kRfcHex) + "\nHOTP/T60 root - " + kRfcHex,
       "2 lines for user 'root'"},
      {"TOTP/T30 root - " + std::string(kRfcHex), "unknown token type"},
      {"HOTP/T30/9 root - " + std::string(kRfcHex), "digits in HOTP/Tn/D must be 6 to 8"},
      {"HOTP/T0 root - " + std::string(kRfcHex), "1 to 300 seconds"},
      {"HOTP/T30 root - 31323g", "not hexadecimal"},
      {"HOTP/T30 root - 3132333435", "shorter than 80 bits"},
      {"HOTP/T30 root -", "expected TYPE USER PIN SECRET"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.line);
    std::string file = tmp_ / "users.oath";
    ASSERT_TRUE(write_file(file, c.line + "\n"));
    auto before = disk();
    clear();
    EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "oath", file}), 2);
    EXPECT_NE(err().find(c.message), std::string::npos) << err();
    EXPECT_EQ(err().find(kRfcHex), std::string::npos) << "the secret is never echoed";
    EXPECT_EQ(snapshot_diff(before, disk()), "");
  }
}

// ---- otpauth URI ---------------------------------------------------------------------------

TEST_F(ImportTest, UriOnStandardInput) {
  const std::string b32 =
      totp::base32_encode(totp::testing::bytes_of("12345678901234567890abcd"), false);
  in_.str("  otpauth://totp/Old%20Host:someone?secret=" + b32 +
          "&issuer=Old%20Host&algorithm=SHA256&digits=8&period=30\r\n");
  ASSERT_EQ(run_cli({"import", "--user", "root", "--from", "uri", "-"}), 0) << err();
  EXPECT_NE(out().find("imported from uri (SHA256, 8 digits, 30 s)"), std::string::npos) << out();
  EXPECT_NE(out().find("the URI names the account 'someone'"), std::string::npos) << out();
  clear();
  std::string code = oath_code({"--totp=SHA256", "-d", "8", "-b"}, b32, kNow);
  EXPECT_EQ(run_cli({"verify", "--user", "root", code}), 0) << err();
}

TEST_F(ImportTest, UriOnTheCommandLineWorksWithANote) {
  const std::string b32 =
      totp::base32_encode(totp::testing::bytes_of("12345678901234567890"), false);
  ASSERT_EQ(
      run_cli({"import", "--user", "root", "--from", "uri", "otpauth://totp/root?secret=" + b32}),
      0)
      << err();
  EXPECT_NE(out().find("other users may see it"), std::string::npos) << out();
  clear();
  EXPECT_EQ(run_cli({"verify", "--user", "root", oath_code({"--totp", "-b"}, b32, kNow)}), 0);
}

TEST_F(ImportTest, UriInAFile) {
  const std::string b32 =
      totp::base32_encode(totp::testing::bytes_of("12345678901234567890"), false);
  std::string file = tmp_ / "uri.txt";
  ASSERT_TRUE(write_file(file, "otpauth://totp/x:root?secret=" + b32 + "&period=60\n"));
  ASSERT_EQ(run_cli({"import", "--user", "root", "--from", "uri", file}), 0) << err();
  auto e = load("root");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(dev0(*e).period, 60);
}

// ---- hostile input -------------------------------------------------------------------------

TEST_F(ImportTest, MalformedUrisAreRefusedAndNothingIsWritten) {
  const std::string b32 =
      totp::base32_encode(totp::testing::bytes_of("12345678901234567890"), false);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty input"},
      {"http://example.com/?secret=" + b32, "not an otpauth:// URI"},
      {"otpauth://hotp/x?secret=" + b32 + "&counter=1", "HOTP"},
      {"otpauth://totp/x", "no secret"},
      {"otpauth://totp/x?secret=!!!", "not valid base32"},
      {"otpauth://totp/x?secret=" + b32 + "&algorithm=MD5", "algorithm must be"},
      {"otpauth://totp/x?secret=" + b32 + "&digits=9", "digits must be"},
      {"otpauth://totp/x?secret=" + b32 + "&period=0", "period must be"},
      {"otpauth://totp/x?secret=" + b32 + "&period=99999999999999", "period must be"},
      {"otpauth://totp/a%2?secret=" + b32, "escape"},
      {"otpauth://totp/a%0Ab?secret=" + b32, "control character"},
      {"otpauth://totp/x?secret=GEZDGNBV", "shorter than 80 bits"},
      {"otpauth://totp/x?secret=" + b32 + "\notpauth://totp/y?secret=" + b32, "more than one"},
      {"otpauth://totp/x?secret=" + b32 + "&x=" + std::string(5000, 'a'), "4 KiB"},
  };
  for (const auto& [uri, message] : cases) {
    SCOPED_TRACE(uri.substr(0, 80));
    in_.clear();
    in_.str(uri + "\n");
    auto before = disk();
    clear();
    EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "uri", "-"}), 2);
    EXPECT_NE(err().find(message), std::string::npos) << err();
    EXPECT_EQ(snapshot_diff(before, disk()), "");
  }
}

TEST_F(ImportTest, OversizeAndBinarySourcesAreRefused) {
  std::string big = tmp_ / "big";
  ASSERT_TRUE(write_file(big, std::string(2 * 1024 * 1024, 'A')));
  std::string medium = tmp_ / "medium";  // under the read cap, over google-authenticator's
  ASSERT_TRUE(write_file(
      medium, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n" + std::string(100 * 1024, '"') + "\n"));
  std::string binary = tmp_ / "binary";
  std::string garbage;
  std::mt19937 rng(42);
  for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>(rng() & 0xFF));
  garbage[10] = '\0';
  ASSERT_TRUE(write_file(binary, garbage));
  std::string nul_in_secret = tmp_ / "nul";
  std::string with_nul = "GEZDGNBVGY3T";
  with_nul.push_back('\0');
  with_nul += "QOJQGEZDGNBVGY3TQOJQ\n";
  ASSERT_TRUE(write_file(nul_in_secret, with_nul));

  struct Case {
    std::string from, file, message;
  };
  const std::vector<Case> cases = {
      {"google-authenticator", big, "larger than 1 MiB"},
      {"oath", big, "larger than 1 MiB"},
      {"uri", big, "larger than 1 MiB"},
      {"google-authenticator", medium, "larger than 64 KiB"},
      {"uri", medium, "longer than 4 KiB"},
      {"google-authenticator", binary, "binary data"},
      {"oath", binary, "binary data"},
      {"uri", binary, "otpauth"},
      {"google-authenticator", nul_in_secret, "binary data"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.from + " " + c.file);
    auto before = disk();
    clear();
    EXPECT_EQ(run_cli({"import", "--user", "root", "--from", c.from, c.file}), 2);
    EXPECT_NE(err().find(c.message), std::string::npos) << err();
    EXPECT_EQ(snapshot_diff(before, disk()), "");
  }

  // The same through standard input.
  auto before = disk();
  clear();
  in_.str(std::string(1024 * 1024 + 1, 'A'));
  EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", "-"}), 2);
  EXPECT_NE(err().find("standard input: more than 1 MiB"), std::string::npos) << err();
  EXPECT_EQ(snapshot_diff(before, disk()), "");
}

TEST_F(ImportTest, GoogleAuthenticatorGarbageLines) {
  const std::string b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "no secret on the first line"},
      {"\n\" TOTP_AUTH\n", "no secret on the first line"},
      {"not base32!\n", "not a base32 secret"},
      {"GEZDGNBV\n", "shorter than 80 bits"},
      {b32 + "\n\" STEP_SIZE 0\n", "STEP_SIZE must be 1 to 60"},
      {b32 + "\n\" STEP_SIZE 61\n", "STEP_SIZE must be 1 to 60"},
      {b32 + "\n\" STEP_SIZE 30x\n", "STEP_SIZE must be 1 to 60"},
      {b32 + "\n\" WINDOW_SIZE 101\n", "WINDOW_SIZE must be 1 to 100"},
      {b32 + "\n12345678\n1234567\n", "line 3: neither an option nor an 8-digit scratch code"},
      {b32 + "\n01234567\n", "neither an option"},
      {b32 + "\nhello\n", "neither an option"},
      {b32 + "\n\" HOTP_COUNTER 1\n", "counter-based"},
  };
  for (const auto& [text, message] : cases) {
    SCOPED_TRACE(text);
    std::string file = tmp_ / "ga-garbage";
    ASSERT_TRUE(write_file(file, text));
    auto before = disk();
    clear();
    EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", file}), 2);
    EXPECT_NE(err().find(message), std::string::npos) << err();
    EXPECT_EQ(err().find(b32), std::string::npos) << "the secret is never echoed";
    EXPECT_EQ(snapshot_diff(before, disk()), "");
  }
  // 21 scratch codes: more than a secret file keeps.
  std::string many = b32 + "\n";
  for (int i = 0; i < 21; ++i) many += std::to_string(10000000 + i) + "\n";
  std::string file = tmp_ / "ga-many";
  ASSERT_TRUE(write_file(file, many));
  clear();
  EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", file}), 2);
  EXPECT_NE(err().find("more than 20 scratch codes"), std::string::npos) << err();
}

TEST_F(ImportTest, ParsersNeverCrashOnRandomInput) {
  std::mt19937 rng(1234);
  const std::vector<std::string> seeds = {
      "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\n\" STEP_SIZE 30\n12345678\n",
      "HOTP/T30/8 root - 3132333435363738393031323334353637383930 0\n",
      "otpauth://totp/a:b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8&period=60"};
  int parsed = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string s = seeds[static_cast<std::size_t>(round) % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < edits && !s.empty(); ++k) {
      std::size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s[at] = static_cast<char>(rng() & 0xFF);
          break;
        case 1:
          s.erase(at, 1 + rng() % 4);
          break;
        default:
          s.insert(at, 1, "\n\" %0:/&=-"[rng() % 9]);
          break;
      }
    }
    for (auto format : {totp::ImportFormat::kGoogleAuthenticator, totp::ImportFormat::kOath,
                        totp::ImportFormat::kUri}) {
      auto r = totp::parse_import(format, s, "root");
      if (r) {
        ++parsed;
        EXPECT_GE(r->params.secret.size(), 10U);
        EXPECT_GE(r->params.digits, 6);
        EXPECT_LE(r->params.digits, 8);
        EXPECT_GE(r->params.period, 1);
        EXPECT_LE(r->params.period, 300);
      } else {
        EXPECT_EQ(r.error().code, totp::Errc::kInvalid);
        EXPECT_FALSE(r.error().message.empty());
      }
    }
  }
  EXPECT_GT(parsed, 0) << "some mutations still parse";
}

TEST_F(ImportTest, SourceThatIsNotARegularFileIsRefused) {
  std::string real = google_authenticator({"-t", "-d", "-u", "-w", "3", "-e", "0"}, "real");
  std::string link = tmp_ / "link";
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  std::string fifo = tmp_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string path, message;
    int exit;
  };
  const std::vector<Case> cases = {
      {link, "is a symbolic link (refused", 4},
      {fifo, "not a regular file", 4},  // and it must not hang waiting for a writer
      {tmp_.path(), "not a regular file", 4},
      {tmp_ / "missing", "cannot open: No such file or directory", 4},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    auto before = disk();
    clear();
    EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "google-authenticator", c.path}),
              c.exit);
    EXPECT_NE(err().find(c.message), std::string::npos) << err();
    EXPECT_EQ(snapshot_diff(before, disk()), "");
  }
}

TEST_F(ImportTest, SecretFileThatIsASymlinkIsNeverWrittenThrough) {
  std::string file = google_authenticator({"-t", "-d", "-u", "-w", "3", "-e", "0"}, "ga");
  std::string target = tmp_ / "elsewhere";
  ASSERT_TRUE(write_file(target, "precious\n"));
  ASSERT_EQ(::symlink(target.c_str(), secret_file("root").c_str()), 0);
  for (bool force : {false, true}) {
    SCOPED_TRACE(force ? "--force" : "no --force");
    auto before = disk();
    clear();
    std::vector<std::string> args = {"import", "--user", "root", "--from", "google-authenticator",
                                     file};
    if (force) args.push_back("--force");
    EXPECT_EQ(run_cli(args), 4);
    EXPECT_NE(err().find("symbolic link"), std::string::npos) << err();
    EXPECT_NE(err().find("nothing written"), std::string::npos) << err();
    EXPECT_EQ(snapshot_diff(before, disk()), "");
    EXPECT_EQ(totp::testing::read_file(target), "precious\n");
  }
}

TEST_F(ImportTest, AnotherUserNeedsRoot) {
  std::string file = tmp_ / "users.oath";
  ASSERT_TRUE(write_file(file, "HOTP/T30 root - " + std::string(kRfcHex) + "\n", 0644));
  become("nobody");
  auto before = disk();
  EXPECT_EQ(run_cli({"import", "--user", "root", "--from", "oath", file}), 4);
  EXPECT_NE(err().find("--user root: acting on another user needs root"), std::string::npos)
      << err();
  EXPECT_EQ(snapshot_diff(before, disk()), "");
}

TEST_F(ImportTest, UsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"import", "--from", "oath", "x"}, "--user is required"},
      {{"import", "--user", "root", "x"}, "--from is required"},
      {{"import", "--user", "root", "--from", "yubikey", "x"}, "--from: yubikey not in"},
      {{"import", "--user", "root", "--from", "oath"}, "SOURCE is required"},
      {{"import", "--user", "no-such-user-pbx", "--from", "oath", "x"}, "no such user"},
  };
  for (const auto& c : cases) {
    clear();
    EXPECT_EQ(run_cli(c.args), 2) << c.args.back();
    EXPECT_NE(err().find(c.message), std::string::npos) << err();
  }
  clear();
  EXPECT_EQ(run_cli({"import", "--help"}), 0);
  EXPECT_NE(out().find("--from"), std::string::npos);
  EXPECT_NE(out().find("symbolic link is refused"), std::string::npos) << out();
}

// Root reads a source inside a user's home with that user's filesystem ids, so a link or a
// hard-to-reach path planted there cannot make root read what the user may not.
TEST_F(ImportTest, SourceInAHomeIsReadAsItsOwner) {
  const totp::User user{"nobody", 65534, 65534, tmp_ / "home"};
  ASSERT_EQ(::mkdir(user.home.c_str(), 0755), 0);
  std::string mine = user.home + "/.google_authenticator";
  std::string roots = user.home + "/planted";
  ASSERT_TRUE(write_file(mine, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n", 0400, 65534, 65534));
  ASSERT_TRUE(write_file(roots, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n", 0600, 0, 0));
  auto ok = totp::read_import_file(mine, user);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  auto denied = totp::read_import_file(roots, user);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code, totp::Errc::kIo);
  EXPECT_NE(denied.error().message.find("Permission denied"), std::string::npos)
      << denied.error().message;
  // Outside the home too: root reads with the user's ids, and a file only root may read must
  // come on standard input.
  std::string outside = tmp_ / "root-only";
  ASSERT_TRUE(write_file(outside, "x\n", 0600, 0, 0));
  auto refused = totp::read_import_file(outside, user);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("pass it on standard input"), std::string::npos)
      << refused.error().message;
  // Root importing for root reads as root.
  const totp::User root{"root", 0, 0, "/root"};
  EXPECT_TRUE(totp::read_import_file(outside, root).ok());
}

// Root's supplementary groups (group root under sudo) stayed in force while reading with the
// user's filesystem ids: a file of group root that the user cannot read was imported, and its
// secret then sat in the user's ~/.pbx-mfa (review-14).
TEST_F(ImportTest, RootsGroupsDoNotReadForTheUser) {
  auto nobody = totp::lookup_user("nobody");
  ASSERT_TRUE(nobody.ok());
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
  const std::string file = tmp_ / "group-root.txt";
  ASSERT_TRUE(write_file(file, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n", 0040, 0, 0));
  int n = ::getgroups(0, nullptr);
  ASSERT_GE(n, 0);
  std::vector<gid_t> saved(static_cast<std::size_t>(n));
  if (n > 0) {
    ASSERT_EQ(::getgroups(n, saved.data()), n);
  }
  const gid_t root_group = 0;
  ASSERT_EQ(::setgroups(1, &root_group), 0);  // as under sudo
  const totp::User user{"nobody", nobody->uid, nobody->gid, nobody->home};
  auto read = totp::read_import_file(file, user);
  int after = ::getgroups(0, nullptr);
  std::vector<gid_t> now(static_cast<std::size_t>(after > 0 ? after : 0));
  if (after > 0) ::getgroups(after, now.data());
  ASSERT_EQ(::setgroups(saved.size(), saved.data()), 0);
  EXPECT_FALSE(read.ok()) << "read with root's groups";
  if (!read.ok()) {
    EXPECT_NE(read.error().message.find("Permission denied"), std::string::npos)
        << read.error().message;
  }
  EXPECT_EQ(now, std::vector<gid_t>{root_group}) << "the caller's groups are put back";
}

// Review L2: the decision used to be a string test on the path as typed, so a relative path
// or "//home/..." through a link the user planted in their home made root read a root-only
// file and enroll its secret for the user (readable by them in ~/.pbx-mfa).
TEST_F(ImportTest, ImportThroughAUsersLinkToARootOnlyDirIsRefusedHoweverSpelled) {
  auto nobody = totp::lookup_user("nobody");
  ASSERT_TRUE(nobody.ok());
  const std::string home = tmp_ / "home";
  ASSERT_EQ(::mkdir(home.c_str(), 0755), 0);
  ASSERT_EQ(::chown(home.c_str(), nobody->uid, nobody->gid), 0);
  const std::string root_dir = tmp_ / "root-only";
  ASSERT_EQ(::mkdir(root_dir.c_str(), 0700), 0);
  ASSERT_TRUE(write_file(root_dir + "/.google_authenticator", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",
                         0600, 0, 0));
  // The user's link: ~/migrate -> the root-only directory.
  ASSERT_EQ(::symlink(root_dir.c_str(), (home + "/migrate").c_str()), 0);
  ASSERT_EQ(::lchown((home + "/migrate").c_str(), nobody->uid, nobody->gid), 0);

  const totp::User user{"nobody", nobody->uid, nobody->gid, home};
  for (const std::string& spelling :
       {home + "/migrate/.google_authenticator", "/" + home + "/migrate/.google_authenticator",
        std::string("migrate/.google_authenticator")}) {
    SCOPED_TRACE(spelling);
    int cwd = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(cwd, 0);
    ASSERT_EQ(::chdir(home.c_str()), 0);
    auto read = totp::read_import_file(spelling, user);
    ASSERT_EQ(::fchdir(cwd), 0);
    ::close(cwd);
    EXPECT_FALSE(read.ok()) << "read as root";
    if (read.ok()) continue;
    EXPECT_EQ(read.error().code, totp::Errc::kIo);
    EXPECT_NE(read.error().message.find("Permission denied"), std::string::npos)
        << read.error().message;
  }

  // And the whole command, from the user's home with a relative path: nothing enrolled.
  int cwd = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(cwd, 0);
  ASSERT_EQ(::chdir(home.c_str()), 0);
  const int rc = run_cli({"import", "--user", "nobody", "--from", "google-authenticator",
                          "migrate/.google_authenticator"});
  ASSERT_EQ(::fchdir(cwd), 0);
  ::close(cwd);
  EXPECT_EQ(rc, kExitStore) << out() << err();
  EXPECT_NE(err().find("Permission denied"), std::string::npos) << err();
  EXPECT_NE(err().find("standard input"), std::string::npos) << err();
  EXPECT_FALSE(load("nobody").ok()) << "the root-only secret was enrolled for the user";

  // Root may still import it, explicitly, on standard input.
  clear();
  in_.str(*totp::testing::read_file(root_dir + "/.google_authenticator"));
  EXPECT_EQ(run_cli({"import", "--user", "nobody", "--from", "google-authenticator", "-"}), 0)
      << err();
}

}  // namespace
}  // namespace pbx::cli::testing

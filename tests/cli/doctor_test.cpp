// pbx-mfa doctor against sshd_config and pam.d fixtures, good and broken.
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "enroll_fixture.hpp"
#include "root.hpp"

namespace pbx::cli::testing {
namespace {

using totp::testing::write_file;

const std::string kFixtures = std::string(PBX_CLI_FIXTURES) + "/doctor";
std::string sshd(const std::string& name) { return kFixtures + "/sshd/" + name + ".conf"; }
std::string pam(const std::string& name) { return kFixtures + "/pam/" + name; }

struct Line {
  std::string status;
  std::string text;  // the whole line
};

class DoctorTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the checked files must be root-owned");
    CliTest::SetUp();
    module_ = tmp_ / "pam_pbx_totp.so";
    ASSERT_TRUE(write_file(module_,
                           "\x7f"
                           "ELF not really\n",
                           0644));
    ASSERT_EQ(::mkdir(state_dir_.c_str(), 0700), 0);
    clock_answer("/usr/bin/timedatectl", 0, "yes\n");
  }

  // What the fake helper-program runner answers for argv[0]; others are "not installed".
  void clock_answer(const std::string& program, int exit_code, const std::string& out) {
    answers_by_program_[program] = ProgramResult{exit_code, out};
    env_.run_program =
        [this](const std::vector<std::string>& argv) -> std::optional<ProgramResult> {
      programs_run_.push_back(argv);
      auto it = answers_by_program_.find(argv.at(0));
      if (it == answers_by_program_.end()) return std::nullopt;
      return it->second;
    };
  }

  // Runs doctor on the fixtures (good ones unless named) and indexes the lines by check name.
  int doctor(const std::string& sshd_case = "good", const std::string& pam_case = "good",
             std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"doctor",      "--sshd-config", sshd(sshd_case), "--pam-dir",
                                     pam(pam_case), "--module",      module_};
    args.insert(args.end(), extra.begin(), extra.end());
    clear();
    lines_.clear();
    int rc = run_cli(args);
    if (std::find(extra.begin(), extra.end(), "--json") != extra.end()) return rc;
    static const std::regex kLine(R"(^(PASS|WARN|FAIL)  ([a-z:-]+[a-z0-9._-]*): (.+)$)");
    for (const auto& l : pbx::test::split_lines(out())) {
      if (l.rfind("doctor: ", 0) == 0) continue;
      std::smatch m;
      if (!std::regex_match(l, m, kLine)) {
        ADD_FAILURE() << "not a check line: " << l;
        continue;
      }
      EXPECT_EQ(lines_.count(m[2]), 0U) << "check reported twice: " << m[2];
      lines_[m[2]] = Line{m[1], l};
    }
    return rc;
  }

  std::string status(const std::string& check) {
    auto it = lines_.find(check);
    return it == lines_.end() ? "(missing)" : it->second.status;
  }
  std::string line(const std::string& check) {
    auto it = lines_.find(check);
    return it == lines_.end() ? "(missing)" : it->second.text;
  }
  ::testing::AssertionResult says(const std::string& check, const std::string& expected_status,
                                  const std::string& fragment) {
    if (status(check) != expected_status) {
      return ::testing::AssertionFailure()
             << check << " is " << status(check) << ", expected " << expected_status << "\n"
             << out();
    }
    if (line(check).find(fragment) == std::string::npos) {
      return ::testing::AssertionFailure()
             << check << " does not say '" << fragment << "': " << line(check);
    }
    return ::testing::AssertionSuccess();
  }

  std::string module_;
  std::map<std::string, ProgramResult> answers_by_program_;
  std::vector<std::vector<std::string>> programs_run_;
  std::map<std::string, Line> lines_;
};

TEST_F(DoctorTest, GoodSetupPassesEverything) {
  EXPECT_EQ(doctor(), 0) << out() << err();
  for (const auto& [name, l] : lines_) EXPECT_EQ(l.status, "PASS") << l.text;
  EXPECT_TRUE(says("config", "PASS", "parses"));
  EXPECT_TRUE(says("state-dir", "PASS", "mode 0700"));
  EXPECT_TRUE(says("module", "PASS", "installed: " + module_));
  EXPECT_TRUE(says("pam-stacks", "PASS", "auth stack of: sshd"));
  EXPECT_TRUE(says("pam:sshd", "PASS", "every path on which pam_unix.so"));
  EXPECT_EQ(lines_.count("pam:sudo"), 0U) << "sudo's stack does not use the module";
  EXPECT_EQ(lines_.count("pam:common-auth"), 0U) << "include files are not services";
  EXPECT_EQ(lines_.count("pam:sudo.dpkg-old"), 0U) << "package manager leftovers are skipped";
  EXPECT_TRUE(says("sshd-config", "PASS", "and 1 included file"));
  EXPECT_TRUE(says("sshd-usepam", "PASS", "UsePAM yes"));
  // The drop-in comes first (Include), and sshd keeps the first value.
  EXPECT_TRUE(says("sshd-kbdinteractive", "PASS", "50-pbx-mfa.conf:1"));
  EXPECT_TRUE(says("sshd-authmethods", "PASS", "every login needs keyboard-interactive"));
  EXPECT_TRUE(says("sshd-password", "PASS", "PasswordAuthentication no"));
  EXPECT_TRUE(says("sshd-match", "PASS", "no Match blocks"));
  EXPECT_TRUE(says("clock", "PASS", "synchronised"));
  EXPECT_TRUE(says("notify-command", "PASS", "no alerts configured"));
  EXPECT_NE(out().find("doctor: 13 checks, 0 failed, 0 warnings\n"), std::string::npos) << out();
}

TEST_F(DoctorTest, JsonHasEveryCheck) {
  ASSERT_EQ(doctor("good", "good", {"--json"}), 0) << err();
  auto j = nlohmann::json::parse(out());
  EXPECT_EQ(j["ok"], true);
  ASSERT_TRUE(j["checks"].is_array());
  EXPECT_EQ(j["checks"].size(), 13U);
  for (const auto& c : j["checks"]) {
    EXPECT_TRUE(c["name"].is_string());
    EXPECT_EQ(c["status"], "PASS");
    EXPECT_TRUE(c["message"].is_string());
    EXPECT_EQ(c["fix"], "");
  }

  clear();
  ASSERT_EQ(run_cli({"doctor", "--json", "--sshd-config", sshd("usepam-no"), "--pam-dir",
                     pam("good"), "--module", module_}),
            1);
  j = nlohmann::json::parse(out());  // exactly one object, even when a check fails
  EXPECT_EQ(j["ok"], false);
  bool found = false;
  for (const auto& c : j["checks"]) {
    if (c["name"] != "sshd-usepam") continue;
    found = true;
    EXPECT_EQ(c["status"], "FAIL");
    EXPECT_NE(c["fix"].get<std::string>().find("UsePAM yes"), std::string::npos);
  }
  EXPECT_TRUE(found);
}

TEST_F(DoctorTest, SshdUsePam) {
  EXPECT_EQ(doctor("usepam-no"), 1);
  EXPECT_TRUE(says("sshd-usepam", "FAIL", "UsePAM no (" + sshd("usepam-no") + ":1)"));
  EXPECT_TRUE(says("sshd-usepam", "FAIL", "Fix: set 'UsePAM yes'"));
  EXPECT_EQ(doctor("usepam-unset"), 1);
  EXPECT_TRUE(says("sshd-usepam", "FAIL", "OpenSSH's default is no"));
}

TEST_F(DoctorTest, SshdKeyboardInteractive) {
  EXPECT_EQ(doctor("debian-default"), 1);
  EXPECT_TRUE(says("sshd-kbdinteractive", "FAIL", "KbdInteractiveAuthentication no"));
  EXPECT_TRUE(says("sshd-kbdinteractive", "FAIL", "Fix: set 'KbdInteractiveAuthentication yes'"));
  EXPECT_TRUE(says("sshd-usepam", "PASS", "UsePAM yes"));
  // Debian's file sets no AuthenticationMethods and leaves passwords on.
  EXPECT_TRUE(says("sshd-authmethods", "WARN", "a public-key login skips the second factor"));
  EXPECT_TRUE(says("sshd-authmethods", "WARN", "publickey,keyboard-interactive"));
  EXPECT_TRUE(says("sshd-password", "WARN", "default yes"));
  // An Include whose glob matches nothing is not an error (sshd ignores it too).
  EXPECT_TRUE(says("sshd-config", "PASS", "read "));

  // The pre-8.7 name, in Keyword=value form.
  EXPECT_EQ(doctor("challenge-no"), 1);
  EXPECT_TRUE(says("sshd-kbdinteractive", "FAIL", "KbdInteractiveAuthentication no ("));
  EXPECT_TRUE(says("sshd-kbdinteractive", "FAIL", "challenge-no.conf:2"));
  EXPECT_TRUE(says("sshd-usepam", "PASS", "UsePAM yes"));
}

TEST_F(DoctorTest, SshdPublicKeyOnlyMethodSkipsTheCode) {
  EXPECT_EQ(doctor("publickey-only"), 0) << "a warning is not a failure";
  EXPECT_TRUE(says("sshd-authmethods", "WARN", "'publickey' lets a login in without"));
  EXPECT_TRUE(says("sshd-authmethods", "WARN", "Fix: add keyboard-interactive to every list"));
  EXPECT_TRUE(says("sshd-password", "PASS", "PasswordAuthentication no"));
}

TEST_F(DoctorTest, SshdPasswordAuthentication) {
  EXPECT_EQ(doctor("password-yes"), 0);
  EXPECT_TRUE(says("sshd-password", "WARN", "PasswordAuthentication yes ("));
  EXPECT_TRUE(says("sshd-password", "WARN", "bypasses keyboard-interactive"));
  EXPECT_TRUE(says("sshd-authmethods", "PASS", "public-key logins are off"));
}

TEST_F(DoctorTest, SshdMatchBlocksAreNoted) {
  EXPECT_EQ(doctor("match"), 0);
  EXPECT_TRUE(says("sshd-match", "WARN", "match.conf:7: AuthenticationMethods publickey"));
  EXPECT_EQ(line("sshd-match").find("X11Forwarding"), std::string::npos) << line("sshd-match");
  // The global value is the one before the Match block.
  EXPECT_TRUE(says("sshd-authmethods", "PASS", "match.conf:3"));
}

TEST_F(DoctorTest, SshdIncludeLoopEndsWithAWarning) {
  EXPECT_EQ(doctor("include-loop"), 0);
  EXPECT_TRUE(says("sshd-config", "WARN", "nested too deep"));
  EXPECT_TRUE(says("sshd-usepam", "PASS", "UsePAM yes"));
}

TEST_F(DoctorTest, SshdConfigMissing) {
  EXPECT_EQ(doctor("no-such-file"), 1) << "an sshd config named on the command line must exist";
  EXPECT_TRUE(says("sshd-config", "FAIL", "No such file or directory"));
  EXPECT_EQ(lines_.count("sshd-usepam"), 0U) << "nothing to check without the file";
}

TEST_F(DoctorTest, PamModuleMissingFromStacks) {
  EXPECT_EQ(doctor("good", "missing"), 1);
  EXPECT_TRUE(says("pam-stacks", "FAIL", "no PAM service in " + pam("missing")));
  EXPECT_TRUE(says("pam-stacks", "FAIL", "Fix: add 'auth required pam_pbx_totp.so'"));
  EXPECT_TRUE(says("pam:sshd", "WARN", "ssh logins are not asked for a code"));
}

// Issue 14 (M1): the module before the password lets anyone who knows a user name run up the
// failures that lock the user out. forward_pass does the same (the code is checked before the
// password), so it is a WARN too, no longer a PASS, and never the recommended fix.
TEST_F(DoctorTest, PamModuleBeforeThePasswordModule) {
  EXPECT_EQ(doctor("good", "before"), 0);
  EXPECT_TRUE(says("pam:sshd", "WARN", "runs before any password module has succeeded"));
  EXPECT_TRUE(says("pam:sshd", "WARN", "Fix: check the password first"));
  EXPECT_FALSE(says("pam:sshd", "WARN", "add forward_pass"));
  EXPECT_EQ(doctor("good", "forward-pass"), 0);
  EXPECT_TRUE(says("pam:sshd", "WARN", "with forward_pass: the code is checked before"));
  EXPECT_TRUE(says("pam:sshd", "WARN", "Fix: drop forward_pass"));
}

// enroll_at_login binds a phone to the account inside the login: a wrong password must end the
// stack first, or anyone who knows a user name could enroll for a user not enrolled yet.
TEST_F(DoctorTest, EnrollAtLoginNeedsAStackThatStopsOnAWrongPassword) {
  EXPECT_EQ(doctor("good", "enroll-unsafe"), 1);
  EXPECT_TRUE(says("pam:sshd", "FAIL", "does not end the stack before it"));
  EXPECT_TRUE(says("pam:sshd", "FAIL", "Fix: check the password first"));
  EXPECT_EQ(doctor("good", "enroll-safe"), 0) << out();
  EXPECT_TRUE(says("pam:sshd", "PASS", "every path on which pam_unix.so"));
  EXPECT_TRUE(says("pam:login", "PASS", "every path on which pam_unix.so"));
  // From the config file too; the module line before the password is refused as well.
  write_config("enroll_at_login = yes\n");
  EXPECT_EQ(doctor("good", "before"), 1);
  EXPECT_TRUE(says("pam:sshd", "FAIL", "with enroll_at_login"));
  EXPECT_EQ(doctor("good", "good"), 0) << out();  // Debian's common-auth, then the module
  // yes over ssh: a leaked password binds a stranger's phone; with-code is recommended.
  EXPECT_TRUE(says("pam:sshd", "WARN", "enroll_at_login = yes: over ssh"));
  EXPECT_TRUE(says("pam:sshd", "WARN", "Fix: enroll_at_login = with-code"));
  write_config("enroll_at_login = with-code\n");
  EXPECT_EQ(doctor("good", "good"), 0) << out();
  EXPECT_TRUE(says("pam:sshd", "PASS", "every path on which pam_unix.so"));
}

// Every file of the directory is judged as a service, also one that others include (issue 14:
// Debian's su is included by su-l and was not checked at all): common-auth is listed and judged.
TEST_F(DoctorTest, PamModuleInCommonAuthCoversEveryService) {
  EXPECT_EQ(doctor("good", "common"), 0);
  EXPECT_TRUE(says("pam-stacks", "PASS", "auth stack of: common-auth, login, sshd"));
  EXPECT_TRUE(says("pam:sshd", "PASS", "common-auth:5): every path on which pam_unix.so"));
  EXPECT_TRUE(says("pam:login", "PASS", "every path on which pam_unix.so"));
  EXPECT_TRUE(says("pam:common-auth", "PASS", "every path on which pam_unix.so"));
  EXPECT_EQ(lines_.count("pam:cron"), 0U);
}

// Issue 14 (M2): a module whose failure does not fail the stack is a FAIL (was a WARN): the walk
// finds the path on which a wrong code still logs in.
TEST_F(DoctorTest, PamOptionalDoesNotEnforce) {
  EXPECT_EQ(doctor("good", "optional"), 1);
  EXPECT_TRUE(says("pam:sshd", "FAIL", "a wrong or missing code does not fail the stack"));
  EXPECT_TRUE(says("pam:sshd", "FAIL", "Fix: use 'auth required pam_pbx_totp.so'"));
}

TEST_F(DoctorTest, PamSubstackBracketsAndContinuation) {
  EXPECT_EQ(doctor("good", "substack"), 0);
  EXPECT_TRUE(says("pam-stacks", "PASS", "auth stack of: sshd"));
  // libpam runs the parent stack on after the substack's pam_deny.so: a wrong password to
  // pam_sss.so does not stop the module, so strangers can lock users out (issue 14, M1).
  EXPECT_TRUE(says("pam:sshd", "WARN", "auth [success=ok default=die] pam_pbx_totp.so"));
  EXPECT_TRUE(says("pam:sshd", "WARN", "runs after a wrong password to pam_sss.so"));
}

TEST_F(DoctorTest, PamIncludeLoopEndsWithAWarning) {
  EXPECT_EQ(doctor("good", "loop"), 0);
  EXPECT_TRUE(says("pam-stacks", "WARN", "nested too deep"));
  // "auth required pam_unix.so" (in loop-b) does not end the stack on a wrong password: the
  // walk warns about the lockout (issue 14, M1) where the order check said PASS.
  EXPECT_TRUE(says("pam:sshd", "WARN", "runs after a wrong password to pam_unix.so"));
}

// Issue 14 (M2): stacks in which a correct password skips the module. The order check of main
// said PASS for all three ("comes after pam_unix.so"); the walk follows libpam and FAILs,
// naming the line that opens the path.
TEST_F(DoctorTest, PamWalkSufficientPasswordSkipsTheModule) {
  EXPECT_EQ(doctor("good", "m2-sufficient"), 1) << out();
  EXPECT_TRUE(says("pam:sshd", "FAIL", "logs in without a code: 'auth sufficient pam_unix.so' ("));
  EXPECT_TRUE(says("pam:sshd", "FAIL", "m2-sufficient/sshd:3)"));
}

TEST_F(DoctorTest, PamWalkSuccessDoneSkipsTheModule) {
  EXPECT_EQ(doctor("good", "m2-done"), 1) << out();
  EXPECT_TRUE(says("pam:sshd", "FAIL", "'auth [success=done default=ignore] pam_unix.so' ("));
  EXPECT_TRUE(says("pam:sshd", "FAIL", "m2-done/sshd:2) opens a path"));
}

TEST_F(DoctorTest, PamWalkJumpOverTheModule) {
  EXPECT_EQ(doctor("good", "m2-jump"), 1) << out();
  EXPECT_TRUE(says("pam:sshd", "FAIL", "'auth [success=2 default=ignore] pam_unix.so' ("));
  EXPECT_TRUE(says("pam:sshd", "FAIL", "m2-jump/sshd:2) opens a path"));
}

// Issue 14 (M1): "auth required pam_unix.so" does not end the stack on a wrong password, so the
// module runs for anyone and its failure counter locks the user out. main said PASS.
TEST_F(DoctorTest, PamWalkRequiredPasswordWarnsOfLockout) {
  EXPECT_EQ(doctor("good", "m1-required"), 0) << out();
  EXPECT_TRUE(says("pam:sshd", "WARN", "runs after a wrong password to pam_unix.so"));
  EXPECT_TRUE(says("pam:sshd", "WARN", "lock the user out"));
  EXPECT_FALSE(says("pam:sshd", "WARN", "forward_pass"));
}

// Issue 14: every file is judged as a service, also one another service includes (Debian's su,
// included by su-l, was not checked at all by main).
TEST_F(DoctorTest, PamWalkJudgesAnIncludedServiceToo) {
  EXPECT_EQ(doctor("good", "su-l"), 1) << out();
  EXPECT_TRUE(says("pam:su", "FAIL", "'auth sufficient pam_unix.so' ("));
  EXPECT_TRUE(says("pam:su-l", "FAIL", "'auth sufficient pam_unix.so' ("));
  EXPECT_TRUE(says("pam:sshd", "PASS", "every path on which pam_unix.so"));
}

TEST_F(DoctorTest, PamDirMissing) {
  EXPECT_EQ(doctor("good", "no-such-dir"), 1);
  EXPECT_TRUE(says("pam-stacks", "FAIL", "cannot read " + pam("no-such-dir")));
}

TEST_F(DoctorTest, Module) {
  std::string installed = module_;
  module_ = tmp_ / "nowhere/pam_pbx_totp.so";
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("module", "FAIL", module_ + " not found"));
  module_ = installed;

  ASSERT_EQ(::chmod(module_.c_str(), 0666), 0);
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("module", "FAIL", "mode 0666"));
  EXPECT_TRUE(says("module", "FAIL", "Fix: chown root:root"));
}

// Issue 14: a stack naming the module by absolute path references it, and without --module
// the module check accepts that file when it exists.
TEST_F(DoctorTest, ModuleNamedByAbsolutePathInAStack) {
  std::string dir = tmp_ / "pam.d";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/sshd");
    f << "auth requisite pam_unix.so\nauth required " << module_ << "\n";
  }
  clear();
  int rc =
      run_cli(std::vector<std::string>{"doctor", "--sshd-config", sshd("good"), "--pam-dir", dir});
  EXPECT_NE(out().find("PASS  module: installed: " + module_), std::string::npos) << out();
  EXPECT_NE(out().find("PASS  pam-stacks: pam_pbx_totp.so is in the auth stack of: sshd"),
            std::string::npos)
      << out();
  EXPECT_NE(out().find("PASS  pam:sshd: 'auth required " + module_), std::string::npos) << out();
  (void)rc;  // the clock and config checks depend on this machine
}

TEST_F(DoctorTest, ConfigProblemsAreAFailedCheckNotAUsageError) {
  write_config("windoww = 3\n");
  EXPECT_EQ(doctor(), 1) << err();
  EXPECT_TRUE(says("config", "FAIL", "windoww"));
  EXPECT_TRUE(says("sshd-usepam", "PASS", "UsePAM yes")) << "the other checks still run";

  write_config("");
  ASSERT_EQ(::chmod(config_path_.c_str(), 0664), 0);
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("config", "FAIL", "config file"));

  // Other subcommands still refuse a bad config with exit 2.
  clear();
  EXPECT_EQ(run_cli({"status"}), 2);
}

TEST_F(DoctorTest, DefaultConfigMissingMeansDefaults) {
  struct stat st {};
  if (::lstat(totp::kDefaultConfigPath, &st) == 0) {
    GTEST_SKIP() << totp::kDefaultConfigPath << " exists on this machine";
  }
  clear();
  EXPECT_EQ(
      run({"doctor", "--sshd-config", sshd("good"), "--pam-dir", pam("good"), "--module", module_},
          env_),
      0)
      << out();
  EXPECT_NE(out().find("PASS  config: /etc/security/pbx-mfa.conf not present: all defaults"),
            std::string::npos)
      << out();
}

TEST_F(DoctorTest, StateDir) {
  ASSERT_EQ(::rmdir(state_dir_.c_str()), 0);
  EXPECT_EQ(doctor(), 0);
  EXPECT_TRUE(says("state-dir", "WARN", "created on first use"));

  ASSERT_EQ(::mkdir(state_dir_.c_str(), 0755), 0);
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("state-dir", "FAIL", "mode 0755"));
  EXPECT_TRUE(says("state-dir", "FAIL", "chmod 0700"));

  ASSERT_EQ(::rmdir(state_dir_.c_str()), 0);
  ASSERT_EQ(::symlink(tmp_.path().c_str(), state_dir_.c_str()), 0);
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("state-dir", "FAIL", "symbolic link"));
}

TEST_F(DoctorTest, Clock) {
  clock_answer("/usr/bin/timedatectl", 0, "no\n");
  EXPECT_EQ(doctor(), 0);
  EXPECT_TRUE(says("clock", "WARN", "not synchronised"));
  EXPECT_TRUE(says("clock", "WARN", "timedatectl set-ntp true"));

  answers_by_program_.clear();
  clock_answer("/usr/bin/chronyc", 0,
               "Reference ID    : C0A80001 (192.168.0.1)\nLeap status     : Normal\n");
  EXPECT_EQ(doctor(), 0);
  EXPECT_TRUE(says("clock", "PASS", "chronyc"));

  answers_by_program_["/usr/bin/chronyc"] = {0, "Leap status     : Not synchronised\n"};
  EXPECT_EQ(doctor(), 0);
  EXPECT_TRUE(says("clock", "WARN", "Not synchronised"));

  answers_by_program_.clear();
  programs_run_.clear();
  EXPECT_EQ(doctor(), 0);
  EXPECT_TRUE(says("clock", "WARN", "unknown"));
  ASSERT_EQ(programs_run_.size(), 2U);
  EXPECT_EQ(programs_run_[0], (std::vector<std::string>{"/usr/bin/timedatectl", "show", "-p",
                                                        "NTPSynchronized", "--value"}));
  EXPECT_EQ(programs_run_[1].at(0), "/usr/bin/chronyc");

  env_.run_program = nullptr;
  EXPECT_EQ(doctor(), 0);
  EXPECT_TRUE(says("clock", "WARN", "unknown"));
}

// L6 (security review 2026-12): limits that make guessing codes easier, and an exemption of
// every address, are warnings with the reason and the fix (doctor said nothing).
TEST_F(DoctorTest, PermissiveLimitsAndAnExemptionOfEveryAddressWarn) {
  write_config("window = 5\nmax_failures = 100\nexempt_networks = 10.0.0.0/8, 0.0.0.0/0\n");
  EXPECT_EQ(doctor(), 0) << "warnings only";
  EXPECT_TRUE(says("window", "WARN", "window = 5 accepts 11 codes at a time"));
  EXPECT_TRUE(says("window", "WARN", "Fix: window = 1"));
  EXPECT_TRUE(says("max-failures", "WARN", "max_failures = 100 lets someone who has the password"));
  EXPECT_TRUE(says("max-failures", "WARN", "Fix: max_failures = 5"));
  EXPECT_TRUE(says("exempt-networks", "WARN", "0.0.0.0/0, which matches every address"));
  EXPECT_TRUE(says("exempt-networks", "WARN", "Fix: name only the networks you trust"));

  write_config("exempt_networks = ::/0\n");
  EXPECT_EQ(doctor(), 0);
  EXPECT_TRUE(says("exempt-networks", "WARN", "::/0"));
  EXPECT_EQ(lines_.count("window"), 0U) << "the default window says nothing";
  EXPECT_EQ(lines_.count("max-failures"), 0U);
}

// L1: group names in require and exempt_groups that do not resolve fail, naming the group.
TEST_F(DoctorTest, GroupNamesThatDoNotResolveFail) {
  const std::string missing = "pbxtest-nosuch-" + std::to_string(::getpid());
  ASSERT_EQ(::getgrnam(missing.c_str()), nullptr);
  write_config("require = group:root, group:" + missing + "\nexempt_groups = " + missing + "x\n");
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("require-groups", "FAIL",
                   "require names group " + missing + " (the config), which does not exist"));
  EXPECT_TRUE(
      says("exempt-groups", "FAIL",
           "exempt_groups names group " + missing + "x (the config), which does not exist"));
  EXPECT_EQ(line("require-groups").find("root"), std::string::npos) << line("require-groups");

  write_config("require = group:root\nexempt_groups = root\n");
  EXPECT_EQ(doctor(), 0) << out();
  EXPECT_TRUE(says("require-groups", "PASS", "require names group root: it resolves"));
  EXPECT_TRUE(says("exempt-groups", "PASS", "exempt_groups names group root"));
}

// M3: the module guarding sudo and su with the secret in the home is a warning.
TEST_F(DoctorTest, InHomeSecretGuardingSudoAndSuWarns) {
  write_config("secret_path = %h/.pbx-mfa\n");
  doctor("good", "sudo-su");  // only secret-path matters here, not how the stacks run
  EXPECT_TRUE(says("secret-path", "WARN", "guards su (" + pam("sudo-su") + "/su:4"));
  EXPECT_TRUE(says("secret-path", "WARN", "su-l (" + pam("sudo-su") + "/su:4"));
  EXPECT_TRUE(says("secret-path", "WARN", "sudo (" + pam("sudo-su") + "/sudo:4"));
  EXPECT_TRUE(says("secret-path", "WARN", "secret_path = %h/.pbx-mfa"));
  EXPECT_TRUE(says("secret-path", "WARN", "a compromised session"));
  EXPECT_TRUE(says("secret-path", "WARN", "Fix: use a root-owned secret_path"));

  write_config("");  // the fixture's secrets are outside the home
  doctor("good", "sudo-su");
  EXPECT_TRUE(says("secret-path", "PASS", "with the secret outside the home"));

  write_config("secret_path = %h/.pbx-mfa\n");
  EXPECT_EQ(doctor(), 0) << out();
  EXPECT_EQ(lines_.count("secret-path"), 0U) << "sudo's stack does not use the module";
}

// H1: a TCP pg_conninfo that would negotiate GSSAPI encryption fails, before connecting.
TEST_F(DoctorTest, GssapiEncryptionOverTcpFails) {
  const std::string rest = "\npg_timeout_ms = 100\npg_plugin = " + (tmp_ / "no-plugin.so") +
                           "\nfleet_key = " + (tmp_ / "fleet.key") + "\n";
  write_config(
      "store = postgresql\npg_conninfo = host=192.0.2.1 sslmode=verify-full "
      "gssencmode=prefer" +
      rest);
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("db-gssenc", "FAIL", "gssencmode=prefer over TCP (192.0.2.1)"));
  EXPECT_TRUE(says("db-gssenc", "FAIL", "whatever sslmode=verify-full says"));
  EXPECT_TRUE(says("db-gssenc", "FAIL", "Fix: write gssencmode=disable"));

  write_config("store = postgresql\npg_conninfo = host=192.0.2.1 sslmode=verify-full" + rest);
  doctor();
  EXPECT_TRUE(says("db-gssenc", "PASS", "the plugin passes gssencmode=disable"));
}

// Issue 18: the plugin ships in its own package. Without it, doctor's db-connect check and every
// command that opens the store name the package; a file that is there but no plugin keeps its
// own message and the generic fix.
TEST_F(DoctorTest, AMissingPluginNamesItsPackage) {
  const std::string missing = tmp_ / "no-such-dir/pbx_store_postgresql.so";
  const std::string rest =
      "store = postgresql\npg_conninfo = host=127.0.0.1 port=1\n"
      "pg_timeout_ms = 100\nfleet_key = " +
      (tmp_ / "fleet.key") + "\npg_plugin = ";
  const std::string message = "database plugin " + missing +
                              " is not installed: install the package libpam-pbx-totp-postgresql "
                              "(store = postgresql needs it)";
  write_config(rest + missing + "\n");
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("db-connect", "FAIL", message));
  EXPECT_TRUE(says("db-connect", "FAIL", "Fix: apt-get install libpam-pbx-totp-postgresql"));
  EXPECT_TRUE(says("db-connect", "FAIL", "or correct pg_plugin in " + config_path_));
  EXPECT_TRUE(says("db-connect", "FAIL", "the default of pg_plugin"));  // where it would be

  clear();
  EXPECT_EQ(run_cli({"status", "--user", "daemon"}), 2) << out() << err();
  EXPECT_NE(err().find(message), std::string::npos) << err();

  const std::string junk = tmp_ / "junk.so";
  ASSERT_TRUE(write_file(junk, "not an ELF file\n", 0644));
  write_config(rest + junk + "\n");
  EXPECT_EQ(doctor(), 1);
  EXPECT_TRUE(says("db-connect", "FAIL", "database plugin " + junk + " cannot be loaded"));
  EXPECT_TRUE(says("db-connect", "FAIL", "Fix: check pg_plugin and pg_conninfo"));
  EXPECT_EQ(line("db-connect").find("libpam-pbx-totp-postgresql"), std::string::npos)
      << line("db-connect");
}

TEST_F(DoctorTest, HelpAndUsage) {
  clear();
  EXPECT_EQ(run_cli({"doctor", "--help"}), 0);
  EXPECT_NE(out().find("--pam-dir"), std::string::npos);
  EXPECT_NE(out().find("--sshd-config"), std::string::npos);
  clear();
  EXPECT_EQ(run_cli({"doctor", "--bogus"}), 2);
  EXPECT_NE(err().find("--bogus"), std::string::npos) << err();
  clear();
  EXPECT_EQ(run_cli({"doctor", "--pam-dir"}), 2);
}

}  // namespace
}  // namespace pbx::cli::testing

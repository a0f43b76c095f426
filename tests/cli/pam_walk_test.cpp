// doctor's walk of PAM auth stacks as libpam dispatches them (issue 14, M2 and M1): stacks in
// memory, their verdicts, and libpam's control parsing.
#include "doctor/pam_walk.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "doctor/checks.hpp"

namespace pbx::cli::doctor {
namespace {

const std::string kDir = "/etc/pam.d";

// Debian's common-auth as pam-auth-update writes it.
const std::string kCommonAuth =
    "auth [success=1 default=ignore] pam_unix.so nullok\n"
    "auth requisite pam_deny.so\n"
    "auth required pam_permit.so\n"
    "auth optional pam_cap.so\n";

struct Judged {
  std::vector<PamEntry> flow;
  PamWalk walk;
  Check check;
  bool says(const std::string& text) const {
    return (check.message + " Fix: " + check.fix).find(text) != std::string::npos;
  }
};

Judged judge(const std::map<std::string, std::string>& files, const std::string& service = "sshd",
             EnrollMode enroll = EnrollMode::kNo) {
  MemoryFiles mf;
  for (const auto& [name, text] : files) mf.add(kDir + "/" + name, text);
  PamStackReader reader(kDir, mf);
  Judged j;
  j.flow = reader.auth_flow(service);
  j.walk = walk_auth_flow(j.flow);
  j.check = judge_pam_service(service, j.flow, enroll);
  return j;
}

std::string where(const std::string& file, int line) {
  return "(" + kDir + "/" + file + ":" + std::to_string(line) + ")";
}

// ---- stacks that must pass

TEST(PamWalk, DebianCommonAuthThenTheModulePasses) {
  auto j = judge({{"common-auth", kCommonAuth},
                  {"sshd", "@include common-auth\nauth required pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kPass) << j.check.message;
  EXPECT_TRUE(j.says("every path on which pam_unix.so")) << j.check.message;
  EXPECT_TRUE(j.walk.module_runs);
  EXPECT_FALSE(j.walk.bypass || j.walk.ignored_failure || j.walk.unguarded);
}

// The pam-auth-update profile (config/pam-configs/pbx-totp, Auth-Type: Additional) puts the
// module into common-auth after pam_permit.so; with SSSD the primary block has two jumps.
TEST(PamWalk, PamAuthUpdateProfileWithSssPasses) {
  auto j = judge({{"common-auth",
                   "auth [success=2 default=ignore] pam_unix.so nullok\n"
                   "auth [success=1 default=ignore] pam_sss.so use_first_pass\n"
                   "auth requisite pam_deny.so\n"
                   "auth required pam_permit.so\n"
                   "auth required pam_pbx_totp.so\n"
                   "auth optional pam_cap.so\n"},
                  {"sshd", "@include common-auth\n"}});
  EXPECT_EQ(j.check.status, Status::kPass) << j.check.message;
  auto c = judge({{"common-auth",
                   "auth [success=2 default=ignore] pam_unix.so nullok\n"
                   "auth [success=1 default=ignore] pam_sss.so use_first_pass\n"
                   "auth requisite pam_deny.so\n"
                   "auth required pam_permit.so\n"
                   "auth required pam_pbx_totp.so\n"}},
                 "common-auth");
  EXPECT_EQ(c.check.status, Status::kPass) << c.check.message;
}

TEST(PamWalk, RequisitePasswordThenTheModulePasses) {
  auto j = judge({{"sshd", "auth requisite pam_unix.so\nauth required pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kPass) << j.check.message;
}

// Debian's su: root passes without a password (pam_rootok.so), which is no password bypass.
TEST(PamWalk, RootokSufficientBeforeCommonAuthPasses) {
  auto j = judge({{"common-auth", kCommonAuth + "auth required pam_pbx_totp.so\n"},
                  {"su", "auth sufficient pam_rootok.so\n@include common-auth\n"}},
                 "su");
  EXPECT_EQ(j.check.status, Status::kPass) << j.check.message;
}

TEST(PamWalk, NoPasswordModuleIsTheOnlyFactor) {
  auto j = judge({{"sshd", "auth required pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kPass);
  EXPECT_TRUE(j.says("the code is the only PAM factor"));
}

// ---- M2: a correct password logs in without the module

TEST(PamWalk, RhelSufficientPasswordFails) {
  auto j = judge({{"sshd",
                   "auth required pam_env.so\n"
                   "auth sufficient pam_unix.so try_first_pass\n"
                   "auth required pam_pbx_totp.so\n"
                   "auth required pam_deny.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("'auth sufficient pam_unix.so' " + where("sshd", 2))) << j.check.message;
  EXPECT_TRUE(j.says("a correct password to pam_unix.so " + where("sshd", 2)));
  EXPECT_FALSE(j.says("forward_pass"));
}

TEST(PamWalk, SufficientPasswordInAnIncludedFileFails) {
  auto j = judge({{"password-auth",
                   "auth required pam_env.so\n"
                   "auth sufficient pam_sss.so forward_pass\n"
                   "auth required pam_pbx_totp.so\n"
                   "auth required pam_deny.so\n"},
                  {"sshd", "auth include password-auth\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("'auth sufficient pam_sss.so' " + where("password-auth", 2)));
}

TEST(PamWalk, SuccessDoneFails) {
  auto j = judge({{"sshd",
                   "auth [success=done default=ignore] pam_unix.so\n"
                   "auth requisite pam_deny.so\n"
                   "auth required pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("'auth [success=done default=ignore] pam_unix.so' " + where("sshd", 1)));
}

TEST(PamWalk, JumpOverTheModuleFails) {
  auto j = judge({{"sshd",
                   "auth [success=2 default=ignore] pam_unix.so\n"
                   "auth requisite pam_deny.so\n"
                   "auth required pam_pbx_totp.so\n"
                   "auth required pam_permit.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("'auth [success=2 default=ignore] pam_unix.so' " + where("sshd", 1)));
}

// A jump before the password can skip the module too: the jump is the line named.
TEST(PamWalk, UnknownModuleJumpingOverTheModuleFails) {
  auto j = judge({{"sshd",
                   "auth [success=1 default=ignore] pam_succeed_if.so user ingroup nomfa\n"
                   "auth required pam_pbx_totp.so\n"
                   "auth requisite pam_unix.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("pam_succeed_if.so' " + where("sshd", 1))) << j.check.message;
}

// A jump of 1 over a substack skips the whole substack.
TEST(PamWalk, AJumpSkipsAWholeSubstack) {
  auto j = judge({{"mfa", "auth required pam_pbx_totp.so\nauth required pam_permit.so\n"},
                  {"sshd",
                   "auth [success=1 default=die] pam_unix.so\n"
                   "auth substack mfa\n"
                   "auth required pam_permit.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("'auth [success=1 default=die] pam_unix.so' " + where("sshd", 1)));
}

// In a substack, done ends only the substack: the module after it in the parent still runs...
TEST(PamWalk, DoneInASubstackEndsOnlyTheSubstack) {
  auto j = judge({{"password-auth", "auth [success=done default=die] pam_unix.so\n"},
                  {"sshd", "auth substack password-auth\nauth required pam_pbx_totp.so\n"}});
  EXPECT_FALSE(j.walk.bypass);
  // ...and so does die: a wrong password does not stop the module (lockout, M1).
  EXPECT_EQ(j.check.status, Status::kWarn);
  EXPECT_TRUE(j.says("runs after a wrong password to pam_unix.so")) << j.check.message;
}

// ...but a substack that ends early with done skips the module inside it.
TEST(PamWalk, SubstackEndingEarlyWithDoneFails) {
  auto j = judge({{"password-auth",
                   "auth [success=done default=die] pam_unix.so\n"
                   "auth required pam_pbx_totp.so\n"},
                  {"sshd", "auth substack password-auth\nauth required pam_permit.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("'auth [success=done default=die] pam_unix.so' " + where("password-auth", 1)));
}

// A jump cannot leave its substack: past its end it is libpam's "bad jump", a failure.
TEST(PamWalk, AJumpPastTheEndOfASubstackFails) {
  auto j = judge({{"inner", "auth [success=5 default=die] pam_unix.so\n"},
                  {"sshd",
                   "auth substack inner\n"
                   "auth required pam_pbx_totp.so\n"}});
  EXPECT_FALSE(j.walk.bypass);
  EXPECT_FALSE(j.walk.ignored_failure);
  // The bad jump makes the stack fail, the module runs anyway: only a password holder reaches
  // it with success, but a wrong password does not stop it either.
  EXPECT_TRUE(j.walk.unguarded);
}

// ---- M2: the module runs but its failure does not fail the stack

TEST(PamWalk, OptionalModuleFails) {
  auto j = judge({{"common-auth", kCommonAuth},
                  {"sshd", "@include common-auth\nauth optional pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("'auth optional pam_pbx_totp.so' " + where("sshd", 2)));
  EXPECT_TRUE(j.says("a wrong or missing code does not fail the stack"));
}

TEST(PamWalk, DefaultIgnoreModuleFails) {
  auto j =
      judge({{"common-auth", kCommonAuth},
             {"sshd", "@include common-auth\nauth [success=ok default=ignore] pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("a wrong or missing code does not fail the stack"));
}

// The module fails with more than PAM_AUTH_ERR: a client that breaks off the conversation gets
// PAM_CONV_ERR, a state row the module refuses PAM_AUTHINFO_UNAVAIL. A control that fails only
// on auth_err lets those log in with the password alone (review-14).
TEST(PamWalk, ModuleFailureOtherThanAuthErrIgnoredFails) {
  for (const char* control : {"[success=ok auth_err=bad default=ignore]",
                              "[success=ok auth_err=die maxtries=die default=ignore]",
                              "[success=ok auth_err=bad conv_err=bad default=1]"}) {
    auto j = judge({{"common-auth", kCommonAuth},
                    {"sshd", "@include common-auth\nauth " + std::string(control) +
                                 " pam_pbx_totp.so\nauth required pam_permit.so\n"}});
    EXPECT_EQ(j.check.status, Status::kFail) << control << ": " << j.check.message;
    EXPECT_TRUE(j.walk.ignored_failure) << control;
  }
  // Every failure counted: passes.
  auto ok = judge({{"common-auth", kCommonAuth},
                   {"sshd",
                    "@include common-auth\nauth [success=ok ignore=ignore default=die] "
                    "pam_pbx_totp.so\n"}});
  EXPECT_EQ(ok.check.status, Status::kPass) << ok.check.message;
}

// libpam takes "include" and "substack" in any case: a password-only file pulled in with
// "Include" is still a bypass (review-14).
TEST(PamWalk, IncludeInAnyCaseIsFollowed) {
  for (const char* kw : {"Include", "INCLUDE"}) {
    auto j = judge({{"evil", "auth sufficient pam_unix.so\n"},
                    {"sshd", "auth " + std::string(kw) +
                                 " evil\nauth required pam_unix.so\n"
                                 "auth required pam_pbx_totp.so\n"}});
    EXPECT_EQ(j.check.status, Status::kFail) << kw << ": " << j.check.message;
    EXPECT_TRUE(j.walk.bypass) << kw;
  }
  auto sub = judge({{"inner", "auth required pam_unix.so\n"},
                    {"sshd", "auth SubStack inner\nauth required pam_pbx_totp.so\n"}});
  ASSERT_FALSE(sub.flow.empty());
  EXPECT_EQ(sub.flow.front().kind, PamEntry::Kind::kSubstack);
}

// libpam ends a line that has a '#' whatever comes before it: "\\ # note" does not continue
// the line, so the next one is a line of its own that libpam runs (review-14).
TEST(PamWalk, BackslashBeforeACommentDoesNotContinueTheLine) {
  auto j = judge({{"sshd",
                   "auth requisite pam_unix.so\n"
                   "auth required pam_permit.so \\ # the next line is not an argument\n"
                   "auth sufficient pam_permit.so\n"
                   "auth required pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail) << j.check.message;
  EXPECT_TRUE(j.walk.bypass);
  // A plain continuation still joins.
  auto c = judge({{"sshd",
                   "auth requisite \\\n pam_unix.so\n"
                   "auth required \\  \n pam_pbx_totp.so\n"}});
  ASSERT_EQ(c.flow.size(), 2U);
  EXPECT_EQ(c.flow[1].module, "pam_pbx_totp.so");
}

// A module doctor does not know may answer any value: a jump over the module on one that is
// not PAM_AUTH_ERR is a password-only login (review-14).
TEST(PamWalk, UnknownModuleJumpOnAnUnusualAnswerFails) {
  auto j = judge({{"sshd",
                   "auth requisite pam_unix.so\n"
                   "auth [success=ok authinfo_unavail=1 default=ignore] pam_radius.so\n"
                   "auth required pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail) << j.check.message;
  EXPECT_TRUE(j.walk.bypass);
}

TEST(PamWalk, SufficientModuleThenPermitFails) {
  auto j = judge({{"sshd",
                   "auth requisite pam_unix.so\n"
                   "auth sufficient pam_pbx_totp.so\n"
                   "auth required pam_permit.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("a wrong or missing code does not fail the stack"));
}

// A sufficient module with pam_deny.so after it does enforce the code.
TEST(PamWalk, SufficientModuleThenDenyPasses) {
  auto j = judge({{"sshd",
                   "auth requisite pam_unix.so\n"
                   "auth sufficient pam_pbx_totp.so\n"
                   "auth required pam_deny.so\n"}});
  EXPECT_EQ(j.check.status, Status::kPass) << j.check.message;
}

TEST(PamWalk, ResetForgetsAFailedCode) {
  auto j = judge({{"sshd",
                   "auth requisite pam_unix.so\n"
                   "auth required pam_pbx_totp.so\n"
                   "auth [default=reset] pam_permit.so\n"
                   "auth required pam_permit.so\n"}});
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("a wrong or missing code does not fail the stack"));
}

// ---- M1: lockout by anyone who knows a user name

TEST(PamWalk, ForwardPassWarns) {
  auto j = judge({{"sshd",
                   "auth required pam_pbx_totp.so forward_pass\n"
                   "auth requisite pam_unix.so use_first_pass\n"}});
  EXPECT_EQ(j.check.status, Status::kWarn);
  EXPECT_TRUE(j.says("with forward_pass"));
  EXPECT_TRUE(j.says("lock the user out"));
  EXPECT_TRUE(j.says("Fix: drop forward_pass"));
  EXPECT_FALSE(j.says("add forward_pass"));
}

TEST(PamWalk, RequiredPasswordThenTheModuleWarnsOfLockout) {
  auto j = judge({{"sshd", "auth required pam_unix.so\nauth required pam_pbx_totp.so\n"}});
  EXPECT_EQ(j.check.status, Status::kWarn);
  EXPECT_TRUE(j.says("'auth required pam_pbx_totp.so' " + where("sshd", 2))) << j.check.message;
  EXPECT_TRUE(j.says("runs after a wrong password to pam_unix.so " + where("sshd", 1)));
  EXPECT_TRUE(j.says("Fix: check the password first"));
  EXPECT_TRUE(j.says("'auth requisite pam_unix.so'"));
  EXPECT_FALSE(j.says("forward_pass"));
}

TEST(PamWalk, ModuleBeforeThePasswordWarnsOfLockout) {
  auto j = judge({{"common-auth", kCommonAuth},
                  {"sshd", "auth required pam_pbx_totp.so\n@include common-auth\n"}});
  EXPECT_EQ(j.check.status, Status::kWarn);
  EXPECT_TRUE(j.says("runs before any password module has succeeded"));
  EXPECT_FALSE(j.says("forward_pass"));
}

TEST(PamWalk, EnrollAtLoginAfterARequiredPasswordFails) {
  for (EnrollMode mode : {EnrollMode::kYes, EnrollMode::kWithCode}) {
    auto j = judge({{"sshd", "auth required pam_unix.so\nauth required pam_pbx_totp.so\n"}}, "sshd",
                   mode);
    EXPECT_EQ(j.check.status, Status::kFail);
    EXPECT_TRUE(j.says("with enroll_at_login: a wrong password to pam_unix.so"));
  }
  // The module argument wins over the config, with-code included.
  auto arg = judge({{"sshd",
                     "auth required pam_unix.so\n"
                     "auth required pam_pbx_totp.so enroll_at_login=with-code\n"}});
  EXPECT_EQ(arg.check.status, Status::kFail);
  EXPECT_TRUE(arg.says("with enroll_at_login: a wrong password to pam_unix.so"));
}

TEST(PamWalk, EnrollAtLoginYesOverSshWarnsAndRecommendsWithCode) {
  const std::string safe = "auth requisite pam_unix.so\nauth required pam_pbx_totp.so\n";
  auto yes = judge({{"sshd", safe}}, "sshd", EnrollMode::kYes);
  EXPECT_EQ(yes.check.status, Status::kWarn);
  EXPECT_TRUE(yes.says("enroll_at_login = with-code")) << yes.check.message;
  EXPECT_EQ(judge({{"sshd", safe}}, "sshd", EnrollMode::kWithCode).check.status, Status::kPass);
  EXPECT_EQ(judge({{"login", safe}}, "login", EnrollMode::kYes).check.status, Status::kPass);
  auto by_arg = judge({{"sshd",
                        "auth requisite pam_unix.so\n"
                        "auth required pam_pbx_totp.so enroll_at_login=with-code\n"}},
                      "sshd", EnrollMode::kYes);
  EXPECT_EQ(by_arg.check.status, Status::kPass) << by_arg.check.message;
}

// ---- naming the module, judging every file

TEST(PamWalk, ModuleByAbsolutePathIsRecognised) {
  const std::string path = "/usr/lib/x86_64-linux-gnu/security/pam_pbx_totp.so";
  auto j = judge({{"sshd", "auth requisite pam_unix.so\nauth required " + path + "\n"}});
  EXPECT_TRUE(j.walk.has_totp);
  EXPECT_EQ(j.check.status, Status::kPass) << j.check.message;
  auto bad = judge({{"sshd", "auth sufficient pam_unix.so\nauth required " + path + "\n"}});
  EXPECT_EQ(bad.check.status, Status::kFail);

  PamScan scan;
  scan.stacks["sshd"] = modules_only(j.flow);
  scan.stacks["login"] =
      modules_only(judge({{"login", "auth required pam_unix.so\n"}}, "login").flow);
  EXPECT_EQ(services_with_module(scan), (std::vector<std::string>{"sshd"}));
  EXPECT_EQ(module_paths_in_stacks(scan), (std::vector<std::string>{path}));
}

// Debian's su is included by su-l: both files are services and both are judged.
TEST(PamWalk, SuIncludedBySuLBothJudged) {
  std::map<std::string, std::string> files = {
      {"su",
       "auth sufficient pam_rootok.so\nauth sufficient pam_unix.so\n"
       "auth required pam_pbx_totp.so\nauth required pam_deny.so\n"},
      {"su-l", "auth include su\n"}};
  MemoryFiles mf;
  for (const auto& [name, text] : files) mf.add(kDir + "/" + name, text);
  PamStackReader reader(kDir, mf);
  PamScan scan;
  for (const auto& [name, text] : files) {
    scan.flows[name] = reader.auth_flow(name);
    scan.stacks[name] = modules_only(scan.flows[name]);
  }
  scan.included = reader.included();
  ASSERT_EQ(scan.included.count("su"), 1U);
  EXPECT_EQ(services_with_module(scan), (std::vector<std::string>{"su", "su-l"}));
  for (const auto& s : {"su", "su-l"}) {
    Check c = judge_pam_service(s, scan.flows[s], EnrollMode::kNo);
    EXPECT_EQ(c.status, Status::kFail) << s;
    EXPECT_NE(c.message.find("'auth sufficient pam_unix.so' " + where("su", 2)), std::string::npos)
        << c.message;
  }
}

// ---- bounds: loops, fan-out, includes not followed, the state cap

TEST(PamWalk, IncludeLoopIsBoundedAndFailsLikeLibpam) {
  auto j = judge({{"sshd", "@include loop-a\nauth required pam_pbx_totp.so\n"},
                  {"loop-a", "@include loop-b\n"},
                  {"loop-b", "@include loop-a\nauth requisite pam_unix.so\n"}});
  // libpam installs the include nested too deep as a line that fails: no path succeeds.
  EXPECT_FALSE(j.walk.bypass);
  EXPECT_FALSE(j.walk.ignored_failure);
  EXPECT_TRUE(j.walk.incomplete.empty());
  EXPECT_LT(j.walk.states, 1000U);
}

TEST(PamWalk, FanOutPastTheFileCapIsNeverAPass) {
  std::map<std::string, std::string> files;
  for (int i = 0; i < 17; ++i) {
    std::string next = "f" + std::to_string(i + 1);
    files["f" + std::to_string(i)] =
        "@include " + next + "\n@include " + next + "\nauth optional pam_x.so\n";
  }
  files["sshd"] = "auth requisite pam_unix.so\nauth required pam_pbx_totp.so\n@include f0\n";
  auto j = judge(files);
  EXPECT_FALSE(j.walk.incomplete.empty());
  EXPECT_EQ(j.check.status, Status::kWarn) << j.check.message;
  EXPECT_TRUE(j.says("not every path through the stack could be followed"));
}

TEST(PamWalk, AnIncludeOutsideTheDirectoryIsNeverAPass) {
  auto j = judge({{"sshd",
                   "auth requisite pam_unix.so\nauth required pam_pbx_totp.so\n"
                   "@include /etc/elsewhere/auth\n"}});
  EXPECT_EQ(j.check.status, Status::kWarn) << j.check.message;
  EXPECT_TRUE(j.says("outside the directory"));
}

TEST(PamWalk, TheStateCapIsNeverAPass) {
  MemoryFiles mf({{kDir + "/common-auth", kCommonAuth},
                  {kDir + "/sshd", "@include common-auth\nauth required pam_pbx_totp.so\n"}});
  PamStackReader reader(kDir, mf);
  auto flow = reader.auth_flow("sshd");
  PamWalk w = walk_auth_flow(flow, 3);
  EXPECT_NE(w.incomplete.find("more than 3 states"), std::string::npos);
  EXPECT_TRUE(walk_auth_flow(flow).incomplete.empty());
}

// Many unknown modules, each of which may succeed or fail: the merged states stay few.
TEST(PamWalk, ManyBranchesStayPolynomial) {
  std::string text = "auth requisite pam_unix.so\n";
  for (int i = 0; i < 200; ++i)
    text += "auth [success=1 default=ignore] pam_x" + std::to_string(i) + ".so\n";
  text += "auth required pam_pbx_totp.so\nauth required pam_permit.so\n";
  auto j = judge({{"sshd", text}});
  EXPECT_TRUE(j.walk.incomplete.empty());
  EXPECT_LT(j.walk.states, 5000U);
  // The last pam_x can jump over the module.
  EXPECT_EQ(j.check.status, Status::kFail);
  EXPECT_TRUE(j.says("pam_x199.so'"));
}

// ---- libpam's control field (pam_misc.c)

TEST(PamActions, KeywordsAndBrackets) {
  auto req = pam_actions("required");
  EXPECT_EQ(req[0], kActOk);
  EXPECT_EQ(req[7], kActBad);
  EXPECT_EQ(req[25], kActIgnore);
  EXPECT_EQ(pam_actions("Requisite")[7], kActDie);
  EXPECT_EQ(pam_actions("sufficient")[0], kActDone);
  EXPECT_EQ(pam_actions("sufficient")[7], kActIgnore);
  EXPECT_EQ(pam_actions("optional")[7], kActIgnore);
  auto a = pam_actions("[success=2 default=ignore]");
  EXPECT_EQ(a[0], 2);
  EXPECT_EQ(a[7], kActIgnore);
  auto b = pam_actions("[default=bad success=ok auth_err=reset]");
  EXPECT_EQ(b[0], kActOk);
  EXPECT_EQ(b[7], kActReset);
  EXPECT_EQ(b[6], kActBad);
  EXPECT_EQ(pam_actions("[success=done]")[7], kActBad) << "unset values are bad";
  for (const char* broken : {"[success=0 default=ignore]", "[success= ]", "[sucess=ok]",
                             "[success=ok default=jump]", "bogus", "[success=99999999999]"}) {
    auto x = pam_actions(broken);
    EXPECT_EQ(x[0], kActBad) << broken;
    EXPECT_EQ(x[7], kActBad) << broken;
  }
}

}  // namespace
}  // namespace pbx::cli::doctor

// The PAM-stack reader over files in memory: includes, substacks, loops, continuations.
#include "doctor/pam_stack.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pbx::cli::doctor {
namespace {

const std::string kDir = "/etc/pam.d";

// "control module arg..." of each entry, to compare stacks at a glance.
std::vector<std::string> shape(const std::vector<PamEntry>& stack) {
  std::vector<std::string> out;
  for (const auto& e : stack) {
    std::string s = e.control + " " + e.module;
    for (const auto& a : e.args) s += " " + a;
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> wheres(const std::vector<PamEntry>& stack) {
  std::vector<std::string> out;
  for (const auto& e : stack) out.push_back(e.where);
  return out;
}

using Lines = std::vector<std::string>;

TEST(PamFields, SplitsOnBlanksAndKeepsBracketsWhole) {
  EXPECT_EQ(pam_fields("auth\trequired   pam_unix.so nullok"),
            (Lines{"auth", "required", "pam_unix.so", "nullok"}));
  EXPECT_EQ(pam_fields("  auth [success=1  \t default=ignore] pam_unix.so"),
            (Lines{"auth", "[success=1 default=ignore]", "pam_unix.so"}));
  EXPECT_EQ(pam_fields("auth [success=1 default=ignore"),
            (Lines{"auth", "[success=1 default=ignore"}))
      << "an unclosed bracket runs to the end of the line";
  EXPECT_EQ(pam_fields("auth required x.so [prompt=Your code: ]"),
            (Lines{"auth", "required", "x.so", "[prompt=Your code: ]"}));
  EXPECT_TRUE(pam_fields("").empty());
  EXPECT_TRUE(pam_fields(" \t ").empty());
}

TEST(PamStack, OnlyAuthLinesInOrderWithModuleBaseNames) {
  MemoryFiles files({{kDir + "/sshd",
                      "#%PAM-1.0\n"
                      "account required pam_nologin.so\n"
                      "auth required /lib/security/pam_unix.so nullok  # comment\n"
                      "AUTH optional pam_cap.so\n"
                      "-auth optional pam_reauthorize.so prepare\n"
                      "session required pam_loginuid.so\n"
                      "auth required\n"  // too short: ignored
                      "\n"
                      "auth required pam_pbx_totp.so enroll_at_login=yes\n"}});
  PamStackReader reader(kDir, files);
  auto stack = reader.auth_stack("sshd");
  EXPECT_EQ(shape(stack), (Lines{"required pam_unix.so nullok", "optional pam_cap.so",
                                 "optional pam_reauthorize.so prepare",
                                 "required pam_pbx_totp.so enroll_at_login=yes"}));
  EXPECT_EQ(wheres(stack),
            (Lines{kDir + "/sshd:3", kDir + "/sshd:4", kDir + "/sshd:5", kDir + "/sshd:9"}));
  EXPECT_TRUE(reader.problems().empty());
  EXPECT_TRUE(reader.included().empty());
}

TEST(PamStack, IncludeIncludeAndSubstackExpandInPlace) {
  MemoryFiles files({{kDir + "/sshd",
                      "@include common-auth\n"
                      "auth include password-auth\n"
                      "auth substack system-auth\n"
                      "account include common-account\n"  // not auth: not followed
                      "auth required pam_pbx_totp.so\n"},
                     {kDir + "/common-auth", "auth [success=1 default=ignore] pam_unix.so\n"},
                     {kDir + "/password-auth", "auth sufficient pam_sss.so\n"},
                     {kDir + "/system-auth", "auth requisite pam_deny.so\n"},
                     {kDir + "/common-account", "auth required pam_never.so\n"}});
  PamStackReader reader(kDir, files);
  auto stack = reader.auth_stack("sshd");
  EXPECT_EQ(shape(stack), (Lines{"[success=1 default=ignore] pam_unix.so", "sufficient pam_sss.so",
                                 "requisite pam_deny.so", "required pam_pbx_totp.so"}));
  EXPECT_EQ(stack[0].where, kDir + "/common-auth:1");
  EXPECT_EQ(stack[3].where, kDir + "/sshd:5");
  EXPECT_EQ(reader.included(),
            (std::set<std::string>{"common-auth", "password-auth", "system-auth"}));
  EXPECT_TRUE(reader.problems().empty());
}

TEST(PamStack, ContinuedLinesJoinAndKeepTheLastLineNumber) {
  MemoryFiles files({{kDir + "/sshd",
                      "auth [success=ok \\\n"
                      "      default=die]   pam_pbx_totp.so \\  \n"
                      "  [prompt=Your code: ]\n"
                      "auth required pam_unix.so # a comment \\\n"
                      "auth required pam_env.so\n"}});
  PamStackReader reader(kDir, files);
  auto stack = reader.auth_stack("sshd");
  ASSERT_EQ(stack.size(), 3U);
  EXPECT_EQ(stack[0].control, "[success=ok default=die]");
  EXPECT_EQ(stack[0].module, "pam_pbx_totp.so");
  EXPECT_EQ(stack[0].args, (Lines{"[prompt=Your code: ]"}));
  EXPECT_EQ(stack[0].where, kDir + "/sshd:3");
  // The backslash inside a comment continues nothing.
  EXPECT_EQ(stack[1].module, "pam_unix.so");
  EXPECT_EQ(stack[2].module, "pam_env.so");
}

TEST(PamStack, AContinuationAtTheEndOfTheFileIsDropped) {
  MemoryFiles files({{kDir + "/sshd", "auth required pam_unix.so\nauth required \\\n"}});
  PamStackReader reader(kDir, files);
  EXPECT_EQ(shape(reader.auth_stack("sshd")), (Lines{"required pam_unix.so"}));
}

TEST(PamStack, MissingAndUnreadableIncludesAreProblems) {
  MemoryFiles files({{kDir + "/sshd",
                      "@include gone\n"
                      "auth substack gone-too\n"
                      "@include fifo\n"
                      "auth required pam_pbx_totp.so\n"}});
  files.add_unreadable(kDir + "/fifo", "not a regular file");
  PamStackReader reader(kDir, files);
  EXPECT_EQ(shape(reader.auth_stack("sshd")), (Lines{"required pam_pbx_totp.so"}));
  EXPECT_EQ(reader.problems(), (Lines{kDir + "/gone (included): No such file or directory",
                                      kDir + "/gone-too (included): No such file or directory",
                                      kDir + "/fifo (included): not a regular file"}));
}

TEST(PamStack, AServiceThatCannotBeReadIsEmptyWithoutAProblem) {
  MemoryFiles files;
  PamStackReader reader(kDir, files);
  EXPECT_TRUE(reader.auth_stack("sshd").empty());
  EXPECT_TRUE(reader.problems().empty());
}

TEST(PamStack, IncludesOutsideTheDirectoryAreNotFollowed) {
  MemoryFiles files({{kDir + "/sshd",
                      "@include ../shadow-auth\n"
                      "@include /etc/other/auth\n"
                      "@include\n"  // no name: ignored
                      "auth include \n"
                      "auth required pam_pbx_totp.so\n"},
                     {"/etc/shadow-auth", "auth sufficient pam_permit.so\n"},
                     {"/etc/other/auth", "auth sufficient pam_permit.so\n"}});
  PamStackReader reader(kDir, files);
  EXPECT_EQ(shape(reader.auth_stack("sshd")), (Lines{"required pam_pbx_totp.so"}));
  EXPECT_EQ(reader.problems(),
            (Lines{"include of '../shadow-auth' outside /etc/pam.d not followed",
                   "include of '/etc/other/auth' outside /etc/pam.d not followed"}));
}

TEST(PamStack, AnIncludeLoopEndsWithOneProblem) {
  MemoryFiles files({{kDir + "/sshd", "@include loop-a\nauth required pam_pbx_totp.so\n"},
                     {kDir + "/loop-a", "@include loop-b\n"},
                     {kDir + "/loop-b", "@include loop-a\nauth required pam_unix.so\n"}});
  PamStackReader reader(kDir, files);
  auto stack = reader.auth_stack("sshd");
  // loop-b sits at the even depths 2..16 and adds its pam_unix.so line each time; loop-a at
  // depth 17 is where it stops.
  ASSERT_FALSE(stack.empty());
  EXPECT_EQ(stack.back().module, "pam_pbx_totp.so");
  EXPECT_EQ(stack.size(), 9U);
  EXPECT_EQ(reader.problems(), (Lines{"loop-a: includes nested too deep (a loop?)"}));
}

TEST(PamStack, ASelfIncludeEndsToo) {
  MemoryFiles files({{kDir + "/self", "auth substack self\n"}});
  PamStackReader reader(kDir, files);
  EXPECT_TRUE(reader.auth_stack("self").empty());
  EXPECT_EQ(reader.problems(), (Lines{"self: includes nested too deep (a loop?)"}));
}

TEST(PamStack, IncludesThatFanOutStopAtTheFileCap) {
  // Each level includes the next one twice: 2^17 files without the cap.
  MemoryFiles files;
  for (int i = 0; i < 17; ++i) {
    std::string next = "f" + std::to_string(i + 1);
    files.add(kDir + "/f" + std::to_string(i),
              "@include " + next + "\n@include " + next + "\nauth optional pam_x.so\n");
  }
  PamStackReader reader(kDir, files);
  auto stack = reader.auth_stack("f0");
  EXPECT_EQ(stack.size(), kMaxIncludedFiles);  // one line from each file read
  // Once for the service, after the depth limit's own problem (f17 does not exist).
  EXPECT_EQ(reader.problems(),
            (Lines{"f17: includes nested too deep (a loop?)",
                   "f0: too many included files (more than 256); the rest not followed"}));

  // The cap is per service: the next stack starts afresh.
  files.add(kDir + "/sshd", "auth required pam_pbx_totp.so\n");
  EXPECT_EQ(reader.auth_stack("sshd").size(), 1U);
}

TEST(PamStack, IncludedNamesAccumulateOverServices) {
  MemoryFiles files({{kDir + "/sshd", "@include common-auth\n"},
                     {kDir + "/login", "auth substack system-login\n"},
                     {kDir + "/common-auth", "auth required pam_unix.so\n"},
                     {kDir + "/system-login", "auth required pam_unix.so\n"}});
  PamStackReader reader(kDir, files);
  EXPECT_EQ(reader.auth_stack("sshd").size(), 1U);
  EXPECT_EQ(reader.auth_stack("login").size(), 1U);
  EXPECT_EQ(reader.included(), (std::set<std::string>{"common-auth", "system-login"}));
}

TEST(PamStack, CarriageReturnsAndBlankLines) {
  MemoryFiles files({{kDir + "/sshd", "\r\n   \n\tauth\trequired\tpam_unix.so\r\n#only\n"}});
  PamStackReader reader(kDir, files);
  auto stack = reader.auth_stack("sshd");
  ASSERT_EQ(stack.size(), 1U);
  EXPECT_EQ(stack[0].module, "pam_unix.so\r")
      << "only blanks and tabs separate fields: a CR stays in the name";
  EXPECT_EQ(stack[0].where, kDir + "/sshd:3");
}

// auth_flow() keeps what libpam's dispatcher sees besides the modules (issue 14): a substack
// entry with its lines one level deeper, an include libpam cannot load as a failing entry, an
// include doctor does not follow as an unknown one; auth_stack() is its modules.
TEST(PamStack, AuthFlowHasSubstacksFailingAndUnfollowedIncludes) {
  MemoryFiles files({{kDir + "/sshd",
                      "auth substack inner\n"
                      "@include gone\n"
                      "auth include /etc/elsewhere\n"
                      "auth required /usr/lib/security/pam_pbx_totp.so\n"},
                     {kDir + "/inner", "auth requisite pam_unix.so\nauth substack gone-too\n"}});
  PamStackReader reader(kDir, files);
  auto flow = reader.auth_flow("sshd");
  using K = PamEntry::Kind;
  std::vector<std::pair<K, int>> kinds;
  for (const auto& e : flow) kinds.emplace_back(e.kind, e.level);
  EXPECT_EQ(kinds, (std::vector<std::pair<K, int>>{{K::kSubstack, 0},
                                                   {K::kModule, 1},
                                                   {K::kSubstack, 1},
                                                   {K::kFail, 1},
                                                   {K::kFail, 0},
                                                   {K::kUnknown, 0},
                                                   {K::kModule, 0}}));
  EXPECT_EQ(flow[1].where, kDir + "/inner:1");
  EXPECT_EQ(flow[3].where, kDir + "/inner:2");
  EXPECT_EQ(flow.back().module, "pam_pbx_totp.so");
  EXPECT_EQ(flow.back().path, "/usr/lib/security/pam_pbx_totp.so");
  EXPECT_EQ(shape(modules_only(flow)), shape(reader.auth_stack("sshd")));
}

}  // namespace
}  // namespace pbx::cli::doctor

// The built pam_pbx_totp.so: what it exports, and real logins through libpam's
// pam_start_confdir() with a private PAM configuration directory.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <poll.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pam_stack.hpp"

namespace pbx::pam::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// Exports.

TEST(ModuleExportsTest, DlopenFindsBothEntryPoints) {
  void* handle = ::dlopen(kModule, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << ::dlerror();
  EXPECT_NE(::dlsym(handle, "pam_sm_authenticate"), nullptr);
  EXPECT_NE(::dlsym(handle, "pam_sm_setcred"), nullptr);
  // Not an auth module for the other PAM types.
  EXPECT_EQ(::dlsym(handle, "pam_sm_open_session"), nullptr);
  EXPECT_EQ(::dlsym(handle, "pam_sm_chauthtok"), nullptr);
  EXPECT_EQ(::dlclose(handle), 0);
}

TEST(ModuleExportsTest, ExportsExactlyTheTwoEntryPoints) {
  std::string command = std::string("nm -D --defined-only '") + kModule + "' 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::set<std::string> names;
  std::string all;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    all += line;
    // "ADDRESS TYPE NAME" (the address may be missing for absolute symbols).
    std::string text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    std::size_t last_space = text.rfind(' ');
    names.insert(last_space == std::string::npos ? text : text.substr(last_space + 1));
  }
  ASSERT_EQ(::pclose(pipe), 0) << "nm failed on " << kModule;
  EXPECT_EQ(names, (std::set<std::string>{"pam_sm_authenticate", "pam_sm_setcred"})) << all;
}

// A login loads what the module links: libqrencode (enrollment only) is dlopen()ed when a QR code
// is drawn, libstdc++ is linked in statically (C hosts do not load it), libpq stays in the
// database plugin (bench/login/PROFILE-issue20.md).
TEST(ModuleExportsTest, LinksNoLibraryThatOnlyEnrollmentOrTheDatabaseNeeds) {
  std::string command = std::string("readelf -d '") + kModule + "' 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::vector<std::string> needed;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    std::string text(line);
    std::size_t open = text.find("(NEEDED)");
    if (open == std::string::npos) continue;
    std::size_t from = text.find('[', open);
    std::size_t to = text.find(']', from);
    if (from != std::string::npos && to != std::string::npos) {
      needed.push_back(text.substr(from + 1, to - from - 1));
    }
  }
  ASSERT_EQ(::pclose(pipe), 0) << "readelf failed on " << kModule;
  ASSERT_FALSE(needed.empty());
  for (const auto& lib : needed) {
    EXPECT_EQ(lib.find("libqrencode"), std::string::npos) << lib;
#ifndef __SANITIZE_ADDRESS__  // the sanitizer build links libstdc++ (pam/CMakeLists.txt)
    EXPECT_EQ(lib.find("libstdc++"), std::string::npos) << lib;
#endif
    EXPECT_EQ(lib.find("libpq"), std::string::npos) << lib;
  }
}

TEST_F(PamStackTest, AcceptsTheCurrentCode) {
  Enrolled e = files_->enroll(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec({e.code_at(unix_now())}), conv), PAM_SUCCESS);
  ASSERT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(conv.prompts[0].style, PAM_PROMPT_ECHO_OFF);
  EXPECT_EQ(conv.prompts[0].text, "Security code: ");
  EXPECT_TRUE(conv.messages.empty());
}

TEST_F(PamStackTest, RejectsAWrongCode) {
  Enrolled e = files_->enroll(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec({e.wrong_code_at(unix_now())}), conv), PAM_AUTH_ERR);
  EXPECT_EQ(conv.prompts.size(), 1u);
}

TEST_F(PamStackTest, RejectsAReplayedCode) {
  Enrolled e = files_->enroll(kUser);
  std::string code = e.code_at(unix_now());
  EXPECT_EQ(login(spec({code})), PAM_SUCCESS);
  Conversation conv;
  EXPECT_EQ(login(spec({code}), conv), PAM_AUTH_ERR);
  EXPECT_EQ(conv.prompts.size(), 1u);
}

TEST_F(PamStackTest, AcceptsARecoveryCodeOnce) {
  Enrolled e = files_->enroll(kUser, 1);
  Conversation conv;
  EXPECT_EQ(login(spec({e.recovery_codes[0]}), conv), PAM_SUCCESS);
  ASSERT_EQ(conv.messages.size(), 1u);
  EXPECT_EQ(conv.messages[0].style, PAM_TEXT_INFO);
  EXPECT_EQ(login(spec({e.recovery_codes[0]})), PAM_AUTH_ERR);
}

TEST_F(PamStackTest, LocksOutAndLetsInAgainAfterTheLockout) {
  // Whole seconds: a lockout of 1 s could end between two calls made a moment apart; 3 s leaves
  // a loaded machine two seconds to make the locked-out attempt.
  files_->write_config("max_failures = 2\nlockout = 3\n");
  Enrolled e = files_->enroll(kUser);
  EXPECT_EQ(login(spec({e.wrong_code_at(unix_now())})), PAM_AUTH_ERR);
  Conversation second;
  EXPECT_EQ(login(spec({e.wrong_code_at(unix_now())}), second), PAM_AUTH_ERR);
  std::int64_t locked_at = unix_now();
  ASSERT_EQ(second.messages.size(), 1u);
  EXPECT_EQ(second.messages[0].style, PAM_ERROR_MSG);
  EXPECT_NE(second.messages[0].text.find("Try again in"), std::string::npos);

  Conversation locked;
  EXPECT_EQ(login(spec({e.code_at(unix_now())}), locked), PAM_AUTH_ERR);
  EXPECT_EQ(locked.prompts.size(), 0u);
  ASSERT_EQ(locked.messages.size(), 1u);
  EXPECT_NE(locked.messages[0].text.find("Try again in"), std::string::npos);

  // The lockout ended at the latest at locked_at + 3 (whole seconds).
  while (unix_now() < locked_at + 3) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Conversation after;
  EXPECT_EQ(login(spec({e.code_at(unix_now())}), after), PAM_SUCCESS);
  EXPECT_EQ(after.prompts.size(), 1u);
}

// M1: in the recommended stacks a wrong password ends the stack before the module, so someone
// who knows only a user name cannot move the user's failure counter (and so cannot lock the
// user out). The password module is pam_exec with a script that accepts one password, in the
// place of pam_unix: Debian's common-auth with the pam-auth-update profile (jump over pam_deny
// on success, the module as an additional required line), and `requisite` before the module.
TEST_F(PamStackTest, AStrangerWithoutThePasswordCannotMoveTheFailureCounter) {
  const std::string check = files_->root() + "/check-password";
  ASSERT_TRUE(
      write_file(check,
                 "#!/bin/sh\n"
                 "# The password arrives on stdin, NUL-terminated (pam_exec expose_authtok).\n"
                 "pw=$(head -c 256 | tr -d '\\000')\n"
                 "[ \"$pw\" = \"the-right-password\" ]\n",
                 0755, 0, 0));
  const std::string password = "pam_exec.so quiet expose_authtok " + check + "\n";
  write_service("debian-style", "",
                "auth [success=1 default=ignore] " + password +
                    "auth requisite pam_deny.so\nauth required pam_permit.so\n");
  write_service("requisite", "", "auth requisite " + password);
  Enrolled e = files_->enroll(kUser);

  for (const char* service : {"debian-style", "requisite"}) {
    SCOPED_TRACE(service);
    LoginSpec s = spec({"the-right-password", e.code_at(unix_now())});
    s.service = service;
    ASSERT_EQ(login(s), PAM_SUCCESS) << "the stack must let the password holder in";
    for (int i = 0; i < 10; ++i) {
      s.answers = {"not-the-password", e.wrong_code_at(unix_now())};
      Conversation conv;
      EXPECT_NE(login(s, conv), PAM_SUCCESS);
      ASSERT_EQ(conv.prompts.size(), 1u) << "only the password is asked";
      EXPECT_TRUE(conv.messages.empty()) << conv.messages[0].text;
    }
    auto state = totp::parse_state(state_text(files_->state_file(kUser)));
    ASSERT_TRUE(state.ok()) << state.error().message;
    EXPECT_EQ(state->failures, 0);
    EXPECT_EQ(state->locked_until, 0);

    // The counter is live in this stack: the password holder's wrong code does count.
    s.answers = {"the-right-password", e.wrong_code_at(unix_now())};
    EXPECT_EQ(login(s), PAM_AUTH_ERR);
    state = totp::parse_state(state_text(files_->state_file(kUser)));
    ASSERT_TRUE(state.ok()) << state.error().message;
    EXPECT_EQ(state->failures, 1);
    e = files_->enroll(kUser);  // a fresh enrollment, fresh state, for the next stack
  }
}

TEST_F(PamStackTest, SilentHidesTheLockoutMessage) {
  files_->write_config("max_failures = 1\nlockout = 60\n");
  Enrolled e = files_->enroll(kUser);
  LoginSpec s = spec({e.wrong_code_at(unix_now())});
  s.flags = PAM_SILENT;
  Conversation wrong;
  EXPECT_EQ(login(s, wrong), PAM_AUTH_ERR);
  EXPECT_TRUE(wrong.messages.empty());
  s.answers = {e.code_at(unix_now())};
  Conversation locked;
  EXPECT_EQ(login(s, locked), PAM_AUTH_ERR);
  EXPECT_TRUE(locked.messages.empty());
  EXPECT_TRUE(locked.prompts.empty());
}

TEST_F(PamStackTest, NotEnrolledAndRequiredFailsAfterPrompting) {
  Conversation conv;
  EXPECT_EQ(login(spec({"123456"}), conv), PAM_AUTH_ERR);
  ASSERT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(conv.prompts[0].text, "Security code: ");
}

TEST_F(PamStackTest, NotEnrolledAndNotRequiredIsIgnored) {
  files_->write_config("require = none\n");
  Conversation conv;
  EXPECT_EQ(login(spec(), conv), kStackIgnored);
  EXPECT_EQ(conv.prompts.size(), 0u);

  // Behind a password module (here pam_permit), that module's verdict stands.
  write_service("behind-password", "", "auth required pam_permit.so\n");
  LoginSpec s = spec();
  s.service = "behind-password";
  Conversation behind;
  EXPECT_EQ(login(s, behind), PAM_SUCCESS);
  EXPECT_EQ(behind.prompts.size(), 0u);
}

TEST_F(PamStackTest, NullokArgumentIgnoresUsersWhoAreNotEnrolled) {
  write_service(kService, "nullok");
  Conversation conv;
  EXPECT_EQ(login(spec(), conv), kStackIgnored);
  EXPECT_EQ(conv.prompts.size(), 0u);
  Enrolled e = files_->enroll(kUser);
  EXPECT_EQ(login(spec({e.wrong_code_at(unix_now())})), PAM_AUTH_ERR);
}

TEST_F(PamStackTest, ExemptGroupSkipsTheCode) {
  files_->write_config("exempt_groups = " + std::string(kUserGroup) + "\n");
  files_->enroll(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec(), conv), kStackIgnored);
  EXPECT_EQ(conv.prompts.size(), 0u);

  write_service("behind-password", "", "auth required pam_permit.so\n");
  LoginSpec s = spec();
  s.service = "behind-password";
  EXPECT_EQ(login(s), PAM_SUCCESS);

  Enrolled other = files_->enroll(kOtherUser);
  Conversation not_exempt;
  EXPECT_EQ(login(spec({other.wrong_code_at(unix_now())}, kOtherUser), not_exempt), PAM_AUTH_ERR);
  EXPECT_EQ(not_exempt.prompts.size(), 1u);
}

TEST_F(PamStackTest, ExemptNetworkSkipsTheCodeForHostsInside) {
  files_->write_config("exempt_networks = 192.0.2.0/24, 2001:db8::/32\n");
  Enrolled e = files_->enroll(kUser);
  for (const char* inside : {"192.0.2.7", "2001:db8::7"}) {
    LoginSpec s = spec();
    s.rhost = inside;
    Conversation conv;
    EXPECT_EQ(login(s, conv), kStackIgnored) << inside;
    EXPECT_EQ(conv.prompts.size(), 0u) << inside;
  }
  LoginSpec outside = spec({e.wrong_code_at(unix_now())});
  outside.rhost = "198.51.100.7";
  Conversation conv;
  EXPECT_EQ(login(outside, conv), PAM_AUTH_ERR);
  EXPECT_EQ(conv.prompts.size(), 1u);
}

TEST_F(PamStackTest, GracePeriodSkipsTheCodeForTheSameUserAndHost) {
  files_->write_config("grace_period = 300\n");
  Enrolled e = files_->enroll(kUser);
  LoginSpec first = spec({e.code_at(unix_now())});
  first.rhost = "203.0.113.8";
  ASSERT_EQ(login(first), PAM_SUCCESS);

  LoginSpec again = spec();
  again.rhost = "203.0.113.8";
  Conversation conv;
  EXPECT_EQ(login(again, conv), PAM_SUCCESS);
  EXPECT_EQ(conv.prompts.size(), 0u);

  LoginSpec elsewhere = spec({e.wrong_code_at(unix_now())});
  elsewhere.rhost = "203.0.113.9";
  Conversation other;
  EXPECT_EQ(login(elsewhere, other), PAM_AUTH_ERR);
  EXPECT_EQ(other.prompts.size(), 1u);
}

TEST_F(PamStackTest, PromptArgumentWithPamBracketSyntax) {
  write_service(kService, "[prompt=Your code: ]");
  Enrolled e = files_->enroll(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec({e.code_at(unix_now())}), conv), PAM_SUCCESS);
  ASSERT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(conv.prompts[0].text, "Your code: ");
}

TEST_F(PamStackTest, EchoCodeAsksWithEchoOn) {
  write_service(kService, "echo_code");
  Enrolled e = files_->enroll(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec({e.code_at(unix_now())}), conv), PAM_SUCCESS);
  ASSERT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(conv.prompts[0].style, PAM_PROMPT_ECHO_ON);
}

TEST_F(PamStackTest, ForwardPassTakesPasswordAndCodeInOneAnswer) {
  write_service(kService, "forward_pass");
  Enrolled e = files_->enroll(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec({"hunter2" + e.code_at(unix_now())}), conv), PAM_SUCCESS);
  ASSERT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(conv.prompts[0].style, PAM_PROMPT_ECHO_OFF);
  EXPECT_EQ(conv.prompts[0].text, "Password and security code: ");
}

TEST_F(PamStackTest, FailedConversationIsAConversationError) {
  files_->enroll(kUser);
  Conversation conv;
  conv.fail = true;
  EXPECT_EQ(login(spec(), conv), PAM_CONV_ERR);
}

TEST_F(PamStackTest, SetcredSucceeds) {
  Conversation conv;
  const pam_conv pc{converse, &conv};
  pam_handle_t* pamh = nullptr;
  ASSERT_EQ(::pam_start_confdir(kService, kUser, &pc, confdir_.c_str(), &pamh), PAM_SUCCESS);
  EXPECT_EQ(::pam_setcred(pamh, PAM_ESTABLISH_CRED), PAM_SUCCESS);
  ::pam_end(pamh, PAM_SUCCESS);
}

// A long-running host (a RADIUS or web server, a login manager, a screen locker) starts and
// ends a PAM transaction per login, and libpam unloads the module at every pam_end. Loading it
// again must leave nothing behind: with libstdc++ linked in statically, every load allocated
// libstdc++'s exception emergency pool (71 KiB) and every unload lost it (found by valgrind).
// glibc's count of bytes in use; a sanitizer build has its own allocator and links libstdc++
// dynamically, and sees no growth either way.
TEST_F(PamStackTest, RepeatedLoginsInOneProcessDoNotGrowTheHeap) {
  constexpr int kLogins = 100;
  auto in_use = [] { return ::mallinfo2().uordblks; };
  for (int i = 0; i < 5; ++i) EXPECT_EQ(login(spec({"123456"})), PAM_AUTH_ERR);  // warm up
  std::size_t before = in_use();
  for (int i = 0; i < kLogins; ++i) EXPECT_EQ(login(spec({"123456"})), PAM_AUTH_ERR);
  std::size_t after = in_use();
  std::size_t grown = after > before ? after - before : 0;
  EXPECT_LT(grown, std::size_t{256 * 1024})
      << kLogins << " logins left " << grown << " bytes more in use (" << grown / kLogins
      << " a login)";
}

class PamStackBadArgumentTest : public PamStackTest,
                                public ::testing::WithParamInterface<const char*> {};

TEST_P(PamStackBadArgumentTest, IsAServiceErrorWithoutAPrompt) {
  write_service(kService, GetParam());
  files_->enroll(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec({"123456"}), conv), PAM_SERVICE_ERR);
  EXPECT_EQ(conv.prompts.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Args, PamStackBadArgumentTest,
                         ::testing::Values("bogus", "no_such_key=1", "window=11", "digits=5",
                                           "lockout=0", "require=everyone",
                                           "exempt_networks=10.0.0.0/33", "store=ldap",
                                           "store=postgresql", "secret_path=relative/%u",
                                           "state_dir=relative", "grace_period=-1",
                                           "config=/etc/security/pbx-mfa.conf",
                                           "prompt=", "enroll_display=qr",
                                           "enroll_display=", "use_first_pass try_first_pass",
                                           "forward_pass use_first_pass"));

TEST_F(PamStackTest, MissingOrUnsafeConfigIsAServiceError) {
  std::string conf = files_->config_path();
  std::string text = files_->config_text();
  files_->enroll(kUser);
  struct Case {
    const char* name;
    std::function<void()> make;
  };
  const std::vector<Case> cases = {
      {"missing", [&] { ASSERT_EQ(::unlink(conf.c_str()), 0); }},
      {"group-writable", [&] { ASSERT_TRUE(write_file(conf, text, 0664, 0, 0)); }},
      {"not root-owned", [&] { ASSERT_TRUE(write_file(conf, text, 0644, 65534, 65534)); }},
      {"symlink",
       [&] {
         std::string real = files_->root() + "/real.conf";
         ASSERT_TRUE(write_file(real, text, 0644, 0, 0));
         ASSERT_EQ(::unlink(conf.c_str()), 0);
         ASSERT_EQ(::symlink(real.c_str(), conf.c_str()), 0);
       }},
      {"bad line", [&] { ASSERT_TRUE(write_file(conf, text + "window = wide\n", 0644, 0, 0)); }},
  };
  for (const Case& c : cases) {
    ::unlink(conf.c_str());
    ASSERT_TRUE(write_file(conf, text, 0644, 0, 0));
    c.make();
    Conversation conv;
    EXPECT_EQ(login(spec({"123456"}), conv), PAM_SERVICE_ERR) << c.name;
    EXPECT_EQ(conv.prompts.size(), 0u) << c.name;
  }
}

class PamStackHostileFileTest : public PamStackTest,
                                public ::testing::WithParamInterface<HostileCase> {};

TEST_P(PamStackHostileFileTest, IsUnavailableQuickly) {
  const HostileCase& c = GetParam();
  Enrolled e = files_->enroll(kUser);
  write_state(*files_, kUser, e.enrollment.id);
  c.make(*files_, kUser);
  // A hang check, not a speed test: a FIFO opened without O_NONBLOCK would block forever.
  TimedLogin t = login_in_child(spec({e.code_at(unix_now())}), std::chrono::seconds(3));
  EXPECT_EQ(t.rc, PAM_AUTHINFO_UNAVAIL);
  EXPECT_LT(t.elapsed, std::chrono::seconds(1));
  EXPECT_EQ(t.prompts, c.where == HostileCase::Where::kLock ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Files, PamStackHostileFileTest, ::testing::ValuesIn(hostile_cases()),
                         [](const auto& test_case) { return std::string(test_case.param.name); });

// ---------------------------------------------------------------------------------------------
// Concurrency through the real stack.

TEST_F(PamStackTest, EightSimultaneousLoginsWithOneCodeLetExactlyOneIn) {
  constexpr int kRounds = 30;
  constexpr int kLogins = 8;
  for (int round = 0; round < kRounds; ++round) {
    // A fresh secret and enrollment id: fresh state, so the current code is unused.
    Enrolled e = files_->enroll(kUser, 0);
    std::vector<LoginSpec> specs(kLogins, spec({e.code_at(unix_now())}));
    std::vector<int> codes = simultaneous_logins(specs, std::chrono::seconds(20));
    int successes = 0;
    for (int rc : codes) {
      if (rc == PAM_SUCCESS) {
        ++successes;
      } else {
        EXPECT_EQ(rc, PAM_AUTH_ERR) << "round " << round;
      }
    }
    ASSERT_EQ(successes, 1) << "round " << round;
  }
}

TEST_F(PamStackTest, TwoUsersLoggingInAtOnceNeverFailEachOther) {
  constexpr int kRounds = 30;
  for (int round = 0; round < kRounds; ++round) {
    Enrolled a = files_->enroll(kUser, 0);
    Enrolled b = files_->enroll(kOtherUser, 0);
    std::int64_t now = unix_now();
    std::vector<LoginSpec> specs = {spec({a.code_at(now)}, kUser),
                                    spec({b.code_at(now)}, kOtherUser)};
    std::vector<int> codes = simultaneous_logins(specs, std::chrono::seconds(20));
    ASSERT_EQ(codes, (std::vector<int>{PAM_SUCCESS, PAM_SUCCESS})) << "round " << round;
  }
}

}  // namespace
}  // namespace pbx::pam::testing

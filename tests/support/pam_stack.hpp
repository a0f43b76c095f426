// Real logins through libpam's pam_start_confdir() with a private PAM configuration directory:
// a scriptable conversation, one login, simultaneous logins, and the PamStackTest fixture.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pam_test_support.hpp"
#include "pbx/totp/clock.hpp"

#ifndef PBX_MODULE_PATH
#error "PBX_MODULE_PATH must name the built pam_pbx_totp.so"
#endif

namespace pbx::pam::testing {

using std::chrono::steady_clock;

inline constexpr const char* kModule = PBX_MODULE_PATH;
inline constexpr const char* kService = "pbx-test";
// Real accounts: the module resolves users with getpwnam. kUser's primary group is kUserGroup.
inline constexpr const char* kUser = "daemon";
inline constexpr const char* kUserGroup = "daemon";
inline constexpr const char* kOtherUser = "bin";
// libpam never returns PAM_IGNORE: a stack whose only module ignores the login ends with
// PAM_PERM_DENIED, a code this module itself never returns.
inline constexpr int kStackIgnored = PAM_PERM_DENIED;

// ---------------------------------------------------------------------------------------------
// A libpam conversation answering from a queue and recording what it was shown.

struct Conversation {
  std::deque<std::string> answers;
  bool fail = false;
  struct Shown {
    int style;
    std::string text;
  };
  std::vector<Shown> prompts;   // PAM_PROMPT_ECHO_OFF / PAM_PROMPT_ECHO_ON
  std::vector<Shown> messages;  // PAM_ERROR_MSG / PAM_TEXT_INFO
  // When set, answers each prompt instead of `answers`, seeing what was shown so far; nullopt
  // fails the conversation (a dropped connection).
  std::function<std::optional<std::string>(const Conversation&, const std::string& prompt)>
      responder;
};

extern "C" inline int converse(int count, const struct pam_message** msg,
                               struct pam_response** resp, void* appdata) {
  auto* conv = static_cast<Conversation*>(appdata);
  if (count <= 0 || count > PAM_MAX_NUM_MSG || conv == nullptr) return PAM_CONV_ERR;
  auto* replies = static_cast<pam_response*>(
      std::calloc(static_cast<std::size_t>(count), sizeof(pam_response)));
  if (replies == nullptr) return PAM_BUF_ERR;
  auto give_up = [&] {
    for (int i = 0; i < count; ++i) std::free(replies[i].resp);
    std::free(replies);
    return PAM_CONV_ERR;
  };
  try {
    for (int i = 0; i < count; ++i) {
      int style = msg[i]->msg_style;
      std::string text = msg[i]->msg != nullptr ? msg[i]->msg : "";
      if (style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON) {
        conv->prompts.push_back({style, text});
        if (conv->fail) return give_up();
        std::string answer;
        if (conv->responder) {
          auto reply = conv->responder(*conv, text);
          if (!reply) return give_up();
          answer = std::move(*reply);
        } else {
          if (conv->answers.empty()) return give_up();
          answer = conv->answers.front();
          conv->answers.pop_front();
        }
        replies[i].resp = ::strdup(answer.c_str());
        if (replies[i].resp == nullptr) return give_up();
      } else {
        conv->messages.push_back({style, text});
      }
    }
  } catch (...) {
    return give_up();
  }
  *resp = replies;
  return PAM_SUCCESS;
}

struct LoginSpec {
  std::string confdir;
  std::string service = kService;
  std::string user = kUser;
  std::vector<std::string> answers;
  std::string rhost;  // PAM_RHOST, unset when empty
  int flags = 0;
};

// One full login: pam_start_confdir, pam_authenticate, pam_end. Safe in a forked child (no
// gtest). A pam_start or pam_set_item failure comes back as 100 + its code.
inline int pam_login(const LoginSpec& spec, Conversation& conv) {
  for (const auto& a : spec.answers) conv.answers.push_back(a);
  const pam_conv pc{converse, &conv};
  pam_handle_t* pamh = nullptr;
  int rc = ::pam_start_confdir(spec.service.c_str(), spec.user.c_str(), &pc, spec.confdir.c_str(),
                               &pamh);
  if (rc != PAM_SUCCESS) return 100 + rc;
  if (!spec.rhost.empty()) {
    rc = ::pam_set_item(pamh, PAM_RHOST, spec.rhost.c_str());
    if (rc != PAM_SUCCESS) {
      ::pam_end(pamh, rc);
      return 100 + rc;
    }
  }
  rc = ::pam_authenticate(pamh, spec.flags);
  ::pam_end(pamh, rc);
  return rc;
}

// Runs every login at the same moment, each in its own process, released together through a
// pipe. Returns their PAM codes in order; -1 for a child that crashed or missed the deadline.
inline std::vector<int> simultaneous_logins(const std::vector<LoginSpec>& specs,
                                            std::chrono::milliseconds deadline) {
  int go[2];
  if (::pipe(go) != 0) throw std::runtime_error("pipe failed");
  std::vector<pid_t> pids;
  for (const LoginSpec& spec : specs) {
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(go[1]);
      char c = 0;
      while (::read(go[0], &c, 1) < 0 && errno == EINTR) {
      }
      Conversation conv;
      int rc = pam_login(spec, conv);
      ::_exit(rc & 0xff);
    }
    pids.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);  // every child's read returns now
  std::vector<int> codes(pids.size(), -1);
  auto end = steady_clock::now() + deadline;
  std::size_t left = pids.size();
  while (left > 0 && steady_clock::now() < end) {
    for (std::size_t i = 0; i < pids.size(); ++i) {
      if (pids[i] <= 0) continue;
      int status = 0;
      pid_t done = ::waitpid(pids[i], &status, WNOHANG);
      if (done == 0) continue;
      if (done == pids[i] && WIFEXITED(status)) codes[i] = WEXITSTATUS(status);
      pids[i] = 0;
      --left;
    }
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (pid_t pid : pids) {
    if (pid <= 0) continue;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  return codes;
}

// One login in a child process, so a hang fails the test instead of stalling it.
struct TimedLogin {
  int rc = -1;  // -1: crashed or missed the deadline
  std::size_t prompts = 0;
  std::chrono::milliseconds elapsed{0};
};

inline TimedLogin login_in_child(const LoginSpec& spec, std::chrono::milliseconds deadline) {
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  auto start = steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(out[0]);
    Conversation conv;
    int result[2] = {pam_login(spec, conv), static_cast<int>(conv.prompts.size())};
    ssize_t ignored = ::write(out[1], result, sizeof result);
    (void)ignored;
    ::_exit(0);
  }
  ::close(out[1]);
  TimedLogin t;
  pollfd pfd{out[0], POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(deadline.count())) == 1) {
    int result[2] = {-1, 0};
    if (::read(out[0], result, sizeof result) == static_cast<ssize_t>(sizeof result)) {
      t.rc = result[0];
      t.prompts = static_cast<std::size_t>(result[1]);
    }
  }
  t.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - start);
  if (t.rc == -1) ::kill(pid, SIGKILL);
  ::close(out[0]);
  ::waitpid(pid, nullptr, 0);
  return t;
}

inline std::int64_t unix_now() { return totp::SystemClock().now(); }

// ---------------------------------------------------------------------------------------------
// The real stack.

class PamStackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the module trusts only root-owned files: run as root";
    files_ = std::make_unique<TestFiles>(0);
    files_->write_config();
    confdir_ = files_->root() + "/pam.d";
    ASSERT_EQ(::mkdir(confdir_.c_str(), 0755), 0);
    write_service(kService, "");
  }

  // `auth required <module> config=<test config> nodelay <args>`, after `before` lines.
  void write_service(const std::string& name, const std::string& args,
                     const std::string& before = "") {
    std::string text = before + "auth required " + kModule + " config=" + files_->config_path() +
                       " nodelay " + args + "\n";
    ASSERT_TRUE(write_file(confdir_ + "/" + name, text, 0644, 0, 0));
  }

  LoginSpec spec(std::vector<std::string> answers = {}, const std::string& user = kUser) const {
    LoginSpec s;
    s.confdir = confdir_;
    s.user = user;
    s.answers = std::move(answers);
    return s;
  }

  int login(const LoginSpec& s, Conversation& conv) { return pam_login(s, conv); }
  int login(const LoginSpec& s) {
    Conversation conv;
    return pam_login(s, conv);
  }

  std::unique_ptr<TestFiles> files_;
  std::string confdir_;
};

}  // namespace pbx::pam::testing

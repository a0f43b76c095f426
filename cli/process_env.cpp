// The real environment of the pbx-mfa process: terminal, ids, host name, libpam.
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <syslog.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cli.hpp"
#include "helpdesk.hpp"

#ifndef PBX_PAM_CONFDIR_ENV
#define PBX_PAM_CONFDIR_ENV 0
#endif

namespace pbx::cli {
namespace {

constexpr bool kPamConfdirEnv = PBX_PAM_CONFDIR_ENV != 0;

std::optional<totp::SecretString> read_line_no_echo(std::string_view prompt) {
  std::cerr << prompt << std::flush;
  bool tty = isatty(STDIN_FILENO) == 1;
  termios old{};
  if (tty && tcgetattr(STDIN_FILENO, &old) == 0) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  } else {
    tty = false;
  }
  totp::SecretString line;
  bool got = static_cast<bool>(read_line(std::cin, line));
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::cerr << "\n";
  }
  if (!got) return std::nullopt;
  if (!line.empty() && line.view().back() == '\r') line.pop_back();
  return line;
}

struct PasswordConv {
  const totp::SecretString* password;
};

int answer_password(int n, const pam_message** msg, pam_response** resp, void* data) {
  auto* conv = static_cast<PasswordConv*>(data);
  auto* r =
      static_cast<pam_response*>(std::calloc(static_cast<std::size_t>(n), sizeof(pam_response)));
  if (r == nullptr) return PAM_BUF_ERR;
  for (int i = 0; i < n; ++i) {
    if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF) {
      r[i].resp = strdup(conv->password->str().c_str());
    } else if (msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
      r[i].resp = strdup("");  // the user is already known; nothing else to answer
    } else {
      if (msg[i]->msg != nullptr) std::cerr << msg[i]->msg << "\n";
    }
  }
  *resp = r;
  return PAM_SUCCESS;
}

bool check_password_pam(const std::string& user, const totp::SecretString& password) {
  PasswordConv data{&password};
  pam_conv conv{answer_password, &data};
  pam_handle_t* pamh = nullptr;
  // PBX_MFA_PAM_CONFDIR: another directory of PAM service files (scripts/demo's sandbox, a
  // tree that is built but not installed). Only a build made with PBX_PAM_CONFDIR_ENV honours
  // it (cli/CMakeLists.txt): in an installed pbx-mfa it would let anything running as a user
  // answer the password check with a pam_permit stack (review M3). secure_getenv ignores it in
  // a set-uid or set-capability process all the same.
  const char* confdir = kPamConfdirEnv ? secure_getenv("PBX_MFA_PAM_CONFDIR") : nullptr;
  int started = confdir != nullptr && confdir[0] != '\0'
                    ? pam_start_confdir("pbx-mfa", user.c_str(), &conv, confdir, &pamh)
                    : pam_start("pbx-mfa", user.c_str(), &conv, &pamh);
  if (started != PAM_SUCCESS) return false;
  int rc = pam_authenticate(pamh, PAM_SILENT);
  if (rc == PAM_SUCCESS) rc = pam_acct_mgmt(pamh, PAM_SILENT);
  pam_end(pamh, rc);
  return rc == PAM_SUCCESS;
}

std::string name_of(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[16384];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) return pw.pw_name;
  return std::to_string(uid);
}

std::int64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Runs a helper with an empty stdin, stderr discarded, a clean environment and a deadline.
std::optional<ProgramResult> run_program_real(const std::vector<std::string>& argv) {
  constexpr int kDeadlineMs = 3000;
  constexpr std::size_t kMaxOutput = std::size_t{64} * 1024;
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') return std::nullopt;
  if (access(argv[0].c_str(), X_OK) != 0) return std::nullopt;
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return std::nullopt;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char env_lang[] = "LC_ALL=C";
  char* envp[] = {env_path, env_lang, nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    return std::nullopt;
  }
  ProgramResult result;
  bool timed_out = false;
  const std::int64_t deadline = monotonic_ms() + kDeadlineMs;
  char buf[4096];
  for (;;) {
    std::int64_t left = deadline - monotonic_ms();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{out_pipe[0], POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = ready == 0;
      break;
    }
    ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (result.out.size() < kMaxOutput) result.out.append(buf, static_cast<std::size_t>(n));
  }
  close(out_pipe[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return std::nullopt;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace

Env process_env() {
  static const totp::SystemClock kClock;
  Env env;
  env.in = &std::cin;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.out_is_tty = isatty(STDOUT_FILENO) == 1;
  env.uid = getuid();
  env.euid = geteuid();
  env.secure_exec = getauxval(AT_SECURE) != 0;
  env.invoking_user = name_of(env.uid);
  // Set by sudo; trusted only to restrict root (helpdesk.hpp). One that does not parse is kept
  // as "invalid", which refuses rather than acting as full root.
  auto sudo_uid = parse_sudo_uid(secure_getenv("SUDO_UID"));
  if (sudo_uid) {
    env.sudo_uid = *sudo_uid;
  } else {
    env.sudo_uid_invalid = true;
  }
  if (const char* sudo_user = secure_getenv("SUDO_USER"); sudo_user != nullptr) {
    env.sudo_user.assign(sudo_user, strnlen(sudo_user, 256));
  }
  env.clock = &kClock;
  env.read_secret = read_line_no_echo;
  env.check_password = check_password_pam;
  env.run_program = run_program_real;
  env.audit = [](std::string_view line) {
    // The same facility as the module's lines, so one grep of the auth log tells the story.
    openlog("pbx-mfa", LOG_PID, LOG_AUTHPRIV);
    syslog(LOG_AUTHPRIV | LOG_NOTICE, "%.*s", static_cast<int>(line.size()), line.data());
    closelog();
  };
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) == 0) env.host_name = host;
  return env;
}

}  // namespace pbx::cli

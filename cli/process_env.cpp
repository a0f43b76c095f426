// The real environment of the pbx-mfa process: terminal, ids, host name, libpam.
#include <pwd.h>
#include <security/pam_appl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cli.hpp"

namespace pbx::cli {
namespace {

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
  bool got = static_cast<bool>(std::getline(std::cin, line.mut()));
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::cerr << "\n";
  }
  if (!got) return std::nullopt;
  if (!line.str().empty() && line.str().back() == '\r') line.mut().pop_back();
  return line;
}

struct PasswordConv {
  const totp::SecretString* password;
};

int answer_password(int n, const pam_message** msg, pam_response** resp, void* data) {
  auto* conv = static_cast<PasswordConv*>(data);
  auto* r = static_cast<pam_response*>(std::calloc(static_cast<std::size_t>(n), sizeof(pam_response)));
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
  if (pam_start("pbx-mfa", user.c_str(), &conv, &pamh) != PAM_SUCCESS) return false;
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

}  // namespace

Env process_env() {
  static const totp::SystemClock clock;
  Env env;
  env.in = &std::cin;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.out_is_tty = isatty(STDOUT_FILENO) == 1;
  env.uid = getuid();
  env.euid = geteuid();
  env.invoking_user = name_of(env.uid);
  env.clock = &clock;
  env.read_secret = read_line_no_echo;
  env.check_password = check_password_pam;
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) == 0) env.host_name = host;
  return env;
}

}  // namespace pbx::cli

#include "libpam_context.hpp"

#include <security/pam_ext.h>
#include <syslog.h>

#include <cstdlib>
#include <cstring>

namespace pbx::pam {

std::optional<std::string> LibpamContext::user() {
  const char* name = nullptr;
  if (pam_get_user(pamh_, &name, nullptr) != PAM_SUCCESS || name == nullptr) return std::nullopt;
  return std::string(name);
}

std::string LibpamContext::string_item(int item) {
  const void* value = nullptr;
  if (pam_get_item(pamh_, item, &value) != PAM_SUCCESS || value == nullptr) return {};
  return static_cast<const char*>(value);
}

std::string LibpamContext::service() { return string_item(PAM_SERVICE); }
std::string LibpamContext::rhost() { return string_item(PAM_RHOST); }

std::optional<totp::SecretString> LibpamContext::prompt(std::string_view text, bool echo) {
  // With enroll_display=text a prompt holds the key and the URI, or the recovery codes: the
  // copy is wiped too.
  totp::SecretString t{std::string(text)};
  char* response = nullptr;
  int rc = pam_prompt(pamh_, echo ? PAM_PROMPT_ECHO_ON : PAM_PROMPT_ECHO_OFF, &response, "%s",
                      t.c_str());
  if (rc != PAM_SUCCESS) {
    if (response != nullptr) {
      totp::wipe(response, std::strlen(response));
      std::free(response);
    }
    return std::nullopt;
  }
  totp::SecretString out(response != nullptr ? std::string(response) : std::string());
  if (response != nullptr) {
    totp::wipe(response, std::strlen(response));
    std::free(response);
  }
  return out;
}

bool LibpamContext::message(std::string_view text, bool error) {
  // Enrollment messages hold the key and recovery codes: the copy is wiped too.
  totp::SecretString t{std::string(text)};
  char* response = nullptr;
  int rc =
      pam_prompt(pamh_, error ? PAM_ERROR_MSG : PAM_TEXT_INFO, &response, "%s", t.str().c_str());
  std::free(response);
  return rc == PAM_SUCCESS;
}

std::optional<totp::SecretString> LibpamContext::authtok() {
  const void* value = nullptr;
  if (pam_get_item(pamh_, PAM_AUTHTOK, &value) != PAM_SUCCESS || value == nullptr) {
    return std::nullopt;
  }
  return totp::SecretString(std::string(static_cast<const char*>(value)));
}

bool LibpamContext::set_authtok(std::string_view value) {
  totp::SecretString v{std::string(value)};
  return pam_set_item(pamh_, PAM_AUTHTOK, v.str().c_str()) == PAM_SUCCESS;
}

void LibpamContext::log(LogLevel level, std::string_view line) {
  int prio = LOG_NOTICE;
  switch (level) {
    case LogLevel::kDebug:
      prio = LOG_DEBUG;
      break;
    case LogLevel::kInfo:
      prio = LOG_INFO;
      break;
    case LogLevel::kNotice:
      prio = LOG_NOTICE;
      break;
    case LogLevel::kWarning:
      prio = LOG_WARNING;
      break;
    case LogLevel::kError:
      prio = LOG_ERR;
      break;
  }
  std::string l(line);
  pam_syslog(pamh_, prio, "%s", l.c_str());
}

void LibpamContext::fail_delay(unsigned microseconds) { pam_fail_delay(pamh_, microseconds); }

}  // namespace pbx::pam

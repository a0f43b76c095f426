// PamContext: what the authentication flow needs from PAM, so unit tests can drive it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "pbx/totp/secret.hpp"

namespace pbx::pam {

enum class LogLevel { kDebug, kInfo, kNotice, kWarning, kError };

class PamContext {
 public:
  virtual ~PamContext() = default;
  // The user being authenticated; nullopt when PAM cannot say (a conversation failure).
  virtual std::optional<std::string> user() = 0;
  virtual std::string service() = 0;
  virtual std::string rhost() = 0;  // empty for a local login
  // Asks the user; nullopt when the conversation failed.
  virtual std::optional<totp::SecretString> prompt(std::string_view text, bool echo) = 0;
  // Shows a line (info or error style); false when the conversation failed.
  virtual bool message(std::string_view text, bool error) = 0;
  // PAM_AUTHTOK as left by an earlier module (empty optional when unset).
  virtual std::optional<totp::SecretString> authtok() = 0;
  virtual bool set_authtok(std::string_view value) = 0;
  virtual void log(LogLevel level, std::string_view line) = 0;
  virtual void fail_delay(unsigned microseconds) = 0;
};

}  // namespace pbx::pam

// LibpamContext: PamContext over a real pam_handle_t.
#pragma once

#include <security/pam_modules.h>

#include "pam_context.hpp"

namespace pbx::pam {

class LibpamContext final : public PamContext {
 public:
  explicit LibpamContext(pam_handle_t* pamh) : pamh_(pamh) {}
  std::optional<std::string> user() override;
  std::string service() override;
  std::string rhost() override;
  std::optional<totp::SecretString> prompt(std::string_view text, bool echo) override;
  bool message(std::string_view text, bool error) override;
  std::optional<totp::SecretString> authtok() override;
  bool set_authtok(std::string_view value) override;
  void log(LogLevel level, std::string_view line) override;
  void fail_delay(unsigned microseconds) override;

 private:
  std::string string_item(int item);
  pam_handle_t* pamh_;
};

}  // namespace pbx::pam

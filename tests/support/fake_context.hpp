// FakeContext: a scripted PamContext that records everything the module flow asks and says.
#pragma once

#include <deque>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pam_context.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::pam::testing {

class FakeContext final : public PamContext {
 public:
  struct Prompt {
    std::string text;
    bool echo = false;
  };
  struct Message {
    std::string text;
    bool error = false;
  };
  struct LogLine {
    LogLevel level = LogLevel::kInfo;
    std::string text;
  };
  enum class Fault { kNone, kBadAlloc, kRuntimeError };

  // --- The script ---
  std::optional<std::string> user_name = "daemon";  // nullopt: PAM cannot say
  std::string service_name = "pbx-test";
  std::string remote_host;  // PAM_RHOST; empty for a local login
  // One entry per prompt, in order; nullopt (or running out) makes that prompt fail.
  std::deque<std::optional<std::string>> answers;
  std::optional<std::string> authtok_item;  // PAM_AUTHTOK as an earlier module left it
  // When set, answers every prompt instead of `answers` (it sees what was shown so far):
  // nullopt makes the prompt fail.
  std::function<std::optional<std::string>(const FakeContext&, std::string_view prompt)> responder;
  bool messages_fail = false;
  Fault prompt_fault = Fault::kNone;

  // --- What happened ---
  std::vector<Prompt> prompts;
  std::vector<Message> messages;
  std::vector<LogLine> logs;
  std::vector<std::string> authtok_sets;
  std::vector<unsigned> fail_delays;

  void answer(std::string text) { answers.emplace_back(std::move(text)); }

  // Every log line, one per line, for searching.
  std::string all_logs() const {
    std::string out;
    for (const auto& l : logs) out += l.text + "\n";
    return out;
  }
  std::string all_messages() const {
    std::string out;
    for (const auto& m : messages) out += m.text + "\n";
    return out;
  }

  std::optional<std::string> user() override { return user_name; }
  std::string service() override { return service_name; }
  std::string rhost() override { return remote_host; }

  std::optional<totp::SecretString> prompt(std::string_view text, bool echo) override {
    prompts.push_back(Prompt{std::string(text), echo});
    if (prompt_fault == Fault::kBadAlloc) throw std::bad_alloc();
    if (prompt_fault == Fault::kRuntimeError) throw std::runtime_error("scripted failure");
    if (responder) {
      auto reply = responder(*this, text);
      if (!reply) return std::nullopt;
      return totp::SecretString(std::move(*reply));
    }
    if (answers.empty()) return std::nullopt;
    std::optional<std::string> next = std::move(answers.front());
    answers.pop_front();
    if (!next) return std::nullopt;
    return totp::SecretString(std::move(*next));
  }

  bool message(std::string_view text, bool error) override {
    messages.push_back(Message{std::string(text), error});
    return !messages_fail;
  }

  std::optional<totp::SecretString> authtok() override {
    if (!authtok_item) return std::nullopt;
    return totp::SecretString(*authtok_item);
  }

  bool set_authtok(std::string_view value) override {
    authtok_sets.emplace_back(value);
    authtok_item = std::string(value);
    return true;
  }

  void log(LogLevel level, std::string_view line) override {
    logs.push_back(LogLine{level, std::string(line)});
  }

  void fail_delay(unsigned microseconds) override { fail_delays.push_back(microseconds); }
};

}  // namespace pbx::pam::testing

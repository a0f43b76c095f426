// Test helpers for enroll and recovery-codes: the CLI run in-process against a temp-dir store,
// scripted answers to the prompts, and a terminal drawing turned into an image for zbarimg.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "oathtool.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/otpauth_uri.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "qr_image.hpp"
#include "store_fixture.hpp"

namespace pbx::cli::testing {

using pbx::test::kDarkTheme;
using pbx::test::kLightTheme;
using pbx::test::Theme;
using pbx::test::zbar_decode;
using totp::testing::TempDir;
using totp::testing::verdict_of;

// What a scripted prompt answers: a literal line, the right code for the secret printed so
// far, a code that is wrong for every step of the window, or end of input.
struct Answer {
  enum Kind { kText, kRightCode, kWrongCode, kEof } kind = kText;
  std::string text;
};
inline Answer text(std::string s) { return Answer{Answer::kText, std::move(s)}; }
inline Answer right_code() { return Answer{Answer::kRightCode, {}}; }
inline Answer wrong_code() { return Answer{Answer::kWrongCode, {}}; }
inline Answer eof() { return Answer{Answer::kEof, {}}; }

inline constexpr const char* kRightPassword = "correct horse";
// Start of a 30 s step (and of a 60 s one), so nothing in a test crosses a step boundary.
inline constexpr std::int64_t kNow = 1800000000 - 1800000000 % 60;

// The first otpauth:// URI in `text` (up to white space), or "".
inline std::string find_uri(std::string_view text) {
  std::size_t at = text.find("otpauth://");
  if (at == std::string_view::npos) return {};
  std::size_t end = text.find_first_of(" \n\r\t", at);
  return std::string(text.substr(at, end == std::string_view::npos ? text.npos : end - at));
}

// A code the app would show at `t` for `uri`, `offset` steps away.
inline std::string code_for(const std::string& uri, std::int64_t t, int offset = 0) {
  auto params = totp::parse_otpauth_uri(uri);
  if (!params) throw std::runtime_error("unparsable URI in the output: " + uri);
  auto step = totp::time_step(t, params->period) + offset;
  auto code = totp::hotp(params->secret, params->algorithm, static_cast<std::uint64_t>(step),
                         params->digits);
  if (!code) throw std::runtime_error("hotp failed");
  return totp::format_code(*code, params->digits);
}

// "kxmr-tpqz-wbnf": three groups of four lower-case letters.
inline bool is_recovery_code(std::string_view s) {
  if (s.size() != 14) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 4 || i == 9;
    if (dash ? s[i] != '-' : (s[i] < 'a' || s[i] > 'z')) return false;
  }
  return true;
}

// The recovery codes in a text listing: lines of two spaces and a code.
inline std::vector<std::string> listed_codes(std::string_view text) {
  std::vector<std::string> codes;
  for (const auto& line : pbx::test::split_lines(text)) {
    if (line.size() == 16 && line.starts_with("  ") && is_recovery_code(line.substr(2))) {
      codes.push_back(line.substr(2));
    }
  }
  return codes;
}

// The "Secret: " line's text (as printed, with its spaces), or "".
inline std::string secret_line(std::string_view text) {
  std::size_t at = text.find("Secret: ");
  if (at == std::string_view::npos) return {};
  at += 8;
  return std::string(text.substr(at, text.find('\n', at) - at));
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
    config_path_ = tmp_ / "pbx-mfa.conf";
    secrets_dir_ = tmp_ / "secrets";
    state_dir_ = tmp_ / "state";
    ASSERT_EQ(::mkdir(secrets_dir_.c_str(), 0700), 0);
    // Small but not trivial: each code costs a production-strength scrypt hash.
    write_config("recovery_codes = 2\n");

    env_.in = &in_;
    env_.out = &out_;
    env_.err = &err_;
    env_.out_is_tty = false;
    env_.uid = 0;
    env_.euid = 0;
    env_.invoking_user = "root";
    env_.clock = &clock_;
    env_.trusted_uid = 0;
    env_.host_name = "pbx-test-host";
    env_.read_secret = [this](std::string_view prompt) -> std::optional<totp::SecretString> {
      prompts_.emplace_back(prompt);
      err_ << prompt;  // where the real one writes it, so the order shows in err()
      if (answers_.empty()) return std::nullopt;
      Answer a = answers_.front();
      answers_.pop_front();
      std::string uri = find_uri(out_.str() + err_.str());
      switch (a.kind) {
        case Answer::kText:
          return totp::SecretString(a.text);
        case Answer::kRightCode:
          return totp::SecretString(code_for(uri, clock_.now()));
        case Answer::kWrongCode: {
          // Right format, but no step of a window of 3 on either side has it.
          for (int candidate = 0;; ++candidate) {
            auto params = totp::parse_otpauth_uri(uri);
            std::string c = totp::format_code(static_cast<std::uint32_t>(candidate),
                                              params ? params->digits : 6);
            bool used = false;
            for (int d = -3; d <= 3; ++d) used = used || c == code_for(uri, clock_.now(), d);
            if (!used) return totp::SecretString(c);
          }
        }
        case Answer::kEof:
          return std::nullopt;
      }
      return std::nullopt;
    };
    env_.audit = [this](std::string_view line) { audit_.emplace_back(line); };
    env_.check_password = [this](const std::string& user, const totp::SecretString& password) {
      password_users_.push_back(user);
      return password.str() == kRightPassword;
    };
  }

  // Replaces the config file: the store lines, then `extra`.
  void write_config(const std::string& extra) {
    std::string text =
        "secret_path = " + secrets_dir_ + "/%u\nstate_dir = " + state_dir_ + "\n" + extra;
    ASSERT_TRUE(totp::testing::write_file(config_path_, text, 0644));
  }

  // Runs `pbx-mfa --config CONF args...`; output accumulates in out_/err_ until clear().
  int run_cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--config", config_path_});
    return run(args, env_);
  }
  void clear() {
    out_.str("");
    err_.str("");
    prompts_.clear();
    password_users_.clear();
  }
  std::string out() const { return out_.str(); }
  std::string err() const { return err_.str(); }

  // Acts as a non-root user enrolling themselves.
  void become(const std::string& name) {
    auto u = totp::lookup_user(name);
    ASSERT_TRUE(u.ok()) << name;
    env_.uid = u->uid;
    env_.euid = u->uid;
    env_.invoking_user = name;
  }

  totp::Config config() {
    auto c = totp::load_config(config_path_, true, 0);
    if (!c) throw std::runtime_error(c.error().message);
    return *c;
  }
  std::unique_ptr<totp::Store> store() {
    auto s = totp::open_store(config());
    if (!s) throw std::runtime_error(s.error().message);
    return std::move(s.value());
  }
  totp::User user(const std::string& name) {
    auto u = totp::lookup_user(name);
    if (!u) throw std::runtime_error("no user " + name);
    return *u;
  }
  totp::Result<totp::Enrollment> load(const std::string& name) { return store()->load(user(name)); }
  std::string secret_file(const std::string& name) const { return secrets_dir_ + "/" + name; }

  TempDir tmp_;
  std::string config_path_;
  std::string secrets_dir_;
  std::string state_dir_;
  totp::FixedClock clock_{kNow};
  std::istringstream in_;
  std::ostringstream out_;
  std::ostringstream err_;
  Env env_;
  std::deque<Answer> answers_;
  std::vector<std::string> prompts_;
  std::vector<std::string> password_users_;
  std::vector<std::string> audit_;  // syslog lines of administrative acts
};

// The QR drawing inside enroll's output.
inline std::string drawing_in(const std::string& out) {
  const std::string start = "Scan this QR code with an authenticator app:\n\n";
  std::size_t a = out.find(start);
  std::size_t b = out.find("\nSecret:");
  if (a == std::string::npos || b == std::string::npos || b < a) return {};
  a += start.size();
  return out.substr(a, b - a);
}

// Display width of each line (code points, escape codes left out).
inline std::vector<int> line_widths(std::string_view drawing) {
  std::vector<int> widths;
  for (const auto& line : pbx::test::split_lines(drawing)) {
    int w = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      if (c == 0x1b) {
        i = line.find('m', i);
        if (i == std::string::npos) break;
      } else if ((c & 0xC0) != 0x80) {
        ++w;
      }
    }
    widths.push_back(w);
  }
  return widths;
}

}  // namespace pbx::cli::testing

// FlowTest: the module flow driven through FakeContext with a private config, store and clock.
#pragma once

#include <gtest/gtest.h>
#include <security/pam_appl.h>
#include <unistd.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "authenticate.hpp"
#include "fake_context.hpp"
#include "pam_test_support.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/temp_code.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"

namespace pbx::pam::testing {

// Real accounts: the flow resolves users with getpwnam. kUser's primary group is kUserGroup.
inline constexpr const char* kUser = "daemon";
inline constexpr const char* kUserGroup = "daemon";
inline constexpr const char* kOtherUser = "bin";
inline constexpr const char* kNoSuchUser = "pbx-no-such-user";
// The start of a 30-second step, so "+29 s" stays in the same step.
inline constexpr std::int64_t kT0 = 56666667LL * 30;
inline constexpr const char* kDefaultPrompt = "Security code: ";
inline constexpr unsigned kFailDelayUs = 2'000'000;

inline std::string outcome_of(const FakeContext& ctx) {
  if (ctx.logs.size() != 1) return "<" + std::to_string(ctx.logs.size()) + " log lines>";
  const std::string& line = ctx.logs[0].text;
  std::size_t at = line.find(" outcome=");
  if (at == std::string::npos) return "<no outcome in '" + line + "'>";
  std::size_t start = at + 9;
  std::size_t end = line.find(' ', start);
  return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

class FlowTest : public ::testing::Test {
 protected:
  FlowTest() : files_(::geteuid()) {
    files_.write_config();
    opts_.trusted_uid = ::geteuid();
  }

  // Runs the flow with config=<test config> and `args`; remembers what was typed and logged.
  int run(FakeContext& ctx, const std::vector<std::string>& args = {}) {
    std::vector<std::string> all{"config=" + files_.config_path()};
    all.insert(all.end(), args.begin(), args.end());
    for (const auto& a : ctx.answers) {
      if (a) never_log(*a);
    }
    if (ctx.authtok_item) never_log(*ctx.authtok_item);
    int rc = authenticate(ctx, all, opts_, clock_);
    for (const auto& l : ctx.logs) logs_ += l.text + "\n";
    return rc;
  }

  // A context for kUser with these answers to the prompts.
  static FakeContext with_answers(std::initializer_list<std::string> answers,
                                  const char* user = kUser) {
    FakeContext ctx;
    ctx.user_name = user;
    for (const auto& a : answers) ctx.answer(a);
    return ctx;
  }

  Enrolled enroll(const std::string& user = kUser, int recovery_count = 2) {
    Enrolled e = files_.enroll(user, recovery_count);
    never_log(secret_base32(e.enrollment));
    return e;
  }

  // Issues a temp code for `user` as pbx-mfa temp-code would (issued at `issued_at`, by
  // "pbxhelp"); returns the code, which no log line may hold.
  std::string issue_temp_code(const std::string& user = kUser, int uses = 1,
                              std::int64_t ttl = 3600, std::optional<std::int64_t> issued_at = {}) {
    auto issued = totp::make_temp_code(issued_at.value_or(clock_.now()), ttl, uses, "pbxhelp",
                                       "test", kCheapKdf);
    if (!issued) throw std::runtime_error(issued.error().message);
    totp::Config config = files_.store_config();
    auto store = totp::open_store(config);
    auto account = totp::lookup_user(user);
    if (!store || !account) throw std::runtime_error("cannot open the store for a temp code");
    totp::Verifier verifier(config, **store, clock_);
    if (auto st = verifier.set_temp_code(*account, issued->record); !st) {
      throw std::runtime_error(st.error().message);
    }
    std::string code(issued->code.view());
    never_log(code);
    return code;
  }

  // Strings no log line may ever hold (codes, passwords, secrets). Short ones would match by
  // accident, and no real code is shorter than six characters.
  void never_log(const std::string& s) {
    if (s.size() >= 6) secrets_.push_back(s);
  }

  void TearDown() override {
    for (const auto& s : secrets_) {
      EXPECT_EQ(logs_.find(s), std::string::npos) << "a log line holds '" << s << "':\n" << logs_;
    }
  }

  TestFiles files_;
  AuthOptions opts_;
  totp::FixedClock clock_{kT0};
  std::vector<std::string> secrets_;
  std::string logs_;
};

}  // namespace pbx::pam::testing

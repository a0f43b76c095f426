// pbx-mfa temp-code: the JSON shape, the bounds of --ttl and --uses (bad ones write nothing),
// --revoke, a new code replacing the old, what status says, the audit line without the code,
// and the warning for a user whom the code cannot log in.
#include "pbx/totp/temp_code.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "helpdesk_fixture.hpp"

namespace pbx::cli::testing {
namespace {

class TempCodeTest : public HelpdeskTest {
 protected:
  nlohmann::json issue(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"temp-code", "--user", "daemon", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto j = json_of(args, 0);
    if (j.contains("code")) codes_.push_back(j["code"].get<std::string>());
    return j;
  }
  void TearDown() override {
    for (const auto& line : audit_) {
      for (const auto& code : codes_) {
        EXPECT_EQ(line.find(code), std::string::npos) << "audit line holds the code: " << line;
      }
    }
  }
  std::vector<std::string> codes_;
};

TEST_F(TempCodeTest, JsonHasExactlyUserCodeExpiresUses) {
  auto j = issue();
  ASSERT_TRUE(j.is_object()) << out();
  EXPECT_EQ(j.size(), 4u) << j.dump();
  EXPECT_EQ(j["user"], "daemon");
  EXPECT_TRUE(totp::looks_like_temp_code(j["code"].get<std::string>())) << j.dump();
  EXPECT_EQ(j["expires"], iso8601(kNow + 3600));  // default --ttl 1h
  EXPECT_EQ(j["uses"], 1);                        // default --uses 1
  EXPECT_EQ(out().find('\n'), out().size() - 1);  // one line
}

TEST_F(TempCodeTest, TtlAndUsesAreHonoured) {
  struct Case {
    std::string ttl;
    std::int64_t seconds;
  };
  for (const Case& c : {Case{"90", 90}, Case{"90s", 90}, Case{"30m", 1800}, Case{"2h", 7200},
                        Case{"1h30m", 5400}, Case{"72h", 72 * 3600}, Case{"3d", 72 * 3600}}) {
    auto j = issue({"--ttl", c.ttl, "--uses", "10"});
    EXPECT_EQ(j["expires"], iso8601(kNow + c.seconds)) << c.ttl;
    EXPECT_EQ(j["uses"], 10) << c.ttl;
  }
}

TEST_F(TempCodeTest, BadTtlOrUsesExitsTwoAndWritesNothing) {
  const auto before = snapshot();
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{{"--ttl", "73h"},
                                             {"--ttl", "4d"},
                                             {"--ttl", "259201"},
                                             {"--ttl", "0"},
                                             {"--ttl", "0s"},
                                             {"--ttl", "-1h"},
                                             {"--ttl", "garbage"},
                                             {"--ttl", "1h30"},
                                             {"--ttl", "1w"},
                                             {"--ttl", ""},
                                             {"--ttl", "99999999999999999999"},
                                             {"--uses", "11"},
                                             {"--uses", "0"},
                                             {"--uses", "-1"},
                                             {"--uses", "x"},
                                             {"--reason", std::string("tab\there")},
                                             {"--reason", std::string(201, 'r')},
                                             {"--revoke", "--ttl", "1h"},
                                             {"--revoke", "--uses", "2"}}) {
    std::vector<std::string> args = {"temp-code", "--user", "daemon", "--json"};
    args.insert(args.end(), bad.begin(), bad.end());
    clear();
    EXPECT_EQ(run_cli(args), 2) << bad[0] << " " << bad.back() << ": " << err();
    EXPECT_EQ(out(), "") << bad.back();
    EXPECT_NE(err(), "") << bad.back();
  }
  EXPECT_EQ(snapshot(), before);
  EXPECT_TRUE(audit_.empty());
  // A user who does not exist, and a missing --user: usage errors too.
  EXPECT_EQ(json_of({"temp-code", "--user", "pbxtest-nosuchuser"}, 2), nullptr);
  EXPECT_EQ(json_of({"temp-code"}, 2), nullptr);
  EXPECT_EQ(snapshot(), before);
}

TEST_F(TempCodeTest, TheCodeLogsTheUserInAndANewOneReplacesIt) {
  enroll("daemon");
  auto first = issue({"--uses", "2"})["code"].get<std::string>();
  EXPECT_EQ(verify("daemon", first), totp::Verdict::kTempCodeAccepted);
  auto second = issue()["code"].get<std::string>();
  EXPECT_NE(first, second);
  EXPECT_EQ(verify("daemon", first), totp::Verdict::kRejected);  // replaced
  EXPECT_EQ(verify("daemon", second), totp::Verdict::kTempCodeAccepted);
  EXPECT_EQ(verify("daemon", second), totp::Verdict::kRejected);  // used up
}

TEST_F(TempCodeTest, RevokeEndsIt) {
  enroll("daemon");
  auto code = issue()["code"].get<std::string>();
  EXPECT_FALSE(status_json("daemon")["temp_code_expires"].is_null());
  audit_.clear();
  clear();
  EXPECT_EQ(run_cli({"temp-code", "--user", "daemon", "--revoke", "--reason", "phone found"}), 0)
      << err();
  EXPECT_EQ(out(), "daemon: temporary access code revoked; it no longer works\n");
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_EQ(audit_[0],
            "by=root temp-code revoke user=daemon reason=phone\\x20found (the active code no "
            "longer works)");
  EXPECT_EQ(verify("daemon", code), totp::Verdict::kRejected);
  EXPECT_TRUE(status_json("daemon")["temp_code_expires"].is_null());
  auto j = json_of({"temp-code", "--user", "daemon", "--revoke", "--json"}, 0);
  EXPECT_EQ(j, (nlohmann::json{{"user", "daemon"}, {"revoked", false}}));
}

TEST_F(TempCodeTest, TextShowsTheCodeOnceWithExpiryUsesAndTheHint) {
  clear();
  ASSERT_EQ(run_cli({"temp-code", "--user", "daemon", "--ttl", "30m", "--uses", "3"}), 0) << err();
  const std::string text = out();
  std::string code;
  for (const auto& line : pbx::test::split_lines(text)) {
    if (line.starts_with("  ") && totp::looks_like_temp_code(line.substr(2))) code = line.substr(2);
  }
  ASSERT_FALSE(code.empty()) << text;
  codes_.push_back(code);
  EXPECT_NE(text.find("Valid until " + iso8601(kNow + 1800).get<std::string>() +
                      " (30min), for 3 logins."),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("daemon types it at the Security code: prompt"), std::string::npos) << text;
}

TEST_F(TempCodeTest, AuditLineNamesUserTtlUsesReasonButNotTheCode) {
  issue({"--ttl", "2h", "--uses", "2", "--reason", "ticket #42 \"lost\" phone=x"});
  ASSERT_EQ(audit_.size(), 1u);
  EXPECT_EQ(audit_[0], "by=root temp-code user=daemon ttl=7200 uses=2 expires=" +
                           iso8601(kNow + 7200).get<std::string>() +
                           " reason=ticket\\x20#42\\x20\\x22lost\\x22\\x20phone\\x3dx (not "
                           "enrolled)");
  issue();
  ASSERT_EQ(audit_.size(), 2u);
  EXPECT_NE(audit_[1].find("(replacing an active one)"), std::string::npos) << audit_[1];
}

TEST_F(TempCodeTest, StatusShowsTheActiveCodeUntilItExpires) {
  enroll("daemon");
  issue({"--ttl", "10m", "--uses", "2"});
  EXPECT_EQ(status_json("daemon")["temp_code_expires"], iso8601(kNow + 600));
  clear();
  ASSERT_EQ(run_cli({"status", "--user", "daemon"}), 0);
  EXPECT_NE(out().find("\n  temp code: active until " + iso8601(kNow + 600).get<std::string>() +
                       ", 2 uses left, issued by root\n"),
            std::string::npos)
      << out();
  clock_.advance(600);
  EXPECT_TRUE(status_json("daemon")["temp_code_expires"].is_null());
}

TEST_F(TempCodeTest, NotEnrolledUserIsToldWhatTheCodeCanDo) {
  issue();
  EXPECT_NE(err().find("warning: daemon is not enrolled and enroll_at_login = no"),
            std::string::npos)
      << err();
  write_config("recovery_codes = 2\nenroll_at_login = yes\n");
  issue();
  EXPECT_NE(err().find("enroll_at_login = yes enrolls at the next login without any code"),
            std::string::npos)
      << err();
  write_config("recovery_codes = 2\nenroll_at_login = with-code\n");
  issue();
  EXPECT_NE(err().find("with enroll_at_login = with-code this code lets daemon enroll"),
            std::string::npos)
      << err();
  EXPECT_EQ(err().find("warning"), std::string::npos) << err();
  // Still one JSON object on stdout.
  EXPECT_TRUE(nlohmann::json::parse(out()).is_object());
  enroll("daemon");
  issue();
  EXPECT_EQ(err(), "");
}

TEST_F(TempCodeTest, NeedsRoot) {
  become("daemon");
  const auto before = snapshot();
  EXPECT_EQ(json_of({"temp-code", "--user", "daemon"}, 4), nullptr);
  EXPECT_EQ(json_of({"temp-code", "--user", "daemon", "--revoke"}, 4), nullptr);
  EXPECT_EQ(snapshot(), before);
}

}  // namespace
}  // namespace pbx::cli::testing

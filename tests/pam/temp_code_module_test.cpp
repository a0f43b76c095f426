// Temporary access codes (pbx-mfa temp-code), the per-user required mark (pbx-mfa require) and
// enroll_at_login = with-code through the built module and the real libpam stack. The suite runs
// on the files store, and once more on the throwaway PostgreSQL cluster as "pg." (ctest sets
// PBX_TEST_STORE=postgresql): the temp code and the mark live in the state, which is a file on
// one and a row shared by the fleet on the other.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pam_stack.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/temp_code.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"
#include "pg_test_db.hpp"

namespace pbx::pam::testing {
namespace {

constexpr const char* kCodePrompt = "Security code: ";
constexpr const char* kAppPrompt = "Code from the app: ";

// The base32 key the setup message shows ("\nKey: ABCD EFGH ...\n"), spaces removed.
std::string shown_key(const Conversation& conv) {
  for (const auto& m : conv.messages) {
    std::size_t at = m.text.find("\nKey: ");
    if (at == std::string::npos) continue;
    std::size_t end = m.text.find('\n', at + 6);
    std::string key;
    for (char c : m.text.substr(at + 6, end - at - 6)) {
      if (c != ' ') key.push_back(c);
    }
    return key;
  }
  return {};
}

std::string app_code_now(const std::string& base32_key) {
  auto key = totp::base32_decode(base32_key);
  if (!key) return "000000";
  auto code = totp::hotp(*key, totp::Algorithm::kSha1,
                         static_cast<std::uint64_t>(totp::time_step(unix_now(), 30)), 6);
  return code ? totp::format_code(*code, 6) : "000000";
}

std::string all_messages(const Conversation& conv) {
  std::string out;
  for (const auto& m : conv.messages) out += m.text + "\n";
  return out;
}

class TempCodeStackTest : public PamStackTest {
 protected:
  void SetUp() override {
    PamStackTest::SetUp();
    if (IsSkipped()) return;
    config_ = files_->store_config();
    if (totp::testing::pg_store_wanted()) {
      schema_ = std::make_unique<totp::testing::PgSchema>();
      const std::string key = files_->root() + "/fleet.key";
      totp::testing::use_pg_store(config_, *schema_, key);
      store_lines_ = "store = postgresql\npg_conninfo = " + schema_->conninfo() +
                     "\npg_timeout_ms = 5000\npg_plugin = " + totp::testing::pg_plugin_path() +
                     "\nfleet_key = " + key + "\n";
      auto init = totp::db_init(config_);
      ASSERT_TRUE(init.ok()) << init.error().message;
    }
    configure("");
  }

  // The test config: the store's lines, then `extra`.
  void configure(const std::string& extra) {
    files_->write_config(store_lines_ + extra);
    config_from_file_ = extra;
  }

  totp::User account(const std::string& user) const {
    auto u = totp::lookup_user(user);
    if (!u) throw std::runtime_error("no account " + user);
    return *u;
  }

  // A fresh enrollment of `user` in the store under test (no recovery codes).
  Enrolled enroll(const std::string& user = kUser) {
    Enrolled out;
    totp::Enrollment& e = out.enrollment;
    auto id = totp::new_enrollment_id();
    auto secret = totp::generate_secret(totp::Algorithm::kSha1);
    if (!id || !secret) throw std::runtime_error("cannot make an enrollment");
    e.id = *id;
    dev0(e).secret = std::move(secret.value());
    e.created = 1700000000;
    auto store = totp::open_store(config_);
    if (!store) throw std::runtime_error(store.error().message);
    if (auto st = (*store)->save(account(user), e, /*overwrite=*/true); !st) {
      throw std::runtime_error(st.error().message);
    }
    return out;
  }

  // What `pbx-mfa temp-code --user U --uses N --ttl T` stores, issued at `issued_at` (in the
  // past for a code that has expired by now).
  std::string issue(const std::string& user = kUser, int uses = 1, std::int64_t ttl = 3600,
                    std::optional<std::int64_t> issued_at = {}) {
    auto issued = totp::make_temp_code(issued_at.value_or(unix_now()), ttl, uses, "pbxhelp",
                                       "lost phone", kCheapKdf);
    if (!issued) throw std::runtime_error(issued.error().message);
    with_verifier(
        [&](totp::Verifier& v) { return v.set_temp_code(account(user), issued->record); });
    return std::string(issued->code.view());
  }

  void mark_required(const std::string& user) {
    totp::RequiredMark mark;
    mark.on = true;
    mark.by = "pbxhelp";
    mark.at = unix_now();
    with_verifier([&](totp::Verifier& v) { return v.set_required(account(user), mark); });
  }

  totp::UserStatus status(const std::string& user = kUser) {
    auto store = totp::open_store(config_);
    if (!store) throw std::runtime_error(store.error().message);
    totp::SystemClock clock;
    totp::Verifier v(config_, **store, clock);
    auto st = v.status(account(user));
    if (!st) throw std::runtime_error(st.error().message);
    return *st;
  }

  bool enrolled(const std::string& user = kUser) { return status(user).enrolled; }

  template <class F>
  void with_verifier(F f) {
    auto store = totp::open_store(config_);
    if (!store) throw std::runtime_error(store.error().message);
    totp::SystemClock clock;
    totp::Verifier v(config_, **store, clock);
    if (auto st = f(v); !st) throw std::runtime_error(st.error().message);
  }

  totp::Config config_;
  std::unique_ptr<totp::testing::PgSchema> schema_;
  std::string store_lines_;
  std::string config_from_file_;
};

// ---------------------------------------------------------------------------------------------
// The lost phone: an enrolled user types a temp code at the code prompt.

TEST_F(TempCodeStackTest, AValidTempCodeLetsAnEnrolledUserInAndSaysHowToReEnroll) {
  enroll();
  std::string code = issue();
  Conversation conv;
  EXPECT_EQ(login(spec({code}), conv), PAM_SUCCESS);
  ASSERT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(conv.prompts[0].text, kCodePrompt);
  const std::string shown = all_messages(conv);
  EXPECT_NE(shown.find("Temporary access code accepted (0 uses left)"), std::string::npos) << shown;
  EXPECT_NE(shown.find("pbx-mfa enroll --force"), std::string::npos) << shown;
  EXPECT_FALSE(status().temp_code_active);
}

TEST_F(TempCodeStackTest, ATempCodeIsAcceptedAsTypedInCapitalsAndWithoutDashes) {
  enroll();
  std::string code = issue();
  std::string typed;
  for (char c : code) {
    if (c != '-') typed.push_back(static_cast<char>(c - 'a' + 'A'));
  }
  EXPECT_EQ(login(spec({typed})), PAM_SUCCESS);
}

TEST_F(TempCodeStackTest, AnExpiredTempCodeIsRefusedAndCounted) {
  enroll();
  // Issued two hours ago for one hour: expired an hour ago, its use still unspent.
  std::string code = issue(kUser, 1, 3600, unix_now() - 7200);
  Conversation conv;
  EXPECT_EQ(login(spec({code}), conv), PAM_AUTH_ERR);
  EXPECT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(all_messages(conv).find("Temporary access code"), std::string::npos);
  EXPECT_EQ(status().state.failures, 1);
}

TEST_F(TempCodeStackTest, ATempCodeIsRefusedOnceItsUsesAreSpent) {
  enroll();
  std::string code = issue(kUser, 2);
  Conversation first;
  EXPECT_EQ(login(spec({code}), first), PAM_SUCCESS);
  EXPECT_NE(all_messages(first).find("(1 use left)"), std::string::npos) << all_messages(first);
  EXPECT_EQ(login(spec({code})), PAM_SUCCESS);
  EXPECT_EQ(login(spec({code})), PAM_AUTH_ERR);
  EXPECT_FALSE(status().temp_code_active);
}

TEST_F(TempCodeStackTest, ATempCodeOfAnotherUserIsRefusedAndStaysUnspent) {
  Enrolled mine = enroll(kUser);
  enroll(kOtherUser);
  std::string theirs = issue(kOtherUser);
  EXPECT_EQ(login(spec({theirs}, kUser)), PAM_AUTH_ERR);
  EXPECT_EQ(status(kUser).state.failures, 1);
  EXPECT_TRUE(status(kOtherUser).temp_code_active);
  EXPECT_EQ(login(spec({theirs}, kOtherUser)), PAM_SUCCESS);
  EXPECT_EQ(login(spec({mine.code_at(unix_now())}, kUser)), PAM_SUCCESS);
}

TEST_F(TempCodeStackTest, WrongTempCodesCountTowardTheLockoutAndThenTheRightOneWaits) {
  configure("max_failures = 2\nlockout = 60\n");
  enroll();
  std::string code = issue();
  EXPECT_EQ(login(spec({"abcd-efgh-jkmn-pqrs"})), PAM_AUTH_ERR);
  Conversation second;
  EXPECT_EQ(login(spec({"qrst-uvwx-yzab-cdef"}), second), PAM_AUTH_ERR);
  EXPECT_NE(all_messages(second).find("Try again in"), std::string::npos);
  Conversation locked;
  EXPECT_EQ(login(spec({code}), locked), PAM_AUTH_ERR);
  EXPECT_TRUE(locked.prompts.empty());
  totp::UserStatus st = status();
  EXPECT_EQ(st.state.failures, 2);
  EXPECT_TRUE(st.locked);
  EXPECT_TRUE(st.temp_code_active);  // a locked-out login spends nothing
}

TEST_F(TempCodeStackTest, EightSimultaneousLoginsWithAOneUseTempCodeLetExactlyOneIn) {
  constexpr int kRounds = 8;
  constexpr int kLogins = 8;
  // The seven losers are wrong answers: no lockout may decide the race instead of the code.
  configure("max_failures = 100\n");
  enroll();
  for (int round = 0; round < kRounds; ++round) {
    std::string code = issue();  // replaces the last round's, spent or not
    std::vector<LoginSpec> specs(kLogins, spec({code}));
    std::vector<int> codes = simultaneous_logins(specs, std::chrono::seconds(60));
    int successes = 0;
    for (int rc : codes) {
      if (rc == PAM_SUCCESS) {
        ++successes;
      } else {
        EXPECT_EQ(rc, PAM_AUTH_ERR) << "round " << round;
      }
    }
    ASSERT_EQ(successes, 1) << "round " << round;
    totp::UserStatus st = status();
    EXPECT_FALSE(st.temp_code_active) << "round " << round;
    with_verifier([&](totp::Verifier& v) { return v.unlock(account(kUser)); });
  }
}

// Issue 16: an enrollment of two devices through the real stack, on files and (as pg.) in the
// database, where one sealed row holds both secrets: a code of each device logs in, and a
// device's code is refused once used.
TEST_F(TempCodeStackTest, ACodeOfEachOfTwoDevicesLogsIn) {
  Enrolled e = enroll();
  totp::Device phone2;
  phone2.name = "phone2";
  phone2.secret = totp::generate_secret(totp::Algorithm::kSha256).value();
  phone2.algorithm = totp::Algorithm::kSha256;
  phone2.created = e.enrollment.created;
  e.enrollment.devices.push_back(std::move(phone2));
  auto store = totp::open_store(config_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_TRUE((*store)->save(account(kUser), e.enrollment, /*overwrite=*/true).ok());
  const std::int64_t t = unix_now();
  EXPECT_EQ(login(spec({e.code_at(t, 1)})), PAM_SUCCESS);
  EXPECT_EQ(login(spec({e.code_at(t, 0)})), PAM_SUCCESS);
  EXPECT_EQ(login(spec({e.code_at(t, 1)})), PAM_AUTH_ERR);  // used
  EXPECT_EQ(status().devices.size(), 2U);
}

// ---------------------------------------------------------------------------------------------
// pbx-mfa require: the per-user mark.

TEST_F(TempCodeStackTest, AMarkedUserIsRequiredWhenTheConfigRequiresNobody) {
  configure("require = none\n");
  EXPECT_EQ(login(spec({"123456"})), kStackIgnored);  // not enrolled, not required
  mark_required(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec({"123456"}), conv), PAM_AUTH_ERR);  // required, not enrolled
  EXPECT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(login(spec({"123456"}, kOtherUser)), kStackIgnored);  // only the marked user
}

TEST_F(TempCodeStackTest, AnExemptGroupWinsOverTheMark) {
  configure("require = none\nexempt_groups = " + std::string(kUserGroup) + "\n");
  mark_required(kUser);
  Conversation conv;
  EXPECT_EQ(login(spec({}), conv), kStackIgnored);
  EXPECT_TRUE(conv.prompts.empty());
}

// ---------------------------------------------------------------------------------------------
// enroll_at_login = with-code.

class WithCodeStackTest : public TempCodeStackTest {
 protected:
  void SetUp() override {
    TempCodeStackTest::SetUp();
    if (IsSkipped()) return;
    configure("enroll_at_login = with-code\nrecovery_codes = 0\nissuer = pbx-test\n");
  }

  // A user who types `first` at the code prompt, then reads the key off the screen.
  static void answer_like_a_user(Conversation& conv, const std::string& first) {
    conv.responder = [first](const Conversation& c,
                             const std::string& prompt) -> std::optional<std::string> {
      if (prompt == kCodePrompt) return first;
      if (prompt == kAppPrompt) return app_code_now(shown_key(c));
      return std::string();
    };
  }
};

TEST_F(WithCodeStackTest, WithoutATempCodeNoQrCodeIsShownAndTheLoginFails) {
  Conversation conv;
  answer_like_a_user(conv, "123456");
  EXPECT_EQ(login(spec(), conv), PAM_AUTH_ERR);
  ASSERT_EQ(conv.prompts.size(), 1u);
  EXPECT_EQ(conv.prompts[0].text, kCodePrompt);  // as for an enrolled user
  EXPECT_EQ(conv.prompts[0].style, PAM_PROMPT_ECHO_OFF);
  EXPECT_TRUE(conv.messages.empty()) << all_messages(conv);
  EXPECT_FALSE(enrolled());
}

TEST_F(WithCodeStackTest, ATempCodeLeadsToTheQrCodeAndTheEnrollment) {
  std::string code = issue();
  Conversation conv;
  answer_like_a_user(conv, code);
  ASSERT_EQ(login(spec(), conv), PAM_SUCCESS) << all_messages(conv);
  ASSERT_GE(conv.prompts.size(), 2u);
  EXPECT_EQ(conv.prompts[0].text, kCodePrompt);
  EXPECT_EQ(conv.prompts[1].text, kAppPrompt);
  EXPECT_FALSE(shown_key(conv).empty());
  EXPECT_NE(all_messages(conv).find("Temporary access code accepted"), std::string::npos);
  totp::UserStatus st = status();
  EXPECT_TRUE(st.enrolled);
  EXPECT_FALSE(st.temp_code_active);  // spent
  // The next login asks for the app's code as usual, and the temp code is no key any more.
  EXPECT_EQ(login(spec({code})), PAM_AUTH_ERR);
}

TEST_F(WithCodeStackTest, AWrongTempCodeIsCountedAndShowsNoQrCode) {
  configure("enroll_at_login = with-code\nrecovery_codes = 0\nmax_failures = 2\nlockout = 60\n");
  std::string code = issue();
  Conversation wrong;
  answer_like_a_user(wrong, "abcd-efgh-jkmn-pqrs");
  EXPECT_EQ(login(spec(), wrong), PAM_AUTH_ERR);
  EXPECT_TRUE(shown_key(wrong).empty());
  EXPECT_EQ(status().state.failures, 1);
  Conversation again;
  answer_like_a_user(again, "qrst-uvwx-yzab-cdef");
  EXPECT_EQ(login(spec(), again), PAM_AUTH_ERR);
  Conversation locked;
  answer_like_a_user(locked, code);
  EXPECT_EQ(login(spec(), locked), PAM_AUTH_ERR);
  EXPECT_TRUE(locked.prompts.empty());
  EXPECT_NE(all_messages(locked).find("Try again in"), std::string::npos);
  EXPECT_FALSE(enrolled());
  EXPECT_TRUE(status().temp_code_active);
}

TEST_F(WithCodeStackTest, AnotherUsersTempCodeEnrollsNobody) {
  std::string theirs = issue(kOtherUser);
  Conversation conv;
  answer_like_a_user(conv, theirs);
  EXPECT_EQ(login(spec(), conv), PAM_AUTH_ERR);
  EXPECT_TRUE(shown_key(conv).empty());
  EXPECT_FALSE(enrolled(kUser));
  EXPECT_TRUE(status(kOtherUser).temp_code_active);
}

// The lost phone without a recovery code: pbx-mfa reset, then a temp code, and the user sets up
// the new phone at the next login; the required mark stays on the account throughout.
TEST_F(WithCodeStackTest, AfterAResetATempCodeReEnrollsAndTheMarkStays) {
  configure("require = none\nenroll_at_login = with-code\nrecovery_codes = 0\n");
  mark_required(kUser);
  Enrolled old = enroll();
  with_verifier([&](totp::Verifier& v) { return v.reset(account(kUser)); });
  EXPECT_FALSE(enrolled());
  std::string code = issue();
  Conversation conv;
  answer_like_a_user(conv, code);
  ASSERT_EQ(login(spec(), conv), PAM_SUCCESS) << all_messages(conv);
  totp::UserStatus st = status();
  EXPECT_TRUE(st.enrolled);
  EXPECT_TRUE(st.state.required.on);
  EXPECT_EQ(login(spec({old.code_at(unix_now())})), PAM_AUTH_ERR);  // the old phone is out
}

TEST_F(WithCodeStackTest, AnAbandonedEnrollmentHasSpentTheTempCode) {
  std::string code = issue();
  Conversation conv;
  conv.responder = [code](const Conversation&,
                          const std::string& prompt) -> std::optional<std::string> {
    if (prompt == kCodePrompt) return code;
    return std::nullopt;  // the connection drops at the app's code
  };
  EXPECT_EQ(login(spec(), conv), PAM_CONV_ERR);
  EXPECT_FALSE(shown_key(conv).empty());
  EXPECT_FALSE(enrolled());
  EXPECT_FALSE(status().temp_code_active);
}

}  // namespace
}  // namespace pbx::pam::testing

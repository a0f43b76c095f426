// enroll_at_login through the module flow: what the user is shown and asked, what is saved
// (and what is not) for every way the conversation can go.
#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flow_fixture.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/verifier.hpp"

namespace pbx::pam::testing {
namespace {

constexpr const char* kCodePrompt = "Code from the app: ";
constexpr const char* kStoredPrompt = "Press Enter once you have stored them: ";

// The key the enrollment message shows ("Key: ABCD EFGH ..."), decoded; empty when none.
totp::SecretBytes shown_key(const FakeContext& ctx) {
  for (const auto& m : ctx.messages) {
    std::size_t at = m.text.find("\nKey: ");
    if (at == std::string::npos) continue;
    std::size_t end = m.text.find('\n', at + 6);
    auto key = totp::base32_decode(m.text.substr(at + 6, end - at - 6));
    if (key) return std::move(key.value());
  }
  return {};
}

std::string code_for(const totp::SecretBytes& key, std::int64_t unix_time, int shift = 0) {
  auto code = totp::hotp(key, totp::Algorithm::kSha1,
                         static_cast<std::uint64_t>(totp::time_step(unix_time, 30) + shift), 6);
  if (!code) throw std::runtime_error("hotp failed");
  return totp::format_code(*code, 6);
}

// The recovery codes the enrollment showed, in order.
std::vector<std::string> shown_recovery_codes(const FakeContext& ctx) {
  std::vector<std::string> out;
  for (const auto& m : ctx.messages) {
    if (m.text.find("Recovery codes") == std::string::npos) continue;
    std::size_t pos = 0;
    while ((pos = m.text.find("\n  ", pos)) != std::string::npos) {
      pos += 3;
      out.push_back(m.text.substr(pos, m.text.find('\n', pos) - pos));
    }
  }
  return out;
}

class EnrollFlowTest : public FlowTest {
 protected:
  EnrollFlowTest() {
    files_.write_config("enroll_at_login = yes\nrecovery_codes = 2\nissuer = pbx-test\n");
    opts_.recovery_kdf = kCheapKdf;
  }

  // A user who answers every code prompt with `codes(key)` in turn and acknowledges the
  // recovery codes; records the key it saw so the test can forbid it in the logs.
  FakeContext user_answering(
      std::vector<std::function<std::string(const totp::SecretBytes&)>> codes) {
    FakeContext ctx;
    ctx.user_name = kUser;
    auto queue = std::make_shared<std::deque<std::function<std::string(const totp::SecretBytes&)>>>(
        codes.begin(), codes.end());
    ctx.responder = [queue](const FakeContext& c,
                            std::string_view prompt) -> std::optional<std::string> {
      if (prompt == kStoredPrompt) return std::string();
      if (queue->empty()) return std::nullopt;
      auto next = std::move(queue->front());
      queue->pop_front();
      return next(shown_key(c));
    };
    return ctx;
  }

  std::function<std::string(const totp::SecretBytes&)> right() {
    return [this](const totp::SecretBytes& key) {
      std::string c = code_for(key, clock_.now());
      never_log(c);
      return c;
    };
  }
  static std::function<std::string(const totp::SecretBytes&)> wrong() {
    return [](const totp::SecretBytes& key) {
      // A code of no step near now: shift far outside the window.
      return code_for(key, kT0, 40);
    };
  }

  bool secret_saved() const {
    struct stat st {};
    return ::lstat(files_.secret_file(kUser).c_str(), &st) == 0;
  }
  bool state_saved() const {
    struct stat st {};
    return ::lstat(files_.state_file(kUser).c_str(), &st) == 0;
  }
  totp::Enrollment stored() const {
    auto store = totp::open_store(files_.store_config());
    auto account = totp::lookup_user(kUser);
    if (!store || !account) throw std::runtime_error("cannot open the store");
    auto e = (*store)->load(*account);
    if (!e) throw std::runtime_error("load: " + e.error().message);
    return std::move(e.value());
  }
};

TEST_F(EnrollFlowTest, ShowsQrKeyAndUriThenAsksForACodeAndSavesWhenItIsRight) {
  FakeContext ctx = user_answering({right()});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "enrolled-at-login");
  ASSERT_EQ(ctx.logs.size(), 1u);
  EXPECT_EQ(ctx.logs[0].level, LogLevel::kNotice);  // a new second factor is worth noticing

  // Sequence: the setup text, the code prompt, the recovery codes, their acknowledgement.
  ASSERT_EQ(ctx.prompts.size(), 2u);
  EXPECT_EQ(ctx.prompts[0].text, kCodePrompt);
  EXPECT_FALSE(ctx.prompts[0].echo);
  EXPECT_EQ(ctx.prompts[1].text, kStoredPrompt);
  ASSERT_GE(ctx.messages.size(), 2u);
  const std::string& setup = ctx.messages[0].text;
  EXPECT_FALSE(ctx.messages[0].error);
  EXPECT_NE(setup.find("daemon"), std::string::npos) << setup;
  EXPECT_NE(setup.find("\xE2\x96\x80"), std::string::npos) << "no half blocks:\n" << setup;
  EXPECT_EQ(setup.find('\x1b'), std::string::npos) << "escape sequences would be stripped by ssh";
  EXPECT_NE(setup.find("otpauth://totp/pbx-test:daemon?secret="), std::string::npos) << setup;
  totp::SecretBytes key = shown_key(ctx);
  ASSERT_EQ(key.size(), 20u);
  never_log(totp::base32_encode(key, false));

  // Saved: the shown key, owner and mode; the confirmation code is used up.
  ASSERT_TRUE(secret_saved());
  totp::Enrollment e = stored();
  EXPECT_TRUE(dev0(e).secret == key);
  struct stat st {};
  ASSERT_EQ(::stat(files_.secret_file(kUser).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, files_.trusted_uid());

  auto codes = shown_recovery_codes(ctx);
  ASSERT_EQ(codes.size(), 2u);
  for (const auto& c : codes) never_log(c);

  // The next login asks for a code: the confirmation code is a replay, the next step's works.
  FakeContext again = with_answers({code_for(key, clock_.now())});
  EXPECT_EQ(run(again), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(again), "replayed-code");
  ASSERT_EQ(again.prompts.size(), 1u);
  EXPECT_EQ(again.prompts[0].text, kDefaultPrompt);
  clock_.advance(30);
  FakeContext next = with_answers({code_for(key, clock_.now())});
  EXPECT_EQ(run(next), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(next), "accepted");
  // A shown recovery code works once.
  FakeContext recovery = with_answers({codes[1]});
  EXPECT_EQ(run(recovery), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(recovery), "recovery-code-accepted");
}

TEST_F(EnrollFlowTest, WrongCodeThriceIsDeniedAndSavesNothing) {
  FakeContext ctx = user_answering({wrong(), wrong(), wrong()});
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "enrollment-failed");
  EXPECT_EQ(ctx.prompts.size(), 3u);
  for (const auto& p : ctx.prompts) EXPECT_EQ(p.text, kCodePrompt);
  ASSERT_EQ(ctx.messages.size(), 4u);  // setup, two "wrong code", the final refusal
  EXPECT_TRUE(ctx.messages[1].error);
  EXPECT_NE(ctx.messages[1].text.find("2 tries left"), std::string::npos);
  EXPECT_NE(ctx.messages[2].text.find("1 try left"), std::string::npos);
  EXPECT_NE(ctx.messages[3].text.find("nothing was saved"), std::string::npos);
  EXPECT_FALSE(secret_saved());
  EXPECT_FALSE(state_saved());

  // The next login starts afresh with a different key.
  totp::SecretBytes first = shown_key(ctx);
  FakeContext next = user_answering({right()});
  EXPECT_EQ(run(next), PAM_SUCCESS);
  EXPECT_FALSE(shown_key(next) == first);
}

TEST_F(EnrollFlowTest, RightCodeOnTheThirdTryIsEnough) {
  FakeContext ctx = user_answering({wrong(), wrong(), right()});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(ctx.prompts.size(), 4u);  // three codes and the acknowledgement
  EXPECT_TRUE(secret_saved());
}

TEST_F(EnrollFlowTest, CodeOfTheNeighbouringStepIsAccepted) {
  FakeContext ctx = user_answering(
      {[this](const totp::SecretBytes& key) { return code_for(key, clock_.now(), -1); }});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
}

TEST_F(EnrollFlowTest, DroppedConnectionAtAnyPointSavesNothing) {
  // At the code prompt.
  FakeContext at_code = user_answering({});
  EXPECT_EQ(run(at_code), PAM_CONV_ERR);
  EXPECT_FALSE(secret_saved());
  // At the acknowledgement of the recovery codes, after a right code.
  FakeContext at_ack = user_answering({right()});
  auto inner = at_ack.responder;
  at_ack.responder = [inner](const FakeContext& c,
                             std::string_view p) -> std::optional<std::string> {
    if (p == kStoredPrompt) return std::nullopt;
    return inner(c, p);
  };
  EXPECT_EQ(run(at_ack), PAM_CONV_ERR);
  EXPECT_FALSE(secret_saved());
  EXPECT_FALSE(state_saved());
  // When the setup text cannot be shown.
  FakeContext no_messages = user_answering({right()});
  no_messages.messages_fail = true;
  EXPECT_EQ(run(no_messages), PAM_CONV_ERR);
  EXPECT_TRUE(no_messages.prompts.empty());
  EXPECT_FALSE(secret_saved());
}

TEST_F(EnrollFlowTest, AnEnrollmentMadeMeanwhileWinsAndThisOneIsDenied) {
  Enrolled* other = nullptr;
  std::optional<Enrolled> made;
  FakeContext ctx = user_answering({[&](const totp::SecretBytes& key) {
    made = files_.enroll(kUser);  // a parallel login (or root) finished first
    other = &*made;
    return code_for(key, clock_.now());
  }});
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "enrollment-failed");
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(dev0(stored()).secret == dev0(other->enrollment).secret);
  EXPECT_NE(ctx.all_messages().find("meanwhile"), std::string::npos) << ctx.all_messages();
}

// Something that is not an enrollment took the secret's place (here: garbage; a symlink in a
// home the same): the user is not told another login enrolled them, and it is logged.
TEST_F(EnrollFlowTest, AnythingElseAtTheSecretPathMeanwhileIsAFailureToSave) {
  FakeContext ctx = user_answering({[&](const totp::SecretBytes& key) {
    must(write_file(files_.secret_file(kUser), "not a secret file\n", 0600), "garbage");
    return code_for(key, clock_.now());
  }});
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(outcome_of(ctx), "unavailable");
  EXPECT_NE(ctx.all_messages().find("could not be saved"), std::string::npos);
  EXPECT_EQ(ctx.all_messages().find("meanwhile"), std::string::npos);
  EXPECT_NE(logs_.find("enrollment not saved"), std::string::npos) << logs_;
  EXPECT_EQ(read_all(files_.secret_file(kUser)), "not a secret file\n");
}

TEST_F(EnrollFlowTest, NoRecoveryCodesMeansNoAcknowledgementPrompt) {
  files_.write_config("enroll_at_login = yes\nrecovery_codes = 0\n");
  FakeContext ctx = user_answering({right()});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_TRUE(stored().recovery.hashes.empty());
}

TEST_F(EnrollFlowTest, ConfigSettingsShapeTheNewSecret) {
  files_.write_config(
      "enroll_at_login = yes\nrecovery_codes = 1\nalgorithm = SHA256\n"
      "digits = 8\nperiod = 60\n");
  FakeContext ctx;
  ctx.user_name = kUser;
  ctx.responder = [this](const FakeContext& c, std::string_view p) -> std::optional<std::string> {
    if (p == kStoredPrompt) return std::string();
    totp::SecretBytes key = shown_key(c);
    auto code = totp::hotp(key, totp::Algorithm::kSha256,
                           static_cast<std::uint64_t>(totp::time_step(clock_.now(), 60)), 8);
    return totp::format_code(*code, 8);
  };
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  totp::Enrollment e = stored();
  EXPECT_EQ(dev0(e).algorithm, totp::Algorithm::kSha256);
  EXPECT_EQ(dev0(e).digits, 8);
  EXPECT_EQ(dev0(e).period, 60);
  EXPECT_EQ(dev0(e).secret.size(), 32u);
  EXPECT_NE(ctx.messages[0].text.find("algorithm=SHA256&digits=8&period=60"), std::string::npos);
}

// forward_pass runs this module before the password module: enrolling there would let anyone
// who knows a user name bind their phone to the account. Asked like any unenrolled user.
TEST_F(EnrollFlowTest, ForwardPassNeverEnrollsBecauseThePasswordIsNotCheckedYet) {
  FakeContext ctx;
  ctx.user_name = kUser;
  ctx.answer("hunter22123456");
  never_log("hunter22123456");
  EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled");
  EXPECT_TRUE(ctx.messages.empty());
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(ctx.prompts[0].text, "Password and security code: ");
  EXPECT_EQ(ctx.authtok_sets, std::vector<std::string>{"hunter22"});
  EXPECT_FALSE(secret_saved());
}

// Enrolled, logged in, then the secret file vanished (deleted through a file share, or a home
// not mounted yet): a fresh enrollment with only the password would hand over the account.
TEST_F(EnrollFlowTest, MissingSecretOfAnEnrollmentThatWasUsedIsNotReEnrolled) {
  FakeContext first = user_answering({right()});
  ASSERT_EQ(run(first), PAM_SUCCESS);
  ASSERT_EQ(::unlink(files_.secret_file(kUser).c_str()), 0);
  FakeContext again = user_answering({right()});
  EXPECT_EQ(run(again), PAM_AUTHINFO_UNAVAIL);
  EXPECT_TRUE(again.prompts.empty());
  ASSERT_EQ(again.messages.size(), 1u);
  EXPECT_NE(again.messages[0].text.find("key is missing"), std::string::npos);
  EXPECT_FALSE(secret_saved());
  // An administrator's reset removes the state too: the next login enrolls afresh.
  auto store = totp::open_store(files_.store_config());
  ASSERT_TRUE(store.ok());
  auto account = totp::lookup_user(kUser);
  ASSERT_TRUE(account.ok());
  ASSERT_TRUE((*store)->remove(*account).ok());
  FakeContext after_reset = user_answering({right()});
  EXPECT_EQ(run(after_reset), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(after_reset), "enrolled-at-login");
}

// A home made only at session start (pam_mkhomedir) does not exist during auth: say so before
// a key is shown, instead of after the user scanned and confirmed it.
TEST_F(EnrollFlowTest, NoDirectoryForTheSecretIsRefusedBeforeAKeyIsShown) {
  files_.write_config("enroll_at_login = yes\nsecret_path = " + files_.root() +
                      "/no-such-dir/%u\n");
  FakeContext ctx = user_answering({right()});
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  EXPECT_TRUE(ctx.prompts.empty());
  ASSERT_EQ(ctx.messages.size(), 1u);
  EXPECT_EQ(ctx.messages[0].text.find("Key:"), std::string::npos);
  EXPECT_NE(logs_.find("does not exist"), std::string::npos) << logs_;
}

TEST_F(EnrollFlowTest, PasswordInAuthtokIsNeverTakenForTheConfirmationCode) {
  FakeContext ctx = user_answering({right()});
  ctx.authtok_item = "123456";
  EXPECT_EQ(run(ctx, {"try_first_pass"}), PAM_SUCCESS);
  EXPECT_EQ(ctx.prompts[0].text, kCodePrompt);
}

TEST_F(EnrollFlowTest, UsersWhoAreNotRequiredAreNotEnrolled) {
  files_.write_config("enroll_at_login = yes\nrequire = group:pbx-no-such-group\n");
  FakeContext ctx = user_answering({right()});
  EXPECT_EQ(run(ctx), PAM_IGNORE);
  EXPECT_TRUE(ctx.prompts.empty());
  EXPECT_TRUE(ctx.messages.empty());
  EXPECT_FALSE(secret_saved());
}

TEST_F(EnrollFlowTest, RequiredByGroupMembershipIsEnrolled) {
  files_.write_config(std::string("enroll_at_login = yes\nrecovery_codes = 0\nrequire = group:") +
                      kUserGroup + "\n");
  FakeContext ctx = user_answering({right()});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "enrolled-at-login");
}

TEST_F(EnrollFlowTest, SilentLoginCannotShowTheCodeSoItIsDeniedAsNotEnrolled) {
  opts_.silent = true;
  FakeContext ctx = user_answering({right()});
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled");
  EXPECT_TRUE(ctx.messages.empty());
  EXPECT_FALSE(secret_saved());
}

TEST_F(EnrollFlowTest, UnknownUsersAreAskedLikeOthersAndNeverEnrolled) {
  FakeContext ctx = with_answers({"123456"}, kNoSuchUser);
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(ctx), "unknown-user");
  EXPECT_EQ(ctx.prompts.size(), 1u);
  EXPECT_TRUE(ctx.messages.empty());
}

TEST_F(EnrollFlowTest, EnrolledUsersAreNotEnrolledAgain) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "accepted");
  EXPECT_TRUE(ctx.messages.empty());
}

TEST_F(EnrollFlowTest, UnsafeStateDirDeniesBeforeShowingAnything) {
  ASSERT_EQ(::chmod(files_.state_dir().c_str(), 0777), 0);
  FakeContext ctx = user_answering({right()});
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  EXPECT_TRUE(ctx.messages.empty());
  EXPECT_FALSE(secret_saved());
}

}  // namespace
}  // namespace pbx::pam::testing

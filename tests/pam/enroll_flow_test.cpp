// enroll_at_login through the module flow: what the user is shown and asked, what is saved
// (and what is not) for every way the conversation can go.
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "flow.hpp"
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

// ---------------------------------------------------------------------------------------------
// enroll_display=text (issue 19): Cockpit's login page. cockpit-session journals every info and
// error message and prints '?' for each byte >= 0x80, so there is no QR drawing, the secrets
// are only in prompts, and everything is ASCII.

constexpr std::string_view kTextCodePromptEnd = "Code from the app: ";
constexpr std::string_view kTextRecoveryStart =
    "Code accepted. Recovery codes (each works once, shown only now):";
constexpr std::string_view kTextRecoveryEnd = "Press Enter to continue: ";
// Café ✓ Ops: a two-byte and a three-byte UTF-8 character.
constexpr const char* kUtf8Issuer = "Caf\xC3\xA9 \xE2\x9C\x93 Ops";

bool ends_with(std::string_view s, std::string_view end) {
  return s.size() >= end.size() && s.substr(s.size() - end.size()) == end;
}

// The text after `label` up to the end of its line in `text`; empty when absent.
std::string line_after(std::string_view text, std::string_view label) {
  std::size_t at = text.find(label);
  if (at == std::string_view::npos) return {};
  at += label.size();
  return std::string(text.substr(at, text.find('\n', at) - at));
}

// The key a text-display code prompt shows ("\nKey: ABCD EFGH ...\n"), decoded.
totp::SecretBytes prompt_key(std::string_view prompt) {
  auto key = totp::base32_decode(line_after(prompt, "\nKey: "));
  if (!key) return {};
  return std::move(key.value());
}

// The recovery codes of a text-display prompt, one per "\n  " line.
std::vector<std::string> prompt_recovery_codes(std::string_view prompt) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = prompt.find("\n  ", pos)) != std::string_view::npos) {
    pos += 3;
    out.emplace_back(prompt.substr(pos, prompt.find('\n', pos) - pos));
  }
  return out;
}

// The first byte of `s` that is not printable ASCII or '\n', as "offset N: 0xHH"; "" if none.
std::string first_non_ascii(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n') || c >= 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", c);
      return "offset " + std::to_string(i) + ": " + hex;
    }
  }
  return {};
}

class TextDisplayFlowTest : public EnrollFlowTest {
 protected:
  TextDisplayFlowTest() {
    files_.write_config(std::string("enroll_at_login = yes\nrecovery_codes = 2\nissuer = ") +
                        kUtf8Issuer + "\n");
  }

  // A Cockpit user: reads the key off the code prompt and types `codes` in turn, then presses
  // Enter at the recovery codes.
  FakeContext cockpit_user(std::vector<std::function<std::string(const totp::SecretBytes&)>> codes,
                           std::string service = "pbx-test") {
    FakeContext ctx;
    ctx.user_name = kUser;
    ctx.service_name = std::move(service);
    auto queue = std::make_shared<std::deque<std::function<std::string(const totp::SecretBytes&)>>>(
        codes.begin(), codes.end());
    ctx.responder = [queue](const FakeContext&,
                            std::string_view prompt) -> std::optional<std::string> {
      if (ends_with(prompt, kTextRecoveryEnd)) return std::string();
      if (queue->empty() || !ends_with(prompt, kTextCodePromptEnd)) return std::nullopt;
      auto next = std::move(queue->front());
      queue->pop_front();
      return next(prompt_key(prompt));
    };
    return ctx;
  }

  // Every message and prompt is printable ASCII (and line ends).
  static void expect_all_ascii(const FakeContext& ctx) {
    for (const auto& m : ctx.messages) {
      EXPECT_EQ(first_non_ascii(m.text), "") << "message: " << m.text;
    }
    for (const auto& p : ctx.prompts) {
      EXPECT_EQ(first_non_ascii(p.text), "") << "prompt: " << p.text;
    }
  }

  // None of `secrets` is in an info or error message (cockpit-session journals them all).
  static void expect_not_in_messages(const FakeContext& ctx,
                                     const std::vector<std::string>& secrets) {
    const std::string all = ctx.all_messages();
    for (const auto& s : secrets) {
      EXPECT_EQ(all.find(s), std::string::npos) << "'" << s << "' in a message:\n" << all;
    }
  }
};

TEST_F(TextDisplayFlowTest, KeyUriAndRecoveryCodesAreOnlyInPromptsAndAllIsAscii) {
  FakeContext ctx = cockpit_user({right()});
  EXPECT_EQ(run(ctx, {"enroll_display=text"}), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "enrolled-at-login");
  expect_all_ascii(ctx);

  // The code prompt: the hint, the account, the key in groups of four, the URI, the question.
  ASSERT_EQ(ctx.prompts.size(), 2u);
  const std::string& ask = ctx.prompts[0].text;
  EXPECT_FALSE(ctx.prompts[0].echo);
  EXPECT_EQ(
      ask.rfind("Add this key to your authenticator app (or open the link on the phone), then type "
                "the code it shows.\n",
                0),
      0u)
      << ask;
  EXPECT_TRUE(ends_with(ask, "\nCode from the app: ")) << ask;
  // The issuer's non-ASCII characters are one '?' each; the URI has them percent-encoded.
  EXPECT_EQ(line_after(ask, "\nAccount: "), "Caf? ? Ops:daemon") << ask;
  const std::string grouped = line_after(ask, "\nKey: ");
  ASSERT_EQ(grouped.size(), 39u) << ask;  // 32 characters in 8 groups of four
  for (std::size_t i = 4; i < grouped.size(); i += 5) EXPECT_EQ(grouped[i], ' ') << grouped;
  const std::string uri = line_after(ask, "\nURI: ");
  EXPECT_EQ(uri.rfind("otpauth://totp/Caf%C3%A9%20%E2%9C%93%20Ops:daemon?secret=", 0), 0u) << uri;
  totp::SecretBytes key = prompt_key(ask);
  ASSERT_EQ(key.size(), 20u);
  const std::string plain_key = totp::base32_encode(key, false);
  never_log(plain_key);
  never_log(grouped);
  never_log(uri);
  EXPECT_NE(uri.find("secret=" + plain_key), std::string::npos) << uri;

  // The recovery codes: one prompt whose answer is ignored, echoed.
  const std::string& recovery = ctx.prompts[1].text;
  EXPECT_TRUE(ctx.prompts[1].echo);
  EXPECT_EQ(recovery.rfind(kTextRecoveryStart, 0), 0u) << recovery;
  EXPECT_TRUE(ends_with(recovery, kTextRecoveryEnd)) << recovery;
  std::vector<std::string> codes = prompt_recovery_codes(recovery);
  ASSERT_EQ(codes.size(), 2u) << recovery;
  for (const auto& c : codes) never_log(c);

  // The messages: what is happening, then the closing line; no secret, no QR drawing.
  ASSERT_EQ(ctx.messages.size(), 2u) << ctx.all_messages();
  EXPECT_NE(ctx.messages[0].text.find("required for daemon"), std::string::npos);
  EXPECT_NE(ctx.messages[1].text.find("is set up for daemon"), std::string::npos);
  std::vector<std::string> secrets{plain_key, grouped, uri, "otpauth", "Key:", "secret="};
  secrets.insert(secrets.end(), codes.begin(), codes.end());
  for (std::size_t i = 0; i + 4 < plain_key.size(); i += 4) {
    secrets.push_back(plain_key.substr(i, 8));  // no part of the key either
  }
  expect_not_in_messages(ctx, secrets);

  // Saved: the key of the prompt; the shown recovery code works once.
  EXPECT_TRUE(dev0(stored()).secret == key);
  clock_.advance(30);
  FakeContext next = with_answers({code_for(key, clock_.now())});
  EXPECT_EQ(run(next), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(next), "accepted");
  FakeContext with_recovery = with_answers({codes[0]});
  EXPECT_EQ(run(with_recovery), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(with_recovery), "recovery-code-accepted");
}

// Each Cockpit prompt replaces the one before: a retry shows the key again; the error message
// in between holds no secret.
TEST_F(TextDisplayFlowTest, ARetryAsksWithTheKeyAgainAndTheErrorHoldsNoSecret) {
  FakeContext ctx = cockpit_user({wrong(), right()});
  EXPECT_EQ(run(ctx, {"enroll_display=text"}), PAM_SUCCESS);
  expect_all_ascii(ctx);
  ASSERT_EQ(ctx.prompts.size(), 3u);
  EXPECT_EQ(ctx.prompts[0].text, ctx.prompts[1].text);
  totp::SecretBytes key = prompt_key(ctx.prompts[1].text);
  ASSERT_EQ(key.size(), 20u);
  const std::string plain_key = totp::base32_encode(key, false);
  never_log(plain_key);
  ASSERT_EQ(ctx.messages.size(), 3u) << ctx.all_messages();
  EXPECT_TRUE(ctx.messages[1].error);
  EXPECT_NE(ctx.messages[1].text.find("Wrong code"), std::string::npos);
  std::vector<std::string> secrets{line_after(ctx.prompts[0].text, "\nKey: "), "otpauth",
                                   plain_key.substr(0, 8)};
  for (const auto& c : prompt_recovery_codes(ctx.prompts[2].text)) secrets.push_back(c);
  expect_not_in_messages(ctx, secrets);
  EXPECT_TRUE(dev0(stored()).secret == key);
}

TEST_F(TextDisplayFlowTest, WithoutRecoveryCodesTheCodePromptIsTheLast) {
  files_.write_config("enroll_at_login = yes\nrecovery_codes = 0\n");
  FakeContext ctx = cockpit_user({right()});
  EXPECT_EQ(run(ctx, {"enroll_display=text"}), PAM_SUCCESS);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_TRUE(ends_with(ctx.prompts[0].text, kTextCodePromptEnd));
  EXPECT_EQ(ctx.all_messages().find("Recovery"), std::string::npos);
}

TEST_F(TextDisplayFlowTest, ADroppedConnectionAtTheRecoveryCodesSavesNothing) {
  FakeContext ctx = cockpit_user({right()});
  auto inner = ctx.responder;
  ctx.responder = [inner](const FakeContext& c, std::string_view p) -> std::optional<std::string> {
    if (ends_with(p, kTextRecoveryEnd)) return std::nullopt;
    return inner(c, p);
  };
  EXPECT_EQ(run(ctx, {"enroll_display=text"}), PAM_CONV_ERR);
  EXPECT_FALSE(secret_saved());
  EXPECT_FALSE(state_saved());
}

// enroll_display=auto (the default): text for the PAM service "cockpit", the QR code for any
// other; an explicit value wins over the service.
struct DisplayCase {
  const char* name;
  const char* service;
  std::vector<std::string> args;
  bool text;
};
void PrintTo(const DisplayCase& c, std::ostream* os) { *os << c.name; }

class DisplayChoiceFlowTest : public TextDisplayFlowTest,
                              public ::testing::WithParamInterface<DisplayCase> {};

TEST_P(DisplayChoiceFlowTest, PicksTextOrTerminal) {
  const DisplayCase& c = GetParam();
  FakeContext ctx;
  ctx.user_name = kUser;
  ctx.service_name = c.service;
  // Answers from wherever the key is: the prompt (text) or the setup message (terminal).
  ctx.responder = [this](const FakeContext& f,
                         std::string_view prompt) -> std::optional<std::string> {
    if (ends_with(prompt, kTextRecoveryEnd) || prompt == kStoredPrompt) return std::string();
    totp::SecretBytes key = prompt == kCodePrompt ? shown_key(f) : prompt_key(prompt);
    std::string code = code_for(key, clock_.now());
    never_log(code);
    return code;
  };
  EXPECT_EQ(run(ctx, c.args), PAM_SUCCESS);
  ASSERT_FALSE(ctx.prompts.empty());
  ASSERT_FALSE(ctx.messages.empty());
  const std::string& setup = ctx.messages[0].text;
  if (c.text) {
    expect_all_ascii(ctx);
    EXPECT_NE(ctx.prompts[0].text.find("\nKey: "), std::string::npos) << ctx.prompts[0].text;
    EXPECT_EQ(setup.find("Key:"), std::string::npos) << setup;
    EXPECT_EQ(ctx.prompts.back().text.rfind(kTextRecoveryStart, 0), 0u);
  } else {
    EXPECT_NE(setup.find("\xE2\x96\x80"), std::string::npos) << "no half blocks:\n" << setup;
    EXPECT_NE(setup.find("\nKey: "), std::string::npos) << setup;
    EXPECT_NE(setup.find("otpauth://totp/Caf%C3%A9"), std::string::npos) << setup;
    EXPECT_EQ(ctx.prompts[0].text, kCodePrompt);
    EXPECT_EQ(ctx.prompts.back().text, kStoredPrompt);
    EXPECT_NE(ctx.all_messages().find("Recovery codes"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Services, DisplayChoiceFlowTest,
    ::testing::Values(
        DisplayCase{"AutoCockpit", "cockpit", {}, true}, DisplayCase{"AutoSshd", "sshd", {}, false},
        DisplayCase{"AutoLogin", "login", {}, false},
        DisplayCase{"AutoCockpitLookAlike", "cockpit-ws", {}, false},
        DisplayCase{"ExplicitAutoCockpit", "cockpit", {"enroll_display=auto"}, true},
        DisplayCase{"TerminalOnCockpit", "cockpit", {"enroll_display=terminal"}, false},
        DisplayCase{"TextOnSshd", "sshd", {"enroll_display=text"}, true},
        DisplayCase{
            "LastOneWins", "sshd", {"enroll_display=text", "enroll_display=terminal"}, false}),
    [](const auto& test_case) { return std::string(test_case.param.name); });

// Text display filters every message and prompt of the login, not only the enrollment's: here
// a custom prompt of an enrolled user.
TEST_F(TextDisplayFlowTest, EveryPromptOfATextLoginIsAscii) {
  Enrolled e = enroll();
  const std::string prompt = "C\xC3\xB3\x64igo \xE2\x9C\x93: ";  // Código ✓:
  FakeContext text = with_answers({e.code_at(kT0)});
  text.service_name = "cockpit";
  EXPECT_EQ(run(text, {"prompt=" + prompt}), PAM_SUCCESS);
  ASSERT_EQ(text.prompts.size(), 1u);
  EXPECT_EQ(text.prompts[0].text, "C?digo ?: ");
  // Elsewhere the prompt is shown as given.
  Enrolled again = enroll();
  FakeContext terminal = with_answers({again.code_at(kT0)});
  terminal.service_name = "sshd";
  EXPECT_EQ(run(terminal, {"prompt=" + prompt}), PAM_SUCCESS);
  ASSERT_EQ(terminal.prompts.size(), 1u);
  EXPECT_EQ(terminal.prompts[0].text, prompt);
}

TEST(AsciiTextTest, KeepsPrintableAsciiAndLineEndsAndMakesEveryOtherCharacterOneQuestionMark) {
  EXPECT_EQ(ascii_text("Key: ABCD EFGH\nURI: otpauth://totp/a%20b?x=1&y=2~").view(),
            "Key: ABCD EFGH\nURI: otpauth://totp/a%20b?x=1&y=2~");
  EXPECT_EQ(ascii_text("Caf\xC3\xA9").view(), "Caf?");             // 2-byte UTF-8
  EXPECT_EQ(ascii_text("\xE2\x96\x80\xE2\x96\x84").view(), "??");  // two half blocks
  EXPECT_EQ(ascii_text("\xF0\x9F\x94\x91 key").view(), "? key");   // 4-byte UTF-8
  EXPECT_EQ(ascii_text("a\x80\x80z").view(), "a?z");               // stray continuations
  EXPECT_EQ(ascii_text("\xC3\xC3").view(), "??");                  // two lead bytes
  EXPECT_EQ(ascii_text("\x1b[31mred\x1b[0m\r\t\x7f").view(), "?[31mred?[0m???");
  EXPECT_EQ(ascii_text("").view(), "");
}
}  // namespace
}  // namespace pbx::pam::testing

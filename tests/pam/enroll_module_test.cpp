// enroll_at_login through the built module and the real libpam stack: what the conversation
// carries and in which order, what is saved, and two first logins of one user at once.
#include <fcntl.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pam_stack.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/hotp.hpp"

namespace pbx::pam::testing {
namespace {

constexpr const char* kCodePrompt = "Code from the app: ";
constexpr const char* kStoredPrompt = "Press Enter once you have stored them: ";

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

std::string code_now(const std::string& base32_key, int shift = 0) {
  auto key = totp::base32_decode(base32_key);
  if (!key) return "000000";
  auto step = totp::time_step(unix_now(), 30) + shift;
  auto code = totp::hotp(*key, totp::Algorithm::kSha1, static_cast<std::uint64_t>(step), 6);
  return code ? totp::format_code(*code, 6) : "000000";
}

// A user who reads the key off the screen and types its code (or `wrong` codes first).
void answer_like_a_user(Conversation& conv, int wrong_first = 0) {
  auto wrong_left = std::make_shared<int>(wrong_first);
  conv.responder = [wrong_left](const Conversation& c,
                                const std::string& prompt) -> std::optional<std::string> {
    if (prompt == kStoredPrompt) return std::string();
    if (prompt != kCodePrompt) return std::nullopt;
    if (*wrong_left > 0) {
      --*wrong_left;
      return code_now(shown_key(c), 40);  // far outside the window
    }
    return code_now(shown_key(c));
  };
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

class EnrollAtLoginStackTest : public PamStackTest {
 protected:
  void SetUp() override {
    PamStackTest::SetUp();
    if (IsSkipped()) return;
    files_->write_config("enroll_at_login = yes\nrecovery_codes = 1\nissuer = pbx-test\n");
  }
};

TEST_F(EnrollAtLoginStackTest, InfoThenPromptThenSavedAndAcceptedThenTheNextLoginAsksForACode) {
  Conversation conv;
  answer_like_a_user(conv);
  ASSERT_EQ(login(spec(), conv), PAM_SUCCESS);

  // The sequence through libpam: the setup text (info), the code prompt (no echo), the
  // recovery codes (info), their acknowledgement (echo), the closing line (info).
  ASSERT_EQ(conv.prompts.size(), 2u);
  EXPECT_EQ(conv.prompts[0].style, PAM_PROMPT_ECHO_OFF);
  EXPECT_EQ(conv.prompts[0].text, kCodePrompt);
  EXPECT_EQ(conv.prompts[1].style, PAM_PROMPT_ECHO_ON);
  EXPECT_EQ(conv.prompts[1].text, kStoredPrompt);
  ASSERT_EQ(conv.messages.size(), 3u);
  for (const auto& m : conv.messages) EXPECT_EQ(m.style, PAM_TEXT_INFO) << m.text;
  EXPECT_NE(conv.messages[0].text.find("\xE2\x96\x88"), std::string::npos);  // a QR drawing
  EXPECT_NE(conv.messages[0].text.find("otpauth://totp/pbx-test:daemon?secret="),
            std::string::npos);
  EXPECT_NE(conv.messages[1].text.find("Recovery codes"), std::string::npos);
  std::string key = shown_key(conv);
  ASSERT_EQ(key.size(), 32u);

  // Saved: root-owned 0600 outside a home, holding the shown key.
  struct stat st {};
  ASSERT_EQ(::stat(files_->secret_file(kUser).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // Version 2: the key is the device "default"'s, at the end of its line.
  const std::string saved = read_all(files_->secret_file(kUser));
  EXPECT_NE(saved.find("\ndevice default "), std::string::npos) << "no device default";
  EXPECT_NE(saved.find(" " + key + "\n"), std::string::npos);

  // The next login asks for a code, with no setup: the confirmation code is used up.
  Conversation next;
  EXPECT_EQ(login(spec({code_now(key)}), next), PAM_AUTH_ERR);
  ASSERT_EQ(next.prompts.size(), 1u);
  EXPECT_EQ(next.prompts[0].text, "Security code: ");
  EXPECT_TRUE(next.messages.empty());
  // The recovery code shown works once.
  std::string shown = conv.messages[1].text;
  std::size_t at = shown.find("\n  ");
  ASSERT_NE(at, std::string::npos) << shown;
  std::string recovery = shown.substr(at + 3, 14);
  EXPECT_EQ(login(spec({recovery})), PAM_SUCCESS);
  EXPECT_EQ(login(spec({recovery})), PAM_AUTH_ERR);
}

TEST_F(EnrollAtLoginStackTest, WrongCodeThriceIsDeniedAndNothingIsSaved) {
  Conversation conv;
  answer_like_a_user(conv, 3);
  EXPECT_EQ(login(spec(), conv), PAM_AUTH_ERR);
  EXPECT_EQ(conv.prompts.size(), 3u);
  ASSERT_EQ(conv.messages.size(), 4u);
  EXPECT_EQ(conv.messages[0].style, PAM_TEXT_INFO);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_EQ(conv.messages[i].style, PAM_ERROR_MSG);
  EXPECT_FALSE(exists(files_->secret_file(kUser)));
  EXPECT_FALSE(exists(files_->state_file(kUser)));

  // The next login starts afresh: a new key, and this time the right code.
  Conversation again;
  answer_like_a_user(again, 2);
  EXPECT_EQ(login(spec(), again), PAM_SUCCESS);
  EXPECT_NE(shown_key(again), shown_key(conv));
}

TEST_F(EnrollAtLoginStackTest, DroppedConnectionSavesNothing) {
  Conversation conv;
  conv.responder = [](const Conversation&, const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  EXPECT_EQ(login(spec(), conv), PAM_CONV_ERR);
  EXPECT_FALSE(exists(files_->secret_file(kUser)));
}

TEST_F(EnrollAtLoginStackTest, WithoutEnrollAtLoginARequiredUserIsAskedAndRefused) {
  files_->write_config("enroll_at_login = no\n");
  Conversation conv;
  EXPECT_EQ(login(spec({"123456"}), conv), PAM_AUTH_ERR);
  EXPECT_EQ(conv.prompts.size(), 1u);
  EXPECT_TRUE(conv.messages.empty());
}

// Two first logins of one user at the same moment, both shown a key, both confirming it, both
// saving at once (released together from the acknowledgement prompt): one secret is saved,
// exactly one login succeeds, and it is the one whose key was saved.
TEST_F(EnrollAtLoginStackTest, TwoParallelFirstLoginsEndWithOneSecret) {
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    ASSERT_EQ(::unlink(files_->secret_file(kUser).c_str()) == 0 || errno == ENOENT, true);
    ::unlink(files_->state_file(kUser).c_str());
    int ready[2], go[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(go), 0);
    std::array<pid_t, 2> pids{};
    std::array<std::string, 2> key_files;
    for (int i = 0; i < 2; ++i) {
      key_files[i] = files_->root() + "/key-" + std::to_string(i);
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(ready[0]);
        ::close(go[1]);
        Conversation conv;
        std::string key_file = key_files[i];
        conv.responder = [&](const Conversation& c,
                             const std::string& prompt) -> std::optional<std::string> {
          if (prompt == kCodePrompt) {
            std::ofstream(key_file) << shown_key(c) << "\n";
            return code_now(shown_key(c));
          }
          if (prompt == kStoredPrompt) {
            char b = 1;
            if (::write(ready[1], &b, 1) != 1) return std::nullopt;
            while (::read(go[0], &b, 1) < 0 && errno == EINTR) {
            }
            return std::string();
          }
          return std::nullopt;
        };
        int rc = pam_login(spec(), conv);
        ::_exit(rc & 0xff);
      }
      pids[i] = pid;
    }
    ::close(ready[1]);
    ::close(go[0]);
    char b[2];
    std::size_t got = 0;
    while (got < 2) {
      ssize_t n = ::read(ready[0], b, 2 - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(go[1]);  // both are at the acknowledgement: release them together
    ::close(ready[0]);
    std::array<int, 2> rc{-1, -1};
    for (int i = 0; i < 2; ++i) {
      int status = 0;
      ASSERT_EQ(::waitpid(pids[i], &status, 0), pids[i]);
      if (WIFEXITED(status)) rc[i] = WEXITSTATUS(status);
    }
    ASSERT_EQ(got, 2u) << "round " << round << ": both logins should reach the save";
    int winners = (rc[0] == PAM_SUCCESS) + (rc[1] == PAM_SUCCESS);
    ASSERT_EQ(winners, 1) << "round " << round << ": rc " << rc[0] << " " << rc[1];
    int winner = rc[0] == PAM_SUCCESS ? 0 : 1;
    EXPECT_EQ(rc[1 - winner], PAM_AUTH_ERR);
    std::string winner_key;
    std::ifstream(key_files[winner]) >> winner_key;
    EXPECT_NE(read_all(files_->secret_file(kUser)).find(" " + winner_key + "\n"), std::string::npos)
        << "round " << round << ": the saved secret is not the winner's";
  }
}

// ---------------------------------------------------------------------------------------------
// enroll_display (issue 19) through libpam: a login through the PAM service "cockpit" is shown
// as text (no QR drawing, every byte ASCII, the key, the URI and the recovery codes only inside
// prompts, which cockpit-session does not journal); "sshd" gets the QR code.

constexpr std::string_view kTextPromptEnd = "Code from the app: ";
constexpr std::string_view kTextRecoveryEnd = "Press Enter to continue: ";

bool ends_with(std::string_view s, std::string_view end) {
  return s.size() >= end.size() && s.substr(s.size() - end.size()) == end;
}

std::string line_after(std::string_view text, std::string_view label) {
  std::size_t at = text.find(label);
  if (at == std::string_view::npos) return {};
  at += label.size();
  return std::string(text.substr(at, text.find('\n', at) - at));
}

std::string without_spaces(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c != ' ') out.push_back(c);
  }
  return out;
}

bool all_ascii(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80 || (c < 0x20 && c != '\n')) return false;
  }
  return true;
}

class EnrollDisplayStackTest : public EnrollAtLoginStackTest {
 protected:
  void SetUp() override {
    EnrollAtLoginStackTest::SetUp();
    if (IsSkipped()) return;
    // Café: the issuer is shown (as ASCII) on the Account line; the URI percent-encodes it.
    files_->write_config("enroll_at_login = yes\nrecovery_codes = 2\nissuer = Caf\xC3\xA9\n");
  }

  LoginSpec through(const std::string& service, const std::string& args = "") {
    write_service(service, args);
    LoginSpec s = spec();
    s.service = service;
    return s;
  }

  // Answers a code prompt from the key in the prompt itself (text) or in the setup message
  // (terminal); Enter at the recovery codes.
  static void answer_either_way(Conversation& conv) {
    conv.responder = [](const Conversation& c,
                        const std::string& prompt) -> std::optional<std::string> {
      if (prompt == kStoredPrompt || ends_with(prompt, kTextRecoveryEnd)) return std::string();
      if (prompt == kCodePrompt) return code_now(shown_key(c));
      if (ends_with(prompt, kTextPromptEnd)) {
        return code_now(without_spaces(line_after(prompt, "\nKey: ")));
      }
      return std::nullopt;
    };
  }
};

TEST_F(EnrollDisplayStackTest, CockpitGetsTextWithTheSecretsOnlyInPrompts) {
  Conversation conv;
  answer_either_way(conv);
  ASSERT_EQ(login(through("cockpit"), conv), PAM_SUCCESS);

  ASSERT_EQ(conv.prompts.size(), 2u);
  const std::string& ask = conv.prompts[0].text;
  EXPECT_EQ(conv.prompts[0].style, PAM_PROMPT_ECHO_OFF);
  EXPECT_TRUE(ends_with(ask, kTextPromptEnd)) << ask;
  EXPECT_EQ(line_after(ask, "\nAccount: "), "Caf?:daemon") << ask;
  const std::string key = without_spaces(line_after(ask, "\nKey: "));
  ASSERT_EQ(key.size(), 32u) << ask;
  const std::string uri = line_after(ask, "\nURI: ");
  EXPECT_EQ(uri.rfind("otpauth://totp/Caf%C3%A9:daemon?secret=" + key + "&", 0), 0u) << uri;
  const std::string& recovery = conv.prompts[1].text;
  EXPECT_EQ(conv.prompts[1].style, PAM_PROMPT_ECHO_ON);
  EXPECT_TRUE(ends_with(recovery, kTextRecoveryEnd)) << recovery;
  std::size_t at = recovery.find("\n  ");
  ASSERT_NE(at, std::string::npos) << recovery;
  const std::string code = recovery.substr(at + 3, 14);

  // Every byte libpam carried is ASCII; no info or error message holds a secret.
  for (const auto& p : conv.prompts) EXPECT_TRUE(all_ascii(p.text)) << p.text;
  ASSERT_FALSE(conv.messages.empty());
  for (const auto& m : conv.messages) {
    EXPECT_TRUE(m.style == PAM_TEXT_INFO || m.style == PAM_ERROR_MSG);
    EXPECT_TRUE(all_ascii(m.text)) << m.text;
    EXPECT_EQ(m.text.find(key.substr(0, 8)), std::string::npos) << m.text;
    EXPECT_EQ(m.text.find(line_after(ask, "\nKey: ")), std::string::npos) << m.text;
    EXPECT_EQ(m.text.find("otpauth"), std::string::npos) << m.text;
    EXPECT_EQ(m.text.find(code), std::string::npos) << m.text;
  }

  // Saved with the prompt's key; the recovery code of the prompt works once.
  EXPECT_NE(read_all(files_->secret_file(kUser)).find(" " + key + "\n"), std::string::npos);
  EXPECT_EQ(login(spec({code})), PAM_SUCCESS);
  EXPECT_EQ(login(spec({code})), PAM_AUTH_ERR);
}

TEST_F(EnrollDisplayStackTest, SshdGetsTheQrCode) {
  Conversation conv;
  answer_either_way(conv);
  ASSERT_EQ(login(through("sshd"), conv), PAM_SUCCESS);
  ASSERT_EQ(conv.prompts.size(), 2u);
  EXPECT_EQ(conv.prompts[0].text, kCodePrompt);
  EXPECT_EQ(conv.prompts[1].text, kStoredPrompt);
  ASSERT_FALSE(conv.messages.empty());
  EXPECT_NE(conv.messages[0].text.find("\xE2\x96\x88"), std::string::npos);  // a QR drawing
  EXPECT_EQ(shown_key(conv).size(), 32u);
}

TEST_F(EnrollDisplayStackTest, AnArgumentOverridesTheService) {
  Conversation on_cockpit;
  answer_either_way(on_cockpit);
  ASSERT_EQ(login(through("cockpit", "enroll_display=terminal"), on_cockpit), PAM_SUCCESS);
  ASSERT_FALSE(on_cockpit.prompts.empty());
  EXPECT_EQ(on_cockpit.prompts[0].text, kCodePrompt);

  ASSERT_EQ(::unlink(files_->secret_file(kUser).c_str()), 0);
  ASSERT_EQ(::unlink(files_->state_file(kUser).c_str()), 0);
  Conversation on_sshd;
  answer_either_way(on_sshd);
  ASSERT_EQ(login(through("sshd", "enroll_display=text"), on_sshd), PAM_SUCCESS);
  ASSERT_FALSE(on_sshd.prompts.empty());
  EXPECT_TRUE(ends_with(on_sshd.prompts[0].text, kTextPromptEnd)) << on_sshd.prompts[0].text;
  EXPECT_NE(on_sshd.prompts[0].text.find("\nKey: "), std::string::npos);
}

TEST_F(EnrollDisplayStackTest, AnUnknownValueIsAServiceErrorWithoutAPrompt) {
  Conversation conv;
  answer_either_way(conv);
  EXPECT_EQ(login(through("cockpit", "enroll_display=html"), conv), PAM_SERVICE_ERR);
  EXPECT_TRUE(conv.prompts.empty());
  EXPECT_TRUE(conv.messages.empty());
}

}  // namespace
}  // namespace pbx::pam::testing

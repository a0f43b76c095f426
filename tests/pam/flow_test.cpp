// The module flow driven through FakeContext: every outcome, every argument, every prompt.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <security/pam_appl.h>
#include <unistd.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "flow_fixture.hpp"
#include "module_args.hpp"

namespace pbx::pam::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// The outcome table (pam_pbx_totp(8) RETURN VALUES and LOGGING), every row of kOutcomes.

TEST(FlowOutcomeTableTest, EveryOutcomeIsReadFromItsRow) {
  std::set<std::string_view> names;
  for (const OutcomeRow& row : kOutcomes) {
    EXPECT_EQ(pam_code(row.result), row.pam_code) << row.name;
    EXPECT_EQ(result_name(row.result), row.name);
    EXPECT_EQ(log_level(row.result), row.level) << row.name;
    EXPECT_TRUE(names.insert(row.name).second) << "two outcomes named " << row.name;
    // One word of the log line: a space would end the outcome= field early.
    EXPECT_EQ(row.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz-"), std::string_view::npos)
        << row.name;
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(AuthResult::kCount));
}

TEST(FlowOutcomeTableTest, EveryOutcomeHasAPamCodeOfTheManPage) {
  for (const OutcomeRow& row : kOutcomes) {
    switch (row.pam_code) {
      case PAM_SUCCESS:
        // A way in is logged at info (the usual case) or above, never at err: it is not a fault.
        EXPECT_NE(row.level, LogLevel::kError) << row.name;
        EXPECT_NE(row.level, LogLevel::kDebug) << row.name;
        break;
      case PAM_IGNORE:
        EXPECT_EQ(row.level, LogLevel::kInfo) << row.name;
        break;
      case PAM_AUTH_ERR:
        EXPECT_EQ(row.level, LogLevel::kNotice) << row.name;
        break;
      case PAM_AUTHINFO_UNAVAIL:
        // A wrong break-glass answer is no fault but a guess at a code that opens any account:
        // warning, like a break-glass code accepted (L5).
        if (row.result == AuthResult::kBreakGlassWrong) {
          EXPECT_EQ(row.level, LogLevel::kWarning) << row.name;
          break;
        }
        EXPECT_EQ(row.level, LogLevel::kError) << row.name;
        break;
      case PAM_SERVICE_ERR:
      case PAM_CONV_ERR:
      case PAM_BUF_ERR:
        EXPECT_EQ(row.level, LogLevel::kError) << row.name;
        break;
      default:
        ADD_FAILURE() << row.name << ": PAM code " << row.pam_code << " is not in RETURN VALUES";
    }
  }
}

TEST(FlowOutcomeTableTest, AValueOutsideTheTableIsAnInternalError) {
  EXPECT_EQ(pam_code(AuthResult::kCount), PAM_SERVICE_ERR);
  EXPECT_EQ(result_name(AuthResult::kCount), "internal-error");
  EXPECT_EQ(pam_code(static_cast<AuthResult>(-1)), PAM_SERVICE_ERR);
}

// Every row of the module's argument table is accepted in its own form (a flag alone, a valued
// argument with a value) and refused in the other: the table is what the parser dispatches on.
TEST(ModuleArgTableTest, EveryRowIsParsedInItsOwnFormOnly) {
  std::set<std::string_view> seen;
  for (const auto& row : module_args()) {
    SCOPED_TRACE(std::string(row.name));
    EXPECT_TRUE(seen.insert(row.name).second) << "named twice";
    EXPECT_FALSE(row.help.empty());
    // A flag has no example value; a valued argument has one it accepts.
    EXPECT_EQ(row.example.empty(), !row.takes_value);
    if (row.name == "config") continue;  // needs a safe file; covered by the config tests
    std::string right = row.takes_value ? std::string(row.name) + "=" + std::string(row.example)
                                        : std::string(row.name);
    std::string wrong = row.takes_value ? std::string(row.name) : std::string(row.name) + "=x";
    EXPECT_TRUE(parse_module_args({right}, ::geteuid()).ok());
    EXPECT_FALSE(parse_module_args({wrong}, ::geteuid()).ok());
  }
  EXPECT_TRUE(seen.count("forward_pass"));
  EXPECT_TRUE(seen.count("enroll_display"));
}

TEST_F(FlowTest, AcceptedCodeSucceedsAfterOnePrompt) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(ctx.prompts[0].text, kDefaultPrompt);
  EXPECT_FALSE(ctx.prompts[0].echo);
  EXPECT_EQ(outcome_of(ctx), "accepted");
  EXPECT_TRUE(ctx.messages.empty());
}

// A damaged copy in the two-slot state file (a write cut short by a crash, or the disk): the
// login goes on with the other copy and says so in a second syslog line, a warning.
TEST_F(FlowTest, ADamagedStateCopyIsLoggedAsAWarning) {
  Enrolled e = enroll();
  FakeContext first = with_answers({e.code_at(kT0)});
  ASSERT_EQ(run(first), PAM_SUCCESS);  // a new state file: its second copy is still zeros
  EXPECT_EQ(first.logs.size(), 1u) << first.all_logs();
  clock_.set(kT0 + 30);
  FakeContext second = with_answers({e.code_at(kT0 + 30)});
  ASSERT_EQ(run(second), PAM_SUCCESS);  // written into the second copy
  EXPECT_EQ(second.logs.size(), 1u) << second.all_logs();

  // One byte of the second copy's payload flipped.
  const std::string path = files_.state_file(kUser);
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, 4096 + 100), 1);
  c = static_cast<char>(c ^ 0x20);
  ASSERT_EQ(::pwrite(fd, &c, 1, 4096 + 100), 1);
  ::close(fd);

  clock_.set(kT0 + 60);
  FakeContext third = with_answers({e.code_at(kT0 + 60)});
  EXPECT_EQ(run(third), PAM_SUCCESS);
  ASSERT_EQ(third.logs.size(), 2u) << third.all_logs();
  EXPECT_NE(third.logs[0].text.find("outcome=accepted"), std::string::npos);
  EXPECT_EQ(third.logs[1].level, LogLevel::kWarning);
  EXPECT_NE(third.logs[1].text.find("user=daemon state file " + path +
                                    ": one of its two copies is damaged"),
            std::string::npos)
      << third.logs[1].text;
  // That login wrote the damaged copy whole again: nothing more to say.
  clock_.set(kT0 + 90);
  FakeContext fourth = with_answers({e.code_at(kT0 + 90)});
  EXPECT_EQ(run(fourth), PAM_SUCCESS);
  EXPECT_EQ(fourth.logs.size(), 1u) << fourth.all_logs();
}

TEST_F(FlowTest, CodesOfTheNeighbouringStepsAreAcceptedWithWindowOne) {
  Enrolled e = enroll();
  FakeContext before = with_answers({e.code_at(kT0 - 30)});
  EXPECT_EQ(run(before), PAM_SUCCESS);
  // A fresh enrollment, so the earlier success does not make the next step a replay question.
  Enrolled again = enroll();
  FakeContext after = with_answers({again.code_at(kT0 + 30)});
  EXPECT_EQ(run(after), PAM_SUCCESS);
  Enrolled far = enroll();
  FakeContext too_far = with_answers({far.code_at(kT0 + 60)});
  EXPECT_EQ(run(too_far), PAM_AUTH_ERR);
}

TEST_F(FlowTest, RecoveryCodeSucceedsOnceAndSaysHowManyAreLeft) {
  Enrolled e = enroll(kUser, 2);
  FakeContext ctx = with_answers({e.recovery_codes[0]});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
  EXPECT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(outcome_of(ctx), "recovery-code-accepted");
  ASSERT_EQ(ctx.messages.size(), 1u);
  EXPECT_NE(ctx.messages[0].text.find("1 recovery code left"), std::string::npos)
      << ctx.messages[0].text;
  EXPECT_FALSE(ctx.messages[0].error);

  FakeContext again = with_answers({e.recovery_codes[0]});
  EXPECT_EQ(run(again), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(again), "wrong-code");

  FakeContext last = with_answers({e.recovery_codes[1]});
  EXPECT_EQ(run(last), PAM_SUCCESS);
  // The wrong one in between is told too (issue 17).
  ASSERT_EQ(last.messages.size(), 2u);
  EXPECT_NE(last.messages[0].text.find("0 recovery codes left"), std::string::npos);
  EXPECT_EQ(last.messages[1].text.rfind("1 failed attempt since your last login", 0), 0u)
      << last.messages[1].text;
}

TEST_F(FlowTest, GracePeriodSkipsThePromptForTheSameUserAndHostOnly) {
  files_.write_config("grace_period = 300\n");
  Enrolled e = enroll();
  enroll(kOtherUser);
  FakeContext first = with_answers({e.code_at(kT0)});
  first.remote_host = "203.0.113.5";
  ASSERT_EQ(run(first), PAM_SUCCESS);

  clock_.advance(299);
  FakeContext same = with_answers({});
  same.remote_host = "203.0.113.5";
  EXPECT_EQ(run(same), PAM_SUCCESS);
  EXPECT_EQ(same.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(same), "grace-period");

  FakeContext other_host = with_answers({});
  other_host.remote_host = "203.0.113.6";
  EXPECT_EQ(run(other_host), PAM_CONV_ERR);  // asked, and the script had no answer
  EXPECT_EQ(other_host.prompts.size(), 1u);

  FakeContext other_user = with_answers({}, kOtherUser);
  other_user.remote_host = "203.0.113.5";
  EXPECT_EQ(run(other_user), PAM_CONV_ERR);
  EXPECT_EQ(other_user.prompts.size(), 1u);

  FakeContext local = with_answers({});
  EXPECT_EQ(run(local), PAM_CONV_ERR);
  EXPECT_EQ(local.prompts.size(), 1u);

  clock_.advance(1);  // 300 s after the success: over
  FakeContext expired = with_answers({});
  expired.remote_host = "203.0.113.5";
  EXPECT_EQ(run(expired), PAM_CONV_ERR);
  EXPECT_EQ(expired.prompts.size(), 1u);
}

TEST_F(FlowTest, GracePeriodIsOffByDefault) {
  Enrolled e = enroll();
  FakeContext first = with_answers({e.code_at(kT0)});
  first.remote_host = "203.0.113.5";
  ASSERT_EQ(run(first), PAM_SUCCESS);
  FakeContext again = with_answers({});
  again.remote_host = "203.0.113.5";
  EXPECT_EQ(run(again), PAM_CONV_ERR);
  EXPECT_EQ(again.prompts.size(), 1u);
}

TEST_F(FlowTest, GracePeriodEndsWithALockout) {
  files_.write_config("grace_period = 300\nmax_failures = 1\n");
  Enrolled e = enroll();
  FakeContext ok = with_answers({e.code_at(kT0)});
  ok.remote_host = "203.0.113.5";
  ASSERT_EQ(run(ok), PAM_SUCCESS);
  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});  // from elsewhere: locks the user
  wrong.remote_host = "198.51.100.1";
  ASSERT_EQ(run(wrong), PAM_AUTH_ERR);
  FakeContext grace = with_answers({});
  grace.remote_host = "203.0.113.5";
  EXPECT_EQ(run(grace), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(grace), "locked-out");
}

TEST_F(FlowTest, ExemptGroupIsIgnoredWithoutAPrompt) {
  files_.write_config("exempt_groups = pbx-nonexistent-group, " + std::string(kUserGroup) + "\n");
  enroll();
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx), PAM_IGNORE);
  EXPECT_EQ(ctx.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(ctx), "exempt");

  // Another user, not in the group, still needs a code.
  Enrolled other = enroll(kOtherUser);
  FakeContext not_exempt = with_answers({other.code_at(kT0)}, kOtherUser);
  EXPECT_EQ(run(not_exempt), PAM_SUCCESS);
  EXPECT_EQ(not_exempt.prompts.size(), 1u);
}

TEST_F(FlowTest, ExemptGroupAlsoCoversUsersWhoAreNotEnrolled) {
  files_.write_config("exempt_groups = " + std::string(kUserGroup) + "\n");
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx), PAM_IGNORE);
  EXPECT_EQ(ctx.prompts.size(), 0u);
}

TEST_F(FlowTest, NotEnrolledAndNotRequiredIsIgnoredWithoutAPrompt) {
  files_.write_config("require = none\n");
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx), PAM_IGNORE);
  EXPECT_EQ(ctx.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled-not-required");
}

TEST_F(FlowTest, EnrolledUserNeedsACodeEvenWhenNotRequired) {
  files_.write_config("require = none\n");
  Enrolled e = enroll();
  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(wrong), PAM_AUTH_ERR);
  EXPECT_EQ(wrong.prompts.size(), 1u);
}

TEST_F(FlowTest, RequireByGroupRequiresMembersOnly) {
  files_.write_config("require = group:pbx-nonexistent-group, group:" + std::string(kUserGroup) +
                      "\n");
  FakeContext member = with_answers({"123456"});
  EXPECT_EQ(run(member), PAM_AUTH_ERR);
  EXPECT_EQ(member.prompts.size(), 1u);
  EXPECT_EQ(outcome_of(member), "not-enrolled");

  FakeContext outsider = with_answers({}, kOtherUser);
  EXPECT_EQ(run(outsider), PAM_IGNORE);
  EXPECT_EQ(outsider.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(outsider), "not-enrolled-not-required");
}

// A group database that cannot answer (LDAP or SSSD down) for every group but kUserGroup.
totp::Result<std::optional<totp::Group>> directory_down(std::string_view name) {
  if (name == kUserGroup) return totp::lookup_group(name);
  return totp::make_error(totp::Errc::kIo, "cannot look up group '" + std::string(name) + "'");
}

// L1: a require group whose lookup fails is not "not required": the user may be in it.
TEST_F(FlowTest, GroupLookupErrorFailsClosed) {
  files_.write_config("require = group:pbxtest-directory-admins\n");
  opts_.group_lookup = directory_down;
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  EXPECT_EQ(ctx.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(ctx), "group-lookup-failed");
  EXPECT_NE(logs_.find("cannot look up group 'pbxtest-directory-admins'"), std::string::npos)
      << logs_;

  // A group the user is certainly in still decides, whatever the other lookups say.
  files_.write_config("require = group:pbxtest-directory-admins, group:" + std::string(kUserGroup) +
                      "\n");
  FakeContext member = with_answers({"123456"});
  EXPECT_EQ(run(member), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(member), "not-enrolled");

  // An exempt group that cannot be looked up exempts nobody (and needs no verdict from it).
  files_.write_config("exempt_groups = pbxtest-directory-ops\n");
  Enrolled e = enroll();
  FakeContext enrolled = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(enrolled), PAM_SUCCESS);
  EXPECT_EQ(enrolled.prompts.size(), 1u);
  EXPECT_EQ(outcome_of(enrolled), "accepted");
}

// L3: a secret line without its key ("JBSW..." alone, or "device=...JBSW...") is refused as
// corrupt, and the log line names the line number, not a byte of the secret.
TEST_F(FlowTest, CorruptSecretLineIsNotLogged) {
  Enrolled e = enroll();
  const std::string secret = secret_base32(e.enrollment);
  const std::string path = files_.secret_file(kUser);
  const std::string text = read_all(path);
  // Version 2: line 5 is "device default CREATED SHA1 6 30 KEY".
  const std::size_t line = text.find("\ndevice default ");
  ASSERT_NE(line, std::string::npos) << text;
  const std::size_t end = text.find('\n', line + 1);
  ASSERT_EQ(text.substr(end - secret.size(), secret.size()), secret) << text;
  const std::string device_line = text.substr(line + 1, end - line - 1);
  std::string glued = device_line;
  for (char& c : glued) c = c == ' ' ? '=' : c;
  for (const std::string& broken : {secret, glued}) {
    std::string changed = text;
    changed.replace(line + 1, device_line.size(), broken);
    ASSERT_TRUE(write_file(path, changed, 0600, files_.trusted_uid()));
    FakeContext ctx = with_answers({"123456"});
    EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
    EXPECT_EQ(outcome_of(ctx), "unavailable");
    ASSERT_EQ(ctx.logs.size(), 1u);
    EXPECT_NE(ctx.logs[0].text.find("line 5: unknown key"), std::string::npos) << ctx.logs[0].text;
    for (std::size_t i = 0; i + 4 <= secret.size(); ++i) {
      ASSERT_EQ(ctx.logs[0].text.find(secret.substr(i, 4)), std::string::npos)
          << "the log line quotes the secret: " << ctx.logs[0].text;
    }
  }
}

TEST_F(FlowTest, WrongCodeFailsAfterOnePrompt) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  EXPECT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(outcome_of(ctx), "wrong-code");
  EXPECT_TRUE(ctx.messages.empty());
}

TEST_F(FlowTest, MalformedAnswersAreWrongCodes) {
  Enrolled e = enroll();
  std::string code = e.code_at(kT0);
  const std::vector<std::string> answers = {
      "",                            // just Enter
      code.substr(0, 5),             // too short
      code + "0",                    // too long
      "12345a",                      // not digits
      std::string(100000, '1'),      // absurdly long
      std::string("12\0003456", 7),  // a NUL inside
      "\xff\xfe\xfd\xfc\xfb\xfa",
  };
  for (const auto& answer : answers) {
    FakeContext ctx = with_answers({answer});
    EXPECT_EQ(run(ctx), PAM_AUTH_ERR) << "answer of " << answer.size() << " bytes";
    EXPECT_EQ(outcome_of(ctx), "wrong-code");
    files_.enroll(kUser);  // no lockout between answers
  }
}

TEST_F(FlowTest, ReplayedCodeFails) {
  Enrolled e = enroll();
  std::string code = e.code_at(kT0);
  FakeContext first = with_answers({code});
  ASSERT_EQ(run(first), PAM_SUCCESS);
  clock_.advance(10);
  FakeContext replay = with_answers({code});
  EXPECT_EQ(run(replay), PAM_AUTH_ERR);
  EXPECT_EQ(replay.prompts.size(), 1u);
  EXPECT_EQ(outcome_of(replay), "replayed-code");
}

TEST_F(FlowTest, OlderCodeAfterANewerOneIsAReplay) {
  Enrolled e = enroll();
  FakeContext newer = with_answers({e.code_at(kT0 + 30)});
  ASSERT_EQ(run(newer), PAM_SUCCESS);
  FakeContext older = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(older), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(older), "replayed-code");
}

TEST_F(FlowTest, LockoutStopsAskingAndSaysWhenToRetry) {
  files_.write_config("max_failures = 2\nlockout = 60\n");
  Enrolled e = enroll();
  FakeContext first = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(first), PAM_AUTH_ERR);
  EXPECT_TRUE(first.messages.empty());

  FakeContext second = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(second), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(second), "wrong-code");
  ASSERT_EQ(second.messages.size(), 1u);
  EXPECT_TRUE(second.messages[0].error);
  EXPECT_NE(second.messages[0].text.find("Try again in 1 minute"), std::string::npos)
      << second.messages[0].text;

  clock_.advance(15);
  FakeContext locked = with_answers({e.code_at(kT0 + 15)});
  EXPECT_EQ(run(locked), PAM_AUTH_ERR);
  EXPECT_EQ(locked.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(locked), "locked-out");
  ASSERT_EQ(locked.messages.size(), 1u);
  EXPECT_NE(locked.messages[0].text.find("Try again in 45 seconds"), std::string::npos)
      << locked.messages[0].text;

  clock_.advance(45);  // the lockout is over; a locked-out attempt did not extend it
  FakeContext after = with_answers({e.code_at(kT0 + 60)});
  EXPECT_EQ(run(after), PAM_SUCCESS);
  EXPECT_EQ(after.prompts.size(), 1u);
}

TEST_F(FlowTest, LockoutDoublesWithEachFurtherFailure) {
  files_.write_config("max_failures = 2\nlockout = 10\n");
  Enrolled e = enroll();
  for (int i = 0; i < 2; ++i) {
    FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
    ASSERT_EQ(run(wrong), PAM_AUTH_ERR);
  }
  clock_.advance(10);
  FakeContext third = with_answers({e.wrong_code_at(kT0 + 10)});
  EXPECT_EQ(run(third), PAM_AUTH_ERR);
  ASSERT_EQ(third.messages.size(), 1u);
  EXPECT_NE(third.messages[0].text.find("Try again in 20 seconds"), std::string::npos)
      << third.messages[0].text;
  clock_.advance(19);
  FakeContext still = with_answers({e.code_at(kT0 + 29)});
  EXPECT_EQ(run(still), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(still), "locked-out");
}

TEST_F(FlowTest, RequiredButNotEnrolledFailsAfterPromptingAnyway) {
  FakeContext ctx = with_answers({"123456"});
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  // Indistinguishable from an enrolled user's prompt.
  EXPECT_EQ(ctx.prompts[0].text, kDefaultPrompt);
  EXPECT_FALSE(ctx.prompts[0].echo);
  EXPECT_EQ(outcome_of(ctx), "not-enrolled");
}

TEST_F(FlowTest, UnknownUserFailsAfterPromptingAnyway) {
  FakeContext ctx = with_answers({"123456"}, kNoSuchUser);
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(ctx.prompts[0].text, kDefaultPrompt);
  EXPECT_EQ(outcome_of(ctx), "unknown-user");
}

class HostileFileFlowTest : public FlowTest, public ::testing::WithParamInterface<HostileCase> {};

TEST_P(HostileFileFlowTest, IsUnavailableWithoutAPrompt) {
  const HostileCase& c = GetParam();
  if (c.needs_root && ::geteuid() != 0) GTEST_SKIP() << "changing an owner needs root";
  Enrolled e = enroll();
  write_state(files_, kUser, e.enrollment.id);
  c.make(files_, kUser);
  FakeContext ctx = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ctx), PAM_AUTHINFO_UNAVAIL);
  // The lock file is only opened to check a code; everything else is refused before asking.
  EXPECT_EQ(ctx.prompts.size(), c.where == HostileCase::Where::kLock ? 1u : 0u);
  EXPECT_EQ(outcome_of(ctx), "unavailable");
  ASSERT_EQ(ctx.logs.size(), 1u);
  EXPECT_EQ(ctx.logs[0].level, LogLevel::kError);
  // The log line says which file is wrong, so an administrator can fix it.
  EXPECT_NE(ctx.logs[0].text.find(hostile_path(c, files_, kUser)), std::string::npos)
      << ctx.logs[0].text;
}

INSTANTIATE_TEST_SUITE_P(Files, HostileFileFlowTest, ::testing::ValuesIn(hostile_cases()),
                         [](const auto& test_case) { return std::string(test_case.param.name); });

TEST_F(FlowTest, UnbuiltStoreIsAServiceError) {
  enroll();
  FakeContext ctx = with_answers({"123456"});
  EXPECT_EQ(run(ctx, {"store=postgresql"}), PAM_SERVICE_ERR);
  EXPECT_EQ(ctx.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(ctx), "bad-config");
}

TEST_F(FlowTest, FailedPromptIsAConversationError) {
  enroll();
  FakeContext ctx = with_answers({});
  ctx.answers.push_back(std::nullopt);
  EXPECT_EQ(run(ctx), PAM_CONV_ERR);
  EXPECT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(outcome_of(ctx), "conversation-error");
}

TEST_F(FlowTest, FailedPromptForUnenrolledOrUnknownUsersIsAConversationError) {
  FakeContext not_enrolled = with_answers({});
  EXPECT_EQ(run(not_enrolled), PAM_CONV_ERR);
  FakeContext unknown = with_answers({}, kNoSuchUser);
  EXPECT_EQ(run(unknown), PAM_CONV_ERR);
}

TEST_F(FlowTest, NoUserNameIsAConversationError) {
  FakeContext none = with_answers({});
  none.user_name = std::nullopt;
  EXPECT_EQ(run(none), PAM_CONV_ERR);
  EXPECT_EQ(none.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(none), "conversation-error");
  FakeContext empty = with_answers({});
  empty.user_name = "";
  EXPECT_EQ(run(empty), PAM_CONV_ERR);
}

TEST_F(FlowTest, OutOfMemoryIsABufferErrorNeverASuccess) {
  enroll();
  FakeContext ctx = with_answers({});
  ctx.prompt_fault = FakeContext::Fault::kBadAlloc;
  EXPECT_EQ(run(ctx), PAM_BUF_ERR);
  EXPECT_EQ(outcome_of(ctx), "out-of-memory");
}

TEST_F(FlowTest, AnExceptionIsAServiceErrorNeverASuccess) {
  enroll();
  FakeContext ctx = with_answers({});
  ctx.prompt_fault = FakeContext::Fault::kRuntimeError;
  EXPECT_EQ(run(ctx), PAM_SERVICE_ERR);
  EXPECT_EQ(outcome_of(ctx), "internal-error");
}

TEST_F(FlowTest, FailedMessageDoesNotChangeTheOutcome) {
  files_.write_config("max_failures = 1\n");
  Enrolled e = enroll();
  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
  wrong.messages_fail = true;
  EXPECT_EQ(run(wrong), PAM_AUTH_ERR);
  FakeContext locked = with_answers({});
  locked.messages_fail = true;
  EXPECT_EQ(run(locked), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(locked), "locked-out");
}

// ---------------------------------------------------------------------------------------------
// Arguments.

struct BadArgCase {
  const char* name;
  std::vector<std::string> args;
  const char* logged;  // what the log line must name
};
void PrintTo(const BadArgCase& c, std::ostream* os) { *os << c.name; }

class BadArgumentFlowTest : public FlowTest, public ::testing::WithParamInterface<BadArgCase> {};

TEST_P(BadArgumentFlowTest, IsAServiceErrorWithoutAPrompt) {
  enroll();
  FakeContext ctx = with_answers({"123456"});
  EXPECT_EQ(run(ctx, GetParam().args), PAM_SERVICE_ERR);
  EXPECT_EQ(ctx.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(ctx), "bad-config");
  ASSERT_EQ(ctx.logs.size(), 1u);
  EXPECT_EQ(ctx.logs[0].level, LogLevel::kError);
  EXPECT_NE(ctx.logs[0].text.find(GetParam().logged), std::string::npos) << ctx.logs[0].text;
}

INSTANTIATE_TEST_SUITE_P(
    Args, BadArgumentFlowTest,
    ::testing::Values(
        BadArgCase{"UnknownFlag", {"bogus"}, "bogus"},
        BadArgCase{"UnknownKey", {"no_such_key=1"}, "no_such_key"},
        BadArgCase{"EmptyKey", {"=1"}, "=1"}, BadArgCase{"FlagWithCase", {"NODELAY"}, "NODELAY"},
        BadArgCase{"SecretPathRelative", {"secret_path=secrets/%u"}, "secret_path"},
        BadArgCase{"SecretPathBadEscape", {"secret_path=/tmp/%x"}, "secret_path"},
        BadArgCase{"StateDirRelative", {"state_dir=state"}, "state_dir"},
        BadArgCase{"IssuerEmpty", {"issuer="}, "issuer"},
        BadArgCase{"AlgorithmMd5", {"algorithm=MD5"}, "algorithm"},
        BadArgCase{"DigitsFive", {"digits=5"}, "digits"},
        BadArgCase{"DigitsNine", {"digits=9"}, "digits"},
        BadArgCase{"PeriodTen", {"period=10"}, "period"},
        BadArgCase{"PeriodNotANumber", {"period=30s"}, "period"},
        BadArgCase{"WindowEleven", {"window=11"}, "window"},
        BadArgCase{"WindowNegative", {"window=-1"}, "window"},
        BadArgCase{"WindowHuge", {"window=99999999999999999999"}, "window"},
        BadArgCase{"MaxFailuresZero", {"max_failures=0"}, "max_failures"},
        BadArgCase{"LockoutZero", {"lockout=0"}, "lockout"},
        BadArgCase{"LockoutTooLong", {"lockout=3601"}, "lockout"},
        BadArgCase{"RecoveryCodesTooMany", {"recovery_codes=21"}, "recovery_codes"},
        BadArgCase{"RequireEveryone", {"require=everyone"}, "require"},
        BadArgCase{"RequireEmptyGroup", {"require=group:"}, "require"},
        BadArgCase{"ExemptGroupsEmptyItem", {"exempt_groups=a,,b"}, "exempt_groups"},
        BadArgCase{"ExemptNetworksBadPrefix", {"exempt_networks=10.0.0.0/33"}, "exempt_networks"},
        BadArgCase{"ExemptNetworksHostName", {"exempt_networks=example.com"}, "exempt_networks"},
        BadArgCase{"EnrollAtLoginMaybe", {"enroll_at_login=maybe"}, "enroll_at_login"},
        BadArgCase{"GracePeriodNegative", {"grace_period=-1"}, "grace_period"},
        BadArgCase{"GracePeriodTooLong", {"grace_period=86401"}, "grace_period"},
        BadArgCase{"StoreLdap", {"store=ldap"}, "store"},
        BadArgCase{"PgConninfoControl", {"pg_conninfo=host=a\x01"}, "pg_conninfo"},
        BadArgCase{"PgTimeoutTooShort", {"pg_timeout_ms=50"}, "pg_timeout_ms"},
        BadArgCase{"FleetKeyRelative", {"fleet_key=pbx.key"}, "fleet_key"},
        BadArgCase{"PromptEmpty", {"prompt="}, "prompt"},
        BadArgCase{"PromptTooLong", {"prompt=" + std::string(257, 'x')}, "prompt"},
        BadArgCase{"EnrollDisplayQr", {"enroll_display=qr"}, "enroll_display"},
        BadArgCase{"EnrollDisplayEmpty", {"enroll_display="}, "enroll_display"},
        BadArgCase{"EnrollDisplayCase", {"enroll_display=Text"}, "enroll_display"},
        BadArgCase{"UseAndTryFirstPass", {"use_first_pass", "try_first_pass"}, "first_pass"},
        BadArgCase{
            "ForwardPassAndUseFirstPass", {"forward_pass", "use_first_pass"}, "forward_pass"},
        BadArgCase{
            "ForwardPassAndTryFirstPass", {"try_first_pass", "forward_pass"}, "forward_pass"},
        BadArgCase{"ConfigTwice", {"config=/etc/security/pbx-mfa.conf"}, "config"},
        BadArgCase{"LaterBadValueAfterAGoodOne", {"window=2", "window=12"}, "window"}),
    [](const auto& test_case) { return std::string(test_case.param.name); });

TEST_F(FlowTest, ConfigArgumentMustBeAnExistingAbsolutePath) {
  const std::vector<std::vector<std::string>> bad = {
      {"config=pbx-mfa.conf"},
      {"config="},
      {"config=" + files_.root() + "/missing.conf"},
  };
  for (const auto& args : bad) {
    FakeContext ctx = with_answers({});
    // No config= of the fixture's: call authenticate directly.
    EXPECT_EQ(authenticate(ctx, args, opts_, clock_), PAM_SERVICE_ERR) << args[0];
    EXPECT_EQ(ctx.prompts.size(), 0u);
    EXPECT_EQ(outcome_of(ctx), "bad-config");
  }
}

TEST_F(FlowTest, UnsafeConfigFileIsAServiceError) {
  std::string text = files_.config_text();
  struct Case {
    const char* name;
    mode_t mode;
    uid_t uid;
  };
  std::vector<Case> cases = {{"group-writable", 0664, ::geteuid()},
                             {"world-writable", 0646, ::geteuid()}};
  if (::geteuid() == 0) cases.push_back({"owned by another user", 0644, 65534});
  for (const Case& c : cases) {
    ASSERT_TRUE(write_file(files_.config_path(), text, c.mode, c.uid));
    FakeContext ctx = with_answers({});
    EXPECT_EQ(run(ctx), PAM_SERVICE_ERR) << c.name;
    EXPECT_EQ(ctx.prompts.size(), 0u);
    EXPECT_NE(ctx.all_logs().find(files_.config_path()), std::string::npos) << ctx.all_logs();
  }
  // Through a symlink, even to a good file.
  std::string real = files_.root() + "/real.conf";
  ASSERT_TRUE(write_file(real, text, 0644));
  ASSERT_EQ(::unlink(files_.config_path().c_str()), 0);
  ASSERT_EQ(::symlink(real.c_str(), files_.config_path().c_str()), 0);
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx), PAM_SERVICE_ERR);
  EXPECT_EQ(ctx.prompts.size(), 0u);
}

TEST_F(FlowTest, ReadOnlyConfigFileIsFine) {
  ASSERT_TRUE(write_file(files_.config_path(), files_.config_text(), 0400));
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ctx), PAM_SUCCESS);
}

TEST_F(FlowTest, BadConfigLineIsAServiceErrorNamingFileLineAndKey) {
  files_.write_config("max_failures = 3\nlockout = forever\n");
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx), PAM_SERVICE_ERR);
  EXPECT_EQ(ctx.prompts.size(), 0u);
  // Line 1 is a comment, 2 and 3 the paths, 4 the window, 5 max_failures, 6 the bad one.
  EXPECT_NE(ctx.all_logs().find("pbx-mfa.conf:6"), std::string::npos) << ctx.all_logs();
  EXPECT_NE(ctx.all_logs().find("lockout"), std::string::npos) << ctx.all_logs();
}

TEST_F(FlowTest, BadConfigLogDetailIsReadable) {
  // The administrator reads this line to fix the file: spaces must stay spaces.
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx, {"window=11"}), PAM_SERVICE_ERR);
  EXPECT_NE(ctx.all_logs().find("window: must be a whole number"), std::string::npos)
      << ctx.all_logs();
}

struct GoodSettingCase {
  const char* name;
  std::string arg;
};
void PrintTo(const GoodSettingCase& c, std::ostream* os) { *os << c.name; }

class GoodSettingFlowTest : public FlowTest,
                            public ::testing::WithParamInterface<GoodSettingCase> {};

// Every config key is also a module argument; valid values leave a normal login working.
TEST_P(GoodSettingFlowTest, IsAcceptedAsAModuleArgument) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  std::string arg = GetParam().arg;
  std::size_t root = arg.find("@ROOT@");
  if (root != std::string::npos) arg.replace(root, 6, files_.root());
  EXPECT_EQ(run(ctx, {arg}), PAM_SUCCESS) << ctx.all_logs();
  EXPECT_EQ(ctx.prompts.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Keys, GoodSettingFlowTest,
    ::testing::Values(
        GoodSettingCase{"SecretPath", "secret_path=@ROOT@/secrets/%u"},
        GoodSettingCase{"StateDir", "state_dir=@ROOT@/state"},
        GoodSettingCase{"Issuer", "issuer=Example"},
        GoodSettingCase{"Algorithm", "algorithm=SHA256"}, GoodSettingCase{"Digits", "digits=8"},
        GoodSettingCase{"Period", "period=60"}, GoodSettingCase{"Window", "window=3"},
        GoodSettingCase{"MaxFailures", "max_failures=3"}, GoodSettingCase{"Lockout", "lockout=30"},
        GoodSettingCase{"RecoveryCodes", "recovery_codes=0"},
        GoodSettingCase{"Require", "require=all"},
        GoodSettingCase{"ExemptGroups", "exempt_groups=pbx-nonexistent-group"},
        GoodSettingCase{"ExemptNetworks", "exempt_networks=192.0.2.0/24"},
        GoodSettingCase{"EnrollAtLogin", "enroll_at_login=no"},
        GoodSettingCase{"GracePeriod", "grace_period=60"}, GoodSettingCase{"Store", "store=files"},
        GoodSettingCase{"PgConninfo", "pg_conninfo=host=db1,db2 dbname=pbx"},
        GoodSettingCase{"PgTimeout", "pg_timeout_ms=1000"},
        GoodSettingCase{"FleetKey", "fleet_key=/etc/security/other.key"},
        GoodSettingCase{"Debug", "debug"}),
    [](const auto& test_case) { return std::string(test_case.param.name); });

TEST_F(FlowTest, ArgumentsOverrideTheConfigFileInOrder) {
  files_.write_config("window = 0\n");
  Enrolled e = enroll();
  FakeContext strict = with_answers({e.code_at(kT0 - 30)});
  EXPECT_EQ(run(strict), PAM_AUTH_ERR);  // window 0 from the file

  Enrolled e2 = enroll();
  FakeContext widened = with_answers({e2.code_at(kT0 - 30)});
  EXPECT_EQ(run(widened, {"window=1"}), PAM_SUCCESS);

  Enrolled e3 = enroll();
  FakeContext last_wins = with_answers({e3.code_at(kT0 - 30)});
  EXPECT_EQ(run(last_wins, {"window=1", "window=0"}), PAM_AUTH_ERR);
}

TEST_F(FlowTest, RequireArgumentOverridesTheFile) {
  files_.write_config("require = none\n");
  FakeContext ignored = with_answers({});
  EXPECT_EQ(run(ignored), PAM_IGNORE);
  FakeContext required = with_answers({"123456"});
  EXPECT_EQ(run(required, {"require=all"}), PAM_AUTH_ERR);
  EXPECT_EQ(required.prompts.size(), 1u);
}

TEST_F(FlowTest, ExemptGroupsArgumentOverridesTheFile) {
  enroll();
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx, {"exempt_groups=" + std::string(kUserGroup)}), PAM_IGNORE);
  EXPECT_EQ(ctx.prompts.size(), 0u);
}

TEST_F(FlowTest, DebugChangesNoOutcome) {
  Enrolled e = enroll();
  FakeContext ok = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ok, {"debug"}), PAM_SUCCESS);
  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(wrong, {"debug"}), PAM_AUTH_ERR);
}

TEST_F(FlowTest, NullokLetsUnenrolledUsersThroughOnly) {
  FakeContext unenrolled = with_answers({});
  EXPECT_EQ(run(unenrolled, {"nullok"}), PAM_IGNORE);
  EXPECT_EQ(unenrolled.prompts.size(), 0u);
  EXPECT_EQ(outcome_of(unenrolled), "not-enrolled-not-required");

  Enrolled e = enroll();
  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(wrong, {"nullok"}), PAM_AUTH_ERR);
  FakeContext ok = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ok, {"nullok"}), PAM_SUCCESS);
}

TEST_F(FlowTest, NullokOverridesRequireByGroup) {
  files_.write_config("require = group:" + std::string(kUserGroup) + "\n");
  FakeContext ctx = with_answers({});
  EXPECT_EQ(run(ctx, {"nullok"}), PAM_IGNORE);
}

TEST_F(FlowTest, UseFirstPassTakesTheCodeFromAuthtokAndNeverPrompts) {
  Enrolled e = enroll();
  FakeContext ok = with_answers({});
  ok.authtok_item = e.code_at(kT0);
  EXPECT_EQ(run(ok, {"use_first_pass"}), PAM_SUCCESS);
  EXPECT_EQ(ok.prompts.size(), 0u);

  FakeContext wrong = with_answers({e.code_at(kT0 + 30)});
  wrong.authtok_item = e.wrong_code_at(kT0);
  EXPECT_EQ(run(wrong, {"use_first_pass"}), PAM_AUTH_ERR);
  EXPECT_EQ(wrong.prompts.size(), 0u);

  FakeContext unset = with_answers({e.code_at(kT0 + 30)});
  EXPECT_EQ(run(unset, {"use_first_pass"}), PAM_AUTH_ERR);
  EXPECT_EQ(unset.prompts.size(), 0u);
}

TEST_F(FlowTest, TryFirstPassTakesTheCodeFromAuthtok) {
  Enrolled e = enroll();
  FakeContext ok = with_answers({});
  ok.authtok_item = e.code_at(kT0);
  EXPECT_EQ(run(ok, {"try_first_pass"}), PAM_SUCCESS);
  EXPECT_EQ(ok.prompts.size(), 0u);
}

TEST_F(FlowTest, TryFirstPassPromptsWhenAuthtokIsUnsetOrEmpty) {
  Enrolled e = enroll();
  FakeContext unset = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(unset, {"try_first_pass"}), PAM_SUCCESS);
  EXPECT_EQ(unset.prompts.size(), 1u);

  FakeContext empty = with_answers({e.code_at(kT0 + 30)});
  empty.authtok_item = "";
  EXPECT_EQ(run(empty, {"try_first_pass"}), PAM_SUCCESS);
  EXPECT_EQ(empty.prompts.size(), 1u);
}

// pam_unix (and google-authenticator's) meaning of try_first_pass: when the earlier module's
// token does not satisfy this module, ask. With `pam_unix` before this module, PAM_AUTHTOK holds
// the password, which is never a code.
TEST_F(FlowTest, TryFirstPassPromptsWhenAuthtokIsNotAValidCode) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  ctx.authtok_item = "correct horse battery";
  EXPECT_EQ(run(ctx, {"try_first_pass"}), PAM_SUCCESS) << ctx.all_logs();
  EXPECT_EQ(ctx.prompts.size(), 1u);
}

// A password of letters and digits could pass for an imported scratch code; checking it would
// count a failure (and with max_failures = 1 lock the user out before the prompt).
TEST_F(FlowTest, TryFirstPassNeverChecksAPasswordAsACode) {
  files_.write_config("max_failures = 1\n");
  Enrolled e = enroll();
  for (const char* password : {"hunter22", "12345678", "abcdefghij", "Abcd-efgh-jkmn"}) {
    FakeContext ctx = with_answers({e.code_at(clock_.now())});
    ctx.authtok_item = password;
    EXPECT_EQ(run(ctx, {"try_first_pass"}), PAM_SUCCESS) << password << "\n" << ctx.all_logs();
    EXPECT_EQ(ctx.prompts.size(), 1u) << password;
    clock_.advance(30);
  }
  // A recovery code as printed is still taken from PAM_AUTHTOK.
  FakeContext rc = with_answers({});
  rc.authtok_item = e.recovery_codes[0];
  EXPECT_EQ(run(rc, {"try_first_pass"}), PAM_SUCCESS);
  EXPECT_EQ(rc.prompts.size(), 0u);
}

TEST_F(FlowTest, ForwardPassSplitsPasswordAndCode) {
  Enrolled e = enroll();
  std::string code = e.code_at(kT0);
  FakeContext ctx = with_answers({"hunter2" + code});
  never_log("hunter2");
  EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_SUCCESS);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(ctx.prompts[0].text, "Password and security code: ");
  EXPECT_FALSE(ctx.prompts[0].echo);
  EXPECT_EQ(ctx.authtok_sets, std::vector<std::string>{"hunter2"});
}

TEST_F(FlowTest, ForwardPassKeepsDigitsOfThePassword) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({"pass1234" + e.code_at(kT0)});
  never_log("pass1234");
  EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_SUCCESS);
  EXPECT_EQ(ctx.authtok_sets, std::vector<std::string>{"pass1234"});
}

TEST_F(FlowTest, ForwardPassAcceptsARecoveryCodeAtTheEnd) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({"hunter2" + e.recovery_codes[0]});
  never_log("hunter2");
  EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_SUCCESS);
  EXPECT_EQ(outcome_of(ctx), "recovery-code-accepted");
  EXPECT_EQ(ctx.authtok_sets, std::vector<std::string>{"hunter2"});
}

TEST_F(FlowTest, ForwardPassWithoutACodeForwardsThePasswordAndFails) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({"hunter2"});
  EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_AUTH_ERR);
  EXPECT_EQ(ctx.authtok_sets, std::vector<std::string>{"hunter2"});
}

TEST_F(FlowTest, ForwardPassWithAnEmptyPassword) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ctx, {"forward_pass"}), PAM_SUCCESS);
  EXPECT_EQ(ctx.authtok_sets, std::vector<std::string>{""});
}

TEST_F(FlowTest, ForwardPassUsesACustomPromptAndNeverEchoes) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({"hunter2" + e.code_at(kT0)});
  EXPECT_EQ(run(ctx, {"forward_pass", "echo_code", "prompt=Password+code: "}), PAM_SUCCESS);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(ctx.prompts[0].text, "Password+code: ");
  EXPECT_FALSE(ctx.prompts[0].echo) << "the answer holds the password";
}

struct LookAlikeCase {
  const char* name;
  std::vector<std::string> args;
  bool authtok_set;  // an earlier module left a (wrong) code in PAM_AUTHTOK
};
void PrintTo(const LookAlikeCase& c, std::ostream* os) { *os << c.name; }

class LookAlikeFlowTest : public FlowTest, public ::testing::WithParamInterface<LookAlikeCase> {};

// Whatever the arguments, an enrolled user typing a wrong code, a required user who is not
// enrolled and a user who does not exist see the same conversation and the same result, and
// the next module gets the same PAM_AUTHTOK: nothing tells an attacker which one it was.
TEST_P(LookAlikeFlowTest, EnrolledUnenrolledAndUnknownUsersLookTheSame) {
  const LookAlikeCase& c = GetParam();
  Enrolled e = enroll(kUser);
  struct Seen {
    int rc;
    std::vector<std::string> prompts;  // text, then "+echo" when echoed
    std::vector<std::string> authtok_sets;
  };
  auto observe = [&](const char* user) {
    FakeContext ctx = with_answers({"hunter2" + e.wrong_code_at(kT0)}, user);
    if (c.authtok_set) ctx.authtok_item = e.wrong_code_at(kT0);
    Seen seen{run(ctx, c.args), {}, ctx.authtok_sets};
    for (const auto& p : ctx.prompts) seen.prompts.push_back(p.text + (p.echo ? "+echo" : ""));
    return seen;
  };
  Seen enrolled = observe(kUser);
  EXPECT_EQ(enrolled.rc, PAM_AUTH_ERR);
  for (const char* user : {kOtherUser, kNoSuchUser}) {
    Seen other = observe(user);
    EXPECT_EQ(other.rc, enrolled.rc) << user;
    EXPECT_EQ(other.prompts, enrolled.prompts) << user;
    EXPECT_EQ(other.authtok_sets, enrolled.authtok_sets) << user;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Args, LookAlikeFlowTest,
    ::testing::Values(LookAlikeCase{"NoArguments", {}, false},
                      LookAlikeCase{"EchoCode", {"echo_code"}, false},
                      LookAlikeCase{"Prompt", {"prompt=Token: "}, false},
                      LookAlikeCase{"UseFirstPass", {"use_first_pass"}, true},
                      LookAlikeCase{"UseFirstPassUnset", {"use_first_pass"}, false},
                      LookAlikeCase{"TryFirstPass", {"try_first_pass"}, true},
                      LookAlikeCase{"TryFirstPassUnset", {"try_first_pass"}, false},
                      LookAlikeCase{"ForwardPass", {"forward_pass"}, false},
                      LookAlikeCase{"ForwardPassEchoCode", {"forward_pass", "echo_code"}, false}),
    [](const auto& test_case) { return std::string(test_case.param.name); });

TEST_F(FlowTest, EchoCodeSetsTheEchoFlag) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ctx, {"echo_code"}), PAM_SUCCESS);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_TRUE(ctx.prompts[0].echo);

  FakeContext unenrolled = with_answers({"123456"}, kOtherUser);
  EXPECT_EQ(run(unenrolled, {"echo_code"}), PAM_AUTH_ERR);
  ASSERT_EQ(unenrolled.prompts.size(), 1u);
  EXPECT_TRUE(unenrolled.prompts[0].echo);
}

TEST_F(FlowTest, FailDelayIsAskedForUnlessNodelay) {
  Enrolled e = enroll();
  FakeContext delayed = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(delayed), PAM_AUTH_ERR);
  EXPECT_EQ(delayed.fail_delays, std::vector<unsigned>{kFailDelayUs});

  FakeContext nodelay = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(nodelay, {"nodelay"}), PAM_AUTH_ERR);
  EXPECT_TRUE(nodelay.fail_delays.empty());

  FakeContext unknown = with_answers({"123456"}, kNoSuchUser);
  EXPECT_EQ(run(unknown), PAM_AUTH_ERR);
  EXPECT_EQ(unknown.fail_delays, std::vector<unsigned>{kFailDelayUs});
}

TEST_F(FlowTest, PromptArgumentSetsThePromptText) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(ctx, {"prompt=Your code: "}), PAM_SUCCESS);
  ASSERT_EQ(ctx.prompts.size(), 1u);
  EXPECT_EQ(ctx.prompts[0].text, "Your code: ");

  FakeContext max = with_answers({"123456"}, kOtherUser);
  std::string longest(256, 'p');
  EXPECT_EQ(run(max, {"prompt=" + longest}), PAM_AUTH_ERR);
  ASSERT_EQ(max.prompts.size(), 1u);
  EXPECT_EQ(max.prompts[0].text, longest);
}

// ---------------------------------------------------------------------------------------------
// PAM_SILENT, exempt networks, the log line.

TEST_F(FlowTest, SilentSuppressesMessagesButNotOutcomes) {
  files_.write_config("max_failures = 1\n");
  opts_.silent = true;
  Enrolled e = enroll(kUser, 2);
  FakeContext recovery = with_answers({e.recovery_codes[0]});
  EXPECT_EQ(run(recovery), PAM_SUCCESS);
  EXPECT_TRUE(recovery.messages.empty()) << recovery.all_messages();

  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
  EXPECT_EQ(run(wrong), PAM_AUTH_ERR);
  EXPECT_TRUE(wrong.messages.empty()) << wrong.all_messages();

  FakeContext locked = with_answers({e.code_at(kT0)});
  EXPECT_EQ(run(locked), PAM_AUTH_ERR);
  EXPECT_EQ(outcome_of(locked), "locked-out");
  EXPECT_TRUE(locked.messages.empty()) << locked.all_messages();
}

struct NetworkCase {
  const char* name;
  const char* networks;
  const char* rhost;
  bool exempt;
};
void PrintTo(const NetworkCase& c, std::ostream* os) { *os << c.name; }

class ExemptNetworkFlowTest : public FlowTest, public ::testing::WithParamInterface<NetworkCase> {};

TEST_P(ExemptNetworkFlowTest, SkipsTheCodeOnlyInside) {
  const NetworkCase& c = GetParam();
  files_.write_config(std::string("exempt_networks = ") + c.networks + "\n");
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  ctx.remote_host = c.rhost;
  if (c.exempt) {
    EXPECT_EQ(run(ctx), PAM_IGNORE);
    EXPECT_EQ(ctx.prompts.size(), 0u);
    EXPECT_EQ(outcome_of(ctx), "exempt");
  } else {
    EXPECT_EQ(run(ctx), PAM_SUCCESS);
    EXPECT_EQ(ctx.prompts.size(), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Networks, ExemptNetworkFlowTest,
    ::testing::Values(NetworkCase{"V4Inside", "10.0.0.0/8", "10.1.2.3", true},
                      NetworkCase{"V4Outside", "10.0.0.0/8", "11.1.2.3", false},
                      NetworkCase{"V4LastAddress", "192.0.2.0/24", "192.0.2.255", true},
                      NetworkCase{"V4NextNetwork", "192.0.2.0/24", "192.0.3.0", false},
                      NetworkCase{"V4OddPrefixInside", "192.0.2.64/26", "192.0.2.127", true},
                      NetworkCase{"V4OddPrefixOutside", "192.0.2.64/26", "192.0.2.128", false},
                      NetworkCase{"V4Host", "192.0.2.7/32", "192.0.2.7", true},
                      NetworkCase{"V4NeighbourOfHost", "192.0.2.7/32", "192.0.2.8", false},
                      NetworkCase{"V4Everything", "0.0.0.0/0", "198.51.100.1", true},
                      NetworkCase{"V4MappedInV6", "10.0.0.0/8", "::ffff:10.1.2.3", true},
                      NetworkCase{"V6Inside", "fd00::/8", "fd12:3456::1", true},
                      NetworkCase{"V6Outside", "fd00::/8", "fe80::1", false},
                      NetworkCase{"V6Documentation", "2001:db8::/32", "2001:db8:ffff::1", true},
                      NetworkCase{"V6NextNetwork", "2001:db8::/32", "2001:db9::1", false},
                      NetworkCase{"V6Loopback", "::1/128", "::1", true},
                      NetworkCase{"V6NetworkV4Host", "::/0", "10.1.2.3", false},
                      NetworkCase{"V4NetworkV6Host", "0.0.0.0/0", "2001:db8::1", false},
                      NetworkCase{"SecondOfAList", "10.0.0.0/8, fd00::/8", "fd00::5", true},
                      NetworkCase{"LocalLogin", "0.0.0.0/0, ::/0", "", false},
                      NetworkCase{"HostNameThatLooksLikeAnAddress", "10.0.0.0/8",
                                  "10.1.2.3.example.com", false},
                      NetworkCase{"AddressWithTrailingGarbage", "10.0.0.0/8", "10.1.2.3x", false}),
    [](const auto& test_case) { return std::string(test_case.param.name); });

TEST_F(FlowTest, EveryOutcomeIsOneLogLineWithServiceUserHostAndOutcome) {
  Enrolled e = enroll();
  FakeContext ctx = with_answers({e.code_at(kT0)});
  ctx.service_name = "sshd";
  ctx.remote_host = "198.51.100.23";
  ASSERT_EQ(run(ctx), PAM_SUCCESS);
  ASSERT_EQ(ctx.logs.size(), 1u);
  const std::string& line = ctx.logs[0].text;
  EXPECT_NE(line.find("service=sshd"), std::string::npos) << line;
  EXPECT_NE(line.find("user=daemon"), std::string::npos) << line;
  EXPECT_NE(line.find("rhost=198.51.100.23"), std::string::npos) << line;
  EXPECT_NE(line.find("outcome=accepted"), std::string::npos) << line;
  EXPECT_EQ(ctx.logs[0].level, LogLevel::kInfo);

  FakeContext wrong = with_answers({e.wrong_code_at(kT0)});
  ASSERT_EQ(run(wrong), PAM_AUTH_ERR);
  ASSERT_EQ(wrong.logs.size(), 1u);
  EXPECT_NE(wrong.logs[0].text.find("rhost=-"), std::string::npos) << wrong.logs[0].text;
  EXPECT_EQ(wrong.logs[0].level, LogLevel::kNotice);
}

TEST_F(FlowTest, LogLineCannotBeSplitOrForgedByTheRemoteHostOrUserName) {
  FakeContext ctx = with_answers({"123456"}, "evil\nuser outcome=accepted");
  ctx.remote_host = "host\n\x1b[31m outcome=accepted";
  EXPECT_EQ(run(ctx), PAM_AUTH_ERR);
  ASSERT_EQ(ctx.logs.size(), 1u);
  const std::string& line = ctx.logs[0].text;
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  // Fields are separated by spaces; escaped spaces cannot start a forged field.
  std::size_t fields = 0;
  for (std::size_t at = line.find(" outcome="); at != std::string::npos;
       at = line.find(" outcome=", at + 1)) {
    ++fields;
  }
  EXPECT_EQ(fields, 1u) << line;
  EXPECT_NE(line.find(" outcome=unknown-user"), std::string::npos) << line;
}

TEST_F(FlowTest, LogsNeverHoldCodesPasswordsOrSecrets) {
  // TearDown checks every test's log lines; this one walks the outcomes that type something.
  files_.write_config("max_failures = 2\n");
  Enrolled e = enroll(kUser, 2);
  std::string code = e.code_at(kT0);
  std::string wrong_code = e.wrong_code_at(kT0);
  for (const std::string& typed :
       {wrong_code, code, code, e.recovery_codes[0], wrong_code, wrong_code, code}) {
    FakeContext ctx = with_answers({typed});
    ctx.remote_host = "192.0.2.1";
    run(ctx, {"debug"});
  }
  FakeContext unknown = with_answers({"987654"}, kNoSuchUser);
  run(unknown, {"debug"});
  EXPECT_FALSE(logs_.empty());
  EXPECT_EQ(logs_.find(code), std::string::npos);
  EXPECT_EQ(logs_.find(secret_base32(e.enrollment)), std::string::npos);
}

}  // namespace
}  // namespace pbx::pam::testing

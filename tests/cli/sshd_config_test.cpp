// The sshd_config reader over files in memory: keywords, Include globs, Match blocks, loops.
#include "doctor/sshd_config.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pbx::cli::doctor {
namespace {

using Lines = std::vector<std::string>;

const std::string kTop = "/etc/ssh/sshd_config";

SshdConfig read_ok(const FileReader& files, const std::string& path = kTop) {
  std::string error;
  auto cfg = read_sshd_config(path, files, error);
  EXPECT_TRUE(cfg.has_value()) << error;
  return cfg ? *cfg : SshdConfig{};
}

std::string value(const SshdConfig& cfg, const std::string& key) {
  auto it = cfg.global.find(key);
  return it == cfg.global.end() ? "(unset)" : it->second.value;
}
std::string where(const SshdConfig& cfg, const std::string& key) {
  auto it = cfg.global.find(key);
  return it == cfg.global.end() ? "(unset)" : it->second.where;
}

TEST(SshdConfig, KeywordFormsCaseAndTheFirstValueWins) {
  MemoryFiles files({{kTop,
                      "# comment\n"
                      "   # indented comment\n"
                      "USEPAM yes\n"
                      "UsePAM no\n"
                      "KbdInteractiveAuthentication=no\n"
                      "PasswordAuthentication  =  no  \r\n"
                      "\tPubkeyAuthentication\tyes # not a comment to sshd either\n"
                      "AuthenticationMethods publickey,keyboard-interactive password\n"
                      "X11Forwarding yes\n"}});
  SshdConfig cfg = read_ok(files);
  EXPECT_EQ(value(cfg, "usepam"), "yes");
  EXPECT_EQ(where(cfg, "usepam"), kTop + ":3");
  EXPECT_EQ(value(cfg, "kbdinteractiveauthentication"), "no");
  EXPECT_EQ(value(cfg, "passwordauthentication"), "no");
  EXPECT_EQ(value(cfg, "pubkeyauthentication"), "yes # not a comment to sshd either");
  EXPECT_EQ(value(cfg, "authenticationmethods"), "publickey,keyboard-interactive password");
  EXPECT_EQ(cfg.global.count("x11forwarding"), 0U) << "only the settings doctor checks";
  EXPECT_EQ(cfg.files, 1U);
  EXPECT_EQ(cfg.match_blocks, 0);
  EXPECT_TRUE(cfg.problems.empty());
}

TEST(SshdConfig, ChallengeResponseIsTheOldNameOfKbdInteractive) {
  MemoryFiles files(
      {{kTop, "ChallengeResponseAuthentication no\nKbdInteractiveAuthentication yes\n"}});
  SshdConfig cfg = read_ok(files);
  EXPECT_EQ(value(cfg, "kbdinteractiveauthentication"), "no");
  EXPECT_EQ(where(cfg, "kbdinteractiveauthentication"), kTop + ":1");
}

TEST(SshdConfig, AKeywordWithoutAValue) {
  MemoryFiles files({{kTop, "UsePAM\nPasswordAuthentication=\n"}});
  SshdConfig cfg = read_ok(files);
  EXPECT_EQ(value(cfg, "usepam"), "");
  EXPECT_EQ(value(cfg, "passwordauthentication"), "");
}

TEST(SshdConfig, TheTopFileMustBeReadable) {
  MemoryFiles files;
  std::string error;
  EXPECT_FALSE(read_sshd_config(kTop, files, error).has_value());
  EXPECT_EQ(error, "No such file or directory");
  files.add_unreadable(kTop, "not a regular file");
  EXPECT_FALSE(read_sshd_config(kTop, files, error).has_value());
  EXPECT_EQ(error, "not a regular file");
}

TEST(SshdConfig, IncludeGlobsAreReadInPlaceInOrder) {
  MemoryFiles files({{kTop,
                      "Include /etc/ssh/sshd_config.d/*.conf\n"
                      "UsePAM no\n"
                      "PasswordAuthentication no\n"},
                     {"/etc/ssh/sshd_config.d/50-b.conf", "UsePAM yes\n"},
                     {"/etc/ssh/sshd_config.d/10-a.conf", "PasswordAuthentication yes\n"},
                     {"/etc/ssh/sshd_config.d/.hidden.conf", "KbdInteractiveAuthentication no\n"},
                     {"/etc/ssh/sshd_config.d/README", "UsePAM maybe\n"},
                     {"/etc/ssh/sshd_config.d/sub/x.conf", "PubkeyAuthentication no\n"}});
  SshdConfig cfg = read_ok(files);
  // The drop-ins come first, so their values win; '*' matches no '/' and no leading '.'.
  EXPECT_EQ(value(cfg, "usepam"), "yes");
  EXPECT_EQ(where(cfg, "usepam"), "/etc/ssh/sshd_config.d/50-b.conf:1");
  EXPECT_EQ(value(cfg, "passwordauthentication"), "yes");
  EXPECT_EQ(cfg.global.count("kbdinteractiveauthentication"), 0U);
  EXPECT_EQ(cfg.global.count("pubkeyauthentication"), 0U);
  EXPECT_EQ(cfg.files, 3U);
  EXPECT_TRUE(cfg.problems.empty());
}

TEST(SshdConfig, RelativeAndQuotedIncludesAreTakenFromTheTopFilesDirectory) {
  MemoryFiles files({{"/srv/ssh/main.conf",
                      "Include \"d/a.conf\" b.conf\n"
                      "Include /srv/ssh/d/c.conf\n"},
                     {"/srv/ssh/d/a.conf", "Include d/nested.conf\n"},
                     {"/srv/ssh/d/nested.conf", "UsePAM yes\n"},
                     {"/srv/ssh/b.conf", "PasswordAuthentication no\n"},
                     {"/srv/ssh/d/c.conf", "PubkeyAuthentication no\n"}});
  SshdConfig cfg = read_ok(files, "/srv/ssh/main.conf");
  // A relative name inside an included file is still taken from the top file's directory.
  EXPECT_EQ(where(cfg, "usepam"), "/srv/ssh/d/nested.conf:1");
  EXPECT_EQ(where(cfg, "passwordauthentication"), "/srv/ssh/b.conf:1");
  EXPECT_EQ(where(cfg, "pubkeyauthentication"), "/srv/ssh/d/c.conf:1");
  EXPECT_EQ(cfg.files, 5U);
}

TEST(SshdConfig, ATopFileWithoutADirectory) {
  MemoryFiles files({{"main.conf", "Include d.conf\n"}, {"./d.conf", "UsePAM yes\n"}});
  SshdConfig cfg = read_ok(files, "main.conf");
  EXPECT_EQ(where(cfg, "usepam"), "./d.conf:1");
  MemoryFiles root({{"/sshd_config", "Include d.conf\n"}, {"//d.conf", "UsePAM yes\n"}});
  EXPECT_EQ(where(read_ok(root, "/sshd_config"), "usepam"), "//d.conf:1");
}

TEST(SshdConfig, AnIncludeMatchingNothingIsNoProblem) {
  MemoryFiles files({{kTop, "Include /nonexistent/*.conf missing.conf\nInclude\nUsePAM yes\n"}});
  SshdConfig cfg = read_ok(files);
  EXPECT_TRUE(cfg.problems.empty());
  EXPECT_EQ(cfg.files, 1U);
  EXPECT_EQ(value(cfg, "usepam"), "yes");
}

TEST(SshdConfig, AnUnreadableIncludeIsAProblem) {
  MemoryFiles files({{kTop, "Include /etc/ssh/d/*.conf\nUsePAM yes\n"},
                     {"/etc/ssh/d/b.conf", "PasswordAuthentication no\n"}});
  files.add_unreadable("/etc/ssh/d/a.conf", "not a regular file");
  SshdConfig cfg = read_ok(files);
  EXPECT_EQ(cfg.problems, (Lines{kTop + ":1: Include /etc/ssh/d/a.conf: not a regular file"}));
  EXPECT_EQ(value(cfg, "passwordauthentication"), "no") << "the others are still read";
  EXPECT_EQ(cfg.files, 2U);
}

TEST(SshdConfig, MatchBlocksRunToTheEndOfTheirFile) {
  MemoryFiles files(
      {{kTop,
        "UsePAM yes\n"
        "Include /etc/ssh/d/*.conf\n"
        "AuthenticationMethods publickey,keyboard-interactive\n"
        "Match User backup\n"
        "\tAuthenticationMethods publickey\n"
        "\tX11Forwarding no\n"
        "Match all\n"
        "  UsePAM no\n"
        "  Include /etc/ssh/m/*.conf\n"},
       {"/etc/ssh/d/a.conf", "Match Address 10.0.0.0/8\n  PasswordAuthentication yes\n"},
       {"/etc/ssh/d/b.conf", "PasswordAuthentication no\n"},
       {"/etc/ssh/m/c.conf", "PubkeyAuthentication no\n"}});
  SshdConfig cfg = read_ok(files);
  EXPECT_EQ(cfg.match_blocks, 3);
  // A Match in an included file ends with that file: b.conf's setting is global.
  EXPECT_EQ(where(cfg, "passwordauthentication"), "/etc/ssh/d/b.conf:1");
  EXPECT_EQ(where(cfg, "authenticationmethods"), kTop + ":3");
  EXPECT_EQ(value(cfg, "usepam"), "yes");
  // An Include inside a Match block counts as inside.
  EXPECT_EQ(cfg.global.count("pubkeyauthentication"), 0U);
  EXPECT_EQ(cfg.match_overrides,
            (Lines{"/etc/ssh/d/a.conf:2: PasswordAuthentication yes",
                   kTop + ":5: AuthenticationMethods publickey", kTop + ":8: UsePAM no",
                   "/etc/ssh/m/c.conf:1: PubkeyAuthentication no"}));
}

TEST(SshdConfig, AnIncludeLoopEndsWithAProblem) {
  MemoryFiles files({{kTop, "Include sshd_config\nUsePAM yes\n"}});
  SshdConfig cfg = read_ok(files);
  EXPECT_EQ(cfg.files, 17U) << "the top file and 16 levels";
  EXPECT_EQ(cfg.problems, (Lines{kTop + ":1: Include nested too deep (a loop?)"}));
  EXPECT_EQ(where(cfg, "usepam"), kTop + ":2");
}

TEST(SshdConfig, IncludesThatFanOutStopAtTheFileCap) {
  MemoryFiles files({{kTop, "Include sshd_config sshd_config\n"}});
  SshdConfig cfg = read_ok(files);
  EXPECT_EQ(cfg.files, kMaxIncludedFiles);
  bool capped = false;
  for (const auto& p : cfg.problems) capped |= p.find("too many included files") != p.npos;
  EXPECT_TRUE(capped);
}

}  // namespace
}  // namespace pbx::cli::doctor

// The settings of an sshd_config that decide whether sshd asks PAM for the code, Includes
// followed and Match blocks noted.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "file_reader.hpp"

namespace pbx::cli::doctor {

struct SshdValue {
  std::string value;  // everything after the keyword
  std::string where;  // FILE:LINE
};

struct SshdConfig {
  // usepam, kbdinteractiveauthentication (also from ChallengeResponseAuthentication),
  // authenticationmethods, passwordauthentication, pubkeyauthentication: lower case, outside
  // Match blocks, the first value wins (as in sshd).
  std::map<std::string, SshdValue> global;
  std::vector<std::string> match_overrides;  // "FILE:LINE: line" for those keys inside Match
  int match_blocks = 0;
  std::size_t files = 0;              // the top file and every included file read
  std::vector<std::string> problems;  // Includes not followed, for people
};

// Reads `path` and its Includes (globs; a relative name is taken from the directory of `path`,
// as sshd takes it from /etc/ssh; a glob matching nothing is no problem). "Keyword value",
// "Keyword=value" and "Keyword = value"; '#' starts a comment line. A Match block runs to the
// end of its file, and an Include inside it counts as inside. At most kMaxIncludeDepth levels
// and kMaxIncludedFiles files. nullopt, with the reason in `error`, when `path` itself cannot
// be read.
std::optional<SshdConfig> read_sshd_config(const std::string& path, const FileReader& files,
                                           std::string& error);

}  // namespace pbx::cli::doctor

#include "sshd_config.hpp"

#include <set>
#include <utility>

#include "pbx/totp/strings.hpp"

namespace pbx::cli::doctor {
namespace {

const std::set<std::string>& relevant_keys() {
  static const std::set<std::string> kKeys = {"usepam", "kbdinteractiveauthentication",
                                              "authenticationmethods", "passwordauthentication",
                                              "pubkeyauthentication"};
  return kKeys;
}

class SshdReader {
 public:
  SshdReader(std::string base_dir, const FileReader& files)
      : base_dir_(std::move(base_dir)), files_(files) {}

  void parse(const std::string& path, const std::string& text, bool in_match, int depth,
             SshdConfig& out) {
    ++out.files;
    std::vector<std::string_view> lines = totp::split_lines(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      std::string_view line = totp::trim(lines[i]);
      if (line.empty() || line.front() == '#') continue;
      std::string where = path + ":" + std::to_string(i + 1);
      // "Keyword value", "Keyword=value" or "Keyword = value".
      std::size_t end = line.find_first_of(" \t=");
      std::string key = totp::to_lower(line.substr(0, end));
      std::string_view value =
          end == std::string_view::npos ? std::string_view{} : line.substr(end);
      value = totp::trim(value);
      if (!value.empty() && value.front() == '=') value = totp::trim(value.substr(1));
      if (key == "challengeresponseauthentication") key = "kbdinteractiveauthentication";
      if (key == "match") {
        in_match = true;  // until the end of this file: sshd has no end marker
        ++out.match_blocks;
        continue;
      }
      if (key == "include") {
        include(value, where, in_match, depth, out);
        continue;
      }
      if (relevant_keys().count(key) == 0) continue;
      if (in_match) {
        out.match_overrides.push_back(where + ": " + std::string(line));
      } else if (out.global.count(key) == 0) {
        out.global[key] = SshdValue{std::string(value), where};
      }
    }
  }

 private:
  void include(std::string_view value, const std::string& where, bool in_match, int depth,
               SshdConfig& out) {
    if (depth >= kMaxIncludeDepth) {
      out.problems.push_back(where + ": Include nested too deep (a loop?)");
      return;
    }
    for (std::string_view word : totp::split_ws(value)) {
      std::string pattern(word);
      if (pattern.size() >= 2 && pattern.front() == '"' && pattern.back() == '"') {
        pattern = pattern.substr(1, pattern.size() - 2);
      }
      // Relative names are relative to the directory of the top file, as sshd takes them
      // relative to /etc/ssh.
      if (pattern.empty()) continue;
      if (pattern.front() != '/') pattern.insert(0, base_dir_ + "/");
      for (const auto& file : files_.glob(pattern)) {
        if (out.files >= kMaxIncludedFiles) {
          out.problems.push_back(where + ": too many included files");
          break;
        }
        std::string error;
        auto text = files_.read(file, error);
        if (!text) {
          std::string problem = where;
          problem.append(": Include ").append(file).append(": ").append(error);
          out.problems.push_back(std::move(problem));
          continue;
        }
        parse(file, *text, in_match, depth + 1, out);
      }
    }
  }

  std::string base_dir_;
  const FileReader& files_;
};

}  // namespace

std::optional<SshdConfig> read_sshd_config(const std::string& path, const FileReader& files,
                                           std::string& error) {
  auto text = files.read(path, error);
  if (!text) return std::nullopt;
  SshdConfig out;
  SshdReader(totp::dir_name(path), files).parse(path, *text, false, 0, out);
  return out;
}

}  // namespace pbx::cli::doctor

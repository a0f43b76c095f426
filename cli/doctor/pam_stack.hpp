// The auth stack of a PAM service as libpam builds it: @include, include and substack followed.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "file_reader.hpp"

namespace pbx::cli::doctor {

struct PamEntry {
  std::string control;  // "required", "[success=1 default=ignore]"
  std::string module;   // base name: "pam_unix.so"
  std::vector<std::string> args;
  std::string where;  // FILE:LINE
};

// Splits a PAM line into fields; a field opening with '[' runs to the matching ']', its white
// space folded to single spaces.
std::vector<std::string> pam_fields(std::string_view line);

// Reads the services of one PAM directory (like /etc/pam.d). Comments ('#' to the end of the
// line) are dropped and a trailing backslash continues a line. Only names inside the directory
// are followed: an include naming a path is a problem, not a file read.
class PamStackReader {
 public:
  PamStackReader(std::string dir, const FileReader& files) : dir_(std::move(dir)), files_(files) {}

  // The auth lines of `service` in order, includes and substacks expanded in place. A service
  // that cannot be read has an empty stack (an included file that cannot be read is a problem).
  std::vector<PamEntry> auth_stack(const std::string& service);

  // Every name an include or substack named so far (include files are not services).
  const std::set<std::string>& included() const { return included_; }
  // What could not be followed, for people: "DIR/x (included): No such file or directory".
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  void expand(const std::string& service, int depth, std::vector<PamEntry>& out);
  void note(std::string problem);  // once

  std::string dir_;
  const FileReader& files_;
  std::string top_;             // the service of the current auth_stack()
  std::size_t files_read_ = 0;  // files read for it
  std::set<std::string> included_;
  std::vector<std::string> problems_;
};

}  // namespace pbx::cli::doctor

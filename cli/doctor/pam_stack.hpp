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
  // What libpam makes of the line. auth_stack() has only kModule entries; auth_flow() also has
  // the others, in the places libpam puts them.
  enum class Kind {
    kModule,
    kSubstack,  // "auth substack NAME": its entries follow, one level deeper
    kFail,      // an include libpam cannot load (missing, unreadable, nested too deep): fails
    kUnknown,   // an include doctor does not follow (a path, over the file cap): anything
  };
  std::string control;  // "required", "[success=1 default=ignore]"
  std::string module;   // base name: "pam_unix.so"
  std::vector<std::string> args;
  std::string where;  // FILE:LINE
  std::string path;   // the module as written: "pam_unix.so", "/usr/lib/security/pam_x.so"
  Kind kind = Kind::kModule;
  int level = 0;  // substack nesting (include and @include inline at the same level)
};

// Splits a PAM line into fields; a field opening with '[' runs to the matching ']', its white
// space folded to single spaces.
std::vector<std::string> pam_fields(std::string_view line);

// The kModule entries of a flow from auth_flow(): what auth_stack() returns.
std::vector<PamEntry> modules_only(std::vector<PamEntry> flow);

// Reads the services of one PAM directory (like /etc/pam.d). Comments ('#' to the end of the
// line) are dropped and a trailing backslash continues a line. Only names inside the directory
// are followed: an include naming a path is a problem, not a file read.
class PamStackReader {
 public:
  PamStackReader(std::string dir, const FileReader& files) : dir_(std::move(dir)), files_(files) {}

  // The auth lines of `service` in order, includes and substacks expanded in place. A service
  // that cannot be read has an empty stack (an included file that cannot be read is a problem).
  std::vector<PamEntry> auth_stack(const std::string& service);
  // The same with the substack, failing-include and unfollowed-include entries that libpam's
  // dispatcher sees (pam_walk.hpp walks it).
  std::vector<PamEntry> auth_flow(const std::string& service);

  // Every name an include or substack named so far (include files are not services).
  const std::set<std::string>& included() const { return included_; }
  // What could not be followed, for people: "DIR/x (included): No such file or directory".
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  enum class Expanded { kRead, kFailed, kNotFollowed };
  Expanded expand(const std::string& service, int depth, int level, std::vector<PamEntry>& out);
  void note(std::string problem);  // once

  std::string dir_;
  const FileReader& files_;
  std::string top_;             // the service of the current auth_stack()
  std::size_t files_read_ = 0;  // files read for it
  std::set<std::string> included_;
  std::vector<std::string> problems_;
};

}  // namespace pbx::cli::doctor

#include "pbx/totp/checked_file.hpp"

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "file_util.hpp"

namespace pbx::totp {
namespace {

Error open_error(const char* what, const std::string& path, int err) {
  return make_error(Errc::kIo,
                    std::string(what) + " " + path + ": cannot open: " + detail::errno_text(err));
}

// The real path behind `path`, or nullopt with the errno in `err`.
std::optional<std::string> resolve(const std::string& path, int& err) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (!real) {
    err = errno;
    return std::nullopt;
  }
  return std::string(real.get());
}

}  // namespace

Result<std::optional<std::string>> read_checked_text(const std::string& path,
                                                     const FileCheck& check, const char* what) {
  // Following a link: open what it names. open_checked_file still refuses a link that appears
  // at that place in between, so the file read is always one that passed the checks.
  if (check.follow_symlinks && check.owner) {
    return make_error(Errc::kInvalid, std::string(what) + " " + path +
                                          ": a required owner cannot be checked through a link");
  }
  std::string target = path;
  if (check.follow_symlinks) {
    int err = 0;
    auto real = resolve(path, err);
    if (!real) {
      if (err == ENOENT) return std::optional<std::string>{};
      return open_error(what, path, err);
    }
    target = *real;
  }
  auto read = detail::read_checked_file(target, check, what);
  if (!read) {
    Error e = read.error();
    // Messages name the path the caller gave, not the link's target.
    std::string prefix = std::string(what) + " " + target + ": ";
    if (target != path && e.message.rfind(prefix, 0) == 0) {
      e.message = std::string(what) + " " + path + ": " + e.message.substr(prefix.size());
    }
    return e;
  }
  if (!*read) return std::optional<std::string>{};
  return std::optional<std::string>(std::string((*read)->view()));
}

}  // namespace pbx::totp

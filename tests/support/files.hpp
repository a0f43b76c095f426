// write_file: the one way the tests write a file with an exact owner and mode.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace pbx::test_support {

// Writes `content` to `path` (created or truncated, never through a symlink), then sets owner
// and mode exactly. The owner defaults to the caller, so a test that needs root's files says 0.
inline bool write_file(const std::string& path, std::string_view content, mode_t mode = 0600,
                       uid_t uid = ::geteuid(), gid_t gid = ::getegid()) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) {
      ::close(fd);
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  bool ok = ::fchown(fd, uid, gid) == 0 && ::fchmod(fd, mode) == 0;
  return ::close(fd) == 0 && ok;
}

}  // namespace pbx::test_support

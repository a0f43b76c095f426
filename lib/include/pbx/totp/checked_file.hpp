// The library's checked file read (regular file, owner, mode, size), for the CLI (doctor).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>

#include "pbx/totp/result.hpp"

namespace pbx::totp {

// What a file must be before it is read. Never blocks on a FIFO; only regular files pass.
struct FileCheck {
  std::optional<uid_t> owner;    // the required owner (root also accepts the caller's own
                                 // files when not root, as everywhere in the library); nullopt:
                                 // any owner
  mode_t forbidden = 0;          // mode bits that refuse the file (022: writable by others)
  std::size_t max_size = 0;      // larger files are refused
  bool follow_symlinks = false;  // resolve symbolic links first instead of refusing one
};

// The text of `path` once it passes `check`; nullopt when it does not exist (a dangling link
// included). Errors read "WHAT PATH: REASON" (kUnsafe for a refused file, kIo for a failed
// system call), with `path` as given.
Result<std::optional<std::string>> read_checked_text(const std::string& path,
                                                     const FileCheck& check, const char* what);

}  // namespace pbx::totp

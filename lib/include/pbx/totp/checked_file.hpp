// The library's checked file read (regular file, owner, mode, size), for the CLI (doctor).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>

#include "pbx/totp/result.hpp"

namespace pbx::totp {

// What a checked open demands of a file besides being a regular file (never blocking on a
// FIFO). The defaults are the strictest; a caller widens what it must, in plain sight. The one
// description of a safe file for the whole library (file_util.hpp's opens take it too).
struct FileCheck {
  // The required owner (root also accepts the caller's own files when not root, as everywhere
  // in the library); nullopt: any owner (a file a user named, opened with their fs ids).
  std::optional<uid_t> owner = 0;
  mode_t forbidden_mode = 077;  // permission bits the file must not have (0: any mode)
  std::size_t max_size = std::size_t{64} * 1024;  // larger files are refused
  bool follow_symlinks = false;  // read_checked_text only: resolve links instead of refusing
  // Refuse a file with another hard link: one written in place (the state file) must not
  // change a file of another name.
  bool single_link = false;
  // For files root trusts (config, fleet key, plugin, a secret outside a home): every directory
  // above the file's real path up to / must be owned by root (or by `owner`) and not writable
  // by group or others, as OpenSSH checks its key paths; whoever may write a directory can
  // swap the files in it. One exception keeps /tmp-style places usable without weakening it:
  // a sticky directory writable by others is accepted when the entry below it on the path is
  // owned by root (or `owner`), since the sticky bit lets no one else rename or remove that
  // entry (pbx-mfa.conf(5), SECURITY).
  bool trusted_parents = false;
};

// The text of `path` once it passes `check`; nullopt when it does not exist (a dangling link
// included). Errors read "WHAT PATH: REASON" (kUnsafe for a refused file, kIo for a failed
// system call), with `path` as given. For reporting on files (doctor), not for secrets (the
// text is a plain, unwiped string: read those with the store) nor for trusting a file: with
// follow_symlinks the link's target is checked, not the link, so follow_symlinks together with
// a required owner is refused (kInvalid).
Result<std::optional<std::string>> read_checked_text(const std::string& path,
                                                     const FileCheck& check, const char* what);

}  // namespace pbx::totp

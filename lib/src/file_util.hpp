// POSIX file helpers: safe open and read, atomic replace, per-user locks, filesystem ids.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/checked_file.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"

namespace pbx::totp::detail {

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// Switches the thread's filesystem uid/gid for its lifetime (only when running as root and the
// ids differ), so files in a user's home are read and created as that user.
class FsIds {
 public:
  FsIds(uid_t uid, gid_t gid);
  // The same for a caller that knows the effective uid already (one geteuid fewer).
  FsIds(uid_t uid, gid_t gid, uid_t euid);
  ~FsIds();
  FsIds(const FsIds&) = delete;
  FsIds& operator=(const FsIds&) = delete;
  bool ok() const noexcept { return ok_; }

 private:
  bool switched_ = false;
  bool ok_ = true;
  uid_t old_uid_ = 0;
  gid_t old_gid_ = 0;
};

// Directories that the parent walk (FileCheck::trusted_parents) found trusted, with the owner
// they were checked for, by the absolute path they were reached by and their (dev, ino): a
// later walk that reaches one of them by the same path, for the same owner, and finds the same
// directory there re-checks that directory itself and stops, instead of walking on to / again.
// For one login or one command only (the file store owns one): never a process-wide cache, as
// a module in a long-lived host serves several logins and a directory made hostile between two
// of them must be refused at the second.
class TrustedDirs {
 public:
  struct Entry {
    std::string path;
    uid_t owner = 0;
    dev_t dev = 0;
    ino_t ino = 0;
  };
  const Entry* find(const std::string& path, uid_t owner) const noexcept;
  void add(Entry entry);
  void clear() noexcept { entries_.clear(); }
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

// Owner checks below: a file must belong to `owner`; where `owner` is root, a process whose
// effective uid is not root also accepts files of that euid (see owner_trusted in the .cpp).

// FileCheck (pbx/totp/checked_file.hpp) says what a checked open demands of a file.

// Opens without following a symlink or blocking on a FIFO, then checks the file against
// `check`. An invalid Fd when missing. `what` names the file in messages ("import source").
Result<Fd> open_checked_file(const std::string& path, const FileCheck& check, const char* what);

// The same, opened for reading and writing when `writable`, with the fstat it checked in `st`.
Result<Fd> open_checked_file(const std::string& path, const FileCheck& check, const char* what,
                             bool writable, struct stat& st, TrustedDirs* dirs = nullptr);

// The same, read to its end (wiped when it goes away); nullopt when missing.
Result<std::optional<SecretString>> read_checked_file(const std::string& path,
                                                      const FileCheck& check, const char* what,
                                                      TrustedDirs* dirs = nullptr);

// Opens without following a symlink or blocking on a FIFO, then checks: regular file, owned by
// `owner`, no group/other permission bits, at most `max_size` bytes. nullopt when missing.
// `what` names the file in messages ("secret file", "state file").
Result<std::optional<SecretString>> read_private_file(const std::string& path, uid_t owner,
                                                      std::size_t max_size, const char* what);

// The same with a chosen set of forbidden mode bits (022 for a world-readable config file).
Result<std::optional<SecretString>> read_checked_file(const std::string& path, uid_t owner,
                                                      mode_t forbidden, std::size_t max_size,
                                                      const char* what);

// The open file after those checks (an invalid Fd when missing), for a caller that reads it
// another way (the database plugin is loaded through /proc/self/fd).
Result<Fd> open_checked_file(const std::string& path, uid_t owner, mode_t forbidden,
                             std::size_t max_size, const char* what);

// The checks of open_checked_file on a file already open (its fstat): type, owner, mode, size.
Status check_file_stat(const struct stat& st, const std::string& path, const FileCheck& check,
                       const char* what);

// Reads an open file to its end into `out` (wiped when it goes away, never reallocated with
// an unwiped copy left behind). 0, an errno, or -1 when it holds more than `max_size` bytes.
int read_all_capped(int fd, std::size_t max_size, SecretString& out);

struct WriteOptions {
  mode_t mode = 0600;
  bool sync_dir = false;    // fsync the directory after the rename (durable, costs a flush)
  bool no_replace = false;  // fail with kExists instead of replacing an existing file
};

// Temp file in the same directory, write, fsync, rename. The old file or the new, never a mix.
Status write_file_atomic(const std::string& path, std::string_view data, const WriteOptions& opts,
                         const char* what);

// Removes a file, refusing to follow a symlink at that place. kNotEnrolled-free: missing is ok.
Result<bool> remove_file(const std::string& path, const char* what);

// A directory owned by `owner` without group/other bits, in directories root trusts (as
// FileCheck::trusted_parents); created 0700 when missing and `create` (its parent must exist).
// With `missing` given, a directory that does not exist (and is not created) is no error:
// *missing is set instead.
Status check_private_dir(const std::string& path, uid_t owner, bool create, const char* what,
                         TrustedDirs* dirs = nullptr, bool* missing = nullptr);

// Before root writes a file it trusts (a secret outside a home): the directory it goes into
// is owned by root (or `owner`) and not writable by group or others, and so are the ones above
// it (FileCheck::trusted_parents).
Status check_trusted_dir_of(const std::string& path, uid_t owner, const char* what,
                            TrustedDirs* dirs = nullptr);

// Exclusive flock on a lock file (created 0600 if missing; must be a regular file of `owner`).
// Waits up to `timeout_ms`, then fails closed. `shared`: a shared flock instead.
Result<Fd> lock_file(const std::string& path, uid_t owner, int timeout_ms, bool shared = false);

std::string errno_text(int err);

// A user name made safe as a file name: [A-Za-z0-9._@-] kept, anything else (and a leading
// dot) as %XX.
std::string file_name_for_user(std::string_view name);

}  // namespace pbx::totp::detail

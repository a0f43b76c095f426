#include "file_util.hpp"

#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "pbx/totp/strings.hpp"

namespace pbx::totp::detail {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* s = strerror_r(err, buf, sizeof buf);
  return s;
}

FsIds::FsIds(uid_t uid, gid_t gid) : FsIds(uid, gid, ::geteuid()) {}

FsIds::FsIds(uid_t uid, gid_t gid, uid_t euid) {
  if (euid != 0) return;  // not root: we already act as ourselves
  old_uid_ = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1)));
  old_gid_ = static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1)));
  if (old_uid_ == uid && old_gid_ == gid) return;
  switched_ = true;
  setfsgid(gid);
  setfsuid(uid);
  // setfsuid reports the previous value, so ask again to learn whether it took.
  ok_ = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))) == uid &&
        static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))) == gid;
}

FsIds::~FsIds() {
  if (!switched_) return;
  setfsuid(old_uid_);
  setfsgid(old_gid_);
}

const TrustedDirs::Entry* TrustedDirs::find(const std::string& path, uid_t owner) const noexcept {
  for (const auto& e : entries_) {
    if (e.owner == owner && e.path == path) return &e;
  }
  return nullptr;
}

void TrustedDirs::add(Entry entry) {
  for (auto& e : entries_) {
    if (e.owner == entry.owner && e.path == entry.path) {
      e = std::move(entry);
      return;
    }
  }
  entries_.push_back(std::move(entry));
}

namespace {

Error io_error(const char* what, const std::string& path, const char* action, int err) {
  Errc code = (err == ELOOP || err == EMLINK) ? Errc::kUnsafe : Errc::kIo;
  std::string msg = std::string(what) + " " + path + ": ";
  if (code == Errc::kUnsafe) {
    msg += "is a symbolic link (refused)";
  } else {
    msg += std::string(action) + ": " + errno_text(err);
  }
  return make_error(code, msg);
}

// Whether a file of `actual` may stand where `expected` is required. Exact match, plus one
// widening: where root is required (config, state_dir, state and lock files, a secret outside
// a home) a process that is not root also trusts files of its own effective uid. Such a
// process gains nothing by distrusting its own files (it could rewrite them anyway), and
// set-uid programs run with euid 0, so a root process still trusts only root. A process the
// kernel runs with privileges its caller lacks (AT_SECURE: set-gid, file capabilities) never
// widens: there the caller's own files are not the process's to trust (review L9).
bool euid_widens() { return ::geteuid() != 0 && ::getauxval(AT_SECURE) == 0; }

bool owner_trusted(uid_t actual, uid_t expected) {
  if (actual == expected) return true;
  return expected == 0 && euid_widens() && actual == ::geteuid();
}

std::string owner_problem(uid_t actual, uid_t expected) {
  std::string msg =
      "owned by uid " + std::to_string(actual) + ", expected uid " + std::to_string(expected);
  if (expected == 0 && euid_widens()) msg += " or " + std::to_string(::geteuid());
  return msg;
}

Status check_stat(const struct stat& st, const std::string& path, const FileCheck& check,
                  const char* what) {
  const mode_t forbidden = check.forbidden_mode;
  const std::size_t max_size = check.max_size;
  std::string prefix = std::string(what) + " " + path + ": ";
  if (!S_ISREG(st.st_mode)) return make_error(Errc::kUnsafe, prefix + "not a regular file");
  if (check.owner && !owner_trusted(st.st_uid, *check.owner)) {
    return make_error(Errc::kUnsafe, prefix + owner_problem(st.st_uid, *check.owner));
  }
  if ((st.st_mode & forbidden) != 0) {
    char mode[8];
    (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(Errc::kUnsafe,
                      prefix + "mode " + mode +
                          (forbidden == 077 ? " lets group or others in (must be 0600 or 0400)"
                                            : " lets group or others write"));
  }
  if (static_cast<std::size_t>(st.st_size) > max_size) {
    return make_error(Errc::kUnsafe, prefix + "larger than " + std::to_string(max_size) + " bytes");
  }
  if (check.single_link && st.st_nlink != 1) {
    return make_error(Errc::kUnsafe,
                      prefix + "has " + std::to_string(st.st_nlink) + " hard links (must be 1)");
  }
  return Ok{};
}

// Whether a directory's owner may stand above a file that must belong to `expected`: root
// always, or whoever owner_trusted accepts.
bool parent_owner_trusted(uid_t actual, uid_t expected) {
  return actual == 0 || owner_trusted(actual, expected);
}

// Whether `path` is spelled as a real path: absolute, without an empty, "." or ".." component.
// (Whether a directory on it is a symbolic link, the walk's lstat finds out.)
bool plain_absolute(const std::string& path) {
  if (path.size() < 2 || path.front() != '/' || path.back() == '/') return false;
  std::size_t at = 1;
  while (at < path.size()) {
    std::size_t end = path.find('/', at);
    if (end == std::string::npos) end = path.size();
    const std::string_view part(path.data() + at, end - at);
    if (part.empty() || part == "." || part == "..") return false;
    at = end + 1;
  }
  return true;
}

// FileCheck::trusted_parents for the file or directory at `path`, already opened and checked:
// `self` is its fstat. Every directory above its real path, up to /, must belong to root (or
// `owner`) and be unwritable by group and others, unless it is sticky and the entry below it
// on the path belongs to root (or `owner`): the sticky bit keeps others from renaming or
// removing that entry. Directories above a checked one cannot change under us (only their
// trusted owners can write them), so after the walk the real path names the file for good;
// it must still be the file that was opened.
//
// Two shortcuts, neither skipping a check: a path spelled as a real path is walked as given
// (lstat finds no symbolic link on it, so it is its own real path; anything else, a refusal
// included, walks again from realpath as before, for the same answer and message), and with
// `dirs` the walk stops at a directory already walked in this login (same path, owner, dev and
// ino) after checking that directory itself again.
Status check_parents(const std::string& path, const struct stat& self, uid_t owner,
                     const char* what, TrustedDirs* dirs) {
  // "WHAT PATH: its directory DIR REASON"
  auto refuse = [&](Errc code, const std::string& dir, std::string_view reason) -> Status {
    std::string msg = std::string(what) + " " + path + ": ";
    if (!dir.empty()) {
      msg += "its directory ";
      msg += dir;
      msg += ' ';
    }
    msg += reason;
    return make_error(code, msg);
  };
  std::vector<TrustedDirs::Entry> walked;
  // nullopt: `plain` and the path is not its own real path, or something was refused.
  auto walk = [&](const std::string& real, bool plain) -> std::optional<Status> {
    walked.clear();
    struct stat child = self;
    std::string at = real;
    while (at != "/") {
      std::string dir = dir_name(at);
      struct stat st {};
      if (::lstat(dir.c_str(), &st) != 0) {
        const int err = errno;
        if (plain) return std::nullopt;
        return refuse(Errc::kIo, dir, "cannot be examined: " + errno_text(err));
      }
      if (!S_ISDIR(st.st_mode)) {
        if (plain) return std::nullopt;
        return refuse(Errc::kUnsafe, dir, "is not a directory");
      }
      if (!parent_owner_trusted(st.st_uid, owner)) {
        if (plain) return std::nullopt;
        std::string reason = "is " + owner_problem(st.st_uid, owner);
        reason += " (whoever owns a directory can replace the files in it)";
        return refuse(Errc::kUnsafe, dir, reason);
      }
      const bool others_write = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
      const bool sticky_guards_child =
          (st.st_mode & S_ISVTX) != 0 && parent_owner_trusted(child.st_uid, owner);
      if (others_write && !sticky_guards_child) {
        if (plain) return std::nullopt;
        char mode[8];
        (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        std::string reason = "has mode ";
        reason += mode;
        reason += ": group or others can write it and replace the files in it";
        return refuse(Errc::kUnsafe, dir, reason);
      }
      const TrustedDirs::Entry* known = dirs != nullptr ? dirs->find(dir, owner) : nullptr;
      if (known != nullptr && known->dev == st.st_dev && known->ino == st.st_ino) break;
      walked.push_back(TrustedDirs::Entry{dir, owner, st.st_dev, st.st_ino});
      child = st;
      at = std::move(dir);
    }
    struct stat now {};
    // As given, the last component must be the opened file itself, not a link to it.
    const int rc = plain ? ::lstat(real.c_str(), &now) : ::stat(real.c_str(), &now);
    if (rc != 0 || now.st_dev != self.st_dev || now.st_ino != self.st_ino) {
      if (plain) return std::nullopt;
      return refuse(Errc::kUnsafe, {}, "changed while it was checked (refused)");
    }
    // Every directory from here up was checked (or was, above the one the walk stopped at).
    if (dirs != nullptr) {
      for (auto& e : walked) dirs->add(std::move(e));
    }
    return Status(Ok{});
  };
  if (plain_absolute(path)) {
    if (auto done = walk(path, /*plain=*/true)) return *done;
  }
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) {
    const int err = errno;
    return refuse(Errc::kIo, {}, "cannot resolve its directories: " + errno_text(err));
  }
  std::string real(resolved);
  std::free(resolved);
  return *walk(real, /*plain=*/false);
}

// 0 or an errno. With no_replace an existing file wins (EEXIST).
int rename_into_place(const std::string& tmp, const std::string& path, bool no_replace) {
  if (!no_replace) return ::rename(tmp.c_str(), path.c_str()) == 0 ? 0 : errno;
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // Filesystems without RENAME_NOREPLACE: link() refuses to replace too.
  if (::link(tmp.c_str(), path.c_str()) != 0) return errno;
  ::unlink(tmp.c_str());
  return 0;
}

}  // namespace

Status check_file_stat(const struct stat& st, const std::string& path, const FileCheck& check,
                       const char* what) {
  return check_stat(st, path, check, what);
}

Result<std::optional<SecretString>> read_private_file(const std::string& path, uid_t owner,
                                                      std::size_t max_size, const char* what) {
  return read_checked_file(path, owner, 077, max_size, what);
}

Result<Fd> open_checked_file(const std::string& path, uid_t owner, mode_t forbidden,
                             std::size_t max_size, const char* what) {
  return open_checked_file(path, FileCheck{owner, forbidden, max_size}, what);
}

Result<Fd> open_checked_file(const std::string& path, const FileCheck& check, const char* what) {
  struct stat st {};
  return open_checked_file(path, check, what, /*writable=*/false, st);
}

Result<Fd> open_checked_file(const std::string& path, const FileCheck& check, const char* what,
                             bool writable, struct stat& st, TrustedDirs* dirs) {
  Fd fd(::open(path.c_str(),
               (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) {
    int err = errno;
    if (err == ENOENT) return Fd();
    if (err == EISDIR) {  // only an open for writing fails so; a read-only one passes to fstat
      return make_error(Errc::kUnsafe, std::string(what) + " " + path + ": not a regular file");
    }
    return io_error(what, path, "cannot open", err);
  }
  if (::fstat(fd.get(), &st) != 0) return io_error(what, path, "cannot stat", errno);
  if (auto ok = check_stat(st, path, check, what); !ok) return ok.error();
  if (check.trusted_parents) {
    if (auto ok = check_parents(path, st, check.owner.value_or(0), what, dirs); !ok) {
      return ok.error();
    }
  }
  return fd;
}

Result<std::optional<SecretString>> read_checked_file(const std::string& path, uid_t owner,
                                                      mode_t forbidden, std::size_t max_size,
                                                      const char* what) {
  return read_checked_file(path, FileCheck{owner, forbidden, max_size}, what);
}

Result<std::optional<SecretString>> read_checked_file(const std::string& path,
                                                      const FileCheck& check, const char* what,
                                                      TrustedDirs* dirs) {
  const std::size_t max_size = check.max_size;
  struct stat st {};
  // The open's own fstat sizes the buffer: a file that grows after it is refused below.
  auto opened = open_checked_file(path, check, what, /*writable=*/false, st, dirs);
  if (!opened) return opened.error();
  if (!opened->valid()) return std::optional<SecretString>{};
  Fd fd = std::move(opened.value());

  SecretString content;
  content.reserve(static_cast<std::size_t>(st.st_size) + 1);
  if (int err = read_all_capped(fd.get(), max_size, content); err != 0) {
    // -1: it grew after fstat; treat like an oversize file.
    if (err < 0) {
      return make_error(Errc::kUnsafe, std::string(what) + " " + path + ": larger than " +
                                           std::to_string(max_size) + " bytes");
    }
    return io_error(what, path, "cannot read", err);
  }
  return std::optional<SecretString>(std::move(content));
}

int read_all_capped(int fd, std::size_t max_size, SecretString& out) {
  char buf[4096];
  int result = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      result = errno;
      break;
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_size) {
      result = -1;
      break;
    }
    out.append(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  wipe(buf, sizeof buf);
  return result;
}

Status write_file_atomic(const std::string& path, std::string_view data, const WriteOptions& opts,
                         const char* what) {
  std::string dir = dir_name(path);
  std::string tmp = dir + "/." + base_name(path) + ".XXXXXX";
  Fd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd.valid()) return io_error(what, path, "cannot create a temporary file", errno);
  auto fail = [&](const char* action, int err) -> Status {
    ::unlink(tmp.c_str());
    return io_error(what, path, action, err);
  };
  if (::fchmod(fd.get(), opts.mode) != 0) return fail("cannot set mode", errno);
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("cannot flush to disk", errno);
  if (::close(fd.release()) != 0) return fail("cannot close", errno);
  if (int err = rename_into_place(tmp, path, opts.no_replace); err != 0) {
    ::unlink(tmp.c_str());
    if (err == EEXIST && opts.no_replace) {
      return make_error(Errc::kExists, std::string(what) + " " + path + " already exists");
    }
    return io_error(what, path, "cannot rename into place", err);
  }
  if (opts.sync_dir) {
    Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd.valid() || ::fsync(dfd.get()) != 0) {
      return io_error(what, path, "cannot flush the directory", errno);
    }
  }
  return Ok{};
}

Result<bool> remove_file(const std::string& path, const char* what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return io_error(what, path, "cannot stat", errno);
  }
  if (S_ISDIR(st.st_mode)) {
    return make_error(Errc::kUnsafe, std::string(what) + " " + path + ": is a directory");
  }
  // unlink removes a symlink itself, never its target, so any non-directory may go.
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return false;
    return io_error(what, path, "cannot remove", errno);
  }
  return true;
}

Status check_private_dir(const std::string& path, uid_t owner, bool create, const char* what,
                         TrustedDirs* dirs, bool* missing) {
  if (missing != nullptr) *missing = false;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT && !create && missing != nullptr) {
      *missing = true;
      return Ok{};
    }
    if (err == ENOENT && create) {
      if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        return io_error(what, path, "cannot create", errno);
      }
      if (::lstat(path.c_str(), &st) != 0) return io_error(what, path, "cannot stat", errno);
    } else {
      return io_error(what, path, "cannot stat", err);
    }
  }
  std::string prefix = std::string(what) + " " + path + ": ";
  if (S_ISLNK(st.st_mode))
    return make_error(Errc::kUnsafe, prefix + "is a symbolic link (refused)");
  if (!S_ISDIR(st.st_mode)) return make_error(Errc::kUnsafe, prefix + "not a directory");
  if (!owner_trusted(st.st_uid, owner)) {
    return make_error(Errc::kUnsafe, prefix + owner_problem(st.st_uid, owner));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(Errc::kUnsafe,
                      prefix + "mode " + mode + " lets group or others in (must be 0700)");
  }
  // The directories above it too (FileCheck::trusted_parents): whoever may write one of them
  // could put another directory in its place.
  return check_parents(path, st, owner, what, dirs);
}

Status check_trusted_dir_of(const std::string& path, uid_t owner, const char* what,
                            TrustedDirs* dirs) {
  const std::string dir = dir_name(path);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    std::string msg = std::string(what) + " " + path + ": its directory " + dir;
    msg += " cannot be examined: ";
    msg += errno_text(err);
    return make_error(Errc::kIo, msg);
  }
  std::string prefix = std::string(what) + " " + path + ": its directory " + dir;
  if (!S_ISDIR(st.st_mode)) return make_error(Errc::kUnsafe, prefix + " is not a directory");
  if (!parent_owner_trusted(st.st_uid, owner)) {
    prefix += " is ";
    prefix += owner_problem(st.st_uid, owner);
    return make_error(Errc::kUnsafe, prefix);
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    prefix += " has mode ";
    prefix += mode;
    prefix += ": group or others can write it";
    return make_error(Errc::kUnsafe, prefix);
  }
  return check_parents(dir, st, owner, what, dirs);
}

Result<Fd> lock_file(const std::string& path, uid_t owner, int timeout_ms, bool shared) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
               0600));
  if (!fd.valid()) return io_error("lock file", path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("lock file", path, "cannot stat", errno);
  if (auto ok = check_stat(st, path, FileCheck{owner, 077, 4096}, "lock file"); !ok) {
    return ok.error();
  }
  long waited_us = 0;
  long step_us = 200;
  for (;;) {
    if (::flock(fd.get(), (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0) return fd;
    if (errno != EWOULDBLOCK && errno != EINTR)
      return io_error("lock file", path, "cannot lock", errno);
    if (waited_us >= static_cast<long>(timeout_ms) * 1000) {
      return make_error(Errc::kIo, "lock file " + path + ": still locked after " +
                                       std::to_string(timeout_ms) + " ms");
    }
    timespec ts{0, step_us * 1000};
    ::nanosleep(&ts, nullptr);
    waited_us += step_us;
    if (step_us < 10000) step_us *= 2;
  }
}

std::string file_name_for_user(std::string_view name) {
  return percent_encode(name, [](unsigned char c, std::size_t at) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '@' || (c == '.' && at > 0);
  });
}

}  // namespace pbx::totp::detail

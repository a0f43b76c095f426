#include "event_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <utility>

#include "file_util.hpp"

namespace pbx::totp::detail {
namespace {

constexpr int kRotateLockTimeoutMs = 5000;
// A line longer than this without a newline is not an event of ours: skipped, not buffered.
constexpr std::size_t kMaxLine = std::size_t{16} * 1024;
// The longest line event_to_json makes: its fields are UTF-8 of at most kMaxEventField (detail:
// kMaxEventDetail) bytes without control characters, so the JSON escapes only quotes and
// backslashes (two bytes each); plus the names and the time. A recorded event must never read
// as garbage.
static_assert(kMaxLine >= 2 * (7 * kMaxEventField + kMaxEventDetail) + 256);

std::string rotated_path(const Config& config) { return event_log_path(config) + ".1"; }

FileCheck log_check(const Config& config) {
  // Size is not capped here: an over-long log is rotated by the writer, streamed by the reader.
  return FileCheck{config.trusted_uid, 077, std::numeric_limits<std::size_t>::max()};
}

Error io_failure(const std::string& path, const char* doing, int err) {
  return make_error(Errc::kIo, "event log " + path + ": " + doing + ": " + errno_text(err));
}

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_failure(path, "cannot write", errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return Ok{};
}

// Which file a cursor is in: the inode number, and the birth time where the filesystem keeps
// one (ext4 reuses a freed inode number for the next file created).
struct FileId {
  std::uint64_t ino = 0;
  std::int64_t birth = 0;
};

FileId file_id(int fd, const struct stat& st) {
  FileId id{static_cast<std::uint64_t>(st.st_ino), 0};
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &stx) == 0 && (stx.stx_mask & STATX_BTIME) != 0) {
    id.birth = static_cast<std::int64_t>(stx.stx_btime.tv_sec) * 1000000000 +
               static_cast<std::int64_t>(stx.stx_btime.tv_nsec);
  }
  return id;
}

bool cursor_in(const EventCursor& c, const FileId& id) {
  return c.started && c.file_ino == id.ino && c.file_birth == id.birth;
}

// Opens the log for appending (and reading its last byte), creating it root-only; checks it
// like every root file.
Result<Fd> open_for_append(const Config& config, const std::string& path, struct stat& st) {
  Fd fd(::open(path.c_str(),
               O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600));
  if (!fd.valid()) return io_failure(path, "cannot open", errno);
  if (::fstat(fd.get(), &st) != 0) return io_failure(path, "cannot stat", errno);
  if (auto ok = check_file_stat(st, path, log_check(config), "event log"); !ok) return ok.error();
  return fd;
}

// Reads `fd` from `offset`: every whole line that parses as an event and matches `query` goes
// into `page`; returns the offset after the last whole line.
Result<std::int64_t> read_lines(int fd, std::int64_t offset, const EventQuery& query,
                                EventPage& page, const std::string& path) {
  std::string pending;
  std::int64_t consumed = offset;  // up to the end of the last whole line
  std::int64_t at = offset;
  char buf[64 * 1024];
  bool skipping = false;  // inside an over-long line
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_failure(path, "cannot read", errno);
    }
    if (n == 0) break;
    at += n;
    std::string_view chunk(buf, static_cast<std::size_t>(n));
    while (!chunk.empty()) {
      auto nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        if (!skipping) pending.append(chunk);
        if (pending.size() > kMaxLine) {
          pending.clear();
          skipping = true;
        }
        break;
      }
      if (!skipping) pending.append(chunk.substr(0, nl));
      consumed = at - static_cast<std::int64_t>(chunk.size() - nl - 1);
      if (skipping || pending.size() > kMaxLine) {
        page.skipped += 1;
      } else if (!pending.empty()) {
        auto e = event_from_json(pending);
        if (!e) {
          page.skipped += 1;
        } else if (event_matches(*e, query)) {
          page.events.push_back(std::move(e.value()));
        }
      }
      pending.clear();
      skipping = false;
      chunk.remove_prefix(nl + 1);
    }
  }
  return consumed;
}

// Opens a log file for reading; an invalid Fd when it does not exist.
Result<Fd> open_for_read(const Config& config, const std::string& path, struct stat& st) {
  auto fd = open_checked_file(path, log_check(config), "event log");
  if (!fd) return fd.error();
  if (fd->valid() && ::fstat(fd->get(), &st) != 0) return io_failure(path, "cannot stat", errno);
  return fd;
}

}  // namespace

std::string event_log_path(const Config& config) { return config.state_dir + "/.events.log"; }

bool event_matches(const Event& e, const EventQuery& query) noexcept {
  if (e.time < query.since) return false;
  return query.user.empty() || e.user == query.user;
}

Status append_event_file(const Config& config, const Event& event) {
  if (auto st = check_private_dir(config.state_dir, config.trusted_uid, true, "state_dir"); !st) {
    return st;
  }
  const std::string path = event_log_path(config);
  const std::string lock_path = config.state_dir + "/.events.lock";
  const std::string line = event_to_json(event) + "\n";
  // Every writer holds the lock shared from its size check to its write, the rotation holds it
  // exclusive: no line lands in a file after it was rotated away (a follower that has finished
  // .events.log.1 would never see it, and .1 would grow past events_max_size).
  auto shared = lock_file(lock_path, config.trusted_uid, kRotateLockTimeoutMs, /*shared=*/true);
  if (!shared) return shared.error();
  Fd lock = std::move(shared.value());
  struct stat st {};
  auto fd = open_for_append(config, path, st);
  if (!fd) return fd.error();
  if (st.st_size + static_cast<std::int64_t>(line.size()) + 1 > config.events_max_size) {
    // Rotate under the exclusive lock, once: whoever comes second sees the new, small file.
    lock = Fd();  // two shared holders waiting for exclusive would wait for each other
    auto exclusive = lock_file(lock_path, config.trusted_uid, kRotateLockTimeoutMs);
    if (!exclusive) return exclusive.error();
    lock = std::move(exclusive.value());
    struct stat now {};
    if (::lstat(path.c_str(), &now) == 0 && now.st_ino == st.st_ino &&
        now.st_size + static_cast<std::int64_t>(line.size()) + 1 > config.events_max_size) {
      if (::rename(path.c_str(), rotated_path(config).c_str()) != 0) {
        return io_failure(path, "cannot rotate", errno);
      }
    }
    fd = open_for_append(config, path, st);
    if (!fd) return fd.error();
  }
  // A last line cut short (a crash or a full disk in the middle of a write) is ended first, or
  // this whole event would be glued to it and read as garbage. Racing another writer this may
  // add an empty line, which readers pass over.
  char last = '\n';
  if (st.st_size > 0 && ::pread(fd->get(), &last, 1, st.st_size - 1) != 1) last = '\n';
  if (auto w = write_all(fd->get(), last == '\n' ? line : "\n" + line, path); !w) return w;
  lock = Fd();  // written: a rotation may go ahead while this one reaches the disk
  if (::fdatasync(fd->get()) != 0) return io_failure(path, "cannot flush", errno);
  return Ok{};
}

Result<EventPage> read_event_file(const Config& config, const EventQuery& query,
                                  const EventCursor& from) {
  EventPage page;
  page.next.started = true;
  const std::string path = event_log_path(config);
  struct stat cur_st {};
  auto cur = open_for_read(config, path, cur_st);
  if (!cur) return cur.error();
  const bool cur_exists = cur->valid();
  const FileId cur_id = cur_exists ? file_id(cur->get(), cur_st) : FileId{};
  const bool same_file = cur_exists && cursor_in(from, cur_id);
  if (!same_file) {
    // From the start, or the file the reader was in has been rotated: the older file first,
    // the rest of it when it is the reader's file, else all of it (the reader's file went
    // before it: a reader that fell two rotations behind, or started on an empty log).
    struct stat old_st {};
    auto old = open_for_read(config, rotated_path(config), old_st);
    if (!old) return old.error();
    // Rotated between the two opens: the older file is the one already open as current.
    if (old->valid() && !(cur_exists && old_st.st_ino == cur_st.st_ino)) {
      const FileId old_id = file_id(old->get(), old_st);
      std::int64_t offset = cursor_in(from, old_id) ? from.file_offset : 0;
      if (offset > old_st.st_size) offset = 0;  // not the file it was (truncated by hand)
      auto r = read_lines(old->get(), offset, query, page, rotated_path(config));
      if (!r) return r.error();
      if (!cur_exists) {
        // Between a rotation's rename and the next line: go on from here, not from "no file".
        page.next.file_ino = old_id.ino;
        page.next.file_birth = old_id.birth;
        page.next.file_offset = *r;
        return page;
      }
    }
  }
  if (!cur_exists) return page;
  std::int64_t offset = same_file ? from.file_offset : 0;
  if (offset > cur_st.st_size) offset = 0;  // not the file it was (truncated by hand)
  auto r = read_lines(cur->get(), offset, query, page, path);
  if (!r) return r.error();
  page.next.file_ino = cur_id.ino;
  page.next.file_birth = cur_id.birth;
  page.next.file_offset = *r;
  return page;
}

}  // namespace pbx::totp::detail

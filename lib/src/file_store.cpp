#include "file_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <optional>
#include <utility>

#include "event_log.hpp"
#include "file_util.hpp"
#include "pbx/totp/state_file.hpp"

// Test seam (tests/unit/state_slots_test.cpp): called after a slot's bytes are written and
// before they are synced, so a test can kill the process or tear the slot there. A hidden weak
// reference: nothing in the module or the CLI defines it, so there it is null and exports
// nothing (no environment variable, no mutable static).
extern "C" __attribute__((weak, visibility("hidden"))) void pbx_totp_test_slot_written(
    int fd, unsigned long long offset, unsigned long long size);
// The same kind of seam: called after each read of an unlocked state read (a test commits a
// change there, as another login would between two reads).
extern "C" __attribute__((weak, visibility("hidden"))) void pbx_totp_test_state_read(int attempt);

namespace pbx::totp::detail {
namespace {

constexpr int kLockTimeoutMs = 5000;
constexpr const char* kStateWhat = "state file";

Error state_io_error(const std::string& path, const char* action, int err) {
  return make_error(Errc::kIo,
                    std::string(kStateWhat) + " " + path + ": " + action + ": " + errno_text(err));
}

// A state file as read (state_file.hpp): the state, and where a change in place would go.
struct StateFile {
  Fd fd;  // open for reading and writing (lock_state) while the file exists
  UserState state;
  int newest = -1;             // its slot; -1: no two-slot file (none, text format, or replaced)
  std::uint64_t sequence = 0;  // of that slot (0: none yet)
  std::size_t slot_size = 0;
  bool other_damaged = false;  // StateSlots::other_damaged
};

// Reads the user's state file: checked like every file the store trusts (regular, owner, no
// group/other bits, size cap) and with one link only, as a change is written into it in place.
// A missing file is no state; a file whose slots are both invalid is corrupt, never "no state"
// (that would reopen replay and clear a lockout). `attempts` > 1 for a read without the lock: a
// change written meanwhile can tear the slot being read, so read again before calling it
// corrupt.
Result<StateFile> read_state_file(const std::string& path, uid_t owner, bool writable,
                                  int attempts) {
  FileCheck check{owner, 077, kMaxStateSlotFileSize};
  check.single_link = true;
  struct stat st {};
  auto opened = open_checked_file(path, check, kStateWhat, writable, st, nullptr);
  if (!opened) return opened.error();
  StateFile out;
  if (!opened->valid()) return out;
  out.fd = std::move(opened.value());
  const auto size = static_cast<std::size_t>(st.st_size);
  SecretString bytes;
  // Without the lock, one pread copies the two slots at different moments: a slot two changes
  // old next to one torn by the change after could pass for the newest state. So an unlocked
  // read counts only when a second read finds the same newest slot and sequence (after a
  // change completes, no later read can find a slot older than it).
  std::optional<std::pair<int, std::uint64_t>> seen;
  for (int attempt = 1;; ++attempt) {
    bytes.resize(size);
    std::size_t done = 0;
    while (done < size) {
      ssize_t n = ::pread(out.fd.get(), bytes.data() + done, size - done, static_cast<off_t>(done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return state_io_error(path, "cannot read", errno);
      }
      if (n == 0) break;  // shorter than its fstat: the size check below refuses it
      done += static_cast<std::size_t>(n);
    }
    bytes.resize(done);
    if (attempts > 1 && pbx_totp_test_state_read != nullptr) pbx_totp_test_state_read(attempt);
    auto text = state_file_text(bytes.view(), path);
    if (!text) {
      if (attempt < 2 * attempts && text.error().code == Errc::kCorrupt) {
        timespec pause{0, 1000000};  // 1 ms: a slot write takes microseconds
        ::nanosleep(&pause, nullptr);
        continue;
      }
      return text.error();
    }
    auto parsed = parse_state(*text);
    if (!parsed) {
      return make_error(parsed.error().code, parsed.error().message + " (" + path + ")");
    }
    out.state = std::move(parsed.value());
    if (!is_text_state_file(bytes.view())) {
      StateSlots slots = decode_state_slots(bytes.view());
      out.newest = slots.newest;
      out.sequence = slots.sequence;
      out.slot_size = slots.slot_size;
      out.other_damaged = slots.other_damaged;
    }
    const std::pair<int, std::uint64_t> now{out.newest, out.sequence};
    if (attempts > 1 && seen != now) {
      // Never an unconfirmed read: when changes keep landing between two reads, say so.
      if (attempt >= 2 * attempts) {
        return make_error(Errc::kIo, std::string(kStateWhat) + " " + path +
                                         ": changing too fast to be read without the lock");
      }
      seen = now;
      continue;
    }
    return out;
  }
}

class FileStateTxn final : public StateTxn {
 public:
  FileStateTxn(Fd lock, std::string path, StateFile file)
      : lock_(std::move(lock)), path_(std::move(path)), file_(std::move(file)) {}
  const UserState& state() const override { return file_.state; }
  Status commit(const UserState& next) override {
    const std::string text = serialize_state(next);
    const std::size_t need = state_slot_size_for(text.size());
    if (need == 0) {
      return make_error(Errc::kInternal, std::string(kStateWhat) + " " + path_ +
                                             ": the state would be larger than " +
                                             std::to_string(kMaxStateFileSize) + " bytes");
    }
    // A sequence at its end (only a planted file has one) would wrap to 0 and lose to the other
    // slot for ever: a new file starts again at 1.
    const bool in_place = file_.newest >= 0 && file_.fd.valid() && need <= file_.slot_size &&
                          file_.sequence < UINT64_MAX;
    auto st = in_place ? write_slot(text) : write_new_file(text, need);
    if (st) file_.state = next;
    return st;
  }

 private:
  // The usual change: the slot not holding the state, in place, then one fdatasync (no new
  // inode, no rename, no directory entry: the file's blocks were written when it was made).
  Status write_slot(const std::string& text) {
    const int target = 1 - file_.newest;
    const std::uint64_t sequence = file_.sequence + 1;
    const std::string slot = encode_state_slot(text, sequence, file_.slot_size);
    if (slot.empty()) {
      return make_error(Errc::kInternal,
                        std::string(kStateWhat) + " " + path_ + ": cannot compute its checksum");
    }
    const std::size_t offset = static_cast<std::size_t>(target) * file_.slot_size;
    // Whatever happens below, this slot may now hold a part of the new state or all of it: a
    // second commit must not write into it again as if the other slot were older.
    file_.newest = -1;
    std::size_t done = 0;
    while (done < slot.size()) {
      ssize_t n = ::pwrite(file_.fd.get(), slot.data() + done, slot.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return state_io_error(path_, "cannot write", errno);
      }
      done += static_cast<std::size_t>(n);
    }
    if (pbx_totp_test_slot_written != nullptr) {
      pbx_totp_test_slot_written(file_.fd.get(), offset, slot.size());
    }
    if (::fdatasync(file_.fd.get()) != 0)
      return state_io_error(path_, "cannot flush to disk", errno);
    file_.newest = target;
    file_.sequence = sequence;
    return Ok{};
  }

  // No file yet, one in the text format of earlier releases, or a state outgrowing the slots:
  // a whole new two-slot file, by temp file, fsync and rename (then the directory's fsync too:
  // rare, and the in-place changes after it rely on this file being there after a power cut).
  Status write_new_file(const std::string& text, std::size_t slot_size) {
    slot_size = std::max(slot_size, file_.slot_size);
    const std::uint64_t sequence = file_.sequence < UINT64_MAX ? file_.sequence + 1 : 1;
    const std::string bytes = encode_state_file(text, sequence, slot_size);
    if (bytes.empty()) {
      return make_error(Errc::kInternal,
                        std::string(kStateWhat) + " " + path_ + ": cannot compute its checksum");
    }
    WriteOptions opts;
    opts.mode = 0600;
    opts.sync_dir = true;
    // From here the fd may name a replaced file (the rename can succeed and the directory's
    // fsync fail): a further commit, even after an error, writes a new file again.
    file_.fd = Fd();
    file_.newest = -1;
    if (auto st = write_file_atomic(path_, bytes, opts, kStateWhat); !st) return st;
    file_.sequence = sequence;
    file_.slot_size = slot_size;
    return Ok{};
  }

  Fd lock_;  // released (and the flock with it) when the transaction goes away
  std::string path_;
  StateFile file_;
};

class FileStore final : public Store {
 public:
  explicit FileStore(const Config& config)
      : config_(config), euid_(::geteuid()), egid_(::getegid()) {}

  Result<Enrollment> load(const User& user) override {
    auto where = locate(user);
    if (!where) return where.error();
    FsIds ids(where->in_home ? user.uid : euid_, where->in_home ? user.gid : egid_, euid_);
    if (!ids.ok()) return make_error(Errc::kIo, "cannot switch to the user's filesystem ids");
    // Outside a home the secret is root's: so must its directories be. (A home is the user's
    // anyway; the user's own ids read it there.)
    FileCheck check{where->owner, 077, kMaxSecretFileSize};
    check.trusted_parents = !where->in_home;
    // Read again by every load (status, then verify under the lock): the decoded key is not
    // kept in memory while the user types the code.
    auto text = read_checked_file(where->path, check, "secret file", &dirs_);
    if (!text) return text.error();
    if (!text->has_value()) {
      return make_error(Errc::kNotEnrolled, "user '" + user.name + "' is not enrolled");
    }
    auto e = parse_enrollment((*text)->view());
    if (!e) return make_error(e.error().code, e.error().message + " (" + where->path + ")");
    return e;
  }

  Status save(const User& user, const Enrollment& enrollment, bool overwrite) override {
    auto where = locate(user);
    if (!where) return where.error();
    FsIds ids(where->in_home ? user.uid : euid_, where->in_home ? user.gid : egid_, euid_);
    if (!ids.ok()) return make_error(Errc::kIo, "cannot switch to the user's filesystem ids");
    if (!where->in_home) {
      // Root's secret goes only into root's directories: whoever may write one could move it.
      if (auto st = check_trusted_dir_of(where->path, where->owner, "secret file", &dirs_); !st) {
        return st;
      }
    }
    SecretString text(serialize_enrollment(enrollment));
    WriteOptions opts;
    opts.mode = 0600;
    opts.sync_dir = true;  // an enrollment the user was told is saved must survive a power cut
    opts.no_replace = !overwrite;
    return write_file_atomic(where->path, text.view(), opts, "secret file");
  }

  Status check_saveable(const User& user) override {
    auto where = locate(user);
    if (!where) return where.error();
    FsIds ids(where->in_home ? user.uid : euid_, where->in_home ? user.gid : egid_, euid_);
    if (!ids.ok()) return make_error(Errc::kIo, "cannot switch to the user's filesystem ids");
    std::string dir = where->path.substr(0, where->path.rfind('/'));
    if (dir.empty()) dir = "/";
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return make_error(Errc::kIo, "secret file " + where->path + ": its directory " + dir +
                                       " does not exist (a home made only at session start?)");
    }
    return Ok{};
  }

  Result<bool> remove_secret(const User& user) override {
    auto where = locate(user);
    if (!where) return where.error();
    FsIds ids(where->in_home ? user.uid : euid_, where->in_home ? user.gid : egid_, euid_);
    if (!ids.ok()) return make_error(Errc::kIo, "cannot switch to the user's filesystem ids");
    return remove_file(where->path, "secret file");
  }

  Status remove(const User& user) override {
    auto removed = remove_secret(user);
    if (!removed) return removed.error();
    const bool removed_secret = *removed;
    if (auto st =
            check_private_dir(config_.state_dir, config_.trusted_uid, false, "state_dir", &dirs_);
        !st) {
      if (!removed_secret) return st;
      // The secret is gone; state that cannot be reached belongs to no enrollment any more.
      return Ok{};
    }
    auto lock = lock_file(state_base(user) + ".lock", config_.trusted_uid, kLockTimeoutMs);
    if (!lock) return lock.error();
    auto r = remove_file(state_base(user) + ".state", kStateWhat);
    if (!r) return r.error();
    if (!removed_secret && !*r) {
      return make_error(Errc::kNotEnrolled, "user '" + user.name + "' is not enrolled");
    }
    return Ok{};
  }

  Result<std::unique_ptr<StateTxn>> lock_state(const User& user) override {
    bool can_create = euid_ == config_.trusted_uid;
    if (auto st = check_private_dir(config_.state_dir, config_.trusted_uid, can_create, "state_dir",
                                    &dirs_);
        !st) {
      return st.error();
    }
    std::string base = state_base(user);
    auto lock = lock_file(base + ".lock", config_.trusted_uid, kLockTimeoutMs);
    if (!lock) return lock.error();
    auto file = read_state_file(base + ".state", config_.trusted_uid, /*writable=*/true, 1);
    if (!file) return file.error();
    // Under the lock no change is being written, so a bad slot was cut short or damaged (an
    // unlocked read can see a change in progress, and says nothing).
    if (file->other_damaged) {
      notice_ = std::string(kStateWhat) + " " + base + ".state: one of its two copies is damaged " +
                "(a write cut short by a crash or power cut, or the disk); change " +
                std::to_string(file->sequence) + " in the other copy was used";
    }
    return std::unique_ptr<StateTxn>(std::make_unique<FileStateTxn>(
        std::move(lock.value()), base + ".state", std::move(file.value())));
  }

  std::string take_notice() override { return std::exchange(notice_, std::string()); }

  Result<UserState> peek_state(const User& user) override {
    bool missing = false;
    if (auto st = check_private_dir(config_.state_dir, config_.trusted_uid, false, "state_dir",
                                    &dirs_, &missing);
        !st) {
      return st.error();
    }
    if (missing) return UserState{};  // not created yet: nothing has been recorded
    // A change is written into the slot not holding the state: an unlocked read sees the old
    // or the new state whole (a slot torn by a write meanwhile is read again).
    auto file = read_state_file(state_base(user) + ".state", config_.trusted_uid,
                                /*writable=*/false, 3);
    if (!file) return file.error();
    return std::move(file->state);
  }

  Result<std::vector<std::string>> enrolled_users() override {
    return std::vector<std::string>{};  // secrets live in homes: `list` walks the accounts
  }

  Status append_event(const Event& event) override { return append_event_file(config_, event); }

  Result<EventPage> read_events(const EventQuery& query, const EventCursor& from) override {
    return read_event_file(config_, query, from);
  }

 private:
  struct Location {
    std::string path;
    bool in_home = false;
    uid_t owner = 0;
  };

  Result<Location> locate(const User& user) const {
    auto path = expand_path_template(config_.secret_path, user);
    if (!path) return path.error();
    Location loc;
    loc.path = std::move(path.value());
    std::string home = user.home;
    while (home.size() > 1 && home.back() == '/') home.pop_back();
    loc.in_home = home.size() > 1 && loc.path.size() > home.size() &&
                  loc.path.compare(0, home.size(), home) == 0 && loc.path[home.size()] == '/';
    loc.owner = loc.in_home ? user.uid : config_.trusted_uid;
    return loc;
  }

  std::string state_base(const User& user) const {
    return config_.state_dir + "/" + file_name_for_user(user.name);
  }

  Config config_;
  // Asked once: a store serves one login or one command, which does not change its ids.
  uid_t euid_;
  gid_t egid_;
  // For this store's lifetime only (a login, a command): see TrustedDirs.
  TrustedDirs dirs_;
  std::string notice_;  // take_notice
};

}  // namespace

std::unique_ptr<Store> make_file_store(const Config& config) {
  return std::make_unique<FileStore>(config);
}

}  // namespace pbx::totp::detail

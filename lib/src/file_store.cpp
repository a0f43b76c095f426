#include "file_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "event_log.hpp"
#include "file_util.hpp"

namespace pbx::totp::detail {
namespace {

constexpr int kLockTimeoutMs = 5000;

class FileStateTxn final : public StateTxn {
 public:
  FileStateTxn(Fd lock, std::string path, UserState state)
      : lock_(std::move(lock)), path_(std::move(path)), state_(std::move(state)) {}
  const UserState& state() const override { return state_; }
  Status commit(const UserState& next) override {
    // No directory fsync for per-login state: a crash may lose the last record, never
    // consistency (rename is atomic), and it saves a second flush on every login.
    WriteOptions opts;
    opts.mode = 0600;
    opts.sync_dir = false;
    auto st = write_file_atomic(path_, serialize_state(next), opts, "state file");
    if (st) state_ = next;
    return st;
  }

 private:
  Fd lock_;  // released (and the flock with it) when the transaction goes away
  std::string path_;
  UserState state_;
};

class FileStore final : public Store {
 public:
  explicit FileStore(const Config& config) : config_(config) {}

  Result<Enrollment> load(const User& user) override {
    auto where = locate(user);
    if (!where) return where.error();
    FsIds ids(where->in_home ? user.uid : geteuid(), where->in_home ? user.gid : getegid());
    if (!ids.ok()) return make_error(Errc::kIo, "cannot switch to the user's filesystem ids");
    // Outside a home the secret is root's: so must its directories be. (A home is the user's
    // anyway; the user's own ids read it there.)
    FileCheck check{where->owner, 077, kMaxSecretFileSize};
    check.trusted_parents = !where->in_home;
    auto text = read_checked_file(where->path, check, "secret file");
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
    FsIds ids(where->in_home ? user.uid : geteuid(), where->in_home ? user.gid : getegid());
    if (!ids.ok()) return make_error(Errc::kIo, "cannot switch to the user's filesystem ids");
    if (!where->in_home) {
      // Root's secret goes only into root's directories: whoever may write one could move it.
      if (auto st = check_trusted_dir_of(where->path, where->owner, "secret file"); !st) return st;
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
    FsIds ids(where->in_home ? user.uid : geteuid(), where->in_home ? user.gid : getegid());
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
    FsIds ids(where->in_home ? user.uid : geteuid(), where->in_home ? user.gid : getegid());
    if (!ids.ok()) return make_error(Errc::kIo, "cannot switch to the user's filesystem ids");
    return remove_file(where->path, "secret file");
  }

  Status remove(const User& user) override {
    auto removed = remove_secret(user);
    if (!removed) return removed.error();
    const bool removed_secret = *removed;
    if (auto st = check_private_dir(config_.state_dir, config_.trusted_uid, false, "state_dir");
        !st) {
      if (!removed_secret) return st;
      // The secret is gone; state that cannot be reached belongs to no enrollment any more.
      return Ok{};
    }
    auto lock = lock_file(state_base(user) + ".lock", config_.trusted_uid, kLockTimeoutMs);
    if (!lock) return lock.error();
    auto r = remove_file(state_base(user) + ".state", "state file");
    if (!r) return r.error();
    if (!removed_secret && !*r) {
      return make_error(Errc::kNotEnrolled, "user '" + user.name + "' is not enrolled");
    }
    return Ok{};
  }

  Result<std::unique_ptr<StateTxn>> lock_state(const User& user) override {
    bool can_create = geteuid() == config_.trusted_uid;
    if (auto st =
            check_private_dir(config_.state_dir, config_.trusted_uid, can_create, "state_dir");
        !st) {
      return st.error();
    }
    std::string base = state_base(user);
    auto lock = lock_file(base + ".lock", config_.trusted_uid, kLockTimeoutMs);
    if (!lock) return lock.error();
    auto state = read_state(base + ".state");
    if (!state) return state.error();
    return std::unique_ptr<StateTxn>(std::make_unique<FileStateTxn>(
        std::move(lock.value()), base + ".state", std::move(state.value())));
  }

  Result<UserState> peek_state(const User& user) override {
    struct stat st_dir {};
    if (::lstat(config_.state_dir.c_str(), &st_dir) != 0 && errno == ENOENT) {
      return UserState{};  // not created yet: nothing has been recorded
    }
    if (auto st = check_private_dir(config_.state_dir, config_.trusted_uid, false, "state_dir");
        !st) {
      return st.error();
    }
    // Files are replaced by rename, so an unlocked read sees the old or the new state whole.
    return read_state(state_base(user) + ".state");
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

  Result<UserState> read_state(const std::string& path) const {
    auto text = read_private_file(path, config_.trusted_uid, kMaxStateFileSize, "state file");
    if (!text) return text.error();
    if (!text->has_value()) return UserState{};
    auto parsed = parse_state((*text)->view());
    if (!parsed) return make_error(parsed.error().code, parsed.error().message + " (" + path + ")");
    return parsed;
  }

  std::string state_base(const User& user) const {
    return config_.state_dir + "/" + file_name_for_user(user.name);
  }

  Config config_;
};

}  // namespace

std::unique_ptr<Store> make_file_store(const Config& config) {
  return std::make_unique<FileStore>(config);
}

}  // namespace pbx::totp::detail

// Test helpers for the store, verifier and concurrency tests: temp dirs, files, disk snapshots.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "device_access.hpp"
#include "files.hpp"
#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/state_file.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"
#include "pbx/totp/verifier.hpp"
#include "pg_test_db.hpp"

namespace pbx::totp {

// Readable gtest output for the library's enums (found by ADL).
inline void PrintTo(Errc errc, std::ostream* os) { *os << errc_name(errc); }
inline void PrintTo(Verdict verdict, std::ostream* os) { *os << verdict_name(verdict); }

namespace testing {

// scrypt cost that keeps the tests fast; production uses KdfParams{} (16384, 8, 1).
inline constexpr KdfParams kCheapKdf{1024, 8, 1};
// The RFC 4226/6238 test key.
inline constexpr std::string_view kRfcKey = "12345678901234567890";
inline constexpr std::string_view kIdA = "0123456789abcdef0123456789abcdef";
inline constexpr std::string_view kIdB = "fedcba9876543210fedcba9876543210";
// A Unix time at the start of a 30-second step, so "+29 s" stays in the same step.
inline constexpr std::int64_t kT0 = 56666667LL * 30;  // 1700000010
inline constexpr std::int64_t kStep = 30;             // the default period
inline constexpr uid_t kOtherUid = 65534;

template <typename T>
::testing::AssertionResult is_ok(const Result<T>& r) {
  if (r.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "error " << errc_name(r.error().code) << ": " << r.error().message;
}

template <typename T>
::testing::AssertionResult has_errc(const Result<T>& r, Errc expected) {
  if (r.ok()) {
    return ::testing::AssertionFailure() << "succeeded, expected " << errc_name(expected);
  }
  if (r.error().code != expected) {
    return ::testing::AssertionFailure()
           << "error " << errc_name(r.error().code) << " (" << r.error().message << "), expected "
           << errc_name(expected);
  }
  return ::testing::AssertionSuccess();
}

inline SecretBytes bytes_of(std::string_view text) {
  return SecretBytes(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

// The RFC 6238 keys for SHA256 and SHA512 (kRfcKey is SHA1's): a device of its own each.
inline constexpr std::string_view kKey256 = "12345678901234567890123456789012";
inline constexpr std::string_view kKey512 =
    "1234567890123456789012345678901234567890123456789012345678901234";

inline Device make_device(std::string name, std::string_view key, Algorithm a, int digits,
                          int period, std::int64_t created) {
  Device d;
  d.name = std::move(name);
  d.secret = bytes_of(key);
  d.algorithm = a;
  d.digits = digits;
  d.period = period;
  d.created = created;
  return d;
}

// The code an authenticator shows for `step`.
inline std::string code_for_step(const Device& d, std::int64_t step) {
  auto code = hotp(d.secret, d.algorithm, static_cast<std::uint64_t>(step), d.digits);
  if (!code) throw std::runtime_error("hotp failed");
  return format_code(*code, d.digits);
}
// Of the first device.
inline std::string code_for_step(const Enrollment& e, std::int64_t step) {
  return code_for_step(e.devices.at(0), step);
}

inline std::int64_t step_of(const Enrollment& e, std::int64_t t) {
  return time_step(t, e.devices.at(0).period);
}

// A private directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ = "/tmp/pbx-test-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

using test_support::write_file;

// Contents of a regular file (nullopt if missing, not regular, or unreadable).
inline std::optional<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

inline bool exists_nofollow(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

inline std::optional<struct stat> lstat_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}

// What an observer sees of one directory entry; atime is left out (reads may change it).
struct EntryInfo {
  char type = '?';  // f regular, d directory, l symlink, p fifo, ? other
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::string content;  // regular files: the bytes; symlinks: the target
  bool operator==(const EntryInfo&) const = default;
};

using Snapshot = std::map<std::string, EntryInfo>;

inline void snapshot_into(const std::string& path, const std::string& rel, Snapshot& out) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  EntryInfo info;
  info.mode = st.st_mode & 07777;
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  info.size = static_cast<std::int64_t>(st.st_size);
  info.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (S_ISREG(st.st_mode)) {
    info.type = 'f';
    info.content = read_file(path).value_or("<unreadable>");
  } else if (S_ISLNK(st.st_mode)) {
    info.type = 'l';
    char buf[4096];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    if (n > 0) info.content.assign(buf, static_cast<std::size_t>(n));
  } else if (S_ISFIFO(st.st_mode)) {
    info.type = 'p';
  } else if (S_ISDIR(st.st_mode)) {
    info.type = 'd';
    // A temp file made and removed again leaves nothing behind but a directory mtime.
    info.mtime_ns = 0;
    info.size = 0;
  }
  out[rel] = info;
  if (info.type != 'd') return;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> names;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string name = ent->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  for (const auto& name : names) snapshot_into(path + "/" + name, rel + "/" + name, out);
}

// Every entry below `root` (root itself included, symlinks not followed).
inline Snapshot snapshot(const std::string& root) {
  Snapshot out;
  snapshot_into(root, ".", out);
  return out;
}

// Empty when equal; otherwise says which entries differ and how.
inline std::string snapshot_diff(const Snapshot& before, const Snapshot& after) {
  std::string out;
  auto describe = [](const EntryInfo& e) {
    char mode[16];
    (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(e.mode));
    return std::string(1, e.type) + " mode " + mode + " uid " + std::to_string(e.uid) + " size " +
           std::to_string(e.size) + " mtime " + std::to_string(e.mtime_ns);
  };
  for (const auto& [name, info] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      out += "removed " + name + "\n";
    } else if (!(it->second == info)) {
      out += "changed " + name + ": " + describe(info) + " -> " + describe(it->second) +
             (info.content != it->second.content ? " (content differs)" : "") + "\n";
    }
  }
  for (const auto& [name, info] : after) {
    if (before.count(name) == 0) out += "created " + name + ": " + describe(info) + "\n";
  }
  return out;
}

// Runs `fn` in a child process and returns what it returned (-2 if it threw), or nullopt if it
// did not finish within `deadline` (the child is then killed). For calls that might hang.
inline std::optional<int> run_in_child(const std::function<int()>& fn,
                                       std::chrono::milliseconds deadline) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(fds[0]);
    int value = -3;
    try {
      value = fn();
    } catch (...) {
      value = -2;  // never unwind into gtest in a forked child
    }
    ssize_t ignored = ::write(fds[1], &value, sizeof value);
    (void)ignored;
    ::_exit(0);
  }
  ::close(fds[1]);
  struct pollfd pfd {
    fds[0], POLLIN, 0
  };
  int ready = ::poll(&pfd, 1, static_cast<int>(deadline.count()));
  std::optional<int> result;
  if (ready == 1) {
    int value = 0;
    if (::read(fds[0], &value, sizeof value) == static_cast<ssize_t>(sizeof value)) {
      result = value;
    }
  }
  if (!result) ::kill(pid, SIGKILL);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return result;
}

// A verify's verdict, or nullopt when it answered an error (a store it could not read or
// reach, an outcome it could not record).
inline std::optional<Verdict> verdict_of(const Result<Outcome>& r) {
  if (!r.ok()) return std::nullopt;
  return r->verdict;
}

// The same as one int, for what a forked child hands back: the verdict, or kVerifyError.
inline constexpr int kVerifyError = 99;
inline int verdict_code(const Result<Outcome>& r) {
  return r.ok() ? static_cast<int>(r->verdict) : kVerifyError;
}
inline std::string verdict_code_name(int code) {
  return code == kVerifyError ? "error" : verdict_name(static_cast<Verdict>(code));
}

// -1 for success, otherwise the error code as an int: what run_in_child can carry.
template <typename T>
int errc_or_ok(const Result<T>& r) {
  return r.ok() ? -1 : static_cast<int>(r.error().code);
}

// A file store on a private temp dir: secrets in <tmp>/secrets/%u (root-owned, outside any
// home), state in <tmp>/state, and one enrolled test key for `alice`. With
// PBX_TEST_STORE=postgresql (ctest's pg.* runs) the same tests run against the database store
// instead, in a schema of their own on the throwaway cluster.
class StoreFixture : public ::testing::Test {
 protected:
  bool on_database() const { return pg_ != nullptr; }

  void SetUp() override {
    SetUpFiles();
    if (pg_store_wanted()) {
      PBX_SKIP_UNLESS_PG_CLUSTER();
      pg_ = std::make_unique<PgSchema>();
      use_pg_store(config_, *pg_, tmp_ / "fleet.key");
      auto init = db_init(config_);
      ASSERT_TRUE(init.ok()) << init.error().message;
    }
  }

  void SetUpFiles() {
    secrets_dir_ = tmp_ / "secrets";
    state_dir_ = tmp_ / "state";
    ASSERT_EQ(::mkdir(secrets_dir_.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(state_dir_.c_str(), 0700), 0);
    config_.store = "files";
    config_.secret_path = secrets_dir_ + "/%u";
    config_.state_dir = state_dir_;
    config_.trusted_uid = 0;
    config_.window = 1;
    config_.max_failures = 5;
    config_.lockout = 60;
    config_.grace_period = 0;
    alice_ = User{"alice", 1001, 1001, "/nonexistent/home/alice"};
    bob_ = User{"bob", 1002, 1002, "/nonexistent/home/bob"};
  }

  Store& store() {
    if (!store_) {
      auto opened = open_store(config_);
      if (!opened.ok()) {
        ADD_FAILURE() << "open_store: " << opened.error().message;
        throw std::runtime_error("open_store failed");
      }
      store_ = std::move(opened.value());
    }
    return *store_;
  }
  // After changing config_, so the next store() sees the change.
  void reopen() { store_.reset(); }

  // lock_state(alice) and peek_state(alice) with a fresh store in a child (a file lock or a
  // crash stays there): kOk or the error code.
  std::optional<int> lock_in_child() {
    return run_in_child(
        [this] {
          auto opened = open_store(config_);
          if (!opened.ok()) return errc_or_ok(opened);
          return errc_or_ok(opened.value()->lock_state(alice_));
        },
        std::chrono::milliseconds(1000));
  }
  std::optional<int> peek_in_child() {
    return run_in_child(
        [this] {
          auto opened = open_store(config_);
          if (!opened.ok()) return errc_or_ok(opened);
          return errc_or_ok(opened.value()->peek_state(alice_));
        },
        std::chrono::milliseconds(1000));
  }

  // An enrollment of the RFC key with `recovery_count` fresh recovery codes (kept in codes_).
  Enrollment make_enrollment(std::string_view id = kIdA, int recovery_count = 3) {
    Enrollment e = single_device_enrollment(std::string(id), bytes_of(kRfcKey), Algorithm::kSha1, 6,
                                            30, kT0 - 86400);
    auto codes = generate_recovery_codes(recovery_count);
    if (!codes.ok()) throw std::runtime_error("generate_recovery_codes failed");
    auto set = hash_recovery_codes(codes.value(), kCheapKdf);
    if (!set.ok()) throw std::runtime_error("hash_recovery_codes failed");
    e.recovery = set.value();
    codes_ = std::move(codes.value());
    return e;
  }

  // Saves a fresh enrollment for `user` (overwriting) and returns it.
  Enrollment enroll(const User& user, std::string_view id = kIdA, int recovery_count = 3) {
    Enrollment e = make_enrollment(id, recovery_count);
    auto saved = store().save(user, e, /*overwrite=*/true);
    if (!saved.ok()) {
      ADD_FAILURE() << "save: " << saved.error().message;
      throw std::runtime_error("save failed");
    }
    return e;
  }

  // What the store keeps for the user, byte for byte: the secret file or the sealed row, the
  // state file or the state column ("" when there is none).
  std::string stored_secret(const User& user) const {
    if (on_database()) {
      return pg_->exec(
          "SELECT enrollment_id || ' ' || encode(sealed, 'hex') FROM "
          "pbx_mfa_enrollment WHERE user_name = '" +
          user.name + "'");
    }
    return read_file(secret_file(user)).value_or("");
  }
  std::string stored_state(const User& user) const {
    if (on_database()) {
      return pg_->exec("SELECT state_text FROM pbx_mfa_state WHERE user_name = '" + user.name +
                       "'");
    }
    return read_file(state_file(user)).value_or("");
  }
  // The state text stored: the column, or what the state file's newest valid slot holds
  // (pbx/totp/state_file.hpp; a text-format file as it is). "" when there is none.
  std::string stored_state_text(const User& user) const {
    std::string bytes = stored_state(user);
    if (on_database() || bytes.empty()) return bytes;
    auto text = state_file_text(bytes, state_file(user));
    if (!text) {
      ADD_FAILURE() << text.error().message;
      return "";
    }
    return std::string(*text);
  }

  std::string secret_file(const User& user) const { return secrets_dir_ + "/" + user.name; }
  std::string state_file(const User& user) const { return state_dir_ + "/" + user.name + ".state"; }
  std::string lock_file(const User& user) const { return state_dir_ + "/" + user.name + ".lock"; }

  // The stored state, read under the lock (the lock is released on return).
  UserState read_state(const User& user) {
    auto txn = store().lock_state(user);
    if (!txn.ok()) {
      ADD_FAILURE() << "lock_state: " << txn.error().message;
      return {};
    }
    return txn.value()->state();
  }

  TempDir tmp_;
  std::unique_ptr<PgSchema> pg_;
  std::string secrets_dir_;
  std::string state_dir_;
  Config config_;
  User alice_;
  User bob_;
  std::vector<SecretString> codes_;
  std::unique_ptr<Store> store_;
};

}  // namespace testing
}  // namespace pbx::totp

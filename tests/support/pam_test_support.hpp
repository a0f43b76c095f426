// Helpers shared by the PAM module tests: temp dirs, private files, enrollments and codes.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "device_access.hpp"
#include "files.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/state_file.hpp"
#include "pbx/totp/store.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::pam::testing {

// scrypt cost that keeps the tests fast; the cost is stored with the hashes.
inline constexpr totp::KdfParams kCheapKdf{1024, 8, 1};

// The secret itself, as base32 and hex: what a log line must never hold.
inline std::string secret_base32(const totp::Enrollment& e) {
  const auto& secret = e.devices.at(0).secret;
  return totp::base32_encode(secret.data(), secret.size(), false);
}

// A private directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ = "/tmp/pbx-pam-test-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

using test_support::write_file;

// What a user's enrollment lets a test compute: codes, and the recovery codes in clear.
struct Enrolled {
  totp::Enrollment enrollment;
  std::vector<std::string> recovery_codes;

  // Codes of device `device` (0: the first).
  std::string code_for_step(std::int64_t step, std::size_t device = 0) const {
    const totp::Device& d = enrollment.devices.at(device);
    auto code = totp::hotp(d.secret, d.algorithm, static_cast<std::uint64_t>(step), d.digits);
    if (!code) throw std::runtime_error("hotp failed");
    return totp::format_code(*code, d.digits);
  }
  std::string code_at(std::int64_t unix_time, std::size_t device = 0) const {
    return code_for_step(totp::time_step(unix_time, enrollment.devices.at(device).period), device);
  }
  // A code of the right length that no step within ±3 of `unix_time` produces.
  std::string wrong_code_at(std::int64_t unix_time) const {
    std::int64_t step = totp::time_step(unix_time, enrollment.devices.at(0).period);
    for (int candidate = 123456;; candidate = (candidate + 111111) % 1000000) {
      std::string code =
          totp::format_code(static_cast<std::uint32_t>(candidate), enrollment.devices.at(0).digits);
      bool valid = false;
      for (std::int64_t d = -3; d <= 3; ++d) valid = valid || code_for_step(step + d) == code;
      if (!valid) return code;
    }
  }
};

// One test's files: the config file, secrets in <root>/secrets/%u (outside every home, so owned
// by the trusted uid) and per-user state in <root>/state.
class TestFiles {
 public:
  explicit TestFiles(uid_t trusted_uid) : trusted_uid_(trusted_uid) {
    if (::mkdir(secrets_dir().c_str(), 0700) != 0 || ::mkdir(state_dir().c_str(), 0700) != 0) {
      throw std::runtime_error("cannot create the test directories");
    }
  }

  const std::string& root() const { return tmp_.path(); }
  std::string config_path() const { return root() + "/pbx-mfa.conf"; }
  std::string secrets_dir() const { return root() + "/secrets"; }
  std::string state_dir() const { return root() + "/state"; }
  std::string secret_file(std::string_view user) const {
    return secrets_dir() + "/" + std::string(user);
  }
  std::string state_file(std::string_view user) const {
    return state_dir() + "/" + std::string(user) + ".state";
  }
  std::string lock_file(std::string_view user) const {
    return state_dir() + "/" + std::string(user) + ".lock";
  }
  uid_t trusted_uid() const { return trusted_uid_; }

  // The config lines every test needs, then `extra` (more `key = value` lines).
  std::string config_text(std::string_view extra = {}) const {
    std::string text = "# pbx-mfa test configuration\n";
    text += "secret_path = " + secrets_dir() + "/%u\n";
    text += "state_dir = " + state_dir() + "\n";
    text += "window = 1\n";
    return text + std::string(extra);
  }
  void write_config(std::string_view extra = {}) const {
    if (!write_file(config_path(), config_text(extra), 0644, trusted_uid_)) {
      throw std::runtime_error("cannot write " + config_path());
    }
  }

  // The same settings as a Config, for saving enrollments through the library.
  totp::Config store_config() const {
    totp::Config c;
    c.secret_path = secrets_dir() + "/%u";
    c.state_dir = state_dir();
    c.trusted_uid = trusted_uid_;
    return c;
  }

  // Enrolls `user` with a fresh secret and a fresh enrollment id (so fresh state), replacing
  // any earlier enrollment.
  Enrolled enroll(const std::string& user, int recovery_count = 2) const {
    auto account = totp::lookup_user(user);
    if (!account) throw std::runtime_error("no account " + user);
    Enrolled out;
    totp::Enrollment& e = out.enrollment;
    auto id = totp::new_enrollment_id();
    auto secret = totp::generate_secret(totp::Algorithm::kSha1);
    if (!id || !secret) throw std::runtime_error("cannot make an enrollment");
    e = totp::single_device_enrollment(*id, std::move(secret.value()), totp::Algorithm::kSha1, 6,
                                       30, 1700000000);
    if (recovery_count > 0) {
      auto codes = totp::generate_recovery_codes(recovery_count);
      if (!codes) throw std::runtime_error("cannot make recovery codes");
      auto set = totp::hash_recovery_codes(*codes, kCheapKdf);
      if (!set) throw std::runtime_error("cannot hash recovery codes");
      e.recovery = std::move(set.value());
      for (const auto& c : *codes) out.recovery_codes.emplace_back(c.view());
    }
    auto store = totp::open_store(store_config());
    if (!store) throw std::runtime_error("open_store: " + store.error().message);
    if (auto st = (*store)->save(*account, e, /*overwrite=*/true); !st) {
      throw std::runtime_error("save: " + st.error().message);
    }
    return out;
  }

 private:
  TempDir tmp_;
  uid_t trusted_uid_;
};

// A file a login must refuse to read: PAM_AUTHINFO_UNAVAIL, without asking for a code.
struct HostileCase {
  const char* name;
  enum class Where { kSecret, kState, kStateDir, kLock } where;
  bool needs_root;  // changes an owner
  // Breaks `user`'s files; the user is enrolled and has a state file already.
  std::function<void(const TestFiles&, const std::string&)> make;
};

// gtest prints a parameter by its name instead of its bytes.
inline void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

inline void must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("test setup failed: " + what);
}

// A valid state file for the user's enrollment, owned by the trusted uid.
inline void write_state(const TestFiles& files, const std::string& user, const std::string& id) {
  totp::UserState s;
  s.enrollment_id = id;
  must(write_file(files.state_file(user), totp::serialize_state(s), 0600, files.trusted_uid()),
       "write state");
}

inline std::string read_all(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  must(fd >= 0, "open " + path);
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

// The state text of a state file (pbx/totp/state_file.hpp: the newest valid slot, or a
// text-format file as it is); throws when there is none.
inline std::string state_text(const std::string& path) {
  std::string bytes = read_all(path);
  auto text = totp::state_file_text(bytes, path);
  if (!text) throw std::runtime_error(text.error().message);
  return std::string(*text);
}

// Replaces `path` (a file) by something else made by `make_other(path)`.
inline void replace(const std::string& path, const std::function<bool(const std::string&)>& make) {
  must(::unlink(path.c_str()) == 0, "unlink " + path);
  must(make(path), "replace " + path);
}

inline std::vector<HostileCase> hostile_cases() {
  using W = HostileCase::Where;
  auto chmod_to = [](auto path_of, mode_t mode) {
    return [=](const TestFiles& f, const std::string& u) {
      must(::chmod(path_of(f, u).c_str(), mode) == 0, "chmod");
    };
  };
  auto chown_away = [](auto path_of) {
    return [=](const TestFiles& f, const std::string& u) {
      must(::lchown(path_of(f, u).c_str(), 65534, 65534) == 0, "chown");
    };
  };
  auto symlink_to_copy = [](auto path_of) {
    // A symlink to an identical, well-kept copy: the link alone must be the reason to refuse.
    return [=](const TestFiles& f, const std::string& u) {
      std::string path = path_of(f, u);
      std::string copy = f.root() + "/copy-of-" + u;
      must(write_file(copy, read_all(path), 0600, f.trusted_uid()), "copy");
      replace(path, [&](const std::string& p) { return ::symlink(copy.c_str(), p.c_str()) == 0; });
    };
  };
  auto fifo = [](auto path_of) {
    return [=](const TestFiles& f, const std::string& u) {
      replace(path_of(f, u), [](const std::string& p) { return ::mkfifo(p.c_str(), 0600) == 0; });
    };
  };
  auto directory = [](auto path_of) {
    return [=](const TestFiles& f, const std::string& u) {
      replace(path_of(f, u), [](const std::string& p) { return ::mkdir(p.c_str(), 0700) == 0; });
    };
  };
  auto content = [](auto path_of, std::function<std::string(std::string)> change) {
    return [=](const TestFiles& f, const std::string& u) {
      std::string path = path_of(f, u);
      must(write_file(path, change(read_all(path)), 0600, f.trusted_uid()), "rewrite");
    };
  };
  auto without_end = [](std::string text) {
    std::size_t end = text.rfind("end\n");
    return end == std::string::npos ? text : text.substr(0, end);
  };
  auto secret = [](const TestFiles& f, const std::string& u) { return f.secret_file(u); };
  auto state = [](const TestFiles& f, const std::string& u) { return f.state_file(u); };
  auto state_dir = [](const TestFiles& f, const std::string&) { return f.state_dir(); };

  return {
      {"SecretGroupReadable", W::kSecret, false, chmod_to(secret, 0640)},
      {"SecretWorldReadable", W::kSecret, false, chmod_to(secret, 0604)},
      {"SecretGroupWritable", W::kSecret, false, chmod_to(secret, 0620)},
      {"SecretWrongOwner", W::kSecret, true, chown_away(secret)},
      {"SecretSymlink", W::kSecret, false, symlink_to_copy(secret)},
      {"SecretFifo", W::kSecret, false, fifo(secret)},
      {"SecretDirectory", W::kSecret, false, directory(secret)},
      {"SecretGarbage", W::kSecret, false,
       content(secret, [](std::string) { return std::string("this is not a secret file\n"); })},
      {"SecretEmpty", W::kSecret, false,
       content(secret, [](std::string) { return std::string(); })},
      {"SecretTruncated", W::kSecret, false, content(secret, without_end)},
      {"SecretBadBase32", W::kSecret, false,
       content(secret,
               [](std::string t) {
                 // Before the base32 key at the end of the (first) device line.
                 std::size_t at = t.find("\ndevice ");
                 if (at == std::string::npos) return t;
                 std::size_t key = t.rfind(' ', t.find('\n', at + 1));
                 return t.insert(key + 1, "1!");
               })},
      {"SecretNulByte", W::kSecret, false,
       content(secret, [](std::string t) { return t.insert(t.size() / 2, 1, '\0'); })},
      {"SecretOversize", W::kSecret, false,
       content(secret, [](std::string t) { return t + std::string(20000, '#') + "\n"; })},
      {"StateGarbage", W::kState, false,
       content(state, [](std::string) { return std::string("\x01\x02 garbage\n"); })},
      {"StateTruncated", W::kState, false, content(state, without_end)},
      {"StateOversize", W::kState, false,
       content(state, [](std::string t) { return std::string(20000, '#') + "\n" + t; })},
      {"StateWorldReadable", W::kState, false, chmod_to(state, 0644)},
      {"StateWrongOwner", W::kState, true, chown_away(state)},
      {"StateSymlink", W::kState, false, symlink_to_copy(state)},
      {"StateFifo", W::kState, false, fifo(state)},
      {"StateDirectory", W::kState, false, directory(state)},
      {"StateDirGroupWritable", W::kStateDir, false, chmod_to(state_dir, 0770)},
      {"StateDirWorldReadable", W::kStateDir, false, chmod_to(state_dir, 0755)},
      {"StateDirWrongOwner", W::kStateDir, true, chown_away(state_dir)},
      {"StateDirSymlink", W::kStateDir, false,
       [](const TestFiles& f, const std::string&) {
         std::string real = f.root() + "/real-state";
         must(::rename(f.state_dir().c_str(), real.c_str()) == 0, "rename state dir");
         must(::symlink(real.c_str(), f.state_dir().c_str()) == 0, "symlink state dir");
       }},
      {"StateDirIsAFile", W::kStateDir, false,
       [](const TestFiles& f, const std::string&) {
         std::filesystem::remove_all(f.state_dir());
         must(write_file(f.state_dir(), "", 0600, f.trusted_uid()), "state dir file");
       }},
      {"LockSymlink", W::kLock, false,
       [](const TestFiles& f, const std::string& u) {
         std::string target = f.root() + "/lock-target";
         must(write_file(target, "", 0600, f.trusted_uid()), "lock target");
         must(::symlink(target.c_str(), f.lock_file(u).c_str()) == 0, "symlink lock");
       }},
      {"LockFifo", W::kLock, false,
       [](const TestFiles& f, const std::string& u) {
         must(::mkfifo(f.lock_file(u).c_str(), 0600) == 0, "mkfifo lock");
       }},
      {"LockWorldWritable", W::kLock, false,
       [](const TestFiles& f, const std::string& u) {
         must(write_file(f.lock_file(u), "", 0666, f.trusted_uid()), "lock file");
       }},
      {"LockWrongOwner", W::kLock, true,
       [](const TestFiles& f, const std::string& u) {
         must(write_file(f.lock_file(u), "", 0600, 65534, 65534), "lock file");
       }},
  };
}

// The path a hostile case broke: the refusal should name it.
inline std::string hostile_path(const HostileCase& c, const TestFiles& f, const std::string& u) {
  switch (c.where) {
    case HostileCase::Where::kSecret:
      return f.secret_file(u);
    case HostileCase::Where::kState:
      return f.state_file(u);
    case HostileCase::Where::kStateDir:
      return f.state_dir();
    case HostileCase::Where::kLock:
      return f.lock_file(u);
  }
  return {};
}

}  // namespace pbx::pam::testing

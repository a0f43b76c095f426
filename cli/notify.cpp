// The notifier of `pbx-mfa events --follow --notify` (notify.hpp): notify_command checked like
// the database plugin, run per event in its own process group, reaped and killed by poll().
#include "notify.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <ostream>
#include <thread>

#include "pbx/totp/checked_file.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::cli {
namespace {

constexpr std::int64_t kRateWindow = 3600;  // notify_rate counts the runs of the last hour
// notify_command may be a compiled program: as large as the plugin may be.
constexpr std::size_t kMaxCommandSize = std::size_t{64} * 1024 * 1024;

std::string field(std::string_view s) {
  static constexpr totp::EscapeSet kField{" ", 128, "..."};
  return totp::escape_field(s, kField);
}

// "event locked-out (user bob, 2026-12-05T03:12:07Z)"
std::string describe(const totp::Event& e) {
  return "event " + field(e.event) + " (user " + field(e.user) + ", " + totp::iso_time(e.time) +
         ")";
}

}  // namespace

totp::Status check_notify_command(const std::string& path, uid_t trusted_uid) {
  if (path.empty()) {
    return totp::make_error(totp::Errc::kConfig, "notify_command is not set");
  }
  const std::string what = "notify_command " + path;
  if (path.front() != '/') {
    return totp::make_error(totp::Errc::kConfig, what + ": not an absolute path");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return totp::make_error(totp::Errc::kConfig, what + ": does not exist");
    return totp::make_error(totp::Errc::kIo, what + ": " + std::strerror(err));
  }
  if (S_ISLNK(st.st_mode)) {
    return totp::make_error(totp::Errc::kUnsafe,
                            what +
                                ": is a symbolic link (name the program itself: whoever can "
                                "change a link's target chooses what root runs)");
  }
  // The directories checked below are those of its real path: a symbolic link on the way (in
  // a directory someone else can write) could name other directories when it runs than when
  // it was checked. Only the real path, whose directories are all checked, names it for good.
  if (char* resolved = ::realpath(path.c_str(), nullptr); resolved != nullptr) {
    std::string real(resolved);
    std::free(resolved);
    if (real != path) {
      return totp::make_error(totp::Errc::kUnsafe,
                              what +
                                  ": goes through a symbolic link or is not in its plain "
                                  "form (name the program by its real path, " +
                                  real + ")");
    }
  } else {
    return totp::make_error(totp::Errc::kIo, what + ": " + std::strerror(errno));
  }
  // Regular file, owner, not writable by group or others, and every directory above it: the
  // plugin's check (pg_link.cpp), through the library's one checked open.
  totp::FileCheck check{trusted_uid, 022, kMaxCommandSize};
  check.trusted_parents = true;
  auto read = totp::read_checked_text(path, check, "notify_command");
  if (!read) return read.error();
  if (!*read) return totp::make_error(totp::Errc::kConfig, what + ": does not exist");
  if ((st.st_mode & S_IXUSR) == 0) {
    return totp::make_error(totp::Errc::kUnsafe,
                            what + ": not executable (chmod 0755 " + path + ")");
  }
  return totp::Ok{};
}

NotifyOptions NotifyOptions::from(const totp::Config& config) {
  NotifyOptions o;
  o.command = config.notify_command;
  o.events = config.notify_events;
  o.timeout_s = config.notify_timeout;
  o.rate = config.notify_rate;
  o.trusted_uid = config.trusted_uid;
  return o;
}

Notifier::Notifier(NotifyOptions options, const totp::Clock& clock, std::ostream& log)
    : options_(std::move(options)), clock_(clock), log_(log) {
  // A command that exits without reading its stdin must not end the notifier with SIGPIPE;
  // the command itself gets the default back (posix_spawnattr_setsigdefault).
  (void)::signal(SIGPIPE, SIG_IGN);
}

Notifier::~Notifier() { stop(); }

bool Notifier::wants(const totp::Event& e) const {
  return std::any_of(options_.events.begin(), options_.events.end(), [&](const std::string& entry) {
    return totp::event_entry_matches(entry, e.event);
  });
}

std::string Notifier::payload(const totp::Event& e, int suppressed) {
  std::string line = totp::event_to_json(e);
  if (suppressed > 0 && !line.empty() && line.back() == '}') {
    line.pop_back();
    line += ",\"suppressed\":" + std::to_string(suppressed) + "}";
  }
  return line;
}

bool Notifier::notify(const totp::Event& e) {
  if (!wants(e)) return false;
  // notify_events "all" names any kind: one this version does not know (a line another writer
  // of the database put there) is not handed to a script as PBX_MFA_EVENT.
  if (totp::find_event_kind(e.event) == nullptr) {
    log_ << "pbx-mfa: notify: " << describe(e) << " not sent: not a known event kind" << std::endl;
    return false;
  }
  const std::int64_t now = clock_.now();
  auto& recent = recent_[e.event];
  while (!recent.empty() && recent.front() <= now - kRateWindow) recent.pop_front();
  int& suppressed = suppressed_[e.event];
  if (recent.size() >= static_cast<std::size_t>(options_.rate)) {
    ++suppressed;
    ++counts_.suppressed;
    log_ << "pbx-mfa: notify: " << describe(e) << " not sent: notify_rate " << options_.rate
         << " runs of " << field(e.event) << " in the last hour reached (" << suppressed
         << " not sent; the next run of that kind says \"suppressed\": " << suppressed << ")"
         << std::endl;
    return false;
  }
  if (children_.size() >= options_.max_running) {
    ++suppressed;
    ++counts_.dropped;
    log_ << "pbx-mfa: notify: " << describe(e) << " dropped: " << children_.size()
         << " notify_command runs still going (at most " << options_.max_running
         << " at a time); the next run of that kind says \"suppressed\": " << suppressed
         << std::endl;
    return false;
  }
  if (!start(e, payload(e, suppressed))) return false;
  recent.push_back(now);
  suppressed = 0;
  return true;
}

bool Notifier::start(const totp::Event& e, const std::string& line) {
  // Checked before every run, not only at start: a command made unsafe since is not run.
  if (auto ok = check_notify_command(options_.command, options_.trusted_uid); !ok) {
    ++counts_.failed;
    log_ << "pbx-mfa: notify: " << describe(e) << " not sent: " << ok.error().message << std::endl;
    return false;
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ++counts_.failed;
    log_ << "pbx-mfa: notify: " << describe(e) << " not sent: pipe: " << std::strerror(errno)
         << std::endl;
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  ::posix_spawn_file_actions_addchdir_np(&actions, "/");
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  ::posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#endif
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM}) {
    sigaddset(&defaults, sig);
  }
  ::posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  ::posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills all it started
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &defaults);

  std::string path_var = std::string("PATH=") + kNotifyPath;
  std::string kind_var = "PBX_MFA_EVENT=" + field(e.event);
  std::string arg0 = options_.command;
  char* argv[] = {arg0.data(), nullptr};
  char* envp[] = {path_var.data(), kind_var.data(), nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, options_.command.c_str(), &actions, &attr, argv, envp);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  ::close(fds[0]);
  if (rc != 0) {
    ::close(fds[1]);
    ++counts_.failed;
    log_ << "pbx-mfa: notify: " << describe(e) << " not sent: cannot run " << options_.command
         << ": " << std::strerror(rc) << std::endl;
    return false;
  }
  // The line (at most a few KiB) fits the pipe's buffer: written at once, never waiting for
  // the command to read it.
  std::string data = line + "\n";
  (void)::fcntl(fds[1], F_SETFL, O_NONBLOCK);
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fds[1], data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fds[1]);
  if (done < data.size()) {
    log_ << "pbx-mfa: notify: " << describe(e) << ": notify_command took only " << done << " of "
         << data.size() << " bytes of the event on its stdin" << std::endl;
  }
  ++counts_.started;
  Child c;
  c.pid = pid;
  c.what = describe(e);
  c.started = Steady::now();
  log_ << "pbx-mfa: notify: " << c.what << ": notify_command started (pid " << pid << ")"
       << std::endl;
  children_.push_back(std::move(c));
  return true;
}

void Notifier::ended(const Child& c, int status) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  if (c.terminated) return;  // logged when it was killed
  ++counts_.failed;
  if (WIFEXITED(status)) {
    log_ << "pbx-mfa: notify: notify_command exited " << WEXITSTATUS(status) << " for " << c.what
         << std::endl;
  } else if (WIFSIGNALED(status)) {
    log_ << "pbx-mfa: notify: notify_command died of signal " << WTERMSIG(status) << " for "
         << c.what << std::endl;
  }
}

namespace {

// Does the process group `pgid` still have a member? A command that exited may have left a
// process behind (`curl ... &`): until the group is empty it still counts and is still killed
// at notify_timeout. Its number cannot be reused while any member lives.
bool group_alive(pid_t pgid) { return ::kill(-pgid, 0) == 0 || errno == EPERM; }

// Reaps `c`'s command without waiting; true once it has exited (and was reaped here or
// elsewhere). `status` is set when it was reaped here.
bool reap_leader(pid_t pid, int& status, bool& reaped_here) {
  reaped_here = false;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == pid) {
    reaped_here = true;
    return true;
  }
  return r < 0 && errno == ECHILD;
}

}  // namespace

void Notifier::poll() {
  const auto now = Steady::now();
  const auto timeout = std::chrono::seconds(options_.timeout_s);
  const auto grace = std::chrono::milliseconds(options_.kill_grace_ms);
  for (auto it = children_.begin(); it != children_.end();) {
    if (!it->leader_reaped) {
      int status = 0;
      bool here = false;
      if (reap_leader(it->pid, status, here)) {
        if (here) ended(*it, status);
        it->leader_reaped = true;
      }
    }
    // The command is gone: forget it when its group is empty too, or once SIGKILL was sent to
    // it (members that are zombies nobody reaped yet would otherwise keep it here).
    if (it->leader_reaped && (it->sigkilled || !group_alive(it->pid))) {
      it = children_.erase(it);
      continue;
    }
    if (!it->terminated && now - it->started >= timeout) {
      ::kill(-it->pid, SIGTERM);
      it->terminated = true;
      it->terminated_at = now;
      ++counts_.killed;
      log_ << "pbx-mfa: notify: notify_command killed after " << options_.timeout_s
           << " s (notify_timeout) for " << it->what << std::endl;
    } else if (it->terminated && now - it->terminated_at >= grace) {
      ::kill(-it->pid, SIGKILL);  // it ignored SIGTERM
      it->sigkilled = true;
    }
    ++it;
  }
}

void Notifier::stop() {
  if (children_.empty()) return;
  for (auto& c : children_) {
    ::kill(-c.pid, SIGTERM);
    if (!c.terminated) {
      c.terminated = true;
      log_ << "pbx-mfa: notify: stopping: notify_command for " << c.what << " terminated"
           << std::endl;
    }
  }
  const auto deadline = Steady::now() + std::chrono::milliseconds(options_.kill_grace_ms);
  while (!children_.empty()) {
    for (auto it = children_.begin(); it != children_.end();) {
      int status = 0;
      bool here = false;
      if (!it->leader_reaped && reap_leader(it->pid, status, here)) it->leader_reaped = true;
      if (it->leader_reaped && !group_alive(it->pid)) {
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
    if (children_.empty()) break;
    if (Steady::now() >= deadline) {
      for (auto& c : children_) {
        ::kill(-c.pid, SIGKILL);
        int status = 0;
        while (!c.leader_reaped && ::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
        }
      }
      children_.clear();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace pbx::cli

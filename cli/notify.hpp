// Alerts: `pbx-mfa events --follow --notify` runs notify_command once per new event whose kind
// notify_events names, with the event's JSON on its stdin; never waits for it (pbx-mfa(1) EVENTS).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "pbx/totp/clock.hpp"
#include "pbx/totp/config.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/result.hpp"

namespace pbx::cli {

// notify_command checked as the database plugin is (pg_link.cpp) before root runs it: an
// absolute path, in its real form (no symbolic link anywhere on it, no "." or ".." or "//"), to
// a regular file owned by `trusted_uid`, not writable by
// group or others, executable by its owner, in directories only root (or `trusted_uid`) can
// write. kConfig when `path` is empty or missing, kUnsafe when it is refused, kIo when it
// cannot be examined; the message names notify_command and says why.
totp::Status check_notify_command(const std::string& path, uid_t trusted_uid);

// The environment a command gets: PATH (kNotifyPath) and PBX_MFA_EVENT=KIND, nothing else.
inline constexpr const char* kNotifyPath = "/usr/sbin:/usr/bin:/sbin:/bin";

struct NotifyOptions {
  std::string command;              // notify_command
  std::vector<std::string> events;  // notify_events
  int timeout_s = 30;               // notify_timeout: SIGTERM to its process group, then ...
  int kill_grace_ms = 2000;         // ... SIGKILL this much later if it still runs
  int rate = 10;                    // notify_rate: runs per event kind per sliding hour
  std::size_t max_running = 8;      // commands at a time; an event over that is dropped
  uid_t trusted_uid = 0;

  static NotifyOptions from(const totp::Config& config);
};

// Runs the command for events without ever waiting for it: each run is a child in its own
// process group (counted, and killed at the timeout, until the whole group has ended, not
// only the command), its stdin a pipe that already holds the whole JSON line, its stdout and
// stderr this process's stderr (the journal under systemd). poll() reaps and kills; call it
// often (events --follow does, every poll of the log). Single-threaded.
class Notifier {
 public:
  // `clock` dates the rate limit's hour (injected in tests); `log` gets one line per run,
  // failure, kill, suppression and drop ("pbx-mfa: notify: ...").
  Notifier(NotifyOptions options, const totp::Clock& clock, std::ostream& log);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Does notify_events name this kind?
  bool wants(const totp::Event& e) const;
  // A new event: runs the command when notify_events names its kind, unless the kind has had
  // `rate` runs in the last hour (counted: the next run of that kind carries "suppressed": N)
  // or `max_running` commands still run (dropped, logged). Returns whether it started one.
  bool notify(const totp::Event& e);
  // Reaps the commands that ended (logs a failure: "notify_command exited 3 for event ...")
  // and kills those past the timeout.
  void poll();
  // Before exit: SIGTERM to every running command's group, SIGKILL after kill_grace_ms; reaps.
  void stop();

  std::size_t running() const { return children_.size(); }

  struct Counts {
    int started = 0;
    int failed = 0;      // exited non-zero, died of a signal, or could not start
    int killed = 0;      // past notify_timeout
    int suppressed = 0;  // over notify_rate
    int dropped = 0;     // over max_running
  };
  const Counts& counts() const { return counts_; }

  // The JSON line a run gets for `e` (without the newline): event_to_json, with
  // "suppressed": N added last when N > 0.
  static std::string payload(const totp::Event& e, int suppressed);

 private:
  using Steady = std::chrono::steady_clock;
  struct Child {
    pid_t pid = -1;
    std::string what;  // "event KIND (user U, TIME)" for the log
    Steady::time_point started;
    bool terminated = false;  // SIGTERM sent
    Steady::time_point terminated_at;
    bool sigkilled = false;      // SIGKILL sent to its group
    bool leader_reaped = false;  // the command exited; what it left in its group may still run
  };
  bool start(const totp::Event& e, const std::string& line);
  // Logs how `c` ended (status from waitpid).
  void ended(const Child& c, int status);

  NotifyOptions options_;
  const totp::Clock& clock_;
  std::ostream& log_;
  std::vector<Child> children_;
  std::map<std::string, std::deque<std::int64_t>> recent_;  // run times per kind, last hour
  std::map<std::string, int> suppressed_;                   // per kind, since its last run
  Counts counts_;
};

}  // namespace pbx::cli

// Store: where enrollments and per-user state live: per-user files, or a shared database.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/events.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::totp {

// The user's state under an exclusive per-user lock, held until this object goes away.
class StateTxn {
 public:
  virtual ~StateTxn() = default;
  // The stored state as read under the lock (empty when there is none).
  virtual const UserState& state() const = 0;
  // Replaces the stored state atomically; on error the old state is still there. Call it at
  // most once: with the database store it ends the transaction (and the row lock with it).
  virtual Status commit(const UserState& next) = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  // Errc::kNotEnrolled when the user has no secret.
  virtual Result<Enrollment> load(const User& user) = 0;
  // Saves atomically; with !overwrite an existing enrollment wins and kExists is returned.
  virtual Status save(const User& user, const Enrollment& enrollment, bool overwrite) = 0;
  // Whether save() has a place to write to (for files: the secret's directory exists), so an
  // enrollment can be refused before a key is shown rather than after it was confirmed.
  virtual Status check_saveable(const User& user) = 0;
  // Removes secret and state. kNotEnrolled when there was nothing to remove.
  virtual Status remove(const User& user) = 0;
  // Removes the secret only (true when there was one); the state stays. Called with the user's
  // StateTxn open, so the state can be rewritten in the same step (Verifier::reset).
  virtual Result<bool> remove_secret(const User& user) = 0;
  virtual Result<std::unique_ptr<StateTxn>> lock_state(const User& user) = 0;
  // The last committed state without taking the lock (a whole snapshot, never a torn one);
  // for reports and for telling a locked-out user before asking for a code.
  virtual Result<UserState> peek_state(const User& user) = 0;
  // What the store noticed that the caller should log (never a secret or a code), once: the
  // file store's damaged state copy. Empty when nothing.
  virtual std::string take_notice() { return std::string(); }
  // Every user with an enrollment that the store itself can name (the database: every row of
  // the fleet; files: none, as the secrets live in homes — `pbx-mfa list` walks getent passwd).
  virtual Result<std::vector<std::string>> enrolled_users() = 0;

  // Appends a security event to the store's event log (events.hpp): files, `state_dir`/.events.log
  // (root-only, O_APPEND, rotated to .events.log.1 at events_max_size); the database, its events
  // table, so a fleet has one log (an event that cannot reach the database, e.g. a break-glass
  // login, goes to this host's file instead). Recording an event never decides an outcome: the
  // caller logs the error and goes on.
  virtual Status append_event(const Event& event) = 0;
  // Events after `from` (default: from the beginning) matching `query`, oldest first; the
  // database store adds this host's file events (those that could not reach it), merged by
  // time, and reads at most 100000 rows of its table per call (call again with page.next
  // until a page is empty); when it can read only the file (the database cannot be reached,
  // or has no events table yet) it says so in page.warning. Each call tries a database that
  // could not be reached again (a follower's store; logins never read events).
  virtual Result<EventPage> read_events(const EventQuery& query, const EventCursor& from) = 0;
};

// The backend named by config.store: "files", or "postgresql" (loads the plugin named by
// pg_plugin; connects at the first call). Store calls made while a StateTxn of the same store is
// open belong to its transaction.
Result<std::unique_ptr<Store>> open_store(const Config& config);

}  // namespace pbx::totp

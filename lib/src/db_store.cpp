// The PostgreSQL store: enrollments sealed under the fleet key, state under a row lock and
// authenticated by a MAC under a key derived from it.
#include "db_store.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "db_events.hpp"
#include "event_log.hpp"
#include "pbx/totp/enrollment.hpp"
#include "pbx/totp/seal.hpp"
#include "pbx/totp/state.hpp"
#include "pg_link.hpp"

namespace pbx::totp::detail {

// "v1" names this binding, not the format of the sealed text (its own version line).
std::string enrollment_aad(const std::string& user_name) {
  std::string aad = "pbx-mfa enrollment v1";
  aad.push_back('\0');
  return aad + user_name;
}

namespace {

Result<const SecretBytes*> load_once(std::optional<SecretBytes>& slot, const std::string& path,
                                     uid_t owner) {
  if (!slot) {
    auto k = load_fleet_key(path, owner);
    if (!k) return k.error();
    slot = std::move(k.value());
  }
  return &*slot;
}

Result<const SecretBytes*> derive_once(std::optional<SecretBytes>& slot,
                                       Result<const SecretBytes*> key) {
  if (!key) return key.error();
  if (*key == nullptr) return static_cast<const SecretBytes*>(nullptr);
  if (!slot) {
    auto derived = derive_fleet_subkey(**key, kStateMacLabel);
    if (!derived) return derived.error();
    slot = std::move(derived.value());
  }
  return &*slot;
}

}  // namespace

Result<const SecretBytes*> FleetKeys::current() {
  return load_once(key_, config_.fleet_key, config_.trusted_uid);
}

Result<const SecretBytes*> FleetKeys::current_mac() { return derive_once(mac_key_, current()); }

Result<const SecretBytes*> FleetKeys::previous() {
  if (!has_previous()) return static_cast<const SecretBytes*>(nullptr);
  auto k = load_once(previous_, config_.fleet_key_previous, config_.trusted_uid);
  if (!k) {
    return make_error(k.error().code, "fleet_key_previous: " + k.error().message);
  }
  return k;
}

Result<const SecretBytes*> FleetKeys::previous_mac() {
  return derive_once(previous_mac_, previous());
}

Result<SecretString> FleetKeys::open(std::string_view aad, std::string_view box, KeyUsed* used) {
  if (used != nullptr) *used = KeyUsed::kNeither;
  auto key = current();
  if (!key) return key.error();
  auto plain = open_sealed(**key, aad, box);
  if (plain) {
    if (used != nullptr) *used = KeyUsed::kCurrent;
    return plain;
  }
  if (plain.error().code != Errc::kCorrupt || !has_previous()) return plain;
  auto old = previous();
  if (!old) return old.error();
  auto again = open_sealed(**old, aad, box);
  if (!again) {
    if (again.error().code != Errc::kCorrupt) return again;
    return make_error(Errc::kCorrupt, plain.error().message +
                                          " (under fleet_key and under "
                                          "fleet_key_previous)");
  }
  if (used != nullptr) *used = KeyUsed::kPrevious;
  return again;
}

Status FleetKeys::check_mac(std::string_view user_name, std::string_view enrollment_id,
                            std::string_view text, std::string_view mac, KeyUsed* used) {
  if (used != nullptr) *used = KeyUsed::kNeither;
  auto key = current_mac();
  if (!key) return key.error();
  auto st = check_state_mac(**key, user_name, enrollment_id, text, mac);
  if (st) {
    if (used != nullptr) *used = KeyUsed::kCurrent;
    return st;
  }
  if (st.error().code != Errc::kCorrupt || !has_previous()) return st;
  auto old = previous_mac();
  if (!old) return old.error();
  auto again = check_state_mac(**old, user_name, enrollment_id, text, mac);
  if (!again) return st.error().code == again.error().code ? st : again;
  if (used != nullptr) *used = KeyUsed::kPrevious;
  return again;
}

namespace {

class DbStore;

constexpr const char* kNoEventTable =
    "the database has no events table (schema before version 4: run 'pbx-mfa db migrate')";

class DbStateTxn final : public StateTxn {
 public:
  DbStateTxn(DbStore& store, std::string user, UserState state)
      : store_(store), user_(std::move(user)), state_(std::move(state)) {}
  ~DbStateTxn() override;
  const UserState& state() const override { return state_; }
  Status commit(const UserState& next) override;

 private:
  DbStore& store_;
  std::string user_;
  UserState state_;
  bool open_ = true;
};

class DbStore final : public Store {
 public:
  DbStore(const Config& config, std::unique_ptr<PgLink> link)
      : config_(config), link_(std::move(link)), keys_(config_) {}

  Result<Enrollment> load(const User& user) override {
    begin_call();
    // A value over the cap is not sent at all (NULL and its size instead): a hostile row must
    // cost neither the deadline nor the memory of a login.
    auto rows = link_->exec(
        "SELECT enrollment_id, CASE WHEN octet_length(sealed) <= 65536 THEN sealed END, "
        "octet_length(sealed) FROM pbx_mfa_enrollment WHERE user_name = $1",
        {{user.name}});
    if (!rows) return rows.error();
    if (rows->empty())
      return make_error(Errc::kNotEnrolled, "user '" + user.name + "' is not enrolled");
    const auto& row = rows->front();
    if (!row.at(1)) return refused(user, "sealed value missing or larger than 64 KiB");
    auto box = bytea_of(row.at(1));
    if (!box) return refused(user, box.error().message);
    // Under fleet_key, or during a rotation under fleet_key_previous.
    auto plain = keys_.open(enrollment_aad(user.name), *box);
    if (!plain) {
      if (plain.error().code != Errc::kCorrupt) return plain.error();
      return refused(user, plain.error().message);
    }
    auto e = parse_enrollment(plain->view());
    if (!e) return refused(user, e.error().message);
    if (!row.at(0) || *row.at(0) != e->id) return refused(user, "enrollment id column differs");
    return e;
  }

  Status save(const User& user, const Enrollment& enrollment, bool overwrite) override {
    begin_call();
    auto key = keys_.current();  // every write under the current key
    if (!key) return key.error();
    SecretString text(serialize_enrollment(enrollment));
    auto box = seal(**key, enrollment_aad(user.name), text.view());
    if (!box) return box.error();
    std::string created = std::to_string(enrollment.created);
    const char* sql =
        overwrite
            ? "INSERT INTO pbx_mfa_enrollment (user_name, enrollment_id, sealed, created) "
              "VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO UPDATE SET "
              "enrollment_id = EXCLUDED.enrollment_id, sealed = EXCLUDED.sealed, "
              "created = EXCLUDED.created, updated = now() RETURNING user_name"
            : "INSERT INTO pbx_mfa_enrollment (user_name, enrollment_id, sealed, created) "
              "VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO NOTHING RETURNING user_name";
    auto rows = link_->exec(sql, {{user.name}, {enrollment.id}, {*box, false, true}, {created}});
    if (!rows) return rows.error();
    if (rows->empty()) {
      return make_error(Errc::kExists, "user '" + user.name + "' is already enrolled");
    }
    return Ok{};
  }

  Status check_saveable(const User&) override {
    // An enrollment is confirmed only after the key is shown: make sure it can be sealed and
    // written before showing it.
    begin_call();
    auto key = keys_.current();
    if (!key) return key.error();
    return link_->connect();
  }

  Status remove(const User& user) override {
    if (in_txn_) return make_error(Errc::kInternal, "reset inside a state transaction");
    begin_call();
    // One transaction, so secret and state go together or not at all; the state row is
    // locked first, in the order of a login, an enrollment, 'db init' and the rotation
    // (state, then enrollment): the other order deadlocks with them.
    std::string begin =
        "BEGIN; SET LOCAL lock_timeout = " + std::to_string(config_.pg_timeout_ms * 3 / 4) + ";";
    if (auto r = link_->exec(begin.c_str()); !r) {
      (void)link_->exec("ROLLBACK");  // BEGIN may have run without the SET: never leave it open
      return r.error();
    }
    auto fail = [&](Error e) -> Status {
      (void)link_->exec("ROLLBACK");
      return e;
    };
    if (auto r = link_->exec("SELECT 1 FROM pbx_mfa_state WHERE user_name = $1 FOR UPDATE",
                             {{user.name}});
        !r) {
      return fail(r.error());
    }
    auto rows = link_->exec(
        "WITH e AS (DELETE FROM pbx_mfa_enrollment WHERE user_name = $1 RETURNING 1), "
        "s AS (DELETE FROM pbx_mfa_state WHERE user_name = $1 RETURNING state_text) "
        "SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM s WHERE state_text IS NOT NULL)",
        {{user.name}});
    if (!rows) return fail(rows.error());
    if (auto r = link_->exec("COMMIT"); !r) return r.error();
    if (rows->size() == 1 && rows->front().at(0) == "0" && rows->front().at(1) == "0") {
      return make_error(Errc::kNotEnrolled, "user '" + user.name + "' is not enrolled");
    }
    return Ok{};
  }

  Result<bool> remove_secret(const User& user) override {
    begin_call();
    auto rows = link_->exec("DELETE FROM pbx_mfa_enrollment WHERE user_name = $1 RETURNING 1",
                            {{user.name}});
    if (!rows) return rows.error();
    return !rows->empty();
  }

  Result<std::unique_ptr<StateTxn>> lock_state(const User& user) override {
    if (in_txn_) return make_error(Errc::kInternal, "nested state transaction");
    link_->start_exchange();
    // lock_timeout below the deadline: a lock held too long is an error of this login, not a
    // database that cannot be reached (which would open the door to break-glass codes).
    std::string begin =
        "BEGIN; SET LOCAL lock_timeout = " + std::to_string(config_.pg_timeout_ms * 3 / 4) + ";";
    if (auto r = link_->exec(begin.c_str()); !r) {
      (void)link_->exec("ROLLBACK");  // BEGIN may have run without the SET: never leave it open
      return r.error();
    }
    in_txn_ = true;
    auto fail = [&](Error e) -> Result<std::unique_ptr<StateTxn>> {
      rollback();
      return e;
    };
    // The row must exist to be locked, also before the first login and during an enrollment.
    auto ins = link_->exec(
        "INSERT INTO pbx_mfa_state (user_name) VALUES ($1) ON CONFLICT (user_name) DO NOTHING",
        {{user.name}});
    if (!ins) return fail(ins.error());
    auto state = read_state(user, /*lock=*/true);
    if (!state) return fail(state.error());
    return std::unique_ptr<StateTxn>(std::make_unique<DbStateTxn>(*this, user.name, *state));
  }

  Result<UserState> peek_state(const User& user) override {
    begin_call();
    return read_state(user, /*lock=*/false);
  }

  Result<std::vector<std::string>> enrolled_users() override {
    begin_call();
    auto rows = link_->exec("SELECT user_name FROM pbx_mfa_enrollment ORDER BY user_name");
    if (!rows) return rows.error();
    std::vector<std::string> names;
    names.reserve(rows->size());
    for (const auto& row : *rows) {
      if (row.at(0)) names.push_back(*row.at(0));
    }
    return names;
  }

  // The events table, in a statement of its own after the state's transaction. An event that
  // does not get into the table is kept in this host's file (read_events shows it with the
  // table's rows): the database cannot be reached (a break-glass login: not an error), or it
  // failed (an error that says where the event went; a timeout whose insert did commit leaves
  // the event in both). Never inside an open state transaction: a failed insert would abort
  // it, and so decide the login.
  Status append_event(const Event& event) override {
    if (in_txn_) {
      return to_file(
          event, make_error(Errc::kInternal, "event recorded while a state transaction is open"));
    }
    begin_call();
    auto st = db_append_event(*link_, event);
    if (st) return st;
    if (st.error().code == Errc::kUnavailable) return to_file(event, std::nullopt);
    if (auto missing = db_event_table_missing(*link_); missing && *missing) {
      return to_file(event, make_error(Errc::kIo, kNoEventTable));
    }
    return to_file(event, st.error());
  }

  // The table's rows after from.db_id, and this host's file events after the file part of the
  // cursor, merged by time. The database cannot be reached or has no events table yet: the
  // file's events alone, with page.warning saying so (the db part of the cursor stays).
  Result<EventPage> read_events(const EventQuery& query, const EventCursor& from) override {
    if (in_txn_) return make_error(Errc::kInternal, "events read inside a state transaction");
    link_->retry();  // a follower's store: the database may be back
    DbEventRows rows;
    rows.last_id = from.db_id;
    std::string warning;
    if (auto r = db_read_events(*link_, query, from.db_id); r) {
      rows = std::move(r.value());
    } else if (r.error().code == Errc::kUnavailable) {
      warning = r.error().message + ": only this host's events are shown";
    } else if (auto missing = db_event_table_missing(*link_); missing && *missing) {
      warning = std::string(kNoEventTable) + ": only this host's events are shown";
    } else {
      return r.error();
    }
    auto file = read_event_file(config_, query, from);
    if (!file) return file.error();
    EventPage page;
    page.events = merge_by_time(std::move(rows.events), std::move(file->events));
    page.next = file->next;
    page.next.started = true;
    page.next.db_id = rows.last_id;
    page.skipped = rows.skipped + file->skipped;
    page.warning = std::move(warning);
    return page;
  }

  Status commit(const std::string& user, const UserState& next) {
    std::string text = serialize_state(next);
    // Every write of the state carries its MAC: a row is written whole or not at all.
    // Under the current key, also for a row read under the previous one: the rotation of a
    // state row happens at its next write too.
    auto key = keys_.current_mac();
    auto mac = key ? state_mac(**key, user, next.enrollment_id, text) : key.error();
    if (!mac) {
      rollback();
      return mac.error();
    }
    auto r =
        link_->exec("UPDATE pbx_mfa_state SET state_text = $2, state_mac = $3 WHERE user_name = $1",
                    {{user}, {text}, {*mac, false, true}});
    if (!r) {
      rollback();
      return r.error();
    }
    auto c = link_->exec("COMMIT");
    in_txn_ = false;
    if (!c) return c.error();
    return Ok{};
  }

  void rollback() {
    if (!in_txn_) return;
    in_txn_ = false;
    (void)link_->exec("ROLLBACK");  // a dead connection rolls back on the server by itself
  }

 private:
  // A call outside a transaction is an exchange of its own, with its own deadline; inside one,
  // it shares the transaction's.
  void begin_call() {
    if (!in_txn_) link_->start_exchange();
  }

  // Writes `event` to this host's file; `why` (the database's error) is returned, saying
  // where the event went, unless there is none.
  Status to_file(const Event& event, const std::optional<Error>& why) {
    auto st = append_event_file(config_, event);
    if (!st) {
      if (!why) return st;
      return make_error(why->code,
                        why->message + "; nor in this host's event file: " + st.error().message);
    }
    if (!why) return Ok{};
    return make_error(why->code,
                      why->message + " (the event is in this host's event file instead)");
  }

  // Two lists, each in its own order, into one by time: an event never passes one of its own
  // list (the table's ids, the file's lines), and at equal times the table's come first.
  static std::vector<Event> merge_by_time(std::vector<Event> db, std::vector<Event> file) {
    std::vector<Event> out;
    out.reserve(db.size() + file.size());
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < db.size() || j < file.size()) {
      if (j == file.size() || (i < db.size() && db[i].time <= file[j].time)) {
        out.push_back(std::move(db[i++]));
      } else {
        out.push_back(std::move(file[j++]));
      }
    }
    return out;
  }

  // A row that does not open is never accepted; the message goes to the log with the outcome.
  Error refused(const User& user, const std::string& why) const {
    return make_error(Errc::kCorrupt, "database row of user '" + user.name + "' refused: " + why);
  }

  // The user's state row (none, or the empty row lock_state makes: no state yet), FOR UPDATE
  // with `lock`. A value over the state file's size cap is not sent (NULL and its size instead)
  // and is refused like such a file. State is trusted only with its MAC: a row without one, or
  // whose MAC does not verify for this user and the enrollment id it names, is refused.
  Result<UserState> read_state(const User& user, bool lock) {
    static const std::string kSelect =
        "SELECT CASE WHEN octet_length(state_text) <= " + std::to_string(kMaxStateFileSize) +
        " THEN state_text END, octet_length(state_text), "
        "CASE WHEN octet_length(state_mac) <= 64 THEN state_mac END, octet_length(state_mac) "
        "FROM pbx_mfa_state WHERE user_name = $1";
    static const std::string kSelectForUpdate = kSelect + " FOR UPDATE";
    auto rows = link_->exec((lock ? kSelectForUpdate : kSelect).c_str(), {{user.name}});
    if (!rows) return rows.error();
    if (rows->empty()) return UserState{};
    const auto& row = rows->front();
    if (!row.at(0) && row.at(1)) {
      return make_error(Errc::kCorrupt, "database state row larger than " +
                                            std::to_string(kMaxStateFileSize / 1024) + " KiB");
    }
    if (!row.at(0) && !row.at(3)) return UserState{};  // the empty row: no state yet
    if (!row.at(0)) return refused(user, "state MAC without state");
    if (!row.at(3)) {
      return refused(user, "state without MAC (written by hand or by a pbx-mfa before schema 2)");
    }
    if (!row.at(2)) return refused(user, "state MAC of a wrong size");
    auto parsed = parse_state(*row.at(0));
    if (!parsed) {
      return make_error(parsed.error().code, parsed.error().message + " (database state row)");
    }
    auto mac = bytea_of(row.at(2));
    if (!mac) return refused(user, "state MAC is not bytea");
    if (auto st = keys_.check_mac(user.name, parsed->enrollment_id, *row.at(0), *mac); !st) {
      if (st.error().code != Errc::kCorrupt) return st.error();
      return refused(user, st.error().message);
    }
    return parsed;
  }

  Config config_;
  std::unique_ptr<PgLink> link_;
  FleetKeys keys_;
  bool in_txn_ = false;
};

DbStateTxn::~DbStateTxn() {
  if (open_) store_.rollback();
}

Status DbStateTxn::commit(const UserState& next) {
  if (!open_) return make_error(Errc::kInternal, "state transaction already committed");
  open_ = false;
  auto st = store_.commit(user_, next);
  if (st) state_ = next;
  return st;
}

}  // namespace

Result<std::unique_ptr<Store>> make_db_store(const Config& config) {
  auto link = PgLink::open(config);
  if (!link) return link.error();
  return std::unique_ptr<Store>(std::make_unique<DbStore>(config, std::move(link.value())));
}

}  // namespace pbx::totp::detail

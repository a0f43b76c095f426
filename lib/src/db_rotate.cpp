// Fleet-key rotation for store = postgresql: which key each row is under (doctor), and
// re-sealing every row under fleet_key that is under fleet_key_previous (db rotate-key).
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "db_store.hpp"
#include "hex.hpp"
#include "pbx/totp/db_admin.hpp"
#include "pbx/totp/seal.hpp"
#include "pbx/totp/state.hpp"
#include "pbx/totp/strings.hpp"
#include "pg_link.hpp"
#include "text_format.hpp"

namespace pbx::totp {
namespace {

using detail::FleetKeys;
using detail::KeyUsed;
using detail::PgLink;

// The largest sealed enrollment the store reads (DbStore::load), as db_admin.cpp.
constexpr const char* kSealedCap = "65536";
constexpr int kUsagePage = 1000;

// Which key an enrollment row is under: the sealed value opens under it. `why` says why a row
// is under neither. Errors: a key could not be loaded.
Result<KeyUsed> enrollment_key(FleetKeys& keys, const std::string& user,
                               const std::optional<std::string>& sealed, std::string& why,
                               std::optional<SecretString>* plain_out = nullptr) {
  auto box = detail::bytea_of(sealed);
  if (!box) {
    why = "enrollment: the sealed value is missing, larger than 64 KiB or not bytea";
    return KeyUsed::kNeither;
  }
  KeyUsed used = KeyUsed::kNeither;
  auto plain = keys.open(detail::enrollment_aad(user), *box, &used);
  if (!plain) {
    if (plain.error().code != Errc::kCorrupt) return plain.error();
    why = "enrollment does not open under either key (refused at login, as before)";
    return KeyUsed::kNeither;
  }
  if (plain_out != nullptr) *plain_out = std::move(plain.value());
  return used;
}

// Which key a state row's MAC is under. Columns: text (NULL over the cap), MAC (NULL over 64
// bytes), octet_length(text), octet_length(mac). nullopt: the empty row (no state yet).
Result<std::optional<KeyUsed>> state_key(FleetKeys& keys, const std::string& user,
                                         const PgLink::Row& row, std::size_t first,
                                         std::string& why, std::string* enrollment_id = nullptr) {
  const auto& text = row.at(first);
  const auto& mac = row.at(first + 1);
  const bool has_text = row.at(first + 2).has_value();
  const bool has_mac = row.at(first + 3).has_value();
  if (!has_text && !has_mac) return std::optional<KeyUsed>();
  auto neither = [&](const std::string& w) -> Result<std::optional<KeyUsed>> {
    why = "state row " + w + " (refused at login, as before)";
    return std::optional<KeyUsed>(KeyUsed::kNeither);
  };
  if (!text) return neither(has_text ? "larger than the size cap" : "has a MAC without state");
  if (!has_mac) return neither("has no MAC");
  auto parsed = parse_state(*text);
  if (!parsed) return neither("does not parse");
  auto box = detail::bytea_of(mac);
  if (!box) return neither("has a MAC of a wrong size");
  KeyUsed used = KeyUsed::kNeither;
  auto st = keys.check_mac(user, parsed->enrollment_id, *text, *box, &used);
  if (!st) {
    if (st.error().code != Errc::kCorrupt) return st.error();
    return neither("MAC does not verify under either key");
  }
  if (enrollment_id != nullptr) *enrollment_id = parsed->enrollment_id;
  return std::optional<KeyUsed>(used);
}

std::string state_columns() {
  return "CASE WHEN octet_length(state_text) <= " + std::to_string(kMaxStateFileSize) +
         " THEN state_text END, CASE WHEN octet_length(state_mac) <= 64 THEN state_mac END, "
         "octet_length(state_text), octet_length(state_mac)";
}

// A user name read from the database, printed on a terminal: control characters and other
// bytes that could drive it are escaped (\xHH), and it is cut at 64 bytes.
constexpr EscapeSet kShownName{"", 64, "..."};

std::string left_line(const std::string& user, const std::string& why) {
  std::string line = "user ";
  line += escape_field(user, kShownName);
  line += ": ";
  line += why;
  return line;
}

void name_row(DbKeyUsage& u, const std::string& user, const std::string& why) {
  if (u.neither.size() < DbKeyUsage::kMaxNamed) u.neither.push_back(left_line(user, why));
}

// The rows of a batch to write, as two text-format array literals (user names; the new
// values in hex) for one UPDATE ... FROM unnest($1::text[], $2::text[]).
class BatchWrites {
 public:
  void add(const std::string& user, const std::string& bytes) {
    names_ += names_.empty() ? "{" : ",";
    names_ += '"';
    for (char c : user) {
      if (c == '"' || c == '\\') names_ += '\\';
      names_ += c;
    }
    names_ += '"';
    values_ += values_.empty() ? "{" : ",";
    values_ += detail::to_hex(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
  bool empty() const { return names_.empty(); }
  std::string names() const { return names_ + "}"; }
  std::string values() const { return values_ + "}"; }

 private:
  std::string names_;
  std::string values_;
};

// The key check in pbx_mfa_schema (locked): kept when under fleet_key, set to fleet_key when
// under fleet_key_previous, kConfig when under neither (another fleet's database).
// One rotation at a time per schema (a fleet): a session advisory lock of its own, held by
// the connection for the run (taken again after a reconnection). kConfig when another holds it.
constexpr const char* kRotationLockClass = "1885437293";  // "pbxm"
Status take_rotation_lock(PgLink& db) {
  db.start_exchange();
  auto r = db.exec(
      "SELECT pg_try_advisory_lock($1::integer, hashtext('pbx-mfa rotate-key ' || "
      "current_schema()))",
      {{kRotationLockClass}});
  if (!r) return r.error();
  if (r->empty() || r->front().at(0) != "t") {
    return make_error(Errc::kConfig,
                      "another 'pbx-mfa db rotate-key' is running on this database (it holds "
                      "the rotation lock): wait for it to end, or stop it, then run this again; "
                      "nothing was changed");
  }
  return Ok{};
}

// The schema must exist (version 2 or later, checked under lock by the callers); the optional
// next_key_check column is added when missing.
Status need_schema(PgLink& db) {
  db.start_exchange();
  auto exists = db.exec("SELECT to_regclass('pbx_mfa_schema') IS NOT NULL");
  if (!exists) return exists.error();
  if (exists->empty() || exists->front().at(0) != "t") {
    return make_error(Errc::kConfig, "the database has no pbx-mfa schema: run 'pbx-mfa db init'");
  }
  // ALTER TABLE only when the column is missing: it takes the table's strongest lock.
  auto has = db.exec(
      "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'pbx_mfa_schema'::regclass "
      "AND attname = 'next_key_check' AND NOT attisdropped)");
  if (!has) return has.error();
  if (!has->empty() && has->front().at(0) == "t") return Ok{};
  if (auto r = db.exec(detail::kAddNextKeyCheck); !r) return r.error();
  return Ok{};
}

// BEGIN, then pbx_mfa_schema's one row locked: version, key_check, next_key_check.
Result<PgLink::Row> lock_schema_row(PgLink& db) {
  if (auto r = db.exec("BEGIN"); !r) return r.error();
  auto fail = [&](Error e) -> Result<PgLink::Row> {
    (void)db.exec("ROLLBACK");
    return e;
  };
  auto rows = db.exec("SELECT version, key_check, next_key_check FROM pbx_mfa_schema FOR UPDATE");
  if (!rows) return fail(rows.error());
  if (rows->size() != 1 || !rows->front().at(0)) {
    return fail(make_error(Errc::kCorrupt, "pbx_mfa_schema must hold exactly one row"));
  }
  std::int64_t version = 0;
  if (!detail::parse_i64(*rows->front().at(0), 1, 1000000, version) || version < 2) {
    return fail(make_error(Errc::kConfig,
                           "the database schema is older than version 2: run 'pbx-mfa db "
                           "migrate' first"));
  }
  return rows->front();
}

Result<bool> move_key_check(PgLink& db, const Config& config, FleetKeys& keys) {
  if (auto st = need_schema(db); !st) return st.error();
  auto row = lock_schema_row(db);
  if (!row) return row.error();
  auto fail = [&](Error e) -> Result<bool> {
    (void)db.exec("ROLLBACK");
    return e;
  };
  auto box = detail::bytea_of(row->at(1));
  if (!box) return fail(box.error());
  KeyUsed used = KeyUsed::kNeither;
  auto plain = keys.open(detail::kKeyCheckAad, *box, &used);
  if (!plain) {
    if (plain.error().code != Errc::kCorrupt) return fail(plain.error());
    return fail(make_error(Errc::kConfig,
                           "neither fleet_key (" + config.fleet_key + ") nor fleet_key_previous (" +
                               config.fleet_key_previous +
                               ") is the key of this database: it belongs to another fleet, or "
                               "fleet_key_previous is not the old key; nothing was changed"));
  }
  // fleet_key must be the new key made by step 1 (recorded in next_key_check), or, on a run
  // after the key check has moved, the database's key already.
  if (const auto& next = row->at(2); next) {
    auto next_box = detail::bytea_of(next);
    if (!next_box) return fail(next_box.error());
    auto key = keys.current();
    if (!key) return fail(key.error());
    if (auto opened = open_sealed(**key, detail::kNextKeyCheckAad, *next_box); !opened) {
      if (opened.error().code != Errc::kCorrupt) return fail(opened.error());
      return fail(make_error(Errc::kConfig,
                             "fleet_key (" + config.fleet_key +
                                 ") is not the new key made for this database by step 1 of the "
                                 "rotation (its next key check does not open under it): copy that "
                                 "key to this host as fleet_key; nothing was changed"));
    }
  } else if (used != KeyUsed::kCurrent) {
    return fail(make_error(Errc::kConfig,
                           "no new fleet key is recorded for this database: make one with step "
                           "1 ('pbx-mfa db rotate-key --new-key FILE', FILE not existing, on a "
                           "server without fleet_key_previous); nothing was changed"));
  }
  bool updated = false;
  if (used == KeyUsed::kPrevious) {
    auto key = keys.current();
    if (!key) return fail(key.error());
    auto check = seal(**key, detail::kKeyCheckAad, "");
    if (!check) return fail(check.error());
    if (auto r = db.exec("UPDATE pbx_mfa_schema SET key_check = $1, updated = now()",
                         {{*check, false, true}});
        !r) {
      return fail(r.error());
    }
    updated = true;
  }
  if (auto r = db.exec("COMMIT"); !r) return r.error();
  return updated;
}

// One batch: the next `batch` users after `last` (name order), their state rows then their
// enrollment rows locked, each row under the previous key rewritten under the current one.
// Returns the batch's last user name (empty: no user left). Counts go into `out` only when the
// transaction committed.
Result<std::string> rotate_batch(PgLink& db, const Config& config, FleetKeys& keys,
                                 const std::string& last, int batch, DbRotateResult& out) {
  db.start_exchange();  // one deadline per batch
  // A lock held too long by a login is an error of this batch (it is tried again).
  std::string begin =
      "BEGIN; SET LOCAL lock_timeout = " + std::to_string(config.pg_timeout_ms * 3 / 4);
  if (auto r = db.exec(begin.c_str()); !r) {
    (void)db.exec("ROLLBACK");
    return r.error();
  }
  auto fail = [&](Error e) -> Result<std::string> {
    (void)db.exec("ROLLBACK");
    return e;
  };
  std::string limit = std::to_string(batch);
  auto names = db.exec(
      "SELECT user_name FROM (SELECT user_name FROM pbx_mfa_enrollment UNION "
      "SELECT user_name FROM pbx_mfa_state WHERE state_text IS NOT NULL OR state_mac IS NOT NULL"
      ") u WHERE user_name > $1 ORDER BY user_name LIMIT $2::integer",
      {{last}, {limit}});
  if (!names) return fail(names.error());
  if (names->empty() || !names->back().at(0)) {
    (void)db.exec("ROLLBACK");
    return std::string();
  }
  const std::string hi = *names->back().at(0);
  // The rows of the users of this batch, in the order of a login: state, then enrollment.
  static const std::string kStates = "SELECT user_name, " + state_columns() +
                                     " FROM pbx_mfa_state WHERE user_name > $1 AND user_name <= "
                                     "$2 ORDER BY user_name FOR UPDATE";
  auto states = db.exec(kStates.c_str(), {{last}, {hi}});
  if (!states) return fail(states.error());
  static const std::string kEnrollments =
      std::string("SELECT user_name, CASE WHEN octet_length(sealed) <= ") + kSealedCap +
      " THEN sealed END FROM pbx_mfa_enrollment WHERE user_name > $1 AND user_name <= $2 "
      "ORDER BY user_name FOR UPDATE";
  auto enrollments = db.exec(kEnrollments.c_str(), {{last}, {hi}});
  if (!enrollments) return fail(enrollments.error());

  auto key = keys.current();
  if (!key) return fail(key.error());
  auto mac_key = keys.current_mac();
  if (!mac_key) return fail(mac_key.error());
  DbRotateResult add;
  BatchWrites state_writes;
  BatchWrites enrollment_writes;
  for (const auto& row : *states) {
    if (!row.at(0)) continue;
    const std::string& user = *row.at(0);
    std::string why;
    std::string id;
    auto used = state_key(keys, user, row, 1, why, &id);
    if (!used) return fail(used.error());
    if (!*used) continue;  // no state yet
    if (**used == KeyUsed::kCurrent) {
      ++add.already_current;
    } else if (**used == KeyUsed::kNeither) {
      add.rows_left.push_back(left_line(user, why));
    } else {
      auto mac = state_mac(**mac_key, user, id, *row.at(1));  // the same text, a new MAC
      if (!mac) return fail(mac.error());
      state_writes.add(user, *mac);
      ++add.states_remaced;
    }
  }
  for (const auto& row : *enrollments) {
    if (!row.at(0)) continue;
    const std::string& user = *row.at(0);
    std::string why;
    std::optional<SecretString> plain;
    auto used = enrollment_key(keys, user, row.at(1), why, &plain);
    if (!used) return fail(used.error());
    if (*used == KeyUsed::kCurrent) {
      ++add.already_current;
    } else if (*used == KeyUsed::kNeither) {
      add.rows_left.push_back(left_line(user, why));
    } else {
      // The same text under the same associated data, sealed under the current key.
      auto box = seal(**key, detail::enrollment_aad(user), plain->view());
      if (!box) return fail(box.error());
      enrollment_writes.add(user, *box);
      ++add.enrollments_resealed;
    }
  }
  // One statement per table, whatever the size of the batch: the locks of the batch's users
  // are held for a few round trips only.
  if (!state_writes.empty()) {
    if (auto r = db.exec("UPDATE pbx_mfa_state s SET state_mac = decode(v.h, 'hex') FROM "
                         "unnest($1::text[], $2::text[]) AS v(u, h) WHERE s.user_name = v.u",
                         {{state_writes.names()}, {state_writes.values()}});
        !r) {
      return fail(r.error());
    }
  }
  if (!enrollment_writes.empty()) {
    if (auto r = db.exec(
            "UPDATE pbx_mfa_enrollment e SET sealed = decode(v.h, 'hex'), updated = now() FROM "
            "unnest($1::text[], $2::text[]) AS v(u, h) WHERE e.user_name = v.u",
            {{enrollment_writes.names()}, {enrollment_writes.values()}});
        !r) {
      return fail(r.error());
    }
  }
  if (auto r = db.exec("COMMIT"); !r) return r.error();
  out.users_done += static_cast<long>(names->size());
  ++out.batches;
  out.enrollments_resealed += add.enrollments_resealed;
  out.states_remaced += add.states_remaced;
  out.already_current += add.already_current;
  for (auto& line : add.rows_left) out.rows_left.push_back(std::move(line));
  return hi;
}

}  // namespace

Result<DbKeyUsage> db_key_usage(const Config& config) {
  auto link = PgLink::open(config);
  if (!link) return link.error();
  PgLink& db = **link;
  FleetKeys keys(config);
  DbKeyUsage usage;
  usage.has_previous = keys.has_previous();
  // The checks (next_key_check through to_jsonb: the column is optional).
  db.start_exchange();
  auto checks =
      db.exec("SELECT key_check, to_jsonb(s) ->> 'next_key_check' FROM pbx_mfa_schema s LIMIT 1");
  if (!checks) return checks.error();
  if (!checks->empty()) {
    for (std::size_t i = 0; i < 2; ++i) {
      const auto& value = checks->front().at(i);
      if (!value) continue;
      KeyUnder& under = i == 0 ? usage.key_check : usage.next_key_check;
      under = KeyUnder::kNeither;
      auto box = detail::bytea_of(value);
      if (!box) continue;
      KeyUsed used = KeyUsed::kNeither;
      auto opened =
          keys.open(i == 0 ? detail::kKeyCheckAad : detail::kNextKeyCheckAad, *box, &used);
      if (!opened && opened.error().code != Errc::kCorrupt) return opened.error();
      if (opened) under = used == KeyUsed::kCurrent ? KeyUnder::kCurrent : KeyUnder::kPrevious;
    }
  }
  const std::string limit = std::to_string(kUsagePage);
  // In pages of names, so that memory stays flat however many users there are.
  std::string last;
  while (true) {
    db.start_exchange();
    static const std::string kPage =
        std::string("SELECT user_name, CASE WHEN octet_length(sealed) <= ") + kSealedCap +
        " THEN sealed END FROM pbx_mfa_enrollment WHERE user_name > $1 ORDER BY user_name "
        "LIMIT $2::integer";
    auto rows = db.exec(kPage.c_str(), {{last}, {limit}});
    if (!rows) return rows.error();
    for (const auto& row : *rows) {
      if (!row.at(0)) continue;
      std::string why;
      auto used = enrollment_key(keys, *row.at(0), row.at(1), why);
      if (!used) return used.error();
      if (*used == KeyUsed::kCurrent) ++usage.enrollments_current;
      if (*used == KeyUsed::kPrevious) ++usage.enrollments_previous;
      if (*used == KeyUsed::kNeither) {
        ++usage.enrollments_neither;
        name_row(usage, *row.at(0), why);
      }
    }
    if (rows->size() < static_cast<std::size_t>(kUsagePage) || !rows->back().at(0)) break;
    last = *rows->back().at(0);
  }
  last.clear();
  while (true) {
    db.start_exchange();
    static const std::string kPage = "SELECT user_name, " + state_columns() +
                                     " FROM pbx_mfa_state WHERE user_name > $1 ORDER BY "
                                     "user_name LIMIT $2::integer";
    auto rows = db.exec(kPage.c_str(), {{last}, {limit}});
    if (!rows) return rows.error();
    for (const auto& row : *rows) {
      if (!row.at(0)) continue;
      std::string why;
      auto used = state_key(keys, *row.at(0), row, 1, why);
      if (!used) return used.error();
      if (!*used) continue;
      if (**used == KeyUsed::kCurrent) ++usage.states_current;
      if (**used == KeyUsed::kPrevious) ++usage.states_previous;
      if (**used == KeyUsed::kNeither) {
        ++usage.states_neither;
        name_row(usage, *row.at(0), why);
      }
    }
    if (rows->size() < static_cast<std::size_t>(kUsagePage) || !rows->back().at(0)) break;
    last = *rows->back().at(0);
  }
  return usage;
}

Result<DbRotateResult> db_rotate_key(const Config& config, int batch,
                                     const std::function<void(const DbRotateResult&)>& progress) {
  if (batch < 1 || batch > kRotateBatchMax) {
    return make_error(Errc::kInvalid,
                      "--batch must be from 1 to " + std::to_string(kRotateBatchMax));
  }
  if (config.fleet_key_previous.empty()) {
    return make_error(Errc::kConfig,
                      "fleet_key_previous is not set: a host that cannot read both keys would "
                      "refuse the rows already rotated");
  }
  FleetKeys keys(config);
  // Both keys must load before a row changes, and differ.
  auto current = keys.current();
  if (!current) return current.error();
  auto previous = keys.previous();
  if (!previous) return previous.error();
  if (*previous != nullptr && (*current)->size() == (*previous)->size() &&
      CRYPTO_memcmp((*current)->data(), (*previous)->data(), (*current)->size()) == 0) {
    return make_error(Errc::kConfig, "fleet_key (" + config.fleet_key +
                                         ") and fleet_key_previous (" + config.fleet_key_previous +
                                         ") hold the same key: nothing to rotate to");
  }
  auto link = PgLink::open(config);
  if (!link) return link.error();
  PgLink& db = **link;
  DbRotateResult out;
  if (auto st = take_rotation_lock(db); !st) return st.error();
  auto moved = move_key_check(db, config, keys);
  if (!moved) return moved.error();
  out.key_check_updated = *moved;
  db.start_exchange();
  auto count = db.exec(
      "SELECT count(*) FROM (SELECT user_name FROM pbx_mfa_enrollment UNION "
      "SELECT user_name FROM pbx_mfa_state WHERE state_text IS NOT NULL OR state_mac IS NOT "
      "NULL) u");
  if (!count) return count.error();
  std::int64_t total = 0;
  if (!count->empty() && count->front().at(0)) {
    (void)detail::parse_i64(*count->front().at(0), 0, std::int64_t{1} << 40, total);
  }
  out.users_total = static_cast<long>(total);
  std::string last;
  // A batch that fails (a lock a login held too long, the deadline, a lost connection) is
  // tried again with half as many users, down to one user tried kAttemptsOfOne times; after a
  // batch that commits the size grows back towards `batch`.
  constexpr int kAttemptsOfOne = 2;
  int size = batch;
  int failed_of_one = 0;
  while (true) {
    auto next = rotate_batch(db, config, keys, last, size, out);
    if (!next) {
      if (size == 1 && ++failed_of_one >= kAttemptsOfOne) {
        return make_error(next.error().code, "rotating the users after '" + last +
                                                 "' (the batches before are "
                                                 "committed; run the command again to go on): " +
                                                 next.error().message);
      }
      size = std::max(1, size / 2);
      ::usleep(100000);
      db.retry();
      // A new connection has lost the lock: take it again (refused if another run has it).
      if (auto st = take_rotation_lock(db); !st) return st.error();
      continue;
    }
    failed_of_one = 0;
    if (next->empty()) break;
    size = std::min(batch, size * 2);
    last = std::move(next.value());
    if (progress) progress(out);
  }
  if (out.users_done > out.users_total) out.users_total = out.users_done;
  // Every row has been through: no rotation is under way any more.
  db.start_exchange();
  if (auto r = db.exec("UPDATE pbx_mfa_schema SET next_key_check = NULL, updated = now() WHERE "
                       "next_key_check IS NOT NULL");
      !r) {
    return r.error();
  }
  return out;
}

Status db_begin_rotation(const Config& config, const std::string& new_key) {
  if (!config.fleet_key_previous.empty()) {
    return make_error(Errc::kConfig,
                      "fleet_key_previous is set (" + config.fleet_key_previous +
                          "): a rotation is under way; finish it (run 'pbx-mfa db rotate-key "
                          "--new-key' with this host's fleet_key) and remove fleet_key_previous "
                          "from every server before making another new key");
  }
  FleetKeys keys(config);
  auto key = keys.current();
  if (!key) return key.error();
  auto link = PgLink::open(config);
  if (!link) return link.error();
  PgLink& db = **link;
  if (auto st = need_schema(db); !st) return st;
  auto row = lock_schema_row(db);
  if (!row) return row.error();
  bool created = false;
  auto fail = [&](Error e) -> Status {
    (void)db.exec("ROLLBACK");
    if (created) (void)::unlink(new_key.c_str());
    return e;
  };
  auto box = detail::bytea_of(row->at(1));
  if (!box) return fail(box.error());
  if (auto opened = open_sealed(**key, detail::kKeyCheckAad, *box); !opened) {
    if (opened.error().code != Errc::kCorrupt) return fail(opened.error());
    return fail(make_error(Errc::kConfig, "fleet_key (" + config.fleet_key +
                                              ") is not the key of this database: a new key is "
                                              "made on a server of its fleet"));
  }
  if (row->at(2)) {
    return fail(make_error(
        Errc::kConfig,
        "a rotation is pending: a new fleet key was made for this database already (step 1) "
        "and is recorded in it; go on with that key file (the procedure: 'man pbx-mfa', db "
        "rotate-key), or, if it is lost, clear the record with \"UPDATE pbx_mfa_schema SET "
        "next_key_check = NULL\" and run this again; nothing was changed"));
  }
  if (auto st = create_fleet_key(new_key); !st) return fail(st.error());
  created = true;
  auto fresh = load_fleet_key(new_key, config.trusted_uid);
  if (!fresh) return fail(fresh.error());
  auto check = seal(*fresh, detail::kNextKeyCheckAad, "");
  if (!check) return fail(check.error());
  if (auto r = db.exec("UPDATE pbx_mfa_schema SET next_key_check = $1, updated = now()",
                       {{*check, false, true}});
      !r) {
    return fail(r.error());
  }
  if (auto r = db.exec("COMMIT"); !r) {
    (void)::unlink(new_key.c_str());
    return r.error();
  }
  return Ok{};
}

}  // namespace pbx::totp

// The connection to PostgreSQL: the plugin behind db_plugin.h, loaded only when configured.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/config.hpp"
#include "pbx/totp/db_plugin.h"
#include "pbx/totp/result.hpp"

namespace pbx::totp::detail {

std::int64_t now_ms();

// One database connection, made lazily. Each exchange (one call, or one whole transaction) has
// one deadline, pg_timeout_ms from its start, for connecting and all its statements. Once the
// database could not be reached the link stays down: later calls fail at once.
class PgLink {
 public:
  struct Param {
    Param(std::string_view v) : value(v) {}  // NOLINT(google-explicit-constructor)
    Param(std::string_view v, bool is_null, bool is_binary)
        : value(v), null(is_null), binary(is_binary) {}
    std::string_view value;
    bool null = false;
    bool binary = false;  // bytea
  };
  using Row = std::vector<std::optional<std::string>>;
  using Rows = std::vector<Row>;

  // Loads the plugin (after checking its file); does not connect yet.
  static Result<std::unique_ptr<PgLink>> open(const Config& config);
  ~PgLink();
  PgLink(const PgLink&) = delete;
  PgLink& operator=(const PgLink&) = delete;

  void start_exchange();
  // A link that went down connects again at its next call. Only for a long-running reader of
  // the event log (events --follow), never within a login: there one deadline is all it gets.
  void retry() {
    if (conn_ == nullptr) down_.reset();
  }
  Status connect();
  // Runs one statement (several, separated by ';', when there are no parameters).
  Result<Rows> exec(const char* sql, std::initializer_list<Param> params = {});
  // A fact about the connection (db_plugin.h's info keys); empty when unknown.
  std::string info(const char* key) const;

 private:
  PgLink(const pbx_db_plugin* api, std::string conninfo, int timeout_ms)
      : api_(api), conninfo_(std::move(conninfo)), timeout_ms_(timeout_ms) {}
  Error error_from(const pbx_db_error& e);

  const pbx_db_plugin* api_;
  pbx_db_conn* conn_ = nullptr;
  std::string conninfo_;
  int timeout_ms_;
  std::int64_t deadline_ms_ = 0;
  std::optional<Error> down_;  // once set, the error every later call returns
};

// The bytes of a text-format bytea column ("\\x" and hex); kCorrupt when it is not one.
Result<std::string> bytea_of(const std::optional<std::string>& text);

}  // namespace pbx::totp::detail

/* db_plugin.h: the C interface between libpbx_totp and its database plugin (libpq inside).
 *
 * The library dlopen()s the plugin only when `store = postgresql`, so hosts on files never load
 * libpq. The plugin knows nothing of OTP, sealing or SQL semantics: it connects and runs
 * statements, every call bounded by an absolute deadline in milliseconds of CLOCK_MONOTONIC,
 * enforced with libpq's asynchronous calls (libpq's connect_timeout cannot go below 2 s, and a
 * server that accepts and never answers would otherwise block a login for ever). C only, so no
 * C++ object or exception ever crosses the boundary. */
#ifndef PBX_TOTP_DB_PLUGIN_H
#define PBX_TOTP_DB_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PBX_DB_PLUGIN_ABI 1
/* The one exported symbol: a `const pbx_db_plugin*`-returning function of this name. */
#define PBX_DB_PLUGIN_ENTRY "pbx_db_plugin_v1"

enum pbx_db_status {
  PBX_DB_OK = 0,
  /* No connection could be made, or the deadline passed before the server answered, or the
   * connection broke: the database cannot be reached. The connection is unusable afterwards. */
  PBX_DB_UNREACHABLE = 1,
  /* The server answered with an error (SQL error, constraint, lock timeout, ...), or refused
   * the connection (see connect). */
  PBX_DB_FAILED = 2,
  /* Bad arguments or out of memory. */
  PBX_DB_INTERNAL = 3
};

typedef struct pbx_db_error {
  int status;        /* enum pbx_db_status */
  char sqlstate[6];  /* five characters and NUL when the server sent one, else "" */
  char message[512]; /* one line, never a password or a parameter value */
} pbx_db_error;

typedef struct pbx_db_conn pbx_db_conn;
typedef struct pbx_db_result pbx_db_result;

typedef struct pbx_db_plugin {
  unsigned abi; /* PBX_DB_PLUGIN_ABI */

  /* Connects (libpq conninfo string or URI; host lists allowed, tried in order) before
   * deadline_ms. NULL on failure, with err filled in: UNREACHABLE when no server could be
   * reached in time or the one reached cannot serve now (starting up, shutting down, in
   * recovery, too many clients, not the primary/standby asked for, connection lost before an
   * answer); FAILED when a server or the TLS check said no (authentication, unknown role or
   * database, pg_hba.conf, certificate verification), a parameter value is invalid, or the
   * environment tried to choose the connection (with a host list: FAILED if any host said
   * no); INTERNAL for an unparsable conninfo or out of memory.
   * Parameters the conninfo leaves out are libpq's compiled defaults, never the PG* variables
   * of the caller's environment: while one that would matter is set, connect refuses (FAILED,
   * the message names it). */
  pbx_db_conn* (*connect)(const char* conninfo, int64_t deadline_ms, pbx_db_error* err);
  /* Closes the connection without waiting for the server. NULL is fine. */
  void (*finish)(pbx_db_conn* conn);

  /* Runs one statement before deadline_ms. With nparams == 0 the text may hold several
   * statements separated by ';' (the last result is returned). Parameters are text (values[i]
   * NUL-terminated) unless lengths and formats are given and formats[i] == 1 (binary, e.g.
   * bytea; then lengths[i] bytes); values[i] == NULL is SQL NULL. Results come in text format
   * (bytea as "\x" hex). On PBX_DB_OK *out holds the result (free it with clear); otherwise
   * *out is NULL and err says why. */
  int (*exec)(pbx_db_conn* conn, const char* sql, int nparams, const char* const* values,
              const int* lengths, const int* formats, int64_t deadline_ms, pbx_db_result** out,
              pbx_db_error* err);
  int (*ntuples)(const pbx_db_result* res);
  int (*nfields)(const pbx_db_result* res);
  /* The value at (row, col) as text, NUL-terminated; NULL for SQL NULL or out of range. */
  const char* (*value)(const pbx_db_result* res, int row, int col);
  void (*clear)(pbx_db_result* res);

  /* Facts about the live connection, for doctor: key is one of "host", "port", "dbname",
   * "user", "server_version", "ssl" ("on"/"off"), "ssl_protocol", "ssl_cipher", "sslmode"
   * and "gssencmode" (as requested: the conninfo's value, else the plugin's default, which is
   * "disable" for gssencmode), "gssenc" ("on"/"off": GSSAPI encryption in use). Writes a
   * NUL-terminated value and returns 1, or returns 0. */
  int (*info)(const pbx_db_conn* conn, const char* key, char* out, size_t out_len);
} pbx_db_plugin;

typedef const pbx_db_plugin* (*pbx_db_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* PBX_TOTP_DB_PLUGIN_H */

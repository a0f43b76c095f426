/* pg_internal.h: what the files of pbx_store_postgresql.so share (nothing of it is exported). */
#ifndef PBX_PG_INTERNAL_H
#define PBX_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "pbx/totp/db_plugin.h"

/* Errors and waiting (pg_conn.c) */

/* Fills err (when not NULL), the message made one line for syslog. */
void pbx_pg_set_error(pbx_db_error* err, int status, const char* sqlstate, const char* message);
void pbx_pg_set_ok(pbx_db_error* err);

/* CLOCK_MONOTONIC in milliseconds, the clock of every deadline. */
int64_t pbx_pg_now_ms(void);

enum pbx_pg_wait_result { WAIT_READY, WAIT_TIMEOUT, WAIT_ERROR };

/* Waits until fd is ready for `events` (poll()) or deadline_ms passes. */
enum pbx_pg_wait_result pbx_pg_wait_socket(int fd, short events, int64_t deadline_ms);

/* Connection parameters from the conninfo, not the caller's environment (pg_params.c) */

/* The parameters handed to PQconnectStartParams: parallel keyword and value arrays (the
 * strings belong to the parsed conninfo, to libpq's option table or to `home_paths`). */
struct pbx_pg_params {
  const char** keys;
  const char** values;
  size_t n;
  char* home_paths; /* the kHomeFiles paths, NUL-separated */
};

/* Whether a parameter value counts as written: libpq reads "" as not given. */
int pbx_pg_given(const char* value);
/* Fills err with FAILED: the variable `name` is set, and the plugin will not connect. */
void pbx_pg_refuse_variable(pbx_db_error* err, const char* name);
/* The option `keyword` of a parsed conninfo, or NULL. */
const PQconninfoOption* pbx_pg_find_option(const PQconninfoOption* opts, const char* keyword);
void pbx_pg_free_params(struct pbx_pg_params* p);
/* 0 with p filled in from the parsed conninfo; -1 with err filled in (see pg_params.c). */
int pbx_pg_build_params(const PQconninfoOption* opts, struct pbx_pg_params* p, pbx_db_error* err);

/* Whether a connection made must be refused because sslmode (verify-ca, verify-full) asked for
 * a checked certificate and the connection is not TLS (e.g. GSSAPI-encrypted); a Unix socket
 * never uses TLS and is kept (pg_conn.c). 1: refuse. */
int pbx_pg_tls_missing(const char* sslmode, int ssl_in_use, int unix_socket);

/* Connecting to one host after another (pg_conn.c): the connection, or NULL with err filled in. */
PGconn* pbx_pg_connect_hosts(const PQconninfoOption* opts, struct pbx_pg_params* p,
                             int64_t deadline_ms, pbx_db_error* err);

#endif /* PBX_PG_INTERNAL_H */

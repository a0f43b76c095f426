/* pg_plugin.c: pbx_store_postgresql.so, the libpq side of db_plugin.h.
 *
 * Every call is bounded by the caller's absolute CLOCK_MONOTONIC deadline: libpq is used only
 * through its asynchronous calls (PQconnectStartParams/PQconnectPoll, PQsendQuery*,
 * PQconsumeInput/PQisBusy) and the plugin does the waiting itself, with poll() on PQsocket().
 * Once a deadline passes or the connection breaks, the connection is marked dead: the
 * half-finished exchange cannot be resumed, so later calls fail at once instead of waiting again.
 *
 * Known limit: libpq resolves host names with a blocking getaddrinfo() inside
 * PQconnectStartParams/PQconnectPoll, so a slow resolver can overrun the deadline. Use IP
 * addresses (or hostaddr=) or a Unix socket where that matters.
 *
 * No global mutable state, no output, no exit: the host is a PAM module inside sshd or login.
 *
 * The plugin's files: this one (the db_plugin.h functions), pg_conn.c (errors, waiting on the
 * socket, connecting to each host in turn) and pg_params.c (the parameters handed to libpq, from
 * the conninfo and not from the caller's environment); pg_internal.h is what they share. */
#define _POSIX_C_SOURCE 200809L

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbx/totp/db_plugin.h"
#include "pg_internal.h"

#define PBX_EXPORT __attribute__((visibility("default")))

struct pbx_db_conn {
  PGconn* pg;
  int dead; /* a deadline passed or the connection broke: every later exec is UNREACHABLE */
};

/* A pbx_db_result is a PGresult: the opaque pointer is converted back and forth, no wrapper. */
static const PGresult* as_pg(const pbx_db_result* res) { return (const PGresult*)(const void*)res; }

/* ---------------------------------------------------------------------------------------------
 * Connecting */

static pbx_db_conn* pg_connect(const char* conninfo, int64_t deadline_ms, pbx_db_error* err) {
  if (conninfo == NULL) {
    pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, "no conninfo");
    return NULL;
  }
  char* parse_error = NULL;
  /* The conninfo's own parameters only (a URI is taken apart too); no defaults, no variables. */
  PQconninfoOption* opts = PQconninfoParse(conninfo, &parse_error);
  if (opts == NULL) {
    /* Most of libpq's parse errors quote a piece of the string ("missing "=" after "..."", a
     * whole URI), which may be the password: only the unknown-keyword one is passed on. */
    const char* why = "cannot parse the conninfo (its text is not shown: it may hold a password)";
    if (parse_error == NULL) {
      why = "out of memory parsing the conninfo";
    } else if (strncmp(parse_error, "invalid connection option \"", 27) == 0) {
      why = parse_error;
    }
    pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, why);
    PQfreemem(parse_error);
    return NULL;
  }
  struct pbx_pg_params p;
  PGconn* pg = NULL;
  if (pbx_pg_build_params(opts, &p, err) == 0) {
    pg = pbx_pg_connect_hosts(opts, &p, deadline_ms, err);
    pbx_pg_free_params(&p);
  }
  PQconninfoFree(opts);
  if (pg == NULL) return NULL;

  pbx_db_conn* conn = calloc(1, sizeof *conn);
  if (conn == NULL || PQsetnonblocking(pg, 1) != 0) {
    free(conn);
    PQfinish(pg);
    pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, "out of memory");
    return NULL;
  }
  conn->pg = pg;
  pbx_pg_set_ok(err);
  return conn;
}

static void pg_finish(pbx_db_conn* conn) {
  if (conn == NULL) return;
  PQfinish(conn->pg);
  free(conn);
}

/* ---------------------------------------------------------------------------------------------
 * Statements */

/* Marks the connection dead and says why, with libpq's reason when it has one; every later exec
 * returns UNREACHABLE at once. */
static int unreachable(pbx_db_conn* conn, pbx_db_error* err, const char* why, int with_libpq) {
  conn->dead = 1;
  char message[sizeof err->message];
  const char* libpq = PQerrorMessage(conn->pg);
  if (with_libpq && libpq != NULL && *libpq != '\0') {
    (void)snprintf(message, sizeof message, "%s: %s", why, libpq);
  } else {
    (void)snprintf(message, sizeof message, "%s", why);
  }
  pbx_pg_set_error(err, PBX_DB_UNREACHABLE, NULL, message);
  return PBX_DB_UNREACHABLE;
}

/* A server error for err. Data exceptions (SQLSTATE class 22: "invalid input syntax for type
 * integer: "..."", bad encoding) quote the offending value in their primary message, and that
 * value may be a parameter: their text is replaced. Other primary messages name objects, not
 * values; DETAIL (which shows key values, e.g. for a unique violation) is never used. */
static void server_error(const PGresult* res, pbx_db_error* err) {
  const char* sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  if (sqlstate != NULL && strncmp(sqlstate, "22", 2) == 0) {
    primary = "data exception (message not shown: it may quote a parameter value)";
  }
  pbx_pg_set_error(err, PBX_DB_FAILED, sqlstate,
                   primary != NULL ? primary : PQresultErrorMessage(res));
}

/* Errors that mean the server went away or will not serve: the connection is finished. */
static int is_connection_error(const char* sqlstate) {
  if (sqlstate == NULL) return 0;
  return strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
         strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0;
}

static int pg_exec(pbx_db_conn* conn, const char* sql, int nparams, const char* const* values,
                   const int* lengths, const int* formats, int64_t deadline_ms, pbx_db_result** out,
                   pbx_db_error* err) {
  if (out != NULL) *out = NULL;
  if (conn == NULL || sql == NULL || out == NULL || nparams < 0 ||
      (nparams > 0 && values == NULL)) {
    pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, "bad arguments to exec");
    return PBX_DB_INTERNAL;
  }
  for (int i = 0; formats != NULL && i < nparams; ++i) {
    if (formats[i] == 1 && values[i] != NULL && lengths == NULL) {
      pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, "binary parameter without a length");
      return PBX_DB_INTERNAL;
    }
  }
  if (conn->dead || PQstatus(conn->pg) != CONNECTION_OK) {
    conn->dead = 1;
    pbx_pg_set_error(err, PBX_DB_UNREACHABLE, NULL, "connection lost earlier");
    return PBX_DB_UNREACHABLE;
  }
  if (pbx_pg_now_ms() >= deadline_ms)
    return unreachable(conn, err, "deadline passed before sending", 0);

  int sent = nparams == 0
                 ? PQsendQuery(conn->pg, sql)
                 : PQsendQueryParams(conn->pg, sql, nparams, NULL, values, lengths, formats, 0);
  if (!sent) return unreachable(conn, err, "could not send the statement", 1);

  /* Non-blocking mode: the statement may still sit in libpq's buffer. While writing, the server
   * may be writing too; reading meanwhile keeps both sides from blocking on full buffers. */
  int flush;
  while ((flush = PQflush(conn->pg)) == 1) {
    enum pbx_pg_wait_result w =
        pbx_pg_wait_socket(PQsocket(conn->pg), POLLIN | POLLOUT, deadline_ms);
    if (w == WAIT_TIMEOUT) return unreachable(conn, err, "timeout waiting for the server", 0);
    if (w == WAIT_ERROR || !PQconsumeInput(conn->pg)) {
      return unreachable(conn, err, "connection broken while sending", 1);
    }
  }
  if (flush < 0) return unreachable(conn, err, "connection broken while sending", 1);

  /* Every result up to the terminating NULL must be read before the connection is idle again;
   * the last one is the answer, the first error (the server stops there) the failure. */
  PGresult* last = NULL;
  PGresult* failed = NULL;
  for (;;) {
    while (PQisBusy(conn->pg)) {
      enum pbx_pg_wait_result w = pbx_pg_wait_socket(PQsocket(conn->pg), POLLIN, deadline_ms);
      if (w != WAIT_READY || !PQconsumeInput(conn->pg)) {
        PQclear(last);
        PQclear(failed);
        if (w == WAIT_TIMEOUT) return unreachable(conn, err, "timeout waiting for the server", 0);
        return unreachable(conn, err, "connection broken while waiting", 1);
      }
    }
    PGresult* res = PQgetResult(conn->pg);
    if (res == NULL) break;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      /* Nothing here speaks COPY; the connection cannot go back to idle without it. */
      PQclear(res);
      PQclear(last);
      PQclear(failed);
      conn->dead = 1;
      pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, "COPY is not supported");
      return PBX_DB_INTERNAL;
    }
    if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
      if (failed == NULL) {
        failed = res;
      } else {
        PQclear(res);
      }
      continue;
    }
    PQclear(last);
    last = res;
  }

  if (failed != NULL) {
    PQclear(last);
    const char* sqlstate = PQresultErrorField(failed, PG_DIAG_SQLSTATE);
    /* libpq's own reports of a lost connection carry no SQLSTATE. */
    if (PQstatus(conn->pg) != CONNECTION_OK || sqlstate == NULL || is_connection_error(sqlstate)) {
      conn->dead = 1;
      pbx_pg_set_error(err, PBX_DB_UNREACHABLE, sqlstate, PQresultErrorMessage(failed));
      PQclear(failed);
      return PBX_DB_UNREACHABLE;
    }
    server_error(failed, err);
    PQclear(failed);
    return PBX_DB_FAILED;
  }
  if (PQstatus(conn->pg) != CONNECTION_OK) {
    PQclear(last);
    return unreachable(conn, err, "connection broken", 1);
  }
  if (last == NULL) { /* a statement text that is only whitespace or comments */
    last = PQmakeEmptyPGresult(conn->pg, PGRES_EMPTY_QUERY);
    if (last == NULL) {
      pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, "out of memory");
      return PBX_DB_INTERNAL;
    }
  }
  *out = (pbx_db_result*)(void*)last;
  pbx_pg_set_ok(err);
  return PBX_DB_OK;
}

static int pg_ntuples(const pbx_db_result* res) { return res == NULL ? 0 : PQntuples(as_pg(res)); }

static int pg_nfields(const pbx_db_result* res) { return res == NULL ? 0 : PQnfields(as_pg(res)); }

static const char* pg_value(const pbx_db_result* res, int row, int col) {
  if (res == NULL || row < 0 || col < 0 || row >= PQntuples(as_pg(res)) ||
      col >= PQnfields(as_pg(res)) || PQgetisnull(as_pg(res), row, col)) {
    return NULL;
  }
  return PQgetvalue(as_pg(res), row, col);
}

static void pg_clear(pbx_db_result* res) { PQclear((PGresult*)(void*)res); }

/* ---------------------------------------------------------------------------------------------
 * Facts for doctor */

static int put(char* out, size_t out_len, const char* value) {
  /* A value that does not fit is not reported rather than reported cut short. */
  if (value == NULL || strlen(value) >= out_len) return 0;
  memcpy(out, value, strlen(value) + 1);
  return 1;
}

static int pg_info(const pbx_db_conn* conn, const char* key, char* out, size_t out_len) {
  if (conn == NULL || key == NULL || out == NULL || out_len == 0) return 0;
  out[0] = '\0';
  PGconn* pg = conn->pg;
  if (strcmp(key, "host") == 0) return put(out, out_len, PQhost(pg));
  if (strcmp(key, "port") == 0) return put(out, out_len, PQport(pg));
  if (strcmp(key, "dbname") == 0) return put(out, out_len, PQdb(pg));
  if (strcmp(key, "user") == 0) return put(out, out_len, PQuser(pg));
  if (strcmp(key, "ssl") == 0) return put(out, out_len, PQsslInUse(pg) ? "on" : "off");
  if (strcmp(key, "gssenc") == 0) return put(out, out_len, PQgssEncInUse(pg) ? "on" : "off");
  if (strcmp(key, "ssl_protocol") == 0) {
    return put(out, out_len, PQsslAttribute(pg, "protocol"));
  }
  if (strcmp(key, "ssl_cipher") == 0) {
    return put(out, out_len, PQsslAttribute(pg, "cipher"));
  }
  if (strcmp(key, "server_version") == 0) {
    int v = PQserverVersion(pg); /* 150018 for 15.18; 0 when unknown */
    if (v <= 0) return 0;
    char text[32];
    if (v >= 100000) {
      (void)snprintf(text, sizeof text, "%d.%d", v / 10000, v % 10000);
    } else { /* before 10: 90624 is 9.6.24 */
      (void)snprintf(text, sizeof text, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
    }
    return put(out, out_len, text);
  }
  /* The modes the connection was made with (what the plugin passed: the conninfo's value, else
   * sslmode's compiled default or gssencmode=disable). */
  if (strcmp(key, "sslmode") == 0 || strcmp(key, "gssencmode") == 0) {
    PQconninfoOption* opts = PQconninfo(pg);
    int found = 0;
    for (PQconninfoOption* o = opts; o != NULL && o->keyword != NULL; ++o) {
      if (strcmp(o->keyword, key) == 0) {
        found = put(out, out_len, o->val);
        break;
      }
    }
    PQconninfoFree(opts);
    return found;
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The one exported symbol */

PBX_EXPORT const pbx_db_plugin* pbx_db_plugin_v1(void);

const pbx_db_plugin* pbx_db_plugin_v1(void) {
  static const pbx_db_plugin kPlugin = {
      .abi = PBX_DB_PLUGIN_ABI,
      .connect = pg_connect,
      .finish = pg_finish,
      .exec = pg_exec,
      .ntuples = pg_ntuples,
      .nfields = pg_nfields,
      .value = pg_value,
      .clear = pg_clear,
      .info = pg_info,
  };
  return &kPlugin;
}

/* pg_conn.c: errors, deadline-bounded waiting on libpq's socket, and connecting to one host or
 * to each host of a list in turn, for pbx_store_postgresql.so (see pg_plugin.c). */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "pg_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Errors */

void pbx_pg_set_error(pbx_db_error* err, int status, const char* sqlstate, const char* message) {
  if (err == NULL) return;
  err->status = status;
  err->sqlstate[0] = '\0';
  if (sqlstate != NULL && strlen(sqlstate) == 5) memcpy(err->sqlstate, sqlstate, 6);
  /* One line: libpq and the server write several (DETAIL, HINT, "\tIs the server running"), and
   * the caller puts this in a syslog line. Runs of whitespace become one space. */
  size_t n = 0;
  int space = 0;
  for (const char* p = message != NULL ? message : ""; *p != '\0'; ++p) {
    char c = *p;
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = n > 0;
      continue;
    }
    if ((unsigned char)c < 0x20 || c == 0x7f) c = '?';
    if (space && n + 1 < sizeof err->message) err->message[n++] = ' ';
    space = 0;
    if (n + 1 < sizeof err->message) err->message[n++] = c;
  }
  err->message[n] = '\0';
}

void pbx_pg_set_ok(pbx_db_error* err) { pbx_pg_set_error(err, PBX_DB_OK, NULL, ""); }

/* ---------------------------------------------------------------------------------------------
 * Time and waiting */

int64_t pbx_pg_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or deadline_ms passes. The socket is looked up by the
 * caller before every wait: libpq opens a new one for each address it tries. */
enum pbx_pg_wait_result pbx_pg_wait_socket(int fd, short events, int64_t deadline_ms) {
  if (fd < 0) return WAIT_ERROR;
  for (;;) {
    int64_t left = deadline_ms - pbx_pg_now_ms();
    if (left <= 0) return WAIT_TIMEOUT;
    struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
    /* pbx_pg_now_ms() rounds down, so a wait of `left` never ends before the deadline. */
    int rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
    if (rc > 0) return WAIT_READY; /* POLLERR/POLLHUP too: libpq's next call reports them */
    if (rc < 0 && errno != EINTR) return WAIT_ERROR;
  }
}

/* ---------------------------------------------------------------------------------------------
 * Connecting */

static void ignore_notice(void* arg, const char* message) {
  (void)arg;
  (void)message;
}

/* ---------------------------------------------------------------------------------------------
 * Why a connection attempt failed
 *
 * UNREACHABLE lets break-glass codes in, so it is kept for "could not get there" and "cannot
 * serve now"; a server (or the TLS check) that says no is FAILED. libpq gives no SQLSTATE for a
 * failed connection, so the plugin goes by how far the attempt got, which it sees between
 * PQconnectPoll calls:
 *   - a transport connection was made (libpq always stops at CONNECTION_MADE after connect()
 *     succeeds, before it sends anything): whatever failed after that was an answer, so FAILED
 *     (authentication, unknown role or database, pg_hba.conf, TLS verification, requirepeer),
 *     unless the message contains one of kCannotServeNow;
 *   - a connect() was under way (CONNECTION_STARTED) and never completed: refused, no route,
 *     reset: UNREACHABLE;
 *   - nothing got that far (a Unix socket connect() fails at once, as do host name lookups and
 *     libpq's checks of the parameter values): UNREACHABLE when the message names the attempt
 *     (a socket path ".s.PGSQL." in any language; "connection to server at" or "could not
 *     translate host name" in English) and is not about an option value, else FAILED (a bad
 *     conninfo).
 * The texts are the server's (English in the project's clusters) and libpq's; PGLOCALEDIR is
 * refused, so the catalogs are the system's. A server or a libpq translated into another
 * language may be misclassified: then "cannot serve now" or a lost connection becomes FAILED,
 * and the login fails closed either way (FAILED refuses the login, UNREACHABLE too unless a
 * break-glass code is typed). A timeout of the plugin's own deadline is always UNREACHABLE. */

/* Server messages (SQLSTATE 57P03 cannot_connect_now, 53300 too_many_connections, a postmaster
 * that could not fork), libpq's for target_session_attrs (the server is up but not the kind
 * asked for) and for a connection lost before an answer (a TCP proxy whose database is down
 * accepts and closes), and PgBouncer's for a database behind it that is down. */
static const char* const kCannotServeNow[] = {
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "sorry, too many clients already",
    "remaining connection slots are reserved",
    "too many connections for role",
    "too many connections for database",
    "could not fork new process for connection",
    "server is in hot standby mode",
    "server is not in hot standby mode",
    "session is read-only",
    "session is not read-only",
    "server closed the connection unexpectedly",
    "could not receive data from server",
    "SSL SYSCALL error: EOF detected",
    "pgbouncer cannot connect to server",
};

enum reached { REACHED_NOTHING, REACHED_CONNECTING, REACHED_CONNECTED };

static enum reached reached_by(ConnStatusType st) {
  switch (st) {
    case CONNECTION_STARTED:
      return REACHED_CONNECTING;
    case CONNECTION_MADE:
    case CONNECTION_AWAITING_RESPONSE:
    case CONNECTION_AUTH_OK:
    case CONNECTION_SETENV:
    case CONNECTION_SSL_STARTUP:
    case CONNECTION_GSS_STARTUP:
    case CONNECTION_CHECK_WRITABLE:
    case CONNECTION_CONSUME:
    case CONNECTION_CHECK_TARGET:
    case CONNECTION_CHECK_STANDBY:
      return REACHED_CONNECTED;
    default:
      return REACHED_NOTHING;
  }
}

static int classify_failure(enum reached reached, const char* message) {
  if (message == NULL) message = "";
  if (reached == REACHED_CONNECTED) {
    for (size_t i = 0; i < sizeof kCannotServeNow / sizeof kCannotServeNow[0]; ++i) {
      if (strstr(message, kCannotServeNow[i]) != NULL) return PBX_DB_UNREACHABLE;
    }
    return PBX_DB_FAILED;
  }
  if (reached == REACHED_CONNECTING) return PBX_DB_UNREACHABLE;
  int names_attempt = strstr(message, "/.s.PGSQL.") != NULL ||
                      strstr(message, "connection to server at \"") != NULL ||
                      strstr(message, "could not translate host name") != NULL;
  /* "connection to server at ... failed: invalid integer value "x" for connection option
   * "keepalives"": libpq checks some values only when it sets up the socket. */
  int about_option = strstr(message, "for connection option") != NULL;
  return names_attempt && !about_option ? PBX_DB_UNREACHABLE : PBX_DB_FAILED;
}

/* ---------------------------------------------------------------------------------------------
 * TLS that sslmode asked for
 *
 * libpq uses GSSAPI encryption instead of TLS when it can, "regardless of the value of sslmode"
 * (libpq manual): with gssencmode other than disable, a connection under sslmode=verify-full may
 * have checked no certificate at all. The plugin passes gssencmode=disable unless the conninfo
 * names it (pg_params.c); whatever the conninfo says, a connection made under verify-ca or
 * verify-full that is not TLS is refused. Over a Unix socket libpq never uses TLS and there is
 * no network to check, so such a connection is kept (a host list may start with the local
 * socket and go on to remote servers under one sslmode). */

int pbx_pg_tls_missing(const char* sslmode, int ssl_in_use, int unix_socket) {
  if (ssl_in_use || unix_socket) return 0;
  return sslmode != NULL &&
         (strcmp(sslmode, "verify-ca") == 0 || strcmp(sslmode, "verify-full") == 0);
}

/* Whether the connection's socket is a Unix socket (what libpq connected, not what was asked:
 * hostaddr= wins over a socket directory in host=). */
static int over_unix_socket(const PGconn* pg) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  memset(&addr, 0, sizeof addr);
  int fd = PQsocket(pg);
  if (fd < 0 || getsockname(fd, (struct sockaddr*)&addr, &len) != 0) return 0;
  return addr.ss_family == AF_UNIX;
}

/* The value of `keyword` among the parameters handed to libpq, or NULL. */
static const char* param_value(const char* const* keys, const char* const* values,
                               const char* keyword) {
  for (size_t i = 0; keys[i] != NULL; ++i) {
    if (strcmp(keys[i], keyword) == 0) return values[i];
  }
  return NULL;
}

/* Drives one PQconnectStartParams attempt to the end or to deadline_ms. NULL on failure, with a
 * one-line reason in why and UNREACHABLE, FAILED or INTERNAL in *status. */
static PGconn* connect_one(const char* const* keys, const char* const* values, int64_t deadline_ms,
                           char* why, size_t why_len, int* status) {
  PGconn* pg = PQconnectStartParams(keys, values, 0);
  if (pg == NULL) {
    (void)snprintf(why, why_len, "out of memory");
    *status = PBX_DB_INTERNAL;
    return NULL;
  }
  /* libpq's default notice processor prints server notices ("relation already exists,
   * skipping") on stderr, which is the login's terminal or sshd's log: drop them. */
  PQsetNoticeProcessor(pg, ignore_notice, NULL);
  enum reached reached = reached_by(PQstatus(pg));
  /* Per the libpq manual: start as if PQconnectPoll had answered PGRES_POLLING_WRITING. */
  PostgresPollingStatusType st =
      PQstatus(pg) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    enum pbx_pg_wait_result w = pbx_pg_wait_socket(
        PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline_ms);
    if (w == WAIT_TIMEOUT) {
      const char* host = PQhost(pg);
      const char* port = PQport(pg);
      (void)snprintf(why, why_len, "timeout connecting to server at \"%s\", port %s",
                     host != NULL ? host : "?", port != NULL ? port : "?");
      PQfinish(pg);
      *status = PBX_DB_UNREACHABLE;
      return NULL;
    }
    if (w == WAIT_ERROR) {
      (void)snprintf(why, why_len, "poll failed on the connection socket");
      PQfinish(pg);
      *status = PBX_DB_UNREACHABLE;
      return NULL;
    }
    st = PQconnectPoll(pg);
    enum reached now = reached_by(PQstatus(pg));
    if (now > reached) reached = now;
  }
  if (st == PGRES_POLLING_FAILED) {
    (void)snprintf(why, why_len, "%s", PQerrorMessage(pg));
    *status = classify_failure(reached, PQerrorMessage(pg));
    PQfinish(pg);
    return NULL;
  }
  const char* sslmode = param_value(keys, values, "sslmode");
  if (pbx_pg_tls_missing(sslmode, PQsslInUse(pg), over_unix_socket(pg))) {
    const char* host = PQhost(pg);
    const char* port = PQport(pg);
    (void)snprintf(why, why_len,
                   "connection to server at \"%s\", port %s refused: sslmode=%s but the "
                   "connection is not TLS (%s)",
                   host != NULL ? host : "?", port != NULL ? port : "?", sslmode,
                   PQgssEncInUse(pg) ? "GSSAPI encryption; remove gssencmode or set it to disable"
                                     : "no TLS in use");
    PQfinish(pg);
    *status = PBX_DB_FAILED; /* not UNREACHABLE: that would let break-glass codes in */
    return NULL;
  }
  return pg;
}

/* The number of comma-separated elements of a libpq host/hostaddr/port list (0 for NULL/""). */
static int list_count(const char* s) {
  if (s == NULL || *s == '\0') return 0;
  int n = 1;
  for (; *s != '\0'; ++s) n += *s == ',';
  return n;
}

/* Element i of a comma-separated list into out, which has room for the whole list. */
static void list_item(const char* s, int i, char* out) {
  for (; i > 0 && s != NULL; --i) {
    s = strchr(s, ',');
    if (s != NULL) ++s;
  }
  size_t n = 0;
  for (; s != NULL && *s != '\0' && *s != ','; ++s) out[n++] = *s;
  out[n] = '\0';
}

/* Whether some element of a list is empty ("a,", ",b", "a,,b"). */
static int list_has_empty(const char* s) {
  if (s == NULL || *s == '\0') return 0;
  if (*s == ',') return 1;
  for (; *s != '\0'; ++s) {
    if (*s == ',' && (s[1] == ',' || s[1] == '\0')) return 1;
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The Kerberos credential cache
 *
 * With gssencmode=disable libpq no longer asks GSSAPI for credentials on its own, but a server
 * that requests GSSAPI authentication (pg_hba.conf `gss`, or anything posing as the server when
 * sslmode does not verify it) still makes MIT Kerberos open the default credential cache,
 * /tmp/krb5cc_<real uid>: a blocking open() that a FIFO planted by any local user turns into a
 * hang outside the plugin's deadline. Unless the conninfo asks for Kerberos (gssencmode other
 * than disable, or krbsrvname= written), the connection attempts run with GSSAPI pointed at an
 * empty in-memory cache: such a request then fails at once (MIT: "No credentials cache
 * found"), which refuses the login (FAILED).
 *
 * The cache is chosen with gss_krb5_ccache_name(), which sets it for the calling thread only
 * and leaves the environment alone (KRB5CCNAME is ignored in set-uid processes such as sudo
 * anyway). The function is looked up in the GSSAPI library libpq already loaded: a libpq built
 * without GSSAPI never opens a credential cache, and the plugin does not link Kerberos itself.
 * What the thread had before is put back after connecting (MIT reports the default name when the
 * thread had none, which is then set explicitly: the same cache). */

typedef uint32_t (*ccache_name_fn)(uint32_t* minor, const char* name, const char** out_name);

static const char kNoCcache[] = "MEMORY:pbx-mfa-no-kerberos";

struct ccache_guard {
  void* lib;         /* the GSSAPI library libpq loaded, or NULL */
  ccache_name_fn fn; /* its gss_krb5_ccache_name */
  char* old;         /* the thread's cache name before (malloc'd), or NULL */
};

/* Whether the conninfo asks for Kerberos (see above). */
static int wants_kerberos(const PQconninfoOption* opts, const struct pbx_pg_params* p) {
  const PQconninfoOption* srv = pbx_pg_find_option(opts, "krbsrvname");
  if (srv != NULL && pbx_pg_given(srv->val)) return 1;
  for (size_t i = 0; i < p->n; ++i) {
    if (strcmp(p->keys[i], "gssencmode") == 0) {
      return p->values[i] != NULL && strcmp(p->values[i], "disable") != 0;
    }
  }
  return 0;
}

/* Points the thread's GSSAPI at kNoCcache. 0 on success (also when there is no GSSAPI library to
 * point); -1 when the library is there and the cache could not be set. */
static int hide_ccache(struct ccache_guard* g) {
  memset(g, 0, sizeof *g);
  /* MIT Kerberos (Debian's, RHEL's libpq), then Heimdal. */
  static const char* const kLibs[] = {"libgssapi_krb5.so.2", "libgssapi.so.3"};
  for (size_t i = 0; i < sizeof kLibs / sizeof kLibs[0] && g->lib == NULL; ++i) {
    g->lib = dlopen(kLibs[i], RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
  }
  if (g->lib == NULL) return 0;
  void* sym = dlsym(g->lib, "gss_krb5_ccache_name");
  const char* old = NULL;
  uint32_t minor = 0;
  if (sym != NULL) memcpy(&g->fn, &sym, sizeof g->fn);
  if (g->fn == NULL || g->fn(&minor, kNoCcache, &old) != 0) {
    (void)dlclose(g->lib);
    memset(g, 0, sizeof *g);
    return -1;
  }
  /* old stays valid only until the next call: copied. Without memory the thread is pointed back
   * at the default (NULL) afterwards. */
  if (old != NULL) g->old = strdup(old);
  return 0;
}

static void restore_ccache(struct ccache_guard* g) {
  if (g->lib == NULL) return;
  uint32_t minor = 0;
  (void)g->fn(&minor, g->old, NULL);
  free(g->old);
  (void)dlclose(g->lib);
  memset(g, 0, sizeof *g);
}

/* libpq walks a host list itself, but without a per-host timeout in its asynchronous API: a
 * first host that accepts and never answers would use up the whole deadline, and the standby
 * behind it would never be tried. So a host list is split here into one attempt per host (with
 * its hostaddr and port), each given an equal share of the time left. An empty element means
 * libpq's default for that host (the default socket directory, the compiled port): the compiled
 * default is passed, or nothing, and then the variable libpq would read must not be set. */
PGconn* pbx_pg_connect_hosts(const PQconninfoOption* opts, struct pbx_pg_params* p,
                             int64_t deadline_ms, pbx_db_error* err) {
  int i_host = -1, i_addr = -1, i_port = -1;
  size_t text = 0;
  for (size_t i = 0; i < p->n; ++i) {
    if (strcmp(p->keys[i], "host") == 0) i_host = (int)i;
    if (strcmp(p->keys[i], "hostaddr") == 0) i_addr = (int)i;
    if (strcmp(p->keys[i], "port") == 0) i_port = (int)i;
    text += strlen(p->values[i]);
  }
  const char* hosts = i_host >= 0 ? p->values[i_host] : NULL;
  const char* addrs = i_addr >= 0 ? p->values[i_addr] : NULL;
  const char* ports = i_port >= 0 ? p->values[i_port] : NULL;
  int nhosts = list_count(hosts) > list_count(addrs) ? list_count(hosts) : list_count(addrs);
  /* Lists whose lengths do not match are left whole, for libpq to reject with its own message. */
  int split = nhosts > 1 && (list_count(hosts) == 0 || list_count(hosts) == nhosts) &&
              (list_count(addrs) == 0 || list_count(addrs) == nhosts) &&
              (list_count(ports) <= 1 || list_count(ports) == nhosts);
  if (!split) nhosts = 1;

  const char* port_default = NULL;
  if (split) {
    const char* const lists[3] = {hosts, addrs, list_count(ports) > 1 ? ports : NULL};
    const char* const keywords[3] = {"host", "hostaddr", "port"};
    for (int l = 0; l < 3; ++l) {
      if (!list_has_empty(lists[l])) continue;
      const PQconninfoOption* o = pbx_pg_find_option(opts, keywords[l]);
      if (o != NULL && l == 2 && pbx_pg_given(o->compiled)) {
        port_default = o->compiled;
      } else if (o != NULL && o->envvar != NULL && getenv(o->envvar) != NULL) {
        pbx_pg_refuse_variable(err, o->envvar);
        return NULL;
      }
    }
  }

  struct ccache_guard ccache = {NULL, NULL, NULL};
  if (!wants_kerberos(opts, p) && hide_ccache(&ccache) != 0) {
    pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL,
                     "cannot point GSSAPI away from the Kerberos credential cache "
                     "(gss_krb5_ccache_name failed)");
    return NULL;
  }
  char* item = malloc(3 * (text + 1)); /* one host, hostaddr and port of the lists at a time */
  if (item == NULL) {
    restore_ccache(&ccache);
    pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, "out of memory");
    return NULL;
  }
  char* host = item;
  char* addr = item + text + 1;
  char* port = item + 2 * (text + 1);

  char why[512];
  char all_why[sizeof err->message] = "";
  PGconn* pg = NULL;
  /* FAILED when some server said no, even if others could not be reached. */
  int status = PBX_DB_UNREACHABLE;
  for (int h = 0; h < nhosts && pg == NULL; ++h) {
    int64_t now = pbx_pg_now_ms();
    if (now >= deadline_ms) {
      (void)snprintf(why, sizeof why,
                     h == 0 ? "deadline passed before connecting"
                            : "deadline passed before the remaining hosts");
    } else {
      int64_t host_deadline = now + (deadline_ms - now) / (nhosts - h);
      /* An empty element: NULL leaves the parameter out (libpq's default). */
      if (split && i_host >= 0) {
        list_item(hosts, h, host);
        p->values[i_host] = host[0] != '\0' ? host : NULL;
      }
      if (split && i_addr >= 0) {
        list_item(addrs, h, addr);
        p->values[i_addr] = addr[0] != '\0' ? addr : NULL;
      }
      if (split && list_count(ports) > 1) {
        list_item(ports, h, port);
        p->values[i_port] = port[0] != '\0' ? port : port_default;
      }
      why[0] = '\0';
      int host_status = PBX_DB_UNREACHABLE;
      pg = connect_one(p->keys, p->values, h + 1 == nhosts ? deadline_ms : host_deadline, why,
                       sizeof why, &host_status);
      if (pg == NULL && (host_status == PBX_DB_FAILED || host_status == PBX_DB_INTERNAL) &&
          status != PBX_DB_FAILED) {
        status = host_status;
      }
    }
    if (pg == NULL) {
      /* Keep every host's reason: "a: refused; b: timeout". */
      size_t used = strlen(all_why);
      (void)snprintf(all_why + used, sizeof all_why - used, "%s%s", used > 0 ? "; " : "", why);
      if (now >= deadline_ms) break;
    }
  }
  free(item);
  restore_ccache(&ccache);
  if (pg == NULL) {
    pbx_pg_set_error(err, status, NULL, all_why);
    return NULL;
  }
  return pg;
}

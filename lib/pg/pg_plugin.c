/* pg_plugin.c: pbx_store_postgresql.so, the libpq side of db_plugin.h.
 *
 * Every call is bounded by the caller's absolute CLOCK_MONOTONIC deadline: libpq is used only
 * through its asynchronous calls (PQconnectStartParams/PQconnectPoll, PQsendQuery*,
 * PQconsumeInput/PQisBusy) and this file does the waiting itself, with poll() on PQsocket().
 * Once a deadline passes or the connection breaks, the connection is marked dead: the
 * half-finished exchange cannot be resumed, so later calls fail at once instead of waiting again.
 *
 * Known limit: libpq resolves host names with a blocking getaddrinfo() inside
 * PQconnectStartParams/PQconnectPoll, so a slow resolver can overrun the deadline. Use IP
 * addresses (or hostaddr=) or a Unix socket where that matters.
 *
 * No global mutable state, no output, no exit: the host is a PAM module inside sshd or login. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pbx/totp/db_plugin.h"

#define PBX_EXPORT __attribute__((visibility("default")))

struct pbx_db_conn {
  PGconn* pg;
  int dead; /* a deadline passed or the connection broke: every later exec is UNREACHABLE */
};

/* A pbx_db_result is a PGresult: the opaque pointer is converted back and forth, no wrapper. */
static const PGresult* as_pg(const pbx_db_result* res) { return (const PGresult*)(const void*)res; }

/* ---------------------------------------------------------------------------------------------
 * Errors */

static void set_error(pbx_db_error* err, int status, const char* sqlstate, const char* message) {
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

static void set_ok(pbx_db_error* err) { set_error(err, PBX_DB_OK, NULL, ""); }

/* ---------------------------------------------------------------------------------------------
 * Time and waiting */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum wait_result { WAIT_READY, WAIT_TIMEOUT, WAIT_ERROR };

/* Waits until fd is ready for `events` or deadline_ms passes. The socket is looked up by the
 * caller before every wait: libpq opens a new one for each address it tries. */
static enum wait_result wait_socket(int fd, short events, int64_t deadline_ms) {
  if (fd < 0) return WAIT_ERROR;
  for (;;) {
    int64_t left = deadline_ms - now_ms();
    if (left <= 0) return WAIT_TIMEOUT;
    struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
    /* now_ms() rounds down, so a wait of `left` never ends before the deadline. */
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
    enum wait_result w =
        wait_socket(PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline_ms);
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
 * The caller's environment
 *
 * The PAM module runs inside su and sudo, which keep the invoking user's environment (and
 * $HOME) while they authenticate. libpq fills every connection parameter the conninfo leaves out
 * from a PG* variable (PGHOSTADDR, PGSSLMODE, PGOPTIONS, PGSERVICE, ...) and looks for
 * certificates, the password file and the service file under $HOME: the invoking user could
 * send the login to a server of their own, turn TLS off or choose the tables. So the plugin hands
 * libpq every such parameter itself:
 *   - as written in the conninfo;
 *   - else libpq's compiled default (sslmode=prefer, port=5432, target_session_attrs=any, ...);
 *   - else, for the files libpq would look for under $HOME, that path under the home directory
 *     of the effective user from the passwd database (what libpq finds without $HOME);
 *   - else nothing (libpq's own default: the default socket directory, the effective user's
 *     name), and then the variable must not be set: while it is, the plugin does not connect.
 * A parameter is "written" only with a non-empty value: libpq reads "" as not given. */

/* libpq's environment variables that are not connection parameters, never wanted here: session
 * settings sent to the server, the service file (services are not supported, see
 * build_params), and the message catalogs (the plugin reads libpq's messages to tell a server
 * that refused from one that could not be reached). */
static const char* const kRefusedVariables[] = {
    "PGTZ", "PGDATESTYLE", "PGGEQO", "PGSERVICEFILE", "PGSYSCONFDIR", "PGLOCALEDIR",
};

/* The files libpq looks for under $HOME when the parameter is not given (PostgreSQL 15:
 * PGPASSFILE, USER_CERT_FILE, USER_KEY_FILE, ROOT_CERT_FILE, ROOT_CRL_FILE). */
static const struct {
  const char* keyword;
  const char* file;
} kHomeFiles[] = {
    {"passfile", ".pgpass"},
    {"sslcert", ".postgresql/postgresql.crt"},
    {"sslkey", ".postgresql/postgresql.key"},
    {"sslrootcert", ".postgresql/root.crt"},
    {"sslcrl", ".postgresql/root.crl"},
};
#define N_HOME_FILES (sizeof kHomeFiles / sizeof kHomeFiles[0])

static int given(const char* value) { return value != NULL && *value != '\0'; }

static void refuse_variable(pbx_db_error* err, const char* name) {
  char message[200];
  (void)snprintf(message, sizeof message,
                 "%s is set in the environment; pbx-mfa does not let the environment choose its "
                 "database connection",
                 name);
  set_error(err, PBX_DB_FAILED, NULL, message);
}

static const PQconninfoOption* find_option(const PQconninfoOption* opts, const char* keyword) {
  for (; opts->keyword != NULL; ++opts) {
    if (strcmp(opts->keyword, keyword) == 0) return opts;
  }
  return NULL;
}

/* The effective user's home directory from the passwd database (malloc'd), or NULL. */
static char* euid_home(void) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  size_t len = size > 0 && size < 65536 ? (size_t)size : 16384;
  for (;;) {
    char* buf = malloc(len);
    if (buf == NULL) return NULL;
    struct passwd pw;
    struct passwd* found = NULL;
    int rc = getpwuid_r(geteuid(), &pw, buf, len, &found);
    if (rc == ERANGE && len < (1u << 20)) {
      free(buf);
      len *= 2;
      continue;
    }
    char* home = NULL;
    if (rc == 0 && found != NULL && found->pw_dir != NULL && found->pw_dir[0] == '/') {
      home = strdup(found->pw_dir);
    }
    free(buf);
    return home;
  }
}

/* The parameters handed to PQconnectStartParams: parallel keyword and value arrays (the
 * strings belong to the parsed conninfo, to libpq's option table or to `home_paths`). */
struct params {
  const char** keys;
  const char** values;
  size_t n;
  char* home_paths; /* the kHomeFiles paths, NUL-separated */
};

static void free_params(struct params* p) {
  free(p->keys);
  free(p->values);
  free(p->home_paths);
  memset(p, 0, sizeof *p);
}

/* Builds p from the parsed conninfo, as described above. 0 on success; -1 with err filled in
 * (FAILED when the environment or the conninfo is refused, INTERNAL when out of memory). */
static int build_params(const PQconninfoOption* opts, struct params* p, pbx_db_error* err) {
  memset(p, 0, sizeof *p);
  /* A service is looked up in $HOME/.pg_service.conf (or PGSERVICEFILE) before the system's
   * file, and its settings would only fill what is left out, which is nothing here. */
  const PQconninfoOption* service = find_option(opts, "service");
  if (service != NULL && given(service->val)) {
    set_error(err, PBX_DB_FAILED, NULL,
              "service= is not supported in the conninfo (libpq would read the caller's "
              "~/.pg_service.conf); write the parameters themselves");
    return -1;
  }
  for (size_t i = 0; i < sizeof kRefusedVariables / sizeof kRefusedVariables[0]; ++i) {
    if (getenv(kRefusedVariables[i]) != NULL) {
      refuse_variable(err, kRefusedVariables[i]);
      return -1;
    }
  }

  size_t nopts = 0;
  while (opts[nopts].keyword != NULL) ++nopts;
  p->keys = calloc(nopts + 1, sizeof *p->keys);
  p->values = calloc(nopts + 1, sizeof *p->values);
  if (p->keys == NULL || p->values == NULL) goto out_of_memory;

  /* The files of kHomeFiles the conninfo leaves out are named under the home directory (the
   * CRL file only when no CRL directory is given either: libpq uses the default file only
   * then). */
  const PQconninfoOption* crldir = find_option(opts, "sslcrldir");
  int crldir_given = crldir != NULL && given(crldir->val);
  int need_home = 0;
  for (size_t f = 0; f < N_HOME_FILES; ++f) {
    const PQconninfoOption* o = find_option(opts, kHomeFiles[f].keyword);
    if (o == NULL || given(o->val)) continue;
    if (strcmp(o->keyword, "sslcrl") == 0 && crldir_given) continue;
    if (o->envvar != NULL && getenv(o->envvar) != NULL) {
      refuse_variable(err, o->envvar);
      goto fail;
    }
    need_home = 1;
  }
  if (need_home) {
    char* home = euid_home();
    if (home == NULL) {
      char message[160];
      (void)snprintf(message, sizeof message,
                     "cannot find the home directory of uid %ld in the passwd database (for "
                     "~/.pgpass and ~/.postgresql)",
                     (long)geteuid());
      set_error(err, PBX_DB_FAILED, NULL, message);
      goto fail;
    }
    size_t size = 0;
    for (size_t f = 0; f < N_HOME_FILES; ++f) {
      size += strlen(home) + 1 + strlen(kHomeFiles[f].file) + 1;
    }
    p->home_paths = malloc(size);
    if (p->home_paths == NULL) {
      free(home);
      goto out_of_memory;
    }
    char* at = p->home_paths;
    for (size_t f = 0; f < N_HOME_FILES; ++f) {
      at += sprintf(at, "%s/%s", home, kHomeFiles[f].file) + 1;
    }
    free(home);
  }

  for (size_t i = 0; i < nopts; ++i) {
    const PQconninfoOption* o = &opts[i];
    const char* value = NULL;
    if (given(o->val)) {
      value = o->val;
    } else if (o->envvar == NULL) {
      continue; /* libpq reads no variable for it */
    } else if (given(o->compiled)) {
      value = o->compiled;
    } else if (strcmp(o->keyword, "options") == 0) {
      /* Compiled default "", which libpq would read as "not given": when PGOPTIONS is set, a
       * blank (no server options either) is passed instead. */
      if (getenv(o->envvar) == NULL) continue;
      value = " ";
    } else {
      const char* at = p->home_paths;
      for (size_t f = 0; at != NULL && f < N_HOME_FILES; at += strlen(at) + 1, ++f) {
        if (strcmp(o->keyword, kHomeFiles[f].keyword) == 0) {
          if (!(strcmp(o->keyword, "sslcrl") == 0 && crldir_given)) value = at;
          break;
        }
      }
      if (value == NULL) {
        if (getenv(o->envvar) != NULL) {
          refuse_variable(err, o->envvar);
          goto fail;
        }
        continue; /* libpq's own default */
      }
    }
    p->keys[p->n] = o->keyword;
    p->values[p->n] = value;
    ++p->n;
  }
  return 0;

out_of_memory:
  set_error(err, PBX_DB_INTERNAL, NULL, "out of memory");
fail:
  free_params(p);
  return -1;
}

/* libpq walks a host list itself, but without a per-host timeout in its asynchronous API: a
 * first host that accepts and never answers would use up the whole deadline, and the standby
 * behind it would never be tried. So a host list is split here into one attempt per host (with
 * its hostaddr and port), each given an equal share of the time left. An empty element means
 * libpq's default for that host (the default socket directory, the compiled port): the compiled
 * default is passed, or nothing, and then the variable libpq would read must not be set. */
static PGconn* connect_hosts(const PQconninfoOption* opts, struct params* p, int64_t deadline_ms,
                             pbx_db_error* err) {
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
      const PQconninfoOption* o = find_option(opts, keywords[l]);
      if (o != NULL && l == 2 && given(o->compiled)) {
        port_default = o->compiled;
      } else if (o != NULL && o->envvar != NULL && getenv(o->envvar) != NULL) {
        refuse_variable(err, o->envvar);
        return NULL;
      }
    }
  }

  char* item = malloc(3 * (text + 1)); /* one host, hostaddr and port of the lists at a time */
  if (item == NULL) {
    set_error(err, PBX_DB_INTERNAL, NULL, "out of memory");
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
    int64_t now = now_ms();
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
  if (pg == NULL) {
    set_error(err, status, NULL, all_why);
    return NULL;
  }
  return pg;
}

static pbx_db_conn* pg_connect(const char* conninfo, int64_t deadline_ms, pbx_db_error* err) {
  if (conninfo == NULL) {
    set_error(err, PBX_DB_INTERNAL, NULL, "no conninfo");
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
    set_error(err, PBX_DB_INTERNAL, NULL, why);
    PQfreemem(parse_error);
    return NULL;
  }
  struct params p;
  PGconn* pg = NULL;
  if (build_params(opts, &p, err) == 0) {
    pg = connect_hosts(opts, &p, deadline_ms, err);
    free_params(&p);
  }
  PQconninfoFree(opts);
  if (pg == NULL) return NULL;

  pbx_db_conn* conn = calloc(1, sizeof *conn);
  if (conn == NULL || PQsetnonblocking(pg, 1) != 0) {
    free(conn);
    PQfinish(pg);
    set_error(err, PBX_DB_INTERNAL, NULL, "out of memory");
    return NULL;
  }
  conn->pg = pg;
  set_ok(err);
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
  set_error(err, PBX_DB_UNREACHABLE, NULL, message);
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
  set_error(err, PBX_DB_FAILED, sqlstate, primary != NULL ? primary : PQresultErrorMessage(res));
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
    set_error(err, PBX_DB_INTERNAL, NULL, "bad arguments to exec");
    return PBX_DB_INTERNAL;
  }
  for (int i = 0; formats != NULL && i < nparams; ++i) {
    if (formats[i] == 1 && values[i] != NULL && lengths == NULL) {
      set_error(err, PBX_DB_INTERNAL, NULL, "binary parameter without a length");
      return PBX_DB_INTERNAL;
    }
  }
  if (conn->dead || PQstatus(conn->pg) != CONNECTION_OK) {
    conn->dead = 1;
    set_error(err, PBX_DB_UNREACHABLE, NULL, "connection lost earlier");
    return PBX_DB_UNREACHABLE;
  }
  if (now_ms() >= deadline_ms) return unreachable(conn, err, "deadline passed before sending", 0);

  int sent = nparams == 0
                 ? PQsendQuery(conn->pg, sql)
                 : PQsendQueryParams(conn->pg, sql, nparams, NULL, values, lengths, formats, 0);
  if (!sent) return unreachable(conn, err, "could not send the statement", 1);

  /* Non-blocking mode: the statement may still sit in libpq's buffer. While writing, the server
   * may be writing too; reading meanwhile keeps both sides from blocking on full buffers. */
  int flush;
  while ((flush = PQflush(conn->pg)) == 1) {
    enum wait_result w = wait_socket(PQsocket(conn->pg), POLLIN | POLLOUT, deadline_ms);
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
      enum wait_result w = wait_socket(PQsocket(conn->pg), POLLIN, deadline_ms);
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
      set_error(err, PBX_DB_INTERNAL, NULL, "COPY is not supported");
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
      set_error(err, PBX_DB_UNREACHABLE, sqlstate, PQresultErrorMessage(failed));
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
      set_error(err, PBX_DB_INTERNAL, NULL, "out of memory");
      return PBX_DB_INTERNAL;
    }
  }
  *out = (pbx_db_result*)(void*)last;
  set_ok(err);
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
  if (strcmp(key, "sslmode") == 0) {
    PQconninfoOption* opts = PQconninfo(pg);
    int found = 0;
    for (PQconninfoOption* o = opts; o != NULL && o->keyword != NULL; ++o) {
      if (strcmp(o->keyword, "sslmode") == 0) {
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

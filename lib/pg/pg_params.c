/* pg_params.c: the parameters handed to libpq, from the conninfo and not from the caller's
 * environment, for pbx_store_postgresql.so (see pg_plugin.c). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_internal.h"

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
 *   - else, for gssencmode, "disable" (see kGssencDefault);
 *   - else libpq's compiled default (sslmode=prefer, port=5432, target_session_attrs=any, ...);
 *   - else, for the files libpq would look for under $HOME, that path under the home directory
 *     of the effective user from the passwd database (what libpq finds without $HOME);
 *   - else nothing (libpq's own default: the default socket directory, the effective user's
 *     name), and then the variable must not be set: while it is, the plugin does not connect.
 * A parameter is "written" only with a non-empty value: libpq reads "" as not given. */

/* libpq's environment variables that are not connection parameters, never wanted here: session
 * settings sent to the server, the service file (services are not supported, see
 * pbx_pg_build_params), and the message catalogs (the plugin reads libpq's messages to tell a
 * server that refused from one that could not be reached). */
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

/* gssencmode when the conninfo does not name it. libpq's compiled default, "prefer", makes it
 * ask GSSAPI for credentials right after the TCP connect, before TLS: MIT Kerberos then opens the
 * default credential cache, /tmp/krb5cc_<real uid>, with a blocking open() outside the plugin's
 * poll loop. Any local user can put a FIFO there (a login hangs until the application gives up,
 * whatever pg_timeout_ms says) or a cache of their own making (libpq would then use GSSAPI
 * encryption instead of TLS, whatever sslmode says). An administrator who wants GSSAPI
 * encryption writes gssencmode= in the conninfo. */
static const char kGssencDefault[] = "disable";

int pbx_pg_given(const char* value) { return value != NULL && *value != '\0'; }

void pbx_pg_refuse_variable(pbx_db_error* err, const char* name) {
  char message[200];
  (void)snprintf(message, sizeof message,
                 "%s is set in the environment; pbx-mfa does not let the environment choose its "
                 "database connection",
                 name);
  pbx_pg_set_error(err, PBX_DB_FAILED, NULL, message);
}

const PQconninfoOption* pbx_pg_find_option(const PQconninfoOption* opts, const char* keyword) {
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

void pbx_pg_free_params(struct pbx_pg_params* p) {
  free(p->keys);
  free(p->values);
  free(p->home_paths);
  memset(p, 0, sizeof *p);
}

/* Builds p from the parsed conninfo, as described above. 0 on success; -1 with err filled in
 * (FAILED when the environment or the conninfo is refused, INTERNAL when out of memory). */
int pbx_pg_build_params(const PQconninfoOption* opts, struct pbx_pg_params* p, pbx_db_error* err) {
  memset(p, 0, sizeof *p);
  /* A service is looked up in $HOME/.pg_service.conf (or PGSERVICEFILE) before the system's
   * file, and its settings would only fill what is left out, which is nothing here. */
  const PQconninfoOption* service = pbx_pg_find_option(opts, "service");
  if (service != NULL && pbx_pg_given(service->val)) {
    pbx_pg_set_error(err, PBX_DB_FAILED, NULL,
                     "service= is not supported in the conninfo (libpq would read the caller's "
                     "~/.pg_service.conf); write the parameters themselves");
    return -1;
  }
  for (size_t i = 0; i < sizeof kRefusedVariables / sizeof kRefusedVariables[0]; ++i) {
    if (getenv(kRefusedVariables[i]) != NULL) {
      pbx_pg_refuse_variable(err, kRefusedVariables[i]);
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
  const PQconninfoOption* crldir = pbx_pg_find_option(opts, "sslcrldir");
  int crldir_given = crldir != NULL && pbx_pg_given(crldir->val);
  int need_home = 0;
  for (size_t f = 0; f < N_HOME_FILES; ++f) {
    const PQconninfoOption* o = pbx_pg_find_option(opts, kHomeFiles[f].keyword);
    if (o == NULL || pbx_pg_given(o->val)) continue;
    if (strcmp(o->keyword, "sslcrl") == 0 && crldir_given) continue;
    if (o->envvar != NULL && getenv(o->envvar) != NULL) {
      pbx_pg_refuse_variable(err, o->envvar);
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
      pbx_pg_set_error(err, PBX_DB_FAILED, NULL, message);
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
    if (pbx_pg_given(o->val)) {
      value = o->val;
    } else if (strcmp(o->keyword, "gssencmode") == 0) {
      value = kGssencDefault;
    } else if (o->envvar == NULL) {
      continue; /* libpq reads no variable for it */
    } else if (pbx_pg_given(o->compiled)) {
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
          pbx_pg_refuse_variable(err, o->envvar);
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
  pbx_pg_set_error(err, PBX_DB_INTERNAL, NULL, "out of memory");
fail:
  pbx_pg_free_params(p);
  return -1;
}

#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the tests (test-only: trust authentication, no password).
#   cluster.sh start DIR   initdb + pg_ctl start as `postgres` in a private temp dir
#                          (/tmp/pbx-pg-XXXXXX: data, Unix socket, self-signed TLS certificate),
#                          listening on 127.0.0.1 at a free high port (never 5432); writes
#                          DIR/conninfo      host=<socket dir> port=P user=postgres dbname=postgres
#                          DIR/conninfo_tls  host=127.0.0.1 port=P ... sslmode=require
#                          DIR/port, DIR/datadir (PGDATA), DIR/socketdir (the temp dir)
#                          A cluster DIR still records is stopped first.
#   cluster.sh standby DIR PRIMARY_DIR
#                          a hot standby of the cluster PRIMARY_DIR records: pg_basebackup -R over
#                          127.0.0.1 (streaming replication, no slot) into a temp dir of its own,
#                          started at another free port with the same settings and the same files
#                          in DIR; application_name 'pbx_standby' (for synchronous_standby_names).
#                          `pg_ctl promote -D $(cat DIR/datadir)` (as postgres) makes it a primary.
#   cluster.sh stop DIR    stops it (immediate) and removes the temp dir; fine if none runs.
# DIR only records paths (it sits in the build tree); nothing else is kept there. Never touches
# the system cluster (15/main on 5432) or /etc/postgresql. Needs root (runs pg_ctl through
# runuser; start exits 77 without it) and postgresql-15 (scripts/lib/deps.sh). Errors are printed
# as "FAIL: ...".
set -euo pipefail

usage="usage: cluster.sh start|stop DIR | cluster.sh standby DIR PRIMARY_DIR"
mode=${1:-}
dir=${2:-}
primary_dir=${3:-}
[[ ($mode == start || $mode == stop || ($mode == standby && -n $primary_dir)) && -n $dir ]] ||
  { echo "$usage" >&2; exit 2; }
bin=/usr/lib/postgresql/15/bin
# Only a temp dir this script made is ever removed.
tmp_pattern='^/tmp/pbx-pg-[A-Za-z0-9]{6}$'
# libpq and the server tools would otherwise follow the caller's PG* variables.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGSSLMODE PGDATA PGOPTIONS

fail() { echo "FAIL: $*"; exit 1; }
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

stop_cluster() {
  local socketdir data pid
  socketdir=$(cat "$dir/socketdir" 2>/dev/null || true)
  data=$(cat "$dir/datadir" 2>/dev/null || true)
  rm -f "$dir/conninfo" "$dir/conninfo_tls" "$dir/port" "$dir/datadir" "$dir/socketdir"
  if [[ -z $socketdir ]]; then
    echo "cluster.sh: no cluster recorded in $dir"
    return 0
  fi
  [[ $socketdir =~ $tmp_pattern ]] || fail "$dir/socketdir holds '$socketdir', not a dir of ours"
  if [[ -f $data/postmaster.pid ]]; then
    pid=$(head -1 "$data/postmaster.pid")
    as_postgres "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    # If pg_ctl could not stop it, end that postmaster (ours: its pid file is in our temp dir).
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
      [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$bin/postgres" ]]; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -rf "$socketdir"
  echo "cluster.sh: stopped the cluster in $socketdir"
}

free_port() {  # a random port in 20000..59999 nobody listens on (TCP, any address)
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if [[ -z $(ss -Htln "sport = :$port" 2>/dev/null) ]]; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

start_cluster() {
  if [[ $(id -u) != 0 ]]; then  # exit 77: ctest reports the fixture skipped (SKIP_RETURN_CODE)
    echo "SKIP: cluster.sh $mode needs root (initdb and pg_ctl as postgres)"
    exit 77
  fi
  [[ -x $bin/initdb && -x $bin/pg_ctl ]] || fail "$bin/initdb missing: install postgresql-15"
  id postgres >/dev/null 2>&1 || fail "no postgres user: install postgresql-15"
  command -v openssl >/dev/null || fail "openssl missing"
  local primary_port=""
  if [[ $mode == standby ]]; then
    primary_port=$(cat "$primary_dir/port" 2>/dev/null) ||
      fail "no cluster recorded in $primary_dir (cluster.sh start it first)"
  fi
  mkdir -p "$dir"
  stop_cluster

  local tmp data log port ok=0
  tmp=$(mktemp -d /tmp/pbx-pg-XXXXXX)
  data=$tmp/data
  log=$tmp/server.log
  # Recorded at once, so that stop can always clean up; a failed start cleans up itself.
  echo "$tmp" >"$dir/socketdir"
  echo "$data" >"$dir/datadir"
  trap 'tail -20 "$log" 2>/dev/null || true; stop_cluster' EXIT
  chown postgres:postgres "$tmp"
  chmod 700 "$tmp"

  if [[ $mode == standby ]]; then
    # A copy of the primary taken over the replication protocol, its WAL streamed during the
    # copy; -R writes standby.signal (the server starts as a hot standby). The primary's
    # pg_hba.conf, certificate and key come with it.
    if ! as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
      -D "$data" -R -X stream --no-sync >"$tmp/basebackup.log" 2>&1; then
      cat "$tmp/basebackup.log"
      fail "pg_basebackup from 127.0.0.1:$primary_port failed (log above)"
    fi
  else
    if ! as_postgres "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-sync >"$tmp/initdb.log" 2>&1; then
      cat "$tmp/initdb.log"
      fail "initdb failed (log above)"
    fi
    # Only the socket and loopback TCP, both trusted: a throwaway cluster for tests (the
    # replication line lets `cluster.sh standby` copy it and stream from it).
    cat >"$data/pg_hba.conf" <<'HBA'
local all all trust
host  all all 127.0.0.1/32 trust
host  replication all 127.0.0.1/32 trust
HBA
    # A self-signed certificate: enough for sslmode=require (nothing here verifies it).
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
      -subj "/CN=127.0.0.1" -keyout "$data/server.key" -out "$data/server.crt" \
      >"$tmp/openssl.log" 2>&1; then
      cat "$tmp/openssl.log"
      fail "openssl req -x509 failed (log above)"
    fi
    chown postgres:postgres "$data/server.key" "$data/server.crt"
    chmod 600 "$data/server.key"
  fi

  # A port found free can be taken before the server binds it: try a few.
  for attempt in 1 2 3 4 5; do
    port=$(free_port) || fail "no free port found in 20000..59999"
    # The whole file is rewritten: a standby's copy holds the primary's port and socket dir.
    cat >"$data/postgresql.auto.conf" <<CONF
# cluster.sh (tests only)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
max_connections = 100
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    if [[ $mode == standby ]]; then
      cat >>"$data/postgresql.auto.conf" <<CONF
primary_conninfo = 'host=127.0.0.1 port=$primary_port user=postgres application_name=pbx_standby'
hot_standby = on
wal_receiver_status_interval = 1s
CONF
    fi
    chown postgres:postgres "$data/postgresql.auto.conf"
    if as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 30 start >"$tmp/pg_ctl.log" 2>&1; then
      ok=1
      break
    fi
    echo "cluster.sh: start on port $port failed (attempt $attempt):"
    tail -5 "$log" 2>/dev/null || true
    as_postgres "$bin/pg_ctl" -D "$data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
  done
  [[ $ok == 1 ]] || fail "pg_ctl start failed 5 times (server log: $log)"

  local ready=0
  for _ in $(seq 100); do
    if "$bin/pg_isready" -q -h "$tmp" -p "$port" -U postgres -d postgres; then
      ready=1
      break
    fi
    sleep 0.1
  done
  [[ $ready == 1 ]] || fail "server on port $port not ready after 10 s (log: $log)"

  echo "host=$tmp port=$port user=postgres dbname=postgres" >"$dir/conninfo"
  echo "host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=require" \
    >"$dir/conninfo_tls"
  echo "$port" >"$dir/port"
  # Both ways in work, and TCP is encrypted.
  local ssl
  "$bin/psql" -XAtq "$(cat "$dir/conninfo")" -c 'SELECT 1' >/dev/null 2>&1 ||
    fail "psql over the socket $tmp failed"
  ssl=$("$bin/psql" -XAtq "$(cat "$dir/conninfo_tls")" \
    -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>&1) ||
    fail "psql over TCP+TLS on port $port failed: $ssl"
  [[ $ssl == t ]] || fail "TCP connection on port $port is not encrypted: $ssl"
  if [[ $mode == standby ]]; then
    local streaming=""
    for _ in $(seq 100); do
      streaming=$("$bin/psql" -XAtq "$(cat "$dir/conninfo")" \
        -c 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null || true)
      [[ $streaming == streaming ]] && break
      sleep 0.1
    done
    [[ $streaming == streaming ]] ||
      fail "standby on port $port not streaming from port $primary_port after 10 s (log: $log)"
  fi
  trap - EXIT
  local what="PostgreSQL 15"
  [[ $mode == standby ]] && what+=" hot standby"
  echo "cluster.sh: $what ready on $tmp and 127.0.0.1:$port (TLS on)"
}

case $mode in
  start | standby) start_cluster ;;
  stop) stop_cluster ;;
esac

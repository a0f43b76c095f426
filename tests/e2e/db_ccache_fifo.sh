#!/usr/bin/env bash
# End-to-end (H1): a FIFO planted as the Kerberos credential cache never hangs a login.
#   db_ccache_fifo.sh MODULE_SO PBX_MFA_CLI PG_PLUGIN_SO CLUSTER_DIR
# Any local user can create /tmp/krb5cc_<uid> (sticky /tmp). libpq with gssencmode=prefer (its
# default) asks MIT Kerberos for credentials right after the TCP connect, and Kerberos opens
# that file with a blocking open(): a FIFO there hung every database-store login on the host
# (uid 0: sshd, login; the invoking user's uid: sudo, su) beyond pg_timeout_ms.
# A database pbx_ccache_<pid> on the test cluster, reached over TCP with TLS (sslmode=require),
# a pbxtest user enrolled with the built CLI, a test-only PAM service running the built module
# through pamtester. Each login with the FIFOs runs in a private /tmp (a mount namespace with a
# tmpfs, so no other process of the host sees them; where unshare is not possible, they go into
# the real /tmp and whatever was there is put back). Checks, as PASS:/FAIL: lines:
#   - PlantedCcacheFifoDoesNotHangLogin: with FIFOs at /tmp/krb5cc_0 and /tmp/krb5cc_65534, a
#     login (real uid 0) with a right code succeeds within pg_timeout_ms + 1 s;
#   - the same with real uid 65534 and effective uid 0 (what sudo and su look like);
#   - a wrong code is still refused (the database was asked).
# Every login is killed after 20 s (a hang is a FAIL, not a stuck test). Removes the user, the
# PAM file, the database and the temporary directory on exit.
set -euo pipefail
module=$(readlink -f "$1")
cli=$(readlink -f "$2")
plugin=$(readlink -f "$3")
cluster_dir=$4
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (creates a test user and a PAM service)"; exit 77; }
for tool in pamtester oathtool python3 useradd userdel setpriv timeout; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done
psql=/usr/lib/postgresql/15/bin/psql
[ -x "$psql" ] || { echo "FAIL: $psql missing (install postgresql-15)"; exit 1; }
if [ ! -s "$cluster_dir/conninfo" ] || [ ! -s "$cluster_dir/port" ]; then
  echo "FAIL: no test cluster in $cluster_dir (ctest fixture pg_cluster)"
  exit 1
fi
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGSSLMODE PGOPTIONS \
  PGGSSENCMODE KRB5CCNAME

admin_conninfo=$(cat "$cluster_dir/conninfo")   # over the socket, to make the database
port=$(cat "$cluster_dir/port")
db="pbx_ccache_$$"
# TCP: libpq never tries GSSAPI over a Unix socket. No gssencmode: the plugin's default counts.
conninfo="host=127.0.0.1 port=$port user=postgres dbname=$db sslmode=require"
timeout_ms=2500
user="pbxtest$$"
user=${user:0:31}
svc="pbxtest-ccache-$$"
other_uid=65534
# Outside /tmp: the logins below get a /tmp of their own.
tmp=$(mktemp -d /var/tmp/pbx-e2e-ccache.XXXXXX)
chmod 755 "$tmp"
# The module and the plugin too: the build tree may itself lie under /tmp (a CI clone), which
# the private /tmp of the logins would hide.
install -m 644 "$module" "$tmp/pam_pbx_totp.so"
install -m 644 "$plugin" "$tmp/pbx_store_postgresql.so"
module=$tmp/pam_pbx_totp.so
plugin=$tmp/pbx_store_postgresql.so
made_db=0
planted=()   # FIFOs put into the real /tmp (only without a mount namespace)
moved=()     # what was there before, "path backup"

restore_tmp() {
  local p pair
  for p in "${planted[@]}"; do rm -f "$p"; done
  planted=()
  for pair in "${moved[@]}"; do mv -f "${pair#* }" "${pair%% *}"; done
  moved=()
}
cleanup() {
  restore_tmp
  rm -f "/etc/pam.d/$svc"
  if id "$user" >/dev/null 2>&1; then userdel "$user" >/dev/null 2>&1 || true; fi
  if [ "$made_db" = 1 ]; then
    "$psql" -XAtq "$admin_conninfo" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
      echo "FAIL: could not drop database $db"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND"' ERR

fails=0
checks=0
pass() { checks=$((checks+1)); echo "PASS: $1"; }
fail() { checks=$((checks+1)); fails=$((fails+1)); echo "FAIL: $1"; }
check() {  # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

"$psql" -XAtq -v ON_ERROR_STOP=1 "$admin_conninfo" -c "CREATE DATABASE $db" >/dev/null
made_db=1
useradd -M -d /nonexistent -s /usr/sbin/nologin "$user"
mkdir -m 700 "$tmp/state"
conf=$tmp/pbx-mfa.conf
cat > "$conf" <<CONF
store = postgresql
pg_conninfo = $conninfo
pg_timeout_ms = $timeout_ms
pg_plugin = $plugin
fleet_key = $tmp/fleet.key
state_dir = $tmp/state
window = 3
recovery_codes = 0
CONF
chmod 644 "$conf"
cat > "/etc/pam.d/$svc" <<PAM
auth required $module config=$conf nodelay
account required pam_permit.so
PAM

"$cli" --config "$conf" db init >"$tmp/init.out" 2>&1 || { cat "$tmp/init.out"; echo "FAIL: db init"; exit 1; }
"$cli" --config "$conf" enroll --user "$user" --no-confirm --json --qr none >"$tmp/enroll.json" 2>"$tmp/enroll.err" || true
secret=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["secret"])' "$tmp/enroll.json" 2>/dev/null || true)
[ -n "$secret" ] || { cat "$tmp/enroll.err"; echo "FAIL: cannot enroll $user"; exit 1; }
step0=$(( $(date +%s) / 30 ))
code() { oathtool --totp -b "$secret" -N "@$(( (step0 + $1) * 30 ))"; }

# with_fifos COMMAND...: runs COMMAND with FIFOs (no writer) at /tmp/krb5cc_0 and
# /tmp/krb5cc_<other_uid>.
with_fifos() {
  if unshare --mount --propagation private true 2>/dev/null; then
    # shellcheck disable=SC2016  # expanded by the inner bash
    unshare --mount --propagation private bash -c '
      mount -t tmpfs -o mode=1777 tmpfs /tmp && mkfifo -m 600 /tmp/krb5cc_0 "/tmp/krb5cc_$1" &&
        shift && exec "$@"' with_fifos "$other_uid" "$@"
  else
    local p rc=0
    for p in /tmp/krb5cc_0 "/tmp/krb5cc_$other_uid"; do
      if [ -e "$p" ] || [ -L "$p" ]; then
        mv -f "$p" "$p.pbxtest-$$" && moved+=("$p $p.pbxtest-$$")
      fi
      mkfifo -m 600 "$p" && planted+=("$p")
    done
    "$@" || rc=$?
    restore_tmp
    return "$rc"
  fi
}

# login NAME ANSWER [RUID]: one login through pamtester (killed after 20 s), the answer on
# stdin, with the FIFOs planted; real uid RUID (effective uid 0) when given. Output in
# $tmp/NAME.out, exit status in $tmp/NAME.rc, wall time in $tmp/NAME.ms.
login() {
  local name=$1 answer=$2 ruid=${3:-} t0 t1 rc=0
  local -a run=(timeout -s KILL 20)
  [ -z "$ruid" ] || run+=(setpriv --ruid "$ruid")
  t0=$(date +%s%N)
  printf '%s\n' "$answer" | with_fifos "${run[@]}" pamtester "$svc" "$user" authenticate \
    >"$tmp/$name.out" 2>&1 || rc=$?
  t1=$(date +%s%N)
  echo "$rc" > "$tmp/$name.rc"
  echo $(( (t1 - t0) / 1000000 )) > "$tmp/$name.ms"
}
ms_of() { cat "$tmp/$1.ms"; }
succeeded() { [ "$(cat "$tmp/$1.rc")" = 0 ] && grep -qF "successfully authenticated" "$tmp/$1.out"; }
auth_failed() {
  [ "$(cat "$tmp/$1.rc")" != 0 ] && grep -qF "Authentication failure" "$tmp/$1.out"
}
in_time() { [ "$(ms_of "$1")" -lt $((timeout_ms + 1000)) ]; }

login fifo_root "$(code 0)"
echo "FIFOs planted, real uid 0: pamtester returned after $(ms_of fifo_root) ms (rc $(cat "$tmp/fifo_root.rc"), pg_timeout_ms = $timeout_ms)"
check "PlantedCcacheFifoDoesNotHangLogin: FIFO at /tmp/krb5cc_0, real uid 0: the right code logs in" \
  succeeded fifo_root
check "PlantedCcacheFifoDoesNotHangLogin: ... within pg_timeout_ms + 1000 ms ($(ms_of fifo_root) ms)" \
  in_time fifo_root

login fifo_user "$(code 1)" "$other_uid"
echo "FIFOs planted, real uid $other_uid: pamtester returned after $(ms_of fifo_user) ms (rc $(cat "$tmp/fifo_user.rc"))"
check "PlantedCcacheFifoDoesNotHangLogin: FIFO at /tmp/krb5cc_$other_uid, real uid $other_uid, effective uid 0 (sudo, su): the right code logs in" \
  succeeded fifo_user
check "PlantedCcacheFifoDoesNotHangLogin: ... within pg_timeout_ms + 1000 ms ($(ms_of fifo_user) ms)" \
  in_time fifo_user

login fifo_wrong "$(code 1)"
check "with the FIFOs, a used code is refused (PAM_AUTH_ERR: the database answered)" auth_failed fifo_wrong
check "... within pg_timeout_ms + 1000 ms ($(ms_of fifo_wrong) ms)" in_time fifo_wrong

if [ "$fails" -ne 0 ]; then
  for f in "$tmp"/*.out; do echo "--- $(basename "$f" .out):"; sed 's/^/  /' "$f"; done
  echo "db ccache fifo e2e: $checks checks, $fails failed"
  exit 1
fi
echo "db ccache fifo e2e: all $checks checks passed"

#!/usr/bin/env bash
# End-to-end: two "servers" sharing one PostgreSQL database, through the real module.
#   db_two_servers.sh MODULE_SO PBX_MFA_CLI PG_PLUGIN_SO CLUSTER_DIR
# CLUSTER_DIR is where tests/db/cluster.sh recorded the throwaway cluster (ctest fixture
# pg_cluster). Server A and server B are two config files, each with its own state_dir and its
# own copy of the fleet key, both with the same pg_conninfo: a database pbx_e2e_<pid> made for
# this test on the cluster's socket. Two test-only PAM services run the built module
# (pamtester, answers on stdin; codes computed with oathtool for a given step, window = 3, so
# nothing waits for the next 30 s step). A pbxtest user is enrolled once with the built CLI.
# Checks:
#   - a code accepted through A is refused through B, and the reverse with the next step;
#   - 3 wrong codes through A (max_failures = 3) lock the user out on B too; one
#     `pbx-mfa unlock` opens both again;
#   - the database unreachable: a refused port fails with PAM_AUTHINFO_UNAVAIL at once, a port
#     that never answers (pg_timeout_ms = 1000) within 1.0-1.6 s, without a prompt;
#   - break-glass codes of A (`pbx-mfa break-glass --json`): one logs in once through A while
#     the database is unreachable, not twice; while it is reachable a break-glass code is a
#     wrong code (counted as a failure, not spent);
#   - one `pbx-mfa reset --user` and both servers say "not enrolled";
#   - one event log: `pbx-mfa events --json` on B lists A's lockout, unlock and reset; A's
#     break-glass login stayed in A's file and only A lists it (when the events command exists).
# Prints PASS:/FAIL: lines, exits non-zero on a failure. Removes the user, the PAM files, the
# database, the listener and the temporary directory on exit.
set -euo pipefail
module=$(readlink -f "$1")
cli=$(readlink -f "$2")
plugin=$(readlink -f "$3")
cluster_dir=$4
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (creates a test user and PAM services)"; exit 77; }
for tool in pamtester oathtool python3 useradd userdel; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done
psql=/usr/lib/postgresql/15/bin/psql
[ -x "$psql" ] || { echo "FAIL: $psql missing (install postgresql-15)"; exit 1; }
[ -s "$cluster_dir/conninfo" ] || { echo "FAIL: no test cluster in $cluster_dir (ctest fixture pg_cluster)"; exit 1; }
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGSSLMODE PGOPTIONS

admin_conninfo=$(cat "$cluster_dir/conninfo")   # host=<socket dir> port=P user=postgres dbname=postgres
db="pbx_e2e_$$"
conninfo="${admin_conninfo/dbname=postgres/dbname=$db}"
user="pbxtest$$"
user=${user:0:31}
svc_a="pbxtest-db-a-$$"
svc_b="pbxtest-db-b-$$"
tmp=$(mktemp -d /tmp/pbx-e2e-db.XXXXXX)
chmod 755 "$tmp"
listener_pid=""
made_db=0

cleanup() {
  if [ -n "$listener_pid" ]; then kill "$listener_pid" 2>/dev/null || true; fi
  rm -f "/etc/pam.d/$svc_a" "/etc/pam.d/$svc_b"
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
sql() { "$psql" -XAtq -v ON_ERROR_STOP=1 "$conninfo" -c "$1"; }

useradd -M -d /nonexistent -s /usr/sbin/nologin "$user"

# A free loopback port nobody listens on (a stopped database server).
refused_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# write_config SERVER CONNINFO TIMEOUT_MS: the server's config file (root, 0644).
write_config() {
  local server=$1 ci=$2 timeout=$3
  cat > "$tmp/$server/pbx-mfa.conf" <<CONF
store = postgresql
pg_conninfo = $ci
pg_timeout_ms = $timeout
pg_plugin = $plugin
fleet_key = $tmp/$server/fleet.key
state_dir = $tmp/$server/state
window = 3
max_failures = 3
recovery_codes = 0
CONF
  chmod 644 "$tmp/$server/pbx-mfa.conf"
}
for s in a b; do
  mkdir -m 700 "$tmp/$s" "$tmp/$s/state"
  write_config "$s" "$conninfo" 2500
done
conf_a=$tmp/a/pbx-mfa.conf
conf_b=$tmp/b/pbx-mfa.conf
cat > "/etc/pam.d/$svc_a" <<PAM
auth required $module config=$conf_a nodelay
account required pam_permit.so
PAM
cat > "/etc/pam.d/$svc_b" <<PAM
auth required $module config=$conf_b nodelay
account required pam_permit.so
PAM

# login NAME SERVICE ANSWER: one login through pamtester, the answer on stdin; output in
# $tmp/NAME.out, exit status in $tmp/NAME.rc, wall time (process start to exit) in $tmp/NAME.ms.
login() {
  local name=$1 svc=$2 answer=$3 t0 t1 rc=0
  t0=$(date +%s%N)
  printf '%s\n' "$answer" | pamtester "$svc" "$user" authenticate >"$tmp/$name.out" 2>&1 || rc=$?
  t1=$(date +%s%N)
  echo "$rc" > "$tmp/$name.rc"
  echo $(( (t1 - t0) / 1000000 )) > "$tmp/$name.ms"
}
ms_of() { cat "$tmp/$1.ms"; }
out_has() { grep -qF -- "$2" "$tmp/$1.out"; }
succeeded() { [ "$(cat "$tmp/$1.rc")" = 0 ] && out_has "$1" "successfully authenticated"; }
auth_failed() {   # PAM_AUTH_ERR
  [ "$(cat "$tmp/$1.rc")" != 0 ] && out_has "$1" "Authentication failure" &&
    ! out_has "$1" "successfully authenticated"
}
unavailable() {   # PAM_AUTHINFO_UNAVAIL
  [ "$(cat "$tmp/$1.rc")" != 0 ] && out_has "$1" "Authentication service cannot retrieve authentication info" &&
    ! out_has "$1" "successfully authenticated"
}
not_prompted() { ! out_has "$1" "Security code:"; }
locked_refusal() { auth_failed "$1" && out_has "$1" "Too many wrong security codes"; }
plain_refusal() { [ "$(cat "$tmp/$1.rc")" != 0 ] && ! out_has "$1" "Too many wrong"; }
# status CONF FIELD: a field of `pbx-mfa status --json` for the user through that server.
status_field() {
  "$cli" --config "$1" status --user "$user" --json 2>/dev/null |
    python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print("null" if v is None else str(v).lower())' "$2"
}
field_is() { [ "$(status_field "$1" "$2")" = "$3" ]; }
locked_with() {   # CONF FAILURES: locked out (locked_until set) with that many failures
  [ "$(status_field "$1" locked_until)" != null ] && [ "$(status_field "$1" failures)" = "$2" ]
}
open_again() { [ "$(status_field "$1" locked_until)" = null ] && [ "$(status_field "$1" failures)" = 0 ]; }
no_files_in() { [ -z "$(find "$@" -mindepth 1 2>/dev/null)" ]; }
show() { echo "--- $1:"; sed 's/^/  /' "$tmp/$1.out"; }

# (1) The schema, the fleet key of A, a copy of it on B; one enrollment through A.
"$cli" --config "$conf_a" db init >"$tmp/init_a.out" 2>&1 && rc=0 || rc=$?
check "server A: pbx-mfa db init exits 0 and creates the fleet key (32 bytes, root, 0400/0600)" \
  test "$rc" = 0 -a "$(stat -c '%s %U' "$tmp/a/fleet.key" 2>/dev/null)" = "32 root"
[ "$rc" = 0 ] || cat "$tmp/init_a.out"
install -m 400 "$tmp/a/fleet.key" "$tmp/b/fleet.key"
"$cli" --config "$conf_b" db init >"$tmp/init_b.out" 2>&1 && rc=0 || rc=$?
check "server B (copy of A's key): pbx-mfa db init exits 0 (schema there, key matches)" test "$rc" = 0
[ "$rc" = 0 ] || cat "$tmp/init_b.out"
"$cli" --config "$conf_a" enroll --user "$user" --no-confirm --json --qr none >"$tmp/enroll.json" 2>"$tmp/enroll.err" && rc=0 || rc=$?
secret=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["secret"])' "$tmp/enroll.json" 2>/dev/null || true)
check "enrolled once through A (pbx-mfa enroll --no-confirm --json prints the secret)" \
  test "$rc" = 0 -a -n "$secret"
[ -n "$secret" ] || { cat "$tmp/enroll.err"; echo "FAIL: cannot go on without an enrollment"; exit 1; }
check "the database holds one enrollment row for the user" \
  test "$(sql "SELECT count(*) FROM pbx_mfa_enrollment WHERE user_name = '$user'")" = 1
check "the secret is not in the database in clear (sealed row)" \
  test "$(sql "SELECT count(*) FROM pbx_mfa_enrollment WHERE position(convert_to('$secret', 'UTF8') in sealed) > 0")" = 0
check "server B sees the enrollment (pbx-mfa status through B: enrolled)" field_is "$conf_b" enrolled true
check "nothing of the enrollment is kept in either state_dir" no_files_in "$tmp/a/state" "$tmp/b/state"

# Codes for time steps from the first one; window = 3 keeps them all valid for the ~2 min
# this test may take, and each accepted code moves the replay mark forward for both servers.
step0=$(( $(date +%s) / 30 ))
code() { oathtool --totp -b "$secret" -N "@$(( (step0 + $1) * 30 ))"; }
wrong_code() {   # a 6-digit code that is none of the steps -5..+10
  local valid c n
  valid=" $(for k in $(seq -5 10); do code "$k"; done | tr '\n' ' ')"
  n=$1
  while :; do
    c=$(printf '%06d' $(( (n * 104729 + 271828) % 1000000 )))
    [[ $valid == *" $c "* ]] || { echo "$c"; return; }
    n=$((n + 1))
  done
}

# (2) A code is accepted once across both servers.
login a_code0 "$svc_a" "$(code 0)"
check "A: the current code is accepted" succeeded a_code0
login b_code0 "$svc_b" "$(code 0)"
check "B: the same code is refused (already used through A)" auth_failed b_code0
check "A sees the refusal on B as a failure (status through A: failures 1)" field_is "$conf_a" failures 1
login b_code1 "$svc_b" "$(code 1)"
check "B: the next step's code is accepted" succeeded b_code1
login a_code1 "$svc_a" "$(code 1)"
check "A: that code is refused (already used through B)" auth_failed a_code1
login a_code2 "$svc_a" "$(code 2)"
check "A: a fresh code is accepted again (failures cleared)" succeeded a_code2
check "status through B: failures 0 after A's success" field_is "$conf_b" failures 0

# (3) Three wrong codes through A lock the user out on B too; one unlock opens both.
for i in 1 2 3; do login "a_wrong$i" "$svc_a" "$(wrong_code "$i")"; done
check "A: wrong code 1 is refused without a lockout message" plain_refusal a_wrong1
check "A: wrong code 2 is refused without a lockout message" plain_refusal a_wrong2
check "A: the third wrong code is refused and the user told to wait" locked_refusal a_wrong3
check "status through B: locked out (locked_until set, failures 3)" locked_with "$conf_b" 3
login b_locked "$svc_b" "$(code 3)"
check "B: a fresh right code is refused while locked out, with the lockout message" locked_refusal b_locked
check "B: no code prompt while locked out" not_prompted b_locked
"$cli" --config "$conf_a" unlock --user "$user" >"$tmp/unlock.out" 2>&1 && rc=0 || rc=$?
check "pbx-mfa unlock --user through A exits 0" test "$rc" = 0
check "status through B after the unlock: not locked, failures 0" open_again "$conf_b"
login a_unlocked "$svc_a" "$(code 3)"
check "A: a fresh code is accepted after the unlock" succeeded a_unlocked
login b_unlocked "$svc_b" "$(code 4)"
check "B: a fresh code is accepted after the unlock" succeeded b_unlocked

# (4) The database cannot be reached: fail closed, without a prompt, within the deadline.
write_config a "host=127.0.0.1 port=$refused_port user=postgres dbname=$db" 2500
login a_refused "$svc_a" "$(code 5)"
ms=$(ms_of a_refused)
echo "refused port: pamtester returned after $ms ms (pg_timeout_ms = 2500)"
check "A, refused port: PAM_AUTHINFO_UNAVAIL ('Authentication service cannot retrieve authentication info')" unavailable a_refused
check "A, refused port: no code prompt (no break-glass codes on this host)" not_prompted a_refused
check "A, refused port: within pg_timeout_ms + 1000 ms ($ms ms)" test "$ms" -lt 3500

# A server that accepts the connection (the kernel's backlog) and never answers.
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
time.sleep(600)
' > "$tmp/listener.port" &
listener_pid=$!
for _ in $(seq 50); do [ -s "$tmp/listener.port" ] && break; sleep 0.1; done
hung_port=$(cat "$tmp/listener.port")
write_config a "host=127.0.0.1 port=$hung_port user=postgres dbname=$db connect_timeout=30" 1000
login a_hung "$svc_a" "$(code 5)"
ms=$(ms_of a_hung)
echo "hung port: pamtester returned after $ms ms (pg_timeout_ms = 1000)"
check "A, port that never answers: PAM_AUTHINFO_UNAVAIL" unavailable a_hung
check "A, port that never answers: no code prompt" not_prompted a_hung
check "A, port that never answers: fails after 1.0-1.6 s with pg_timeout_ms = 1000 ($ms ms)" \
  test "$ms" -ge 1000 -a "$ms" -le 1600
kill "$listener_pid" 2>/dev/null || true
wait "$listener_pid" 2>/dev/null || true
listener_pid=""

# (5) Break-glass codes of server A: only while the database cannot be reached, each once.
"$cli" --config "$conf_a" break-glass --count 2 --json >"$tmp/bg.json" 2>"$tmp/bg.err" && rc=0 || rc=$?
mapfile -t bg < <(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["codes"]))' "$tmp/bg.json" 2>/dev/null || true)
bg_format='^[a-z0-9]{4}(-[a-z0-9]{4}){3}$'
two_codes() { [ "$rc" = 0 ] && [ "${#bg[@]}" = 2 ] && [[ ${bg[0]} =~ $bg_format ]] && [[ ${bg[1]} =~ $bg_format ]]; }
check "pbx-mfa break-glass --count 2 --json through A prints 2 codes xxxx-xxxx-xxxx-xxxx" two_codes
[ "${#bg[@]}" = 2 ] || { cat "$tmp/bg.err"; bg=(none-none-none-none none-none-none-none); }
check "the break-glass codes are kept in A's state_dir only (root, 0600)" \
  test "$(stat -c '%U %a' "$tmp/a/state/break-glass" 2>/dev/null)" = "root 600" -a ! -e "$tmp/b/state/break-glass"
write_config a "host=127.0.0.1 port=$refused_port user=postgres dbname=$db" 2500
login a_bg_first "$svc_a" "${bg[0]}"
check "A, database unreachable: a break-glass code logs in" succeeded a_bg_first
check "A, database unreachable: the user is told a break-glass code is needed" \
  out_has a_bg_first "break-glass code of this server is needed"
login a_bg_again "$svc_a" "${bg[0]}"
check "A, database unreachable: the same break-glass code again is refused (PAM_AUTHINFO_UNAVAIL)" unavailable a_bg_again
login a_bg_totp "$svc_a" "$(code 5)"
check "A, database unreachable: a TOTP code does not open the door (PAM_AUTHINFO_UNAVAIL)" unavailable a_bg_totp
login b_bg "$svc_b" "${bg[1]}"
check "B (database reachable, no break-glass codes of its own): A's unused code is a wrong code" auth_failed b_bg
write_config a "$conninfo" 2500
login a_bg_up "$svc_a" "${bg[1]}"
check "A, database reachable again: an unused break-glass code is refused (PAM_AUTH_ERR)" auth_failed a_bg_up
login a_bg_up_used "$svc_a" "${bg[0]}"
check "A, database reachable again: the used break-glass code is refused (PAM_AUTH_ERR)" auth_failed a_bg_up_used
check "... each counted as a wrong code (status through B: failures 3, locked out)" locked_with "$conf_b" 3
"$cli" --config "$conf_b" unlock --user "$user" >/dev/null 2>&1 || true
write_config a "host=127.0.0.1 port=$refused_port user=postgres dbname=$db" 2500
login a_bg_second "$svc_a" "${bg[1]}"
check "A, database unreachable again: the break-glass code refused while it was reachable was not spent" \
  succeeded a_bg_second
write_config a "$conninfo" 2500

# (6) One reset, and both servers say the user is not enrolled.
"$cli" --config "$conf_a" reset --user "$user" >"$tmp/reset.out" 2>&1 && rc=0 || rc=$?
check "pbx-mfa reset --user through A exits 0" test "$rc" = 0
check "status through A: not enrolled" field_is "$conf_a" enrolled false
check "status through B: not enrolled" field_is "$conf_b" enrolled false
"$cli" --config "$conf_b" status --user "$user" >"$tmp/status_b.out" 2>&1 || true
check "pbx-mfa status through B prints '$user: not enrolled'" grep -qx "$user: not enrolled" "$tmp/status_b.out"
check "the database holds no enrollment and no state row for the user" \
  test "$(sql "SELECT (SELECT count(*) FROM pbx_mfa_enrollment WHERE user_name = '$user') + (SELECT count(*) FROM pbx_mfa_state WHERE user_name = '$user')")" = 0
login a_reset "$svc_a" "$(code 6)"
login b_reset "$svc_b" "$(code 7)"
check "A: a code that would have been right is refused after the reset" auth_failed a_reset
check "B: a code that would have been right is refused after the reset" auth_failed b_reset

# (7) One event log for the fleet (pbx_mfa_event): what happened through A is listed by
# `pbx-mfa events --json` on B; A's break-glass login (the database unreachable) stayed in A's
# own file: A lists it with the table's events, B does not. Both "servers" run on this host,
# so the PAM service tells them apart. Needs the events command (issue 17).
# has_event FILE KIND SERVICE: FILE (one JSON event per line) holds an event of KIND by SERVICE.
has_event() {
  python3 - "$@" <<'PY'
import json, sys
path, kind, service = sys.argv[1:4]
events = [json.loads(line) for line in open(path) if line.strip()]
sys.exit(0 if any(e["event"] == kind and e["service"] == service for e in events) else 1)
PY
}
cli_events_of_b() { has_event "$tmp/events_b.out" unlock pbx-mfa && has_event "$tmp/events_b.out" reset pbx-mfa; }
no_break_glass_on_b() { ! has_event "$tmp/events_b.out" break-glass-accepted "$svc_a"; }
a_lists_both() {
  has_event "$tmp/events_a.out" break-glass-accepted "$svc_a" && has_event "$tmp/events_a.out" locked-out "$svc_a"
}
break_glass_in_file_only() {
  grep -q '"break-glass-accepted"' "$tmp/a/state/.events.log" &&
    [ "$(sql "SELECT count(*) FROM pbx_mfa_event WHERE event = 'break-glass-accepted'")" = 0 ]
}
# CLI11 prints the top-level help for an unknown subcommand's --help: look for it in the list.
if "$cli" --help 2>/dev/null | grep -qE '^  events +'; then
  "$cli" --config "$conf_b" events --json >"$tmp/events_b.out" 2>"$tmp/events_b.err" && rc=0 || rc=$?
  check "B: pbx-mfa events --json exits 0" test "$rc" = 0
  check "B lists the lockout of a login through A (locked-out, service $svc_a)" \
    has_event "$tmp/events_b.out" locked-out "$svc_a"
  check "B lists pbx-mfa unlock and reset run on A (the CLI's events)" cli_events_of_b
  check "B does not list A's break-glass login (it never reached the database)" no_break_glass_on_b
  "$cli" --config "$conf_a" events --json >"$tmp/events_a.out" 2>"$tmp/events_a.err" && rc=0 || rc=$?
  check "A: pbx-mfa events --json exits 0" test "$rc" = 0
  check "A lists its break-glass login (from its own file) with the table's events" a_lists_both
  check "the break-glass event is in A's file, not in the table" break_glass_in_file_only
  check "the table holds the lockout through A, with the user's name" \
    test "$(sql "SELECT count(*) > 0 FROM pbx_mfa_event WHERE event = 'locked-out' AND service = '$svc_a' AND user_name = '$user'")" = t
else
  echo "(pbx-mfa has no events command yet: the fleet event log is checked by the library tests only)"
fi

if [ "$fails" -ne 0 ]; then
  for f in "$tmp"/*.out; do show "$(basename "$f" .out)"; done
  echo "db two servers e2e: $checks checks, $fails failed"
  exit 1
fi
echo "db two servers e2e: all $checks checks passed"

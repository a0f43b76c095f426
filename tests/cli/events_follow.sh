#!/usr/bin/env bash
# pbx-mfa events --follow and --follow --notify through the real binary (as root):
#   events_follow.sh PBX_MFA PAM_MODULE PBX_PAM_LOGIN PBX_TEST_ENROLL
# 1. --follow --json prints what is in the log, then an event appended after it started, then
#    the rest of a log rotated under it and the new file's events, each once; SIGTERM and
#    SIGINT end it with status 0.
# 2. --follow --notify starts at the end of the log (events already there are not sent), runs
#    notify_command once per new event of a kind notify_events names, with exactly the event's
#    JSON line on stdin, within 5 s (the time from the append to the command's output file is
#    printed), and not for other kinds.
# 3. A command that hangs (sleep 600) is killed after notify_timeout and delays neither the
#    next event's command nor a login through the real module: logins (pbx-pam-login, a
#    private PAM service with the built module, a pbxtest user) are timed with no notifier
#    running and while the hanging command runs; both medians are printed and must be close.
# Prints PASS:/FAIL: lines; exit 1 on any FAIL, 77 without root or oathtool.
set -euo pipefail
cli=$(readlink -f "$1")
module=$(readlink -f "$2")
login=$(readlink -f "$3")
enroll=$(readlink -f "$4")
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (root-only event log, a test user)"; exit 77; }
command -v oathtool >/dev/null || { echo "SKIP: oathtool missing"; exit 77; }

tmp=$(mktemp -d /tmp/pbxtest-events.XXXXXX)
chmod 0755 "$tmp"
user=pbxtest-ev$$
pids=()
failed=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ -s "$tmp/out/hang.pid" ]; then kill -KILL "$(cat "$tmp/out/hang.pid")" 2>/dev/null || true; fi
  userdel "$user" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND"' ERR

now_ms() { date +%s%3N; }
# wait_for MS COMMAND...: true once COMMAND succeeds, false after MS milliseconds.
wait_for() {
  local limit=$(($(now_ms) + $1))
  shift
  until "$@"; do
    (($(now_ms) < limit)) || return 1
    sleep 0.02
  done
}
lines_in() { [ -f "$1" ] && [ "$(grep -c . "$1")" -ge "$2" ]; }
outputs() { find "$tmp/out" -maxdepth 1 -name "$1.*.json" | wc -l; }
has_outputs() { [ "$(outputs "$1")" -ge "$2" ]; }
# One event as the library writes it (event_to_json: these fields, this order).
event() {  # KIND USER
  printf '{"time":"%s","host":"pbxtest-host","service":"sshd","user":"%s","rhost":"203.0.113.5","event":"%s","actor":"","detail":"test %s"}' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$2" "$1" "$RANDOM"
}
append() { printf '%s\n' "$1" >>"$tmp/state/.events.log"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mkdir -m 0700 "$tmp/state" "$tmp/secrets" "$tmp/pam.d"
mkdir -m 0755 "$tmp/bin" "$tmp/out"
install -m 0600 /dev/null "$tmp/state/.events.log"
# notify_command: saves its stdin as KIND.PID.json; break-glass-accepted hangs.
cat >"$tmp/bin/notify" <<EOF
#!/bin/sh
if [ "\$PBX_MFA_EVENT" = break-glass-accepted ]; then
  echo \$\$ > $tmp/out/hang.pid
  exec sleep 600
fi
cat > $tmp/out/.\$\$.tmp
mv $tmp/out/.\$\$.tmp $tmp/out/\$PBX_MFA_EVENT.\$\$.json
EOF
chmod 0755 "$tmp/bin/notify"
conf=$tmp/pbx-mfa.conf
cat >"$conf" <<EOF
secret_path = $tmp/secrets/%u
state_dir = $tmp/state
# The timed logins use wrong codes: no lockout in between.
max_failures = 1000
notify_command = $tmp/bin/notify
notify_events = locked-out,recovery,break-glass
notify_timeout = 10
notify_rate = 100
EOF
chmod 0644 "$conf"

# --- 1. --follow -----------------------------------------------------------------------------
first=$(event reset "$user")
append "$first"
"$cli" --config "$conf" events --follow --json >"$tmp/follow.out" 2>"$tmp/follow.err" &
follower=$!
pids+=("$follower")
if wait_for 5000 lines_in "$tmp/follow.out" 1; then
  pass "--follow printed the event already in the log"
else
  fail "--follow printed nothing within 5 s: $(cat "$tmp/follow.err")"
fi
second=$(event unlock "$user")
t0=$(now_ms)
append "$second"
if wait_for 5000 lines_in "$tmp/follow.out" 2; then
  pass "--follow printed an event appended after it started, $(($(now_ms) - t0)) ms after the append"
else
  fail "--follow did not print the appended event within 5 s"
fi
# A rotation under it, as the library does it: the old file renamed to .1, a new one.
third=$(event reset "$user")
append "$third"
mv "$tmp/state/.events.log" "$tmp/state/.events.log.1"
install -m 0600 /dev/null "$tmp/state/.events.log"
fourth=$(event unlock "$user")
append "$fourth"
wait_for 5000 lines_in "$tmp/follow.out" 4 || true
sleep 1.2  # two more polls: nothing may come twice
if [ "$(cat "$tmp/follow.out")" = "$(printf '%s\n' "$first" "$second" "$third" "$fourth")" ]; then
  pass "--follow --json printed the library's lines, each once, across a rotation"
else
  fail "--follow output differs: $(cat "$tmp/follow.out")"
fi
kill -TERM "$follower"
rc=0
wait "$follower" || rc=$?
[ "$rc" = 0 ] && pass "--follow ends with status 0 on SIGTERM" || fail "--follow exit $rc on SIGTERM"
"$cli" --config "$conf" events --follow >"$tmp/follow2.out" 2>&1 &
follower=$!
pids+=("$follower")
wait_for 5000 lines_in "$tmp/follow2.out" 2 || true
kill -INT "$follower"
rc=0
wait "$follower" || rc=$?
[ "$rc" = 0 ] && pass "--follow ends with status 0 on SIGINT" || fail "--follow exit $rc on SIGINT"

# --- baseline logins, no notifier running -----------------------------------------------------
useradd -M -s /bin/sh "$user"
secret=3132333435363738393031323334353637383930
"$enroll" "$conf" "$user" "$secret"
printf 'auth required %s config=%s nodelay\n' "$module" "$conf" >"$tmp/pam.d/pbxtest-events"
# A code no step of the window accepts.
wrong_code() {
  local t now ok=() c
  now=$(date +%s)
  for t in $((now - 60)) $((now - 30)) "$now" $((now + 30)) $((now + 60)); do
    ok+=("$(oathtool --totp -N "@$t" "$secret")")
  done
  for c in 000000 111111 222222 333333 444444 555555 666666 777777; do
    case " ${ok[*]} " in *" $c "*) ;; *) echo "$c"; return ;; esac
  done
}
time_logins() {  # N: prints each login's milliseconds
  local i t0 rc
  for ((i = 0; i < $1; i++)); do
    local code
    code=$(wrong_code)
    t0=$(now_ms)
    rc=0
    printf '%s\n' "$code" | "$login" --confdir "$tmp/pam.d" --service pbxtest-events "$user" \
      >"$tmp/login.out" 2>&1 || rc=$?
    echo $(($(now_ms) - t0))
    if [ "$rc" != 1 ] || ! grep -q 'result: PAM_AUTH_ERR' "$tmp/login.out"; then
      echo "FAIL: login $i: exit $rc, expected a refused code: $(cat "$tmp/login.out")" >&2
      return 1
    fi
  done
}
time_logins 1 >/dev/null  # warm the caches
base=$(time_logins 7 | median)
echo "INFO: login with no notifier running: median ${base} ms (7 logins)"

# --- 2. --notify ------------------------------------------------------------------------------
append "$(event locked-out "$user")"  # before the notifier: never sent
"$cli" --config "$conf" events --follow --notify >"$tmp/notify.out" 2>"$tmp/notify.err" &
notifier=$!
pids+=("$notifier")
if wait_for 5000 grep -q "from its end" "$tmp/notify.err"; then
  pass "--notify started: $(head -1 "$tmp/notify.err")"
else
  fail "--notify did not start: $(cat "$tmp/notify.err")"
fi
sleep 1.2
if [ "$(outputs '*')" = 0 ]; then
  pass "--notify starts at the end of the log: the event already there was not sent"
else
  fail "--notify sent an event from before it started"
fi
latencies=()
for i in 1 2 3; do
  line=$(event locked-out "$user")
  t0=$(now_ms)
  append "$line"
  if wait_for 5000 has_outputs locked-out "$i"; then
    ms=$(($(now_ms) - t0))
    latencies+=("$ms")
    newest=$(ls -t "$tmp"/out/locked-out.*.json | head -1)
    if [ "$(cat "$newest")" = "$line" ] && [ "$(wc -c <"$newest")" = $((${#line} + 1)) ]; then
      pass "notify_command ran $ms ms after event $i was appended, with exactly its JSON line on stdin"
    else
      fail "notify_command's stdin for event $i: '$(cat "$newest")' != '$line'"
    fi
  else
    fail "notify_command did not run within 5 s of event $i"
  fi
done
echo "INFO: notify latency (append to the command's output file): ${latencies[*]} ms"
append "$(event unlock "$user")"
sleep 1.5
if [ "$(outputs locked-out)" = 3 ] && [ "$(outputs unlock)" = 0 ]; then
  pass "once per event (3 locked-out runs), none for unlock (not in notify_events)"
else
  fail "runs: locked-out $(outputs locked-out) (want 3), unlock $(outputs unlock) (want 0)"
fi

# --- 3. a hanging command ---------------------------------------------------------------------
t_hang=$(now_ms)
append "$(event break-glass-accepted "$user")"
wait_for 5000 test -s "$tmp/out/hang.pid" || fail "the hanging command did not start within 5 s"
hang_pid=$(cat "$tmp/out/hang.pid")
line=$(event recovery-code-accepted "$user")
t0=$(now_ms)
append "$line"
if wait_for 5000 has_outputs recovery-code-accepted 1; then
  pass "the next event's command ran $(($(now_ms) - t0)) ms after its append while the first hangs"
else
  fail "the next event's command did not run within 5 s while another hangs"
fi
with=$(time_logins 7 | median)
if kill -0 "$hang_pid" 2>/dev/null; then
  pass "the logins were timed while the hanging command ran (pid $hang_pid)"
else
  fail "the hanging command ended before the logins were timed"
fi
echo "INFO: login while notify_command hangs: median ${with} ms; with no notifier: ${base} ms"
if ((with - base < 300)); then
  pass "a hanging notify_command delays no login (median ${with} ms vs ${base} ms)"
else
  fail "logins took ${with} ms with a hanging notify_command, ${base} ms without"
fi
# notify_timeout = 10: SIGTERM to its process group (sleep dies of it).
if wait_for 14000 grep -q "notify_command killed after 10 s (notify_timeout) for event break-glass-accepted" "$tmp/notify.err" &&
   wait_for 3000 bash -c "! kill -0 $hang_pid 2>/dev/null"; then
  pass "the hanging command was killed $(($(now_ms) - t_hang)) ms after its event (notify_timeout 10 s)"
else
  fail "the hanging command was not killed: $(cat "$tmp/notify.err")"
fi
kill -TERM "$notifier"
rc=0
wait "$notifier" || rc=$?
[ "$rc" = 0 ] && pass "--notify ends with status 0 on SIGTERM" || fail "--notify exit $rc on SIGTERM"
grep -q "notify: stopped; notify_command ran 5 time(s), 0 failed, 1 killed" "$tmp/notify.err" &&
  pass "its summary: $(tail -1 "$tmp/notify.err")" || fail "summary: $(tail -1 "$tmp/notify.err")"
[ -s "$tmp/notify.out" ] && fail "--notify printed on stdout: $(cat "$tmp/notify.out")"

exit "$failed"

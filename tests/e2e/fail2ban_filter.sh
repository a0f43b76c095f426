#!/usr/bin/env bash
# The shipped fail2ban filter and jail against lines the real module wrote:
#   fail2ban_filter.sh MODULE_SO PBX_MFA TEMP_CODE_TOOL PG_PLUGIN FAIL2BAN_DIR
# (FAIL2BAN_DIR: config/fail2ban of the source tree, with filter.d/pbx-mfa.conf and
# jail.d/pbx-mfa.conf; PG_PLUGIN: the database store's plugin, for a config whose database
# cannot be reached: break-glass codes). Logins through pamtester and the real libpam, a test-only PAM service
# /etc/pam.d/pbxtest-f2b-PID naming the built module (pamtester -I rhost= sets the remote host),
# test users pbxtest-f2b-{a,b,n} enrolled with pbx-mfa in a sandbox config. The syslog lines are
# caught exactly as pam_syslog sent them on a socket bound over /dev/log in a private mount
# namespace. Each login's line must have the outcome expected; then the real fail2ban-regex,
# with the filter from the source tree (in a copy of /etc/fail2ban), must match exactly the
# failures from a remote host (wrong-code, replayed-code, locked-out, unknown-user,
# not-enrolled, break-glass-wrong) with that host, in two log formats (traditional and RFC 3339 syslog files),
# and nothing else: no success (accepted, recovery-code-accepted, grace-period,
# temp-code-accepted, break-glass-accepted), no exemption, no local login (rhost=-), no host a user name tries to
# inject. The jail example ships with every line commented out; uncommented, fail2ban-client -t
# accepts it, and its filter finds the failures in the log it names.
# Prints PASS:/FAIL: lines; removes its users, PAM file and temp dir on exit.
set -euo pipefail
usage="usage: fail2ban_filter.sh MODULE_SO PBX_MFA TEMP_CODE_TOOL PG_PLUGIN FAIL2BAN_DIR"
module=$(readlink -f "${1:?$usage}")
cli=$(readlink -f "${2:?$usage}")
temp_code_tool=$(readlink -f "${3:?$usage}")
plugin=$(readlink -f "${4:?$usage}")
f2b_src=$(readlink -f "${5:?$usage}")
started=$SECONDS
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (test users, a PAM service file)"; exit 77; }
for tool in pamtester oathtool python3 unshare mount useradd userdel fail2ban-regex fail2ban-client; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done

# A private mount namespace, so a socket can be bound over /dev/log for this test alone.
if [ -z "${PBX_F2B_IN_NS:-}" ]; then
  if unshare --mount --propagation private true 2>/dev/null; then
    PBX_F2B_IN_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
  fi
  echo "FAIL: no private mount namespace can be made to catch the module's syslog lines"
  exit 1
fi

users=(pbxtest-f2b-a pbxtest-f2b-b pbxtest-f2b-n)
service="pbxtest-f2b-$$"
service_opt="pbxtest-f2b-opt-$$"
service_bg="pbxtest-f2b-bg-$$"
tmp=$(mktemp -d /tmp/pbxtest-f2b.XXXXXX)
chmod 755 "$tmp"
log=$tmp/syslog
listener_pid=""
made_dev_log=0
fails=0
pass() { echo "PASS: $1"; }
fail() { fails=$((fails + 1)); echo "FAIL: $1"; }

remove_users() {
  local u
  for u in "${users[@]}"; do
    if id "$u" >/dev/null 2>&1; then userdel "$u" >/dev/null 2>&1 || true; fi
  done
}
cleanup() {
  set +e
  rm -f "/etc/pam.d/$service" "/etc/pam.d/$service_opt" "/etc/pam.d/$service_bg"
  remove_users
  if [ -n "$listener_pid" ]; then kill "$listener_pid" 2>/dev/null; fi
  umount /dev/log 2>/dev/null
  # The empty file made as a mount point (no syslog daemon here), if it is still that.
  if [ $made_dev_log = 1 ] && [ -f /dev/log ] && [ ! -L /dev/log ] && [ ! -s /dev/log ]; then
    rm -f /dev/log
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND"' ERR

# ---- the syslog listener: each datagram one line, as sent -------------------------------------
sock=$tmp/log.sock
python3 - "$sock" "$log" <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
open(out + ".ready", "w").close()
with open(out, "a", buffering=1, errors="replace") as f:
    while True:
        data = s.recv(65536)
        f.write(data.decode("utf-8", "replace").rstrip("\n").replace("\n", " ") + "\n")
PY
listener_pid=$!
for _ in $(seq 50); do [ -e "$log.ready" ] && break; sleep 0.1; done
[ -e "$log.ready" ] || { echo "FAIL: the syslog listener did not start"; exit 1; }
# A bind mount needs something to mount over: without a syslog daemon there is no /dev/log, and
# an empty file stands in while the test runs (programs outside see a /dev/log that takes no
# lines, as none did before); removed on exit.
if [ ! -e /dev/log ] && [ ! -L /dev/log ]; then
  : >/dev/log
  made_dev_log=1
fi
mount --bind "$sock" /dev/log
logger -p authpriv.notice -t pbxtest "listener check"
for _ in $(seq 30); do grep -q 'listener check' "$log" 2>/dev/null && break; sleep 0.1; done
grep -q '^<85>.*pbxtest.*listener check' "$log" ||
  { echo "FAIL: syslog lines are not caught: $(cat "$log")"; exit 1; }
: >"$log"

# ---- users, configs, PAM services -------------------------------------------------------------
remove_users  # leftovers of an interrupted run
for u in "${users[@]}"; do useradd -M -d /nonexistent -s /usr/sbin/nologin "$u"; done
mkdir -m 700 "$tmp/secrets" "$tmp/state"
# Three failures lock a user; a login from the host of the last success within 5 minutes passes
# (grace_period); 192.0.2.0/24 is exempt.
cat >"$tmp/pbx-mfa.conf" <<CONF
secret_path = $tmp/secrets/%u
state_dir = $tmp/state
require = all
max_failures = 3
lockout = 600
grace_period = 300
exempt_networks = 192.0.2.0/24
window = 1
CONF
sed 's/^require = all$/require = none/' "$tmp/pbx-mfa.conf" >"$tmp/pbx-mfa-opt.conf"
# The database store on a loopback port nobody listens on: a break-glass code is asked for.
refused_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -m 700 "$tmp/bg"
head -c 32 /dev/urandom >"$tmp/bg/fleet.key"
chmod 600 "$tmp/bg/fleet.key"
cat >"$tmp/pbx-mfa-bg.conf" <<CONF
store = postgresql
pg_conninfo = host=127.0.0.1 port=$refused_port user=postgres dbname=pbx_none
pg_timeout_ms = 1000
pg_plugin = $plugin
fleet_key = $tmp/bg/fleet.key
state_dir = $tmp/bg
CONF
chmod 644 "$tmp/pbx-mfa.conf" "$tmp/pbx-mfa-opt.conf" "$tmp/pbx-mfa-bg.conf"
for s in "$service:$tmp/pbx-mfa.conf" "$service_opt:$tmp/pbx-mfa-opt.conf" \
  "$service_bg:$tmp/pbx-mfa-bg.conf"; do
  cat >"/etc/pam.d/${s%%:*}" <<PAM
# test-only service of tests/e2e/fail2ban_filter.sh; removed when it ends
auth     required  $module config=${s#*:} nodelay
account  required  pam_permit.so
PAM
done

enroll() {  # USER: enrolls USER with pbx-mfa; sets $secret and $recovery
  local json
  json=$("$cli" --config "$tmp/pbx-mfa.conf" enroll --user "$1" --no-confirm --json </dev/null)
  secret=$(sed -n 's/.*"secret" *: *"\([A-Z2-7]*\)".*/\1/p' <<<"$json")
  recovery=$(sed -n 's/.*"recovery_codes" *: *\[ *"\([a-z-]*\)".*/\1/p' <<<"$json")
  if [ -z "$secret" ] || [ -z "$recovery" ]; then echo "FAIL: pbx-mfa enroll $1: $json"; exit 1; fi
}
enroll pbxtest-f2b-b
secret_b=$secret
enroll pbxtest-f2b-a
secret_a=$secret

# ---- the logins --------------------------------------------------------------------------------
# login SERVICE USER RHOST ANSWER WANT [MATCH]: one pamtester login (RHOST "" = local), the
# module's one line for it must say outcome=WANT; MATCH=match puts the line on the list that the
# filter must match (with RHOST), anything else on the list it must not.
n_logins=0
: >"$tmp/want-matched"
: >"$tmp/want-missed"
login() {
  local svc=$1 user=$2 rhost=$3 answer=$4 want=$5 match=${6:-} items=() before line
  [ -z "$rhost" ] || items=(-I "rhost=$rhost")
  before=$(wc -l <"$log")
  printf '%s\n' "$answer" | pamtester "${items[@]}" "$svc" "$user" authenticate >/dev/null 2>&1 || true
  n_logins=$((n_logins + 1))
  line=""
  for _ in $(seq 50); do
    line=$(tail -n +"$((before + 1))" "$log" | grep -F 'pam_pbx_totp(' || true)
    [ -z "$line" ] || break
    sleep 0.1
  done
  if [ "$(grep -c . <<<"$line")" != 1 ]; then
    fail "login $n_logins ($user from ${rhost:-here}): not one syslog line but: '$line'"
    return 0
  fi
  if [[ $line == *" outcome=$want"* ]]; then
    pass "login $n_logins: $user from ${rhost:-here}: outcome=$want"
  else
    fail "login $n_logins: $user from ${rhost:-here}: expected outcome=$want: $line"
  fi
  if [ "$match" = match ]; then
    printf '%s %s\n' "$rhost" "$line" >>"$tmp/want-matched"
  else
    printf '%s\n' "$line" >>"$tmp/want-missed"
  fi
}
wrong_code() {  # SECRET: a 6-digit code that is none of the window's
  local c
  c=$(oathtool --totp -b "$1")
  printf '%06d' $(((10#$c + 500000) % 1000000))
}

code_a=$(oathtool --totp -b "$secret_a")
login "$service" pbxtest-f2b-a 198.51.100.1 "$code_a" accepted
login "$service" pbxtest-f2b-a 198.51.100.1 "" grace-period
login "$service" pbxtest-f2b-a 203.0.113.2 "$code_a" replayed-code match
login "$service" pbxtest-f2b-a 203.0.113.1 "$(wrong_code "$secret_a")" wrong-code match
login "$service" pbxtest-f2b-a 198.51.100.2 "$recovery" recovery-code-accepted
login "$service" pbxtest-f2b-a "" "$(wrong_code "$secret_a")" wrong-code            # local
login "$service" pbxtest-f2b-a 192.0.2.9 "" exempt
login "$service" pbxtest-f2b-a 2001:db8::7 "$(wrong_code "$secret_a")" wrong-code match
if tc=$("$temp_code_tool" "$tmp/pbx-mfa.conf" pbxtest-f2b-a 2>&1); then
  login "$service" pbxtest-f2b-a 198.51.100.3 "$tc" temp-code-accepted
else
  fail "temp code for pbxtest-f2b-a: $tc"
fi
# Three wrong codes lock pbxtest-f2b-b; the next login is refused without a prompt.
for _ in 1 2 3; do
  login "$service" pbxtest-f2b-b 203.0.113.3 "$(wrong_code "$secret_b")" wrong-code match
done
login "$service" pbxtest-f2b-b 203.0.113.3 "" locked-out match
login "$service" pbxtest-f2b-n 203.0.113.5 123456 not-enrolled match
login "$service_opt" pbxtest-f2b-n 198.51.100.5 "" not-enrolled-not-required
login "$service" pbxtest-f2b-nobody 203.0.113.4 123456 unknown-user match
# The database down: a wrong break-glass code counts, a right one is a success.
if bg=$("$cli" --config "$tmp/pbx-mfa-bg.conf" break-glass --count 1 --json 2>&1) &&
  bg=$(sed -n 's/.*"codes" *: *\[ *"\([a-z0-9-]*\)".*/\1/p' <<<"$bg") && [ -n "$bg" ]; then
  login "$service_bg" pbxtest-f2b-n 203.0.113.6 aaaa-bbbb-cccc-dddd break-glass-wrong match
  login "$service_bg" pbxtest-f2b-n 198.51.100.6 "$bg" break-glass-accepted
else
  fail "pbx-mfa break-glass --count 1 --json: $bg"
fi
# Hostile user names: no host of theirs may be read (the module escapes the space; a name
# without one is still one field).
login "$service" 'rhost=6.6.6.6' "" 123456 unknown-user
login "$service" 'x rhost=6.6.6.6 outcome=wrong-code' "" 123456 unknown-user
login "$service" 'rhost=6.6.6.6' 203.0.113.7 123456 unknown-user match
login "$service" 'x rhost=6.6.6.7 outcome=wrong-code (failures 1)' 203.0.113.8 123456 unknown-user match

# ---- fail2ban-regex with the filter of the source tree ----------------------------------------
# A copy of the system's fail2ban configuration (common.conf, paths) with our filter in it.
conf=$tmp/fail2ban
cp -a /etc/fail2ban "$conf"
rm -f "$conf"/jail.d/* "$conf"/jail.local
cp "$f2b_src/filter.d/pbx-mfa.conf" "$conf/filter.d/pbx-mfa.conf"
host=$(hostname)
# What rsyslog writes: "<PRI>Mmm dd hh:mm:ss tag[pid]: msg" as "Mmm dd hh:mm:ss HOST tag[pid]:
# msg" (traditional) or "YYYY-MM-DDThh:mm:ss.uuuuuu+00:00 HOST tag[pid]: msg" (Debian 12's
# default RFC 3339 form); the journal shows the traditional one.
sed -E "s/^<[0-9]+>(.{15}) /\1 $host /" "$log" >"$tmp/auth.log"
sed -E "s/^<[0-9]+>.{15} /$(date -u +%Y-%m-%dT%H:%M:%S.000000+00:00) $host /" "$log" >"$tmp/auth-rfc3339.log"
# The log holds other programs' lines too (useradd, pbx-mfa): they must not match either.
lines=$(grep -cF 'pam_pbx_totp(' "$log" || true)
want_n=$(wc -l <"$tmp/want-matched")
if [ "$lines" = "$n_logins" ]; then
  pass "$n_logins logins, $lines syslog lines from the module ($(wc -l <"$log") lines in all)"
else
  fail "$n_logins logins but $lines syslog lines from the module: $(cat "$log")"
fi
# "HOST ... pamtester: pam_pbx_totp(...): ..." as "HOST pam_pbx_totp(...): ..." (pam_syslog's
# tag is the program's name, with [PID] when the program opened syslog with LOG_PID).
strip_prefix() { sed -E 's/^(\S+) .* pamtester(\[[0-9]+\])?: /\1 /'; }
for f in auth.log auth-rfc3339.log; do
  if ! fail2ban-regex -o '<ip> <msg>' "$tmp/$f" "$conf/filter.d/pbx-mfa.conf" >"$tmp/$f.out" 2>&1; then
    fail "fail2ban-regex $f: $(cat "$tmp/$f.out")"
    continue
  fi
  # fail2ban-regex prints "<ip> <line>" per failure; compare the hosts and the module's text.
  got=$(strip_prefix <"$tmp/$f.out")
  want=$(strip_prefix <"$tmp/want-matched")
  if [ "$got" = "$want" ]; then
    pass "fail2ban-regex ($f): exactly the $want_n failures from a remote host match, each with its host: $(cut -d' ' -f1 <<<"$got" | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
  else
    fail "fail2ban-regex ($f) matched something else than the failures from a remote host"
    diff <(echo "$want") <(echo "$got") | sed 's/^/  /' || true
  fi
  if grep -qF '6.6.6.' <<<"$(cut -d' ' -f1 "$tmp/$f.out")"; then
    fail "fail2ban-regex ($f): a host from a user name was read: $(grep -F 6.6.6. "$tmp/$f.out")"
  else
    pass "fail2ban-regex ($f): no host taken from a user name"
  fi
done
# The missed lines, one by one (a line the filter must not match, alone in its file).
missed_ok=1
while IFS= read -r line; do
  sed -E "s/^<[0-9]+>(.{15}) /\1 $host /" <<<"$line" >"$tmp/one.log"
  if [ -n "$(fail2ban-regex -o '<ip>' "$tmp/one.log" "$conf/filter.d/pbx-mfa.conf" 2>&1)" ]; then
    fail "the filter matches a line it must not: $line"
    missed_ok=0
  fi
done <"$tmp/want-missed"
[ $missed_ok = 0 ] ||
  pass "no match for the $(wc -l <"$tmp/want-missed") successes, exemptions, local and hostile-name lines"

# ---- the jail example -------------------------------------------------------------------------
jail_src=$f2b_src/jail.d/pbx-mfa.conf
if [ -f "$jail_src" ] && ! grep -qvE '^(#.*)?$' "$jail_src"; then
  pass "the jail example is all comments (installing it bans nobody)"
else
  fail "the jail example has active lines: $(grep -vE '^(#.*)?$' "$jail_src" 2>&1)"
fi
# Uncommented (lines "#key = value" and "#[section]", not the "##" alternatives) as shipped:
# the journal (backend = systemd).
sed -nE 's/^#(\[|[a-z_]+ *=)/\1/p' "$jail_src" >"$conf/jail.d/pbx-mfa.local"
if grep -qx '\[pbx-mfa\]' "$conf/jail.d/pbx-mfa.local" &&
  grep -qE '^enabled *= *true' "$conf/jail.d/pbx-mfa.local" &&
  grep -qE '^filter *= *pbx-mfa' "$conf/jail.d/pbx-mfa.local" &&
  grep -qE '^backend *= *systemd' "$conf/jail.d/pbx-mfa.local"; then
  pass "the jail example, uncommented: [pbx-mfa], enabled, filter pbx-mfa, backend systemd"
else
  fail "the jail example, uncommented: $(cat "$conf/jail.d/pbx-mfa.local")"
fi
if out=$(fail2ban-client -c "$conf" -t 2>&1) && grep -q 'OK: configuration test is successful' <<<"$out"; then
  pass "fail2ban-client -t accepts the jail example uncommented (journal)"
else
  fail "fail2ban-client -t, the jail example uncommented: $out"
fi
# The journalmatch of the filter (SYSLOG_FACILITY=10) is where the module's lines are:
# authpriv, the facility of every one of them (PRI / 8 = 10).
if awk -F'[<>]' '/pam_pbx_totp\(/ { if (int($2 / 8) != 10) bad++ } END { exit bad > 0 }' "$log"; then
  pass "every line of the module is in facility authpriv (10), the filter's journalmatch"
else
  fail "a line of the module outside authpriv: $(grep -F 'pam_pbx_totp(' "$log" | grep -v '^<8[0-7]>' | head -3)"
fi
# The log file variant (its "##" lines): the test log as logpath.
sed -E "s|^backend *=.*|backend  = polling\nlogpath  = $tmp/auth.log|" "$conf/jail.d/pbx-mfa.local" \
  >"$conf/jail.d/pbx-mfa.local.new"
mv "$conf/jail.d/pbx-mfa.local.new" "$conf/jail.d/pbx-mfa.local"
if out=$(fail2ban-client -c "$conf" -t 2>&1) && grep -q 'OK: configuration test is successful' <<<"$out"; then
  pass "fail2ban-client -t accepts the jail example with a log file"
else
  fail "fail2ban-client -t, the jail example with a log file: $out"
fi
dump=$(fail2ban-client -c "$conf" -d 2>&1 || true)
if grep -qF "['add', 'pbx-mfa'" <<<"$dump" && grep -qF "['set', 'pbx-mfa', 'addlogpath', '$tmp/auth.log'" <<<"$dump" &&
  grep -F "['set', 'pbx-mfa', 'addfailregex'" <<<"$dump" | grep -qF 'outcome=(?:wrong-code'; then
  pass "fail2ban-client -d: jail pbx-mfa with the filter's failregex and the log path"
else
  fail "fail2ban-client -d has no jail pbx-mfa with our filter: $(grep pbx-mfa <<<"$dump" | head -20)"
fi
# The jail's settings (maxretry, findtime, ...) as fail2ban-regex reads them from the jail.
jail_out=$(fail2ban-regex -c "$conf" -o '<ip>' "$tmp/auth.log" pbx-mfa 2>&1 | sort | uniq -c | awk '{print $2 "×" $1}' | paste -sd' ' -)
if [ "$jail_out" = "$(sort "$tmp/want-matched" | cut -d' ' -f1 | uniq -c | awk '{print $2 "×" $1}' | paste -sd' ' -)" ]; then
  pass "fail2ban-regex by name through the config dir finds the same hosts: $jail_out"
else
  fail "fail2ban-regex by name: $jail_out"
fi

echo
if [ $fails -ne 0 ]; then
  echo "fail2ban filter e2e: $fails checks failed ($((SECONDS - started)) s)"
  exit 1
fi
echo "fail2ban filter e2e: all checks passed ($((SECONDS - started)) s)"

#!/usr/bin/env bash
# End-to-end: the delegated helpdesk through the real sudo and the real pbx-mfa binary.
#   helpdesk_sudo.sh PBX_MFA
# Test users and groups (pbxtest-*): helpdesk members pbxtest-hd1 and pbxtest-hd2 (group
# pbxtest-helpdesk), pbxtest-target, pbxtest-prot (group pbxtest-protected, in protected_groups) and
# pbxtest-adm (given pbx-mfa through sudo but in no helpdesk group). A test-only sudoers file
# /etc/sudoers.d/pbxtest-helpdesk (NOPASSWD, checked with visudo -c) gives the group and
# pbxtest-adm a copy of the binary. A helpdesk member may not choose a config, so the test
# writes the system config /etc/security/pbx-mfa.conf (state and secrets in a temporary
# directory) and puts back what was there on exit. The syslog lines are caught on a socket
# bound over /dev/log in a private mount namespace (or at /dev/log when there is none, removed
# on exit). Each member runs `runuser -u MEMBER -- sudo -n pbx-mfa ...`. Checks: status and
# unlock work; root, a protected_groups member and another helpdesk member are refused (exit 4);
# --config, reset (not in helpdesk_actions) and enroll (not a helpdesk command) are refused
# (exit 4); each is one authpriv line naming member, action and target; sudo refuses a member's
# SUDO_UID=0 (no SETENV); pbxtest-adm, through
# sudo but not a member, is full root; doctor passes the sudoers file and fails it
# group-writable. Prints PASS:/FAIL: lines (and the session), exits non-zero on a failure.
set -euo pipefail
cli=$(readlink -f "${1:?usage: helpdesk_sudo.sh PBX_MFA}")
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (test users, a sudoers file, the system config)"; exit 77; }
for tool in sudo visudo runuser logger python3 unshare useradd userdel groupadd groupdel; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done

# A private mount namespace, so a socket can be bound over /dev/log for this test alone.
if [ -z "${PBX_HELPDESK_IN_NS:-}" ] && { [ -e /dev/log ] || [ -L /dev/log ]; }; then
  if unshare --mount --propagation private true 2>/dev/null; then
    PBX_HELPDESK_IN_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
  fi
  echo "FAIL: /dev/log exists and no private mount namespace can be made to catch syslog lines"
  exit 1
fi

conf=/etc/security/pbx-mfa.conf
sudoers=/etc/sudoers.d/pbxtest-helpdesk
group=pbxtest-helpdesk
pgroup=pbxtest-protected
users=(pbxtest-hd1 pbxtest-hd2 pbxtest-target pbxtest-prot pbxtest-adm)
tmp=$(mktemp -d /tmp/pbxtest-helpdesk.XXXXXX)
chmod 755 "$tmp"
log=$tmp/syslog
listener_pid=""
made_dev_log=0
had_conf=0

remove_accounts() {
  local u
  for u in "${users[@]}"; do
    if id "$u" >/dev/null 2>&1; then userdel "$u" >/dev/null 2>&1 || true; fi
  done
  for g in "$group" "$pgroup"; do
    if getent group "$g" >/dev/null; then groupdel "$g" >/dev/null 2>&1 || true; fi
  done
}

cleanup() {
  rm -f "$sudoers"
  if [ "$had_conf" = 1 ]; then
    cp -a "$tmp/conf.orig" "$conf"
  else
    rm -f "$conf"
  fi
  remove_accounts
  if [ -n "$listener_pid" ]; then kill "$listener_pid" 2>/dev/null || true; fi
  if [ "$made_dev_log" = 1 ]; then rm -f /dev/log; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND"' ERR

fails=0
pass() { echo "PASS: $1"; }
fail() { fails=$((fails+1)); echo "FAIL: $1"; }

# ---- the syslog listener ---------------------------------------------------------------------
sock=$tmp/log.sock
if [ -n "${PBX_HELPDESK_IN_NS:-}" ]; then
  : # bound over /dev/log below, once it listens
else
  sock=/dev/log
  made_dev_log=1
fi
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
if [ -n "${PBX_HELPDESK_IN_NS:-}" ]; then mount --bind "$sock" /dev/log; fi
logger -p authpriv.notice -t pbxtest "listener check"
for _ in $(seq 30); do grep -q 'listener check' "$log" 2>/dev/null && break; sleep 0.1; done
grep -q '^<85>.*pbxtest.*listener check' "$log" ||
  { echo "FAIL: syslog lines are not caught: $(cat "$log")"; exit 1; }

# ---- accounts, the binary, the sudoers file and the system config ----------------------------
remove_accounts  # leftovers of an interrupted run
groupadd "$group"
groupadd "$pgroup"
useradd -M -d /nonexistent -s /usr/sbin/nologin -G "$group" pbxtest-hd1
useradd -M -d /nonexistent -s /usr/sbin/nologin -G "$group" pbxtest-hd2
useradd -M -d /nonexistent -s /usr/sbin/nologin pbxtest-target
useradd -M -d /nonexistent -s /usr/sbin/nologin -G "$pgroup" pbxtest-prot
useradd -M -d /nonexistent -s /usr/sbin/nologin pbxtest-adm

# sudoers needs a path without special characters: a root-owned copy in the test directory.
bin=$tmp/pbx-mfa
install -m 0755 "$cli" "$bin"
cat >"$tmp/sudoers" <<EOF
# Test only (tests/e2e/helpdesk_sudo.sh); removed when the test ends.
%$group ALL=(root) NOPASSWD: $bin
pbxtest-adm ALL=(root) NOPASSWD: $bin
EOF
visudo -c -f "$tmp/sudoers" >/dev/null || { echo "FAIL: the test sudoers file does not parse"; exit 1; }
install -m 0440 -o root -g root "$tmp/sudoers" "$sudoers"
visudo -c >/dev/null || { echo "FAIL: sudo's configuration does not parse with $sudoers"; exit 1; }

if [ -e "$conf" ] || [ -L "$conf" ]; then
  cp -a "$conf" "$tmp/conf.orig"
  had_conf=1
fi
mkdir -m 0700 "$tmp/secrets" "$tmp/state"
cat >"$conf" <<EOF
# Test only (tests/e2e/helpdesk_sudo.sh); the original is put back when the test ends.
secret_path = $tmp/secrets/%u
state_dir = $tmp/state
recovery_codes = 0
helpdesk_groups = $group
protected_groups = $pgroup
EOF
chmod 0644 "$conf"

# Root itself (no sudo variables) enrolls the target and the protected user.
for u in pbxtest-target pbxtest-prot; do
  env -u SUDO_UID -u SUDO_USER "$cli" enroll --user "$u" --no-confirm --json >/dev/null
done

# ---- the helpdesk session --------------------------------------------------------------------
# as USER WANT_RC LOG_TEXT ARGS...: pbx-mfa through sudo as USER; exit status WANT_RC and exactly
# one new pbx-mfa line, at authpriv.notice (<85>), holding LOG_TEXT.
as() {
  local who=$1 want=$2 text=$3 before after line rc=0
  shift 3
  before=$(grep -c ' pbx-mfa\[' "$log" || true)
  echo "\$ runuser -u $who -- sudo -n pbx-mfa $*"
  runuser -u "$who" -- sudo -n "$bin" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  grep -v 'unable to resolve host' "$tmp/err" | sed 's/^/  stderr: /' || true
  sed 's/^/  stdout: /' "$tmp/out"
  echo "  exit $rc"
  for _ in $(seq 30); do
    after=$(grep -c ' pbx-mfa\[' "$log" || true)
    [ "$after" -gt "$before" ] && break
    sleep 0.1
  done
  sleep 0.2
  after=$(grep -c ' pbx-mfa\[' "$log" || true)
  line=$(grep ' pbx-mfa\[' "$log" | tail -n 1)
  echo "  log: ${line#*]: }"
  local name="$who: pbx-mfa $* -> exit $want, one log line with '$text'"
  if [ "$rc" != "$want" ]; then
    fail "$name (exit $rc)"
  elif [ "$after" != $((before + 1)) ]; then
    fail "$name ($((after - before)) lines)"
  elif [[ $line != "<85>"* || $line != *"$text"* ]]; then
    fail "$name (line: $line)"
  else
    pass "$name"
  fi
}

as pbxtest-hd1 0 "by=pbxtest-hd1 helpdesk status user=pbxtest-target (exit 0)" \
  status --user pbxtest-target
if grep -E 'sudo(\[[0-9]+\])?: +pbxtest-hd1 : .*USER=root ; COMMAND=' "$log" |
  grep -qF "COMMAND=$bin status --user pbxtest-target"; then
  pass "sudo logged the member's command itself (the audit trail sudo gives for free)"
else
  fail "no sudo line for pbxtest-hd1's command: $(grep 'COMMAND=' "$log" | tail -n 2)"
fi
as pbxtest-hd1 0 "by=pbxtest-hd1 helpdesk unlock user=pbxtest-target (failures and lockout cleared)" \
  unlock --user pbxtest-target
as pbxtest-hd1 4 "by=pbxtest-hd1 helpdesk refused status user=root (root is always protected)" \
  status
as pbxtest-hd1 4 "by=pbxtest-hd1 helpdesk refused unlock user=root (root is always protected)" \
  unlock --user root
as pbxtest-hd1 4 "by=pbxtest-hd1 helpdesk refused unlock user=pbxtest-prot (member of protected group '$pgroup' (protected_groups))" \
  unlock --user pbxtest-prot
as pbxtest-hd1 4 "by=pbxtest-hd1 helpdesk refused unlock user=pbxtest-hd2 (another helpdesk member (group '$group' of helpdesk_groups))" \
  unlock --user pbxtest-hd2
as pbxtest-hd1 4 "by=pbxtest-hd1 helpdesk refused status user=pbxtest-target (--config is not allowed)" \
  --config "$conf" status --user pbxtest-target
as pbxtest-hd1 4 "by=pbxtest-hd1 helpdesk refused reset user=pbxtest-target ('reset' is not in helpdesk_actions)" \
  reset --user pbxtest-target
as pbxtest-hd2 4 "by=pbxtest-hd2 helpdesk refused enroll user=pbxtest-hd2 ('enroll' is not a helpdesk command)" \
  enroll --user pbxtest-hd2 --no-confirm
if [ -f "$tmp/secrets/pbxtest-target" ] && [ ! -e "$tmp/secrets/pbxtest-hd2" ]; then
  pass "the refused reset and enroll changed nothing on disk"
else
  fail "a refused action changed the secrets: $(ls "$tmp/secrets")"
fi
# Without SETENV a member cannot forge SUDO_UID: sudo itself refuses, pbx-mfa never runs.
before=$(grep -c ' pbx-mfa\[' "$log" || true)
rc=0
runuser -u pbxtest-hd1 -- sudo -n SUDO_UID=0 "$bin" reset --user pbxtest-target \
  >"$tmp/out" 2>"$tmp/err" || rc=$?
sleep 0.3
if [ "$rc" != 0 ] && grep -q 'not allowed to set the following environment variables: SUDO_UID' "$tmp/err" &&
  [ "$(grep -c ' pbx-mfa\[' "$log" || true)" = "$before" ]; then
  pass "sudo SUDO_UID=0 pbx-mfa: sudo refuses to let the member set SUDO_UID"
else
  fail "sudo SUDO_UID=0 pbx-mfa: exit $rc, $(cat "$tmp/err" "$tmp/out")"
fi
# Through sudo but in no helpdesk group: SUDO_UID only ever restricts, this is full root.
as pbxtest-adm 0 "by=root reset user=pbxtest-target (secret and state removed)" \
  reset --user pbxtest-target

# ---- doctor on the sudoers file ---------------------------------------------------------------
doctor_entry() {  # the JSON object of doctor's check named $1 whose message holds $2
  env -u SUDO_UID -u SUDO_USER "$cli" doctor --json 2>/dev/null |
    python3 -c 'import json, sys
for c in json.load(sys.stdin)["checks"]:
    if c["name"] == sys.argv[1] and sys.argv[2] in c["message"]:
        print(c["status"] + " " + c["message"])' "$1" "$2" || true
}
entry=$(doctor_entry sudoers "$sudoers")
echo "  doctor: $entry"
if [[ $entry == "PASS "*"visudo -c passes"* ]]; then
  pass "doctor: $sudoers PASS (root, 0440, visudo -c)"
else
  fail "doctor on $sudoers: ${entry:-no sudoers check}"
fi
entry=$(doctor_entry helpdesk-groups "$group")
if [[ $entry == "PASS "* ]]; then pass "doctor: helpdesk-groups PASS"; else fail "doctor helpdesk-groups: $entry"; fi
chmod 0460 "$sudoers"
entry=$(doctor_entry sudoers "$sudoers")
echo "  doctor: $entry"
if [[ $entry == "FAIL "*"mode 0460"* ]]; then
  pass "doctor: a group-writable $sudoers FAILs"
else
  fail "doctor on a group-writable $sudoers: ${entry:-no sudoers check}"
fi
chmod 0440 "$sudoers"

echo "---- the authpriv lines of the session"
grep -E ' pbx-mfa\[|sudo(\[[0-9]+\])?: .*COMMAND=' "$log" | sed 's/^/  /'
if [ "$fails" = 0 ]; then echo "helpdesk_sudo: all checks passed"; else echo "helpdesk_sudo: $fails failed"; exit 1; fi

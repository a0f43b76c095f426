#!/bin/bash
# The real pbx-mfa binary: temp-code's JSON line and a refused --ttl that writes nothing,
# require, and list: its exit status and every row of list --json equal to status --json.
#
# Usage: helpdesk_binary.sh PBX_MFA_BINARY
# Needs root (the config and state must be root-owned). Exit 77 = skipped. Failures print "FAIL:".
set -u

BIN=${1:?pbx-mfa binary}

fail() {
  echo "FAIL: $*"
  exit 1
}

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (root-owned config and state)"
  exit 77
fi

WORK=$(mktemp -d /tmp/pbx-helpdesk-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 0755 "$WORK"
mkdir -m 0700 "$WORK/secrets"
CONF=$WORK/pbx-mfa.conf
printf 'secret_path = %s/secrets/%%u\nstate_dir = %s/state\nrecovery_codes = 1\nrequire = group:pbxtest-nosuchgroup\n' \
  "$WORK" "$WORK" >"$CONF"
chmod 0644 "$CONF"
mfa() { "$BIN" --config "$CONF" "$@"; }

# A refused --ttl or --uses: exit 2, nothing on stdout, nothing written.
for bad in "--ttl 73h" "--ttl 0" "--ttl soon" "--uses 11" "--uses 0"; do
  # shellcheck disable=SC2086  # two words on purpose
  out=$(mfa temp-code --user daemon --json $bad 2>/dev/null)
  rc=$?
  [ "$rc" = 2 ] || fail "temp-code $bad: exit $rc, not 2"
  [ -z "$out" ] || fail "temp-code $bad printed: $out"
done
[ ! -e "$WORK/state" ] || [ -z "$(ls -A "$WORK/state")" ] || fail "a refused temp-code wrote: $(ls "$WORK/state")"
echo "ok: refused --ttl and --uses exit 2 and write nothing"

out=$(mfa temp-code --user daemon --ttl 90m --uses 2 --json 2>/dev/null) || fail "temp-code: exit $?"
[[ $out =~ ^\{\"code\":\"[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}\",\"expires\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\",\"user\":\"daemon\",\"uses\":2\}$ ]] ||
  fail "temp-code --json: $out"
echo "ok: temp-code --json: {\"code\":\"(16 letters)\",\"expires\",\"user\",\"uses\"}"

mfa list --json >/dev/null || fail "list: exit $? with nobody required"
mfa require --user daemon >/dev/null || fail "require: exit $?"
mfa list >/dev/null || fail "list: exit $? while only daemon (no login shell) is required"
mfa require --user root >/dev/null || fail "require: exit $?"
mfa list >/dev/null
rc=$?
[ "$rc" = 1 ] || fail "list: exit $rc while root is required and not enrolled, not 1"
echo "ok: list exits 1 while a required user with a login shell is not enrolled, 0 for daemon"

# Every row equals status --json (rows hold no nested objects, so one per line after the split).
rows=$(mfa list --json | sed -e 's/^{"users":\[//' -e 's/\]}$//' -e 's/},{/}\n{/g')
n=0
while IFS= read -r row; do
  [[ $row =~ \"user\":\"([^\"]*)\" ]] || fail "a row without a user: $row"
  user=${BASH_REMATCH[1]}
  [[ $user == pbxtest* ]] && continue # other tests add and remove these meanwhile
  status=$(mfa status --user "$user" --json)
  [ "$row" = "$status" ] || fail "list row of $user: $row != status --json: $status"
  n=$((n + 1))
done <<<"$rows"
accounts=$(getent passwd | cut -d: -f1 | grep -v '^pbxtest' | sort -u | wc -l)
[ "$n" -eq "$accounts" ] || fail "$n rows for $accounts accounts"
echo "ok: $n rows of list --json, each equal to status --json"

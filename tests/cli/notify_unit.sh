#!/usr/bin/env bash
# The shipped unit config/systemd/pbx-mfa-notify.service against the CLI it runs:
#   notify_unit.sh UNIT_FILE PBX_MFA
# its ExecStart is a command line the built pbx-mfa accepts (refused for a config without
# notify_command: exit 2 and why, not a usage error), WantedBy=multi-user.target (the link
# doctor's notify-unit check looks for), no [Install] alias or Also that doctor would miss,
# and systemd-analyze verify finds nothing in it (with ExecStart pointed at the built binary).
# Prints PASS:/FAIL: lines; exit 1 on any FAIL.
set -euo pipefail
unit=$(readlink -f "$1")
cli=$(readlink -f "$2")
tmp=$(mktemp -d /tmp/pbxtest-unit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }

exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$(grep -c '^ExecStart=' "$unit")" = 1 ] || fail "not exactly one ExecStart= line"
read -r -a argv <<<"$exec_start"
if [ "${argv[0]}" = /usr/bin/pbx-mfa ] && [ "${argv[*]:1}" = "events --follow --notify" ]; then
  pass "ExecStart=$exec_start"
else
  fail "ExecStart=$exec_start (want /usr/bin/pbx-mfa events --follow --notify)"
fi
# The same arguments to the built binary, with a config that sets no notify_command.
mkdir -m 0700 "$tmp/state"
printf 'state_dir = %s/state\n' "$tmp" >"$tmp/pbx-mfa.conf"
chmod 0644 "$tmp/pbx-mfa.conf"
rc=0
"$cli" --config "$tmp/pbx-mfa.conf" "${argv[@]:1}" >"$tmp/out" 2>&1 || rc=$?
if [ "$(id -u)" != 0 ]; then
  # Not root: the CLI refuses before it looks at notify_command (events is root's).
  if [ "$rc" = 4 ] && grep -q 'events needs root' "$tmp/out"; then
    pass "pbx-mfa ${argv[*]:1} parses; not root, it exits 4: $(cat "$tmp/out")"
  else
    fail "pbx-mfa ${argv[*]:1} (not root): exit $rc: $(cat "$tmp/out")"
  fi
elif [ "$rc" = 2 ] && grep -q 'notify_command is not set' "$tmp/out"; then
  pass "pbx-mfa ${argv[*]:1} parses; without notify_command it exits 2: $(cat "$tmp/out")"
else
  fail "pbx-mfa ${argv[*]:1}: exit $rc: $(cat "$tmp/out")"
fi
if [ "$(sed -n 's/^WantedBy=//p' "$unit")" = multi-user.target ] &&
   ! grep -qE '^(Alias|Also|RequiredBy)=' "$unit"; then
  pass "WantedBy=multi-user.target only: enabled means multi-user.target.wants/$(basename "$unit")"
else
  fail "[Install] is not WantedBy=multi-user.target alone: doctor looks for that link"
fi
if command -v systemd-analyze >/dev/null; then
  sed "s|^ExecStart=/usr/bin/pbx-mfa|ExecStart=$cli|" "$unit" >"$tmp/$(basename "$unit")"
  if systemd-analyze verify --man=no "$tmp/$(basename "$unit")" >"$tmp/verify" 2>&1 &&
     ! grep -q . "$tmp/verify"; then
    pass "systemd-analyze verify: no findings"
  else
    fail "systemd-analyze verify: $(cat "$tmp/verify")"
  fi
else
  echo "INFO: systemd-analyze missing: the unit's syntax is not verified"
fi
exit "$failed"

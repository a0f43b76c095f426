#!/bin/bash
# The real pbx-mfa binary records its security events (issue 17): each action one line of
# state_dir/.events.log with service pbx-mfa, the user, the actor root and its kind; a failed
# action adds none; the file is root's, mode 0600; no secret, URI or code it printed is in it.
#
# Usage: events_binary.sh PBX_MFA_BINARY
# Needs root (the config, secrets, state and event log are root's). Exit 77 = skipped.
# Failures print "FAIL:".
set -u

BIN=${1:?pbx-mfa binary}

fail() {
  echo "FAIL: $*"
  exit 1
}

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (root-owned config, state and event log)"
  exit 77
fi
command -v jq >/dev/null || {
  echo "SKIP: needs jq"
  exit 77
}

WORK=$(mktemp -d /tmp/pbx-events-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 0755 "$WORK"
mkdir -m 0700 "$WORK/secrets"
CONF=$WORK/pbx-mfa.conf
printf 'secret_path = %s/secrets/%%u\nstate_dir = %s/state\nrecovery_codes = 2\n' \
  "$WORK" "$WORK" >"$CONF"
chmod 0644 "$CONF"
LOG=$WORK/state/.events.log
mfa() { env -u SUDO_UID -u SUDO_USER "$BIN" --config "$CONF" "$@"; }
lines() { if [ -e "$LOG" ]; then wc -l <"$LOG"; else echo 0; fi; }
SECRETS=()

# Runs pbx-mfa ARGS..., expects exit 0 and exactly one new event of KIND about USER; keeps the
# printed output in $out.
expect_event() {
  local kind=$1 user=$2
  shift 2
  local before
  before=$(lines)
  out=$(mfa "$@" 2>"$WORK/err") || fail "pbx-mfa $*: exit $?: $(cat "$WORK/err")"
  ! grep -q 'warning' "$WORK/err" || fail "pbx-mfa $*: $(cat "$WORK/err")"
  [ "$(lines)" -eq $((before + 1)) ] || fail "pbx-mfa $*: $(($(lines) - before)) events, not 1"
  local e
  e=$(tail -n 1 "$LOG")
  jq -e --arg k "$kind" --arg u "$user" \
    '.event == $k and .user == $u and .service == "pbx-mfa" and .actor == "root" and
     .rhost == "" and (.host | length > 0) and (.time | test("^[0-9-]{10}T[0-9:]{8}Z$"))' \
    <<<"$e" >/dev/null || fail "pbx-mfa $*: event $e"
  echo "ok: pbx-mfa $* -> $kind: $(jq -r .detail <<<"$e")"
}

expect_event enrolled daemon enroll --user daemon --no-confirm --json
SECRETS+=("$(jq -r .secret <<<"$out")" "$(jq -r .otpauth_uri <<<"$out")")
mapfile -t -O ${#SECRETS[@]} SECRETS < <(jq -r '.recovery_codes[]' <<<"$out")

# A failed action records nothing.
before=$(lines)
mfa enroll --user daemon --no-confirm >/dev/null 2>&1 && fail "a second enroll worked"
mfa device remove default --user daemon >/dev/null 2>&1 && fail "removing the last device worked"
mfa temp-code --user daemon --ttl 99h >/dev/null 2>&1 && fail "temp-code --ttl 99h worked"
[ "$(lines)" -eq "$before" ] || fail "a failed action recorded an event: $(tail -n 1 "$LOG")"
echo "ok: failed actions record nothing"

expect_event device-added daemon device add phone2 --user daemon --no-confirm --json
SECRETS+=("$(jq -r .secret <<<"$out")" "$(jq -r .otpauth_uri <<<"$out")")
expect_event device-removed daemon device remove phone2 --user daemon
expect_event recovery-codes-replaced daemon recovery-codes --user daemon --json
mapfile -t -O ${#SECRETS[@]} SECRETS < <(jq -r '.recovery_codes[]' <<<"$out")
expect_event temp-code-issued daemon temp-code --user daemon --reason "ticket 42" --json
SECRETS+=("$(jq -r .code <<<"$out")")
expect_event temp-code-revoked daemon temp-code --user daemon --revoke
expect_event required daemon require --user daemon
expect_event not-required daemon require --user daemon --off
expect_event unlock daemon unlock --user daemon
expect_event reset daemon reset --user daemon

# The file: root's, 0600, one JSON event per line, no secret in it.
[ "$(stat -c '%u %a' "$LOG")" = "0 600" ] || fail "event log: $(stat -c '%U %a' "$LOG")"
jq -e -s 'length == 10' "$LOG" >/dev/null || fail "not 10 events: $(cat "$LOG")"
[ ${#SECRETS[@]} -eq 9 ] || fail "${#SECRETS[@]} secrets collected, not 9"
for s in "${SECRETS[@]}"; do
  if [ -z "$s" ] || [ "$s" = null ]; then fail "an empty secret was collected"; fi
  ! grep -qiF -- "$s" "$LOG" || fail "a secret is in the event log: $s"
  ! grep -qiF -- "${s//-/}" "$LOG" || fail "a secret is in the event log: $s"
done
! grep -q otpauth "$LOG" || fail "a URI is in the event log"
echo "ok: the event log is root's, mode 0600, 10 events, none of the ${#SECRETS[@]} secrets printed"

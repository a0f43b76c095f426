#!/bin/bash
# The real pbx-mfa binary driven the way the Cockpit page drives it (issue 19): no terminal,
# --json, secrets, codes and passwords on stdin only. A throw-away user (not root) enrolls in
# two runs (enroll --begin / --finish: the QR modules scan to the URI with zbarimg, codes come
# from oathtool), is refused with one JSON object and nothing saved for a wrong code, a wrong
# password, a bad key, no answer and an existing enrollment; adds and removes a device the same
# way; then root's commands the page runs work without a terminal.
#
# Usage: web_stage_binary.sh PBX_MFA_BINARY PAM_SERVICE_FILE
# Needs root (it adds a user). Exit 77 = skipped. Every failure prints "FAIL:".
set -u

BIN=${1:?pbx-mfa binary}
PAM_FILE=${2:?config/pam.d/pbx-mfa}
USER_NAME=pbxtest-web19
PASSWORD='Web-test-pw-7!'

fail() {
  echo "FAIL: $*"
  exit 1
}

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (adds the user $USER_NAME)"
  exit 77
fi
for tool in oathtool jq zbarimg useradd userdel chpasswd setpriv; do
  command -v "$tool" >/dev/null ||
    fail "$tool is missing (apt-get install oathtool jq zbar-tools passwd util-linux)"
done

WORK=$(mktemp -d /tmp/pbx-web-stage-XXXXXX)
INSTALLED_PAM=0
cleanup() {
  userdel -r "$USER_NAME" >/dev/null 2>&1 || userdel "$USER_NAME" >/dev/null 2>&1
  if [ "$INSTALLED_PAM" = 1 ]; then rm -f /etc/pam.d/pbx-mfa; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
chmod 755 "$WORK"

# The PAM service the CLI checks passwords with: a test copy only when none is installed.
if [ ! -e /etc/pam.d/pbx-mfa ]; then
  install -m 0644 "$PAM_FILE" /etc/pam.d/pbx-mfa || fail "cannot install /etc/pam.d/pbx-mfa"
  INSTALLED_PAM=1
fi

userdel -r "$USER_NAME" >/dev/null 2>&1 # a leftover of an interrupted run
useradd -m -d "$WORK/home" -s /bin/sh "$USER_NAME" || fail "useradd failed"
echo "$USER_NAME:$PASSWORD" | chpasswd || fail "chpasswd failed"
USER_UID=$(id -u "$USER_NAME")
USER_GID=$(id -g "$USER_NAME")

install -m 0755 "$BIN" "$WORK/pbx-mfa"
CONF=$WORK/pbx-mfa.conf
cat >"$CONF" <<EOF
secret_path = %h/.pbx-mfa
state_dir = $WORK/state
issuer = pbx-web-test
recovery_codes = 2
EOF
chmod 0644 "$CONF"
mkdir -m 0700 "$WORK/state" # as the package makes it (recovery-codes needs it)

# Runs pbx-mfa as the user (AS=user) or root (AS=root) with $1 on stdin and no terminal;
# expects exit status $2. Sets OUT (stdout) and ERR (stderr).
run() {
  local input=$1 want=$2 rc
  shift 2
  if [ "$AS" = user ]; then
    OUT=$(printf '%b' "$input" | setpriv --reuid="$USER_UID" --regid="$USER_GID" --init-groups \
      env -i PATH=/usr/bin:/bin "$WORK/pbx-mfa" --config "$CONF" "$@" 2>"$WORK/err")
  else
    OUT=$(printf '%b' "$input" | "$WORK/pbx-mfa" --config "$CONF" "$@" 2>"$WORK/err")
  fi
  rc=$?
  ERR=$(cat "$WORK/err")
  [ "$rc" = "$want" ] || fail "$AS: pbx-mfa $*: exit $rc, expected $want; stdout: $OUT; stderr: $ERR"
  if [ "$(printf '%s\n' "$OUT" | wc -l)" != 1 ] || ! jq -e 'type == "object"' <<<"$OUT" >/dev/null
  then
    fail "$AS: pbx-mfa $*: stdout is not one JSON object: $OUT"
  fi
}

# A refusal: {"error": $1, "message": M} and "pbx-mfa: M" on stderr.
refused() {
  jq -e --arg e "$1" 'keys == ["error","message"] and .error == $e' <<<"$OUT" >/dev/null ||
    fail "expected refusal $1, got: $OUT"
  local message
  message=$(jq -r .message <<<"$OUT")
  grep -qxF "pbx-mfa: $message" <<<"$ERR" || fail "stderr lacks 'pbx-mfa: $message': $ERR"
}

# What `oathtool --totp -b` shows for key $1 (at $2, default now).
code() { oathtool --totp -b "$1" -N "${2:-now}"; }
# A six-digit code that key $1 shows at no step within two of now.
wrong_code() {
  local now window candidate d
  now=$(date +%s)
  window=$(for d in -2 -1 0 1 2; do oathtool --totp -b --now "@$((now + 30 * d))" "$1"; done)
  for candidate in 000000 111111 222222 333333 444444 555555; do
    grep -qxF "$candidate" <<<"$window" || { echo "$candidate"; return; }
  done
}

# The QR modules of a --begin object drawn as the page draws them (a 4-module quiet zone, 4
# pixels a module) into a PGM, read back with zbarimg.
scan_qr() {
  jq -r '.qr as $q | ($q.size + 8) as $w
    | ([range(4) | "0" * $w] + [$q.modules[] | "0000" + . + "0000"] + [range(4) | "0" * $w])
      as $rows
    | "P2", "\($w * 4) \($w * 4)", "255",
      ($rows[] | (split("") | map(if . == "1" then "0 0 0 0" else "255 255 255 255" end)
                 | join(" ")) as $line | $line, $line, $line, $line)' <<<"$1" >"$WORK/qr.pgm"
  zbarimg --raw -q "$WORK/qr.pgm"
}

# status --json's "enrolled" (status exits 3 when not enrolled).
enrolled() {
  "$WORK/pbx-mfa" --config "$CONF" status --user "$USER_NAME" --json </dev/null | jq -r .enrolled
}

# ---- enroll --begin ----
AS=user run '' 0 enroll --begin --json
BEGIN=$OUT
Q=$(jq .qr.size <<<"$BEGIN")
jq -e --arg u "$USER_NAME" --argjson q "$Q" '
  keys == ["account","algorithm","digits","issuer","otpauth_uri","period","qr","secret",
           "secret_grouped","user"]
  and .user == $u and .account == $u and .issuer == "pbx-web-test" and .algorithm == "SHA1"
  and .digits == 6 and .period == 30
  and (.secret | test("^[A-Z2-7]{32}$"))
  and .secret_grouped == ([.secret | range(0; length; 4) as $i | .[$i:$i + 4]] | join(" "))
  and (.otpauth_uri | startswith("otpauth://totp/pbx-web-test:" + $u + "?"))
  and (.qr | keys == ["modules","size"]) and (.qr.modules | length) == $q and $q >= 21
  and all(.qr.modules[]; test("^[01]+$") and length == $q)' <<<"$BEGIN" >/dev/null ||
  fail "unexpected --begin object: $BEGIN"
SECRET=$(jq -r .secret <<<"$BEGIN")
GROUPED=$(jq -r .secret_grouped <<<"$BEGIN")
URI=$(jq -r .otpauth_uri <<<"$BEGIN")
case $URI in *"secret=$SECRET"*) ;; *) fail "the URI does not hold the secret" ;; esac
SCANNED=$(scan_qr "$BEGIN") || fail "zbarimg found no QR code in the modules"
[ "$SCANNED" = "$URI" ] || fail "the QR modules scan to '$SCANNED', not the URI"
[ -n "$ERR" ] && fail "--begin wrote to stderr: $ERR"
[ ! -e "$WORK/home/.pbx-mfa" ] || fail "--begin saved a secret file"
[ "$(enrolled)" = false ] || fail "--begin enrolled the user"
echo "ok: enroll --begin: the contract fields, QR modules that scan to the URI, nothing saved"

# ---- enroll --finish refusals: one JSON object, nothing saved ----
AS=user run "$SECRET\n$(wrong_code "$SECRET")\n$PASSWORD\n" 1 enroll --finish --json
refused wrong-code
AS=user run "$SECRET\n$(code "$SECRET")\nnot-the-password\n$PASSWORD\n" 1 enroll --finish --json
refused wrong-password
AS=user run "${SECRET:0:16}\n$(code "$SECRET")\n$PASSWORD\n" 2 enroll --finish --json
refused invalid-key
AS=user run "$SECRET\n" 1 enroll --finish --json
refused no-answer
AS=user run "$SECRET\n$(code "$SECRET")\n$PASSWORD\n" 2 enroll --finish --json --algorithm SHA256
refused invalid-key
[ ! -e "$WORK/home/.pbx-mfa" ] || fail "a refused --finish saved a secret file"
[ "$(enrolled)" = false ] || fail "a refused --finish enrolled the user"
echo "ok: enroll --finish: wrong code, wrong password, bad key, no answer refused; nothing saved"

# ---- enroll --finish: the grouped key in lower case, a code from oathtool, the password ----
LOWER=$(tr '[:upper:]' '[:lower:]' <<<"$GROUPED")
AS=user run "$LOWER\n$(code "$SECRET")\n$PASSWORD\n" 0 enroll --finish --json
jq -e --arg u "$USER_NAME" --arg s "$SECRET" --arg uri "$URI" '
  keys == ["otpauth_uri","recovery_codes","secret","user"] and .user == $u and .secret == $s
  and .otpauth_uri == $uri and (.recovery_codes | length) == 2
  and all(.recovery_codes[]; test("^[a-z]{4}-[a-z]{4}-[a-z]{4}$"))' <<<"$OUT" >/dev/null ||
  fail "unexpected --finish object: $OUT"
[ "$(enrolled)" = true ] || fail "status does not show the user enrolled after --finish"
[ "$(stat -c '%U %a' "$WORK/home/.pbx-mfa")" = "$USER_NAME 600" ] ||
  fail "the secret file is not the user's 0600 file"
SAVED=$(cat "$WORK/home/.pbx-mfa")
echo "ok: enroll --finish enrolled the user with the key --begin printed"

# ---- enrolled: --begin and --finish refuse, the enrollment is unchanged ----
AS=user run '' 4 enroll --begin --json
refused enrolled
AS=user run "$SECRET\n$(code "$SECRET")\n$PASSWORD\n" 4 enroll --finish --json
refused enrolled
[ "$(cat "$WORK/home/.pbx-mfa")" = "$SAVED" ] || fail "a refused run changed the secret file"
echo "ok: an enrolled user is refused by --begin and --finish (exit 4, 'enrolled')"

# ---- device add --begin / --finish ----
AS=user run '' 0 device add phone2 --begin --json
DEV=$OUT
jq -e --arg u "$USER_NAME" '
  keys == ["account","algorithm","device","digits","issuer","otpauth_uri","period","qr",
           "secret","secret_grouped","user"]
  and .user == $u and .device == "phone2" and .account == $u + " (phone2)"' <<<"$DEV" \
  >/dev/null || fail "unexpected device add --begin object: $DEV"
KEY2=$(jq -r .secret <<<"$DEV")
[ "$(scan_qr "$DEV")" = "$(jq -r .otpauth_uri <<<"$DEV")" ] ||
  fail "device add: the QR modules do not scan to the URI"
# A code of the first device: the next step's (the enrollment is dated after its confirmation
# step, and the user cannot read the root-owned state).
FIRST=$(code "$SECRET" "now + 30 seconds")
AS=user run "$KEY2\n$(code "$KEY2")\n$PASSWORD\n$(wrong_code "$SECRET")\n" 1 \
  device add phone2 --finish --json
refused wrong-existing-code
AS=user run "$KEY2\n$(wrong_code "$KEY2")\n$PASSWORD\n$FIRST\n" 1 device add phone2 --finish --json
refused wrong-code
AS=user run "$KEY2\n$(code "$KEY2")\nnope\n$FIRST\n" 1 device add phone2 --finish --json
refused wrong-password
[ "$(cat "$WORK/home/.pbx-mfa")" = "$SAVED" ] || fail "a refused device add changed the secret file"
AS=user run "$KEY2\n$(code "$KEY2")\n$PASSWORD\n$FIRST\n" 0 device add phone2 --finish --json
jq -e --arg u "$USER_NAME" --arg s "$KEY2" '
  keys == ["device","otpauth_uri","secret","user"] and .user == $u and .device == "phone2"
  and .secret == $s' <<<"$OUT" >/dev/null || fail "unexpected device add --finish object: $OUT"
AS=user run '' 0 device list --json
jq -e '(.devices | map(.name)) == ["default","phone2"]' <<<"$OUT" >/dev/null ||
  fail "device list after --finish: $OUT"
echo "ok: device add --begin/--finish: refusals save nothing, the right answers add phone2"

# ---- device remove --json: the password once on stdin ----
AS=user run "wrong\n$PASSWORD\n" 1 device remove phone2 --json
refused wrong-password
AS=user run "$PASSWORD\n" 0 device remove phone2 --json
jq -e --arg u "$USER_NAME" '. == {"user": $u, "device": "phone2", "removed": true}' <<<"$OUT" \
  >/dev/null || fail "unexpected device remove object: $OUT"
AS=user run '' 0 device list --json
jq -e '(.devices | map(.name)) == ["default"]' <<<"$OUT" >/dev/null ||
  fail "device list after remove: $OUT"
echo "ok: device remove --json reads the password once"

# ---- what else the page runs, without a terminal ----
# The user's own status where the state is root's (state_dir 0700): the enrollment, with the
# state's fields null, not a refusal (the page shows it to every user).
AS=user run '' 0 status --json
jq -e '.enrolled == true and .failures == null and .last_success == null and
       .recovery_codes_left == null and (.devices | length) >= 1' <<<"$OUT" >/dev/null ||
  fail "status --json as the user: $OUT"
AS=user run '' 0 device list --json
jq -e '(.devices | length) >= 1 and all(.devices[]; .last_used == null)' <<<"$OUT" >/dev/null ||
  fail "device list --json as the user: $OUT"
# New recovery codes as the user: refused with what to do (the used-code marks are root's).
ERR=$(setpriv --reuid="$USER_UID" --regid="$USER_GID" --init-groups env -i PATH=/usr/bin:/bin \
  "$WORK/pbx-mfa" --config "$CONF" recovery-codes --json 2>&1 </dev/null >/dev/null)
rc=$?
if [ "$rc" != 4 ] || ! grep -q "need root.*sudo pbx-mfa recovery-codes --user $USER_NAME" <<<"$ERR"
then
  fail "recovery-codes as the user: exit $rc: $ERR"
fi
echo "ok: status and device list as the user (state fields null); recovery-codes names sudo"
# recovery-codes needs the user's state lock: with the files store (root's state_dir) root's.
AS=root run '' 0 recovery-codes --user "$USER_NAME" --json
jq -e '(.recovery_codes | length) == 2' <<<"$OUT" >/dev/null || fail "recovery-codes: $OUT"
AS=root run '' 0 status --user "$USER_NAME" --json
AS=root run '' 0 device list --user "$USER_NAME" --json
AS=root run '' 0 unlock --user "$USER_NAME" --json
jq -e --arg u "$USER_NAME" '. == {"user": $u, "action": "unlock", "done": true}' <<<"$OUT" \
  >/dev/null || fail "unlock --json: $OUT"
AS=root run '' 0 temp-code --user "$USER_NAME" --json
jq -e 'keys == ["code","expires","user","uses"]' <<<"$OUT" >/dev/null ||
  fail "temp-code --json keys: $(jq -c keys <<<"$OUT")"
AS=root run '' 0 require --user "$USER_NAME" --json
jq -e '.action == "require" and .done and .marked and .changed and .required' <<<"$OUT" \
  >/dev/null || fail "require --json: $OUT"
AS=root run '' 0 require --user "$USER_NAME" --off --json
jq -e '.marked == false and .changed' <<<"$OUT" >/dev/null || fail "require --off --json: $OUT"
AS=root run '' 0 reset --user "$USER_NAME" --json
jq -e --arg u "$USER_NAME" '. == {"user": $u, "action": "reset", "done": true}' <<<"$OUT" \
  >/dev/null || fail "reset --json: $OUT"
[ "$(enrolled)" = false ] || fail "reset --json left the user enrolled"
# list exits 1 while a required user is not enrolled (require = all here): still one object.
OUT=$("$WORK/pbx-mfa" --config "$CONF" list --json </dev/null 2>"$WORK/err")
rc=$?
if [ "$rc" -gt 1 ] || ! jq -e '.users | type == "array"' <<<"$OUT" >/dev/null; then
  fail "list --json: exit $rc: $OUT"
fi
echo "ok: recovery-codes, status, device list, unlock, temp-code, require, reset and list without a terminal"
echo "PASS"

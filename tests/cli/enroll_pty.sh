#!/bin/bash
# The real pbx-mfa binary enrolling a throw-away user through a pseudo-terminal (expect):
# a wrong code, then the right one computed with oathtool from the printed secret, a wrong
# password, then the right one (PAM service pbx-mfa); then the file's owner and mode, status
# --json, a login-style verify, and root re-enrolling the user into their home.
#
# Usage: enroll_pty.sh PBX_MFA_BINARY PAM_SERVICE_FILE
# Needs root (it adds a user). Exit 77 = skipped. Every failure prints "FAIL:".
set -u

BIN=${1:?pbx-mfa binary}
PAM_FILE=${2:?config/pam.d/pbx-mfa}
USER_NAME=pbxtestenr
PASSWORD='Pty-test-pw-9!'

fail() {
  echo "FAIL: $*"
  if [ -n "${WORK:-}" ] && [ -f "$WORK/transcript" ]; then
    echo "---- transcript (secrets redacted) ----"
    sed -E 's/(Secret: )[A-Z2-7 ]+/\1<redacted>/; s/secret=[A-Z2-7]+/secret=<redacted>/g' \
      "$WORK/transcript"
  fi
  exit 1
}

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (adds the user $USER_NAME)"
  exit 77
fi
for tool in expect oathtool useradd userdel chpasswd setpriv jq; do
  command -v "$tool" >/dev/null ||
    fail "$tool is missing (apt-get install expect oathtool passwd util-linux jq)"
done

WORK=$(mktemp -d /tmp/pbx-enroll-pty-XXXXXX)
INSTALLED_PAM=0
cleanup() {
  userdel -r "$USER_NAME" >/dev/null 2>&1 || userdel "$USER_NAME" >/dev/null 2>&1
  if [ "$INSTALLED_PAM" = 1 ]; then rm -f /etc/pam.d/pbx-mfa; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
chmod 755 "$WORK"

# The PAM service the CLI re-checks passwords with: a test copy only when none is installed.
if [ ! -e /etc/pam.d/pbx-mfa ]; then
  install -m 0644 "$PAM_FILE" /etc/pam.d/pbx-mfa || fail "cannot install /etc/pam.d/pbx-mfa"
  INSTALLED_PAM=1
fi

# A fresh user (a leftover from an interrupted run is removed first), home inside $WORK.
userdel -r "$USER_NAME" >/dev/null 2>&1
useradd -m -d "$WORK/home" -s /bin/sh "$USER_NAME" || fail "useradd failed"
echo "$USER_NAME:$PASSWORD" | chpasswd || fail "chpasswd failed"
USER_UID=$(id -u "$USER_NAME")
USER_GID=$(id -g "$USER_NAME")

# The binary where the user can run it (a build tree may not be reachable for others).
install -m 0755 "$BIN" "$WORK/pbx-mfa"
CONF=$WORK/pbx-mfa.conf
cat >"$CONF" <<EOF
secret_path = %h/.pbx-mfa
state_dir = $WORK/state
issuer = pbx-pty-test
EOF
chmod 0644 "$CONF"

cat >"$WORK/enroll.exp" <<'EOF'
set timeout 30
log_user 0
log_file -a -noappend $env(WORK)/transcript
spawn setpriv --reuid=$env(USER_UID) --regid=$env(USER_GID) --init-groups \
    env -i PATH=/usr/bin:/bin $env(WORK)/pbx-mfa enroll --config $env(CONF)
expect_after {
  eof { puts "FAIL: pbx-mfa enroll ended early"; exit 1 }
}
expect {
  -re {\x1b\[30;47m} {}
  timeout { puts "FAIL: no ANSI QR code on the terminal"; exit 1 }
}
expect {
  -re {Secret: ([A-Z2-7 ]+)\r\n} { set secret [string map {" " ""} $expect_out(1,string)] }
  timeout { puts "FAIL: no Secret: line"; exit 1 }
}
expect {
  "Current code: " {}
  timeout { puts "FAIL: no code prompt"; exit 1 }
}
# A code of the right shape that no step within two of now has.
set now [clock seconds]
set window {}
for {set d -2} {$d <= 2} {incr d} {
  lappend window [exec oathtool --totp -b --now "@[expr {$now + 30 * $d}]" $secret]
}
set wrong ""
foreach candidate {000000 111111 222222 333333 444444 555555 666666} {
  if {[lsearch -exact $window $candidate] < 0} { set wrong $candidate; break }
}
send "$wrong\r"
expect {
  "Wrong code" {}
  "Password: " { puts "FAIL: a wrong code was accepted"; exit 1 }
  timeout { puts "FAIL: no message for the wrong code"; exit 1 }
}
expect {
  "Current code: " {}
  timeout { puts "FAIL: no second code prompt"; exit 1 }
}
send "[exec oathtool --totp -b $secret]\r"
expect {
  "Password: " {}
  "Wrong code" { puts "FAIL: the right code was refused"; exit 1 }
  timeout { puts "FAIL: no password prompt"; exit 1 }
}
send "not-the-password\r"
expect {
  "Wrong password" {}
  "Saved:" { puts "FAIL: a wrong password was accepted"; exit 1 }
  timeout { puts "FAIL: no message for the wrong password"; exit 1 }
}
expect {
  "Password: " {}
  timeout { puts "FAIL: no second password prompt"; exit 1 }
}
send "$env(PASSWORD)\r"
expect {
  "Saved: $env(USER_NAME) is enrolled." {}
  "Wrong password" { puts "FAIL: the right password was refused"; exit 1 }
  timeout { puts "FAIL: not saved"; exit 1 }
}
expect {
  -re {Recovery codes[^\n]*\n(  [a-z]{4}-[a-z]{4}-[a-z]{4}\r\n){5}} {}
  timeout { puts "FAIL: no five recovery codes"; exit 1 }
}
expect eof
lassign [wait] pid spawnid os_error status
if {$status != 0} { puts "FAIL: pbx-mfa enroll exited $status"; exit 1 }
set f [open $env(WORK)/secret w]
puts $f $secret
close $f
EOF

export WORK USER_UID USER_GID CONF PASSWORD USER_NAME
expect -f "$WORK/enroll.exp" || fail "enroll dialogue"
SECRET=$(cat "$WORK/secret")
[ -n "$SECRET" ] || fail "no secret captured"

# The file is the user's own, private, in their home.
SECRET_FILE=$WORK/home/.pbx-mfa
[ -f "$SECRET_FILE" ] && [ ! -L "$SECRET_FILE" ] || fail "no secret file at $SECRET_FILE"
OWNER_MODE=$(stat -c '%U %a' "$SECRET_FILE")
[ "$OWNER_MODE" = "$USER_NAME 600" ] ||
  fail "secret file is '$OWNER_MODE', expected '$USER_NAME 600'"

# status --json afterwards (root), exactly the contract fields.
STATUS=$("$WORK/pbx-mfa" status --user "$USER_NAME" --json --config "$CONF") ||
  fail "status exited $?"
echo "$STATUS" | jq -e --arg u "$USER_NAME" '
  (keys == ["algorithm","created","devices","digits","enrolled","exempt","failures",
            "last_success","locked_until","login_shell","period","recovery_codes_left","required",
            "required_by","temp_code_expires","user"])
  and (.devices | map(.name)) == ["default"] and .devices[0].last_used == null
  and .exempt == false and .login_shell == true and .temp_code_expires == null
  and (.created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"))
  and .user == $u and .enrolled == true and .required == true and .required_by == "all"
  and .algorithm == "SHA1" and .digits == 6
  and .period == 30 and .recovery_codes_left == 5 and .failures == 0
  and .locked_until == null' >/dev/null || fail "unexpected status: $STATUS"

# The saved secret is the printed one: a code from oathtool logs in (verify, code on stdin),
# once. Not now's code: the enrollment is dated after the confirmation code's step, so that
# one cannot log in (VerifierTest.SelfEnrollmentConfirmationCodeIsReplayed); the next step's
# code is within the window.
CODE=$(oathtool --totp -b "$SECRET" -N "now + 30 seconds")
echo "$CODE" | "$WORK/pbx-mfa" verify --user "$USER_NAME" --config "$CONF" - >/dev/null ||
  fail "a code from the printed secret was not accepted"
echo "$CODE" | "$WORK/pbx-mfa" verify --user "$USER_NAME" --config "$CONF" - >/dev/null 2>&1 &&
  fail "the same code was accepted twice"

# A second device, added by the user at the terminal: a code of the new device (oathtool), the
# password, then a code of the first device (tests/cli/device_test.cpp covers the refusals).
cat >"$WORK/device.exp" <<'EOF'
set timeout 30
log_user 0
log_file -a $env(WORK)/transcript
spawn setpriv --reuid=$env(USER_UID) --regid=$env(USER_GID) --init-groups \
    env -i PATH=/usr/bin:/bin $env(WORK)/pbx-mfa device add phone2 --qr none --config $env(CONF)
expect_after {
  eof { puts "FAIL: pbx-mfa device add ended early"; exit 1 }
}
expect {
  -re {Secret: ([A-Z2-7 ]+)\r\n} { set secret [string map {" " ""} $expect_out(1,string)] }
  timeout { puts "FAIL: device add: no Secret: line"; exit 1 }
}
expect {
  "Code from the new device: " {}
  timeout { puts "FAIL: device add: no prompt for the new device's code"; exit 1 }
}
send "[exec oathtool --totp -b $secret]\r"
expect {
  "Password: " {}
  "Wrong code" { puts "FAIL: device add: the new device's code was refused"; exit 1 }
  timeout { puts "FAIL: device add: no password prompt"; exit 1 }
}
send "$env(PASSWORD)\r"
expect {
  "Code from an existing device: " {}
  "Wrong password" { puts "FAIL: device add: the right password was refused"; exit 1 }
  timeout { puts "FAIL: device add: no prompt for an existing device's code"; exit 1 }
}
# The next step's code: the user cannot read the root-owned state, so the device's created
# time (after the enrollment's confirmation step) is its only mark.
send "[exec oathtool --totp -b -N "now + 30 seconds" $env(SECRET)]\r"
expect {
  "Saved: device phone2 added for $env(USER_NAME)." {}
  "Wrong code" { puts "FAIL: device add: the first device's code was refused"; exit 1 }
  timeout { puts "FAIL: device add: not saved"; exit 1 }
}
expect eof
lassign [wait] pid spawnid os_error status
if {$status != 0} { puts "FAIL: pbx-mfa device add exited $status"; exit 1 }
set f [open $env(WORK)/secret2 w]
puts $f $secret
close $f
EOF
export SECRET
expect -f "$WORK/device.exp" || fail "device add dialogue"
SECRET2=$(cat "$WORK/secret2")
if [ -z "$SECRET2" ] || [ "$SECRET2" = "$SECRET" ]; then fail "no new secret captured for phone2"; fi
OWNER_MODE=$(stat -c '%U %a' "$SECRET_FILE")
[ "$OWNER_MODE" = "$USER_NAME 600" ] ||
  fail "after device add the secret file is '$OWNER_MODE', expected '$USER_NAME 600'"
# The user lists their devices: both names, never a secret.
LIST=$(setpriv --reuid="$USER_UID" --regid="$USER_GID" --init-groups env -i PATH=/usr/bin:/bin \
  "$WORK/pbx-mfa" device list --json --config "$CONF" 2>"$WORK/err") ||
  fail "device list exited $?: $(cat "$WORK/err")"
echo "$LIST" | jq -e --arg u "$USER_NAME" \
  '.user == $u and (.devices | map(.name)) == ["default","phone2"]' >/dev/null ||
  fail "unexpected device list: $LIST"
case $LIST in *"$SECRET"* | *"$SECRET2"*) fail "device list shows a secret" ;; esac
# The new device's next code logs in (as the first one's, the confirmation code cannot); root
# removes the device (DeviceTest.RootRemovesADeviceAndItsCodesStopWorking: its codes then fail).
CODE2=$(oathtool --totp -b "$SECRET2" -N "now + 30 seconds")
echo "$CODE2" | "$WORK/pbx-mfa" verify --user "$USER_NAME" --config "$CONF" - >/dev/null ||
  fail "a code of the added device was not accepted"
"$WORK/pbx-mfa" device remove phone2 --user "$USER_NAME" --config "$CONF" >/dev/null ||
  fail "root's device remove exited $?"
LIST=$("$WORK/pbx-mfa" device list --user "$USER_NAME" --json --config "$CONF") ||
  fail "device list exited $?"
echo "$LIST" | jq -e '(.devices | map(.name)) == ["default"]' >/dev/null ||
  fail "after device remove: $LIST"
"$WORK/pbx-mfa" device remove default --user "$USER_NAME" --config "$CONF" >/dev/null 2>&1
RC=$?
[ "$RC" = 4 ] || fail "removing the last device exited $RC, expected 4"

# Without --force the enrollment is kept; with it, root re-enrolls the user into their home
# and the file stays the user's.
"$WORK/pbx-mfa" enroll --user "$USER_NAME" --no-confirm --config "$CONF" >/dev/null 2>&1
RC=$?
[ "$RC" = 4 ] || fail "enroll over an existing enrollment exited $RC, expected 4"
JSON=$("$WORK/pbx-mfa" enroll --user "$USER_NAME" --no-confirm --force --json --config "$CONF") ||
  fail "root re-enroll exited $?"
NEW_SECRET=$(echo "$JSON" | jq -er .secret) || fail "no secret in $JSON"
[ "$NEW_SECRET" != "$SECRET" ] || fail "--force kept the old secret"
OWNER_MODE=$(stat -c '%U %a' "$SECRET_FILE")
[ "$OWNER_MODE" = "$USER_NAME 600" ] ||
  fail "after root's re-enroll the secret file is '$OWNER_MODE', expected '$USER_NAME 600'"

echo "PASS: enroll through a pty (wrong/right code, wrong/right password), owner, mode, status;" \
  "device add (new code, password, old code), list, remove"

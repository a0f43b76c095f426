#!/usr/bin/env bash
# End-to-end: the real ssh client logs in to a copy of the system sshd (test-only name, so a
# test-only PAM service), password through pam_unix, then a code through our module.
#   ssh_login.sh MODULE_SO TEST_ENROLL_TOOL PBX_MFA QR_DECODE_TOOL TEST_TEMP_CODE_TOOL
# Checks: right code runs a remote command; wrong code refused; replayed code refused;
# with exempt_networks = 127.0.0.0/8 no code is asked. Then enroll_at_login for a second user:
# not required (not in the require group) → password only; added to the group → the next login
# shows the QR code, which is decoded from the client's screen (zbarimg), its code typed
# (oathtool) and the remote command runs; the next login asks for a code (a shown recovery code
# is used); after `pbx-mfa reset` the next login enrolls again, and a dropped connection saves
# nothing. Then enroll_at_login = with-code for the same (not enrolled) user: without a temp code
# the usual prompt, refused, no QR code shown; with a temp code from `pbx-mfa temp-code` the QR
# code follows, is confirmed and the remote command runs; the spent temp code opens nothing.
# Cleans up server, users, group, PAM file.
set -euo pipefail
module=$(readlink -f "$1")
enroll=$(readlink -f "$2")
pbx_mfa=$(readlink -f "$3")
qr_decode=$(readlink -f "$4")
temp_code_tool=$(readlink -f "${5:-/nonexistent}")
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (creates a test user and a PAM service)"; exit 77; }
for tool in /usr/sbin/sshd ssh expect oathtool useradd chpasswd python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done

tmp=$(mktemp -d /tmp/pbx-e2e-ssh.XXXXXX)
chmod 755 "$tmp"
user="pbxtest$$"
user=${user:0:31}
user2="pbxtest$$e"
group="pbxtestg$$"
service="pbxtest-sshd-$$"
password="Pw-$RANDOM-$RANDOM-x"
sshd_pid=""

cleanup() {
  if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; wait "$sshd_pid" 2>/dev/null || true; fi
  rm -f "/etc/pam.d/$service"
  if id "$user" >/dev/null 2>&1; then userdel -r "$user" >/dev/null 2>&1 || true; fi
  if id "$user2" >/dev/null 2>&1; then userdel -r "$user2" >/dev/null 2>&1 || true; fi
  if getent group "$group" >/dev/null; then groupdel "$group" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

useradd -m -s /bin/sh "$user"
echo "$user:$password" | chpasswd
home=$(getent passwd "$user" | cut -d: -f6)
groupadd "$group"
useradd -m -s /bin/sh "$user2"
echo "$user2:$password" | chpasswd
home2=$(getent passwd "$user2" | cut -d: -f6)

mkdir -p /run/sshd && chmod 755 /run/sshd
mkdir -m 700 "$tmp/state"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_key"
cp /usr/sbin/sshd "$tmp/$service"   # sshd names its PAM service after its program name
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

write_config() {  # $1: extra config lines
  cat > "$tmp/pbx-mfa.conf" <<CONF
secret_path = %h/.pbx-mfa
state_dir = $tmp/state
window = 1
$1
CONF
  chmod 644 "$tmp/pbx-mfa.conf"
}

# requisite: a wrong password ends the stack, as Debian's common-auth does; enroll_at_login
# relies on it (pbx-mfa doctor fails a stack that goes on after a wrong password).
cat > "/etc/pam.d/$service" <<PAM
auth requisite pam_unix.so
auth required $module config=$tmp/pbx-mfa.conf nodelay
account required pam_unix.so
session required pam_permit.so
PAM

cat > "$tmp/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $tmp/host_key
PidFile $tmp/sshd.pid
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication no
AuthenticationMethods keyboard-interactive
AllowUsers $user $user2
PermitRootLogin no
LogLevel VERBOSE
CONF

start_sshd() {
  "$tmp/$service" -D -e -f "$tmp/sshd_config" 2>>"$tmp/sshd.log" &
  sshd_pid=$!
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "FAIL: sshd did not start"; cat "$tmp/sshd.log"; exit 1
}
stop_sshd() { kill "$sshd_pid"; wait "$sshd_pid" 2>/dev/null || true; sshd_pid=""; }

# login CODE MARKER: prints what the ssh client showed; "-" as CODE means expect no code prompt.
login() {
  PBX_PW="$password" PBX_CODE="$1" PBX_MARK="$2" PBX_PORT="$port" PBX_USER="$user" expect -f - <<'EXP'
set timeout 20
log_user 1
spawn ssh -F /dev/null -p $env(PBX_PORT) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o PreferredAuthentications=keyboard-interactive -o PubkeyAuthentication=no \
  -o NumberOfPasswordPrompts=1 -o LogLevel=ERROR $env(PBX_USER)@127.0.0.1 "echo $env(PBX_MARK)-\$((6*7))"
expect {
  -re "assword: ?$" { send "$env(PBX_PW)\r" }
  timeout { puts "\nE2E: no password prompt"; exit 3 }
}
if {$env(PBX_CODE) eq "-"} {
  expect {
    "Security code:" { puts "\nE2E: unexpected code prompt"; exit 4 }
    eof { exit 0 }
  }
}
expect {
  "Security code: " { send "$env(PBX_CODE)\r" }
  eof { puts "\nE2E: closed before the code prompt"; exit 5 }
  timeout { puts "\nE2E: no code prompt"; exit 3 }
}
expect eof
EXP
}

secret_hex=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
write_config ""
"$enroll" "$tmp/pbx-mfa.conf" "$user" "$secret_hex"
# The secret lives in the home directory, owned by the user, mode 0600.
stat -c '%U %a' "$home/.pbx-mfa" | grep -qx "$user 600" || { echo "FAIL: secret file owner/mode: $(stat -c '%U %a' "$home/.pbx-mfa")"; exit 1; }

start_sshd
fails=0
check() {  # name, expected substring (or !substring for absence), output
  local name=$1 want=$2 out=$3
  if [[ $want == !* ]]; then
    if grep -q -- "${want:1}" <<<"$out"; then echo "FAIL: $name"; fails=$((fails+1)); else echo "PASS: $name"; fi
  else
    if grep -q -- "$want" <<<"$out"; then echo "PASS: $name"; else echo "FAIL: $name"; fails=$((fails+1)); fi
  fi
}

code=$(oathtool --totp "$secret_hex")
out=$(login "$code" ok1 2>&1 || true)
check "password + right code runs the remote command" "ok1-42" "$out"

out=$(login "$code" replay 2>&1 || true)
check "the same code again is refused" "!replay-42" "$out"
check "replayed login was asked for a code" "Security code:" "$out"

wrong=$(printf '%06d' $(( (10#$code + 500000) % 1000000 )))
out=$(login "$wrong" wrong 2>&1 || true)
check "a wrong code is refused" "!wrong-42" "$out"

stop_sshd
write_config "exempt_networks = 127.0.0.0/8"
start_sshd
out=$(login - exempt 2>&1 || true)
check "exempt network: password only, no code asked" "exempt-42" "$out"
stop_sshd

# ---- enroll_at_login over ssh ------------------------------------------------------------
# login2 MARK MODE SCREEN, as $user2. MODE: "none" expects no code prompt; "code:X" expects the
# usual prompt and answers X; "enroll" decodes the QR code the client shows (saved to SCREEN),
# types oathtool's code for it and presses Enter at the recovery codes; "drop" closes the
# connection at the enrollment's code prompt.
login2() {
  PBX_PW="$password" PBX_MARK="$1" PBX_MODE="$2" PBX_SCREEN="$3" PBX_PORT="$port" \
    PBX_USER="$user2" PBX_DECODE="$qr_decode" LC_ALL=C.UTF-8 expect -f - <<'EXP'
set timeout 30
match_max 200000
log_user 1
spawn ssh -F /dev/null -p $env(PBX_PORT) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o PreferredAuthentications=keyboard-interactive -o PubkeyAuthentication=no \
  -o NumberOfPasswordPrompts=1 -o LogLevel=ERROR $env(PBX_USER)@127.0.0.1 "echo $env(PBX_MARK)-\$((6*7))"
set mode $env(PBX_MODE)
expect {
  -re "assword: ?$" { send "[expr {$mode eq "badpw" ? "wrong-$env(PBX_PW)" : $env(PBX_PW)}]\r" }
  timeout { puts "\nE2E: no password prompt"; exit 3 }
}
if {$mode eq "none" || $mode eq "badpw"} {
  expect {
    "Security code:" { puts "\nE2E: unexpected code prompt"; exit 4 }
    "Code from the app:" { puts "\nE2E: unexpected enrollment"; exit 4 }
    eof { exit 0 }
  }
}
if {[string match "tempcode:*" $mode]} {
  expect {
    "Security code: " { send "[string range $mode 9 end]\r" }
    "Code from the app: " { puts "\nE2E: QR code before the temp code"; exit 4 }
    eof { puts "\nE2E: closed before the code prompt"; exit 5 }
    timeout { puts "\nE2E: no code prompt"; exit 3 }
  }
}
if {[string match "code:*" $mode]} {
  expect {
    "Security code: " { send "[string range $mode 5 end]\r" }
    "Code from the app: " { puts "\nE2E: enrollment instead of a code prompt"; exit 4 }
    eof { puts "\nE2E: closed before the code prompt"; exit 5 }
    timeout { puts "\nE2E: no code prompt"; exit 3 }
  }
  expect eof
  exit 0
}
expect {
  "Code from the app: " {}
  eof { puts "\nE2E: closed before the enrollment prompt"; exit 5 }
  timeout { puts "\nE2E: no enrollment prompt"; exit 3 }
}
set f [open $env(PBX_SCREEN) w]
puts -nonewline $f $expect_out(buffer)
close $f
if {$mode eq "drop"} { close; wait; exit 0 }
if {[catch {exec $env(PBX_DECODE) $env(PBX_SCREEN)} uri]} { puts "\nE2E: QR code not decoded: $uri"; exit 6 }
if {![regexp {secret=([A-Z2-7]+)} $uri -> secret]} { puts "\nE2E: no secret in the QR code"; exit 6 }
send "[exec oathtool --totp -b $secret]\r"
expect {
  "Press Enter once you have stored them: " {
    set f [open $env(PBX_SCREEN) a]
    puts -nonewline $f $expect_out(buffer)
    close $f
    send "\r"
  }
  eof { puts "\nE2E: closed after the code"; exit 5 }
  timeout { puts "\nE2E: no recovery codes"; exit 3 }
}
expect eof
EXP
}

write_config "enroll_at_login = yes
require = group:$group
recovery_codes = 2"
start_sshd
screen="$tmp/screen"
out=$(login2 notreq none "$screen" 2>&1 || true)
check "enroll_at_login: a user outside the require group logs in with the password only" "notreq-42" "$out"

usermod -aG "$group" "$user2"
out=$(login2 badpw badpw "$screen" 2>&1 || true)
check "a wrong password never reaches the enrollment (no code prompt)" "!unexpected" "$out"
check "a wrong password is refused" "!badpw-42" "$out"
if [ -e "$home2/.pbx-mfa" ]; then echo "FAIL: a wrong password enrolled"; fails=$((fails+1)); fi
out=$(login2 enroll enroll "$screen" 2>&1 || true)
check "added to the require group: the next login enrolls and runs the remote command" "enroll-42" "$out"
if stat -c '%U %a' "$home2/.pbx-mfa" 2>/dev/null | grep -qx "$user2 600"; then
  echo "PASS: the enrolled secret is in the home, owned by the user, mode 600"
else
  echo "FAIL: enrolled secret file: $(stat -c '%U %a' "$home2/.pbx-mfa" 2>&1)"; fails=$((fails+1))
fi
shown_uri=$(grep -a -o 'URI: otpauth://[^[:space:]]*' "$screen" | head -n 1 | cut -c 6- || true)
decoded_uri=$("$qr_decode" "$screen" 2>&1 || true)
if [ -n "$shown_uri" ] && [ "$shown_uri" = "$decoded_uri" ]; then
  echo "PASS: the QR code on the ssh client's screen decodes (zbarimg) to the URI shown"
else
  echo "FAIL: QR code vs URI: decoded '$decoded_uri', shown '$shown_uri'"; fails=$((fails+1))
fi
if LC_ALL=C grep -q $'\x1b' "$screen"; then
  echo "FAIL: escape sequences reached the ssh client's screen"; fails=$((fails+1))
else
  echo "PASS: no escape sequences in the enrollment text"
fi
echo "--- the ssh client's screen during enrollment (key, URI secret and QR rows redacted) ---"
LC_ALL=C.UTF-8 sed -E -e 's/secret=[A-Z2-7]+/secret=REDACTED/' -e 's/^Key: .*/Key: XXXX XXXX XXXX XXXX XXXX XXXX XXXX XXXX/' \
  -e 's/[a-z]{4}-[a-z]{4}-[a-z]{4}/xxxx-xxxx-xxxx/g' "$screen" |
  LC_ALL=C.UTF-8 awk '/^[ ▀▄█]+\r?$/ { n++; next } n { print "[" n " lines of QR half blocks]"; n = 0 } { print }'
echo "--- end of screen ---"

recovery=$(grep -a -o -E '[a-z]{4}-[a-z]{4}-[a-z]{4}' "$screen" | head -n 1 || true)
out=$(login2 second "code:$recovery" "$screen.2" 2>&1 || true)
check "the next login asks for a code (a shown recovery code works)" "second-42" "$out"

if "$pbx_mfa" --config "$tmp/pbx-mfa.conf" reset --user "$user2" >/dev/null; then
  echo "PASS: pbx-mfa reset --user"
else
  echo "FAIL: pbx-mfa reset --user"; fails=$((fails+1))
fi
out=$(login2 dropped drop "$screen.3" 2>&1 || true)
check "after a reset the next login enrolls again" "Code from the app" "$(cat "$screen.3" 2>/dev/null)"
check "a dropped connection during enrollment runs nothing" "!dropped-42" "$out"
if [ -e "$home2/.pbx-mfa" ]; then
  echo "FAIL: a dropped enrollment saved a secret"; fails=$((fails+1))
else
  echo "PASS: a dropped enrollment saved nothing"
fi
stop_sshd

# ---- enroll_at_login = with-code over ssh ----------------------------------------------------
# issue_temp_code USER: the code, from `pbx-mfa temp-code` (or the test tool while the CLI has
# no temp-code command).
issue_temp_code() {
  if "$pbx_mfa" --help 2>/dev/null | grep -qE '^ +temp-code '; then
    "$pbx_mfa" --config "$tmp/pbx-mfa.conf" temp-code --user "$1" --json |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["code"])'
  else
    "$temp_code_tool" "$tmp/pbx-mfa.conf" "$1"
  fi
}
write_config "enroll_at_login = with-code
require = group:$group
recovery_codes = 2"
start_sshd
out=$(login2 nocode "code:123456" "$screen.4" 2>&1 || true)
check "with-code, no temp code: the usual code prompt" "Security code:" "$out"
check "with-code, no temp code: refused" "!nocode-42" "$out"
check "with-code, no temp code: no QR code or key shown" "!Key: " "$out"
check "with-code, no temp code: no enrollment prompt" "!Code from the app" "$out"
if [ -e "$home2/.pbx-mfa" ]; then echo "FAIL: with-code enrolled without a temp code"; fails=$((fails+1)); fi

tc=$(issue_temp_code "$user2" || true)
if [[ $tc =~ ^[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}$ ]]; then
  echo "PASS: a temp code was issued"
else
  echo "FAIL: no temp code issued: '$tc'"; fails=$((fails+1))
fi
out=$(login2 withcode "tempcode:$tc" "$screen.5" 2>&1 || true)
check "with-code: the temp code leads to the QR code, its code enrolls and the command runs" "withcode-42" "$out"
check "with-code: the temp code was accepted" "Temporary access code accepted" "$out"
shown_uri=$(grep -a -o 'URI: otpauth://[^[:space:]]*' "$screen.5" | head -n 1 | cut -c 6- || true)
decoded_uri=$("$qr_decode" "$screen.5" 2>&1 || true)
if [ -n "$shown_uri" ] && [ "$shown_uri" = "$decoded_uri" ]; then
  echo "PASS: with-code: the QR code shown after the temp code decodes to the URI shown"
else
  echo "FAIL: with-code QR code vs URI: decoded '$decoded_uri', shown '$shown_uri'"; fails=$((fails+1))
fi
if stat -c '%U %a' "$home2/.pbx-mfa" 2>/dev/null | grep -qx "$user2 600"; then
  echo "PASS: with-code: the secret is saved in the home"
else
  echo "FAIL: with-code: enrolled secret file: $(stat -c '%U %a' "$home2/.pbx-mfa" 2>&1)"; fails=$((fails+1))
fi
out=$(login2 spent "code:$tc" "$screen.6" 2>&1 || true)
check "with-code: the spent temp code opens nothing afterwards" "!spent-42" "$out"
stop_sshd

if [ $fails -ne 0 ]; then
  echo "--- sshd log ---"; tail -50 "$tmp/sshd.log"
  echo "ssh e2e: $fails checks failed"; exit 1
fi
echo "ssh e2e: all checks passed"

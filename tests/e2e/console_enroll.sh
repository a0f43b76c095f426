#!/usr/bin/env bash
# End-to-end: enrollment inside a console-style login. pamtester runs a test-only PAM service
# (only our module, enroll_at_login = yes) in a pseudo-terminal (expect's spawn), the way a
# console login would; the test reads the screen like a user would.
#   console_enroll.sh MODULE_SO PBX_MFA_CLI QR_DECODE_TOOL
# Checks: the first login shows a QR code that scans (zbarimg) to the URI it prints, takes the
# code computed (oathtool) from the decoded secret, shows the recovery codes and saves the
# secret (owner, mode 0600, no escape sequences on the screen); the next login asks for a code
# (the confirmation code is used up, a recovery code works once); `pbx-mfa reset` sends the
# user through enrollment again, three wrong codes save nothing; a dropped connection saves
# nothing; a symlink at the secret path is neither followed nor replaced.
# Cleans up user, PAM file, temporary directory.
set -euo pipefail
module=$(readlink -f "$1")
cli=$(readlink -f "$2")
qrdecode=$(readlink -f "$3")
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (creates a test user and a PAM service)"; exit 77; }
for tool in pamtester expect oathtool zbarimg useradd userdel; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done

tmp=$(mktemp -d /tmp/pbx-e2e-console.XXXXXX)
chmod 755 "$tmp"
user="pbxtest$$"
user=${user:0:31}
service="pbxtest-console-$$"

cleanup() {
  rm -f "/etc/pam.d/$service"
  if id "$user" >/dev/null 2>&1; then userdel -r "$user" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND"' ERR

useradd -m -s /bin/sh "$user"
home=$(getent passwd "$user" | cut -d: -f6)
secret_file="$home/.pbx-mfa"

mkdir -m 700 "$tmp/state"
cat > "$tmp/pbx-mfa.conf" <<CONF
secret_path = %h/.pbx-mfa
state_dir = $tmp/state
enroll_at_login = yes
recovery_codes = 2
window = 1
CONF
chmod 644 "$tmp/pbx-mfa.conf"

# pamtester's "authenticate" calls pam_authenticate only; the account line keeps the service a
# complete stack for anything that looks at it.
cat > "/etc/pam.d/$service" <<PAM
auth required $module config=$tmp/pbx-mfa.conf nodelay
account required pam_permit.so
PAM

# One login: pamtester in a pty. Files written under $tmp/NAME.*: .log (whole screen),
# .screen (everything up to the first prompt), .decoded (URI from the QR code), .codes (the
# screen up to "Press Enter ..."). Prints "E2E: ..." lines; the last one is "E2E: exit N" with
# pamtester's exit status (or "E2E: killed"/"E2E: closed" when the test dropped the login).
#   MODE: enroll-right | enroll-wrong3 | enroll-drop | enroll-drop-after-code | code
cat > "$tmp/drive.exp" <<'EXP'
set mode [lindex $argv 0]
set out [lindex $argv 1]
set answer [lindex $argv 2]
set timeout 20
match_max 1000000
log_user 0
log_file -noappend -a $out.log
proc save {file text} { set f [open $file w]; puts -nonewline $f $text; close $f }
proc finish {{at_eof 0}} {
  if {!$at_eof} { expect { eof {} timeout { puts "E2E: no end of login"; exit 3 } } }
  set r [wait]
  puts "E2E: exit [lindex $r 3]"
  exit 0
}
proc compute_code {secret} { return [exec oathtool --totp -b $secret] }
spawn pamtester $env(PBX_SERVICE) $env(PBX_USER) authenticate

if {$mode eq "code"} {
  expect {
    -re "Security code: $" { save $out.screen $expect_out(buffer); send "$answer\r" }
    -re "Code from the app: $" { save $out.screen $expect_out(buffer); puts "E2E: enrollment instead of a code prompt"; exit 4 }
    eof { puts "E2E: ended before the code prompt"; finish 1 }
    timeout { puts "E2E: no code prompt"; exit 3 }
  }
  finish
}

expect {
  -re "Code from the app: $" { save $out.screen $expect_out(buffer) }
  -re "Security code: $" { save $out.screen $expect_out(buffer); puts "E2E: code prompt instead of enrollment"; exit 4 }
  eof { save $out.screen $expect_out(buffer); puts "E2E: ended before the enrollment prompt"; finish 1 }
  timeout { puts "E2E: no enrollment prompt"; exit 3 }
}
if {[catch {exec $env(PBX_QRDECODE) $out.screen} decoded]} {
  puts "E2E: QR code does not decode: $decoded"
  set decoded ""
}
save $out.decoded $decoded
if {![regexp {secret=([A-Z2-7]+)} $decoded -> secret]} {
  # Wrong-code and drop modes need no working QR code; take the secret from the URI line.
  regexp {URI: otpauth://[^\r\n]*secret=([A-Z2-7]+)} [exec cat $out.screen] -> secret
}
if {![info exists secret]} { puts "E2E: no secret on the screen"; exit 6 }

switch -- $mode {
  enroll-drop {
    # The line drops at the code prompt: the pty closes under pamtester (hangup).
    set pid [exp_pid]
    close
    catch {wait}
    catch {exec kill -KILL $pid}
    puts "E2E: closed"
    exit 0
  }
  enroll-wrong3 {
    set right [compute_code $secret]
    set wrong [format %06d [expr {([scan $right %d] + 500000) % 1000000}]]
    send "$wrong\r"
    for {set i 2} {$i <= 3} {incr i} {
      expect {
        -re "Code from the app: $" { send "$wrong\r" }
        eof { puts "E2E: ended after [expr {$i - 1}] wrong codes"; finish 1 }
        timeout { puts "E2E: no prompt after a wrong code"; exit 3 }
      }
    }
    finish
  }
}

# enroll-right, enroll-drop-after-code: the right code, from the decoded QR code when it scans.
set code [compute_code $secret]
save $out.confirm $code
# What happens on the machine while the user reads the screen (the symlink race below).
if {[info exists env(PBX_HOOK)] && $env(PBX_HOOK) ne ""} { exec sh -c $env(PBX_HOOK) }
send "$code\r"
expect {
  -re "Press Enter once you have stored them: $" { save $out.codes $expect_out(buffer) }
  -re "Code from the app: $" { puts "E2E: right code refused"; exit 7 }
  eof { puts "E2E: ended before the recovery codes"; finish 1 }
  timeout { puts "E2E: no recovery codes"; exit 3 }
}
if {$mode eq "enroll-drop-after-code"} {
  exec kill -KILL [exp_pid]
  catch {close}
  catch {wait}
  puts "E2E: killed"
  exit 0
}
send "\r"
finish
EXP

fails=0
checks=0
pass() { checks=$((checks+1)); echo "PASS: $1"; }
fail() { checks=$((checks+1)); fails=$((fails+1)); echo "FAIL: $1"; }
check() {  # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
has() { grep -qF -- "$2" "$1"; }        # file, fixed string
lacks() { ! grep -qF -- "$2" "$1"; }

# login NAME MODE [ANSWER]: drives one login, output in $tmp/NAME.out.
login() {
  local name=$1 mode=$2 answer=${3:-}
  PBX_SERVICE="$service" PBX_USER="$user" PBX_QRDECODE="$qrdecode" PBX_HOOK="${hook:-}" \
    expect -f "$tmp/drive.exp" "$mode" "$tmp/$name" "$answer" >"$tmp/$name.out" 2>&1 || true
  touch "$tmp/$name.log" "$tmp/$name.screen"
}
status_of() { sed -n 's/^E2E: exit //p' "$tmp/$1.out" | tail -1; }
succeeded() { [ "$(status_of "$1")" = 0 ] && has "$tmp/$1.log" "successfully authenticated"; }
refused() { local s; s=$(status_of "$1"); [ -n "$s" ] && [ "$s" != 0 ] && lacks "$tmp/$1.log" "successfully authenticated"; }
no_secret() { ! compgen -G "$home/.pbx-mfa*" >/dev/null; }   # no file, link or temporary file

# (1) First login: enrollment inside the login.
login first enroll-right
shown_uri=$(grep -a '^URI: ' "$tmp/first.screen" | head -1 | sed 's/^URI: //; s/\r$//')
decoded_uri=$(cat "$tmp/first.decoded" 2>/dev/null || true)
check "first login shows the enrollment (QR code, key, URI) and asks 'Code from the app: '" \
  has "$tmp/first.screen" "no authenticator app is set up yet"
check "the QR code decodes (zbarimg) to an otpauth URI" \
  grep -q '^otpauth://totp/.*secret=[A-Z2-7]' "$tmp/first.decoded"
check "the decoded URI equals the 'URI: ' line shown" \
  test -n "$shown_uri" -a "$decoded_uri" = "$shown_uri"
secret=$(sed -n 's/.*secret=\([A-Z2-7]*\).*/\1/p' "$tmp/first.decoded")
key_line=$(grep -a '^Key: ' "$tmp/first.screen" | head -1 | sed 's/^Key: //; s/\r$//')
check "the 'Key: ' line is the secret in groups of four" \
  test -n "$secret" -a "$(tr -d ' ' <<<"$key_line")" = "$secret" -a \
       "$(sed 's/\(....\)/\1 /g; s/ $//' <<<"$secret")" = "$key_line"
check "the URI names the user and the SHA1/6/30 parameters" \
  grep -q "^otpauth://totp/[^:]*:$user?secret=[A-Z2-7]*&issuer=[^&]*&algorithm=SHA1&digits=6&period=30$" \
  "$tmp/first.decoded"
mapfile -t rcodes < <(grep -ao '^  [a-z0-9]\{4\}-[a-z0-9]\{4\}-[a-z0-9]\{4\}' "$tmp/first.codes" 2>/dev/null | sed 's/^  //')
check "the right code is accepted and 2 recovery codes are shown before 'Press Enter ...'" \
  test "${#rcodes[@]}" = 2
check "pamtester: successfully authenticated" succeeded first
check "'Two-factor authentication is set up for $user.' is shown" \
  has "$tmp/first.log" "Two-factor authentication is set up for $user."
check "the secret file ~/.pbx-mfa exists, regular file, owned by the user, mode 600" \
  test -f "$secret_file" -a ! -L "$secret_file" -a "$(stat -c '%U %a' "$secret_file" 2>/dev/null)" = "$user 600"
check "no escape byte on the screen" \
  bash -c '! grep -q $'"'"'\x1b'"'"' "$1"' _ "$tmp/first.log"
check "the secret does not land in the state dir or the config dir" \
  bash -c '! grep -rqF -- "$1" "$2/state" "$2/pbx-mfa.conf"' _ "${secret:-none}" "$tmp"

# (2) Later logins ask for a code; the confirmation code is used up; a recovery code works once.
confirm=$(cat "$tmp/first.confirm" 2>/dev/null || echo 000000)
login replay code "$confirm"
check "second login asks 'Security code: ' (no QR code)" \
  bash -c 'grep -q "Security code: " "$1" && ! grep -q "authenticator app is set up yet" "$1"' _ "$tmp/replay.log"
check "the enrollment's confirmation code is refused (used up)" refused replay
login recovery code "${rcodes[0]:-none}"
check "a recovery code logs in" succeeded recovery
login recovery2 code "${rcodes[0]:-none}"
check "the same recovery code again is refused" refused recovery2
check "the other recovery code is still left (pbx-mfa status)" \
  bash -c '"$1" status --user "$2" --config "$3" --json | grep -q "\"recovery_codes_left\": *1"' \
  _ "$cli" "$user" "$tmp/pbx-mfa.conf"

# (3) pbx-mfa reset sends the user through enrollment again; three wrong codes save nothing.
"$cli" reset --user "$user" --config "$tmp/pbx-mfa.conf" >"$tmp/reset.out" 2>&1 && reset_rc=0 || reset_rc=$?
check "pbx-mfa reset --user exits 0" test "$reset_rc" = 0
check "pbx-mfa reset removes ~/.pbx-mfa" test ! -e "$secret_file"
login wrong3 enroll-wrong3
check "after reset the next login shows the enrollment again" \
  has "$tmp/wrong3.screen" "no authenticator app is set up yet"
check "the new enrollment has a new secret" \
  bash -c '! grep -qF -- "secret=$1&" "$2"' _ "${secret:-none}" "$tmp/wrong3.screen"
check "two 'Wrong code' messages with tries left" \
  bash -c 'grep -q "(2 tries left)" "$1" && grep -q "(1 try left)" "$1"' _ "$tmp/wrong3.log"
check "'Wrong code 3 times; nothing was saved' after the third" has "$tmp/wrong3.log" "Wrong code 3 times; nothing was saved"
check "three wrong codes: pamtester reports a failure" refused wrong3
check "three wrong codes: no ~/.pbx-mfa afterwards" no_secret

# (4) A dropped connection saves nothing.
login drop enroll-drop
check "dropped at the code prompt: the enrollment had started afresh" \
  has "$tmp/drop.screen" "no authenticator app is set up yet"
check "dropped at the code prompt: the login was cut" has "$tmp/drop.out" "E2E: closed"
sleep 0.5
check "dropped at the code prompt: no ~/.pbx-mfa" no_secret
login drop2 enroll-drop-after-code
check "right code, killed at 'Press Enter ...': the recovery codes were shown" \
  test -s "$tmp/drop2.codes"
check "right code, killed at 'Press Enter ...': the login was cut" has "$tmp/drop2.out" "E2E: killed"
sleep 0.5
check "right code, killed before the codes were confirmed: no ~/.pbx-mfa" no_secret

# (5) A symlink at the secret path is neither followed nor replaced. The target is writable by
# the user, so a save that followed the link with the user's ids would succeed.
echo untouched > "$tmp/target"
chown "$user" "$tmp/target"
chmod 600 "$tmp/target"
link_intact() { [ -L "$secret_file" ] && [ "$(readlink "$secret_file")" = "$1" ]; }
# (5a) A symlink there before the login: the secret is unsafe, the login is refused before any
# key is shown (PAM_AUTHINFO_UNAVAIL).
ln -s "$tmp/target" "$secret_file"
chown -h "$user" "$secret_file"
login symlink enroll-right
check "symlink before the login: refused with PAM_AUTHINFO_UNAVAIL, no key shown" \
  bash -c 'grep -q "cannot retrieve authentication info" "$1" && ! grep -q "otpauth://" "$1"' _ "$tmp/symlink.log"
check "symlink before the login: pamtester reports a failure" refused symlink
check "symlink before the login: the target is unchanged" test "$(cat "$tmp/target")" = untouched
check "symlink before the login: still a symlink to the same target" link_intact "$tmp/target"
# (5b) A dangling symlink: following it would create the file it names.
rm -f "$secret_file"
ln -s "$tmp/created" "$secret_file"
chown -h "$user" "$secret_file"
login dangling enroll-right
check "dangling symlink before the login: pamtester reports a failure" refused dangling
check "dangling symlink before the login: nothing created through it" test ! -e "$tmp/created"
check "dangling symlink before the login: still the same symlink" link_intact "$tmp/created"
# (5c) The user plants the symlink while the enrollment waits for the code: the right code is
# accepted, the save must still refuse the link.
rm -f "$secret_file"
hook="ln -s '$tmp/target' '$secret_file' && chown -h '$user' '$secret_file'"
login race enroll-right
hook=""
check "symlink planted during the enrollment: the enrollment had been shown" \
  has "$tmp/race.screen" "no authenticator app is set up yet"
# The module meets an existing entry at the secret path when it saves; a symlink is not a
# parallel enrollment, so it says the key could not be saved (PAM_AUTHINFO_UNAVAIL), never
# "another login set it up".
check "symlink planted during the enrollment: the user is told the key could not be saved" \
  grep -q "could not be saved" "$tmp/race.log"
check "symlink planted during the enrollment: not passed off as a parallel enrollment" \
  lacks "$tmp/race.log" "meanwhile"
check "symlink planted during the enrollment: pamtester reports a failure" refused race
check "symlink planted during the enrollment: the target is unchanged" test "$(cat "$tmp/target")" = untouched
check "symlink planted during the enrollment: still a symlink to the same target" link_intact "$tmp/target"
check "symlink planted during the enrollment: no success message" \
  lacks "$tmp/race.log" "Two-factor authentication is set up"
leftovers=$(compgen -G "$home/.pbx-mfa*" | wc -l)
check "no temporary files left in the home directory" test "$leftovers" = 1

if [ $fails -ne 0 ]; then
  for n in first replay recovery recovery2 wrong3 drop drop2 symlink dangling race; do
    [ -f "$tmp/$n.out" ] || continue
    echo "--- $n: driver ---"; cat "$tmp/$n.out"
    echo "--- $n: screen (secrets redacted) ---"
    sed -E 's/secret=[A-Z2-7]+/secret=REDACTED/; s/^Key: .*/Key: REDACTED/; s/[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}/xxxx-xxxx-xxxx/' "$tmp/$n.log" 2>/dev/null | grep -av '[▀▄█]' | tail -25
  done
  echo "console e2e: $checks checks, $fails failed"; exit 1
fi
echo "console e2e: all $checks checks passed"

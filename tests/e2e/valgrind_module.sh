#!/usr/bin/env bash
# The built module under valgrind memcheck, through pamtester in a pseudo-terminal (expect):
#   valgrind_module.sh MODULE_SO
# Three logins of a real account (daemon; its secret outside its home, in a root-owned
# temporary store): enrollment at login (the key read from the "Key: " line, the code computed
# with oathtool, the recovery codes confirmed), success (the next step's code), failure (a
# wrong code). Each must end as expected with "ERROR SUMMARY: 0 errors" and no definitely lost
# bytes. libpam and pamtester may keep "still reachable" blocks; only definite leaks and
# errors count (no suppression file is needed). Prints PASS:/FAIL: lines; cleans up the PAM
# file and the temporary directory.
set -euo pipefail
# shellcheck source=tests/e2e/lib/module_store.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/module_store.sh"
module=$(readlink -f "$1")
user=daemon
pbx_e2e_module_store vg "$module" "enroll_at_login = yes" "recovery_codes = 2" "window = 1" \
  -- "account required pam_permit.so"
pbx_e2e_need valgrind pamtester expect oathtool

vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --track-origins=no --keep-debuginfo=yes --num-callers=30)

# One login: MODE enroll | code ANSWER. The screen goes to $tmp/NAME.screen, valgrind's report
# to $tmp/NAME.vg; prints "VG: exit N" with the exit status of valgrind (pamtester's, or 99).
cat > "$tmp/drive.exp" <<'EXP'
set mode [lindex $argv 0]
set out [lindex $argv 1]
set answer [lindex $argv 2]
set timeout 180
match_max 1000000
log_user 0
log_file -noappend -a $out.screen
proc finish {} {
  expect { eof {} timeout { puts "VG: no end of login"; exit 3 } }
  set r [wait]
  puts "VG: exit [lindex $r 3]"
  exit 0
}
spawn {*}$env(PBX_VG) --log-file=$out.vg pamtester $env(PBX_SERVICE) $env(PBX_USER) authenticate
if {$mode eq "code"} {
  expect {
    -re "Security code: $" { send "$answer\r" }
    eof { puts "VG: ended before the code prompt"; exit 4 }
    timeout { puts "VG: no code prompt"; exit 3 }
  }
  finish
}
expect {
  -re "Key: (\[A-Z2-7 \]+)\r?\n" { set key [string map {" " ""} $expect_out(1,string)] }
  eof { puts "VG: ended before the key"; exit 4 }
  timeout { puts "VG: no key shown"; exit 3 }
}
expect {
  -re "Code from the app: $" {}
  eof { puts "VG: ended before the enrollment prompt"; exit 4 }
  timeout { puts "VG: no enrollment prompt"; exit 3 }
}
send "[exec oathtool --totp -b $key]\r"
expect {
  -re "Press Enter once you have stored them: $" { send "\r" }
  -re "Code from the app: $" { puts "VG: right code refused"; exit 5 }
  eof { puts "VG: ended before the recovery codes"; exit 4 }
  timeout { puts "VG: no recovery codes"; exit 3 }
}
puts "VG: key $key"
finish
EXP

fails=0
pass() { echo "PASS: $1"; }
fail() { fails=$((fails+1)); echo "FAIL: $1"; }

# login NAME MODE [ANSWER], then the checks on its exit status and valgrind's report.
login() {
  local name=$1 mode=$2 answer=${3:-} want=$4
  PBX_VG="${vg[*]}" PBX_SERVICE="$service" PBX_USER="$user" \
    expect -f "$tmp/drive.exp" "$mode" "$tmp/$name" "$answer" >"$tmp/$name.out" 2>&1 || true
  local status report
  status=$(sed -n 's/^VG: exit //p' "$tmp/$name.out" | tail -1)
  report="$tmp/$name.vg"
  echo "--- $name: valgrind summary"
  grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|All heap blocks' \
    "$report" 2>/dev/null | sed 's/^==[0-9]*== */  /' || true
  if [ "$status" = "$want" ]; then
    pass "$name: pamtester exit status $status"
  else
    fail "$name: pamtester exit status '${status:-none}', expected $want ($(grep '^VG:' "$tmp/$name.out" | tr '\n' ' '))"
    sed 's/\r//' "$tmp/$name.screen" 2>/dev/null | grep -av '^[▀▄█ ]*$' | tail -n 20 | sed 's/^/  screen: /'
  fi
  if grep -q 'ERROR SUMMARY: 0 errors' "$report" 2>/dev/null; then
    pass "$name: valgrind reports 0 errors"
  else
    fail "$name: valgrind reports errors (or no report)"
    sed 's/^==[0-9]*== */  /' "$report" 2>/dev/null | head -n 80
  fi
  # No "definitely lost" line at all (nothing leaked) or one with 0 bytes.
  if [ -s "$report" ] && ! grep -E 'definitely lost: [1-9]' "$report" >/dev/null; then
    pass "$name: no definitely lost bytes"
  else
    fail "$name: definitely lost bytes (or no report)"
  fi
}

# (1) Enrollment at the first login.
login enroll enroll "" 0
key=$(sed -n 's/^VG: key //p' "$tmp/enroll.out" | tail -1)
if [ -n "$key" ] && [ -f "$tmp/secrets/$user" ]; then
  pass "enroll: the secret was saved"
else
  fail "enroll: no secret saved"
fi

# (2) Success: the next step's code (the confirmation code used this step's).
if [ -n "$key" ]; then
  login success code "$(oathtool --totp -b "$key" -N "now + 30 seconds")" 0
  grep -q "successfully authenticated" "$tmp/success.screen" && pass "success: authenticated" \
    || fail "success: not authenticated"
fi

# (3) Failure: a wrong code (the right one plus 500000) must be refused.
if [ -n "$key" ]; then
  right=$(oathtool --totp -b "$key")
  login failure code "$(printf '%06d' $(( (10#$right + 500000) % 1000000 )))" 1
  grep -q "Authentication failure" "$tmp/failure.screen" && pass "failure: refused" \
    || fail "failure: not refused"
fi

if [ "$fails" -eq 0 ]; then echo "valgrind: all logins clean"; else echo "valgrind: $fails failed checks"; fi
[ "$fails" -eq 0 ]

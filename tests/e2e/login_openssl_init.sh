#!/usr/bin/env bash
# A login does not initialise OpenSSL (issue 20): in a host that has not (pamtester, like login,
# su or sudo), the first EVP call would load the config file and the default provider, about
# 6.7 M instructions and most of a cold login's cost. The module hashes with OpenSSL's low-level
# SHA functions instead (lib/src/hmac.cpp), which initialise nothing.
#   login_openssl_init.sh MODULE_SO PBX_TEST_ENROLL
# How it is seen: OPENSSL_CONF names a file that does not exist, and strace records every file
# the login process opens; OpenSSL's initialisation opens that name. The control: the same
# environment around `openssl dgst` must open it, or the check could not fail.
# A successful and a wrong-code login of a real account (daemon, secret outside its home, in a
# root-owned temporary store). Prints PASS:/FAIL: lines; removes the PAM file and the directory.
set -euo pipefail
# shellcheck source=tests/e2e/lib/module_store.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/module_store.sh"
module=$(readlink -f "$1")
enroll=$(readlink -f "$2")
user=daemon
pbx_e2e_module_store sslinit "$module" "window = 1"
pbx_e2e_need strace pamtester oathtool openssl
key=3132333435363738393031323334353637383930
"$enroll" "$tmp/pbx-mfa.conf" "$user" "$key" >/dev/null
marker="$tmp/openssl-init-marker.cnf"  # never created: only its opening is looked for

fails=0
found() {  # FILE STRING: prints 0 when FILE holds STRING, else 1
  if grep -qF -- "$2" "$1"; then echo 0; else echo 1; fi
}
check() {  # NAME STATUS (0: passed) MESSAGE
  if [ "$2" = 0 ]; then echo "PASS: $1"; else echo "FAIL: $1: $3"; fails=$((fails + 1)); fi
}

# The control first: something that initialises OpenSSL opens the marker name.
OPENSSL_CONF=$marker strace -f -qq -e trace=open,openat -o "$tmp/control.trace" \
  openssl dgst -sha256 </dev/null >/dev/null 2>&1 || true
check "control: OpenSSL's initialisation opens OPENSSL_CONF" "$(found "$tmp/control.trace" "$marker")" \
  "the check below could not fail"

# login NAME ANSWER EXPECTED-STATUS
login() {
  local status=0
  printf '%s\n' "$2" | OPENSSL_CONF=$marker strace -f -qq -e trace=open,openat \
    -o "$tmp/$1.trace" pamtester "$service" "$user" authenticate >"$tmp/$1.out" 2>&1 || status=$?
  check "$1 login ends with status $3" "$([ "$status" = "$3" ] && echo 0 || echo 1)" \
    "status $status: $(tr '\n' ' ' <"$tmp/$1.out")"
  check "$1 login loads libcrypto (the module links it)" "$(found "$tmp/$1.trace" libcrypto.so)" \
    "no libcrypto in the trace"
  check "$1 login reads the secret file" "$(found "$tmp/$1.trace" "$tmp/secrets/$user")" \
    "the trace shows no read of it"
  check "$1 login does not initialise OpenSSL" "$((1 - $(found "$tmp/$1.trace" "$marker")))" \
    "$(grep -F "$marker" "$tmp/$1.trace" | head -1)"
}
code=$(oathtool --totp -d 6 "$key")
wrong=$(printf '%06d' $(((10#$code + 1) % 1000000)))
login success "$code" 0
login wrong "$wrong" 1

[ "$fails" = 0 ] || { echo "FAIL: $fails check(s) failed"; exit 1; }
echo "PASS: no login initialised OpenSSL"

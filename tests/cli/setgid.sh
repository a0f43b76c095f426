#!/bin/bash
# The real pbx-mfa binary installed set-gid (a copy owned by a throw-away group, mode 2755),
# run by an ordinary user: the kernel sets AT_SECURE and pbx-mfa must refuse to run (review
# L9); the same copy without the set-gid bit runs. And the library in such a process (the
# module may be loaded by a set-gid program): a non-root process trusts its own files where
# root's are required, but not when AT_SECURE is set (pbx-test-enroll loads a config).
#
# Usage: setgid.sh PBX_MFA_BINARY PBX_TEST_ENROLL_BINARY
# Needs root (it adds a group). Exit 77 = skipped. Every failure prints "FAIL:".
set -u

BIN=${1:?pbx-mfa binary}
ENROLL=${2:?pbx-test-enroll binary}
GROUP_NAME=pbxtestsgid

fail() {
  echo "FAIL: $*"
  exit 1
}

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (adds the group $GROUP_NAME)"
  exit 77
fi
if grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status; then
  echo "SKIP: no_new_privs is set: the kernel would ignore the set-gid bit"
  exit 77
fi
command -v setpriv >/dev/null || fail "setpriv is missing (apt-get install util-linux)"

WORK=$(mktemp -d /tmp/pbx-setgid-XXXXXX)
cleanup() {
  groupdel "$GROUP_NAME" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
chmod 0755 "$WORK"
groupdel "$GROUP_NAME" >/dev/null 2>&1
groupadd "$GROUP_NAME" || fail "groupadd $GROUP_NAME"

cp "$BIN" "$WORK/pbx-mfa" || fail "cannot copy $BIN"
chgrp "$GROUP_NAME" "$WORK/pbx-mfa" || fail "chgrp"
chmod 0755 "$WORK/pbx-mfa"

as_nobody() {
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

# Without the set-gid bit the copy runs for an ordinary user.
out=$(as_nobody "$WORK/pbx-mfa" --version 2>&1)
rc=$?
[ "$rc" = 0 ] || fail "the plain copy did not run (exit $rc): $out"

chmod 2755 "$WORK/pbx-mfa" || fail "chmod 2755"
out=$(as_nobody "$WORK/pbx-mfa" --version 2>&1)
rc=$?
[ "$rc" = 4 ] || fail "the set-gid copy ran (exit $rc, expected 4): $out"
case $out in
  *"refusing to run with privileges its caller does not have"*) ;;
  *) fail "no clear message from the set-gid copy: $out" ;;
esac
echo "ok: set-gid copy refused: $out"

# The library: a config owned by the running user is trusted by a plain process of that user,
# never by a set-gid one.
cp "$ENROLL" "$WORK/enroll" || fail "cannot copy $ENROLL"
chgrp "$GROUP_NAME" "$WORK/enroll" || fail "chgrp"
chmod 0755 "$WORK/enroll"
printf 'digits = 6\n' >"$WORK/pbx-mfa.conf"
chown nobody "$WORK/pbx-mfa.conf"
chmod 0644 "$WORK/pbx-mfa.conf"
out=$(as_nobody "$WORK/enroll" "$WORK/pbx-mfa.conf" pbxtest-no-such-user 00 2>&1)
case $out in
  *"owned by uid"*) fail "a plain process refused its own config: $out" ;;
esac
chmod 2755 "$WORK/enroll" || fail "chmod 2755"
out=$(as_nobody "$WORK/enroll" "$WORK/pbx-mfa.conf" pbxtest-no-such-user 00 2>&1)
case $out in
  *"owned by uid 65534, expected uid 0"*) ;;
  *) fail "a set-gid process trusted its caller's config: $out" ;;
esac
echo "ok: set-gid process refused its caller's config: $out"

#!/usr/bin/env bash
# End-to-end: the Cockpit page pbx-mfa and Cockpit logins through the built module, in a real
# browser (headless Chromium driven by Selenium, tests/e2e/cockpit/test_cockpit.py).
#   run.sh MODULE_SO PBX_MFA_CLI
# Everything the test changes on the system is bind-mounted inside a private mount namespace
# (the script re-executes itself under `unshare --mount --propagation private`), so nothing on
# the real system changes and everything vanishes with the namespace:
#   /etc/pam.d/cockpit   a test stack: pam_unix, then the built module by absolute path
#   /etc/security        a copy with a test pbx-mfa.conf (state in the test's directory,
#                        enroll_at_login = yes for the members of group pbxtest-ckreq)
#   /usr/share/cockpit   a copy plus the page (cockpit/pbx-mfa/ of this tree as pbx-mfa/)
#   /usr/local/bin       a copy plus the built CLI as pbx-mfa (the bridge's PATH and sudo's
#                        secure_path both find it there)
#   /etc/sudoers.d       a copy plus a snippet giving pbxtest-ckadm sudo with a password
#                        (checked with visudo -cf)
# Then cockpit-ws --no-tls on a free port of 127.0.0.1, stopped on exit. The users
# (pbxtest-ck*) live in a temporary directory and are removed on exit.
# Flows (test_cockpit.py): a login with a code (a wrong one refused); enrollment inside the
# login; setting up an authenticator on the page (QR code decoded with zbarimg from a
# screenshot); an administrator's users table (unlock, temporary code).
# Screenshots go to PBX_SCREENSHOT_DIR (default: a directory kept under /tmp) and their
# paths are printed. PASS:/FAIL: lines; exits non-zero on a failure.
set -euo pipefail
usage="usage: run.sh MODULE_SO PBX_MFA_CLI"
module=$(readlink -f "${1:?$usage}")
cli=$(readlink -f "${2:?$usage}")
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
src=$(cd "$here/../../.." && pwd)
page=$src/cockpit/pbx-mfa
py=/usr/bin/python3  # Debian's python3 with python3-selenium (not a pyenv shim on PATH)
ws=/usr/lib/cockpit/cockpit-ws

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (test users, bind mounts, cockpit-ws)"; exit 77; }
for tool in unshare mount useradd userdel groupadd groupdel chpasswd visudo sudo oathtool zbarimg \
  /usr/bin/chromium /usr/bin/chromedriver "$ws" "$py"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done
"$py" -c 'import selenium' 2>/dev/null ||
  { echo "FAIL: $py has no selenium (python3-selenium; scripts/test installs it)"; exit 1; }
[ -f "$page/manifest.json" ] || { echo "FAIL: the page is missing: $page/manifest.json"; exit 1; }

if [ -z "${PBX_COCKPIT_IN_NS:-}" ]; then
  PBX_COCKPIT_IN_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi

started=$SECONDS
group=pbxtest-ckreq
users=(pbxtest-ckotp pbxtest-cknew pbxtest-ckpage pbxtest-ckadm pbxtest-cklock)
tmp=$(mktemp -d /tmp/pbxtest-cockpit.XXXXXX)
chmod 755 "$tmp"
shots=${PBX_SCREENSHOT_DIR:-}
if [ -z "$shots" ]; then
  shots=$(mktemp -d /tmp/pbxtest-cockpit-shots.XXXXXX)  # kept: the screenshots are the output
  chmod 755 "$shots"
fi
mkdir -p "$shots"
ws_pid=""

remove_accounts() {
  local u
  for u in "${users[@]}"; do
    if id "$u" >/dev/null 2>&1; then
      # What is left of this test's Cockpit sessions (bridges run as the test user), by pid.
      # shellcheck disable=SC2046  # one pid per word
      kill -KILL $(ps -o pid= -u "$u" 2>/dev/null) 2>/dev/null || true
      userdel -f "$u" >/dev/null 2>&1 || true
    fi
  done
  if getent group "$group" >/dev/null; then groupdel "$group" >/dev/null 2>&1 || true; fi
}

cleanup() {
  if [ -n "$ws_pid" ]; then kill "$ws_pid" 2>/dev/null || true; wait "$ws_pid" 2>/dev/null || true; fi
  remove_accounts
  # The bind mounts go with the namespace; the directory under them is ours.
  umount /etc/pam.d/cockpit /etc/security /usr/share/cockpit /usr/local/bin /etc/sudoers.d \
    2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND"' ERR

# ---- users ------------------------------------------------------------------------------------
remove_accounts  # leftovers of an interrupted run
groupadd "$group"
mkdir -m 755 "$tmp/home"
for u in "${users[@]}"; do
  useradd -m -d "$tmp/home/$u" -s /bin/bash "$u"
done
usermod -a -G "$group" pbxtest-ckotp
usermod -a -G "$group" pbxtest-cknew
usermod -a -G "$group" pbxtest-cklock
# Passwords: random per run, handed to the driver in a root-only file.
umask 077
for u in "${users[@]}"; do
  printf '%s:%s\n' "$u" "pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
done >"$tmp/passwords"
umask 022
chpasswd <"$tmp/passwords"

# ---- the namespaced system files --------------------------------------------------------------
# /etc/security with the test config.
cp -a /etc/security "$tmp/etc-security"
mkdir -m 700 "$tmp/state"
cat >"$tmp/etc-security/pbx-mfa.conf" <<EOF
# Test only (tests/e2e/cockpit/run.sh), seen inside its mount namespace alone.
secret_path = %h/.pbx-mfa
state_dir = $tmp/state
issuer = pbxtest-cockpit
require = group:$group
enroll_at_login = yes
recovery_codes = 3
max_failures = 3
lockout = 900
EOF
chmod 0644 "$tmp/etc-security/pbx-mfa.conf"
mount --bind "$tmp/etc-security" /etc/security

# The PAM stack of the service cockpit: the password, then our module (nodelay: a wrong code
# is answered at once), then what a session needs.
cat >"$tmp/pam-cockpit" <<EOF
#%PAM-1.0
# Test only (tests/e2e/cockpit/run.sh), bind-mounted over /etc/pam.d/cockpit in a namespace.
auth     requisite pam_unix.so
auth     required  $module nodelay
account  required  pam_nologin.so
account  include   common-account
session  optional  pam_keyinit.so force revoke
session  include   common-session
session  required  pam_env.so
EOF
mount --bind "$tmp/pam-cockpit" /etc/pam.d/cockpit

# The page among Cockpit's packages.
cp -a /usr/share/cockpit "$tmp/cockpit-share"
cp -r "$page" "$tmp/cockpit-share/pbx-mfa"
chmod -R a+rX "$tmp/cockpit-share/pbx-mfa"
mount --bind "$tmp/cockpit-share" /usr/share/cockpit

# The CLI as `pbx-mfa` on the user's and sudo's PATH.
mkdir -m 755 "$tmp/localbin"
cp -a /usr/local/bin/. "$tmp/localbin/"
install -m 0755 "$cli" "$tmp/localbin/pbx-mfa"
mount --bind "$tmp/localbin" /usr/local/bin

# sudo for the administrator (with the password: Cockpit answers sudo's askpass with it).
cp -a /etc/sudoers.d "$tmp/sudoers.d"
cat >"$tmp/sudoers.d/pbxtest-cockpit" <<EOF
# Test only (tests/e2e/cockpit/run.sh), seen inside its mount namespace alone.
pbxtest-ckadm ALL=(ALL:ALL) ALL
EOF
chmod 0440 "$tmp/sudoers.d/pbxtest-cockpit"
visudo -cf "$tmp/sudoers.d/pbxtest-cockpit" >/dev/null ||
  { echo "FAIL: the test sudoers snippet does not parse"; exit 1; }
mount --bind "$tmp/sudoers.d" /etc/sudoers.d
visudo -c >/dev/null || { echo "FAIL: sudo's configuration does not parse with the snippet"; exit 1; }

# What a user's bridge and sudo will find.
found=$(runuser -u pbxtest-ckpage -- bash -lc 'command -v pbx-mfa' || true)
[ "$found" = /usr/local/bin/pbx-mfa ] || { echo "FAIL: a user's PATH finds pbx-mfa at '$found'"; exit 1; }
secure=$(sudo -V 2>/dev/null | sed -n 's/^Value to override user.s \$PATH with: //p' || true)
if [ -n "$secure" ] && [[ ":$secure:" != *:/usr/local/bin:* ]]; then
  echo "FAIL: sudo's secure_path has no /usr/local/bin: $secure"; exit 1
fi
echo "  sudo secure_path: ${secure:-(none)}"

# ---- enrollments made by root -----------------------------------------------------------------
for u in pbxtest-ckotp pbxtest-cklock; do
  "$cli" enroll --user "$u" --no-confirm --json >"$tmp/enroll-$u.json"
done

# ---- cockpit-ws -------------------------------------------------------------------------------
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ws" --no-tls --port "$port" --address 127.0.0.1 >"$tmp/ws.log" 2>&1 &
ws_pid=$!
for _ in $(seq 100); do
  if "$py" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
    "$port" 2>/dev/null; then break; fi
  sleep 0.1
done
kill -0 "$ws_pid" 2>/dev/null || { echo "FAIL: cockpit-ws did not start: $(cat "$tmp/ws.log")"; exit 1; }
echo "  cockpit-ws on 127.0.0.1:$port (pid $ws_pid), setup took $((SECONDS - started)) s"

rc=0
PBX_CK_PORT=$port PBX_CK_TMP=$tmp PBX_CK_CLI=$cli PBX_CK_GROUP=$group PBX_SCREENSHOT_DIR=$shots \
  "$py" "$here/test_cockpit.py" || rc=$?
if [ "$rc" != 0 ]; then
  echo "---- cockpit-ws log (last lines)"
  grep -vE "Could not connect|polkit authority|unusable locale" "$tmp/ws.log" | tail -n 40 | sed 's/^/  /' || true
  echo "FAIL: the browser test exited $rc"
fi
echo "e2e_cockpit: $((SECONDS - started)) s in all; screenshots in $shots"
exit "$rc"

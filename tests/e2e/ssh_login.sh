#!/usr/bin/env bash
# End-to-end: the real ssh client logs in to a copy of the system sshd (test-only name, so a
# test-only PAM service), password through pam_unix, then a code through our module.
#   ssh_login.sh MODULE_SO TEST_ENROLL_TOOL
# Checks: right code runs a remote command; wrong code refused; replayed code refused;
# with exempt_networks = 127.0.0.0/8 no code is asked. Cleans up server, user, PAM file.
set -euo pipefail
module=$(readlink -f "$1")
enroll=$(readlink -f "$2")
[ "$(id -u)" = 0 ] || { echo "FAIL: must run as root (creates a test user and a PAM service)"; exit 1; }
for tool in /usr/sbin/sshd ssh expect oathtool useradd chpasswd python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done

tmp=$(mktemp -d /tmp/pbx-e2e-ssh.XXXXXX)
chmod 755 "$tmp"
user="pbxtest$$"
user=${user:0:31}
service="pbxtest-sshd-$$"
password="Pw-$RANDOM-$RANDOM-x"
sshd_pid=""

cleanup() {
  if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; wait "$sshd_pid" 2>/dev/null || true; fi
  rm -f "/etc/pam.d/$service"
  if id "$user" >/dev/null 2>&1; then userdel -r "$user" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

useradd -m -s /bin/sh "$user"
echo "$user:$password" | chpasswd
home=$(getent passwd "$user" | cut -d: -f6)

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

cat > "/etc/pam.d/$service" <<PAM
auth required pam_unix.so
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
AllowUsers $user
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

if [ $fails -ne 0 ]; then
  echo "--- sshd log ---"; tail -50 "$tmp/sshd.log"
  echo "ssh e2e: 5 checks, $fails failed"; exit 1
fi
echo "ssh e2e: all checks passed"

# shellcheck shell=bash
# Sourced by the end-to-end scripts that log in through the built module with pamtester:
#   pbx_e2e_module_store NAME MODULE_SO [CONFIG_LINE...] [-- PAM_LINE...]
# needs root (else exits 77 with SKIP) and makes a root-owned temporary store for real accounts:
# $tmp (mode 755) with secrets/ and state/ (700), $tmp/pbx-mfa.conf (secret_path, state_dir, the
# CONFIG_LINEs) and the PAM service $service ("auth required MODULE config=... nodelay", then
# the PAM_LINEs). Both are removed at exit; an unexpected error prints a FAIL: line.
pbx_e2e_module_store() {
  local name=$1 module=$2
  shift 2
  [ "$(id -u)" = 0 ] || { echo "SKIP: needs root (writes a PAM service)"; exit 77; }
  tmp=$(mktemp -d "/tmp/pbx-$name.XXXXXX")
  chmod 755 "$tmp"
  service="pbxtest-$name-$$"
  trap 'rm -f "/etc/pam.d/$service"; rm -rf "$tmp"' EXIT
  trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND"' ERR
  mkdir -m 700 "$tmp/secrets" "$tmp/state"
  printf 'secret_path = %s/secrets/%%u\nstate_dir = %s/state\n' "$tmp" "$tmp" > "$tmp/pbx-mfa.conf"
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    printf '%s\n' "$1" >> "$tmp/pbx-mfa.conf"
    shift
  done
  [ $# -gt 0 ] && shift
  chmod 644 "$tmp/pbx-mfa.conf"
  printf 'auth required %s config=%s nodelay\n' "$module" "$tmp/pbx-mfa.conf" > "/etc/pam.d/$service"
  local line
  for line in "$@"; do printf '%s\n' "$line" >> "/etc/pam.d/$service"; done
}

# Fails (exit 1) unless every named tool is installed.
pbx_e2e_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
  done
}

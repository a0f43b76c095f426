#!/usr/bin/env bash
# What `cmake --install` puts in place from config/ (config/CMakeLists.txt), run on this build
# tree's config/cmake_install.cmake into a temporary DESTDIR:
#   config_install.sh BUILD_DIR FULL_BINDIR
# the default config, the fail2ban filter (SYSCONFDIR/fail2ban/filter.d, 0644), the jail example
# (DOCDIR/examples/fail2ban/jail.d, only comments) and pbx-mfa-notify.service (its ExecStart
# names the installed pbx-mfa in FULL_BINDIR). Prints PASS:/FAIL: lines.
set -euo pipefail
build=$(readlink -f "${1:?usage: config_install.sh BUILD_DIR FULL_BINDIR}")
bindir=${2:?usage: config_install.sh BUILD_DIR FULL_BINDIR}
tmp=$(mktemp -d /tmp/pbx-config-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { fails=$((fails + 1)); echo "FAIL: $1"; }

DESTDIR=$tmp cmake -P "$build/config/cmake_install.cmake" >"$tmp.log" 2>&1 ||
  { cat "$tmp.log"; rm -f "$tmp.log"; echo "FAIL: cmake -P config/cmake_install.cmake"; exit 1; }
rm -f "$tmp.log"
files=$(cd "$tmp" && find . -type f | sed 's|^\.||' | sort)
echo "installed:"
while IFS= read -r f; do echo "  $f"; done <<<"$files"
want() {  # PATTERN WHAT: one installed file matches PATTERN (an extended regex of the path)
  local f
  f=$(grep -E "$1" <<<"$files" || true)
  if [ "$(grep -c . <<<"$f")" = 1 ]; then
    pass "$2: $f"
    found=$tmp$f
  else
    fail "$2: no (single) file matching $1"
    found=/nonexistent
  fi
}
want '/etc/fail2ban/filter\.d/pbx-mfa\.conf$' "the fail2ban filter"
if [ "$(stat -c %a "$found" 2>/dev/null)" = 644 ]; then
  pass "the filter is 0644"
else
  fail "the filter's mode: $(stat -c %a "$found" 2>&1)"
fi
want '/share/doc/[^/]+/examples/fail2ban/jail\.d/pbx-mfa\.conf$' "the jail example"
if [ -f "$found" ] && ! grep -qvE '^(#.*)?$' "$found"; then pass "the jail example is only comments"; else fail "the jail example has active lines"; fi
want '/lib/systemd/system/pbx-mfa-notify\.service$' "the alerts unit"
if grep -qx "ExecStart=$bindir/pbx-mfa events --follow --notify" "$found"; then
  pass "the unit runs the installed pbx-mfa: $(grep '^ExecStart=' "$found")"
else
  fail "the unit's ExecStart: $(grep '^ExecStart=' "$found" 2>&1), expected $bindir/pbx-mfa"
fi
if [ $fails -ne 0 ]; then echo "config install: $fails checks failed"; exit 1; fi
echo "config install: all checks passed"

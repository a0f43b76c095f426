#!/bin/bash
# Hosts on files never load libpq: neither the module nor the CLI links it, and the CLI maps it
# only when the config says store = postgresql (LD_DEBUG=files lists every object loaded).
# Without the plugin file, store = postgresql is refused with an error naming its package.
# Usage: no_libpq.sh MODULE CLI PLUGIN
# Needs root: it asks for root's status (exit 77 without).
set -u
module=$1 cli=$2 plugin=$3
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (pbx-mfa status --user root)"; exit 77; }
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

for f in "$module" "$cli"; do
  if readelf -d "$f" | grep -q 'NEEDED.*libpq'; then
    fail "$f links libpq"
  else
    pass "$(basename "$f") does not link libpq"
  fi
done
if readelf -d "$plugin" | grep -q 'NEEDED.*libpq'; then
  pass "the plugin links libpq"
else
  fail "the plugin does not link libpq: this test would prove nothing"
fi

tmp=$(mktemp -d /tmp/pbx-nolibpq-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
mkdir -m 0700 "$tmp/state" "$tmp/secrets"
printf 'secret_path = %s/secrets/%%u\nstate_dir = %s/state\n' "$tmp" "$tmp" >"$tmp/files.conf"
cp "$tmp/files.conf" "$tmp/db.conf"
printf 'store = postgresql\npg_conninfo = host=127.0.0.1 port=1 user=postgres\npg_plugin = %s\n' \
  "$plugin" >>"$tmp/db.conf"
chmod 0644 "$tmp/files.conf" "$tmp/db.conf"

LD_DEBUG=files "$cli" --config "$tmp/files.conf" status --user root >/dev/null 2>"$tmp/files.log"
if grep -q 'libpq' "$tmp/files.log"; then
  fail "store = files: libpq was loaded"
else
  pass "store = files: libpq never loaded ($(grep -c 'file=' "$tmp/files.log") objects loaded)"
fi
LD_DEBUG=files "$cli" --config "$tmp/db.conf" status --user root >/dev/null 2>"$tmp/db.log"
if grep -q 'file=libpq' "$tmp/db.log"; then
  pass "store = postgresql: libpq loaded (through the plugin)"
else
  fail "store = postgresql: libpq not loaded; the check above proves nothing"
fi

# store = postgresql on a host without the plugin's package (issue 18): refused, naming the
# package; libpq is not loaded either.
missing="$tmp/no-such-dir/pbx_store_postgresql.so"
grep -v '^pg_plugin' "$tmp/db.conf" >"$tmp/missing.conf"
printf 'pg_plugin = %s\n' "$missing" >>"$tmp/missing.conf"
chmod 0644 "$tmp/missing.conf"
rc=0
LD_DEBUG=files "$cli" --config "$tmp/missing.conf" status --user root >"$tmp/missing.out" \
  2>"$tmp/missing.log" || rc=$?
want="database plugin $missing is not installed: install the package libpam-pbx-totp-postgresql (store = postgresql needs it)"
if [ $rc = 2 ] && grep -qF "$want" "$tmp/missing.log"; then
  pass "store = postgresql without the plugin: exit 2, the error names the package"
else
  fail "store = postgresql without the plugin: exit $rc, $(grep -v '^ *[0-9]*:' "$tmp/missing.log")"
fi
if grep -q 'file=libpq' "$tmp/missing.log"; then
  fail "store = postgresql without the plugin: libpq was loaded"
else
  pass "store = postgresql without the plugin: libpq never loaded"
fi
exit $((failures > 0))

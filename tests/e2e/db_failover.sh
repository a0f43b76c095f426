#!/usr/bin/env bash
# End-to-end: failover of the fleet database under logins, in both replication modes.
#   db_failover.sh MODULE_SO PBX_MFA_CLI PG_PLUGIN_SO PAM_LOGIN
# Runs the scenario of bench/login/failover once per mode (synchronous, then asynchronous
# replication) with its assertions (--check): a throwaway PostgreSQL 15 primary and a hot
# standby (tests/db/cluster.sh start / standby, 127.0.0.1, free high ports, temp dirs), a host
# list with target_session_attrs=read-write, four login workers through the real module and
# libpam, SIGKILL of the primary's postmaster, pg_ctl promote of the standby one second later.
# Asserts, both modes: no wrong code accepted, every login that did not succeed was refused by
# PAM (fail closed), none in the gap asked for a code, logins ran up to the kill, logins succeed
# again, `pbx-mfa doctor` says WARN for db-replication (async) or PASS (sync); synchronous: no code
# accepted twice, no acknowledged lockout, reset or recovery-code use lost, logins back within
# 20 s. Asynchronous: the same figures are printed, not asserted (the window). Prints the table.
# The scenario stops its clusters and removes its users itself; this script's trap does it
# again from what the scenario recorded in the work dir, should the scenario be killed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$(dirname "$here")")
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (creates test users, runs PostgreSQL as postgres)"; exit 77; }
for tool in oathtool python3 useradd userdel runuser /usr/lib/postgresql/15/bin/pg_basebackup; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done
work=$(mktemp -d /tmp/pbx-e2e-failover.XXXXXX)
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  local d u
  for d in "$work"/*/standby "$work"/*/primary; do
    if [ -s "$d/socketdir" ]; then bash "$src/tests/db/cluster.sh" stop "$d" >/dev/null 2>&1 || true; fi
  done
  if [ -f "$work/users" ]; then
    while read -r u; do
      if [[ $u == pbxtestfo* ]] && id "$u" >/dev/null 2>&1; then userdel "$u" >/dev/null 2>&1 || true; fi
    done <"$work/users"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
start=$(date +%s)
rc=0
python3 "$src/bench/login/failover" --check --failovers 1 --modes sync,async --workdir "$work" \
  --module "$1" --cli "$2" --plugin "$3" --login "$4" || rc=$?
echo "db failover e2e: $(( $(date +%s) - start )) s"
exit "$rc"

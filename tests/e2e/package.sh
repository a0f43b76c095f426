#!/usr/bin/env bash
# End-to-end: the Debian packages.
#   package.sh build SOURCE_DIR OUT_DIR   copy the source tree, dpkg-buildpackage, lintian;
#                                         the .debs land in OUT_DIR (emptied first)
#   package.sh install OUT_DIR            install the two .debs of a files-only host
#                                         (libpam-pbx-totp, pbx-mfa): their Depends and their
#                                         ELF files name no libpq, every file is where
#                                         the FILES sections of the man pages say, the
#                                         pam-auth-update profile is not enabled and
#                                         /etc/pam.d/common-* are untouched,
#                                         log in through the INSTALLED module by name
#                                         (pamtester, a test-only PAM service, a pbxtest user
#                                         enrolled with the installed pbx-mfa); a test config
#                                         with store = postgresql fails closed naming the
#                                         plugin's package (pbx-mfa, doctor, the module's log
#                                         line); then install libpam-pbx-totp-postgresql: the
#                                         plugin is there and loads (the database is one
#                                         nobody listens on); run Debian's package tests
#                                         (debian/tests) with autopkgtest's null runner on the
#                                         three installed packages; remove the plugin's
#                                         package alone (a files login still works), then all,
#                                         purge, check nothing is left
#   package.sh SOURCE_DIR                 both, in a temporary directory
# ctest runs the halves as e2e_package_build (beside other tests) and e2e_package (RUN_SERIAL:
# while the packages are installed /etc/security/pbx-mfa.conf exists, and tests that expect it
# absent must not run then).
# Needs root, debhelper, dpkg-dev, lintian, pamtester, oathtool, expect, autopkgtest, fail2ban,
# python3, unshare, readelf (scripts/lib/deps.sh). The module's log line is caught on a socket
# bound over /dev/log in a private mount namespace around that one login (as
# tests/e2e/fail2ban_filter.sh does); an empty /dev/log made as the mount point is removed.
# If /etc/pam.d/common-* or /var/lib/pam/* ever differ from the copies taken at the start, it
# says FAIL and restores them. Removes its user, PAM service file and temp dir in a trap.
set -euo pipefail
started=$SECONDS
usage="usage: package.sh build SOURCE_DIR OUT_DIR | install OUT_DIR | SOURCE_DIR"
case ${1:-} in
  build) mode=build src=$(readlink -f "${2:?$usage}") out=$(readlink -m "${3:?$usage}") ;;
  install) mode=install out=$(readlink -f "${2:?$usage}") ;;
  '' | -*) echo "$usage" >&2; exit 2 ;;
  *) mode=all src=$(readlink -f "$1") out="" ;;
esac

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (builds and installs packages, adds a user)"; exit 77; }
need=()
[ $mode = install ] || need+=(dpkg-buildpackage dh lintian)
[ $mode = build ] || need+=(apt-get pamtester oathtool expect useradd chpasswd autopkgtest fail2ban-regex
  python3 unshare mount readelf)
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/test installs it)"; exit 1; }
done

# A files-only host installs the first two; store = postgresql needs the plugin's package too.
base_packages=(libpam-pbx-totp pbx-mfa)
plugin_package=libpam-pbx-totp-postgresql
# The Cockpit page (Architecture: all): built and checked with lintian, not installed here
# (tests/e2e/cockpit/run.sh tests the page itself in a browser).
cockpit_package=cockpit-pbx-mfa
packages=("${base_packages[@]}" "$plugin_package")
tmp=$(mktemp -d /tmp/build-pkg-XXXXXX)
chmod 755 "$tmp"
[ -n "$out" ] || out="$tmp/out"
user="pbxtestpkg$$"
user=${user:0:31}
service="pbxtest-pkg-$$"
password="Pw-$RANDOM-$RANDOM-x"
fails=0
made_dev_log=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "PASS: $*"; }
step() { echo "==> $* ($((SECONDS - started)) s)"; }
oneline() { paste -sd' ' -; }

installed() {  # true if package $1 is installed, half-installed or has config files left
  local st
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null || true)
  [[ -n $st && $st != un* && $st != pn* ]]
}
purge_packages() { DEBIAN_FRONTEND=noninteractive apt-get purge -y "${packages[@]}" </dev/null; }

# The system PAM configuration the install half must leave as it found it.
saved="$tmp/saved"
watched_files() { ls -1d /etc/pam.d/common-* /var/lib/pam/* 2>/dev/null || true; }
watched_sums() { (cd / && watched_files | sed 's|^/|./|' | sort | while read -r f; do sha256sum "$f"; done); }
save_watched() {
  mkdir -p "$saved"
  watched_files | while read -r f; do (cd / && cp -a --parents "${f#/}" "$saved"); done
  watched_sums >"$tmp/watched.sha256"
}
restore_watched() {
  [ -s "$tmp/watched.sha256" ] || return 0
  watched_files | while read -r f; do
    [ -e "$saved$f" ] || { echo "  removing $f (not there at the start)"; rm -f "$f"; }
  done
  (cd "$saved" && find . -type f) | while read -r f; do
    cmp -s "$saved/${f#./}" "/${f#./}" || { echo "  restoring /${f#./}"; cp -a "$saved/${f#./}" "/${f#./}"; }
  done
}
check_watched() {  # WHEN: FAIL and restore if a watched file changed
  if [ "$(watched_sums)" = "$(cat "$tmp/watched.sha256")" ]; then
    pass "$1: /etc/pam.d/common-* and /var/lib/pam/* are byte-identical to the start"
  else
    fail "$1: /etc/pam.d/common-* or /var/lib/pam/* CHANGED — restoring the copies from the start"
    diff "$tmp/watched.sha256" <(watched_sums) || true
    restore_watched
  fi
}

cleanup() {
  set +e
  rm -f "/etc/pam.d/$service" "/etc/pam.d/$service-db"
  # The empty file made as a mount point for the syslog catcher, if it is still that.
  if [ $made_dev_log = 1 ] && [ -f /dev/log ] && [ ! -L /dev/log ] && [ ! -s /dev/log ]; then
    rm -f /dev/log
  fi
  if id "$user" >/dev/null 2>&1; then userdel -r "$user" >/dev/null 2>&1; fi
  if [ $mode != build ]; then
    for p in "${packages[@]}"; do
      if installed "$p"; then
        echo "cleanup: purging ${packages[*]}, left installed by a failed run"
        purge_packages >/dev/null 2>&1
        break
      fi
    done
    if [ -s "$tmp/watched.sha256" ] && [ "$(watched_sums)" != "$(cat "$tmp/watched.sha256")" ]; then
      echo "FAIL: cleanup: /etc/pam.d/common-* or /var/lib/pam/* changed — restoring them"
      restore_watched
    fi
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# catch_syslog LOG CMD...: runs CMD with the syslog lines it sends caught in LOG, one per
# datagram: a socket bound over /dev/log in a private mount namespace for CMD alone (there may be
# no syslog daemon; the system's, if any, sees nothing). Without a /dev/log, an empty file is
# made as the mount point and removed again (by cleanup if the script is interrupted).
catch_syslog() {
  local log=$1 sock="$tmp/log.sock" listener rc=0
  shift
  rm -f "$sock" "$log" "$log.ready"
  python3 - "$sock" "$log" >/dev/null 2>&1 <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
open(out + ".ready", "w").close()
with open(out, "a", buffering=1, errors="replace") as f:
    while True:
        f.write(s.recv(65536).decode("utf-8", "replace").rstrip("\n").replace("\n", " ") + "\n")
PY
  listener=$!
  for _ in $(seq 50); do [ -e "$log.ready" ] && break; sleep 0.1; done
  if [ ! -e /dev/log ] && [ ! -L /dev/log ]; then
    : >/dev/log
    made_dev_log=1
  fi
  # shellcheck disable=SC2016  # $1 and $@ are the inner shell's
  unshare --mount --propagation private sh -c 'mount --bind "$1" /dev/log && shift && exec "$@"' \
    _ "$sock" "$@" || rc=$?
  sleep 0.3  # the last datagrams
  kill "$listener" 2>/dev/null || true
  wait "$listener" 2>/dev/null || true
  if [ $made_dev_log = 1 ] && [ -f /dev/log ] && [ ! -L /dev/log ] && [ ! -s /dev/log ]; then
    rm -f /dev/log
    made_dev_log=0
  fi
  return $rc
}

# ---------------------------------------------------------------------------------------------
build() {
  step "copying $src (tracked and untracked files, no build trees) to $out/src"
  if [ -e "$out" ] && [ ! -e "$out/.pbx-package-out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "FAIL: $out is not empty and not an earlier output of package.sh: not emptying it"
    exit 1
  fi
  rm -rf "$out"
  mkdir -p "$out/src"
  touch "$out/.pbx-package-out"
  chmod 755 "$out"   # apt's _apt user reads the .debs from here
  if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$src" && git ls-files -co --exclude-standard -z) |
      grep -zvE '^(build[^/]*|obj-[^/]*|\.cache)/|^debian/(tmp|\.debhelper|libpam-pbx-totp|libpam-pbx-totp-postgresql|pbx-mfa|cockpit-pbx-mfa)/' |
      (cd "$src" && while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done) |
      (cd "$src" && xargs -0 -r cp -a --parents -t "$out/src")
  else
    (cd "$src" && tar --exclude='./build*' --exclude='./obj-*' --exclude=./.git -cf - .) |
      tar -C "$out/src" -xf -
  fi

  step "dpkg-buildpackage -us -uc -b -j2"
  if ! (cd "$out/src" && dpkg-buildpackage -us -uc -b -j2) >"$out/build.log" 2>&1; then
    tail -60 "$out/build.log"
    echo "FAIL: dpkg-buildpackage failed (the end of its log is above; all of it: $out/build.log)"
    exit 1
  fi
  pass "dpkg-buildpackage -us -uc -b built $(cd "$out" && echo *.deb)"
  local p deb
  for p in "${packages[@]}"; do
    for deb in "$out/${p}"_*.deb; do
      if [ -f "$deb" ]; then
        echo "  ${deb##*/}: Depends: $(dpkg-deb -f "$deb" Depends)"
      else
        fail "no .deb of $p was built"
      fi
    done
  done

  # The Cockpit page: an Architecture: all package holding the four files of cockpit/pbx-mfa/.
  deb=$(ls "$out/${cockpit_package}"_*_all.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$deb" ]; then
    fail "no .deb of $cockpit_package (Architecture: all) was built"
  else
    local files want depends
    files=$(dpkg-deb -c "$deb" | awk '{print $NF}' | grep '^\./usr/share/cockpit/' | grep -v '/$' | sort)
    want=$(printf './usr/share/cockpit/pbx-mfa/%s\n' index.html manifest.json pbx-mfa.css pbx-mfa.js)
    depends=$(dpkg-deb -f "$deb" Depends)
    if [ "$files" = "$want" ]; then
      pass "${deb##*/}: /usr/share/cockpit/pbx-mfa/ holds index.html manifest.json pbx-mfa.css pbx-mfa.js"
    else
      fail "${deb##*/} holds under /usr/share/cockpit: $(echo "$files" | tr '\n' ' ')"
    fi
    if grep -q 'cockpit-bridge' <<<"$depends" && grep -qE '(^|, )pbx-mfa \(' <<<"$depends"; then
      pass "${deb##*/}: Depends: $depends"
    else
      fail "${deb##*/} Depends '$depends': expected cockpit-bridge and pbx-mfa"
    fi
    if dpkg-deb -x "$deb" "$tmp/cockpit-deb" &&
      python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); sys.exit(m["tools"]["index"]["label"] != "Two-factor authentication")' \
        "$tmp/cockpit-deb/usr/share/cockpit/pbx-mfa/manifest.json"; then
      pass "${deb##*/}: manifest.json puts 'Two-factor authentication' under Tools"
    else
      fail "${deb##*/}: manifest.json has no Tools entry 'Two-factor authentication'"
    fi
  fi

  step "lintian --pedantic -I on the .changes"
  lintian --pedantic -I "$out"/*.changes >"$out/lintian.log" 2>&1 || true
  grep -v '^running with root privileges' "$out/lintian.log" || true
  # No error, and no warning that is not overridden with its reason (debian/*.lintian-overrides).
  if grep -qE '^[EW]: ' "$out/lintian.log"; then
    fail "lintian reports errors or warnings: fix them, or override a warning with a comment saying why"
  else
    pass "lintian: no errors, no warnings"
  fi
}

# ---------------------------------------------------------------------------------------------
install_and_check() {
  local version arch multiarch debs=() p deb plugin_deb
  local tests_src="$out/src/"  # the source tree, for debian/tests ("out" is a local further down)
  version=$(dpkg-parsechangelog -l "$out/src/debian/changelog" -S Version)
  arch=$(dpkg --print-architecture)
  multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
  for p in "${packages[@]}"; do
    deb="$out/${p}_${version}_${arch}.deb"
    [ -f "$deb" ] || { echo "FAIL: $deb not built (run package.sh build first)"; exit 1; }
    if [ "$p" = "$plugin_package" ]; then plugin_deb=$deb; else debs+=("$deb"); fi
  done
  local plugin="/usr/lib/$multiarch/pbx-mfa/pbx_store_postgresql.so"

  # The package layout, from the .debs themselves (not from what this machine has installed:
  # the build needs libpq-dev, so libpq5 is here whatever the packages say). A files-only host
  # installs libpam-pbx-totp and pbx-mfa: nothing of theirs may pull in libpq.
  local field value
  for deb in "${debs[@]}"; do
    for field in Pre-Depends Depends Recommends; do
      value=$(dpkg-deb -f "$deb" "$field")
      if grep -q libpq <<<"$value"; then
        fail "${deb##*/} $field names libpq: $value"
      fi
    done
    pass "${deb##*/}: Depends: $(dpkg-deb -f "$deb" Depends) (no libpq)"
  done
  value=$(dpkg-deb -f "$plugin_deb" Depends)
  if grep -qE '(^|, )libpq5( |,|$)' <<<"$value" &&
    grep -qF "libpam-pbx-totp (= $version)" <<<"$value"; then
    pass "${plugin_deb##*/}: Depends: $value"
  else
    fail "${plugin_deb##*/} Depends '$value': expected libpq5 and libpam-pbx-totp (= $version)"
  fi
  if dpkg-deb -c "$plugin_deb" | grep -q "\.$plugin\$" &&
    ! dpkg-deb -c "$out/libpam-pbx-totp_${version}_${arch}.deb" | grep -q pbx_store_postgresql; then
    pass "the plugin is in ${plugin_deb##*/}, not in libpam-pbx-totp"
  else
    fail "the plugin is not (only) in ${plugin_deb##*/}"
  fi
  if dpkg-deb -f "$out/libpam-pbx-totp_${version}_${arch}.deb" Suggests | grep -q "$plugin_package"; then
    pass "libpam-pbx-totp suggests $plugin_package"
  else
    fail "libpam-pbx-totp does not suggest $plugin_package"
  fi

  # A leftover install (an earlier run, a developer's) would hide what this one installs.
  for p in "${packages[@]}"; do
    if installed "$p"; then
      step "purging a leftover installation of ${packages[*]}"
      purge_packages >"$tmp/leftover.log" 2>&1 ||
        { cat "$tmp/leftover.log"; echo "FAIL: could not purge the leftover packages"; exit 1; }
      break
    fi
  done
  save_watched

  step "apt-get install ${debs[*]##*/}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${debs[@]}" \
    </dev/null >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    echo "FAIL: apt-get install failed"
    exit 1
  fi
  pass "${base_packages[*]} installed (a files-only host: no $plugin_package)"
  if installed "$plugin_package" || [ -e "$plugin" ]; then
    fail "$plugin_package or $plugin is installed along with ${base_packages[*]}"
  fi
  # Nothing the two packages install links libpq (the module and the CLI dlopen() the plugin only
  # with store = postgresql).
  local elf="" linked=""
  while read -r f; do
    if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
    [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    elf="$elf ${f##*/}"
    if readelf -d "$f" | grep -q 'NEEDED.*libpq'; then linked="$linked $f"; fi
  done < <(dpkg-query -L "${base_packages[@]}")
  if [ -z "$elf" ]; then
    fail "no ELF file found in ${base_packages[*]}"
  elif [ -n "$linked" ]; then
    fail "these files of ${base_packages[*]} link libpq:$linked"
  else
    pass "no ELF file of ${base_packages[*]} links libpq:$elf"
  fi

  local -A owner=(
    ["/usr/lib/$multiarch/security/pam_pbx_totp.so"]=libpam-pbx-totp
    [/etc/security/pbx-mfa.conf]=libpam-pbx-totp
    [/usr/share/pam-configs/pbx-totp]=libpam-pbx-totp
    [/usr/share/man/man5/pbx-mfa.conf.5.gz]=libpam-pbx-totp
    [/usr/share/man/man8/pam_pbx_totp.8.gz]=libpam-pbx-totp
    [/usr/bin/pbx-mfa]=pbx-mfa
    [/etc/pam.d/pbx-mfa]=pbx-mfa
    [/usr/share/man/man1/pbx-mfa.1.gz]=pbx-mfa
    [/usr/share/bash-completion/completions/pbx-mfa]=pbx-mfa
    [/usr/share/doc/pbx-mfa/examples/sudoers.d/pbx-helpdesk]=pbx-mfa
    [/etc/fail2ban/filter.d/pbx-mfa.conf]=libpam-pbx-totp
    [/usr/share/doc/libpam-pbx-totp/examples/fail2ban/jail.d/pbx-mfa.conf]=libpam-pbx-totp
    [/lib/systemd/system/pbx-mfa-notify.service]=pbx-mfa
  )
  local f
  for f in $(printf '%s\n' "${!owner[@]}" | sort); do
    if [ -f "$f" ] && dpkg-query -L "${owner[$f]}" | grep -xF "$f" >/dev/null; then
      pass "${owner[$f]} ships $f"
    else
      fail "${owner[$f]} does not ship $f"
    fi
  done
  for f in /etc/security/pbx-mfa.conf:libpam-pbx-totp /etc/pam.d/pbx-mfa:pbx-mfa \
    /etc/fail2ban/filter.d/pbx-mfa.conf:libpam-pbx-totp; do
    if dpkg-query -W -f='${Conffiles}\n' "${f#*:}" | awk '{print $1}' | grep -xF "${f%%:*}" >/dev/null; then
      pass "${f%%:*} is a conffile of ${f#*:}"
    else
      fail "${f%%:*} is not a conffile of ${f#*:}"
    fi
  done
  if [ "$(stat -c '%U:%G %a %F' /var/lib/pbx-mfa 2>&1)" = "root:root 700 directory" ]; then
    pass "state_dir /var/lib/pbx-mfa is a root:root 0700 directory"
  else
    fail "state_dir /var/lib/pbx-mfa: $(stat -c '%U:%G %a %F' /var/lib/pbx-mfa 2>&1)"
  fi
  if [ "$(pbx-mfa --version 2>&1)" = "pbx-mfa ${version%%-*}" ]; then
    pass "/usr/bin/pbx-mfa --version says ${version%%-*}"
  else
    fail "pbx-mfa --version: $(pbx-mfa --version 2>&1)"
  fi
  # The installed CLI finds the installed config, state dir and module (other checks of doctor
  # depend on this machine's sshd and PAM stacks, so doctor's exit status is not looked at).
  local doctor check entry
  doctor=$(pbx-mfa doctor --json 2>&1 || true)
  for check in config state-dir module; do
    entry=$(grep -oE "\{[^{}]*\"name\":\"$check\"[^{}]*\}" <<<"$doctor" || true)
    if [[ $entry == *'"status":"PASS"'* ]]; then
      pass "pbx-mfa doctor: $check PASS"
    else
      fail "pbx-mfa doctor: $check: ${entry:-$doctor}"
    fi
  done
  local profile=/usr/share/pam-configs/pbx-totp
  if grep -qx 'Default: no' $profile && grep -qx 'Auth-Type: Additional' $profile &&
    grep -qE '^\s+required\s+pam_pbx_totp\.so\s*$' $profile; then
    pass "profile pbx-totp: Auth-Type Additional, Default no, required pam_pbx_totp.so"
  else
    fail "profile pbx-totp: $(cat $profile)"
  fi

  # The helpdesk's sudoers example: inactive as shipped (nothing but comments), nothing put into
  # /etc/sudoers.d, and its rule, once uncommented, is what sudo parses.
  local example=/usr/share/doc/pbx-mfa/examples/sudoers.d/pbx-helpdesk
  if [ -f "$example" ] && ! grep -qv '^#' "$example" &&
    grep -qx '#%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa' "$example"; then
    pass "$example: only comments, with the rule '%pbx-helpdesk ALL=(root) /usr/bin/pbx-mfa'"
  else
    fail "$example: missing, active, or without the rule: $(cat "$example" 2>&1)"
  fi
  if dpkg-query -L libpam-pbx-totp pbx-mfa | grep -q '^/etc/sudoers\.d'; then
    fail "the packages install into /etc/sudoers.d: delegation must be the admin's choice"
  else
    pass "nothing installed into /etc/sudoers.d (the example stays an example)"
  fi
  if command -v visudo >/dev/null; then
    sed 's/^#%pbx-helpdesk/%pbx-helpdesk/' "$example" >"$tmp/pbx-helpdesk"
    if visudo -c -f "$tmp/pbx-helpdesk" >"$tmp/visudo.log" 2>&1; then
      pass "the example's rule, uncommented, passes visudo -c"
    else
      fail "the example's rule, uncommented, fails visudo -c: $(cat "$tmp/visudo.log")"
    fi
  fi

  # fail2ban: the jail example bans nobody as shipped (nothing but comments; nothing put into
  # /etc/fail2ban/jail.d). The filter itself is checked by debian/tests/smoke below.
  example=/usr/share/doc/libpam-pbx-totp/examples/fail2ban/jail.d/pbx-mfa.conf
  if [ -f "$example" ] && ! grep -qvE '^(#.*)?$' "$example" && grep -qx '#\[pbx-mfa\]' "$example"; then
    pass "$example: only comments, with the jail [pbx-mfa]"
  else
    fail "$example: missing, active, or without the jail: $(cat "$example" 2>&1)"
  fi
  if dpkg-query -L libpam-pbx-totp pbx-mfa | grep -q '^/etc/fail2ban/jail\.d/'; then
    fail "the packages install a jail into /etc/fail2ban/jail.d: banning must be the admin's choice"
  else
    pass "nothing installed into /etc/fail2ban/jail.d (the jail stays an example)"
  fi

  # The alerts unit is installed and not enabled (dh_installsystemd --no-enable; a disabled
  # unit is not started either: deb-systemd-invoke starts only enabled ones): no link in
  # /etc/systemd/system, systemctl says disabled.
  local links
  links=$(find /etc/systemd/system -name pbx-mfa-notify.service 2>/dev/null | oneline)
  if [ -z "$links" ]; then
    pass "pbx-mfa-notify.service is not enabled (no link under /etc/systemd/system)"
  else
    fail "pbx-mfa-notify.service enabled by the install: $links"
  fi
  if command -v systemctl >/dev/null; then
    local state
    state=$(systemctl is-enabled pbx-mfa-notify.service 2>&1 || true)
    if [ "$state" = disabled ]; then
      pass "systemctl is-enabled pbx-mfa-notify.service: disabled"
    else
      fail "systemctl is-enabled pbx-mfa-notify.service: $state"
    fi
  fi

  # The profile is registered (pam-auth-update saw it) but not enabled.
  if grep -qs pam_pbx_totp /etc/pam.d/common-*; then
    fail "pam_pbx_totp is in /etc/pam.d/common-* after install: the profile must be off by default"
  else
    pass "pam_pbx_totp is not in /etc/pam.d/common-* (profile off by default)"
  fi
  if grep -qx pbx-totp /var/lib/pam/seen 2>/dev/null; then
    pass "postinst registered the profile with pam-auth-update (/var/lib/pam/seen)"
  else
    fail "pbx-totp not in /var/lib/pam/seen: postinst did not run pam-auth-update --package"
  fi
  if debconf-show libpam-runtime 2>/dev/null | grep 'libpam-runtime/profiles:' | grep pbx-totp >/dev/null; then
    fail "pbx-totp is among the enabled pam-auth-update profiles (libpam-runtime/profiles)"
  else
    pass "pbx-totp is not among the enabled pam-auth-update profiles"
  fi
  # /var/lib/pam/seen changes by design while installed (it lists every profile); common-* not.
  if [ "$(watched_sums | grep '  \./etc/pam\.d/common-')" = "$(grep '  \./etc/pam\.d/common-' "$tmp/watched.sha256")" ]; then
    pass "after install: /etc/pam.d/common-* are byte-identical to the start"
  else
    fail "after install: /etc/pam.d/common-* CHANGED — restoring the copies from the start"
    restore_watched
  fi

  # Bash completion: the subcommands and flags of the installed CLI's --help, no more, no less.
  completions() {  # WORDS...: what the completion offers for the last word, sorted
    bash -c '
      _init_completion() { words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
                           cur=${words[cword]}; prev=${words[cword-1]}; }
      _filedir() { :; }
      source /usr/share/bash-completion/completions/pbx-mfa
      COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _pbx_mfa
      if [ ${#COMPREPLY[@]} -gt 0 ]; then printf "%s\n" "${COMPREPLY[@]}" | sort; fi
    ' _ "$@"
  }
  help_flags() { pbx-mfa "$@" --help | { grep -oE '^  (-h,)?--[a-z-]+' || true; } | sed -E 's/^ *(-h,)?//'; }
  local subs want got s
  subs=$(pbx-mfa --help | sed -n '/^Subcommands:/,$p' | { grep -oE '^  [a-z-]+' || true; } | tr -d ' ' | sort)
  if [ -n "$subs" ] && [ "$(completions pbx-mfa '')" = "$subs" ]; then
    pass "bash completion offers the CLI's subcommands: $(oneline <<<"$subs")"
  else
    fail "bash completion subcommands '$(completions pbx-mfa '' | oneline)' != the CLI's '$(oneline <<<"$subs")'"
  fi
  local bad=0
  for s in $subs; do
    want=$( (help_flags "$s"; echo --config) | sort -u)
    got=$(completions pbx-mfa "$s" -)
    if [ "$got" != "$want" ]; then
      fail "bash completion for '$s': '$(oneline <<<"$got")' != the CLI's '$(oneline <<<"$want")'"
      bad=1
    fi
  done
  [ $bad = 1 ] || pass "bash completion offers each subcommand's flags, as its --help lists them"

  # -------------------------------------------------------------------------------------------
  step "login through the installed module by name (pamtester, service $service, user $user)"
  useradd -m -s /bin/sh "$user"
  echo "$user:$password" | chpasswd
  cat >"/etc/pam.d/$service" <<PAM
# test-only service of tests/e2e/package.sh; removed when it ends
auth     required  pam_unix.so
auth     required  pam_pbx_totp.so nodelay
account  required  pam_permit.so
PAM
  local json secret home code wrong out
  json=$(pbx-mfa enroll --user "$user" --no-confirm --json </dev/null) ||
    fail "pbx-mfa enroll --user $user --no-confirm --json failed: $json"
  secret=$(sed -n 's/.*"secret" *: *"\([A-Z2-7]*\)".*/\1/p' <<<"$json")
  [ -n "$secret" ] || { echo "$json"; echo "FAIL: no secret in the JSON of pbx-mfa enroll"; exit 1; }
  home=$(getent passwd "$user" | cut -d: -f6)
  if [ "$(stat -c '%U %a' "$home/.pbx-mfa" 2>&1)" = "$user 600" ]; then
    pass "enrolled with the installed pbx-mfa: $home/.pbx-mfa owned by $user, 0600"
  else
    fail "secret file: $(stat -c '%U %a' "$home/.pbx-mfa" 2>&1)"
  fi

  pamlogin() {  # CODE: pamtester answering the password and CODE; its exit status
    PBX_SERVICE="$service" PBX_USER="$user" PBX_PW="$password" PBX_CODE="$1" expect -f - <<'EXP'
set timeout 20
log_user 1
spawn pamtester $env(PBX_SERVICE) $env(PBX_USER) authenticate
expect {
  -re "assword: ?$" { send "$env(PBX_PW)\r" }
  timeout { puts "\nPKG: no password prompt"; exit 3 }
}
expect {
  "Security code: " { send "$env(PBX_CODE)\r" }
  eof { puts "\nPKG: closed before the code prompt"; exit 5 }
  timeout { puts "\nPKG: no code prompt"; exit 3 }
}
expect eof
lassign [wait] pid spawnid oserr status
exit $status
EXP
  }
  code=$(oathtool --totp -b "$secret")
  if out=$(pamlogin "$code" 2>&1) && grep -q 'successfully authenticated' <<<"$out"; then
    pass "password + right code: authenticated"
  else
    fail "password + right code refused: $out"
  fi
  if out=$(pamlogin "$code" 2>&1); then
    fail "the same code again was accepted: $out"
  else
    pass "the same code again (replay) is refused"
  fi
  wrong=$(printf '%06d' $(((10#$code + 500000) % 1000000)))
  if out=$(pamlogin "$wrong" 2>&1); then
    fail "a wrong code was accepted: $out"
  else
    pass "a wrong code is refused"
  fi
  if [ -n "$(ls -A /var/lib/pbx-mfa)" ]; then
    pass "the logins kept their state under /var/lib/pbx-mfa"
  else
    fail "no state under /var/lib/pbx-mfa after the logins"
  fi
  local recovery
  recovery=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["recovery_codes"][0])' <<<"$json" 2>/dev/null || true)

  # -------------------------------------------------------------------------------------------
  # store = postgresql without the plugin's package: every login fails closed, and the module's
  # log line, pbx-mfa and doctor name the package. A test config of its own (config=, --config),
  # so /etc/security/pbx-mfa.conf stays as the package installed it; pg_plugin at its default.
  step "store = postgresql without $plugin_package (test config $tmp/db/pbx-mfa.conf)"
  local dbconf="$tmp/db/pbx-mfa.conf" missing
  missing="database plugin $plugin is not installed: install the package $plugin_package (store = postgresql needs it)"
  mkdir -m 755 "$tmp/db"
  head -c 32 /dev/urandom >"$tmp/db/fleet.key"
  chmod 400 "$tmp/db/fleet.key"
  # Port 1 on loopback: nobody listens, a connection is refused at once.
  cat >"$dbconf" <<CONF
store = postgresql
pg_conninfo = host=127.0.0.1 port=1 user=pbxtest dbname=pbxtest
pg_timeout_ms = 1000
fleet_key = $tmp/db/fleet.key
CONF
  chmod 644 "$dbconf"
  cat >"/etc/pam.d/$service-db" <<PAM
# test-only service of tests/e2e/package.sh; removed when it ends
auth     required  pam_pbx_totp.so config=$dbconf nodelay
account  required  pam_permit.so
PAM
  local rc_cli=0
  out=$(pbx-mfa --config "$dbconf" status --user "$user" 2>&1) || rc_cli=$?
  if [ $rc_cli = 2 ] && grep -qF "$missing" <<<"$out"; then
    pass "pbx-mfa status (store = postgresql, no plugin): exit 2, '$out'"
  else
    fail "pbx-mfa status without the plugin: exit $rc_cli, '$out' (expected 2 and '$missing')"
  fi
  out=$(pbx-mfa --config "$dbconf" doctor 2>&1 || true)
  entry=$(grep 'db-connect:' <<<"$out" || true)
  if [[ $entry == FAIL* && $entry == *"$missing"* && $entry == *"apt-get install $plugin_package"* ]]; then
    pass "pbx-mfa doctor: $entry"
  else
    fail "pbx-mfa doctor's db-connect without the plugin: '$entry'"
  fi
  local syslog="$tmp/syslog"
  if catch_syslog "$syslog" pamtester "$service-db" "$user" authenticate </dev/null >"$tmp/pamtester.out" 2>&1; then
    fail "a login with store = postgresql and no plugin succeeded: $(cat "$tmp/pamtester.out")"
  elif grep -q 'Error in service module' "$tmp/pamtester.out"; then
    pass "a login with store = postgresql and no plugin is refused (PAM_SERVICE_ERR, no prompt)"
  else
    fail "a login with store = postgresql and no plugin: $(cat "$tmp/pamtester.out")"
  fi
  entry=$(grep 'pam_pbx_totp(' "$syslog" 2>/dev/null || true)
  if [[ $entry == *outcome=bad-config* && $entry == *"$missing"* ]]; then
    pass "the module's log line: ${entry#*: }"
  else
    fail "the module's log line does not name $plugin_package: '$entry' (all: $(cat "$syslog" 2>/dev/null))"
  fi

  # -------------------------------------------------------------------------------------------
  step "apt-get install ${plugin_deb##*/} (store = postgresql)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$plugin_deb" \
    </dev/null >"$tmp/install-plugin.log" 2>&1; then
    cat "$tmp/install-plugin.log"
    echo "FAIL: apt-get install $plugin_package failed"
    exit 1
  fi
  if [ "$(stat -c '%U:%G %a' "$plugin" 2>&1)" = "root:root 644" ] &&
    dpkg-query -L "$plugin_package" | grep -qxF "$plugin"; then
    pass "$plugin_package ships $plugin (root:root 0644)"
  else
    fail "$plugin_package and $plugin: $(stat -c '%U:%G %a' "$plugin" 2>&1)"
  fi
  if readelf -d "$plugin" | grep -q 'NEEDED.*libpq'; then
    pass "the plugin links libpq"
  else
    fail "the plugin does not link libpq"
  fi
  # Past the plugin: the database (nobody listens) is what is missing now.
  rc_cli=0
  out=$(pbx-mfa --config "$dbconf" status --user "$user" 2>&1) || rc_cli=$?
  if [ $rc_cli != 0 ] && grep -q 'database unreachable' <<<"$out" && ! grep -q 'plugin' <<<"$out"; then
    pass "pbx-mfa status loads the plugin: exit $rc_cli, '$out'"
  else
    fail "pbx-mfa status with the plugin: exit $rc_cli, '$out' (expected: database unreachable)"
  fi
  entry=$(pbx-mfa --config "$dbconf" doctor 2>&1 | grep 'db-connect:' || true)
  if [[ $entry == *"database unreachable"* ]]; then
    pass "pbx-mfa doctor loads the plugin: $entry"
  else
    fail "pbx-mfa doctor's db-connect with the plugin: '$entry'"
  fi
  if out=$(pamtester "$service-db" "$user" authenticate </dev/null 2>&1); then
    fail "a login with the database unreachable succeeded: $out"
  elif grep -q 'cannot retrieve authentication info' <<<"$out"; then
    pass "a login with the plugin and the database unreachable fails closed (PAM_AUTHINFO_UNAVAIL)"
  else
    fail "a login with the plugin and the database unreachable: $out"
  fi

  # -------------------------------------------------------------------------------------------
  # Debian's own package tests (debian/tests/control), as Debian's CI runs them, on the
  # three packages installed above: autopkgtest's null runner (this machine is the testbed), the
  # source tree only for the tests (-B: nothing is built), every test dependency already
  # installed (scripts/lib/deps.sh), so apt fetches nothing.
  step "autopkgtest -B $tests_src -- null (debian/tests on the installed packages)"
  local apt_out="$tmp/autopkgtest" rc=0
  autopkgtest -B -q -o "$apt_out" "$tests_src" -- null >"$tmp/autopkgtest.log" 2>&1 || rc=$?
  sed 's/^/  autopkgtest: /' "$apt_out/summary" 2>/dev/null || true
  local t
  if [ $rc = 0 ] && grep -qE '^smoke +PASS' "$apt_out/summary" 2>/dev/null &&
    grep -qE '^postgresql-plugin +PASS' "$apt_out/summary" 2>/dev/null; then
    for t in smoke postgresql-plugin; do
      pass "autopkgtest (null runner): debian/tests $t PASS ($(grep -c '^PASS: ' "$apt_out/$t-stdout" 2>/dev/null || echo 0) checks)"
    done
  else
    fail "autopkgtest (null runner) exit status $rc (0 = all passed, 2 = a test skipped, 4 = failed, 8 = no tests, 12/16 = the testbed or dependencies)"
    tail -40 "$apt_out/log" 2>/dev/null | sed 's/^/  /' || tail -40 "$tmp/autopkgtest.log"
    for t in smoke postgresql-plugin; do
      cat "$apt_out/$t-stdout" "$apt_out/$t-stderr" 2>/dev/null | sed "s/^/  $t: /"
    done
  fi

  # -------------------------------------------------------------------------------------------
  # Back to a files-only host: the plugin's package goes, the module and the CLI stay and work.
  local listed="$tmp/listed"
  dpkg-query -L "$plugin_package" >"$listed"
  step "apt-get remove $plugin_package (the others stay)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get remove -y "$plugin_package" </dev/null \
    >"$tmp/remove-plugin.log" 2>&1; then
    cat "$tmp/remove-plugin.log"
    fail "apt-get remove $plugin_package failed"
  fi
  local still=1
  for p in "${base_packages[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>&1)" != "install ok installed" ]; then
      fail "$p is not installed any more after removing $plugin_package"
      still=0
    fi
  done
  if [ -e "$plugin" ]; then
    fail "$plugin left after removing $plugin_package"
  elif [ $still = 1 ]; then
    pass "removing $plugin_package removes the plugin and leaves ${base_packages[*]} installed"
  fi
  if [ -n "$recovery" ] && out=$(pamlogin "$recovery" 2>&1) && grep -q 'successfully authenticated' <<<"$out"; then
    pass "files store without the plugin's package: password + recovery code authenticated"
  else
    fail "files store without the plugin's package: the login with a recovery code failed: $out"
  fi
  out=$(pbx-mfa --config "$dbconf" status --user "$user" 2>&1 || true)
  if grep -qF "$missing" <<<"$out"; then
    pass "store = postgresql names $plugin_package again"
  else
    fail "store = postgresql after removing $plugin_package: '$out'"
  fi
  rm -f "/etc/pam.d/$service" "/etc/pam.d/$service-db"

  # -------------------------------------------------------------------------------------------
  for p in "${base_packages[@]}"; do dpkg-query -L "$p"; done >>"$listed"
  sort -u -o "$listed" "$listed"

  step "apt-get remove ${packages[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get remove -y "${packages[@]}" </dev/null >"$tmp/remove.log" 2>&1; then
    cat "$tmp/remove.log"
    fail "apt-get remove failed"
  fi
  if [ -n "$(ls -A /var/lib/pbx-mfa 2>/dev/null)" ]; then
    pass "remove keeps the state in /var/lib/pbx-mfa"
  else
    fail "remove deleted /var/lib/pbx-mfa (only purge may)"
  fi
  if [ -f /etc/security/pbx-mfa.conf ]; then
    pass "remove keeps the conffile /etc/security/pbx-mfa.conf"
  else
    fail "remove deleted /etc/security/pbx-mfa.conf"
  fi
  if grep -qx pbx-totp /var/lib/pam/seen 2>/dev/null; then
    fail "pbx-totp still in /var/lib/pam/seen after remove (prerm did not run pam-auth-update --remove)"
  else
    pass "prerm took pbx-totp out of pam-auth-update's state"
  fi

  step "apt-get purge ${packages[*]}"
  if ! purge_packages >"$tmp/purge.log" 2>&1; then
    cat "$tmp/purge.log"
    fail "apt-get purge failed"
  fi
  for p in "${packages[@]}"; do
    if installed "$p"; then
      fail "$p still known to dpkg after purge: $(dpkg-query -W -f='${db:Status-Abbrev}' "$p")"
    fi
  done
  local left=0
  while read -r f; do
    # Not a directory, nor a link to one (/lib -> usr/lib on Debian 12, listed for the unit).
    if { [ -e "$f" ] || [ -L "$f" ]; } && [ ! -d "$f" ]; then
      fail "left after purge: $f"
      left=$((left + 1))
    fi
  done <"$listed"
  for f in /usr/share/doc/libpam-pbx-totp /usr/share/doc/pbx-mfa "/usr/share/doc/$plugin_package" \
    /var/lib/pbx-mfa /etc/security/pbx-mfa.conf; do
    if [ -e "$f" ]; then
      fail "left after purge: $f"
      left=$((left + 1))
    fi
  done
  if [ $left = 0 ]; then
    pass "purge: no file of the packages ($(wc -l <"$listed") paths listed), no state dir, no config left"
  fi
  if grep -rqs -e pbx-totp -e pam_pbx_totp /var/lib/pam /etc/pam.d/common-* ||
    debconf-show libpam-runtime 2>/dev/null | grep pbx-totp >/dev/null; then
    fail "pam-auth-update state still mentions pbx-totp"
  else
    pass "pam-auth-update state (/var/lib/pam, debconf, common-*) has no trace of pbx-totp"
  fi
  check_watched "after purge"
}

case $mode in
  build) build ;;
  install) install_and_check ;;
  all)
    build
    install_and_check
    ;;
esac

echo
if [ $fails -ne 0 ]; then
  echo "package e2e ($mode): $fails checks failed ($((SECONDS - started)) s)"
  exit 1
fi
echo "package e2e ($mode): all checks passed ($((SECONDS - started)) s)"

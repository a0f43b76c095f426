# shellcheck shell=bash
# Debian packages pbx-mfa needs, and installing the missing ones; sourced by scripts/test,
# scripts/demo and bench/run.

# Everything the build, the tests and the demo need on Debian 12. Add new packages here.
# shellcheck disable=SC2034  # used by the scripts that source this file
PBX_DEPS=(
  build-essential cmake pkg-config clang
  libssl-dev libpam0g-dev libqrencode-dev libcli11-dev nlohmann-json3-dev
  googletest libgtest-dev libbenchmark-dev
  oathtool pamtester expect zbar-tools groff valgrind
  strace  # tests/e2e/login_openssl_init.sh: which files a login opens
  libpam-google-authenticator libpam-oath openssh-server
  sudo  # tests/e2e/helpdesk_sudo.sh: the helpdesk through the real sudo
  clang-format clang-tidy shellcheck  # scripts/lint (clang-tidy brings run-clang-tidy)
  ccache python3  # scripts/lib/build.sh compiles through ccache; scripts/lib/tidy_cache.py
  debhelper lintian  # tests/e2e/package.sh: dpkg-buildpackage (dpkg-dev is in build-essential)
  fail2ban  # tests/e2e/fail2ban_filter.sh: fail2ban-regex, fail2ban-client -t (never started)
  autopkgtest  # tests/e2e/package.sh: debian/tests with the null runner on the installed packages
  # tests/e2e/cockpit: Cockpit (cockpit-ws, the bridge, the shell) and headless Chromium
  # driven by Selenium (/usr/bin/python3 with python3-selenium)
  cockpit-ws cockpit-bridge cockpit-system chromium chromium-driver python3-selenium
  # store = postgresql: libpq for lib/pg (the plugin), and the server and client tools that
  # tests/db/cluster.sh runs a throwaway test cluster with (/usr/lib/postgresql/15/bin)
  libpq-dev postgresql-15 postgresql-client-15
)

# What scripts/demo needs: the module, the CLI and the small PAM login client build with these
# alone (no test framework, no libpq: the demo builds neither the tests nor the database plugin).
# shellcheck disable=SC2034  # used by scripts/demo
PBX_DEMO_DEPS=(
  build-essential cmake pkg-config
  libssl-dev libpam0g-dev libqrencode-dev libcli11-dev nlohmann-json3-dev
)
# and for `scripts/demo --auto`, which reads the secret off the screen and types the codes.
# shellcheck disable=SC2034
PBX_DEMO_AUTO_DEPS=(oathtool expect)

# Prints, one per line, the packages among "$@" that are not installed.
pbx_missing_packages() {
  local pkg status
  for pkg in "$@"; do
    # dpkg-query exits 1 for a package it has never heard of; that is "missing" too.
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || printf '%s\n' "$pkg"
  done
}

# Makes sure the packages "$@" are installed. As root: `apt-get update` once, then installs
# only the missing ones. Otherwise prints the apt-get line to run and exits 2.
pbx_ensure_packages() {
  local me=${PBX_SCRIPT_NAME:-${0##*/}}
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "$me: dpkg-query not found: this script installs Debian packages (Debian 12)." >&2
    echo "$me: install the equivalents of: $*  — then run again with --no-deps." >&2
    exit 2
  fi
  local missing=()
  mapfile -t missing < <(pbx_missing_packages "$@")
  if ((${#missing[@]} == 0)); then
    echo "==> $me: all $# packages it needs are installed"
    return 0
  fi
  if ((EUID != 0)); then
    echo "$me: missing Debian packages: ${missing[*]}" >&2
    echo "$me: install them as root, then run this again:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 2
  fi
  echo "==> $me: installing missing packages: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
    </dev/null
  mapfile -t missing < <(pbx_missing_packages "$@")
  if ((${#missing[@]} != 0)); then
    echo "$me: still not installed after apt-get: ${missing[*]}" >&2
    exit 2
  fi
}

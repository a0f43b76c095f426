# shellcheck shell=bash
# Configure and build one CMake tree; sourced by scripts/test, scripts/demo and bench/run.

# pbx_compiler_launcher: prints the CMake arguments that compile through ccache when it is
# installed (and PBX_NO_CCACHE is not set), nothing otherwise. The cache is keyed on paths
# relative to the source tree (CCACHE_BASEDIR), so a fresh clone in another directory reuses
# what an earlier clone compiled; ccache checks the preprocessed input and the compiler, so a
# hit is the object file the compiler would have made.
pbx_compiler_launcher() {
  [[ -z ${PBX_NO_CCACHE:-} ]] && command -v ccache >/dev/null 2>&1 || return 0
  printf '%s\n' -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
}
# The same for the CMake trees the tests configure themselves (the Debian package build, the
# demo's): CMake takes a launcher from these variables when a tree is first configured.
if [[ -z ${PBX_NO_CCACHE:-} ]] && command -v ccache >/dev/null 2>&1; then
  CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  # Spelled out: debhelper gives the package build a HOME of its own.
  CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir)}
  CMAKE_C_COMPILER_LAUNCHER=${CMAKE_C_COMPILER_LAUNCHER:-ccache}
  CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-ccache}
  export CCACHE_BASEDIR CCACHE_DIR CMAKE_C_COMPILER_LAUNCHER CMAKE_CXX_COMPILER_LAUNCHER
fi

# pbx_build DIR [CMAKE ARGS...]: configures the source tree (the current directory) into DIR
# and builds it on every core. Returns non-zero on failure (callers decide what that means).
pbx_build() {
  local dir=$1 launcher
  shift
  mapfile -t launcher < <(pbx_compiler_launcher)
  echo "==> configure $dir ($*) $(date -u +%T)"
  cmake -S . -B "$dir" "$@" "${launcher[@]}" || return 1
  echo "==> build $dir $(date -u +%T)"
  cmake --build "$dir" -j "$(nproc)" || return 1
}

# shellcheck shell=bash
# Configure and build one CMake tree; sourced by scripts/test, scripts/demo and bench/run.

# pbx_build DIR [CMAKE ARGS...]: configures the source tree (the current directory) into DIR
# and builds it on every core. Returns non-zero on failure (callers decide what that means).
pbx_build() {
  local dir=$1
  shift
  echo "==> configure $dir ($*)"
  cmake -S . -B "$dir" "$@" || return 1
  echo "==> build $dir"
  cmake --build "$dir" -j "$(nproc)" || return 1
}

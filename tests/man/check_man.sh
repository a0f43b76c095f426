#!/bin/bash
# The man pages against groff and against the code. One check per call:
#   check_man.sh render MAN_DIR
#       every page renders with `groff -man -ww -z` (default and utf8 devices) and
#       `man --warnings -l` without a single warning
#   check_man.sh cli MAN_DIR PBX_MFA
#       every subcommand of the built pbx-mfa (from `pbx-mfa --help`) has its own subsection
#       under COMMANDS in pbx-mfa.1 and nothing else has one; every option and positional of
#       `pbx-mfa SUB --help` is an item of that subsection; the global options are in OPTIONS
#   check_man.sh config MAN_DIR CONFIG_FILE CONFIG_CHECK
#       every key of the settings table (`CONFIG_CHECK --list`) is an item of pbx-mfa.conf.5's
#       OPTIONS and nothing else is; CONFIG_CHECK checks config/pbx-mfa.conf against the table
#       (every key and no other, each at its default, commented out, parsing as all defaults)
#   check_man.sh events MAN_DIR CONFIG_CHECK
#       every event kind (`CONFIG_CHECK --events`: kEventKinds of events.hpp) and every field of
#       an event is an item of pbx-mfa.1's EVENTS, and EVENTS has no item that is neither
#   check_man.sh module MAN_DIR PAM_TABLES
#       every argument of the module's table (PAM_TABLES args: pam/module_args.cpp) is an item of
#       pam_pbx_totp.8's OPTIONS, and every outcome name (PAM_TABLES outcomes: pam/outcome.hpp) is in it
# Prints "FAIL: ..." for each problem and exits 1 when there was one.
set -u
export LC_ALL=C.UTF-8

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "FAIL: $1 is not installed (Debian package: $2)"
    exit 1
  }
}

# A page as plain text, 78 columns, no hyphenation (the pages turn it off), no bold/underline.
plain() {
  groff -man -Tascii -P-c -P-b -P-o -P-u "$1" 2>/dev/null | sed 's/.\x08//g'
}

# Lines of section $2 (a .SH title) of plain text on stdin, without the title.
section() {
  awk -v name="$1" '
    /^[A-Z]/ { in_section = ($0 == name); next }
    in_section { print }'
}

# Lines of subsection $1 (a .SS title) of the text on stdin, without the title.
subsection() {
  awk -v name="$1" '
    /^   [^ ]/ { sub(/^ +/, ""); in_sub = ($0 == name); next }
    in_sub { print }'
}

# Is $1 an item tag (.TP) in the text on stdin? Tags sit at 7 columns, alone or followed by
# their argument or text; one tag may list several names ("-h, --help").
has_item() {
  local word=$1
  grep -qE "^       ([^ ]+, )*$(printf '%s' "$word" | sed 's/[][\.*^$+?(){}|]/\\&/g')([ ,=]|$)"
}

# Does the text on stdin hold $1 as a whole word?
has_word() {
  grep -qE "(^|[^A-Za-z0-9_-])$(printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g')([^A-Za-z0-9_-]|$)"
}

check_render() {
  local dir=$1 page out
  need groff groff
  for page in pbx-mfa.1 pbx-mfa.conf.5 pam_pbx_totp.8; do
    [[ -f $dir/$page ]] || { fail "$page: missing"; continue; }
    out=$(groff -man -ww -z "$dir/$page" 2>&1)
    [[ -z $out ]] || fail "$page: groff -man -ww -z warns:"$'\n'"$out"
    out=$(groff -man -ww -z -Tutf8 "$dir/$page" 2>&1)
    [[ -z $out ]] || fail "$page: groff -man -ww -z -Tutf8 warns:"$'\n'"$out"
    if command -v man >/dev/null 2>&1; then
      out=$(MANWIDTH=80 MAN_KEEP_FORMATTING=0 man --warnings -l "$dir/$page" 2>&1 >/dev/null)
      [[ -z $out ]] || fail "$page: man --warnings -l warns:"$'\n'"$out"
    else
      echo "note: man not installed; checked with groff only"
    fi
    echo "rendered $page"
  done
}

# Names in section $1 ("Subcommands:", "Options:", "Positionals:") of CLI11 help on stdin.
help_section() {
  awk -v name="$1" '
    /^[A-Z][A-Za-z]*:$/ { in_section = ($0 == name); next }
    /^$/ { in_section = 0; next }
    in_section && /^  [^ ]/ { print $1 }'
}

check_cli() {
  local dir=$1 bin=$2 help sub opts name text commands item subs=()
  need groff groff
  [[ -x $bin ]] || { fail "$bin: not built"; exit 1; }
  text=$(plain "$dir/pbx-mfa.1")
  help=$("$bin" --help) || { fail "pbx-mfa --help failed"; exit 1; }
  mapfile -t subs < <(help_section Subcommands: <<<"$help")
  ((${#subs[@]} > 0)) || fail "no subcommands found in 'pbx-mfa --help'"

  # Global options: -h,--help → -h and --help.
  opts=$(help_section Options: <<<"$help" | tr ',' '\n')
  for name in $opts; do
    section OPTIONS <<<"$text" | has_item "$name" ||
      fail "pbx-mfa.1: global option $name (pbx-mfa --help) is not an item of OPTIONS"
  done

  commands=$(section COMMANDS <<<"$text")
  for sub in "${subs[@]}"; do
    local block
    block=$(subsection "$sub" <<<"$commands")
    if [[ -z $block ]]; then
      fail "pbx-mfa.1: subcommand '$sub' (pbx-mfa --help) has no subsection under COMMANDS"
      continue
    fi
    help=$("$bin" "$sub" --help) || { fail "pbx-mfa $sub --help failed"; continue; }
    for name in $(help_section Options: <<<"$help" | tr ',' '\n'); do
      [[ $name == -h || $name == --help ]] && continue  # on every subcommand: in OPTIONS
      has_item "$name" <<<"$block" ||
        fail "pbx-mfa.1: option $name of 'pbx-mfa $sub' is not an item of COMMANDS > $sub"
    done
    for name in $(help_section Positionals: <<<"$help"); do
      has_word "$name" <<<"$block" ||
        fail "pbx-mfa.1: argument $name of 'pbx-mfa $sub' is not named under COMMANDS > $sub"
    done
    echo "pbx-mfa $sub: documented"
  done
  # The other way round: no page for a subcommand the binary does not have.
  while read -r item; do
    printf '%s\n' "${subs[@]}" | grep -qxF "$item" ||
      fail "pbx-mfa.1: COMMANDS > $item is not a subcommand of the built pbx-mfa"
  done < <(grep -E '^   [^ ]' <<<"$commands" | sed 's/^ *//')
}

check_config() {
  local dir=$1 conf=$2 checker=$3 key keys items
  need groff groff
  [[ -x $checker ]] || { fail "$checker: not built"; exit 1; }
  keys=$("$checker" --list | sed -E 's/ =.*//') || { fail "$checker --list failed"; exit 1; }
  [[ -n $keys ]] || { fail "the settings table lists no keys ($checker --list)"; exit 1; }
  items=$(plain "$dir/pbx-mfa.conf.5" | section OPTIONS)
  for key in $keys; do
    grep -qE "^       $key = " <<<"$items" ||
      fail "pbx-mfa.conf.5: key $key (settings table) is not an item '$key = ...' of OPTIONS"
  done
  while read -r key; do
    grep -qxF "$key" <<<"$keys" ||
      fail "pbx-mfa.conf.5: OPTIONS documents '$key', which is not in the settings table"
  done < <(grep -oE '^       [a-z_]+ = ' <<<"$items" | sed -E 's/^ +([a-z_]+) = /\1/')
  echo "pbx-mfa.conf.5: $(wc -w <<<"$keys") keys checked"
  "$checker" "$conf" || failures=$((failures + 1))
}

check_events() {
  local dir=$1 checker=$2 kind kinds items item
  local fields=(time host service user rhost event actor detail)
  need groff groff
  [[ -x $checker ]] || { fail "$checker: not built"; exit 1; }
  kinds=$("$checker" --events) || { fail "$checker --events failed"; exit 1; }
  [[ -n $kinds ]] || { fail "no event kinds from $checker --events"; exit 1; }
  items=$(plain "$dir/pbx-mfa.1" | section EVENTS)
  for kind in $kinds "${fields[@]}"; do
    has_item "$kind" <<<"$items" ||
      fail "pbx-mfa.1: event kind or field '$kind' (events.hpp) is not an item of EVENTS"
  done
  # The other way round: every item of EVENTS is a kind or a field.
  while read -r item; do
    grep -qxF "$item" <<<"$kinds" || printf '%s\n' "${fields[@]}" | grep -qxF "$item" ||
      fail "pbx-mfa.1: EVENTS documents '$item', which is neither a kind of kEventKinds nor a field"
  done < <(grep -oE '^       [a-z][a-z-]*$' <<<"$items" | sed 's/^ *//')
  echo "pbx-mfa.1: $(wc -w <<<"$kinds") event kinds and ${#fields[@]} fields checked"
}

check_module() {
  local dir=$1 tables=$2 name text items names outcomes
  need groff groff
  text=$(plain "$dir/pam_pbx_totp.8")
  items=$(section OPTIONS <<<"$text")
  # The module's argument table (pam/module_args.cpp), printed by pbx-pam-tables.
  names=$("$tables" args | sort -u)
  [[ -n $names ]] || { fail "no module arguments from $tables args"; exit 1; }
  for name in $names; do
    has_item "$name" <<<"$items" ||
      fail "pam_pbx_totp.8: module argument $name (pam/module_args.cpp) is not an item of OPTIONS"
  done
  has_item key <<<"$items" || fail "pam_pbx_totp.8: OPTIONS has no item key=value"
  echo "pam_pbx_totp.8: $(wc -w <<<"$names") module arguments checked"
  outcomes=$("$tables" outcomes | sort -u)
  [[ -n $outcomes ]] || { fail "no outcome names from $tables outcomes"; exit 1; }
  for name in $outcomes; do
    section "RETURN VALUES" <<<"$text" | has_word "$name" ||
      fail "pam_pbx_totp.8: outcome $name (pam/outcome.hpp) is not in RETURN VALUES"
  done
  echo "pam_pbx_totp.8: $(wc -w <<<"$outcomes") outcomes checked"
}

what=${1:-}
shift || true
case $what in
  render) check_render "$@" ;;
  cli) check_cli "$@" ;;
  config) check_config "$@" ;;
  module) check_module "$@" ;;
  events) check_events "$@" ;;
  *) echo "usage: check_man.sh render|cli|config|module|events MAN_DIR ..." >&2; exit 2 ;;
esac
if ((failures > 0)); then
  echo "$failures problem(s)"
  exit 1
fi
echo "ok"

#!/usr/bin/env bash
# cli_consistency.sh - every binary and every subcommand answers alike (common/qk_cli.h): --help
# prints the usage on stdout and exits 0; --version prints "PROG VERSION" with the Makefile's
# VERSION and exits 0; an unknown option, an option without its value, a missing or unknown
# subcommand print the usage (or point to --help) on stderr, nothing on stdout, and exit 2.
# Binaries are every executable in $BUILD/bin; subcommands are read from each usage's
# "Commands:" list, recursively, so a new binary or subcommand is covered without editing this
# file. Then the manual pages (docs/man): one per binary and per config file, each lints clean
# with `groff -man -ww` (groff(1): -ww enables every warning), and each binary's page names
# every subcommand and every long option its usages print. Then the bash completion
# (dist/bash-completion): each script, sourced with bash-completion, registers its tool
# (`complete -p`) and completes a subcommand prefix and the full command list. Quick (~10 s).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/skip.sh
. "$(dirname "$0")/../lib/skip.sh"
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BASH_COMPLETION=/usr/share/bash-completion/bash_completion
qk_need_bin "$BUILD/bin/qkd-kmed" "$BUILD/bin/qkd-sim" "$BUILD/bin/qkd-lab" "$BUILD/bin/qkd" \
  "$BUILD/bin/qkd-bridge" "$BUILD/bin/qkd-bench"
qk_need_cmd groff timeout awk
[ -r "$BASH_COMPLETION" ] || qk_skip missing-tool "bash-completion not installed (scripts/install-deps)"

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir "$T/cwd"
NFAIL=0
fail() { echo "FAIL: $*"; NFAIL=$((NFAIL + 1)); }
ok() { echo "ok: $*"; }

VERSION=$(sed -n 's/^VERSION := *//p' "$ROOT/Makefile")
[ -n "$VERSION" ] || { echo "FAIL: no VERSION := line in the Makefile"; exit 1; }

# run ARGS...: run one command line in an empty directory with no input; RC, $T/out, $T/err.
run() {
  (cd "$T/cwd" && timeout 10 "$@" >"$T/out" 2>"$T/err" </dev/null)
  RC=$?
}
# commands_of FILE: the names under "Commands:" in a usage text.
commands_of() {
  awk '/^Commands:/ { c = 1; next } c && /^  [a-z]/ { print $1; next } c && /^   / { next } c { exit }' "$1"
}
# an_option_with_value FILE: the first option the usage shows with a value (--dir DIR, -c FILE).
an_option_with_value() {
  grep -oE -- '(^|[][ (|,])--?[a-z][a-z0-9-]* [A-Z][A-Z0-9_]*' "$1" | head -n 1 |
    sed -E 's/^[][ (|,]//; s/ .*//'
}
usage_error() { # WHAT: RC is 2, stdout empty, stderr has the usage or points to --help
  if [ "$RC" != 2 ]; then
    fail "$1: exit $RC, expected 2 (stderr: $(head -c 300 "$T/err"))"
  elif [ -s "$T/out" ]; then
    fail "$1: a usage error writes on stdout: $(head -c 200 "$T/out")"
  elif ! grep -qiE 'usage|--help' "$T/err"; then
    fail "$1: stderr shows no usage: $(head -c 300 "$T/err")"
  fi
}

NCMD=0
# check PARENT_HELP DEPTH PROG [SUBCOMMAND...]: the rules above for one command line, then its
# own subcommands.
check() {
  local parent=$1 depth=$2
  shift 2
  local what="$*" prog=${3:-}
  prog=$(basename "$1")
  what=${what#"$BUILD/bin/"}
  NCMD=$((NCMD + 1))
  local help="$T/help.$depth"
  run "$@" --help
  if [ "$RC" != 0 ]; then
    fail "$what --help: exit $RC"
  elif ! grep -qi usage "$T/out"; then
    fail "$what --help: no usage on stdout"
  elif [ -s "$T/err" ]; then
    fail "$what --help: writes on stderr: $(head -c 200 "$T/err")"
  fi
  cp "$T/out" "$help"
  cat "$help" >>"$T/helps.$prog"
  run "$@" --version
  if [ "$RC" != 0 ] || [ "$(cat "$T/out")" != "$prog $VERSION" ]; then
    fail "$what --version: exit $RC, printed '$(head -c 100 "$T/out")', expected '$prog $VERSION'"
  fi
  run "$@" --no-such-option
  usage_error "$what --no-such-option"
  local opt
  opt=$(an_option_with_value "$help")
  if [ -n "$opt" ]; then
    run "$@" "$opt"
    usage_error "$what $opt (no value)"
  fi
  # Subcommands: only where this usage is not its parent's (qkd etsi enc --help is etsi's).
  local cmds
  cmds=$(commands_of "$help")
  if [ -n "$cmds" ] && ! cmp -s "$help" "$parent"; then
    run "$@"
    usage_error "$what (no subcommand)"
    run "$@" no-such-command
    usage_error "$what no-such-command"
    local c
    for c in $cmds; do
      echo "$prog $c" >>"$T/cmds.$prog"
      check "$help" $((depth + 1)) "$@" "$c"
    done
  elif [ -z "$opt" ] && [ "$depth" = 0 ]; then
    fail "$what: neither subcommands nor an option with a value in its usage"
  fi
}

BINS=()
for b in "$BUILD"/bin/*; do [ -x "$b" ] && [ -f "$b" ] && BINS+=("$b"); done
: >"$T/none"
for b in "${BINS[@]}"; do
  p=$(basename "$b")
  : >"$T/helps.$p"
  : >"$T/cmds.$p"
  n0=$NFAIL c0=$NCMD
  check "$T/none" 0 "$b"
  [ "$NFAIL" = "$n0" ] && ok "$p: --help, --version and usage errors alike in $((NCMD - c0)) command lines"
done

# --- manual pages
MAN=$ROOT/docs/man
for page in "$MAN"/*.[1-8]; do
  w=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
  [ -z "$w" ] || fail "$(basename "$page"): groff -man -ww warns: $w"
done
for conf in kmed.conf.5 sim.conf.5 bridge.conf.5; do
  [ -f "$MAN/$conf" ] || fail "no manual page docs/man/$conf"
done
for b in "${BINS[@]}"; do
  p=$(basename "$b")
  page=
  for f in "$MAN/$p".[18]; do [ -f "$f" ] && page=$f; done
  if [ -z "$page" ]; then
    fail "$p has no manual page (docs/man/$p.1 or .8)"
    continue
  fi
  # What the page names, with roff's \- as -.
  sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page" >"$T/page"
  n0=$NFAIL
  while read -r _ c rest; do
    [ -n "$c" ] || continue
    grep -qwF -- "$c" "$T/page" || fail "$(basename "$page") does not name the subcommand ${rest:+$c $rest}${rest:-$c}"
  done < <(awk '{ $1 = $1; print }' "$T/cmds.$p")
  while read -r o; do
    grep -qF -- "$o" "$T/page" || fail "$(basename "$page") does not document $o (in $p's usage)"
  done < <(grep -oE -- '--[a-z][a-z0-9-]+' "$T/helps.$p" | sort -u)
  [ "$NFAIL" = "$n0" ] && ok "$(basename "$page"): every subcommand and option of $p's usages"
done
# Every key of each config file (in the "## Configuration" section of its doc: the INI example of
# docs/qkd-kmed.md and docs/qkd-sim.md, the key tables of docs/qkd-bridge.md) is in its page.
conf_keys() { # DOC: the keys its INI example blocks ("key = ...") or key tables ("| `key` |") name
  awk '/^## / { cfg = /^## Configuration/ } !cfg { next }
       /^```ini/ { ini = 1; next } /^```/ { ini = 0; next }
       ini && /^[a-z_0-9]+ *=/ { sub(/ *=.*/, ""); print; next }
       /^\| `[a-z_0-9]+`/ { n = split($2, a, /`/); for (i = 2; i <= n; i += 2) if (a[i] ~ /^[a-z_0-9]+$/) print a[i] }' "$1" |
    sort -u
}
for pair in kmed.conf.5:qkd-kmed.md sim.conf.5:qkd-sim.md bridge.conf.5:qkd-bridge.md; do
  page=$MAN/${pair%%:*} doc=$ROOT/docs/${pair#*:}
  if [ ! -f "$page" ] || [ ! -f "$doc" ]; then continue; fi
  n0=$NFAIL nkeys=0
  while read -r k; do
    nkeys=$((nkeys + 1))
    grep -qE -- "(^|[ ,\"])$k([ ,\"]|\$)" "$page" || fail "$(basename "$page") does not document the key $k (docs/${pair#*:})"
  done < <(conf_keys "$doc")
  [ "$nkeys" -gt 5 ] || fail "docs/${pair#*:}: only $nkeys config keys found"
  [ "$NFAIL" = "$n0" ] && ok "$(basename "$page"): the $nkeys keys of docs/${pair#*:}"
done
[ "$NFAIL" = 0 ] && ok "manual pages: one per binary and config file, groff -ww clean"

# --- bash completion: each script registers its tool and completes its subcommands
for b in "${BINS[@]}"; do
  s=$(basename "$b")
  f=$ROOT/dist/bash-completion/$s
  [ -r "$f" ] || { fail "no completion script dist/bash-completion/$s"; continue; }
  cmds=$(PATH=$BUILD/bin:$PATH "$s" --help | commands_of /dev/stdin | tr '\n' ' ')
  first=${cmds%% *}
  # The first subcommand from its first two letters (or the first option, for a tool without
  # subcommands), then every subcommand from nothing.
  if [ -n "$first" ]; then prefix=${first:0:2}; else prefix=--he; fi
  # shellcheck disable=SC2016 # the script is bash -c's, with its own positional parameters
  out=$(PATH=$BUILD/bin:$PATH bash --norc --noprofile -c '
    . "$1" && . "$2" || exit 3
    tool=$3
    spec=$(complete -p "$tool" 2>&1) && [[ $spec == *" $tool" ]] || { echo "not registered: $spec"; exit 4; }
    fn=$(sed -E "s/.*-F ([^ ]+).*/\1/" <<<"$spec")
    comp() { COMP_WORDS=("$tool" "$1"); COMP_CWORD=1; COMP_LINE="$tool $1"; COMP_POINT=${#COMP_LINE}
             COMPREPLY=(); "$fn" "$tool" "$1" "$tool"; echo "${COMPREPLY[*]}"; }
    comp "$4"; comp ""' _ "$BASH_COMPLETION" "$f" "$s" "$prefix" 2>&1)
  one=$(sed -n 1p <<<"$out") all=$(sed -n 2p <<<"$out")
  if [ -n "$first" ]; then
    want=$(tr ' ' '\n' <<<"$cmds" | grep -- "^$prefix" | tr '\n' ' ')
    [ "$one " = "$want" ] || fail "completion of '$s $prefix': '$one', expected '${want% }' ($out)"
    [ "$all " = "$cmds" ] || fail "completion of '$s ': '$all', expected '${cmds% }'"
  else
    [ "$one" = "--help" ] || fail "completion of '$s --he': '$one', expected --help ($out)"
  fi
done
[ "$NFAIL" = 0 ] && ok "bash completion: every script registers its tool and completes its subcommands"

if [ "$NFAIL" != 0 ]; then
  echo "cli_consistency: $NFAIL failure(s)"
  exit 1
fi
echo "cli_consistency: all passed"

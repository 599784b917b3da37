# shellcheck shell=bash
# skip.sh - the one skip policy of the integration tests (tests/README.md, "Skips").
# A suite skips (exit 77) only through qk_skip, which prints one line in a fixed form
#     SKIP(CODE): TEXT
# and, when QK_SKIP_FILE is set (run-integration sets it), writes "CODE TEXT" into that file, so
# that run-integration can tell a documented reason from any other.
#
# Documented reasons, the only ones a strict run accepts:
#     not-root  the suite needs root and network namespaces (CI runs as root)
#     slow      the suite is marked SLOW and QK_SLOW=1 was not given (run-integration decides)
# Every other reason (missing-binary, missing-tool, no-package, ...) is undocumented: in a strict
# run (CI=true, as CI services set it, or QK_STRICT_SKIPS=1, as `make check` sets it) qk_skip
# prints "FAIL(CODE): TEXT" and exits 1 instead, since `make tests-build` builds every binary and
# scripts/install-deps installs every tool.
#
#   qk_skip CODE TEXT     skip (exit 77), or fail (exit 1) in a strict run when CODE is undocumented
#   qk_strict             true in a strict run
#   qk_skip_documented CODE  true when CODE is a documented reason
#   qk_need_root TEXT     qk_skip not-root TEXT unless running as uid 0
#   qk_need_bin FILE...   qk_skip missing-binary for the first FILE that is not executable
#   qk_need_cmd CMD...    qk_skip missing-tool for the first CMD not on PATH

QK_SKIP_DOCUMENTED="not-root slow"

qk_strict() {
  [ "${QK_STRICT_SKIPS:-0}" = 1 ] && return 0
  case ${CI:-} in true | TRUE | True | 1) return 0 ;; esac
  return 1
}

qk_skip_documented() {
  case " $QK_SKIP_DOCUMENTED " in *" $1 "*) return 0 ;; esac
  return 1
}

qk_skip() { # CODE TEXT
  local code=$1; shift
  if ! qk_skip_documented "$code" && qk_strict; then
    echo "FAIL($code): $* (an undocumented skip is a failure when CI=true or QK_STRICT_SKIPS=1)"
    exit 1
  fi
  echo "SKIP($code): $*"
  if [ -n "${QK_SKIP_FILE:-}" ]; then echo "$code $*" >"$QK_SKIP_FILE"; fi
  exit 77
}

qk_need_root() { # TEXT
  [ "$(id -u)" = 0 ] || qk_skip not-root "needs root ($*)"
}

qk_need_bin() { # FILE...
  local f
  for f in "$@"; do
    [ -x "$f" ] || qk_skip missing-binary "$f not built (make tests-build)"
  done
}

qk_need_cmd() { # CMD...
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || qk_skip missing-tool "$c not installed (scripts/install-deps)"
  done
}

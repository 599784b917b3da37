# shellcheck shell=bash
# wait.sh - one bounded wait on a condition, shared by the integration suites (instead of fixed
# sleeps: a busy machine or a sanitizer build only makes the wait longer, never the test wrong).
#   wait_for COND TIMEOUT DESCRIPTION
#       Evaluates the shell command COND (with eval, in the caller's shell: it sees and may set
#       the caller's variables) until it succeeds, every WAIT_STEP seconds (default 0.1).
#       Returns 0 as soon as it does; after TIMEOUT seconds (wall clock, may be fractional) it
#       evaluates COND one last time, then prints "timed out after TIMEOUT s waiting for
#       DESCRIPTION" and returns 1.
# Its locals start with _wf_ so that COND can use any other name.

_wf_now_us() { local t=${EPOCHREALTIME:-}; [ -n "$t" ] && echo "${t//[.,]/}" || echo $(($(date +%s%N) / 1000)); }

wait_for() {
  local _wf_cond=$1 _wf_to=$2 _wf_desc=${3:-$1} _wf_end
  _wf_end=$(awk -v n="$(_wf_now_us)" -v t="$_wf_to" 'BEGIN { printf "%.0f", n + t * 1e6 }')
  while :; do
    eval "$_wf_cond" && return 0
    [ "$(_wf_now_us)" -lt "$_wf_end" ] || break
    sleep "${WAIT_STEP:-0.1}"
  done
  eval "$_wf_cond" && return 0
  echo "timed out after $_wf_to s waiting for $_wf_desc"
  return 1
}

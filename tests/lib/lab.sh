# shellcheck shell=bash
# lab.sh - helpers for the integration tests that run qkd-lab. Source it after setting BUILD;
# it creates $T (temp dir) and an EXIT trap that runs `qkd-lab down` on every lab started
# with lab_up (and kills what is left), then removes $T (kept when QK_KEEP=1).
#   lab_up NAME ARGS...       qkd-lab up --dir $T/NAME ARGS (output in $T/NAME.up)
#   lab_json NAME JQ          query $T/NAME/lab.json
#   kme_metric NAME KME METRIC [FILTER]   sum of the KME's samples (admin /metrics), or -1
#   sim_link NAME LINK JQ     query the simulator's status of LINK
#   lab_pids NAME             the PIDs the lab recorded (KMEs, simulator, dashboard)
#   sim_sample NAME LINK      "MS BLOCKS DELIVERED_BITS LOST_BITS" of LINK, MS the simulator's own
#                             clock (epoch ms) when it took those counters
#   sim_block_bits NAME       the simulator's block size in bits
# wait_for (tests/lib/wait.sh) is sourced too.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
LAB=$BUILD/bin/qkd-lab
SIM=$BUILD/bin/qkd-sim
# shellcheck source=skip.sh
. "$ROOT/tests/lib/skip.sh"
qk_need_bin "$LAB" "$SIM" "$BUILD/bin/qkd-kmed"
# shellcheck source=wait.sh
. "$ROOT/tests/lib/wait.sh"
# shellcheck source=ports.sh
. "$ROOT/tests/lib/ports.sh"
# qkd-lab's peer ports come from this suite's share of the test port range (ports.sh).
read -r _lab_lo _lab_hi < <(port_range)
export QKD_LAB_PORTS="$_lab_lo-$_lab_hi"
qk_need_cmd curl jq

T=$(mktemp -d /tmp/qk-lab.XXXXXX)
LABS=()
_lab_cleanup() {
  local n p
  for n in "${LABS[@]}"; do
    "$LAB" down --dir "$T/$n" >/dev/null 2>&1
    for p in $(lab_pids "$n"); do kill -KILL "$p" 2>/dev/null; done
  done
  if [ "${QK_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap _lab_cleanup EXIT

fail() {
  echo "FAIL: $*"
  local n
  for n in "${LABS[@]}"; do
    [ -f "$T/$n.up" ] && { echo "--- $n.up"; tail -n 20 "$T/$n.up"; }
    [ -f "$T/$n/sim/sim.log" ] && { echo "--- $n sim.log"; grep -v 'event=request' "$T/$n/sim/sim.log" | tail -n 10; }
  done
  exit 1
}
ok() { echo "ok: $*"; }

lab_up() {
  local n=$1; shift
  LABS+=("$n")
  "$LAB" up --dir "$T/$n" "$@" >"$T/$n.up" 2>&1 || fail "qkd-lab up $n"
}
lab_json() { jq -r "$2" "$T/$1/lab.json"; }
lab_pids() { cat "$T/$1"/*/kmed.pid "$T/$1/sim/sim.pid" "$T/$1/dashboard/dash.pid" 2>/dev/null; }

kme_metric() { # NAME KME METRIC [FILTER]
  local url
  url=$(lab_json "$1" ".kmes[] | select(.id==\"$2\") | .admin_url")
  curl -s --max-time 5 "$url/metrics" | awk -v m="$3" -v f="${4:-}" \
    '$1 ~ "^"m"({|$)" && index($1, f) { s += $2; n++ } END { if (n) printf "%.6f\n", s; else print -1 }'
}

sim_link() { # NAME LINK JQ
  "$SIM" status --control "$(lab_json "$1" .sim_url)" --json |
    jq -r ".links[] | select(.id==\"$2\") | $3"
}

# The simulator's counters of LINK and its own clock: the time is that of the simulator's log
# line for this very request (GET /v1/links/LINK, which nothing else in the tests asks for; its
# line is written after the answer, so wait for it). A rate computed from two samples depends
# only on the simulator, not on how fast this shell runs.
sim_sample() { # NAME LINK
  local log=$T/$1/sim/sim.log pat c0 js line ts ms
  pat="method=GET path=/v1/links/$2 "
  c0=$(grep -cF "$pat" "$log")
  js=$(curl -s --max-time 10 "$(lab_json "$1" .sim_url)/v1/links/$2") || return 1
  # shellcheck disable=SC2016 # evaluated by wait_for
  wait_for '[ "$(grep -cF "$pat" "$log")" -gt "$c0" ]' 10 "the simulator to log GET /v1/links/$2" >&2 ||
    return 1
  line=$(grep -F "$pat" "$log" | sed -n "$((c0 + 1))p")
  ts=${line#ts=}
  ts=${ts%% *}
  ms=$(date -u -d "$ts" +%s%3N) || return 1
  printf '%s' "$js" | jq -r --arg ms "$ms" '"\($ms) \(.blocks) \(.delivered_bits) \(.lost_bits)"'
}
sim_block_bits() { # NAME: from the simulator's "link ...: started: ... block_bytes=N" line
  local b
  b=$(grep -o 'block_bytes=[0-9]*' "$T/$1/sim/sim.log" | head -1)
  [ -n "$b" ] && echo $((${b#block_bytes=} * 8))
}

# No sanitizer report in the output of the lab's processes (after qkd-lab down).
no_san_reports() {
  if grep -lE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$T/$1"/*/*.out 2>/dev/null; then
    grep -hE -A5 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$T/$1"/*/*.out | head -40
    fail "sanitizer report in $1"
  fi
}

# A running (not zombie) process.
pid_running() {
  local s
  s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}

# ETSI 014: SAE_M at KME M gets a key for SAE_S, SAE_S fetches it at KME S; compare the bytes.
etsi_pair_key() { # NAME KME_M SAE_M KME_S SAE_S
  local n=$1 km=$2 sm=$3 ks=$4 ss=$5 ca um us enc kid ka kb
  ca=$(lab_json "$n" .ca_cert)
  um=$(lab_json "$n" ".kmes[] | select(.id==\"$km\") | .etsi014_url")
  us=$(lab_json "$n" ".kmes[] | select(.id==\"$ks\") | .etsi014_url")
  enc=$(curl -s --max-time 10 --cacert "$ca" --cert "$T/$n/pki/sae-$sm.crt" \
    --key "$T/$n/pki/sae-$sm.key" -H 'Content-Type: application/json' \
    --data-binary '{"number":1,"size":256}' "$um/api/v1/keys/$ss/enc_keys")
  kid=$(printf '%s' "$enc" | jq -r '.keys[0].key_ID // empty')
  ka=$(printf '%s' "$enc" | jq -r '.keys[0].key // empty')
  [ -n "$kid" ] && [ -n "$ka" ] || { echo "enc_keys at $km: $enc"; return 1; }
  kb=$(curl -s --max-time 10 --cacert "$ca" --cert "$T/$n/pki/sae-$ss.crt" \
    --key "$T/$n/pki/sae-$ss.key" -H 'Content-Type: application/json' \
    --data-binary "{\"key_IDs\":[{\"key_ID\":\"$kid\"}]}" "$us/api/v1/keys/$sm/dec_keys" |
    jq -r '.keys[0].key // empty')
  [ "$ka" = "$kb" ] || { echo "dec_keys at $ks returned other bytes"; return 1; }
}

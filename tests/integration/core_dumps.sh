#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): it points the system-wide core_pattern at its own folder.
# core_dumps.sh - no key bytes in core files (issue 17 item 4). With the core limit raised from
# outside (ulimit -c unlimited) and core_pattern pointing into a temporary directory, a qkd-kmed
# that has just delivered a key over ETSI 014 is killed with SIGSEGV: it leaves no core file
# (non-dumpable, core limit 0: common/coredump.c); were one left, it must not hold the key
# (grep for the base64 key). Then the same with --allow-core-dumps: a core file IS written
# (so that the first check can fail) and the log says loudly that cores are allowed. Then the
# same two cases for qkd-sim run, killed after it delivered a block to the KMEs.
# Needs root (it sets /proc/sys/kernel/core_pattern, restored on exit); CI runs as root.
set -u
. "$(dirname "$0")/../lib/etsi_pair.sh"
qk_need_root "sets /proc/sys/kernel/core_pattern to catch core files"
qk_need_cmd jq

PATTERN_FILE=/proc/sys/kernel/core_pattern
OLD_PATTERN=$(cat "$PATTERN_FILE") || fail "cannot read $PATTERN_FILE"
restore_pattern() {
  printf '%s\n' "$OLD_PATTERN" >"$PATTERN_FILE" ||
    echo "WARNING: could not restore $PATTERN_FILE to '$OLD_PATTERN'"
}
trap 'restore_pattern; _pair_cleanup' EXIT
trap 'exit 1' INT TERM HUP
CORES=$T/cores
mkdir -p "$CORES" || fail "mkdir $CORES"
printf '%s\n' "$CORES/core.%e.%p" >"$PATTERN_FILE" || fail "cannot set $PATTERN_FILE"
ulimit -c unlimited || fail "ulimit -c unlimited"
# The sanitizer build: let SIGSEGV take its default action (a core) and keep ASan from setting
# the core limit itself, so that what is checked is the daemon's own doing.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0:disable_coredump=0"

pair_init
pair_start A
pair_start B
pair_feed --blocks 2 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A 8192 || fail "pool of KME_A did not fill"
wait_pool B 8192 || fail "pool of KME_B did not fill"

# deliver: one 256-bit key from KME_A to SAE_A1 for SAE_B1; sets KEY (base64).
deliver() {
  local out code
  out=$(sae_curl SAE_A1 A /api/v1/keys/SAE_B1/enc_keys -X POST -H 'Content-Type: application/json' \
    --data-binary '{"number":1,"size":256}')
  code=$(printf '%s' "$out" | tail -n 1)
  [ "$code" = "HTTP 200" ] || fail "enc_keys: $out"
  KEY=$(printf '%s' "$out" | sed '$d' | jq -r '.keys[0].key')
  [ "${#KEY}" = 44 ] || fail "enc_keys: no 256-bit key in $out"
}

# cores_with_key: the core files, then how many of them hold $KEY.
cores() { find "$CORES" -type f -name 'core.*' | sort; }
cores_with_key() { local n=0 f; for f in $(cores); do grep -qaF "$KEY" "$f" && n=$((n + 1)); done; echo "$n"; }

# ---- 1. default: no core, whatever the limit -----------------------------------------------------
deliver
grep -q "core dumps ALLOWED" "$T/kme_A.log" && fail "the log says cores are allowed without the flag"
pid=${PID[A]}
pair_stop A SEGV
grep -q "^Max core file size *0 *0 " "/proc/$$/limits" && fail "the suite's own core limit is 0"
n=$(cores | wc -l)
if [ "$n" != 0 ]; then
  fail "KME_A (pid $pid) left $n core file(s) after SIGSEGV, $(cores_with_key) with the delivered key: $(cores | tr '\n' ' ')"
fi
ok "SIGSEGV after a delivered key: no core file (core limit unlimited outside, core_pattern $CORES)"

# ---- 2. --allow-core-dumps: a core is written, and the log says so ------------------------------------
PAIR_KMED_ARG=--allow-core-dumps pair_start A
grep -q "level=warn.*core dumps ALLOWED (--allow-core-dumps; core limit unlimited)" "$T/kme_A.log" ||
  fail "no warning in the log with --allow-core-dumps"
deliver
pid=${PID[A]}
pair_stop A SEGV
n=$(cores | wc -l)
[ "$n" -ge 1 ] || fail "KME_A (pid $pid) with --allow-core-dumps left no core file in $CORES"
ok "with --allow-core-dumps a core file is written ($n; the delivered key in $(cores_with_key) of them) and the log warns"
rm -f "$CORES"/core.*

# ---- 3. qkd-sim, which holds the blocks it delivers: the same, without and with the flag -------
SIM=$BUILD/bin/qkd-sim
qk_need_bin "$SIM"
# shellcheck source=/dev/null
. "$ROOT/tests/lib/wait.sh"
pair_start A
cat >"$T/sim.conf" <<EOF
[sim]
control = 127.0.0.1:0
state_file = $T/sim.state
log_file = $T/sim.log

[device]
ca = $T/pki/ca.crt
cert = $(crt qkd-sim)
key = $(key qkd-sim)

[link $LINK]
kme_a_url = $(device_url A)
kme_b_url = $(device_url B)
distance = 5
time_scale = 20
EOF
# sim_crash [FLAG]: start qkd-sim, wait until KME_A's pool grew (a block delivered), SIGSEGV it.
sim_crash() {
  local pid pool0
  pool0=$(admin_metric A qkd_pool_bytes "link=\"$LINK\"")
  "$SIM" run ${1:+"$1"} "$T/sim.conf" >>"$T/sim.out" 2>&1 &
  pid=$!
  PID["sim"]=$pid
  wait_for "[ \"\$(admin_metric A qkd_pool_bytes 'link=\"$LINK\"')\" -gt $pool0 ]" 30 \
    "a block from qkd-sim at KME_A" || { cat "$T/sim.out"; fail "qkd-sim delivered nothing"; }
  kill -SEGV "$pid"
  wait "$pid" 2>/dev/null
  PID["sim"]=
}
sim_crash
[ "$(cores | wc -l)" = 0 ] || fail "qkd-sim left a core file after SIGSEGV: $(cores | tr '\n' ' ')"
grep -q "core dumps ALLOWED" "$T/sim.log" && fail "qkd-sim's log says cores are allowed without the flag"
ok "qkd-sim: SIGSEGV after delivering a block leaves no core file"
sim_crash --allow-core-dumps
[ "$(cores | wc -l)" -ge 1 ] || fail "qkd-sim with --allow-core-dumps left no core file"
grep -q "level=warn.*core dumps ALLOWED" "$T/sim.log" || fail "no warning in qkd-sim's log"
ok "qkd-sim with --allow-core-dumps: a core file is written and the log warns"
rm -f "$CORES"/core.*
echo "PASS: core_dumps"

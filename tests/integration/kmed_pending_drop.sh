#!/usr/bin/env bash
# kmed_pending_drop.sh - a block the device dropped on its way to one KME is burned at the other
# within seconds, not left PENDING there (docs/qkd-kmed.md "How the KME uses its peers", sync
# thread; kmed.conf [link] pending_grace, here 3 s). Two qkd-kmed (tests/lib/etsi_pair.sh) fed
# by the real simulator (qkd-sim run) over their device API. For each end X in b, a: the
# simulator's `drop X` fault until it has dropped two blocks, then `drop none`; the other KME
# burns exactly the blocks the simulator reports dropped (qkd_sim_link_blocks_total{result=
# "dropped"} against qkd_blocks{state="burned"}), within pending_grace + a few seconds of the
# fault's end, one log line per block ("still unknown at the peer after the pending grace"), the
# KME the blocks were dropped toward never received them (no device PUT of those IDs in its
# log) and burns nothing; keys still flow afterwards. Every wait is on a condition, bounded.
# Quick (about 20 s).
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
export PAIR_LINK_EXTRA="pending_grace = 3s"
# shellcheck source=../lib/etsi_pair.sh
. "$(dirname "$0")/../lib/etsi_pair.sh"
# shellcheck source=../lib/wait.sh
. "$ROOT/tests/lib/wait.sh"
SIMBIN=$BUILD/bin/qkd-sim
qk_need_bin "$SIMBIN"

SIMPID=
trap '[ -n "$SIMPID" ] && { kill -TERM "$SIMPID" 2>/dev/null; wait "$SIMPID" 2>/dev/null; }; _pair_cleanup' EXIT

pair_init
pair_start A
pair_start B

cat >"$T/sim.conf" <<EOF
[sim]
control = 127.0.0.1:0
state_file = $T/sim.state
log_file = $T/sim.log
telemetry_interval = 1s

[device]
ca = $T/pki/ca.crt
cert = $(crt qkd-sim)
key = $(key qkd-sim)
timeout = 3s
connect_timeout = 1s
retries = 2

[link $LINK]
kme_a_url = $(device_url A)
kme_b_url = $(device_url B)
distance = 10
preset = gys
time_scale = 100
block_bytes = 1024
EOF
"$SIMBIN" run --port-file "$T/sim.port" "$T/sim.conf" >"$T/sim.out" 2>&1 &
SIMPID=$!
wait_for 'grep -q "^control=" "$T/sim.port" 2>/dev/null' 10 "the simulator's control port" ||
  { cat "$T/sim.out"; fail "qkd-sim did not start"; }
SIM=http://127.0.0.1:$(sed -n 's/^control=//p' "$T/sim.port")

# sim_blocks RESULT: qkd_sim_link_blocks_total of the link for RESULT (delivered, dropped, ...)
sim_blocks() {
  curl -s --max-time 5 "$SIM/metrics" |
    awk -v m="qkd_sim_link_blocks_total{link=\"$LINK\",result=\"$1\"}" '$1 == m { v = $2 } END { print v + 0 }'
}
fault() { "$SIMBIN" fault --control "$SIM" --link "$LINK" "$@" >/dev/null || fail "qkd-sim fault $*"; }
burned() { admin_metric "$1" qkd_blocks "link=\"$LINK\",state=\"burned\""; }
confirmed() { admin_metric "$1" qkd_blocks "link=\"$LINK\",state=\"confirmed\""; }
now_s() { date +%s.%N; }

wait_for '[ "$(confirmed A)" -ge 3 ] && [ "$(confirmed B)" -ge 3 ]' 20 "three blocks confirmed at both KMEs" ||
  fail "the simulator's blocks were not confirmed (sim: $(tail -3 "$T/sim.log"))"
ok "simulator feeds both KMEs; blocks confirmed at both ends"

# drop_toward X (a|b): blocks not sent to end X until two are dropped; the KME of the other end
# must burn exactly those, within seconds, and X's KME never sees them. Burn counts are taken
# relative to the start of the round (the qkd_blocks gauge of burned blocks only grows).
# shellcheck disable=SC2034 # d0, dl0, k0 and n are read by the wait_for conditions
drop_toward() {
  local x=$1 lost keep d0 dl0 k0 l0 n t0 t1 ids id
  if [ "$x" = b ]; then lost=B keep=A; else lost=A keep=B; fi
  k0=$(burned "$keep")
  l0=$(burned "$lost")
  d0=$(sim_blocks dropped)
  fault drop "$x"
  wait_for '[ "$(sim_blocks dropped)" -ge $((d0 + 2)) ]' 20 "the simulator to drop two blocks toward $x" ||
    fail "the simulator dropped no blocks toward $x"
  fault drop none
  t0=$(now_s)
  # a block already being emitted may still be dropped: count once one more block went through
  dl0=$(sim_blocks delivered)
  wait_for '[ "$(sim_blocks delivered)" -gt "$dl0" ]' 20 "a block delivered after the fault" ||
    fail "no block delivered after drop none"
  n=$(($(sim_blocks dropped) - d0))
  wait_for '[ $(($(burned "$keep") - k0)) -ge "$n" ]' 12 "KME_$keep to burn the $n dropped blocks" ||
    fail "KME_$keep burned $(($(burned "$keep") - k0)) of the $n blocks dropped toward KME_$lost"
  t1=$(now_s)
  [ $(($(burned "$keep") - k0)) = "$n" ] ||
    fail "KME_$keep burned $(($(burned "$keep") - k0)) blocks, the simulator dropped $n"
  [ "$(burned "$lost")" = "$l0" ] || fail "KME_$lost burned blocks it never had"
  ids=$(sed -n 's/.*link '"$LINK"': block \([0-9]*\) still unknown at the peer after the pending grace: burned.*/\1/p' \
    "$T/kme_$keep.log" | sort -un | tail -n "$n")
  [ "$(printf '%s\n' "$ids" | grep -c .)" = "$n" ] || fail "KME_$keep logged fewer than $n burns after the grace"
  for id in $ids; do
    grep -q "/blocks/$id " "$T/kme_$lost.log" && fail "KME_$lost received block $id after all"
    grep -q "/blocks/$id .*status=201" "$T/kme_$keep.log" || fail "KME_$keep has no stored device PUT of block $id"
  done
  ok "drop toward $x: KME_$keep burned the $n dropped blocks ($(echo "$ids" | paste -sd " ")) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after the fault ended; KME_$lost never had them"
}

if [ "$(burned A)" != 0 ] || [ "$(burned B)" != 0 ]; then fail "blocks burned before any fault"; fi
drop_toward b
drop_toward a

# keys still flow after both faults: the confirmed pool is untouched
pair_load --direction both --threads 1 --pairs 4 --quiet --out "$T/keys.txt" >"$T/load.out" 2>&1 ||
  { cat "$T/load.out"; fail "keys after the faults"; }
ok "keys delivered at both ends after the faults"
echo "PASS"

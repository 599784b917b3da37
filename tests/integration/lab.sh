#!/usr/bin/env bash
# lab.sh - qkd-lab end to end: up in a temp dir; keys flow into both pools at the modelled
# rate; an ETSI 014 key and a SKIP key shared across the link; link down stops the growth
# (qkd_link_up 0); an eavesdropper above the abort threshold stops it and is reported (QBER in
# the metrics and the sim status); a corrupted delivery to one end is burned at both; a chain
# of three KMEs shares keys between neighbours; qkd-lab down leaves no process. Every wait is on
# a condition (a metric, a simulator counter), bounded; rates are timed by the simulator's clock.
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
L=KME_A~KME_B
CTL() { "$SIM" fault --control "$(lab_json two .sim_url)" --link "$L" "$@" >/dev/null || fail "fault $*"; }
pool() { # KME: bits in the pool of $L (qkd_pool_bytes x 8), -1 when absent
  kme_metric two "$1" qkd_pool_bytes "link=\"$L\"" | awk '{ printf "%.6f\n", $1 < 0 ? $1 : $1 * 8 }'
}
metric_is() { [ "$(kme_metric two "$1" "$2" "link=\"$L\"${4:-}")" = "$3" ]; } # KME METRIC VALUE [FILTER]
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
# No growth while the link delivers nothing ($1 = KME, $2 = why): once the device reported it
# (the simulator sends its telemetry from the link thread, after any block in flight) and both
# ends confirmed what they had (no pending block), the simulator emits no block and the pool of
# $1 does not grow while the simulator's own clock runs through 8 block intervals (at least 2 s).
no_growth() {
  local k=$1 why=$2 m0 b0 d0 l0 m1=0 b1=0 d1 l1 p0 p1 span
  wait_for 'metric_is KME_A qkd_blocks 0.000000 ",state=\"pending\"" && metric_is KME_B qkd_blocks 0.000000 ",state=\"pending\""' \
    30 "no pending block at either end" || fail "blocks still pending while $why"
  read -r m0 b0 d0 l0 <<<"$(sim_sample two "$L")"
  p0=$(pool "$k")
  span=$(awk -v b="$BB" -v r="$rate" 'BEGIN { s = 8000 * b / r; printf "%d", (s > 2000 ? s : 2000) }')
  wait_for 'read -r m1 b1 d1 l1 <<<"$(sim_sample two "$L")" && [ "$m1" -ge $((m0 + span)) ]' 60 \
    "the simulator's clock to pass $span ms" || fail "no sample of the simulator"
  p1=$(pool "$k")
  [ "$b1" = "$b0" ] || fail "the simulator emitted $((b1 - b0)) block(s) while $why"
  # (it may shrink: the peer leases ahead of demand from the same blocks)
  gt "$p1" "$p0" && fail "the pool of $k grew while $why ($p0 -> $p1)"
  return 0
}

# A link the model gives no key, or too little for --wait, is refused at once (exit 2, nothing
# created), with the reason and what to change.
refused() { # NAME WANT ARGS...
  local n=$1 want=$2 rc=0; shift 2
  timeout 10 "$LAB" up --dir "$T/$n" "$@" >"$T/$n.err" 2>&1 || rc=$?
  [ "$rc" = 2 ] || { cat "$T/$n.err"; fail "qkd-lab up $*: exit $rc, not 2"; }
  grep -q -- "$want" "$T/$n.err" || { cat "$T/$n.err"; fail "qkd-lab up $*: no '$want'"; }
  [ ! -e "$T/$n" ] || fail "qkd-lab up $*: created $T/$n"
}
refused far "yields no key: preset gys at 200 km (aborted.*reaches 141.0 km).*below 141.0 km or another --preset" --distance 200
refused slow "cannot fill a block within --wait 5 s.*smaller --block-bytes.*--wait 1[0-9][0-9] or more" --distance 120 --wait 5
ok "qkd-lab up refuses a link without key or too slow for --wait"
lab_up two --time-scale 100
ok "qkd-lab up (default topology)"
grep -q "^  link KME_A~KME_B (KME_A--KME_B): preset gys, 25 km, time scale 100: " "$T/two.up" ||
  fail "qkd-lab up's summary does not show the link's preset and distance"
for k in KME_A KME_B; do
  grep -q "^  SKIP client SKIP_$k at $k .*--kme $k --skip-client SKIP_$k" "$T/two.up" ||
    fail "qkd-lab up's summary does not list the SKIP client of $k"
done
for f in .ca_cert '.kmes[0].saes[0].cert' '.kmes[1].saes[1].key'; do
  p=$(lab_json two "$f")
  [ -f "$p" ] || fail "lab.json $f: $p missing"
done
[ "$(stat -c %a "$T/two/lab.json")" = 600 ] || fail "lab.json is not mode 0600"
[ "$(stat -c %a "$T/two/KME_A/skip.psk")" = 600 ] || fail "skip.psk is not mode 0600"
[ "$(lab_json two '.links[0].kmes | join(",")')" = "KME_A,KME_B" ] || fail "links in lab.json"
"$LAB" status --dir "$T/two" >"$T/status.out" || { cat "$T/status.out"; fail "qkd-lab status"; }
grep -q 'KME_A~KME_B *up' "$T/status.out" || { cat "$T/status.out"; fail "status shows no link"; }
ok "lab.json, file modes, qkd-lab status"

# Keys flow at the modelled rate: timed by the simulator's clock over 24 counted blocks (as in
# sim_rate.sh: within 3 blocks + 10%), and each pool holds every block the simulator delivered,
# no more: at least the blocks delivered at one sample (waited for), at most those delivered at
# the next. Pool bits exclude the 32-byte verification key of each block; no key is taken yet.
rate=$(sim_link two "$L" .rate_bps)
BB=$(sim_block_bits two) || fail "no block size in the simulator's log"
NBLK=24
m1=0 b1=0 d1=0 l1=0
read -r m0 b0 d0 l0 <<<"$(sim_sample two "$L")"
[ -n "${l0:-}" ] || fail "no sample of the simulator's counters"
want=$(awk -v n="$NBLK" -v b="$BB" -v r="$rate" 'BEGIN { printf "%d", 4 * n * b / r + 20 }')
wait_for 'read -r m1 b1 d1 l1 <<<"$(sim_sample two "$L")" && [ "$b1" -ge $((b0 + NBLK)) ]' "$want" \
  "$NBLK blocks from the simulator" || fail "the simulator emitted $((b1 - b0)) of $NBLK blocks in $want s"
got=$(awk -v a="$d0" -v b="$d1" -v la="$l0" -v lb="$l1" -v s="$m0" -v e="$m1" \
  'BEGIN { printf "%.0f", (b - a + lb - la) * 1000 / (e - s) }')
awk -v a="$d0" -v b="$d1" -v la="$l0" -v lb="$l1" -v s="$m0" -v e="$m1" -v r="$rate" -v bb="$BB" \
  'BEGIN { x = r * (e - s) / 1000; g = b - a + lb - la; d = g - x; if (d < 0) d = -d
           exit !(d <= 3 * bb + 0.1 * x && (lb - la) <= 0.25 * g) }' ||
  fail "the simulator earned $got bit/s (lost $((l1 - l0)) bits), model $rate bit/s"
[ "$(sim_link two "$L" .failed_blocks)" = 0 ] || fail "blocks failed to reach a KME"
ok "the simulator delivers $got bit/s on its own clock (model x scale: $rate bit/s)"
lo=$(awk -v d="$d1" -v b="$BB" 'BEGIN { printf "%.6f", d / b * (b - 256) }')
for k in KME_A KME_B; do
  wait_for 'p=$(pool $k); ! gt "$lo" "$p"' 30 "$k to hold the $((d1 / BB)) delivered blocks" ||
    fail "the pool of $k holds $p bits, not the $lo of the $((d1 / BB)) blocks delivered"
  p=$(pool $k)
  read -r _ _ d2 _ <<<"$(sim_sample two "$L")"
  hi=$(awk -v d="$d2" -v b="$BB" 'BEGIN { printf "%.6f", d / b * (b - 256) }')
  gt "$p" "$hi" && fail "the pool of $k holds $p bits, more than the $hi of the $((d2 / BB)) blocks delivered"
  ok "$k pool holds every delivered block ($p bits)"
done

etsi_pair_key two KME_A SAE_A1 KME_B SAE_B1 || fail "ETSI 014 key A -> B"
etsi_pair_key two KME_B SAE_B2 KME_A SAE_A2 || fail "ETSI 014 key B -> A"
ok "ETSI 014 keys across the link (same bytes at both ends)"
# The make-run demo (scripts/lab-up --demo) on this lab: both APIs through the qkd CLI.
BUILD=$BUILD "$ROOT/scripts/lab-up" --demo "$T/two" >"$T/demo.out" 2>&1 || { cat "$T/demo.out"; fail "make-run demo"; }
grep -q "ETSI 014 key .*bytes equal" "$T/demo.out" && grep -q "SKIP key [0-9a-f]\{32\}: .*bytes equal" "$T/demo.out" ||
  { cat "$T/demo.out"; fail "make-run demo summary"; }
ok "make-run demo: ETSI 014 and SKIP keys through the qkd CLI"
# The lab always has the qkd client and a skip listener on every KME: neither may be missing.
QKD=$BUILD/bin/qkd
[ -x "$QKD" ] || fail "$QKD not built"
for k in KME_A KME_B; do
  [ "$(lab_json two ".kmes[] | select(.id==\"$k\") | .skip_url")" != null ] || fail "lab.json: no skip_url for $k"
  grep -q "^  $k .* SKIP https://127.0.0.1:" "$T/two.up" || fail "qkd-lab up does not show the SKIP listener of $k"
done
a=$("$QKD" skip key KME_B --lab "$T/two" --kme KME_A --skip-client SKIP_KME_A) || fail "SKIP key"
b=$("$QKD" skip key-by-id "${a%% *}" KME_A --lab "$T/two" --kme KME_B --skip-client SKIP_KME_B) ||
  fail "SKIP key by ID"
[ "${a#* }" = "${b#* }" ] || fail "SKIP: different bytes"
ok "SKIP key across the link"

# Link down: no growth, qkd_link_up 0 at both ends.
CTL down
wait_for 'metric_is KME_A qkd_link_up 0.000000 && metric_is KME_B qkd_link_up 0.000000' 20 \
  "qkd_link_up 0 at both ends" || fail "qkd_link_up not 0 at both ends with the link down"
[ "$(sim_link two "$L" .state)" = down ] || fail "sim state is not down"
no_growth KME_A "the link was down"
p1=$(pool KME_A)
ok "link down: no key, qkd_link_up 0"
CTL up
wait_for 'gt "$(pool KME_A)" "$p1"' 30 "the pool of KME_A to grow" || fail "no growth after link up"
ok "link up again: keys flow"

# Eavesdropper on every pulse: QBER ~25% > 11%, no key, reported.
CTL eve 1
q=
wait_for 'q=$(kme_metric two KME_B qkd_link_qber "link=\"$L\""); gt "$q" 0.11 && metric_is KME_B qkd_link_up 0.000000' \
  20 "KME_B to report the eavesdropper" || fail "qkd_link_qber $q (link up $(kme_metric two KME_B qkd_link_up "link=\"$L\"")) with an eavesdropper"
[ "$(sim_link two "$L" .state)" = aborted ] || fail "sim state is not aborted"
no_growth KME_B "an eavesdropper was on the link"
ok "eavesdropper: QBER $q reported, no key"
# A small intercept fraction keeps the QBER under the threshold: key still flows (the simulator
# evaluates the model when the fault is set).
p1=$(pool KME_B)
CTL eve 0.05
q2=$(sim_link two "$L" .qber)
awk -v a="$q2" -v b="$q" 'BEGIN { exit !(a < b && a > 0.033) }' || fail "QBER $q2 with eve 0.05"
wait_for 'gt "$(pool KME_B)" "$p1"' 30 "the pool of KME_B to grow" || fail "no key with eve 0.05 (QBER $q2)"
ok "eavesdropper on 5% of the pulses: QBER $q2, key flows"
CTL clear

# Corrupted delivery to end b: the KMEs' inventory exchange finds the mismatch, both burn.
ba=$(kme_metric two KME_A qkd_blocks 'state="burned"'); bb=$(kme_metric two KME_B qkd_blocks 'state="burned"')
c0=$(sim_link two "$L" .corrupted_blocks)
CTL corrupt b
wait_for '[ "$(sim_link two "$L" .corrupted_blocks)" -ge $((c0 + 2)) ]' 30 "two corrupted blocks" ||
  fail "the simulator sent no corrupted block"
CTL corrupt none
nc=$(($(sim_link two "$L" .corrupted_blocks) - c0))
burned_both() {
  ba2=$(kme_metric two KME_A qkd_blocks 'state="burned"'); bb2=$(kme_metric two KME_B qkd_blocks 'state="burned"')
  awk -v a="$ba2" -v b="$ba" -v c="$bb2" -v d="$bb" -v n="$nc" 'BEGIN { exit !(a - b >= n && c - d >= n) }'
}
wait_for burned_both 30 "$nc burned blocks at both ends" ||
  fail "burned blocks A $ba -> $ba2, B $bb -> $bb2, $nc corrupted"
ok "$nc corrupted block(s) burned at both ends"

pids=$(lab_pids two)
"$LAB" down --dir "$T/two" >/dev/null || fail "qkd-lab down"
for p in $pids; do pid_running "$p" && fail "process $p still runs after qkd-lab down"; done
no_san_reports two
ok "qkd-lab down: no process left ($(echo $pids | wc -w) stopped)"

# A chain of three: KME_B in the middle shares keys with each neighbour.
cat >"$T/chain.ini" <<EOT
[kme KME_A]
saes = SAE_A1
[kme KME_B]
saes = SAE_B1
[kme KME_C]
saes = SAE_C1
[link AB]
kmes = KME_A, KME_B
[link BC]
kmes = KME_B, KME_C
distance = 40
EOT
lab_up chain --topology "$T/chain.ini" --time-scale 100
[ "$(lab_json chain '.links | length')" = 2 ] || fail "chain: links in lab.json"
for x in "AB (KME_A--KME_B): preset gys, 25 km" "BC (KME_B--KME_C): preset gys, 40 km"; do
  grep -q "^  link $x" "$T/chain.up" || fail "chain: the summary does not show link $x"
done
etsi_pair_key chain KME_B SAE_B1 KME_A SAE_A1 || fail "chain: key B -> A"
etsi_pair_key chain KME_B SAE_B1 KME_C SAE_C1 || fail "chain: key B -> C"
etsi_pair_key chain KME_C SAE_C1 KME_B SAE_B1 || fail "chain: key C -> B"
ok "chain of three: the middle KME shares keys with each neighbour"
pids=$(lab_pids chain)
"$LAB" down --dir "$T/chain" >/dev/null || fail "qkd-lab down (chain)"
for p in $pids; do pid_running "$p" && fail "process $p still runs after qkd-lab down"; done
no_san_reports chain
ok "chain: qkd-lab down leaves no process"
echo "PASS"

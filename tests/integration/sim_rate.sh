#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): it measures the simulator's delivered rate.
# sim_rate.sh - qkd-sim delivers key at the model's rate times the time scale: the bits it
# delivered to both KMEs over NBLK blocks, timed by its own clock, match rate_bps (from its
# status) within 3 blocks + 10%; the telemetry reaches the KMEs (qkd_link_rate_bps,
# qkd_link_qber in /metrics).
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
L=KME_A~KME_B
NBLK=${QK_SIM_RATE_BLOCKS:-36}

# ~210 kbit/s in 8 KiB blocks: about 3 blocks a second, NBLK blocks in about 11 s.
lab_up rate --time-scale 150 --block-bytes 8192
ok "lab up"
rate=$(sim_link rate "$L" .rate_bps)
model=$(sim_link rate "$L" .model_rate_bps)
awk -v r="$rate" -v m="$model" 'BEGIN { exit !(r > 0 && (r - m * 150) ^ 2 < 1e-6 * r * r) }' ||
  fail "rate_bps $rate is not model_rate_bps $model x 150"
ok "modelled rate $model bit/s x 150 = $rate bit/s"

# The rate is measured on the simulator's own clock (sim_sample: the time of its log line for
# the status request that read the counters), over a counted number of blocks, so a slow shell
# or a busy machine cannot move it. Bits earned = delivered + lost (credit dropped while
# delivery lagged); the uncertainty is the credit held at each sample plus a block in flight:
# 3 blocks, plus 10% for the simulator's own scheduling. A simulator that delivers at half (or
# twice) the model's rate is far outside; lost bits above a quarter of the earned ones fail too.
BB=$(sim_block_bits rate) || fail "no block size in the simulator's log"
m1=0 b1=0 d1=0 l1=0
read -r m0 b0 d0 l0 <<<"$(sim_sample rate "$L")"
[ -n "${l0:-}" ] || fail "no sample of the simulator's counters"
want=$(awk -v n="$NBLK" -v b="$BB" -v r="$rate" 'BEGIN { printf "%d", 4 * n * b / r + 20 }')
wait_for 'read -r m1 b1 d1 l1 <<<"$(sim_sample rate "$L")" && [ "$b1" -ge $((b0 + NBLK)) ]' "$want" \
  "$NBLK blocks from the simulator" || fail "the simulator emitted $((b1 - b0)) of $NBLK blocks in $want s"
read -r got secs <<<"$(awk -v a="$d0" -v b="$d1" -v la="$l0" -v lb="$l1" -v s="$m0" -v e="$m1" \
  'BEGIN { printf "%.1f %.3f", (b - a + lb - la) * 1000 / (e - s), (e - s) / 1000 }')"
echo "earned $((d1 - d0 + l1 - l0)) bits ($((b1 - b0)) blocks, $((l1 - l0)) bits lost) in $secs s of the simulator's clock: $got bit/s, model x scale $rate bit/s"
awk -v a="$d0" -v b="$d1" -v la="$l0" -v lb="$l1" -v s="$m0" -v e="$m1" -v r="$rate" -v bb="$BB" \
  'BEGIN { x = r * (e - s) / 1000; g = b - a + lb - la; d = g - x; if (d < 0) d = -d
           exit !(d <= 3 * bb + 0.1 * x && (lb - la) <= 0.25 * g) }' ||
  fail "earned $got bit/s over $secs s (lost $((l1 - l0)) bits): not the model's $rate bit/s"
ok "delivered rate on the simulator's clock within 3 blocks + 10% of the model"
[ "$(sim_link rate "$L" .failed_blocks)" = 0 ] || fail "blocks failed to reach a KME"

for k in KME_A KME_B; do
  r=$(kme_metric rate $k qkd_link_rate_bps "link=\"$L\"")
  q=$(kme_metric rate $k qkd_link_qber "link=\"$L\"")
  awk -v a="$r" -v b="$rate" 'BEGIN { exit !((a - b) ^ 2 < 1e-4 * b * b) }' ||
    fail "$k reports qkd_link_rate_bps $r, the simulator $rate"
  awk -v q="$q" 'BEGIN { exit !(q > 0.01 && q < 0.11) }' || fail "$k: qkd_link_qber $q"
done
ok "telemetry in both KMEs' metrics"
"$LAB" down --dir "$T/rate" >/dev/null || fail "qkd-lab down"
no_san_reports rate
echo "PASS"

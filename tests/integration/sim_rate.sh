#!/usr/bin/env bash
# sim_rate.sh - qkd-sim delivers key at the model's rate times the time scale: bits delivered
# to both KMEs over a measured interval within 5% of rate_bps (from `qkd-sim status --json`),
# and the telemetry reaches the KMEs (qkd_link_rate_bps, qkd_link_qber in /metrics).
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
L=KME_A~KME_B
SECS=${QK_SIM_RATE_SECS:-12}

# ~250 kbit/s in 8 KiB blocks: about 4 blocks a second, so +-1 block at each end of the
# interval stays well inside 5%.
lab_up rate --time-scale 150 --block-bytes 8192
ok "lab up"
rate=$(sim_link rate "$L" .rate_bps)
model=$(sim_link rate "$L" .model_rate_bps)
awk -v r="$rate" -v m="$model" 'BEGIN { exit !(r > 0 && (r - m * 150) ^ 2 < 1e-6 * r * r) }' ||
  fail "rate_bps $rate is not model_rate_bps $model x 150"
ok "modelled rate $model bit/s x 150 = $rate bit/s"

# Wait for the first block after the measurement starts, to start on a block boundary.
d0=$(sim_link rate "$L" .delivered_bits)
for _ in $(seq 1 100); do
  d=$(sim_link rate "$L" .delivered_bits)
  [ "$d" != "$d0" ] && break
  sleep 0.02
done
t0=$(date +%s.%N)
sleep "$SECS"
d1=$(sim_link rate "$L" .delivered_bits)
t1=$(date +%s.%N)
got=$(awk -v a="$d" -v b="$d1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.1f", (b - a) / (e - s) }')
echo "delivered $((d1 - d)) bits in $(awk -v s="$t0" -v e="$t1" 'BEGIN{printf "%.2f", e-s}') s: $got bit/s, model x scale $rate bit/s"
awk -v g="$got" -v r="$rate" 'BEGIN { d = (g - r) / r; exit !(d < 0.05 && d > -0.05) }' ||
  fail "delivered rate $got bit/s is not within 5% of $rate bit/s"
ok "delivered rate within 5% of the model"
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

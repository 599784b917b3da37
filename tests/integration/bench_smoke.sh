#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): a load benchmark.
# bench_smoke.sh - qkd-bench against a small lab for a few seconds: ETSI 014 and SKIP key
# pairs (fixed count, every pair compared at both ends), mixed with several keys per request,
# status polling; the JSON report's fields, both KMEs' CPU per pair (--cpu-pids); `body` and
# `report` (Markdown + JSON, ratio to a baseline cell, the CPU column and target). Performance
# is never asserted here: only that the load ran without errors.
set -u
. "$(dirname "$0")/../lib/lab.sh"
BENCH=$BUILD/bin/qkd-bench
# shellcheck source=/dev/null
. "$(dirname "$0")/../lib/skip.sh"
qk_need_bin "$BENCH"

lab_up b --time-scale 2000 --block-bytes 65536
ok "lab up"
L=$T/b

run() { # NAME ARGS... -> $T/NAME.json, $T/NAME.txt
  local n=$1; shift
  timeout 60 "$BENCH" run --lab "$L" --warmup 0.3 --json "$T/$n.json" "$@" >"$T/$n.txt" 2>"$T/$n.err" ||
    { cat "$T/$n.txt" "$T/$n.err"; fail "qkd-bench run $n"; }
  [ "$(jq -r '.errors.total' "$T/$n.json")" = 0 ] || { cat "$T/$n.txt"; fail "$n: errors"; }
}

KMEDS=$(jq -r '[.kmes[].pid] | map(tostring) | join(",")' "$L/lab.json")
for p in ${KMEDS//,/ }; do
  [ "$(cat "/proc/$p/comm")" = qkd-kmed ] || fail "lab.json: pid $p is not a qkd-kmed"
done
run etsi --scenario etsi --connections 2 --count 40
[ "$(jq -r .keys "$T/etsi.json")" -ge 40 ] || fail "etsi: fewer than 40 key pairs"
[ "$(jq -r '.latency_ms.etsi_dec_keys.count' "$T/etsi.json")" -ge 40 ] || fail "etsi: dec_keys latencies"
jq -e '.latency_ms.etsi_key_pair | .p50 > 0 and .p50 <= .p90 and .p90 <= .p99 and .p99 <= .max' \
  "$T/etsi.json" >/dev/null || fail "etsi: percentiles not ordered"
grep -q 'measure' "$T/etsi.err" || grep -q 'warm-up' "$T/etsi.err" || fail "etsi: no progress lines"
ok "ETSI 014 key pairs: $(jq -r .keys "$T/etsi.json") keys, no errors, ordered percentiles"
# Both KMEs' CPU over a 1 s measured phase (hundreds of pairs: many clock ticks): every pair
# costs them some (TLS, store), and two processes on this machine's CPUs spend at most
# CPUs x wall time (plus a tick per process of sampling granularity).
run cpu --scenario etsi --connections 2 --duration 1 --cpu-pids "$KMEDS"
NCPU=$(getconf _NPROCESSORS_ONLN)
jq -e --argjson c "$NCPU" '.cpu_processes == 2 and .cpu_s > 0 and
  .cpu_s <= $c * .measured_s + 0.05 and .cpu_ms_per_key > 0 and
  .cpu_ms_per_key == .cpu_ms_per_operation' "$T/cpu.json" >/dev/null || {
  jq '{cpu_s, cpu_processes, cpu_ms_per_key, cpu_ms_per_operation, measured_s}' "$T/cpu.json"
  fail "cpu: CPU per pair"
}
grep -q '^  cpu .* ms per key' "$T/cpu.txt" || fail "cpu: no CPU line in the text report"
ok "both KMEs' CPU: $(jq -r .cpu_ms_per_key "$T/cpu.json") ms per key pair"

run skip --scenario skip --connections 2 --count 40 --size 512
[ "$(jq -r .key_bits_per_s "$T/skip.json" | cut -d. -f1)" -gt 0 ] || fail "skip: no key bits"
ok "SKIP key pairs (TLS-PSK): $(jq -r .keys "$T/skip.json") keys of 512 bits, no errors"

run mixed --scenario mixed --connections 2 --duration 1 --number 3
jq -e '.operations > 0 and .keys > 0' "$T/mixed.json" >/dev/null || fail "mixed: nothing done"
ok "mixed scenario: $(jq -r .operations "$T/mixed.json") operations"

run status --scenario status --connections 1 --count 5 --quiet
[ ! -s "$T/status.err" ] || fail "status: --quiet printed progress"
ok "status polling, quiet"

"$BENCH" run --lab "$L" --connections 0 >/dev/null 2>&1
[ $? = 2 ] || fail "bad --connections is not a usage error"
"$BENCH" run --lab "$L" --scenario skip --number 2 >/dev/null 2>&1
[ $? = 2 ] || fail "SKIP with --number 2 is not a usage error"
"$BENCH" run --lab "$L" --cpu-pids 1, >/dev/null 2>&1
[ $? = 2 ] || fail "a bad --cpu-pids is not a usage error"
"$BENCH" run --lab "$L" --count 1 --cpu-pids 2147483647 >/dev/null 2>&1
[ $? = 1 ] || fail "--cpu-pids of no process is not refused"
ok "usage errors exit 2"

mkdir -p "$T/bodies"
"$BENCH" body --dir "$T/bodies" --size 256 --number 2 || fail "body"
jq -e '.keys | length == 2' "$T/bodies/etsi.json" >/dev/null || fail "body: etsi.json"
jq -e '.keyId | length == 32' "$T/bodies/skip.json" >/dev/null || fail "body: skip.json"
ok "baseline bodies"

# A fake baseline cell (the etsi cell relabelled) exercises the ratio column.
jq '.target = "nginx"' "$T/etsi.json" >"$T/etsi-base.json"
"$BENCH" report --md "$T/r.md" --json "$T/r.json" --date test "$T/etsi.json" "$T/etsi-base.json" \
  "$T/skip.json" "$T/cpu.json" || fail "report"
grep -q '\*\*1.00\*\*' "$T/r.md" || { cat "$T/r.md"; fail "report: ratio 1.00 missing"; }
jq -e '.cells | length == 4' "$T/r.json" >/dev/null || fail "report: cells"
jq -e '.cells[0].ratio_to_nginx == 1' "$T/r.json" >/dev/null || fail "report: ratio_to_nginx"
want=$(jq -r '.cpu_ms_per_key * 1000 | round / 1000' "$T/cpu.json")
jq -e --argjson w "$want" '.cpu_ms_per_key_pair | (.worst * 1000 | round / 1000) == $w and
  .worst_cell == "etsi 2 conns 256 bits x1" and .met == (.worst <= 0.2)' "$T/r.json" >/dev/null ||
  { jq .cpu_ms_per_key_pair "$T/r.json"; fail "report: cpu_ms_per_key_pair"; }
if ! grep -q '^| CPU per key pair, both KMEs, <= 0.2 ms .* | worst [0-9.]* ms (etsi 2 conns' \
  "$T/r.md" || ! grep -q '| CPU/pair (ms) |' "$T/r.md"; then
  cat "$T/r.md"
  fail "report: CPU column or target"
fi
ok "report: Markdown table and JSON with ratios and CPU per key pair"
# The issue's rate and CPU targets at 64 connections, per API: the CPU cell relabelled to 64
# connections, with itself as the nginx cell (ratio 1.00).
jq '.connections = 64' "$T/cpu.json" >"$T/c64.json"
jq '.target = "nginx"' "$T/c64.json" >"$T/c64-base.json"
"$BENCH" report --md "$T/r64.md" --json "$T/r64.json" --date test "$T/c64.json" \
  "$T/c64-base.json" || fail "report (64 connections)"
c64=$(jq -r '.cpu_ms_per_key * 1000 | round / 1000' "$T/cpu.json")
if ! grep -q '^| etsi request rate >= 0.5 x nginx at 64 connections, 256-bit keys | ratio 1.00 (.*) | yes |$' \
  "$T/r64.md" || ! grep -q "^| etsi CPU per key pair, both KMEs, <= 0.2 ms at 64 connections, 256-bit keys | $(printf '%.3f' "$c64") ms | " \
  "$T/r64.md" || ! grep -q '^| etsi key pair p99 <= 20 ms at 64 connection(s), 256-bit keys | ' \
  "$T/r64.md" || grep -q '^| skip request rate' "$T/r64.md"; then
  cat "$T/r64.md"
  fail "report: the 64-connection rate and CPU targets"
fi
ok "report: the rate and CPU targets at 64 connections"
# nginx's figures in the same cells beside the targets they bound: the pair p99 and pairs/s of
# the baseline cell (here given their own values) and the bulk cell's key material rate.
p64=$(jq -r '.latency_ms.etsi_key_pair.p99' "$T/c64.json" | xargs printf '%.2f')
jq '.keys_per_s = 999 | .latency_ms.etsi_key_pair.p99 = 12.5' "$T/c64-base.json" >"$T/c64-b2.json"
"$BENCH" report --md "$T/rp.md" --date test "$T/c64.json" "$T/c64-b2.json" ||
  fail "report (64 connections, nginx's own p99)"
grep -q "^| etsi key pair p99 <= 20 ms at 64 connection(s), 256-bit keys | [0-9]* pairs/s, p99 $p64 ms (nginx in the same cell: 999 pairs/s, p99 12.50 ms) | " \
  "$T/rp.md" || { cat "$T/rp.md"; fail "report: nginx's pair p99 beside the target"; }
jq '.size_bits = 4096 | .number = 128 | .key_bits_per_s = 3e8' "$T/c64.json" >"$T/bulk.json"
jq '.target = "nginx" | .key_bits_per_s = 5e8' "$T/bulk.json" >"$T/bulk-base.json"
"$BENCH" report --md "$T/rb.md" --date test "$T/bulk.json" "$T/bulk-base.json" ||
  fail "report (bulk)"
grep -q '^| 4096-bit keys: >= 1 Gbit/s of key material | best 300.0 Mbit/s (nginx in the same cell: 500.0 Mbit/s) | no |$' \
  "$T/rb.md" || { cat "$T/rb.md"; fail "report: nginx's key material rate beside the bulk target"; }
ok "report: nginx's pair p99 and bulk rate beside the targets"
# The store alone: two fresh stores, key pairs from two threads, every pair compared; the
# KME's remote path (leases, carve_owned, notices 4 per call, fetch).
timeout 60 "$BENCH" store --dir "$T/store" --count 40 --threads 2 --number 2 --batch 4 \
  --json "$T/store.json" \
  >"$T/store.txt" 2>"$T/store.err" || { cat "$T/store.txt" "$T/store.err"; fail "qkd-bench store"; }
jq -e '.pairs_ok == 40 and .errors == 0 and .mismatches == 0 and .cpu_us_per_pair > 0' \
  "$T/store.json" >/dev/null || { cat "$T/store.txt"; fail "store: report"; }
jq -e '.operations.lease.count >= 1 and .operations.carve_owned.count == 40 and
  .operations.fetch.count == 40 and .notices == 40 and
  (.operations.notice_in.count | . >= 10 and . <= 12) and
  .operations.notices_done.count == .operations.notice_in.count' "$T/store.json" >/dev/null ||
  fail "store: per-operation counts"
"$BENCH" store --dir "$T/store" --count 1 >/dev/null 2>&1
[ $? = 1 ] || fail "store: existing files were not refused"
"$BENCH" store --dir "$T/store" --count 0 >/dev/null 2>&1
[ $? = 2 ] || fail "store: bad --count is not a usage error"
ok "store alone: 40 pairs (leases, carve_owned, notices by 4, fetch), existing stores refused"

# bench/side-by-side: two labs of the benchmark preset under the same load at once, one round
# each way (B with time-ordered key IDs); the table has a row per lab and round, and the ratio.
sbs_dirs() { find /tmp -maxdepth 1 -name 'qkd-sbs.*' | wc -l; }
before=$(sbs_dirs)
SBS_A_BUILD=$BUILD SBS_B_BUILD=$BUILD SBS_ROUNDS=1 SBS_DURATION=1 SBS_CONNS=2 \
  SBS_POOL_BITS=2000000 SBS_B_LAB_ARGS="--key-ids time-ordered" SBS_OUT="$T/sbs.md" \
  timeout 300 "$ROOT/bench/side-by-side" >"$T/sbs.txt" 2>"$T/sbs.err" ||
  { tail -20 "$T/sbs.err"; fail "bench/side-by-side"; }
[ "$(grep -cE '^\| 1 \| [12] \| [AB] \| [0-9]+ \| [0-9.]+ \| ' "$T/sbs.md")" = 4 ] ||
  { cat "$T/sbs.md"; fail "side-by-side: four rows (two placings, two labs)"; }
grep -qE '^mean B / A: [0-9]+\.[0-9]{3}$' "$T/sbs.md" || { cat "$T/sbs.md"; fail "side-by-side: no mean ratio"; }
[ "$(sbs_dirs)" = "$before" ] || fail "side-by-side: work folder left behind"
SBS_SCENARIO=mixed "$ROOT/bench/side-by-side" >/dev/null 2>&1 && fail "side-by-side: a bad scenario was accepted"
ok "bench/side-by-side: both placings, a row per lab and round, the mean ratio"
echo "PASS"

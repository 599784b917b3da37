#!/usr/bin/env bash
# bench_smoke.sh - qkd-bench against a small lab for a few seconds: ETSI 014 and SKIP key
# pairs (fixed count, every pair compared at both ends), mixed with several keys per request,
# status polling; the JSON report's fields; `body` and `report` (Markdown + JSON, ratio to a
# baseline cell). Performance is never asserted here: only that the load ran without errors.
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

run etsi --scenario etsi --connections 2 --count 40
[ "$(jq -r .keys "$T/etsi.json")" -ge 40 ] || fail "etsi: fewer than 40 key pairs"
[ "$(jq -r '.latency_ms.etsi_dec_keys.count' "$T/etsi.json")" -ge 40 ] || fail "etsi: dec_keys latencies"
jq -e '.latency_ms.etsi_key_pair | .p50 > 0 and .p50 <= .p90 and .p90 <= .p99 and .p99 <= .max' \
  "$T/etsi.json" >/dev/null || fail "etsi: percentiles not ordered"
grep -q 'measure' "$T/etsi.err" || grep -q 'warm-up' "$T/etsi.err" || fail "etsi: no progress lines"
ok "ETSI 014 key pairs: $(jq -r .keys "$T/etsi.json") keys, no errors, ordered percentiles"

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
ok "usage errors exit 2"

mkdir -p "$T/bodies"
"$BENCH" body --dir "$T/bodies" --size 256 --number 2 || fail "body"
jq -e '.keys | length == 2' "$T/bodies/etsi.json" >/dev/null || fail "body: etsi.json"
jq -e '.keyId | length == 32' "$T/bodies/skip.json" >/dev/null || fail "body: skip.json"
ok "baseline bodies"

# A fake baseline cell (the etsi cell relabelled) exercises the ratio column.
jq '.target = "nginx"' "$T/etsi.json" >"$T/etsi-base.json"
"$BENCH" report --md "$T/r.md" --json "$T/r.json" --date test "$T/etsi.json" "$T/etsi-base.json" \
  "$T/skip.json" || fail "report"
grep -q '\*\*1.00\*\*' "$T/r.md" || { cat "$T/r.md"; fail "report: ratio 1.00 missing"; }
jq -e '.cells | length == 3' "$T/r.json" >/dev/null || fail "report: cells"
jq -e '.cells[0].ratio_to_nginx == 1' "$T/r.json" >/dev/null || fail "report: ratio_to_nginx"
ok "report: Markdown table and JSON with ratios"
# The store alone: two fresh stores, key pairs from two threads, every pair compared.
timeout 60 "$BENCH" store --dir "$T/store" --count 40 --threads 2 --number 2 --json "$T/store.json" \
  >"$T/store.txt" 2>"$T/store.err" || { cat "$T/store.txt" "$T/store.err"; fail "qkd-bench store"; }
jq -e '.pairs_ok == 40 and .errors == 0 and .mismatches == 0 and .cpu_us_per_pair > 0' \
  "$T/store.json" >/dev/null || { cat "$T/store.txt"; fail "store: report"; }
jq -e '[.operations[] | .count] == [40, 40, 40, 40]' "$T/store.json" >/dev/null ||
  fail "store: per-operation counts"
"$BENCH" store --dir "$T/store" --count 1 >/dev/null 2>&1
[ $? = 1 ] || fail "store: existing files were not refused"
"$BENCH" store --dir "$T/store" --count 0 >/dev/null 2>&1
[ $? = 2 ] || fail "store: bad --count is not a usage error"
ok "store alone: 40 pairs, 4 operations each, existing stores refused"
echo "PASS"

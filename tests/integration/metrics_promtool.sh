#!/usr/bin/env bash
# metrics_promtool.sh - about 40 s, no root. Every daemon's /metrics against `promtool check
# metrics` (it must print nothing and exit 0): both KMEs and the simulator of a qkd-lab, and a
# qkd-bridge responder's admin listener. Counters move: a key request raises
# qkd_requests_total and qkd_keys, the delivered-key counters grow (so rate() works). A stopped
# simulator (SIGSTOP: no telemetry) reads as down at both KMEs within the stale bound
# (qkd_link_up 0, qkd_link_telemetry_stale 1, qkd_link_rate_bps 0), and up again after SIGCONT.
# `qkd-lab status --json` / `--watch` checked with jq; docs/grafana-dashboard.json parses and its
# queries are valid PromQL (promtool check rules) on families the daemons serve.
# shellcheck disable=SC2016 # wait_for conditions and jq/sed programs are single-quoted
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/lab.sh
. "$ROOT/tests/lib/lab.sh"
qk_need_cmd promtool
qk_need_bin "$BUILD/bin/qkd-bridge"
# shellcheck source=../lib/bridge.sh
. "$ROOT/tests/lib/bridge.sh"
SIMPID=
trap '[ -n "$SIMPID" ] && kill -CONT "$SIMPID" 2>/dev/null; bridge_cleanup; _lab_cleanup' EXIT

# lint NAME URL: promtool check metrics on URL's /metrics prints nothing and exits 0.
lint() {
  local out rc
  curl -sf --max-time 5 "$2/metrics" >"$T/$1.prom" || fail "$1: GET $2/metrics"
  out=$(promtool check metrics <"$T/$1.prom" 2>&1)
  rc=$?
  if [ "$rc" != 0 ] || [ -n "$out" ]; then fail "$1: promtool check metrics (exit $rc): $out"; fi
}
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
# metric_is KME METRIC VALUE: the sample of link $L at KME
metric_is() { [ "$(kme_metric m "$1" "$2" "link=\"$L\"")" = "$3" ]; }

lab_up m --wait 60
L=$(lab_json m '.links[0].id')
SIM=$(lab_json m .sim_url)
SIMPID=$(lab_json m .sim_pid)
for k in KME_A KME_B; do lint "$k" "$(lab_json m ".kmes[] | select(.id==\"$k\") | .admin_url")"; done
lint sim "$SIM"
grep -q "^qkd_sim_link_up{link=\"$L\"} 1$" "$T/sim.prom" || fail "the simulator's /metrics lacks qkd_sim_link_up 1"
ok "promtool accepts the /metrics of KME_A, KME_B and the simulator"

# ---- docs/grafana-dashboard.json: valid JSON, every query valid PromQL on families served ----
DASH=$ROOT/docs/grafana-dashboard.json
jq -e '.panels | length > 0' "$DASH" >/dev/null || fail "$DASH is not a dashboard"
{
  echo "groups:"
  echo "  - name: dashboard"
  echo "    rules:"
  jq -r '.panels[].targets[]?.expr' "$DASH" | sed 's/\$__rate_interval/1m/g; s/\$job/.*/g; s/\$link/.*/g' |
    awk '{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "      - record: dashboard:q%d\n        expr: \"%s\"\n", NR, $0 }'
} >"$T/dash-rules.yml"
out=$(promtool check rules "$T/dash-rules.yml" 2>&1) || fail "dashboard queries: $out"
nq=$(grep -c 'expr:' "$T/dash-rules.yml")
for m in $(jq -r '.panels[].targets[]?.expr' "$DASH" | grep -o 'qkd_[a-z_]*' | sort -u); do
  grep -qh "^${m}[{ ]" "$T"/KME_A.prom "$T"/sim.prom || fail "the dashboard queries $m, which no /metrics serves"
done
ok "docs/grafana-dashboard.json: $nq queries, valid PromQL (promtool check rules), on families the daemons serve"

# ---- counters ------------------------------------------------------------------------------
r0=$(kme_metric m KME_A qkd_requests_total 'listener="etsi014",status="200"')
k0=$(kme_metric m KME_A qkd_keys "link=\"$L\",state=")
d0=$(kme_metric m KME_A qkd_link_delivered_bytes_total "link=\"$L\"")
sim_delivered() { curl -s --max-time 5 "$SIM/metrics" | awk -v m="qkd_sim_link_delivered_bytes_total{link=\"$L\"}" '$1 == m { v = $2 } END { print v + 0 }'; }
s0=$(sim_delivered)
ca0=$(kme_metric m KME_A qkd_key_consumed_bytes_total "link=\"$L\"")
cb0=$(kme_metric m KME_B qkd_key_consumed_bytes_total "link=\"$L\"")
ga0=$(kme_metric m KME_A qkd_leases_total 'result="granted"')
etsi_pair_key m KME_A SAE_A1 KME_B SAE_B1 || fail "ETSI 014 key across the link"
# One 256-bit key: 32 bytes carved at the master's KME, exactly. The slave's KME counts the
# ranges it grants the master as leases (docs/qkd-kmed.md "Leases"), not the key: it grows by a
# lease (at least the key) exactly when the master had to ask for one.
ca1=$(kme_metric m KME_A qkd_key_consumed_bytes_total "link=\"$L\"")
cb1=$(kme_metric m KME_B qkd_key_consumed_bytes_total "link=\"$L\"")
[ "$(awk -v a="$ca0" -v b="$ca1" 'BEGIN { print b - a }')" = 32 ] ||
  fail "KME_A qkd_key_consumed_bytes_total: $ca0 -> $ca1, want +32"
ga1=$(kme_metric m KME_A qkd_leases_total 'result="granted"')
db=$(awk -v a="$cb0" -v b="$cb1" 'BEGIN { print b - a }')
if [ "$ga1" = "$ga0" ]; then
  [ "$db" = 0 ] || fail "KME_B qkd_key_consumed_bytes_total: $cb0 -> $cb1 with no lease granted, want +0"
else
  gt "$db" 31 || fail "KME_B qkd_key_consumed_bytes_total: $cb0 -> $cb1 after a lease (asks granted $ga0 -> $ga1), want >= +32"
fi
gt "$(kme_metric m KME_A qkd_key_received_bytes_total "link=\"$L\"")" 0 ||
  fail "KME_A qkd_key_received_bytes_total is 0 with blocks stored"
gt "$(kme_metric m KME_A qkd_tls_handshakes_total 'listener="etsi014",result="ok"')" 0 ||
  fail "KME_A qkd_tls_handshakes_total{listener=etsi014,result=ok} is 0 after a request"
ok "key bytes consumed: +32 at the master's KME, the lease at the slave's (+$db, asks granted $ga0 -> $ga1); received from the device; TLS handshakes counted"
r1=$(kme_metric m KME_A qkd_requests_total 'listener="etsi014",status="200"')
k1=$(kme_metric m KME_A qkd_keys "link=\"$L\",state=")
gt "$r1" "$r0" || fail "qkd_requests_total{listener=etsi014,status=200} did not grow ($r0 -> $r1)"
gt "$k1" "$k0" || fail "qkd_keys of $L did not grow ($k0 -> $k1)"
wait_for 'gt "$(kme_metric m KME_A qkd_link_delivered_bytes_total "link=\"$L\"")" "$d0"' 15 \
  "qkd_link_delivered_bytes_total to grow" || fail "qkd_link_delivered_bytes_total stays at $d0"
wait_for 'gt "$(sim_delivered)" "$s0"' 15 "qkd_sim_link_delivered_bytes_total to grow" ||
  fail "qkd_sim_link_delivered_bytes_total stays at $s0"
ok "a key request counts (requests $r0 -> $r1, keys $k0 -> $k1); delivered-key counters grow"

# ---- qkd-lab status --json / --watch -------------------------------------------------------
"$LAB" status --dir "$T/m" --json >"$T/status.json" || fail "qkd-lab status --json: exit $?"
jq -e --arg l "$L" '.not_running == 0 and (.kmes | length) == 2 and
  all(.kmes[]; .running and .metrics and (.links[] | select(.id == $l) |
    .up == true and .stale == false and .pool_bytes > 0 and .rate_bps > 0 and .qber > 0)) and
  .sim.running and (.sim.links[] | select(.id == $l) | .state == "up")' "$T/status.json" >/dev/null ||
  fail "qkd-lab status --json: $(cat "$T/status.json")"
timeout 20 "$LAB" status --dir "$T/m" --json --watch 1 --count 2 >"$T/watch.json" || fail "--watch 1 --count 2: exit $?"
[ "$(jq -s 'length' "$T/watch.json")" = 2 ] || fail "--watch --count 2 printed: $(cat "$T/watch.json")"
"$LAB" status --dir "$T/m" --watch 1 >"$T/watch.txt" 2>&1 &
wp=$!
wait_for '[ "$(grep -c "^lab " "$T/watch.txt")" -ge 2 ]' 15 "two refreshes of --watch 1" || fail "--watch: $(cat "$T/watch.txt")"
kill -INT "$wp"
wait_for '! kill -0 "$wp" 2>/dev/null' 5 "--watch to stop on SIGINT" || { kill -KILL "$wp"; fail "--watch ignores SIGINT"; }
wait "$wp"
rc=$?
[ "$rc" = 0 ] || fail "--watch exited $rc on SIGINT"
"$LAB" status --dir "$T/m" --watch 0 >/dev/null 2>&1
[ $? = 2 ] || fail "--watch 0 not refused"
ok "qkd-lab status --json (jq), --watch --count, --watch stopped by SIGINT (exit 0)"

# ---- stale telemetry: a stopped simulator reads as down ------------------------------------
kill -STOP "$SIMPID" || fail "SIGSTOP the simulator"
wait_for 'metric_is KME_A qkd_link_up 0.000000 && metric_is KME_B qkd_link_up 0.000000' 15 \
  "qkd_link_up 0 at both ends with the simulator stopped" ||
  fail "qkd_link_up with no telemetry: A $(kme_metric m KME_A qkd_link_up) B $(kme_metric m KME_B qkd_link_up)"
for k in KME_A KME_B; do
  metric_is $k qkd_link_telemetry_stale 1.000000 || fail "$k: qkd_link_telemetry_stale not 1"
  metric_is $k qkd_link_rate_bps 0.000000 || fail "$k: qkd_link_rate_bps frozen at $(kme_metric m $k qkd_link_rate_bps)"
  [ "$(kme_metric m $k qkd_link_qber "link=\"$L\"")" = -1 ] || fail "$k: a stale QBER is still shown"
  gt "$(kme_metric m $k qkd_link_telemetry_age_seconds "link=\"$L\"")" 5 || fail "$k: telemetry age not above 5 s"
  lint "$k-stale" "$(lab_json m ".kmes[] | select(.id==\"$k\") | .admin_url")"
done
"$LAB" status --dir "$T/m" --json | jq -e --arg l "$L" \
  'all(.kmes[].links[] | select(.id == $l); .up == false and .stale == true and .qber == null)' >/dev/null ||
  fail "qkd-lab status --json does not show the stale link"
kill -CONT "$SIMPID" || fail "SIGCONT the simulator"
wait_for 'metric_is KME_A qkd_link_up 1.000000 && metric_is KME_B qkd_link_up 1.000000' 15 \
  "qkd_link_up 1 again" || fail "qkd_link_up not back to 1 after the simulator resumed"
metric_is KME_A qkd_link_telemetry_stale 0.000000 || fail "still stale after the simulator resumed"
ok "simulator stopped: qkd_link_up 0, stale 1, rate 0, no QBER at both KMEs; back up after SIGCONT"

# ---- qkd-bridge admin listener (a responder: starts without any peer or key) ----------------
cat >"$T/whack" <<'EOF'
#!/bin/sh
exit 0
EOF
{ chmod 0755 "$T/whack" && mkdir -p "$T/gw"; } || fail "stand-in whack"
(umask 077 && printf '%s:%s\n' "$(lab_json m '.kmes[1].skip_clients[0].identity')" \
  "$(lab_json m '.kmes[1].skip_clients[0].psk_hex')" >"$T/skip.client") || fail "PSK file"
cat >"$T/bridge_r.conf" <<EOF
[bridge]
name = r
role = responder
log_file = $T/bridge_r.log
[kme]
api = skip
url = $(lab_json m '.kmes[1].skip_url')
psk_identity = $(lab_json m '.kmes[1].skip_clients[0].identity')
psk_file = $T/skip.client
peer_sae_id = KME_A
[peer]
listen = 127.0.0.1:0
auth = cert
ca = $T/m/pki/ca.crt
cert = $T/m/pki/server-KME_B.crt
key = $T/m/pki/server-KME_B.key
peer_name = KME_A
[rotation]
interval = 0
[gateway]
driver = libreswan
[libreswan]
secrets_file = $T/gw/ppk.secrets
whack = $T/whack
ctlsocket = $T/gw/pluto.ctl
connection = qkd
local_id = @r.example
remote_id = @peer.example
EOF
bridge_start r
lint bridge "${ADMIN[r]}"
grep -q '^qkd_bridge_rotations_total{result="ok"} 0$' "$T/bridge.prom" || fail "bridge /metrics: $(head -5 "$T/bridge.prom")"
bridge_stop r
ok "promtool accepts qkd-bridge's /metrics"
"$LAB" down --dir "$T/m" >/dev/null || fail "qkd-lab down"
no_san_reports m
echo "metrics_promtool: all checks passed"

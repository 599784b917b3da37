#!/usr/bin/env bash
# topology.sh - the topology view of two real qkd-kmed (docs/qkd-kmed.md "Relay and routing"):
# --check-config covers [topology] and [relay]; each KME answers the other's
# GET /peer/v1/topology (and refuses an SAE there); the admin GET /routes of KME_A shows its link
# to KME_B up with the pool's key once blocks are confirmed, a [topology] link of two other KMEs
# with no key and no route to them, the qkd_topology_* metrics; after KME_B stops, the link is
# down within 3 intervals (and the route gone), and it comes back when KME_B starts again.
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=/dev/null
. "$(dirname "$0")/../lib/etsi_pair.sh"
# shellcheck source=/dev/null
. "$ROOT/tests/lib/wait.sh"
qk_need_cmd jq

IV_MS=500 # [topology] interval

pair_init
for s in A B; do
  cat >>"$T/kme_$s.conf" <<EOF

[topology]
link = KME_C KME_D
interval = ${IV_MS}ms
hold_down = 2s

[relay]
max_hops = 4

[sae SAE_C1]
kme = KME_C
EOF
done

# --- --check-config runs the loader: the new sections are checked
"$KMED" --check-config "$T/kme_A.conf" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "--check-config of a good [topology]"; }
sed -e 's/^link = KME_C KME_D$/link = KME_A KME_C/' "$T/kme_A.conf" >"$T/bad.conf"
"$KMED" --check-config "$T/bad.conf" >"$T/check.out" 2>&1
rc=$?
if [ "$rc" != 2 ] || ! grep -q '\[topology\] link: KME_A KME_C names this node (KME_A)' "$T/check.out"; then
  cat "$T/check.out"
  fail "--check-config: want the [topology] link refused, rc $rc"
fi
sed -e 's/^max_hops = 4$/max_hops = 16/' "$T/kme_A.conf" >"$T/bad.conf"
"$KMED" --check-config "$T/bad.conf" >"$T/check.out" 2>&1
rc=$?
if [ "$rc" != 2 ] || ! grep -q '\[relay\] max_hops' "$T/check.out"; then
  cat "$T/check.out"
  fail "--check-config: want [relay] max_hops 16 refused, rc $rc"
fi
ok "--check-config checks [topology] and [relay]"

pair_start A
pair_start B
pair_feed --blocks 2 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A 100000 || fail "pool of KME_A did not fill"
wait_pool B 100000 || fail "pool of KME_B did not fill"
ok "pools filled"

# GET /peer/v1/topology of KME s with the client certificate of CN (prints the body, then
# "HTTP <status>").
peer_topology() { # s CN
  curl -s --max-time 5 --cacert "$T/pki/ca.crt" --cert "$(crt "$2")" --key "$(key "$2")" \
    -w '\nHTTP %{http_code}\n' "https://127.0.0.1:${PEERPORT[$1]}/peer/v1/topology"
}
out=$(peer_topology B KME_A)
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] || fail "KME_B's topology for KME_A: $out"
body=$(printf '%s' "$out" | sed '$d')
[ "$(printf '%s' "$body" | jq -r '.v, .reports[0].node, .reports[0].links[0].peer' | tr '\n' ' ')" = "1 KME_B KME_A " ] ||
  fail "KME_B's report: $body"
out=$(peer_topology A KME_B)
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] || fail "KME_A's topology for KME_B: $out"
[ "$(printf '%s' "$out" | sed '$d' | jq -r '.reports[0].node')" = KME_A ] || fail "KME_A's report: $out"
out=$(peer_topology B SAE_A1)
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 403" ] || fail "an SAE's GET /peer/v1/topology: $out"
ok "each KME answers the other's GET /peer/v1/topology; an SAE gets 403"

routes() { curl -s --max-time 5 "$(admin_url A)/routes"; }
# The A-B link of KME_A's view: "up available" (e.g. "true 131008").
ab() { routes | jq -r '.links[] | select((.a == "KME_A" and .b == "KME_B") or (.a == "KME_B" and .b == "KME_A")) | "\(.up) \(.available)"'; }
wait_for '[ "$(ab | cut -d" " -f1)" = true ] && [ "$(ab | cut -d" " -f2)" -gt 0 ]' 10 "the A-B link up with key in KME_A's /routes" ||
  fail "KME_A's /routes: $(routes)"
R=$(routes)
[ "$(printf '%s' "$R" | jq -r '.node')" = KME_A ] || fail "/routes node: $R"
printf '%s' "$R" | jq -e '.links[] | select(.a == "KME_C" and .b == "KME_D") | select(.up == true and .available == 0 and .age_ms == null and .held_down == false)' >/dev/null ||
  fail "the [topology] link C-D in /routes: $R"
printf '%s' "$R" | jq -e '.routes[] | select(.to == "KME_B") | select(.path == ["KME_A","KME_B"] and .bottleneck > 0)' >/dev/null ||
  fail "the route to KME_B in /routes: $R"
printf '%s' "$R" | jq -e '.routes[] | select(.to == "KME_C") | select(.path == null and (.reason | test("no route from KME_A to KME_C")))' >/dev/null ||
  fail "no route to KME_C in /routes: $R"
if [ "$(admin_metric A qkd_topology_links 'state="up"')" -lt 2 ] || [ "$(admin_metric A qkd_topology_nodes)" != 4 ]; then
  fail "qkd_topology_* of KME_A: $(admin_metrics A | grep qkd_topology)"
fi
ok "KME_A's /routes: A-B up with $(ab | cut -d' ' -f2) bytes, C-D up with none, routes and metrics"

# --- KME_B stops: down within 3 intervals (plus 1 s for a loaded machine)
pair_stop B
wait_for '[ "$(ab | cut -d" " -f1)" = false ]' "$(awk -v i="$IV_MS" 'BEGIN { print 3 * i / 1000 + 1 }')" \
  "the A-B link down after KME_B stopped" || fail "KME_A's /routes: $(routes)"
routes | jq -e '.routes[] | select(.to == "KME_B") | select(.path == null)' >/dev/null ||
  fail "a route to the stopped KME_B: $(routes)"
ok "A-B down within 3 intervals of KME_B's stop"
pair_start B
wait_for '[ "$(ab | cut -d" " -f1)" = true ]' 10 "the A-B link up again" || fail "KME_A's /routes: $(routes)"
ok "A-B up again after KME_B's restart"

#!/usr/bin/env bash
# SLOW: runs in the normal build of make check (QK_SLOW=1), not again under the sanitizers (the relay's
# failure paths run there in kms_relay and relay_basic/relay_batch/relay_multicast/relay_mesh).
# relay_ring.sh - trusted-node key relay on the ring preset (issue 14; docs/adr/0004-key-relay.md):
# KME_A - KME_B - KME_C - KME_D - KME_E - KME_A, keys from SAE_A1 at KME_A to SAE_C1 at KME_C.
# 1. Route around a failure: a simulator `down` fault on KME_B~KME_C (the 2-hop path); requests
#    keep succeeding, KME_A's route turns to KME_A>KME_E>KME_D>KME_C (GET /routes) and the
#    relays take their key there (KME_A's pool of KME_A~KME_E falls by exactly their cost, that
#    of KME_A~KME_B does not move); after `clear` the route returns.
# 2. A relay message altered in flight: tests/tools/relay-tamper, a TLS-terminating proxy with
#    the lab's certificates, sits between KME_B and KME_C (KME_B's peer_url) and flips one bit
#    of "ct" in POST /peer/v1/relay: the MAC refuses it, the SAE gets 503, the keys are burned
#    (dec_keys at KME_C finds none of them); the next relay through the proxy, unaltered, works.
# 3. kill -9 of KME_B (the only path: KME_A~KME_E is down) during a burst of relays: after it
#    restarts, every key SAE_A1 got is fetched at KME_C exactly once with the same bytes; no
#    key twice.
# One lab for all; about 90 s.
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
# shellcheck source=../lib/relay.sh
. "$(dirname "$0")/../lib/relay.sh"
qk_need_cmd python3
TAMPER=$ROOT/tests/tools/relay-tamper
N=ring
TP=
BURST=
_relay_cleanup() {
  [ -n "$TP" ] && kill "$TP" 2>/dev/null
  [ -n "$BURST" ] && kill "$BURST" 2>/dev/null
  _lab_cleanup
}
trap _relay_cleanup EXIT

lab_up "$N" --preset ring --time-scale 100
[ "$(lab_json "$N" '[.links[].id] | join(",")')" = "KME_A~KME_B,KME_B~KME_C,KME_C~KME_D,KME_D~KME_E,KME_E~KME_A" ] ||
  fail "lab.json: links $(lab_json "$N" '[.links[].id] | join(",")')"
SHORT="KME_A>KME_B>KME_C" LONG="KME_A>KME_E>KME_D>KME_C"
wait_route "$N" KME_A KME_C "$SHORT" 30 || fail "KME_A's route to KME_C"
ok "KME_A routes to KME_C over the 2-hop side of the ring"

# key_ac [CODE]: one key from SAE_A1 at KME_A to SAE_C1 at KME_C, fetched there with the same
# bytes; with CODE (e.g. 503), enc_keys must answer that instead.
key_ac() {
  local code ids
  code=$(etsi_enc "$N" KME_A SAE_A1 SAE_C1 '{"number":1,"size":256}')
  if [ -n "${1:-}" ]; then
    [ "$code" = "$1" ] || { cat "$T/enc.json"; fail "enc_keys: HTTP $code, not $1"; }
    return 0
  fi
  [ "$code" = 200 ] || { cat "$T/enc.json"; fail "enc_keys at KME_A for SAE_C1: HTTP $code"; }
  ids=$(jq -c '[.keys[] | {key_ID}]' "$T/enc.json")
  code=$(etsi_dec "$N" KME_C SAE_C1 SAE_A1 "$ids")
  [ "$code" = 200 ] || { cat "$T/dec.json"; fail "dec_keys at KME_C: HTTP $code"; }
  [ "$(jq -r '.keys[0].key' "$T/enc.json")" = "$(jq -r '.keys[0].key' "$T/dec.json")" ] ||
    fail "KME_C returned other bytes"
}
key_ac
ok "an ETSI 014 key from KME_A to KME_C"

# 1. Route around a failure.
sim_fault "$N" KME_B~KME_C down
for i in 1 2 3; do key_ac; done
ok "with KME_B~KME_C down, requests keep succeeding"
wait_route "$N" KME_A KME_C "$LONG" 30 || fail "KME_A does not route around KME_B~KME_C"
freeze_pools "$N" KME_A~KME_B KME_E~KME_A
routes_long() { # relays KME_A tried on $LONG (qkd_relay_route_total), 0 before the first
  kme_metric "$N" KME_A qkd_relay_route_total "path=\"$LONG\"" | awk '{ printf "%d\n", $1 < 0 ? 0 : $1 }'
}
logged_long() { grep -c "relay .*: path $LONG: committed: " "$T/$N/KME_A/kmed.log"; }
ab=$(pool_bytes "$N" KME_A KME_A~KME_B)
ae=$(pool_bytes "$N" KME_A KME_E~KME_A)
r0=$(routes_long) g0=$(logged_long)
for i in 1 2 3; do key_ac; done
ab2=$(pool_bytes "$N" KME_A KME_A~KME_B)
ae2=$(pool_bytes "$N" KME_A KME_E~KME_A)
r1=$(routes_long)
thaw_pools "$N" KME_A~KME_B KME_E~KME_A
[ $((ae - ae2)) = 192 ] || fail "KME_A's pool of KME_E~KME_A fell by $((ae - ae2)) bytes, not 3 x 64"
[ "$ab2" = "$ab" ] || fail "KME_A's pool of KME_A~KME_B moved ($ab -> $ab2) while the route avoided it"
[ $((r1 - r0)) = 3 ] || fail "qkd_relay_route_total{path=\"$LONG\"} rose by $((r1 - r0)), not 3"
wait_for '[ "$(logged_long)" -ge $((g0 + 3)) ]' 5 "KME_A to log 3 relays on $LONG" ||
  fail "KME_A's log names the path of $(($(logged_long) - g0)) of the 3 relays"
ok "the relays went the other way round: KME_E~KME_A paid 3 x 64 bytes, KME_A~KME_B nothing; counted and logged by path"
sim_fault "$N" KME_B~KME_C clear
wait_route "$N" KME_A KME_C "$SHORT" 30 || fail "the route does not return after clear"
"$LAB" status --dir "$T/$N" >"$T/status.out"
grep -q '^  route to KME_C: KME_A > KME_B > KME_C (2 hops' "$T/status.out" ||
  { cat "$T/status.out"; fail "qkd-lab status does not show the route back"; }
key_ac
ok "after clear the route returns to $SHORT"

# 2. A relay message altered between KME_B and KME_C. KME_A~KME_E is down so that the relay
#    has no other way to take.
P=$T/$N/pki
up=$(kme_field "$N" KME_C peer_url)
"$TAMPER" --port-file "$T/tamper.port" --upstream "${up#https://}" --cert "$P/server-KME_C.crt" \
  --key "$P/server-KME_C.key" --ca "$P/ca.crt" --client-cert "$P/peer-KME_B.crt" \
  --client-key "$P/peer-KME_B.key" --flip 1 --log "$T/tamper.log" 2>"$T/tamper.err" &
TP=$!
wait_for '[ -s "$T/tamper.port" ]' 10 "relay-tamper to listen" || fail "relay-tamper did not start"
kme_set "$N" KME_B "link KME_C" peer_url "https://127.0.0.1:$(sed -n 's/^port=//p' "$T/tamper.port")"
kme_restart "$N" KME_B
sim_fault "$N" KME_E~KME_A down
wait_route "$N" KME_A KME_C "$SHORT" 30 || fail "KME_A's route to KME_C after KME_B's restart"
key_ac 503
[ -n "$(jq -r '.message // empty' "$T/enc.json")" ] || { cat "$T/enc.json"; fail "503 without a message"; }
jq -c 'select(.flipped)' "$T/tamper.log" >"$T/flipped.log"
[ "$(wc -l <"$T/flipped.log")" = 1 ] || { cat "$T/tamper.err"; fail "relay-tamper altered no relay message"; }
jq -e '.hop == 1 and (.path | join(">")) == "KME_A>KME_B>KME_C"' "$T/flipped.log" >/dev/null ||
  fail "relay-tamper altered $(cat "$T/flipped.log"), not hop 1 of $SHORT"
ids=$(jq -c '[.key_IDs[] | {key_ID: .}]' "$T/flipped.log")
code=$(etsi_dec "$N" KME_C SAE_C1 SAE_A1 "$ids")
{ [ "$code" != 200 ] && [ "$(jq -r '.keys[0].key // empty' "$T/dec.json")" = "" ]; } ||
  fail "the key of the altered relay was delivered at KME_C (HTTP $code)"
ok "an altered relay message: 503 ($(jq -r .message "$T/enc.json")), the key burned, never delivered"
# The relay's hold-down of the link ends; the next relay passes the proxy unaltered.
wait_route "$N" KME_A KME_C "$SHORT" 30 || fail "KME_A's route to KME_C after the refusal"
key_ac
ok "the next relay through relay-tamper (unaltered) delivers"

# 3. kill -9 of KME_B, the only way from KME_A to KME_C, during a burst of relays.
: >"$T/burst"
: >"$T/tamper.log" # from here relay-tamper lists every relay message KME_B sends KME_C
(
  for _ in $(seq 40); do
    code=$(etsi_enc "$N" KME_A SAE_A1 SAE_C1 '{"number":1,"size":256}')
    echo "$code $(jq -c '[.keys[]? | [.key_ID, .key]]' "$T/enc.json" 2>/dev/null)" >>"$T/burst"
  done
) &
BURST=$!
wait_for '[ "$(grep -c "^200 " "$T/burst")" -ge 5 ]' 60 "5 relayed keys" || fail "the burst got no keys"
B=$(kme_field "$N" KME_B pid)
kill -KILL "$B"
wait_for '! pid_running "$B"' 10 "KME_B to die" || fail "kill -9 KME_B"
sleep 1 # relays meet a dead KME_B
kme_restart "$N" KME_B
wait "$BURST"
BURST=
ng=$(grep -c '^200 ' "$T/burst")
nf=$(grep -vc '^200 ' "$T/burst")
[ "$nf" -ge 1 ] || fail "no request failed: the kill did not fall within the burst"
sim_fault "$N" KME_E~KME_A clear
bad=0 n=0
while read -r code keys; do
  [ "$code" = 200 ] || continue
  id=$(jq -r '.[0][0]' <<<"$keys")
  k=$(jq -r '.[0][1]' <<<"$keys")
  wait_for '[ "$(etsi_dec "$N" KME_C SAE_C1 SAE_A1 "[{\"key_ID\":\"$id\"}]")" = 200 ]' 30 \
    "key $id at KME_C" || { bad=$((bad + 1)); continue; }
  [ "$(jq -r '.keys[0].key' "$T/dec.json")" = "$k" ] || fail "key $id: other bytes at KME_C"
  [ "$(etsi_dec "$N" KME_C SAE_C1 SAE_A1 "[{\"key_ID\":\"$id\"}]")" != 200 ] ||
    fail "key $id fetched twice at KME_C"
  n=$((n + 1))
done <"$T/burst"
[ "$bad" = 0 ] || fail "$bad of the $ng keys SAE_A1 got are not at KME_C"
# Every key KME_B relayed to KME_C that SAE_A1 did not get (a request refused, perhaps after
# KME_C stored it) is never delivered at KME_C.
jq -r '.[][0]' <<<"$(grep '^200 ' "$T/burst" | cut -d' ' -f2- | jq -sc 'add // []')" | sort >"$T/got"
jq -r 'select(.flipped | not) | .key_IDs[]' "$T/tamper.log" | sort -u >"$T/sent"
[ "$(comm -23 "$T/got" "$T/sent" | wc -l)" = 0 ] || fail "keys SAE_A1 got that relay-tamper did not see"
orphans=0
for id in $(comm -13 "$T/got" "$T/sent"); do
  [ "$(etsi_dec "$N" KME_C SAE_C1 SAE_A1 "[{\"key_ID\":\"$id\"}]")" != 200 ] ||
    fail "key $id: delivered at KME_C though SAE_A1 never got it"
  orphans=$((orphans + 1))
done
ok "kill -9 of KME_B mid-burst: $ng keys delivered, each fetched once at KME_C; $nf requests refused, $orphans of their keys reached KME_C and are not delivered there"

kill "$TP"
TP=
pids=$(lab_pids "$N")
"$LAB" down --dir "$T/$N" >/dev/null || fail "qkd-lab down"
for p in $pids; do pid_running "$p" && fail "process $p still runs after qkd-lab down"; done
no_san_reports "$N"
echo PASS

#!/usr/bin/env bash
# relay_multicast.sh - multicast across the network (issue 14; docs/adr/0004-key-relay.md,
# "Multicast"): on the star preset (hub KME_A, leaves KME_B ... KME_E), SAE_B1 at KME_B asks
# one enc_keys with its slave and additional_slave_SAE_IDs at three different KMEs; the same key
# is relayed to each, and each slave fetches the same bytes, once. First with the slaves on
# three leaves (two hops each, through the hub), then with one at the hub (a neighbour) and two
# on leaves. One lab, ~40 s.
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
# shellcheck source=../lib/relay.sh
. "$(dirname "$0")/../lib/relay.sh"
N=star

lab_up "$N" --preset star --time-scale 100
[ "$(lab_json "$N" '[.links[].id] | join(",")')" = "KME_A~KME_B,KME_A~KME_C,KME_A~KME_D,KME_A~KME_E" ] ||
  fail "lab.json: links $(lab_json "$N" '[.links[].id] | join(",")')"
for d in KME_C KME_D KME_E; do
  wait_route "$N" KME_B "$d" "KME_B>KME_A>$d" 30 || fail "KME_B's route to $d"
done
ok "KME_B routes to every other leaf through the hub"

home() { lab_json "$N" ".kmes[] | select(any(.saes[]; .id == \"$1\")) | .id"; }
# multicast SLAVE EXTRA...: 2 keys from SAE_B1 at KME_B for SLAVE and the EXTRA SAEs; each
# fetches both keys at its own KME with the same bytes, and a second fetch finds nothing.
multicast() {
  local slave=$1 code ids want s k extra
  shift
  extra=$(printf '%s\n' "$@" | jq -R . | jq -sc .)
  code=$(etsi_enc "$N" KME_B SAE_B1 "$slave" "{\"number\":2,\"size\":256,\"additional_slave_SAE_IDs\":$extra}")
  [ "$code" = 200 ] || { cat "$T/enc.json"; fail "multicast enc_keys for $slave + $extra: HTTP $code"; }
  ids=$(jq -c '[.keys[] | {key_ID}]' "$T/enc.json")
  want=$(jq -c '[.keys[] | [.key_ID, .key]]' "$T/enc.json")
  [ "$(jq length <<<"$ids")" = 2 ] || fail "multicast: $(jq length <<<"$ids") keys, not 2"
  for s in "$slave" "$@"; do
    k=$(home "$s")
    code=$(etsi_dec "$N" "$k" "$s" SAE_B1 "$ids")
    [ "$code" = 200 ] || { cat "$T/dec.json"; fail "dec_keys of $s at $k: HTTP $code"; }
    [ "$(jq -c '[.keys[] | [.key_ID, .key]]' "$T/dec.json")" = "$want" ] ||
      fail "$s at $k fetched other keys than SAE_B1 got"
  done
  for s in "$slave" "$@"; do
    k=$(home "$s")
    code=$(etsi_dec "$N" "$k" "$s" SAE_B1 "$ids")
    { [ "$code" != 200 ] && [ "$(jq -r '.keys[0].key // empty' "$T/dec.json")" = "" ]; } ||
      fail "$s fetched the multicast keys twice at $k (HTTP $code)"
  done
}
multicast SAE_C1 SAE_D1 SAE_E1
ok "multicast to SAE_C1, SAE_D1, SAE_E1 at KME_C, KME_D, KME_E: the same bytes, once each"
multicast SAE_A1 SAE_C1 SAE_E2
ok "multicast to SAE_A1 at the hub and SAE_C1, SAE_E2 on two leaves: the same bytes, once each"

pids=$(lab_pids "$N")
"$LAB" down --dir "$T/$N" >/dev/null || fail "qkd-lab down"
for p in $pids; do pid_running "$p" && fail "process $p still runs after qkd-lab down"; done
no_san_reports "$N"
echo PASS

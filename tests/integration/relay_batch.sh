#!/usr/bin/env bash
# relay_batch.sh - relayed requests of the largest size the lab allows (issue 14;
# docs/adr/0004-key-relay.md): on the chain preset with its default 4096-byte blocks, SAE_A1
# asks KME_A for 128 keys of 256 bits (the lab's max_keys_per_request: L = 4096 bytes, 4128
# bytes of key per hop, more than one block's worth of a link's key) with SAE_E1 at KME_E, 4
# hops away, and the other way round, while every pool holds far more: each request succeeds
# and KME_E serves the same 128 keys, once. The same for a neighbour as a control. Then no KME
# has burned a relay's hop request over a notice (the relay message is the hop request's notice;
# the notifier's own could not carry its pieces: ADR 0004, "Taking a hop's key from the store").
# ~15 s.
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
# shellcheck source=../lib/relay.sh
. "$(dirname "$0")/../lib/relay.sh"
N=chain

lab_up "$N" --preset chain --time-scale 100
wait_route "$N" KME_A KME_E "KME_A>KME_B>KME_C>KME_D>KME_E" 30 || fail "KME_A's route to KME_E"
# Every pool of the path holds at least 8 requests' worth (8 x 4128 bytes) before the test.
pools_full() {
  local l k
  for l in $(lab_json "$N" '.links[].id'); do
    for k in $(lab_json "$N" ".links[] | select(.id==\"$l\") | .kmes[]"); do
      [ "$(pool_bytes "$N" "$k" "$l")" -ge 33024 ] || return 1
    done
  done
}
WAIT_STEP=0.5 wait_for pools_full 60 "every pool to hold 33024 bytes" || fail "the pools do not fill"

batch() { # KME_M SAE_M KME_S SAE_S: 4 requests of 128 keys, fetched at KME_S once
  local i code ids
  for i in 1 2 3 4; do
    code=$(etsi_enc "$N" "$1" "$2" "$4" '{"number":128,"size":256}')
    [ "$code" = 200 ] || { cat "$T/enc.json"; fail "request $i of 128 keys at $1 for $4: HTTP $code"; }
    ids=$(jq -c '[.keys[] | {key_ID}]' "$T/enc.json")
    [ "$(jq length <<<"$ids")" = 128 ] || fail "request $i at $1: $(jq length <<<"$ids") keys"
    code=$(etsi_dec "$N" "$3" "$4" "$2" "$ids")
    [ "$code" = 200 ] || { cat "$T/dec.json"; fail "dec_keys of 128 keys at $3: HTTP $code"; }
    [ "$(jq -c '[.keys[] | [.key_ID, .key]]' "$T/enc.json")" = "$(jq -c '[.keys[] | [.key_ID, .key]]' "$T/dec.json")" ] ||
      fail "dec_keys at $3 returned other keys"
    code=$(etsi_dec "$N" "$3" "$4" "$2" "$ids")
    [ "$code" != 200 ] || fail "128 keys fetched twice at $3"
  done
}
batch KME_A SAE_A1 KME_B SAE_B1
ok "4 requests of 128 keys for a neighbour (control)"
batch KME_A SAE_A1 KME_E SAE_E1
ok "4 requests of 128 keys relayed over 4 hops, KME_A to KME_E"
batch KME_E SAE_E2 KME_A SAE_A2
ok "4 requests of 128 keys relayed over 4 hops, KME_E to KME_A"
if grep -h 'the notice of its .* was refused' "$T/$N"/KME_*/kmed.log >"$T/burned"; then
  head -3 "$T/burned"
  fail "$(wc -l <"$T/burned") hop request(s) of relays burned over a refused notice"
fi
ok "no relay hop request burned over its notice"

pids=$(lab_pids "$N")
"$LAB" down --dir "$T/$N" >/dev/null || fail "qkd-lab down"
for p in $pids; do pid_running "$p" && fail "process $p still runs after qkd-lab down"; done
no_san_reports "$N"
echo PASS

#!/usr/bin/env bash
# SLOW: runs in the normal build of make check (QK_SLOW=1), not again under the sanitizers (the relay's
# failure paths run there in kms_relay and relay_basic/relay_batch/relay_multicast/relay_mesh).
# relay_chain.sh - trusted-node key relay over the 5-node chain preset (issue 14;
# docs/adr/0004-key-relay.md): qkd-lab up --preset chain (KME_A - KME_B - KME_C - KME_D - KME_E);
# lab.json and the configs describe the network; KME_A routes to KME_E over the chain
# (admin GET /routes, qkd-lab status); an ETSI 014 key made at one end is fetched at the other
# byte for byte, once, in both directions; the same through SKIP (remoteSystemID = the far KME);
# the pool of every link on the path falls at its sending end by exactly the key the relays
# took (L + 32 bytes per request and hop, with the simulator's deliveries held back by `drop a`);
# a slave KME that cannot be reached gives the SAE a 503 with a message. One lab, ~60 s.
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
# shellcheck source=../lib/relay.sh
. "$(dirname "$0")/../lib/relay.sh"
QKD=$BUILD/bin/qkd
qk_need_bin "$QKD"
N=chain
LINKS=(KME_A~KME_B KME_B~KME_C KME_C~KME_D KME_D~KME_E)

# --preset names a topology preset or, as before, a link model preset (the same as
# --link-preset); the model check shows which one it took. Refused at once (exit 2, nothing
# created): a model preset's link too long, a topology name as --link-preset, --preset chain
# with --topology.
refused() { # NAME WANT ARGS...
  local n=$1 want=$2 rc=0
  shift 2
  timeout 10 "$LAB" up --dir "$T/$n" "$@" >"$T/$n.err" 2>&1 || rc=$?
  [ "$rc" = 2 ] || { cat "$T/$n.err"; fail "qkd-lab up $*: exit $rc, not 2"; }
  grep -q -- "$want" "$T/$n.err" || { cat "$T/$n.err"; fail "qkd-lab up $*: no '$want'"; }
  [ ! -e "$T/$n" ] || fail "qkd-lab up $*: created $T/$n"
}
refused r1 "link KME_A~KME_B yields no key: preset lim2014 at 200 km" --preset lim2014 --distance 200
refused r2 "link KME_A~KME_B yields no key: preset toshiba-metro at 200 km" --link-preset toshiba-metro --distance 200
# The mesh's links have their own presets and distances: --distance does not reach them, and
# its KME_A~KME_B (gys, 10 km) fills a block in 0.6 s, KME_A~KME_C (25 km) not within 1 s.
refused r3 "link KME_A~KME_C cannot fill a block within --wait 1 s.*(preset gys, 25 km" --preset mesh --distance 200 --wait 1
refused r4 "unknown link model preset chain" --link-preset chain
refused r5 "unknown topology or link model preset nosuch" --preset nosuch
: >"$T/empty.ini"
refused r6 "--topology and --preset chain" --preset chain --topology "$T/empty.ini"
"$LAB" up --help | grep -qE '^  mesh +7 KMEs' || fail "qkd-lab up --help does not list the topology presets"
ok "--preset: topology presets and link model presets; --link-preset; refusals"

lab_up "$N" --preset chain --time-scale 100
[ "$(lab_json "$N" '[.kmes[].id] | join(",")')" = KME_A,KME_B,KME_C,KME_D,KME_E ] ||
  fail "lab.json: KMEs $(lab_json "$N" '[.kmes[].id] | join(",")')"
[ "$(lab_json "$N" '[.links[].id] | join(",")')" = "$(
  IFS=,
  echo "${LINKS[*]}"
)" ] || fail "lab.json: links $(lab_json "$N" '[.links[].id] | join(",")')"
[ "$(lab_json "$N" '[.kmes[].saes[].id] | join(",")')" = SAE_A1,SAE_A2,SAE_B1,SAE_C1,SAE_D1,SAE_E1,SAE_E2 ] ||
  fail "lab.json: SAEs $(lab_json "$N" '[.kmes[].saes[].id] | join(",")')"
c=$T/$N/KME_A/kmed.conf
grep -A1 '^\[sae SAE_E1\]$' "$c" | grep -q '^kme = KME_E$' ||
  fail "KME_A's config does not place SAE_E1 at KME_E"
[ "$(sed -n '/^\[topology\]$/,/^$/p' "$c" | grep -c '^link = ')" = 3 ] ||
  fail "KME_A's config has not the 3 [topology] links it is not on"
grep -q '^remote_system_ids = KME_B,KME_C,KME_D,KME_E$' "$c" || fail "KME_A's SKIP remote systems"
ok "qkd-lab up --preset chain: lab.json and every KME's config describe the network"

# Routes: the relay path and qkd-lab status.
wait_route "$N" KME_A KME_E "KME_A>KME_B>KME_C>KME_D>KME_E" 30 || fail "KME_A's route to KME_E"
wait_route "$N" KME_E KME_A "KME_E>KME_D>KME_C>KME_B>KME_A" 30 || fail "KME_E's route to KME_A"
status_shows() { # the route line of KME_A to KME_E in qkd-lab status
  "$LAB" status --dir "$T/$N" >"$T/status.out" &&
    grep -qE '^  route to KME_E: KME_A > KME_B > KME_C > KME_D > KME_E \(4 hops, bottleneck [0-9]+ bytes\)$' \
      "$T/status.out"
}
WAIT_STEP=1 wait_for status_shows 15 "qkd-lab status to show the route" ||
  { cat "$T/status.out"; fail "qkd-lab status shows no route from KME_A to KME_E"; }
[ "$("$LAB" status --dir "$T/$N" --json | jq -r '.kmes[0].routes[] | select(.to=="KME_D") | .path | length')" = 4 ] ||
  fail "qkd-lab status --json: KME_A's route to KME_D"
ok "KME_A routes to KME_E over the 4 links (GET /routes, qkd-lab status)"
# ETSI status for a slave 4 hops away: what a relay could deliver now (> 0 keys).
code=$(curl -s --max-time 10 -o "$T/status.json" -w '%{http_code}' --cacert "$(lab_json "$N" .ca_cert)" \
  --cert "$T/$N/pki/sae-SAE_A1.crt" --key "$T/$N/pki/sae-SAE_A1.key" \
  "$(kme_field "$N" KME_A etsi014_url)/api/v1/keys/SAE_E1/status")
{ [ "$code" = 200 ] && jq -e '.slave_SAE_ID == "SAE_E1" and .stored_key_count > 0' "$T/status.json" >/dev/null; } ||
  { cat "$T/status.json"; fail "ETSI status at KME_A for SAE_E1: HTTP $code"; }
ok "ETSI status at KME_A for SAE_E1: $(jq .stored_key_count "$T/status.json") keys reachable by relay"

# ETSI 014 from end to end, both directions; each key is fetched once.
once() { # KME SAE MASTER: dec_keys of the last fetched key again finds nothing
  local code
  code=$(etsi_dec "$N" "$1" "$2" "$3" "$ids")
  { [ "$code" != 200 ] && [ "$(jq -r '.keys[0].key // empty' "$T/dec.json")" = "" ]; } ||
    fail "a relayed key was fetched twice at $1 (HTTP $code)"
}
relay_pair() { # KME_M SAE_M KME_S SAE_S NUMBER: keys made at KME_M, fetched at KME_S
  local code
  code=$(etsi_enc "$N" "$1" "$2" "$4" "{\"number\":$5,\"size\":256}")
  [ "$code" = 200 ] || { cat "$T/enc.json"; fail "enc_keys at $1 for $4: HTTP $code"; }
  ids=$(jq -c '[.keys[] | {key_ID}]' "$T/enc.json")
  jq -r '.keys[].key' "$T/enc.json" >>"$T/keys.txt"
  [ "$(jq length <<<"$ids")" = "$5" ] || fail "enc_keys at $1: $(jq length <<<"$ids") keys, not $5"
  code=$(etsi_dec "$N" "$3" "$4" "$2" "$ids")
  [ "$code" = 200 ] || { cat "$T/dec.json"; fail "dec_keys at $3: HTTP $code"; }
  [ "$(jq -c '[.keys[] | [.key_ID, .key]]' "$T/enc.json")" = "$(jq -c '[.keys[] | [.key_ID, .key]]' "$T/dec.json")" ] ||
    fail "dec_keys at $3 returned other keys than enc_keys at $1"
  once "$3" "$4" "$2"
}
relay_pair KME_A SAE_A1 KME_E SAE_E1 1
relay_pair KME_A SAE_A2 KME_E SAE_E2 3
relay_pair KME_E SAE_E1 KME_A SAE_A1 2
relay_pair KME_B SAE_B1 KME_D SAE_D1 1
ok "ETSI 014 keys relayed over 4 (and 2) hops: the same bytes at both ends, fetched once"
# The KMEs log the path of each relayed request, never key bytes.
grep -q 'path KME_A>KME_B>KME_C>KME_D>KME_E: committed' "$T/$N/KME_A/kmed.log" ||
  fail "KME_A's log does not name the path of its relayed requests"
while read -r key; do
  hex=$(base64 -d <<<"$key" | od -An -tx1 | tr -d ' \n')
  [ ${#hex} = 64 ] || fail "a relayed key of ${#hex} hex digits"
  ! grep -qiF -e "$key" -e "$hex" "$T/$N"/KME_*/kmed.log || fail "a relayed key's bytes are in a KME's log"
done <"$T/keys.txt"

# SKIP: a key for the far KME (remoteSystemID KME_E), fetched by ID there.
a=$("$QKD" skip key KME_E --lab "$T/$N" --kme KME_A --skip-client SKIP_KME_A) || fail "SKIP key at KME_A for KME_E"
b=$("$QKD" skip key-by-id "${a%% *}" KME_A --lab "$T/$N" --kme KME_E --skip-client SKIP_KME_E) ||
  fail "SKIP key by ID at KME_E"
[ "${a#* }" = "${b#* }" ] || fail "SKIP: different bytes at KME_A and KME_E"
"$QKD" skip key-by-id "${a%% *}" KME_A --lab "$T/$N" --kme KME_E --skip-client SKIP_KME_E >/dev/null 2>&1 &&
  fail "SKIP: a relayed key was fetched twice"
ok "SKIP key relayed from KME_A to KME_E (the same bytes, once)"

# Accounting: with the simulator's deliveries held back, the pool of each link falls at its
# sending end by exactly (L + 32) bytes per relayed request: 3 requests of one 256-bit key and
# one of two, L = 32 and 64: 3 x 64 + 96 = 288 bytes on each of the 4 links.
freeze_pools "$N" "${LINKS[@]}"
declare -A P0 R0
relay_bytes() { kme_metric "$N" "$1" qkd_relay_bytes_total "link=\"$2\"" | awk '{ printf "%d\n", $1 }'; }
for ((i = 0; i < 4; i++)); do
  k=KME_${LINKS[i]:4:1}
  P0[$i]=$(pool_bytes "$N" "$k" "${LINKS[i]}")
  R0[$i]=$(relay_bytes "$k" "${LINKS[i]}")
done
for s in 1 1 1 2; do
  code=$(etsi_enc "$N" KME_A SAE_A1 SAE_E1 "{\"number\":$s,\"size\":256}")
  [ "$code" = 200 ] || { cat "$T/enc.json"; fail "enc_keys with the pools held: HTTP $code"; }
done
for ((i = 0; i < 4; i++)); do
  k=KME_${LINKS[i]:4:1}
  p=$(pool_bytes "$N" "$k" "${LINKS[i]}")
  [ $((P0[$i] - p)) = 288 ] ||
    fail "the pool of ${LINKS[i]} at $k fell by $((P0[$i] - p)) bytes, not 288 (${P0[$i]} -> $p)"
  r=$(relay_bytes "$k" "${LINKS[i]}")
  [ $((r - R0[$i])) = 288 ] ||
    fail "qkd_relay_bytes_total{link=\"${LINKS[i]}\"} at $k rose by $((r - R0[$i])), not 288"
done
thaw_pools "$N" "${LINKS[@]}"
ok "each link's pool fell at its sending end by exactly 288 bytes (4 requests x (L + 32)), as qkd_relay_bytes_total counts"

# An unreachable slave KME (stopped): the SAE gets a 503 with a message, within the relay's
# deadline (kmed.conf [relay] timeout, 5 s by default).
E=$(kme_field "$N" KME_E pid)
kill -STOP "$E"
t0=$(date +%s)
code=$(etsi_enc "$N" KME_A SAE_A1 SAE_E1 '{"number":1,"size":256}')
t1=$(date +%s)
kill -CONT "$E"
[ "$code" = 503 ] || { cat "$T/enc.json"; fail "enc_keys for an SAE of a stopped KME: HTTP $code, not 503"; }
[ -n "$(jq -r '.message // empty' "$T/enc.json")" ] || { cat "$T/enc.json"; fail "503 without a message"; }
[ $((t1 - t0)) -le 15 ] || fail "the 503 took $((t1 - t0)) s"
ok "a slave KME that does not answer: 503 ($(jq -r .message "$T/enc.json")) in $((t1 - t0)) s"

pids=$(lab_pids "$N")
"$LAB" down --dir "$T/$N" >/dev/null || fail "qkd-lab down"
for p in $pids; do pid_running "$p" && fail "process $p still runs after qkd-lab down"; done
no_san_reports "$N"
ok "qkd-lab down: no process left"
echo PASS

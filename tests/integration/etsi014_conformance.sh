#!/usr/bin/env bash
# etsi014_conformance.sh - ETSI GS QKD 014 V1.1.1 conformance of qkd-kmed (GitHub issue 3),
# every rule checked by status code and body: Status (eleven fields, limits from the config,
# stored_key_count per pair), enc_keys/dec_keys GET and POST, key format, order, one-time
# delivery, 401 rules, multicast (remote and same-KME), same-KME pairs without the link,
# peer KME down (served from the lease, then 503 with nothing consumed; the keys served
# meanwhile fetched after the restart), max_key_count quota, input hardening, certificate
# identity (CA, [sae] fingerprint binding), only 400/401/503 errors with JSON bodies.
# Two KMEs and a feeder on 127.0.0.1; SAE_A1 (master), SAE_B1 (slave), SAE_B2 (additional
# slave), SAE_X (registered nowhere); SAE_A2/SAE_A3 at KME_A for the same-KME cases.
set -u
export PAIR_KEYS_EXTRA="min_size = 64
max_size = 4096
max_key_count = 40
max_sae_id_count = 2"
. "$(dirname "$0")/../lib/etsi_pair.sh"
qk_need_cmd jq

pair_init
P=$T/pki
# Extra SAEs at KME_A: SAE_A3 (same-KME multicast), SAE_A4 bound to its own certificate,
# SAE_A5 bound to another certificate's fingerprint; an SAE_A1 look-alike from a foreign CA.
for n in SAE_A3 SAE_A4 SAE_A5; do pki_client "$P" ca "$n" >/dev/null || fail "pki_client $n"; done
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'; }
cat >>"$T/kme_A.conf" <<EOF

[sae SAE_A3]
kme = KME_A

[sae SAE_A4]
kme = KME_A
fingerprint = $(fp "$P/SAE_A4.crt")

[sae SAE_A5]
kme = KME_A
fingerprint = $(fp "$P/SAE_X.crt")

[hot_path]
lease_bytes = 1024
lease_low_water = 0
lease_demand = 0
EOF
mkdir -p "$T/rogue"
pki_ca "$T/rogue" rca >/dev/null && pki_client "$T/rogue" rca SAE_A1 >/dev/null || fail "rogue PKI"

pair_start A
pair_start B
pair_feed --blocks 4 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A 200000 || fail "pool of KME_A did not fill"
wait_pool B 200000 || fail "pool of KME_B did not fill"
ok "two KMEs fed on loopback"

SEEN_CODES=" "
# call SAE KME METHOD PATH [BODY [CONTENT-TYPE]] -> BODY_OUT, CODE
call() {
  local sae=$1 kme=$2 method=$3 path=$4 body=${5-} ctype=${6-application/json} out
  if [ "$method" = POST ]; then
    if [ -n "$ctype" ]; then
      out=$(sae_curl "$sae" "$kme" "$path" -X POST -H "Content-Type: $ctype" --data-binary "$body")
    else
      out=$(sae_curl "$sae" "$kme" "$path" -X POST --data-binary "$body")
    fi
  else
    out=$(sae_curl "$sae" "$kme" "$path" -X "$method")
  fi
  CURL_RC=$?
  LAST_KME=$kme
  CODE=$(printf '%s' "$out" | tail -n 1 | sed 's/^HTTP //')
  BODY_OUT=$(printf '%s' "$out" | sed '$d')
  case $SEEN_CODES in *" $CODE "*) ;; *) SEEN_CODES="$SEEN_CODES$CODE " ;; esac
}
jqb() { printf '%s' "$BODY_OUT" | jq -r "$@"; }
# alive A|B WHAT: after a refusal the KME still runs and answers a valid request with 200 (the
# Status of its same-KME pair, which needs no link and consumes no key), so that a daemon that
# crashed on the refusal cannot pass the refusal check. Leaves CODE and BODY_OUT alone.
alive() {
  local kme=$1 what=$2 out master slave
  if [ "$kme" = A ]; then master=SAE_A1 slave=SAE_A2; else master=SAE_B1 slave=SAE_B2; fi
  kill -0 "${PID[$kme]}" 2>/dev/null || fail "after $what: KME_$kme has exited"
  out=$(sae_curl "$master" "$kme" "/api/v1/keys/$slave/status")
  [ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] ||
    fail "after $what: KME_$kme does not answer a valid request: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
}
expect() { # CODE DESCRIPTION: status, and for errors a JSON {"message": string} without details
  [ "$CODE" = "$1" ] || fail "$2: expected HTTP $1, got $CODE (curl exit $CURL_RC): ${BODY_OUT:0:300}"
  if [ "$1" != 200 ]; then
    printf '%s' "$BODY_OUT" | jq -e '(.message|type) == "string" and (.message|length) > 0' >/dev/null ||
      fail "$2: error body is not {\"message\": ...}: $BODY_OUT"
    [ "${ALLOW_DETAILS:-0}" = 1 ] || printf '%s' "$BODY_OUT" | jq -e 'has("details")|not' >/dev/null ||
      fail "$2: unexpected details: $BODY_OUT"
    alive "$LAST_KME" "$2 (HTTP $1)"
  fi
}
expect_msg() { # CODE MESSAGE DESCRIPTION
  expect "$1" "$3"
  [ "$(jqb .message)" = "$2" ] || fail "$3: expected message '$2', got '$(jqb .message)'"
}
UUID4='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
B64='^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$'
# check_keys N BYTES: a Key container of N keys of BYTES bytes, canonical v4 IDs, padded base64
check_keys() {
  [ "$(jqb '.keys|length')" = "$1" ] || fail "expected $1 keys: $BODY_OUT"
  local i id k
  for ((i = 0; i < $1; i++)); do
    id=$(jqb ".keys[$i].key_ID"); k=$(jqb ".keys[$i].key")
    [[ $id =~ $UUID4 ]] || fail "key_ID $id is not a lower-case canonical UUID v4"
    [[ $k =~ $B64 ]] || fail "key $i is not standard padded base64"
    [ "$(printf '%s' "$k" | base64 -d | wc -c)" = "$2" ] || fail "key $i is not $2 bytes"
  done
  [ "$(jqb '[.keys[].key_ID]|unique|length')" = "$1" ] || fail "duplicate key IDs: $BODY_OUT"
}
ids_body() { jq -c "{key_IDs: [$1 | {key_ID}]}"; } # jq path over a container -> Key IDs body
metric() { admin_metric "$1" qkd_keys "state=\"$2\""; }
stored_is() { # SAE KME SLAVE N: Status stored_key_count of the pair is N
  call "$1" "$2" GET "/api/v1/keys/$3/status"
  expect 200 "status $1->$3"
  [ "$(jqb .stored_key_count)" = "$4" ] || fail "stored_key_count of $1->$3: want $4: $BODY_OUT"
}

# ---------------------------------------------------------------- Status
call SAE_A1 A GET /api/v1/keys/SAE_B1/status
expect 200 "status"
[ "$(jqb 'keys_unsorted|sort|join(",")')" = \
  "key_size,master_SAE_ID,max_SAE_ID_count,max_key_count,max_key_per_request,max_key_size,min_key_size,slave_SAE_ID,source_KME_ID,stored_key_count,target_KME_ID" ] ||
  fail "status fields: $BODY_OUT"
[ "$(jqb '[.source_KME_ID,.target_KME_ID,.master_SAE_ID,.slave_SAE_ID]|join(" ")')" = "KME_A KME_B SAE_A1 SAE_B1" ] ||
  fail "status IDs: $BODY_OUT"
[ "$(jqb '[.key_size,.max_key_count,.max_key_per_request,.max_key_size,.min_key_size,.max_SAE_ID_count]|map(tostring)|join(" ")')" = \
  "256 40 128 4096 64 2" ] || fail "status limits are not the configured ones: $BODY_OUT"
jqb '[.key_size,.stored_key_count,.max_key_count,.max_key_per_request,.max_key_size,.min_key_size,.max_SAE_ID_count]|all(type=="number" and . == floor)' |
  grep -qx true || fail "status integers: $BODY_OUT"
S=$(jqb .stored_key_count)
[ "$S" -ge 1 ] && [ "$S" -le 40 ] || fail "remote stored_key_count $S not in [1, max_key_count]"
call SAE_A1 A GET /api/v1/keys/SAE_A2/status
expect 200 "status of a same-KME pair"
[ "$(jqb '[.target_KME_ID,.stored_key_count]|map(tostring)|join(" ")')" = "KME_A 40" ] || fail "local status: $BODY_OUT"
call SAE_B2 B GET /api/v1/keys/SAE_A1/status
expect 200 "status at KME_B"
[ "$(jqb '[.source_KME_ID,.target_KME_ID,.master_SAE_ID,.slave_SAE_ID]|join(" ")')" = "KME_B KME_A SAE_B2 SAE_A1" ] ||
  fail "status at B: $BODY_OUT"
call SAE_A1 A GET /api/v1/keys/SAE_A1/status
expect 400 "status for the caller itself"
call SAE_A1 A GET /api/v1/keys/NOBODY/status
expect 400 "status for an unknown slave"
call SAE_A1 A POST /api/v1/keys/SAE_B1/status '{}'
expect 400 "POST status"
ok "Status: eleven fields, configured limits, master = caller, stored_key_count in [1, max_key_count]"

# ---------------------------------------------------------------- enc_keys / dec_keys
call SAE_A1 A GET /api/v1/keys/SAE_B1/enc_keys
expect 200 "default enc_keys"
check_keys 1 32
D1=$BODY_OUT
call SAE_A1 A GET "/api/v1/keys/SAE_B1/enc_keys?number=5&size=1024"
expect 200 "enc_keys number=5&size=1024"
check_keys 5 128
E5=$BODY_OUT
ok "enc_keys GET: default = one key of key_size bits; number=5&size=1024 = five 128-byte keys"

REV=$(printf '%s' "$E5" | ids_body '(.keys|reverse|.[])')
call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$REV"
expect 200 "dec_keys POST (reverse order)"
[ "$(jqb -c '[.keys[]|[.key_ID,.key]]')" = "$(printf '%s' "$E5" | jq -c '[.keys|reverse|.[]|[.key_ID,.key]]')" ] ||
  fail "dec_keys did not return the same keys in the order asked"
call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$REV"
expect_msg 400 "one or more keys specified are not found on KME" "second dec_keys POST"
ID=$(printf '%s' "$D1" | jq -r '.keys[0].key_ID')
call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=$ID"
expect 200 "dec_keys GET"
[ "$(jqb -c .keys)" = "$(printf '%s' "$D1" | jq -c .keys)" ] || fail "dec_keys GET: other bytes"
call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=$ID"
expect_msg 400 "one or more keys specified are not found on KME" "second dec_keys GET"
ok "dec_keys at the other KME: identical bytes, in the order asked, once"

# POST enc_keys: any Content-Type, empty body = {}, unknown members ignored
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '{"number":2,"size":512,"zzz":{"a":[1]},"extension_optional":[{"abc_x":1}]}' text/plain
expect 200 "POST with text/plain"; check_keys 2 64
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '{"number":3}' ''
expect 200 "POST with curl's form Content-Type"; check_keys 3 32
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '' ''
expect 200 "POST with an empty body"; check_keys 1 32
ok "POST enc_keys: any Content-Type, empty body, unknown members and extension_optional ignored"

# ---------------------------------------------------------------- 401 rules
call SAE_A1 A GET "/api/v1/keys/SAE_B1/enc_keys?number=2"
expect 200 "enc for the 401 checks"
K2=$BODY_OUT
call SAE_B2 B POST /api/v1/keys/SAE_A1/dec_keys "$(printf '%s' "$K2" | ids_body '.keys[]')"
expect 401 "dec_keys by an SAE not named for the keys"
call SAE_X B POST /api/v1/keys/SAE_A1/dec_keys "$(printf '%s' "$K2" | ids_body '.keys[]')"
expect 401 "dec_keys by an SAE registered nowhere"
call SAE_X A GET /api/v1/keys/SAE_B1/enc_keys
expect 401 "enc_keys by an SAE registered nowhere"
call SAE_A1 B GET /api/v1/keys/SAE_B1/status
expect 401 "an SAE registered at another KME"
# a request mixing a good key with an unknown one fails whole and consumes nothing
MIX=$(printf '%s' "$K2" | jq -c '{key_IDs: [{key_ID: .keys[0].key_ID}, {key_ID: "00000000-0000-4000-8000-000000000000"}]}')
call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$MIX"
expect_msg 400 "one or more keys specified are not found on KME" "a known and an unknown key"
call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$(printf '%s' "$K2" | ids_body '.keys[]')"
expect 200 "the slave fetches after the refused attempts"
[ "$(jqb -c .keys)" = "$(printf '%s' "$K2" | jq -c .keys)" ] || fail "keys changed after refused attempts"
ok "401 for callers not named for a key or not registered here; failed requests consume nothing"

# ---------------------------------------------------------------- multicast
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '{"number":2,"size":256,"additional_slave_SAE_IDs":["SAE_B2"]}'
expect 200 "multicast enc_keys"; check_keys 2 32
MC=$BODY_OUT
MCB=$(printf '%s' "$MC" | ids_body '.keys[]')
call SAE_B2 B POST /api/v1/keys/SAE_A1/dec_keys "$MCB"
expect 200 "additional slave fetches first"
[ "$(jqb -c .keys)" = "$(printf '%s' "$MC" | jq -c .keys)" ] || fail "multicast: B2 got other bytes"
call SAE_B2 B POST /api/v1/keys/SAE_A1/dec_keys "$MCB"
expect_msg 400 "one or more keys specified are not found on KME" "additional slave fetches twice"
call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$MCB"
expect 200 "slave fetches its own copy"
[ "$(jqb -c .keys)" = "$(printf '%s' "$MC" | jq -c .keys)" ] || fail "multicast: B1 got other bytes"
call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$MCB"
expect_msg 400 "one or more keys specified are not found on KME" "slave fetches twice"
call SAE_A1 A POST /api/v1/keys/SAE_A2/enc_keys '{"additional_slave_SAE_IDs":["SAE_A3"]}'
expect 200 "same-KME multicast"; check_keys 1 32
LM=$BODY_OUT
for s in SAE_A3 SAE_A2; do
  call "$s" A GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=$(printf '%s' "$LM" | jq -r '.keys[0].key_ID')"
  expect 200 "same-KME multicast fetch by $s"
  [ "$(jqb -c .keys)" = "$(printf '%s' "$LM" | jq -c .keys)" ] || fail "same-KME multicast: $s got other bytes"
done
# Slaves at two KMEs (issue 14, docs/adr/0004-key-relay.md "Multicast"): the same key is stored
# for SAE_A2 here and relayed to KME_B for SAE_B1; each fetches the same bytes, once.
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '{"additional_slave_SAE_IDs":["SAE_A2"]}'
expect 200 "multicast to slaves at two KMEs"; check_keys 1 32
XM=$BODY_OUT
XB=$(printf '%s' "$XM" | ids_body '.keys[]')
for who in "SAE_B1 B" "SAE_A2 A"; do
  read -r s k <<<"$who"
  call "$s" "$k" POST /api/v1/keys/SAE_A1/dec_keys "$XB"
  expect 200 "multicast across KMEs: $s fetches"
  [ "$(jqb -c .keys)" = "$(printf '%s' "$XM" | jq -c .keys)" ] || fail "multicast across KMEs: $s got other bytes"
  call "$s" "$k" POST /api/v1/keys/SAE_A1/dec_keys "$XB"
  expect_msg 400 "one or more keys specified are not found on KME" "multicast across KMEs: $s fetches twice"
done
for b in '{"additional_slave_SAE_IDs":["SAE_B2","SAE_A2","SAE_A3"]}' \
  '{"additional_slave_SAE_IDs":["SAE_X"]}' '{"additional_slave_SAE_IDs":[]}' '{"additional_slave_SAE_IDs":[""]}' \
  '{"additional_slave_SAE_IDs":[" "]}' '{"additional_slave_SAE_IDs":["SAE_B2","SAE_B2"]}' \
  '{"additional_slave_SAE_IDs":["SAE_B1"]}' '{"additional_slave_SAE_IDs":["SAE_A1"]}' \
  '{"additional_slave_SAE_IDs":"SAE_B2"}' '{"additional_slave_SAE_IDs":[7]}'; do
  call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys "$b"
  expect 400 "multicast $b"
done
ok "multicast: each slave fetches the same bytes once, independently (remote, same KME, both); bad lists 400"

# ---------------------------------------------------------------- max_key_count (same-KME pair)
stored_is SAE_A1 A SAE_A3 40
call SAE_A1 A GET "/api/v1/keys/SAE_A3/enc_keys?number=30"
expect 200 "30 keys for SAE_A3"
Q=$BODY_OUT
stored_is SAE_A1 A SAE_A3 10
call SAE_A1 A GET "/api/v1/keys/SAE_A3/enc_keys?number=11"
expect 503 "beyond max_key_count"
case $(jqb .message) in max_key_count*) ;; *) fail "quota message: $BODY_OUT" ;; esac
call SAE_A1 A GET "/api/v1/keys/SAE_A3/enc_keys?number=10"
expect 200 "up to max_key_count"
stored_is SAE_A1 A SAE_A3 0
call SAE_A1 A GET "/api/v1/keys/SAE_A3/enc_keys"
expect 503 "at max_key_count"
call SAE_A3 A POST /api/v1/keys/SAE_A1/dec_keys "$(printf '%s' "$Q" | ids_body '.keys[0:5][]')"
expect 200 "the slave fetches 5"
stored_is SAE_A1 A SAE_A3 5
ok "max_key_count: enc_keys answers 503 once a pair holds max_key_count unfetched keys; stored_key_count <= max_key_count"

# ---------------------------------------------------------------- max_key_count (slave at the peer)
# The peer KME holds the unfetched keys of a remote pair; the master's KME admits a request
# against the count the peer reported (plus the keys on their way) and answers 503 above it.
call SAE_A2 A GET "/api/v1/keys/SAE_B2/enc_keys?number=30"
expect 200 "30 keys for SAE_B2 (slave at the peer)"
R=$BODY_OUT
call SAE_A2 A GET "/api/v1/keys/SAE_B2/enc_keys?number=11"
expect 503 "remote pair beyond max_key_count"
call SAE_A2 A GET "/api/v1/keys/SAE_B2/enc_keys?number=10"
expect 200 "remote pair up to max_key_count"
call SAE_A2 A GET "/api/v1/keys/SAE_B2/enc_keys"
expect 503 "remote pair at max_key_count"
call SAE_B2 B POST /api/v1/keys/SAE_A2/dec_keys "$(printf '%s' "$R" | ids_body '.keys[0:5][]')"
expect 200 "the remote slave fetches 5"
call SAE_A2 A GET "/api/v1/keys/SAE_B2/enc_keys?number=5"
expect 200 "room again for 5 after the slave fetched 5"
call SAE_A2 A GET "/api/v1/keys/SAE_B2/enc_keys"
expect 503 "remote pair full again"
ok "max_key_count for a slave at the peer KME: from the peer's count, enc_keys answers 503"

# ---------------------------------------------------------------- peer KME down
# KME_A serves from the range KME_B granted it ahead of demand (a lease: [hot_path] lease_bytes
# = 1024 at KME_A here, no lease ahead and no lease sized by demand) and tells KME_B later: with
# KME_B down, enc_keys answers 200 while the lease lasts (at most two 512-byte keys), then 503 with nothing delivered; once
# KME_B is back, its slave fetches every key KME_A delivered meanwhile, once.
DEL_A=$(metric A delivered)
pair_stop B
served=0 DOWN=()
for i in 1 2 3 4; do
  call SAE_A1 A GET "/api/v1/keys/SAE_B1/enc_keys?size=4096"
  [ "$CODE" = 200 ] || break
  check_keys 1 512
  DOWN+=("$BODY_OUT")
  served=$((served + 1))
done
expect 503 "peer KME down and the lease used up"
case $(jqb .message) in *max_key_count*) fail "503 for the quota, not the peer: $BODY_OUT" ;; esac
[ "$served" -le 2 ] || fail "KME_A served $served 4096-bit keys from a 1024-byte lease"
[ "$(metric A delivered)" = $((DEL_A + served)) ] || fail "the 503 delivered keys at KME_A"
call SAE_A1 A GET "/api/v1/keys/SAE_A2/enc_keys?number=2"
expect 200 "same-KME pair while the link is down"; check_keys 2 32
LP=$BODY_OUT
call SAE_A2 A POST /api/v1/keys/SAE_A1/dec_keys "$(printf '%s' "$LP" | ids_body '.keys[]')"
expect 200 "same-KME fetch while the link is down"
[ "$(jqb -c .keys)" = "$(printf '%s' "$LP" | jq -c .keys)" ] || fail "same-KME pair: other bytes"
pair_start B
for c in ${DOWN[@]+"${DOWN[@]}"}; do
  # the notice reaches KME_B within the notifier's backoff (at most 5 s); dec_keys waits 2 s
  for i in 1 2 3 4; do
    call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$(printf '%s' "$c" | ids_body '.keys[]')"
    [ "$CODE" = 200 ] && break
  done
  expect 200 "dec_keys of a key KME_A served while KME_B was down"
  [ "$(jqb -c .keys)" = "$(printf '%s' "$c" | jq -c .keys)" ] || fail "keys served while KME_B was down: other bytes at KME_B"
  call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$(printf '%s' "$c" | ids_body '.keys[]')"
  expect 400 "the second dec_keys of a key served while KME_B was down"
done
for i in 1 2 3 4 5 6 7 8 9 10; do
  call SAE_A1 A GET /api/v1/keys/SAE_B1/enc_keys
  [ "$CODE" = 200 ] && break
  sleep 0.5
done
expect 200 "enc_keys once the peer is back"
call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=$(jqb '.keys[0].key_ID')"
expect 200 "dec_keys once the peer is back"
ok "peer KME down: served from the lease ($served key(s)), then 503 with nothing delivered; every key served meanwhile fetched once after the restart; same-KME pairs need no link"

# ---------------------------------------------------------------- input hardening
call SAE_A1 A GET /api/v1/keys/SAE%5FB1/status
expect 200 "percent-encoded slave ID"
[ "$(jqb .slave_SAE_ID)" = SAE_B1 ] || fail "percent-decoding: $BODY_OUT"
for p in /api/v1/keys/%20/enc_keys /api/v1/keys/%20/dec_keys?key_ID=$ID /api/v1/keys/%20/status \
  /api/v1/keys/SAE%2FB1/status /api/v1/keys/SAE_A1/enc_keys /api/v1/keys/SAE_B1/other /api/v1/keys/SAE_B1 \
  /api/v2/keys/SAE_B1/status /; do
  call SAE_A1 A GET "$p"
  expect 400 "GET $p"
done
for q in number=0 number=-8 number=abc01 number=129 number=99999999999 number= number=1.5 size=0 size=-8 \
  size=abc01 size=56 size=4104 size=12 "number=1&number=1" "size=256&size=256"; do
  call SAE_A1 A GET "/api/v1/keys/SAE_B1/enc_keys?$q"
  expect 400 "enc_keys ?$q"
done
call SAE_A1 A GET "/api/v1/keys/SAE_B1/enc_keys?size=12"
expect_msg 400 "size shall be a multiple of 8" "size 12"
for b in '{"number":0}' '{"number":-8}' '{"number":"abc01"}' '{"number":"5"}' '{"number":1.5}' '{"number":129}' \
  '{"size":0}' '{"size":-8}' '{"size":"abc01"}' '{"size":4104}' '{"size":null}' '{"number":true}' \
  '[]' '"x"' 'null' '{"number":' '{"number":1}}' 'number=1' '{"extension_optional":{}}'; do
  call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys "$b"
  expect 400 "enc_keys POST $b"
done
ALLOW_DETAILS=1 call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '{"extension_mandatory":[{"abc_route_type":"direct"}]}'
ALLOW_DETAILS=1 expect_msg 400 "not all extension_mandatory parameters are supported" "extension_mandatory"
jqb '.details|type=="array" and length==1 and (.[0]|type=="object") and (.[0].extension_mandatory_unsupported|contains("abc_route_type"))' |
  grep -qx true || fail "extension details: $BODY_OUT"
head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big.json"
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys "$(cat "$T/big.json"){}"
expect 400 "a body above 64 KiB"
for b in '{}' '{"key_IDs":[]}' '{"key_IDs":{}}' '{"key_IDs":["'"$ID"'"]}' '{"key_IDs":[{"key_ID":"non-uuid"}]}' \
  '{"key_IDs":[{"key_ID":7}]}' '{"key_IDs":[{"key_ID":"'"$ID"'"},{"key_ID":"'"${ID^^}"'"}]}' '' '{"key_IDs":'; do
  call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$b"
  expect 400 "dec_keys POST $b"
done
for q in "" "key_ID=non-uuid" "key_ID=$ID&key_ID=$ID" "key_ID="; do
  call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys?$q"
  expect 400 "dec_keys GET ?$q"
done
call SAE_B1 B GET "/api/v1/keys/SAE_B1/dec_keys?key_ID=$ID"
expect 400 "dec_keys with the caller as master"
for m in PUT DELETE PATCH; do
  call SAE_A1 A "$m" /api/v1/keys/SAE_B1/enc_keys
  expect 400 "$m enc_keys"
done
ok "input hardening: path decoding, blank/self IDs, numbers, sizes, types, repeats, body limit, routes, methods"

# ---------------------------------------------------------------- identity
call SAE_A4 A GET /api/v1/keys/SAE_B1/status
expect 200 "SAE bound to its own certificate fingerprint"
call SAE_A5 A GET /api/v1/keys/SAE_B1/status
expect 401 "SAE bound to another certificate's fingerprint"
code=$(curl -s --max-time 10 --cacert "$P/ca.crt" -o /dev/null -w '%{http_code}' "$(etsi_url A)/api/v1/keys/SAE_B1/status")
[ "$code" = 000 ] || fail "no client certificate: HTTP $code"
alive A "a client without a certificate refused"
code=$(curl -s --max-time 10 --cacert "$P/ca.crt" --cert "$T/rogue/SAE_A1.crt" --key "$T/rogue/SAE_A1.key" \
  -o /dev/null -w '%{http_code}' "$(etsi_url A)/api/v1/keys/SAE_B1/status")
[ "$code" = 000 ] || fail "a certificate from another CA: HTTP $code"
alive A "a certificate from another CA refused"
ok "identity: no certificate or a foreign CA never reaches HTTP; the [sae] fingerprint binding is enforced"

# ---------------------------------------------------------------- global rules
for c in $SEEN_CODES; do
  case $c in 200 | 400 | 401 | 503) ;; *) fail "an answer had HTTP $c (only 200, 400, 401, 503 allowed)" ;; esac
done
for k in $(printf '%s' "$E5" | jq -r '.keys[].key'); do
  if grep -qF -- "$k" "$T/kme_A.log" "$T/kme_B.log"; then fail "key bytes in a log"; fi
done
ok "only 200/400/401/503 seen ($SEEN_CODES); no key bytes in the logs"
echo "etsi014_conformance: all checks passed"

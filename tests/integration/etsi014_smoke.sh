#!/usr/bin/env bash
# etsi014_smoke.sh - ETSI GS QKD 014 over two qkd-kmed: status fields, enc_keys GET/POST,
# dec_keys GET/POST, one-time delivery, 400/401 cases with spec messages, and a client without
# a certificate refused at the TLS handshake.
set -u
. "$(dirname "$0")/../lib/etsi_pair.sh"
qk_need_cmd jq

pair_init
pair_start A
pair_start B
pair_feed --blocks 4 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A 100000 || fail "pool of KME_A did not fill"
wait_pool B 100000 || fail "pool of KME_B did not fill"
ok "pools filled"

# call SAE KME METHOD PATH [BODY] -> sets BODY_OUT and CODE
call() {
  local sae=$1 kme=$2 method=$3 path=$4 body=${5-} out
  if [ -n "$body" ]; then
    out=$(sae_curl "$sae" "$kme" "$path" -X "$method" -H 'Content-Type: application/json' --data-binary "$body")
  elif [ "$method" = POST ]; then
    out=$(sae_curl "$sae" "$kme" "$path" -X POST --data-binary '')
  else
    out=$(sae_curl "$sae" "$kme" "$path" -X "$method")
  fi
  CODE=$(printf '%s' "$out" | tail -n 1 | sed 's/^HTTP //')
  BODY_OUT=$(printf '%s' "$out" | sed '$d')
}
expect() { # CODE DESCRIPTION
  [ "$CODE" = "$1" ] || fail "$2: expected HTTP $1, got $CODE: $BODY_OUT"
}
expect_msg() { # CODE MESSAGE DESCRIPTION
  expect "$1" "$3"
  local m
  m=$(printf '%s' "$BODY_OUT" | jq -r .message 2>/dev/null)
  [ "$m" = "$2" ] || fail "$3: expected message '$2', got '$m'"
}
keylen() { printf '%s' "$BODY_OUT" | jq -r ".keys[$1].key" | base64 -d | wc -c; }

# --- status
call SAE_A1 A GET /api/v1/keys/SAE_B1/status
expect 200 "status"
for f in source_KME_ID target_KME_ID master_SAE_ID slave_SAE_ID key_size stored_key_count \
  max_key_count max_key_per_request max_key_size min_key_size max_SAE_ID_count; do
  printf '%s' "$BODY_OUT" | jq -e "has(\"$f\")" >/dev/null || fail "status lacks $f: $BODY_OUT"
done
[ "$(printf '%s' "$BODY_OUT" | jq -r '[.source_KME_ID,.target_KME_ID,.master_SAE_ID,.slave_SAE_ID,.key_size,.max_key_per_request]|join(" ")')" = \
  "KME_A KME_B SAE_A1 SAE_B1 256 128" ] || fail "status values: $BODY_OUT"
ok "status has the eleven fields with the right values"
call SAE_A1 A GET /api/v1/keys/SAE_B%311/status   # percent-encoded path: SAE_B11 is unknown
expect 400 "status for an unknown slave"
call SAE_A1 A GET /api/v1/keys/SAE%5FB1/status
expect 200 "status with a percent-encoded slave ID"

# --- enc_keys GET (default) and dec_keys GET
call SAE_A1 A GET /api/v1/keys/SAE_B1/enc_keys
expect 200 "enc_keys GET default"
[ "$(printf '%s' "$BODY_OUT" | jq '.keys|length')" = 1 ] || fail "default enc_keys: not one key"
[ "$(keylen 0)" = 32 ] || fail "default key is not key_size/8 bytes"
ID1=$(printf '%s' "$BODY_OUT" | jq -r '.keys[0].key_ID')
K1=$(printf '%s' "$BODY_OUT" | jq -r '.keys[0].key')
[[ $ID1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] || fail "key_ID $ID1 is not a canonical UUID v4"
ok "enc_keys GET default: one 256-bit key"

call SAE_B2 B GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=$ID1"
expect 401 "dec_keys by an SAE that is not the key's slave"
call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=${ID1^^}"
expect 200 "dec_keys GET (upper-case key_ID)"
[ "$(printf '%s' "$BODY_OUT" | jq -r '.keys[0].key')" = "$K1" ] || fail "dec_keys returned other bytes"
ok "dec_keys GET: same key at the slave"
call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=$ID1"
expect_msg 400 "one or more keys specified are not found on KME" "second dec_keys"
ok "a key is delivered once"

# --- enc_keys GET with number/size, POST with body, dec_keys POST
call SAE_A1 A GET "/api/v1/keys/SAE_B1/enc_keys?number=3&size=512"
expect 200 "enc_keys GET number=3 size=512"
[ "$(printf '%s' "$BODY_OUT" | jq '.keys|length')" = 3 ] && [ "$(keylen 2)" = 64 ] || fail "GET number/size: $BODY_OUT"
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '{"number":2,"size":1024,"extension_optional":[{"abc_x":1}],"zzz":true}'
expect 200 "enc_keys POST"
[ "$(printf '%s' "$BODY_OUT" | jq '.keys|length')" = 2 ] && [ "$(keylen 1)" = 128 ] || fail "POST number/size: $BODY_OUT"
ENC=$BODY_OUT
REQ=$(printf '%s' "$ENC" | jq -c '{key_IDs: [.keys[] | {key_ID, master_SAE_ID: "ignored"}]}')
call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$REQ"
expect 200 "dec_keys POST"
[ "$(printf '%s' "$BODY_OUT" | jq -c '[.keys[]|[.key_ID,.key]]')" = "$(printf '%s' "$ENC" | jq -c '[.keys[]|[.key_ID,.key]]')" ] ||
  fail "dec_keys POST returned other keys"
call SAE_B1 B POST /api/v1/keys/SAE_A1/dec_keys "$REQ"
expect_msg 400 "one or more keys specified are not found on KME" "second dec_keys POST"
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys
expect 200 "enc_keys POST with an empty body"
[ "$(printf '%s' "$BODY_OUT" | jq '.keys|length')" = 1 ] || fail "empty POST body"
ok "enc_keys GET/POST with number and size; dec_keys POST; empty POST body = {}"

# --- 400 / 401 cases
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '{"size":12}'
expect_msg 400 "size shall be a multiple of 8" "size 12"
call SAE_A1 A GET "/api/v1/keys/SAE_B1/enc_keys?size=100"
expect_msg 400 "size shall be a multiple of 8" "size 100 in the query"
call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys '{"extension_mandatory":[{"abc_route_type":"direct"}]}'
expect_msg 400 "not all extension_mandatory parameters are supported" "extension_mandatory"
printf '%s' "$BODY_OUT" | jq -e '.details[0].extension_mandatory_unsupported' >/dev/null || fail "no details: $BODY_OUT"
for q in "number=0" "number=-8" "number=abc01" "number=129" "size=0" "size=-8" "size=abc01" "number=1&number=2"; do
  call SAE_A1 A GET "/api/v1/keys/SAE_B1/enc_keys?$q"
  expect 400 "enc_keys ?$q"
done
for b in '{"number":0}' '{"size":"abc01"}' '{"additional_slave_SAE_IDs":[]}' '{"additional_slave_SAE_IDs":[" "]}' \
  '{"additional_slave_SAE_IDs":["SAE_B2","SAE_B2"]}' '{"additional_slave_SAE_IDs":["SAE_B1"]}' \
  '{"additional_slave_SAE_IDs":["SAE_A1"]}' '[1]' '{"number":'; do
  call SAE_A1 A POST /api/v1/keys/SAE_B1/enc_keys "$b"
  expect 400 "enc_keys POST $b"
done
call SAE_A1 A GET /api/v1/keys/%20/enc_keys
expect 400 "blank SAE ID in the path"
call SAE_A1 A GET /api/v1/keys/SAE_A1/enc_keys
expect 400 "enc_keys for the caller itself"
call SAE_A1 A GET /api/v1/keys/NOBODY/enc_keys
expect 400 "enc_keys for an unknown slave"
call SAE_B1 B GET /api/v1/keys/SAE_B1/dec_keys?key_ID=$ID1
expect 400 "dec_keys with the caller as master"
call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=non-uuid"
expect 400 "dec_keys non-uuid"
call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys"
expect 400 "dec_keys without key_ID"
call SAE_B1 B GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=$ID1&key_ID=$ID1"
expect 400 "dec_keys with a repeated key_ID"
call SAE_A1 A DELETE /api/v1/keys/SAE_B1/enc_keys
expect 400 "DELETE enc_keys"
call SAE_A1 A GET /api/v1/keys/SAE_B1/other
expect 400 "unknown resource"
head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big.json"
out=$(sae_curl SAE_A1 A /api/v1/keys/SAE_B1/enc_keys -X POST --data-binary @"$T/big.json")
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 400" ] || fail "70 kB body: $out"
call SAE_X A GET /api/v1/keys/SAE_B1/status
expect 401 "an SAE registered nowhere"
printf '%s' "$BODY_OUT" | jq -e .message >/dev/null || fail "401 without a JSON message"
call SAE_B1 A GET /api/v1/keys/SAE_A1/status
expect 401 "an SAE registered at another KME"
ok "400/401 cases"

# --- local pair (both SAEs at KME_A)
call SAE_A1 A GET "/api/v1/keys/SAE_A2/enc_keys?number=2"
if [ "$CODE" = 200 ]; then
  LID=$(printf '%s' "$BODY_OUT" | jq -r '.keys[1].key_ID'); LK=$(printf '%s' "$BODY_OUT" | jq -r '.keys[1].key')
  call SAE_A2 A GET "/api/v1/keys/SAE_A1/dec_keys?key_ID=$LID"
  expect 200 "local dec_keys"
  [ "$(printf '%s' "$BODY_OUT" | jq -r '.keys[0].key')" = "$LK" ] || fail "local key differs"
  ok "local SAE pair at one KME"
else
  fail "local enc_keys: HTTP $CODE $BODY_OUT"
fi

# --- TLS: a client without a certificate never reaches HTTP
code=$(curl -s --max-time 10 --cacert "$T/pki/ca.crt" -o /dev/null -w '%{http_code}' "$(etsi_url A)/api/v1/keys/SAE_B1/status")
[ "$code" = 000 ] || fail "a client without a certificate got HTTP $code"
call SAE_A1 A GET /api/v1/keys/SAE_A2/status
expect 200 "status after the refused handshake (the KME still answers)"
ok "no client certificate: refused at the handshake"

# the request log: one line per request naming listener, method, path, caller, status and the
# key IDs delivered (both ends), refusals with their reason; never key bytes (base64 or hex).
reqline() { # KME REGEX WHAT
  grep -E "event=request listener=etsi014 $2" "$T/kme_$1.log" >/dev/null ||
    fail "KME_$1 log lacks the request line of $3: $(grep -c 'event=request' "$T/kme_$1.log") request lines"
}
reqline A "method=GET path=/api/v1/keys/SAE_B1/enc_keys id=SAE_A1 status=200 .*keys=$ID1( |$)" "the first enc_keys"
reqline B "method=GET path=/api/v1/keys/SAE_A1/dec_keys id=SAE_B1 status=200 .*keys=$ID1( |$)" "its dec_keys"
reqline B "method=GET path=/api/v1/keys/SAE_A1/dec_keys id=SAE_B2 status=401 .*detail=\"" "the refused dec_keys"
reqline A "method=POST path=/api/v1/keys/SAE_B1/enc_keys id=SAE_A1 status=400 .*detail=\"size shall be a multiple of 8\"" "size 12"
K1HEX=$(printf '%s' "$K1" | base64 -d | od -An -tx1 -v | tr -d ' \n')
[ ${#K1HEX} = 64 ] || fail "hex of the first key: $K1HEX"
for k in "$K1" "$K1HEX" $(printf '%s' "$ENC" | jq -r '.keys[].key'); do
  if grep -qiF -- "$k" "$T"/kme_?.log "$T"/kme_?.out; then fail "key bytes in a log: $k"; fi
done
ok "request lines (enc_keys, dec_keys, 401, 400) log key IDs and reasons, never key bytes"
echo "etsi014_smoke: all checks passed"

#!/usr/bin/env bash
# skip_conformance.sh - SKIP (draft-cisco-skip-02) against two qkd-kmed on loopback: every
# endpoint and status code (200/400/403/404/405/503), hex formats and lengths, default and
# explicit sizes, one-time retrieval, glob matching, loopback pair mode, the cross-KME round trip
# in both directions, failed requests consuming nothing, SKIP and ETSI 014 sharing one pool (the
# peer's by leases), the lease used up while the peer is down, and no key bytes in the logs. Clients use certificates here (skip_tls_matrix.sh covers the PSKs).
set -u
. "$(dirname "$0")/../lib/etsi_pair.sh"
qk_need_cmd jq

# A small max_key_count, so that the same-KME (loopback) quota is reached below.
PAIR_KEYS_EXTRA="max_key_count = 40"
pair_init
pair_skip_conf A psk-or-mtls "loopback_pair = true
algorithm = QKD-sim BB84"
pair_skip_conf B psk-or-mtls "entropy = false"
# Small leases at KME_A (no lease ahead), so that the peer-down case below uses its lease up.
printf '\n[hot_path]\nlease_bytes = 1024\nlease_low_water = 0\nlease_demand = 0\n' >>"$T/kme_A.conf"
pair_start A
pair_start B
[ -n "${PORT[A.skip]:-}" ] && [ -n "${PORT[B.skip]:-}" ] || fail "no skip port in the port files"

# call CLIENT KME PATH [curl args] -> BODY_OUT, CODE
call() {
  local out
  out=$(skip_curl "$@")
  CODE=$(printf '%s' "$out" | tail -n 1 | sed 's/^HTTP //')
  BODY_OUT=$(printf '%s' "$out" | sed '$d')
}
expect() { # CODE DESCRIPTION
  [ "$CODE" = "$1" ] || fail "$2: expected HTTP $1, got $CODE: $BODY_OUT"
  if [ "$1" != 200 ]; then
    printf '%s' "$BODY_OUT" | jq -e '.message | type == "string" and length > 0' >/dev/null ||
      fail "$2: error without a JSON message: $BODY_OUT"
  fi
}
field() { printf '%s' "$BODY_OUT" | jq -r ".$1"; }
pool() { echo $(($(admin_metric "$1" qkd_pool_bytes "link=\"$LINK\"") * 8)); } # bits
# Wait until the pool gauge of KME s stops moving (sync confirmations done).
pool_stable() {
  local s=$1 a b i
  for i in $(seq 1 50); do
    a=$(pool "$s"); sleep 0.3; b=$(pool "$s")
    [ "$a" = "$b" ] && return 0
  done
  return 1
}

# --- 503 before any key material exists
call skip_a A "/key?remoteSystemID=KME_B"
expect 503 "key with an empty pool"
ok "503 while the pool is empty"

pair_feed --blocks 4 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A 1000000 || fail "pool of KME_A did not fill"
wait_pool B 1000000 || fail "pool of KME_B did not fill"
pool_stable A && pool_stable B || fail "pools do not settle"
ok "pools filled"

# --- capabilities
call skip_a A /capabilities
expect 200 "capabilities at A"
[ "$(printf '%s' "$BODY_OUT" | jq -c '[.entropy, .key, .algorithm, .localSystemID, .remoteSystemID]')" = \
  '[true,true,"QKD-sim BB84","KME_A",["KME_[A-C]","KP_*_LOC1","KME_A"]]' ] || fail "capabilities at A: $BODY_OUT"
call skip_b B /capabilities
expect 200 "capabilities at B"
[ "$(printf '%s' "$BODY_OUT" | jq -c '[.entropy, .key, .algorithm, .localSystemID, .remoteSystemID]')" = \
  '[false,true,"QKD","KME_B",["KME_[A-C]","KP_*_LOC1"]]' ] || fail "capabilities at B: $BODY_OUT"
ok "capabilities: the five fields (remoteSystemID globs; loopback pair adds the node itself)"

# --- the cross-KME round trip, A -> B (default size; KME_B matched by the glob KME_[A-C])
call skip_a A "/key?remoteSystemID=KME_B"
expect 200 "key A->B"
KID=$(field keyId); KEY=$(field key)
[[ $KID =~ ^[0-9a-f]{32}$ ]] || fail "keyId is not 32 lower-case hex digits: $KID"
[[ $KEY =~ ^[0-9a-f]{64}$ ]] || fail "default key is not 64 lower-case hex digits (256 bits)"
[ "$(printf '%s' "$BODY_OUT" | jq -c 'keys')" = '["key","keyId"]' ] || fail "key answer members: $(printf '%s' "$BODY_OUT" | jq -c keys)"
call skip_b B "/key/${KID^^}?remoteSystemID=KME_A"
expect 200 "fetch at B (upper-case keyId)"
[ "$(field keyId)" = "$KID" ] && [ "$(field key)" = "$KEY" ] || fail "B returned other bytes or keyId"
call skip_b B "/key/$KID?remoteSystemID=KME_A"
expect 400 "second fetch at B"
ok "round trip A->B: same 256-bit key at both ends, keyId case-insensitive, one-time retrieval"
KEYS_SEEN=("$KEY")

# --- and B -> A, explicit size; the key is bound to (KME_B, KME_A)
call skip_b B "/key?remoteSystemID=KME_A&size=128"
expect 200 "key B->A size 128"
KID=$(field keyId); KEY=$(field key)
[[ $KEY =~ ^[0-9a-f]{32}$ ]] || fail "128-bit key is not 32 hex digits"
call skip_a A "/key/$KID?remoteSystemID=KME_A"
expect 400 "fetch at A naming the wrong source KME"
call skip_a A "/key/$KID?remoteSystemID=KME_B&remoteSystemID=KME_B"
expect 400 "repeated remoteSystemID"
call skip_a A "/key/$KID"
expect 400 "fetch without remoteSystemID"
call skip_a A "/key/$KID?remoteSystemID=KME_B"
expect 200 "fetch at A after the refusals (they consumed nothing)"
[ "$(field key)" = "$KEY" ] || fail "A returned other bytes"
ok "round trip B->A (128 bits); a wrong source KME is 400 and consumes nothing"

# --- explicit sizes: hex length = size/4
for sz in 128 192 256 136 512 8192; do
  call skip_a A "/key?remoteSystemID=KME_B&size=$sz"
  expect 200 "size $sz"
  k=$(field key)
  [ "${#k}" = $((sz / 4)) ] && [[ $k =~ ^[0-9a-f]+$ ]] || fail "size $sz: ${#k} hex digits"
  KID=$(field keyId)
  call skip_b B "/key/$KID?remoteSystemID=KME_A"
  expect 200 "fetch size $sz at B"
  [ "$(field key)" = "$k" ] || fail "size $sz: B returned other bytes"
  KEYS_SEEN+=("$k")
done
ok "sizes 128, 192, 256, 136, 512, 8192 bits: lower-case hex of size/4 digits, same at both ends"

# --- 400s that must consume nothing
pool_stable A; pool_stable B
A1=$(pool A); B1=$(pool B)
for q in "size=0" "size=-8" "size=12" "size=100" "size=abc" "size=" "size=%2B8" "size=8200" "size=99999999" \
  "size=56" "size=128&size=256"; do
  call skip_a A "/key?remoteSystemID=KME_B&$q"
  expect 400 "key ?$q"
done
for r in "" "remoteSystemID=" "remoteSystemID=KME_D" "remoteSystemID=KME_C" "remoteSystemID=KP_X_LOC1" \
  "remoteSystemID=KME%20B" "remoteSystemID=KME_*" "remoteSystemID=kme_b" "remoteSystemID=KME_B&remoteSystemID=KME_B"; do
  call skip_a A "/key?$r"
  expect 400 "key ?$r"
done
call skip_b B "/key?remoteSystemID=KME_B"
expect 400 "own ID at B (loopback pair mode off)"
for id in "" "zz000000000000000000000000000000" "0123456789abcdef0123456789abcdeg" \
  "$(printf 'a%.0s' $(seq 1 130))" "0123456789abcdef0123456789abcdef" \
  "1726e9AE76234FB1dd1283d4dca1911e1f93864d70f3069e" "01234567-89ab-cdef-0123-456789abcdef"; do
  call skip_b B "/key/$id?remoteSystemID=KME_A"
  expect 400 "keyId '$id'"
done
pool_stable A; pool_stable B
[ "$(pool A)" = "$A1" ] && [ "$(pool B)" = "$B1" ] || fail "refused requests consumed key material: A $A1 -> $(pool A), B $B1 -> $(pool B)"
ok "400: bad sizes, missing/unknown/unlinked/malformed/repeated remoteSystemID, malformed and unknown keyIds; nothing consumed"

# --- loopback pair mode (A only): a key shared with itself, from the local pool
call skip_a A "/key?remoteSystemID=KME_A&size=192"
expect 200 "loopback key"
KID=$(field keyId); KEY=$(field key)
call skip_a A "/key/$KID?remoteSystemID=KME_B"
expect 400 "loopback key fetched naming KME_B"
call skip_a A "/key/$KID?remoteSystemID=KME_A"
expect 200 "loopback key fetched"
[ "$(field key)" = "$KEY" ] && [ "${#KEY}" = 48 ] || fail "loopback key differs"
call skip_a A "/key/$KID?remoteSystemID=KME_A"
expect 400 "loopback key fetched twice"
ok "loopback pair mode: own ID as remote system, local pool, one-time retrieval"

# --- max_key_count holds for loopback keys too (the core's reserve call enforces it for every
# API): keys not fetched by the other end pile up to the quota, then 503; a fetch frees one.
got=0 QKIDS=()
for i in $(seq 1 41); do
  call skip_a A "/key?remoteSystemID=KME_A"
  [ "$CODE" = 200 ] || break
  QKIDS+=("$(field keyId)"); got=$((got+1))
done
expect 503 "loopback key past max_key_count (after $got keys)"
[ "$got" -ge 1 ] && [ "$got" -le 40 ] || fail "loopback quota: $got keys before the 503"
call skip_a A "/key/${QKIDS[0]}?remoteSystemID=KME_A"
expect 200 "a loopback key fetched frees quota"
call skip_a A "/key?remoteSystemID=KME_A"
expect 200 "loopback key after a fetch"
QKIDS[0]=$(field keyId)
for k in "${QKIDS[@]}"; do
  call skip_a A "/key/$k?remoteSystemID=KME_A"
  expect 200 "drain loopback key $k"
done
ok "max_key_count: $got loopback keys, then 503; a fetched key makes room for one more"

# --- client authorization: a certificate from the same CA without a [skip_client] rule
call SAE_A1 A /capabilities
expect 403 "client without a rule: capabilities"
call SAE_A1 A "/key?remoteSystemID=KME_B"
expect 403 "client without a rule: key"
ok "403 for a client that has no [skip_client] rule"

# --- 404 and 405
for path in / /keys /key/a/b /Key /entropy/x "/api/v1/keys/SAE_B1/status" /capabilities/; do
  call skip_a A "$path"
  expect 404 "path $path"
done
for m in POST PUT DELETE PATCH; do
  for path in /capabilities "/key?remoteSystemID=KME_B" "/key/0123456789abcdef0123456789abcdef?remoteSystemID=KME_B" /entropy; do
    out=$(skip_curl skip_a A "$path" -X "$m" -D "$T/hdr" --data-binary '')
    [ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 405" ] || fail "$m $path: $out"
    grep -qi '^Allow: GET' "$T/hdr" || fail "$m $path: no Allow: GET header"
  done
done
ok "404 for unknown paths; 405 with Allow: GET for other methods"

# --- entropy
call skip_a A /entropy
expect 200 "entropy default"
R1=$(field randomStr)
[[ $R1 =~ ^[0-9a-f]{64}$ ]] && [ "$(field minentropy)" = 256 ] || fail "entropy default: $BODY_OUT"
call skip_a A /entropy
[ "$(field randomStr)" != "$R1" ] || fail "two entropy samples are equal"
for n in 128 1024 8192; do
  call skip_a A "/entropy?minentropy=$n"
  expect 200 "entropy $n"
  r=$(field randomStr)
  [ "${#r}" = $((n / 4)) ] && [ "$(field minentropy)" = "$n" ] || fail "entropy $n: $BODY_OUT"
done
for q in 0 12 abc -8 8200 "" "128&minentropy=256"; do
  call skip_a A "/entropy?minentropy=$q"
  expect 400 "entropy ?minentropy=$q"
done
call skip_b B /entropy
expect 503 "entropy at B (no entropy source configured)"
ok "entropy: 64 hex digits by default, minentropy in bits, 400 for bad values, 503 without a source"

# --- SKIP and ETSI 014 draw from one pool: KME_A's by each key, KME_B's by the leases it grants
# KME_A ahead of demand (qkd_leases_total at KME_A), not per key
granted() { admin_metric A qkd_leases_total 'result="granted"'; }
by_lease() { # B_BEFORE B_AFTER G_BEFORE: B's pool moved only with a granted lease
  [ "$1" = "$2" ] || [ "$(granted)" -gt "$3" ]
}
pool_stable A; pool_stable B
A2=$(pool A); B2=$(pool B); G2=$(granted)
call skip_a A "/key?remoteSystemID=KME_B&size=1024"
expect 200 "SKIP key for the pool check"
KID=$(field keyId)
pool_stable A; pool_stable B
A3=$(pool A); B3=$(pool B); G3=$(granted)
[ $((A2 - A3)) = 1024 ] && by_lease "$B2" "$B3" "$G2" || fail "SKIP 1024 bits: pool A $A2 -> $A3, B $B2 -> $B3 (leases granted $G2 -> $(granted))"
out=$(sae_curl SAE_A1 A "/api/v1/keys/SAE_B1/enc_keys?size=1024")
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] || fail "ETSI enc_keys: $out"
pool_stable A; pool_stable B
A4=$(pool A); B4=$(pool B)
[ $((A3 - A4)) = 1024 ] && by_lease "$B3" "$B4" "$G3" || fail "ETSI 1024 bits: pool A $A3 -> $A4, B $B3 -> $B4 (leases granted $G3 -> $(granted))"
# an ETSI SAE cannot take the SKIP key: the bindings never collide
out=$(sae_curl SAE_B1 B "/api/v1/keys/SAE_A1/dec_keys?key_ID=${KID:0:8}-${KID:8:4}-${KID:12:4}-${KID:16:4}-${KID:20:12}")
case $(printf '%s' "$out" | tail -n 1) in "HTTP 400" | "HTTP 401") ;; *) fail "ETSI dec_keys of a SKIP key: $out" ;; esac
call skip_b B "/key/$KID?remoteSystemID=KME_A"
expect 200 "the SKIP key is still there for SKIP"
c=$(admin_metric A qkd_requests_total 'listener="skip",status="200"')
[ "${c:-0}" -ge 10 ] || fail "qkd_requests_total{listener=skip,status=200} = $c"
ok "SKIP and ETSI keys come from one pool (1024 bits each at KME_A, KME_B's by leases); requests counted"

# --- the peer unreachable: served from KME_A's lease (1024 bytes: at most one 8192-bit key),
# then 503
pair_stop B
for i in 1 2 3; do
  call skip_a A "/key?remoteSystemID=KME_B&size=8192"
  [ "$CODE" = 200 ] || break
done
expect 503 "key while KME_B is down and the lease is used up"
[ "$i" -le 2 ] || fail "KME_A served two 8192-bit keys from a 1024-byte lease"
case $(field message) in *max_key_count*) fail "503 for the quota, not the peer: $BODY_OUT" ;; esac
ok "503 when the peer KME is unreachable and the lease is used up"

# --- logs: one line per request, key IDs yes, key bytes never
grep -q 'listener=skip' "$T/kme_A.log" || fail "no skip request lines in the log"
for k in "${KEYS_SEEN[@]}" "$R1"; do
  grep -qi "$k" "$T"/kme_*.log "$T"/kme_*.out && fail "key bytes found in a log"
done
ok "request lines logged; no key bytes in the logs"
echo "PASS"

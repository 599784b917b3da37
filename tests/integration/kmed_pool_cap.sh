#!/usr/bin/env bash
# kmed_pool_cap.sh - the per-link pool cap (kmed.conf [keys] max_pool_bytes, docs/qkd-kmed.md
# "Pool cap"): two KMEs capped at 200000 bytes; three 64 KiB blocks (3 x 65504 key bytes) fit,
# a fourth is refused by the device API at each end (507, reason "full") and stored nowhere, the
# refusal is counted (qkd_blocks_refused_total) and the link reads full (qkd_pool_full 1); keys
# taken over ETSI 014 make room and the next block is stored (qkd_pool_full 0). Quick.
set -u
export PAIR_KEYS_EXTRA="max_pool_bytes = 200000"
# shellcheck source=../lib/etsi_pair.sh
. "$(dirname "$0")/../lib/etsi_pair.sh"
# shellcheck source=../lib/wait.sh
. "$ROOT/tests/lib/wait.sh"

pair_init
pair_start A
pair_start B
pair_feed --blocks 3 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
HELD=$((3 * (65536 - 32)))
for s in A B; do
  wait_pool "$s" $((HELD * 8)) || fail "the 3 blocks are not confirmed at KME_$s"
  [ "$(admin_metric "$s" qkd_pool_held_bytes "link=\"$LINK\"")" = "$HELD" ] || fail "KME_$s: qkd_pool_held_bytes"
  [ "$(admin_metric "$s" qkd_pool_max_bytes "link=\"$LINK\"")" = 200000 ] || fail "KME_$s: qkd_pool_max_bytes"
  [ "$(admin_metric "$s" qkd_pool_full "link=\"$LINK\"")" = 0 ] || fail "KME_$s: full before the cap"
done
ok "3 blocks held ($HELD bytes) under a 200000-byte cap"

head -c 65536 /dev/urandom >"$T/block" || fail "no random block"
put() { # KME BLOCK_ID: prints the HTTP status; the body goes to $T/put.out
  curl -s --max-time 10 --cacert "$T/pki/ca.crt" --cert "$(crt qkd-sim)" --key "$(key qkd-sim)" \
    -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$T/block" \
    -o "$T/put.out" -w '%{http_code}' "$(device_url "$1")/device/v1/links/$LINK/blocks/$2"
}
for s in A B; do
  code=$(put "$s" 4)
  [ "$code" = 507 ] || { cat "$T/put.out"; fail "KME_$s: a block past the cap got HTTP $code, not 507"; }
  grep -q '"reason": *"full"' "$T/put.out" || { cat "$T/put.out"; fail "KME_$s: no reason full"; }
  [ "$(admin_metric "$s" qkd_blocks_refused_total "link=\"$LINK\",reason=\"full\"")" = 1 ] ||
    fail "KME_$s: qkd_blocks_refused_total is not 1"
  [ "$(admin_metric "$s" qkd_pool_full "link=\"$LINK\"")" = 1 ] || fail "KME_$s: qkd_pool_full is not 1"
  [ "$(admin_metric "$s" qkd_blocks "link=\"$LINK\"")" = 3 ] || fail "KME_$s: the refused block was stored"
  [ "$(admin_metric "$s" qkd_pool_held_bytes "link=\"$LINK\"")" = "$HELD" ] || fail "KME_$s: held bytes moved"
done
grep -q 'pool full' "$T/kme_A.log" || fail "no pool-full warning in KME_A's log"
ok "a block past the cap: 507 full at both ends, not stored, counted, the link full"

# 64 keys of 8192 bits (65536 bytes) taken at KME_A leave room for one more block there.
out=$(sae_curl SAE_A1 A "/api/v1/keys/SAE_B1/enc_keys?number=64&size=8192")
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] || { printf '%s\n' "$out" | tail -n 3; fail "enc_keys"; }
code=$(put A 5)
[ "$code" = 201 ] || { cat "$T/put.out"; fail "KME_A: a block after keys were taken got HTTP $code, not 201"; }
[ "$(admin_metric A qkd_pool_full "link=\"$LINK\"")" = 0 ] || fail "KME_A: still full after a block was stored"
[ "$(admin_metric A qkd_blocks_refused_total "link=\"$LINK\",reason=\"full\"")" = 1 ] || fail "KME_A: refusal count changed"
ok "keys taken make room: the next block is stored, the link no longer full"
echo "PASS"

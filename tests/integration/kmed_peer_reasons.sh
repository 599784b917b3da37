#!/usr/bin/env bash
# kmed_peer_reasons.sh - the peer's reason reaches the SAE and the metrics (issue 17 item 6).
# KME_B's data directory is a small tmpfs: once KME_A's lease is used up and KME_B's disk is
# full, enc_keys at KME_A answers 503 "the KME of the slave SAE refused the keys (storage)",
# not "not reachable", and KME_A counts qkd_peer_failures_total{reason="storage"}; with room
# again the next request is served; with KME_B stopped the answer is "not reachable" and the
# count is under reason="unreachable". A remote pair over max_key_count is told so (the
# spec's max_key_count message), as a same-KME pair.
# Needs root (it mounts a tmpfs; CI runs as root).
set -u
export PAIR_KEYS_EXTRA="max_size = 4096
max_key_count = 12

[hot_path]
lease_bytes = 1024
lease_low_water = 0
lease_demand = 0"
. "$(dirname "$0")/../lib/etsi_pair.sh"
qk_need_root "mounts a tmpfs as KME_B's data directory to fill it"
qk_need_cmd jq

MNT=$T/data_B
unmount() { mountpoint -q "$MNT" && { umount "$MNT" || umount -l "$MNT"; }; }
trap 'pair_stop B; unmount; _pair_cleanup' EXIT
trap 'exit 1' INT TERM HUP

pair_init
mkdir -p "$MNT" || fail "mkdir $MNT"
mount -t tmpfs -o size=4m,mode=0700 tmpfs "$MNT" || fail "mount tmpfs on $MNT"
pair_start A
pair_start B
pair_feed --blocks 2 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A 100000 || fail "pool of KME_A did not fill"
wait_pool B 100000 || fail "pool of KME_B did not fill"

# enc SLAVE QUERY -> CODE, MSG (the answer's message), BODY_OUT
enc() {
  local out
  out=$(sae_curl SAE_A1 A "/api/v1/keys/$1/enc_keys?$2")
  CODE=$(printf '%s' "$out" | tail -n 1 | sed 's/^HTTP //')
  BODY_OUT=$(printf '%s' "$out" | sed '$d')
  MSG=$(printf '%s' "$BODY_OUT" | jq -r '.message // empty' 2>/dev/null)
}
failures() { admin_metric A qkd_peer_failures_total "reason=\"$1\""; }
# Request 4096-bit keys until one is refused (the 1 KiB lease holds two); at most 8.
until_refused() {
  local _
  for _ in 1 2 3 4 5 6 7 8; do
    enc SAE_B1 "size=4096"
    [ "$CODE" = 200 ] || return 0
  done
  fail "8 keys of 4096 bits served from 1 KiB leases: no refusal"
}

# ---- the peer's disk is full: storage --------------------------------------------------
enc SAE_B1 "size=4096"
[ "$CODE" = 200 ] || fail "first key: HTTP $CODE $BODY_OUT"
dd if=/dev/zero of="$MNT/fill" bs=64k 2>/dev/null # runs until the tmpfs is full (ENOSPC)
[ "$(df --output=avail -k "$MNT" | tail -n 1 | tr -d ' ')" -le 4 ] || fail "tmpfs not full"
s0=$(failures storage)
until_refused
[ "$CODE" = 503 ] || fail "disk full at KME_B: HTTP $CODE $BODY_OUT (want 503)"
[ "$MSG" = "the KME of the slave SAE refused the keys (storage)" ] ||
  fail "disk full at KME_B: message '$MSG' (want the storage reason)"
[ "$(failures storage)" -gt "$s0" ] || fail "qkd_peer_failures_total{reason=\"storage\"} did not grow"
grep -q "peer's store failed" "$T/kme_A.log" || fail "KME_A's log does not name the peer's store"
ok "KME_B's disk full: the SAE is told '$MSG' (503), counted under reason=\"storage\""
rm -f "$MNT/fill"
enc SAE_B1 "size=4096"
[ "$CODE" = 200 ] || fail "room again at KME_B: HTTP $CODE $BODY_OUT"
ok "room again at KME_B: enc_keys served"

# ---- a remote pair over max_key_count: limit, told as for a same-KME pair ------------------
enc SAE_B2 "number=12"
[ "$CODE" = 200 ] || fail "12 keys for SAE_B2: HTTP $CODE $BODY_OUT"
enc SAE_B2 "number=1"
[ "$CODE" = 503 ] && [[ $MSG == max_key_count* ]] || fail "remote pair over max_key_count: HTTP $CODE '$MSG'"
ok "a remote pair over max_key_count: 503 '$MSG'"

# ---- the peer is down: unreachable ----------------------------------------------------------
u0=$(failures unreachable)
pair_stop B
until_refused
[ "$CODE" = 503 ] && [ "$MSG" = "the KME of the slave SAE is not reachable" ] ||
  fail "KME_B down: HTTP $CODE '$MSG'"
[ "$(failures unreachable)" -gt "$u0" ] || fail "qkd_peer_failures_total{reason=\"unreachable\"} did not grow"
ok "KME_B down: the SAE is told '$MSG', counted under reason=\"unreachable\""
echo "PASS: kmed_peer_reasons"

#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): concurrent load.
# kmed_pair_load.sh - two qkd-kmed fed by qk-feeder, then concurrent ETSI 014 load in both
# directions (SAE_A1@KME_A -> SAE_B1@KME_B and back): every key fetched once at the other KME
# with identical bytes, none fetchable twice (sampled), no key ID or key material shared
# between the directions. PAIR_LOAD_KEYS keys per direction (default 10,000) in requests of
# PAIR_LOAD_NUMBER keys (default 10: about 5 s); kmed_pair_load_10k.sh asks one key per request.
set -u
. "$(dirname "$0")/../lib/etsi_pair.sh"

KEYS=${PAIR_LOAD_KEYS:-10000}
THREADS=2
NUMBER=${PAIR_LOAD_NUMBER:-10}
PAIRS=$(( (KEYS + THREADS * NUMBER - 1) / (THREADS * NUMBER) ))
TOTAL=$(( PAIRS * THREADS * NUMBER ))
# 256-bit keys, both directions, plus slack: blocks of 64 KiB (32 bytes of each are the
# verification key)
BLOCKS=$(( (TOTAL * 2 * 32) / (65536 - 32) + 4 ))

pair_init
pair_start A
pair_start B
echo "feeding $BLOCKS blocks of 64 KiB"
pair_feed --blocks "$BLOCKS" --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
need=$(( TOTAL * 2 * 256 ))
wait_pool A "$need" || fail "pool of KME_A did not fill"
wait_pool B "$need" || fail "pool of KME_B did not fill"
ok "pools hold >= $need bits"

echo "load: $TOTAL keys per direction ($THREADS threads x $PAIRS requests x $NUMBER keys, both directions)"
start=$(date +%s)
pair_load --direction both --threads "$THREADS" --pairs "$PAIRS" --number "$NUMBER" --size 256 \
  --recheck-every 5 --quiet --out "$T/keys.txt" >"$T/load.out" 2>&1
rc=$?
cat "$T/load.out"
[ $rc = 0 ] || fail "etsi-load exit $rc"
summary=$(grep '^etsi-load: requests' "$T/load.out")
val() { printf '%s' "$summary" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
[ "$(val keys)" = $(( TOTAL * 2 )) ] || fail "keys delivered to masters: $(val keys), wanted $(( TOTAL * 2 ))"
[ "$(val fetched)" = $(( TOTAL * 2 )) ] || fail "keys fetched at slaves: $(val fetched)"
[ "$(val mismatches)" = 0 ] && [ "$(val double)" = 0 ] && [ "$(val duplicates)" = 0 ] || fail "$summary"
[ "$(val recheck)" -gt 0 ] || fail "no second fetch was tried"
ok "load: $(val keys) keys in $(( $(date +%s) - start )) s, all identical, none delivered twice"

# Independent checks on the recorded key IDs: both directions present, no ID in both
[ "$(grep -c '^AB ' "$T/keys.txt")" = "$TOTAL" ] && [ "$(grep -c '^BA ' "$T/keys.txt")" = "$TOTAL" ] ||
  fail "key records per direction"
overlap=$(comm -12 <(awk '$1=="AB"{print $2}' "$T/keys.txt" | sort) <(awk '$1=="BA"{print $2}' "$T/keys.txt" | sort) | wc -l)
[ "$overlap" = 0 ] || fail "$overlap key IDs in both directions"
[ "$(awk '{print $3}' "$T/keys.txt" | sort | uniq -d | wc -l)" = 0 ] || fail "same key material twice"
ok "no key ID overlap between the directions"

# A sample of the fetched keys must now be refused at the slave KME
pair_load --verify "$T/keys.txt" --verify-sample $(( TOTAL / 25 > 0 ? TOTAL / 25 : 1 )) >"$T/verify.out" 2>&1
rc=$?
cat "$T/verify.out"
[ $rc = 0 ] || fail "verify: fetched keys still fetchable"
ok "sampled keys are not fetchable a second time"
echo "kmed_pair_load: all checks passed"

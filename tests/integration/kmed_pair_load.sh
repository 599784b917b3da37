#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): concurrent load.
# kmed_pair_load.sh - two qkd-kmed fed by qk-feeder, then concurrent ETSI 014 load in both
# directions (SAE_A1@KME_A -> SAE_B1@KME_B and back): every key fetched once at the other KME
# with identical bytes, none fetchable twice (sampled), no key ID or key material shared
# between the directions. PAIR_LOAD_KEYS keys per direction (default 10,000) in requests of
# PAIR_LOAD_NUMBER keys (default 10: about 5 s); kmed_pair_load_10k.sh asks one key per request.
# KME_A runs with [store] key_ids = time-ordered, KME_B with the default (random): the A->B keys
# carry version-7 IDs of this run's milliseconds, the B->A keys version-4 IDs, and each KME
# serves the other form as the slave's KME.
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
printf '\n[store]\nkey_ids = time-ordered\n' >>"$T/kme_A.conf"
t_first=$(date +%s%3N)
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

# The ID forms: version 7 from KME_A (its milliseconds within this run), version 4 from KME_B
t_last=$(date +%s%3N)
v7='^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
v4='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
[ "$(awk '$1=="AB"{print $2}' "$T/keys.txt" | grep -cE "$v7")" = "$TOTAL" ] ||
  fail "A->B key IDs are not all version 7: $(awk '$1=="AB"{print $2}' "$T/keys.txt" | grep -vE "$v7" | head -3)"
[ "$(awk '$1=="BA"{print $2}' "$T/keys.txt" | grep -cE "$v4")" = "$TOTAL" ] ||
  fail "B->A key IDs are not all version 4: $(awk '$1=="BA"{print $2}' "$T/keys.txt" | grep -vE "$v4" | head -3)"
bad_ms=$(awk '$1=="AB"{print $2}' "$T/keys.txt" | while read -r id; do
  ms=$((16#${id:0:8}${id:9:4}))
  { [ "$ms" -ge "$t_first" ] && [ "$ms" -le "$t_last" ]; } || echo "$id"
done | head -3)
[ -z "$bad_ms" ] || fail "version-7 IDs outside this run ($t_first..$t_last ms): $bad_ms"
ok "A->B IDs version 7 (time-ordered at KME_A), B->A IDs version 4"

# A sample of the fetched keys must now be refused at the slave KME
pair_load --verify "$T/keys.txt" --verify-sample $(( TOTAL / 25 > 0 ? TOTAL / 25 : 1 )) >"$T/verify.out" 2>&1
rc=$?
cat "$T/verify.out"
[ $rc = 0 ] || fail "verify: fetched keys still fetchable"
ok "sampled keys are not fetchable a second time"
echo "kmed_pair_load: all checks passed"

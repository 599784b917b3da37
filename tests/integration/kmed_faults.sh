#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): load with kill -9 at timed moments.
# kmed_faults.sh - SLOW: fault injection on a pair of qkd-kmed under ETSI 014 load:
# a block sent with different bytes to one side is burned and never used; the peer KME stopped
# mid-run (503, keys delivered to masters still fetchable once after its restart); kill -9 of
# either KME during load, restart and reconciliation: no key delivered twice, every key a
# master received still fetchable exactly once at the slave. Each fault is injected on a
# condition (the load reached the KMEs, the survivor answered 503), never after a fixed sleep.
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/etsi_pair.sh
. "$(dirname "$0")/../lib/etsi_pair.sh"
# shellcheck source=../lib/wait.sh
. "$(dirname "$0")/../lib/wait.sh"
qk_need_cmd sqlite3 # qk_need_cmd: tests/lib/skip.sh, sourced by etsi_pair.sh

BLK=65536
NBLK=60
CORRUPT=3
DROP=4
LOADARGS=(--direction both --threads 2 --number 2 --size 256 --tolerate-errors --quiet --recheck-every 3 --timeout-ms 5000)
# ETSI 014 answers of KME $1 with status $2 (admin /metrics).
answers() { admin_metric "$1" qkd_requests_total "listener=\"etsi014\",status=\"$2\""; }
# Bounded: the load has reached KME $1 (10 more answers 200 than before); then stop KME $2 with
# signal $3 and wait until KME $1 answers 503 for want of its peer.
# shellcheck disable=SC2034 # n0 and e0 are read by the wait_for conditions
fault_under_load() {
  local s=$1 v=$2 sig=$3 n0 e0
  n0=$(answers "$s" 200)
  wait_for '[ "$(answers "$s" 200)" -ge $((n0 + 10)) ]' 30 "the load to reach KME_$s" ||
    fail "no load reached KME_$s"
  e0=$(answers "$s" 503)
  pair_stop "$v" "$sig"
  wait_for '[ "$(answers "$s" 503)" -gt "$e0" ]' 30 "KME_$s to answer 503 with KME_$v down" ||
    fail "KME_$s answered no 503 while KME_$v was down"
}

# [store] lock = shared: fetched_at below reads the slave's store with sqlite3 while it runs
PAIR_CONF_EXTRA=$'[store]\nlock = shared'
pair_init
pair_start A
pair_start B

# --- 1. a block with different bytes at B, and a block B never gets
pair_feed --blocks $NBLK --block-bytes $BLK --corrupt-b-block $CORRUPT --drop-b-block $DROP >"$T/feed.out" 2>&1 ||
  { cat "$T/feed.out"; fail "feeder"; }
grep -q "corrupted=1 dropped=1" "$T/feed.out" || { cat "$T/feed.out"; fail "feeder did not inject"; }
good=$(( NBLK - 2 ))
wait_pool A $(( (good - 1) * (BLK - 32) * 8 )) || fail "pool of KME_A did not fill"
wait_pool B $(( (good - 1) * (BLK - 32) * 8 )) || fail "pool of KME_B did not fill"
burned=0
wait_for 'burned=$(( $(admin_metric A qkd_blocks "state=\"burned\"") + $(admin_metric B qkd_blocks "state=\"burned\"") )); [ "$burned" -ge 1 ]' \
  20 "the corrupted block to be burned" || fail "the corrupted block was not burned (metrics: $(admin_metrics A | grep qkd_blocks))"
for s in A B; do
  bytes=$(admin_metric $s qkd_pool_bytes "link=\"$LINK\"")
  [ "$bytes" -le $(( good * (BLK - 32) )) ] || fail "KME_$s pool holds $bytes bytes: more than the $good good blocks"
done
ok "corrupted block burned ($burned burn(s) reported), pools hold only the $good good blocks"

# --- 2. peer stopped: requests fail with 503
pair_stop B TERM
pair_load --direction ab --threads 1 --pairs 3 --tolerate-errors --quiet --out "$T/k0.txt" >"$T/l0.out" 2>&1
cat "$T/l0.out"
grep -q 'keys=0 ' "$T/l0.out" && grep -q 'by_status={503:3}' "$T/l0.out" || fail "with KME_B down enc_keys at KME_A must answer 503"
ok "peer down: enc_keys answers 503 and delivers nothing"
pair_start B

# peer stopped mid-run, then restarted
pair_load "${LOADARGS[@]}" --pairs 100000 --duration-s 8 --out "$T/k1.txt" >"$T/l1.out" 2>&1 &
LP=$!
fault_under_load A B TERM
pair_start B
wait $LP; rc=$?
cat "$T/l1.out"
[ $rc = 0 ] || fail "load around a peer stop: exit $rc (mismatch or double delivery)"
grep -Eq 'by_status=\{[^}]*(503|transport)' "$T/l1.out" || fail "no request failed while KME_B was down"
ok "peer stopped mid-run: errors while down, no mismatch"

# --- 3. kill -9 of either KME during load
for victim in A B; do
  pair_load "${LOADARGS[@]}" --pairs 100000 --duration-s 8 --out "$T/k_$victim.txt" >"$T/l_$victim.out" 2>&1 &
  LP=$!
  survivor=B; [ $victim = B ] && survivor=A
  fault_under_load $survivor $victim KILL
  pair_start $victim
  wait $LP; rc=$?
  cat "$T/l_$victim.out"
  [ $rc = 0 ] || fail "load around kill -9 of KME_$victim: exit $rc"
  ok "kill -9 of KME_$victim during load: no mismatch, no double delivery seen by the clients"
done

# the sync threads reconcile: requests left pending by the kill -9 are burned at both ends
wait_for '[ "$(admin_metric A qkd_keys "state=\"pending\"")" = 0 ] && [ "$(admin_metric B qkd_keys "state=\"pending\"")" = 0 ]' \
  30 "no pending key at either KME" || fail "keys still pending after the restarts"

# --- 4. every key a master received is fetchable exactly once at the slave; nothing twice.
# A pending key (the client saw no dec_keys answer) that the slave cannot give any more is
# acceptable only when the slave's own store records that slave's copy as fetched (the dec_keys
# transaction committed and a kill -9 ate the response before it was sent); after a clean
# SIGTERM that is a failure (in-flight responses are drained).
fetched_at() { # SLAVE_KME KEY_ID SLAVE_SAE -> 0 if the store recorded the copy as fetched
  sqlite3 -readonly "$T/data_$1/store.db" \
    "SELECT count(*) FROM copy_view WHERE key_id='$2' AND slave='$3' AND state=1;" 2>/dev/null | grep -qx 1
}
cat "$T"/k1.txt "$T"/k_A.txt "$T"/k_B.txt >"$T/all.txt"
total=$(wc -l <"$T/all.txt")
[ "$total" -gt 0 ] || fail "no key was delivered during the fault runs"
[ "$(awk '{print $2}' "$T/all.txt" | sort | uniq -d | wc -l)" = 0 ] || fail "a key ID was delivered twice across the runs"
[ "$(awk '{print $3}' "$T/all.txt" | sort | uniq -d | wc -l)" = 0 ] || fail "the same key material was delivered twice across the runs"
for run in 1 _A _B; do
  pair_load --verify "$T/k$run.txt" --verify-sample 3 --lost-out "$T/lost$run.txt" >"$T/verify$run.out" 2>&1
  rc=$?
  cat "$T/verify$run.out"
  [ $rc = 0 ] && continue
  grep -Eq ' double=0 duplicates=0 errors=0$' "$T/verify$run.out" || fail "verify of run k$run"
  while read -r dir id; do
    slave=B sae=SAE_B1; [ "$dir" = BA ] && slave=A sae=SAE_A1
    if ! fetched_at "$slave" "$id" "$sae"; then
      fail "key $id ($dir) was delivered to its master but is lost at KME_$slave"
    fi
    case $run in
      _A|_B) echo "note: key $id ($dir): KME_$slave committed its delivery, the kill -9 ate the response" ;;
      *) fail "key $id ($dir): KME_$slave answered dec_keys 200 but the response never reached the client across a SIGTERM stop (in-flight responses not flushed)" ;;
    esac
  done <"$T/lost$run.txt"
done
ok "$total keys delivered to masters: pending ones fetched once now, fetched ones refused, no duplicates"

# --- 5. the pair still works without errors
pair_load --direction both --threads 2 --pairs 10 --number 5 --quiet >"$T/l5.out" 2>&1 || { cat "$T/l5.out"; fail "clean load after the faults"; }
cat "$T/l5.out"
ok "clean load after the faults"
echo "kmed_faults: all checks passed"

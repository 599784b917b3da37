#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): load with kill -9 at timed moments.
# kmed_crash.sh - kill -9 and restart of either KME of a pair while the master SAE asks for keys
# (the quick counterpart of kmed_faults.sh), with exact outcomes read from both stores. KME_A
# serves enc_keys from the ranges KME_B granted it ahead of demand (leases) and tells KME_B
# later, in batches (notices; docs/adr/0002-key-store.md, "Leases and notices"):
#   1. KME_B (the slaves' KME) killed at a random moment, restarted on its data dir and ports:
#      meanwhile KME_A answers from its leases (200) or, once they are used up, 503; after the
#      restart every request KME_A served is noticed to KME_B;
#   2. KME_A (the master's KME) killed at random moments under load, ROUNDS times, restarted
#      each time (every other time while KME_B is frozen, so that requests are left
#      un-noticed): whatever it delivered and had not yet noticed is noticed after the restart.
# Afterwards every key of every 200 enc_keys answer is fetched once at KME_B with the recorded
# SHA-256 (a second fetch 400) or is burned at both ends; no key ID or key material is handed
# out twice; a non-200 answer delivered nothing: no key the client did not record is delivered
# at KME_A or reserved at KME_B, except the few the rules below name.
#
# Observable: the per-key view of each store (key_view: key rows plus the keys of runs,
# docs/adr/0003-request-records.md; sqlite3 on the data dir, kms/store_db.c), joined on
# key_id, one row per key: its state at KME_A (outgoing: 0 pending, 2 delivered, 3 burned) and
# at KME_B (incoming: 1 reserved, 2 fetched, 3 burned; -1 absent); the requests table's noticed
# flag at KME_A (0: KME_B has yet to hear of the request). The peer API's request state and the
# /metrics counters name requests or counts, not keys; the store names each key.
# Allowed besides "recorded: 2/2 (fetched) or 3/3": unrecorded 3/3 and 3/-1 (burned: a notice
# KME_B refused); 2/1 only for requests whose 200 a kill -9 of KME_A ate (at most one per
# client and kill, never while KME_A stayed up).
# Both KMEs run with [hot_path] reply_at_commit = true: KME_A answers an enc_keys once its
# carve is committed, before the WAL sync (docs/adr/0002-key-store.md, "Replies at commit"),
# and a kill -9 must lose none of those (the page cache keeps every commit; no reboot, so no
# recovery burns anything: checked below). The default (a sync before every reply) is what
# the other suites run, kmed_faults.sh's kills included.
set -u
# shellcheck source=tests/lib/etsi_pair.sh
. "$(dirname "$0")/../lib/etsi_pair.sh"
qk_need_cmd sqlite3 jq

# the clients are stopped before the pair (etsi_pair.sh's trap) on every exit
CPIDS=()
_crash_cleanup() {
  local p
  for p in "${CPIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "${PID[B]:-}" ] && kill -CONT "${PID[B]}" 2>/dev/null # a failure while KME_B was frozen
  _pair_cleanup
}
trap _crash_cleanup EXIT

CLIENTS=3   # concurrent enc_keys clients (SAE_A1 at KME_A for SAE_B1)
NUMBER=2    # keys per request (256 bits)
STEP=4      # 200 answers awaited before a kill and after a restart
ROUNDS=${KMED_CRASH_ROUNDS:-5} # kills of KME_A under load
WAIT_S=30   # bound of every wait

# shellcheck source=tests/lib/wait.sh
. "$ROOT/tests/lib/wait.sh"
WAIT_STEP=0.05
# await SECONDS WHAT CMD...: wait_for (tests/lib/wait.sh) on CMD, its arguments expanded now;
# fail after SECONDS.
await() {
  local lim=$1 what=$2
  shift 2
  wait_for "$(printf '%q ' "$@")" "$lim" "$what" || fail "no $what within $lim s"
}

db() { sqlite3 -readonly "$T/data_$1/store.db" "$2"; } # A|B SQL

# ---- the clients --------------------------------------------------------------------------
# One client: enc_keys in a loop until DIR/stop exists. Per request one line in DIR/st_N (the
# status; "bad" for a 200 without exactly NUMBER keys, "leak" for an error body naming a key);
# per key of a 200 one etsi-load record "AB KEY_ID SHA256 pending" in DIR/keys_N, written
# before the status line. Key bytes never touch the disk.
client() { # DIR N
  local d=$1 n=$2 i=0 out code body recs
  while [ ! -e "$d/stop" ] && [ $i -lt 5000 ]; do
    i=$((i + 1))
    out=$(sae_curl SAE_A1 A /api/v1/keys/SAE_B1/enc_keys -H 'Content-Type: application/json' \
      -d "{\"number\":$NUMBER,\"size\":256}")
    code=${out##*HTTP }
    body=${out%HTTP*}
    if [ "$code" = 200 ]; then
      recs=$(jq -r '.keys[] | "\(.key_ID) \(.key)"' <<<"$body" 2>/dev/null |
        while read -r id k; do
          printf 'AB %s %s pending\n' "$id" "$(printf '%s' "$k" | base64 -d | sha256sum | cut -d' ' -f1)"
        done)
      if [ "$(grep -c '^AB [0-9a-f-]\{36\} [0-9a-f]\{64\} pending$' <<<"$recs")" = "$NUMBER" ]; then
        printf '%s\n' "$recs" >>"$d/keys_$n"
      else
        code=bad
      fi
    elif grep -q key_ID <<<"$body"; then
      code=leak
    fi
    echo "$code" >>"$d/st_$n"
    [ "$code" = 000 ] && sleep 0.05 # KME_A down: connection refused at once
  done
}

start_clients() { # DIR
  local n
  mkdir -p "$1"
  CPIDS=()
  for n in $(seq 1 $CLIENTS); do
    client "$1" "$n" &
    CPIDS+=($!)
  done
}

stop_clients() { # DIR
  local p
  touch "$1/stop"
  for p in "${CPIDS[@]}"; do
    # a client ends within one request (curl --max-time 10)
    timeout 20 tail --pid="$p" -f /dev/null || fail "client $p did not stop"
    wait "$p"
  done
  grep -qxE 'bad|leak' "$1"/st_* && fail "a 200 without $NUMBER well-formed keys, or an error answer naming a key: $(grep -xE 'bad|leak' "$1"/st_* | head -3)"
  return 0
}

count() { cat "$1"/st_* 2>/dev/null | grep -Ecx "$2"; } # DIR REGEX
at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }      # DIR REGEX N

# ---- the stores ---------------------------------------------------------------------------
# "KEY_ID STATE_AT_A STATE_AT_B REQUEST_ID" for every key of the link at either KME (-1: absent).
key_states() {
  sqlite3 -readonly "$T/data_A/store.db" "ATTACH '$T/data_B/store.db' AS b;
    SELECT a.key_id, a.state, COALESCE(k.state, -1), a.request_id FROM main.key_view a
      LEFT JOIN b.key_view k ON k.key_id = a.key_id WHERE a.link = '$LINK'
    UNION ALL
    SELECT k.key_id, -1, k.state, k.request_id FROM b.key_view k
      WHERE k.link = '$LINK' AND k.key_id NOT IN (SELECT key_id FROM main.key_view);" | tr '|' ' '
}

# KME_A settled: no outgoing request pending (the local path's two phases) or un-noticed.
settled_at_A() {
  [ "$(db A 'SELECT count(*) FROM requests WHERE direction = 0 AND (state = 0 OR noticed = 0);')" = 0 ]
}

# check_keys WHEN RECORDED MAX_EATEN: apply the rules of the header to key_states. WHEN:
# "before" the slave fetched (a recorded key is 2/1) or "after" (2/2). Prints a summary line.
check_keys() {
  local want=2/2
  [ "$1" = before ] && want=2/1
  key_states >"$T/states" || fail "cannot read the stores"
  awk -v want="$want" -v rec="$2" -v max_eaten="$3" '
    BEGIN {
      while ((getline l < rec) > 0) { split(l, f, " "); R[f[2]] = 1; nrec++ }
    }
    {
      id = $1; a = $2; b = $3; req = $4; s = a "/" b; seen[id] = 1
      if (id in R) {
        if (s == want) fetched++
        else if (s == "3/3") burned_rec++
        else if (nbad++ < 10) bad = bad "\n  recorded key " id " is " s " (A/B), want " want " or 3/3 (burned at both ends)"
      } else if (s == "3/3" || s == "3/-1") {
        burned++
      } else if (s == "2/1") {
        if (!(req in E)) { E[req] = 1; eaten++ }
        eaten_keys++
      } else if (nbad++ < 10) {
        bad = bad "\n  unrecorded key " id " (request " req ") is " s " (A/B)"
      }
    }
    END {
      for (id in R) if (!(id in seen) && nbad++ < 10) bad = bad "\n  recorded key " id " is unknown at both KMEs"
      if (eaten > max_eaten) bad = bad "\n  " eaten " requests delivered at KME_A without a 200 reaching a client (at most " max_eaten " allowed here)"
      printf "keys: %d recorded (%d " (want == "2/2" ? "fetched" : "reserved at B") ", %d burned at both ends); unrecorded: %d burned, %d delivered at A by requests whose answer was lost\n", nrec, fetched, burned_rec, burned, eaten_keys
      if (nbad > 10) bad = bad "\n  (" nbad - 10 " more)"
      if (nbad || bad != "") { printf "FAILED:%s\n", bad; exit 1 }
    }' "$T/states"
}

# ---- setup ----------------------------------------------------------------------------------
# [store] lock = shared: the checks below read both stores with sqlite3 while the KMEs run
PAIR_CONF_EXTRA=$'[hot_path]\nreply_at_commit = true\n[store]\nlock = shared'
pair_init
pair_start A
pair_start B
pair_feed --blocks 4 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A $((3 * (65536 - 32) * 8)) || fail "pool of KME_A did not fill"
wait_pool B $((3 * (65536 - 32) * 8)) || fail "pool of KME_B did not fill"
ok "pair fed"

# a random pause of 0..0.3 s: the kills land at random moments of the load
rand_pause() { sleep "$(printf '0.%03d' $((RANDOM % 300)))"; }

# ---- 1. kill -9 of KME_B (the slaves' KME) --------------------------------------------------
P1=$T/p1
start_clients "$P1"
await $WAIT_S "$STEP answers 200 before the kill" at_least "$P1" 200 $STEP
rand_pause
pair_stop B KILL
before=$(count "$P1" '[0-9]+')
ok_before=$(count "$P1" 200)
await $WAIT_S "answers while KME_B is down" at_least "$P1" '[0-9]+' $((before + 3 + CLIENTS))
down_ok=$(($(count "$P1" 200) - ok_before))
pair_start B
ok200=$(count "$P1" 200)
await $WAIT_S "$STEP more answers 200 after the restart of KME_B" at_least "$P1" 200 $((ok200 + STEP))
stop_clients "$P1"
echo "answers: $(sort "$P1"/st_* | uniq -c | tr '\n' ' ')"
cat "$P1"/keys_* >"$T/rec1.txt"
await $WAIT_S "every request of KME_A noticed to KME_B" settled_at_A
# KME_A stayed up: every delivery at KME_A reached a client (no answer lost)
check_keys before "$T/rec1.txt" 0 || fail "after the kill of KME_B"
ok "kill -9 of KME_B: KME_A kept answering ($down_ok answers 200 from its leases while KME_B was down); every key it served was noticed after the restart"

# ---- 2. kill -9 of KME_A at random moments under load, ROUNDS times -------------------------
P2=$T/p2
start_clients "$P2"
# Odd rounds freeze KME_B (SIGSTOP) first: KME_A keeps serving from its leases, its notices
# wait (one may sit in KME_B's socket and land after KME_A died), so the kill always leaves
# requests un-noticed; even rounds kill at a random moment of the plain load.
for r in $(seq 1 "$ROUNDS"); do
  ok200=$(count "$P2" 200)
  await $WAIT_S "$STEP answers 200 before kill $r" at_least "$P2" 200 $((ok200 + STEP))
  if [ $((r % 2)) = 1 ]; then
    kill -STOP "${PID[B]}"
    ok200=$(count "$P2" 200)
    await $WAIT_S "$STEP answers 200 from the leases while KME_B is frozen" at_least "$P2" 200 $((ok200 + STEP))
  fi
  rand_pause
  pair_stop A KILL
  unnoticed=$(db A 'SELECT count(*) FROM requests WHERE direction = 0 AND noticed = 0;')
  echo "kill $r of KME_A: $unnoticed request(s) not yet noticed"
  if [ $((r % 2)) = 1 ]; then
    kill -CONT "${PID[B]}"
    [ "$unnoticed" -ge 1 ] || fail "kill $r: KME_A had noticed everything although KME_B was frozen"
  fi
  pair_start A
done
ok200=$(count "$P2" 200)
await $WAIT_S "$STEP more answers 200 after the last restart of KME_A" at_least "$P2" 200 $((ok200 + STEP))
stop_clients "$P2"
echo "answers: $(sort "$P2"/st_* | uniq -c | tr '\n' ' ')"
await $WAIT_S "every request of KME_A noticed after its restarts" settled_at_A
ok "kill -9 of KME_A, $ROUNDS times under load: every request it delivered is noticed after its restarts"
# Same boot, so no restart took itself for a power loss: no lease room burned, and replies at
# commit were on (the boot is recorded).
[ "$(db A "SELECT count(*) FROM audit WHERE event = 'power_loss_burn';")" = 0 ] ||
  fail "a restart after kill -9 burned lease room as after a power loss"
[ "$(db A "SELECT count(*) FROM meta WHERE name = 'boot_id';")" = 1 ] ||
  fail "KME_A did not reply at commit (no boot recorded)"

# ---- 3. every key of every 200: fetched once with the same bytes, or burned at both ends ------
cat "$T/rec1.txt" "$P2"/keys_* >"$T/rec.txt"
total=$(wc -l <"$T/rec.txt")
[ "$total" -ge $((4 * STEP * NUMBER)) ] || fail "only $total keys delivered"
[ "$(awk '{print $2}' "$T/rec.txt" | sort | uniq -d | wc -l)" = 0 ] || fail "a key ID was delivered twice"
[ "$(awk '{print $3}' "$T/rec.txt" | sort | uniq -d | wc -l)" = 0 ] || fail "the same key material was delivered twice"
pair_load --verify "$T/rec.txt" --lost-out "$T/lost.txt" >"$T/verify.out" 2>&1
rc=$?
cat "$T/verify.out"
grep -Eq ' double=0 duplicates=0 errors=0$' "$T/verify.out" || fail "verify: a key delivered twice, or an error"
[ $rc = 0 ] || [ -s "$T/lost.txt" ] || fail "verify exit $rc"
# lost keys are accepted by check_keys only when burned at both ends (3/3)
check_keys after "$T/rec.txt" $((CLIENTS * ROUNDS)) || fail "after the kills"
ok "$total keys delivered to the master: each fetched once with the same bytes at KME_B, or burned at both ends"
# a clean stop, and nothing a sanitizer build reported on the way (the outputs of every run)
pair_stop A
pair_stop B
if grep -Eq 'Sanitizer|runtime error' "$T"/kme_A.out "$T"/kme_B.out; then
  grep -Eh -A5 'Sanitizer|runtime error' "$T"/kme_A.out "$T"/kme_B.out | head -40
  fail "a sanitizer report in a KME's output"
fi
echo "kmed_crash: all checks passed"

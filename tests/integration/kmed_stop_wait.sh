#!/usr/bin/env bash
# kmed_stop_wait.sh - a KME stops promptly while a dec_keys waits for its notice (quick, ~5 s).
# The fetch waits inline, without a thread, for the next batch of notices (docs/adr/
# 0001-tls-front-end.md, "Inline first"), up to notice_wait (here 30 s). On SIGTERM, qkd-kmed
# first completes such waits (qk_kms_quiesce: the fetch looks once more and answers) and then
# stops its listeners: it must exit within a few seconds, and the waiting client must get its
# answer (400: the key is not known) instead of a reset, long before notice_wait.
set -u
export PAIR_KEYS_EXTRA=$'\n[hot_path]\nnotice_wait = 30s'
. "$(dirname "$0")/../lib/etsi_pair.sh"

pair_init
pair_start A
pair_start B
ok "both KMEs started (notice_wait = 30s)"

# A key ID nobody noticed: B waits for a notice that never comes.
kid=0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d
t0=$(date +%s%N)
sae_curl SAE_B1 B /api/v1/keys/SAE_A1/dec_keys --max-time 40 -H 'Content-Type: application/json' \
  --data-binary "{\"key_IDs\":[{\"key_ID\":\"$kid\"}]}" >"$T/dec.out" 2>&1 &
cpid=$!
sleep 1.5
kill -0 "$cpid" 2>/dev/null || fail "the dec_keys did not wait for a notice: $(cat "$T/dec.out")"
ok "a dec_keys for an unknown key ID waits for a notice"

t1=$(date +%s%N)
kill -TERM "${PID[B]}"
timeout 8 tail --pid="${PID[B]}" -f /dev/null 2>/dev/null ||
  fail "KME_B still running 8 s after SIGTERM (a fetch held the stop)"
stop_ms=$(( ($(date +%s%N) - t1) / 1000000 ))
wait "${PID[B]}"
rc=$?
PID[B]=
[ $rc -eq 0 ] || fail "KME_B exited with $rc on SIGTERM: $(tail -5 "$T/kme_B.out")"
wait "$cpid"
ans_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q '^HTTP 400$' "$T/dec.out" || fail "the waiting client got no 400: $(cat "$T/dec.out")"
[ "$ans_ms" -lt 10000 ] || fail "the waiting client was answered after $ans_ms ms"
ok "SIGTERM: KME_B stopped in $stop_ms ms (exit 0); the waiting dec_keys was answered 400 after $ans_ms ms, not after notice_wait"
pair_stop A
echo "kmed_stop_wait: all checks passed"

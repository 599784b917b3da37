#!/usr/bin/env bash
# tls_front_end.sh - the OpenSSL front end and its own HTTP/1.1, against tls-test-server:
# TLS 1.3 PSK (SHA-384 and SHA-256 bindings) with keep-alive, the four TLS 1.2 PSK suites,
# mTLS identities, refusals at the handshake (wrong PSK, unknown identity, no certificate,
# foreign CA) that never reach HTTP, the connection limit before the handshake, the handshake
# timeout, a blocked handler or a stalled handshake not stalling others (also on one pump
# thread, where HTTP runs too), no thread per connection, the worker queue bound, and
# identity isolation under concurrency. No latency limit: each timing property is asserted as an order of events
# seen by the server (its counters, its connections), every wait bounded (tests/lib/wait.sh).
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/$BUILD/tests
for t in tls-test-server psk-session tls-identity-stress; do
  [ -x "$B/$t" ] || { echo "missing $B/$t (build the tests first)"; exit 1; }
done
# shellcheck source=../lib/skip.sh
. "$ROOT/tests/lib/skip.sh"
qk_need_cmd openssl curl timeout ss
# shellcheck source=../lib/pki.sh
source "$ROOT/tests/lib/pki.sh"
# shellcheck source=../lib/wait.sh
source "$ROOT/tests/lib/wait.sh"

TMP=$(mktemp -d /tmp/qk-tls-fe.XXXXXX)
PIDS=()
cleanup() {
  exec 3<&- 4<&- 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
cd "$TMP" || exit 1

FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
check() { # DESCRIPTION COMMAND...
  local d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
jget() { # FIELD JSON -> value without quotes
  printf '%s' "$2" | grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2- | tr -d '"'
}

# ---- PKI and PSKs ----------------------------------------------------------------------------
pki_ca . ca && pki_server . ca server && pki_client . ca alice && pki_client . ca bob &&
  pki_ca . evil && pki_client . evil mallory || { echo "PKI setup failed"; exit 1; }
K384=$(openssl rand -hex 32)
K256=$(openssl rand -hex 32)
KBAD=$(openssl rand -hex 32)
{
  echo "# test PSKs"
  echo "s384:$K384"
  echo "s256:$K256:sha256"
  for i in 1 2 3 4 5; do echo "p$i:$(openssl rand -hex 32)"; done
  echo "p6:$(openssl rand -hex 32):sha256"
} >psk.txt
chmod 600 psk.txt
"$B/psk-session" "$K384" s384.pem && "$B/psk-session" "$KBAD" bad.pem || { echo "psk-session failed"; exit 1; }

start_server() { # NAME ARGS... ; sets PORT
  local name=$1; shift
  "$B/tls-test-server" --port-file "$name.port" "$@" 2>"$name.log" &
  PIDS+=($!)
  local i
  for i in $(seq 100); do
    [ -s "$name.port" ] && { PORT=$(cat "$name.port"); return 0; }
    kill -0 "${PIDS[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "server $name did not start:"; cat "$name.log"; exit 1
}

# One connection, requests from stdin; -quiet keeps reading until the server closes.
sc() { timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PORT" "$@" 2>&1; }
GET2=$'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
get1() { printf 'GET /%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$1"; }
curl_ok() { curl -sS --max-time 10 --cacert ca.crt "$@"; }
# The handler's request counter, read through a good mTLS request (itself counted).
requests_now() { jget requests "$(curl_ok --cert alice.crt --key alice.key "https://127.0.0.1:$PORT/count")"; }
# After BASE=$(requests_now) and PROBES=0: true once the handler has seen one request more than
# BASE and the probes made since (each probe is a request of its own).
entered_handler() {
  PROBES=$((PROBES + 1))
  local r
  r=$(requests_now)
  [ "${r:-0}" -ge $((BASE + PROBES + 1)) ]
}
# The kernel holds nothing for the server: no connection waits in the listener's accept queue
# (Recv-Q of a LISTEN socket) and no received byte waits unread on an accepted one.
server_caught_up() { [ -z "$(ss -Htan "sport = :$PORT" | awk '$2 != 0')" ]; }

# ---- PSK or mTLS listener (SKIP-style) -------------------------------------------------------
start_server skip --mode psk-or-mtls --cert server.crt --key server.key --ca ca.crt --psk-file psk.txt

out=$(printf '%s' "$GET2" | sc -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -psk_identity s384 -psk_session s384.pem)
n=$(printf '%s\n' "$out" | grep -c '"kind":"psk","id":"s384"')
acc=$(printf '%s\n' "$out" | grep -o '"accepted":[0-9]*' | sort -u | wc -l)
check "TLS 1.3 PSK (SHA-384 session): two requests on one keep-alive connection" \
  test "$n" = 2 -a "$acc" = 1
check "... negotiated TLS_AES_256_GCM_SHA384" grep -q '"cipher":"TLS_AES_256_GCM_SHA384"' <<<"$out"

before=$(requests_now)
out=$(get1 c | sc -tls1_3 -psk_identity s384 -psk "$K384")
check "-psk (SHA-256 binding) refused for a SHA-384 entry" bash -c '! grep -q "\"kind\"" <<<"$1"' _ "$out"
out=$(get1 d | sc -tls1_3 -psk_identity s256 -psk "$K256")
check "-psk accepted for an entry marked sha256 (TLS_AES_128_GCM_SHA256)" \
  grep -q '"kind":"psk","id":"s256".*"cipher":"TLS_AES_128_GCM_SHA256"' <<<"$out"
before=$((before + 1)) # the sha256 request above reached HTTP
for c in DHE-PSK-AES256-CBC-SHA384 DHE-PSK-AES256-CBC-SHA PSK-AES256-GCM-SHA384 DHE-PSK-AES256-GCM-SHA384; do
  out=$(get1 "$c" | sc -tls1_2 -cipher "$c" -psk_identity s384 -psk "$K384")
  check "TLS 1.2 $c" grep -q "\"kind\":\"psk\",\"id\":\"s384\".*\"cipher\":\"$c\"" <<<"$out"
  before=$((before + 1))
done

# Refusals: none of these may reach the handler.
out=$(get1 x | sc -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -psk_identity s384 -psk_session bad.pem)
check "TLS 1.3 wrong PSK refused" bash -c '! grep -q "\"kind\"" <<<"$1"' _ "$out"
out=$(get1 x | sc -tls1_2 -cipher PSK-AES256-GCM-SHA384 -psk_identity s384 -psk "$KBAD")
check "TLS 1.2 wrong PSK refused" bash -c '! grep -q "\"kind\"" <<<"$1"' _ "$out"
out=$(get1 x | sc -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -psk_identity nobody -psk_session s384.pem)
check "TLS 1.3 unknown identity refused" bash -c '! grep -q "\"kind\"" <<<"$1"' _ "$out"
out=$(get1 x | sc -tls1_2 -cipher PSK-AES256-GCM-SHA384 -psk_identity nobody -psk "$K384")
check "TLS 1.2 unknown identity refused" bash -c '! grep -q "\"kind\"" <<<"$1"' _ "$out"
check "no PSK and no certificate refused" bash -c '! curl -s --max-time 10 --cacert ca.crt "https://127.0.0.1:$1/x" >/dev/null' _ "$PORT"
check "certificate from another CA refused" bash -c '! curl -s --max-time 10 --cacert ca.crt --cert mallory.crt --key mallory.key "https://127.0.0.1:$1/x" >/dev/null' _ "$PORT"
after=$(requests_now)
check "refused handshakes never reached HTTP (requests $before -> $after, one good request)" \
  test "$after" = "$((before + 1))"

out=$(curl_ok --cert alice.crt --key alice.key "https://localhost:$PORT/me")
check "curl with a client certificate gets its CN" grep -q '"kind":"cert","id":"alice"' <<<"$out"

# A handler blocked for 6 s must not stall another connection: once the blocked request is in
# the handler, another one is answered while it still sleeps (its client has no answer yet).
BASE=$(requests_now) PROBES=0
curl_ok --cert bob.crt --key bob.key "https://127.0.0.1:$PORT/sleep/6000" >sleep.out &
SLEEPER=$!
wait_for entered_handler 10 "the sleeping request to reach the handler" || bad "the sleeping request never reached the handler"
out=$(curl_ok --cert alice.crt --key alice.key "https://127.0.0.1:$PORT/quick")
asleep=no
kill -0 $SLEEPER 2>/dev/null && [ ! -s sleep.out ] && asleep=yes
check "a blocked handler does not stall other connections (answered while it sleeps: $asleep)" \
  bash -c 'grep -q "\"path\":\"/quick\"" <<<"$1" && [ "$2" = yes ]' _ "$out" "$asleep"
wait $SLEEPER
check "... and the blocked request completes" grep -q '"id":"bob"' sleep.out

# Large bodies through the pump, both directions, on one keep-alive connection.
head -c $((20 * 1024 * 1024)) /dev/zero >up.bin
out=$(curl_ok --cert alice.crt --key alice.key -o down.bin "https://127.0.0.1:$PORT/big/4194304" \
  --next --cacert ca.crt --cert alice.crt --key alice.key --data-binary @up.bin "https://127.0.0.1:$PORT/up")
check "4 MiB download and 20 MiB upload through the pump" \
  bash -c '[ "$(stat -c %s down.bin)" = 4194304 ] && grep -q "\"body_len\":20971520" <<<"$1"' _ "$out"
rm -f up.bin down.bin

out=$("$B/tls-identity-stress" --port "$PORT" --threads 16 --requests 200 --psk-file psk.txt \
  --ca ca.crt --cert-dir . --cert alice --cert bob 2>&1)
rc=$?
echo "     $out" | tail -3
check "16 threads x 200 keep-alive requests, mixed PSK/cert identities, no mix-ups (rc=$rc)" \
  bash -c '[ "$1" = 0 ] && grep -q "mismatches=0 errors=0" <<<"$2"' _ "$rc" "$out"

# ---- a client stalled in its handshake does not stall the others -----------------------------
# One pump thread, so a front end that waited on one client's handshake would have no thread
# left for the next. The stalled client sends the first 3 bytes of a TLS record and stops; once
# the server has accepted it and read those bytes, another client must be served while the
# stalled connection is still held ("active" counts both; the handshake timeout is 10 s).
start_server stall --mode psk --psk-file psk.txt --threads 1
exec 5<>"/dev/tcp/127.0.0.1/$PORT"
printf '\x16\x03\x01' >&5
wait_for server_caught_up 10 "the server to accept the stalled client and read its bytes" || bad "the server did not catch up"
out=$(get1 stalled | sc -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -psk_identity s384 -psk_session s384.pem)
act=$(jget active "$out")
check "a client stalled mid-handshake does not stall another (active=${act:-none}, >=2)" \
  bash -c 'grep -q "\"id\":\"s384\"" <<<"$1" && [ "${2:-0}" -ge 2 ]' _ "$out" "$act"
exec 5<&-

# ---- one pump thread: suspension, thread count, the worker queue bound ------------------------
# HTTP runs inside the pump threads; a handler that may block runs on a
# worker with its connection suspended. With ONE pump thread, a handler sleeping 3 s must not
# delay a request on another connection of that same thread.
sleeping() { [ "$(grep -c 'handler: sleeping' "$1.log")" -ge "$2" ]; }
start_server one --mode mtls --cert server.crt --key server.key --ca ca.crt --threads 1 --workers 2 --max-conn 400
SRV=${PIDS[-1]}
curl_ok --cert bob.crt --key bob.key "https://127.0.0.1:$PORT/sleep/3000" >one-sleep.out &
SLEEPER=$!
wait_for 'sleeping one 1' 10 "the sleeping request to reach a worker" || bad "the sleeping request never reached a worker"
t0=$(date +%s%N)
out=$(curl_ok --cert alice.crt --key alice.key "https://127.0.0.1:$PORT/quick1")
ms=$((($(date +%s%N) - t0) / 1000000))
asleep=no
kill -0 $SLEEPER 2>/dev/null && [ ! -s one-sleep.out ] && asleep=yes
check "one pump thread: a request is answered while a handler of the same thread sleeps (asleep: $asleep, ${ms} ms)" \
  bash -c 'grep -q "\"path\":\"/quick1\"" <<<"$1" && [ "$2" = yes ]' _ "$out" "$asleep"
wait $SLEEPER
check "... and the sleeping request completes" grep -q '"path":"/sleep/3000"' one-sleep.out

# No thread per connection: 200 keep-alive TLS connections held open add no thread to the
# server (1 pump + 2 workers + main; the bound allows a few more).
tasks() { find "/proc/$SRV/task" -mindepth 1 -maxdepth 1 | wc -l; }
n_before=$(tasks)
"$B/tls-identity-stress" --port "$PORT" --threads 200 --requests 2 --hold-ms 8000 \
  --ca ca.crt --cert-dir . --cert alice --cert bob >hold.out 2>&1 &
HOLDER=$!
active_now() { jget active "$(curl_ok --cert alice.crt --key alice.key "https://127.0.0.1:$PORT/active")"; }
wait_for '[ "$(active_now)" -ge 201 ] 2>/dev/null' 60 "200 connections open at once" || bad "200 connections were never open at once"
act=$(active_now)
n_during=$(tasks)
check "200 keep-alive TLS connections (active=$act): server threads $n_before -> $n_during (<= 1 pump + 2 workers + 4)" \
  test "${act:-0}" -ge 201 -a "$n_during" -le 7 -a "$n_during" -le $((n_before + 1))
wait $HOLDER; hrc=$?
check "... every held connection was served (rc=$hrc)" bash -c '[ "$1" = 0 ] && grep -q "errors=0" hold.out' _ "$hrc"

# The worker queue is bounded: with its one worker blocked and its one queue slot taken, a
# request is answered 503 with Retry-After at once, without reaching the handler.
start_server q --mode mtls --cert server.crt --key server.key --ca ca.crt --threads 1 --workers 1 --queue 1
curl_ok --cert bob.crt --key bob.key "https://127.0.0.1:$PORT/sleep/3000" >q1.out &
Q1=$!
wait_for 'sleeping q 1' 10 "the first request to block the worker" || bad "the first request never reached the worker"
curl_ok --cert bob.crt --key bob.key "https://127.0.0.1:$PORT/sleep/100" >q2.out &
Q2=$!
wait_for server_caught_up 10 "the server to read the queued request" || bad "the server did not catch up"
t0=$(date +%s%N)
out=$(curl -sS -i --max-time 10 --cacert ca.crt --cert alice.crt --key alice.key "https://127.0.0.1:$PORT/excess" 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
blocked=no
kill -0 $Q1 2>/dev/null && [ ! -s q1.out ] && blocked=yes
check "queue full: 503 with Retry-After: 1 while the worker is still blocked (blocked: $blocked, ${ms} ms)" \
  bash -c 'grep -q "^HTTP/1.1 503" <<<"$1" && grep -qi "^Retry-After: 1" <<<"$1" && [ "$2" = yes ]' _ "$out" "$blocked"
wait $Q1 $Q2
r2=$(jget requests "$(cat q2.out)")
check "... the blocked and the queued requests complete, the refused one never reached the handler (requests=$r2)" \
  bash -c 'grep -q "\"path\":\"/sleep/3000\"" q1.out && grep -q "\"path\":\"/sleep/100\"" q2.out && [ "$1" = 2 ]' _ "$r2"

# ---- mTLS listener (ETSI 014 style) ----------------------------------------------------------
FP_BOB=$(openssl x509 -in bob.crt -noout -fingerprint -sha256 | cut -d= -f2)
start_server mtls --mode mtls --cert server.crt --key server.key --ca ca.crt --fp-map "$FP_BOB=SAE_BOB"
before=$(requests_now)
check "mTLS: missing client certificate refused" bash -c '! curl -s --max-time 10 --cacert ca.crt "https://127.0.0.1:$1/x" >/dev/null' _ "$PORT"
# The refusal must reach the client as a TLS alert, never as a TCP reset that can swallow it
# (the front end's lingering close): 30 tries, every one names the alert.
alerted=0
for _ in $(seq 30); do
  e=$(curl -sS --max-time 10 --cacert ca.crt "https://127.0.0.1:$PORT/x" -o /dev/null 2>&1)
  case "$e" in *alert*certificate\ required*) alerted=$((alerted + 1)) ;; esac
done
check "mTLS: a missing certificate is refused with the alert every time ($alerted/30)" test "$alerted" = 30
check "mTLS: certificate from another CA refused" bash -c '! curl -s --max-time 10 --cacert ca.crt --cert mallory.crt --key mallory.key "https://127.0.0.1:$1/x" >/dev/null' _ "$PORT"
out=$(get1 x | sc -tls1_3 -psk_identity s384 -psk "$K384")
check "mTLS: a PSK client is refused" bash -c '! grep -q "\"kind\"" <<<"$1"' _ "$out"
after=$(requests_now)
check "mTLS: refusals never reached HTTP" test "$after" = "$((before + 1))"
out=$(curl_ok --tlsv1.2 --tls-max 1.2 --cert bob.crt --key bob.key "https://localhost:$PORT/v12")
check "mTLS over TLS 1.2; the fingerprint map replaces bob's CN" \
  grep -q '"kind":"cert","id":"SAE_BOB","path":"/v12".*"TLSv1.2"' <<<"$out"
fp_hex=$(printf '%s' "$FP_BOB" | tr -d : | tr 'A-F' 'a-f')
check "... and the identity carries the certificate fingerprint" grep -q "\"fp\":\"$fp_hex\"" <<<"$out"
out=$(curl_ok --cert alice.crt --key alice.key "https://localhost:$PORT/me")
check "mTLS: an unmapped certificate keeps its CN" grep -q '"kind":"cert","id":"alice"' <<<"$out"

# ---- connection limit and handshake timeout (pure PSK listener) ------------------------------
# Two silent clients hold both slots. A third is refused while they still hold them (no EOF on
# either yet), so before any handshake of its own, not after theirs timed out; they are dropped
# by the handshake timeout: not before it (measured from their connect) and within 30 s.
HS_MS=4000
start_server limit --mode psk --psk-file psk.txt --max-conn 2 --handshake-timeout-ms $HS_MS
t_open=$(date +%s%N)
exec 3<>"/dev/tcp/127.0.0.1/$PORT" 4<>"/dev/tcp/127.0.0.1/$PORT"
wait_for server_caught_up 10 "the server to accept both silent clients" || bad "the server did not catch up"
out=$(get1 over | sc -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -psk_identity s384 -psk_session s384.pem)
held=yes
read -r -t 0 -u 3 && held=no
read -r -t 0 -u 4 && held=no
check "over-limit client refused while both slots are held (held: $held)" \
  bash -c '! grep -q "\"kind\"" <<<"$1" && [ "$2" = yes ]' _ "$out" "$held"
timeout 30 cat <&3 >/dev/null
timeout 30 cat <&4 >/dev/null
ms=$((($(date +%s%N) - t_open) / 1000000))
check "silent clients dropped by the handshake timeout (${ms} ms after connecting, >= $HS_MS, < 30 s)" \
  test "$ms" -ge $HS_MS -a "$ms" -lt 30000
exec 3<&- 4<&-
out=
wait_for 'out=$(get1 after | sc -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -psk_identity s384 -psk_session s384.pem); grep -q "\"id\":\"s384\"" <<<"$out"' \
  10 "a slot to be free again"
check "limit listener serves again once the slots are free" grep -q '"id":"s384"' <<<"$out"
rl=$(jget refused_limit "$out")
hf=$(jget handshakes_failed "$out")
check "stats: refused_limit=$rl (>=1), handshakes_failed=$hf (>=2 timeouts)" \
  test "${rl:-0}" -ge 1 -a "${hf:-0}" -ge 2
check "handshake timeouts are logged" grep -q "handshake timeout" limit.log

# ---- server certificate only, and plaintext -------------------------------------------------
start_server sc --mode server-cert --cert server.crt --key server.key
out=$(curl_ok "https://localhost:$PORT/anon")
check "server-cert mode: anonymous client, identity kind none" grep -q '"kind":"none","id":""' <<<"$out"
start_server plain --mode none
out=$(curl -sS --max-time 10 "http://127.0.0.1:$PORT/plain")
check "plaintext mode answers with kind none" grep -q '"kind":"none","id":"","path":"/plain"' <<<"$out"

# ---- graceful stop: a response in flight at SIGTERM still reaches its client -----------------
# (The requests sleep 3 s in the handler; SIGTERM follows as soon as a probe saw one arrive.)
start_server drain --mode mtls --cert server.crt --key server.key --ca ca.crt
BASE=$(requests_now) PROBES=0
curl_ok --cert alice.crt --key alice.key "https://127.0.0.1:$PORT/sleep/3000" >drain.out 2>&1 &
cpid=$!
wait_for entered_handler 10 "the request to reach the handler" || bad "the request never reached the handler"
kill -TERM "${PIDS[-1]}"
wait "$cpid"; crc=$?
check "a request in flight at SIGTERM is answered (curl rc $crc)" grep -q '"path":"/sleep/3000"' drain.out
wait "${PIDS[-1]}"; drc=$?
unset 'PIDS[-1]'
check "the draining server exits 0 (rc $drc)" test "$drc" = 0
out=$(curl -sS --max-time 3 --cacert ca.crt --cert alice.crt --key alice.key "https://127.0.0.1:$PORT/x" 2>&1)
check "after the stop nothing answers" test -z "$(grep -o '"path"' <<<"$out")"
# A request that starts on a kept-alive connection while the server drains is refused with 503
# and never reaches the handler (nothing new begins during a stop).
start_server drain2 --mode mtls --cert server.crt --key server.key --ca ca.crt
BASE=$(requests_now) PROBES=0
{ printf 'GET /sleep/3000 HTTP/1.1\r\nHost: x\r\n\r\nGET /late HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 4; } |
  sc -cert alice.crt -key alice.key -CAfile ca.crt >drain2.out 2>&1 &
cpid=$!
wait_for entered_handler 10 "the request to reach the handler" || bad "the request never reached the handler"
kill -TERM "${PIDS[-1]}"
wait "$cpid"
wait "${PIDS[-1]}"; drc=$?
unset 'PIDS[-1]'
check "draining: the request in flight is answered" grep -q '"path":"/sleep/3000"' drain2.out
check "draining: a new request on a kept-alive connection gets 503" grep -q 'HTTP/1.1 503' drain2.out
check "draining: the late request never reached the handler" test -z "$(grep -o '"path":"/late"' drain2.out)"
check "the second draining server exits 0 (rc $drc)" test "$drc" = 0

# ---- clean stop ------------------------------------------------------------------------------
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
rcs=0
for p in "${PIDS[@]}"; do wait "$p" || rcs=1; done
PIDS=()
check "every server stopped cleanly on SIGTERM" test "$rcs" = 0
if grep -l "ERROR\|runtime error\|AddressSanitizer" ./*.log >/dev/null 2>&1; then
  bad "sanitizer or error output in server logs:"; grep -h "ERROR\|runtime error" ./*.log | head -20
fi
if grep -q "$K384\|$K256" ./*.log; then bad "a PSK appeared in a server log"; fi

echo "tls_front_end: $FAILS failure(s)"
[ "$FAILS" -eq 0 ]

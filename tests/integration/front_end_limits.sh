#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): connection floods and deadlines measured in seconds.
# front_end_limits.sh - SLOW (about 55 s): the TLS front end under connection floods and slow
# clients (issue 17 items 2 and 3), on a real qkd-kmed pair, loopback only, bounded in count
# (conn-flood opens at most 2,000 connections per run) and time (every client holds 15 s at
# most). FRONT_END_LIMITS_PHASES (default "1 2 3 4") runs only some of the phases below.
#
#   1. floods: 2,000 raw TCP connections (from 127.0.0.2) and 2,000 unfinished TLS ClientHellos
#      (from 127.0.0.3) against the ETSI listener, then against the skip, peer, device and admin
#      listeners at once; meanwhile an SAE (from 127.0.0.1) gets every ETSI status answer 200
#      within 1 s, and each flooded listener answers its own client within 1 s
#      (max_pending_per_source, default 256);
#   2. identity budget: SAE_A1 holds 1,100 idle keep-alive TLS connections to KME_A's ETSI
#      listener; at most max_connections / 2 are let in, and SAE_A2 is still served within 1 s;
#   3. eviction: at KME_B (etsi014: max_connections = 300, per identity 300) SAE_B1 opens 400
#      idle keep-alive connections: each is answered (the oldest idle ones are closed to make
#      room) and SAE_B2 is still served;
#   4. deadlines: at KME_A (header_timeout = body_timeout = 4s on every listener) a client that
#      sends its request headers one byte a second is cut at ~4 s on every listener (etsi014,
#      skip, peer, device, admin), one that sends its body one byte a second at ~4 s after its
#      headers, and an idle keep-alive connection outlives the header deadline.
set -u
# shellcheck source=../lib/etsi_pair.sh
. "$(dirname "$0")/../lib/etsi_pair.sh"
FLOOD=$BUILD/tests/conn-flood
qk_need_bin "$FLOOD"
qk_need_cmd awk sed

# The flood holds ~10,000 client sockets and the KMEs a few thousand: raise the soft limit.
# (Refused connections are closed at once on both sides, so a few thousand are open at a time.)
ulimit -n 8192 2>/dev/null || fail "cannot raise ulimit -n to 8192 (hard limit $(ulimit -Hn))"
PHASES=" ${FRONT_END_LIMITS_PHASES:-1 2 3 4} "
phase() { [[ $PHASES == *" $1 "* ]]; }

pair_init
pair_skip_conf A psk-or-mtls
# KME_A: short deadlines on every listener (phase 4); KME_B: a small ETSI listener (phase 3).
sed -i '/^\[listener /a header_timeout = 4s\nbody_timeout = 4s' "$T/kme_A.conf"
sed -i '/^\[listener etsi014\]/a max_connections = 300\nmax_connections_per_identity = 300' "$T/kme_B.conf"

# The new [listener] keys: out-of-range values are refused by --check-config, naming the key.
for bad in "header_timeout = 2h" "body_timeout = 50ms" "max_pending_per_source = 0" \
  "max_connections_per_identity = 100001"; do
  sed "/^\[listener etsi014\]/a $bad" "$T/kme_B.conf" >"$T/bad.conf"
  if QKD_KMED_MASTER_KEY=$(printf '%064d' 0) "$KMED" --check-config "$T/bad.conf" >"$T/bad.out" 2>&1; then
    fail "--check-config accepted '$bad'"
  fi
  grep -q "${bad%% *}" "$T/bad.out" || fail "--check-config on '$bad' does not name the key: $(cat "$T/bad.out")"
done
QKD_KMED_MASTER_KEY=$(printf '%064d' 0) "$KMED" --check-config "$T/kme_A.conf" >"$T/good.out" 2>&1 ||
  fail "--check-config refused the deadlines of KME_A: $(cat "$T/good.out")"
ok "--check-config: the limit and deadline keys are range-checked"

pair_start A
pair_start B

CA=$T/pki/ca.crt
NFAIL=0
check() { # DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else echo "FAIL: $what"; NFAIL=$((NFAIL + 1)); fi
}
metric() { admin_metric "$@"; } # KME NAME FILTER: sum of the samples

# probe URL CURL_ARGS...: one request on a new connection; prints "CODE SECONDS".
probe() {
  local url=$1
  shift
  curl -s -o /dev/null --max-time 2 --cacert "$CA" -w '%{http_code} %{time_total}\n' "$@" "$url"
}
# probe_loop FILE SECONDS URL CURL_ARGS...: a probe every 0.5 s for SECONDS; one line each.
probe_loop() {
  local file=$1 secs=$2 i
  shift 2
  : >"$file"
  for ((i = 0; i < secs * 2; i++)); do
    probe "$@" >>"$file"
    sleep 0.5
  done
}
# all_fast FILE CODE: every probe answered CODE ("any": any HTTP status) within 1 s.
all_fast() {
  awk -v want="$2" 'BEGIN { n = 0; bad = 0 }
    { n++; if ($1 == "000" || (want != "any" && $1 != want) || $2 + 0 > 1.0) { bad++; print "     late or failed: " $0 } }
    END { printf "     %d probe(s), %d late or failed\n", n, bad; exit !(n >= 4 && bad == 0) }' "$1"
}
sae_args() { echo "--cert $(crt "$1") --key $(key "$1")"; }
status_url() { echo "$(etsi_url "$1")/api/v1/keys/$2/status"; }
# field NAME LINE: a key=value field of a conn-flood result line.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -n 1; }

# ---- 1. floods ------------------------------------------------------------------------------
if phase 1; then
# flood_start NAME PORT MODES...: 2,000 connections per mode held 8 s, in the background.
FLOOD_PIDS=()
flood_start() {
  local name=$1 port=$2 mode src
  shift 2
  for mode in "$@"; do
    case $mode in tcp) src=127.0.0.2 ;; *) src=127.0.0.3 ;; esac
    "$FLOOD" --port "$port" --mode "$mode" --source "$src" --count 2000 --concurrency 1000 \
      --hold 8 >"$T/flood_${name}_$mode.out" 2>&1 &
    FLOOD_PIDS+=($!)
  done
}
flood_wait() {
  local p
  for p in "${FLOOD_PIDS[@]}"; do wait "$p"; done
  FLOOD_PIDS=()
}

flood_start etsi014 "${PORT[A.etsi014]}" tcp hello
sleep 1
# shellcheck disable=SC2046
probe_loop "$T/probe_etsi.txt" 6 "$(status_url A SAE_B1)" $(sae_args SAE_A1)
flood_wait
echo "     flood etsi014: $(cat "$T/flood_etsi014_tcp.out") / $(cat "$T/flood_etsi014_hello.out")"
check "2,000 raw TCP + 2,000 ClientHello connections on the ETSI listener: every SAE status 200 within 1 s" \
  all_fast "$T/probe_etsi.txt" 200
src=$(metric A qkd_tls_connections_limited_total 'listener="etsi014",reason="source"')
check "... the flood was held at max_pending_per_source (refused by source: $src)" test "${src:-0}" -ge 1000

# The four other listeners at once, each probed by its own client; the SAE keeps going.
flood_start skip "${PORT[A.skip]}" tcp hello
flood_start peer "${PORT[A.peer]}" tcp hello
flood_start device "${PORT[A.device]}" tcp hello
flood_start admin "${PORT[A.admin]}" tcp
sleep 1
# shellcheck disable=SC2046
probe_loop "$T/probe_skip.txt" 5 "$(skip_url A)/capabilities" $(sae_args skip_a) &
P1=$!
# shellcheck disable=SC2046
probe_loop "$T/probe_peer.txt" 5 "https://127.0.0.1:${PORT[A.peer]}/peer/v1/none" $(sae_args KME_B) &
P2=$!
# shellcheck disable=SC2046
probe_loop "$T/probe_device.txt" 5 "$(device_url A)/device/v1/none" $(sae_args qkd-sim) &
P3=$!
probe_loop "$T/probe_admin.txt" 5 "$(admin_url A)/metrics" &
P4=$!
# shellcheck disable=SC2046
probe_loop "$T/probe_etsi2.txt" 5 "$(status_url A SAE_B1)" $(sae_args SAE_A2)
wait $P1 $P2 $P3 $P4
flood_wait
for l in skip peer device admin; do
  check "2,000 raw TCP (+ 2,000 ClientHello) connections on the $l listener: its client answered within 1 s" \
    all_fast "$T/probe_$l.txt" any
done
check "... and meanwhile every SAE status 200 within 1 s" all_fast "$T/probe_etsi2.txt" 200
fi

# ---- 2. identity budget ---------------------------------------------------------------------
if phase 2; then
"$FLOOD" --port "${PORT[A.etsi014]}" --mode tls --cert "$(crt SAE_A1)" --key "$(key SAE_A1)" \
  --count 1100 --concurrency 64 --request /api/v1/keys/SAE_B1/status --hold 14 >"$T/idle_a.out" 2>&1 &
HOLDER=$!
sleep 7
# shellcheck disable=SC2046
probe_loop "$T/probe_id.txt" 5 "$(status_url A SAE_B1)" $(sae_args SAE_A2)
wait $HOLDER
res=$(cat "$T/idle_a.out")
echo "     SAE_A1: $res"
answered=$(field answered "$res")
idref=$(metric A qkd_tls_connections_limited_total 'listener="etsi014",reason="identity"')
check "SAE_A1 holding idle connections gets at most 512 of 1,100 (answered $answered, refused by identity $idref)" \
  test "${answered:-0}" -ge 400 -a "${answered:-0}" -le 512 -a "${idref:-0}" -ge 500
check "... while SAE_A2 gets every status 200 within 1 s" all_fast "$T/probe_id.txt" 200
fi

# ---- 3. eviction of the oldest idle connection ----------------------------------------------
if phase 3; then
ev0=$(metric B qkd_tls_connections_evicted_total 'listener="etsi014"')
"$FLOOD" --port "${PORT[B.etsi014]}" --mode tls --cert "$(crt SAE_B1)" --key "$(key SAE_B1)" \
  --count 400 --concurrency 32 --request /api/v1/keys/SAE_A1/status --hold 12 >"$T/idle_b.out" 2>&1 &
HOLDER=$!
sleep 6
# shellcheck disable=SC2046
probe_loop "$T/probe_ev.txt" 4 "$(status_url B SAE_A1)" $(sae_args SAE_B2)
wait $HOLDER
res=$(cat "$T/idle_b.out")
echo "     SAE_B1: $res"
ev=$(($(metric B qkd_tls_connections_evicted_total 'listener="etsi014"') - ev0))
check "max_connections = 300 and 400 idle keep-alive connections: every one answered, the oldest idle closed to make room (answered $(field answered "$res"), evicted $ev)" \
  test "$(field answered "$res")" = 400 -a "$ev" -ge 100
check "... and SAE_B2 gets every status 200 within 1 s" all_fast "$T/probe_ev.txt" 200
fi

# ---- 4. header and body deadlines -----------------------------------------------------------
if phase 4; then
# slow NAME PORT TEXT [conn-flood args...]: one client sending TEXT a byte a second, for 15 s at
# most, in the background.
SLOW_PIDS=()
slow() {
  local name=$1 port=$2 text=$3
  shift 3
  "$FLOOD" --port "$port" --mode slow --text "$text" --interval-ms 1000 --hold 15 "$@" \
    >"$T/slow_$name.out" 2>&1 &
  SLOW_PIDS+=($!)
}
REQ=$'GET /api/v1/keys/SAE_B1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n'
HEAD=$'POST /api/v1/keys/SAE_B1/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n'
declare -A H0=()
for l in etsi014 skip peer device admin; do
  H0[$l]=$(metric A qkd_tls_deadline_closed_total "listener=\"$l\",phase=\"header\"")
done
B0=$(metric A qkd_tls_deadline_closed_total 'listener="etsi014",phase="body"')
slow etsi014 "${PORT[A.etsi014]}" "$REQ" --cert "$(crt SAE_A1)" --key "$(key SAE_A1)"
slow skip "${PORT[A.skip]}" "$REQ" --cert "$(crt skip_a)" --key "$(key skip_a)"
slow peer "${PORT[A.peer]}" "$REQ" --cert "$(crt KME_B)" --key "$(key KME_B)"
slow device "${PORT[A.device]}" "$REQ" --cert "$(crt qkd-sim)" --key "$(key qkd-sim)"
slow admin "${PORT[A.admin]}" "$REQ"
slow body "${PORT[A.etsi014]}" "$HEAD"'{"number":1,"size":256}' --prefix "${#HEAD}" \
  --cert "$(crt SAE_A1)" --key "$(key SAE_A1)"
"$FLOOD" --port "${PORT[A.etsi014]}" --mode tls --cert "$(crt SAE_A1)" --key "$(key SAE_A1)" \
  --request /api/v1/keys/SAE_B1/status --hold 7 >"$T/keepalive.out" 2>&1
for p in "${SLOW_PIDS[@]}"; do wait "$p"; done
# cut_at NAME: the slow client was closed by the server 3.5..6 s after it connected.
cut_at() {
  local res t
  res=$(cat "$T/slow_$1.out")
  t=$(field first_close_ms "$res")
  echo "     $1: $res"
  [ "$(field closed "$res")" = 1 ] && [ "${t:-0}" -ge 3500 ] && [ "${t:-0}" -le 6000 ]
}
for l in etsi014 skip peer device admin; do
  check "$l: a client sending its headers one byte a second is cut at header_timeout (4 s)" cut_at "$l"
  h=$(($(metric A qkd_tls_deadline_closed_total "listener=\"$l\",phase=\"header\"") - ${H0[$l]}))
  check "... counted in qkd_tls_deadline_closed_total{listener=\"$l\",phase=\"header\"} ($h)" test "$h" -ge 1
done
check "etsi014: a client sending its body one byte a second is cut at body_timeout (4 s)" cut_at body
b=$(($(metric A qkd_tls_deadline_closed_total 'listener="etsi014",phase="body"') - B0))
check "... counted in qkd_tls_deadline_closed_total{phase=\"body\"} ($b)" test "$b" -ge 1
res=$(cat "$T/keepalive.out")
check "an idle keep-alive connection outlives the header deadline (7 s: $res)" \
  test "$(field answered "$res")" = 1 -a "$(field open "$res")" = 1 -a "$(field closed "$res")" = 0
fi

[ "$NFAIL" = 0 ] || fail "$NFAIL check(s) failed"
echo "front_end_limits: all checks passed"

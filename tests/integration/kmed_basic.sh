#!/usr/bin/env bash
# kmed_basic.sh - two qkd-kmed (KME_A, KME_B) on 127.0.0.1: --check-config, start with
# --port-file, identical blocks pushed to both device APIs get confirmed by the inventory
# exchange, a wrong device identity is refused (403), a conflicting push is refused (409,
# burned), a block that differs between the two ends is burned at both, /healthz, and SIGTERM
# stops both cleanly; a second qkd-kmed on a running KME's data_dir fails to start.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
KMED=$BUILD/bin/qkd-kmed
# shellcheck source=/dev/null
. "$ROOT/tests/lib/skip.sh"
qk_need_bin "$KMED"
qk_need_cmd curl openssl
# shellcheck source=/dev/null
. "$ROOT/tests/lib/pki.sh"
# shellcheck source=/dev/null
. "$ROOT/tests/lib/ports.sh"

T=$(mktemp -d /tmp/qk-kmed-basic.XXXXXX)
declare -A PID=() PORT=() PEERPORT=()
cleanup() {
  local n
  for n in "${!PID[@]}"; do [ -n "${PID[$n]}" ] && kill -TERM "${PID[$n]}" 2>/dev/null; done
  for n in "${!PID[@]}"; do
    [ -n "${PID[$n]}" ] && { timeout 10 tail --pid="${PID[$n]}" -f /dev/null 2>/dev/null ||
      kill -KILL "${PID[$n]}" 2>/dev/null; }
  done
  if [ "${QK_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for n in A B; do [ -f "$T/kme_$n.log" ] && { echo "--- tail of kme_$n.log"; tail -n 20 "$T/kme_$n.log"; }; done
  exit 1
}
ok() { echo "ok: $*"; }


# ---- PKI and configs ---------------------------------------------------------------------
P=$T/pki
pki_ca "$P" ca >/dev/null || fail "pki_ca"
pki_ca "$P" otherca >/dev/null || fail "pki_ca otherca"
for n in kme_a kme_b; do pki_server "$P" ca "$n" >/dev/null || fail "pki_server $n"; done
# Role markers (docs/qkd-kmed.md "Roles"): intruder is a device, just not this link's.
for n in KME_A:kme KME_B:kme qkd-sim:device intruder:device SAE_A1:sae SAE_B1:sae; do
  pki_client "$P" ca "${n%%:*}" "${n#*:}" >/dev/null || fail "pki_client $n"
done
pki_client "$P" otherca rogue >/dev/null || fail "pki_client rogue"
PEERPORT[A]=$(free_port "${PEERPORT[@]}") && PEERPORT[B]=$(free_port "${PEERPORT[@]}") || fail "no free port"
LINK=KME_A~KME_B

write_conf() { # SELF PEER self_lc
  local s=$1 p=$2 sl=$3
  cat > "$T/kme_$s.conf" <<CONF
[node]
id = KME_$s
data_dir = $T/data_$s
log_file = $T/kme_$s.log
log_level = info

[listener etsi014]
address = 127.0.0.1:0
cert = pki/kme_$sl.crt
key = pki/kme_$sl.key
ca = pki/ca.crt

[listener peer]
address = 127.0.0.1:${PEERPORT[$s]}
cert = pki/kme_$sl.crt
key = pki/kme_$sl.key
ca = pki/ca.crt

[listener device]
address = 127.0.0.1:0
mode = mtls
cert = pki/kme_$sl.crt
key = pki/kme_$sl.key
ca = pki/ca.crt

[listener admin]
address = 127.0.0.1:0
mode = plain

[peer_client]
ca = pki/ca.crt
cert = pki/KME_$s.crt
key = pki/KME_$s.key
timeout = 2s
connect_timeout = 1s

[link KME_$p]
peer_url = https://127.0.0.1:${PEERPORT[$p]}
device_identity = qkd-sim

[sae SAE_A1]
kme = KME_A

[sae SAE_B1]
kme = KME_B

[keys]
default_size = 256
CONF
}
write_conf A B a
write_conf B A b

# ---- --check-config ----------------------------------------------------------------------
out=$("$KMED" --check-config "$T/kme_A.conf" 2>&1); rc=$?
[ $rc -eq 0 ] || fail "--check-config on a good file: rc=$rc: $out"
ok "--check-config accepts a good file"
sed 's/^default_size = 256$/default_size = 100/' "$T/kme_A.conf" > "$T/bad.conf"
line=$(grep -n '^default_size = 100$' "$T/bad.conf" | cut -d: -f1)
err=$("$KMED" --check-config "$T/bad.conf" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] || fail "--check-config on a bad file: rc=$rc (want 2)"
case $err in
  "$T/bad.conf:$line: [keys] default_size: "*"multiple of 8"*) ok "--check-config names file, line and key: $err" ;;
  *) fail "unexpected --check-config message: $err" ;;
esac
printf '[listener skip]\naddress = 127.0.0.1:0\nmode = psk\npsk_file = x\n' >> "$T/bad2.conf"
cat "$T/kme_A.conf" "$T/bad2.conf" > "$T/bad3.conf"
err=$("$KMED" --check-config "$T/bad3.conf" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ $err == *"[listener skip] psk_file: cannot read"* ]] || fail "skip listener with a missing PSK file not refused: rc=$rc $err"
ok "a skip listener with a missing PSK file is refused: $err"
# What start-up refuses, --check-config refuses too, through the same checks (issue 17): a
# master key file or a PSK file that others may read.
printf '%s\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff >"$T/mk.key"
sed "/^\[node\]\$/a master_key_file = $T/mk.key" "$T/kme_A.conf" >"$T/mk.conf"
sed -i "s|^data_dir = .*|data_dir = $T/data_mk|; s|^log_file = .*|log_file = $T/mk.log|" "$T/mk.conf"
chmod 0644 "$T/mk.key"
err=$("$KMED" --check-config "$T/mk.conf" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ $err == *"master key file $T/mk.key"*"must not be group/world readable"* ]] ||
  fail "--check-config passed a 0644 master key file: rc=$rc $err"
timeout 20 "$KMED" -c "$T/mk.conf" >"$T/mk.out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "must not be group/world readable" "$T/mk.log" ||
  fail "start-up with a 0644 master key file: rc=$rc $(cat "$T/mk.out" "$T/mk.log" 2>/dev/null)"
chmod 0600 "$T/mk.key"
out=$("$KMED" --check-config "$T/mk.conf" 2>&1) || fail "--check-config refused a 0600 master key file: $out"
ok "a 0644 master key file is refused by --check-config as at start-up; 0600 passes"
printf 'enc_x:%s\n' "$(openssl rand -hex 32)" >"$T/skip.psk"
chmod 0644 "$T/skip.psk"
printf '[listener skip]\naddress = 127.0.0.1:0\nmode = psk\npsk_file = %s\n[skip]\nremote_system_ids = KME_B\n' \
  "$T/skip.psk" |
  cat "$T/kme_A.conf" - >"$T/psk.conf"
err=$("$KMED" --check-config "$T/psk.conf" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ $err == *"skip listener: $T/skip.psk: PSK file must not be group or world accessible"* ]] ||
  fail "--check-config passed a 0644 PSK file: rc=$rc $err"
chmod 0600 "$T/skip.psk"
out=$("$KMED" --check-config "$T/psk.conf" 2>&1) || fail "--check-config refused a 0600 PSK file: $out"
ok "a 0644 PSK file is refused by --check-config (as by the listener at start); 0600 passes"
# A listener whose key does not belong to its certificate: start-up's TLS context refuses it,
# and --check-config loads the same context.
sed "0,/^key = pki\/kme_a.key\$/s//key = pki\/kme_b.key/" "$T/kme_A.conf" >"$T/tlskey.conf"
grep -q '^key = pki/kme_b.key$' "$T/tlskey.conf" || fail "tlskey.conf: no key line replaced"
err=$(cd "$T" && "$KMED" --check-config "$T/tlskey.conf" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ $err == *"listener"* ]] ||
  fail "--check-config passed a listener key that is not its certificate's: rc=$rc $err"
ok "a listener key that does not match its certificate is refused by --check-config: ${err:0:160}"

# ---- start both --------------------------------------------------------------------------
start() { # A|B
  local s=$1 i mk l v
  if [ "$s" = A ]; then mk=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
  else mk=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100; fi
  rm -f "$T/ports_$s"
  QKD_KMED_MASTER_KEY=$mk "$KMED" -c "$T/kme_$s.conf" --port-file "$T/ports_$s" \
    >>"$T/kme_$s.out" 2>&1 &
  PID[$s]=$!
  for i in $(seq 1 100); do
    [ -s "$T/ports_$s" ] && break
    kill -0 "${PID[$s]}" 2>/dev/null || { cat "$T/kme_$s.out"; fail "KME_$s exited at start"; }
    sleep 0.1
  done
  [ -s "$T/ports_$s" ] || fail "KME_$s wrote no port file"
  while IFS='=' read -r l v; do PORT[$s.$l]=$v; done < "$T/ports_$s"
  [ "${PORT[$s.peer]}" = "${PEERPORT[$s]}" ] || fail "KME_$s port file: peer=${PORT[$s.peer]:-}"
  [ -n "${PORT[$s.device]:-}" ] && [ -n "${PORT[$s.admin]:-}" ] || fail "KME_$s port file incomplete"
}
start A
start B
ok "both KMEs started (A: device ${PORT[A.device]} admin ${PORT[A.admin]}; B: device ${PORT[B.device]} admin ${PORT[B.admin]})"
names=$(cat /proc/"${PID[A]}"/task/*/comm | sort -u | tr '\n' ' ')
for want in qk-pump qk-worker qk-store-sync qk-notifier qk-peer-sync; do
  case " $names" in *" $want "*) ;; *) fail "KME_A has no thread named $want (threads: $names)" ;; esac
done
ok "KME_A's threads are named: $names"
# One process per store ([store] lock = exclusive, the default): a second qkd-kmed on KME_A's
# data_dir (its own log and an ephemeral peer port, so only the store is shared) fails to start,
# saying the store is in use, and KME_A goes on.
sed "s|^log_file = .*|log_file = $T/dup.log|; s|^address = 127.0.0.1:${PEERPORT[A]}\$|address = 127.0.0.1:0|" \
  "$T/kme_A.conf" >"$T/dup.conf"
QKD_KMED_MASTER_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff \
  timeout 30 "$KMED" -c "$T/dup.conf" >"$T/dup.out" 2>&1; rc=$?
[ $rc = 1 ] && grep -q "store.db is in use by another process" "$T/dup.log" ||
  fail "a second qkd-kmed on KME_A's data_dir: rc=$rc $(cat "$T/dup.out" "$T/dup.log" 2>/dev/null | tail -5)"
kill -0 "${PID[A]}" 2>/dev/null || fail "KME_A died when a second qkd-kmed tried its store"
ok "a second qkd-kmed on the same data_dir is refused: $(grep -o 'store: .*in use[^"]*' "$T/dup.log" | head -1 | cut -c1-120)"

# ---- helpers -----------------------------------------------------------------------------
# put_block A|B ID FILE [IDENTITY] -> HTTP status
put_block() {
  local s=$1 id=$2 file=$3 who=${4:-qkd-sim}
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$P/ca.crt" \
    --cert "$P/$who.crt" --key "$P/$who.key" -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@$file" "https://127.0.0.1:${PORT[$s.device]}/device/v1/links/$LINK/blocks/$id"
}
metrics() { curl -s --max-time 5 "http://127.0.0.1:${PORT[$1.admin]}/metrics"; }
# metric A|B NAME LABELS-SUBSTRING -> value (0 if absent)
metric() {
  metrics "$1" | awk -v m="$2" -v f="$3" '$1 ~ "^"m"{" && index($1, f) { s += $2 } END { printf "%d\n", s }'
}
wait_for() { # SECONDS COMMAND... : retry until the command succeeds
  local t=$1 i; shift
  for i in $(seq 1 $((t * 10))); do "$@" && return 0; sleep 0.1; done
  return 1
}

# ---- identical blocks get confirmed ------------------------------------------------------
for id in 1 2 3 4; do
  head -c 4096 /dev/urandom > "$T/blk$id"
  for s in A B; do
    st=$(put_block $s $id "$T/blk$id"); [ "$st" = 201 ] || fail "PUT block $id to $s: $st (want 201)"
  done
done
st=$(put_block A 1 "$T/blk1"); [ "$st" = 200 ] || fail "duplicate PUT: $st (want 200)"
ok "4 blocks pushed to both ends (201), a duplicate push answers 200"
confirmed() { [ "$(metric "$1" qkd_blocks "state=\"confirmed\"")" -ge 4 ]; }
wait_for 10 confirmed A || fail "A: blocks not confirmed: $(metrics A | grep qkd_blocks)"
wait_for 10 confirmed B || fail "B: blocks not confirmed: $(metrics B | grep qkd_blocks)"
for s in A B; do
  bytes=$(metric $s qkd_pool_bytes "link=\"$LINK\"")
  [ "$bytes" -gt 0 ] || fail "$s: no pool bytes after confirmation"
  ok "KME_$s: 4 blocks confirmed, qkd_pool_bytes{link=\"$LINK\"} = $bytes"
done

# ---- one key through the two-phase reservation (ETSI 014 enc_keys at A, dec_keys at B) ----
etsi() { # A|B SAE PATH
  curl -s --max-time 10 --cacert "$P/ca.crt" --cert "$P/$2.crt" --key "$P/$2.key" \
    "https://127.0.0.1:${PORT[$1.etsi014]}$3"
}
enc=$(etsi A SAE_A1 /api/v1/keys/SAE_B1/enc_keys)
kid=$(sed -n 's/.*"key_ID" *: *"\([0-9a-f-]*\)".*/\1/p' <<<"$enc")
[ -n "$kid" ] || fail "enc_keys at A: $enc"
dec=$(etsi B SAE_B1 "/api/v1/keys/SAE_A1/dec_keys?key_ID=$kid")
ka=$(sed -n 's/.*"key" *: *"\([^"]*\)".*/\1/p' <<<"$enc")
kb=$(sed -n 's/.*"key" *: *"\([^"]*\)".*/\1/p' <<<"$dec")
[ -n "$ka" ] && [ "$ka" = "$kb" ] || fail "dec_keys at B does not return the key of A: $dec"
[ "$(metric A qkd_requests_total 'listener="etsi014",status="200"')" -ge 1 ] || fail "etsi014 requests not counted"
ok "a key reserved at B by A (enc_keys) is fetched once at B (dec_keys), same bytes; ETSI requests counted"

# ---- identities --------------------------------------------------------------------------
st=$(put_block A 5 "$T/blk1" intruder); [ "$st" = 403 ] || fail "PUT by a wrong device identity: $st (want 403)"
st=$(put_block A 5 "$T/blk1" KME_B); [ "$st" = 403 ] || fail "PUT by a peer identity: $st (want 403)"
ok "a wrong device identity is refused (403)"
st=$(put_block A 5 "$T/blk1" rogue); [ "$st" = 000 ] || fail "a certificate from another CA got HTTP $st"
ok "a client certificate from another CA fails the handshake"
st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$P/ca.crt" --cert "$P/qkd-sim.crt" \
  --key "$P/qkd-sim.key" "https://127.0.0.1:${PEERPORT[B]}/peer/v1/health")
[ "$st" = 403 ] || fail "peer API called by the device identity: $st (want 403)"
body=$(curl -s --max-time 5 --cacert "$P/ca.crt" --cert "$P/KME_A.crt" --key "$P/KME_A.key" \
  "https://127.0.0.1:${PEERPORT[B]}/peer/v1/health")
[[ $body == *'"node_id":"KME_B"'* ]] || fail "peer health as KME_A: $body"
ok "peer API: non-peer refused (403), linked peer served: $body"

# ---- conflicting push: 409 and burned ----------------------------------------------------
burned0=$(metric A qkd_blocks "state=\"burned\"")
head -c 4096 /dev/urandom > "$T/other"
st=$(put_block A 2 "$T/other"); [ "$st" = 409 ] || fail "conflicting PUT: $st (want 409)"
burned1=$(metric A qkd_blocks "state=\"burned\"")
[ "$burned1" -eq $((burned0 + 1)) ] || fail "conflict did not burn the block ($burned0 -> $burned1)"
ok "same block ID with other bytes: 409, burned (A burned blocks $burned0 -> $burned1)"

# ---- a block that differs between the ends is burned at both by the inventory -----------
a0=$(metric A qkd_blocks "state=\"burned\""); b0=$(metric B qkd_blocks "state=\"burned\"")
head -c 2048 /dev/urandom > "$T/blk10a"; head -c 2048 /dev/urandom > "$T/blk10b"
[ "$(put_block A 10 "$T/blk10a")" = 201 ] || fail "PUT block 10 to A"
[ "$(put_block B 10 "$T/blk10b")" = 201 ] || fail "PUT block 10 to B"
burned_more() { [ "$(metric "$1" qkd_blocks "state=\"burned\"")" -gt "$2" ]; }
wait_for 10 burned_more A "$a0" || fail "A: differing block not burned: $(metrics A | grep qkd_blocks)"
wait_for 10 burned_more B "$b0" || fail "B: differing block not burned: $(metrics B | grep qkd_blocks)"
for s in A B; do
  [ "$(metric $s qkd_blocks "state=\"pending\"")" -eq 0 ] || fail "$s: blocks left pending"
done
ok "a block differing between the ends is burned at both (A burned $a0 -> $(metric A qkd_blocks 'state="burned"'), B $b0 -> $(metric B qkd_blocks 'state="burned"'))"

# ---- telemetry, healthz, metrics shape ---------------------------------------------------
st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$P/ca.crt" --cert "$P/qkd-sim.crt" \
  --key "$P/qkd-sim.key" -X POST -H 'Content-Type: application/json' \
  --data '{"state":"up","qber":0.021,"rate_bps":1234.5,"delivered_bits":65536}' \
  "https://127.0.0.1:${PORT[A.device]}/device/v1/links/$LINK/telemetry")
[ "$st" = 204 ] || fail "telemetry: $st (want 204)"
metrics A | grep -q "^qkd_link_qber{link=\"$LINK\"} 0.021" || fail "qber not in metrics"
ok "telemetry accepted (204) and shown in /metrics"
for s in A B; do
  h=$(curl -s --max-time 5 "http://127.0.0.1:${PORT[$s.admin]}/healthz")
  [ "$h" = ok ] || fail "$s /healthz: $h"
  m=$(metrics $s)
  for name in qkd_pool_bytes qkd_blocks qkd_keys qkd_peer_errors_total qkd_requests_total \
    qkd_request_duration_seconds_bucket; do
    grep -q "^$name" <<<"$m" || fail "$s /metrics lacks $name"
  done
done
ok "/healthz answers ok, /metrics has the documented families"
grep -q 'event=request listener=device method=PUT' "$T/kme_A.log" || fail "no request log line"
ok "one structured log line per request"

# ---- SIGHUP reopens the log -------------------------------------------------------------
mv "$T/kme_A.log" "$T/kme_A.log.1"
kill -HUP "${PID[A]}"
reopened() { curl -s -o /dev/null --max-time 5 "http://127.0.0.1:${PORT[A.admin]}/healthz"; grep -q 'path=/healthz' "$T/kme_A.log" 2>/dev/null; }
wait_for 5 reopened || fail "SIGHUP did not reopen the log file"
kill -0 "${PID[A]}" || fail "KME_A died on SIGHUP"
ok "SIGHUP reopens the log file"

# ---- SIGTERM -----------------------------------------------------------------------------
for s in A B; do kill -TERM "${PID[$s]}"; done
for s in A B; do
  timeout 15 tail --pid="${PID[$s]}" -f /dev/null || fail "KME_$s did not stop on SIGTERM"
  wait "${PID[$s]}"; rc=$?
  [ $rc -eq 0 ] || fail "KME_$s exit status $rc after SIGTERM"
  kill -0 "${PID[$s]}" 2>/dev/null && fail "KME_$s still running"
  PID[$s]=
done
ok "SIGTERM stops both cleanly (exit 0)"
echo "PASS"

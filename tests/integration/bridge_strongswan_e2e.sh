#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): network namespaces and charon daemons.
# SLOW: runs in the normal build of make check (QK_SLOW=1), not again under the sanitizers.
# bridge_strongswan_e2e.sh - about 45 s. Needs root: it creates two network namespaces and
# bind mounts inside them; skips (77) only when not root.
# Two namespaces joined by veth, a strongSwan charon in each (userspace ESP through
# kernel-libipsec), the two KMEs of tests/lib/etsi_pair.sh fed by qk-feeder, two qkd-bridge.
# Shows: the tunnel comes up with a PPK from the KMS and carries ping; three rotations, each
# confirmed by both charons ("using PPK for PPK_ID '<key ID>'", list-sas ppk=yes) with a key ID
# that KME_A delivered (enc_keys) and KME_B delivered (dec_keys); a KME outage keeps the tunnel
# up and rotation resumes by itself; a responder that supports PPK (it announces USE_PPK) but
# lacks the PPK_ID: AUTHENTICATION_FAILED and no SA on either charon (swanctl --list-sas in each
# namespace); a responder without any PPK: the initiator refuses to fall back, no SA; recovery
# after the responder bridge is back. Every wait is on a condition (bridge status, charon log
# lines), bounded (tests/lib/wait.sh).
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/skip.sh
. "$ROOT/tests/lib/skip.sh"
qk_need_root "network namespaces"
. "$ROOT/tests/lib/etsi_pair.sh"
BRIDGE=$BUILD/bin/qkd-bridge
CHARON=/usr/lib/ipsec/charon
# shellcheck source=../lib/bridge.sh
. "$ROOT/tests/lib/bridge.sh" # start_charon (this test keeps its own cleanup and bridge helpers)
# shellcheck source=../lib/wait.sh
. "$ROOT/tests/lib/wait.sh"
[ -x "$BRIDGE" ] || fail "$BRIDGE not built"
[ -x "$CHARON" ] || fail "$CHARON missing (scripts/install-deps installs strongswan-charon)"
[ -f /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || fail "kernel-libipsec plugin missing (libcharon-extra-plugins)"

NS1=qkb$$a NS2=qkb$$b
declare -A BPID=() CPID=()
e2e_cleanup() {
  local n p
  for n in "${!BPID[@]}"; do [ -n "${BPID[$n]}" ] && kill -TERM "${BPID[$n]}" 2>/dev/null; done
  for n in "${!CPID[@]}"; do [ -n "${CPID[$n]}" ] && kill -TERM "${CPID[$n]}" 2>/dev/null; done
  for n in "${!BPID[@]}" "${!CPID[@]}"; do
    p=${BPID[$n]:-${CPID[$n]:-}}
    [ -n "$p" ] && { timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null; }
  done
  for n in $NS1 $NS2; do
    if ip netns list | grep -qw "$n"; then
      for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
      ip netns del "$n" 2>/dev/null
    fi
  done
  _pair_cleanup
}
trap e2e_cleanup EXIT

dump() { bridge_tails 25 "$T"/gw1/charon.log "$T"/gw2/charon.log "$T"/bridge_i.log "$T"/bridge_r.log; }
die() { dump; fail "$*"; }

# ---- KMEs ----------------------------------------------------------------------------------
bridge_kmes_fed

# ---- namespaces and charons ----------------------------------------------------------------
netns_pair $NS1 $NS2 qkb$$v
ip -n $NS1 addr add 198.51.100.1/32 dev lo && ip -n $NS2 addr add 203.0.113.1/32 dev lo || fail "lo addr"

start_charon gw1 $NS1
start_charon gw2 $NS2
ok "two charons (kernel-libipsec) in $NS1 and $NS2"

# ---- bridges -------------------------------------------------------------------------------
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/ike.psk"
echo "bridge-a:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/bridge.psk"
umask 022
# shellcheck disable=SC2034 # read by bridge_conf_etsi (tests/lib/bridge.sh)
BPORT=$(free_port) || fail "no free port"
bridge_conf() { # i|r
  local r=$1
  {
    bridge_conf_etsi "$r" 1 1h 4s 2s
    echo "[gateway]"
    echo "driver = strongswan"
    echo "[strongswan]"
    if [ "$r" = i ]; then
      echo "socket = unix://$T/gw1/charon.vici"
      echo "local_addrs = 192.0.2.1"; echo "remote_addrs = 192.0.2.2"
      echo "local_id = gw1.example"; echo "remote_id = gw2.example"
      echo "local_ts = 198.51.100.1/32"; echo "remote_ts = 203.0.113.1/32"
    else
      echo "socket = unix://$T/gw2/charon.vici"
      echo "local_addrs = 192.0.2.2"; echo "remote_addrs = 192.0.2.1"
      echo "local_id = gw2.example"; echo "remote_id = gw1.example"
      echo "local_ts = 203.0.113.1/32"; echo "remote_ts = 198.51.100.1/32"
    fi
    echo "connection = qkd"
    echo "child = net"
    echo "ike_psk_file = $T/ike.psk"
    echo "proposals = aes256-sha256-x25519"
    echo "esp_proposals = aes256gcm16-x25519"
    echo "initiate_timeout = 8s"
  } >"$T/bridge_$r.conf"
}
bridge_confs_checked

declare -A ADMIN=()
start_bridge() { # i|r
  local r=$1 i
  rm -f "$T/bports_$r"
  "$BRIDGE" run -c "$T/bridge_$r.conf" --port-file "$T/bports_$r" >>"$T/bridge_$r.out" 2>&1 &
  BPID[$r]=$!
  for i in $(seq 1 100); do [ -s "$T/bports_$r" ] && break; sleep 0.1; done
  [ -s "$T/bports_$r" ] || { cat "$T/bridge_$r.out"; die "bridge $r did not start"; }
  ADMIN[$r]=http://127.0.0.1:$(sed -n 's/^admin=//p' "$T/bports_$r")
}
stop_bridge() {
  kill -TERM "${BPID[$1]}" 2>/dev/null
  timeout 10 tail --pid="${BPID[$1]}" -f /dev/null || kill -KILL "${BPID[$1]}"
  wait "${BPID[$1]}" 2>/dev/null; local rc=$?; BPID[$1]=
  # a clean stop exits 0 (under ASan this also catches leaks and memory errors)
  [ "$rc" = 0 ] || { tail -20 "$T/bridge_$1.out"; die "bridge $1 exited with $rc on SIGTERM"; }
}
start_bridge r
start_bridge i

st() { "$BRIDGE" status --admin "${ADMIN[$1]}" --json; }
stv() { st "$1" | jq -r "$2"; }
vici() { "$BRIDGE" vici "unix://$T/$1/charon.vici" "${@:2}"; }
sas() { "$BRIDGE" vici --stream list-sa "unix://$T/$1/charon.vici" list-sas; }
ping_ok() { ip netns exec $NS1 ping -c 2 -W 2 -I 198.51.100.1 203.0.113.1 >/dev/null 2>&1; }

# wait_rotations N: until the initiator reports N successful rotations and the SA with PPK.
wait_rotations() {
  local n=$1
  wait_for '[ "$(stv i .rotations_ok)" -ge "$n" ] 2>/dev/null && [ "$(stv i .sa.ppk_confirmed)" = true ]' 30 \
    "$n rotations with a confirmed PPK" || { st i; die "initiator did not reach $n rotations with a confirmed PPK"; }
}

# check_key KID: both charons used the PPK, the SA says ppk=yes, both KMEs delivered the key.
check_key() {
  local kid=$1
  wait_for 'grep -q "using PPK for PPK_ID '"'"'$kid'"'"'" "$T/gw2/charon.log"' 10 "gw2 to log PPK_ID $kid"
  grep -q "using PPK for PPK_ID '$kid'" "$T/gw1/charon.log" || die "gw1 did not log PPK_ID $kid"
  grep -q "using PPK for PPK_ID '$kid'" "$T/gw2/charon.log" || die "gw2 did not log PPK_ID $kid"
  sas gw1 | grep -q "ppk = yes" || die "gw1 list-sas has no ppk=yes"
  [ "$(sas gw1 | grep -c 'state = ESTABLISHED')" = 1 ] || { sas gw1; die "more or less than one IKE SA on gw1 after rotation"; }
  grep -qi "$kid" "$T/kme_A.log" || die "KME_A has no record of delivering $kid"
  grep -qi "$kid" "$T/kme_B.log" || die "KME_B has no record of delivering $kid"
  grep "$kid" "$T/kme_B.log" | grep -q dec_keys || die "KME_B did not deliver $kid through dec_keys"
}

# ---- 1: the tunnel comes up with a PPK from the KMS ----------------------------------------
wait_rotations 1
K1=$(stv i .key_id)
check_key "$K1"
[ "$(stv r .key_id)" = "$K1" ] || { st r; die "responder does not report key $K1"; }
ping_ok || die "no ping through the tunnel"
ok "tunnel up with PPK $K1; ping crosses it"

# ---- 2: three rotations --------------------------------------------------------------------
declare -a KEYS=("$K1")
for n in 2 3 4; do
  "$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
  wait_rotations $n
  K=$(stv i .key_id)
  for prev in "${KEYS[@]}"; do [ "$K" != "$prev" ] || die "rotation $n reused key $K"; done
  KEYS+=("$K")
  check_key "$K"
  ping_ok || die "no ping after rotation $((n-1))"
  ok "rotation $((n-1)): PPK_ID $K confirmed by both charons; ping ok"
done
# old keys were unloaded from both charons
for g in gw1 gw2; do
  cnt=$(vici $g get-shared | grep -o 'qkd-[0-9a-f-]\{36\}' | sort -u | wc -l)
  [ "$cnt" = 1 ] || { vici $g get-shared; die "$g holds $cnt PPKs after rotation (want 1)"; }
done
ok "old PPKs unloaded on both gateways"

# ---- 3: KME outage -------------------------------------------------------------------------
# shellcheck disable=SC2034 # read by the wait_for condition
before_fail=$(stv i .rotations_failed)
pair_stop B
"$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
wait_for '[ "$(stv i .rotations_failed)" -gt "$before_fail" ]' 20 "a failed rotation" ||
  { st i; die "rotation did not fail during the KME outage"; }
[ "$(stv i .last_error)" != null ] || die "no last_error reported during the outage"
ping_ok || die "tunnel went down during the KME outage"
[ "$(stv i .key_id)" = "${KEYS[3]}" ] || die "key changed during the outage"
"$BRIDGE" status --admin "${ADMIN[i]}" | grep -q "last error:    .*KME\|last error:    .*responder" || { "$BRIDGE" status --admin "${ADMIN[i]}"; die "status does not report the failure"; }
curl -s --max-time 5 "${ADMIN[i]}/metrics" | grep -q 'qkd_bridge_rotations_total{result="failed"} [1-9]' || die "metrics do not count the failure"
ok "KME_B down: rotation fails and is reported; tunnel stays up with ${KEYS[3]}"
pair_start B
wait_rotations 5
K=$(stv i .key_id)
[ "$K" != "${KEYS[3]}" ] || die "no new key after recovery"
check_key "$K"
ping_ok || die "no ping after recovery"
KEYS+=("$K")
ok "KME_B back: rotation resumed by itself with $K"

# ---- 4: a responder that supports PPK but lacks this PPK_ID -----------------------------
# RFC 8784 section 3: the responder announces USE_PPK in IKE_SA_INIT (strongSwan does so only
# while it holds some PPK); the initiator then sends PPK_IDENTITY in IKE_AUTH, and a responder
# that requires PPK but has none for that ID must fail the exchange (AUTHENTICATION_FAILED).
# gw2 keeps a decoy PPK under another ID, so it supports PPK; only $K is missing.
stop_bridge r
vici gw2 load-shared id=qkd-decoy type=PPK data="0x$(hexrand 32)" "owners[]=decoy-$$" >/dev/null ||
  die "load-shared of the decoy PPK on gw2"
vici gw2 unload-shared id="qkd-$K" >/dev/null || die "unload-shared on gw2"
vici gw2 get-shared | grep -q "qkd-$K" && die "gw2 still holds $K"
vici gw2 get-shared | grep -q "qkd-decoy" || die "gw2 does not hold the decoy PPK"
# since_mark G: the lines of G's charon log written after mark_logs
declare -A MARK=()
mark_logs() { local g; for g in gw1 gw2; do MARK[$g]=$(wc -l <"$T/$g/charon.log"); done; }
since_mark() { tail -n +"$((MARK[$1] + 1))" "$T/$1/charon.log"; }
# no_sa_anywhere: swanctl in each namespace lists no ESTABLISHED IKE SA and no INSTALLED child
no_sa_anywhere() {
  local g ns out
  for g in gw1 gw2; do
    [ $g = gw1 ] && ns=$NS1 || ns=$NS2
    out=$(ip netns exec "$ns" swanctl --list-sas --uri "unix://$T/$g/charon.vici" 2>&1) ||
      die "swanctl --list-sas on $g: $out"
    if grep -q "ESTABLISHED\|INSTALLED" <<<"$out"; then echo "$out"; die "$g has an SA: $*"; fi
  done
}
mark_logs
# shellcheck disable=SC2034 # read by the wait_for conditions
gerr=$(stv i .gateway_errors)
vici gw1 terminate ike=qkd timeout=5000 >/dev/null 2>&1
# The supervisor re-establishes a lost SA with the same PPK (retry_min 1 s, doubling): wait for
# two failed attempts, each refused by gw2 for want of $K.
wait_for '[ "$(stv i .gateway_errors)" -ge $((gerr + 2)) ]' 30 "two failed attempts" ||
  { st i; die "the initiator did not report two failed SAs"; }
wait_for 'since_mark gw2 | grep -q "PPK required but no PPK found for '"'"'$K'"'"'"' 10 \
  "gw2 to refuse PPK_ID $K" || die "gw2 did not refuse PPK_ID $K for want of the PPK"
since_mark gw2 | grep "generating IKE_SA_INIT response" | grep -q "N(USE_PPK)" ||
  die "gw2 did not announce USE_PPK: this phase needs a responder that supports PPK"
since_mark gw2 | grep -q "using PPK for PPK_ID '$K'" && die "gw2 used PPK $K, which it must not hold"
since_mark gw1 | grep -q "received AUTHENTICATION_FAILED" ||
  die "gw1 was not told AUTHENTICATION_FAILED"
since_mark gw1 | grep -q "PPK required but peer does not support PPK" &&
  die "gw1 says gw2 offers no PPK: the decoy PPK did not make gw2 support PPK"
no_sa_anywhere "the responder lacks PPK_ID $K"
ping_ok && die "traffic crosses without an SA"
[ "$(stv i .sa.up)" = false ] || die "initiator claims an SA"
stv i .last_error | grep -q "NOT\|without PPK\|failed" || { st i; die "last_error does not explain the failure"; }
ok "responder supports PPK but lacks PPK_ID $K: AUTHENTICATION_FAILED, no SA on either side"

# ---- 4b: a responder without any PPK -------------------------------------------------------
# gw2 now holds no PPK at all and announces no USE_PPK: the initiator must refuse to fall back
# to an SA without PPK (ppk_required = yes).
vici gw2 unload-shared id=qkd-decoy >/dev/null || die "unload-shared of the decoy on gw2"
mark_logs
# shellcheck disable=SC2034 # read by the wait_for condition
gerr=$(stv i .gateway_errors)
wait_for '[ "$(stv i .gateway_errors)" -ge $((gerr + 2)) ]' 30 "two more failed attempts" ||
  { st i; die "the initiator did not retry the SA"; }
since_mark gw1 | grep -q "PPK required but peer does not support PPK" ||
  die "gw1 did not refuse a responder without PPK support"
no_sa_anywhere "the responder has no PPK"
ping_ok && die "traffic crosses without an SA"
[ "$(stv i .sa.up)" = false ] || die "initiator claims an SA"
ok "responder without any PPK: the initiator refuses to fall back, no SA comes up"

# ---- 5: recovery ---------------------------------------------------------------------------
start_bridge r
"$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
wait_rotations 6
K=$(stv i .key_id)
check_key "$K"
ping_ok || die "no ping after the responder came back"
ok "responder back: new key $K, tunnel up again"

# key bytes never in the bridge logs: no 64-hex run at all
if grep -Eq '[0-9a-f]{64}' "$T/bridge_i.log" "$T/bridge_r.log"; then die "a 256-bit hex string appears in a bridge log"; fi
ok "no key material in the bridge logs"
echo "PASS"

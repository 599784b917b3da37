#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): network namespaces and WireGuard interfaces.
# SLOW: runs in the normal build of make check (QK_SLOW=1), not again under the sanitizers.
# bridge_wireguard_e2e.sh - about 45 s. Needs root: network namespaces, TUN devices and bind
# mounts; skips (77) only when not root. wireguard-go and wg are required (scripts/install-deps).
# Two namespaces joined by veth, wireguard-go (userspace WireGuard over TUN: the test kernels
# have no WireGuard module) in each, the two KMEs of tests/lib/etsi_pair.sh fed by qk-feeder,
# two qkd-bridge with the wireguard driver (UAPI socket). Shows:
#  1. the tunnel carries ping with a preshared key that both wg interfaces hold
#     (`wg show wg0 preshared-keys`), for a key ID KME_A delivered (enc_keys) and KME_B
#     delivered (dec_keys); both bridges report that ID as the key of the last handshake;
#  2. three rotations, each followed by a new handshake on both sides under a new key;
#  3. peer bridge gone: the responder's WireGuard is blocked (random key, sessions dropped), no
#     handshake completes under the initiator's stale key, the initiator keeps the key until
#     its lifetime ends and then blocks too (reason peer); when the responder bridge is back,
#     the initiator offers the SAME key again (not a new one) and the tunnel recovers;
#  4. KME unreachable: the current key is kept (ping) until its lifetime ends, then both sides
#     block (initiator reason kme, responder peer; status and metrics), never with an empty or
#     stale preshared key, no handshake completes; the KME back, the tunnel recovers by itself.
# Every wait is on a condition, bounded (tests/lib/wait.sh).
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/skip.sh
. "$ROOT/tests/lib/skip.sh"
qk_need_root "network namespaces, TUN"
qk_need_cmd wireguard-go wg jq
. "$ROOT/tests/lib/etsi_pair.sh"
BRIDGE=$BUILD/bin/qkd-bridge
# shellcheck source=../lib/bridge.sh
. "$ROOT/tests/lib/bridge.sh"
# shellcheck source=../lib/wait.sh
. "$ROOT/tests/lib/wait.sh"
[ -x "$BRIDGE" ] || fail "$BRIDGE not built"
[ -c /dev/net/tun ] || fail "/dev/net/tun missing"

NS1=qkw$$a NS2=qkw$$b
QKB_NETNS="$NS1 $NS2"
trap 'bridge_cleanup; _pair_cleanup' EXIT
LIFETIME=10

dump() { bridge_tails 20 "$T"/wg1/wg.log "$T"/wg2/wg.log "$T"/bridge_i.log "$T"/bridge_r.log; }
die() { dump; fail "$*"; }

# ---- KMEs, namespaces, WireGuard -----------------------------------------------------------
bridge_kmes_fed

netns_pair "$NS1" "$NS2" "qkw$$v"
start_wg wg1 "$NS1"
start_wg wg2 "$NS2"
umask 077
for g in wg1 wg2; do wg genkey >"$T/$g/private" && wg pubkey <"$T/$g/private" >"$T/$g/public" || fail "wg genkey"; done
echo "bridge-a:$(hexrand 32)" >"$T/bridge.psk"
umask 022
wgx wg1 set wg0 private-key "$T/wg1/private" listen-port 51820 \
  peer "$(cat "$T/wg2/public")" endpoint 192.0.2.2:51820 allowed-ips 10.77.0.2/32 || fail "wg set wg1"
wgx wg2 set wg0 private-key "$T/wg2/private" listen-port 51820 \
  peer "$(cat "$T/wg1/public")" allowed-ips 10.77.0.1/32 || fail "wg set wg2"
ip -n "$NS1" addr add 10.77.0.1/24 dev wg0 && ip -n "$NS1" link set wg0 up || fail "wg0 in $NS1"
ip -n "$NS2" addr add 10.77.0.2/24 dev wg0 && ip -n "$NS2" link set wg0 up || fail "wg0 in $NS2"
ok "wireguard-go wg0 in $NS1 and $NS2 (no preshared key configured by the test)"

# ---- bridges -------------------------------------------------------------------------------
# shellcheck disable=SC2034 # read by bridge_conf_etsi (tests/lib/bridge.sh)
BPORT=$(free_port) || fail "no free port"
bridge_conf() { # i|r
  local r=$1
  {
    bridge_conf_etsi "$r" 0 0 2s 1s
    echo "[gateway]"
    echo "driver = wireguard"
    echo "[wireguard]"
    echo "interface = wg0"
    if [ "$r" = i ]; then
      echo "socket = $T/wg1/run/wireguard/wg0.sock"; echo "peer_public_key = $(cat "$T/wg2/public")"
    else
      echo "socket = $T/wg2/run/wireguard/wg0.sock"; echo "peer_public_key = $(cat "$T/wg1/public")"
    fi
    echo "handshake_timeout = 8s"
    echo "key_lifetime = ${LIFETIME}s"
  } >"$T/bridge_$r.conf"
}
bridge_pair_up

psk() { wgx "$1" show wg0 preshared-keys | awk '{print $2}'; }
hs() { wgx "$1" show wg0 latest-handshakes | awk '{print $2}'; }
ping_ok() { ip netns exec "$NS1" ping -c 1 -W 2 10.77.0.2 >/dev/null 2>&1; }
hs_lines() { grep -c "$1" "$T/$2/wg.log"; }

# check_key KID: both bridges report KID as the key of the last handshake, both interfaces
# hold the same preshared key (not none), and both KMEs delivered KID.
check_key() {
  local kid=$1
  wait_for '[ "$(bstv i .key_id)" = "$kid" ] && [ "$(bstv r .key_id)" = "$kid" ]' 10 "both bridges on $kid" ||
    { bst i; bst r; die "bridges do not both report handshake key $kid"; }
  P1=$(psk wg1) P2=$(psk wg2)
  [ -n "$P1" ] && [ "$P1" != "(none)" ] || die "wg1 has no preshared key"
  [ "$P1" = "$P2" ] || die "the two interfaces hold different preshared keys"
  [ "$(printf %s "$P1" | base64 -d | wc -c)" = 32 ] || die "preshared key is not 32 bytes"
  grep -i "$kid" "$T/kme_A.log" | grep -q enc_keys || die "KME_A has no record of delivering $kid (enc_keys)"
  grep -i "$kid" "$T/kme_B.log" | grep -q dec_keys || die "KME_B did not deliver $kid through dec_keys"
}

# ---- 1: the tunnel comes up with the KMS key ---------------------------------------------
wait_for '[ "$(bstv i .rotations_ok)" -ge 1 ] 2>/dev/null' 30 "the first key" || { bst i; die "no first key"; }
K1=$(bstv i .agreed_key_id)
check_key "$K1"
ping_ok || die "no ping through the tunnel"
[ "$(bstv i .sa.state)" = ESTABLISHED ] || { bst i; die "initiator does not report ESTABLISHED"; }
ok "tunnel up with preshared key $K1 (same 32 bytes on both wg0, from enc_keys at KME_A and dec_keys at KME_B); ping crosses it"

# ---- 2: three rotations, each with a new handshake -----------------------------------------
declare -a KEYS=("$K1") PSKS=("$P1")
for n in 2 3 4; do
  h1=$(hs wg1) h2=$(hs wg2) resp=$(hs_lines "Received handshake response" wg1)
  sleep 1 # latest-handshakes has a one-second resolution
  "$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
  wait_for '[ "$(bstv i .rotations_ok)" -ge $n ] 2>/dev/null' 20 "rotation $((n - 1))" || { bst i; die "rotation $((n - 1)) did not happen"; }
  K=$(bstv i .agreed_key_id)
  for prev in "${KEYS[@]}"; do [ "$K" != "$prev" ] || die "rotation reused key $K"; done
  check_key "$K"
  for prev in "${PSKS[@]}"; do [ "$P1" != "$prev" ] || die "rotation kept an old preshared key"; done
  [ "$(hs wg1)" -gt "$h1" ] && [ "$(hs wg2)" -gt "$h2" ] || die "no new handshake on both sides after rotation $((n - 1))"
  [ "$(hs_lines "Received handshake response" wg1)" -gt "$resp" ] || die "wg1 logged no handshake response"
  KEYS+=("$K") PSKS+=("$P1")
  ping_ok || die "no ping after rotation $((n - 1))"
  ok "rotation $((n - 1)): key $K, new handshake on both sides ($(hs wg1)), ping ok"
done
echo "handshake of rotation 3 (key $K):"
grep "handshake" "$T/wg1/wg.log" | tail -n 2 | sed 's/^/  wg1 (initiator): /'
grep "handshake" "$T/wg2/wg.log" | tail -n 2 | sed 's/^/  wg2 (responder): /'

# ---- 3: peer bridge gone -------------------------------------------------------------------
K4=${KEYS[3]}
bridge_stop r
[ "$(psk wg2)" != "${PSKS[3]}" ] && [ "$(psk wg2)" != "(none)" ] || die "responder not blocked on stop"
[ "$(hs wg2)" = 0 ] || die "responder kept its session"
ping_ok && die "traffic crosses while the responder bridge is gone"
"$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
wait_for 'grep -q "offering it to the responder" "$T/bridge_i.log" && [ "$(bstv i .peer_errors)" -ge 1 ]' 15 "a failed offer" ||
  { bst i; die "initiator did not report the unreachable responder"; }
K5=$(grep "offering it to the responder" "$T/bridge_i.log" | tail -n 1 | sed 's/.*rotation: key \([^ ]*\) from the KME.*/\1/')
[ "$(bstv i .agreed_key_id)" = "$K4" ] || die "initiator dropped $K4 before its lifetime"
wait_for '[ "$(bstv i .blocked_reason)" = peer ]' $((LIFETIME + 5)) "the initiator to block (peer)" ||
  { bst i; die "initiator did not block after the key lifetime"; }
curl -s --max-time 5 "${ADMIN[i]}/metrics" | grep -q 'qkd_bridge_tunnel_blocked{reason="peer"} 1' || die "metrics do not say blocked (peer)"
P1=$(psk wg1)
[ "$P1" != "(none)" ] && [ "$P1" != "${PSKS[3]}" ] || die "initiator blocked with an empty or stale key"
[ "$(hs wg2)" = 0 ] || die "a handshake completed while the responder bridge was gone"
ok "peer bridge gone: responder blocked at once, initiator kept $K4 for its lifetime then blocked (reason peer); no handshake"
bridge_start r
wait_for '[ "$(bstv i .blocked)" = false ] && [ "$(bstv i .key_id)" = "$K5" ]' 20 "recovery with $K5" ||
  { bst i; bst r; die "no recovery with the key offered while the responder was gone ($K5)"; }
grep -q "offering key $K5 again" "$T/bridge_i.log" || die "the retry did not say it offered $K5 again"
check_key "$K5"
ping_ok || die "no ping after the responder came back"
ok "responder back: the initiator offered the same key $K5 again (no new key taken); ping ok"

# ---- 4: KME unreachable --------------------------------------------------------------------
pair_stop A
"$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
wait_for '[ "$(bstv i .kme_errors)" -ge 1 ]' 15 "a KME error" || { bst i; die "no KME error reported"; }
ping_ok || die "the tunnel did not keep the current key while the KME is down"
wait_for '[ "$(bstv i .blocked_reason)" = kme ] && [ "$(bstv r .blocked_reason)" = peer ]' $((LIFETIME + 5)) "both sides to block" ||
  { bst i; bst r; die "the tunnel was not blocked when $K5 reached its lifetime"; }
"$BRIDGE" status --admin "${ADMIN[i]}" | grep -q "tunnel:.*BLOCKED.*kme" || { "$BRIDGE" status --admin "${ADMIN[i]}"; die "status text does not say blocked (kme)"; }
curl -s --max-time 5 "${ADMIN[i]}/metrics" | grep -q 'qkd_bridge_tunnel_blocked{reason="kme"} 1' || die "metrics do not say blocked (kme)"
curl -s --max-time 5 "${ADMIN[r]}/metrics" | grep -q 'qkd_bridge_tunnel_blocked{reason="peer"} 1' || die "responder metrics do not say blocked (peer)"
P1=$(psk wg1) P2=$(psk wg2)
[ "$P1" != "(none)" ] && [ "$P2" != "(none)" ] || die "an empty preshared key after the block"
[ "$P1" != "$P2" ] || die "the blocked interfaces share a preshared key"
for prev in "${PSKS[@]}"; do [ "$P1" != "$prev" ] && [ "$P2" != "$prev" ] || die "a stale preshared key after the block"; done
sleep 6 # one WireGuard handshake retry (REKEY_TIMEOUT 5 s) under the blocked keys
[ "$(hs wg1)" = 0 ] && [ "$(hs wg2)" = 0 ] || die "a handshake completed on a blocked tunnel"
ping_ok && die "traffic crosses a blocked tunnel"
ok "KME down: $K5 kept for its lifetime, then blocked on both sides (initiator kme, responder peer); no handshake"
pair_start A
wait_for '[ "$(bstv i .blocked)" = false ] && [ "$(bstv i .key_id)" != null ] && [ "$(bstv i .key_id)" != "$K5" ]' 20 "recovery" ||
  { bst i; die "no recovery after the KME came back"; }
K=$(bstv i .key_id)
check_key "$K"
ping_ok || die "no ping after the KME came back"
ok "KME back: new key $K by itself, tunnel up"

bridge_stop i
bridge_stop r
if grep -Eq '[0-9a-f]{64}' "$T/bridge_i.log" "$T/bridge_r.log"; then die "a 256-bit hex string appears in a bridge log"; fi
ok "no key material in the bridge logs; both bridges stopped cleanly"
echo "PASS"

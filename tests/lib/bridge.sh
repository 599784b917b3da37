# shellcheck shell=bash
# bridge.sh - qkd-bridge helpers for the bridge_*.sh integration tests. Source it after
# tests/lib/etsi_pair.sh (it uses $T, $BUILD, fail). Call bridge_cleanup from the test's EXIT
# trap (it stops every bridge and charon started here and removes the namespaces in QKB_NETNS).
#
#   bridge_start R            run qkd-bridge -c $T/bridge_R.conf (log $T/bridge_R.out); sets
#                             BPID[R] and ADMIN[R] (the admin URL read from its port file)
#   bridge_stop R             SIGTERM and wait; a clean stop must exit 0 (under ASan this also
#                             catches leaks and memory errors)
#   bst R / bstv R JQ         `qkd-bridge status --json` of R / one jq value of it
#   bridge_wait_ok R N [S]    until R reports rotations_ok >= N (S seconds, default 30)
#   start_charon G NS         a strongSwan charon with kernel-libipsec in namespace NS, files in
#                             $T/G (VICI socket $T/G/charon.vici, log $T/G/charon.log); CPID[G]
#   hexrand N                 N random bytes as lowercase hex
#   netns_pair NS1 NS2 IF     two namespaces joined by veth IF1/IF2: 192.0.2.1/24 in NS1,
#                             192.0.2.2/24 in NS2, lo up in both (the caller deletes them)
#   start_wg G NS             wireguard-go (userspace, TUN) for wg0 in namespace NS, /run bound
#                             to $T/G/run: UAPI socket $T/G/run/wireguard/wg0.sock, verbose log
#                             $T/G/wg.log; CPID[G]
#   wgx G ARGS...             `wg ARGS` in G's namespace (it finds the socket under /run)
#   bridge_tails N FILE...    the last N lines of each FILE that exists, under "--- tail of FILE"
#   bridge_feed               pair_feed: 8 blocks of 64 KiB into both KMEs (fails with its output)
#   bridge_kmes_fed           pair_init, pair_start A and B, bridge_feed, "ok: KMEs fed"
#   bridge_confs_checked      the test's bridge_conf i and r, each checked by check-config
#   bridge_pair_up            bridge_confs_checked, then bridge_start r and i
#   bridge_conf_etsi R RETRIES INTERVAL RETRY_MAX SUPERVISE
#                             print the [bridge], [kme], [peer] and [rotation] sections of bridge
#                             R (i|r) over the ETSI pair: SAE_A1 (i) <-> SAE_B1 (r), PSK peer
#                             link bridge-a ($T/bridge.psk) on 127.0.0.1:$BPORT, admin on port 0;
#                             the caller appends [gateway] and redirects into $T/bridge_R.conf

BRIDGE=${BRIDGE:-$BUILD/bin/qkd-bridge}
CHARON=${CHARON:-/usr/lib/ipsec/charon}
declare -A BPID=() CPID=() ADMIN=()
QKB_NETNS=${QKB_NETNS:-}

netns_pair() { # NS1 NS2 IF
  local a=$1 b=$2 v=$3 n
  ip netns add "$a" && ip netns add "$b" || fail "ip netns add"
  ip link add "${v}1" type veth peer name "${v}2" || fail "veth"
  ip link set "${v}1" netns "$a" && ip link set "${v}2" netns "$b" || fail "veth move"
  ip -n "$a" addr add 192.0.2.1/24 dev "${v}1" && ip -n "$b" addr add 192.0.2.2/24 dev "${v}2" ||
    fail "addr"
  for n in "$a" "$b"; do ip -n "$n" link set lo up || fail "lo up"; done
  ip -n "$a" link set "${v}1" up && ip -n "$b" link set "${v}2" up || fail "link up"
}

bridge_tails() { # N FILE...
  local n=$1 f
  shift
  for f in "$@"; do [ -f "$f" ] && { echo "--- tail of $f"; tail -n "$n" "$f"; }; done
}

bridge_feed() {
  pair_feed --blocks 8 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
}

bridge_kmes_fed() {
  pair_init
  pair_start A
  pair_start B
  bridge_feed
  ok "KMEs fed"
}

hexrand() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

_wait_pid() { # PID SECONDS: wait for a process that is not our child
  timeout "$2" tail --pid="$1" -f /dev/null 2>/dev/null
}

bridge_cleanup() {
  local n p
  for n in "${!BPID[@]}"; do [ -n "${BPID[$n]}" ] && kill -TERM "${BPID[$n]}" 2>/dev/null; done
  for n in "${!CPID[@]}"; do [ -n "${CPID[$n]}" ] && kill -TERM "${CPID[$n]}" 2>/dev/null; done
  for n in "${!BPID[@]}"; do
    p=${BPID[$n]}
    [ -n "$p" ] && { _wait_pid "$p" 5 || kill -KILL "$p" 2>/dev/null; }
  done
  for n in "${!CPID[@]}"; do
    p=${CPID[$n]}
    [ -n "$p" ] && { _wait_pid "$p" 5 || kill -KILL "$p" 2>/dev/null; }
  done
  for n in $QKB_NETNS; do
    if ip netns list 2>/dev/null | grep -qw "$n"; then
      for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
      ip netns del "$n" 2>/dev/null
    fi
  done
}

bridge_start() {
  local r=$1
  rm -f "$T/bports_$r"
  "$BRIDGE" run -c "$T/bridge_$r.conf" --port-file "$T/bports_$r" >>"$T/bridge_$r.out" 2>&1 &
  BPID[$r]=$!
  for _ in $(seq 1 100); do
    [ -s "$T/bports_$r" ] && grep -q '^admin=' "$T/bports_$r" && break
    kill -0 "${BPID[$r]}" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^admin=' "$T/bports_$r" 2>/dev/null || { cat "$T/bridge_$r.out"; fail "bridge $r did not start"; }
  ADMIN[$r]=http://127.0.0.1:$(sed -n 's/^admin=//p' "$T/bports_$r")
}

bridge_confs_checked() {
  bridge_conf i
  bridge_conf r
  "$BRIDGE" check-config -c "$T/bridge_i.conf" >/dev/null || fail "initiator config"
  "$BRIDGE" check-config -c "$T/bridge_r.conf" >/dev/null || fail "responder config"
}

bridge_pair_up() {
  bridge_confs_checked
  bridge_start r
  bridge_start i
}

bridge_stop() {
  local r=$1 rc
  [ -n "${BPID[$r]:-}" ] || return 0
  kill -TERM "${BPID[$r]}" 2>/dev/null
  _wait_pid "${BPID[$r]}" 10 || kill -KILL "${BPID[$r]}" 2>/dev/null
  wait "${BPID[$r]}" 2>/dev/null
  rc=$?
  BPID[$r]=
  [ "$rc" = 0 ] || { tail -20 "$T/bridge_$r.out"; fail "bridge $r exited with $rc on SIGTERM"; }
}

bst() { "$BRIDGE" status --admin "${ADMIN[$1]}" --json; }
bstv() { bst "$1" | jq -r "$2"; }

bridge_wait_ok() { # R N [SECONDS]
  local r=$1 n=$2 s=${3:-30}
  for _ in $(seq 1 $((s * 4))); do
    [ "$(bstv "$r" .rotations_ok 2>/dev/null)" -ge "$n" ] 2>/dev/null && return 0
    sleep 0.25
  done
  bst "$r"
  return 1
}

# The shell command CMD in namespace NS with $T/G/run bound on /run, output in OUT; CPID[G].
# Waits up to 10 s for the UNIX socket SOCK; else prints OUT and fails with MESSAGE.
_ns_daemon() { # G NS OUT SOCK MESSAGE CMD
  local g=$1 ns=$2 out=$3 sock=$4
  ip netns exec "$ns" sh -c "mount --bind '$T/$g/run' /run && $6" >"$out" 2>&1 &
  CPID[$g]=$!
  for _ in $(seq 1 100); do [ -S "$sock" ] && return 0; sleep 0.1; done
  cat "$out"
  fail "$5"
}

start_charon() { # G NS
  local g=$1 ns=$2
  mkdir -p "$T/$g/run"
  cat >"$T/$g/strongswan.conf" <<EOF
charon {
  load = random nonce openssl aes sha1 sha2 hmac kdf gmp curve25519 pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici updown
  make_before_break = yes
  install_virtual_ip = no
  plugins {
    vici { socket = unix://$T/$g/charon.vici }
    kernel-libipsec { load = yes }
  }
  filelog {
    log { path = $T/$g/charon.log
          time_format = %H:%M:%S
          default = 1
          ike = 2
          cfg = 2
          flush_line = yes }
  }
  syslog { daemon { default = -1 } }
}
EOF
  _ns_daemon "$g" "$ns" "$T/$g/charon.out" "$T/$g/charon.vici" "charon $g did not open its VICI socket" \
    "STRONGSWAN_CONF='$T/$g/strongswan.conf' exec $CHARON"
}

bridge_conf_etsi() { # R RETRIES INTERVAL RETRY_MAX SUPERVISE
  local r=$1
  echo "[bridge]"
  echo "name = bridge-$r"
  [ "$r" = i ] && echo "role = initiator" || echo "role = responder"
  echo "log_file = $T/bridge_$r.log"
  echo "admin = 127.0.0.1:0"
  echo "[kme]"
  echo "api = etsi014"
  if [ "$r" = i ]; then
    echo "url = $(etsi_url A)"; echo "cert = $(crt SAE_A1)"; echo "key = $(key SAE_A1)"; echo "peer_sae_id = SAE_B1"
  else
    echo "url = $(etsi_url B)"; echo "cert = $(crt SAE_B1)"; echo "key = $(key SAE_B1)"; echo "peer_sae_id = SAE_A1"
  fi
  echo "ca = $T/pki/ca.crt"
  echo "key_bits = 256"
  echo "timeout = 3s"
  echo "[peer]"
  [ "$r" = i ] && echo "address = 127.0.0.1:$BPORT" || echo "listen = 127.0.0.1:$BPORT"
  echo "auth = psk"
  echo "psk_identity = bridge-a"
  echo "psk_file = $T/bridge.psk"
  [ "$r" = r ] && echo "peer_name = bridge-a"
  echo "timeout = 8s"
  echo "retries = $2"
  echo "[rotation]"
  echo "interval = $3"
  echo "retry_min = 1s"
  echo "retry_max = $4"
  echo "supervise = $5"
}

declare -A WGNS=()
start_wg() { # G NS
  local g=$1 ns=$2
  mkdir -p "$T/$g/run"
  WGNS[$g]=$ns
  _ns_daemon "$g" "$ns" "$T/$g/wg.log" "$T/$g/run/wireguard/wg0.sock" \
    "wireguard-go $g did not open its UAPI socket" "LOG_LEVEL=verbose exec wireguard-go -f wg0"
}

wgx() { # G ARGS...
  local g=$1
  shift
  ip netns exec "${WGNS[$g]}" sh -c "mount --bind '$T/$g/run' /run && exec wg \"\$@\"" wg "$@"
}

#!/usr/bin/env bash
# bridge_modes.sh - about 20 s, no root (loopback only). The qkd-bridge paths that the
# gateway end-to-end tests do not take: keys through SKIP (draft-cisco-skip-02, TLS-PSK) from
# both KMEs of tests/lib/etsi_pair.sh, the bridge channel with certificates (mTLS, CN checked
# against peer_name), and interval-driven rotation (interval = 3s). The gateway on both sides
# is the libreswan driver with a stand-in whack (it answers like pluto 4.10), so each bridge's
# PPKS file shows exactly which key it installed.
# Shows: a wrong CN and a certificate from another CA are refused by the responder and the
# initiator reports it; with the right certificate, at least two automatic rotations appear in
# `qkd-bridge status` without any rotate request; every key came from KME_A's SKIP GET /key and
# was fetched by ID at KME_B's SKIP listener; both bridges hold the same bytes under the same ID.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/etsi_pair.sh"
. "$ROOT/tests/lib/bridge.sh"
[ -x "$BRIDGE" ] || fail "$BRIDGE not built"
trap 'bridge_cleanup; _pair_cleanup' EXIT
command -v jq >/dev/null || fail "jq missing"

dump() { bridge_tails 15 "$T"/bridge_*.log; }
die() { dump; fail "$*"; }

# ---- KMEs with SKIP listeners --------------------------------------------------------------
pair_init
pair_skip_conf A psk
pair_skip_conf B psk
pair_start A
pair_start B
[ -n "${PORT[A.skip]:-}" ] && [ -n "${PORT[B.skip]:-}" ] || fail "no SKIP listener port"
bridge_feed
ok "KMEs fed; SKIP listeners on ${PORT[A.skip]} and ${PORT[B.skip]}"

# ---- credentials ---------------------------------------------------------------------------
P=$T/pki
pki_server "$P" ca bridge-r >/dev/null || fail "pki_server bridge-r"
pki_client "$P" ca bridge-a >/dev/null || fail "pki_client bridge-a"
pki_client "$P" ca bridge-x >/dev/null || fail "pki_client bridge-x"
mkdir -p "$T/other" && pki_ca "$T/other" ca >/dev/null && pki_client "$T/other" ca bridge-a >/dev/null ||
  fail "second CA"
(umask 077 && echo "enc_a:$(skip_psk A enc_a)" >"$T/skip_a.client" && echo "enc_b:$(skip_psk B enc_b)" >"$T/skip_b.client") ||
  fail "SKIP client PSK files"

# ---- stand-in pluto: whack answers like pluto 4.10 ------------------------------------------
cat >"$T/whack" <<'EOF'
#!/bin/sh
# args: --ctlsocket DIR/pluto.ctl CMD...; the secrets file is DIR/ppk.secrets
d=$(dirname "$2")
echo "$3" >>"$d/whack.calls"
case $3 in
--rereadsecrets) echo "002 forgetting secrets"; echo "002 loading secrets from \"$d/ppk.secrets\"" ;;
--showstates) echo "000 #1: \"qkd\":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); newest;" ;;
esac
exit 0
EOF
chmod 0755 "$T/whack" || fail "chmod"
mkdir -p "$T/gw_i" "$T/gw_r" || fail "mkdir"

BPORT=$(free_port) || fail "no free port"
bridge_conf() { # NAME ROLE(i|r) CERT-DIR CN INTERVAL
  local name=$1 r=$2 cdir=$3 cn=$4 interval=$5
  {
    echo "[bridge]"
    echo "name = $name"
    [ "$r" = i ] && echo "role = initiator" || echo "role = responder"
    echo "log_file = $T/bridge_$name.log"
    echo "[kme]"
    echo "api = skip"
    if [ "$r" = i ]; then
      echo "url = $(skip_url A)"; echo "psk_identity = enc_a"; echo "psk_file = $T/skip_a.client"; echo "peer_sae_id = KME_B"
    else
      echo "url = $(skip_url B)"; echo "psk_identity = enc_b"; echo "psk_file = $T/skip_b.client"; echo "peer_sae_id = KME_A"
    fi
    echo "timeout = 3s"
    echo "[peer]"
    [ "$r" = i ] && echo "address = 127.0.0.1:$BPORT" || echo "listen = 127.0.0.1:$BPORT"
    echo "auth = cert"
    echo "ca = $P/ca.crt"
    echo "cert = $cdir/$cn.crt"
    echo "key = $cdir/$cn.key"
    echo "peer_name = bridge-a"
    echo "timeout = 5s"
    echo "retries = 0"
    echo "[rotation]"
    echo "interval = $interval"
    echo "retry_min = 500ms"
    echo "retry_max = 1s"
    echo "supervise = 1s"
    echo "[gateway]"
    echo "driver = libreswan"
    echo "[libreswan]"
    echo "secrets_file = $T/gw_$r/ppk.secrets"
    echo "whack = $T/whack"
    echo "ctlsocket = $T/gw_$r/pluto.ctl"
    echo "connection = qkd"
    echo "local_id = @$r.example"
    echo "remote_id = @peer.example"
  } >"$T/bridge_$name.conf"
}
bridge_conf r r "$P" bridge-r 0
bridge_conf i i "$P" bridge-a 3s
bridge_conf x i "$P" bridge-x 0
bridge_conf o i "$T/other" bridge-a 0
for n in r i x o; do "$BRIDGE" check-config -c "$T/bridge_$n.conf" >/dev/null || fail "config $n"; done

bridge_start r

# ---- 1: mTLS refusals ------------------------------------------------------------------------
for n in x o; do
  bridge_start $n
  for k in $(seq 1 40); do [ "$(bstv $n .rotations_failed)" -ge 1 ] 2>/dev/null && break; sleep 0.25; done
  [ "$(bstv $n .rotations_failed)" -ge 1 ] || { bst $n; die "initiator $n was not refused"; }
  [ "$(bstv $n .peer_errors)" -ge 1 ] || { bst $n; die "initiator $n reports no peer error"; }
  [ "$(bstv $n .rotations_ok)" = 0 ] || die "initiator $n rotated"
  bstv $n .last_error | grep -q "responder\|bridge\|TLS\|403" || { bst $n; die "last_error of $n does not name the channel"; }
  bridge_stop $n
done
grep -q "refused peer 'bridge-x' (expected 'bridge-a')" "$T/bridge_r.log" || die "responder did not log the wrong CN"
[ "$(bstv r .rotations_ok)" = 0 ] && [ "$(bstv r .key_id)" = null ] || { bst r; die "responder took a key from a refused initiator"; }
grep -q PPKS "$T/gw_r/ppk.secrets" 2>/dev/null && die "responder installed a key from a refused initiator"
ok "mTLS: CN bridge-x (peer_name bridge-a) and a certificate from another CA are refused"

# ---- 2: SKIP keys, mTLS channel, rotation every 3 s ----------------------------------------
t0=$(date +%s)
bridge_start i
bridge_wait_ok i 3 20 || die "fewer than 3 rotations (1 at start + 2 by interval) within 20 s"
t1=$(date +%s)
[ $((t1 - t0)) -ge 5 ] || die "3 rotations in $((t1 - t0)) s: not paced by the 3 s interval"
[ "$(bstv i .rotations_failed)" = 0 ] || { bst i; die "rotations failed"; }
nr=$(bstv i .next_rotation_in_s)
[ "$nr" -le 3 ] 2>/dev/null || { bst i; die "next_rotation_in_s = $nr with interval 3s"; }
"$BRIDGE" status --admin "${ADMIN[i]}" | grep -qi "next rotation" || { "$BRIDGE" status --admin "${ADMIN[i]}"; die "status text shows no next rotation"; }
grep -c "rotation: key .* in use by libreswan" "$T/bridge_i.log" | grep -qv '^[012]$' || die "the log does not show 3 rotations"
ok "interval 3s: $(bstv i .rotations_ok) rotations without a rotate request in $((t1 - t0)) s"

# every key: SKIP GET /key at KME_A (from enc_a), GET /key/{id} at KME_B (from enc_b)
mapfile -t KIDS < <(sed -n 's/.*rotation: key \([^ ]*\) in use by libreswan.*/\1/p' "$T/bridge_i.log")
[ "${#KIDS[@]}" -ge 3 ] || die "fewer than 3 key IDs in the initiator log"
[ "$(printf '%s\n' "${KIDS[@]}" | sort -u | wc -l)" = "${#KIDS[@]}" ] || die "a key ID was used twice"
for k in "${KIDS[@]}"; do
  grep "$k" "$T/kme_A.log" | grep -q "listener=skip" || die "KME_A did not deliver $k over SKIP"
  grep "$k" "$T/kme_B.log" | grep "listener=skip" | grep -q "/key/$k" || die "KME_B did not deliver $k by ID over SKIP"
done
grep -q "event=request listener=etsi014" "$T/kme_A.log" "$T/kme_B.log" && die "a bridge used ETSI 014"
ok "keys ${KIDS[*]:0:3} came from SKIP: GET /key at KME_A, GET /key/{id} at KME_B"

# both bridges hold the same bytes under the active ID (retry: a rotation may fall in between)
same=0
for k in $(seq 1 10); do
  kid=$(bstv i .key_id)
  li=$(grep -h "PPKS \"$kid\"" "$T/gw_i/ppk.secrets" 2>/dev/null | awk '{print $NF}')
  lr=$(grep -h "PPKS \"$kid\"" "$T/gw_r/ppk.secrets" 2>/dev/null | awk '{print $NF}')
  if [ -n "$li" ] && [ "$li" = "$lr" ] && [[ $li =~ ^0x[0-9a-f]{64}$ ]]; then same=1; break; fi
  sleep 0.3
done
[ "$same" = 1 ] || die "the two bridges do not hold the same key under $kid"
for r in i r; do [ "$(stat -c %a "$T/gw_$r/ppk.secrets")" = 600 ] || die "gw_$r secrets file not 0600"; done
[ "$(bstv r .key_id)" != null ] || die "responder reports no key"
grep -q -- "--rereadsecrets" "$T/gw_r/whack.calls" || die "responder never ran whack --rereadsecrets"
ok "both bridges hold the same 256-bit key under $kid (0600 files)"

if grep -Eq '[0-9a-f]{64}' "$T"/bridge_*.log; then die "a 256-bit hex string appears in a bridge log"; fi
bridge_stop i
bridge_stop r
[ -e "$T/gw_i/ppk.secrets" ] || [ -e "$T/gw_r/ppk.secrets" ] && die "a stopped bridge left its secrets file"
ok "no key material in the logs; stopped bridges wiped their files"
echo "PASS"

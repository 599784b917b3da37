#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): a network namespace and wpa_supplicant.
# bridge_macsec_conf.sh - the MKA PSK configuration qkd-bridge generates (CAK = the QKD key,
# CKN = the key ID's 16 octets) is accepted by the real wpa_supplicant 2.10 parser, and the
# same check rejects known-bad variants (so it can fail). Needs root for a throw-away network
# namespace (wpa_supplicant is started there on lo; on this kernel its MACsec driver then fails
# to initialise, which is expected: no CONFIG_MACSEC). Skips (77) only when not root.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=/dev/null
. "$ROOT/tests/lib/skip.sh"
qk_need_root "network namespace"
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BRIDGE=$BUILD/bin/qkd-bridge
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
[ -x "$BRIDGE" ] || fail "$BRIDGE not built"
command -v wpa_supplicant >/dev/null || fail "wpa_supplicant missing (scripts/install-deps installs wpasupplicant)"
T=$(mktemp -d /tmp/qkb-macsec.XXXXXX)
NS=qkbm$$
cleanup() {
  if ip netns list | grep -qw "$NS"; then
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$NS"
  fi
  rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$NS" || fail "ip netns add"

cat >"$T/b.conf" <<EOF2
[bridge]
role = responder
[kme]
url = https://127.0.0.1:1
cert = c
key = k
peer_sae_id = SAE_A
[peer]
listen = 127.0.0.1:0
psk_identity = a
psk_file = p
[gateway]
driver = macsec
[macsec]
interface = lo
wpa_conf = $T/wpa.conf
ctrl_interface = $T/ctrl
priority = 16
EOF2

# parsecheck FILE: 0 = parsed, 1 = rejected by the parser
parsecheck() {
  local out
  out=$(ip netns exec "$NS" timeout 5 wpa_supplicant -D macsec_linux -i lo -c "$1" -dd 2>&1)
  echo "$out" >"$1.log"
  if echo "$out" | grep -q "Failed to read or parse configuration"; then return 1; fi
  echo "$out" | grep -q "Reading configuration file" || { echo "$out" | tail -5; fail "wpa_supplicant did not read $1"; }
  return 0
}

KEY=b03a140daa41af182c5112eb19892def7021da40e17d49d3399629fb9d56bd42
KID=8c399756-a847-48db-a9ff-33fcd9d1565d
echo "$KEY" | "$BRIDGE" macsec-render -c "$T/b.conf" --key-id "$KID" >"$T/good.conf" || fail "macsec-render"
grep -q "^	mka_cak=$KEY$" "$T/good.conf" || fail "CAK is not the QKD key"
grep -q "^	mka_ckn=8c399756a84748dba9ff33fcd9d1565d$" "$T/good.conf" || fail "CKN is not the key ID's 16 octets"
parsecheck "$T/good.conf" || { cat "$T/good.conf.log" | grep -iE "line|invalid|unknown"; fail "wpa_supplicant 2.10 rejected the generated configuration"; }
grep -q "macsec_linux\|KaY\|driver" "$T/good.conf.log" || fail "wpa_supplicant did not get past the configuration"
ok "256-bit CAK configuration accepted by $(wpa_supplicant -v | head -1)"

sed 's/^}$/\tmacsec_csindex=1\n}/' "$T/good.conf" >"$T/bad1.conf"
parsecheck "$T/bad1.conf" && fail "the parser check accepted macsec_csindex (the check cannot fail)"
sed "s/mka_ckn=.*/mka_ckn=$KID/" "$T/good.conf" >"$T/bad2.conf"
parsecheck "$T/bad2.conf" && fail "the parser check accepted a dashed UUID as CKN"
sed "s/mka_cak=.*/mka_cak=0011/" "$T/good.conf" >"$T/bad3.conf"
parsecheck "$T/bad3.conf" && fail "the parser check accepted a short CAK"
ok "the same check rejects macsec_csindex, a dashed CKN and a short CAK"

# 128-bit CAK and a non-UUID hex key ID
sed -i 's/^priority = 16$/priority = 16\ncak_bits = 128/' "$T/b.conf"
printf '[kme]\nkey_bits = 128\n' >>"$T/b.conf"
echo 000102030405060708090a0b0c0d0e0f | "$BRIDGE" macsec-render -c "$T/b.conf" --key-id 0011223344 >"$T/k128.conf" || fail "macsec-render 128"
grep -q "mka_ckn=0011223344$" "$T/k128.conf" || fail "hex key ID CKN"
parsecheck "$T/k128.conf" || fail "wpa_supplicant rejected the 128-bit configuration"
ok "128-bit CAK configuration accepted"
echo "$KEY" | "$BRIDGE" macsec-render -c "$T/b.conf" --key-id "$KID" >/dev/null 2>&1 && fail "a 256-bit key was accepted as a 128-bit CAK"
echo 000102030405060708090a0b0c0d0e0f | "$BRIDGE" macsec-render -c "$T/b.conf" --key-id not-a-ckn >/dev/null 2>&1 && fail "a non-hex key ID was accepted as CKN"
ok "wrong CAK length and unusable key IDs refused"
echo PASS

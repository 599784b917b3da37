#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): network namespaces and charon/pluto daemons.
# SLOW: runs in the normal build of make check (QK_SLOW=1), not again under the sanitizers.
# bridge_libreswan_interop.sh - about 25 s. Needs root: network namespaces, bind mounts, and
# scripts/fetch-libreswan (apt-get download libreswan + its library dependencies, once; the
# test skips with 77 when not root, and when the package cannot be fetched at all - the latter
# a failure under CI=true or QK_STRICT_SKIPS=1, tests/lib/skip.sh).
# strongSwan 5.9.8 charon (kernel-libipsec) in one namespace driven by a qkd-bridge with the
# strongSwan driver as IKE initiator; libreswan 4.10 pluto (unpacked, not installed: the Debian
# package conflicts with strongSwan) in the other, its PPKS secrets file managed by a qkd-bridge
# with the libreswan driver; the two KMEs of tests/lib/etsi_pair.sh. This kernel has no ESP for
# libreswan, so the IKE SA is childless (strongSwan childless = force; libreswan creates a
# childless SA). Shows: the IKE SA comes up with a PPK (charon "using PPK for PPK_ID '<id>'",
# pluto "PPK AUTH calculated as responder" and an established IKE SA) whose key ID both KMEs
# delivered; a rotation moves both sides to a new key and the old PPKS line is gone; a secrets
# file pluto does not read is reported by the driver and the SA is kept; without the key on the libreswan side no
# SA comes up (pluto refuses, ppk=insist); recovery; libreswan as IKE initiator (initiate = yes):
# the IKE SA authenticates with the PPK on both sides, and the Child SA this kernel cannot
# install is reported by the driver instead of a rotation (whack --initiate exits 0 anyway).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/skip.sh"
qk_need_root "network namespaces, apt-get"
. "$ROOT/tests/lib/etsi_pair.sh"
. "$ROOT/tests/lib/bridge.sh"

LSW_ROOT=$("$ROOT/scripts/fetch-libreswan")
rc=$?
if [ "$rc" = 3 ]; then qk_skip no-package "the libreswan package cannot be fetched"; fi
[ "$rc" = 0 ] && [ -n "$LSW_ROOT" ] || fail "scripts/fetch-libreswan failed ($rc)"
PLUTO=$LSW_ROOT/usr/libexec/ipsec/pluto
WHACK=$LSW_ROOT/usr/libexec/ipsec/whack
[ -x "$BRIDGE" ] || fail "$BRIDGE not built"
[ -x "$CHARON" ] || fail "$CHARON missing (scripts/install-deps installs strongswan-charon)"
[ -f /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || fail "kernel-libipsec plugin missing"
command -v certutil >/dev/null || fail "certutil missing (fetch-libreswan installs libnss3-tools)"

NS1=qkl$$a NS2=qkl$$b
QKB_NETNS="$NS1 $NS2"
L=$T/lsw
trap 'bridge_cleanup; _pair_cleanup' EXIT

dump() { bridge_tails 25 "$T"/gw1/charon.log "$L"/pluto.log "$T"/bridge_i.log "$T"/bridge_r.log; }
die() { dump; fail "$*"; }

# ---- KMEs ----------------------------------------------------------------------------------
bridge_kmes_fed

# ---- namespaces ----------------------------------------------------------------------------
netns_pair $NS1 $NS2 qkl$$v

# ---- strongSwan (initiator side) -----------------------------------------------------------
start_charon gw1 $NS1
ok "charon (kernel-libipsec) in $NS1"

# ---- libreswan pluto (responder side) ------------------------------------------------------
umask 077
mkdir -p "$L/run" "$L/ipsec.d" "$L/nss" || fail "mkdir $L"
hexrand 32 >"$T/ike.psk"
echo "bridge-a:$(hexrand 32)" >"$T/bridge.psk"
# The IKE PSK is the file's bytes on both sides (the strongSwan driver loads the raw bytes).
cat >"$L/ipsec.secrets" <<EOF
@lsw.example @gw1.example : PSK "$(cat "$T/ike.psk")"
include $L/ppk.secrets
EOF
umask 022
certutil -N -d "sql:$L/nss" --empty-password >/dev/null 2>&1 || fail "certutil -N"
cat >"$L/ipsec.conf" <<EOF
config setup
	logfile=$L/pluto.log
	plutodebug=none
	ipsecdir=$L/ipsec.d
	secretsfile=$L/ipsec.secrets
	nssdir=$L/nss
	dumpdir=$L/run
	listen=192.0.2.2

conn qkd
	ikev2=insist
	authby=secret
	left=192.0.2.2
	leftid=@lsw.example
	right=192.0.2.1
	rightid=@gw1.example
	ppk=insist
	ike=aes256-sha2_256-dh31
	esp=aes_gcm256
	auto=add

# step 6: libreswan as the IKE initiator (with a Child SA: libreswan 4.10 always proposes one)
conn qkd-out
	ikev2=insist
	authby=secret
	left=192.0.2.2
	leftid=@lsw.example
	leftsubnet=203.0.113.9/32
	right=192.0.2.1
	rightid=@gw1.example
	rightsubnet=198.51.100.1/32
	ppk=insist
	ike=aes256-sha2_256-dh31
	esp=aes_gcm256-none-dh31
	auto=ignore
EOF
# pluto insists on /usr/libexec/ipsec/addconn: bind the unpacked tree over /usr/libexec inside
# the namespace's private mount namespace.
ip netns exec $NS2 sh -c "mount --bind '$LSW_ROOT/usr/libexec' /usr/libexec && exec /usr/libexec/ipsec/pluto --nofork \
  --config '$L/ipsec.conf' --rundir '$L/run' --secretsfile '$L/ipsec.secrets' --ipsecdir '$L/ipsec.d' \
  --nssdir '$L/nss' --logfile '$L/pluto.log'" >"$L/pluto.out" 2>&1 &
CPID[lsw]=$!
for i in $(seq 1 100); do
  [ -S "$L/run/pluto.ctl" ] && grep -q 'added IKEv2 connection' "$L/pluto.log" 2>/dev/null && break
  kill -0 "${CPID[lsw]}" 2>/dev/null || break
  sleep 0.1
done
grep -q 'added IKEv2 connection' "$L/pluto.log" 2>/dev/null || { cat "$L/pluto.out"; die "pluto did not start"; }
"$PLUTO" --version 2>/dev/null | grep -q "Libreswan 4\." || die "not libreswan 4.x: $("$PLUTO" --version 2>&1 | head -1)"
whack() { "$WHACK" --ctlsocket "$L/run/pluto.ctl" "$@"; }
ok "pluto $("$PLUTO" --version | awk '{print $2}') in $NS2 (connection qkd, ppk=insist)"

# ---- bridges -------------------------------------------------------------------------------
BPORT=$(free_port) || fail "no free port"
bridge_conf() { # i|r
  local r=$1
  {
    bridge_conf_etsi "$r" 1 1h 4s 2s
    if [ "$r" = i ]; then
      echo "[gateway]"
      echo "driver = strongswan"
      echo "[strongswan]"
      echo "socket = unix://$T/gw1/charon.vici"
      echo "connection = qkd"
      echo "local_addrs = 192.0.2.1"; echo "remote_addrs = 192.0.2.2"
      echo "local_id = gw1.example"; echo "remote_id = lsw.example"
      echo "ike_psk_file = $T/ike.psk"
      echo "proposals = aes256-sha256-x25519"
      echo "childless = yes"
      echo "initiate_timeout = 8s"
    else
      echo "[gateway]"
      echo "driver = libreswan"
      echo "[libreswan]"
      echo "secrets_file = $L/ppk.secrets"
      echo "whack = $WHACK"
      echo "ctlsocket = $L/run/pluto.ctl"
      echo "local_id = @lsw.example"
      echo "remote_id = @gw1.example"
    fi
  } >"$T/bridge_$r.conf"
}
bridge_pair_up

sas() { "$BRIDGE" vici --stream list-sa "unix://$T/gw1/charon.vici" list-sas; }
lsw_ike_up() { whack --showstates | grep -q "ESTABLISHED_IKE_SA"; }

wait_rotations() {
  local n=$1 i
  for i in $(seq 1 80); do
    if [ "$(bstv i .rotations_ok)" -ge "$n" ] 2>/dev/null && [ "$(bstv i .sa.ppk_confirmed)" = true ]; then return 0; fi
    sleep 0.25
  done
  bst i; die "initiator did not reach $n rotations with a confirmed PPK"
}

# check_key KID: charon used the PPK, pluto authenticated with it and holds exactly this PPKS
# line, the SA is ESTABLISHED on both, both KMEs delivered the key.
check_key() {
  local kid=$1
  grep -q "using PPK for PPK_ID '$kid'" "$T/gw1/charon.log" || die "charon did not log PPK_ID $kid"
  sas | grep -q "ppk = yes" || die "charon list-sas has no ppk=yes"
  [ "$(sas | grep -c 'state = ESTABLISHED')" = 1 ] || { sas; die "more or less than one IKE SA on charon"; }
  whack --showstates >"$L/showstates.txt" 2>&1
  grep -q "ESTABLISHED_IKE_SA" "$L/showstates.txt" || { cat "$L/showstates.txt"; die "pluto shows no established IKE SA"; }
  [ "$(stat -c %a "$L/ppk.secrets")" = 600 ] || die "secrets file is not 0600"
  grep -q "^@lsw.example @gw1.example : PPKS \"$kid\" 0x[0-9a-f]\{64\}\$" "$L/ppk.secrets" ||
    die "secrets file has no PPKS line for $kid"
  [ "$(grep -c PPKS "$L/ppk.secrets")" = 1 ] || die "secrets file holds more than the active key"
  grep -qi "$kid" "$T/kme_A.log" || die "KME_A has no record of delivering $kid"
  grep "$kid" "$T/kme_B.log" | grep -q dec_keys || die "KME_B did not deliver $kid through dec_keys"
}

# ---- 1: IKE SA with PPK ---------------------------------------------------------------------
wait_rotations 1
K1=$(bstv i .key_id)
check_key "$K1"
[ "$(bstv r .key_id)" = "$K1" ] || { bst r; die "responder does not report key $K1"; }
grep -q "PPK AUTH calculated as responder" "$L/pluto.log" || die "pluto log shows no PPK authentication"
grep -q "parsed IKE_AUTH response .*N(PPK_ID)" "$T/gw1/charon.log" ||
  die "pluto's IKE_AUTH response carries no PPK_IDENTITY notify"
grep -q "responder established IKE SA" "$L/pluto.log" || die "pluto established no IKE SA"
grep -q "creating childless SA\|does not propose a Child SA" "$L/pluto.log" || die "pluto did not take the childless path"
ok "childless IKE SA strongSwan -> libreswan with PPK $K1 (both KMEs delivered it)"

# ---- 2: rotation ---------------------------------------------------------------------------
n_auth=$(grep -c "PPK AUTH calculated as responder" "$L/pluto.log")
"$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
wait_rotations 2
K2=$(bstv i .key_id)
[ "$K2" != "$K1" ] || die "rotation reused $K1"
check_key "$K2"
[ "$(grep -c "PPK AUTH calculated as responder" "$L/pluto.log")" -gt "$n_auth" ] || die "pluto did not authenticate a new SA with a PPK"
grep -q "\"$K1\"" "$L/ppk.secrets" && die "old key $K1 still in the secrets file"
[ "$(bstv r .key_id)" = "$K2" ] || { bst r; die "responder does not report key $K2"; }
ok "rotation: new IKE SA with PPK $K2; $K1 gone from pluto's secrets"

for i in $(seq 1 20); do [ "$(bstv r .sa.state)" = ESTABLISHED ] && break; sleep 0.25; done   # supervise = 2s
[ "$(bstv r .sa.state)" = ESTABLISHED ] || { bst r; die "responder bridge does not see pluto's IKE SA"; }
[ "$(bstv r .sa.ppk_confirmed)" = null ] || die "the libreswan driver claims a PPK confirmation it cannot make"

# ---- 3: pluto does not read the driver's file: the driver must notice -----------------------
# whack --rereadsecrets exits 0 even when pluto skips or rejects the file; an earlier driver
# trusted that exit status, so the rotation "succeeded" and only the IKE_AUTH failed later.
out=$(whack --rereadsecrets 2>&1)
grep -q "loading secrets from \"$L/ppk.secrets\"" <<<"$out" || die "pluto does not load the bridge's file: $out"
grep -q "^003" <<<"$out" && die "pluto complains about the bridge's file: $out"
cp "$L/ipsec.secrets" "$L/ipsec.secrets.full" || die "cp"
grep -v '^include' "$L/ipsec.secrets.full" >"$L/ipsec.secrets" || die "rewrite ipsec.secrets"
whack --rereadsecrets >/dev/null || die "whack --rereadsecrets"
failed=$(bstv i .rotations_failed)
"$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
for i in $(seq 1 60); do [ "$(bstv i .rotations_failed)" -gt "$failed" ] && break; sleep 0.25; done
[ "$(bstv i .rotations_failed)" -gt "$failed" ] || { bst i; die "rotation succeeded although pluto does not read the file"; }
bstv r .last_error | grep -q "pluto did not read $L/ppk.secrets" || { bst r; die "responder does not say that pluto skipped its file"; }
[ "$(bstv i .key_id)" = "$K2" ] || die "initiator switched keys although the responder failed"
cp "$L/ipsec.secrets.full" "$L/ipsec.secrets" || die "restore ipsec.secrets"
whack --rereadsecrets >/dev/null || die "whack --rereadsecrets"
lsw_ike_up || die "the IKE SA with $K2 went down"
ok "pluto skipping the file is reported (\"$(bstv r .last_error | cut -c1-60)...\"); SA with $K2 kept"
"$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
wait_rotations 3
K3=$(bstv i .key_id)
check_key "$K3"
ok "file included again: rotation to $K3"

# ---- 4: no key on the libreswan side: no SA -------------------------------------------------
bridge_stop r                        # wipes its secrets file
[ -e "$L/ppk.secrets" ] && die "responder left its secrets file behind"
whack --rereadsecrets >/dev/null || die "whack --rereadsecrets"
gerr=$(bstv i .gateway_errors)
"$BRIDGE" vici "unix://$T/gw1/charon.vici" terminate ike=qkd timeout=5000 >/dev/null 2>&1
for i in $(seq 1 60); do [ "$(bstv i .gateway_errors)" -gt "$gerr" ] && break; sleep 0.25; done
[ "$(bstv i .gateway_errors)" -gt "$gerr" ] || { bst i; die "initiator did not report the failed SA"; }
sleep 2
sas | grep -q "state = ESTABLISHED" && { sas; die "charon has an ESTABLISHED IKE SA although pluto lacks the PPK"; }
lsw_ike_up && { whack --showstates; die "pluto has an established IKE SA without the PPK"; }
grep -q "AUTHENTICATION_FAILED" "$T/gw1/charon.log" || die "charon did not receive AUTHENTICATION_FAILED"
grep -q "Requested PPK_ID not found and connection requires a valid PPK" "$L/pluto.log" || die "pluto does not log the missing PPK"
[ "$(bstv i .sa.up)" = false ] || die "initiator claims an SA"
ok "libreswan without the key: pluto refuses (ppk=insist), no SA, initiator reports it"

# ---- 5: recovery ---------------------------------------------------------------------------
bridge_start r
"$BRIDGE" rotate --admin "${ADMIN[i]}" >/dev/null || die "rotate request"
wait_rotations 4
K4=$(bstv i .key_id)
check_key "$K4"
ok "responder back: IKE SA with PPK $K4"

# ---- 6: libreswan as the IKE initiator ([libreswan] initiate = yes) ------------------------
# Roles swap: a libreswan bridge (KME_B, SAE_B1) initiates, a strongSwan bridge (KME_A) responds
# with a connection that has a Child SA. pluto 4.10 always proposes a Child SA as initiator; on
# a kernel without ESP it establishes the IKE SA with the PPK, fails to install the Child SA
# and tears everything down, while `whack --initiate` still exits 0. The driver must report
# that, not a rotation. On a kernel with ESP the rotation must succeed.
bridge_stop i
bridge_stop r
"$BRIDGE" vici "unix://$T/gw1/charon.vici" terminate ike=qkd timeout=5000 >/dev/null 2>&1
"$BRIDGE" vici "unix://$T/gw1/charon.vici" unload-conn name=qkd >/dev/null || die "unload-conn qkd"
whack --delete --name qkd >/dev/null 2>&1
"$LSW_ROOT/usr/libexec/ipsec/addconn" --ctlsocket "$L/run/pluto.ctl" --config "$L/ipsec.conf" qkd-out \
  >"$L/addconn.out" 2>&1 || { cat "$L/addconn.out"; die "addconn qkd-out"; }
ip -n $NS1 addr add 198.51.100.1/32 dev lo && ip -n $NS2 addr add 203.0.113.9/32 dev lo || die "lo addr"
BPORT2=$(free_port "$BPORT") || fail "no free port"
{
  echo "[bridge]"; echo "name = bridge-lsw"; echo "role = initiator"; echo "log_file = $T/bridge_li.log"
  echo "[kme]"; echo "url = $(etsi_url B)"; echo "cert = $(crt SAE_B1)"; echo "key = $(key SAE_B1)"
  echo "peer_sae_id = SAE_A1"; echo "ca = $T/pki/ca.crt"; echo "timeout = 3s"
  echo "[peer]"; echo "address = 127.0.0.1:$BPORT2"; echo "psk_identity = bridge-a"; echo "psk_file = $T/bridge.psk"
  echo "timeout = 8s"; echo "retries = 0"
  echo "[rotation]"; echo "interval = 1h"; echo "retry_min = 5s"; echo "retry_max = 10s"; echo "supervise = 2s"
  echo "[gateway]"; echo "driver = libreswan"
  echo "[libreswan]"; echo "secrets_file = $L/ppk.secrets"; echo "whack = $WHACK"; echo "ctlsocket = $L/run/pluto.ctl"
  echo "connection = qkd-out"; echo "initiate = yes"; echo "local_id = @lsw.example"; echo "remote_id = @gw1.example"
} >"$T/bridge_li.conf"
{
  echo "[bridge]"; echo "name = bridge-sw"; echo "role = responder"; echo "log_file = $T/bridge_sr.log"
  echo "[kme]"; echo "url = $(etsi_url A)"; echo "cert = $(crt SAE_A1)"; echo "key = $(key SAE_A1)"
  echo "peer_sae_id = SAE_B1"; echo "ca = $T/pki/ca.crt"; echo "timeout = 3s"
  echo "[peer]"; echo "listen = 127.0.0.1:$BPORT2"; echo "psk_identity = bridge-a"; echo "psk_file = $T/bridge.psk"
  echo "peer_name = bridge-a"
  echo "[rotation]"; echo "supervise = 2s"
  echo "[gateway]"; echo "driver = strongswan"
  echo "[strongswan]"; echo "socket = unix://$T/gw1/charon.vici"; echo "connection = qkd-in"
  echo "local_addrs = 192.0.2.1"; echo "remote_addrs = 192.0.2.2"; echo "local_id = gw1.example"; echo "remote_id = lsw.example"
  echo "ike_psk_file = $T/ike.psk"; echo "proposals = aes256-sha256-x25519"; echo "esp_proposals = aes256gcm16-x25519"
  echo "child = net"; echo "local_ts = 198.51.100.1/32"; echo "remote_ts = 203.0.113.9/32"
} >"$T/bridge_sr.conf"
bridge_start sr
bridge_start li
for i in $(seq 1 60); do
  [ "$(bstv li .rotations_ok)" -ge 1 ] 2>/dev/null || [ "$(bstv li .rotations_failed)" -ge 1 ] 2>/dev/null && break
  sleep 0.25
done
KO=$(sed -n 's/.*responder: key \([^ ]*\) fetched.*/\1/p' "$T/bridge_sr.log" | head -1)
[ -n "$KO" ] || { bst li; die "the strongSwan responder bridge got no offer"; }
grep -q "PPK AUTH calculated as initiator" "$L/pluto.log" || die "pluto did not authenticate as initiator with a PPK"
grep -q "using PPK for PPK_ID '$KO'" "$T/gw1/charon.log" || die "charon (responder) did not use PPK $KO from pluto"
if grep -q "Add SA esp.*Function not implemented" "$L/pluto.log"; then
  [ "$(bstv li .rotations_failed)" -ge 1 ] && [ "$(bstv li .rotations_ok)" = 0 ] ||
    { bst li; die "the driver reported a rotation although pluto tore the SA down (whack exits 0)"; }
  bstv li .last_error | grep -q "Function not implemented" || { bst li; die "last_error does not carry pluto's reason"; }
  [ "$(bstv li .key_id)" = null ] || die "initiator claims key $(bstv li .key_id)"
  ok "libreswan initiator: IKE SA with PPK $KO authenticated on both sides, Child SA impossible here (no ESP); reported, not claimed"
else
  [ "$(bstv li .rotations_ok)" -ge 1 ] || { bst li; die "libreswan initiator: no rotation on a kernel with ESP"; }
  [ "$(bstv li .key_id)" = "$KO" ] || die "initiator reports another key than $KO"
  ok "libreswan initiator: SA with PPK $KO"
fi
bridge_stop li
bridge_stop sr

if grep -Eq '[0-9a-f]{64}' "$T"/bridge_*.log; then die "a 256-bit hex string appears in a bridge log"; fi
ok "no key material in the bridge logs"
echo "PASS"

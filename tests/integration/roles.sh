#!/usr/bin/env bash
# roles.sh - about 15 s, no root (loopback only). One identity, one role (issue 17 item 1,
# docs/qkd-kmed.md "Roles"): two qkd-kmed (tests/lib/etsi_pair.sh, real TLS on 127.0.0.1) with
# an etsi014, a skip (mtls), a peer and a device listener, and a qkd-bridge responder whose
# bridge channel takes certificates (auth = cert).
# Shows:
#  - the configuration refuses a name in two roles (qkd-kmed --check-config: [sae qkd-sim],
#    [sae KME_B]; qkd-lab up --topology and qkd-lab pki: an SAE named like the device or a KME);
#  - qkd-lab pki marks each client certificate with its role (SAN URI urn:qkd-kms:role:ROLE);
#  - every pair: a certificate marked for role X, with the CN each listener expects, is accepted
#    by the listener of role X and refused by the listeners of every other role (etsi014 401,
#    skip, peer, device and bridge channel 403); an unmarked one only where role_marker is
#    optional (etsi014, skip, bridge channel; at KME_B etsi014 says required and refuses it,
#    peer and device say optional and take it); an invalid marker (two roles, an unknown word)
#    everywhere;
#  - the original attack: an SAE certificate named like the device (CN qkd-sim) PUTs an
#    all-zero block at both KMEs: refused, the pools stay empty, enc_keys serves nothing; the
#    real device then feeds both and the keys are not all zero.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=/dev/null
. "$ROOT/tests/lib/etsi_pair.sh"
# shellcheck source=/dev/null
. "$ROOT/tests/lib/bridge.sh"
LAB=$BUILD/bin/qkd-lab
qk_need_bin "$BRIDGE" "$LAB"
trap 'bridge_cleanup; _pair_cleanup' EXIT

# ---- 1: configurations that give one name two roles ------------------------------------------
pair_init
for bad in "[sae qkd-sim]" "[sae KME_B]" "[sae KME_A]"; do
  { cp "$T/kme_A.conf" "$T/bad.conf" && printf '%s\nkme = KME_A\n' "$bad" >>"$T/bad.conf"; } || fail "bad.conf"
  if "$KMED" --check-config "$T/bad.conf" >"$T/check.out" 2>&1; then
    fail "--check-config accepted $bad"
  fi
  grep -q "an identity has one role" "$T/check.out" || { cat "$T/check.out"; fail "$bad: no role message"; }
done
"$KMED" --check-config "$T/kme_A.conf" >/dev/null || fail "--check-config refused the good config"
ok "--check-config refuses [sae qkd-sim], [sae KME_B], [sae KME_A]: $(head -c 200 "$T/check.out")"

printf '%s\n' "[kme KME_A]" "saes = SAE_A1, qkd-sim" "[kme KME_B]" "saes = SAE_B1" \
  "[link AB]" "kmes = KME_A, KME_B" >"$T/topo.ini"
if "$LAB" up --dir "$T/lab" --topology "$T/topo.ini" >"$T/lab.out" 2>&1; then
  "$LAB" down --dir "$T/lab" >/dev/null 2>&1
  fail "qkd-lab up accepted an SAE named qkd-sim"
fi
grep -q "identity of the device" "$T/lab.out" || { cat "$T/lab.out"; fail "qkd-lab up: no reason"; }
[ ! -e "$T/lab/pki" ] || fail "qkd-lab up issued certificates for a refused topology"
for sae in qkd-sim KME_A; do
  "$LAB" pki --dir "$T/p2" --kme KME_A=127.0.0.1 --sae "$sae@KME_A" >"$T/pki.out" 2>&1
  rc=$?
  { [ "$rc" = 2 ] && grep -q "one role" "$T/pki.out"; } || { cat "$T/pki.out"; fail "qkd-lab pki --sae $sae@KME_A: exit $rc"; }
done
"$LAB" pki --dir "$T/p3" --kme KME_A=127.0.0.1 --kme KME_B=127.0.0.2 --sae SAE_A1@KME_A >/dev/null ||
  fail "qkd-lab pki"
marker() { openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | grep -o 'urn:qkd-kms:role:[a-z]*'; }
[ "$(marker "$T/p3/KME_A/sae-SAE_A1.crt")" = urn:qkd-kms:role:sae ] || fail "SAE certificate marker"
[ "$(marker "$T/p3/KME_A/peer.crt")" = urn:qkd-kms:role:kme ] || fail "peer certificate marker"
[ "$(marker "$T/p3/device/device.crt")" = urn:qkd-kms:role:device ] || fail "device certificate marker"
ok "qkd-lab up --topology and qkd-lab pki refuse an SAE named like the device or a KME; pki marks sae, kme, device"

# ---- 2: the pair, a SKIP listener with certificates, a bridge responder -----------------------
pair_skip_conf A mtls
pair_skip_conf B mtls
printf '%s\n' "[listener etsi014]" "role_marker = required" "[listener peer]" \
  "role_marker = optional" "[listener device]" "role_marker = optional" >>"$T/kme_B.conf"
pair_start A
pair_start B

# Certificates of one CA with the CN each listener expects, one folder per marker:
# $T/rc/MARK/CN.crt. MARK: sae kme device bridge, none (no marker), two (sae and device),
# word (an unknown role).
P=$T/pki
CNS="SAE_A1 SAE_B1 skip_a KME_A KME_B qkd-sim bridge-a"
for mark in sae kme device bridge none two word; do
  d=$T/rc/$mark
  { mkdir -p "$d" && cp "$P/ca.crt" "$P/ca.key" "$d/"; } || fail "mkdir $d"
  for cn in $CNS; do
    case $mark in
      none) pki_client "$d" ca "$cn" ;;
      two) pki_client_uris "$d" ca "$cn" urn:qkd-kms:role:sae urn:qkd-kms:role:device ;;
      word) pki_client "$d" ca "$cn" admin ;;
      *) pki_client "$d" ca "$cn" "$mark" ;;
    esac >/dev/null || fail "certificate $mark/$cn"
  done
  rm -f "$d/ca.key"
done

# The bridge responder (over SKIP at KME_B; the libreswan driver with a stand-in whack: no
# gateway is reached in this test).
pki_server "$P" ca bridge-r >/dev/null || fail "pki_server bridge-r"
{ printf '#!/bin/sh\nexit 0\n' >"$T/whack" && chmod 0755 "$T/whack"; } || fail "whack"
(umask 077 && echo "enc_b:$(skip_psk B enc_b)" >"$T/skip_b.client") || fail "SKIP client PSK"
BPORT=$(free_port) || fail "no free port"
mkdir -p "$T/gw_r" || fail "mkdir"
printf '%s\n' "[bridge]" "name = bridge-r" "role = responder" "log_file = $T/bridge_r.log" \
  "[kme]" "api = skip" "url = $(skip_url B)" "psk_identity = enc_b" "psk_file = $T/skip_b.client" \
  "peer_sae_id = KME_A" "timeout = 3s" \
  "[peer]" "listen = 127.0.0.1:$BPORT" "auth = cert" "ca = $P/ca.crt" "cert = $P/bridge-r.crt" \
  "key = $P/bridge-r.key" "peer_name = bridge-a" \
  "[rotation]" "interval = 0" \
  "[gateway]" "driver = libreswan" \
  "[libreswan]" "secrets_file = $T/gw_r/ppk.secrets" "whack = $T/whack" \
  "ctlsocket = $T/gw_r/pluto.ctl" "connection = qkd" "local_id = @r.example" \
  "remote_id = @i.example" >"$T/bridge_r.conf" || fail "bridge_r.conf"
"$BRIDGE" check-config -c "$T/bridge_r.conf" >/dev/null || fail "bridge config"
bridge_start r

# call LISTENER MARK [KME] -> the HTTP status of one request with MARK's certificate carrying
# the CN that LISTENER expects (000: no HTTP answer).
call() {
  local lst=$1 d=$T/rc/$2 kme=${3:-A} cn slave url args=()
  case $lst in
    etsi014) cn=SAE_A1 slave=SAE_B1
      [ "$kme" = B ] && cn=SAE_B1 slave=SAE_A1
      url=$(etsi_url "$kme")/api/v1/keys/$slave/status ;;
    skip) cn=skip_a; url=$(skip_url A)/capabilities ;;
    peer) cn=KME_B
      [ "$kme" = B ] && cn=KME_A
      url=https://127.0.0.1:${PEERPORT[$kme]}/peer/v1/health ;;
    device) cn=qkd-sim
      url=$(device_url "$kme")/device/v1/links/$LINK/telemetry
      args=(-X POST -H 'Content-Type: application/json' --data '{"state":"up"}') ;;
    bridge) cn=bridge-a; url=https://127.0.0.1:$BPORT/bridge/v1/offer
      args=(-X POST -H 'Content-Type: application/json' --data '{}') ;;
  esac
  curl -s -o "$T/call.body" -w '%{http_code}' --max-time 10 --cacert "$P/ca.crt" \
    --cert "$d/$cn.crt" --key "$d/$cn.key" "${args[@]}" "$url"
}
refused_status() { case $1 in etsi014) echo 401 ;; *) echo 403 ;; esac; }
listener_role() { case $1 in etsi014 | skip) echo sae ;; peer) echo kme ;; *) echo "$1" ;; esac; }

# ---- 3: every pair of roles -------------------------------------------------------------------
pairs=0
for lst in etsi014 skip peer device bridge; do
  for mark in sae kme device bridge; do
    st=$(call "$lst" "$mark")
    if [ "$(listener_role "$lst")" = "$mark" ]; then
      case $st in 2??) ;; 400) [ "$lst" = bridge ] || fail "$mark certificate at $lst: $st" ;;
        *) cat "$T/call.body"; fail "$mark certificate refused by its own listener $lst: $st" ;; esac
    else
      [ "$st" = "$(refused_status "$lst")" ] || { cat "$T/call.body"; fail "$mark certificate at the $lst listener: HTTP $st, want $(refused_status "$lst")"; }
      grep -q "another role\|peer not allowed" "$T/call.body" || { cat "$T/call.body"; fail "$mark at $lst: no reason"; }
    fi
    pairs=$((pairs + 1))
  done
done
grep -q "refused peer 'bridge-a': the certificate is marked for another role" "$T/bridge_r.log" ||
  fail "the bridge responder did not log the role refusal"
ok "every pair ($pairs): a certificate of role X is accepted only by the listener of role X"

# Unmarked: accepted where role_marker is optional (etsi014, skip, bridge), refused at the peer
# and device listeners (required by default) and at KME_B's etsi014 (role_marker = required).
for lst in etsi014 skip bridge; do
  st=$(call "$lst" none)
  case $st in 2?? | 400) ;; *) cat "$T/call.body"; fail "unmarked certificate at $lst: $st" ;; esac
done
for lst in peer device; do
  st=$(call "$lst" none)
  { [ "$st" = 403 ] && grep -q "no role marker" "$T/call.body"; } || { cat "$T/call.body"; fail "unmarked certificate at $lst: $st"; }
done
st=$(call etsi014 none B)
{ [ "$st" = 401 ] && grep -q "no role marker" "$T/call.body"; } || { cat "$T/call.body"; fail "unmarked at KME_B's etsi014 (required): $st"; }
st=$(call etsi014 sae B)
[ "$st" = 200 ] || { cat "$T/call.body"; fail "sae certificate at KME_B's etsi014 (required): $st"; }
# KME_B's peer and device listeners say role_marker = optional: unmarked passes, another role not.
for lst in peer device; do
  st=$(call "$lst" none B)
  case $st in 2??) ;; *) cat "$T/call.body"; fail "unmarked certificate at KME_B's $lst (optional): $st" ;; esac
  st=$(call "$lst" sae B)
  [ "$st" = 403 ] || { cat "$T/call.body"; fail "sae certificate at KME_B's $lst (optional): $st"; }
done
ok "unmarked: accepted by etsi014, skip, bridge (optional), refused by peer, device and a required etsi014; role_marker = optional at KME_B's peer and device lets it through, never another role"

for mark in two word; do
  for lst in etsi014 skip peer device bridge; do
    st=$(call "$lst" "$mark")
    [ "$st" = "$(refused_status "$lst")" ] || { cat "$T/call.body"; fail "$mark marker at $lst: $st"; }
  done
done
ok "a certificate marked for two roles, or for an unknown one, is refused by every listener"

# ---- 4: the original attack: an SAE certificate named like the device -------------------------
head -c 4096 /dev/zero >"$T/zero.blk"
for s in A B; do
  st=$(curl -s -o "$T/call.body" -w '%{http_code}' --max-time 10 --cacert "$P/ca.crt" \
    --cert "$T/rc/sae/qkd-sim.crt" --key "$T/rc/sae/qkd-sim.key" -X PUT \
    -H 'Content-Type: application/octet-stream' --data-binary "@$T/zero.blk" \
    "$(device_url $s)/device/v1/links/$LINK/blocks/7")
  [ "$st" = 403 ] || { cat "$T/call.body"; fail "KME_$s took a block from an SAE certificate named qkd-sim: $st"; }
  [ "$(admin_metric $s qkd_pool_bytes "link=\"$LINK\"")" = 0 ] || fail "KME_$s pool is not empty"
done
out=$(sae_curl SAE_A1 A /api/v1/keys/SAE_B1/enc_keys)
[[ $out == *"HTTP 503"* ]] || fail "enc_keys after the refused PUT: $out"
pair_feed --blocks 2 --block-bytes 4096 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
{ wait_pool A 256 && wait_pool B 256; } || fail "the device's blocks did not arrive"
out=$(sae_curl SAE_A1 A /api/v1/keys/SAE_B1/enc_keys)
[[ $out == *"HTTP 200"* ]] || fail "enc_keys after the device fed: $out"
k=$(printf '%s' "$out" | sed -n 's/.*"key" *: *"\([^"]*\)".*/\1/p')
[ -n "$k" ] || fail "no key in $out"
[ "$(printf '%s' "$k" | base64 -d | od -An -tx1 | tr -d ' \n' | tr -d 0)" != "" ] || fail "an all-zero key"
ok "an SAE certificate with CN qkd-sim PUTs an all-zero block: 403 at both KMEs, pools empty, enc_keys 503; the device's keys are served"

bridge_stop r
pair_stop A
pair_stop B
echo "roles: all checks passed"

#!/usr/bin/env bash
# skip_tls_matrix.sh - the TLS modes of the SKIP listener against two qkd-kmed, with openssl
# s_client and curl: TLS 1.3 PSK with TLS_AES_256_GCM_SHA384 (session file from psk-session),
# a SHA-256-bound PSK getting TLS_AES_128_GCM_SHA256, the four TLS 1.2 PSK suites, wrong
# identity / wrong PSK / no credentials refused, per-client authorization by PSK identity, a
# SKIP round trip over PSKs, certificates on TLS 1.3 and 1.2 (ECDHE-ECDSA-AES256-GCM-SHA384), and
# the server-cert and mtls modes; [listener skip] psk_hash = auto (SHA-256 and SHA-384 PSK
# bindings on one listener, as the lab runs it) and the qkd client's --psk-hash auto fallback.
set -u
. "$(dirname "$0")/../lib/etsi_pair.sh"
PSKSESS=$BUILD/tests/psk-session
QKD=$BUILD/bin/qkd
qk_need_bin "$PSKSESS" "$QKD"
qk_need_cmd jq

pair_init
pair_skip_conf A psk
pair_skip_conf B psk-or-mtls "default_client_remote_systems = KME_A"
pair_start A
pair_start B
pair_feed --blocks 2 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A 500000 || fail "pool of KME_A did not fill"
wait_pool B 500000 || fail "pool of KME_B did not fill"

"$PSKSESS" "$(skip_psk A enc_a)" "$T/enc_a.pem" >/dev/null &&
  "$PSKSESS" "$(skip_psk B enc_b)" "$T/enc_b.pem" >/dev/null &&
  "$PSKSESS" "$(openssl rand -hex 32)" "$T/wrong.pem" >/dev/null || fail "psk-session"

# sc KME PATH s_client-args... : one request (Connection: close); prints s_client's output.
sc() {
  local kme=$1 path=$2; shift 2
  printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" |
    timeout 15 openssl s_client -connect "127.0.0.1:${PORT[$kme.skip]}" -ign_eof "$@" 2>&1
}
status_of() { printf '%s\n' "$1" | grep -m1 -o '^HTTP/1.1 [0-9]*' | cut -d' ' -f2; }
cipher_of() { printf '%s\n' "$1" | grep -m1 -o 'Cipher is [A-Z0-9_-]*' | cut -d' ' -f3; }
body_of() { printf '%s\n' "$1" | grep -m1 -o '^{.*}'; }
expect_tls() { # OUTPUT STATUS CIPHER DESCRIPTION
  local st ci
  st=$(status_of "$1"); ci=$(cipher_of "$1")
  [ "$st" = "$2" ] && [ "$ci" = "$3" ] || fail "$4: status '$st' cipher '$ci' (want $2 $3): $(printf '%s' "$1" | tail -n 5)"
}
# alive A|B WHAT: after a refusal, the KME still runs and its skip listener answers a valid
# request (200), so that a daemon that crashed on the refusal cannot pass the refusal check.
# A's listener is psk only (TLS 1.3 PSK, enc_a); B's accepts skip_b's certificate in every mode
# this test gives it (psk-or-mtls, server-cert, mtls).
alive() {
  local kme=$1 what=$2 out st
  kill -0 "${PID[$kme]}" 2>/dev/null || fail "after $what: KME_$kme has exited"
  if [ "$kme" = A ]; then
    out=$(sc A /capabilities "${T13[@]}" -psk_identity enc_a -psk_session "$T/enc_a.pem")
    st=$(status_of "$out")
  else
    out=$(skip_curl skip_b B /capabilities)
    st=$(printf '%s' "$out" | tail -n 1 | sed 's/^HTTP //')
  fi
  [ "$st" = 200 ] || fail "after $what: KME_$kme does not answer a valid request (status '$st'): $(printf '%s' "$out" | tail -n 3)"
}
expect_refused() { # KME OUTPUT DESCRIPTION
  printf '%s\n' "$2" | grep -q '^HTTP/1.1' && fail "$3: the request reached HTTP"
  alive "$1" "$3"
}
T13=(-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384)

# --- TLS 1.3 PSK, the draft's REQUIRED mode, and a SKIP round trip over PSKs
out=$(sc A /capabilities "${T13[@]}" -psk_identity enc_a -psk_session "$T/enc_a.pem")
expect_tls "$out" 200 TLS_AES_256_GCM_SHA384 "TLS 1.3 PSK at A"
[ "$(body_of "$out" | jq -r .localSystemID)" = KME_A ] || fail "capabilities over PSK: $(body_of "$out")"
ok "TLS 1.3 PSK (identity enc_a, SHA-384 session): TLS_AES_256_GCM_SHA384, 200"
out=$(sc A "/key?remoteSystemID=KME_B" "${T13[@]}" -psk_identity enc_a -psk_session "$T/enc_a.pem")
expect_tls "$out" 200 TLS_AES_256_GCM_SHA384 "key over TLS 1.3 PSK"
KID=$(body_of "$out" | jq -r .keyId); KEY=$(body_of "$out" | jq -r .key)
out=$(sc B "/key/$KID?remoteSystemID=KME_A" "${T13[@]}" -psk_identity enc_b -psk_session "$T/enc_b.pem")
expect_tls "$out" 200 TLS_AES_256_GCM_SHA384 "fetch over TLS 1.3 PSK at B"
[ "$(body_of "$out" | jq -r .key)" = "$KEY" ] || fail "PSK round trip: other bytes"
ok "SKIP round trip over TLS 1.3 PSKs (enc_a at KME_A, enc_b at KME_B): same key"

# --- a PSK bound to SHA-256 (openssl -psk binds SHA-256)
out=$(sc A /capabilities -tls1_3 -psk_identity enc_a256 -psk "$(skip_psk A enc_a256)")
expect_tls "$out" 200 TLS_AES_128_GCM_SHA256 "SHA-256 PSK"
out=$(sc A /capabilities -tls1_3 -psk_identity enc_a -psk "$(skip_psk A enc_a)")
expect_refused A "$out" "a SHA-384 PSK offered with a SHA-256 binding"
ok "a PSK configured for SHA-256 gets TLS_AES_128_GCM_SHA256; a SHA-384 one is not accepted with SHA-256"

# --- TLS 1.2 PSK suites
for c in DHE-PSK-AES256-CBC-SHA384 DHE-PSK-AES256-CBC-SHA PSK-AES256-GCM-SHA384 DHE-PSK-AES256-GCM-SHA384; do
  out=$(sc A /capabilities -tls1_2 -cipher "$c" -psk_identity enc_a -psk "$(skip_psk A enc_a)")
  expect_tls "$out" 200 "$c" "TLS 1.2 $c"
done
ok "TLS 1.2 PSK: DHE-PSK-AES256-CBC-SHA384, DHE-PSK-AES256-CBC-SHA, PSK-AES256-GCM-SHA384, DHE-PSK-AES256-GCM-SHA384"

# --- refusals at the handshake
out=$(sc A /capabilities "${T13[@]}" -psk_identity nobody -psk_session "$T/enc_a.pem")
expect_refused A "$out" "TLS 1.3 unknown identity"
out=$(sc A /capabilities "${T13[@]}" -psk_identity enc_a -psk_session "$T/wrong.pem")
expect_refused A "$out" "TLS 1.3 wrong PSK"
out=$(sc A /capabilities -tls1_2 -cipher PSK-AES256-GCM-SHA384 -psk_identity nobody -psk "$(skip_psk A enc_a)")
expect_refused A "$out" "TLS 1.2 unknown identity"
out=$(sc A /capabilities -tls1_2 -cipher PSK-AES256-GCM-SHA384 -psk_identity enc_a -psk "$(openssl rand -hex 32)")
expect_refused A "$out" "TLS 1.2 wrong PSK"
out=$(sc A /capabilities -tls1_3)
expect_refused A "$out" "TLS 1.3 without PSK or certificate (PSK-only listener)"
out=$(sc A /capabilities -tls1_3 -cert "$(crt skip_a)" -key "$(key skip_a)")
expect_refused A "$out" "a certificate on the PSK-only listener"
ok "refused at the handshake: unknown identity, wrong PSK (1.2, 1.3), no credentials, certificate on a PSK-only listener"

# --- authorization by PSK identity (globs in [skip_client])
"$PSKSESS" "$(skip_psk A enc_a_ltd)" "$T/ltd.pem" >/dev/null || fail "psk-session"
out=$(sc A "/key?remoteSystemID=KME_B" "${T13[@]}" -psk_identity enc_a_ltd -psk_session "$T/ltd.pem")
expect_tls "$out" 403 TLS_AES_256_GCM_SHA384 "enc_a_ltd (remote_systems = KME_Q) asking for KME_B"
alive A "a 403 for enc_a_ltd"
out=$(sc A "/key?remoteSystemID=KME_B&size=128" -tls1_3 -psk_identity enc_a256 -psk "$(skip_psk A enc_a256)")
expect_tls "$out" 200 TLS_AES_128_GCM_SHA256 "enc_a256 (remote_systems = KME_[AB]) asking for KME_B"
ok "per-client rules by PSK identity: KME_Q-only client gets 403 for KME_B; glob KME_[AB] allows it"

# --- [listener skip] psk_hash = auto (the lab's default): a PSK line that names no hash is
# accepted bound to SHA-256 (stock `openssl s_client -psk`) or SHA-384, told apart by the length
# of the client's binder (RFC 8446 section 4.2.11); SHA-384 stays preferred; TLS 1.2 unchanged.
set_psk_hash() { # A's [listener skip] psk_hash, then restart A
  pair_stop A
  sed -i '/^psk_hash = /d' "$T/kme_A.conf"
  sed -i "s|^psk_file = $T/skip_A.psk\$|&\npsk_hash = $1|" "$T/kme_A.conf"
  grep -q "^psk_hash = $1\$" "$T/kme_A.conf" || fail "psk_hash = $1 not written"
  pair_start A
}
set_psk_hash auto
out=$(sc A /capabilities -tls1_3 -psk_identity enc_a -psk "$(skip_psk A enc_a)")
expect_tls "$out" 200 TLS_AES_128_GCM_SHA256 "auto: openssl -psk (SHA-256 binder)"
out=$(sc A "/key?remoteSystemID=KME_B" -tls1_3 -psk_identity enc_a -psk "$(skip_psk A enc_a)")
expect_tls "$out" 200 TLS_AES_128_GCM_SHA256 "auto: a key over a SHA-256-bound PSK"
out=$(sc A /capabilities "${T13[@]}" -psk_identity enc_a -psk_session "$T/enc_a.pem")
expect_tls "$out" 200 TLS_AES_256_GCM_SHA384 "auto: SHA-384 session"
out=$(sc A /capabilities -tls1_3 -psk_identity enc_a -psk_session "$T/enc_a.pem")
expect_tls "$out" 200 TLS_AES_256_GCM_SHA384 "auto: SHA-384 session, client offering every suite"
# The choice is counted too (A restarted in auto mode: its counters began at 0 here).
h256=$(admin_metric A qkd_tls_psk13_handshakes_total 'listener="skip",hash="sha256"')
h384=$(admin_metric A qkd_tls_psk13_handshakes_total 'listener="skip",hash="sha384"')
[ "$h256" -ge 2 ] && [ "$h384" -ge 2 ] ||
  fail "auto: qkd_tls_psk13_handshakes_total sha256 $h256, sha384 $h384 (want at least 2 each)"
for c in DHE-PSK-AES256-CBC-SHA384 PSK-AES256-GCM-SHA384; do
  out=$(sc A /capabilities -tls1_2 -cipher "$c" -psk_identity enc_a -psk "$(skip_psk A enc_a)")
  expect_tls "$out" 200 "$c" "auto: TLS 1.2 $c"
done
out=$(sc A /capabilities -tls1_3 -psk_identity enc_a -psk "$(openssl rand -hex 32)")
expect_refused A "$out" "auto: a wrong PSK bound to SHA-256"
"$PSKSESS" "$(skip_psk A enc_a256)" "$T/a256_384.pem" >/dev/null || fail "psk-session"
out=$(sc A /capabilities "${T13[@]}" -psk_identity enc_a256 -psk_session "$T/a256_384.pem")
expect_refused A "$out" "auto: a line's own :sha256 still refuses a SHA-384 binding"
grep -q 'listener=skip .*psk identity=enc_a hash=sha256 (auto) cipher=TLS_AES_128_GCM_SHA256' "$T/kme_A.log" &&
  grep -q 'listener=skip .*psk identity=enc_a hash=sha384 (auto) cipher=TLS_AES_256_GCM_SHA384' "$T/kme_A.log" ||
  fail "auto: the handshakes' hash is not logged"
ok "psk_hash = auto: SHA-256 (openssl -psk) and SHA-384 bindings on one listener, SHA-384 preferred, TLS 1.2 PSK, wrong PSK and a line's own hash refused, choice logged and counted"

# --- the qkd client's --psk-hash auto against a listener in psk_hash = sha256
set_psk_hash sha256
qcaps() { "$QKD" skip caps --url "$(skip_url A)" --psk-identity enc_a --psk-hex "$(skip_psk A enc_a)" "$@"; }
rc=0; qcaps --psk-hash sha384 >"$T/q.out" 2>"$T/q.err" || rc=$?
[ "$rc" = 3 ] || fail "--psk-hash sha384 against a sha256 listener: exit $rc, not 3: $(cat "$T/q.err")"
qcaps --psk-hash auto >"$T/q.out" 2>"$T/q.err" || fail "--psk-hash auto: $(cat "$T/q.err")"
grep -q '"localSystemID": *"KME_A"\|KME_A' "$T/q.out" || fail "--psk-hash auto: no capabilities: $(cat "$T/q.out")"
grep -q 'warning: the server refused the PSK bound to SHA-384; retrying bound to SHA-256' "$T/q.err" ||
  fail "--psk-hash auto: no warning on the fallback: $(cat "$T/q.err")"
qcaps --psk-hash sha256 >"$T/q.out" 2>"$T/q.err" || fail "--psk-hash sha256: $(cat "$T/q.err")"
[ ! -s "$T/q.err" ] || fail "--psk-hash sha256: unexpected stderr: $(cat "$T/q.err")"
set_psk_hash sha384
qcaps --psk-hash auto >"$T/q.out" 2>"$T/q.err" || fail "--psk-hash auto (sha384 listener): $(cat "$T/q.err")"
[ ! -s "$T/q.err" ] || fail "--psk-hash auto against SHA-384: warned without a fallback: $(cat "$T/q.err")"
ok "qkd --psk-hash auto: falls back to SHA-256 with a warning (sha256 listener), none needed at a sha384 one; sha384 alone refused (exit 3)"
set_psk_hash auto

# --- certificates at B (psk-or-mtls): TLS 1.3 and the draft's TLS 1.2 ECDHE-ECDSA suite
out=$(skip_curl skip_b B "/key?remoteSystemID=KME_A" --tlsv1.3)
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] || fail "TLS 1.3 certificate client: $out"
out=$(skip_curl skip_b B /capabilities --tls-max 1.2 --ciphers ECDHE-ECDSA-AES256-GCM-SHA384)
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] || fail "TLS 1.2 certificate client: $out"
out=$(sc B /capabilities -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384 -cert "$(crt skip_b)" -key "$(key skip_b)")
expect_tls "$out" 200 ECDHE-ECDSA-AES256-GCM-SHA384 "TLS 1.2 ECDHE-ECDSA with a client certificate"
out=$(sc B /capabilities "${T13[@]}" -psk_identity enc_b -psk_session "$T/enc_b.pem")
expect_tls "$out" 200 TLS_AES_256_GCM_SHA384 "PSK on the psk-or-mtls listener"
out=$(sc B /capabilities -tls1_3)
expect_refused B "$out" "no credentials on the psk-or-mtls listener"
ok "psk-or-mtls: certificates (TLS 1.3, TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384) and PSKs; no credentials refused"

# --- server-cert mode: anonymous clients get [skip] default_client_remote_systems
pair_stop B
sed -i 's/^mode = psk-or-mtls$/mode = server-cert/' "$T/kme_B.conf"
pair_start B
out=$(curl -s --max-time 10 --cacert "$T/pki/ca.crt" -w '\nHTTP %{http_code}\n' "$(skip_url B)/key?remoteSystemID=KME_A&size=128")
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] || fail "server-cert: anonymous client: $out"
KID=$(printf '%s' "$out" | sed '$d' | jq -r .keyId); KEY=$(printf '%s' "$out" | sed '$d' | jq -r .key)
out=$(sc A "/key/$KID?remoteSystemID=KME_B" "${T13[@]}" -psk_identity enc_a -psk_session "$T/enc_a.pem")
expect_tls "$out" 200 TLS_AES_256_GCM_SHA384 "fetch at A of the key from the server-cert listener"
[ "$(body_of "$out" | jq -r .key)" = "$KEY" ] || fail "server-cert round trip: other bytes"
grep -q 'listener=skip method=GET path=/key status=200' "$T/kme_B.log" ||
  fail "server-cert: the request was not logged as anonymous"
ok "server-cert mode: anonymous client served by default_client_remote_systems; round trip to a PSK client"

# --- mtls mode
pair_stop B
sed -i 's/^mode = server-cert$/mode = mtls/' "$T/kme_B.conf"
pair_start B
out=$(skip_curl skip_b B /capabilities)
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 200" ] || fail "mtls: certificate client: $out"
out=$(curl -s --max-time 10 --cacert "$T/pki/ca.crt" -w '\nHTTP %{http_code}\n' "$(skip_url B)/capabilities")
[ "$(printf '%s' "$out" | tail -n 1)" = "HTTP 000" ] || fail "mtls: client without certificate got $out"
alive B "mtls: a client without certificate refused"
out=$(sc B /capabilities "${T13[@]}" -psk_identity enc_b -psk_session "$T/enc_b.pem")
expect_refused B "$out" "PSK on an mtls listener"
ok "mtls mode: certificate required; no certificate and PSK refused"
echo "PASS"

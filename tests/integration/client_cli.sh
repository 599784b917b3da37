#!/usr/bin/env bash
# client_cli.sh - the `qkd` CLI and libqkdclient against two real qkd-kmed: etsi status/enc/dec
# (GET and POST forms, --json parsed with jq, hex/base64 encodings, key bytes equal at both
# ends), exit codes (2 usage, 3 TLS with a foreign CA on either side, 4 connect, 5 HTTP with the
# server's message), --lab manifests, the docs/examples/etsi_fetch.c example (compiled here so
# that it cannot rot), a hostile TLS server (tls-test-server), and the SKIP commands against the
# skip listeners (psk-or-mtls) of both KMEs, and the hints after a PSK/certificate mismatch
# (PSK-only and mTLS-only test listeners). Every part always runs: nothing here is optional.
set -u
. "$(dirname "$0")/../lib/etsi_pair.sh"
QKD=$BUILD/bin/qkd
HS=$BUILD/tests/tls-test-server
qk_need_bin "$QKD" "$HS"
qk_need_cmd jq cc pkg-config

pair_init
pair_skip_conf A psk-or-mtls
pair_skip_conf B psk-or-mtls
for s in A B; do
  "$KMED" --check-config "$T/kme_$s.conf" >"$T/check.out" 2>&1 ||
    fail "qkd-kmed refuses the skip listener of KME_$s: $(cat "$T/check.out")"
done
pair_start A
pair_start B
[ -n "${PORT[A.skip]:-}" ] && [ -n "${PORT[B.skip]:-}" ] || fail "a KME reports no skip port: $(cat "$T/ports_A" "$T/ports_B")"
pair_feed --blocks 4 --block-bytes 65536 --quiet >"$T/feed.out" 2>&1 || { cat "$T/feed.out"; fail "feeder"; }
wait_pool A 100000 || fail "pool of KME_A did not fill"
wait_pool B 100000 || fail "pool of KME_B did not fill"
ok "pools filled"

P=$T/pki
# qkd_as SAE A|B ARGS... : run qkd with SAE's credentials against KME A or B; sets OUT, ERR, RC.
qkd_as() {
  local sae=$1 kme=$2; shift 2
  OUT=$("$QKD" "$@" --url "$(etsi_url "$kme")" --ca "$P/ca.crt" --cert "$(crt "$sae")" \
    --key "$(key "$sae")" 2>"$T/err")
  RC=$?
  ERR=$(cat "$T/err")
}
expect_rc() { # CODE WHAT
  [ "$RC" = "$1" ] || fail "$2: exit $RC, expected $1; stdout: $OUT; stderr: $ERR"
}

# --- usage errors (exit 2) and help
"$QKD" >/dev/null 2>&1; [ $? = 2 ] || fail "qkd without arguments: not exit 2"
"$QKD" etsi frob X --url https://x --ca /dev/null >/dev/null 2>&1; [ $? = 2 ] || fail "unknown etsi command: not exit 2"
"$QKD" conform etsi 2>"$T/err" >/dev/null; [ $? = 2 ] && grep -q "no master side" "$T/err" || fail "qkd conform without sides is not a usage error"
"$QKD" etsi enc SAE_B1 --number 0 --url https://127.0.0.1:1 --ca "$P/ca.crt" 2>/dev/null; [ $? = 2 ] || fail "--number 0: not exit 2"
"$QKD" etsi status SAE_B1 --url https://127.0.0.1:1 2>/dev/null; [ $? = 2 ] || fail "no --ca and no PSK: not exit 2"
for h in "--help" "etsi --help" "etsi enc --help" "skip --help" "skip key --help"; do
  # shellcheck disable=SC2086
  "$QKD" $h >"$T/help" 2>&1 || fail "qkd $h: exit $?"
  grep -q "Exit status" "$T/help" || fail "qkd $h does not document the exit codes"
done
"$QKD" etsi status SAE_B1 --url https://127.0.0.1:1 --ca "$T/nonexistent.crt" 2>"$T/err" >/dev/null; RC=$?
[ $RC = 2 ] && grep -q "cannot read" "$T/err" || fail "unreadable --ca: exit $RC"
ok "usage errors exit 2; --help documents exit codes"

# --- status
qkd_as SAE_A1 A etsi status SAE_B1 --json
expect_rc 0 "etsi status --json"
[ "$(printf '%s' "$OUT" | jq -r '[.source_KME_ID,.target_KME_ID,.master_SAE_ID,.slave_SAE_ID,.key_size,.max_key_per_request]|join(" ")')" = \
  "KME_A KME_B SAE_A1 SAE_B1 256 128" ] || fail "status JSON: $OUT"
for f in stored_key_count max_key_count max_key_size min_key_size max_SAE_ID_count; do
  printf '%s' "$OUT" | jq -e ".$f|type==\"number\"" >/dev/null || fail "status JSON lacks $f: $OUT"
done
qkd_as SAE_A1 A etsi status SAE_B1
expect_rc 0 "etsi status (human)"
printf '%s\n' "$OUT" | grep -Eq '^target_KME_ID +KME_B$' || fail "human status: $OUT"
ok "etsi status: all fields, human and JSON"

# --- enc at A (GET form), dec at B (GET form): same bytes
qkd_as SAE_A1 A etsi enc SAE_B1 --json
expect_rc 0 "etsi enc"
ID1=$(printf '%s' "$OUT" | jq -r '.keys[0].key_ID')
K1=$(printf '%s' "$OUT" | jq -r '.keys[0].key')
[ "$(printf '%s' "$OUT" | jq -r .encoding)" = base64 ] || fail "default ETSI encoding is not base64"
[ "$(printf '%s' "$K1" | base64 -d | wc -c)" = 32 ] || fail "enc key is not 32 bytes: $OUT"
qkd_as SAE_B1 B etsi dec SAE_A1 "$ID1" --json
expect_rc 0 "etsi dec"
[ "$(printf '%s' "$OUT" | jq -r '.keys[0].key_ID')" = "$ID1" ] || fail "dec key_ID: $OUT"
[ "$(printf '%s' "$OUT" | jq -r '.keys[0].key')" = "$K1" ] || fail "dec returned other bytes"
ok "enc at A, dec at B by ID: bytes equal"

# --- POST forms, several keys, hex encoding, human output
qkd_as SAE_A1 A etsi enc SAE_B1 --number 3 --size 512 --post --encoding hex \
  --ext-optional '[{"abc_x":1}]'
expect_rc 0 "etsi enc POST"
[ "$(printf '%s\n' "$OUT" | wc -l)" = 3 ] || fail "enc POST: not three lines: $OUT"
printf '%s\n' "$OUT" | grep -Eqv '^[0-9a-f-]{36} [0-9a-f]{128}$' && fail "enc hex lines: $OUT"
mapfile -t IDS < <(printf '%s\n' "$OUT" | cut -d' ' -f1)
ENC_HEX=$(printf '%s\n' "$OUT" | sort)
qkd_as SAE_B1 B etsi dec SAE_A1 "${IDS[@]}" --encoding hex
expect_rc 0 "etsi dec POST with three IDs"
[ "$(printf '%s\n' "$OUT" | sort)" = "$ENC_HEX" ] || fail "dec POST differs: $OUT vs $ENC_HEX"
ok "enc POST (number, size, extension_optional) and dec POST with three IDs, hex"

# --- HTTP errors: exit 5 with the server's message
qkd_as SAE_B1 B etsi dec SAE_A1 "$ID1"
expect_rc 5 "second dec of a key"
printf '%s' "$ERR" | grep -q "one or more keys specified are not found on KME" || fail "no server message: $ERR"
qkd_as SAE_A1 A etsi enc SAE_B1 --size 12 --json
expect_rc 5 "size not a multiple of 8"
[ "$(printf '%s' "$OUT" | jq -r .error.http_status)" = 400 ] || fail "JSON error lacks http_status: $OUT"
[ "$(printf '%s' "$OUT" | jq -r .error.server_message)" = "size shall be a multiple of 8" ] || fail "JSON error message: $OUT"
[ "$(printf '%s' "$OUT" | jq -r .error.class)" = http ] || fail "JSON error class: $OUT"
qkd_as SAE_A1 A etsi enc SAE_B1 --ext-mandatory '[{"abc_route":"direct"}]'
expect_rc 5 "extension_mandatory"
printf '%s' "$ERR" | grep -q "not all extension_mandatory parameters are supported" || fail "ext message: $ERR"
qkd_as SAE_A1 A etsi enc SAE_B1 --ext-mandatory '{"not":"an array"}'
expect_rc 2 "extension_mandatory that is not an array"
qkd_as SAE_A1 A etsi enc SAE_B1 --get --additional SAE_B2
expect_rc 2 "GET with additional IDs"
ok "HTTP errors exit 5 with the server's message (stderr and --json)"

# --- TLS failures: exit 3 (client certificate from another CA; server from another CA)
O=$T/other
pki_ca "$O" ca >/dev/null && pki_client "$O" ca SAE_A1 >/dev/null || fail "other PKI"
OUT=$("$QKD" etsi status SAE_B1 --url "$(etsi_url A)" --ca "$P/ca.crt" --cert "$O/SAE_A1.crt" \
  --key "$O/SAE_A1.key" 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
expect_rc 3 "client certificate from another CA"
OUT=$("$QKD" etsi status SAE_B1 --url "$(etsi_url A)" --ca "$O/ca.crt" --cert "$(crt SAE_A1)" \
  --key "$(key SAE_A1)" 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
expect_rc 3 "server certificate from another CA"
OUT=$("$QKD" etsi status SAE_B1 --url "$(etsi_url A)" --ca "$P/ca.crt" --cert "$(crt SAE_A1)" \
  --key "$(key SAE_A1)" --tls-min 1.3 --tls-max 1.2 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
expect_rc 2 "--tls-min above --tls-max"
ok "TLS failures exit 3"

# --- connect failure: exit 4
DEAD=$(free_port) || fail "no free port"
OUT=$("$QKD" etsi status SAE_B1 --url "https://127.0.0.1:$DEAD" --ca "$P/ca.crt" --cert "$(crt SAE_A1)" \
  --key "$(key SAE_A1)" --timeout 2 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
expect_rc 4 "connection refused"
ok "connect failure exits 4"

# --- --lab manifest
cat >"$T/lab.json" <<EOF
{"ca_cert": "$P/ca.crt",
 "kmes": [
  {"id": "KME_A", "etsi014_url": "$(etsi_url A)", "admin_url": "$(admin_url A)",
   "saes": [{"id": "SAE_A1", "cert": "$(crt SAE_A1)", "key": "$(key SAE_A1)"}],
   "skip_clients": [{"identity": "enc-a", "psk_hex": "00112233445566778899aabbccddeeff"}]},
  {"id": "KME_B", "etsi014_url": "$(etsi_url B)",
   "saes": [{"id": "SAE_B1", "cert": "$(crt SAE_B1)", "key": "$(key SAE_B1)"}]}],
 "links": [{"id": "KME_A~KME_B", "kmes": ["KME_A", "KME_B"]}],
 "sim_url": null}
EOF
OUT=$("$QKD" etsi enc SAE_B1 --lab "$T" --kme KME_A --sae SAE_A1 --json 2>"$T/err") || fail "enc --lab: $(cat "$T/err")"
ID2=$(printf '%s' "$OUT" | jq -r '.keys[0].key_ID'); K2=$(printf '%s' "$OUT" | jq -r '.keys[0].key')
OUT=$("$QKD" etsi dec SAE_A1 "$ID2" --lab "$T" --kme KME_B --sae SAE_B1 --json 2>"$T/err") || fail "dec --lab: $(cat "$T/err")"
[ "$(printf '%s' "$OUT" | jq -r '.keys[0].key')" = "$K2" ] || fail "--lab dec returned other bytes"
"$QKD" etsi status SAE_B1 --lab "$T" --kme KME_A --sae SAE_NOPE >/dev/null 2>&1; [ $? = 2 ] || fail "unknown --sae: not exit 2"
"$QKD" etsi status SAE_B1 --lab "$T" --kme KME_Z --sae SAE_A1 >/dev/null 2>&1; [ $? = 2 ] || fail "unknown --kme: not exit 2"
"$QKD" skip caps --lab "$T" --kme KME_A --skip-client enc-a >/dev/null 2>"$T/err"; RC=$?
[ $RC = 2 ] && grep -q "no SKIP URL" "$T/err" || fail "skip without skip_url: exit $RC $(cat "$T/err")"
ok "--lab DIR --kme --sae for enc and dec; lab errors exit 2"

# --- a hostile server (tls-test-server answers every path with its own JSON, /big/N with N
# bytes of 'x', /sleep/MS after a delay): malformed answers exit 6, a slow one 4, never a crash
"$HS" --mode server-cert --cert "$P/kme_a.crt" --key "$P/kme_a.key" --port-file "$T/hs.port" \
  2>"$T/hs.log" &
# shellcheck disable=SC2034,SC2154 # PID is etsi_pair.sh's associative array (stopped on exit)
PID[hostile]=$!
for _ in $(seq 100); do [ -s "$T/hs.port" ] && break; sleep 0.05; done
[ -s "$T/hs.port" ] || fail "tls-test-server did not start: $(cat "$T/hs.log")"
HURL=https://127.0.0.1:$(cat "$T/hs.port")
hostile() { # EXPECTED-EXIT BASE-PATH ARGS...
  local want=$1 base=$2; shift 2
  OUT=$("$QKD" "$@" --url "$HURL$base" --ca "$P/ca.crt" --timeout 2 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
  expect_rc "$want" "hostile server $base: qkd $*"
}
hostile 6 "" etsi status SAE_B1
hostile 6 "" etsi enc SAE_B1 --number 2
hostile 6 "" etsi dec SAE_A1 "$ID1"
hostile 6 "" skip caps
hostile 6 "" skip key KME_B
hostile 6 "" skip entropy --json
[ "$(printf '%s' "$OUT" | jq -r .error.class)" = malformed ] || fail "malformed JSON error: $OUT"
hostile 6 /big/100 etsi status SAE_B1
hostile 6 /big/9000000 etsi enc SAE_B1
hostile 6 /big/0 skip key-by-id abcd KME_A
hostile 4 /sleep/4000 etsi status SAE_B1
ok "hostile server: malformed answers exit 6, oversize 6, a stalled answer 4"

# --- the library example, compiled against the libraries of this build
EX=$T/etsi_fetch
SANF=; case $BUILD in *build-san*) SANF="-fsanitize=address,undefined" ;; esac
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 $SANF -I"$ROOT/client" -I"$ROOT/common" \
  $(pkg-config --cflags libcjson) -o "$EX" "$ROOT/docs/examples/etsi_fetch.c" \
  "$BUILD/lib/libqkdclient.a" "$BUILD/lib/libqkdcommon.a" \
  $(pkg-config --libs libcurl libsodium libcjson openssl) -pthread -lm 2>"$T/err" ||
  fail "docs/examples/etsi_fetch.c does not build: $(cat "$T/err")"
OUT=$("$EX" "$(etsi_url A)" "$P/ca.crt" "$(crt SAE_A1)" "$(key SAE_A1)" SAE_B1 2>"$T/err") || fail "etsi_fetch: $(cat "$T/err")"
ID3=$(printf '%s\n' "$OUT" | awk '$1 == "key_ID" {print $2}')
EXKEY=$(printf '%s\n' "$OUT" | awk '$1 == "key" {print $2}')
[ -n "$ID3" ] && [ ${#EXKEY} = 64 ] || fail "etsi_fetch output: $OUT"
qkd_as SAE_B1 B etsi dec SAE_A1 "$ID3" --encoding hex
expect_rc 0 "dec of the example's key"
[ "$OUT" = "$ID3 $EXKEY" ] || fail "the example's key differs at B: $OUT"
ok "docs/examples/etsi_fetch.c builds and fetches a key"

# --- SKIP (draft-cisco-skip-02) against the skip listeners of the two KMEs
# skip_as KME PSK-IDENTITY ARGS... : qkd with a PSK client of that KME; sets OUT, ERR, RC.
skip_as() {
  local kme=$1 id=$2; shift 2
  OUT=$("$QKD" "$@" --url "$(skip_url "$kme")" --psk-identity "$id" \
    --psk-hex "$(skip_psk "$kme" "$id")" 2>"$T/err")
  RC=$?
  ERR=$(cat "$T/err")
}
skip_as A enc_a skip caps --json
expect_rc 0 "skip caps (TLS 1.3 PSK, SHA-384)"
[ "$(printf '%s' "$OUT" | jq -r '.localSystemID')" = KME_A ] || fail "caps localSystemID: $OUT"
printf '%s' "$OUT" | jq -e '.key == true and (.entropy|type=="boolean") and (.remoteSystemID|length>=1) and (.algorithm|type=="string")' >/dev/null || fail "caps: $OUT"
skip_as A enc_a skip caps
expect_rc 0 "skip caps (human)"
printf '%s\n' "$OUT" | grep -Eq '^localSystemID +KME_A$' || fail "human caps: $OUT"
ok "skip caps, human and JSON"

skip_as A enc_a skip key KME_B --json
expect_rc 0 "skip key at A"
KID=$(printf '%s' "$OUT" | jq -r .keyId); SK=$(printf '%s' "$OUT" | jq -r .key)
[[ $KID =~ ^[0-9a-fA-F]{32}$ ]] && [ ${#SK} = 64 ] || fail "skip key: $OUT"
skip_as B enc_b skip key-by-id "$KID" KME_A --json
expect_rc 0 "skip key-by-id at B"
[ "$(printf '%s' "$OUT" | jq -r .key)" = "$SK" ] || fail "key-by-id at B returned other bytes"
skip_as B enc_b skip key-by-id "$KID" KME_A
expect_rc 5 "second key-by-id"
printf '%s' "$ERR" | grep -q "HTTP 400" || fail "second key-by-id: $ERR"
ok "skip key at A, key-by-id at B: same bytes; delivered once (exit 5)"

skip_as A enc_a skip key KME_B --size 128 --encoding base64
expect_rc 0 "skip key --size 128 base64"
[ "$(printf '%s' "$OUT" | cut -d' ' -f2 | base64 -d | wc -c)" = 16 ] || fail "128-bit key: $OUT"
skip_as A enc_a skip entropy --minentropy 128 --json
expect_rc 0 "skip entropy"
[ "$(printf '%s' "$OUT" | jq -r '.minentropy')" = 128 ] && [ "$(printf '%s' "$OUT" | jq -r '.randomStr|length')" = 32 ] || fail "entropy: $OUT"
skip_as A enc_a256 skip entropy --psk-sha256
expect_rc 0 "PSK bound to SHA-256"
[[ $OUT =~ ^[0-9a-f]{64}$ ]] || fail "default entropy: $OUT"
skip_as A enc_a skip caps --tls-max 1.2
expect_rc 0 "TLS 1.2 PSK"
ok "size, entropy, --psk-sha256, TLS 1.2 PSK"

skip_as A enc_a_ltd skip key KME_B --json
expect_rc 5 "client not allowed that remoteSystemID"
[ "$(printf '%s' "$OUT" | jq -r .error.http_status)" = 403 ] && [ -n "$(printf '%s' "$OUT" | jq -r .error.server_message)" ] || fail "403 with message: $OUT"
OUT=$("$QKD" skip caps --url "$(skip_url A)" --psk-identity enc_a --psk-hex "$(openssl rand -hex 32)" 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
expect_rc 3 "wrong PSK"
ok "403 exits 5 with the server's message; a wrong PSK exits 3"

(umask 077 && skip_psk A enc_a >"$T/enc_a.psk") || fail "psk file"
OUT=$("$QKD" skip caps --url "$(skip_url A)" --psk-identity enc_a --psk-file "$T/enc_a.psk" 2>"$T/err") || fail "--psk-file: $(cat "$T/err")"
chmod 644 "$T/enc_a.psk"
"$QKD" skip caps --url "$(skip_url A)" --psk-identity enc_a --psk-file "$T/enc_a.psk" >/dev/null 2>&1; [ $? = 2 ] || fail "world-readable --psk-file accepted"
OUT=$("$QKD" skip caps --url "$(skip_url A)" --ca "$P/ca.crt" --cert "$(crt skip_a)" --key "$(key skip_a)" 2>"$T/err") || fail "skip over mTLS: $(cat "$T/err")"
ok "--psk-file (mode 0600 required) and SKIP over mTLS"

mkdir -p "$T/lab2" || fail "mkdir"
cat >"$T/lab2/lab.json" <<EOF
{"ca_cert": "$P/ca.crt",
 "kmes": [
  {"id": "KME_A", "etsi014_url": "$(etsi_url A)", "skip_url": "$(skip_url A)", "saes": [],
   "skip_clients": [{"identity": "enc_a", "psk_hex": "$(skip_psk A enc_a)"}]},
  {"id": "KME_B", "etsi014_url": "$(etsi_url B)", "skip_url": "$(skip_url B)",
   "skip_clients": [{"identity": "enc_b", "psk_hex": "$(skip_psk B enc_b)"}]}],
 "links": [{"id": "KME_A~KME_B", "kmes": ["KME_A", "KME_B"]}]}
EOF
OUT=$("$QKD" skip key KME_B --lab "$T/lab2" --kme KME_A --skip-client enc_a 2>"$T/err") || fail "skip key --lab: $(cat "$T/err")"
read -r KID SK <<<"$OUT"
OUT=$("$QKD" skip key-by-id "$KID" KME_A --lab "$T/lab2" --kme KME_B --skip-client enc_b 2>"$T/err") || fail "key-by-id --lab: $(cat "$T/err")"
[ "$OUT" = "$KID $SK" ] || fail "--lab SKIP round trip: $OUT"
ok "--lab DIR --kme --skip-client: SKIP round trip"

# --- a credential mode the server does not take: exit 3 with a hint naming what to change,
# against a PSK-only and an mTLS-only listener (tls-test-server, KME_A's PSK file and certificate)
start_hs() { # NAME ARGS...: a tls-test-server; sets HSURL
  local n=$1; shift
  "$HS" --port-file "$T/$n.port" "$@" 2>"$T/$n.log" &
  PID[$n]=$!
  for _ in $(seq 100); do [ -s "$T/$n.port" ] && break; sleep 0.05; done
  [ -s "$T/$n.port" ] || fail "tls-test-server $n did not start: $(cat "$T/$n.log")"
  HSURL=https://127.0.0.1:$(cat "$T/$n.port")
}
hint() { # WANT-HINT DESCRIPTION qkd-ARGS...
  local want=$1 what=$2; shift 2
  OUT=$("$QKD" skip caps --url "$HSURL" "$@" 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
  expect_rc 3 "$what"
  grep -q "^qkd: hint: $want" "$T/err" || fail "$what: no hint '$want': $ERR"
}
start_hs pskonly --mode psk --psk-file "$T/skip_A.psk"
hint "the server wants credentials (a listener in mode psk?)" "no credentials, PSK listener" \
  --ca "$P/ca.crt"
hint "the server took no certificate and no PSK was offered" "certificate, PSK listener" \
  --ca "$P/ca.crt" --cert "$(crt skip_a)" --key "$(key skip_a)"
hint "no PSK accepted: check --psk-identity" "unknown PSK identity" --psk-identity nosuch \
  --psk-hex "$(skip_psk A enc_a)"
hint "the server knows this PSK identity but the PSK does not match" "wrong PSK" \
  --psk-identity enc_a --psk-hex "$(openssl rand -hex 32)"
hint "no PSK accepted: .*--psk-hash sha256 or auto" "SHA-384 binding, SHA-256 entry" \
  --psk-identity enc_a256 --psk-hex "$(skip_psk A enc_a256)"
start_hs mtlsonly --mode mtls --cert "$P/kme_a.crt" --key "$P/kme_a.key" --ca "$P/ca.crt"
hint "the server wants a client certificate: pass --cert FILE --key FILE" "no certificate, mTLS listener" \
  --ca "$P/ca.crt"
hint "the server wants a client certificate and takes no PSK here" "PSK, mTLS listener" \
  --ca "$P/ca.crt" --psk-identity enc_a --psk-hex "$(skip_psk A enc_a)"
OUT=$("$QKD" skip caps --url "$HSURL" --ca "$P/ca.crt" --cert "$(crt skip_a)" --key "$(key skip_a)" 2>"$T/err"); RC=$?
[ "$RC" = 6 ] || fail "certificate on the mTLS listener: exit $RC, not 6 (the test server answers its own JSON)"
if grep -q "hint:" "$T/err"; then fail "a hint without a TLS failure: $(cat "$T/err")"; fi
ok "PSK/certificate mode mismatches: exit 3 with a hint naming what to change"
exit 0

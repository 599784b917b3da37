#!/usr/bin/env bash
# relay_basic.sh - trusted-node key relay on a chain of three KMEs (KME_A - KME_B - KME_C,
# docs/adr/0004-key-relay.md), real daemons through qkd-lab: an ETSI 014 key from SAE_A1 at
# KME_A for SAE_C1 at KME_C is the same at both ends, byte for byte, and fetched once; a SKIP key
# with remoteSystemID KME_C too; each relayed key of L bytes consumes exactly L + 32 bytes of key
# on each link it crosses (qkd_key_consumed_bytes_total and qkd_relay_bytes_total at the sending
# end of each hop); status reports a remote slave's capacity; a multicast to SAEs on KME_B and
# KME_C gives all of them the same bytes; 128 keys in one relay (a pad larger than one block's
# room, carved in pieces) arrive whole; with KME_B stopped (SIGSTOP) the relay answers 503
# with a clear reason, nothing is delivered, and after it resumes relays work again.
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
N=chain
cat >"$T/chain.ini" <<'EOF'
[kme KME_A]
saes = SAE_A1
[kme KME_B]
saes = SAE_B1
[kme KME_C]
saes = SAE_C1, SAE_C2
[link AB]
kmes = KME_A, KME_B
[link BC]
kmes = KME_B, KME_C
EOF
lab_up "$N" --topology "$T/chain.ini" --wait 90
grep -q '^\[topology\]' "$T/$N/KME_A/kmed.conf" ||
  fail "qkd-lab does not write [topology] lines (the lab support of issue 14 is missing)"

CA=$(lab_json "$N" .ca_cert)
url() { lab_json "$N" ".kmes[] | select(.id==\"$1\") | .etsi014_url"; }
sae() { # SAE curl-args...: a call with the SAE's certificate
  local s=$1
  shift
  curl -s --max-time 20 --cacert "$CA" --cert "$T/$N/pki/sae-$s.crt" --key "$T/$N/pki/sae-$s.key" "$@"
}
enc() { # SAE KME SLAVE BODY: the enc_keys answer (body and status on the last line)
  sae "$1" -w '\n%{http_code}' -H 'Content-Type: application/json' --data-binary "$4" \
    "$(url "$2")/api/v1/keys/$3/enc_keys"
}
dec() { # SAE KME MASTER KEY_ID: the key's bytes (base64), empty when refused
  sae "$1" "$(url "$2")/api/v1/keys/$3/dec_keys?key_ID=$4" | jq -r '.keys[0].key // empty'
}
consumed() { kme_metric "$N" "$1" qkd_key_consumed_bytes_total "link=\"$2\""; } # KME LINK
relayed() { kme_metric "$N" "$1" qkd_relay_bytes_total "link=\"$2\""; }        # KME LINK
relays() { kme_metric "$N" KME_A qkd_relay_requests_total "result=\"$1\""; }   # RESULT

cap() { sae SAE_A1 "$(url KME_A)/api/v1/keys/SAE_C1/status" | jq -r '.stored_key_count // 0'; }
# the route to KME_C exists once KME_B reported its link BC ([topology] interval)
wait_for '[ "$(cap)" -gt 0 ]' 30 "a route from KME_A to KME_C" || fail "no route to KME_C"

# ---- ETSI 014 through KME_B, byte for byte, once; the key each hop consumed
a0=$(consumed KME_A AB)
b0=$(consumed KME_B BC)
out=$(enc SAE_A1 KME_A SAE_C1 '{"number":3,"size":256}')
[ "$(tail -n1 <<<"$out")" = 200 ] || fail "enc_keys SAE_A1 -> SAE_C1: $out"
body=$(head -n -1 <<<"$out")
for i in 0 1 2; do
  kid=$(jq -r ".keys[$i].key_ID" <<<"$body")
  ka=$(jq -r ".keys[$i].key" <<<"$body")
  kc=$(dec SAE_C1 KME_C SAE_A1 "$kid")
  if [ -z "$ka" ] || [ "$ka" != "$kc" ]; then fail "key $i: KME_C gave other bytes ('$kc')"; fi
done
[ -z "$(dec SAE_C1 KME_C SAE_A1 "$kid")" ] || fail "a relayed key was fetched twice"
[ -z "$(dec SAE_B1 KME_B SAE_A1 "$kid")" ] || fail "the intermediate KME_B served a relayed key"
ok "ETSI 014 keys relayed KME_A > KME_B > KME_C: same bytes at both ends, fetched once"
# 3 keys of 32 bytes in one relay: 96 + 32 bytes of key on each hop, at its sending end
want=$((3 * 32 + 32))
[ "$(awk -v a="$(consumed KME_A AB)" -v b="$a0" 'BEGIN { print a - b }')" = "$want" ] ||
  fail "link AB: KME_A consumed $(consumed KME_A AB) - $a0 bytes, want $want"
[ "$(awk -v a="$(consumed KME_B BC)" -v b="$b0" 'BEGIN { print a - b }')" = "$want" ] ||
  fail "link BC: KME_B consumed $(consumed KME_B BC) - $b0 bytes, want $want"
[ "$(relayed KME_A AB)" = "$want.000000" ] || fail "qkd_relay_bytes_total AB: $(relayed KME_A AB)"
[ "$(relayed KME_B BC)" = "$want.000000" ] || fail "qkd_relay_bytes_total BC: $(relayed KME_B BC)"
[ "$(relays committed)" = 1.000000 ] || fail "qkd_relay_requests_total committed: $(relays committed)"
grep -q 'relay [0-9a-f-]*: path KME_A>KME_B>KME_C: committed' "$T/$N/KME_A/kmed.log" ||
  fail "KME_A's log does not name the path"
ok "each hop consumed exactly L + 32 bytes of its link's key ($want for 96 bytes)"

# ---- 128 keys in one relay: a 4 KiB pad, more than one 4 KiB block holds, goes in pieces
wait_for '[ "$(cap)" -ge 80 ]' 60 "5 KiB of key on each link" || fail "the pools stay below 5 KiB"
a0=$(consumed KME_A AB)
out=$(enc SAE_A1 KME_A SAE_C1 '{"number":128,"size":256}')
[ "$(tail -n1 <<<"$out")" = 200 ] || fail "enc_keys of 128 keys: $out"
body=$(head -n -1 <<<"$out")
ids=$(jq -c '{key_IDs: [.keys[] | {key_ID}]}' <<<"$body")
ka=$(jq -r '[.keys[].key] | join(",")' <<<"$body")
kc=$(sae SAE_C1 -H 'Content-Type: application/json' --data-binary "$ids" \
  "$(url KME_C)/api/v1/keys/SAE_A1/dec_keys" | jq -r '[.keys[].key] | join(",")')
[ "$ka" = "$kc" ] || fail "128 relayed keys: KME_C gave other bytes"
want=$((128 * 32 + 32))
[ "$(awk -v a="$(consumed KME_A AB)" -v b="$a0" 'BEGIN { print a - b }')" = "$want" ] ||
  fail "link AB: 128 keys consumed $(consumed KME_A AB) - $a0 bytes, want $want"
ok "128 keys in one relay (a 4 KiB pad in pieces): the same bytes, $want bytes of key per hop"

# ---- status: the capacity of the path, at most max_key_count
st=$(sae SAE_A1 "$(url KME_A)/api/v1/keys/SAE_C1/status")
cnt=$(jq -r .stored_key_count <<<"$st")
if [ "$(jq -r .target_KME_ID <<<"$st")" != KME_C ] || [ "$cnt" -le 0 ]; then
  fail "status for a relayed slave: $st"
fi
ok "status of a slave two hops away: stored_key_count $cnt"

# ---- SKIP with remoteSystemID KME_C
Q=$BUILD/bin/qkd
if [ -x "$Q" ]; then
  k1=$("$Q" skip key KME_C --lab "$T/$N" --kme KME_A --skip-client SKIP_KME_A 2>&1) ||
    fail "SKIP key for KME_C: $k1"
  k2=$("$Q" skip key-by-id "${k1%% *}" KME_A --lab "$T/$N" --kme KME_C --skip-client SKIP_KME_C 2>&1) ||
    fail "SKIP key-by-id at KME_C: $k2"
  [ "$k1" = "$k2" ] || fail "SKIP: KME_C gave another key"
  ok "SKIP key relayed to KME_C"
fi

# ---- multicast to SAEs on two KMEs
out=$(enc SAE_A1 KME_A SAE_C1 '{"number":1,"size":256,"additional_slave_SAE_IDs":["SAE_B1","SAE_C2"]}')
[ "$(tail -n1 <<<"$out")" = 200 ] || fail "multicast enc_keys: $out"
body=$(head -n -1 <<<"$out")
kid=$(jq -r '.keys[0].key_ID' <<<"$body")
ka=$(jq -r '.keys[0].key' <<<"$body")
for p in "SAE_C1 KME_C" "SAE_B1 KME_B" "SAE_C2 KME_C"; do
  read -r s k <<<"$p"
  [ "$(dec "$s" "$k" SAE_A1 "$kid")" = "$ka" ] || fail "multicast: $s at $k got other bytes"
done
ok "multicast to SAEs on KME_B and KME_C: the same bytes for all three"

# ---- KME_B stopped: 503 with the reason, nothing delivered; back after it resumes
pb=$(cat "$T/$N/KME_B/kmed.pid")
kill -STOP "$pb"
out=$(enc SAE_A1 KME_A SAE_C1 '{"number":1,"size":256}')
kill -CONT "$pb"
[ "$(tail -n1 <<<"$out")" = 503 ] || fail "relay through a stopped KME_B: $out"
msg=$(head -n -1 <<<"$out" | jq -r .message)
case $msg in *KME_C*) ;; *) fail "503 without a clear reason: $msg" ;; esac
ok "relay through a stopped KME_B: 503 ($msg)"
wait_for '[ "$(enc SAE_A1 KME_A SAE_C1 "{\"number\":1,\"size\":256}" | tail -n1)" = 200 ]' 30 \
  "relays through KME_B again" || fail "no relay after KME_B resumed"
ok "relays work again after KME_B resumed"
echo "PASS relay_basic"

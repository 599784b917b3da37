#!/usr/bin/env bash
# device_source.sh - links fed by ETSI GS QKD 014 devices (issue 19, docs/qkd-kmed.md "Key
# sources", docs/lab.md "Device-fed links"): (a) a lab whose link is fed by the KMEs of a second
# lab (qkd-lab up --device-lab): keys flow end to end over ETSI 014 and SKIP with equal bytes,
# the pull throughput is measured and printed, and every key the outer puller took from the
# inner pair was fetched exactly once at the inner far end; (b) the same with tests/tools/
# fake-kme as the device pair (an ETSI 014 server that is not qkd-kmed); (c) faults of that
# device: TCP refused, 503, slow, short keys, other bytes at the far end: no key is served from
# bad material, the metrics say why, and keys flow again once the device is back.
# Not root; every wait is bounded (tests/lib/wait.sh).
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
# shellcheck source=../lib/pki.sh
. "$ROOT/tests/lib/pki.sh"
# shellcheck source=../lib/ports.sh
. "$ROOT/tests/lib/ports.sh"
QKD=$BUILD/bin/qkd
FAKE=$BUILD/tests/fake-kme
qk_need_bin "$QKD" "$FAKE"
qk_need_cmd openssl promtool
L=KME_A~KME_B
LF="link=\"$L\""

metric() { kme_metric "$1" "$2" "$3" "${4:-$LF}" | awk '{ printf "%d\n", $1 }'; } # LAB KME METRIC [FILTER]
# The labels of a KME's qkd_device_errors_total samples of $L with a non-zero count.
error_reasons() { # LAB KME
  local url
  url=$(lab_json "$1" ".kmes[] | select(.id==\"$2\") | .admin_url")
  curl -s --max-time 5 "$url/metrics" | awk -v f="$LF" '$1 ~ /^qkd_device_errors_total\{/ && index($1, f) && $2 > 0 { printf "%s=%s ", $1, $2 }'
}
skip_pair_key() { # LAB: a SKIP key at KME_A for KME_B, fetched by ID at KME_B: equal bytes
  local a b
  a=$("$QKD" skip key KME_B --lab "$T/$1" --kme KME_A --skip-client SKIP_KME_A) || return 1
  b=$("$QKD" skip key-by-id "${a%% *}" KME_A --lab "$T/$1" --kme KME_B --skip-client SKIP_KME_B) || return 1
  [ "${a#* }" = "${b#* }" ]
}

# ---- (a) a qkd-kmed pair as the devices ---------------------------------------------------------
# The inner lab makes key fast (1.4 Mbit/s) in large blocks, so the outer pull path is what the
# throughput below measures.
lab_up inner --time-scale 1000 --block-bytes 65536 --wait 30
lab_up outer --device-lab "$T/inner" --wait 30
ok "qkd-lab up --device-lab: the outer lab's pools filled from the inner lab's KMEs"
for k in KME_A KME_B; do
  c=$T/outer/$k/kmed.conf
  grep -q '^source = etsi014$' "$c" || fail "$c: no source = etsi014"
  grep -q "^device_url = $(lab_json inner ".kmes[] | select(.id==\"$k\") | .etsi014_url")\$" "$c" ||
    fail "$c: device_url is not the inner $k"
done
grep -q '^device_pull = yes$' "$T/outer/KME_A/kmed.conf" && grep -q '^device_pull = no$' "$T/outer/KME_B/kmed.conf" ||
  fail "the lower KME ID (KME_A) is not the one end that pulls"
[ "$(lab_json outer '.links[0].source + " " + .links[0].device.pull')" = "etsi014 KME_A" ] ||
  fail "lab.json does not say the link is device-fed and who pulls"
[ "$(lab_json outer .sim_pid)" = 0 ] && [ ! -e "$T/outer/sim" ] || fail "a simulator runs for a device-fed link"
grep -q "^  link $L (KME_A--KME_B): fed by the ETSI 014 devices of $T/inner: .*; KME_A pulls" "$T/outer.up" ||
  fail "the summary does not say the link is device-fed"
[ "$(lab_json inner '.links[0].source')" = sim ] || fail "lab.json: the inner link is not source sim"
"$LAB" status --dir "$T/outer" >"$T/status.out" || { cat "$T/status.out"; fail "qkd-lab status of the outer lab"; }
ok "kmed.conf, lab.json, summary and status of the device-fed lab"

etsi_pair_key outer KME_A SAE_A1 KME_B SAE_B1 || fail "ETSI 014 key A -> B over the device-fed link"
etsi_pair_key outer KME_B SAE_B2 KME_A SAE_A2 || fail "ETSI 014 key B -> A over the device-fed link"
skip_pair_key outer || fail "SKIP key over the device-fed link"
ok "ETSI 014 and SKIP keys at the outer pair, equal bytes at both ends"

# Pull throughput into the outer pool: qkd_device_keys_total at the puller over 10 s (the
# outer pool is far below its target: half of 64 MiB).
k0=$(metric outer KME_A qkd_device_keys_total) t0=$(date +%s%N) b0=$(metric outer KME_A qkd_key_received_bytes_total)
sleep 10
k1=$(metric outer KME_A qkd_device_keys_total) t1=$(date +%s%N) b1=$(metric outer KME_A qkd_key_received_bytes_total)
[ "$k1" -gt "$k0" ] || fail "no key pulled in 10 s ($k0 -> $k1)"
echo "THROUGHPUT: $(awk -v k=$((k1 - k0)) -v b=$((b1 - b0)) -v ns=$((t1 - t0)) 'BEGIN {
  s = ns / 1e9; printf "%.0f keys/s, %.3f Mbit/s into the pool of KME_A (%d keys, %d bytes in %.2f s; qkd-kmed pair as the device, batch 128 x 256 bits, interval 100 ms)", k / s, b * 8 / s / 1e6, k, b, s }')"

# Every key the outer pair took was fetched exactly once at the inner far end. The puller stops
# first (SIGTERM: it finishes the pull in flight, its peer still up), then the rest of the outer
# lab. Then the inner master end (KME_A) handed out as many keys as the slave end (KME_B)
# delivered, none is left reserved for a slave, and both outer ends stored that many.
pa=$(lab_json outer '.kmes[] | select(.id=="KME_A") | .pid')
kill -TERM "$pa" && timeout 15 tail --pid="$pa" -f /dev/null || fail "the outer puller did not stop"
fetched=$(metric outer KME_B qkd_device_keys_total)
"$LAB" down --dir "$T/outer" >/dev/null || fail "qkd-lab down outer"
da=$(metric inner KME_A qkd_keys "$LF,state=\"delivered\"") db=$(metric inner KME_B qkd_keys "$LF,state=\"delivered\"")
rb=$(metric inner KME_B qkd_keys "$LF,state=\"reserved\"")
[ "$rb" = 0 ] && [ "$da" = "$db" ] ||
  fail "inner pair: $da keys handed to the puller at KME_A, $db fetched at KME_B, $rb never fetched ($(grep -c 'device pull: POST .*/peer/v1/device-keys' "$T/outer/KME_A/kmed.log") notice(s) to the peer failed: outer KME_A's kmed.log)"
[ "$db" = "$fetched" ] && [ "$fetched" -gt 0 ] || fail "inner KME_B delivered $db keys, the outer KME_B stored $fetched"
ok "the inner pair's keys were consumed exactly once each ($da keys)"

# The fetching end stopped while the puller runs: its notices fail (reason "peer"), and the keys
# they name stay taken at the device until the same notice is delivered, before any new pull,
# once the fetching end is back (docs/qkd-kmed.md, "Key sources"). Then the inner pair's keys
# are again consumed exactly once: none left reserved at the inner far end.
lab_up outer2 --device-lab "$T/inner" --wait 30
pb=$(lab_json outer2 '.kmes[] | select(.id=="KME_B") | .pid')
# shellcheck disable=SC2034 # p0 and ok0 are read by the wait_for conditions
p0=$(metric outer2 KME_A qkd_device_errors_total "$LF,reason=\"peer\"")
kill -TERM "$pb" && timeout 15 tail --pid="$pb" -f /dev/null || fail "outer2 KME_B did not stop"
wait_for '[ "$(metric outer2 KME_A qkd_device_errors_total "$LF,reason=\"peer\"")" -gt "$p0" ]' 20 \
  "a notice to the stopped KME_B to fail" || fail "no notice failed while KME_B was down"
"$BUILD/bin/qkd-kmed" -c "$T/outer2/KME_B/kmed.conf" --port-file "$T/outer2/KME_B/ports" \
  >>"$T/outer2/KME_B/kmed.out" 2>&1 &
echo $! >"$T/outer2/KME_B/kmed.pid"
# shellcheck disable=SC2034
ok0=$(metric outer2 KME_A qkd_device_pulls_total "$LF,result=\"ok\"")
wait_for '[ "$(metric outer2 KME_A qkd_device_pulls_total "$LF,result=\"ok\"")" -gt "$((ok0 + 1))" ]' 60 \
  "the retried notice and a new pull to succeed" || fail "the puller did not recover after KME_B came back"
pa=$(lab_json outer2 '.kmes[] | select(.id=="KME_A") | .pid')
kill -TERM "$pa" && timeout 15 tail --pid="$pa" -f /dev/null || fail "the outer2 puller did not stop"
"$LAB" down --dir "$T/outer2" >/dev/null || fail "qkd-lab down outer2"
da=$(metric inner KME_A qkd_keys "$LF,state=\"delivered\"") db=$(metric inner KME_B qkd_keys "$LF,state=\"delivered\"")
rb=$(metric inner KME_B qkd_keys "$LF,state=\"reserved\"")
[ "$rb" = 0 ] && [ "$da" = "$db" ] ||
  fail "after the fetching end's outage: $da keys handed out at inner KME_A, $db fetched at KME_B, $rb never fetched"
ok "fetching end down and back: the unsent notice was retried, the inner keys consumed exactly once ($da keys)"

# ---- (b) fake-kme as the device pair ------------------------------------------------------------
# A device lab for --device-lab is a lab.json: here one describing fake-kme, which plays KME_A
# (etsiA) and KME_B (etsiB) on fixed ports, so that a restarted fake is found at the same URLs.
F=$T/fake
pki_ca "$F" ca >/dev/null && pki_server "$F" ca server >/dev/null &&
  pki_client "$F" ca DEV_A >/dev/null && pki_client "$F" ca DEV_B >/dev/null || fail "fake-kme PKI"
(umask 077 && printf 'unused:%s\n' "$(openssl rand -hex 32)" >"$F/fake.psk") || fail "fake-kme PSK file"
FPA=$(free_port) && FPB=$(free_port "$FPA") || fail "no free port"
FPID=
fake_start() { # DEVICE-FAULT...
  local a=() f
  for f in "$@"; do a+=(--device-fault "$f"); done
  rm -f "$F/ports"
  "$FAKE" --cert "$F/server.crt" --key "$F/server.key" --ca "$F/ca.crt" --psk-file "$F/fake.psk" \
    --saes DEV_A@A,DEV_B@B --etsi-ports "$FPA,$FPB" --port-file "$F/ports" "${a[@]}" >>"$F/fake.out" 2>&1 &
  FPID=$!
  for _ in $(seq 1 100); do
    [ -s "$F/ports" ] && return 0
    kill -0 "$FPID" 2>/dev/null || fail "fake-kme exited: $(tail -n 3 "$F/fake.out")"
    sleep 0.1
  done
  fail "fake-kme wrote no port file"
}
fake_stop() {
  [ -n "$FPID" ] || return 0
  kill -TERM "$FPID" 2>/dev/null
  timeout 10 tail --pid="$FPID" -f /dev/null 2>/dev/null || kill -KILL "$FPID" 2>/dev/null
  wait "$FPID" 2>/dev/null
  FPID=
}
trap 'fake_stop; _lab_cleanup' EXIT
jq -n --arg f "$F" --arg a "https://127.0.0.1:$FPA" --arg b "https://127.0.0.1:$FPB" '{version: 1, dir: $f,
  ca_cert: "\($f)/ca.crt", links: [{id: "AB", kmes: ["KME_A", "KME_B"]}],
  kmes: [{id: "KME_A", etsi014_url: $a, saes: [{id: "DEV_A", cert: "\($f)/DEV_A.crt", key: "\($f)/DEV_A.key"}]},
         {id: "KME_B", etsi014_url: $b, saes: [{id: "DEV_B", cert: "\($f)/DEV_B.crt", key: "\($f)/DEV_B.key"}]}]}' \
  >"$F/lab.json" && chmod 600 "$F/lab.json" || fail "fake device lab.json"
fake_start
lab_up fk --device-lab "$F" --wait 30
etsi_pair_key fk KME_A SAE_A1 KME_B SAE_B1 || fail "ETSI 014 key A -> B, fake-kme as the device"
skip_pair_key fk || fail "SKIP key, fake-kme as the device"
ok "fake-kme as the device pair: ETSI 014 and SKIP keys, equal bytes at both ends"

# ---- (c) faults of the device ---------------------------------------------------------------------
# Each fault starts from a quiet link (the device stopped, no block pending at either end, so
# the pools hold only confirmed material), and must raise the puller's error counter with its
# reason while no key is stored from the device and neither pool grows. Then the healthy device
# comes back and keys flow again (which also resets the backoff for the next fault).
pool() { metric fk "$1" qkd_pool_bytes; }
reason() { metric fk KME_A qkd_device_errors_total "$LF,reason=\"$1\""; }
# The device stopped and no block pending at either end but those the puller could not announce
# (reason "peer": the puller retries those notices before any new pull, docs/qkd-kmed.md).
quiet() {
  fake_stop
  wait_for '[ "$(metric fk KME_A qkd_blocks "$LF,state=\"pending\"")" -le "$(reason peer)" ] && [ "$(metric fk KME_B qkd_blocks "$LF,state=\"pending\"")" = 0 ]' 20 \
    "no pending block at either end" || fail "blocks still pending with the device stopped"
}
fault() { # REASON WHAT DEVICE-FAULT...: the device with those faults (none: stopped)
  local r=$1 what=$2 e0 ka kb pa pb; shift 2
  quiet
  # shellcheck disable=SC2034 # read by the wait_for condition
  e0=$(reason "$r")
  ka=$(metric fk KME_A qkd_device_keys_total) kb=$(metric fk KME_B qkd_device_keys_total) pa=$(pool KME_A) pb=$(pool KME_B)
  if [ "$#" -gt 0 ] || [ "$r" != connect ]; then fake_start "$@"; fi
  wait_for '[ "$(reason "$r")" -gt "$e0" ]' 20 "a device error \"$r\" while $what" ||
    fail "the puller counts no error \"$r\" while $what ($(error_reasons fk KME_A))"
  [ "$(metric fk KME_A qkd_device_keys_total)" = "$ka" ] && [ "$(metric fk KME_B qkd_device_keys_total)" = "$kb" ] ||
    fail "keys stored from the device while $what"
  [ "$(pool KME_A)" -le "$pa" ] && [ "$(pool KME_B)" -le "$pb" ] || fail "a pool grew while $what"
  echo "  $what: reason=\"$r\" counted; backoff $(kme_metric fk KME_A qkd_device_backoff_seconds "$LF") s"
  recover "$what"
}
recover() { # WHAT: the healthy device back, keys flow, an ETSI 014 key with equal bytes
  local k0
  fake_stop
  k0=$(metric fk KME_A qkd_device_keys_total)
  fake_start
  wait_for '[ "$(metric fk KME_A qkd_device_keys_total)" -gt "$k0" ]' 40 "keys from the device after $1" ||
    fail "no key from the device after $1 ($(error_reasons fk KME_A))"
  etsi_pair_key fk KME_A SAE_A1 KME_B SAE_B1 || fail "ETSI 014 key after $1"
}

fault connect "the device refuses TCP connections"
fault unavailable "the device answers 503" 503
fault malformed "the device answers keys one byte short" short-keys
fault timeout "the device answers after 4 s (the puller waits 3 s)" slow
ok "device down (refused, 503), short keys, slow: counted with their reason, no key stored, no pool grew; recovery"

# Other bytes at the far end: both ends store a block from the same key IDs, the material check
# finds different digests and burns both; no key is carved from them.
quiet
# shellcheck disable=SC2034 # read by the wait_for condition
bA=$(metric fk KME_A qkd_blocks "$LF,state=\"burned\"") bB=$(metric fk KME_B qkd_blocks "$LF,state=\"burned\"")
pa=$(pool KME_A) pb=$(pool KME_B)
fake_start other-key
wait_for '[ "$(metric fk KME_A qkd_blocks "$LF,state=\"burned\"")" -gt "$bA" ] && [ "$(metric fk KME_B qkd_blocks "$LF,state=\"burned\"")" -gt "$bB" ]' 20 \
  "blocks burned at both ends" || fail "mismatched device keys were not burned at both ends"
quiet
[ "$(pool KME_A)" -le "$pa" ] && [ "$(pool KME_B)" -le "$pb" ] || fail "a pool grew from mismatched device keys"
recover "mismatched keys"
ok "a mismatched key at the far end: burned at both ends, never served; recovery"

# The device families pass promtool (docs/qkd-kmed.md, "Admin API"), errors with their reasons.
for k in KME_A KME_B; do
  curl -sf --max-time 5 "$(lab_json fk ".kmes[] | select(.id==\"$k\") | .admin_url")/metrics" >"$T/$k.prom" ||
    fail "GET /metrics of $k"
  out=$(promtool check metrics <"$T/$k.prom" 2>&1) && [ -z "$out" ] || fail "$k: promtool check metrics: $out"
done
for fam in qkd_device_pulls_total qkd_device_keys_total qkd_device_errors_total qkd_device_backoff_seconds qkd_device_burned_total; do
  grep -q "^# TYPE $fam " "$T/KME_A.prom" || fail "the puller's /metrics has no family $fam"
done
ok "promtool check metrics with the device families"
"$LAB" down --dir "$T/fk" >/dev/null || fail "qkd-lab down fk"
no_san_reports outer
no_san_reports fk

# shellcheck shell=bash
# etsi_pair.sh - two qkd-kmed (KME_A, KME_B) on 127.0.0.1 for the ETSI 014 integration tests.
# Source it after setting BUILD; it creates $T (temp dir) and an EXIT trap that stops every
# process it started and removes $T (kept when QK_KEEP=1). It sources skip.sh (qk_skip,
# qk_need_bin, qk_need_cmd: tests/README.md "Skips") and needs qkd-kmed, qk-feeder, etsi-load.
#
#   pair_init                 PKI (one CA), configs, master keys; SAE_A1/SAE_A2 at KME_A, SAE_B1/SAE_B2
#                             at KME_B; SAE_X holds a certificate but is registered nowhere
#   pair_start A|B            start a KME (waits for its port file); ports in ${PORT[A.etsi014]}...
#   pair_stop A|B [SIGNAL]    stop it (TERM by default; KILL for a crash) and wait for it
#   pair_feed ARGS...         run qk-feeder against both device listeners (link KME_A~KME_B)
#   pair_load ARGS...         run etsi-load with the SAE_A1 / SAE_B1 credentials
#   etsi_url A|B              https://127.0.0.1:PORT of the ETSI listener
#   admin_metrics A|B         GET /metrics from the admin listener
#   sae_curl SAE ARGS...      curl with SAE's client certificate (CA-verified)
# Tunables before pair_init: PAIR_KEYS_EXTRA (lines appended to [keys]), PAIR_LINK_EXTRA
# (lines appended to each [link] section), PAIR_CONF_EXTRA (lines, sections included,
# appended to both configs); before pair_start: PAIR_KMED_ARG (one more
# qkd-kmed argument, e.g. --allow-core-dumps).
#
# SKIP (draft-cisco-skip-02), after pair_init and before pair_start:
#   pair_skip_conf A|B MODE [EXTRA]  add a skip listener (MODE psk|psk-or-mtls|mtls|server-cert),
#                             its PSK file and client rules to that KME's config. EXTRA: lines
#                             appended to its [skip] section. Clients of KME_X (x = a|b):
#                               enc_x      PSK (SHA-384), remote_systems = KME_?
#                               enc_x256   PSK bound to SHA-256, remote_systems = KME_[AB]
#                               enc_x_ltd  PSK (SHA-384), remote_systems = KME_Q (nothing linked)
#                               skip_x     client certificate CN, remote_systems = KME_*
#                             [skip] remote_system_ids = KME_[A-C], KP_*_LOC1
#   skip_url A|B              https://127.0.0.1:PORT of the skip listener
#   skip_psk A|B IDENTITY     the hex PSK of a client (for openssl s_client -psk)
#   skip_curl CLIENT A|B PATH [curl args...]  curl with CLIENT's certificate; body, then "HTTP <status>"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
KMED=$BUILD/bin/qkd-kmed
FEEDER=$BUILD/tests/qk-feeder
LOAD=$BUILD/tests/etsi-load
LINK=KME_A~KME_B

# shellcheck source=/dev/null
. "$ROOT/tests/lib/skip.sh"
qk_need_bin "$KMED" "$FEEDER" "$LOAD"
qk_need_cmd curl openssl
# shellcheck source=/dev/null
. "$ROOT/tests/lib/pki.sh"
# shellcheck source=/dev/null
. "$ROOT/tests/lib/ports.sh"

T=$(mktemp -d /tmp/qk-etsi.XXXXXX)
declare -A PID=() PORT=() PEERPORT=()
_pair_cleanup() {
  local n
  for n in "${!PID[@]}"; do
    [ -n "${PID[$n]}" ] && kill -TERM "${PID[$n]}" 2>/dev/null
  done
  for n in "${!PID[@]}"; do
    [ -n "${PID[$n]}" ] && { timeout 10 tail --pid="${PID[$n]}" -f /dev/null 2>/dev/null || kill -KILL "${PID[$n]}" 2>/dev/null; }
  done
  if [ "${QK_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap _pair_cleanup EXIT

fail() { echo "FAIL: $*"; for n in A B; do [ -f "$T/kme_$n.log" ] && { echo "--- tail of kme_$n.log"; tail -n 15 "$T/kme_$n.log"; }; done; exit 1; }
ok() { echo "ok: $*"; }


pair_init() {
  local P=$T/pki
  mkdir -p "$P"
  pki_ca "$P" ca >/dev/null || fail "pki_ca"
  local n
  for n in kme_a kme_b; do pki_server "$P" ca "$n" >/dev/null || fail "pki_server $n"; done
  # Client certificates carry their role's marker (docs/qkd-kmed.md "Roles").
  for n in KME_A:kme KME_B:kme qkd-sim:device SAE_A1:sae SAE_A2:sae SAE_B1:sae SAE_B2:sae SAE_X:sae; do
    pki_client "$P" ca "${n%%:*}" "${n#*:}" >/dev/null || fail "pki_client $n"
  done
  PEERPORT[A]=$(free_port "${PEERPORT[@]}") && PEERPORT[B]=$(free_port "${PEERPORT[@]}") || fail "no free port"
  PEERPORT[etsiA]=$(free_port "${PEERPORT[@]}") && PEERPORT[etsiB]=$(free_port "${PEERPORT[@]}") || fail "no free port"
  _pair_conf A B a b
  _pair_conf B A b a
}

# pki.sh file names: $P/NAME.crt and $P/NAME.key; the CA certificate $P/ca.crt.
crt() { echo "$T/pki/$1.crt"; }
key() { echo "$T/pki/$1.key"; }

_pair_conf() { # SELF PEER self_lc peer_lc
  local s=$1 p=$2 sl=$3 P=$T/pki
  mkdir -p "$T/data_$s"
  cat > "$T/kme_$s.conf" <<EOF
[node]
id = KME_$s
data_dir = $T/data_$s
log_file = $T/kme_$s.log
log_level = ${QK_LOG_LEVEL:-info}

[listener etsi014]
address = 127.0.0.1:${PEERPORT[etsi$s]}
mode = mtls
cert = $P/kme_$sl.crt
key = $P/kme_$sl.key
ca = $P/ca.crt
threads = 2

[listener peer]
address = 127.0.0.1:${PEERPORT[$s]}
mode = mtls
cert = $P/kme_$sl.crt
key = $P/kme_$sl.key
ca = $P/ca.crt

[listener device]
address = 127.0.0.1:0
mode = mtls
cert = $P/kme_$sl.crt
key = $P/kme_$sl.key
ca = $P/ca.crt

[listener admin]
address = 127.0.0.1:0
mode = plain

[peer_client]
ca = $P/ca.crt
cert = $P/KME_$s.crt
key = $P/KME_$s.key
timeout = 3s
connect_timeout = 1s

[link KME_$p]
peer_url = https://127.0.0.1:${PEERPORT[$p]}
device_identity = qkd-sim
${PAIR_LINK_EXTRA:-}

[sae SAE_A1]
kme = KME_A

[sae SAE_A2]
kme = KME_A

[sae SAE_B1]
kme = KME_B

[sae SAE_B2]
kme = KME_B

[keys]
default_size = 256
max_keys_per_request = 128
reservation_lifetime = 1h
${PAIR_KEYS_EXTRA:-}
${PAIR_CONF_EXTRA:-}
EOF
}

pair_start() {
  local s=$1 i
  rm -f "$T/ports_$s"
  local mk
  if [ "$s" = A ]; then mk=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
  else mk=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100; fi
  QKD_KMED_MASTER_KEY=$mk "$KMED" -c "$T/kme_$s.conf" --port-file "$T/ports_$s" \
    ${PAIR_KMED_ARG:+"$PAIR_KMED_ARG"} >>"$T/kme_$s.out" 2>&1 &
  PID[$s]=$!
  for i in $(seq 1 100); do
    [ -s "$T/ports_$s" ] && grep -q '^admin=' "$T/ports_$s" && break
    kill -0 "${PID[$s]}" 2>/dev/null || { cat "$T/kme_$s.out"; fail "KME_$s exited at start"; }
    sleep 0.1
  done
  [ -s "$T/ports_$s" ] || fail "KME_$s wrote no port file"
  local l v
  while IFS='=' read -r l v; do PORT[$s.$l]=$v; done < "$T/ports_$s"
}

pair_stop() {
  local s=$1 sig=${2:-TERM}
  [ -n "${PID[$s]:-}" ] || return 0
  kill -"$sig" "${PID[$s]}" 2>/dev/null
  timeout 15 tail --pid="${PID[$s]}" -f /dev/null 2>/dev/null || kill -KILL "${PID[$s]}" 2>/dev/null
  wait "${PID[$s]}" 2>/dev/null
  PID[$s]=
}

etsi_url() { echo "https://127.0.0.1:${PORT[$1.etsi014]}"; }
device_url() { echo "https://127.0.0.1:${PORT[$1.device]}"; }
admin_url() { echo "http://127.0.0.1:${PORT[$1.admin]}"; }
admin_metrics() { curl -s --max-time 5 "$(admin_url "$1")/metrics"; }

# Sum of a metric's samples whose labels contain FILTER (e.g. admin_metric A qkd_pool_bytes link=).
admin_metric() {
  admin_metrics "$1" | awk -v m="$2" -v f="${3:-}" '$1 ~ "^"m"({|$)" && index($1, f) { s += $2 } END { printf "%d\n", s }'
}

pair_feed() {
  "$FEEDER" --a-url "$(device_url A)" --b-url "$(device_url B)" --link "$LINK" \
    --ca "$T/pki/ca.crt" --cert "$(crt qkd-sim)" --key "$(key qkd-sim)" "$@"
}

pair_load() {
  "$LOAD" --a-url "$(etsi_url A)" --a-sae SAE_A1 --a-cert "$(crt SAE_A1)" --a-key "$(key SAE_A1)" \
    --b-url "$(etsi_url B)" --b-sae SAE_B1 --b-cert "$(crt SAE_B1)" --b-key "$(key SAE_B1)" \
    --ca "$T/pki/ca.crt" "$@"
}

# sae_curl SAE A|B PATH [curl args...]: prints the body, then a last line "HTTP <status>".
sae_curl() {
  local sae=$1 kme=$2 path=$3; shift 3
  curl -s --max-time 10 --cacert "$T/pki/ca.crt" --cert "$(crt "$sae")" --key "$(key "$sae")" \
    -w '\nHTTP %{http_code}\n' "$(etsi_url "$kme")$path" "$@"
}

# Wait until KME s reports at least BITS bits in the pool of the link (admin /metrics).
wait_pool() {
  local s=$1 bits=$2 i v=0
  for i in $(seq 1 150); do
    v=$(($(admin_metric "$s" qkd_pool_bytes "link=\"$LINK\"") * 8))
    [ "${v:-0}" -ge "$bits" ] && return 0
    sleep 0.2
  done
  echo "pool of KME_$s: $v bits, wanted $bits"
  return 1
}

# ---- SKIP --------------------------------------------------------------------------------------
declare -A SKIPPSK=()

pair_skip_conf() { # A|B MODE [EXTRA]
  local s=$1 mode=$2 extra=${3:-} sl P=$T/pki id
  sl=$(echo "$s" | tr 'AB' 'ab')
  [ -f "$P/skip_$sl.crt" ] || pki_client "$P" ca "skip_$sl" >/dev/null || fail "pki_client skip_$sl"
  SKIPPSK[$s.enc_$sl]=$(openssl rand -hex 32)
  SKIPPSK[$s.enc_${sl}256]=$(openssl rand -hex 32)
  SKIPPSK[$s.enc_${sl}_ltd]=$(openssl rand -hex 32)
  (umask 077 && {
    echo "# SKIP client PSKs of KME_$s (identity:hexkey[:hash])"
    echo "enc_$sl:${SKIPPSK[$s.enc_$sl]}"
    echo "enc_${sl}256:${SKIPPSK[$s.enc_${sl}256]}:sha256"
    echo "enc_${sl}_ltd:${SKIPPSK[$s.enc_${sl}_ltd]}"
  } >"$T/skip_$s.psk") || fail "PSK file"
  {
    echo
    echo "[listener skip]"
    echo "address = 127.0.0.1:0"
    echo "mode = $mode"
    case $mode in psk) ;; *) echo "cert = $P/kme_$sl.crt"; echo "key = $P/kme_$sl.key" ;; esac
    case $mode in mtls | psk-or-mtls) echo "ca = $P/ca.crt" ;; esac
    case $mode in psk | psk-or-mtls) echo "psk_file = $T/skip_$s.psk" ;; esac
    echo
    echo "[skip_client enc_$sl]"
    echo "remote_systems = KME_?"
    echo "[skip_client enc_${sl}256]"
    echo "remote_systems = KME_[AB]"
    echo "[skip_client enc_${sl}_ltd]"
    echo "remote_systems = KME_Q"
    echo "[skip_client skip_$sl]"
    echo "remote_systems = KME_*"
    echo
    echo "[skip]"
    echo "remote_system_ids = KME_[A-C], KP_*_LOC1"
    if [ -n "$extra" ]; then printf '%s\n' "$extra"; fi
  } >>"$T/kme_$s.conf" || fail "cannot write kme_$s.conf"
}

skip_url() { echo "https://127.0.0.1:${PORT[$1.skip]}"; }
skip_psk() { echo "${SKIPPSK[$1.$2]}"; }

skip_curl() { # CLIENT A|B PATH [curl args...]
  local client=$1 kme=$2 path=$3; shift 3
  curl -s --max-time 10 --cacert "$T/pki/ca.crt" --cert "$(crt "$client")" --key "$(key "$client")" \
    -w '\nHTTP %{http_code}\n' "$(skip_url "$kme")$path" "$@"
}

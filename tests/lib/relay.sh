# shellcheck shell=bash
# relay.sh - helpers for the trusted-node key relay suites (issue 14; docs/adr/0004-key-relay.md)
# on a qkd-lab network. Source it after tests/lib/lab.sh. NAME is the lab's name under $T.
#   kme_field NAME KME FIELD          a KME's field of lab.json (etsi014_url, admin_url, ...)
#   etsi_enc NAME KME SAE SLAVE BODY  POST enc_keys as SAE at KME for SLAVE; the answer's body
#                                     in $T/enc.json, its HTTP status on stdout
#   etsi_dec NAME KME SAE MASTER IDS  POST dec_keys as SAE at KME for keys of MASTER; IDS is the
#                                     JSON key_IDs array; body in $T/dec.json, status on stdout
#   pool_bytes NAME KME LINK          qkd_pool_bytes of LINK at KME (integer; -1 when absent)
#   routes_json NAME KME              the KME's admin GET /routes (empty when it fails)
#   route_of NAME KME DST             its route to DST: "KME_A>KME_B>..." or "none: REASON"
#   wait_route NAME KME DST WANT S    wait up to S seconds until route_of prints WANT
#   sim_fault NAME LINK FAULT [VALUE] qkd-sim fault on LINK (fails the suite when refused)
#   freeze_pools NAME LINK...         the simulator stops filling the pools of LINKs (drop a: end
#                                     b's blocks stay pending and never reach a pool), then waits
#                                     until every pool of those links holds still
#   thaw_pools NAME LINK...           drop none
# Deliveries are frozen with `drop a`, not `down`: a link the simulator reports down is down
# for routing too (the relay avoids it), which is not what an accounting check wants.

kme_field() { lab_json "$1" ".kmes[] | select(.id==\"$2\") | .$3"; }

# sae_post NAME KME SAE PATH BODY OUT: POST as SAE at KME's ETSI 014 listener; status on stdout.
sae_post() {
  local n=$1 k=$2 s=$3 path=$4 body=$5 out=$6
  curl -s --max-time 30 -o "$out" -w '%{http_code}' --cacert "$(lab_json "$n" .ca_cert)" \
    --cert "$T/$n/pki/sae-$s.crt" --key "$T/$n/pki/sae-$s.key" \
    -H 'Content-Type: application/json' --data-binary "$body" \
    "$(kme_field "$n" "$k" etsi014_url)$path"
}
etsi_enc() { sae_post "$1" "$2" "$3" "/api/v1/keys/$4/enc_keys" "$5" "$T/enc.json"; }
etsi_dec() { sae_post "$1" "$2" "$3" "/api/v1/keys/$4/dec_keys" "{\"key_IDs\":$5}" "$T/dec.json"; }

pool_bytes() {
  kme_metric "$1" "$2" qkd_pool_bytes "link=\"$3\"" | awk '{ printf "%d\n", $1 }'
}

routes_json() { curl -s --fail --max-time 5 "$(kme_field "$1" "$2" admin_url)/routes"; }

route_of() {
  routes_json "$1" "$2" | jq -r --arg d "$3" '.routes[]? | select(.to == $d) |
    if .path == null then "none: \(.reason // "")" else (.path | join(">")) end'
}

wait_route() { # NAME KME DST WANT SECONDS
  local _wr_n=$1 _wr_k=$2 _wr_d=$3 _wr_w=$4 _wr_r=
  # shellcheck disable=SC2016 # evaluated by wait_for (its own $1... are not ours)
  WAIT_STEP=0.5 wait_for '_wr_r=$(route_of "$_wr_n" "$_wr_k" "$_wr_d"); [ "$_wr_r" = "$_wr_w" ]' "$5" \
    "$2's route to $3 to be $4" || { echo "route of $2 to $3: '$_wr_r', wanted '$4'"; return 1; }
}

sim_fault() { # NAME LINK FAULT [VALUE]
  local n=$1 l=$2
  shift 2
  "$SIM" fault --control "$(lab_json "$n" .sim_url)" --link "$l" "$@" >/dev/null ||
    fail "qkd-sim fault --link $l $*"
}

# The pools of both ends of LINKs, one line "KME LINK BYTES" each.
_pools_of() {
  local n=$1 l k
  shift
  for l in "$@"; do
    for k in $(lab_json "$n" ".links[] | select(.id==\"$l\") | .kmes[]"); do
      echo "$k $l $(pool_bytes "$n" "$k" "$l")"
    done
  done
}

freeze_pools() { # NAME LINK...
  local n=$1 l a b i
  shift
  for l in "$@"; do sim_fault "$n" "$l" drop a; done
  # A block on its way when the fault came may still be confirmed: wait until two readings
  # three seconds apart (more than the KMEs' inventory exchange takes) are the same.
  a=$(_pools_of "$n" "$@")
  for ((i = 0; i < 20; i++)); do
    sleep 3
    b=$(_pools_of "$n" "$@")
    [ "$a" = "$b" ] && return 0
    a=$b
  done
  fail "the pools of $* did not hold still within 60 s with drop a"
}

thaw_pools() { # NAME LINK...
  local n=$1 l
  shift
  for l in "$@"; do sim_fault "$n" "$l" drop none; done
}

# kme_set NAME KME SECTION KEY VALUE: set KEY in [SECTION] of the KME's kmed.conf (the line must
# exist); takes effect at the next kme_restart.
kme_set() {
  local c=$T/$1/$2/kmed.conf
  awk -v s="[$3]" -v k="$4" -v v="$5" '
    /^\[/ { in_s = ($0 == s) }
    in_s && $1 == k && $2 == "=" { print k " = " v; done = 1; next }
    { print }
    END { exit !done }' "$c" >"$c.new" || fail "kmed.conf of $2: no $4 in [$3]"
  cat "$c.new" >"$c" && rm -f "$c.new" # keeps the file's mode (0600)
}

# kme_restart NAME KME [SIGNAL]: stop the KME (SIGTERM, or SIGNAL: KILL for a crash) unless it is
# already gone, and start it again as qkd-lab does, with the ports it had (its listeners are
# pinned to them in kmed.conf: the simulator and lab.json name them), so that lab.json stays
# true except for the PID, which is updated (and kmed.pid).
kme_restart() {
  local n=$1 k=$2 sig=${3:-TERM} d=$T/$1/$2 pid l p np
  pid=$(cat "$d/kmed.pid")
  for l in etsi014 skip device admin; do
    p=$(sed -n "s/^$l=//p" "$d/ports")
    [ -n "$p" ] && [ "$p" != 0 ] && kme_set "$n" "$k" "listener $l" address "127.0.0.1:$p"
  done
  kill -"$sig" "$pid" 2>/dev/null
  # shellcheck disable=SC2016 # evaluated by wait_for
  wait_for '! pid_running "$pid"' 20 "$k (pid $pid) to exit" || fail "$k did not stop"
  mv "$d/ports" "$d/ports.old"
  "$BUILD/bin/qkd-kmed" -c "$d/kmed.conf" --port-file "$d/ports" >>"$d/kmed.out" 2>&1 </dev/null &
  np=$!
  disown "$np" # stopped by qkd-lab down (kmed.pid), not by this shell
  echo "$np" >"$d/kmed.pid"
  # shellcheck disable=SC2016 # evaluated by wait_for
  wait_for 'grep -q "^admin=" "$d/ports" 2>/dev/null' 20 "$k to listen again" ||
    { tail -5 "$d/kmed.log"; fail "$k did not start again"; }
  for l in etsi014 admin device; do
    [ "$(sed -n "s/^$l=//p" "$d/ports")" = "$(sed -n "s/^$l=//p" "$d/ports.old")" ] ||
      fail "$k came back on another $l port"
  done
  jq --arg k "$k" --argjson p "$np" '(.kmes[] | select(.id == $k) | .pid) = $p' \
    "$T/$n/lab.json" >"$T/$n/lab.json.new" || fail "lab.json: pid of $k"
  cat "$T/$n/lab.json.new" >"$T/$n/lab.json" && rm -f "$T/$n/lab.json.new"
}

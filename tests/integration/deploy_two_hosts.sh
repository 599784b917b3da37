#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): network namespaces with fixed addresses.
# deploy_two_hosts.sh - docs/deploy.md, step by step, on two hosts played by two network
# namespaces joined by a veth pair (host A 10.77.0.1/24, host B 10.77.0.2/24; the addresses
# exist only inside the namespaces this test creates). Needs root (skips otherwise).
#
# The steps are the doc's own: every ```sh block after a "<!-- deploy-step HOST NAME -->"
# comment is run, in the doc's order, in HOST's namespace, so the doc cannot drift from what
# works. The only change made to a block is where a host keeps its files: /etc/qkd and
# /var/lib/qkd-* become $T/HOST/etc/qkd and $T/HOST/var/lib/qkd-* (the namespaces share this
# machine's file system), and the copy to root@10.77.0.2:/etc/qkd becomes a copy to host B's
# folder. KEY_ID is passed from host A's key step to host B's, as the doc says.
# Proves: the certificates verify against the CA, for their purpose and with the SAN given;
# keys and PSKs are 0600; pki refuses to overwrite; an ETSI 014 key and a SKIP key taken at
# host A's KME are the same bytes at host B's; both KMEs answer /metrics. About 15 s.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DOC=$ROOT/docs/deploy.md
# shellcheck source=/dev/null
. "$ROOT/tests/lib/skip.sh"
# shellcheck source=/dev/null
. "$ROOT/tests/lib/wait.sh"
qk_need_root "network namespaces"
qk_need_bin "$BUILD/bin/qkd-lab" "$BUILD/bin/qkd-kmed" "$BUILD/bin/qkd-sim" "$BUILD/bin/qkd"
qk_need_cmd ip openssl curl scp timeout awk

T=$(mktemp -d /tmp/qk-deploy.XXXXXX)
declare -A NS=([A]=qkdep-a-$$ [B]=qkdep-b-$$) ADDR=([A]=10.77.0.1 [B]=10.77.0.2)
VETH=qkdep$$

fail() {
  echo "FAIL: $*"
  exit 1
}

cleanup() {
  local h p
  for h in A B; do
    ip netns list 2>/dev/null | grep -qw "${NS[$h]}" || continue
    for p in $(ip netns pids "${NS[$h]}" 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
  done
  for h in A B; do
    ip netns list 2>/dev/null | grep -qw "${NS[$h]}" || continue
    wait_for "[ -z \"\$(ip netns pids ${NS[$h]} 2>/dev/null)\" ]" 10 "host $h's processes to stop" >/dev/null
    for p in $(ip netns pids "${NS[$h]}" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "${NS[$h]}" 2>/dev/null
  done
  if [ "${QK_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# Two hosts: namespaces, a veth between them, lo up in both.
for h in A B; do
  ip netns add "${NS[$h]}" || fail "ip netns add ${NS[$h]}"
  mkdir -p "$T/$h/etc" "$T/$h/home" || fail "mkdir"
done
ip link add "${VETH}a" type veth peer name "${VETH}b" || fail "veth"
for h in A B; do
  v=${VETH}${h,,}
  ip link set "$v" netns "${NS[$h]}" || fail "veth to ${NS[$h]}"
  ip -n "${NS[$h]}" addr add "${ADDR[$h]}/24" dev "$v" || fail "address ${ADDR[$h]}"
  ip -n "${NS[$h]}" link set "$v" up || fail "link up"
  ip -n "${NS[$h]}" link set lo up || fail "lo up"
done
ip netns exec "${NS[A]}" ping -c1 -W2 "${ADDR[B]}" >/dev/null || fail "host A cannot reach host B"

# The doc's steps: $T/steps/NN-HOST-NAME.sh, in order.
mkdir "$T/steps" || fail "mkdir steps"
awk -v out="$T/steps" '
  /^<!-- deploy-step / { if (NF != 5 || $3 !~ /^[AB]$/) { print "bad marker: " $0; bad = 1; exit }
                         n++; name = sprintf("%s/%02d-%s-%s.sh", out, n, $3, $4); want = 1; next }
  want && /^```sh$/ { inblk = 1; want = 0; next }
  want && !/^$/ { print "marker not followed by a sh block: " name; bad = 1; exit }
  inblk && /^```$/ { inblk = 0; close(name); next }
  inblk { print > name }
  END { exit bad }' "$DOC" || fail "cannot read the steps of $DOC"
for s in A-pki A-copy A-verify B-verify A-master-key B-master-key A-kmed-conf B-kmed-conf \
  A-start-kmed B-start-kmed A-sim A-pool B-pool A-etsi-enc B-etsi-dec A-skip-key \
  B-skip-key-by-id A-metrics B-metrics; do
  compgen -G "$T/steps/[0-9][0-9]-$s.sh" >/dev/null || fail "docs/deploy.md has no step $s"
done

# Run one step file in its host's namespace; its output in FILE.out.
run_step() { # FILE
  local f=$1 b h
  b=$(basename "$f" .sh)
  h=${b:3:1}
  sed -e 's#root@10\.77\.0\.2:/etc/qkd#@@B_ETC@@#g' -e "s#/etc/qkd#$T/$h/etc/qkd#g" \
    -e "s#/var/lib/qkd#$T/$h/var/lib/qkd#g" -e "s#@@B_ETC@@#$T/B/etc/qkd#g" "$f" >"$f.run" ||
    fail "rewrite $b"
  echo "== step $b (host $h)"
  (cd "$T/$h/home" && ip netns exec "${NS[$h]}" env PATH="$BUILD/bin:$PATH" KEY_ID="${KEY_ID:-}" \
    timeout 30 bash -e "$f.run") >"$f.out" 2>&1 || {
    cat "$f.out"
    for l in "$T"/*/var/lib/qkd-*/*.log; do [ -f "$l" ] && { echo "-- $l"; tail -15 "$l"; }; done
    fail "step $b of docs/deploy.md failed"
  }
}

out() { cat "$T"/steps/[0-9][0-9]-"$1".sh.out; }

for f in "$T"/steps/[0-9][0-9]-*.sh; do
  run_step "$f"
  case $(basename "$f" .sh) in
  *-A-etsi-enc | *-A-skip-key)
    read -r KEY_ID KEY_AT_A <"$f.out" || fail "no key in $(basename "$f")"
    [ -n "$KEY_AT_A" ] || fail "no key bytes in $(basename "$f")"
    ;;
  *-B-etsi-dec | *-B-skip-key-by-id)
    read -r id key <"$f.out" || fail "no key in $(basename "$f")"
    if [ "$id" != "$KEY_ID" ] || [ "$key" != "$KEY_AT_A" ]; then
      fail "$(basename "$f"): host B's key $id differs from host A's $KEY_ID"
    fi
    echo "   same key at both hosts: $KEY_ID (${#key} characters)"
    KEY_ID=
    ;;
  esac
done

# Certificates: against the CA, for their purpose, with the SAN given.
PKI=$T/A/home/qkd-pki
for h in A B; do
  e=$PKI/KME_$h
  openssl verify -CAfile "$PKI/ca.crt" -purpose sslserver -verify_ip "${ADDR[$h]}" "$e/server.crt" >/dev/null ||
    fail "KME_$h's server certificate does not verify for ${ADDR[$h]}"
  openssl verify -CAfile "$PKI/ca.crt" -purpose sslserver -verify_hostname "kme-${h,,}.example.net" \
    "$e/server.crt" >/dev/null || fail "KME_$h's server certificate lacks its DNS name"
  o=B; [ "$h" = B ] && o=A
  if openssl verify -CAfile "$PKI/ca.crt" -verify_ip "${ADDR[$o]}" "$e/server.crt" >/dev/null 2>&1; then
    fail "KME_$h's server certificate also verifies for host $o's address"
  fi
  openssl verify -CAfile "$PKI/ca.crt" -purpose sslclient "$e/peer.crt" "$e/sae-SAE_${h}1.crt" >/dev/null ||
    fail "KME_$h's client certificates"
  [ "$(openssl x509 -in "$e/peer.crt" -noout -subject -nameopt RFC2253)" = "subject=CN=KME_$h" ] ||
    fail "KME_$h's peer certificate CN"
  out "$h-verify" | grep -q "IP Address:${ADDR[$h]}" || fail "host $h's verify step shows no SAN ${ADDR[$h]}"
  cmp -s "$PKI/ca.crt" "$T/$h/etc/qkd/ca.crt" || fail "host $h's CA copy differs"
done
openssl verify -CAfile "$PKI/ca.crt" -purpose sslclient "$PKI/device/device.crt" >/dev/null ||
  fail "device certificate"
echo "   certificates verify against the CA, for their purpose and SAN"
bad=$(find "$T/A/home/qkd-pki" "$T/A/etc/qkd" "$T/B/etc/qkd" \( -name '*.key' -o -name '*.psk' \) ! -perm 0600)
[ -z "$bad" ] || fail "keys or PSKs not mode 0600: $bad"
grep -q '^SKIP_A1:[0-9a-f]\{64\}:sha384$' "$T/A/etc/qkd/skip.psk" || fail "host A's skip.psk line"

# pki refuses to overwrite: the doc's own pki step again fails and changes nothing.
before=$(sha256sum "$PKI/ca.key" "$PKI/KME_A/server.key" "$PKI/KME_B/skip.psk")
if (cd "$T/A/home" && PATH="$BUILD/bin:$PATH" bash -e "$T"/steps/[0-9][0-9]-A-pki.sh) >"$T/again.out" 2>&1; then
  fail "qkd-lab pki overwrote an existing folder"
fi
grep -q "exist.*nothing written" "$T/again.out" || { cat "$T/again.out"; fail "no refusal message"; }
[ "$before" = "$(sha256sum "$PKI/ca.key" "$PKI/KME_A/server.key" "$PKI/KME_B/skip.psk")" ] ||
  fail "the refused pki run changed files"

# The command line: help on stdout, usage errors exit 2, --force replaces, --psk-hash.
LAB=$BUILD/bin/qkd-lab
"$LAB" pki --help | grep -q -- '--skip-client ID@KME' || fail "qkd-lab pki --help"
for bad in "--dir $T/x" "--dir $T/x --kme KME_A=bad_name!" "--dir $T/x --kme device=10.0.0.1" \
  "--dir $T/x --kme KME_A=10.0.0.1 --sae S@KME_Q" "--dir $T/x --kme KME_A=10.0.0.1 --psk-hash md5"; do
  # shellcheck disable=SC2086 # the words of $bad are the arguments
  "$LAB" pki $bad >/dev/null 2>&1
  rc=$?
  [ "$rc" = 2 ] || fail "qkd-lab pki $bad: exit $rc, want 2"
done
[ ! -e "$T/x/ca.key" ] || fail "a refused command line wrote files"
"$LAB" pki --dir "$PKI" --kme KME_A=10.77.0.1 --skip-client S1@KME_A --psk-hash sha256 --force >/dev/null ||
  fail "qkd-lab pki --force"
[ "$before" != "$(sha256sum "$PKI/ca.key" "$PKI/KME_A/server.key" "$PKI/KME_B/skip.psk")" ] ||
  fail "--force did not replace the CA"
grep -q '^S1:[0-9a-f]\{64\}:sha256$' "$PKI/KME_A/skip.psk" || fail "--psk-hash sha256"
echo "   pki: --help, usage errors (2), refusal, --force, --psk-hash"

# Metrics at both hosts: the link's pool and the requests each listener served.
for h in A B; do
  m=$(out "$h-metrics")
  grep -q '^qkd_pool_bytes{link="KME_A~KME_B"}' <<<"$m" || fail "host $h: no pool metric"
  grep -q '^qkd_link_up{link="KME_A~KME_B"} 1' <<<"$m" || fail "host $h: link not up"
  for l in etsi014 skip; do
    grep -q "^qkd_requests_total{listener=\"$l\",status=\"200\"} [1-9]" <<<"$m" ||
      fail "host $h: no 200 on the $l listener in /metrics"
  done
done

n=$(find "$T/steps" -name '*.sh' | wc -l)
echo "deploy_two_hosts: ok (docs/deploy.md on two namespaces: $n steps)"

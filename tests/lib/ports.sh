# shellcheck shell=bash
# ports.sh - fixed loopback ports for tests that must know a port before the daemon binds it
# (each KME's config names its peer's port). Ports are drawn below the kernel's ephemeral range
# (net.ipv4.ip_local_port_range), so that no client connection's source port can take one
# between the pick and the bind.
# Suites run side by side (tests/run-integration, QK_JOBS) each get a slot, QK_PORT_SLOT of
# QK_PORT_SLOTS, and draw only from their own share of that range: two suites never pick the same
# port between one's pick and its bind. qkd-lab draws its peer ports from QKD_LAB_PORTS (lab.sh
# sets it to this share).
#   free_port [AVOID...]   prints a port nobody listens on, not in AVOID; returns 1 if none found
# port_range: "LO HI", the share of the test port range this suite draws from.
port_range() {
  local lo=10000 hi=32767 eph_lo slot=${QK_PORT_SLOT:-0} slots=${QK_PORT_SLOTS:-1} width
  eph_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
  if [ -n "$eph_lo" ] && [ "$eph_lo" -gt $((lo + 1000)) ]; then hi=$((eph_lo - 1)); fi
  if [ "$slots" -gt 1 ] && [ "$slot" -lt "$slots" ]; then
    width=$(( (hi - lo + 1) / slots ))
    lo=$(( lo + slot * width )); hi=$(( lo + width - 1 ))
  fi
  echo "$lo $hi"
}

free_port() {
  local lo hi p
  read -r lo hi < <(port_range)
  for _ in $(seq 1 100); do
    p=$(( lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1) ))
    case " $* " in *" $p "*) continue ;; esac
    # nothing listening there (a connect is refused)
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

#!/usr/bin/env bash
# service_notify.sh - the service manager's notification protocol (sd_notify(3), as systemd runs
# a Type=notify unit: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID) spoken by qkd-kmed and
# qkd-sim, against a fake NOTIFY_SOCKET: a python3 unix datagram listener that logs each message
# with the sender's PID (SCM_CREDENTIALS, unix(7)) and, when READY=1 arrives, tries the sender's
# admin or control port from its port file.
#   1. KME_A (WATCHDOG_USEC=300000): one READY=1 whose STATUS= names every bound listener's port
#      (the port file's: so it was sent once all were bound), and they accept; WATCHDOG=1 keeps
#      coming (every 150 ms); SIGTERM: STOPPING=1 as its last message, exit 0.
#   2. KME_B (WATCHDOG_PID of another process): READY=1, never WATCHDOG=1 (not its watchdog).
#   3. qkd-sim run on the pair's link: READY=1 with STATUS= naming its control port, which
#      accepts; no WATCHDOG=1 without WATCHDOG_USEC; STOPPING=1 on SIGTERM, exit 0.
#   4. Without NOTIFY_SOCKET (every other suite) nothing changes: covered by the pair itself.
# shellcheck disable=SC2016 # wait_for conditions and bash -c scripts are single-quoted on purpose
set -u
# shellcheck source=../lib/etsi_pair.sh
. "$(dirname "$0")/../lib/etsi_pair.sh"
# shellcheck source=../lib/wait.sh
. "$ROOT/tests/lib/wait.sh"
SIM=$BUILD/bin/qkd-sim
qk_need_bin "$SIM"
qk_need_cmd python3

pair_init
SOCK=$T/notify.sock
LOG=$T/notify.log
: >"$LOG"
# One line per datagram: "PID MESSAGE" (newlines of the message as "|"); after READY=1 a line
# "PID probe=ok|refused|no-port-file" from a TCP connect to the port named in $T/probe.PID.
python3 - "$SOCK" "$LOG" "$T" <<'EOF' &
import os, socket, struct, sys
path, log, tdir = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(path)
creds = struct.calcsize("3i")
with open(log, "a", buffering=1) as out:
    while True:
        data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(creds))
        pid = -1
        for level, kind, val in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", val[:creds])[0]
        msg = data.decode(errors="replace")
        out.write("%d %s\n" % (pid, msg.replace("\n", "|")))
        if "READY=1" in msg.split("\n"):
            probe = "no-port-file"
            try:
                with open(os.path.join(tdir, "probe.%d" % pid)) as f:
                    pfile, key = f.read().split()
                port = None
                with open(pfile) as f:
                    for line in f:
                        k, _, v = line.strip().partition("=")
                        if k == key:
                            port = int(v)
                if port is not None:
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()
                    probe = "ok"
            except ConnectionRefusedError:
                probe = "refused"
            except OSError:
                pass
            out.write("%d probe=%s\n" % (pid, probe))
EOF
PID[notify]=$!
wait_for '[ -S "$SOCK" ]' 10 "the fake NOTIFY_SOCKET" || fail "no notify socket"

msgs() { sed -n "s/^$1 //p" "$LOG"; }                                        # PID
count() { msgs "$1" | grep -cx "$2"; }                                         # PID LINE

# The port file and listener the probe tries, by PID; etsi_pair's pair_start waits for the port
# file, so the daemon is started here by hand with the same command line.
start_kme() { # A|B ENV...
  local s=$1 mk
  shift
  [ "$s" = A ] && mk=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff ||
    mk=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100
  rm -f "$T/ports_$s"
  env NOTIFY_SOCKET="$SOCK" QKD_KMED_MASTER_KEY=$mk "$@" \
    bash -c 'echo "$1 admin" >"$2/probe.$$" && exec "$3" -c "$4" --port-file "$1"' _ \
    "$T/ports_$s" "$T" "$KMED" "$T/kme_$s.conf" >>"$T/kme_$s.out" 2>&1 &
  PID[$s]=$!
}
read_ports() { # A|B: the ports of a KME, from its port file
  local l v
  while IFS='=' read -r l v; do PORT[$1.$l]=$v; done <"$T/ports_$1"
}

# ---- 1. KME_A with a watchdog -----------------------------------------------------------------
start_kme A WATCHDOG_USEC=300000
a=${PID[A]}
ready() { msgs "$1" | grep '^READY=1'; } # PID
# SIGTERM to PID (our child, PID[KEY]): it must exit 0 after exactly one STOPPING=1.
term_stopping() { # PID KEY NAME
  local rc
  kill -TERM "$1"
  wait "$1"
  rc=$?
  PID[$2]=
  [ "$rc" = 0 ] || fail "$3 exit $rc after SIGTERM"
  [ "$(count "$1" STOPPING=1)" = 1 ] || fail "$3: $(count "$1" STOPPING=1) STOPPING=1"
}
wait_for '[ -n "$(ready "$a")" ]' 20 "READY=1 from KME_A" || { cat "$LOG"; fail "KME_A sent no READY=1"; }
wait_for 'msgs "$a" | grep -q "^probe="' 10 "the probe" || fail "no probe"
want="READY=1|STATUS=serving $(tr '\n' ' ' <"$T/ports_A")"
[ "$(ready "$a")" = "$want" ] || fail "KME_A: '$(ready "$a")', not '$want'"
[ "$(msgs "$a" | grep '^probe=')" = probe=ok ] || fail "at READY=1 KME_A's admin listener: $(msgs "$a" | grep '^probe=')"
ok "KME_A: $(ready "$a") (its port file's ports; admin accepts)"
wait_for '[ "$(count "$a" WATCHDOG=1)" -ge 4 ]' 10 "4 x WATCHDOG=1 from KME_A" || fail "KME_A: $(count "$a" WATCHDOG=1) WATCHDOG=1"
grep -q 'systemd watchdog: WATCHDOG=1 every 150 ms' "$T/kme_A.log" || fail "KME_A did not log its watchdog period"
ok "KME_A: WATCHDOG=1 every 150 ms ($(count "$a" WATCHDOG=1) so far)"

# ---- 2. KME_B: WATCHDOG_PID names another process --------------------------------------------
start_kme B WATCHDOG_USEC=300000 WATCHDOG_PID=1
b=${PID[B]}
wait_for '[ -n "$(ready "$b")" ]' 20 "READY=1 from KME_B" || fail "KME_B sent no READY=1"
# KME_A's pings keep coming meanwhile: KME_B would have sent two in the same time.
n=$(count "$a" WATCHDOG=1)
wait_for '[ "$(count "$a" WATCHDOG=1)" -ge $((n + 3)) ]' 10 "3 more pings from KME_A" || fail "KME_A stopped pinging"
[ "$(count "$b" WATCHDOG=1)" = 0 ] || fail "KME_B sent WATCHDOG=1 for WATCHDOG_PID=1"
read_ports A
read_ports B
ok "KME_B: READY=1, no WATCHDOG=1 (WATCHDOG_PID is not its PID)"

# ---- 3. qkd-sim on the pair's link ------------------------------------------------------------
cat >"$T/sim.conf" <<EOC
[sim]
control = 127.0.0.1:0
log_file = $T/sim.log

[device]
ca = $(crt ca)
cert = $(crt qkd-sim)
key = $(key qkd-sim)

[link $LINK]
kme_a_url = $(device_url A)
kme_b_url = $(device_url B)
distance = 25
time_scale = 100
EOC
env NOTIFY_SOCKET="$SOCK" bash -c 'echo "$1 control" >"$2/probe.$$" && exec "$3" run --port-file "$1" "$4"' _ \
  "$T/sim.ports" "$T" "$SIM" "$T/sim.conf" >"$T/sim.out" 2>&1 &
PID[sim]=$!
sp=${PID[sim]}
wait_for '[ -n "$(ready "$sp")" ]' 20 "READY=1 from qkd-sim" || { cat "$T/sim.out"; fail "qkd-sim sent no READY=1"; }
wait_for 'msgs "$sp" | grep -q "^probe="' 10 "the probe" || fail "no probe"
want="READY=1|STATUS=running $(cat "$T/sim.ports")"
[ "$(ready "$sp")" = "$want" ] || fail "qkd-sim: '$(ready "$sp")', not '$want'"
[ "$(msgs "$sp" | grep '^probe=')" = probe=ok ] || fail "at READY=1 the control API: $(msgs "$sp" | grep '^probe=')"
[ "$(count "$sp" WATCHDOG=1)" = 0 ] || fail "qkd-sim pinged without WATCHDOG_USEC"
term_stopping "$sp" sim qkd-sim
ok "qkd-sim: $(ready "$sp") (accepting); STOPPING=1 on SIGTERM, exit 0"

# ---- 1 (end). KME_A stops ---------------------------------------------------------------------
term_stopping "$a" A KME_A
# STOPPING=1 comes after READY=1, and no ping follows it.
last=$(msgs "$a" | grep -v '^probe=' | tail -n 1)
[ "$last" = STOPPING=1 ] || fail "KME_A: last message '$last', not STOPPING=1"
ok "KME_A: STOPPING=1 on SIGTERM (its last message), exit 0"
echo "service_notify: all checks passed"

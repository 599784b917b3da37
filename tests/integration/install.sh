#!/usr/bin/env bash
# install.sh - `make install DESTDIR=$T/root PREFIX=/usr` into a temporary root, then use what it
# installed as an outside user would (docs/service.md):
#   1. the files: binaries, libqkdclient.so.VERSION with its soname links (soname
#      libqkdclient.so.0, only qkc_* exported), libqkdclient.a, qkdclient.h (compiles alone),
#      qkdclient.pc, the units, sysusers.d, example configs and programs;
#   2. the installed example program docs/examples/lab_key_pair.c built with
#      `pkg-config --cflags --libs qkdclient` (PKG_CONFIG_SYSROOT_DIR/PKG_CONFIG_PATH into the
#      root), shared and static, each run against a qkd-lab lab: the same key at both ends;
#   3. the units: the keys a Type=notify service needs, ExecStart/ExecStartPre binaries present
#      in the root, config paths named like the installed examples; where systemd is installed,
#      `systemd-analyze verify` (the binaries' paths pointed into the root) prints nothing;
#   4. the example configs, their /etc/qkd and /var/lib paths moved into $T and the credentials
#      written by `qkd-lab pki`, pass each binary's own check (qkd-kmed --check-config,
#      qkd-sim run --check, qkd-bridge check-config); a broken copy of each is refused.
set -u
BUILD_ARG=${BUILD:-build}
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
qk_need_cmd make cc pkg-config readelf nm

R=$T/root
# The inner make must not inherit the outer make's jobserver (make check runs this suite); the
# sanitizer build (the Makefile's build-san) gets SAN=1, so that a binary it relinks keeps its
# flags (the library itself is never sanitized).
unset MAKEFLAGS MFLAGS MAKELEVEL
san=0
[ "$(basename "$BUILD_ARG")" = build-san ] && san=1
make -C "$ROOT" BUILD="$BUILD_ARG" SAN=$san install DESTDIR="$R" PREFIX=/usr >"$T/install.log" 2>&1 ||
  { tail -n 20 "$T/install.log"; fail "make install"; }
ok "make install DESTDIR=$R PREFIX=/usr"

# ---- 1. files ------------------------------------------------------------------------------
L=$R/usr/lib
DOC=$R/usr/share/doc/qkd-kms
for f in usr/bin/qkd-kmed usr/bin/qkd-sim usr/bin/qkd-lab usr/bin/qkd usr/bin/qkd-bridge \
  usr/include/qkdclient.h usr/lib/libqkdclient.a usr/lib/pkgconfig/qkdclient.pc \
  usr/lib/systemd/system/qkd-kmed.service usr/lib/systemd/system/qkd-sim.service \
  usr/lib/systemd/system/qkd-bridge.service usr/lib/sysusers.d/qkd-kms.conf \
  usr/share/doc/qkd-kms/examples/kmed.conf.example usr/share/doc/qkd-kms/examples/sim.conf.example \
  usr/share/doc/qkd-kms/examples/bridge.conf.example usr/share/doc/qkd-kms/examples/lab_key_pair.c \
  usr/share/man/man1/qkd.1; do
  [ -f "$R/$f" ] || fail "not installed: /$f"
done
[ "$(readlink "$L/libqkdclient.so")" = libqkdclient.so.0 ] || fail "libqkdclient.so -> $(readlink "$L/libqkdclient.so")"
real=$(readlink "$L/libqkdclient.so.0")
case $real in libqkdclient.so.0.*) ;; *) fail "libqkdclient.so.0 -> $real" ;; esac
[ -f "$L/$real" ] || fail "no $real"
soname=$(readelf -d "$L/$real" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libqkdclient.so.0 ] || fail "soname '$soname'"
others=$(nm -D --defined-only "$L/$real" | awk '$2 != "A" && $3 !~ /^qkc_/ { print $3 }' | head -5)
[ -z "$others" ] || fail "libqkdclient.so exports more than qkc_*: $others"
nm -D --defined-only "$L/$real" | grep -Eq ' qkc_etsi_get_keys(@@QKDCLIENT_0)?$' || fail "qkc_etsi_get_keys not exported"
ok "files installed; $real soname $soname, only qkc_* exported"

export PKG_CONFIG_SYSROOT_DIR=$R PKG_CONFIG_PATH=$L/pkgconfig
pc_ver=$(pkg-config --modversion qkdclient) || fail "pkg-config cannot find qkdclient"
{ cflags=$(pkg-config --cflags qkdclient) && libs=$(pkg-config --libs qkdclient); } || fail "pkg-config qkdclient"
case " $libs " in *" -L$L "*) ;; *) fail "pkg-config --libs does not point into the root: $libs" ;; esac
# The public header needs nothing but itself (no internal header of common/ or client/).
grep -q '#include "' "$R/usr/include/qkdclient.h" && fail "qkdclient.h includes a project header"
# shellcheck disable=SC2086 # word splitting of pkg-config output is intended
printf '#include <qkdclient.h>\nint main(void) { return qkc_global_init(); }\n' |
  cc -std=c11 -Wall -Wextra -Werror $cflags -x c -c -o "$T/hdr.o" - || fail "qkdclient.h does not compile on its own"
ok "pkg-config qkdclient $pc_ver: $cflags $libs; the header compiles alone"

# ---- 2. the example, built against the installed copy, run against a lab ------------------
SRC=$DOC/examples/lab_key_pair.c
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror "$SRC" $cflags $libs -o "$T/pair_shared" 2>"$T/cc.log" ||
  { cat "$T/cc.log"; fail "build against the shared library"; }
LD_LIBRARY_PATH=$L ldd "$T/pair_shared" | grep -q "libqkdclient.so.0 => $L/libqkdclient.so.0" ||
  fail "pair_shared does not load the installed libqkdclient.so.0"
static_libs=$(pkg-config --static --libs qkdclient) || fail "pkg-config --static"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror "$SRC" $cflags "$L/libqkdclient.a" ${static_libs//-lqkdclient/} \
  -o "$T/pair_static" 2>"$T/cc.log" || { cat "$T/cc.log"; fail "build against the static library"; }
readelf -d "$T/pair_static" | grep -q libqkdclient && fail "pair_static needs libqkdclient.so"
help=$(LD_LIBRARY_PATH=$L "$T/pair_shared" --help) || fail "lab_key_pair --help: not 0"
case $help in usage:*) ;; *) fail "lab_key_pair --help: $help" ;; esac
ok "lab_key_pair built with pkg-config against the installed shared and static library"

lab_up lab
for b in pair_shared pair_static; do
  out=$(LD_LIBRARY_PATH=$L "$T/$b" "$T/lab" KME_A SAE_A1 KME_B SAE_B1 2>&1) || fail "$b against the lab: $out"
  case $out in *"the same at both ends"*) ;; *) fail "$b: $out" ;; esac
  ok "$b: $out"
done

# ---- 3. units ---------------------------------------------------------------------------------
U=$R/usr/lib/systemd/system
unit_key() { sed -n "s/^$2=//p" "$U/$1" | head -n 1; } # UNIT KEY: its first value
for u in qkd-kmed qkd-sim qkd-bridge; do
  f=$u.service
  [ "$(unit_key "$f" Type)" = notify ] || fail "$f: Type=$(unit_key "$f" Type)"
  [ -n "$(unit_key "$f" WatchdogSec)" ] || fail "$f: no WatchdogSec"
  [ "$(unit_key "$f" StateDirectory)" = "$u" ] || fail "$f: StateDirectory=$(unit_key "$f" StateDirectory)"
  [ "$(unit_key "$f" WantedBy)" = multi-user.target ] || fail "$f: WantedBy"
  grep -q '@[A-Z]*@' "$U/$f" && fail "$f: a placeholder left: $(grep -o '@[A-Z]*@' "$U/$f" | head -1)"
  for k in ExecStart ExecStartPre; do
    # shellcheck disable=SC2046 # the command line, split into words
    set -- $(unit_key "$f" "$k")
    [ -x "$R$1" ] || fail "$f: $k binary $1 not installed"
    conf=${*: -1}
    [ -f "$DOC/examples/$(basename "$conf").example" ] || fail "$f: $k config $conf has no installed example"
  done
  sed "s#=/usr/bin/#=$R/usr/bin/#" "$U/$f" >"$T/$f"
done
ok "units: Type=notify, WatchdogSec, StateDirectory, WantedBy, binaries and example configs"
# systemd-analyze comes with systemd (scripts/install-deps installs it): every directive and
# value is checked (it warns and exits 0: any output fails).
qk_need_cmd systemd-analyze
(cd "$T" && systemd-analyze verify --man=no qkd-kmed.service qkd-sim.service qkd-bridge.service) \
  >"$T/verify.log" 2>&1 || { cat "$T/verify.log"; fail "systemd-analyze verify"; }
[ -s "$T/verify.log" ] && { cat "$T/verify.log"; fail "systemd-analyze verify complained"; }
ok "systemd-analyze verify: no complaint"

# ---- 4. example configs ---------------------------------------------------------------------
E=$T/etc/qkd
"$LAB" pki --dir "$T/pki" --kme KME_A=kme-a.example --kme KME_B=kme-b.example \
  --sae SAE_A1@KME_A --sae SAE_B1@KME_B --skip-client enc-a1@KME_A >"$T/pki.log" 2>&1 ||
  { cat "$T/pki.log"; fail "qkd-lab pki"; }
{ mkdir -p "$E" "$T/var/lib/qkd-kmed" "$T/var/lib/qkd-sim" && cp -a "$T/pki/KME_A/." "$T/pki/device/." "$E/"; } ||
  fail "credentials"
(umask 077 && head -c 32 /dev/urandom >"$E/master.key" && echo "gw1-bridge:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$E/bridge.psk" &&
  head -c 32 /dev/urandom | base64 >"$E/ike.psk") || fail "secrets"
check() { # NAME CONF: the binary's own config check
  case $1 in
    kmed) "$R/usr/bin/qkd-kmed" --check-config "$2" ;;
    sim) "$R/usr/bin/qkd-sim" run --check "$2" ;;
    bridge) "$R/usr/bin/qkd-bridge" check-config -c "$2" ;;
  esac
}
for c in kmed sim bridge; do
  sed -e "s#/etc/qkd/#$E/#g" -e "s#/var/lib/#$T/var/lib/#g" "$DOC/examples/$c.conf.example" >"$E/$c.conf"
  grep -q '= */etc/\|= */var/' "$E/$c.conf" && fail "$c.conf.example: a path outside /etc/qkd or /var/lib"
  out=$(check "$c" "$E/$c.conf" 2>&1) || fail "$c.conf.example refused: $out"
  # The check is real: an unknown key in the first section is refused.
  sed '0,/^\[/s/^\(\[[^]]*\]\)$/\1\nno_such_key = 1/' "$E/$c.conf" >"$E/bad-$c.conf"
  bad=$(check "$c" "$E/bad-$c.conf" 2>&1) && fail "$c: a config with an unknown key passed: $bad"
  ok "$c.conf.example: $out; a broken copy refused: $bad"
done
echo "install: all checks passed"

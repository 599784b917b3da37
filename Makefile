# qkd-kms top-level Makefile (GNU make, pkg-config).
#   make               build every binary into build/bin/
#   make check         build and run all tests, then the same under ASan+UBSan (build-san/)
#   make check-fast    unit + integration tests, normal build only
#   make run           start the lab (two KMEs on loopback)
#   make bench         benchmark matrix against a lab and nginx (bench/README.md)
#   make format        clang-format every C file in place
#   make install PREFIX=/usr/local
#   make clean
# Variables: SAN=1 builds the sanitizer variant into build-san/.

SHELL := /bin/bash
# The one version of every binary (`PROG --version`, common/version.h).
VERSION := 0.1.0
PREFIX ?= /usr/local
CC ?= cc
QK_SLOW ?= 0
# 1: a test skipped for a reason other than not-root or SLOW fails (tests/README.md, "Skips").
QK_STRICT_SKIPS ?= 0
# Integration suites run this many at a time (tests/run-integration; EXCLUSIVE ones alone).
QK_JOBS ?= 1
PKGS := openssl libsodium sqlite3 libcjson cunit libcurl inih libsystemd

ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1 -g
else
BUILD ?= build
SANFLAGS :=
OPT := -O2 -g
endif

# The Makefile never installs anything: scripts/install-deps is the one place (the README's two
# commands run it first). Without the packages, pkg-config fails here with a clear message.
ifeq ($(filter clean format format-check,$(MAKECMDGOALS)),)
ifneq ($(shell pkg-config --exists $(PKGS) && echo yes),yes)
$(error missing build dependencies ($(PKGS)): run scripts/install-deps as root)
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS ?= $(OPT)
WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter
VERSION_DEF := -DQKD_VERSION='"$(VERSION)"'
override CFLAGS += -std=c11 -D_GNU_SOURCE -pthread $(WARN) $(SANFLAGS) -MMD -MP $(PKG_CFLAGS) \
	$(VERSION_DEF)

# ---- layering --------------------------------------------------------------------------------
# Each folder sees only the headers of the folders it may call (its README says so), so a
# lower layer cannot include a higher one: common <- kms (core, store) <- the trust zones
# (etsi014, skip-server, peer, device, admin) <- kmed (the daemon's wiring, the only place that
# knows every zone). The tools stand beside the daemon: sim, client, bridge, bench.
ZONES := etsi014 skip-server peer device admin
INC_common := -Icommon
INC_kms := $(INC_common) -Ikms
$(foreach z,$(ZONES),$(eval INC_$(z) := $(INC_kms) -I$(z)))
INC_kmed := $(INC_kms) $(addprefix -I,$(ZONES)) -Ikmed
INC_sim := $(INC_common) -Isim
INC_client := $(INC_common) -Iclient
INC_ikev2-bridge := $(INC_client) -Iikev2-bridge
INC_dashboard := $(INC_client) -Idashboard
INC_bench := $(INC_kms) -Iclient -Ibench
INC_docs := $(INC_client)
INC_tests := $(INC_kmed) -Isim -Iclient -Iikev2-bridge -Ibench -Idashboard -Itests/unit
# The include flags of a source file: those of its top folder.
inc = $(INC_$(firstword $(subst /, ,$(1))))
override LDFLAGS += -pthread $(SANFLAGS)
LDLIBS := $(PKG_LIBS) -lm

# ---- sources ---------------------------------------------------------------
COMMON_SRC := $(wildcard common/*.c)
KMS_SRC := $(wildcard kms/*.c)
API_SRC := $(foreach z,$(ZONES),$(wildcard $(z)/*.c))
KMED_SRC := $(wildcard kmed/*.c)
# Binaries: each has one main file; everything else in its folder is its library.
MAINS := kmed/main.c sim/sim_main.c sim/lab_main.c client/cli_main.c ikev2-bridge/bridge_main.c \
	bench/bench_main.c dashboard/dash_main.c
SIM_SRC := $(filter-out $(MAINS),$(wildcard sim/*.c))
CLIENT_SRC := $(filter-out $(MAINS),$(wildcard client/*.c))
BRIDGE_SRC := $(filter-out $(MAINS),$(wildcard ikev2-bridge/*.c))
BENCH_SRC := $(filter-out $(MAINS),$(wildcard bench/*.c))
DASH_SRC := $(filter-out $(MAINS),$(wildcard dashboard/*.c))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCOMMON := $(BUILD)/lib/libqkdcommon.a
LIBKMS := $(BUILD)/lib/libqkdkms.a
LIBAPI := $(BUILD)/lib/libqkdapi.a
LIBKMED := $(BUILD)/lib/libqkdkmed.a
LIBSIM := $(BUILD)/lib/libqkdsim.a
LIBCLIENT := $(BUILD)/lib/libqkdclient.a
LIBBRIDGE := $(BUILD)/lib/libqkdbridge.a
LIBBENCH := $(BUILD)/lib/libqkdbench.a
LIBDASH := $(BUILD)/lib/libqkddash.a
# A binary is built when its main file exists.
BINS := $(BUILD)/bin/qkd-kmed \
	$(if $(wildcard sim/sim_main.c),$(BUILD)/bin/qkd-sim) \
	$(if $(wildcard sim/lab_main.c),$(BUILD)/bin/qkd-lab) \
	$(if $(wildcard client/cli_main.c),$(BUILD)/bin/qkd) \
	$(if $(wildcard ikev2-bridge/bridge_main.c),$(BUILD)/bin/qkd-bridge) \
	$(if $(wildcard bench/bench_main.c),$(BUILD)/bin/qkd-bench) \
	$(if $(wildcard dashboard/dash_main.c),$(BUILD)/bin/qkd-dash)
ALL_LIBS := $(LIBKMED) $(LIBAPI) $(LIBKMS) $(LIBSIM) $(LIBDASH) $(LIBCLIENT) $(LIBBRIDGE) $(LIBBENCH) $(LIBCOMMON)
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(TOOL_SRC))
UNIT := $(BUILD)/tests/unit-tests

.PHONY: all check check-fast check-san unit integration run install clean format format-check
all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call inc,$<) -c $< -o $@

# The one object that prints the version is rebuilt when the Makefile (VERSION) changes.
$(BUILD)/obj/common/qk_cli.o: Makefile

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBKMS): $(call obj,$(KMS_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBAPI): $(call obj,$(API_SRC)) $(BUILD)/obj/common/qk_err.o
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# Every library archive always holds qk_err.o so that an empty folder still makes a valid archive.
$(LIBKMED): $(call obj,$(filter-out $(MAINS),$(KMED_SRC))) $(BUILD)/obj/common/qk_err.o
$(LIBSIM): $(call obj,$(SIM_SRC)) $(BUILD)/obj/common/qk_err.o
$(LIBCLIENT): $(call obj,$(CLIENT_SRC)) $(BUILD)/obj/common/qk_err.o
$(LIBBRIDGE): $(call obj,$(BRIDGE_SRC)) $(BUILD)/obj/common/qk_err.o
$(LIBBENCH): $(call obj,$(BENCH_SRC)) $(BUILD)/obj/common/qk_err.o
# qkd-dash's page (dashboard/www/) is compiled in: embed.sh turns each file into a byte array.
DASH_WWW := $(sort $(wildcard dashboard/www/*))
$(BUILD)/gen/dash_www.c: $(DASH_WWW) dashboard/embed.sh
	@mkdir -p $(dir $@)
	sh dashboard/embed.sh $@ $(DASH_WWW)
$(BUILD)/obj/gen/dash_www.o: $(BUILD)/gen/dash_www.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INC_dashboard) -c $< -o $@
$(LIBDASH): $(call obj,$(DASH_SRC)) $(BUILD)/obj/gen/dash_www.o
$(LIBKMED) $(LIBSIM) $(LIBCLIENT) $(LIBBRIDGE) $(LIBBENCH) $(LIBDASH):
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/qkd-kmed: $(call obj,kmed/main.c) $(LIBKMED) $(LIBAPI) $(LIBKMS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/qkd-sim: $(call obj,sim/sim_main.c) $(LIBSIM) $(LIBCOMMON)
$(BUILD)/bin/qkd-lab: $(call obj,sim/lab_main.c) $(LIBSIM) $(LIBCOMMON)
$(BUILD)/bin/qkd: $(call obj,client/cli_main.c) $(LIBCLIENT) $(LIBCOMMON)
$(BUILD)/bin/qkd-bridge: $(call obj,ikev2-bridge/bridge_main.c) $(LIBBRIDGE) $(LIBCLIENT) $(LIBCOMMON)
$(BUILD)/bin/qkd-bench: $(call obj,bench/bench_main.c) $(LIBBENCH) $(LIBKMS) $(LIBCLIENT) $(LIBCOMMON)
$(BUILD)/bin/qkd-dash: $(call obj,dashboard/dash_main.c) $(LIBDASH) $(LIBCLIENT) $(LIBCOMMON)
$(BUILD)/bin/qkd-sim $(BUILD)/bin/qkd-lab $(BUILD)/bin/qkd $(BUILD)/bin/qkd-bridge $(BUILD)/bin/qkd-bench \
$(BUILD)/bin/qkd-dash:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: every tests/unit/test_NAME.c defines `int suite_NAME(void)`;
# the list of suites is generated so that files can be added without touching a registry.
$(BUILD)/tests/suites.h: $(UNIT_SRC)
	@mkdir -p $(dir $@)
	@for f in $(filter tests/unit/test_%.c,$(UNIT_SRC)); do n=$$(basename $$f .c); n=$${n#test_}; \
	  echo "X($$n)"; done > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/tests/unit/unit_main.o: $(BUILD)/tests/suites.h
$(BUILD)/obj/tests/unit/unit_main.o: override CFLAGS += -I$(BUILD)/tests

$(UNIT): $(call obj,$(UNIT_SRC)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets: tests/fuzz/fuzz_NAME.c defines LLVMFuzzerTestOneInput; built with clang and
# libFuzzer (+ASan/UBSan) into build-fuzz/NAME, linked against objects compiled the same way.
FUZZ_DIR := build-fuzz
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter \
	-fsanitize=fuzzer-no-link,address,undefined $(PKG_CFLAGS) $(VERSION_DEF)
FUZZ_LIB_SRC := $(COMMON_SRC) $(KMS_SRC) $(API_SRC) $(filter-out $(MAINS),$(KMED_SRC)) $(CLIENT_SRC) $(SIM_SRC) $(BRIDGE_SRC)
FUZZ_BINS := $(patsubst tests/fuzz/fuzz_%.c,$(FUZZ_DIR)/fuzz_%,$(FUZZ_SRC))
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(call inc,$<) -c $< -o $@
# An archive, so that a target links only the objects it needs (and they are kept between runs).
$(FUZZ_DIR)/libfuzz.a: $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_LIB_SRC))
	rm -f $@ && ar rcs $@ $^
$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_DIR)/libfuzz.a
	clang -fsanitize=fuzzer,address,undefined -pthread -o $@ $^ $(LDLIBS)
.PHONY: fuzz fuzz-run
fuzz: $(FUZZ_BINS)
# FUZZ_SECONDS per target (make check runs them briefly; longer on demand: make fuzz-run FUZZ_SECONDS=600).
FUZZ_SECONDS ?= 10
# One target per fuzzer, so that `make -jN fuzz-run` runs N at a time (each is one thread).
FUZZ_RUNS := $(patsubst $(FUZZ_DIR)/%,fuzz-run-%,$(FUZZ_BINS))
fuzz-run: $(FUZZ_RUNS)
fuzz-run-%: $(FUZZ_DIR)/%
	@f=$(FUZZ_DIR)/$*; n=$*; mkdir -p $(FUZZ_DIR)/corpus/$$n; \
	  seeds=tests/fuzz/corpus/$${n#fuzz_}; [ -d $$seeds ] || seeds=; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_DIR)/corpus/$$n $$seeds \
	    > $(FUZZ_DIR)/$$n.log 2>&1 || { tail -40 $(FUZZ_DIR)/$$n.log; exit 1; }; \
	  echo "fuzz: $$n: $$(grep -E "stat::number_of_executed_units" $(FUZZ_DIR)/$$n.log)"

# docs/examples/NAME.c -> $(BUILD)/examples/NAME (libqkdclient examples; not part of `all`).
EXAMPLES := $(patsubst docs/examples/%.c,$(BUILD)/examples/%,$(wildcard docs/examples/*.c))
.PHONY: examples
examples: $(EXAMPLES)
$(BUILD)/examples/%: $(BUILD)/obj/docs/examples/%.o $(LIBCLIENT) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests-build: $(BINS) $(UNIT) $(TOOLS)
.PHONY: tests-build

unit: tests-build
	$(UNIT)

integration: tests-build
	BUILD=$(BUILD) QK_SLOW=$(QK_SLOW) QK_STRICT_SKIPS=$(QK_STRICT_SKIPS) tests/run-integration

check-fast: tests-build check-layers
	BUILD=$(BUILD) QK_SLOW=$(QK_SLOW) QK_STRICT_SKIPS=$(QK_STRICT_SKIPS) QK_JOBS=$(QK_JOBS) tests/run-all

# The import graph: no folder includes a header of a folder its INC_ list does not name.
LAYERED := common kms $(ZONES) kmed sim client ikev2-bridge bench dashboard
.PHONY: check-layers
check-layers:
	@rc=0; $(foreach d,$(LAYERED),scripts/check-layers $(d) $(INC_$(d)) || rc=1;) \
	  [ $$rc = 0 ] && echo "check-layers: $(words $(LAYERED)) folders, no include outside their layer"; \
	  exit $$rc

check-san:
	$(MAKE) SAN=1 check-fast

# Normal build: every suite, slow ones included. Sanitizer build: the default (quick) suites.
# Both strict: a skip for a missing binary, tool or listener is a failure.
# The builds use every core; the integration suites run two at a time (QK_JOBS=2: most of their
# time is waiting for keys), those marked EXCLUSIVE alone.
NPROC := $(shell nproc 2>/dev/null || echo 2)
check:
	$(MAKE) -j$(NPROC) tests-build
	$(MAKE) check-fast QK_SLOW=1 QK_STRICT_SKIPS=1 QK_JOBS=2
	$(MAKE) -j$(NPROC) SAN=1 tests-build
	$(MAKE) SAN=1 check-fast QK_STRICT_SKIPS=1 QK_JOBS=2
	$(if $(FUZZ_SRC),$(MAKE) -j$(NPROC) fuzz && $(MAKE) -j$(NPROC) fuzz-run)

# The lab (docs/lab.md): qkd-lab up in ./lab, then a key through ETSI 014 and SKIP.
run: $(BINS)
	$(BUILD)/bin/qkd-lab up --dir lab
	BUILD=$(BUILD) scripts/lab-up --demo lab

# Benchmarks (bench/README.md): the standard matrix against a lab and an nginx baseline;
# writes bench/results/DATE.md and .json. Not part of make check.
.PHONY: bench
bench: $(BINS)
	BUILD=$(BUILD) bench/run

# ---- install (docs/service.md) ----------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=] [LIBDIR= INCLUDEDIR= UNITDIR= SYSCONFDIR= ...]
# installs the binaries, libqkdclient (shared, with a soname, and static) with its header and a
# pkg-config file, the systemd units, a sysusers.d entry, the example configs and the docs.
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
DOCDIR ?= $(PREFIX)/share/doc/qkd-kms
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc
# Bash completion (dist/bash-completion: one script, a name per binary) and the manual pages,
# whose default paths (/usr/local/share/doc/qkd-kms, /etc/qkd) become this install's.
COMPLETIONSDIR ?= $(PREFIX)/share/bash-completion/completions
MANSUBST := sed -e 's|/usr/local/share/doc/qkd\\-kms|$(DOCDIR)|g' -e 's|/usr/local/share/doc/qkd-kms|$(DOCDIR)|g' \
	-e 's|/etc/qkd/|$(SYSCONFDIR)/qkd/|g'

# libqkdclient for outside programs: the library part of client/ (not the CLI nor the
# conformance checkers) and the common/ modules it calls, compiled -fPIC into $(BUILD)/pic/.
# Only qkc_* is exported from the shared library (client/libqkdclient.map); -Wl,--no-undefined
# fails the link if a module it needs is missing from the list.
SOMAJOR := 0
CLIENT_SO := libqkdclient.so.$(SOMAJOR)
CLIENT_REAL := libqkdclient.so.$(VERSION)
CLIENT_PIC_SRC := $(filter-out client/cli_% client/conform_%,$(CLIENT_SRC)) \
	$(addprefix common/,qk_err.c codec.c json_util.c secbuf.c public_rand.c http_client.c)
CLIENT_PIC_OBJ := $(patsubst %.c,$(BUILD)/pic/%.o,$(CLIENT_PIC_SRC))
CLIENT_PKGS := libcurl openssl libsodium libcjson
# Never sanitized (SAN=1 builds only the binaries with ASan/UBSan): outside programs link it.
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(SANFLAGS),$(CFLAGS)) -fPIC $(call inc,$<) -c $< -o $@
$(BUILD)/pic/$(CLIENT_REAL): $(CLIENT_PIC_OBJ) client/libqkdclient.map
	$(CC) $(filter-out $(SANFLAGS),$(LDFLAGS)) -shared -Wl,-soname,$(CLIENT_SO) -Wl,--version-script=client/libqkdclient.map \
	  -Wl,--no-undefined -o $@ $(CLIENT_PIC_OBJ) $$(pkg-config --libs $(CLIENT_PKGS)) -lm
$(BUILD)/pic/libqkdclient.a: $(CLIENT_PIC_OBJ)
	rm -f $@ && ar rcs $@ $^
.PHONY: client-lib
client-lib: $(BUILD)/pic/$(CLIENT_REAL) $(BUILD)/pic/libqkdclient.a
-include $(CLIENT_PIC_OBJ:.o=.d)

# client/qkdclient.pc.in and dist/systemd/NAME.service.in: the @VAR@ filled in at install time
# (so they always hold this install's paths).
SUBST := sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	-e 's|@VERSION@|$(VERSION)|g'

install: $(BINS) client-lib
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BUILD)/pic/$(CLIENT_REAL) $(DESTDIR)$(LIBDIR)/
	ln -sf $(CLIENT_REAL) $(DESTDIR)$(LIBDIR)/$(CLIENT_SO)
	ln -sf $(CLIENT_SO) $(DESTDIR)$(LIBDIR)/libqkdclient.so
	install -m 0644 $(BUILD)/pic/libqkdclient.a $(DESTDIR)$(LIBDIR)/
	$(SUBST) client/qkdclient.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/qkdclient.pc && chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/qkdclient.pc
	install -m 0644 client/qkdclient.h $(DESTDIR)$(INCLUDEDIR)/
	@for f in dist/systemd/*.service.in; do u=$$(basename $$f .in); \
	  $(SUBST) $$f > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	  echo "installed $(DESTDIR)$(UNITDIR)/$$u"; done
	install -m 0644 dist/sysusers.d/qkd-kms.conf $(DESTDIR)$(SYSUSERSDIR)/
	install -m 0644 dist/examples/*.example docs/examples/*.c $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	@for f in docs/man/*.[1-8]; do s=$${f##*.}; d=$(DESTDIR)$(MANDIR)/man$$s; \
	  install -d $$d && $(MANSUBST) $$f > $$d/$$(basename $$f) && chmod 0644 $$d/$$(basename $$f) || exit 1; \
	done
	install -d $(DESTDIR)$(COMPLETIONSDIR)
	install -m 0644 $(addprefix dist/bash-completion/,$(notdir $(BINS))) $(DESTDIR)$(COMPLETIONSDIR)/

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

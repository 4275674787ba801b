# callhookd - see README.md. Plain make, pkg-config, objects under build/.

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
CC	?= cc

PKGS	 = libmicrohttpd libcjson inih sqlite3 libsystemd libcrypto
WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wformat=2 -Wno-format-nonliteral
CFLAGS	?= -O2 -g
CFLAGS	+= -std=c11 -D_GNU_SOURCE -Iinclude $(WARN) \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS	+= $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
ifdef WERROR
CFLAGS	+= -Werror
endif
ifdef SANITIZE
CFLAGS	+= -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS	+= -fsanitize=$(SANITIZE)
endif
CFLAGS	+= -MMD -MP

LIB_SRC	 = src/config.c src/dblock.c src/log.c src/event.c src/store.c src/walbuf.c src/queue.c \
	   src/ticket.c src/writer.c src/metrics.c src/http.c src/listen.c src/auth.c \
	   src/conns.c
LIB_OBJ	 = $(LIB_SRC:src/%.c=$(BUILD)/%.o)
CLI_OBJ	 = $(patsubst src/%.c,$(BUILD)/%.o,$(wildcard src/callhook*.c))
TEST_SRC = $(wildcard tests/check_*.c) tests/testutil.c
TEST_OBJ = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.o)

all: $(BUILD)/callhookd $(if $(wildcard src/callhook.c),$(BUILD)/callhook)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c | $(BUILD)/tests
	$(CC) $(CFLAGS) $(shell pkg-config --cflags check) -c -o $@ $<

$(BUILD)/callhookd: $(BUILD)/main.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/callhook: $(CLI_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/check_all: $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs check) $(LDLIBS)

$(BUILD) $(BUILD)/tests:
	mkdir -p $@

deps:
	@./scripts/install-deps

test-deps:
	@./scripts/install-deps --test

# Start the daemon on its embedded defaults: 127.0.0.1:8080, ./calls.db.
run: deps
	$(MAKE) all
	exec $(BUILD)/callhookd

# Every test: the plain build, then the same suites under ASan+UBSan, the
# threaded ones under TSan, the fuzzers briefly, a valgrind run, and the
# benchmark script for a second.
check: test-deps
	$(MAKE) all
	$(MAKE) test
	$(MAKE) BUILD=build/asan SANITIZE=address,undefined test
	$(MAKE) BUILD=build/tsan SANITIZE=thread CK_SUITES="queue e2e faults" test
	$(MAKE) fuzz FUZZ_SECONDS=10
	CALLHOOKD=$(BUILD)/callhookd tests/valgrind.sh
	# Only proves the benchmark script works (and loses nothing); its
	# numbers at one second mean nothing and go to build/, not bench/.
	$(MAKE) bench BENCH_SECONDS=1 BENCH_RUNS=1

test: all $(BUILD)/check_all
	CALLHOOKD=$(BUILD)/callhookd CALLHOOK=$(BUILD)/callhook \
	FIXTURES=tests/fixtures CK_DEFAULT_TIMEOUT=120 \
	  $(BUILD)/check_all $(CK_SUITES)

# Benchmarks (bench/README.md). Never part of the timed assertions of
# make check; check only runs the script for a second to prove it works.
# The helpers are built here, and the recipe does not name $(MAKE): make
# runs a line that does even under make -n, which would run the benchmark.
BENCH_SECONDS ?= 10
BENCH_RUNS ?= 3
bench: all $(BUILD)/store_bench $(BUILD)/cpu_steady
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_RUNS=$(BENCH_RUNS) \
	BUILD=$(BUILD) bench/run

# The store alone: the SQLite ceiling that bench/run reports.
$(BUILD)/store_bench: $(BUILD)/bench/store_bench.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# How steady the server's CPU is while the benchmark runs (results.md).
$(BUILD)/cpu_steady: $(BUILD)/bench/cpu_steady.o
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/bench/%.o: bench/%.c | $(BUILD)/bench
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/bench:
	mkdir -p $@

-include $(wildcard $(BUILD)/bench/*.d)

# libFuzzer targets (clang), seeded from tests/corpus and the fixtures.
FUZZ_SECONDS ?= 10
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz.sh

# The long form of the fault tests: more kill -9 rounds, longer fuzzing.
torture: all $(BUILD)/check_all
	FUZZ_SECONDS=60 tests/fuzz.sh
	CALLHOOKD=$(BUILD)/callhookd CALLHOOK=$(BUILD)/callhook \
	FIXTURES=tests/fixtures CK_DEFAULT_TIMEOUT=1800 TORTURE=1 \
	  $(BUILD)/check_all faults

# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]. The
# configuration is installed only when there is none, with the database in
# the unit's StateDirectory=. Run as root without DESTDIR, it also creates
# the callhookd user and lets it read the configuration; with DESTDIR (a
# package), do both when the package is installed.
BINDIR	 = $(PREFIX)/bin
MANDIR	 = $(PREFIX)/share/man
DOCDIR	 = $(PREFIX)/share/doc/callhookd
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc
STATEDIR = /var/lib/callhookd
CONF	 = $(DESTDIR)$(SYSCONFDIR)/callhookd/callhookd.ini
# callhook and its page come from another part of the tree; install them
# when they exist, as "all" builds callhook when its source does.
INSTALL_BIN = $(BUILD)/callhookd \
	   $(if $(wildcard src/callhook.c),$(BUILD)/callhook)
INSTALL_MAN1 = $(wildcard man/callhook.1)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/callhookd
	install -m 755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)
ifneq ($(INSTALL_MAN1),)
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(INSTALL_MAN1) $(DESTDIR)$(MANDIR)/man1
endif
	install -m 644 man/callhookd.ini.5 $(DESTDIR)$(MANDIR)/man5
	install -m 644 man/callhookd.8 $(DESTDIR)$(MANDIR)/man8
	install -d $(DESTDIR)$(DOCDIR)
	install -m 644 README.md LICENSE config.example.ini $(DESTDIR)$(DOCDIR)
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' \
	    -e 's|/etc/callhookd/|$(SYSCONFDIR)/callhookd/|g' \
	    systemd/callhookd.service > $(DESTDIR)$(UNITDIR)/callhookd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/callhookd.service
	install -m 644 systemd/callhookd.socket $(DESTDIR)$(UNITDIR)
	install -m 644 systemd/callhookd.sysusers \
	    $(DESTDIR)$(SYSUSERSDIR)/callhookd.conf
	@if [ -e $(CONF) ]; then \
		echo "kept $(CONF)"; \
	else \
		echo "installing $(CONF)"; \
		sed 's|^database = calls\.db .*|database = $(STATEDIR)/calls.db ; the StateDirectory= of callhookd.service|' \
		    config.example.ini > $(CONF).new && \
		chmod 640 $(CONF).new && mv $(CONF).new $(CONF) || exit 1; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
	    command -v systemd-sysusers >/dev/null 2>&1; then \
		echo "systemd-sysusers $(SYSUSERSDIR)/callhookd.conf"; \
		systemd-sysusers $(SYSUSERSDIR)/callhookd.conf && \
		chgrp callhookd $(CONF); \
	else \
		echo "then, as root: systemd-sysusers" \
		    "$(SYSUSERSDIR)/callhookd.conf &&" \
		    "chgrp callhookd $(SYSCONFDIR)/callhookd/callhookd.ini"; \
	fi

# Keeps the configuration and the database.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/callhookd $(DESTDIR)$(BINDIR)/callhook \
	    $(DESTDIR)$(MANDIR)/man1/callhook.1 \
	    $(DESTDIR)$(MANDIR)/man5/callhookd.ini.5 \
	    $(DESTDIR)$(MANDIR)/man8/callhookd.8 \
	    $(DESTDIR)$(UNITDIR)/callhookd.service \
	    $(DESTDIR)$(UNITDIR)/callhookd.socket \
	    $(DESTDIR)$(SYSUSERSDIR)/callhookd.conf
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo "kept $(CONF) and $(STATEDIR)"

clean:
	rm -rf build

help:
	@echo "make [all]     build build/callhookd and build/callhook"
	@echo "make deps      install the Debian packages the build needs (as root;"
	@echo "               otherwise print the apt-get line)"
	@echo "make run       deps, all, then start the daemon on its defaults"
	@echo "               (127.0.0.1:8080, ./calls.db)"
	@echo "make test-deps deps and what the tests need (nginx, clang, valgrind, ...)"
	@echo "make check     test-deps, all, every test: plain, ASan+UBSan, TSan,"
	@echo "               fuzzers, valgrind, the benchmark script for 1 s"
	@echo "make test      the test suites once (CK_SUITES=\"e2e faults\" for some)"
	@echo "make bench     the benchmark (bench/README.md), into bench/results.md"
	@echo "make fuzz      the libFuzzer targets (FUZZ_SECONDS=10)"
	@echo "make torture   longer fault tests and fuzzing"
	@echo "make install   into PREFIX=$(PREFIX) (DESTDIR=, SYSCONFDIR=); uninstall"
	@echo "make clean     remove build/"

.PHONY: all deps test-deps run check test clean help bench fuzz torture \
	install uninstall

-include $(wildcard $(BUILD)/*.d $(BUILD)/tests/*.d)

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

LIB_SRC	 = src/config.c src/log.c src/event.c src/store.c src/queue.c \
	   src/ticket.c src/writer.c src/metrics.c src/http.c src/listen.c src/auth.c
LIB_OBJ	 = $(LIB_SRC:src/%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/check_*.c) tests/testutil.c
TEST_OBJ = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.o)

all: $(BUILD)/callhookd $(if $(wildcard src/callhook.c),$(BUILD)/callhook)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c | $(BUILD)/tests
	$(CC) $(CFLAGS) $(shell pkg-config --cflags check) -c -o $@ $<

$(BUILD)/callhookd: $(BUILD)/main.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/callhook: $(BUILD)/callhook.o $(LIB_OBJ)
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

# Every test: the plain build, then the same suites under ASan+UBSan, then
# the threaded ones under TSan.
check: test-deps
	$(MAKE) all
	$(MAKE) test
	$(MAKE) BUILD=build/asan SANITIZE=address,undefined test
	$(MAKE) BUILD=build/tsan SANITIZE=thread CK_SUITES="queue e2e" test

test: all $(BUILD)/check_all
	CALLHOOKD=$(BUILD)/callhookd CALLHOOK=$(BUILD)/callhook \
	FIXTURES=tests/fixtures CK_DEFAULT_TIMEOUT=120 \
	  $(BUILD)/check_all $(CK_SUITES)

# Benchmarks (bench/README.md). Never part of the timed assertions of
# make check; check only runs the script for a second to prove it works.
BENCH_SECONDS ?= 10
bench: all
	BENCH_SECONDS=$(BENCH_SECONDS) bench/run

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

BINDIR	 = $(PREFIX)/bin
MANDIR	 = $(PREFIX)/share/man
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/callhookd
	install -m 755 $(BUILD)/callhookd $(BUILD)/callhook $(DESTDIR)$(BINDIR)
	install -m 644 man/callhook.1 $(DESTDIR)$(MANDIR)/man1
	install -m 644 man/callhookd.ini.5 $(DESTDIR)$(MANDIR)/man5
	install -m 644 man/callhookd.8 $(DESTDIR)$(MANDIR)/man8
	sed 's|/usr/local/bin|$(BINDIR)|g' systemd/callhookd.service \
	    > $(DESTDIR)$(UNITDIR)/callhookd.service
	install -m 644 systemd/callhookd.socket $(DESTDIR)$(UNITDIR)
	install -m 644 systemd/callhookd.sysusers \
	    $(DESTDIR)$(SYSUSERSDIR)/callhookd.conf
	# Never overwrite an operator's configuration.
	test -e $(DESTDIR)$(SYSCONFDIR)/callhookd/callhookd.ini || \
	    install -m 640 config.example.ini \
	    $(DESTDIR)$(SYSCONFDIR)/callhookd/callhookd.ini

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/callhookd $(DESTDIR)$(BINDIR)/callhook \
	    $(DESTDIR)$(MANDIR)/man1/callhook.1 \
	    $(DESTDIR)$(MANDIR)/man5/callhookd.ini.5 \
	    $(DESTDIR)$(MANDIR)/man8/callhookd.8 \
	    $(DESTDIR)$(UNITDIR)/callhookd.service \
	    $(DESTDIR)$(UNITDIR)/callhookd.socket \
	    $(DESTDIR)$(SYSUSERSDIR)/callhookd.conf
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/callhookd and the database"

clean:
	rm -rf build

.PHONY: all deps test-deps run check test clean bench fuzz torture \
	install uninstall

-include $(wildcard $(BUILD)/*.d $(BUILD)/tests/*.d)

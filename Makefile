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
	   src/ticket.c src/writer.c src/metrics.c src/http.c src/listen.c
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

clean:
	rm -rf build

.PHONY: all deps test-deps run check test clean

-include $(wildcard $(BUILD)/*.d $(BUILD)/tests/*.d)

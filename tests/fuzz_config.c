/*
 * libFuzzer target for the configuration parser. config_load() takes a
 * path, so the input is written to a memfd and loaded through
 * /proc/self/fd/N; then the same bytes go, as one string, to every key
 * through config_set() and to the size and duration parsers. Besides the
 * sanitizers, it checks the promises of config.h: an error is reported
 * exactly when the load fails, with a line inside the file and a message;
 * a value that was accepted is within the range its key documents; every
 * string stays NUL-terminated within CONFIG_STR_MAX.
 *
 *   tests/fuzz.sh builds and runs it (make fuzz).
 */

#include <sys/mman.h>

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct errors {
	int	count;
	int	lines;		/* lines in the input */
};

static void
on_error(void *arg, const char *file, int line, const char *msg)
{
	struct errors *e = arg;

	(void)file;
	e->count++;
	if (line < 0 || line > e->lines || msg == NULL || msg[0] == '\0' ||
	    strlen(msg) > 4096)
		__builtin_trap();
}

static void
check_strings(const struct config *c)
{
	const char *s[] = { c->listen, c->path, c->token, c->token_file,
	    c->previous_token, c->previous_token_file, c->hmac_secret, c->allow, c->trusted_proxies, c->database };

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (strnlen(s[i], CONFIG_STR_MAX) >= CONFIG_STR_MAX)
			__builtin_trap();
}

/* The ranges config.c's table and config.example.ini document. */
static void
check_ranges(const struct config *c)
{
	check_strings(c);
	if (c->max_body < 1024 || c->max_body > 1024 * 1024 * 1024)
		__builtin_trap();
	if (c->timeout_ms < 1000 || c->timeout_ms > 3600 * 1000)
		__builtin_trap();
	if (c->max_connections < 1 || c->max_connections > 1000000)
		__builtin_trap();
	if (c->queue < 1 || c->queue > 10000000)
		__builtin_trap();
	if (c->path[0] != '/' || c->listen[0] == '\0' ||
	    c->database[0] == '\0')
		__builtin_trap();
	if (c->ack != ACK_COMMIT && c->ack != ACK_ENQUEUE)
		__builtin_trap();
	if (c->log_format != LOG_FORMAT_TEXT &&
	    c->log_format != LOG_FORMAT_JSON)
		__builtin_trap();
}

static void
fuzz_file(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct errors e = { 0, 1 };
	struct config cfg;
	char err[512];
	int rc;

	if (fd < 0) {
		if ((fd = memfd_create("fuzz.ini", MFD_CLOEXEC)) < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) !=
	    (ssize_t)size))
		abort();
	for (size_t i = 0; i < size; i++)
		e.lines += data[i] == '\n';
	config_defaults(&cfg);
	rc = config_load(&cfg, path, on_error, &e);
	if ((rc == 0) != (e.count == 0))
		__builtin_trap();
	if (rc == 0) {
		check_ranges(&cfg);
		err[0] = '\0';
		if (config_validate(&cfg, err, sizeof(err)) != 0 &&
		    err[0] == '\0')
			__builtin_trap();
	} else {
		/* A failed load may leave cfg partly updated, never broken. */
		check_strings(&cfg);
	}
}

static void
fuzz_values(const uint8_t *data, size_t size)
{
	static const char *const keys[][2] = {
		{ "http", "listen" }, { "http", "path" },
		{ "http", "max_body" }, { "http", "timeout" },
		{ "http", "max_connections" }, { "auth", "token" },
		{ "auth", "token_file" }, { "auth", "previous_token" },
		{ "auth", "previous_token_file" }, { "auth", "hmac_secret" },
		{ "auth", "allow" }, { "auth", "trusted_proxies" },
		{ "store", "database" }, { "store", "ack" }, { "store", "sync" },
		{ "store", "queue" }, { "store", "fts" }, { "store", "strict" },
		{ "log", "level" }, { "log", "format" }, { "nope", "listen" },
		{ "http", "nope" }, { "", "" },
	};
	struct config cfg;
	char *s, err[512];
	size_t sz;
	unsigned ms;

	if ((s = malloc(size + 1)) == NULL)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	config_defaults(&cfg);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		err[0] = '\0';
		if (config_set(&cfg, keys[i][0], keys[i][1], s, err,
		    sizeof(err)) != 0 && err[0] == '\0')
			__builtin_trap();
	}
	check_ranges(&cfg);
	if (config_parse_size(s, &sz) == 0 && strlen(s) == 0)
		__builtin_trap();
	if (config_parse_duration(s, &ms) == 0 && strlen(s) == 0)
		__builtin_trap();
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_file(data, size);
	fuzz_values(data, size);
	return 0;
}

/*
 * config.c: defaults, every kind of bad value reported with its line,
 * overrides, and the size and duration parsers. Files are written to a
 * fresh mkdtemp() directory per test and removed afterwards.
 */

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define MAX_ERRS	32

struct errs {
	int	n;
	int	line[MAX_ERRS];
	char	msg[MAX_ERRS][256];
	char	file[PATH_MAX];
};

static char	tmpdir[256];	/* short, so that paths under it fit */
static char	tmpfile_path[PATH_MAX];

static void
setup(void)
{
	const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";

	ck_assert_int_lt(snprintf(tmpdir, sizeof(tmpdir), "%s/check_config.XXXXXX",
	    base), (int)sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(tmpfile_path, sizeof(tmpfile_path), "%s/test.ini", tmpdir);
}

static void
teardown(void)
{
	unlink(tmpfile_path);
	rmdir(tmpdir);
}

static void
collect(void *arg, const char *file, int line, const char *msg)
{
	struct errs *e = arg;

	ck_assert_int_lt(e->n, MAX_ERRS);
	snprintf(e->file, sizeof(e->file), "%s", file);
	e->line[e->n] = line;
	snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s", msg);
	e->n++;
}

/* Write text to the test's file and load it on top of the defaults. */
static int
load_text(const char *text, struct config *cfg, struct errs *e)
{
	FILE *fp;

	fp = fopen(tmpfile_path, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fputs(text, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
	memset(e, 0, sizeof(*e));
	config_defaults(cfg);
	return config_load(cfg, tmpfile_path, collect, e);
}

/* The file must fail with exactly one error, at line, saying want. */
static void
expect_one_error(const char *text, int line, const char *want)
{
	struct config cfg;
	struct errs e;

	ck_assert_int_eq(load_text(text, &cfg, &e), -EINVAL);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], line);
	ck_assert_str_eq(e.file, tmpfile_path);
	ck_assert_msg(strstr(e.msg[0], want) != NULL,
	    "message \"%s\" lacks \"%s\"", e.msg[0], want);
}

static void
assert_defaults(const struct config *cfg)
{
	ck_assert_str_eq(cfg->listen, "127.0.0.1:8080");
	ck_assert_str_eq(cfg->path, "/webhook/call-webhook");
	ck_assert_uint_eq(cfg->max_body, 4 * 1024 * 1024);
	ck_assert_uint_eq(cfg->timeout_ms, 30000);
	ck_assert_uint_eq(cfg->max_connections, 1024);
	ck_assert_str_eq(cfg->token, "");
	ck_assert_str_eq(cfg->token_file, "");
	ck_assert_str_eq(cfg->previous_token, "");
	ck_assert_str_eq(cfg->previous_token_file, "");
	ck_assert_str_eq(cfg->hmac_secret, "");
	ck_assert_str_eq(cfg->allow, "");
	ck_assert_str_eq(cfg->trusted_proxies, "127.0.0.1/32, ::1/128");
	ck_assert_str_eq(cfg->database, "calls.db");
	ck_assert_int_eq(cfg->ack, ACK_COMMIT);
	ck_assert(!cfg->sync_full);
	ck_assert_uint_eq(cfg->queue, 10000);
	ck_assert(cfg->fts);
	ck_assert(!cfg->strict);
	ck_assert_int_eq(cfg->log_level, LOG_INFO);
	ck_assert_int_eq(cfg->log_format, LOG_FORMAT_TEXT);
}

START_TEST(test_defaults)
{
	struct config cfg;

	memset(&cfg, 0xa5, sizeof(cfg));
	config_defaults(&cfg);
	assert_defaults(&cfg);
}
END_TEST

START_TEST(test_every_key)
{
	static const char text[] =
	    "; every key, none at its default\n"
	    "[http]\n"
	    "listen = [::1]:9090\n"
	    "path = /hooks/ck   ; inline comment\n"
	    "max_body = 512K\n"
	    "timeout = 1500ms\n"
	    "max_connections = 64\n"
	    "\n"
	    "[auth]\n"
	    "token = s3cret;not-a-comment\n"
	    "token_file =\n"
	    "hmac_secret = whsec_c2VjcmV0\n"
	    "allow = 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32\n"
	    "trusted_proxies =\n"
	    "# hash comments too\n"
	    "[store]\n"
	    "database = /var/lib/callhookd/calls.db\n"
	    "ack = enqueue\n"
	    "sync = FULL\n"
	    "queue = 5\n"
	    "fts = off\n"
	    "strict = yes\n"
	    "[log]\n"
	    "level = debug\n"
	    "format = json\n";
	struct config cfg;
	struct errs e;

	ck_assert_int_eq(load_text(text, &cfg, &e), 0);
	ck_assert_int_eq(e.n, 0);
	ck_assert_str_eq(cfg.listen, "[::1]:9090");
	ck_assert_str_eq(cfg.path, "/hooks/ck");
	ck_assert_uint_eq(cfg.max_body, 512 * 1024);
	ck_assert_uint_eq(cfg.timeout_ms, 1500);
	ck_assert_uint_eq(cfg.max_connections, 64);
	ck_assert_str_eq(cfg.token, "s3cret;not-a-comment");
	ck_assert_str_eq(cfg.token_file, "");
	ck_assert_str_eq(cfg.hmac_secret, "whsec_c2VjcmV0");
	ck_assert_str_eq(cfg.allow, "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32");
	ck_assert_str_eq(cfg.trusted_proxies, "");
	ck_assert_str_eq(cfg.database, "/var/lib/callhookd/calls.db");
	ck_assert_int_eq(cfg.ack, ACK_ENQUEUE);
	ck_assert(cfg.sync_full);
	ck_assert_uint_eq(cfg.queue, 5);
	ck_assert(!cfg.fts);
	ck_assert(cfg.strict);
	ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
	ck_assert_int_eq(cfg.log_format, LOG_FORMAT_JSON);
}
END_TEST

START_TEST(test_indent_crlf_bom)
{
	/* Indented lines are keys, not inih's multi-line continuations. */
	static const char text[] =
	    "\xEF\xBB\xBF[http]\r\n"
	    "  listen = 0.0.0.0:0\r\n"
	    "\tpath = /x\r\n";
	struct config cfg;
	struct errs e;

	ck_assert_int_eq(load_text(text, &cfg, &e), 0);
	ck_assert_str_eq(cfg.listen, "0.0.0.0:0");
	ck_assert_str_eq(cfg.path, "/x");
}
END_TEST

START_TEST(test_unknown_section)
{
	/* Reported once at its header, not again for each of its keys. */
	expect_one_error("[http]\nlisten = 127.0.0.1:1\n\n[htp]\na = 1\n"
	    "b = 2\n", 4, "unknown section [htp]");
}
END_TEST

/* inih drops what follows ']': a key there would be lost unseen. */
START_TEST(test_text_after_header)
{
	struct config cfg;
	struct errs e;

	expect_one_error("[http]\n[auth] token = s3cret\n", 2,
	    "text after the section header [auth] is ignored");
	expect_one_error("[store]database = x.db\n", 1,
	    "[store] is ignored by the parser");
	ck_assert_int_eq(load_text("[http] ; c\r\n[auth]\t# c\n[log]  \n"
	    "level = warn\n", &cfg, &e), 0);
	ck_assert_int_eq(cfg.log_level, LOG_WARN);
}
END_TEST

/*
 * A '#' note after a value, or quotes around it, would be part of it:
 * a token no sender carries, a database file named with the note.
 */
START_TEST(test_value_traps)
{
	struct config cfg;
	struct errs e;

	expect_one_error("[auth]\ntoken = abc # note\n", 2,
	    "[auth] token: a '#' after a blank is part of the value");
	expect_one_error("[auth]\ntoken = # none\n", 2, "'#'");
	expect_one_error("[store]\ndatabase = /d/calls.db\t# main\n", 2,
	    "[store] database: a '#'");
	expect_one_error("[auth]\ntoken = \"abc\"\n", 2,
	    "[auth] token: the quotes would be part of the value");
	expect_one_error("[store]\ndatabase = 'calls.db'\n", 2, "quotes");
	/* The secret is not repeated in the message. */
	ck_assert_int_eq(load_text("[auth]\nhmac_secret = s3c # x\n", &cfg,
	    &e), -EINVAL);
	ck_assert_ptr_null(strstr(e.msg[0], "s3c"));
	/* '#' inside a word, a lone quote, and " ;" comments are fine. */
	ck_assert_int_eq(load_text("[auth]\ntoken = a#b\"c ; note\n"
	    "token_file =\n[http]\npath = /it's\n", &cfg, &e), 0);
	ck_assert_str_eq(cfg.token, "a#b\"c");
	ck_assert_str_eq(cfg.path, "/it's");
}
END_TEST

/*
 * The limit is on what follows 1 MB: a file of exactly 1 MB is read. A
 * bigger one (a log named by mistake) is refused before its first line,
 * with the one error that says what it is, not one for each of its
 * lines first.
 */
START_TEST(test_file_size_limit)
{
	static const char head[] = "[log]\nlevel = warn\n";
	size_t size = 1024 * 1024, n = sizeof(head) - 1;
	struct config cfg;
	struct errs e;
	char *text;

	ck_assert_ptr_nonnull(text = malloc(size + 2));
	memcpy(text, head, n);
	memset(text + n, '\n', size - n);
	text[size] = '\0';
	ck_assert_int_eq(load_text(text, &cfg, &e), 0);
	ck_assert_int_eq(cfg.log_level, LOG_WARN);
	memcpy(text + size, "\n", 2);
	ck_assert_int_eq(load_text(text, &cfg, &e), -EFBIG);
	ck_assert_int_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "larger than 1 MB: not a configuration "
	    "file");
	for (n = 0; n < size; n += 4)		/* 1 MB is a multiple of 4 */
		memcpy(text + n, "log\n", 4);
	ck_assert_int_eq(load_text(text, &cfg, &e), -EFBIG);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 0);
	free(text);
}
END_TEST

START_TEST(test_key_outside_section)
{
	expect_one_error("listen = 127.0.0.1:1\n[http]\n", 1,
	    "listen: key outside a section");
}
END_TEST

START_TEST(test_unknown_key)
{
	expect_one_error("[http]\nlisten = 127.0.0.1:1\nlsten = x\n", 3,
	    "[http] lsten: unknown key (known keys: listen, path, max_body, "
	    "timeout, max_connections)");
	expect_one_error("[log]\n = 1\n", 2, "[log] a value without a key");
	/* Another section's key: where it belongs, not this one's list. */
	expect_one_error("[http]\ndatabase = x.db\n", 2, "[http] database: "
	    "unknown key in [http]; it belongs under [store]");
}
END_TEST

START_TEST(test_bad_size)
{
	expect_one_error("[http]\nmax_body = 4X\n", 2,
	    "[http] max_body: \"4X\" is not a size from 1K to 1G");
	expect_one_error("[http]\n\nmax_body = 2G\n", 3,
	    "[http] max_body: \"2G\" is not a size");
	expect_one_error("[http]\nmax_body = 1023\n", 2, "\"1023\"");
}
END_TEST

/*
 * Each bounded key at its edges: the bound is taken, one unit past it is
 * not. A bound that moved by one passed when only far values were tried.
 */
START_TEST(test_bounds)
{
	static const char *const edges[][4] = {
		/* section, key, the bound, one past it */
		{ "http", "max_body", "1K", "1023" },
		{ "http", "max_body", "1G", "1073741825" },
		{ "http", "timeout", "1s", "999ms" },
		{ "http", "timeout", "1h", "3600001ms" },
		{ "http", "max_connections", "1", "0" },
		{ "http", "max_connections", "1000000", "1000001" },
		{ "store", "queue", "1", "0" },
		{ "store", "queue", "10000000", "10000001" },
	};
	struct config cfg;
	char err[256];

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		config_defaults(&cfg);
		ck_assert_msg(config_set(&cfg, edges[i][0], edges[i][1],
		    edges[i][2], err, sizeof(err)) == 0, "%s = %s: %s",
		    edges[i][1], edges[i][2], err);
		ck_assert_msg(config_set(&cfg, edges[i][0], edges[i][1],
		    edges[i][3], err, sizeof(err)) == -EINVAL,
		    "%s = %s taken", edges[i][1], edges[i][3]);
	}
}
END_TEST

START_TEST(test_bad_duration)
{
	expect_one_error("[http]\ntimeout = 30sec\n", 2,
	    "[http] timeout: \"30sec\" is not a duration from 1s to 1h");
	expect_one_error("[http]\ntimeout = 999ms\n", 2, "\"999ms\"");
	expect_one_error("[http]\ntimeout = 61m\n", 2, "\"61m\"");
}
END_TEST

START_TEST(test_bad_bool)
{
	expect_one_error("[store]\n; c\nfts = maybe\n", 3,
	    "[store] fts: \"maybe\" is not a boolean (on/off, true/false, "
	    "yes/no, 1/0)");
}
END_TEST

START_TEST(test_bad_enum)
{
	/* Answered 200 and kept in memory only: not a database. */
	expect_one_error("[store]\ndatabase = :memory:\n", 2,
	    "\":memory:\" is not a file path (not :memory: or a file: URI)");
	expect_one_error("[store]\ndatabase = file:x.db?mode=memory\n", 2,
	    "is not a file path");
	expect_one_error("[store]\nack = maybe\n", 2,
	    "[store] ack: \"maybe\" is not one of commit, enqueue");
	expect_one_error("[store]\nsync = extra\n", 2,
	    "[store] sync: \"extra\" is not one of normal, full");
	expect_one_error("[log]\nlevel = trace\n", 2,
	    "[log] level: \"trace\" is not one of error, warn, info, debug");
	expect_one_error("[log]\nformat = xml\n", 2,
	    "[log] format: \"xml\" is not one of text, json");
}
END_TEST

START_TEST(test_bad_number)
{
	expect_one_error("[http]\nmax_connections = 0\n", 2,
	    "\"0\" is not a number from 1 to 1000000");
	expect_one_error("[store]\nqueue = 10000001\n", 2,
	    "\"10000001\" is not a number from 1 to 10000000");
	expect_one_error("[store]\nqueue = -1\n", 2, "\"-1\"");
}
END_TEST

START_TEST(test_bad_listen)
{
	expect_one_error("[http]\nlisten = localhost\n", 2,
	    "[http] listen: \"localhost\" is not HOST:PORT, [IPV6]:PORT or "
	    "unix:/PATH");
	expect_one_error("[http]\nlisten = 127.0.0.1:65536\n", 2,
	    "\"127.0.0.1:65536\"");
	expect_one_error("[http]\nlisten = ::1:80\n", 2, "\"::1:80\"");
	expect_one_error("[http]\nlisten = [::g]:80\n", 2, "\"[::g]:80\"");
	expect_one_error("[http]\nlisten = unix:relative\n", 2,
	    "\"unix:relative\"");
	/* sun_path's 108 bytes, with the NUL: said so, not "not unix:/". */
	expect_one_error("[http]\nlisten = unix:/var/tmp/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n", 2,
	    "[http] listen: the unix socket path is longer than 107 bytes");
	expect_one_error("[http]\nlisten =\n", 2,
	    "[http] listen: value is empty, expected HOST:PORT");
}
END_TEST

START_TEST(test_good_listen)
{
	static const char *const good[] = {
		"127.0.0.1:8080", "0.0.0.0:0", "localhost:65535",
		"[::]:80", "[fe80::1]:1", "unix:/run/callhookd.sock",
	};
	struct config cfg;
	char err[256];

	config_defaults(&cfg);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(config_set(&cfg, "http", "listen", good[i], err,
		    sizeof(err)) == 0, "%s: %s", good[i], err);
		ck_assert_str_eq(cfg.listen, good[i]);
	}
}
END_TEST

START_TEST(test_bad_path)
{
	expect_one_error("[http]\npath = webhook\n", 2,
	    "[http] path: \"webhook\" is not an absolute URL path");
	expect_one_error("[http]\npath = /a?b\n", 2, "\"/a?b\"");
	/* Requests are compared decoded, and these the daemon answers. */
	expect_one_error("[http]\npath = /a%20b\n", 2, "\"/a%20b\" is not");
	expect_one_error("[http]\npath = /healthz\n", 2, "not /healthz or "
	    "/metrics");
	expect_one_error("[http]\npath = /metrics\n", 2, "\"/metrics\"");
}
END_TEST

START_TEST(test_bad_cidr)
{
	expect_one_error("[auth]\nallow = 10.0.0.0/8, 10.0.0.0/33\n", 2,
	    "[auth] allow: \"10.0.0.0/33\" is not a CIDR");
	expect_one_error("[auth]\ntrusted_proxies = ::1/129\n", 2,
	    "[auth] trusted_proxies: \"::1/129\" is not a CIDR");
	expect_one_error("[auth]\nallow = 10.0.0.256\n", 2,
	    "\"10.0.0.256\" is not a CIDR");
	expect_one_error("[auth]\nallow = 10.0.0.0/8,\n", 2,
	    "\"\" is not a CIDR");
	expect_one_error("[auth]\nallow = 10.0.0.0/8,,::1\n", 2,
	    "\"\" is not a CIDR");
	expect_one_error("[auth]\nallow = 10.0.0.0/\n", 2,
	    "\"10.0.0.0/\" is not a CIDR");
}
END_TEST

START_TEST(test_value_too_long)
{
	struct config cfg;
	char err[256], value[CONFIG_STR_MAX + 1];

	config_defaults(&cfg);
	memset(value, 'a', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	ck_assert_int_eq(config_set(&cfg, "auth", "token", value, err,
	    sizeof(err)), -EINVAL);
	ck_assert_str_eq(err,
	    "[auth] token: value is longer than 1023 characters");
	ck_assert_str_eq(cfg.token, "");

	value[CONFIG_STR_MAX - 1] = '\0';
	ck_assert_int_eq(config_set(&cfg, "auth", "token", value, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(strlen(cfg.token), CONFIG_STR_MAX - 1);
}
END_TEST

START_TEST(test_line_too_long)
{
	char text[1024];
	struct config cfg;
	struct errs e;
	int n;

	/* Line 3 is longer than inih's 200-byte buffer; line 4 still counts. */
	n = snprintf(text, sizeof(text), "[auth]\ntoken = short\ntoken = ");
	memset(text + n, 'x', 300);
	snprintf(text + n + 300, sizeof(text) - (size_t)n - 300,
	    "\nbogus = 1\n");
	ck_assert_int_eq(load_text(text, &cfg, &e), -EINVAL);
	ck_assert_int_eq(e.n, 2);
	ck_assert_int_eq(e.line[0], 3);
	ck_assert_str_eq(e.msg[0], "line longer than 199 characters");
	ck_assert_int_eq(e.line[1], 4);
	ck_assert_ptr_nonnull(strstr(e.msg[1], "bogus: unknown key"));
	ck_assert_str_eq(cfg.token, "short");
}
END_TEST

START_TEST(test_longest_line)
{
	char text[1024];
	struct config cfg;
	struct errs e;
	int n;

	/* Exactly 199 characters, then a newline: fits, line 3 is next. */
	n = snprintf(text, sizeof(text), "[auth]\ntoken = ");
	memset(text + n, 'x', 199 - 8);
	snprintf(text + 7 + 199, sizeof(text) - 7 - 199, "\nbad\n");
	ck_assert_int_eq(load_text(text, &cfg, &e), -EINVAL);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 3);
	ck_assert_uint_eq(strlen(cfg.token), 199 - 8);
}
END_TEST

START_TEST(test_syntax_errors)
{
	expect_one_error("[http]\nlisten 8080\n", 2,
	    "expected key = value");
	/* The keys under a broken header are not checked: no more noise. */
	expect_one_error("[http]\n[log\nlevel = info\n[http]\n", 2,
	    "section header without closing ']'");
}
END_TEST

START_TEST(test_many_errors)
{
	static const char text[] =
	    "[http]\n"				/* 1 */
	    "listen = nowhere\n"		/* 2 */
	    "no equals sign\n"			/* 3 */
	    "max_body = 4M\n"			/* 4 */
	    "timeout = forever\n"		/* 5 */
	    "[bogus]\n"				/* 6 */
	    "x = 1\n"				/* 7 */
	    "[store]\n"				/* 8 */
	    "another bad line\n"		/* 9 */
	    "fts = perhaps\n"			/* 10 */
	    "queue = 7\n"			/* 11 */
	    "[log\n"				/* 12 */
	    "format = yaml\n";			/* 13, under a broken header */
	static const int lines[] = { 2, 3, 5, 6, 9, 10, 12 };
	static const char *const words[] = {
		"listen", "expected key = value", "timeout",
		"unknown section [bogus]", "expected key = value", "fts",
		"closing ']'",
	};
	struct config cfg;
	struct errs e;

	ck_assert_int_eq(load_text(text, &cfg, &e), -EINVAL);
	ck_assert_int_eq(e.n, 7);
	for (int i = 0; i < e.n; i++) {
		ck_assert_int_eq(e.line[i], lines[i]);
		ck_assert_msg(strstr(e.msg[i], words[i]) != NULL,
		    "error %d: \"%s\" lacks \"%s\"", i, e.msg[i], words[i]);
	}
	/* The good keys between the bad ones were still read. */
	ck_assert_uint_eq(cfg.queue, 7);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config cfg;
	struct errs e;
	char path[PATH_MAX];

	memset(&e, 0, sizeof(e));
	snprintf(path, sizeof(path), "%s/nonexistent.ini", tmpdir);
	config_defaults(&cfg);
	ck_assert_int_eq(config_load(&cfg, path, collect, &e), -ENOENT);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 0);
	ck_assert_str_eq(e.file, path);
	assert_defaults(&cfg);
	/* No callback is fine too. */
	ck_assert_int_eq(config_load(&cfg, path, NULL, NULL), -ENOENT);
}
END_TEST

START_TEST(test_directory)
{
	struct config cfg;
	struct errs e;

	memset(&e, 0, sizeof(e));
	config_defaults(&cfg);
	ck_assert_int_eq(config_load(&cfg, tmpdir, collect, &e), -EISDIR);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 0);
}
END_TEST

START_TEST(test_set_overrides)
{
	struct config cfg;
	struct errs e;
	char err[256];

	ck_assert_int_eq(load_text("[http]\nlisten = 127.0.0.1:1\n[log]\n"
	    "level = warn\n", &cfg, &e), 0);
	ck_assert_int_eq(config_set(&cfg, "http", "listen", "unix:/tmp/s",
	    err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.listen, "unix:/tmp/s");
	ck_assert_int_eq(config_set(&cfg, "log", "level", "ERROR", err,
	    sizeof(err)), 0);
	ck_assert_int_eq(cfg.log_level, LOG_ERROR);
	ck_assert_int_eq(config_set(&cfg, "store", "database", "/d/c.db",
	    err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.database, "/d/c.db");

	/* A bad value names the key and leaves the old value. */
	ck_assert_int_eq(config_set(&cfg, "http", "max_body", "lots", err,
	    sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "[http] max_body: \"lots\" is not a size from "
	    "1K to 1G (e.g. 512K, 4M)");
	ck_assert_uint_eq(cfg.max_body, 4 * 1024 * 1024);
	ck_assert_int_eq(config_set(&cfg, "store", "database", "", err,
	    sizeof(err)), -EINVAL);
	ck_assert_str_eq(cfg.database, "/d/c.db");
	ck_assert_int_eq(config_set(&cfg, "nope", "x", "1", err,
	    sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "unknown section [nope]"));

	/* A small err buffer is cut, not overrun. */
	ck_assert_int_eq(config_set(&cfg, "store", "ack", "x", err, 8),
	    -EINVAL);
	ck_assert_str_eq(err, "[store]");
}
END_TEST

START_TEST(test_empty_values)
{
	struct config cfg;
	struct errs e;

	ck_assert_int_eq(load_text("[auth]\ntoken =\nallow =\n"
	    "hmac_secret=\n", &cfg, &e), 0);
	ck_assert_str_eq(cfg.token, "");
	expect_one_error("[store]\nqueue =\n", 2,
	    "[store] queue: value is empty, expected a number");
	expect_one_error("[store]\ndatabase = ; comment only\n", 2,
	    "[store] database: value is empty");
}
END_TEST

/*
 * A secret the daemon could not use is a bad value like any other: told
 * with its line, not after the database is made, and never quoted.
 */
START_TEST(test_bad_secret)
{
	char raw[CONFIG_SECRET_MAX + 2], err[256];
	struct config cfg;

	expect_one_error("[auth]\nhmac_secret = whsec_!!!\n", 2,
	    "[auth] hmac_secret: \"whsec_\" must be followed by base64");
	expect_one_error("[auth]\n\nhmac_secret = whsec_abc\n", 3,
	    "[auth] hmac_secret: \"whsec_\" must be followed by base64");
	/* OpenSSL alone takes '=' anywhere: 0 bytes of key, or 6 of 0. */
	expect_one_error("[auth]\nhmac_secret = whsec_====\n", 2,
	    "[auth] hmac_secret: \"whsec_\" must be followed by base64");
	expect_one_error("[auth]\nhmac_secret = whsec_AAAA=AAA\n", 2,
	    "[auth] hmac_secret: \"whsec_\" must be followed by base64");
	expect_one_error("[auth]\nhmac_secret = whsec_AA=A\n", 2,
	    "[auth] hmac_secret: \"whsec_\" must be followed by base64");
	config_defaults(&cfg);
	ck_assert_int_eq(config_set(&cfg, "auth", "hmac_secret",
	    "whsec_c2VjcmV0Lg==", err, sizeof(err)), 0);
	/* Longer than a line of the file can be, so set here. */
	memset(raw, 's', sizeof(raw) - 1);
	raw[sizeof(raw) - 1] = '\0';
	config_defaults(&cfg);
	ck_assert_int_eq(config_set(&cfg, "auth", "hmac_secret", raw, err,
	    sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "[auth] hmac_secret: longer than 512 bytes");
	raw[CONFIG_SECRET_MAX] = '\0';
	ck_assert_int_eq(config_set(&cfg, "auth", "hmac_secret", raw, err,
	    sizeof(err)), 0);
}
END_TEST

/* The line that set a key, until something else sets it. */
START_TEST(test_key_line)
{
	struct config cfg;
	struct errs e;
	char err[256];

	ck_assert_int_eq(load_text("; lines\n[auth]\ntoken_file = /t\n"
	    "[http]\n\nlisten = 127.0.0.1:1\n", &cfg, &e), 0);
	ck_assert_int_eq(config_line(&cfg, "auth", "token_file"), 3);
	ck_assert_int_eq(config_line(&cfg, "http", "listen"), 6);
	ck_assert_int_eq(config_line(&cfg, "http", "path"), 0);
	ck_assert_int_eq(config_line(&cfg, "http", "nope"), 0);
	ck_assert_int_eq(config_set(&cfg, "http", "listen", "unix:/s", err,
	    sizeof(err)), 0);
	ck_assert_int_eq(config_line(&cfg, "http", "listen"), 0);
	config_defaults(&cfg);
	ck_assert_int_eq(config_line(&cfg, "auth", "token_file"), 0);
}
END_TEST

START_TEST(test_validate)
{
	struct config cfg;
	char err[256];

	config_defaults(&cfg);
	ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
	strcpy(cfg.token, "t");
	ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
	strcpy(cfg.token_file, "/run/credentials/token");
	ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "token and token_file"));
	cfg.token[0] = '\0';
	ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
	/* In a file, at the line of the second, and once. */
	expect_one_error("[auth]\ntoken = t\n\ntoken_file = /x\n"
	    "allow = 10.0.0.0/8\nhmac_secret = s\n", 4,
	    "token and token_file");
	/* The old token too comes from one place. */
	expect_one_error("[auth]\ntoken = t\nprevious_token_file = /x\n"
	    "previous_token = o\n", 4,
	    "previous_token and previous_token_file");
}
END_TEST

/* A key set twice: the second would win unseen. */
START_TEST(test_set_twice)
{
	expect_one_error("[store]\ndatabase = /var/lib/callhookd/calls.db\n"
	    "queue = 5\n[http]\n[store]\ndatabase = calls.db\n", 6,
	    "[store] database: set again (first on line 2); keep one");
	expect_one_error("[auth]\ntoken = t\ntoken =\n", 3,
	    "[auth] token: set again (first on line 2)");
}
END_TEST

/*
 * A list's lines add up: a line holds 199 characters, about ten CIDRs,
 * and a sender's addresses may be more. The first line in the file
 * replaces the default; an empty one adds nothing.
 */
START_TEST(test_list_lines)
{
	struct config cfg;
	struct errs e;
	char text[4096];
	int n;

	ck_assert_int_eq(load_text("[auth]\nallow = 10.0.0.0/8, 10.1.0.0/16\n"
	    "trusted_proxies = 192.0.2.1/32\nallow =\nallow = 2001:db8::/32"
	    "\ntrusted_proxies = 192.0.2.2/32\n", &cfg, &e), 0);
	ck_assert_int_eq(e.n, 0);
	ck_assert_str_eq(cfg.allow, "10.0.0.0/8, 10.1.0.0/16, 2001:db8::/32");
	ck_assert_str_eq(cfg.trusted_proxies, "192.0.2.1/32, 192.0.2.2/32");
	ck_assert_int_eq(config_line(&cfg, "auth", "allow"), 5);
	/* Each line is checked; past CONFIG_STR_MAX in all, an error. */
	expect_one_error("[auth]\nallow = 10.0.0.0/8\nallow = 10.0.0.0/33\n",
	    3, "[auth] allow:");
	n = snprintf(text, sizeof(text), "[auth]\n");
	/* 37 lines come to 1,014 characters; the 38th is one too many. */
	for (int i = 0; i < 38; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		    "allow = 10.%d.0.0/16, 10.%d.1.0/24\n", i, i);
	ck_assert_int_eq(load_text(text, &cfg, &e), -EINVAL);
	ck_assert_msg(e.n == 1 && strstr(e.msg[0], "the lines of the list "
	    "come to more than 1023 characters") != NULL, "%d: %s", e.n,
	    e.msg[0]);
}
END_TEST

START_TEST(test_parse_size)
{
	static const struct {
		const char	*s;
		size_t		 v;
	} good[] = {
		{ "0", 0 }, { "1", 1 }, { "10B", 10 }, { "1k", 1024 },
		{ "1K", 1024 }, { "1KB", 1024 }, { "4M", 4 << 20 },
		{ "4mb", 4 << 20 }, { "1G", 1 << 30 }, { "007", 7 },
		{ "16777216G", (size_t)1 << 54 },
	};
	static const char *const bad[] = {
		"", " ", "-1", "+1", " 1", "1 ", "K", "1X", "1KK", "1.5M",
		"1 M", "0x10", "1Gb2", "99999999999G", "18446744073709551616",
		"17179869184G",
	};
	size_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(config_parse_size(good[i].s, &v) == 0, "%s",
		    good[i].s);
		ck_assert_uint_eq(v, good[i].v);
	}
	ck_assert_int_eq(config_parse_size("18446744073709551615", &v), 0);
	ck_assert_uint_eq(v, SIZE_MAX);
	v = 42;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(config_parse_size(bad[i], &v) == -EINVAL,
		    "\"%s\" accepted", bad[i]);
	ck_assert_uint_eq(v, 42);
}
END_TEST

START_TEST(test_parse_duration)
{
	static const struct {
		const char	*s;
		unsigned	 ms;
	} good[] = {
		{ "0", 0 }, { "30", 30000 }, { "30s", 30000 },
		{ "250ms", 250 }, { "250MS", 250 }, { "5m", 300000 },
		{ "1h", 3600000 }, { "0ms", 0 }, { "4294967295ms", UINT_MAX },
		{ "1193h", 1193U * 3600000 },
	};
	static const char *const bad[] = {
		"", "-1", "-1s", "s", "1x", "1sec", "1.5s", "1 s", "1d",
		"4294967296ms", "4294968s", "1194h", "99999999999999999999",
	};
	unsigned ms;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(config_parse_duration(good[i].s, &ms) == 0, "%s",
		    good[i].s);
		ck_assert_uint_eq(ms, good[i].ms);
	}
	ms = 42;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(config_parse_duration(bad[i], &ms) == -EINVAL,
		    "\"%s\" accepted", bad[i]);
	ck_assert_uint_eq(ms, 42);
}
END_TEST

/* Set every key away from its default, so loading the example must reset
 * each one: a key missing from the example would keep the odd value. */
static void
set_all_odd(struct config *cfg)
{
	static const char *const odd[][3] = {
		{ "http", "listen", "10.1.1.1:1" }, { "http", "path", "/o" },
		{ "http", "max_body", "1K" }, { "http", "timeout", "1h" },
		{ "http", "max_connections", "3" }, { "auth", "token", "o" },
		{ "auth", "token_file", "o" }, { "auth", "previous_token", "o" },
		{ "auth", "previous_token_file", "o" },
		{ "auth", "hmac_secret", "o" }, { "auth", "allow", "::/0" }, { "auth", "trusted_proxies", "" },
		{ "store", "database", "o.db" }, { "store", "ack", "enqueue" },
		{ "store", "sync", "full" }, { "store", "queue", "3" },
		{ "store", "fts", "off" }, { "store", "strict", "on" },
		{ "log", "level", "debug" }, { "log", "format", "json" },
	};
	char err[256];

	config_defaults(cfg);
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		ck_assert_msg(config_set(cfg, odd[i][0], odd[i][1], odd[i][2],
		    err, sizeof(err)) == 0, "%s", err);
}

START_TEST(test_example_file)
{
	struct config cfg;
	struct errs e;
	char err[256];

	memset(&e, 0, sizeof(e));
	set_all_odd(&cfg);
	ck_assert_msg(config_load(&cfg, "config.example.ini", collect, &e) ==
	    0, "config.example.ini:%d: %s", e.line[0], e.msg[0]);
	ck_assert_int_eq(e.n, 0);
	assert_defaults(&cfg);
	ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
}
END_TEST

Suite *config_suite(void);

Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_every_key);
	tcase_add_test(tc, test_indent_crlf_bom);
	tcase_add_test(tc, test_unknown_section);
	tcase_add_test(tc, test_text_after_header);
	tcase_add_test(tc, test_value_traps);
	tcase_add_test(tc, test_file_size_limit);
	tcase_add_test(tc, test_key_outside_section);
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_bad_size);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_bad_duration);
	tcase_add_test(tc, test_bad_bool);
	tcase_add_test(tc, test_bad_enum);
	tcase_add_test(tc, test_bad_number);
	tcase_add_test(tc, test_bad_listen);
	tcase_add_test(tc, test_good_listen);
	tcase_add_test(tc, test_bad_path);
	tcase_add_test(tc, test_bad_cidr);
	tcase_add_test(tc, test_value_too_long);
	tcase_add_test(tc, test_line_too_long);
	tcase_add_test(tc, test_longest_line);
	tcase_add_test(tc, test_syntax_errors);
	tcase_add_test(tc, test_many_errors);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_directory);
	tcase_add_test(tc, test_set_overrides);
	tcase_add_test(tc, test_empty_values);
	tcase_add_test(tc, test_bad_secret);
	tcase_add_test(tc, test_key_line);
	tcase_add_test(tc, test_validate);
	tcase_add_test(tc, test_set_twice);
	tcase_add_test(tc, test_list_lines);
	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_example_file);
	suite_add_tcase(s, tc);
	return s;
}

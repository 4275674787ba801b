/*
 * log.c: stderr is pointed at a file in a mkdtemp() directory while a
 * test logs, then the lines are read back and checked; JSON lines are
 * parsed back with cJSON.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "metrics.h"

#define CAPTURE_MAX	(256 * 1024)

static char	tmpdir[256];	/* short, so that paths under it fit */
static char	capture_path[PATH_MAX];
static int	saved_stderr = -1;
static char	captured[CAPTURE_MAX];

static void
setup(void)
{
	const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";

	ck_assert_int_lt(snprintf(tmpdir, sizeof(tmpdir), "%s/check_log.XXXXXX",
	    base), (int)sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(capture_path, sizeof(capture_path), "%s/stderr", tmpdir);
	log_setup(LOG_INFO, LOG_FORMAT_TEXT);
}

static void
teardown(void)
{
	unlink(capture_path);
	rmdir(tmpdir);
}

/* O_APPEND, so that writes from several threads land one after another. */
static void
capture_start(void)
{
	int fd;

	fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(STDERR_FILENO);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Put stderr back and return what was written to it. */
static const char *
capture_end(void)
{
	FILE *fp;
	size_t n;

	ck_assert_int_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	fp = fopen(capture_path, "r");
	ck_assert_ptr_nonnull(fp);
	n = fread(captured, 1, sizeof(captured) - 1, fp);
	fclose(fp);
	captured[n] = '\0';
	return captured;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static int
is_timestamp(const char *s)
{
	static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (size_t i = 0; i < sizeof(form) - 1; i++) {
		if (form[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != form[i])
			return 0;
	}
	return 1;
}

static cJSON *
parse_line(const char *line)
{
	cJSON *obj;

	obj = cJSON_Parse(line);
	ck_assert_msg(obj != NULL, "not JSON: %.300s", line);
	ck_assert(cJSON_IsObject(obj));
	return obj;
}

static const char *
member(const cJSON *obj, const char *key)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);

	ck_assert_msg(cJSON_IsString(m), "no string member %s", key);
	return m->valuestring;
}

START_TEST(test_text_line)
{
	const char *out;

	capture_start();
	log_info("hello %d", 42);
	out = capture_end();
	ck_assert_msg(is_timestamp(out), "%s", out);
	ck_assert_str_eq(out + 24, " info: hello 42\n");
}
END_TEST

START_TEST(test_text_fields)
{
	static const char *const fields[] = {
		"sid", "CA123", "agent", "a b", "q", "say \"hi\"",
		"empty", "", "skipped", NULL, "eq", "a=b", "nl", "x\ny", NULL
	};
	const char *out;

	capture_start();
	log_fields(LOG_WARN, "stored", fields);
	out = capture_end();
	ck_assert_str_eq(out + 24, " warn: stored sid=CA123 agent=\"a b\" "
	    "q=\"say \\\"hi\\\"\" empty=\"\" eq=\"a=b\" nl=\"x\\ny\"\n");
	ck_assert_int_eq(count_lines(out), 1);
}
END_TEST

START_TEST(test_text_control_chars)
{
	const char *out;

	capture_start();
	log_warnx("a\nfake line\x01\ttab \"quoted\"");
	log_fields(LOG_INFO, "no fields", NULL);
	out = capture_end();
	ck_assert_int_eq(count_lines(out), 2);
	ck_assert_ptr_nonnull(strstr(out,
	    " warn: a\\nfake line\\x01\\ttab \"quoted\"\n"));
	ck_assert_ptr_nonnull(strstr(out, " info: no fields\n"));
}
END_TEST

START_TEST(test_json_line)
{
	static const char *const fields[] = {
		"sid", "CA123", "ctl", "a\x01" "b\x1f", "skip", NULL,
		"quote", "\"\\/", "utf8", "caf\xc3\xa9", "status", "413",
		"unlogged", "12", "req", "42", NULL
	};
	const char *out;
	cJSON *obj;

	log_setup(LOG_DEBUG, LOG_FORMAT_JSON);
	capture_start();
	log_fields(LOG_DEBUG, "tab\there\nand \"more\"", fields);
	out = capture_end();
	ck_assert_int_eq(count_lines(out), 1);
	ck_assert_ptr_nonnull(strstr(out, "\"a\\u0001b\\u001f\""));
	ck_assert_ptr_null(strchr(out, '\x01'));
	obj = parse_line(out);
	ck_assert(is_timestamp(member(obj, "time")));
	ck_assert_uint_eq(strlen(member(obj, "time")), 24);
	ck_assert_str_eq(member(obj, "level"), "debug");
	ck_assert_str_eq(member(obj, "msg"), "tab\there\nand \"more\"");
	ck_assert_str_eq(member(obj, "sid"), "CA123");
	ck_assert_str_eq(member(obj, "ctl"), "a\x01" "b\x1f");
	ck_assert_str_eq(member(obj, "quote"), "\"\\/");
	ck_assert_str_eq(member(obj, "utf8"), "caf\xc3\xa9");
	ck_assert_ptr_null(cJSON_GetObjectItem(obj, "skip"));
	/* Codes and counts are numbers; other fields stay strings. */
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(obj, "status")));
	ck_assert_int_eq(cJSON_GetObjectItem(obj, "status")->valueint, 413);
	ck_assert_int_eq(cJSON_GetObjectItem(obj, "unlogged")->valueint, 12);
	ck_assert_str_eq(member(obj, "req"), "42");
	ck_assert_int_eq(cJSON_GetArraySize(obj), 10);
	cJSON_Delete(obj);
}
END_TEST

/* A status that is not a plain decimal is written as it came. */
START_TEST(test_json_odd_number)
{
	static const char *const fields[] = {
		"status", "007", "unlogged", "1e3", NULL
	};
	cJSON *obj;

	log_setup(LOG_DEBUG, LOG_FORMAT_JSON);
	capture_start();
	log_fields(LOG_WARN, "odd", fields);
	obj = parse_line(capture_end());
	ck_assert_str_eq(member(obj, "status"), "007");
	ck_assert_str_eq(member(obj, "unlogged"), "1e3");
	cJSON_Delete(obj);
}
END_TEST

START_TEST(test_json_printf)
{
	const char *out;
	cJSON *obj;

	log_setup(LOG_INFO, LOG_FORMAT_JSON);
	capture_start();
	log_errorx("%s failed after %d tries", "store", 3);
	out = capture_end();
	obj = parse_line(out);
	ck_assert_str_eq(member(obj, "level"), "error");
	ck_assert_str_eq(member(obj, "msg"), "store failed after 3 tries");
	cJSON_Delete(obj);
}
END_TEST

START_TEST(test_strerror)
{
	const char *out;

	capture_start();
	errno = ENOENT;
	log_warn("open %s", "/nope");
	ck_assert_int_eq(errno, ENOENT);
	errno = EACCES;
	log_error("bind");
	ck_assert_int_eq(errno, EACCES);
	log_warnx("no errno");
	out = capture_end();
	ck_assert_int_eq(count_lines(out), 3);
	ck_assert_ptr_nonnull(strstr(out,
	    " warn: open /nope: No such file or directory\n"));
	ck_assert_ptr_nonnull(strstr(out, " error: bind: Permission denied\n"));
	ck_assert_ptr_nonnull(strstr(out, " warn: no errno\n"));
}
END_TEST

START_TEST(test_levels)
{
	const char *out;

	log_setup(LOG_WARN, LOG_FORMAT_TEXT);
	ck_assert(log_enabled(LOG_ERROR));
	ck_assert(log_enabled(LOG_WARN));
	ck_assert(!log_enabled(LOG_INFO));
	ck_assert(!log_enabled(LOG_DEBUG));
	capture_start();
	log_debug("d");
	log_info("i");
	log_fields(LOG_INFO, "f", NULL);
	log_warnx("w");
	log_errorx("e");
	out = capture_end();
	ck_assert_int_eq(count_lines(out), 2);
	ck_assert_ptr_nonnull(strstr(out, " warn: w\n"));
	ck_assert_ptr_nonnull(strstr(out, " error: e\n"));

	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	capture_start();
	log_warnx("w");
	out = capture_end();
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_level_names)
{
	ck_assert_int_eq(log_level_from_name("error"), LOG_ERROR);
	ck_assert_int_eq(log_level_from_name("warn"), LOG_WARN);
	ck_assert_int_eq(log_level_from_name("Info"), LOG_INFO);
	ck_assert_int_eq(log_level_from_name("debug"), LOG_DEBUG);
	ck_assert_int_eq(log_level_from_name("warning"), -1);
	ck_assert_int_eq(log_level_from_name(""), -1);
	ck_assert_str_eq(log_level_name(LOG_ERROR), "error");
	ck_assert_str_eq(log_level_name(LOG_DEBUG), "debug");
	ck_assert_str_eq(log_level_name(7), "unknown");
}
END_TEST

/*
 * Under systemd, standard error is the journal's stream: each line
 * starts with its syslog priority, which journald takes off and stores,
 * or every error and warning was stored at info. Only when
 * $JOURNAL_STREAM names standard error itself.
 */
START_TEST(test_journal_priority)
{
	char env[64], *line;
	const char *out;
	struct stat sb;
	cJSON *obj;

	capture_start();
	ck_assert_int_eq(fstat(STDERR_FILENO, &sb), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)sb.st_dev,
	    (unsigned long long)sb.st_ino);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", env, 1), 0);
	log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
	ck_assert_str_eq(log_priority_prefix(LOG_ERROR), "<3>");
	log_errorx("e");
	log_warnx("w");
	log_info("i");
	log_debug("d");
	log_setup(LOG_DEBUG, LOG_FORMAT_JSON);
	log_warnx("j");
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)sb.st_dev,
	    (unsigned long long)sb.st_ino + 1);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", env, 1), 0);
	log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
	log_errorx("other stream");
	ck_assert_int_eq(unsetenv("JOURNAL_STREAM"), 0);
	log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
	ck_assert_str_eq(log_priority_prefix(LOG_ERROR), "");
	log_errorx("no stream");
	out = capture_end();
	ck_assert_int_eq(count_lines(out), 7);
	ck_assert_msg(strncmp(out, "<3>", 3) == 0 && is_timestamp(out + 3),
	    "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "Z error: e\n<4>"));
	ck_assert_ptr_nonnull(strstr(out, "Z warn: w\n<6>"));
	ck_assert_ptr_nonnull(strstr(out, "Z info: i\n<7>"));
	ck_assert_ptr_nonnull(line = strstr(out, "Z debug: d\n<4>{"));
	line = strchr(line, '\n') + 4;
	*strchr(line, '\n') = '\0';
	obj = parse_line(line);
	ck_assert_str_eq(member(obj, "msg"), "j");
	cJSON_Delete(obj);
	line += strlen(line) + 1;
	ck_assert_msg(is_timestamp(line) && strstr(line, " error: other "
	    "stream\n") != NULL, "%s", line);
	line = strchr(line, '\n') + 1;
	ck_assert_msg(is_timestamp(line) && strstr(line, " error: no "
	    "stream\n") != NULL, "%s", line);
}
END_TEST

/* A line that does not fit is cut, stays one line, and stays JSON. */
START_TEST(test_truncation)
{
	static char big[10000];
	const char *fields[] = { "k", big, NULL };
	const char *out;
	cJSON *obj;
	size_t len;

	memset(big, '\x02', sizeof(big) - 1);
	log_setup(LOG_INFO, LOG_FORMAT_JSON);
	capture_start();
	log_fields(LOG_INFO, big, NULL);
	log_fields(LOG_INFO, "short", fields);
	log_info("%s", big);
	out = capture_end();
	ck_assert_int_eq(count_lines(out), 3);
	for (const char *line = out; *line != '\0'; line += len) {
		len = strcspn(line, "\n") + 1;
		ck_assert_uint_le(len, 4096);
		ck_assert_uint_gt(len, 4000);
		obj = parse_line(line);
		ck_assert_ptr_nonnull(strstr(line, "\\u0002\"}"));
		cJSON_Delete(obj);
	}

	memset(big, 'x', sizeof(big) - 1);
	log_setup(LOG_INFO, LOG_FORMAT_TEXT);
	capture_start();
	log_fields(LOG_INFO, "short", fields);
	log_fields(LOG_INFO, big, fields);
	out = capture_end();
	ck_assert_int_eq(count_lines(out), 2);
	len = strcspn(out, "\n") + 1;
	ck_assert_uint_le(len, 4096);
	ck_assert_int_eq(memcmp(out + len - 3, "xx\n", 3), 0);
	ck_assert_uint_le(strlen(out + len), 4096);
}
END_TEST

/* A multi-byte character is never cut in half, whatever the alignment. */
START_TEST(test_truncation_utf8)
{
	static char big[8001];
	const char *fields[] = { "k", big, NULL };
	const char *out, *end;
	cJSON *obj;

	big[0] = 'x';
	for (size_t i = 1; i + 2 < sizeof(big); i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	log_setup(LOG_INFO, LOG_FORMAT_JSON);
	capture_start();
	log_fields(LOG_INFO, big, NULL);
	log_fields(LOG_INFO, big + 1, NULL);
	log_fields(LOG_INFO, "short", fields);
	out = capture_end();
	ck_assert_int_eq(count_lines(out), 3);
	for (; *out != '\0'; out = end + 1) {
		end = strchr(out, '\n');
		ck_assert_int_eq(memcmp(end - 4, "\xc3\xa9\"}", 4), 0);
		obj = parse_line(out);
		cJSON_Delete(obj);
	}
}
END_TEST

#define THREADS		4
#define PER_THREAD	200

static void *
spam(void *arg)
{
	static const char pad[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	long id = (long)arg;

	for (int i = 0; i < PER_THREAD; i++)
		log_info("thread %ld line %d %s%s%s", id, i, pad, pad, pad);
	return NULL;
}

/* One write(2) per line: lines from several threads never interleave. */
START_TEST(test_threads)
{
	pthread_t t[THREADS];
	const char *out, *line;
	size_t len;
	int n = 0;

	capture_start();
	for (long i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, spam, (void *)i),
		    0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	out = capture_end();
	for (line = out; *line != '\0'; line += len, n++) {
		len = strcspn(line, "\n") + 1;
		ck_assert(is_timestamp(line));
		ck_assert_int_eq(strncmp(line + 24, " info: thread ", 14), 0);
		ck_assert_int_eq(strncmp(line + len - 4, "xyz\n", 4), 0);
	}
	ck_assert_int_eq(n, THREADS * PER_THREAD);
}
END_TEST

/*
 * format_utc_ms() (metrics.c), the received_at of every row: it keeps
 * the formatted second per thread, so going back and forth between
 * seconds, and every millisecond digit, must still come out right.
 */
START_TEST(test_utc_ms)
{
	static const struct {
		uint64_t	 ms;
		const char	*text;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ UINT64_C(1764259200123), "2025-11-27T16:00:00.123Z" },
		{ UINT64_C(1764259200999), "2025-11-27T16:00:00.999Z" },
		{ UINT64_C(1764259201007), "2025-11-27T16:00:01.007Z" },
		{ UINT64_C(1764259200045), "2025-11-27T16:00:00.045Z" },
		{ UINT64_C(253402300799999), "9999-12-31T23:59:59.999Z" },
		{ UINT64_C(253402300800000), "10000-01-01T00:00:00.000Z" },
		{ UINT64_C(1764259200500), "2025-11-27T16:00:00.500Z" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		format_utc_ms(cases[i].ms, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].text);
	}
	/*
	 * Buffers of every size up to one byte more than the text: a cut,
	 * terminated string, as snprintf() gives, and not a byte past the
	 * buffer (each is its own allocation, for ASan and valgrind).
	 */
	for (size_t len = 1; len <= 26; len++) {
		char *exact = malloc(len);

		ck_assert_ptr_nonnull(exact);
		format_utc_ms(UINT64_C(1764259200123), exact, len);
		ck_assert_uint_eq(strlen(exact), len < 25 ? len - 1 : 24);
		ck_assert_int_eq(strncmp(exact, "2025-11-27T16:00:00.123Z",
		    len - 1), 0);
		free(exact);
	}
}
END_TEST

Suite *log_suite(void);

Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_text_line);
	tcase_add_test(tc, test_text_fields);
	tcase_add_test(tc, test_text_control_chars);
	tcase_add_test(tc, test_json_line);
	tcase_add_test(tc, test_json_odd_number);
	tcase_add_test(tc, test_json_printf);
	tcase_add_test(tc, test_strerror);
	tcase_add_test(tc, test_levels);
	tcase_add_test(tc, test_level_names);
	tcase_add_test(tc, test_journal_priority);
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_truncation_utf8);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_utc_ms);
	suite_add_tcase(s, tc);
	return s;
}

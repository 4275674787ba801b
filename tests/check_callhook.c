/*
 * callhook end to end: the real build/callhook (or $CALLHOOK) against a
 * database filled by the real daemon (or $CALLHOOKD) and by import. Every
 * output format is read back: tables line by line, CSV with the small
 * RFC 4180 reader below, JSON with cJSON.
 */

#include <sys/mount.h>
#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "testutil.h"

Suite	*callhook_suite(void);

#define PATH	"/webhook/call-webhook"
#define JSON	"application/json"
#define SID	"2303fa770b666a64ab1694c1e"
#define AGENT	"6803fa770b666a64ab1694c1e"
#define NCALLS	7	/* what fill() posts */

static struct daemon_proc d;
static char *out, *err;		/* of the last run */
static char recent_time[32];	/* call_time of v-recent, an hour ago */

static void
setup(void)
{
	tu_tmpdir(&d);
	ck_assert_msg(tu_start(&d, NULL, NULL) == 0, "daemon did not start");
	out = err = NULL;
}

static void
teardown(void)
{
	free(out);
	free(err);
	out = err = NULL;
	tu_cleanup(&d);
}

static const char *
callhook(void)
{
	const char *bin = getenv("CALLHOOK");

	return bin != NULL ? bin : "build/callhook";
}

/* A path in the test's directory; the last 16 stay valid. */
static char *
tmp_path(const char *name)
{
	static char buf[16][400];
	static int next;
	char *p = buf[next++ % 16];

	snprintf(p, sizeof(buf[0]), "%s/%s", d.dir, name);
	return p;
}

/*
 * Run "env callhook [-d db] args" (args in the test's own shell quoting),
 * keeping stdout in out and stderr in err. Returns the exit status.
 */
static int
vrun(const char *env, const char *db, const char *fmt, va_list ap)
{
	char args[4096], dbarg[400] = "", o[300], e[300];
	int rc;

	vsnprintf(args, sizeof(args), fmt, ap);
	if (db != NULL)
		snprintf(dbarg, sizeof(dbarg), "-d '%s'", db);
	snprintf(o, sizeof(o), "%s/out", d.dir);
	snprintf(e, sizeof(e), "%s/err", d.dir);
	rc = tu_sh("%s '%s' %s %s >'%s' 2>'%s' </dev/null", env, callhook(),
	    dbarg, args, o, e);
	free(out);
	free(err);
	out = tu_read_file(o, NULL);
	err = tu_read_file(e, NULL);
	ck_assert(out != NULL && err != NULL);
	return rc;
}

/* On the daemon's database. */
static int
ch(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vrun("", d.db, fmt, ap);
	va_end(ap);
	return rc;
}

static int
ch_on(const char *db, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vrun("", db, fmt, ap);
	va_end(ap);
	return rc;
}

/* On db, after the shell commands in env (ulimit, trap). */
static int
ch_env(const char *env, const char *db, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vrun(env, db, fmt, ap);
	va_end(ap);
	return rc;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* A failure says what it is in exactly one line. */
static void
expect_fail(int rc, int want, const char *needle)
{
	ck_assert_msg(rc == want, "exit %d, want %d; stderr: %s", rc, want,
	    err);
	ck_assert_msg(strstr(err, needle) != NULL, "stderr lacks \"%s\": %s",
	    needle, err);
	if (want == 1)
		ck_assert_msg(count_lines(err) == 1, "not one line: %s", err);
	else
		ck_assert_msg(strstr(err, "usage: callhook") != NULL,
		    "no usage line: %s", err);
}

static void
post_ok(const char *body)
{
	struct reply r;

	ck_assert_int_eq(tu_post(d.port, PATH, JSON, body, strlen(body), &r),
	    0);
	ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
	tu_reply_free(&r);
}

/*
 * A fixture as one line of compact JSON, members of data replaced (or,
 * for a NULL value, removed).
 */
static char *
variant_v(const char *fixture, va_list ap)
{
	char *body = tu_fixture(fixture, NULL), *text;
	cJSON *root = cJSON_Parse(body), *data, *v;
	const char *key, *val;

	ck_assert_ptr_nonnull(root);
	data = cJSON_GetObjectItem(root, "data");
	while ((key = va_arg(ap, const char *)) != NULL) {
		val = va_arg(ap, const char *);
		if (val == NULL) {
			cJSON_DeleteItemFromObject(data, key);
			continue;
		}
		ck_assert_msg((v = cJSON_Parse(val)) != NULL, "%s", val);
		if (cJSON_HasObjectItem(data, key))
			cJSON_ReplaceItemInObject(data, key, v);
		else
			cJSON_AddItemToObject(data, key, v);
	}
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	free(body);
	return text;
}

static char *
variant(const char *fixture, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fixture);
	text = variant_v(fixture, ap);
	va_end(ap);
	return text;
}

static void
post_variant(const char *fixture, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fixture);
	text = variant_v(fixture, ap);
	va_end(ap);
	post_ok(text);
	free(text);
}

static void
post_fixture(const char *name)
{
	char *body = tu_fixture(name, NULL);

	post_ok(body);
	free(body);
}

/*
 * The calls most tests look at: the three fixtures (agent AGENT, all at
 * 2025-12-19 16:01:07), two calls of agent-B, an old one of agent-C and
 * one an hour ago.
 */
static void
fill(void)
{
	char quoted[64];
	time_t t = time(NULL) - 3600;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(recent_time, sizeof(recent_time), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(quoted, sizeof(quoted), "\"%s\"", recent_time);
	post_fixture("call_ended.json");
	post_fixture("call_ended_inbound.json");
	post_fixture("call_ended_long.json");
	post_variant("call_ended.json", "callSid", "\"v-b1\"",
	    "agent", "\"agent-B\"", "time", "\"2025-12-20 09:00:00\"",
	    "to", "\"+919876511111\"", "call_duration", "30",
	    "hangup_reason", "\"NO_ANSWER\"", "conversion_status", "false",
	    "next_call_scheduled", "false", "batchId", "\"batch-2\"",
	    "functions_called", "[{\"name\":\"send_sms\",\"success\":false}]",
	    "transcription", "\"Nobody picked up\"",
	    "disposition_reason", "\"No answer\"", "post_call", "{}", NULL);
	post_variant("call_ended.json", "callSid", "\"v-b2\"",
	    "agent", "\"agent-B\"", "time", "\"2025-12-21 10:30:00\"",
	    "to", "\"9876511111\"", "call_duration", "95",
	    "conversion_status", "true", "next_call_scheduled", "true",
	    "batchId", "\"batch-2\"", "functions_called",
	    "[{\"name\":\"update_crm\",\"success\":true},"
	    "{\"name\":\"send_sms\",\"success\":true}]",
	    "transcription", "\"Please arrange a callback, thank you\"",
	    "disposition_reason", "\"Wants, \\\"pricing\\\"\\nand details\"",
	    "post_call", "{\"lead_status\":\"converted\"}", NULL);
	post_variant("call_ended.json", "callSid", "\"v-old\"",
	    "agent", "\"agent-C\"", "time", "\"2020-01-01 08:00:00\"",
	    "to", "\"918000000001\"", "transcription",
	    "\"zebra ancient words\"", "disposition_reason", "\"Old\"", NULL);
	post_variant("call_ended.json", "callSid", "\"v-recent\"",
	    "agent", "\"agent-C\"", "time", quoted, "to", "\"918000000002\"",
	    NULL);
	ck_assert_int_eq(tu_wait_indexed(d.port, 2000), 0);
}

/* The lines of the table in out that are not the header. */
static int
table_rows(void)
{
	ck_assert_msg(strncmp(out, "TIME", 4) == 0, "no header: %s", out);
	return count_lines(out) - 1;
}

/* Every line fits 80 terminal columns. */
static void
expect_width(const char *text, int width)
{
	const char *p = text, *nl;
	wchar_t wbuf[1024];
	char line[4096];
	int w;

	setlocale(LC_CTYPE, "C.UTF-8");
	for (; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		ck_assert_ptr_nonnull(nl);
		snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
		ck_assert(mbstowcs(wbuf, line, 1024) != (size_t)-1);
		w = wcswidth(wbuf, 1024);
		ck_assert_msg(w <= width, "%d columns: %s", w, line);
	}
}

/*
 * RFC 4180: fields separated by commas, records by CRLF, quoted fields
 * may hold commas, CRLF and doubled quotes. Returns a cJSON array of
 * arrays of strings, or NULL when the text is not well-formed CSV.
 */
static cJSON *
csv_parse(const char *s)
{
	cJSON *rows = cJSON_CreateArray(), *row = cJSON_CreateArray();
	char field[65536];
	size_t n = 0;

	for (;;) {
		n = 0;
		if (*s == '"') {
			for (s++; !(s[0] == '"' && s[1] != '"'); s++) {
				if (*s == '\0')
					goto bad;
				if (s[0] == '"')
					s++;
				field[n++] = *s;
			}
			s++;
		} else {
			for (; *s != ',' && *s != '\r' && *s != '\0'; s++) {
				if (*s == '"' || *s == '\n')
					goto bad;
				field[n++] = *s;
			}
		}
		field[n] = '\0';
		cJSON_AddItemToArray(row, cJSON_CreateString(field));
		if (*s == ',') {
			s++;
			continue;
		}
		if (s[0] != '\r' || s[1] != '\n')
			goto bad;
		s += 2;
		cJSON_AddItemToArray(rows, row);
		if (*s == '\0')
			return rows;
		row = cJSON_CreateArray();
	}
 bad:
	cJSON_Delete(row);
	cJSON_Delete(rows);
	return NULL;
}

/* The value of column name in CSV row i (0 is the first after the header). */
static const char *
csv_get(cJSON *rows, int i, const char *name)
{
	cJSON *head = cJSON_GetArrayItem(rows, 0);
	int n = cJSON_GetArraySize(head);

	for (int c = 0; c < n; c++)
		if (strcmp(cJSON_GetArrayItem(head, c)->valuestring, name) == 0)
			return cJSON_GetArrayItem(cJSON_GetArrayItem(rows,
			    i + 1), c)->valuestring;
	ck_abort_msg("no column %s", name);
	return NULL;
}

/* The object of array arr whose member key is the string val. */
static cJSON *
find_obj(cJSON *arr, const char *key, const char *val)
{
	cJSON *it, *v;

	cJSON_ArrayForEach(it, arr) {
		v = cJSON_GetObjectItem(it, key);
		if (cJSON_IsString(v) && strcmp(v->valuestring, val) == 0)
			return it;
	}
	ck_abort_msg("no object with %s = %s", key, val);
	return NULL;
}

static double
num(cJSON *obj, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(obj, key);

	ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", key);
	return v->valuedouble;
}

static long long
db_int(const char *db, const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	long long v = -1;

	ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL),
	    SQLITE_OK);
	sqlite3_busy_timeout(h, 5000);
	ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(h));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

static void
db_exec(const char *db, const char *sql)
{
	sqlite3 *h;

	ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
	sqlite3_busy_timeout(h, 5000);
	ck_assert_msg(sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(h));
	sqlite3_close(h);
}

/* FTS5's own check that calls_fts matches calls. */
static void
expect_fts_intact(const char *db)
{
	db_exec(db, "INSERT INTO calls_fts (calls_fts, rank)"
	    " VALUES ('integrity-check', 1)");
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	ck_assert_int_eq(fclose(fp), 0);
}

/*
 * callhook args writing to stdout redirected as in redir: exit 1, one
 * line on output, with the error of the write.
 */
static void
bad_output(const char *args, const char *redir, int error)
{
	char want[128];

	ck_assert_int_eq(tu_sh("'%s' -d '%s' %s %s 2>'%s'", callhook(), d.db,
	    args, redir, tmp_path("err")), 1);
	free(err);
	err = tu_read_file(tmp_path("err"), NULL);
	ck_assert_ptr_nonnull(err);
	snprintf(want, sizeof(want), "callhook: output: %s\n",
	    strerror(error));
	ck_assert_msg(count_lines(err) == 1 && strstr(err, want) != NULL,
	    "%s %s: %s", args, redir, err);
}

static void
full_output(const char *args)
{
	bad_output(args, ">/dev/full", ENOSPC);
}

START_TEST(test_errors)
{
	fill();
	expect_fail(ch_on(tmp_path("nope.db"), "list"), 1, "no such file");
	write_file(tmp_path("text.db"), "hello, this is not SQLite\n");
	expect_fail(ch_on(tmp_path("text.db"), "list"), 1,
	    "is not a callhookd database");
	write_file(tmp_path("empty.db"), "");
	expect_fail(ch_on(tmp_path("empty.db"), "list"), 1,
	    "empty.db is empty: callhookd has not stored anything in it yet");
	db_exec(tmp_path("other.db"), "CREATE TABLE t (x)");
	expect_fail(ch_on(tmp_path("other.db"), "stats"), 1,
	    "is not a callhookd database");
	ck_assert_int_eq(tu_sh("cp '%s' '%s'", d.db, tmp_path("new.db")), 0);
	db_exec(tmp_path("new.db"), "PRAGMA user_version = 99");
	expect_fail(ch_on(tmp_path("new.db"), "list"), 1, "newer");
	/* A write command must not create or migrate what it refuses. */
	expect_fail(ch_on(tmp_path("nope.db"), "prune --older-than 1d"), 1,
	    "no such file");
	ck_assert_int_ne(access(tmp_path("nope.db"), F_OK), 0);
	expect_fail(ch_on(tmp_path("new.db"), "import /dev/null"), 1,
	    "newer");
	expect_fail(ch_on(tmp_path("other.db"), "backup '%s'",
	    tmp_path("b.db")), 1, "not a callhookd database");
	expect_fail(ch_on(tmp_path("nope.db"), "show x"), 1, "no such file");
	expect_fail(ch("show nosuchcall"), 1, "no call with callSid");
	/* SQLite's open of a FIFO waited for a writer for ever. */
	ck_assert_int_eq(mkfifo(tmp_path("fifo.db"), 0600), 0);
	expect_fail(ch_on(tmp_path("fifo.db"), "list"), 1,
	    "fifo.db: not a regular file, so not a database");
	expect_fail(ch_on(tmp_path("fifo.db"), "import /dev/null"), 1,
	    "not a regular file");
	expect_fail(ch_on("/dev/zero", "stats"), 1, "not a regular file");
	/* Help and version fail like any command that cannot write. */
	ck_assert_int_eq(tu_sh("'%s' --help >/dev/full 2>/dev/null",
	    callhook()), 1);
	ck_assert_int_eq(tu_sh("'%s' -V >/dev/full 2>/dev/null", callhook()),
	    1);

	expect_fail(ch(""), 2, "usage");
	expect_fail(ch("frobnicate"), 2, "unknown command");
	expect_fail(ch("list --bogus"), 2, "callhook list: unrecognized option");
	expect_fail(ch("list --since yesterday"), 2, "not a time");
	expect_fail(ch("list --since 2025-02-30"), 2, "not a time");
	expect_fail(ch("list --format xml"), 2, "unknown format");
	expect_fail(ch("list --limit -3"), 2, "not a count");
	expect_fail(ch("list --number abc"), 2, "not a phone number");
	expect_fail(ch("list extra"), 2, "unexpected argument");
	expect_fail(ch("list --converted --not-converted"), 2,
	    "match no call together");
	expect_fail(ch("history"), 2, "a number is needed");
	expect_fail(ch("search"), 2, "a query is needed");
	expect_fail(ch("search ' '"), 2, "nothing to search for");
	expect_fail(ch("stats --by colour"), 2, "--by colour");
	expect_fail(ch("export --format json"), 2, "unknown format");
	expect_fail(ch("prune"), 2, "--older-than is needed");
	expect_fail(ch("backup"), 2, "DEST is needed");
	expect_fail(ch_on(NULL, "-d a -c b list"), 2, "cannot be used");
	expect_fail(ch_on(NULL, "-d '' list"), 2, "-d: ");
	expect_fail(ch_on(NULL, "-c '' list"), 2,
	    "-c: the file name is empty");
	expect_fail(ch_on(NULL, "-d :memory: list"), 2, "not a file path");
	expect_fail(ch_on(NULL, "-d 'file:x?mode=ro' list"), 2,
	    "not a file path");
	/* A full output says so, once, and not as a database error. */
	full_output("list");
	full_output("stats");
	full_output("export");
	full_output("export --format jsonl");
	full_output("list --format csv");
	full_output("history 919876543210 --format json");
	bad_output("list", ">&-", EBADF);
	ck_assert_int_eq(ch("list --help"), 0);
	ck_assert(strstr(out, "usage: callhook") != NULL);
	ck_assert(strstr(out, "--since") != NULL);
	ck_assert_int_eq(ch_on(NULL, "--help"), 0);
	ck_assert(strstr(out, "rejects") != NULL);
	ck_assert(strstr(out, "restore BACKUP") != NULL);
	/* As callhook(1) has them: every option, and no -c, no config. */
	ck_assert_msg(strstr(out, "-d, --database DB") != NULL && strstr(out,
	    "-c, --config CONFIG") != NULL && strstr(out, "-V, --version") !=
	    NULL, "%s", out);
	ck_assert_msg(strstr(out, "(default: calls.db in the working") != NULL,
	    "%s", out);
}
END_TEST

START_TEST(test_config)
{
	char ini[600], abs[PATH_MAX];
	cJSON *arr;

	fill();
	snprintf(ini, sizeof(ini), "[store]\ndatabase = %s\n", d.db);
	write_file(tmp_path("c.ini"), ini);
	ck_assert_int_eq(ch_on(NULL, "-c '%s' list --format json",
	    tmp_path("c.ini")), 0);
	arr = cJSON_Parse(out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), NCALLS);
	cJSON_Delete(arr);
	write_file(tmp_path("bad.ini"), "[store]\nnosuchkey = 1\n");
	expect_fail(ch_on(NULL, "-c '%s' list", tmp_path("bad.ini")), 1,
	    "bad.ini:2");
	/* The default is ./calls.db. */
	ck_assert_ptr_nonnull(realpath(callhook(), abs));
	ck_assert_int_eq(tu_sh("cd '%s' && '%s' list >/dev/null", d.dir, abs),
	    0);
	ck_assert_int_eq(tu_sh("cd / && '%s' list 2>/dev/null", abs), 1);

	/*
	 * A relative database in -c's file is callhookd's, from its own
	 * working directory: found here when here, else explained, and
	 * never created by a write command.
	 */
	write_file(tmp_path("rel.ini"), "[store]\ndatabase = calls.db\n");
	ck_assert_int_eq(tu_sh("cd '%s' && '%s' -c rel.ini list >/dev/null",
	    d.dir, abs), 0);
	ck_assert_int_eq(tu_sh("mkdir '%s' && cd '%s' && '%s' -c ../rel.ini "
	    "list 2>'%s'", tmp_path("elsewhere"), tmp_path("elsewhere"), abs,
	    tmp_path("err")), 1);
	ck_assert_int_eq(tu_sh("grep -q 'rel.ini gives \\[store\\] database "
	    "as a relative path' '%s'", tmp_path("err")), 0);
	ck_assert_int_eq(tu_sh("cd '%s' && '%s' -c ../rel.ini import /dev/null "
	    "2>/dev/null", tmp_path("elsewhere"), abs), 1);
	ck_assert_int_ne(access(tmp_path("elsewhere/calls.db"), F_OK), 0);
}
END_TEST

START_TEST(test_list_table)
{
	const char *p;

	fill();
	ck_assert_int_eq(ch("list"), 0);
	ck_assert_int_eq(table_rows(), NCALLS);
	expect_width(out, 80);
	/* Newest first: the recent call, then agent-B's of the 21st. */
	p = strchr(out, '\n') + 1;
	ck_assert_msg(strncmp(p, recent_time, 16) == 0, "%s", out);
	p = strchr(p, '\n') + 1;
	ck_assert_msg(strncmp(p, "2025-12-21 10:30  outbound  agent-B", 35) ==
	    0 || strncmp(p, "2025-12-21 10:30 outbound agent-B", 33) == 0,
	    "%s", out);
	ck_assert_msg(strstr(p, " 1:35 ") != NULL, "m:ss: %s", out);
	ck_assert_msg(strstr(out, " 6:52 ") != NULL, "m:ss: %s", out);
	ck_assert_msg(strstr(out, "converted") != NULL, "lead: %s", out);
	/* The long agent id is cut, with an ellipsis. */
	ck_assert_msg(strstr(out, "\xe2\x80\xa6") != NULL, "%s", out);
	ck_assert_msg(strstr(out, AGENT) == NULL, "%s", out);

	ck_assert_int_eq(ch("list --limit 2"), 0);
	ck_assert_int_eq(table_rows(), 2);
	ck_assert_int_eq(ch("list --agent agent-B"), 0);
	ck_assert_int_eq(table_rows(), 2);
	ck_assert_int_eq(ch("list --batch batch-2 --converted"), 0);
	ck_assert_int_eq(table_rows(), 1);
	ck_assert_int_eq(ch("list --not-converted"), 0);
	ck_assert_int_eq(table_rows(), 2);
	ck_assert_int_eq(ch("list --hangup NO_ANSWER"), 0);
	ck_assert_int_eq(table_rows(), 1);
	ck_assert_int_eq(ch("list --since 2025-12-19 --until 2025-12-20"), 0);
	ck_assert_int_eq(table_rows(), 4);
	ck_assert_int_eq(ch("list --since '2025-12-20 09:00' --until "
	    "'2025-12-21 10:29'"), 0);
	ck_assert_int_eq(table_rows(), 1);
	ck_assert_int_eq(ch("list --since 7d"), 0);
	ck_assert_int_eq(table_rows(), 1);
	/* 30 days in minutes are 30 days: the limit is a hundred years. */
	ck_assert_int_eq(ch("list --since 43200m"), 0);
	ck_assert_int_eq(table_rows(), 1);
	expect_fail(ch("list --since 52704001m"), 2, "not a time");
	ck_assert_int_eq(ch("list --until 12h"), 0);
	ck_assert_int_eq(table_rows(), NCALLS - 1);
	/* The last day there is: its end is not a date. */
	ck_assert_int_eq(ch("list --until 9999-12-31"), 0);
	ck_assert_int_eq(table_rows(), NCALLS);
	ck_assert_int_eq(ch("list --until '9999-12-31 23:59:59'"), 0);
	ck_assert_int_eq(table_rows(), NCALLS);
	ck_assert_int_eq(ch("list --agent nobody"), 0);
	ck_assert_str_eq(out, "");
	ck_assert_str_eq(err, "no calls\n");
}
END_TEST

/*
 * --agent, --batch and --hangup are exact matches, --converted and
 * --not-converted read conversion_status as sent (a call without it is
 * neither), and list shows 50 calls unless --limit says otherwise (0:
 * all). fill()'s few calls could not tell these from near misses.
 */
START_TEST(test_filters_exact)
{
	char *jsonl = tmp_path("many.jsonl"), *newdb = tmp_path("many.db");
	char sid[32], *line;
	FILE *fp;

	ck_assert_ptr_nonnull(fp = fopen(jsonl, "w"));
	for (int i = 0; i < 50; i++) {
		snprintf(sid, sizeof(sid), "\"many-%d\"", i);
		line = variant("call_ended.json", "callSid", sid, "agent",
		    "\"agent-B\"", "conversion_status", "true", NULL);
		fprintf(fp, "%s\n", line);
		free(line);
	}
	line = variant("call_ended.json", "callSid", "\"unknown\"", "agent",
	    "\"agent-C\"", "conversion_status", NULL, NULL);
	fprintf(fp, "%s\n", line);
	free(line);
	fclose(fp);
	ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 0);

	ck_assert_int_eq(ch_on(newdb, "list"), 0);
	ck_assert_int_eq(table_rows(), 50);
	ck_assert_int_eq(ch_on(newdb, "list --limit 0"), 0);
	ck_assert_int_eq(table_rows(), 51);
	/* Exact: no case folding, no LIKE or GLOB wildcards. */
	ck_assert_int_eq(ch_on(newdb, "list --agent AGENT-B"), 0);
	ck_assert_str_eq(err, "no calls\n");
	ck_assert_int_eq(ch_on(newdb, "list --agent 'agent-%%'"), 0);
	ck_assert_str_eq(err, "no calls\n");
	ck_assert_int_eq(ch_on(newdb, "list --agent 'agent-?'"), 0);
	ck_assert_str_eq(err, "no calls\n");
	ck_assert_int_eq(ch_on(newdb, "list --agent agent-C"), 0);
	ck_assert_int_eq(table_rows(), 1);
	ck_assert_int_eq(ch_on(newdb, "list --not-converted"), 0);
	ck_assert_str_eq(err, "no calls\n");
	ck_assert_int_eq(ch_on(newdb, "list --converted --limit 0"), 0);
	ck_assert_int_eq(table_rows(), 50);
}
END_TEST

/*
 * A call_time in another form than "YYYY-MM-DD HH:MM:SS" is kept as sent,
 * and cut like any long value rather than widening the table.
 */
START_TEST(test_list_time_forms)
{
	char *a = variant("call_ended.json", "callSid", "\"t1\"", "time",
	    "\"2025-12-19T16:01:07.000+05:30\"", "call_duration", "3600",
	    "post_call", "{\"lead_status\":\"not_interested\"}", NULL);
	char *b = variant("call_ended.json", "callSid", "\"t2\"", "time",
	    "\"2025-12-19T16:01:07Z\"", NULL);
	char lines[8192];

	snprintf(lines, sizeof(lines), "%s\n%s\n", a, b);
	free(a);
	free(b);
	write_file(tmp_path("t.jsonl"), lines);
	ck_assert_int_eq(ch_on(tmp_path("t.db"), "import '%s'",
	    tmp_path("t.jsonl")), 0);
	ck_assert_int_eq(ch_on(tmp_path("t.db"), "list"), 0);
	ck_assert_int_eq(table_rows(), 2);
	expect_width(out, 80);
	ck_assert_msg(strstr(out, "2025-12-19T16:0\xe2\x80\xa6") != NULL, "%s",
	    out);
}
END_TEST

/* callhook args on a terminal (script(1) makes one), with env before. */
static void
on_tty(const char *env, const char *args)
{
	ck_assert_int_eq(tu_sh("%s TERM=xterm script -qec \"'%s' -d '%s' "
	    "%s\" /dev/null >'%s' 2>&1 </dev/null", env, callhook(), d.db,
	    args, tmp_path("out")), 0);
	free(out);
	out = tu_read_file(tmp_path("out"), NULL);
	ck_assert_ptr_nonnull(out);
}

/* A control character from the network never reaches the terminal. */
START_TEST(test_table_clean)
{
	post_variant("call_ended.json", "agent",
	    "\"\\u001b[2J\\u001b]0;pwned\\u0007\\u009b2Jevil\\u0001m\\u0002\"",
	    "post_call",
	    "{\"lead_status\":\"बहुत रुचि है, कल फिर से कॉल करें\"}",
	    "hangup_reason", "\"A_VERY_LONG_HANGUP_REASON_THAT_GOES_ON\"",
	    NULL);
	ck_assert_int_eq(ch("list"), 0);
	ck_assert_msg(strchr(out, '\033') == NULL && strchr(out, '\a') ==
	    NULL, "%s", out);
	ck_assert(strstr(out, "evil") != NULL || strstr(out, "\xe2\x80\xa6"));
	expect_width(out, 80);
	/* A duration no call has (the daemon keeps it) is shown as such. */
	post_variant("call_ended.json", "callSid", "\"huge\"",
	    "call_duration", "1e300", NULL);
	ck_assert_int_eq(ch("show huge"), 0);
	ck_assert_msg(strstr(out, ">99999999:00:00") != NULL, "%s", out);
	ck_assert_int_eq(ch("list --format json"), 0);
	ck_assert(strstr(out, "\\u001b[2J") != NULL);
	/* C1 too: U+009B is CSI to some terminals. */
	ck_assert_msg(strstr(out, "\\u009b2J") != NULL && strstr(out,
	    "\xc2\x9b") == NULL, "%s", out);
	/* CSV is the data as stored, but not on a terminal. */
	ck_assert_int_eq(ch("list --format csv"), 0);
	ck_assert(strstr(out, "\033]0;pwned\a\xc2\x9b" "2Jevil") != NULL);
	on_tty("", "list --format csv");
	ck_assert_msg(strchr(out, '\033') == NULL && strchr(out, '\a') ==
	    NULL && strstr(out, "\xc2\x9b") == NULL, "%s", out);
	/* The bytes of search's match marks, in a field, were left in. */
	ck_assert_msg(strchr(out, '\001') == NULL && strchr(out, '\002') ==
	    NULL, "%s", out);
	ck_assert(strstr(out, "evil") != NULL);
	/* Search's match marks are still brackets there. */
	on_tty("", "search transcript --format csv");
	ck_assert_msg(strstr(out, "[transcript]") != NULL, "%s", out);
	/*
	 * Those bytes sent in a transcript are no match marks: they showed
	 * as "[ctrl", and on a terminal turned colour on for good.
	 */
	post_variant("call_ended.json", "callSid", "\"marks\"",
	    "transcription", "\"okapi and \\u0001ctrl\\u0002 end\"", NULL);
	for (int i = 0; i < 60; i++, tu_sleep_ms(50))
		if (ch("search okapi --format json") == 0 &&
		    strstr(out, "marks") != NULL)
			break;
	ck_assert_msg(strstr(out, "\"[okapi] and  ctrl  end\"") != NULL,
	    "%s", out);
	on_tty("", "search okapi");
	ck_assert_msg(strstr(out, "ctrl") != NULL && strstr(out,
	    "\033[1;31mctrl") == NULL, "%s", out);
}
END_TEST

/*
 * A bidi override from the network reorders the rest of the line on a
 * terminal: "\u202e" before an agent showed the number after it
 * backwards. Tables make it a space, JSON escapes it, CSV to a file
 * keeps it.
 */
START_TEST(test_table_bidi)
{
	post_variant("call_ended.json", "agent",
	    "\"\\u202eevil\\u2066x\\u2069\"", NULL);
	ck_assert_int_eq(ch("list"), 0);
	ck_assert_msg(strstr(out, "\xe2\x80\xae") == NULL && strstr(out,
	    "\xe2\x81\xa6") == NULL && strstr(out, "\xe2\x81\xa9") == NULL,
	    "%s", out);
	ck_assert_msg(strstr(out, " evil x") != NULL, "%s", out);
	expect_width(out, 80);
	ck_assert_int_eq(ch("show " SID), 0);
	ck_assert_msg(strstr(out, "\xe2\x80\xae") == NULL && strstr(out,
	    " evil x") != NULL, "%s", out);
	ck_assert_int_eq(ch("list --format json"), 0);
	ck_assert_msg(strstr(out, "\"\\u202eevil\\u2066x\\u2069\"") != NULL,
	    "%s", out);
	ck_assert_int_eq(ch("export --format jsonl"), 0);
	ck_assert_msg(strstr(out, "\"\\u202eevil\\u2066x\\u2069\"") != NULL,
	    "%s", out);
	ck_assert_int_eq(ch("list --format csv"), 0);
	ck_assert_msg(strstr(out, "\xe2\x80\xae" "evil") != NULL, "%s", out);
	/* Measured as printed, a blank: the name is not cut to fit. */
	post_variant("call_ended.json", "functions_called",
	    "[{\"name\":\"\\u202eabcdefg\",\"success\":true}]", NULL);
	ck_assert_int_eq(ch("show " SID), 0);
	ck_assert_msg(strstr(out, " abcdefg  yes") != NULL, "%s", out);
}
END_TEST

START_TEST(test_list_csv)
{
	cJSON *rows;

	fill();
	ck_assert_int_eq(ch("list --format csv"), 0);
	ck_assert_msg((rows = csv_parse(out)) != NULL, "not CSV: %s", out);
	ck_assert_int_eq(cJSON_GetArraySize(rows), NCALLS + 1);
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(rows, 0),
	    0)->valuestring, "call_sid");
	ck_assert_str_eq(csv_get(rows, 1, "call_sid"), "v-b2");
	ck_assert_str_eq(csv_get(rows, 1, "disposition_reason"),
	    "Wants, \"pricing\"\nand details");
	ck_assert_str_eq(csv_get(rows, 1, "call_duration"), "95");
	ck_assert_str_eq(csv_get(rows, 1, "conversion_status"), "true");
	ck_assert_str_eq(csv_get(rows, 1, "lead_status"), "converted");
	ck_assert_str_eq(csv_get(rows, 1, "to_number"), "9876511111");
	ck_assert_str_eq(csv_get(rows, 2, "hangup_reason"), "NO_ANSWER");
	cJSON_Delete(rows);
	/* No match: the header alone. */
	ck_assert_int_eq(ch("list --format csv --agent nobody"), 0);
	ck_assert_msg((rows = csv_parse(out)) != NULL, "%s", out);
	ck_assert_int_eq(cJSON_GetArraySize(rows), 1);
	cJSON_Delete(rows);
}
END_TEST

START_TEST(test_list_json)
{
	cJSON *arr, *o;

	fill();
	ck_assert_int_eq(ch("list --format json"), 0);
	ck_assert_msg((arr = cJSON_Parse(out)) != NULL, "not JSON: %s", out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), NCALLS);
	o = find_obj(arr, "call_sid", SID);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "conversion_status")));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(o,
	    "next_call_scheduled")));
	ck_assert(num(o, "call_duration") == 120);
	ck_assert(num(o, "try_count") == 0);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "lead_status")->valuestring,
	    "interested");
	ck_assert_str_eq(cJSON_GetObjectItem(o, "call_time")->valuestring,
	    "2025-12-19 16:01:07");
	o = find_obj(arr, "call_sid", "inbound-0001");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "batch_id")));
	ck_assert(num(o, "try_count") == -1);
	cJSON_Delete(arr);
	ck_assert_int_eq(ch("list --format json --agent nobody"), 0);
	ck_assert_str_eq(out, "[]\n");
	/* An integer a double cannot hold (a string, coerced) comes out whole. */
	{
		char *seed = tu_fixture("call_ended.json", NULL);
		char *a = tu_replace(seed, SID, "big-try");
		char *b = tu_replace(a, "\"try_count\": 0",
		    "\"try_count\": \"9007199254740993\"");

		post_ok(b);
		free(seed);
		free(a);
		free(b);
	}
	ck_assert_int_eq(ch("show big-try --format json"), 0);
	ck_assert_msg(strstr(out, "\"try_count\":\t9007199254740993") !=
	    NULL, "%s", out);
}
END_TEST

/* Every way of writing a number finds the same calls. */
START_TEST(test_history)
{
	static const char *const forms[] = {
		"'+91 98765 43210'", "919876543210", "9876543210",
		"09876543210", "+919876543210", "'(+91) 98765-43210'",
		"0091-9876543210",
	};
	cJSON *arr, *first;

	fill();
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		ck_assert_int_eq(ch("history %s --format json", forms[i]), 0);
		arr = cJSON_Parse(out);
		ck_assert_msg(cJSON_GetArraySize(arr) == NCALLS,
		    "%s: %d calls", forms[i], cJSON_GetArraySize(arr));
		/* Oldest first. */
		first = cJSON_GetArrayItem(arr, 0);
		ck_assert_str_eq(cJSON_GetObjectItem(first,
		    "call_sid")->valuestring, "v-old");
		ck_assert_str_eq(cJSON_GetObjectItem(first,
		    "direction")->valuestring, "in");
		cJSON_Delete(arr);
	}
	/* Stored as "+919876511111" and as "9876511111": both found. */
	ck_assert_int_eq(ch("history '+91 98765 11111'"), 0);
	ck_assert_int_eq(table_rows(), 2);
	ck_assert(strstr(out, "DISPOSITION") != NULL);
	ck_assert(strstr(out, "No answer") != NULL);
	ck_assert_int_eq(ch("list --number 9876511111 --format json"), 0);
	arr = cJSON_Parse(out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
	cJSON_Delete(arr);
	/* Another country's bare number, with --country-code. */
	post_variant("call_ended.json", "callSid", "\"us-1\"",
	    "to", "\"14155550100\"", NULL);
	ck_assert_int_eq(ch("history 4155550100"), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(ch("history 4155550100 --country-code 1"), 0);
	ck_assert_int_eq(table_rows(), 1);
	ck_assert_int_eq(ch("history 14155550100 --agent nobody"), 0);
	ck_assert_str_eq(err, "no calls to or from that number\n");
	/*
	 * Its NUMBER is the --number filter, so its help offers the other
	 * filters only: the one it lists as well was a usage error.
	 */
	expect_fail(ch("history 919876543210 --number 918765432109"), 2,
	    "--number and a NUMBER");
	ck_assert_int_eq(ch("history --help"), 0);
	ck_assert_msg(strstr(out, "--agent ID") != NULL && strstr(out,
	    "--country-code CC") != NULL && strstr(out, "--number") == NULL,
	    "%s", out);
}
END_TEST

/* Every row of a search has a snippet, best (lowest) rank first. */
static void
expect_ranked(const char *args)
{
	cJSON *arr, *o;
	double last = -1e300;

	ck_assert_int_eq(ch("%s", args), 0);
	ck_assert_msg((arr = cJSON_Parse(out)) != NULL, "%s", out);
	ck_assert_int_gt(cJSON_GetArraySize(arr), 1);
	cJSON_ArrayForEach(o, arr) {
		ck_assert_msg(strchr(cJSON_GetObjectItem(o, "snippet")->
		    valuestring, '[') != NULL, "no match mark: %s", out);
		ck_assert(cJSON_GetObjectItem(o, "rank")->valuedouble >= last);
		last = cJSON_GetObjectItem(o, "rank")->valuedouble;
	}
	cJSON_Delete(arr);
}

START_TEST(test_search)
{
	cJSON *arr, *o;
	char ini[600];

	fill();
	ck_assert_int_eq(ch("search callback"), 0);
	ck_assert_msg(strstr(out, "[callback]") != NULL, "%s", out);
	ck_assert(strstr(out, "v-b2") != NULL);
	ck_assert(strstr(out, "v-old") == NULL);
	expect_width(out, 80);
	ck_assert_int_eq(ch("search callback --agent agent-B --format json"),
	    0);
	ck_assert_msg((arr = cJSON_Parse(out)) != NULL, "%s", out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	o = cJSON_GetArrayItem(arr, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "snippet")->valuestring,
	    "Please arrange a [callback], thank you");
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "rank")));
	cJSON_Delete(arr);
	/* A prefix: its snippets are made in one pass over its matches. */
	ck_assert_int_eq(ch("search 'callb*' --agent agent-B --format json"),
	    0);
	ck_assert_msg((arr = cJSON_Parse(out)) != NULL, "%s", out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0),
	    "snippet")->valuestring, "Please arrange a [callback], thank you");
	cJSON_Delete(arr);
	expect_ranked("search 'c*' --limit 0 --format json");
	/* Transcripts in Hindi, and phrases. */
	ck_assert_int_eq(ch("search 'मदद' --format csv"), 0);
	ck_assert(strstr(out, "inbound-0001") != NULL);
	ck_assert_int_eq(ch("search '\"ancient words\"'"), 0);
	ck_assert(strstr(out, "v-old") != NULL);
	/* Not FTS5 syntax: searched for as words. */
	ck_assert_int_eq(ch("search 'zebra-ancient'"), 0);
	ck_assert(strstr(out, "v-old") != NULL);
	ck_assert_int_eq(ch("search callback --since 2025-12-21 --format json"),
	    0);
	arr = cJSON_Parse(out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
	cJSON_Delete(arr);
	ck_assert_int_eq(ch("search nothinglikethis"), 0);
	ck_assert_str_eq(err, "no matches\n");
	/*
	 * A row inserted and queued by hand (README, "The database") waits
	 * for the index, search says so, and the idle daemon counts and
	 * indexes it within its idle second.
	 */
	db_exec(d.db, "BEGIN; INSERT INTO calls (call_sid, event, payload,"
	    " first_received_at, received_at, transcription) VALUES"
	    " ('by-hand', 'call_ended', '{}', 'x', 'x', 'okapi sighting');"
	    "INSERT INTO fts_pending (id) VALUES (last_insert_rowid());"
	    " COMMIT");
	ck_assert_int_eq(ch("search okapi"), 0);
	ck_assert_msg(strstr(err, "1 call is not in the search index")
	    != NULL, "%s", err);
	for (int i = 0; i < 60 && strstr(out, "by-hand") == NULL; i++) {
		tu_sleep_ms(50);
		ck_assert_int_eq(ch("search okapi"), 0);
	}
	ck_assert_msg(strstr(out, "by-hand") != NULL, "%s", err);
	ck_assert(strstr(err, "search index") == NULL);
	/* With fts = off the daemon drops the index. */
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	snprintf(ini, sizeof(ini), "[store]\nfts = off\n");
	ck_assert_int_eq(tu_start(&d, ini, NULL), 0);
	expect_fail(ch("search callback"), 1, "no full-text index");
}
END_TEST

/*
 * An index entry whose calls row is gone (an INSERT OR REPLACE by hand
 * fires no delete trigger) is left out; its snippet would fail the
 * whole search as "database disk image is malformed".
 */
START_TEST(test_search_orphan)
{
	fill();
	ck_assert_int_eq(ch("search callback"), 0);
	for (int i = 0; i < 60 && strstr(out, "v-b2") == NULL; i++) {
		tu_sleep_ms(50);
		ck_assert_int_eq(ch("search callback"), 0);
	}
	ck_assert_msg(strstr(out, "v-b2") != NULL, "%s", err);
	db_exec(d.db, "INSERT OR REPLACE INTO calls (call_sid, event,"
	    " payload, first_received_at, received_at) VALUES ('v-b2',"
	    " 'call_ended', '{}', 'x', 'x')");
	ck_assert_msg(ch("search callback") == 0, "%s", err);
	ck_assert_msg(strstr(out, "[callback]") != NULL, "%s", out);
	ck_assert(strstr(out, "v-b2") == NULL);
}
END_TEST

static void
search_on_tty(const char *env)
{
	on_tty(env, "search callback");
	ck_assert(strstr(out, "callback") != NULL);
}

/* With NO_COLOR unset, a terminal gets colour; never through a pipe. */
START_TEST(test_color)
{
	fill();
	ck_assert_int_eq(ch("search callback"), 0);
	ck_assert(strchr(out, '\033') == NULL);
	search_on_tty("env -u NO_COLOR");
	ck_assert_msg(strstr(out, "\033[1;31mcallback\033[0m") != NULL,
	    "%s", out);
	search_on_tty("NO_COLOR=1");
	ck_assert_msg(strchr(out, '\033') == NULL, "%s", out);
	ck_assert(strstr(out, "[callback]") != NULL);
}
END_TEST

START_TEST(test_stats)
{
	cJSON *arr, *o;

	fill();
	ck_assert_int_eq(ch("stats --by agent --format json"), 0);
	ck_assert_msg((arr = cJSON_Parse(out)) != NULL, "%s", out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 3);
	o = find_obj(arr, "group", AGENT);
	ck_assert(num(o, "calls") == 3);
	ck_assert(num(o, "converted") == 2);
	ck_assert_double_eq_tol(num(o, "conversion_rate"), 2.0 / 3, 1e-9);
	ck_assert(num(o, "total_duration") == 652);
	ck_assert(num(o, "median_duration") == 120);
	ck_assert(num(o, "callbacks") == 1);
	ck_assert(num(o, "function_calls") == 4);
	ck_assert_double_eq_tol(num(o, "function_success_rate"), 0.75, 1e-9);
	o = find_obj(arr, "group", "agent-B");
	ck_assert(num(o, "calls") == 2);
	ck_assert(num(o, "median_duration") == 62.5);
	ck_assert_double_eq_tol(num(o, "function_success_rate"), 2.0 / 3,
	    1e-9);
	/* Most calls first. */
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0),
	    "group")->valuestring, AGENT);
	cJSON_Delete(arr);

	ck_assert_int_eq(ch("stats --by agent"), 0);
	ck_assert_msg(strncmp(out, "AGENT", 5) == 0, "%s", out);
	ck_assert_msg(strstr(out, "(all)") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "66.7%") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "1:03") != NULL, "median 62.5: %s", out);
	expect_width(out, 80);
	ck_assert_int_eq(ch("stats --by day --format csv"), 0);
	ck_assert_msg(strncmp(out, "group,calls,", 12) == 0, "%s", out);
	ck_assert_msg(strstr(out, "\r\n2020-01-01,1,") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\r\n2025-12-19,3,2,") != NULL, "%s", out);
	ck_assert_int_eq(ch("stats --by batch --format json"), 0);
	arr = cJSON_Parse(out);
	/* The inbound call has no batch: a group of its own, null. */
	ck_assert_int_eq(cJSON_GetArraySize(arr), 3);
	cJSON_Delete(arr);
	ck_assert_int_eq(ch("stats --by hangup --agent agent-B"), 0);
	ck_assert(strstr(out, "NO_ANSWER") != NULL);
	ck_assert_int_eq(ch("stats --by disposition"), 0);
	/* Nothing matches: a table of zeros is no answer; data formats
	 * still give one. */
	ck_assert_int_eq(ch("stats --agent nobody"), 0);
	ck_assert_str_eq(out, "");
	ck_assert_str_eq(err, "no calls\n");
	ck_assert_int_eq(ch("stats --agent nobody --format json"), 0);
	ck_assert_msg(strstr(out, "\"calls\": 0") != NULL ||
	    strstr(out, "\"calls\":0") != NULL, "%s", out);
	ck_assert_int_eq(ch("stats --format json"), 0);
	arr = cJSON_Parse(out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	ck_assert(num(cJSON_GetArrayItem(arr, 0), "calls") == NCALLS);
	cJSON_Delete(arr);
}
END_TEST

/*
 * Durations no call has, which the daemon keeps: their sum (and the
 * mean of two, for the median) overflowed to +inf, which the table
 * showed as 0:00, and JSON as a null median.
 */
START_TEST(test_stats_huge_duration)
{
	post_variant("call_ended.json", "callSid", "\"huge-1\"",
	    "call_duration", "1.5e308", NULL);
	post_variant("call_ended.json", "callSid", "\"huge-2\"",
	    "call_duration", "1.5e308", NULL);
	ck_assert_int_eq(ch("stats"), 0);
	ck_assert_msg(strstr(out, ">99999999:00:00") != NULL && strstr(out,
	    " 0:00") == NULL, "%s", out);
	/* The median of two is their mean, which must not overflow. */
	ck_assert_int_eq(ch("stats --format json"), 0);
	ck_assert_msg(strstr(out, "\"median_duration\":1.5e+308,") != NULL,
	    "%s", out);
}
END_TEST

/*
 * A total is the talk time of every call: half a million calls of a
 * minute and a half pass 9999 hours, which showed as ">9999:00:00".
 */
START_TEST(test_stats_long_total)
{
	post_variant("call_ended.json", "callSid", "\"long-1\"",
	    "call_duration", "36000000", NULL);
	post_variant("call_ended.json", "callSid", "\"long-2\"",
	    "call_duration", "5", NULL);
	ck_assert_int_eq(ch("stats"), 0);
	ck_assert_msg(strstr(out, " 10000:00:05 ") != NULL, "%s", out);
	ck_assert_int_eq(ch("show long-1"), 0);
	ck_assert_msg(strstr(out, "10000:00:00 (3.6e+07 s)") != NULL, "%s",
	    out);
}
END_TEST

/*
 * A group key written by hand may hold a NUL: all its bytes make the
 * group. Copied up to the NUL, the key was shorter than its length, and
 * the next row of that group read past it.
 */
START_TEST(test_stats_nul_key)
{
	cJSON *arr;

	fill();
	db_exec(d.db, "UPDATE calls SET agent_id = 'ag' || char(0) ||"
	    " 'ent-with-a-long-tail' WHERE agent_id = 'agent-B'");
	ck_assert_int_eq(ch("stats --by agent --format json"), 0);
	ck_assert_msg((arr = cJSON_Parse(out)) != NULL, "%s", out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 3);
	cJSON_Delete(arr);
	ck_assert_msg(strstr(out, "\"group\":\"ag\\u0000ent-with-a-long-tail\","
	    "\"calls\":2,") != NULL, "%s", out);
	ck_assert_int_eq(ch("stats --by agent"), 0);
	ck_assert_msg(strstr(out, "ag ent-with") != NULL, "%s", out);
}
END_TEST

/*
 * show's functions_called table lines up by columns, not bytes, and cuts
 * a name past 40 columns: the SUCCESS column starts at 21 + 40 + 2 on
 * every row.
 */
static void
expect_function_columns(void)
{
	static const char *const rows[] = { "你好你好", "x_", "" };
	char *body, line[512], *p, *nl, *cut;
	wchar_t wbuf[512];

	body = variant("call_ended.json", "callSid", "\"fn-cols\"",
	    "functions_called", "[{\"name\":\"你好你好\",\"success\":true},"
	    "{\"name\":\"x_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxx\",\"success\":false},{\"success\":true}]", NULL);
	post_ok(body);
	free(body);
	ck_assert_int_eq(ch("show fn-cols"), 0);
	setlocale(LC_CTYPE, "C.UTF-8");
	p = strstr(out, "functions_called");
	ck_assert_ptr_nonnull(p);
	p = strchr(p, '\n') + 1;
	for (size_t n = 0; n < 3; n++) {
		nl = strchr(p, '\n');
		ck_assert_ptr_nonnull(nl);
		snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
		p = nl + 1;
		ck_assert_msg(strstr(line, rows[n]) != NULL, "%s", line);
		cut = strstr(line, n == 1 ? "  no" : "  yes");
		ck_assert_msg(cut != NULL, "%s", line);
		*cut = '\0';
		ck_assert(mbstowcs(wbuf, line, 512) != (size_t)-1);
		ck_assert_msg(wcswidth(wbuf, 512) == 21 + 40, "row %zu: %d "
		    "columns before SUCCESS: %s", n, wcswidth(wbuf, 512), line);
	}
	ck_assert(strstr(out, "x\xe2\x80\xa6") != NULL);
}

START_TEST(test_show)
{
	char *body;
	cJSON *o, *revs;

	fill();
	ck_assert_int_eq(ch("show " SID), 0);
	ck_assert(strstr(out, "call_sid             " SID "\n") != NULL);
	ck_assert(strstr(out, "call_duration        2:00 (120 s)\n") != NULL);
	ck_assert_msg(strstr(out, "call_metadata        {\n"
	    "                       \"name\": \"Jatin\",\n") != NULL, "%s",
	    out);
	ck_assert_msg(strstr(out, "functions_called     NAME        SUCCESS  "
	    "TIMESTAMP\n                     update_crm  yes      "
	    "2025-12-19T15:25:00.000Z\n") != NULL, "%s", out);
	ck_assert(strstr(out, "transcription\n  Full call transcript...\n"));
	expect_function_columns();
	/* A value's second line lines up under its first. */
	ck_assert_int_eq(ch("show v-b2"), 0);
	ck_assert_msg(strstr(out, "disposition_reason   Wants, \"pricing\"\n"
	    "                     and details\n") != NULL, "%s", out);
	/* A changed body makes a revision. */
	body = variant("call_ended.json", "call_duration", "121", NULL);
	post_ok(body);
	free(body);
	ck_assert_int_eq(ch("show " SID " --revisions"), 0);
	ck_assert(strstr(out, "revision             2\n") != NULL);
	ck_assert_msg(strstr(out, "\nrevision 1, received ") != NULL, "%s",
	    out);
	ck_assert(strstr(out, "\"call_duration\": 120") != NULL);
	ck_assert_int_eq(ch("show --format json --revisions " SID), 0);
	ck_assert_msg((o = cJSON_Parse(out)) != NULL, "%s", out);
	ck_assert(num(o, "call_duration") == 121);
	ck_assert(cJSON_IsObject(cJSON_GetObjectItem(o, "call_metadata")));
	revs = cJSON_GetObjectItem(o, "revisions");
	ck_assert_int_eq(cJSON_GetArraySize(revs), 1);
	ck_assert(num(cJSON_GetArrayItem(revs, 0), "revision") == 1);
	cJSON_Delete(o);
}
END_TEST

/*
 * show --revisions printed an earlier revision's received_at as stored:
 * the daemon writes a timestamp there, but the file is anyone's to write.
 */
START_TEST(test_show_revisions_clean)
{
	post_fixture("call_ended.json");
	db_exec(d.db, "INSERT INTO call_revisions (call_sid, revision,"
	    " received_at, payload) VALUES ('" SID "', 0, char(27) ||"
	    " ']0;pwned' || char(7), '{}')");
	ck_assert_int_eq(ch("show --revisions " SID), 0);
	ck_assert_msg(strchr(out, '\033') == NULL && strchr(out, '\a') ==
	    NULL, "%s", out);
	ck_assert_msg(strstr(out, "revision 0, received  ]0;pwned , 2 bytes")
	    != NULL, "%s", out);
}
END_TEST

/* s with its first from replaced by to; malloc'd. */
static char *
replace_once(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	char *r;

	ck_assert_ptr_nonnull(at);
	ck_assert_int_ge(asprintf(&r, "%.*s%s%s", (int)(at - s), s, to,
	    at + strlen(from)), 0);
	return r;
}

/*
 * JSON columns come out as they were sent, in every format: printed
 * again by cJSON, 12345678901234567890 would be 1.2345678901234567e+19.
 */
START_TEST(test_json_as_sent)
{
	char *body = tu_fixture("call_ended.json", NULL), *more, *sent;

	more = replace_once(body, "\"age\": 25",
	    "\"age\": 25, \"big\": 12345678901234567890, \"f\": 1.50");
	sent = replace_once(more, SID, "as-sent");
	post_ok(sent);
	ck_assert_int_eq(ch("show as-sent"), 0);
	ck_assert_msg(strstr(out, "\"big\": 12345678901234567890,\n") !=
	    NULL && strstr(out, "\"f\": 1.50\n") != NULL, "%s", out);
	ck_assert_int_eq(ch("export --format jsonl"), 0);
	ck_assert_msg(strstr(out, "\"call_metadata\":{\"name\":\"Jatin\","
	    "\"age\":25,\"big\":12345678901234567890,\"f\":1.50}") != NULL,
	    "%s", out);
	ck_assert_int_eq(ch("show --format json as-sent"), 0);
	ck_assert_msg(strstr(out, "\"big\":12345678901234567890") != NULL,
	    "%s", out);
	/* Written by hand, not JSON to the letter: through cJSON, or as is. */
	db_exec(d.db, "UPDATE calls SET call_metadata = '{\"a\" :01}'"
	    " WHERE call_sid = 'as-sent'");
	ck_assert_int_eq(ch("export --format jsonl"), 0);
	ck_assert_msg(strstr(out, "\"call_metadata\":{\"a\":1}") != NULL,
	    "%s", out);
	ck_assert_int_eq(ch("show as-sent"), 0);
	ck_assert_msg(strstr(out, "call_metadata        {\"a\" :01}\n") !=
	    NULL, "%s", out);
	/*
	 * Not UTF-8 (JSON to the letter otherwise), or more after the
	 * value: the byte went out as it was, or cJSON dropped the rest.
	 * A string of the text instead.
	 */
	db_exec(d.db, "UPDATE calls SET call_metadata = '{\"a\" :1} more',"
	    " post_call = CAST(X'7B226C6561645F737461747573223A2022FF227D'"
	    " AS TEXT) WHERE call_sid = 'as-sent'");
	ck_assert_int_eq(ch("export --format jsonl"), 0);
	ck_assert_msg(strchr(out, '\xff') == NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"call_metadata\":\"{\\\"a\\\" :1} more\"")
	    != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"post_call\":\"{\\\"lead_status\\\": "
	    "\\\"\xef\xbf\xbd\\\"}\"") != NULL, "%s", out);
	free(sent);
	free(more);
	free(body);
}
END_TEST

/*
 * A duration the daemon keeps exactly comes out exactly, in CSV and
 * JSON: printed with 15 digits (CSV) or by cJSON (whose check that its
 * 15 digits read back allows an error of one unit in the last place),
 * 11.145000000000001 came out as 11.145, and the largest double as
 * 1.79769313486232e+308, which reads back as infinity.
 */
START_TEST(test_export_real_exact)
{
	static const char *const durs[] = {
		"11.145000000000001", "0.30000000000000004",
		"1.7976931348623157e308", "2.5",
	};
	static const char *const cmds[] = {
		"export --format jsonl", "list --format json",
		"show --format json real-0", "show --format json real-2",
	};
	char *seed = tu_fixture("call_ended.json", NULL), *a, *b;
	char sid[32], dur[64];
	cJSON *rows, *o, *arr;
	char *line, *save = NULL;
	int seen = 0;

	/* Not through cJSON, which would print the number with 15 digits. */
	for (int i = 0; i < 4; i++) {
		snprintf(sid, sizeof(sid), "real-%d", i);
		snprintf(dur, sizeof(dur), "\"call_duration\": %s", durs[i]);
		a = tu_replace(seed, SID, sid);
		b = tu_replace(a, "\"call_duration\": 120", dur);
		post_ok(b);
		free(b);
		free(a);
	}
	free(seed);
	ck_assert_int_eq(ch("export"), 0);
	ck_assert_msg((rows = csv_parse(out)) != NULL, "not CSV");
	for (int i = 0; i < cJSON_GetArraySize(rows) - 1; i++) {
		const char *s = csv_get(rows, i, "call_sid");
		int k = s[5] - '0';

		ck_assert_msg(strtod(csv_get(rows, i, "call_duration"), NULL)
		    == strtod(durs[k], NULL), "%s: %s, sent %s", s,
		    csv_get(rows, i, "call_duration"), durs[k]);
		seen++;
	}
	cJSON_Delete(rows);
	ck_assert_int_eq(seen, 4);
	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
		ck_assert_int_eq(ch("%s", cmds[c]), 0);
		if (c == 0) {
			arr = cJSON_CreateArray();
			for (line = strtok_r(out, "\n", &save); line != NULL;
			    line = strtok_r(NULL, "\n", &save))
				cJSON_AddItemToArray(arr, cJSON_Parse(line));
		} else if ((arr = cJSON_Parse(out)) != NULL &&
		    cJSON_IsObject(arr)) {
			o = arr;
			arr = cJSON_CreateArray();
			cJSON_AddItemToArray(arr, o);
		}
		ck_assert_msg(arr != NULL, "%s: not JSON", cmds[c]);
		cJSON_ArrayForEach(o, arr) {
			const char *s = cJSON_GetObjectItem(o,
			    "call_sid")->valuestring;

			snprintf(sid, sizeof(sid), "%s", s);
			ck_assert_msg(num(o, "call_duration") ==
			    strtod(durs[sid[5] - '0'], NULL), "%s: %s: %.17g",
			    cmds[c], sid, num(o, "call_duration"));
		}
		cJSON_Delete(arr);
	}
}
END_TEST

START_TEST(test_export)
{
	cJSON *rows, *o;
	char *line, *save = NULL;
	int n = 0;

	fill();
	ck_assert_int_eq(ch("export"), 0);
	ck_assert_msg((rows = csv_parse(out)) != NULL, "not CSV");
	ck_assert_int_eq(cJSON_GetArraySize(rows), NCALLS + 1);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(rows, 0)), 27);
	/* Oldest first; transcripts keep their newlines. */
	ck_assert_str_eq(csv_get(rows, 0, "call_sid"), "v-old");
	for (int i = 0; i < NCALLS; i++)
		if (strcmp(csv_get(rows, i, "call_sid"),
		    "long-transcript-0001") == 0)
			ck_assert(strchr(csv_get(rows, i, "transcription"),
			    '\n') != NULL);
	cJSON_Delete(rows);
	ck_assert_int_eq(ch("export --format jsonl --agent agent-B"), 0);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save), n++) {
		ck_assert_msg((o = cJSON_Parse(line)) != NULL, "%s", line);
		ck_assert(cJSON_IsArray(cJSON_GetObjectItem(o,
		    "functions_called")));
		ck_assert(cJSON_IsString(cJSON_GetObjectItem(o,
		    "transcription")));
		cJSON_Delete(o);
	}
	ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(test_import)
{
	char *jsonl = tmp_path("in.jsonl"), *newdb = tmp_path("imported.db");
	FILE *fp;
	char *a, *b, *b2, want[2200];

	a = variant("call_ended.json", NULL);
	b = variant("call_ended_inbound.json", NULL);
	fp = fopen(jsonl, "w");
	fprintf(fp, "%s\n\n%s\r\n{\"event\":\"call_ended\",\"data\":{}}\n"
	    "not json\n", a, b);
	fprintf(fp, "{\"event\":\"other\",\"data\":{\"callSid\":\"x\"}}\n");
	fclose(fp);
	ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 1);
	ck_assert_str_eq(out, "6 lines: 2 stored, 0 duplicates, 0 revisions,"
	    " 3 refused\n");
	snprintf(want, sizeof(want), "callhook: %s:4: data.callSid is "
	    "required\ncallhook: %s:5: body is not valid JSON: unexpected 'n' at byte 1\ncallhook: "
	    "%s:6: Unknown event type\n", jsonl, jsonl, jsonl);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls"
	    " WHERE remote_addr = 'import'"), 2);
	/* Indexed before import ends: searchable, nothing left queued. */
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM fts_pending"), 0);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls_fts"
	    " WHERE calls_fts MATCH 'callback'"), 2);
	expect_fts_intact(newdb);
	/* Idempotent: the same lines again are duplicates. */
	ck_assert_int_eq(tu_sh("cat '%s' | '%s' -d '%s' import - >'%s' "
	    "2>/dev/null", jsonl, callhook(), newdb, tmp_path("out")), 1);
	free(out);
	out = tu_read_file(tmp_path("out"), NULL);
	ck_assert_str_eq(out, "6 lines: 0 stored, 2 duplicates, 0 revisions,"
	    " 3 refused\n");
	ck_assert_int_eq(db_int(newdb, "SELECT sum(deliveries) FROM calls"),
	    4);
	/* A changed body is a revision; good lines exit 0. */
	free(a);
	a = variant("call_ended.json", "hangup_reason", "\"BUSY\"", NULL);
	write_file(jsonl, a);
	ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 0);
	ck_assert_str_eq(out, "1 line: 0 stored, 0 duplicates, 1 revisions,"
	    " 0 refused\n");
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM call_revisions"),
	    1);
	/* Both bodies again, the older first: still nothing new. */
	b2 = variant("call_ended.json", NULL);
	fp = fopen(jsonl, "w");
	fprintf(fp, "%s\n%s\n", b2, a);
	fclose(fp);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 0);
		ck_assert_str_eq(out, "2 lines: 0 stored, 2 duplicates, "
		    "0 revisions, 0 refused\n");
	}
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM call_revisions"),
	    1);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls WHERE"
	    " hangup_reason = 'BUSY' AND revision = 2"), 1);
	free(b2);
	/* Too long for max_body: the size and the limit. */
	snprintf(want, sizeof(want), "{\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"x\",\"pad\":\"%01100d\"}}", 0);
	write_file(tmp_path("big.jsonl"), want);
	ck_assert_int_eq(tu_sh("printf '[http]\\nmax_body = 1K\\n"
	    "[store]\\ndatabase = %s\\n' > '%s'", newdb,
	    tmp_path("small.ini")), 0);
	ck_assert_int_eq(ch_env("", NULL, "-c '%s' import '%s'",
	    tmp_path("small.ini"), tmp_path("big.jsonl")), 1);
	ck_assert_msg(strstr(err, "big.jsonl:1: 1154 bytes, over max_body "
	    "(1024; -c takes the daemon's)") != NULL, "%s", err);
	/* The same bound as the daemon's: max_body bytes, not one more. */
	snprintf(want, sizeof(want), "{\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"edge\",\"pad\":\"%0967d\"}}\n{\"event\":"
	    "\"call_ended\",\"data\":{\"callSid\":\"over\",\"pad\":"
	    "\"%0968d\"}}\n", 0, 0);
	write_file(tmp_path("edge.jsonl"), want);
	ck_assert_int_eq(ch_env("", NULL, "-c '%s' import '%s'",
	    tmp_path("small.ini"), tmp_path("edge.jsonl")), 1);
	ck_assert_msg(strstr(err, "edge.jsonl:2: 1025 bytes, over max_body")
	    != NULL, "%s", err);
	ck_assert_msg(strstr(err, "edge.jsonl:1:") == NULL, "%s", err);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls WHERE"
	    " call_sid = 'edge'"), 1);
	/* An empty file (touch) is a new database to import into. */
	write_file(tmp_path("touched.db"), "");
	ck_assert_int_eq(ch_on(tmp_path("touched.db"), "import '%s'", jsonl),
	    0);
	ck_assert_int_eq(db_int(tmp_path("touched.db"), "SELECT count(*)"
	    " FROM calls"), 1);
	/* Into the daemon's file while it runs: both writers land. */
	fill();
	ck_assert_int_eq(ch("import '%s'", jsonl), 0);
	post_variant("call_ended.json", "callSid", "\"after-import\"", NULL);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"),
	    NCALLS + 1);
	expect_fts_intact(d.db);
	expect_fail(ch("import '%s'", tmp_path("missing.jsonl")), 1,
	    "missing.jsonl");
	free(a);
	free(b);
}
END_TEST

/* A pretty-printed body fails line by line; the last word says why. */
START_TEST(test_import_pretty)
{
	char *raw = tu_fixture("call_ended.json", NULL);
	char *pretty = tmp_path("pretty.json"), want[512];

	write_file(pretty, raw);
	ck_assert_int_eq(ch_on(tmp_path("pretty.db"), "import '%s'", pretty),
	    1);
	ck_assert_str_eq(out, "42 lines: 0 stored, 0 duplicates, "
	    "0 revisions, 42 refused\n");
	snprintf(want, sizeof(want), "callhook: %s:1: a line that is only "
	    "\"{\": the bodies look pretty-printed; import takes one body "
	    "per line, as jq -c . writes them\n", pretty);
	ck_assert_msg(strlen(err) > strlen(want) &&
	    strcmp(err + strlen(err) - strlen(want), want) == 0,
	    "stderr does not end with the hint: %s", err);
	/*
	 * An array of pretty-printed bodies: jq -c . would put the array on
	 * one line, which import refuses again; jq -c '.[]' the bodies.
	 */
	write_file(pretty, "[\n  {\n    \"event\": \"call_ended\"\n  }\n]\n");
	ck_assert_int_eq(ch_on(tmp_path("pretty.db"), "import '%s'", pretty),
	    1);
	ck_assert_msg(strstr(err, "pretty.json:2: a line that is only \"{\": "
	    "the bodies look pretty-printed; import takes one body per line, "
	    "as jq -c '.[]' writes those of an array\n") != NULL, "%s", err);
	/* Not said of lines that merely hold a brace among other text. */
	write_file(pretty, "{ \"event\": \"call_ended\",\n}\n");
	ck_assert_int_eq(ch_on(tmp_path("pretty.db"), "import '%s'", pretty),
	    1);
	ck_assert_ptr_null(strstr(err, "pretty-printed"));
	free(raw);
}
END_TEST

/*
 * A quoted line is a body with line breaks, as the daemon's rescue file
 * writes one: stored byte for byte. One with more after the string, or a
 * \u0000 (which would cut the body short), is refused.
 */
START_TEST(test_import_quoted)
{
	char *jsonl = tmp_path("quoted.jsonl"), *newdb = tmp_path("q.db");
	char *raw = tu_fixture("call_ended.json", NULL);	/* pretty */
	char *body = tu_replace(raw, SID, "q1");
	char *other = tu_replace(raw, SID, "q2");
	cJSON *s1 = cJSON_CreateString(body), *s2 = cJSON_CreateString(other);
	char *q1 = cJSON_PrintUnformatted(s1), *q2 = cJSON_PrintUnformatted(s2);
	char sql[128 + 2 * 4096];
	FILE *fp;
	size_t n;

	ck_assert_ptr_nonnull(strchr(body, '\n'));
	ck_assert_int_lt(strlen(body), 4096);
	fp = fopen(jsonl, "w");
	fprintf(fp, "%s\n%s{}\n\"{\\u0000}\"\n\"{\n\"{}\\uzzzz{}\"\n",
	    q1, q2);
	fclose(fp);
	ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 1);
	ck_assert_str_eq(out, "5 lines: 1 stored, 0 duplicates, 0 revisions,"
	    " 4 refused\n");
	ck_assert_msg(strstr(err, ":2: a quoted line is not one JSON string") &&
	    strstr(err, ":3: a quoted line holds \\u0000") &&
	    strstr(err, ":4: a quoted line is not one JSON string") &&
	    strstr(err, ":5: a quoted line is not one JSON string"), "%s", err);
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT count(*) FROM calls "
	    "WHERE hex(payload) = '");
	for (const unsigned char *p = (const unsigned char *)body; *p; p++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%02X", *p);
	snprintf(sql + n, sizeof(sql) - n, "'");
	ck_assert_int_eq(db_int(newdb, sql), 1);
	cJSON_free(q1);
	cJSON_free(q2);
	cJSON_Delete(s1);
	cJSON_Delete(s2);
	free(raw);
	free(body);
	free(other);
}
END_TEST

/*
 * tail -f | callhook import -: lines are stored once the input pauses,
 * not when 500 have come or the input ends.
 */
START_TEST(test_import_follows)
{
	char *newdb = tmp_path("followed.db"), *a, *b, cmd[1200];
	long long t0;
	FILE *in;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "'%s' -d '%s' import - >'%s' 2>&1",
	    callhook(), newdb, tmp_path("out"));
	ck_assert_ptr_nonnull(in = popen(cmd, "w"));
	a = variant("call_ended.json", "callSid", "\"follow-1\"", NULL);
	b = variant("call_ended_inbound.json", "callSid", "\"follow-2\"",
	    NULL);
	fprintf(in, "%s\n%s\n", a, b);
	fflush(in);
	for (t0 = tu_now_ms(); n < 2 && tu_now_ms() - t0 < 5000;
	    tu_sleep_ms(50))
		if (access(newdb, F_OK) == 0 && db_int(newdb, "SELECT count(*)"
		    " FROM sqlite_master WHERE name = 'calls'") == 1)
			n = db_int(newdb, "SELECT count(*) FROM calls");
	ck_assert_msg(n == 2, "%d of 2 lines stored, the input still open", n);
	ck_assert_int_eq(pclose(in), 0);
	free(out);
	out = tu_read_file(tmp_path("out"), NULL);
	ck_assert_str_eq(out, "2 lines: 2 stored, 0 duplicates, 0 revisions,"
	    " 0 refused\n");
	free(a);
	free(b);
}
END_TEST

/* n lines of the long fixture, callSids PREFIX-0 to PREFIX-(n-1). */
static void
write_long_bodies(const char *path, const char *prefix, int n)
{
	char sid[32], *body;
	FILE *fp;

	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	for (int i = 0; i < n; i++) {
		snprintf(sid, sizeof(sid), "\"%s-%d\"", prefix, i);
		body = variant("call_ended_long.json", "callSid", sid, NULL);
		fprintf(fp, "%s\n", body);
		free(body);
	}
	fclose(fp);
}

/*
 * An import that cannot store a batch says which lines, why, where, and
 * that it stopped reading: here a 512 KB file size limit (SIGXFSZ
 * ignored, so that the write fails instead) under 600 long calls. Not
 * even the first run of 32 fits, so however slow the machine (a batch
 * commits what it stored in HOLD_MS), none of the first 500 is stored.
 */
START_TEST(test_import_stops)
{
	char *jsonl = tmp_path("long.jsonl"), *newdb = tmp_path("limited.db");

	write_long_bodies(jsonl, "big", 600);
	expect_fail(ch_env("trap '' XFSZ; ulimit -f 512;", newdb,
	    "import '%s'", jsonl), 1, "long.jsonl: lines 1-500 not stored in ");
	ck_assert_msg(strstr(err, "limited.db: ") != NULL && strstr(err,
	    "; import stopped, the lines after them not read. Run it again")
	    != NULL, "%s", err);
	ck_assert_str_eq(out, "500 lines: 0 stored, 0 duplicates, "
	    "0 revisions, 0 refused\n");
	/* Without the limit, all of it. */
	ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 0);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls"), 600);
}
END_TEST

/*
 * A prune the file cannot take (here a file size limit: its WAL cannot
 * grow) names the database and says that it stopped, like import.
 */
START_TEST(test_prune_stops)
{
	char *jsonl = tmp_path("old.jsonl"), *newdb = tmp_path("old.db");

	write_long_bodies(jsonl, "old", 200);
	ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 0);
	expect_fail(ch_env("trap '' XFSZ; ulimit -f 64;", newdb,
	    "prune --older-than 2030-01-01"), 1, "old.db: ");
	ck_assert_msg(strstr(err, "; prune stopped after 0 calls, which stay "
	    "done. Run it again") != NULL, "%s", err);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls"), 200);
	ck_assert_int_eq(ch_on(newdb, "prune --older-than 2030-01-01"), 0);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls"), 0);
}
END_TEST

/*
 * n JSON lines of the sample at call time t (JSON-quoted), with callSids
 * PREFIX (n == 1) or PREFIX-0 … PREFIX-(n-1), for callhook import.
 */
static void
write_calls_at(FILE *fp, const char *prefix, const char *t, int n)
{
	char sid[48], *line;

	for (int i = 0; i < n; i++) {
		if (n == 1)
			snprintf(sid, sizeof(sid), "\"%s\"", prefix);
		else
			snprintf(sid, sizeof(sid), "\"%s-%d\"", prefix, i);
		line = variant("call_ended.json", "callSid", sid, "time", t,
		    NULL);
		fprintf(fp, "%s\n", line);
		free(line);
	}
}

/*
 * "Older than" is strict: a call at the cut-off itself is not older, and
 * stays whole, with or without --transcripts-only.
 */
START_TEST(test_prune_cutoff)
{
	static const char *const times[] = { "\"2024-12-31 23:59:59\"",
	    "\"2025-01-01 00:00:00\"", "\"2025-01-01 00:00:01\"" };
	char *jsonl = tmp_path("edge.jsonl"), *newdb = tmp_path("edge.db");
	char prefix[16];
	FILE *fp;

	ck_assert_ptr_nonnull(fp = fopen(jsonl, "w"));
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		snprintf(prefix, sizeof(prefix), "edge-%zu", i);
		write_calls_at(fp, prefix, times[i], 1);
	}
	fclose(fp);
	ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 0);
	ck_assert_int_eq(ch_on(newdb, "prune --older-than 2025-01-01 "
	    "--transcripts-only"), 0);
	ck_assert_str_eq(out, "1 transcriptions blanked (call_time before "
	    "2025-01-01 00:00:00)\n");
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls WHERE "
	    "transcription IS NULL AND call_sid = 'edge-0'"), 1);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls WHERE "
	    "transcription IS NOT NULL"), 2);
	ck_assert_int_eq(ch_on(newdb, "prune --older-than 2025-01-01"), 0);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls"), 2);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls WHERE "
	    "call_sid = 'edge-1'"), 1);
	expect_fts_intact(newdb);
}
END_TEST

/*
 * Batches (at most 500 rows) that end inside a group of calls with one
 * call_time go on where they stopped: each call once, none skipped.
 */
START_TEST(test_prune_shared_time)
{
	static const struct {
		const char	*time;
		int		 n;
	} groups[] = {
		{ "\"2020-05-05 05:05:05\"", 1200 },
		{ "\"2020-05-06 00:00:00\"", 300 },
		{ "\"2030-01-01 00:00:00\"", 100 },
	};
	char *jsonl = tmp_path("shared.jsonl"), *newdb = tmp_path("shared.db");
	char prefix[16];
	FILE *fp;

	ck_assert_ptr_nonnull(fp = fopen(jsonl, "w"));
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		snprintf(prefix, sizeof(prefix), "s-%zu", g);
		write_calls_at(fp, prefix, groups[g].time, groups[g].n);
	}
	fclose(fp);
	ck_assert_int_eq(ch_on(newdb, "import '%s'", jsonl), 0);
	ck_assert_int_eq(ch_on(newdb, "prune --older-than 2025-01-01 "
	    "--transcripts-only"), 0);
	ck_assert_str_eq(out, "1500 transcriptions blanked (call_time before "
	    "2025-01-01 00:00:00)\n");
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls WHERE "
	    "transcription IS NULL AND call_time < '2025'"), 1500);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls WHERE "
	    "transcription IS NOT NULL"), 100);
	ck_assert_int_eq(ch_on(newdb, "prune --older-than 2025-01-01"), 0);
	ck_assert_int_eq(db_int(newdb, "SELECT count(*) FROM calls"), 100);
	expect_fts_intact(newdb);
}
END_TEST

START_TEST(test_prune)
{
	fill();
	/* A redelivery with a new body leaves a revision of v-old. */
	post_variant("call_ended.json", "callSid", "\"v-old\"",
	    "agent", "\"agent-C\"", "time", "\"2020-01-01 08:00:00\"",
	    "to", "\"918000000001\"", "transcription",
	    "\"zebra ancient words, again\"", NULL);
	ck_assert_int_eq(ch("prune --older-than 2025-12-20 "
	    "--transcripts-only"), 0);
	ck_assert_str_eq(out, "4 transcriptions blanked (call_time before "
	    "2025-12-20 00:00:00)\n");
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), NCALLS);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"
	    " WHERE transcription IS NULL"), 4);
	expect_fts_intact(d.db);
	ck_assert_int_eq(ch("search zebra"), 0);
	ck_assert_str_eq(out, "");
	/* Nothing left to blank. */
	ck_assert_int_eq(ch("prune --older-than 2025-12-20 "
	    "--transcripts-only"), 0);
	ck_assert(strncmp(out, "0 transcriptions", 16) == 0);

	/* Times that are not dates sort before every date, as text. */
	post_variant("call_ended.json", "callSid", "\"t-empty\"", "time",
	    "\"\"", NULL);
	post_variant("call_ended.json", "callSid", "\"t-space\"", "time",
	    "\" 2020-01-01 00:00:00\"", NULL);
	post_variant("call_ended.json", "callSid", "\"t-dmy\"", "time",
	    "\"19-12-2020 10:00:00\"", NULL);
	/* No call_time at all is kept, and counted, too. */
	post_variant("call_ended.json", "callSid", "\"t-null\"", "time",
	    "null", NULL);
	post_variant("call_ended.json", "callSid", "\"t-none\"", "time",
	    NULL, NULL);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"
	    " WHERE call_time IS NULL"), 2);
	expect_fail(ch("prune --older-than 6m"), 2, "m is minutes here");
	ck_assert_int_eq(ch("prune --older-than 30d"), 0);
	ck_assert_msg(strncmp(out, "6 calls deleted, with 1 earlier revisions"
	    " (call_time before ", 59) == 0, "%s", out);
	ck_assert_msg(strstr(err, "5 calls left as they are: they have no "
	    "call_time, or one that does not start with a date") != NULL,
	    "%s", err);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), 6);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"
	    " WHERE call_sid LIKE 't-%'"), 5);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM call_revisions"),
	    0);
	expect_fts_intact(d.db);
	/* The daemon still takes calls. */
	post_variant("call_ended.json", "callSid", "\"after-prune\"", NULL);
	ck_assert_int_eq(ch("list --format csv"), 0);
	ck_assert_int_eq(count_lines(out), 8);
}
END_TEST

static atomic_int posting;

/* Keep the daemon writing while a backup runs. */
static void *
poster(void *arg)
{
	char sid[64], *body;
	struct reply r;
	int *n = arg;

	while (atomic_load(&posting)) {
		snprintf(sid, sizeof(sid), "\"busy-%d\"", (*n)++);
		body = variant("call_ended_long.json", "callSid", sid, NULL);
		if (tu_post(d.port, PATH, JSON, body, strlen(body), &r) == 0)
			tu_reply_free(&r);
		free(body);
	}
	return NULL;
}

START_TEST(test_backup)
{
	char *dest = tmp_path("backup.db"), sid[32];
	pthread_t t;
	int posted = 0;
	long long n;

	fill();
	for (int i = 0; i < 200; i++) {
		snprintf(sid, sizeof(sid), "\"pre-%d\"", i);
		post_variant("call_ended_long.json", "callSid", sid, NULL);
	}
	atomic_store(&posting, 1);
	pthread_create(&t, NULL, poster, &posted);
	ck_assert_int_eq(ch("backup '%s'", dest), 0);
	atomic_store(&posting, 0);
	pthread_join(t, NULL);
	ck_assert_msg(strstr(out, dest) != NULL, "%s", out);
	ck_assert_int_eq(db_int(dest, "SELECT count(*) FROM"
	    " pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	n = db_int(dest, "SELECT count(*) FROM calls");
	ck_assert_msg(n >= NCALLS + 200, "%lld calls in the backup", n);
	expect_fts_intact(dest);
	/* It is a callhookd database like the original. */
	ck_assert_int_eq(ch_on(dest, "list --agent agent-B"), 0);
	ck_assert_int_eq(table_rows(), 2);
	expect_fail(ch("backup '%s'", dest), 1, "exists");
	ck_assert_int_eq(ch("backup --force '%s'", dest), 0);
	ck_assert_int_eq(db_int(dest, "SELECT count(*) FROM calls"),
	    db_int(d.db, "SELECT count(*) FROM calls"));
	/* The database's files: no advice to use --force. */
	expect_fail(ch("backup '%s-wal'", d.db), 1, "is the database or one");
	/* Never over the live database, by any name. */
	expect_fail(ch("backup --force '%s/../%s/calls.db'", d.dir,
	    strrchr(d.dir, '/') + 1), 1, "is the database or one of its");
	ck_assert_int_eq(tu_sh("ls '%s' | grep -c tmp- >/dev/null", d.dir),
	    1);
}
END_TEST

/*
 * Never over the files SQLite keeps beside the database (a review: the
 * WAL replaced lost committed events), and never over a directory, a
 * symbolic link or a FIFO, with --force or not.
 */
/*
 * A backup stopped by SIGTERM removes its partial copy, then dies of the
 * signal. The database is made big enough (128 MB) for the copy to last
 * well past the moment the temporary file appears.
 */
START_TEST(test_backup_interrupted)
{
	/* SIGHUP too: the ssh session a backup was started from closed. */
	static const struct {
		const char	*name;
		const char	*status;
	} sigs[] = { { "TERM", "143\n" }, { "HUP", "129\n" } };
	char *big = tmp_path("big.db"), *left, abs[PATH_MAX];

	ck_assert_ptr_nonnull(realpath(callhook(), abs));
	fill();
	ck_assert_int_eq(ch("backup '%s'", big), 0);
	db_exec(big, "CREATE TABLE pad (x); WITH RECURSIVE n(i) AS (SELECT 1"
	    " UNION ALL SELECT i + 1 FROM n WHERE i < 128) INSERT INTO pad"
	    " SELECT zeroblob(1048576) FROM n");
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		ck_assert_int_eq(tu_sh("cd '%s' && { '%s' -d big.db backup b.db"
		    " & pid=$!; until ls b.db.tmp-* >/dev/null 2>&1; do :;"
		    " done; kill -%s $pid; wait $pid; echo $? >status; }"
		    " 2>/dev/null", d.dir, abs, sigs[i].name), 0);
		left = tu_read_file(tmp_path("status"), NULL);
		ck_assert_ptr_nonnull(left);
		ck_assert_msg(strcmp(left, sigs[i].status) == 0, "SIG%s: exit "
		    "status %s (0: done before the signal)", sigs[i].name,
		    left);
		free(left);
		ck_assert_int_eq(tu_sh("cd '%s' && { ls b.db* >left 2>&1; "
		    "true; }", d.dir), 0);
		left = tu_read_file(tmp_path("left"), NULL);
		ck_assert_msg(left != NULL && strstr(left, "No such file") !=
		    NULL, "SIG%s: left behind: %s", sigs[i].name, left);
		free(left);
	}
}
END_TEST

START_TEST(test_backup_dest)
{
	static const char *const beside[] = { "-wal", "-shm", "-journal" };
	struct stat before, after;
	char wal[400], *path;

	fill();
	snprintf(wal, sizeof(wal), "%s-wal", d.db);
	ck_assert_int_eq(stat(wal, &before), 0);
	for (size_t i = 0; i < sizeof(beside) / sizeof(beside[0]); i++) {
		expect_fail(ch("backup --force '%s%s'", d.db, beside[i]), 1,
		    "is the database or one of its files");
		expect_fail(ch("backup --force '%s/./calls.db%s'", d.dir,
		    beside[i]), 1, "is the database or one of its files");
	}
	ck_assert_int_eq(stat(wal, &after), 0);
	ck_assert(before.st_ino == after.st_ino);
	ck_assert_int_eq(ch("list --limit 1"), 0);

	path = tmp_path("dir");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	expect_fail(ch("backup --force '%s'", path), 1, "is a directory");
	ck_assert_ptr_nonnull(strstr(err, "dir/calls.db"));
	path = tmp_path("dangling");
	ck_assert_int_eq(symlink("/nonexistent/x.db", path), 0);
	expect_fail(ch("backup '%s'", path), 1, "is not a regular file");
	expect_fail(ch("backup --force '%s'", path), 1,
	    "is not a regular file");
	ck_assert_int_eq(lstat(path, &after), 0);
	ck_assert(S_ISLNK(after.st_mode));
	path = tmp_path("fifo");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	expect_fail(ch("backup --force '%s'", path), 1,
	    "is not a regular file");
}
END_TEST

/*
 * The README's copy of calls into another database: the stored bodies as
 * JSON strings (the fixtures' bodies have line breaks) imported there
 * come back byte for byte.
 */
START_TEST(test_copy_bodies)
{
	char *other = tmp_path("copy.db");
	long long n;

	fill();
	n = db_int(d.db, "SELECT count(*) FROM calls");
	ck_assert_int_ge(n, 5);
	ck_assert_int_gt(db_int(d.db, "SELECT count(*) FROM calls"
	    " WHERE instr(payload, char(10)) > 0"), 0);
	ck_assert_int_eq(tu_sh("sqlite3 '%s' \"SELECT json_quote(payload) "
	    "FROM calls\" | '%s' -d '%s' import - >/dev/null", d.db,
	    callhook(), other), 0);
	ck_assert_int_eq(tu_sh("test \"$(sqlite3 '%s' \"ATTACH '%s' AS s; "
	    "SELECT count(*) FROM calls c JOIN s.calls x USING (call_sid) "
	    "WHERE c.payload = x.payload\")\" = %lld", other, d.db, n), 0);
	ck_assert_int_eq(db_int(other, "SELECT count(*) FROM calls"), n);
}
END_TEST

#define NOBODY	"setpriv --reuid=65534 --regid=65534 --clear-groups"

/*
 * A copy of the filled database as ro/b.db, in a directory uid 65534
 * may not write, with mode; NULL when that cannot be run here (not root,
 * no setpriv).
 */
static char *
copy_for_nobody(const char *mode)
{
	char *db = tmp_path("ro/b.db");

	if (geteuid() != 0 || tu_sh("command -v setpriv >/dev/null") != 0)
		return NULL;
	fill();
	ck_assert_int_eq(tu_sh("mkdir '%s/ro' && chmod 755 '%s'", d.dir,
	    d.dir), 0);
	ck_assert_int_eq(ch("backup '%s'", db), 0);
	ck_assert_int_eq(tu_sh("chmod %s '%s'", mode, db), 0);
	return db;
}

/*
 * A WAL database in a directory the reader may not write: SQLite must
 * create the -shm and -wal files there, and the message says so, and
 * what to do: a member of group callhookd met it with no way out named.
 */
START_TEST(test_wal_dir_unwritable)
{
	char *db;

	if ((db = copy_for_nobody("644")) == NULL)
		return;
	expect_fail(ch_env(NOBODY, db, "list"), 1, "SQLite must create its "
	    "-shm and -wal files beside a WAL database to read it, and "
	    "directory");
	ck_assert_msg(strstr(err, "/ro is not writable by uid 65534") != NULL,
	    "%s", err);
	ck_assert_msg(strstr(err, "; read a copy of the file made with cp, or "
	    "open it once as a user who may write there (a start of callhookd "
	    "makes them and leaves them)") != NULL, "%s", err);
	expect_fail(ch_env(NOBODY, db, "prune --older-than 1d"), 1,
	    "-shm and -wal");
	expect_fail(ch_env(NOBODY, db, "import /dev/null"), 1,
	    "-shm and -wal");
}
END_TEST

/*
 * A file the reader may not read, in a directory it may or may not
 * write: the message names the file, not the -shm and -wal files.
 */
START_TEST(test_unreadable_file)
{
	char *db;

	if ((db = copy_for_nobody("600")) == NULL)
		return;
	expect_fail(ch_env(NOBODY, db, "list"), 1, "b.db: the file is not "
	    "readable by uid 65534 (Permission denied)");
	ck_assert_int_eq(tu_sh("chmod 777 '%s/ro'", d.dir), 0);
	expect_fail(ch_env(NOBODY, db, "list"), 1, "not readable");
	expect_fail(ch_env(NOBODY, db, "import /dev/null"), 1,
	    "not readable");
}
END_TEST

/*
 * A -wal or -shm file beside the database that the reader may not read:
 * SQLite must read both, and the message names the one, not the
 * directory (which the reader may not write either, here).
 */
START_TEST(test_unreadable_side_files)
{
	static const char *const side[][2] = {
		{ "-wal", "b.db: its -wal file is not readable by uid 65534 "
		    "(Permission denied), and SQLite must read it beside a WAL "
		    "database; give it the database's owner, group and mode" },
		{ "-shm", "b.db: its -shm file is not readable by uid 65534" },
	};
	char *db;

	if ((db = copy_for_nobody("644")) == NULL)
		return;
	for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		ck_assert_int_eq(tu_sh("touch '%s-wal' '%s-shm' && chmod 644 "
		    "'%s-wal' '%s-shm' && chmod 600 '%s%s'", db, db, db, db,
		    db, side[i][0]), 0);
		expect_fail(ch_env(NOBODY, db, "list"), 1, side[i][1]);
	}
}
END_TEST

/*
 * A WAL database on a read-only file system (a mounted backup volume):
 * SQLite cannot create the -wal there either, and says only "unable to
 * open database file"; the message says why. The commands run before
 * any assertion, so that a failing one does not leave the mount behind.
 */
START_TEST(test_wal_readonly_fs)
{
	char *mnt = tmp_path("rofs"), *db = tmp_path("rofs/b.db");
	char *list_err, *backup_err;
	int list_rc, backup_rc, prune_rc, ro;

	if (geteuid() != 0)
		return;
	fill();
	ck_assert_int_eq(mkdir(mnt, 0755), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
		fprintf(stderr, "test_wal_readonly_fs: no tmpfs here (%s), "
		    "skipped\n", strerror(errno));
		return;
	}
	(void)ch("backup '%s'", db);
	ro = mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL);
	list_rc = ch_on(db, "list");
	list_err = strdup(err);
	backup_rc = ch_on(db, "backup '%s'", tmp_path("copy.db"));
	backup_err = strdup(err);
	prune_rc = ch_on(db, "prune --older-than 1d");
	umount2(mnt, MNT_DETACH);
	ck_assert_int_eq(ro, 0);
	ck_assert_int_eq(backup_rc, 1);
	ck_assert_msg(strstr(backup_err, "read-only file system") != NULL,
	    "%s", backup_err);
	ck_assert_int_eq(prune_rc, 1);
	ck_assert_msg(strstr(err, "read-only file system") != NULL, "%s", err);
	free(err);
	err = list_err;
	expect_fail(list_rc, 1, "SQLite must create its -shm and -wal files "
	    "beside a WAL database to read it, and directory");
	ck_assert_msg(strstr(err, "/rofs is on a read-only file system") !=
	    NULL, "%s", err);
	free(backup_err);
}
END_TEST

/*
 * restore. Backups go into bk/, so that a listing of the test's
 * directory shows only the database's files, out, err and the log.
 */
static char *
restore_backup(void)
{
	char *b = tmp_path("bk/b.db");

	ck_assert_int_eq(tu_sh("mkdir -p '%s/bk'", d.dir), 0);
	ck_assert_int_eq(ch("backup '%s'", b), 0);
	return b;
}

/*
 * What a refused restore must leave as it was: the names in the
 * directory, and every byte of the database and its WAL. (Counting
 * rows would open the file and could change it.)
 */
static char *
restore_snapshot(void)
{
	char *snap;

	ck_assert_int_eq(tu_sh("cd '%s' && { ls -a; cksum calls.db "
	    "calls.db-wal 2>&1; true; } >bk/snap", d.dir), 0);
	snap = tu_read_file(tmp_path("bk/snap"), NULL);
	ck_assert_ptr_nonnull(snap);
	return snap;
}

static void
expect_unchanged(const char *before, const char *what)
{
	char *now = restore_snapshot();

	ck_assert_msg(strcmp(before, now) == 0, "%s changed the files:\n"
	    "%s\nnow:\n%s", what, before, now);
	free(now);
}

/* The moved-aside database's path, from the output of a restore. */
static char *
replaced_name(void)
{
	static char name[400];
	const char *p = strstr(out, " is now ");
	size_t n;

	ck_assert_msg(p != NULL, "%s", out);
	p += strlen(" is now ");
	n = strcspn(p, " \n");
	ck_assert(n < sizeof(name));
	memcpy(name, p, n);
	name[n] = '\0';
	return name;
}

/*
 * Refused while callhookd runs on the database (it holds
 * DATABASE.lock), and while another process has the file open: the
 * first would go on writing its new events into the file moved aside.
 * Nothing changes, and the daemon goes on.
 */
START_TEST(test_restore_refused_running)
{
	char *b, *before, *after, lock[400];
	struct stat st1, st2;
	sqlite3 *h;

	fill();
	b = restore_backup();
	post_variant("call_ended.json", "callSid", "\"not-in-backup\"", NULL);
	ck_assert_int_eq(ch("export --format jsonl"), 0);
	before = strdup(out);
	ck_assert_int_eq(stat(d.db, &st1), 0);
	expect_fail(ch("restore '%s'", b), 1, "is in use by callhookd");
	snprintf(lock, sizeof(lock), "(pid %d, which holds %s.lock): stop "
	    "callhookd and callhookd.socket first", (int)d.pid, d.db);
	ck_assert_msg(strstr(err, lock) != NULL, "%s", err);
	ck_assert_int_eq(stat(d.db, &st2), 0);
	ck_assert(st1.st_ino == st2.st_ino);
	ck_assert_int_eq(tu_sh("ls '%s' | grep -q 'tmp-\\|replaced'", d.dir),
	    1);
	ck_assert_int_eq(ch("export --format jsonl"), 0);
	ck_assert_str_eq(out, before);
	ck_assert_int_eq(count_lines(out), NCALLS + 1);
	free(before);
	post_variant("call_ended.json", "callSid", "\"after-refusal\"", NULL);

	/* Stopped, but the file open here (an sqlite3 shell, say). */
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(sqlite3_open_v2(d.db, &h, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(h, "SELECT count(*) FROM calls", NULL,
	    NULL, NULL), SQLITE_OK);
	before = restore_snapshot();
	snprintf(lock, sizeof(lock), "is open in another process (pid %d",
	    (int)getpid());
	expect_fail(ch("restore '%s'", b), 1, lock);
	expect_unchanged(before, "a restore under an open connection");
	sqlite3_close(h);
	free(before);
	ck_assert_int_eq(ch("export --format jsonl"), 0);
	after = strstr(out, "after-refusal");
	ck_assert_msg(after != NULL, "%s", out);
}
END_TEST

/*
 * The daemon stopped: the database becomes the backup, with the owner,
 * group and mode the replaced file had; the replaced file and its -wal
 * and -shm stay, under one name, with all their rows; a file of events
 * set aside is named, and left. The daemon then runs on the restored
 * file.
 */
START_TEST(test_restore)
{
	char *b, *aside, path[500], *unsaved;
	long long nb;
	struct stat sb;
	int root = geteuid() == 0;

	fill();
	b = restore_backup();
	nb = db_int(b, "SELECT count(*) FROM calls");
	ck_assert_int_eq(nb, NCALLS);
	for (int i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "\"later-%d\"", i);
		post_variant("call_ended.json", "callSid", path, NULL);
	}
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	if (root)
		ck_assert_int_eq(tu_sh("chown 65534:65534 '%s' && chmod 600 "
		    "'%s'", d.db, d.db), 0);
	unsaved = tmp_path("calls.db.unsaved.jsonl");
	write_file(unsaved, "{\"event\":\"call_ended\"}\n");

	ck_assert_int_eq(ch("restore '%s'", b), 0);
	ck_assert_msg(count_lines(out) == 3 && err[0] == '\0', "%s%s", out,
	    err);
	ck_assert_msg(strstr(out, "restored from ") != NULL && strstr(out,
	    "(7 calls)") != NULL && strstr(out, "(with its -wal, -shm)") !=
	    NULL && strstr(out, "calls stored after the backup was made are "
	    "only in that file") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "calls.db.unsaved.jsonl holds events "
	    "callhookd set aside, which are in neither file") != NULL, "%s",
	    out);
	aside = replaced_name();
	ck_assert_msg(strncmp(aside, d.dir, strlen(d.dir)) == 0 &&
	    strstr(aside, "/calls.db.replaced-") != NULL, "%s", aside);
	snprintf(path, sizeof(path), "%s-wal", aside);
	ck_assert_int_eq(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s-shm", aside);
	ck_assert_int_eq(access(path, F_OK), 0);
	/* Nothing SQLite keeps beside a database is left beside the copy. */
	snprintf(path, sizeof(path), "%s-wal", d.db);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(tu_sh("ls '%s' | grep -q tmp-", d.dir), 1);
	ck_assert_int_eq(stat(d.db, &sb), 0);
	ck_assert_msg((sb.st_mode & 0777) == (root ? 0600u : 0640u),
	    "mode %o", (unsigned)(sb.st_mode & 0777));
	if (root)
		ck_assert(sb.st_uid == 65534 && sb.st_gid == 65534);
	free(out);
	ck_assert_ptr_nonnull(out = tu_read_file(unsaved, NULL));
	ck_assert_str_eq(out, "{\"event\":\"call_ended\"}\n");

	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), nb);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"
	    " WHERE call_sid LIKE 'later-%'"), 0);
	ck_assert_int_eq(db_int(aside, "SELECT count(*) FROM calls"), nb + 5);
	ck_assert_int_eq(db_int(aside, "SELECT count(*) FROM"
	    " pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	ck_assert_int_eq(tu_start(&d, NULL, NULL), 0);
	post_variant("call_ended.json", "callSid", "\"after-restore\"", NULL);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), nb + 1);
	ck_assert_int_eq(ch("search zebra"), 0);
	ck_assert_msg(strstr(out, "v-old") != NULL, "%s", out);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	expect_fts_intact(d.db);

	/*
	 * No database yet: its directory's owner and group, mode 0640. Run
	 * as root, restore works there as that owner, who (as the daemon
	 * does) must get through the test's directory.
	 */
	ck_assert_int_eq(tu_sh("chmod 711 '%s' && mkdir '%s/new' && "
	    "chown 65534:65534 '%s/new' 2>/dev/null || test $(id -u) != 0",
	    d.dir, d.dir, d.dir), 0);
	ck_assert_int_eq(ch_on(tmp_path("new/calls.db"), "restore '%s'", b),
	    0);
	ck_assert_msg(strstr(out, "there was no database to replace\n") !=
	    NULL && count_lines(out) == 1, "%s", out);
	ck_assert_int_eq(stat(tmp_path("new/calls.db"), &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0640);
	if (root)
		ck_assert(sb.st_uid == 65534 && sb.st_gid == 65534);
	ck_assert_int_eq(db_int(tmp_path("new/calls.db"),
	    "SELECT count(*) FROM calls"), nb);
	/* Again at once: another name for the second file moved aside. */
	ck_assert_int_eq(ch_on(tmp_path("new/calls.db"), "restore '%s'", b),
	    0);
	ck_assert_int_eq(ch_on(tmp_path("new/calls.db"), "restore '%s'", b),
	    0);
	ck_assert_int_eq(tu_sh("test $(ls '%s/new' | grep -c "
	    "'^calls.db.replaced-[0-9]*T[0-9]*Z\\(.[23]\\)\\?$') = 2", d.dir),
	    0);
}
END_TEST

/*
 * The events stored after the backup, in the replaced file, carried into
 * the restored one with the command of README "Backups and restoring"
 * and callhook(1): new calls, and bodies changed since (with the
 * revisions between), once; the calls that did not change keep their
 * deliveries; a second run changes nothing.
 */
#define CARRY_SQL "ATTACH '%s' AS restored;" \
	" SELECT json_quote(payload) FROM (SELECT call_sid, revision, payload" \
	" FROM call_revisions UNION ALL SELECT call_sid, revision, payload" \
	" FROM calls) AS h WHERE NOT EXISTS (SELECT 1 FROM restored.calls AS c" \
	" WHERE c.call_sid = h.call_sid AND c.payload = h.payload)" \
	" AND NOT EXISTS (SELECT 1 FROM restored.call_revisions AS r" \
	" WHERE r.call_sid = h.call_sid AND r.payload = h.payload)" \
	" ORDER BY h.call_sid, h.revision"

/* The command, on the daemon's database: import's summary in out. */
static int
carry(const char *aside)
{
	int rc;

	rc = tu_sh("sqlite3 -readonly '%s' \"" CARRY_SQL "\" | '%s' -d '%s'"
	    " import - >'%s/out' 2>'%s/err'", aside, d.db, callhook(), d.db,
	    d.dir, d.dir);
	free(out);
	ck_assert_ptr_nonnull(out = tu_read_file(tmp_path("out"), NULL));
	free(err);
	ck_assert_ptr_nonnull(err = tu_read_file(tmp_path("err"), NULL));
	return rc;
}

/* As many rows of table in db as in the attached file a, body for body. */
static void
expect_same_bodies(const char *a, const char *table, const char *key,
    long long n)
{
	ck_assert_int_eq(tu_sh("test \"$(sqlite3 '%s' \"ATTACH '%s' AS a;"
	    " SELECT count(*) FROM %s c JOIN a.%s x USING (%s)"
	    " WHERE c.payload = x.payload\")\" = %lld", d.db, a, table, table,
	    key, n), 0);
}

START_TEST(test_restore_carry)
{
	char *b, *aside;
	long long nb;

	fill();
	b = restore_backup();
	nb = db_int(b, "SELECT count(*) FROM calls");
	post_variant("call_ended.json", "callSid", "\"later-0\"", NULL);
	post_variant("call_ended.json", "callSid", "\"later-0\"",
	    "call_duration", "7", NULL);
	post_variant("call_ended.json", "callSid", "\"later-1\"", NULL);
	post_variant("call_ended.json", "callSid", "\"v-b1\"",
	    "transcription", "\"changed once\"", NULL);
	post_variant("call_ended.json", "callSid", "\"v-b1\"",
	    "transcription", "\"changed twice\"", NULL);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(ch("restore '%s'", b), 0);
	aside = strdup(replaced_name());
	ck_assert_int_eq(tu_start(&d, NULL, NULL), 0);

	ck_assert_int_eq(carry(aside), 0);
	ck_assert_msg(strstr(out, "5 lines: 2 stored, 0 duplicates, 3 "
	    "revisions, 0 refused") != NULL, "%s%s", out, err);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), nb + 2);
	expect_same_bodies(aside, "calls", "call_sid", nb + 2);
	expect_same_bodies(aside, "call_revisions", "call_sid, revision", 3);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM call_revisions"),
	    3);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls WHERE"
	    " (remote_addr = 'import') <> (call_sid LIKE 'later-%' OR"
	    " call_sid = 'v-b1')"), 0);
	ck_assert_int_eq(db_int(d.db, "SELECT sum(deliveries) FROM calls"
	    " WHERE remote_addr <> 'import'"), db_int(b, "SELECT"
	    " sum(deliveries) FROM calls WHERE call_sid <> 'v-b1'"));

	ck_assert_int_eq(carry(aside), 0);
	ck_assert_msg(strstr(out, "0 lines: 0 stored") != NULL, "%s%s", out,
	    err);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	expect_fts_intact(d.db);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM"
	    " pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	free(aside);
}
END_TEST

/*
 * A backup that is not one, or is damaged, is refused before anything
 * is touched, saying which file and why.
 */
START_TEST(test_restore_bad_backup)
{
	static const struct {
		const char	*file;
		const char	*says;
	} refused[] = {
		{ "bk/text.db", "text.db is not a callhookd database" },
		{ "bk/other.db", "other.db is not a callhookd database" },
		{ "bk/empty.db", "empty.db is empty" },
		{ "bk/newer.db", "newer.db has schema version 99, newer than "
		    "this program's" },
		{ "bk/link.db", "link.db is not a regular file" },
		{ "bk/fifo.db", "fifo.db is not a regular file" },
		{ "bk", "bk is not a regular file" },
		{ "bk/nope.db", "nope.db: no such file" },
	};
	char *b, *bad, *before;

	fill();
	b = restore_backup();
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	/* Bytes overwritten in its third page, the first of a table's. */
	bad = tmp_path("bk/damaged.db");
	ck_assert_int_eq(tu_sh("cp '%s' '%s' && head -c 3000 /dev/zero | "
	    "tr '\\0' x | dd of='%s' bs=1 seek=8200 conv=notrunc "
	    "2>/dev/null", b, bad, bad), 0);
	write_file(tmp_path("bk/text.db"), "hello, this is not SQLite\n");
	ck_assert_int_eq(tu_sh("cp '%s' '%s'", b, tmp_path("bk/newer.db")),
	    0);
	db_exec(tmp_path("bk/newer.db"), "PRAGMA user_version = 99");
	db_exec(tmp_path("bk/other.db"), "CREATE TABLE t (x)");
	ck_assert_int_eq(symlink(b, tmp_path("bk/link.db")), 0);
	ck_assert_int_eq(mkfifo(tmp_path("bk/fifo.db"), 0600), 0);
	write_file(tmp_path("bk/empty.db"), "");
	before = restore_snapshot();

	expect_fail(ch("restore '%s'", bad), 1, "damaged.db is damaged "
	    "(PRAGMA quick_check: ");
	expect_unchanged(before, "a damaged backup");
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		expect_fail(ch("restore '%s'", tmp_path(refused[i].file)), 1,
		    refused[i].says);
	expect_fail(ch("restore '%s'", d.db), 1,
	    "is the database or one of its files");
	expect_fail(ch("restore '%s/./calls.db-wal'", d.dir), 1,
	    "is the database or one of its files");
	ck_assert_int_eq(link(d.db, tmp_path("bk/hard.db")), 0);
	expect_fail(ch("restore '%s'", tmp_path("bk/hard.db")), 1,
	    "is the database or one of its files");
	expect_unchanged(before, "a refused backup");
	free(before);
	expect_fail(ch("restore"), 2, "BACKUP is needed");
	expect_fail(ch("restore a b"), 2, "unexpected argument: b");
	expect_fail(ch("restore --force x"), 2, "unrecognized option");
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), NCALLS);
	/*
	 * A lock file a refused restore made as root is left the owner's.
	 * (A bad backup is refused before the lock is taken.)
	 */
	if (geteuid() == 0) {
		sqlite3 *h;

		ck_assert_int_eq(tu_sh("rm '%s.lock' && chown 65534:65534 '%s'",
		    d.db, d.db), 0);
		expect_fail(ch("restore '%s'", tmp_path("bk/damaged.db")), 1,
		    "is damaged");
		ck_assert_int_eq(tu_sh("test ! -e '%s.lock'", d.db), 0);
		ck_assert_int_eq(sqlite3_open_v2(d.db, &h, SQLITE_OPEN_READONLY,
		    NULL), SQLITE_OK);
		ck_assert_int_eq(sqlite3_exec(h, "SELECT count(*) FROM calls",
		    NULL, NULL, NULL), SQLITE_OK);
		expect_fail(ch("restore '%s'", tmp_path("bk/b.db")), 1,
		    "is open in another process");
		sqlite3_close(h);
		ck_assert_int_eq(tu_sh("test \"$(stat -c %%u:%%g '%s.lock')\" = "
		    "65534:65534", d.db), 0);
	}
}
END_TEST

/*
 * The trap of the README's old procedure: a daemon killed under load
 * leaves a -wal with the old file's last commits, which the next open
 * wrote into the backup put in its place, corrupting it. restore moves
 * it aside with the file; callhookd then starts on the backup, whole.
 */
START_TEST(test_restore_after_kill)
{
	char *b, *aside, sid[32], wal[400];
	struct stat sb;
	pthread_t t;
	int posted = 0;

	fill();
	b = restore_backup();
	for (int i = 0; i < 30; i++) {
		snprintf(sid, sizeof(sid), "\"after-%d\"", i);
		post_variant("call_ended_long.json", "callSid", sid, NULL);
	}
	atomic_store(&posting, 1);
	pthread_create(&t, NULL, poster, &posted);
	tu_sleep_ms(300);
	ck_assert_int_eq(tu_stop(&d, SIGKILL), 128 + SIGKILL);
	atomic_store(&posting, 0);
	pthread_join(t, NULL);
	snprintf(wal, sizeof(wal), "%s-wal", d.db);
	ck_assert_int_eq(stat(wal, &sb), 0);
	ck_assert_int_gt(sb.st_size, 0);

	ck_assert_int_eq(ch("restore '%s'", b), 0);
	aside = replaced_name();
	ck_assert_int_eq(tu_start(&d, NULL, NULL), 0);
	post_variant("call_ended.json", "callSid", "\"later-1\"", NULL);
	post_variant("call_ended.json", "callSid", "\"later-2\"", NULL);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM"
	    " pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"),
	    NCALLS + 2);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"
	    " WHERE call_sid LIKE 'later-%'"), 2);
	expect_fts_intact(d.db);
	/* What the killed daemon had committed is in the file moved aside. */
	ck_assert_int_eq(db_int(aside, "SELECT count(*) FROM calls"
	    " WHERE call_sid LIKE 'after-%'"), 30);
	ck_assert_int_eq(db_int(aside, "SELECT count(*) FROM"
	    " pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
}
END_TEST

/* A backup of an older schema is restored as it is; callhookd migrates. */
START_TEST(test_restore_old_schema)
{
	char *b, *log;

	fill();
	b = restore_backup();
	db_exec(b, "PRAGMA user_version = 2");
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(ch("restore '%s'", b), 0);
	ck_assert_int_eq(db_int(d.db, "PRAGMA user_version"), 2);
	ck_assert_int_eq(tu_start(&d, NULL, NULL), 0);
	ck_assert_ptr_nonnull(log = tu_read_file(d.log, NULL));
	ck_assert_msg(strstr(log, "migrated from schema version 2 to ") !=
	    NULL, "%s", log);
	free(log);
	ck_assert_int_gt(db_int(d.db, "PRAGMA user_version"), 2);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), NCALLS);
}
END_TEST

/*
 * While a restore runs, a callhookd started on the database (socket
 * activation) stops at once, saying why, rather than creating a new
 * file that the restore would then replace, 200'd events and all. The
 * restore is held still (SIGSTOP) while the daemon tries.
 */
START_TEST(test_restore_keeps_daemon_out)
{
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	char *b, abs[PATH_MAX], absd[PATH_MAX], want[200], *text;

	ck_assert_ptr_nonnull(realpath(callhook(), abs));
	ck_assert_ptr_nonnull(realpath(bin, absd));
	fill();
	b = restore_backup();
	db_exec(b, "CREATE TABLE pad (x); WITH RECURSIVE n(i) AS (SELECT 1"
	    " UNION ALL SELECT i + 1 FROM n WHERE i < 64) INSERT INTO pad"
	    " SELECT zeroblob(1048576) FROM n");
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(tu_sh("cd '%s' && { '%s' -d calls.db restore '%s' "
	    ">rout 2>&1 & pid=$!; until grep -qs 'callhook restore' "
	    "calls.db.lock || test -s rout; do :; done; kill -STOP $pid; "
	    "echo $pid >rpid; "
	    "timeout 10 '%s' --listen 127.0.0.1:0 --database calls.db "
	    "2>derr; echo $? >dstatus; kill -CONT $pid; wait $pid; }", d.dir,
	    abs, b, absd), 0);
	ck_assert_ptr_nonnull(text = tu_read_file(tmp_path("dstatus"), NULL));
	ck_assert_str_eq(text, "1\n");
	free(text);
	ck_assert_ptr_nonnull(text = tu_read_file(tmp_path("rpid"), NULL));
	snprintf(want, sizeof(want), "calls.db is in use by callhook restore "
	    "(pid %d, which holds ", atoi(text));
	free(text);
	ck_assert_ptr_nonnull(text = tu_read_file(tmp_path("derr"), NULL));
	ck_assert_msg(strstr(text, want) != NULL, "%s", text);
	free(text);
	ck_assert_int_eq(tu_start(&d, NULL, NULL), 0);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), NCALLS);
}
END_TEST

/*
 * A restore that fails after it has begun to move the database's files
 * puts them back. Here uid 65534 may give the database and its -wal,
 * which it owns, their name aside (a hard link), but not the -shm,
 * which root owns (fs.protected_hardlinks).
 */
START_TEST(test_restore_undone)
{
	char *b, *before;

	/* Without it, the link is made and cannot be removed again. */
	if (geteuid() != 0 || tu_sh("command -v setpriv >/dev/null") != 0 ||
	    tu_sh("grep -qx 1 /proc/sys/fs/protected_hardlinks") != 0)
		return;
	fill();
	b = restore_backup();
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(tu_sh("cd '%s' && chmod 1777 . && chmod 777 bk && "
	    "chown 65534:65534 calls.db calls.db-wal calls.db.lock bk/b.db && "
	    "chmod 644 calls.db-shm", d.dir), 0);
	before = restore_snapshot();
	ck_assert_int_eq(ch_env(NOBODY, d.db, "restore '%s'", b), 1);
	ck_assert_msg(strstr(err, "restore stopped: linking ") != NULL &&
	    strstr(err, "calls.db-shm to ") != NULL && strstr(err,
	    "Operation not permitted") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "calls.db and its files are back as they "
	    "were") != NULL, "%s", err);
	expect_unchanged(before, "an undone restore");
	free(before);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM calls"), NCALLS);
}
END_TEST

/*
 * After a restore was killed: the replaced files whole under one name
 * (in place, or moved aside together), and the database either those
 * files, the backup, or not there (callhookd then makes a new one; SQLite
 * drops a -wal left without its file). callhookd starts on it, and
 * SQLite finds it whole.
 */
static void
expect_whole_after_kill(long long all, long long nb, const char *when)
{
	long long live = -1, n;
	int whole = 0;
	glob_t g = { 0 };

	if (access(d.db, F_OK) == 0) {
		live = db_int(d.db, "SELECT count(*) FROM calls");
		whole += live == all;
		ck_assert_msg(live == all || live == nb, "%s: the database has "
		    "%lld calls, neither the %lld it had nor the backup's %lld",
		    when, live, all, nb);
	}
	n = glob(tmp_path("calls.db.replaced-*"), 0, NULL, &g);
	ck_assert(n == 0 || n == GLOB_NOMATCH);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *p = g.gl_pathv[i], *dash = strrchr(p, '-');

		if (strcmp(dash, "-wal") == 0 || strcmp(dash, "-shm") == 0 ||
		    strcmp(dash, "-journal") == 0)
			continue;
		n = db_int(p, "SELECT count(*) FROM calls");
		whole += n == all;
	}
	globfree(&g);
	ck_assert_msg(whole >= 1, "%s: no file holds the %lld calls the "
	    "database had (it has %lld)", when, all, live);
	ck_assert_int_eq(tu_start(&d, NULL, NULL), 0);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(db_int(d.db, "SELECT count(*) FROM"
	    " pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
}

/*
 * A restore killed at any step (kill -9, or a power cut, which leaves
 * the renames done so far): strace kills it at each call that adds,
 * removes or renames a name, on a database whose -wal holds commits
 * (its daemon was killed). Moving the -wal aside before the database
 * left the database, for a moment, without the commits of its -wal,
 * and nothing whole under any name.
 */
START_TEST(test_restore_killed_anywhere)
{
	static const char *const calls[] = { "link", "unlink", "rename",
	    "renameat2" };
	char *b, bin[PATH_MAX], sid[32], when[64];
	long long all;

	if (tu_sh("command -v strace >/dev/null") != 0)
		return;
	ck_assert_ptr_nonnull(realpath(callhook(), bin));
	fill();
	b = strdup(restore_backup());
	for (int i = 0; i < 30; i++) {
		snprintf(sid, sizeof(sid), "\"after-%d\"", i);
		post_variant("call_ended_long.json", "callSid", sid, NULL);
	}
	ck_assert_int_eq(tu_stop(&d, SIGKILL), 128 + SIGKILL);
	all = NCALLS + 30;
	ck_assert_int_eq(tu_sh("cd '%s' && test -s calls.db-wal && mkdir keep "
	    "&& cp calls.db calls.db-wal calls.db-shm keep/", d.dir), 0);
	for (size_t c = 0; c < sizeof(calls) / sizeof(calls[0]); c++) {
		for (int k = 1; k <= 4; k++) {
			ck_assert_int_eq(tu_sh("cd '%s' && rm -f calls.db* && "
			    "cp keep/* . && strace -qq -o /dev/null -e trace=%s "
			    "-e inject=%s:signal=KILL:when=%d '%s' -d calls.db "
			    "restore '%s' >/dev/null 2>&1; true", d.dir,
			    calls[c], calls[c], k, bin, b), 0);
			snprintf(when, sizeof(when), "killed at %s #%d",
			    calls[c], k);
			expect_whole_after_kill(all, NCALLS, when);
		}
	}
	free(b);
}
END_TEST

/* victim is still root's 0600 file holding "precious", and alone. */
static void
expect_victim_intact(const char *what)
{
	struct stat sb;
	char *text;

	ck_assert_int_eq(stat(tmp_path("victim"), &sb), 0);
	ck_assert_msg(sb.st_uid == 0 && sb.st_gid == 0 &&
	    (sb.st_mode & 0777) == 0600, "%s: victim is now %u:%u %o", what,
	    (unsigned)sb.st_uid, (unsigned)sb.st_gid,
	    (unsigned)(sb.st_mode & 0777));
	ck_assert_ptr_nonnull(text = tu_read_file(tmp_path("victim"), NULL));
	ck_assert_msg(strcmp(text, "precious\n") == 0, "%s: victim "
	    "overwritten", what);
	free(text);
	ck_assert_int_eq(tu_sh("ls '%s' | grep -q 'victim.'", d.dir), 1);
}

/*
 * Run as root on a database in a directory its user owns (the daemon's
 * /var/lib/callhookd), a restore must not follow the links that user
 * can leave there to files only root may touch: a database name linked
 * to one (root would replace it), or the copy's temporary name swapped
 * for one while it is made (root would give it away and write over it;
 * strace widens that window, when there is strace).
 */
START_TEST(test_restore_links_planted)
{
	char *b, bin[PATH_MAX];

	if (geteuid() != 0 || tu_sh("command -v setpriv >/dev/null") != 0)
		return;
	fill();
	b = restore_backup();
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	/* The daemon, as 65534, must get through to its directory too. */
	ck_assert_int_eq(tu_sh("cd '%s' && chmod 711 . && chmod 755 bk && "
	    "mkdir u && cp calls.db u/ && chown -R 65534:65534 u && "
	    "chmod 750 u && printf 'precious\\n' >victim && chmod 600 victim",
	    d.dir), 0);

	ck_assert_int_eq(tu_sh("%s ln -s '%s' '%s'", NOBODY,
	    tmp_path("victim"), tmp_path("u/link.db")), 0);
	ck_assert_int_eq(ch_on(tmp_path("u/link.db"), "restore '%s'", b), 1);
	expect_victim_intact("a database name linked to it");
	ck_assert_msg(strstr(err, "not writable by uid 65534") != NULL &&
	    strstr(err, "(run as root, restore works as uid 65534, the owner "
	    "of ") != NULL, "%s", err);

	if (tu_sh("command -v strace >/dev/null") != 0)
		return;
	ck_assert_ptr_nonnull(realpath(callhook(), bin));
	ck_assert_int_eq(tu_sh("cd '%s/u' && { %s sh -c 'i=0; until f=$(ls -d "
	    "calls.db.tmp-* 2>/dev/null) || test $i = 3000; do i=$((i+1)); "
	    "sleep 0.002; done; rm -f \"$f\" && ln -s ../victim \"$f\"' & "
	    "strace -qq -o /dev/null -e trace=chown,fchown,fchownat,chmod,"
	    "fchmod,fchmodat -e inject=chown,fchown,fchownat,chmod,fchmod,"
	    "fchmodat:delay_enter=300000 '%s' -d calls.db restore '%s' "
	    ">/dev/null 2>&1; wait; }", d.dir, NOBODY, bin, b), 0);
	expect_victim_intact("the copy's name swapped for a link to it");
}
END_TEST

/*
 * A NUL in a refused body, which the reason names: \u0000 in JSON, the
 * byte itself in CSV to a file.
 */
static void
expect_nul_body(void)
{
	static const char body[] = "{\"a\":\"b\0c\"}";
	static const char quoted[] = "\"{\"\"a\"\":\"\"b\0c\"\"}\"";
	struct reply r;
	size_t len;
	char *csv;

	ck_assert_int_eq(tu_post(d.port, PATH, JSON, body, sizeof(body) - 1,
	    &r), 0);
	ck_assert_int_eq(r.status, 400);
	tu_reply_free(&r);
	ck_assert_int_eq(ch("rejects --limit 1 --format json"), 0);
	ck_assert_msg(strstr(out, "\"body\":\"{\\\"a\\\":\\\"b\\u0000c\\\"}\"")
	    != NULL, "%s", out);
	ck_assert_int_eq(ch("rejects --limit 1 --format csv"), 0);
	csv = tu_read_file(tmp_path("out"), &len);
	ck_assert_ptr_nonnull(csv);
	ck_assert_msg(memmem(csv, len, quoted, sizeof(quoted) - 1) != NULL,
	    "%s", csv);
	free(csv);
}

START_TEST(test_rejects)
{
	struct reply r;
	cJSON *arr, *o;

	ck_assert_int_eq(tu_post(d.port, PATH, JSON, "{\"event\":\"nope\"}",
	    16, &r), 0);
	ck_assert_int_eq(r.status, 400);
	tu_reply_free(&r);
	ck_assert_int_eq(tu_post(d.port, PATH, JSON, "{oops", 5, &r), 0);
	tu_reply_free(&r);
	ck_assert_int_eq(ch("rejects"), 0);
	ck_assert_msg(strncmp(out, "TIME (UTC)", 10) == 0, "%s", out);
	ck_assert_int_eq(count_lines(out), 3);
	ck_assert(strstr(out, "Unknown event type") != NULL);
	ck_assert_int_eq(ch("rejects --limit 1 --format json"), 0);
	ck_assert_msg((arr = cJSON_Parse(out)) != NULL, "%s", out);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	o = cJSON_GetArrayItem(arr, 0);
	ck_assert(num(o, "status") == 400);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "body")->valuestring, "{oops");
	cJSON_Delete(arr);
	/* A body that is not UTF-8 still makes valid JSON and CSV. */
	ck_assert_int_eq(tu_post(d.port, PATH, JSON, "{\"a\":\"\xff\"}", 9,
	    &r), 0);
	ck_assert_int_eq(r.status, 400);
	tu_reply_free(&r);
	ck_assert_int_eq(ch("rejects --limit 1 --format json"), 0);
	ck_assert_msg((arr = cJSON_Parse(out)) != NULL, "%s", out);
	o = cJSON_GetArrayItem(arr, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "body")->valuestring,
	    "{\"a\":\"\xef\xbf\xbd\"}");
	cJSON_Delete(arr);
	ck_assert_int_eq(ch("rejects --limit 1 --format csv"), 0);
	ck_assert(strstr(out, "\xef\xbf\xbd") != NULL);
	expect_nul_body();
}
END_TEST

Suite *
callhook_suite(void)
{
	Suite *s = suite_create("callhook");
	TCase *tc = tcase_create("callhook");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_config);
	tcase_add_test(tc, test_list_table);
	tcase_add_test(tc, test_filters_exact);
	tcase_add_test(tc, test_list_time_forms);
	tcase_add_test(tc, test_table_clean);
	tcase_add_test(tc, test_table_bidi);
	tcase_add_test(tc, test_list_csv);
	tcase_add_test(tc, test_list_json);
	tcase_add_test(tc, test_history);
	tcase_add_test(tc, test_search);
	tcase_add_test(tc, test_search_orphan);
	tcase_add_test(tc, test_color);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_stats_nul_key);
	tcase_add_test(tc, test_stats_huge_duration);
	tcase_add_test(tc, test_stats_long_total);
	tcase_add_test(tc, test_show);
	tcase_add_test(tc, test_show_revisions_clean);
	tcase_add_test(tc, test_json_as_sent);
	tcase_add_test(tc, test_export);
	tcase_add_test(tc, test_export_real_exact);
	tcase_add_test(tc, test_import);
	tcase_add_test(tc, test_import_pretty);
	tcase_add_test(tc, test_import_stops);
	tcase_add_test(tc, test_import_follows);
	tcase_add_test(tc, test_import_quoted);
	tcase_add_test(tc, test_prune_cutoff);
	tcase_add_test(tc, test_prune_shared_time);
	tcase_add_test(tc, test_prune);
	tcase_add_test(tc, test_prune_stops);
	tcase_add_test(tc, test_backup);
	tcase_add_test(tc, test_backup_dest);
	tcase_add_test(tc, test_backup_interrupted);
	tcase_add_test(tc, test_copy_bodies);
	tcase_add_test(tc, test_wal_dir_unwritable);
	tcase_add_test(tc, test_unreadable_file);
	tcase_add_test(tc, test_unreadable_side_files);
	tcase_add_test(tc, test_wal_readonly_fs);
	tcase_add_test(tc, test_restore_refused_running);
	tcase_add_test(tc, test_restore);
	tcase_add_test(tc, test_restore_bad_backup);
	tcase_add_test(tc, test_restore_after_kill);
	tcase_add_test(tc, test_restore_old_schema);
	tcase_add_test(tc, test_restore_keeps_daemon_out);
	tcase_add_test(tc, test_restore_undone);
	tcase_add_test(tc, test_restore_carry);
	tcase_add_test(tc, test_restore_links_planted);
	tcase_add_test(tc, test_restore_killed_anywhere);
	tcase_add_test(tc, test_rejects);
	suite_add_tcase(s, tc);
	return s;
}

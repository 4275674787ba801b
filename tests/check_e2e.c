/*
 * End to end: the real callhookd binary on a real port with a real SQLite
 * file. Every answer is checked, and every stored row is read back and
 * compared with what was sent.
 */

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "testutil.h"

#define PATH	"/webhook/call-webhook"
#define JSON	"application/json"

static struct daemon_proc d;

static void
setup(void)
{
	tu_tmpdir(&d);
}

static void
teardown(void)
{
	tu_cleanup(&d);
}

static void
start_or_fail(const char *ini)
{
	ck_assert_msg(tu_start(&d, ini, NULL) == 0, "daemon did not start");
}

static void
stop_clean(void)
{
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
}

static sqlite3 *
db_open(void)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open_v2(d.db, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	return db;
}

/* The first column of the first row as text ("" for NULL); malloc'd. */
static char *
db_text(const char *fmt, ...)
{
	sqlite3 *db = db_open();
	sqlite3_stmt *st;
	char *sql, *out;
	va_list ap;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		out = strdup((const char *)sqlite3_column_text(st, 0));
	else
		out = strdup("");
	sqlite3_finalize(st);
	sqlite3_free(sql);
	sqlite3_close(db);
	return out;
}

static long long
db_int(const char *fmt, const char *arg)
{
	char *s = db_text(fmt, arg);
	long long v = atoll(s);

	free(s);
	return v;
}

static void
expect_reply(const struct reply *r, int status, const char *message)
{
	cJSON *j = cJSON_Parse(r->body), *m;

	ck_assert_msg(r->status == status, "status %d, want %d: %s",
	    r->status, status, r->body);
	ck_assert_msg(j != NULL, "reply is not JSON: %s", r->body);
	m = cJSON_GetObjectItem(j, "message");
	if (message != NULL) {
		ck_assert(cJSON_IsString(m));
		ck_assert_str_eq(m->valuestring, message);
	}
	ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring,
	    status < 300 ? "success" : "error");
	cJSON_Delete(j);
}

static void
post_expect(const char *body, int status, const char *message)
{
	struct reply r;

	ck_assert_int_eq(tu_post(d.port, PATH, JSON, body, strlen(body), &r),
	    0);
	expect_reply(&r, status, message);
	tu_reply_free(&r);
}

static void
expect_column(const char *sid, const char *col, const char *want)
{
	char *got = db_text("SELECT %s FROM calls WHERE call_sid = %Q", col,
	    sid);

	ck_assert_msg(strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"",
	    col, got, want);
	free(got);
}

/* JSON columns compare as JSON: re-print the stored text compactly. */
static void
expect_json_column(const char *sid, const char *col, const cJSON *want)
{
	char *got = db_text("SELECT %s FROM calls WHERE call_sid = %Q", col,
	    sid);
	cJSON *j = cJSON_Parse(got);

	ck_assert_msg(j != NULL && cJSON_Compare(j, want, 1),
	    "%s: got %s", col, got);
	cJSON_Delete(j);
	free(got);
}

static const char *
str_or_empty(const cJSON *data, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(data, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static void
compare_fixture_row(const char *file)
{
	static const char *const text[][2] = {
		{ "call_type", "name" }, { "agent_id", "agent" },
		{ "version_id", "versionId" }, { "from_number", "from" },
		{ "to_number", "to" }, { "recording_url", "recordingUrl" },
		{ "call_time", "time" }, { "transcription", "transcription" },
		{ "batch_id", "batchId" }, { "hangup_reason", "hangup_reason" },
		{ "disposition_reason", "disposition_reason" },
		{ "call_link", "call_link" },
	};
	static const char *const json[][2] = {
		{ "call_metadata", "call_metadata" }, { "post_call", "post_call" },
		{ "post_call_detail", "post_call_detail" },
		{ "functions_called", "functions_called" },
	};
	size_t len;
	char *body = tu_fixture(file, &len), *s;
	cJSON *root = cJSON_Parse(body), *data = cJSON_GetObjectItem(root,
	    "data");
	const char *sid = str_or_empty(data, "callSid");
	char num[64];

	expect_column(sid, "event", "call_ended");
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		expect_column(sid, text[i][0], str_or_empty(data, text[i][1]));
	for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++)
		expect_json_column(sid, json[i][0],
		    cJSON_GetObjectItem(data, json[i][1]));
	snprintf(num, sizeof(num), "%g",
	    cJSON_GetObjectItem(data, "call_duration")->valuedouble);
	expect_column(sid, "printf('%g', call_duration)", num);
	snprintf(num, sizeof(num), "%d",
	    cJSON_GetObjectItem(data, "try_count")->valueint);
	expect_column(sid, "try_count", num);
	expect_column(sid, "conversion_status", cJSON_IsTrue(
	    cJSON_GetObjectItem(data, "conversion_status")) ? "1" : "0");
	expect_column(sid, "next_call_scheduled", cJSON_IsTrue(
	    cJSON_GetObjectItem(data, "next_call_scheduled")) ? "1" : "0");
	expect_column(sid, "payload", body);
	expect_column(sid, "length(CAST(payload AS BLOB))", (snprintf(num,
	    sizeof(num), "%zu", len), num));
	expect_column(sid, "deliveries", "1");
	expect_column(sid, "revision", "1");
	expect_column(sid, "remote_addr", "127.0.0.1");
	s = db_text("SELECT first_received_at GLOB '[0-9][0-9][0-9][0-9]-"
	    "[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9]"
	    "[0-9][0-9]Z' AND received_at = first_received_at FROM calls "
	    "WHERE call_sid = %Q", sid);
	ck_assert_str_eq(s, "1");
	free(s);
	cJSON_Delete(root);
	free(body);
}

START_TEST(test_fixtures_stored_exactly)
{
	static const char *const files[] = { "call_ended.json",
	    "call_ended_long.json", "call_ended_inbound.json" };
	struct reply r;

	start_or_fail(NULL);
	for (size_t i = 0; i < 3; i++) {
		size_t len;
		char *body = tu_fixture(files[i], &len);

		ck_assert_ptr_nonnull(body);
		ck_assert_int_eq(tu_post(d.port, PATH, JSON, body, len, &r), 0);
		expect_reply(&r, 200, "Webhook received");
		ck_assert_str_eq(r.body, "{\"status\":\"success\",\"message\":"
		    "\"Webhook received\"}");
		tu_reply_free(&r);
		free(body);
	}
	/* ack = commit: the rows are there before the daemon stops. */
	for (size_t i = 0; i < 3; i++)
		compare_fixture_row(files[i]);
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls%s", ""), 3);
	/* Searchable once the daemon has had a quiet moment. */
	ck_assert_int_eq(tu_wait_indexed(d.port, 2000), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls_fts WHERE "
	    "calls_fts MATCH %Q", "callback"), 3);
	ck_assert_int_eq(db_int("SELECT count(*) FROM call_functions WHERE "
	    "call_sid = %Q AND name = 'update_crm' AND success = 1",
	    "2303fa770b666a64ab1694c1e"), 1);
	stop_clean();
}
END_TEST

START_TEST(test_duplicate_and_revision)
{
	char *body = tu_fixture("call_ended.json", NULL), *changed;
	const char *sid = "2303fa770b666a64ab1694c1e";

	start_or_fail(NULL);
	post_expect(body, 200, "Webhook received");
	post_expect(body, 200, "Webhook received");
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls WHERE call_sid = "
	    "%Q", sid), 1);
	ck_assert_int_eq(db_int("SELECT deliveries FROM calls WHERE call_sid "
	    "= %Q", sid), 2);
	ck_assert_int_eq(db_int("SELECT revision FROM calls WHERE call_sid = "
	    "%Q", sid), 1);

	changed = tu_replace(body, "CLIENT_INITIATED", "AGENT_INITIATED");
	post_expect(changed, 200, "Webhook received");
	ck_assert_int_eq(db_int("SELECT revision FROM calls WHERE call_sid = "
	    "%Q", sid), 2);
	ck_assert_int_eq(db_int("SELECT deliveries FROM calls WHERE call_sid "
	    "= %Q", sid), 3);
	expect_column(sid, "hangup_reason", "AGENT_INITIATED");
	expect_column(sid, "payload", changed);
	ck_assert_int_eq(db_int("SELECT count(*) FROM call_revisions WHERE "
	    "call_sid = %Q", sid), 1);
	{
		char *old = db_text("SELECT payload FROM call_revisions WHERE "
		    "call_sid = %Q AND revision = 1", sid);

		ck_assert_str_eq(old, body);
		free(old);
	}
	/*
	 * Counted apart (README, Metrics and logs), with a second duplicate
	 * so that the two counts differ: a 200 is never ahead of /metrics,
	 * so commit mode's counts are there already.
	 */
	post_expect(changed, 200, "Webhook received");
	ck_assert_int_eq(tu_metric(d.port, "callhookd_events_stored_total"),
	    1);
	ck_assert_int_eq(tu_metric(d.port, "callhookd_duplicates_total"), 2);
	ck_assert_int_eq(tu_metric(d.port, "callhookd_revisions_total"), 1);
	/* The commits went through the WAL, not yet all checkpointed. */
	ck_assert_int_gt(tu_metric(d.port, "callhookd_wal_pages_behind"), 0);
	stop_clean();
	free(changed);
	free(body);
}
END_TEST

/*
 * callhookd_seconds_since_last_event counts from the database's last
 * event, not this run's: it read -1 after every restart, which turned
 * off an alert on a sender gone quiet until the sender came back.
 */
START_TEST(test_last_event_survives_restart)
{
	char *body = tu_fixture("call_ended.json", NULL);
	long long since;

	start_or_fail(NULL);
	ck_assert_int_eq(tu_metric(d.port,
	    "callhookd_seconds_since_last_event"), -1);
	post_expect(body, 200, "Webhook received");
	stop_clean();
	start_or_fail(NULL);
	since = tu_metric(d.port, "callhookd_seconds_since_last_event");
	ck_assert_msg(since >= 0 && since < 60, "seconds since the last "
	    "event after a restart: %lld", since);
	stop_clean();
	free(body);
}
END_TEST

/*
 * A start that migrates an older file says so, once: after an upgrade
 * the log is where the operator learns that the file changed and that
 * the callhookd before the upgrade refuses it now.
 */
START_TEST(test_migration_logged)
{
	char *body = tu_fixture("call_ended.json", NULL), *log;
	const char *line = "migrated from schema version 2 to ";
	sqlite3 *db;

	start_or_fail(NULL);
	post_expect(body, 200, "Webhook received");
	stop_clean();
	ck_assert_int_eq(sqlite3_open(d.db, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 2", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	start_or_fail(NULL);
	stop_clean();
	start_or_fail(NULL);
	stop_clean();
	ck_assert_ptr_nonnull(log = tu_read_file(d.log, NULL));
	ck_assert_msg(strstr(log, line) != NULL, "%s", log);
	ck_assert_msg(strstr(strstr(log, line) + 1, line) == NULL, "%s", log);
	ck_assert_msg(strstr(log, "migrated from schema version 0") == NULL,
	    "%s", log);
	free(log);
	free(body);
}
END_TEST

/* POST the first len bytes of body chunked, in one chunk: want status. */
static void
post_chunked(const char *body, int len, int want)
{
	struct reply r;
	char req[6000];
	int n = snprintf(req, sizeof(req), "POST " PATH " HTTP/1.1\r\n"
	    "Host: x\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n%x\r\n%.*s\r\n0\r\n\r\n",
	    len, len, body);

	ck_assert_int_lt(n, (int)sizeof(req));
	ck_assert_int_eq(tu_raw(d.port, req, (size_t)n, &r), 0);
	expect_reply(&r, want, NULL);
	tu_reply_free(&r);
}

START_TEST(test_bad_requests)
{
	char *body = tu_fixture("call_ended.json", NULL), *ev, *big;
	struct reply r;
	char hdr[128];

	start_or_fail("[http]\nmax_body = 2K\n");
	ev = tu_replace(body, "call_ended", "call_started");
	post_expect(ev, 400, "Unknown event type");
	free(ev);
	post_expect("{\"event\":", 400, NULL);
	post_expect("[1,2]", 400, NULL);
	post_expect("{\"event\":\"call_ended\",\"data\":{}}", 400,
	    "data.callSid is required");
	post_expect("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"\"}}",
	    400, "data.callSid must not be empty");
	post_expect("{\"event\":\"call_ended\",\"data\":{\"callSid\":7}}",
	    400, "data.callSid must be a string");
	post_expect("{\"event\":\"call_ended\",\"data\":[]}", 400, NULL);
	post_expect("", 400, NULL);

	ck_assert_int_eq(tu_post(d.port, PATH, "text/plain", body,
	    strlen(body), &r), 0);
	expect_reply(&r, 415, NULL);
	/* Every answer is JSON, and says so: refusals too. */
	ck_assert_int_eq(tu_header(&r, "Content-Type", hdr, sizeof(hdr)), 0);
	ck_assert_str_eq(hdr, "application/json");
	tu_reply_free(&r);
	/* application/json itself, not a longer name that starts with it. */
	ck_assert_int_eq(tu_post(d.port, PATH, "application/jsonx", body,
	    strlen(body), &r), 0);
	expect_reply(&r, 415, NULL);
	tu_reply_free(&r);
	ck_assert_int_eq(tu_post(d.port, PATH, "application/json-seq", body,
	    strlen(body), &r), 0);
	expect_reply(&r, 415, NULL);
	tu_reply_free(&r);
	ck_assert_int_eq(tu_post(d.port, PATH, "application/json; charset="
	    "utf-8", body, strlen(body), &r), 0);
	expect_reply(&r, 200, "Webhook received");
	tu_reply_free(&r);
	ck_assert_int_eq(tu_post(d.port, PATH, NULL, body, strlen(body), &r),
	    0);
	expect_reply(&r, 200, "Webhook received");
	tu_reply_free(&r);

	ck_assert_int_eq(tu_get(d.port, PATH, &r), 0);
	expect_reply(&r, 405, NULL);
	ck_assert_int_eq(tu_header(&r, "Allow", hdr, sizeof(hdr)), 0);
	ck_assert_str_eq(hdr, "POST");
	tu_reply_free(&r);
	ck_assert_int_eq(tu_post(d.port, "/webhook/other", JSON, body,
	    strlen(body), &r), 0);
	expect_reply(&r, 404, NULL);
	tu_reply_free(&r);
	ck_assert_int_eq(tu_post(d.port, "//webhook/call-webhook", JSON, body,
	    strlen(body), &r), 0);
	expect_reply(&r, 404, NULL);
	tu_reply_free(&r);
	/* "&token=" typed for "?token=": the secret is part of the path. */
	ck_assert_int_eq(tu_post(d.port, PATH "&token=s3cret", JSON, body,
	    strlen(body), &r), 0);
	expect_reply(&r, 404, NULL);
	tu_reply_free(&r);
	/* A path with %00 stays escaped: "token" could hide as "%74oken". */
	ck_assert_int_eq(tu_post(d.port, "/x%00%74oken=s3cret", JSON, body,
	    strlen(body), &r), 0);
	expect_reply(&r, 404, NULL);
	tu_reply_free(&r);

	/* Over max_body by Content-Length, and while streaming (chunked). */
	big = calloc(1, 5000);
	memset(big, ' ', 4999);
	ck_assert_int_eq(tu_post(d.port, PATH, JSON, big, 4999, &r), 0);
	expect_reply(&r, 413, NULL);
	tu_reply_free(&r);
	/*
	 * Streamed: over it, and at the bound itself, whose max_body bytes
	 * are read (and refused as no JSON) while one more is a 413.
	 */
	post_chunked(big + 999, 4000, 413);
	post_chunked(big, 2048, 400);
	post_chunked(big, 2049, 413);
	free(big);

	/* Nothing bad was stored; the two good posts are one call. */
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls%s", ""), 1);
	ck_assert_int_eq(db_int("SELECT deliveries FROM calls%s", ""), 2);
	/* Rejects are written after the answer; a stop drains them. */
	stop_clean();
	ck_assert_int_ge(db_int("SELECT count(*) FROM rejects%s", ""), 10);
	/* A 404 or 405 says what was asked for: a mistyped URL shows. */
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE reason = "
	    "'%s'", "Not found: POST /webhook/other"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE reason = "
	    "'%s'", "Method not allowed: GET " PATH), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE reason = "
	    "'%s'", "Not found: POST " PATH "&..."), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE reason = "
	    "'%s'", "Not found: POST /x..."), 1);
	ck_assert_int_ne(tu_sh("grep -q s3cret %s", d.log), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE reason "
	    "LIKE '%s'", "%s3cret%"), 0);
	free(body);
}
END_TEST

START_TEST(test_lenient_and_strict)
{
	const char *wrong = "{\"event\":\"call_ended\",\"data\":{\"callSid\":"
	    "\"t1\",\"call_duration\":\"120\",\"try_count\":\"x\","
	    "\"call_metadata\":\"oops\",\"extra\":{\"kept\":true}}}";
	char *strict_body;

	start_or_fail(NULL);
	post_expect(wrong, 200, "Webhook received");
	expect_column("t1", "call_duration", "120.0");
	expect_column("t1", "typeof(try_count)", "null");
	expect_column("t1", "typeof(call_metadata)", "null");
	expect_column("t1", "json_extract(payload, '$.data.extra.kept')", "1");
	stop_clean();

	start_or_fail("[store]\nstrict = on\n");
	strict_body = tu_replace(wrong, "t1", "t2");
	post_expect(strict_body, 400, NULL);
	free(strict_body);
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls WHERE call_sid = "
	    "%Q", "t2"), 0);
	stop_clean();
}
END_TEST

START_TEST(test_enqueue_mode_and_health)
{
	char *body = tu_fixture("call_ended_inbound.json", NULL);
	struct reply r;
	cJSON *j;

	start_or_fail("[store]\nack = enqueue\nfts = off\n");
	post_expect(body, 200, "Webhook received");
	ck_assert_int_eq(tu_get(d.port, "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	j = cJSON_Parse(r.body);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
	ck_assert_str_eq(cJSON_GetObjectItem(j, "store")->valuestring, "ok");
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "queue")));
	cJSON_Delete(j);
	tu_reply_free(&r);
	ck_assert_int_eq(tu_get(d.port, "/metrics", &r), 0);
	ck_assert_int_eq(r.status, 200);
	/* The webhook and the health check. */
	ck_assert_ptr_nonnull(strstr(r.body, "callhookd_http_responses_total"
	    "{code=\"200\"} 2\n"));
	tu_reply_free(&r);
	/* ack = enqueue answered before the commit: wait for the writer. */
	for (int i = 0; i < 200; i++) {
		bool stored;

		ck_assert_int_eq(tu_get(d.port, "/metrics", &r), 0);
		stored = strstr(r.body, "callhookd_events_stored_total 1\n");
		tu_reply_free(&r);
		if (stored)
			break;
		ck_assert_int_lt(i, 199);
		usleep(10000);
	}
	stop_clean();
	/* The queue was drained at stop. */
	expect_column("inbound-0001", "try_count", "-1");
	expect_column("inbound-0001", "typeof(batch_id)", "null");
	free(body);
}
END_TEST

/*
 * A flood of refusals (404s here) is logged at ten lines a second at most,
 * so no client controls the journal's volume; each one still has its
 * row in rejects and its count in /metrics.
 */
START_TEST(test_refusals_log_bounded)
{
	struct reply r;
	char *log;
	int lines = 0, unlogged = 0;
	long long t0;

	start_or_fail(NULL);
	t0 = tu_now_ms();
	for (int i = 0; i < 60; i++) {
		/* The last one in a second of its own: it tells the rest. */
		if (i == 59)
			tu_sleep_ms(1100);
		ck_assert_int_eq(tu_post(d.port, "/nope", JSON, "{}", 2, &r), 0);
		ck_assert_int_eq(r.status, 404);
		tu_reply_free(&r);
	}
	ck_assert_int_eq(tu_metric(d.port,
	    "callhookd_rejects_total{reason=\"not_found\"}"), 60);
	stop_clean();
	ck_assert_ptr_nonnull(log = tu_read_file(d.log, NULL));
	for (char *p = log; (p = strstr(p, "refused request")) != NULL; p++) {
		char *u = strstr(p, " unlogged="), *eol = strchr(p, '\n');

		if (u != NULL && (eol == NULL || u < eol))
			unlogged += atoi(u + 10);
		lines++;
	}
	free(log);
	/* Every refusal is a line, or counted on a later one. */
	ck_assert_int_eq(lines + unlogged, 60);
	ck_assert_int_ge(lines, 10);
	ck_assert_int_le(lines, 10 * (int)((tu_now_ms() - t0) / 1000 + 2));
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects%s", ""), 60);
}
END_TEST

/*
 * A 400 is logged with the body's callSid when it has one that would be
 * taken, so that a missing call can be found in the journal by its id;
 * not with one it would refuse (here empty).
 */
START_TEST(test_refusal_names_call)
{
	static const char *const bodies[] = {
		"{\"event\":\"call_ended\",\"data\":{\"callSid\":"
		    "\"strict-1\",\"call_duration\":\"120\"}}",
		"{\"event\":\"other\",\"data\":{\"callSid\":\"other-1\"}}",
		"{\"event\":\"call_ended\",\"data\":{\"callSid\":\"\"}}",
		"{\"event\":\"call_ended\",\"data\":{\"callSid\\u0000x\":"
		    "\"cut-1\"}}",
	};
	struct reply r;
	char *log;

	start_or_fail("[store]\nstrict = on\n");
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		ck_assert_int_eq(tu_post(d.port, PATH, JSON, bodies[i],
		    strlen(bodies[i]), &r), 0);
		ck_assert_int_eq(r.status, 400);
		tu_reply_free(&r);
	}
	stop_clean();
	ck_assert_ptr_nonnull(log = tu_read_file(d.log, NULL));
	ck_assert_msg(strstr(log, "reason=\"data.call_duration must be a "
	    "number\" callSid=strict-1\n") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "reason=\"Unknown event type\" "
	    "callSid=other-1\n") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "must not be empty\"\n") != NULL, "%s", log);
	/* No member is named callSid: cut at the NUL, it only read so. */
	ck_assert_msg(strstr(log, "cut-1") == NULL, "%s", log);
	free(log);
}
END_TEST

/*
 * Send req on a connection of its own, not half-closed, and read for ms
 * or until the daemon has closed it (*closed) or sent want status lines.
 * Returns what was read, NUL-terminated.
 */
static char *
converse(const char *req, int want, int ms, bool *closed)
{
	long long until = tu_now_ms() + ms;
	size_t got = 0, cap = 65536;
	char *buf = malloc(cap), *p;
	int fd = tu_connect(d.port), lines = 0;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	ck_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
	*closed = false;
	while (lines < want && !*closed && tu_now_ms() < until) {
		if (poll(&pfd, 1, (int)(until - tu_now_ms())) <= 0)
			continue;
		if ((n = read(fd, buf + got, cap - got - 1)) <= 0) {
			*closed = true;
			continue;
		}
		got += (size_t)n;
		buf[got] = '\0';
		for (lines = 0, p = buf; (p = strstr(p, "HTTP/1.1 ")) != NULL;
		    p++)
			lines++;
	}
	buf[got] = '\0';
	close(fd);
	return buf;
}

#define WEBHOOK_HEAD	"POST " PATH " HTTP/1.1\r\nHost: x\r\n"	\
	"Content-Type: application/json\r\n"
#define TINY_EVENT(sid)	"{\"event\":\"call_ended\",\"data\":" \
	"{\"callSid\":\"" sid "\"}}"

/* A chunked body's trailer past libmicrohttpd's pool: its own 431. */
static void
expect_trailer_too_large(void)
{
	const char *head = WEBHOOK_HEAD "Transfer-Encoding: chunked\r\n\r\n"
	    "30\r\n" TINY_EVENT("tr-1") "\r\n0\r\nX-Pad: ";
	size_t hlen = strlen(head), pad = 20000;
	struct reply r;
	char *req;

	ck_assert_ptr_nonnull(req = malloc(hlen + pad + 5));
	memcpy(req, head, hlen);
	memset(req + hlen, 'a', pad);
	memcpy(req + hlen + pad, "\r\n\r\n", 5);
	ck_assert_int_eq(tu_raw(d.port, req, hlen + pad + 4, &r), 0);
	ck_assert_int_eq(r.status, 431);
	tu_reply_free(&r);
	free(req);
}

/*
 * What a proxy in front may read otherwise than libmicrohttpd is refused,
 * and then the connection closed (RFC 9112 section 6.1): a request with
 * both Content-Length and Transfer-Encoding once smuggled a second one
 * behind it. Content-Type is judged on every line. What libmicrohttpd
 * refuses itself in a body is in rejects too. Probes of /healthz and
 * /metrics keep their connection, as nginx's keepalive upstreams want,
 * unless they say they have a body.
 */
START_TEST(test_framing_and_keepalive)
{
	const char *req;
	bool closed;
	char *out, *p;
	struct reply r;
	int n;

	start_or_fail(NULL);
	out = converse(WEBHOOK_HEAD "Content-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n30\r\n" TINY_EVENT("te-1")
	    "\r\n0\r\n\r\n" WEBHOOK_HEAD "Content-Length: 48\r\n\r\n"
	    TINY_EVENT("te-2"), 2, 3000, &closed);
	ck_assert_msg(strncmp(out, "HTTP/1.1 400", 12) == 0 && strstr(out,
	    "both Content-Length and Transfer-Encoding") != NULL, "%s", out);
	ck_assert_msg(closed && strstr(out + 1, "HTTP/1.1 ") == NULL,
	    "the connection went on after the 400: %s", out);
	free(out);

	req = WEBHOOK_HEAD "Content-Type: text/plain\r\nContent-Length: 48"
	    "\r\n\r\n" TINY_EVENT("ct-1");
	ck_assert_int_eq(tu_raw(d.port, req, strlen(req), &r), 0);
	expect_reply(&r, 415, "Content-Type must be application/json");
	tu_reply_free(&r);

	req = WEBHOOK_HEAD "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n"
	    "0\r\n\r\n";
	ck_assert_int_eq(tu_raw(d.port, req, strlen(req), &r), 0);
	ck_assert_int_eq(r.status, 400);
	tu_reply_free(&r);
	expect_trailer_too_large();

	out = converse("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" WEBHOOK_HEAD
	    "Content-Length: 51\r\n\r\n" TINY_EVENT("probe-3"), 3, 3000,
	    &closed);
	for (n = 0, p = out; (p = strstr(p, "HTTP/1.1 200 ")) != NULL; p++)
		n++;
	ck_assert_msg(n == 3 && !closed, "%d answers 200, %s: %s", n,
	    closed ? "closed" : "open", out);
	free(out);
	/*
	 * But not a probe with a body: a proxy that frames this one by
	 * Content-Length sees a GET, libmicrohttpd a GET and a POST.
	 */
	out = converse("GET /healthz HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 155\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\n" WEBHOOK_HEAD "Content-Length: 50\r\n\r\n"
	    TINY_EVENT("smug-1"), 2, 3000, &closed);
	ck_assert_msg(closed && strstr(out + 1, "HTTP/1.1 ") == NULL,
	    "the probe's body was read as a request: %s", out);
	free(out);

	stop_clean();
	out = db_text("SELECT group_concat(call_sid) FROM calls%s", "");
	ck_assert_str_eq(out, "probe-3");
	free(out);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status = "
	    "400 AND reason LIKE '%s'", "%by libmicrohttpd%"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status = "
	    "431 AND reason LIKE '%s'", "trailer too large%"), 1);
}
END_TEST

/*
 * A header line with a space before its colon, or folded, is a 400 and
 * the end of the connection (RFC 9112 section 5.1). libmicrohttpd keeps
 * such a line under a name of its own ("Content-Length "), so the GET
 * below had no body here, and its body, a webhook POST, was taken as the
 * next request, while a proxy that trims the name framed it as one. A
 * folded Content-Type came out as no Content-Type at all, and text/plain
 * was taken.
 */
START_TEST(test_malformed_header_names)
{
	static const char *const reqs[] = {
		"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 151"
		    "\r\n\r\n" WEBHOOK_HEAD "Content-Length: 51\r\n\r\n"
		    TINY_EVENT("smug-ws"),
		WEBHOOK_HEAD "Content-Length : 48\r\n\r\n" TINY_EVENT("ws-1"),
		"POST " PATH " HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain"
		    "\r\n application/json\r\nContent-Length: 50\r\n\r\n"
		    TINY_EVENT("fold-1"),
	};
	bool closed;
	char *out;

	start_or_fail(NULL);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		out = converse(reqs[i], 2, 3000, &closed);
		ck_assert_msg(strncmp(out, "HTTP/1.1 400", 12) == 0 &&
		    strstr(out, "malformed header line") != NULL,
		    "request %zu: %s", i, out);
		ck_assert_msg(closed && strstr(out + 1, "HTTP/1.1 ") == NULL,
		    "request %zu: the connection went on: %s", i, out);
		free(out);
	}
	stop_clean();
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls%s", ""), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status = "
	    "400 AND reason LIKE '%s'", "malformed header line%"), 3);
}
END_TEST

/*
 * A compressed body is refused as such, before it is read: taken as it
 * came, a gzip body was a 400 "body is not valid UTF-8" that sent its
 * sender looking for a character set, and a body labelled gzip but sent
 * plain was stored as if the label were not there.
 */
START_TEST(test_content_encoding)
{
	static const char gz[] = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
	    "\xab\x56\x4a\x2d\x4b\xcd\x2b\x51\xb2\x52\x00\x00";
	static const char *const codings[] = { "gzip", "br", "x-gzip",
	    "deflate, identity", "identity, gzip" };
	char req[512], hdr[64];
	struct reply r;
	int n;

	start_or_fail(NULL);
	n = snprintf(req, sizeof(req), WEBHOOK_HEAD "Content-Encoding: gzip"
	    "\r\nContent-Length: %zu\r\n\r\n", sizeof(gz) - 1);
	memcpy(req + n, gz, sizeof(gz) - 1);
	ck_assert_int_eq(tu_raw(d.port, req, (size_t)n + sizeof(gz) - 1, &r),
	    0);
	expect_reply(&r, 415, "Content-Encoding must be identity: send the "
	    "body uncompressed");
	ck_assert_int_eq(tu_header(&r, "Accept-Encoding", hdr, sizeof(hdr)),
	    0);
	ck_assert_str_eq(hdr, "identity");
	tu_reply_free(&r);
	for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
		snprintf(req, sizeof(req), WEBHOOK_HEAD "Content-Encoding: %s"
		    "\r\nContent-Length: 49\r\n\r\n" TINY_EVENT("enc-%zu"),
		    codings[i], i);
		ck_assert_int_eq(tu_raw(d.port, req, strlen(req), &r), 0);
		expect_reply(&r, 415, NULL);
		tu_reply_free(&r);
	}
	n = snprintf(req, sizeof(req), WEBHOOK_HEAD "Content-Encoding: "
	    "Identity\r\nContent-Length: 50\r\n\r\n" TINY_EVENT("enc-id"));
	ck_assert_int_eq(tu_raw(d.port, req, (size_t)n, &r), 0);
	expect_reply(&r, 200, "Webhook received");
	tu_reply_free(&r);
	stop_clean();
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls WHERE call_sid "
	    "<> '%s'", "enc-id"), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status = "
	    "415 AND reason LIKE '%s'", "Content-Encoding%"), 6);
}
END_TEST

/*
 * RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 request is
 * faulty framing, whatever else it says. A proxy that frames by HTTP/1.0
 * sees no body and takes the chunks for the next request; libmicro-
 * httpd decoded them, answered, and kept the connection for the request
 * pipelined behind.
 */
START_TEST(test_chunked_http10)
{
	bool closed;
	char *out;

	start_or_fail(NULL);
	out = converse("POST " PATH " HTTP/1.0\r\nHost: x\r\nContent-Type: "
	    "application/json\r\nConnection: keep-alive\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n32\r\n" TINY_EVENT("te10-1") "\r\n0\r\n\r\n"
	    WEBHOOK_HEAD "Content-Length: 50\r\n\r\n" TINY_EVENT("te10-2"), 2,
	    3000, &closed);
	ck_assert_msg(strncmp(out, "HTTP/1.1 400", 12) == 0 && strstr(out,
	    "Transfer-Encoding in an HTTP/1.0 request") != NULL, "%s", out);
	ck_assert_msg(closed && strstr(out + 1, "HTTP/1.1 ") == NULL,
	    "the connection went on after the 400: %s", out);
	free(out);
	stop_clean();
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls%s", ""), 0);
}
END_TEST

/* A connection that has sent head and then len bytes of padding. */
static int
open_body(const char *head, size_t hlen, const char *pad, size_t len)
{
	int fd = tu_connect(d.port);

	ck_assert_int_ge(fd, 0);
	ck_assert(write(fd, head, hlen) == (ssize_t)hlen);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, pad + off, len - off);

		ck_assert_int_gt(w, 0);
		off += (size_t)w;
	}
	return fd;
}

/* A chunked request with one chunk of len spaces, and its answer. */
static int
chunked_status(size_t len, struct reply *r)
{
	char *req;
	int n;

	ck_assert_ptr_nonnull(req = malloc(len + 256));
	n = snprintf(req, 256, "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n%zx\r\n", len);
	memset(req + n, ' ', len);
	memcpy(req + n + len, "\r\n0\r\n\r\n", 7);
	ck_assert_int_eq(tu_raw_timeout(d.port, req, (size_t)n + len + 7, 0,
	    5000, r), 0);
	free(req);
	return r->status;
}

/* Post small until it is not refused for room: the holders may linger. */
static void
post_when_room(const char *body)
{
	struct reply r;
	int status = 503;

	for (int i = 0; i < 100 && status == 503; i++) {
		ck_assert_int_eq(tu_post_conn(d.port, PATH, body, strlen(body),
		    &r), 0);
		status = r.status;
		tu_reply_free(&r);
		if (status == 503)
			tu_sleep_ms(20);
	}
	ck_assert_int_eq(status, 200);
}

/*
 * Bodies being received share one memory budget (12 MB with max_body =
 * 1M), counted by the bytes received: sixteen connections that sent only
 * their heads hold none of it. Twelve that sent all but 1 KB of 1 MB
 * fill it: a thirteenth is answered 503 before its body, a chunked one
 * at its end, or 413 if it also passes max_body. Once they go, a post
 * gets 200 again.
 */
START_TEST(test_bodies_bounded)
{
	const size_t fill = 1048576 - 1024;
	int idle[16], full[12];
	char head[256], probe[256], *pad;
	struct reply r;
	bool refused = false;
	size_t n, pn;

	start_or_fail("[http]\nmax_body = 1M\n");
	ck_assert_ptr_nonnull(pad = malloc(fill));
	memset(pad, ' ', fill);
	n = (size_t)snprintf(head, sizeof(head), "POST " PATH " HTTP/1.1\r\n"
	    "Host: x\r\nContent-Type: application/json\r\n"
	    "Content-Length: 1048576\r\n\r\n");
	for (int i = 0; i < 16; i++)
		idle[i] = open_body(head, n, pad, 0);
	post_when_room("{\"event\":\"call_ended\",\"data\":{\"callSid\":"
	    "\"idle-heads\"}}");
	for (int i = 0; i < 12; i++)
		full[i] = open_body(head, n, pad, fill);
	/* The daemon may not have read them all yet: probe until it has. */
	pn = (size_t)snprintf(probe, sizeof(probe), "POST " PATH " HTTP/1.1"
	    "\r\nHost: x\r\nContent-Type: application/json\r\n"
	    "Content-Length: 1048576\r\nExpect: 100-continue\r\n\r\n");
	for (int i = 0; i < 100 && !refused; i++) {
		ck_assert_int_eq(tu_raw_timeout(d.port, probe, pn, 0, 500, &r),
		    0);
		refused = r.status == 503;
		if (refused)
			ck_assert_ptr_nonnull(strstr(r.body, "too many request "
			    "bodies being received, retry later"));
		tu_reply_free(&r);
		if (!refused)
			tu_sleep_ms(20);
	}
	ck_assert(refused);
	/* /metrics shows what fills the budget, and the budget. */
	ck_assert_int_eq(tu_metric(d.port, "callhookd_memory_budget_bytes"),
	    12 << 20);
	ck_assert_int_ge(tu_metric(d.port, "callhookd_body_bytes"),
	    11 * (1 << 20));
	ck_assert_int_eq(chunked_status(300 * 1024, &r), 503);
	tu_reply_free(&r);
	ck_assert_int_eq(chunked_status(1200 * 1024, &r), 413);
	tu_reply_free(&r);
	ck_assert_int_ge(tu_metric(d.port,
	    "callhookd_rejects_total{reason=\"bodies_full\"}"), 2);
	for (int i = 0; i < 16; i++)
		close(idle[i]);
	for (int i = 0; i < 12; i++)
		close(full[i]);
	post_when_room("{\"event\":\"call_ended\",\"data\":{\"callSid\":"
	    "\"after-bodies\"}}");
	/* All of it given back, once the daemon has seen every close. */
	for (int i = 0; i < 200 && tu_metric(d.port,
	    "callhookd_body_bytes") != 0; i++)
		tu_sleep_ms(10);
	ck_assert_int_eq(tu_metric(d.port, "callhookd_body_bytes"), 0);
	stop_clean();
	free(pad);
}
END_TEST

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define BIG_CLIENTS	40
#define BIG_BODY	(4 * 1024 * 1024 - 256)

struct big_client {
	const char	*req;
	size_t		 len;
	long long	 until;
	int		 read;		/* answered 400: its body was read */
};

static void *
big_run(void *arg)
{
	struct big_client *c = arg;
	struct reply r;

	while (tu_now_ms() < c->until) {
		if (tu_raw_timeout(d.port, c->req, c->len, 0, 5000, &r) == 0 &&
		    r.status == 400)
			c->read++;
		tu_reply_free(&r);
	}
	return NULL;
}

/* The daemon's peak resident memory so far, in KB. */
static long long
peak_rss_kb(void)
{
	char path[64], line[256];
	long long kb = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)d.pid);
	ck_assert_ptr_nonnull(fp = fopen(path, "r"));
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "VmHWM: %lld", &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

/*
 * The memory budget holds the bodies being received to 12 MB, and so
 * must hold the daemon: 40 clients posting 4 MB bodies (not JSON, 400,
 * or 503 for room) for 3 s. glibc served such bodies from its heap once
 * the first was freed, and kept what they touched: the daemon's peak
 * was 145 MB. Not under a sanitizer, whose allocator is its own.
 */
START_TEST(test_bodies_memory_returned)
{
	struct big_client c[BIG_CLIENTS];
	pthread_t t[BIG_CLIENTS];
	char *req;
	size_t n;
	int read = 0;

	start_or_fail(NULL);
	ck_assert_ptr_nonnull(req = malloc(BIG_BODY + 256));
	n = (size_t)snprintf(req, 256, "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: " JSON "\r\nConnection: close\r\n"
	    "Content-Length: %d\r\n\r\n[", BIG_BODY);
	memset(req + n, ' ', BIG_BODY - 2);
	req[n + BIG_BODY - 2] = '}';
	for (int i = 0; i < BIG_CLIENTS; i++) {
		c[i] = (struct big_client){ req, n + BIG_BODY - 1,
		    tu_now_ms() + 3000, 0 };
		pthread_create(&t[i], NULL, big_run, &c[i]);
	}
	for (int i = 0; i < BIG_CLIENTS; i++) {
		pthread_join(t[i], NULL);
		read += c[i].read;
	}
	ck_assert_int_ge(read, 10);
	ck_assert_msg(peak_rss_kb() < 64 * 1024, "peak RSS %lld KB after %d "
	    "bodies of 4 MB read", peak_rss_kb(), read);
	post_when_room("{\"event\":\"call_ended\",\"data\":{\"callSid\":"
	    "\"after-big\"}}");
	stop_clean();
	free(req);
}
END_TEST
#endif

/*
 * libmicrohttpd 0.9.75 drains epoll in rounds of 128 events, and after a
 * round of exactly 128 waits again with the same timeout, the connections
 * it read still unserved. 128 requests that arrive while the daemon is
 * stopped are all ready when it goes on: each must be answered at once,
 * not when another event comes or a connection timed out (it waited up
 * to [http] timeout). True when all n were answered within wait_ms.
 */
static bool
answered_at_once(const int *fd, int n, int round, int wait_ms)
{
	long long until;
	int answered = 0;
	char req[512], body[128], buf[1024];
	ssize_t got;
	size_t len;
	int blen;

	kill(d.pid, SIGSTOP);
	for (int i = 0; i < n; i++) {
		blen = snprintf(body, sizeof(body), "{\"event\":\"call_ended\","
		    "\"data\":{\"callSid\":\"once-%d-%d\"}}", round, i);
		len = (size_t)snprintf(req, sizeof(req), "POST " PATH
		    " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
		    "\r\nContent-Length: %d\r\n\r\n%s", blen, body);
		ck_assert_int_eq(write(fd[i], req, len), (ssize_t)len);
	}
	kill(d.pid, SIGCONT);
	until = tu_now_ms() + wait_ms;
	for (int i = 0; i < n; i++) {
		struct pollfd p = { fd[i], POLLIN, 0 };
		long long left = until - tu_now_ms();

		if (left < 0 || poll(&p, 1, (int)left) != 1 ||
		    (got = recv(fd[i], buf, sizeof(buf) - 1, 0)) <= 0)
			continue;
		buf[got] = '\0';
		answered += strncmp(buf, "HTTP/1.1 200", 12) == 0;
	}
	return answered == n;
}

/* Twice on the same connections: the stall may come in either round. */
START_TEST(test_128_ready_at_once)
{
	int fd[128];

	start_or_fail("[http]\ntimeout = 20s\n");
	for (int i = 0; i < 128; i++)
		ck_assert_int_ge(fd[i] = tu_connect(d.port), 0);
	tu_sleep_ms(500);		/* all accepted, none ready */
	for (int round = 0; round < 2; round++)
		ck_assert_msg(answered_at_once(fd, 128, round, 3000),
		    "round %d: not all 128 answered within 3 s", round);
	for (int i = 0; i < 128; i++)
		close(fd[i]);
	stop_clean();
}
END_TEST

/*
 * Send c every gap_ms until the daemon closes fd; libmicrohttpd's idle
 * timeout starts again at every byte. Milliseconds until closed, or -1.
 */
static long long
trickle_until_closed(int fd, char c, int gap_ms, long long max_ms)
{
	long long t0 = tu_now_ms();
	char buf[64];

	while (tu_now_ms() - t0 < max_ms) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (send(fd, &c, 1, MSG_NOSIGNAL) != 1 ||
		    (poll(&p, 1, gap_ms) == 1 &&
		    recv(fd, buf, sizeof(buf), 0) <= 0))
			return tu_now_ms() - t0;
	}
	return -1;
}

/* Write head on a new connection, then trickle c: when it was closed. */
static long long
trickled_closed_after(const char *head, char c)
{
	long long ms;
	int fd;

	ck_assert_int_ge(fd = tu_connect(d.port), 0);
	ck_assert(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
	ms = trickle_until_closed(fd, c, 300, 6000);
	close(fd);
	return ms;
}

#define TOO_SLOW "callhookd_rejects_total{reason=\"too_slow\"}"
#define CUT	 "callhookd_connections_cut_total"

/* The metric, once it reaches want or 3 s have passed. */
static long long
metric_when(const char *name, long long want)
{
	long long t0 = tu_now_ms(), v;

	while ((v = tu_metric(d.port, name)) < want && tu_now_ms() - t0 < 3000)
		tu_sleep_ms(20);
	return v;
}

/*
 * A trailer that ends just past the deadline, maybe before the sweep
 * that would cut it: libmicrohttpd then calls with the whole body, which
 * must not be answered 200. True when it was.
 */
static bool
late_trailer_answered(const char *head)
{
	char buf[512];
	long long t0;
	ssize_t n;
	int fd;

	ck_assert_int_ge(fd = tu_connect(d.port), 0);
	ck_assert(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
	for (t0 = tu_now_ms(); tu_now_ms() - t0 < 2100; tu_sleep_ms(300))
		if (send(fd, "a", 1, MSG_NOSIGNAL) != 1)
			break;
	n = send(fd, "\r\n\r\n", 4, MSG_NOSIGNAL);
	n = n == 4 ? recv(fd, buf, sizeof(buf) - 1, 0) : -1;
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

/*
 * Headers, a body or a chunked body's trailer, trickled a byte at a
 * time, keep the idle timeout from firing; each must be in within twice
 * that timeout, or the connection is closed. A refused body is recorded
 * (408 in rejects); headers, with no request yet, are counted.
 */
START_TEST(test_body_deadline)
{
	const char *body_head = "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
	const char *trailer_head = "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n32\r\n{\"event\":\"call_ended\",\"data\":{\"callSid\":"
	    "\"late-1\"}}\r\n0\r\nX-Pad: ";
	const char *headers_head = "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "X-Pad: ";
	long long t0, ms, cut;
	int fd;

	start_or_fail("[http]\ntimeout = 1s\n");
	ms = trickled_closed_after(body_head, ' ');
	ck_assert_msg(ms >= 1500 && ms < 4000, "body: closed after %lld ms",
	    ms);
	ck_assert_int_eq(metric_when(TOO_SLOW, 1), 1);
	/* Cut by the sweep, or refused at the next byte past the deadline. */
	ck_assert_int_eq(cut = tu_metric(d.port, CUT), 1);
	/* libmicrohttpd reads a trailer without calling the daemon. */
	ms = trickled_closed_after(trailer_head, 'a');
	ck_assert_msg(ms >= 1500 && ms < 4000, "trailer: closed after %lld "
	    "ms", ms);
	ck_assert_int_eq(metric_when(TOO_SLOW, 2), 2);
	ck_assert_int_eq(metric_when(CUT, cut + 1), cut + 1);
	ms = trickled_closed_after(headers_head, 'a');
	ck_assert_msg(ms >= 1500 && ms < 4000, "headers: closed after %lld "
	    "ms", ms);
	ck_assert_int_eq(metric_when(CUT, cut + 2), cut + 2);
	ck_assert_int_eq(tu_metric(d.port, TOO_SLOW), 2);
	/* Cut by the sweep or refused in the final call: once, never 200. */
	ck_assert(!late_trailer_answered(trailer_head));
	ck_assert_int_eq(metric_when(TOO_SLOW, 3), 3);
	/* One that stops coming is closed by the idle timeout, and noted. */
	ck_assert_int_ge(fd = tu_connect(d.port), 0);
	ck_assert(write(fd, body_head, strlen(body_head)) ==
	    (ssize_t)strlen(body_head));
	ck_assert(write(fd, "{\"event\"", 8) == 8);
	t0 = tu_now_ms();
	while (tu_metric(d.port, TOO_SLOW) < 4 && tu_now_ms() - t0 < 5000)
		tu_sleep_ms(50);
	close(fd);
	ck_assert_int_eq(tu_metric(d.port, TOO_SLOW), 4);
	stop_clean();
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status ="
	    " 408 AND reason LIKE %s", "'body not received within 2 s%'"), 3);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status ="
	    " 408 AND body = CAST(%s AS BLOB)", "'{\"event\"'"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls WHERE call_sid = "
	    "%s", "'late-1'"), 0);
}
END_TEST

/*
 * A body refused at a byte that came past its deadline, before the sweep
 * could cut its connection, is a connection cut all the same. The sweeps
 * come a second apart from the first connection's opening: opened 500 ms
 * after it and sent a byte every 20 ms, the body is refused at a byte
 * about 500 ms before the sweep after its deadline.
 */
START_TEST(test_late_body_counted_as_cut)
{
	const char *head = "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
	long long ms;
	int fd, first;

	start_or_fail("[http]\ntimeout = 1s\n");
	ck_assert_int_ge(first = tu_connect(d.port), 0);
	tu_sleep_ms(500);
	ck_assert_int_ge(fd = tu_connect(d.port), 0);
	ck_assert(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
	ms = trickle_until_closed(fd, ' ', 20, 6000);
	close(fd);
	close(first);
	ck_assert_msg(ms >= 1500 && ms < 4000, "closed after %lld ms", ms);
	ck_assert_int_eq(metric_when(TOO_SLOW, 1), 1);
	ck_assert_int_eq(metric_when(CUT, 1), 1);
	stop_clean();
}
END_TEST

#define CLIENT_CLOSED "callhookd_rejects_total{reason=\"client_closed\"}"
#define TOO_LARGE "callhookd_rejects_total{reason=\"too_large\"}"

/* Sends head and part, then closes: with a reset when reset is true. */
static void
close_mid_body(const char *head, const char *part, bool reset)
{
	struct linger hard = { .l_onoff = 1, .l_linger = 0 };
	int fd;

	ck_assert_int_ge(fd = tu_connect(d.port), 0);
	ck_assert(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
	ck_assert(write(fd, part, strlen(part)) == (ssize_t)strlen(part));
	tu_sleep_ms(50);	/* read apart from the close */
	if (reset)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard,
		    sizeof(hard)), 0);
	close(fd);
}

/*
 * A sender gone mid-body (its timeout, a proxy's, a failed network) got
 * no answer: kept in rejects as 499 with what came of the body, so that
 * a missing call can be traced to its connection. A request that came
 * whole and was answered leaves no row when its connection closes.
 */
START_TEST(test_client_closed_mid_body)
{
	const char *head = "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
	const char *whole = "{\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"whole-1\"}}";
	struct reply r;

	char big[1200 + 16];

	start_or_fail("[http]\nmax_body = 1K\n");
	close_mid_body(head, "{\"event\":\"call", false);
	close_mid_body(head, "{\"ev", true);
	ck_assert_int_eq(metric_when(CLIENT_CLOSED, 2), 2);
	/* A streamed body past max_body, its rest being discarded. */
	snprintf(big, sizeof(big), "4b0\r\n%01200d", 0);
	close_mid_body(WEBHOOK_HEAD "Transfer-Encoding: chunked\r\n\r\n", big,
	    false);
	ck_assert_int_eq(metric_when(TOO_LARGE, 1), 1);
	ck_assert_int_eq(tu_post(d.port, PATH, JSON, whole, strlen(whole),
	    &r), 0);
	expect_reply(&r, 200, "Webhook received");
	tu_reply_free(&r);
	tu_sleep_ms(100);
	ck_assert_int_eq(tu_metric(d.port, CLIENT_CLOSED), 2);
	stop_clean();
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status ="
	    " 499 AND reason LIKE %s", "'the client closed the connection "
	    "after 14 bytes%'"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status ="
	    " 499 AND body = CAST(%s AS BLOB)", "'{\"ev'"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects WHERE status ="
	    " 413 AND reason = %s", "'body exceeds max_body; the client "
	    "closed the connection before its end'"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM rejects%s", ""), 3);
}
END_TEST

/*
 * At max_connections libmicrohttpd stops accepting, and a sender's
 * connection waits in the listen backlog: without a word in the log or
 * /metrics, an operator whose webhooks time out could not tell why. The
 * one waiting is served once another closes.
 */
START_TEST(test_connections_full)
{
	const char *req = WEBHOOK_HEAD "Content-Length: 53\r\n\r\n"
	    TINY_EVENT("full-wait");
	struct pollfd p = { .events = POLLIN };
	char buf[512];
	int idle[3], i;
	ssize_t n;

	start_or_fail("[http]\nmax_connections = 3\n");
	for (i = 0; i < 3; i++)
		ck_assert_int_ge(idle[i] = tu_connect(d.port), 0);
	for (i = 0; i < 100 && tu_sh("grep -q 'max_connections (3) reached: "
	    "new connections wait' %s", d.log) != 0; i++)
		tu_sleep_ms(20);
	ck_assert_int_lt(i, 100);
	ck_assert_int_ge(p.fd = tu_connect(d.port), 0);
	ck_assert(write(p.fd, req, strlen(req)) == (ssize_t)strlen(req));
	ck_assert_int_eq(poll(&p, 1, 300), 0);		/* it waits */
	close(idle[0]);
	ck_assert_int_eq(poll(&p, 1, 3000), 1);
	ck_assert_int_gt(n = recv(p.fd, buf, sizeof(buf) - 1, 0), 0);
	buf[n] = '\0';
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
	close(p.fd);
	close(idle[1]);
	close(idle[2]);
	ck_assert_int_ge(tu_metric(d.port, "callhookd_connections_full_total"),
	    1);
	/* The closes are seen in the daemon's next turns: only the scrape. */
	for (i = 0; i < 100 && tu_metric(d.port, "callhookd_connections") != 1;
	    i++)
		tu_sleep_ms(20);
	ck_assert_int_eq(tu_metric(d.port, "callhookd_connections"), 1);
	stop_clean();
}
END_TEST

/*
 * max_connections (1024 by default) with a shell's soft limit of open
 * files (often 1024): the start raises it to fit, and says so when the
 * hard limit is too low.
 */
START_TEST(test_open_files_fit)
{
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	struct rlimit was, low;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &was), 0);
	if (was.rlim_max != RLIM_INFINITY && was.rlim_max < 1088)
		return;		/* no room to raise it into */
	low = was;
	low.rlim_cur = 200;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	start_or_fail(NULL);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &was), 0);
	ck_assert_int_eq(tu_sh("grep -Eq '^Max open files +1088 ' "
	    "/proc/%d/limits", (int)d.pid), 0);
	ck_assert_int_eq(tu_sh("grep -q 'open files' %s", d.log), 1);
	stop_clean();
	ck_assert_int_eq(tu_sh("ulimit -n 300 && timeout --preserve-status "
	    "-s INT 1 %s --listen 127.0.0.1:0 --database %s 2> %s/err", bin,
	    d.db, d.dir), 0);
	ck_assert_int_eq(tu_sh("grep -q 'max_connections 1024 needs about "
	    "1088 open files, and the limit is 300 (LimitNOFILE=, ulimit -n)"
	    ": connections past it wait' %s/err", d.dir), 0);
}
END_TEST

/*
 * Out of open files, accept() fails and new connections wait or fail:
 * the daemon's own trouble, which libmicrohttpd told at debug only. It
 * is a warning now, once however many accepts fail.
 */
START_TEST(test_accept_failure_warned)
{
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	char err[sizeof(d.dir) + 8], *text = NULL, *p;
	int fds[60], port = 0, n = 0;
	pid_t pid;

	snprintf(err, sizeof(err), "%s/err", d.dir);
	if ((pid = fork()) == 0) {
		struct rlimit rl = { 40, 40 };
		int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 2);
		setrlimit(RLIMIT_NOFILE, &rl);
		execl(bin, bin, "--listen", "127.0.0.1:0", "--database", d.db,
		    (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && port == 0; i++, tu_sleep_ms(10)) {
		free(text);
		if ((text = tu_read_file(err, NULL)) != NULL &&
		    (p = strstr(text, "listening on 127.0.0.1:")) != NULL)
			port = atoi(p + 23);
	}
	ck_assert_int_gt(port, 0);
	while (n < 60 && (fds[n] = tu_connect(port)) >= 0)
		n++;
	for (int i = 0; i < 300 && strstr(text, "Error accepting") == NULL;
	    i++, tu_sleep_ms(10)) {
		free(text);
		ck_assert_ptr_nonnull(text = tu_read_file(err, NULL));
	}
	ck_assert_msg(strstr(text, "warn: libmicrohttpd: Error accepting "
	    "connection: Too many open files; ") != NULL, "%s", text);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	free(text);
	ck_assert_int_eq(tu_sh("grep -c 'warn: libmicrohttpd' %s | grep -qx 1",
	    err), 0);
}
END_TEST

/*
 * Under a shell's umask of 022 the database, its -wal and -shm and the
 * lock file came out 0644: every local user could read the transcripts
 * and phone numbers. The daemon keeps others out whatever the umask.
 */
START_TEST(test_files_not_for_others)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", ".lock" };
	mode_t old = umask(022);
	char path[sizeof(d.db) + 8];
	struct stat sb;

	start_or_fail(NULL);
	umask(old);
	post_expect(TINY_EVENT("mode-1"), 200, "Webhook received");
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", d.db, suffixes[i]);
		ck_assert_int_eq(stat(path, &sb), 0);
		ck_assert_msg((sb.st_mode & 0777) == 0640, "%s: %o", path,
		    (unsigned)(sb.st_mode & 0777));
	}
	stop_clean();
}
END_TEST

/*
 * A second daemon on the same file, whatever it then does, must not touch
 * it: opening the store builds or drops the full-text index, which broke
 * the first daemon's every insert. One that cannot listen leaves nothing.
 */
START_TEST(test_one_daemon_per_database)
{
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	char body[256], path[300];

	start_or_fail(NULL);
	ck_assert_int_eq(tu_sh("timeout 10 %s --listen 127.0.0.1:0 --database "
	    "%s 2> %s/err", bin, d.db, d.dir), 1);
	ck_assert_int_eq(tu_sh("printf '[store]\\nfts = off\\n' > %s/off.ini && "
	    "timeout 10 %s -c %s/off.ini --listen 127.0.0.1:0 --database %s "
	    "2> %s/err", d.dir, bin, d.dir, d.db, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q '%s is in use by another callhookd "
	    "(pid %d, which holds %s.lock)' %s/err", d.db, (int)d.pid, d.db,
	    d.dir), 0);
	/* Another spelling of the same file is the same database. */
	ck_assert_int_eq(tu_sh("ln -s %s %s/link.db && timeout 10 %s --listen "
	    "127.0.0.1:0 --database %s/link.db 2> %s/err", d.db, d.dir, bin,
	    d.dir, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'link.db is in use by another "
	    "callhookd (pid %d, which holds %s.lock)' %s/err", (int)d.pid,
	    d.db, d.dir), 0);
	snprintf(body, sizeof(body), "{\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"second-1\",\"transcription\":\"after\"}}");
	post_expect(body, 200, "Webhook received");
	/* A port in use fails the start before any file is made. */
	ck_assert_int_eq(tu_sh("%s --listen 127.0.0.1:%d --database %s/new.db "
	    "2> %s/err", bin, d.port, d.dir, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'Address already in use' %s/err",
	    d.dir), 0);
	snprintf(path, sizeof(path), "%s/new.db", d.dir);
	ck_assert_int_eq(access(path, F_OK), -1);
	stop_clean();
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls_fts WHERE "
	    "calls_fts MATCH %s", "'after'"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls%s", ""), 1);
	/*
	 * A symlink to a database that the first start is to make: its
	 * lock is the target's, as a second daemon on the target learns.
	 */
	ck_assert_int_eq(tu_sh("d=%s && ln -s fresh.db $d/dangling.db && "
	    "{ timeout 4 %s --database $d/dangling.db --listen 127.0.0.1:0 "
	    "2> $d/err3 & } && sleep 1 && test -e $d/fresh.db.lock && "
	    "test ! -e $d/dangling.db.lock && %s --database $d/fresh.db "
	    "--listen 127.0.0.1:0 2> $d/err4; rc=$?; wait; exit $rc", d.dir,
	    bin, bin), 1);
	ck_assert_int_eq(tu_sh("grep -q 'fresh.db is in use by another "
	    "callhookd' %s/err4", d.dir), 0);
	/* A lock file root left by hand does not keep the service out. */
	if (geteuid() != 0 || tu_sh("command -v setpriv >/dev/null") != 0)
		return;
	ck_assert_int_eq(tu_sh("dir=$(mktemp -d) && chmod 777 $dir && echo "
	    "2147483646 > $dir/x.db.lock && as_nobody='setpriv --reuid nobody "
	    "--regid nogroup --clear-groups' && { timeout 4 $as_nobody %s "
	    "--database $dir/x.db --listen 127.0.0.1:0 2> %s/err & } && "
	    "sleep 1 && $as_nobody %s --database $dir/x.db --listen "
	    "127.0.0.1:0 2> %s/err2; wait; rm -rf $dir", bin, d.dir, bin,
	    d.dir), 0);
	ck_assert_int_eq(tu_sh("grep -q 'listening on' %s/err", d.dir), 0);
	/* Its holder could not write its pid: not the stale one there. */
	ck_assert_int_eq(tu_sh("grep -q '(pid unknown, which holds' %s/err2",
	    d.dir), 0);
}
END_TEST

/*
 * A second name for the database (a hard link) escapes DATABASE.lock,
 * named from the path, and SQLite finds the -wal and -shm by name: a
 * process on the other name would write a WAL of its own. The start
 * says so; a file with one name gets no such line.
 */
START_TEST(test_hard_link_warned)
{
	start_or_fail(NULL);
	stop_clean();
	ck_assert_int_ne(tu_sh("grep -q 'hard links' %s", d.log), 0);
	ck_assert_int_eq(tu_sh("ln %s %s/other.db", d.db, d.dir), 0);
	start_or_fail(NULL);
	ck_assert_int_eq(tu_sh("grep -qF 'warn: %s has 2 hard links: a "
	    "process that opens it by another name' %s", d.db, d.log), 0);
	stop_clean();
}
END_TEST

/*
 * A start that stops on its configuration says why at the journal's
 * error priority when standard error is the journal ($JOURNAL_STREAM, as
 * systemd sets it), as the log's lines do: "journalctl -p err" showed
 * systemd's "Failed to start" and not the cause. Elsewhere, no prefix.
 */
START_TEST(test_start_error_priority)
{
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";

	ck_assert_int_eq(tu_sh("printf '[http]\\nlsten = x\\n' > %s && "
	    ": > %s/err && JOURNAL_STREAM=$(stat -L -c %%d:%%i %s/err) "
	    "%s -c %s 2>> %s/err", d.ini, d.dir, d.dir, bin, d.ini, d.dir),
	    1);
	ck_assert_int_eq(tu_sh("grep -q '^<3>callhookd: %s:2: \\[http\\] "
	    "lsten: unknown key' %s/err", d.ini, d.dir), 0);
	ck_assert_int_eq(tu_sh(": > %s/err && JOURNAL_STREAM=$(stat -L -c "
	    "%%d:%%i %s/err) %s --log-level loud 2>> %s/err", d.dir, d.dir,
	    bin, d.dir), 2);
	ck_assert_int_eq(tu_sh("grep -q '^<3>callhookd: --log-level: ' "
	    "%s/err", d.dir), 0);
	ck_assert_int_eq(tu_sh("%s -c %s 2> %s/err", bin, d.ini, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q '^callhookd: %s:2: ' %s/err", d.ini,
	    d.dir), 0);
}
END_TEST

/*
 * The lock file is cut and its pid written: a symlink planted in its
 * place by whoever can write the database's directory must not have the
 * daemon (root, started by hand) cut the file it names. The start is
 * refused, saying why, and the file named is left as it was.
 */
START_TEST(test_lock_file_symlink)
{
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";

	ck_assert_int_eq(tu_sh("echo precious > %s/victim && ln -s victim "
	    "%s.lock", d.dir, d.db), 0);
	ck_assert_int_eq(tu_sh("timeout 10 %s --listen 127.0.0.1:0 --database "
	    "%s 2> %s/err", bin, d.db, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q '%s.lock is a symbolic link, not a "
	    "lock file: remove it' %s/err", d.db, d.dir), 0);
	ck_assert_int_eq(tu_sh("test \"$(cat %s/victim)\" = precious",
	    d.dir), 0);
	ck_assert_int_eq(access(d.db, F_OK), -1);
}
END_TEST

START_TEST(test_command_line)
{
	char cmd[1024];
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";

	snprintf(cmd, sizeof(cmd), "%s -V | grep -q '^callhookd '", bin);
	ck_assert_int_eq(tu_sh("%s", cmd), 0);
	ck_assert_int_eq(tu_sh("%s --help | grep -q -- --check-config", bin),
	    0);
	ck_assert_int_eq(tu_sh("%s --bogus 2>/dev/null", bin), 2);
	/* A bad option value is a usage error too, before any file. */
	ck_assert_int_eq(tu_sh("%s --log-level loud -c /nonexistent 2> %s/err",
	    bin, d.dir), 2);
	ck_assert_int_eq(tu_sh("grep -q '^callhookd: --log-level: .*\"loud\"' "
	    "%s/err && grep -q '^usage: ' %s/err", d.dir, d.dir), 0);
	ck_assert_int_eq(tu_sh("printf '[http]\\nlisten = 127.0.0.1:0\\n' > "
	    "%s && %s -t -c %s | grep -qx 'configuration OK'", d.ini, bin,
	    d.ini), 0);
	/* What -t, -V and --help print must get there, or exit 1. */
	ck_assert_int_eq(tu_sh("%s -t -c %s > /dev/full 2> %s/err", bin,
	    d.ini, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -qx 'callhookd: output: No space left on "
	    "device' %s/err", d.dir), 0);
	ck_assert_int_eq(tu_sh("%s -V > /dev/full 2>/dev/null", bin), 1);
	ck_assert_int_eq(tu_sh("%s --help > /dev/full 2>/dev/null", bin), 1);
	/* Not a file at all: said so, not ": No such file or directory". */
	ck_assert_int_eq(tu_sh("%s -t -c '' 2> %s/err", bin, d.dir), 2);
	ck_assert_int_eq(tu_sh("grep -qx 'callhookd: -c: the file name is "
	    "empty' %s/err", d.dir), 0);
	/* A file without end is refused, not read forever. */
	ck_assert_int_eq(tu_sh("timeout 20 %s -t -c /dev/zero 2> %s/err", bin,
	    d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -qx 'callhookd: /dev/zero: larger than "
	    "1 MB: not a configuration file' %s/err", d.dir), 0);
	ck_assert_int_eq(tu_sh("%s -t -c /dev/null | grep -qx 'configuration "
	    "OK'", bin), 0);
	ck_assert_int_eq(tu_sh("printf '[http]\\nmax_body = lots\\n"
	    "[store]\\nack = maybe\\n' > %s && %s -t -c %s 2> %s/err",
	    d.ini, bin, d.ini, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'callhookd.ini:2:' %s/err && "
	    "grep -q 'callhookd.ini:4:' %s/err", d.dir, d.dir), 0);
	/* -t resolves the listen address, as a start would. */
	ck_assert_int_eq(tu_sh("printf '[http]\\nlisten = no-such-host.invalid"
	    ":8080\\n' > %s && %s -t -c %s 2> %s/err", d.ini, bin, d.ini,
	    d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'callhookd.ini:2: \\[http\\] listen: "
	    "cannot resolve listen address \"no-such-host.invalid:8080\"' "
	    "%s/err", d.dir), 0);
	/* Given as an option, the option is named instead. */
	ck_assert_int_eq(tu_sh("%s -t --listen no-such-host.invalid:8080 "
	    "2> %s/err", bin, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q '^callhookd: --listen: \\[http\\] "
	    "listen: cannot resolve' %s/err", d.dir), 0);
	/* ... and a unix socket's directory. */
	ck_assert_int_eq(tu_sh("%s -t --listen unix:/nonexistent/dir/x.sock "
	    "2> %s/err", bin, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'cannot listen on unix:/nonexistent/"
	    "dir/x.sock: /nonexistent/dir: No such file' %s/err", d.dir), 0);
	ck_assert_int_eq(tu_sh("%s -t --listen unix:%s/ 2> %s/err", bin, d.dir,
	    d.dir), 1);
	ck_assert_int_eq(tu_sh("%s -t --listen unix:%s 2> %s/err", bin, d.ini,
	    d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'not a socket.s path' %s/err", d.dir),
	    0);
	/* -t reads the token file, as a start would. */
	ck_assert_int_eq(tu_sh("printf '[auth]\\ntoken_file = %s/none\\n' > %s "
	    "&& %s -t -c %s 2> %s/err", d.dir, d.ini, bin, d.ini, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'callhookd.ini:2: \\[auth\\] "
	    "token_file: %s/none: No such file' %s/err", d.dir, d.dir), 0);
	/* A start-up error names the cause and exits 1. */
	ck_assert_int_eq(tu_sh("%s --listen 127.0.0.1:0 --database "
	    "/nonexistent/dir/calls.db 2> %s/err", bin, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'nonexistent/dir/calls.db: directory "
	    "/nonexistent/dir does not exist' %s/err", d.dir), 0);
	/* It never started, so it does not say it stopped. */
	ck_assert_int_ne(tu_sh("grep -q stopped %s/err", d.dir), 0);
}
END_TEST

/*
 * A value the file alone does not show bad (a token file that cannot be
 * read, a secret that is not base64) is told at its file:line as any bad
 * value is, and stops a start before the database or its lock is made.
 * A reload with one is logged so, and the running configuration stays.
 */
START_TEST(test_value_errors_at_their_line)
{
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	char body[128];
	struct reply r;

	ck_assert_int_eq(tu_sh("printf '[http]\\nlisten = 127.0.0.1:0\\n"
	    "[auth]\\nhmac_secret = whsec_###\\n' > %s && %s -c %s "
	    "--database %s 2> %s/err", d.ini, bin, d.ini, d.db, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'callhookd.ini:4: \\[auth\\] "
	    "hmac_secret: \"whsec_\" must be followed by base64' %s/err",
	    d.dir), 0);
	ck_assert_int_eq(tu_sh("printf '[auth]\\n\\ntoken_file = %s/none\\n' "
	    "> %s && %s -c %s --listen 127.0.0.1:0 --database %s 2> %s/err",
	    d.dir, d.ini, bin, d.ini, d.db, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'callhookd.ini:3: \\[auth\\] "
	    "token_file: %s/none: No such file' %s/err", d.dir, d.dir), 0);
	ck_assert_int_eq(tu_sh("ls %s | grep -q calls.db", d.dir), 1);

	/* A reload to level = error, which must still tell a failed one. */
	start_or_fail("[auth]\ntoken = t0\n");
	ck_assert_int_eq(tu_sh("printf '[auth]\\ntoken = t1\\n[log]\\n"
	    "level = error\\n' > %s", d.ini), 0);
	kill(d.pid, SIGHUP);
	snprintf(body, sizeof(body), "{\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"kept-0\"}}");
	for (int i = 0; i < 200; i++, tu_sleep_ms(10)) {
		ck_assert_int_eq(tu_post(d.port, PATH "?token=t1", JSON, body,
		    strlen(body), &r), 0);
		tu_reply_free(&r);
		if (r.status == 200)
			break;
	}
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(tu_sh("printf '[auth]\\n\\ntoken_file = %s/none\\n' "
	    "> %s", d.dir, d.ini), 0);
	kill(d.pid, SIGHUP);
	for (int i = 0; i < 200 && tu_sh("grep -q 'stays in force' %s",
	    d.log) != 0; i++)
		tu_sleep_ms(10);
	ck_assert_int_eq(tu_sh("grep -q 'callhookd.ini:3: \\[auth\\] "
	    "token_file: %s/none: No such file' %s", d.dir, d.log), 0);
	snprintf(body, sizeof(body), "{\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"kept-1\"}}");
	ck_assert_int_eq(tu_post(d.port, PATH "?token=t1", JSON, body,
	    strlen(body), &r), 0);
	expect_reply(&r, 200, "Webhook received");
	tu_reply_free(&r);
	stop_clean();
}
END_TEST

static long
rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(fp);
	return kib;
}

/*
 * A reload keeps the snapshot it replaced only while a request holds
 * it: memory does not grow with reloads (it grew ~9 KB each). Freed
 * memory is quarantined under the sanitizers, so only the plain build.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED	true
#else
#define SANITIZED	false
#endif

START_TEST(test_reloads_bounded)
{
	long before, after, reloads;
	struct reply r;
	char path[sizeof(d.dir) + 8], *out = NULL;

	if (SANITIZED)
		return;

	start_or_fail("[http]\nmax_body = 2M\n");
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(tu_get(d.port, "/healthz", &r), 0);
		tu_reply_free(&r);
	}
	before = rss_kib(d.pid);
	for (int i = 0; i < 3000; i++) {
		kill(d.pid, SIGHUP);
		tu_sleep_ms(1);
		if (i % 10 == 9) {
			ck_assert_int_eq(tu_get(d.port, "/healthz", &r), 0);
			tu_reply_free(&r);
		}
	}
	ck_assert_int_eq(tu_get(d.port, "/healthz", &r), 0);
	tu_reply_free(&r);
	after = rss_kib(d.pid);
	ck_assert_int_eq(tu_sh("grep -c 'configuration applied' %s > %s/n",
	    d.log, d.dir), 0);
	snprintf(path, sizeof(path), "%s/n", d.dir);
	ck_assert_ptr_nonnull(out = tu_read_file(path, NULL));
	reloads = atol(out);
	free(out);
	ck_assert_int_ge(reloads, 500);
	ck_assert_msg((after - before) * 1024 / reloads < 1024,
	    "RSS %ld -> %ld KiB over %ld reloads", before, after, reloads);
	stop_clean();
}
END_TEST

/* A unix socket path: a live listener's is refused, a stale one reused. */
START_TEST(test_unix_socket_in_use)
{
	static const char *const taken[] = { "f.sock", "d.sock" };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	int lfd, c;

	ck_assert_int_lt(snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/live.sock", d.dir), (int)sizeof(sun.sun_path));
	ck_assert_int_ge(lfd = socket(AF_UNIX, SOCK_STREAM, 0), 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	ck_assert_int_eq(tu_sh("timeout 20 %s --listen unix:%s --database "
	    "%s/u.db 2> %s/err", bin, sun.sun_path, d.dir, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q 'live.sock: another process is "
	    "listening on it' %s/err", d.dir), 0);
	/* The live listener still has its path. */
	ck_assert_int_ge(c = socket(AF_UNIX, SOCK_STREAM, 0), 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(c);
	close(lfd);
	/* Now stale: the daemon takes it over, and stops cleanly. */
	ck_assert_int_eq(tu_sh("%s --listen unix:%s --database %s/u.db "
	    "2> %s/err & p=$!; for i in $(seq 100); do grep -q 'listening on "
	    "unix:' %s/err && break; sleep 0.1; done; kill $p; wait $p",
	    bin, sun.sun_path, d.dir, d.dir, d.dir), 0);
	ck_assert_int_eq(tu_sh("grep -q 'listening on unix:%s' %s/err",
	    sun.sun_path, d.dir), 0);
	/* A file or a directory there: said so, as -t does, and no lock. */
	ck_assert_int_eq(tu_sh("touch %s/f.sock && mkdir %s/d.sock", d.dir,
	    d.dir), 0);
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		ck_assert_int_eq(tu_sh("%s --listen unix:%s/%s --database "
		    "%s/n.db 2> %s/err", bin, d.dir, taken[i], d.dir, d.dir), 1);
		ck_assert_int_eq(tu_sh("grep -q '^callhookd: --listen: .*"
		    "unix:%s/%s: not a socket.s path' %s/err", d.dir, taken[i],
		    d.dir), 0);
		ck_assert_int_eq(tu_sh("ls %s | grep -q n.db", d.dir), 1);
	}
}
END_TEST

/* SIGTERM while many requests are in flight: every 200 is stored. */
#define CLIENTS		8
#define PER_CLIENT	125

struct client {
	int	 id;
	int	 ok[PER_CLIENT];
	atomic_int *answered;
};

static char *seed_body;

static void *
client_run(void *arg)
{
	struct client *c = arg;

	for (int i = 0; i < PER_CLIENT; i++) {
		char sid[64], *body;
		struct reply r;

		snprintf(sid, sizeof(sid), "term-%d-%d", c->id, i);
		body = tu_replace(seed_body, "2303fa770b666a64ab1694c1e", sid);
		c->ok[i] = tu_post(d.port, PATH, JSON, body, strlen(body),
		    &r) == 0 && r.status == 200;
		if (r.status != 0)
			atomic_fetch_add(c->answered, 1);
		tu_reply_free(&r);
		free(body);
	}
	return NULL;
}

/*
 * A rescue file left by an earlier run is named at the start; SIGUSR1
 * and SIGUSR2, whose default action would end the daemon with its queue,
 * are logged and ignored.
 */
START_TEST(test_stray_signals)
{
	char rescue[sizeof(d.db) + 16];
	static const char body[] = "{\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"after-usr\"}}";

	snprintf(rescue, sizeof(rescue), "%s.unsaved.jsonl", d.db);
	ck_assert_int_eq(tu_sh("printf '%%s\\n' '%s' > %s", body, rescue),
	    0);
	start_or_fail("[store]\nack = enqueue\n");
	ck_assert_int_eq(tu_sh("grep -q 'calls.db.unsaved.jsonl holds 54 "
	    "bytes of events not stored by an earlier run; move it aside, "
	    "then load it with: callhook import FILE' %s", d.log), 0);
	/* /metrics says so too, for an alert; 0 once it is moved away. */
	ck_assert_int_eq(tu_metric(d.port, "callhookd_rescue_file_bytes"), 54);
	ck_assert_int_eq(unlink(rescue), 0);
	ck_assert_int_eq(tu_metric(d.port, "callhookd_rescue_file_bytes"), 0);
	kill(d.pid, SIGUSR1);
	kill(d.pid, SIGUSR2);
	for (int i = 0; i < 200 && tu_sh("grep -q 'received SIGUSR2 from "
	    "pid [0-9]*, ignored' %s", d.log) != 0; i++)
		tu_sleep_ms(10);
	ck_assert_int_eq(tu_sh("grep -q 'received SIGUSR1 from pid %ld, "
	    "ignored: SIGHUP reloads, SIGTERM stops' %s", (long)getpid(),
	    d.log), 0);
	post_expect(body, 200, "Webhook received");
	stop_clean();
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls WHERE call_sid"
	    " = %Q", "after-usr"), 1);
}
END_TEST

START_TEST(test_sigterm_under_load)
{
	struct client c[CLIENTS];
	pthread_t t[CLIENTS];
	atomic_int answered = 0;
	int oks = 0;

	seed_body = tu_fixture("call_ended.json", NULL);
	start_or_fail(NULL);
	for (int i = 0; i < CLIENTS; i++) {
		c[i].id = i;
		c[i].answered = &answered;
		pthread_create(&t[i], NULL, client_run, &c[i]);
	}
	while (atomic_load(&answered) < 200)
		usleep(1000);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < CLIENTS; i++) {
		for (int k = 0; k < PER_CLIENT; k++) {
			char sid[64];

			if (!c[i].ok[k])
				continue;
			oks++;
			snprintf(sid, sizeof(sid), "term-%d-%d", i, k);
			ck_assert_msg(db_int("SELECT count(*) FROM calls WHERE "
			    "call_sid = %Q", sid) == 1, "%s answered 200 but "
			    "not stored", sid);
		}
	}
	ck_assert_int_ge(oks, 200);
	/* The stop indexed what waited: the full-text index is complete. */
	ck_assert_int_eq(db_int("SELECT count(*) FROM fts_pending%s", ""), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls_fts WHERE "
	    "calls_fts MATCH %Q", "transcript"),
	    db_int("SELECT count(*) FROM calls%s", ""));
	free(seed_body);
}
END_TEST

/*
 * Clients that deliver the same callSids at the same time, half of them
 * with another transcript: batches then hold a callSid more than once,
 * next to new ones. Every delivery is counted once, and each row is one
 * of the bodies, with the columns and the index of that body.
 */
#define REDO_SIDS	40

struct redo_client {
	int	 id;
	int	 oks;
};

static void *
redo_run(void *arg)
{
	struct redo_client *c = arg;

	for (int i = 0; i < REDO_SIDS; i++) {
		char sid[64], *body, *revised;
		struct reply r;

		snprintf(sid, sizeof(sid), "redo-%d", i);
		body = tu_replace(seed_body, "2303fa770b666a64ab1694c1e", sid);
		if (c->id % 2 == 1) {
			revised = tu_replace(body, "Full call transcript",
			    "Revised call transcript");
			free(body);
			body = revised;
		}
		if (tu_post(d.port, PATH, JSON, body, strlen(body), &r) == 0 &&
		    r.status == 200)
			c->oks++;
		tu_reply_free(&r);
		free(body);
	}
	return NULL;
}

START_TEST(test_concurrent_redeliveries)
{
	struct redo_client c[CLIENTS];
	pthread_t t[CLIENTS];

	seed_body = tu_fixture("call_ended.json", NULL);
	start_or_fail(NULL);
	for (int i = 0; i < CLIENTS; i++) {
		c[i].id = i;
		c[i].oks = 0;
		pthread_create(&t[i], NULL, redo_run, &c[i]);
	}
	for (int i = 0; i < CLIENTS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(c[i].oks, REDO_SIDS);
	}
	stop_clean();
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls%s", ""), REDO_SIDS);
	ck_assert_int_eq(db_int("SELECT sum(deliveries) FROM calls%s", ""),
	    CLIENTS * REDO_SIDS);
	ck_assert_int_eq(db_int("SELECT count(*) FROM call_revisions%s", ""),
	    db_int("SELECT sum(revision) - count(*) FROM calls%s", ""));
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls WHERE"
	    " transcription IS json_extract(payload, '$.data.transcription')"
	    " AND call_sid IS json_extract(payload, '$.data.callSid')%s", ""),
	    REDO_SIDS);
	ck_assert_int_eq(db_int("SELECT count(*) FROM fts_pending%s", ""), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls_fts WHERE"
	    " calls_fts MATCH %Q", "transcript"), REDO_SIDS);
	ck_assert_int_eq(db_int("SELECT count(*) FROM calls_fts WHERE"
	    " calls_fts MATCH %Q", "Revised"), db_int("SELECT count(*)"
	    " FROM calls WHERE transcription LIKE %Q", "Revised%"));
	free(seed_body);
}
END_TEST

Suite *e2e_suite(void);

Suite *
e2e_suite(void)
{
	Suite *s = suite_create("e2e");
	TCase *tc = tcase_create("daemon");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fixtures_stored_exactly);
	tcase_add_test(tc, test_duplicate_and_revision);
	tcase_add_test(tc, test_last_event_survives_restart);
	tcase_add_test(tc, test_migration_logged);
	tcase_add_test(tc, test_bad_requests);
	tcase_add_test(tc, test_lenient_and_strict);
	tcase_add_test(tc, test_enqueue_mode_and_health);
	tcase_add_test(tc, test_bodies_bounded);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	tcase_add_test(tc, test_bodies_memory_returned);
#endif
	tcase_add_test(tc, test_128_ready_at_once);
	tcase_add_test(tc, test_body_deadline);
	tcase_add_test(tc, test_late_body_counted_as_cut);
	tcase_add_test(tc, test_client_closed_mid_body);
	tcase_add_test(tc, test_one_daemon_per_database);
	tcase_add_test(tc, test_hard_link_warned);
	tcase_add_test(tc, test_lock_file_symlink);
	tcase_add_test(tc, test_files_not_for_others);
	tcase_add_test(tc, test_open_files_fit);
	tcase_add_test(tc, test_accept_failure_warned);
	tcase_add_test(tc, test_connections_full);
	tcase_add_test(tc, test_refusals_log_bounded);
	tcase_add_test(tc, test_refusal_names_call);
	tcase_add_test(tc, test_command_line);
	tcase_add_test(tc, test_start_error_priority);
	tcase_add_test(tc, test_value_errors_at_their_line);
	tcase_add_test(tc, test_unix_socket_in_use);
	tcase_add_test(tc, test_reloads_bounded);
	tcase_add_test(tc, test_sigterm_under_load);
	tcase_add_test(tc, test_stray_signals);
	tcase_add_test(tc, test_concurrent_redeliveries);
	tcase_add_test(tc, test_framing_and_keepalive);
	tcase_add_test(tc, test_malformed_header_names);
	tcase_add_test(tc, test_content_encoding);
	tcase_add_test(tc, test_chunked_http10);
	suite_add_tcase(s, tc);
	return s;
}

/*
 * store: schema, upsert outcomes, history, the full-text index, views,
 * rejects, refusal of foreign or newer files, and the errors the writer
 * retries on. Every test works on files under its own mkdtemp directory;
 * events are built by hand so the suite does not depend on the parser.
 */

#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "testutil.h"
#include "walbuf.h"

Suite	*store_suite(void);

static char tmpdir[PATH_MAX];

#define SAMPLE_BODY							\
	"{\"event\":\"call_ended\",\"data\":{"				\
	"\"callSid\":\"2303fa770b666a64ab1694c1e\",\"name\":\"outbound\","\
	"\"transcription\":\"Full call transcript...\"}}"

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
teardown(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static const char *
path(const char *name)
{
	static char buf[PATH_MAX + 64];

	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static int
try_open(struct store **st, const char *name, bool fts, bool readonly,
    char *err, size_t errlen)
{
	struct store_options opt = {
		.path = path(name),
		.readonly = readonly,
		.fts = fts,
		.busy_timeout_ms = 50,
	};

	return store_open(st, &opt, err, errlen);
}

static struct store *
open_ok(const char *name, bool fts)
{
	struct store *st;
	char err[256] = "";
	int error;

	error = try_open(&st, name, fts, false, err, sizeof(err));
	ck_assert_msg(error == 0, "store_open: %d %s", error, err);
	return st;
}

/* A raw connection, as another process would have. */
static sqlite3 *
raw_open(const char *name)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path(name), &db), SQLITE_OK);
	return db;
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		ck_abort_msg("%s: %s", sql, msg);
}

static sqlite3_int64
int_of(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt;
	sqlite3_int64 v;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) ==
	    SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	ck_assert_msg(sqlite3_step(stmt) == SQLITE_ROW, "%s: %s", sql,
	    sqlite3_errmsg(db));
	v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return v;
}

/* The first column of the first row as text, "(null)" for NULL. */
static const char *
text_of(sqlite3 *db, const char *sql)
{
	static char buf[8192];
	sqlite3_stmt *stmt;
	const unsigned char *s;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) ==
	    SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	ck_assert_msg(sqlite3_step(stmt) == SQLITE_ROW, "%s: %s", sql,
	    sqlite3_errmsg(db));
	s = sqlite3_column_text(stmt, 0);
	snprintf(buf, sizeof(buf), "%s", s == NULL ? "(null)" :
	    (const char *)s);
	sqlite3_finalize(stmt);
	return buf;
}

/* The fields of fixtures/call_ended.json. */
static void
sample(struct event *ev, char *sid, char *body)
{
	memset(ev, 0, sizeof(*ev));
	ev->body = body;
	ev->body_len = body == NULL ? 0 : strlen(body);
	ev->event = "call_ended";
	ev->call_sid = sid;
	ev->call_type = "outbound";
	ev->agent_id = "6803fa770b666a64ab1694c1e";
	ev->version_id = "1203fa770b666a64ab1694c1e";
	ev->from_number = "919876543210";
	ev->to_number = "918765432109";
	ev->recording_url = "https://example.com/recording.mp3";
	ev->call_duration = 120.5;
	ev->has_call_duration = true;
	ev->call_time = "2025-12-19 16:01:07";
	ev->transcription = "Full call transcript, the customer wants a "
	    "callback tomorrow";
	ev->batch_id = "0303fa770b666a64ab1694c1e";
	ev->hangup_reason = "CLIENT_INITIATED";
	ev->call_metadata = "{\"name\":\"Jatin\",\"age\":25}";
	ev->try_count = -1;
	ev->has_try_count = true;
	ev->post_call = "{\"lead_status\":\"interested\"}";
	ev->post_call_detail = "{\"lead_status\":{\"value\":\"interested\","
	    "\"comment\":\"Customer showed interest\"}}";
	ev->functions_called = "[{\"name\":\"update_crm\",\"success\":true,"
	    "\"timestamp\":\"2025-12-19T15:25:00.000Z\"}]";
	ev->disposition_reason = "Customer requested callback";
	ev->conversion_status = 1;
	ev->next_call_scheduled = 0;
	ev->call_link = "https://callkaro.ai/dashboard/call-history?call_id=1";
	snprintf(ev->remote_addr, sizeof(ev->remote_addr), "203.0.113.7");
	snprintf(ev->received_at, sizeof(ev->received_at),
	    "2025-12-19T16:01:08.000Z");
}

static enum store_outcome
put_ok(struct store *st, const struct event *ev)
{
	enum store_outcome outcome;
	int error;

	error = store_put(st, ev, &outcome);
	ck_assert_msg(error == 0, "store_put: %d %s", error,
	    store_errmsg(st));
	return outcome;
}

START_TEST(test_schema_new)
{
	static const char *const names[] = {
		"calls", "call_revisions", "rejects", "calls_fts",
		"call_functions", "call_post_fields", "calls_call_time",
		"calls_received_at", "calls_agent_id", "calls_batch_id",
		"calls_to_number", "calls_from_number", "rejects_time",
		"calls_revision", "calls_fts_ad", "calls_fts_au",
		"fts_pending", "fts_source",
	};
	struct store *st;
	sqlite3 *db;
	char sql[160];

	st = open_ok("new.db", true);
	db = store_db(st);
	ck_assert_int_eq(int_of(db, "PRAGMA user_version"),
	    STORE_SCHEMA_VERSION);
	ck_assert_int_eq(int_of(db, "PRAGMA application_id"), 0x43484B44);
	ck_assert_str_eq(text_of(db, "PRAGMA journal_mode"), "wal");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_schema"
		    " WHERE name = '%s'", names[i]);
		ck_assert_msg(int_of(db, sql) == 1, "%s missing", names[i]);
	}
	ck_assert_str_eq(text_of(db, "SELECT group_concat(name) FROM "
	    "pragma_table_info('calls')"),
	    "id,call_sid,event,call_type,agent_id,version_id,from_number,"
	    "to_number,recording_url,call_duration,call_time,transcription,"
	    "batch_id,hangup_reason,call_metadata,try_count,post_call,"
	    "post_call_detail,functions_called,disposition_reason,"
	    "conversion_status,next_call_scheduled,call_link,payload,"
	    "first_received_at,received_at,deliveries,revision,remote_addr");
	ck_assert_int_eq(int_of(db, "SELECT pk FROM pragma_table_info('calls')"
	    " WHERE name = 'id'"), 1);
	store_close(st);

	/* Reopening an up-to-date file changes nothing. */
	st = open_ok("new.db", true);
	ck_assert_int_eq(int_of(store_db(st), "PRAGMA user_version"),
	    STORE_SCHEMA_VERSION);
	store_close(st);
	store_close(NULL);
}
END_TEST

static void
assert_col(sqlite3_stmt *stmt, int i, const char *want)
{
	const unsigned char *got = sqlite3_column_text(stmt, i);

	if (want == NULL)
		ck_assert_msg(got == NULL, "column %s: got %s, want NULL",
		    sqlite3_column_name(stmt, i), got);
	else
		ck_assert_msg(got != NULL && strcmp((const char *)got, want)
		    == 0, "column %s: got %s, want %s",
		    sqlite3_column_name(stmt, i), got, want);
}

START_TEST(test_put_new)
{
	struct store *st;
	struct event ev;
	sqlite3_stmt *stmt;
	sqlite3 *db;
	char body[] = SAMPLE_BODY;

	st = open_ok("calls.db", true);
	db = store_db(st);
	sample(&ev, "2303fa770b666a64ab1694c1e", body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);

	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT call_sid, event,"
	    " call_type, agent_id, version_id, from_number, to_number,"
	    " recording_url, call_time, transcription, batch_id,"
	    " hangup_reason, call_metadata, post_call, post_call_detail,"
	    " functions_called, disposition_reason, call_link, payload,"
	    " first_received_at, received_at, remote_addr, call_duration,"
	    " try_count, conversion_status, next_call_scheduled, deliveries,"
	    " revision, typeof(call_duration), typeof(try_count) FROM calls",
	    -1, &stmt, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(stmt), SQLITE_ROW);
	assert_col(stmt, 0, ev.call_sid);
	assert_col(stmt, 1, ev.event);
	assert_col(stmt, 2, ev.call_type);
	assert_col(stmt, 3, ev.agent_id);
	assert_col(stmt, 4, ev.version_id);
	assert_col(stmt, 5, ev.from_number);
	assert_col(stmt, 6, ev.to_number);
	assert_col(stmt, 7, ev.recording_url);
	assert_col(stmt, 8, ev.call_time);
	assert_col(stmt, 9, ev.transcription);
	assert_col(stmt, 10, ev.batch_id);
	assert_col(stmt, 11, ev.hangup_reason);
	assert_col(stmt, 12, ev.call_metadata);
	assert_col(stmt, 13, ev.post_call);
	assert_col(stmt, 14, ev.post_call_detail);
	assert_col(stmt, 15, ev.functions_called);
	assert_col(stmt, 16, ev.disposition_reason);
	assert_col(stmt, 17, ev.call_link);
	assert_col(stmt, 18, body);
	assert_col(stmt, 19, ev.received_at);
	assert_col(stmt, 20, ev.received_at);
	assert_col(stmt, 21, ev.remote_addr);
	ck_assert(sqlite3_column_double(stmt, 22) == 120.5);
	ck_assert_int_eq(sqlite3_column_int64(stmt, 23), -1);
	ck_assert_int_eq(sqlite3_column_int(stmt, 24), 1);
	ck_assert_int_eq(sqlite3_column_int(stmt, 25), 0);
	ck_assert_int_eq(sqlite3_column_int(stmt, 26), 1);
	ck_assert_int_eq(sqlite3_column_int(stmt, 27), 1);
	assert_col(stmt, 28, "real");
	assert_col(stmt, 29, "integer");
	ck_assert_int_eq(sqlite3_step(stmt), SQLITE_DONE);
	sqlite3_finalize(stmt);
	store_close(st);
}
END_TEST

START_TEST(test_put_nulls)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body[] = "{\"event\":\"call_ended\",\"data\":{\"callSid\":\"n1\"}}";

	st = open_ok("calls.db", false);
	db = store_db(st);
	memset(&ev, 0, sizeof(ev));
	ev.body = body;
	ev.body_len = strlen(body);
	ev.event = "call_ended";
	ev.call_sid = "n1";
	ev.conversion_status = -1;
	ev.next_call_scheduled = -1;
	snprintf(ev.received_at, sizeof(ev.received_at),
	    "2025-12-19T16:01:08.000Z");
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls WHERE"
	    " call_type IS NULL AND agent_id IS NULL AND version_id IS NULL"
	    " AND from_number IS NULL AND to_number IS NULL"
	    " AND recording_url IS NULL AND call_duration IS NULL"
	    " AND call_time IS NULL AND transcription IS NULL"
	    " AND batch_id IS NULL AND hangup_reason IS NULL"
	    " AND call_metadata IS NULL AND try_count IS NULL"
	    " AND post_call IS NULL AND post_call_detail IS NULL"
	    " AND functions_called IS NULL AND disposition_reason IS NULL"
	    " AND conversion_status IS NULL AND next_call_scheduled IS NULL"
	    " AND call_link IS NULL AND remote_addr IS NULL"), 1);
	/* The views cope with NULL JSON. */
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_functions"), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_post_fields"),
	    0);
	store_close(st);
}
END_TEST

START_TEST(test_duplicate)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body[] = SAMPLE_BODY;

	st = open_ok("calls.db", true);
	db = store_db(st);
	sample(&ev, "dup-1", body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	snprintf(ev.received_at, sizeof(ev.received_at),
	    "2025-12-19T16:05:00.000Z");
	snprintf(ev.remote_addr, sizeof(ev.remote_addr), "198.51.100.1");
	ck_assert_int_eq(put_ok(st, &ev), STORE_DUPLICATE);
	ck_assert_int_eq(int_of(db, "SELECT deliveries FROM calls"), 2);
	ck_assert_int_eq(int_of(db, "SELECT revision FROM calls"), 1);
	ck_assert_str_eq(text_of(db, "SELECT received_at FROM calls"),
	    "2025-12-19T16:05:00.000Z");
	ck_assert_str_eq(text_of(db, "SELECT first_received_at FROM calls"),
	    "2025-12-19T16:01:08.000Z");
	/* Only deliveries and received_at change: the sender's address
	 * is the one that stored the body (an import's is "import"). */
	ck_assert_str_eq(text_of(db, "SELECT remote_addr FROM calls"),
	    "203.0.113.7");
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_revisions"), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 1);
	store_close(st);
}
END_TEST

START_TEST(test_revision)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body1[] = SAMPLE_BODY;
	char body2[] = "{\"event\":\"call_ended\",\"data\":{\"callSid\":\"r1\","
	    "\"agent\":\"agent-2\"}}";

	st = open_ok("calls.db", true);
	db = store_db(st);
	sample(&ev, "r1", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);

	ev.body = body2;
	ev.body_len = strlen(body2);
	ev.agent_id = "agent-2";
	ev.batch_id = NULL;
	ev.has_call_duration = false;
	snprintf(ev.received_at, sizeof(ev.received_at),
	    "2025-12-19T17:00:00.000Z");
	ck_assert_int_eq(put_ok(st, &ev), STORE_REVISION);
	ck_assert_int_eq(int_of(db, "SELECT revision FROM calls"), 2);
	ck_assert_int_eq(int_of(db, "SELECT deliveries FROM calls"), 2);
	ck_assert_str_eq(text_of(db, "SELECT agent_id FROM calls"), "agent-2");
	ck_assert_str_eq(text_of(db, "SELECT payload FROM calls"), body2);
	ck_assert_str_eq(text_of(db, "SELECT batch_id FROM calls"), "(null)");
	ck_assert_str_eq(text_of(db, "SELECT call_duration FROM calls"),
	    "(null)");
	ck_assert_str_eq(text_of(db, "SELECT first_received_at FROM calls"),
	    "2025-12-19T16:01:08.000Z");
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_revisions"), 1);
	ck_assert_str_eq(text_of(db, "SELECT payload FROM call_revisions"
	    " WHERE call_sid = 'r1' AND revision = 1"), body1);
	ck_assert_str_eq(text_of(db, "SELECT received_at FROM call_revisions"),
	    "2025-12-19T16:01:08.000Z");

	/* The first body again is a third revision, not a duplicate. */
	ev.body = body1;
	ev.body_len = strlen(body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_REVISION);
	ck_assert_int_eq(int_of(db, "SELECT revision FROM calls"), 3);
	ck_assert_str_eq(text_of(db, "SELECT payload FROM call_revisions"
	    " WHERE revision = 2"), body2);

	/* Any writer keeps history, not only store_put. */
	exec_ok(db, "UPDATE calls SET payload = 'edited', revision = 4");
	ck_assert_str_eq(text_of(db, "SELECT payload FROM call_revisions"
	    " WHERE revision = 3"), body1);
	store_close(st);
}
END_TEST

static sqlite3_int64
matches(sqlite3 *db, const char *query)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM calls_fts"
	    " WHERE calls_fts MATCH '%s'", query);
	return int_of(db, sql);
}

static void
fts_intact(sqlite3 *db)
{
	exec_ok(db, "INSERT INTO calls_fts (calls_fts, rank)"
	    " VALUES ('integrity-check', 1)");
}

/* A minimal calls row, as another program might write it. */
static void
insert_by_hand(sqlite3 *db, const char *sid, const char *text, bool replace)
{
	char *sql = sqlite3_mprintf("INSERT%s INTO calls (call_sid, event,"
	    " payload, first_received_at, received_at, transcription)"
	    " VALUES (%Q, 'call_ended', '{}', 'x', 'x', %Q)",
	    replace ? " OR REPLACE" : "", sid, text);

	exec_ok(db, sql);
	sqlite3_free(sql);
}

/* Index everything waiting; returns how many rows that was. */
static int
index_all(struct store *st)
{
	int n, total = 0;

	do {
		ck_assert_int_eq(store_fts_index(st, 2, &n), 0);
		total += n;
	} while (n == 2);
	ck_assert_int_eq(store_fts_backlog(st), 0);
	return total;
}

/* Events that differ, row to row, in every column a run binds. */
#define VARIED_MAX	40
struct varied {
	struct event	ev[VARIED_MAX];
	char		sid[VARIED_MAX][16];
	char		agent[VARIED_MAX][16];
	char		text[VARIED_MAX][32];
	char		body[VARIED_MAX][96];
};

static void
varied(struct varied *v, const char *prefix, int n)
{
	ck_assert_int_le(n, VARIED_MAX);
	for (int i = 0; i < n; i++) {
		struct event *ev = &v->ev[i];

		snprintf(v->sid[i], sizeof(v->sid[i]), "%s-%02d", prefix, i);
		snprintf(v->body[i], sizeof(v->body[i]), "{\"event\":"
		    "\"call_ended\",\"data\":{\"callSid\":\"%s\"}}", v->sid[i]);
		sample(ev, v->sid[i], v->body[i]);
		snprintf(v->agent[i], sizeof(v->agent[i]), "agent-%d", i % 5);
		ev->agent_id = v->agent[i];
		snprintf(v->text[i], sizeof(v->text[i]), "transcript number %d",
		    i);
		ev->transcription = v->text[i];
		ev->call_type = i % 4 == 0 ? NULL : "outbound";
		ev->call_duration = i + 0.25;
		ev->has_call_duration = i % 3 != 0;
		ev->try_count = i;
		ev->has_try_count = i % 2 == 0;
		ev->conversion_status = i % 3 - 1;
		ev->next_call_scheduled = (i + 1) % 3 - 1;
		snprintf(ev->received_at, sizeof(ev->received_at),
		    "2025-12-19T16:01:%02d.000Z", i);
		if (i % 7 == 0)
			ev->remote_addr[0] = '\0';
	}
}

/* As the writer does: runs, then one at a time what a run left. */
static int
put_run_ok(struct store *st, struct event *evs, int n,
    enum store_outcome *outcome)
{
	const struct event *p[STORE_RUN_MAX];
	int error, stored;

	ck_assert_int_le(n, STORE_RUN_MAX);
	for (int i = 0; i < n; i++)
		p[i] = &evs[i];
	error = store_put_run(st, p, n, &stored);
	ck_assert_msg(error == 0, "store_put_run: %d %s", error,
	    store_errmsg(st));
	ck_assert_int_ge(stored, 0);
	ck_assert_int_le(stored, n);
	for (int i = 0; i < n; i++)
		outcome[i] = i < stored ? STORE_NEW : put_ok(st, &evs[i]);
	return stored;
}

/* The rows of one table that the other lacks, both ways. */
static sqlite3_int64
rows_differing(sqlite3 *db, const char *table)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT (SELECT count(*) FROM"
	    " (SELECT * FROM %s EXCEPT SELECT * FROM r.%s)) +"
	    " (SELECT count(*) FROM (SELECT * FROM r.%s EXCEPT"
	    " SELECT * FROM %s))", table, table, table, table);
	return int_of(db, sql);
}

START_TEST(test_run_rows)
{
	static struct varied v;
	enum store_outcome out[STORE_RUN_MAX];
	const struct event *one = &v.ev[0];
	struct store *seq, *run;
	sqlite3 *db;
	char sql[PATH_MAX + 128];
	int stored;

	/* The same 37 events, one at a time and in runs of 32 and 5. */
	varied(&v, "run", 37);
	seq = open_ok("seq.db", true);
	ck_assert_int_eq(store_begin(seq), 0);
	for (int i = 0; i < 37; i++)
		ck_assert_int_eq(put_ok(seq, &v.ev[i]), STORE_NEW);
	ck_assert_int_eq(store_commit(seq), 0);

	run = open_ok("run.db", true);
	ck_assert_int_eq(store_begin(run), 0);
	/* A run of one is left to store_put. */
	ck_assert_int_eq(store_put_run(run, &one, 1, &stored), 0);
	ck_assert_int_eq(stored, 0);
	ck_assert_int_eq(put_run_ok(run, v.ev, 32, out), 32);
	ck_assert_int_eq(put_run_ok(run, v.ev + 32, 5, out), 4);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(out[i], STORE_NEW);
	ck_assert_int_eq(store_commit(run), 0);
	ck_assert_int_eq(store_fts_backlog(run), 37);

	/* Row for row, the same file: ids, columns, types, the queue. */
	db = store_db(seq);
	snprintf(sql, sizeof(sql), "ATTACH '%s' AS r", path("run.db"));
	exec_ok(db, sql);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM r.calls"), 37);
	ck_assert_int_eq(rows_differing(db, "calls"), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM (SELECT id,"
	    " typeof(call_duration), typeof(try_count),"
	    " typeof(conversion_status), typeof(remote_addr) FROM calls"
	    " EXCEPT SELECT id, typeof(call_duration), typeof(try_count),"
	    " typeof(conversion_status), typeof(remote_addr) FROM r.calls)"),
	    0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM r.fts_pending"),
	    37);
	ck_assert_int_eq(rows_differing(db, "fts_pending"), 0);
	exec_ok(db, "DETACH r");

	/* Indexed like the others. */
	ck_assert_int_eq(store_fts_index(run, 64, &stored), 0);
	ck_assert_int_eq(stored, 37);
	ck_assert_int_eq(int_of(store_db(run), "SELECT count(*) FROM calls_fts"
	    " WHERE calls_fts MATCH 'transcript AND number'"), 37);
	store_close(seq);
	store_close(run);
}
END_TEST

/*
 * A run that meets a callSid already there writes nothing of its own;
 * the runs before it stay, and store_put takes the rest.
 */
START_TEST(test_run_taken)
{
	static struct varied v, w;
	enum store_outcome out[STORE_RUN_MAX];
	struct store *st;
	sqlite3 *db;

	st = open_ok("calls.db", true);
	db = store_db(st);
	varied(&v, "taken", 12);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_ok(st, &v.ev[10]), STORE_NEW);
	ck_assert_int_eq(store_commit(st), 0);

	/* Runs of 8 and 4: the second meets taken-10. */
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_run_ok(st, v.ev, 12, out), 8);
	for (int i = 0; i < 12; i++)
		ck_assert_int_eq(out[i], i == 10 ? STORE_DUPLICATE : STORE_NEW);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 12);
	/* Nothing left of the failed INSERT: its ids were given again. */
	ck_assert_int_eq(int_of(db, "SELECT max(id) FROM calls"), 12);
	ck_assert_int_eq(int_of(db, "SELECT deliveries FROM calls"
	    " WHERE call_sid = 'taken-10'"), 2);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM fts_pending"), 12);

	/* The same callSid twice in one run, the second a new body. */
	varied(&w, "twice", 4);
	w.ev[2].call_sid = w.sid[0];
	snprintf(w.body[2], sizeof(w.body[2]), "{\"event\":\"call_ended\","
	    "\"data\":{\"callSid\":\"twice-00\",\"name\":\"inbound\"}}");
	w.ev[2].body_len = strlen(w.body[2]);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_run_ok(st, w.ev, 4, out), 0);
	ck_assert_int_eq(out[0], STORE_NEW);
	ck_assert_int_eq(out[1], STORE_NEW);
	ck_assert_int_eq(out[2], STORE_REVISION);
	ck_assert_int_eq(out[3], STORE_NEW);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"
	    " WHERE call_sid LIKE 'twice-%'"), 3);
	ck_assert_int_eq(int_of(db, "SELECT revision FROM calls"
	    " WHERE call_sid = 'twice-00'"), 2);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_revisions"
	    " WHERE call_sid = 'twice-00'"), 1);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM fts_pending"), 15);
	store_close(st);
}
END_TEST

/* A row SQLite refuses fails alone, as with store_put. */
START_TEST(test_run_refused)
{
	static struct varied v;
	const struct event *p[4];
	enum store_outcome outcome;
	struct store *st;
	int stored;

	st = open_ok("calls.db", true);
	varied(&v, "refused", 4);
	v.ev[2].received_at[0] = '\0';
	for (int i = 0; i < 4; i++)
		p[i] = &v.ev[i];
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_put_run(st, p, 4, &stored), 0);
	ck_assert_int_eq(stored, 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(store_put(st, p[i], &outcome),
		    i == 2 ? -EINVAL : 0);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(int_of(store_db(st), "SELECT count(*) FROM calls"), 3);
	ck_assert_int_eq(int_of(store_db(st),
	    "SELECT count(*) FROM fts_pending"), 3);
	store_close(st);
}
END_TEST

/*
 * Once the largest id is taken, SQLite picks new ids at random, and the
 * new rows of a run cannot be told by their ids: store_put queues them.
 * That is so for a table at INT64_MAX, and for one that a run of four
 * would take there. Without the full-text index the run goes ahead.
 */
START_TEST(test_run_random_ids)
{
	static const char *const top[] = {
		"9223372036854775807", "9223372036854775806",
	};
	static struct varied v;
	enum store_outcome out[STORE_RUN_MAX];
	struct store *st;
	sqlite3 *db;
	char name[32], sql[512];

	varied(&v, "random", 4);
	/* Each top id, with the index and without. */
	for (int c = 0; c < 4; c++) {
		int t = c / 2;
		bool fts = c % 2 == 0;

		snprintf(name, sizeof(name), "calls-%d.db", c);
		st = open_ok(name, fts);
		db = store_db(st);
		snprintf(sql, sizeof(sql), "INSERT INTO calls (id, call_sid,"
		    " event, payload, first_received_at, received_at) VALUES"
		    " (%s, 'by-hand', 'call_ended', '{}',"
		    " '2025-12-19T16:01:07.000Z', '2025-12-19T16:01:07.000Z')",
		    top[t]);
		exec_ok(db, sql);
		ck_assert_int_eq(store_begin(st), 0);
		ck_assert_int_eq(put_run_ok(st, v.ev, 4, out), fts ? 0 : 4);
		ck_assert_int_eq(store_commit(st), 0);
		ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 5);
		if (fts) {
			ck_assert_int_eq(int_of(db, "SELECT count(*) FROM"
			    " fts_pending JOIN calls USING (id)"
			    " WHERE call_sid LIKE 'random-%'"), 4);
			ck_assert_int_eq(store_fts_backlog(st), 4);
		}
		store_close(st);
	}
}
END_TEST

/*
 * A progress handler that stops the statement running after 20 of its
 * steps (SQLITE_INTERRUPT): past SELECT max(id), well inside an INSERT.
 */
static int
interrupt(void *arg)
{
	int *steps = arg;

	return ++*steps > 20;
}

/*
 * An error that ends the whole transaction (an interrupt of a run; a
 * corrupt page would do it too) takes what the batch wrote before with
 * it: the run asks for the batch to be retried, rather than go on in
 * autocommit without it.
 */
START_TEST(test_run_txn_lost)
{
	static struct varied v;
	const struct event *p[4];
	struct store *st;
	sqlite3 *db;
	int stored, steps = 0;

	st = open_ok("calls.db", true);
	db = store_db(st);
	varied(&v, "lost", 6);
	for (int i = 0; i < 4; i++)
		p[i] = &v.ev[2 + i];
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_ok(st, &v.ev[0]), STORE_NEW);
	ck_assert_int_eq(put_ok(st, &v.ev[1]), STORE_NEW);
	sqlite3_progress_handler(db, 1, interrupt, &steps);
	ck_assert_int_eq(store_put_run(st, p, 4, &stored), -EAGAIN);
	sqlite3_progress_handler(db, 0, NULL, NULL);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "interrupted"));
	ck_assert_int_eq(sqlite3_get_autocommit(db), 1);
	store_rollback(st);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 0);

	/* The same run, uninterrupted, goes in. */
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_put_run(st, p, 4, &stored), 0);
	ck_assert_int_eq(stored, 4);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 4);
	store_close(st);
}
END_TEST

/* Interrupt whatever runs while a statement whose SQL holds sql is busy. */
struct busy_sql {
	sqlite3		*db;
	const char	*sql;
};

static int
interrupt_busy(void *arg)
{
	const struct busy_sql *b = arg;
	sqlite3_stmt *stmt = NULL;

	while ((stmt = sqlite3_next_stmt(b->db, stmt)) != NULL)
		if (sqlite3_stmt_busy(stmt) &&
		    strstr(sqlite3_sql(stmt), b->sql) != NULL)
			return 1;
	return 0;
}

/*
 * The same for the other statements of a batch: a redelivery's update,
 * a revision's upsert, a reject. Each ends the transaction, and must ask
 * for the batch to be retried (-EAGAIN), not for the event to be set
 * aside or the reject skipped while the rest goes on in autocommit.
 */
START_TEST(test_put_txn_lost)
{
	static const char *const stmts[] = {
		"SET deliveries", "ON CONFLICT", "INTO rejects",
	};
	char body[] = SAMPLE_BODY, other[] = SAMPLE_BODY " ", name[32];
	enum store_outcome outcome;
	struct busy_sql busy;
	struct event a, b;
	struct reject rj;
	struct store *st;
	int error;

	memset(&rj, 0, sizeof(rj));
	rj.status = 400;
	for (size_t k = 0; k < sizeof(stmts) / sizeof(stmts[0]); k++) {
		snprintf(name, sizeof(name), "lost-%zu.db", k);
		st = open_ok(name, true);
		busy.db = store_db(st);
		busy.sql = stmts[k];
		sample(&a, "txn-a", body);
		sample(&b, "txn-b", body);
		ck_assert_int_eq(store_begin(st), 0);
		ck_assert_int_eq(put_ok(st, &a), STORE_NEW);
		ck_assert_int_eq(store_commit(st), 0);

		ck_assert_int_eq(store_begin(st), 0);
		ck_assert_int_eq(put_ok(st, &b), STORE_NEW);
		sqlite3_progress_handler(busy.db, 1, interrupt_busy, &busy);
		if (k == 2)
			error = store_put_reject(st, &rj);
		else {
			if (k == 1)
				sample(&a, "txn-a", other);
			error = store_put(st, &a, &outcome);
		}
		sqlite3_progress_handler(busy.db, 0, NULL, NULL);
		ck_assert_msg(error == -EAGAIN, "%s: %d", stmts[k], error);
		ck_assert_ptr_nonnull(strstr(store_errmsg(st), "interrupted"));
		ck_assert_int_eq(sqlite3_get_autocommit(busy.db), 1);
		store_rollback(st);
		ck_assert_int_eq(int_of(busy.db, "SELECT count(*) FROM calls"),
		    1);
		store_close(st);
	}
}
END_TEST

START_TEST(test_fts)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body1[] = SAMPLE_BODY;
	char body2[] = "{\"other\":1}";

	st = open_ok("calls.db", true);
	db = store_db(st);
	sample(&ev, "f1", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	/* Deferred: not searchable yet, and the index is still sound. */
	ck_assert_int_eq(matches(db, "callback"), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM fts_pending"), 1);
	fts_intact(db);
	ck_assert_int_eq(index_all(st), 1);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM fts_pending"), 0);
	ck_assert_int_eq(matches(db, "callback"), 1);
	ck_assert_int_eq(matches(db, "tomorrow"), 1);
	ck_assert_int_eq(int_of(db, "SELECT c.call_sid = 'f1' FROM calls_fts"
	    " JOIN calls AS c ON c.id = calls_fts.rowid"
	    " WHERE calls_fts MATCH 'tomorrow'"), 1);

	/* A row already indexed is re-indexed by the trigger at once. */
	ev.body = body2;
	ev.body_len = strlen(body2);
	ev.transcription = "Priya asked about the café pricing";
	ev.disposition_reason = NULL;
	ck_assert_int_eq(put_ok(st, &ev), STORE_REVISION);
	ck_assert_int_eq(matches(db, "tomorrow"), 0);
	ck_assert_int_eq(matches(db, "callback"), 0);
	ck_assert_int_eq(matches(db, "pricing"), 1);
	ck_assert_int_eq(matches(db, "cafe"), 1);
	fts_intact(db);

	exec_ok(db, "DELETE FROM calls");
	ck_assert_int_eq(matches(db, "pricing"), 0);
	fts_intact(db);
	store_close(st);
}
END_TEST

/* Rows waiting for the index: revised, deleted, inserted by hand. */
START_TEST(test_fts_pending)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body1[] = SAMPLE_BODY;
	char body2[] = "{\"other\":2}";
	char sid[8];
	int n;

	st = open_ok("calls.db", true);
	db = store_db(st);
	ck_assert_int_eq(store_fts_index(st, 8, &n), 0);
	ck_assert_int_eq(n, 0);

	/* Revised while waiting: indexed once, with the latest text. */
	sample(&ev, "p1", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ev.body = body2;
	ev.body_len = strlen(body2);
	ev.transcription = "zebra crossing";
	ck_assert_int_eq(put_ok(st, &ev), STORE_REVISION);
	fts_intact(db);
	ck_assert_int_eq(matches(db, "zebra"), 0);

	/* Deleted while waiting: leaves the queue, the index untouched. */
	sample(&ev, "p2", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	exec_ok(db, "DELETE FROM calls WHERE call_sid = 'p2'");
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM fts_pending"), 1);
	fts_intact(db);

	/* Inserted by another program, which queues it as documented. */
	insert_by_hand(db, "p3", "giraffe by hand", false);
	exec_ok(db, "INSERT INTO fts_pending (id) VALUES (last_insert_rowid())");

	/* Counted in a batch, indexed in chunks, oldest first. */
	ck_assert_int_eq(store_begin(st), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(sid, sizeof(sid), "q%d", i);
		sample(&ev, sid, body1);
		ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	}
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_fts_backlog(st), 3);
	ck_assert_int_eq(store_fts_count(st), 0);
	ck_assert_int_eq(store_fts_backlog(st), 5);
	ck_assert_int_eq(store_fts_index(st, 2, &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(matches(db, "zebra"), 1);
	ck_assert_int_eq(matches(db, "giraffe"), 1);
	ck_assert_int_eq(matches(db, "callback"), 1);	/* p1's disposition */
	ck_assert_int_eq(store_fts_backlog(st), 3);
	ck_assert_int_eq(index_all(st), 3);
	ck_assert_int_eq(matches(db, "callback"), 4);
	fts_intact(db);

	/*
	 * FTS5's own rebuild agrees with the deferred index: it takes in a
	 * row inserted by hand and not queued, and leaves queued ones.
	 */
	sample(&ev, "r1", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	insert_by_hand(db, "r2", "okapi by hand", false);
	ck_assert_int_eq(matches(db, "okapi"), 0);
	exec_ok(db, "INSERT INTO calls_fts (calls_fts) VALUES ('rebuild')");
	ck_assert_int_eq(matches(db, "okapi"), 1);
	ck_assert_int_eq(matches(db, "callback"), 4);
	ck_assert_int_eq(index_all(st), 1);
	ck_assert_int_eq(matches(db, "callback"), 5);
	fts_intact(db);
	store_close(st);
}
END_TEST

/*
 * A queued id whose row is gone (INSERT OR REPLACE by hand fires no
 * delete trigger) must not make a chunk index one row and dequeue
 * another: that row would be indexed twice.
 */
START_TEST(test_fts_orphan_id)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body1[] = SAMPLE_BODY;
	char sid[8];
	int n;

	st = open_ok("calls.db", true);
	db = store_db(st);
	for (int i = 0; i < 3; i++) {
		snprintf(sid, sizeof(sid), "o%d", i);
		sample(&ev, sid, body1);
		ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	}
	insert_by_hand(db, "o0", "okapi", true);
	exec_ok(db, "INSERT INTO fts_pending (id) VALUES (last_insert_rowid())");
	ck_assert_int_eq(store_fts_index(st, 2, &n), 0);
	ck_assert_int_eq(n, 2);
	index_all(st);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM fts_pending"), 0);
	ck_assert_int_eq(matches(db, "callback"), 2);
	ck_assert_int_eq(matches(db, "okapi"), 1);
	fts_intact(db);
	store_close(st);
}
END_TEST

/* An index as earlier versions made it is replaced, and filled. */
START_TEST(test_fts_upgrade)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body1[] = SAMPLE_BODY;

	st = open_ok("calls.db", false);
	sample(&ev, "u1", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	store_close(st);
	db = raw_open("calls.db");
	exec_ok(db, "CREATE VIRTUAL TABLE calls_fts USING fts5("
	    " transcription, disposition_reason,"
	    " content='calls', content_rowid='id',"
	    " tokenize='unicode61 remove_diacritics 2');"
	    "CREATE TRIGGER calls_fts_ad AFTER DELETE ON calls BEGIN"
	    " INSERT INTO calls_fts (calls_fts, rowid, transcription,"
	    "  disposition_reason) VALUES ('delete', old.id,"
	    "  old.transcription, old.disposition_reason); END;"
	    "CREATE TRIGGER calls_fts_au AFTER UPDATE OF transcription ON calls"
	    " BEGIN SELECT 1; END;"
	    "INSERT INTO calls_fts (calls_fts) VALUES ('rebuild');");
	sqlite3_close(db);

	/* Made again empty, every row queued: the start does not wait. */
	st = open_ok("calls.db", true);
	db = store_db(st);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM sqlite_schema"
	    " WHERE name = 'calls_fts' AND sql LIKE '%fts_source%'"), 1);
	ck_assert_int_eq(store_fts_backlog(st), 1);
	ck_assert_int_eq(matches(db, "callback"), 0);
	sample(&ev, "u2", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_int_eq(index_all(st), 2);
	ck_assert_int_eq(matches(db, "callback"), 2);
	fts_intact(db);
	store_close(st);

	/*
	 * The previous version's index cut Hindi words at their vowel signs
	 * ("हूँ" was "ह", which "है" matched): made again too.
	 */
	db = raw_open("calls.db");
	exec_ok(db, "DROP TABLE calls_fts;"
	    "CREATE VIRTUAL TABLE calls_fts USING fts5("
	    " transcription, disposition_reason,"
	    " content='fts_source', content_rowid='id',"
	    " tokenize='unicode61 remove_diacritics 2');"
	    "INSERT INTO calls_fts (calls_fts) VALUES ('rebuild');"
	    "UPDATE calls SET transcription = 'मैं आपकी कैसे मदद कर सकती हूँ'"
	    " WHERE call_sid = 'u1';");
	sqlite3_close(db);
	st = open_ok("calls.db", true);
	db = store_db(st);
	ck_assert_int_eq(store_fts_backlog(st), 2);
	ck_assert_int_eq(index_all(st), 2);
	ck_assert_int_eq(matches(db, "हूँ"), 1);
	ck_assert_int_eq(matches(db, "है"), 0);
	ck_assert_int_eq(matches(db, "कैसे"), 1);
	fts_intact(db);
	store_close(st);
}
END_TEST

START_TEST(test_fts_toggle)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body1[] = SAMPLE_BODY;
	char body2[] = "{\"second\":true}";

	st = open_ok("calls.db", true);
	sample(&ev, "t1", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	store_close(st);

	st = open_ok("calls.db", false);
	db = store_db(st);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM sqlite_schema"
	    " WHERE name LIKE 'calls_fts%'"), 0);
	sample(&ev, "t2", body2);
	ev.transcription = "zebra crossing";
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	store_close(st);

	/* Turned on, every row is queued for the index. */
	st = open_ok("calls.db", true);
	db = store_db(st);
	ck_assert_int_eq(store_fts_backlog(st), 2);
	ck_assert_int_eq(index_all(st), 2);
	ck_assert_int_eq(matches(db, "zebra"), 1);
	ck_assert_int_eq(matches(db, "callback"), 2);
	fts_intact(db);
	store_close(st);
}
END_TEST

/*
 * Another process holds the write lock while the daemon starts on a file
 * whose schema must change (here the full-text index turned on; a
 * migration after an upgrade is the same). The daemon's short writer
 * wait (50 ms here, 100 ms in callhookd) failed the start at once; under
 * systemd, restarting every second, five such starts made it give up.
 * The open waits as callhook does, and succeeds once the lock goes.
 */
START_TEST(test_setup_waits_for_lock)
{
	struct store *st;
	char err[256] = "", c;
	int fds[2], status, error;
	pid_t pid;

	st = open_ok("calls.db", false);
	store_close(st);
	ck_assert_int_eq(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		sqlite3 *db;

		close(fds[0]);
		if (sqlite3_open(path("calls.db"), &db) != SQLITE_OK ||
		    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
		    SQLITE_OK)
			_exit(1);
		(void)write(fds[1], "L", 1);
		usleep(500 * 1000);
		_exit(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) ==
		    SQLITE_OK ? 0 : 1);
	}
	ck_assert_int_gt(pid, 0);
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &c, 1), 1);
	close(fds[0]);

	error = try_open(&st, "calls.db", true, false, err, sizeof(err));
	ck_assert_msg(error == 0, "store_open under a lock: %d %s", error,
	    err);
	ck_assert_int_eq(int_of(store_db(st), "SELECT count(*) FROM"
	    " sqlite_schema WHERE name = 'calls_fts'"), 1);
	store_close(st);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(test_views)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body1[] = SAMPLE_BODY;
	char body2[] = "{\"odd\":1}";

	st = open_ok("calls.db", false);
	db = store_db(st);
	sample(&ev, "v1", body1);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_str_eq(text_of(db, "SELECT name || '|' || success || '|' ||"
	    " timestamp FROM call_functions WHERE call_sid = 'v1'"),
	    "update_crm|1|2025-12-19T15:25:00.000Z");
	ck_assert_str_eq(text_of(db, "SELECT field || '|' || value || '|' ||"
	    " comment FROM call_post_fields WHERE call_sid = 'v1'"),
	    "lead_status|interested|Customer showed interest");

	/* Odd entries give NULLs, not errors. */
	sample(&ev, "v2", body2);
	ev.functions_called = "[\"plain\",{\"name\":\"x\",\"success\":false}]";
	ev.post_call_detail = "{\"a\":\"just text\",\"b\":{\"value\":2}}";
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_functions"
	    " WHERE call_sid = 'v2'"), 2);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_functions"
	    " WHERE call_sid = 'v2' AND name IS NULL"), 1);
	ck_assert_int_eq(int_of(db, "SELECT success FROM call_functions"
	    " WHERE call_sid = 'v2' AND name = 'x'"), 0);
	ck_assert_str_eq(text_of(db, "SELECT coalesce(value, 'N') FROM"
	    " call_post_fields WHERE call_sid = 'v2' AND field = 'a'"), "N");
	ck_assert_int_eq(int_of(db, "SELECT value FROM call_post_fields"
	    " WHERE call_sid = 'v2' AND field = 'b'"), 2);

	/* Even a script's garbage does not break the views. */
	exec_ok(db, "UPDATE calls SET functions_called = 'not json',"
	    " post_call_detail = '{' WHERE call_sid = 'v2'");
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_functions"), 1);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_post_fields"),
	    1);
	store_close(st);
}
END_TEST

START_TEST(test_rejects_trim)
{
	struct store *st;
	struct reject rj;
	sqlite3 *db;
	char big[STORE_REJECT_BODY + 100];
	char bad[] = "\xff\xfe{";

	st = open_ok("calls.db", false);
	db = store_db(st);
	memset(big, 'x', sizeof(big));
	memset(&rj, 0, sizeof(rj));
	snprintf(rj.time, sizeof(rj.time), "2025-12-19T16:01:08.000Z");
	snprintf(rj.remote_addr, sizeof(rj.remote_addr), "192.0.2.1");
	snprintf(rj.reason, sizeof(rj.reason), "data.callSid is required");
	rj.status = 400;
	rj.body = big;
	rj.body_len = sizeof(big);
	ck_assert_int_eq(store_begin(st), 0);
	for (int i = 0; i < STORE_REJECTS_KEPT + 5; i++)
		ck_assert_int_eq(store_put_reject(st, &rj), 0);
	rj.body = bad;
	rj.body_len = 3;
	rj.remote_addr[0] = '\0';
	ck_assert_int_eq(store_put_reject(st, &rj), 0);
	ck_assert_int_eq(store_commit(st), 0);

	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM rejects"),
	    STORE_REJECTS_KEPT);
	ck_assert_int_eq(int_of(db, "SELECT min(id) FROM rejects"), 7);
	ck_assert_int_eq(int_of(db, "SELECT max(length(body)) FROM rejects"),
	    STORE_REJECT_BODY);
	ck_assert_str_eq(text_of(db, "SELECT typeof(body) || hex(body) ||"
	    " coalesce(remote_addr, '-') || status FROM rejects"
	    " ORDER BY id DESC LIMIT 1"), "blobFFFE7B-400");
	store_close(st);
}
END_TEST

/*
 * A reader holding a snapshot lets the WAL grow past 64 MB; once it is
 * gone and the WAL starts over, the file is cut back to 64 MB.
 */
START_TEST(test_wal_shrinks)
{
	struct store *st = open_ok("wal.db", false);
	sqlite3 *reader = raw_open("wal.db"), *db = store_db(st);
	char wal[PATH_MAX + 128];
	struct stat sb;

	snprintf(wal, sizeof(wal), "%s-wal", path("wal.db"));
	exec_ok(db, "CREATE TABLE filler (x)");
	exec_ok(reader, "BEGIN; SELECT count(*) FROM calls");
	exec_ok(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
	    "FROM c WHERE i < 72) INSERT INTO filler SELECT zeroblob(1048576) "
	    "FROM c");
	ck_assert_int_eq(stat(wal, &sb), 0);
	ck_assert_int_gt(sb.st_size, 72LL << 20);
	exec_ok(reader, "COMMIT");
	sqlite3_close(reader);
	exec_ok(db, "PRAGMA wal_checkpoint(PASSIVE)");
	exec_ok(db, "INSERT INTO filler VALUES (1)");
	ck_assert_int_eq(stat(wal, &sb), 0);
	ck_assert_int_le(sb.st_size, 64LL << 20);
	store_close(st);
}
END_TEST

/* A body of n bytes whose transcription is n - 80 bytes of c. */
static char *
big_body(const char *sid, size_t n, char c)
{
	char *b = malloc(n + 1);
	int k;

	ck_assert_ptr_nonnull(b);
	k = snprintf(b, n + 1, "{\"event\":\"call_ended\",\"data\":{\"callSid\":"
	    "\"%s\",\"transcription\":\"", sid);
	memset(b + k, c, n - (size_t)k - 3);
	memcpy(b + n - 3, "\"}}", 4);
	return b;
}

/*
 * A revision of a call with a 1 MB transcript: the statement's undo
 * journal outgrows memory and goes to a file. SQLite writes it there in
 * chunks of the spill size, and its unix VFS writes at most 128 KB - 1
 * at a time by masking the length: a spill of 512 KB made that a write
 * of 0 bytes, "database or disk is full", and the store stuck.
 */
START_TEST(test_big_revision)
{
	struct store *st = open_ok("big.db", true);
	sqlite3 *db = store_db(st);
	char *b1 = big_body("big", 1 << 20, 'a'), *b2 = big_body("big",
	    (1 << 20) + 7, 'b');
	struct event ev;

	sample(&ev, "big", b1);
	ev.transcription = strstr(b1, "aaa");
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	sample(&ev, "big", b2);
	ev.transcription = strstr(b2, "bbb");
	/* Inside a transaction, as the writer does: a statement journal. */
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_ok(st, &ev), STORE_REVISION);
	ck_assert_msg(store_commit(st) == 0, "commit: %s", store_errmsg(st));
	ck_assert_int_eq(int_of(db, "SELECT length(transcription) FROM calls"),
	    (int)strlen(ev.transcription));
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_revisions"), 1);
	store_close(st);
	free(b1);
	free(b2);
}
END_TEST

/*
 * One transaction of n events named prefix-NNNNN from first on, each
 * with a body of size bytes: a run, then one by one what it left.
 */
static int
commit_batch(struct store *st, const char *prefix, int first, int n,
    size_t size)
{
	char sid[STORE_RUN_MAX][32], *body[STORE_RUN_MAX];
	const struct event *p[STORE_RUN_MAX];
	struct event ev[STORE_RUN_MAX];
	int error, stored = 0;

	ck_assert_int_le(n, STORE_RUN_MAX);
	for (int i = 0; i < n; i++) {
		snprintf(sid[i], sizeof(sid[i]), "%s-%05d", prefix, first + i);
		body[i] = big_body(sid[i], size, 'a' + i % 26);
		sample(&ev[i], sid[i], body[i]);
		ev[i].transcription = strchr(body[i] + 50, 'a' + i % 26);
		p[i] = &ev[i];
	}
	if ((error = store_begin(st)) == 0)
		error = store_put_run(st, p, n, &stored);
	for (int i = stored; error == 0 && i < n; i++) {
		enum store_outcome outcome;

		error = store_put(st, &ev[i], &outcome);
	}
	if (error == 0)
		error = store_commit(st);
	if (error != 0)
		store_rollback(st);
	for (int i = 0; i < n; i++)
		free(body[i]);
	return error;
}

/*
 * The writer's WAL frames are gathered (walbuf.c), and written out with
 * the frame that ends a transaction: another connection, with SQLite's
 * own VFS, sees every committed row at once, also of transactions bigger
 * than the gathering buffer, and so does a process that opens the file
 * after the writer was killed without closing it.
 */
START_TEST(test_wal_gathered)
{
	struct store *st = open_ok("g.db", true);
	sqlite3 *reader = raw_open("g.db");
	int rows = 0, status;
	pid_t pid;

	for (int t = 0; t < 24; t++) {
		size_t size = t % 4 == 3 ? 9000 : 1100;

		ck_assert_msg(commit_batch(st, "g", rows, 32, size) == 0,
		    "commit %d: %s", t, store_errmsg(st));
		rows += 32;
		ck_assert_int_eq(int_of(reader, "SELECT count(*) FROM calls"),
		    rows);
		ck_assert_int_eq(int_of(reader, "SELECT count(*) FROM calls "
		    "WHERE length(transcription) > 1000 AND"
		    " instr(payload, transcription) > 0"), rows);
	}
	store_close(st);
	if ((pid = fork()) == 0) {
		st = open_ok("g.db", true);
		if (commit_batch(st, "k", 0, 32, 9000) == 0)
			raise(SIGKILL);
		_exit(1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status), "the child failed to commit");
	ck_assert_int_eq(int_of(reader, "SELECT count(*) FROM calls"),
	    rows + 32);
	ck_assert_str_eq(text_of(reader, "PRAGMA integrity_check"), "ok");
	sqlite3_close(reader);
}
END_TEST

/*
 * A full disk fails the commit whose frames do not fit, never a later
 * call: SQLite then publishes nothing, and every transaction that said it
 * committed is in the file. (Were the frames written out only when the
 * wal-index is updated, in xShmBarrier, which cannot fail, a commit would
 * succeed with its frames lost.)
 */
START_TEST(test_wal_full_disk)
{
	struct store *st;
	sqlite3 *reader;
	char mnt[PATH_MAX + 64], filler[PATH_MAX + 80];
	struct statvfs vfs;
	int committed = 0, error = 0, fd;

	snprintf(mnt, sizeof(mnt), "%s", path("full"));
	ck_assert_int_eq(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
		fprintf(stderr, "test_wal_full_disk: no mount here (%s), "
		    "skipped\n", strerror(errno));
		return;
	}
	st = open_ok("full/calls.db", false);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	fd = open(filler, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	/* Leave ~600 KB, for some tens of transactions. */
	ck_assert_int_eq(statvfs(mnt, &vfs), 0);
	ck_assert_int_eq(posix_fallocate(fd, 0,
	    (off_t)(vfs.f_bavail * vfs.f_frsize) - (600 << 10)), 0);
	close(fd);
	/* Small transactions, whose frames all fit in the buffer. */
	for (int t = 0; t < 100 && error == 0; t++)
		if ((error = commit_batch(st, "f", committed, 4, 1100)) == 0)
			committed += 4;
	ck_assert_msg(error != 0, "100 transactions fitted on a full disk");
	ck_assert_msg(strstr(store_errmsg(st), "disk is full") != NULL, "%s",
	    store_errmsg(st));
	ck_assert_int_gt(committed, 0);
	ck_assert_int_eq(unlink(filler), 0);
	reader = raw_open("full/calls.db");
	ck_assert_int_eq(int_of(reader, "SELECT count(*) FROM calls"),
	    committed);
	ck_assert_str_eq(text_of(reader, "PRAGMA integrity_check"), "ok");
	sqlite3_close(reader);
	store_close(st);
	reader = raw_open("full/calls.db");
	ck_assert_int_eq(int_of(reader, "SELECT count(*) FROM calls"),
	    committed);
	sqlite3_close(reader);
	umount2(mnt, MNT_DETACH);
}
END_TEST

/* A connection through walbuf.c, with a small page cache: it spills. */
static sqlite3 *
walbuf_open(const char *name)
{
	sqlite3 *db;

	ck_assert_ptr_nonnull(walbuf_register());
	ck_assert_int_eq(sqlite3_open_v2(path(name), &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, walbuf_register()), SQLITE_OK);
	exec_ok(db, "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;"
	    "CREATE TABLE t (x BLOB, y INTEGER UNIQUE);"
	    "INSERT INTO t VALUES (randomblob(100), 0);"
	    "PRAGMA cache_size = 6");
	return db;
}

#define SPILL_SQL							\
	"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c"	\
	" WHERE i < 12) INSERT INTO t SELECT randomblob(3000), i FROM c"

/*
 * A transaction whose spilled frames cannot be written out (a file size
 * limit at the WAL's size) and is rolled back must release the WAL's
 * write lock: walbuf.c once skipped the real unlock when its write-out
 * failed, and every other writer got "database is locked".
 */
START_TEST(test_walbuf_rollback_unlocks)
{
	sqlite3 *db = walbuf_open("a.db"), *other;
	struct rlimit was, lim;
	char wal[PATH_MAX + 128];
	struct stat sb;

	/* No index to read back: the spill stays gathered to the end. */
	exec_ok(db, "CREATE TABLE u (x BLOB); PRAGMA cache_size = 5");
	snprintf(wal, sizeof(wal), "%s-wal", path("a.db"));
	ck_assert_int_eq(stat(wal, &sb), 0);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &was), 0);
	lim = (struct rlimit){ (rlim_t)sb.st_size, was.rlim_max };
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	exec_ok(db, "BEGIN");
	(void)sqlite3_exec(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL "
	    "SELECT i + 1 FROM c WHERE i < 8) INSERT INTO u SELECT "
	    "randomblob(3500) FROM c", NULL, NULL, NULL);
	(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &was), 0);
	other = raw_open("a.db");
	ck_assert_int_eq(sqlite3_exec(other, "BEGIN IMMEDIATE; ROLLBACK", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	exec_ok(db, SPILL_SQL);		/* and the writer goes on */
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM t"), 13);
	sqlite3_close(db);
}
END_TEST

/*
 * Spilled frames whose write-out fails on a full disk in a later read:
 * SQLite was told they were written, and undoes only the statement that
 * read. The error must stick until the transaction ends, so that COMMIT
 * fails; it once went through, and the file was corrupt.
 */
START_TEST(test_walbuf_lost_spill_fails_commit)
{
	char mnt[PATH_MAX + 64], filler[PATH_MAX + 80], buf[65536];
	sqlite3 *db, *other;
	int fd;

	snprintf(mnt, sizeof(mnt), "%s", path("m"));
	ck_assert_int_eq(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") != 0) {
		fprintf(stderr, "test_walbuf_lost_spill_fails_commit: no mount "
		    "here (%s), skipped\n", strerror(errno));
		return;
	}
	db = walbuf_open("m/b.db");
	exec_ok(db, "BEGIN");
	exec_ok(db, SPILL_SQL);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	ck_assert_int_ge(fd = open(filler, O_WRONLY | O_CREAT, 0600), 0);
	memset(buf, 'x', sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	while (write(fd, buf, 512) > 0)
		;
	close(fd);
	ck_assert_int_ne(sqlite3_exec(db, "INSERT INTO t SELECT x, y + 1000 "
	    "FROM t", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(unlink(filler), 0);
	(void)sqlite3_exec(db, "INSERT INTO t VALUES (x'00', 5000)", NULL, NULL,
	    NULL);
	if (!sqlite3_get_autocommit(db))
		ck_assert_int_ne(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
		    SQLITE_OK);
	(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	other = raw_open("m/b.db");
	ck_assert_str_eq(text_of(other, "PRAGMA integrity_check"), "ok");
	ck_assert_int_le(int_of(other, "SELECT count(*) FROM t"), 2);
	sqlite3_close(other);
	sqlite3_close(db);
	umount2(mnt, MNT_DETACH);
}
END_TEST

/*
 * A restore by mv while the writer has the file open: the writer's WAL
 * goes into the file it belongs to, now under another name, and is
 * emptied at close, not left at the path to be replayed into the
 * restored file (which corrupted it).
 */
START_TEST(test_replaced_under_writer)
{
	struct store *st = open_ok("r.db", true);
	char file[PATH_MAX + 64];
	sqlite3 *db;

	sqlite3_backup *bk;

	ck_assert_int_eq(commit_batch(st, "r", 0, 32, 1100), 0);
	/* The backup, as callhook backup makes it: a WAL database. */
	db = raw_open("backup.db");
	bk = sqlite3_backup_init(db, "main", store_db(st), "main");
	ck_assert_ptr_nonnull(bk);
	ck_assert_int_eq(sqlite3_backup_step(bk, -1), SQLITE_DONE);
	sqlite3_backup_finish(bk);
	ck_assert_str_eq(text_of(db, "PRAGMA journal_mode"), "wal");
	sqlite3_close(db);
	for (int t = 1; t < 8; t++)
		ck_assert_int_eq(commit_batch(st, "r", 32 * t, 32, 1100), 0);
	/* mv r.db old.db; mv backup.db r.db (path() has one buffer) */
	snprintf(file, sizeof(file), "%s", path("r.db"));
	ck_assert_int_eq(rename(file, path("old.db")), 0);
	ck_assert_int_eq(rename(path("backup.db"), file), 0);
	ck_assert_int_eq(store_begin(st), -ESTALE);
	store_close(st);
	db = raw_open("r.db");
	ck_assert_str_eq(text_of(db, "PRAGMA integrity_check"), "ok");
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 32);
	sqlite3_close(db);
	db = raw_open("old.db");
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 256);
	sqlite3_close(db);
}
END_TEST

/*
 * A damaged file is the store's failure, not the event's: the put is
 * retried (-EAGAIN, for every event), not refused (which set each event
 * aside as if it were poison while the rest went into a damaged file),
 * the message names the file, and no later transaction is begun (events
 * that miss the damaged pages would go on into the file).
 */
START_TEST(test_corrupt_for_all)
{
	struct store *st = open_ok("c.db", false);
	sqlite3 *db = store_db(st);
	sqlite3_int64 root, page;
	char buf[4096], want[PATH_MAX + 200];
	enum store_outcome outcome;
	struct event ev;
	int fd;

	ck_assert_int_eq(commit_batch(st, "c", 0, 32, 1100), 0);
	root = int_of(db, "SELECT rootpage FROM sqlite_schema"
	    " WHERE name = 'calls_call_time'");
	page = int_of(db, "PRAGMA page_size");
	exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	store_close(st);
	/* The index's root page overwritten: garbage where a b-tree was. */
	memset(buf, 0x5a, sizeof(buf));
	ck_assert_int_ge(fd = open(path("c.db"), O_WRONLY), 0);
	ck_assert_int_eq(pwrite(fd, buf, (size_t)page, (root - 1) * page),
	    page);
	close(fd);
	st = open_ok("c.db", false);
	sample(&ev, "c-new", SAMPLE_BODY);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert(!store_damaged(st));
	ck_assert_int_eq(store_put(st, &ev, &outcome), -EAGAIN);
	ck_assert(store_failed_for_all(st) && store_damaged(st));
	snprintf(want, sizeof(want), "%s: database disk image is malformed;",
	    path("c.db"));
	ck_assert_msg(strncmp(store_errmsg(st), want, strlen(want)) == 0,
	    "%s", store_errmsg(st));
	store_rollback(st);
	/* And stays so: no later transaction writes into the file. */
	ck_assert_int_eq(store_begin(st), -EAGAIN);
	ck_assert(store_failed_for_all(st));
	ck_assert_msg(strncmp(store_errmsg(st), want, strlen(want)) == 0,
	    "%s", store_errmsg(st));
	store_close(st);
}
END_TEST

/*
 * A damaged full-text index fails only the events that touch it (a
 * revision of an indexed call), as the event's failure (set aside), with
 * the remedy; the store is not refused, new calls go on.
 */
START_TEST(test_corrupt_fts)
{
	struct store *st = open_ok("v.db", true);
	sqlite3 *db = store_db(st);
	char body2[] = "{\"event\":\"call_ended\",\"data\":{\"callSid\":"
	    "\"v1\",\"agent\":\"agent-2\"}}";
	enum store_outcome outcome;
	struct event ev;
	int error;

	sample(&ev, "v1", SAMPLE_BODY);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	index_all(st);
	exec_ok(db, "UPDATE calls_fts_data SET block = x'ffffffffffffffff'"
	    " WHERE id > 1");
	sample(&ev, "v1", body2);
	ev.transcription = "another transcript";
	error = store_put(st, &ev, &outcome);
	ck_assert_int_ne(error, 0);
	ck_assert_int_ne(error, -EAGAIN);
	ck_assert(!store_failed_for_all(st));
	ck_assert_msg(strstr(store_errmsg(st), "the full-text index is damaged")
	    != NULL && strstr(store_errmsg(st), "'rebuild'") != NULL, "%s",
	    store_errmsg(st));
	sample(&ev, "v2", SAMPLE_BODY);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	store_close(st);
}
END_TEST

/*
 * A writer leaves the -wal and -shm files behind (the WAL empty), so
 * that a reader who may not write the directory can open the file
 * while nothing else has it open.
 */
START_TEST(test_wal_files_kept)
{
	struct store *st = open_ok("kept.db", true);
	char name[PATH_MAX + 128], body[] = SAMPLE_BODY;
	struct event ev;
	struct stat sb;

	sample(&ev, "kept", body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	store_close(st);
	snprintf(name, sizeof(name), "%s-wal", path("kept.db"));
	ck_assert_int_eq(stat(name, &sb), 0);
	ck_assert_int_eq(sb.st_size, 0);
	snprintf(name, sizeof(name), "%s-shm", path("kept.db"));
	ck_assert_int_eq(stat(name, &sb), 0);
	/* As a user who can read the files and not write the directory. */
	if (geteuid() != 0 || tu_sh("command -v setpriv sqlite3 >/dev/null")
	    != 0)
		return;
	ck_assert_int_eq(tu_sh("chmod 755 %s && chmod 644 %s/kept.db*",
	    tmpdir, tmpdir), 0);
	ck_assert_int_eq(tu_sh("test \"$(setpriv --reuid=65534 --regid=65534 "
	    "--clear-groups sqlite3 -readonly %s 'SELECT count(*) FROM calls')\""
	    " = 1", path("kept.db")), 0);
}
END_TEST

/*
 * The next version is the one met in practice (callhookd upgraded, then
 * rolled back); 99 is one far off.
 */
static const int newer_versions[] = { STORE_SCHEMA_VERSION + 1, 99 };

START_TEST(test_newer_refused)
{
	struct store *st;
	sqlite3 *db;
	char err[256], want[4400], name[32], pragma[64];
	int v = newer_versions[_i];

	snprintf(name, sizeof(name), "calls-v%d.db", v);
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v);
	store_close(open_ok(name, true));
	db = raw_open(name);
	exec_ok(db, pragma);
	sqlite3_close(db);

	snprintf(want, sizeof(want), "%s has schema version %d, newer than "
	    "this program's %d; upgrade callhookd", path(name), v,
	    STORE_SCHEMA_VERSION);
	ck_assert_int_eq(try_open(&st, name, true, false, err,
	    sizeof(err)), -ENOTSUP);
	ck_assert_ptr_null(st);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(try_open(&st, name, true, true, err,
	    sizeof(err)), -ENOTSUP);
	ck_assert_str_eq(err, want);

	db = raw_open(name);
	ck_assert_int_eq(int_of(db, "PRAGMA user_version"), v);
	sqlite3_close(db);
}
END_TEST

/* The file opened by a writer, which migrates it. */
static struct store *
open_migrated(const char *name)
{
	struct store *st = open_ok(name, true);

	ck_assert_int_eq(int_of(store_db(st), "PRAGMA user_version"),
	    STORE_SCHEMA_VERSION);
	return st;
}

/* A version 1 file: its rows stay, calls_conversion goes. */
START_TEST(test_migrate_v1)
{
	struct store *st;
	struct event ev;
	sqlite3 *db;
	char body[] = SAMPLE_BODY;

	st = open_ok("calls.db", true);
	sample(&ev, "v1", body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	store_close(st);
	db = raw_open("calls.db");
	exec_ok(db, "CREATE INDEX calls_conversion ON calls"
	    "(conversion_status, call_time); PRAGMA user_version = 1");
	sqlite3_close(db);

	st = open_migrated("calls.db");
	db = store_db(st);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM sqlite_schema"
	    " WHERE name = 'calls_conversion'"), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"
	    " WHERE call_sid = 'v1'"), 1);
	store_close(st);
}
END_TEST

/* The bodies of the hand-edit tests: the store does not read them. */
static char first_body[] = SAMPLE_BODY;
static char second_body[] = "{\"second\":true}";
static char third_body[] = "{\"third\":true}";

/* Call sid at revision 2, its first body in call_revisions. */
static void
two_revisions(struct store *st, char *sid)
{
	struct event ev;

	sample(&ev, sid, first_body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	sample(&ev, sid, second_body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_REVISION);
}

/*
 * A call deleted by hand takes its revisions along (version 3): its
 * bodies, delivered again, are revisions 1 and 2 anew, where revision 1
 * once collided with the one left behind and every changed body failed.
 */
START_TEST(test_deleted_by_hand)
{
	struct store *st;
	sqlite3 *db;

	st = open_ok("calls.db", true);
	db = store_db(st);
	two_revisions(st, "h1");
	exec_ok(db, "DELETE FROM calls WHERE call_sid = 'h1'");
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM call_revisions"), 0);
	two_revisions(st, "h1");
	ck_assert_int_eq(int_of(db, "SELECT revision FROM calls"), 2);
	ck_assert_str_eq(text_of(db, "SELECT payload FROM call_revisions"
	    " WHERE revision = 1"), first_body);
	store_close(st);
}
END_TEST

/*
 * A payload changed by hand is saved as a revision and bumps the row's
 * own, so that the next changed body is a revision past both. It once
 * kept the row's number, and the next body's save collided with it.
 */
START_TEST(test_updated_by_hand)
{
	struct store *st;
	sqlite3 *db;
	struct event ev;

	st = open_ok("calls.db", true);
	db = store_db(st);
	two_revisions(st, "u1");
	exec_ok(db, "UPDATE calls SET payload = 'fixed' WHERE call_sid = 'u1'");
	ck_assert_int_eq(int_of(db, "SELECT revision FROM calls"), 3);
	sample(&ev, "u1", first_body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_REVISION);
	ck_assert_int_eq(int_of(db, "SELECT revision FROM calls"), 4);
	ck_assert_str_eq(text_of(db, "SELECT group_concat(revision || ':' ||"
	    " substr(payload, 1, 5)) FROM (SELECT * FROM call_revisions"
	    " ORDER BY revision)"), "1:{\"eve,2:{\"sec,3:fixed");
	store_close(st);
}
END_TEST

/*
 * Hand edits the triggers do not see leave a saved revision at or above
 * the row's own: a REPLACE (no delete trigger fires), a call renamed
 * and made again, a revision set back. The next changed body collided
 * with it for ever; now the row is numbered past them, and it is stored.
 */
START_TEST(test_renumbered_on_collision)
{
	static const char *const edits[] = {
		"REPLACE INTO calls (call_sid, event, payload, first_received_at,"
		" received_at) VALUES ('e1', 'call_ended', 'x',"
		" '2025-12-19T16:00:00.000Z', '2025-12-19T16:00:00.000Z')",
		"UPDATE calls SET call_sid = 'e1-renamed' WHERE call_sid = 'e1'",
		"UPDATE calls SET revision = 1 WHERE call_sid = 'e1'",
	};
	struct store *st;
	struct event ev;
	sqlite3 *db;

	/* No full-text index: a hand REPLACE leaves it behind, apart. */
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		st = open_ok("calls.db", false);
		db = store_db(st);
		exec_ok(db, "DELETE FROM calls; DELETE FROM call_revisions");
		two_revisions(st, "e1");
		exec_ok(db, edits[i]);
		sample(&ev, "e1", first_body);
		put_ok(st, &ev);	/* new, or a revision */
		sample(&ev, "e1", third_body);
		ck_assert_msg(put_ok(st, &ev) == STORE_REVISION, "%s",
		    edits[i]);
		ck_assert_int_gt(int_of(db, "SELECT revision FROM calls"
		    " WHERE call_sid = 'e1'"), int_of(db, "SELECT max(revision)"
		    " FROM call_revisions WHERE call_sid = 'e1'"));
		store_close(st);
	}
}
END_TEST

/*
 * A version 2 file with what hand edits left: revisions of a call gone,
 * of an earlier row of a call made anew, and one a hand update saved at
 * the row's own number. All are kept, and the row numbered past them;
 * the migration adds the triggers. Read-only, it is read as it is.
 */
START_TEST(test_migrate_v2)
{
	struct store *st;
	sqlite3 *db;

	st = open_ok("calls.db", true);
	two_revisions(st, "m1");
	store_close(st);
	db = raw_open("calls.db");
	exec_ok(db, "DROP TRIGGER calls_revisions_ad;"
	    "DROP TRIGGER calls_revision_bump;"
	    "INSERT INTO call_revisions VALUES ('gone', 1,"
	    " '2025-12-19T16:00:00.000Z', 'y');"
	    "INSERT INTO call_revisions VALUES ('m1', 7,"
	    " '2000-01-01T00:00:00.000Z', 'an earlier row');"
	    "INSERT INTO call_revisions SELECT call_sid, revision, received_at,"
	    " 'by hand' FROM calls WHERE call_sid = 'm1';"
	    "PRAGMA user_version = 2");
	sqlite3_close(db);

	/* Read as it is (callhook list, backup), before a daemon migrates. */
	ck_assert_int_eq(try_open(&st, "calls.db", true, true, NULL, 0), 0);
	ck_assert_int_eq(int_of(store_db(st), "SELECT count(*) FROM calls"), 1);
	store_close(st);
	db = raw_open("calls.db");
	ck_assert_int_eq(int_of(db, "PRAGMA user_version"), 2);
	sqlite3_close(db);

	st = open_migrated("calls.db");
	db = store_db(st);
	ck_assert_str_eq(text_of(db, "SELECT group_concat(call_sid || revision)"
	    " FROM (SELECT * FROM call_revisions ORDER BY call_sid, revision)"),
	    "gone1,m11,m12,m17");
	ck_assert_int_eq(int_of(db, "SELECT revision FROM calls"), 8);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM sqlite_schema"
	    " WHERE name IN ('calls_revisions_ad', 'calls_revision_bump')"),
	    2);
	store_close(st);
}
END_TEST

static void
assert_foreign(const char *name)
{
	struct store *st;
	char err[256], want[4400];

	snprintf(want, sizeof(want), "%s is not a callhookd database",
	    path(name));
	ck_assert_int_eq(try_open(&st, name, true, false, err, sizeof(err)),
	    -EINVAL);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(try_open(&st, name, true, true, err, sizeof(err)),
	    -EINVAL);
	ck_assert_str_eq(err, want);
}

START_TEST(test_foreign_refused)
{
	sqlite3 *db;
	FILE *f;

	db = raw_open("other.db");
	exec_ok(db, "CREATE TABLE foo (x)");
	sqlite3_close(db);
	assert_foreign("other.db");
	/* Refused before anything was written: still a rollback journal. */
	db = raw_open("other.db");
	ck_assert_str_eq(text_of(db, "PRAGMA journal_mode"), "delete");
	ck_assert_int_eq(int_of(db, "PRAGMA application_id"), 0);
	sqlite3_close(db);

	db = raw_open("app.db");
	exec_ok(db, "PRAGMA application_id = 42");
	sqlite3_close(db);
	assert_foreign("app.db");

	f = fopen(path("text.db"), "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not a database, but it is long enough to tell so.\n"
	    "this is not a database, but it is long enough to tell so.\n", f);
	fclose(f);
	assert_foreign("text.db");
}
END_TEST

START_TEST(test_readonly)
{
	struct store *st;
	struct event ev;
	enum store_outcome outcome;
	char err[256], want[4400];
	char body[] = SAMPLE_BODY;

	snprintf(want, sizeof(want), "%s: no such file", path("none.db"));
	ck_assert_int_eq(try_open(&st, "none.db", true, true, err,
	    sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(access(path("none.db"), F_OK), -1);

	st = open_ok("calls.db", true);
	sample(&ev, "ro1", body);
	put_ok(st, &ev);
	store_close(st);
	ck_assert_int_eq(try_open(&st, "calls.db", true, true, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(int_of(store_db(st), "SELECT count(*) FROM calls"),
	    1);
	/* SQLite takes the write lock lazily: the put is what fails. */
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_put(st, &ev, &outcome), -EAGAIN);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "readonly"));
	store_rollback(st);
	store_close(st);
}
END_TEST

/*
 * try_open() read-write of name, with target made unwritable (chattr +i
 * as root, whom modes do not stop; chmod ro_mode otherwise), refused
 * with the message want. Skipped, and said, where that cannot be done.
 */
static void
expect_unwritable(const char *target, const char *ro_mode,
    const char *rw_mode, const char *name, const char *want)
{
	bool root = geteuid() == 0;
	struct store *st = NULL;
	char err[1024];
	int rc;

	rc = root ? tu_sh("chattr +i '%s' 2>/dev/null", target) :
	    tu_sh("chmod %s '%s'", ro_mode, target);
	if (rc != 0) {
		fprintf(stderr, "test_unwritable: cannot make %s read-only "
		    "here, that part skipped\n", target);
		return;
	}
	rc = try_open(&st, name, true, false, err, sizeof(err));
	ck_assert_int_eq(root ? tu_sh("chattr -i '%s'", target) :
	    tu_sh("chmod %s '%s'", rw_mode, target), 0);
	ck_assert_int_ne(rc, 0);
	ck_assert_ptr_null(st);
	ck_assert_str_eq(err, want);
}

/*
 * A file or directory the writer cannot write is named, with why: SQLite
 * alone says "unable to open database file", or opens the file read-only
 * and says nothing until the first event.
 */
START_TEST(test_unwritable)
{
	const char *why = strerror(geteuid() == 0 ? EPERM : EACCES);
	char err[1024], want[3 * PATH_MAX], file[PATH_MAX + 64];
	struct store *st;

	snprintf(want, sizeof(want), "%s/no/calls.db: directory %s/no does "
	    "not exist; SQLite said: unable to open database file", tmpdir,
	    tmpdir);
	ck_assert_int_ne(try_open(&st, "no/calls.db", true, false, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(err, want);

	store_close(open_ok("calls.db", true));
	snprintf(file, sizeof(file), "%s", path("calls.db"));
	snprintf(want, sizeof(want), "%s: the file is not writable by uid %u "
	    "(%s)", file, (unsigned)geteuid(), why);
	expect_unwritable(file, "444", "644", "calls.db", want);
	/* SQLite creates -wal and -shm beside a new file. */
	ck_assert_int_eq(mkdir(path("ro"), 0755), 0);
	snprintf(file, sizeof(file), "%s", path("ro"));
	snprintf(want, sizeof(want), "%s/calls.db: directory %s is not "
	    "writable by uid %u (%s); SQLite said: unable to open database "
	    "file", file, file, (unsigned)geteuid(), why);
	expect_unwritable(file, "555", "755", "ro/calls.db", want);
	/* systemd's ProtectSystem=strict mounts most of the tree read-only. */
	ck_assert_int_eq(mkdir(path("m"), 0755), 0);
	snprintf(file, sizeof(file), "%s", path("m"));
	if (mount("tmpfs", file, "tmpfs", MS_RDONLY, "size=64k") == 0) {
		ck_assert_int_ne(try_open(&st, "m/calls.db", true, false, err,
		    sizeof(err)), 0);
		umount2(file, MNT_DETACH);
		snprintf(want, sizeof(want), "%s/calls.db: directory %s is on "
		    "a read-only file system; under systemd, ProtectSystem="
		    "strict leaves only the unit's StateDirectory= and "
		    "ReadWritePaths= writable; SQLite said: unable to open "
		    "database file", file, file);
		ck_assert_str_eq(err, want);
	} else
		fprintf(stderr, "test_unwritable: no mount here (%s), "
		    "read-only file system part skipped\n", strerror(errno));
}
END_TEST

START_TEST(test_rollback)
{
	struct store *st;
	struct event ev;
	struct reject rj;
	sqlite3 *db;
	char body[] = SAMPLE_BODY;

	st = open_ok("calls.db", true);
	db = store_db(st);
	sample(&ev, "rb1", body);
	memset(&rj, 0, sizeof(rj));
	snprintf(rj.time, sizeof(rj.time), "2025-12-19T16:01:08.000Z");
	rj.status = 401;
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_int_eq(store_put_reject(st, &rj), 0);
	store_rollback(st);
	ck_assert_int_eq(sqlite3_get_autocommit(db), 1);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM rejects"), 0);
	ck_assert_int_eq(matches(db, "callback"), 0);
	store_rollback(st);

	/* The same event afterwards is new again. */
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_commit(st), -EIO);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 1);
	store_close(st);
}
END_TEST

START_TEST(test_invalid_event)
{
	struct store *st;
	struct event ev;
	enum store_outcome outcome;
	sqlite3 *db;
	char body[] = SAMPLE_BODY;

	st = open_ok("calls.db", true);
	db = store_db(st);
	ck_assert_int_eq(store_begin(st), 0);
	sample(&ev, "ok1", body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);

	sample(&ev, NULL, body);
	ck_assert_int_eq(store_put(st, &ev, &outcome), -EINVAL);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "NOT NULL"));
	sample(&ev, "nobody", NULL);
	ck_assert_int_eq(store_put(st, &ev, &outcome), -EINVAL);
	sample(&ev, "nowhen", body);
	ev.received_at[0] = '\0';
	ck_assert_int_eq(store_put(st, &ev, &outcome), -EINVAL);

	/* The transaction survives a refused event. */
	sample(&ev, "ok2", body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 2);
	store_close(st);
}
END_TEST

START_TEST(test_busy)
{
	struct store *st;
	struct event ev;
	struct reject rj;
	enum store_outcome outcome;
	sqlite3 *other;
	char body[] = SAMPLE_BODY;

	st = open_ok("calls.db", true);
	sample(&ev, "b1", body);
	memset(&rj, 0, sizeof(rj));
	snprintf(rj.time, sizeof(rj.time), "2025-12-19T16:01:08.000Z");
	other = raw_open("calls.db");
	exec_ok(other, "BEGIN EXCLUSIVE");

	ck_assert_int_eq(store_begin(st), -EAGAIN);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "locked"));
	ck_assert_int_eq(store_put(st, &ev, &outcome), -EAGAIN);
	ck_assert_int_eq(store_put_reject(st, &rj), -EAGAIN);
	ck_assert_int_eq(sqlite3_get_autocommit(store_db(st)), 1);

	exec_ok(other, "COMMIT");
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(int_of(other, "SELECT count(*) FROM calls"), 1);
	sqlite3_close(other);
	store_close(st);
}
END_TEST

/*
 * A COMMIT that fails is retried from scratch, so it must not leave the
 * transaction open. A write statement still in progress makes COMMIT
 * return SQLITE_BUSY without a second process.
 */
START_TEST(test_commit_busy)
{
	struct store *st;
	struct event ev;
	sqlite3_stmt *pending;
	sqlite3 *db;
	char body[] = SAMPLE_BODY;

	st = open_ok("calls.db", true);
	db = store_db(st);
	sample(&ev, "c1", body);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO rejects"
	    " (time, status, reason) VALUES ('t', 0, 'r'), ('t', 0, 'r')"
	    " RETURNING id", -1, &pending, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(pending), SQLITE_ROW);
	ck_assert_int_eq(store_commit(st), -EAGAIN);
	ck_assert_int_eq(sqlite3_get_autocommit(db), 1);
	sqlite3_finalize(pending);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM calls"), 0);
	ck_assert_int_eq(int_of(db, "SELECT count(*) FROM rejects"), 0);
	store_close(st);
}
END_TEST

START_TEST(test_migrate_empty)
{
	struct store *st;
	struct event ev;
	char err[256];
	char body[] = SAMPLE_BODY;
	int fd;

	fd = open(path("empty.db"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	/* Read-only, there is nothing to read, and no migration to ask for. */
	ck_assert_int_eq(try_open(&st, "empty.db", true, true, err,
	    sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "is empty: callhookd has not "
	    "stored anything in it yet"));

	st = open_ok("empty.db", true);
	ck_assert_int_eq(int_of(store_db(st), "PRAGMA user_version"),
	    STORE_SCHEMA_VERSION);
	ck_assert_int_eq(int_of(store_db(st), "PRAGMA application_id"),
	    0x43484B44);
	sample(&ev, "m1", body);
	ck_assert_int_eq(put_ok(st, &ev), STORE_NEW);
	store_close(st);
}
END_TEST

Suite *
store_suite(void)
{
	Suite *s;
	TCase *tc;

	s = suite_create("store");
	tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_schema_new);
	tcase_add_test(tc, test_put_new);
	tcase_add_test(tc, test_put_nulls);
	tcase_add_test(tc, test_duplicate);
	tcase_add_test(tc, test_revision);
	tcase_add_test(tc, test_fts);
	tcase_add_test(tc, test_fts_pending);
	tcase_add_test(tc, test_fts_orphan_id);
	tcase_add_test(tc, test_fts_upgrade);
	tcase_add_test(tc, test_fts_toggle);
	tcase_add_test(tc, test_setup_waits_for_lock);
	tcase_add_test(tc, test_views);
	tcase_add_test(tc, test_rejects_trim);
	tcase_add_test(tc, test_wal_shrinks);
	tcase_add_test(tc, test_big_revision);
	tcase_add_test(tc, test_wal_gathered);
	tcase_add_test(tc, test_wal_full_disk);
	tcase_add_test(tc, test_walbuf_rollback_unlocks);
	tcase_add_test(tc, test_walbuf_lost_spill_fails_commit);
	tcase_add_test(tc, test_replaced_under_writer);
	tcase_add_test(tc, test_corrupt_for_all);
	tcase_add_test(tc, test_corrupt_fts);
	tcase_add_test(tc, test_wal_files_kept);
	tcase_add_loop_test(tc, test_newer_refused, 0,
	    (int)(sizeof(newer_versions) / sizeof(newer_versions[0])));
	tcase_add_test(tc, test_unwritable);
	tcase_add_test(tc, test_foreign_refused);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_rollback);
	tcase_add_test(tc, test_invalid_event);
	tcase_add_test(tc, test_run_rows);
	tcase_add_test(tc, test_run_taken);
	tcase_add_test(tc, test_run_refused);
	tcase_add_test(tc, test_run_random_ids);
	tcase_add_test(tc, test_run_txn_lost);
	tcase_add_test(tc, test_put_txn_lost);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_commit_busy);
	tcase_add_test(tc, test_migrate_empty);
	tcase_add_test(tc, test_migrate_v1);
	tcase_add_test(tc, test_migrate_v2);
	tcase_add_test(tc, test_deleted_by_hand);
	tcase_add_test(tc, test_updated_by_hand);
	tcase_add_test(tc, test_renumbered_on_collision);
	suite_add_tcase(s, tc);
	return s;
}

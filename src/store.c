/*
 * The SQLite file.
 *
 * store_open identifies the file by PRAGMA application_id, creates or
 * migrates it (one transaction, user_version set at its end), turns the
 * full-text index on or off, and prepares every statement the writer
 * needs, so that store_put does no parsing and no allocation of its own:
 * it binds the event's strings with SQLITE_STATIC and steps.
 *
 * History in call_revisions is kept by a trigger, and so is the
 * full-text index, so an operator's script cannot forget them.
 *
 * store_put starts with a plain INSERT, since nearly every event is new.
 * When the callSid is already there, an UPDATE counts a redelivery of
 * the same body (one index lookup and a memcmp); when it matches nothing,
 * the body is new, and INSERT ... ON CONFLICT DO UPDATE replaces the
 * fields, RETURNING revision. This relies on the write lock of
 * store_begin: in autocommit mode another process could change the row
 * between the statements.
 *
 * The full-text index is deferred. Indexing a 9 KB transcript costs FTS5
 * about four times what storing the whole row does, so a new row only
 * gets its id queued in fts_pending, and store_fts_index() indexes
 * queued rows in transactions of their own: the daemon's writer when no
 * event has arrived for a moment, callhook import at its end. calls_fts
 * reads its text through the view fts_source, which leaves out queued
 * rows, so FTS5's 'rebuild' (which also picks up rows inserted by hand)
 * and 'integrity-check' agree with the index while rows wait; the delete
 * and update triggers touch the index only for rows already in it. A
 * new index, or one made again, starts empty with every row queued.
 *
 * Why no trigger queues new rows, and why the plain INSERT first: a
 * statement that fires a trigger (or has RETURNING, which is one) runs
 * in a statement savepoint, whose journal took as long as the insert
 * itself, spilled to a temporary file per batch (bench/README.md).
 *
 * The writer has a faster way for the events of a batch:
 * store_put_run() writes up to 32 of them (and 128 KB of bodies) with
 * one INSERT of many rows. Its cursors stay open from row to row, and a
 * key that goes at the end of the table or of an index (an id, a time,
 * a callSid that sorts last) is placed without a search from the root:
 * for a short call, about 40 % fewer instructions than one INSERT each.
 * If any row cannot go in (its callSid is taken, or SQLite refuses it),
 * the statement undoes its own rows, from its statement journal (one
 * per run, not per row, kept in memory), and store_put() takes the
 * events one by one.
 */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "walbuf.h"

#define STORE_APPLICATION_ID	0x43484B44	/* 'CHKD' */
#define STORE_CACHE_KIB		4096	/* the writer appends: a few paths */
#define STORE_BUSY_DEFAULT_MS	5000
#define STORE_WAL_MAX_PAGES	16384	/* 64 MB: see store_wal_notify */
#define STORE_WAL_LIMIT_BYTES	(64LL << 20)	/* the WAL file kept */
#define STORE_STMTJRNL_KIB	127	/* under 128: see configure_library */
#define ROW_PARAMS		25	/* ?1..?25: bind_key, bind_fields */
#define RUN_SIZES		5	/* runs of 2, 4, 8, 16, 32 rows */
#define RUN_BYTES		(128 * 1024)	/* of bodies: see run_size */
#define nitems(a)		(sizeof(a) / sizeof((a)[0]))
_Static_assert(2 << (RUN_SIZES - 1) == STORE_RUN_MAX, "run sizes");
#ifndef SQLITE_DEFAULT_WAL_AUTOCHECKPOINT
#define SQLITE_DEFAULT_WAL_AUTOCHECKPOINT 1000
#endif

struct store {
	sqlite3		*db;
	bool		 sync_full;
	void		(*wal_fn)(void *, int);	/* see store_wal_notify */
	void		*wal_arg;
	sqlite3_stmt	*dup;
	sqlite3_stmt	*insert;
	sqlite3_stmt	*run[RUN_SIZES];	/* see store_put_run */
	sqlite3_stmt	*max_id;
	sqlite3_stmt	*fts_queue;	/* these five NULL with fts off */
	sqlite3_stmt	*fts_queue_run;
	sqlite3_stmt	*fts_index;
	sqlite3_stmt	*fts_dequeue;
	sqlite3_stmt	*fts_count;
	int64_t		 fts_backlog;	/* rows in fts_pending, as far as
					   this connection knows */
	int64_t		 txn_new;	/* rows inserted by this transaction */
	sqlite3_stmt	*upsert;
	sqlite3_stmt	*renumber;
	sqlite3_stmt	*reject;
	sqlite3_stmt	*trim;
	sqlite3_stmt	*begin;
	sqlite3_stmt	*commit;
	sqlite3_stmt	*rollback;
	char		 err[512];
	bool		 locked_out;	/* the last failure: a lock held by
					   another connection */
	bool		 for_all;	/* the last failure: the store's
					   state, whatever is written */
	bool		 damaged;	/* SQLite found the file corrupt */
	struct side_file {		/* a writer's -wal and -shm, */
		bool	 known;		/* as opened */
		dev_t	 dev;
		ino_t	 ino;
	}		 side[2];
	int		 migrated_from;	/* store_migrated_from() */
	int		 busy_ms;	/* as opened */
	int		 busy_now_ms;	/* store_limit_lock_wait */
};

/*
 * migrations[v] takes a file from user_version v to v + 1. Schema text is
 * parsed by every reader of the file, so it sticks to SQL that old SQLite
 * versions understand (json_extract, not ->>).
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE calls ("
	" id INTEGER PRIMARY KEY,"	/* stable rowid for calls_fts */
	" call_sid TEXT NOT NULL UNIQUE,"
	" event TEXT NOT NULL,"
	" call_type TEXT,"
	" agent_id TEXT,"
	" version_id TEXT,"
	" from_number TEXT,"
	" to_number TEXT,"
	" recording_url TEXT,"
	" call_duration REAL,"
	" call_time TEXT,"
	" transcription TEXT,"
	" batch_id TEXT,"
	" hangup_reason TEXT,"
	" call_metadata TEXT,"
	" try_count INTEGER,"
	" post_call TEXT,"
	" post_call_detail TEXT,"
	" functions_called TEXT,"
	" disposition_reason TEXT,"
	" conversion_status INTEGER,"
	" next_call_scheduled INTEGER,"
	" call_link TEXT,"
	" payload TEXT NOT NULL,"
	" first_received_at TEXT NOT NULL,"
	" received_at TEXT NOT NULL,"
	" deliveries INTEGER NOT NULL DEFAULT 1,"
	" revision INTEGER NOT NULL DEFAULT 1,"
	" remote_addr TEXT);"
	"CREATE INDEX calls_call_time ON calls(call_time);"
	"CREATE INDEX calls_received_at ON calls(received_at);"
	/*
	 * For callhook's filters: ending in call_time, they give "newest
	 * first" without a sort. calls_agent_id also covers what stats
	 * reads, so stats --by agent scans it, not the table.
	 */
	"CREATE INDEX calls_agent_id ON calls(agent_id, call_time,"
	" call_duration, conversion_status, next_call_scheduled,"
	" functions_called);"
	"CREATE INDEX calls_batch_id ON calls(batch_id, call_time);"
	"CREATE INDEX calls_hangup_reason ON calls(hangup_reason, call_time);"
	"CREATE INDEX calls_conversion ON calls(conversion_status, call_time);"
	"CREATE INDEX calls_to_number ON calls(to_number, call_time);"
	"CREATE INDEX calls_from_number ON calls(from_number, call_time);"
	"CREATE TABLE call_revisions ("
	" call_sid TEXT NOT NULL,"
	" revision INTEGER NOT NULL,"
	" received_at TEXT NOT NULL,"
	" payload TEXT NOT NULL,"
	" PRIMARY KEY (call_sid, revision));"
	"CREATE TRIGGER calls_revision AFTER UPDATE OF payload ON calls"
	" WHEN old.payload IS NOT new.payload BEGIN"
	" INSERT INTO call_revisions (call_sid, revision, received_at, payload)"
	" VALUES (old.call_sid, old.revision, old.received_at, old.payload);"
	" END;"
	/* Refused bodies may be invalid UTF-8, hence BLOB. */
	"CREATE TABLE rejects ("
	" id INTEGER PRIMARY KEY,"
	" time TEXT NOT NULL,"
	" remote_addr TEXT,"
	" status INTEGER NOT NULL,"
	" reason TEXT NOT NULL,"
	" body BLOB);"
	"CREATE INDEX rejects_time ON rejects(time);"
	/* The type guards turn odd entries into NULLs, not "malformed JSON". */
	"CREATE VIEW call_functions (call_sid, name, success, timestamp) AS"
	" SELECT c.call_sid,"
	" CASE WHEN f.type = 'object' THEN json_extract(f.value, '$.name') END,"
	" CASE WHEN f.type = 'object'"
	"  THEN json_extract(f.value, '$.success') END,"
	" CASE WHEN f.type = 'object'"
	"  THEN json_extract(f.value, '$.timestamp') END"
	" FROM calls AS c, json_each(CASE WHEN json_valid(c.functions_called)"
	"  THEN c.functions_called END) AS f;"
	"CREATE VIEW call_post_fields (call_sid, field, value, comment) AS"
	" SELECT c.call_sid, p.key,"
	" CASE WHEN p.type = 'object' THEN json_extract(p.value, '$.value') END,"
	" CASE WHEN p.type = 'object'"
	"  THEN json_extract(p.value, '$.comment') END"
	" FROM calls AS c, json_each(CASE WHEN json_valid(c.post_call_detail)"
	"  THEN c.post_call_detail END) AS p;",
	/*
	 * 1 -> 2: conversion_status has two values, so callhook's
	 * --converted finds its newest matches walking calls_call_time;
	 * the index cost every insert about 7 % of the store's work.
	 */
	"DROP INDEX IF EXISTS calls_conversion;",
	/*
	 * 2 -> 3: every saved revision of a call is below its row's own,
	 * or its next changed body collides with one (UNIQUE constraint
	 * failed; upsert() now renumbers the row then). A row deleted by
	 * hand left its revisions behind; they go with the row now, as
	 * prune's do. A payload changed by hand was saved at the row's own
	 * number; the row's revision goes up with it now. Rows edited so
	 * before are numbered past their revisions; no saved body is
	 * dropped, not even of a row gone (a clock stepped back can make a
	 * row's own revision look older than its first delivery).
	 */

	"UPDATE calls SET revision = 1 + (SELECT max(r.revision)"
	" FROM call_revisions AS r WHERE r.call_sid = calls.call_sid)"
	" WHERE revision <= (SELECT max(r.revision) FROM call_revisions AS r"
	" WHERE r.call_sid = calls.call_sid);"
	"CREATE TRIGGER IF NOT EXISTS calls_revisions_ad"
	" AFTER DELETE ON calls BEGIN"
	" DELETE FROM call_revisions WHERE call_sid = old.call_sid;"
	" END;"
	"CREATE TRIGGER IF NOT EXISTS calls_revision_bump"
	" AFTER UPDATE OF payload ON calls"
	" WHEN old.payload IS NOT new.payload"
	" AND new.revision = old.revision BEGIN"
	" UPDATE calls SET revision = old.revision + 1 WHERE id = new.id;"
	" END;",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
    STORE_SCHEMA_VERSION, "one migration per schema version");

/*
 * The full-text index is not part of the schema version: it exists exactly
 * when the writer runs with fts on. Dropping first makes creation
 * idempotent, repairs a half-removed index, and replaces the layout of
 * earlier versions (content='calls', indexed by store_put or by the
 * trigger calls_fts_ai).
 */
#define FTS_DROP							\
	"DROP TRIGGER IF EXISTS calls_fts_ai;"				\
	"DROP TRIGGER IF EXISTS calls_fts_ad;"				\
	"DROP TRIGGER IF EXISTS calls_fts_au;"				\
	"DROP TABLE IF EXISTS calls_fts;"				\
	"DROP VIEW IF EXISTS fts_source;"				\
	"DROP TABLE IF EXISTS fts_pending;"

static const char fts_off_sql[] = FTS_DROP;

/* True in a trigger body when the row old.id is in the index. */
#define OLD_INDEXED							\
	" NOT EXISTS (SELECT 1 FROM fts_pending WHERE id = old.id)"

/*
 * Which characters make words: unicode61's default, letters, numbers and
 * private-use ones, split Hindi words at every vowel sign (a mark):
 * "है" matched "हूँ", indexed as "ह". With marks, the remove_diacritics
 * folding still takes "cafe" to match "café", composed or not.
 */
#define FTS_CATEGORIES	"''L* N* Co M*''"

static const char fts_on_sql[] = FTS_DROP
	"CREATE TABLE fts_pending (id INTEGER PRIMARY KEY);"
	"CREATE VIEW fts_source AS"
	" SELECT id, transcription, disposition_reason FROM calls AS c"
	" WHERE NOT EXISTS (SELECT 1 FROM fts_pending AS p WHERE p.id = c.id);"
	"CREATE VIRTUAL TABLE calls_fts USING fts5("
	" transcription, disposition_reason,"
	" content='fts_source', content_rowid='id',"
	" tokenize='unicode61 remove_diacritics 2 categories " FTS_CATEGORIES
	"');"
	"CREATE TRIGGER calls_fts_ad AFTER DELETE ON calls BEGIN"
	" INSERT INTO calls_fts (calls_fts, rowid, transcription,"
	"  disposition_reason)"
	" SELECT 'delete', old.id, old.transcription, old.disposition_reason"
	" WHERE" OLD_INDEXED ";"
	" DELETE FROM fts_pending WHERE id = old.id;"
	" END;"
	/*
	 * A redelivery of the same text must not churn the index; a queued
	 * row is indexed later with whatever text it has then.
	 */
	"CREATE TRIGGER calls_fts_au"
	" AFTER UPDATE OF id, transcription, disposition_reason ON calls"
	" WHEN old.id IS NOT new.id"
	"  OR old.transcription IS NOT new.transcription"
	"  OR old.disposition_reason IS NOT new.disposition_reason BEGIN"
	" INSERT INTO calls_fts (calls_fts, rowid, transcription,"
	"  disposition_reason)"
	" SELECT 'delete', old.id, old.transcription, old.disposition_reason"
	" WHERE" OLD_INDEXED ";"
	" INSERT INTO calls_fts (rowid, transcription, disposition_reason)"
	" SELECT new.id, new.transcription, new.disposition_reason"
	" WHERE" OLD_INDEXED ";"
	" UPDATE fts_pending SET id = new.id WHERE id = old.id;"
	" END;"
	/*
	 * Filled after the fact, as new rows are: a 'rebuild' here held up
	 * the start (a million long calls take minutes; systemd gives 90 s).
	 */
	"INSERT INTO fts_pending (id) SELECT id FROM calls;";

/*
 * FTS_OBJECTS when the index is as fts_on_sql makes it, 0 when it is
 * gone; anything else, such as an index of an earlier version (its
 * content read straight from calls, or words cut at marks), is made
 * again.
 */
#define FTS_OBJECTS	5
static const char fts_count_sql[] =
	"SELECT count(*) - 10 * (SELECT count(*) FROM sqlite_schema"
	"  WHERE name = 'calls_fts' AND (sql LIKE '%content=''calls''%'"
	"  OR sql NOT LIKE '%categories%'))"
	" FROM sqlite_schema WHERE name IN ('calls_fts',"
	" 'calls_fts_ad', 'calls_fts_au', 'fts_pending', 'fts_source')";

/*
 * Parameters shared by dup and upsert: ?1 call_sid, ?2 payload,
 * ?3 received_at, ?4 remote_addr (not dup's). The upsert adds the text fields as
 * ?5..?21 (see bind_fields) and the numbers as ?22..?25.
 */
static const char dup_sql[] =
	"UPDATE calls SET deliveries = deliveries + 1, received_at = ?3"
	" WHERE call_sid = ?1 AND payload = ?2";
/*
 * For import, which SPEC makes idempotent: a file that holds two bodies
 * of a call would otherwise add two revisions at every import.
 */
static const char dup_known_sql[] =
	"UPDATE calls SET deliveries = deliveries + 1, received_at = ?3"
	" WHERE call_sid = ?1 AND (payload = ?2 OR EXISTS (SELECT 1"
	" FROM call_revisions r WHERE r.call_sid = ?1 AND r.payload = ?2))";

#define INSERT_SQL							\
	"INSERT INTO calls (call_sid, event, call_type, agent_id, version_id,"\
	" from_number, to_number, recording_url, call_duration, call_time,"	\
	" transcription, batch_id, hangup_reason, call_metadata, try_count,"	\
	" post_call, post_call_detail, functions_called, disposition_reason,"	\
	" conversion_status, next_call_scheduled, call_link, payload,"	\
	" first_received_at, received_at, deliveries, revision, remote_addr)"	\
	" VALUES (?1, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?22, ?12, ?13, ?14, ?15,"	\
	" ?16, ?23, ?17, ?18, ?19, ?20, ?24, ?25, ?21, ?2, ?3, ?3, 1, 1, ?4)"

static const char insert_sql[] = INSERT_SQL;

/*
 * One statement for the whole chunk: FTS5 (3.40) writes its pending terms
 * out as a segment at every statement savepoint, so row-by-row INSERTs
 * from a trigger would make a segment per row.
 */
/*
 * Both statements take the same ids, the first ?1 in the queue: an id
 * whose row is gone (a REPLACE by hand fires no delete trigger) must not
 * shift the two apart, or a row would be indexed and stay queued, and be
 * indexed again.
 */
static const char fts_index_sql[] =
	"INSERT INTO calls_fts (rowid, transcription, disposition_reason)"
	" SELECT c.id, c.transcription, c.disposition_reason FROM calls AS c"
	" WHERE c.id IN (SELECT id FROM fts_pending ORDER BY id LIMIT ?1)";

static const char fts_queue_sql[] =
	"INSERT INTO fts_pending (id) VALUES (?1)";

/* After a run of new rows, all of them: only the writer adds rows. */
static const char fts_queue_run_sql[] =
	"INSERT INTO fts_pending (id) SELECT id FROM calls WHERE id > ?1";

static const char max_id_sql[] = "SELECT max(id) FROM calls";

static const char fts_dequeue_sql[] =
	"DELETE FROM fts_pending WHERE id IN"
	" (SELECT id FROM fts_pending ORDER BY id LIMIT ?1)";

static const char fts_count_pending_sql[] =
	"SELECT count(*) FROM fts_pending";

static const char upsert_sql[] = INSERT_SQL
	" ON CONFLICT (call_sid) DO UPDATE SET"
	" event = excluded.event,"
	" call_type = excluded.call_type,"
	" agent_id = excluded.agent_id,"
	" version_id = excluded.version_id,"
	" from_number = excluded.from_number,"
	" to_number = excluded.to_number,"
	" recording_url = excluded.recording_url,"
	" call_duration = excluded.call_duration,"
	" call_time = excluded.call_time,"
	" transcription = excluded.transcription,"
	" batch_id = excluded.batch_id,"
	" hangup_reason = excluded.hangup_reason,"
	" call_metadata = excluded.call_metadata,"
	" try_count = excluded.try_count,"
	" post_call = excluded.post_call,"
	" post_call_detail = excluded.post_call_detail,"
	" functions_called = excluded.functions_called,"
	" disposition_reason = excluded.disposition_reason,"
	" conversion_status = excluded.conversion_status,"
	" next_call_scheduled = excluded.next_call_scheduled,"
	" call_link = excluded.call_link,"
	" payload = excluded.payload,"
	" received_at = excluded.received_at,"
	" deliveries = deliveries + 1,"
	" revision = revision + 1,"
	" remote_addr = excluded.remote_addr"
	" RETURNING revision";

/*
 * Number call ?1's row past its saved revisions. Schema 3's triggers
 * keep it there, but a hand edit (a REPLACE, a call renamed, a revision
 * set back) can leave a saved one at or above it, and the next changed
 * body's save would then collide with it for ever (upsert()).
 */
static const char renumber_sql[] =
	"UPDATE calls SET revision = 1 + (SELECT max(revision)"
	" FROM call_revisions WHERE call_sid = ?1)"
	" WHERE call_sid = ?1 AND revision <= (SELECT max(revision)"
	" FROM call_revisions WHERE call_sid = ?1)";

static const char reject_sql[] =
	"INSERT INTO rejects (time, remote_addr, status, reason, body)"
	" VALUES (?1, ?2, ?3, ?4, ?5)";

static const char trim_sql[] = "DELETE FROM rejects WHERE id <= ?1";


static void	 seterr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

bool
store_transient(int sqlite_rc)
{
	switch (sqlite_rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
	case SQLITE_NOMEM:
		return true;
	default:
		return false;
	}
}

/*
 * Keep SQLite's message now: the reset or rollback that follows replaces
 * it. Returns -EAGAIN for a transient rc, else permanent.
 */
static int
fail(struct store *st, int rc, int permanent)
{
	if (rc == SQLITE_CORRUPT_VTAB) {
		/* Derived data: the event is set aside, the rest goes on. */
		st->locked_out = st->for_all = false;
		seterr(st->err, sizeof(st->err), "%s: the full-text index is "
		    "damaged (%s); rebuild it with: sqlite3 FILE \"INSERT INTO "
		    "calls_fts (calls_fts) VALUES ('rebuild')\"",
		    sqlite3_db_filename(st->db, "main"),
		    sqlite3_errmsg(st->db));
		return permanent;
	}
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		st->locked_out = st->for_all = true;
		break;
	case SQLITE_FULL:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_NOMEM:
	case SQLITE_PROTOCOL:
		st->locked_out = false;
		st->for_all = true;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		/*
		 * The file is damaged, not the event: writing more into it
		 * would only add rows that may not read back. From now on
		 * every transaction is refused (store_begin) and events are
		 * kept and retried, as on a full disk, until an operator
		 * restores the file and restarts.
		 */
		st->locked_out = false;
		st->for_all = st->damaged = true;
		seterr(st->err, sizeof(st->err), "%s: %s; nothing more is "
		    "written to it until it is restored and opened again "
		    "(PRAGMA integrity_check says what is damaged)",
		    sqlite3_db_filename(st->db, "main"),
		    sqlite3_errmsg(st->db));
		return -EAGAIN;
	default:
		st->locked_out = st->for_all = false;
	}
	seterr(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
	return store_transient(rc) ? -EAGAIN : permanent;
}

/*
 * fail() for a statement that ran inside a transaction (in_txn, taken
 * before the step). Most errors undo the statement only, but some (an
 * interrupt, a corrupt page met while undoing it) end the whole
 * transaction, and what the batch wrote before is gone with it: only a
 * retry of the batch is right then.
 */
static int
fail_in_txn(struct store *st, bool in_txn, int rc, int permanent)
{
	int error = fail(st, rc, permanent);

	return in_txn && sqlite3_get_autocommit(st->db) ? -EAGAIN : error;
}

/* The same, for store_open: the operator needs the file's name. */
static int
open_fail(struct store *st, const struct store_options *opt, int rc,
    const char *what)
{
	seterr(st->err, sizeof(st->err), "%s: %s%s", opt->path, what,
	    sqlite3_errmsg(st->db));
	return store_transient(rc) ? -EAGAIN : -EIO;
}

/* Step a statement that returns no row, and reset it. */
static int
step_done(struct store *st, sqlite3_stmt *stmt, int permanent)
{
	bool in_txn = !sqlite3_get_autocommit(st->db);
	int error = 0, rc;

	rc = sqlite3_step(stmt);
	if (rc != SQLITE_DONE)
		error = fail_in_txn(st, in_txn, rc, permanent);
	sqlite3_reset(stmt);
	return error;
}

static int
query_int(sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW)
		goto fail;
	*out = sqlite3_column_int(stmt, 0);
	rc = SQLITE_OK;
 fail:
	sqlite3_finalize(stmt);
	return rc;
}

/* SQLite compares the path's inode with the open file's. */
static bool
file_moved(struct store *st)
{
	int moved = 0;

	return sqlite3_file_control(st->db, "main", SQLITE_FCNTL_HAS_MOVED,
	    &moved) == SQLITE_OK && moved;
}

/*
 * The same for the -wal and -shm files, as they were once the store was
 * open. Commits go on into a removed WAL, which no reader finds and which
 * a kill -9 takes with them (a clean stop still copies it into the
 * database through its descriptor). Without the -shm the next process to
 * open the database makes a new one, blind to the daemon's WAL index and
 * locks: its readers may read a WAL the daemon is rewriting, and its
 * writes (callhook import) go where the daemon's do, damaging the file.
 * SQLite's own check covers the database file only, and the -wal and
 * -shm stay the same files while the daemon's connections keep them open
 * (and, with SQLITE_FCNTL_PERSIST_WAL, after).
 */
static const char *const side_suffix[] = { "-wal", "-shm" };

static void
note_side_files(struct store *st)
{
	char path[PATH_MAX];
	struct stat sb;

	for (size_t i = 0; i < nitems(st->side); i++) {
		st->side[i].known = snprintf(path, sizeof(path), "%s%s",
		    sqlite3_db_filename(st->db, "main"), side_suffix[i]) <
		    (int)sizeof(path) && stat(path, &sb) == 0;
		if (st->side[i].known) {
			st->side[i].dev = sb.st_dev;
			st->side[i].ino = sb.st_ino;
		}
	}
}

/* The first of the -wal and -shm files removed or replaced, or NULL. */
static const char *
side_file_moved(struct store *st)
{
	char path[PATH_MAX];
	struct stat sb;

	for (size_t i = 0; i < nitems(st->side); i++) {
		if (!st->side[i].known)
			continue;
		snprintf(path, sizeof(path), "%s%s",
		    sqlite3_db_filename(st->db, "main"), side_suffix[i]);
		if (stat(path, &sb) == -1 ? errno == ENOENT :
		    sb.st_dev != st->side[i].dev ||
		    sb.st_ino != st->side[i].ino)
			return side_suffix[i];
	}
	return NULL;
}

/*
 * The -shm removed or replaced, the -wal still in place: another process
 * may since have written through a new -shm, blind to this connection's
 * WAL index, and a checkpoint by that stale index would copy its frames
 * over the wrong pages, cut the file to the old size and empty the WAL
 * that holds its commits. No checkpoint then: ours are in the WAL too,
 * and the next open rebuilds the index from it.
 */
static bool
shm_moved(struct store *st)
{
	const char *side = side_file_moved(st);

	return side != NULL && strcmp(side, "-shm") == 0;
}

/*
 * Still the file at its path? One removed or replaced (a restore by mv,
 * say) would take every later commit to a file nobody can open: a 200
 * for an event that is gone. -ESTALE then, for as long as it lasts.
 */
static int
check_file(struct store *st)
{
	const char *path = sqlite3_db_filename(st->db, "main"), *side;

	if (file_moved(st)) {
		seterr(st->err, sizeof(st->err), "%s was removed or replaced "
		    "since it was opened; the file now at that path is used "
		    "once it is opened again", path);
		return -ESTALE;
	}
	if ((side = side_file_moved(st)) != NULL) {
		seterr(st->err, sizeof(st->err), "%s%s was removed or "
		    "replaced while in use; restart callhookd (%s)", path,
		    side, strcmp(side, "-shm") == 0 ? "the WAL keeps what it "
		    "holds, and the next start applies it" : "a clean stop "
		    "copies what the WAL holds into the database");
		return -ESTALE;
	}
	return 0;
}

static int
open_db(struct store *st, const struct store_options *opt)
{
	struct stat sb;
	int flags, rc, ms, saved;

	flags = SQLITE_OPEN_NOMUTEX;
	if (opt->readonly) {
		/* SQLite would only say "unable to open database file". */
		if (stat(opt->path, &sb) == -1) {
			saved = errno;
			seterr(st->err, sizeof(st->err), "%s: %s", opt->path,
			    saved == ENOENT ? "no such file" : strerror(saved));
			return -saved;
		}
		flags |= SQLITE_OPEN_READONLY;
	} else
		flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

	/* Writers gather a transaction's WAL frames (walbuf.c). */
	rc = sqlite3_open_v2(opt->path, &st->db, flags,
	    opt->readonly ? NULL : walbuf_register());
	if (rc != SQLITE_OK) {
		saved = st->db != NULL ? sqlite3_system_errno(st->db) : 0;
		seterr(st->err, sizeof(st->err), "%s: %s%s%s", opt->path,
		    sqlite3_errmsg(st->db), saved != 0 ? ": " : "",
		    saved != 0 ? strerror(saved) : "");
		if (saved != 0)
			return -saved;
		return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
	}
	sqlite3_extended_result_codes(st->db, 1);
	ms = opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms :
	    STORE_BUSY_DEFAULT_MS;
	sqlite3_busy_timeout(st->db, ms);
	st->busy_ms = st->busy_now_ms = ms;
	return 0;
}

void
store_limit_lock_wait(struct store *st, int ms)
{
	if (ms < 0 || ms > st->busy_ms)
		ms = st->busy_ms;
	if (ms != st->busy_now_ms)
		sqlite3_busy_timeout(st->db, ms);
	st->busy_now_ms = ms;
}

/*
 * Why path cannot be written, when its directory or itself says so: a
 * failed open or first write only gets SQLite's "unable to open database
 * file" or "attempt to write a readonly database", often with the errno
 * of its read-only retry. SQLite also creates path-wal and path-shm
 * beside the file, so the directory must be writable too.
 */
bool
store_cannot_write(const char *path, char *why, size_t len)
{
	char copy[PATH_MAX], name[PATH_MAX + 16], *dir;
	const char *what = "the file";
	struct stat sb;
	int saved;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return false;
	dir = dirname(copy);
	if (stat(dir, &sb) == -1) {
		saved = errno;
		if (saved == ENOENT)
			snprintf(why, len, "directory %s does not exist", dir);
		else
			snprintf(why, len, "directory %s: %s", dir,
			    strerror(saved));
		return true;
	}
	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == -1) {
		snprintf(name, sizeof(name), "directory %s", dir);
		what = name;
	} else if (faccessat(AT_FDCWD, path, F_OK, AT_EACCESS) == -1 ||
	    faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) == 0)
		return false;
	saved = errno;
	if (saved == EROFS)
		snprintf(why, len, "%s is on a read-only file system; under "
		    "systemd, ProtectSystem=strict leaves only the unit's "
		    "StateDirectory= and ReadWritePaths= writable", what);
	else
		snprintf(why, len, "%s is not writable by uid %u (%s)", what,
		    (unsigned)geteuid(), strerror(saved));
	return true;
}

/*
 * Refuse a file that is not ours or is too new, and tell the schema
 * version. A file with neither our application_id nor any table is new.
 */
static int
check_identity(struct store *st, const struct store_options *opt,
    int *version)
{
	int appid = 0, objects = 0, rc;

	rc = query_int(st->db, "PRAGMA application_id", &appid);
	if (rc == SQLITE_OK)
		rc = query_int(st->db, "PRAGMA user_version", version);
	if (rc == SQLITE_OK)
		rc = query_int(st->db, "SELECT count(*) FROM sqlite_schema",
		    &objects);
	if ((rc & 0xff) != SQLITE_NOTADB && rc != SQLITE_OK)
		return open_fail(st, opt, rc, "");
	if ((rc & 0xff) == SQLITE_NOTADB || (appid != STORE_APPLICATION_ID &&
	    (appid != 0 || objects != 0))) {
		seterr(st->err, sizeof(st->err),
		    "%s is not a callhookd database", opt->path);
		return -EINVAL;
	}
	if (*version > STORE_SCHEMA_VERSION) {
		seterr(st->err, sizeof(st->err), "%s has schema version %d, "
		    "newer than this program's %d; upgrade callhookd",
		    opt->path, *version, STORE_SCHEMA_VERSION);
		return -ENOTSUP;
	}
	if (objects == 0 && opt->readonly) {
		seterr(st->err, sizeof(st->err), "%s is empty: callhookd has "
		    "not stored anything in it yet", opt->path);
		return -ENOENT;
	}
	/*
	 * An older file is read as it is: no version changed a table, and
	 * a backup or a look must work before the daemon's restart has
	 * migrated it. A writer migrates it.
	 */
	return 0;
}

/* Bring the schema to STORE_SCHEMA_VERSION in one transaction. */
static int
migrate(struct store *st, const struct store_options *opt)
{
	char sql[128];
	int error, rc, version;

	rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return open_fail(st, opt, rc, "");
	/* Another process may have migrated it since we looked. */
	error = check_identity(st, opt, &version);
	if (error != 0)
		goto fail;
	for (int v = version; v < STORE_SCHEMA_VERSION && rc == SQLITE_OK; v++)
		rc = sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA application_id = %d;"
		    "PRAGMA user_version = %d", STORE_APPLICATION_ID,
		    STORE_SCHEMA_VERSION);
		rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		st->migrated_from = version;
		return 0;
	}
	error = open_fail(st, opt, rc, "schema migration failed: ");
 fail:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return error;
}

int
store_migrated_from(const struct store *st)
{
	return st->migrated_from;
}

/* Create or drop calls_fts to match opt->fts. */
static int
sync_fts(struct store *st, const struct store_options *opt)
{
	int error, have, rc;

	rc = query_int(st->db, fts_count_sql, &have);
	if (rc != SQLITE_OK)
		return open_fail(st, opt, rc, "");
	if (have == (opt->fts ? FTS_OBJECTS : 0))
		return 0;
	rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(st->db, opt->fts ? fts_on_sql : fts_off_sql,
		    NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return 0;
	error = open_fail(st, opt, rc, opt->fts ?
	    "building the full-text index: " :
	    "dropping the full-text index: ");
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return error;
}

/*
 * The last connection to close removes the -wal and -shm files unless
 * told to keep them, and a reader who may not write the directory (the
 * callhookd group, README) cannot make them again: with the daemon
 * stopped, it could not open the database at all. Kept, the WAL empty.
 */
static void
keep_wal_files(sqlite3 *db)
{
	int on = 1;

	(void)sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
}

static int
setup_writer(struct store *st, const struct store_options *opt, int version)
{
	char sql[200];
	int error, rc;

	/* SQLite opens a file it may not write read-only, and says nothing. */
	if (sqlite3_db_readonly(st->db, "main") == 1) {
		seterr(st->err, sizeof(st->err), "%s: opened read-only, the "
		    "file is not writable", opt->path);
		return -EACCES;
	}
	/*
	 * Only now that the file is known to be ours may it become WAL.
	 * A reader that holds a snapshot for long lets the WAL grow past
	 * STORE_WAL_MAX_PAGES; SQLite then reuses the file, never shrinks
	 * it, unless its size is limited: then it is cut back when the WAL
	 * starts over.
	 */
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode = WAL;"
	    "PRAGMA synchronous = %s; PRAGMA cache_size = -%d;"
	    "PRAGMA journal_size_limit = %lld; PRAGMA foreign_keys = OFF",
	    opt->sync_full ? "FULL" : "NORMAL", STORE_CACHE_KIB,
	    STORE_WAL_LIMIT_BYTES);
	rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return open_fail(st, opt, rc, "");
	keep_wal_files(st->db);
	/*
	 * The schema's changes (a migration, the full-text index made or
	 * dropped) wait for a lock held elsewhere as long as callhook does,
	 * not the writer's short wait (100 ms in callhookd): a transaction
	 * of callhook import or prune, or an sqlite3 shell's, at a restart
	 * after an upgrade failed the start at once, and systemd, starting
	 * it again every second, gave up after five.
	 */
	if (st->busy_ms < STORE_BUSY_DEFAULT_MS)
		sqlite3_busy_timeout(st->db, STORE_BUSY_DEFAULT_MS);
	error = version < STORE_SCHEMA_VERSION ? migrate(st, opt) : 0;
	if (error == 0)
		error = sync_fts(st, opt);
	sqlite3_busy_timeout(st->db, st->busy_ms);
	return error;
}

/*
 * INSERT_SQL with `rows` rows of values, the parameters of row r numbered
 * from r * ROW_PARAMS + 1: "... VALUES (?1, ?5, ...), (?26, ?30, ...)".
 * NULL when out of memory.
 */
static char *
run_sql(int rows)
{
	const char *values = strstr(insert_sql, "(?1,");
	char *sql = NULL, *end;
	size_t size;
	FILE *fp;

	if ((fp = open_memstream(&sql, &size)) == NULL)
		return NULL;
	fwrite(insert_sql, 1, (size_t)(values - insert_sql), fp);
	for (int r = 0; r < rows; r++) {
		fputs(r > 0 ? ", " : "", fp);
		for (const char *s = values; *s != '\0'; s++) {
			fputc(*s, fp);
			if (*s != '?')
				continue;
			fprintf(fp, "%lu", strtoul(s + 1, &end, 10) +
			    (unsigned long)(r * ROW_PARAMS));
			s = end - 1;
		}
	}
	if (ferror(fp) != 0) {
		fclose(fp);
		free(sql);
		return NULL;
	}
	if (fclose(fp) != 0) {
		free(sql);
		return NULL;
	}
	return sql;
}

static int
prepare_runs(struct store *st, const struct store_options *opt)
{
	char *sql;
	int rc;

	for (int i = 0; i < RUN_SIZES; i++) {
		if ((sql = run_sql(2 << i)) == NULL) {
			seterr(st->err, sizeof(st->err), "%s: %s", opt->path,
			    strerror(ENOMEM));
			return -ENOMEM;
		}
		rc = sqlite3_prepare_v3(st->db, sql, -1,
		    SQLITE_PREPARE_PERSISTENT, &st->run[i], NULL);
		free(sql);
		if (rc != SQLITE_OK)
			return open_fail(st, opt, rc, "");
		if (sqlite3_bind_parameter_count(st->run[i]) !=
		    (2 << i) * ROW_PARAMS) {
			seterr(st->err, sizeof(st->err), "%s: a run of %d rows"
			    " does not take %d parameters", opt->path, 2 << i,
			    (2 << i) * ROW_PARAMS);
			return -EINVAL;
		}
	}
	return 0;
}

static int
prepare_all(struct store *st, const struct store_options *opt)
{
	const struct {
		const char	 *sql;
		sqlite3_stmt	**stmt;
	} list[] = {
		{ opt->known_dup ? dup_known_sql : dup_sql, &st->dup },
		{ insert_sql, &st->insert },
		{ max_id_sql, &st->max_id },
		{ fts_queue_sql, &st->fts_queue },
		{ fts_queue_run_sql, &st->fts_queue_run },
		{ fts_index_sql, &st->fts_index },
		{ fts_dequeue_sql, &st->fts_dequeue },
		{ fts_count_pending_sql, &st->fts_count },
		{ upsert_sql, &st->upsert },
		{ renumber_sql, &st->renumber },
		{ reject_sql, &st->reject },
		{ trim_sql, &st->trim },
		{ "BEGIN IMMEDIATE", &st->begin },
		{ "COMMIT", &st->commit },
		{ "ROLLBACK", &st->rollback },
	};
	int rc;

	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
		bool fts_stmt = list[i].stmt == &st->fts_queue ||
		    list[i].stmt == &st->fts_queue_run ||
		    list[i].stmt == &st->fts_index ||
		    list[i].stmt == &st->fts_dequeue ||
		    list[i].stmt == &st->fts_count;

		if (fts_stmt && (opt->readonly || !opt->fts))
			continue;
		rc = sqlite3_prepare_v3(st->db, list[i].sql, -1,
		    SQLITE_PREPARE_PERSISTENT, list[i].stmt, NULL);
		if (rc != SQLITE_OK)
			return open_fail(st, opt, rc, "");
	}
	return opt->readonly ? 0 : prepare_runs(st, opt);
}

/*
 * SQLite's memory statistics take a global mutex on every allocation,
 * about 5 % of the writer's work per event, and nothing here reads them.
 * The statement journal of a run (store_put_run) holds the pages the run
 * changes that were there before it: one or two per index, and those it
 * took from the free list. Past SQLite's 64 KB it went to a temporary
 * file, opened and unlinked per run; STORE_STMTJRNL_KIB in memory holds
 * most. It must stay under 128 KB: a journal that outgrows it is written
 * to the file in chunks of that size, and the unix VFS writes at most
 * 128 KB - 1 bytes at a time by masking the length, so 512 KB became a
 * write of nothing, and any statement with a bigger journal (a revision
 * of a call with a 1 MB transcript) failed as "disk full". These
 * settings only take before SQLite initialises; if something else in the
 * process opened a database first, they fail harmlessly.
 */
_Static_assert(STORE_STMTJRNL_KIB < 128, "see configure_library");
static void
configure_library(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	(void)sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL,
	    STORE_STMTJRNL_KIB * 1024);
}

/*
 * Even a read-only connection to a WAL database needs its -shm and -wal
 * files, and SQLite creates them beside the file when they are not there
 * (a copy that no daemon ran on, or after the last connection removed
 * them): a reader who may not write that directory then only gets
 * "attempt to write a readonly database", and on a read-only file
 * system (a mounted backup volume or snapshot) "unable to open database
 * file", since creating the -wal fails with EROFS, not EACCES.
 */
static bool
wal_files_needed(struct store *st, const struct store_options *opt,
    char *why, size_t len)
{
	int rc;

	if (st->db == NULL)
		return false;
	rc = sqlite3_extended_errcode(st->db);
	return (rc == SQLITE_READONLY_DIRECTORY ||
	    (opt->readonly && rc == SQLITE_CANTOPEN)) &&
	    store_cannot_write(opt->path, why, len);
}

/*
 * A file the reader may not read, the database or the -wal or -shm that
 * SQLite must read beside it: SQLite says only "unable to open database
 * file", and whether the directory is writable is then beside the point.
 */
static bool
cannot_read(const char *path, char *why, size_t len)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	char name[PATH_MAX];

	for (size_t i = 0; i < nitems(suffix); i++) {
		if (snprintf(name, sizeof(name), "%s%s", path, suffix[i]) >=
		    (int)sizeof(name) ||
		    faccessat(AT_FDCWD, name, R_OK, AT_EACCESS) == 0 ||
		    errno == ENOENT)
			continue;
		if (i == 0)
			snprintf(why, len, "the file is not readable by uid "
			    "%u (%s)", (unsigned)geteuid(), strerror(errno));
		else
			snprintf(why, len, "its %s file is not readable by uid "
			    "%u (%s), and SQLite must read it beside a WAL "
			    "database; give it the database's owner, group and "
			    "mode", suffix[i], (unsigned)geteuid(),
			    strerror(errno));
		return true;
	}
	return false;
}

/*
 * Why store_open() failed: a file not readable, then a file or directory
 * not writable, come first.
 */
static void
open_failed(struct store *st, const struct store_options *opt, char *err,
    size_t errlen)
{
	char why[PATH_MAX + 200];
	int rc = st->db != NULL ? sqlite3_errcode(st->db) : SQLITE_OK;

	if (cannot_read(opt->path, why, sizeof(why)))
		seterr(err, errlen, "%s: %s", opt->path, why);
	else if (wal_files_needed(st, opt, why, sizeof(why)))
		seterr(err, errlen, "%s: SQLite must create its -shm and -wal "
		    "files beside a WAL database to read it, and %s; read a "
		    "copy of the file made with cp, or open it once as a user "
		    "who may write there (a start of callhookd makes them and "
		    "leaves them)", opt->path, why);
	else if (opt->readonly ||
	    !store_cannot_write(opt->path, why, sizeof(why)))
		seterr(err, errlen, "%s", st->err);
	else if (rc == SQLITE_OK)
		seterr(err, errlen, "%s: %s", opt->path, why);
	else
		seterr(err, errlen, "%s: %s; SQLite said: %s", opt->path, why,
		    sqlite3_errmsg(st->db));
}

int
store_open(struct store **out, const struct store_options *opt,
    char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct store *st;
	int error, version = 0;

	*out = NULL;
	pthread_once(&once, configure_library);
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		seterr(err, errlen, "%s: %s", opt->path, strerror(ENOMEM));
		return -ENOMEM;
	}
	st->sync_full = opt->sync_full;
	error = open_db(st, opt);
	if (error == 0)
		error = check_identity(st, opt, &version);
	if (error == 0 && !opt->readonly)
		error = setup_writer(st, opt, version);
	if (error == 0)
		error = prepare_all(st, opt);
	if (error == 0)
		error = store_fts_count(st);
	if (error != 0)
		goto fail;
	if (!opt->readonly)
		note_side_files(st);
	st->err[0] = '\0';
	*out = st;
	return 0;
 fail:
	open_failed(st, opt, err, errlen);
	store_close(st);
	return error;
}

/*
 * The copy of the WAL into the database that SQLite makes at the last
 * close, made first so that a failure is told: SQLite's own fails in
 * silence, and whoever then finds a big -wal must know to keep it. wrote:
 * st is the connection that writes events (the checkpointer's close,
 * before it, would only say the same). A read-only connection cannot
 * copy, and wrote nothing to leave.
 */
static void
checkpoint_at_close(struct store *st, bool wrote)
{
	const char *path;
	int rc;

	if (st->db == NULL || sqlite3_db_readonly(st->db, "main") != 0)
		return;
	path = sqlite3_db_filename(st->db, "main");
	/*
	 * A file removed or replaced while open (a restore by mv): SQLite
	 * then leaves the WAL at close, under the path's name, and the next
	 * open would replay it into the file now at the path, corrupting
	 * it. Copy it into the file it belongs to and empty it first.
	 */
	if (file_moved(st)) {
		if (sqlite3_wal_checkpoint_v2(st->db, "main",
		    SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) != SQLITE_OK)
			log_errorx("%s was replaced while open, and its WAL "
			    "could not be copied into the file it belongs to "
			    "(%s; another process still has it open?): the "
			    "next open would apply that file's last writes to "
			    "the file now at this path. Stop that process and "
			    "remove %s-wal before the next start", path,
			    sqlite3_errmsg(st->db), path);
		return;
	}
	if (shm_moved(st)) {
		sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
		    NULL);
		return;
	}
	if (!wrote || path == NULL || path[0] == '\0')
		return;
	rc = sqlite3_wal_checkpoint_v2(st->db, "main",
	    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
		log_warnx("%s: its WAL could not be copied into it at close "
		    "(%s): the commits it holds stay in %s-wal, and the next "
		    "open applies them; keep that file with the database",
		    path, sqlite3_errmsg(st->db), path);
}

void
store_close(struct store *st)
{
	bool wrote;

	if (st == NULL)
		return;
	wrote = st->insert != NULL;
	if (st->db != NULL && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(st->dup);
	sqlite3_finalize(st->insert);
	for (int i = 0; i < RUN_SIZES; i++)
		sqlite3_finalize(st->run[i]);
	sqlite3_finalize(st->max_id);
	sqlite3_finalize(st->fts_queue);
	sqlite3_finalize(st->fts_queue_run);
	sqlite3_finalize(st->fts_index);
	sqlite3_finalize(st->fts_dequeue);
	sqlite3_finalize(st->fts_count);
	sqlite3_finalize(st->upsert);
	sqlite3_finalize(st->renumber);
	sqlite3_finalize(st->reject);
	sqlite3_finalize(st->trim);
	sqlite3_finalize(st->begin);
	sqlite3_finalize(st->commit);
	sqlite3_finalize(st->rollback);
	checkpoint_at_close(st, wrote);
	sqlite3_close_v2(st->db);
	free(st);
}

/*
 * After each commit, in the committing thread. With a checkpointer the
 * WAL is copied elsewhere, and this commit checkpoints only when the WAL
 * has grown to STORE_WAL_MAX_PAGES anyway: the checkpointer, busy with
 * what was appended while it copied, never finds the WAL still, and only
 * a checkpoint by the writer itself lets the next transaction start the
 * WAL file over. Most of it is already copied by then.
 */
static int
on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store *st = arg;

	st->wal_fn(st->wal_arg, pages);
	if (pages >= STORE_WAL_MAX_PAGES)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
		    NULL, NULL);
	return SQLITE_OK;
}

void
store_wal_notify(struct store *st, void (*fn)(void *, int), void *arg)
{
	st->wal_fn = fn;
	st->wal_arg = arg;
	if (fn != NULL)
		sqlite3_wal_hook(st->db, on_wal_commit, st);
	else
		sqlite3_wal_autocheckpoint(st->db,
		    SQLITE_DEFAULT_WAL_AUTOCHECKPOINT);
}

int
store_open_checkpointer(struct store **out, struct store *of, char *err,
    size_t errlen)
{
	struct store_options opt = { .busy_timeout_ms = 1000 };
	struct store *st;
	int error, rc;

	*out = NULL;
	/* NULL or "" for a database in memory: nothing to checkpoint. */
	opt.path = sqlite3_db_filename(of->db, "main");
	if (opt.path == NULL || opt.path[0] == '\0') {
		seterr(err, errlen, "the database is in memory");
		return -EINVAL;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -ENOMEM;
	if ((error = open_db(st, &opt)) != 0)
		goto fail;
	keep_wal_files(st->db);
	memcpy(st->side, of->side, sizeof(st->side));	/* shm_moved() */
	/* Checkpoints fsync as the file's writer does. */
	rc = sqlite3_exec(st->db, of->sync_full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		error = open_fail(st, &opt, rc, "");
		goto fail;
	}
	*out = st;
	return 0;
 fail:
	seterr(err, errlen, "%s", st->err);
	store_close(st);
	return error;
}

int
store_checkpoint(struct store *st, int *wal_pages, int *copied)
{
	int rc;

	if (shm_moved(st))
		return check_file(st);
	rc = sqlite3_wal_checkpoint_v2(st->db, "main",
	    SQLITE_CHECKPOINT_PASSIVE, wal_pages, copied);
	if (rc != SQLITE_OK)
		return fail(st, rc, -EIO);
	return 0;
}

int
store_restart_wal(struct store *st)
{
	int pages = -1, copied = -2, rc;

	if (shm_moved(st))
		return check_file(st);
	rc = sqlite3_wal_checkpoint_v2(st->db, "main",
	    SQLITE_CHECKPOINT_RESTART, &pages, &copied);
	if (rc != SQLITE_OK)
		return fail(st, rc, -EIO);
	return pages == copied ? 0 : -EAGAIN;
}

int
store_check_file(struct store *st)
{
	return check_file(st);
}

int
store_begin(struct store *st)
{
	int error;

	st->txn_new = 0;
	st->locked_out = false;
	st->for_all = true;		/* as long as the file is not ours */
	if (st->damaged)
		return -EAGAIN;		/* the message stays fail()'s */
	if ((error = check_file(st)) != 0)
		return error;
	st->for_all = false;
	return step_done(st, st->begin, -EIO);
}

/*
 * A failed COMMIT may leave the transaction open; the batch is retried
 * from scratch, so end it here.
 */
int
store_commit(struct store *st)
{
	int error;

	error = step_done(st, st->commit, -EIO);
	if (error != 0)
		store_rollback(st);
	else if (st->fts_index != NULL)
		st->fts_backlog += st->txn_new;
	st->txn_new = 0;
	return error;
}

void
store_rollback(struct store *st)
{
	st->txn_new = 0;
	if (sqlite3_get_autocommit(st->db))
		return;
	sqlite3_step(st->rollback);
	sqlite3_reset(st->rollback);
}

int64_t
store_fts_backlog(const struct store *st)
{
	return st->fts_index != NULL ? st->fts_backlog : 0;
}

uint64_t
store_last_received_ms(struct store *st)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3_int64 ms = 0;

	/* The index on received_at makes max() one lookup. */
	if (sqlite3_prepare_v2(st->db, "SELECT CAST(round((julianday("
	    "max(received_at)) - 2440587.5) * 86400000) AS INTEGER) "
	    "FROM calls", -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		ms = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return ms > 0 ? (uint64_t)ms : 0;
}

int
store_fts_count(struct store *st)
{
	int rc;

	if (st->fts_count == NULL)
		return 0;
	rc = sqlite3_step(st->fts_count);
	if (rc == SQLITE_ROW)
		st->fts_backlog = sqlite3_column_int64(st->fts_count, 0);
	sqlite3_reset(st->fts_count);
	return rc == SQLITE_ROW ? 0 : fail(st, rc, -EAGAIN);
}

int
store_fts_index(struct store *st, int max_rows, int *indexed)
{
	int error, n;

	*indexed = 0;
	if (st->fts_index == NULL)
		return 0;
	if ((error = store_begin(st)) != 0)
		return error;
	if (sqlite3_bind_int(st->fts_index, 1, max_rows) != SQLITE_OK ||
	    sqlite3_bind_int(st->fts_dequeue, 1, max_rows) != SQLITE_OK) {
		error = fail(st, SQLITE_MISUSE, -EIO);
		goto fail;
	}
	if ((error = step_done(st, st->fts_index, -EAGAIN)) != 0 ||
	    (error = step_done(st, st->fts_dequeue, -EAGAIN)) != 0)
		goto fail;
	n = sqlite3_changes(st->db);
	if ((error = store_commit(st)) != 0)
		return error;
	*indexed = n;
	/* Fewer than asked for: the queue is empty, whoever filled it. */
	if (n < max_rows)
		st->fts_backlog = 0;
	else
		st->fts_backlog = st->fts_backlog > n ? st->fts_backlog - n : 1;
	return 0;
fail:
	store_rollback(st);
	return error;
}

/* A fixed-size field of ours: empty means NULL, and it need not end in NUL. */
static int
bind_array(sqlite3_stmt *stmt, int i, const char *s, size_t size)
{
	size_t len = strnlen(s, size);

	if (len == 0)
		return sqlite3_bind_null(stmt, i);
	return sqlite3_bind_text(stmt, i, s, (int)len, SQLITE_STATIC);
}

/*
 * ?1..?4, counted from base + 1; dup has no ?4, since an identical body
 * keeps the address of the delivery that stored it (SPEC section 5).
 */
static int
bind_key(sqlite3_stmt *stmt, int base, const struct event *ev)
{
	int rc;

	rc = sqlite3_bind_text(stmt, base + 1, ev->call_sid, -1,
	    SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text64(stmt, base + 2, ev->body,
		    ev->body_len, SQLITE_STATIC, SQLITE_UTF8);
	if (rc == SQLITE_OK)
		rc = bind_array(stmt, base + 3, ev->received_at,
		    sizeof(ev->received_at));
	if (rc == SQLITE_OK && sqlite3_bind_parameter_count(stmt) >= base + 4)
		rc = bind_array(stmt, base + 4, ev->remote_addr,
		    sizeof(ev->remote_addr));
	return rc;
}

static int
bind_bool(sqlite3_stmt *stmt, int i, int v)
{
	if (v < 0)
		return sqlite3_bind_null(stmt, i);
	return sqlite3_bind_int(stmt, i, v != 0);
}

/* ?5..?25, counted from base + 1. */
static int
bind_fields(sqlite3_stmt *stmt, int base, const struct event *ev)
{
	const char *text[] = {
		ev->event, ev->call_type, ev->agent_id, ev->version_id,
		ev->from_number, ev->to_number, ev->recording_url,
		ev->call_time, ev->transcription, ev->batch_id,
		ev->hangup_reason, ev->call_metadata, ev->post_call,
		ev->post_call_detail, ev->functions_called,
		ev->disposition_reason, ev->call_link,
	};
	int rc = SQLITE_OK;

	_Static_assert(sizeof(text) / sizeof(text[0]) == 17, "?5..?21");
	for (int i = 0; i < 17 && rc == SQLITE_OK; i++)
		rc = sqlite3_bind_text(stmt, base + 5 + i, text[i], -1,
		    SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = ev->has_call_duration ?
		    sqlite3_bind_double(stmt, base + 22, ev->call_duration) :
		    sqlite3_bind_null(stmt, base + 22);
	if (rc == SQLITE_OK)
		rc = ev->has_try_count ?
		    sqlite3_bind_int64(stmt, base + 23, ev->try_count) :
		    sqlite3_bind_null(stmt, base + 23);
	if (rc == SQLITE_OK)
		rc = bind_bool(stmt, base + 24, ev->conversion_status);
	if (rc == SQLITE_OK)
		rc = bind_bool(stmt, base + 25, ev->next_call_scheduled);
	return rc;
}

/*
 * Queue the row just inserted for store_fts_index(). The row is already
 * in the transaction, so a failure here, whatever it is, is -EAGAIN: the
 * batch is rolled back rather than a row committed that would never be
 * indexed.
 */
static int
queue_for_index(struct store *st)
{
	int rc;

	rc = sqlite3_bind_int64(st->fts_queue, 1,
	    sqlite3_last_insert_rowid(st->db));
	if (rc != SQLITE_OK)
		return fail(st, rc, -EAGAIN);
	st->txn_new++;
	return step_done(st, st->fts_queue, -EAGAIN);
}

/*
 * Insert a new row: 0, 1 when the callSid is already there (a revision),
 * or an error. A failed single-row INSERT changes nothing, so the
 * transaction goes on.
 */
static int
insert(struct store *st, const struct event *ev)
{
	bool in_txn;
	int error, rc;

	rc = bind_key(st->insert, 0, ev);
	if (rc == SQLITE_OK)
		rc = bind_fields(st->insert, 0, ev);
	if (rc != SQLITE_OK)
		return fail(st, rc, -EINVAL);
	in_txn = !sqlite3_get_autocommit(st->db);
	rc = sqlite3_step(st->insert);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		sqlite3_reset(st->insert);
		return 1;
	}
	if (rc != SQLITE_DONE) {
		error = fail_in_txn(st, in_txn, rc, -EINVAL);
		sqlite3_reset(st->insert);
		return error;
	}
	sqlite3_reset(st->insert);
	return st->fts_queue != NULL ? queue_for_index(st) : 0;
}

/* One run of the upsert: SQLITE_DONE with *revision set, or the error. */
static int
upsert_run(struct store *st, sqlite3_int64 *revision)
{
	int rc = sqlite3_step(st->upsert);

	if (rc == SQLITE_ROW) {
		*revision = sqlite3_column_int64(st->upsert, 0);
		rc = sqlite3_step(st->upsert);
	}
	return rc;
}

/* renumber_sql for ev's call: true when its row moved. */
static bool
renumbered(struct store *st, const struct event *ev)
{
	int rc;

	sqlite3_bind_text(st->renumber, 1, ev->call_sid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st->renumber);
	sqlite3_reset(st->renumber);
	return rc == SQLITE_DONE && sqlite3_changes(st->db) == 1;
}

/*
 * Replace the fields of a row whose body differs. A save of the old body
 * that collides with a revision a hand edit left is not the event's
 * fault: the row is numbered past them, and the upsert run again.
 */
static int
upsert(struct store *st, const struct event *ev, enum store_outcome *outcome)
{
	bool in_txn = !sqlite3_get_autocommit(st->db);
	sqlite3_int64 revision = 0;
	int error, rc;

	rc = bind_key(st->upsert, 0, ev);
	if (rc == SQLITE_OK)
		rc = bind_fields(st->upsert, 0, ev);
	if (rc == SQLITE_OK)
		rc = upsert_run(st, &revision);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY && renumbered(st, ev)) {
		sqlite3_reset(st->upsert);
		rc = upsert_run(st, &revision);
	}
	if (rc != SQLITE_DONE) {
		error = fail_in_txn(st, in_txn, rc, -EINVAL);
		sqlite3_reset(st->upsert);
		return error;
	}
	sqlite3_reset(st->upsert);
	*outcome = revision == 1 ? STORE_NEW : STORE_REVISION;
	/* New after all: only outside store_begin, when a row vanished. */
	if (revision == 1 && st->fts_queue != NULL)
		return queue_for_index(st);
	return 0;
}

int
store_put(struct store *st, const struct event *ev,
    enum store_outcome *outcome)
{
	int error, rc;

	error = insert(st, ev);
	if (error == 0)
		*outcome = STORE_NEW;
	if (error <= 0)
		return error;
	rc = bind_key(st->dup, 0, ev);
	if (rc != SQLITE_OK)
		return fail(st, rc, -EINVAL);
	error = step_done(st, st->dup, -EINVAL);
	if (error != 0)
		return error;
	if (sqlite3_changes(st->db) == 1) {
		*outcome = STORE_DUPLICATE;
		return 0;
	}
	return upsert(st, ev, outcome);
}

/*
 * The largest id in calls, 0 for none. Once INT64_MAX is taken SQLite
 * picks new ids at random, and a run's rows would not all be the ids
 * above it.
 */
static int
max_id(struct store *st, sqlite3_int64 *id)
{
	int error = 0, rc;

	rc = sqlite3_step(st->max_id);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st->max_id, 0);
	else
		error = fail(st, rc, -EAGAIN);
	sqlite3_reset(st->max_id);
	return error;
}

/*
 * Queue the rows a run just added: those with ids above `after`, the
 * largest before it, since only this connection writes. As in
 * queue_for_index, any failure is -EAGAIN.
 */
static int
queue_run_for_index(struct store *st, sqlite3_int64 after, int rows)
{
	int error, rc;

	rc = sqlite3_bind_int64(st->fts_queue_run, 1, after);
	if (rc != SQLITE_OK)
		return fail(st, rc, -EAGAIN);
	if ((error = step_done(st, st->fts_queue_run, -EAGAIN)) != 0)
		return error;
	st->txn_new += rows;
	return 0;
}

/*
 * One INSERT of `rows` new rows (2 << i): 0, 1 when a callSid is taken
 * or SQLite refuses a row (the statement wrote nothing), or -EAGAIN.
 */
static int
insert_run(struct store *st, int i, const struct event *const *evs)
{
	sqlite3_stmt *stmt = st->run[i];
	sqlite3_int64 after = 0;
	int error, rc = SQLITE_OK, rows = 2 << i;

	if (st->fts_queue_run != NULL) {
		if ((error = max_id(st, &after)) != 0)
			return error;
		if (after > INT64_MAX - rows)
			return 1;
	}
	for (int r = 0; r < rows && rc == SQLITE_OK; r++) {
		rc = bind_key(stmt, r * ROW_PARAMS, evs[r]);
		if (rc == SQLITE_OK)
			rc = bind_fields(stmt, r * ROW_PARAMS, evs[r]);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	error = rc == SQLITE_DONE ? 0 : fail_in_txn(st, true, rc, 1);
	sqlite3_reset(stmt);
	if (error != 0 || st->fts_queue_run == NULL)
		return error;
	return queue_run_for_index(st, after, rows);
}

/*
 * The run that starts evs[0..n), as the index of its size in st->run, or
 * -1 for none: as many rows as there are, up to STORE_RUN_MAX, whose
 * bodies add up to RUN_BYTES at most, rounded down to a prepared size.
 * The byte limit bounds the statement journal, which may hold a copy of
 * every page the run writes.
 */
static int
run_size(const struct event *const *evs, int n)
{
	size_t bytes = 0;
	int rows = 0, i;

	while (rows < n && rows < STORE_RUN_MAX &&
	    bytes + evs[rows]->body_len <= RUN_BYTES)
		bytes += evs[rows++]->body_len;
	if (rows < 2)
		return -1;
	for (i = RUN_SIZES - 1; (2 << i) > rows; i--)
		continue;
	return i;
}

int
store_put_run(struct store *st, const struct event *const *evs, int n,
    int *stored)
{
	int error, i;

	*stored = 0;
	while ((i = run_size(evs + *stored, n - *stored)) >= 0) {
		if ((error = insert_run(st, i, evs + *stored)) != 0)
			return error == 1 ? 0 : error;
		*stored += 2 << i;
	}
	return 0;
}

int
store_put_reject(struct store *st, const struct reject *rj)
{
	size_t len;
	sqlite3_int64 id;
	int error, rc;

	len = rj->body_len < STORE_REJECT_BODY ? rj->body_len :
	    STORE_REJECT_BODY;
	rc = bind_array(st->reject, 1, rj->time, sizeof(rj->time));
	if (rc == SQLITE_OK)
		rc = bind_array(st->reject, 2, rj->remote_addr,
		    sizeof(rj->remote_addr));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st->reject, 3, rj->status);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st->reject, 4, rj->reason,
		    (int)strnlen(rj->reason, sizeof(rj->reason)), SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st->reject, 5, rj->body, (int)len,
		    SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return fail(st, rc, -EINVAL);
	error = step_done(st, st->reject, -EINVAL);
	if (error != 0)
		return error;
	/* Rowids only grow while the newest rows are kept. */
	id = sqlite3_last_insert_rowid(st->db);
	if (id <= STORE_REJECTS_KEPT)
		return 0;
	sqlite3_bind_int64(st->trim, 1, id - STORE_REJECTS_KEPT);
	return step_done(st, st->trim, -EINVAL);
}

bool
store_damaged(const struct store *st)
{
	return st->damaged;
}

bool
store_locked_out(struct store *st)
{
	return st->locked_out;
}

bool
store_failed_for_all(struct store *st)
{
	return st->for_all;
}

const char *
store_errmsg(struct store *st)
{
	if (st->err[0] != '\0')
		return st->err;
	return sqlite3_errmsg(st->db);
}

struct sqlite3 *
store_db(struct store *st)
{
	return st->db;
}

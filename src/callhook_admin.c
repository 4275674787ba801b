/*
 * The commands that write: import, prune, backup and restore.
 *
 * import and prune share the file with a running daemon, whose writer
 * waits 100 ms for the lock before it backs off and tries again, and
 * answers 503 when an event is not committed within 4.5 s. So they hold
 * the write lock for about HOLD_MS at a time (a row of a big transcript
 * can take a millisecond to take out of the full-text index) and, between
 * two transactions, leave it free at least as long as they held it.
 *
 * import goes through event_parse and store_put_run like a webhook, so
 * a line is checked and upserted exactly as the daemon would do it; the
 * events of a batch are kept until it commits, so a batch that meets a
 * busy file is simply tried again.
 *
 * backup copies with the online backup API inside one read transaction
 * of the source: in WAL mode that is a fixed snapshot that never blocks
 * the writer, and the copy does not restart when the daemon commits.
 * It writes to a temporary file next to DEST and renames it into place,
 * so DEST is never a half-written database. SIGINT, SIGTERM and SIGHUP
 * stop the copy between two steps; the temporary file is removed, and
 * then the signal ends callhook as it would have.
 *
 * restore is backup the other way round, with the daemon stopped: it
 * takes DATABASE.lock as the daemon does, so that no daemon starts on
 * the file while it is replaced, copies the backup the same way into a
 * temporary file beside the database, moves the database and the files
 * SQLite keeps beside it aside under one new name (hard links first, so
 * that they are whole under one name at every step), and renames the
 * copy into place. An old -wal left beside the copy would be written
 * into it at the next open, and corrupt it.
 */

#include <sys/prctl.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "callhook.h"
#include "dblock.h"
#include "event.h"
#include "metrics.h"

#define IMPORT_BATCH		500	/* lines parsed, then stored */
#define IMPORT_BATCH_BYTES	(8 * 1024 * 1024)
#define IMPORT_FTS_FIRST	32	/* rows indexed in the first transaction */
#define IMPORT_FTS_MAX		4096
#define PRUNE_BATCH_MIN		16	/* rows in the first batch */
#define PRUNE_BATCH_MAX		500
#define HOLD_MS			50
#define BACKUP_PAGES		256
#define RETRIES			20
#define PAUSE_MIN_MS		20
#define REASON_MAX		160

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Let the daemon in: pause as long as the lock was held, at least 20 ms. */
static void
yield_lock(uint64_t held_ns)
{
	long ms = (long)(held_ns / 1000000);

	sleep_ms(ms > PAUSE_MIN_MS ? ms : PAUSE_MIN_MS);
}

/* import */

struct tally {
	const char	*path;		/* what is imported, for messages */
	long long	 lines;
	long long	 stored;
	long long	 duplicates;
	long long	 revisions;
	long long	 refused;
	long long	 lone_brace;	/* the first line that is only "{" */
	bool		 in_array;	/* a line only "[" came before it */
};

struct batch {
	struct event	*ev[IMPORT_BATCH];
	long long	 line[IMPORT_BATCH];
	int		 outcome[IMPORT_BATCH];	/* or -1: refused */
	char		 reason[IMPORT_BATCH][REASON_MAX];
	size_t		 n;
	size_t		 bytes;
	bool		 last;		/* the file has no more lines */
};

static void
refused(struct tally *t, long long line, const char *reason)
{
	t->refused++;
	warnx("%s:%lld: %s", t->path, line, reason);
}

/*
 * Events i..i+n-1 (n at most STORE_RUN_MAX) as the daemon's writer stores
 * them: runs of new rows, then one at a time what the runs left.
 */
static int
run_store(struct store *st, struct batch *b, size_t i, size_t n)
{
	const struct event *const *evs = (const struct event *const *)&b->ev[i];
	enum store_outcome outcome;
	int error, stored;

	if ((error = store_put_run(st, evs, (int)n, &stored)) != 0)
		return error;
	for (size_t k = 0; k < n; k++) {
		if (k < (size_t)stored) {
			b->outcome[i + k] = STORE_NEW;
			continue;
		}
		error = store_put(st, evs[k], &outcome);
		if (error == -EINVAL) {
			b->outcome[i + k] = -1;
			snprintf(b->reason[i + k], REASON_MAX, "%s",
			    store_errmsg(st));
		} else if (error != 0)
			return error;
		else
			b->outcome[i + k] = (int)outcome;
	}
	return 0;
}

/*
 * One transaction over the events from "from" on, committed once HOLD_MS
 * have passed. Returns how many it committed, or -EAGAIN / -EIO (rolled
 * back).
 */
static int
batch_store(struct store *st, struct batch *b, size_t from)
{
	uint64_t start = now_mono_ns();
	size_t i = from, n;
	int error;

	if ((error = store_begin(st)) != 0)
		return error;
	while (i < b->n && (i == from ||
	    now_mono_ns() - start < HOLD_MS * 1000000ULL)) {
		n = b->n - i < STORE_RUN_MAX ? b->n - i : STORE_RUN_MAX;
		if ((error = run_store(st, b, i, n)) != 0) {
			store_rollback(st);
			return error;
		}
		i += n;
	}
	if ((error = store_commit(st)) != 0)
		return error;
	return (int)(i - from);
}

static void
batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		event_free(b->ev[i]);
	b->n = 0;
	b->bytes = 0;
}

/* Count the committed events from..to-1. */
static void
batch_tally(struct batch *b, size_t from, size_t to, struct tally *t)
{
	for (size_t i = from; i < to; i++) {
		if (b->outcome[i] < 0)
			refused(t, b->line[i], b->reason[i]);
		else if (b->outcome[i] == STORE_NEW)
			t->stored++;
		else if (b->outcome[i] == STORE_DUPLICATE)
			t->duplicates++;
		else
			t->revisions++;
	}
}

static int
batch_flush(struct ch *ch, struct batch *b, struct tally *t)
{
	uint64_t start;
	size_t done = 0;
	int n, tries = 0;

	while (done < b->n) {
		start = now_mono_ns();
		n = batch_store(ch->st, b, done);
		yield_lock(now_mono_ns() - start);
		if (n == -EAGAIN && ++tries < RETRIES)
			continue;
		if (n < 0) {
			warnx("%s: lines %lld-%lld not stored in %s: %s%s; "
			    "import stopped%s. Run it again: what was stored "
			    "counts as duplicates", t->path, b->line[done],
			    b->line[b->n - 1], ch->cfg.database,
			    store_errmsg(ch->st), store_locked_out(ch->st) ?
			    " (another process held its write lock throughout:"
			    " an sqlite3 shell inside a transaction?)" : "",
			    b->last ? "" : ", the lines after them not read");
			batch_clear(b);
			return n;
		}
		batch_tally(b, done, done + (size_t)n, t);
		done += (size_t)n;
		tries = 0;
	}
	batch_clear(b);
	return 0;
}

static bool
blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* An escaped \u0000 in the JSON string text s: cJSON would cut there. */
static bool
escaped_nul(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (s[i] == '\\' && s[++i] == 'u' && len - i > 4 &&
		    memcmp(s + i + 1, "0000", 4) == 0)
			return true;
	return false;
}

/*
 * A line that is one JSON string holds a body with line breaks, as the
 * daemon's rescue file writes it (writer.c, quoted_body()): the body is
 * the string's value, byte for byte. Checked as a body is first, since
 * cJSON alone would take text after the string, and read a bad \u
 * escape as \u0000, where it ends the C string. A copy (free()), or
 * NULL with *why set.
 */
static char *
unquote_line(const char *line, size_t len, size_t *body_len, const char **why)
{
	cJSON *v = NULL;
	char *body = NULL;

	*why = "a quoted line is not one JSON string";
	if (!event_json_valid(line, len))
		return NULL;
	if (escaped_nul(line, len))
		*why = "a quoted line holds \\u0000, which no body can";
	else if ((v = cJSON_ParseWithLength(line, len)) != NULL &&
	    cJSON_IsString(v)) {
		*why = "out of memory";
		if ((body = strdup(v->valuestring)) != NULL)
			*body_len = strlen(body);
	}
	cJSON_Delete(v);
	return body;
}

/* Parse a body into the batch, or count it refused. */
static void
import_body(struct ch *ch, struct batch *b, struct tally *t, const char *body,
    size_t len)
{
	struct event *ev;
	char msg[REASON_MAX];

	if (len > ch->cfg.max_body) {
		snprintf(msg, sizeof(msg), "%zu bytes, over max_body (%zu; "
		    "-c takes the daemon's)", len, ch->cfg.max_body);
		refused(t, t->lines, msg);
		return;
	}
	switch (event_parse(body, len, ch->cfg.strict, &ev, msg,
	    sizeof(msg))) {
	case EVENT_OK:
		break;
	case EVENT_NO_MEMORY:
		refused(t, t->lines, "out of memory");
		return;
	default:
		refused(t, t->lines, msg);
		return;
	}
	snprintf(ev->remote_addr, sizeof(ev->remote_addr), "import");
	format_utc_ms(now_wall_ms(), ev->received_at, sizeof(ev->received_at));
	b->line[b->n] = t->lines;
	b->ev[b->n++] = ev;
	b->bytes += len;
}

/*
 * A line that is only c: "{" opens a pretty-printed body, which import
 * cannot take; "[" before it, an array of them.
 */
static bool
lone_char(const char *s, size_t len, char c)
{
	size_t i = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i < len && s[i] == c && blank(s + i + 1, len - i - 1);
}

/*
 * One line: a body, or a quoted one (unquote_line()). Quoting at most
 * makes each byte six (a \u escape), so a longer quoted line is over
 * max_body unread.
 */
static void
import_line(struct ch *ch, struct batch *b, struct tally *t, char *line,
    size_t len)
{
	const char *why;
	size_t body_len;
	char *body;

	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (blank(line, len))
		return;
	if (t->lone_brace == 0 && lone_char(line, len, '{'))
		t->lone_brace = t->lines;
	else if (t->lone_brace == 0 && lone_char(line, len, '['))
		t->in_array = true;
	if (line[0] != '"' || len > 6 * ch->cfg.max_body + 2) {
		import_body(ch, b, t, line, len);
		return;
	}
	if ((body = unquote_line(line, len, &body_len, &why)) == NULL) {
		refused(t, t->lines, why);
		return;
	}
	import_body(ch, b, t, body, body_len);
	free(body);
}

/*
 * Index what the import left in fts_pending (and whatever else waits),
 * so that search sees the imported calls when the command ends. Each
 * transaction is sized, like prune's, to hold the lock about HOLD_MS:
 * 500 long transcripts take twice that.
 */
static int
import_index(struct ch *ch)
{
	uint64_t start, held, hold = HOLD_MS * 1000000ULL;
	int n, limit = IMPORT_FTS_FIRST, error, tries = 0;

	do {
		start = now_mono_ns();
		error = store_fts_index(ch->st, limit, &n);
		held = now_mono_ns() - start;
		yield_lock(held);
		if (error == -EAGAIN && ++tries < RETRIES) {
			n = limit;
			continue;
		}
		if (error != 0) {
			warnx("full-text index not brought up to date: %s "
			    "(the daemon indexes the rest when idle)",
			    store_errmsg(ch->st));
			return error;
		}
		tries = 0;
		if (n < limit)
			break;
		if (held < hold / 2 && limit * 2 <= IMPORT_FTS_MAX)
			limit *= 2;
		else if (held > hold && limit > 1)
			limit /= 2;
	} while (n > 0);
	return 0;
}

/*
 * True when the next line has not come yet (tail -f into import -): what
 * was read is stored now, not once IMPORT_BATCH lines have come. stdio
 * may still hold lines the descriptor no longer has; those then go in
 * batches of one, each followed by yield_lock()'s pause, which lets
 * lines gather again. A file, or a pipe with more to read, is ready.
 */
static bool
input_waits(FILE *fp)
{
	struct pollfd p = { .fd = fileno(fp), .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

/* Read and store every line. Every error is reported here, or below. */
static int
import_stream(struct ch *ch, FILE *fp, const char *path, struct tally *t)
{
	struct batch *b;
	struct progress p;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int error = 0;
	bool read_failed;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		warn(NULL);
		return -ENOMEM;
	}
	t->path = strcmp(path, "-") == 0 ? "standard input" : path;
	progress_init(&p, ch->progress);
	while (error == 0 && (len = getline(&line, &cap, fp)) != -1) {
		t->lines++;
		import_line(ch, b, t, line, (size_t)len);
		if (b->n == IMPORT_BATCH || b->bytes >= IMPORT_BATCH_BYTES ||
		    (b->n > 0 && input_waits(fp)))
			error = batch_flush(ch, b, t);
		progress_tick(&p, "callhook: line %lld, %lld stored",
		    t->lines, t->stored);
	}
	/* What was read before a read error is stored all the same. */
	read_failed = error == 0 && ferror(fp);
	if (read_failed)
		warn("%s: read failed after line %lld", path, t->lines);
	b->last = true;
	if (error == 0)
		error = batch_flush(ch, b, t);
	if (read_failed && error == 0)
		error = -EIO;
	progress_done(&p);
	batch_clear(b);
	free(b);
	free(line);
	return error;
}

int
cmd_import(struct ch *ch, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tally t = { 0 };
	const char *path;
	FILE *fp;
	int c, error;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
		return c == 'h' ? ch_help("import") : ch_usage("import");
	if ((c = ch_operands("import", argc, argv, 1, "a file (or -)")) >= 0)
		return c;
	path = argv[optind];
	fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (fp == NULL) {
		warn("%s", path);
		return CH_FAIL;
	}
	if (ch_open_write(ch, true) != 0) {
		if (fp != stdin)
			fclose(fp);
		return CH_FAIL;
	}
	error = import_stream(ch, fp, path, &t);
	if (error == 0)
		error = import_index(ch);
	if (fp != stdin)
		fclose(fp);
	printf("%lld %s: %lld stored, %lld duplicates, %lld revisions, "
	    "%lld refused\n", t.lines, t.lines == 1 ? "line" : "lines",
	    t.stored, t.duplicates, t.revisions, t.refused);
	if (t.lone_brace > 0)
		warnx("%s:%lld: a line that is only \"{\": the bodies look "
		    "pretty-printed; import takes one body per line, as "
		    "%s", t.path, t.lone_brace, t.in_array ? "jq -c '.[]' "
		    "writes those of an array" : "jq -c . writes them");
	return error == 0 && t.refused == 0 ? CH_OK : CH_FAIL;
}

/* prune */

struct prune {
	char		 cutoff[TIME_LEN];
	bool		 transcripts;
	char		*last_time;	/* the cursor: a call_time */
	long long	 last_id;
	int		 limit;		/* rows in the next batch */
	long long	 calls;
	long long	 revisions;
	sqlite3_stmt	*pick;
	sqlite3_stmt	*act;
	sqlite3_stmt	*revs;
	char		 err[256];
};

/*
 * Rows are picked in (call_time, id) order after a cursor, so a batch
 * never reads again the rows that earlier ones left (blanked, or whose
 * transcription was already NULL). call_time is kept as sent, and
 * compared as text: only one that starts with a date can be older than
 * one. "", a number or another format would sort before any date.
 *
 * The rest of the cursor's call_time, and the later times, are two seeks
 * in calls_call_time (which ends in id): SQLite 3.40 reads "(call_time,
 * id) > (?2, ?3)" as "call_time >= ?2" and filters the ids, so each batch
 * read again every row of a time many calls share, and --transcripts-
 * only, which leaves its rows, crawled through a large such group.
 */
#define DATED	"call_time GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"
static const char prune_pick_sql[] =
	"SELECT id, call_time FROM (SELECT id, call_time FROM calls"
	" WHERE call_time = ?2 AND id > ?3 AND call_time < ?1 AND " DATED
	" ORDER BY id LIMIT ?4)"
	" UNION ALL SELECT id, call_time FROM (SELECT id, call_time FROM calls"
	" WHERE call_time > ?2 AND call_time < ?1 AND " DATED
	" ORDER BY call_time, id LIMIT ?4)"
	" ORDER BY call_time, id LIMIT ?4";
static const char prune_undated_sql[] =
	"SELECT count(*) FROM calls WHERE call_time IS NULL OR NOT " DATED;
static const char prune_delete_sql[] =
	"DELETE FROM calls WHERE id = ?1 RETURNING call_sid";
static const char prune_blank_sql[] =
	"UPDATE calls SET transcription = NULL WHERE id = ?1"
	" AND transcription IS NOT NULL RETURNING call_sid";
static const char prune_revs_sql[] =
	"DELETE FROM call_revisions WHERE call_sid ="
	" (SELECT call_sid FROM calls WHERE id = ?1)";

/* Keep SQLite's message before the rollback replaces it. */
static int
prune_fail(struct ch *ch, struct prune *pr, int rc)
{
	snprintf(pr->err, sizeof(pr->err), "%s", sqlite3_errmsg(ch->db));
	return store_transient(rc) ? -EAGAIN : -EIO;
}

/*
 * Act on one row, inside the batch's transaction. A deleted row's
 * revisions go first, to be counted: its delete trigger would take them
 * too, uncounted.
 */
static int
prune_row(struct ch *ch, struct prune *pr, sqlite3_int64 id)
{
	int rc;

	if (!pr->transcripts) {
		sqlite3_bind_int64(pr->revs, 1, id);
		if ((rc = sqlite3_step(pr->revs)) == SQLITE_DONE)
			pr->revisions += sqlite3_changes(ch->db);
		sqlite3_reset(pr->revs);
		if (rc != SQLITE_DONE)
			return prune_fail(ch, pr, rc);
	}
	sqlite3_bind_int64(pr->act, 1, id);
	if ((rc = sqlite3_step(pr->act)) == SQLITE_ROW) {
		pr->calls++;
		rc = sqlite3_step(pr->act);
	}
	sqlite3_reset(pr->act);
	return rc == SQLITE_DONE ? 0 : prune_fail(ch, pr, rc);
}

/*
 * One transaction of up to pr->limit rows. Returns rows done (0 at the
 * end) or -errno; the cursor moves only when it commits.
 */
static int
prune_batch(struct ch *ch, struct prune *pr)
{
	sqlite3_int64 ids[PRUNE_BATCH_MAX];
	long long saved_calls = pr->calls, saved_revs = pr->revisions;
	char *last = NULL;
	int n = 0, rc, error;

	if ((error = store_begin(ch->st)) != 0) {
		snprintf(pr->err, sizeof(pr->err), "%s", store_errmsg(ch->st));
		return error;
	}
	sqlite3_bind_text(pr->pick, 1, pr->cutoff, -1, SQLITE_STATIC);
	sqlite3_bind_text(pr->pick, 2, pr->last_time, -1, SQLITE_STATIC);
	sqlite3_bind_int64(pr->pick, 3, pr->last_id);
	sqlite3_bind_int(pr->pick, 4, pr->limit);
	while ((rc = sqlite3_step(pr->pick)) == SQLITE_ROW) {
		ids[n++] = sqlite3_column_int64(pr->pick, 0);
		free(last);
		last = strdup((const char *)sqlite3_column_text(pr->pick, 1));
	}
	error = rc == SQLITE_DONE ? 0 : prune_fail(ch, pr, rc);
	sqlite3_reset(pr->pick);
	if (error == 0 && n > 0 && last == NULL)
		error = -ENOMEM;
	for (int i = 0; error == 0 && i < n; i++)
		error = prune_row(ch, pr, ids[i]);
	if (error == 0 && (error = store_commit(ch->st)) != 0)
		snprintf(pr->err, sizeof(pr->err), "%s", store_errmsg(ch->st));
	if (error != 0) {
		store_rollback(ch->st);
		pr->calls = saved_calls;
		pr->revisions = saved_revs;
		free(last);
		return error;
	}
	if (n > 0) {
		free(pr->last_time);
		pr->last_time = last;
		pr->last_id = ids[n - 1];
	}
	return n;
}

/* Size the next transaction so that it holds the lock about HOLD_MS. */
static void
prune_resize(struct prune *pr, uint64_t held_ns)
{
	uint64_t hold = HOLD_MS * 1000000ULL;

	if (held_ns < hold / 2 && pr->limit < PRUNE_BATCH_MAX)
		pr->limit = pr->limit * 2 < PRUNE_BATCH_MAX ? pr->limit * 2 :
		    PRUNE_BATCH_MAX;
	else if (held_ns > hold && pr->limit > 1)
		pr->limit /= 2;
}

static int
prune_loop(struct ch *ch, struct prune *pr)
{
	struct progress p;
	uint64_t held;
	int n, tries = 0;

	progress_init(&p, ch->progress);
	for (;;) {
		held = now_mono_ns();
		n = prune_batch(ch, pr);
		held = now_mono_ns() - held;
		yield_lock(held);
		if (n == -EAGAIN && ++tries < RETRIES)
			continue;
		if (n <= 0)
			break;
		tries = 0;
		prune_resize(pr, held);
		progress_tick(&p, "callhook: %lld calls %s", pr->calls,
		    pr->transcripts ? "blanked" : "deleted");
	}
	progress_done(&p);
	/* Like import's: which file, and that what was done is kept. */
	if (n < 0)
		warnx("%s: %s%s; prune stopped after %lld calls, which stay "
		    "done. Run it again once that is fixed", ch->cfg.database,
		    pr->err[0] != '\0' ? pr->err : strerror(-n),
		    store_locked_out(ch->st) ? " (another process held its "
		    "write lock throughout: an sqlite3 shell inside a "
		    "transaction?)" : "", pr->calls);
	return n < 0 ? CH_FAIL : CH_OK;
}

static int
prune_args(int argc, char **argv, struct prune *pr)
{
	static const struct option longopts[] = {
		{ "older-than", required_argument, NULL, OPT_OLDER },
		{ "transcripts-only", no_argument, NULL, OPT_TRANSCRIPTS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char until[TIME_LEN];
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_OLDER:
			/* 6m would delete all but the last 6 minutes. */
			if (optarg[0] != '\0' &&
			    optarg[strlen(optarg) - 1] == 'm')
				return ch_usage_error("prune", "--older-than "
				    "%s: m is minutes here, not months; give "
				    "days (180d) or a date", optarg);
			/* Older than a date: before its first second. */
			if (time_parse(optarg, pr->cutoff, until) != 0)
				return ch_usage_error("prune", "--older-than "
				    "%s: not a time (90d, 12h, 2025-01-01)",
				    optarg);
			break;
		case OPT_TRANSCRIPTS:
			pr->transcripts = true;
			break;
		case 'h':
			return ch_help("prune");
		default:
			return ch_usage("prune");
		}
	}
	if ((c = ch_operands("prune", argc, argv, 0, NULL)) >= 0)
		return c;
	if (pr->cutoff[0] == '\0')
		return ch_usage_error("prune", "--older-than is needed");
	return -1;
}

/* Say how many calls no cutoff can reach. */
static void
prune_undated(struct ch *ch)
{
	sqlite3_stmt *stmt;
	long long n = 0;

	if (sqlite3_prepare_v2(ch->db, prune_undated_sql, -1, &stmt, NULL) !=
	    SQLITE_OK)
		return;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (n > 0)
		warnx("%lld calls left as they are: they have no call_time, "
		    "or one that does not start with a date (YYYY-MM-DD)", n);
}

int
cmd_prune(struct ch *ch, int argc, char **argv)
{
	struct prune pr;
	int rc;

	memset(&pr, 0, sizeof(pr));
	pr.last_id = -1;
	pr.limit = PRUNE_BATCH_MIN;
	if ((rc = prune_args(argc, argv, &pr)) >= 0)
		return rc;
	if (ch_open_write(ch, false) != 0)
		return CH_FAIL;
	if ((pr.last_time = strdup("")) == NULL) {
		warn(NULL);
		return CH_FAIL;
	}
	if (sqlite3_prepare_v2(ch->db, prune_pick_sql, -1, &pr.pick,
	    NULL) != SQLITE_OK || sqlite3_prepare_v2(ch->db, pr.transcripts ?
	    prune_blank_sql : prune_delete_sql, -1, &pr.act, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v2(ch->db, prune_revs_sql, -1,
	    &pr.revs, NULL) != SQLITE_OK) {
		warnx("%s", sqlite3_errmsg(ch->db));
		rc = CH_FAIL;
		goto done;
	}
	rc = prune_loop(ch, &pr);
	if (rc == CH_OK)
		prune_undated(ch);
	if (pr.transcripts)
		printf("%lld transcriptions blanked (call_time before %s)\n",
		    pr.calls, pr.cutoff);
	else
		printf("%lld calls deleted, with %lld earlier revisions "
		    "(call_time before %s)\n", pr.calls, pr.revisions,
		    pr.cutoff);
 done:
	sqlite3_finalize(pr.pick);
	sqlite3_finalize(pr.act);
	sqlite3_finalize(pr.revs);
	free(pr.last_time);
	return rc;
}

/* backup */

static volatile sig_atomic_t backup_stop;	/* the signal that came */

static void
backup_on_signal(int sig)
{
	backup_stop = sig;
}

/*
 * From here on, SIGINT, SIGTERM and SIGHUP (the session it was started
 * from closed) only ask the copy to stop; one that is ignored (a
 * background job of a script, nohup) stays ignored.
 */
static void
backup_catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = backup_on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], NULL, &old) == 0 &&
		    old.sa_handler != SIG_IGN)
			sigaction(sigs[i], &sa, NULL);
}

/*
 * Die of the signal that stopped the backup, now that its copy is gone,
 * so that the shell sees (and a script stops on) what it sent.
 */
static void
backup_raise(void)
{
	signal(backup_stop, SIG_DFL);
	raise(backup_stop);
}

/* fsync a file by name: the rename must not land before the data. */
static int
sync_path(const char *path, int flags)
{
	int fd, error = 0;

	if ((fd = open(path, flags | O_CLOEXEC)) == -1)
		return -errno;
	if (fsync(fd) == -1)
		error = -errno;
	close(fd);
	return error;
}

static int
backup_copy(struct ch *ch, sqlite3 *dst, const char *dest)
{
	struct progress p;
	sqlite3_backup *bk;
	int rc, total;

	/* A read transaction: the snapshot the copy is taken from. */
	rc = sqlite3_exec(ch->db, "BEGIN; SELECT count(*) FROM sqlite_schema",
	    NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		warnx("%s", sqlite3_errmsg(ch->db));
		return -EIO;
	}
	if ((bk = sqlite3_backup_init(dst, "main", ch->db, "main")) == NULL) {
		warnx("%s: %s", dest, sqlite3_errmsg(dst));
		sqlite3_exec(ch->db, "COMMIT", NULL, NULL, NULL);
		return -EIO;
	}
	progress_init(&p, ch->progress);
	do {
		rc = sqlite3_backup_step(bk, BACKUP_PAGES);
		total = sqlite3_backup_pagecount(bk);
		progress_tick(&p, "callhook: %d of %d pages copied",
		    total - sqlite3_backup_remaining(bk), total);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sleep_ms(PAUSE_MIN_MS);
	} while (!backup_stop && (rc == SQLITE_OK || rc == SQLITE_BUSY ||
	    rc == SQLITE_LOCKED));
	progress_done(&p);
	sqlite3_backup_finish(bk);
	sqlite3_exec(ch->db, "COMMIT", NULL, NULL, NULL);
	if (backup_stop)
		return -EINTR;
	if (rc != SQLITE_DONE) {
		warnx("%s: %s", dest, sqlite3_errstr(rc));
		return -EIO;
	}
	return 0;
}

/*
 * The database and the files SQLite keeps beside it, in the order a
 * restore gives them the name they are kept under: the database last
 * (restore_swap).
 */
static const char *const db_files[] = { "-wal", "-shm", "-journal", "" };
#define NDB_FILES	(sizeof(db_files) / sizeof(db_files[0]))

static bool
same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* path with its directory resolved: the name a rename would replace. */
static bool
resolved_name(const char *path, char *out, size_t outlen)
{
	char dir[PATH_MAX], base[PATH_MAX], real[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", path);
	if (realpath(dirname(dir), real) == NULL)
		return false;
	return snprintf(out, outlen, "%s/%s", strcmp(real, "/") == 0 ? "" :
	    real, basename(base)) < (int)outlen;
}

/*
 * Whether dest is the database or a file SQLite keeps beside it, which
 * the daemon and every reader rely on: replaced, the WAL loses what it
 * holds of committed events. By name and, for those that exist, by
 * inode (another name, a hard link).
 */
static bool
is_database_file(const char *dest, const char *db)
{
	char d[PATH_MAX], real[PATH_MAX], name[PATH_MAX + 16];

	if (realpath(db, real) == NULL || !resolved_name(dest, d, sizeof(d)))
		return same_file(dest, db);
	for (size_t i = 0; i < NDB_FILES; i++) {
		snprintf(name, sizeof(name), "%s%s", real, db_files[i]);
		if (strcmp(d, name) == 0 || same_file(dest, name))
			return true;
	}
	return false;
}

/*
 * What is at dest already: nothing, or a file --force may replace. A
 * directory, a symlink (dangling or not), a device or a FIFO is never
 * replaced: the backup needs a name of its own.
 */
static int
backup_dest_ok(const char *dest, bool force)
{
	struct stat sb;

	if (lstat(dest, &sb) == -1)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(sb.st_mode))
		warnx("%s is a directory; give the backup a file name, as in "
		    "%s%scalls.db", dest, dest, dest[strlen(dest) - 1] == '/' ?
		    "" : "/");
	else if (!S_ISREG(sb.st_mode))
		warnx("%s is not a regular file (a symbolic link, a device "
		    "or a FIFO); give the backup a file name of its own", dest);
	else if (!force)
		warnx("%s exists; --force replaces it", dest);
	else
		return 0;
	return -EEXIST;
}

/*
 * rename() that never replaces a file: RENAME_NOREPLACE, or where the
 * file system lacks it, link() and unlink(), which fail on an existing
 * name too. 0 or -errno.
 */
static int
rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0 &&
	    ((errno != EINVAL && errno != ENOSYS) || link(from, to) != 0 ||
	    unlink(from) != 0))
		return -errno;
	return 0;
}

/*
 * Move the finished copy into place; without --force, never over a file
 * that appeared meanwhile.
 */
static int
backup_place(const char *tmp, const char *dest, bool force)
{
	int error;

	if (force)
		return rename(tmp, dest) == 0 ? 0 : -errno;
	if ((error = rename_noreplace(tmp, dest)) == -EEXIST)
		warnx("%s exists; --force replaces it", dest);
	return error;
}

/* The temporary copy, and the journal SQLite may leave beside it. */
static void
backup_discard(const char *tmp)
{
	char journal[PATH_MAX + 16];

	unlink(tmp);
	snprintf(journal, sizeof(journal), "%s-journal", tmp);
	unlink(journal);
}

/*
 * A new empty file beside dest, its name in tmp, as readable as the
 * database and not more. 0, or -1 with the reason on stderr.
 */
static int
backup_temp(const struct ch *ch, const char *dest, char *tmp, size_t size)
{
	struct stat sb;
	int fd;

	if (snprintf(tmp, size, "%s.tmp-XXXXXX", dest) >= (int)size ||
	    (fd = mkstemp(tmp)) == -1) {
		warn("%s", dest);
		return -1;
	}
	if (stat(ch->cfg.database, &sb) == 0)
		fchmod(fd, sb.st_mode & 0666);
	close(fd);
	return 0;
}

/*
 * Copy the database into tmp and fsync it. 0 or a negative errno; the
 * reason is on stderr already for -EIO and -EINTR (a signal).
 */
static int
backup_to_file(struct ch *ch, const char *tmp, const char *dest)
{
	sqlite3 *dst = NULL;
	int error = -EIO;

	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK)
		warnx("%s: %s", tmp, sqlite3_errmsg(dst));
	else if ((error = backup_copy(ch, dst, dest)) == 0)
		error = sqlite3_close(dst) == SQLITE_OK ? 0 : -EIO;
	if (error != 0)
		sqlite3_close(dst);
	if (error == 0)
		error = sync_path(tmp, O_RDONLY);
	return error;
}

static int
backup_args(int argc, char **argv, bool *force)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "fh", longopts, NULL)) != -1) {
		if (c == OPT_FORCE || c == 'f')
			*force = true;
		else if (c == 'h')
			return ch_help("backup");
		else
			return ch_usage("backup");
	}
	return ch_operands("backup", argc, argv, 1, "DEST");
}

int
cmd_backup(struct ch *ch, int argc, char **argv)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *dest;
	struct stat sb;
	bool force = false;
	int rc, error;

	if ((rc = backup_args(argc, argv, &force)) >= 0)
		return rc;
	dest = argv[optind];
	/* Replaced, the database would be one a running daemon cannot see. */
	if (is_database_file(dest, ch->cfg.database)) {
		warnx("%s is the database or one of its files (-wal, -shm, "
		    "-journal); back it up elsewhere", dest);
		return CH_FAIL;
	}
	if ((rc = backup_dest_ok(dest, force)) != 0) {
		if (rc != -EEXIST)
			warnx("%s: %s", dest, strerror(-rc));
		return CH_FAIL;
	}
	if (ch_open_read(ch) != 0)
		return CH_FAIL;
	backup_catch_signals();
	if (backup_temp(ch, dest, tmp, sizeof(tmp)) != 0)
		return CH_FAIL;
	error = backup_to_file(ch, tmp, dest);
	/* The last look: a signal during the copy's fsync stops it too. */
	if (error == 0 && backup_stop)
		error = -EINTR;
	if (error == 0)
		error = backup_place(tmp, dest, force);
	if (error == 0) {
		snprintf(dir, sizeof(dir), "%s", dest);
		sync_path(dirname(dir), O_RDONLY | O_DIRECTORY);
		if (stat(dest, &sb) == 0)
			printf("%s: %lld bytes\n", dest, (long long)sb.st_size);
		return CH_OK;
	}
	if (error != -EIO && error != -EEXIST && error != -EINTR)
		warnx("%s: %s", dest, strerror(-error));
	backup_discard(tmp);
	if (backup_stop)
		backup_raise();
	return CH_FAIL;
}

/* restore */

#define SHM_DMS_BYTE	128	/* SQLite's "DMS" lock byte in the -shm */
#define ASIDE_TRIES	100
#define NO_DATABASE	(NDB_FILES - 1)	/* db_files[] index of "" */

struct restore {
	const char	*backup;		/* as given */
	char		 db[PATH_MAX];		/* the database's real path */
	char		 tmp[PATH_MAX];		/* the copy, until placed */
	char		 aside[PATH_MAX + 48];	/* DB.replaced-TIME[.N] */
	bool		 moved[NDB_FILES];	/* now at aside + suffix */
	bool		 gone[NDB_FILES];	/* and no more at db + suffix */
	bool		 placed;		/* the copy is at db */
	char		 step[2 * PATH_MAX + 128]; /* what failed */
	uid_t		 uid;			/* what the copy gets */
	gid_t		 gid;
	mode_t		 mode;
	long long	 calls;			/* in the backup */
	uid_t		 as_uid;		/* root works as this user */
	gid_t		 root_gid;		/* the egid before */
	char		 as_dir[PATH_MAX];	/* who owns this; or "" */
	struct dblock	 lock;
};

static int
restore_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
		return c == 'h' ? ch_help("restore") : ch_usage("restore");
	return ch_operands("restore", argc, argv, 1, "BACKUP");
}

/*
 * BACKUP is a file of its own: not a symbolic link, a directory, a
 * device or a FIFO, and not the database or a file SQLite keeps beside
 * it, by any name, which the restore would move aside.
 */
static int
restore_source_ok(const struct ch *ch, const char *path)
{
	struct stat sb;

	if (lstat(path, &sb) == -1) {
		warnx("%s: %s", path, errno == ENOENT ? "no such file" :
		    strerror(errno));
		return -ENOENT;
	}
	if (!S_ISREG(sb.st_mode)) {
		warnx("%s is not a regular file (a symbolic link, a directory, "
		    "a device or a FIFO); give the backup's own file", path);
		return -EINVAL;
	}
	if (is_database_file(path, ch->cfg.database)) {
		warnx("%s is the database or one of its files (-wal, -shm, "
		    "-journal); give a backup made by callhook backup", path);
		return -EINVAL;
	}
	return 0;
}

static int
restore_lock(const struct ch *ch, struct restore *rs)
{
	char msg[PATH_MAX + 300];
	int error;

	error = dblock_take(&rs->lock, ch->cfg.database, "callhook restore");
	if (error == -EWOULDBLOCK && rs->lock.holder[0] == '\0')
		warnx("%s is in use by callhookd (pid %s, which holds %s): "
		    "stop callhookd and callhookd.socket first (systemctl "
		    "stop callhookd.socket callhookd)", ch->cfg.database,
		    rs->lock.holder_pid, rs->lock.path);
	else if (error == -EWOULDBLOCK)
		warnx("%s is in use by %s (pid %s, which holds %s)",
		    ch->cfg.database, rs->lock.holder, rs->lock.holder_pid,
		    rs->lock.path);
	else if (error != 0 && rs->as_dir[0] != '\0') {
		dblock_error(&rs->lock, ch->cfg.database, error, msg,
		    sizeof(msg));
		warnx("%s (run as root, restore works as uid %u, the owner of "
		    "%s)", msg, (unsigned)rs->as_uid, rs->as_dir);
	} else if (error != 0) {
		dblock_error(&rs->lock, ch->cfg.database, error, msg,
		    sizeof(msg));
		warnx("%s", msg);
	}
	return error;
}

/*
 * Whether another process has the database open (callhook import or
 * prune, an sqlite3 shell), which would go on writing into the file
 * moved aside. Every connection to a WAL database holds a read lock on
 * one byte of the -shm file for as long as it is open (SQLite's "DMS"
 * lock); a -shm that cannot be opened tells nothing.
 */
static int
restore_check_unused(const struct restore *rs)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	    .l_start = SHM_DMS_BYTE, .l_len = 1 };
	char shm[PATH_MAX + 8];
	int fd, rc;

	snprintf(shm, sizeof(shm), "%s-shm", rs->db);
	fd = open(shm, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return 0;
	rc = fcntl(fd, F_GETLK, &fl);
	close(fd);
	if (rc == -1 || fl.l_type == F_UNLCK)
		return 0;
	warnx("%s is open in another process (pid %ld: callhook import or "
	    "prune, an sqlite3 shell?), which would go on writing into the "
	    "replaced file; end it first", rs->db, (long)fl.l_pid);
	return -EBUSY;
}

/* SQLite's text for the operator, on one line. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\n' || *s == '\r' || *s == '\t')
			*s = ' ';
}

/* Refuse a backup SQLite finds damaged, with its first complaint. */
static int
restore_quick_check(struct ch *ch, const struct restore *rs)
{
	sqlite3_stmt *stmt = NULL;
	const unsigned char *text;
	char why[256];
	int rc;

	rc = sqlite3_prepare_v2(ch->db, "PRAGMA quick_check(1)", -1, &stmt,
	    NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	text = rc == SQLITE_ROW ? sqlite3_column_text(stmt, 0) : NULL;
	snprintf(why, sizeof(why), "%s", text != NULL ? (const char *)text :
	    sqlite3_errmsg(ch->db));
	sqlite3_finalize(stmt);
	if (rc == SQLITE_ROW && strcmp(why, "ok") == 0)
		return 0;
	one_line(why);
	if (rc == SQLITE_ROW || (rc & 0xff) == SQLITE_CORRUPT ||
	    (rc & 0xff) == SQLITE_NOTADB)
		warnx("%s is damaged (PRAGMA quick_check: %s); restore another "
		    "backup", rs->backup, why);
	else
		warnx("%s: %s", rs->backup, why);
	return -EINVAL;
}

/*
 * The backup is whole and a callhookd database: store_open() has
 * refused another file, an empty one, or a schema newer than this
 * program's (an older one is migrated by callhookd at its start).
 */
static int
restore_check_source(struct ch *ch, struct restore *rs)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	if (restore_quick_check(ch, rs) != 0)
		return -EINVAL;
	rc = sqlite3_prepare_v2(ch->db, "SELECT count(*) FROM calls", -1,
	    &stmt, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
		rs->calls = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (rc == SQLITE_ROW)
		return 0;
	if (strstr(sqlite3_errmsg(ch->db), "no such table") != NULL)
		warnx("%s has no calls table, so it is not a backup of a "
		    "callhookd database", rs->backup);
	else
		warnx("%s: %s", rs->backup, sqlite3_errmsg(ch->db));
	return -EINVAL;
}

/*
 * What the copy gets: the owner, group and mode of the database it
 * replaces or, when there is none, its directory's owner and group and
 * mode 0640, so that a restore run as root leaves a file the daemon's
 * user can open.
 */
static int
restore_owner(struct restore *rs)
{
	char dir[PATH_MAX];
	struct stat sb;

	rs->mode = 0640;
	if (stat(rs->db, &sb) == 0)
		rs->mode = sb.st_mode & 0777;
	else if (errno == ENOENT) {
		snprintf(dir, sizeof(dir), "%s", rs->db);
		if (stat(dirname(dir), &sb) == -1) {
			warn("%s", dir);
			return -1;
		}
	} else {
		warn("%s", rs->db);
		return -1;
	}
	rs->uid = sb.st_uid;
	rs->gid = sb.st_gid;
	return 0;
}

/*
 * The copy's temporary file beside the database, with the owner, group
 * and mode it is to have, given through its descriptor: by name, a link
 * put in its place meanwhile would take them to another file. Before
 * the copy, so that its fsync covers them too. 0, or -1 said on stderr.
 */
static int
restore_temp(struct restore *rs)
{
	int fd;

	if (snprintf(rs->tmp, sizeof(rs->tmp), "%s.tmp-XXXXXX", rs->db) >=
	    (int)sizeof(rs->tmp) || (fd = mkstemp(rs->tmp)) == -1) {
		warn("%s", rs->db);
		return -1;
	}
	if (fchown(fd, rs->uid, rs->gid) == 0 && fchmod(fd, rs->mode) == 0) {
		close(fd);
		return 0;
	}
	if (rs->as_dir[0] != '\0')
		warn("%s: cannot give the copy the database's owner (uid %u, "
		    "gid %u) and mode (%03o): run as root, restore works as "
		    "uid %u, the owner of %s; give the database to that user "
		    "first", rs->tmp, (unsigned)rs->uid, (unsigned)rs->gid,
		    (unsigned)rs->mode, (unsigned)rs->as_uid, rs->as_dir);
	else
		warn("%s: cannot give the copy the database's owner (uid %u, "
		    "gid %u) and mode (%03o); run restore as root or as that "
		    "owner", rs->tmp, (unsigned)rs->uid, (unsigned)rs->gid,
		    (unsigned)rs->mode);
	close(fd);
	unlink(rs->tmp);
	return -1;
}

/*
 * DB.replaced-YYYYMMDDTHHMMSSZ, with .2, .3 after it when a restore in
 * the same second took that name: none of its files may exist yet.
 */
static int
restore_aside_name(struct restore *rs)
{
	char stamp[32], name[sizeof(rs->aside) + 16];
	time_t now = time(NULL);
	struct stat sb;
	struct tm tm;
	size_t i;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (int n = 1; n <= ASIDE_TRIES; n++) {
		if (n == 1)
			snprintf(rs->aside, sizeof(rs->aside),
			    "%s.replaced-%s", rs->db, stamp);
		else
			snprintf(rs->aside, sizeof(rs->aside),
			    "%s.replaced-%s.%d", rs->db, stamp, n);
		for (i = 0; i < NDB_FILES; i++) {
			snprintf(name, sizeof(name), "%s%s", rs->aside,
			    db_files[i]);
			if (lstat(name, &sb) == 0)
				break;
			if (errno != ENOENT) {
				warn("%s", name);
				return -1;
			}
		}
		if (i == NDB_FILES)
			return 0;
	}
	warnx("%s: %d restores this second already", rs->aside, ASIDE_TRIES);
	return -1;
}

/* The name of db_files[i] of the database, and of the one aside. */
static void
restore_names(const struct restore *rs, size_t i, char *live, size_t llen,
    char *aside, size_t alen)
{
	snprintf(live, llen, "%s%s", rs->db, db_files[i]);
	snprintf(aside, alen, "%s%s", rs->aside, db_files[i]);
}

/*
 * Put the copy in the database's place so that, wherever it stops (kill
 * -9, a power cut), the replaced files are whole under one name: the
 * aside name gets them as hard links first, the database last, so that
 * a database under that name has its -wal; then their own names go, the
 * database's first (a -wal left without its database is dropped by
 * SQLite, while the database without its -wal would lose the commits in
 * it); the copy comes last, as the -wal would be written into it. On
 * failure, rs->step says what failed, and rs->moved, rs->gone and
 * rs->placed what was done.
 */
static int
restore_swap(struct restore *rs)
{
	char live[PATH_MAX + 16], aside[sizeof(rs->aside) + 16];
	char copy[PATH_MAX];
	const char *dir;
	struct stat sb;
	size_t i;
	int error;

	snprintf(copy, sizeof(copy), "%s", rs->db);
	dir = dirname(copy);
	for (i = 0; i < NDB_FILES; i++) {
		restore_names(rs, i, live, sizeof(live), aside, sizeof(aside));
		snprintf(rs->step, sizeof(rs->step), "linking %s to %s", live,
		    aside);
		if (lstat(live, &sb) == -1) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (link(live, aside) != 0)
			return -errno;
		rs->moved[i] = true;
	}
	snprintf(rs->step, sizeof(rs->step), "fsync of %s", dir);
	if ((error = sync_path(dir, O_RDONLY | O_DIRECTORY)) != 0)
		return error;
	for (i = NDB_FILES; i-- > 0;) {
		if (!rs->moved[i])
			continue;
		restore_names(rs, i, live, sizeof(live), aside, sizeof(aside));
		snprintf(rs->step, sizeof(rs->step), "removing %s (kept as %s)",
		    live, aside);
		if (unlink(live) != 0)
			return -errno;
		rs->gone[i] = true;
	}
	snprintf(rs->step, sizeof(rs->step), "moving %s to %s", rs->tmp,
	    rs->db);
	if ((error = rename_noreplace(rs->tmp, rs->db)) != 0)
		return error;
	rs->placed = true;
	snprintf(rs->step, sizeof(rs->step), "fsync of %s", dir);
	return sync_path(dir, O_RDONLY | O_DIRECTORY);
}

/*
 * Undo what restore_swap() did, saying why it stopped and where the
 * files are now. The names aside go only once every file is back.
 */
static void
restore_undo(struct restore *rs, int error)
{
	char live[PATH_MAX + 16], aside[sizeof(rs->aside) + 16];
	char dir[PATH_MAX];
	bool back = true;
	size_t i;

	warnx("restore stopped: %s: %s", rs->step, strerror(-error));
	if (rs->placed && rename(rs->db, rs->tmp) != 0) {
		warn("%s, the copy of %s, could not be moved back to %s; the "
		    "files it replaced are at %s", rs->db, rs->backup, rs->tmp,
		    rs->aside);
		return;
	}
	for (i = 0; i < NDB_FILES; i++) {
		restore_names(rs, i, live, sizeof(live), aside, sizeof(aside));
		if (rs->gone[i] && link(aside, live) != 0) {
			warn("%s could not be put back as %s", aside, live);
			back = false;
		}
	}
	for (i = 0; back && i < NDB_FILES; i++) {
		restore_names(rs, i, live, sizeof(live), aside, sizeof(aside));
		if (rs->moved[i] && unlink(aside) != 0) {
			warn("%s, another name of %s, could not be removed",
			    aside, live);
			back = false;
		}
	}
	backup_discard(rs->tmp);
	snprintf(dir, sizeof(dir), "%s", rs->db);
	sync_path(dirname(dir), O_RDONLY | O_DIRECTORY);
	if (back)
		warnx("%s and its files are back as they were", rs->db);
}

/*
 * A lock file made here, by root, is the database's owner's, whether the
 * restore then succeeds or not: left root's, it would stop the daemon.
 */
static void
restore_lock_owner(const struct restore *rs)
{
	if (rs->lock.created && geteuid() == 0 &&
	    fchown(rs->lock.fd, rs->uid, rs->gid) != 0)
		warn("%s", rs->lock.path);
}

/*
 * DATABASE.unsaved.jsonl, named by the daemon from the path it was
 * given, which may be this one or the real one.
 */
static bool
restore_unsaved(const struct ch *ch, const struct restore *rs, char *path,
    size_t size)
{
	const char *names[] = { ch->cfg.database, rs->db };
	struct stat sb;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, size, "%s.unsaved.jsonl", names[i]);
		if (lstat(path, &sb) == 0)
			return true;
	}
	return false;
}

static void
restore_report(const struct ch *ch, const struct restore *rs)
{
	char with[64] = "", unsaved[PATH_MAX + 32];

	for (size_t i = 0; i < NO_DATABASE; i++)
		if (rs->moved[i])
			snprintf(with + strlen(with), sizeof(with) -
			    strlen(with), "%s%s", with[0] != '\0' ? ", " : "",
			    db_files[i]);
	printf("%s: restored from %s (%lld calls); ", ch->cfg.database,
	    rs->backup, rs->calls);
	if (rs->moved[NO_DATABASE]) {
		printf("the replaced database is now %s%s%s%s\n", rs->aside,
		    with[0] != '\0' ? " (with its " : "", with,
		    with[0] != '\0' ? ")" : "");
		printf("calls stored after the backup was made are only in "
		    "that file: callhook(1), restore, shows how to carry them "
		    "over once callhookd runs\n");
	} else if (with[0] != '\0')
		printf("there was no database to replace, only its %s, now "
		    "beside it as %s-*\n", with, rs->aside);
	else
		printf("there was no database to replace\n");
	if (restore_unsaved(ch, rs, unsaved, sizeof(unsaved)))
		printf("%s holds events callhookd set aside, which are in "
		    "neither file: load them with callhook import\n", unsaved);
}

/*
 * The absolute path of the database's directory, as given: the cwd
 * before a relative one.
 */
static int
restore_dir_path(const struct ch *ch, char *path, size_t size)
{
	char copy[PATH_MAX], cwd[PATH_MAX];
	const char *dir;

	snprintf(copy, sizeof(copy), "%s", ch->cfg.database);
	dir = dirname(copy);
	if (dir[0] == '/')
		return snprintf(path, size, "%s", dir) < (int)size ? 0 : -1;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	return snprintf(path, size, "%s/%s", cwd, dir) < (int)size ? 0 : -1;
}

/*
 * Run as root, restore works as the user who owns the database's
 * directory (the daemon's /var/lib/callhookd), when that is not root.
 * That user can leave links there to files only root may write: under
 * the database's name (root would replace the file it names), or under
 * the copy's temporary name while the copy is made (root would write
 * over it). As that user, a link leads nowhere they could not go. The
 * user is the owner of the first directory on the way to the database
 * (through links) that is not root's, as below it that user can change
 * anything. Only the effective ids change, so that user can neither
 * signal nor trace this process. 0, or -1 said on stderr.
 */
static int
restore_act_as_owner(const struct ch *ch, struct restore *rs)
{
	char path[PATH_MAX];
	struct passwd *pw;
	struct stat sb;
	gid_t gid;
	size_t i, len;
	char c;

	if (geteuid() != 0)
		return 0;
	if (restore_dir_path(ch, path, sizeof(path)) != 0) {
		warn("%s", ch->cfg.database);
		return -1;
	}
	len = strlen(path);
	for (i = 1; i <= len; i++) {
		if ((c = path[i]) != '/' && c != '\0')
			continue;
		path[i] = '\0';
		if (stat(path, &sb) != 0)
			return 0;	/* nothing below, no link to follow */
		if (sb.st_uid != 0)
			break;
		path[i] = c;
	}
	if (i > len)
		return 0;
	snprintf(rs->as_dir, sizeof(rs->as_dir), "%s", path);
	rs->as_uid = sb.st_uid;
	rs->root_gid = getegid();
	pw = getpwuid(sb.st_uid);
	gid = pw != NULL ? pw->pw_gid : sb.st_gid;
	if ((pw != NULL ? initgroups(pw->pw_name, gid) :
	    setgroups(1, &gid)) != 0 || setegid(gid) != 0 ||
	    seteuid(sb.st_uid) != 0) {
		warn("cannot act as uid %u, the owner of %s",
		    (unsigned)sb.st_uid, rs->as_dir);
		return -1;
	}
	return 0;
}

/*
 * Root again once done, and as dumpable as before (a change of ids
 * clears it), for what inspects the process as it ends (LeakSanitizer).
 */
static void
restore_act_done(const struct restore *rs)
{
	if (rs->as_dir[0] != '\0' && seteuid(0) == 0 &&
	    setegid(rs->root_gid) == 0)
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

/* The restore, once DATABASE.lock is held. */
static int
restore_locked(struct ch *ch, struct restore *rs)
{
	int error;

	if (restore_owner(rs) != 0)
		return CH_FAIL;
	restore_lock_owner(rs);
	if (restore_check_unused(rs) != 0)
		return CH_FAIL;
	backup_catch_signals();
	if (restore_temp(rs) != 0)
		return CH_FAIL;
	if ((error = backup_to_file(ch, rs->tmp, rs->db)) != 0 &&
	    error != -EIO && error != -EINTR)
		warnx("%s: %s", rs->tmp, strerror(-error));
	if (error == 0 && backup_stop)
		error = -EINTR;
	if (error == 0 && restore_aside_name(rs) != 0)
		error = -EEXIST;
	/* Again: an import may have begun during the copy. */
	if (error == 0 && restore_check_unused(rs) != 0)
		error = -EBUSY;
	if (error != 0) {
		backup_discard(rs->tmp);
		return CH_FAIL;
	}
	/*
	 * From here a signal waits until the end: the rest is a few
	 * renames, and is never left half done.
	 */
	if ((error = restore_swap(rs)) != 0) {
		restore_undo(rs, error);
		return CH_FAIL;
	}
	restore_report(ch, rs);
	return CH_OK;
}

int
cmd_restore(struct ch *ch, int argc, char **argv)
{
	struct restore rs;
	int rc;

	memset(&rs, 0, sizeof(rs));
	rs.lock.fd = -1;
	if ((rc = restore_args(argc, argv)) >= 0)
		return rc;
	rs.backup = argv[optind];
	/* The backup is opened before root acts as another user. */
	if (ch_check_replaceable(ch) != 0 ||
	    restore_source_ok(ch, rs.backup) != 0 ||
	    ch_open_other(ch, rs.backup) != 0 ||
	    restore_check_source(ch, &rs) != 0 ||
	    restore_act_as_owner(ch, &rs) != 0)
		return CH_FAIL;
	dblock_database_path(ch->cfg.database, rs.db);
	if (restore_lock(ch, &rs) == 0) {
		rc = restore_locked(ch, &rs);
		dblock_release(&rs.lock);
	} else
		rc = CH_FAIL;
	restore_act_done(&rs);
	/* Stopped by a signal: die of it, now that the copy is gone. */
	if (rc != CH_OK && backup_stop)
		backup_raise();
	return rc;
}

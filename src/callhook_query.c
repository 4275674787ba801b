/*
 * The read-only commands list, search, history, export and rejects.
 *
 * Each builds one SELECT from its filters, binds the values and hands the
 * statement to out_query, which prints rows as they are stepped. The
 * SELECT lists the columns in the order of the command's field table, so
 * a field's index is its column's.
 *
 * Sorting is left to the indexes: "newest first" is a backward walk of
 * call_time (or of the filter's (column, call_time) index), so list stops
 * after --limit rows whatever the size of the file.
 */

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callhook.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

#define DEFAULT_LIMIT	50
#define SNIPPET_TOKENS	16

/* The other party: the caller of an inbound call, else the callee. */
#define NUMBER_EXPR							\
	"CASE WHEN try_count = -1 OR call_type = 'inbound'"		\
	" THEN from_number ELSE to_number END"
#define LEAD_EXPR							\
	"CASE WHEN json_valid(post_call)"				\
	" THEN json_extract(post_call, '$.lead_status') END"

/* What the query commands share from their command lines. */
struct qargs {
	struct filter	 f;
	enum format	 fmt;
	long long	 limit;		/* 0: all */
};

/*
 * Field tables. DATA: CSV and JSON only; COL: a table column too; CUT: a
 * text column that may be cut (to min) to fit; TAB: the table only.
 */
#define DATA(key, kind)		{ key, NULL, kind, F_DATA, 0, 0 }
#define COL(key, head, kind, fl) \
	{ key, head, kind, F_TABLE | F_DATA | (fl), 0, 0 }
#define CUT(key, head, min, max) \
	{ key, head, K_TEXT, F_TABLE | F_DATA | F_SHRINK, min, max }
#define TAB(key, head, max)	{ key, head, K_TEXT, F_TABLE, 0, max }
/*
 * call_time, shown to the minute when it is "YYYY-MM-DD HH:MM:SS"; kept
 * as sent, it may have any other form, which is cut to that width when
 * the line needs it.
 */
#define TIME_COL							\
	{ "call_time", "TIME", K_TIME, F_TABLE | F_DATA | F_SHRINK,	\
	    sizeof("YYYY-MM-DD HH:MM") - 1, 0 }

/* list: the table shows what issue 5 asks for; CSV and JSON add more. */
static const struct field list_fields[] = {
	DATA("call_sid", K_TEXT),
	TIME_COL,
	CUT("call_type", "TYPE", 8, 8),
	CUT("agent_id", "AGENT", 8, 0),
	DATA("batch_id", K_TEXT),
	DATA("from_number", K_TEXT),
	DATA("to_number", K_TEXT),
	TAB("number", "TO/FROM", 16),
	COL("call_duration", "DUR", K_DURATION, F_RIGHT),
	DATA("try_count", K_INT),
	CUT("hangup_reason", "HANGUP", 8, 0),
	COL("conversion_status", "CONV", K_BOOL, 0),
	DATA("next_call_scheduled", K_BOOL),
	CUT("lead_status", "LEAD", 6, 0),
	DATA("disposition_reason", K_TEXT),
};
#define LIST_COLUMNS							\
	"call_sid, call_time, call_type, agent_id, batch_id, from_number," \
	" to_number, " NUMBER_EXPR ", call_duration, try_count,"	\
	" hangup_reason, conversion_status, next_call_scheduled, "	\
	LEAD_EXPR ", disposition_reason"

static const struct field search_fields[] = {
	COL("call_sid", "CALLSID", K_TEXT, 0),
	TIME_COL,
	CUT("agent_id", "AGENT", 8, 0),
	DATA("from_number", K_TEXT),
	DATA("to_number", K_TEXT),
	TAB("number", "TO/FROM", 16),
	COL("call_duration", "DUR", K_DURATION, F_RIGHT),
	COL("conversion_status", "CONV", K_BOOL, 0),
	DATA("disposition_reason", K_TEXT),
	{ "snippet", NULL, K_SNIPPET, F_DETAIL | F_DATA, 0, 0 },
	DATA("rank", K_REAL),
};

static const struct field history_fields[] = {
	DATA("call_sid", K_TEXT),
	TIME_COL,
	COL("direction", "DIR", K_TEXT, 0),
	DATA("call_type", K_TEXT),
	DATA("agent_id", K_TEXT),
	DATA("from_number", K_TEXT),
	DATA("to_number", K_TEXT),
	COL("try_count", "TRY", K_INT, F_RIGHT),
	COL("call_duration", "DUR", K_DURATION, F_RIGHT),
	CUT("hangup_reason", "HANGUP", 8, 0),
	COL("conversion_status", "CONV", K_BOOL, 0),
	DATA("next_call_scheduled", K_BOOL),
	CUT("disposition_reason", "DISPOSITION", 12, 0),
};

/* Every column but id and payload, in SPEC section 5's order. */
static const struct field export_fields[] = {
	DATA("call_sid", K_TEXT),
	DATA("event", K_TEXT),
	DATA("call_type", K_TEXT),
	DATA("agent_id", K_TEXT),
	DATA("version_id", K_TEXT),
	DATA("from_number", K_TEXT),
	DATA("to_number", K_TEXT),
	DATA("recording_url", K_TEXT),
	DATA("call_duration", K_REAL),
	DATA("call_time", K_TEXT),
	DATA("transcription", K_TEXT),
	DATA("batch_id", K_TEXT),
	DATA("hangup_reason", K_TEXT),
	DATA("call_metadata", K_JSON),
	DATA("try_count", K_INT),
	DATA("post_call", K_JSON),
	DATA("post_call_detail", K_JSON),
	DATA("functions_called", K_JSON),
	DATA("disposition_reason", K_TEXT),
	DATA("conversion_status", K_BOOL),
	DATA("next_call_scheduled", K_BOOL),
	DATA("call_link", K_TEXT),
	DATA("first_received_at", K_TEXT),
	DATA("received_at", K_TEXT),
	DATA("deliveries", K_INT),
	DATA("revision", K_INT),
	DATA("remote_addr", K_TEXT),
};
#define EXPORT_COLUMNS							\
	"call_sid, event, call_type, agent_id, version_id,"		\
	" from_number,"							\
	" to_number, recording_url, call_duration, call_time,"		\
	" transcription, batch_id, hangup_reason, call_metadata,"	\
	" try_count, post_call, post_call_detail, functions_called,"	\
	" disposition_reason, conversion_status, next_call_scheduled,"	\
	" call_link, first_received_at, received_at, deliveries,"	\
	" revision, remote_addr"

static const struct field rejects_fields[] = {
	DATA("id", K_INT),
	COL("time", "TIME (UTC)", K_TEXT, 0),
	CUT("remote_addr", "FROM", 15, 0),
	COL("status", "STATUS", K_INT, F_RIGHT),
	CUT("reason", "REASON", 20, 0),
	DATA("body", K_TEXT),
};

static int
parse_limit(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || *out < 0)
		return -EINVAL;
	return 0;
}

/* The formats of the commands that print rows. */
#define ROW_FORMATS	(FMT_BIT(FMT_TABLE) | FMT_BIT(FMT_CSV) |	\
			    FMT_BIT(FMT_JSON))

/* The options every query command but export has, after its filters. */
#define QUERY_LONGOPTS							\
	{ "limit", required_argument, NULL, OPT_LIMIT },		\
	{ "format", required_argument, NULL, OPT_FORMAT },		\
	{ "help", no_argument, NULL, 'h' },				\
	{ NULL, 0, NULL, 0 }

/* A query command's command line: what --format takes, what follows. */
struct query_usage {
	const char	*cmd;
	unsigned	 formats;	/* FMT_BIT()s */
	int		 operands;
	const char	*operand;	/* what a missing one is */
};

/*
 * getopt_long over the options of a query command (filters, --limit,
 * --format, --help, as longopts offers them), then its operands.
 * Returns -1 to go on, or the exit status (help printed, or a usage
 * error).
 */
static int
parse_query_args(const struct query_usage *u, int argc, char **argv,
    const struct option *longopts, struct qargs *a)
{
	const char *cmd = u->cmd;
	char err[256];
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_LIMIT:
			if (parse_limit(optarg, &a->limit) != 0)
				return ch_usage_error(cmd, "--limit %s: not a "
				    "count", optarg);
			break;
		case OPT_FORMAT:
			if (format_parse(optarg, u->formats, &a->fmt) != 0)
				return ch_usage_error(cmd, "--format %s: "
				    "unknown format", optarg);
			break;
		case 'h':
			return ch_help(cmd);
		default:
			rc = filter_option(&a->f, c, optarg, err, sizeof(err));
			if (rc < 0)
				return ch_usage_error(cmd, "%s", err);
			if (rc == 0)
				return ch_usage(cmd);
			break;
		}
	}
	return ch_operands(cmd, argc, argv, u->operands, u->operand);
}

static void
qargs_init(struct qargs *a, long long limit)
{
	filter_init(&a->f);
	a->fmt = FMT_TABLE;
	a->limit = limit;
}

/* Finish the SQL in s and prepare it; NULL with the error printed. */
static sqlite3_stmt *
prepare(struct ch *ch, sqlite3_str *s)
{
	sqlite3_stmt *stmt = NULL;
	char *sql = sqlite3_str_finish(s);

	if (sql == NULL) {
		warnx("out of memory");
		return NULL;
	}
	if (sqlite3_prepare_v2(ch->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		warnx("%s", sqlite3_errmsg(ch->db));
	sqlite3_free(sql);
	return stmt;
}

static int
bind_all(sqlite3_stmt *stmt, const struct qargs *a)
{
	char err[256];
	int i;

	if (filter_bind(&a->f, stmt, err, sizeof(err)) != 0) {
		warnx("%s", err);
		return -EINVAL;
	}
	if ((i = sqlite3_bind_parameter_index(stmt, ":limit")) > 0)
		sqlite3_bind_int64(stmt, i, a->limit > 0 ? a->limit : -1);
	return 0;
}

/* Run the statement and print it; says so on stderr when nothing matched. */
static int
run_query(struct ch *ch, sqlite3_stmt *stmt, const struct qargs *a,
    const struct field *fields, size_t nfields, const char *none)
{
	long long n = 0;
	int rc;

	if (bind_all(stmt, a) != 0) {
		sqlite3_finalize(stmt);
		return CH_FAIL;
	}
	rc = out_query(stmt, stdout, a->fmt, fields, nfields, ch->color, &n);
	sqlite3_finalize(stmt);
	if (rc == CH_OK && n == 0 && a->fmt == FMT_TABLE && none != NULL)
		fprintf(stderr, "%s\n", none);
	return rc;
}

/*
 * The OR of two indexes that a number filter makes would read every row
 * of a busy number (a caller ID is on thousands of calls) to sort them.
 * The (to_number, call_time) and (from_number, call_time) indexes hold
 * what that sort needs, so the newest ids are chosen from them first and
 * only those rows are read.
 */
static void
list_sql(sqlite3_str *s, const struct filter *f)
{
	struct filter rest = *f;

	rest.number = NULL;
	sqlite3_str_appendall(s, "SELECT " LIST_COLUMNS " FROM calls WHERE ");
	if (f->number == NULL)
		sqlite3_str_appendall(s, "1");
	else {
		sqlite3_str_appendall(s, "id IN (SELECT id FROM (SELECT id,"
		    " call_time FROM calls WHERE to_number IN " NUMBER_PARAMS);
		filter_sql(&rest, s);
		sqlite3_str_appendall(s, " UNION SELECT id, call_time FROM calls"
		    " WHERE from_number IN " NUMBER_PARAMS);
		filter_sql(&rest, s);
		sqlite3_str_appendall(s, ") ORDER BY call_time DESC, id DESC"
		    " LIMIT :limit)");
	}
	filter_sql(&rest, s);
	sqlite3_str_appendall(s, " ORDER BY call_time DESC, id DESC"
	    " LIMIT :limit");
}

int
cmd_list(struct ch *ch, int argc, char **argv)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS, QUERY_LONGOPTS,
	};
	static const struct query_usage u = { "list", ROW_FORMATS, 0, NULL };
	struct qargs a;
	sqlite3_stmt *stmt;
	sqlite3_str *s;
	int rc;

	qargs_init(&a, DEFAULT_LIMIT);
	if ((rc = parse_query_args(&u, argc, argv, longopts, &a)) >= 0)
		return rc;
	if (ch_open_read(ch) != 0)
		return CH_FAIL;
	s = sqlite3_str_new(ch->db);
	list_sql(s, &a.f);
	if ((stmt = prepare(ch, s)) == NULL)
		return CH_FAIL;
	return run_query(ch, stmt, &a, list_fields, nitems(list_fields),
	    "no calls");
}

static bool
have_fts(struct ch *ch)
{
	sqlite3_stmt *stmt;
	bool yes = false;

	if (sqlite3_prepare_v2(ch->db, "SELECT 1 FROM sqlite_schema"
	    " WHERE name = 'calls_fts'", -1, &stmt, NULL) != SQLITE_OK)
		return false;
	yes = sqlite3_step(stmt) == SQLITE_ROW;
	sqlite3_finalize(stmt);
	return yes;
}

/*
 * A query that is not FTS5 syntax ("follow-up", "don't") is searched for
 * as a list of plain words: each one quoted, so FTS5 reads it as a phrase
 * of the words its tokenizer finds in it.
 */
static char *
quote_terms(const char *q)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	const char *p = q, *end;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		end = strchr(p, ' ');
		if (end == NULL)
			end = p + strlen(p);
		sqlite3_str_appendchar(s, 1, '"');
		for (; p < end; p++) {
			if (*p == '"')
				sqlite3_str_appendchar(s, 1, '"');
			sqlite3_str_appendchar(s, 1, *p);
		}
		sqlite3_str_appendall(s, "\" ");
	}
	return sqlite3_str_finish(s);
}

/*
 * Ranked by bm25 over the matches. A word that most calls contain would
 * make that a rank of every call in the file (1.6 s for a million), so
 * the matches are read newest first (rowid order, which FTS5 walks
 * without sorting), and only the latest SEARCH_WINDOW of them that pass
 * the filters are ranked. Snippets are made for the rows printed only,
 * and only for those with a calls row: snippet() of an index entry whose
 * row is gone (an INSERT OR REPLACE by hand fires no delete trigger)
 * fails the whole search as "database disk image is malformed".
 * The filters need the calls row of each match: without them, no join.
 */
#define SEARCH_WINDOW	2000
#define SEARCH_SQL							\
	"WITH hits AS (SELECT calls_fts.rowid AS id, rank AS r"		\
	" FROM calls_fts%s WHERE calls_fts MATCH :q%s"			\
	" ORDER BY calls_fts.rowid DESC LIMIT %d),"			\
	" best AS (SELECT id FROM hits ORDER BY r, id DESC LIMIT :limit),"\
	" shown AS MATERIALIZED (SELECT calls_fts.rowid AS id, rank AS r,"\
	" replace(replace(replace(replace(snippet(calls_fts, -1, :on,"	\
	" :off, '…', %d), char(1), ' '), char(2), ' '), :on, char(1)),"	\
	" :off, char(2)) AS s FROM calls_fts WHERE calls_fts MATCH :q"	\
	" AND calls_fts.rowid >= (SELECT min(id) FROM best)"		\
	" AND +calls_fts.rowid IN best"					\
	" AND EXISTS (SELECT 1 FROM calls WHERE id = calls_fts.rowid))"	\
	" SELECT c.call_sid, c.call_time, c.agent_id, c.from_number,"	\
	" c.to_number, CASE WHEN c.try_count = -1 OR c.call_type ="	\
	" 'inbound' THEN c.from_number ELSE c.to_number END,"		\
	" c.call_duration, c.conversion_status, c.disposition_reason,"	\
	" shown.s, shown.r"						\
	" FROM shown JOIN calls AS c ON c.id = shown.id"		\
	" ORDER BY shown.r, shown.id DESC"

static sqlite3_stmt *
search_prepare(struct ch *ch, const struct qargs *a)
{
	sqlite3_str *s = sqlite3_str_new(ch->db), *w = sqlite3_str_new(NULL);
	char *where;

	filter_sql(&a->f, w);
	if (sqlite3_str_errcode(w) != SQLITE_OK) {
		sqlite3_free(sqlite3_str_finish(w));
		sqlite3_free(sqlite3_str_finish(s));
		warnx("out of memory");
		return NULL;
	}
	/* NULL when no filter was given: an empty string. */
	where = sqlite3_str_finish(w);
	sqlite3_str_appendf(s, SEARCH_SQL, where != NULL ?
	    " JOIN calls ON calls.id = calls_fts.rowid" : "",
	    where != NULL ? where : "", SEARCH_WINDOW, SNIPPET_TOKENS);
	sqlite3_free(where);
	return prepare(ch, s);
}

/*
 * The snippet's match marks are MARK_ON and MARK_OFF, which the output
 * trusts; a transcript may hold those bytes too (a \u0001 sent), which
 * showed as a match, and on a terminal left colour on. So snippet()
 * marks with strings no transcript holds, random for each run, and the
 * query turns those bytes into spaces before the marks into them.
 */
static void
bind_marks(sqlite3_stmt *stmt)
{
	unsigned char r[8];
	char hex[2 * sizeof(r) + 1], on[sizeof(hex) + 2], off[sizeof(hex) + 3];

	sqlite3_randomness(sizeof(r), r);
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	snprintf(on, sizeof(on), "{%s}", hex);
	snprintf(off, sizeof(off), "{/%s}", hex);
	sqlite3_bind_text(stmt, sqlite3_bind_parameter_index(stmt, ":on"),
	    on, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(stmt, sqlite3_bind_parameter_index(stmt, ":off"),
	    off, -1, SQLITE_TRANSIENT);
}

static int
search_run(struct ch *ch, const struct qargs *a, const char *query)
{
	sqlite3_stmt *stmt;
	long long n = 0;
	int rc;

	if ((stmt = search_prepare(ch, a)) == NULL)
		return CH_FAIL;
	sqlite3_bind_text(stmt, sqlite3_bind_parameter_index(stmt, ":q"),
	    query, -1, SQLITE_STATIC);
	bind_marks(stmt);
	if (bind_all(stmt, a) != 0) {
		sqlite3_finalize(stmt);
		return CH_FAIL;
	}
	rc = out_query(stmt, stdout, a->fmt, search_fields,
	    nitems(search_fields), ch->color, &n);
	sqlite3_finalize(stmt);
	if (rc == CH_OK && n == 0 && a->fmt == FMT_TABLE)
		fprintf(stderr, "no matches\n");
	return rc;
}

/*
 * Say so when calls wait for the index (the daemon indexes them once
 * events pause, see callhookd(8)): search cannot find them yet.
 */
static void
note_unindexed(struct ch *ch)
{
	sqlite3_stmt *stmt;
	sqlite3_int64 n = 0;

	if (sqlite3_prepare_v2(ch->db, "SELECT count(*) FROM fts_pending",
	    -1, &stmt, NULL) != SQLITE_OK)
		return;		/* an index of an earlier version */
	if (sqlite3_step(stmt) == SQLITE_ROW)
		n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (n > 0)
		warnx("note: %lld %s not in the search index yet (the daemon "
		    "indexes them when events pause)", (long long)n,
		    n == 1 ? "call is" : "calls are");
}

/* Whether FTS5 can parse q, asked without reading the index. */
static bool
fts_syntax_ok(struct ch *ch, const char *q)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite3_prepare_v2(ch->db, "SELECT 1 FROM calls_fts WHERE"
	    " calls_fts MATCH ?1 AND rowid = 0", -1, &stmt, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(stmt, 1, q, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

int
cmd_search(struct ch *ch, int argc, char **argv)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS, QUERY_LONGOPTS,
	};
	static const struct query_usage u = {
		"search", ROW_FORMATS, 1, "a query"
	};
	struct qargs a;
	char *quoted = NULL;
	int rc;

	qargs_init(&a, DEFAULT_LIMIT);
	if ((rc = parse_query_args(&u, argc, argv, longopts, &a)) >= 0)
		return rc;
	if (argv[optind][strspn(argv[optind], " \t\n")] == '\0')
		return ch_usage_error("search", "nothing to search for");
	if (ch_open_read(ch) != 0)
		return CH_FAIL;
	if (!have_fts(ch)) {
		warnx("%s has no full-text index: callhookd runs with "
		    "[store] fts = off", ch->cfg.database);
		return CH_FAIL;
	}
	if (!fts_syntax_ok(ch, argv[optind])) {
		if ((quoted = quote_terms(argv[optind])) == NULL) {
			warnx("out of memory");
			return CH_FAIL;
		}
	}
	rc = search_run(ch, &a, quoted != NULL ? quoted : argv[optind]);
	sqlite3_free(quoted);
	note_unindexed(ch);
	return rc;
}

int
cmd_history(struct ch *ch, int argc, char **argv)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS, QUERY_LONGOPTS,
	};
	static const struct query_usage u = {
		"history", ROW_FORMATS, 1, "a number"
	};
	struct qargs a;
	sqlite3_stmt *stmt;
	sqlite3_str *s;
	char err[256];
	int rc;

	qargs_init(&a, 0);
	if ((rc = parse_query_args(&u, argc, argv, longopts, &a)) >= 0)
		return rc;
	if (a.f.number != NULL)
		return ch_usage_error(u.cmd, "--number and a NUMBER");
	if (filter_option(&a.f, OPT_NUMBER, argv[optind], err,
	    sizeof(err)) < 0)
		return ch_usage_error(u.cmd, "%s", err);
	if (ch_open_read(ch) != 0)
		return CH_FAIL;
	s = sqlite3_str_new(ch->db);
	sqlite3_str_appendall(s, "SELECT call_sid, call_time,"
	    " CASE WHEN to_number IN " NUMBER_PARAMS " THEN 'out'"
	    " ELSE 'in' END, call_type, agent_id, from_number, to_number,"
	    " try_count, call_duration, hangup_reason, conversion_status,"
	    " next_call_scheduled, disposition_reason FROM calls WHERE 1");
	filter_sql(&a.f, s);
	sqlite3_str_appendall(s, " ORDER BY call_time, id LIMIT :limit");
	if ((stmt = prepare(ch, s)) == NULL)
		return CH_FAIL;
	return run_query(ch, stmt, &a, history_fields,
	    nitems(history_fields), "no calls to or from that number");
}

static int
export_run(struct ch *ch, sqlite3_stmt *stmt, const struct qargs *a)
{
	struct progress p;
	struct val row[nitems(export_fields)];
	struct out *o;
	long long n = 0;
	int error = 0, rc;

	if ((o = out_new(stdout, a->fmt, export_fields, nitems(export_fields),
	    false)) == NULL) {
		warnx("out of memory");
		return CH_FAIL;
	}
	progress_init(&p, ch->progress);
	while (error == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		val_from_stmt(stmt, row, nitems(row));
		error = out_row(o, row);
		progress_tick(&p, "callhook: exported %lld calls", ++n);
	}
	progress_done(&p);
	if (error == 0 && rc != SQLITE_DONE) {
		warnx("%s", sqlite3_errmsg(ch->db));
		error = -EIO;
	} else {
		if (error == 0)
			error = out_end(o);
		if (error != 0)
			warnx("output: %s", strerror(-error));
	}
	out_free(o);
	return error == 0 ? CH_OK : CH_FAIL;
}

int
cmd_export(struct ch *ch, int argc, char **argv)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS,
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct query_usage u = {
		"export", FMT_BIT(FMT_CSV) | FMT_BIT(FMT_JSONL), 0, NULL
	};
	struct qargs a;
	sqlite3_stmt *stmt;
	sqlite3_str *s;
	int rc;

	qargs_init(&a, 0);
	a.fmt = FMT_CSV;
	if ((rc = parse_query_args(&u, argc, argv, longopts, &a)) >= 0)
		return rc;
	if (ch_open_read(ch) != 0)
		return CH_FAIL;
	s = sqlite3_str_new(ch->db);
	sqlite3_str_appendall(s, "SELECT " EXPORT_COLUMNS
	    " FROM calls WHERE 1");
	filter_sql(&a.f, s);
	sqlite3_str_appendall(s, " ORDER BY call_time, id");
	if ((stmt = prepare(ch, s)) == NULL)
		return CH_FAIL;
	if (bind_all(stmt, &a) == 0)
		rc = export_run(ch, stmt, &a);
	else
		rc = CH_FAIL;
	sqlite3_finalize(stmt);
	return rc;
}

int
cmd_rejects(struct ch *ch, int argc, char **argv)
{
	static const struct option longopts[] = {
		QUERY_LONGOPTS,
	};
	static const struct query_usage u = {
		"rejects", ROW_FORMATS, 0, NULL
	};
	struct qargs a;
	sqlite3_stmt *stmt;
	sqlite3_str *s;
	int rc;

	qargs_init(&a, DEFAULT_LIMIT);
	if ((rc = parse_query_args(&u, argc, argv, longopts, &a)) >= 0)
		return rc;
	if (ch_open_read(ch) != 0)
		return CH_FAIL;
	s = sqlite3_str_new(ch->db);
	sqlite3_str_appendall(s, "SELECT id, time, remote_addr, status,"
	    " reason, body FROM rejects ORDER BY id DESC LIMIT :limit");
	if ((stmt = prepare(ch, s)) == NULL)
		return CH_FAIL;
	return run_query(ch, stmt, &a, rejects_fields, nitems(rejects_fields),
	    "no refused requests");
}

#ifndef CALLHOOK_CALLHOOK_H
#define CALLHOOK_CALLHOOK_H

/*
 * callhook, the query tool: what its files share. callhook.c parses the
 * global options and opens the store, then hands over to one command;
 * callhook_filter.c turns the filter options into SQL; callhook_out.c
 * prints rows as a table, CSV or JSON, with callhook_text.c (UTF-8,
 * widths, cleaning) and callhook_progress.c. The commands live in
 * callhook_query.c (list, search, history, export, rejects),
 * callhook_show.c, callhook_stats.c and callhook_admin.c (import, prune,
 * backup, restore).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sqlite3.h>

#include "config.h"
#include "store.h"

/* Exit statuses. */
#define CH_OK		0
#define CH_FAIL		1	/* the message is on stderr */
#define CH_USAGE	2	/* the usage line is on stderr */

/* What every command gets. */
struct ch {
	struct config	 cfg;		/* defaults or -c, and -d */
	const char	*relative_in;	/* -c, when its database is relative */
	bool		 color;		/* a terminal, no NO_COLOR */
	bool		 progress;	/* stderr is a terminal */
	struct store	*st;		/* from ch_open_read/write */
	sqlite3		*db;		/* store_db(st) */
};

/*
 * Open cfg.database read-only, or read-write (creating it only when create
 * is set). On failure the reason is on stderr (with a second line when a
 * relative database from -c was not found). 0 or a negative errno.
 */
int	ch_open_read(struct ch *ch);
int	ch_open_write(struct ch *ch, bool create);
/*
 * Open another file than cfg.database read-only into ch->st (restore's
 * backup), with the same checks as ch_open_read() but for the file's
 * existence, which the caller has looked at.
 */
int	ch_open_other(struct ch *ch, const char *path);
/*
 * Whether cfg.database may be replaced by restore: a regular file, or
 * nothing, unless it is a relative path from -c that is not here.
 * 0, or a negative errno with the reason on stderr.
 */
int	ch_check_replaceable(const struct ch *ch);

/* The commands. Each parses its own argv (argv[0] is its name). */
int	cmd_list(struct ch *, int, char **);
int	cmd_show(struct ch *, int, char **);
int	cmd_search(struct ch *, int, char **);
int	cmd_history(struct ch *, int, char **);
int	cmd_export(struct ch *, int, char **);
int	cmd_rejects(struct ch *, int, char **);
int	cmd_stats(struct ch *, int, char **);
int	cmd_import(struct ch *, int, char **);
int	cmd_prune(struct ch *, int, char **);
int	cmd_backup(struct ch *, int, char **);
int	cmd_restore(struct ch *, int, char **);

/* "usage: callhook ..." for a command (NULL: the general one) on stderr. */
int	ch_usage(const char *cmd);
/* A message, then the usage line; returns CH_USAGE. */
int	ch_usage_error(const char *cmd, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/*
 * Check that exactly n operands follow the options (what names the first
 * one, for "... is needed"). -1 when they do, else CH_USAGE.
 */
int	ch_operands(const char *cmd, int argc, char **argv, int n,
	    const char *what);
/* Print the long help of a command on stdout. */
int	ch_help(const char *cmd);

/*
 * Filters, shared by list, search, stats, history and export. Every value
 * that reaches SQL is bound, never pasted.
 */
#define TIME_LEN	20	/* "YYYY-MM-DD HH:MM:SS" */
#define NUMBER_FORMS	4

struct filter {
	char		 since[TIME_LEN];	/* call_time >= since */
	char		 until[TIME_LEN];	/* call_time < until */
	const char	*agent;
	const char	*batch;
	const char	*hangup;
	const char	*number;		/* as typed */
	const char	*country_code;
	int		 converted;		/* -1 any, 0, 1 */
};

/* getopt_long values of the filter options, and their table entries. */
enum {
	OPT_SINCE = 0x100, OPT_UNTIL, OPT_AGENT, OPT_BATCH, OPT_NUMBER,
	OPT_HANGUP, OPT_CONVERTED, OPT_NOT_CONVERTED, OPT_COUNTRY,
	OPT_LIMIT, OPT_FORMAT, OPT_BY, OPT_REVISIONS, OPT_OLDER,
	OPT_TRANSCRIPTS, OPT_FORCE, OPT_HELP,
};
#define FILTER_LONGOPTS							\
	{ "since", required_argument, NULL, OPT_SINCE },		\
	{ "until", required_argument, NULL, OPT_UNTIL },		\
	{ "agent", required_argument, NULL, OPT_AGENT },		\
	{ "batch", required_argument, NULL, OPT_BATCH },		\
	{ "number", required_argument, NULL, OPT_NUMBER },		\
	{ "hangup", required_argument, NULL, OPT_HANGUP },		\
	{ "converted", no_argument, NULL, OPT_CONVERTED },		\
	{ "not-converted", no_argument, NULL, OPT_NOT_CONVERTED },	\
	{ "country-code", required_argument, NULL, OPT_COUNTRY }

void	filter_init(struct filter *f);
/*
 * Apply one getopt_long result. Returns 1 when opt was a filter option,
 * 0 when it was not, or -EINVAL with a message in err.
 */
int	filter_option(struct filter *f, int opt, const char *arg, char *err,
	    size_t errlen);
/*
 * Append " AND ..." conditions on the calls table to s, with named
 * parameters that filter_bind fills.
 */
void	filter_sql(const struct filter *f, sqlite3_str *s);
/* The parameters that filter_bind fills with the forms of f->number. */
#define NUMBER_PARAMS	"(:n0, :n1, :n2, :n3)"
int	filter_bind(const struct filter *f, sqlite3_stmt *stmt, char *err,
	    size_t errlen);

/*
 * "2025-12-19", "2025-12-19 16:00[:05]" (or with a T), or a relative
 * "90d", "12h", "30m", "2w" counted back from now in local time. Fills
 * from and to (exclusive) as "YYYY-MM-DD HH:MM:SS": for a date, its
 * first second and the next day's; for a relative time both are the
 * instant. 0 or -EINVAL.
 */
int	time_parse(const char *s, char *from, char *to);

/*
 * The stored forms a phone number may have: the digits with the country
 * code, the same with a '+', and for a national number the bare ten
 * digits and with a leading 0. Spaces, dashes, dots, parentheses and a
 * leading '+' or "00" are ignored; a bare ten-digit number (or eleven
 * with a leading 0) gets cc. Returns how many forms (>= 2) or -EINVAL.
 */
int	number_forms(const char *in, const char *cc,
	    char out[NUMBER_FORMS][32]);

/*
 * Output. A view is the list of fields a command prints; a row is one
 * struct val per field. Tables buffer their first rows to size the
 * columns to 80 characters and stream the rest; CSV and JSON stream.
 */
enum format { FMT_TABLE, FMT_CSV, FMT_JSON, FMT_JSONL };

enum kind {
	K_TEXT,
	K_INT,
	K_REAL,
	K_BOOL,		/* yes/no in tables, true/false elsewhere */
	K_DURATION,	/* seconds; m:ss (h:mm:ss) in tables */
	K_TIME,		/* "YYYY-MM-DD HH:MM:SS"; minutes in tables */
	K_JSON,		/* JSON text; embedded as JSON in JSON output */
	K_PERCENT,	/* a ratio; "12.5%" in tables */
	K_SNIPPET,	/* text with \1..\2 around matches */
};

/* Field flags. */
#define F_TABLE		0x1	/* a table column */
#define F_DATA		0x2	/* a CSV / JSON field */
#define F_RIGHT		0x4	/* right-aligned in tables */
#define F_SHRINK	0x8	/* may be cut to fit 80 columns */
#define F_DETAIL	0x10	/* printed under its table row */

struct field {
	const char	*key;		/* CSV header, JSON member */
	const char	*head;		/* table header */
	enum kind	 kind;
	int		 flags;
	int		 min;		/* F_SHRINK: narrowest, or 0 */
	int		 max;		/* widest, or 0: no limit */
};

enum vtype { V_NULL, V_INT, V_REAL, V_TEXT };

struct val {
	enum vtype	 t;
	long long	 i;
	double		 r;
	const char	*s;
	size_t		 len;
};

struct out;

struct out	*out_new(FILE *fp, enum format fmt,
		    const struct field *fields, size_t nfields, bool color);
/* Print one row; the vals may be reused once it returns. 0 or -errno. */
int	 out_row(struct out *o, const struct val *row);
/*
 * JSON text as printed by cJSON, with DEL, the C1 controls and the bidi
 * formatting characters escaped too.
 */
int	 out_json_puts(const char *text, FILE *fp);
/* Flush what is buffered and close the JSON array. 0 or -errno. */
int	 out_end(struct out *o);
void	 out_free(struct out *o);

/* The F_DATA fields of a row as a new JSON object; NULL without memory. */
struct cJSON *out_json_object(const struct field *fields, size_t nfields,
	    const struct val *row);

/* Read the columns of a result row into row[0..n-1]. */
void	 val_from_stmt(sqlite3_stmt *stmt, struct val *row, size_t n);
/*
 * Step stmt to the end, printing each row through a new out. Returns
 * CH_OK or CH_FAIL (the message printed). *count gets the rows printed.
 */
int	 out_query(sqlite3_stmt *stmt, FILE *fp, enum format fmt,
	    const struct field *fields, size_t nfields, bool color,
	    long long *count);

/* Parse a --format value among the allowed ones (a bit per format). */
int	 format_parse(const char *s, unsigned allowed, enum format *out);
#define FMT_BIT(f)	(1u << (f))

/* callhook_text.c */

#define MARK_ON		'\1'	/* around a match in a snippet */
#define MARK_OFF	'\2'

#define CLEAN_NL	0x1	/* keep newlines */
#define CLEAN_MARKS	0x2	/* keep MARK_ON and MARK_OFF */
#define CLEAN_KEEP	0x4	/* keep all, NUL too: only make it UTF-8 */

/* m:ss or h:mm:ss of a number of seconds, rounded. */
void	 fmt_duration(double secs, char *buf, size_t len);
/*
 * Copy len bytes of s into buf for a terminal: control characters
 * become spaces (but see flags), bytes that are not UTF-8 become U+FFFD.
 * buf must hold 3 * len + 1 bytes. Returns the length written.
 */
size_t	 text_clean(const char *s, size_t len, int flags, char *buf);
/* A code point that text_clean() makes a space: controls, bidi marks. */
bool	 cp_unsafe(unsigned cp);
/* The UTF-8 sequence at p: its length (0 if invalid) and code point. */
size_t	 utf8_decode(const unsigned char *p, size_t avail, unsigned *cp);
/* Terminal columns of a code point (markers: 0), and of UTF-8 text. */
int	 cp_width(unsigned cp);
int	 text_width(const char *s);
/* s (clean text) in width columns: cut with an ellipsis, padded. */
void	 print_fitted(FILE *fp, const char *s, int width);
/* Pretty JSON text, each line after the first indented; NULL if not JSON. */
char	*json_pretty(const char *text, int indent);

/* callhook_progress.c */

/* Progress on stderr, shown when on a terminal and past a second. */
struct progress {
	bool		 enabled;
	bool		 shown;
	uint64_t	 start_ns;
	uint64_t	 last_ns;
};
void	progress_init(struct progress *p, bool enabled);
void	progress_tick(struct progress *p, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	progress_done(struct progress *p);

#endif

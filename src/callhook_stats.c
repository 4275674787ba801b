/*
 * callhook stats: per group (agent, batch, day, hangup reason,
 * disposition) the calls, conversions, total and median duration,
 * callbacks scheduled and the success rate of function calls.
 *
 * SQLite has no median, and the function-call counts are inside a JSON
 * array, so the rows are read once, in whatever order the table gives
 * them (no sort), and added up here in a hash table of groups. Each group
 * keeps its durations for the median: eight bytes a call.
 */

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callhook.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

#define GROUPS_MIN	64

struct group {
	char		*key;		/* NULL: calls without one */
	size_t		 keylen;
	long long	 calls;
	long long	 converted;
	long long	 callbacks;
	long long	 fn_calls;
	long long	 fn_ok;
	double		 dur_sum;
	double		*durs;
	size_t		 ndurs;
	size_t		 cap;
};

struct groups {
	struct group	**slot;		/* open addressing */
	size_t		  cap;
	size_t		  n;
	struct group	 *null_key;
	struct group	  all;
};

static const struct {
	const char	*name;
	const char	*expr;
	const char	*head;
} bys[] = {
	{ "agent", "agent_id", "AGENT" },
	{ "batch", "batch_id", "BATCH" },
	{ "day", "substr(call_time, 1, 10)", "DAY" },
	{ "hangup", "hangup_reason", "HANGUP" },
	{ "disposition", "disposition_reason", "DISPOSITION" },
};

#define NUM(key, head, kind) \
	{ key, head, kind, F_TABLE | F_DATA | F_RIGHT, 0, 0 }

static const struct field stats_fields[] = {
	{ "group", "GROUP", K_TEXT, F_TABLE | F_DATA | F_SHRINK, 12, 0 },
	NUM("calls", "CALLS", K_INT),
	NUM("converted", "CONV", K_INT),
	NUM("conversion_rate", "RATE", K_PERCENT),
	NUM("total_duration", "TOTAL", K_DURATION),
	NUM("median_duration", "MEDIAN", K_DURATION),
	NUM("callbacks", "CALLBACKS", K_INT),
	{ "function_calls", NULL, K_INT, F_DATA, 0, 0 },
	NUM("function_success_rate", "FN OK", K_PERCENT),
};

static uint64_t
hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static int
groups_grow(struct groups *g)
{
	size_t cap = g->cap ? g->cap * 2 : GROUPS_MIN, j;
	struct group **slot = calloc(cap, sizeof(*slot));

	if (slot == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < g->cap; i++) {
		if (g->slot[i] == NULL)
			continue;
		j = hash(g->slot[i]->key, g->slot[i]->keylen) & (cap - 1);
		while (slot[j] != NULL)
			j = (j + 1) & (cap - 1);
		slot[j] = g->slot[i];
	}
	free(g->slot);
	g->slot = slot;
	g->cap = cap;
	return 0;
}

/* The group of key (len bytes, or NULL), created on first sight. */
static struct group *
groups_get(struct groups *g, const char *key, size_t len)
{
	struct group *gr;
	size_t j;

	if (key == NULL) {
		if (g->null_key == NULL)
			g->null_key = calloc(1, sizeof(*g->null_key));
		return g->null_key;
	}
	if ((g->n + 1) * 2 > g->cap && groups_grow(g) != 0)
		return NULL;
	j = hash(key, len) & (g->cap - 1);
	for (; (gr = g->slot[j]) != NULL; j = (j + 1) & (g->cap - 1))
		if (gr->keylen == len && memcmp(gr->key, key, len) == 0)
			return gr;
	/* All len bytes: a key written by hand may hold a NUL. */
	if ((gr = calloc(1, sizeof(*gr))) == NULL ||
	    (gr->key = malloc(len + 1)) == NULL) {
		free(gr);
		return NULL;
	}
	memcpy(gr->key, key, len);
	gr->key[len] = '\0';
	gr->keylen = len;
	g->slot[j] = gr;
	g->n++;
	return gr;
}

static void
group_fini(struct group *gr)
{
	free(gr->key);
	free(gr->durs);
}

static void
groups_free(struct groups *g)
{
	for (size_t i = 0; i < g->cap; i++) {
		if (g->slot[i] != NULL) {
			group_fini(g->slot[i]);
			free(g->slot[i]);
		}
	}
	if (g->null_key != NULL) {
		group_fini(g->null_key);
		free(g->null_key);
	}
	group_fini(&g->all);
	free(g->slot);
}

static bool
json_delim(char c)
{
	return c == ',' || c == ']' || c == '}' || c == ':' || c == ' ' ||
	    c == '\t' || c == '\n' || c == '\r';
}

/*
 * Count the entries of the functions_called array and those that are
 * objects with "success": true. A scan, not a parse: cJSON would
 * allocate a tree per call, most of the time of a million-call stats.
 * The text was written by the store module (valid, compact JSON); on
 * anything else the counts are only as good as the text, and the scan
 * still ends at len.
 */
static void
count_functions(const char *s, size_t len, long long *calls, long long *ok)
{
	const char *p = s, *end = s + len, *q;
	uint64_t objects = 0;	/* bit d: the container at depth d + 1 */
	int depth = 0;
	bool key = false, success = false;

	while (p < end) {
		if (json_delim(*p)) {
			if (*p == ',' && depth > 0)
				key = objects >> (depth - 1) & 1;
			else if ((*p == ']' || *p == '}') && --depth < 0)
				return;
			p++;
			continue;
		}
		if (depth == 1 && !key)
			(*calls)++;
		if (*p == '"') {
			for (q = ++p; p < end && *p != '"'; p++)
				p += *p == '\\';
			if (depth == 2)
				success = key && p - q == 7 &&
				    memcmp(q, "success", 7) == 0;
			key = false;
			p++;
		} else if (*p == '[' || *p == '{') {
			if (depth == 63)
				return;
			if (*p == '{')
				objects |= 1ULL << depth;
			else
				objects &= ~(1ULL << depth);
			key = *p++ == '{';
			depth++;
			success = false;
		} else {
			if (depth == 2 && success && end - p >= 4 &&
			    memcmp(p, "true", 4) == 0)
				(*ok)++;
			success = false;
			do
				p++;
			while (p < end && !json_delim(*p));
		}
	}
}

static int
group_add(struct group *gr, sqlite3_stmt *stmt, long long fcalls,
    long long fok)
{
	double *d;

	gr->calls++;
	gr->converted += sqlite3_column_int(stmt, 2) == 1;
	gr->callbacks += sqlite3_column_int(stmt, 3) == 1;
	gr->fn_calls += fcalls;
	gr->fn_ok += fok;
	if (sqlite3_column_type(stmt, 1) == SQLITE_NULL)
		return 0;
	if (gr->ndurs == gr->cap) {
		gr->cap = gr->cap ? gr->cap * 2 : 16;
		if ((d = realloc(gr->durs, gr->cap * sizeof(*d))) == NULL)
			return -ENOMEM;
		gr->durs = d;
	}
	gr->durs[gr->ndurs] = sqlite3_column_double(stmt, 1);
	gr->dur_sum += gr->durs[gr->ndurs++];
	return 0;
}

/* Columns: key, call_duration, conversion_status, next_call_scheduled,
 * functions_called. */
static int
stats_read(sqlite3_stmt *stmt, struct groups *g, bool grouped)
{
	struct group *gr;
	long long fcalls, fok;
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		fcalls = fok = 0;
		count_functions((const char *)sqlite3_column_text(stmt, 4),
		    (size_t)sqlite3_column_bytes(stmt, 4), &fcalls, &fok);
		if (group_add(&g->all, stmt, fcalls, fok) != 0)
			return -ENOMEM;
		if (!grouped)
			continue;
		gr = groups_get(g, (const char *)sqlite3_column_text(stmt, 0),
		    (size_t)sqlite3_column_bytes(stmt, 0));
		if (gr == NULL || group_add(gr, stmt, fcalls, fok) != 0)
			return -ENOMEM;
	}
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static void
swap(double *a, double *b)
{
	double t = *a;

	*a = *b;
	*b = t;
}

/*
 * Put the k-th smallest of a[0..n-1] at a[k], the smaller ones before it
 * (quickselect: linear on average, where sorting a million durations
 * took a fifth of stats' time).
 */
static void
select_kth(double *a, size_t n, size_t k)
{
	long lo = 0, hi = (long)n - 1, i, j, kk = (long)k;
	double pivot;

	while (lo < hi) {
		pivot = a[lo + (hi - lo) / 2];
		i = lo;
		j = hi;
		while (i <= j) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j)
				swap(&a[i++], &a[j--]);
		}
		if (kk <= j)
			hi = j;
		else if (kk >= i)
			lo = i;
		else
			return;
	}
}

static double
median(double *a, size_t n)
{
	double below;

	select_kth(a, n, n / 2);
	if (n % 2)
		return a[n / 2];
	below = a[0];
	for (size_t i = 1; i < n / 2; i++)
		if (a[i] > below)
			below = a[i];
	return below / 2 + a[n / 2] / 2;	/* the sum may overflow */
}

static int
cmp_calls(const void *a, const void *b)
{
	const struct group *x = *(struct group *const *)a;
	const struct group *y = *(struct group *const *)b;

	if (x->calls != y->calls)
		return x->calls < y->calls ? 1 : -1;
	if (x->key == NULL || y->key == NULL)
		return (x->key == NULL) - (y->key == NULL);
	return strcmp(x->key, y->key);
}

static int
cmp_key(const void *a, const void *b)
{
	const struct group *x = *(struct group *const *)a;
	const struct group *y = *(struct group *const *)b;

	if (x->key == NULL || y->key == NULL)
		return (x->key == NULL) - (y->key == NULL);
	return strcmp(x->key, y->key);
}

static void
set_int(struct val *v, long long i)
{
	v->t = V_INT;
	v->i = i;
}

static void
set_ratio(struct val *v, long long num, long long den)
{
	v->t = den > 0 ? V_REAL : V_NULL;
	v->r = den > 0 ? (double)num / (double)den : 0;
}

static int
print_group(struct out *o, struct group *gr, const char *label, bool table)
{
	struct val row[nitems(stats_fields)];
	size_t n = gr->ndurs;

	memset(row, 0, sizeof(row));
	row[0].t = label != NULL || gr->key != NULL || table ? V_TEXT : V_NULL;
	row[0].s = label != NULL ? label : gr->key != NULL ? gr->key :
	    "(none)";
	row[0].len = row[0].t != V_TEXT ? 0 : label == NULL &&
	    gr->key != NULL ? gr->keylen : strlen(row[0].s);
	set_int(&row[1], gr->calls);
	set_int(&row[2], gr->converted);
	set_ratio(&row[3], gr->converted, gr->calls);
	row[4].t = V_REAL;
	row[4].r = gr->dur_sum;
	if (n > 0) {
		row[5].t = V_REAL;
		row[5].r = median(gr->durs, n);
	}
	set_int(&row[6], gr->callbacks);
	set_int(&row[7], gr->fn_calls);
	set_ratio(&row[8], gr->fn_ok, gr->fn_calls);
	return out_row(o, row);
}

/* The groups in order; the total last, in a table only, or alone. */
static int
stats_print(struct groups *g, int by, enum format fmt, bool color)
{
	struct field fields[nitems(stats_fields)];
	struct group **list;
	struct out *o;
	size_t n = 0;
	int error = 0;
	bool table = fmt == FMT_TABLE;

	memcpy(fields, stats_fields, sizeof(fields));
	if (by >= 0)
		fields[0].head = bys[by].head;
	if ((list = calloc(g->n + 1, sizeof(*list))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < g->cap; i++)
		if (g->slot[i] != NULL)
			list[n++] = g->slot[i];
	if (g->null_key != NULL)
		list[n++] = g->null_key;
	qsort(list, n, sizeof(*list), by >= 0 && strcmp(bys[by].name,
	    "day") == 0 ? cmp_key : cmp_calls);
	if ((o = out_new(stdout, fmt, fields, nitems(fields), color)) == NULL)
		error = -ENOMEM;
	for (size_t i = 0; error == 0 && i < n; i++)
		error = print_group(o, list[i], NULL, table);
	if (error == 0 && (by < 0 || table))
		error = print_group(o, &g->all, by < 0 ? "all" : "(all)",
		    table);
	if (error == 0)
		error = out_end(o);
	out_free(o);
	free(list);
	return error;
}

static int
parse_by(const char *s)
{
	for (size_t i = 0; i < nitems(bys); i++)
		if (strcmp(bys[i].name, s) == 0)
			return (int)i;
	return -1;
}

static int
stats_args(int argc, char **argv, struct filter *f, int *by,
    enum format *fmt)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS,
		{ "by", required_argument, NULL, OPT_BY },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[256];
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_BY:
			if ((*by = parse_by(optarg)) < 0)
				return ch_usage_error("stats", "--by %s: "
				    "agent, batch, day, hangup or "
				    "disposition", optarg);
			break;
		case OPT_FORMAT:
			if (format_parse(optarg, FMT_BIT(FMT_TABLE) |
			    FMT_BIT(FMT_CSV) | FMT_BIT(FMT_JSON), fmt) != 0)
				return ch_usage_error("stats", "--format %s: "
				    "unknown format", optarg);
			break;
		case 'h':
			return ch_help("stats");
		default:
			rc = filter_option(f, c, optarg, err, sizeof(err));
			if (rc < 0)
				return ch_usage_error("stats", "%s", err);
			if (rc == 0)
				return ch_usage("stats");
			break;
		}
	}
	return ch_operands("stats", argc, argv, 0, NULL);
}

int
cmd_stats(struct ch *ch, int argc, char **argv)
{
	struct groups g;
	struct filter f;
	enum format fmt = FMT_TABLE;
	sqlite3_stmt *stmt = NULL;
	sqlite3_str *s;
	char *sql, err[256];
	int by = -1, rc, error;

	filter_init(&f);
	if ((rc = stats_args(argc, argv, &f, &by, &fmt)) >= 0)
		return rc;
	if (ch_open_read(ch) != 0)
		return CH_FAIL;
	memset(&g, 0, sizeof(g));
	s = sqlite3_str_new(ch->db);
	sqlite3_str_appendf(s, "SELECT %s, call_duration, conversion_status,"
	    " next_call_scheduled, functions_called FROM calls WHERE 1",
	    by >= 0 ? bys[by].expr : "NULL");
	filter_sql(&f, s);
	if ((sql = sqlite3_str_finish(s)) == NULL ||
	    sqlite3_prepare_v2(ch->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
	    filter_bind(&f, stmt, err, sizeof(err)) != 0) {
		warnx("%s", stmt == NULL ? sqlite3_errmsg(ch->db) : err);
		rc = CH_FAIL;
		goto done;
	}
	if ((error = stats_read(stmt, &g, by >= 0)) != 0)
		warnx("%s", error == -EIO ? sqlite3_errmsg(ch->db) :
		    strerror(-error));
	else if (g.all.calls == 0 && fmt == FMT_TABLE)
		fprintf(stderr, "no calls\n");	/* as list says it */
	else if ((error = stats_print(&g, by, fmt, ch->color)) != 0)
		warnx("output: %s", strerror(-error));
	rc = error == 0 ? CH_OK : CH_FAIL;
 done:
	sqlite3_finalize(stmt);
	sqlite3_free(sql);
	groups_free(&g);
	return rc;
}

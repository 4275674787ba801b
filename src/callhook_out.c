/*
 * callhook's output: rows as an 80-column table, CSV (RFC 4180) or JSON.
 *
 * A table has to know its column widths before its first line, so it
 * holds its first TABLE_SAMPLE rows, sizes the columns to them and then
 * streams; a later, wider value is cut like any other. Columns marked
 * F_SHRINK give up width, widest first, until the line fits 80
 * characters; a cut value ends in an ellipsis. Everything printed to a
 * table goes through text_clean first.
 *
 * CSV and JSON stream one row at a time, so export holds one row in
 * memory however many it prints. JSON text from the database (post_call
 * and friends) is embedded as JSON, not as a string.
 */

#include <sys/ioctl.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include <cjson/cJSON.h>

#include "callhook.h"
#include "event.h"

#define TABLE_WIDTH	80
#define TABLE_SAMPLE	1000	/* rows that decide the column widths */
#define COL_GAP		2
#define COL_MIN		4
#define DETAIL_INDENT	4

#define SGR_BOLD	"\033[1m"
#define SGR_MATCH	"\033[1;31m"
#define SGR_RESET	"\033[0m"

struct out {
	FILE			*fp;
	enum format		 fmt;
	const struct field	*f;
	size_t			 nf;
	bool			 color;
	int			 clean;		/* CSV's text_clean flags */
	long long		 rows;
	char			**held;		/* nheld rows of cells */
	size_t			 nheld;
	int			*width;		/* 0 until sized */
	int			 gap;		/* between columns */
	int			 spaces;	/* owed to the next text */
	bool			 sized;
};

/*
 * A stream whose writes failed, as the -errno of the failure, else 0.
 * stdio sets errno when a write fails: callers check right after they
 * print, before anything else can change it.
 */
static int
stream_error(FILE *fp)
{
	if (!ferror(fp))
		return 0;
	return errno != 0 ? -errno : -EIO;
}

int
format_parse(const char *s, unsigned allowed, enum format *out)
{
	static const char *const names[] = {
		[FMT_TABLE] = "table", [FMT_CSV] = "csv",
		[FMT_JSON] = "json", [FMT_JSONL] = "jsonl",
	};

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((allowed & FMT_BIT(i)) && strcmp(s, names[i]) == 0) {
			*out = (enum format)i;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Spaces are held back until text follows them, so that no line ends in
 * spaces whatever its last columns hold.
 */
static void
put_text(struct out *o, const char *s, size_t len)
{
	if (len == 0)
		return;
	fprintf(o->fp, "%*s", o->spaces, "");
	o->spaces = 0;
	fwrite(s, 1, len, o->fp);
}

/*
 * The bytes of s (clean text) that fit in width - 1 columns, before an
 * ellipsis; *used: the columns they take.
 */
static size_t
text_cut(const char *s, int width, int *used)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), n, keep = 0;
	unsigned cp;
	int cw;

	*used = 0;
	while (keep < len) {
		n = utf8_decode(p + keep, len - keep, &cp);
		if (n == 0)
			n = 1, cp = '?';
		cw = cp_width(cp);
		if (*used + cw > width - 1)
			break;
		*used += cw;
		keep += n;
	}
	return keep;
}

void
print_fitted(FILE *fp, const char *s, int width)
{
	int w = text_width(s), used;
	size_t keep;

	if (w <= width) {
		fprintf(fp, "%s%*s", s, width - w, "");
		return;
	}
	keep = text_cut(s, width, &used);
	fprintf(fp, "%.*s\xe2\x80\xa6%*s", (int)keep, s, width - 1 - used,
	    "");	/* U+2026 */
}

/* Print s (clean text) in width columns: cut with an ellipsis, padded. */
static void
put_cell(struct out *o, const char *s, int width, bool right)
{
	int w = text_width(s), used;
	size_t keep;

	if (w <= width) {
		o->spaces += right ? width - w : 0;
		put_text(o, s, strlen(s));
		o->spaces += right ? 0 : width - w;
		return;
	}
	keep = text_cut(s, width, &used);
	put_text(o, s, keep);
	put_text(o, "\xe2\x80\xa6", 3);	/* U+2026 */
	o->spaces += width - 1 - used;
}

void
val_from_stmt(sqlite3_stmt *stmt, struct val *row, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct val *v = &row[i];

		memset(v, 0, sizeof(*v));
		switch (sqlite3_column_type(stmt, (int)i)) {
		case SQLITE_INTEGER:
			v->t = V_INT;
			v->i = sqlite3_column_int64(stmt, (int)i);
			break;
		case SQLITE_FLOAT:
			v->t = V_REAL;
			v->r = sqlite3_column_double(stmt, (int)i);
			break;
		case SQLITE_NULL:
			v->t = V_NULL;
			break;
		default:
			v->t = V_TEXT;
			v->s = (const char *)sqlite3_column_text(stmt, (int)i);
			v->len = (size_t)sqlite3_column_bytes(stmt, (int)i);
			if (v->s == NULL)
				v->t = V_NULL;
			break;
		}
	}
}

static double
val_real(const struct val *v)
{
	if (v->t == V_INT)
		return (double)v->i;
	if (v->t == V_TEXT)
		return strtod(v->s, NULL);
	return v->r;
}

/*
 * d in 15 significant digits, or 16 or 17 when it takes them to read
 * back as d (not always the shortest text: 5e-324 comes out with 15).
 * 15 alone lost digits (11.145000000000001, a duration a sender's float
 * arithmetic makes, came out as 11.145), and cJSON's own check that they
 * do allows an error in the last place: the largest double came out as
 * a text that reads back as infinity.
 */
static void
real_text(double d, char *buf, size_t len)
{
	for (int prec = 15; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
	snprintf(buf, len, "%.17g", d);
}

/* The text of a number, as CSV and tables show it. */
static void
number_text(const struct val *v, char *buf, size_t len)
{
	if (v->t == V_INT)
		snprintf(buf, len, "%lld", v->i);
	else
		real_text(v->r, buf, len);
}

/* A table cell: clean text in a new string. */
static char *
table_text(const struct field *f, const struct val *v)
{
	char num[64], *buf;
	const char *s = num;
	size_t len;

	num[0] = '\0';
	if (v->t == V_NULL)
		return strdup("");
	switch (f->kind) {
	case K_BOOL:
		if (v->t == V_INT)
			s = v->i ? "yes" : "no";
		else
			s = v->t == V_TEXT ? v->s : "";
		break;
	case K_DURATION:
		fmt_duration(val_real(v), num, sizeof(num));
		break;
	case K_PERCENT:
		snprintf(num, sizeof(num), "%.1f%%", val_real(v) * 100);
		break;
	case K_TIME:
		if (v->t == V_TEXT && v->len >= 16 && v->s[10] == ' ')
			snprintf(num, sizeof(num), "%.16s", v->s);
		else
			s = v->t == V_TEXT ? v->s : "";
		break;
	default:
		if (v->t != V_TEXT)
			number_text(v, num, sizeof(num));
		else
			s = v->s;
		break;
	}
	len = s == v->s ? v->len : strlen(s);
	if ((buf = malloc(3 * len + 1)) != NULL)
		text_clean(s, len, f->kind == K_SNIPPET ? CLEAN_MARKS : 0, buf);
	return buf;
}

/*
 * The value as CSV and JSON show it: as stored (clean CLEAN_KEEP, NUL
 * bytes too, so *len says where it ends), but valid UTF-8 (a rejected
 * body need not be) and with the snippet markers as brackets.
 */
static char *
data_text(const struct field *f, const struct val *v, int clean,
    size_t *len)
{
	char *buf;

	if ((buf = malloc(3 * v->len + 1)) == NULL)
		return NULL;
	/* Elsewhere MARK_ON and MARK_OFF are bytes the sender sent. */
	if (f->kind != K_SNIPPET)
		clean &= ~CLEAN_MARKS;
	*len = text_clean(v->s, v->len, clean, buf);
	if (f->kind == K_SNIPPET)
		for (size_t i = 0; i < *len; i++)
			if (buf[i] == MARK_ON || buf[i] == MARK_OFF)
				buf[i] = buf[i] == MARK_ON ? '[' : ']';
	return buf;
}

static bool
csv_needs_quotes(const char *s, size_t len)
{
	static const char special[] = ",\"\r\n";

	for (size_t i = 0; i < len; i++)
		if (memchr(special, s[i], sizeof(special) - 1) != NULL)
			return true;
	return false;
}

/* len bytes of s as one CSV field, NULs and all. */
static void
csv_field(FILE *fp, const char *s, size_t len)
{
	if (!csv_needs_quotes(s, len)) {
		fwrite(s, 1, len, fp);
		return;
	}
	fputc('"', fp);
	while (len > 0) {
		const char *q = memchr(s, '"', len);
		size_t n = q == NULL ? len : (size_t)(q - s) + 1;

		fwrite(s, 1, n, fp);	/* up to a quote, which is doubled */
		if (q != NULL)
			fputc('"', fp);
		s += n;
		len -= n;
	}
	fputc('"', fp);
}

static void
csv_string(FILE *fp, const char *s)
{
	csv_field(fp, s, strlen(s));
}

static int
csv_row(struct out *o, const struct val *row)
{
	char num[64], *text;
	size_t len;
	int error = 0;
	bool first = true;

	for (size_t i = 0; i < o->nf && error == 0; i++) {
		const struct field *f = &o->f[i];
		const struct val *v = &row[i];

		if (!(f->flags & F_DATA))
			continue;
		if (!first)
			fputc(',', o->fp);
		first = false;
		if (v->t == V_NULL)
			continue;
		if (f->kind == K_BOOL && v->t == V_INT)
			csv_string(o->fp, v->i ? "true" : "false");
		else if (v->t != V_TEXT) {
			number_text(v, num, sizeof(num));
			csv_string(o->fp, num);
		} else if ((text = data_text(f, v, o->clean, &len)) == NULL)
			error = -ENOMEM;
		else {
			csv_field(o->fp, text, len);
			free(text);
		}
	}
	fputs("\r\n", o->fp);
	return error != 0 ? error : stream_error(o->fp);
}

static int
csv_header(struct out *o)
{
	bool first = true;

	for (size_t i = 0; i < o->nf; i++) {
		if (!(o->f[i].flags & F_DATA))
			continue;
		if (!first)
			fputc(',', o->fp);
		first = false;
		csv_string(o->fp, o->f[i].key);
	}
	fputs("\r\n", o->fp);
	return stream_error(o->fp);
}

/*
 * The JSON text s as it is stored, minified: printed again from a tree,
 * 12345678901234567890 would come out as 1.2345678901234567e+19.
 */
static cJSON *
json_raw(const char *s, size_t len)
{
	cJSON *j;
	char *text;

	if ((text = malloc(len + 1)) == NULL)
		return NULL;
	text[event_json_minify(text, s, len)] = '\0';
	j = cJSON_CreateRaw(text);
	free(text);
	return j;
}

/*
 * The text of a string as cJSON prints it, without its quotes, appended
 * to raw. 0, or -ENOMEM.
 */
static int
json_piece(sqlite3_str *raw, const char *s)
{
	cJSON *j = cJSON_CreateString(s);
	char *text = j != NULL ? cJSON_PrintUnformatted(j) : NULL;

	cJSON_Delete(j);
	if (text == NULL)
		return -ENOMEM;
	sqlite3_str_append(raw, text + 1, (int)strlen(text) - 2);
	cJSON_free(text);
	return 0;
}

/*
 * A JSON string of the len bytes of UTF-8 at s, which end in a NUL and
 * may hold more: cJSON takes C strings, so it escapes the text between
 * them, and each of them becomes \u0000.
 */
static cJSON *
json_string(const char *s, size_t len)
{
	const char *end = s + len, *nul;
	sqlite3_str *raw;
	char *text;
	cJSON *j = NULL;
	int error = 0;

	if (memchr(s, '\0', len) == NULL)
		return cJSON_CreateString(s);
	raw = sqlite3_str_new(NULL);
	sqlite3_str_appendchar(raw, 1, '"');
	for (; error == 0; s = nul + 1) {
		if ((nul = memchr(s, '\0', (size_t)(end - s))) == NULL)
			nul = end;
		error = json_piece(raw, s);
		if (nul == end)
			break;
		sqlite3_str_appendall(raw, "\\u0000");
	}
	sqlite3_str_appendchar(raw, 1, '"');
	text = sqlite3_str_finish(raw);
	if (error == 0 && text != NULL)
		j = cJSON_CreateRaw(text);
	sqlite3_free(text);
	return j;
}

/*
 * What cJSON makes of JSON text that is not JSON to the letter ('{"a"
 * :01}' written by hand), or NULL. Not when anything but spaces follows
 * the value: cJSON stops there, and the rest would be lost.
 */
static cJSON *
json_lenient(const char *s, size_t len)
{
	const char *end = s;
	cJSON *j;

	if ((j = cJSON_ParseWithLengthOpts(s, len, &end, false)) == NULL)
		return NULL;
	while (end < s + len && (*end == ' ' || *end == '\t' ||
	    *end == '\n' || *end == '\r'))
		end++;
	if (end != s + len) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

static cJSON *
json_value(const struct field *f, const struct val *v)
{
	cJSON *j;
	char *text;
	size_t len;

	if (v->t == V_NULL)
		return cJSON_CreateNull();
	if (f->kind == K_BOOL && v->t == V_INT)
		return cJSON_CreateBool(v->i != 0);
	if (v->t == V_INT) {
		/* cJSON prints a double with 15 digits: 10^15 and up lose some. */
		char num[24];

		snprintf(num, sizeof(num), "%lld", (long long)v->i);
		return cJSON_CreateRaw(num);
	}
	if (v->t == V_REAL && isfinite(v->r)) {
		char num[32];

		real_text(v->r, num, sizeof(num));
		return cJSON_CreateRaw(num);
	}
	if (v->t == V_REAL)
		return cJSON_CreateNull();	/* as cJSON prints inf and NaN */
	/*
	 * As JSON only when it is UTF-8: the bytes of its strings would go
	 * out as they are, and the document must be UTF-8. event_json_valid()
	 * checks the grammar alone (the daemon checks the body's UTF-8).
	 */
	if (f->kind == K_JSON && event_utf8_valid(v->s, v->len)) {
		if (event_json_valid(v->s, v->len))
			return json_raw(v->s, v->len);
		/* Not as the daemon writes it: what cJSON makes of it. */
		if ((j = json_lenient(v->s, v->len)) != NULL)
			return j;
	}
	if ((text = data_text(f, v, CLEAN_KEEP, &len)) == NULL)
		return NULL;
	j = json_string(text, len);
	free(text);
	return j;
}

cJSON *
out_json_object(const struct field *fields, size_t nfields,
    const struct val *row)
{
	cJSON *obj = cJSON_CreateObject(), *v;

	for (size_t i = 0; obj != NULL && i < nfields; i++) {
		if (!(fields[i].flags & F_DATA))
			continue;
		if ((v = json_value(&fields[i], &row[i])) == NULL) {
			cJSON_Delete(obj);
			return NULL;
		}
		cJSON_AddItemToObject(obj, fields[i].key, v);
	}
	return obj;
}

/*
 * cJSON escapes the C0 controls only; DEL, the C1 controls (U+0080 to
 * U+009F, which some terminals obey: U+009B is CSI) and the bidi
 * formatting characters (cp_unsafe()) get \u escapes here. They can only
 * be in strings, whose meaning this keeps.
 */
int
out_json_puts(const char *text, FILE *fp)
{
	const unsigned char *p = (const unsigned char *)text, *run = p;
	const unsigned char *end = p + strlen(text);
	unsigned cp;
	size_t n;

	while (p < end) {
		if (*p < 0x7F ||
		    (n = utf8_decode(p, (size_t)(end - p), &cp)) == 0) {
			p++;
			continue;
		}
		if (cp_unsafe(cp)) {
			fwrite(run, 1, (size_t)(p - run), fp);
			fprintf(fp, "\\u%04x", cp);
			run = p + n;
		}
		p += n;
	}
	fwrite(run, 1, (size_t)(p - run), fp);
	return stream_error(fp);
}

static int
json_row(struct out *o, const struct val *row)
{
	cJSON *obj;
	char *text;
	int error;

	if ((obj = out_json_object(o->f, o->nf, row)) == NULL)
		return -ENOMEM;
	text = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (text == NULL)
		return -ENOMEM;
	if (o->fmt == FMT_JSON)
		fputs(o->rows == 0 ? "[\n" : ",\n", o->fp);
	out_json_puts(text, o->fp);
	if (o->fmt == FMT_JSONL)
		fputc('\n', o->fp);
	error = stream_error(o->fp);
	cJSON_free(text);
	return error;
}

/* The terminal's width when it is wider, else 80. */
static int
line_width(FILE *fp)
{
	struct winsize ws;

	if (isatty(fileno(fp)) && ioctl(fileno(fp), TIOCGWINSZ, &ws) == 0 &&
	    ws.ws_col > TABLE_WIDTH)
		return ws.ws_col;
	return TABLE_WIDTH;
}

/* Cut the widest column that may still give up a character. */
static bool
shrink_one(struct out *o)
{
	size_t pick = o->nf;
	int most = 0, min;

	for (size_t i = 0; i < o->nf; i++) {
		if ((o->f[i].flags & (F_TABLE | F_SHRINK)) !=
		    (F_TABLE | F_SHRINK))
			continue;
		min = o->f[i].min > 0 ? o->f[i].min : COL_MIN;
		if (o->width[i] > min && o->width[i] > most) {
			most = o->width[i];
			pick = i;
		}
	}
	if (pick == o->nf)
		return false;
	o->width[pick]--;
	return true;
}

/*
 * Size the columns from the held rows, then fit the line: first with one
 * space between columns instead of two, then by cutting text columns.
 */
static void
table_size(struct out *o)
{
	int total = 0, ncols = 0, width = line_width(o->fp);

	for (size_t i = 0; i < o->nf; i++) {
		if (!(o->f[i].flags & F_TABLE))
			continue;
		o->width[i] = text_width(o->f[i].head);
		for (size_t r = 0; r < o->nheld; r++) {
			int w = text_width(o->held[r * o->nf + i]);

			if (w > o->width[i])
				o->width[i] = w;
		}
		if (o->f[i].max > 0 && o->width[i] > o->f[i].max)
			o->width[i] = o->f[i].max;
		total += o->width[i];
		ncols++;
	}
	o->gap = COL_GAP;
	if (total + (ncols - 1) * o->gap > width)
		o->gap = 1;
	total += (ncols - 1) * o->gap;
	while (total > width && shrink_one(o))
		total--;
	o->sized = true;
}

/* A snippet under its row: markers become colour or brackets. */
static void
print_marked(FILE *fp, const char *s, size_t len, bool color)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == MARK_ON)
			fputs(color ? SGR_MATCH : "[", fp);
		else if (s[i] == MARK_OFF)
			fputs(color ? SGR_RESET : "]", fp);
		else
			fputc(s[i], fp);
	}
}

/* Word-wrap detail text to the table width, indented. */
static void
print_detail(struct out *o, const char *s)
{
	const char *p = s, *word, *end;
	int col = 0, w;
	char tmp[1024];

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		word = p;
		end = strchr(p, ' ');
		if (end == NULL)
			end = p + strlen(p);
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(end - word), word);
		w = text_width(tmp);
		/* Without colour, each marker prints as a bracket. */
		for (const char *m = word; !o->color && m < end; m++)
			w += *m == MARK_ON || *m == MARK_OFF;
		if (col > 0 && col + 1 + w > TABLE_WIDTH - DETAIL_INDENT) {
			fputc('\n', o->fp);
			col = 0;
		}
		fprintf(o->fp, "%*s", col == 0 ? DETAIL_INDENT : 1, "");
		print_marked(o->fp, word, (size_t)(end - word), o->color);
		col += (col == 0 ? 0 : 1) + w;
		p = end;
	}
	if (col > 0)
		fputc('\n', o->fp);
}

static void
table_line(struct out *o, char *const *cells, bool header)
{
	bool first = true;

	if (header && o->color)
		fputs(SGR_BOLD, o->fp);
	for (size_t i = 0; i < o->nf; i++) {
		if (!(o->f[i].flags & F_TABLE))
			continue;
		if (!first)
			o->spaces += o->gap;
		first = false;
		put_cell(o, header ? o->f[i].head : cells[i], o->width[i],
		    !header && (o->f[i].flags & F_RIGHT));
	}
	o->spaces = 0;
	if (header && o->color)
		fputs(SGR_RESET, o->fp);
	fputc('\n', o->fp);
	for (size_t i = 0; i < o->nf && !header; i++)
		if ((o->f[i].flags & F_DETAIL) && cells[i][0] != '\0')
			print_detail(o, cells[i]);
}

static void
table_flush(struct out *o)
{
	if (!o->sized) {
		table_size(o);
		table_line(o, NULL, true);
	}
	for (size_t r = 0; r < o->nheld; r++) {
		table_line(o, &o->held[r * o->nf], false);
		for (size_t i = 0; i < o->nf; i++)
			free(o->held[r * o->nf + i]);
	}
	o->nheld = 0;
}

static int
table_row(struct out *o, const struct val *row)
{
	char **cells = &o->held[o->nheld * o->nf];

	for (size_t i = 0; i < o->nf; i++) {
		if (!(o->f[i].flags & (F_TABLE | F_DETAIL)))
			cells[i] = strdup("");
		else
			cells[i] = table_text(&o->f[i], &row[i]);
		if (cells[i] == NULL) {
			while (i-- > 0)
				free(cells[i]);
			return -ENOMEM;
		}
	}
	o->nheld++;
	if (o->nheld == TABLE_SAMPLE || o->sized)
		table_flush(o);
	return stream_error(o->fp);
}

struct out *
out_new(FILE *fp, enum format fmt, const struct field *fields,
    size_t nfields, bool color)
{
	struct out *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	o->fp = fp;
	o->fmt = fmt;
	o->f = fields;
	o->nf = nfields;
	o->color = color;
	/* CSV as stored, but no escape sequence for a terminal to obey. */
	o->clean = isatty(fileno(fp)) ? CLEAN_NL | CLEAN_MARKS : CLEAN_KEEP;
	if (fmt == FMT_TABLE) {
		o->held = calloc(TABLE_SAMPLE * nfields, sizeof(*o->held));
		o->width = calloc(nfields, sizeof(*o->width));
		if (o->held == NULL || o->width == NULL) {
			out_free(o);
			return NULL;
		}
	}
	return o;
}

int
out_row(struct out *o, const struct val *row)
{
	int error = 0;

	switch (o->fmt) {
	case FMT_TABLE:
		error = table_row(o, row);
		break;
	case FMT_CSV:
		if (o->rows == 0)
			error = csv_header(o);
		if (error == 0)
			error = csv_row(o, row);
		break;
	case FMT_JSON:
	case FMT_JSONL:
		error = json_row(o, row);
		break;
	}
	if (error == 0)
		o->rows++;
	return error;
}

/* An empty table prints nothing: "no calls" is the caller's to say. */
int
out_end(struct out *o)
{
	switch (o->fmt) {
	case FMT_TABLE:
		if (o->nheld > 0)
			table_flush(o);
		break;
	case FMT_CSV:
		if (o->rows == 0)
			csv_header(o);
		break;
	case FMT_JSON:
		fputs(o->rows == 0 ? "[]\n" : "\n]\n", o->fp);
		break;
	case FMT_JSONL:
		break;
	}
	fflush(o->fp);
	return stream_error(o->fp);
}

void
out_free(struct out *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; o->held != NULL && i < o->nheld * o->nf; i++)
		free(o->held[i]);
	free(o->held);
	free(o->width);
	free(o);
}

int
out_query(sqlite3_stmt *stmt, FILE *fp, enum format fmt,
    const struct field *fields, size_t nfields, bool color,
    long long *count)
{
	struct val *row;
	struct out *o;
	int error = 0, rc = SQLITE_DONE;

	row = calloc(nfields, sizeof(*row));
	o = out_new(fp, fmt, fields, nfields, color);
	if (row == NULL || o == NULL) {
		error = -ENOMEM;
		goto fail;
	}
	while (error == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		val_from_stmt(stmt, row, nfields);
		error = out_row(o, row);
	}
	if (error == 0 && rc != SQLITE_DONE) {
		fprintf(stderr, "callhook: %s\n",
		    sqlite3_errmsg(sqlite3_db_handle(stmt)));
		out_free(o);
		free(row);
		return CH_FAIL;
	}
	if (error == 0)
		error = out_end(o);
 fail:
	if (count != NULL)
		*count = o != NULL ? o->rows : 0;
	out_free(o);
	free(row);
	if (error != 0) {
		fprintf(stderr, "callhook: output: %s\n", strerror(-error));
		return CH_FAIL;
	}
	return CH_OK;
}

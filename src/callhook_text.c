/*
 * Text for callhook's output: UTF-8 decoding and display widths, the
 * cleaning of text from the database before it reaches a terminal,
 * durations as m:ss, and JSON pretty-printed under a label.
 *
 * The data came from the network. A control character in an agent name
 * or a transcript must not reach the terminal as an escape sequence, and
 * a byte that is not UTF-8 (a refused body may hold any) must not reach
 * a JSON document; text_clean sees to both.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <cjson/cJSON.h>

#include "callhook.h"
#include "event.h"

/*
 * The widest duration shown: a stats total is the talk time of every
 * call (500,000 calls of a minute and a half are 12,000 hours), so only
 * what no call centre reaches, or llround could not take, is cut.
 */
#define DURATION_MAX_H	99999999LL
#define DURATION_MAX_S	((double)DURATION_MAX_H * 3600)

void
fmt_duration(double secs, char *buf, size_t len)
{
	long long s;

	if (isnan(secs) || secs < 0)
		secs = 0;
	/* No call; llround would overflow; a sum of huge ones is +inf. */
	if (secs >= DURATION_MAX_S) {
		snprintf(buf, len, ">%lld:00:00", DURATION_MAX_H);
		return;
	}
	s = llround(secs);
	if (s >= 3600)
		snprintf(buf, len, "%lld:%02lld:%02lld", s / 3600,
		    s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%lld:%02lld", s / 60, s % 60);
}

/*
 * Length of the UTF-8 sequence at p (at most avail bytes), or 0 when it
 * is not valid; *cp gets the code point.
 */
size_t
utf8_decode(const unsigned char *p, size_t avail, unsigned *cp)
{
	size_t n = event_utf8_seq((const char *)p, avail);

	if (n == 0)
		return 0;
	/* The lead byte's payload: 7, 5, 4 or 3 bits. */
	*cp = n == 1 ? p[0] : p[0] & (0xFF >> (n + 1));
	for (size_t i = 1; i < n; i++)
		*cp = (*cp << 6) | (p[i] & 0x3F);
	return n;
}

static size_t
put_utf8(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * The C0 and C1 controls and DEL, and the bidirectional formatting
 * characters (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to
 * U+2069): with those a value reorders the rest of its line on a
 * terminal, so that a U+202E before an agent's name shows the number
 * after it backwards.
 */
bool
cp_unsafe(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x61C ||
	    cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
	    (cp >= 0x2066 && cp <= 0x2069);
}

/* Bytes of printable ASCII from p: text_clean() keeps them as they are. */
static size_t
plain_run(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *q = p;

	while (q < end && *q >= 0x20 && *q < 0x7F)
		q++;
	return (size_t)(q - p);
}

size_t
text_clean(const char *s, size_t len, int flags, char *buf)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	size_t n, o = 0;
	unsigned cp;

	while (p < end) {
		if ((n = plain_run(p, end)) > 0) {
			memcpy(buf + o, p, n);
			o += n;
			p += n;
			continue;
		}
		if ((n = utf8_decode(p, (size_t)(end - p), &cp)) == 0) {
			cp = 0xFFFD;
			n = 1;
		}
		p += n;
		if (flags & CLEAN_KEEP)
			o += put_utf8(buf + o, cp);
		else if (cp == '\n' && (flags & CLEAN_NL))
			buf[o++] = '\n';
		else if ((cp == MARK_ON || cp == MARK_OFF) &&
		    (flags & CLEAN_MARKS))
			buf[o++] = (char)cp;
		else if (cp_unsafe(cp))
			buf[o++] = ' ';
		else
			o += put_utf8(buf + o, cp);
	}
	buf[o] = '\0';
	return o;
}

int
cp_width(unsigned cp)
{
	int w;

	if (cp == MARK_ON || cp == MARK_OFF)
		return 0;
	w = wcwidth((wchar_t)cp);
	return w < 0 ? 1 : w;
}

int
text_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), n;
	unsigned cp;
	int w = 0;

	while (len > 0) {
		if ((n = utf8_decode(p, len, &cp)) == 0)
			n = 1, cp = '?';
		w += cp_width(cp);
		p += n;
		len -= n;
	}
	return w;
}

/*
 * json_pretty's walk over checked JSON text: each value is copied token
 * by token, as stored, so numbers keep every digit and strings their
 * escapes. The layout is cJSON_Print()'s, with two spaces a level:
 * members one a line, array items on one line after ", ". The walk
 * stops at the text's end whatever it holds, as a guard.
 */
struct pretty {
	FILE		*fp;
	const char	*p;
	int		 indent;	/* before every line but the first */
};

static void
pretty_skip(struct pretty *pr)
{
	while (*pr->p == ' ' || *pr->p == '\t' || *pr->p == '\n' ||
	    *pr->p == '\r')
		pr->p++;
}

static void
pretty_line(struct pretty *pr, int depth)
{
	fprintf(pr->fp, "\n%*s", pr->indent + 2 * depth, "");
}

/* A string, a number or a literal, as it is. */
static void
pretty_token(struct pretty *pr)
{
	const char *start = pr->p;

	if (*pr->p == '"') {
		for (pr->p++; *pr->p != '"' && *pr->p != '\0'; pr->p++)
			if (*pr->p == '\\' && pr->p[1] != '\0')
				pr->p++;
		if (*pr->p == '"')
			pr->p++;
	} else {
		while (*pr->p != '\0' && strchr(",:]} \t\r\n", *pr->p) == NULL)
			pr->p++;
		if (pr->p == start && *pr->p != '\0')
			pr->p++;		/* never stand still */
	}
	fwrite(start, 1, (size_t)(pr->p - start), pr->fp);
}

static void
pretty_value(struct pretty *pr, int depth)
{
	char open = *pr->p, close = open == '{' ? '}' : ']';
	bool first = true;

	if (open != '{' && open != '[') {
		pretty_token(pr);
		return;
	}
	pr->p++;
	fputc(open, pr->fp);
	for (pretty_skip(pr); *pr->p != close && *pr->p != '\0';
	    pretty_skip(pr)) {
		if (!first)
			fputs(open == '{' ? "," : ", ", pr->fp);
		first = false;
		if (*pr->p == ',') {
			pr->p++;
			pretty_skip(pr);
		}
		if (open == '{') {
			pretty_line(pr, depth + 1);
			pretty_token(pr);		/* the key */
			pretty_skip(pr);
			if (*pr->p == ':')
				pr->p++;
			pretty_skip(pr);
			fputs(": ", pr->fp);
		}
		pretty_value(pr, depth + 1);
	}
	if (*pr->p == close)
		pr->p++;
	if (open == '{' && !first)
		pretty_line(pr, depth);
	fputc(close, pr->fp);
}

char *
json_pretty(const char *text, int indent)
{
	struct pretty pr = { .p = text, .indent = indent };
	char *out = NULL;
	size_t size;

	if (!event_json_valid(text, strlen(text)))
		return NULL;
	if ((pr.fp = open_memstream(&out, &size)) == NULL)
		return NULL;
	pretty_skip(&pr);
	pretty_value(&pr, 0);
	if (fclose(pr.fp) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

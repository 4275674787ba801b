/*
 * A call_ended webhook body turned into a struct event.
 *
 * The HTTP thread calls event_parse() for every request, so the work is a
 * few linear passes over the body and two kinds of allocation: cJSON's
 * tree, gone before event_parse() returns, and one block that holds the
 * struct, the copy of the body and every string the struct points to.
 * event_free() is then a single free.
 *
 * Two passes over the tree make that possible. The first checks every
 * field, fills the scalar members of a struct on the stack and lists the
 * strings to keep with their sizes (a "plan"); the second, once the block
 * is allocated, copies them in. JSON-valued fields are copied from the
 * body without the space between tokens (json_scan() finds where they
 * are while it checks the tokens) rather than printed from the tree, so
 * numbers keep every digit sent: cJSON would print 12345678901234567890
 * as 1.2345678901234567e+19.
 *
 * cJSON allocates a node for every value and a copy of every string, and
 * with malloc() those allocations and their free() were half the cost of
 * a parse. So this module installs cJSON's allocator hooks when the
 * program starts: while event_parse() parses, cJSON's allocations come
 * from a per-thread arena that is reset after the parse instead of freed
 * node by node; at any other time, and for what does not fit in the
 * arena, the hooks are plain malloc() and free(), so other users of cJSON
 * in the process see no difference. A program (a test) may install hooks
 * of its own with cJSON_InitHooks(): event_parse() notices and frees the
 * tree with cJSON_Delete() as usual. The event's block comes from
 * cJSON_malloc() too, after the parse, so such a test can make any
 * allocation of this module fail.
 *
 * cJSON reads strings a byte at a time, and a long transcript was half of
 * a long event's parse. So a pass of this module's own checks every token
 * first (json_scan()), and the strings of string fields (all but the
 * shortest, and those with a \u escape) reach cJSON emptied: they are
 * copied from the body, unescaped, instead (json_parse()).
 * cJSON still parses every body and judges its structure.
 *
 * call_duration is read with strtod(), as cJSON reads every number (the
 * daemon runs in the C locale). try_count, and a number sent for a string
 * field, are taken from their text in the body (json_scan() notes where),
 * since a double holds integers exactly only up to 2^53.
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "event.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

#define KEY_MAX		19	/* the longest name in fields[] and "callSid" */
#define ARENA_SIZE	(64 * 1024)	/* a 9 KB transcript's tree takes 13 KB */
/*
 * bytes: a string field's value this long is read by json_parse(), not
 * cJSON. Even for a short call a copy of the body with those emptied
 * costs less than cJSON's loops over them: 4.9 k fewer instructions per
 * seed event at 8 than at 256 (callgrind, event_parse() in a loop).
 */
#define LONG_STRING	8
#define ARENA_ALIGN	16

enum kind {
	K_STRING,
	K_DOUBLE,
	K_INT,
	K_BOOL,
	K_OBJECT,
	K_ARRAY,
};

static const char *const kind_noun[] = {
	[K_STRING] = "a string",
	[K_DOUBLE] = "a number",
	[K_INT] = "an integer",
	[K_BOOL] = "a boolean",
	[K_OBJECT] = "an object",
	[K_ARRAY] = "an array",
};

/* A member of data and where it goes in struct event. */
struct field {
	const char	*key;
	size_t		 keylen;
	enum kind	 kind;
	size_t		 off;		/* the value */
	size_t		 has;		/* K_DOUBLE, K_INT: its has_ flag */
};

#define FIELD(key, kind, m)	{ key, sizeof(key) - 1, kind, \
				    offsetof(struct event, m), 0 }
#define NUMBER(key, kind, m, h)	{ key, sizeof(key) - 1, kind, \
				    offsetof(struct event, m), \
				    offsetof(struct event, h) }

/* data.callSid is not here: it has rules of its own, see check_call_sid(). */
static const struct field fields[] = {
	FIELD("name", K_STRING, call_type),
	FIELD("agent", K_STRING, agent_id),
	FIELD("versionId", K_STRING, version_id),
	FIELD("from", K_STRING, from_number),
	FIELD("to", K_STRING, to_number),
	FIELD("recordingUrl", K_STRING, recording_url),
	NUMBER("call_duration", K_DOUBLE, call_duration, has_call_duration),
	FIELD("time", K_STRING, call_time),
	FIELD("transcription", K_STRING, transcription),
	FIELD("batchId", K_STRING, batch_id),
	FIELD("hangup_reason", K_STRING, hangup_reason),
	FIELD("call_metadata", K_OBJECT, call_metadata),
	NUMBER("try_count", K_INT, try_count, has_try_count),
	FIELD("post_call", K_OBJECT, post_call),
	FIELD("post_call_detail", K_OBJECT, post_call_detail),
	FIELD("functions_called", K_ARRAY, functions_called),
	FIELD("disposition_reason", K_STRING, disposition_reason),
	FIELD("conversion_status", K_BOOL, conversion_status),
	FIELD("next_call_scheduled", K_BOOL, next_call_scheduled),
	FIELD("call_link", K_STRING, call_link),
};

/* How one field was read. */
enum conv {
	CONV_NULL,		/* absent or null: no value, no mismatch */
	CONV_OK,
	CONV_COERCED,		/* a value, read from the wrong type */
	CONV_BAD,		/* the wrong type and no value */
};

/* A string to place in the block, filling the char * member at off. */
struct piece {
	size_t		 off;
	const char	*src;		/* len bytes to copy */
	bool		 minify;	/* src is JSON: copy it minified */
	bool		 unescape;	/* src is a JSON string's inside */
	size_t		 len;
	char		 num[32];	/* a number turned into text */
};

/*
 * Where members of data lie in the body, so that they are copied from it
 * instead of read from cJSON's tree: the JSON-valued ones (at[i], len[i]
 * for fields[i]), copied without the whitespace between tokens rather
 * than printed again, and the long strings of string fields (str_*),
 * which cJSON never sees (json_parse()). The member is the one cJSON
 * finds: the first of its name, keys compared unescaped.
 */
struct spans {
	bool		 seen[nitems(fields)];
	const char	*at[nitems(fields)];
	size_t		 len[nitems(fields)];
	/* long strings, see json_parse(): inside the quotes, and escaped */
	const char	*str_at[nitems(fields)];
	size_t		 str_len[nitems(fields)];
	bool		 str_escaped[nitems(fields)];
	int		 nlong;
	int		 longs[nitems(fields)];	/* their fields, in body order */
	const char	*sid_at;	/* data.callSid's value (the first) */
	bool		 sid_nul;	/* a string holding \u0000 */
	bool		 sid_lone;	/* one holding a lone surrogate */
	bool		 lone;		/* any string holding one */
	bool		 key_nul;	/* a name that \u0000 made one we read */
	bool		 str_nul[nitems(fields)];	/* string fields' too */
	/* numbers of integer and string fields, as sent: no double's */
	const char	*num_at[nitems(fields)];
	size_t		 num_len[nitems(fields)];
};

/* What the first pass learnt: everything but the strings' addresses. */
struct plan {
	struct event	 ev;
	struct piece	 piece[nitems(fields) + 2];	/* + event, callSid */
	size_t		 npiece;
	size_t		 need;		/* bytes for all pieces */
	struct spans	 spans;
};

/*
 * The arena of one thread. Only this thread's parse allocates from it,
 * and its trees never leave event_parse(), so no lock is needed.
 */
struct arena {
	bool		 active;	/* event_parse() is parsing */
	size_t		 used;
	size_t		 calls;		/* allocations while active */
	size_t		 spilled;	/* of those, the ones from malloc() */
	_Alignas(ARENA_ALIGN) unsigned char mem[ARENA_SIZE];
};

static _Thread_local struct arena arena;

static bool
in_arena(const void *p)
{
	uintptr_t u = (uintptr_t)p, base = (uintptr_t)arena.mem;

	return u >= base && u < base + ARENA_SIZE;
}

static void *
arena_malloc(size_t n)
{
	struct arena *a = &arena;
	size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	void *p;

	if (a->active) {
		a->calls++;
		if (need >= n && need <= ARENA_SIZE - a->used) {
			p = a->mem + a->used;
			a->used += need;
			return p;
		}
		a->spilled++;
	}
	return malloc(n);
}

static void
arena_free(void *p)
{
	if (!in_arena(p))
		free(p);
}

__attribute__((constructor)) static void
install_hooks(void)
{
	cJSON_Hooks hooks = { arena_malloc, arena_free };

	cJSON_InitHooks(&hooks);
}

static void
arena_begin(void)
{
	arena.active = true;
	arena.used = 0;
	arena.calls = 0;
	arena.spilled = 0;
}

/* Stop allocating from the arena; what it holds stays valid. */
static void
arena_pause(void)
{
	arena.active = false;
}

/*
 * Free the tree: when it all came from the arena, resetting the arena is
 * enough. Otherwise cJSON_Delete() frees what did not: the parts that
 * spilled, or all of it when no allocation came here (a tree always has
 * one), because someone else's hooks are installed.
 */
static void
arena_end(cJSON *root)
{
	arena.active = false;
	if (root != NULL && (arena.calls == 0 || arena.spilled > 0))
		cJSON_Delete(root);
	arena.used = 0;
}

static enum event_error refuse(enum event_error, char *, size_t,
	    const char *, ...) __attribute__((format(printf, 4, 5)));

static enum event_error
refuse(enum event_error rc, char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msglen > 0) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Skip ASCII, 16 bytes at a time while it lasts. */
static const unsigned char *
ascii_skip(const unsigned char *p, const unsigned char *end)
{
	uint64_t a, b;

	while (end - p >= 16) {
		memcpy(&a, p, sizeof(a));
		memcpy(&b, p + 8, sizeof(b));
		if ((a | b) & UINT64_C(0x8080808080808080))
			break;
		p += 16;
	}
	while (p < end && *p < 0x80)
		p++;
	return p;
}

/*
 * Length of the sequence at p, whose first byte is not ASCII, or 0 when it
 * is not UTF-8. The ranges are those of Unicode's table 3-7: the second
 * byte is where overlongs, surrogates and code points above U+10FFFF show.
 */
static size_t
utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n, i;

	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xE0)
		lo = 0xA0;
	else if (p[0] == 0xED)
		hi = 0x9F;
	else if (p[0] == 0xF0)
		lo = 0x90;
	else if (p[0] == 0xF4)
		hi = 0x8F;
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

bool
event_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p, *end;
	size_t n;

	if (len == 0)
		return true;
	p = (const unsigned char *)s;
	end = p + len;
	while ((p = ascii_skip(p, end)) < end) {
		if ((n = utf8_seq(p, (size_t)(end - p))) == 0)
			return false;
		p += n;
	}
	return true;
}

size_t
event_utf8_seq(const char *s, size_t avail)
{
	const unsigned char *p = (const unsigned char *)s;

	return p[0] < 0x80 ? 1 : utf8_seq(p, avail);
}

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * The first byte from p that is a quote, a backslash or a control
 * character: the plain bytes of a string (a transcript is thousands of
 * them), 16 at a time with SSE2, then 8 at a time. The word tests are the
 * usual bit tricks for "some byte is zero" and "some byte is below n",
 * exact for any byte of the word. Inline: it runs once per string, and a
 * call is a tenth of the scan.
 */
static inline const char *
plain_skip(const char *p, const char *end)
{
	const uint64_t ones = UINT64_C(0x0101010101010101);
	const uint64_t highs = ones * 0x80;
	uint64_t w, q, b;

#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i backslash = _mm_set1_epi8('\\');
	const __m128i control = _mm_set1_epi8(0x1F);
	__m128i v, stop;
	int mask;

	for (; end - p >= 16; p += 16) {
		v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* v <= 0x1F, unsigned: the smaller of v and 0x1F is v */
		stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
		    _mm_cmpeq_epi8(v, backslash)),
		    _mm_cmpeq_epi8(_mm_min_epu8(v, control), v));
		if ((mask = _mm_movemask_epi8(stop)) != 0)
			return p + __builtin_ctz((unsigned)mask);
	}
#endif
	while (end - p >= 8) {
		memcpy(&w, p, sizeof(w));
		q = w ^ (ones * '"');
		b = w ^ (ones * '\\');
		if ((((q - ones) & ~q) | ((b - ones) & ~b) |
		    ((w - ones * 0x20) & ~w)) & highs)
			break;
		p += 8;
	}
	while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
		p++;
	return p;
}

/* The end of the RFC 8259 number at p, or NULL when there is none. */
static const char *
number_end(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && is_digit(*p))
			p++;
	else
		return NULL;
	if (p < end && *p == '.') {
		if (++p >= end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	return p;
}

/* json_scan's view of the containers around p. */
struct walk {
	struct spans	*sp;
	int		 depth;		/* containers open */
	bool		 data_seen;	/* the first "data" member went by */
	bool		 in_data;	/* inside its object */
	const char	*key;		/* the member whose value comes next */
	size_t		 keylen;
	char		 keybuf[KEY_MAX + 1];	/* key, when unescaped */
	int		 field;		/* fields[] of the open value, or -1 */
	int		 num_field;	/* fields[] of the number read, or -1 */
	const char	*field_at;
	/* The string scan_string() read last; walk_member() may want it. */
	const char	*str_end;	/* its closing quote */
	bool		 str_escaped;	/* it has a backslash */
	bool		 str_u;		/* it has a \u escape */
	bool		 str_nul;	/* it has a \u0000 */
	bool		 str_lone;	/* it has a lone surrogate escape */
};

/* The fields[] index of the member named key, or -1. */
static int
field_index(const char *key, size_t len)
{
	for (size_t i = 0; i < nitems(fields); i++)
		if (fields[i].keylen == len &&
		    memcmp(fields[i].key, key, len) == 0)
			return (int)i;
	return -1;
}

static unsigned
hex4(const char *p)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 4 | (unsigned)(p[i] <= '9' ? p[i] - '0' :
		    (p[i] | 0x20) - 'a' + 10);
	return v;
}

/*
 * The key s, len bytes of checked JSON string between the quotes, as
 * cJSON reads it: unescaped, and cut at a \u0000. Only ASCII names of up
 * to KEY_MAX bytes are looked for, so a key with any other character, or
 * longer, is no name: its length is then KEY_MAX + 1.
 */
static size_t
key_unescape(const char *s, size_t len, char *buf)
{
	const char *p = s, *end = s + len;
	size_t n = 0;
	unsigned c;

	while (p < end && n <= KEY_MAX) {
		if ((c = (unsigned char)*p++) == '\\') {
			switch (c = (unsigned char)*p++) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': c = hex4(p); p += 4; break;
			default: break;		/* ", \\ and / */
			}
			if (c == 0)
				break;
		}
		if (c >= 0x80)
			return KEY_MAX + 1;
		buf[n++] = (char)c;
	}
	return n;
}

/*
 * The key w->key, cut at a \u0000 as cJSON cuts it, is one this module
 * reads: "callSid\u0000x" would be read as the call's callSid, while
 * json_extract(payload, '$.data.callSid') knows no such member.
 */
static bool
known_name(const struct walk *w)
{
	if (w->depth == 1)
		return (w->keylen == 5 && memcmp(w->key, "event", 5) == 0) ||
		    (w->keylen == 4 && memcmp(w->key, "data", 4) == 0);
	return (w->keylen == 7 && memcmp(w->key, "callSid", 7) == 0) ||
	    field_index(w->key, w->keylen) >= 0;
}

/*
 * The string from p to q, quotes included, is a key when a colon follows;
 * only keys of the root object and of data's matter.
 */
static void
walk_string(struct walk *w, const char *p, const char *q, const char *end)
{
	const char *c = q;
	size_t len = (size_t)(q - p - 2);

	if (w->depth != 1 && !(w->in_data && w->depth == 2))
		return;
	while (c < end && json_space(*c))
		c++;
	if (c == end || *c != ':')
		return;
	if (memchr(p + 1, '\\', len) == NULL) {
		w->key = p + 1;
		w->keylen = len;
	} else {
		w->key = w->keybuf;
		w->keylen = key_unescape(p + 1, len, w->keybuf);
	}
	if (w->str_nul && known_name(w))
		w->sp->key_nul = true;
}

/*
 * The string at p, just read, is the value of fields[i]: note it if cJSON
 * would take long to read it. Not with a \u escape: cJSON alone decodes
 * those (and refuses a broken surrogate pair).
 */
static void
note_long_string(struct walk *w, int i, const char *p)
{
	struct spans *sp = w->sp;
	size_t len = (size_t)(w->str_end - p - 1);

	if (len < LONG_STRING || w->str_u)
		return;
	sp->str_at[i] = p + 1;
	sp->str_len[i] = len;
	sp->str_escaped[i] = w->str_escaped;
	sp->longs[sp->nlong++] = i;
}

/* The value of the member w->key starts at p: note it if it is wanted. */
static void
walk_member(struct walk *w, const char *p)
{
	const char *key = w->key;
	int i;

	w->key = NULL;
	if (w->depth == 1) {
		if (!w->data_seen && w->keylen == 4 &&
		    memcmp(key, "data", 4) == 0) {
			w->data_seen = true;
			w->in_data = *p == '{';
		}
		return;
	}
	if (w->keylen == 7 && memcmp(key, "callSid", 7) == 0 &&
	    w->sp->sid_at == NULL)
		w->sp->sid_at = p;
	if ((i = field_index(key, w->keylen)) < 0 || w->sp->seen[i])
		return;
	w->sp->seen[i] = true;
	if (fields[i].kind == K_OBJECT || fields[i].kind == K_ARRAY) {
		if (*p == '{' || *p == '[') {
			w->field = i;
			w->field_at = p;
		}
	} else if (fields[i].kind == K_STRING && *p == '"') {
		w->sp->str_nul[i] = w->str_nul;
		note_long_string(w, i, p);
	} else if ((fields[i].kind == K_INT || fields[i].kind == K_STRING) &&
	    (*p == '-' || is_digit(*p))) {
		w->sp->num_at[i] = p;
		w->num_field = i;
	}
}

/*
 * A value starts at p; most are not a member's that json_scan notes, so
 * the test is inline and the work is not.
 */
static inline void
walk_value(struct walk *w, const char *p)
{
	if (w->key != NULL)
		walk_member(w, p);
}

/* The container that p closes has ended. */
static void
walk_close(struct walk *w, const char *p)
{
	w->depth--;
	if (w->field >= 0 && w->depth == 2) {
		w->sp->at[w->field] = w->field_at;
		w->sp->len[w->field] = (size_t)(p + 1 - w->field_at);
		w->field = -1;
	}
	if (w->depth == 1)
		w->in_data = false;
}

/* The 'u' at p and four hex digits after it, before end. */
static bool
u_escape(const char *p, const char *end)
{
	for (int i = 1; i <= 4; i++)
		if (p + i >= end || !is_hex(p[i]))
			return false;
	return true;
}

enum surrogate { SURROGATE_NONE, SURROGATE_PAIR, SURROGATE_LONE };

/*
 * What the checked \u escape whose 'u' is at p holds: no surrogate, the
 * high half of a pair whose low half is the next escape, or a surrogate
 * without its other half. RFC 8259 section 8.2 lets such a string be
 * JSON ("\ud83d" is what JSON.stringify makes of half an emoji), cJSON
 * refuses it, and SQLite's json_valid() takes it.
 */
static enum surrogate
surrogate_at(const char *p, const char *end)
{
	unsigned c = hex4(p + 1), low;

	if (c < 0xd800 || c > 0xdfff)
		return SURROGATE_NONE;
	if (c >= 0xdc00 || end - p < 11 || p[5] != '\\' || p[6] != 'u' ||
	    !u_escape(p + 6, end))
		return SURROGATE_LONE;
	low = hex4(p + 7);
	return low >= 0xdc00 && low <= 0xdfff ? SURROGATE_PAIR :
	    SURROGATE_LONE;
}

/*
 * The string that starts at the quote p: the address after its closing
 * quote, or NULL when it is not a JSON string. Notes in w what the walk
 * needs to know of it.
 */
static const char *
scan_string(const char *p, const char *end, struct walk *w)
{
	w->str_escaped = w->str_u = w->str_nul = w->str_lone = false;
	for (p++; (p = plain_skip(p, end)) < end && *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;
		/* a backslash */
		w->str_escaped = true;
		if (++p == end)
			return NULL;
		if (*p != 'u') {
			if (memchr("\"\\/bfnrt", *p, 8) == NULL)
				return NULL;
			continue;
		}
		if (!u_escape(p, end))
			return NULL;
		w->str_u = true;
		if (memcmp(p + 1, "0000", 4) == 0)
			w->str_nul = true;
		switch (surrogate_at(p, end)) {
		case SURROGATE_PAIR:
			p += 6;		/* the low half, checked */
			break;
		case SURROGATE_LONE:
			w->str_lone = true;
			break;
		default:
			break;
		}
	}
	if (p == end)
		return NULL;
	w->str_end = p;
	return p + 1;
}

/*
 * cJSON is lenient where RFC 8259 is not: it skips a byte order mark and
 * any control character between tokens, takes raw control characters in
 * strings, and reads numbers with strtod() (01, 1., -.5). SQLite's JSON
 * functions refuse all of those, and one such payload in calls would make
 * every json_extract(payload, ...) over the table fail, so they are not
 * JSON here either. cJSON also turns \u0000 into a NUL that ends the C
 * string early (the spans tell where), and reads a \u escape with a
 * non-hex digit as \u0000. This pass runs before cJSON's and checks
 * every token, escapes included, since cJSON does not read the long
 * strings; cJSON then checks the structure, which this pass takes on
 * trust. The same pass finds the spans (struct spans); on a body whose
 * structure is wrong they are wrong too, but emptying strings cannot
 * make it right, and cJSON then refuses it. Returns NULL, or where a
 * token is not JSON (the start of a bad string or number).
 */
static const char *
json_scan(const char *s, size_t len, struct spans *sp)
{
	const char *p = s, *end = s + len, *str;
	struct walk w = { .sp = sp, .field = -1, .num_field = -1 };

	while (p < end) {
		unsigned char c = (unsigned char)*p;

		if (json_space((char)c)) {
			/* a pretty-printed body's indentation comes in runs */
			while (++p < end && json_space(*p))
				;
		} else if (c == '"') {
			str = p;
			if ((p = scan_string(p, end, &w)) == NULL)
				return str;
			walk_value(&w, str);
			if (w.str_nul && str == sp->sid_at)
				sp->sid_nul = true;
			if (w.str_lone) {
				sp->lone = true;
				sp->sid_lone |= str == sp->sid_at;
			}
			walk_string(&w, str, p, end);
		} else if (c == '-' || is_digit((char)c)) {
			const char *num = p;

			walk_value(&w, p);
			if ((p = number_end(p, end)) == NULL)
				return num;
			if (w.num_field >= 0) {
				sp->num_len[w.num_field] = (size_t)(p - num);
				w.num_field = -1;
			}
			if (p < end && (is_digit(*p) || *p == '.' || *p == 'e' ||
			    *p == 'E' || *p == '+' || *p == '-'))
				return num;
		} else if (c == '{' || c == '[') {
			walk_value(&w, p++);
			w.depth++;
		} else if (c == '}' || c == ']') {
			walk_close(&w, p++);
		} else if (c < 0x20 || c >= 0x80) {
			return p;
		} else {
			if (c != ':' && c != ',')
				walk_value(&w, p);	/* true, false, null */
			p++;
		}
	}
	return NULL;
}

/*
 * cJSON's tree of s, which must be one JSON value: cJSON stops after the
 * value, so whatever follows it must be whitespace.
 */
static cJSON *
cjson_whole(const char *s, size_t len)
{
	const char *end = NULL;
	cJSON *root;

	if ((root = cJSON_ParseWithLengthOpts(s, len, &end, 0)) == NULL)
		return NULL;
	while (end < s + len && json_space(*end))
		end++;
	if (end != s + len) {
		arena_end(root);
		return NULL;
	}
	return root;
}

/* The body into dst with the long strings json_scan() noted emptied. */
static size_t
without_long_strings(char *dst, const char *body, size_t len,
    const struct spans *sp)
{
	const char *p = body;
	char *d = dst;
	size_t n;
	int i;

	for (int k = 0; k < sp->nlong; k++) {
		i = sp->longs[k];
		n = (size_t)(sp->str_at[i] - p);
		memcpy(d, p, n);
		d += n;
		p = sp->str_at[i] + sp->str_len[i];
	}
	n = (size_t)(body + len - p);
	memcpy(d, p, n);
	return (size_t)(d + n - dst);
}

/*
 * Each lone surrogate escape of s becomes \ufffd, of the same length:
 * cJSON then reads U+FFFD, the replacement character, where it refused
 * the whole body. In JSON every backslash starts an escape in a string;
 * json_scan() checked the tokens but not the structure, so s may still
 * hold a stray one, which cJSON then refuses: this must not read past
 * the end for it.
 */
static void
replace_lone_surrogates(char *s, size_t len)
{
	char *p = s, *end = s + len;

	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
		if (end - p < 2)
			break;
		if (p[1] != 'u' || !u_escape(p + 1, end)) {
			p += 2;
			continue;
		}
		switch (surrogate_at(p + 1, end)) {
		case SURROGATE_PAIR:
			p += 12;
			break;
		case SURROGATE_LONE:
			memcpy(p + 2, "fffd", 4);
			/* FALLTHROUGH */
		default:
			p += 6;
			break;
		}
	}
}

/*
 * The body's tree. A NUL byte is never JSON, and one inside a string
 * would cut it short, so it is refused up front.
 *
 * cJSON reads a string a byte at a time, twice (to size it, then to copy
 * it): for a 9 KB transcript, most of the parse. So the long strings of
 * string fields go to cJSON emptied, in a copy of the body, and
 * read_string() takes them from the body instead; json_scan() has
 * checked them as cJSON would have.
 */
static cJSON *
json_parse(const char *body, size_t len, struct spans *sp)
{
	cJSON *root;
	char *copy;
	size_t n;

	if (len == 0 || memchr(body, '\0', len) != NULL ||
	    json_scan(body, len, sp) != NULL)
		return NULL;
	if (sp->nlong == 0 && !sp->lone)
		return cjson_whole(body, len);
	if ((copy = cJSON_malloc(len)) == NULL)
		return NULL;
	n = without_long_strings(copy, body, len, sp);
	if (sp->lone)
		replace_lone_surrogates(copy, n);
	root = cjson_whole(copy, n);
	cJSON_free(copy);
	return root;
}

bool
event_json_valid(const char *s, size_t len)
{
	struct spans sp;
	cJSON *root;

	memset(&sp, 0, sizeof(sp));
	arena_begin();
	root = json_parse(s, len, &sp);
	arena_end(root);
	return root != NULL;
}

/* Strings and the runs between them go over whole, with memcpy(). */
size_t
event_json_minify(char *dst, const char *src, size_t len)
{
	const char *p = src, *end = src + len, *run;
	char *d = dst;

	while (p < end) {
		if (json_space(*p)) {
			p++;
			continue;
		}
		run = p;
		if (*p == '"') {
			/* Checked JSON: a quote or a backslash stops it. */
			for (p++; (p = plain_skip(p, end)) < end && *p != '"';
			    p += 2)
				;
			p = p < end ? p + 1 : end;
		} else {
			while (p < end && *p != '"' && !json_space(*p))
				p++;
		}
		memcpy(d, run, (size_t)(p - run));
		d += p - run;
	}
	return (size_t)(d - dst);
}

static const char *
skip_digits(const char *p)
{
	while (*p >= '0' && *p <= '9')
		p++;
	return p;
}

/* Exactly the JSON number grammar: no spaces, '+', hex, inf or nan. */
static bool
number_text(const char *s, bool *integral)
{
	const char *p = s, *q;

	*integral = true;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		p = skip_digits(p);
	else
		return false;
	if (*p == '.') {
		*integral = false;
		if ((q = skip_digits(p + 1)) == p + 1)
			return false;
		p = q;
	}
	if (*p == 'e' || *p == 'E') {
		*integral = false;
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if ((q = skip_digits(p)) == p)
			return false;
		p = q;
	}
	return *p == '\0';
}

static bool
double_to_int64(double d, int64_t *v)
{
	/* Written so that NaN fails too. */
	if (!(d >= -0x1p63 && d < 0x1p63) || (double)(int64_t)d != d)
		return false;
	*v = (int64_t)d;
	return true;
}

static bool
text_to_double(const char *s, double *d)
{
	bool integral;
	double v;

	if (!number_text(s, &integral))
		return false;
	v = strtod(s, NULL);
	if (!isfinite(v))
		return false;
	*d = v == 0 ? 0 : v;
	return true;
}

/* A number's text whose fraction is all zeros, with no exponent: "3.00". */
static bool
zero_fraction(const char *s)
{
	const char *dot = strchr(s, '.');

	return dot != NULL && strpbrk(s, "eE") == NULL &&
	    dot[1 + strspn(dot + 1, "0")] == '\0';
}

/*
 * Integers go through strtoll(), exact where a double would round, as do
 * those written with a zero fraction.
 */
static bool
text_to_int64(const char *s, int64_t *v)
{
	long long ll;
	bool integral;

	if (!number_text(s, &integral))
		return false;
	if (!integral && !zero_fraction(s))
		return double_to_int64(strtod(s, NULL), v);
	errno = 0;
	ll = strtoll(s, NULL, 10);
	if (errno == ERANGE)
		return false;
	*v = ll;
	return true;
}

/* An integer without ".0"; otherwise the shortest text that reads back. */
static bool
number_to_text(double d, char *buf, size_t size)
{
	int64_t i;
	int prec;

	if (!isfinite(d))
		return false;
	if (double_to_int64(d, &i)) {
		snprintf(buf, size, "%" PRId64, i);
		return true;
	}
	for (prec = 15; prec < 17; prec++) {
		snprintf(buf, size, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return true;
	}
	snprintf(buf, size, "%.17g", d);
	return true;
}

/*
 * The inside of a checked JSON string without \u escapes, unescaped into
 * dst, which has room for its len bytes: the length written.
 */
static size_t
json_unescape(char *dst, const char *src, size_t len)
{
	const char *p = src, *end = src + len, *run;
	char *d = dst;

	while (p < end) {
		run = p;
		p = plain_skip(p, end);
		memcpy(d, run, (size_t)(p - run));
		d += p - run;
		if (p == end)
			break;
		switch (p[1]) {		/* p is at a backslash */
		case 'b': *d++ = '\b'; break;
		case 'f': *d++ = '\f'; break;
		case 'n': *d++ = '\n'; break;
		case 'r': *d++ = '\r'; break;
		case 't': *d++ = '\t'; break;
		default: *d++ = p[1]; break;	/* ", \\ and / */
		}
		p += 2;
	}
	return (size_t)(d - dst);
}

/* fields[i], a string field: from the body if long (json_parse()). */
static enum conv
read_string(const cJSON *it, const struct spans *sp, size_t i,
    struct piece *pc)
{
	/* cJSON's member must be the one emptied (it always is). */
	if (sp->str_at[i] != NULL && cJSON_IsString(it) &&
	    it->valuestring != NULL && it->valuestring[0] == '\0') {
		pc->src = sp->str_at[i];
		pc->len = sp->str_len[i];
		pc->unescape = sp->str_escaped[i];
		return CONV_OK;
	}
	if (cJSON_IsString(it) && it->valuestring != NULL) {
		pc->src = it->valuestring;
		pc->len = strlen(pc->src);
		return CONV_OK;
	}
	/* A number's digits as sent: a double has only 17. */
	if (cJSON_IsNumber(it) && sp->num_at[i] != NULL) {
		pc->src = sp->num_at[i];
		pc->len = sp->num_len[i];
		return CONV_COERCED;
	}
	if (cJSON_IsNumber(it) &&
	    number_to_text(it->valuedouble, pc->num, sizeof(pc->num))) {
		pc->src = pc->num;
		pc->len = strlen(pc->src);
		return CONV_COERCED;
	}
	return CONV_BAD;
}

static enum conv
read_double(const cJSON *it, double *d)
{
	if (cJSON_IsNumber(it)) {
		if (!isfinite(it->valuedouble))
			return CONV_BAD;
		/* -0 is 0 to anyone who reads the column. */
		*d = it->valuedouble == 0 ? 0 : it->valuedouble;
		return CONV_OK;
	}
	if (cJSON_IsString(it) && text_to_double(it->valuestring, d))
		return CONV_COERCED;
	return CONV_BAD;
}

/*
 * fields[i]'s number as sent, NUL-terminated in buf; false when there is
 * none, or it is too long to be an integer's.
 */
static bool
number_as_sent(const struct spans *sp, size_t i, char *buf, size_t size)
{
	if (sp->num_at[i] == NULL || sp->num_len[i] >= size)
		return false;
	memcpy(buf, sp->num_at[i], sp->num_len[i]);
	buf[sp->num_len[i]] = '\0';
	return true;
}

/* Integers exactly, beyond the 2^53 a double holds. */
static enum conv
read_int(const cJSON *it, const struct spans *sp, size_t i, int64_t *v)
{
	char num[32];

	if (cJSON_IsNumber(it) && number_as_sent(sp, i, num, sizeof(num)))
		return text_to_int64(num, v) ? CONV_OK : CONV_BAD;
	if (cJSON_IsNumber(it))
		return double_to_int64(it->valuedouble, v) ? CONV_OK : CONV_BAD;
	if (cJSON_IsString(it) && text_to_int64(it->valuestring, v))
		return CONV_COERCED;
	return CONV_BAD;
}

static enum conv
read_bool(const cJSON *it, int *b)
{
	if (cJSON_IsBool(it)) {
		*b = cJSON_IsTrue(it);
		return CONV_OK;
	}
	if (cJSON_IsString(it) && (strcmp(it->valuestring, "true") == 0 ||
	    strcmp(it->valuestring, "false") == 0)) {
		*b = it->valuestring[0] == 't';
		return CONV_COERCED;
	}
	if (cJSON_IsNumber(it) && (it->valuedouble == 0 ||
	    it->valuedouble == 1)) {
		*b = it->valuedouble == 1;
		return CONV_COERCED;
	}
	return CONV_BAD;
}

static enum conv
read_json(cJSON *it, const struct field *f, const struct spans *sp,
    struct piece *pc)
{
	size_t i = (size_t)(f - fields);

	if (f->kind == K_OBJECT ? !cJSON_IsObject(it) : !cJSON_IsArray(it))
		return CONV_BAD;
	/* Never: json_scan() finds the member cJSON found (fuzz_event.c). */
	if (sp->at[i] == NULL)
		return CONV_BAD;
	pc->src = sp->at[i];
	pc->len = sp->len[i];
	pc->minify = true;
	return CONV_OK;
}

/*
 * Add pc, filled by a reader, to the pieces to place. need saturates, and
 * event_build() then fails as it would to allocate that much.
 */
static void
plan_add(struct plan *pl, const struct piece *pc)
{
	if (pc->len >= SIZE_MAX - pl->need)
		pl->need = SIZE_MAX;
	else
		pl->need += pc->len + 1;
	pl->piece[pl->npiece] = *pc;
	/* num moved with the piece: src must follow it. */
	if (pc->src == pc->num)
		pl->piece[pl->npiece].src = pl->piece[pl->npiece].num;
	pl->npiece++;
}

/* Read one field into pl: its value, its has_ flag or its piece. */
static enum conv
field_read(const struct field *f, cJSON *it, struct plan *pl)
{
	char *base = (char *)&pl->ev;
	struct piece pc = { .off = f->off };
	enum conv c = CONV_BAD;

	if (it == NULL || cJSON_IsNull(it))
		return CONV_NULL;
	switch (f->kind) {
	case K_STRING:
		c = read_string(it, &pl->spans, (size_t)(f - fields), &pc);
		break;
	case K_DOUBLE:
		c = read_double(it, (double *)(base + f->off));
		break;
	case K_INT:
		c = read_int(it, &pl->spans, (size_t)(f - fields),
		    (int64_t *)(base + f->off));
		break;
	case K_BOOL:
		c = read_bool(it, (int *)(base + f->off));
		break;
	case K_OBJECT:
	case K_ARRAY:
		c = read_json(it, f, &pl->spans, &pc);
		break;
	}
	if (c == CONV_BAD || f->kind == K_BOOL)
		return c;
	if (f->kind == K_DOUBLE || f->kind == K_INT)
		*(bool *)(base + f->has) = true;
	else
		plan_add(pl, &pc);
	return c;
}

static const char *
field_noun(const struct field *f, const cJSON *it)
{
	if (f->kind == K_DOUBLE && cJSON_IsNumber(it))
		return "a finite number";
	return kind_noun[f->kind];
}

/*
 * found[i] = the member of data named fields[i].key, the first one when the
 * name repeats (as cJSON_GetObjectItemCaseSensitive() would): one pass over
 * the members instead of one per field.
 */
static void
find_fields(const cJSON *data, cJSON **found)
{
	cJSON *it;
	size_t i, len;

	for (it = data->child; it != NULL; it = it->next) {
		if (it->string == NULL)
			continue;
		len = strlen(it->string);
		for (i = 0; i < nitems(fields); i++)
			if (fields[i].keylen == len && found[i] == NULL &&
			    memcmp(fields[i].key, it->string, len) == 0) {
				found[i] = it;
				break;
			}
	}
}

static enum event_error
check_fields(cJSON *data, bool strict, struct plan *pl, char *msg,
    size_t msglen)
{
	const struct field *f;
	cJSON *it;
	enum conv c;
	size_t i;

	cJSON *found[nitems(fields)] = { NULL };

	find_fields(data, found);
	for (i = 0; i < nitems(fields); i++) {
		f = &fields[i];
		it = found[i];
		c = field_read(f, it, pl);
		/*
		 * A string field is cut at a \u0000 in its column; the body,
		 * and a JSON-valued field, keep it all. Elsewhere in the body
		 * it is any string's right.
		 */
		if (c == CONV_OK && pl->spans.str_nul[i]) {
			if (strict)
				return refuse(EVENT_BAD_REQUEST, msg, msglen,
				    "data.%s must not contain \\u0000",
				    f->key);
			pl->ev.type_mismatches++;
			continue;
		}
		if (c != CONV_COERCED && c != CONV_BAD)
			continue;
		if (strict)
			return refuse(EVENT_BAD_REQUEST, msg, msglen,
			    "data.%s must be %s", f->key, field_noun(f, it));
		pl->ev.type_mismatches++;
	}
	return EVENT_OK;
}

static enum event_error
check_call_sid(cJSON *data, struct plan *pl, char *msg, size_t msglen)
{
	const cJSON *sid;
	struct piece pc = { .off = offsetof(struct event, call_sid) };

	sid = cJSON_GetObjectItemCaseSensitive(data, "callSid");
	if (sid == NULL || cJSON_IsNull(sid))
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "data.callSid is required");
	if (!cJSON_IsString(sid) || sid->valuestring == NULL)
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "data.callSid must be a string");
	/* cJSON cuts it there: "a\u0000b" and "a\u0000c" would be one call. */
	if (pl->spans.sid_nul)
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "data.callSid must not contain \\u0000");
	if (sid->valuestring[0] == '\0')
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "data.callSid must not be empty");
	/* Read as U+FFFD, "\ud800" and "\ud801" would be one call. */
	if (pl->spans.sid_lone)
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "data.callSid must not contain a lone surrogate escape "
		    "(\\ud800 to \\udfff without its other half)");
	pc.src = sid->valuestring;
	pc.len = strnlen(pc.src, EVENT_CALL_SID_MAX + 1);
	if (pc.len > EVENT_CALL_SID_MAX)
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "data.callSid is too long");
	plan_add(pl, &pc);
	return EVENT_OK;
}

/* The envelope, in the order the client is told: object, event, data. */
static enum event_error
check_envelope(cJSON *root, struct plan *pl, cJSON **data, char *msg,
    size_t msglen)
{
	const cJSON *event;
	struct piece pc = { .off = offsetof(struct event, event) };

	if (!cJSON_IsObject(root))
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "body is not a JSON object");
	event = cJSON_GetObjectItemCaseSensitive(root, "event");
	if (!cJSON_IsString(event) || event->valuestring == NULL)
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "event is required");
	if (strcmp(event->valuestring, "call_ended") != 0)
		return refuse(EVENT_UNKNOWN_TYPE, msg, msglen,
		    "Unknown event type");
	*data = cJSON_GetObjectItemCaseSensitive(root, "data");
	if (!cJSON_IsObject(*data))
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "data must be an object");
	pc.src = event->valuestring;
	pc.len = strlen(pc.src);
	plan_add(pl, &pc);
	return EVENT_OK;
}

/* Copy pc to p, below end; the address after it, NULL if full. */
static char *
piece_place(const struct piece *pc, struct event *ev, char *p, char *end)
{
	size_t n;

	if (pc->len >= (size_t)(end - p))
		return NULL;
	if (pc->minify)
		n = event_json_minify(p, pc->src, pc->len);
	else if (pc->unescape)
		n = json_unescape(p, pc->src, pc->len);
	else {
		n = pc->len;
		memcpy(p, pc->src, n);
	}
	p[n] = '\0';
	*(char **)((char *)ev + pc->off) = p;
	return p + n + 1;
}

/* The second pass: one block for the struct, the body and the pieces. */
static enum event_error
event_build(const struct plan *pl, const char *body, size_t len,
    struct event **out)
{
	struct event *ev;
	char *p, *end;
	size_t i, size;

	if (pl->need > SIZE_MAX - sizeof(*ev) - 1 ||
	    len > SIZE_MAX - sizeof(*ev) - 1 - pl->need)
		return EVENT_NO_MEMORY;
	size = sizeof(*ev) + len + 1 + pl->need;
	if ((ev = cJSON_malloc(size)) == NULL)
		return EVENT_NO_MEMORY;
	*ev = pl->ev;
	p = (char *)(ev + 1);
	end = (char *)ev + size;
	memcpy(p, body, len);
	p[len] = '\0';
	ev->body = p;
	ev->body_len = len;
	p += len + 1;
	for (i = 0; i < pl->npiece && p != NULL; i++)
		p = piece_place(&pl->piece[i], ev, p, end);
	if (p == NULL) {
		cJSON_free(ev);
		return EVENT_NO_MEMORY;
	}
	*out = ev;
	return EVENT_OK;
}

static void
plan_init(struct plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	pl->ev.conversion_status = -1;
	pl->ev.next_call_scheduled = -1;
}

/*
 * What is wrong in a string json_scan() refused at the quote at: a raw
 * control character, a bad escape, or no closing quote.
 */
static void
explain_string(const char *body, const char *at, const char *end,
    char *out, size_t outlen)
{
	for (const char *p = at + 1; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20) {
			snprintf(out, outlen, "a raw control character (0x%02X) "
			    "in a string at byte %zu", c,
			    (size_t)(p - body) + 1);
			return;
		}
		if (c != '\\')
			continue;
		if (++p == end || (*p == 'u' && end - p <= 4))
			break;		/* cut short in the escape */
		if (memchr("\"\\/bfnrt", *p, 8) != NULL)
			continue;
		if (*p == 'u' && is_hex(p[1]) && is_hex(p[2]) && is_hex(p[3]) &&
		    is_hex(p[4])) {
			p += 4;
			continue;
		}
		snprintf(out, outlen, "a bad escape in a string at byte %zu",
		    (size_t)(p - body));
		return;
	}
	snprintf(out, outlen, "a string from byte %zu is not closed (the "
	    "body cut short?)", (size_t)(at - body) + 1);
}

/* What json_scan() refused at, for a 400's reason. */
static void
explain_token(const char *body, const char *at, const char *end, char *out,
    size_t outlen)
{
	unsigned char c = (unsigned char)*at;
	size_t byte = (size_t)(at - body) + 1;

	if (at == body && end - at >= 3 && memcmp(at, "\xEF\xBB\xBF", 3) == 0)
		snprintf(out, outlen, "it starts with a UTF-8 byte order mark");
	else if (c == '"')
		explain_string(body, at, end, out, outlen);
	else if (c == '-' || is_digit((char)c))
		snprintf(out, outlen, "a number not in JSON's form at byte %zu",
		    byte);
	else if (c < 0x20)
		snprintf(out, outlen, "a control character (0x%02X) at byte "
		    "%zu", c, byte);
	else
		snprintf(out, outlen, "byte 0x%02X outside a string at byte %zu",
		    c, byte);
}

/* What a forward look over the body's tokens sees just before p. */
struct before {
	int	 depth;		/* containers open */
	bool	 in_object;	/* the innermost is an object */
	bool	 in_string;
	bool	 mismatched;	/* a bracket closed what it did not open */
	char	 last;		/* the last byte outside strings and space */
};

/* Containers deeper than cJSON reads are counted, not told apart. */
#define KINDS	(CJSON_NESTING_LIMIT + 2)

static void
look_before(const char *body, const char *p, struct before *b)
{
	bool object[KINDS];
	const char *q;

	memset(b, 0, sizeof(*b));
	for (q = body; q < p; q++) {
		if (b->in_string) {
			if (*q == '\\')
				q++;
			else if (*q == '"')
				b->in_string = false;
			continue;
		}
		if (*q == '"')
			b->in_string = true;
		else if (*q == '{' || *q == '[') {
			if (b->depth < KINDS)
				object[b->depth] = *q == '{';
			b->depth++;
		} else if (*q == '}' || *q == ']') {
			if (b->depth == 0 || (b->depth <= KINDS &&
			    object[b->depth - 1] != (*q == '}')))
				b->mismatched = true;
			else
				b->depth--;
		}
		if (!json_space(*q))
			b->last = *q;
	}
	b->in_object = b->depth > 0 && b->depth <= KINDS &&
	    object[b->depth - 1];
}

/*
 * The body ends inside an object or array, every bracket so far matched,
 * and cJSON read to its last byte: it was cut short. (A body with a
 * bracket open whose mistake comes before is not.)
 */
static bool
cut_short(const char *body, const char *end, const char *stop)
{
	const char *last = end;
	struct before b;

	while (last > body && json_space(last[-1]))
		last--;
	if (stop != NULL && stop >= body && stop < last - 1)
		return false;
	look_before(body, end, &b);
	return !b.mismatched && b.depth > 0;
}

/*
 * Where cJSON's stop points to, but one byte back when a member's name
 * was wanted there: cJSON 1.7.15 then says the byte after the one that
 * is not a string (except at the body's end, where it stops at the
 * last). A name is wanted after an object's '{' (unless '}' closes it at
 * once) and after a ',' in an object.
 */
static const char *
culprit(const char *body, const char *stop)
{
	const char *c = stop - 1;
	struct before b;

	if (c <= body || json_space(*c) || *c == '"')
		return stop;
	look_before(body, c, &b);
	if (b.in_string || !b.in_object || (b.last == '{' && *c == '}'))
		return stop;
	return b.last == ',' || b.last == '{' ? c : stop;
}

/* cJSON's limit, met at the container that starts at p. */
static bool
too_deep(const char *body, const char *p)
{
	struct before b;

	if (*p != '[' && *p != '{')
		return false;
	look_before(body, p, &b);
	return b.depth >= CJSON_NESTING_LIMIT;
}

/*
 * Why a body is not JSON: cold, so it scans again, and asks cJSON where
 * the structure breaks.
 */
static void
explain_json(const char *body, size_t len, char *out, size_t outlen)
{
	const char *end = body + len, *at, *stop = NULL;
	struct spans sp;
	cJSON *root;

	memset(&sp, 0, sizeof(sp));
	for (at = body; at < end && json_space(*at); at++)
		;
	if (at == end) {
		snprintf(out, outlen, "the body is empty");
		return;
	}
	if ((at = memchr(body, '\0', len)) != NULL) {
		snprintf(out, outlen, "a NUL byte at byte %zu",
		    (size_t)(at - body) + 1);
		return;
	}
	if ((at = json_scan(body, len, &sp)) != NULL) {
		explain_token(body, at, end, out, outlen);
		return;
	}
	if ((root = cJSON_ParseWithLengthOpts(body, len, &stop, 0)) != NULL) {
		cJSON_Delete(root);
		while (stop < end && json_space(*stop))
			stop++;
		if (stop < end)
			snprintf(out, outlen, "more after the JSON value, at byte "
			    "%zu", (size_t)(stop - body) + 1);
		else
			snprintf(out, outlen, "out of memory");
		return;
	}
	if (cut_short(body, end, stop))
		snprintf(out, outlen, "it ends before its JSON value does (the "
		    "body cut short?)");
	else if (stop == NULL || stop < body || stop >= end)
		snprintf(out, outlen, "cJSON says no");
	else if (too_deep(body, stop))
		snprintf(out, outlen, "nested more than %d deep, at byte %zu",
		    CJSON_NESTING_LIMIT, (size_t)(stop - body) + 1);
	else if ((stop = culprit(body, stop)), *stop > ' ' && *stop < 0x7f)
		snprintf(out, outlen, "unexpected '%c' at byte %zu", *stop,
		    (size_t)(stop - body) + 1);
	else
		snprintf(out, outlen, "unexpected byte 0x%02X at byte %zu",
		    (unsigned char)*stop, (size_t)(stop - body) + 1);
}

enum event_error
event_parse(const char *body, size_t len, bool strict, struct event **out,
    char *msg, size_t msglen)
{
	struct plan pl;
	cJSON *root, *data = NULL;
	enum event_error rc;

	*out = NULL;
	if (msglen > 0)
		msg[0] = '\0';
	if (!event_utf8_valid(body, len))
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "body is not valid UTF-8");
	plan_init(&pl);
	arena_begin();
	/* cJSON says NULL for no memory too; that is taken as bad JSON. */
	root = json_parse(body, len, &pl.spans);
	if (root == NULL) {
		char why[96];

		arena_end(NULL);
		explain_json(body, len, why, sizeof(why));
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "body is not valid JSON: %s", why);
	}
	rc = check_envelope(root, &pl, &data, msg, msglen);
	/* In both modes: cut, two members would be one. */
	if (rc == EVENT_OK && pl.spans.key_nul)
		rc = refuse(EVENT_BAD_REQUEST, msg, msglen, "a member name "
		    "holds \\u0000, which would cut it to one callhookd reads");
	if (rc == EVENT_OK)
		rc = check_call_sid(data, &pl, msg, msglen);
	if (rc == EVENT_OK)
		rc = check_fields(data, strict, &pl, msg, msglen);
	arena_pause();		/* the block outlives the tree */
	if (rc == EVENT_OK)
		rc = event_build(&pl, body, len, out);
	arena_end(root);
	if (rc == EVENT_NO_MEMORY)
		refuse(rc, msg, msglen, "out of memory");
	return rc;
}

void
event_refused_call_sid(const char *body, size_t len, char *buf,
    size_t size)
{
	struct plan pl;
	cJSON *root, *data;
	char msg[1];

	buf[0] = '\0';
	if (!event_utf8_valid(body, len))
		return;
	plan_init(&pl);
	arena_begin();
	root = json_parse(body, len, &pl.spans);
	/*
	 * A name that \u0000 cut to one callhookd reads ("callSid\u0000x"
	 * reads as "callSid"): event_parse() takes no callSid then.
	 */
	data = pl.spans.key_nul ? NULL :
	    cJSON_GetObjectItemCaseSensitive(root, "data");
	if (cJSON_IsObject(data) &&
	    check_call_sid(data, &pl, msg, sizeof(msg)) == EVENT_OK)
		snprintf(buf, size, "%s", cJSON_GetStringValue(
		    cJSON_GetObjectItemCaseSensitive(data, "callSid")));
	arena_end(root);
}

void
event_free(struct event *ev)
{
	/* The strings and the body live in the same block. */
	if (ev != NULL)
		cJSON_free(ev);
}

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
 * is allocated, copies them in. JSON-valued fields are printed straight
 * into the block by cJSON_PrintPreallocated(), within a size worked out
 * from the tree by json_bound().
 *
 * The block comes from cJSON_malloc(), like every cJSON allocation, so a
 * test can make any allocation of this module fail with cJSON_InitHooks().
 * Numbers are read and printed with strtod() and snprintf(), as cJSON does:
 * the daemon runs in the C locale.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "event.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

#define CALL_SID_MAX	256	/* bytes */
#define NUMBER_MAX	25	/* longest number cJSON prints */
#define PRINT_SLACK	8	/* cJSON_PrintPreallocated() looks a byte ahead */

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
	enum kind	 kind;
	size_t		 off;		/* the value */
	size_t		 has;		/* K_DOUBLE, K_INT: its has_ flag */
};

#define FIELD(key, kind, m)	{ key, kind, offsetof(struct event, m), 0 }
#define NUMBER(key, kind, m, h)	{ key, kind, offsetof(struct event, m), \
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
	const char	*src;		/* len bytes to copy, or NULL */
	cJSON		*json;		/* or a tree to print in len bytes */
	size_t		 len;
	char		 num[32];	/* a number turned into text */
};

/* What the first pass learnt: everything but the strings' addresses. */
struct plan {
	struct event	 ev;
	struct piece	 piece[nitems(fields) + 2];	/* + event, callSid */
	size_t		 npiece;
	size_t		 need;		/* bytes for all pieces */
	bool		 escaped_nul;	/* some string held \u0000 */
};

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

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/*
 * cJSON turns \u0000 into a NUL that ends the C string early, and reads a
 * \u escape with a non-hex digit as \u0000 too: the first is JSON that a
 * C string cannot hold, the second is not JSON. Only called on a body that
 * cJSON parsed, where every backslash starts an escape inside a string and
 * a \u has its four characters before the closing quote.
 */
static bool
escapes_valid(const char *s, size_t len, bool *nul)
{
	const char *p = s, *end = s + len;
	int i;

	*nul = false;
	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
		if (p[1] == 'u') {
			for (i = 2; i < 6; i++)
				if (!is_hex(p[i]))
					return false;
			if (memcmp(p + 2, "0000", 4) == 0)
				*nul = true;
		}
		p += 2;
	}
	return true;
}

static bool
json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * The whole body must be one JSON value: cJSON stops after the value, so
 * whatever follows it must be whitespace. A NUL byte is never JSON, and
 * one inside a string would cut it short, so it is refused up front.
 */
static cJSON *
json_parse(const char *body, size_t len, bool *nul)
{
	const char *end = NULL;
	cJSON *root;

	if (len == 0 || memchr(body, '\0', len) != NULL)
		return NULL;
	if ((root = cJSON_ParseWithLengthOpts(body, len, &end, 0)) == NULL)
		return NULL;
	while (end < body + len && json_space(*end))
		end++;
	if (end != body + len || !escapes_valid(body, len, nul)) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/* Bytes a string takes when cJSON prints it, quotes included. */
static size_t
escaped_len(const char *s)
{
	const unsigned char *p;
	size_t n = 2;

	for (p = (const unsigned char *)s; p != NULL && *p != '\0'; p++) {
		if (*p == '"' || *p == '\\' || *p == '\b' || *p == '\f' ||
		    *p == '\n' || *p == '\r' || *p == '\t')
			n += 2;
		else if (*p < 0x20)
			n += 6;		/* \u00XX */
		else
			n++;
	}
	return n;
}

/*
 * At least the length of cJSON_PrintUnformatted(it). The recursion is as
 * deep as the tree, which the parser caps at CJSON_NESTING_LIMIT.
 */
static size_t
json_bound(const cJSON *it)
{
	const cJSON *c;
	size_t n;

	if (cJSON_IsString(it))
		return escaped_len(it->valuestring);
	if (cJSON_IsNumber(it))
		return NUMBER_MAX;
	if (!cJSON_IsArray(it) && !cJSON_IsObject(it))
		return 5;		/* false, true, null */
	n = 2;
	for (c = it->child; c != NULL; c = c->next) {
		n += json_bound(c) + 1;		/* and a comma */
		if (cJSON_IsObject(it))
			n += escaped_len(c->string) + 1;	/* and a colon */
	}
	return n;
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

/* Integers go through strtoll(), exact where a double would round. */
static bool
text_to_int64(const char *s, int64_t *v)
{
	long long ll;
	bool integral;

	if (!number_text(s, &integral))
		return false;
	if (!integral)
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

static enum conv
read_string(const cJSON *it, struct piece *pc)
{
	if (cJSON_IsString(it) && it->valuestring != NULL) {
		pc->src = it->valuestring;
		pc->len = strlen(pc->src);
		return CONV_OK;
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

static enum conv
read_int(const cJSON *it, int64_t *v)
{
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
read_json(cJSON *it, enum kind kind, struct piece *pc)
{
	if (kind == K_OBJECT ? !cJSON_IsObject(it) : !cJSON_IsArray(it))
		return CONV_BAD;
	pc->json = it;
	pc->len = json_bound(it) + PRINT_SLACK;
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
		c = read_string(it, &pc);
		break;
	case K_DOUBLE:
		c = read_double(it, (double *)(base + f->off));
		break;
	case K_INT:
		c = read_int(it, (int64_t *)(base + f->off));
		break;
	case K_BOOL:
		c = read_bool(it, (int *)(base + f->off));
		break;
	case K_OBJECT:
	case K_ARRAY:
		c = read_json(it, f->kind, &pc);
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

static enum event_error
check_fields(cJSON *data, bool strict, struct plan *pl, char *msg,
    size_t msglen)
{
	const struct field *f;
	cJSON *it;
	enum conv c;
	size_t i;

	for (i = 0; i < nitems(fields); i++) {
		f = &fields[i];
		it = cJSON_GetObjectItemCaseSensitive(data, f->key);
		c = field_read(f, it, pl);
		if (c != CONV_COERCED && c != CONV_BAD)
			continue;
		if (strict)
			return refuse(EVENT_BAD_REQUEST, msg, msglen,
			    "data.%s must be %s", f->key, field_noun(f, it));
		pl->ev.type_mismatches++;
	}
	if (pl->escaped_nul) {
		if (strict)
			return refuse(EVENT_BAD_REQUEST, msg, msglen,
			    "strings must not contain \\u0000");
		/* The strings are cut there; the body keeps the rest. */
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
	if (!cJSON_IsString(sid) || sid->valuestring == NULL ||
	    sid->valuestring[0] == '\0')
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "data.callSid is required");
	pc.src = sid->valuestring;
	pc.len = strnlen(pc.src, CALL_SID_MAX + 1);
	if (pc.len > CALL_SID_MAX)
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

/* Copy or print pc at p, below end; the address after it, NULL if full. */
static char *
piece_place(const struct piece *pc, struct event *ev, char *p, char *end)
{
	size_t n, room = (size_t)(end - p);

	if (pc->json != NULL) {
		/* Cannot fail: the room is at least json_bound() + slack. */
		if (!cJSON_PrintPreallocated(pc->json, p,
		    room > INT_MAX ? INT_MAX : (int)room, 0))
			return NULL;
		n = strlen(p);
	} else {
		if (pc->len >= room)
			return NULL;
		memcpy(p, pc->src, pc->len);
		p[pc->len] = '\0';
		n = pc->len;
	}
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
	/* cJSON says NULL for no memory too; that is taken as bad JSON. */
	if ((root = json_parse(body, len, &pl.escaped_nul)) == NULL)
		return refuse(EVENT_BAD_REQUEST, msg, msglen,
		    "body is not valid JSON");
	rc = check_envelope(root, &pl, &data, msg, msglen);
	if (rc == EVENT_OK)
		rc = check_call_sid(data, &pl, msg, msglen);
	if (rc == EVENT_OK)
		rc = check_fields(data, strict, &pl, msg, msglen);
	if (rc == EVENT_OK)
		rc = event_build(&pl, body, len, out);
	cJSON_Delete(root);
	if (rc == EVENT_NO_MEMORY)
		refuse(rc, msg, msglen, "out of memory");
	return rc;
}

void
event_free(struct event *ev)
{
	/* The strings and the body live in the same block. */
	if (ev != NULL)
		cJSON_free(ev);
}

/*
 * event: JSON body -> struct event. Every body is parsed from a heap copy
 * of exactly its length, so that AddressSanitizer sees a read past the
 * end. cJSON is used here only as an independent reader of the fixtures
 * and to make allocations fail.
 */

#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "event.h"

#define MSGLEN	128
#define PLAIN	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define NOTE	"\"event\":\"call_ended\",\"data\":{\"callSid\":\"CA1\""

Suite	*event_suite(void);

static const char *const fixture_names[] = {
	"call_ended.json", "call_ended_long.json", "call_ended_inbound.json",
};

static char *
fixture(const char *name, size_t *len)
{
	const char *dir = getenv("FIXTURES");
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/fixtures",
	    name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_gt(n, 0);
	rewind(f);
	buf = malloc((size_t)n);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Parse s[0..n) from a buffer of exactly n bytes and check the contract. */
static enum event_error
parse_n(const char *s, size_t n, bool strict, struct event **ev, char *msg)
{
	enum event_error rc;
	char *copy;

	copy = malloc(n > 0 ? n : 1);
	ck_assert_ptr_nonnull(copy);
	if (n > 0)
		memcpy(copy, s, n);
	*ev = (struct event *)copy;	/* must be reset */
	rc = event_parse(copy, n, strict, ev, msg, MSGLEN);
	if (rc == EVENT_OK) {
		ck_assert_ptr_nonnull(*ev);
		ck_assert_str_eq(msg, "");
		ck_assert_uint_eq((*ev)->body_len, n);
		ck_assert_ptr_ne((*ev)->body, copy);
		ck_assert_mem_eq((*ev)->body, s, n);
		ck_assert_int_eq((*ev)->body[n], '\0');
		ck_assert_ptr_nonnull((*ev)->call_sid);
		ck_assert_str_eq((*ev)->event, "call_ended");
	} else {
		ck_assert_ptr_null(*ev);
		ck_assert_uint_gt(strlen(msg), 0);
	}
	free(copy);
	return rc;
}

static enum event_error
parse_s(const char *s, bool strict, struct event **ev, char *msg)
{
	return parse_n(s, strlen(s), strict, ev, msg);
}

/* {"event":"call_ended","data":{"callSid":"CA1",<frag>}} */
static char *
note_with(const char *frag)
{
	char *s;

	ck_assert_int_ge(asprintf(&s, "{" NOTE ",%s}}", frag), 0);
	return s;
}

/* note_with() of a printf() fragment. */
static char *
note_with_f(const char *fmt, ...)
{
	char *frag, *s;
	va_list ap;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&frag, fmt, ap), 0);
	va_end(ap);
	s = note_with(frag);
	free(frag);
	return s;
}

static void
expect_refused(const char *body, size_t n, enum event_error want,
    const char *want_msg)
{
	char msg[MSGLEN];
	struct event *ev;

	ck_assert_int_eq(parse_n(body, n, false, &ev, msg), want);
	ck_assert_str_eq(msg, want_msg);
	ck_assert_int_eq(parse_n(body, n, true, &ev, msg), want);
	ck_assert_str_eq(msg, want_msg);
}

#define REFUSED(s, rc, m)	expect_refused(s, strlen(s), rc, m)
#define NOT_JSON		"body is not valid JSON: "
#define NOT_JSON_ANY(s)		expect_not_json_any(s, strlen(s))

/* Refused as not JSON in both modes, whatever the reason given. */
static void
expect_not_json_any(const char *body, size_t n)
{
	char msg[MSGLEN];
	struct event *ev;

	for (int strict = 0; strict <= 1; strict++) {
		ck_assert_int_eq(parse_n(body, n, strict, &ev, msg),
		    EVENT_BAD_REQUEST);
		ck_assert_msg(strncmp(msg, NOT_JSON, strlen(NOT_JSON)) == 0,
		    "%s", msg);
	}
}

static struct event *
parse_fixture(const char *name, bool strict)
{
	char msg[MSGLEN];
	struct event *ev;
	size_t len;
	char *body;

	body = fixture(name, &len);
	ck_assert_int_eq(parse_n(body, len, strict, &ev, msg), EVENT_OK);
	free(body);
	return ev;
}

START_TEST(test_fixture_outbound)
{
	struct event *ev = parse_fixture("call_ended.json", false);

	ck_assert_str_eq(ev->call_sid, "2303fa770b666a64ab1694c1e");
	ck_assert_str_eq(ev->call_type, "outbound");
	ck_assert_str_eq(ev->agent_id, "6803fa770b666a64ab1694c1e");
	ck_assert_str_eq(ev->version_id, "1203fa770b666a64ab1694c1e");
	ck_assert_str_eq(ev->from_number, "919876543210");
	ck_assert_str_eq(ev->to_number, "918765432109");
	ck_assert_str_eq(ev->recording_url,
	    "https://example.com/recording.mp3");
	ck_assert(ev->has_call_duration);
	ck_assert_double_eq(ev->call_duration, 120);
	ck_assert_str_eq(ev->call_time, "2025-12-19 16:01:07");
	ck_assert_str_eq(ev->transcription, "Full call transcript...");
	ck_assert_str_eq(ev->batch_id, "0303fa770b666a64ab1694c1e");
	ck_assert_str_eq(ev->hangup_reason, "CLIENT_INITIATED");
	ck_assert_str_eq(ev->call_metadata, "{\"name\":\"Jatin\",\"age\":25}");
	ck_assert(ev->has_try_count);
	ck_assert_int_eq(ev->try_count, 0);
	ck_assert_str_eq(ev->post_call, "{\"lead_status\":\"interested\"}");
	ck_assert_str_eq(ev->post_call_detail, "{\"lead_status\":{\"value\":"
	    "\"interested\",\"comment\":\"Customer showed interest\"}}");
	ck_assert_str_eq(ev->functions_called, "[{\"name\":\"update_crm\","
	    "\"success\":true,\"timestamp\":\"2025-12-19T15:25:00.000Z\"}]");
	ck_assert_str_eq(ev->disposition_reason,
	    "Customer requested callback");
	ck_assert_int_eq(ev->conversion_status, 1);
	ck_assert_int_eq(ev->next_call_scheduled, 0);
	ck_assert_str_eq(ev->call_link,
	    "https://callkaro.ai/dashboard/call-history?call_id=abc123");
	ck_assert_uint_eq(ev->type_mismatches, 0);
	ck_assert_str_eq(ev->remote_addr, "");
	ck_assert_str_eq(ev->received_at, "");
	event_free(ev);
}
END_TEST

START_TEST(test_fixture_inbound)
{
	struct event *ev = parse_fixture("call_ended_inbound.json", false);

	ck_assert_str_eq(ev->call_sid, "inbound-0001");
	ck_assert_str_eq(ev->call_type, "inbound");
	ck_assert_str_eq(ev->transcription, "Namaste! मैं आपकी कैसे मदद कर "
	    "सकती हूँ? — callback requested 🙏");
	ck_assert_ptr_null(ev->batch_id);
	ck_assert_str_eq(ev->hangup_reason, "AGENT_INITIATED");
	ck_assert_str_eq(ev->call_metadata, "{}");
	ck_assert(ev->has_try_count);
	ck_assert_int_eq(ev->try_count, -1);
	ck_assert_str_eq(ev->functions_called, "[]");
	ck_assert_int_eq(ev->conversion_status, 0);
	ck_assert_int_eq(ev->next_call_scheduled, 1);
	ck_assert_uint_eq(ev->type_mismatches, 0);
	event_free(ev);
}
END_TEST

START_TEST(test_fixture_long)
{
	struct event *ev = parse_fixture("call_ended_long.json", false);

	ck_assert_str_eq(ev->call_sid, "long-transcript-0001");
	ck_assert_double_eq(ev->call_duration, 412);
	ck_assert_uint_gt(strlen(ev->transcription), 7000);
	ck_assert(strncmp(ev->transcription, "Agent: to charge the ", 21) == 0);
	ck_assert_ptr_nonnull(strchr(ev->transcription, '\n'));
	ck_assert_ptr_nonnull(strstr(ev->functions_called,
	    "{\"name\":\"send_sms\",\"success\":false,"));
	ck_assert_uint_eq(ev->type_mismatches, 0);
	event_free(ev);
}
END_TEST

static void
expect_member(const cJSON *data, const char *key, const char *got)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(data, key);
	char *want;

	if (it == NULL || cJSON_IsNull(it)) {
		ck_assert_ptr_null(got);
		return;
	}
	if (cJSON_IsString(it)) {
		ck_assert_pstr_eq(got, it->valuestring);
		return;
	}
	want = cJSON_PrintUnformatted(it);
	ck_assert_pstr_eq(got, want);
	cJSON_free(want);
}

/* Every string field of data as ev has it, as cJSON reads data. */
static void
expect_string_fields(const cJSON *data, const struct event *ev)
{
#define M(key, member) expect_member(data, key, ev->member)
	M("name", call_type); M("agent", agent_id); M("versionId", version_id);
	M("from", from_number); M("to", to_number);
	M("recordingUrl", recording_url); M("time", call_time);
	M("transcription", transcription); M("batchId", batch_id);
	M("hangup_reason", hangup_reason);
	M("disposition_reason", disposition_reason); M("call_link", call_link);
#undef M
}

/* Every fixture field, as cJSON reads the file, in strict mode. */
START_TEST(test_fixtures_match_cjson)
{
	const char *name = fixture_names[_i];
	struct event *ev = parse_fixture(name, true);
	cJSON *root, *data, *it;
	size_t len;
	char *body;

	body = fixture(name, &len);
	root = cJSON_ParseWithLength(body, len);
	ck_assert_ptr_nonnull(root);
	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	expect_string_fields(data, ev);
#define M(key, member) expect_member(data, key, ev->member)
	M("callSid", call_sid);
	M("call_metadata", call_metadata); M("post_call", post_call);
	M("post_call_detail", post_call_detail);
	M("functions_called", functions_called);
#undef M
	it = cJSON_GetObjectItemCaseSensitive(data, "call_duration");
	ck_assert_double_eq(ev->call_duration, it->valuedouble);
	it = cJSON_GetObjectItemCaseSensitive(data, "try_count");
	ck_assert_int_eq(ev->try_count, (int64_t)it->valuedouble);
	it = cJSON_GetObjectItemCaseSensitive(data, "conversion_status");
	ck_assert_int_eq(ev->conversion_status, cJSON_IsTrue(it));
	it = cJSON_GetObjectItemCaseSensitive(data, "next_call_scheduled");
	ck_assert_int_eq(ev->next_call_scheduled, cJSON_IsTrue(it));
	ck_assert_uint_eq(ev->type_mismatches, 0);
	cJSON_Delete(root);
	free(body);
	event_free(ev);
}
END_TEST

struct refusal {
	const char		*body;
	enum event_error	 rc;
	const char		*msg;
};

#define BAD(b, m)	{ b, EVENT_BAD_REQUEST, m }
#define UNKNOWN(b)	{ b, EVENT_UNKNOWN_TYPE, "Unknown event type" }
#define NO_SID		"data.callSid is required"
#define NO_SID_TEXT	"data.callSid must not be empty"
#define SID_TYPE	"data.callSid must be a string"

static const struct refusal refusals[] = {
	BAD("[]", "body is not a JSON object"),
	BAD("\"call_ended\"", "body is not a JSON object"),
	BAD("1", "body is not a JSON object"),
	BAD("null", "body is not a JSON object"),
	BAD(" true ", "body is not a JSON object"),
	BAD("{}", "event is required"),
	BAD("{\"data\":{\"callSid\":\"CA1\"}}", "event is required"),
	BAD("{\"event\":null,\"data\":{}}", "event is required"),
	BAD("{\"event\":1,\"data\":{}}", "event is required"),
	BAD("{\"event\":[\"call_ended\"],\"data\":{}}", "event is required"),
	BAD("{\"Event\":\"call_ended\",\"data\":{}}", "event is required"),
	UNKNOWN("{\"event\":\"call_started\",\"data\":{\"callSid\":\"a\"}}"),
	UNKNOWN("{\"event\":\"\",\"data\":{}}"),
	UNKNOWN("{\"event\":\"CALL_ENDED\"}"),
	UNKNOWN("{\"event\":\"call_ended \",\"data\":{}}"),
	UNKNOWN("{\"event\":\"nope\"}"),
	BAD("{\"event\":\"call_ended\"}", "data must be an object"),
	BAD("{\"event\":\"call_ended\",\"data\":null}", "data must be an object"),
	BAD("{\"event\":\"call_ended\",\"data\":[]}", "data must be an object"),
	BAD("{\"event\":\"call_ended\",\"data\":\"{}\"}",
	    "data must be an object"),
	BAD("{\"event\":\"call_ended\",\"Data\":{}}", "data must be an object"),
	BAD("{\"event\":\"call_ended\",\"data\":{}}", NO_SID),
	BAD("{\"event\":\"call_ended\",\"data\":{\"callSid\":null}}", NO_SID),
	BAD("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"\"}}", NO_SID_TEXT),
	BAD("{\"event\":\"call_ended\",\"data\":{\"callSid\":12}}", SID_TYPE),
	BAD("{\"event\":\"call_ended\",\"data\":{\"callSid\":true}}", SID_TYPE),
	BAD("{\"event\":\"call_ended\",\"data\":{\"callSid\":{}}}", SID_TYPE),
	BAD("{\"event\":\"call_ended\",\"data\":{\"callSid\":[\"a\"]}}", SID_TYPE),
	BAD("{\"event\":\"call_ended\",\"data\":{\"CallSid\":\"a\"}}", NO_SID),
	BAD("{\"event\":\"call_ended\",\"data\":{\"callsid\":\"a\"}}", NO_SID),
};

START_TEST(test_refusals)
{
	const struct refusal *r = &refusals[_i];

	expect_refused(r->body, strlen(r->body), r->rc, r->msg);
}
END_TEST

/* An integer past the 2^53 a double holds keeps every digit. */
START_TEST(test_integers_exact)
{
	char *body, msg[MSGLEN];
	struct event *ev;

	body = note_with("\"try_count\":9007199254740993");
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert(ev->has_try_count);
	ck_assert_int_eq(ev->try_count, INT64_C(9007199254740993));
	event_free(ev);
	free(body);
	body = note_with("\"try_count\":-9223372036854775808");
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_int_eq(ev->try_count, INT64_MIN);
	event_free(ev);
	free(body);
	body = note_with("\"try_count\":9007199254740993.000");
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_int_eq(ev->try_count, INT64_C(9007199254740993));
	event_free(ev);
	free(body);
}
END_TEST

START_TEST(test_call_sid_length)
{
	char sid[300], *body, msg[MSGLEN];
	struct event *ev;

	memset(sid, 'a', sizeof(sid));
	sid[256] = '\0';
	ck_assert_int_ge(asprintf(&body,
	    "{\"event\":\"call_ended\",\"data\":{\"callSid\":\"%s\"}}", sid), 0);
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->call_sid, sid);
	event_free(ev);
	free(body);

	sid[256] = 'a';
	sid[257] = '\0';
	ck_assert_int_ge(asprintf(&body,
	    "{\"event\":\"call_ended\",\"data\":{\"callSid\":\"%s\"}}", sid), 0);
	expect_refused(body, strlen(body), EVENT_BAD_REQUEST,
	    "data.callSid is too long");
	free(body);
}
END_TEST

enum look { L_STR, L_DUR, L_TRY, L_BOOL };

/* A field of the wrong type: what lenient mode keeps, what strict says. */
struct wrong {
	const char	*frag;
	const char	*strict;
	enum look	 look;
	size_t		 off;		/* L_STR, L_BOOL */
	const char	*str;		/* L_STR: NULL for NULL */
	bool		 has;		/* L_DUR, L_TRY */
	double		 dur;
	int64_t		 num;		/* L_TRY, L_BOOL */
};

#define MUST(f, t)	"data." f " must be " t
#define WSTR(f, m, v, t) { "\"" f "\":" v, MUST(f, t), L_STR, \
			    offsetof(struct event, m), NULL, 0, 0, 0 }
#define CSTR(f, m, v, s) { "\"" f "\":" v, MUST(f, "a string"), L_STR, \
			    offsetof(struct event, m), s, 0, 0, 0 }
#define WDUR(v, h, d, t) { "\"call_duration\":" v, MUST("call_duration", t), \
			    L_DUR, 0, NULL, h, d, 0 }
#define WTRY(v, h, n)	{ "\"try_count\":" v, MUST("try_count", "an integer"), \
			    L_TRY, 0, NULL, h, 0, n }
#define WBOOL(f, m, v, n) { "\"" f "\":" v, MUST(f, "a boolean"), L_BOOL, \
			    offsetof(struct event, m), NULL, 0, 0, n }

static const struct wrong wrongs[] = {
	CSTR("name", call_type, "120", "120"),
	CSTR("from", from_number, "919876543210", "919876543210"),
	CSTR("to", to_number, "-42", "-42"),
	CSTR("agent", agent_id, "1.5", "1.5"),
	CSTR("versionId", version_id, "0.1", "0.1"),
	/* A number in a string field is its text as sent. */
	CSTR("recordingUrl", recording_url, "-0", "-0"),
	CSTR("time", call_time, "1e300", "1e300"),
	CSTR("batchId", batch_id, "12345678901234567890",
	    "12345678901234567890"),
	CSTR("hangup_reason", hangup_reason, "1.5e-7", "1.5e-7"),
	CSTR("transcription", transcription, "1e999", "1e999"),
	WSTR("disposition_reason", disposition_reason, "true", "a string"),
	WSTR("call_link", call_link, "false", "a string"),
	WSTR("name", call_type, "{\"a\":1}", "a string"),
	WSTR("agent", agent_id, "[\"x\"]", "a string"),
	WSTR("call_metadata", call_metadata, "\"{}\"", "an object"),
	WSTR("call_metadata", call_metadata, "[]", "an object"),
	WSTR("post_call", post_call, "1", "an object"),
	WSTR("post_call_detail", post_call_detail, "true", "an object"),
	WSTR("post_call_detail", post_call_detail, "[{}]", "an object"),
	WSTR("functions_called", functions_called, "{}", "an array"),
	WSTR("functions_called", functions_called, "\"[]\"", "an array"),
	WDUR("\"120\"", true, 120, "a number"),
	WDUR("\"-1.25e2\"", true, -125, "a number"),
	WDUR("\"-0\"", true, 0, "a number"),
	WDUR("\" 12\"", false, 0, "a number"),
	WDUR("\"12 \"", false, 0, "a number"),
	WDUR("\"+12\"", false, 0, "a number"),
	WDUR("\"012\"", false, 0, "a number"),
	WDUR("\"0x10\"", false, 0, "a number"),
	WDUR("\"inf\"", false, 0, "a number"),
	WDUR("\"nan\"", false, 0, "a number"),
	WDUR("\"1e999\"", false, 0, "a number"),
	WDUR("\"\"", false, 0, "a number"),
	WDUR("\"12abc\"", false, 0, "a number"),
	WDUR("\"1.\"", false, 0, "a number"),
	WDUR("true", false, 0, "a number"),
	WDUR("[120]", false, 0, "a number"),
	WDUR("1e999", false, 0, "a finite number"),
	WDUR("-1e999", false, 0, "a finite number"),
	WTRY("1.5", false, 0),
	WTRY("1e30", false, 0),
	WTRY("9223372036854775808", false, 0),
	WTRY("-9223372036854775809e10", false, 0),
	WTRY("\"3\"", true, 3),
	WTRY("\"-1\"", true, -1),
	WTRY("\"1e2\"", true, 100),
	WTRY("\"9223372036854775807\"", true, INT64_MAX),
	WTRY("\"-9223372036854775808\"", true, INT64_MIN),
	WTRY("\"9223372036854775808\"", false, 0),
	WTRY("\"1.5\"", false, 0),
	WTRY("\"one\"", false, 0),
	WTRY("false", false, 0),
	WTRY("{}", false, 0),
	WBOOL("conversion_status", conversion_status, "\"true\"", 1),
	WBOOL("conversion_status", conversion_status, "\"false\"", 0),
	WBOOL("conversion_status", conversion_status, "1", 1),
	WBOOL("conversion_status", conversion_status, "0", 0),
	WBOOL("conversion_status", conversion_status, "2", -1),
	WBOOL("conversion_status", conversion_status, "\"TRUE\"", -1),
	WBOOL("next_call_scheduled", next_call_scheduled, "\"yes\"", -1),
	WBOOL("next_call_scheduled", next_call_scheduled, "[]", -1),
	WBOOL("next_call_scheduled", next_call_scheduled, "0.5", -1),
	WBOOL("next_call_scheduled", next_call_scheduled, "\"1\"", -1),
};

static void
look_at(const struct event *ev, const struct wrong *w)
{
	const char *base = (const char *)ev;

	switch (w->look) {
	case L_STR:
		ck_assert_pstr_eq(*(char *const *)(base + w->off), w->str);
		break;
	case L_DUR:
		ck_assert_int_eq(ev->has_call_duration, w->has);
		if (w->has) {
			ck_assert_double_eq(ev->call_duration, w->dur);
			ck_assert(w->dur != 0 || !signbit(ev->call_duration));
		}
		break;
	case L_TRY:
		ck_assert_int_eq(ev->has_try_count, w->has);
		if (w->has)
			ck_assert_int_eq(ev->try_count, w->num);
		break;
	case L_BOOL:
		ck_assert_int_eq(*(const int *)(base + w->off), (int)w->num);
		break;
	}
}

START_TEST(test_wrong_type_lenient)
{
	const struct wrong *w = &wrongs[_i];
	char *body = note_with(w->frag), msg[MSGLEN];
	struct event *ev;

	ck_assert_msg(parse_s(body, false, &ev, msg) == EVENT_OK, "%s: %s",
	    w->frag, msg);
	ck_assert_uint_eq(ev->type_mismatches, 1);
	look_at(ev, w);
	ck_assert_str_eq(ev->body, body);
	event_free(ev);
	free(body);
}
END_TEST

START_TEST(test_wrong_type_strict)
{
	const struct wrong *w = &wrongs[_i];
	char *body = note_with(w->frag), msg[MSGLEN];
	struct event *ev;

	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_BAD_REQUEST);
	ck_assert_str_eq(msg, w->strict);
	free(body);
}
END_TEST

/* Absent or null is no mismatch, in either mode. */
START_TEST(test_absent_and_null)
{
	static const char *const bodies[] = {
		"{" NOTE "}}",
		"{" NOTE ",\"name\":null,\"agent\":null,\"versionId\":null,"
		    "\"from\":null,\"to\":null,\"recordingUrl\":null,"
		    "\"call_duration\":null,\"time\":null,"
		    "\"transcription\":null,\"batchId\":null,"
		    "\"hangup_reason\":null,\"call_metadata\":null,"
		    "\"try_count\":null,\"post_call\":null,"
		    "\"post_call_detail\":null,\"functions_called\":null,"
		    "\"disposition_reason\":null,\"conversion_status\":null,"
		    "\"next_call_scheduled\":null,\"call_link\":null}}",
	};
	char msg[MSGLEN];
	struct event *ev;

	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(parse_s(bodies[i], true, &ev, msg), EVENT_OK);
		ck_assert_str_eq(ev->call_sid, "CA1");
		ck_assert_ptr_null(ev->call_type);
		ck_assert_ptr_null(ev->agent_id);
		ck_assert_ptr_null(ev->version_id);
		ck_assert_ptr_null(ev->from_number);
		ck_assert_ptr_null(ev->to_number);
		ck_assert_ptr_null(ev->recording_url);
		ck_assert(!ev->has_call_duration);
		ck_assert_ptr_null(ev->call_time);
		ck_assert_ptr_null(ev->transcription);
		ck_assert_ptr_null(ev->batch_id);
		ck_assert_ptr_null(ev->hangup_reason);
		ck_assert_ptr_null(ev->call_metadata);
		ck_assert(!ev->has_try_count);
		ck_assert_ptr_null(ev->post_call);
		ck_assert_ptr_null(ev->post_call_detail);
		ck_assert_ptr_null(ev->functions_called);
		ck_assert_ptr_null(ev->disposition_reason);
		ck_assert_int_eq(ev->conversion_status, -1);
		ck_assert_int_eq(ev->next_call_scheduled, -1);
		ck_assert_ptr_null(ev->call_link);
		ck_assert_uint_eq(ev->type_mismatches, 0);
		event_free(ev);
	}
}
END_TEST

START_TEST(test_numbers)
{
	char msg[MSGLEN];
	struct event *ev;

	ck_assert_int_eq(parse_s("{" NOTE ",\"call_duration\":-0,"
	    "\"try_count\":-0}}", true, &ev, msg), EVENT_OK);
	ck_assert(ev->has_call_duration);
	ck_assert_double_eq(ev->call_duration, 0);
	ck_assert(!signbit(ev->call_duration));
	ck_assert(ev->has_try_count);
	ck_assert_int_eq(ev->try_count, 0);
	event_free(ev);

	ck_assert_int_eq(parse_s("{" NOTE ",\"call_duration\":1e-400,"
	    "\"try_count\":-9223372036854775808}}", true, &ev, msg), EVENT_OK);
	ck_assert_double_eq(ev->call_duration, 0);
	ck_assert_int_eq(ev->try_count, INT64_MIN);
	event_free(ev);

	ck_assert_int_eq(parse_s("{" NOTE ",\"call_duration\":12.75,"
	    "\"try_count\":3e0}}", true, &ev, msg), EVENT_OK);
	ck_assert_double_eq(ev->call_duration, 12.75);
	ck_assert_int_eq(ev->try_count, 3);
	event_free(ev);

	/* More than one wrong field: each is counted. */
	ck_assert_int_eq(parse_s("{" NOTE ",\"call_duration\":1e999,"
	    "\"try_count\":9223372036854775808,\"name\":5}}", false, &ev, msg),
	    EVENT_OK);
	ck_assert(!ev->has_call_duration);
	ck_assert(!ev->has_try_count);
	ck_assert_str_eq(ev->call_type, "5");
	ck_assert_uint_eq(ev->type_mismatches, 3);
	event_free(ev);
}
END_TEST

START_TEST(test_utf8_valid)
{
	static const struct {
		const char	*s;
		bool		 ok;
	} cases[] = {
		{ "", true }, { "plain ascii", true },
		{ "\x7f", true }, { "\xc2\x80", true }, { "\xdf\xbf", true },
		{ "\xe0\xa0\x80", true }, { "\xed\x9f\xbf", true },
		{ "\xee\x80\x80", true }, { "\xef\xbf\xbf", true },
		{ "\xf0\x90\x80\x80", true }, { "\xf4\x8f\xbf\xbf", true },
		{ "\xc0\xaf", false }, { "\xc1\xbf", false },
		{ "\xe0\x80\xaf", false }, { "\xe0\x9f\xbf", false },
		{ "\xf0\x80\x80\xaf", false }, { "\xf0\x8f\xbf\xbf", false },
		{ "\xed\xa0\x80", false }, { "\xed\xbf\xbf", false },
		{ "\xed\xa0\xbd\xed\xb8\x8f", false },
		{ "\xf4\x90\x80\x80", false }, { "\xf5\x80\x80\x80", false },
		{ "\xf8\x88\x80\x80\x80", false }, { "\xff", false },
		{ "\xfe", false }, { "\x80", false }, { "\xbf", false },
		{ "\xc2", false }, { "\xe2\x82", false },
		{ "\xf0\x9f\x99", false }, { "\xe2\x82\x41", false },
		{ "\xc2\xc2\x80", false }, { "a\xe2\x82\xac" "b", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(event_utf8_valid(cases[i].s,
		    strlen(cases[i].s)) == cases[i].ok, "case %zu", i);
	ck_assert(event_utf8_valid(NULL, 0));
	ck_assert(event_utf8_valid("\0\0", 2));
}
END_TEST

/* An independent reader: decode the code point, then judge it. */
static bool
ref_valid(const unsigned char *p, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp, min;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xE0) == 0xC0)
			n = 2, cp = p[i] & 0x1F, min = 0x80;
		else if ((p[i] & 0xF0) == 0xE0)
			n = 3, cp = p[i] & 0x0F, min = 0x800;
		else if ((p[i] & 0xF8) == 0xF0)
			n = 4, cp = p[i] & 0x07, min = 0x10000;
		else
			return false;
		if (len - i < n)
			return false;
		for (k = 1; k < n; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n;
	}
	return true;
}

/* One sequence at a time, as callhook's text functions walk strings. */
START_TEST(test_utf8_seq)
{
	static const struct {
		const char	*s;
		size_t		 avail;
		size_t		 want;
	} cases[] = {
		{ "a", 1, 1 }, { "\x7f", 1, 1 }, { "\xc3\xa9x", 3, 2 },
		{ "\xc3\xa9", 1, 0 },		/* cut short */
		{ "\xe2\x82\xac", 3, 3 }, { "\xf0\x9f\x99\x8f", 4, 4 },
		{ "\xc0\x80", 2, 0 },		/* overlong */
		{ "\xed\xa0\x80", 3, 0 },	/* a surrogate */
		{ "\xf4\x90\x80\x80", 4, 0 },	/* past U+10FFFF */
		{ "\x80", 1, 0 }, { "\xff", 1, 0 },
		{ "\xe2\x82\xac", 2, 0 }, { "\xf0\x9f\x99\x8f", 3, 0 },
		{ "\xe2\x82" "A", 3, 0 }, { "\xf0\x9f\x99" "A", 4, 0 },
		{ "\xe0\x9f\xbf", 3, 0 },	/* overlong, 3 bytes */
		{ "\xf0\x8f\xbf\xbf", 4, 0 },	/* overlong, 4 bytes */
		{ "\xe0\xa0\x80", 3, 3 }, { "\xf0\x90\x80\x80", 4, 4 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(event_utf8_seq(cases[i].s, cases[i].avail) ==
		    cases[i].want, "case %zu", i);
}
END_TEST

/* Every string of one to three bytes, and four-byte ones around edges. */
START_TEST(test_utf8_exhaustive)
{
	static const unsigned char edge[] = {
		0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
		0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
	};
	unsigned char b[4];
	uint32_t v;

	for (v = 0; v < 0x1000000; v++) {
		b[0] = (unsigned char)(v >> 16);
		b[1] = (unsigned char)(v >> 8);
		b[2] = (unsigned char)v;
		if (v < 0x100 && event_utf8_valid((char *)b + 2, 1) !=
		    ref_valid(b + 2, 1))
			ck_abort_msg("%02x", b[2]);
		if (v < 0x10000 && event_utf8_valid((char *)b + 1, 2) !=
		    ref_valid(b + 1, 2))
			ck_abort_msg("%02x %02x", b[1], b[2]);
		if (event_utf8_valid((char *)b, 3) != ref_valid(b, 3))
			ck_abort_msg("%02x %02x %02x", b[0], b[1], b[2]);
	}
	for (v = 0; v < 0x100 * 0x100 * sizeof(edge) * sizeof(edge); v++) {
		b[0] = (unsigned char)(v & 0xFF);
		b[1] = (unsigned char)(v >> 8 & 0xFF);
		b[2] = edge[(v >> 16) % sizeof(edge)];
		b[3] = edge[(v >> 16) / sizeof(edge)];
		if (event_utf8_valid((char *)b, 4) != ref_valid(b, 4))
			ck_abort_msg("%02x %02x %02x %02x", b[0], b[1], b[2],
			    b[3]);
	}
}
END_TEST

/* The fast path goes 16 bytes at a time: try every place around it. */
START_TEST(test_utf8_positions)
{
	static const char *const seqs[] = {
		"\xe2\x82\xac", "\xf0\x9f\x99\x8f", "\xc2\xa9",
		"\xff", "\xed\xa0\x80", "\xe2\x82", "\xc0\xaf", "\x80",
	};
	char buf[80];
	size_t n;

	for (size_t s = 0; s < sizeof(seqs) / sizeof(seqs[0]); s++) {
		n = strlen(seqs[s]);
		for (size_t at = 0; at < 48; at++) {
			for (size_t total = at + n; total < at + n + 20; total++) {
				memset(buf, 'a', sizeof(buf));
				memcpy(buf + at, seqs[s], n);
				ck_assert_int_eq(event_utf8_valid(buf, total),
				    ref_valid((unsigned char *)buf, total));
				/* Cut it short at the end of the buffer. */
				ck_assert_int_eq(event_utf8_valid(buf, at + n - 1),
				    ref_valid((unsigned char *)buf, at + n - 1));
			}
		}
	}
}
END_TEST

START_TEST(test_utf8_bodies)
{
	static const char *const bad[] = {
		"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xed\xa0\x80",
		"\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\x80",
		"\xff", "\xfe", "\xe2\x82",
	};
	char *body, *frag;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_ge(asprintf(&frag, "\"transcription\":\"x%sy\"",
		    bad[i]), 0);
		body = note_with(frag);
		expect_refused(body, strlen(body), EVENT_BAD_REQUEST,
		    "body is not valid UTF-8");
		free(body);
		free(frag);
		/* Before anything else, even JSON. */
		expect_refused(bad[i], strlen(bad[i]), EVENT_BAD_REQUEST,
		    "body is not valid UTF-8");
	}
	/* Truncated at the very end of the body. */
	REFUSED("{}\xe2\x82", EVENT_BAD_REQUEST, "body is not valid UTF-8");
	REFUSED("{\"event\":\"call_ended\xf0\x9f\x99", EVENT_BAD_REQUEST,
	    "body is not valid UTF-8");
}
END_TEST

/* Every proper prefix of every fixture is refused. */
START_TEST(test_truncated)
{
	char msg[MSGLEN];
	struct event *ev;
	size_t len;
	char *body;

	body = fixture(fixture_names[_i], &len);
	for (size_t n = 0; n < len - 1; n++) {
		ck_assert_int_eq(parse_n(body, n, false, &ev, msg),
		    EVENT_BAD_REQUEST);
		ck_assert_msg(strncmp(msg, NOT_JSON, strlen(NOT_JSON)) == 0 ||
		    strcmp(msg, "body is not valid UTF-8") == 0, "%zu: %s",
		    n, msg);
	}
	free(body);
}
END_TEST

START_TEST(test_trailing)
{
	static const char *const bad[] = {
		"{" NOTE "}} x", "{" NOTE "}}{}", "{" NOTE "}}}", "{" NOTE "}},",
		"{" NOTE "}}\"\"", "{" NOTE "}}1", "{" NOTE "}}/* */",
		"{" NOTE "}}\x01", "{" NOTE "}}\xc2\xa0", "{" NOTE "}\n",
		"{" NOTE "}} //", "x{" NOTE "}}", "{" NOTE ",}}",
	};
	char msg[MSGLEN];
	struct event *ev;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_not_json_any(bad[i], strlen(bad[i]));
	ck_assert_int_eq(parse_s(" \r\n\t{" NOTE "}} \r\n\t", true, &ev, msg),
	    EVENT_OK);
	event_free(ev);
}
END_TEST

/*
 * tmpl with each '~' replaced by sep, except '~' number one (from 0),
 * replaced by one_sep; free() it. NULL when tmpl has fewer '~'.
 */
static char *
spaced(const char *tmpl, const char *sep, int one, const char *one_sep)
{
	size_t n = strlen(tmpl), len = strlen(sep) + strlen(one_sep) + 1;
	char *out = malloc(n * len + 1), *o = out;
	int k = 0;

	ck_assert_ptr_nonnull(out);
	for (const char *t = tmpl; *t != '\0'; t++) {
		if (*t != '~') {
			*o++ = *t;
			continue;
		}
		o = stpcpy(o, k++ == one ? one_sep : sep);
	}
	*o = '\0';
	if (one >= k) {
		free(out);
		return NULL;
	}
	return out;
}

/*
 * Whitespace between tokens comes in runs (pretty-printed bodies), and
 * the token check skips a run in a loop of its own: a run of the four
 * JSON spaces is nothing anywhere, and a control byte that cJSON skips
 * as space but JSON does not, first, inside or last in any one run, is
 * refused.
 */
START_TEST(test_whitespace_runs)
{
	static const char *const tmpl = "~{~\"event\"~:~\"call_ended\"~,~"
	    "\"data\"~:~{~\"callSid\"~:~\"CA1\"~,~\"post_call\"~:~{~\"k\"~:~"
	    "[~1~,~true~,~-2.5e3~]~}~}~}~";
	static const char *const others[] = { "\f", "\v", "\x01", "\x1f" };
	static const char *const spaces = " \t\r\n  \n\n";
	char run[16], msg[MSGLEN], *body;
	struct event *ev;

	body = spaced(tmpl, spaces, -1, "");
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->post_call, "{\"k\":[1,true,-2.5e3]}");
	event_free(ev);
	free(body);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		for (int at = 0; at <= 3; at++) {
			snprintf(run, sizeof(run), "%.*s%s%.*s", at, "\n \t",
			    others[i], 3 - at, " \r\n");
			for (int one = 0;
			    (body = spaced(tmpl, spaces, one, run)) != NULL;
			    one++) {
				ck_assert_int_eq(parse_s(body, false, &ev,
				    msg), EVENT_BAD_REQUEST);
				free(body);
			}
		}
}
END_TEST

static char *
repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1), *p;

	ck_assert_ptr_nonnull(s);
	memcpy(s, head, hl);
	p = s + hl;
	for (size_t i = 0; i < n; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl + 1);
	return s;
}

START_TEST(test_deep_nesting)
{
	char *body, *close, *inner, msg[MSGLEN];
	struct event *ev;

	body = repeat("", "[", 100000, "");
	expect_not_json_any(body, strlen(body));
	free(body);
	body = repeat("{" NOTE ",\"call_metadata\":", "{\"a\":", 100000, "");
	expect_not_json_any(body, strlen(body));
	free(body);

	/* Deep but within cJSON's limit: kept, and printed compact. */
	close = repeat("", "]", 900, "}}");
	body = repeat("{" NOTE ",\"functions_called\":", "[ ", 900, close);
	inner = repeat("", "[", 900, "");
	free(close);
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_uint_eq(strlen(ev->functions_called), 1800);
	ck_assert(strncmp(ev->functions_called, inner, 900) == 0);
	event_free(ev);
	free(inner);
	free(body);
}
END_TEST

START_TEST(test_huge_transcription)
{
	const size_t n = 10 * 1024 * 1024 / 6 + 1;
	char *body, msg[MSGLEN];
	struct event *ev;
	size_t len;

	/* Over 10 MB once decoded: each unit is 12 bytes of JSON, 6 of text. */
	body = repeat("{" NOTE ",\"transcription\":\"", "ab\\n\\u00e9\\\"", n,
	    "\",\"call_duration\":1}}");
	len = strlen(body);
	ck_assert_int_eq(parse_n(body, len, true, &ev, msg), EVENT_OK);
	ck_assert_uint_eq(strlen(ev->transcription), n * 6);
	ck_assert(memcmp(ev->transcription, "ab\n\xc3\xa9\"ab\n", 9) == 0);
	ck_assert(memcmp(ev->transcription + (n - 1) * 6, "ab\n\xc3\xa9\"",
	    7) == 0);
	ck_assert_double_eq(ev->call_duration, 1);
	event_free(ev);
	free(body);
}
END_TEST

START_TEST(test_nul)
{
#define RAW(s)	{ s, sizeof(s) - 1 }
	static const struct {
		const char	*s;
		size_t		 len;
	} raw[] = {
		RAW("{" NOTE ",\"name\":\"a\0b\"}}"),
		RAW("{" NOTE "}}\0"),
		RAW("{" NOTE "}}\0garbage"),
		RAW("\0{" NOTE "}}"),
		RAW("{" NOTE "}\0}"),
	};
#undef RAW
	char *body, msg[MSGLEN];
	struct event *ev;

	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
		expect_not_json_any(raw[i].s, raw[i].len);

	/* \u0000 is JSON, but a C string ends there. */
	body = note_with("\"transcription\":\"abc\\u0000def\"");
	ck_assert_int_eq(parse_s(body, false, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->transcription, "abc");
	ck_assert_uint_eq(ev->type_mismatches, 1);
	ck_assert_str_eq(ev->body, body);
	event_free(ev);
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_BAD_REQUEST);
	ck_assert_str_eq(msg, "data.transcription must not contain \\u0000");
	free(body);
	/*
	 * Where nothing is cut it is any string's right, strict or not: in
	 * a JSON-valued field, an unknown one, the envelope, a key.
	 */
	{
		static const char *const fine[] = {
			"{\"event\":\"call_ended\",\"data\":{\"callSid\":\"n1\","
			    "\"call_metadata\":{\"note\":\"a\\u0000b\"}}}",
			"{\"event\":\"call_ended\",\"data\":{\"callSid\":\"n2\","
			    "\"custom\":\"a\\u0000b\"}}",
			"{\"event\":\"call_ended\",\"meta\":\"a\\u0000b\","
			    "\"data\":{\"callSid\":\"n3\"}}",
			"{\"event\":\"call_ended\",\"data\":{\"callSid\":\"n4\","
			    "\"x\\u0000\":1}}",
		};

		for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
			ck_assert_msg(parse_s(fine[i], true, &ev, msg) ==
			    EVENT_OK, "%s: %s", fine[i], msg);
			ck_assert_uint_eq(ev->type_mismatches, 0);
			event_free(ev);
		}
	}

	/* A \u0000 that would leave an empty callSid. */
	REFUSED("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"\\u0000x\"}}",
	    EVENT_BAD_REQUEST, "data.callSid must not contain \\u0000");

	/* Cut there, two calls would be one: refused in both modes. */
	REFUSED("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"a\\u0000b\"}}",
	    EVENT_BAD_REQUEST, "data.callSid must not contain \\u0000");
	REFUSED("{\"event\":\"call_ended\",\"data\":{\"call\\u0053id\":"
	    "\"a\\u0000\"}}", EVENT_BAD_REQUEST,
	    "data.callSid must not contain \\u0000");
	/* Only data's own callSid, and only the first, is the call's. */
	ck_assert_int_eq(parse_s("{\"event\":\"call_ended\",\"data\":{"
	    "\"call_metadata\":{\"callSid\":\"m\\u0000\"},\"callSid\":\"s1\","
	    "\"callSid\":\"s2\\u0000\"}}", false, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->call_sid, "s1");
	event_free(ev);

	/* cJSON would read these as \u0000 too; they are not JSON. */
	NOT_JSON_ANY("{" NOTE ",\"name\":\"\\u00zz\"}}");
	NOT_JSON_ANY("{" NOTE ",\"name\":\"\\u 123\"}}");

	/* Escaped backslashes before a u are not a \u escape. */
	body = note_with("\"name\":\"\\\\u0000\\\\\"");
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->call_type, "\\u0000\\");
	event_free(ev);
	free(body);
}
END_TEST

START_TEST(test_duplicate_keys)
{
	char msg[MSGLEN];
	struct event *ev;

	ck_assert_int_eq(parse_s("{\"event\":\"call_ended\",\"event\":\"x\","
	    "\"data\":{\"callSid\":\"first\",\"callSid\":\"second\","
	    "\"call_duration\":1,\"call_duration\":\"two\"},"
	    "\"data\":{\"callSid\":\"third\"}}", true, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->call_sid, "first");
	ck_assert_double_eq(ev->call_duration, 1);
	ck_assert_uint_eq(ev->type_mismatches, 0);
	event_free(ev);

	REFUSED("{\"event\":\"x\",\"event\":\"call_ended\"}", EVENT_UNKNOWN_TYPE,
	    "Unknown event type");
}
END_TEST

START_TEST(test_empty_body)
{
	char msg[MSGLEN];
	struct event *ev = NULL;

	expect_not_json_any("", 0);
	expect_not_json_any(" \r\n\t", 4);
	ck_assert_int_eq(event_parse(NULL, 0, false, &ev, msg, sizeof(msg)),
	    EVENT_BAD_REQUEST);
	ck_assert_ptr_null(ev);
	ck_assert_str_eq(msg, NOT_JSON "the body is empty");
}
END_TEST

/* A 400 for a body that is not JSON says what is wrong, and where. */
START_TEST(test_not_json_says_where)
{
#define RAW(s, why)	{ s, sizeof(s) - 1, why }
	static const struct {
		const char	*s;
		size_t		 len;
		const char	*why;
	} cases[] = {
		RAW("", "the body is empty"),
		RAW(" \r\n", "the body is empty"),
		RAW("\xEF\xBB\xBF{\"event\":\"call_ended\"}",
		    "it starts with a UTF-8 byte order mark"),
		RAW("{\"a\":\"b\0\"}", "a NUL byte at byte 8"),
		RAW("{\"a\":1", "it ends before its JSON value does (the body "
		    "cut short?)"),
		RAW("{\"a\":[1,{\"b\":2}", "it ends before its JSON value does "
		    "(the body cut short?)"),
		RAW("{\"a\":\"xy", "a string from byte 6 is not closed (the body "
		    "cut short?)"),
		RAW("{\"a\":\"x\\u00", "a string from byte 6 is not closed (the "
		    "body cut short?)"),
		RAW("{\"a\":\"x\\q\"}", "a bad escape in a string at byte 8"),
		RAW("{\"a\":\"x\ty\"}", "a raw control character (0x09) in a "
		    "string at byte 8"),
		RAW("{\"a\":01}", "a number not in JSON's form at byte 6"),
		RAW("{\"a\":\x01}", "a control character (0x01) at byte 6"),
		RAW("{\"a\":\xC3\xA9}", "byte 0xC3 outside a string at byte 6"),
		RAW("{\"a\":1} x", "more after the JSON value, at byte 9"),
		RAW("{\"a\" 1}", "unexpected '1' at byte 6"),
		RAW("{\"a\":1,}", "unexpected '}' at byte 8"),
		RAW("{\"a\":[1}", "unexpected '}' at byte 8"),
		RAW("{\"a\":tru}", "unexpected 't' at byte 6"),
		/* cJSON says the byte after one where a name was wanted. */
		RAW("{\"a\":{\"b\":1,}}", "unexpected '}' at byte 13"),
		RAW("{\"a\":{\"b\":{\"c\":1, }}}", "unexpected '}' at byte 19"),
		RAW("{\"a\":{,}}", "unexpected ',' at byte 7"),
		RAW("{\"a\":1,5}", "unexpected '5' at byte 8"),
		RAW("{\"a\":[1,]}", "unexpected ']' at byte 9"),
		RAW("{\"a\":{\"b\":1]}", "unexpected ']' at byte 12"),
		/* Not back in an array, a string, or after an empty object. */
		RAW("[1,[x]]", "unexpected 'x' at byte 5"),
		RAW("{\"a\":[1,2x]}", "unexpected 'x' at byte 10"),
		RAW("{\"a\":{}x}", "unexpected 'x' at byte 8"),
		RAW("{\"a\":\"{\\\"\",5}", "unexpected '5' at byte 12"),
		/* A bracket left open is no cut when the mistake is before. */
		RAW("{\"event\":\"call_ended\" \"data\":{\"callSid\":\"K1\"}",
		    "unexpected '\"' at byte 23"),
		RAW("{null", "unexpected 'n' at byte 2"),
		RAW("{\"a\":[1,2 ", "it ends before its JSON value does (the "
		    "body cut short?)"),
	};
#undef RAW
	char want[MSGLEN], *deep;
	size_t n = 2 * 1001 + 1;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(want, sizeof(want), NOT_JSON "%s", cases[i].why);
		expect_refused(cases[i].s, cases[i].len, EVENT_BAD_REQUEST,
		    want);
	}
	/* 1001 arrays, one inside the other: cJSON stops at 1000. */
	ck_assert_ptr_nonnull(deep = malloc(n));
	memset(deep, '[', 1001);
	memset(deep + 1001, ']', 1001);
	deep[n - 1] = '\0';
	expect_refused(deep, n - 1, EVENT_BAD_REQUEST, NOT_JSON
	    "nested more than 1000 deep, at byte 1001");
	/* 1000 are read: what stops cJSON there is not the depth. */
	deep[1000] = 'x';
	expect_refused(deep, n - 2, EVENT_BAD_REQUEST, NOT_JSON
	    "unexpected 'x' at byte 1001");
	free(deep);
}
END_TEST

/* What SQLite's json_extract(body, path) says: the member's text, minified. */
static char *
sqlite_extract(const char *body, int len, const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *out;

	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT json_extract(?, ?)",
	    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, body, len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_ptr_nonnull(sqlite3_column_text(st, 0));
	out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

/*
 * JSON fields are the member's text from the body without the space
 * between tokens, escapes and numbers as sent: what json_extract() of
 * the payload gives.
 */
START_TEST(test_json_fields)
{
	static const char *const values[] = {
		"{\"a\":\"x\\ny\\u0001\\\"\\\\\\/\\t\\b\\f\\r\",\"\\u001f\\n\":1}",
		"{\"n\":[1e300,-1.2345678901234567e-300,"
		    "123456789012345678901234567890,0.1,-0,-2147483649,"
		    "4.9e-324,1.7976931348623157e308,-1e-7,1.50,2E+3]}",
		"{\"t\":true,\"f\":false,\"z\":null,\"e\":{},\"a\":[],"
		    "\"s\":\"\",\"u\":\"\\ud83d\\ude4f\u00e9\"}",
		"{ \"spaced\" : [ 1 , 2 ] ,\r\n\t\"k\" : { \"v\" : \"c d\" } }",
		"{\"q\":\"\\\\\",\"r\":\"\\\" }\"}",
	};
	char *body, *frag, *want, msg[MSGLEN];
	struct event *ev;

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		ck_assert_int_ge(asprintf(&frag, "\"post_call\":%s", values[i]),
		    0);
		body = note_with(frag);
		ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
		want = sqlite_extract(body, -1, "$.data.post_call");
		ck_assert_str_eq(ev->post_call, want);
		free(want);
		event_free(ev);
		free(body);
		free(frag);
	}
}
END_TEST

/* All four JSON fields of every fixture, against json_extract(). */
START_TEST(test_json_fields_fixtures)
{
	static const char *const members[] = {
		"call_metadata", "post_call", "post_call_detail",
		"functions_called",
	};
	char path[64], msg[MSGLEN], *body, *want;
	struct event *ev;
	const char *got[4];
	size_t len;

	for (size_t f = 0; f < sizeof(fixture_names) /
	    sizeof(fixture_names[0]); f++) {
		body = fixture(fixture_names[f], &len);
		ck_assert_int_eq(parse_n(body, len, true, &ev, msg), EVENT_OK);
		got[0] = ev->call_metadata;
		got[1] = ev->post_call;
		got[2] = ev->post_call_detail;
		got[3] = ev->functions_called;
		for (size_t i = 0; i < 4; i++) {
			snprintf(path, sizeof(path), "$.data.%s", members[i]);
			want = sqlite_extract(body, (int)len, path);
			ck_assert_msg(got[i] != NULL && strcmp(got[i], want) ==
			    0, "%s: %s: %s != %s", fixture_names[f],
			    members[i], got[i], want);
			free(want);
		}
		event_free(ev);
		free(body);
	}
}
END_TEST

/*
 * The member that counts is the first of its name, in the first data
 * object, as with cJSON; a member of the same name deeper down, or in
 * another object, is not it.
 */
START_TEST(test_json_fields_first)
{
	static const char body[] = "{\"x\":{\"post_call\":{\"no\":1},"
	    "\"data\":{\"post_call\":{\"no\":2}}},"
	    "\"event\":\"call_ended\",\"data\":{\"callSid\":\"CA1\","
	    "\"call_metadata\":{\"post_call\":{\"no\":3},\"data\":[]},"
	    "\"post_call\":{\"yes\":[{\"post_call\":{}}]},"
	    "\"post_call\":{\"no\":4},"
	    "\"functions_called\":7,\"functions_called\":[\"no\"]},"
	    "\"data\":{\"callSid\":\"CA2\",\"post_call\":{\"no\":5}}}";
	char msg[MSGLEN];
	struct event *ev;

	ck_assert_int_eq(parse_s(body, false, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->call_sid, "CA1");
	ck_assert_str_eq(ev->post_call, "{\"yes\":[{\"post_call\":{}}]}");
	ck_assert_str_eq(ev->call_metadata,
	    "{\"post_call\":{\"no\":3},\"data\":[]}");
	/*
	 * The first functions_called is a number: no value, a mismatch
	 * (cJSON's type says so before the span is looked at).
	 */
	ck_assert_ptr_null(ev->functions_called);
	ck_assert_int_eq(ev->type_mismatches, 1);
	event_free(ev);
}
END_TEST

/*
 * Keys are names once unescaped, as cJSON reads them; the value is still
 * the text sent. A name that a \u0000 would cut to one read here is
 * refused in both modes: json_extract() over the payload knows no such
 * member, and "callSid\u0000x" would make two calls one.
 */
#define KEY_NUL	"a member name holds \\u0000, which would cut it to " \
		"one callhookd reads"

START_TEST(test_json_fields_escaped_key)
{
	static const struct {
		const char	*data;		/* the members after callSid */
		const char	*want;		/* post_call */
	} cases[] = {
		{ "\"post\\u005fcall\":{ \"n\" : 1.50, \"s\":\"\\u00e9\" }",
		    "{\"n\":1.50,\"s\":\"\\u00e9\"}" },
		{ "\"x\\n\":0,\"post_call\":{ \"n\" : 1.50 }", "{\"n\":1.50}" },
		{ "\"post_call\\u00e9\":{\"no\":1},\"post_call\":{\"yes\":1}",
		    "{\"yes\":1}" },
		{ "\"post_call\\\"\":{\"no\":1},\"\\/post_call\":{\"no\":2},"
		    "\"\\u0070ost_call_detail_and_more\":{},"
		    "\"post_call\":{\"yes\":2}", "{\"yes\":2}" },
		{ "\"\\u0070\\u006f\\u0073\\u0074\\u005f\\u0063\\u0061\\u006c"
		    "\\u006c\":[1, 2]", NULL },	/* an array: a mismatch */
	};
	char *body, msg[MSGLEN];
	struct event *ev;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_ge(asprintf(&body, "{\"event\":\"call_ended\","
		    "\"d\\u0061ta\":{\"callSid\":\"CA1\",%s}}", cases[i].data),
		    0);
		ck_assert_int_eq(parse_s(body, false, &ev, msg), EVENT_OK);
		if (cases[i].want == NULL)
			ck_assert_ptr_null(ev->post_call);
		else
			ck_assert_msg(ev->post_call != NULL &&
			    strcmp(ev->post_call, cases[i].want) == 0,
			    "case %zu: %s", i, ev->post_call);
		event_free(ev);
		free(body);
	}
	REFUSED("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"CA1\","
	    "\"post_call\\u0000x\":{\"cut\":1}}}", EVENT_BAD_REQUEST, KEY_NUL);
	REFUSED("{\"event\":\"call_ended\",\"data\":{\"callSid\\u0000x\":"
	    "\"K1\"}}", EVENT_BAD_REQUEST, KEY_NUL);
	REFUSED("{\"event\\u0000\":\"call_ended\",\"data\":{\"callSid\":"
	    "\"K1\"}}", EVENT_BAD_REQUEST, KEY_NUL);
	/* A name read nowhere may hold one. */
	ck_assert_int_eq(parse_s("{\"event\":\"call_ended\",\"data\":{"
	    "\"callSid\":\"K1\",\"custom\\u0000x\":1}}", true, &ev, msg),
	    EVENT_OK);
	event_free(ev);
}
END_TEST

START_TEST(test_extra_fields)
{
	char msg[MSGLEN];
	struct event *ev;
	const char *body = "{\"id\":7,\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"CA1\",\"Call_Duration\":\"x\",\"new\":[1,{}],"
	    "\"call_duration\":3},\"more\":{\"x\":null}}";

	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_double_eq(ev->call_duration, 3);
	ck_assert_uint_eq(ev->type_mismatches, 0);
	event_free(ev);

	/*
	 * What cJSON takes but SQLite's JSON functions refuse, so that one
	 * stored payload would break json_extract(payload, ...) over the
	 * whole table: raw control characters in strings or between
	 * tokens, a byte order mark, numbers outside RFC 8259's grammar.
	 */
	ck_assert_int_eq(parse_s("{" NOTE ",\"transcription\":\"a\nb\tc\"}}",
	    true, &ev, msg), EVENT_BAD_REQUEST);
	ck_assert_int_eq(parse_s("\xef\xbb\xbf{" NOTE "}}", true, &ev, msg),
	    EVENT_BAD_REQUEST);
	ck_assert_int_eq(parse_s("{\f" NOTE "}}", true, &ev, msg),
	    EVENT_BAD_REQUEST);
	ck_assert_int_eq(parse_s("{" NOTE ",\"try_count\":01}}", false, &ev,
	    msg), EVENT_BAD_REQUEST);
	ck_assert_int_eq(parse_s("{" NOTE ",\"x\":1.}}", false, &ev, msg),
	    EVENT_BAD_REQUEST);
	ck_assert_int_eq(parse_s("{" NOTE ",\"x\":-.5}}", false, &ev, msg),
	    EVENT_BAD_REQUEST);
	ck_assert_int_eq(parse_s("{" NOTE ",\"x\":1.5e}}", false, &ev, msg),
	    EVENT_BAD_REQUEST);
	/* The grammar's edges are still numbers, and escapes still work. */
	ck_assert_int_eq(parse_s("{" NOTE ",\"x\":[0,-0,0.5,-1.5E+3,1e-2,"
	    "10]},\"y\":\"a\\n\\u00e9\\\"\"}", false, &ev, msg), EVENT_OK);
	event_free(ev);
}
END_TEST

/*
 * A string of width bytes with mark (as written) at offset at and letters
 * elsewhere, as the last member of data, two bytes before the end of
 * the body, and as the last of a JSON-valued member, one byte before
 * its end; text is mark as read, NULL when the body is to be refused.
 */
static void
check_stop(const char *mark, const char *text, int width, int at)
{
	char raw[128], want[128], minified[192], msg[MSGLEN], *body;
	struct event *ev;

	snprintf(raw, sizeof(raw), "%.*s%s%.*s", at, PLAIN, mark,
	    width - at - 1, PLAIN);
	if (text == NULL) {
		ck_assert_int_ge(asprintf(&body, "{" NOTE ",\"transcription\":"
		    "\"%s\"}}", raw), 0);
		ck_assert_int_eq(parse_s(body, false, &ev, msg),
		    EVENT_BAD_REQUEST);
		free(body);
		ck_assert_int_ge(asprintf(&body, "{" NOTE ",\"post_call\":"
		    "{\"k\":\"%s\"},\"z\":1}}", raw), 0);
		ck_assert_int_eq(parse_s(body, false, &ev, msg),
		    EVENT_BAD_REQUEST);
		free(body);
		return;
	}
	ck_assert_int_ge(asprintf(&body, "{" NOTE ",\"post_call\":{ \"z\":1 , "
	    "\"k\" : \"%s\"},\"transcription\":\"%s\"}}", raw, raw), 0);
	ck_assert_int_eq(parse_s(body, false, &ev, msg), EVENT_OK);
	snprintf(want, sizeof(want), "%.*s%s%.*s", at, PLAIN, text,
	    width - at - 1, PLAIN);
	ck_assert_str_eq(ev->transcription, want);
	snprintf(minified, sizeof(minified), "{\"z\":1,\"k\":\"%s\"}", raw);
	ck_assert_str_eq(ev->post_call, minified);
	event_free(ev);
	free(body);
}

/*
 * The string scanner (plain_skip: 16 bytes at a time with SSE2, then 8,
 * then 1, up to the end of what it scans) must stop at a quote, a
 * backslash or a control character at every offset of strings 1 to 48
 * bytes long. The strings end near the end of what is scanned, so that
 * every loop meets the mark: the transcription's near the end of the body
 * (the token check), data.post_call's near the end of the member (the
 * minifier, which a missed quote would cut short).
 */
START_TEST(test_string_stops)
{
	static const char *const marks[][2] = {
		{ "\x01", NULL }, { "\x1f", NULL }, { "\\\"", "\"" },
		{ "\\\\", "\\" }, { "\\n", "\n" }, { "\x7f", "\x7f" },
		{ " ", " " }, { "\xc3\xa9", "\xc3\xa9" },
	};
	static const int widths[] = { 1, 8, 15, 16, 17, 31, 32, 33, 48 };

	for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]); m++)
		for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++)
			for (int at = 0; at < widths[w]; at++)
				check_stop(marks[m][0], marks[m][1],
				    widths[w], at);
}
END_TEST

/*
 * Long strings of string fields are read from the body, not by cJSON
 * (event.c, json_parse()). body must parse, and each string field must
 * read as cJSON reads it from the whole body.
 */
static void
expect_strings_as_cjson(const char *body)
{
	char msg[MSGLEN];
	struct event *ev;
	cJSON *root, *data;

	ck_assert_msg(parse_s(body, true, &ev, msg) == EVENT_OK, "%s: %s",
	    msg, body);
	root = cJSON_Parse(body);
	ck_assert_ptr_nonnull(root);
	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	expect_string_fields(data, ev);
	cJSON_Delete(root);
	event_free(ev);
}

/*
 * A \u escape of half a surrogate pair is JSON (RFC 8259 section 8.2):
 * JSON.stringify writes one for a string cut inside an emoji. cJSON
 * refused the body, so the call was refused for good; it is read as
 * U+FFFD now, and the payload keeps it as sent. Not in a callSid, where
 * two would be one call.
 */
START_TEST(test_lone_surrogates)
{
	static const struct {
		const char	*in, *out;
	} cases[] = {
		{ "Thanks! \\ud83d", "Thanks! \xef\xbf\xbd" },
		{ "\\ude4f ok", "\xef\xbf\xbd ok" },
		{ "\\ud83d\\ude4f", "\xf0\x9f\x99\x8f" },
		{ "\\ud83d\\u0041", "\xef\xbf\xbd" "A" },
		{ "\\ud83d\\ud83d\\ude4f", "\xef\xbf\xbd\xf0\x9f\x99\x8f" },
		{ "\\ude4f\\ud83d", "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "a\\\\ud83d", "a\\ud83d" },
		{ "\\ud83d\\n", "\xef\xbf\xbd\n" },
	};
	char *body, msg[MSGLEN];
	struct event *ev;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		body = note_with_f("\"name\":\"%s\",\"transcription\":"
		    "\"%s%s\"", cases[i].in, PLAIN, cases[i].in);
		ck_assert_msg(parse_s(body, true, &ev, msg) == EVENT_OK,
		    "%s: %s", body, msg);
		ck_assert_str_eq(ev->call_type, cases[i].out);
		ck_assert_str_eq(ev->transcription + strlen(PLAIN),
		    cases[i].out);
		ck_assert_uint_eq(ev->type_mismatches, 0);
		ck_assert_str_eq(ev->body, body);
		event_free(ev);
		free(body);
	}
	/* In a member name, and in JSON-valued fields, kept as sent. */
	body = note_with_f("\"x\\ud800\":1,\"call_metadata\":"
	    "{\"k\":\"\\udfff\"}");
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->call_metadata, "{\"k\":\"\\udfff\"}");
	event_free(ev);
	free(body);
	ck_assert(event_json_valid("\"\\ud83d\"", 8));
	/*
	 * The pass that replaces them runs before cJSON checks the
	 * structure, so over stray backslashes too: fuzz_event found it
	 * reading past the end of this one (under ASan).
	 */
	NOT_JSON_ANY("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"c\","
	    "\"name\":\"\\udc00\"}}x\\udc0");
	NOT_JSON_ANY("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"c\","
	    "\"name\":\"\\udc00\"}}x\\");
	NOT_JSON_ANY("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"c\","
	    "\"name\":\"\\ud83d\"}}x\\ud83d\\udc");

	REFUSED("{\"event\":\"call_ended\",\"data\":{\"callSid\":\"a\\ud83d\"}}",
	    EVENT_BAD_REQUEST, "data.callSid must not contain a lone "
	    "surrogate escape (\\ud800 to \\udfff without its other half)");
	/* Where cJSON reads it: a callSid elsewhere is no call's. */
	ck_assert_int_eq(parse_s("{\"event\":\"call_ended\",\"data\":{"
	    "\"call_metadata\":{\"callSid\":\"m\\ud83d\"},\"callSid\":"
	    "\"s1\"}}", true, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->call_sid, "s1");
	event_free(ev);
}
END_TEST

/* 300 plain bytes around s, as the transcription (and more, if given). */
static char *
long_string_body(const char *s, int before, const char *more)
{
	char *body;

	ck_assert_int_ge(asprintf(&body, "{" NOTE ",\"transcription\":"
	    "\"%.*s%s%.*s\"%s}}", before, PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN,
	    s, 300 - before, PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN, more), 0);
	return body;
}

START_TEST(test_long_strings)
{
	static const char *const escapes[] = {
		"\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t",
		"\\n\\n\\\\\\\"", "\\u00e9", "\\ud83d\\ude00", "\xc3\xa9",
	};
	static const char *const not_json[] = {
		"\\x", "\\a", "\\'", "\\U00e9", "\\0", "\\\n", "\\ ", "\x01",
		"\t", "\\u12g", "\\ud83d\\ude0g",
	};
	char *body;

	/* Every escape, at every offset the scanner's loops see. */
	for (size_t e = 0; e < sizeof(escapes) / sizeof(escapes[0]); e++)
		for (int at = 0; at <= 300; at += at < 20 || at > 280 ? 1 : 13) {
			body = long_string_body(escapes[e], at, "");
			expect_strings_as_cjson(body);
			free(body);
		}
	/* Escapes cJSON refuses are refused, not skipped with the string. */
	for (size_t e = 0; e < sizeof(not_json) / sizeof(not_json[0]); e++) {
		body = long_string_body(not_json[e], 290, "");
		expect_not_json_any(body, strlen(body));
		free(body);
	}
}
END_TEST

/*
 * Around LONG_STRING (8 bytes; 256 once), and longer, in every string
 * field.
 */
START_TEST(test_long_strings_fields)
{
	char *body, *value;

	for (int len = 0; len <= 260; len += len < 16 || len >= 250 ? 1 : 26) {
		ck_assert_int_ge(asprintf(&value, "%.*s", len,
		    PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN), 0);
		ck_assert_int_ge(asprintf(&body, "{" NOTE ",\"name\":\"%s\","
		    "\"agent\":\"%s\\n\",\"versionId\":\"\\t%s\",\"from\":\"%s\","
		    "\"to\":\"%s\",\"recordingUrl\":\"%s\",\"time\":\"%s\","
		    "\"batchId\":\"%s\",\"hangup_reason\":\"%s\","
		    "\"disposition_reason\":\"%s\",\"call_link\":\"%s\"}}",
		    value, value, value, value, value, value, value, value,
		    value, value, value), 0);
		expect_strings_as_cjson(body);
		free(body);
		free(value);
	}
}
END_TEST

/* The first member of a name, keys read unescaped; other members. */
START_TEST(test_long_strings_members)
{
	char *body, msg[MSGLEN];
	struct event *ev;

	body = long_string_body("", 0, ",\"transcription\":\"second\"");
	expect_strings_as_cjson(body);
	free(body);
	body = note_with("\"transcription\":\"first\",\"transcription\":\""
	    PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN "\"");
	expect_strings_as_cjson(body);
	free(body);
	body = note_with("\"transcr\\u0069ption\":\"" PLAIN PLAIN PLAIN PLAIN
	    PLAIN PLAIN "\",\"transcription\":\"second\"");
	expect_strings_as_cjson(body);
	free(body);
	/* The longest names, escaped: still the first of their name. */
	body = note_with("\"disposition_reaso\\u006e\":\"short\","
	    "\"disposition_reason\":\"" PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN "\"");
	expect_strings_as_cjson(body);
	free(body);
	body = note_with("\"disposition_reaso\\u006e\":5,"
	    "\"disposition_reason\":\"" PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN "\","
	    "\"next_call_schedule\\u0064\":true,\"next_call_scheduled\":1");
	ck_assert_int_eq(parse_s(body, false, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->disposition_reason, "5");
	ck_assert_int_eq(ev->next_call_scheduled, 1);
	ck_assert_uint_eq(ev->type_mismatches, 1);
	event_free(ev);
	free(body);
	body = note_with("\"" PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN "\":\""
	    PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN "\",\"call_metadata\":{\"t\":\""
	    PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN "\"},\"name\":\"n\"");
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_OK);
	ck_assert_str_eq(ev->call_type, "n");
	ck_assert_str_eq(ev->call_metadata, "{\"t\":\"" PLAIN PLAIN PLAIN PLAIN
	    PLAIN PLAIN "\"}");
	event_free(ev);
	free(body);
	/* A long string where a number belongs is still the wrong type. */
	body = note_with("\"call_duration\":\"" PLAIN PLAIN PLAIN PLAIN PLAIN
	    PLAIN "\"");
	ck_assert_int_eq(parse_s(body, true, &ev, msg), EVENT_BAD_REQUEST);
	ck_assert_str_eq(msg, "data.call_duration must be a number");
	ck_assert_int_eq(parse_s(body, false, &ev, msg), EVENT_OK);
	ck_assert_uint_eq(ev->type_mismatches, 1);
	ck_assert(!ev->has_call_duration);
	event_free(ev);
	free(body);
	/* Cut short: no closing quote, or a backslash last. */
	body = long_string_body("", 300, "");
	expect_not_json_any(body, strlen(body) - 3);
	expect_not_json_any(body, strlen(body) - 2);
	body[strlen(body) - 3] = '\\';
	expect_not_json_any(body, strlen(body) - 2);
	free(body);
}
END_TEST

START_TEST(test_msg_buffer)
{
	const char *bad = "{}";
	char small[6];
	struct event *ev;

	ck_assert_int_eq(event_parse(bad, 2, false, &ev, NULL, 0),
	    EVENT_BAD_REQUEST);
	ck_assert_ptr_null(ev);
	memset(small, 'x', sizeof(small));
	ck_assert_int_eq(event_parse(bad, 2, false, &ev, small,
	    sizeof(small)), EVENT_BAD_REQUEST);
	ck_assert_str_eq(small, "event");
	event_free(NULL);
}
END_TEST

static long alloc_budget;

static void *
failing_malloc(size_t n)
{
	if (alloc_budget-- == 0)
		return NULL;
	return malloc(n);
}

/* Make each allocation fail in turn: no leak, no crash, a clean answer. */
START_TEST(test_no_memory)
{
	cJSON_Hooks hooks = { failing_malloc, free };
	char msg[MSGLEN];
	struct event *ev;
	enum event_error rc;
	size_t len;
	char *body;
	long n;
	bool ours = false;

	body = fixture(fixture_names[_i], &len);
	cJSON_InitHooks(&hooks);
	for (n = 0;; n++) {
		alloc_budget = n;
		ev = (struct event *)body;
		rc = event_parse(body, len, false, &ev, msg, sizeof(msg));
		if (rc == EVENT_OK)
			break;
		ck_assert_ptr_null(ev);
		if (rc == EVENT_NO_MEMORY) {
			ck_assert_str_eq(msg, "out of memory");
			ours = true;
		} else {
			/* cJSON cannot tell no memory from bad JSON. */
			ck_assert_int_eq(rc, EVENT_BAD_REQUEST);
			ck_assert_msg(strncmp(msg, NOT_JSON, strlen(NOT_JSON))
			    == 0, "%s", msg);
		}
	}
	cJSON_InitHooks(NULL);
	ck_assert(ours);
	ck_assert_int_gt(n, 10);
	ck_assert_str_eq(ev->event, "call_ended");
	event_free(ev);
	free(body);
}
END_TEST

Suite *
event_suite(void)
{
	Suite *s = suite_create("event");
	TCase *tc = tcase_create("parse");
	TCase *slow = tcase_create("slow");
	const int nfix = sizeof(fixture_names) / sizeof(fixture_names[0]);

	tcase_add_test(tc, test_fixture_outbound);
	tcase_add_test(tc, test_fixture_inbound);
	tcase_add_test(tc, test_fixture_long);
	tcase_add_loop_test(tc, test_fixtures_match_cjson, 0, nfix);
	tcase_add_loop_test(tc, test_refusals, 0,
	    sizeof(refusals) / sizeof(refusals[0]));
	tcase_add_test(tc, test_call_sid_length);
	tcase_add_loop_test(tc, test_wrong_type_lenient, 0,
	    sizeof(wrongs) / sizeof(wrongs[0]));
	tcase_add_loop_test(tc, test_wrong_type_strict, 0,
	    sizeof(wrongs) / sizeof(wrongs[0]));
	tcase_add_test(tc, test_absent_and_null);
	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_utf8_valid);
	tcase_add_test(tc, test_utf8_seq);
	tcase_add_test(tc, test_utf8_positions);
	tcase_add_test(tc, test_utf8_bodies);
	tcase_add_test(tc, test_trailing);
	tcase_add_test(tc, test_whitespace_runs);
	tcase_add_test(tc, test_nul);
	tcase_add_test(tc, test_duplicate_keys);
	tcase_add_test(tc, test_empty_body);
	tcase_add_test(tc, test_not_json_says_where);
	tcase_add_test(tc, test_integers_exact);
	tcase_add_test(tc, test_json_fields);
	tcase_add_test(tc, test_json_fields_fixtures);
	tcase_add_test(tc, test_json_fields_first);
	tcase_add_test(tc, test_json_fields_escaped_key);
	tcase_add_test(tc, test_extra_fields);
	tcase_add_test(tc, test_string_stops);
	tcase_add_test(tc, test_long_strings);
	tcase_add_test(tc, test_lone_surrogates);
	tcase_add_test(tc, test_long_strings_fields);
	tcase_add_test(tc, test_long_strings_members);
	tcase_add_test(tc, test_msg_buffer);
	tcase_add_loop_test(tc, test_no_memory, 0, nfix);
	suite_add_tcase(s, tc);

	/* Big inputs under the sanitizers take more than Check's 4 s. */
	tcase_set_timeout(slow, 120);
	tcase_add_test(slow, test_utf8_exhaustive);
	tcase_add_loop_test(slow, test_truncated, 0, nfix);
	tcase_add_test(slow, test_deep_nesting);
	tcase_add_test(slow, test_huge_transcription);
	suite_add_tcase(s, slow);
	return s;
}

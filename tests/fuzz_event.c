/*
 * libFuzzer target for event_parse(), the parser of everything a sender
 * posts. Besides the sanitizers, it checks the promises of event.h.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -Iinclude -D_GNU_SOURCE \
 *	tests/fuzz_event.c src/event.c $(pkg-config --cflags --libs libcjson) \
 *	-lm -o fuzz_event
 *   ./fuzz_event tests/fixtures
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "event.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The value of the four hex digits at s, or -1. */
static long
hex_at(const char *s)
{
	char digits[5], *end;

	memcpy(digits, s, 4);
	digits[4] = '\0';
	if (strspn(digits, "0123456789abcdefABCDEF") != 4)
		return -1;
	return strtol(digits, &end, 16);
}

/*
 * body as cJSON can read it: a \u escape of half a surrogate pair, which
 * cJSON refuses and event_parse() reads as U+FFFD, becomes \ufffd. body
 * is JSON (event_parse() took it), so each backslash starts an escape.
 */
static char *
cjson_readable(const char *body)
{
	char *s = strdup(body);
	size_t i = 0, n = strlen(s);
	long c, next;

	if (s == NULL)
		__builtin_trap();
	while (i < n) {
		if (s[i] != '\\') {
			i++;
			continue;
		}
		if (s[i + 1] != 'u') {
			i += 2;
			continue;
		}
		c = hex_at(s + i + 2);
		next = i + 12 <= n && s[i + 6] == '\\' && s[i + 7] == 'u' ?
		    hex_at(s + i + 8) : -1;
		if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 &&
		    next <= 0xdfff) {
			i += 12;
			continue;
		}
		if (c >= 0xd800 && c <= 0xdfff)
			memcpy(s + i + 2, "fffd", 4);
		i += 6;
	}
	return s;
}

/*
 * A JSON-valued field is there exactly when cJSON finds the member of
 * data with the right type, and, copied from the body, reads as it. The
 * trees are compared printed: cJSON_Compare() matches members by name,
 * so with a repeated key it does not find a tree equal to itself.
 */
static void
check_json(const char *field, const char *body, const char *name,
    bool array)
{
	cJSON *root, *copy = NULL;
	const cJSON *member;
	char *a = NULL, *b = NULL, *readable = cjson_readable(body);

	root = cJSON_Parse(readable);
	free(readable);
	member = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(root, "data"), name);
	if (root == NULL || (field != NULL) != (array ?
	    cJSON_IsArray(member) : cJSON_IsObject(member)))
		__builtin_trap();
	if (field != NULL) {
		readable = cjson_readable(field);
		copy = cJSON_Parse(readable);
		free(readable);
		if (copy != NULL) {
			a = cJSON_PrintUnformatted(copy);
			b = cJSON_PrintUnformatted(member);
		}
		if (a == NULL || b == NULL || strcmp(a, b) != 0)
			__builtin_trap();
	}
	cJSON_free(a);
	cJSON_free(b);
	cJSON_Delete(copy);
	cJSON_Delete(root);
}

/*
 * Every string field reads as cJSON reads it from the whole body: long
 * ones are read from the body instead (event.c, json_parse()).
 */
static void
check_strings(const struct event *ev)
{
#define S(key, m)	{ key, offsetof(struct event, m) }
	static const struct {
		const char	*key;
		size_t		 off;
	} strings[] = {
		S("name", call_type), S("agent", agent_id),
		S("versionId", version_id), S("from", from_number),
		S("to", to_number), S("recordingUrl", recording_url),
		S("time", call_time), S("transcription", transcription),
		S("batchId", batch_id), S("hangup_reason", hangup_reason),
		S("disposition_reason", disposition_reason),
		S("call_link", call_link),
	};
#undef S
	cJSON *root, *data;
	const cJSON *member;
	const char *field;
	char *readable = cjson_readable(ev->body);

	root = cJSON_Parse(readable);
	free(readable);
	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	if (root == NULL)
		__builtin_trap();
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		member = cJSON_GetObjectItemCaseSensitive(data, strings[i].key);
		field = *(const char *const *)(const void *)
		    ((const char *)ev + strings[i].off);
		if (cJSON_IsString(member) &&
		    (field == NULL || strcmp(field, member->valuestring) != 0))
			__builtin_trap();
	}
	cJSON_Delete(root);
}

static void
check(const struct event *ev, const uint8_t *data, size_t size)
{
	size_t sid;

	if (ev->body_len != size || memcmp(ev->body, data, size) != 0 ||
	    ev->body[size] != '\0')
		__builtin_trap();
	sid = strlen(ev->call_sid);
	if (sid == 0 || sid > 256 || strcmp(ev->event, "call_ended") != 0)
		__builtin_trap();
	if (ev->conversion_status < -1 || ev->conversion_status > 1 ||
	    ev->next_call_scheduled < -1 || ev->next_call_scheduled > 1)
		__builtin_trap();
	if (ev->transcription != NULL &&
	    !event_utf8_valid(ev->transcription, strlen(ev->transcription)))
		__builtin_trap();
	if (ev->call_metadata != NULL && ev->call_metadata[0] != '{')
		__builtin_trap();
	if (ev->functions_called != NULL && ev->functions_called[0] != '[')
		__builtin_trap();
	check_json(ev->call_metadata, ev->body, "call_metadata", false);
	check_json(ev->post_call, ev->body, "post_call", false);
	check_json(ev->post_call_detail, ev->body, "post_call_detail", false);
	check_json(ev->functions_called, ev->body, "functions_called", true);
	check_strings(ev);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event *ev;
	char msg[128], sid[EVENT_CALL_SID_MAX + 1];

	for (int strict = 0; strict <= 1; strict++) {
		msg[0] = 'x';
		if (event_parse((const char *)data, size, strict, &ev, msg,
		    sizeof(msg)) == EVENT_OK)
			check(ev, data, size);
		else if (ev != NULL || msg[0] == '\0')
			__builtin_trap();
		/* The refusal's callSid is the one a parse would take. */
		event_refused_call_sid((const char *)data, size, sid,
		    sizeof(sid));
		if (!event_utf8_valid(sid, strlen(sid)) ||
		    (ev != NULL && strcmp(sid, ev->call_sid) != 0))
			__builtin_trap();
		event_free(ev);
	}
	return 0;
}

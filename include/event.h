#ifndef CALLHOOK_EVENT_H
#define CALLHOOK_EVENT_H

/*
 * A call_ended webhook body turned into a typed record. This is the only
 * module that parses with cJSON: the rest of the daemon handles struct
 * event (writer.c only quotes a body with it, for the rescue file).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_CALL_SID_MAX	256	/* bytes; a longer one is a 400 */

/*
 * Every string is NUL-terminated UTF-8 or NULL (JSON null, absent, or of a
 * type that could not be coerced). JSON-valued fields hold the member's
 * text from the body, numbers and escapes as sent, without the whitespace
 * between tokens, when it is of the documented type (object or array),
 * else NULL. The member is the one cJSON finds: the first of its name,
 * escapes in keys decoded. For keys written without escapes that is what
 * SQLite's json_extract() gives.
 */
struct event {
	char	*body;			/* the request body, byte for byte */
	size_t	 body_len;

	char	*event;			/* "call_ended" */
	char	*call_sid;		/* never NULL nor empty */
	char	*call_type;		/* data.name */
	char	*agent_id;
	char	*version_id;
	char	*from_number;
	char	*to_number;
	char	*recording_url;
	double	 call_duration;
	bool	 has_call_duration;
	char	*call_time;		/* data.time, as sent */
	char	*transcription;
	char	*batch_id;
	char	*hangup_reason;
	char	*call_metadata;		/* JSON object */
	int64_t	 try_count;
	bool	 has_try_count;
	char	*post_call;		/* JSON object */
	char	*post_call_detail;	/* JSON object */
	char	*functions_called;	/* JSON array */
	char	*disposition_reason;
	int	 conversion_status;	/* 0, 1, or -1 for NULL */
	int	 next_call_scheduled;	/* 0, 1, or -1 for NULL */
	char	*call_link;

	unsigned type_mismatches;	/* known fields of the wrong type */

	/* Filled by the receiver, not the parser. */
	char	 remote_addr[64];
	char	 received_at[32];	/* YYYY-MM-DDTHH:MM:SS.mmmZ */
};

enum event_error {
	EVENT_OK = 0,
	EVENT_BAD_REQUEST,	/* 400, msg says why */
	EVENT_UNKNOWN_TYPE,	/* 400 "Unknown event type" */
	EVENT_NO_MEMORY,	/* 500 */
};

/*
 * Parse and validate body (len bytes, need not be NUL-terminated).
 * On EVENT_OK *out is a new event that owns a copy of body; free it with
 * event_free(). Otherwise *out is NULL and msg holds a short message for
 * the client, e.g. "data.callSid is required".
 *
 * strict: a known field of the wrong type is EVENT_BAD_REQUEST naming the
 * field; otherwise the typed field is coerced ("120" -> 120) or NULL and
 * type_mismatches counts it.
 */
enum event_error event_parse(const char *body, size_t len, bool strict,
	    struct event **out, char *msg, size_t msglen);

/*
 * The callSid of a body event_parse() refused, for the refusal's log
 * line: copied to buf (size bytes, at least EVENT_CALL_SID_MAX + 1) when
 * the body is JSON whose data.callSid event_parse() would take, else buf
 * is empty. It parses the body again, so it is for refusals only.
 */
void	event_refused_call_sid(const char *body, size_t len, char *buf,
	    size_t size);

/* Free ev and everything it owns. NULL is a no-op. */
void	event_free(struct event *ev);

/* True when the len bytes at s are valid UTF-8 (no overlongs, no surrogates). */
bool	event_utf8_valid(const char *s, size_t len);

/*
 * Bytes in the UTF-8 sequence at s, which has avail > 0 bytes: 1 for
 * ASCII, 0 when what is there is not valid UTF-8.
 */
size_t	event_utf8_seq(const char *s, size_t avail);

/*
 * True when the len bytes at s are one JSON text as event_parse() takes
 * them: RFC 8259, which cJSON alone is more lenient than.
 */
bool	event_json_valid(const char *s, size_t len);

/*
 * Copy the valid JSON text src, len bytes, to dst (room for len) without
 * the whitespace between its tokens; the bytes written.
 */
size_t	event_json_minify(char *dst, const char *src, size_t len);

#endif

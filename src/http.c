/*
 * The HTTP receiver.
 *
 * libmicrohttpd calls on_request() several times per request: once with
 * the headers (we route and check limits there, so a refused request is
 * answered before its body is read), once per chunk of body (appended to
 * a buffer with a hard cap), once at the end (validate and queue), and,
 * in ack = commit mode, once more after the writer resumed the suspended
 * connection (answer from the ticket). Per-request state lives in
 * struct request, freed in on_completed().
 *
 * Settings that SIGHUP may change are read through an immutable snapshot
 * swapped atomically; one a reload replaced is freed once no request
 * holds it (settings_sweep), and whatever is left at stop.
 *
 * Every refused webhook request is logged with a request id, counted by
 * reason, and recorded in the rejects table by the writer.
 */

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "auth.h"
#include "config.h"
#include "conns.h"
#include "event.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "store.h"
#include "ticket.h"
#include "writer.h"

#define MSG_MAX		256
#define ROUTE_MAX	64	/* bytes of a method or path logged */
#define RETRY_AFTER	"2"
#define STATUS_CLIENT_CLOSED 499	/* nginx's: a client gone before its answer */
#define FIRST_BODY_CAP	4096

/*
 * A snapshot of the configuration; a reload puts a new one in front of
 * the list. Requests hold the one they began with (users counts them),
 * and the MHD thread, the only one that serves requests, frees those a
 * reload replaced once none holds them (settings_sweep).
 */
struct settings {
	struct config	 cfg;
	struct auth	*auth;
	struct settings	*older;
	unsigned	 users;		/* the MHD thread's */
};

struct http {
	struct MHD_Daemon	*mhd;
	int			 fd;		/* the listener, once quiesced */
	_Atomic(struct settings *) settings;
	struct queue		*queue;
	struct metrics		*metrics;
	struct writer		*writer;
	atomic_bool		 stopping;
	atomic_int		 in_flight;
	atomic_size_t		 body_bytes;	/* allocated for bodies */
	uint64_t		 body_deadline_ns; /* 2 x timeout, as started */
	atomic_uint_fast64_t	 next_id;	/* request ids */
	atomic_uint_fast64_t	 refusals_logged[REJECT_REASONS]; /* see
						   log_refusal() */
	atomic_uint_fast64_t	 refusals_unlogged[REJECT_REASONS]; /* since
						   the last line logged */
	atomic_uint_fast64_t	 gone_logged;	/* see log_gone() */
	atomic_uint_fast64_t	 accept_warned;	/* second of; see mhd_log() */
	uint64_t		 id_base;	/* start time, tells runs apart */
	struct MHD_Response	*received;	/* the shared 200 */
	struct MHD_Response	*received_closing; /* during the stop */
	struct conns		*conns;
};

/* Who sent a request: for logs, the rejects table and remote_addr. */
struct origin {
	uint64_t seq;		/* the request id's number, see request_id() */
	char	 remote[64];
};

/*
 * REQ_TOO_BIG: a streamed (chunked) body passed max_body. libmicrohttpd
 * 0.9.75 cannot queue a response before the body is read, so the rest is
 * discarded (not buffered) and the 413 sent at its end; a client that
 * sends more than TOO_BIG_SLACK beyond the cap has its connection closed.
 * REQ_NO_ROOM: a body that would pass the memory for bodies being
 * received (body_reserve) is discarded the same way and answered 503, or
 * 413 once it passes max_body too.
 */
enum req_state { REQ_RECEIVING, REQ_TOO_BIG, REQ_NO_ROOM, REQ_HELD,
	REQ_ANSWERED };

#define TOO_BIG_SLACK	(256 * 1024)
#define LOG_REFUSALS_MAX 10	/* log lines a second, for each reason */
#define ACCEPT_WARN_S	10	/* at most one warning of failed accepts */
#define NO_ROOM		"too many request bodies being received, retry later"

struct request {
	struct http		*http;
	struct MHD_Connection	*conn;
	struct settings		*set;
	enum req_state		 state;
	char			*body;
	size_t			 len;
	size_t			 cap;
	size_t			 reserved;	/* of http's body_bytes */
	size_t			 received;	/* kept or discarded */
	uint64_t		 started_ns;	/* the headers, read */
	struct ticket		*ticket;
	struct conn		*watch;		/* its connection's */
	int			 push_rc;
	char			 call_sid[EVENT_CALL_SID_MAX + 1];
	struct origin		 from;
};

/* snprintf(dst, size, "%s", src) without the formatting: per request. */
static void
copy_text(char *dst, size_t size, const char *src)
{
	size_t n;

	if (size == 0)
		return;
	n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/*
 * A JSON string's contents, cut at a character when out is full. What
 * is not UTF-8 becomes U+FFFD: the store's messages name the database's
 * path, which need not be UTF-8, and arrive cut at a byte count, which
 * can split a character; either made /healthz's answer not JSON.
 */
static void
json_escape(const char *s, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + strlen(s);
	size_t o = 0, n;

	for (; p < end; p += n) {
		n = 1;
		if (*p == '"' || *p == '\\') {
			if (o + 3 > outlen)
				break;
			out[o++] = '\\';
			out[o++] = (char)*p;
		} else if (*p < 0x20) {
			if (o + 7 > outlen)
				break;
			o += (size_t)snprintf(out + o, outlen - o, "\\u%04x",
			    *p);
		} else if (*p < 0x80) {
			if (o + 2 > outlen)
				break;
			out[o++] = (char)*p;
		} else if ((n = event_utf8_seq((const char *)p,
		    (size_t)(end - p))) == 0) {
			if (o + 7 > outlen)
				break;
			memcpy(out + o, "\\ufffd", 6);
			o += 6;
			n = 1;
		} else {
			if (o + n + 1 > outlen)
				break;
			memcpy(out + o, p, n);
			o += n;
		}
	}
	out[o] = '\0';
}

static const char *
header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* The deadlines' watch on conn (conns.c), or NULL. */
static struct conn *
watch_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;

	info = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return info != NULL ? info->socket_context : NULL;
}

/*
 * A request's forwarding headers, collected only behind a trusted proxy:
 * the last FORWARDED_LINES lines of X-Forwarded-For (the nearest hops),
 * and the last X-Real-IP.
 */
#define FORWARDED_LINES 8

struct forwarded {
	const char	*lines[FORWARDED_LINES];
	size_t		 n;
	const char	*real_ip;
};

static enum MHD_Result
collect_forwarded(void *arg, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct forwarded *f = arg;

	(void)kind;
	if (value == NULL)
		return MHD_YES;
	if (strcasecmp(key, "X-Forwarded-For") == 0) {
		if (f->n == FORWARDED_LINES) {
			memmove(f->lines, f->lines + 1,
			    sizeof(f->lines) - sizeof(f->lines[0]));
			f->n--;
		}
		f->lines[f->n++] = value;
	} else if (strcasecmp(key, "X-Real-IP") == 0)
		f->real_ip = value;
	return MHD_YES;
}

static void
origin_of(struct http *h, const struct settings *set,
    struct MHD_Connection *conn, struct origin *o)
{
	const union MHD_ConnectionInfo *ci;
	struct forwarded f = { .n = 0 };

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (auth_peer_address(set->auth, ci ? ci->client_addr : NULL,
	    o->remote, sizeof(o->remote))) {
		MHD_get_connection_values(conn, MHD_HEADER_KIND,
		    collect_forwarded, &f);
		auth_forwarded_address(set->auth, f.lines, f.n, f.real_ip,
		    o->remote, sizeof(o->remote));
	}
	o->seq = atomic_fetch_add_explicit(&h->next_id, 1,
	    memory_order_relaxed);
}

/*
 * The id that log lines give a request: the daemon's start time in hex
 * (in ms: a restart within the second made the same ids), and the
 * request's number. Formatted only when a line is written.
 */
static const char *
request_id(const struct http *h, const struct origin *o, char *buf,
    size_t len)
{
	snprintf(buf, len, "%llx-%llu", (unsigned long long)h->id_base,
	    (unsigned long long)o->seq);
	return buf;
}

static enum MHD_Result
queue_json(struct http *h, struct MHD_Connection *conn, unsigned status,
    const char *json, size_t len, const char *hdr, const char *val)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, (void *)json,
	    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "application/json");
	if (hdr != NULL)
		MHD_add_response_header(r, hdr, val);
	if (atomic_load(&h->stopping) && (hdr == NULL ||
	    strcasecmp(hdr, MHD_HTTP_HEADER_CONNECTION) != 0))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER,
		    RETRY_AFTER);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	if (status < 600)
		atomic_fetch_add_explicit(&h->metrics->responses[status], 1,
		    memory_order_relaxed);
	return ret;
}

static enum MHD_Result
answer(struct http *h, struct MHD_Connection *conn, unsigned status,
    const char *message, const char *hdr, const char *val)
{
	char esc[MSG_MAX * 2], json[MSG_MAX * 2 + 64];
	int n;

	json_escape(message, esc, sizeof(esc));
	n = snprintf(json, sizeof(json), "{\"status\":\"%s\",\"message\":"
	    "\"%s\"}", status < 300 ? "success" : "error", esc);
	return queue_json(h, conn, status, json, (size_t)n, hdr, val);
}

/* Refusals that come in floods when the daemon is overloaded. */
static bool
overload(enum reject_reason why)
{
	return why == REJECT_QUEUE_FULL || why == REJECT_STORE_BUSY ||
	    why == REJECT_SHUTTING_DOWN || why == REJECT_BODIES_FULL;
}

/*
 * At most one log line a second for each overload reason, and ten for
 * each other: thousands of identical lines a second would cost the
 * receiver more than the requests, and let any client flood the journal.
 * /metrics and the rejects table still count every one, and the next
 * line logged for a reason says how many of it were not
 * (unlogged=N).
 */
static bool
within_rate(atomic_uint_fast64_t *slot, uint64_t max)
{
	uint64_t second = now_mono_ns() / 1000000000ULL;
	uint64_t old = atomic_load_explicit(slot, memory_order_relaxed), n;

	/* The second in the high bits, the lines logged in it below. */
	do {
		n = old >> 16 == second ? (old & 0xffff) + 1 : 1;
		if (n > max)
			return false;
	} while (!atomic_compare_exchange_weak(slot, &old, second << 16 | n));
	return true;
}

static bool
log_refusal(struct http *h, enum reject_reason why)
{
	return within_rate(&h->refusals_logged[why], overload(why) ? 1 :
	    LOG_REFUSALS_MAX);
}

/*
 * A held or answered webhook whose client left first: one line, with the
 * request's fields, at most LOG_REFUSALS_MAX a second (any client can
 * cause it at will).
 */
static void
log_gone(struct http *h, const struct request *req)
{
	char id[48];
	const char *fields[] = { "req", NULL, "remote", req->from.remote,
	    "callSid", req->call_sid, NULL, NULL };

	if (!log_enabled(LOG_INFO) || !within_rate(&h->gone_logged,
	    LOG_REFUSALS_MAX))
		return;
	fields[1] = request_id(h, &req->from, id, sizeof(id));
	log_fields(LOG_INFO, "connection closed before its answer was sent "
	    "(the event is kept)", fields);
}

/*
 * Record a refused webhook request: a warning in the log and a row in
 * the rejects table (written by the writer; dropped, and counted, when
 * its small queue budget is spent, never blocking this thread).
 */
static void
note_reject(struct http *h, const struct origin *o, const char *call_sid,
    unsigned status, enum reject_reason why, const char *reason,
    const char *body, size_t len)
{
	struct reject *rj;
	struct job *job;
	char code[8], id[48], sid[EVENT_CALL_SID_MAX + 1], skipped[24];
	const char *fields[] = { "req", NULL, "remote", o->remote,
	    "status", code, "reason", reason, NULL, NULL, NULL, NULL, NULL,
	    NULL };
	size_t f = 8;
	uint64_t unlogged;

	if (!log_refusal(h, why))
		atomic_fetch_add_explicit(&h->refusals_unlogged[why], 1,
		    memory_order_relaxed);
	else {
		/*
		 * A refused body's callSid, so that a missing call can be
		 * found by its id: read again only for the lines logged,
		 * which a client cannot multiply.
		 */
		if ((call_sid == NULL || call_sid[0] == '\0') &&
		    status == MHD_HTTP_BAD_REQUEST && body != NULL) {
			event_refused_call_sid(body, len, sid, sizeof(sid));
			call_sid = sid;
		}
		if (call_sid != NULL && call_sid[0] != '\0') {
			fields[f++] = "callSid";
			fields[f++] = call_sid;
		}
		/* So that a quiet log does not pass for a quiet sender. */
		if ((unlogged = atomic_exchange_explicit(
		    &h->refusals_unlogged[why], 0, memory_order_relaxed)) > 0) {
			snprintf(skipped, sizeof(skipped), "%llu",
			    (unsigned long long)unlogged);
			fields[f++] = "unlogged";
			fields[f++] = skipped;
		}
		snprintf(code, sizeof(code), "%u", status);
		fields[1] = request_id(h, o, id, sizeof(id));
		log_fields(LOG_WARN, "refused request", fields);
	}
	atomic_fetch_add_explicit(&h->metrics->rejects[why], 1,
	    memory_order_relaxed);
	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (rj = calloc(1, sizeof(*rj))) == NULL) {
		free(job);
		return;
	}
	job->reject = rj;
	format_utc_ms(now_wall_ms(), rj->time, sizeof(rj->time));
	copy_text(rj->remote_addr, sizeof(rj->remote_addr), o->remote);
	copy_text(rj->reason, sizeof(rj->reason), reason);
	rj->status = (int)status;
	if (len > STORE_REJECT_BODY)
		len = STORE_REJECT_BODY;
	if (body != NULL && len > 0 && (rj->body = malloc(len)) != NULL) {
		memcpy(rj->body, body, len);
		rj->body_len = len;
	}
	if (queue_push(h->queue, job) != 0) {
		atomic_fetch_add(&h->metrics->rejects_dropped, 1);
		job_free(job);
	}
}

static const char *
allow_header(unsigned status)
{
	return status == MHD_HTTP_METHOD_NOT_ALLOWED ? "POST" : NULL;
}

/*
 * Part of a request line as a log shows it: at most ROUTE_MAX bytes, cut
 * at "token" or at a '%' when asked (a path left escaped, as one holding
 * %00 is, could spell "%74oken"), and what is not printable ASCII as
 * '?'. out has room for ROUTE_MAX + 4 bytes.
 */
static void
route_part(const char *p, bool cut_at_token, char *out)
{
	size_t n = 0;

	for (; *p != '\0' && n < ROUTE_MAX; p++) {
		if (cut_at_token && (*p == '%' ||
		    strncasecmp(p, "token", 5) == 0))
			break;
		out[n++] = *p > ' ' && *p < 0x7f ? *p : '?';
	}
	if (*p != '\0') {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/*
 * The reason a 404 or 405 logs and keeps: with the method and path asked
 * for, so that a sender posting to a mistyped URL can be told from a
 * scanner. The path is cut at "token": a "&token=" typed for "?token="
 * would put the secret in it (the query string is not part of it).
 */
static void
route_reason(const char *message, const char *method, const char *url,
    char *buf, size_t len)
{
	char m[ROUTE_MAX + 4], u[ROUTE_MAX + 4];

	route_part(method, false, m);
	route_part(url, true, u);
	snprintf(buf, len, "%s: %s %s", message, m, u);
}

/*
 * Refuse a request for a path or method not served, on its headers: it
 * has no struct request.
 */
static enum MHD_Result
refuse_early(struct http *h, struct MHD_Connection *conn,
    const struct settings *set, unsigned status, enum reject_reason why,
    const char *message, const char *method, const char *url)
{
	char reason[MSG_MAX];
	struct origin o;

	origin_of(h, set, conn, &o);
	route_reason(message, method, url, reason, sizeof(reason));
	note_reject(h, &o, NULL, status, why, reason, NULL, 0);
	return answer(h, conn, status, message, allow_header(status) ?
	    MHD_HTTP_HEADER_ALLOW : NULL, allow_header(status));
}

/*
 * The header a refusal owes its client, or NULL. A 415 says what the body
 * may be coded as (RFC 7694 section 3): only as sent. A 401 for the token
 * names its scheme (RFC 9110 section 11.6.1). A bad signature has no
 * registered scheme; its body says what is wrong.
 */
static const char *
refusal_header(unsigned status, enum reject_reason why, const char **val)
{
	if (status == MHD_HTTP_UNSUPPORTED_MEDIA_TYPE) {
		*val = "identity";
		return MHD_HTTP_HEADER_ACCEPT_ENCODING;
	}
	if (why == REJECT_UNAUTHORIZED) {
		*val = "Bearer realm=\"callhookd\"";
		return MHD_HTTP_HEADER_WWW_AUTHENTICATE;
	}
	return NULL;
}

static enum MHD_Result
refuse(struct request *req, unsigned status, enum reject_reason why,
    const char *message)
{
	const char *hdr, *val = NULL;

	req->state = REQ_ANSWERED;
	note_reject(req->http, &req->from, req->call_sid, status, why,
	    message, req->body, req->len);
	hdr = refusal_header(status, why, &val);
	return answer(req->http, req->conn, status, message, hdr, val);
}

static enum MHD_Result
serve_health(struct http *h, struct MHD_Connection *conn)
{
	/* All the writer keeps of its message: the end says what to do. */
	char store[WRITER_HEALTH_MAX], esc[sizeof(store) * 2],
	    json[sizeof(esc) + 64];
	bool ok = writer_health(h->writer, store, sizeof(store));
	int n;

	if (atomic_load(&h->stopping)) {
		ok = false;
		snprintf(store, sizeof(store), "shutting down");
	}
	json_escape(store, esc, sizeof(esc));
	n = snprintf(json, sizeof(json), "{\"status\":\"%s\",\"queue\":%zu,"
	    "\"store\":\"%s\"}", ok ? "ok" : "error",
	    queue_pending(h->queue), esc);
	return queue_json(h, conn, ok ? MHD_HTTP_OK :
	    MHD_HTTP_SERVICE_UNAVAILABLE, json, (size_t)n, NULL, NULL);
}

static enum MHD_Result
serve_metrics(struct http *h, struct MHD_Connection *conn)
{
	/* Safe on the MHD thread, which alone frees settings. */
	const struct settings *set = atomic_load(&h->settings);
	struct gauges g = {
		.body_bytes = atomic_load(&h->body_bytes),
		.memory_budget = config_memory_budget(&set->cfg),
		.rescue_bytes = writer_rescue_bytes(h->writer),
		.connections = conns_count(h->conns),
	};
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t len;
	char *text;

	queue_usage(h->queue, &g.queue_depth, &g.queue_bytes);
	text = metrics_render(h->metrics, &g, &len);
	if (text == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; version=0.0.4");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	atomic_fetch_add(&h->metrics->responses[200], 1);
	return ret;
}

/*
 * Stand-ins for a request in *con_cls: a probe of /healthz or /metrics,
 * answered on the final call. libmicrohttpd closes the connection after
 * an answer queued on the first, as it cannot know that no body follows,
 * and probes come every few seconds over nginx's keepalive connections.
 */
static char health_probe, metrics_probe;

static bool
is_probe(const void *ctx)
{
	return ctx == &health_probe || ctx == &metrics_probe;
}

static enum MHD_Result
serve_other(struct http *h, struct MHD_Connection *conn, const char *url,
    const char *method, void **con_cls)
{
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
		if (!get)
			return answer(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			    "Method not allowed", MHD_HTTP_HEADER_ALLOW,
			    "GET, HEAD");
		/*
		 * One that says it has a body is answered now, and its
		 * connection closed: kept, its framing (Content-Length and
		 * Transfer-Encoding both, say) could smuggle a request past
		 * a proxy in front.
		 */
		if (header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL ||
		    header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH) != NULL)
			return url[1] == 'h' ? serve_health(h, conn) :
			    serve_metrics(h, conn);
		*con_cls = url[1] == 'h' ? &health_probe : &metrics_probe;
		return MHD_YES;
	}
	return refuse_early(h, conn, atomic_load(&h->settings),
	    MHD_HTTP_NOT_FOUND, REJECT_NOT_FOUND, "Not found", method, url);
}

/*
 * A probe's final call: it has no body (serve_other() answers one that
 * says it has), so this is the only call after the first.
 */
static enum MHD_Result
answer_probe(struct http *h, struct MHD_Connection *conn, const void *probe)
{
	if (!conn_request_in(watch_of(conn)))
		return MHD_NO;		/* being shut down as late */
	return probe == &health_probe ? serve_health(h, conn) :
	    serve_metrics(h, conn);
}

/* application/json, any case, optionally followed by parameters. */
static bool
json_content_type(const char *ct)
{
	static const char want[] = "application/json";

	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return false;
	ct += sizeof(want) - 1;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/*
 * What one pass over a request's header lines finds of its framing and
 * media type. libmicrohttpd, and header() here, read the first line of a
 * name; a proxy in front may read the last, or join them ("chunked,
 * gzip"), and frame or judge the body otherwise: the stuff of request
 * smuggling. So a name that matters here must mean the same on every line.
 */
struct framing {
	const char	*length;	/* the first Content-Length */
	bool		 lengths_differ; /* RFC 9112 section 6.3: an error */
	const char	*coding;	/* the first Transfer-Encoding */
	int		 codings;	/* its lines */
	bool		 not_json;	/* a Content-Type line that is not */
	bool		 compressed;	/* a Content-Encoding not identity */
};

/*
 * A Content-Encoding line that leaves the body as sent: "identity" or
 * nothing, in each member of its list.
 */
static bool
identity_coding(const char *v)
{
	static const char id[] = "identity";

	for (;;) {
		v += strspn(v, " \t,");
		if (*v == '\0')
			return true;
		if (strncasecmp(v, id, sizeof(id) - 1) != 0)
			return false;
		v += sizeof(id) - 1;
		v += strspn(v, " \t");
		if (*v != ',' && *v != '\0')
			return false;
	}
}

static enum MHD_Result
note_framing(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct framing *f = cls;

	(void)kind;
	if (value == NULL)
		return MHD_YES;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (f->length == NULL)
			f->length = value;
		else if (strcmp(f->length, value) != 0)
			f->lengths_differ = true;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		if (f->codings++ == 0)
			f->coding = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0 &&
	    !json_content_type(value))
		f->not_json = true;
	else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_ENCODING) == 0 &&
	    !identity_coding(value))
		f->compressed = true;
	return MHD_YES;
}

/*
 * The status that the framing and media type of a request in version
 * earn, with its message in *msg and reason in *why; 0 when they are
 * fine.
 */
static unsigned
framing_refusal(struct MHD_Connection *conn, const char *version,
    const char **msg, enum reject_reason *why)
{
	struct framing f = { 0 };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, note_framing, &f);
	*why = REJECT_INVALID;
	/*
	 * RFC 9112 section 6.1: faulty framing. A proxy that frames it by
	 * HTTP/1.0 sees no body, and the chunks as the next request;
	 * libmicrohttpd decoded them and kept the connection.
	 */
	if (f.codings > 0 && strcmp(version, MHD_HTTP_VERSION_1_0) == 0) {
		*msg = "Transfer-Encoding in an HTTP/1.0 request";
		return MHD_HTTP_BAD_REQUEST;
	}
	if (f.lengths_differ || f.codings > 1) {
		*msg = f.lengths_differ ? "conflicting Content-Length headers" :
		    "Transfer-Encoding given more than once";
		return MHD_HTTP_BAD_REQUEST;
	}
	/* libmicrohttpd would wait for the end of any other coding. */
	if (f.coding != NULL && strcasecmp(f.coding, "chunked") != 0) {
		*msg = "Transfer-Encoding must be chunked";
		return MHD_HTTP_NOT_IMPLEMENTED;
	}
	/* RFC 9112 section 6.1: may be refused, must not keep the line. */
	if (f.coding != NULL && f.length != NULL) {
		*msg = "both Content-Length and Transfer-Encoding given";
		return MHD_HTTP_BAD_REQUEST;
	}
	if (f.not_json) {
		*msg = "Content-Type must be application/json";
		*why = REJECT_MEDIA_TYPE;
		return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
	}
	/*
	 * libmicrohttpd decodes no content coding: taken as sent, a gzip
	 * body was a 400 "not valid UTF-8", and a body labelled gzip was
	 * stored as if it were JSON. RFC 9110 section 8.4.1: 415.
	 */
	if (f.compressed) {
		*msg = "Content-Encoding must be identity: send the body "
		    "uncompressed";
		*why = REJECT_MEDIA_TYPE;
		return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
	}
	return 0;
}

/* Content-Length, or -1 when absent (chunked). */
static long long
content_length(struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);

	return v == NULL ? -1 : strtoll(v, NULL, 10);
}

/*
 * The token, in the URL, a Bearer header or X-Callhook-Token: any one
 * right will do, so that a stale ?token= left in a URL does not hide the
 * right header. The best of them: the current token, else the previous
 * one (counted, so that an operator sees when no sender uses it).
 */
static enum auth_token
token_presented(const struct auth *a, struct MHD_Connection *conn)
{
	const char *places[3], *v;
	enum auth_token best = AUTH_TOKEN_NONE, m;

	places[0] = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
	    "token");
	v = header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
	places[1] = v != NULL && strncasecmp(v, "Bearer ", 7) == 0 ?
	    v + 7 + strspn(v + 7, " ") : NULL;		/* 1*SP */
	places[2] = header(conn, "X-Callhook-Token");
	for (size_t i = 0; i < 3 && best != AUTH_TOKEN_CURRENT; i++)
		if ((m = auth_token_match(a, places[i])) > best)
			best = m;
	return best;
}

/*
 * Free the snapshots behind from that no request holds. Only on the MHD
 * thread, which alone counts users, and from a snapshot the caller has
 * in hand: a reload may put a new one in front at any time (the one the
 * caller loaded then being behind it), but never touches those behind.
 */
static void
settings_sweep(struct settings *from)
{
	struct settings *p = from, *s;

	while ((s = p->older) != NULL) {
		if (s->users > 0) {
			p = s;
			continue;
		}
		p->older = s->older;
		auth_free(s->auth);
		free(s);
	}
}

static struct request *
request_new(struct http *h, struct MHD_Connection *conn,
    struct settings *set)
{
	struct request *req;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	req->http = h;
	req->conn = conn;
	req->set = set;
	origin_of(h, set, conn, &req->from);
	req->started_ns = now_mono_ns();
	set->users++;
	atomic_fetch_add(&h->in_flight, 1);
	return req;
}

/*
 * Bodies being received take memory a client chooses: up to max_body on
 * each of max_connections, gigabytes by default. The bytes received
 * share a budget the size of the queue's (config_memory_budget); a body
 * that would pass it is answered 503, to be sent again. Counted as they
 * arrive, not by Content-Length, so that holding the budget costs its
 * bytes, and for a limited time (check_deadline).
 */
static bool
body_room(const struct request *req, size_t n)
{
	return atomic_load(&req->http->body_bytes) + n <=
	    config_memory_budget(&req->set->cfg);
}

static bool
body_reserve(struct request *req, size_t n)
{
	struct http *h = req->http;

	if (atomic_fetch_add(&h->body_bytes, n) + n >
	    config_memory_budget(&req->set->cfg)) {
		atomic_fetch_sub(&h->body_bytes, n);
		return false;
	}
	req->reserved += n;
	return true;
}

/*
 * Refused (no room, or too big): keep only what the rejects row shows,
 * and give the rest of the memory back at once.
 */
static void
body_refused(struct request *req, enum req_state state)
{
	size_t keep = req->len < STORE_REJECT_BODY ? req->len :
	    STORE_REJECT_BODY;
	char *p;

	req->state = state;
	if (keep > 0 && (p = realloc(req->body, keep)) != NULL) {
		req->body = p;
		req->cap = keep;
	}
	req->len = keep;
	atomic_fetch_sub(&req->http->body_bytes, req->reserved - keep);
	req->reserved = keep;
}

/*
 * A held event has the body now: keep only what a rejects row shows,
 * should it be refused after all (not queued, not committed in time),
 * so that the row says which call it was. A short body is kept as is.
 */
static void
body_keep_head(struct request *req)
{
	char *p;

	if (req->len <= STORE_REJECT_BODY)
		return;
	if ((p = realloc(req->body, STORE_REJECT_BODY)) != NULL)
		req->body = p;
	req->len = req->cap = STORE_REJECT_BODY;
	if (req->reserved > STORE_REJECT_BODY) {
		atomic_fetch_sub(&req->http->body_bytes, req->reserved -
		    STORE_REJECT_BODY);
		req->reserved = STORE_REJECT_BODY;
	}
}

static void
body_free(struct request *req)
{
	free(req->body);
	req->body = NULL;
	atomic_fetch_sub(&req->http->body_bytes, req->reserved);
	req->reserved = 0;
}

static bool
signature_said(enum auth_sig rc, char *msg, size_t len)
{
	switch (rc) {
	case AUTH_SIG_OK:
		return true;
	case AUTH_SIG_MISSING:
		snprintf(msg, len, "webhook-id, webhook-timestamp and "
		    "webhook-signature are required");
		return false;
	case AUTH_SIG_STALE:
		snprintf(msg, len, "webhook-timestamp is missing or more "
		    "than %d minutes away", AUTH_SIGNATURE_TOLERANCE / 60);
		return false;
	default:
		snprintf(msg, len, "bad signature");
		return false;
	}
}

/* Standard Webhooks headers, checked over the raw body. */
static bool
signature_ok(struct request *req, char *msg, size_t len)
{
	struct MHD_Connection *c = req->conn;

	return signature_said(auth_check_signature(req->set->auth,
	    header(c, "webhook-id"), header(c, "webhook-timestamp"),
	    header(c, "webhook-signature"), req->body ? req->body : "",
	    req->len, time(NULL)), msg, len);
}

/* What the headers alone decide of it: checked before the body is read. */
static bool
signature_headers_ok(struct request *req, char *msg, size_t len)
{
	struct MHD_Connection *c = req->conn;

	return signature_said(auth_signature_headers(header(c, "webhook-id"),
	    header(c, "webhook-timestamp"), header(c, "webhook-signature"),
	    time(NULL)), msg, len);
}

/*
 * The headers of a POST to the webhook path. Everything that can be
 * refused without the body is refused here, before it is read.
 */
static enum MHD_Result
begin_webhook(struct http *h, struct MHD_Connection *conn,
    const char *version, struct settings *set, void **con_cls)
{
	long long clen = content_length(conn);
	enum reject_reason why;
	enum auth_token token;
	struct request *req;
	const char *refusal;
	char msg[MSG_MAX];
	unsigned status;

	if ((req = request_new(h, conn, set)) == NULL)
		return MHD_NO;
	*con_cls = req;
	if (!auth_allowed(set->auth, req->from.remote))
		return refuse(req, MHD_HTTP_FORBIDDEN, REJECT_FORBIDDEN,
		    "client address not allowed");
	if (auth_requires_token(set->auth) &&
	    (token = token_presented(set->auth, conn)) != AUTH_TOKEN_CURRENT) {
		if (token == AUTH_TOKEN_NONE)
			return refuse(req, MHD_HTTP_UNAUTHORIZED,
			    REJECT_UNAUTHORIZED, "missing or wrong token");
		atomic_fetch_add_explicit(&h->metrics->previous_token, 1,
		    memory_order_relaxed);
	}
	if ((status = framing_refusal(conn, version, &refusal, &why)) != 0)
		return refuse(req, status, why, refusal);
	if (clen > (long long)set->cfg.max_body)
		return refuse(req, MHD_HTTP_CONTENT_TOO_LARGE, REJECT_TOO_LARGE,
		    "body exceeds max_body");
	/* Before the body is read: no signature, no memory for it. */
	if (auth_requires_signature(set->auth) && !signature_headers_ok(req,
	    msg, sizeof(msg)))
		return refuse(req, MHD_HTTP_UNAUTHORIZED, REJECT_SIGNATURE, msg);
	if (clen > 0 && !body_room(req, (size_t)clen))
		return refuse(req, MHD_HTTP_SERVICE_UNAVAILABLE,
		    REJECT_BODIES_FULL, NO_ROOM);
	if (clen > 0 && (req->body = malloc((size_t)clen)) == NULL)
		return MHD_NO;
	req->cap = clen > 0 ? (size_t)clen : 0;
	return MHD_YES;
}

/*
 * libmicrohttpd's percent-decoding of the path, except that a path with
 * %00 in it is left as sent: decoded, the NUL would end the C string, and
 * "/webhook/call-webhook%00.json" would compare equal to the webhook path.
 */
static size_t
unescape_url(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls;
	(void)conn;
	if (strstr(s, "%00") != NULL)
		return strlen(s);
	return MHD_http_unescape(s);
}

/*
 * The path of a target in absolute form, which a server must take (RFC
 * 9112, 3.2.2): "http://host:port/p" is "/p", and with no path, "/".
 */
static const char *
origin_form(const char *url)
{
	const char *p;

	if (url[0] == '/')
		return url;
	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return url;
	return (p = strchr(p, '/')) != NULL ? p : "/";
}

/* RFC 9110 section 5.6.2: tchar. */
static bool
token_name(const char *s)
{
	static const char other[] = "!#$%&'*+-.^_`|~";
	const unsigned char *p = (const unsigned char *)s;

	if (*p == '\0')
		return false;
	for (; *p != '\0'; p++)
		if (!(*p >= '0' && *p <= '9') && !((*p | 0x20) >= 'a' &&
		    (*p | 0x20) <= 'z') && strchr(other, *p) == NULL)
			return false;
	return true;
}

static enum MHD_Result
note_bad_name(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	(void)kind;
	(void)value;
	if (token_name(key))
		return MHD_YES;
	*(bool *)cls = true;
	return MHD_NO;
}

/*
 * RFC 9112 section 5.1: a space before a header line's colon must get a
 * 400. libmicrohttpd 0.9.75 keeps it in the name ("Content-Length "), and
 * glues a folded line's text to its name, so such a line is no header
 * here but may be one to a proxy in front, which would then frame the
 * request otherwise: "GET /healthz" with "Content-Length : N" had a
 * webhook POST in its body taken as a second request, with the proxy's
 * X-Forwarded-For believed. Any name that is not a token is refused, and
 * the connection closed, whatever the path.
 */
static bool
malformed_header(struct MHD_Connection *conn)
{
	bool bad = false;

	MHD_get_connection_values(conn, MHD_HEADER_KIND, note_bad_name, &bad);
	return bad;
}

static enum MHD_Result
refuse_malformed(struct http *h, struct MHD_Connection *conn,
    const struct settings *set)
{
	static const char msg[] = "malformed header line (a space before "
	    "its colon, or a folded line)";
	struct origin o;

	origin_of(h, set, conn, &o);
	note_reject(h, &o, NULL, MHD_HTTP_BAD_REQUEST, REJECT_INVALID, msg,
	    NULL, 0);
	return answer(h, conn, MHD_HTTP_BAD_REQUEST, msg,
	    MHD_HTTP_HEADER_CONNECTION, "close");
}

static enum MHD_Result
begin_request(struct http *h, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, void **con_cls)
{
	struct settings *set = atomic_load(&h->settings);

	url = origin_form(url);

	if (set->older != NULL)
		settings_sweep(set);
	if (malformed_header(conn))
		return refuse_malformed(h, conn, set);
	if (strcmp(url, set->cfg.path) != 0)
		return serve_other(h, conn, url, method, con_cls);
	if (strcmp(method, "POST") != 0)
		return refuse_early(h, conn, set, MHD_HTTP_METHOD_NOT_ALLOWED,
		    REJECT_METHOD, "Method not allowed", method, url);
	return begin_webhook(h, conn, version, set, con_cls);
}

static enum MHD_Result
discard_body(struct request *req, size_t *size)
{
	size_t max = req->set->cfg.max_body;

	req->received += *size;
	*size = 0;
	/* Never to be taken, whatever the room: 413, not "retry". */
	if (req->state == REQ_NO_ROOM && req->received > max)
		req->state = REQ_TOO_BIG;
	if (req->state == REQ_TOO_BIG &&
	    req->received - max > TOO_BIG_SLACK) {
		note_reject(req->http, &req->from, NULL,
		    MHD_HTTP_CONTENT_TOO_LARGE, REJECT_TOO_LARGE, "body "
		    "exceeds max_body (connection closed)", req->body,
		    req->len);
		req->state = REQ_ANSWERED;
		return MHD_NO;
	}
	return MHD_YES;
}

/*
 * A body must be in within twice the idle timeout of its headers (60 s
 * by default): that timeout starts again at every byte, so a trickle
 * would keep its memory and its connection for ever. Its connection is
 * closed.
 */
static enum MHD_Result
refuse_late(struct request *req)
{
	uint64_t limit = req->http->body_deadline_ns;
	char why[80];

	snprintf(why, sizeof(why), "body not received within %llu s "
	    "(connection closed)", (unsigned long long)(limit / 1000000000));
	note_reject(req->http, &req->from, NULL, MHD_HTTP_REQUEST_TIMEOUT,
	    REJECT_TOO_SLOW, why, req->body, req->len);
	req->state = REQ_ANSWERED;
	return MHD_NO;
}

/*
 * The deadline, checked whenever a body's bytes come; conns.c sweeps.
 * Refused here, before the sweep, the connection is counted as cut all
 * the same.
 */
static enum MHD_Result
check_deadline(struct request *req)
{
	if (now_mono_ns() - req->started_ns <= req->http->body_deadline_ns)
		return MHD_YES;
	conns_cut_late(req->http->conns, req->watch);
	return refuse_late(req);
}

static enum MHD_Result
receive_body(struct request *req, const char *data, size_t *size)
{
	size_t max = req->set->cfg.max_body, need = req->len + *size;

	if (need > max || need < req->len) {
		body_refused(req, REQ_TOO_BIG);
		return discard_body(req, size);
	}
	if (!body_reserve(req, *size)) {
		body_refused(req, REQ_NO_ROOM);
		return discard_body(req, size);
	}
	if (need > req->cap) {
		size_t cap = req->cap < FIRST_BODY_CAP ? FIRST_BODY_CAP :
		    req->cap;
		char *p;

		while (cap < need)
			cap *= 2;
		if (cap > max)
			cap = max;
		if ((p = realloc(req->body, cap)) == NULL)
			return MHD_NO;
		req->body = p;
		req->cap = cap;
	}
	memcpy(req->body + req->len, data, *size);
	req->len = need;
	req->received += *size;
	*size = 0;
	return MHD_YES;
}

static void
resume_connection(void *conn)
{
	MHD_resume_connection(conn);
}

static enum MHD_Result
answer_stored(struct request *req)
{
	struct http *h = req->http;
	enum MHD_Result ret;

	req->state = REQ_ANSWERED;
	ret = MHD_queue_response(req->conn, MHD_HTTP_OK,
	    atomic_load(&h->stopping) ? h->received_closing : h->received);
	atomic_fetch_add_explicit(&h->metrics->responses[200], 1,
	    memory_order_relaxed);
	if (log_enabled(LOG_DEBUG)) {
		char id[48];
		const char *fields[] = { "req", request_id(h, &req->from, id,
		    sizeof(id)), "remote", req->from.remote, "status", "200",
		    "callSid", req->call_sid, NULL, NULL };

		log_fields(LOG_DEBUG, req->set->cfg.ack == ACK_COMMIT ?
		    "stored" : "queued", fields);
	}
	return ret;
}

static enum MHD_Result
answer_unqueued(struct request *req)
{
	if (req->push_rc == -EAGAIN)
		return refuse(req, MHD_HTTP_SERVICE_UNAVAILABLE,
		    REJECT_QUEUE_FULL, "queue full, retry later");
	return refuse(req, MHD_HTTP_SERVICE_UNAVAILABLE, REJECT_SHUTTING_DOWN,
	    "shutting down, retry later");
}

/*
 * The event waited ack_timeout_ms and stays queued, to be written once
 * the store takes it: say whether the store is slow or failing, and why.
 */
static enum MHD_Result
answer_late(struct request *req)
{
	char store[200], msg[320];

	if (writer_health(req->http->writer, store, sizeof(store)))
		snprintf(msg, sizeof(msg), "store busy: event queued but not "
		    "yet committed, retry later");
	else
		snprintf(msg, sizeof(msg), "store failing (%s): event queued "
		    "but not yet committed, retry later", store);
	return refuse(req, MHD_HTTP_SERVICE_UNAVAILABLE, REJECT_STORE_BUSY,
	    msg);
}

/* Called again after the writer resumed the held connection. */
static enum MHD_Result
answer_held(struct request *req)
{
	switch (ticket_state(req->ticket)) {
	case TICKET_STORED:
		return answer_stored(req);
	case TICKET_TIMEOUT:
		return answer_late(req);
	case TICKET_CANCELLED:
		return answer_unqueued(req);
	default:
		return refuse(req, MHD_HTTP_SERVICE_UNAVAILABLE,
		    REJECT_STORE_FAILED, "event could not be stored, retry "
		    "later");
	}
}

/*
 * Queue ev. In commit mode the connection is suspended first, so that the
 * writer's resume can never come before the suspend.
 */
static enum MHD_Result
enqueue(struct request *req, struct event *ev)
{
	struct http *h = req->http;
	bool hold = req->set->cfg.ack == ACK_COMMIT;
	struct job *job;

	if ((job = calloc(1, sizeof(*job))) == NULL) {
		event_free(ev);
		return MHD_NO;
	}
	job->event = ev;
	/* The event is one block: the body, and its fields (at most as big). */
	job->bytes = sizeof(*ev) + 2 * ev->body_len;
	job->queued_ns = now_mono_ns();
	job->started_ns = req->started_ns;
	if (hold) {
		if ((req->ticket = ticket_new(resume_connection,
		    req->conn)) == NULL) {
			job_free(job);
			return MHD_NO;
		}
		job->ticket = req->ticket;
		req->state = REQ_HELD;
		MHD_suspend_connection(req->conn);
	}
	if ((req->push_rc = queue_push(h->queue, job)) != 0) {
		job_free(job);
		if (hold) {
			ticket_resolve(req->ticket, TICKET_CANCELLED);
			return MHD_YES;
		}
		return answer_unqueued(req);
	}
	if (hold)
		return MHD_YES;
	return answer_stored(req);
}

static enum MHD_Result
finish_body(struct request *req)
{
	struct http *h = req->http;
	char msg[MSG_MAX];
	struct event *ev;
	enum event_error e;

	if (atomic_load(&h->stopping)) {
		req->push_rc = -ESHUTDOWN;
		return answer_unqueued(req);
	}
	/* Refuse before parsing when there is no room anyway. */
	if (queue_full(h->queue)) {
		req->push_rc = -EAGAIN;
		return answer_unqueued(req);
	}
	if (auth_requires_signature(req->set->auth) &&
	    !signature_ok(req, msg, sizeof(msg)))
		return refuse(req, MHD_HTTP_UNAUTHORIZED, REJECT_SIGNATURE, msg);
	e = event_parse(req->body, req->len, req->set->cfg.strict, &ev, msg,
	    sizeof(msg));
	if (e == EVENT_NO_MEMORY)
		return MHD_NO;
	if (e != EVENT_OK)
		return refuse(req, MHD_HTTP_BAD_REQUEST, e ==
		    EVENT_UNKNOWN_TYPE ? REJECT_UNKNOWN_EVENT : REJECT_INVALID,
		    msg);
	if (ev->type_mismatches > 0)
		atomic_fetch_add(&h->metrics->type_mismatches,
		    ev->type_mismatches);
	copy_text(req->call_sid, sizeof(req->call_sid), ev->call_sid);
	copy_text(ev->remote_addr, sizeof(ev->remote_addr), req->from.remote);
	format_utc_ms(now_wall_ms(), ev->received_at, sizeof(ev->received_at));
	/*
	 * Held (ack = commit), it may yet be refused, once per waiting
	 * sender: its rejects row keeps the body's head. Not held, a 503
	 * for a full queue can come thousands of times a second, and a body
	 * in each row would cost the writer, which is then the bottleneck,
	 * and 4 MB of rows in memory: the log line names the call.
	 */
	if (req->set->cfg.ack == ACK_COMMIT)
		body_keep_head(req);
	else
		body_free(req);
	return enqueue(req, ev);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **con_cls)
{
	struct request *req = *con_cls;
	struct conn *watch;
	enum MHD_Result rc;

	if (req == NULL) {
		/* Looked up once: the request keeps it (on_completed too). */
		if (!conn_headers_in(watch = watch_of(conn)))
			return MHD_NO;	/* being shut down as late */
		rc = begin_request(cls, conn, url, method, version, con_cls);
		if ((req = *con_cls) != NULL && !is_probe(req))
			req->watch = watch;
		return rc;
	}
	if (is_probe(req))
		return answer_probe(cls, conn, req);
	/*
	 * Also on the final call: libmicrohttpd reads a chunked body's
	 * trailer and chunk extensions without calling, and a late body
	 * must not be answered 200.
	 */
	if (req->state != REQ_ANSWERED && req->state != REQ_HELD &&
	    check_deadline(req) == MHD_NO)
		return MHD_NO;
	/* The body and its trailer are in, unless the deadline cut first. */
	if (*upload_size == 0 && req->state != REQ_HELD &&
	    !conn_request_in(req->watch))
		return req->state == REQ_ANSWERED ? MHD_NO : refuse_late(req);
	switch (req->state) {
	case REQ_HELD:
		return answer_held(req);
	case REQ_ANSWERED:
		*upload_size = 0;	/* discard the rest of a refused body */
		return MHD_YES;
	case REQ_TOO_BIG:
		if (*upload_size > 0)
			return discard_body(req, upload_size);
		return refuse(req, MHD_HTTP_CONTENT_TOO_LARGE,
		    REJECT_TOO_LARGE, "body exceeds max_body");
	case REQ_NO_ROOM:
		if (*upload_size > 0)
			return discard_body(req, upload_size);
		return refuse(req, MHD_HTTP_SERVICE_UNAVAILABLE,
		    REJECT_BODIES_FULL, NO_ROOM);
	default:
		break;
	}
	if (*upload_size > 0)
		return receive_body(req, upload_data, upload_size);
	return finish_body(req);
}

/*
 * The status of an answer libmicrohttpd queued itself, for a body it
 * could not read (a malformed chunk, a chunk line too long for the
 * connection's memory), or 0.
 */
static unsigned
library_answer(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
	return ci != NULL ? ci->http_status : 0;
}

/*
 * A sender that closed its connection mid-body (a proxy or a client that
 * timed out, a network that failed) got no answer and will send again,
 * if it retries: 499, nginx's status for it, so that a missing call can
 * be traced to the connection that carried it. A body already refused
 * while the rest was discarded keeps the refusal it would have had.
 */
static void
note_client_closed(struct request *req)
{
	static const char gone[] = "; the client closed the connection "
	    "before its end";
	char reason[160];

	switch (req->state) {
	case REQ_TOO_BIG:
		snprintf(reason, sizeof(reason), "body exceeds max_body%s",
		    gone);
		note_reject(req->http, &req->from, NULL,
		    MHD_HTTP_CONTENT_TOO_LARGE, REJECT_TOO_LARGE, reason,
		    req->body, req->len);
		break;
	case REQ_NO_ROOM:
		snprintf(reason, sizeof(reason), "%s%s", NO_ROOM, gone);
		note_reject(req->http, &req->from, NULL,
		    MHD_HTTP_SERVICE_UNAVAILABLE, REJECT_BODIES_FULL, reason,
		    req->body, req->len);
		break;
	default:
		snprintf(reason, sizeof(reason), "the client closed the "
		    "connection after %zu bytes of the body; nothing was "
		    "answered", req->len);
		note_reject(req->http, &req->from, NULL, STATUS_CLIENT_CLOSED,
		    REJECT_CLIENT_CLOSED, reason, req->body, req->len);
	}
}

/* A webhook whose body never came whole: in rejects, with the cause. */
static void
note_unfinished(struct request *req, struct MHD_Connection *conn,
    enum MHD_RequestTerminationCode toe)
{
	unsigned status;

	if (conn_cut(req->watch))
		(void)refuse_late(req);
	else if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
		note_reject(req->http, &req->from, NULL,
		    MHD_HTTP_REQUEST_TIMEOUT, REJECT_TOO_SLOW, "body stopped "
		    "coming (idle timeout, connection closed)", req->body,
		    req->len);
	else if (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ||
	    toe == MHD_REQUEST_TERMINATED_READ_ERROR)
		note_client_closed(req);
	else if ((status = library_answer(conn)) != 0) {
		if (status < 600)
			atomic_fetch_add_explicit(
			    &req->http->metrics->responses[status], 1,
			    memory_order_relaxed);
		note_reject(req->http, &req->from, NULL, status, REJECT_INVALID,
		    status == MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE ?
		    "trailer too large for libmicrohttpd, connection closed" :
		    "body framing refused by libmicrohttpd (a malformed "
		    "chunk, or a chunk line too long), connection closed",
		    req->body, req->len);
	}
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct request *req = is_probe(*con_cls) ? NULL : *con_cls;
	struct settings *cur;

	conn_request_done(req != NULL ? req->watch : watch_of(conn));
	*con_cls = NULL;
	if (req == NULL)
		return;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->call_sid[0])
		log_gone(h, req);
	if (req->state == REQ_RECEIVING || req->state == REQ_TOO_BIG ||
	    req->state == REQ_NO_ROOM)
		note_unfinished(req, conn, toe);
	ticket_unref(req->ticket);
	cur = atomic_load(&h->settings);
	if (--req->set->users == 0 && req->set != cur)
		settings_sweep(cur);
	body_free(req);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&h->in_flight, 1);
}

/*
 * libmicrohttpd's messages are about clients, as a rule (a reset, a bad
 * request line), and at debug: any client could flood the log. But a
 * failed accept() is the daemon's own trouble, out of open files most
 * often, and while it lasts new connections, a sender's among them, wait
 * or fail: a warning, at most one every ACCEPT_WARN_S.
 */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http *h = cls;
	uint64_t now = now_mono_ns() / 1000000000ULL, last;
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	if (strncmp(line, "Hit process or system resource limit", 36) != 0 &&
	    strncmp(line, "Error accepting connection", 26) != 0) {
		log_debug("libmicrohttpd: %s", line);
		return;
	}
	last = atomic_load(&h->accept_warned);
	if ((last == 0 || now - last >= ACCEPT_WARN_S) &&
	    atomic_compare_exchange_strong(&h->accept_warned, &last, now))
		log_warnx("libmicrohttpd: %s; %u connections open (see "
		    "LimitNOFILE=, ulimit -n and max_connections)", line,
		    conns_count(h->conns));
	else
		log_debug("libmicrohttpd: %s", line);
}

static struct settings *
settings_new(const struct config *cfg, struct settings *older, char *err,
    size_t errlen)
{
	struct settings *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (auth_new(&s->auth, cfg, err, errlen) != 0) {
		free(s);
		return NULL;
	}
	s->cfg = *cfg;
	s->older = older;
	return s;
}

/* A snapshot and every older one, at stop: no request is left. */
static void
settings_free(struct settings *s)
{
	struct settings *older;

	for (; s != NULL; s = older) {
		older = s->older;
		auth_free(s->auth);
		free(s);
	}
}

/*
 * The shared 200. Once the stop has begun, answers close their
 * connection (closing): a sender reconnects, to the next daemon under
 * socket activation, rather than taking 503 "shutting down" on a kept
 * connection for as long as the drain lasts.
 */
static struct MHD_Response *
received_response(bool closing)
{
	static const char body[] =
	    "{\"status\":\"success\",\"message\":\"Webhook received\"}";
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "application/json");
	if (closing)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	return r;
}

/* In the MHD thread: each connection is watched (conns.c). */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *info;
	struct conns *c = cls;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		conns_close(c, *socket_context);
		*socket_context = NULL;
		return;
	}
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (info != NULL)
		*socket_context = conns_open(c, info->connect_fd);
}

struct http *
http_start(int fd, const struct config *cfg, struct queue *q,
    struct metrics *m, struct writer *w, char *err, size_t errlen)
{
	unsigned timeout_s = (cfg->timeout_ms + 999) / 1000;
	uint64_t deadline_ns;
	struct settings *set;
	struct http *h;
	int rc;

	if ((set = settings_new(cfg, NULL, err, errlen)) == NULL)
		return NULL;
	/* timeout is read at start only, as libmicrohttpd's idle timeout. */
	deadline_ns = 2 * (uint64_t)cfg->timeout_ms * 1000000;
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->received = received_response(false)) == NULL ||
	    (h->received_closing = received_response(true)) == NULL ||
	    (h->conns = conns_new(deadline_ns, cfg->max_connections,
	    m)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	h->fd = -1;			/* libmicrohttpd's until quiesced */
	h->queue = q;
	h->body_deadline_ns = deadline_ns;
	h->metrics = m;
	h->writer = w;
	h->id_base = now_wall_ms();
	atomic_init(&h->settings, set);
	h->mhd = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, h,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	    /*
	     * libmicrohttpd clears a connection's whole pool after every
	     * request: 16 KB (headers up to about 14 KB), not its default
	     * 32, halves that memset.
	     */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, h->conns,
	    MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
	    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
	    MHD_OPTION_UNESCAPE_CALLBACK, unescape_url, NULL,
	    MHD_OPTION_END);
	if (h->mhd == NULL) {
		snprintf(err, errlen, "cannot start the HTTP server "
		    "(libmicrohttpd refused the options)");
		goto fail;
	}
	if ((rc = conns_run(h->conns, h->mhd)) != 0)
		log_warnx("cannot start the thread that watches connections "
		    "(%s): no deadline for headers or a trailer",
		    strerror(-rc));
	return h;
fail:
	if (h != NULL && h->received != NULL)
		MHD_destroy_response(h->received);
	if (h != NULL && h->received_closing != NULL)
		MHD_destroy_response(h->received_closing);
	if (h != NULL)
		conns_free(h->conns);
	free(h);
	settings_free(set);
	return NULL;
}

int
http_reconfigure(struct http *h, const struct config *cfg, char *err,
    size_t errlen)
{
	struct settings *cur = atomic_load(&h->settings), *s;

	if ((s = settings_new(cfg, cur, err, errlen)) == NULL)
		return -EINVAL;
	snprintf(s->cfg.listen, sizeof(s->cfg.listen), "%s", cur->cfg.listen);
	atomic_store(&h->settings, s);
	return 0;
}

/*
 * libmicrohttpd's thread may still take the listener out of its epoll
 * set after MHD_quiesce_daemon() returns it, so it is closed only once
 * that thread has stopped (http_stop()); closed here, its number could
 * be reused first (a race TSan reports). Until then shutdown() refuses
 * new connections, unless the socket is systemd's: that one must keep
 * queueing them for the next start. A TCP listener drops its backlog
 * there; a unix one keeps it, so those connections are taken and closed
 * (reset, as close() would), not left waiting for the stop to end.
 */
void
http_quiesce(struct http *h, bool refuse)
{
	int c;

	atomic_store(&h->stopping, true);
	h->fd = MHD_quiesce_daemon(h->mhd);
	if (h->fd < 0 || !refuse)
		return;
	shutdown(h->fd, SHUT_RD);
	/* Non-blocking: EAGAIN when it is empty, EINVAL at once for TCP. */
	while ((c = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0 ||
	    errno == EINTR || errno == ECONNABORTED)
		if (c >= 0)
			close(c);
}

void
http_stop(struct http *h, unsigned timeout_ms)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	if (h == NULL)
		return;
	for (unsigned waited = 0; atomic_load(&h->in_flight) > 0 &&
	    waited < timeout_ms; waited += 10)
		nanosleep(&pause, NULL);
	/* The ticks go on: 128 events ready at once would stall the stop. */
	MHD_stop_daemon(h->mhd);
	conns_free(h->conns);
	if (h->fd >= 0)
		close(h->fd);
	MHD_destroy_response(h->received);
	MHD_destroy_response(h->received_closing);
	settings_free(atomic_load(&h->settings));
	free(h);
}

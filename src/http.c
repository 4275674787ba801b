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
 * swapped atomically; old snapshots are freed at stop.
 */

#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "config.h"
#include "event.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "store.h"
#include "ticket.h"
#include "writer.h"

#define MSG_MAX		256
#define RETRY_AFTER	"2"
#define FIRST_BODY_CAP	4096

struct settings {
	struct config	 cfg;
	struct settings	*older;
};

struct http {
	struct MHD_Daemon	*mhd;
	int			 fd;
	_Atomic(struct settings *) settings;
	struct queue		*queue;
	struct metrics		*metrics;
	struct writer		*writer;
	atomic_bool		 stopping;
	atomic_int		 in_flight;
	struct MHD_Response	*received;	/* the shared 200 */
};

/*
 * REQ_TOO_BIG: a streamed (chunked) body passed max_body. libmicrohttpd
 * 0.9.75 cannot queue a response before the body is read, so the rest is
 * discarded (not buffered) and the 413 sent at its end; a client that
 * sends more than TOO_BIG_SLACK beyond the cap has its connection closed.
 */
enum req_state { REQ_RECEIVING, REQ_TOO_BIG, REQ_HELD, REQ_ANSWERED };

#define TOO_BIG_SLACK	(256 * 1024)

struct request {
	struct http		*http;
	struct MHD_Connection	*conn;
	const struct settings	*set;
	enum req_state		 state;
	char			*body;
	size_t			 len;
	size_t			 cap;
	size_t			 discarded;	/* REQ_TOO_BIG */
	struct ticket		*ticket;
	int			 push_rc;
	char			 call_sid[80];
	char			 remote[64];
};

static void
json_escape(const char *s, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *s != '\0' && o + 7 < outlen; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

static void
client_address(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	snprintf(buf, len, "unknown");
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		    (socklen_t)len);
	else if (sa->sa_family == AF_UNIX)
		snprintf(buf, len, "unix");
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

/*
 * Record a refused webhook request: a warning in the log and a row in
 * the rejects table (written by the writer; dropped, and counted, when
 * its small queue budget is spent, never blocking this thread).
 */
static void
note_reject(struct http *h, const char *remote, unsigned status,
    const char *reason, const char *body, size_t len)
{
	struct reject *rj;
	struct job *job;

	log_warnx("refused request from %s: %u %s", remote, status, reason);
	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (rj = calloc(1, sizeof(*rj))) == NULL) {
		free(job);
		return;
	}
	job->reject = rj;
	format_utc_ms(now_wall_ms(), rj->time, sizeof(rj->time));
	snprintf(rj->remote_addr, sizeof(rj->remote_addr), "%s", remote);
	snprintf(rj->reason, sizeof(rj->reason), "%s", reason);
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

static enum MHD_Result
refuse(struct http *h, struct MHD_Connection *conn, const char *remote,
    unsigned status, const char *message, const char *body, size_t len)
{
	char addr[64];

	if (remote == NULL) {
		client_address(conn, addr, sizeof(addr));
		remote = addr;
	}
	note_reject(h, remote, status, message, body, len);
	return answer(h, conn, status, message,
	    status == MHD_HTTP_METHOD_NOT_ALLOWED ? MHD_HTTP_HEADER_ALLOW :
	    NULL, "POST");
}

static enum MHD_Result
serve_health(struct http *h, struct MHD_Connection *conn)
{
	char store[200], esc[400], json[512];
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
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t len;
	char *text;

	text = metrics_render(h->metrics, queue_pending(h->queue), &len);
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

static enum MHD_Result
serve_other(struct http *h, struct MHD_Connection *conn, const char *url,
    const char *method)
{
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
		if (!get)
			return answer(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			    "Method not allowed", MHD_HTTP_HEADER_ALLOW,
			    "GET, HEAD");
		return url[1] == 'h' ? serve_health(h, conn) :
		    serve_metrics(h, conn);
	}
	return refuse(h, conn, NULL, MHD_HTTP_NOT_FOUND, "Not found", NULL, 0);
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

/* Content-Length, or -1 when absent (chunked). */
static long long
content_length(struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);

	return v == NULL ? -1 : strtoll(v, NULL, 10);
}

static enum MHD_Result
begin_webhook(struct http *h, struct MHD_Connection *conn,
    const struct settings *set, void **con_cls)
{
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	long long clen = content_length(conn);
	struct request *req;

	if (ct != NULL && !json_content_type(ct))
		return refuse(h, conn, NULL, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		    "Content-Type must be application/json", NULL, 0);
	if (clen > (long long)set->cfg.max_body)
		return refuse(h, conn, NULL, MHD_HTTP_CONTENT_TOO_LARGE,
		    "body exceeds max_body", NULL, 0);
	if ((req = calloc(1, sizeof(*req))) == NULL)
		return MHD_NO;
	req->http = h;
	req->conn = conn;
	req->set = set;
	client_address(conn, req->remote, sizeof(req->remote));
	if (clen > 0) {
		req->cap = (size_t)clen;
		if ((req->body = malloc(req->cap)) == NULL) {
			free(req);
			return MHD_NO;
		}
	}
	atomic_fetch_add(&h->in_flight, 1);
	*con_cls = req;
	return MHD_YES;
}

static enum MHD_Result
begin_request(struct http *h, struct MHD_Connection *conn, const char *url,
    const char *method, void **con_cls)
{
	const struct settings *set = atomic_load(&h->settings);

	if (strcmp(url, set->cfg.path) != 0)
		return serve_other(h, conn, url, method);
	if (strcmp(method, "POST") != 0)
		return refuse(h, conn, NULL, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "Method not allowed", NULL, 0);
	return begin_webhook(h, conn, set, con_cls);
}

static enum MHD_Result
discard_body(struct request *req, size_t *size)
{
	req->discarded += *size;
	*size = 0;
	if (req->discarded > TOO_BIG_SLACK) {
		note_reject(req->http, req->remote, MHD_HTTP_CONTENT_TOO_LARGE,
		    "body exceeds max_body (connection closed)", req->body,
		    req->len);
		return MHD_NO;
	}
	return MHD_YES;
}

static enum MHD_Result
receive_body(struct request *req, const char *data, size_t *size)
{
	size_t max = req->set->cfg.max_body, need = req->len + *size;

	if (need > max || need < req->len) {
		req->state = REQ_TOO_BIG;
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

	ret = MHD_queue_response(req->conn, MHD_HTTP_OK, h->received);
	atomic_fetch_add_explicit(&h->metrics->responses[200], 1,
	    memory_order_relaxed);
	log_debug("stored callSid %s from %s", req->call_sid, req->remote);
	return ret;
}

static enum MHD_Result
answer_unqueued(struct request *req)
{
	const char *msg = req->push_rc == -EAGAIN ?
	    "queue full, retry later" : "shutting down, retry later";

	return refuse(req->http, req->conn, req->remote,
	    MHD_HTTP_SERVICE_UNAVAILABLE, msg, NULL, 0);
}

/* Called again after the writer resumed the held connection. */
static enum MHD_Result
answer_held(struct request *req)
{
	req->state = REQ_ANSWERED;
	switch (ticket_state(req->ticket)) {
	case TICKET_STORED:
		return answer_stored(req);
	case TICKET_TIMEOUT:
		return refuse(req->http, req->conn, req->remote,
		    MHD_HTTP_SERVICE_UNAVAILABLE,
		    "store busy: event queued but not yet committed, "
		    "retry later", NULL, 0);
	case TICKET_CANCELLED:
		return answer_unqueued(req);
	default:
		return refuse(req->http, req->conn, req->remote,
		    MHD_HTTP_SERVICE_UNAVAILABLE,
		    "event could not be stored, retry later", NULL, 0);
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
	job->queued_ns = now_mono_ns();
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
		req->state = REQ_ANSWERED;
		return answer_unqueued(req);
	}
	if (hold)
		return MHD_YES;
	req->state = REQ_ANSWERED;
	return answer_stored(req);
}

static enum MHD_Result
finish_body(struct request *req)
{
	struct http *h = req->http;
	char msg[MSG_MAX];
	struct event *ev;

	if (atomic_load(&h->stopping)) {
		req->state = REQ_ANSWERED;
		req->push_rc = -ESHUTDOWN;
		return answer_unqueued(req);
	}
	switch (event_parse(req->body, req->len, req->set->cfg.strict, &ev,
	    msg, sizeof(msg))) {
	case EVENT_OK:
		break;
	case EVENT_NO_MEMORY:
		return MHD_NO;
	default:
		req->state = REQ_ANSWERED;
		return refuse(h, req->conn, req->remote,
		    MHD_HTTP_BAD_REQUEST, msg, req->body, req->len);
	}
	free(req->body);
	req->body = NULL;
	if (ev->type_mismatches > 0)
		atomic_fetch_add(&h->metrics->type_mismatches,
		    ev->type_mismatches);
	snprintf(req->call_sid, sizeof(req->call_sid), "%s", ev->call_sid);
	snprintf(ev->remote_addr, sizeof(ev->remote_addr), "%s", req->remote);
	format_utc_ms(now_wall_ms(), ev->received_at, sizeof(ev->received_at));
	return enqueue(req, ev);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **con_cls)
{
	struct request *req = *con_cls;

	(void)version;
	if (req == NULL)
		return begin_request(cls, conn, url, method, con_cls);
	switch (req->state) {
	case REQ_HELD:
		return answer_held(req);
	case REQ_ANSWERED:
		*upload_size = 0;	/* discard the rest of a refused body */
		return MHD_YES;
	case REQ_TOO_BIG:
		if (*upload_size > 0)
			return discard_body(req, upload_size);
		req->state = REQ_ANSWERED;
		return refuse(req->http, conn, req->remote,
		    MHD_HTTP_CONTENT_TOO_LARGE, "body exceeds max_body",
		    req->body, req->len);
	default:
		break;
	}
	if (*upload_size > 0)
		return receive_body(req, upload_data, upload_size);
	return finish_body(req);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct request *req = *con_cls;

	(void)conn;
	if (req == NULL)
		return;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->call_sid[0])
		log_info("connection for callSid %s closed before its answer "
		    "was sent (the event is kept)", req->call_sid);
	ticket_unref(req->ticket);
	free(req->body);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&h->in_flight, 1);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_debug("libmicrohttpd: %s", line);
}

static struct settings *
settings_new(const struct config *cfg, struct settings *older)
{
	struct settings *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->cfg = *cfg;
	s->older = older;
	return s;
}

static struct MHD_Response *
received_response(void)
{
	static const char body[] =
	    "{\"status\":\"success\",\"message\":\"Webhook received\"}";
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
	    MHD_RESPMEM_PERSISTENT);
	if (r != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		    "application/json");
	return r;
}

struct http *
http_start(int fd, const struct config *cfg, struct queue *q,
    struct metrics *m, struct writer *w, char *err, size_t errlen)
{
	unsigned timeout_s = (cfg->timeout_ms + 999) / 1000;
	struct http *h;

	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->received = received_response()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	h->fd = fd;
	h->queue = q;
	h->metrics = m;
	h->writer = w;
	atomic_init(&h->settings, settings_new(cfg, NULL));
	if (atomic_load(&h->settings) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	h->mhd = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, h,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	    MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
	    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_END);
	if (h->mhd == NULL) {
		snprintf(err, errlen, "cannot start the HTTP server "
		    "(libmicrohttpd refused the options)");
		goto fail;
	}
	return h;
fail:
	if (h != NULL) {
		if (h->received != NULL)
			MHD_destroy_response(h->received);
		free(atomic_load(&h->settings));
		free(h);
	}
	return NULL;
}

void
http_reconfigure(struct http *h, const struct config *cfg)
{
	struct settings *cur = atomic_load(&h->settings), *s;

	if ((s = settings_new(cfg, cur)) == NULL) {
		log_warnx("reload: out of memory, keeping the old settings");
		return;
	}
	snprintf(s->cfg.listen, sizeof(s->cfg.listen), "%s", cur->cfg.listen);
	atomic_store(&h->settings, s);
}

void
http_quiesce(struct http *h)
{
	int fd;

	atomic_store(&h->stopping, true);
	if ((fd = MHD_quiesce_daemon(h->mhd)) >= 0)
		close(fd);
	h->fd = -1;
}

void
http_stop(struct http *h, unsigned timeout_ms)
{
	struct settings *s, *older;
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	if (h == NULL)
		return;
	for (unsigned waited = 0; atomic_load(&h->in_flight) > 0 &&
	    waited < timeout_ms; waited += 10)
		nanosleep(&pause, NULL);
	MHD_stop_daemon(h->mhd);
	if (h->fd >= 0)
		close(h->fd);
	MHD_destroy_response(h->received);
	for (s = atomic_load(&h->settings); s != NULL; s = older) {
		older = s->older;
		free(s);
	}
	free(h);
}

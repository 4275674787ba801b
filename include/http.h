#ifndef CALLHOOK_HTTP_H
#define CALLHOOK_HTTP_H

/*
 * The HTTP side: libmicrohttpd on epoll, request limits, routing, and the
 * webhook handler that validates a body, queues it and answers (at once in
 * ack = enqueue mode, after the commit in ack = commit mode, holding the
 * connection suspended, not a thread).
 */

#include <stdbool.h>
#include <stddef.h>

struct config;
struct metrics;
struct queue;
struct writer;
struct http;

/*
 * Start serving on the listening socket fd (taken over: closed by
 * http_stop). cfg is copied. queue, metrics and writer must outlive the
 * server. Returns NULL with err filled on failure.
 */
struct http *http_start(int fd, const struct config *cfg, struct queue *q,
	    struct metrics *m, struct writer *w, char *err, size_t errlen);

/*
 * Apply a reloaded configuration to the requests that start from now on:
 * [auth] (token, hmac_secret, allow, trusted_proxies), path, max_body
 * (and the memory budget for bodies that follows it), ack and strict.
 * listen, timeout and max_connections, which libmicrohttpd took at
 * start, stay as they were. Returns 0, or -EINVAL with err filled (an
 * unreadable token file, no memory) and the old settings still in force.
 */
int	http_reconfigure(struct http *h, const struct config *cfg, char *err,
	    size_t errlen);

/*
 * Stop accepting connections, and with refuse (a socket of our own, not
 * systemd's) refuse new ones; requests on open connections are answered
 * 503 from now on. Held connections keep waiting for the writer.
 */
void	http_quiesce(struct http *h, bool refuse);

/*
 * Wait up to timeout_ms for every request in flight to be answered, then
 * stop the server and free h. NULL is a no-op.
 */
void	http_stop(struct http *h, unsigned timeout_ms);

#endif

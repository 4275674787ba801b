#ifndef CALLHOOK_TESTUTIL_H
#define CALLHOOK_TESTUTIL_H

/*
 * Helpers for end-to-end tests: start the real callhookd binary on port 0
 * with a temporary database, and talk raw HTTP/1.1 to it over loopback.
 */

#include <stddef.h>
#include <sys/types.h>

struct daemon_proc {
	pid_t	pid;
	int	port;
	char	dir[256];	/* temp dir: calls.db, callhookd.ini, log */
	char	db[300];
	char	log[300];
	char	ini[300];
};

struct reply {
	int	 status;
	char	 headers[4096];
	char	*body;		/* NUL-terminated, malloc'd */
	size_t	 len;
};

/* A fresh temp dir in d->dir (and paths in it). */
void	tu_tmpdir(struct daemon_proc *d);

/*
 * Start build/callhookd (or $CALLHOOKD) with --listen 127.0.0.1:0,
 * --database d->db, and -c d->ini when ini_text is not NULL, plus extra
 * (NULL-terminated, may be NULL). Waits for "listening on" in the log.
 * Returns 0, or -1 when it did not come up (its log is printed).
 */
int	tu_start(struct daemon_proc *d, const char *ini_text,
	    const char *const *extra);
/* Send sig and wait for exit; returns the exit status, or -1. */
int	tu_stop(struct daemon_proc *d, int sig);
/* Kill if running and remove the temp dir. */
void	tu_cleanup(struct daemon_proc *d);

/* Send raw bytes, read the reply until EOF. 0 or -1. */
int	tu_raw(int port, const char *req, size_t len, struct reply *r);
/* POST body to path with the given Content-Type (NULL: none). */
int	tu_post(int port, const char *path, const char *ctype,
	    const char *body, size_t len, struct reply *r);
int	tu_get(int port, const char *path, struct reply *r);
void	tu_reply_free(struct reply *r);
/* Case-insensitive header lookup into buf; 0 or -1. */
int	tu_header(const struct reply *r, const char *name, char *buf,
	    size_t len);

/* Read a whole file (NUL-terminated); NULL on error. */
char	*tu_read_file(const char *path, size_t *len);
/* A fixture from $FIXTURES (default tests/fixtures). */
char	*tu_fixture(const char *name, size_t *len);
/* Replace the first occurrence of from with to; a new string. */
char	*tu_replace(const char *s, const char *from, const char *to);
/* Run a command through sh; returns its exit status. */
int	tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A kept-alive HTTP/1.1 connection, for load and fault tests. Every call
 * is bounded by the timeout given to tu_conn_open (send and receive).
 */
struct tu_conn {
	int	fd;		/* -1 when closed */
	int	port;
	int	timeout_ms;
};

/* A TCP connection to 127.0.0.1:port, or -1. */
int	tu_connect(int port);
/* 0, or -1 (c->fd is then -1). */
int	tu_conn_open(struct tu_conn *c, int port, int timeout_ms);
void	tu_conn_close(struct tu_conn *c);
/*
 * POST body as application/json on c and read the one answer (framed by
 * its Content-Length). Returns 0 with r filled, or -1 when the connection
 * failed; it is then closed, and whether the server got the request is
 * unknown. A "Connection: close" answer closes c after it is read.
 */
int	tu_conn_post(struct tu_conn *c, const char *path, const char *body,
	    size_t len, struct reply *r);
/*
 * tu_raw without shutdown(SHUT_WR) after the request unless half_close,
 * and with every read bounded by timeout_ms. libmicrohttpd closes a held
 * (ack = commit) connection whose client half-closed without answering
 * it, so a client that wants its answer must not half-close.
 */
int	tu_raw_timeout(int port, const char *req, size_t len, int half_close,
	    int timeout_ms, struct reply *r);
/* POST as application/json on a connection of its own, not half-closed. */
int	tu_post_conn(int port, const char *path, const char *body,
	    size_t len, struct reply *r);
/* Drop interim 1xx answers (100 Continue) that tu_raw read first. */
void	tu_reply_skip_interim(struct reply *r);
/* Monotonic milliseconds. */
long long tu_now_ms(void);
void	tu_sleep_ms(int ms);
/*
 * Wait until the daemon's /metrics shows no row waiting for the full-text
 * index (it indexes once no event has come for a moment): 0, or -1 after
 * timeout_ms.
 */
int	tu_wait_indexed(int port, int timeout_ms);
/* A counter's or gauge's value in /metrics, or -1. */
long long tu_metric(int port, const char *name);

#endif

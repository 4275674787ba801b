/*
 * End-to-end test helpers; see testutil.h.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

void
tu_tmpdir(struct daemon_proc *d)
{
	memset(d, 0, sizeof(*d));
	d->pid = -1;
	snprintf(d->dir, sizeof(d->dir), "/tmp/callhookd-test-XXXXXX");
	if (mkdtemp(d->dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(d->db, sizeof(d->db), "%s/calls.db", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/log", d->dir);
	snprintf(d->ini, sizeof(d->ini), "%s/callhookd.ini", d->dir);
}

static int
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL)
		return -1;
	fputs(text, fp);
	return fclose(fp);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int
find_port(const char *log)
{
	static const char mark[] = "listening on 127.0.0.1:";
	const char *p = strstr(log, mark);

	return p == NULL ? 0 : atoi(p + sizeof(mark) - 1);
}

/* The log is appended to across restarts: look past offset only. */
static int
wait_listening(struct daemon_proc *d, size_t offset)
{
	for (int i = 0; i < 1000; i++) {
		size_t len = 0;
		char *log = tu_read_file(d->log, &len);
		int status;

		if (log != NULL && len > offset)
			d->port = find_port(log + offset);
		free(log);
		if (d->port > 0)
			return 0;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = -1;
			break;
		}
		sleep_ms(10);
	}
	tu_sh("cat %s >&2", d->log);
	return -1;
}

int
tu_start(struct daemon_proc *d, const char *ini_text,
    const char *const *extra)
{
	const char *bin = getenv("CALLHOOKD");
	const char *argv[32];
	struct stat st;
	size_t offset = stat(d->log, &st) == 0 ? (size_t)st.st_size : 0;
	int n = 0, fd;

	if (bin == NULL)
		bin = "build/callhookd";
	argv[n++] = bin;
	if (ini_text != NULL) {
		if (write_text(d->ini, ini_text) != 0)
			return -1;
		argv[n++] = "-c";
		argv[n++] = d->ini;
	}
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--database";
	argv[n++] = d->db;
	for (; extra != NULL && *extra != NULL && n < 30; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	d->port = 0;
	if ((d->pid = fork()) == 0) {
		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 2);
		dup2(fd, 1);
		execv(bin, (char *const *)argv);
		perror(bin);
		_exit(127);
	}
	return wait_listening(d, offset);
}

int
tu_stop(struct daemon_proc *d, int sig)
{
	int status;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, sig);
	if (waitpid(d->pid, &status, 0) != d->pid)
		return -1;
	d->pid = -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

void
tu_cleanup(struct daemon_proc *d)
{
	if (d->pid > 0)
		tu_stop(d, SIGKILL);
	if (d->dir[0] != '\0')
		tu_sh("rm -rf '%s'", d->dir);
}

static int
connect_port(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_port = htons((unsigned short)port) };
	int s;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

static int
send_all(int s, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(s, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
parse_reply(char *raw, size_t len, struct reply *r)
{
	char *end = strstr(raw, "\r\n\r\n");
	size_t hlen;

	if (end == NULL || sscanf(raw, "HTTP/1.%*d %d", &r->status) != 1)
		return -1;
	hlen = (size_t)(end - raw) + 2;
	if (hlen >= sizeof(r->headers))
		hlen = sizeof(r->headers) - 1;
	memcpy(r->headers, raw, hlen);
	r->headers[hlen] = '\0';
	r->len = len - (size_t)(end + 4 - raw);
	r->body = malloc(r->len + 1);
	memcpy(r->body, end + 4, r->len);
	r->body[r->len] = '\0';
	return 0;
}

/* Whether the request's head says "Connection: close" (req may lack a NUL). */
static bool
asks_close(const char *req, size_t len)
{
	char head[4096];

	if (len >= sizeof(head))
		len = sizeof(head) - 1;
	memcpy(head, req, len);
	head[len] = '\0';
	return strcasestr(head, "Connection: close") != NULL;
}

int
tu_raw(int port, const char *req, size_t len, struct reply *r)
{
	/* 0: no timeout. */
	return tu_raw_timeout(port, req, len, !asks_close(req, len), 0, r);
}

int
tu_post(int port, const char *path, const char *ctype, const char *body,
    size_t len, struct reply *r)
{
	char head[1024];
	char *req;
	int n, rc;

	n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nConnection: close\r\n%s%s%s"
	    "Content-Length: %zu\r\n\r\n", path,
	    ctype ? "Content-Type: " : "", ctype ? ctype : "",
	    ctype ? "\r\n" : "", len);
	req = malloc((size_t)n + len);
	memcpy(req, head, (size_t)n);
	memcpy(req + n, body, len);
	rc = tu_raw(port, req, (size_t)n + len, r);
	free(req);
	return rc;
}

int
tu_get(int port, const char *path, struct reply *r)
{
	char req[1024];
	int n;

	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "Connection: close\r\n\r\n", path);
	return tu_raw(port, req, (size_t)n, r);
}

void
tu_reply_free(struct reply *r)
{
	free(r->body);
	r->body = NULL;
}

int
tu_header(const struct reply *r, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name);

	for (const char *p = r->headers; (p = strstr(p, "\r\n")) != NULL;) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			snprintf(buf, len, "%.*s", (int)(e ? e - v :
			    (long)strlen(v)), v);
			return 0;
		}
	}
	return -1;
}

char *
tu_read_file(const char *path, size_t *lenp)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long len;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)len + 1);
	if (fread(buf, 1, (size_t)len, fp) != (size_t)len) {
		free(buf);
		fclose(fp);
		return NULL;
	}
	buf[len] = '\0';
	fclose(fp);
	if (lenp != NULL)
		*lenp = (size_t)len;
	return buf;
}

char *
tu_fixture(const char *name, size_t *len)
{
	const char *dir = getenv("FIXTURES");
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/fixtures",
	    name);
	return tu_read_file(path, len);
}

char *
tu_replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	size_t fl = strlen(from), tl = strlen(to), sl = strlen(s);
	char *out;

	if (p == NULL)
		return strdup(s);
	out = malloc(sl - fl + tl + 1);
	memcpy(out, s, (size_t)(p - s));
	memcpy(out + (p - s), to, tl);
	strcpy(out + (p - s) + tl, p + fl);
	return out;
}

int
tu_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
tu_connect(int port)
{
	return connect_port(port);
}

long long
tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tu_sleep_ms(int ms)
{
	sleep_ms(ms);
}

int
tu_conn_open(struct tu_conn *c, int port, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int one = 1;

	c->port = port;
	c->timeout_ms = timeout_ms;
	if ((c->fd = connect_port(port)) < 0)
		return -1;
	/* Head and body are sent apart: no Nagle delay between them. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

void
tu_conn_close(struct tu_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Read until want bytes are in buf, growing it; 0 or -1. */
static int
read_more(int fd, char **buf, size_t *cap, size_t *got, size_t want)
{
	while (*got < want) {
		ssize_t n;

		if (want + 1 > *cap) {
			*cap = want + 1;
			*buf = realloc(*buf, *cap);
		}
		n = recv(fd, *buf + *got, want - *got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		*got += (size_t)n;
	}
	return 0;
}

int
tu_conn_post(struct tu_conn *c, const char *path, const char *body,
    size_t len, struct reply *r)
{
	char head[1024], val[64], *buf = NULL, *end = NULL;
	size_t cap = 0, got = 0, hlen, blen;
	int n;

	memset(r, 0, sizeof(*r));
	if (c->fd < 0)
		return -1;
	n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n", path, len);
	if (send_all(c->fd, head, (size_t)n) != 0 ||
	    send_all(c->fd, body, len) != 0)
		goto fail;
	/*
	 * One request is outstanding, so whatever arrives belongs to its
	 * answer: read what is there until the headers are complete.
	 */
	cap = 4096;
	buf = malloc(cap + 1);
	while (end == NULL) {
		ssize_t k;

		if (got >= cap)
			goto fail;	/* headers over 4 KB: not ours */
		k = recv(c->fd, buf + got, cap - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto fail;
		got += (size_t)k;
		buf[got] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	hlen = (size_t)(end - buf) + 4;
	if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
		goto fail;
	snprintf(r->headers, sizeof(r->headers), "%.*s", (int)(hlen - 2), buf);
	blen = tu_header(r, "Content-Length", val, sizeof(val)) == 0 ?
	    (size_t)strtoull(val, NULL, 10) : 0;
	if (read_more(c->fd, &buf, &cap, &got, hlen + blen) != 0)
		goto fail;
	r->len = blen;
	r->body = malloc(blen + 1);
	memcpy(r->body, buf + hlen, blen);
	r->body[blen] = '\0';
	free(buf);
	if (tu_header(r, "Connection", val, sizeof(val)) == 0 &&
	    strcasecmp(val, "close") == 0)
		tu_conn_close(c);
	return 0;
fail:
	free(buf);
	r->status = 0;
	tu_conn_close(c);
	return -1;
}

void
tu_reply_skip_interim(struct reply *r)
{
	while (r->status >= 100 && r->status < 200 && r->body != NULL) {
		struct reply next;
		char *raw = r->body;

		memset(&next, 0, sizeof(next));
		if (parse_reply(raw, r->len, &next) != 0)
			break;
		free(raw);
		*r = next;
	}
}

/*
 * Send req and read the reply until EOF. The server may answer early
 * (413) and close: keep reading. Half-close only when asked:
 * libmicrohttpd drops the answer of a request held in ack = commit mode
 * when the client half-closes, so callers do it only when the server
 * would otherwise keep the connection open.
 */
int
tu_raw_timeout(int port, const char *req, size_t len, int half_close,
    int timeout_ms, struct reply *r)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	size_t cap = 65536, got = 0;
	char *buf = malloc(cap);
	int s, rc = -1;

	memset(r, 0, sizeof(*r));
	if ((s = connect_port(port)) < 0)
		goto out;
	if (timeout_ms > 0) {
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	send_all(s, req, len);
	if (half_close)
		shutdown(s, SHUT_WR);
	for (;;) {
		ssize_t n;

		if (got + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		n = recv(s, buf + got, cap - got - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	rc = parse_reply(buf, got, r);
out:
	if (s >= 0)
		close(s);
	free(buf);
	return rc;
}

int
tu_post_conn(int port, const char *path, const char *body, size_t len,
    struct reply *r)
{
	struct tu_conn c;
	int rc;

	memset(r, 0, sizeof(*r));
	if (tu_conn_open(&c, port, 15000) != 0)
		return -1;
	rc = tu_conn_post(&c, path, body, len, r);
	tu_conn_close(&c);
	return rc;
}

int
tu_wait_indexed(int port, int timeout_ms)
{
	struct reply r;
	bool done;

	for (int waited = 0; waited <= timeout_ms; waited += 5) {
		if (tu_get(port, "/metrics", &r) != 0)
			return -1;
		done = r.status == 200 &&
		    strstr(r.body, "\ncallhookd_fts_backlog 0\n") != NULL;
		tu_reply_free(&r);
		if (done)
			return 0;
		tu_sleep_ms(5);
	}
	return -1;
}

long long
tu_metric(int port, const char *name)
{
	struct reply r;
	char want[128];
	const char *at;
	long long v = -1;

	if (tu_get(port, "/metrics", &r) != 0)
		return -1;
	snprintf(want, sizeof(want), "\n%s ", name);
	if (r.status == 200 && (at = strstr(r.body, want)) != NULL)
		v = atoll(at + strlen(want));
	tu_reply_free(&r);
	return v;
}

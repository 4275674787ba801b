/*
 * Listening sockets. We bind the socket ourselves and hand it to
 * libmicrohttpd, so the same code serves TCP, unix sockets (nginx on the
 * same host) and sockets passed by systemd.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "listen.h"

int
listen_split(const char *addr, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	const char *colon, *h = addr;
	size_t hl;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = addr + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL)
			return -EINVAL;
		hl = (size_t)(colon - addr);
	}
	if (hl == 0 || hl >= hostlen || strlen(colon + 1) >= portlen ||
	    colon[1] == '\0')
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

static void
describe(int fd, char *desc, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(desc, len, "fd %d", fd);
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(desc, len, "%s:%u", host, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(desc, len, "[%s]:%u", host, port);
	} else if (ss.ss_family == AF_UNIX) {
		snprintf(desc, len, "unix:%s",
		    ((struct sockaddr_un *)&ss)->sun_path);
	} else {
		snprintf(desc, len, "fd %d", fd);
	}
}

bool
listen_is_local(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const struct in6_addr *a6;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return false;
	switch (ss.ss_family) {
	case AF_UNIX:
		return true;
	case AF_INET:
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >>
		    24) == 127;
	case AF_INET6:
		a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a6) ||
		    (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	default:
		return false;
	}
}

/*
 * A socket file at the path is taken over only when nobody listens on
 * it: a stale one from an earlier run. 0, or -EADDRINUSE when a live
 * process answers (or has its backlog full). Anything else at the path
 * is left for bind() to refuse.
 */
static int
claim_unix_path(const struct sockaddr_un *sun)
{
	struct stat st;
	int s, rc, saved;

	if (lstat(sun->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		return -errno;
	rc = connect(s, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(s);
	if (rc == 0 || saved == EAGAIN)
		return -EADDRINUSE;
	if (saved == ECONNREFUSED)
		unlink(sun->sun_path);
	return 0;
}

static int
open_unix(const char *path, int *fd, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int s = -1, rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	if ((rc = claim_unix_path(&sun)) != 0) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", path,
		    rc == -EADDRINUSE ? "another process is listening on it" :
		    strerror(-rc));
		return rc;
	}
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		goto fail;
	if (bind(s, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(s, SOMAXCONN) != 0)
		goto fail;
	*fd = s;
	return 0;
fail:
	rc = -errno;
	snprintf(err, errlen, "cannot listen on unix:%s: %s", path,
	    strerror(-rc));
	if (s >= 0)
		close(s);
	return rc;
}

/* "HOST:PORT" or "[V6]:PORT" to addresses to bind: 0 or -EINVAL. */
static int
resolve_tcp(const char *addr, struct addrinfo **res, char *err,
    size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	char host[256], port[16];
	int rc;

	*res = NULL;
	if (listen_split(addr, host, sizeof(host), port, sizeof(port)) != 0) {
		snprintf(err, errlen, "bad listen address \"%s\": expected "
		    "HOST:PORT, [V6]:PORT or unix:/path", addr);
		return -EINVAL;
	}
	if ((rc = getaddrinfo(host, port, &hints, res)) != 0) {
		snprintf(err, errlen, "cannot resolve listen address \"%s\": "
		    "%s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	return 0;
}

/* What can be told of a unix socket's path without making the socket. */
static int
check_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	char dir[sizeof(sun.sun_path)], *slash;
	struct stat sb;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	/* bind() would refuse a directory's path, or a file not a socket. */
	if (path[0] == '\0' || path[strlen(path) - 1] == '/' ||
	    (lstat(path, &sb) == 0 && !S_ISSOCK(sb.st_mode))) {
		snprintf(err, errlen, "cannot listen on unix:%s: not a socket's "
		    "path (a directory, or a file that is not a socket)", path);
		return -EEXIST;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		slash[slash == dir] = '\0';	/* "/x.sock": "/" */
	if (stat(dir, &sb) != 0) {
		int saved = errno;

		snprintf(err, errlen, "cannot listen on unix:%s: %s: %s", path,
		    dir, strerror(saved));
		return -saved;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s is not a "
		    "directory", path, dir);
		return -ENOTDIR;
	}
	return 0;
}

int
listen_check(const char *addr, char *err, size_t errlen)
{
	struct addrinfo *res;
	int rc;

	/* listen_open() takes what systemd passed, and addr is unused. */
	if (sd_listen_fds(0) > 0)
		return 0;
	if (strncmp(addr, "unix:", 5) == 0)
		return check_unix(addr + 5, err, errlen);
	if ((rc = resolve_tcp(addr, &res, err, errlen)) == 0)
		freeaddrinfo(res);
	return rc;
}

static int
open_tcp(const char *addr, int *fd, char *err, size_t errlen)
{
	struct addrinfo *res;
	int s = -1, on = 1, rc, saved;

	if ((rc = resolve_tcp(addr, &res, err, errlen)) != 0)
		return rc;
	s = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (s < 0)
		goto fail;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(s, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(s, SOMAXCONN) != 0)
		goto fail;
	freeaddrinfo(res);
	*fd = s;
	return 0;
fail:
	saved = errno;
	snprintf(err, errlen, "cannot listen on %s: %s", addr,
	    strerror(saved));
	if (s >= 0)
		close(s);
	freeaddrinfo(res);
	return -saved;
}

int
listen_open(const char *addr, int *fd, bool *passed, char *desc,
    size_t desclen, char *err, size_t errlen)
{
	int n, rc;

	n = sd_listen_fds(1);
	*passed = n == 1;
	if (n > 1) {
		snprintf(err, errlen, "systemd passed %d sockets, expected 1",
		    n);
		return -EINVAL;
	}
	if (n == 1) {
		*fd = SD_LISTEN_FDS_START;
		fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) | O_NONBLOCK);
		describe(*fd, desc, desclen);
		return 0;
	}
	if (strncmp(addr, "unix:", 5) == 0)
		rc = open_unix(addr + 5, fd, err, errlen);
	else
		rc = open_tcp(addr, fd, err, errlen);
	if (rc == 0)
		describe(*fd, desc, desclen);
	return rc;
}

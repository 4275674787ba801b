#ifndef CALLHOOK_LISTEN_H
#define CALLHOOK_LISTEN_H

/*
 * The listening socket: from systemd (socket activation) when it passed
 * one, else bound here from "HOST:PORT", "[V6]:PORT" or "unix:/path".
 */

#include <stdbool.h>
#include <stddef.h>

/*
 * Open the listener. On success returns 0, *fd is a listening socket in
 * non-blocking mode, *passed says whether systemd passed it (and keeps
 * it), and desc describes where it listens, with the port the kernel
 * chose when the configured port is 0 ("127.0.0.1:43127"). On failure
 * returns a negative errno and err says why.
 */
int	listen_open(const char *addr, int *fd, bool *passed, char *desc,
	    size_t desclen, char *err, size_t errlen);

/*
 * What can be checked without binding, before anything else is made:
 * that a TCP address resolves, that a unix socket's path could be bound
 * (nothing but a socket there, its directory exists). 0, or a negative
 * errno with err as listen_open() would say it; 0 also when systemd
 * passed a socket, which listen_open() takes instead.
 */
int	listen_check(const char *addr, char *err, size_t errlen);

/*
 * True when only this host can connect to the listening socket fd: a
 * unix socket, or a loopback address (127.0.0.0/8, ::1, or 127.x mapped
 * into IPv6).
 */
bool	listen_is_local(int fd);

/* Split "HOST:PORT" / "[V6]:PORT" into host and port. 0 or -EINVAL. */
int	listen_split(const char *addr, char *host, size_t hostlen,
	    char *port, size_t portlen);

#endif

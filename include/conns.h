#ifndef CALLHOOK_CONNS_H
#define CALLHOOK_CONNS_H

/*
 * libmicrohttpd's open connections, watched for what it does not do
 * itself (see conns.c):
 *  - its idle timeout starts again at every byte, so headers, or a body
 *    and its trailer, sent a byte at a time hold a connection for ever:
 *    a connection that has not delivered a whole request within the
 *    deadline, counted from when it opened or its last request ended, is
 *    shut down;
 *  - 0.9.75 can stall with 128 events ready at once.
 *
 * conns_open(), conns_close() and the conn_* marks are for libmicro-
 * httpd's thread only; a thread of conns' own sweeps and ticks.
 */

#include <stdbool.h>
#include <stdint.h>

struct MHD_Daemon;
struct metrics;
struct conns;
struct conn;

/*
 * deadline_ns: for headers, and for a body with its trailer. max: the
 * connections libmicrohttpd keeps open at most; reaching it is logged.
 */
struct conns	*conns_new(uint64_t deadline_ns, unsigned max,
		    struct metrics *m);
/* Start the thread; best effort. 0 or -errno. */
int		 conns_run(struct conns *c, struct MHD_Daemon *mhd);
/*
 * Stop the thread and free: after MHD_stop_daemon(), which closes every
 * connection, with the ticks going on until then.
 */
void		 conns_free(struct conns *c);

/* How many are open. */
unsigned	 conns_count(struct conns *c);
/* A connection opened on fd: NULL, unwatched, when out of memory. */
struct conn	*conns_open(struct conns *c, int fd);
void		 conns_close(struct conns *c, struct conn *cn);

/*
 * A request's headers are in, its body and trailer are, it ended. Each
 * is false when the deadline had passed and the connection is being
 * shut down; NULL is never late.
 */
bool		 conn_headers_in(struct conn *cn);
bool		 conn_request_in(struct conn *cn);
void		 conn_request_done(struct conn *cn);
/* True when the deadline closed cn. */
bool		 conn_cut(const struct conn *cn);
/*
 * cn's request was refused as late by its reader, at a byte that came
 * past the deadline before the sweep did: it is marked and counted as
 * cut, once, as the sweep would have (libmicrohttpd then closes it).
 */
void		 conns_cut_late(struct conns *c, struct conn *cn);

#endif

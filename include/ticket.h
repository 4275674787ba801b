#ifndef CALLHOOK_TICKET_H
#define CALLHOOK_TICKET_H

/*
 * A ticket links a connection held in ack = commit mode to its queued
 * event. Two parties hold a reference: the connection and the job. The
 * first to resolve it (the writer after the commit, or the writer's
 * deadline check) wins and calls wake(), which resumes the connection;
 * later resolutions are ignored, so the connection is resumed once.
 */

#include <stdbool.h>

enum ticket_state {
	TICKET_WAITING,
	TICKET_STORED,		/* committed: answer 200 */
	TICKET_TIMEOUT,		/* not committed in time: 503, still queued */
	TICKET_FAILED,		/* can never be stored: 503 */
	TICKET_CANCELLED,	/* shutting down before it was queued */
};

struct ticket;

/* A new ticket with two references. NULL when out of memory. */
struct ticket *ticket_new(void (*wake)(void *), void *arg);

/*
 * Move a waiting ticket to state and call wake(arg). Returns true when
 * this call did it, false when it was already resolved.
 */
bool	ticket_resolve(struct ticket *t, enum ticket_state state);
enum ticket_state ticket_state(struct ticket *t);

/* Drop a reference; the last one frees. NULL is a no-op. */
void	ticket_unref(struct ticket *t);

#endif

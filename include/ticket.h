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
/* The state; inside a batch of resolutions, once the batch has ended. */
enum ticket_state ticket_state(struct ticket *t);

/*
 * A batch of resolutions, made by one thread at a time. A thread that
 * calls ticket_state() meanwhile waits for ticket_batch_end(). So the
 * thread whose connections are resumed, woken by the first wake(), gives
 * the core straight back instead of taking it after each one: on a
 * shared core, a batch of 32 wakes costs the resolving thread a switch
 * or two, not one per ticket.
 */
void	ticket_batch_begin(void);
void	ticket_batch_end(void);

/* Drop a reference; the last one frees. NULL is a no-op. */
void	ticket_unref(struct ticket *t);

#endif

#ifndef CALLHOOK_QUEUE_H
#define CALLHOOK_QUEUE_H

/*
 * The bounded hand-off from the HTTP thread(s) to the writer thread, and
 * the only structure they share. The lock is held for pointer moves only.
 *
 * Capacity counts events that are not yet committed: those in the queue
 * and those the writer has taken but not yet committed (it calls
 * queue_done() after the commit). So a stuck store fills the queue and
 * the receiver answers 503 instead of growing without bound. The memory
 * those events hold has a budget too: 10,000 bodies of 4 MB would
 * otherwise be 40 GB.
 * Rejects (diagnostics) have a small budget of their own and never take
 * room from events.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct event;
struct ticket;

struct job {
	struct job	*next;
	struct event	*event;		/* owned; or NULL for a reject */
	struct reject	*reject;	/* owned; or NULL for an event */
	struct ticket	*ticket;	/* a reference, or NULL (no one waits) */
	size_t		 bytes;		/* memory the event holds, charged to
					   the queue's budget */
	uint64_t	 queued_ns;	/* monotonic time of the push: the
					   order of a call's deliveries */
	uint64_t	 started_ns;	/* of its request (its headers read):
					   a held event's 503 is due
					   ack_timeout_ms after (writer.h) */
};

struct queue;

struct queue *queue_new(size_t capacity, size_t reject_capacity);
/* Frees the queue and every job still in it. NULL is a no-op. */
void	queue_free(struct queue *q);

/*
 * Append job. On 0 the queue owns job. On failure the caller still owns
 * it: -EAGAIN when full, -ESHUTDOWN after queue_close().
 */
int	queue_push(struct queue *q, struct job *job);

/*
 * Take every waiting job, oldest first, as a list linked by ->next. Waits
 * up to timeout_ms (-1: forever) while the queue is empty and open.
 * Returns NULL on timeout, or when closed and empty. *n_events is set to
 * the number of events (not rejects) in the list.
 */
struct job *queue_pop_all(struct queue *q, int timeout_ms, size_t *n_events);

/*
 * The writer committed (or gave up on) n_events events and n_rejects
 * rejects taken by queue_pop_all, the events holding bytes (the sum of
 * their jobs' bytes). Until then they count against the queue's limits:
 * a writer that keeps a failing batch keeps its budget used up.
 */
void	queue_done(struct queue *q, size_t n_events, size_t n_rejects,
	    size_t bytes);

/* True when an event pushed now would be refused with -EAGAIN. */
bool	queue_full(struct queue *q);

/* Events pushed and not yet done, and (at the same time) their bytes. */
size_t	queue_pending(struct queue *q);
void	queue_usage(struct queue *q, size_t *pending, size_t *bytes);
size_t	queue_capacity(struct queue *q);
void	queue_set_capacity(struct queue *q, size_t capacity);
/*
 * Refuse events once those pending hold this many bytes (0: no limit).
 * One event is always let in, however big, so a lone body that max_body
 * allows is never refused for memory.
 */
void	queue_set_memory(struct queue *q, size_t bytes);

/* Refuse further pushes and wake the writer so it can drain and stop. */
void	queue_close(struct queue *q);

/* Free one job and what it owns (dropping its ticket reference). */
void	job_free(struct job *job);

#endif

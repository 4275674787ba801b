/*
 * The queue between the receiver and the writer.
 *
 * An intrusive singly linked list with a tail pointer: push appends one job,
 * pop_all detaches the whole list, so the lock is held for a few pointer
 * moves and the writer takes everything that accumulated while it was
 * committing the previous batch (group commit for free).
 *
 * Backpressure counts "pending" events (queued plus taken but not yet
 * committed), see queue.h.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "event.h"
#include "queue.h"
#include "ticket.h"

struct queue {
	pthread_mutex_t	 lock;
	pthread_cond_t	 nonempty;
	struct job	*head;
	struct job	*tail;
	size_t		 pending;		/* events not yet done */
	size_t		 capacity;
	size_t		 pending_bytes;		/* what they hold */
	size_t		 memory;		/* budget, 0 = none */
	size_t		 rejects;		/* queued, or taken and not done */
	size_t		 reject_capacity;
	bool		 closed;
	bool		 waiting;		/* the writer sleeps on nonempty */
};

struct queue *
queue_new(size_t capacity, size_t reject_capacity)
{
	struct queue *q;
	pthread_condattr_t ca;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->capacity = capacity;
	q->reject_capacity = reject_capacity;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->nonempty, &ca);
	pthread_condattr_destroy(&ca);
	return q;
}

void
job_free(struct job *job)
{
	if (job == NULL)
		return;
	event_free(job->event);
	if (job->reject != NULL) {
		free(job->reject->body);
		free(job->reject);
	}
	ticket_unref(job->ticket);
	free(job);
}

void
queue_free(struct queue *q)
{
	struct job *job, *next;

	if (q == NULL)
		return;
	for (job = q->head; job != NULL; job = next) {
		next = job->next;
		job_free(job);
	}
	pthread_cond_destroy(&q->nonempty);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* Under the lock. */
static bool
room_for(const struct queue *q, size_t bytes)
{
	if (q->pending >= q->capacity)
		return false;
	return q->memory == 0 || q->pending == 0 ||
	    q->pending_bytes + bytes <= q->memory;
}

int
queue_push(struct queue *q, struct job *job)
{
	bool is_event = job->event != NULL;
	bool wake;

	job->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->closed) {
		pthread_mutex_unlock(&q->lock);
		return -ESHUTDOWN;
	}
	if (is_event ? !room_for(q, job->bytes) :
	    q->rejects >= q->reject_capacity) {
		pthread_mutex_unlock(&q->lock);
		return -EAGAIN;
	}
	if (is_event) {
		q->pending++;
		q->pending_bytes += job->bytes;
	} else {
		q->rejects++;
	}
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	wake = q->waiting;
	q->waiting = false;
	pthread_mutex_unlock(&q->lock);
	/* Signal only a sleeping writer: a busy one will find the job. */
	if (wake)
		pthread_cond_signal(&q->nonempty);
	return 0;
}

static void
deadline_after(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static size_t
count_events(const struct job *list)
{
	size_t n = 0;

	for (; list != NULL; list = list->next)
		if (list->event != NULL)
			n++;
	return n;
}

struct job *
queue_pop_all(struct queue *q, int timeout_ms, size_t *n_events)
{
	struct timespec until;
	struct job *list;
	int rc = 0;

	if (timeout_ms > 0)
		deadline_after(&until, timeout_ms);
	pthread_mutex_lock(&q->lock);
	while (q->head == NULL && !q->closed && timeout_ms != 0 &&
	    rc != ETIMEDOUT) {
		q->waiting = true;
		if (timeout_ms < 0)
			pthread_cond_wait(&q->nonempty, &q->lock);
		else
			rc = pthread_cond_timedwait(&q->nonempty, &q->lock,
			    &until);
	}
	q->waiting = false;
	list = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	*n_events = count_events(list);
	return list;
}

void
queue_done(struct queue *q, size_t n_events, size_t n_rejects, size_t bytes)
{
	pthread_mutex_lock(&q->lock);
	q->pending = n_events > q->pending ? 0 : q->pending - n_events;
	q->rejects = n_rejects > q->rejects ? 0 : q->rejects - n_rejects;
	q->pending_bytes = bytes > q->pending_bytes ? 0 :
	    q->pending_bytes - bytes;
	pthread_mutex_unlock(&q->lock);
}

bool
queue_full(struct queue *q)
{
	bool full;

	pthread_mutex_lock(&q->lock);
	full = !room_for(q, 1);
	pthread_mutex_unlock(&q->lock);
	return full;
}

void
queue_usage(struct queue *q, size_t *pending, size_t *bytes)
{
	pthread_mutex_lock(&q->lock);
	*pending = q->pending;
	*bytes = q->pending_bytes;
	pthread_mutex_unlock(&q->lock);
}

size_t
queue_pending(struct queue *q)
{
	size_t n, bytes;

	queue_usage(q, &n, &bytes);
	return n;
}

size_t
queue_capacity(struct queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->capacity;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void
queue_set_capacity(struct queue *q, size_t capacity)
{
	pthread_mutex_lock(&q->lock);
	q->capacity = capacity;
	pthread_mutex_unlock(&q->lock);
}

void
queue_set_memory(struct queue *q, size_t bytes)
{
	pthread_mutex_lock(&q->lock);
	q->memory = bytes;
	pthread_mutex_unlock(&q->lock);
}

void
queue_close(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_mutex_unlock(&q->lock);
	pthread_cond_broadcast(&q->nonempty);
}

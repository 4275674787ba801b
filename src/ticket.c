/*
 * Tickets: the meeting point of a held connection and the writer. See
 * ticket.h for the protocol. The state moves once, from WAITING, by a
 * compare-and-swap, so exactly one party resumes the connection even when
 * the commit and the deadline race.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "ticket.h"

/* Held by the resolving thread for a batch; see ticket_batch_begin(). */
static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;

struct ticket {
	atomic_int	 refs;
	atomic_int	 state;
	void		(*wake)(void *);
	void		*arg;
};

struct ticket *
ticket_new(void (*wake)(void *), void *arg)
{
	struct ticket *t;

	if ((t = malloc(sizeof(*t))) == NULL)
		return NULL;
	atomic_init(&t->refs, 2);
	atomic_init(&t->state, TICKET_WAITING);
	t->wake = wake;
	t->arg = arg;
	return t;
}

bool
ticket_resolve(struct ticket *t, enum ticket_state state)
{
	int expected = TICKET_WAITING;

	if (!atomic_compare_exchange_strong(&t->state, &expected, (int)state))
		return false;
	if (t->wake != NULL)
		t->wake(t->arg);
	return true;
}

enum ticket_state
ticket_state(struct ticket *t)
{
	enum ticket_state state;

	pthread_mutex_lock(&batch_lock);
	state = (enum ticket_state)atomic_load(&t->state);
	pthread_mutex_unlock(&batch_lock);
	return state;
}

void
ticket_batch_begin(void)
{
	pthread_mutex_lock(&batch_lock);
}

void
ticket_batch_end(void)
{
	pthread_mutex_unlock(&batch_lock);
}

void
ticket_unref(struct ticket *t)
{
	if (t == NULL)
		return;
	if (atomic_fetch_sub(&t->refs, 1) == 1)
		free(t);
}

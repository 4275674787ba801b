/*
 * Queue and ticket: bounds, ownership on failure, order, close, the
 * single resolution of a ticket under a race, and a batch of resolutions
 * read only once it has ended.
 */

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "event.h"
#include "queue.h"
#include "ticket.h"

static struct job *
event_job(int tag)
{
	struct job *job = calloc(1, sizeof(*job));

	job->event = calloc(1, sizeof(struct event));
	job->queued_ns = (uint64_t)tag;
	return job;
}

static struct job *
reject_job(void)
{
	struct job *job = calloc(1, sizeof(*job));

	job->reject = calloc(1, sizeof(struct reject));
	return job;
}

/* event_free() is the event module's; these events own nothing else. */
static size_t
list_free(struct job *list)
{
	size_t n = 0;

	while (list != NULL) {
		struct job *next = list->next;

		free(list->event);
		list->event = NULL;
		job_free(list);
		list = next;
		n++;
	}
	return n;
}

START_TEST(test_bounded_and_ownership)
{
	struct queue *q = queue_new(3, 1);
	struct job *extra, *list;
	size_t n;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(queue_push(q, event_job(i)), 0);
	extra = event_job(99);
	ck_assert_int_eq(queue_push(q, extra), -EAGAIN);
	/* Refused: the caller still owns it and may free it. */
	free(extra->event);
	extra->event = NULL;
	job_free(extra);
	/* Rejects have their own budget. */
	ck_assert_int_eq(queue_push(q, reject_job()), 0);
	extra = reject_job();
	ck_assert_int_eq(queue_push(q, extra), -EAGAIN);
	job_free(extra);
	ck_assert_uint_eq(queue_pending(q), 3);

	list = queue_pop_all(q, 0, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(list->queued_ns, 0);	/* oldest first */
	ck_assert_uint_eq(list->next->queued_ns, 1);
	/* Taken but not committed still counts against capacity... */
	extra = event_job(7);
	ck_assert_int_eq(queue_push(q, extra), -EAGAIN);
	queue_done(q, n, 0, 0);
	ck_assert_int_eq(queue_push(q, extra), 0);
	/* ...and so does a reject: a writer retrying a batch holds it. */
	extra = reject_job();
	ck_assert_int_eq(queue_push(q, extra), -EAGAIN);
	queue_done(q, 0, 1, 0);
	ck_assert_int_eq(queue_push(q, extra), 0);
	ck_assert_uint_eq(list_free(list), 4);
	ck_assert_uint_eq(queue_pending(q), 1);
	/* queue_free frees what is left; the event is the test's. */
	list = queue_pop_all(q, 0, &n);
	list_free(list);
	queue_free(q);
}
END_TEST

START_TEST(test_close)
{
	struct queue *q = queue_new(10, 10);
	struct job *job = event_job(1), *list;
	size_t n;

	ck_assert_int_eq(queue_push(q, job), 0);
	queue_close(q);
	job = event_job(2);
	ck_assert_int_eq(queue_push(q, job), -ESHUTDOWN);
	list_free(job);
	/* What was queued before the close is still handed out. */
	list = queue_pop_all(q, -1, &n);
	ck_assert_uint_eq(n, 1);
	list_free(list);
	ck_assert_ptr_null(queue_pop_all(q, -1, &n));
	queue_free(q);
}
END_TEST

START_TEST(test_timeout)
{
	struct queue *q = queue_new(10, 10);
	size_t n = 5;

	ck_assert_ptr_null(queue_pop_all(q, 20, &n));
	ck_assert_uint_eq(n, 0);
	queue_free(q);
}
END_TEST

struct producer {
	struct queue	*q;
	int		 count;
};

static void *
produce(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < p->count; i++) {
		struct job *job = event_job(i);

		while (queue_push(p->q, job) != 0)
			sched_yield();
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct queue *q = queue_new(64, 8);
	struct producer p = { q, 5000 };
	pthread_t t[4];
	size_t total = 0, n;

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, produce, &p);
	while (total < 4 * 5000) {
		struct job *list = queue_pop_all(q, 100, &n);

		total += list_free(list);
		queue_done(q, n, 0, 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_uint_eq(total, 20000);
	ck_assert_uint_eq(queue_pending(q), 0);
	queue_free(q);
}
END_TEST

static atomic_int wakes;

static void
count_wake(void *arg)
{
	(void)arg;
	atomic_fetch_add(&wakes, 1);
}

static void *
resolve_stored(void *arg)
{
	ticket_resolve(arg, TICKET_STORED);
	ticket_unref(arg);
	return NULL;
}

START_TEST(test_ticket_once)
{
	for (int i = 0; i < 200; i++) {
		struct ticket *t = ticket_new(count_wake, NULL);
		pthread_t th;
		enum ticket_state s;

		atomic_store(&wakes, 0);
		pthread_create(&th, NULL, resolve_stored, t);
		ticket_resolve(t, TICKET_TIMEOUT);
		pthread_join(th, NULL);
		s = ticket_state(t);
		ck_assert(s == TICKET_STORED || s == TICKET_TIMEOUT);
		ck_assert_int_eq(atomic_load(&wakes), 1);
		ck_assert(!ticket_resolve(t, TICKET_FAILED));
		ticket_unref(t);
	}
}
END_TEST

static atomic_int read_state = -1;

static void *
read_ticket(void *arg)
{
	atomic_store(&read_state, (int)ticket_state(arg));
	return NULL;
}

START_TEST(test_ticket_batch)
{
	struct ticket *t = ticket_new(count_wake, NULL);
	struct timespec wait = { 0, 100 * 1000 * 1000 };
	pthread_t th;
	int woken, seen;

	atomic_store(&wakes, 0);
	ticket_batch_begin();
	ck_assert(ticket_resolve(t, TICKET_STORED));
	woken = atomic_load(&wakes);
	ck_assert_int_eq(woken, 1);		/* woken at once */
	pthread_create(&th, NULL, read_ticket, t);
	nanosleep(&wait, NULL);
	seen = atomic_load(&read_state);
	ck_assert_int_eq(seen, -1);		/* but its reader waits */
	ticket_batch_end();
	pthread_join(th, NULL);
	seen = atomic_load(&read_state);
	ck_assert_int_eq(seen, TICKET_STORED);
	ck_assert_int_eq(ticket_state(t), TICKET_STORED);
	ticket_unref(t);
	ticket_unref(t);
}
END_TEST

START_TEST(test_memory_budget)
{
	struct queue *q = queue_new(100, 1);
	struct job *a = event_job(1), *b = event_job(2), *c = event_job(3);
	struct job *list;
	size_t n;

	queue_set_memory(q, 1000);
	a->bytes = 5000;	/* alone, a big one is always let in */
	ck_assert_int_eq(queue_push(q, a), 0);
	b->bytes = 10;
	ck_assert_int_eq(queue_push(q, b), -EAGAIN);
	ck_assert(queue_full(q));
	list = queue_pop_all(q, 0, &n);
	queue_done(q, n, 0, 5000);
	list_free(list);
	ck_assert(!queue_full(q));
	ck_assert_int_eq(queue_push(q, b), 0);
	c->bytes = 990;
	ck_assert_int_eq(queue_push(q, c), 0);
	ck_assert(queue_full(q));	/* exactly at the budget */
	list = queue_pop_all(q, 0, &n);
	ck_assert_uint_eq(n, 2);
	queue_done(q, n, 0, 1000);
	list_free(list);
	queue_free(q);
}
END_TEST

Suite *queue_suite(void);

Suite *
queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("queue");

	tcase_add_test(tc, test_bounded_and_ownership);
	tcase_add_test(tc, test_close);
	tcase_add_test(tc, test_memory_budget);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_ticket_once);
	tcase_add_test(tc, test_ticket_batch);
	suite_add_tcase(s, tc);
	return s;
}

/*
 * libmicrohttpd's open connections, and the thread that watches them.
 *
 * Deadlines. libmicrohttpd's idle timeout starts again at every byte it
 * reads, and it calls us only once headers are whole and then per piece
 * of body; a chunked body's trailer it reads without calling at all. So
 * a client that trickles its headers, or its trailer, keeps a connection
 * (and a body's memory) for as long as it likes, and enough such clients
 * fill max_connections. Each connection keeps one word: the phase it is
 * in and when that began. The thread sweeps them every SWEEP_MS and
 * shuts down (shutdown(2); libmicrohttpd then reads the end and closes)
 * one whose headers, or whose body with its trailer, took longer than
 * the deadline. A request whose body is whole, or that is held for the
 * writer, is exempt: it is answered by other rules.
 *
 * The word changes by compare-and-swap only, so a request either got in
 * before the sweep cut its connection or is refused as late, never both.
 * libmicrohttpd notifies a connection's close before it closes its
 * socket; the list's lock, held by the sweep and by conns_close(), keeps
 * the sweep from shutting down a number the kernel has given anew.
 *
 * The ticker. libmicrohttpd 0.9.75 drains epoll in rounds of 128 events,
 * and after a round of exactly 128 calls epoll_wait() again, with the
 * same timeout, before it serves any of them: with 128 requests ready at
 * once (128 connections, or 125 and its listening socket, wake-up and
 * our tick) it slept on them until another event came or a connection
 * timed out, up to [http] timeout. So while TICK_FROM connections or more
 * are open, the thread writes an eventfd in its epoll set every TICK_MS,
 * which ends such a wait; its events carry no pointer, which libmicro-
 * httpd skips. With no connection open the thread sleeps.
 */

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "conns.h"
#include "log.h"
#include "metrics.h"

#define TICK_MS		10
#define TICK_FROM	120		/* connections */
#define SWEEP_MS	1000
#define FULL_LOG_MS	10000	/* between "max_connections reached" lines */

enum phase { PH_HEADERS, PH_BODY, PH_EXEMPT, PH_CUT };

/* A connection's word: the phase's start (monotonic ns) << 2 | phase. */
#define WORD(ns, ph)	((ns) << 2 | (uint64_t)(ph))
#define PHASE(w)	((enum phase)((w) & 3))
#define SINCE(w)	((w) >> 2)

struct conn {
	struct conn		*prev, *next;
	int			 fd;
	atomic_uint_fast64_t	 word;
};

struct conns {
	pthread_mutex_t		 lock;
	pthread_cond_t		 wake;
	struct conn		*head;		/* the open ones */
	unsigned		 count;
	unsigned		 max;		/* max_connections */
	uint64_t		 full_logged_ns; /* the MHD thread's */
	uint64_t		 deadline_ns;
	struct metrics		*metrics;
	pthread_t		 thread;
	int			 tick_fd;	/* eventfd, or -1 */
	bool			 running;
	bool			 stopping;
};

struct conns *
conns_new(uint64_t deadline_ns, unsigned max, struct metrics *m)
{
	pthread_condattr_t attr;
	struct conns *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->deadline_ns = deadline_ns;
	c->max = max;
	c->metrics = m;
	c->tick_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &attr);
	pthread_condattr_destroy(&attr);
	return c;
}

/* Without it, the stall above can happen. 0 or -errno. */
static int
tick_fd_open(struct conns *c, struct MHD_Daemon *mhd)
{
	const union MHD_DaemonInfo *info;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET,
	    .data.ptr = NULL };

	info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL || info->epoll_fd < 0)
		return -ENOTSUP;
	if ((c->tick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return -errno;
	if (epoll_ctl(info->epoll_fd, EPOLL_CTL_ADD, c->tick_fd, &ev) != 0) {
		int rc = -errno;

		close(c->tick_fd);
		c->tick_fd = -1;
		return rc;
	}
	return 0;
}

/*
 * Under the lock: shut down the late ones, counted first, so that a
 * client that sees its connection closed sees it counted. How many were
 * in their headers.
 */
static unsigned
sweep(struct conns *c, uint64_t now)
{
	unsigned in_headers = 0;

	for (struct conn *cn = c->head; cn != NULL; cn = cn->next) {
		uint64_t w = atomic_load(&cn->word);

		if (PHASE(w) != PH_HEADERS && PHASE(w) != PH_BODY)
			continue;
		/* A phase may have begun after now was read. */
		if (SINCE(w) >= now || now - SINCE(w) <= c->deadline_ns)
			continue;
		if (!atomic_compare_exchange_strong(&cn->word, &w,
		    WORD(SINCE(w), PH_CUT)))
			continue;	/* moved on: the next sweep sees */
		atomic_fetch_add(&c->metrics->connections_cut, 1);
		shutdown(cn->fd, SHUT_RDWR);
		if (PHASE(w) == PH_HEADERS)
			in_headers++;
	}
	return in_headers;
}

static void
deadline_at(struct timespec *ts, uint64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000);
	ts->tv_nsec = (long)(ns % 1000000000);
}

static void
note_cut(struct conns *c, unsigned n)
{
	log_info("closed %u connection%s that sent no whole request headers "
	    "within %llu s", n, n == 1 ? "" : "s",
	    (unsigned long long)(c->deadline_ns / 1000000000));
}

static void *
conns_main(void *arg)
{
	struct conns *c = arg;
	uint64_t next_sweep = now_mono_ns() + SWEEP_MS * 1000000ULL;
	uint64_t one = 1;
	struct timespec until;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		uint64_t now = now_mono_ns();
		bool ticking = c->count >= TICK_FROM && c->tick_fd >= 0;
		unsigned cut;

		if (c->count == 0) {
			pthread_cond_wait(&c->wake, &c->lock);
			next_sweep = now_mono_ns() + SWEEP_MS * 1000000ULL;
			continue;
		}
		deadline_at(&until, ticking ? now + TICK_MS * 1000000ULL :
		    next_sweep);
		pthread_cond_timedwait(&c->wake, &c->lock, &until);
		if (c->stopping)
			break;
		/* Never read: it fails (EAGAIN) only after 2^64 - 2 ticks. */
		if (c->count >= TICK_FROM && c->tick_fd >= 0)
			(void)!write(c->tick_fd, &one, sizeof(one));
		if ((now = now_mono_ns()) < next_sweep)
			continue;
		next_sweep = now + SWEEP_MS * 1000000ULL;
		if ((cut = sweep(c, now)) > 0) {
			pthread_mutex_unlock(&c->lock);
			note_cut(c, cut);
			pthread_mutex_lock(&c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int
conns_run(struct conns *c, struct MHD_Daemon *mhd)
{
	int rc;

	if ((rc = tick_fd_open(c, mhd)) != 0)
		log_warnx("no ticker in libmicrohttpd's epoll set (%s): with "
		    "128 requests ready at once, answers may wait for the "
		    "next event", strerror(-rc));
	if ((rc = pthread_create(&c->thread, NULL, conns_main, c)) != 0)
		return -rc;
	pthread_setname_np(c->thread, "mhd-watch");
	c->running = true;
	return 0;
}

static void
conns_stop(struct conns *c)
{
	if (c == NULL || !c->running)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	c->running = false;
}

void
conns_free(struct conns *c)
{
	struct conn *cn, *next;

	if (c == NULL)
		return;
	conns_stop(c);
	for (cn = c->head; cn != NULL; cn = next) {
		next = cn->next;
		free(cn);
	}
	if (c->tick_fd >= 0)
		close(c->tick_fd);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

unsigned
conns_count(struct conns *c)
{
	unsigned n;

	pthread_mutex_lock(&c->lock);
	n = c->count;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/*
 * At max_connections libmicrohttpd stops accepting, and new connections,
 * a sender's webhooks among them, wait in the listen backlog without a
 * word: the slow clients of conns_main() look like this, and so does a
 * limit too low for the traffic. Counted each time, logged at most every
 * FULL_LOG_MS: a client that holds the limit can reach it at will.
 */
static void
note_full(struct conns *c)
{
	uint64_t now = now_mono_ns();

	atomic_fetch_add(&c->metrics->connections_full, 1);
	if (c->full_logged_ns != 0 &&
	    now - c->full_logged_ns < FULL_LOG_MS * 1000000ULL)
		return;
	c->full_logged_ns = now;
	log_warnx("max_connections (%u) reached: new connections wait until "
	    "one closes (callhookd_connections_full_total counts each time)",
	    c->max);
}

struct conn *
conns_open(struct conns *c, int fd)
{
	struct conn *cn;
	bool full;

	if ((cn = calloc(1, sizeof(*cn))) == NULL)
		return NULL;
	cn->fd = fd;
	atomic_init(&cn->word, WORD(now_mono_ns(), PH_HEADERS));
	pthread_mutex_lock(&c->lock);
	if ((cn->next = c->head) != NULL)
		cn->next->prev = cn;
	c->head = cn;
	if (++c->count == 1 || c->count == TICK_FROM)
		pthread_cond_signal(&c->wake);
	full = c->count == c->max;
	pthread_mutex_unlock(&c->lock);
	if (full)
		note_full(c);
	return cn;
}

void
conns_close(struct conns *c, struct conn *cn)
{
	if (cn == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	if (cn->prev != NULL)
		cn->prev->next = cn->next;
	else
		c->head = cn->next;
	if (cn->next != NULL)
		cn->next->prev = cn->prev;
	c->count--;
	pthread_mutex_unlock(&c->lock);
	free(cn);
}

/* Enter phase ph, now; false when the sweep cut the connection first. */
static bool
enter(struct conn *cn, enum phase ph)
{
	uint64_t w, now;

	if (cn == NULL)
		return true;
	now = now_mono_ns();
	w = atomic_load(&cn->word);
	do {
		if (PHASE(w) == PH_CUT)
			return false;
	} while (!atomic_compare_exchange_weak(&cn->word, &w,
	    WORD(now, ph)));
	return true;
}

bool
conn_headers_in(struct conn *cn)
{
	return enter(cn, PH_BODY);
}

bool
conn_request_in(struct conn *cn)
{
	return enter(cn, PH_EXEMPT);
}

void
conn_request_done(struct conn *cn)
{
	(void)enter(cn, PH_HEADERS);
}

bool
conn_cut(const struct conn *cn)
{
	return cn != NULL && PHASE(atomic_load(&cn->word)) == PH_CUT;
}

void
conns_cut_late(struct conns *c, struct conn *cn)
{
	uint64_t w;

	if (cn == NULL)
		return;
	w = atomic_load(&cn->word);
	do {
		if (PHASE(w) == PH_CUT)
			return;		/* the sweep came first, and counted */
	} while (!atomic_compare_exchange_weak(&cn->word, &w,
	    WORD(SINCE(w), PH_CUT)));
	atomic_fetch_add(&c->metrics->connections_cut, 1);
}

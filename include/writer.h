#ifndef CALLHOOK_WRITER_H
#define CALLHOOK_WRITER_H

/*
 * The writer thread: the only user of the daemon's struct store. It takes
 * everything waiting in the queue, writes it in one transaction, then
 * resolves the tickets of the held connections. When the store fails
 * (locked by another process, disk full, read-only) it keeps the batch,
 * retries with a growing delay, and answers held connections 503
 * ack_timeout_ms after their request's headers came; the events stay in
 * the batch and are written when the store recovers. One that fails on
 * its own while others commit holds up only its own call, and may be
 * set aside (writer.c). A second thread, with a connection of its own to
 * the same file, runs the WAL checkpoints.
 */

#include <stdbool.h>
#include <stddef.h>

struct metrics;
struct queue;
struct store;
struct writer;

struct writer_options {
	unsigned	ack_timeout_ms;		/* 4500: a 503 before 5 s */
	unsigned	stop_timeout_ms;	/* give up draining a failing
						   store this long after stop */
	const char	*rescue_path;		/* where unwritable events go,
						   one body per line */
	unsigned	rescue_mode;		/* its permissions when created:
						   the database's (0600 if 0) */
	void		(*on_loop)(void);	/* each turn, e.g. the watchdog */
};

/*
 * Start the thread. The writer uses st, q and m until writer_stop() and
 * owns none of them. Returns NULL with errno set on failure.
 */
struct writer *writer_start(struct store *st, struct queue *q,
	    struct metrics *m, const struct writer_options *opt);

/* Events the store did not take. */
struct writer_losses {
	size_t	rescued;	/* by a stop: appended to rescue_path */
	size_t	unsaved;	/* by a stop, not even there: written to
				   standard error */
	size_t	set_aside;	/* while running: refused by SQLite, or
				   failing alone (rescue_path or stderr) */
};

/*
 * Close the queue, let the thread write everything it holds and join it,
 * calling waiting(arg) on the caller's thread about every
 * WRITER_STOP_TICK_MS until then (NULL: none). What the store still
 * refused after stop_timeout_ms went to rescue_path for `callhook
 * import`, or, when that failed too, to standard error; counted in *out.
 */
#define WRITER_STOP_TICK_MS	100
void	writer_stop(struct writer *w, struct writer_losses *out,
	    void (*waiting)(void *), void *arg);
/*
 * Free a stopped writer (NULL: a no-op); only once the HTTP server has
 * stopped, since its answers may still ask writer_health().
 */
void	writer_free(struct writer *w);

/*
 * "ok", or the store's last error, copied into buf (WRITER_HEALTH_MAX
 * bytes hold all the writer keeps of it, which is all of it unless the
 * database's path is very long). True when ok.
 */
#define WRITER_HEALTH_MAX	512
bool	writer_health(struct writer *w, char *buf, size_t len);

/*
 * The size of the rescue file, 0 when there is none: events set aside,
 * by this run or an earlier one, until someone imports them.
 */
size_t	writer_rescue_bytes(const struct writer *w);

#endif

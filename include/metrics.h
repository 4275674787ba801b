#ifndef CALLHOOK_METRICS_H
#define CALLHOOK_METRICS_H

/*
 * Counters shared by the HTTP threads and the writer, all lock-free
 * atomics, rendered as Prometheus text by metrics_render().
 */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS		15

struct histogram {
	const uint64_t		*bounds;	/* METRICS_BUCKETS - 1 upper bounds */
	double			 scale;		/* unit of a rendered value */
	atomic_uint_fast64_t	bucket[METRICS_BUCKETS];	/* cumulative at render */
	atomic_uint_fast64_t	sum_us;
};

/* Why a webhook request was refused, for the rejects counter. */
enum reject_reason {
	REJECT_NOT_FOUND,
	REJECT_METHOD,
	REJECT_MEDIA_TYPE,
	REJECT_TOO_LARGE,
	REJECT_FORBIDDEN,
	REJECT_UNAUTHORIZED,
	REJECT_SIGNATURE,
	REJECT_INVALID,
	REJECT_UNKNOWN_EVENT,
	REJECT_QUEUE_FULL,
	REJECT_STORE_BUSY,
	REJECT_STORE_FAILED,
	REJECT_SHUTTING_DOWN,
	REJECT_BODIES_FULL,	/* the memory for bodies being received */
	REJECT_TOO_SLOW,	/* a body not in within 2 x timeout */
	REJECT_CLIENT_CLOSED,	/* the client went before its whole body */
	REJECT_REASONS
};

struct metrics {
	atomic_uint_fast64_t	rejects[REJECT_REASONS];
	atomic_uint_fast64_t	responses[600];		/* by HTTP status */
	atomic_uint_fast64_t	events_stored;
	atomic_uint_fast64_t	duplicates;
	atomic_uint_fast64_t	revisions;
	atomic_uint_fast64_t	type_mismatches;
	atomic_uint_fast64_t	rejects_dropped;	/* rejects queue full */
	atomic_uint_fast64_t	previous_token;	/* let in by it */
	atomic_uint_fast64_t	commits;
	atomic_uint_fast64_t	commit_failures;
	atomic_uint_fast64_t	events_set_aside;	/* to the rescue file,
							   the store refusing
							   them */
	atomic_uint_fast64_t	connections_cut;	/* a request not in
							   within the deadline */
	atomic_uint_fast64_t	connections_full;	/* max_connections
							   reached */
	atomic_uint_fast64_t	last_event_ms;		/* wall clock */
	atomic_uint_fast64_t	fts_backlog;		/* rows not yet indexed */
	atomic_uint_fast64_t	wal_behind;		/* WAL pages not yet
							   checkpointed */
	struct histogram	batch_size;
	struct histogram	commit_latency;		/* microseconds */
	struct histogram	ack_latency;		/* microseconds */
};

void	metrics_init(struct metrics *m);
void	metrics_observe(struct histogram *h, uint64_t value);
/* Gauges the caller samples from other modules. */
struct gauges {
	size_t	queue_depth;	/* events not yet committed */
	size_t	queue_bytes;	/* the memory they hold */
	size_t	body_bytes;	/* of request bodies being received */
	size_t	memory_budget;	/* the limit of each of the two */
	size_t	rescue_bytes;	/* the rescue file's size, 0 if none */
	size_t	connections;	/* open */
};

/* Render as Prometheus text: a malloc'd string (caller frees) or NULL. */
char	*metrics_render(struct metrics *m, const struct gauges *g,
	    size_t *len);

/* Milliseconds of wall clock, and nanoseconds of the monotonic clock. */
uint64_t now_wall_ms(void);
uint64_t now_mono_ns(void);
/* Format wall-clock ms as YYYY-MM-DDTHH:MM:SS.mmmZ into buf (>= 25 bytes). */
void	format_utc_ms(uint64_t ms, char *buf, size_t len);

#endif

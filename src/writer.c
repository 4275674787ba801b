/*
 * The writer thread.
 *
 * Group commit: each turn takes every job that queued up while the last
 * transaction ran, and writes them all in one transaction, so the cost of
 * a commit (the WAL fsync under sync = full) is shared by the batch and
 * the batch grows by itself under load. Inside the transaction the
 * events go in as runs of up to STORE_RUN_MAX new rows, one INSERT per
 * run (store_put_run); a run that meets a callSid already there, or a
 * row SQLite refuses, leaves its events to store_put, one at a time.
 *
 * Only after COMMIT returns are the tickets resolved: a 200 in
 * ack = commit mode is sent for an event that is in the database file.
 * A transient failure (SQLITE_BUSY, disk full, ...) rolls the whole
 * transaction back and keeps the batch; nothing is half-written and
 * nothing is dropped. An event SQLite refuses for good (SQLITE_TOOBIG,
 * say) fails alone with a 503, and is set aside: appended to the rescue
 * file, from which `callhook import` loads it once the cause is fixed.
 * So is an event that fails on its own, with an error SQLite calls
 * transient, while other calls' events commit (see isolate_failing): it
 * would otherwise hold up everything behind it.
 *
 * The full-text index is kept out of the batches (see store.c): rows
 * wait in fts_pending and the writer indexes them, FTS_CHUNK at a time,
 * once no event has arrived for FTS_QUIET_MS, going back to the queue
 * between chunks. A burst is thus answered at the rate of the calls
 * table, and search catches up when it ends. The backlog is bounded by
 * the time it would take to index: past FTS_LAG_MAX_S seconds of work,
 * at the rate measured on the last chunks, each batch is followed by
 * indexing as many rows (for at most FTS_CATCHUP_MS), so that under
 * endless overload the lag stops growing. A stop indexes what waits for
 * up to FTS_STOP_MS. Failures are retried with a growing pause.
 *
 * The WAL is copied into the database file by a checkpointer thread with
 * a connection of its own, not by the commit that happens to cross
 * SQLite's threshold, which keeps the writer's commits short
 * (bench/README.md has the numbers).
 */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "event.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "store.h"
#include "ticket.h"
#include "writer.h"

#define RETRY_MIN_MS	10
#define RETRY_MAX_MS	250
#define ISOLATE_AFTER	5	/* failures in a row, not for a lock: 150 ms
				   of retries at first, 1.25 s at the longest */
#define CHECKPOINT_PAGES 256	/* 1 MB; SQLite's default is 1000 */
#define WAL_WARN_PAGES	16384	/* 64 MB not copied: checkpoints held
				   back (normally ~CHECKPOINT_PAGES) */
#define FTS_QUIET_MS	10
#define FTS_CHUNK	32	/* 9 KB transcripts: about 5 ms */
#define FTS_LAG_MAX_S	30	/* of indexing work waiting, at most */
#define FTS_ROW_NS	200000	/* per row until measured: 9 KB transcripts */
#define FTS_STOP_MS	2000
#define FTS_CATCHUP_MS	50	/* at most, after one batch */
#define FTS_RETRY_MAX_MS 1000
#define IDLE_MS		1000
#define LOCK_GRACE_MS	1000	/* a lock held elsewhere is no failure yet */
#define GATHER_YIELDS	8
/* README and main.c's exit message name this line. */
#define UNSAVED_PREFIX	"callhookd: unsaved event: "

/*
 * The checkpointer: a second thread, with a connection of its own, that
 * copies the WAL into the database file whenever the writer's commits
 * have added CHECKPOINT_PAGES to it. Done by the writer, as SQLite does by
 * default, the copy and its two fsyncs held up one commit in thirty or so
 * for 5 to 25 ms, and every connection waiting on it (the p99 of
 * ack = commit); here the writer goes on committing meanwhile. Every
 * 1000 pages, the checkpointer's own bursts of copying (8 ms or so of
 * CPU) still held up the receiver on a shared core: p99 22-24 ms at 32
 * connections; every 256 pages, 3.3-3.6 ms, at the same throughput
 * (bench/README.md). Shared with the writer thread, under lock: the page
 * counts and the condition.
 */
struct checkpointer {
	pthread_t		 thread;
	struct store		*store;
	pthread_mutex_t		 lock;
	pthread_cond_t		 wake;
	int			 wal_pages;	/* after the last commit */
	int			 copied;	/* into the database file */
	int			 tried;		/* wal_pages at the last try */
	struct metrics		*metrics;
	bool			 wal_warned;	/* WAL_WARN_PAGES behind */
	bool			 checked;	/* a checkpoint has run: only
						   then can pages be held back */
	bool			 stopping;
	bool			 running;
};

struct batch {
	struct job	*head;
	struct job	*tail;
	size_t		 events;
	size_t		 rejects;
	size_t		 bytes;		/* what the events hold (queue.h) */
	uint64_t	 stored, duplicates, revisions;
	uint64_t	 rejects_refused;	/* by SQLite, in this try */
};

/* The writer's backing off after failed commits; all 0 after a good one. */
struct retry {
	int		 ms;		/* the last pause, 0: not retrying */
	int		 failures;	/* in a row, not for a lock */
	uint64_t	 at;		/* CLOCK_MONOTONIC ns of the next try */
	uint64_t	 locked_since;	/* see failure_health() */
};

struct writer {
	pthread_t		 thread;
	struct store		*store;
	struct queue		*queue;
	struct metrics		*metrics;
	struct writer_options	 opt;
	atomic_bool		 stopping;
	uint64_t		 stop_ns;
	struct writer_losses	 lost;
	pthread_mutex_t		 health_lock;
	char			 health[WRITER_HEALTH_MAX]; /* "" when ok */
	uint64_t		 fts_row_ns;	/* indexing time per row, EWMA */
	int			 fts_retry_ms;	/* after failures, else 0 */
	uint64_t		 fts_locked_since; /* see fts_failed() */
	bool			 fts_logged;	/* this failure, as a warning */
	char			 kept_sid[128];	/* last logged as kept */
	struct checkpointer	 ckpt;
};

static bool	set_aside(struct writer *, struct job *, const char *, bool);
static void	checkpoint_after_failure(struct checkpointer *);

static void
batch_append(struct batch *b, struct job *list, size_t events)
{
	struct job *last;

	if (list == NULL)
		return;
	/* An event job's event may be gone (set aside) on a second append. */
	for (last = list;; last = last->next) {
		if (last->reject == NULL)
			b->bytes += last->bytes;
		else
			b->rejects++;
		if (last->next == NULL)
			break;
	}
	if (b->tail != NULL)
		b->tail->next = list;
	else
		b->head = list;
	b->tail = last;
	b->events += events;
}

static void
set_health(struct writer *w, const char *msg)
{
	pthread_mutex_lock(&w->health_lock);
	if (strcmp(w->health, msg) != 0) {
		if (*msg == '\0')
			log_info("store recovered");
		else
			log_errorx("store failing, events kept in memory "
			    "and retried: %s", msg);
		snprintf(w->health, sizeof(w->health), "%s", msg);
	}
	pthread_mutex_unlock(&w->health_lock);
}

size_t
writer_rescue_bytes(const struct writer *w)
{
	struct stat sb;

	/* lstat: a symlink there is never written through (rescue_to_file). */
	if (w == NULL || w->opt.rescue_path == NULL ||
	    lstat(w->opt.rescue_path, &sb) != 0 || !S_ISREG(sb.st_mode))
		return 0;
	return (size_t)sb.st_size;
}

bool
writer_health(struct writer *w, char *buf, size_t len)
{
	bool ok;

	pthread_mutex_lock(&w->health_lock);
	ok = w->health[0] == '\0';
	snprintf(buf, len, "%s", ok ? "ok" : w->health);
	pthread_mutex_unlock(&w->health_lock);
	return ok;
}

/*
 * After a failed batch: the store's error goes to /healthz and the log,
 * except a lock held by another connection until it has lasted
 * LOCK_GRACE_MS (*locked_since: when the writer first met it, else 0).
 * callhook import and prune hold the write lock about 50 ms at a time,
 * on a loaded machine past the writer's 100 ms busy timeout; that made
 * /healthz answer 503 "database is locked" through a routine prune. The
 * batch is retried meanwhile, as after any failure.
 */
static void
failure_health(struct writer *w, uint64_t *locked_since)
{
	uint64_t now = now_mono_ns();

	if (!store_locked_out(w->store))
		*locked_since = 0;
	else if (*locked_since == 0)
		*locked_since = now;
	if (*locked_since == 0 ||
	    now - *locked_since >= LOCK_GRACE_MS * 1000000ULL)
		set_health(w, store_errmsg(w->store));
}

/*
 * Write one job inside the open transaction. -EAGAIN aborts the batch;
 * an event SQLite can never take is set aside (set_aside()) and answered
 * 503, and its job stays in the batch without it. A reject SQLite
 * refuses is dropped, and counted as one once the batch commits: a try
 * that fails writes it again.
 */
static int
write_job(struct writer *w, struct batch *b, struct job *job)
{
	enum store_outcome outcome;
	int rc;

	if (job->reject != NULL) {
		rc = store_put_reject(w->store, job->reject);
		if (rc != 0 && rc != -EAGAIN)
			b->rejects_refused++;
		return rc == -EAGAIN ? rc : 0;
	}
	if (job->event == NULL)		/* failed in an earlier try */
		return 0;
	rc = store_put(w->store, job->event, &outcome);
	if (rc == -EAGAIN)
		return rc;
	if (rc != 0) {
		set_aside(w, job, store_errmsg(w->store), true);
		event_free(job->event);
		job->event = NULL;
		if (job->ticket != NULL)
			ticket_resolve(job->ticket, TICKET_FAILED);
		return 0;
	}
	if (outcome == STORE_NEW)
		b->stored++;
	else if (outcome == STORE_DUPLICATE)
		b->duplicates++;
	else
		b->revisions++;
	return 0;
}

/*
 * Events in a row, written as runs of new rows (store_put_run); those the
 * run did not take, one at a time.
 */
static int
write_run(struct writer *w, struct batch *b, struct job **jobs, int n)
{
	const struct event *evs[STORE_RUN_MAX];
	int rc, stored = 0;

	for (int i = 0; i < n; i++)
		evs[i] = jobs[i]->event;
	if (n > 1 && (rc = store_put_run(w->store, evs, n, &stored)) != 0)
		return rc;
	b->stored += (uint64_t)stored;
	for (int i = stored; i < n; i++)
		if ((rc = write_job(w, b, jobs[i])) != 0)
			return rc;
	return 0;
}

static int
write_batch(struct writer *w, struct batch *b)
{
	struct job *job, *run[STORE_RUN_MAX];
	int n = 0, rc;

	b->stored = b->duplicates = b->revisions = b->rejects_refused = 0;
	if ((rc = store_begin(w->store)) != 0)
		return rc;
	for (job = b->head; job != NULL; job = job->next) {
		if (job->event != NULL)
			run[n++] = job;
		else if ((rc = write_job(w, b, job)) != 0)
			goto fail;
		if ((n == STORE_RUN_MAX || job->next == NULL) && n > 0) {
			if ((rc = write_run(w, b, run, n)) != 0)
				goto fail;
			n = 0;
		}
	}
	if ((rc = store_commit(w->store)) != 0)
		goto fail;
	return 0;
fail:
	store_rollback(w->store);
	return rc;
}

/*
 * Give the batch's room back to the queue, answer 200 to connections
 * still waiting for an event it holds, and free it.
 */
static void
release_batch(struct writer *w, struct batch *b)
{
	struct job *job, *next;
	uint64_t now = now_mono_ns();

	/*
	 * Room first, answers second: a sender told 200 may post again at
	 * once, and must not find its own committed event still counted
	 * in a full queue.
	 */
	queue_done(w->queue, b->events, b->rejects, b->bytes);
	/*
	 * One batch of resolutions: the receiver, woken by the first
	 * resume, waits for the last, then answers them all in one turn
	 * (on one core, +10 % seed events/s; bench/README.md, item 12).
	 */
	ticket_batch_begin();
	for (job = b->head; job != NULL; job = next) {
		next = job->next;
		if (job->ticket != NULL && job->event != NULL &&
		    ticket_resolve(job->ticket, TICKET_STORED))
			metrics_observe(&w->metrics->ack_latency,
			    (now - job->queued_ns) / 1000);
		job_free(job);
	}
	ticket_batch_end();
	memset(b, 0, sizeof(*b));
}

/* The batch is in the database: answer the held connections. */
static void
finish_batch(struct writer *w, struct batch *b, uint64_t commit_us)
{
	struct metrics *m = w->metrics;

	/* Before the answers: a 200 is never ahead of /metrics. */
	atomic_store(&m->fts_backlog, (uint64_t)store_fts_backlog(w->store));
	atomic_fetch_add(&m->events_stored, b->stored);
	atomic_fetch_add(&m->duplicates, b->duplicates);
	atomic_fetch_add(&m->revisions, b->revisions);
	atomic_fetch_add(&m->rejects_dropped, b->rejects_refused);
	atomic_fetch_add(&m->commits, 1);
	if (b->events > 0) {
		metrics_observe(&m->batch_size, b->events);
		atomic_store(&m->last_event_ms, now_wall_ms());
	}
	metrics_observe(&m->commit_latency, commit_us);
	release_batch(w, b);
}

/*
 * When a held event's 503 is due: ack_timeout_ms after its request's
 * headers came, as the sender's 5 s run from its sending them. Counted
 * from the push, a body that took 3 s to come got its 503 at 7.5 s.
 */
static uint64_t
due_ns(const struct writer *w, const struct job *job)
{
	return job->started_ns + (uint64_t)w->opt.ack_timeout_ms * 1000000ULL;
}

/*
 * Answer 503 to connections whose event is due one. Every job is
 * looked at: queue order is not the order of the requests' starts.
 */
static void
expire_overdue(struct writer *w, struct batch *b)
{
	uint64_t now = now_mono_ns();
	struct job *job;

	for (job = b->head; job != NULL; job = job->next)
		if (job->ticket != NULL && now >= due_ns(w, job))
			ticket_resolve(job->ticket, TICKET_TIMEOUT);
}

/*
 * A body with line breaks (whitespace between tokens, where JSON lets
 * them be) as one JSON string, which callhook import reads back byte for
 * byte; malloc'd, or NULL when out of memory. Flattening the breaks into
 * spaces changed the body, and the sender's retry of the same body then
 * became a revision.
 */
static char *
quoted_body(const struct event *ev)
{
	cJSON *str;
	char *text;

	/* The body holds no NUL: event_parse() refuses one. */
	if ((str = cJSON_CreateString(ev->body)) == NULL)
		return NULL;
	text = cJSON_PrintUnformatted(str);
	cJSON_Delete(str);
	return text;
}

static bool
has_line_break(const struct event *ev)
{
	return memchr(ev->body, '\n', ev->body_len) != NULL ||
	    memchr(ev->body, '\r', ev->body_len) != NULL;
}

/*
 * Write the event's body as one line after prefix: as it came, or quoted
 * (quoted_body()) when it has line breaks. The line is built whole and
 * handed to write(2) at once, so that other threads' log lines do not
 * land inside it (a pipe or the journal's socket may still take a long
 * one in pieces). 0 or -errno.
 */
static int
write_line(int fd, const char *prefix, const struct event *ev)
{
	char *quoted = NULL, *line;
	const char *text = ev->body;
	size_t plen = strlen(prefix), tlen = ev->body_len, len, off;
	ssize_t n;
	int error = 0;

	if (has_line_break(ev)) {
		if ((text = quoted = quoted_body(ev)) == NULL)
			return -ENOMEM;
		tlen = strlen(quoted);
	}
	len = plen + tlen + 1;
	if ((line = malloc(len)) == NULL) {
		cJSON_free(quoted);
		return -ENOMEM;
	}
	memcpy(line, prefix, plen);
	memcpy(line + plen, text, tlen);
	line[len - 1] = '\n';
	for (off = 0; off < len && error == 0; off += (size_t)n)
		if ((n = write(fd, line + off, len - off)) < 0 && errno != EINTR)
			error = -errno;
		else if (n < 0)
			n = 0;
	free(line);
	cJSON_free(quoted);
	return error;
}

/*
 * Write a line break after the file's last byte if it is not one, or if
 * that byte cannot be read (a file opened write-only): import skips the
 * empty line that may make.
 */
static int
end_torn_line(int fd, off_t size)
{
	char c = '\0';
	ssize_t n;

	while ((n = pread(fd, &c, 1, size - 1)) < 0 && errno == EINTR)
		;
	if (n < 0 && errno != EBADF)
		return -errno;
	if (n == 0 || c == '\n')
		return 0;
	while ((n = write(fd, "\n", 1)) < 0 && errno == EINTR)
		;
	return n == 1 ? 0 : n < 0 ? -errno : -EIO;
}

/*
 * Append the events of the jobs from head up to end (NULL: the last) to
 * the rescue file, all or none: on any failure the file is cut back to
 * where it was. The number appended, or -errno.
 */
static long
rescue_to_file(const char *path, mode_t mode, const struct job *head,
    const struct job *end)
{
	const struct job *job;
	struct stat st;
	long n = 0;
	int fd, error = 0;

	/*
	 * The bodies hold what the database does: no wider access. Opened
	 * to read too, for end_torn_line(); write-only if only that is let.
	 * Never through a symlink: one planted by whoever can write the
	 * directory would have a daemon run as root append senders' bodies
	 * to the file it names (a shell's rc file runs their "$(...)").
	 */
	if ((fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, mode != 0 ? mode : 0600)) < 0 && (errno != EACCES ||
	    (fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, mode != 0 ? mode : 0600)) < 0))
		return -errno;
	if (fstat(fd, &st) != 0) {
		error = -errno;
		close(fd);
		return error;
	}
	/*
	 * A kill -9 or a crash during an earlier append can leave the last
	 * line cut short: end it first, or the first body appended here
	 * would be glued onto it, and import would refuse both.
	 */
	if (st.st_size > 0)
		error = end_torn_line(fd, st.st_size);
	for (job = head; job != end && error == 0; job = job->next)
		if (job->event != NULL && (error = write_line(fd, "",
		    job->event)) == 0)
			n++;
	if (error == 0 && fsync(fd) != 0)
		error = -errno;
	/* An empty file left would read as "nothing was set aside". */
	if (error != 0 && st.st_size == 0)
		unlink(path);
	else if (error != 0 && ftruncate(fd, st.st_size) != 0)
		log_error("cannot cut rescue file %s back to %lld bytes",
		    path, (long long)st.st_size);
	if (close(fd) != 0 && error == 0)
		error = -errno;
	return error != 0 ? error : n;
}

/*
 * The last copy of an event no file would take: its body on standard
 * error (the journal under systemd), as the line UNSAVED_PREFIX body, at
 * the journal's error priority like the line that announces it.
 */
static void
print_unsaved(const struct event *ev)
{
	char prefix[sizeof(UNSAVED_PREFIX) + 8];
	int error;

	snprintf(prefix, sizeof(prefix), "%s%s", log_priority_prefix(LOG_ERROR),
	    UNSAVED_PREFIX);
	if ((error = write_line(STDERR_FILENO, prefix, ev)) != 0)
		log_errorx("cannot write callSid %s to standard error: %s",
		    ev->call_sid, strerror(-error));
}

/*
 * Save the events of the jobs from head up to end (NULL: the last) where
 * `callhook import` can load them later: the rescue file, one body per
 * line. When that fails too (the same full disk, say), the bodies go to
 * standard error, the journal under systemd: the last copy. Counted in
 * *lost.
 */
static void
save_events(struct writer *w, const struct job *head, const struct job *end,
    struct writer_losses *lost)
{
	const char *path = w->opt.rescue_path;
	const struct job *job;
	long n = -EINVAL;

	if (path != NULL && (n = rescue_to_file(path, w->opt.rescue_mode,
	    head, end)) >= 0) {
		lost->rescued += (size_t)n;
		return;
	}
	log_errorx("cannot write rescue file %s: %s", path ? path : "(none)",
	    strerror((int)-n));
	for (job = head; job != end; job = job->next) {
		if (job->event == NULL)
			continue;
		print_unsaved(job->event);
		lost->unsaved++;
	}
}

/* Answer 503 for the batch's events, and let them go. */
static void
give_up_batch(struct writer *w, struct batch *b)
{
	struct job *job;

	for (job = b->head; job != NULL; job = job->next)
		if (job->ticket != NULL)
			ticket_resolve(job->ticket, TICKET_FAILED);
	release_batch(w, b);
}

/* The store failed for longer than the stop timeout: save what is left. */
static void
rescue_batch(struct writer *w, struct batch *b)
{
	save_events(w, b->head, NULL, &w->lost);
	give_up_batch(w, b);
}

/*
 * Set the job's event aside, saying why (the store's error message): to
 * the rescue file, counted apart from a stop's losses, since the daemon
 * goes on. When that cannot be written, an event that can never be
 * stored (last_copy) goes to standard error, the last copy; any other is
 * left to the caller to keep, and false returned. Otherwise the caller
 * answers and frees the job.
 */
static bool
set_aside(struct writer *w, struct job *job, const char *why,
    bool last_copy)
{
	const char *path = w->opt.rescue_path, *sid = job->event->call_sid;
	long n = path != NULL ? rescue_to_file(path, w->opt.rescue_mode, job,
	    job->next) :
	    -EINVAL;

	if (n < 0 && !last_copy) {
		/* Once, not at every isolation while it lasts. */
		if (strcmp(w->kept_sid, sid) != 0)
			log_errorx("callSid %s cannot be stored (%s), nor set "
			    "aside in %s (%s): kept, and tried again", sid,
			    why, path ? path : "(none)", strerror((int)-n));
		snprintf(w->kept_sid, sizeof(w->kept_sid), "%s", sid);
		return false;
	}
	if (n >= 0) {
		log_errorx("callSid %s cannot be stored (%s); its event is "
		    "set aside in %s: move that file away and load it with "
		    "`callhook import` once the cause is fixed", sid, why,
		    path);
	} else {
		log_errorx("callSid %s cannot be stored (%s), nor set aside "
		    "in %s (%s); its body is the line \"callhookd: unsaved "
		    "event:\" below", sid, why, path ? path : "(none)",
		    strerror((int)-n));
		print_unsaved(job->event);
	}
	w->lost.set_aside++;
	atomic_fetch_add(&w->metrics->events_set_aside, 1);
	return true;
}

/* b becomes the jobs of list, counted as batch_append counts them. */
static void
batch_of_list(struct batch *b, struct job *list)
{
	size_t events = 0;

	for (const struct job *job = list; job != NULL; job = job->next)
		if (job->reject == NULL)
			events++;
	memset(b, 0, sizeof(*b));
	batch_append(b, list, events);
}

static size_t
batch_jobs(const struct batch *b)
{
	size_t n = 0;

	for (const struct job *job = b->head; job != NULL; job = job->next)
		n++;
	return n;
}

/* Keep b's first n jobs (n >= 1) in b, and move the others to rest. */
static void
batch_split(struct batch *b, size_t n, struct batch *rest)
{
	struct job *head = b->head, *last = head;

	while (--n > 0)
		last = last->next;
	batch_of_list(rest, last->next);
	last->next = NULL;
	batch_of_list(b, head);
}

/* b followed by rest, as b. */
static void
batch_join(struct batch *b, struct batch *rest)
{
	batch_append(b, rest->head, rest->events);
	memset(rest, 0, sizeof(*rest));
}

/*
 * Write b as one transaction: true when it committed (and is answered),
 * with the rows it added or changed in *written (NULL: not wanted). The
 * store's health is the main loop's to set.
 */
static bool
commit_part(struct writer *w, struct batch *b, uint64_t *written)
{
	uint64_t t0 = now_mono_ns();

	if (w->opt.on_loop != NULL)
		w->opt.on_loop();
	if (b->head == NULL)
		return false;
	if (write_batch(w, b) != 0) {
		atomic_fetch_add(&w->metrics->commit_failures, 1);
		return false;
	}
	if (written != NULL)
		*written = b->stored + b->revisions;
	finish_batch(w, b, (now_mono_ns() - t0) / 1000);
	return true;
}

/*
 * b failed as a whole: commit what comes before its first job that fails
 * as a transaction of its own, halving the part tried each time (a
 * prefix that commits leaves the rest to search). On return b holds
 * that job alone and later the jobs after it, untried; or b is empty and
 * later holds what was not tried, when the failure went away. False when
 * a lock held elsewhere stopped it: the jobs are then all back in b, in
 * order. One transaction per halving: about log2(n) + 1.
 */
static bool
commit_before_failing(struct writer *w, struct batch *b,
    struct batch *later)
{
	struct batch half;

	memset(later, 0, sizeof(*later));
	while (b->head != NULL) {
		size_t n = batch_jobs(b);

		batch_split(b, n > 1 ? n / 2 : 1, &half);
		if (commit_part(w, b, NULL)) {
			*b = half;
			continue;
		}
		batch_join(&half, later);
		*later = half;
		if (store_locked_out(w->store)) {
			batch_join(b, later);
			return false;
		}
		if (n == 1)
			break;
	}
	return true;
}

static bool
same_call(const struct job *a, const struct job *b)
{
	return a->event != NULL && b->event != NULL &&
	    strcmp(a->event->call_sid, b->event->call_sid) == 0;
}

/*
 * Move from later to others the jobs that are not about stuck's call,
 * keeping both in order.
 */
static void
other_calls(struct batch *later, const struct job *stuck,
    struct batch *others)
{
	struct job *job, *next, *same = NULL, **same_end = &same;
	struct job *rest = NULL, **rest_end = &rest;

	for (job = later->head; job != NULL; job = next) {
		next = job->next;
		job->next = NULL;
		if (same_call(job, stuck)) {
			*same_end = job;
			same_end = &job->next;
		} else {
			*rest_end = job;
			rest_end = &job->next;
		}
	}
	batch_of_list(later, same);
	batch_of_list(others, rest);
}

/*
 * Merge a and b, both in queue order, into a. Rejects, stamped 0, come
 * first: they need no order, and expire_overdue skips them.
 */
static void
merge_in_order(struct batch *a, struct batch *b)
{
	struct job *x = a->head, *y = b->head, *list = NULL, **end = &list;

	while (x != NULL || y != NULL) {
		struct job **from = y == NULL || (x != NULL &&
		    x->queued_ns <= y->queued_ns) ? &x : &y;

		*end = *from;
		end = &(*from)->next;
		*from = (*from)->next;
	}
	*end = NULL;
	batch_of_list(a, list);
	memset(b, 0, sizeof(*b));
}

/*
 * b holds one job that fails on its own: set it aside, or, a reject,
 * drop it; an event whose rescue file cannot be written stays in b.
 */
static void
give_up_stuck(struct writer *w, struct batch *b)
{
	struct job *job = b->head;

	if (job->event != NULL && !set_aside(w, job, store_errmsg(w->store),
	    false))
		return;
	if (job->reject != NULL) {
		log_warnx("a refused request cannot be recorded in the "
		    "rejects table (%s): dropped", store_errmsg(w->store));
		atomic_fetch_add(&w->metrics->rejects_dropped, 1);
	}
	give_up_batch(w, b);
}

/*
 * Empty the WAL for a retry (store_restart_wal). A RESTART that meets the
 * checkpointer thread's own checkpoint fails at once: try twice.
 */
static bool
restart_wal(struct writer *w)
{
	if (store_restart_wal(w->store) == 0)
		return true;
	usleep(10000);
	return store_restart_wal(w->store) == 0;
}

/*
 * The batch failed ISOLATE_AFTER times in a row, the last time not for a
 * lock held elsewhere. A full disk fails every transaction; but one job
 * that fails every time (an event past a file size limit, a statement
 * SQLite cannot take) would hold up every event after it for ever. So
 * commit what comes before the first job that fails on its own
 * (commit_before_failing), then, as one transaction, the jobs after it
 * about other calls: a call's events keep their order, calls need none.
 * The stuck job is set aside (an event) or dropped (a reject) only on
 * evidence that the fault is its own: those other calls wrote rows, it
 * then fails again alone after a checkpoint has emptied the WAL (a WAL
 * held at its full size by a reader, or short of room at its end, is not
 * its fault), and not in a way that fails every transaction (a full
 * disk, a lock, a replaced file). An event whose rescue file cannot be
 * written is kept. Anything else keeps the jobs left in b, in queue
 * order, to retry. True when the stuck job is done with: what is left in
 * b is then worth a try at once.
 */
static bool
isolate_failing(struct writer *w, struct batch *b)
{
	struct batch later, others;
	uint64_t written = 0;

	if (!commit_before_failing(w, b, &later))
		return false;
	if (b->head == NULL) {		/* the failure went away */
		*b = later;
		return true;
	}
	other_calls(&later, b->head, &others);
	if (!commit_part(w, &others, &written))
		merge_in_order(&later, &others);
	else if (written > 0 && restart_wal(w) && !commit_part(w, b, NULL) &&
	    !store_failed_for_all(w->store))
		give_up_stuck(w, b);
	if (b->head == NULL) {
		*b = later;
		return true;
	}
	batch_join(b, &later);
	return false;
}

static bool
stop_overdue(struct writer *w)
{
	return atomic_load(&w->stopping) && now_mono_ns() - w->stop_ns >
	    (uint64_t)w->opt.stop_timeout_ms * 1000000ULL;
}

/*
 * The first event of a burst wakes the writer, and on a core it shares
 * with the receiver it would commit that one event while the receiver
 * still had the rest to read: a third of the batches held one event.
 * So give the core back while events keep arriving, and commit when a
 * yield brought nothing new. On a core of its own, a yield returns at
 * once.
 */
static void
gather(struct writer *w, struct batch *b)
{
	struct job *list;
	size_t n;

	for (int i = 0; i < GATHER_YIELDS; i++) {
		sched_yield();
		if ((list = queue_pop_all(w->queue, 0, &n)) == NULL)
			break;
		batch_append(b, list, n);
	}
}

/*
 * After a failed indexing transaction: warn once, except for a lock held
 * by another connection while LOCK_GRACE_MS have not passed since the
 * first attempt it failed, as failure_health() does for events. callhook import and prune hold the
 * lock about 50 ms at a time, past the writer's 100 ms wait on a loaded
 * machine; that logged "full-text indexing failed" during routine
 * imports. A stop does not wait for the lock to go: it says so at once.
 */
static void
fts_failed(struct writer *w)
{
	uint64_t now = now_mono_ns();
	bool stopping = atomic_load(&w->stopping);

	if (!store_locked_out(w->store))
		w->fts_locked_since = 0;
	else if (w->fts_locked_since == 0)
		w->fts_locked_since = now;
	if (w->fts_logged || (!stopping && w->fts_locked_since != 0 &&
	    now - w->fts_locked_since < LOCK_GRACE_MS * 1000000ULL))
		return;
	w->fts_logged = true;
	log_warnx("full-text indexing failed, %s: %s", stopping ?
	    "the next start indexes the rest" : "will retry",
	    store_errmsg(w->store));
}

/* Index up to max_rows waiting rows: false when it failed. */
static bool
index_some(struct writer *w, int max_rows)
{
	uint64_t t0 = now_mono_ns();
	int n, rc;

	rc = store_fts_index(w->store, max_rows, &n);
	/* Damage met while idle shows at once, not at the next event. */
	if (rc != 0 && store_damaged(w->store))
		set_health(w, store_errmsg(w->store));
	if (rc != 0) {
		fts_failed(w);
		/* Back off, so a lasting failure is a slow poll. */
		w->fts_retry_ms = w->fts_retry_ms == 0 ? FTS_QUIET_MS :
		    w->fts_retry_ms * 2 > FTS_RETRY_MAX_MS ?
		    FTS_RETRY_MAX_MS : w->fts_retry_ms * 2;
	} else {
		if (w->fts_logged)
			log_info("full-text indexing resumed");
		w->fts_logged = false;
		w->fts_locked_since = 0;
		w->fts_retry_ms = 0;
		if (n > 0)
			w->fts_row_ns = (w->fts_row_ns * 7 +
			    (now_mono_ns() - t0) / (uint64_t)n) / 8;
	}
	atomic_store(&w->metrics->fts_backlog,
	    (uint64_t)store_fts_backlog(w->store));
	return rc == 0;
}

/* More rows wait than FTS_LAG_MAX_S of indexing would clear. */
static bool
backlog_too_long(struct writer *w)
{
	return w->fts_retry_ms == 0 &&
	    (uint64_t)store_fts_backlog(w->store) * w->fts_row_ns >
	    FTS_LAG_MAX_S * 1000000000ULL;
}

/*
 * After a batch of events with too long a backlog: index as many rows,
 * in chunks, for at most FTS_CATCHUP_MS, so that the events waiting
 * meanwhile are not held up for long.
 */
static void
catch_up(struct writer *w, size_t events)
{
	uint64_t until = now_mono_ns() + FTS_CATCHUP_MS * 1000000ULL;
	size_t done = 0;

	while (done < events && now_mono_ns() < until &&
	    store_fts_backlog(w->store) > 0) {
		if (!index_some(w, FTS_CHUNK))
			break;
		done += FTS_CHUNK;
	}
}

/*
 * Nothing queued for a while: catch up on the full-text index. A file
 * removed or replaced shows in /healthz now, not at the next event: on a
 * quiet night that was hours of "ok" for a store that takes nothing.
 */
static bool
on_quiet(struct writer *w, int waited_ms)
{
	if (store_check_file(w->store) != 0)
		set_health(w, store_errmsg(w->store));
	if (waited_ms == IDLE_MS && store_fts_count(w->store) == 0)
		atomic_store(&w->metrics->fts_backlog,
		    (uint64_t)store_fts_backlog(w->store));
	if (store_fts_backlog(w->store) == 0)
		return false;
	return index_some(w, FTS_CHUNK);
}

/* Stopping with the queue drained: index what waits, for a while. */
static void
index_before_exit(struct writer *w)
{
	uint64_t until = now_mono_ns() + FTS_STOP_MS * 1000000ULL;

	while (store_fts_backlog(w->store) > 0 && now_mono_ns() < until)
		if (!index_some(w, FTS_CHUNK))
			break;
}

/* Milliseconds from now to a monotonic time, rounded up; 0 if past. */
static int
ms_until(uint64_t at_ns)
{
	uint64_t now = now_mono_ns();

	return at_ns > now ? (int)((at_ns - now + 999999) / 1000000) : 0;
}

/*
 * Milliseconds until the next held connection of b that has not had its
 * 503 is due it, or -1 when none is held. A retry's pause, and a wait
 * for a lock, end there, so that the 503 goes out at ack_timeout_ms,
 * not a pause and a lock wait later (4.6-4.78 s where 4.5 s was
 * promised, before the sender's 5 s).
 */
static int
ms_to_expiry(const struct writer *w, const struct batch *b)
{
	uint64_t now = now_mono_ns(), next = UINT64_MAX, due;
	const struct job *job;

	for (job = b->head; job != NULL; job = job->next)
		if (job->ticket != NULL && (due = due_ns(w, job)) > now &&
		    due < next)
			next = due;
	return next == UINT64_MAX ? -1 : ms_until(next);
}

/*
 * How long to wait for the queue: retries what is left of their delay
 * (cut short by a 503 due); with rows to index, FTS_QUIET_MS to see that
 * no event comes, then 0 between chunks.
 */
static int
wait_ms(struct writer *w, const struct batch *b, int retry_ms, bool indexing)
{
	int due;

	if (b->head != NULL)
		return (due = ms_to_expiry(w, b)) >= 0 && due < retry_ms ?
		    due : retry_ms;
	if (w->fts_retry_ms != 0)
		return w->fts_retry_ms;
	if (store_fts_backlog(w->store) > 0)
		return indexing ? 0 : FTS_QUIET_MS;
	return IDLE_MS;
}

/*
 * The jobs that come within ms. A closed queue ends a wait at once, as an
 * idle writer that is to stop must not wait; but while stopping no job can
 * come, and a retry's delay is slept in full: a full disk fails a commit
 * at once, and the stop, which gives the store 20 s, would spin for them.
 */
static struct job *
take_jobs(struct writer *w, int ms, bool retrying, size_t *n)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	if (retrying && ms > 0 && atomic_load(&w->stopping)) {
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
		ms = 0;
	}
	return queue_pop_all(w->queue, ms, n);
}

/*
 * A batch failed to commit: answer what is due, set the rest aside if
 * the stop cannot wait, try the events one by one after ISOLATE_AFTER
 * failures of their own, else back off before the next attempt.
 */
static void
after_failure(struct writer *w, struct batch *b, struct retry *r)
{
	atomic_fetch_add(&w->metrics->commit_failures, 1);
	checkpoint_after_failure(&w->ckpt);
	failure_health(w, &r->locked_since);
	expire_overdue(w, b);
	if (stop_overdue(w)) {
		rescue_batch(w, b);
		return;
	}
	/* No event of ours makes another connection hold a lock. */
	r->failures = store_locked_out(w->store) ? 0 : r->failures + 1;
	if (r->failures == ISOLATE_AFTER) {
		r->failures = 0;
		if (isolate_failing(w, b)) {
			if (b->head == NULL)
				set_health(w, "");
			r->ms = 0;
			return;
		}
	}
	r->ms = r->ms == 0 ? RETRY_MIN_MS : r->ms * 2;
	if (r->ms > RETRY_MAX_MS)
		r->ms = RETRY_MAX_MS;
	r->at = now_mono_ns() + (uint64_t)r->ms * 1000000ULL;
}

/*
 * Stopping, with nothing in hand: true when the queue is empty for good.
 * It was closed before stopping was set, so this look finds whatever was
 * pushed after the last one, and nothing can follow it; what it finds
 * goes into b, its events counted in *n.
 */
static bool
drained(struct writer *w, struct batch *b, size_t *n)
{
	struct job *list;

	list = queue_pop_all(w->queue, 0, n);
	batch_append(b, list, *n);
	return b->head == NULL;
}

/*
 * A batch committed in commit_us: answer it, end any retrying, and, when
 * the full-text backlog has grown too long, index as many rows.
 */
static void
after_commit(struct writer *w, struct batch *b, struct retry *r,
    uint64_t commit_us)
{
	size_t events = b->events;

	set_health(w, "");
	finish_batch(w, b, commit_us);
	*r = (struct retry){ 0 };
	if (events > 0 && backlog_too_long(w))
		catch_up(w, events);
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct batch b = { 0 };
	struct retry r = { 0 };
	struct job *list;
	size_t n;
	int waited, rc;
	bool indexing = false;
	uint64_t t0;

	for (;;) {
		if (w->opt.on_loop != NULL)
			w->opt.on_loop();
		waited = wait_ms(w, &b, r.ms == 0 ? 0 : ms_until(r.at),
		    indexing);
		list = take_jobs(w, waited, b.head != NULL, &n);
		batch_append(&b, list, n);
		if (b.head == NULL && atomic_load(&w->stopping) &&
		    drained(w, &b, &n)) {
			index_before_exit(w);
			break;
		}
		if (b.head == NULL) {
			indexing = on_quiet(w, waited);
			continue;
		}
		indexing = false;
		if (r.ms != 0) {
			expire_overdue(w, &b);
			/*
			 * Woken for a 503 due, or by the rejects row of one
			 * (they come one by one now): not yet a retry. New
			 * events are, as they always were.
			 */
			if (n == 0 && now_mono_ns() < r.at)
				continue;
		} else
			gather(w, &b);
		/* A lock held elsewhere: no waiting for it past a 503's due. */
		store_limit_lock_wait(w->store, ms_to_expiry(w, &b));
		t0 = now_mono_ns();
		rc = write_batch(w, &b);
		store_limit_lock_wait(w->store, -1);	/* not for indexing */
		if (rc == 0)
			after_commit(w, &b, &r, (now_mono_ns() - t0) / 1000);
		else
			after_failure(w, &b, &r);
	}
	return NULL;
}

/* In the writer thread, after each commit. */
static void
on_commit(void *arg, int pages)
{
	struct checkpointer *c = arg;
	bool checked;
	int behind;

	pthread_mutex_lock(&c->lock);
	if (pages < c->tried)		/* the WAL started over */
		c->copied = c->tried = 0;
	c->wal_pages = pages;
	behind = pages - c->copied;
	checked = c->checked;
	if (pages - c->tried >= CHECKPOINT_PAGES)
		pthread_cond_signal(&c->wake);
	/* Under the lock, as the checkpointer's: the later one is right. */
	atomic_store(&c->metrics->wal_behind, (uint64_t)behind);
	pthread_mutex_unlock(&c->lock);
	/*
	 * Not before a checkpoint has run: a WAL that a kill -9 left full
	 * (up to STORE_WAL_MAX_PAGES) is all to copy again after the
	 * restart, and no reader holds it back.
	 */
	if (!checked)
		return;
	if (behind >= WAL_WARN_PAGES && !c->wal_warned)
		log_warnx("%d pages of the WAL are not yet copied into the "
		    "database: a long read transaction holds checkpoints "
		    "back (a callhook backup or export of a big file, or an "
		    "sqlite3 shell left open?)", behind);
	c->wal_warned = behind >= WAL_WARN_PAGES;
}

/*
 * In the writer thread, after a failed transaction. The WAL starts over
 * only once a checkpoint has copied all of it, and commits wake the
 * checkpointer: a WAL that cannot grow (a full disk, a file size limit)
 * after a checkpoint that copied only part of it (a reader held the rest
 * back) would fail every commit until a restart. So a failure lets it
 * try again, when something is left to copy.
 */
static void
checkpoint_after_failure(struct checkpointer *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->running && c->copied < c->wal_pages) {
		c->tried = c->wal_pages - CHECKPOINT_PAGES;
		pthread_cond_signal(&c->wake);
	}
	pthread_mutex_unlock(&c->lock);
}

static void *
checkpointer_main(void *arg)
{
	struct checkpointer *c = arg;
	int pages, copied, rc;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stopping &&
		    c->wal_pages - c->tried < CHECKPOINT_PAGES)
			pthread_cond_wait(&c->wake, &c->lock);
		if (c->stopping)
			break;
		/*
		 * Whether it copies all, part (a reader's snapshot holds
		 * the rest back) or nothing (the writer checkpointing
		 * itself, a failing disk), the next try waits for as many
		 * pages again, or for a failed commit (see
		 * checkpoint_after_failure); the writer's own checkpoint at
		 * the WAL's limit is the backstop.
		 */
		c->tried = c->wal_pages;
		pthread_mutex_unlock(&c->lock);
		rc = store_checkpoint(c->store, &pages, &copied);
		pthread_mutex_lock(&c->lock);
		/*
		 * The gauge too: left to the next commit, it read what the
		 * last one left, however long no other came.
		 */
		if (rc == 0 && copied <= c->wal_pages) {
			c->copied = copied;
			atomic_store(&c->metrics->wal_behind,
			    (uint64_t)(c->wal_pages - copied));
		}
		if (rc == 0)
			c->checked = true;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Best effort: without it the writer checkpoints, as SQLite does. */
static void
checkpointer_start(struct checkpointer *c, struct store *st,
    struct metrics *m)
{
	char err[256];

	c->metrics = m;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	if (store_open_checkpointer(&c->store, st, err, sizeof(err)) != 0) {
		log_warnx("checkpoints in the writer thread: %s", err);
		return;
	}
	if (pthread_create(&c->thread, NULL, checkpointer_main, c) != 0) {
		log_warnx("checkpoints in the writer thread: no thread");
		store_close(c->store);
		return;
	}
	pthread_setname_np(c->thread, "checkpointer");
	c->running = true;
	store_wal_notify(st, on_commit, c);
}

static void
checkpointer_stop(struct checkpointer *c, struct store *st)
{
	if (c->running) {
		store_wal_notify(st, NULL, NULL);
		pthread_mutex_lock(&c->lock);
		c->stopping = true;
		pthread_cond_signal(&c->wake);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->thread, NULL);
		store_close(c->store);
	}
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
}

struct writer *
writer_start(struct store *st, struct queue *q, struct metrics *m,
    const struct writer_options *opt)
{
	struct writer *w;
	int rc;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->store = st;
	w->queue = q;
	w->metrics = m;
	w->opt = *opt;
	w->fts_row_ns = FTS_ROW_NS;
	/*
	 * The last event is the file's, not this run's: from -1 at each
	 * start, an alert on a sender gone quiet was off after a restart.
	 */
	atomic_store(&m->last_event_ms, store_last_received_ms(st));
	atomic_init(&w->stopping, false);
	pthread_mutex_init(&w->health_lock, NULL);
	checkpointer_start(&w->ckpt, st, m);
	if ((rc = pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
		checkpointer_stop(&w->ckpt, st);
		pthread_mutex_destroy(&w->health_lock);
		free(w);
		errno = rc;
		return NULL;
	}
	/* For top -H and perf: the writer's time apart from the rest. */
	pthread_setname_np(w->thread, "writer");
	return w;
}

void
writer_stop(struct writer *w, struct writer_losses *out,
    void (*waiting)(void *), void *arg)
{
	struct timespec until;
	int error;

	w->stop_ns = now_mono_ns();
	queue_close(w->queue);		/* first: see writer_main */
	atomic_store(&w->stopping, true);
	for (;;) {
		/* pthread_timedjoin_np() takes CLOCK_REALTIME. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += WRITER_STOP_TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if ((error = pthread_timedjoin_np(w->thread, NULL, &until)) ==
		    0)
			break;
		if (error != ETIMEDOUT) {
			pthread_join(w->thread, NULL);
			break;
		}
		if (waiting != NULL)
			waiting(arg);
	}
	checkpointer_stop(&w->ckpt, w->store);
	*out = w->lost;
}

void
writer_free(struct writer *w)
{
	if (w == NULL)
		return;
	pthread_mutex_destroy(&w->health_lock);
	free(w);
}

#ifndef CALLHOOK_STORE_H
#define CALLHOOK_STORE_H

/*
 * The SQLite file: schema, migrations, and the upsert of one event. Used
 * by the daemon's writer thread and by the callhook tool. A struct store
 * belongs to one thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define STORE_SCHEMA_VERSION	3
#define STORE_REJECTS_KEPT	10000

struct store;
struct sqlite3;

struct store_options {
	const char	*path;
	bool		 readonly;	/* no migration; fails on a missing file */
	bool		 sync_full;	/* PRAGMA synchronous = FULL, else NORMAL */
	bool		 fts;		/* keep calls_fts (see store_fts_index) */
	bool		 known_dup;	/* a body kept as an earlier revision
					   is a duplicate too (import) */
	int		 busy_timeout_ms;
};

enum store_outcome {
	STORE_NEW,		/* first delivery of this callSid */
	STORE_DUPLICATE,	/* same body again: deliveries + 1 */
	STORE_REVISION,		/* different body: old one kept in call_revisions */
};

/* A refused request, for the rejects table. */
struct reject {
	char	 time[32];
	char	 remote_addr[64];
	int	 status;
	char	 reason[160];
	char	*body;		/* at most STORE_REJECT_BODY bytes, may be NULL */
	size_t	 body_len;
};
#define STORE_REJECT_BODY	4096

/*
 * Open (creating and migrating unless readonly) the database. Returns 0 or
 * a negative errno-style code with a message for the operator in err
 * (e.g. the file's schema is newer than this program).
 */
int	store_open(struct store **out, const struct store_options *opt,
	    char *err, size_t errlen);
/*
 * The schema version the file had when store_open() migrated it (1 or
 * more; the caller logs it), else 0: a new file, or one already current.
 */
int	store_migrated_from(const struct store *st);
/* Close; NULL is a no-op. Rolls back an open transaction. */
void	store_close(struct store *st);
/*
 * Why path, or its directory, cannot be written, in the operator's words
 * (missing directory, read-only file system, not writable by the uid):
 * true with the reason in why, false when nothing says so.
 */
bool	store_cannot_write(const char *path, char *why, size_t len);

/*
 * Transactions. The writer wraps each batch in store_begin/store_commit.
 * Return 0 or -EAGAIN for errors worth retrying later (busy, locked, disk
 * full, I/O, read-only), -EIO for others; store_errmsg() says what.
 * store_begin() fails with -ESTALE while the database file is not the
 * one opened (removed, or replaced at its path).
 */
int	store_begin(struct store *st);
/*
 * The same look as store_begin() takes, outside a transaction: -ESTALE
 * while the database file or its WAL is not the one opened, else 0.
 */
int	store_check_file(struct store *st);
int	store_commit(struct store *st);
void	store_rollback(struct store *st);

/*
 * Upsert one event inside the open transaction. Returns 0 with *outcome
 * set, -EAGAIN (retry the whole batch later) or -EINVAL (this event can
 * never be stored; the transaction stays usable).
 */
int	store_put(struct store *st, const struct event *ev,
	    enum store_outcome *outcome);

/*
 * Events that are most likely new, written with one INSERT of many rows
 * (up to STORE_RUN_MAX, and 128 KB of bodies), not one each: SQLite then
 * finds its place in the table and in each index once per run, not once
 * per row. *stored says how many from the start of evs[] are now new
 * rows; the others (a callSid already there, a row SQLite refuses, what
 * is left over from runs of 2, 4, 8, 16 and 32 rows, a body too large
 * for a run) go through store_put(), one at a time. Inside store_begin;
 * 0 or -EAGAIN as store_put.
 */
#define STORE_RUN_MAX	32
int	store_put_run(struct store *st, const struct event *const *evs,
	    int n, int *stored);

/*
 * The full-text index is deferred: new rows wait in fts_pending, where
 * search does not see them, until store_fts_index() indexes up to
 * max_rows of them, oldest first, in a transaction of its own (so not
 * inside store_begin/store_commit). Returns 0 with *indexed set to the
 * ids it took from the queue (fewer than max_rows: the queue is empty),
 * or an error as store_commit does. With fts off, or read-only, 0.
 */
int	store_fts_index(struct store *st, int max_rows, int *indexed);
/*
 * Rows waiting to be indexed: counted at store_open() and by
 * store_fts_count(), kept up to date by this connection's commits and
 * store_fts_index(). Other processes' inserts show at the next count.
 */
int64_t	store_fts_backlog(const struct store *st);
/*
 * When the latest delivery the file holds came (its received_at), in
 * ms since the epoch; 0 when it holds none or that cannot be read.
 */
uint64_t store_last_received_ms(struct store *st);
int	store_fts_count(struct store *st);

/* Append to rejects inside the open transaction, trimming it to
 * STORE_REJECTS_KEPT rows. Same returns as store_put. */
int	store_put_reject(struct store *st, const struct reject *rj);

/*
 * Checkpoints away from the writer. A store copies its WAL into the
 * database file when a commit finds 1000 pages in it, and that commit
 * waits for the copy and two fsyncs. After store_wal_notify(), each
 * commit calls fn(arg, pages) with the pages in the WAL instead, so that
 * another thread can checkpoint through its own connection from
 * store_open_checkpointer(); the commit then checkpoints only when the
 * WAL reaches 64 MB, to let it start over (see store.c).
 */
void	store_wal_notify(struct store *st, void (*fn)(void *arg, int pages),
	    void *arg);
/* A connection to of's file for store_checkpoint() only; close it first. */
int	store_open_checkpointer(struct store **out, struct store *of,
	    char *err, size_t errlen);
/*
 * Copy what the WAL holds into the database file, as far as other
 * connections allow without waiting (SQLITE_CHECKPOINT_PASSIVE): 0 with
 * the pages in the WAL and the pages copied so far, or -EAGAIN/-EIO;
 * -ESTALE, copying nothing, once the -shm was removed or replaced (a
 * checkpoint by the WAL index it held would damage the file).
 */
int	store_checkpoint(struct store *st, int *wal_pages, int *copied);
/*
 * Copy the whole WAL into the database, waiting up to the busy timeout
 * for readers to leave it, so that the next transaction writes it from
 * its start (a RESTART checkpoint). 0, or -EAGAIN when readers kept
 * some of it, or the error that did (-ESTALE as store_checkpoint()).
 */
int	store_restart_wal(struct store *st);

/*
 * Wait at most ms for a lock another connection holds, for the next
 * transactions; a negative ms, or one above the busy timeout the store
 * was opened with, means that timeout.
 */
void	store_limit_lock_wait(struct store *st, int ms);
/* SQLite's message for the last failure. */
const char *store_errmsg(struct store *st);
/*
 * True when the last transaction failed on a lock another connection
 * held (SQLITE_BUSY, SQLITE_LOCKED): nothing in it was the cause.
 */
bool	store_locked_out(struct store *st);
/*
 * True when the last transaction failed in a way no content of its own
 * could have avoided: a lock held elsewhere, a full disk, a read-only or
 * replaced file, no memory. Not for I/O errors (a write past a file size
 * limit is one, and so, alas, is a full quota) or a statement SQLite
 * refused. A damaged file too.
 */
bool	store_failed_for_all(struct store *st);
/*
 * True once SQLite has found the file damaged (SQLITE_CORRUPT,
 * SQLITE_NOTADB; not the full-text index alone): every transaction is
 * refused from then on, with store_errmsg() saying so.
 */
bool	store_damaged(const struct store *st);

/* The handle, for read-only queries by callhook. */
struct sqlite3 *store_db(struct store *st);

/* True for a sqlite result code that the writer should retry. */
bool	store_transient(int sqlite_rc);

#endif

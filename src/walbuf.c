/*
 * A SQLite VFS that writes a transaction's WAL frames in one pwrite().
 *
 * SQLite writes each WAL frame as two writes, its 24-byte header and its
 * page: a batch of 32 seed events is ~52 frames, 104 system calls, each
 * of which also makes the kernel prepare a page of the file for a part of
 * it. This VFS wraps the default one and, for a WAL file only, gathers
 * the frames a transaction appends in a buffer, and writes it out:
 *
 *   - in the xWrite of the page of a frame that ends a transaction (its
 *     header's "database size after commit" is not zero), so a failure
 *     (ENOSPC) is that write's, and SQLite fails the transaction before
 *     it publishes it in the wal-index;
 *   - before a write that does not follow the last one, or does not fit;
 *   - before any other call on the WAL file (read, sync, truncate, size,
 *     close), and before the database file's shared-memory calls.
 *
 * Only appends are gathered. A write below the furthest point written
 * (SQLite rewriting frame checksums at commit, or a page written again
 * in the same transaction) goes to the kernel at once: walRewriteChecksums
 * runs after the commit frame, and its last header would otherwise be
 * written out only from xShmBarrier, which cannot report an error.
 *
 * A failed write-out loses the gathered frames, which SQLite was told
 * were written. The error then sticks: every read, write and sync of the
 * WAL fails with it, so the transaction cannot commit, until the write
 * lock is released (SQLite rolled it back). That lock's release also
 * drops whatever a rolled-back transaction left gathered; a committed one
 * has nothing left by then. (So not for locking_mode = EXCLUSIVE, which
 * takes no shared-memory locks; callhookd does not use it.)
 *
 * The file's contents are those of the same writes without it; only the
 * moment the kernel sees them moves, and never past the end of the
 * transaction. Other files, and a WAL whose database file does not
 * promise power-safe overwrites (where SQLite pads the WAL to a sector
 * in pieces), pass straight through.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sqlite3.h>

#include "walbuf.h"

/*
 * SQLite's unix VFS writes at most 128 KB less a byte in one call (it
 * masks the length), and a short write is "database or disk is full".
 */
#define WALBUF_BYTES	(120 * 1024)
#define FRAME_HEADER	24		/* SQLite's WAL frame header */
#define WAL_WRITE_LOCK	0		/* its shared-memory lock slot */

struct wb_file {
	sqlite3_file	 base;		/* SQLite's view; methods below */
	struct wb_file	*wal;		/* database file: its WAL, if open */
	struct wb_file	*db;		/* WAL file: its database file */
	unsigned char	*buf;		/* WAL file: bytes not written yet */
	size_t		 len;
	sqlite3_int64	 at;		/* file offset of buf[0] */
	sqlite3_int64	 end;		/* furthest byte written, + 1 */
	bool		 commit_next;	/* the last header ended a commit */
	int		 err;		/* a failed write-out, until unlock */
	sqlite3_file	*real;		/* the wrapped file, after this */
};

static sqlite3_vfs walbuf_vfs;
static const sqlite3_io_methods wal_methods, db_methods, other_methods;

#define REAL(f)	(((struct wb_file *)(f))->real)

/* Write out what is gathered. A failure sticks (see the top). */
static int
flush(struct wb_file *p)
{
	int rc;

	if (p == NULL || p->len == 0)
		return SQLITE_OK;
	rc = p->real->pMethods->xWrite(p->real, p->buf, (int)p->len, p->at);
	p->len = 0;
	if (rc != SQLITE_OK)
		p->err = rc;
	return rc;
}

/* The write transaction is over: committed, or rolled back. */
static void
transaction_over(struct wb_file *p)
{
	if (p != NULL) {
		p->len = 0;
		p->end = 0;
		p->commit_next = false;
		p->err = SQLITE_OK;
	}
}

/* Frame header bytes 4..7: the database size after a commit, else 0. */
static bool
ends_commit(const unsigned char *h)
{
	return (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int
write_now(struct wb_file *p, const void *data, int amt, sqlite3_int64 off)
{
	int rc;

	if ((rc = flush(p)) != SQLITE_OK)
		return rc;
	return p->real->pMethods->xWrite(p->real, data, amt, off);
}

static int
wal_write(sqlite3_file *f, const void *data, int amt, sqlite3_int64 off)
{
	struct wb_file *p = (struct wb_file *)f;
	bool header = amt == FRAME_HEADER, last;
	int rc;

	if (p->err != SQLITE_OK)
		return p->err;
	if (off == 0)			/* a new WAL header: it starts over */
		p->end = 0;
	if (off < p->end || (size_t)amt > WALBUF_BYTES)
		return write_now(p, data, amt, off);
	p->end = off + amt;
	last = !header && p->commit_next;
	p->commit_next = header && ends_commit(data);
	if (p->len > 0 && (off != p->at + (sqlite3_int64)p->len ||
	    p->len + (size_t)amt > WALBUF_BYTES))
		if ((rc = flush(p)) != SQLITE_OK)
			return rc;
	if (p->len == 0)
		p->at = off;
	memcpy(p->buf + p->len, data, (size_t)amt);
	p->len += (size_t)amt;
	return last ? flush(p) : SQLITE_OK;
}

static int
wal_close(sqlite3_file *f)
{
	struct wb_file *p = (struct wb_file *)f;
	int rc = p->err != SQLITE_OK ? SQLITE_OK : flush(p), rc2;

	if (p->db != NULL && p->db->wal == p)
		p->db->wal = NULL;
	rc2 = p->real->pMethods->xClose(p->real);
	free(p->buf);
	p->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

static int
db_close(sqlite3_file *f)
{
	struct wb_file *p = (struct wb_file *)f;

	if (p->wal != NULL)
		p->wal->db = NULL;
	return p->real->pMethods->xClose(p->real);
}

/*
 * The rest pass through. On the WAL file, reads, syncs, truncates and
 * sizes fail with a stuck error, or come after what is gathered.
 */
#define AFTER_FLUSH(f, call)						\
	do {								\
		struct wb_file *p_ = (struct wb_file *)(f);		\
		int rc_ = p_->err != SQLITE_OK ? p_->err : flush(p_);	\
		return rc_ != SQLITE_OK ? rc_ : (call);			\
	} while (0)

static int
wal_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	AFTER_FLUSH(f, REAL(f)->pMethods->xRead(REAL(f), buf, amt, off));
}

static int
any_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int
any_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int
wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct wb_file *p = (struct wb_file *)f;

	if (p->end > size)
		p->end = size;
	AFTER_FLUSH(f, REAL(f)->pMethods->xTruncate(REAL(f), size));
}

static int
any_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
wal_sync(sqlite3_file *f, int flags)
{
	AFTER_FLUSH(f, REAL(f)->pMethods->xSync(REAL(f), flags));
}

static int
any_sync(sqlite3_file *f, int flags)
{
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
wal_size(sqlite3_file *f, sqlite3_int64 *size)
{
	AFTER_FLUSH(f, REAL(f)->pMethods->xFileSize(REAL(f), size));
}

static int
any_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int
any_lock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int
any_unlock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int
any_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

/* The others write out first, whatever comes of it, then always call. */
static int
wal_control(sqlite3_file *f, int op, void *arg)
{
	(void)flush((struct wb_file *)f);
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
any_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
any_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
any_device(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
db_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **pp)
{
	(void)flush(((struct wb_file *)f)->wal);
	return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, pp);
}

static int
db_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	struct wb_file *wal = ((struct wb_file *)f)->wal;

	if (offset == WAL_WRITE_LOCK && (flags & SQLITE_SHM_UNLOCK))
		transaction_over(wal);
	else
		(void)flush(wal);
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void
db_shm_barrier(sqlite3_file *f)
{
	/* Nothing gathered is left by now (see the top); a safety net. */
	(void)flush(((struct wb_file *)f)->wal);
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int
db_shm_unmap(sqlite3_file *f, int delete)
{
	(void)flush(((struct wb_file *)f)->wal);
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete);
}

static int
any_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int
any_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int
any_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static const sqlite3_io_methods wal_methods = {
	3, wal_close, wal_read, wal_write, wal_truncate, wal_sync, wal_size,
	any_lock, any_unlock, any_reserved, wal_control, any_sector,
	any_device, NULL, NULL, NULL, NULL, any_fetch, any_unfetch,
};

static const sqlite3_io_methods db_methods = {
	3, db_close, any_read, any_write, any_truncate, any_sync, any_size,
	any_lock, any_unlock, any_reserved, any_control, any_sector,
	any_device, db_shm_map, db_shm_lock, db_shm_barrier, db_shm_unmap,
	any_fetch, any_unfetch,
};

static const sqlite3_io_methods other_methods = {
	3, any_close, any_read, any_write, any_truncate, any_sync, any_size,
	any_lock, any_unlock, any_reserved, any_control, any_sector,
	any_device, NULL, NULL, NULL, NULL, any_fetch, any_unfetch,
};

static int
wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
    int *out)
{
	sqlite3_vfs *real_vfs = vfs->pAppData;
	struct wb_file *p = (struct wb_file *)f;
	int rc;

	memset(p, 0, sizeof(*p));
	p->real = (sqlite3_file *)(p + 1);
	if ((flags & SQLITE_OPEN_WAL) &&
	    (p->buf = malloc(WALBUF_BYTES)) == NULL)
		return SQLITE_NOMEM;
	rc = real_vfs->xOpen(real_vfs, name, p->real, flags, out);
	if (rc != SQLITE_OK || p->real->pMethods == NULL) {
		free(p->buf);
		p->buf = NULL;
		return rc;
	}
	if (flags & SQLITE_OPEN_WAL) {
		sqlite3_file *db = sqlite3_database_file_object(name);

		if (db == NULL || db->pMethods != &db_methods ||
		    !(db->pMethods->xDeviceCharacteristics(db) &
		    SQLITE_IOCAP_POWERSAFE_OVERWRITE)) {
			free(p->buf);
			p->buf = NULL;
			p->base.pMethods = &other_methods;
			return rc;
		}
		p->base.pMethods = &wal_methods;
		p->db = (struct wb_file *)db;
		p->db->wal = p;
	} else if (flags & SQLITE_OPEN_MAIN_DB) {
		p->base.pMethods = &db_methods;
	} else
		p->base.pMethods = &other_methods;
	return rc;
}

/* The rest of the VFS is the default one's. */
#define PASS(name, ...)	((sqlite3_vfs *)vfs->pAppData)->name(		\
	    (sqlite3_vfs *)vfs->pAppData, __VA_ARGS__)

static int
wb_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	return PASS(xDelete, name, sync);
}

static int
wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return PASS(xAccess, name, flags, out);
}

static int
wb_full(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return PASS(xFullPathname, name, n, out);
}

static int
wb_random(sqlite3_vfs *vfs, int n, char *out)
{
	return PASS(xRandomness, n, out);
}

static int
wb_sleep(sqlite3_vfs *vfs, int us)
{
	return PASS(xSleep, us);
}

static int
wb_time(sqlite3_vfs *vfs, double *t)
{
	return PASS(xCurrentTime, t);
}

static int
wb_error(sqlite3_vfs *vfs, int n, char *msg)
{
	return PASS(xGetLastError, n, msg);
}

static void *
wb_dlopen(sqlite3_vfs *vfs, const char *name)
{
	return PASS(xDlOpen, name);
}

static void
wb_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	PASS(xDlError, n, msg);
}

static void (*wb_dlsym(sqlite3_vfs *vfs, void *lib, const char *sym))(void)
{
	return PASS(xDlSym, lib, sym);
}

static void
wb_dlclose(sqlite3_vfs *vfs, void *lib)
{
	PASS(xDlClose, lib);
}

static int
wb_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	return PASS(xCurrentTimeInt64, t);
}

static void
register_once(void)
{
	sqlite3_vfs *real;

	if ((real = sqlite3_vfs_find(NULL)) == NULL ||
	    real->iVersion < 2 || real->xCurrentTimeInt64 == NULL)
		return;
	walbuf_vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(struct wb_file) + real->szOsFile,
		.mxPathname = real->mxPathname,
		.zName = "callhookd-walbuf",
		.pAppData = real,
		.xOpen = wb_open,
		.xDelete = wb_delete,
		.xAccess = wb_access,
		.xFullPathname = wb_full,
		.xDlOpen = wb_dlopen,
		.xDlError = wb_dlerror,
		.xDlSym = wb_dlsym,
		.xDlClose = wb_dlclose,
		.xRandomness = wb_random,
		.xSleep = wb_sleep,
		.xCurrentTime = wb_time,
		.xGetLastError = wb_error,
		.xCurrentTimeInt64 = wb_time64,
	};
	if (sqlite3_vfs_register(&walbuf_vfs, 0) != SQLITE_OK)
		walbuf_vfs.zName = NULL;
}

const char *
walbuf_register(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, register_once);
	return walbuf_vfs.zName;
}

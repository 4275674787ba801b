#ifndef CALLHOOK_DBLOCK_H
#define CALLHOOK_DBLOCK_H

/*
 * DATABASE.lock, the lock that keeps a database to one daemon: held by
 * callhookd from before it opens the file until it has closed it, and by
 * callhook restore while it replaces the file, so that a daemon started
 * meanwhile (by socket activation, say) stops instead of creating a new,
 * empty database that the restore would then replace.
 */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct dblock {
	int	 fd;			/* held, or -1 */
	bool	 created;		/* dblock_take() made the file */
	bool	 flock_failed;		/* it opened, and flock() failed */
	int	 pid_error;		/* why the pid could not be written
					   to a writable file, or 0 */
	char	 path[PATH_MAX + 8];	/* the lock file */
	char	 holder_pid[24];	/* held elsewhere: its pid, or
					   "unknown" */
	char	 holder[40];		/* and what it is, as it wrote it
					   ("callhook restore"), or "" */
};

/*
 * The database's own path, for its lock's name: through symlinks, even
 * to a file that does not exist yet (the first start makes it), so that
 * two names of one database are one lock. The path as given when its
 * directory cannot be resolved either.
 */
void	dblock_database_path(const char *db, char real[PATH_MAX]);

/*
 * Take the lock of database, without waiting, and write the caller's
 * pid in it, followed by who when not NULL (a daemon writes only its
 * pid). Returns 0 with lk->fd held; -EWOULDBLOCK when another process
 * holds it (lk->holder_pid and lk->holder say which); or another
 * negative errno, which dblock_error() puts in words. lk->path is set
 * in every case. The lock goes with lk->fd, or when the process ends.
 */
int	dblock_take(struct dblock *lk, const char *database, const char *who);
/* What went wrong when dblock_take() failed with error, not busy. */
void	dblock_error(const struct dblock *lk, const char *database, int error,
	    char *msg, size_t len);
/* Let go of the lock, if held; the file stays. */
void	dblock_release(struct dblock *lk);

#endif

/*
 * DATABASE.lock: see dblock.h. flock() on a file of its own, not on the
 * database, whose descriptors SQLite's POSIX locks must not share; the
 * kernel lets go of it when the process ends, however it ends. Shared by
 * callhookd (main.c) and callhook restore, so that both name the lock of
 * a database alike.
 */

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dblock.h"
#include "store.h"

#define MAX_SYMLINKS		40	/* Linux's */

/*
 * Where the symlink at link points, made absolute against its directory
 * when relative; false when link is not a symlink.
 */
static bool
follow_link(char link[PATH_MAX])
{
	char to[PATH_MAX], *slash;
	ssize_t n;

	if ((n = readlink(link, to, PATH_MAX - 1)) < 0)
		return false;
	to[n] = '\0';
	if (to[0] != '/' && (slash = strrchr(link, '/')) != NULL)
		snprintf(slash + 1, (size_t)(PATH_MAX - (slash + 1 - link)),
		    "%s", to);
	else
		memcpy(link, to, (size_t)n + 1);
	return true;
}

void
dblock_database_path(const char *db, char real[PATH_MAX])
{
	char link[PATH_MAX], dir[PATH_MAX];
	const char *name;
	size_t len;
	int hops;

	snprintf(link, PATH_MAX, "%s", db);
	for (hops = 0; hops < MAX_SYMLINKS; hops++) {
		if (realpath(link, real) != NULL)
			return;
		if (!follow_link(link))
			break;
	}
	/* Not there (yet): its directory's real path, and its name. */
	if ((name = strrchr(link, '/')) == NULL) {
		snprintf(dir, sizeof(dir), ".");
		name = link;
	} else {
		/* "/x": the directory is "/", not "". */
		snprintf(dir, sizeof(dir), "%.*s", name == link ? 1 :
		    (int)(name - link), link);
		name++;
	}
	if (hops == MAX_SYMLINKS || realpath(dir, real) == NULL) {
		snprintf(real, PATH_MAX, "%s", db);
		return;
	}
	len = strlen(real);
	if ((size_t)snprintf(real + len, PATH_MAX - len, "%s%s",
	    real[len - 1] == '/' ? "" : "/", name) >= PATH_MAX - len)
		snprintf(real, PATH_MAX, "%s", db);
}

/*
 * The holder as its lock file says: "PID" or "PID WHAT", if that
 * process lives. A holder that could not write it left an older one's
 * there: then "unknown", and no what.
 */
static void
read_holder(struct dblock *lk)
{
	char line[sizeof(lk->holder_pid) + sizeof(lk->holder)], *end;
	ssize_t n = pread(lk->fd, line, sizeof(line) - 1, 0);
	long v;

	line[n > 0 ? n : 0] = '\0';
	line[strcspn(line, "\n")] = '\0';
	v = strtol(line, &end, 10);
	if (v <= 0 || (kill((pid_t)v, 0) != 0 && errno == ESRCH)) {
		snprintf(lk->holder_pid, sizeof(lk->holder_pid), "unknown");
		return;
	}
	snprintf(lk->holder_pid, sizeof(lk->holder_pid), "%ld", v);
	snprintf(lk->holder, sizeof(lk->holder), "%s", end +
	    strspn(end, " "));
}

/*
 * Never through a symlink: the file is cut and written, and a link
 * planted by whoever can write the directory would have a process run
 * as root cut the file it names. flock() needs no write: a lock file
 * root left by hand is opened read-only.
 */
static int
open_lock(struct dblock *lk, bool *writable)
{
	int fd;

	*writable = true;
	fd = open(lk->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0640);
	if (fd >= 0) {
		lk->created = true;
		return fd;
	}
	if (errno != EEXIST)
		return -errno;
	if ((fd = open(lk->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) >= 0)
		return fd;
	if (errno == EACCES &&
	    (fd = open(lk->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		*writable = false;
		return fd;
	}
	return -errno;
}

int
dblock_take(struct dblock *lk, const char *database, const char *who)
{
	char real[PATH_MAX], line[sizeof(lk->holder_pid) + sizeof(lk->holder)];
	bool writable;
	int fd, n;

	memset(lk, 0, sizeof(*lk));
	lk->fd = -1;
	dblock_database_path(database, real);
	snprintf(lk->path, sizeof(lk->path), "%s.lock", real);
	if ((fd = open_lock(lk, &writable)) < 0)
		return fd;
	lk->fd = fd;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		n = errno;
		if (n == EWOULDBLOCK)
			read_holder(lk);
		lk->flock_failed = true;
		dblock_release(lk);
		return -n;
	}
	/* Read-only, the file keeps an older holder's: "pid unknown". */
	n = snprintf(line, sizeof(line), "%ld%s%s\n", (long)getpid(),
	    who != NULL ? " " : "", who != NULL ? who : "");
	errno = 0;
	if (writable && (ftruncate(fd, 0) != 0 ||
	    pwrite(fd, line, (size_t)n, 0) != n))
		lk->pid_error = errno != 0 ? errno : EIO;
	return 0;
}

void
dblock_error(const struct dblock *lk, const char *database, int error,
    char *msg, size_t len)
{
	char why[PATH_MAX + 200];

	if (lk->flock_failed)
		snprintf(msg, len, "%s: flock: %s", lk->path, strerror(-error));
	else if (error == -ELOOP)
		snprintf(msg, len, "%s is a symbolic link, not a lock file: "
		    "remove it", lk->path);
	/* Its directory's fault, as a rule: say it as the store would. */
	else if (store_cannot_write(database, why, sizeof(why)))
		snprintf(msg, len, "%s: %s", database, why);
	else if (store_cannot_write(lk->path, why, sizeof(why)))
		snprintf(msg, len, "%s: %s", lk->path, why);
	else
		snprintf(msg, len, "%s: %s", lk->path, strerror(-error));
}

void
dblock_release(struct dblock *lk)
{
	if (lk->fd >= 0)
		close(lk->fd);
	lk->fd = -1;
}

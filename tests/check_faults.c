/*
 * Faults: the real callhookd under the failures of issue 3, each checked
 * against the promise that a 200 is kept. Every test counts what it was
 * answered and then reads the database back: an event answered 200 and
 * missing from the file fails the test, whatever else went right.
 *
 * The short form runs in `make test`; TORTURE=1 (make torture) repeats
 * the kill -9 rounds 20 times and holds the locks in turn rather than
 * together. Every loop is bounded in count and in time, and all traffic
 * goes to 127.0.0.1.
 *
 * Several tests run their cases in threads at once, to keep the waits
 * of make check short; such a case reports its failure as a message for
 * the test's thread to assert, rather than asserting itself.
 *
 * Requests that may be held (ack = commit) go on connections that are
 * not half-closed: libmicrohttpd drops the answer of a held request whose
 * client shut down its sending side (see README, "Robustness").
 */

#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "testutil.h"

#define PATH		"/webhook/call-webhook"
#define JSON		"application/json"
#define FIXTURE_SID	"2303fa770b666a64ab1694c1e"
#define ACK_DEADLINE_MS	4500	/* main.c: a 503 before the sender's 5 s */
/*
 * The 503 is due at the deadline, not after the writer's lock wait (up
 * to 100 ms) and retry pause (up to 250 ms): it came at 4.6-4.78 s,
 * here at 4.6 s, the second wave's arrival at 4.5 s having cut the
 * writer's pause short for a last lock wait.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/*
 * Sanitizers slow every thread several times over, and make check runs
 * four daemons at once on two cores: an ASan run saw 4.601 s. The plain
 * build keeps the narrow slack that tells the old 4.6 s from 4.5 s.
 */
#define ACK_SLACK_MS	150
#else
#define ACK_SLACK_MS	50
#endif

static bool torture;
static char *seed;		/* tests/fixtures/call_ended.json */

/*
 * What must be undone however the test ends: the daemons, the tmpfs, the
 * immutable files. Check ends a failed test's process with _exit(), so
 * neither the teardown nor atexit() would run; a reaper process, forked
 * in setup, waits for the test's process to go (the pipe closes) and
 * undoes what is listed in shared memory. The daemon_procs themselves
 * stay private (tu_start's child writes d->pid too): proc_start() and
 * proc_stop() copy their pid to the list.
 */
#define UNDO_MAX	16

struct undo {
	pid_t	pids[UNDO_MAX];
	char	dirs[UNDO_MAX][256];
	char	mounts[UNDO_MAX][320];
	char	immutable[UNDO_MAX][320];
};

static struct undo *undo;
static struct daemon_proc procs[UNDO_MAX];
static int nprocs;
static long long setup_ms;

/* In the reaper: the daemons are not its children, only kill them. */
static void
reap(void)
{
	for (int i = 0; i < UNDO_MAX; i++)
		if (undo->immutable[i][0] != '\0')
			tu_sh("chattr -i '%s' 2>/dev/null", undo->immutable[i]);
	for (int i = 0; i < UNDO_MAX; i++)
		if (undo->pids[i] > 0)
			kill(undo->pids[i], SIGKILL);
	for (int i = 0; i < UNDO_MAX; i++)
		if (undo->mounts[i][0] != '\0')
			umount2(undo->mounts[i], MNT_DETACH);
	for (int i = 0; i < UNDO_MAX; i++)
		if (undo->dirs[i][0] != '\0')
			tu_sh("rm -rf '%s'", undo->dirs[i]);
}

static void
undo_path(char (*list)[320], const char *path)
{
	for (int i = 0; i < UNDO_MAX; i++) {
		if (list[i][0] == '\0') {
			snprintf(list[i], sizeof(list[i]), "%s", path);
			return;
		}
	}
	ck_abort_msg("undo list full");
}

static void
forget_path(char (*list)[320], const char *path)
{
	for (int i = 0; i < UNDO_MAX; i++)
		if (strcmp(list[i], path) == 0)
			list[i][0] = '\0';
}

static void
start_reaper(void)
{
	int p[2];
	pid_t pid;

	undo = mmap(NULL, sizeof(*undo), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(undo != MAP_FAILED);
	memset(undo, 0, sizeof(*undo));
	/* Close-on-exec: a daemon must not keep the pipe open. */
	ck_assert(pipe2(p, O_CLOEXEC) == 0);
	if ((pid = fork()) == 0) {
		char c;

		/* Out of the test's process group, which Check kills. */
		setpgid(0, 0);
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		reap();
		_exit(0);
	}
	ck_assert(pid > 0);
	close(p[0]);
	/* p[1] stays open until this process ends. */
}

static void
setup(void)
{
	const char *t = getenv("TORTURE");

	torture = t != NULL && *t != '\0' && strcmp(t, "0") != 0;
	seed = tu_fixture("call_ended.json", NULL);
	ck_assert_ptr_nonnull(seed);
	memset(procs, 0, sizeof(procs));
	nprocs = 0;
	start_reaper();
	setup_ms = tu_now_ms();
}

/* Only after a test that passed; the reaper handles the others. */
static void
teardown(void)
{
	for (int i = 0; i < UNDO_MAX; i++)
		if (undo->immutable[i][0] != '\0')
			tu_sh("chattr -i '%s' 2>/dev/null", undo->immutable[i]);
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid > 0)
			tu_stop(&procs[i], SIGKILL);
	for (int i = 0; i < UNDO_MAX; i++)
		if (undo->mounts[i][0] != '\0')
			umount2(undo->mounts[i], MNT_DETACH);
	for (int i = 0; i < nprocs; i++)
		tu_cleanup(&procs[i]);
	memset(undo, 0, sizeof(*undo));
	free(seed);
	seed = NULL;
	fprintf(stderr, "  (%.1f s)\n", (double)(tu_now_ms() - setup_ms) / 1000);
}

/* A fresh daemon_proc, undone whatever happens. */
static struct daemon_proc *
new_proc(void)
{
	struct daemon_proc *d;

	ck_assert_msg(nprocs < UNDO_MAX, "too many daemons");
	d = &procs[nprocs];
	tu_tmpdir(d);
	snprintf(undo->dirs[nprocs], sizeof(undo->dirs[nprocs]), "%s",
	    d->dir);
	nprocs++;
	return d;
}

static void
note_pid(const struct daemon_proc *d)
{
	undo->pids[d - procs] = d->pid;
}

static int
proc_start(struct daemon_proc *d, const char *ini)
{
	int rc = tu_start(d, ini, NULL);

	note_pid(d);
	return rc;
}

static int
proc_stop(struct daemon_proc *d, int sig)
{
	int rc = tu_stop(d, sig);

	note_pid(d);
	return rc;
}

static void
start_or_fail(struct daemon_proc *d, const char *ini)
{
	ck_assert_msg(proc_start(d, ini) == 0, "daemon did not start");
}

static void
stop_clean(struct daemon_proc *d)
{
	int rc = proc_stop(d, SIGTERM);

	if (rc != 0)
		tu_sh("tail -20 %s >&2", d->log);
	ck_assert_msg(rc == 0, "daemon exited with %d, not 0", rc);
}

static bool
alive(const struct daemon_proc *d)
{
	return d->pid > 0 && kill(d->pid, 0) == 0;
}

static void
sleep_until(long long when_ms)
{
	long long left = when_ms - tu_now_ms();

	if (left > 0)
		tu_sleep_ms((int)left);
}

static char *
event_body(const char *sid)
{
	return tu_replace(seed, FIXTURE_SID, sid);
}

/* The fixture with a transcription of size bytes: commits need pages. */
static char *
big_event_body(const char *sid, size_t size)
{
	char *pad = malloc(size + 1), *body, *out;

	memset(pad, 'x', size);
	pad[size] = '\0';
	body = event_body(sid);
	out = tu_replace(body, "Full call transcript...", pad);
	free(body);
	free(pad);
	return out;
}

/* ---- the database, read from outside the daemon ---- */

static sqlite3 *
db_open(const char *path, bool rw)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, rw ? SQLITE_OPEN_READWRITE :
	    SQLITE_OPEN_READONLY, NULL);
	ck_assert_msg(rc == SQLITE_OK, "open %s: %s", path,
	    db ? sqlite3_errmsg(db) : "?");
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static long long
db_int(const char *path, const char *sql)
{
	sqlite3 *db = db_open(path, false);
	sqlite3_stmt *st;
	long long v = -1;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/*
 * How many of sids[0..n) are not exactly once in calls; the first one
 * missing is copied to first.
 */
/* The payload stored for sid is body, byte for byte. */
static void
expect_payload(const char *path, const char *sid, const char *body)
{
	sqlite3 *db = db_open(path, false);
	sqlite3_stmt *st;
	const void *got;
	int n;

	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT payload FROM calls "
	    "WHERE call_sid = ?", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	got = sqlite3_column_blob(st, 0);
	n = sqlite3_column_bytes(st, 0);
	ck_assert_msg((size_t)n == strlen(body) && memcmp(got, body,
	    (size_t)n) == 0, "%s: payload of %d bytes, not the %zu sent", sid,
	    n, strlen(body));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static size_t
db_missing(const char *path, char *const *sids, size_t n, char *first,
    size_t flen)
{
	sqlite3 *db = db_open(path, false);
	sqlite3_stmt *st;
	size_t missing = 0;

	first[0] = '\0';
	ck_assert(sqlite3_prepare_v2(db, "SELECT count(*) FROM calls WHERE "
	    "call_sid = ?", -1, &st, NULL) == SQLITE_OK);
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_text(st, 1, sids[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_ROW ||
		    sqlite3_column_int(st, 0) != 1) {
			if (missing++ == 0)
				snprintf(first, flen, "%s", sids[i]);
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return missing;
}

/* Wait up to ms for every sid to be stored; the number still missing. */
static size_t
wait_stored(const char *path, char *const *sids, size_t n, int ms,
    char *first, size_t flen)
{
	long long until = tu_now_ms() + ms;
	size_t missing;

	while ((missing = db_missing(path, sids, n, first, flen)) > 0 &&
	    tu_now_ms() < until)
		tu_sleep_ms(50);
	return missing;
}

static void
expect_integrity(const char *path)
{
	sqlite3 *db = db_open(path, false);
	sqlite3_stmt *st;
	const char *res;

	ck_assert(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
	    NULL) == SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	res = (const char *)sqlite3_column_text(st, 0);
	ck_assert_msg(res != NULL && strcmp(res, "ok") == 0,
	    "integrity_check: %s", res ? res : "(null)");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The full-text index agrees with calls (needs a write handle). */
static void
expect_fts_integrity(const char *path)
{
	sqlite3 *db = db_open(path, true);
	char *err = NULL;
	int rc;

	rc = sqlite3_exec(db, "INSERT INTO calls_fts (calls_fts) VALUES "
	    "('integrity-check')", NULL, NULL, &err);
	ck_assert_msg(rc == SQLITE_OK, "fts integrity-check: %s",
	    err ? err : "?");
	sqlite3_close(db);
}

/* Another process's write lock on the file: BEGIN EXCLUSIVE. */
static sqlite3 *
lock_db(const char *path)
{
	sqlite3 *db = db_open(path, true);

	ck_assert_msg(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) ==
	    SQLITE_OK, "BEGIN EXCLUSIVE: %s", sqlite3_errmsg(db));
	return db;
}

static void
unlock_db(sqlite3 *db)
{
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
}

/* ---- answers ---- */

/* "" when r is the JSON answer SPEC section 3 describes, else why not. */
static const char *
json_answer_problem(const struct reply *r, char *why, size_t len)
{
	cJSON *j = cJSON_Parse(r->body ? r->body : ""), *st, *msg;

	why[0] = '\0';
	st = cJSON_GetObjectItemCaseSensitive(j, "status");
	msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (j == NULL)
		snprintf(why, len, "body is not JSON: %.80s", r->body);
	else if (!cJSON_IsString(st) || strcmp(st->valuestring,
	    r->status < 300 ? "success" : "error") != 0)
		snprintf(why, len, "body status is not \"%s\": %.80s",
		    r->status < 300 ? "success" : "error", r->body);
	else if (!cJSON_IsString(msg) || msg->valuestring[0] == '\0')
		snprintf(why, len, "body has no message: %.80s", r->body);
	cJSON_Delete(j);
	return why;
}

static void
expect_503(const struct reply *r, const char *what)
{
	char why[200], ra[32];

	ck_assert_msg(r->status == 503, "%s: status %d, want 503: %s", what,
	    r->status, r->body ? r->body : "");
	ck_assert_msg(tu_header(r, "Retry-After", ra, sizeof(ra)) == 0 &&
	    atoi(ra) > 0, "%s: 503 without Retry-After", what);
	ck_assert_msg(*json_answer_problem(r, why, sizeof(why)) == '\0',
	    "%s: %s", what, why);
}

/* GET /healthz: its status code, and its "store" and "queue" fields. */
static int
health(int port, char *store, size_t len, long long *queue)
{
	struct reply r;
	cJSON *j, *s, *q;
	int status;

	store[0] = '\0';
	if (tu_get(port, "/healthz", &r) != 0)
		return -1;
	status = r.status;
	j = cJSON_Parse(r.body);
	s = cJSON_GetObjectItemCaseSensitive(j, "store");
	q = cJSON_GetObjectItemCaseSensitive(j, "queue");
	if (cJSON_IsString(s))
		snprintf(store, len, "%s", s->valuestring);
	if (queue != NULL)
		*queue = cJSON_IsNumber(q) ? (long long)q->valuedouble : -1;
	cJSON_Delete(j);
	tu_reply_free(&r);
	return status;
}

static bool
log_has(const struct daemon_proc *d, const char *needle)
{
	char *log = tu_read_file(d->log, NULL);
	bool found = log != NULL && strstr(log, needle) != NULL;

	free(log);
	return found;
}

/* ---- one request in a thread of its own, to be held ---- */

struct poster {
	pthread_t	 thread;
	int		 port;
	char		 sid[64];
	char		*body;		/* owned; NULL: event_body(sid) */
	long long	 start_ms;
	long long	 elapsed_ms;
	struct reply	 r;
	int		 rc;
	bool		 running;	/* started and not yet joined */
};

static void *
poster_run(void *arg)
{
	struct poster *p = arg;

	if (p->body == NULL)
		p->body = event_body(p->sid);
	p->start_ms = tu_now_ms();
	p->rc = tu_post_conn(p->port, PATH, p->body, strlen(p->body), &p->r);
	p->elapsed_ms = tu_now_ms() - p->start_ms;
	return NULL;
}

static void
poster_start(struct poster *p, int port, const char *fmt, int i, char *body)
{
	memset(p, 0, sizeof(*p));
	p->port = port;
	snprintf(p->sid, sizeof(p->sid), fmt, i);
	p->body = body;
	p->running = pthread_create(&p->thread, NULL, poster_run, p) == 0;
	ck_assert(p->running);
}

/* Wait for the answer. A no-op for one not running. */
static void
poster_join(struct poster *p)
{
	if (!p->running)
		return;
	pthread_join(p->thread, NULL);
	p->running = false;
	free(p->body);
	p->body = NULL;
}

/* Join (so nothing runs on after a failure) and free the answer. */
static void
poster_done(struct poster *p)
{
	poster_join(p);
	tu_reply_free(&p->r);
}

/*
 * A client that posts an event and goes away before the answer: with a
 * FIN (close) or, with rst, a reset (SO_LINGER 0).
 */
static void
post_and_vanish(int port, const char *sid, bool rst, int after_ms)
{
	char *body = event_body(sid), head[256];
	struct linger lg = { 1, 0 };
	int s = tu_connect(port), n;

	ck_assert_int_ge(s, 0);
	n = snprintf(head, sizeof(head), "POST " PATH " HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: " JSON "\r\n"
	    "Content-Length: %zu\r\n\r\n", strlen(body));
	ck_assert(send(s, head, (size_t)n, MSG_NOSIGNAL) == n);
	ck_assert(send(s, body, strlen(body), MSG_NOSIGNAL) ==
	    (ssize_t)strlen(body));
	tu_sleep_ms(after_ms);
	if (rst)
		setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(s);
	free(body);
}

/* ---- load: clients on kept-alive connections logging every 200 ---- */

#define LOADERS		16

struct loader {
	pthread_t	 thread;
	int		 id;
	int		 port;
	const char	*prefix;
	atomic_bool	*stop;
	atomic_int	*answered;
	long long	 deadline_ms;
	char		**acked;	/* every callSid answered 200 */
	size_t		 nacked, cap;
	int		 n200, n503, nother;
	int		 nfail;		/* sent, and no whole answer came */
	int		 nconnect;	/* could not connect */
};

static void *
loader_run(void *arg)
{
	struct loader *l = arg;
	struct tu_conn c = { .fd = -1 };

	for (int seq = 0; seq < 200000 && !atomic_load(l->stop) &&
	    tu_now_ms() < l->deadline_ms; seq++) {
		char sid[64], *body;
		struct reply r;

		if (c.fd < 0 && tu_conn_open(&c, l->port, 10000) != 0) {
			l->nconnect++;
			tu_sleep_ms(5);
			continue;
		}
		snprintf(sid, sizeof(sid), "%s-%d-%d", l->prefix, l->id, seq);
		body = event_body(sid);
		if (tu_conn_post(&c, PATH, body, strlen(body), &r) != 0) {
			/* Unknown outcome: not logged, never reused. */
			l->nfail++;
		} else if (r.status == 200) {
			if (l->nacked == l->cap) {
				l->cap = l->cap ? l->cap * 2 : 256;
				l->acked = realloc(l->acked, l->cap *
				    sizeof(*l->acked));
			}
			l->acked[l->nacked++] = strdup(sid);
			l->n200++;
			atomic_fetch_add(l->answered, 1);
		} else if (r.status == 503) {
			l->n503++;
			atomic_fetch_add(l->answered, 1);
		} else {
			l->nother++;
		}
		tu_reply_free(&r);
		free(body);
	}
	tu_conn_close(&c);
	return NULL;
}

struct load {
	struct loader	 l[LOADERS];
	atomic_bool	 stop;
	atomic_int	 answered;
	char		**acked;	/* all loaders' acked, gathered */
	size_t		 nacked;
	int		 n200, n503, nother, nfail, nconnect;
};

static void
load_start(struct load *ld, int port, const char *prefix, int max_ms)
{
	memset(ld, 0, sizeof(*ld));
	atomic_init(&ld->stop, false);
	atomic_init(&ld->answered, 0);
	for (int i = 0; i < LOADERS; i++) {
		struct loader *l = &ld->l[i];

		l->id = i;
		l->port = port;
		l->prefix = prefix;
		l->stop = &ld->stop;
		l->answered = &ld->answered;
		l->deadline_ms = tu_now_ms() + max_ms;
		pthread_create(&l->thread, NULL, loader_run, l);
	}
}

/* Wait until n answers came (bounded); false on timeout. */
static bool
load_wait(struct load *ld, int n, int max_ms)
{
	long long until = tu_now_ms() + max_ms;

	while (atomic_load(&ld->answered) < n && tu_now_ms() < until)
		tu_sleep_ms(2);
	return atomic_load(&ld->answered) >= n;
}

static void
load_join(struct load *ld)
{
	size_t n = 0;

	atomic_store(&ld->stop, true);
	for (int i = 0; i < LOADERS; i++) {
		pthread_join(ld->l[i].thread, NULL);
		n += ld->l[i].nacked;
	}
	ld->acked = calloc(n + 1, sizeof(*ld->acked));
	for (int i = 0; i < LOADERS; i++) {
		struct loader *l = &ld->l[i];

		memcpy(ld->acked + ld->nacked, l->acked,
		    l->nacked * sizeof(*l->acked));
		ld->nacked += l->nacked;
		ld->n200 += l->n200;
		ld->n503 += l->n503;
		ld->nother += l->nother;
		ld->nfail += l->nfail;
		ld->nconnect += l->nconnect;
		free(l->acked);
	}
}

static void
load_free(struct load *ld)
{
	for (size_t i = 0; i < ld->nacked; i++)
		free(ld->acked[i]);
	free(ld->acked);
}

/* ---- kill -9 under load, ack = commit ---- */

START_TEST(test_kill9_under_load)
{
	struct daemon_proc *d = new_proc();
	int rounds = torture ? 20 : 3, total = 0;
	unsigned seed_rand = (unsigned)time(NULL) ^ (unsigned)getpid();

	fprintf(stderr, "kill9: %d rounds, random seed %u\n", rounds,
	    seed_rand);
	start_or_fail(d, NULL);
	for (int round = 0; round < rounds; round++) {
		struct load ld;
		char prefix[16], first[64];
		int wait_ms = (int)(rand_r(&seed_rand) % 400), rc;
		size_t missing;

		snprintf(prefix, sizeof(prefix), "k%d", round);
		load_start(&ld, d->port, prefix, 15000);
		ck_assert_msg(load_wait(&ld, 50, 10000),
		    "round %d: fewer than 50 answers in 10 s", round);
		tu_sleep_ms(wait_ms);
		rc = proc_stop(d, SIGKILL);
		load_join(&ld);
		ck_assert_int_eq(rc, 128 + SIGKILL);
		start_or_fail(d, NULL);
		missing = db_missing(d->db, ld.acked, ld.nacked, first,
		    sizeof(first));
		fprintf(stderr, "kill9 round %d: killed %d ms into load, "
		    "%d answered 200, %d 503, %d cut off, %zu missing\n",
		    round, wait_ms, ld.n200, ld.n503, ld.nfail, missing);
		ck_assert_msg(missing == 0, "round %d: %zu events answered 200 "
		    "are not in the database (first: %s)", round, missing,
		    first);
		ck_assert_int_eq(ld.nother, 0);
		ck_assert_int_ge(ld.n200, 50);
		expect_integrity(d->db);
		total += ld.n200;
		load_free(&ld);
	}
	stop_clean(d);
	expect_integrity(d->db);
	expect_fts_integrity(d->db);
	ck_assert_int_ge(db_int(d->db, "SELECT count(*) FROM calls"), total);
}
END_TEST

/* ---- SIGTERM under load, ack = enqueue ---- */

START_TEST(test_sigterm_enqueue_under_load)
{
	struct daemon_proc *d = new_proc();
	struct load ld;
	char first[64];
	size_t missing;
	int rc;

	start_or_fail(d, "[store]\nack = enqueue\n");
	load_start(&ld, d->port, "t", 15000);
	ck_assert(load_wait(&ld, 500, 10000));
	rc = proc_stop(d, SIGTERM);
	load_join(&ld);
	ck_assert_msg(rc == 0, "SIGTERM: exit %d", rc);
	missing = db_missing(d->db, ld.acked, ld.nacked, first, sizeof(first));
	fprintf(stderr, "sigterm/enqueue: %d answered 200, %d 503, %d cut "
	    "off, %zu missing\n", ld.n200, ld.n503, ld.nfail, missing);
	ck_assert_msg(missing == 0, "%zu events answered 200 are not in the "
	    "database (first: %s)", missing, first);
	ck_assert_int_eq(ld.nother, 0);
	expect_integrity(d->db);
	load_free(&ld);
}
END_TEST

/* ---- another process holds the write lock ---- */

#define WAVE	6

struct lock_case {
	pthread_t		 thread;
	struct daemon_proc	*d;
	bool			 commit;
	int			 hold_ms;
	char			 tag[16];
	char			 err[512];
};

static void *
lock_case_run(void *arg)
{
	struct lock_case *lc = arg;
	struct daemon_proc *d = lc->d;
	struct poster a[WAVE], b[WAVE];
	char *sids[2 * WAVE + 64], first[64], store[200], fmt[64];
	size_t n = 0, missing;
	bool late = lc->hold_ms > ACK_DEADLINE_MS;
	sqlite3 *h;
	long long t0;
	int hs;

#define FAIL(...) do { snprintf(lc->err, sizeof(lc->err), __VA_ARGS__); \
	goto out; } while (0)
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	h = lock_db(d->db);
	t0 = tu_now_ms();
	if (lc->commit) {
		snprintf(fmt, sizeof(fmt), "%s-a-%%d", lc->tag);
		for (int i = 0; i < WAVE; i++)
			poster_start(&a[i], d->port, fmt, i, NULL);
	} else {
		struct tu_conn c;

		if (tu_conn_open(&c, d->port, 5000) != 0)
			FAIL("%s: connect", lc->tag);
		for (int i = 0; i < 50; i++) {
			char sid[64], *body;
			struct reply r;
			long long t = tu_now_ms();

			snprintf(sid, sizeof(sid), "%s-e-%d", lc->tag, i);
			body = event_body(sid);
			if (tu_conn_post(&c, PATH, body, strlen(body), &r) ||
			    r.status != 200 || tu_now_ms() - t > 1000) {
				free(body);
				tu_conn_close(&c);
				FAIL("%s: enqueue while locked: status %d in "
				    "%lld ms, want 200 at once", lc->tag,
				    r.status, tu_now_ms() - t);
			}
			tu_reply_free(&r);
			free(body);
			sids[n++] = strdup(sid);
		}
		tu_conn_close(&c);
		/* Answered, but not yet in the file: the lock is real. */
		if (db_missing(d->db, sids, n, first, sizeof(first)) != n)
			FAIL("%s: events written through the lock", lc->tag);
	}
	tu_sleep_ms(1500);
	hs = health(d->port, store, sizeof(store), NULL);
	if (hs != 503 || strcmp(store, "ok") == 0)
		FAIL("%s: /healthz while locked: %d store \"%s\", want 503 "
		    "and the store error", lc->tag, hs, store);
	if (lc->commit && late) {
		char sid[64];

		/* Held past the deadline on a connection that is gone. */
		snprintf(sid, sizeof(sid), "%s-gone-fin", lc->tag);
		post_and_vanish(d->port, sid, false, 200);
		sids[n++] = strdup(sid);
		snprintf(sid, sizeof(sid), "%s-gone-rst", lc->tag);
		post_and_vanish(d->port, sid, true, 200);
		sids[n++] = strdup(sid);
		/* A second wave that the end of the lock will answer. */
		sleep_until(t0 + lc->hold_ms - ACK_DEADLINE_MS + 1000);
		snprintf(fmt, sizeof(fmt), "%s-b-%%d", lc->tag);
		for (int i = 0; i < WAVE; i++)
			poster_start(&b[i], d->port, fmt, i, NULL);
	}
	sleep_until(t0 + lc->hold_ms);
	unlock_db(h);
	h = NULL;
	if (lc->commit) {
		for (int i = 0; i < WAVE; i++) {
			poster_join(&a[i]);
			sids[n++] = strdup(a[i].sid);
		}
		for (int i = 0; late && i < WAVE; i++) {
			poster_join(&b[i]);
			sids[n++] = strdup(b[i].sid);
		}
		for (int i = 0; i < WAVE; i++) {
			char why[200], ra[16];
			struct poster *p = &a[i];

			if (p->rc != 0)
				FAIL("%s: %s got no answer", lc->tag, p->sid);
			if (!late && (p->r.status != 200 ||
			    p->elapsed_ms >= ACK_DEADLINE_MS))
				FAIL("%s: %s: %d after %lld ms, want 200 once "
				    "the lock goes", lc->tag, p->sid,
				    p->r.status, p->elapsed_ms);
			if (late && (p->r.status != 503 ||
			    tu_header(&p->r, "Retry-After", ra, sizeof(ra)) ||
			    *json_answer_problem(&p->r, why, sizeof(why)) ||
			    p->elapsed_ms < ACK_DEADLINE_MS - 500 ||
			    p->elapsed_ms > ACK_DEADLINE_MS + ACK_SLACK_MS))
				FAIL("%s: %s: %d after %lld ms, want 503 with "
				    "Retry-After at the %d ms deadline", lc->tag,
				    p->sid, p->r.status, p->elapsed_ms,
				    ACK_DEADLINE_MS);
		}
		for (int i = 0; late && i < WAVE; i++)
			if (b[i].rc != 0 || b[i].r.status != 200)
				FAIL("%s: %s: %d, want 200 once the lock goes",
				    lc->tag, b[i].sid, b[i].r.status);
	}
	/* Everything, 503s included, is written once the lock goes. */
	missing = wait_stored(d->db, sids, n, 10000, first, sizeof(first));
	if (missing > 0)
		FAIL("%s: %zu events lost after the lock (first: %s)",
		    lc->tag, missing, first);
	hs = health(d->port, store, sizeof(store), NULL);
	if (hs != 200 || strcmp(store, "ok") != 0)
		FAIL("%s: /healthz after the lock: %d \"%s\"", lc->tag, hs,
		    store);
	/*
	 * A 503 says which call it was, in the log and in rejects (the
	 * body was freed once parsed: neither had it), and so does the
	 * line for a client gone before its answer.
	 */
	if (lc->commit && late) {
		char want[64], sql[160];

		snprintf(want, sizeof(want), "callSid=%s-a-", lc->tag);
		if (!log_has(d, want))
			FAIL("%s: no \"%s\" in the log", lc->tag, want);
		snprintf(want, sizeof(want), "callSid=%s-gone-", lc->tag);
		if (!log_has(d, want))
			FAIL("%s: no \"%s\" in the log", lc->tag, want);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM rejects WHERE "
		    "status = 503 AND CAST(body AS TEXT) LIKE '%%\"%s-a-%%'",
		    lc->tag);
		if (db_int(d->db, sql) != WAVE)
			FAIL("%s: the 503s' rejects rows lack their bodies",
			    lc->tag);
	}
	fprintf(stderr, "lock %s: %zu events, all stored\n", lc->tag, n);
out:
	if (h != NULL)
		unlock_db(h);
	for (int i = 0; i < WAVE; i++) {
		poster_done(&a[i]);
		poster_done(&b[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(sids[i]);
	return NULL;
#undef FAIL
}

START_TEST(test_lock_held)
{
	static const struct { bool commit; int hold_ms; const char *tag; }
	    cases[] = {
		{ true, 3000, "c3" }, { true, 8000, "c8" },
		{ false, 3000, "e3" }, { false, 8000, "e8" },
	};
	struct lock_case lc[4];
	long long t0 = tu_now_ms();

	for (int i = 0; i < 4; i++) {
		memset(&lc[i], 0, sizeof(lc[i]));
		lc[i].d = new_proc();
		lc[i].commit = cases[i].commit;
		lc[i].hold_ms = cases[i].hold_ms;
		snprintf(lc[i].tag, sizeof(lc[i].tag), "%s", cases[i].tag);
		start_or_fail(lc[i].d, lc[i].commit ? NULL :
		    "[store]\nack = enqueue\n");
	}
	/* Together in make check; one after the other under torture. */
	for (int i = 0; i < 4; i++) {
		pthread_create(&lc[i].thread, NULL, lock_case_run, &lc[i]);
		if (torture)
			pthread_join(lc[i].thread, NULL);
	}
	for (int i = 0; i < 4 && !torture; i++)
		pthread_join(lc[i].thread, NULL);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(lc[i].err[0] == '\0', "%s", lc[i].err);
	for (int i = 0; i < 4; i++) {
		ck_assert(log_has(lc[i].d, "store failing"));
		ck_assert(log_has(lc[i].d, "store recovered"));
		stop_clean(lc[i].d);
		expect_integrity(lc[i].d->db);
	}
	fprintf(stderr, "lock: %lld ms\n", tu_now_ms() - t0);
}
END_TEST

/*
 * Brief locks, as callhook import and prune take (about 50 ms, more on
 * a loaded machine), longer than the writer's 100 ms busy timeout but
 * shorter than its grace: /healthz stays ok, the log quiet, and every
 * event is written once the lock goes. Before, /healthz answered 503
 * "database is locked" through a routine prune.
 */
START_TEST(test_lock_brief)
{
	struct daemon_proc *d = new_proc();
	char *sids[8], first[64], store[200], sid[32], *body;
	long long until;
	struct reply r;
	sqlite3 *h;
	size_t n = 0;
	int hs;

	start_or_fail(d, "[store]\nack = enqueue\n");
	for (int round = 0; round < 8; round++) {
		h = lock_db(d->db);
		snprintf(sid, sizeof(sid), "brief-%d", round);
		body = event_body(sid);
		ck_assert_int_eq(tu_post(d->port, PATH, JSON, body,
		    strlen(body), &r), 0);
		ck_assert_int_eq(r.status, 200);
		tu_reply_free(&r);
		free(body);
		sids[n++] = strdup(sid);
		for (until = tu_now_ms() + 400; tu_now_ms() < until;) {
			hs = health(d->port, store, sizeof(store), NULL);
			ck_assert_msg(hs == 200 && strcmp(store, "ok") == 0,
			    "/healthz during a 400 ms lock: %d \"%s\"", hs,
			    store);
			tu_sleep_ms(25);
		}
		unlock_db(h);
		tu_sleep_ms(100);
	}
	for (until = tu_now_ms() + 5000; tu_now_ms() < until &&
	    db_missing(d->db, sids, n, first, sizeof(first)) != 0;)
		tu_sleep_ms(50);
	ck_assert_msg(db_missing(d->db, sids, n, first, sizeof(first)) == 0,
	    "%s not written after the locks", first);
	stop_clean(d);
	ck_assert_msg(!log_has(d, "store failing"), "brief locks logged as "
	    "a failing store");
	for (size_t i = 0; i < n; i++)
		free(sids[i]);
}
END_TEST

/*
 * The same brief locks met by the full-text indexer, which works when no
 * event comes: it too must stay quiet until a lock has lasted the grace.
 * It logged "full-text indexing failed, will retry: database is locked"
 * at the first one (seen once in eleven imports of a 25 minute soak).
 * Each round queues a row by hand, as README says to, and takes the
 * lock at once for 900 ms, then leaves it free for 350: the idle writer
 * looks at its queue every second, so its looks fall at every phase of
 * the 1.25 s rounds, most of them into a lock.
 */
START_TEST(test_lock_brief_fts)
{
	struct daemon_proc *d = new_proc();
	char sql[512];
	sqlite3 *h;
	long long until;

	start_or_fail(d, "[store]\nfts = on\n");
	for (int round = 0; round < 8; round++) {
		h = db_open(d->db, true);
		snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;"
		    "INSERT INTO calls (call_sid, event, transcription, payload,"
		    " first_received_at, received_at) VALUES ('brief-fts-%d',"
		    " 'call_ended', 'brieffts', '{}',"
		    " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');"
		    "INSERT INTO fts_pending (id) VALUES (last_insert_rowid());"
		    "COMMIT; BEGIN EXCLUSIVE", round);
		ck_assert_msg(sqlite3_exec(h, sql, NULL, NULL, NULL) ==
		    SQLITE_OK, "%s", sqlite3_errmsg(h));
		tu_sleep_ms(900);
		unlock_db(h);
		tu_sleep_ms(350);
	}
	for (until = tu_now_ms() + 5000; tu_now_ms() < until &&
	    db_int(d->db, "SELECT count(*) FROM fts_pending") != 0;)
		tu_sleep_ms(50);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM calls_fts "
	    "WHERE calls_fts MATCH 'brieffts'"), 8);
	stop_clean(d);
	ck_assert_msg(!log_has(d, "full-text indexing failed"), "a brief "
	    "lock logged as a failure of the full-text index");
}
END_TEST

/* ---- disk full and a read-only file ---- */

enum store_fault { FAULT_TMPFS_FULL, FAULT_FSIZE, FAULT_IMMUTABLE };

struct store_case {
	pthread_t		 thread;
	struct daemon_proc	*d;
	enum store_fault	 fault;
	char			 filler[320];
	const char		*tag;
	const char		*expect;	/* in /healthz's store */
	char			 err[512];
};

static const char *const fault_name[] = {
	[FAULT_TMPFS_FULL] = "disk full (tmpfs)",
	[FAULT_FSIZE] = "disk full (RLIMIT_FSIZE)",
	[FAULT_IMMUTABLE] = "read-only file (chattr +i)",
};

static int
fault_inject(struct store_case *sc)
{
	struct daemon_proc *d = sc->d;
	char buf[65536];
	struct stat st;

	switch (sc->fault) {
	case FAULT_TMPFS_FULL: {
		int fd = open(sc->filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0)
			return -1;
		memset(buf, 'f', sizeof(buf));
		/* Bounded: the tmpfs is 8 MB. */
		for (int i = 0; i < 1024; i++)
			if (write(fd, buf, sizeof(buf)) < 0)
				break;
		close(fd);
		return errno == ENOSPC ? 0 : -1;
	}
	case FAULT_FSIZE: {
		char wal[340];
		struct rlimit rl;

		snprintf(wal, sizeof(wal), "%s-wal", d->db);
		if (stat(wal, &st) != 0)
			return -1;
		/* The soft limit only: raising a hard one back would need
		 * CAP_SYS_RESOURCE, which even root may lack here. */
		if (prlimit(d->pid, RLIMIT_FSIZE, NULL, &rl) != 0)
			return -1;
		rl.rlim_cur = (rlim_t)st.st_size;
		return prlimit(d->pid, RLIMIT_FSIZE, &rl, NULL);
	}
	case FAULT_IMMUTABLE:
		undo_path(undo->immutable, d->db);
		snprintf(buf, sizeof(buf), "%s-wal", d->db);
		undo_path(undo->immutable, buf);
		return tu_sh("chattr +i '%s' '%s-wal'", d->db, d->db);
	}
	return -1;
}

static void
fault_repair(struct store_case *sc)
{
	struct daemon_proc *d = sc->d;
	struct rlimit rl;
	char wal[340];

	switch (sc->fault) {
	case FAULT_TMPFS_FULL:
		unlink(sc->filler);
		break;
	case FAULT_FSIZE:
		if (prlimit(d->pid, RLIMIT_FSIZE, NULL, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			prlimit(d->pid, RLIMIT_FSIZE, &rl, NULL);
		}
		break;
	case FAULT_IMMUTABLE:
		tu_sh("chattr -i '%s' '%s-wal'", d->db, d->db);
		snprintf(wal, sizeof(wal), "%s-wal", d->db);
		forget_path(undo->immutable, d->db);
		forget_path(undo->immutable, wal);
		break;
	}
}

/*
 * sc->d, new, with its database on an 8 MB tmpfs that fault_inject()
 * fills. False, after saying the test is skipped, where mount is refused.
 */
static bool
on_small_tmpfs(struct store_case *sc, const char *what)
{
	struct daemon_proc *d = sc->d = new_proc();
	char mnt[280];

	sc->fault = FAULT_TMPFS_FULL;
	snprintf(mnt, sizeof(mnt), "%s/mnt", d->dir);
	mkdir(mnt, 0700);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0) {
		fprintf(stderr, "%s: no tmpfs here, skipped\n", what);
		return false;
	}
	undo_path(undo->mounts, mnt);
	snprintf(d->db, sizeof(d->db), "%s/calls.db", mnt);
	snprintf(sc->filler, sizeof(sc->filler), "%s/filler", mnt);
	return true;
}

static void *
store_case_run(void *arg)
{
	struct store_case *sc = arg;
	struct daemon_proc *d = sc->d;
	struct poster p[4];
	char *sids[8], first[64], store[200], fmt[64], fault_msg[200];
	size_t n = 0, missing;
	struct reply r;
	int hs;

#define FAIL(...) do { snprintf(sc->err, sizeof(sc->err), __VA_ARGS__); \
	goto out; } while (0)
	memset(p, 0, sizeof(p));
	if (fault_inject(sc) != 0)
		FAIL("%s: cannot inject %s", sc->tag, fault_name[sc->fault]);
	/* Big enough that a commit needs new pages of the file. */
	snprintf(fmt, sizeof(fmt), "%s-%%d", sc->tag);
	for (int i = 0; i < 4; i++) {
		char sid[64];

		snprintf(sid, sizeof(sid), fmt, i);
		poster_start(&p[i], d->port, fmt, i,
		    big_event_body(sid, 256 * 1024));
	}
	tu_sleep_ms(1500);
	hs = health(d->port, store, sizeof(store), NULL);
	if (hs != 503 || strstr(store, sc->expect) == NULL)
		FAIL("%s: /healthz during the fault: %d \"%s\", want 503 and "
		    "\"%s\"", sc->tag, hs, store, sc->expect);
	snprintf(fault_msg, sizeof(fault_msg), "%s", store);
	for (int i = 0; i < 4; i++) {
		char why[200], ra[16];

		poster_join(&p[i]);
		sids[n++] = strdup(p[i].sid);
		if (p[i].rc != 0 || p[i].r.status != 503 ||
		    tu_header(&p[i].r, "Retry-After", ra, sizeof(ra)) != 0 ||
		    *json_answer_problem(&p[i].r, why, sizeof(why)) != '\0' ||
		    strstr(p[i].r.body, sc->expect) == NULL)
			FAIL("%s: %s: %d %s, want a JSON 503 with Retry-After "
			    "saying \"%s\"", sc->tag, p[i].sid, p[i].r.status,
			    p[i].r.body ? p[i].r.body : "", sc->expect);
	}
	if (!alive(d))
		FAIL("%s: the daemon died", sc->tag);
	if (!log_has(d, "store failing"))
		FAIL("%s: no \"store failing\" line in the log", sc->tag);
	fault_repair(sc);
	missing = wait_stored(d->db, sids, n, 10000, first, sizeof(first));
	if (missing > 0)
		FAIL("%s: %zu events lost after the repair (first: %s)",
		    sc->tag, missing, first);
	/* The rows are visible at COMMIT, a moment before the writer
	 * notes the store healthy again. */
	for (int i = 0; i < 200; i++) {
		hs = health(d->port, store, sizeof(store), NULL);
		if (hs == 200 && strcmp(store, "ok") == 0)
			break;
		tu_sleep_ms(10);
	}
	if (hs != 200 || strcmp(store, "ok") != 0)
		FAIL("%s: /healthz after the repair: %d \"%s\"", sc->tag, hs,
		    store);
	{
		char *body = event_body("after-repair");

		tu_post_conn(d->port, PATH, body, strlen(body), &r);
		free(body);
		hs = r.status;
		tu_reply_free(&r);
		if (hs != 200)
			FAIL("%s: a post after the repair got %d", sc->tag, hs);
	}
	fprintf(stderr, "%s: /healthz said \"%s\"; 4 events answered 503, "
	    "all stored after the repair\n", fault_name[sc->fault], fault_msg);
out:
	fault_repair(sc);
	for (int i = 0; i < 4; i++)
		poster_done(&p[i]);
	for (size_t i = 0; i < n; i++)
		free(sids[i]);
	return NULL;
#undef FAIL
}

START_TEST(test_store_failures)
{
	struct store_case sc[2];
	char mnt[280];
	bool tmpfs;
	int i;

	memset(sc, 0, sizeof(sc));
	/*
	 * Disk full: a small tmpfs when mount works here, else (or with
	 * FAULTS_NO_TMPFS set) a file size limit put on the running daemon,
	 * which ignores SIGXFSZ, so that writes fail with EFBIG as a full
	 * disk fails them with ENOSPC.
	 */
	sc[0].d = new_proc();
	snprintf(mnt, sizeof(mnt), "%s/mnt", sc[0].d->dir);
	mkdir(mnt, 0700);
	tmpfs = getenv("FAULTS_NO_TMPFS") == NULL &&
	    mount("tmpfs", mnt, "tmpfs", 0, "size=8m") == 0;
	if (tmpfs) {
		undo_path(undo->mounts, mnt);
		snprintf(sc[0].d->db, sizeof(sc[0].d->db), "%s/calls.db", mnt);
		snprintf(sc[0].filler, sizeof(sc[0].filler), "%s/filler", mnt);
	}
	sc[0].fault = tmpfs ? FAULT_TMPFS_FULL : FAULT_FSIZE;
	sc[0].tag = "full";
	sc[0].expect = tmpfs ? "database or disk is full" : "disk I/O error";
	start_or_fail(sc[0].d, NULL);

	/* Read-only: as root only an immutable file refuses writes. */
	sc[1].d = new_proc();
	sc[1].fault = FAULT_IMMUTABLE;
	sc[1].tag = "ro";
	sc[1].expect = "disk I/O error";
	start_or_fail(sc[1].d, NULL);

	for (i = 0; i < 2; i++) {
		struct reply r;
		char *body = event_body(sc[i].tag);

		ck_assert_int_eq(tu_post_conn(sc[i].d->port, PATH, body,
		    strlen(body), &r), 0);
		ck_assert_int_eq(r.status, 200);
		tu_reply_free(&r);
		free(body);
	}
	if (tu_sh("chattr -i '%s' 2>/dev/null", sc[1].d->db) != 0) {
		fprintf(stderr, "read-only: chattr does not work here, "
		    "skipped\n");
		i = 1;
	} else
		i = 2;
	for (int k = 0; k < i; k++)
		pthread_create(&sc[k].thread, NULL, store_case_run, &sc[k]);
	for (int k = 0; k < i; k++)
		pthread_join(sc[k].thread, NULL);
	for (int k = 0; k < i; k++)
		ck_assert_msg(sc[k].err[0] == '\0', "%s", sc[k].err);
	for (int k = 0; k < 2; k++) {
		stop_clean(sc[k].d);
		expect_integrity(sc[k].d->db);
	}
}
END_TEST

/* ---- queue full ---- */

static void
queue_full_case(bool commit)
{
	struct daemon_proc *d = new_proc();
	struct poster held[5];
	char *sids[10], first[64], store[200];
	const char *mode = commit ? "c" : "e";
	long long queued = 0, until;
	sqlite3 *h;
	size_t n = 0;

	start_or_fail(d, commit ? "[store]\nqueue = 5\n" :
	    "[store]\nqueue = 5\nack = enqueue\n");
	h = lock_db(d->db);
	for (int i = 0; i < 5; i++) {
		char fmt[32];

		snprintf(fmt, sizeof(fmt), "qf-%s-in-%%d", mode);
		poster_start(&held[i], d->port, fmt, i, NULL);
		if (!commit)
			poster_join(&held[i]);
	}
	until = tu_now_ms() + 3000;
	while (queued < 5 && tu_now_ms() < until) {
		health(d->port, store, sizeof(store), &queued);
		tu_sleep_ms(20);
	}
	ck_assert_msg(queued == 5, "queue holds %lld, want 5", queued);
	for (int i = 0; i < 5; i++) {
		char sid[32], *body;
		struct reply r;
		long long t = tu_now_ms();

		snprintf(sid, sizeof(sid), "qf-%s-over-%d", mode, i);
		body = event_body(sid);
		ck_assert_int_eq(tu_post_conn(d->port, PATH, body,
		    strlen(body), &r), 0);
		expect_503(&r, sid);
		ck_assert_msg(strstr(r.body, "queue full") != NULL, "%s", r.body);
		ck_assert_int_lt(tu_now_ms() - t, 1000);
		tu_reply_free(&r);
		free(body);
	}
	unlock_db(h);
	/* In enqueue mode the answers came long ago: wait for the writer. */
	until = tu_now_ms() + 5000;
	while (!commit && queued > 0 && tu_now_ms() < until) {
		health(d->port, store, sizeof(store), &queued);
		tu_sleep_ms(20);
	}
	for (int i = 0; i < 5; i++) {
		poster_join(&held[i]);
		ck_assert_msg(held[i].rc == 0 && held[i].r.status == 200,
		    "%s: %d", held[i].sid, held[i].r.status);
		sids[n++] = strdup(held[i].sid);
		poster_done(&held[i]);
	}
	/* The refused ones are retried by the sender, and now accepted. */
	for (int i = 0; i < 5; i++) {
		char sid[32], *body;
		struct reply r;

		snprintf(sid, sizeof(sid), "qf-%s-over-%d", mode, i);
		body = event_body(sid);
		ck_assert_int_eq(tu_post_conn(d->port, PATH, body,
		    strlen(body), &r), 0);
		ck_assert_int_eq(r.status, 200);
		tu_reply_free(&r);
		free(body);
		sids[n++] = strdup(sid);
	}
	ck_assert_msg(wait_stored(d->db, sids, n, 5000, first,
	    sizeof(first)) == 0, "lost %s", first);
	ck_assert_int_ge(db_int(d->db, "SELECT count(*) FROM rejects WHERE "
	    "status = 503 AND reason LIKE 'queue full%'"), 5);
	stop_clean(d);
	for (size_t i = 0; i < n; i++)
		free(sids[i]);
}

START_TEST(test_queue_full)
{
	queue_full_case(true);
	queue_full_case(false);
}
END_TEST

/* ---- 2,000 idle connections trickling their headers ---- */

#define IDLE_CONNS	2000

START_TEST(test_idle_connections)
{
	static const char trickle[] = "POST " PATH " HTTP/1.1\r\nHost: x\r\n";
	struct daemon_proc *d = new_proc();
	struct rlimit rl;
	int *fds = calloc(IDLE_CONNS, sizeof(int));
	long long *closed_at = calloc(IDLE_CONNS, sizeof(long long));
	long long last_byte, until, first_close = -1, last_close = 0;
	int nclosed = 0, legit = 0;
	char *sids[32], first[64];
	size_t n = 0;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 8192) {
		rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ck_assert_msg(rl.rlim_cur >= IDLE_CONNS + 200, "RLIMIT_NOFILE %llu "
	    "is too low for %d connections", (unsigned long long)rl.rlim_cur,
	    IDLE_CONNS);
	/* The daemon inherits the raised limit. */
	start_or_fail(d, "[http]\nmax_connections = 4096\ntimeout = 2s\n");
	for (int i = 0; i < IDLE_CONNS; i++) {
		fds[i] = tu_connect(d->port);
		ck_assert_msg(fds[i] >= 0, "connection %d: %s", i,
		    strerror(errno));
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
	}
	/* A byte each every 400 ms: under the timeout, so all stay open. */
	for (int step = 0; step < 5; step++) {
		for (int i = 0; i < IDLE_CONNS; i++)
			ck_assert(send(fds[i], trickle + step, 1,
			    MSG_NOSIGNAL) == 1);
		last_byte = tu_now_ms();
		for (int k = 0; k < 4; k++) {
			char sid[32], *body;
			struct reply r;
			long long t = tu_now_ms();

			snprintf(sid, sizeof(sid), "legit-%d-%d", step, k);
			body = event_body(sid);
			ck_assert_int_eq(tu_post_conn(d->port, PATH, body,
			    strlen(body), &r), 0);
			ck_assert_msg(r.status == 200, "legit request: %d",
			    r.status);
			ck_assert_int_lt(tu_now_ms() - t, 1500);
			tu_reply_free(&r);
			free(body);
			sids[n++] = strdup(sid);
			legit++;
		}
		tu_sleep_ms(400);
	}
	/* Now idle: each must be closed once the timeout passes. */
	until = last_byte + 2000 + 4000;
	while (nclosed < IDLE_CONNS && tu_now_ms() < until) {
		for (int i = 0; i < IDLE_CONNS; i++) {
			char c;
			ssize_t k;

			if (fds[i] < 0)
				continue;
			k = recv(fds[i], &c, 1, 0);
			if (k > 0 || (k < 0 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK)))
				continue;
			closed_at[i] = tu_now_ms() - last_byte;
			close(fds[i]);
			fds[i] = -1;
			nclosed++;
		}
		tu_sleep_ms(50);
	}
	for (int i = 0; i < IDLE_CONNS; i++) {
		if (fds[i] >= 0) {
			close(fds[i]);
			continue;
		}
		if (first_close < 0 || closed_at[i] < first_close)
			first_close = closed_at[i];
		if (closed_at[i] > last_close)
			last_close = closed_at[i];
	}
	fprintf(stderr, "idle: %d legitimate requests answered, %d of %d idle "
	    "connections closed %lld..%lld ms after their last byte\n", legit,
	    nclosed, IDLE_CONNS, first_close, last_close);
	ck_assert_int_eq(nclosed, IDLE_CONNS);
	ck_assert_msg(first_close >= 1500, "closed %lld ms after the last byte, "
	    "before the 2 s timeout", first_close);
	ck_assert_msg(last_close <= 2000 + 2000, "closed %lld ms after the last "
	    "byte, long after the 2 s timeout", last_close);
	ck_assert(wait_stored(d->db, sids, n, 5000, first, sizeof(first)) == 0);
	ck_assert(alive(d));
	stop_clean(d);
	for (size_t i = 0; i < n; i++)
		free(sids[i]);
	free(fds);
	free(closed_at);
}
END_TEST

/* ---- a client that goes away while held ---- */

START_TEST(test_client_disconnects_while_held)
{
	struct daemon_proc *d = new_proc();
	char *sids[] = { "gone-fin", "gone-rst" }, first[64], store[200];
	char *half = event_body("gone-half"), head[256];
	sqlite3 *h;
	int s, k;

	start_or_fail(d, NULL);
	h = lock_db(d->db);
	post_and_vanish(d->port, "gone-fin", false, 300);
	post_and_vanish(d->port, "gone-rst", true, 300);
	/* And one that leaves halfway through its body: never an event. */
	s = tu_connect(d->port);
	ck_assert_int_ge(s, 0);
	k = snprintf(head, sizeof(head), "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: " JSON "\r\nContent-Length: %zu\r\n\r\n",
	    strlen(half));
	ck_assert(send(s, head, (size_t)k, MSG_NOSIGNAL) == k);
	ck_assert(send(s, half, strlen(half) / 2, MSG_NOSIGNAL) > 0);
	close(s);
	tu_sleep_ms(700);
	unlock_db(h);
	ck_assert_msg(wait_stored(d->db, sids, 2, 5000, first,
	    sizeof(first)) == 0, "%s lost", first);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM calls WHERE "
	    "call_sid = 'gone-half'"), 0);
	ck_assert_int_eq(health(d->port, store, sizeof(store), NULL), 200);
	ck_assert(alive(d));
	/* Under ASan, LeakSanitizer makes a leak a non-zero exit here. */
	stop_clean(d);
	free(half);
}
END_TEST

/*
 * ack = commit: a held event's 503 is due 4.5 s after its request's
 * headers, as the sender's 5 s run from its sending them, not after its
 * body's end. One whose body took 2 s got its 503 at 6.5 s, when the
 * sender had given up; the event itself is still stored.
 */
START_TEST(test_slow_body_due)
{
	struct daemon_proc *d = new_proc();
	char *body = event_body("slow-body"), head[256], buf[512] = "";
	char *sids[] = { "slow-body" }, first[64];
	long long t0, took;
	size_t len = strlen(body), got = 0;
	ssize_t n;
	sqlite3 *h;
	int s, k;

	start_or_fail(d, NULL);
	h = lock_db(d->db);
	s = tu_connect(d->port);
	ck_assert_int_ge(s, 0);
	k = snprintf(head, sizeof(head), "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: " JSON "\r\nContent-Length: %zu\r\n\r\n", len);
	t0 = tu_now_ms();
	ck_assert(send(s, head, (size_t)k, MSG_NOSIGNAL) == k);
	ck_assert(send(s, body, len - 20, MSG_NOSIGNAL) == (ssize_t)len - 20);
	tu_sleep_ms(2000);
	ck_assert(send(s, body + len - 20, 20, MSG_NOSIGNAL) == 20);
	while (got < sizeof(buf) - 1 && strstr(buf, "\r\n\r\n") == NULL &&
	    (n = recv(s, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	took = tu_now_ms() - t0;
	close(s);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 503", 12) == 0, "%s", buf);
	ck_assert_msg(took >= ACK_DEADLINE_MS &&
	    took <= ACK_DEADLINE_MS + ACK_SLACK_MS, "503 after %lld ms, want "
	    "%d ms from the headers", took, ACK_DEADLINE_MS);
	unlock_db(h);
	ck_assert_msg(wait_stored(d->db, sids, 1, 5000, first,
	    sizeof(first)) == 0, "%s lost", first);
	stop_clean(d);
	free(body);
}
END_TEST

/* ---- the corpus of bad requests ---- */

struct corpus_file {
	char	name[256];
	int	status;		/* 0: closed without an answer */
	bool	mhd;		/* libmicrohttpd's own HTML answer */
	int	number;
};

static int
corpus_cmp(const void *a, const void *b)
{
	return strcmp(((const struct corpus_file *)a)->name,
	    ((const struct corpus_file *)b)->name);
}

static size_t
corpus_list(const char *dir, struct corpus_file **out)
{
	struct corpus_file *f = NULL;
	struct dirent *de;
	size_t n = 0, cap = 0;
	DIR *dp = opendir(dir);

	ck_assert_msg(dp != NULL, "%s: %s", dir, strerror(errno));
	while ((de = readdir(dp)) != NULL) {
		size_t len = strlen(de->d_name);
		int num, status;
		char rest[256];

		if (len < 6 || strcmp(de->d_name + len - 5, ".http") != 0)
			continue;
		ck_assert_msg(sscanf(de->d_name, "%d-%d-%255s", &num, &status,
		    rest) == 3, "%s: not NNN-SSS-slug.http", de->d_name);
		if (n == cap)
			f = realloc(f, (cap = cap ? cap * 2 : 256) *
			    sizeof(*f));
		snprintf(f[n].name, sizeof(f[n].name), "%s", de->d_name);
		f[n].number = num;
		f[n].status = status;
		f[n].mhd = strncmp(rest, "mhd-", 4) == 0;
		n++;
	}
	closedir(dp);
	qsort(f, n, sizeof(*f), corpus_cmp);
	*out = f;
	return n;
}

/* Append a line to a growing failure report. */
static void
report(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	char line[512];
	int k;

	va_start(ap, fmt);
	k = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	*buf = realloc(*buf, *len + (size_t)k + 2);
	memcpy(*buf + *len, line, (size_t)k);
	*len += (size_t)k;
	(*buf)[(*len)++] = '\n';
	(*buf)[*len] = '\0';
}

/* Send raw; check the status and, unless told otherwise, the JSON. */
static void
check_raw(int port, const char *what, const char *req, size_t len,
    int want, bool json, bool closed_ok, char **fails, size_t *flen)
{
	struct reply r;
	char why[200];
	long long t0 = tu_now_ms();
	/* Half-closing loses the answer of a held request: only when none
	 * is expected, so that the daemon sees the request end. */
	int rc = closed_ok ? tu_raw(port, req, len, &r) :
	    tu_raw_timeout(port, req, len, want == 0, 10000, &r);

	if (tu_now_ms() - t0 > 2000)
		fprintf(stderr, "corpus: %s took %lld ms\n", what,
		    tu_now_ms() - t0);
	tu_reply_skip_interim(&r);
	if (want == 0 || (closed_ok && rc != 0)) {
		if (rc == 0 && !(closed_ok && r.status == want))
			report(fails, flen, "%s: answered %d, want the "
			    "connection closed", what, r.status);
	} else if (rc != 0) {
		report(fails, flen, "%s: no answer, want %d", what, want);
	} else if (r.status != want) {
		report(fails, flen, "%s: %d, want %d: %.100s", what, r.status,
		    want, r.body);
	} else if (json && *json_answer_problem(&r, why, sizeof(why))) {
		report(fails, flen, "%s: %s", what, why);
	}
	tu_reply_free(&r);
}

static char *
nested(const char *open, const char *close, int depth, const char *pre,
    const char *post, size_t *len)
{
	size_t ol = strlen(open), cl = strlen(close), pl = strlen(pre);
	size_t n = pl + (size_t)depth * (ol + cl) + strlen(post) + 8;
	char *s = malloc(n), *p = s;

	memcpy(p, pre, pl);
	p += pl;
	for (int i = 0; i < depth; i++, p += ol)
		memcpy(p, open, ol);
	memcpy(p, "1", 1);
	p++;
	for (int i = 0; i < depth; i++, p += cl)
		memcpy(p, close, cl);
	strcpy(p, post);
	*len = (size_t)(p - s) + strlen(post);
	return s;
}

/* POST body and check the status (and, unless 0, that it is JSON). */
static void
check_post(int port, const char *what, const char *body, size_t len,
    int want, const char *needle, char **fails, size_t *flen)
{
	struct reply r;
	char why[200];

	if (tu_post(port, PATH, JSON, body, len, &r) != 0)
		report(fails, flen, "%s: no answer, want %d", what, want);
	else if (r.status != want)
		report(fails, flen, "%s: %d, want %d: %.100s", what, r.status,
		    want, r.body);
	else if (*json_answer_problem(&r, why, sizeof(why)) != '\0')
		report(fails, flen, "%s: %s", what, why);
	else if (needle != NULL && strstr(r.body, needle) == NULL)
		report(fails, flen, "%s: %s, want \"%s\"", what, r.body,
		    needle);
	tu_reply_free(&r);
}

/* {"event":"call_ended","data":{"callSid":"xxx...x"}} of n x's. */
static char *
long_sid_body(size_t n, size_t *len)
{
	static const char pre[] = "{\"event\":\"call_ended\",\"data\":"
	    "{\"callSid\":\"", post[] = "\"}}";
	char *b = malloc(sizeof(pre) + n + sizeof(post));

	memcpy(b, pre, sizeof(pre) - 1);
	memset(b + sizeof(pre) - 1, 'x', n);
	memcpy(b + sizeof(pre) - 1 + n, post, sizeof(post));
	*len = sizeof(pre) - 1 + n + sizeof(post) - 1;
	return b;
}

/* The big ones, made here rather than kept in tests/corpus. */
static int
corpus_generated(int port, char **fails, size_t *flen)
{
	size_t len;
	char *body, *req;
	int k;

	body = nested("[", "]", 100000, "", "", &len);
	check_post(port, "array nested 100,000 deep", body, len, 400, NULL,
	    fails, flen);
	free(body);

	body = nested("{\"a\":", "}", 100000, "{\"event\":\"call_ended\","
	    "\"data\":{\"callSid\":\"deep\",\"call_metadata\":", "}}", &len);
	check_post(port, "object nested 100,000 deep in call_metadata", body,
	    len, 400, NULL, fails, flen);
	free(body);

	/* Under max_body: read, parsed, and the callSid refused. */
	body = long_sid_body(3 * 1024 * 1024, &len);
	check_post(port, "3 MB callSid", body, len, 400, "too long", fails,
	    flen);
	free(body);

	/* 10 MB: refused on its Content-Length before it is read. */
	body = long_sid_body(10 * 1024 * 1024, &len);
	check_post(port, "10 MB callSid", body, len, 413, NULL, fails, flen);

	/* The same, chunked: a 413 at its end or, past 256 KB over the
	 * cap, the connection closed (README, "HTTP answers"). */
	req = malloc(len + 512);
	k = sprintf(req, "POST " PATH " HTTP/1.1\r\nHost: x\r\nConnection: "
	    "close\r\nContent-Type: " JSON "\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n%zx\r\n", len);
	memcpy(req + k, body, len);
	memcpy(req + k + len, "\r\n0\r\n\r\n", 7);
	check_raw(port, "10 MB callSid, chunked", req, (size_t)k + len + 7, 413,
	    true, true, fails, flen);
	free(req);
	free(body);
	return 5;
}

START_TEST(test_corpus)
{
	struct daemon_proc *d = new_proc();
	const char *dir = getenv("CORPUS") ? getenv("CORPUS") : "tests/corpus";
	struct corpus_file *f;
	size_t n = corpus_list(dir, &f), flen = 0, nbad = 0, nok = 0;
	char *fails = NULL, **want_sids = calloc(n + 1, sizeof(char *));
	long long stored, refused_json = 0;
	size_t nwant = 0;
	int generated;

	ck_assert_msg(n >= 100, "only %zu files in %s", n, dir);
	start_or_fail(d, "[store]\nstrict = on\n");
	for (size_t i = 0; i < n; i++) {
		char path[600];
		size_t len;
		char *req;
		bool head;

		snprintf(path, sizeof(path), "%s/%s", dir, f[i].name);
		req = tu_read_file(path, &len);
		ck_assert_ptr_nonnull(req);
		head = strncmp(req, "HEAD ", 5) == 0;
		/* libmicrohttpd may refuse before the request is all sent,
		 * close, and so reset the connection under its answer. */
		check_raw(d->port, f[i].name, req, len, f[i].status,
		    !f[i].mhd && !head, f[i].mhd, &fails, &flen);
		free(req);
		if (f[i].status == 200) {
			char sid[16];

			snprintf(sid, sizeof(sid), "c%03d", f[i].number);
			want_sids[nwant++] = strdup(sid);
			nok++;
		} else {
			nbad++;
			if (f[i].status >= 400 && !f[i].mhd &&
			    strstr(f[i].name, "post-healthz") == NULL &&
			    strstr(f[i].name, "post-metrics") == NULL)
				refused_json++;
		}
		ck_assert_msg(alive(d), "the daemon died after %s", f[i].name);
	}
	generated = corpus_generated(d->port, &fails, &flen);
	ck_assert_msg(alive(d), "the daemon died on the generated inputs");
	{
		char *body = event_body("after-corpus");
		struct reply r;

		ck_assert_int_eq(tu_post_conn(d->port, PATH, body,
		    strlen(body), &r), 0);
		ck_assert_int_eq(r.status, 200);
		tu_reply_free(&r);
		free(body);
		want_sids[nwant++] = strdup("after-corpus");
	}
	fprintf(stderr, "corpus: %zu files (%zu refused, %zu valid per SPEC) "
	    "and %d generated inputs\n", n, nbad, nok, generated);
	/* Exactly the valid ones were stored, each once. */
	{
		char first[64];
		size_t missing = db_missing(d->db, want_sids, nwant, first,
		    sizeof(first));

		if (missing > 0)
			report(&fails, &flen, "%zu valid requests not stored "
			    "(first: %s)", missing, first);
	}
	stored = db_int(d->db, "SELECT count(*) FROM calls");
	if (stored != (long long)nwant) {
		sqlite3 *db = db_open(d->db, false);
		sqlite3_stmt *st;

		sqlite3_prepare_v2(db, "SELECT call_sid FROM calls", -1, &st,
		    NULL);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *sid = (const char *)sqlite3_column_text(st,
			    0);
			bool wanted = false;

			for (size_t i = 0; i < nwant && !wanted; i++)
				wanted = strcmp(want_sids[i], sid) == 0;
			if (!wanted)
				report(&fails, &flen, "stored, but should have "
				    "been refused: callSid %s", sid);
		}
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	/* Every refusal of ours is in the rejects table. */
	if (db_int(d->db, "SELECT count(*) FROM rejects") < refused_json)
		report(&fails, &flen, "rejects holds %lld rows, want >= %lld",
		    db_int(d->db, "SELECT count(*) FROM rejects"),
		    refused_json);
	stop_clean(d);
	for (size_t i = 0; i < nwant; i++)
		free(want_sids[i]);
	free(want_sids);
	free(f);
	ck_assert_msg(fails == NULL, "corpus failures:\n%s", fails);
}
END_TEST

/*
 * ---- the rescue file ----
 * The store stays locked through a whole stop in ack = enqueue mode:
 * after the writer's 20 s stop timeout, the events answered 200 must be
 * in DATABASE.unsaved.jsonl, exit status 1, and `callhook import` of that
 * file must store them all. Waits out the timeout, so make torture only.
 */
/* Post body on a connection of its own; it must be answered 200. */
static void
post_accepted(int port, const char *body)
{
	struct reply r;

	ck_assert_int_eq(tu_post(port, PATH, JSON, body, strlen(body), &r), 0);
	ck_assert_int_eq(r.status, 200);
	tu_reply_free(&r);
}

START_TEST(test_rescue_file)
{
	struct daemon_proc *d;
	char *sids[5], sid[32], path[400], *text;
	const char *cli = getenv("CALLHOOK") ? getenv("CALLHOOK") :
	    "build/callhook";
	sqlite3 *lock;

	if (!torture)
		return;
	d = new_proc();
	start_or_fail(d, "[store]\nack = enqueue\n");
	lock = lock_db(d->db);
	for (int i = 0; i < 5; i++) {
		char *body;

		snprintf(sid, sizeof(sid), "rescue-%d", i);
		sids[i] = strdup(sid);
		body = event_body(sid);
		post_accepted(d->port, body);
		free(body);
	}
	ck_assert_int_eq(proc_stop(d, SIGTERM), 1);
	ck_assert(log_has(d, "saved to"));
	unlock_db(lock);
	snprintf(path, sizeof(path), "%s.unsaved.jsonl", d->db);
	ck_assert_ptr_nonnull(text = tu_read_file(path, NULL));
	for (int i = 0; i < 5; i++)
		ck_assert_msg(strstr(text, sids[i]) != NULL, "%s not in %s",
		    sids[i], path);
	free(text);
	ck_assert_int_eq(db_missing(d->db, sids, 5, sid, sizeof(sid)), 5);
	ck_assert_int_eq(tu_sh("%s -d %s import %s >/dev/null", cli, d->db,
	    path), 0);
	ck_assert_int_eq(db_missing(d->db, sids, 5, sid, sizeof(sid)), 0);
	for (int i = 0; i < 5; i++)
		free(sids[i]);
}
END_TEST

/*
 * The rescue file on the same full disk as the database: the bodies go
 * to standard error, the log says so, and none is claimed saved.
 */
START_TEST(test_rescue_disk_full)
{
	struct store_case sc;
	struct daemon_proc *d;
	char sid[32], path[400], *log;
	struct stat st;

	if (!torture || !on_small_tmpfs(&sc, "rescue, disk full"))
		return;
	d = sc.d;
	start_or_fail(d, "[store]\nack = enqueue\n");
	ck_assert_int_eq(fault_inject(&sc), 0);
	for (int i = 0; i < 5; i++) {
		char *body;

		snprintf(sid, sizeof(sid), "unsaved-%d", i);
		body = big_event_body(sid, 256 * 1024);
		post_accepted(d->port, body);
		free(body);
	}
	ck_assert_int_eq(proc_stop(d, SIGTERM), 1);
	ck_assert(log_has(d, "5 events could be written neither to the "
	    "database nor to"));
	ck_assert(log_has(d, "load them, without that prefix, with callhook "
	    "import -"));
	ck_assert(!log_has(d, "were saved to"));
	ck_assert_ptr_nonnull(log = tu_read_file(d->log, NULL));
	for (int i = 0; i < 5; i++) {
		char *at;

		/* Quoted: the fixture's body has line breaks. */
		snprintf(sid, sizeof(sid), "\\\"unsaved-%d\\\"", i);
		ck_assert_msg((at = strstr(log, sid)) != NULL,
		    "%s not in the log", sid);
		/* On a line of its own, the body whole. */
		while (at > log && at[-1] != '\n')
			at--;
		ck_assert_int_eq(strncmp(at, "callhookd: unsaved event: \"{",
		    28), 0);
		ck_assert_ptr_nonnull(strstr(at, "xxx\\\""));
	}
	free(log);
	/*
	 * No half line is left for the next run to append to, nor an
	 * empty file that says nothing was set aside.
	 */
	snprintf(path, sizeof(path), "%s.unsaved.jsonl", d->db);
	ck_assert_msg(stat(path, &st) != 0, "%s left, %lld bytes", path,
	    (long long)st.st_size);
	fault_repair(&sc);
}
END_TEST

/* Let a stop waiting on the lock h finish: exit 0, and sid stored. */
static void
finish_stop(struct daemon_proc *d, sqlite3 *h, char *sid)
{
	char first[64];

	unlock_db(h);
	ck_assert_int_eq(proc_stop(d, SIGTERM), 0);
	ck_assert_msg(db_missing(d->db, &sid, 1, first, sizeof(first)) == 0,
	    "%s lost", first);
}

/*
 * A stop waiting for a locked store to take the queue refuses new
 * connections at once, rather than leaving them in the listen backlog
 * until the stop ends; the queued event is still stored. A second signal
 * cannot hurry the stop, but the log says what it waits for.
 */
START_TEST(test_stop_refuses_connections)
{
	struct daemon_proc *d = new_proc();
	char *body = event_body("queued-at-stop");
	char *sids[] = { "queued-at-stop" };
	const char *again = "received Interrupt while stopping; the stop "
	    "waits up to 20 s from its start for the store to take what is "
	    "not yet written (1 events); a SIGKILL would lose it";
	sqlite3 *h;
	int s = -1, saved = 0;

	start_or_fail(d, "[store]\nack = enqueue\n");
	h = lock_db(d->db);
	post_accepted(d->port, body);
	ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
	for (int i = 0; i < 100; i++, tu_sleep_ms(20)) {
		if ((s = tu_connect(d->port)) < 0) {
			saved = errno;
			break;
		}
		close(s);
	}
	/* A SYN that meets the listener as it closes is reset instead. */
	ck_assert_msg(s < 0 && (saved == ECONNREFUSED || saved == ECONNRESET),
	    "a connection was taken 2 s into a stop: %s", strerror(saved));
	ck_assert(alive(d));		/* still draining */
	/* Ctrl-C again: it cannot hurry the stop, but is answered. */
	ck_assert_int_eq(kill(d->pid, SIGINT), 0);
	for (int i = 0; i < 100 && !log_has(d, again); i++)
		tu_sleep_ms(20);
	ck_assert_msg(log_has(d, again), "no line: %s", again);
	ck_assert(alive(d));
	finish_stop(d, h, sids[0]);
	free(body);
}
END_TEST

/*
 * A connection kept alive across the start of a stop: its next answer
 * says "Connection: close" and closes it, so that the sender reconnects
 * (to the next daemon, under socket activation) rather than taking 503
 * after 503 on a connection that the stop keeps open while it waits.
 */
START_TEST(test_stop_closes_kept_connections)
{
	struct daemon_proc *d = new_proc();
	char *first = event_body("kept-first"), *queued = event_body(
	    "kept-queued"), *late = event_body("kept-late"), val[32];
	struct tu_conn c;
	struct reply r;
	sqlite3 *h;

	start_or_fail(d, "[store]\nack = enqueue\n");
	ck_assert_int_eq(tu_conn_open(&c, d->port, 5000), 0);
	ck_assert_int_eq(tu_conn_post(&c, PATH, first, strlen(first), &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(tu_header(&r, "Connection", val, sizeof(val)) != 0,
	    "Connection: %s before the stop", val);
	tu_reply_free(&r);
	h = lock_db(d->db);
	post_accepted(d->port, queued);		/* the stop waits for it */
	ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
	for (int i = 0; i < 100 && !log_has(d, "stopping"); i++)
		tu_sleep_ms(20);
	ck_assert_int_eq(tu_conn_post(&c, PATH, late, strlen(late), &r), 0);
	ck_assert_int_eq(r.status, 503);
	ck_assert_msg(tu_header(&r, "Connection", val, sizeof(val)) == 0 &&
	    strcasecmp(val, "close") == 0, "no Connection: close on the 503 "
	    "of a stop:\n%s", r.headers);
	tu_reply_free(&r);
	ck_assert_int_eq(c.fd, -1);
	finish_stop(d, h, "kept-queued");
	free(first);
	free(queued);
	free(late);
}
END_TEST

/*
 * The same for a request held for its commit when the stop begins: its
 * 200 closes the connection too.
 */
START_TEST(test_stop_closes_held_connection)
{
	struct daemon_proc *d = new_proc();
	struct poster p;
	char val[32];
	sqlite3 *h;

	start_or_fail(d, NULL);
	h = lock_db(d->db);
	poster_start(&p, d->port, "held-at-stop", 0, NULL);
	tu_sleep_ms(300);			/* held: the store is locked */
	ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
	for (int i = 0; i < 100 && !log_has(d, "stopping"); i++)
		tu_sleep_ms(20);
	unlock_db(h);
	poster_join(&p);
	ck_assert_msg(p.rc == 0 && p.r.status == 200, "%d %d", p.rc,
	    p.r.status);
	ck_assert_msg(tu_header(&p.r, "Connection", val, sizeof(val)) == 0 &&
	    strcasecmp(val, "close") == 0, "no Connection: close on a 200 "
	    "during the stop:\n%s", p.r.headers);
	ck_assert_int_eq(proc_stop(d, SIGTERM), 0);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM calls WHERE "
	    "call_sid = 'held-at-stop'"), 1);
	poster_done(&p);
}
END_TEST

/* A connection to unix:path, or -1. */
static int
unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int s;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

/* Write a POST of body on s; 0 or -1. */
static int
unix_send_post(int s, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n", PATH, JSON,
	    strlen(body));

	return write(s, head, (size_t)n) == n && write(s, body,
	    strlen(body)) == (ssize_t)strlen(body) ? 0 : -1;
}

/*
 * On a unix socket, shutdown() refuses new connections but leaves those
 * already in the backlog waiting (a TCP one drops them): the stop must
 * not keep them waiting until it ends either, as close() did not.
 */
START_TEST(test_stop_unix_backlog)
{
	struct daemon_proc *d = new_proc();
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	char *body = event_body("unix-backlog"), sock[300], buf[64];
	char *sids[] = { "unix-backlog" };
	struct pollfd pfd = { .events = POLLIN };
	sqlite3 *h;
	FILE *f;
	int s, idle, ready;
	bool up = false;

	snprintf(sock, sizeof(sock), "%s/d.sock", d->dir);
	ck_assert_ptr_nonnull(f = fopen(d->ini, "w"));
	fprintf(f, "[http]\nlisten = unix:%s\nmax_connections = 1\n[store]\n"
	    "ack = enqueue\ndatabase = %s\n", sock, d->db);
	fclose(f);
	ck_assert_int_ge(d->pid = fork(), 0);
	if (d->pid == 0) {
		if (freopen(d->log, "a", stderr) == NULL)
			_exit(127);
		execl(bin, bin, "-c", d->ini, (char *)NULL);
		_exit(127);
	}
	note_pid(d);
	/* Up: the socket listens before the store is open. */
	for (int i = 0; i < 500 && !up; i++, tu_sleep_ms(20)) {
		char *log = tu_read_file(d->log, NULL);

		up = log != NULL && strstr(log, "listening on unix:") != NULL;
		free(log);
	}
	ck_assert_msg(up, "no daemon on unix:%s", sock);
	h = lock_db(d->db);
	/* Queued, not stored: the stop waits for the store. */
	ck_assert_int_ge(s = unix_connect(sock), 0);
	ck_assert_int_eq(unix_send_post(s, body), 0);
	ck_assert_int_gt(read(s, buf, sizeof(buf) - 1), 12);
	ck_assert_int_eq(strncmp(buf, "HTTP/1.1 200", 12), 0);
	close(s);
	/* The one connection allowed; the next waits in the backlog. */
	ck_assert_int_ge(idle = unix_connect(sock), 0);
	tu_sleep_ms(200);
	ck_assert_int_ge(pfd.fd = unix_connect(sock), 0);
	ck_assert_int_eq(unix_send_post(pfd.fd, body), 0);
	ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
	ready = poll(&pfd, 1, 2000);
	ck_assert(alive(d));		/* still draining */
	ck_assert_msg(ready == 1, "a connection in the backlog was left "
	    "waiting 2 s into a stop");
	ck_assert_int_lt(unix_connect(sock), 0);
	close(pfd.fd);
	close(idle);
	finish_stop(d, h, sids[0]);
	free(body);
}
END_TEST

/*
 * ---- an event that fails every time ----
 * Under a file size limit (ulimit -f, systemd's LimitFSIZE=) that the
 * rescue file can hold one big event within but the WAL cannot, each
 * transaction holding it fails with an I/O error SQLite calls transient,
 * like any failing disk. The daemon must not die of SIGXFSZ, the event
 * must not hold up those posted after it, and it must be set aside in
 * the rescue file, from which `callhook import` loads it: 503 in commit
 * mode, where its sender waits; its 200 is already sent in enqueue mode.
 * (A WAL frame holds 4,092 bytes of an overflow chain in 4,120: the WAL
 * needs 14 KB more than the body, the rescue file one byte.)
 */
#define POISON_BYTES	(2 * 1024 * 1024)
#define POISON_LIMIT	(POISON_BYTES + 8 * 1024)

/* Start d with every file it writes limited to POISON_LIMIT bytes. */
static void
start_size_limited(struct daemon_proc *d, const char *ini)
{
	struct rlimit old, lim;

	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = POISON_LIMIT;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	start_or_fail(d, ini);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
}

/* Wait up to 5 s for a counter to reach at least value. */
static void
await_metric(int port, const char *name, long long value)
{
	long long until = tu_now_ms() + 5000;

	while (tu_metric(port, name) < value) {
		ck_assert_msg(tu_now_ms() < until, "%s stays under %lld",
		    name, value);
		tu_sleep_ms(5);
	}
}

/*
 * Post small[0], then big_sid's event, too big for the file size limit,
 * then small[1] once the big one's commit has failed; the big one must
 * be answered want.
 */
static void
post_big_between(struct daemon_proc *d, char *small[2], const char *big_sid,
    int want)
{
	struct poster big;
	char *body;

	post_accepted(d->port, body = event_body(small[0]));
	free(body);
	poster_start(&big, d->port, big_sid, 0,
	    big_event_body(big_sid, POISON_BYTES));
	await_metric(d->port, "callhookd_commit_failures_total", 1);
	post_accepted(d->port, body = event_body(small[1]));
	free(body);
	poster_join(&big);
	ck_assert_int_eq(big.rc, 0);
	ck_assert_msg(big.r.status == want, "big event: %d, want %d: %s",
	    big.r.status, want, big.r.body);
	poster_done(&big);
}

static void
poison_event(const char *ini, int big_status)
{
	struct daemon_proc *d = new_proc();
	char *small[2] = { "poison-before", "poison-after" };
	char *big_sid[1] = { "poison-big" }, sid[32], path[400], *text;
	const char *cli = getenv("CALLHOOK") ? getenv("CALLHOOK") :
	    "build/callhook";
	char store[200], *body;
	struct stat sb;
	int fd;

	/* An operator's private database: the rescue file must be too. */
	ck_assert_int_ge(fd = open(d->db, O_WRONLY | O_CREAT, 0600), 0);
	close(fd);
	start_size_limited(d, ini);
	post_big_between(d, small, big_sid[0], big_status);
	/* In enqueue mode the 200 came first: give the writer time. */
	await_metric(d->port, "callhookd_events_set_aside_total", 1);
	ck_assert_int_eq(db_missing(d->db, small, 2, sid, sizeof(sid)), 0);
	ck_assert_int_eq(db_missing(d->db, big_sid, 1, sid, sizeof(sid)), 1);
	ck_assert(log_has(d, "callSid poison-big cannot be stored (disk I/O "
	    "error); its event is set aside in"));
	ck_assert_int_eq(tu_metric(d->port, "callhookd_events_set_aside_total"),
	    1);
	ck_assert_int_gt(tu_metric(d->port, "callhookd_rescue_file_bytes"),
	    POISON_BYTES);
	/* The writer marks the store healthy just after it sets aside. */
	for (int i = 0; i < 100 && health(d->port, store, sizeof(store),
	    NULL) != 200; i++)
		tu_sleep_ms(20);
	ck_assert_int_eq(health(d->port, store, sizeof(store), NULL), 200);
	snprintf(path, sizeof(path), "%s.unsaved.jsonl", d->db);
	ck_assert_ptr_nonnull(text = tu_read_file(path, NULL));
	/* One line, quoted: the fixture's body has line breaks. */
	ck_assert_ptr_nonnull(strstr(text, "\\\"poison-big\\\""));
	ck_assert_msg(text[0] == '"' && strchr(text, '\n') == text +
	    strlen(text) - 1, "not one quoted line: %.80s", text);
	free(text);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(tu_sh("%s -d %s import %s >/dev/null", cli, d->db,
	    path), 0);
	ck_assert_int_eq(db_missing(d->db, big_sid, 1, sid, sizeof(sid)), 0);
	/* Byte for byte, or the sender's retry would be a revision. */
	body = big_event_body(big_sid[0], POISON_BYTES);
	expect_payload(d->db, big_sid[0], body);
	free(body);
	stop_clean(d);
}

/*
 * The same limit, with the big event first in a batch of a hundred: the
 * batch gathers behind a lock (a lock held elsewhere is never blamed on
 * an event), then fails on the big one alone. Every small event must be
 * stored and only the big one set aside; a later, small revision of the
 * same call must win over it, as it came later; and a stop must remind
 * the operator of the rescue file.
 */
#define CROWD	100

START_TEST(test_poison_in_a_crowd)
{
	struct daemon_proc *d = new_proc();
	char *sids[CROWD], sid[32], path[400], *text, *at, *body;
	sqlite3 *lock;

	start_size_limited(d, "[store]\nack = enqueue\n");
	lock = lock_db(d->db);
	post_accepted(d->port, body = big_event_body("crowd-same",
	    POISON_BYTES));
	free(body);
	for (int i = 0; i < CROWD; i++) {
		snprintf(sid, sizeof(sid), "crowd-%d", i);
		sids[i] = strdup(sid);
		post_accepted(d->port, body = event_body(sid));
		free(body);
	}
	post_accepted(d->port, body = event_body("crowd-same"));
	free(body);
	await_metric(d->port, "callhookd_commit_failures_total", 3);
	unlock_db(lock);
	await_metric(d->port, "callhookd_events_set_aside_total", 1);
	ck_assert_int_eq(wait_stored(d->db, sids, CROWD, 5000, sid,
	    sizeof(sid)), 0);
	at = "crowd-same";
	ck_assert_int_eq(wait_stored(d->db, &at, 1, 5000, sid, sizeof(sid)),
	    0);
	ck_assert_int_eq(db_int(d->db, "SELECT length(transcription) < 1000 "
	    "FROM calls WHERE call_sid = 'crowd-same'"), 1);
	ck_assert_int_eq(tu_metric(d->port, "callhookd_events_set_aside_total"),
	    1);
	snprintf(path, sizeof(path), "%s.unsaved.jsonl", d->db);
	ck_assert_ptr_nonnull(text = tu_read_file(path, NULL));
	ck_assert_ptr_nonnull(at = strstr(text, "\\\"crowd-same\\\""));
	ck_assert_ptr_nonnull(strstr(at, "xxxx"));
	ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1,
	    "more than the big event set aside");
	free(text);
	stop_clean(d);
	ck_assert(log_has(d, "1 events the database would not take were set "
	    "aside while running"));
	for (int i = 0; i < CROWD; i++)
		free(sids[i]);
}
END_TEST

/*
 * A reader's snapshot, held while n events of size bytes named prefix-i
 * go in: checkpoints cannot copy them. Commit and close it to let go.
 */
static sqlite3 *
hold_wal(const struct daemon_proc *d, const char *prefix, int n,
    size_t size)
{
	sqlite3 *reader = db_open(d->db, false);
	char sid[32], *body;

	ck_assert_int_eq(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM "
	    "calls", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < n; i++) {
		snprintf(sid, sizeof(sid), "%s-%d", prefix, i);
		post_accepted(d->port, body = big_event_body(sid, size));
		free(body);
	}
	return reader;
}

/* Limit the files d writes to its WAL's size and extra bytes more. */
static void
limit_to_wal(const struct daemon_proc *d, off_t extra)
{
	char wal[340];
	struct rlimit rl;
	struct stat st;

	snprintf(wal, sizeof(wal), "%s-wal", d->db);
	ck_assert_int_eq(stat(wal, &st), 0);
	ck_assert_int_eq(prlimit(d->pid, RLIMIT_FSIZE, NULL, &rl), 0);
	rl.rlim_cur = (rlim_t)(st.st_size + extra);
	ck_assert_int_eq(prlimit(d->pid, RLIMIT_FSIZE, &rl, NULL), 0);
}

/*
 * Post a big event (size bytes), wait for the writer to fail on it, post
 * a small one of another call, and wait for that one to be stored.
 */
static void
big_then_small(const struct daemon_proc *d, const char *big, size_t size,
    char *small)
{
	char sid[32], *body;

	post_accepted(d->port, body = big_event_body(big, size));
	free(body);
	await_metric(d->port, "callhookd_commit_failures_total", 1);
	post_accepted(d->port, body = event_body(small));
	free(body);
	ck_assert_int_eq(wait_stored(d->db, &small, 1, 15000, sid,
	    sizeof(sid)), 0);
}

/*
 * An event the WAL has no room for only while a reader holds it at its
 * full size (the room left at its end fits a small event, not this one):
 * the small event posted after it must be stored meanwhile, and the big
 * one kept, not set aside, and stored once the reader has gone.
 */
START_TEST(test_no_room_is_not_poison)
{
	struct daemon_proc *d = new_proc();
	char sid[32], *small[1] = { "room-small" }, *big[1] = { "room-big" };
	sqlite3 *reader;

	start_or_fail(d, "[store]\nack = enqueue\n");
	reader = hold_wal(d, "room-fill", 3, 64 * 1024);
	await_metric(d->port, "callhookd_events_stored_total", 3);
	/* Indexed first: indexing later would take the room below. */
	ck_assert_int_eq(tu_wait_indexed(d->port, 10000), 0);
	limit_to_wal(d, 14 * 4120);		/* 14 WAL frames of room */
	big_then_small(d, big[0], 64 * 1024, small[0]);
	ck_assert_int_eq(db_missing(d->db, big, 1, sid, sizeof(sid)), 1);
	sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(reader);
	ck_assert_int_eq(wait_stored(d->db, big, 1, 5000, sid, sizeof(sid)),
	    0);
	ck_assert_int_eq(tu_metric(d->port, "callhookd_events_set_aside_total"),
	    0);
	stop_clean(d);
}
END_TEST

/*
 * A full disk (an 8 MB tmpfs) where the WAL, emptied, has room for small
 * events in the frames its file already has, and the database file for
 * their pages among its free ones, but a 1 MB event needs the WAL file
 * to grow: enqueue mode, so the big event was answered 200. It must be
 * kept, not set aside (the rescue file on the same full disk, it would
 * have only standard error), and stored once there is room again.
 */
START_TEST(test_disk_full_is_not_poison)
{
	struct store_case sc;
	struct daemon_proc *d;
	char sid[32], *body;
	char *small[1] = { "full-small" }, *big[1] = { "full-big" };
	int pages = -1, copied = -1;
	sqlite3 *db;

	if (!on_small_tmpfs(&sc, "disk full, not poison"))
		return;
	d = sc.d;
	start_or_fail(d, "[store]\nack = enqueue\n");
	/* A revision that frees pages inside the database file. */
	post_accepted(d->port, body = big_event_body("full-pre", 400 * 1024));
	free(body);
	await_metric(d->port, "callhookd_events_stored_total", 1);
	post_accepted(d->port, body = event_body("full-pre"));
	free(body);
	await_metric(d->port, "callhookd_revisions_total", 1);
	/*
	 * Indexed first: the writer indexes once events pause, and frames
	 * written after the checkpoint below would need the full disk to
	 * be copied, so the WAL could not start over for the small event.
	 */
	ck_assert_int_eq(tu_wait_indexed(d->port, 10000), 0);
	/* All of the WAL copied: the next commit starts it over. */
	db = db_open(d->db, true);
	ck_assert_int_eq(sqlite3_wal_checkpoint_v2(db, "main",
	    SQLITE_CHECKPOINT_PASSIVE, &pages, &copied), SQLITE_OK);
	ck_assert_int_eq(pages, copied);
	sqlite3_close(db);
	ck_assert_int_eq(fault_inject(&sc), 0);
	big_then_small(d, big[0], 1024 * 1024, small[0]);
	tu_sleep_ms(1500);		/* another isolation or more */
	ck_assert_int_eq(tu_metric(d->port, "callhookd_events_set_aside_total"),
	    0);
	fault_repair(&sc);
	ck_assert_int_eq(wait_stored(d->db, big, 1, 5000, sid, sizeof(sid)),
	    0);
	stop_clean(d);
}
END_TEST

/* How many times needle is in d's log. */
static int
log_count(const struct daemon_proc *d, const char *needle)
{
	char *log = tu_read_file(d->log, NULL), *at = log;
	int n = 0;

	while (at != NULL && (at = strstr(at, needle)) != NULL) {
		n++;
		at += strlen(needle);
	}
	free(log);
	return n;
}

/*
 * Once the rescue file at path can be written, the next event's commit
 * sets the stuck event kept_sid aside there.
 */
static void
expect_set_aside_next(struct daemon_proc *d, const char *path,
    const char *next_sid, const char *kept_sid)
{
	char quoted[64], *body, *text;

	post_accepted(d->port, body = event_body(next_sid));
	free(body);
	await_metric(d->port, "callhookd_events_set_aside_total", 1);
	ck_assert_ptr_nonnull(text = tu_read_file(path, NULL));
	snprintf(quoted, sizeof(quoted), "\\\"%s\\\"", kept_sid);
	ck_assert_msg(strstr(text, quoted) != NULL, "%s lacks %s", path,
	    quoted);
	free(text);
}

/*
 * The stuck event of poison_event with its rescue file unwritable (a
 * directory in its place): it is kept, not lost, other calls' events go
 * on being stored, the log says so once however many isolations pass,
 * and once the file can be written the event is set aside there.
 */
#define KEPT_AFTER	6

START_TEST(test_poison_kept_without_rescue_file)
{
	struct daemon_proc *d = new_proc();
	char path[400], sid[32], *body, *after[KEPT_AFTER];

	snprintf(path, sizeof(path), "%s.unsaved.jsonl", d->db);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	start_size_limited(d, "[store]\nack = enqueue\n");
	post_accepted(d->port, body = big_event_body("kept-big",
	    POISON_BYTES));
	free(body);
	await_metric(d->port, "callhookd_commit_failures_total", 1);
	for (int i = 0; i < KEPT_AFTER; i++) {	/* an isolation or more */
		snprintf(sid, sizeof(sid), "kept-after-%d", i);
		after[i] = strdup(sid);
		post_accepted(d->port, body = event_body(sid));
		free(body);
		tu_sleep_ms(600);
	}
	ck_assert_int_eq(wait_stored(d->db, after, KEPT_AFTER, 5000, sid,
	    sizeof(sid)), 0);
	ck_assert_int_eq(tu_metric(d->port, "callhookd_events_set_aside_total"),
	    0);
	ck_assert_int_eq(log_count(d, "callSid kept-big cannot be stored"), 1);
	ck_assert(log_has(d, "kept, and tried again"));
	ck_assert_int_eq(rmdir(path), 0);
	expect_set_aside_next(d, path, "kept-last", "kept-big");
	stop_clean(d);
	for (int i = 0; i < KEPT_AFTER; i++)
		free(after[i]);
}
END_TEST

/*
 * The stuck event of poison_event with a symlink at its rescue file's
 * name, planted by whoever can write the database's directory: the
 * daemon (root, started by hand) must not append the senders' bodies to
 * the file it names. The event is kept, as for a rescue file that cannot
 * be written, and set aside once the link is gone.
 */
START_TEST(test_poison_rescue_file_symlink)
{
	struct daemon_proc *d = new_proc();
	char path[400], victim[400], sid[32], *body, *text, *after[1];

	snprintf(path, sizeof(path), "%s.unsaved.jsonl", d->db);
	snprintf(victim, sizeof(victim), "%s.victim", d->db);
	ck_assert_int_eq(tu_sh("echo precious > %s && ln -s %s %s", victim,
	    victim, path), 0);
	start_size_limited(d, "[store]\nack = enqueue\n");
	post_accepted(d->port, body = big_event_body("link-big",
	    POISON_BYTES));
	free(body);
	await_metric(d->port, "callhookd_commit_failures_total", 1);
	after[0] = "link-after";
	post_accepted(d->port, body = event_body(after[0]));
	free(body);
	ck_assert_int_eq(wait_stored(d->db, after, 1, 5000, sid,
	    sizeof(sid)), 0);
	/* The big one is isolated, and tried alone, after the rest. */
	for (int i = 0; i < 250 && !log_has(d, "kept, and tried again"); i++)
		tu_sleep_ms(20);
	ck_assert(log_has(d, "nor set aside in"));
	ck_assert(log_has(d, "(Too many levels of symbolic links): kept, "
	    "and tried again"));
	ck_assert_int_eq(tu_metric(d->port, "callhookd_events_set_aside_total"),
	    0);
	/* Nor is the file it names taken for a rescue file anywhere. */
	ck_assert_int_eq(tu_metric(d->port, "callhookd_rescue_file_bytes"), 0);
	ck_assert(!log_has(d, "of events not stored by an earlier run"));
	ck_assert_ptr_nonnull(text = tu_read_file(victim, NULL));
	ck_assert_str_eq(text, "precious\n");
	free(text);
	ck_assert_int_eq(unlink(path), 0);
	expect_set_aside_next(d, path, "link-last", "link-big");
	stop_clean(d);
}
END_TEST

START_TEST(test_poison_event_commit)
{
	poison_event(NULL, 503);
}
END_TEST

START_TEST(test_poison_event_enqueue)
{
	poison_event("[store]\nack = enqueue\n", 200);
}
END_TEST

/*
 * A kill -9 (or a crash) while the rescue file is being appended to can
 * leave its last line cut short, without its line break. The next event
 * set aside must still be a line of its own that `callhook import` loads,
 * not glued onto the torn one, which import refuses whole.
 */
START_TEST(test_rescue_after_torn_line)
{
	struct daemon_proc *d = new_proc();
	char *small[2] = { "torn-before", "torn-after" };
	char *big_sid[1] = { "torn-big" }, sid[32], path[400];
	const char *cli = getenv("CALLHOOK") ? getenv("CALLHOOK") :
	    "build/callhook";
	const char torn[] = "{\"event\":\"call_ended\",\"data\":{\"callS";
	int fd;

	ck_assert_int_ge(fd = open(d->db, O_WRONLY | O_CREAT, 0600), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s.unsaved.jsonl", d->db);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT, 0600), 0);
	ck_assert_int_eq(write(fd, torn, strlen(torn)), (ssize_t)strlen(torn));
	close(fd);
	start_size_limited(d, "[store]\nack = enqueue\n");
	post_big_between(d, small, big_sid[0], 200);
	await_metric(d->port, "callhookd_events_set_aside_total", 1);
	ck_assert_int_eq(db_missing(d->db, big_sid, 1, sid, sizeof(sid)), 1);
	/* The torn line is refused (exit 1); the set-aside event is not. */
	(void)tu_sh("%s -d %s import %s >/dev/null 2>&1", cli, d->db, path);
	ck_assert_msg(db_missing(d->db, big_sid, 1, sid, sizeof(sid)) == 0,
	    "the event set aside after a torn line is not importable");
	stop_clean(d);
}
END_TEST

/*
 * The database file removed while the daemon runs: no 200 for an event
 * that would go to a file nobody can open again, and /healthz says why.
 */
START_TEST(test_database_removed)
{
	struct daemon_proc *d = new_proc();
	char store[200], *body = event_body("removed-1");
	struct reply r;

	start_or_fail(d, NULL);
	ck_assert_int_eq(tu_sh("rm -f '%s' '%s-wal' '%s-shm'", d->db, d->db,
	    d->db), 0);
	ck_assert_int_eq(tu_post(d->port, PATH, JSON, body, strlen(body), &r),
	    0);
	expect_503(&r, "database removed");
	tu_reply_free(&r);
	ck_assert_int_eq(health(d->port, store, sizeof(store), NULL), 503);
	ck_assert_msg(strstr(store, "was removed or replaced since it was "
	    "opened") != NULL, "healthz: %s", store);
	ck_assert(log_has(d, "the file now at that path is used once it is "
	    "opened again"));
	proc_stop(d, SIGKILL);
	free(body);
}
END_TEST

/* Well-formed UTF-8 by its lead and continuation bytes. */
static bool
is_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		n = p[i] < 0x80 ? 1 : p[i] >= 0xc2 && p[i] <= 0xdf ? 2 :
		    p[i] >= 0xe0 && p[i] <= 0xef ? 3 :
		    p[i] >= 0xf0 && p[i] <= 0xf4 ? 4 : 0;
		if (n == 0 || i + n > len)
			return false;
		for (size_t k = 1; k < n; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

/*
 * The same under a long database path that is not all UTF-8 (a byte of
 * a Latin-1 name): /healthz cut the store's message at 199 bytes, inside
 * a character or before the remedy at its end, and passed the path's
 * bytes as they were, so its answer was not JSON.
 */
START_TEST(test_database_removed_long_path)
{
	struct daemon_proc *d = new_proc();
	char dir[400], db[420], store[1024];
	const char *extra[] = { "--database", db, NULL };
	struct reply r;
	size_t n;

	n = (size_t)snprintf(dir, sizeof(dir), "%s/\xff", d->dir);
	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(dir + n, sizeof(dir) - n, "\xc3\xa9");
	ck_assert_uint_lt(n, sizeof(dir));
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(db, sizeof(db), "%s/calls.db", dir);
	ck_assert_int_eq(tu_start(d, NULL, extra), 0);
	note_pid(d);
	ck_assert_int_eq(unlink(db), 0);
	for (int waited = 0; waited < 3000; waited += 50) {
		if (health(d->port, store, sizeof(store), NULL) == 503)
			break;
		tu_sleep_ms(50);
	}
	ck_assert_int_eq(tu_get(d->port, "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 503);
	ck_assert_msg(is_utf8(r.body, r.len), "healthz not UTF-8: %s", r.body);
	ck_assert_int_eq(health(d->port, store, sizeof(store), NULL), 503);
	n = strlen(store);
	ck_assert_msg(n > 12 && strcmp(store + n - 12, "opened again") == 0,
	    "healthz cut: %s", store);
	tu_reply_free(&r);
	proc_stop(d, SIGKILL);
}
END_TEST

/*
 * A -wal or -shm file removed while in use: answered 503 at the next
 * event, and /healthz names it, until a restart. Commits into a removed
 * WAL would be lost at a kill -9; without the -shm, the next process to
 * open the database (callhook import) would write blind to the daemon's.
 */
static void
side_file_removed(const char *suffix, const char *says)
{
	struct daemon_proc *d = new_proc();
	char store[300], *before = event_body("side-before"),
	    *after = event_body("side-after");
	struct reply r;

	start_or_fail(d, NULL);
	ck_assert_int_eq(tu_post(d->port, PATH, JSON, before, strlen(before),
	    &r), 0);
	ck_assert_int_eq(r.status, 200);
	tu_reply_free(&r);
	ck_assert_int_eq(tu_sh("rm '%s%s'", d->db, suffix), 0);
	ck_assert_int_eq(tu_post(d->port, PATH, JSON, after, strlen(after),
	    &r), 0);
	expect_503(&r, suffix);
	tu_reply_free(&r);
	ck_assert_int_eq(health(d->port, store, sizeof(store), NULL), 503);
	ck_assert_msg(strstr(store, says) != NULL, "healthz: %s", store);
	proc_stop(d, SIGTERM);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM calls WHERE "
	    "call_sid = 'side-before'"), 1);
	start_or_fail(d, NULL);
	post_accepted(d->port, after);
	stop_clean(d);
	expect_integrity(d->db);
	free(before);
	free(after);
}

START_TEST(test_wal_removed)
{
	side_file_removed("-wal", "-wal was removed or replaced while in use");
}
END_TEST

START_TEST(test_shm_removed)
{
	side_file_removed("-shm", "-shm was removed or replaced while in use; "
	    "restart callhookd (the WAL keeps what it holds, and the next "
	    "start applies it)");
}
END_TEST

/*
 * A -shm removed, then the database written by another process (callhook
 * import) through the new -shm it made, the WAL started over: the
 * daemon's checkpoints went on by its own, stale WAL index, putting the
 * writer's pages where its old ones were and cutting the file to its old
 * size ("invalid page number"), and emptied at the stop the WAL that held
 * the writer's last commits. Both the checkpointer, woken by the failed
 * commit of the next event (then a kill -9), and the stop must leave the
 * WAL to the next open, which rebuilds the index from it.
 */
static void
shm_removed_then_written(bool event_then_kill)
{
	struct daemon_proc *d = new_proc();
	char *before = event_body("shm-before"), *big, sid[32], store[300];
	sqlite3 *h;

	start_or_fail(d, event_then_kill ? "[store]\nack = enqueue\n" : NULL);
	for (int i = 0; i < 20; i++) {
		snprintf(sid, sizeof(sid), "shm-big-%d", i);
		big = big_event_body(sid, 32 * 1024);
		post_accepted(d->port, big);
		free(big);
	}
	post_accepted(d->port, before);
	/* Committed, not only queued (ack = enqueue): a kill -9 follows. */
	await_metric(d->port, "callhookd_events_stored_total", 21);
	ck_assert_int_eq(tu_sh("rm '%s-shm'", d->db), 0);
	for (int waited = 0; waited < 3000 && health(d->port, store,
	    sizeof(store), NULL) != 503; waited += 50)
		tu_sleep_ms(50);
	ck_assert_msg(strstr(store, "-shm was removed") != NULL, "healthz: %s",
	    store);
	h = db_open(d->db, true);
	ck_assert_msg(sqlite3_exec(h, "WITH RECURSIVE n(i) AS (SELECT 1 "
	    "UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO calls "
	    "(call_sid, event, transcription, payload, first_received_at, "
	    "received_at) SELECT 'outside-' || i, 'call_ended', "
	    "hex(randomblob(4000)), '{}', '2026-01-01T00:00:00.000Z', "
	    "'2026-01-01T00:00:00.000Z' FROM n; PRAGMA wal_checkpoint; "
	    "INSERT INTO calls (call_sid, event, transcription, payload, "
	    "first_received_at, received_at) VALUES ('outside-last', "
	    "'call_ended', '', '{}', '2026-01-01T00:00:00.000Z', "
	    "'2026-01-01T00:00:00.000Z')", NULL, NULL, NULL) == SQLITE_OK,
	    "%s", sqlite3_errmsg(h));
	sqlite3_close(h);
	if (event_then_kill) {
		big = event_body("shm-after");
		post_accepted(d->port, big);	/* ack = enqueue */
		free(big);
		tu_sleep_ms(500);		/* the checkpointer's turn */
		proc_stop(d, SIGKILL);
	} else
		ck_assert_int_eq(proc_stop(d, SIGTERM), 0);
	expect_integrity(d->db);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM calls WHERE "
	    "call_sid LIKE 'outside-%'"), 201);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM calls WHERE "
	    "call_sid LIKE 'shm-big-%' OR call_sid = 'shm-before'"), 21);
	free(before);
}

START_TEST(test_shm_removed_then_written)
{
	shm_removed_then_written(false);
}
END_TEST

START_TEST(test_shm_removed_then_written_kill)
{
	shm_removed_then_written(true);
}
END_TEST

/*
 * /healthz waits for no webhook to find the file or its WAL gone: a
 * probe during a quiet night said ok until the next call got its 503.
 */
static void
removed_while_idle(const char *files, const char *says)
{
	struct daemon_proc *d = new_proc();
	char store[200];
	int status = 0;

	start_or_fail(d, NULL);
	ck_assert_int_eq(health(d->port, store, sizeof(store), NULL), 200);
	ck_assert_int_eq(tu_sh(files, d->db, d->db, d->db), 0);
	for (int waited = 0; waited < 3000; waited += 50) {
		if ((status = health(d->port, store, sizeof(store),
		    NULL)) == 503)
			break;
		tu_sleep_ms(50);
	}
	ck_assert_msg(status == 503, "healthz %d: %s", status, store);
	ck_assert_msg(strstr(store, says) != NULL, "healthz: %s", store);
	proc_stop(d, SIGKILL);
}

START_TEST(test_database_removed_idle)
{
	removed_while_idle("rm -f '%s' '%s-wal' '%s-shm'",
	    "was removed or replaced since it was opened");
}
END_TEST

START_TEST(test_wal_removed_idle)
{
	removed_while_idle("rm '%s-wal' && : '%s' '%s'",
	    "-wal was removed or replaced while in use");
}
END_TEST

START_TEST(test_shm_removed_idle)
{
	removed_while_idle("rm '%s-shm' && : '%s' '%s'",
	    "-shm was removed or replaced while in use");
}
END_TEST

/*
 * callhookd_wal_pages_behind after the checkpoint that the last commit
 * woke: it read what that commit left for as long as no other came (the
 * commit that reaches CHECKPOINT_PAGES always does), so an idle daemon
 * showed hundreds of pages, or a reader's 16,384, long copied.
 */
START_TEST(test_wal_behind_after_checkpoint)
{
	struct daemon_proc *d = new_proc();
	long long pages = 0;
	char sid[32], *body;

	start_or_fail(d, "[store]\nfts = off\n");
	for (int i = 0; i < 200 && pages < 256; i++) {
		snprintf(sid, sizeof(sid), "behind-%d", i);
		post_accepted(d->port, body = big_event_body(sid, 64 * 1024));
		free(body);
		pages = tu_metric(d->port, "callhookd_wal_pages_behind");
	}
	ck_assert_msg(pages >= 256, "callhookd_wal_pages_behind %lld", pages);
	for (int waited = 0; waited < 3000 && pages >= 256; waited += 50) {
		tu_sleep_ms(50);
		pages = tu_metric(d->port, "callhookd_wal_pages_behind");
	}
	ck_assert_msg(pages < 256, "callhookd_wal_pages_behind %lld after the "
	    "checkpoint", pages);
	stop_clean(d);
}
END_TEST

/*
 * Refusals are kept in the rejects table within a budget of their own
 * (1,000), which a failing store keeps used up while the writer holds
 * them: a flood of bad requests during an outage costs no more memory
 * than that, however many retries the writer makes.
 */
START_TEST(test_rejects_bounded_while_failing)
{
	struct daemon_proc *d = new_proc();
	sqlite3 *lock;
	struct reply r;

	start_or_fail(d, NULL);
	lock = lock_db(d->db);
	for (int i = 0; i < 2500; i++) {
		ck_assert_int_eq(tu_post(d->port, PATH, JSON, "{", 1, &r), 0);
		ck_assert_int_eq(r.status, 400);
		tu_reply_free(&r);
	}
	ck_assert_int_eq(tu_metric(d->port, "callhookd_rejects_dropped_total"),
	    1500);
	unlock_db(lock);
	stop_clean(d);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM rejects"), 1000);
}
END_TEST

/*
 * A refusal that SQLite will not take into rejects (here a trigger
 * forbids every row) is counted as dropped, as one the budget refused
 * is: it was dropped without a trace, while the webhooks go on.
 */
START_TEST(test_reject_refused_by_sqlite_counted)
{
	struct daemon_proc *d = new_proc();
	struct reply r;
	char *body;
	sqlite3 *db;

	start_or_fail(d, NULL);
	ck_assert_int_eq(sqlite3_open(d->db, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE TRIGGER no_rejects BEFORE "
	    "INSERT ON rejects BEGIN SELECT RAISE(ABORT, 'no'); END", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(tu_post(d->port, PATH, JSON, "{", 1, &r), 0);
		ck_assert_int_eq(r.status, 400);
		tu_reply_free(&r);
	}
	post_accepted(d->port, body = event_body("after-refused-rejects"));
	free(body);
	await_metric(d->port, "callhookd_rejects_dropped_total", 3);
	stop_clean(d);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM rejects"), 0);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM calls WHERE "
	    "call_sid = 'after-refused-rejects'"), 1);
}
END_TEST

/*
 * The same refusal in a batch that fails for another of its jobs (an
 * event too big for the file size limit): each failed try wrote the
 * reject, was refused, and counted it again, so that the three dropped
 * here read as a dozen or more, more than were ever refused. Counted
 * once, when the batch that dropped it commits.
 */
START_TEST(test_reject_refused_counted_once)
{
	struct daemon_proc *d = new_proc();
	char sid[32], *body, *after[1] = { "after-poison" };
	struct reply r;
	sqlite3 *db;

	start_size_limited(d, "[store]\nack = enqueue\n");
	ck_assert_int_eq(sqlite3_open(d->db, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE TRIGGER no_rejects BEFORE "
	    "INSERT ON rejects BEGIN SELECT RAISE(ABORT, 'no'); END", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	post_accepted(d->port, body = big_event_body("poison-big",
	    POISON_BYTES));
	free(body);
	/* The rejects join the failing batch's next try. */
	await_metric(d->port, "callhookd_commit_failures_total", 1);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(tu_post(d->port, PATH, JSON, "{", 1, &r), 0);
		ck_assert_int_eq(r.status, 400);
		tu_reply_free(&r);
	}
	/* Another call's rows: the evidence for setting the big one aside. */
	post_accepted(d->port, body = event_body(after[0]));
	free(body);
	ck_assert_int_eq(wait_stored(d->db, after, 1, 5000, sid,
	    sizeof(sid)), 0);
	await_metric(d->port, "callhookd_events_set_aside_total", 1);
	ck_assert_int_ge(tu_metric(d->port, "callhookd_commit_failures_total"),
	    2);
	ck_assert_int_eq(tu_metric(d->port, "callhookd_rejects_dropped_total"),
	    3);
	stop_clean(d);
}
END_TEST

/* CPU time (clock ticks) of pid's thread named comm, or -1. */
static long long
thread_ticks(pid_t pid, const char *comm)
{
	char dir[64], path[384], name[32];
	long long ticks = -1;
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	if ((dp = opendir(dir)) == NULL)
		return -1;
	while (ticks < 0 && (e = readdir(dp)) != NULL) {
		unsigned long ut, st;
		FILE *fp;

		snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
		if ((fp = fopen(path, "r")) == NULL)
			continue;
		if (fgets(name, sizeof(name), fp) == NULL)
			name[0] = '\0';
		fclose(fp);
		name[strcspn(name, "\n")] = '\0';
		snprintf(path, sizeof(path), "%s/%s/stat", dir, e->d_name);
		if (strcmp(name, comm) != 0 || (fp = fopen(path, "r")) == NULL)
			continue;
		/* utime and stime are fields 14 and 15, after "(comm) ". */
		if (fscanf(fp, "%*d (%*[^)]) %*c %*d %*d %*d %*d %*d %*u %*u "
		    "%*u %*u %*u %lu %lu", &ut, &st) == 2)
			ticks = (long long)(ut + st);
		fclose(fp);
	}
	closedir(dp);
	return ticks;
}

/*
 * A reader holding a snapshot keeps checkpoints from copying the WAL
 * into the database: the checkpointer waits rather than spin (it once
 * retried at once, a core's worth of CPU while the reader held), /metrics
 * shows the pages behind grow, and past 64 MB the log says why.
 */
START_TEST(test_wal_held_back)
{
	struct daemon_proc *d = new_proc();
	sqlite3 *reader;
	char sid[32];
	long long pages = 0, ticks;

	start_or_fail(d, NULL);
	reader = db_open(d->db, false);
	ck_assert_int_eq(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM "
	    "calls", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 400 && !log_has(d, "holds checkpoints back"); i++) {
		char *body;

		snprintf(sid, sizeof(sid), "wal-%d", i);
		body = big_event_body(sid, 256 * 1024);
		post_accepted(d->port, body);
		free(body);
		if (i != 10)
			continue;
		/* Held back, the checkpointer waits for more pages. */
		ck_assert_int_ge(ticks = thread_ticks(d->pid, "checkpointer"),
		    0);
		tu_sleep_ms(1000);
		ticks = thread_ticks(d->pid, "checkpointer") - ticks;
		ck_assert_msg(ticks < 30, "checkpointer used %lld ticks in 1 s",
		    ticks);
	}
	pages = tu_metric(d->port, "callhookd_wal_pages_behind");
	ck_assert_msg(pages >= 16384, "callhookd_wal_pages_behind %lld",
	    pages);
	ck_assert(log_has(d, "pages of the WAL are not yet copied into the "
	    "database"));
	sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(reader);
	stop_clean(d);
}
END_TEST

/*
 * A kill -9 while the WAL holds more than 64 MB of frames (under load it
 * grows to STORE_WAL_MAX_PAGES before the writer starts it over) leaves
 * them all to copy again after the restart: that is no reader holding
 * checkpoints back, and the log must not send the operator looking for
 * one. A child that writes such a WAL and exits without closing the
 * database stands for the killed daemon.
 */
START_TEST(test_wal_left_by_crash_is_not_held_back)
{
	struct daemon_proc *d = new_proc();
	char *body, wal[400];
	struct stat sb;
	pid_t pid;
	int status;

	start_or_fail(d, NULL);
	stop_clean(d);
	if ((pid = fork()) == 0) {
		sqlite3 *db;

		if (sqlite3_open(d->db, &db) != SQLITE_OK ||
		    sqlite3_exec(db, "PRAGMA wal_autocheckpoint = 0;"
		    "CREATE TABLE pad (x);"
		    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1"
		    " FROM n WHERE i < 700) INSERT INTO pad"
		    " SELECT randomblob(100000) FROM n;"
		    "DROP TABLE pad;", NULL, NULL, NULL) != SQLITE_OK)
			_exit(1);
		_exit(0);	/* no close: the WAL stays as a crash left it */
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	snprintf(wal, sizeof(wal), "%s-wal", d->db);
	ck_assert_int_eq(stat(wal, &sb), 0);
	ck_assert_int_gt(sb.st_size, 16384LL * 4120);
	start_or_fail(d, NULL);
	post_accepted(d->port, body = event_body("after-crash"));
	free(body);
	post_accepted(d->port, body = event_body("after-crash-2"));
	free(body);
	stop_clean(d);
	ck_assert_msg(!log_has(d, "holds checkpoints back"),
	    "a WAL left by a crash is blamed on a reader");
	expect_integrity(d->db);
}
END_TEST

/*
 * A stop that waits for a full disk: the writer retries as it does while
 * running, a few times a second, and the checkpointer it wakes at each
 * failure has nothing to do. A closed queue once cut every retry's delay
 * short, and the two threads spun through the 20 s the stop gives the
 * store (150 % of a core). Once there is room the event is stored and the
 * stop ends well.
 */
START_TEST(test_stop_on_full_disk_is_quiet)
{
	struct store_case sc;
	struct daemon_proc *d;
	char store[200] = "", *body;
	long long t0, used;

	if (!on_small_tmpfs(&sc, "stop on a full disk"))
		return;
	d = sc.d;
	start_or_fail(d, "[store]\nack = enqueue\n");
	ck_assert_int_eq(fault_inject(&sc), 0);
	post_accepted(d->port, body = big_event_body("stop-full", 256 * 1024));
	free(body);
	for (int i = 0; i < 300 && strstr(store, "disk is full") == NULL; i++) {
		store[0] = '\0';
		health(d->port, store, sizeof(store), NULL);
		tu_sleep_ms(10);
	}
	ck_assert_msg(strstr(store, "disk is full") != NULL, "%s", store);
	kill(d->pid, SIGTERM);
	tu_sleep_ms(300);
	t0 = thread_ticks(d->pid, "writer") +
	    thread_ticks(d->pid, "checkpointer");
	tu_sleep_ms(1000);
	used = thread_ticks(d->pid, "writer") +
	    thread_ticks(d->pid, "checkpointer") - t0;
	ck_assert_msg(used < 30, "writer and checkpointer used %lld ticks in "
	    "1 s of the stop", used);
	fault_repair(&sc);
	ck_assert_int_eq(proc_stop(d, SIGTERM), 0);
	ck_assert_int_eq(db_int(d->db, "SELECT count(*) FROM calls WHERE "
	    "call_sid = 'stop-full'"), 1);
}
END_TEST

/*
 * A stop whose last copy of the WAL into the database fails (a file size
 * limit at the database's size; a full disk alike): SQLite's own copy at
 * close fails in silence, and an operator who finds a big -wal must know
 * to keep it. The log says so, the stop is still clean, and the next
 * start has every event. A copy that a reader holds back is not warned.
 */
START_TEST(test_last_checkpoint_fails)
{
	struct daemon_proc *d = new_proc();
	char *sids[6], first[32];
	struct rlimit rl;
	struct stat sb;
	sqlite3 *reader;

	/* A reader's snapshot that holds the copy back is no failure. */
	start_or_fail(d, NULL);
	reader = hold_wal(d, "held-ckpt", 2, 128 * 1024);
	stop_clean(d);
	sqlite3_close(reader);
	ck_assert_msg(!log_has(d, "could not be copied into it at close"),
	    "a reader's snapshot warned of as a failed checkpoint");
	start_or_fail(d, NULL);
	reader = hold_wal(d, "last-ckpt", 6, 128 * 1024);
	ck_assert_int_eq(tu_wait_indexed(d->port, 10000), 0);
	sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(reader);
	ck_assert_int_eq(stat(d->db, &sb), 0);
	ck_assert_int_eq(prlimit(d->pid, RLIMIT_FSIZE, NULL, &rl), 0);
	rl.rlim_cur = (rlim_t)sb.st_size;
	ck_assert_int_eq(prlimit(d->pid, RLIMIT_FSIZE, &rl, NULL), 0);
	stop_clean(d);
	ck_assert_msg(log_has(d, "calls.db: its WAL could not be copied into "
	    "it at close (disk I/O error): the commits it holds stay in "),
	    "no warning of the failed last checkpoint");
	ck_assert(log_has(d, "calls.db-wal, and the next open applies them; "
	    "keep that file with the database"));
	start_or_fail(d, NULL);
	for (int i = 0; i < 6; i++) {
		char sid[32];

		snprintf(sid, sizeof(sid), "last-ckpt-%d", i);
		sids[i] = strdup(sid);
	}
	ck_assert_msg(db_missing(d->db, sids, 6, first, sizeof(first)) == 0,
	    "%s lost", first);
	stop_clean(d);
	ck_assert_int_eq(log_count(d, "could not be copied into it at close"),
	    1);
	expect_integrity(d->db);
	for (int i = 0; i < 6; i++)
		free(sids[i]);
}
END_TEST

/*
 * A WAL that cannot grow (here a file size limit at its size; a full
 * disk alike) after checkpoints a reader held back: once the reader is
 * gone, one checkpoint copying the rest lets SQLite start the WAL over,
 * but commits, which wake the checkpointer, all fail. The event posted
 * then must still be stored, and answered 200 in time.
 */
START_TEST(test_wal_cannot_grow)
{
	struct daemon_proc *d = new_proc();
	struct reply r;
	sqlite3 *reader;
	char *body;

	start_or_fail(d, NULL);
	reader = hold_wal(d, "grow", 12, 256 * 1024);
	ck_assert_int_gt(tu_metric(d->port, "callhookd_wal_pages_behind"), 0);
	sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(reader);
	limit_to_wal(d, 0);
	body = big_event_body("grow-last", 64 * 1024);
	ck_assert_int_eq(tu_post(d->port, PATH, JSON, body, strlen(body), &r),
	    0);
	free(body);
	ck_assert_msg(r.status == 200, "after the WAL stopped growing: %d %s",
	    r.status, r.body);
	tu_reply_free(&r);
	ck_assert_int_ge(tu_metric(d->port, "callhookd_commit_failures_total"),
	    1);
	stop_clean(d);
}
END_TEST

Suite *faults_suite(void);

Suite *
faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("faults");
	const char *t = getenv("TORTURE");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, t != NULL && *t != '\0' && strcmp(t, "0") != 0 ?
	    3600 : 180);
	tcase_add_test(tc, test_corpus);
	tcase_add_test(tc, test_kill9_under_load);
	tcase_add_test(tc, test_sigterm_enqueue_under_load);
	tcase_add_test(tc, test_lock_held);
	tcase_add_test(tc, test_slow_body_due);
	tcase_add_test(tc, test_stop_refuses_connections);
	tcase_add_test(tc, test_stop_closes_kept_connections);
	tcase_add_test(tc, test_stop_closes_held_connection);
	tcase_add_test(tc, test_stop_unix_backlog);
	tcase_add_test(tc, test_lock_brief);
	tcase_add_test(tc, test_lock_brief_fts);
	tcase_add_test(tc, test_store_failures);
	tcase_add_test(tc, test_queue_full);
	tcase_add_test(tc, test_idle_connections);
	tcase_add_test(tc, test_client_disconnects_while_held);
	tcase_add_test(tc, test_rescue_file);
	tcase_add_test(tc, test_rescue_disk_full);
	tcase_add_test(tc, test_rejects_bounded_while_failing);
	tcase_add_test(tc, test_reject_refused_by_sqlite_counted);
	tcase_add_test(tc, test_reject_refused_counted_once);
	tcase_add_test(tc, test_database_removed);
	tcase_add_test(tc, test_database_removed_long_path);
	tcase_add_test(tc, test_wal_removed);
	tcase_add_test(tc, test_shm_removed);
	tcase_add_test(tc, test_shm_removed_then_written);
	tcase_add_test(tc, test_shm_removed_then_written_kill);
	tcase_add_test(tc, test_database_removed_idle);
	tcase_add_test(tc, test_wal_removed_idle);
	tcase_add_test(tc, test_shm_removed_idle);
	tcase_add_test(tc, test_wal_behind_after_checkpoint);
	tcase_add_test(tc, test_poison_event_commit);
	tcase_add_test(tc, test_poison_event_enqueue);
	tcase_add_test(tc, test_poison_in_a_crowd);
	tcase_add_test(tc, test_no_room_is_not_poison);
	tcase_add_test(tc, test_disk_full_is_not_poison);
	tcase_add_test(tc, test_poison_kept_without_rescue_file);
	tcase_add_test(tc, test_poison_rescue_file_symlink);
	tcase_add_test(tc, test_rescue_after_torn_line);
	tcase_add_test(tc, test_wal_held_back);
	tcase_add_test(tc, test_wal_left_by_crash_is_not_held_back);
	tcase_add_test(tc, test_wal_cannot_grow);
	tcase_add_test(tc, test_stop_on_full_disk_is_quiet);
	tcase_add_test(tc, test_last_checkpoint_fails);
	suite_add_tcase(s, tc);
	return s;
}

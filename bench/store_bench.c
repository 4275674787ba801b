/*
 * store_bench: the SQLite ceiling, for make bench.
 *
 * The daemon's store code (store_open, store_begin, store_put,
 * store_commit) with no HTTP, no queue and no threads: how many events a
 * second the writer could commit if the receiver cost nothing. Each
 * fixture is parsed once with event_parse(); every put then writes a new
 * callSid into the event (and its body) in place, so each put inserts a
 * new row as a webhook with a unique callSid would.
 *
 * Batches: the writer commits whatever queued while it was busy. With
 * wrk's 32 connections in ack = commit mode at most 32 events wait, so a
 * batch of 32 is the loaded case; a batch of 1 is a lone event on an idle
 * daemon. The table also gives event_parse()'s cost per payload, the
 * other large piece of the per-event work.
 *
 * usage: store_bench [-d DIR] [-s SECONDS] FIXTURE...
 * SECONDS (default 10) is the whole budget, shared by the measurements.
 * Prints a Markdown table on stdout.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "store.h"

#define SID_PREFIX	"store-"
#define SID_DIGITS	12
#define MIN_CELL_S	0.1
#define FTS_CHUNK	32	/* as the writer's (writer.c) */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *fp;
	char *buf = NULL;
	long n;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) > 0 &&
	    fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL &&
	    fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	*len = buf != NULL ? (size_t)n : 0;
	fclose(fp);
	return buf;
}

/*
 * The fixture with its callSid value replaced by a fixed-width one, so
 * that later ones can be written over it in place.
 */
static char *
with_bench_sid(const char *body, size_t len, size_t *outlen)
{
	const char *key = strstr(body, "\"callSid\"");
	const char *open, *close;
	char *out, sid[64];
	size_t n;

	if (key == NULL || (open = strchr(key + 9, '"')) == NULL ||
	    (close = strchr(open + 1, '"')) == NULL)
		return NULL;
	n = (size_t)snprintf(sid, sizeof(sid), "%s%0*d", SID_PREFIX,
	    SID_DIGITS, 0);
	*outlen = len - (size_t)(close - open - 1) + n;
	if ((out = malloc(*outlen + 1)) == NULL)
		return NULL;
	memcpy(out, body, (size_t)(open + 1 - body));
	memcpy(out + (open + 1 - body), sid, n);
	memcpy(out + (open + 1 - body) + n, close,
	    len - (size_t)(close - body));
	out[*outlen] = '\0';
	return out;
}

/* Write the number seq into the digits of a callSid made above. */
static void
set_sid(char *sid, uint64_t seq)
{
	char *d = sid + sizeof(SID_PREFIX) - 1;

	for (int i = SID_DIGITS - 1; i >= 0; i--) {
		d[i] = (char)('0' + seq % 10);
		seq /= 10;
	}
}

static void
remove_db(const char *path)
{
	char p[1100];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

/*
 * Rows per second that store_fts_index() takes from the queue the puts
 * left, in the daemon's chunks, for at most seconds.
 */
static double
run_index(struct store *st, double seconds)
{
	double t0 = now_s(), t;
	uint64_t rows = 0;
	int n;

	do {
		if (store_fts_index(st, FTS_CHUNK, &n) != 0) {
			fprintf(stderr, "store_bench: %s\n", store_errmsg(st));
			exit(1);
		}
		rows += (uint64_t)n;
	} while (n == FTS_CHUNK && (t = now_s() - t0) < seconds);
	return (double)rows / (now_s() - t0);
}

/*
 * Copies of one fixture's event, each with its own body: a batch writes
 * a new callSid into each (and into its body) in place.
 */
struct copies {
	struct event	*ev[STORE_RUN_MAX];
	char		*sid[STORE_RUN_MAX];	/* in ev[i]->body */
};

/*
 * Events per second, batches of batch events written as the writer
 * writes them (store_put_run, then store_put for what the run left),
 * for seconds; with fts on, *indexed (when not NULL) gets run_index()
 * over the rows they left.
 */
static double
run_store(const char *db, struct copies *c, bool fts, bool sync_full,
    int batch, double seconds, double *indexed)
{
	struct store_options so = {
		.path = db, .fts = fts, .sync_full = sync_full,
		.busy_timeout_ms = 100,
	};
	enum store_outcome outcome;
	struct store *st;
	char err[512];
	uint64_t seq = 0;
	double t0, t;
	int stored;

	remove_db(db);
	if (store_open(&st, &so, err, sizeof(err)) != 0) {
		fprintf(stderr, "store_bench: %s\n", err);
		exit(1);
	}
	t0 = now_s();
	do {
		if (store_begin(st) != 0)
			goto fail;
		for (int i = 0; i < batch; i++) {
			seq++;
			set_sid(c->ev[i]->call_sid, seq);
			set_sid(c->sid[i], seq);
		}
		if (store_put_run(st, (const struct event *const *)c->ev,
		    batch, &stored) != 0)
			goto fail;
		for (int i = stored; i < batch; i++)
			if (store_put(st, c->ev[i], &outcome) != 0 ||
			    outcome != STORE_NEW)
				goto fail;
		if (store_commit(st) != 0)
			goto fail;
	} while ((t = now_s() - t0) < seconds);
	if (indexed != NULL)
		*indexed = fts ? run_index(st, seconds) : 0;
	store_close(st);
	remove_db(db);
	return (double)seq / t;
fail:
	fprintf(stderr, "store_bench: %s\n", store_errmsg(st));
	exit(1);
}

/* Microseconds per event_parse() + event_free() of body. */
static double
run_parse(const char *body, size_t len, double seconds)
{
	struct event *ev;
	char msg[256];
	uint64_t n = 0;
	double t0, t;

	t0 = now_s();
	do {
		for (int i = 0; i < 100; i++, n++) {
			if (event_parse(body, len, false, &ev, msg,
			    sizeof(msg)) != EVENT_OK) {
				fprintf(stderr, "store_bench: %s\n", msg);
				exit(1);
			}
			event_free(ev);
		}
	} while ((t = now_s() - t0) < seconds);
	return t * 1e6 / (double)n;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

int
main(int argc, char **argv)
{
	static const int batches[] = { 32, 1 };
	const char *dir = ".";
	double budget = 10, cell;
	char db[1024], msg[256];
	int ch, nfix;

	while ((ch = getopt(argc, argv, "d:s:")) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 's': budget = strtod(optarg, NULL); break;
		default:
			fprintf(stderr, "usage: store_bench [-d DIR] "
			    "[-s SECONDS] FIXTURE...\n");
			return 2;
		}
	}
	nfix = argc - optind;
	if (nfix < 1 || budget <= 0) {
		fprintf(stderr, "usage: store_bench [-d DIR] [-s SECONDS] "
		    "FIXTURE...\n");
		return 2;
	}
	mkdir(dir, 0755);
	snprintf(db, sizeof(db), "%s/store_bench.db", dir);
	/* per fixture: 8 store cells and a parse cell */
	cell = budget / (nfix * 9);
	if (cell < MIN_CELL_S)
		cell = MIN_CELL_S;

	printf("| payload | fts | sync | events/s, batches of 32 | "
	    "events/s, one per commit | rows indexed/s, chunks of %d |\n"
	    "|---|---|---|--:|--:|--:|\n", FTS_CHUNK);
	for (int f = optind; f < argc; f++) {
		size_t len, blen;
		char *raw = read_file(argv[f], &len), *body;
		struct copies c;

		if (raw == NULL || (body = with_bench_sid(raw, len,
		    &blen)) == NULL) {
			fprintf(stderr, "store_bench: %s: cannot read a "
			    "callSid\n", argv[f]);
			return 1;
		}
		for (int i = 0; i < STORE_RUN_MAX; i++) {
			struct event *ev;

			if (event_parse(body, blen, false, &ev, msg,
			    sizeof(msg)) != EVENT_OK) {
				fprintf(stderr, "store_bench: %s: %s\n",
				    argv[f], msg);
				return 1;
			}
			snprintf(ev->received_at, sizeof(ev->received_at),
			    "2025-12-19T16:01:07.000Z");
			snprintf(ev->remote_addr, sizeof(ev->remote_addr),
			    "127.0.0.1");
			c.ev[i] = ev;
			c.sid[i] = strstr(ev->body, SID_PREFIX);
		}
		for (int fts = 1; fts >= 0; fts--)
			for (int full = 0; full <= 1; full++) {
				double r[2], ix = 0;
				char ixs[32] = "-";

				for (int b = 0; b < 2; b++)
					r[b] = run_store(db, &c, fts, full,
					    batches[b], cell / 3,
					    b == 0 ? &ix : NULL);
				if (fts)
					snprintf(ixs, sizeof(ixs), "%.0f", ix);
				printf("| %s | %s | %s | %.0f | %.0f | %s |\n",
				    base_name(argv[f]), fts ? "on" : "off",
				    full ? "full" : "normal", r[0], r[1], ixs);
			}
		for (int i = 0; i < STORE_RUN_MAX; i++)
			event_free(c.ev[i]);
		free(raw);
		free(body);
	}
	printf("\n| payload | bytes | event_parse µs |\n|---|--:|--:|\n");
	for (int f = optind; f < argc; f++) {
		size_t len;
		char *raw = read_file(argv[f], &len);

		printf("| %s | %zu | %.2f |\n", base_name(argv[f]), len,
		    run_parse(raw, len, cell));
		free(raw);
	}
	return 0;
}

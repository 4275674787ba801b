/*
 * Counters and histograms for /metrics. Writers only do relaxed atomic
 * adds; the renderer reads them without a lock, so a scrape may see a
 * histogram mid-update, which Prometheus tolerates: its _sum may lag its
 * buckets, but its _count is their total, the +Inf bucket.
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "version.h"

/*
 * Upper bounds; the last bucket is +Inf. Latencies in microseconds, up
 * to 2.5 s: a held webhook is answered by 4.5 s and CallKaro waits 5 s,
 * so how close the answers come to that must show, not end in +Inf.
 */
static const uint64_t latency_bounds[METRICS_BUCKETS - 1] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000
};
static const uint64_t size_bounds[METRICS_BUCKETS - 1] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192
};

/* Always rendered; any other status once it has been sent. */
static const int statuses[] = {
	200, 400, 401, 403, 404, 405, 413, 415, 500, 501, 503
};

static const char *const reject_names[REJECT_REASONS] = {
	"not_found", "method", "media_type", "too_large", "forbidden",
	"unauthorized", "signature", "invalid", "unknown_event", "queue_full",
	"store_busy", "store_failed", "shutting_down", "bodies_full",
	"too_slow", "client_closed",
};

void
metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
	m->batch_size.bounds = size_bounds;
	m->batch_size.scale = 1;
	m->commit_latency.bounds = latency_bounds;
	m->commit_latency.scale = 1e-6;
	m->ack_latency.bounds = latency_bounds;
	m->ack_latency.scale = 1e-6;
}

void
metrics_observe(struct histogram *h, uint64_t value)
{
	size_t i;

	for (i = 0; i < METRICS_BUCKETS - 1; i++)
		if (value <= h->bounds[i])
			break;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, value, memory_order_relaxed);
}

static uint64_t
load(atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/*
 * Exact: %g kept six digits, so after a million events the sum of batch
 * sizes read 1e+06 whatever it was. Microseconds as seconds, or counts.
 */
static void
render_sum(FILE *fp, const char *name, struct histogram *h)
{
	unsigned long long sum = load(&h->sum_us);

	if (h->scale == 1)
		fprintf(fp, "%s_sum %llu\n", name, sum);
	else
		fprintf(fp, "%s_sum %llu.%06llu\n", name, sum / 1000000,
		    sum % 1000000);
}

static void
render_histogram(FILE *fp, const char *name, const char *help,
    struct histogram *h)
{
	uint64_t cum = 0;

	fprintf(fp, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cum += load(&h->bucket[i]);
		if (i < METRICS_BUCKETS - 1)
			fprintf(fp, "%s_bucket{le=\"%g\"} %llu\n", name,
			    (double)h->bounds[i] * h->scale,
			    (unsigned long long)cum);
		else
			fprintf(fp, "%s_bucket{le=\"+Inf\"} %llu\n", name,
			    (unsigned long long)cum);
	}
	render_sum(fp, name, h);
	/* The +Inf bucket's, as the format wants: read apart, it was not. */
	fprintf(fp, "%s_count %llu\n", name, (unsigned long long)cum);
}

static void
render_counter(FILE *fp, const char *name, const char *help,
    atomic_uint_fast64_t *v)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help,
	    name, name, (unsigned long long)load(v));
}

static bool
listed_status(int code)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (statuses[i] == code)
			return true;
	return false;
}

static void
render_counters(FILE *fp, struct metrics *m)
{
	fprintf(fp, "# HELP callhookd_http_responses_total HTTP responses "
	    "by status.\n# TYPE callhookd_http_responses_total counter\n");
	for (int code = 100; code < 600; code++)
		if (listed_status(code) || load(&m->responses[code]) > 0)
			fprintf(fp, "callhookd_http_responses_total"
			    "{code=\"%d\"} %llu\n", code,
			    (unsigned long long)load(&m->responses[code]));
	fprintf(fp, "# HELP callhookd_rejects_total Refused webhook requests "
	    "by reason.\n# TYPE callhookd_rejects_total counter\n");
	for (size_t i = 0; i < REJECT_REASONS; i++)
		fprintf(fp, "callhookd_rejects_total{reason=\"%s\"} %llu\n",
		    reject_names[i], (unsigned long long)load(&m->rejects[i]));
	render_counter(fp, "callhookd_events_stored_total",
	    "Calls stored for the first time.", &m->events_stored);
	render_counter(fp, "callhookd_duplicates_total",
	    "Deliveries identical to the stored body.", &m->duplicates);
	render_counter(fp, "callhookd_revisions_total",
	    "Deliveries whose body differed from the stored one.",
	    &m->revisions);
	render_counter(fp, "callhookd_type_mismatches_total",
	    "Known fields of the wrong type, kept leniently.",
	    &m->type_mismatches);
	render_counter(fp, "callhookd_previous_token_total",
	    "Webhook requests let in by [auth] previous_token.",
	    &m->previous_token);
	render_counter(fp, "callhookd_rejects_dropped_total",
	    "Refused requests not recorded in the rejects table.",
	    &m->rejects_dropped);
	render_counter(fp, "callhookd_commits_total",
	    "Transactions committed by the writer.", &m->commits);
	render_counter(fp, "callhookd_commit_failures_total",
	    "Transactions that failed and were retried.",
	    &m->commit_failures);
	render_counter(fp, "callhookd_events_set_aside_total",
	    "Events the store would not take, set aside in the rescue file.",
	    &m->events_set_aside);
	render_counter(fp, "callhookd_connections_cut_total",
	    "Connections closed for a request (headers, or body and trailer) "
	    "not in within twice [http] timeout; a webhook's late body is "
	    "also a too_slow reject.", &m->connections_cut);
	render_counter(fp, "callhookd_connections_full_total",
	    "Times the open connections reached [http] max_connections; "
	    "new ones then wait in the listen backlog.",
	    &m->connections_full);
}

static void
render_gauge(FILE *fp, const char *name, const char *help, size_t value)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s gauge\n%s %zu\n", name, help,
	    name, name, value);
}

/*
 * -1 while the database holds no event. last is wall-clock time, as the
 * writer took it or the file's latest received_at at the start: a clock
 * stepped back below it reads 0, not 2^64 ms.
 */
static double
since_last_event(uint64_t last)
{
	uint64_t now = now_wall_ms();

	if (last == 0)
		return -1.0;
	return now > last ? (double)(now - last) / 1000.0 : 0.0;
}

char *
metrics_render(struct metrics *m, const struct gauges *g, size_t *len)
{
	uint64_t last = load(&m->last_event_ms);
	char *buf = NULL;
	FILE *fp;

	if ((fp = open_memstream(&buf, len)) == NULL)
		return NULL;
	render_counters(fp, m);
	render_gauge(fp, "callhookd_queue_depth", "Events not yet committed.",
	    g->queue_depth);
	render_gauge(fp, "callhookd_queue_bytes", "Memory held by events not "
	    "yet committed, in bytes.", g->queue_bytes);
	render_gauge(fp, "callhookd_body_bytes", "Memory held by request "
	    "bodies being received, in bytes.", g->body_bytes);
	render_gauge(fp, "callhookd_memory_budget_bytes", "The limit of "
	    "callhookd_queue_bytes, and of callhookd_body_bytes: past it, "
	    "503 (one event is always let in).", g->memory_budget);
	render_gauge(fp, "callhookd_connections", "Connections open; at "
	    "[http] max_connections, new ones wait.", g->connections);
	render_gauge(fp, "callhookd_rescue_file_bytes", "Size of "
	    "DATABASE.unsaved.jsonl, where events the database would not "
	    "take wait for callhook import (0: none).", g->rescue_bytes);
	fprintf(fp, "# HELP callhookd_seconds_since_last_event Seconds since "
	    "the last committed event (-1: none in the database).\n"
	    "# TYPE callhookd_seconds_since_last_event gauge\n"
	    "callhookd_seconds_since_last_event %.3f\n",
	    since_last_event(last));
	fprintf(fp, "# HELP callhookd_fts_backlog Stored calls not yet in "
	    "the full-text index.\n# TYPE callhookd_fts_backlog gauge\n"
	    "callhookd_fts_backlog %" PRIu64 "\n", load(&m->fts_backlog));
	fprintf(fp, "# HELP callhookd_wal_pages_behind Write-ahead log pages "
	    "not yet copied into the database file.\n"
	    "# TYPE callhookd_wal_pages_behind gauge\n"
	    "callhookd_wal_pages_behind %" PRIu64 "\n", load(&m->wal_behind));
	render_histogram(fp, "callhookd_commit_batch_size",
	    "Events per committed transaction.", &m->batch_size);
	render_histogram(fp, "callhookd_commit_seconds",
	    "Time to write and commit one batch.", &m->commit_latency);
	render_histogram(fp, "callhookd_ack_seconds",
	    "Time from queueing an event to its commit (ack = commit).",
	    &m->ack_latency);
	fprintf(fp, "# HELP callhookd_build_info Build information.\n"
	    "# TYPE callhookd_build_info gauge\n"
	    "callhookd_build_info{version=\"%s\"} 1\n", CALLHOOKD_VERSION);
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

uint64_t
now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Every event gets its received_at from here, so the seconds part is
 * formatted once a second per thread ("YYYY-MM-DDTHH:MM:SS", 19 bytes
 * for years 0 to 9999) and only the milliseconds each time:
 * gmtime_r() and snprintf() were ~3.5 % of the receiver's instructions.
 */
void
format_utc_ms(uint64_t ms, char *buf, size_t len)
{
	static _Thread_local struct {
		uint64_t	secs;
		bool		valid;
		char		text[80];	/* what any struct tm may print */
	} cache;
	uint64_t secs = ms / 1000;
	unsigned milli = (unsigned)(ms % 1000);
	time_t t = (time_t)secs;
	struct tm tm;

	if (!cache.valid || cache.secs != secs) {
		gmtime_r(&t, &tm);
		snprintf(cache.text, sizeof(cache.text),
		    "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec);
		cache.secs = secs;
		cache.valid = strlen(cache.text) == 19;
	}
	if (!cache.valid || len < 25) {
		snprintf(buf, len, "%s.%03uZ", cache.text, milli);
		return;
	}
	memcpy(buf, cache.text, 19);
	buf[19] = '.';
	buf[20] = (char)('0' + milli / 100);
	buf[21] = (char)('0' + milli / 10 % 10);
	buf[22] = (char)('0' + milli % 10);
	buf[23] = 'Z';
	buf[24] = '\0';
}

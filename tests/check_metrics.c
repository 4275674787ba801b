/*
 * metrics: what /metrics renders, read back from metrics_render().
 */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

Suite	*metrics_suite(void);

static char *
render_with(struct metrics *m, const struct gauges *g)
{
	size_t len;
	char *text = metrics_render(m, g, &len);

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len);
	return text;
}

static char *
render(struct metrics *m)
{
	struct gauges none = { 0 };

	return render_with(m, &none);
}

#define HAS(text, line)	ck_assert_msg(strstr(text, line) != NULL, \
			    "no \"%s\" in /metrics", line)

/* Sums are exact: %g printed a million batches of one as 1e+06. */
START_TEST(test_sums_exact)
{
	struct metrics *m = malloc(sizeof(*m));
	char *text;

	ck_assert_ptr_nonnull(m);
	metrics_init(m);
	for (int i = 0; i < 1000003; i++)
		metrics_observe(&m->batch_size, 1);
	metrics_observe(&m->commit_latency, 1234567890);
	metrics_observe(&m->ack_latency, 7);
	text = render(m);
	HAS(text, "\ncallhookd_commit_batch_size_sum 1000003\n");
	HAS(text, "\ncallhookd_commit_batch_size_count 1000003\n");
	HAS(text, "\ncallhookd_commit_seconds_sum 1234.567890\n");
	HAS(text, "\ncallhookd_ack_seconds_sum 0.000007\n");
	free(text);
	free(m);
}
END_TEST

/*
 * A scrape that reads a histogram mid-update (a bucket added to, its
 * count not yet) still shows _count equal to the +Inf bucket, as the
 * format requires: _count was read apart, after the buckets.
 */
START_TEST(test_count_is_inf_bucket)
{
	struct metrics *m = malloc(sizeof(*m));
	char *text;

	ck_assert_ptr_nonnull(m);
	metrics_init(m);
	metrics_observe(&m->commit_latency, 300);
	metrics_observe(&m->commit_latency, 2000000);
	atomic_fetch_add(&m->commit_latency.bucket[0], 1);
	text = render(m);
	HAS(text, "\ncallhookd_commit_seconds_bucket{le=\"0.0001\"} 1\n");
	HAS(text, "\ncallhookd_commit_seconds_bucket{le=\"0.0005\"} 2\n");
	/* Between 1 s and the 4.5 s of a held webhook's deadline. */
	HAS(text, "\ncallhookd_commit_seconds_bucket{le=\"1\"} 2\n");
	HAS(text, "\ncallhookd_commit_seconds_bucket{le=\"2.5\"} 3\n");
	HAS(text, "\ncallhookd_commit_seconds_bucket{le=\"+Inf\"} 3\n");
	HAS(text, "\ncallhookd_commit_seconds_count 3\n");
	free(text);
	free(m);
}
END_TEST

/* What the caller sampled, each as a gauge of its own. */
START_TEST(test_gauges)
{
	struct metrics *m = malloc(sizeof(*m));
	struct gauges g = { .queue_depth = 3, .queue_bytes = 55000,
	    .body_bytes = 4097, .memory_budget = 12582912 };
	char *text;

	ck_assert_ptr_nonnull(m);
	metrics_init(m);
	text = render_with(m, &g);
	HAS(text, "\ncallhookd_queue_depth 3\n");
	HAS(text, "# TYPE callhookd_queue_bytes gauge\n"
	    "callhookd_queue_bytes 55000\n");
	HAS(text, "# TYPE callhookd_body_bytes gauge\n"
	    "callhookd_body_bytes 4097\n");
	HAS(text, "\ncallhookd_memory_budget_bytes 12582912\n");
	free(text);
	free(m);
}
END_TEST

/* A wall clock stepped back below the last event reads 0, not 1.8e16. */
START_TEST(test_since_last_event)
{
	struct metrics *m = malloc(sizeof(*m));
	char *text;

	ck_assert_ptr_nonnull(m);
	metrics_init(m);
	text = render(m);
	HAS(text, "\ncallhookd_seconds_since_last_event -1.000\n");
	free(text);
	atomic_store(&m->last_event_ms, now_wall_ms() + 30000);
	text = render(m);
	HAS(text, "\ncallhookd_seconds_since_last_event 0.000\n");
	free(text);
	atomic_store(&m->last_event_ms, now_wall_ms() - 90000);
	text = render(m);
	ck_assert_ptr_nonnull(strstr(text,
	    "\ncallhookd_seconds_since_last_event 9"));
	free(text);
	free(m);
}
END_TEST

/* The usual statuses always; any other once sent (501 was never shown). */
START_TEST(test_statuses)
{
	struct metrics *m = malloc(sizeof(*m));
	char *text;

	ck_assert_ptr_nonnull(m);
	metrics_init(m);
	m->responses[501] = 1;
	m->responses[418] = 2;
	text = render(m);
	HAS(text, "callhookd_http_responses_total{code=\"200\"} 0\n");
	HAS(text, "callhookd_http_responses_total{code=\"501\"} 1\n");
	HAS(text, "callhookd_http_responses_total{code=\"418\"} 2\n");
	ck_assert_ptr_null(strstr(text, "code=\"402\""));
	free(text);
	free(m);
}
END_TEST

Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");

	tcase_add_test(tc, test_sums_exact);
	tcase_add_test(tc, test_statuses);
	tcase_add_test(tc, test_gauges);
	tcase_add_test(tc, test_count_is_inf_bucket);
	tcase_add_test(tc, test_since_last_event);
	suite_add_tcase(s, tc);
	return s;
}

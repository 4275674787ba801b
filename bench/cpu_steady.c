/*
 * How steady the server's CPU is: a fixed loop, timed in 10 ms windows.
 *
 * A p99 of a few milliseconds is decided by the worst one percent of the
 * run. On a virtual machine that one percent can be the host's: a vCPU
 * that the hypervisor runs at a fraction of its speed for tens of
 * milliseconds, which the guest does not always count as steal time.
 * bench/run runs this on the server's CPU before the matrix and writes
 * what it finds into results.md, so a reader can tell a noisy host from
 * a slow server.
 *
 * Usage: cpu_steady [SECONDS]   (default 3)
 * Prints: windows=N slow40=K slow70=J
 *   N windows of 10 ms; K of them did less than 40 % of the work of the
 *   best window, J less than 70 %.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WINDOW_NS	10000000ULL
#define MAX_WINDOWS	60000
#define STEP		10000	/* loop turns between clock reads (~10 µs) */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Steps of the loop done in each window of 10 ms, until end_ns. */
static size_t
measure(uint64_t end_ns, uint32_t *steps, size_t max)
{
	volatile uint64_t x = 1;
	uint64_t start = now_ns(), t;
	uint32_t n = 0;
	size_t w = 0;

	while (w < max && (t = now_ns()) < end_ns) {
		if (t - start >= WINDOW_NS) {
			steps[w++] = n;
			n = 0;
			start = t;
		}
		for (int i = 0; i < STEP; i++)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		n++;
	}
	return w;
}

int
main(int argc, char **argv)
{
	static uint32_t steps[MAX_WINDOWS];
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	size_t n, slow40 = 0, slow70 = 0;
	uint32_t best = 0;

	if (seconds <= 0 || seconds > 600) {
		fprintf(stderr, "usage: cpu_steady [SECONDS (0-600]]\n");
		return 2;
	}
	n = measure(now_ns() + (uint64_t)(seconds * 1e9), steps, MAX_WINDOWS);
	for (size_t i = 0; i < n; i++)
		if (steps[i] > best)
			best = steps[i];
	for (size_t i = 0; i < n; i++) {
		slow40 += steps[i] * 10 < best * 4;
		slow70 += steps[i] * 10 < best * 7;
	}
	printf("windows=%zu slow40=%zu slow70=%zu\n", n, slow40, slow70);
	return n > 0 ? 0 : 1;
}

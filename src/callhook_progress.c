/*
 * Progress on stderr for the commands that may run for minutes (import,
 * export, prune, backup): one line, rewritten in place, shown only on a
 * terminal and only once the command has run for a second, so that
 * scripts and quick runs see nothing.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "callhook.h"
#include "metrics.h"

#define PROGRESS_AFTER_NS	1000000000ULL	/* quiet for quick runs */
#define PROGRESS_EVERY_NS	200000000ULL	/* a terminal need not flicker */

void
progress_init(struct progress *p, bool enabled)
{
	memset(p, 0, sizeof(*p));
	p->enabled = enabled;
	p->start_ns = now_mono_ns();
}

/* After the first second, at most five times a second. */
void
progress_tick(struct progress *p, const char *fmt, ...)
{
	uint64_t now;
	va_list ap;

	if (!p->enabled)
		return;
	now = now_mono_ns();
	if (now - p->start_ns < PROGRESS_AFTER_NS ||
	    now - p->last_ns < PROGRESS_EVERY_NS)
		return;
	p->last_ns = now;
	p->shown = true;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

void
progress_done(struct progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}

/*
 * Logging to stderr, one line per message.
 *
 * Any thread may log, and log_setup() may change the level and format at
 * any time (SIGHUP), so both live in atomics; a message below the level
 * costs one relaxed load. A line is built whole in a stack buffer and
 * written with one write(2), which keeps lines from different threads
 * from interleaving. A line that does not fit is cut short, but always
 * at a character boundary and always closed, so that a JSON line still
 * parses.
 *
 * Text:	2026-11-26T20:00:00.123Z info: message key=value key="a b"
 * JSON:	{"time":"...","level":"info","msg":"message","key":"value"}
 *
 * Control characters are escaped in both formats: a message cannot forge
 * a second line.
 *
 * Under systemd, standard error is the journal's stream, which stores
 * every line at the stream's one priority (info) unless the line starts
 * with a syslog priority, "<3>" for an error: without it, "journalctl
 * -p warning" and alerts on priority saw no error or warning at all.
 * So each line starts with one, which journald takes off, when
 * $JOURNAL_STREAM says standard error is that stream (systemd.exec(5)),
 * and nowhere else: in a terminal or a file it would be noise.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"

#define LINE_MAX_BYTES	4096
/* Kept free to close a cut line: a quote, then "}\n". */
#define LINE_RESERVE	4

static atomic_int	log_level_cur = LOG_INFO;
static atomic_int	log_format_cur = LOG_FORMAT_TEXT;
static atomic_bool	log_journal;	/* stderr is the journal's stream */

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const char *const level_priorities[] = {
	SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG
};

struct line {
	char	buf[LINE_MAX_BYTES];
	size_t	len;
	bool	full;		/* something was dropped; add nothing more */
};

int
log_level_from_name(const char *name)
{
	for (int i = LOG_ERROR; i <= LOG_DEBUG; i++)
		if (strcasecmp(level_names[i], name) == 0)
			return i;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < LOG_ERROR || level > LOG_DEBUG)
		return "unknown";
	return level_names[level];
}

/* $JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd gave us. */
static bool
stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;
	int end = 0;

	if (env == NULL || sscanf(env, "%llu:%llu%n", &dev, &ino, &end) != 2 ||
	    env[end] != '\0' || fstat(STDERR_FILENO, &sb) != 0)
		return false;
	return (unsigned long long)sb.st_dev == dev &&
	    (unsigned long long)sb.st_ino == ino;
}

const char *
log_priority_prefix(int level)
{
	if (level < LOG_ERROR || level > LOG_DEBUG ||
	    !atomic_load_explicit(&log_journal, memory_order_relaxed))
		return "";
	return level_priorities[level];
}

void
log_setup(int level, enum log_format format)
{
	atomic_store_explicit(&log_journal, stderr_is_journal(),
	    memory_order_relaxed);
	atomic_store_explicit(&log_level_cur, level, memory_order_relaxed);
	atomic_store_explicit(&log_format_cur, (int)format,
	    memory_order_relaxed);
}

int
log_enabled(int level)
{
	return level <= atomic_load_explicit(&log_level_cur,
	    memory_order_relaxed);
}

/* All of s or nothing, outside the reserve. */
static bool
put(struct line *l, const char *s, size_t n)
{
	if (l->full || n > sizeof(l->buf) - LINE_RESERVE - l->len) {
		l->full = true;
		return false;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return true;
}

static bool
put_str(struct line *l, const char *s)
{
	return put(l, s, strlen(s));
}

/* Closing bytes go into the reserve, so a cut line can still be closed. */
static void
put_closing(struct line *l, const char *s)
{
	size_t n = strlen(s);

	if (n <= sizeof(l->buf) - l->len) {
		memcpy(l->buf + l->len, s, n);
		l->len += n;
	}
}

/* The escaped form of c, or NULL when c stands for itself. */
static const char *
escape(unsigned char c, bool json, bool quotes, char tmp[8])
{
	switch (c) {
	case '\n':
		return "\\n";
	case '\r':
		return "\\r";
	case '\t':
		return "\\t";
	case '"':
		return quotes ? "\\\"" : NULL;
	case '\\':
		return quotes ? "\\\\" : NULL;
	}
	if (c >= 0x20 && c != 0x7f)
		return NULL;
	snprintf(tmp, 8, json ? "\\u%04x" : "\\x%02x", c);
	return tmp;
}

/* How many bytes the character at s takes, so as not to cut it. */
static size_t
char_len(const unsigned char *s)
{
	size_t n = 1;

	if (s[0] >= 0xc0)
		while (n < 4 && (s[n] & 0xc0) == 0x80)
			n++;
	return n;
}

/*
 * Append s with control characters escaped, and quotes and backslashes
 * too when quotes is set. Stops at the first character that does not fit.
 */
static void
put_escaped(struct line *l, const char *s, bool json, bool quotes)
{
	const unsigned char *p = (const unsigned char *)s;
	const char *esc;
	char tmp[8];
	size_t n;

	while (*p != '\0') {
		esc = escape(*p, json, quotes, tmp);
		if (esc != NULL) {
			if (!put_str(l, esc))
				return;
			p++;
			continue;
		}
		n = char_len(p);
		if (!put(l, (const char *)p, n))
			return;
		p += n;
	}
}

/* A JSON string; false when not even its opening quote fitted. */
static bool
put_json_string(struct line *l, const char *s)
{
	if (!put_str(l, "\""))
		return false;
	put_escaped(l, s, true, true);
	put_closing(l, "\"");
	return true;
}

static bool
needs_quotes(const char *s)
{
	if (*s == '\0')
		return true;
	for (; *s != '\0'; s++)
		if (*s == ' ' || *s == '"' || *s == '=' || *s == '\\' ||
		    (unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void
put_time(struct line *l)
{
	struct timespec ts;
	struct tm tm;
	char buf[64];
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	put_str(l, buf);
}

/* A field the line has no room for is left out whole. */
static void
put_text_field(struct line *l, const char *key, const char *value)
{
	size_t mark = l->len;
	bool quoted = needs_quotes(value);

	if (!put_str(l, " ") || !put_str(l, key) || !put_str(l, "=") ||
	    (quoted && !put_str(l, "\""))) {
		l->len = mark;
		return;
	}
	put_escaped(l, value, false, quoted);
	if (quoted)
		put_closing(l, "\"");
}

/*
 * The fields that are counts or codes, written as JSON numbers so that
 * a reader can compare them (jq 'select(.status >= 500)'); text lines
 * cannot tell the two apart. Only when the value is a plain decimal.
 */
static bool
is_number_field(const char *key, const char *value)
{
	static const char *const keys[] = { "status", "unlogged", NULL };
	size_t n = strspn(value, "0123456789");

	if (n == 0 || value[n] != '\0' || n > 15 ||
	    (value[0] == '0' && n > 1))
		return false;
	for (const char *const *k = keys; *k != NULL; k++)
		if (strcmp(key, *k) == 0)
			return true;
	return false;
}

static void
put_json_field(struct line *l, const char *key, const char *value)
{
	size_t mark = l->len;

	if (!put_str(l, ",") || !put_json_string(l, key) || l->full ||
	    !put_str(l, ":") || !(is_number_field(key, value) ?
	    put_str(l, value) : put_json_string(l, value)))
		l->len = mark;
}

static void
format_text(struct line *l, int level, const char *msg,
    const char *const *fields)
{
	put_str(l, log_priority_prefix(level));
	put_time(l);
	put_str(l, " ");
	put_str(l, log_level_name(level));
	put_str(l, ": ");
	put_escaped(l, msg, false, false);
	for (; fields != NULL && fields[0] != NULL; fields += 2)
		if (fields[1] != NULL)
			put_text_field(l, fields[0], fields[1]);
	put_closing(l, "\n");
}

static void
format_json(struct line *l, int level, const char *msg,
    const char *const *fields)
{
	put_str(l, log_priority_prefix(level));
	put_str(l, "{\"time\":\"");
	put_time(l);
	put_str(l, "\",\"level\":\"");
	put_str(l, log_level_name(level));
	put_str(l, "\",\"msg\":");
	put_json_string(l, msg);
	for (; fields != NULL && fields[0] != NULL; fields += 2)
		if (fields[1] != NULL)
			put_json_field(l, fields[0], fields[1]);
	put_closing(l, "}\n");
}

/* Callers have checked log_enabled(level). errno is left as it was. */
static void
emit(int level, const char *msg, const char *const *fields)
{
	struct line l;
	int saved = errno;

	l.len = 0;
	l.full = false;
	if (atomic_load_explicit(&log_format_cur, memory_order_relaxed) ==
	    LOG_FORMAT_JSON)
		format_json(&l, level, msg, fields);
	else
		format_text(&l, level, msg, fields);
	while (write(STDERR_FILENO, l.buf, l.len) == -1 && errno == EINTR)
		;
	errno = saved;
}

/* with_errno appends ": strerror(errno)", errno as the caller left it. */
static void
vlog(int level, bool with_errno, const char *fmt, va_list ap)
{
	char msg[LINE_MAX_BYTES];
	int saved = errno;
	int n;

	if (!log_enabled(level))
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		n = 0;
	if (with_errno && (size_t)n < sizeof(msg)) {
		/* %m is strerror(errno), but thread-safe. */
		errno = saved;
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %m");
	}
	errno = saved;
	emit(level, msg, NULL);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, true, fmt, ap);
	va_end(ap);
}

void
log_errorx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, false, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARN, true, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARN, false, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, false, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_DEBUG, false, fmt, ap);
	va_end(ap);
}

void
log_fields(int level, const char *msg, const char *const *fields)
{
	if (log_enabled(level))
		emit(level, msg, fields);
}

#ifndef CALLHOOK_LOG_H
#define CALLHOOK_LOG_H

/*
 * Logging to stderr (journald picks it up under systemd), one line per
 * message, as text or as one JSON object per line. Thread-safe: each line
 * is written with a single write(2).
 */

#include <stdarg.h>

#include "config.h"

#define LOG_ERROR	0
#define LOG_WARN	1
#define LOG_INFO	2
#define LOG_DEBUG	3

/* "error" -> LOG_ERROR, ...; -1 when name is unknown. */
int	log_level_from_name(const char *name);
const char *log_level_name(int level);

/*
 * May be called again at any time (SIGHUP) from any thread. Also looks
 * whether standard error is the journal's stream ($JOURNAL_STREAM).
 */
void	log_setup(int level, enum log_format format);

/*
 * What starts a line of that level on standard error so that the journal
 * stores it at its syslog priority ("<3>" for LOG_ERROR, which journald
 * takes off), or "" when standard error is not the journal's stream.
 */
const char *log_priority_prefix(int level);
int	log_enabled(int level);

/*
 * log_warn and log_error append ": strerror(errno)"; the x variants do
 * not (OpenBSD's convention).
 */
void	log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A line with structured fields: in text format they are appended as
 * key=value, in JSON format they are members of the object. fields is a
 * NULL-terminated list of key, value pairs (values are strings; a NULL
 * value skips the pair).
 */
void	log_fields(int level, const char *msg, const char *const *fields);

#endif

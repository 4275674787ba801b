/*
 * The filters of callhook's queries, as SQL.
 *
 * Each filter is a condition on one indexed column so that SQLite can
 * start from the most selective index: call_time for --since/--until,
 * (agent_id, call_time), (batch_id, call_time) and (hangup_reason,
 * call_time) for the others, whose second column also gives "newest
 * first" without a sort. --converted and --not-converted each match a
 * good share of the calls, so walking call_time newest first finds a
 * page of them at once. Values are bound as named parameters, never
 * pasted into the SQL.
 *
 * call_time is compared as text: it is "YYYY-MM-DD HH:MM:SS" as the
 * sender wrote it, in the sender's zone, which sorts like the time.
 *
 * A phone number is matched by listing the forms it may be stored in
 * ('919876543210', '+919876543210', '9876543210', '09876543210') and
 * asking for to_number IN (...) OR from_number IN (...): four lookups in
 * each of two plain indexes. Normalising the stored column instead would
 * need an index on an expression of it, and bake the country code, which
 * is an option here, into the schema.
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "callhook.h"

#define DEFAULT_COUNTRY	"91"
#define NATIONAL_LEN	10
#define DIGITS_MIN	4
#define DIGITS_MAX	18

void
filter_init(struct filter *f)
{
	memset(f, 0, sizeof(*f));
	f->converted = -1;
	f->country_code = DEFAULT_COUNTRY;
}

static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int
filter_option(struct filter *f, int opt, const char *arg, char *err,
    size_t errlen)
{
	char scratch[TIME_LEN], forms[NUMBER_FORMS][32];

	switch (opt) {
	case OPT_SINCE:
	case OPT_UNTIL:
		if (time_parse(arg, opt == OPT_SINCE ? f->since : scratch,
		    opt == OPT_SINCE ? scratch : f->until) != 0) {
			snprintf(err, errlen, "%s: not a time (2025-12-19, "
			    "\"2025-12-19 16:00\", 7d, 12h)", arg);
			return -EINVAL;
		}
		return 1;
	case OPT_AGENT:
		f->agent = arg;
		return 1;
	case OPT_BATCH:
		f->batch = arg;
		return 1;
	case OPT_HANGUP:
		f->hangup = arg;
		return 1;
	case OPT_NUMBER:
		f->number = arg;
		break;
	case OPT_CONVERTED:
	case OPT_NOT_CONVERTED:
		if (f->converted == (opt != OPT_CONVERTED)) {
			snprintf(err, errlen, "--converted and --not-converted "
			    "match no call together");
			return -EINVAL;
		}
		f->converted = opt == OPT_CONVERTED;
		return 1;
	case OPT_COUNTRY:
		if (arg[0] == '+')
			arg++;
		if (!all_digits(arg) || strlen(arg) > 3) {
			snprintf(err, errlen, "--country-code %s: one to "
			    "three digits", arg);
			return -EINVAL;
		}
		f->country_code = arg;
		break;
	default:
		return 0;
	}
	/* The number is checked again once the country code is known. */
	if (f->number != NULL &&
	    number_forms(f->number, f->country_code, forms) < 0) {
		snprintf(err, errlen, "%s: not a phone number", f->number);
		return -EINVAL;
	}
	return 1;
}

void
filter_sql(const struct filter *f, sqlite3_str *s)
{
	if (f->since[0] != '\0')
		sqlite3_str_appendall(s, " AND call_time >= :since");
	if (f->until[0] != '\0')
		sqlite3_str_appendall(s, " AND call_time < :until");
	if (f->agent != NULL)
		sqlite3_str_appendall(s, " AND agent_id = :agent");
	if (f->batch != NULL)
		sqlite3_str_appendall(s, " AND batch_id = :batch");
	if (f->hangup != NULL)
		sqlite3_str_appendall(s, " AND hangup_reason = :hangup");
	if (f->converted >= 0)
		sqlite3_str_appendall(s, " AND conversion_status = :converted");
	if (f->number != NULL)
		sqlite3_str_appendall(s, " AND (to_number IN " NUMBER_PARAMS
		    " OR from_number IN " NUMBER_PARAMS ")");
}

/* Bind name if the statement has it. */
static int
bind_text(sqlite3_stmt *stmt, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(stmt, name);

	if (i == 0)
		return SQLITE_OK;
	return sqlite3_bind_text(stmt, i, v, -1, SQLITE_TRANSIENT);
}

int
filter_bind(const struct filter *f, sqlite3_stmt *stmt, char *err,
    size_t errlen)
{
	char forms[NUMBER_FORMS][32], name[8];
	int n = 0, rc = SQLITE_OK, i;

	if (f->since[0] != '\0')
		rc = bind_text(stmt, ":since", f->since);
	if (rc == SQLITE_OK && f->until[0] != '\0')
		rc = bind_text(stmt, ":until", f->until);
	if (rc == SQLITE_OK && f->agent != NULL)
		rc = bind_text(stmt, ":agent", f->agent);
	if (rc == SQLITE_OK && f->batch != NULL)
		rc = bind_text(stmt, ":batch", f->batch);
	if (rc == SQLITE_OK && f->hangup != NULL)
		rc = bind_text(stmt, ":hangup", f->hangup);
	if (rc == SQLITE_OK && f->converted >= 0 && (i =
	    sqlite3_bind_parameter_index(stmt, ":converted")) > 0)
		rc = sqlite3_bind_int(stmt, i, f->converted);
	if (rc == SQLITE_OK && f->number != NULL &&
	    (n = number_forms(f->number, f->country_code, forms)) < 0) {
		snprintf(err, errlen, "%s: not a phone number", f->number);
		return -EINVAL;
	}
	/* Fewer than four forms: repeat the first. */
	for (i = 0; rc == SQLITE_OK && f->number != NULL &&
	    i < NUMBER_FORMS; i++) {
		snprintf(name, sizeof(name), ":n%d", i);
		rc = bind_text(stmt, name, forms[i < n ? i : 0]);
	}
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errstr(rc));
		return -EINVAL;
	}
	return 0;
}

/* Read exactly n digits into *v. */
static const char *
digits(const char *p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, p++) {
		if (!isdigit((unsigned char)*p))
			return NULL;
		*v = *v * 10 + (*p - '0');
	}
	return p;
}

/* A year past 9999 does not fit: 0 or -EINVAL. */
static int
format_tm(const struct tm *tm, char *out)
{
	return strftime(out, TIME_LEN, "%Y-%m-%d %H:%M:%S", tm) ==
	    TIME_LEN - 1 ? 0 : -EINVAL;
}

/*
 * "7d" and friends: both bounds are now minus that much, local time. The
 * limit, a hundred years, is on the time and not on the count, so that
 * 43200m (30 days) is taken as 720h is.
 */
static int
relative_time(const char *s, char *from, char *to)
{
	static const struct { char unit; long secs; } units[] = {
		{ 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 },
	};
	struct tm tm;
	char *end;
	long n;
	time_t t;

	errno = 0;
	n = strtol(s, &end, 10);
	if (end == s || !isdigit((unsigned char)*s) || errno != 0 ||
	    end[0] == '\0' || end[1] != '\0')
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (units[i].unit != *end)
			continue;
		if (n > 100L * 366 * 86400 / units[i].secs)
			return -EINVAL;
		t = time(NULL) - (time_t)n * units[i].secs;
		if (localtime_r(&t, &tm) == NULL || format_tm(&tm, from) != 0)
			return -EINVAL;
		return format_tm(&tm, to);
	}
	return -EINVAL;
}

/*
 * The calendar arithmetic is done in UTC (timegm), where every day has
 * 86400 seconds, so that "the next day" does not depend on DST.
 */
static int
absolute_time(const char *s, char *from, char *to)
{
	struct tm tm = { 0 };
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	long step = 86400;
	time_t t;

	if ((p = digits(p, 4, &y)) == NULL || *p++ != '-' ||
	    (p = digits(p, 2, &mo)) == NULL || *p++ != '-' ||
	    (p = digits(p, 2, &d)) == NULL)
		return -EINVAL;
	if (*p == ' ' || *p == 'T') {
		if ((p = digits(p + 1, 2, &h)) == NULL || *p++ != ':' ||
		    (p = digits(p, 2, &mi)) == NULL)
			return -EINVAL;
		step = 60;
		if (*p == ':') {
			if ((p = digits(p + 1, 2, &sec)) == NULL)
				return -EINVAL;
			step = 1;
		}
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalises 2025-02-30 into March: refuse it. */
	if (tm.tm_mday != d)
		return -EINVAL;
	if (format_tm(&tm, from) != 0)
		return -EINVAL;
	t += step;
	gmtime_r(&t, &tm);
	if (format_tm(&tm, to) == 0)
		return 0;
	/* After 9999-12-31 23:59:59: ISO 8601's end of that day. */
	snprintf(to, TIME_LEN, "%.10s 24:00:00", from);
	return 0;
}

int
time_parse(const char *s, char *from, char *to)
{
	if (strchr(s, '-') != NULL)
		return absolute_time(s, from, to);
	return relative_time(s, from, to);
}

/*
 * Keep the digits of in, dropping the punctuation people type. *intl is
 * set when the number says it is international: a '+' before its first
 * digit, or a "00" prefix.
 */
static int
strip_number(const char *in, char *out, size_t outlen, bool *intl)
{
	size_t n = 0;

	*intl = false;
	for (const char *p = in; *p != '\0'; p++) {
		if (strchr(" -().", *p) != NULL)
			continue;
		if (*p == '+' && n == 0 && !*intl) {
			*intl = true;
			continue;
		}
		if (!isdigit((unsigned char)*p) || n + 1 >= outlen)
			return -EINVAL;
		out[n++] = *p;
	}
	out[n] = '\0';
	if (!*intl && n > 2 && strncmp(out, "00", 2) == 0) {
		memmove(out, out + 2, n - 1);
		*intl = true;
	}
	return 0;
}

int
number_forms(const char *in, const char *cc, char out[NUMBER_FORMS][32])
{
	char d[32], full[24];
	const char *p = d;
	size_t cclen = strlen(cc);
	bool intl;
	int n = 0;

	if (strip_number(in, d, sizeof(d), &intl) != 0 ||
	    strlen(d) < DIGITS_MIN || strlen(d) > DIGITS_MAX)
		return -EINVAL;
	if (!intl && strlen(p) == NATIONAL_LEN + 1 && p[0] == '0')
		p++;		/* the national trunk prefix */
	if (!intl && strlen(p) == NATIONAL_LEN)
		snprintf(full, sizeof(full), "%.3s%.18s", cc, p);
	else
		snprintf(full, sizeof(full), "%.18s", p);
	snprintf(out[n++], 32, "%s", full);
	snprintf(out[n++], 32, "+%.22s", full);
	if (strncmp(full, cc, cclen) == 0 &&
	    strlen(full) == cclen + NATIONAL_LEN) {
		snprintf(out[n++], 32, "%s", full + cclen);
		snprintf(out[n++], 32, "0%.22s", full + cclen);
	}
	return n;
}

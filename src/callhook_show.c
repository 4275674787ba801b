/*
 * callhook show: one call, every field, for a person (a label column and
 * the value; JSON objects pretty-printed under their label,
 * functions_called as a small table, the transcription last as it is
 * long) or as one JSON object. --revisions adds the earlier bodies from
 * call_revisions, as they were delivered.
 */

#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "callhook.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

#define LABEL_WIDTH	21

#define DATA(key, kind)		{ key, NULL, kind, F_DATA, 0, 0 }

static const struct field show_fields[] = {
	DATA("call_sid", K_TEXT),
	DATA("event", K_TEXT),
	DATA("call_type", K_TEXT),
	DATA("agent_id", K_TEXT),
	DATA("version_id", K_TEXT),
	DATA("from_number", K_TEXT),
	DATA("to_number", K_TEXT),
	DATA("call_time", K_TEXT),
	DATA("call_duration", K_DURATION),
	DATA("batch_id", K_TEXT),
	DATA("try_count", K_INT),
	DATA("hangup_reason", K_TEXT),
	DATA("disposition_reason", K_TEXT),
	DATA("conversion_status", K_BOOL),
	DATA("next_call_scheduled", K_BOOL),
	DATA("recording_url", K_TEXT),
	DATA("call_link", K_TEXT),
	DATA("call_metadata", K_JSON),
	DATA("post_call", K_JSON),
	DATA("post_call_detail", K_JSON),
	DATA("functions_called", K_JSON),
	DATA("first_received_at", K_TEXT),
	DATA("received_at", K_TEXT),
	DATA("deliveries", K_INT),
	DATA("revision", K_INT),
	DATA("remote_addr", K_TEXT),
	DATA("transcription", K_TEXT),
	DATA("payload", K_TEXT),
};
#define SHOW_COLUMNS							\
	"call_sid, event, call_type, agent_id, version_id,"		\
	" from_number,"							\
	" to_number, call_time, call_duration, batch_id, try_count,"	\
	" hangup_reason, disposition_reason, conversion_status,"	\
	" next_call_scheduled, recording_url, call_link,"		\
	" call_metadata,"						\
	" post_call, post_call_detail, functions_called,"		\
	" first_received_at, received_at, deliveries, revision,"	\
	" remote_addr, transcription, payload"
#define SHOW_TRANSCRIPTION	26
#define SHOW_PAYLOAD		27

/*
 * Text, cleaned: its first line indented by first (0 after a label on
 * the same line), the others by indent.
 */
static void
print_block(const char *s, size_t len, int first, int indent)
{
	char *buf = malloc(3 * len + 1);

	if (buf == NULL)
		return;
	text_clean(s, len, CLEAN_NL, buf);
	for (char *p = buf, *nl; p != NULL; p = nl) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		printf("%*s%s\n", p == buf ? first : indent, "", p);
	}
	free(buf);
}

static const char *
json_str(const cJSON *obj, const char *key, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v) ? "yes" : "no";
	if (v == NULL || cJSON_IsNull(v))
		return "";
	if (!cJSON_PrintPreallocated((cJSON *)v, buf, (int)len, 0))
		return "?";
	return buf;
}

/* v as text_clean() prints it, in a new string; NULL without memory. */
static char *
cleaned(const char *v)
{
	char *clean;

	if ((clean = malloc(3 * strlen(v) + 1)) != NULL)
		text_clean(v, strlen(v), 0, clean);
	return clean;
}

/* functions_called as NAME / SUCCESS / TIMESTAMP under its label. */
static bool
print_functions(const char *text)
{
	static const char *const keys[] = { "name", "success", "timestamp" };
	cJSON *arr = cJSON_Parse(text), *it;
	char buf[256], *clean;
	int w[3] = { 4, 7, 9 };

	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
		cJSON_Delete(arr);
		return false;
	}
	/* Measured as printed: a bidi mark is no column, its blank one. */
	cJSON_ArrayForEach(it, arr)
		for (int k = 0; k < 3; k++) {
			int cw;

			if ((clean = cleaned(json_str(it, keys[k], buf,
			    sizeof(buf)))) == NULL)
				continue;
			cw = text_width(clean);
			free(clean);
			w[k] = cw > w[k] ? (cw > 40 ? 40 : cw) : w[k];
		}
	printf("%-*s%-*s  %-*s  %s\n", LABEL_WIDTH, "functions_called",
	    w[0], "NAME", w[1], "SUCCESS", "TIMESTAMP");
	cJSON_ArrayForEach(it, arr) {
		printf("%*s", LABEL_WIDTH, "");
		for (int k = 0; k < 3; k++) {
			if ((clean = cleaned(json_str(it, keys[k], buf,
			    sizeof(buf)))) == NULL)
				break;
			/* Columns, not bytes: names may be Devanagari. */
			if (k > 0)
				printf("  ");
			if (k < 2)
				print_fitted(stdout, clean, w[k]);
			else
				printf("%s", clean);
			free(clean);
		}
		printf("\n");
	}
	cJSON_Delete(arr);
	return true;
}

static void
show_value(const struct field *f, const struct val *v)
{
	char num[64], *pretty;

	printf("%-*s", LABEL_WIDTH, f->key);
	if (v->t == V_NULL)
		printf("-\n");
	else if (f->kind == K_DURATION) {
		fmt_duration(v->t == V_TEXT ? 0 : v->t == V_INT ?
		    (double)v->i : v->r, num, sizeof(num));
		printf("%s (%g s)\n", num, v->t == V_INT ? (double)v->i : v->r);
	} else if (f->kind == K_BOOL && v->t == V_INT)
		printf("%s\n", v->i ? "yes" : "no");
	else if (v->t == V_INT)
		printf("%lld\n", v->i);
	else if (v->t == V_REAL)
		printf("%g\n", v->r);
	else if (f->kind == K_JSON &&
	    (pretty = json_pretty(v->s, LABEL_WIDTH)) != NULL) {
		/* json_pretty indented it. */
		print_block(pretty, strlen(pretty), 0, 0);
		free(pretty);
	} else {
		print_block(v->s, v->len, 0, LABEL_WIDTH);
	}
}

static void
show_text(const struct val *row)
{
	for (size_t i = 0; i < nitems(show_fields); i++) {
		const struct val *v = &row[i];

		if (i == SHOW_TRANSCRIPTION || i == SHOW_PAYLOAD)
			continue;
		if (strcmp(show_fields[i].key, "functions_called") == 0 &&
		    v->t == V_TEXT && print_functions(v->s))
			continue;
		show_value(&show_fields[i], v);
	}
	printf("%-*s%zu bytes\n", LABEL_WIDTH, "payload",
	    row[SHOW_PAYLOAD].len);
	printf("transcription\n");
	if (row[SHOW_TRANSCRIPTION].t == V_TEXT)
		print_block(row[SHOW_TRANSCRIPTION].s,
		    row[SHOW_TRANSCRIPTION].len, 2, 2);
	else
		printf("  -\n");
}

static int
show_revisions_text(struct ch *ch, const char *sid)
{
	sqlite3_stmt *stmt;
	const char *t;
	char *at;
	size_t len;
	int rc, n = 0;

	if (sqlite3_prepare_v2(ch->db, "SELECT revision, received_at,"
	    " payload FROM call_revisions WHERE call_sid = ?1"
	    " ORDER BY revision", -1, &stmt, NULL) != SQLITE_OK) {
		warnx("%s", sqlite3_errmsg(ch->db));
		return CH_FAIL;
	}
	sqlite3_bind_text(stmt, 1, sid, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		/* The daemon's timestamp, but text from the file all the same. */
		t = (const char *)sqlite3_column_text(stmt, 1);
		len = t != NULL ? (size_t)sqlite3_column_bytes(stmt, 1) : 0;
		if ((at = malloc(3 * len + 1)) != NULL)
			text_clean(t, len, 0, at);
		printf("\nrevision %lld, received %s, %d bytes\n",
		    (long long)sqlite3_column_int64(stmt, 0),
		    at != NULL ? at : "?", sqlite3_column_bytes(stmt, 2));
		free(at);
		print_block((const char *)sqlite3_column_text(stmt, 2),
		    (size_t)sqlite3_column_bytes(stmt, 2), 2, 2);
		n++;
	}
	if (n == 0 && rc == SQLITE_DONE)
		printf("\nno earlier revisions\n");
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? CH_OK : CH_FAIL;
}

/* show --format json: the row as one object, with its revisions. */
static int
show_json(struct ch *ch, sqlite3_stmt *row, bool revisions, const char *sid)
{
	static const struct field rev_fields[] = {
		DATA("revision", K_INT),
		DATA("received_at", K_TEXT),
		DATA("payload", K_TEXT),
	};
	struct val v[nitems(show_fields)];
	sqlite3_stmt *stmt = NULL;
	cJSON *obj, *revs = NULL, *it;
	char *text = NULL;
	int rc = SQLITE_DONE;

	val_from_stmt(row, v, nitems(v));
	if ((obj = out_json_object(show_fields, nitems(v), v)) == NULL)
		goto fail;
	if (revisions) {
		if ((revs = cJSON_AddArrayToObject(obj, "revisions")) == NULL ||
		    sqlite3_prepare_v2(ch->db, "SELECT revision, received_at,"
		    " payload FROM call_revisions WHERE call_sid = ?1"
		    " ORDER BY revision", -1, &stmt, NULL) != SQLITE_OK)
			goto fail;
		sqlite3_bind_text(stmt, 1, sid, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			val_from_stmt(stmt, v, nitems(rev_fields));
			if ((it = out_json_object(rev_fields,
			    nitems(rev_fields), v)) == NULL)
				goto fail;
			cJSON_AddItemToArray(revs, it);
		}
	}
	if (rc != SQLITE_DONE || (text = cJSON_Print(obj)) == NULL)
		goto fail;
	out_json_puts(text, stdout);
	putchar('\n');
	cJSON_free(text);
	cJSON_Delete(obj);
	sqlite3_finalize(stmt);
	return CH_OK;
 fail:
	warnx("%s", rc != SQLITE_DONE || stmt == NULL ?
	    sqlite3_errmsg(ch->db) : "out of memory");
	cJSON_Delete(obj);
	sqlite3_finalize(stmt);
	return CH_FAIL;
}

static int
show_args(int argc, char **argv, bool *revisions, enum format *fmt)
{
	static const struct option longopts[] = {
		{ "revisions", no_argument, NULL, OPT_REVISIONS },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_REVISIONS:
			*revisions = true;
			break;
		case OPT_FORMAT:
			if (format_parse(optarg, FMT_BIT(FMT_TABLE) |
			    FMT_BIT(FMT_JSON), fmt) != 0)
				return ch_usage_error("show", "--format %s: "
				    "unknown format", optarg);
			break;
		case 'h':
			return ch_help("show");
		default:
			return ch_usage("show");
		}
	}
	return ch_operands("show", argc, argv, 1, "a callSid");
}

int
cmd_show(struct ch *ch, int argc, char **argv)
{
	struct val v[nitems(show_fields)];
	enum format fmt = FMT_TABLE;
	sqlite3_stmt *stmt;
	bool revisions = false;
	int rc;

	if ((rc = show_args(argc, argv, &revisions, &fmt)) >= 0)
		return rc;
	if (ch_open_read(ch) != 0)
		return CH_FAIL;
	if (sqlite3_prepare_v2(ch->db, "SELECT " SHOW_COLUMNS " FROM calls"
	    " WHERE call_sid = ?1", -1, &stmt, NULL) != SQLITE_OK) {
		warnx("%s", sqlite3_errmsg(ch->db));
		return CH_FAIL;
	}
	sqlite3_bind_text(stmt, 1, argv[optind], -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW && fmt == FMT_JSON)
		rc = show_json(ch, stmt, revisions, argv[optind]);
	else if (rc == SQLITE_ROW) {
		val_from_stmt(stmt, v, nitems(v));
		show_text(v);
		rc = revisions ? show_revisions_text(ch, argv[optind]) : CH_OK;
	} else {
		if (rc == SQLITE_DONE)
			warnx("no call with callSid %s", argv[optind]);
		else
			warnx("%s", sqlite3_errmsg(ch->db));
		rc = CH_FAIL;
	}
	sqlite3_finalize(stmt);
	return rc;
}

/*
 * callhook: the command-line tool that reads (and, for import, prune,
 * backup and restore, writes) the database that callhookd keeps.
 *
 * This file parses the options that come before the command (-d, -c),
 * finds the database, opens it through the store module and calls the
 * command. Read-only commands open the file read-only, so they never take
 * a lock the daemon waits for. The commands that write (import, prune)
 * open it read-write like the daemon does, but keep the full-text index
 * as they find it: store_open builds or drops calls_fts to match its fts
 * option, and building it on a big file would hold the write lock for
 * minutes while the daemon answers 503.
 */

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "callhook.h"
#include "config.h"
#include "store.h"
#include "version.h"

#define BUSY_TIMEOUT_MS		5000

struct command {
	const char	*name;
	int		(*run)(struct ch *, int, char **);
	const char	*usage;
	const char	*help;
};

/* history's NUMBER is its --number: it takes the others only. */
#define FILTERS_BUT_NUMBER(number)					\
	"filters:\n"							\
	"  --since T, --until T   call_time from T, to the end of T;\n"	\
	"                         T is 2025-12-19, \"2025-12-19 16:00\", or\n" \
	"                         7d, 12h, 30m, 2w ago (local time)\n"	\
	"  --agent ID, --batch ID, --hangup REASON\n"			\
	number								\
	"  --converted, --not-converted\n"				\
	"  --country-code CC      for bare national numbers (default 91)\n"
#define FILTERS	FILTERS_BUT_NUMBER(					\
	"  --number N             calls to or from N (any usual form)\n")

static const struct command commands[] = {
	{ "list", cmd_list,
	    "list [filters] [--limit N] [--format table|csv|json]",
	    "The latest calls, newest first (50 unless --limit; 0: all).\n"
	    FILTERS },
	{ "show", cmd_show,
	    "show CALLSID [--revisions] [--format table|json]",
	    "Every field of one call; --revisions adds the earlier bodies.\n" },
	{ "search", cmd_search,
	    "search QUERY [filters] [--limit N] [--format table|csv|json]",
	    "Full-text search of transcriptions and disposition reasons\n"
	    "(FTS5 syntax: words, \"phrases\", OR, NOT, prefix*), best first.\n"
	    FILTERS },
	{ "stats", cmd_stats,
	    "stats [--by agent|batch|day|hangup|disposition] [filters] "
	    "[--format table|csv|json]",
	    "Calls, conversions, durations, callbacks and function-call\n"
	    "success per group.\n" FILTERS },
	{ "history", cmd_history,
	    "history NUMBER [filters] [--limit N] [--format table|csv|json]",
	    "Every call to or from NUMBER, oldest first (--limit: the first\n"
	    "N of them).\n" FILTERS_BUT_NUMBER("") },
	{ "export", cmd_export,
	    "export [--format csv|jsonl] [filters]",
	    "Every matching call with all its fields, oldest first.\n"
	    FILTERS },
	{ "import", cmd_import,
	    "import FILE|-",
	    "Store webhook bodies, one JSON document per line, as callhookd\n"
	    "would: same checks, same upsert. Safe while the daemon runs.\n" },
	{ "prune", cmd_prune,
	    "prune --older-than D [--transcripts-only]",
	    "Delete calls whose call_time is older than D (90d, 12h, or a\n"
	    "date), or with --transcripts-only set their transcription to\n"
	    "NULL. A call without a call_time, or with one that is not a\n"
	    "YYYY-MM-DD date, is kept.\n"
	    "Works in small transactions while the daemon runs.\n" },
	{ "backup", cmd_backup,
	    "backup [--force] DEST",
	    "A consistent copy of the database, taken while the daemon runs.\n"
	    "DEST must not exist unless --force.\n" },
	{ "restore", cmd_restore,
	    "restore BACKUP",
	    "Replace the database with BACKUP, a copy made by backup, while\n"
	    "callhookd is stopped (callhookd.socket too): refused while it\n"
	    "runs. BACKUP is checked first; the replaced file, -wal and -shm\n"
	    "are kept as DB.replaced-TIME, and the copy gets their owner and\n"
	    "mode.\n" },
	{ "rejects", cmd_rejects,
	    "rejects [--limit N] [--format table|csv|json]",
	    "The latest refused webhook requests, newest first.\n" },
};

#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

static const struct command *
find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int
ch_usage(const char *cmd)
{
	const struct command *c = cmd ? find_command(cmd) : NULL;

	if (c != NULL)
		fprintf(stderr, "usage: callhook [-d DB | -c CONFIG] %s\n",
		    c->usage);
	else
		fprintf(stderr, "usage: callhook [-d DB | -c CONFIG] COMMAND "
		    "[ARGS]\n       commands: list show search stats history "
		    "export import prune backup restore rejects\n");
	return CH_USAGE;
}

int
ch_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	return ch_usage(cmd);
}

int
ch_operands(const char *cmd, int argc, char **argv, int n, const char *what)
{
	if (argc - optind < n)
		return ch_usage_error(cmd, "%s is needed", what);
	if (argc - optind > n)
		return ch_usage_error(cmd, "unexpected argument: %s",
		    argv[optind + n]);
	return -1;
}

int
ch_help(const char *cmd)
{
	const struct command *c = find_command(cmd);

	printf("usage: callhook [-d DB | -c CONFIG] %s\n\n%s", c->usage,
	    c->help);
	return CH_OK;
}

static int
general_help(void)
{
	printf("usage: callhook [-d DB | -c CONFIG] COMMAND [ARGS]\n\n"
	    "  -d, --database DB    the database (default: calls.db in the "
	    "working\n"
	    "                       directory)\n"
	    "  -c, --config CONFIG  callhookd's configuration: the database "
	    "and fts\n"
	    "                       from [store], and the strict and max_body "
	    "checks\n"
	    "                       that import applies\n"
	    "  -V, --version        print the version and exit\n"
	    "  -h, --help           print this help and exit\n\n"
	    "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		printf("  %s\n", commands[i].usage);
	printf("\n\"callhook COMMAND --help\" describes a command; "
	    "callhook(1) has the details.\n");
	return CH_OK;
}

static void
print_config_error(void *arg, const char *file, int line, const char *msg)
{
	(void)arg;
	if (line > 0)
		warnx("%s:%d: %s", file, line, msg);
	else
		warnx("%s: %s", file, msg);
}

/*
 * A database is a regular file: SQLite's open of a FIFO waits for a
 * writer for ever, and of a device reads it as whatever it holds.
 */
static int
check_regular(const char *path, const struct stat *sb)
{
	if (S_ISREG(sb->st_mode))
		return 0;
	warnx("%s: not a regular file, so not a database", path);
	return -EINVAL;
}

/*
 * A relative database from -c is callhookd's, relative to its working
 * directory (/var/lib/callhookd under its unit), which callhook cannot
 * know: when it is not in the current one, say so rather than read, or
 * create, another file.
 */
static void
explain_relative(const struct ch *ch)
{
	if (ch->relative_in == NULL)
		return;
	warnx("%s gives [store] database as a relative path, which callhook "
	    "takes from the current directory and callhookd from its own "
	    "(/var/lib/callhookd under its systemd unit): use -d PATH, or an "
	    "absolute path in the file", ch->relative_in);
}

/*
 * SQLite reports a missing file as "unable to open database file" and
 * would create one on a read-write open: say it plainly first.
 */
static int
check_exists(const struct ch *ch)
{
	const char *path = ch->cfg.database;
	struct stat sb;

	if (stat(path, &sb) == 0)
		return check_regular(path, &sb);
	warnx("%s: %s", path, errno == ENOENT ? "no such file" :
	    strerror(errno));
	if (errno == ENOENT)
		explain_relative(ch);
	return -ENOENT;
}

static int
open_store(struct ch *ch, const char *path, bool readonly, bool fts)
{
	struct store_options opt = {
		.path = path, .readonly = readonly,
		.sync_full = ch->cfg.sync_full, .fts = fts, .known_dup = true,
		.busy_timeout_ms = BUSY_TIMEOUT_MS,
	};
	char msg[1024];
	int error;

	error = store_open(&ch->st, &opt, msg, sizeof(msg));
	if (error != 0) {
		warnx("%s", msg);
		return error;
	}
	ch->db = store_db(ch->st);
	return 0;
}

int
ch_open_read(struct ch *ch)
{
	if (check_exists(ch) != 0)
		return -ENOENT;
	return open_store(ch, ch->cfg.database, true, false);
}

int
ch_open_other(struct ch *ch, const char *path)
{
	return open_store(ch, path, true, false);
}

int
ch_check_replaceable(const struct ch *ch)
{
	struct stat sb;

	if (stat(ch->cfg.database, &sb) == 0)
		return check_regular(ch->cfg.database, &sb);
	if (errno == ENOENT && ch->relative_in == NULL)
		return 0;
	return check_exists(ch);
}

/* Whether the file has the full-text index, or -1 when it cannot tell. */
static int
fts_state(struct ch *ch)
{
	sqlite3_stmt *stmt = NULL;
	int have = -1;

	if (sqlite3_prepare_v2(ch->db, "SELECT count(*) FROM sqlite_schema"
	    " WHERE name = 'calls_fts'", -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		have = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return have;
}

/* path, whose stat is sb, holds no data: zero bytes, and no WAL with any. */
static bool
no_data(const char *path, const struct stat *sb)
{
	char wal[PATH_MAX];
	struct stat ws;

	if (sb->st_size != 0 || snprintf(wal, sizeof(wal), "%s-wal", path) >=
	    (int)sizeof(wal))
		return false;
	return stat(wal, &ws) == -1 ? errno == ENOENT : ws.st_size == 0;
}

/*
 * The index stays as the file has it (store_open repairs its triggers if
 * need be); the configuration, default on, decides only for a new file.
 * Only the daemon changes it, and DATABASE.lock keeps that to one daemon.
 */
int
ch_open_write(struct ch *ch, bool create)
{
	struct stat sb;
	bool fts = ch->cfg.fts, exists;
	int have;

	exists = stat(ch->cfg.database, &sb) == 0;
	if (exists && check_regular(ch->cfg.database, &sb) != 0)
		return -EINVAL;
	/* An empty file (touch) is a new database, for import as for SQLite. */
	if (exists && !(create && no_data(ch->cfg.database, &sb))) {
		if (open_store(ch, ch->cfg.database, true, false) != 0)
			return -EINVAL;
		if ((have = fts_state(ch)) >= 0)
			fts = have > 0;
		store_close(ch->st);
		ch->st = NULL;
		ch->db = NULL;
	} else if (!create || ch->relative_in != NULL)
		return check_exists(ch);
	return open_store(ch, ch->cfg.database, false, fts);
}

/* Colour follows https://no-color.org: any non-empty NO_COLOR turns it off. */
static bool
want_color(void)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");

	if (nc != NULL && nc[0] != '\0')
		return false;
	if (term != NULL && strcmp(term, "dumb") == 0)
		return false;
	return isatty(STDOUT_FILENO);
}

/* Widths of UTF-8 text need a UTF-8 LC_CTYPE; numbers stay in "C". */
static void
setup_locale(void)
{
	if (setlocale(LC_CTYPE, "") == NULL ||
	    strcmp(nl_langinfo(CODESET), "UTF-8") != 0)
		setlocale(LC_CTYPE, "C.UTF-8");
}

static int
set_database(struct ch *ch, const char *path)
{
	char msg[256];

	if (config_set(&ch->cfg, "store", "database", path, msg,
	    sizeof(msg)) != 0) {
		warnx("-d: %s", msg);
		return -EINVAL;
	}
	return 0;
}

static int
parse_global(struct ch *ch, int argc, char **argv, int *first)
{
	static const struct option longopts[] = {
		{ "database", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db = NULL, *conf = NULL;
	int c;

	/* '+': stop at the command, whose options are its own. */
	while ((c = getopt_long(argc, argv, "+d:c:hV", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'h':
			general_help();
			return -1;
		case 'V':
			printf("callhook %s\n", CALLHOOKD_VERSION);
			return -1;
		default:
			return ch_usage(NULL);
		}
	}
	if (optind >= argc)
		return ch_usage(NULL);
	if (db != NULL && conf != NULL) {
		warnx("-d and -c cannot be used together");
		return ch_usage(NULL);
	}
	/* As -d '' is, and as callhookd -c '' is: not ": No such file". */
	if (conf != NULL && conf[0] == '\0')
		return ch_usage_error(NULL, "-c: the file name is empty");
	if (conf != NULL) {
		if (config_load(&ch->cfg, conf, print_config_error, NULL) != 0)
			return CH_FAIL;
		if (ch->cfg.database[0] != '/')
			ch->relative_in = conf;
	}
	if (db != NULL && set_database(ch, db) != 0)
		return ch_usage(NULL);
	*first = optind;
	return CH_OK;
}

/*
 * rc, or CH_FAIL when what was written to stdout did not all get there
 * (a full disk, a closed pipe). A command that failed has said why; a
 * stale errno would not.
 */
static int
stdout_flushed(int rc)
{
	if (fflush(stdout) == EOF) {
		if (rc == CH_OK)
			warn("output");
		return CH_FAIL;
	}
	if (ferror(stdout)) {
		if (rc == CH_OK)
			warnx("output: write error");
		return CH_FAIL;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	const struct command *cmd;
	struct ch ch;
	char name[64];
	int first = 0, rc;

	setup_locale();
	memset(&ch, 0, sizeof(ch));
	config_defaults(&ch.cfg);
	rc = parse_global(&ch, argc, argv, &first);
	if (rc < 0)		/* --help, --version */
		return stdout_flushed(CH_OK);
	if (rc != CH_OK)
		return rc;
	if ((cmd = find_command(argv[first])) == NULL) {
		warnx("unknown command: %s", argv[first]);
		return ch_usage(NULL);
	}
	ch.color = want_color();
	ch.progress = isatty(STDERR_FILENO);
	/* getopt names argv[0] in its errors: "callhook list: ...". */
	snprintf(name, sizeof(name), "callhook %s", argv[first]);
	argv[first] = name;
	/* 0, not 1: glibc then forgets the '+' and permutes again. */
	optind = 0;
	rc = cmd->run(&ch, argc - first, argv + first);
	store_close(ch.st);
	return stdout_flushed(rc);
}

/*
 * callhookd: wires the configuration, the store, the writer thread and the
 * HTTP server together, then waits for signals. Signals are blocked before
 * any thread starts and taken here with sigwaitinfo(), so no handler runs
 * in an arbitrary thread.
 *
 * Stopping (SIGTERM, SIGINT) follows the promise that a 200 is kept: stop
 * accepting, let the writer commit everything queued and answer the held
 * connections, then close the server and the database.
 */

#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "auth.h"
#include "config.h"
#include "dblock.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "store.h"
#include "version.h"
#include "writer.h"

#define ACK_TIMEOUT_MS		4500
#define STOP_TIMEOUT_MS		20000
#define REJECT_QUEUE		1000
/*
 * How long the writer waits for a lock another process holds before the
 * batch fails and is retried after a pause; callhook import and prune
 * size their transactions by it (callhook_admin.c).
 */
#define WRITER_LOCK_WAIT_MS	100
#define HTTP_DRAIN_MS		3000	/* for answers in flight at stop */

struct options {
	const char	*config_file;
	const char	*listen;
	const char	*database;
	const char	*log_level;
	int		 check_only;
};

/*
 * A line on standard error before the log is set up, "callhookd: ...":
 * at the journal's error priority under systemd (log_priority_prefix()),
 * so that "journalctl -p err" shows why a start stopped.
 */
static void
print_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
print_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%scallhookd: ", log_priority_prefix(LOG_ERROR));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: callhookd [-c FILE] [--listen ADDR] [--database PATH] "
	    "[--log-level LEVEL]\n"
	    "       callhookd -t | --check-config [-c FILE]\n"
	    "       callhookd -V | --version\n"
	    "       callhookd -h | --help\n"
	    "\n"
	    "Receive CallKaro AI call_ended webhooks and keep every call in "
	    "SQLite.\n"
	    "\n"
	    "  -c, --config FILE     read FILE (INI); default: no file, "
	    "embedded defaults\n"
	    "      --listen ADDR     HOST:PORT, [V6]:PORT or unix:/path "
	    "(default 127.0.0.1:8080;\n"
	    "                        port 0 picks a free port and logs it)\n"
	    "      --database PATH   SQLite file (default ./calls.db)\n"
	    "      --log-level LEVEL error, warn, info or debug "
	    "(default info)\n"
	    "  -t, --check-config    validate the configuration, print "
	    "\"configuration OK\"\n"
	    "  -V, --version         print the version\n"
	    "  -h, --help            print this help\n"
	    "\n"
	    "Command-line options override the file. SIGHUP re-reads the "
	    "file; SIGTERM and\nSIGINT drain the queue and stop. "
	    "See callhookd(8) and callhookd.ini(5).\n");
}

/*
 * Exit 0 once what was printed on stdout got there, else 1: a script
 * that runs "callhookd -t > file" must not take a full disk for a
 * configuration that was checked and said OK.
 */
static _Noreturn void
exit_printed(void)
{
	errno = 0;		/* ferror() alone sets none */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		print_err("output: %s", errno != 0 ? strerror(errno) :
		    "write error");
		exit(1);
	}
	exit(0);
}

/*
 * An option's value that its key would refuse is a usage error (exit 2),
 * as an unknown option is, not a configuration error: checked on a
 * scratch configuration before any file is read.
 */
static void
check_option_values(const struct options *o)
{
	const struct {
		const char	*value, *section, *key, *flag;
	} opts[] = {
		{ o->listen, "http", "listen", "--listen" },
		{ o->database, "store", "database", "--database" },
		{ o->log_level, "log", "level", "--log-level" },
	};
	struct config scratch;
	char err[256];

	config_defaults(&scratch);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		if (opts[i].value == NULL || config_set(&scratch,
		    opts[i].section, opts[i].key, opts[i].value, err,
		    sizeof(err)) == 0)
			continue;
		print_err("%s: %s", opts[i].flag, err);
		usage(stderr);
		exit(2);
	}
}

static int
parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config",	  required_argument, NULL, 'c' },
		{ "listen",	  required_argument, NULL, 'L' },
		{ "database",	  required_argument, NULL, 'D' },
		{ "log-level",	  required_argument, NULL, 'l' },
		{ "check-config", no_argument,	     NULL, 't' },
		{ "version",	  no_argument,	     NULL, 'V' },
		{ "help",	  no_argument,	     NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config_file = optarg; break;
		case 'L': o->listen = optarg; break;
		case 'D': o->database = optarg; break;
		case 'l': o->log_level = optarg; break;
		case 't': o->check_only = 1; break;
		case 'V':
			printf("callhookd %s\n", CALLHOOKD_VERSION);
			exit_printed();
		case 'h':
			usage(stdout);
			exit_printed();
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		print_err("unexpected argument: %s", argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (o->config_file != NULL && o->config_file[0] == '\0') {
		print_err("-c: the file name is empty");
		usage(stderr);
		exit(2);
	}
	check_option_values(o);
	return 0;
}

/*
 * To the log once the daemon runs (at error level: a reload that fails
 * keeps the old configuration, which [log] level = error must not hide),
 * else to stderr. file says where the error is, with line when it is
 * more than 0: the file, an option, or NULL for nowhere to name.
 */
static void
tell_config_error(bool running, const char *file, int line,
    const char *msg)
{
	char where[PATH_MAX + 16] = "";

	if (file != NULL && line > 0)
		snprintf(where, sizeof(where), "%s:%d: ", file, line);
	else if (file != NULL)
		snprintf(where, sizeof(where), "%s: ", file);
	if (running)
		log_errorx("%s%s", where, msg);
	else
		print_err("%s%s", where, msg);
}

/* config_load()'s: arg is non-NULL once the daemon runs. */
static void
print_config_error(void *arg, const char *file, int line, const char *msg)
{
	tell_config_error(arg != NULL, file, line, msg);
}

/*
 * An error that the file alone did not show (a file to read, a name to
 * resolve): told at the file's line that set the value, as the file's
 * own errors are, else after the option that set it (flag, or NULL).
 */
static void
print_value_error(const struct options *o, int line, const char *flag,
    const char *msg, bool running)
{
	tell_config_error(running, line > 0 ? o->config_file : flag, line,
	    msg);
}

/*
 * Say what a token could not be read for, at its key's line. A file
 * missing under systemd's credentials directory is only a warning for
 * -t, since that directory exists only while the service runs: 0 then,
 * else -1.
 */
static int
tell_token_error(const struct options *o, const struct config *cfg,
    bool running, int rc, const char *err)
{
	static const char creds[] = "/run/credentials/";
	static const char *const keys[] = { "previous_token_file",
	    "previous_token", "token_file" };
	const char *key = NULL, *file;
	char warning[600], named[64];
	int line = 0;
	size_t i;

	/* The message names its key, or is CALLHOOKD_TOKEN's: no line. */
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && key == NULL; i++) {
		snprintf(named, sizeof(named), "[auth] %s", keys[i]);
		if (strncmp(err, named, strlen(named)) == 0)
			key = keys[i];
	}
	if (key != NULL)
		line = config_line(cfg, "auth", key);
	file = key == keys[0] ? cfg->previous_token_file : cfg->token_file;
	if (o->check_only && rc == -ENOENT && key != NULL && key != keys[1] &&
	    strncmp(file, creds, sizeof(creds) - 1) == 0) {
		snprintf(warning, sizeof(warning), "warning: %s (not checked: "
		    "systemd makes it when the service starts)", err);
		print_value_error(o, line, NULL, warning, running);
		return 0;
	}
	print_value_error(o, line, NULL, err, running);
	return -1;
}

/*
 * The token files must be readable, or the daemon would stop only after
 * making the database. When -t could not read the token's credential,
 * the old token's file is read all the same, as the start will.
 */
static int
check_credentials(const struct options *o, const struct config *cfg,
    bool running)
{
	static const char token_file[] = "[auth] token_file";
	char err[512];
	int rc;

	if ((rc = auth_check_token(cfg, err, sizeof(err))) == 0)
		return 0;
	if (tell_token_error(o, cfg, running, rc, err) != 0)
		return -1;
	if (strncmp(err, token_file, sizeof(token_file) - 1) != 0 ||
	    (rc = auth_check_previous_token(cfg, err, sizeof(err))) == 0)
		return 0;
	return tell_token_error(o, cfg, running, rc, err);
}

static int
apply_override(struct config *cfg, const char *section, const char *key,
    const char *value, const char *flag)
{
	char err[256];

	if (value == NULL || config_set(cfg, section, key, value, err,
	    sizeof(err)) == 0)
		return 0;
	print_err("%s: %s", flag, err);
	return -1;
}

/*
 * Defaults, then the file, then the command line, then the token file
 * they name. 0 or -1 (reported on stderr, or to the log when running).
 */
static int
load_config(const struct options *o, struct config *cfg, bool running)
{
	char err[256];
	int bad = 0;

	config_defaults(cfg);
	if (o->config_file != NULL && config_load(cfg, o->config_file,
	    print_config_error, running ? cfg : NULL) != 0)
		bad = 1;
	bad |= apply_override(cfg, "http", "listen", o->listen, "--listen");
	bad |= apply_override(cfg, "store", "database", o->database,
	    "--database");
	bad |= apply_override(cfg, "log", "level", o->log_level,
	    "--log-level");
	if (!bad && config_validate(cfg, err, sizeof(err)) != 0) {
		print_err("%s: %s", o->config_file ? o->config_file :
		    "configuration", err);
		bad = 1;
	}
	if (check_credentials(o, cfg, running) != 0)
		bad = 1;
	return bad ? -1 : 0;
}

struct daemon {
	struct config	 cfg;
	struct metrics	 metrics;
	struct store	*store;
	struct queue	*queue;
	struct writer	*writer;
	struct http	*http;
	char		 rescue[CONFIG_STR_MAX + 32];
	struct dblock	 lock;		/* DATABASE.lock */
	bool		 socket_passed;	/* by systemd, and kept by it */
	bool		 started;	/* up and listening */
	bool		 local;		/* only this host can connect */
	char		 where[300];	/* the listening socket, described */
};

static void
watchdog_ping(void)
{
	static uint64_t last;
	uint64_t now = now_mono_ns();

	/* At most once a second: sd_notify is a syscall. */
	if (now - last >= 1000000000ULL) {
		last = now;
		sd_notify(0, "WATCHDOG=1");
	}
}

/*
 * One daemon per database. Opening the store changes the file (the
 * full-text index follows fts), so a second daemon, even one that would
 * then fail to listen, must not get that far: it would drop or build the
 * index under the first. Nor may one start while callhook restore
 * replaces the file (dblock.h).
 */
static int
lock_database(struct daemon *d)
{
	char msg[PATH_MAX + 300];
	int error;

	error = dblock_take(&d->lock, d->cfg.database, NULL);
	if (error == -EWOULDBLOCK && d->lock.holder[0] != '\0')
		log_errorx("%s is in use by %s (pid %s, which holds %s): "
		    "start callhookd once it is done", d->cfg.database,
		    d->lock.holder, d->lock.holder_pid, d->lock.path);
	else if (error == -EWOULDBLOCK)
		log_errorx("%s is in use by another callhookd (pid %s, which "
		    "holds %s): one daemon per database", d->cfg.database,
		    d->lock.holder_pid, d->lock.path);
	else if (error != 0) {
		dblock_error(&d->lock, d->cfg.database, error, msg,
		    sizeof(msg));
		log_errorx("%s", msg);
	} else if (d->lock.pid_error != 0)
		log_warnx("%s: cannot write the pid: %s", d->lock.path,
		    strerror(d->lock.pid_error));
	return error == 0 ? 0 : -1;
}

/*
 * Each connection takes a descriptor; the rest (the listener, the
 * database's files for two connections, epoll, the log) fit in
 * FDS_SPARE. A shell's soft limit of 1024 is below the default
 * max_connections, so raise it towards the hard limit; the unit's
 * LimitNOFILE= already covers the default, and sets the hard limit too,
 * which an unprivileged process cannot raise. (Its syscall filter takes
 * setrlimit away, but glibc calls prlimit64, which it leaves.)
 */
#define FDS_SPARE	64

static void
fit_open_files(unsigned max_connections)
{
	rlim_t want = (rlim_t)max_connections + FDS_SPARE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ?
	    rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		log_warnx("max_connections %u needs about %llu open files, "
		    "and the limit is %llu (LimitNOFILE=, ulimit -n): "
		    "connections past it wait", max_connections,
		    (unsigned long long)want, (unsigned long long)rl.rlim_cur);
}

/*
 * Events an earlier run set aside wait in the rescue file until someone
 * imports them; the log line at the stop that wrote them may be long gone.
 */
static void
warn_rescue_waiting(const struct daemon *d)
{
	struct stat sb;

	if (lstat(d->rescue, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    sb.st_size > 0)
		log_warnx("%s holds %lld bytes of events not stored by an "
		    "earlier run; move it aside, then load it with: callhook "
		    "import FILE", d->rescue, (long long)sb.st_size);
}

/*
 * Behind nginx the daemon listens on loopback, where the proxy is the
 * gate. Reachable from other hosts with no token, signature or allow
 * list, anyone who finds the port can store calls: say so, at each start
 * and reload, as a default that looks safe should not hide it.
 */
/* A CIDR of an allow list, len bytes, that holds every address. */
static bool
every_address(const char *cidr, size_t len)
{
	while (len > 0 && (cidr[len - 1] == ' ' || cidr[len - 1] == '\t'))
		len--;
	return len >= 2 && cidr[len - 2] == '/' && cidr[len - 1] == '0';
}

/* An allow list (checked by config.c) that leaves some address out. */
static bool
allow_limits(const char *allow)
{
	const char *p = allow;
	size_t len;

	if (*p == '\0')
		return false;
	for (;;) {
		len = strcspn(p, ",");
		if (every_address(p, len))	/* 0.0.0.0/0, ::/0 */
			return false;
		if (p[len] == '\0')
			return true;
		p += len + 1;
	}
}

static void
warn_if_open(const struct daemon *d, const struct config *cfg)
{
	const char *env = getenv("CALLHOOKD_TOKEN");

	if (d->local || cfg->token[0] != '\0' || cfg->token_file[0] != '\0' ||
	    (env != NULL && env[0] != '\0') || cfg->hmac_secret[0] != '\0' ||
	    allow_limits(cfg->allow))
		return;
	log_warnx("listening on %s with no token, hmac_secret or allow "
	    "list: anyone who can reach it can store calls; set [auth] "
	    "token (see callhookd.ini(5))", d->where);
}

/*
 * SQLite finds a database's -wal and -shm by the name it was opened by,
 * and DATABASE.lock is named from the path too: a process that opens
 * the same file by another name (a second daemon, an sqlite3 shell)
 * writes a WAL of its own, blind to this one, and can damage the file.
 */
static void
warn_if_linked(const char *database, const struct stat *sb)
{
	if (sb->st_nlink > 1)
		log_warnx("%s has %ju hard links: a process that opens it by "
		    "another name (a second callhookd, an sqlite3 shell) "
		    "uses a -wal and -shm of its own and can damage it; keep "
		    "one name (find -samefile lists the others)", database,
		    (uintmax_t)sb->st_nlink);
}

static int
start(struct daemon *d)
{
	struct store_options so = {
		.path = d->cfg.database, .sync_full = d->cfg.sync_full,
		.fts = d->cfg.fts, .busy_timeout_ms = WRITER_LOCK_WAIT_MS,
	};
	struct writer_options wo = {
		.ack_timeout_ms = ACK_TIMEOUT_MS,
		.stop_timeout_ms = STOP_TIMEOUT_MS,
		.rescue_path = d->rescue, .on_loop = watchdog_ping,
	};
	char err[512];
	struct stat sb;
	int fd, rc;

	snprintf(d->rescue, sizeof(d->rescue), "%s.unsaved.jsonl",
	    d->cfg.database);
	metrics_init(&d->metrics);
	/* What can fail without a trace comes before the file is touched. */
	if (lock_database(d) != 0)
		return -1;
	fit_open_files(d->cfg.max_connections);
	if (listen_open(d->cfg.listen, &fd, &d->socket_passed, d->where,
	    sizeof(d->where), err, sizeof(err)) != 0) {
		log_errorx("%s", err);
		return -1;
	}
	d->local = listen_is_local(fd);
	if ((rc = store_open(&d->store, &so, err, sizeof(err))) != 0) {
		close(fd);
		log_errorx("%s", err);
		return -1;
	}
	if ((rc = store_migrated_from(d->store)) > 0)
		log_info("%s: migrated from schema version %d to %d; a "
		    "callhookd older than this one refuses the file now",
		    d->cfg.database, rc, STORE_SCHEMA_VERSION);
	if (stat(d->cfg.database, &sb) == 0) {
		wo.rescue_mode = sb.st_mode & 0666;
		warn_if_linked(d->cfg.database, &sb);
	}
	if ((d->queue = queue_new(d->cfg.queue, REJECT_QUEUE)) == NULL) {
		close(fd);
		log_error("cannot make the queue");
		return -1;
	}
	queue_set_memory(d->queue, config_memory_budget(&d->cfg));
	if ((d->writer = writer_start(d->store, d->queue, &d->metrics,
	    &wo)) == NULL) {
		close(fd);
		log_error("cannot start the writer");
		return -1;
	}
	if ((d->http = http_start(fd, &d->cfg, d->queue, &d->metrics,
	    d->writer, err, sizeof(err))) == NULL) {
		close(fd);
		log_errorx("%s", err);
		return -1;
	}
	d->started = true;
	log_info("callhookd %s listening on %s, path %s, database %s, "
	    "ack %s", CALLHOOKD_VERSION, d->where, d->cfg.path,
	    d->cfg.database, d->cfg.ack == ACK_COMMIT ? "commit" : "enqueue");
	warn_if_open(d, &d->cfg);
	warn_rescue_waiting(d);
	sd_notify(0, "READY=1");
	return 0;
}

/* Names the keys a reload changed that take effect at the next start. */
static void
warn_restart_keys(const struct config *running, const struct config *cfg)
{
	const struct {
		const char	*name;
		bool		 changed;
	} keys[] = {
		{ "listen", strcmp(cfg->listen, running->listen) != 0 },
		{ "timeout", cfg->timeout_ms != running->timeout_ms },
		{ "max_connections",
		    cfg->max_connections != running->max_connections },
		{ "database", strcmp(cfg->database, running->database) != 0 },
		{ "sync", cfg->sync_full != running->sync_full },
		{ "fts", cfg->fts != running->fts },
	};
	char names[128] = "";
	size_t n = 0;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].changed)
			n += (size_t)snprintf(names + n, sizeof(names) - n,
			    "%s%s", n > 0 ? ", " : "", keys[i].name);
	if (n > 0)
		log_warnx("reload: %s changed; the running value stays until "
		    "the next restart", names);
}

static void
reload(struct daemon *d, const struct options *o)
{
	struct config cfg;
	char err[512];

	sd_notify(0, "RELOADING=1");
	if (load_config(o, &cfg, true) != 0) {
		log_errorx("reload: %s is not valid (errors above); the running "
		    "configuration stays in force", o->config_file ?
		    o->config_file : "configuration");
		sd_notify(0, "STATUS=reload failed: the configuration is not "
		    "valid (see the log); the running one stays in force");
	} else if (http_reconfigure(d->http, &cfg, err, sizeof(err)) != 0) {
		log_errorx("reload: %s; the running configuration stays in "
		    "force", err);
		sd_notify(0, "STATUS=reload failed (see the log); the running "
		    "configuration stays in force");
	} else {
		sd_notify(0, "STATUS=");
		log_setup(cfg.log_level, cfg.log_format);
		queue_set_capacity(d->queue, cfg.queue);
		queue_set_memory(d->queue, config_memory_budget(&cfg));
		warn_restart_keys(&d->cfg, &cfg);
		log_info("reload: configuration applied");
		warn_if_open(d, &cfg);
	}
	sd_notify(0, "READY=1");
}

struct stopping {
	struct daemon	*d;
	const sigset_t	*signals;	/* blocked, taken by sigwaitinfo() */
};

/*
 * A signal while the writer drains (Ctrl-C again, say) cannot hurry it:
 * say what the stop is waiting for, rather than nothing.
 */
static void
signals_while_stopping(void *arg)
{
	const struct stopping *s = arg;
	struct timespec now = { 0, 0 };
	siginfo_t si;

	while (sigtimedwait(s->signals, &si, &now) > 0)
		log_warnx("received %s while stopping; the stop waits up to "
		    "%d s from its start for the store to take what is not "
		    "yet written (%zu events); a SIGKILL would lose it",
		    strsignal(si.si_signo), STOP_TIMEOUT_MS / 1000,
		    queue_pending(s->d->queue));
}

/* Stop in the order that keeps every answered event. */
static int
stop(struct daemon *d, const sigset_t *signals)
{
	struct stopping s = { d, signals };
	struct writer_losses lost = { 0, 0, 0 };

	sd_notify(0, "STOPPING=1");
	if (d->http != NULL)
		http_quiesce(d->http, !d->socket_passed);
	if (d->writer != NULL)
		writer_stop(d->writer, &lost, signals_while_stopping, &s);
	http_stop(d->http, HTTP_DRAIN_MS);
	writer_free(d->writer);		/* after: answers ask its health */
	queue_free(d->queue);
	store_close(d->store);
	dblock_release(&d->lock);	/* after the store: the next may start */
	if (lost.rescued > 0)
		log_errorx("%zu events could not be written to the database "
		    "and were saved to %s; load them with: callhook import %s",
		    lost.rescued, d->rescue, d->rescue);
	if (lost.unsaved > 0)
		log_errorx("%zu events could be written neither to the "
		    "database nor to %s; their bodies are the lines "
		    "\"callhookd: unsaved event: \" above: load them, "
		    "without that prefix, with callhook import - (the "
		    "README, \"ack = commit or enqueue\", has the command)",
		    lost.unsaved, d->rescue);
	if (lost.set_aside > 0)
		log_warnx("%zu events the database would not take were set "
		    "aside while running; the log says which, why, and where",
		    lost.set_aside);
	if (lost.rescued > 0 || lost.unsaved > 0)
		return 1;
	if (d->started)
		log_info("stopped");
	return 0;
}

static int
wait_for_signals(struct daemon *d, const struct options *o,
    const sigset_t *set)
{
	siginfo_t si;

	for (;;) {
		if (sigwaitinfo(set, &si) < 0) {
			if (errno == EINTR)
				continue;
			log_error("sigwaitinfo");
			return -1;
		}
		if (si.si_signo == SIGHUP) {
			reload(d, o);
			continue;
		}
		if (si.si_signo == SIGUSR1 || si.si_signo == SIGUSR2) {
			log_warnx("received SIG%s from pid %ld, ignored: SIGHUP "
			    "reloads, SIGTERM stops", sigabbrev_np(si.si_signo),
			    (long)si.si_pid);
			continue;
		}
		log_info("received %s, stopping", strsignal(si.si_signo));
		return 0;
	}
}

/*
 * What a start would find of the listen address, found before the lock
 * and the database are made: a path that is a file or a directory would
 * only give bind()'s "Address already in use".
 */
static int
check_listen(const struct options *o, const struct config *cfg)
{
	char err[512], msg[600];

	if (listen_check(cfg->listen, err, sizeof(err)) == 0)
		return 0;
	snprintf(msg, sizeof(msg), "[http] listen: %s", err);
	print_value_error(o, config_line(cfg, "http", "listen"), o->listen !=
	    NULL ? "--listen" : NULL, msg, false);
	return 1;
}

int
main(int argc, char **argv)
{
	struct options o = { 0 };
	struct daemon d = { .lock = { .fd = -1 } };
	sigset_t set;
	int rc;

	/* The defaults, until the configuration is read: see print_err(). */
	log_setup(LOG_INFO, LOG_FORMAT_TEXT);
	parse_args(argc, argv, &o);
	rc = load_config(&o, &d.cfg, false);
	if (check_listen(&o, &d.cfg) != 0 || rc != 0)
		return 1;
	if (o.check_only) {
		printf("configuration OK\n");
		exit_printed();
	}
	log_setup(d.cfg.log_level, d.cfg.log_format);
	/*
	 * The database holds transcripts and phone numbers: whatever the
	 * umask, no file of the daemon's is for others (the unit's UMask=
	 * is 0027 already; a shell's 022 made them world-readable). Group
	 * read stays for operators' callhook.
	 */
	umask(umask(0) | 027);
	/*
	 * Bodies and events past 128 KB are malloc'd and freed per request.
	 * glibc raises its mmap threshold to the size of the first such
	 * block freed, and from then on serves them from the heap, which
	 * keeps every page they touched: forty clients posting 4 MB bodies
	 * took the daemon to 160 MB, where the memory budget holds the
	 * bodies to 12 MB. Fixed at glibc's default, such a block is mapped
	 * for the request and unmapped at free().
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * A write past a file size limit (LimitFSIZE=, ulimit -f) fails
	 * with EFBIG, which the store treats as any failed write; the
	 * default action would kill the daemon with the queue in memory.
	 */
	signal(SIGXFSZ, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/*
	 * Sent by habit (log reopening elsewhere), their default action
	 * would end the daemon with the queue in memory.
	 */
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (start(&d) != 0) {
		stop(&d, &set);
		return 1;
	}
	rc = wait_for_signals(&d, &o, &set);
	if (stop(&d, &set) != 0 || rc != 0)
		return 1;
	return 0;
}

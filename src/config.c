/*
 * Configuration: embedded defaults, the INI file, and overrides.
 *
 * Every key is a row of keys[] below: its section, its name, the setter
 * that parses and checks the value, and the words that describe the
 * expected form in error messages. config_set() is the single entry for
 * a value, whether it comes from the file (config_load) or from the
 * command line, so both are checked the same way. A setter parses into
 * locals and writes cfg only when the whole value is good.
 *
 * The file is parsed by inih. inih reports only the first bad line and
 * not the line of each key, so config_load() hands it lines through its
 * own reader, which counts them and checks each one on its own first;
 * that way every error in the file is reported with its line.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <ini.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config.h"
#include "log.h"

#define ERR_MAX		256	/* room for one error message */
#define SHOWN_MAX	64	/* how much of a bad value a message quotes */
#define CONFIG_FILE_MAX	(1024 * 1024)	/* bytes; a full file is a few KB */

#define KEY_EMPTY_OK	0x1	/* an empty value is meaningful ("not set") */
#define KEY_LIST	0x2	/* a list: each line of it in the file adds */

struct key;
typedef int (*setter_fn)(struct config *, const struct key *, const char *,
    char *, size_t);

struct key {
	const char	*section;
	const char	*name;
	setter_fn	 set;
	const char	*form;		/* the expected form, for messages */
	size_t		 off;		/* the field, for the generic setters */
	unsigned long long min, max;	/* numbers: the accepted range */
	int		 flags;
};

#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

/* The field of cfg that a generic setter writes. */
static void *
field(struct config *cfg, const struct key *k)
{
	return (char *)cfg + k->off;
}

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->listen, "127.0.0.1:8080");
	strcpy(cfg->path, "/webhook/call-webhook");
	cfg->max_body = 4 * 1024 * 1024;
	cfg->timeout_ms = 30 * 1000;
	cfg->max_connections = 1024;
	strcpy(cfg->trusted_proxies, "127.0.0.1/32, ::1/128");
	strcpy(cfg->database, "calls.db");
	cfg->ack = ACK_COMMIT;
	cfg->sync_full = false;
	cfg->queue = 10000;
	cfg->fts = true;
	cfg->strict = false;
	cfg->log_level = LOG_INFO;
	cfg->log_format = LOG_FORMAT_TEXT;
}

/* The standard complaint: `"shown" is not <form>`, quoting at most a bit. */
static int
bad_value(const struct key *k, const char *shown, size_t len, char *err,
    size_t errlen)
{
	int n = len > SHOWN_MAX ? SHOWN_MAX : (int)len;

	snprintf(err, errlen, "\"%.*s%s\" is not %s", n, shown,
	    len > SHOWN_MAX ? "..." : "", k->form);
	return -EINVAL;
}

static int
set_str(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	/* config_set() has checked the length. */
	memcpy(field(cfg, k), value, strlen(value) + 1);
	return 0;
}

/*
 * The database: a file. SQLite would also take ":memory:" and, where URIs
 * are on, "file:..." ones that may mean memory too: every event would
 * then be answered 200 and gone with the process.
 */
static int
set_database(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	if (strcmp(value, ":memory:") == 0 || strncmp(value, "file:", 5) == 0)
		return bad_value(k, value, strlen(value), err, errlen);
	return set_str(cfg, k, value, err, errlen);
}

/* Digits only, no sign or space, at most max. */
static int
parse_uint(const char *s, size_t len, unsigned long long max,
    unsigned long long *out)
{
	unsigned long long v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
		if (v > (max - (unsigned)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
valid_hostname(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* HOST:PORT, [V6]:PORT or unix:/path; only the syntax, nothing resolved. */
static int
valid_listen(const char *s)
{
	struct sockaddr_un sun;
	char v6[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	unsigned long long port;
	const char *colon, *close;
	size_t len;

	if (strncmp(s, "unix:", 5) == 0)
		return s[5] == '/' && s[6] != '\0' &&
		    strlen(s + 5) < sizeof(sun.sun_path);
	if (s[0] == '[') {
		close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return 0;
		len = (size_t)(close - s - 1);
		if (len >= sizeof(v6))
			return 0;
		memcpy(v6, s + 1, len);
		v6[len] = '\0';
		if (inet_pton(AF_INET6, v6, &a6) != 1)
			return 0;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || !valid_hostname(s, (size_t)(colon - s)))
			return 0;
	}
	return parse_uint(colon + 1, strlen(colon + 1), 65535, &port) == 0;
}

static int
set_listen(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	struct sockaddr_un sun;

	if (strncmp(value, "unix:/", 6) == 0 &&
	    strlen(value + 5) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "the unix socket path is longer than %zu "
		    "bytes", sizeof(sun.sun_path) - 1);
		return -EINVAL;
	}
	if (!valid_listen(value))
		return bad_value(k, value, strlen(value), err, errlen);
	return set_str(cfg, k, value, err, errlen);
}

/*
 * Characters that can never be part of a request's path, as libmicrohttpd
 * gives it (decoded: a '%' here could never match), and the paths the
 * daemon answers itself.
 */
static int
valid_path(const char *s)
{
	if (s[0] != '/' || strcmp(s, "/healthz") == 0 ||
	    strcmp(s, "/metrics") == 0 || strchr(s, '%') != NULL)
		return 0;
	for (; *s != '\0'; s++)
		if (*s == '?' || *s == '#' || isspace((unsigned char)*s) ||
		    iscntrl((unsigned char)*s))
			return 0;
	return 1;
}

static int
set_path(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	if (!valid_path(value))
		return bad_value(k, value, strlen(value), err, errlen);
	return set_str(cfg, k, value, err, errlen);
}

/* ADDR or ADDR/PREFIX, IPv4 or IPv6. */
static int
valid_cidr(const char *s, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned char buf[sizeof(struct in6_addr)];
	unsigned long long prefix;
	const char *slash;
	size_t alen;
	int af;

	slash = memchr(s, '/', len);
	alen = slash != NULL ? (size_t)(slash - s) : len;
	if (alen == 0 || alen >= sizeof(addr))
		return 0;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	af = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(af, addr, buf) != 1)
		return 0;
	if (slash == NULL)
		return 1;
	if (parse_uint(slash + 1, len - alen - 1, af == AF_INET ? 32 : 128,
	    &prefix) != 0)
		return 0;
	/* Kept as IPv4 (auth.c): a prefix must not reach above the mapping. */
	return af == AF_INET || prefix >= 96 ||
	    !IN6_IS_ADDR_V4MAPPED((struct in6_addr *)(void *)buf);
}

/* A comma-separated list; the message quotes the entry that is wrong. */
static int
set_cidrs(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	const char *p = value, *end;
	size_t len;

	while (isspace((unsigned char)*p))
		p++;
	while (*p != '\0') {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (!valid_cidr(p, len))
			return bad_value(k, p, len, err, errlen);
		if (end == NULL)
			break;
		p = end + 1;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			return bad_value(k, p, 0, err, errlen);
	}
	return set_str(cfg, k, value, err, errlen);
}

/* The multiplier a suffix stands for, 0 when it is not one. */
static unsigned long long
size_unit(const char *s)
{
	static const struct {
		const char		*suffix;
		unsigned long long	 mult;
	} units[] = {
		{ "", 1 }, { "b", 1 },
		{ "k", 1ULL << 10 }, { "kb", 1ULL << 10 },
		{ "m", 1ULL << 20 }, { "mb", 1ULL << 20 },
		{ "g", 1ULL << 30 }, { "gb", 1ULL << 30 },
	};

	for (size_t i = 0; i < NITEMS(units); i++)
		if (strcasecmp(s, units[i].suffix) == 0)
			return units[i].mult;
	return 0;
}

int
config_parse_size(const char *s, size_t *out)
{
	unsigned long long n, mult;
	size_t digits = strspn(s, "0123456789");

	mult = size_unit(s + digits);
	if (mult == 0 || parse_uint(s, digits, SIZE_MAX, &n) != 0 ||
	    n > SIZE_MAX / mult)
		return -EINVAL;
	*out = (size_t)(n * mult);
	return 0;
}

static unsigned long long
duration_unit(const char *s)
{
	static const struct {
		const char		*suffix;
		unsigned long long	 ms;
	} units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
		{ "h", 3600 * 1000 },
	};

	for (size_t i = 0; i < NITEMS(units); i++)
		if (strcasecmp(s, units[i].suffix) == 0)
			return units[i].ms;
	return 0;
}

int
config_parse_duration(const char *s, unsigned *out_ms)
{
	unsigned long long n, mult;
	size_t digits = strspn(s, "0123456789");

	mult = duration_unit(s + digits);
	if (mult == 0 || parse_uint(s, digits, UINT_MAX, &n) != 0 ||
	    n > UINT_MAX / mult)
		return -EINVAL;
	*out_ms = (unsigned)(n * mult);
	return 0;
}

/*
 * Standard base64 with its padding, of at least one byte: OpenSSL's
 * EVP_DecodeBlock also takes '=' anywhere ("====" is a byte of 0).
 */
static bool
base64_shaped(const char *s, size_t n)
{
	size_t pad = n >= 2 && s[n - 2] == '=' ? 2 : n >= 1 && s[n - 1] == '=';

	if (n < 4 || n % 4 != 0 || (pad == 2 && s[n - 1] != '='))
		return false;
	for (size_t i = 0; i < n - pad; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
			return false;
	return true;
}

int
config_parse_secret(const char *s, unsigned char *out, size_t *len)
{
	size_t n = strlen(s);
	int got;

	if (strncmp(s, "whsec_", 6) != 0) {
		if (n > CONFIG_SECRET_MAX)
			return -E2BIG;
		memcpy(out, s, n);
		*len = n;
		return 0;
	}
	s += 6;
	n -= 6;
	if (!base64_shaped(s, n) || n / 4 * 3 > CONFIG_SECRET_MAX ||
	    (got = EVP_DecodeBlock(out, (const unsigned char *)s,
	    (int)n)) < 0)
		return -EINVAL;
	/* EVP_DecodeBlock counts padding bytes as data. */
	*len = (size_t)got - (s[n - 1] == '=') - (s[n - 2] == '=');
	return *len > 0 ? 0 : -EINVAL;
}

static int
set_size(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	size_t v;

	if (config_parse_size(value, &v) != 0 || v < k->min || v > k->max)
		return bad_value(k, value, strlen(value), err, errlen);
	*(size_t *)field(cfg, k) = v;
	return 0;
}

static int
set_duration(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	unsigned v;

	if (config_parse_duration(value, &v) != 0 || v < k->min || v > k->max)
		return bad_value(k, value, strlen(value), err, errlen);
	*(unsigned *)field(cfg, k) = v;
	return 0;
}

static int
set_uint(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	unsigned long long v;

	if (parse_uint(value, strlen(value), k->max, &v) != 0 || v < k->min)
		return bad_value(k, value, strlen(value), err, errlen);
	*(unsigned *)field(cfg, k) = (unsigned)v;
	return 0;
}

/* Checked here so that a bad one is told with its line; never quoted. */
static int
set_secret(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	unsigned char key[CONFIG_SECRET_MAX];
	size_t len;
	int rc;

	rc = config_parse_secret(value, key, &len);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc == -E2BIG)
		snprintf(err, errlen, "longer than %d bytes",
		    CONFIG_SECRET_MAX);
	else if (rc != 0)
		snprintf(err, errlen, "\"whsec_\" must be followed by base64");
	else
		return set_str(cfg, k, value, err, errlen);
	return rc;
}

/* The index of value in a NULL-terminated list of words, or -1. */
static int
word_index(const char *const *words, const char *value)
{
	for (int i = 0; words[i] != NULL; i++)
		if (strcasecmp(words[i], value) == 0)
			return i;
	return -1;
}

static int
set_bool(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	/* Even indexes are true, odd ones false. */
	static const char *const words[] = {
		"on", "off", "true", "false", "yes", "no", "1", "0", NULL
	};
	int i;

	i = word_index(words, value);
	if (i == -1)
		return bad_value(k, value, strlen(value), err, errlen);
	*(bool *)field(cfg, k) = i % 2 == 0;
	return 0;
}

static int
set_ack(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	static const char *const names[] = { "commit", "enqueue", NULL };
	int i;

	i = word_index(names, value);
	if (i == -1)
		return bad_value(k, value, strlen(value), err, errlen);
	cfg->ack = i == 0 ? ACK_COMMIT : ACK_ENQUEUE;
	return 0;
}

static int
set_sync(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	static const char *const names[] = { "normal", "full", NULL };
	int i;

	i = word_index(names, value);
	if (i == -1)
		return bad_value(k, value, strlen(value), err, errlen);
	cfg->sync_full = i == 1;
	return 0;
}

static int
set_level(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	int level;

	level = log_level_from_name(value);
	if (level == -1)
		return bad_value(k, value, strlen(value), err, errlen);
	cfg->log_level = level;
	return 0;
}

static int
set_format(struct config *cfg, const struct key *k, const char *value,
    char *err, size_t errlen)
{
	static const char *const names[] = { "text", "json", NULL };
	int i;

	i = word_index(names, value);
	if (i == -1)
		return bad_value(k, value, strlen(value), err, errlen);
	cfg->log_format = i == 0 ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
	return 0;
}

#define F(field)	offsetof(struct config, field)
#define BOOL_FORM	"a boolean (on/off, true/false, yes/no, 1/0)"
#define CIDR_FORM	"a CIDR such as 10.0.0.0/8, 192.0.2.1 or 2001:db8::/32"

static const char *const sections[] = { "http", "auth", "store", "log" };

/* In the order of SPEC section 2, which error messages follow. */
static const struct key keys[] = {
	{ "http", "listen", set_listen,
	    "HOST:PORT, [IPV6]:PORT or unix:/PATH", F(listen), 0, 0, 0 },
	{ "http", "path", set_path,
	    "an absolute URL path such as /webhook/call-webhook (not "
	    "/healthz or /metrics, no %, ?, # or space)",
	    F(path), 0, 0, 0 },
	{ "http", "max_body", set_size,
	    "a size from 1K to 1G (e.g. 512K, 4M)",
	    F(max_body), 1024, 1024 * 1024 * 1024, 0 },
	{ "http", "timeout", set_duration,
	    "a duration from 1s to 1h (e.g. 30s, 5m)",
	    F(timeout_ms), 1000, 3600 * 1000, 0 },
	{ "http", "max_connections", set_uint,
	    "a number from 1 to 1000000", F(max_connections), 1, 1000000, 0 },
	{ "auth", "token", set_str, "a string", F(token), 0, 0,
	    KEY_EMPTY_OK },
	{ "auth", "token_file", set_str, "a file path", F(token_file), 0, 0,
	    KEY_EMPTY_OK },
	{ "auth", "previous_token", set_str, "a string", F(previous_token),
	    0, 0, KEY_EMPTY_OK },
	{ "auth", "previous_token_file", set_str, "a file path",
	    F(previous_token_file), 0, 0, KEY_EMPTY_OK },
	{ "auth", "hmac_secret", set_secret, "a secret", F(hmac_secret), 0,
	    0, KEY_EMPTY_OK },
	{ "auth", "allow", set_cidrs, CIDR_FORM, F(allow), 0, 0,
	    KEY_EMPTY_OK | KEY_LIST },
	{ "auth", "trusted_proxies", set_cidrs, CIDR_FORM,
	    F(trusted_proxies), 0, 0, KEY_EMPTY_OK | KEY_LIST },
	{ "store", "database", set_database,
	    "a file path (not :memory: or a file: URI)", F(database), 0, 0,
	    0 },
	{ "store", "ack", set_ack, "one of commit, enqueue", 0, 0, 0, 0 },
	{ "store", "sync", set_sync, "one of normal, full", 0, 0, 0, 0 },
	{ "store", "queue", set_uint, "a number from 1 to 10000000",
	    F(queue), 1, 10000000, 0 },
	{ "store", "fts", set_bool, BOOL_FORM, F(fts), 0, 0, 0 },
	{ "store", "strict", set_bool, BOOL_FORM, F(strict), 0, 0, 0 },
	{ "log", "level", set_level, "one of error, warn, info, debug",
	    0, 0, 0, 0 },
	{ "log", "format", set_format, "one of text, json", 0, 0, 0, 0 },
};

_Static_assert(NITEMS(keys) == CONFIG_KEYS, "config.h counts keys[]");

static int
known_section(const char *section)
{
	for (size_t i = 0; i < NITEMS(sections); i++)
		if (strcmp(sections[i], section) == 0)
			return 1;
	return 0;
}

/* The section that has key, or NULL. */
static const char *
home_section(const char *key)
{
	for (size_t i = 0; i < NITEMS(keys); i++)
		if (strcmp(keys[i].name, key) == 0)
			return keys[i].section;
	return NULL;
}

/*
 * "unknown key", with the section it belongs in when it is another's
 * ("[http] database" is the [store] key), else listing the keys the
 * section does have.
 */
static int
unknown_key(const char *section, const char *key, char *err, size_t errlen)
{
	const char *sep = "", *home;
	size_t n;

	if (key[0] == '\0') {
		snprintf(err, errlen, "[%s] a value without a key", section);
		return -EINVAL;
	}
	if ((home = home_section(key)) != NULL) {
		snprintf(err, errlen, "[%s] %s: unknown key in [%s]; it belongs "
		    "under [%s]", section, key, section, home);
		return -EINVAL;
	}
	n = (size_t)snprintf(err, errlen, "[%s] %s: unknown key (known keys: ",
	    section, key);
	for (size_t i = 0; i < NITEMS(keys) && n < errlen; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		n += (size_t)snprintf(err + n, errlen - n, "%s%s", sep,
		    keys[i].name);
		sep = ", ";
	}
	if (n < errlen)
		snprintf(err + n, errlen - n, ")");
	return -EINVAL;
}

/* key is NULL when the complaint is about a [section] header itself. */
static int
unknown_section(const char *section, const char *key, char *err,
    size_t errlen)
{
	if (section[0] == '\0' && key != NULL)
		snprintf(err, errlen, "%s: key outside a section (expected it "
		    "under [http], [auth], [store] or [log])", key);
	else
		snprintf(err, errlen, "unknown section [%s] (expected http, "
		    "auth, store or log)", section);
	return -EINVAL;
}

/* The row of section.name in keys[], or NULL. */
static const struct key *
find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NITEMS(keys); i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

int
config_set(struct config *cfg, const char *section, const char *key,
    const char *value, char *err, size_t errlen)
{
	const struct key *k;
	char why[ERR_MAX];

	if (!known_section(section))
		return unknown_section(section, key, err, errlen);
	if ((k = find_key(section, key)) == NULL)
		return unknown_key(section, key, err, errlen);

	if (strlen(value) >= CONFIG_STR_MAX)
		snprintf(why, sizeof(why), "value is longer than %d characters",
		    CONFIG_STR_MAX - 1);
	else if (value[0] == '\0' && !(k->flags & KEY_EMPTY_OK))
		snprintf(why, sizeof(why), "value is empty, expected %s",
		    k->form);
	else if (k->set(cfg, k, value, why, sizeof(why)) == 0) {
		cfg->key_line[k - keys] = 0;	/* config_load() sets it */
		return 0;
	}
	snprintf(err, errlen, "[%s] %s: %s", section, key, why);
	return -EINVAL;
}

int
config_line(const struct config *cfg, const char *section, const char *key)
{
	const struct key *k = find_key(section, key);

	return k != NULL ? cfg->key_line[k - keys] : 0;
}

size_t
config_memory_budget(const struct config *cfg)
{
	size_t floor = (size_t)12 << 20;

	return cfg->max_body > floor / 3 ? cfg->max_body * 3 : floor;
}

int
config_validate(const struct config *cfg, char *err, size_t errlen)
{
	if (cfg->token[0] != '\0' && cfg->token_file[0] != '\0') {
		snprintf(err, errlen,
		    "[auth] token and token_file are both set; use one");
		return -EINVAL;
	}
	if (cfg->previous_token[0] != '\0' &&
	    cfg->previous_token_file[0] != '\0') {
		snprintf(err, errlen, "[auth] previous_token and "
		    "previous_token_file are both set; use one");
		return -EINVAL;
	}
	return 0;
}

/* The state of one config_load(), shared by the reader and the handler. */
struct loader {
	FILE		*fp;
	const char	*path;
	struct config	*cfg;
	config_error_fn	 on_error;
	void		*arg;
	int		 line;		/* the line inih is working on */
	int		 errors;
	int		 read_errno;	/* set when a read failed */
	size_t		 bytes;		/* read so far */
	int		 skip_section;	/* bad [section], reported once */
	int		 set_on[NITEMS(keys)];	/* the line of each key, or 0 */
};

static void
loader_error(struct loader *ld, const char *msg)
{
	ld->errors++;
	if (ld->on_error != NULL)
		ld->on_error(ld->arg, ld->path, ld->line, msg);
}

/*
 * getc() with a limit on the file's size: "-c /dev/zero" would otherwise
 * be read forever, its one endless line drained by line_fits(). EOF past
 * the limit, with read_errno set; a file of exactly the limit is read.
 */
static int
loader_getc(struct loader *ld)
{
	int c = getc(ld->fp);

	if (c != EOF && ++ld->bytes > CONFIG_FILE_MAX) {
		ld->read_errno = EFBIG;
		return EOF;
	}
	return c;
}

/*
 * fgets(), except that it returns the number of bytes read (0 at the end
 * of the file), so that a NUL byte in the line can be seen: inih would
 * take it as the end of the line, and a value such as "token = a\0b"
 * would silently become "a".
 */
static size_t
read_line(char *str, int num, struct loader *ld)
{
	size_t n = 0;
	int c;

	while (n + 1 < (size_t)num && (c = loader_getc(ld)) != EOF) {
		str[n++] = (char)c;
		if (c == '\n')
			break;
	}
	str[n] = '\0';
	return n;
}

/*
 * read_line() gave a whole line or its first num-1 bytes. When it is
 * longer than inih can take, drop the rest so that the next read starts
 * on the next line and our count stays inih's count.
 */
static int
line_fits(const char *str, size_t len, int num, struct loader *ld)
{
	int c;

	if (len < (size_t)num - 1 || str[len - 1] == '\n')
		return 1;
	c = loader_getc(ld);
	if (c == EOF || c == '\n')
		return 1;
	while ((c = loader_getc(ld)) != EOF && c != '\n')
		;
	return 0;
}

static int
ignore_pair(void *user, const char *section, const char *name,
    const char *value)
{
	(void)user;
	(void)section;
	(void)name;
	(void)value;
	return 1;
}

/*
 * A line inih rejects on its own is rejected in the file too: inih's
 * syntax is line by line once the leading whitespace is gone.
 */
static int
check_syntax(struct loader *ld, const char *line)
{
	if (ini_parse_string(line, ignore_pair, NULL) == 0)
		return 0;
	if (line[0] == '[')
		loader_error(ld, "section header without closing ']'");
	else
		loader_error(ld, "expected key = value, a [section] or a "
		    "comment");
	return -EINVAL;
}

/*
 * inih drops whatever follows a header's ']', so "[auth] token = x" on
 * one line would leave the daemon running without a token. Only blanks
 * or a comment may follow.
 */
static void
check_after_header(struct loader *ld, const char *name, const char *rest)
{
	char msg[ERR_MAX];

	rest += strspn(rest, " \t\r\n");
	if (*rest == '\0' || *rest == ';' || *rest == '#')
		return;
	snprintf(msg, sizeof(msg), "text after the section header [%s] is "
	    "ignored by the parser; put each key on a line of its own", name);
	loader_error(ld, msg);
}

/* A section header naming no known section is reported here, once. */
static void
check_section(struct loader *ld, const char *line)
{
	char msg[ERR_MAX], name[64];	/* inih keeps 50 bytes of it */
	size_t len, end;

	if (line[0] != '[')
		return;
	end = len = strcspn(line + 1, "]");
	if (len >= sizeof(name))
		len = sizeof(name) - 1;
	memcpy(name, line + 1, len);
	name[len] = '\0';
	ld->skip_section = !known_section(name);
	if (ld->skip_section) {
		unknown_section(name, NULL, msg, sizeof(msg));
		loader_error(ld, msg);
	} else if (line[1 + end] == ']')	/* check_syntax() saw it */
		check_after_header(ld, name, line + 1 + end + 1);
}

/*
 * inih's reader. Leading whitespace is dropped so an indented line is a
 * key of its own, not a continuation of the previous value (inih's
 * multi-line values). Bad lines are reported and handed on as blank.
 */
static char *
loader_read(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	size_t skip = 0, len;

	if ((len = read_line(str, num, ld)) == 0 || ld->read_errno != 0) {
		if (ferror(ld->fp))
			ld->read_errno = errno != 0 ? errno : EIO;
		return NULL;
	}
	ld->line++;
	if (!line_fits(str, len, num, ld)) {
		char msg[ERR_MAX];

		if (ld->read_errno != 0)
			return NULL;	/* the size is the one error to tell */

		snprintf(msg, sizeof(msg), "line longer than %d characters",
		    num - 1);
		loader_error(ld, msg);
		str[0] = '\0';
		return str;
	}
	if (memchr(str, '\0', len) != NULL) {
		loader_error(ld, "line holds a NUL byte");
		str[0] = '\0';
		return str;
	}
	if (ld->line == 1 && strncmp(str, "\xEF\xBB\xBF", 3) == 0)
		skip = 3;		/* a UTF-8 byte order mark */
	skip += strspn(str + skip, " \t");
	memmove(str, str + skip, strlen(str + skip) + 1);
	if (check_syntax(ld, str) == 0)
		check_section(ld, str);
	else {
		/* The keys under a broken header would only add noise. */
		if (str[0] == '[')
			ld->skip_section = 1;
		str[0] = '\0';
	}
	return str;
}

/*
 * A key set twice in the file: the later line would win unseen, say a
 * database path overridden forty lines down. An error, as an unknown key
 * is; but a list's lines add up (list_line()).
 */
static bool
set_twice(struct loader *ld, const struct key *k)
{
	char msg[ERR_MAX];
	size_t i = (size_t)(k - keys);

	if (ld->set_on[i] == 0) {
		ld->set_on[i] = ld->line;
		return false;
	}
	if (k->flags & KEY_LIST)
		return false;
	snprintf(msg, sizeof(msg), "[%s] %s: set again (first on line %d); "
	    "keep one", k->section, k->name, ld->set_on[i]);
	loader_error(ld, msg);
	return true;
}

/*
 * Two ways a line of the file says more than its value, both of which
 * inih keeps as part of it: a note after '#' (only " ;" starts a comment
 * after a value) and quotes. "token = abc # note" would refuse every
 * webhook that carries abc, "database = calls.db # main" would write a
 * file of that name, and callhookd -t would call either fine. The
 * message does not quote the value: it may be a secret.
 */
static const char *
value_trap(const char *value)
{
	size_t len = strlen(value);

	for (const char *p = value; (p = strchr(p, '#')) != NULL; p++)
		if (p == value || isspace((unsigned char)p[-1]))
			return "a '#' after a blank is part of the value, not "
			    "a comment (only \" ;\" starts one there); put the "
			    "note on a line of its own";
	if (len >= 2 && (value[0] == '"' || value[0] == '\'') &&
	    value[len - 1] == value[0])
		return "the quotes would be part of the value; write it "
		    "without them";
	return NULL;
}

/*
 * A list's value on a later line of the file goes after those before:
 * inih takes lines of up to 199 characters, about ten CIDRs, so a longer
 * allow list is written on several. NULL when the whole is too long.
 */
static const char *
list_line(struct loader *ld, const struct key *k, const char *value,
    char *buf, size_t len)
{
	const char *sofar = field(ld->cfg, k);
	int n;

	if (ld->set_on[k - keys] == ld->line || sofar[0] == '\0')
		return value;
	if (value[0] == '\0')
		return sofar;
	n = snprintf(buf, len, "%s, %s", sofar, value);
	return n >= 0 && (size_t)n < len ? buf : NULL;
}

static int
loader_pair(void *user, const char *section, const char *name,
    const char *value)
{
	struct loader *ld = user;
	const struct key *k = find_key(section, name);
	const char *trap;
	char msg[ERR_MAX], joined[CONFIG_STR_MAX];
	bool valid;

	if (ld->skip_section || (k != NULL && set_twice(ld, k)))
		return 1;
	if (k != NULL && (trap = value_trap(value)) != NULL) {
		snprintf(msg, sizeof(msg), "[%s] %s: %s", section, name, trap);
		loader_error(ld, msg);
		return 1;
	}
	if (k != NULL && (k->flags & KEY_LIST) && (value = list_line(ld, k,
	    value, joined, sizeof(joined))) == NULL) {
		snprintf(msg, sizeof(msg), "[%s] %s: the lines of the list "
		    "come to more than %d characters", section, name,
		    CONFIG_STR_MAX - 1);
		loader_error(ld, msg);
		return 1;
	}
	/* Keep going after an error: every one in the file is worth telling. */
	valid = config_validate(ld->cfg, msg, sizeof(msg)) == 0;
	if (config_set(ld->cfg, section, name, value, msg, sizeof(msg)) != 0) {
		loader_error(ld, msg);	/* an unknown key too */
		return 1;
	}
	ld->cfg->key_line[k - keys] = ld->line;
	if (valid && config_validate(ld->cfg, msg, sizeof(msg)) != 0)
		loader_error(ld, msg);	/* the line that made it so */
	return 1;
}

int
config_load(struct config *cfg, const char *path, config_error_fn on_error,
    void *arg)
{
	struct loader ld = { .path = path, .cfg = cfg, .on_error = on_error,
	    .arg = arg };
	struct stat st;
	int error, rc = 0;

	/* "e": no descriptor of ours leaks into a child. */
	ld.fp = fopen(path, "re");
	if (ld.fp == NULL) {
		error = -errno;
		if (on_error != NULL)
			on_error(arg, path, 0, strerror(-error));
		return error;
	}
	/*
	 * A log or a database named by mistake is refused before its first
	 * line: read, each of its lines would be an error of its own, some
	 * thousands of them before the one that says what the file is.
	 */
	if (fstat(fileno(ld.fp), &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > CONFIG_FILE_MAX)
		ld.read_errno = EFBIG;
	else
		rc = ini_parse_stream(loader_read, &ld, loader_pair, &ld);
	if (ld.read_errno != 0) {
		error = -ld.read_errno;
		ld.line = 0;
		loader_error(&ld, ld.read_errno == EFBIG ? "larger than "
		    "1 MB: not a configuration file" :
		    strerror(ld.read_errno));
		goto fail;
	}
	if (rc != 0 && ld.errors == 0) {
		/* Not expected: bad lines are blanked, loader_pair never fails. */
		ld.line = rc > 0 ? rc : 0;
		loader_error(&ld, "cannot parse");
	}
	error = ld.errors > 0 ? -EINVAL : 0;
 fail:
	fclose(ld.fp);
	return error;
}

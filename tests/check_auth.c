/*
 * Authentication: the token in each place, Standard Webhooks signatures
 * made by an independent implementation (Python's hmac module), the allow
 * list and trusted proxies, directly (unit) and through the real daemon.
 * Also the reload of these settings with SIGHUP.
 */

#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "testutil.h"

#define PATH	"/webhook/call-webhook"
#define SECRET	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Suite *auth_suite(void);

static struct auth *
auth_from(const char *section_key_values[][3])
{
	struct config cfg;
	struct auth *a;
	char err[256];

	config_defaults(&cfg);
	for (int i = 0; section_key_values[i][0] != NULL; i++)
		ck_assert_msg(config_set(&cfg, section_key_values[i][0],
		    section_key_values[i][1], section_key_values[i][2], err,
		    sizeof(err)) == 0, "%s", err);
	ck_assert_msg(auth_new(&a, &cfg, err, sizeof(err)) == 0, "%s", err);
	return a;
}

static struct sockaddr_in
v4(const char *ip)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	inet_pton(AF_INET, ip, &sin.sin_addr);
	return sin;
}

START_TEST(test_token_compare)
{
	const char *kv[][3] = { { "auth", "token", "s3cret" }, { NULL } };
	struct auth *a = auth_from(kv);

	ck_assert(auth_requires_token(a));
	ck_assert(auth_token_ok(a, "s3cret"));
	ck_assert(!auth_token_ok(a, "s3cre"));
	ck_assert(auth_token_ok(a, "s3cret \t "));	/* a header's OWS */
	ck_assert(!auth_token_ok(a, "s3cret x"));
	ck_assert(!auth_token_ok(a, " s3cret"));
	ck_assert(!auth_token_ok(a, " "));
	ck_assert(!auth_token_ok(a, ""));
	ck_assert(!auth_token_ok(a, NULL));
	auth_free(a);
}
END_TEST

START_TEST(test_token_sources)
{
	const char *none[][3] = { { NULL } };
	char path[] = "/tmp/callhookd-token-XXXXXX";
	int fd = mkstemp(path);
	struct config cfg;
	struct auth *a;
	char err[256];

	ck_assert(write(fd, "from-file\n", 10) == 10);
	close(fd);
	config_defaults(&cfg);
	ck_assert_int_eq(config_set(&cfg, "auth", "token_file", path, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert(auth_token_ok(a, "from-file"));
	auth_free(a);
	unlink(path);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, path));

	/* Trailing blanks count nowhere; blanks alone are no token. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(write(fd, "from-file \t\n", 12) == 12);
	close(fd);
	ck_assert_int_eq(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert(auth_token_ok(a, "from-file"));
	ck_assert(auth_token_ok(a, "from-file "));
	auth_free(a);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(write(fd, "  \n", 3) == 3);
	close(fd);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "only blanks"));
	ck_assert_ptr_nonnull(strstr(err, path));

	/* Hashed as a string, "ab\0cd" would be the token "ab". */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(write(fd, "ab\0cdefgh\n", 10) == 10);
	close(fd);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, path) != NULL &&
	    strstr(err, "holds a NUL byte") != NULL, "%s", err);
	unlink(path);

	setenv("CALLHOOKD_TOKEN", "from-env\t", 1);
	a = auth_from(none);
	ck_assert(auth_token_ok(a, "from-env"));
	auth_free(a);
	unsetenv("CALLHOOKD_TOKEN");
	a = auth_from(none);
	ck_assert(!auth_requires_token(a));
	auth_free(a);
}
END_TEST

/*
 * Rotating the token: [auth] previous_token is taken beside the token,
 * from wherever the token came, and alone it is an error rather than a
 * daemon that takes any request.
 */
START_TEST(test_previous_token)
{
	const char *kv[][3] = { { "auth", "token", "n3w" },
	    { "auth", "previous_token", "old \t" }, { NULL } };
	const char *env_only[][3] = { { "auth", "previous_token", "old" },
	    { NULL } };
	struct auth *a = auth_from(kv);
	struct config cfg;
	char err[256];

	ck_assert(auth_token_ok(a, "n3w"));
	ck_assert(auth_token_ok(a, "old"));
	ck_assert(auth_token_ok(a, "old "));
	ck_assert(!auth_token_ok(a, "ol"));
	ck_assert(!auth_token_ok(a, ""));
	ck_assert_int_eq(auth_token_match(a, "n3w"), AUTH_TOKEN_CURRENT);
	ck_assert_int_eq(auth_token_match(a, "old"), AUTH_TOKEN_PREVIOUS);
	ck_assert_int_eq(auth_token_match(a, "n3"), AUTH_TOKEN_NONE);
	auth_free(a);

	setenv("CALLHOOKD_TOKEN", "from-env", 1);
	a = auth_from(env_only);
	ck_assert(auth_token_ok(a, "from-env") && auth_token_ok(a, "old"));
	auth_free(a);
	unsetenv("CALLHOOKD_TOKEN");

	config_defaults(&cfg);
	ck_assert_int_eq(config_set(&cfg, "auth", "previous_token", "old",
	    err, sizeof(err)), 0);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "previous_token is set but no token") !=
	    NULL && strstr(err, "old") == NULL, "%s", err);
	ck_assert_int_ne(auth_check_token(&cfg, err, sizeof(err)), 0);
}
END_TEST

/*
 * The old token from a file (a credential beside the new one's), read
 * as token_file is, and named by its own key when it cannot be.
 */
START_TEST(test_previous_token_file)
{
	char path[] = "/tmp/callhookd-old-XXXXXX";
	int fd = mkstemp(path);
	struct config cfg;
	struct auth *a;
	char err[256];

	ck_assert(write(fd, "old-one\n", 8) == 8);
	close(fd);
	config_defaults(&cfg);
	ck_assert_int_eq(config_set(&cfg, "auth", "previous_token_file", path,
	    err, sizeof(err)), 0);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "previous_token_file is set but no token")
	    != NULL, "%s", err);
	ck_assert_int_eq(config_set(&cfg, "auth", "token", "n3w", err,
	    sizeof(err)), 0);
	ck_assert_int_eq(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(auth_token_match(a, "n3w"), AUTH_TOKEN_CURRENT);
	ck_assert_int_eq(auth_token_match(a, "old-one"), AUTH_TOKEN_PREVIOUS);
	ck_assert_int_eq(auth_token_match(a, "old-one\n"), AUTH_TOKEN_NONE);
	auth_free(a);

	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert(write(fd, " \t\n", 3) == 3);
	close(fd);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "[auth] previous_token_file: ") == err &&
	    strstr(err, "holds only blanks") != NULL, "%s", err);
	unlink(path);
	ck_assert_int_eq(auth_check_token(&cfg, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "[auth] previous_token_file: ") == err &&
	    strstr(err, "No such file") != NULL, "%s", err);
}
END_TEST

/* A token is never cut short: the right one would fail, a prefix pass. */
START_TEST(test_token_limits)
{
	const char *none[][3] = { { NULL } };
	char path[] = "/tmp/callhookd-token-XXXXXX", long_token[1026];
	int fd = mkstemp(path);
	struct config cfg;
	struct auth *a;
	char err[256];

	memset(long_token, 'k', 1023);
	strcpy(long_token + 1023, "\n");
	ck_assert(write(fd, long_token, 1024) == 1024);
	close(fd);
	config_defaults(&cfg);
	ck_assert_int_eq(config_set(&cfg, "auth", "token_file", path, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(auth_new(&a, &cfg, err, sizeof(err)), 0);
	long_token[1023] = '\0';
	ck_assert(auth_token_ok(a, long_token));
	auth_free(a);
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert(write(fd, "kk", 2) == 2 && write(fd, long_token, 1023) ==
	    1023);
	close(fd);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "longer than 1023 bytes"));
	unlink(path);
	/* A directory is no token file, and says so. */
	ck_assert_int_eq(config_set(&cfg, "auth", "token_file", "/tmp", err,
	    sizeof(err)), 0);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "Is a directory") != NULL, "%s", err);

	long_token[1023] = 'k';
	long_token[1024] = '\0';
	setenv("CALLHOOKD_TOKEN", long_token, 1);
	config_defaults(&cfg);
	ck_assert_int_ne(auth_new(&a, &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "CALLHOOKD_TOKEN is longer than 1023 bytes");
	unsetenv("CALLHOOKD_TOKEN");
	a = auth_from(none);
	ck_assert(!auth_requires_token(a));
	auth_free(a);
}
END_TEST

START_TEST(test_cidr_allow)
{
	const char *kv[][3] = { { "auth", "allow",
	    "10.0.0.0/8, 192.168.1.128/25, 2001:db8::/32" }, { NULL } };
	struct auth *a = auth_from(kv);

	ck_assert(auth_allowed(a, "10.255.1.2"));
	ck_assert(!auth_allowed(a, "11.0.0.1"));
	ck_assert(auth_allowed(a, "192.168.1.200"));
	ck_assert(!auth_allowed(a, "192.168.1.127"));
	ck_assert(auth_allowed(a, "2001:db8:1::5"));
	ck_assert(!auth_allowed(a, "2001:db9::1"));
	ck_assert(auth_allowed(a, "::ffff:10.1.1.1"));
	ck_assert(!auth_allowed(a, "not an address"));
	auth_free(a);
}
END_TEST

/* What callhookd -t takes, the daemon takes: it once said "bad CIDR". */
START_TEST(test_cidr_as_checked)
{
	const char *kv[][3] = { { "auth", "allow",
	    "0000:0000:0000:0000:0000:0000:0000:0000/000000000000000, "
	    "10.0.0.0/0008" }, { NULL } };
	struct auth *a = auth_from(kv);

	ck_assert(auth_allowed(a, "2001:db8::1"));
	ck_assert(auth_allowed(a, "10.1.2.3"));
	ck_assert(!auth_allowed(a, "11.0.0.1"));
	auth_free(a);
}
END_TEST

/* An IPv4-mapped CIDR's prefix counts its 96 bits of mapping. */
START_TEST(test_cidr_mapped)
{
	const char *kv[][3] = { { "auth", "allow", "::ffff:10.0.0.0/104" },
	    { NULL } };
	struct auth *a = auth_from(kv);
	struct config cfg;
	char err[256];

	ck_assert(auth_allowed(a, "10.255.1.2"));
	ck_assert(auth_allowed(a, "::ffff:10.0.0.9"));
	ck_assert(!auth_allowed(a, "11.0.0.1"));
	auth_free(a);
	config_defaults(&cfg);
	ck_assert_int_ne(config_set(&cfg, "auth", "allow",
	    "::ffff:10.0.0.0/8", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "is not a CIDR"));
}
END_TEST

/* The client's address as http.c finds it. */
static const char *
client_of(const struct auth *a, struct sockaddr_in *peer,
    const char *const *xff, size_t n, const char *real_ip, char *out,
    size_t len)
{
	if (auth_peer_address(a, (struct sockaddr *)peer, out, len))
		auth_forwarded_address(a, xff, n, real_ip, out, len);
	return out;
}

START_TEST(test_client_address)
{
	const char *kv[][3] = { { "auth", "trusted_proxies",
	    "127.0.0.1/32, 10.0.0.0/8" }, { NULL } };
	struct auth *a = auth_from(kv);
	struct sockaddr_in proxy = v4("127.0.0.1"), other = v4("203.0.113.9");
	const char *one[] = { "6.6.6.6, 198.51.100.7, 10.1.2.3" },
	    *garbage[] = { "nonsense" };
	char out[64];

	/* Untrusted peer: headers are ignored. */
	ck_assert_str_eq(client_of(a, &other, (const char *[]){ "1.2.3.4" },
	    1, "5.6.7.8", out, sizeof(out)), "203.0.113.9");
	/* Trusted peer: the nearest untrusted hop, not a spoofed first. */
	ck_assert_str_eq(client_of(a, &proxy, one, 1, NULL, out, sizeof(out)),
	    "198.51.100.7");
	ck_assert_str_eq(client_of(a, &proxy, NULL, 0, " 198.51.100.8 ", out,
	    sizeof(out)), "198.51.100.8");
	/* Garbage in the header: keep the proxy's address. */
	ck_assert_str_eq(client_of(a, &proxy, garbage, 1, NULL, out,
	    sizeof(out)), "127.0.0.1");
	/*
	 * Nor a client's X-Real-IP, passed through by a proxy that writes
	 * X-Forwarded-For in a form that is no hop, or only trusted hops.
	 */
	ck_assert_str_eq(client_of(a, &proxy, (const char *[]){
	    "6.6.6.6:1234" }, 1, "10.9.9.9", out, sizeof(out)), "127.0.0.1");
	ck_assert_str_eq(client_of(a, &proxy, (const char *[]){
	    "10.1.2.3" }, 1, "10.9.9.9", out, sizeof(out)), "127.0.0.1");
	auth_free(a);
}
END_TEST

/* The peer's own address as text, for every family the socket may have. */
START_TEST(test_peer_text)
{
	const char *v4s[] = { "0.0.0.0", "1.20.100.255", "10.0.9.99",
	    "255.255.255.255", "127.0.0.1" };
	const char *kv[][3] = { { NULL } };
	struct auth *a = auth_from(kv);
	struct sockaddr_in6 six = { .sin6_family = AF_INET6 };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct sockaddr_in four;
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	char out[64], small[4];

	for (size_t i = 0; i < sizeof(v4s) / sizeof(v4s[0]); i++) {
		four = v4(v4s[i]);
		auth_peer_address(a, (struct sockaddr *)&four, out,
		    sizeof(out));
		ck_assert_str_eq(out, v4s[i]);
	}
	inet_pton(AF_INET6, "::ffff:192.0.2.10", &six.sin6_addr);
	auth_peer_address(a, (struct sockaddr *)&six, out, sizeof(out));
	ck_assert_str_eq(out, "192.0.2.10");
	inet_pton(AF_INET6, "2001:db8::ffff:1", &six.sin6_addr);
	auth_peer_address(a, (struct sockaddr *)&six, out, sizeof(out));
	ck_assert_str_eq(out, "2001:db8::ffff:1");
	ck_assert(auth_peer_address(a, (struct sockaddr *)&un, out,
	    sizeof(out)));
	ck_assert_str_eq(out, "unix");
	auth_peer_address(a, &sa, out, sizeof(out));
	ck_assert_str_eq(out, "unknown");
	auth_peer_address(a, NULL, out, sizeof(out));
	ck_assert_str_eq(out, "unknown");
	four = v4("192.0.2.1");
	auth_peer_address(a, (struct sockaddr *)&four, small, sizeof(small));
	ck_assert_str_eq(small, "");	/* not cut: "192" could be another */
	auth_free(a);
}
END_TEST

/*
 * X-Forwarded-For as one list read from its right end, whatever its
 * length and however many lines it comes in: the client writes the left.
 */
START_TEST(test_forwarded_for_list)
{
	const char *kv[][3] = { { "auth", "trusted_proxies",
	    "127.0.0.1/32, 10.0.0.0/8" }, { NULL } };
	struct auth *a = auth_from(kv);
	struct sockaddr_in proxy = v4("127.0.0.1");
	const char *two[] = { "203.0.113.5", "198.51.100.7, 10.1.2.3" },
	    *across[] = { "203.0.113.5, 198.51.100.7", "10.0.0.2" },
	    *empty[] = { "198.51.100.7, , 10.0.0.1,", " " }, *lines[1];
	char out[64], *spoof, *p;

	ck_assert_str_eq(client_of(a, &proxy, two, 2, NULL, out, sizeof(out)),
	    "198.51.100.7");
	ck_assert_str_eq(client_of(a, &proxy, across, 2, NULL, out,
	    sizeof(out)), "198.51.100.7");
	ck_assert_str_eq(client_of(a, &proxy, empty, 2, NULL, out,
	    sizeof(out)), "198.51.100.7");
	/* A spoofed list of 8 KB before the real hop. */
	ck_assert_ptr_nonnull(spoof = malloc(8192 + 64));
	for (p = spoof; p - spoof < 8192; p += strlen(p))
		strcpy(p, "203.0.113.5, ");
	strcpy(p, "198.51.100.7, 10.1.2.3");
	lines[0] = spoof;
	ck_assert_str_eq(client_of(a, &proxy, lines, 1, NULL, out,
	    sizeof(out)), "198.51.100.7");
	/* An element longer than any address is not one. */
	memset(spoof, '1', 100);
	strcpy(spoof + 100, ", 10.1.2.3");
	ck_assert_str_eq(client_of(a, &proxy, lines, 1, NULL, out,
	    sizeof(out)), "127.0.0.1");
	free(spoof);
	auth_free(a);
}
END_TEST

/* Sign with Python's hmac module: an implementation independent of ours. */
static void
py_sign(const char *id, long ts, const char *body, char *sig, size_t len)
{
	char dir[] = "/tmp/callhookd-sig-XXXXXX", path[128];
	FILE *fp;
	char *out;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/body", dir);
	fp = fopen(path, "w");
	fputs(body, fp);
	fclose(fp);
	ck_assert_int_eq(tu_sh("python3 -c 'import base64,hmac,hashlib,sys;"
	    "k=base64.b64decode(sys.argv[1][6:]);"
	    "m=(sys.argv[2]+\".\"+sys.argv[3]+\".\").encode()+"
	    "open(sys.argv[4],\"rb\").read();"
	    "print(\"v1,\"+base64.b64encode(hmac.new(k,m,hashlib.sha256)"
	    ".digest()).decode(),end=\"\")' '%s' '%s' '%ld' %s > %s/sig",
	    SECRET, id, ts, path, dir), 0);
	snprintf(path, sizeof(path), "%s/sig", dir);
	out = tu_read_file(path, NULL);
	snprintf(sig, len, "%s", out);
	free(out);
	tu_sh("rm -rf %s", dir);
}

START_TEST(test_signature_unit)
{
	const char *kv[][3] = { { "auth", "hmac_secret", SECRET }, { NULL } };
	struct auth *a = auth_from(kv);
	const char *body = "{\"event\":\"call_ended\"}";
	time_t now = time(NULL);
	char sig[128], ts[32], several[300];

	py_sign("msg_1", (long)now, body, sig, sizeof(sig));
	snprintf(ts, sizeof(ts), "%ld", (long)now);
	ck_assert_int_eq(auth_check_signature(a, "msg_1", ts, sig, body,
	    strlen(body), now), AUTH_SIG_OK);
	/* Several signatures in one header (key rotation): any may match. */
	snprintf(several, sizeof(several), "v1,bm9wZQ== %s v2,x", sig);
	ck_assert_int_eq(auth_check_signature(a, "msg_1", ts, several, body,
	    strlen(body), now), AUTH_SIG_OK);
	/* The HMAC of the scheme is version v1: another version is not it. */
	snprintf(several, sizeof(several), "v2,%s", sig + 3);
	ck_assert_int_eq(auth_check_signature(a, "msg_1", ts, several, body,
	    strlen(body), now), AUTH_SIG_BAD);
	ck_assert_int_eq(auth_check_signature(a, "msg_2", ts, sig, body,
	    strlen(body), now), AUTH_SIG_BAD);
	ck_assert_int_eq(auth_check_signature(a, "msg_1", ts, sig, body,
	    strlen(body) - 1, now), AUTH_SIG_BAD);
	ck_assert_int_eq(auth_check_signature(a, "msg_1", ts, sig, body,
	    strlen(body), now + 301), AUTH_SIG_STALE);
	ck_assert_int_eq(auth_check_signature(a, "msg_1", ts, sig, body,
	    strlen(body), now - 301), AUTH_SIG_STALE);
	ck_assert_int_eq(auth_check_signature(a, "msg_1", NULL, sig, body,
	    strlen(body), now), AUTH_SIG_MISSING);
	auth_free(a);
}
END_TEST

/* End to end. */

static struct daemon_proc d;

static void
setup(void)
{
	tu_tmpdir(&d);
}

static void
teardown(void)
{
	tu_cleanup(&d);
}

/* The WWW-Authenticate of post()'s last answer, "" when it had none. */
static char challenge[256];

/* POST the seed fixture with extra header lines and a path suffix. */
static int
post(const char *query, const char *headers, const char *body)
{
	char head[2048], *req;
	struct reply r;
	int n, status;
	size_t len = strlen(body);

	n = snprintf(head, sizeof(head), "POST " PATH "%s HTTP/1.1\r\n"
	    "Host: x\r\nConnection: close\r\nContent-Type: application/json"
	    "\r\n%sContent-Length: %zu\r\n\r\n", query, headers, len);
	ck_assert_int_lt(n, sizeof(head));
	req = malloc((size_t)n + len);
	memcpy(req, head, (size_t)n);
	memcpy(req + n, body, len);
	ck_assert_int_eq(tu_raw(d.port, req, (size_t)n + len, &r), 0);
	free(req);
	/* A refusal never echoes the secret. */
	ck_assert_ptr_null(strstr(r.body, "s3cret"));
	ck_assert_ptr_null(strstr(r.headers, "s3cret"));
	if (tu_header(&r, "WWW-Authenticate", challenge, sizeof(challenge))
	    != 0)
		challenge[0] = '\0';
	status = r.status;
	tu_reply_free(&r);
	return status;
}

static char *
body_with_sid(const char *sid)
{
	char *seed = tu_fixture("call_ended.json", NULL);
	char *b = tu_replace(seed, "2303fa770b666a64ab1694c1e", sid);

	free(seed);
	return b;
}

static int
stored(const char *sid, const char *remote)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int found = 0;

	ck_assert_int_eq(sqlite3_open_v2(d.db, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	sqlite3_prepare_v2(db, "SELECT remote_addr FROM calls WHERE "
	    "call_sid = ?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		found = 1;
		if (remote != NULL)
			ck_assert_str_eq((const char *)sqlite3_column_text(st,
			    0), remote);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return found;
}

START_TEST(test_token_e2e)
{
	char *b1 = body_with_sid("tok-1"), *b2 = body_with_sid("tok-2"),
	    *b3 = body_with_sid("tok-3"), *b4 = body_with_sid("tok-4"),
	    *b5 = body_with_sid("tok-5"), *b6 = body_with_sid("tok-6"),
	    *b7 = body_with_sid("tok-7"), *b8 = body_with_sid("tok-8");

	ck_assert_int_eq(tu_start(&d, "[auth]\ntoken = s3cret\n", NULL), 0);
	ck_assert_int_eq(post("", "", b4), 401);
	/* RFC 9110: a 401 names the scheme that would be let in. */
	ck_assert_str_eq(challenge, "Bearer realm=\"callhookd\"");
	ck_assert_int_eq(post("?token=wrong", "", b4), 401);
	ck_assert_int_eq(post("", "Authorization: Bearer wrong\r\n", b4), 401);
	ck_assert_int_eq(post("?token=s3cret", "", b1), 200);
	ck_assert_int_eq(post("", "Authorization: Bearer s3cret\r\n", b2),
	    200);
	ck_assert_str_eq(challenge, "");
	ck_assert_int_eq(post("", "X-Callhook-Token: s3cret\r\n", b3), 200);
	/* Any one place right will do: a stale ?token= hides nothing. */
	ck_assert_int_eq(post("?token=old", "Authorization: Bearer s3cret\r\n",
	    b7), 200);
	ck_assert_int_eq(post("?token=", "X-Callhook-Token: wrong\r\n", b4),
	    401);
	/* Bearer takes one or more spaces; trailing blanks are no part. */
	ck_assert_int_eq(post("", "Authorization: Bearer   s3cret \r\n", b5),
	    200);
	ck_assert_int_eq(post("", "X-Callhook-Token: s3cret \t\r\n", b6),
	    200);
	/* The scheme's name is case-insensitive (RFC 9110 section 11.1). */
	ck_assert_int_eq(post("", "Authorization: bearer s3cret\r\n", b8),
	    200);
	ck_assert(stored("tok-1", NULL) && stored("tok-2", NULL) &&
	    stored("tok-3", NULL) && stored("tok-5", NULL) &&
	    stored("tok-6", NULL) && stored("tok-7", NULL) &&
	    stored("tok-8", NULL));
	ck_assert(!stored("tok-4", NULL));
	/* The secret is not in the log either. */
	ck_assert_int_ne(tu_sh("grep -q s3cret %s", d.log), 0);

	/* SIGHUP: a new token applies without a restart... */
	ck_assert_int_eq(tu_sh("printf '[http]\\ntimeout = 7s\\n"
	    "max_connections = 9\\n[auth]\\ntoken = n3w\\n' > %s", d.ini),
	    0);
	kill(d.pid, SIGHUP);
	for (int i = 0; i < 200 && tu_sh("grep -q 'configuration applied' "
	    "%s", d.log) != 0; i++)
		usleep(10000);
	ck_assert_int_eq(post("?token=s3cret", "", b4), 401);
	ck_assert_int_eq(post("?token=n3w", "", b4), 200);
	/* ...while the connection limits wait for a restart, and say so. */
	ck_assert_int_eq(tu_sh("grep -q 'reload: timeout, max_connections "
	    "changed; the running value stays until the next restart' %s",
	    d.log), 0);
	/* ...and a broken file leaves the running one in force. */
	ck_assert_int_eq(tu_sh("printf '[auth]\\ntoken = x\\nbogus = 1\\n' "
	    "> %s", d.ini), 0);
	kill(d.pid, SIGHUP);
	for (int i = 0; i < 200 && tu_sh("grep -q 'stays in force' %s",
	    d.log) != 0; i++)
		usleep(10000);
	ck_assert_int_eq(tu_sh("grep -q 'callhookd.ini:3' %s", d.log), 0);
	ck_assert_int_eq(post("?token=n3w", "", b4), 200);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	free(b1);
	free(b2);
	free(b5);
	free(b6);
	free(b7);
	free(b8);
	free(b3);
	free(b4);
}
END_TEST

/*
 * A token rotated without a refused webhook: the new one is configured
 * with the old as previous_token, senders move over, and a reload
 * without previous_token then shuts the old one out.
 */
START_TEST(test_token_rotation_e2e)
{
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	char *b1 = body_with_sid("rot-1"), *b2 = body_with_sid("rot-2"),
	    *b3 = body_with_sid("rot-3");
	char ini[1024];

	ck_assert_int_eq(tu_start(&d, "[auth]\ntoken = n3w\n"
	    "previous_token = s3cret\n", NULL), 0);
	ck_assert_int_eq(post("?token=s3cret", "", b1), 200);
	ck_assert_int_eq(post("", "Authorization: Bearer n3w\r\n", b2), 200);
	ck_assert_int_eq(post("?token=wrong", "", b3), 401);
	/* A stale ?token= beside the new header is no use of the old. */
	ck_assert_int_eq(post("?token=s3cret", "Authorization: Bearer n3w\r\n",
	    b2), 200);
	/* What tells when no sender uses the old one any more. */
	ck_assert_int_eq(tu_metric(d.port, "callhookd_previous_token_total"),
	    1);
	ck_assert_int_eq(tu_sh("printf '[auth]\\ntoken = n3w\\n' > %s",
	    d.ini), 0);
	kill(d.pid, SIGHUP);
	for (int i = 0; i < 200 && tu_sh("grep -q 'configuration applied' "
	    "%s", d.log) != 0; i++)
		usleep(10000);
	ck_assert_int_eq(post("?token=s3cret", "", b3), 401);
	ck_assert_int_eq(post("?token=n3w", "", b3), 200);
	ck_assert(stored("rot-1", NULL) && stored("rot-2", NULL) &&
	    stored("rot-3", NULL));
	ck_assert_int_ne(tu_sh("grep -q s3cret %s", d.log), 0);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	/* Without a token, -t names the line, and not the value. */
	ck_assert_int_eq(tu_sh("printf '[auth]\\nprevious_token = s3cret\\n' "
	    "> %s && %s -t -c %s 2> %s/err", d.ini, bin, d.ini, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q '%s:2: \\[auth\\] previous_token is "
	    "set but no token' %s/err && ! grep -q s3cret %s/err", d.ini,
	    d.dir, d.dir), 0);
	/*
	 * Both tokens in files, as credentials: the old one is taken from
	 * its file, and a file that is not there is told at its line.
	 */
	ck_assert_int_eq(tu_sh("printf 'n3w\\n' > %s/new && printf 's3cret\\n' "
	    "> %s/old", d.dir, d.dir), 0);
	snprintf(ini, sizeof(ini), "[auth]\ntoken_file = %s/new\n"
	    "previous_token_file = %s/old\n", d.dir, d.dir);
	ck_assert_int_eq(tu_start(&d, ini, NULL), 0);
	ck_assert_int_eq(post("?token=s3cret", "", b1), 200);
	ck_assert_int_eq(post("?token=n3w", "", b2), 200);
	ck_assert_int_eq(post("?token=old", "", b3), 401);
	ck_assert_int_eq(tu_metric(d.port, "callhookd_previous_token_total"),
	    1);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(tu_sh("rm %s/old && %s -t -c %s 2> %s/err", d.dir, bin,
	    d.ini, d.dir), 1);
	ck_assert_int_eq(tu_sh("grep -q '%s:3: \\[auth\\] previous_token_file: "
	    "%s/old: No such file' %s/err", d.ini, d.dir, d.dir), 0);
	/*
	 * The new token's credential is not there before the service
	 * starts: -t warns, and still reads the old token's file, which the
	 * start would.
	 */
	ck_assert_int_eq(tu_sh("printf '[auth]\\ntoken_file = /run/credentials/"
	    "callhookd-test.service/token\\nprevious_token_file = %s/old\\n' "
	    "> %s && %s -t -c %s 2> %s/err", d.dir, d.ini, bin, d.ini, d.dir),
	    1);
	ck_assert_int_eq(tu_sh("grep -q '%s:2: warning: \\[auth\\] token_file: "
	    "' %s/err && grep -q '%s:3: \\[auth\\] previous_token_file: "
	    "%s/old: No such file' %s/err", d.ini, d.dir, d.ini, d.dir, d.dir),
	    0);
	ck_assert_int_eq(tu_sh("printf 's3cret\\n' > %s/old && %s -t -c %s "
	    "2>&1 | grep -q 'configuration OK'", d.dir, bin, d.ini), 0);
	free(b1);
	free(b2);
	free(b3);
}
END_TEST

/*
 * Reachable from other hosts with no token, signature or allow list,
 * anyone can store calls: a warning at the start and at a reload that
 * makes it so. None on loopback (nginx in front is the gate), with a
 * token, or with an allow list that leaves some address out.
 */
START_TEST(test_open_to_anyone_warned)
{
	static const char warn[] = "with no token, hmac_secret or allow list: "
	    "anyone who can reach it can store calls";
	const char *bin = getenv("CALLHOOKD") ? getenv("CALLHOOKD") :
	    "build/callhookd";
	/*
	 * Start with -c $D/F, copy $D/R to $D/ini, SIGHUP; the log in err.
	 * Each step waits for its line, not a second: a SIGHUP before the
	 * daemon blocks it would kill a daemon slow to start.
	 */
	static const char run[] = "D=%s && printf '[auth]\\ntoken = s3cret\\n' "
	    "> $D/token.ini && printf '' > $D/none.ini && { %s -c $D/%s "
	    "--listen %s --database $D/calls.db 2> $D/err & pid=$!; } && "
	    "for i in $(seq 400); do grep -q 'listening on' $D/err && break; "
	    "sleep 0.05; done && cp $D/%s $D/ini && kill -HUP $pid && "
	    "for i in $(seq 400); do grep -q 'configuration applied' $D/err "
	    "&& break; sleep 0.05; done && kill $pid && wait $pid";

	/* Loopback: nginx in front is the gate. */
	ck_assert_int_eq(tu_sh(run, d.dir, bin, "none.ini", "127.0.0.1:0",
	    "none.ini"), 0);
	ck_assert_int_eq(tu_sh("! grep -q '%s' %s/err", warn, d.dir), 0);
	/* A token, then a reload that drops it. */
	ck_assert_int_eq(tu_sh("cp %s/token.ini %s/ini", d.dir, d.dir), 0);
	ck_assert_int_eq(tu_sh(run, d.dir, bin, "ini", "0.0.0.0:0",
	    "none.ini"), 0);
	ck_assert_int_eq(tu_sh("grep -c '%s' %s/err | grep -qx 1 && grep -q "
	    "'configuration applied' %s/err", warn, d.dir, d.dir), 0);
	ck_assert_int_eq(tu_sh("grep -q 'listening on 0.0.0.0:[0-9]* %s' "
	    "%s/err", warn, d.dir), 0);
	/* An allow list of every address is none; one that limits is. */
	ck_assert_int_eq(tu_sh("printf '[auth]\\nallow = 10.0.0.0/8, ::/0\\n' > "
	    "%s/ini && printf '[auth]\\nallow = 10.0.0.0/8, ::1\\n' > "
	    "%s/some.ini", d.dir, d.dir), 0);
	ck_assert_int_eq(tu_sh(run, d.dir, bin, "ini", "0.0.0.0:0",
	    "some.ini"), 0);
	ck_assert_int_eq(tu_sh("grep -c '%s' %s/err | grep -qx 1 && grep -q "
	    "'configuration applied' %s/err", warn, d.dir, d.dir), 0);
}
END_TEST

/*
 * Without its signature headers a body is refused before it is read, or
 * anyone could make the daemon hold max_body for each connection: with
 * Expect: 100-continue, 401 comes instead of "100 Continue".
 */
static void
expect_unsigned_refused_unread(void)
{
	char req[256];
	struct reply r;

	snprintf(req, sizeof(req), "POST " PATH " HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nContent-Length: 4000000\r\n"
	    "Expect: 100-continue\r\n\r\n");
	ck_assert_int_eq(tu_raw_timeout(d.port, req, strlen(req), 0, 2000,
	    &r), 0);
	ck_assert_int_eq(r.status, 401);
	ck_assert_ptr_nonnull(strstr(r.body, "webhook-signature are "
	    "required"));
	tu_reply_free(&r);
}

START_TEST(test_signature_e2e)
{
	char *b = body_with_sid("sig-1"), sig[128], hdr[512];
	long now = (long)time(NULL);

	ck_assert_int_eq(tu_start(&d, "[auth]\nhmac_secret = " SECRET "\n",
	    NULL), 0);
	py_sign("msg_9", now, b, sig, sizeof(sig));
	ck_assert_int_eq(post("", "", b), 401);
	snprintf(hdr, sizeof(hdr), "webhook-id: msg_9\r\nwebhook-timestamp: "
	    "%ld\r\nwebhook-signature: %s\r\n", now - 400, sig);
	ck_assert_int_eq(post("", hdr, b), 401);	/* stale */
	ck_assert_str_eq(challenge, "");	/* no Bearer to offer */
	snprintf(hdr, sizeof(hdr), "webhook-id: msg_8\r\nwebhook-timestamp: "
	    "%ld\r\nwebhook-signature: %s\r\n", now, sig);
	ck_assert_int_eq(post("", hdr, b), 401);	/* other id */
	ck_assert(!stored("sig-1", NULL));
	snprintf(hdr, sizeof(hdr), "webhook-id: msg_9\r\nwebhook-timestamp: "
	    "%ld\r\nwebhook-signature: %s\r\n", now, sig);
	ck_assert_int_eq(post("", hdr, b), 200);
	ck_assert(stored("sig-1", NULL));
	expect_unsigned_refused_unread();
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	free(b);
}
END_TEST

/* An X-Forwarded-For header of 1 KB of allowed addresses, then last. */
static const char *
long_forwarded_for(char *buf, size_t len, const char *last)
{
	size_t n;

	n = (size_t)snprintf(buf, len, "X-Forwarded-For: ");
	while (n < 1100)
		n += (size_t)snprintf(buf + n, len - n, "198.51.100.1, ");
	snprintf(buf + n, len - n, "%s\r\n", last);
	return buf;
}

START_TEST(test_allow_and_proxies_e2e)
{
	char xff[1200];
	char *b1 = body_with_sid("px-1"), *b2 = body_with_sid("px-2"),
	    *b3 = body_with_sid("px-3"), *b4 = body_with_sid("px-4");

	/* 127.0.0.1 is a trusted proxy; clients must be in 198.51.100/24. */
	ck_assert_int_eq(tu_start(&d, "[auth]\nallow = 198.51.100.0/24\n"
	    "trusted_proxies = 127.0.0.1/32\n", NULL), 0);
	ck_assert_int_eq(post("", "", b1), 403);	/* the proxy itself */
	ck_assert_int_eq(post("", "X-Forwarded-For: 203.0.113.5\r\n", b1),
	    403);
	ck_assert_int_eq(post("", "X-Forwarded-For: 198.51.100.7\r\n", b1),
	    200);
	ck_assert(stored("px-1", "198.51.100.7"));
	ck_assert_int_eq(post("", "X-Real-IP: 198.51.100.9\r\n", b2), 200);
	ck_assert(stored("px-2", "198.51.100.9"));
	/* A client-supplied first hop cannot hide the real one. */
	ck_assert_int_eq(post("", "X-Forwarded-For: 198.51.100.1, "
	    "203.0.113.5\r\n", b3), 403);
	ck_assert(!stored("px-3", NULL));
	/* Nor a first line of its own, or 1 KB of them before it. */
	ck_assert_int_eq(post("", "X-Forwarded-For: 198.51.100.1\r\n"
	    "X-Forwarded-For: 203.0.113.5\r\n", b3), 403);
	ck_assert_int_eq(post("", long_forwarded_for(xff, sizeof(xff),
	    "203.0.113.5"), b3), 403);
	ck_assert(!stored("px-3", NULL));
	/* The last eight lines are read: proxies only, the proxy's own. */
	ck_assert_int_eq(post("", "X-Forwarded-For: 198.51.100.1\r\n"
	    "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n"
	    "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n"
	    "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n"
	    "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n",
	    b3), 403);
	ck_assert_int_eq(post("", long_forwarded_for(xff, sizeof(xff),
	    "198.51.100.3"), b3), 200);
	ck_assert(stored("px-3", "198.51.100.3"));
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);

	/* Not a trusted proxy: forwarded headers are ignored. */
	ck_assert_int_eq(tu_start(&d, "[auth]\nallow = 198.51.100.0/24\n"
	    "trusted_proxies = 10.0.0.0/8\n", NULL), 0);
	ck_assert_int_eq(post("", "X-Forwarded-For: 198.51.100.7\r\n", b4),
	    403);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	ck_assert(!stored("px-4", NULL));
	free(b1);
	free(b2);
	free(b3);
	free(b4);
}
END_TEST

START_TEST(test_json_log_e2e)
{
	char *b = body_with_sid("log-1");

	ck_assert_int_eq(tu_start(&d, "[log]\nformat = json\nlevel = debug\n"
	    "[auth]\ntoken = s3cret\n", NULL), 0);
	ck_assert_int_eq(post("?token=s3cret", "", b), 200);
	ck_assert_int_eq(post("", "", b), 401);
	ck_assert_int_eq(tu_stop(&d, SIGTERM), 0);
	/*
	 * Every line is a JSON object; request lines carry req (+callSid),
	 * the daemon's start in hex and the request's number.
	 */
	ck_assert_int_eq(tu_sh("python3 -c 'import json,sys\n"
	    "lines=[json.loads(l) for l in open(sys.argv[1])]\n"
	    "ok=[l for l in lines if l.get(\"status\")==200]\n"
	    "bad=[l for l in lines if l.get(\"status\")==401]\n"
	    "assert ok and ok[0][\"callSid\"]==\"log-1\" and ok[0][\"req\"]\n"
	    "assert bad and bad[0][\"req\"] and bad[0][\"level\"]==\"warn\"\n"
	    "import re\n"
	    "ids=[re.fullmatch(r\"([0-9a-f]+)-([0-9]+)\", l[\"req\"]).groups()\n"
	    "     for l in ok + bad]\n"
	    "assert ids[0][0]==ids[1][0] and ids[0][1]!=ids[1][1], ids\n"
	    "' %s", d.log), 0);
	free(b);
}
END_TEST

Suite *
auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *unit = tcase_create("unit"), *e2e = tcase_create("e2e");

	tcase_add_test(unit, test_token_compare);
	tcase_add_test(unit, test_token_sources);
	tcase_add_test(unit, test_token_limits);
	tcase_add_test(unit, test_previous_token);
	tcase_add_test(unit, test_previous_token_file);
	tcase_add_test(unit, test_cidr_allow);
	tcase_add_test(unit, test_cidr_as_checked);
	tcase_add_test(unit, test_cidr_mapped);
	tcase_add_test(unit, test_client_address);
	tcase_add_test(unit, test_peer_text);
	tcase_add_test(unit, test_forwarded_for_list);
	tcase_add_test(unit, test_signature_unit);
	tcase_add_checked_fixture(e2e, setup, teardown);
	tcase_set_timeout(e2e, 60);
	tcase_add_test(e2e, test_token_e2e);
	tcase_add_test(e2e, test_token_rotation_e2e);
	tcase_add_test(e2e, test_open_to_anyone_warned);
	tcase_add_test(e2e, test_signature_e2e);
	tcase_add_test(e2e, test_allow_and_proxies_e2e);
	tcase_add_test(e2e, test_json_log_e2e);
	suite_add_tcase(s, unit);
	suite_add_tcase(s, e2e);
	return s;
}

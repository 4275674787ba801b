/*
 * Authentication and client addresses.
 *
 * CallKaro documents no signature, so the usual protection is a token in
 * the webhook URL the operator pastes into the dashboard (or a header);
 * Standard Webhooks signatures are supported for senders that sign.
 * Secrets are compared in constant time with OpenSSL's CRYPTO_memcmp.
 *
 * Addresses are parsed into a family and 16 bytes (IPv4-mapped IPv6 is
 * folded to IPv4) and matched against CIDR prefixes bit by bit.
 */

#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include "auth.h"
#include "config.h"

#define TOKEN_MAX	1024

struct cidr {
	int		family;
	unsigned char	addr[16];
	int		prefix;
};

struct auth {
	unsigned char	 token_hash[SHA256_DIGEST_LENGTH];
	bool		 has_token;
	/* [auth] previous_token, taken too while senders move to the new */
	unsigned char	 previous_hash[SHA256_DIGEST_LENGTH];
	bool		 has_previous;
	unsigned char	 secret[CONFIG_SECRET_MAX];
	size_t		 secret_len;
	bool		 has_secret;
	EVP_MAC		*hmac;
	struct cidr	*allow;
	size_t		 n_allow;
	struct cidr	*trusted;
	size_t		 n_trusted;
};

/* Text to family + bytes; IPv4-mapped IPv6 becomes IPv4. */
static int
addr_parse(const char *s, int *family, unsigned char addr[16])
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0xff, 0xff };

	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr) != 1)
		return -EINVAL;
	if (memcmp(addr, mapped, sizeof(mapped)) == 0) {
		memmove(addr, addr + 12, 4);
		memset(addr + 4, 0, 12);
		*family = AF_INET;
	} else {
		*family = AF_INET6;
	}
	return 0;
}

static int
cidr_parse(const char *s, struct cidr *c)
{
	char buf[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	bool mapped;
	int max;

	/* The prefix may be longer: config.c takes "/000000000000000". */
	if (alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (slash != NULL)
		slash++;
	if (addr_parse(buf, &c->family, c->addr) != 0)
		return -EINVAL;
	/* ::ffff:a.b.c.d is kept as IPv4: its prefix counts 96 bits more. */
	mapped = c->family == AF_INET && strchr(buf, ':') != NULL;
	max = c->family == AF_INET && !mapped ? 32 : 128;
	c->prefix = c->family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		char *end;
		long p = strtol(slash, &end, 10);

		if (*slash == '\0' || *end != '\0' || p < 0 || p > max ||
		    (mapped && p < 96))
			return -EINVAL;
		c->prefix = (int)(mapped ? p - 96 : p);
	}
	return 0;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* "10.0.0.0/8, ::1" -> array. 0 or -EINVAL/-ENOMEM. */
static int
cidr_list(const char *list, struct cidr **out, size_t *n)
{
	char *copy, *tok, *save = NULL;
	struct cidr *v = NULL, *grown;
	size_t count = 0;

	*out = NULL;
	*n = 0;
	if ((copy = strdup(list)) == NULL)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *t = trim(tok);

		if (*t == '\0')
			continue;
		if ((grown = realloc(v, (count + 1) * sizeof(*v))) == NULL)
			goto fail;
		v = grown;
		if (cidr_parse(t, &v[count]) != 0)
			goto fail;
		count++;
	}
	free(copy);
	*out = v;
	*n = count;
	return 0;
fail:
	free(copy);
	free(v);
	return -EINVAL;
}

static bool
cidr_match(const struct cidr *c, int family, const unsigned char *addr)
{
	int full = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family || memcmp(c->addr, addr, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0;
}

static bool
in_cidrs(const struct cidr *v, size_t n, int family,
    const unsigned char addr[16])
{
	for (size_t i = 0; i < n; i++)
		if (cidr_match(&v[i], family, addr))
			return true;
	return false;
}

static bool
in_list(const struct cidr *v, size_t n, const char *text)
{
	unsigned char addr[16];
	int family;

	return addr_parse(text, &family, addr) == 0 &&
	    in_cidrs(v, n, family, addr);
}

/* What is left of fp is only line ends, if anything. */
static bool
only_line_ends(FILE *fp)
{
	int c;

	while ((c = fgetc(fp)) != EOF)
		if (c != '\n' && c != '\r')
			return false;
	return true;
}

/*
 * A token's length without trailing blanks: they are no part of a
 * header's value (RFC 9110, 5.5), and the ini parser trims them, so they
 * count nowhere, whether configured or presented.
 */
static size_t
token_len(const char *s)
{
	size_t len = strlen(s);

	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	return len;
}

/*
 * A token from a file, named in messages by its key (token_file or
 * previous_token_file): a trailing newline is dropped, and a file empty,
 * cut short or holding a NUL is an error rather than a token that takes
 * the wrong requests.
 */
static int
read_token_file(const char *key, const char *path, char *buf, size_t len,
    char *err, size_t errlen)
{
	FILE *fp = fopen(path, "re");
	size_t n;
	int rc;

	if (fp == NULL) {
		rc = -errno;
		snprintf(err, errlen, "[auth] %s: %s: %s", key, path,
		    strerror(-rc));
		return rc;
	}
	n = fread(buf, 1, len - 1, fp);
	buf[n] = '\0';
	if (ferror(fp)) {
		snprintf(err, errlen, "[auth] %s: %s: %s", key, path,
		    strerror(errno));
		fclose(fp);
		return -EINVAL;
	}
	/* A token cut short would refuse the right one, and take a prefix. */
	if (n == len - 1 && !only_line_ends(fp)) {
		snprintf(err, errlen, "[auth] %s: %s: longer than %zu bytes",
		    key, path, len - 1);
		fclose(fp);
		return -EINVAL;
	}
	fclose(fp);
	/* The token is hashed as a string: it would end at the NUL. */
	if (memchr(buf, '\0', n) != NULL) {
		snprintf(err, errlen, "[auth] %s: %s holds a NUL byte (a "
		    "token is text, sent in a header or the URL: make one "
		    "with openssl rand -hex 32)", key, path);
		return -EINVAL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "[auth] %s: %s is empty", key, path);
		return -EINVAL;
	}
	if (token_len(buf) == 0) {	/* or "" would pass */
		snprintf(err, errlen, "[auth] %s: %s holds only blanks", key,
		    path);
		return -EINVAL;
	}
	return 0;
}

/*
 * [auth] previous_token or previous_token_file: the token being
 * replaced, taken as well until every sender has the new one. Alone it
 * would protect nothing, while its name says that a token is required.
 */
static int
load_previous_token(struct auth *a, const struct config *cfg, char *err,
    size_t errlen)
{
	const char *file = cfg->previous_token_file;
	char token[TOKEN_MAX];
	int rc;

	if (cfg->previous_token[0] == '\0' && file[0] == '\0')
		return 0;
	if (!a->has_token) {
		snprintf(err, errlen, "[auth] %s is set but no token is "
		    "(token, token_file or CALLHOOKD_TOKEN): it is the one "
		    "being replaced, taken only beside a token",
		    file[0] != '\0' ? "previous_token_file" :
		    "previous_token");
		return -EINVAL;
	}
	if (file[0] == '\0')
		snprintf(token, sizeof(token), "%s", cfg->previous_token);
	else if ((rc = read_token_file("previous_token_file", file, token,
	    sizeof(token), err, errlen)) != 0)
		return rc;
	SHA256((const unsigned char *)token, token_len(token),
	    a->previous_hash);
	OPENSSL_cleanse(token, sizeof(token));
	a->has_previous = true;
	return 0;
}

static int
load_token(struct auth *a, const struct config *cfg, char *err,
    size_t errlen)
{
	char token[TOKEN_MAX];
	const char *env = getenv("CALLHOOKD_TOKEN");
	int rc;

	if (cfg->token[0] != '\0')
		snprintf(token, sizeof(token), "%s", cfg->token);
	else if (cfg->token_file[0] != '\0') {
		if ((rc = read_token_file("token_file", cfg->token_file,
		    token, sizeof(token), err, errlen)) != 0)
			return rc;
	} else if (env != NULL && *env != '\0') {
		if (strlen(env) >= sizeof(token)) {
			snprintf(err, errlen, "CALLHOOKD_TOKEN is longer than "
			    "%zu bytes", sizeof(token) - 1);
			return -EINVAL;
		}
		snprintf(token, sizeof(token), "%s", env);
	} else
		return load_previous_token(a, cfg, err, errlen);
	if (token_len(token) == 0) {	/* or "" would pass */
		snprintf(err, errlen, "the token (CALLHOOKD_TOKEN) is only "
		    "blanks");
		return -EINVAL;
	}
	SHA256((const unsigned char *)token, token_len(token), a->token_hash);
	OPENSSL_cleanse(token, sizeof(token));
	a->has_token = true;
	return load_previous_token(a, cfg, err, errlen);
}

/* config_set() has checked it: an error here is a caller's bypass. */
static int
load_secret(struct auth *a, const char *s, char *err, size_t errlen)
{
	if (s[0] == '\0')
		return 0;
	if (config_parse_secret(s, a->secret, &a->secret_len) != 0) {
		snprintf(err, errlen, "[auth] hmac_secret: not a valid secret");
		return -EINVAL;
	}
	a->has_secret = true;
	return 0;
}

static int
fetch_hmac(struct auth *a, char *err, size_t errlen)
{
	if (!a->has_secret)
		return 0;
	if ((a->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL) {
		snprintf(err, errlen, "OpenSSL has no HMAC");
		return -ENOTSUP;
	}
	return 0;
}

int
auth_check_token(const struct config *cfg, char *err, size_t errlen)
{
	struct auth a = { .has_token = false };
	int rc;

	rc = load_token(&a, cfg, err, errlen);
	OPENSSL_cleanse(&a, sizeof(a));
	return rc;
}

int
auth_check_previous_token(const struct config *cfg, char *err,
    size_t errlen)
{
	struct auth a = { .has_token = true };
	int rc;

	rc = load_previous_token(&a, cfg, err, errlen);
	OPENSSL_cleanse(&a, sizeof(a));
	return rc;
}

int
auth_new(struct auth **out, const struct config *cfg, char *err,
    size_t errlen)
{
	struct auth *a;
	int rc;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -ENOMEM;
	if ((rc = load_token(a, cfg, err, errlen)) != 0 ||
	    (rc = load_secret(a, cfg->hmac_secret, err, errlen)) != 0 ||
	    (rc = fetch_hmac(a, err, errlen)) != 0)
		goto fail;
	if ((rc = cidr_list(cfg->allow, &a->allow, &a->n_allow)) != 0 ||
	    (rc = cidr_list(cfg->trusted_proxies, &a->trusted,
	    &a->n_trusted)) != 0) {
		snprintf(err, errlen, "[auth] allow or trusted_proxies: bad "
		    "CIDR list");
		goto fail;
	}
	*out = a;
	return 0;
fail:
	auth_free(a);
	return rc;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	free(a->allow);
	free(a->trusted);
	EVP_MAC_free(a->hmac);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

bool
auth_requires_token(const struct auth *a)
{
	return a->has_token;
}

bool
auth_requires_signature(const struct auth *a)
{
	return a->has_secret;
}

enum auth_token
auth_token_match(const struct auth *a, const char *presented)
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	bool current, previous;

	if (presented == NULL)
		return AUTH_TOKEN_NONE;
	SHA256((const unsigned char *)presented, token_len(presented), h);
	/* Both compared, whichever matches: no timing tells which. */
	current = CRYPTO_memcmp(h, a->token_hash, sizeof(h)) == 0;
	previous = a->has_previous &&
	    CRYPTO_memcmp(h, a->previous_hash, sizeof(h)) == 0;
	return current ? AUTH_TOKEN_CURRENT : previous ? AUTH_TOKEN_PREVIOUS :
	    AUTH_TOKEN_NONE;
}

bool
auth_token_ok(const struct auth *a, const char *presented)
{
	return auth_token_match(a, presented) != AUTH_TOKEN_NONE;
}

static bool
parse_timestamp(const char *s, time_t now)
{
	char *end;
	long long ts;

	errno = 0;
	ts = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0)
		return false;
	return ts >= (long long)now - AUTH_SIGNATURE_TOLERANCE &&
	    ts <= (long long)now + AUTH_SIGNATURE_TOLERANCE;
}

/* base64(HMAC-SHA256(secret, id "." ts "." body)) into out (>= 45). */
static bool
expected_signature(const struct auth *a, const char *id, const char *ts,
    const char *body, size_t len, char *out)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
		OSSL_PARAM_construct_end()
	};
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	EVP_MAC_CTX *ctx;
	bool ok;

	if ((ctx = EVP_MAC_CTX_new(a->hmac)) == NULL)
		return false;
	ok = EVP_MAC_init(ctx, a->secret, a->secret_len, params) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1 &&
	    EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) == 1;
	EVP_MAC_CTX_free(ctx);
	if (ok)
		EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
	return ok;
}

enum auth_sig
auth_signature_headers(const char *id, const char *timestamp,
    const char *signatures, time_t now)
{
	if (id == NULL || timestamp == NULL || signatures == NULL)
		return AUTH_SIG_MISSING;
	if (!parse_timestamp(timestamp, now))
		return AUTH_SIG_STALE;
	return AUTH_SIG_OK;
}

enum auth_sig
auth_check_signature(const struct auth *a, const char *id,
    const char *timestamp, const char *signatures, const char *body,
    size_t len, time_t now)
{
	enum auth_sig rc;
	char want[64];
	size_t wl;
	const char *p;

	if ((rc = auth_signature_headers(id, timestamp, signatures, now)) !=
	    AUTH_SIG_OK)
		return rc;
	if (!expected_signature(a, id, timestamp, body, len, want))
		return AUTH_SIG_BAD;
	wl = strlen(want);
	for (p = signatures; *p != '\0';) {
		size_t n = strcspn(p, " ");

		if (n == wl + 3 && strncmp(p, "v1,", 3) == 0 &&
		    CRYPTO_memcmp(p + 3, want, wl) == 0)
			return AUTH_SIG_OK;
		p += n;
		p += strspn(p, " ");
	}
	return AUTH_SIG_BAD;
}

/*
 * a.b.c.d in out, which has room for INET_ADDRSTRLEN bytes. By hand: it
 * runs for every request, and glibc's inet_ntop() goes through sprintf().
 */
static void
ipv4_text(const unsigned char *a, char *out)
{
	for (int i = 0; i < 4; i++) {
		if (a[i] >= 100)
			*out++ = (char)('0' + a[i] / 100);
		if (a[i] >= 10)
			*out++ = (char)('0' + a[i] / 10 % 10);
		*out++ = (char)('0' + a[i] % 10);
		*out++ = i < 3 ? '.' : '\0';
	}
}

/*
 * IPv4-mapped peers are shown as IPv4. An address that does not fit len
 * is "", not cut: a cut address may be another, trusted one.
 */
static void
peer_text(const struct sockaddr *sa, char *out, size_t len)
{
	char text[INET6_ADDRSTRLEN] = "unknown";
	const struct in6_addr *a6;
	size_t n;

	if (sa != NULL && sa->sa_family == AF_INET) {
		ipv4_text((const unsigned char *)
		    &((const struct sockaddr_in *)sa)->sin_addr, text);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6))
			ipv4_text(a6->s6_addr + 12, text);
		else
			inet_ntop(AF_INET6, a6, text, sizeof(text));
	} else if (sa != NULL && sa->sa_family == AF_UNIX)
		memcpy(text, "unix", sizeof("unix"));
	if (len == 0)
		return;
	n = strlen(text);
	if (n >= len)
		n = 0;
	memcpy(out, text, n);
	out[n] = '\0';
}

/*
 * One element of a forwarding header, s[0..n), trimmed, into an address.
 * Longer than any address, or not one: false.
 */
static bool
hop_parse(const char *s, size_t n, int *family, unsigned char addr[16])
{
	char buf[INET6_ADDRSTRLEN + 1];

	while (n > 0 && isspace((unsigned char)*s))
		s++, n--;
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return addr_parse(buf, family, addr) == 0;
}

static bool
blank(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return n == 0;
}

/*
 * The nearest address in X-Forwarded-For that is not a trusted proxy.
 * The lines are one list (RFC 9110, 5.3), read from the right end of the
 * last: each proxy appends, so the right end is what the trusted ones
 * wrote. Empty elements are skipped; anything else that is not an
 * address stops the walk, and so does a list of trusted proxies only.
 */
static bool
from_forwarded_for(const struct auth *a, const char *const *lines,
    size_t n_lines, char *out, size_t len)
{
	unsigned char addr[16];
	int family;

	while (n_lines-- > 0) {
		const char *s = lines[n_lines];
		size_t end = strlen(s), start;

		for (; end > 0; end = start > 0 ? start - 1 : 0) {
			for (start = end; start > 0 && s[start - 1] != ',';
			    start--)
				;
			if (blank(s + start, end - start))
				continue;
			if (!hop_parse(s + start, end - start, &family, addr))
				return false;
			if (!in_cidrs(a->trusted, a->n_trusted, family, addr)) {
				inet_ntop(family, addr, out, (socklen_t)len);
				return true;
			}
		}
	}
	return false;
}

bool
auth_peer_address(const struct auth *a, const struct sockaddr *peer,
    char *out, size_t len)
{
	peer_text(peer, out, len);
	return (peer != NULL && peer->sa_family == AF_UNIX) ||
	    in_list(a->trusted, a->n_trusted, out);
}

void
auth_forwarded_address(const struct auth *a, const char *const *forwarded_for,
    size_t n_forwarded_for, const char *real_ip, char *out, size_t len)
{
	unsigned char addr[16];
	int family;

	if (from_forwarded_for(a, forwarded_for, n_forwarded_for, out, len))
		return;
	/*
	 * Only in place of X-Forwarded-For: a proxy that writes that one
	 * (some write "address:port", which is no hop here) may pass a
	 * client's own X-Real-IP through.
	 */
	if (n_forwarded_for == 0 && real_ip != NULL &&
	    hop_parse(real_ip, strlen(real_ip), &family, addr))
		inet_ntop(family, addr, out, (socklen_t)len);
}

bool
auth_allowed(const struct auth *a, const char *addr)
{
	return a->n_allow == 0 || in_list(a->allow, a->n_allow, addr);
}

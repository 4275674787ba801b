/*
 * libFuzzer target for what auth.c reads of a client's headers: the
 * token (Authorization, X-Callhook-Token, ?token=), the Standard Webhooks
 * headers and their HMAC, and the client's address behind trusted
 * proxies (X-Forwarded-For, X-Real-IP) against the allow list. The
 * configuration is fixed: a token, a previous token, a whsec_ secret,
 * trusted proxies and an allow list.
 *
 * The input is a flags byte, then fields split at '\n': the token
 * presented, webhook-id, webhook-timestamp, webhook-signature, X-Real-IP,
 * the body, then the X-Forwarded-For lines. A field the input does not
 * reach is an absent header. Besides the sanitizers, the answers are
 * checked against what auth.h promises, worked out here another way:
 * the token after trailing blanks are dropped, the HMAC by OpenSSL's
 * one-shot HMAC(), the peer's address by inet_ntop() (one of eight, or
 * any IPv6 one made of X-Real-IP's bytes), the walk of X-Forwarded-For
 * from its right end.
 * A last pass loads the token field as an [auth] allow list: a list
 * that config_set() takes, auth_new() must take too, and each address
 * in it must be allowed.
 *
 *   tests/fuzz.sh builds and runs it (make fuzz).
 */

#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define NOW		1700000000
#define TOKEN		"s3cret-token"
#define PREVIOUS	"old-token"
/* base64 of "fuzz-secret-bytes-0123456789abcd" */
#define SECRET_B64	"ZnV6ei1zZWNyZXQtYnl0ZXMtMDEyMzQ1Njc4OWFiY2Q="
#define SECRET_RAW	"fuzz-secret-bytes-0123456789abcd"
#define TRUSTED		"10.0.0.0/8, 192.168.1.1, ::1, fd00::/8"
#define ALLOW		"10.0.0.0/8, 203.0.113.0/24, 2001:db8::/32, " \
			"::ffff:198.51.100.0/120"
#define FIELDS_MAX	32
#define FLAG_GOOD_SIG	0x01	/* append the right signature */
#define FLAG_NO_TOKEN	0x02	/* no token presented */
#define FLAG_RAW_PEER	0x08	/* the peer: IPv6, X-Real-IP's bytes */

static struct auth *fixed;

static void
setup(void)
{
	struct config cfg;
	char err[256];

	config_defaults(&cfg);
	if (config_set(&cfg, "auth", "token", TOKEN, err, sizeof(err)) != 0 ||
	    config_set(&cfg, "auth", "previous_token", PREVIOUS, err,
	    sizeof(err)) != 0 ||
	    config_set(&cfg, "auth", "hmac_secret", "whsec_" SECRET_B64, err,
	    sizeof(err)) != 0 ||
	    config_set(&cfg, "auth", "trusted_proxies", TRUSTED, err,
	    sizeof(err)) != 0 ||
	    config_set(&cfg, "auth", "allow", ALLOW, err, sizeof(err)) != 0 ||
	    auth_new(&fixed, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_auth: %s\n", err);
		abort();
	}
}

/* ---- the reference answers ---- */

/* The length up to the last byte that is not a blank. */
static size_t
without_trailing_blanks(const char *s)
{
	size_t n = 0;

	for (size_t i = 0; s[i] != '\0'; i++)
		if (s[i] != ' ' && s[i] != '\t')
			n = i + 1;
	return n;
}

static enum auth_token
token_want(const char *s)
{
	size_t n;

	if (s == NULL)
		return AUTH_TOKEN_NONE;
	n = without_trailing_blanks(s);
	if (n == strlen(TOKEN) && memcmp(s, TOKEN, n) == 0)
		return AUTH_TOKEN_CURRENT;
	if (n == strlen(PREVIOUS) && memcmp(s, PREVIOUS, n) == 0)
		return AUTH_TOKEN_PREVIOUS;
	return AUTH_TOKEN_NONE;
}

/* "v1," and base64(HMAC-SHA256(secret, id.ts.body)). */
static void
good_signature(const char *id, const char *ts, const char *body,
    size_t len, char *out)
{
	size_t il = strlen(id), tl = strlen(ts);
	unsigned char mac[32], *msg = malloc(il + tl + len + 3);
	unsigned maclen = 0;

	memcpy(msg, id, il);
	msg[il] = '.';
	memcpy(msg + il + 1, ts, tl);
	msg[il + 1 + tl] = '.';
	memcpy(msg + il + tl + 2, body, len);
	HMAC(EVP_sha256(), SECRET_RAW, (int)strlen(SECRET_RAW), msg,
	    il + tl + len + 2, mac, &maclen);
	free(msg);
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
}

/* Digits only, within the tolerance: what a sender should send. */
static bool
plain_timely(const char *ts)
{
	long long v = 0;

	if (*ts == '\0' || strspn(ts, "0123456789") != strlen(ts) ||
	    strlen(ts) > 18)
		return false;
	v = strtoll(ts, NULL, 10);
	return v >= NOW - AUTH_SIGNATURE_TOLERANCE &&
	    v <= NOW + AUTH_SIGNATURE_TOLERANCE;
}

static bool
has_element(const char *list, const char *want)
{
	size_t wl = strlen(want);

	for (const char *p = list; *p != '\0';) {
		size_t n = strcspn(p, " ");

		if (n == wl && memcmp(p, want, n) == 0)
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

struct addr {
	int		family;
	unsigned char	b[16];
};

static bool
parse_addr(const char *s, size_t n, struct addr *a)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
	char buf[128];

	while (n > 0 && isspace((unsigned char)*s))
		s++, n--;
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(a->b, 0, 16);
	if (inet_pton(AF_INET, buf, a->b) == 1) {
		a->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, a->b) != 1)
		return false;
	a->family = AF_INET6;
	if (memcmp(a->b, mapped, 12) == 0) {
		memmove(a->b, a->b + 12, 4);
		memset(a->b + 4, 0, 12);
		a->family = AF_INET;
	}
	return true;
}

/* TRUSTED, by hand. */
static bool
trusted(const struct addr *a)
{
	static const unsigned char one[16] = { [15] = 1 };

	if (a->family == AF_INET)
		return a->b[0] == 10 || (a->b[0] == 192 && a->b[1] == 168 &&
		    a->b[2] == 1 && a->b[3] == 1);
	return memcmp(a->b, one, 16) == 0 || a->b[0] == 0xfd;
}

/* ALLOW, by hand. */
static bool
allowed(const struct addr *a)
{
	if (a->family == AF_INET)
		return a->b[0] == 10 || (a->b[0] == 203 && a->b[1] == 0 &&
		    a->b[2] == 113) || (a->b[0] == 198 && a->b[1] == 51 &&
		    a->b[2] == 100);
	return a->b[0] == 0x20 && a->b[1] == 0x01 && a->b[2] == 0x0d &&
	    a->b[3] == 0xb8;
}

static void
addr_text(const struct addr *a, char *out, size_t len)
{
	inet_ntop(a->family, a->b, out, (socklen_t)len);
}

/*
 * auth_forwarded_address(), worked out on the lines joined by commas:
 * from the right, blanks skipped, the first untrusted address wins, and
 * anything else stops the walk.
 */
static void
forwarded_want(const char *const *lines, size_t n, const char *real_ip,
    char *out, size_t len)
{
	size_t total = 1, at = 0;
	char *joined;
	struct addr a;

	for (size_t i = 0; i < n; i++)
		total += strlen(lines[i]) + 1;
	joined = malloc(total);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(lines[i]);

		if (i > 0)
			joined[at++] = ',';
		memcpy(joined + at, lines[i], l);
		at += l;
	}
	joined[at] = '\0';
	for (size_t end = at; n > 0;) {
		size_t start = end;
		bool empty = true;

		while (start > 0 && joined[start - 1] != ',')
			start--;
		for (size_t i = start; i < end; i++)
			empty = empty && isspace((unsigned char)joined[i]);
		if (!empty) {
			if (!parse_addr(joined + start, end - start, &a))
				break;
			if (!trusted(&a)) {
				addr_text(&a, out, len);
				break;
			}
		}
		if (start == 0)
			break;
		end = start - 1;
	}
	free(joined);
	if (n == 0 && real_ip != NULL &&
	    parse_addr(real_ip, strlen(real_ip), &a))
		addr_text(&a, out, len);
}

/* ---- the checks ---- */

static void
check_token(const char *presented)
{
	enum auth_token got = auth_token_match(fixed, presented);

	if (got != token_want(presented) ||
	    auth_token_ok(fixed, presented) != (got != AUTH_TOKEN_NONE))
		__builtin_trap();
}

static void
check_signature(const char *id, const char *ts, const char *sigs,
    const char *body, size_t len, bool add_good)
{
	char good[64] = "", *with = NULL;
	enum auth_sig got, head;

	if (id != NULL && ts != NULL)
		good_signature(id, ts, body, len, good);
	if (add_good && sigs != NULL && good[0] != '\0') {
		size_t sl = strlen(sigs);

		with = malloc(sl + strlen(good) + 2);
		memcpy(with, sigs, sl);
		with[sl] = ' ';
		strcpy(with + sl + 1, good);
		sigs = with;
	}
	head = auth_signature_headers(id, ts, sigs, NOW);
	got = auth_check_signature(fixed, id, ts, sigs, body, len, NOW);
	if ((id == NULL || ts == NULL || sigs == NULL) !=
	    (head == AUTH_SIG_MISSING))
		__builtin_trap();
	/* What the headers decide, the whole check decides alike. */
	if (head != AUTH_SIG_OK && got != head)
		__builtin_trap();
	if (head == AUTH_SIG_OK && got != AUTH_SIG_OK && got != AUTH_SIG_BAD)
		__builtin_trap();
	/* Taken exactly when one element is the right signature. */
	if (head == AUTH_SIG_OK && (got == AUTH_SIG_OK) !=
	    has_element(sigs, good))
		__builtin_trap();
	if (ts != NULL && plain_timely(ts) && id != NULL && sigs != NULL &&
	    head != AUTH_SIG_OK)
		__builtin_trap();
	free(with);
}

/*
 * One of eight peers, or with FLAG_RAW_PEER an IPv6 one made of the
 * bytes of raw (IPv4-mapped among them, which is shown as IPv4).
 */
static const struct sockaddr *
peer_of(unsigned flags, const char *raw, struct sockaddr_storage *ss)
{
	static const char *const peers[] = { "10.1.2.3", "192.168.1.1",
	    "::1", "::ffff:10.0.0.1", "203.0.113.5", "8.8.8.8", "unix",
	    "2001:db8::1" };
	const char *p = peers[(flags >> 4) % 8];
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if ((flags & FLAG_RAW_PEER) && raw != NULL) {
		ss->ss_family = AF_INET6;
		memcpy(&s6->sin6_addr, raw, strnlen(raw, 16));
	} else if (strcmp(p, "unix") == 0)
		ss->ss_family = AF_UNIX;
	else if (inet_pton(AF_INET, p, &s4->sin_addr) == 1)
		ss->ss_family = AF_INET;
	else if (inet_pton(AF_INET6, p, &s6->sin6_addr) == 1)
		ss->ss_family = AF_INET6;
	return (const struct sockaddr *)ss;
}

/* What auth_peer_address() should write for peer. */
static void
peer_want(const struct sockaddr *peer, char *out, size_t len)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)peer;
	struct addr a = { .family = peer->sa_family };

	if (peer->sa_family == AF_UNIX) {
		snprintf(out, len, "unix");
		return;
	}
	if (peer->sa_family == AF_INET)
		memcpy(a.b, &((const struct sockaddr_in *)peer)->sin_addr, 4);
	else if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		a.family = AF_INET;
		memcpy(a.b, s6->sin6_addr.s6_addr + 12, 4);
	} else
		memcpy(a.b, &s6->sin6_addr, 16);
	addr_text(&a, out, len);
}

static void
check_address(unsigned flags, const char *const *lines, size_t n,
    const char *real_ip)
{
	struct sockaddr_storage ss;
	const struct sockaddr *peer = peer_of(flags, real_ip, &ss);
	char got[64], want[64];
	bool behind, is_trusted;
	struct addr a;

	behind = auth_peer_address(fixed, peer, got, sizeof(got));
	peer_want(peer, want, sizeof(want));
	if (strcmp(got, want) != 0)
		__builtin_trap();
	is_trusted = peer->sa_family == AF_UNIX ||
	    (parse_addr(got, strlen(got), &a) && trusted(&a));
	if (behind != is_trusted)
		__builtin_trap();
	if (!behind)
		return;
	memcpy(want, got, sizeof(want));
	auth_forwarded_address(fixed, lines, n, real_ip, got, sizeof(got));
	forwarded_want(lines, n, real_ip, want, sizeof(want));
	if (strcmp(got, want) != 0)
		__builtin_trap();
	if (strcmp(got, "unix") != 0 && auth_allowed(fixed, got) !=
	    (parse_addr(got, strlen(got), &a) && allowed(&a)))
		__builtin_trap();
}

/* Any text as an address to allow: false unless it is one allowed. */
static void
check_allowed_text(const char *s)
{
	struct addr a;
	bool want = parse_addr(s, strlen(s), &a) && allowed(&a);

	/* auth_allowed() takes no blanks around it: MHD trims them. */
	if (s[0] != '\0' && (isspace((unsigned char)s[0]) ||
	    isspace((unsigned char)s[strlen(s) - 1])))
		want = false;
	if (auth_allowed(fixed, s) != want)
		__builtin_trap();
}

/*
 * s as an allow list: one config_set() takes, auth_new() takes, and
 * allows each address in it.
 */
static void
check_allow_list(const char *s)
{
	struct config cfg;
	struct auth *a;
	char err[256], *copy, *tok, *save = NULL;

	config_defaults(&cfg);
	if (config_set(&cfg, "auth", "allow", s, err, sizeof(err)) != 0)
		return;
	if (auth_new(&a, &cfg, err, sizeof(err)) != 0)
		__builtin_trap();
	copy = strdup(s);
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *end;

		tok += strspn(tok, " \t\n\v\f\r");
		if ((end = strchr(tok, '/')) == NULL)
			end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char)end[-1]))
			end--;
		*end = '\0';
		if (*tok != '\0' && !auth_allowed(a, tok))
			__builtin_trap();
	}
	free(copy);
	auth_free(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *field[FIELDS_MAX];
	size_t nf = 0, body_len;
	unsigned flags;
	char *s, *p;

	if (fixed == NULL)
		setup();
	if (size < 1)
		return 0;
	flags = data[0];
	/* The fields are C strings, as header values are: up to a NUL. */
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	for (p = s; nf < FIELDS_MAX; p++) {
		field[nf++] = p;
		if ((p = strchr(p, '\n')) == NULL)
			break;
		*p = '\0';
	}
	for (size_t i = nf; i < FIELDS_MAX; i++)
		field[i] = NULL;
	check_token(flags & FLAG_NO_TOKEN ? NULL : field[0]);
	body_len = field[5] != NULL ? strlen(field[5]) : 0;
	check_signature(field[1], field[2], field[3],
	    field[5] != NULL ? field[5] : "", body_len,
	    (flags & FLAG_GOOD_SIG) != 0);
	check_address(flags, field + 6, nf > 6 ? nf - 6 : 0, field[4]);
	for (size_t i = 0; i < nf; i++)
		check_allowed_text(field[i]);
	if (field[0] != NULL)
		check_allow_list(field[0]);
	free(s);
	return 0;
}

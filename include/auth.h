#ifndef CALLHOOK_AUTH_H
#define CALLHOOK_AUTH_H

/*
 * Who may post: the shared token, Standard Webhooks signatures, the allow
 * list, and the real client address behind trusted proxies. A struct auth
 * is built from one configuration and never changes, so any thread may
 * read it; a reload builds a new one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct config;
struct sockaddr;
struct auth;

#define AUTH_SIGNATURE_TOLERANCE	300	/* seconds, either way */

/*
 * Build from cfg: the token comes from [auth] token, else the file named
 * by token_file (trailing newline stripped), else the CALLHOOKD_TOKEN
 * environment variable. Returns 0, or a negative errno with err naming
 * the cause (an unreadable token file, a bad secret).
 */
int	auth_new(struct auth **out, const struct config *cfg, char *err,
	    size_t errlen);
void	auth_free(struct auth *a);

/*
 * Read the token as auth_new() would, and forget it: what callhookd
 * checks before it touches the database. 0, or auth_new()'s error.
 */
int	auth_check_token(const struct config *cfg, char *err, size_t errlen);
/*
 * The same for [auth] previous_token(_file) alone, as if a token were
 * set: for callhookd -t when the token's own file is not there yet.
 */
int	auth_check_previous_token(const struct config *cfg, char *err,
	    size_t errlen);

bool	auth_requires_token(const struct auth *a);
bool	auth_requires_signature(const struct auth *a);

/*
 * True when presented equals the token or [auth] previous_token, compared
 * in constant time (all are hashed first, so not even the length leaks).
 * False for NULL.
 */
bool	auth_token_ok(const struct auth *a, const char *presented);

/* Which token presented is, the better last (see auth_token_ok()). */
enum auth_token {
	AUTH_TOKEN_NONE,
	AUTH_TOKEN_PREVIOUS,	/* [auth] previous_token */
	AUTH_TOKEN_CURRENT,
};
enum auth_token auth_token_match(const struct auth *a, const char *presented);

enum auth_sig {
	AUTH_SIG_OK,
	AUTH_SIG_MISSING,	/* a header is absent */
	AUTH_SIG_STALE,		/* timestamp outside the tolerance */
	AUTH_SIG_BAD,		/* no signature matches */
};

/*
 * Check the Standard Webhooks headers over the raw body: HMAC-SHA256 of
 * "id.timestamp.body" with the secret ("whsec_" + base64, or raw bytes),
 * against every "v1,<base64>" in the space-separated signature header.
 */
enum auth_sig auth_check_signature(const struct auth *a, const char *id,
	    const char *timestamp, const char *signatures, const char *body,
	    size_t len, time_t now);
/* The part of it the headers decide alone: present, and timely. */
enum auth_sig auth_signature_headers(const char *id, const char *timestamp,
	    const char *signatures, time_t now);

/*
 * The peer's address as text in out (IPv4-mapped shown as IPv4). True
 * when the peer is a trusted proxy or a unix socket: its forwarding
 * headers then name the client, see auth_forwarded_address().
 */
bool	auth_peer_address(const struct auth *a, const struct sockaddr *peer,
	    char *out, size_t len);

/*
 * Behind a trusted proxy, the client's address as text in out: the
 * nearest untrusted address in X-Forwarded-For, whose n_forwarded_for
 * lines (in the order received) are read as one list from the right,
 * else, when there is no X-Forwarded-For, the address in real_ip
 * (X-Real-IP; may be NULL). Neither naming one leaves out as it is: the
 * proxy's address.
 */
void	auth_forwarded_address(const struct auth *a,
	    const char *const *forwarded_for, size_t n_forwarded_for,
	    const char *real_ip, char *out, size_t len);

/* True when addr (text) is in the allow list, or the list is empty. */
bool	auth_allowed(const struct auth *a, const char *addr);

#endif

#ifndef CALLHOOK_CONFIG_H
#define CALLHOOK_CONFIG_H

/*
 * Configuration: the embedded defaults, the INI file, and command-line
 * overrides all go through config_set(), so every value is validated by
 * the same code wherever it came from.
 */

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_STR_MAX	1024
#define CONFIG_KEYS	20	/* the keys config.c knows */
#define CONFIG_SECRET_MAX	512	/* bytes of a decoded hmac_secret */

enum ack_mode { ACK_COMMIT, ACK_ENQUEUE };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

struct config {
	/* [http] */
	char		listen[CONFIG_STR_MAX];
	char		path[CONFIG_STR_MAX];
	size_t		max_body;		/* bytes */
	unsigned	timeout_ms;		/* idle connection timeout */
	unsigned	max_connections;
	/* [auth] */
	char		token[CONFIG_STR_MAX];
	char		token_file[CONFIG_STR_MAX];
	char		previous_token[CONFIG_STR_MAX];	/* also taken */
	char		previous_token_file[CONFIG_STR_MAX];
	char		hmac_secret[CONFIG_STR_MAX];
	char		allow[CONFIG_STR_MAX];
	char		trusted_proxies[CONFIG_STR_MAX];
	/* [store] */
	char		database[CONFIG_STR_MAX];
	enum ack_mode	ack;
	bool		sync_full;
	unsigned	queue;			/* events waiting for the writer */
	bool		fts;
	bool		strict;
	/* [log] */
	int		log_level;		/* LOG_ERROR .. LOG_DEBUG, log.h */
	enum log_format	log_format;
	/* The file's line that set each key, for messages: config_line(). */
	int		key_line[CONFIG_KEYS];
};

/*
 * Called once per error found while loading a file. line is 0 when the
 * error is not tied to a line (the file could not be opened).
 */
typedef void (*config_error_fn)(void *arg, const char *file, int line,
    const char *msg);

/* Fill cfg with the embedded defaults that SPEC section 2 documents. */
void	config_defaults(struct config *cfg);

/*
 * Set section.key to value, validating it. Returns 0, or -EINVAL with a
 * message naming the key and the expected form written to err.
 */
int	config_set(struct config *cfg, const char *section, const char *key,
	    const char *value, char *err, size_t errlen);

/*
 * The line of the file that set section.key in the last config_load()
 * into cfg, for a message about the value ("FILE:LINE: ..."); 0 when the
 * value is a default or config_set() gave it since.
 */
int	config_line(const struct config *cfg, const char *section,
	    const char *key);

/*
 * Read the INI file at path into cfg, on top of what cfg already holds.
 * Every error is reported through on_error with its line. Returns 0 when
 * the file is valid, else -EINVAL (or -errno when it cannot be read). On
 * error cfg may be partly updated: load into a scratch copy.
 */
int	config_load(struct config *cfg, const char *path,
	    config_error_fn on_error, void *arg);

/*
 * Cross-key checks that no single key can do (e.g. token and token_file
 * both set). Returns 0 or -EINVAL with err filled.
 */
int	config_validate(const struct config *cfg, char *err, size_t errlen);
/*
 * The memory that queued events may hold, and so may the bodies being
 * received: three bodies of max_body, at least 12 MB, so that a burst of
 * big bodies gets 503s instead of growing the daemon without bound (12 MB
 * with the default max_body: the peak RSS of make bench's ack = enqueue
 * rows, whose queue fills, is then about 28 MB).
 */
size_t	config_memory_budget(const struct config *cfg);

/* "4M" -> 4194304. K/M/G are powers of 1024. 0 or -EINVAL. */
int	config_parse_size(const char *s, size_t *out);
/* "30s" -> 30000. ms/s/m/h; a bare number is seconds. 0 or -EINVAL. */
int	config_parse_duration(const char *s, unsigned *out_ms);
/*
 * An hmac_secret to the key's bytes, at most CONFIG_SECRET_MAX of them
 * in out: "whsec_" then base64 is decoded (Standard Webhooks), anything
 * else is the bytes as written. 0 with *len set, -EINVAL (not base64) or
 * -E2BIG (too long).
 */
int	config_parse_secret(const char *s, unsigned char *out, size_t *len);

#endif

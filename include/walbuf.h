#ifndef CALLHOOK_WALBUF_H
#define CALLHOOK_WALBUF_H

/*
 * Register the VFS of walbuf.c (once, thread-safe) and return its name
 * for sqlite3_open_v2(), or NULL when the default VFS cannot be wrapped;
 * then open with the default one.
 */
const char	*walbuf_register(void);

#endif

#ifndef CALLHOOK_VERSION_H
#define CALLHOOK_VERSION_H

/*
 * The release, in one place for callhookd (--version, its start-up line,
 * /metrics' callhookd_build_info) and callhook (--version); the man pages
 * name it too. A build may set it: make CFLAGS+=-DCALLHOOKD_VERSION='"x"'.
 */
#ifndef CALLHOOKD_VERSION
#define CALLHOOKD_VERSION "0.1.0"
#endif

#endif

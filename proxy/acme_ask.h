/* acme_ask: a worker's side of the on-demand ACME channel: tells the master, over a pipe made before the
 * fork, which claimed host name without a certificate a client asked for; rate-limited, never blocks. */
#ifndef LIVERY_ACME_ASK_H
#define LIVERY_ACME_ASK_H

#include <stdint.h>

/* A name is asked for at most once per this interval by one worker. */
#define ACME_ASK_INTERVAL_MS 60000u
/* And a worker writes at most this many requests per second, whatever the names. */
#define ACME_ASK_PER_SECOND 10u
/* How many names a worker remembers for the interval (the oldest is forgotten first). */
#define ACME_ASK_NAMES 256u

/* The write end of the master's pipe (non-blocking), or -1 for none. */
void acme_ask_init(int fd);
/* Asks the master for name's certificate ("name\n", one atomic write), unless the limits
 * above say no or the pipe is full; the master checks the name against its configuration.
 * now_ms: the caller's loop time. */
void acme_ask(const char *name, uint64_t now_ms);

#endif

/* listener: listening sockets; the master binds them (listener_bind), a worker accepts on the ones it
 * inherits and hands each connection to a new session. */
#ifndef LIVERY_LISTENER_H
#define LIVERY_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "server.h"

struct listeners;

/* In the master: a bound, listening socket (SO_REUSEPORT, close-on-exec) for l. Returns its fd,
 * or -1 with a message in err. */
int listener_bind(const struct listener_cfg *l, char *err, size_t errlen);
/* Whether a and b name the same local address and port (so a reload keeps the socket). */
bool listener_same_address(const struct listener_cfg *a, const struct listener_cfg *b);

/* In a worker: accepts on fds[i] for srv->cfg->listeners[i]; takes the fds over (closing them
 * when closed, or at once on failure). NULL with a message in err on failure. */
struct listeners *listeners_open(struct server *srv, const int *fds, char *err, size_t errlen);
/* Stops accepting; the handles are freed once closed. */
void listeners_close(struct listeners *ls);

#endif

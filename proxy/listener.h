/* listener: bound listening sockets for one event loop; accepts connections and hands each to a new session.
 */
#ifndef LIVERY_LISTENER_H
#define LIVERY_LISTENER_H

#include <stddef.h>

#include "server.h"

struct listeners;

/* Binds every configured listener on srv->loop. NULL with a message in err on failure. */
struct listeners *listeners_open(struct server *srv, char *err, size_t errlen);
/* Stops accepting; the handles are freed once closed. */
void listeners_close(struct listeners *ls);

#endif

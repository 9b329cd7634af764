/* admin: the admin HTTP listener of one worker (GET /metrics, /healthz, /readyz), served by libmicrohttpd in
 * a thread of its own on the listening socket the master bound; it reads counters, it decides nothing. */
#ifndef LIVERY_ADMIN_H
#define LIVERY_ADMIN_H

#include <stddef.h>

#include "metrics.h"

struct admin;

/* Serves fd (a listening socket; the admin takes it over, closing it on failure). token: the
 * bearer token every request must carry, or NULL. NULL with a message in err on failure. */
struct admin *admin_start(int fd, const char *token, struct metrics *m, char *err, size_t errlen);
/* This worker stops accepting admin connections (a reload: the new generation answers). */
void admin_quiesce(struct admin *a);
/* livery is stopping: this worker keeps answering, /readyz with 503, until it exits. */
void admin_set_draining(struct admin *a);
/* Stops accepting, lets requests under way finish (up to 2 s), stops the thread and frees;
 * a NULL a is fine. */
void admin_stop(struct admin *a);

#endif

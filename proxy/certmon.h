/* certmon: the running daemon's certificate upkeep: watches the configured cert_dirs and warns once a day
 * about certificates near or past expiry. */
#ifndef LIVERY_CERTMON_H
#define LIVERY_CERTMON_H

#include <uv.h>

#include "certstore.h"
#include "config.h"

#define CERTMON_EXPIRY_INTERVAL_MS (24u * 3600u * 1000u)

struct certmon;

/* Starts on loop: the expiry warnings (now, then daily) and a watch of every cert_dir whose
 * changes call on_change(arg) (the master reloads). cs must outlive it. */
struct certmon *certmon_start(uv_loop_t *loop, const struct config *cfg, const struct certstore *cs,
                              void (*on_change)(void *arg), void *arg);
/* Closes its handles; it frees itself once they are closed. */
void certmon_stop(struct certmon *m);
/* For a loop that closed every handle itself (uv_walk) and has run since: frees the memory. */
void certmon_free_closed(struct certmon *m);

#endif

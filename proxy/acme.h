/* acme: the master's certificate orders: which tenant host names need a certificate (none yet, or one
 * expiring within renew_days), lego run for one name at a time (uv_spawn), the result installed into the
 * cert_dir (whose watcher then reloads), backoff after failures, and state.json for `livery check`. */
#ifndef LIVERY_ACME_H
#define LIVERY_ACME_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "certstore.h"
#include "config.h"

/* A lego run that takes longer than this is killed and counts as a failure. */
#define ACME_ORDER_TIMEOUT_MS (10u * 60u * 1000u)
/* Names are checked again at least this often, besides each reload. */
#define ACME_CHECK_INTERVAL_MS (3600u * 1000u)

struct acme;

struct metrics_shm;

/* Orders are counted in metrics. */
struct acme *acme_new(uv_loop_t *loop, struct metrics_shm *metrics);
/* The serving generation changed (start, reload, certificates changed): its names are checked
 * and those that need a certificate are ordered. cfg and cs must stay until the next call or
 * acme_stop. A cfg without acme stops ordering (a running order ends first). */
void acme_update(struct acme *a, const struct config *cfg, const struct certstore *cs, unsigned gen);
/* A worker asked for name (on demand): ordered first if a tenant claims it, it has no
 * certificate, and it is not backing off after a failure; anything else is ignored. */
void acme_request(struct acme *a, const char *name);
/* Bytes the workers wrote into the request pipe: "name\n" lines, each passed to
 * acme_request; longer lines than a host name are dropped. */
void acme_feed(struct acme *a, const char *data, size_t len);
/* The master reaped pid: true when it was lego (the order's outcome follows). */
bool acme_child_exited(struct acme *a, pid_t pid, int wstatus);
/* Stops ordering: a running lego is killed, the handles close. */
void acme_stop(struct acme *a);
/* After acme_stop and a loop run that closed the handles. */
void acme_free(struct acme *a);

#endif

/* pool: one worker's warm relay connections for local-mode tenants: authenticated, verified-TLS upstreams
 * kept per (region, TLS context, credential), lent to one session at a time, reset with RSET between
 * sessions, retired by age, message count, idle time or any error. */
#ifndef LIVERY_POOL_H
#define LIVERY_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "upstream.h"

struct pool;
struct pool_lease; /* a connection lent to a session */
struct metrics;

/* Why a connection left the pool; the names are the metrics' and logs' reasons. */
enum pool_retire {
	POOL_RETIRE_DIRTY,        /* its session ended with a transaction or reply open */
	POOL_RETIRE_ERROR,        /* it failed (lent or idle: the relay closed it, a timeout) */
	POOL_RETIRE_IDLE_TIMEOUT, /* idle longer than pool.idle_timeout */
	POOL_RETIRE_MAX_AGE,      /* older than pool.max_age */
	POOL_RETIRE_MAX_MESSAGES, /* carried pool.max_messages messages */
	POOL_RETIRE_FULL,         /* pool.max_idle idle connections of its key already */
	POOL_RETIRE_RSET,         /* the relay did not answer RSET with 250 */
	POOL_RETIRE_SHUTDOWN,     /* the worker drains */
	POOL_RETIRE_COUNT
};
const char *pool_retire_name(enum pool_retire r);

struct pool_stats {
	unsigned long long hits, misses, opened, reused, prewarmed;
	unsigned long long retired[POOL_RETIRE_COUNT];
	unsigned idle; /* now */
};

/* on_empty is called (from a libuv callback) when the pool is closing and its last
 * connection has closed. */
struct pool *pool_new(uv_loop_t *loop, const struct pool_cfg *cfg, struct metrics *metrics,
                      void (*on_empty)(void *arg), void *arg);
/* After the loop has ended (the sweep timer is closed by then, with every handle). */
void pool_free(struct pool *p);

/* A leg for a session: an idle connection of the same key (ready at once, rebound to ops and
 * owner), else a new upstream started with p. *lease is what pool_checkin takes back. */
struct upstream *pool_checkout(struct pool *pool, const struct upstream_params *p,
                               const struct upstream_ops *ops, void *owner, struct pool_lease **lease);
/* The session is done with its leg (and hears nothing more of it; its on_closed is not
 * called). clean: no transaction, reply or message content open, so RSET makes it reusable;
 * messages: how many the session sent on it. */
void pool_checkin(struct pool *pool, struct pool_lease *lease, bool clean, unsigned messages);
/* Opens connections until every key seen has pool.min_idle idle ones. */
void pool_prewarm(struct pool *pool, const struct upstream_params *p);
/* Closes the idle connections, and every lent one when it comes back; on_empty follows. */
void pool_close(struct pool *pool);
bool pool_is_empty(const struct pool *pool);
void pool_stats(const struct pool *pool, struct pool_stats *out);

#endif

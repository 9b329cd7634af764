/* quota_redis: the Redis backend of the sending limits: one connection per worker (hiredis on the worker's
 * libuv loop), reconnected with backoff; one atomic round trip (a Lua script) per check, bounded in time. */
#ifndef LIVERY_QUOTA_REDIS_H
#define LIVERY_QUOTA_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "quota_key.h"

struct quota_redis;

/* r: the outcome; over: the key that refused (QUOTA_OVER); why: what went wrong
 * (QUOTA_UNAVAILABLE), valid during the call. */
typedef void (*quota_redis_cb)(void *arg, enum quota_result r, size_t over, const char *why);

struct quota_redis *quota_redis_new(uv_loop_t *loop, const struct quota_url *url, unsigned timeout_ms);
/* Counts amount on every key if none would pass its limit (the keys expire ttl_s later):
 * cb comes once, from the loop. False when there is no connection to send it on (cb never
 * comes; *why says why, valid until the next call into r). */
bool quota_redis_check(struct quota_redis *r, const char *const *keys, const unsigned *limits, size_t n,
                       unsigned amount, unsigned ttl_s, quota_redis_cb cb, void *arg, const char **why);
/* Disconnects and frees r once its handles have closed. Checks still under way are answered
 * QUOTA_UNAVAILABLE from inside this call: their owner is the one closing. */
void quota_redis_close(struct quota_redis *r);

#endif

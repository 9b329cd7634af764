/* localauth: verifies local users' passwords (crypt(3) on libuv's thread pool, never on the loop) and
 * remembers recent successes for auth_cache_ttl, keyed by tenant, user and an HMAC of the password under a
 * per-process random key; one per worker. */
#ifndef LIVERY_LOCALAUTH_H
#define LIVERY_LOCALAUTH_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"

struct localauth;
struct localauth_req;

enum localauth_result {
	LOCALAUTH_OK,     /* the password matches */
	LOCALAUTH_CACHED, /* it matched within auth_cache_ttl: no hash computed */
	LOCALAUTH_FAILED, /* unknown user or wrong password (the two look the same from outside) */
};

/* Called from a libuv callback (never from inside localauth_verify), once, unless cancelled. */
typedef void (*localauth_cb)(void *owner, enum localauth_result result);

struct localauth *localauth_new(uv_loop_t *loop);
/* After the loop has run to its end (requests under way hold the localauth). */
void localauth_free(struct localauth *a);

/* Checks user's password against tenant t's users table. The password is copied (and wiped
 * after use); the caller may wipe its own copy at once. */
struct localauth_req *localauth_verify(struct localauth *a, const struct tenant_cfg *t, const char *user,
                                       const char *password, localauth_cb cb, void *owner);
/* The owner goes away: its callback is never called; the request frees itself. */
void localauth_cancel(struct localauth_req *r);

/* Counters since the worker started, for the logs and metrics. */
struct localauth_stats {
	unsigned long long hashed, cache_hits, ok, failed;
};
void localauth_stats(const struct localauth *a, struct localauth_stats *out);

#endif

/* quota: the sending-limit counters' API for a worker: asynchronous checks against the configured backend
 * (the instance's shared memory, or Redis), answered always on a later loop turn; reports backend failures
 * at most every 10 s per instance. */
#ifndef LIVERY_QUOTA_H
#define LIVERY_QUOTA_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "quota_key.h"
#include "quota_mem.h"

/* Counters one check may count at once (one per scope). */
#define QUOTA_MAX_KEYS QUOTA_NSCOPES

struct quota;
struct quota_op;

/* over: with QUOTA_OVER, the index of the key that refused. */
typedef void (*quota_cb)(void *arg, enum quota_result r, size_t over);

/* One check: count amount on every key, or on none if any would pass its limit. The keys
 * (made with quota_key for now_s's window) are copied. */
struct quota_req {
	const char *keys[QUOTA_MAX_KEYS];
	unsigned limits[QUOTA_MAX_KEYS];
	size_t n;
	unsigned amount;
	uint64_t now_s; /* Unix time of the check */
};

/* mem: the instance's shared memory (the memory backend's counters, and when a failure was
 * last reported), made by the master before the fork. */
struct quota *quota_new(uv_loop_t *loop, const struct sending_cfg *cfg, struct quota_mem *mem);
/* Starts a check; cb comes once, never from inside this call, unless quota_cancel. */
struct quota_op *quota_check(struct quota *q, const struct quota_req *req, quota_cb cb, void *arg);
/* cb will not come (its owner is going away); the check itself may still count. */
void quota_cancel(struct quota_op *op);
/* Closes the backend (checks under way are not answered) and frees q once its handles have
 * closed; call before the loop's handles are walked and closed. */
void quota_close(struct quota *q);

#endif

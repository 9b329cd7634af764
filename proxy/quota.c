/* quota: the sending-limit counters' API for a worker: asynchronous checks against the configured backend
 * (the instance's shared memory, or Redis), answered always on a later loop turn; reports backend failures
 * at most every 10 s per instance. */
#include "quota.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "quota_redis.h"
#include "util.h"

struct quota_op {
	struct quota *q;
	struct quota_op *next; /* in q->done */
	quota_cb cb;
	void *arg;
	enum quota_result result;
	size_t over;
	bool cancelled;
};

struct quota {
	uv_loop_t *loop;
	const struct sending_cfg *cfg;
	struct quota_mem *mem;
	struct quota_redis *redis; /* NULL: the memory backend */
	/* Answers waiting for the next loop turn, oldest first. */
	struct quota_op *done, **done_tail;
	uv_timer_t defer;
	unsigned unreported; /* checks without an answer since the last report */
	bool failing;        /* checks went unanswered since the last answer */
	bool closing;
};

/* Delivers the answers gathered before this turn; answers to checks started from these
 * callbacks wait for the next one. */
static void on_defer(uv_timer_t *t)
{
	struct quota *q = container_of(t, struct quota, defer);
	struct quota_op *op = q->done;

	q->done = NULL;
	q->done_tail = &q->done;
	while (op) {
		struct quota_op *next = op->next;
		if (!op->cancelled)
			op->cb(op->arg, op->result, op->over);
		free(op);
		op = next;
	}
}

/* A check with no answer: logged at most every QUOTA_MEM_REPORT_S across the instance's
 * workers, with how many this worker had since its last line. */
static void report(struct quota *q, const char *why)
{
	uint64_t now = (uint64_t)time(NULL);

	q->unreported++;
	if (!quota_mem_report_due(q->mem, now))
		return;
	log_warn("sending limits: %s; %u check%s without an answer in this worker, %s", why, q->unreported,
	         q->unreported == 1 ? "" : "s",
	         q->cfg->fail_closed ? "refused with 451 4.3.0 (redis_failure = closed)"
	                             : "accepted (redis_failure = open)");
	q->unreported = 0;
}

static void finish(struct quota_op *op, enum quota_result r, size_t over, const char *why)
{
	struct quota *q = op->q;

	op->result = r;
	op->over = over;
	if (r == QUOTA_UNAVAILABLE && !q->closing) {
		q->failing = true;
		report(q, why);
	} else if (r != QUOTA_UNAVAILABLE && q->failing) {
		q->failing = false;
		log_info("sending limits: the counters answer again (%u check%s without an answer not yet reported)",
		         q->unreported, q->unreported == 1 ? "" : "s");
		q->unreported = 0;
	}
	if (q->closing) { /* quota_close: nobody waits any more */
		free(op);
		return;
	}
	*q->done_tail = op;
	q->done_tail = &op->next;
	if (!uv_is_active((uv_handle_t *)&q->defer))
		uv_timer_start(&q->defer, on_defer, 0, 0);
}

static void on_redis(void *arg, enum quota_result r, size_t over, const char *why)
{
	finish(arg, r, over, why);
}

struct quota *quota_new(uv_loop_t *loop, const struct sending_cfg *cfg, struct quota_mem *mem)
{
	struct quota *q = xcalloc(1, sizeof(*q));

	q->loop = loop;
	q->cfg = cfg;
	q->mem = mem;
	q->done_tail = &q->done;
	uv_timer_init(loop, &q->defer);
	if (cfg->redis)
		q->redis = quota_redis_new(loop, &cfg->url, cfg->timeout_ms);
	return q;
}

struct quota_op *quota_check(struct quota *q, const struct quota_req *req, quota_cb cb, void *arg)
{
	struct quota_op *op = xcalloc(1, sizeof(*op));
	size_t over = 0;

	op->q = q;
	op->cb = cb;
	op->arg = arg;
	if (q->redis) {
		const char *why;
		if (!quota_redis_check(q->redis, req->keys, req->limits, req->n, req->amount,
		                       quota_window_ttl(req->now_s), on_redis, op, &why))
			finish(op, QUOTA_UNAVAILABLE, 0, why); /* answered on the next turn all the same */
		return op;
	}
	enum quota_result r = quota_mem_check(q->mem, req->keys, req->limits, req->n, req->amount,
	                                      quota_window(req->now_s), &over);
	finish(op, r, over, "the table of sending-limit counters is full");
	return op;
}

void quota_cancel(struct quota_op *op)
{
	if (op)
		op->cancelled = true;
}

static void on_closed(uv_handle_t *h)
{
	free(container_of((uv_timer_t *)h, struct quota, defer));
}

void quota_close(struct quota *q)
{
	if (!q)
		return;
	q->closing = true;
	if (q->redis)
		quota_redis_close(q->redis); /* answers what it had: finish frees those */
	for (struct quota_op *op = q->done, *next; op; op = next) {
		next = op->next;
		free(op);
	}
	uv_close((uv_handle_t *)&q->defer, on_closed);
}

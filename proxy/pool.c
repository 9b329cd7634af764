/* pool: one worker's warm relay connections for local-mode tenants: authenticated, verified-TLS upstreams
 * kept per (region, TLS context, credential), lent to one session at a time, reset with RSET between
 * sessions, retired by age, message count, idle time or any error. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define POOL_SWEEP_MS 1000

/* LENT: a session owns the upstream (its ops and owner); every other state: the pool does. */
enum pc_state { PC_LENT, PC_WARMING, PC_RESETTING, PC_IDLE, PC_CLOSING };

struct pool_lease {
	struct pool_lease *next, *prev; /* every connection of the pool, in any state */
	struct pool *pool;
	struct upstream *u;
	struct upstream_params params; /* its key, and how to open another like it */
	enum pc_state state;
	uint64_t born, idle_since; /* uv_now() */
	unsigned messages;
};

struct pool {
	uv_loop_t *loop;
	const struct pool_cfg *cfg;
	struct metrics *metrics; /* NULL: none */
	uv_timer_t sweep;
	struct pool_lease *conns;
	unsigned n;
	/* The keys pool_prewarm was asked for: kept at min_idle by the sweep. */
	struct upstream_params *keys;
	size_t nkeys;
	bool closing;
	void (*on_empty)(void *arg);
	void *arg;
	struct pool_stats st;
};

static const struct upstream_ops pool_ops;

const char *pool_retire_name(enum pool_retire r)
{
	static const char *const names[] = {
	        [POOL_RETIRE_DIRTY] = "dirty",
	        [POOL_RETIRE_ERROR] = "error",
	        [POOL_RETIRE_IDLE_TIMEOUT] = "idle_timeout",
	        [POOL_RETIRE_MAX_AGE] = "max_age",
	        [POOL_RETIRE_MAX_MESSAGES] = "max_messages",
	        [POOL_RETIRE_FULL] = "full",
	        [POOL_RETIRE_RSET] = "rset_refused",
	        [POOL_RETIRE_SHUTDOWN] = "shutdown",
	};
	return names[r];
}

/* Connections are only shared by sessions that would have opened the same one: same relays,
 * same TLS verification, same credential. */
static bool same_key(const struct upstream_params *a, const struct upstream_params *b)
{
	return a->tenant->region == b->tenant->region && a->ctx == b->ctx &&
	       a->tenant->skip_verification == b->tenant->skip_verification &&
	       a->tenant->require_tls == b->tenant->require_tls && strcmp(a->auth_user, b->auth_user) == 0 &&
	       strcmp(a->auth_password, b->auth_password) == 0;
}

/* Connections of p's key that are, or will be, idle. */
static unsigned count_spare(const struct pool *pool, const struct upstream_params *p)
{
	unsigned n = 0;

	for (const struct pool_lease *l = pool->conns; l; l = l->next)
		n += l->state != PC_LENT && l->state != PC_CLOSING && same_key(&l->params, p);
	return n;
}

static void count_retired(struct pool_lease *l, enum pool_retire why)
{
	l->pool->st.retired[why]++;
	metrics_pool_retired(l->pool->metrics, l->params.tenant, why);
	l->state = PC_CLOSING;
}

static void retire(struct pool_lease *l, enum pool_retire why)
{
	if (l->state == PC_CLOSING)
		return;
	log_debug("pool: relay connection retired (%s) after %u message%s", pool_retire_name(why),
	          l->messages, l->messages == 1 ? "" : "s");
	count_retired(l, why);
	upstream_close(l->u, upstream_is_ready(l->u)); /* on_closed frees l */
}

static struct pool_lease *lease_new(struct pool *pool, const struct upstream_params *p, enum pc_state state)
{
	struct pool_lease *l = xcalloc(1, sizeof(*l));

	l->pool = pool;
	l->params = *p;
	l->params.log_id = "pool";
	l->state = state;
	l->born = uv_now(pool->loop);
	l->next = pool->conns;
	if (l->next)
		l->next->prev = l;
	pool->conns = l;
	pool->n++;
	pool->st.opened++;
	metrics_pool_opened(pool->metrics, p->tenant);
	return l;
}

static void set_idle(struct pool_lease *l)
{
	l->state = PC_IDLE;
	l->idle_since = uv_now(l->pool->loop);
}

/* ---- the pool as the owner of its connections ---- */

static void pc_on_ready(void *owner)
{
	struct pool_lease *l = owner;

	if (l->state == PC_WARMING)
		set_idle(l);
}

static void pc_on_reply(void *owner, const struct smtp_reply *r)
{
	struct pool_lease *l = owner;

	if (l->state == PC_RESETTING && r->code == 250 && upstream_awaiting(l->u) == 0)
		set_idle(l);
	else if (l->state == PC_RESETTING)
		retire(l, POOL_RETIRE_RSET);
	else
		retire(l, POOL_RETIRE_ERROR); /* a reply nobody asked for */
}

/* The upstream closes itself after this; on_closed follows. */
static void pc_on_failed(void *owner, const char *why)
{
	struct pool_lease *l = owner;

	log_info("pool: relay connection dropped while %s: %s", l->state == PC_IDLE ? "idle" : "not lent",
	         why);
	if (l->state != PC_CLOSING)
		count_retired(l, POOL_RETIRE_ERROR);
}

static void pc_on_drain(void *owner)
{
	(void)owner;
}

static void pc_on_closed(void *owner)
{
	struct pool_lease *l = owner;
	struct pool *pool = l->pool;

	if (l->prev)
		l->prev->next = l->next;
	else
		pool->conns = l->next;
	if (l->next)
		l->next->prev = l->prev;
	pool->n--;
	free(l);
	if (pool->closing && pool->n == 0 && pool->on_empty)
		pool->on_empty(pool->arg);
}

static const struct upstream_ops pool_ops = {
        .on_ready = pc_on_ready,
        .on_reply = pc_on_reply,
        .on_failed = pc_on_failed,
        .on_drain = pc_on_drain,
        .on_closed = pc_on_closed,
};

/* ---- idle connections age ---- */

static void top_up(struct pool *pool, const struct upstream_params *p);

/* Once a second: idle connections age out, and pre-warmed keys are topped up again (after a
 * retirement, or a relay that was down: at most min_idle attempts a second per key). */
static void on_sweep(uv_timer_t *t)
{
	struct pool *pool = container_of(t, struct pool, sweep);
	uint64_t now = uv_now(pool->loop);

	for (size_t i = 0; i < pool->nkeys; i++)
		top_up(pool, &pool->keys[i]);
	for (struct pool_lease *l = pool->conns, *next; l; l = next) {
		next = l->next; /* retire does not free l now: on_closed comes on a later turn */
		if (l->state == PC_IDLE && now - l->idle_since >= pool->cfg->idle_timeout_ms)
			retire(l, POOL_RETIRE_IDLE_TIMEOUT);
		else if (l->state == PC_IDLE && now - l->born >= pool->cfg->max_age_ms)
			retire(l, POOL_RETIRE_MAX_AGE);
	}
}

struct pool *pool_new(uv_loop_t *loop, const struct pool_cfg *cfg, struct metrics *metrics,
                      void (*on_empty)(void *arg), void *arg)
{
	struct pool *p = xcalloc(1, sizeof(*p));

	p->loop = loop;
	p->cfg = cfg;
	p->metrics = metrics;
	p->on_empty = on_empty;
	p->arg = arg;
	uv_timer_init(loop, &p->sweep);
	uv_timer_start(&p->sweep, on_sweep, POOL_SWEEP_MS, POOL_SWEEP_MS);
	uv_unref((uv_handle_t *)&p->sweep); /* the sweep alone does not keep a worker alive */
	return p;
}

void pool_free(struct pool *p)
{
	if (p)
		free(p->keys);
	free(p);
}

/* ---- lending ---- */

/* An idle connection of p's key that is young enough; the too old ones found on the way go. */
static struct pool_lease *find_idle(struct pool *pool, const struct upstream_params *p)
{
	uint64_t now = uv_now(pool->loop);

	for (struct pool_lease *l = pool->conns; l; l = l->next) {
		if (l->state != PC_IDLE || !same_key(&l->params, p))
			continue;
		if (now - l->born < pool->cfg->max_age_ms)
			return l;
		retire(l, POOL_RETIRE_MAX_AGE);
	}
	return NULL;
}

struct upstream *pool_checkout(struct pool *pool, const struct upstream_params *p,
                               const struct upstream_ops *ops, void *owner, struct pool_lease **lease)
{
	struct pool_lease *l = pool->closing ? NULL : find_idle(pool, p);

	metrics_pool_checkout(pool->metrics, p->tenant, l != NULL);
	if (l) {
		pool->st.hits++;
		pool->st.reused++;
		l->state = PC_LENT;
		upstream_rebind(l->u, ops, owner, p->log_id);
		upstream_set_reused(l->u);
		upstream_set_reply_timeout(l->u, p->reply_timeout_ms);
		pool_prewarm(pool, p); /* replaces what was taken, when min_idle asks for it */
	} else {
		pool->st.misses++;
		l = lease_new(pool, p, PC_LENT);
		l->u = upstream_start(p, ops, owner); /* reports nothing before it returns */
	}
	*lease = l;
	return l->u;
}

/* Why a connection coming back cannot stay, or POOL_RETIRE_COUNT when it can. */
static enum pool_retire checkin_verdict(const struct pool_lease *l, bool clean)
{
	const struct pool *pool = l->pool;

	if (pool->closing)
		return POOL_RETIRE_SHUTDOWN;
	if (upstream_is_dead(l->u))
		return POOL_RETIRE_ERROR;
	if (!clean)
		return POOL_RETIRE_DIRTY;
	if (l->messages >= pool->cfg->max_messages)
		return POOL_RETIRE_MAX_MESSAGES;
	if (uv_now(pool->loop) - l->born >= pool->cfg->max_age_ms)
		return POOL_RETIRE_MAX_AGE;
	if (count_spare(pool, &l->params) >= pool->cfg->max_idle)
		return POOL_RETIRE_FULL;
	return POOL_RETIRE_COUNT;
}

void pool_checkin(struct pool *pool, struct pool_lease *l, bool clean, unsigned messages)
{
	(void)pool;
	l->messages += messages;
	upstream_rebind(l->u, &pool_ops, l, "pool");
	enum pool_retire why = checkin_verdict(l, clean);
	if (why != POOL_RETIRE_COUNT)
		return retire(l, why);
	upstream_resume(l->u);
	if (!upstream_is_ready(l->u)) {
		l->state = PC_WARMING; /* its session left before it was ready: it still will be */
		return;
	}
	/* Whatever the last session did, the next starts without a transaction. */
	l->state = PC_RESETTING;
	upstream_set_reply_timeout(l->u, l->params.setup_timeout_ms);
	upstream_send(l->u, "RSET\r\n", 6, 1);
}

static void top_up(struct pool *pool, const struct upstream_params *p)
{
	if (pool->closing)
		return;
	for (unsigned n = count_spare(pool, p); n < pool->cfg->min_idle; n++) {
		struct pool_lease *l = lease_new(pool, p, PC_WARMING);
		pool->st.prewarmed++;
		l->u = upstream_start(&l->params, &pool_ops, l);
	}
}

void pool_prewarm(struct pool *pool, const struct upstream_params *p)
{
	size_t i = 0;

	if (pool->cfg->min_idle == 0)
		return;
	while (i < pool->nkeys && !same_key(&pool->keys[i], p))
		i++;
	if (i == pool->nkeys) {
		pool->keys = xrealloc(pool->keys, (pool->nkeys + 1) * sizeof(*pool->keys));
		pool->keys[pool->nkeys++] = *p;
		pool->keys[i].log_id = "pool";
	}
	top_up(pool, p);
}

void pool_close(struct pool *pool)
{
	pool->closing = true;
	uv_timer_stop(&pool->sweep);
	for (struct pool_lease *l = pool->conns; l; l = l->next) {
		if (l->state != PC_LENT)
			retire(l, POOL_RETIRE_SHUTDOWN);
	}
}

bool pool_is_empty(const struct pool *pool)
{
	return !pool || pool->n == 0;
}

void pool_stats(const struct pool *pool, struct pool_stats *out)
{
	*out = pool->st;
	out->idle = 0;
	for (const struct pool_lease *l = pool->conns; l; l = l->next)
		out->idle += l->state == PC_IDLE;
}

/* quota_redis: the Redis backend of the sending limits: one connection per worker (hiredis on the worker's
 * libuv loop), reconnected with backoff; one atomic round trip (a Lua script) per check, bounded in time. */
#include "quota_redis.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* Checks every key first and counts only when all are within their limits, so that a
 * refused check costs no budget; INCRBY then EXPIRE on a key's first count in its window.
 * A script runs atomically: two instances checking at once cannot both take the last unit.
 * ARGV: amount, ttl, then one limit per key. Answers 0, or the (1-based) key that refused. */
static const char script[] =
        "local n = tonumber(ARGV[1])\n"
        "for i = 1, #KEYS do\n"
        "  if (tonumber(redis.call('GET', KEYS[i])) or 0) + n > tonumber(ARGV[i + 2]) then return i end\n"
        "end\n"
        "for i = 1, #KEYS do\n"
        "  if redis.call('INCRBY', KEYS[i], n) == n then redis.call('EXPIRE', KEYS[i], ARGV[2]) end\n"
        "end\n"
        "return 0\n";

/* A check on its way: replies come in order, so the oldest is at the head. */
struct req {
	struct quota_redis *r;
	struct req *next, *prev;
	quota_redis_cb cb;
	void *arg;
	uint64_t deadline; /* uv_now() */
};

struct quota_redis {
	uv_loop_t *loop;
	struct quota_url url;
	unsigned timeout_ms;
	redisAsyncContext *ac; /* NULL: none (a reconnect is due) */
	uv_timer_t reconnect, timeout;
	unsigned backoff_ms;
	struct req *head, *tail;
	char why[512]; /* why the last connection went */
	int open_handles;
	bool connected_once;
	bool closing;
};

static void connect_now(struct quota_redis *r);

static void on_reconnect(uv_timer_t *t)
{
	connect_now(container_of(t, struct quota_redis, reconnect));
}

static void drop(struct quota_redis *r, struct req *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		r->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		r->tail = q->prev;
}

static void on_timeout(uv_timer_t *t);

static void schedule_timeout(struct quota_redis *r)
{
	if (!r->head || r->closing) {
		uv_timer_stop(&r->timeout);
		return;
	}
	uint64_t now = uv_now(r->loop);
	uv_timer_start(&r->timeout, on_timeout, r->head->deadline > now ? r->head->deadline - now : 0, 0);
}

static void schedule_reconnect(struct quota_redis *r)
{
	if (r->closing)
		return;
	uv_timer_start(&r->reconnect, on_reconnect, r->backoff_ms, 0);
	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct req *q = privdata;
	struct quota_redis *r = q->r;
	const redisReply *rep = reply;
	char why[600];

	drop(r, q);
	if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) {
		/* Only a working Redis resets the backoff: one that accepts connections and then
		 * refuses (a wrong password) is not reconnected to ten times a second. */
		r->backoff_ms = BACKOFF_MIN_MS;
		q->cb(q->arg, rep->integer == 0 ? QUOTA_OK : QUOTA_OVER, rep->integer ? (size_t)rep->integer - 1 : 0, NULL);
	} else {
		if (rep && rep->type == REDIS_REPLY_ERROR)
			snprintf(why, sizeof(why), "Redis answered: %.300s", rep->str);
		else
			snprintf(why, sizeof(why), "%s", r->why[0] ? r->why : "Redis connection lost");
		q->cb(q->arg, QUOTA_UNAVAILABLE, 0, why);
	}
	free(q);
	schedule_timeout(r);
}

/* AUTH and SELECT, sent first on each connection: a refusal ends the connection (the
 * checks behind them fail), and says why without the password. */
static void setup_reply(redisAsyncContext *ac, const redisReply *rep, struct quota_redis *r, const char *what)
{
	if (!rep || rep->type != REDIS_REPLY_ERROR || r->closing || ac != r->ac || r->why[0])
		return; /* the first refusal says why (a SELECT after a refused AUTH says NOAUTH) */
	snprintf(r->why, sizeof(r->why), "Redis refused %s: %.100s", what, rep->str);
	redisAsyncDisconnect(ac);
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	setup_reply(ac, reply, privdata, "AUTH");
}

static void on_select_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	setup_reply(ac, reply, privdata, "SELECT");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct quota_redis *r = ac->data;

	if (ac != r->ac)
		return;
	if (status == REDIS_OK) {
		/* Outages are reported by quota.c, rate-limited; reconnections are not news. */
		if (r->connected_once)
			log_debug("sending limits: reconnected to Redis %s port %d", r->url.host, r->url.port);
		else
			log_info("sending limits: connected to Redis %s port %d", r->url.host, r->url.port);
		r->connected_once = true;
		r->why[0] = '\0';
		return;
	}
	/* hiredis frees the context after this, answering the checks queued on it. */
	snprintf(r->why, sizeof(r->why), "cannot connect to Redis %s port %d: %s", r->url.host, r->url.port, ac->errstr);
	r->ac = NULL;
	schedule_reconnect(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct quota_redis *r = ac->data;

	if (ac != r->ac)
		return;
	if (status != REDIS_OK || !r->why[0])
		snprintf(r->why, sizeof(r->why), "lost the connection to Redis %s port %d: %s", r->url.host, r->url.port,
		         status == REDIS_OK ? "closed" : ac->errstr);
	r->ac = NULL;
	schedule_reconnect(r);
}

static void send_setup(struct quota_redis *r)
{
	char db[16];

	if (r->url.password[0] && r->url.user[0])
		redisAsyncCommand(r->ac, on_auth_reply, r, "AUTH %s %s", r->url.user, r->url.password);
	else if (r->url.password[0])
		redisAsyncCommand(r->ac, on_auth_reply, r, "AUTH %s", r->url.password);
	if (r->url.db) {
		snprintf(db, sizeof(db), "%u", r->url.db);
		redisAsyncCommand(r->ac, on_select_reply, r, "SELECT %s", db);
	}
}

static void connect_now(struct quota_redis *r)
{
	redisAsyncContext *ac = redisAsyncConnect(r->url.host, r->url.port);

	if (!ac || ac->err || redisLibuvAttach(ac, r->loop) != REDIS_OK) {
		snprintf(r->why, sizeof(r->why), "cannot connect to Redis %s port %d: %s", r->url.host, r->url.port,
		         ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		schedule_reconnect(r);
		return;
	}
	ac->data = r;
	r->ac = ac;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	send_setup(r); /* queued now, sent first once connected */
}

/* The oldest check got no answer in time: Redis is taken as unreachable. Replies come in
 * order, so every later check is stuck behind it: the connection is dropped (which answers
 * them all) and made again. */
static void on_timeout(uv_timer_t *t)
{
	struct quota_redis *r = container_of(t, struct quota_redis, timeout);
	redisAsyncContext *ac = r->ac;

	if (!r->head || r->head->deadline > uv_now(r->loop)) {
		schedule_timeout(r);
		return;
	}
	snprintf(r->why, sizeof(r->why), "no answer from Redis %s port %d within %u ms", r->url.host, r->url.port,
	         r->timeout_ms);
	r->ac = NULL;
	if (ac)
		redisAsyncFree(ac); /* answers every check on it (on_reply) */
	schedule_reconnect(r);
}

struct quota_redis *quota_redis_new(uv_loop_t *loop, const struct quota_url *url, unsigned timeout_ms)
{
	struct quota_redis *r = xcalloc(1, sizeof(*r));

	r->loop = loop;
	r->url = *url;
	r->timeout_ms = timeout_ms;
	r->backoff_ms = BACKOFF_MIN_MS;
	uv_timer_init(loop, &r->reconnect);
	uv_timer_init(loop, &r->timeout);
	r->open_handles = 2;
	connect_now(r);
	return r;
}

bool quota_redis_check(struct quota_redis *r, const char *const *keys, const unsigned *limits, size_t n,
                       unsigned amount, unsigned ttl_s, quota_redis_cb cb, void *arg, const char **why)
{
	const char *argv[5 + 2 * 8]; /* EVAL script numkeys keys.. amount ttl limits.. */
	size_t lens[ARRAY_LEN(argv)];
	char nums[3 + 8][16];
	size_t argc = 0;

	if (!r->ac || n > 8) {
		*why = r->why[0] ? r->why : "not connected to Redis";
		return false;
	}
	argv[argc++] = "EVAL";
	argv[argc++] = script;
	snprintf(nums[0], sizeof(nums[0]), "%zu", n);
	argv[argc++] = nums[0];
	for (size_t i = 0; i < n; i++)
		argv[argc++] = keys[i];
	snprintf(nums[1], sizeof(nums[1]), "%u", amount);
	argv[argc++] = nums[1];
	snprintf(nums[2], sizeof(nums[2]), "%u", ttl_s);
	argv[argc++] = nums[2];
	for (size_t i = 0; i < n; i++) {
		snprintf(nums[3 + i], sizeof(nums[0]), "%u", limits[i]);
		argv[argc++] = nums[3 + i];
	}
	for (size_t i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	struct req *q = xcalloc(1, sizeof(*q));
	*q = (struct req){.r = r, .prev = r->tail, .cb = cb, .arg = arg, .deadline = uv_now(r->loop) + r->timeout_ms};
	if (r->tail)
		r->tail->next = q;
	else
		r->head = q;
	r->tail = q;
	if (redisAsyncCommandArgv(r->ac, on_reply, q, (int)argc, argv, lens) != REDIS_OK) {
		drop(r, q);
		free(q);
		*why = r->why[0] ? r->why : "the Redis connection is closing";
		return false;
	}
	if (q == r->head)
		schedule_timeout(r);
	return true;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct quota_redis *r = h->data;

	if (--r->open_handles == 0)
		free(r);
}

void quota_redis_close(struct quota_redis *r)
{
	redisAsyncContext *ac = r->ac;

	r->closing = true;
	snprintf(r->why, sizeof(r->why), "shutting down");
	r->ac = NULL;
	if (ac)
		redisAsyncFree(ac); /* answers every check still on it */
	r->reconnect.data = r->timeout.data = r;
	uv_close((uv_handle_t *)&r->reconnect, on_handle_closed);
	uv_close((uv_handle_t *)&r->timeout, on_handle_closed);
}

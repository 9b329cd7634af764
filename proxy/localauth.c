/* localauth: verifies local users' passwords (crypt(3) on libuv's thread pool, never on the loop) and
 * remembers recent successes for auth_cache_ttl, keyed by tenant, user and an HMAC of the password under a
 * per-process random key; one per worker. */
#include "localauth.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "sasl.h"
#include "users.h"
#include "util.h"

#define CACHE_SLOTS 1024
#define MAC_LEN     32

/* Checked for a user the table does not know, when the table is empty: no user is known then,
 * so its cost does not matter. Not the hash of any password anyone uses. */
static const char decoy_hash[] = "$6$VdH.39a57gJcn.wx$lydwlz6ia.fneF3SU07Uaz0D2LZ3oXjsl."
                                 "7x8IRDkpdDWSpaGrvpyuRQJlJE4vPKZC5DavEIuJYrg7WedLHd01";

struct cache_entry {
	const struct tenant_cfg *tenant; /* NULL: a free slot */
	char user[SASL_FIELD_MAX + 1];
	unsigned char mac[MAC_LEN];
	uint64_t expires; /* uv_now() */
};

struct localauth {
	uv_loop_t *loop;
	unsigned char key[MAC_LEN];
	struct cache_entry *cache; /* CACHE_SLOTS */
	struct localauth_stats stats;
	/* Answers that need no hash (cache hits) go out from here, on the next loop turn, without
	 * a round trip through the thread pool. */
	uv_idle_t deliver;
	struct localauth_req *ready;
	struct localauth_req *hashing; /* requests on the thread pool, for single flight */
};

struct localauth_req {
	uv_work_t work;
	struct localauth_req *next;      /* in a->ready, a->hashing or a leader's followers */
	struct localauth_req *followers; /* the same user and password asked meanwhile */
	enum localauth_result result;
	struct localauth *a;
	const struct tenant_cfg *tenant;
	localauth_cb cb;
	void *owner; /* NULL once cancelled */
	const char *hash;
	bool known, ok;
	char user[SASL_FIELD_MAX + 1];
	char password[SASL_FIELD_MAX + 1];
	unsigned char mac[MAC_LEN];
};

/* Compares all n octets whatever the first difference, so timing does not tell where it is. */
static bool equal_ct(const unsigned char *x, const unsigned char *y, size_t n)
{
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

static bool strings_equal_ct(const char *x, const char *y)
{
	size_t n = strlen(x);

	return n == strlen(y) && equal_ct((const unsigned char *)x, (const unsigned char *)y, n);
}

struct localauth *localauth_new(uv_loop_t *loop)
{
	struct localauth *a = xcalloc(1, sizeof(*a));

	a->loop = loop;
	a->cache = xcalloc(CACHE_SLOTS, sizeof(*a->cache));
	uv_idle_init(loop, &a->deliver); /* closed with the loop's other handles */
	if (getrandom(a->key, sizeof(a->key), 0) != (ssize_t)sizeof(a->key))
		abort(); /* no randomness at all: nothing safe to do */
	return a;
}

void localauth_free(struct localauth *a)
{
	if (!a)
		return;
	/* Answers still waiting for a loop turn that never came (the loop ended first). */
	for (struct localauth_req *r = a->ready, *next; r; r = next) {
		next = r->next;
		explicit_bzero(r, sizeof(*r));
		free(r);
	}
	explicit_bzero(a->cache, CACHE_SLOTS * sizeof(*a->cache));
	explicit_bzero(a->key, sizeof(a->key));
	free(a->cache);
	free(a);
}

/* HMAC-SHA256(key, user NUL password): what the cache keeps instead of the password. */
static void password_mac(const struct localauth *a, struct localauth_req *r)
{
	Hmac h;

	if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0 ||
	    wc_HmacSetKey(&h, WC_SHA256, a->key, sizeof(a->key)) != 0 ||
	    wc_HmacUpdate(&h, (const byte *)r->user, (word32)strlen(r->user) + 1) != 0 ||
	    wc_HmacUpdate(&h, (const byte *)r->password, (word32)strlen(r->password)) != 0 ||
	    wc_HmacFinal(&h, r->mac) != 0)
		abort(); /* broken invariant: SHA-256 HMAC is always built in */
	wc_HmacFree(&h);
}

static struct cache_entry *cache_find(struct localauth *a, const struct localauth_req *r)
{
	uint64_t now = uv_now(a->loop);

	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		struct cache_entry *e = &a->cache[i];
		if (e->tenant == r->tenant && e->expires > now && strcmp(e->user, r->user) == 0)
			return e;
	}
	return NULL;
}

/* The user's own slot, else a free or expired one, else the one that expires first. */
static void cache_put(struct localauth *a, const struct localauth_req *r)
{
	struct cache_entry *victim = cache_find(a, r);
	uint64_t now = uv_now(a->loop);

	for (size_t i = 0; !victim && i < CACHE_SLOTS; i++) {
		if (!a->cache[i].tenant || a->cache[i].expires <= now)
			victim = &a->cache[i];
	}
	if (!victim) {
		victim = &a->cache[0];
		for (size_t i = 1; i < CACHE_SLOTS; i++)
			victim = a->cache[i].expires < victim->expires ? &a->cache[i] : victim;
	}
	victim->tenant = r->tenant;
	snprintf(victim->user, sizeof(victim->user), "%s", r->user);
	memcpy(victim->mac, r->mac, MAC_LEN);
	victim->expires = now + r->tenant->auth.cache_ttl_ms;
}

/* On a thread-pool thread: only the request is touched. */
static void verify_work(uv_work_t *w)
{
	struct localauth_req *r = container_of(w, struct localauth_req, work);

	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *out = crypt_rn(r->password, r->hash, cd, (int)sizeof(*cd));
	r->ok = r->known && out && out[0] != '*' && strings_equal_ct(out, r->hash);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
}

/* The answer goes to the owner (unless it cancelled), and the request away. */
static void deliver(struct localauth_req *r, enum localauth_result res)
{
	struct localauth *a = r->a;

	a->stats.cache_hits += res == LOCALAUTH_CACHED;
	a->stats.ok += res != LOCALAUTH_FAILED;
	a->stats.failed += res == LOCALAUTH_FAILED;
	if (r->owner)
		r->cb(r->owner, res);
	explicit_bzero(r, sizeof(*r));
	free(r);
}

static void unlink_hashing(struct localauth *a, struct localauth_req *r)
{
	for (struct localauth_req **p = &a->hashing; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			return;
		}
	}
}

static void verify_done(uv_work_t *w, int status)
{
	struct localauth_req *r = container_of(w, struct localauth_req, work);
	struct localauth *a = r->a;
	enum localauth_result res = status == 0 && r->ok ? LOCALAUTH_OK : LOCALAUTH_FAILED;

	unlink_hashing(a, r);
	a->stats.hashed += status == 0;
	if (res == LOCALAUTH_OK && r->tenant->auth.cache_ttl_ms > 0)
		cache_put(a, r);
	for (struct localauth_req *f = r->followers, *next; f; f = next) {
		next = f->next;
		deliver(f, res == LOCALAUTH_OK ? LOCALAUTH_CACHED : LOCALAUTH_FAILED);
	}
	deliver(r, res);
}

static void on_deliver(uv_idle_t *h)
{
	struct localauth *a = container_of(h, struct localauth, deliver);
	struct localauth_req *list = a->ready;

	uv_idle_stop(h);
	a->ready = NULL;
	for (struct localauth_req *next; list; list = next) {
		next = list->next;
		deliver(list, list->result);
	}
}

/* The same user with the same password already on the thread pool: its answer will do. */
static struct localauth_req *same_flight(const struct localauth *a, const struct localauth_req *r)
{
	for (struct localauth_req *h = a->hashing; h; h = h->next) {
		if (h->tenant == r->tenant && strcmp(h->user, r->user) == 0 &&
		    equal_ct(h->mac, r->mac, MAC_LEN))
			return h;
	}
	return NULL;
}

struct localauth_req *localauth_verify(struct localauth *a, const struct tenant_cfg *t, const char *user,
                                       const char *password, localauth_cb cb, void *owner)
{
	struct localauth_req *r = xcalloc(1, sizeof(*r));
	const struct users *users = t->auth.users;

	r->a = a;
	r->tenant = t->origin ? t->origin : t;
	r->cb = cb;
	r->owner = owner;
	snprintf(r->user, sizeof(r->user), "%s", user);
	snprintf(r->password, sizeof(r->password), "%s", password);
	r->hash = users_find(users, user);
	r->known = r->hash != NULL;
	if (!r->known) /* an unknown user costs a hash too: no enumeration by timing */
		r->hash = users_decoy(users) ? users_decoy(users) : decoy_hash;
	password_mac(a, r);
	const struct cache_entry *e = r->known ? cache_find(a, r) : NULL;
	struct localauth_req *leader = r->known && !e ? same_flight(a, r) : NULL;
	if (e && equal_ct(e->mac, r->mac, MAC_LEN)) {
		/* Answered on the next loop turn, never from inside this call. */
		r->result = LOCALAUTH_CACHED;
		r->next = a->ready;
		a->ready = r;
		uv_idle_start(&a->deliver, on_deliver);
	} else if (leader) {
		r->next = leader->followers;
		leader->followers = r;
	} else {
		r->next = a->hashing;
		a->hashing = r;
		if (uv_queue_work(a->loop, &r->work, verify_work, verify_done) != 0)
			abort(); /* broken invariant: uv_queue_work fails only for a NULL callback */
	}
	return r;
}

void localauth_cancel(struct localauth_req *r)
{
	if (r)
		r->owner = NULL;
}

void localauth_stats(const struct localauth *a, struct localauth_stats *out)
{
	*out = a->stats;
}

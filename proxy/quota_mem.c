/* quota_mem: the in-process sending-limit counters: a fixed-size table in memory the master maps before it
 * forks, so one instance's workers share one budget; lock-free (C11 atomics), no I/O. */
#include "quota_mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "util.h"

/* A slot is one 64-bit word, changed only by compare-and-swap, so a check never sees a key
 * without its count: the top 24 bits are a tag (a seeded hash of the key, never 0), then 16
 * bits of the window number, then the 24-bit count. 0 is an empty slot.
 *
 * The window is fixed (counts start again at each hour) rather than sliding: a client may
 * send up to twice a limit across the turn of an hour, as with Redis's INCR + EXPIRE.
 * A slot of an earlier window is stale and may be reused; slots are never emptied, so probe
 * paths never break. Two keys whose tags match (2^-24) on overlapping probe paths (about
 * QUOTA_MEM_PROBE / QUOTA_MEM_SLOTS = 2^-12) would share one count, about one chance in 2^36
 * per pair of keys: that only makes the limit stricter for both, never looser. */
#define COUNT_BITS  24
#define WINDOW_BITS 16
#define COUNT_MASK  ((1ULL << COUNT_BITS) - 1)
#define WINDOW_MASK ((1ULL << WINDOW_BITS) - 1)

struct quota_mem {
	uint64_t seed;
	_Atomic uint64_t reported; /* when a backend failure was last reported (Unix seconds) */
	_Atomic uint64_t slots[QUOTA_MEM_SLOTS];
};

struct quota_mem *quota_mem_new(void)
{
	struct quota_mem *m = xmmap_shared(sizeof(*m));

	m->seed = util_random_seed(); /* so that nobody can pick user names that collide on purpose */
	return m;
}

void quota_mem_free(struct quota_mem *m)
{
	if (m)
		munmap(m, sizeof(*m));
}

static uint64_t hash_of(const struct quota_mem *m, const char *key)
{
	uint64_t h = 14695981039346656037ULL ^ m->seed; /* FNV-1a, seeded */

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h ^ (h >> 29); /* FNV's high bits mix poorly: fold the low ones in */
}

/* Where a key is looked for: its probe path starts at pos; tag and window identify it. */
struct where {
	size_t pos;
	uint64_t id; /* tag and window, in place: (w & ~COUNT_MASK) == id for its slot */
};

static struct where where_of(const struct quota_mem *m, const char *key, uint64_t window)
{
	uint64_t h = hash_of(m, key);
	uint64_t tag = h >> (64 - 24);

	return (struct where){.pos = (size_t)h & (QUOTA_MEM_SLOTS - 1),
	                      .id = (tag ? tag : 1) << (COUNT_BITS + WINDOW_BITS) | (window & WINDOW_MASK) << COUNT_BITS};
}

static bool stale(uint64_t w, uint64_t id)
{
	return w == 0 || ((w >> COUNT_BITS) & WINDOW_MASK) != ((id >> COUNT_BITS) & WINDOW_MASK);
}

/* The slot holding the key; or, with insert, one claimed for it (count 0) on its path. NULL
 * when it is not there (or, with insert, when the path has no room). */
static _Atomic uint64_t *find(struct quota_mem *m, struct where k, bool insert)
{
	for (;;) {
		_Atomic uint64_t *reuse = NULL;
		uint64_t old = 0;
		for (size_t i = 0; i < QUOTA_MEM_PROBE; i++) {
			_Atomic uint64_t *s = &m->slots[(k.pos + i) & (QUOTA_MEM_SLOTS - 1)];
			uint64_t w = atomic_load(s);
			if ((w & ~COUNT_MASK) == k.id)
				return s;
			if (stale(w, k.id) && !reuse) {
				reuse = s;
				old = w;
			}
			if (w == 0)
				break; /* the end of every path through here: nothing was ever further */
		}
		if (!insert || !reuse)
			return NULL;
		/* Claimed only if nobody changed it since: else look again (someone may have
		 * inserted this very key). */
		if (atomic_compare_exchange_strong(reuse, &old, k.id))
			return reuse;
	}
}

/* Adds amount unless the count would pass limit. */
static bool add(struct quota_mem *m, struct where k, unsigned amount, unsigned limit)
{
	for (;;) {
		_Atomic uint64_t *s = find(m, k, true);
		if (!s)
			return false;
		uint64_t w = atomic_load(s);
		while ((w & ~COUNT_MASK) == k.id) {
			if ((w & COUNT_MASK) + amount > limit)
				return false;
			if (atomic_compare_exchange_weak(s, &w, w + amount))
				return true;
		}
		/* The slot was reused for another key under us (a new window): find again. */
	}
}

static void undo(struct quota_mem *m, struct where k, unsigned amount)
{
	_Atomic uint64_t *s = find(m, k, false);
	uint64_t w = s ? atomic_load(s) : 0;

	while (s && (w & ~COUNT_MASK) == k.id && (w & COUNT_MASK) >= amount) {
		if (atomic_compare_exchange_weak(s, &w, w - amount))
			return;
	}
}

/* Counted key by key; when one refuses, the ones before it are counted back, so a refusal
 * costs no budget. Meanwhile another check may see those counts and refuse too: limits are
 * never exceeded, at worst a check racing a refusal is refused. A full path refuses as
 * QUOTA_UNAVAILABLE (over is then the key that found no room). */
enum quota_result quota_mem_check(struct quota_mem *m, const char *const *keys, const unsigned *limits, size_t n,
                                  unsigned amount, uint64_t window, size_t *over)
{
	for (size_t i = 0; i < n; i++) {
		struct where k = where_of(m, keys[i], window);
		if (add(m, k, amount, limits[i]))
			continue;
		bool full = !find(m, k, true);
		for (size_t j = 0; j < i; j++)
			undo(m, where_of(m, keys[j], window), amount);
		*over = i;
		return full ? QUOTA_UNAVAILABLE : QUOTA_OVER;
	}
	return QUOTA_OK;
}

unsigned quota_mem_count(struct quota_mem *m, const char *key, uint64_t window)
{
	struct where k = where_of(m, key, window);
	_Atomic uint64_t *s = find(m, k, false);

	return s ? (unsigned)(atomic_load(s) & COUNT_MASK) : 0;
}

bool quota_mem_report_due(struct quota_mem *m, uint64_t now_s)
{
	uint64_t last = atomic_load(&m->reported);

	return (last == 0 || now_s >= last + QUOTA_MEM_REPORT_S) &&
	       atomic_compare_exchange_strong(&m->reported, &last, now_s);
}

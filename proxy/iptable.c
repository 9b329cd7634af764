/* iptable: live connection counts, in total and per client address, shared by every worker process through
 * memory the master maps before it forks; lock-free (C11 atomics). */
#include "iptable.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

#include "util.h"

/* A slot is one 64-bit word, so that a reader in another process always sees a key and its
 * count together: the top 48 bits are the key (a seeded hash of the address, never 0), the
 * low 16 bits the count. 0 is an empty slot.
 *
 * Each region has one writer (its worker), so inserting needs no compare-and-swap, and
 * readers sum the regions. A slot is never emptied again: an address whose count falls to 0
 * keeps its slot until the writer reuses it for another address on the same probe path, so
 * probe paths never break under a reader. Colliding keys (a 2^-48 chance per pair) would only
 * share a count, making the limit stricter for both. */
#define KEY_SHIFT 16
#define COUNT_MAX 0xffffu

struct region {
	_Atomic uint64_t total;
	_Atomic uint64_t slots[IPTABLE_SLOTS];
};

struct iptable_shm {
	uint64_t seed;
	struct region regions[IPTABLE_REGIONS];
};

struct iptable {
	struct iptable_shm *shm;
	struct region *mine;
};

struct iptable_shm *iptable_shm_new(void)
{
	struct iptable_shm *shm = xmmap_shared(sizeof(*shm));

	shm->seed = util_random_seed(); /* so that nobody can pick addresses that collide on purpose */
	return shm;
}

void iptable_shm_free(struct iptable_shm *shm)
{
	if (shm)
		munmap(shm, sizeof(*shm));
}

void iptable_shm_clear(struct iptable_shm *shm, unsigned region)
{
	struct region *r = &shm->regions[region];

	for (size_t i = 0; i < IPTABLE_SLOTS; i++)
		atomic_store_explicit(&r->slots[i], 0, memory_order_relaxed);
	atomic_store(&r->total, 0);
}

struct iptable *iptable_new(struct iptable_shm *shm, unsigned region)
{
	struct iptable *t = xcalloc(1, sizeof(*t));

	t->shm = shm;
	t->mine = &shm->regions[region];
	return t;
}

void iptable_free(struct iptable *t)
{
	free(t);
}

static uint64_t key_of(const struct iptable *t, const char *ip)
{
	uint64_t h = 14695981039346656037ULL ^ t->shm->seed; /* FNV-1a, seeded */

	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 1099511628211ULL;
	h ^= h >> 29; /* FNV's high bits mix poorly: fold the low ones in */
	h &= (1ULL << (64 - KEY_SHIFT)) - 1;
	return h ? h : 1;
}

/* The slot holding key in r, or (insert) the first reusable slot on its probe path: a slot
 * whose count is 0, or else the empty one that ends the path. NULL when there is none. */
static _Atomic uint64_t *find(struct region *r, uint64_t key, bool insert)
{
	_Atomic uint64_t *reuse = NULL;

	for (size_t i = 0; i < IPTABLE_PROBE; i++) {
		_Atomic uint64_t *s = &r->slots[(key + i) & (IPTABLE_SLOTS - 1)];
		uint64_t w = atomic_load(s);
		if (w >> KEY_SHIFT == key)
			return s;
		if (w == 0)
			return insert ? (reuse ? reuse : s) : NULL;
		if ((w & COUNT_MAX) == 0 && !reuse)
			reuse = s;
	}
	return insert ? reuse : NULL;
}

static unsigned count_in(struct region *r, uint64_t key)
{
	_Atomic uint64_t *s = find(r, key, false);
	return s ? (unsigned)(atomic_load(s) & COUNT_MAX) : 0;
}

unsigned iptable_count(const struct iptable *t, const char *ip)
{
	uint64_t key = key_of(t, ip);
	unsigned n = 0;

	for (size_t i = 0; i < IPTABLE_REGIONS; i++)
		n += count_in(&t->shm->regions[i], key);
	return n;
}

unsigned iptable_total(const struct iptable *t)
{
	uint64_t n = 0;

	for (size_t i = 0; i < IPTABLE_REGIONS; i++)
		n += atomic_load(&t->shm->regions[i].total);
	return n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
}

/* Counts first and reads the sum after (both sequentially consistent): of two workers
 * admitting the same address at once, at least the later one sees both counts, so the limit
 * is never exceeded (at worst both refuse). */
unsigned iptable_inc(struct iptable *t, const char *ip)
{
	uint64_t key = key_of(t, ip);
	_Atomic uint64_t *s = find(t->mine, key, true);

	atomic_fetch_add(&t->mine->total, 1);
	if (!s)
		return IPTABLE_FULL;
	uint64_t w = atomic_load(s);
	unsigned count = w >> KEY_SHIFT == key ? (unsigned)(w & COUNT_MAX) : 0;
	if (count == COUNT_MAX)
		return IPTABLE_FULL;
	atomic_store(s, key << KEY_SHIFT | (count + 1));
	return iptable_count(t, ip);
}

void iptable_dec(struct iptable *t, const char *ip)
{
	uint64_t key = key_of(t, ip);
	_Atomic uint64_t *s = find(t->mine, key, false);

	atomic_fetch_sub(&t->mine->total, 1);
	if (!s)
		return; /* it was never counted (IPTABLE_FULL) */
	uint64_t w = atomic_load(s);
	if ((w & COUNT_MAX) > 0)
		atomic_store(s, w - 1);
}

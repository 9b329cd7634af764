/* iptable: connection counts per client address, for the per-IP connection limit; a chained hash table that
 * grows with its entries. */
#include "iptable.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct entry {
	struct entry *next;
	unsigned count;
	char ip[];
};

struct iptable {
	struct entry **buckets;
	size_t nbuckets;
	size_t nentries;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct iptable *iptable_new(void)
{
	struct iptable *t = xcalloc(1, sizeof(*t));

	t->nbuckets = 64;
	t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
	return t;
}

void iptable_free(struct iptable *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct entry *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t->buckets);
	free(t);
}

static struct entry **find(const struct iptable *t, const char *ip)
{
	struct entry **p = &t->buckets[hash(ip) & (t->nbuckets - 1)];

	while (*p && strcmp((*p)->ip, ip) != 0)
		p = &(*p)->next;
	return p;
}

static void grow(struct iptable *t)
{
	size_t n = t->nbuckets * 2;
	struct entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct entry *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			struct entry **slot = &b[hash(e->ip) & (n - 1)];
			e->next = *slot;
			*slot = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

unsigned iptable_inc(struct iptable *t, const char *ip)
{
	struct entry **p = find(t, ip);

	if (!*p) {
		size_t len = strlen(ip) + 1;
		*p = xcalloc(1, sizeof(struct entry) + len);
		memcpy((*p)->ip, ip, len);
		if (++t->nentries > t->nbuckets * 2) {
			grow(t);
			p = find(t, ip);
		}
	}
	return ++(*p)->count;
}

void iptable_dec(struct iptable *t, const char *ip)
{
	struct entry **p = find(t, ip);
	struct entry *e = *p;

	if (!e)
		return;
	if (--e->count == 0) {
		*p = e->next;
		free(e);
		t->nentries--;
	}
}

unsigned iptable_count(const struct iptable *t, const char *ip)
{
	struct entry *const *p = find(t, ip);
	return *p ? (*p)->count : 0;
}

/* iptable: live connection counts, in total and per client address, shared by every worker process through
 * memory the master maps before it forks; lock-free (C11 atomics). */
#ifndef LIVERY_IPTABLE_H
#define LIVERY_IPTABLE_H

#include <stddef.h>

/* How many worker processes may count at once (all generations together): each has a region
 * of its own in the shared mapping. */
#define IPTABLE_REGIONS 128
/* Distinct client addresses one worker can count at once: beyond that (or when the
 * IPTABLE_PROBE slots an address hashes to are all taken by live addresses), iptable_inc
 * answers IPTABLE_FULL and the connection is refused as over the per-address limit. */
#define IPTABLE_SLOTS 8192
#define IPTABLE_PROBE 256
#define IPTABLE_FULL  ((unsigned)-1)

/* The shared mapping, made by the master before any fork. */
struct iptable_shm;
/* One worker's view: the shared mapping plus the region it writes. */
struct iptable;

struct iptable_shm *iptable_shm_new(void);
void iptable_shm_free(struct iptable_shm *shm);
/* Empties a region whose worker has exited (the master calls it after waitpid). */
void iptable_shm_clear(struct iptable_shm *shm, unsigned region);

/* In a worker: counts into region, reads every region. */
struct iptable *iptable_new(struct iptable_shm *shm, unsigned region);
void iptable_free(struct iptable *t);
/* Counts one more connection from ip (and in total) and returns the count for ip across all
 * workers, or IPTABLE_FULL when this worker has no room left to count ip. */
unsigned iptable_inc(struct iptable *t, const char *ip);
/* Counts one connection from ip less (after iptable_inc, even one that answered IPTABLE_FULL). */
void iptable_dec(struct iptable *t, const char *ip);
/* Connections from ip across all workers. */
unsigned iptable_count(const struct iptable *t, const char *ip);
/* Connections across all workers. */
unsigned iptable_total(const struct iptable *t);

#endif

/* quota_mem: the in-process sending-limit counters: a fixed-size table in memory the master maps before it
 * forks, so one instance's workers share one budget; lock-free (C11 atomics), no I/O. */
#ifndef LIVERY_QUOTA_MEM_H
#define LIVERY_QUOTA_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quota_key.h"

/* Counters the table holds at once (the current window's: older ones are reused), and how
 * far a key's probe path runs; a key that finds no room there is answered
 * QUOTA_UNAVAILABLE (limits.redis_failure then decides). */
#define QUOTA_MEM_SLOTS (1u << 18)
#define QUOTA_MEM_PROBE 64

struct quota_mem;

/* Made by the master before any fork; it also holds when a backend failure was last
 * reported, so that the instance's workers report one at most every QUOTA_MEM_REPORT_S. */
struct quota_mem *quota_mem_new(void);
void quota_mem_free(struct quota_mem *m);

/* Counts amount on every key of keys[0..n) in window if none would pass its limit then
 * (limits[i]); else counts nothing, answers QUOTA_OVER and sets *over to the first key that
 * would. */
enum quota_result quota_mem_check(struct quota_mem *m, const char *const *keys, const unsigned *limits, size_t n,
                                  unsigned amount, uint64_t window, size_t *over);
/* What key has counted in window (for tests). */
unsigned quota_mem_count(struct quota_mem *m, const char *key, uint64_t window);

#define QUOTA_MEM_REPORT_S 10
/* True (and the time taken) when nobody in the instance reported within QUOTA_MEM_REPORT_S
 * of now_s: the caller then reports. */
bool quota_mem_report_due(struct quota_mem *m, uint64_t now_s);

#endif

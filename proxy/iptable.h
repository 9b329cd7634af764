/* iptable: connection counts per client address, for the per-IP connection limit; pure data structure. */
#ifndef LIVERY_IPTABLE_H
#define LIVERY_IPTABLE_H

struct iptable;

struct iptable *iptable_new(void);
void iptable_free(struct iptable *t);
/* Counts one more connection from ip and returns the new count. */
unsigned iptable_inc(struct iptable *t, const char *ip);
/* Counts one connection less; the entry goes when its count reaches 0. */
void iptable_dec(struct iptable *t, const char *ip);
unsigned iptable_count(const struct iptable *t, const char *ip);

#endif

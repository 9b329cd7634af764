/* cidr: address ranges in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or a single address) and whether an
 * address falls in one of them; pure (libc only). */
#ifndef LIVERY_CIDR_H
#define LIVERY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits; /* prefix length */
};

/* Parses "address/bits" or "address" (all bits). False, with a static phrase in *why, when
 * text is not a range, or sets bits past its prefix ("10.0.0.1/8": meant 10.0.0.0/8?). */
bool cidr_parse(const char *text, struct cidr *out, const char **why);
/* Whether address (text, IPv4 or IPv6) lies in one of list[0..n). An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) counts as its IPv4 address. */
bool cidr_match(const struct cidr *list, size_t n, const char *address);

#endif

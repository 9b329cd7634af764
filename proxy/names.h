/* names: pure host-name normalisation and exact/wildcard matching for SNI and configuration. */
#ifndef LIVERY_NAMES_H
#define LIVERY_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_MAX_LEN 253

/* Lower-cases in[0..len) and drops one trailing dot into out (NAME_MAX_LEN + 1 bytes).
 * Returns false for names that are empty, too long, have an empty or over-long label
 * (more than 63 octets), or contain anything but letters, digits, '-' and '_'. When
 * allow_wildcard is set, a leading "*." label is accepted. */
bool name_normalize(const char *in, size_t len, char *out, bool allow_wildcard);
/* True when the normalised host matches the normalised pattern: equal, or the pattern is
 * "*.rest" and host is exactly one label followed by ".rest". */
bool name_match(const char *pattern, const char *host);
bool name_is_wildcard(const char *pattern);

/* A table of normalised names (exact, or "*.rest" wildcards) and what each stands for. */
struct name_entry {
	const char *name;
	const void *value;
};

/* Sorts a table for name_table_lookup. */
void name_table_sort(struct name_entry *entries, size_t n);
/* The value for host (any case, one trailing dot allowed): its exact entry, else the
 * wildcard covering its first label; NULL when there is none or host is not a valid name. */
const void *name_table_lookup(const struct name_entry *entries, size_t n, const char *host);

#endif

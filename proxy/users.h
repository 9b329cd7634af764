/* users: a tenant's local users table (users_file: one "user:hash" a line, crypt(3) hashes); a pure parser
 * and lookups, no I/O. */
#ifndef LIVERY_USERS_H
#define LIVERY_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct users;

/* Parses a users_file's text. Blank lines and lines starting with '#' are skipped; every other
 * line is "user:hash" with a crypt(3) hash livery can verify (yescrypt $y$, $gy$, bcrypt $2b$
 * or $2y$, sha512crypt $6$, sha256crypt $5$). Returns NULL with "line N: message" in err (the
 * caller adds the file name) for a malformed line, or a user listed twice. */
struct users *users_parse(const char *text, size_t len, char *err, size_t errlen);
void users_free(struct users *u);
size_t users_count(const struct users *u);
/* The hash stored for name, or NULL. */
const char *users_find(const struct users *u, const char *name);
/* A hash of the table (the first line's): unknown users are checked against it, so that they
 * cost as much time as known ones. NULL for an empty table. */
const char *users_decoy(const struct users *u);
/* True when hash is in a format users_parse accepts. */
bool users_hash_supported(const char *hash);

#endif

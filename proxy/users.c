/* users: a tenant's local users table (users_file: one "user:hash" a line, crypt(3) hashes); a pure parser
 * and lookups, no I/O. */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define USERS_NAME_MAX 255

struct user_entry {
	char *name, *hash;
	unsigned line;
};

struct users {
	struct user_entry *v; /* sorted by name */
	size_t n;
	char *decoy;
};

bool users_hash_supported(const char *hash)
{
	static const char *const prefixes[] = {"$y$", "$gy$", "$2b$", "$2y$", "$6$", "$5$"};
	bool known = false;

	for (size_t i = 0; i < ARRAY_LEN(prefixes); i++) {
		size_t n = strlen(prefixes[i]);
		known = known || (strncmp(hash, prefixes[i], n) == 0 && hash[n] != '\0');
	}
	for (const char *p = hash; known && *p; p++) {
		if (*p <= ' ' || *p > '~' || *p == ':')
			return false;
	}
	return known;
}

static bool valid_name(const char *name, size_t len)
{
	if (len == 0 || len > USERS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] <= ' ' || name[i] > '~')
			return false;
	}
	return true;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct user_entry *)a)->name, ((const struct user_entry *)b)->name);
}

/* One line without its end: adds it to u, or explains in err why not. */
static bool parse_line(struct users *u, unsigned lineno, const char *line, size_t len, char *err,
                       size_t errlen)
{
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
		len--;
	if (len == 0 || line[0] == '#')
		return true;
	const char *colon = memchr(line, ':', len);
	if (!colon) {
		snprintf(err, errlen, "expected user:hash");
		return false;
	}
	size_t nlen = (size_t)(colon - line);
	if (!valid_name(line, nlen)) {
		snprintf(err, errlen, "the user name must be 1 to %d printable characters without spaces",
		         USERS_NAME_MAX);
		return false;
	}
	char *hash = xstrndup(colon + 1, len - nlen - 1);
	if (!users_hash_supported(hash)) {
		free(hash);
		snprintf(err, errlen,
		         "the hash is not a supported crypt(3) hash ($y$, $2b$, $6$; see livery passwd)");
		return false;
	}
	u->v = xrealloc(u->v, (u->n + 1) * sizeof(*u->v));
	u->v[u->n++] = (struct user_entry){.name = xstrndup(line, nlen), .hash = hash, .line = lineno};
	return true;
}

static bool find_duplicate(const struct users *u, char *err, size_t errlen)
{
	for (size_t i = 1; i < u->n; i++) {
		const struct user_entry *a = &u->v[i - 1], *b = &u->v[i];
		if (strcmp(a->name, b->name) == 0) {
			snprintf(err, errlen, "line %u: user '%s' is listed twice (first on line %u)",
			         a->line > b->line ? a->line : b->line, a->name,
			         a->line < b->line ? a->line : b->line);
			return true;
		}
	}
	return false;
}

struct users *users_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct users *u = xcalloc(1, sizeof(*u));
	char why[200];
	unsigned lineno = 0;

	for (size_t off = 0; off < len;) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		lineno++;
		if (memchr(text + off, '\0', n) || !parse_line(u, lineno, text + off, n, why, sizeof(why))) {
			snprintf(err, errlen, "line %u: %s", lineno,
			         memchr(text + off, '\0', n) ? "a NUL byte" : why);
			users_free(u);
			return NULL;
		}
		off += n + (nl != NULL);
	}
	if (u->n > 0) {
		u->decoy = xstrdup(u->v[0].hash);
		qsort(u->v, u->n, sizeof(*u->v), cmp_entry);
	}
	if (find_duplicate(u, err, errlen)) {
		users_free(u);
		return NULL;
	}
	return u;
}

void users_free(struct users *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		free(u->v[i].hash);
	}
	free(u->v);
	free(u->decoy);
	free(u);
}

size_t users_count(const struct users *u)
{
	return u ? u->n : 0;
}

const char *users_find(const struct users *u, const char *name)
{
	struct user_entry key = {.name = (char *)name};

	if (!u || u->n == 0)
		return NULL;
	const struct user_entry *e = bsearch(&key, u->v, u->n, sizeof(*u->v), cmp_entry);
	return e ? e->hash : NULL;
}

const char *users_decoy(const struct users *u)
{
	return u ? u->decoy : NULL;
}

/* names: pure host-name normalisation and exact/wildcard matching for SNI and configuration. */
#include "names.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static bool label_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

bool name_normalize(const char *in, size_t len, char *out, bool allow_wildcard)
{
	size_t label = 0;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (label_char(c) ||
		           (allow_wildcard && c == '*' && i == 0 && len > 2 && in[1] == '.')) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
		out[i] = (char)tolower((unsigned char)c);
	}
	out[len] = '\0';
	return label > 0;
}

bool name_is_wildcard(const char *pattern)
{
	return pattern[0] == '*' && pattern[1] == '.';
}

bool name_match(const char *pattern, const char *host)
{
	if (!name_is_wildcard(pattern))
		return strcmp(pattern, host) == 0;
	const char *dot = strchr(host, '.');
	return dot != NULL && dot != host && strcmp(dot, pattern + 1) == 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct name_entry *)a)->name, ((const struct name_entry *)b)->name);
}

void name_table_sort(struct name_entry *entries, size_t n)
{
	if (n > 0)
		qsort(entries, n, sizeof(*entries), cmp_entry);
}

static const void *find(const struct name_entry *entries, size_t n, const char *name)
{
	struct name_entry key = {name, NULL};
	const struct name_entry *e = n > 0 ? bsearch(&key, entries, n, sizeof(key), cmp_entry) : NULL;

	return e ? e->value : NULL;
}

const void *name_table_lookup(const struct name_entry *entries, size_t n, const char *host)
{
	char norm[NAME_MAX_LEN + 2];

	/* norm[0] is room for the '*' that replaces the first label below. */
	if (!name_normalize(host, strlen(host), norm + 1, false))
		return NULL;
	const void *v = find(entries, n, norm + 1);
	if (v)
		return v;
	/* A wildcard covers exactly one label: "a.b.example" tries "*.b.example" only. */
	char *dot = strchr(norm + 1, '.');
	if (!dot)
		return NULL;
	dot[-1] = '*';
	return find(entries, n, dot - 1);
}

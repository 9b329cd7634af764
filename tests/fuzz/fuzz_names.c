/* fuzz_names: host-name normalisation, wildcard matching and the name table; results are lower case, bounded,
 * without a trailing dot, normalising twice changes nothing, and a table lookup agrees with name_match. */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char a[NAME_MAX_LEN + 1], b[NAME_MAX_LEN + 1];

	for (int wild = 0; wild < 2; wild++) {
		if (!name_normalize((const char *)data, size, a, wild))
			continue;
		size_t n = strlen(a);
		assert(n > 0 && n <= NAME_MAX_LEN && a[n - 1] != '.');
		for (size_t i = 0; i < n; i++)
			assert(!isupper((unsigned char)a[i]));
		assert(name_normalize(a, n, b, wild) && strcmp(a, b) == 0);
		assert(name_match(a, a) || name_is_wildcard(a));
		struct name_entry e = {a, a};
		if (!name_is_wildcard(a))
			assert(name_table_lookup(&e, 1, a) == a);
		if (name_is_wildcard(a) && n > 2) {
			char host[NAME_MAX_LEN + 5] = "x";
			strcat(host, a + 1);
			if (strlen(host) <= NAME_MAX_LEN) {
				assert(name_match(a, host));
				assert(name_table_lookup(&e, 1, host) == a);
			}
			char deeper[NAME_MAX_LEN + 7] = "y.";
			strcat(deeper, host);
			if (strlen(deeper) <= NAME_MAX_LEN)
				assert(!name_match(a, deeper) && name_table_lookup(&e, 1, deeper) == NULL);
		}
	}
	return 0;
}

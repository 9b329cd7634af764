/* fuzz_names: host-name normalisation and wildcard matching; results are lower case, bounded, without a trailing dot, and normalising twice changes nothing. */
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
		if (name_is_wildcard(a) && n > 2) {
			char host[NAME_MAX_LEN + 3] = "x";
			strcat(host, a + 1);
			if (strlen(host) <= NAME_MAX_LEN)
				assert(name_match(a, host));
		}
	}
	return 0;
}

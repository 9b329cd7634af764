/* fuzz_asn1time: X.509 validity text; any bytes either fail, leaving the output alone, or give the
 * instant that glibc's strptime + timegm give for the same text (in UTC, whatever TZ says). */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asn1time.h"

/* The oracle: the C library's reading of the same 13- or 15-octet text, UTCTime's window applied. */
static long long fuzz_oracle(const uint8_t *data, size_t size)
{
	char text[16], full[16];
	struct tm tm = {0};

	memcpy(text, data, size);
	text[size] = '\0';
	if (size == 13)
		snprintf(full, sizeof(full), "%s%s", text[0] < '5' ? "20" : "19", text);
	else
		memcpy(full, text, sizeof(full));
	char *end = strptime(full, "%Y%m%d%H%M%SZ", &tm);
	assert(end && *end == '\0');
	return (long long)timegm(&tm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long long v = -7;

	setenv("TZ", "America/New_York", 0);
	if (!asn1time_parse(data, size, &v)) {
		assert(v == -7);
		return 0;
	}
	assert(size == 13 || size == 15);
	for (size_t i = 0; i + 1 < size; i++)
		assert(data[i] >= '0' && data[i] <= '9');
	assert(data[size - 1] == 'Z');
	assert(v == fuzz_oracle(data, size));
	return 0;
}

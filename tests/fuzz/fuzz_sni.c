/* fuzz_sni: the ClientHello peek that picks a certificate; any bytes give a bounded, NUL-terminated name or
 * none, a name is always a valid host name (RFC 6066: ASCII, no NUL, no trailing dot), and the same handshake
 * bytes cut into records of another size give the same answer. */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_peek.h"

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return true; /* none */
	if (n > 253 || s[0] == '.' || s[n - 1] == '.' || strstr(s, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* When data is nothing but whole, non-empty handshake records, their payloads cut again
 * into records of frag bytes (in out, malloc'ed); NULL otherwise. */
static unsigned char *refragment(const uint8_t *data, size_t size, size_t frag, size_t *out_len)
{
	unsigned char *payload = malloc(size + 1), *out;
	size_t plen = 0, off = 0, n = 0;

	while (off < size) {
		size_t rl = size - off >= 5 ? (size_t)data[off + 3] << 8 | data[off + 4] : 0;
		if (rl == 0 || rl > 16384 || data[off] != 0x16 || data[off + 1] != 3 || size - off - 5 < rl) {
			free(payload);
			return NULL;
		}
		memcpy(payload + plen, data + off + 5, rl);
		plen += rl;
		off += 5 + rl;
	}
	out = malloc(plen + 5 * (plen / frag + 1));
	for (size_t p = 0; p < plen; p += frag) {
		size_t k = plen - p < frag ? plen - p : frag;
		memcpy(out + n, "\x16\x03\x01", 3);
		out[n + 3] = (unsigned char)(k >> 8);
		out[n + 4] = (unsigned char)k;
		memcpy(out + n + 5, payload + p, k);
		n += 5 + k;
	}
	free(payload);
	*out_len = n;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char sni[256], again[256];

	memset(sni, 'x', sizeof(sni));
	enum tls_peek r = tls_peek_sni((const char *)data, size, sni, sizeof(sni));
	assert(r == TLS_PEEK_NEED_MORE || r == TLS_PEEK_DONE || r == TLS_PEEK_NOT_TLS ||
	       r == TLS_PEEK_TOO_BIG);
	assert(memchr(sni, '\0', sizeof(sni)) != NULL);
	if (r != TLS_PEEK_DONE)
		assert(sni[0] == '\0');
	assert(valid_name(sni));

	size_t len, frag = 1 + size % 61;
	unsigned char *re = refragment(data, size, frag, &len);
	if (re) {
		enum tls_peek r2 = tls_peek_sni((const char *)re, len, again, sizeof(again));
		assert(r2 == r && strcmp(again, sni) == 0);
		free(re);
	}
	return 0;
}

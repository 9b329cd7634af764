/* fuzz_sni: the ClientHello peek that picks a certificate; any bytes give a bounded, NUL-terminated name or none. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char sni[256];

	memset(sni, 'x', sizeof(sni));
	enum tls_peek r = tls_peek_sni((const char *)data, size, sni, sizeof(sni));
	assert(r == TLS_PEEK_NEED_MORE || r == TLS_PEEK_DONE || r == TLS_PEEK_NOT_TLS);
	assert(memchr(sni, '\0', sizeof(sni)) != NULL);
	if (r != TLS_PEEK_DONE)
		assert(sni[0] == '\0');
	return 0;
}

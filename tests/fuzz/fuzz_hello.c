/* fuzz_hello: the ClientHello reading that picks an RSA certificate for clients without ECDSA; any bytes
 * give an answer without reading past them, and only a whole hello can say "rejects ECDSA". */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool rejects = tls_hello_rejects_ecdsa((const char *)data, size);

	/* A verdict needs at least a record header, a handshake header and a ClientHello body:
	 * version, random, empty session_id, one suite, an empty compression list. */
	if (rejects)
		assert(size >= 5 + 4 + 2 + 32 + 1 + 2 + 2 + 1);
	return 0;
}

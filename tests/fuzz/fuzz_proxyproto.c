/* fuzz_proxyproto: the PROXY header parser; any bytes give one verdict that does not depend on what
 * follows a header, a header never longer than its limit or the bytes given, every shorter prefix of a
 * header needs more, and addresses are NUL-terminated text of the family claimed. */
#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxyproto.h"

static void check_address(const struct proxyproto_header *h)
{
	uint8_t bin[16];

	assert(memchr(h->src, '\0', sizeof(h->src)) && memchr(h->dst, '\0', sizeof(h->dst)));
	if (h->local) {
		assert(h->src[0] == '\0' && h->dst[0] == '\0');
		return;
	}
	assert(h->family == AF_INET || h->family == AF_INET6);
	assert(inet_pton(h->family, h->src, bin) == 1 && inet_pton(h->family, h->dst, bin) == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto_header h, again;
	enum proxyproto_status st = proxyproto_parse(data, size, &h);

	if (st == PROXYPROTO_INVALID) {
		assert(h.error != NULL && h.len == 0);
		return 0;
	}
	if (st == PROXYPROTO_NEED_MORE) {
		assert(size < PROXYPROTO_V2_MAX);
		return 0;
	}
	assert(h.len > 0 && h.len <= size);
	assert(h.version == 1 ? h.len <= PROXYPROTO_V1_MAX : h.version == 2 && h.len <= PROXYPROTO_V2_MAX);
	check_address(&h);
	/* The header alone says the same; none of its prefixes says anything yet. */
	assert(proxyproto_parse(data, h.len, &again) == PROXYPROTO_DONE);
	assert(memcmp(&h, &again, sizeof(h)) == 0);
	for (size_t cut = 0; cut < h.len; cut += 1 + cut / 16)
		assert(proxyproto_parse(data, cut, &again) == PROXYPROTO_NEED_MORE);
	return 0;
}

/* iobuf: a growable byte buffer with a read offset; compacts lazily so consuming is O(1), and holds no
 * memory while empty. */
#include "iobuf.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void iobuf_init(struct iobuf *b)
{
	memset(b, 0, sizeof(*b));
}

void iobuf_free(struct iobuf *b)
{
	free(b->data);
	iobuf_init(b);
}

static void reserve(struct iobuf *b, size_t n)
{
	if (b->off > 0 && b->len + n > b->cap) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + n)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void iobuf_append(struct iobuf *b, const void *data, size_t n)
{
	if (n == 0)
		return;
	reserve(b, n);
	memcpy(b->data + b->len, data, n);
	b->len += n;
}

size_t iobuf_avail(const struct iobuf *b)
{
	return b->len - b->off;
}

const char *iobuf_peek(const struct iobuf *b)
{
	return b->data ? b->data + b->off : "";
}

void iobuf_consume(struct iobuf *b, size_t n)
{
	if (n >= iobuf_avail(b)) {
		iobuf_clear(b);
		return;
	}
	b->off += n;
}

/* An empty buffer gives its storage back, as OpenSSL's SSL_MODE_RELEASE_BUFFERS does: a
 * session holds half a dozen of these (ciphertext in and out on both legs, plaintext to seal,
 * command lines), and an idle one has nothing in any of them. Keeping the capacity would hold
 * 1 to 16 KiB each for the session's whole life; a malloc and a free per event cost far less
 * than the handshake or the system calls the same event makes. */
void iobuf_clear(struct iobuf *b)
{
	iobuf_free(b);
}

size_t iobuf_line_len(const struct iobuf *b)
{
	const char *p = iobuf_peek(b);
	const char *lf = memchr(p, '\n', iobuf_avail(b));
	return lf ? (size_t)(lf - p) + 1 : 0;
}

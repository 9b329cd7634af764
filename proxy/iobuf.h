/* iobuf: a growable byte buffer with a read offset, used for line assembly and TLS ciphertext. */
#ifndef LIVERY_IOBUF_H
#define LIVERY_IOBUF_H

#include <stdbool.h>
#include <stddef.h>

struct iobuf {
	char *data;
	size_t off; /* first unread byte */
	size_t len; /* end of valid data */
	size_t cap;
};

void iobuf_init(struct iobuf *b);
void iobuf_free(struct iobuf *b);
void iobuf_append(struct iobuf *b, const void *data, size_t n);
size_t iobuf_avail(const struct iobuf *b);
const char *iobuf_peek(const struct iobuf *b);
/* Consuming everything, or clearing, frees the storage: an empty iobuf holds no memory. */
void iobuf_consume(struct iobuf *b, size_t n);
void iobuf_clear(struct iobuf *b);
/* Length of the first line including its LF, or 0 when no complete line is buffered. */
size_t iobuf_line_len(const struct iobuf *b);

#endif

/* unit_buf: a byte buffer the unit tests build wire input in (put, and big-endian put8/put16); include
 * after <cmocka.h>. */
#ifndef LIVERY_UNIT_BUF_H
#define LIVERY_UNIT_BUF_H

#include <stddef.h>
#include <string.h>

struct buf {
	unsigned char b[80000];
	size_t n;
};

static inline void put(struct buf *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->b));
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static inline void put8(struct buf *b, unsigned v)
{
	unsigned char c = (unsigned char)v;
	put(b, &c, 1);
}

static inline void put16(struct buf *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v & 0xff);
}

#endif

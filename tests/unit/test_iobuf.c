/* Unit tests for iobuf: appending, consuming, compaction and line lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iobuf.h"

static void assert_contents(const struct iobuf *b, const char *want, size_t n)
{
	assert_int_equal(iobuf_avail(b), n);
	if (n > 0)
		assert_memory_equal(iobuf_peek(b), want, n);
}

static void test_empty(void **state)
{
	struct iobuf b;

	iobuf_init(&b);
	assert_int_equal(iobuf_avail(&b), 0);
	assert_non_null(iobuf_peek(&b));
	assert_int_equal(iobuf_line_len(&b), 0);
	iobuf_consume(&b, 10);
	assert_int_equal(iobuf_avail(&b), 0);
	iobuf_append(&b, "x", 0);
	assert_int_equal(iobuf_avail(&b), 0);
	iobuf_free(&b);
	iobuf_free(&b);
}

static void test_append_consume(void **state)
{
	struct iobuf b;

	iobuf_init(&b);
	iobuf_append(&b, "hello ", 6);
	iobuf_append(&b, "world", 5);
	assert_contents(&b, "hello world", 11);
	iobuf_consume(&b, 6);
	assert_contents(&b, "world", 5);
	iobuf_append(&b, "!\0z", 3);
	assert_contents(&b, "world!\0z", 8);
	iobuf_consume(&b, 100);
	assert_int_equal(iobuf_avail(&b), 0);
	assert_null(b.data); /* an empty buffer holds no memory (idle sessions) */
	assert_int_equal(b.cap, 0);
	iobuf_append(&b, "again", 5);
	assert_contents(&b, "again", 5);
	iobuf_clear(&b);
	assert_int_equal(iobuf_avail(&b), 0);
	assert_null(b.data);
	iobuf_free(&b);
}

static void test_line_len(void **state)
{
	struct iobuf b;

	iobuf_init(&b);
	iobuf_append(&b, "EHLO x", 6);
	assert_int_equal(iobuf_line_len(&b), 0);
	iobuf_append(&b, "\r\nQUIT\n", 7);
	assert_int_equal(iobuf_line_len(&b), 8);
	iobuf_consume(&b, 8);
	assert_int_equal(iobuf_line_len(&b), 5);
	iobuf_consume(&b, 5);
	assert_int_equal(iobuf_line_len(&b), 0);
	iobuf_append(&b, "\n", 1);
	assert_int_equal(iobuf_line_len(&b), 1);
	iobuf_free(&b);
}

/* Many appends and partial consumes (growth and compaction) keep the byte stream intact. */
static void test_stream_integrity(void **state)
{
	struct iobuf b;
	unsigned char chunk[777];
	size_t produced = 0, consumed = 0;

	iobuf_init(&b);
	for (int round = 0; round < 500; round++) {
		size_t n = (size_t)(round * 37 % 777) + 1;
		for (size_t i = 0; i < n; i++)
			chunk[i] = (unsigned char)((produced + i) % 251);
		iobuf_append(&b, chunk, n);
		produced += n;
		size_t take = iobuf_avail(&b) * (size_t)(round % 3 + 1) / 4;
		const unsigned char *p = (const unsigned char *)iobuf_peek(&b);
		for (size_t i = 0; i < take; i++) {
			if (p[i] != (unsigned char)((consumed + i) % 251))
				fail_msg("byte %zu corrupted", consumed + i);
		}
		iobuf_consume(&b, take);
		consumed += take;
		assert_int_equal(iobuf_avail(&b), produced - consumed);
	}
	iobuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_append_consume),
	    cmocka_unit_test(test_line_len),
	    cmocka_unit_test(test_stream_integrity),
	};
	return cmocka_run_group_tests_name("iobuf", tests, NULL, NULL);
}

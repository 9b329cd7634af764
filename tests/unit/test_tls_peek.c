/* test_tls_peek: the ClientHello peek (tls_peek_sni) over hand-built hellos: the host name, hellos
 * fragmented over records, every truncation, and the malformed or invalid names that get the default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tls_peek.h"
#include "unit_buf.h"

/* An extension carrying a ServerNameList of one entry of name_type type. */
static void ext_sni(struct buf *b, unsigned type, const char *name, size_t len)
{
	put16(b, 0);
	put16(b, (unsigned)len + 5);
	put16(b, (unsigned)len + 3);
	put8(b, type);
	put16(b, (unsigned)len);
	put(b, name, len);
}

/* A ClientHello handshake message (header included) with nsuites suites and exts. */
static void hello(struct buf *msg, size_t nsuites, const struct buf *exts)
{
	struct buf body = {.n = 0};
	unsigned char random[32] = {1, 2, 3};

	put16(&body, 0x0303);
	put(&body, random, sizeof(random));
	put8(&body, 0); /* session id */
	put16(&body, (unsigned)nsuites * 2);
	for (size_t i = 0; i < nsuites; i++)
		put16(&body, 0xc02b);
	put8(&body, 1);
	put8(&body, 0); /* null compression */
	if (exts) {
		put16(&body, (unsigned)exts->n);
		put(&body, exts->b, exts->n);
	}
	msg->n = 0;
	put8(msg, 1);
	put8(msg, (unsigned)(body.n >> 16));
	put16(msg, (unsigned)(body.n & 0xffff));
	put(msg, body.b, body.n);
}

/* msg in handshake records of at most frag bytes each. */
static void records(struct buf *out, const struct buf *msg, size_t frag)
{
	out->n = 0;
	for (size_t off = 0; off < msg->n; off += frag) {
		size_t k = msg->n - off < frag ? msg->n - off : frag;
		put8(out, 0x16);
		put16(out, 0x0301);
		put16(out, (unsigned)k);
		put(out, msg->b + off, k);
	}
}

static struct buf msg, wire, exts;

/* A hello whose only extension is server_name with name (len bytes), in frag-byte records. */
static void sni_hello(const char *name, size_t len, size_t frag)
{
	exts.n = 0;
	ext_sni(&exts, 0, name, len);
	hello(&msg, 4, &exts);
	records(&wire, &msg, frag);
}

static enum tls_peek peek(const struct buf *b, size_t len, char *sni)
{
	return tls_peek_sni((const char *)b->b, len, sni, 256);
}

static void assert_sni(const char *want)
{
	char sni[256];
	assert_int_equal(peek(&wire, wire.n, sni), TLS_PEEK_DONE);
	assert_string_equal(sni, want);
}

static void test_one_record(void **state)
{
	sni_hello("smtp.acme.test", 14, 16384);
	assert_sni("smtp.acme.test");
	/* Bytes after the hello (the client's next flight) change nothing. */
	put(&wire, "\x16\x03\x03\x00\x01\x00", 6);
	assert_sni("smtp.acme.test");
	sni_hello("X.Globex.TEST", 13, 16384);
	assert_sni("X.Globex.TEST"); /* as sent: matching is case-insensitive later */
}

static void test_no_sni(void **state)
{
	struct buf other = {.n = 0};

	hello(&msg, 4, NULL); /* no extensions at all */
	records(&wire, &msg, 16384);
	assert_sni("");
	put16(&other, 10); /* supported_groups only */
	put16(&other, 4);
	put16(&other, 2);
	put16(&other, 29);
	hello(&msg, 4, &other);
	records(&wire, &msg, 16384);
	assert_sni("");
}

/* The hello split over records of every size from 1 byte: the same name, and every prefix of
 * the bytes wants more. */
static void test_fragmented(void **state)
{
	for (size_t frag = 1; frag <= 70; frag++) {
		char sni[256];
		sni_hello("x.globex.test", 13, frag);
		for (size_t k = 0; k < wire.n; k++) {
			if (peek(&wire, k, sni) != TLS_PEEK_NEED_MORE || sni[0] != '\0')
				fail_msg("frag %zu: prefix %zu/%zu is not NEED_MORE", frag, k, wire.n);
		}
		assert_sni("x.globex.test");
	}
}

/* RFC 6066 3: an ASCII host name without a trailing dot; anything else gets the default. */
static void test_invalid_names(void **state)
{
	static const struct {
		const char *name;
		size_t len;
	} bad[] = {
	        {"x.globex.test\0.acme", 19},
	        {"x.globex.test\0", 14},
	        {"\0smtp.acme.test", 15},
	        {"smtp.acme.test.", 15},
	        {"", 0},
	        {"smtp..acme.test", 15},
	        {".acme.test", 10},
	        {"b\xc3\xbc"
	         "cher.example",
	         15},
	        {"smtp acme.test", 14},
	        {"*.globex.test", 13},
	        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", 69},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char sni[256];
		sni_hello(bad[i].name, bad[i].len, i % 2 ? 16384 : 9);
		assert_int_equal(peek(&wire, wire.n, sni), TLS_PEEK_DONE);
		if (sni[0] != '\0')
			fail_msg("case %zu: got name \"%s\"", i, sni);
	}
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name));
	for (size_t i = 63; i < sizeof(long_name); i += 64)
		long_name[i] = '.';
	sni_hello(long_name, 254, 16384); /* over 253 octets */
	assert_sni("");
	sni_hello(long_name, 253, 16384);
	long_name[253] = '\0';
	assert_sni(long_name);
}

static void test_not_tls(void **state)
{
	char sni[256];

	assert_int_equal(tls_peek_sni("EHLO x\r\n", 8, sni, sizeof(sni)), TLS_PEEK_NOT_TLS);
	assert_int_equal(tls_peek_sni("", 0, sni, sizeof(sni)), TLS_PEEK_NEED_MORE);
	assert_int_equal(tls_peek_sni("\x16\x03", 2, sni, sizeof(sni)), TLS_PEEK_NEED_MORE);
}

/* Malformed framing: the hello cannot be read, so no name (wolfSSL then refuses it). */
static void test_malformed(void **state)
{
	char sni[256];

	/* A change_cipher_spec record between two fragments of the hello. */
	sni_hello("smtp.acme.test", 14, 20);
	memmove(wire.b + 25 + 6, wire.b + 25, wire.n - 25);
	memcpy(wire.b + 25, "\x14\x03\x03\x00\x01\x01", 6);
	wire.n += 6;
	assert_sni("");
	/* An empty handshake record. */
	sni_hello("smtp.acme.test", 14, 16384);
	memmove(wire.b + 5, wire.b, wire.n);
	memcpy(wire.b, "\x16\x03\x01\x00\x00", 5);
	wire.n += 5;
	assert_sni("");
	/* A record over 2^14 octets. */
	sni_hello("smtp.acme.test", 14, 16384);
	wire.b[3] = 0x40;
	wire.b[4] = 0x01;
	assert_int_equal(peek(&wire, wire.n, sni), TLS_PEEK_DONE);
	assert_string_equal(sni, "");
	/* Not a ClientHello (a ServerHello). */
	sni_hello("smtp.acme.test", 14, 16384);
	wire.b[5] = 2;
	assert_sni("");
	/* A server_name list with two host names, and two server_name extensions. */
	exts.n = 0;
	ext_sni(&exts, 0, "smtp.acme.test", 14);
	ext_sni(&exts, 0, "x.globex.test", 13);
	hello(&msg, 4, &exts);
	records(&wire, &msg, 16384);
	assert_sni("");
	/* Extensions that overrun the hello. */
	sni_hello("smtp.acme.test", 14, 16384);
	wire.b[5 + 4 + 2 + 32 + 1 + 2 + 8 + 2] = 0x7f;
	assert_sni("");
}

/* A hello of up to TLS_PEEK_HELLO_MAX octets is read (here with 8000 cipher suites); a
 * longer one is refused as soon as its header is in. */
static void test_sizes(void **state)
{
	char sni[256];

	exts.n = 0;
	ext_sni(&exts, 0, "smtp.acme.test", 14);
	hello(&msg, 8000, &exts);
	assert_true(msg.n - 4 <= TLS_PEEK_HELLO_MAX);
	records(&wire, &msg, 16384);
	assert_true(wire.n <= TLS_PEEK_MAX);
	assert_sni("smtp.acme.test");
	assert_int_equal(peek(&wire, wire.n - 1, sni), TLS_PEEK_NEED_MORE);
	hello(&msg, 8200, &exts);
	assert_true(msg.n - 4 > TLS_PEEK_HELLO_MAX);
	records(&wire, &msg, 16384);
	assert_int_equal(peek(&wire, 9, sni), TLS_PEEK_TOO_BIG); /* its header is enough */
	assert_string_equal(sni, "");
	assert_int_equal(peek(&wire, wire.n, sni), TLS_PEEK_TOO_BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_one_record), cmocka_unit_test(test_no_sni),
	        cmocka_unit_test(test_fragmented), cmocka_unit_test(test_invalid_names),
	        cmocka_unit_test(test_not_tls),    cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

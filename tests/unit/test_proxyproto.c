/* test_proxyproto: the PROXY header parser (proxyproto_parse): v1 and v2 headers as HAProxy and the
 * specification write them, every truncation of each (need more, never a wrong answer), the bytes after a
 * header left alone, and malformed or hostile headers (bad signatures, lengths, families, TLVs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "proxyproto.h"
#include "unit_buf.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: ver_cmd, fam, then body (addresses and TLVs) of blen octets. */
static void v2(struct buf *b, unsigned ver_cmd, unsigned fam, const void *body, size_t blen)
{
	b->n = 0;
	put(b, sig, sizeof(sig));
	put8(b, ver_cmd);
	put8(b, fam);
	put16(b, (unsigned)blen);
	put(b, body, blen);
}

static const uint8_t inet_body[12] = {192, 0, 2, 7, 127, 0, 0, 1, 0xc3, 0x50, 0x02, 0x4b}; /* 50000 -> 587 */

/* Every proper prefix of a header needs more, never a wrong verdict. */
static void assert_prefixes_need_more(const uint8_t *b, size_t n)
{
	struct proxyproto_header h;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(proxyproto_parse(b, i, &h), PROXYPROTO_NEED_MORE);
}

/* The sample connection both versions describe: 192.0.2.7:50000 to 127.0.0.1:587. */
static void assert_sample(const struct proxyproto_header *h, int version, size_t len)
{
	assert_int_equal(h->len, len);
	assert_int_equal(h->version, version);
	assert_false(h->local);
	assert_int_equal(h->family, AF_INET);
	assert_string_equal(h->src, "192.0.2.7");
	assert_string_equal(h->dst, "127.0.0.1");
	assert_int_equal(h->src_port, 50000);
	assert_int_equal(h->dst_port, 587);
}

static void parse_text(const char *text, enum proxyproto_status want, struct proxyproto_header *h)
{
	assert_int_equal(proxyproto_parse((const uint8_t *)text, strlen(text), h), want);
}

static void test_v1_tcp4(void **state)
{
	const char *hdr = "PROXY TCP4 192.0.2.7 127.0.0.1 50000 587\r\n";
	char in[200];
	struct proxyproto_header h;

	(void)state;
	snprintf(in, sizeof(in), "%sEHLO x\r\n", hdr); /* the connection's bytes follow */
	parse_text(in, PROXYPROTO_DONE, &h);
	assert_sample(&h, 1, strlen(hdr));
	assert_prefixes_need_more((const uint8_t *)hdr, strlen(hdr));
}

static void test_v1_tcp6_and_unknown(void **state)
{
	struct proxyproto_header h;

	(void)state;
	parse_text("PROXY TCP6 2001:DB8:0:0::1 ::1 65535 0\r\n", PROXYPROTO_DONE, &h);
	assert_int_equal(h.family, AF_INET6);
	assert_string_equal(h.src, "2001:db8::1"); /* canonical form */
	assert_int_equal(h.src_port, 65535);
	assert_int_equal(h.dst_port, 0);
	parse_text("PROXY UNKNOWN\r\n", PROXYPROTO_DONE, &h);
	assert_true(h.local);
	assert_int_equal(h.len, 15);
	parse_text("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", PROXYPROTO_DONE, &h);
	assert_true(h.local);
	assert_string_equal(h.src, "");
}

/* The longest v1 header the specification allows is accepted; one octet more is not. */
static void test_v1_limit(void **state)
{
	const char *longest = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	char over[200];
	struct proxyproto_header h;

	(void)state;
	assert_int_equal(strlen(longest), PROXYPROTO_V1_MAX);
	parse_text(longest, PROXYPROTO_DONE, &h);
	assert_int_equal(h.len, PROXYPROTO_V1_MAX);
	parse_text(
	        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	        "65535 65535\r\n",
	        PROXYPROTO_DONE, &h);
	assert_string_equal(h.src, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	snprintf(over, sizeof(over), "PROXY UNKNOWN %0*d\r\n", (int)(PROXYPROTO_V1_MAX - 15), 0);
	assert_int_equal(strlen(over), PROXYPROTO_V1_MAX + 1);
	parse_text(over, PROXYPROTO_INVALID, &h);
	/* No CR yet: refused as soon as the CRLF can no longer fit within the limit. */
	memset(over, 'x', sizeof(over));
	memcpy(over, "PROXY ", 6);
	assert_int_equal(proxyproto_parse((const uint8_t *)over, PROXYPROTO_V1_MAX - 2, &h),
	                 PROXYPROTO_NEED_MORE);
	assert_int_equal(proxyproto_parse((const uint8_t *)over, PROXYPROTO_V1_MAX - 1, &h),
	                 PROXYPROTO_INVALID);
}

static void test_v1_malformed(void **state)
{
	static const char *const bad[] = {
	        "EHLO client.example\r\n",
	        "PROXY\r\n",
	        "PROXY \r\n",
	        "proxy TCP4 192.0.2.7 127.0.0.1 1 2\r\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 1 2\rX",
	        "PROXY TCP5 192.0.2.7 127.0.0.1 1 2\r\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 1\r\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 1 2 3\r\n",
	        "PROXY TCP4  192.0.2.7 127.0.0.1 1 2\r\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 1 2 \r\n",
	        "PROXY TCP4 192.0.2.256 127.0.0.1 1 2\r\n",
	        "PROXY TCP4 ::1 127.0.0.1 1 2\r\n",
	        "PROXY TCP6 192.0.2.7 ::1 1 2\r\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 65536 2\r\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 01 2\r\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 -1 2\r\n",
	        "PROXY TCP4 192.0.2.7 127.0.0.1 1 2x\r\n",
	        "PROXY TCP4 192.0.2.7\t127.0.0.1 1 2\r\n",
	        "PROXY UNKNOWNX\r\n",
	};
	struct proxyproto_header h;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse_text(bad[i], PROXYPROTO_INVALID, &h);
		assert_non_null(h.error);
		assert_int_equal(h.len, 0);
	}
	/* A NUL in the line. */
	assert_int_equal(proxyproto_parse((const uint8_t *)"PROXY UNKNOWN\0\r\n", 16, &h),
	                 PROXYPROTO_INVALID);
	/* A wrong first octet is refused at once, not waited on. */
	assert_int_equal(proxyproto_parse((const uint8_t *)"\x16", 1, &h), PROXYPROTO_INVALID);
	assert_int_equal(proxyproto_parse((const uint8_t *)"PROXX", 5, &h), PROXYPROTO_INVALID);
}

static void test_v2_inet(void **state)
{
	struct buf b;
	struct proxyproto_header h;

	(void)state;
	v2(&b, 0x21, 0x11, inet_body, sizeof(inet_body));
	size_t hdr = b.n;
	put(&b, "\x16\x03\x01", 3); /* a ClientHello right behind it */
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_DONE);
	assert_sample(&h, 2, hdr);
	assert_prefixes_need_more(b.b, hdr);
}

static void test_v2_inet6_with_tlvs(void **state)
{
	struct buf body = {.n = 0}, b;
	struct proxyproto_header h;
	uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8};

	(void)state;
	a6[15] = 9;
	put(&body, a6, 16);
	a6[15] = 1;
	put(&body, a6, 16);
	put16(&body, 1234);
	put16(&body, 465);
	put8(&body, 0xEA); /* PP2_TYPE_AWS, a VPC endpoint id */
	put16(&body, 22);
	put(&body, "\x01vpce-0123456789abcdef", 22);
	put8(&body, 0x04); /* PP2_TYPE_NOOP, empty */
	put16(&body, 0);
	v2(&b, 0x21, 0x21, body.b, body.n);
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_DONE);
	assert_int_equal(h.family, AF_INET6);
	assert_string_equal(h.src, "2001:db8::9");
	assert_string_equal(h.dst, "2001:db8::1");
	assert_int_equal(h.src_port, 1234);
	assert_int_equal(h.dst_port, 465);
	assert_int_equal(h.len, b.n);
	assert_prefixes_need_more(b.b, b.n);
}

/* LOCAL (HAProxy's check-send-proxy), AF_UNSPEC and AF_UNIX: the connection's own address. */
static void test_v2_local(void **state)
{
	struct buf b;
	struct proxyproto_header h;
	uint8_t unix_body[216] = {'/'};

	(void)state;
	v2(&b, 0x20, 0x00, "", 0);
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_DONE);
	assert_true(h.local);
	assert_int_equal(h.len, 16);
	v2(&b, 0x20, 0x11, inet_body, sizeof(inet_body)); /* LOCAL with addresses: ignored */
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_DONE);
	assert_true(h.local);
	assert_string_equal(h.src, "");
	assert_int_equal(h.len, 28);
	v2(&b, 0x21, 0x00, "\x04\x00\x00", 3);
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_DONE);
	assert_true(h.local);
	v2(&b, 0x21, 0x31, unix_body, sizeof(unix_body));
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_DONE);
	assert_true(h.local);
}

static void assert_v2_invalid(unsigned ver_cmd, unsigned fam, const void *body, size_t blen)
{
	struct buf b;
	struct proxyproto_header h;

	v2(&b, ver_cmd, fam, body, blen);
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_INVALID);
	assert_non_null(h.error);
	assert_string_equal(h.src, "");
}

static void test_v2_malformed(void **state)
{
	uint8_t tlv[sizeof(inet_body) + 8];
	struct buf b;
	struct proxyproto_header h;

	(void)state;
	assert_v2_invalid(0x11, 0x11, inet_body, sizeof(inet_body)); /* version 1 in a v2 signature */
	assert_v2_invalid(0x31, 0x11, inet_body, sizeof(inet_body)); /* version 3 */
	assert_v2_invalid(0x22, 0x11, inet_body, sizeof(inet_body)); /* command 2 */
	assert_v2_invalid(0x21, 0x12, inet_body, sizeof(inet_body)); /* UDP */
	assert_v2_invalid(0x21, 0x41, inet_body, sizeof(inet_body)); /* family 4 */
	assert_v2_invalid(0x21, 0x11, inet_body, 11);                /* addresses cut short */
	assert_v2_invalid(0x21, 0x21, inet_body, sizeof(inet_body)); /* IPv6 needs 36 */
	memcpy(tlv, inet_body, sizeof(inet_body));
	memcpy(tlv + sizeof(inet_body), "\x04\x00\x06xxxxx", 8); /* a TLV past the end */
	assert_v2_invalid(0x21, 0x11, tlv, sizeof(tlv));
	assert_v2_invalid(0x21, 0x11, tlv, sizeof(inet_body) + 2); /* a TLV cut in its header */
	/* A signature that goes wrong in its last octet. */
	v2(&b, 0x21, 0x11, inet_body, sizeof(inet_body));
	b.b[11] = 0x0B;
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_INVALID);
	assert_int_equal(proxyproto_parse(b.b, 11, &h), PROXYPROTO_NEED_MORE);
	assert_int_equal(proxyproto_parse(b.b, 12, &h), PROXYPROTO_INVALID);
}

/* A length that claims more than livery buffers is refused from the fixed part alone, before
 * any of it arrives; the largest one accepted is parsed whole. */
static void test_v2_hostile_length(void **state)
{
	static struct buf b;
	static uint8_t body[65535];
	struct proxyproto_header h;

	(void)state;
	v2(&b, 0x21, 0x11, body, sizeof(body));
	assert_int_equal(proxyproto_parse(b.b, 16, &h), PROXYPROTO_INVALID);
	memcpy(body, inet_body, sizeof(inet_body));
	size_t n = PROXYPROTO_V2_MAX - 16;
	body[12] = 0x04; /* one NOOP TLV fills the rest */
	body[13] = (uint8_t)((n - 15) >> 8);
	body[14] = (uint8_t)((n - 15) & 0xff);
	v2(&b, 0x21, 0x11, body, n);
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_DONE);
	assert_int_equal(h.len, PROXYPROTO_V2_MAX);
	assert_int_equal(proxyproto_parse(b.b, b.n - 1, &h), PROXYPROTO_NEED_MORE);
	v2(&b, 0x21, 0x11, body, n + 1);
	assert_int_equal(proxyproto_parse(b.b, b.n, &h), PROXYPROTO_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_v1_tcp4),           cmocka_unit_test(test_v1_tcp6_and_unknown),
	        cmocka_unit_test(test_v1_limit),          cmocka_unit_test(test_v1_malformed),
	        cmocka_unit_test(test_v2_inet),           cmocka_unit_test(test_v2_inet6_with_tlvs),
	        cmocka_unit_test(test_v2_local),          cmocka_unit_test(test_v2_malformed),
	        cmocka_unit_test(test_v2_hostile_length),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

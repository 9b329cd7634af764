/* Unit tests for tls_hello_rejects_ecdsa: the pure reading of a ClientHello's
 * signature_algorithms that picks an RSA certificate for clients that cannot verify ECDSA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tls.h"

struct hello {
	unsigned char buf[512];
	size_t len;
};

static void put(struct hello *h, unsigned v, int nbytes)
{
	for (int i = nbytes - 1; i >= 0; i--)
		h->buf[h->len++] = (unsigned char)(v >> (8 * i));
}

static void patch(struct hello *h, size_t at, unsigned v, int nbytes)
{
	for (int i = nbytes - 1; i >= 0; i--)
		h->buf[at++] = (unsigned char)(v >> (8 * i));
}

static const unsigned default_suites[] = {0x1301, 0xc02b}; /* TLS13-AES128-GCM, ECDHE-ECDSA-AES128-GCM */

/* A ClientHello record offering suites, with an SNI extension and, when nalgs >= 0,
 * signature_algorithms. */
static void build_with(struct hello *h, const unsigned *suites, int nsuites, const unsigned *algs, int nalgs)
{
	h->len = 0;
	put(h, 0x16, 1), put(h, 0x0301, 2);
	size_t rec_len = h->len;
	put(h, 0, 2);
	put(h, 1, 1);
	size_t body_len = h->len;
	put(h, 0, 3);
	put(h, 0x0303, 2);
	for (int i = 0; i < 32; i++)
		put(h, (unsigned)i, 1);
	put(h, 0, 1); /* session_id */
	put(h, (unsigned)(2 * nsuites), 2);
	for (int i = 0; i < nsuites; i++)
		put(h, suites[i], 2);
	put(h, 1, 1), put(h, 0, 1); /* compression: null */
	size_t ext_len = h->len;
	put(h, 0, 2);
	put(h, 0, 2), put(h, 9, 2), put(h, 7, 2), put(h, 0, 1), put(h, 4, 2); /* server_name "a.te" */
	memcpy(h->buf + h->len, "a.te", 4), h->len += 4;
	if (nalgs >= 0) {
		put(h, 13, 2), put(h, (unsigned)(2 + 2 * nalgs), 2), put(h, (unsigned)(2 * nalgs), 2);
		for (int i = 0; i < nalgs; i++)
			put(h, algs[i], 2);
	}
	patch(h, ext_len, (unsigned)(h->len - ext_len - 2), 2);
	patch(h, body_len, (unsigned)(h->len - body_len - 3), 3);
	patch(h, rec_len, (unsigned)(h->len - rec_len - 2), 2);
}

static void build(struct hello *h, const unsigned *algs, int nalgs)
{
	build_with(h, default_suites, 2, algs, nalgs);
}

static void test_rsa_only_rejects(void **state)
{
	(void)state;
	const unsigned rsa[] = {0x0804, 0x0401, 0x0805}; /* rsa_pss_rsae_sha256, rsa_pkcs1_sha256, ... */
	struct hello h;
	build(&h, rsa, 3);
	assert_true(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
}

static void test_ecdsa_accepted(void **state)
{
	(void)state;
	const unsigned mixed[] = {0x0804, 0x0403}; /* ... and ecdsa_secp256r1_sha256 */
	const unsigned tls12[] = {0x0601, 0x0203}; /* (sha512, rsa), (sha1, ecdsa) */
	const unsigned eddsa[] = {0x0807, 0x0401}; /* ed25519 is not ECDSA */
	struct hello h;
	build(&h, mixed, 2);
	assert_false(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
	build(&h, tls12, 2);
	assert_false(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
	build(&h, eddsa, 2);
	assert_true(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
}

/* TLS 1.2 only, and only RSA key exchange suites: ECDSA cannot be used whatever the sigalgs. */
static void test_suites_decide_too(void **state)
{
	(void)state;
	const unsigned ecdsa[] = {0x0403, 0x0804};
	const unsigned rsa_suites[] = {0xc02f, 0xc030}; /* ECDHE-RSA-AES128/256-GCM */
	const unsigned tls13_only[] = {0x1303};
	const unsigned ecdsa_chacha[] = {0xc02f, 0xcca9};
	struct hello h;
	build_with(&h, rsa_suites, 2, ecdsa, 2);
	assert_true(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
	build_with(&h, rsa_suites, 2, NULL, -1);
	assert_true(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
	build_with(&h, tls13_only, 1, ecdsa, 2);
	assert_false(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
	build_with(&h, ecdsa_chacha, 2, ecdsa, 2);
	assert_false(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
	build_with(&h, rsa_suites, 0, ecdsa, 2); /* no suites at all: malformed, no verdict */
	assert_false(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
}

static void test_no_extension_is_no_verdict(void **state)
{
	(void)state;
	struct hello h;
	build(&h, NULL, -1);
	assert_false(tls_hello_rejects_ecdsa((const char *)h.buf, h.len));
}

/* Whatever is cut short or inconsistent gives no verdict, and reads nothing beyond len. */
static void test_truncated_and_malformed(void **state)
{
	(void)state;
	const unsigned rsa[] = {0x0804};
	struct hello h;
	build(&h, rsa, 1);
	for (size_t n = 0; n < h.len; n++)
		assert_false(tls_hello_rejects_ecdsa((const char *)h.buf, n));
	struct hello bad = h;
	patch(&bad, bad.len - 4, 3, 2); /* odd list length */
	assert_false(tls_hello_rejects_ecdsa((const char *)bad.buf, bad.len));
	bad = h;
	bad.buf[5] = 2; /* a ServerHello */
	assert_false(tls_hello_rejects_ecdsa((const char *)bad.buf, bad.len));
	bad = h;
	patch(&bad, 6, 0xffffff, 3); /* a handshake longer than its record (split hello) */
	assert_false(tls_hello_rejects_ecdsa((const char *)bad.buf, bad.len));
	assert_false(tls_hello_rejects_ecdsa("GET / HTTP/1.1\r\n", 16));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rsa_only_rejects),
	        cmocka_unit_test(test_ecdsa_accepted),
	        cmocka_unit_test(test_suites_decide_too),
	        cmocka_unit_test(test_no_extension_is_no_verdict),
	        cmocka_unit_test(test_truncated_and_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for sasl: PLAIN and LOGIN responses decoded for local authentication, livery's own encoded for
 * the relay, and the auth_domains rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sasl.h"

static void test_plain(void **state)
{
	char user[64], pass[64];

	/* "\0ann@acme.test\0s3cret" */
	assert_true(sasl_plain_decode("AGFubkBhY21lLnRlc3QAczNjcmV0", 28, user, sizeof(user), pass,
	                              sizeof(pass)));
	assert_string_equal(user, "ann@acme.test");
	assert_string_equal(pass, "s3cret");
	/* "ann@acme.test\0ann@acme.test\0s3cret": authzid = authcid is fine */
	const char *same = "YW5uQGFjbWUudGVzdABhbm5AYWNtZS50ZXN0AHMzY3JldA==";
	assert_true(sasl_plain_decode(same, strlen(same), user, sizeof(user), pass, sizeof(pass)));
	assert_string_equal(user, "ann@acme.test");
	/* "bob\0ann@acme.test\0s3cret": acting as someone else is refused */
	const char *other = "Ym9iAGFubkBhY21lLnRlc3QAczNjcmV0";
	assert_false(sasl_plain_decode(other, strlen(other), user, sizeof(user), pass, sizeof(pass)));
	/* "\0ann\0": no password; "\0\0pw": no user; no NULs; not base64; too small for the output */
	assert_false(sasl_plain_decode("AGFubgA=", 8, user, sizeof(user), pass, sizeof(pass)));
	assert_false(sasl_plain_decode("AABwdw==", 8, user, sizeof(user), pass, sizeof(pass)));
	assert_false(sasl_plain_decode("YW5u", 4, user, sizeof(user), pass, sizeof(pass)));
	assert_false(sasl_plain_decode("!!!!", 4, user, sizeof(user), pass, sizeof(pass)));
	assert_false(sasl_plain_decode("", 0, user, sizeof(user), pass, sizeof(pass)));
	assert_false(sasl_plain_decode("AGFubkBhY21lLnRlc3QAczNjcmV0", 28, user, 5, pass, sizeof(pass)));
}

static void test_login(void **state)
{
	char out[64];

	assert_true(sasl_login_decode("YW5uQGFjbWUudGVzdA==", 20, out, sizeof(out)));
	assert_string_equal(out, "ann@acme.test");
	assert_false(sasl_login_decode("YQBi", 4, out, sizeof(out))); /* "a\0b" */
	assert_false(sasl_login_decode("*", 1, out, sizeof(out)));
	assert_false(sasl_login_decode("", 0, out, sizeof(out)));
}

static void test_b64_valid(void **state)
{
	assert_true(sasl_b64_valid("", 0));
	assert_true(sasl_b64_valid("=", 1)); /* RFC 4954: a zero-length response */
	assert_true(sasl_b64_valid("AABwdw==", 8));
	assert_true(sasl_b64_valid("YW5u", 4));
	assert_true(sasl_b64_valid("a+/9", 4));
	assert_false(sasl_b64_valid("YW5", 3));
	assert_false(sasl_b64_valid("!!!!", 4));
	assert_false(sasl_b64_valid("YW=u", 4));
	assert_false(sasl_b64_valid("Y===", 4));
	assert_false(sasl_b64_valid("YW5u\0AAA", 8));
	assert_false(sasl_b64_valid("*", 1));
	assert_false(sasl_b64_valid("YW5u YW5u", 9));
}

static void test_encode_round_trip(void **state)
{
	char b64[128], user[64], pass[64];

	assert_true(sasl_plain_encode("relay@example.test", "p@ss word", b64, sizeof(b64)));
	assert_true(sasl_plain_decode(b64, strlen(b64), user, sizeof(user), pass, sizeof(pass)));
	assert_string_equal(user, "relay@example.test");
	assert_string_equal(pass, "p@ss word");
	assert_false(sasl_plain_encode("relay@example.test", "p@ss word", b64, 10));
	assert_true(sasl_b64_encode("Username:", b64, sizeof(b64)));
	assert_string_equal(b64, "VXNlcm5hbWU6");
}

static void test_domains(void **state)
{
	char *domains[] = {"acme.test", "acme.example"};

	assert_true(sasl_domain_allowed("anyone", domains, 0));
	assert_true(sasl_domain_allowed("ann@acme.test", domains, 2));
	assert_true(sasl_domain_allowed("ann@ACME.Example", domains, 2));
	assert_false(sasl_domain_allowed("ann@evil.test", domains, 2));
	assert_false(sasl_domain_allowed("ann@sub.acme.test", domains, 2));
	assert_false(sasl_domain_allowed("ann", domains, 2));
	assert_false(sasl_domain_allowed("@acme.test", domains, 2));
	assert_false(sasl_domain_allowed("ann@acme.test@evil.test", domains, 2));
	assert_false(sasl_domain_allowed("", domains, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_plain),
	        cmocka_unit_test(test_login),
	        cmocka_unit_test(test_b64_valid),
	        cmocka_unit_test(test_encode_round_trip),
	        cmocka_unit_test(test_domains),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

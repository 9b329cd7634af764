/* test_cidr: CIDR ranges (cidr_parse) and membership (cidr_match): IPv4, IPv6, single addresses, prefix
 * edges, IPv4-mapped IPv6 addresses, and the malformed ranges a configuration may hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "cidr.h"

static struct cidr parse_ok(const char *text)
{
	struct cidr c;
	const char *why = "unset";

	assert_true(cidr_parse(text, &c, &why));
	assert_null(why);
	return c;
}

static void test_parse(void **state)
{
	(void)state;
	struct cidr c = parse_ok("10.0.0.0/8");
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.bits, 8);
	assert_int_equal(parse_ok("127.0.0.1").bits, 32);
	assert_int_equal(parse_ok("0.0.0.0/0").bits, 0);
	c = parse_ok("2001:db8::/32");
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.bits, 32);
	assert_int_equal(parse_ok("::1").bits, 128);
	assert_int_equal(parse_ok("10.1.2.128/25").bits, 25);
}

static void test_parse_bad(void **state)
{
	static const char *const bad[] = {"",
	                                  "/8",
	                                  "10.0.0.0/",
	                                  "10.0.0.0/33",
	                                  "10.0.0.0/-1",
	                                  "10.0.0.0/08",
	                                  "10.0.0.0/8x",
	                                  "10.0.0/8",
	                                  "10.0.0.256",
	                                  "example.com",
	                                  "::1/129",
	                                  "10.0.0.1/8",
	                                  "2001:db8::1/32",
	                                  "10.1.2.129/25",
	                                  " 10.0.0.0/8"};
	struct cidr c;
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_false(cidr_parse(bad[i], &c, &why));
		assert_non_null(why);
	}
}

static void test_match(void **state)
{
	struct cidr list[3];

	(void)state;
	list[0] = parse_ok("10.0.0.0/8");
	list[1] = parse_ok("192.0.2.128/25");
	list[2] = parse_ok("2001:db8::/32");
	assert_true(cidr_match(list, 3, "10.255.0.1"));
	assert_false(cidr_match(list, 3, "11.0.0.1"));
	assert_true(cidr_match(list, 3, "192.0.2.128"));
	assert_true(cidr_match(list, 3, "192.0.2.255"));
	assert_false(cidr_match(list, 3, "192.0.2.127"));
	assert_true(cidr_match(list, 3, "2001:db8:ffff::1"));
	assert_false(cidr_match(list, 3, "2001:db9::1"));
	assert_true(cidr_match(list, 3, "::ffff:10.1.2.3")); /* IPv4-mapped */
	assert_false(cidr_match(list, 3, "::ffff:11.1.2.3"));
	assert_false(cidr_match(list, 3, "?"));
	assert_false(cidr_match(list, 0, "10.0.0.1"));
	struct cidr any = parse_ok("0.0.0.0/0");
	assert_true(cidr_match(&any, 1, "203.0.113.9"));
	assert_false(cidr_match(&any, 1, "::1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse),
	        cmocka_unit_test(test_parse_bad),
	        cmocka_unit_test(test_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

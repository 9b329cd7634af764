/* test_asn1time: X.509 validity times as Unix seconds: both RFC 5280 forms, the 1950/2049 UTCTime
 * window, leap days, the time zone playing no part, and the malformed texts a certificate may hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "asn1time.h"

static long long parse_ok(const char *text)
{
	long long v = -42;

	assert_true(asn1time_parse((const unsigned char *)text, strlen(text), &v));
	return v;
}

static void test_forms(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("700101000000Z"), 0);
	assert_int_equal(parse_ok("19700101000000Z"), 0);
	/* openssl x509 -enddate: Apr  5 12:38:08 2027 GMT */
	assert_int_equal(parse_ok("270405123808Z"), 1806928688);
	assert_int_equal(parse_ok("20270405123808Z"), 1806928688);
	assert_int_equal(parse_ok("491231235959Z"), 2524607999LL);
	assert_int_equal(parse_ok("500101000000Z"), -631152000LL);
	assert_int_equal(parse_ok("99991231235959Z"), 253402300799LL);
	assert_int_equal(parse_ok("20380119031408Z"), 2147483648LL);
}

static void test_leap_days(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("20240229000000Z") + 86400, parse_ok("20240301000000Z"));
	assert_int_equal(parse_ok("20000229120000Z"), 951825600);
	assert_int_equal(parse_ok("20231231235959Z") + 1, parse_ok("20240101000000Z"));
}

/* The same instant whatever TZ says, including across a daylight-saving change. */
static void test_no_time_zone(void **state)
{
	(void)state;
	static const char *const zones[] = {"UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"};
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		setenv("TZ", zones[i], 1);
		tzset();
		assert_int_equal(parse_ok("270405123808Z"), 1806928688);
		assert_int_equal(parse_ok("20261206123808Z"), 1796560688);
	}
	unsetenv("TZ");
	tzset();
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "Z",
	    "2704051238Z",       /* no seconds */
	    "270405123808",      /* no Z, 12 octets */
	    "2704051238080",     /* no Z, 13 octets */
	    "270405123808+0100", /* an offset */
	    "20270405123808.5Z", /* fractional seconds */
	    "271305123808Z",     /* month 13 */
	    "270005123808Z",     /* month 0 */
	    "270400123808Z",     /* day 0 */
	    "270431123808Z",     /* 31 April */
	    "230229000000Z",     /* 29 February, not a leap year */
	    "21000229000000Z",   /* 2100 is not a leap year */
	    "270405243808Z",     /* hour 24 */
	    "270405126008Z",     /* minute 60 */
	    "270405123860Z",     /* second 60 */
	    "27O405123808Z",     /* a letter */
	    "2704 5123808Z",
	    "-70405123808Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long long v = 7;
		assert_false(asn1time_parse((const unsigned char *)bad[i], strlen(bad[i]), &v));
		assert_int_equal(v, 7);
	}
	long long v = 7;
	assert_false(asn1time_parse(NULL, 13, &v));
	assert_int_equal(parse_ok("20000229000000Z"), 951782400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_forms),
	    cmocka_unit_test(test_leap_days),
	    cmocka_unit_test(test_no_time_zone),
	    cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

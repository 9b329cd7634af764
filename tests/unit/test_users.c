/* Unit tests for users: the users_file parser and lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "users.h"

#define Y1 "$y$j9T$o3L8I4oYIW8krAycsjFHj/$.1ddkSg51TqJVUczt1iGiW0yzqeCEvU5xrFQxPNZoy0"
#define B1 "$2b$05$abcdefghijklmnopqrstuu5Tz1gVnQb9yF2mYUbyZ6Vf0M7HzYvFC"
#define S1                                                                                                   \
	"$6$VdH.39a57gJcn.wx$lydwlz6ia.fneF3SU07Uaz0D2LZ3oXjsl."                                             \
	"7x8IRDkpdDWSpaGrvpyuRQJlJE4vPKZC5DavEIuJYrg7WedLHd01"

static struct users *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return users_parse(text, strlen(text), err, errlen);
}

static void test_good_file(void **state)
{
	char err[200];
	struct users *u = parse("# customers of acme\n\nann@acme.test:" Y1 "\r\nbob@acme.test:" B1 "  \n"
	                        "carol:" S1,
	                        err, sizeof(err));

	assert_non_null(u);
	assert_int_equal(users_count(u), 3);
	assert_string_equal(users_find(u, "ann@acme.test"), Y1);
	assert_string_equal(users_find(u, "bob@acme.test"), B1);
	assert_string_equal(users_find(u, "carol"), S1);
	assert_null(users_find(u, "Ann@acme.test")); /* names are exact */
	assert_null(users_find(u, "dave"));
	assert_string_equal(users_decoy(u), Y1); /* the first line's hash */
	users_free(u);
}

static void test_empty_file(void **state)
{
	char err[200];
	struct users *u = parse("# nobody yet\n", err, sizeof(err));

	assert_non_null(u);
	assert_int_equal(users_count(u), 0);
	assert_null(users_find(u, "ann"));
	assert_null(users_decoy(u));
	users_free(u);
}

static void assert_refused(const char *text, const char *want)
{
	char err[200];
	struct users *u = parse(text, err, sizeof(err));

	if (u)
		fail_msg("accepted: %s", text);
	assert_string_equal(err, want);
}

static void test_bad_lines(void **state)
{
	assert_refused("ann@acme.test " Y1 "\n", "line 1: expected user:hash");
	assert_refused("ok:" Y1 "\n:" Y1 "\n",
	               "line 2: the user name must be 1 to 255 printable characters without spaces");
	assert_refused("a b:" Y1 "\n",
	               "line 1: the user name must be 1 to 255 printable characters without spaces");
	assert_refused(
	        "ann:plaintext\n",
	        "line 1: the hash is not a supported crypt(3) hash ($y$, $2b$, $6$; see livery passwd)");
	assert_refused(
	        "ann:$1$md5salt$abcdefghijklmnopqrstuv\n",
	        "line 1: the hash is not a supported crypt(3) hash ($y$, $2b$, $6$; see livery passwd)");
	assert_refused(
	        "ann:$y$\n",
	        "line 1: the hash is not a supported crypt(3) hash ($y$, $2b$, $6$; see livery passwd)");
	assert_refused("ann:" Y1 "\nbob:" B1 "\nann:" S1 "\n",
	               "line 3: user 'ann' is listed twice (first on line 1)");
	char nul[] = "ann:" Y1 "\nb\0b:" B1 "\n";
	char err[200];
	assert_null(users_parse(nul, sizeof(nul) - 1, err, sizeof(err)));
	assert_string_equal(err, "line 2: a NUL byte");
}

static void test_hash_formats(void **state)
{
	assert_true(users_hash_supported(Y1));
	assert_true(users_hash_supported(B1));
	assert_true(users_hash_supported(S1));
	assert_true(users_hash_supported("$gy$xyz"));
	assert_false(users_hash_supported("$6$with space"));
	assert_false(users_hash_supported("$6$with:colon"));
	assert_false(users_hash_supported("*"));
	assert_false(users_hash_supported(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_good_file),
	        cmocka_unit_test(test_empty_file),
	        cmocka_unit_test(test_bad_lines),
	        cmocka_unit_test(test_hash_formats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for ticketkeys: the session-ticket key file's lines, comments, limits and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ticketkeys.h"

/* 48 octets 0x00..0x2f and 48 octets 0xff, as `openssl rand -base64 48` prints them. */
#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v"
#define KEY_B "////////////////////////////////////////////////////////////////"

static bool parse(const char *text, struct ticketkeys *k, int *line, char *err)
{
	return ticketkeys_parse(text, strlen(text), k, line, err, 256);
}

static void test_keys_in_order(void **state)
{
	struct ticketkeys k;
	char err[256];
	int line;

	(void)state;
	assert_true(parse("# rotated daily\n" KEY_B "\r\n\n  " KEY_A "  \n", &k, &line, err));
	assert_int_equal(k.n, 2);
	assert_int_equal(k.key[0].len, 48);
	assert_int_equal(k.key[0].octets[0], 0xff);
	assert_int_equal(k.key[1].len, 48);
	for (int i = 0; i < 48; i++)
		assert_int_equal(k.key[1].octets[i], i);
	ticketkeys_wipe(&k);
	assert_int_equal(k.n, 0);
}

/* 32 octets without padding, 80 octets (nginx's file size) with it; no final newline. */
static void test_lengths(void **state)
{
	struct ticketkeys k;
	char err[256], text[200];
	int line;

	(void)state;
	assert_true(parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &k, &line, err)); /* 43 digits: 32 */
	assert_int_equal(k.key[0].len, 32);
	memset(text, 'A', 107);
	strcpy(text + 107, "=");
	assert_true(parse(text, &k, &line, err));
	assert_int_equal(k.key[0].len, 80);
	memset(text, 'A', 112); /* 84 octets */
	text[112] = '\0';
	assert_false(parse(text, &k, &line, err));
	assert_int_equal(line, 1);
}

static void test_refusals(void **state)
{
	struct ticketkeys k;
	char err[256];
	int line;

	(void)state;
	assert_false(parse(KEY_A "\nnot base64 at all!\n", &k, &line, err));
	assert_int_equal(line, 2);
	assert_non_null(strstr(err, "base64"));
	assert_null(strstr(err, "not base64 at all")); /* a key file's text is never quoted */
	assert_int_equal(k.n, 0);
	assert_false(parse("c2hvcnQ=\n", &k, &line, err)); /* 5 octets */
	assert_int_equal(line, 1);
	assert_false(parse(KEY_A "\n" KEY_B "\n" KEY_A "\n", &k, &line, err));
	assert_int_equal(line, 3);
	assert_non_null(strstr(err, "line 1"));
	assert_false(parse("# only a comment\n\n", &k, &line, err));
	assert_int_equal(line, 0);
	assert_false(parse("", &k, &line, err));
	assert_false(parse(KEY_A "=A\n", &k, &line, err)); /* padding inside */
	assert_false(
	        parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9", &k, &line, err)); /* leftover bits */
}

static void test_at_most_eight(void **state)
{
	struct ticketkeys k;
	char err[256], text[1024] = "";
	int line;

	(void)state;
	for (int i = 0; i < 9; i++) {
		char key[80];
		snprintf(key, sizeof(key),
		         "%cAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n", 'A' + i);
		strcat(text, key);
		assert_int_equal(parse(text, &k, &line, err), i < 8);
	}
	assert_int_equal(line, 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_keys_in_order),
	        cmocka_unit_test(test_lengths),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_at_most_eight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

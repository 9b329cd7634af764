/* Unit tests for names: host-name normalisation and exact/wildcard matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"

static bool norm(const char *in, bool wild, char *out)
{
	memset(out, 'Z', NAME_MAX_LEN + 1);
	return name_normalize(in, strlen(in), out, wild);
}

static void assert_norm(const char *in, bool wild, const char *want)
{
	char out[NAME_MAX_LEN + 1];

	if (!norm(in, wild, out))
		fail_msg("\"%s\" refused, want \"%s\"", in, want);
	assert_string_equal(out, want);
}

static void assert_refused(const char *in, bool wild)
{
	char out[NAME_MAX_LEN + 1];

	if (norm(in, wild, out))
		fail_msg("\"%s\" accepted as \"%s\" (wildcards %s)", in, out,
		         wild ? "allowed" : "not allowed");
}

/* A name of total length len made of labels of at most label_len octets. */
static char *make_name(size_t len, size_t label_len)
{
	char *s = malloc(len + 1);
	size_t in_label = 0;

	assert_non_null(s);
	for (size_t i = 0; i < len; i++) {
		if (in_label == label_len && i + 1 < len) {
			s[i] = '.';
			in_label = 0;
		} else {
			s[i] = (char)('a' + i % 26);
			in_label++;
		}
	}
	s[len] = '\0';
	return s;
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- normalisation ------------------------------------------------------------------------ */

static void test_lower_case(void **state)
{
	assert_norm("SMTP.Acme.TEST", false, "smtp.acme.test");
	assert_norm("smtp.acme.test", false, "smtp.acme.test");
	assert_norm("A-1.B_2.Example", false, "a-1.b_2.example");
	assert_norm("localhost", false, "localhost");
}

static void test_trailing_dot(void **state)
{
	assert_norm("smtp.acme.test.", false, "smtp.acme.test");
	assert_norm("SMTP.ACME.TEST.", true, "smtp.acme.test");
	assert_norm("a.", false, "a");
	assert_refused("smtp.acme.test..", false);
	assert_refused("a..", false);
}

static void test_empty_and_dots(void **state)
{
	assert_refused("", false);
	assert_refused("", true);
	assert_refused(".", false);
	assert_refused("..", false);
	assert_refused("a..b", false);
	assert_refused(".a", false);
	assert_refused(".a.b", true);
	assert_refused("a.b..c", false);
}

static void test_label_length(void **state)
{
	char *l63 = repeat('x', 63), *l64 = repeat('x', 64);
	char buf[200];

	assert_norm(l63, false, l63);
	assert_refused(l64, false);

	snprintf(buf, sizeof(buf), "%s.acme.test", l63);
	assert_norm(buf, false, buf);
	snprintf(buf, sizeof(buf), "%s.acme.test", l64);
	assert_refused(buf, false);
	snprintf(buf, sizeof(buf), "acme.%s.test", l64);
	assert_refused(buf, false);
	snprintf(buf, sizeof(buf), "acme.test.%s", l64);
	assert_refused(buf, false);
	snprintf(buf, sizeof(buf), "acme.test.%s.", l64);
	assert_refused(buf, false);
	snprintf(buf, sizeof(buf), "*.%s", l64);
	assert_refused(buf, true);
	snprintf(buf, sizeof(buf), "*.%s", l63);
	assert_norm(buf, true, buf);
	free(l63);
	free(l64);
}

static void test_name_length(void **state)
{
	char *n253 = make_name(253, 63), *n254 = make_name(254, 63);
	char with_dot[256];

	assert_int_equal(strlen(n253), 253);
	assert_int_equal(strlen(n254), 254);
	assert_norm(n253, false, n253);
	assert_refused(n254, false);
	/* A trailing dot does not count. */
	snprintf(with_dot, sizeof(with_dot), "%s.", n253);
	assert_norm(with_dot, false, n253);
	snprintf(with_dot, sizeof(with_dot), "%s.", n254);
	assert_refused(with_dot, false);
	free(n253);
	free(n254);
}

static void test_underscores(void **state)
{
	assert_norm("_dmarc.acme.test", false, "_dmarc.acme.test");
	assert_norm("a_b.test", false, "a_b.test");
	assert_norm("_", false, "_");
}

static void test_bad_chars(void **state)
{
	static const char *const bad[] = {
	    "a b.test",        "a/b.test", "a:b",         "a@b.test",         "a\tb", "smtp.acme.test ",
	    " smtp.acme.test", "a*b.test", "*.acme.test", "caf\xc3\xa9.test", "a,b",  "a\\b",
	    "[127.0.0.1]",     "a.b/"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i], false);
	char out[NAME_MAX_LEN + 1];
	assert_false(name_normalize("a\0b", 3, out, false));
}

static void test_length_is_respected(void **state)
{
	char out[NAME_MAX_LEN + 1];

	assert_true(name_normalize("ACME.TEST garbage", 9, out, false));
	assert_string_equal(out, "acme.test");
	assert_true(name_normalize("acme.test.xyz", 10, out, false));
	assert_string_equal(out, "acme.test");
}

static void test_wildcard(void **state)
{
	assert_norm("*.acme.test", true, "*.acme.test");
	assert_norm("*.ACME.Test.", true, "*.acme.test");
	assert_norm("*.test", true, "*.test");
	assert_refused("*.acme.test", false);

	/* Only a whole leading "*." label. */
	static const char *const bad[] = {"*",
	                                  "*.",
	                                  "**.acme.test",
	                                  "*acme.test",
	                                  "a*.acme.test",
	                                  "a.*.b",
	                                  "acme.*",
	                                  "*.*.acme.test",
	                                  "*..test",
	                                  "*-x.acme.test",
	                                  ".*.acme.test",
	                                  "*.acme.*",
	                                  "x.*"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i], true);
}

static void test_is_wildcard(void **state)
{
	assert_true(name_is_wildcard("*.acme.test"));
	assert_false(name_is_wildcard("acme.test"));
	assert_false(name_is_wildcard("*"));
	assert_false(name_is_wildcard(""));
	assert_false(name_is_wildcard("x.*.test"));
}

/* ---- matching ----------------------------------------------------------------------------- */

static void test_match_exact(void **state)
{
	assert_true(name_match("smtp.acme.test", "smtp.acme.test"));
	assert_false(name_match("smtp.acme.test", "mail.acme.test"));
	assert_false(name_match("acme.test", "x.acme.test"));
	assert_false(name_match("x.acme.test", "acme.test"));
	assert_false(name_match("smtp.acme.test", "smtp.acme.tes"));
	assert_false(name_match("smtp.acme.test", "smtp.acme.testx"));
}

static void test_match_wildcard_one_label(void **state)
{
	assert_true(name_match("*.acme.test", "x.acme.test"));
	assert_true(name_match("*.acme.test", "smtp-1.acme.test"));
	assert_false(name_match("*.acme.test", "acme.test"));
	assert_false(name_match("*.acme.test", "a.b.acme.test"));
	assert_false(name_match("*.acme.test", "xacme.test"));
	assert_false(name_match("*.acme.test", ".acme.test"));
	assert_false(name_match("*.acme.test", "x.acme.testx"));
	assert_false(name_match("*.acme.test", "x.acme.test.evil"));
	assert_false(name_match("*.acme.test", "x.other.test"));
	assert_false(name_match("*.acme.test", "test"));
	assert_false(name_match("*.acme.test", ""));

	assert_true(name_match("*.test", "acme.test"));
	assert_false(name_match("*.test", "x.acme.test"));
}

static void test_match_after_normalise(void **state)
{
	char pat[NAME_MAX_LEN + 1], host[NAME_MAX_LEN + 1];

	assert_true(norm("*.Globex.TEST.", true, pat));
	assert_true(norm("MAIL.globex.test.", false, host));
	assert_true(name_match(pat, host));
	assert_true(norm("SMTP.acme.test", false, pat));
	assert_true(norm("smtp.ACME.test.", false, host));
	assert_true(name_match(pat, host));
}

/* ---- the table certstore looks SNI up in ------------------------------------------------ */

static const char *lookup(const char *host)
{
	static struct name_entry t[] = {
	    {"smtp.globex.test", "exact"}, {"*.globex.test", "wild"},  {"smtp.acme.test", "acme"},
	    {"mail.acme.test", "acme"},    {"*.test", "toplevel"},     {"*.deep.acme.test", "deep"},
	};
	static bool sorted;

	if (!sorted) {
		name_table_sort(t, sizeof(t) / sizeof(t[0]));
		sorted = true;
	}
	return name_table_lookup(t, sizeof(t) / sizeof(t[0]), host);
}

static void test_table_exact_beats_wildcard(void **state)
{
	assert_string_equal(lookup("smtp.globex.test"), "exact");
	assert_string_equal(lookup("mail.globex.test"), "wild");
	assert_string_equal(lookup("smtp.acme.test"), "acme");
}

static void test_table_case_and_trailing_dot(void **state)
{
	assert_string_equal(lookup("SMTP.Globex.Test."), "exact");
	assert_string_equal(lookup("MAIL.GLOBEX.TEST"), "wild");
	assert_string_equal(lookup("Mail.Acme.Test."), "acme");
	assert_null(lookup("smtp.acme.test.."));
}

static void test_table_wildcard_covers_one_label(void **state)
{
	assert_null(lookup("a.b.globex.test"));
	assert_null(lookup("globex.test.evil"));
	assert_string_equal(lookup("x.deep.acme.test"), "deep");
	assert_null(lookup("deep.acme.test"));
	assert_string_equal(lookup("acme.test"), "toplevel"); /* "*.test" covers one label */
	assert_null(lookup("x.acme.test"));                   /* ... and not two */
}

static void test_table_invalid_names(void **state)
{
	assert_null(lookup(""));
	assert_null(lookup("*.globex.test"));
	assert_null(lookup("smtp .acme.test"));
	assert_null(lookup("smtp..acme.test"));
	char longlabel[80];
	memset(longlabel, 'a', 64);
	strcpy(longlabel + 64, ".globex.test");
	assert_null(lookup(longlabel));
	assert_null(name_table_lookup(NULL, 0, "smtp.acme.test"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lower_case),
	    cmocka_unit_test(test_trailing_dot),
	    cmocka_unit_test(test_empty_and_dots),
	    cmocka_unit_test(test_label_length),
	    cmocka_unit_test(test_name_length),
	    cmocka_unit_test(test_underscores),
	    cmocka_unit_test(test_bad_chars),
	    cmocka_unit_test(test_length_is_respected),
	    cmocka_unit_test(test_wildcard),
	    cmocka_unit_test(test_is_wildcard),
	    cmocka_unit_test(test_match_exact),
	    cmocka_unit_test(test_match_wildcard_one_label),
	    cmocka_unit_test(test_match_after_normalise),
	    cmocka_unit_test(test_table_exact_beats_wildcard),
	    cmocka_unit_test(test_table_case_and_trailing_dot),
	    cmocka_unit_test(test_table_wildcard_covers_one_label),
	    cmocka_unit_test(test_table_invalid_names),
	};
	return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}

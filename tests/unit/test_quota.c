/* Unit tests for the pure parts of the sending limits: quota_key (windows, keys, Redis URLs) and quota_mem
 * (the shared counters: exact limits, no budget spent on a refusal, windows, sharing across a fork). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "quota_key.h"
#include "quota_mem.h"

static void test_windows(void **state)
{
	assert_int_equal(quota_window(0), 0);
	assert_int_equal(quota_window(3599), 0);
	assert_int_equal(quota_window(3600), 1);
	assert_int_equal(quota_window(1796000000), 498888);
	/* A counter lives to the end of its window and a minute more. */
	assert_int_equal(quota_window_ttl(3600), 3660);
	assert_int_equal(quota_window_ttl(3600 + 3599), 61);
}

static void test_keys(void **state)
{
	char k[QUOTA_KEY_MAX];

	assert_int_equal(quota_key(k, sizeof(k), "acme", QUOTA_TENANT, "ignored", QUOTA_MESSAGES, 7), 20);
	assert_string_equal(k, "livery:{acme}:t::m:7");
	quota_key(k, sizeof(k), "acme", QUOTA_USER, "ann@acme.test", QUOTA_RECIPIENTS, 498888);
	assert_string_equal(k, "livery:{acme}:u:ann@acme.test:r:498888");
	quota_key(k, sizeof(k), "acme", QUOTA_IP, "2001:db8::1", QUOTA_MESSAGES, 1);
	assert_string_equal(k, "livery:{acme}:i:2001:db8::1:m:1");
	/* Too long for the buffer: no key rather than a cut one (two users would share it). */
	assert_int_equal(quota_key(k, 20, "acme", QUOTA_USER, "ann@acme.test", QUOTA_MESSAGES, 1), 0);
	assert_string_equal(quota_limit_names[QUOTA_USER * QUOTA_NKINDS + QUOTA_RECIPIENTS],
	                    "per_user_recipients_per_hour");
	assert_null(quota_limit_names[QUOTA_NSCOPES * QUOTA_NKINDS]);
}

static void test_urls(void **state)
{
	struct quota_url u;
	char err[200];

	assert_true(quota_url_parse("redis://127.0.0.1:6390/2", &u, err, sizeof(err)));
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6390);
	assert_int_equal(u.db, 2);
	assert_string_equal(u.password, "");
	assert_true(quota_url_parse("redis://redis.internal", &u, err, sizeof(err)));
	assert_string_equal(u.host, "redis.internal");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	assert_true(quota_url_parse("redis://[::1]:7000/", &u, err, sizeof(err)));
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 7000);
	assert_true(quota_url_parse("redis://:s3cret@10.0.0.5:6379/1", &u, err, sizeof(err)));
	assert_string_equal(u.password, "s3cret");
	assert_string_equal(u.user, "");
	assert_true(quota_url_parse("redis://livery:s3cret@10.0.0.5", &u, err, sizeof(err)));
	assert_string_equal(u.user, "livery");
	assert_string_equal(u.host, "10.0.0.5");

	static const char *const bad[] = {"memory2", "http://127.0.0.1", "redis://", "redis://:6379",
	                                  "redis://h:0", "redis://h:65536", "redis://h:80x", "redis://h/x",
	                                  "redis://h/1/2", "redis://[::1", "redis://user@h", "redis://u:@h"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_false(quota_url_parse(bad[i], &u, err, sizeof(err)));
		assert_true(err[0] != '\0');
	}
	/* The password never appears in an error. */
	assert_false(quota_url_parse("redis://:hunter2@h:99999", &u, err, sizeof(err)));
	assert_null(strstr(err, "hunter2"));
}

static enum quota_result check1(struct quota_mem *m, const char *key, unsigned limit, unsigned amount,
                                uint64_t window)
{
	size_t over = 99;
	return quota_mem_check(m, &key, &limit, 1, amount, window, &over);
}

static void test_mem_exact_limit(void **state)
{
	struct quota_mem *m = quota_mem_new();

	for (int i = 0; i < 5; i++)
		assert_int_equal(check1(m, "a", 5, 1, 10), QUOTA_OK);
	assert_int_equal(check1(m, "a", 5, 1, 10), QUOTA_OVER);
	assert_int_equal(quota_mem_count(m, "a", 10), 5); /* a refusal costs nothing */
	assert_int_equal(check1(m, "b", 5, 1, 10), QUOTA_OK);
	/* The next window starts from zero. */
	assert_int_equal(check1(m, "a", 5, 1, 11), QUOTA_OK);
	assert_int_equal(quota_mem_count(m, "a", 11), 1);
	/* An amount that would pass the limit is refused whole. */
	assert_int_equal(check1(m, "c", 3, 4, 10), QUOTA_OVER);
	assert_int_equal(quota_mem_count(m, "c", 10), 0);
	quota_mem_free(m);
}

/* Several keys count together or not at all: a refused user costs its tenant nothing. */
static void test_mem_all_or_nothing(void **state)
{
	struct quota_mem *m = quota_mem_new();
	const char *keys[] = {"tenant", "user"};
	unsigned limits[] = {10, 2};
	size_t over = 99;

	for (int i = 0; i < 2; i++)
		assert_int_equal(quota_mem_check(m, keys, limits, 2, 1, 1, &over), QUOTA_OK);
	assert_int_equal(quota_mem_check(m, keys, limits, 2, 1, 1, &over), QUOTA_OVER);
	assert_int_equal(over, 1);
	assert_int_equal(quota_mem_count(m, "tenant", 1), 2);
	assert_int_equal(quota_mem_count(m, "user", 1), 2);
	quota_mem_free(m);
}

/* Many keys in one window: every one is counted on its own (no collisions at this size),
 * and slots of an earlier window are reused. */
static void test_mem_many_keys_and_reuse(void **state)
{
	struct quota_mem *m = quota_mem_new();
	char key[32];

	for (uint64_t w = 1; w <= 3; w++) {
		for (int i = 0; i < 100000; i++) {
			snprintf(key, sizeof(key), "k%d", i);
			assert_int_equal(check1(m, key, 2, 1, w), QUOTA_OK);
		}
		for (int i = 0; i < 100000; i += 997) {
			snprintf(key, sizeof(key), "k%d", i);
			assert_int_equal(quota_mem_count(m, key, w), 1);
		}
	}
	quota_mem_free(m);
}

/* The table is shared with forked workers: one budget for the instance. */
static void test_mem_shared_across_fork(void **state)
{
	struct quota_mem *m = quota_mem_new();
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 3; i++) {
			if (check1(m, "tenant", 4, 1, 5) != QUOTA_OK)
				_exit(1);
		}
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(check1(m, "tenant", 4, 1, 5), QUOTA_OK);
	assert_int_equal(check1(m, "tenant", 4, 1, 5), QUOTA_OVER);
	quota_mem_free(m);
}

static void test_report_rate(void **state)
{
	struct quota_mem *m = quota_mem_new();

	assert_true(quota_mem_report_due(m, 1000));
	assert_false(quota_mem_report_due(m, 1000));
	assert_false(quota_mem_report_due(m, 1009));
	assert_true(quota_mem_report_due(m, 1010));
	quota_mem_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_windows),        cmocka_unit_test(test_keys),
	        cmocka_unit_test(test_urls),           cmocka_unit_test(test_mem_exact_limit),
	        cmocka_unit_test(test_mem_all_or_nothing), cmocka_unit_test(test_mem_many_keys_and_reuse),
	        cmocka_unit_test(test_mem_shared_across_fork), cmocka_unit_test(test_report_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for iptable: per-address and total counts summed over workers' regions, across a fork (the
 * mapping is shared), the bounded table when full, and a dead worker's region cleared. */
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

#include "iptable.h"

static void test_counts_per_address_and_total(void **state)
{
	struct iptable_shm *shm = iptable_shm_new();
	struct iptable *a = iptable_new(shm, 0), *b = iptable_new(shm, 5);

	assert_int_equal(iptable_inc(a, "192.0.2.1"), 1);
	assert_int_equal(iptable_inc(b, "192.0.2.1"), 2); /* b sees a's count too */
	assert_int_equal(iptable_inc(b, "2001:db8::1"), 1);
	assert_int_equal(iptable_count(a, "192.0.2.1"), 2);
	assert_int_equal(iptable_count(a, "192.0.2.2"), 0);
	assert_int_equal(iptable_total(a), 3);
	iptable_dec(a, "192.0.2.1");
	assert_int_equal(iptable_count(b, "192.0.2.1"), 1);
	iptable_dec(b, "192.0.2.1");
	iptable_dec(b, "2001:db8::1");
	assert_int_equal(iptable_count(a, "192.0.2.1"), 0);
	assert_int_equal(iptable_total(b), 0);
	iptable_free(a);
	iptable_free(b);
	iptable_shm_free(shm);
}

/* What a worker counts after the fork is what the master (and every other worker) reads. */
static void test_shared_across_fork(void **state)
{
	struct iptable_shm *shm = iptable_shm_new();
	struct iptable *mine = iptable_new(shm, 0);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct iptable *child = iptable_new(shm, 1);
		for (int i = 0; i < 3; i++)
			iptable_inc(child, "198.51.100.7");
		_exit(iptable_count(child, "198.51.100.7") == 3 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(iptable_inc(mine, "198.51.100.7"), 4);
	assert_int_equal(iptable_total(mine), 4);
	/* The worker died without counting down: the master clears its region. */
	iptable_shm_clear(shm, 1);
	assert_int_equal(iptable_count(mine, "198.51.100.7"), 1);
	assert_int_equal(iptable_total(mine), 1);
	iptable_free(mine);
	iptable_shm_free(shm);
}

/* Live addresses fill one worker's region until one has no slot on its probe path: it is
 * reported as IPTABLE_FULL (over any limit). Once they are gone, their slots are reused. */
static void test_full_then_reused(void **state)
{
	struct iptable_shm *shm = iptable_shm_new();
	struct iptable *t = iptable_new(shm, 0);
	char ip[64];
	unsigned n = 0, full = 0;

	for (; n <= IPTABLE_SLOTS && !full; n++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", n >> 16, (n >> 8) & 255, n & 255);
		full = iptable_inc(t, ip) == IPTABLE_FULL;
	}
	assert_true(full);
	assert_int_equal(iptable_count(t, ip), 0); /* the refused address was never counted */
	assert_int_equal(iptable_total(t), n);     /* but the connection is, until iptable_dec */
	for (unsigned i = 0; i < n; i++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		iptable_dec(t, ip);
	}
	assert_int_equal(iptable_total(t), 0);
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(ip, sizeof(ip), "172.16.%u.%u", i >> 8, i & 255);
		assert_int_equal(iptable_inc(t, ip), 1);
	}
	iptable_free(t);
	iptable_shm_free(shm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_counts_per_address_and_total),
	        cmocka_unit_test(test_shared_across_fork),
	        cmocka_unit_test(test_full_then_reused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

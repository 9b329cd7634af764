/* Unit tests for acme_state: the per-name table, the backoff schedule, and state.json's form as
 * `livery check` describes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme_state.h"
#include "config.h"

static void test_backoff_doubles_up_to_a_day(void **state)
{
	(void)state;
	assert_int_equal(acme_state_backoff(60, 1), 60);
	assert_int_equal(acme_state_backoff(60, 2), 120);
	assert_int_equal(acme_state_backoff(60, 3), 240);
	assert_int_equal(acme_state_backoff(60, 11), 61440);
	assert_int_equal(acme_state_backoff(60, 12), ACME_STATE_MAX_BACKOFF_S);
	assert_int_equal(acme_state_backoff(60, 4000000000u), ACME_STATE_MAX_BACKOFF_S);
	assert_int_equal(acme_state_backoff(1, 1), 1);
	assert_int_equal(acme_state_backoff(86400, 5), ACME_STATE_MAX_BACKOFF_S);
}

static void test_table_get_find_prune(void **state)
{
	struct acme_table t = {0};

	(void)state;
	struct acme_entry *a = acme_state_get(&t, "a.test", "/d1");
	assert_int_equal(a->state, ACME_VALID);
	a->wanted = true;
	acme_state_get(&t, "b.test", "/d1")->state = ACME_ORDERING;
	acme_state_get(&t, "c.test", "/d1");
	assert_int_equal(t.n, 3);
	a = acme_state_get(&t, "a.test", "/d2"); /* the same entry, its cert_dir moved */
	assert_string_equal(a->dir, "/d2");
	assert_int_equal(t.n, 3);
	acme_state_prune(&t, false); /* c goes; b is ordering, a wanted */
	assert_int_equal(t.n, 2);
	assert_non_null(acme_state_find(&t, "a.test"));
	assert_non_null(acme_state_find(&t, "b.test"));
	assert_null(acme_state_find(&t, "c.test"));
	acme_state_prune(&t, true);
	assert_int_equal(t.n, 0);
	assert_null(t.v);
}

static void test_json_and_describe(void **state)
{
	struct acme_table t = {0};
	char line[256];

	(void)state;
	struct acme_entry *e = acme_state_get(&t, "smtp.brand.test", "/d");
	e->state = ACME_BACKOFF;
	e->failures = 2;
	e->next_try = 86400; /* 1970-01-02 */
	e->last_error = strdup("lego exited with status 1: connection refused");
	e = acme_state_get(&t, "smtp.ok.test", "/d");
	e->renew_at = 2 * 86400;
	e = acme_state_get(&t, "smtp.new.test", "/d");
	e->state = ACME_ORDERING;
	json_t *j = acme_state_to_json(&t);
	char *text = json_dumps(j, 0);
	json_decref(j);
	j = json_loads(text, 0, NULL); /* what check reads back from the file */
	free(text);
	assert_true(acme_state_describe(j, "smtp.brand.test", line, sizeof(line)));
	assert_string_equal(line, "backoff: retry at 1970-01-02 00:00:00 UTC after 2 failures: "
	                          "lego exited with status 1: connection refused");
	assert_true(acme_state_describe(j, "smtp.ok.test", line, sizeof(line)));
	assert_string_equal(line, "valid: renewal due at 1970-01-03 00:00:00 UTC");
	assert_true(acme_state_describe(j, "smtp.new.test", line, sizeof(line)));
	assert_string_equal(line, "ordering");
	assert_false(acme_state_describe(j, "other.test", line, sizeof(line)));
	json_decref(j);
	acme_state_prune(&t, true);
}

static void test_describe_tolerates_odd_files(void **state)
{
	char line[64];

	(void)state;
	json_t *j = json_loads("{\"names\": {\"a.test\": 5, \"b.test\": {\"state\": 7}}}", 0, NULL);
	assert_false(acme_state_describe(j, "a.test", line, sizeof(line)));
	assert_false(acme_state_describe(j, "b.test", line, sizeof(line)));
	json_decref(j);
	j = json_loads("[]", 0, NULL);
	assert_false(acme_state_describe(j, "a.test", line, sizeof(line)));
	json_decref(j);
	assert_false(acme_state_describe(NULL, "a.test", line, sizeof(line)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_backoff_doubles_up_to_a_day),
	        cmocka_unit_test(test_table_get_find_prune),
	        cmocka_unit_test(test_json_and_describe),
	        cmocka_unit_test(test_describe_tolerates_odd_files),
	};
	return cmocka_run_group_tests_name("acme_state", tests, NULL, NULL);
}

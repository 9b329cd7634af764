/* Unit tests for smtp_info: queue ids in relay verdicts, user names in SASL responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_info.h"

static void assert_id(const char *text, const char *want)
{
	char out[64];

	memset(out, 'Z', sizeof(out));
	bool ok = smtp_info_queue_id(text, out, sizeof(out));
	if (!want) {
		if (ok)
			fail_msg("\"%s\": found \"%s\", want none", text, out);
		return;
	}
	if (!ok)
		fail_msg("\"%s\": no id, want \"%s\"", text, want);
	assert_string_equal(out, want);
}

static void test_queue_ids(void **state)
{
	assert_id("2.0.0 Ok: queued as 4Fq2Zk1XyZz9", "4Fq2Zk1XyZz9");
	assert_id("2.0.0 Ok: queued as 0A1B2C3D4E5F by smtp.mailgun.test", "0A1B2C3D4E5F");
	assert_id("2.0.0 OK QUEUED AS abc", "abc");
	assert_id("Ok 0100018c1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d-000000", "0100018c1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d-000000");
	assert_id("2.0.0 OK id=1rAbCd-000Xyz-7Q", "1rAbCd-000Xyz-7Q");
	assert_id("Great success <20261206070000.1.ABCDEF@mg.example.com>", "20261206070000.1.ABCDEF@mg.example.com");
	assert_id("2.0.0 Ok", NULL);
	assert_id("Great success", NULL);
	assert_id("queued as ", NULL);
	assert_id("<>", NULL);
	assert_id("<unterminated", NULL);
	assert_id("", NULL);
	/* Too long for the buffer: refused, not cut. */
	char long_text[200] = "queued as ";
	memset(long_text + 10, 'A', 100);
	assert_id(long_text, NULL);
}

static void assert_user(bool plain, const char *b64, const char *want)
{
	char out[64] = "";
	bool ok = plain ? smtp_info_plain_user(b64, strlen(b64), out, sizeof(out))
	                : smtp_info_login_user(b64, strlen(b64), out, sizeof(out));

	if (!want) {
		if (ok)
			fail_msg("\"%s\": user \"%s\", want none", b64, out);
		return;
	}
	if (!ok)
		fail_msg("\"%s\": no user, want \"%s\"", b64, want);
	assert_string_equal(out, want);
}

static void test_sasl_users(void **state)
{
	assert_user(true, "AHVzZXJAYWNtZS50ZXN0AHNlY3JldA==", "user@acme.test"); /* \0user@acme.test\0secret */
	assert_user(true, "YWRtaW4AdXNlcgBwdw==", "user");                      /* admin\0user\0pw */
	assert_user(true, "dXNlcgBwdw==", NULL);                                /* one NUL only */
	assert_user(true, "AABwdw==", NULL);                                    /* empty authcid */
	assert_user(true, "not base64!", NULL);
	assert_user(true, "", NULL);
	assert_user(true, "AHUBc2VyAHB3", NULL); /* a control octet in the name */
	assert_user(false, "dXNlckBhY21lLnRlc3Q=", "user@acme.test");
	assert_user(false, "", NULL);
	assert_user(false, "***", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_queue_ids),
	        cmocka_unit_test(test_sasl_users),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

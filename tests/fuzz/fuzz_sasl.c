/* fuzz_sasl: the client's SASL PLAIN and LOGIN responses as local authentication decodes them; decoded fields
 * are NUL-terminated, non-empty, bounded and without NUL octets, and re-encoding a PLAIN result decodes to
 * the same; what sasl_b64_valid passes is base64 in form. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1], b64[4 * SASL_FIELD_MAX];
	char user2[SASL_FIELD_MAX + 1], pass2[SASL_FIELD_MAX + 1];
	const char *in = (const char *)data;

	if (sasl_plain_decode(in, size, user, sizeof(user), pass, sizeof(pass))) {
		assert(user[0] && pass[0] && strlen(user) <= SASL_FIELD_MAX &&
		       strlen(pass) <= SASL_FIELD_MAX);
		assert(sasl_plain_encode(user, pass, b64, sizeof(b64)));
		assert(sasl_plain_decode(b64, strlen(b64), user2, sizeof(user2), pass2, sizeof(pass2)));
		assert(strcmp(user, user2) == 0 && strcmp(pass, pass2) == 0);
		char *domains[] = {user};
		(void)sasl_domain_allowed(user, domains, 1);
	}
	if (sasl_login_decode(in, size, user, sizeof(user)))
		assert(user[0] && strlen(user) <= SASL_FIELD_MAX);
	/* What passes as base64 in form holds no octet outside the alphabet and its padding. */
	if (sasl_b64_valid(in, size)) {
		for (size_t i = 0; i < size; i++)
			assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", in[i]) &&
			       in[i] != '\0');
	}
	return 0;
}

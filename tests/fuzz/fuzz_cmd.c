/* fuzz_cmd: command lines through smtp_cmd_parse and the argument parsers; pointers stay inside the input. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "smtp_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	size_t len = smtp_line_strip(line, size);
	struct smtp_cmd c;
	struct smtp_auth_arg a;
	uint64_t n;
	bool last;

	assert(len <= size);
	if (smtp_cmd_parse(line, len, &c) != SMTP_PARSE_OK)
		return 0;
	assert(c.verb < SMTP_VERB_COUNT);
	assert(c.arg >= line && c.arg + c.arg_len <= line + len);
	assert(smtp_verb_name(c.verb) != NULL);
	if (smtp_auth_parse(c.arg, c.arg_len, &a)) {
		assert(a.mech >= c.arg && a.mech + a.mech_len <= c.arg + c.arg_len && a.mech_len > 0);
		assert(!a.initial || (a.initial >= c.arg && a.initial + a.initial_len <= c.arg + c.arg_len));
	}
	smtp_mail_size_param(c.arg, c.arg_len, &n);
	if (smtp_bdat_parse(c.arg, c.arg_len, &n, &last))
		assert(c.arg_len > 0);
	return 0;
}

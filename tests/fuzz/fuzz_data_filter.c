/* fuzz_data_filter: message content through smtp_data_filter in every mode, cut at fuzzed points; nothing
 * bare and no NUL is ever forwarded, the relay finds the end where the filter did, only the client's own CRLF
 * "." CRLF ends the data (in both policies: no smuggling), and cutting the input differently changes nothing.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "iobuf.h"
#include "smtp_proto.h"

struct run {
	struct smtp_data_filter f;
	struct iobuf out;
	size_t consumed;
	bool done;
};

static void feed(struct run *r, const char *in, size_t len)
{
	if (r->done)
		return;
	r->consumed += smtp_data_filter(&r->f, in, len, &r->out, &r->done);
}

/* Every LF follows a CR and every CR is followed by an LF; chunked mode may end in one CR
 * whose LF is still to come. */
static void assert_no_bare(const char *s, size_t n, bool chunked)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			assert(i > 0 && s[i - 1] == '\r');
		if (s[i] == '\r')
			assert(i + 1 < n ? s[i + 1] == '\n' : chunked);
	}
}

/* The relay's view: the first CRLF "." CRLF (or "." CRLF at the start) ends the message. */
static size_t relay_end(const char *s, size_t n)
{
	if (n >= 3 && memcmp(s, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= n; i++) {
		if (memcmp(s + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	enum smtp_bare_policy policy = data[0] & 1 ? SMTP_BARE_NORMALIZE : SMTP_BARE_REJECT;
	bool chunked = data[0] & 2;
	const char *in = (const char *)data + 2;
	size_t len = size - 2, cut = len ? data[1] % (len + 1) : 0;
	struct run a = {0}, b = {0};

	smtp_data_filter_init(&a.f, policy, chunked);
	smtp_data_filter_init(&b.f, policy, chunked);
	feed(&a, in, len);
	feed(&b, in, cut);
	feed(&b, in + cut, len - cut);
	const char *out = iobuf_peek(&a.out);
	size_t olen = iobuf_avail(&a.out);

	assert(a.consumed == b.consumed && a.done == b.done && a.f.halted == b.f.halted);
	assert(iobuf_avail(&b.out) == olen && memcmp(iobuf_peek(&b.out), out, olen) == 0);
	assert(a.f.bytes == a.consumed && a.consumed <= len);
	assert(!chunked || !a.done);
	assert_no_bare(out, olen, chunked);
	assert(memchr(out, '\0', olen) == NULL);
	if (!chunked) {
		/* The client's own first CRLF "." CRLF, bare CR and LF being mere content there:
		 * normalising must not make an end the client did not send (smuggling). */
		size_t want = relay_end(in, len);
		assert(a.done == (want != 0) && (!a.done || a.consumed == want));
		size_t end = relay_end(out, olen);
		if (a.done && !a.f.halted)
			assert(end == olen); /* the relay ends exactly where the filter did */
		else
			assert(end == 0); /* and sees no end in what an unfinished message sent */
	}
	if (policy == SMTP_BARE_REJECT && !a.f.halted && !chunked)
		assert(olen <= a.consumed && memcmp(out, in, olen) == 0); /* verbatim, less a held CR */
	iobuf_free(&a.out);
	iobuf_free(&b.out);
	return 0;
}

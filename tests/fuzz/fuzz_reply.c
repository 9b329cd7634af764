/* fuzz_reply: reply lines through the multi-line parser, EHLO keywords, enhanced codes and scrubbing; assembled replies parse back to the same reply. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iobuf.h"
#include "smtp_proto.h"

static const char *const words[] = {"mailgun", "relay.test"};

static void check_scrub(const char *text)
{
	char *out = smtp_scrub(text, words, 2, "brand.example");

	for (size_t i = 0; i < 2; i++)
		assert(strcasestr(out, words[i]) == NULL);
	free(out);
}

/* What smtp_reply_append writes must parse back to the same code and lines. */
static void round_trip(const struct smtp_reply *r)
{
	struct iobuf b;
	struct smtp_reply back;
	enum smtp_reply_status st = SMTP_REPLY_MORE;

	iobuf_init(&b);
	smtp_reply_append(&b, r->code, (const char *const *)r->lines, r->nlines);
	smtp_reply_init(&back);
	size_t n;
	while ((n = iobuf_line_len(&b)) > 0) {
		st = smtp_reply_feed(&back, iobuf_peek(&b), smtp_line_strip(iobuf_peek(&b), n));
		iobuf_consume(&b, n);
	}
	assert(st == SMTP_REPLY_DONE && back.code == r->code && back.nlines == r->nlines);
	for (size_t i = 0; i < r->nlines; i++)
		assert(strcmp(back.lines[i], r->lines[i]) == 0);
	smtp_reply_clear(&back);
	iobuf_free(&b);
}

static void done(const struct smtp_reply *r)
{
	struct smtp_caps caps;

	smtp_caps_parse(r, &caps);
	for (size_t i = 0; i < r->nlines; i++) {
		assert(smtp_enhanced_code_len(r->lines[i]) <= strlen(r->lines[i]));
		check_scrub(r->lines[i]);
	}
	/* A CR inside a line would be taken for part of the line end when parsed back. */
	for (size_t i = 0; i < r->nlines; i++) {
		if (strchr(r->lines[i], '\r'))
			return;
	}
	round_trip(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	const char *p = (const char *)data, *end = p + size;

	smtp_reply_init(&r);
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n = lf ? (size_t)(lf - p) + 1 : (size_t)(end - p);
		size_t len = smtp_line_strip(p, n);
		/* The upstream leg splits at LF, so a line never holds one; a NUL is refused. */
		enum smtp_reply_status st = smtp_reply_feed(&r, p, len);
		if (st == SMTP_REPLY_DONE)
			done(&r);
		if (st != SMTP_REPLY_MORE)
			smtp_reply_clear(&r);
		p += n;
	}
	smtp_reply_clear(&r);
	return 0;
}

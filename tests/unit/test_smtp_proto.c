/* Unit tests for smtp_proto: command and reply grammar, EHLO keywords, AUTH/MAIL/BDAT
 * arguments, the DATA end-of-data scanner and reply scrubbing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iobuf.h"
#include "smtp_proto.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static enum smtp_parse_result parse(const char *line, struct smtp_cmd *c)
{
	return smtp_cmd_parse(line, strlen(line), c);
}

static void assert_arg(const struct smtp_cmd *c, const char *want)
{
	size_t n = strlen(want);
	if (c->arg_len != n || (n > 0 && memcmp(c->arg, want, n) != 0))
		fail_msg("arg is \"%.*s\" (%zu), want \"%s\" (%zu)", (int)c->arg_len, c->arg ? c->arg : "",
		         c->arg_len, want, n);
}

static void assert_span(const char *p, size_t len, const char *want)
{
	size_t n = strlen(want);
	if (p == NULL || len != n || memcmp(p, want, n) != 0)
		fail_msg("got \"%.*s\" (%zu), want \"%s\" (%zu)", (int)(p ? len : 0), p ? p : "", len, want,
		         n);
}

static enum smtp_reply_status feed(struct smtp_reply *r, const char *line)
{
	return smtp_reply_feed(r, line, strlen(line));
}

/* Feeds lines; every one but the last must give MORE, the last DONE. */
static void feed_all(struct smtp_reply *r, const char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum smtp_reply_status st = feed(r, lines[i]);
		if (st != (i + 1 == n ? SMTP_REPLY_DONE : SMTP_REPLY_MORE))
			fail_msg("line %zu \"%s\": status %d", i, lines[i], (int)st);
	}
}

static void assert_buf(const struct iobuf *b, const char *want)
{
	size_t n = strlen(want);
	if (iobuf_avail(b) != n || memcmp(iobuf_peek(b), want, n) != 0)
		fail_msg("buffer is \"%.*s\", want \"%s\"", (int)iobuf_avail(b), iobuf_peek(b), want);
}

/* ---- commands ----------------------------------------------------------------------------- */

static void test_cmd_every_verb_any_case(void **state)
{
	for (int v = SMTP_HELO; v < SMTP_VERB_COUNT; v++) {
		const char *name = smtp_verb_name((enum smtp_verb)v);
		char lower[32], mixed[32];
		struct smtp_cmd c;
		size_t n = strlen(name);

		assert_true(n < sizeof(lower));
		for (size_t i = 0; i <= n; i++) {
			lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
			mixed[i] = i % 2 ? lower[i] : name[i];
		}
		assert_int_equal(parse(name, &c), SMTP_PARSE_OK);
		assert_int_equal(c.verb, v);
		assert_int_equal(c.arg_len, 0);
		assert_int_equal(parse(lower, &c), SMTP_PARSE_OK);
		assert_int_equal(c.verb, v);
		assert_int_equal(parse(mixed, &c), SMTP_PARSE_OK);
		assert_int_equal(c.verb, v);
	}
}

static void test_cmd_verb_names(void **state)
{
	assert_string_equal(smtp_verb_name(SMTP_EHLO), "EHLO");
	assert_string_equal(smtp_verb_name(SMTP_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_BDAT), "BDAT");
	assert_string_equal(smtp_verb_name(SMTP_UNKNOWN), "UNKNOWN");
	assert_string_equal(smtp_verb_name(SMTP_VERB_COUNT), "UNKNOWN");
	assert_string_equal(smtp_verb_name((enum smtp_verb)1000), "UNKNOWN");
}

static void test_cmd_mail_keeps_keyword_and_params(void **state)
{
	struct smtp_cmd c;

	assert_int_equal(parse("MAIL FROM:<a@b> SIZE=10", &c), SMTP_PARSE_OK);
	assert_int_equal(c.verb, SMTP_MAIL);
	assert_arg(&c, "FROM:<a@b> SIZE=10");
	assert_int_equal(parse("rcpt TO:<x@y>", &c), SMTP_PARSE_OK);
	assert_int_equal(c.verb, SMTP_RCPT);
	assert_arg(&c, "TO:<x@y>");
}

static void test_cmd_spaces(void **state)
{
	struct smtp_cmd c;

	/* Several separating spaces and trailing spaces are not part of the argument. */
	assert_int_equal(parse("EHLO   client.example   ", &c), SMTP_PARSE_OK);
	assert_int_equal(c.verb, SMTP_EHLO);
	assert_arg(&c, "client.example");
	assert_int_equal(parse("QUIT   ", &c), SMTP_PARSE_OK);
	assert_int_equal(c.verb, SMTP_QUIT);
	assert_int_equal(c.arg_len, 0);
	/* Inner spaces of the argument are kept. */
	assert_int_equal(parse("HELP  a  b ", &c), SMTP_PARSE_OK);
	assert_int_equal(c.verb, SMTP_HELP);
	assert_arg(&c, "a  b");
	/* The argument points into the line. */
	const char *line = "NOOP hello";
	assert_int_equal(parse(line, &c), SMTP_PARSE_OK);
	assert_ptr_equal(c.arg, line + 5);
}

static void test_cmd_length_is_respected(void **state)
{
	struct smtp_cmd c;
	const char *line = "HELO a.example TRAILING";

	assert_int_equal(smtp_cmd_parse(line, 14, &c), SMTP_PARSE_OK);
	assert_int_equal(c.verb, SMTP_HELO);
	assert_arg(&c, "a.example");
	assert_int_equal(smtp_cmd_parse(line, 4, &c), SMTP_PARSE_OK);
	assert_int_equal(c.verb, SMTP_HELO);
	assert_int_equal(c.arg_len, 0);
}

static void test_cmd_empty(void **state)
{
	struct smtp_cmd c;

	assert_int_equal(parse("", &c), SMTP_PARSE_EMPTY);
	assert_int_equal(parse("    ", &c), SMTP_PARSE_EMPTY);
	assert_int_equal(smtp_cmd_parse("QUIT", 0, &c), SMTP_PARSE_EMPTY);
}

static void test_cmd_nul(void **state)
{
	struct smtp_cmd c;

	assert_int_equal(smtp_cmd_parse("NOOP\0x", 6, &c), SMTP_PARSE_NUL);
	assert_int_equal(c.verb, SMTP_UNKNOWN);
	assert_int_equal(smtp_cmd_parse("MAIL FROM:<a\0@b>", 17, &c), SMTP_PARSE_NUL);
	assert_int_equal(smtp_cmd_parse("\0", 1, &c), SMTP_PARSE_NUL);
	/* Even a trailing NUL (where trimming might hide it) is refused. */
	assert_int_equal(smtp_cmd_parse("QUIT\0", 5, &c), SMTP_PARSE_NUL);
	assert_int_equal(smtp_cmd_parse("QUIT \0 ", 7, &c), SMTP_PARSE_NUL);
}

/* A CR inside a line could end a command at the relay that we count as one. */
static void test_cmd_cr(void **state)
{
	struct smtp_cmd c;

	assert_int_equal(parse("NOOP\rRSET", &c), SMTP_PARSE_CR);
	assert_int_equal(parse("MAIL FROM:<a@b>\r", &c), SMTP_PARSE_CR);
	assert_int_equal(parse("\r", &c), SMTP_PARSE_CR);
	assert_int_equal(parse("NOOP", &c), SMTP_PARSE_OK);
}

static void test_cmd_unknown_and_prefixes(void **state)
{
	static const char *const lines[] = {
	    "FOO bar",  "XCLIENT ADDR=1.2.3.4", "EHLOX",     "EHLOX host", "HEL",
	    "HELOO x",  "MAILFROM:<a@b>",       "STARTTLSX", "START",      "DATA2",
	    "QUITQUIT", "RCPTTO:<a>",           "AUTHPLAIN", "E"};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct smtp_cmd c;
		assert_int_equal(parse(lines[i], &c), SMTP_PARSE_OK);
		if (c.verb != SMTP_UNKNOWN)
			fail_msg("\"%s\" parsed as %s", lines[i], smtp_verb_name(c.verb));
	}
	struct smtp_cmd c;
	assert_int_equal(parse("FOO bar baz", &c), SMTP_PARSE_OK);
	assert_arg(&c, "bar baz");
}

/* ---- line strip --------------------------------------------------------------------------- */

static void test_line_strip(void **state)
{
	assert_int_equal(smtp_line_strip("QUIT\r\n", 6), 4);
	assert_int_equal(smtp_line_strip("QUIT\n", 5), 4);
	assert_int_equal(smtp_line_strip("QUIT", 4), 4);
	assert_int_equal(smtp_line_strip("\r\n", 2), 0);
	assert_int_equal(smtp_line_strip("\n", 1), 0);
	assert_int_equal(smtp_line_strip("", 0), 0);
	/* Only one terminator is removed. */
	assert_int_equal(smtp_line_strip("A\r\r\n", 4), 2);
	assert_int_equal(smtp_line_strip("A\n\n", 3), 2);
	assert_int_equal(smtp_line_strip("A\r\n\r\n", 5), 3);
}

/* ---- replies ------------------------------------------------------------------------------ */

static void test_reply_single_line(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "250 2.1.0 Sender ok"), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 1);
	assert_string_equal(r.lines[0], "2.1.0 Sender ok");
	smtp_reply_clear(&r);
	assert_int_equal(r.nlines, 0);
	assert_int_equal(r.code, 0);

	/* Reusable after clear. */
	assert_int_equal(feed(&r, "354 go ahead"), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 354);
	assert_string_equal(r.lines[0], "go ahead");
	smtp_reply_clear(&r);

	/* Text of the line is kept verbatim, including extra spaces. */
	assert_int_equal(feed(&r, "550  two  spaces "), SMTP_REPLY_DONE);
	assert_string_equal(r.lines[0], " two  spaces ");
	smtp_reply_clear(&r);
}

static void test_reply_multi_line(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "250-a"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "250-PIPELINING"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "250 b"), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 3);
	assert_string_equal(r.lines[0], "a");
	assert_string_equal(r.lines[1], "PIPELINING");
	assert_string_equal(r.lines[2], "b");
	smtp_reply_clear(&r);
}

static void test_reply_mismatched_code(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "250-a"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "251 b"), SMTP_REPLY_BAD);
	smtp_reply_clear(&r);

	assert_int_equal(feed(&r, "250-a"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "250-b"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "550-c"), SMTP_REPLY_BAD);
	smtp_reply_clear(&r);
}

static void test_reply_bad_codes(void **state)
{
	static const char *const bad[] = {"199 x",  "100 x",  "600 x", "999 x", "000 x",  "abc x",
	                                  "abc",    "25",     "2",     "",      "2x0 y",  "25a y",
	                                  " 250 y", "-250 y", "250x",  "250_y", "250\ty", "2500 y"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct smtp_reply r;
		smtp_reply_init(&r);
		if (feed(&r, bad[i]) != SMTP_REPLY_BAD)
			fail_msg("\"%s\" was not refused", bad[i]);
		smtp_reply_clear(&r);
	}
	/* The class boundaries themselves are fine. */
	static const char *const good[] = {"200 x", "220 x", "334 x", "421 x", "599 x"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct smtp_reply r;
		smtp_reply_init(&r);
		assert_int_equal(feed(&r, good[i]), SMTP_REPLY_DONE);
		assert_int_equal(r.code, atoi(good[i]));
		smtp_reply_clear(&r);
	}
}

static void test_reply_nul(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250 a\0b", 7), SMTP_REPLY_BAD);
	smtp_reply_clear(&r);
}

static void test_reply_code_only(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "250"), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 1);
	assert_string_equal(r.lines[0], "");
	smtp_reply_clear(&r);

	assert_int_equal(feed(&r, "250 "), SMTP_REPLY_DONE);
	assert_string_equal(r.lines[0], "");
	smtp_reply_clear(&r);

	assert_int_equal(feed(&r, "250-"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "250"), SMTP_REPLY_DONE);
	assert_int_equal(r.nlines, 2);
	assert_string_equal(r.lines[0], "");
	assert_string_equal(r.lines[1], "");
	smtp_reply_clear(&r);
}

static void test_reply_length_is_respected(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-abcdef", 6), SMTP_REPLY_MORE);
	assert_string_equal(r.lines[0], "ab");
	assert_int_equal(smtp_reply_feed(&r, "250 xyz\r\n", 7), SMTP_REPLY_DONE);
	assert_string_equal(r.lines[1], "xyz");
	smtp_reply_clear(&r);
}

static void test_reply_max_lines(void **state)
{
	struct smtp_reply r;

	/* Exactly SMTP_REPLY_MAX_LINES lines are fine. */
	smtp_reply_init(&r);
	for (int i = 0; i < SMTP_REPLY_MAX_LINES - 1; i++)
		assert_int_equal(feed(&r, "250-line"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "250 last"), SMTP_REPLY_DONE);
	assert_int_equal(r.nlines, SMTP_REPLY_MAX_LINES);
	assert_string_equal(r.lines[SMTP_REPLY_MAX_LINES - 1], "last");
	smtp_reply_clear(&r);

	/* One more is refused, whether it is a continuation or the last line. */
	for (int i = 0; i < SMTP_REPLY_MAX_LINES; i++)
		assert_int_equal(feed(&r, "250-line"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "250 last"), SMTP_REPLY_BAD);
	assert_int_equal(r.nlines, SMTP_REPLY_MAX_LINES);
	smtp_reply_clear(&r);

	for (int i = 0; i < SMTP_REPLY_MAX_LINES; i++)
		assert_int_equal(feed(&r, "250-line"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&r, "250-more"), SMTP_REPLY_BAD);
	smtp_reply_clear(&r);
}

/* ---- enhanced status codes ---------------------------------------------------------------- */

static void test_enhanced_code_len(void **state)
{
	assert_int_equal(smtp_enhanced_code_len("2.1.0 Ok"), 6);
	assert_int_equal(smtp_enhanced_code_len("5.7.8"), 5);
	assert_int_equal(smtp_enhanced_code_len("4.4.2 timeout"), 6);
	assert_int_equal(smtp_enhanced_code_len("5.123.456 x"), 10);
	assert_int_equal(smtp_enhanced_code_len("5.12.0 x"), 7);
	assert_int_equal(smtp_enhanced_code_len("2.0.0"), 5);
}

static void test_enhanced_code_invalid(void **state)
{
	static const char *const bad[] = {
	    "2.1",     "2.1 x",    "250 text",  "250",        "",         "2",       "2.",      "2..0 x",
	    "2.1. x",  "2.1.0x",   "2.1.0.1 x", "5.1234.5 x", "5.1.1234", "1.1.0 x", "6.0.0 x", "0.0.0 x",
	    "a.b.c x", " 2.1.0 x", "2-1-0 x",   "25.1.0 x",   "2.x.0 x",  "2.1.x x"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = smtp_enhanced_code_len(bad[i]);
		if (n != 0)
			fail_msg("\"%s\" gave %zu, want 0", bad[i], n);
	}
}

/* RFC 3463 section 2: class = "2" / "4" / "5"; there is no class 3. */
static void test_enhanced_code_class_3_invalid(void **state)
{
	assert_int_equal(smtp_enhanced_code_len("3.0.0 go ahead"), 0);
	assert_int_equal(smtp_enhanced_code_len("3.1.0"), 0);
}

/* ---- reply assembly ----------------------------------------------------------------------- */

static void test_reply_append_one(void **state)
{
	struct iobuf b;
	const char *lines[] = {"2.0.0 Ok"};

	iobuf_init(&b);
	smtp_reply_append(&b, 250, lines, 1);
	assert_buf(&b, "250 2.0.0 Ok\r\n");
	iobuf_free(&b);
}

static void test_reply_append_several(void **state)
{
	struct iobuf b;
	const char *lines[] = {"smtp.acme.test", "PIPELINING", "SIZE 1000", "AUTH PLAIN LOGIN"};

	iobuf_init(&b);
	iobuf_append(&b, "prefix|", 7);
	smtp_reply_append(&b, 250, lines, 4);
	assert_buf(
	    &b, "prefix|250-smtp.acme.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 AUTH PLAIN LOGIN\r\n");
	iobuf_free(&b);

	/* An empty text still gives the separator. */
	const char *empty[] = {"", ""};
	iobuf_init(&b);
	smtp_reply_append(&b, 354, empty, 2);
	assert_buf(&b, "354-\r\n354 \r\n");
	iobuf_free(&b);

	/* No lines, nothing appended. */
	iobuf_init(&b);
	smtp_reply_append(&b, 250, lines, 0);
	assert_int_equal(iobuf_avail(&b), 0);
	iobuf_free(&b);
}

static void test_reply_appendf(void **state)
{
	struct iobuf b;

	iobuf_init(&b);
	smtp_reply_appendf(&b, 552, "5.3.4 Message too big (%d > %s)", 10, "5");
	assert_buf(&b, "552 5.3.4 Message too big (10 > 5)\r\n");
	iobuf_free(&b);
}

/* What is assembled parses back into the same reply. */
static void test_reply_round_trip(void **state)
{
	struct iobuf b;
	struct smtp_reply r;
	const char *lines[] = {"first", "second line", "", "last"};
	enum smtp_reply_status st = SMTP_REPLY_MORE;

	iobuf_init(&b);
	smtp_reply_append(&b, 421, lines, 4);
	smtp_reply_init(&r);
	size_t n;
	while ((n = iobuf_line_len(&b)) > 0) {
		assert_int_equal(st, SMTP_REPLY_MORE);
		st = smtp_reply_feed(&r, iobuf_peek(&b), smtp_line_strip(iobuf_peek(&b), n));
		iobuf_consume(&b, n);
	}
	assert_int_equal(st, SMTP_REPLY_DONE);
	assert_int_equal(r.code, 421);
	assert_int_equal(r.nlines, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(r.lines[i], lines[i]);
	smtp_reply_clear(&r);
	iobuf_free(&b);
}

/* ---- EHLO capabilities -------------------------------------------------------------------- */

static void caps_of(const char *const *lines, size_t n, struct smtp_caps *caps)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	feed_all(&r, lines, n);
	memset(caps, 0xa5, sizeof(*caps)); /* the parser must reset everything */
	smtp_caps_parse(&r, caps);
	smtp_reply_clear(&r);
}

static void assert_no_caps(const struct smtp_caps *c)
{
	assert_false(c->starttls);
	assert_false(c->pipelining);
	assert_false(c->eightbitmime);
	assert_false(c->smtputf8);
	assert_false(c->chunking);
	assert_false(c->enhanced);
	assert_false(c->auth_plain);
	assert_false(c->auth_login);
	assert_false(c->has_size);
	assert_int_equal(c->size, 0);
}

static void test_caps_full(void **state)
{
	static const char *const lines[] = {"250-smtp.mailgun.test greets client (mailgun)",
	                                    "250-PIPELINING",
	                                    "250-SIZE 52428800",
	                                    "250-8BITMIME",
	                                    "250-ENHANCEDSTATUSCODES",
	                                    "250-SMTPUTF8",
	                                    "250-CHUNKING",
	                                    "250-STARTTLS",
	                                    "250 AUTH PLAIN LOGIN"};
	struct smtp_caps c;

	caps_of(lines, 9, &c);
	assert_true(c.starttls);
	assert_true(c.pipelining);
	assert_true(c.eightbitmime);
	assert_true(c.smtputf8);
	assert_true(c.chunking);
	assert_true(c.enhanced);
	assert_true(c.auth_plain);
	assert_true(c.auth_login);
	assert_true(c.has_size);
	assert_int_equal(c.size, 52428800);
}

static void test_caps_each_alone(void **state)
{
	struct smtp_caps c;
	const char *l1[] = {"250-host", "250 STARTTLS"};
	caps_of(l1, 2, &c);
	assert_true(c.starttls);
	assert_false(c.chunking);
	assert_false(c.has_size);
	assert_false(c.auth_plain);

	const char *l2[] = {"250-host", "250 chunking"};
	caps_of(l2, 2, &c);
	assert_true(c.chunking);
	assert_false(c.starttls);

	const char *l3[] = {"250-host", "250 Auth login"};
	caps_of(l3, 2, &c);
	assert_true(c.auth_login);
	assert_false(c.auth_plain);

	const char *l4[] = {"250-host", "250 AUTH CRAM-MD5 PLAIN XOAUTH2"};
	caps_of(l4, 2, &c);
	assert_true(c.auth_plain);
	assert_false(c.auth_login);
}

static void test_caps_auth_equals_style(void **state)
{
	struct smtp_caps c;
	const char *l1[] = {"250-host", "250 AUTH=LOGIN PLAIN"};
	caps_of(l1, 2, &c);
	assert_true(c.auth_login);
	assert_true(c.auth_plain);

	const char *l2[] = {"250-host", "250-AUTH=LOGIN", "250 SIZE"};
	caps_of(l2, 3, &c);
	assert_true(c.auth_login);
	assert_false(c.auth_plain);
	assert_true(c.has_size);
}

static void test_caps_auth_needs_whole_words(void **state)
{
	struct smtp_caps c;
	const char *l[] = {"250-host", "250 AUTH PLAINX XLOGIN CRAM-MD5"};

	caps_of(l, 2, &c);
	assert_false(c.auth_plain);
	assert_false(c.auth_login);
}

static void test_caps_size(void **state)
{
	struct smtp_caps c;
	const char *l1[] = {"250-host", "250 SIZE"};
	caps_of(l1, 2, &c);
	assert_true(c.has_size);
	assert_int_equal(c.size, 0);

	const char *l2[] = {"250-host", "250 SIZE 0"};
	caps_of(l2, 2, &c);
	assert_true(c.has_size);
	assert_int_equal(c.size, 0);

	const char *l3[] = {"250-host", "250 size 10485760"};
	caps_of(l3, 2, &c);
	assert_true(c.has_size);
	assert_int_equal(c.size, 10485760);

	const char *l4[] = {"250-host", "250 SIZE 35882577000"};
	caps_of(l4, 2, &c);
	assert_true(c.has_size);
	assert_true(c.size == UINT64_C(35882577000));
}

static void test_caps_first_line_is_not_a_keyword(void **state)
{
	struct smtp_caps c;
	const char *l1[] = {"250 STARTTLS"};
	caps_of(l1, 1, &c);
	assert_no_caps(&c);

	const char *l2[] = {"250-STARTTLS", "250 SIZE 100"};
	caps_of(l2, 2, &c);
	assert_false(c.starttls);
	assert_true(c.has_size);
	assert_int_equal(c.size, 100);

	const char *l3[] = {"250 AUTH PLAIN"};
	caps_of(l3, 1, &c);
	assert_no_caps(&c);
}

static void test_caps_not_250(void **state)
{
	struct smtp_caps c;
	const char *l1[] = {"502-host", "502-STARTTLS", "502-AUTH PLAIN LOGIN", "502 SIZE 100"};
	caps_of(l1, 4, &c);
	assert_no_caps(&c);

	const char *l2[] = {"220-host", "220 STARTTLS"};
	caps_of(l2, 2, &c);
	assert_no_caps(&c);
}

static void test_caps_keyword_prefixes(void **state)
{
	struct smtp_caps c;
	const char *l[] = {"250-host",      "250-STARTTLSX",   "250-SIZEX 10",
	                   "250-XCHUNKING", "250-PIPELINING2", "250 AUTHX PLAIN"};

	caps_of(l, 6, &c);
	assert_no_caps(&c);
}

/* ---- AUTH argument ------------------------------------------------------------------------ */

static bool auth(const char *arg, struct smtp_auth_arg *a)
{
	return smtp_auth_parse(arg, strlen(arg), a);
}

static void test_auth_mech_only(void **state)
{
	struct smtp_auth_arg a;

	assert_true(auth("PLAIN", &a));
	assert_span(a.mech, a.mech_len, "PLAIN");
	assert_null(a.initial);
	assert_int_equal(a.initial_len, 0);
	assert_true(smtp_auth_is(&a, "PLAIN"));
	assert_true(smtp_auth_is(&a, "plain"));
	assert_false(smtp_auth_is(&a, "LOGIN"));
	assert_false(smtp_auth_is(&a, "PLAINX"));
	assert_false(smtp_auth_is(&a, "PLAI"));

	assert_true(auth("login", &a));
	assert_true(smtp_auth_is(&a, "LOGIN"));
}

static void test_auth_initial_response(void **state)
{
	struct smtp_auth_arg a;

	assert_true(auth("PLAIN dXNlcgB1c2VyAHNlY3JldA==", &a));
	assert_span(a.mech, a.mech_len, "PLAIN");
	assert_span(a.initial, a.initial_len, "dXNlcgB1c2VyAHNlY3JldA==");
	assert_true(smtp_auth_is(&a, "PLAIN"));

	/* "=" is an empty initial response (RFC 4954 4). */
	assert_true(auth("PLAIN =", &a));
	assert_span(a.initial, a.initial_len, "=");

	/* Extra separating spaces. */
	assert_true(auth("LOGIN    dXNlcg==", &a));
	assert_span(a.mech, a.mech_len, "LOGIN");
	assert_span(a.initial, a.initial_len, "dXNlcg==");
}

static void test_auth_invalid(void **state)
{
	struct smtp_auth_arg a;

	assert_false(auth("PLAIN a b", &a));
	assert_false(auth("PLAIN abc =", &a));
	assert_false(auth("", &a));
	assert_false(auth(" PLAIN", &a));
}

static void test_auth_length_is_respected(void **state)
{
	struct smtp_auth_arg a;

	assert_true(smtp_auth_parse("PLAIN abc def", 9, &a));
	assert_span(a.initial, a.initial_len, "abc");
	assert_true(smtp_auth_parse("PLAIN abc", 5, &a));
	assert_null(a.initial);
}

/* ---- MAIL SIZE= --------------------------------------------------------------------------- */

static bool size_param(const char *arg, uint64_t *v)
{
	return smtp_mail_size_param(arg, strlen(arg), v);
}

static void test_size_param_present(void **state)
{
	uint64_t v = 99;

	assert_true(size_param("FROM:<a@b> SIZE=10", &v));
	assert_int_equal(v, 10);
	assert_true(size_param("FROM:<a@b> BODY=8BITMIME SIZE=12345 SMTPUTF8", &v));
	assert_int_equal(v, 12345);
	assert_true(size_param("FROM:<a@b>   SIZE=7", &v));
	assert_int_equal(v, 7);
	assert_true(size_param("FROM:<> SIZE=0", &v));
	assert_int_equal(v, 0);
	assert_true(size_param("FROM:<a@b> SIZE=9999999999999999999", &v));
	assert_true(v == UINT64_C(9999999999999999999));
}

static void test_size_param_lower_case(void **state)
{
	uint64_t v = 0;

	assert_true(size_param("FROM:<a@b> size=42", &v));
	assert_int_equal(v, 42);
	assert_true(size_param("from:<a@b> Size=43", &v));
	assert_int_equal(v, 43);
}

static void test_size_param_absent(void **state)
{
	uint64_t v = 5;

	assert_false(size_param("FROM:<a@b>", &v));
	assert_false(size_param("FROM:<a@b> BODY=8BITMIME", &v));
	assert_false(size_param("", &v));
	/* The reverse-path is never a parameter, even when it looks like one. */
	assert_false(size_param("SIZE=10", &v));
	assert_false(size_param("FROM:<SIZE=10@b>", &v));
	assert_false(size_param("FROM:<a@b> XSIZE=10", &v));
	assert_false(size_param("FROM:<a@b> SIZE10", &v));
	assert_int_equal(v, 5);
}

static void test_size_param_malformed(void **state)
{
	static const char *const bad[] = {"FROM:<a@b> SIZE=",
	                                  "FROM:<a@b> SIZE=abc",
	                                  "FROM:<a@b> SIZE=10x",
	                                  "FROM:<a@b> SIZE=-1",
	                                  "FROM:<a@b> SIZE=+1",
	                                  "FROM:<a@b> SIZE=1.5",
	                                  "FROM:<a@b> SIZE=123456789012345678901x"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 0;
		if (size_param(bad[i], &v))
			fail_msg("\"%s\" accepted as %llu", bad[i], (unsigned long long)v);
	}
}

/* A value too large for 64 bits is still a size, over any limit. */
static void test_size_param_saturates(void **state)
{
	uint64_t v = 0;

	assert_true(size_param("FROM:<a@b> SIZE=18446744073709551615", &v));
	assert_true(v == UINT64_MAX);
	v = 0;
	assert_true(size_param("FROM:<a@b> SIZE=99999999999999999999", &v));
	assert_true(v == UINT64_MAX);
	v = 0;
	assert_true(size_param("FROM:<a@b> SIZE=000000000000000000000000000001", &v));
	assert_true(v == UINT64_MAX);
}

static void test_size_param_length_is_respected(void **state)
{
	uint64_t v = 0;
	const char *arg = "FROM:<a@b> SIZE=1234";

	assert_true(smtp_mail_size_param(arg, strlen(arg) - 2, &v));
	assert_int_equal(v, 12);
	assert_false(smtp_mail_size_param(arg, 11, &v));
}

/* ---- BDAT --------------------------------------------------------------------------------- */

static bool bdat(const char *arg, uint64_t *size, bool *last)
{
	return smtp_bdat_parse(arg, strlen(arg), size, last);
}

static void test_bdat_valid(void **state)
{
	uint64_t size = 1;
	bool last = true;

	assert_true(bdat("10", &size, &last));
	assert_int_equal(size, 10);
	assert_false(last);

	assert_true(bdat("10 LAST", &size, &last));
	assert_int_equal(size, 10);
	assert_true(last);

	last = false;
	assert_true(bdat("10 last", &size, &last));
	assert_true(last);

	last = false;
	assert_true(bdat("0   Last", &size, &last));
	assert_int_equal(size, 0);
	assert_true(last);

	assert_true(bdat("9999999999999999999", &size, &last));
	assert_true(size == UINT64_C(9999999999999999999));
	assert_false(last);
}

static void test_bdat_invalid(void **state)
{
	static const char *const bad[] = {"x",
	                                  "",
	                                  "10 MORE",
	                                  "10 LASTX",
	                                  "10 LAST x",
	                                  "10x",
	                                  "-5",
	                                  "+5",
	                                  " 10",
	                                  "10 LA",
	                                  "LAST",
	                                  "0x10",
	                                  "1 0",
	                                  "18446744073709551616",
	                                  "99999999999999999999",
	                                  "123456789012345678901234567890 LAST"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t size = 0;
		bool last = false;
		if (bdat(bad[i], &size, &last))
			fail_msg("\"%s\" accepted as %llu%s", bad[i], (unsigned long long)size,
			         last ? " LAST" : "");
	}
}

/* ---- reference end-of-data scanner ------------------------------------------------------- */

/* An independent, strict RFC 5321 end-of-data finder (CRLF "." CRLF, the body start counting
 * as a line start) that notes bare CR and LF. It models the relay, and is the oracle the
 * filter is checked against in test_filter_random. */
struct ref_scan {
	int state;
	uint64_t bytes;
	bool bare_lf, bare_cr;
};

enum { DS_LINE_START, DS_MID, DS_CR, DS_DOT, DS_DOT_CR };

static void ref_scan_init(struct ref_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->state = DS_LINE_START;
}

/* One byte in the middle of a line: only CRLF ends it; lone CR or LF are noted. */
static int ref_scan_mid(struct ref_scan *s, char c)
{
	if (c == '\r')
		return DS_CR;
	if (c == '\n')
		s->bare_lf = true;
	return DS_MID;
}

static size_t ref_scan_run(struct ref_scan *s, const char *buf, size_t len, bool *done)
{
	*done = false;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		switch (s->state) {
		case DS_LINE_START:
			s->state = c == '.' ? DS_DOT : ref_scan_mid(s, c);
			break;
		case DS_MID:
			s->state = ref_scan_mid(s, c);
			break;
		case DS_CR:
			if (c == '\n') {
				s->state = DS_LINE_START;
			} else {
				s->bare_cr = true;
				s->state = ref_scan_mid(s, c);
			}
			break;
		case DS_DOT:
			s->state = c == '\r' ? DS_DOT_CR : ref_scan_mid(s, c);
			break;
		case DS_DOT_CR:
			if (c == '\n') {
				s->bytes += i + 1;
				*done = true;
				return i + 1;
			}
			s->bare_cr = true;
			s->state = ref_scan_mid(s, c);
			break;
		}
	}
	s->bytes += len;
	return len;
}

/* ---- DATA end scanner --------------------------------------------------------------------- */

/* The content filter in DATA mode with the REJECT policy, seen as an end-of-data scanner:
 * where a message ends, how much is consumed, and whether a bare CR or LF was seen. */
struct fscan {
	struct smtp_data_filter f;
	uint64_t bytes;
	bool bare;
};

static void fscan_init(struct fscan *s)
{
	smtp_data_filter_init(&s->f, SMTP_BARE_REJECT, false);
	s->bytes = 0;
	s->bare = false;
}

static size_t fscan(struct fscan *s, const char *buf, size_t len, bool *done)
{
	struct iobuf out;

	iobuf_init(&out);
	size_t n = smtp_data_filter(&s->f, buf, len, &out, done);
	iobuf_free(&out);
	s->bytes = s->f.bytes;
	s->bare = s->f.bare;
	return n;
}

struct scan_result {
	size_t consumed;
	bool done;
	struct fscan s;
};

static struct scan_result scan_once(const char *buf, size_t len)
{
	struct scan_result r;

	fscan_init(&r.s);
	r.consumed = fscan(&r.s, buf, len, &r.done);
	return r;
}

static struct scan_result scan_str(const char *buf)
{
	return scan_once(buf, strlen(buf));
}

static void test_scan_end_at_body_start(void **state)
{
	struct scan_result r = scan_str(".\r\n");
	assert_true(r.done);
	assert_int_equal(r.consumed, 3);
	assert_int_equal(r.s.bytes, 3);
	assert_false(r.s.bare);

	r = scan_str(".\r\nQUIT\r\n");
	assert_true(r.done);
	assert_int_equal(r.consumed, 3);
	assert_int_equal(r.s.bytes, 3);
}

static void test_scan_end_after_body(void **state)
{
	const char *msg = "Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n";
	size_t end = strlen("Subject: hi\r\n\r\nhello\r\n.\r\n");
	struct scan_result r = scan_str(msg);

	assert_true(r.done);
	assert_int_equal(r.consumed, end);
	assert_int_equal(r.s.bytes, end);
	assert_false(r.s.bare);

	/* An empty line before the end. */
	r = scan_str("a\r\n\r\n.\r\n");
	assert_true(r.done);
	assert_int_equal(r.consumed, 8);
}

static void test_scan_no_end(void **state)
{
	static const char *const bodies[] = {
	    "hello\r\n",
	    "hello\r\n.",
	    "hello\r\n.\r",
	    ".",
	    ".\r",
	    "a.\r\n",
	    "a\r\n.x\r\n",
	    "a\r\n. \r\n",
	    "a\r\n x.\r\n",
	    "..\r\n",
	    "a\r\n..\r\n",
	    "..x\r\n",
	    "a\r\n..x\r\n",
	    "\r\n",
	    "",
	    "a\r\n.\r.\r\n",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct scan_result r = scan_str(bodies[i]);
		if (r.done)
			fail_msg("body %zu ended early", i);
		assert_int_equal(r.consumed, strlen(bodies[i]));
		assert_int_equal(r.s.bytes, strlen(bodies[i]));
	}
}

/* Every way of cutting the stream in two (and three) finds the same end. */
static void test_scan_every_split(void **state)
{
	const char *msg = "From: a@b\r\n\r\n..stuffed\r\nbody\r\n.\r\nRSET\r\n";
	size_t len = strlen(msg);
	size_t end = strlen("From: a@b\r\n\r\n..stuffed\r\nbody\r\n.\r\n");

	for (size_t k = 0; k <= len; k++) {
		struct fscan s;
		bool done;
		size_t n;

		fscan_init(&s);
		n = fscan(&s, msg, k, &done);
		if (k >= end) {
			assert_true(done);
			assert_int_equal(n, end);
		} else {
			assert_false(done);
			assert_int_equal(n, k);
			n = fscan(&s, msg + k, len - k, &done);
			if (!done)
				fail_msg("split at %zu: end not found", k);
			assert_int_equal(n, end - k);
		}
		assert_int_equal(s.bytes, end);
		assert_false(s.bare);
	}

	for (size_t i = 0; i <= end; i++) {
		for (size_t j = i; j <= end; j++) {
			struct fscan s;
			bool done;
			size_t total = 0;

			fscan_init(&s);
			total += fscan(&s, msg, i, &done);
			assert_int_equal(done, i == end);
			if (!done) {
				total += fscan(&s, msg + i, j - i, &done);
				assert_int_equal(done, j == end);
			}
			if (!done) {
				total += fscan(&s, msg + j, len - j, &done);
				assert_true(done);
			}
			assert_int_equal(total, end);
			assert_int_equal(s.bytes, end);
		}
	}
}

/* The terminator alone at the start of the stream, cut everywhere. */
static void test_scan_split_at_body_start(void **state)
{
	const char *msg = ".\r\nX";

	for (size_t k = 0; k <= 4; k++) {
		struct fscan s;
		bool done;
		size_t n;

		fscan_init(&s);
		n = fscan(&s, msg, k, &done);
		if (k < 3) {
			assert_false(done);
			assert_int_equal(n, k);
			n = fscan(&s, msg + k, 4 - k, &done);
			assert_true(done);
			assert_int_equal(n, 3 - k);
		} else {
			assert_true(done);
			assert_int_equal(n, 3);
		}
		assert_int_equal(s.bytes, 3);
	}
}

static void test_scan_byte_by_byte(void **state)
{
	const char *msg = "a\r\n..\r\n.x\r\nb\r\n.\r\nafter";
	size_t end = strlen("a\r\n..\r\n.x\r\nb\r\n.\r\n");
	struct fscan s;
	bool done = false;
	size_t i;

	fscan_init(&s);
	for (i = 0; !done; i++) {
		assert_true(i < strlen(msg));
		assert_int_equal(fscan(&s, msg + i, 1, &done), 1);
	}
	assert_int_equal(i, end);
	assert_int_equal(s.bytes, end);
}

static void test_scan_bytes_accumulate(void **state)
{
	struct fscan s;
	bool done;

	fscan_init(&s);
	assert_int_equal(fscan(&s, "abc", 3, &done), 3);
	assert_false(done);
	assert_int_equal(fscan(&s, "", 0, &done), 0);
	assert_false(done);
	assert_int_equal(fscan(&s, "de\r\n", 4, &done), 4);
	assert_int_equal(s.bytes, 7);
	assert_int_equal(fscan(&s, ".\r\nzz", 5, &done), 3);
	assert_true(done);
	assert_int_equal(s.bytes, 10);
}

static void test_scan_bare_lf(void **state)
{
	struct scan_result r = scan_str("a\nb\r\n");
	assert_true(r.s.bare);
	assert_false(r.done);

	/* "\n.\n" and friends are not the end of the message. */
	static const char *const smuggle[] = {"\n.\n",       "a\n.\n", "a\r\n.\n", "a\n.\r\n",
	                                      "a\n.\nb\r\n", ".\n",    "\n.\r\n"};
	for (size_t i = 0; i < sizeof(smuggle) / sizeof(smuggle[0]); i++) {
		r = scan_str(smuggle[i]);
		if (r.done)
			fail_msg("smuggle %zu ended the message", i);
		assert_int_equal(r.consumed, strlen(smuggle[i]));
		assert_true(r.s.bare);
	}

	r = scan_str("\n");
	assert_true(r.s.bare);
}

static void test_scan_bare_cr(void **state)
{
	struct scan_result r = scan_str("a\rb\r\n");
	assert_true(r.s.bare);

	r = scan_str("a\r\r\n");
	assert_true(r.s.bare);

	r = scan_str("\r.\r\n");
	assert_true(r.s.bare);
	assert_false(r.done);

	r = scan_str("a\r\n.\r.\r\n");
	assert_true(r.s.bare);
	assert_false(r.done);

	/* A CR at the end of one chunk and LF at the start of the next is a CRLF. */
	struct fscan s;
	bool done;
	fscan_init(&s);
	fscan(&s, "a\r", 2, &done);
	fscan(&s, "\nb\r\n", 4, &done);
	assert_false(s.bare);
	assert_false(done);
}

static void test_scan_flags_with_end(void **state)
{
	struct scan_result r = scan_str("a\nb\rc\r\n.\r\n");
	assert_true(r.done);
	assert_int_equal(r.consumed, 10);
	assert_true(r.s.bare);

	r = scan_str("clean\r\n.\r\n\n\r");
	assert_true(r.done);
	assert_false(r.s.bare);
}

/* ---- DATA/BDAT content filter ------------------------------------------------------------ */

struct filt {
	struct smtp_data_filter f;
	struct iobuf out;
	size_t consumed;
	bool done;
};

static void filt_init(struct filt *t, enum smtp_bare_policy policy, bool chunked)
{
	smtp_data_filter_init(&t->f, policy, chunked);
	iobuf_init(&t->out);
	t->consumed = 0;
	t->done = false;
}

static void filt_feed(struct filt *t, const char *in, size_t len)
{
	assert_false(t->done);
	t->consumed += smtp_data_filter(&t->f, in, len, &t->out, &t->done);
}

static void filt_run(struct filt *t, enum smtp_bare_policy policy, bool chunked, const char *in)
{
	filt_init(t, policy, chunked);
	filt_feed(t, in, strlen(in));
}

static void assert_out(const struct filt *t, const char *want)
{
	size_t n = strlen(want);
	if (iobuf_avail(&t->out) != n || memcmp(iobuf_peek(&t->out), want, n) != 0) {
		char got[512];
		size_t k = 0;
		for (size_t i = 0; i < iobuf_avail(&t->out) && k + 4 < sizeof(got); i++) {
			char ch = iobuf_peek(&t->out)[i];
			if (ch == '\r' || ch == '\n') {
				got[k++] = '\\';
				got[k++] = ch == '\r' ? 'r' : 'n';
			} else {
				got[k++] = ch;
			}
		}
		got[k] = '\0';
		fail_msg("filter output \"%s\" (%zu bytes), want %zu bytes", got, iobuf_avail(&t->out), n);
	}
}

/* Clean content goes out verbatim, terminator included, and nothing after it is consumed. */
static void test_filter_clean(void **state)
{
	for (int pol = SMTP_BARE_REJECT; pol <= SMTP_BARE_NORMALIZE; pol++) {
		const char *msg = "Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n";
		size_t end = strlen(msg) - strlen("QUIT\r\n");
		struct filt t;

		filt_run(&t, (enum smtp_bare_policy)pol, false, msg);
		assert_true(t.done);
		assert_int_equal(t.consumed, end);
		assert_true(t.f.bytes == end);
		assert_false(t.f.bare);
		assert_false(t.f.halted);
		assert_false(t.f.long_line);
		assert_out(&t, "Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\n");
		iobuf_free(&t.out);

		filt_run(&t, (enum smtp_bare_policy)pol, false, ".\r\nRSET\r\n");
		assert_true(t.done);
		assert_int_equal(t.consumed, 3);
		assert_out(&t, ".\r\n");
		iobuf_free(&t.out);
	}
}

static void test_filter_every_split(void **state)
{
	const char *msg = "a\r\n..\r\n.b\r\nc\r\n.\r\nNEXT";
	size_t len = strlen(msg), end = len - 4;

	for (size_t k = 0; k <= len; k++) {
		struct filt t;
		filt_init(&t, SMTP_BARE_REJECT, false);
		filt_feed(&t, msg, k);
		if (!t.done)
			filt_feed(&t, msg + k, len - k);
		assert_true(t.done);
		assert_int_equal(t.consumed, end);
		assert_out(&t, "a\r\n..\r\n.b\r\nc\r\n.\r\n");
		iobuf_free(&t.out);
	}
}

static void test_filter_reject_bare_lf(void **state)
{
	struct filt t;

	filt_run(&t, SMTP_BARE_REJECT, false, "ok\r\na\nb\r\n.\r\nafter");
	assert_true(t.done);
	assert_int_equal(t.consumed, strlen("ok\r\na\nb\r\n.\r\n"));
	assert_true(t.f.bare);
	assert_true(t.f.halted);
	assert_out(&t, "ok\r\na"); /* nothing from the bare LF on, not even the end */
	iobuf_free(&t.out);

	/* Bare LF before a dot does not end the message. */
	filt_run(&t, SMTP_BARE_REJECT, false, "a\n.\r\nmore\r\n.\r\n");
	assert_true(t.done);
	assert_int_equal(t.consumed, strlen("a\n.\r\nmore\r\n.\r\n"));
	assert_out(&t, "a");
	iobuf_free(&t.out);

	filt_run(&t, SMTP_BARE_REJECT, false, "\n.\n");
	assert_false(t.done);
	assert_true(t.f.bare);
	assert_int_equal(iobuf_avail(&t.out), 0);
	iobuf_free(&t.out);

	filt_run(&t, SMTP_BARE_REJECT, false, ".\nx\r\n.\r\n");
	assert_true(t.done);
	assert_true(t.f.halted);
	assert_out(&t, ".");
	iobuf_free(&t.out);
}

static void test_filter_reject_bare_cr(void **state)
{
	struct filt t;

	filt_run(&t, SMTP_BARE_REJECT, false, "ok\r\na\rb\r\n.\r\n");
	assert_true(t.done);
	assert_true(t.f.bare);
	assert_true(t.f.halted);
	assert_out(&t, "ok\r\na");
	iobuf_free(&t.out);

	/* A CR held at the end of one input is not forwarded until its LF comes. */
	filt_init(&t, SMTP_BARE_REJECT, false);
	filt_feed(&t, "ab\r", 3);
	assert_out(&t, "ab");
	filt_feed(&t, "\n", 1);
	assert_out(&t, "ab\r\n");
	filt_feed(&t, ".\r", 2);
	assert_false(t.done);
	filt_feed(&t, "x\r\n.\r\n", 6);
	assert_true(t.done);
	assert_true(t.f.bare);
	assert_out(&t, "ab\r\n.");
	iobuf_free(&t.out);
}

static void test_filter_normalize(void **state)
{
	static const struct {
		const char *in, *out;
		bool done;
	} cases[] = {
	    {"a\nb\r\n.\r\n", "a\r\nb\r\n.\r\n", true},
	    {"a\rb\r\n.\r\n", "a\r\nb\r\n.\r\n", true},
	    {"a\r\r\n.\r\n", "a\r\n\r\n.\r\n", true},
	    /* A "." line made by a bare line end is dot-stuffed, so it is not an end. */
	    {"a\n.\nb\r\n.\r\n", "a\r\n..\r\nb\r\n.\r\n", true},
	    {".\n", "..\r\n", false},
	    {".\rX\r\n.\r\n", "..\r\nX\r\n.\r\n", true},
	    /* A "." starting a line that normalising made never ends the message, however
	     * that line ends: only the client's own CRLF "." CRLF does (SMTP smuggling). */
	    {"a\n.\r\nrest", "a\r\n..\r\nrest", false},
	    {"a\r.\r\nrest", "a\r\n..\r\nrest", false},
	    {"a\r\n\n.\r\nMAIL", "a\r\n\r\n..\r\nMAIL", false},
	    {"a\r\n\r.\r\nMAIL", "a\r\n\r\n..\r\nMAIL", false},
	    {"\n.\r\n", "\r\n..\r\n", false},
	    {"\r.\r\n", "\r\n..\r\n", false},
	    {"a\n.\n.\r\n", "a\r\n..\r\n..\r\n", false},
	    {"a\r\n.\r.\r\n", "a\r\n..\r\n..\r\n", false},
	    {"a\r\n.\n.\r\n", "a\r\n..\r\n..\r\n", false},
	    {"a\n..\r\n", "a\r\n...\r\n", false},
	    /* The client's own end still ends it, right after a normalised line. */
	    {"a\n.\r\n.\r\nrest", "a\r\n..\r\n.\r\n", true},
	    {"a\r\r\n.\r\nrest", "a\r\n\r\n.\r\n", true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct filt t;
		filt_run(&t, SMTP_BARE_NORMALIZE, false, cases[i].in);
		if (t.done != cases[i].done)
			fail_msg("case %zu: done %d", i, t.done);
		assert_true(t.f.bare);
		assert_false(t.f.halted);
		assert_out(&t, cases[i].out);
		if (t.done)
			assert_int_equal(t.consumed,
			                 strlen(cases[i].in) - (strstr(cases[i].in, "rest") ? 4 : 0));
		iobuf_free(&t.out);
	}
}

static void test_filter_long_line(void **state)
{
	char *in = malloc(2100);
	struct filt t;

	assert_non_null(in);
	/* 998 octets twice: fine. */
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n", 2);
	memset(in + 1000, 'y', 998);
	strcpy(in + 1998, "\r\n.\r\n");
	filt_run(&t, SMTP_BARE_REJECT, false, in);
	assert_true(t.done);
	assert_false(t.f.long_line);
	assert_false(t.f.halted);
	assert_int_equal(iobuf_avail(&t.out), strlen(in));
	assert_memory_equal(iobuf_peek(&t.out), in, strlen(in));
	iobuf_free(&t.out);

	/* 999: output stops before the 999th octet, the end is still found. */
	memset(in, 'x', 999);
	strcpy(in + 999, "\r\n.\r\n");
	filt_run(&t, SMTP_BARE_NORMALIZE, false, in);
	assert_true(t.done);
	assert_int_equal(t.consumed, 1004);
	assert_true(t.f.long_line);
	assert_true(t.f.halted);
	assert_false(t.f.bare);
	assert_int_equal(iobuf_avail(&t.out), 998);
	iobuf_free(&t.out);
	free(in);
}

/* The scanners' payloads: one write carrying a second transaction after a "." line made of
 * a bare line end. In either policy the filter must run on to the client's own final
 * CRLF "." CRLF, so the smuggled commands are content, and the relay sees one message. */
static const char *const smuggle_seps[] = {"\r\n\n.\r\n", "\r\n\r.\r\n", "\n.\r\n", "\r.\r\n",
                                           "\r\n.\n",     "\r\n.\r",     "\n.\n", "\r.\r"};

static void test_filter_smuggling(void **state)
{
	static const char tail[] = "MAIL FROM:<smuggled@acme.test>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	                           "Subject: SMUGGLED\r\n\r\nSMUGGLED\r\n.\r\nQUIT\r\n";
	for (size_t i = 0; i < sizeof(smuggle_seps) / sizeof(smuggle_seps[0]); i++) {
		for (int pol = SMTP_BARE_REJECT; pol <= SMTP_BARE_NORMALIZE; pol++) {
			char in[512];
			struct filt t;
			int n = snprintf(in, sizeof(in), "Subject: t\r\n\r\nTESTING%s%s", smuggle_seps[i], tail);
			filt_run(&t, (enum smtp_bare_policy)pol, false, in);
			if (!t.done || t.consumed != (size_t)n - strlen("QUIT\r\n"))
				fail_msg("separator %zu, policy %d: end %d at %zu", i, pol, t.done, t.consumed);
			assert_true(t.f.bare);
			assert_int_equal(t.f.halted, pol == SMTP_BARE_REJECT);
			struct ref_scan rs;
			bool rdone;
			ref_scan_init(&rs);
			size_t rn = ref_scan_run(&rs, iobuf_peek(&t.out), iobuf_avail(&t.out), &rdone);
			/* The relay finds one end, the last line, or (rejected) none at all. */
			if (pol == SMTP_BARE_NORMALIZE)
				assert_true(rdone && rn == iobuf_avail(&t.out));
			else
				assert_false(rdone);
			iobuf_free(&t.out);
			/* BDAT: the same bytes in a chunk are content and refused (chunked always rejects). */
			filt_run(&t, (enum smtp_bare_policy)pol, true, in);
			assert_false(t.done);
			assert_true(t.f.bare && t.f.halted);
			assert_null(memmem(iobuf_peek(&t.out), iobuf_avail(&t.out), "MAIL", 4));
			iobuf_free(&t.out);
		}
	}
}

static void test_filter_nul(void **state)
{
	static const char in[] = "a\r\nb\0c\r\nd\r\n.\r\nX";
	size_t len = sizeof(in) - 1, end = len - 1;

	for (int mode = 0; mode < 3; mode++) {
		struct filt t;
		bool chunked = mode == 2;
		filt_init(&t, mode == 1 ? SMTP_BARE_NORMALIZE : SMTP_BARE_REJECT, chunked);
		filt_feed(&t, in, len);
		assert_int_equal(t.done, !chunked);
		assert_int_equal(t.consumed, chunked ? len : end);
		assert_true(t.f.nul);
		assert_true(t.f.halted);
		assert_false(t.f.bare);
		assert_out(&t, "a\r\nb"); /* nothing from the NUL on */
		iobuf_free(&t.out);
	}
	/* allow_nul forwards it verbatim. */
	struct filt t;
	filt_init(&t, SMTP_BARE_REJECT, false);
	t.f.allow_nul = true;
	filt_feed(&t, in, len);
	assert_true(t.done);
	assert_false(t.f.halted);
	assert_int_equal(iobuf_avail(&t.out), end);
	assert_memory_equal(iobuf_peek(&t.out), in, end);
	iobuf_free(&t.out);
}

static void test_filter_owner_halt(void **state)
{
	struct filt t;

	filt_init(&t, SMTP_BARE_REJECT, false);
	filt_feed(&t, "abc\r\n", 5);
	t.f.halted = true; /* e.g. over the size limit */
	filt_feed(&t, "def\r\n.\r\nX", 9);
	assert_true(t.done);
	assert_int_equal(t.consumed, 13);
	assert_true(t.f.bytes == 13);
	assert_false(t.f.bare);
	assert_out(&t, "abc\r\n");
	iobuf_free(&t.out);
}

static void test_filter_large(void **state)
{
	struct iobuf in;
	struct filt t;

	iobuf_init(&in);
	for (int i = 0; i < 2000; i++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "%sline %d of the message\r\n", i % 7 ? "" : ".", i);
		iobuf_append(&in, line, (size_t)n);
	}
	size_t body = iobuf_avail(&in);
	iobuf_append(&in, ".\r\n", 3);
	filt_init(&t, SMTP_BARE_REJECT, false);
	filt_feed(&t, iobuf_peek(&in), iobuf_avail(&in));
	assert_true(t.done);
	assert_int_equal(t.consumed, body + 3);
	assert_int_equal(iobuf_avail(&t.out), body + 3);
	assert_memory_equal(iobuf_peek(&t.out), iobuf_peek(&in), body + 3);
	iobuf_free(&t.out);
	iobuf_free(&in);
}

static void test_filter_chunked(void **state)
{
	struct filt t;

	/* No end marker, no dot rules: everything is content. */
	filt_run(&t, SMTP_BARE_REJECT, true, "a\r\n.\r\n..\r\nb");
	assert_false(t.done);
	assert_int_equal(t.consumed, 11);
	assert_out(&t, "a\r\n.\r\n..\r\nb");
	iobuf_free(&t.out);

	/* A CR goes out at once; whether its LF comes is known later. */
	filt_init(&t, SMTP_BARE_REJECT, true);
	filt_feed(&t, "a\r", 2);
	assert_out(&t, "a\r");
	assert_true(smtp_data_filter_cr_pending(&t.f));
	filt_feed(&t, "\nb", 2);
	assert_false(smtp_data_filter_cr_pending(&t.f));
	assert_out(&t, "a\r\nb");
	assert_false(t.f.bare);
	iobuf_free(&t.out);

	/* Chunked mode always rejects, whatever policy is asked for. */
	filt_run(&t, SMTP_BARE_NORMALIZE, true, "a\nb");
	assert_int_equal(t.f.policy, SMTP_BARE_REJECT);
	assert_true(t.f.bare);
	assert_true(t.f.halted);
	assert_out(&t, "a");
	iobuf_free(&t.out);

	filt_run(&t, SMTP_BARE_REJECT, true, "a\rb");
	assert_true(t.f.bare);
	assert_true(t.f.halted);
	assert_out(&t, "a\r"); /* the CR had gone; nothing after it does */
	iobuf_free(&t.out);
}

/* True when every CR in s is followed by LF and every LF preceded by CR. */
static bool crlf_clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
			return false;
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return false;
	}
	return true;
}

/* Random content over a small alphabet, cut at random points: for both policies the filter
 * never forwards a bare CR or LF, the relay (modelled by ref_scan over the output) sees
 * an end exactly when and where the filter does, and REJECT agrees with the plain scanner. */
static void test_filter_random(void **state)
{
	static const char alphabet[] = {'a', '.', '.', '\r', '\r', '\n', '\n', 'b'};
	uint32_t seed = 12345;
	char in[48];

	for (int iter = 0; iter < 200000; iter++) {
		size_t len;
		seed = seed * 1103515245u + 12345u;
		len = (seed >> 16) % sizeof(in);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		seed = seed * 1103515245u + 12345u;
		size_t cut = len ? (seed >> 16) % (len + 1) : 0;
		enum smtp_bare_policy pol = iter % 2 ? SMTP_BARE_NORMALIZE : SMTP_BARE_REJECT;
		struct filt t;

		filt_init(&t, pol, false);
		filt_feed(&t, in, cut);
		if (!t.done)
			filt_feed(&t, in + cut, len - cut);

		const char *out = iobuf_peek(&t.out);
		size_t olen = iobuf_avail(&t.out);
		if (!crlf_clean(out, olen))
			fail_msg("iteration %d: bare CR or LF forwarded", iter);

		struct ref_scan rs;
		bool rdone;
		ref_scan_init(&rs);
		size_t rn = ref_scan_run(&rs, out, olen, &rdone);
		if (t.done && !t.f.halted) {
			if (!rdone || rn != olen)
				fail_msg("iteration %d: relay end at %zu/%zu (done %d)", iter, rn, olen,
				         rdone);
		} else if (rdone) {
			fail_msg("iteration %d: relay sees an end the filter did not pass", iter);
		}

		struct ref_scan ss;
		bool sdone;
		ref_scan_init(&ss);
		size_t sn = ref_scan_run(&ss, in, len, &sdone);
		if (pol == SMTP_BARE_REJECT) {
			assert_int_equal(t.done, sdone);
			assert_int_equal(t.consumed, sn);
			assert_int_equal(t.f.bare, ss.bare_lf || ss.bare_cr);
			assert_int_equal(t.f.halted, t.f.bare);
			if (!t.f.halted) {
				/* Verbatim, except a CR still waiting for its LF. */
				size_t held = !t.done && t.consumed > 0 && in[t.consumed - 1] == '\r';
				assert_int_equal(olen + held, t.consumed);
				assert_memory_equal(out, in, olen);
			}
		} else if (!ss.bare_lf && !ss.bare_cr) {
			assert_false(t.f.bare);
		}
		/* Either policy: only the client's own CRLF "." CRLF ends the data. */
		if (t.done != sdone || t.consumed != sn)
			fail_msg("iteration %d (%s): filter end %d at %zu, client's end %d at %zu", iter,
			         pol == SMTP_BARE_REJECT ? "reject" : "normalize", t.done, t.consumed, sdone,
			         sn);
		assert_true(t.f.bytes == t.consumed);
		iobuf_free(&t.out);
	}
}

/* ---- scrubbing ---------------------------------------------------------------------------- */

static const char *const mg[] = {"mailgun"};
#define BRAND "smtp.acme.test"

static void assert_scrub(const char *const *words, size_t n, const char *in, const char *want)
{
	char *out = smtp_scrub(in, words, n, BRAND);
	assert_non_null(out);
	if (strcmp(out, want) != 0)
		fail_msg("scrub(\"%s\") = \"%s\", want \"%s\"", in, out, want);
	assert_ptr_not_equal(out, in);
	free(out);
}

static void test_scrub_case_insensitive(void **state)
{
	assert_scrub(mg, 1, "Hello from MailGun relay", "Hello from " BRAND " relay");
	assert_scrub(mg, 1, "MAILGUN", BRAND);
	assert_scrub(mg, 1, "smtp.mailgun.org ESMTP ready", BRAND " ESMTP ready");
}

static void test_scrub_adjacent_collapse(void **state)
{
	const char *words[] = {"mailgun", "smtp.relay.test"};
	/* Adjacent replaced words read as one brand name, not the brand repeated. */
	assert_scrub(mg, 1, "mailgun mailgun", BRAND);
	assert_scrub(words, 2, "2.7.0 smtp.relay.test mailgun authentication successful",
	             "2.7.0 " BRAND " authentication successful");
	/* The relay's text already naming the brand next to a replaced word. */
	assert_scrub(words, 2, "2.7.0 " BRAND " smtp.relay.test authentication successful",
	             "2.7.0 " BRAND " authentication successful");
	assert_scrub(words, 2, "smtp.relay.test SMTP.ACME.TEST ok", BRAND " ok");
	/* Not adjacent: each stays. */
	assert_scrub(mg, 1, "mailgun and mailgun", BRAND " and " BRAND);
	/* The brand alone, with nothing replaced, is left as it is. */
	assert_scrub(mg, 1, BRAND " " BRAND, BRAND " " BRAND);
	/* Spaces after the collapsed run are kept. */
	assert_scrub(mg, 1, "  mailgun  mailgun  x", "  " BRAND "  x");
}

static void test_scrub_punctuation(void **state)
{
	/* The whole space-separated word goes, punctuation included. */
	assert_scrub(mg, 1, "greets you (mailgun)", "greets you " BRAND);
	assert_scrub(mg, 1, "ok, mailgun. bye", "ok, " BRAND " bye");
	assert_scrub(mg, 1, "<postmaster@mailgun.org>", BRAND);
}

static void test_scrub_spaces_preserved(void **state)
{
	assert_scrub(mg, 1, "a  mailgun   b", "a  " BRAND "   b");
	assert_scrub(mg, 1, "  mailgun  ", "  " BRAND "  ");
	assert_scrub(mg, 1, "   ", "   ");
}

static void test_scrub_no_hit(void **state)
{
	assert_scrub(mg, 1, "2.1.0 Sender ok", "2.1.0 Sender ok");
	assert_scrub(mg, 1, "mail gun", "mail gun");
	assert_scrub(mg, 1, "mailgu n", "mailgu n");
	assert_scrub(mg, 0, "mailgun", "mailgun");
	const char *empty_word[] = {""};
	assert_scrub(empty_word, 1, "anything at all", "anything at all");
}

static void test_scrub_empty_text(void **state)
{
	assert_scrub(mg, 1, "", "");
}

static void test_scrub_several_words(void **state)
{
	const char *words[] = {"mailgun", "smtp.relay.test", "relay.test"};
	assert_scrub(words, 3, "at smtp.relay.test by MailGun via relay.TEST.",
	             "at " BRAND " by " BRAND " via " BRAND);
	assert_scrub(words, 3, "535 5.7.8 Authentication failed", "535 5.7.8 Authentication failed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmd_every_verb_any_case),
	    cmocka_unit_test(test_cmd_verb_names),
	    cmocka_unit_test(test_cmd_mail_keeps_keyword_and_params),
	    cmocka_unit_test(test_cmd_spaces),
	    cmocka_unit_test(test_cmd_length_is_respected),
	    cmocka_unit_test(test_cmd_empty),
	    cmocka_unit_test(test_cmd_nul),
	    cmocka_unit_test(test_cmd_cr),
	    cmocka_unit_test(test_cmd_unknown_and_prefixes),
	    cmocka_unit_test(test_line_strip),
	    cmocka_unit_test(test_reply_single_line),
	    cmocka_unit_test(test_reply_multi_line),
	    cmocka_unit_test(test_reply_mismatched_code),
	    cmocka_unit_test(test_reply_bad_codes),
	    cmocka_unit_test(test_reply_nul),
	    cmocka_unit_test(test_reply_code_only),
	    cmocka_unit_test(test_reply_length_is_respected),
	    cmocka_unit_test(test_reply_max_lines),
	    cmocka_unit_test(test_enhanced_code_len),
	    cmocka_unit_test(test_enhanced_code_invalid),
	    cmocka_unit_test(test_enhanced_code_class_3_invalid),
	    cmocka_unit_test(test_reply_append_one),
	    cmocka_unit_test(test_reply_append_several),
	    cmocka_unit_test(test_reply_appendf),
	    cmocka_unit_test(test_reply_round_trip),
	    cmocka_unit_test(test_caps_full),
	    cmocka_unit_test(test_caps_each_alone),
	    cmocka_unit_test(test_caps_auth_equals_style),
	    cmocka_unit_test(test_caps_auth_needs_whole_words),
	    cmocka_unit_test(test_caps_size),
	    cmocka_unit_test(test_caps_first_line_is_not_a_keyword),
	    cmocka_unit_test(test_caps_not_250),
	    cmocka_unit_test(test_caps_keyword_prefixes),
	    cmocka_unit_test(test_auth_mech_only),
	    cmocka_unit_test(test_auth_initial_response),
	    cmocka_unit_test(test_auth_invalid),
	    cmocka_unit_test(test_auth_length_is_respected),
	    cmocka_unit_test(test_size_param_present),
	    cmocka_unit_test(test_size_param_lower_case),
	    cmocka_unit_test(test_size_param_absent),
	    cmocka_unit_test(test_size_param_malformed),
	    cmocka_unit_test(test_size_param_saturates),
	    cmocka_unit_test(test_size_param_length_is_respected),
	    cmocka_unit_test(test_bdat_valid),
	    cmocka_unit_test(test_bdat_invalid),
	    cmocka_unit_test(test_scan_end_at_body_start),
	    cmocka_unit_test(test_scan_end_after_body),
	    cmocka_unit_test(test_scan_no_end),
	    cmocka_unit_test(test_scan_every_split),
	    cmocka_unit_test(test_scan_split_at_body_start),
	    cmocka_unit_test(test_scan_byte_by_byte),
	    cmocka_unit_test(test_scan_bytes_accumulate),
	    cmocka_unit_test(test_scan_bare_lf),
	    cmocka_unit_test(test_scan_bare_cr),
	    cmocka_unit_test(test_scan_flags_with_end),
	    cmocka_unit_test(test_filter_clean),
	    cmocka_unit_test(test_filter_every_split),
	    cmocka_unit_test(test_filter_reject_bare_lf),
	    cmocka_unit_test(test_filter_reject_bare_cr),
	    cmocka_unit_test(test_filter_normalize),
	    cmocka_unit_test(test_filter_smuggling),
	    cmocka_unit_test(test_filter_nul),
	    cmocka_unit_test(test_filter_long_line),
	    cmocka_unit_test(test_filter_owner_halt),
	    cmocka_unit_test(test_filter_large),
	    cmocka_unit_test(test_filter_chunked),
	    cmocka_unit_test(test_filter_random),
	    cmocka_unit_test(test_scrub_case_insensitive),
	        cmocka_unit_test(test_scrub_adjacent_collapse),
	    cmocka_unit_test(test_scrub_punctuation),
	    cmocka_unit_test(test_scrub_spaces_preserved),
	    cmocka_unit_test(test_scrub_no_hit),
	    cmocka_unit_test(test_scrub_empty_text),
	    cmocka_unit_test(test_scrub_several_words),
	};
	return cmocka_run_group_tests_name("smtp_proto", tests, NULL, NULL);
}

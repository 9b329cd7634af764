/* smtp_proto: the pure SMTP grammar (commands, replies, EHLO keywords, DATA end scanning, reply scrubbing);
 * no I/O, no logging. */
#include "smtp_proto.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const char *const verb_names[SMTP_VERB_COUNT] = {
        [SMTP_UNKNOWN] = "UNKNOWN", [SMTP_HELO] = "HELO", [SMTP_EHLO] = "EHLO", [SMTP_STARTTLS] = "STARTTLS",
        [SMTP_AUTH] = "AUTH",       [SMTP_MAIL] = "MAIL", [SMTP_RCPT] = "RCPT", [SMTP_DATA] = "DATA",
        [SMTP_BDAT] = "BDAT",       [SMTP_RSET] = "RSET", [SMTP_NOOP] = "NOOP", [SMTP_QUIT] = "QUIT",
        [SMTP_VRFY] = "VRFY",       [SMTP_EXPN] = "EXPN", [SMTP_HELP] = "HELP",
};

const char *smtp_verb_name(enum smtp_verb verb)
{
	return verb < SMTP_VERB_COUNT ? verb_names[verb] : "UNKNOWN";
}

size_t smtp_line_strip(const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	return len;
}

/* "MAIL FROM:" and "RCPT TO:" keep their keyword in the argument; the verb is the first word. */
enum smtp_parse_result smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out)
{
	size_t i = 0, vlen;

	memset(out, 0, sizeof(*out));
	if (memchr(line, '\0', len) != NULL)
		return SMTP_PARSE_NUL;
	/* A CR inside a line would reach the relay, which might take it for a line end and
	 * answer one command more than we count. */
	if (memchr(line, '\r', len) != NULL)
		return SMTP_PARSE_CR;
	while (len > 0 && line[len - 1] == ' ')
		len--;
	if (len == 0)
		return SMTP_PARSE_EMPTY;
	while (i < len && line[i] != ' ')
		i++;
	vlen = i;
	while (i < len && line[i] == ' ')
		i++;
	out->arg = line + i;
	out->arg_len = len - i;
	out->verb = SMTP_UNKNOWN;
	for (int v = SMTP_HELO; v < SMTP_VERB_COUNT; v++) {
		if (strlen(verb_names[v]) == vlen && strncasecmp(line, verb_names[v], vlen) == 0) {
			out->verb = (enum smtp_verb)v;
			break;
		}
	}
	return SMTP_PARSE_OK;
}

void smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

void smtp_reply_clear(struct smtp_reply *r)
{
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	smtp_reply_init(r);
}

static int parse_code(const char *line, size_t len)
{
	if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (line[0] < '2' || line[0] > '5')
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	int code = parse_code(line, len);
	bool last;

	if (code < 0 || memchr(line, '\0', len) != NULL)
		return SMTP_REPLY_BAD;
	if (len == 3 || line[3] == ' ')
		last = true;
	else if (line[3] == '-')
		last = false;
	else
		return SMTP_REPLY_BAD;
	if ((r->nlines > 0 && code != r->code) || r->nlines == SMTP_REPLY_MAX_LINES)
		return SMTP_REPLY_BAD;
	r->code = code;
	r->lines[r->nlines++] = len > 4 ? xstrndup(line + 4, len - 4) : xstrdup("");
	return last ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

size_t smtp_enhanced_code_len(const char *t)
{
	size_t i = 0;

	/* RFC 3463: the class is 2 (success), 4 (persistent transient) or 5 (permanent). */
	if ((t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (isdigit((unsigned char)t[i]) && i - start < 3)
			i++;
		if (i == start)
			return 0;
		if (part == 0) {
			if (t[i] != '.')
				return 0;
			i++;
		}
	}
	if (t[i] == ' ')
		return i + 1;
	return t[i] == '\0' ? i : 0;
}

void smtp_reply_append(struct iobuf *out, int code, const char *const *lines, size_t nlines)
{
	char head[8];

	for (size_t i = 0; i < nlines; i++) {
		snprintf(head, sizeof(head), "%03d%c", code, i + 1 == nlines ? ' ' : '-');
		iobuf_append(out, head, 4);
		iobuf_append(out, lines[i], strlen(lines[i]));
		iobuf_append(out, "\r\n", 2);
	}
}

void smtp_reply_appendf(struct iobuf *out, int code, const char *fmt, ...)
{
	char text[1024];
	const char *lines[1] = {text};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_reply_append(out, code, lines, 1);
}

static bool word_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* Parses the parameters of an AUTH keyword line ("AUTH PLAIN LOGIN"). */
static void caps_auth(struct smtp_caps *caps, const char *p)
{
	while (*p) {
		size_t n = strcspn(p, " ");
		caps->auth_plain |= word_is(p, n, "PLAIN");
		caps->auth_login |= word_is(p, n, "LOGIN");
		p += n;
		p += strspn(p, " ");
	}
}

static void caps_line(struct smtp_caps *caps, const char *line)
{
	size_t n = strcspn(line, " =");
	const char *param = line + n + strspn(line + n, " =");

	if (word_is(line, n, "STARTTLS"))
		caps->starttls = true;
	else if (word_is(line, n, "PIPELINING"))
		caps->pipelining = true;
	else if (word_is(line, n, "8BITMIME"))
		caps->eightbitmime = true;
	else if (word_is(line, n, "SMTPUTF8"))
		caps->smtputf8 = true;
	else if (word_is(line, n, "CHUNKING"))
		caps->chunking = true;
	else if (word_is(line, n, "ENHANCEDSTATUSCODES"))
		caps->enhanced = true;
	else if (word_is(line, n, "AUTH"))
		caps_auth(caps, param);
	else if (word_is(line, n, "SIZE")) {
		caps->has_size = true;
		caps->size = isdigit((unsigned char)*param) ? strtoull(param, NULL, 10) : 0;
	}
}

void smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	if (ehlo->code != 250)
		return;
	/* The first line is the server's greeting, not a keyword. */
	for (size_t i = 1; i < ehlo->nlines; i++)
		caps_line(caps, ehlo->lines[i]);
}

bool smtp_auth_parse(const char *arg, size_t len, struct smtp_auth_arg *out)
{
	size_t i = 0;

	memset(out, 0, sizeof(*out));
	while (i < len && arg[i] != ' ')
		i++;
	if (i == 0)
		return false;
	out->mech = arg;
	out->mech_len = i;
	while (i < len && arg[i] == ' ')
		i++;
	if (i < len) {
		out->initial = arg + i;
		out->initial_len = len - i;
		if (memchr(out->initial, ' ', out->initial_len) != NULL)
			return false;
	}
	return true;
}

bool smtp_auth_is(const struct smtp_auth_arg *a, const char *mech)
{
	return word_is(a->mech, a->mech_len, mech);
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* Digits only; a value too large for 64 bits is UINT64_MAX, still over any limit. */
static bool parse_size(const char *s, size_t len, uint64_t *out)
{
	if (len <= 19)
		return parse_u64(s, len, out);
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
	}
	*out = UINT64_MAX;
	return true;
}

bool smtp_mail_size_param(const char *arg, size_t len, uint64_t *size)
{
	size_t i = 0;

	/* Parameters follow the reverse-path, separated by spaces. */
	while (i < len && arg[i] != ' ')
		i++;
	while (i < len) {
		while (i < len && arg[i] == ' ')
			i++;
		size_t start = i;
		while (i < len && arg[i] != ' ')
			i++;
		if (i - start > 5 && strncasecmp(arg + start, "SIZE=", 5) == 0)
			return parse_size(arg + start + 5, i - start - 5, size);
	}
	return false;
}

bool smtp_bdat_parse(const char *arg, size_t len, uint64_t *size, bool *last)
{
	size_t i = 0;

	while (i < len && arg[i] != ' ')
		i++;
	if (!parse_u64(arg, i, size))
		return false;
	while (i < len && arg[i] == ' ')
		i++;
	*last = false;
	if (i == len)
		return true;
	if (!word_is(arg + i, len - i, "LAST"))
		return false;
	*last = true;
	return true;
}

/* DF_NEW_LINE: a line that NORMALIZE started by turning a bare CR or LF into CRLF. Only the
 * client's own CRLF "." CRLF ends the data, so a "." there is stuffed and never ends it. */
enum { DF_LINE_START, DF_NEW_LINE, DF_MID, DF_CR, DF_DOT, DF_DOT_CR };

/* Collects output bytes in a local block so the iobuf is not grown a byte at a time. */
struct emitter {
	struct iobuf *out;
	size_t n;
	char buf[4096];
};

static void put(struct smtp_data_filter *f, struct emitter *e, const char *s, size_t n)
{
	if (f->halted)
		return; /* for good: nothing after a rejected byte may reach the relay */
	for (size_t i = 0; i < n; i++) {
		if (e->n == sizeof(e->buf)) {
			iobuf_append(e->out, e->buf, e->n);
			e->n = 0;
		}
		e->buf[e->n++] = s[i];
	}
}

void smtp_data_filter_init(struct smtp_data_filter *f, enum smtp_bare_policy policy, bool chunked)
{
	memset(f, 0, sizeof(*f));
	f->state = DF_LINE_START;
	f->policy = chunked ? SMTP_BARE_REJECT : policy;
	f->chunked = chunked;
}

bool smtp_data_filter_cr_pending(const struct smtp_data_filter *f)
{
	return f->state == DF_CR;
}

static void line_end(struct smtp_data_filter *f)
{
	f->state = DF_LINE_START;
	f->line_len = 0;
}

/* A bare CR or LF: NORMALIZE writes CRLF (with extra, a dot to stuff a "." line) and starts
 * a line of its own making, which the client did not start (see DF_NEW_LINE); REJECT stops
 * the output and scans on as if it were content. */
static void bare(struct smtp_data_filter *f, struct emitter *e, const char *extra)
{
	f->bare = true;
	if (f->policy == SMTP_BARE_NORMALIZE) {
		put(f, e, extra, strlen(extra));
		put(f, e, "\r\n", 2);
		line_end(f);
		f->state = DF_NEW_LINE;
	} else {
		f->halted = true;
		f->state = DF_MID;
	}
}

static void content(struct smtp_data_filter *f, struct emitter *e, char c)
{
	/* RFC 5321 text and 8BITMIME exclude NUL, and no BINARYMIME is offered: refuse it. */
	if (c == '\0' && !f->allow_nul) {
		f->nul = true;
		f->halted = true;
	}
	if (++f->line_len > SMTP_TEXT_LINE_MAX) {
		f->long_line = true;
		f->halted = true;
	}
	put(f, e, &c, 1);
	f->state = DF_MID;
}

static void step_mid(struct smtp_data_filter *f, struct emitter *e, char c)
{
	if (c == '\r') {
		f->state = DF_CR;
		if (f->chunked) /* a chunk's size is fixed: its CR cannot wait for the LF */
			put(f, e, "\r", 1);
	} else if (c == '\n') {
		bare(f, e, "");
	} else {
		content(f, e, c);
	}
}

/* Returns true when c completed the end-of-data line. */
static bool step(struct smtp_data_filter *f, struct emitter *e, char c)
{
	switch (f->state) {
	case DF_LINE_START:
		if (c != '.' || f->chunked)
			break;
		content(f, e, c);
		f->state = DF_DOT;
		return false;
	case DF_NEW_LINE:
		if (c != '.')
			break;
		put(f, e, ".", 1); /* stuffed: the relay must not take this line for the end */
		content(f, e, c);
		return false;
	case DF_MID:
		break;
	case DF_CR:
		if (c == '\n') {
			put(f, e, f->chunked ? "\n" : "\r\n", f->chunked ? 1 : 2);
			line_end(f);
			return false;
		}
		bare(f, e, "");
		return step(f, e, c);
	case DF_DOT:
		if (c == '\r') {
			f->state = DF_DOT_CR;
			return false;
		}
		if (c == '\n') {
			bare(f, e, ".");
			return false;
		}
		break;
	case DF_DOT_CR:
		if (c == '\n') {
			put(f, e, "\r\n", 2);
			line_end(f);
			return true;
		}
		bare(f, e, ".");
		return step(f, e, c);
	}
	step_mid(f, e, c);
	return false;
}

size_t smtp_data_filter(struct smtp_data_filter *f, const char *in, size_t len, struct iobuf *out, bool *done)
{
	struct emitter e = {.out = out};
	size_t i = 0;

	*done = false;
	while (i < len && !*done)
		*done = step(f, &e, in[i++]);
	/* What was collected before a halt came before the offending byte: still safe. */
	if (e.n > 0)
		iobuf_append(out, e.buf, e.n);
	f->bytes += i;
	return i;
}

static bool contains_ci(const char *hay, size_t hlen, const char *needle)
{
	size_t nlen = strlen(needle);

	if (nlen == 0 || nlen > hlen)
		return false;
	for (size_t i = 0; i + nlen <= hlen; i++) {
		if (strncasecmp(hay + i, needle, nlen) == 0)
			return true;
	}
	return false;
}

static bool scrub_hit(const char *word, size_t len, const char *const *words, size_t nwords)
{
	for (size_t i = 0; i < nwords; i++) {
		if (contains_ci(word, len, words[i]))
			return true;
	}
	return false;
}

/* A run of words that all name the relay (or already name the brand) becomes one brand
 * name: "smtp.mailgun.org mailgun ready" reads "smtp.acme.test ready", not the brand twice. */
char *smtp_scrub(const char *text, const char *const *words, size_t nwords, const char *replacement)
{
	struct iobuf out;
	const char *p = text;
	size_t rlen = strlen(replacement);
	enum { W_OTHER, W_BRAND, W_REPLACED } last = W_OTHER; /* the last word written */

	iobuf_init(&out);
	while (*p) {
		size_t sp = strspn(p, " ");
		size_t wl = strcspn(p + sp, " ");
		const char *w = p + sp;
		bool hit = wl > 0 && scrub_hit(w, wl, words, nwords);
		bool is_brand = wl == rlen && rlen > 0 && strncasecmp(w, replacement, rlen) == 0;
		if ((hit && last != W_OTHER) || (is_brand && last == W_REPLACED)) {
			p = w + wl; /* dropped with the spaces before it */
			continue;
		}
		iobuf_append(&out, p, sp);
		iobuf_append(&out, hit ? replacement : w, hit ? rlen : wl);
		if (wl > 0)
			last = hit ? W_REPLACED : is_brand ? W_BRAND : W_OTHER;
		p = w + wl;
	}
	iobuf_append(&out, "", 1);
	char *s = xstrdup(iobuf_peek(&out));
	iobuf_free(&out);
	return s;
}

/* session_reply: the client-facing reply queue (local replies wait behind owed relay replies, so replies keep
 * the order of commands), relaying commands and content, and scrubbing the relay's replies. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session_int.h"
#include "stream.h"
#include "upstream.h"
#include "util.h"

/* ---- replies to the client ---- */

static void client_write(struct session *s, const struct iobuf *b)
{
	stream_write(s->client, iobuf_peek(b), iobuf_avail(b));
}

/* Queues text after any relay replies still owed, so replies keep the order of commands. */
void session_reply_text(struct session *s, const struct iobuf *text)
{
	if (!s->head) {
		client_write(s, text);
		return;
	}
	struct session_pending *p = xcalloc(1, sizeof(*p));
	p->kind = SP_LOCAL;
	p->text = xstrndup(iobuf_peek(text), iobuf_avail(text));
	s->tail->next = p;
	s->tail = p;
	s->npending++;
}

void session_reply(struct session *s, int code, const char *fmt, ...)
{
	char text[512];
	struct iobuf b;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if ((code >= 500 && code <= 504) || code == 530)
		s->bad_commands++;
	iobuf_init(&b);
	smtp_reply_appendf(&b, code, "%s", text);
	session_reply_text(s, &b);
	iobuf_free(&b);
}

void session_expect_relay(struct session *s, unsigned verb, enum session_pending_kind kind)
{
	struct session_pending *p = xcalloc(1, sizeof(*p));

	p->kind = kind;
	p->verb = verb;
	if (s->tail)
		s->tail->next = p;
	else
		s->head = p;
	s->tail = p;
	s->npending++;
}

struct session_pending *session_pop_pending(struct session *s)
{
	struct session_pending *p = s->head;

	if (p) {
		s->head = p->next;
		if (!s->head)
			s->tail = NULL;
		s->npending--;
	}
	return p;
}

/* Writes the local replies that no longer wait behind a relay reply. */
void session_flush_local(struct session *s)
{
	while (s->head && s->head->kind == SP_LOCAL) {
		struct session_pending *p = session_pop_pending(s);
		stream_write(s->client, p->text, strlen(p->text));
		session_pending_free(s, p);
	}
}

void session_free_pending(struct session *s)
{
	struct session_pending *p;

	while ((p = session_pop_pending(s)))
		session_pending_free(s, p);
}

void session_pending_free(struct session *s, struct session_pending *p)
{
	session_msgrec_unref(s, p->rec);
	free(p->text);
	free(p);
}

bool session_relay_owed(const struct session *s)
{
	for (const struct session_pending *p = s->head; p; p = p->next) {
		if (p->kind != SP_LOCAL)
			return true;
	}
	return false;
}

/* ---- relaying ---- */

void session_send_line(struct session *s, const char *line, size_t len, unsigned nreplies)
{
	char buf[SMTP_AUTH_LINE_MAX + 2];

	if (len > SMTP_AUTH_LINE_MAX)
		abort(); /* broken invariant: the input side bounds every line it relays */
	/* One write (one TLS record) for the line and its CRLF. */
	memcpy(buf, line, len);
	memcpy(buf + len, "\r\n", 2);
	upstream_send(s->up, buf, len + 2, nreplies);
}

void session_relay_line(struct session *s, const char *line, size_t len, unsigned verb)
{
	if (verb == SMTP_MAIL)
		session_msgrec_start(s, line, len); /* a relayed MAIL starts the message's record */
	session_send_line(s, line, len, 1);
	session_expect_relay(s, verb, SP_RELAY);
	if (verb == SMTP_MAIL || verb == SMTP_RCPT)
		s->tail->rec = session_msgrec_ref(s->tx.rec); /* its reply tells the record */
}

void session_relay_body(struct session *s, const char *buf, size_t len, unsigned nreplies)
{
	upstream_send(s->up, buf, len, nreplies);
	if (upstream_write_blocked(s->up) && !session_has(s, SF_PAUSED_FOR_LEG)) {
		session_set(s, SF_PAUSED_FOR_LEG, true);
		session_update_flow(s);
	}
}

static const char *const *scrub_words(const struct session *s, size_t *n)
{
	*n = s->tenant->region->nscrub;
	return (const char *const *)s->tenant->region->scrub;
}

/* Passes the relay's code and enhanced codes through; the texts lose the relay's identity. */
void session_forward_reply(struct session *s, const struct smtp_reply *r, bool scrub)
{
	struct iobuf b;
	const char *lines[SMTP_REPLY_MAX_LINES];
	char *owned[SMTP_REPLY_MAX_LINES];
	size_t nwords;
	const char *const *words = scrub_words(s, &nwords);

	for (size_t i = 0; i < r->nlines; i++) {
		owned[i] = scrub ? smtp_scrub(r->lines[i], words, nwords, s->brand) : NULL;
		lines[i] = scrub ? owned[i] : r->lines[i];
	}
	iobuf_init(&b);
	smtp_reply_append(&b, r->code, lines, r->nlines);
	client_write(s, &b);
	iobuf_free(&b);
	for (size_t i = 0; scrub && i < r->nlines; i++)
		free(owned[i]);
	/* A client that does not read its replies stops the relay leg from being read (the leg
	 * may be gone: a failed AUTH drops it while the unauthenticated bounds are full). */
	if (s->up && stream_write_blocked(s->client))
		upstream_pause(s->up);
}

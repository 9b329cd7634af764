/* session: the client-facing SMTP server state machine (greeting, EHLO, STARTTLS, AUTH relay, pipelined relay of MAIL/RCPT/DATA/BDAT, reply scrubbing). */
#include "session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "log.h"
#include "names.h"
#include "smtp_proto.h"
#include "stream.h"
#include "upstream.h"
#include "util.h"

/* Unprocessed client input above this pauses reading from the client. */
#define INPUT_MAX (128 * 1024)
/* Replies queued for the client above this stop command processing until some are sent,
 * so a client that pipelines without reading cannot make the queue grow without bound. */
#define PENDING_MAX 100

enum sstate { SS_HANDSHAKE, SS_COMMAND, SS_AUTH, SS_DATA, SS_BDAT, SS_CLOSING };

/* The reply after the final dot of DATA, or after BDAT LAST: it ends a message. */
#define VERB_MESSAGE_END SMTP_VERB_COUNT

/* What a queued entry stands for: a reply owed by the relay (forwarded or swallowed), or
 * a local reply that must wait for the relay replies queued before it. */
enum pending_kind { P_RELAY, P_SILENT, P_LOCAL };

struct pending {
	struct pending *next;
	enum pending_kind kind;
	unsigned verb; /* enum smtp_verb or VERB_MESSAGE_END */
	char *text; /* P_LOCAL: the whole reply, CRLF included */
};

struct session {
	struct server *srv;
	const struct listener_cfg *lcfg;
	const struct tenant_cfg *tenant;
	struct stream *client;
	struct upstream *up;
	struct session *next, *prev;
	enum sstate state;
	struct iobuf in;
	struct pending *head, *tail;
	unsigned npending;
	int live; /* client stream + upstreams not yet closed */
	bool tls, ehlo_done, authed, up_failed, closing, paused_for_up, quit_sent;
	/* A handler waits for the relay leg to be set up or for owed replies; re-run on any event. */
	bool blocked;
	/* AUTH, DATA and QUIT end a pipelined group: nothing is read until their reply. */
	unsigned wait_verb;
	/* The command being handled, kept while its handler waits. */
	char *line;
	size_t line_len;
	bool sasl_line_due; /* the relay sent 334 and waits for the client's response */
	struct smtp_data_filter filter; /* the message being relayed, DATA or BDAT */
	struct iobuf fwd;               /* filtered content on its way to the relay */
	uint64_t bdat_left;
	bool bdat_last;
	bool bdat_active;       /* a BDAT message is under way (filter set up for it) */
	bool bdat_local;        /* this chunk is swallowed and answered locally */
	int bdat_code;          /* that local answer */
	const char *bdat_text;
	unsigned messages;
	unsigned auth_failures;
	unsigned bad_commands;
	bool ip_counted; /* peer is counted in srv->per_ip */
	char brand[NAME_MAX_LEN + 1];
	char id[24];
	char peer[64];
};

enum cmd_result { CMD_DONE, CMD_WAIT };

struct cmd_entry {
	enum smtp_verb verb;
	enum cmd_result (*handler)(struct session *s, const struct smtp_cmd *c);
};

struct state_entry {
	const char *name;
	bool (*input)(struct session *s); /* consumes input; false when it cannot go on */
};

static void pump(struct session *s);
static void session_close(struct session *s, const char *reason);
static void start_upstream(struct session *s);
static void enter_state(struct session *s, enum sstate next);

/* ---- replies to the client ---- */

static void client_write(struct session *s, const struct iobuf *b)
{
	stream_write(s->client, iobuf_peek(b), iobuf_avail(b));
}

/* Queues text after any relay replies still owed, so replies keep the order of commands. */
static void reply_text(struct session *s, const struct iobuf *text)
{
	if (!s->head) {
		client_write(s, text);
		return;
	}
	struct pending *p = xcalloc(1, sizeof(*p));
	p->kind = P_LOCAL;
	p->text = xstrndup(iobuf_peek(text), iobuf_avail(text));
	s->tail->next = p;
	s->tail = p;
	s->npending++;
}

static void reply(struct session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply(struct session *s, int code, const char *fmt, ...)
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
	reply_text(s, &b);
	iobuf_free(&b);
}

static void expect_relay(struct session *s, unsigned verb, enum pending_kind kind)
{
	struct pending *p = xcalloc(1, sizeof(*p));

	p->kind = kind;
	p->verb = verb;
	if (s->tail)
		s->tail->next = p;
	else
		s->head = p;
	s->tail = p;
	s->npending++;
}

static struct pending *pop_pending(struct session *s)
{
	struct pending *p = s->head;

	if (p) {
		s->head = p->next;
		if (!s->head)
			s->tail = NULL;
		s->npending--;
	}
	return p;
}

/* Writes the local replies that no longer wait behind a relay reply. */
static void flush_local(struct session *s)
{
	while (s->head && s->head->kind == P_LOCAL) {
		struct pending *p = pop_pending(s);
		stream_write(s->client, p->text, strlen(p->text));
		free(p->text);
		free(p);
	}
}

static void free_pending(struct session *s)
{
	struct pending *p;

	while ((p = pop_pending(s))) {
		free(p->text);
		free(p);
	}
}

static bool relay_owed(const struct session *s)
{
	for (const struct pending *p = s->head; p; p = p->next) {
		if (p->kind != P_LOCAL)
			return true;
	}
	return false;
}

/* ---- timers and flow control ---- */

/* The client is only timed while it owes us input; while we owe it replies, the relay's
 * reply timeout runs instead. */
static void update_client_timer(struct session *s)
{
	unsigned ms = 0;

	if (s->closing)
		return;
	if (s->state == SS_HANDSHAKE)
		ms = s->srv->cfg->limits.tls_timeout_ms;
	else if (s->state == SS_DATA || s->state == SS_BDAT)
		ms = s->srv->cfg->limits.data_timeout_ms;
	else if (!relay_owed(s) && !s->blocked)
		ms = s->srv->cfg->limits.command_timeout_ms;
	stream_set_timer(s->client, ms);
}

static void update_client_flow(struct session *s)
{
	if (s->closing)
		return;
	if (s->paused_for_up || iobuf_avail(&s->in) > INPUT_MAX || stream_write_blocked(s->client))
		stream_pause(s->client);
	else
		stream_resume(s->client);
}

/* ---- relaying ---- */

static void relay_line(struct session *s, const char *line, size_t len, unsigned verb)
{
	upstream_send(s->up, line, len, 1);
	upstream_send(s->up, "\r\n", 2, 0);
	expect_relay(s, verb, P_RELAY);
}

static void relay_body(struct session *s, const char *buf, size_t len, unsigned nreplies)
{
	upstream_send(s->up, buf, len, nreplies);
	if (upstream_write_blocked(s->up) && !s->paused_for_up) {
		s->paused_for_up = true;
		update_client_flow(s);
	}
}

static const char *const *scrub_words(const struct session *s, size_t *n)
{
	*n = s->tenant->region->nscrub;
	return (const char *const *)s->tenant->region->scrub;
}

/* Passes the relay's code and enhanced codes through; the texts lose the relay's identity. */
static void forward_reply(struct session *s, const struct smtp_reply *r, bool scrub)
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
	/* A client that does not read its replies stops the relay leg from being read. */
	if (stream_write_blocked(s->client))
		upstream_pause(s->up);
}

/* Enforces "needs the relay": WAIT while it is being set up, false (after replying and maybe
 * closing) when it failed. */
static bool need_upstream(struct session *s, enum cmd_result *res, bool is_auth)
{
	*res = CMD_DONE;
	if (s->up && upstream_is_ready(s->up))
		return true;
	if (!s->up && !s->up_failed)
		start_upstream(s);
	if (s->up && !s->up_failed) {
		*res = CMD_WAIT;
		return false;
	}
	if (is_auth) {
		reply(s, 454, "4.7.0 Temporary authentication failure, try again later");
		return false;
	}
	reply(s, 421, "4.7.0 %s Relay connection not available, try again later", s->brand);
	session_close(s, "relay unavailable");
	return false;
}

/* The message may not be completed: the relay leg is cut in the middle of it (no final dot,
 * or a chunk short of its size), so the relay discards it. The client hears why at its end;
 * a later command that needs the relay gets 421. */
static void halt_message(struct session *s)
{
	if (!s->up)
		return;
	log_warn("%s: message halted (%s); relay leg closed without completing it", s->id,
		 s->filter.long_line ? "line too long" : s->filter.bare ? "bare CR or LF" : "too big");
	upstream_close(s->up, false);
	s->up = NULL;
	s->up_failed = true;
	s->paused_for_up = false;
}

/* Sends what the filter let through, or stops the message once it halted. */
static void forward_content(struct session *s, unsigned nreplies)
{
	if (s->filter.bytes > s->srv->cfg->limits.max_message_size)
		s->filter.halted = true;
	if (s->filter.halted)
		halt_message(s);
	else
		relay_body(s, iobuf_peek(&s->fwd), iobuf_avail(&s->fwd), nreplies);
	iobuf_clear(&s->fwd);
}

/* ---- command handlers ---- */

static void reply_ehlo(struct session *s, const struct smtp_cmd *c)
{
	const struct smtp_caps *uc = s->up && upstream_is_ready(s->up) ? upstream_caps(s->up) : NULL;
	uint64_t size = s->srv->cfg->limits.max_message_size;
	bool auth_ok = (s->tls || s->lcfg->allow_plaintext_auth) && !s->authed;
	char l[8][NAME_MAX_LEN + 8];
	const char *lines[8];
	size_t n = 0;
	struct iobuf b;

	if (uc && uc->has_size && uc->size > 0 && uc->size < size)
		size = uc->size;
	snprintf(l[n++], sizeof(l[0]), "%s", s->brand);
	snprintf(l[n++], sizeof(l[0]), "PIPELINING");
	snprintf(l[n++], sizeof(l[0]), "SIZE %" PRIu64, size);
	if (!uc || uc->eightbitmime)
		snprintf(l[n++], sizeof(l[0]), "8BITMIME");
	snprintf(l[n++], sizeof(l[0]), "ENHANCEDSTATUSCODES");
	if (!uc || uc->smtputf8)
		snprintf(l[n++], sizeof(l[0]), "SMTPUTF8");
	/* BDAT chunk sizes are fixed, so bare line endings could not be normalised in them. */
	if (uc && uc->chunking && s->srv->cfg->bare_line_endings == SMTP_BARE_REJECT)
		snprintf(l[n++], sizeof(l[0]), "CHUNKING");
	if (auth_ok)
		snprintf(l[n++], sizeof(l[0]), "AUTH%s%s", !uc || uc->auth_plain ? " PLAIN" : "",
			 !uc || uc->auth_login ? " LOGIN" : "");
	if (s->lcfg->tls == TLS_MODE_STARTTLS && !s->tls)
		snprintf(l[n++], sizeof(l[0]), "STARTTLS");
	if (c->verb == SMTP_HELO)
		n = 1;
	for (size_t i = 0; i < n; i++)
		lines[i] = l[i];
	iobuf_init(&b);
	smtp_reply_append(&b, 250, lines, n);
	reply_text(s, &b);
	iobuf_free(&b);
}

static enum cmd_result cmd_ehlo(struct session *s, const struct smtp_cmd *c)
{
	if (c->arg_len == 0) {
		reply(s, 501, "5.5.4 Syntax: %s hostname", smtp_verb_name(c->verb));
		return CMD_DONE;
	}
	/* The capabilities depend on the relay once it is being set up. */
	if (s->up && !s->up_failed && !upstream_is_ready(s->up))
		return CMD_WAIT;
	/* EHLO resets any transaction (RFC 5321 4.1.4); the relay must forget it too. */
	if (s->up && upstream_is_ready(s->up) && s->authed) {
		upstream_send(s->up, "RSET\r\n", 6, 1);
		expect_relay(s, SMTP_RSET, P_SILENT);
	}
	s->ehlo_done = true;
	reply_ehlo(s, c);
	return CMD_DONE;
}

static void reset_after_starttls(struct session *s)
{
	s->ehlo_done = false;
	s->authed = false;
	s->up_failed = false;
	if (s->up) {
		upstream_close(s->up, true);
		s->up = NULL;
	}
}

/* CVE-2011-0411: bytes pipelined after STARTTLS arrived in plaintext and are discarded,
 * never executed inside the TLS session. */
static enum cmd_result cmd_starttls(struct session *s, const struct smtp_cmd *c)
{
	if (s->lcfg->tls != TLS_MODE_STARTTLS || s->tls) {
		reply(s, 503, "5.5.1 TLS already active");
		return CMD_DONE;
	}
	if (c->arg_len > 0) {
		reply(s, 501, "5.5.4 Syntax: STARTTLS");
		return CMD_DONE;
	}
	if (s->head)
		return CMD_WAIT;
	if (iobuf_avail(&s->in) > 0)
		log_warn("%s: discarded %zu bytes pipelined after STARTTLS", s->id, iobuf_avail(&s->in));
	iobuf_clear(&s->in);
	reply(s, 220, "2.0.0 Ready to start TLS");
	reset_after_starttls(s);
	enter_state(s, SS_HANDSHAKE);
	stream_start_tls_server(s->client);
	return CMD_DONE;
}

static enum cmd_result cmd_auth(struct session *s, const struct smtp_cmd *c)
{
	struct smtp_auth_arg a;
	enum cmd_result res;

	if (s->authed)
		reply(s, 503, "5.5.1 Already authenticated");
	else if (!s->ehlo_done)
		reply(s, 503, "5.5.1 Send EHLO first");
	else if (!s->tls && !s->lcfg->allow_plaintext_auth)
		reply(s, 530, "5.7.0 Must issue a STARTTLS command first");
	else if (!smtp_auth_parse(c->arg, c->arg_len, &a))
		reply(s, 501, "5.5.4 Syntax: AUTH mechanism [initial-response]");
	else if (!smtp_auth_is(&a, "PLAIN") && !smtp_auth_is(&a, "LOGIN"))
		reply(s, 504, "5.5.4 Unrecognized authentication type");
	else if (!need_upstream(s, &res, true))
		return res;
	else if (!(smtp_auth_is(&a, "PLAIN") ? upstream_caps(s->up)->auth_plain : upstream_caps(s->up)->auth_login))
		reply(s, 504, "5.5.4 Unrecognized authentication type");
	else {
		relay_line(s, s->line, s->line_len, SMTP_AUTH);
		s->wait_verb = SMTP_AUTH;
		enter_state(s, SS_AUTH);
	}
	return CMD_DONE;
}

/* MAIL, RCPT, DATA and BDAT need an authenticated session; the relay judges the rest. */
static bool need_auth(struct session *s)
{
	if (s->authed)
		return true;
	reply(s, 530, "5.7.0 Authentication required");
	return false;
}

static enum cmd_result relay_cmd(struct session *s, const struct smtp_cmd *c)
{
	enum cmd_result res;

	if (!need_upstream(s, &res, false))
		return res;
	relay_line(s, s->line, s->line_len, c->verb);
	return CMD_DONE;
}

static enum cmd_result cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	uint64_t size;

	if (!need_auth(s))
		return CMD_DONE;
	if (smtp_mail_size_param(c->arg, c->arg_len, &size) && size > s->srv->cfg->limits.max_message_size) {
		reply(s, 552, "5.3.4 Message size exceeds fixed maximum message size");
		return CMD_DONE;
	}
	s->bdat_active = false;
	return relay_cmd(s, c);
}

static enum cmd_result cmd_rcpt(struct session *s, const struct smtp_cmd *c)
{
	return need_auth(s) ? relay_cmd(s, c) : CMD_DONE;
}

/* DATA is the last command of a pipelined group: nothing more is read until its reply. */
static enum cmd_result cmd_data(struct session *s, const struct smtp_cmd *c)
{
	if (!need_auth(s))
		return CMD_DONE;
	if (c->arg_len > 0) {
		reply(s, 501, "5.5.4 Syntax: DATA");
		return CMD_DONE;
	}
	enum cmd_result res = relay_cmd(s, c);
	if (res == CMD_DONE && !s->closing)
		s->wait_verb = SMTP_DATA;
	return res;
}

/* A chunk whose size is known can be swallowed and refused without losing the command
 * stream; its answer comes once its bytes are consumed. */
static void bdat_refuse(struct session *s, int code, const char *text)
{
	s->bdat_local = true;
	s->bdat_code = code;
	s->bdat_text = text;
}

static void reject_reason(const struct session *s, int *code, const char **text)
{
	*code = 552;
	*text = "5.3.4 Message size exceeds fixed maximum message size";
	if (s->filter.long_line) {
		*text = "5.6.0 Message rejected: a line is longer than 998 octets";
	} else if (s->filter.bare) {
		*code = 554;
		*text = "5.6.0 Message rejected: bare CR or LF in message content";
	}
}

static enum cmd_result cmd_bdat(struct session *s, const struct smtp_cmd *c)
{
	uint64_t size;
	bool last;
	enum cmd_result res = CMD_DONE;

	if (!smtp_bdat_parse(c->arg, c->arg_len, &size, &last)) {
		/* The chunk's length is unknown, so its bytes cannot be told from commands. */
		reply(s, 501, "5.5.4 Syntax: BDAT size [LAST]");
		session_close(s, "malformed BDAT");
		return CMD_DONE;
	}
	s->bdat_local = false;
	if (!s->bdat_active) {
		smtp_data_filter_init(&s->filter, SMTP_BARE_REJECT, true);
		s->bdat_active = true;
	}
	if (!s->authed) {
		bdat_refuse(s, 530, "5.7.0 Authentication required");
	} else if (s->filter.halted) {
		int code;
		const char *text;
		reject_reason(s, &code, &text);
		bdat_refuse(s, code, text);
	} else if (!need_upstream(s, &res, false)) {
		return res;
	} else if (!upstream_caps(s->up)->chunking || s->srv->cfg->bare_line_endings != SMTP_BARE_REJECT) {
		bdat_refuse(s, 502, "5.5.1 CHUNKING not available");
	} else if (s->filter.bytes + size > s->srv->cfg->limits.max_message_size) {
		s->filter.halted = true;
		halt_message(s);
		bdat_refuse(s, 552, "5.3.4 Message size exceeds fixed maximum message size");
	} else {
		/* The chunk's reply is owed once its bytes are sent (input_bdat). */
		upstream_send(s->up, s->line, s->line_len, 0);
		upstream_send(s->up, "\r\n", 2, 0);
	}
	s->bdat_left = size;
	s->bdat_last = last;
	enter_state(s, SS_BDAT);
	return CMD_DONE;
}

/* Before the relay leg exists there is nothing to reset or ask: answer locally. */
static enum cmd_result cmd_rset_noop(struct session *s, const struct smtp_cmd *c)
{
	if (s->up && !s->up_failed && s->authed)
		return relay_cmd(s, c);
	reply(s, 250, "2.0.0 Ok");
	return CMD_DONE;
}

static enum cmd_result cmd_quit(struct session *s, const struct smtp_cmd *c)
{
	if (s->up && upstream_is_ready(s->up) && s->authed) {
		enum cmd_result res = relay_cmd(s, c);
		s->quit_sent = true;
		s->wait_verb = SMTP_QUIT;
		return res;
	}
	reply(s, 221, "2.0.0 %s Service closing transmission channel", s->brand);
	flush_local(s);
	session_close(s, "client quit");
	return CMD_DONE;
}

static enum cmd_result cmd_vrfy(struct session *s, const struct smtp_cmd *c)
{
	reply(s, 252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
	return CMD_DONE;
}

static enum cmd_result cmd_expn(struct session *s, const struct smtp_cmd *c)
{
	reply(s, 502, "5.5.1 EXPN not available");
	return CMD_DONE;
}

static enum cmd_result cmd_help(struct session *s, const struct smtp_cmd *c)
{
	reply(s, 214, "2.0.0 %s: see RFC 5321 (https://www.rfc-editor.org/rfc/rfc5321)", s->brand);
	return CMD_DONE;
}

static const struct cmd_entry commands[] = {
	{SMTP_HELO, cmd_ehlo},      {SMTP_EHLO, cmd_ehlo}, {SMTP_STARTTLS, cmd_starttls},
	{SMTP_AUTH, cmd_auth},      {SMTP_MAIL, cmd_mail}, {SMTP_RCPT, cmd_rcpt},
	{SMTP_DATA, cmd_data},      {SMTP_BDAT, cmd_bdat}, {SMTP_RSET, cmd_rset_noop},
	{SMTP_NOOP, cmd_rset_noop}, {SMTP_QUIT, cmd_quit}, {SMTP_VRFY, cmd_vrfy},
	{SMTP_EXPN, cmd_expn},      {SMTP_HELP, cmd_help},
};

/* ---- input per state ---- */

static bool line_too_long(struct session *s, size_t max)
{
	if (iobuf_avail(&s->in) <= max)
		return false;
	reply(s, 500, "5.5.6 Line too long");
	flush_local(s);
	session_close(s, "line too long");
	return true;
}

/* Takes the next complete line out of the input into s->line; false when none is there. */
static bool take_line(struct session *s, size_t max)
{
	size_t n = iobuf_line_len(&s->in);

	if (n == 0) {
		line_too_long(s, max);
		return false;
	}
	s->line_len = smtp_line_strip(iobuf_peek(&s->in), n);
	s->line = xstrndup(iobuf_peek(&s->in), s->line_len);
	iobuf_consume(&s->in, n);
	return true;
}

static void drop_line(struct session *s)
{
	free(s->line);
	s->line = NULL;
}

static enum cmd_result dispatch(struct session *s, const struct smtp_cmd *c)
{
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		if (commands[i].verb == c->verb)
			return commands[i].handler(s, c);
	}
	reply(s, 500, "5.5.1 Command unrecognized");
	return CMD_DONE;
}

static bool input_command(struct session *s)
{
	struct smtp_cmd c;

	if (!s->line && !take_line(s, SMTP_AUTH_LINE_MAX))
		return false;
	/* The line is re-parsed when a waiting handler runs again: c points into s->line. */
	enum smtp_parse_result pr = smtp_cmd_parse(s->line, s->line_len, &c);
	size_t max = c.verb == SMTP_AUTH ? SMTP_AUTH_LINE_MAX : SMTP_CMD_LINE_MAX;
	if (pr != SMTP_PARSE_OK || s->line_len + 2 > max) {
		reply(s, 500, pr == SMTP_PARSE_OK ? "5.5.6 Line too long" : "5.5.2 Syntax error");
		drop_line(s);
		return true;
	}
	log_debug("%s: client: %s", s->id, smtp_verb_name(c.verb)); /* never the argument: AUTH */
	if (dispatch(s, &c) == CMD_WAIT) {
		s->blocked = true;
		return false;
	}
	drop_line(s);
	if (s->bad_commands > s->srv->cfg->limits.max_bad_commands && !s->closing) {
		reply(s, 421, "4.7.0 %s Too many errors", s->brand);
		flush_local(s);
		session_close(s, "too many bad commands");
	}
	return !s->closing;
}

/* After a 334 the client's next line is a SASL response, forwarded as it is. */
static bool input_auth(struct session *s)
{
	if (!s->sasl_line_due || !take_line(s, SMTP_AUTH_LINE_MAX))
		return false;
	relay_line(s, s->line, s->line_len, SMTP_AUTH);
	drop_line(s);
	s->sasl_line_due = false;
	s->wait_verb = SMTP_AUTH;
	return false;
}

/* After the end of data, either the relay's verdict is owed, or ours if the message halted. */
static void end_message(struct session *s)
{
	int code;
	const char *text;

	if (s->filter.halted) {
		reject_reason(s, &code, &text);
		log_info("%s: message rejected: %d %s", s->id, code, text);
		reply(s, code, "%s", text);
	} else {
		expect_relay(s, VERB_MESSAGE_END, P_RELAY);
		upstream_set_reply_timeout(s->up, s->srv->cfg->limits.relay_data_timeout_ms);
	}
	s->bdat_active = false;
}

/* The body goes to the relay as it arrives, filtered, up to and including the final dot. */
static bool input_data(struct session *s)
{
	bool done;
	size_t avail = iobuf_avail(&s->in);

	if (avail == 0)
		return false;
	size_t n = smtp_data_filter(&s->filter, iobuf_peek(&s->in), avail, &s->fwd, &done);
	iobuf_consume(&s->in, n);
	forward_content(s, done ? 1 : 0);
	if (done) {
		end_message(s);
		enter_state(s, SS_COMMAND);
	}
	return done;
}

/* A chunk's bytes go to the relay as they arrive. The CR that would end the last chunk is
 * held back: with no LF after it, it is bare, and the relay must not get it. */
static bool input_bdat(struct session *s)
{
	bool done;
	size_t avail = iobuf_avail(&s->in);
	size_t n = avail < s->bdat_left ? avail : (size_t)s->bdat_left;
	bool final_cr = s->bdat_last && n == s->bdat_left && n > 0 && iobuf_peek(&s->in)[n - 1] == '\r';

	if (n > 0 && !s->bdat_local) {
		smtp_data_filter(&s->filter, iobuf_peek(&s->in), final_cr ? n - 1 : n, &s->fwd, &done);
		if (final_cr)
			s->filter.bare = s->filter.halted = true;
		forward_content(s, 0);
	}
	iobuf_consume(&s->in, n);
	s->bdat_left -= n;
	if (s->bdat_left > 0)
		return false;
	if (s->bdat_local) {
		reply(s, s->bdat_code, "%s", s->bdat_text);
		s->bdat_active = !s->bdat_last;
	} else if (s->bdat_last) {
		if (!s->filter.halted)
			upstream_send(s->up, "", 0, 1); /* no bytes: the last chunk is now owed a verdict */
		end_message(s);
	} else if (s->filter.halted) {
		int code;
		const char *text;
		reject_reason(s, &code, &text);
		reply(s, code, "%s", text); /* later chunks of this message get the same answer */
	} else {
		upstream_send(s->up, "", 0, 1); /* no bytes: the chunk (maybe empty) is now owed a reply */
		expect_relay(s, SMTP_BDAT, P_RELAY);
	}
	enter_state(s, SS_COMMAND);
	return true;
}

static bool input_none(struct session *s) { return false; }

static const struct state_entry states[] = {
	[SS_HANDSHAKE] = {"handshake", input_none}, [SS_COMMAND] = {"command", input_command},
	[SS_AUTH] = {"auth", input_auth},           [SS_DATA] = {"data", input_data},
	[SS_BDAT] = {"bdat", input_bdat},           [SS_CLOSING] = {"closing", input_none},
};

static void enter_state(struct session *s, enum sstate next)
{
	log_debug("%s: %s -> %s", s->id, states[s->state].name, states[next].name);
	s->blocked = false;
	s->state = next;
	if (next == SS_DATA)
		smtp_data_filter_init(&s->filter, s->srv->cfg->bare_line_endings, false);
}

/* Input is processed while nothing waits and the client is reading its replies. */
static bool can_process(const struct session *s)
{
	return !s->closing && !s->blocked && s->wait_verb == SMTP_UNKNOWN && s->npending < PENDING_MAX &&
	       !stream_write_blocked(s->client);
}

static void pump(struct session *s)
{
	while (can_process(s) && states[s->state].input(s))
		;
	update_client_flow(s);
	update_client_timer(s);
}

/* ---- relay leg events ---- */

static void on_relay_reply_verb(struct session *s, unsigned verb, const struct smtp_reply *r)
{
	bool ok = r->code / 100 == 2;

	if (verb == SMTP_AUTH && r->code == 334) {
		s->sasl_line_due = true;
	} else if (verb == SMTP_AUTH) {
		s->authed = ok;
		s->auth_failures += !ok;
		log_info("%s: AUTH %s by the relay (%d)", s->id, ok ? "accepted" : "refused", r->code);
		enter_state(s, SS_COMMAND);
	} else if (verb == SMTP_DATA && r->code == 354) {
		enter_state(s, SS_DATA);
	} else if (verb == VERB_MESSAGE_END) {
		upstream_set_reply_timeout(s->up, s->srv->cfg->limits.relay_timeout_ms);
		s->messages += ok;
		log_info("%s: message %s by the relay (%d)", s->id, ok ? "accepted" : "refused", r->code);
	}
}

static void up_on_reply(void *owner, const struct smtp_reply *r)
{
	struct session *s = owner;
	struct pending *p = pop_pending(s);

	if (!p || p->kind == P_LOCAL)
		abort(); /* broken invariant: local replies never wait at the head */
	unsigned verb = p->verb;
	bool silent = p->kind == P_SILENT;
	free(p);
	on_relay_reply_verb(s, verb, r);
	if (!silent) /* SASL challenges are base64 and pass unchanged */
		forward_reply(s, r, !(verb == SMTP_AUTH && r->code == 334));
	flush_local(s);
	if (verb == SMTP_QUIT) {
		session_close(s, "client quit");
		return;
	}
	if (s->auth_failures >= s->srv->cfg->limits.max_auth_failures) {
		reply(s, 421, "4.7.0 %s Too many authentication failures", s->brand);
		session_close(s, "too many authentication failures");
		return;
	}
	if (verb == s->wait_verb)
		s->wait_verb = SMTP_UNKNOWN;
	s->blocked = false;
	pump(s);
}

static void up_on_ready(void *owner)
{
	struct session *s = owner;

	s->blocked = false;
	pump(s);
}

static void up_on_failed(void *owner, const char *why)
{
	struct session *s = owner;

	log_warn("%s: relay leg for tenant '%s' failed: %s", s->id, s->tenant->name, why);
	s->up_failed = true;
	s->up = NULL; /* it closes itself */
	if (relay_owed(s) || s->state == SS_DATA || s->state == SS_BDAT) {
		/* Replies are owed for commands the relay will never answer: the client must retry. */
		flush_local(s);
		free_pending(s);
		reply(s, 421, "4.4.2 %s Connection to the relay lost, try again later", s->brand);
		session_close(s, "relay leg failed");
		return;
	}
	s->blocked = false;
	pump(s);
}

static void up_on_drain(void *owner)
{
	struct session *s = owner;

	s->paused_for_up = false;
	pump(s);
}

static void session_free(struct session *s);

static void up_on_closed(void *owner)
{
	struct session *s = owner;

	if (--s->live == 0)
		session_free(s);
}

static const struct upstream_ops upstream_ops = {
	.on_ready = up_on_ready,
	.on_reply = up_on_reply,
	.on_failed = up_on_failed,
	.on_drain = up_on_drain,
	.on_closed = up_on_closed,
};

static void start_upstream(struct session *s)
{
	const struct limits_cfg *lim = &s->srv->cfg->limits;
	struct upstream_params p = {
		.loop = s->srv->loop,
		.tenant = s->tenant,
		.ctx = certstore_client_ctx(s->srv->certs, s->tenant),
		.sessions = s->tenant->region->tls_resumption ? s->srv->relay_sessions : NULL,
		.setup_timeout_ms = lim->tls_timeout_ms,
		.reply_timeout_ms = lim->relay_timeout_ms,
		.log_id = s->id,
	};

	/* on_failed (and even on_closed) may come before upstream_start returns. */
	s->live++;
	s->up_failed = false;
	struct upstream *u = upstream_start(&p, &upstream_ops, s);
	if (!s->up_failed)
		s->up = u;
}

/* ---- client leg events ---- */

static void greet(struct session *s)
{
	reply(s, 220, "%s ESMTP", s->brand);
}

static tls_ctx *cl_select_ctx(void *owner, const char *sni)
{
	struct session *s = owner;
	const struct tenant_cfg *t = sni[0] ? certstore_lookup(s->srv->certs, sni) : NULL;

	if (t) {
		s->tenant = t;
		name_normalize(sni, strlen(sni), s->brand, false);
	} else {
		s->tenant = s->lcfg->default_tenant;
		snprintf(s->brand, sizeof(s->brand), "%s", s->lcfg->hostname);
	}
	log_debug("%s: SNI '%s' -> tenant '%s'", s->id, sni, s->tenant->name);
	return certstore_server_ctx(s->srv->certs, s->tenant);
}

static void cl_on_tls(void *owner, int status)
{
	struct session *s = owner;

	if (status < 0) {
		log_info("%s: TLS handshake with client failed: %s", s->id, stream_tls_error(s->client));
		session_close(s, "client TLS handshake failed");
		return;
	}
	s->tls = true;
	log_debug("%s: client TLS up: %s %s", s->id, stream_tls_version(s->client), stream_tls_cipher(s->client));
	enter_state(s, SS_COMMAND);
	/* The tenant is known now: open the relay leg so it overlaps the client's EHLO and AUTH. */
	start_upstream(s);
	if (s->lcfg->tls == TLS_MODE_IMPLICIT)
		greet(s);
	pump(s);
}

static void cl_on_data(void *owner, const char *buf, size_t len)
{
	struct session *s = owner;

	if (s->closing)
		return;
	iobuf_append(&s->in, buf, len);
	pump(s);
}

static void cl_on_error(void *owner, int status)
{
	struct session *s = owner;

	session_close(s, status == UV_EOF ? "client closed the connection" : uv_strerror(status));
}

static void cl_on_timeout(void *owner)
{
	struct session *s = owner;

	if (s->state != SS_HANDSHAKE) {
		reply(s, 421, "4.4.2 %s Error: timeout exceeded", s->brand);
		flush_local(s);
	}
	session_close(s, "client timed out");
}

static void cl_on_drain(void *owner)
{
	struct session *s = owner;

	if (s->up)
		upstream_resume(s->up);
	pump(s);
}

static void cl_on_close(void *owner)
{
	struct session *s = owner;

	s->client = NULL;
	if (--s->live == 0)
		session_free(s);
}

static const struct stream_ops client_ops = {
	.on_tls = cl_on_tls,
	.on_data = cl_on_data,
	.on_error = cl_on_error,
	.on_timeout = cl_on_timeout,
	.on_drain = cl_on_drain,
	.on_close = cl_on_close,
	.select_ctx = cl_select_ctx,
};

/* ---- lifetime ---- */

static void session_close(struct session *s, const char *reason)
{
	if (s->closing)
		return;
	/* Mid-message, a QUIT would become body or chunk bytes: the relay leg is cut instead,
	 * without the final dot, so nothing partial is delivered. */
	bool quit = s->authed && !s->quit_sent && s->state != SS_DATA && s->state != SS_BDAT;
	s->closing = true;
	s->state = SS_CLOSING;
	log_info("%s: session from %s ended: %s (tenant %s, %s, %s, %u message%s relayed)", s->id, s->peer,
		 reason, s->tenant->name, s->brand, stream_tls_version(s->client), s->messages,
		 s->messages == 1 ? "" : "s");
	stream_close(s->client, true);
	if (s->up) {
		upstream_close(s->up, quit);
		s->up = NULL;
	}
}

static void session_free(struct session *s)
{
	struct server *srv = s->srv;

	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	if (s->ip_counted)
		iptable_dec(srv->per_ip, s->peer);
	free_pending(s);
	iobuf_free(&s->in);
	iobuf_free(&s->fwd);
	free(s->line);
	free(s);
	if (srv->draining && srv->nsessions == 0 && srv->on_drained)
		srv->on_drained(srv);
}

/* Over a connection limit, a STARTTLS listener greets with 421; an implicit-TLS one just
 * closes, since a plaintext reply means nothing to a TLS client and a handshake costs CPU. */
static bool over_limits(struct session *s)
{
	const struct limits_cfg *lim = &s->srv->cfg->limits;
	unsigned per_ip = iptable_inc(s->srv->per_ip, s->peer);

	s->ip_counted = true;
	if (s->srv->nsessions <= lim->max_connections && per_ip <= lim->max_connections_per_ip)
		return false;
	log_warn("%s: refusing %s: %s", s->id, s->peer,
		 per_ip > lim->max_connections_per_ip ? "too many connections from this address"
						      : "too many connections");
	if (s->lcfg->tls == TLS_MODE_STARTTLS)
		reply(s, 421, "4.7.0 %s Too many connections, try again later", s->brand);
	session_close(s, "connection limit");
	return true;
}

void session_start(struct server *srv, const struct listener_cfg *lcfg, uv_stream_t *listener)
{
	struct session *s = xcalloc(1, sizeof(*s));

	s->srv = srv;
	s->lcfg = lcfg;
	s->tenant = lcfg->default_tenant;
	snprintf(s->brand, sizeof(s->brand), "%s", lcfg->hostname);
	snprintf(s->id, sizeof(s->id), "w%ds%" PRIu64, srv->worker, ++srv->next_id);
	iobuf_init(&s->in);
	iobuf_init(&s->fwd);
	s->next = srv->sessions;
	if (s->next)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	s->live = 1;
	s->client = stream_new(srv->loop, &client_ops, s);
	if (stream_accept(s->client, listener) != 0) {
		session_close(s, "accept failed");
		return;
	}
	stream_peer_name(s->client, s->peer, sizeof(s->peer));
	log_debug("%s: connection from %s on %s port %d", s->id, s->peer, lcfg->address, lcfg->port);
	if (over_limits(s))
		return;
	if (lcfg->tls == TLS_MODE_IMPLICIT) {
		s->state = SS_HANDSHAKE;
		stream_start_tls_server(s->client);
	} else {
		s->state = SS_COMMAND;
		greet(s);
	}
	update_client_timer(s);
}

void session_shutdown(struct session *s)
{
	if (s->closing)
		return;
	if (s->state != SS_HANDSHAKE) {
		free_pending(s);
		reply(s, 421, "4.3.2 %s Service shutting down", s->brand);
	}
	session_close(s, "shutdown");
}

struct session *session_next(struct session *s) { return s->next; }

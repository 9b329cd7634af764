/* session_cmd: the client's SMTP commands: one handler each in a table, answered locally or relayed. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sasl.h"
#include "session_int.h"
#include "smtp_info.h"
#include "stream.h"
#include "upstream.h"
#include "util.h"

/* Enforces "needs the relay": WAIT while it is being set up, false (after replying and maybe
 * closing) when it failed. */
bool session_need_upstream(struct session *s, enum session_cmd_result *res, bool is_auth)
{
	*res = SC_DONE;
	if (s->up && upstream_is_ready(s->up))
		return true;
	if (!s->up && !session_has(s, SF_LEG_FAILED) && session_start_upstream(s, true) && upstream_is_ready(s->up))
		return true; /* a pooled leg, ready at once */
	if (s->up && !session_has(s, SF_LEG_FAILED)) {
		session_wait(s, SESSION_WAIT_LEG);
		*res = SC_WAIT;
		return false;
	}
	if (is_auth) {
		session_reply(s, 454, "4.7.0 Temporary authentication failure, try again later");
		return false;
	}
	session_reply(s, 421, "4.7.0 %s Relay connection not available, try again later", s->brand);
	session_close(s, SE_RELAY, "relay unavailable");
	return false;
}

/* ---- command handlers ---- */

static void reply_ehlo(struct session *s, const struct smtp_cmd *c)
{
	const struct smtp_caps *uc = s->up && upstream_is_ready(s->up) ? upstream_caps(s->up) : NULL;
	uint64_t size = s->srv->cfg->limits.max_message_size;
	bool auth_ok =
	        (session_has(s, SF_TLS) || s->lcfg->allow_plaintext_auth) && !session_has(s, SF_AUTHED);
	/* The greeting line and at most nine keywords. */
	char l[10][NAME_MAX_LEN + 8];
	const char *lines[10];
	size_t n = 0;
	struct iobuf b;

	if (uc && uc->has_size && uc->size > 0 && uc->size < size)
		size = uc->size;
	/* Commands are relayed as they come and reply texts keep the relay's codes, so both
	 * PIPELINING and ENHANCEDSTATUSCODES are only offered when the relay has them. */
	snprintf(l[n++], sizeof(l[0]), "%s", s->brand);
	if (!uc || uc->pipelining)
		snprintf(l[n++], sizeof(l[0]), "PIPELINING");
	snprintf(l[n++], sizeof(l[0]), "SIZE %" PRIu64, size);
	if (!uc || uc->eightbitmime)
		snprintf(l[n++], sizeof(l[0]), "8BITMIME");
	if (!uc || uc->enhanced)
		snprintf(l[n++], sizeof(l[0]), "ENHANCEDSTATUSCODES");
	if (!uc || uc->smtputf8)
		snprintf(l[n++], sizeof(l[0]), "SMTPUTF8");
	/* BDAT chunk sizes are fixed, so bare line endings could not be normalised in them. */
	if (uc && uc->chunking && s->srv->cfg->bare_line_endings == SMTP_BARE_REJECT)
		snprintf(l[n++], sizeof(l[0]), "CHUNKING");
	/* Local mode: livery answers AUTH itself, whatever the relay offers. */
	if (auth_ok && session_local(s))
		snprintf(l[n++], sizeof(l[0]), "AUTH PLAIN LOGIN");
	else if (auth_ok)
		snprintf(l[n++], sizeof(l[0]), "AUTH%s%s", !uc || uc->auth_plain ? " PLAIN" : "",
		         !uc || uc->auth_login ? " LOGIN" : "");
	if (s->lcfg->tls == TLS_MODE_STARTTLS && !session_has(s, SF_TLS))
		snprintf(l[n++], sizeof(l[0]), "STARTTLS");
	if (c->verb == SMTP_HELO)
		n = 1;
	if (n > ARRAY_LEN(lines))
		abort(); /* broken invariant: a keyword was added without growing l[] */
	for (size_t i = 0; i < n; i++)
		lines[i] = l[i];
	iobuf_init(&b);
	smtp_reply_append(&b, 250, lines, n);
	session_reply_text(s, &b);
	iobuf_free(&b);
}

static enum session_cmd_result cmd_ehlo(struct session *s, const struct smtp_cmd *c)
{
	if (c->arg_len == 0) {
		session_reply(s, 501, "5.5.4 Syntax: %s hostname", smtp_verb_name(c->verb));
		return SC_DONE;
	}
	/* The capabilities depend on the relay once it is being set up. */
	if (s->up && !session_has(s, SF_LEG_FAILED) && !upstream_is_ready(s->up)) {
		session_wait(s, SESSION_WAIT_LEG);
		return SC_WAIT;
	}
	/* EHLO resets any transaction (RFC 5321 4.1.4); the relay must forget it too. */
	if (s->up && upstream_is_ready(s->up) && session_has(s, SF_AUTHED)) {
		upstream_send(s->up, "RSET\r\n", 6, 1);
		session_expect_relay(s, SMTP_RSET, SP_SILENT);
	}
	session_set(s, SF_EHLO, true);
	session_tx_reset(s);
	reply_ehlo(s, c);
	return SC_DONE;
}

static void reset_after_starttls(struct session *s)
{
	session_set(s, SF_EHLO, false);
	session_set(s, SF_AUTHED, false);
	session_set(s, SF_LEG_FAILED, false);
	session_drop_upstream(s, true);
}

/* CVE-2011-0411: bytes pipelined after STARTTLS arrived in plaintext and are discarded,
 * never executed inside the TLS session. */
static enum session_cmd_result cmd_starttls(struct session *s, const struct smtp_cmd *c)
{
	if (s->lcfg->tls != TLS_MODE_STARTTLS || session_has(s, SF_TLS)) {
		session_reply(s, 503, "5.5.1 TLS already active");
		return SC_DONE;
	}
	if (c->arg_len > 0) {
		session_reply(s, 501, "5.5.4 Syntax: STARTTLS");
		return SC_DONE;
	}
	if (s->head) { /* the 220 must be the last reply before the handshake */
		session_wait(s, SESSION_WAIT_REPLIES);
		return SC_WAIT;
	}
	if (iobuf_avail(&s->in) > 0)
		log_warn("%s: discarded %zu bytes pipelined after STARTTLS", s->id, iobuf_avail(&s->in));
	iobuf_clear(&s->in);
	session_reply(s, 220, "2.0.0 Ready to start TLS");
	reset_after_starttls(s);
	session_enter_state(s, SS_HANDSHAKE);
	stream_start_tls_server(s->client);
	return SC_DONE;
}

/* The user name for the records comes from the client's first SASL response: PLAIN's
 * authcid, or LOGIN's user name. Later responses (LOGIN's password) are never looked at. */
static void sasl_response(struct session *s, const char *b64, size_t len)
{
	if (s->sasl_responses++ > 0)
		return;
	if (s->sasl_plain)
		smtp_info_plain_user(b64, len, s->auth_user, sizeof(s->auth_user));
	else
		smtp_info_login_user(b64, len, s->auth_user, sizeof(s->auth_user));
}

static void sasl_start(struct session *s, const struct smtp_auth_arg *a)
{
	s->sasl_plain = smtp_auth_is(a, "PLAIN");
	s->sasl_responses = 0;
	s->auth_user[0] = '\0';
	if (a->initial)
		sasl_response(s, a->initial, a->initial_len);
}

/* auth_domains: a login name outside them is refused before the relay sees a credential. */
static bool domain_allowed(const struct session *s)
{
	const struct tenant_auth_cfg *a = &s->tenant->auth;
	return sasl_domain_allowed(s->auth_user, a->domains, a->ndomains);
}

static void refuse_domain(struct session *s)
{
	log_info("%s: AUTH refused: login name outside the tenant's auth_domains", s->id);
	session_reply(s, 535, "5.7.8 Authentication credentials invalid");
	session_auth_failed(s);
}

static enum session_cmd_result cmd_auth(struct session *s, const struct smtp_cmd *c)
{
	struct smtp_auth_arg a;
	enum session_cmd_result res;

	if (!session_has(s, SF_TLS) && !s->lcfg->allow_plaintext_auth)
		session_reply(s, 530, "5.7.0 Must issue a STARTTLS command first");
	else if (session_has(s, SF_AUTHED))
		session_reply(s, 503, "5.5.1 Already authenticated");
	else if (!session_has(s, SF_EHLO))
		session_reply(s, 503, "5.5.1 Send EHLO first");
	else if (!smtp_auth_parse(c->arg, c->arg_len, &a))
		session_reply(s, 501, "5.5.4 Syntax: AUTH mechanism [initial-response]");
	else if (!smtp_auth_is(&a, "PLAIN") && !smtp_auth_is(&a, "LOGIN"))
		session_reply(s, 504, "5.5.4 Unrecognized authentication type");
	else if (session_local(s))
		session_local_auth_start(s, &a);
	else if (!session_need_upstream(s, &res, true))
		return res;
	else if (!(smtp_auth_is(&a, "PLAIN") ? upstream_caps(s->up)->auth_plain
	                                     : upstream_caps(s->up)->auth_login))
		session_reply(s, 504, "5.5.4 Unrecognized authentication type");
	else if (sasl_start(s, &a), a.initial && !domain_allowed(s))
		refuse_domain(s);
	else {
		session_relay_line(s, s->line, s->line_len, SMTP_AUTH);
		session_enter_state(s, SS_AUTH);
	}
	return SC_DONE;
}

/* MAIL, RCPT, DATA and BDAT need an authenticated session; the relay judges the rest. */
static bool need_auth(struct session *s)
{
	if (session_has(s, SF_AUTHED))
		return true;
	session_reply(s, 530, "5.7.0 Authentication required");
	return false;
}

static enum session_cmd_result relay_cmd(struct session *s, const struct smtp_cmd *c)
{
	enum session_cmd_result res;

	if (!session_need_upstream(s, &res, false))
		return res;
	session_relay_line(s, s->line, s->line_len, c->verb);
	return SC_DONE;
}

/* RCPT, DATA and BDAT belong to a transaction whose MAIL went to the relay: after a MAIL
 * refused here (a sending limit), nothing of that message may reach the relay. */
static bool need_mail(struct session *s)
{
	if (s->tx.rec)
		return true;
	session_reply(s, 503, "5.5.1 Error: need MAIL command");
	return false;
}

/* The sending limits are asked once the relay leg is ready, so that a MAIL or RCPT they
 * count goes to the relay at once. */
static enum session_cmd_result cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	uint64_t size;
	enum session_cmd_result res;

	if (!need_auth(s))
		return SC_DONE;
	if (smtp_mail_size_param(c->arg, c->arg_len, &size) && size > s->srv->cfg->limits.max_message_size) {
		session_reply(s, 552, "5.3.4 Message size exceeds fixed maximum message size");
		return SC_DONE;
	}
	if (!session_need_upstream(s, &res, false) || !session_limit_pass(s, QUOTA_MESSAGES, &res))
		return res;
	session_tx_reset(s);
	return relay_cmd(s, c);
}

static enum session_cmd_result cmd_rcpt(struct session *s, const struct smtp_cmd *c)
{
	enum session_cmd_result res;

	if (!need_auth(s) || !need_mail(s))
		return SC_DONE;
	if (!session_need_upstream(s, &res, false) || !session_limit_pass(s, QUOTA_RECIPIENTS, &res))
		return res;
	return relay_cmd(s, c);
}

/* DATA is the last command of a pipelined group: nothing more is read until its reply. */
static enum session_cmd_result cmd_data(struct session *s, const struct smtp_cmd *c)
{
	if (!need_auth(s) || !need_mail(s))
		return SC_DONE;
	if (c->arg_len > 0) {
		session_reply(s, 501, "5.5.4 Syntax: DATA");
		return SC_DONE;
	}
	enum session_cmd_result res = relay_cmd(s, c);
	if (res == SC_DONE && !session_closing(s))
		session_wait(s, SESSION_WAIT_REPLIES); /* the 354 moves on to SS_DATA */
	return res;
}

/* Before the relay leg exists there is nothing to reset or ask: answer locally. */
static enum session_cmd_result cmd_rset_noop(struct session *s, const struct smtp_cmd *c)
{
	if (c->verb == SMTP_RSET)
		session_tx_reset(s);
	if (s->up && !session_has(s, SF_LEG_FAILED) && session_has(s, SF_AUTHED))
		return relay_cmd(s, c);
	session_reply(s, 250, "2.0.0 Ok");
	return SC_DONE;
}

/* Local mode: the relay leg outlives the session (pool), so its QUIT is livery's own. */
static enum session_cmd_result cmd_quit(struct session *s, const struct smtp_cmd *c)
{
	if (s->up && upstream_is_ready(s->up) && session_has(s, SF_AUTHED) && !session_local(s)) {
		enum session_cmd_result res = relay_cmd(s, c);
		session_set(s, SF_QUIT_SENT, true);
		session_wait(s, SESSION_WAIT_REPLIES); /* the reply to QUIT closes the session */
		return res;
	}
	if (session_relay_owed(s)) { /* local mode: the verdicts pipelined ahead of QUIT first */
		session_wait(s, SESSION_WAIT_REPLIES);
		return SC_WAIT;
	}
	session_reply(s, 221, "2.0.0 %s Service closing transmission channel", s->brand);
	session_flush_local(s);
	session_close(s, SE_QUIT, "client quit");
	return SC_DONE;
}

static enum session_cmd_result cmd_vrfy(struct session *s, const struct smtp_cmd *c)
{
	session_reply(s, 252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
	return SC_DONE;
}

static enum session_cmd_result cmd_expn(struct session *s, const struct smtp_cmd *c)
{
	session_reply(s, 502, "5.5.1 EXPN not available");
	return SC_DONE;
}

static enum session_cmd_result cmd_help(struct session *s, const struct smtp_cmd *c)
{
	session_reply(s, 214, "2.0.0 %s: see RFC 5321 (https://www.rfc-editor.org/rfc/rfc5321)", s->brand);
	return SC_DONE;
}

static const struct session_cmd_entry commands[] = {
        {SMTP_HELO, cmd_ehlo},      {SMTP_EHLO, cmd_ehlo},         {SMTP_STARTTLS, cmd_starttls},
        {SMTP_AUTH, cmd_auth},      {SMTP_MAIL, cmd_mail},         {SMTP_RCPT, cmd_rcpt},
        {SMTP_DATA, cmd_data},      {SMTP_BDAT, session_cmd_bdat}, {SMTP_RSET, cmd_rset_noop},
        {SMTP_NOOP, cmd_rset_noop}, {SMTP_QUIT, cmd_quit},         {SMTP_VRFY, cmd_vrfy},
        {SMTP_EXPN, cmd_expn},      {SMTP_HELP, cmd_help},
};

/* ---- input per state ---- */

/* Takes the next complete line out of the input into s->line; false when none is there. A
 * line over max octets (with its CRLF), whole or still arriving, ends the session with 500
 * 5.5.6 whichever way it was cut into reads (the remainder would be read as commands). */
static bool take_line(struct session *s, size_t max)
{
	size_t n = iobuf_line_len(&s->in);
	size_t len = n ? smtp_line_strip(iobuf_peek(&s->in), n) : 0;

	/* Still arriving: max octets without a LF can only end over max. */
	if (n ? len + 2 > max : iobuf_avail(&s->in) >= max) {
		session_reply(s, 500, "5.5.6 Line too long");
		session_flush_local(s);
		session_close(s, SE_PROTOCOL, "line too long");
		return false;
	}
	if (n == 0)
		return false;
	s->line_len = len;
	s->line = xstrndup(iobuf_peek(&s->in), s->line_len);
	iobuf_consume(&s->in, n);
	return true;
}

static void drop_line(struct session *s)
{
	free(s->line);
	s->line = NULL;
}

static enum session_cmd_result dispatch(struct session *s, const struct smtp_cmd *c)
{
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		if (commands[i].verb == c->verb)
			return commands[i].handler(s, c);
	}
	session_reply(s, 500, "5.5.1 Command unrecognized");
	return SC_DONE;
}

/* Ends the session once it has had more refused commands than allowed; false then. */
static bool within_bad_command_cap(struct session *s)
{
	if (session_closing(s))
		return false;
	if (s->bad_commands <= s->srv->cfg->limits.max_bad_commands)
		return true;
	session_reply(s, 421, "4.7.0 %s Too many errors", s->brand);
	session_flush_local(s);
	session_close(s, SE_LIMIT, "too many bad commands");
	return false;
}

bool session_input_command(struct session *s)
{
	struct smtp_cmd c;

	if (!s->line && !take_line(s, SMTP_AUTH_LINE_MAX))
		return false;
	/* The line is re-parsed when a waiting handler runs again: c points into s->line. */
	enum smtp_parse_result pr = smtp_cmd_parse(s->line, s->line_len, &c);
	size_t max = c.verb == SMTP_AUTH ? SMTP_AUTH_LINE_MAX : SMTP_CMD_LINE_MAX;
	if (pr != SMTP_PARSE_OK || s->line_len + 2 > max) {
		session_reply(s, 500, pr == SMTP_PARSE_OK ? "5.5.6 Line too long" : "5.5.2 Syntax error");
		drop_line(s);
		return within_bad_command_cap(s);
	}
	log_debug("%s: client: %s", s->id, smtp_verb_name(c.verb)); /* never the argument: AUTH */
	if (dispatch(s, &c) == SC_WAIT)
		return false; /* held in s->line until the wait is over */
	drop_line(s);
	return within_bad_command_cap(s);
}

/* After a 334 the client's next line is a SASL response, forwarded as it is. One that holds a
 * NUL or CR (never base64) cancels the exchange at the relay with "*" (RFC 4954 4): the
 * relay's answer to that ends the AUTH, and ours says why. */
bool session_input_auth(struct session *s)
{
	if (!take_line(s, SMTP_AUTH_LINE_MAX))
		return false;
	if (session_local(s))
		return session_local_auth_input(s);
	bool bad = memchr(s->line, '\0', s->line_len) || memchr(s->line, '\r', s->line_len);
	if (!bad)
		sasl_response(s, s->line, s->line_len);
	if (bad || !domain_allowed(s)) {
		/* The relay's exchange is cancelled ("*") before it sees a credential, and its
		 * answer swallowed (and counted as a failure); ours says why. */
		session_send_line(s, "*", 1, 1);
		session_expect_relay(s, SMTP_AUTH, SP_SILENT);
		if (!bad)
			log_info("%s: AUTH refused: login name outside the tenant's auth_domains", s->id);
		session_reply(s, bad ? 500 : 535,
		              bad ? "5.5.2 Syntax error" : "5.7.8 Authentication credentials invalid");
	} else {
		session_relay_line(s, s->line, s->line_len, SMTP_AUTH);
	}
	drop_line(s);
	session_enter_state(s, SS_AUTH);
	return false;
}

/* session_msg: message content from client to relay: DATA and BDAT through the smuggling filter, size and
 * line limits, and halting a message the relay must not complete. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "records.h"
#include "session_int.h"
#include "smtp_info.h"
#include "stream.h"
#include "upstream.h"
#include "util.h"

/* The message may not be completed: the relay leg is cut in the middle of it (no final dot,
 * or a chunk short of its size), so the relay discards it. The client hears why at its end;
 * a later command that needs the relay gets 421. */
static void reject_reason(const struct session *s, int *code, const char **text);

static void halt_message(struct session *s)
{
	int code;
	const char *why;

	if (!s->up)
		return;
	reject_reason(s, &code, &why);
	log_warn("%s: message halted (%d %s); relay leg closed without completing it", s->id, code, why);
	session_drop_upstream(s, false);
	session_set(s, SF_LEG_FAILED, true);
	session_set(s, SF_PAUSED_FOR_LEG, false);
}

void session_tx_reset(struct session *s)
{
	session_msgrec_unref(s, s->tx.rec);
	s->tx = (struct session_tx){0};
}

/* ---- message records ---- */

/* The reverse-path of a MAIL line ("MAIL FROM:<a@b> SIZE=1" gives "a@b"). */
static char *mail_sender(const char *line, size_t len)
{
	const char *lt = memchr(line, '<', len);
	const char *gt = lt ? memchr(lt, '>', len - (size_t)(lt - line)) : NULL;

	return lt && gt ? xstrndup(lt + 1, (size_t)(gt - lt - 1)) : xstrdup("");
}

struct session_msgrec *session_msgrec_new(const char *line, size_t len)
{
	struct session_msgrec *r = xcalloc(1, sizeof(*r));

	r->refs = 1;
	r->sender = mail_sender(line, len);
	return r;
}

void session_msgrec_start(struct session *s, const char *line, size_t len)
{
	struct session_msgrec *r = session_msgrec_new(line, len);

	session_msgrec_unref(s, s->tx.rec);
	s->tx.rec = r;
}

struct session_msgrec *session_msgrec_ref(struct session_msgrec *r)
{
	if (r)
		r->refs++;
	return r;
}

void session_msgrec_write(struct session *s, struct session_msgrec *rec, int code, const char *text,
                          const char *by)
{
	char qid[128];
	struct records_message m = {
	        .session = s->id,
	        .tenant = s->tenant->name,
	        .user = s->user[0] ? s->user : NULL,
	        .sender = rec->sender,
	        .rcpts = rec->rcpts,
	        .size = rec->size,
	        .code = code,
	        .reply = text,
	        .by = by,
	        .queue_id = code / 100 == 2 && text && smtp_info_queue_id(text, qid, sizeof(qid)) ? qid : NULL,
	        .limit = rec->limit,
	        .relay = s->up ? upstream_info(s->up) : s->relay.region ? &s->relay : NULL,
	};

	rec->written = true;
	records_message(&m);
	metrics_message(s->srv->metrics, s->tenant, code, by, rec->dot_at);
}

/* A message whose content went to the relay but that never had a verdict is recorded too
 * (code null): the operator must see what did not go out. */
void session_msgrec_unref(struct session *s, struct session_msgrec *r)
{
	if (!r || --r->refs > 0)
		return;
	if (!r->written && r->content)
		session_msgrec_write(s, r, 0, NULL, NULL);
	free(r->sender);
	free(r);
}

/* Sends what the filter let through, or stops the message once it halted. */
static void forward_content(struct session *s, unsigned nreplies)
{
	if (s->tx.filter.bytes > s->srv->cfg->limits.max_message_size)
		s->tx.filter.halted = true;
	if (s->tx.filter.halted) {
		halt_message(s);
	} else {
		session_relay_body(s, iobuf_peek(&s->fwd), iobuf_avail(&s->fwd), nreplies);
		if (s->tx.rec) {
			s->tx.rec->content = true;
			s->tx.rec->size = s->tx.filter.bytes;
		}
	}
	iobuf_clear(&s->fwd);
}

/* A chunk whose size is known can be swallowed and refused without losing the command
 * stream; its answer comes once its bytes are consumed. */
static void bdat_refuse(struct session *s, int code, const char *text)
{
	s->tx.bdat_local = true;
	s->tx.bdat_code = code;
	s->tx.bdat_text = text;
}

static void reject_reason(const struct session *s, int *code, const char **text)
{
	*code = 552;
	*text = "5.3.4 Message size exceeds fixed maximum message size";
	if (s->tx.filter.long_line) {
		*text = "5.6.0 Message rejected: a line is longer than 998 octets";
	} else if (s->tx.filter.nul) {
		*code = 554;
		*text = "5.6.0 Message rejected: NUL octet in message content";
	} else if (s->tx.filter.bare) {
		*code = 554;
		*text = "5.6.0 Message rejected: bare CR or LF in message content";
	}
}

enum session_cmd_result session_cmd_bdat(struct session *s, const struct smtp_cmd *c)
{
	uint64_t size;
	bool last;
	enum session_cmd_result res = SC_DONE;

	if (!smtp_bdat_parse(c->arg, c->arg_len, &size, &last)) {
		/* The chunk's length is unknown, so its bytes cannot be told from commands. */
		session_reply(s, 501, "5.5.4 Syntax: BDAT size [LAST]");
		session_close(s, SE_PROTOCOL, "malformed BDAT");
		return SC_DONE;
	}
	s->tx.bdat_local = false;
	if (!s->tx.bdat) {
		smtp_data_filter_init(&s->tx.filter, SMTP_BARE_REJECT, true);
		s->tx.bdat = true;
	}
	/* The previous chunk ended in a CR (already sent): with no LF to come it is bare, and
	 * the relay must not complete the message. */
	if (session_has(s, SF_AUTHED) && last && size == 0 && !s->tx.filter.halted &&
	    smtp_data_filter_cr_pending(&s->tx.filter)) {
		s->tx.filter.bare = s->tx.filter.halted = true;
		halt_message(s);
	}
	if (!session_has(s, SF_AUTHED)) {
		bdat_refuse(s, 530, "5.7.0 Authentication required");
	} else if (!s->tx.rec) { /* no MAIL went to the relay: none of this may */
		bdat_refuse(s, 503, "5.5.1 Error: need MAIL command");
	} else if (s->tx.filter.halted) {
		int code;
		const char *text;
		reject_reason(s, &code, &text);
		bdat_refuse(s, code, text);
	} else if (!session_need_upstream(s, &res, false)) {
		return res;
	} else if (!upstream_caps(s->up)->chunking || s->srv->cfg->bare_line_endings != SMTP_BARE_REJECT) {
		bdat_refuse(s, 502, "5.5.1 CHUNKING not available");
	} else if (s->tx.filter.bytes + size > s->srv->cfg->limits.max_message_size) {
		s->tx.filter.halted = true;
		halt_message(s);
		bdat_refuse(s, 552, "5.3.4 Message size exceeds fixed maximum message size");
	} else {
		/* The chunk's reply is owed once its bytes are sent (input_bdat). */
		session_send_line(s, s->line, s->line_len, 0);
	}
	s->tx.bdat_left = size;
	s->tx.bdat_last = last;
	session_enter_state(s, SS_BDAT);
	return SC_DONE;
}

/* After the end of data, either the relay's verdict is owed, or ours if the message halted. */
static void end_message(struct session *s)
{
	int code;
	const char *text;

	if (s->tx.rec)
		s->tx.rec->size = s->tx.filter.bytes;
	if (s->tx.filter.halted) {
		reject_reason(s, &code, &text);
		log_info("%s: message rejected: %d %s", s->id, code, text);
		session_reply(s, code, "%s", text);
		if (s->tx.rec)
			session_msgrec_write(s, s->tx.rec, code, text, "livery");
	} else {
		session_expect_relay(s, SESSION_VERB_MESSAGE_END, SP_RELAY);
		s->tail->rec = session_msgrec_ref(s->tx.rec);
		if (s->tx.rec)
			s->tx.rec->dot_at = uv_hrtime();
		upstream_set_reply_timeout(s->up, s->srv->cfg->limits.relay_data_timeout_ms);
	}
	session_tx_reset(s);
}

/* The body goes to the relay as it arrives, filtered, up to and including the final dot. */
bool session_input_data(struct session *s)
{
	bool done;
	size_t avail = iobuf_avail(&s->in);

	if (avail == 0)
		return false;
	size_t n = smtp_data_filter(&s->tx.filter, iobuf_peek(&s->in), avail, &s->fwd, &done);
	iobuf_consume(&s->in, n);
	forward_content(s, done ? 1 : 0);
	if (done) {
		end_message(s);
		session_enter_state(s, SS_COMMAND);
	}
	return done;
}

/* A chunk's bytes go to the relay as they arrive. The CR that would end the last chunk is
 * held back: with no LF after it, it is bare, and the relay must not get it. */
bool session_input_bdat(struct session *s)
{
	bool done;
	size_t avail = iobuf_avail(&s->in);
	size_t n = avail < s->tx.bdat_left ? avail : (size_t)s->tx.bdat_left;
	bool final_cr = s->tx.bdat_last && n == s->tx.bdat_left && n > 0 && iobuf_peek(&s->in)[n - 1] == '\r';

	if (n > 0 && !s->tx.bdat_local) {
		smtp_data_filter(&s->tx.filter, iobuf_peek(&s->in), final_cr ? n - 1 : n, &s->fwd, &done);
		if (final_cr)
			s->tx.filter.bare = s->tx.filter.halted = true;
		forward_content(s, 0);
	}
	iobuf_consume(&s->in, n);
	s->tx.bdat_left -= n;
	if (s->tx.bdat_left > 0)
		return false;
	if (s->tx.bdat_local) {
		session_reply(s, s->tx.bdat_code, "%s", s->tx.bdat_text);
		if (s->tx.bdat_last && s->tx.rec && s->tx.rec->content)
			session_msgrec_write(s, s->tx.rec, s->tx.bdat_code, s->tx.bdat_text, "livery");
		if (s->tx.bdat_last)
			session_tx_reset(s);
	} else if (s->tx.bdat_last) {
		if (!s->tx.filter.halted)
			upstream_send(s->up, "", 0, 1); /* no bytes: the last chunk is now owed a verdict */
		end_message(s);
	} else if (s->tx.filter.halted) {
		int code;
		const char *text;
		reject_reason(s, &code, &text);
		session_reply(s, code, "%s", text); /* later chunks of this message get the same answer */
	} else {
		upstream_send(s->up, "", 0, 1); /* no bytes: the chunk (maybe empty) is now owed a reply */
		session_expect_relay(s, SMTP_BDAT, SP_RELAY);
	}
	session_enter_state(s, SS_COMMAND);
	return true;
}

/* session_msg: message content from client to relay: DATA and BDAT through the smuggling filter, size and
 * line limits, and halting a message the relay must not complete. */
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

/* The message may not be completed: the relay leg is cut in the middle of it (no final dot,
 * or a chunk short of its size), so the relay discards it. The client hears why at its end;
 * a later command that needs the relay gets 421. */
static void halt_message(struct session *s)
{
	if (!s->up)
		return;
	log_warn("%s: message halted (%s); relay leg closed without completing it", s->id,
	         s->filter.long_line ? "line too long"
	         : s->filter.bare    ? "bare CR or LF"
	                             : "too big");
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
		session_relay_body(s, iobuf_peek(&s->fwd), iobuf_avail(&s->fwd), nreplies);
	iobuf_clear(&s->fwd);
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
	} else if (s->filter.nul) {
		*code = 554;
		*text = "5.6.0 Message rejected: NUL octet in message content";
	} else if (s->filter.bare) {
		*code = 554;
		*text = "5.6.0 Message rejected: bare CR or LF in message content";
	}
}

enum cmd_result session_cmd_bdat(struct session *s, const struct smtp_cmd *c)
{
	uint64_t size;
	bool last;
	enum cmd_result res = CMD_DONE;

	if (!smtp_bdat_parse(c->arg, c->arg_len, &size, &last)) {
		/* The chunk's length is unknown, so its bytes cannot be told from commands. */
		session_reply(s, 501, "5.5.4 Syntax: BDAT size [LAST]");
		session_close(s, "malformed BDAT");
		return CMD_DONE;
	}
	s->bdat_local = false;
	if (!s->bdat_active) {
		smtp_data_filter_init(&s->filter, SMTP_BARE_REJECT, true);
		s->bdat_active = true;
	}
	/* The previous chunk ended in a CR (already sent): with no LF to come it is bare, and
	 * the relay must not complete the message. */
	if (s->authed && last && size == 0 && !s->filter.halted && smtp_data_filter_cr_pending(&s->filter)) {
		s->filter.bare = s->filter.halted = true;
		halt_message(s);
	}
	if (!s->authed) {
		bdat_refuse(s, 530, "5.7.0 Authentication required");
	} else if (s->filter.halted) {
		int code;
		const char *text;
		reject_reason(s, &code, &text);
		bdat_refuse(s, code, text);
	} else if (!session_need_upstream(s, &res, false)) {
		return res;
	} else if (!upstream_caps(s->up)->chunking || s->srv->cfg->bare_line_endings != SMTP_BARE_REJECT) {
		bdat_refuse(s, 502, "5.5.1 CHUNKING not available");
	} else if (s->filter.bytes + size > s->srv->cfg->limits.max_message_size) {
		s->filter.halted = true;
		halt_message(s);
		bdat_refuse(s, 552, "5.3.4 Message size exceeds fixed maximum message size");
	} else {
		/* The chunk's reply is owed once its bytes are sent (input_bdat). */
		session_send_line(s, s->line, s->line_len, 0);
	}
	s->bdat_left = size;
	s->bdat_last = last;
	session_enter_state(s, SS_BDAT);
	return CMD_DONE;
}

/* After the end of data, either the relay's verdict is owed, or ours if the message halted. */
static void end_message(struct session *s)
{
	int code;
	const char *text;

	if (s->filter.halted) {
		reject_reason(s, &code, &text);
		log_info("%s: message rejected: %d %s", s->id, code, text);
		session_reply(s, code, "%s", text);
	} else {
		session_expect_relay(s, VERB_MESSAGE_END, P_RELAY);
		upstream_set_reply_timeout(s->up, s->srv->cfg->limits.relay_data_timeout_ms);
	}
	s->bdat_active = false;
}

/* The body goes to the relay as it arrives, filtered, up to and including the final dot. */
bool session_input_data(struct session *s)
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
		session_reply(s, s->bdat_code, "%s", s->bdat_text);
		s->bdat_active = !s->bdat_last;
	} else if (s->bdat_last) {
		if (!s->filter.halted)
			upstream_send(s->up, "", 0, 1); /* no bytes: the last chunk is now owed a verdict */
		end_message(s);
	} else if (s->filter.halted) {
		int code;
		const char *text;
		reject_reason(s, &code, &text);
		session_reply(s, code, "%s", text); /* later chunks of this message get the same answer */
	} else {
		upstream_send(s->up, "", 0, 1); /* no bytes: the chunk (maybe empty) is now owed a reply */
		session_expect_relay(s, SMTP_BDAT, P_RELAY);
	}
	session_enter_state(s, SS_COMMAND);
	return true;
}

/* session: the client-facing SMTP server state machine: states and their input, events from both legs,
 * timers, flow control and lifetime (commands, replies and content live in session_cmd/_reply/_msg). */
#include "session.h"

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
	else if (s->paused_for_up)
		ms = 0; /* we stopped reading the client because the relay does not read: its timer runs */
	else if (s->state == SS_DATA || s->state == SS_BDAT)
		ms = s->srv->cfg->limits.data_timeout_ms;
	else if (!session_relay_owed(s) && !s->blocked)
		ms = s->srv->cfg->limits.command_timeout_ms;
	stream_set_timer(s->client, ms);
}

void session_update_flow(struct session *s)
{
	if (s->closing)
		return;
	if (s->paused_for_up || iobuf_avail(&s->in) > INPUT_MAX || stream_write_blocked(s->client))
		stream_pause(s->client);
	else
		stream_resume(s->client);
}

static bool input_none(struct session *s)
{
	return false;
}

static const struct state_entry states[] = {
        [SS_HANDSHAKE] = {"handshake", input_none}, [SS_COMMAND] = {"command", session_input_command},
        [SS_AUTH] = {"auth", session_input_auth},   [SS_DATA] = {"data", session_input_data},
        [SS_BDAT] = {"bdat", session_input_bdat},   [SS_CLOSING] = {"closing", input_none},
};

void session_enter_state(struct session *s, enum sstate next)
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

void session_pump(struct session *s)
{
	while (can_process(s) && states[s->state].input(s))
		;
	session_update_flow(s);
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
		session_enter_state(s, SS_COMMAND);
	} else if (verb == SMTP_DATA && r->code == 354) {
		session_enter_state(s, SS_DATA);
	} else if (verb == VERB_MESSAGE_END) {
		upstream_set_reply_timeout(s->up, s->srv->cfg->limits.relay_timeout_ms);
		s->messages += ok;
		log_info("%s: message %s by the relay (%d)", s->id, ok ? "accepted" : "refused", r->code);
	}
}

static void up_on_reply(void *owner, const struct smtp_reply *r)
{
	struct session *s = owner;
	struct pending *p = session_pop_pending(s);

	if (!p || p->kind == P_LOCAL)
		abort(); /* broken invariant: local replies never wait at the head */
	unsigned verb = p->verb;
	bool silent = p->kind == P_SILENT;
	free(p);
	on_relay_reply_verb(s, verb, r);
	if (!silent) /* SASL challenges are base64 and pass unchanged */
		session_forward_reply(s, r, !(verb == SMTP_AUTH && r->code == 334));
	session_flush_local(s);
	if (verb == SMTP_QUIT) {
		session_close(s, "client quit");
		return;
	}
	if (s->auth_failures >= s->srv->cfg->limits.max_auth_failures) {
		session_reply(s, 421, "4.7.0 %s Too many authentication failures", s->brand);
		session_close(s, "too many authentication failures");
		return;
	}
	if (verb == s->wait_verb)
		s->wait_verb = SMTP_UNKNOWN;
	s->blocked = false;
	session_pump(s);
}

static void up_on_ready(void *owner)
{
	struct session *s = owner;

	s->blocked = false;
	session_pump(s);
}

static void up_on_failed(void *owner, const char *why)
{
	struct session *s = owner;

	log_warn("%s: relay leg for tenant '%s' failed: %s", s->id, s->tenant->name, why);
	s->up_failed = true;
	s->up = NULL; /* it closes itself */
	if (session_relay_owed(s) || s->state == SS_DATA || s->state == SS_BDAT) {
		/* Replies are owed for commands the relay will never answer: the client must retry. */
		session_flush_local(s);
		session_free_pending(s);
		session_reply(s, 421, "4.4.2 %s Connection to the relay lost, try again later", s->brand);
		session_close(s, "relay leg failed");
		return;
	}
	s->blocked = false;
	session_pump(s);
}

static void up_on_drain(void *owner)
{
	struct session *s = owner;

	s->paused_for_up = false;
	session_pump(s);
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

void session_start_upstream(struct session *s)
{
	if (s->closing)
		return; /* nobody would close a relay leg opened now */
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
	session_reply(s, 220, "%s ESMTP", s->brand);
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
	log_debug("%s: client TLS up: %s %s", s->id, stream_tls_version(s->client),
	          stream_tls_cipher(s->client));
	session_enter_state(s, SS_COMMAND);
	/* The tenant is known now: open the relay leg so it overlaps the client's EHLO and AUTH. */
	session_start_upstream(s);
	if (s->lcfg->tls == TLS_MODE_IMPLICIT)
		greet(s);
	session_pump(s);
}

static void cl_on_data(void *owner, const char *buf, size_t len)
{
	struct session *s = owner;

	if (s->closing)
		return;
	iobuf_append(&s->in, buf, len);
	session_pump(s);
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
		/* Replies still owed (BDAT chunks) will never be sent: the 421 must not wait behind them. */
		session_free_pending(s);
		session_reply(s, 421, "4.4.2 %s Error: timeout exceeded", s->brand);
	}
	session_close(s, "client timed out");
}

static void cl_on_drain(void *owner)
{
	struct session *s = owner;

	if (s->up)
		upstream_resume(s->up);
	session_pump(s);
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

void session_close(struct session *s, const char *reason)
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
	session_free_pending(s);
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
	/* Both counts are global, across worker processes (iptable lives in shared memory). */
	if (iptable_total(s->srv->per_ip) <= lim->max_connections && per_ip <= lim->max_connections_per_ip)
		return false;
	log_warn("%s: refusing %s: %s", s->id, s->peer,
	         per_ip > lim->max_connections_per_ip ? "too many connections from this address"
	                                              : "too many connections");
	if (s->lcfg->tls == TLS_MODE_STARTTLS)
		session_reply(s, 421, "4.7.0 %s Too many connections, try again later", s->brand);
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
		session_free_pending(s);
		session_reply(s, 421, "4.3.2 %s Service shutting down", s->brand);
	}
	session_close(s, "shutdown");
}

struct session *session_next(struct session *s)
{
	return s->next;
}

/* session: the client-facing SMTP server state machine: states and their input, events from both legs,
 * timers, flow control and lifetime (commands, replies and content live in session_cmd/_reply/_msg). */
#include "session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme_ask.h"
#include "localauth.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "records.h"
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

	/* The PROXY header has one deadline, armed when the wait began (session_proxy_start):
	 * re-arming it at every byte would let a source that sends one octet a second hold
	 * the connection for as long as the header is long. */
	if (session_closing(s) || s->state == SS_PROXY)
		return;
	if (s->state == SS_HANDSHAKE)
		ms = s->srv->cfg->limits.tls_timeout_ms;
	else if (session_has(s, SF_PAUSED_FOR_LEG))
		ms = 0; /* we stopped reading the client because the relay does not read: its timer runs */
	else if (s->state == SS_DATA || s->state == SS_BDAT)
		ms = s->srv->cfg->limits.data_timeout_ms;
	else if (s->state != SS_WAIT && s->state != SS_AUTH && s->state != SS_VERIFY && !session_relay_owed(s))
		ms = s->srv->cfg->limits.command_timeout_ms;
	stream_set_timer(s->client, ms);
}

void session_update_flow(struct session *s)
{
	if (session_closing(s))
		return;
	if (session_has(s, SF_PAUSED_FOR_LEG) || iobuf_avail(&s->in) > SESSION_INPUT_MAX ||
	    stream_write_blocked(s->client))
		stream_pause(s->client);
	else
		stream_resume(s->client);
}

static bool input_none(struct session *s)
{
	return false;
}

static bool wait_over(const struct session *s)
{
	switch (s->wait) {
	case SESSION_WAIT_LEG:
	case SESSION_WAIT_AUTH_LEG:
		return !s->up || upstream_is_ready(s->up);
	case SESSION_WAIT_REPLIES:
		return !session_relay_owed(s);
	case SESSION_WAIT_LIMIT:
		return s->limit.state == SL_ANSWERED;
	}
	abort(); /* broken invariant: an unknown wait */
}

/* Resumes once the wait is over: the held command, if any, runs again in SS_COMMAND. */
static bool input_wait(struct session *s)
{
	if (!wait_over(s))
		return false;
	session_enter_state(s, SS_COMMAND);
	if (s->wait == SESSION_WAIT_AUTH_LEG)
		session_local_auth_leg(s);
	return !session_closing(s);
}

static const struct session_state_entry states[] = {
        [SS_HANDSHAKE] = {"handshake", input_none}, [SS_COMMAND] = {"command", session_input_command},
        [SS_WAIT] = {"wait", input_wait},           [SS_AUTH] = {"auth", input_none},
        [SS_SASL] = {"sasl", session_input_auth},   [SS_VERIFY] = {"verify", input_none},
        [SS_DATA] = {"data", session_input_data},
        [SS_BDAT] = {"bdat", session_input_bdat},   [SS_CLOSING] = {"closing", input_none},
        [SS_PROXY] = {"proxy", session_input_proxy},
};

void session_enter_state(struct session *s, enum session_state next)
{
	if (session_closing(s))
		return; /* final: nothing that runs after session_close may revive the session */
	log_debug("%s: %s -> %s", s->id, states[s->state].name, states[next].name);
	s->state = next;
	if (next == SS_DATA)
		smtp_data_filter_init(&s->tx.filter, s->srv->cfg->bare_line_endings, false);
}

void session_wait(struct session *s, enum session_wait why)
{
	s->wait = why;
	session_enter_state(s, SS_WAIT);
}

/* Input is processed while the client reads its replies; each state's input function
 * decides whether it can go on. */
static bool can_process(const struct session *s)
{
	return !session_closing(s) && s->npending < SESSION_PENDING_MAX && !stream_write_blocked(s->client);
}

void session_pump(struct session *s)
{
	while (can_process(s) && states[s->state].input(s))
		;
	session_update_flow(s);
	update_client_timer(s);
}

/* ---- relay leg events ---- */

/* Relay legs of sessions not yet authenticated are bounded: otherwise anyone who completes
 * a TLS handshake could make livery hold connections at the provider. */
static bool unauth_legs_over(const struct session *s)
{
	const struct limits_cfg *lim = &s->srv->cfg->limits;

	return iptable_total(s->srv->unauth_legs) >= lim->max_unauth_legs ||
	       iptable_count(s->srv->unauth_legs, s->peer) >= lim->max_unauth_legs_per_ip;
}

/* Counts the leg being opened until its session authenticates. */
static void unauth_leg_take(struct session *s)
{
	if (session_has(s, SF_AUTHED) || session_has(s, SF_UNAUTH_LEG))
		return;
	iptable_inc(s->srv->unauth_legs, s->peer);
	session_set(s, SF_UNAUTH_LEG, true);
}

static void unauth_leg_release(struct session *s)
{
	if (!session_has(s, SF_UNAUTH_LEG))
		return;
	session_set(s, SF_UNAUTH_LEG, false);
	iptable_dec(s->srv->unauth_legs, s->peer);
}

/* A lent leg can serve another session when this one leaves nothing open on it: no reply
 * owed, no transaction (RSET would end one, but a session that vanished mid-transaction is
 * not trusted to have left the relay's side in a state worth keeping), no message content. */
static bool leg_clean(const struct session *s)
{
	return !session_has(s, SF_LEG_FAILED) && !session_has(s, SF_QUIT_SENT) && !session_relay_owed(s) &&
	       !s->tx.rec && s->state != SS_DATA && s->state != SS_BDAT;
}

/* The session stops hearing of a lent leg at once: the pool owns it from here. */
static void return_lease(struct session *s)
{
	pool_checkin(s->srv->pool, s->lease, leg_clean(s), s->messages);
	s->lease = NULL;
	if (--s->live == 0)
		abort(); /* broken invariant: the client stream is still counted when a leg goes */
}

void session_drop_upstream(struct session *s, bool quit)
{
	unauth_leg_release(s);
	if (s->up) {
		s->relay = *upstream_info(s->up); /* for the records, after the leg is gone */
		metrics_relay_leg(s->srv->metrics, s->tenant, &s->relay);
		if (s->lease)
			return_lease(s);
		else
			upstream_close(s->up, quit);
	}
	s->up = NULL;
}

void session_authenticated(struct session *s)
{
	session_set(s, SF_AUTHED, true);
	unauth_leg_release(s);
	snprintf(s->user, sizeof(s->user), "%s", s->auth_user);
	metrics_auth(s->srv->metrics, s->tenant, true);
}

bool session_auth_failed(struct session *s)
{
	s->auth_failures++;
	metrics_auth(s->srv->metrics, s->tenant, false);
	if (s->auth_failures < s->srv->cfg->limits.max_auth_failures)
		return true;
	session_reply(s, 421, "4.7.0 %s Too many authentication failures", s->brand);
	session_close(s, SE_AUTH_FAILED, "too many authentication failures");
	return false;
}

static void on_relay_reply_verb(struct session *s, unsigned verb, const struct smtp_reply *r)
{
	bool ok = r->code / 100 == 2;

	if (verb == SMTP_AUTH && r->code == 334) {
		session_enter_state(s, SS_SASL);
	} else if (verb == SMTP_AUTH) {
		if (ok) {
			session_authenticated(s);
		} else if (unauth_legs_over(s)) {
			/* Not held idle past a failed AUTH while the bounds are full: the next
			 * AUTH opens a new one. AUTH ends its group, so nothing else is owed. */
			session_drop_upstream(s, true);
		}
		if (!ok) { /* counted here, the 421 comes after the relay's reply is forwarded */
			s->auth_failures++;
			metrics_auth(s->srv->metrics, s->tenant, false);
		}
		log_info("%s: AUTH %s by the relay (%d)", s->id, ok ? "accepted" : "refused", r->code);
		session_enter_state(s, SS_COMMAND);
	} else if (verb == SMTP_DATA && r->code == 354) {
		session_enter_state(s, SS_DATA);
	} else if (verb == SESSION_VERB_MESSAGE_END) {
		upstream_set_reply_timeout(s->up, s->srv->cfg->limits.relay_timeout_ms);
		s->messages += ok;
		log_info("%s: message %s by the relay (%d)", s->id, ok ? "accepted" : "refused", r->code);
	}
}

/* What a reply tells the record of its message. */
static void on_relay_reply_rec(struct session *s, unsigned verb, struct session_msgrec *rec,
                               const struct smtp_reply *r)
{
	if (!rec)
		return;
	if (verb == SMTP_RCPT && r->code / 100 == 2)
		rec->rcpts++;
	if (verb != SESSION_VERB_MESSAGE_END)
		return;
	struct iobuf text;
	iobuf_init(&text);
	for (size_t i = 0; i < r->nlines; i++) {
		if (i > 0)
			iobuf_append(&text, " ", 1);
		iobuf_append(&text, r->lines[i], strlen(r->lines[i]));
	}
	iobuf_append(&text, "", 1);
	session_msgrec_write(s, rec, r->code, iobuf_peek(&text), "relay");
	iobuf_free(&text);
}

static void up_on_reply(void *owner, const struct smtp_reply *r)
{
	struct session *s = owner;
	struct session_pending *p = session_pop_pending(s);

	if (!p || p->kind == SP_LOCAL)
		abort(); /* broken invariant: local replies never wait at the head */
	unsigned verb = p->verb;
	bool silent = p->kind == SP_SILENT;
	on_relay_reply_rec(s, verb, p->rec, r);
	session_pending_free(s, p);
	on_relay_reply_verb(s, verb, r);
	if (!silent) /* SASL challenges are base64 and pass unchanged */
		session_forward_reply(s, r, !(verb == SMTP_AUTH && r->code == 334));
	session_flush_local(s);
	if (verb == SMTP_QUIT) {
		session_close(s, SE_QUIT, "client quit");
		return;
	}
	if (s->auth_failures >= s->srv->cfg->limits.max_auth_failures) {
		session_reply(s, 421, "4.7.0 %s Too many authentication failures", s->brand);
		session_close(s, SE_AUTH_FAILED, "too many authentication failures");
		return;
	}
	session_pump(s);
}

static void up_on_ready(void *owner)
{
	session_pump(owner); /* a command waiting for the leg resumes */
}

/* A leg that worked (pooled, or set up for this session) and then failed before the session
 * relayed anything on it, e.g. the relay closed it for idleness while the client was slow to
 * send MAIL, is dropped unseen by the client, once: the next command that needs the relay
 * opens another (session_need_upstream), so nothing is opened for a client that sends none. */
static bool drop_unused_leg(struct session *s)
{
	const struct upstream_info *i = upstream_info(s->up);

	if (!i->ready || upstream_used(s->up) || session_has(s, SF_LEG_REPLACED))
		return false;
	session_set(s, SF_LEG_REPLACED, true);
	session_set(s, SF_LEG_FAILED, true); /* so the pool does not keep it */
	session_drop_upstream(s, false);
	session_set(s, SF_LEG_FAILED, false);
	log_info("%s: relay connection failed before use; another opens when needed", s->id);
	return true;
}

static void up_on_failed(void *owner, const char *why)
{
	struct session *s = owner;

	if (drop_unused_leg(s)) {
		session_pump(s); /* a command waiting for the leg opens the next one */
		return;
	}
	log_warn("%s: relay leg for tenant '%s' failed: %s", s->id, s->tenant->name, why);
	session_set(s, SF_LEG_FAILED, true);
	session_drop_upstream(s, false); /* closing already: this only forgets it */
	if (session_relay_owed(s) || s->state == SS_DATA || s->state == SS_BDAT) {
		/* Replies are owed for commands the relay will never answer: the client must retry. */
		session_flush_local(s);
		session_free_pending(s);
		session_reply(s, 421, "4.4.2 %s Connection to the relay lost, try again later", s->brand);
		session_close(s, SE_RELAY, why);
		return;
	}
	session_pump(s);
}

static void up_on_drain(void *owner)
{
	struct session *s = owner;

	session_set(s, SF_PAUSED_FOR_LEG, false);
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

/* How a relay leg of tenant t is opened (local mode: with the tenant's own credentials). */
static void relay_params(const struct server *srv, const struct tenant_cfg *t, const char *log_id,
                         struct upstream_params *p)
{
	const struct limits_cfg *lim = &srv->cfg->limits;
	bool local = t->auth.mode == TENANT_AUTH_LOCAL;

	*p = (struct upstream_params){
	        .loop = srv->loop,
	        .tenant = t,
	        .ctx = certstore_client_ctx(srv->certs, t),
	        .sessions = t->region->tls_resumption ? srv->relay_sessions : NULL,
	        .setup_timeout_ms = lim->tls_timeout_ms,
	        .reply_timeout_ms = lim->relay_timeout_ms,
	        .log_id = log_id,
	        .auth_user = local ? t->auth.relay_user : NULL,
	        .auth_password = local ? t->auth.relay_password : NULL,
	};
}

void session_prewarm(struct server *srv)
{
	struct upstream_params p;

	for (size_t i = 0; i < srv->cfg->ntenants; i++) {
		if (srv->cfg->tenants[i].auth.mode != TENANT_AUTH_LOCAL)
			continue;
		relay_params(srv, &srv->cfg->tenants[i], "pool", &p);
		pool_prewarm(srv->pool, &p);
	}
}

/* Opens the relay leg: ahead of need (right after the client's TLS handshake) only while the
 * bounds on unauthenticated legs allow, on demand (a command needs it) always. False when
 * none was opened. */
bool session_start_upstream(struct session *s, bool on_demand)
{
	if (session_closing(s))
		return false; /* nobody would close a relay leg opened now */
	if (!on_demand && !session_has(s, SF_AUTHED) && unauth_legs_over(s)) {
		log_info("%s: relay leg deferred to AUTH: %u unauthenticated relay legs held (limits)", s->id,
		         iptable_total(s->srv->unauth_legs));
		return false;
	}
	unauth_leg_take(s);
	struct upstream_params p;
	relay_params(s->srv, s->tenant, s->id, &p);
	s->live++;
	session_set(s, SF_LEG_FAILED, false);
	if (p.auth_user) {
		/* A pooled leg is ready at once; neither kind reports anything before this returns. */
		s->up = pool_checkout(s->srv->pool, &p, &upstream_ops, s, &s->lease);
		return true;
	}
	s->up = upstream_start(&p, &upstream_ops, s); /* reports nothing before it returns */
	return true;
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
	tls_ctx *ctx = certstore_server_ctx(s->srv->certs, s->tenant);
	if (ctx)
		return ctx;
	/* A claimed name still waiting for ACME: the default certificate for now, and the
	 * master hears of it (acme_ask rate-limits). */
	if (t && certstore_acme_pending(s->srv->certs, t))
		acme_ask(s->brand, uv_now(s->srv->loop));
	return certstore_default_ctx(s->srv->certs, s->lcfg->default_tenant);
}

static void cl_on_tls(void *owner, int status)
{
	struct session *s = owner;

	metrics_client_tls(s->srv->metrics, s->lcfg, status == 0 ? METRICS_TLS_OK : METRICS_TLS_FAILED,
	                   stream_tls_started(s->client));
	if (status < 0) {
		log_info("%s: TLS handshake with client failed: %s", s->id, stream_tls_error(s->client));
		session_close(s, SE_CLIENT_TLS, stream_tls_error(s->client));
		return;
	}
	session_set(s, SF_TLS, true);
	log_debug("%s: client TLS up: %s %s", s->id, stream_tls_version(s->client),
	          stream_tls_cipher(s->client));
	session_enter_state(s, SS_COMMAND);
	/* The tenant is known now: open the relay leg so it overlaps the client's EHLO and AUTH
	 * (unless too many unauthenticated sessions hold one: then it waits for AUTH). */
	session_start_upstream(s, false);
	if (s->lcfg->tls == TLS_MODE_IMPLICIT)
		greet(s);
	session_pump(s);
}

static void cl_on_data(void *owner, const char *buf, size_t len)
{
	struct session *s = owner;

	if (session_closing(s))
		return;
	iobuf_append(&s->in, buf, len);
	session_pump(s);
}

static void cl_on_error(void *owner, int status)
{
	struct session *s = owner;

	session_close(s, SE_CLIENT_RESET, status == UV_EOF ? "client closed the connection" : uv_strerror(status));
}

static void cl_on_timeout(void *owner)
{
	struct session *s = owner;

	if (s->state == SS_PROXY) { /* nothing was said to the client: no reply is due */
		log_warn("%s: closing the connection from %s: no PROXY header within proxy_timeout", s->id, s->peer);
		session_close(s, SE_PROXY, "no PROXY header in time");
		return;
	}
	if (s->state == SS_HANDSHAKE)
		metrics_client_tls(s->srv->metrics, s->lcfg, METRICS_TLS_TIMEOUT, 0);
	if (s->state != SS_HANDSHAKE) {
		/* Replies still owed (BDAT chunks) will never be sent: the 421 must not wait behind them. */
		session_free_pending(s);
		session_reply(s, 421, "4.4.2 %s Error: timeout exceeded", s->brand);
	}
	session_close(s, SE_CLIENT_TIMEOUT, "client timed out");
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

static const char *end_name(const struct session *s, enum session_end end)
{
	static const char *const names[] = {
	        [SE_QUIT] = "quit",           [SE_CLIENT_TIMEOUT] = "client_timeout",
	        [SE_CLIENT_RESET] = "client_reset", [SE_CLIENT_TLS] = "client_tls_failed",
	        [SE_AUTH_FAILED] = "auth_failed", [SE_LIMIT] = "limit",
	        [SE_PROTOCOL] = "protocol_error", [SE_DRAIN] = "drain",
	        [SE_PROXY] = "proxy_refused",
	};

	if (end != SE_RELAY)
		return names[end];
	/* A relay leg that never got going, or failed without a cause of its own. */
	return s->relay.failure != UPSTREAM_OK ? upstream_failure_name(s->relay.failure) : "relay_unreachable";
}

static void write_session_record(struct session *s, enum session_end end, const char *detail)
{
	char listener[300], client[80];
	bool tls = session_has(s, SF_TLS);

	snprintf(listener, sizeof(listener), "%s:%d", s->lcfg->address, s->lcfg->port);
	snprintf(client, sizeof(client), strchr(s->peer, ':') ? "[%s]:%d" : "%s:%d", s->peer, s->peer_port);
	struct records_session r = {
	        .id = s->id,
	        .listener = listener,
	        .client = client,
	        .sni = stream_sni(s->client),
	        .tenant = s->tenant->name,
	        .brand = s->brand,
	        .user = s->user[0] ? s->user : NULL,
	        .auth = !s->user[0] ? NULL : session_local(s) ? "local" : "relay",
	        .tls_version = tls ? stream_tls_version(s->client) : NULL,
	        .cipher = tls ? stream_tls_cipher(s->client) : NULL,
	        .tls_resumed = tls && stream_tls_resumed(s->client),
	        .end = end_name(s, end),
	        .detail = detail,
	        .messages = s->messages,
	        .bytes_in = stream_bytes_in(s->client),
	        .bytes_out = stream_bytes_out(s->client),
	        .duration_ms = (double)(uv_hrtime() - s->started) / 1e6,
	        .relay = s->relay.region ? &s->relay : NULL,
	};
	records_session(&r);
	metrics_session_end(s->srv->metrics, s->tenant, r.end, r.bytes_in, r.bytes_out, s->started);
}

void session_close(struct session *s, enum session_end end, const char *detail)
{
	if (session_closing(s))
		return;
	/* Mid-message, a QUIT would become body or chunk bytes: the relay leg is cut instead,
	 * without the final dot, so nothing partial is delivered. */
	bool quit = session_has(s, SF_AUTHED) && !session_has(s, SF_QUIT_SENT) && s->state != SS_DATA &&
	            s->state != SS_BDAT;
	session_enter_state(s, SS_CLOSING);
	localauth_cancel(s->verify); /* its answer would find nobody */
	s->verify = NULL;
	/* An ended session no longer counts against the connection limits, from the moment the
	 * log says it ended (its socket may still flush its last replies for a while). */
	if (session_has(s, SF_IP_COUNTED))
		iptable_dec(s->srv->per_ip, s->peer);
	session_set(s, SF_IP_COUNTED, false);
	log_info("%s: session from %s ended: %s (tenant %s, %s, %s, %u message%s relayed)", s->id, s->peer,
	         detail, s->tenant->name, s->brand, stream_tls_version(s->client), s->messages,
	         s->messages == 1 ? "" : "s");
	session_drop_upstream(s, quit);
	session_tx_reset(s); /* a message cut short is recorded before the session */
	session_free_pending(s);
	write_session_record(s, end, detail);
	stream_close(s->client, true);
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
	metrics_closed(srv->metrics, s->lcfg);
	session_limit_cancel(s);
	session_free_pending(s);
	iobuf_free(&s->in);
	iobuf_free(&s->fwd);
	free(s->line);
	free(s);
	if (srv->draining && srv->nsessions == 0 && pool_is_empty(srv->pool) && srv->on_drained)
		srv->on_drained(srv);
}

/* Over a connection limit, a STARTTLS listener greets with 421; an implicit-TLS one just
 * closes, since a plaintext reply means nothing to a TLS client and a handshake costs CPU. */
static bool over_limits(struct session *s)
{
	const struct limits_cfg *lim = &s->srv->cfg->limits;
	unsigned per_ip = iptable_inc(s->srv->per_ip, s->peer);

	session_set(s, SF_IP_COUNTED, true);
	/* Both counts are global, across worker processes (iptable lives in shared memory). */
	if (iptable_total(s->srv->per_ip) <= lim->max_connections && per_ip <= lim->max_connections_per_ip)
		return false;
	log_warn("%s: refusing %s: %s", s->id, s->peer,
	         per_ip > lim->max_connections_per_ip ? "too many connections from this address"
	                                              : "too many connections");
	metrics_refused(s->srv->metrics, s->lcfg, per_ip > lim->max_connections_per_ip);
	if (s->lcfg->tls == TLS_MODE_STARTTLS)
		session_reply(s, 421, "4.7.0 %s Too many connections, try again later", s->brand);
	session_close(s, SE_LIMIT, "connection limit");
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
	s->started = uv_hrtime();
	iobuf_init(&s->in);
	iobuf_init(&s->fwd);
	s->next = srv->sessions;
	if (s->next)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	metrics_accepted(srv->metrics, lcfg);
	s->live = 1;
	s->client = stream_new(srv->loop, &client_ops, s);
	if (stream_accept(s->client, listener) != 0) {
		session_close(s, SE_CLIENT_RESET, "accept failed");
		return;
	}
	stream_peer_name(s->client, s->peer, sizeof(s->peer));
	s->peer_port = stream_peer_port(s->client);
	log_debug("%s: connection from %s on %s port %d", s->id, s->peer, lcfg->address, lcfg->port);
	if (!lcfg->proxy_protocol) {
		session_begin(s);
		return;
	}
	session_proxy_start(s); /* session_begin once the header names the client */
}

void session_begin(struct session *s)
{
	if (over_limits(s))
		return;
	bool implicit = s->lcfg->tls == TLS_MODE_IMPLICIT;
	enum session_state next = implicit ? SS_HANDSHAKE : SS_COMMAND;
	if (s->state != next) /* a new session is in SS_HANDSHAKE already */
		session_enter_state(s, next);
	if (implicit)
		stream_start_tls_server(s->client);
	else
		greet(s);
	update_client_timer(s);
}

void session_shutdown(struct session *s)
{
	if (session_closing(s))
		return;
	if (s->state != SS_HANDSHAKE && s->state != SS_PROXY) {
		session_free_pending(s);
		session_reply(s, 421, "4.3.2 %s Service shutting down", s->brand);
	}
	session_close(s, SE_DRAIN, "shutdown");
}

struct session *session_next(struct session *s)
{
	return s->next;
}

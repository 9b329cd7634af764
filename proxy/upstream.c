/* upstream: the relay-facing SMTP client state machine (resolve, connect, banner, EHLO, STARTTLS, verified
 * TLS, EHLO, then relay); never sees the client's stream or reply texts. */
#include "upstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "sasl.h"
#include "log.h"
#include "stream.h"
#include "util.h"

enum ustate { U_RESOLVE, U_CONNECT, U_TLS, U_BANNER, U_EHLO, U_STARTTLS, U_AUTH, U_READY, U_DEAD };

struct upstream {
	struct upstream_params p;
	const struct region_cfg *region;
	const struct upstream_ops *ops;
	void *owner;
	enum ustate state;
	uv_getaddrinfo_t gai;
	/* Starts the work on the next loop turn, so that upstream_start never reports a failure
	 * (on_failed) to an owner still inside the call. */
	uv_idle_t kick;
	struct addrinfo *addrs, *next_addr;
	/* A host that is an address literal needs no resolver (a thread-pool round trip). */
	struct addrinfo literal;
	struct sockaddr_storage literal_addr;
	size_t host;    /* index of the relay host being tried */
	bool resolving; /* a getaddrinfo request is under way */
	char last_error[256];
	struct stream *stream;
	int live; /* owner + kick handle + pending getaddrinfo + streams not yet closed; freed at 0 */
	bool closing, tls_done;
	bool used;          /* something was sent since the start or the last rebind */
	unsigned auth_step; /* U_AUTH with LOGIN: 334s answered so far */
	unsigned awaiting; /* replies owed by the relay while relaying */
	unsigned reply_timeout_ms;
	struct iobuf in;
	struct smtp_reply reply;
	struct smtp_caps caps;
	char addr_text[64];
	struct upstream_info info;
	uint64_t base_in, base_out; /* the stream's byte counts at the last rebind: info's start there */
	uint64_t t_attempt, t_tls; /* uv_hrtime() at the last connect and TLS start */
	char session_key[384];
	char *log_id;
};

struct state_entry {
	const char *name;
	void (*enter)(struct upstream *u);
	void (*reply)(struct upstream *u, const struct smtp_reply *r);
};

static void enter_state(struct upstream *u, enum ustate next);
static void attempt_failed(struct upstream *u, enum upstream_failure why, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static const struct stream_ops stream_ops;

/* Reports the failure once, then closes: the owner decides how the client hears of it, and
 * gets on_closed later. */
static void fail(struct upstream *u, enum upstream_failure kind, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void fail(struct upstream *u, enum upstream_failure kind, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (u->state == U_DEAD || u->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	u->info.failure = kind;
	u->state = U_DEAD;
	if (u->stream)
		stream_set_timer(u->stream, 0);
	u->ops->on_failed(u->owner, why);
	upstream_close(u, false);
}

/* Before the relay leg is ready nothing of the client's is committed: any failure moves on
 * to the next address or host. Once ready, a failure is final. */
#define setup_fail(u, kind, ...)                                                                             \
	((u)->state == U_READY ? fail(u, kind, __VA_ARGS__) : attempt_failed(u, kind, __VA_ARGS__))

static void send_line(struct upstream *u, const char *line)
{
	char buf[600];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);
	stream_write(u->stream, buf, (size_t)n);
}

static void enter_banner(struct upstream *u)
{
	stream_set_timer(u->stream, u->p.setup_timeout_ms);
}

static void enter_ehlo(struct upstream *u)
{
	char line[300];

	snprintf(line, sizeof(line), "EHLO %s", u->region->ehlo_name);
	send_line(u, line);
	stream_set_timer(u->stream, u->p.setup_timeout_ms);
}

static void enter_starttls(struct upstream *u)
{
	send_line(u, "STARTTLS");
	stream_set_timer(u->stream, u->p.setup_timeout_ms);
}

static const struct relay_host *cur_host(const struct upstream *u)
{
	return &u->region->hosts[u->host];
}

/* Sessions are only resumed with the context (so the verification policy), address and
 * name they were made with. */
static void session_key(const struct upstream *u, char *buf, size_t len)
{
	snprintf(buf, len, "%p|%s|%s", (void *)u->p.ctx, u->addr_text, cur_host(u)->sni);
}

static void enter_tls(struct upstream *u)
{
	const struct tenant_cfg *t = u->p.tenant;
	const struct relay_host *h = cur_host(u);

	u->t_tls = uv_hrtime();
	stream_set_timer(u->stream, u->p.setup_timeout_ms);
	if (t->skip_verification)
		log_warn("%s: relay %s: certificate verification is skipped for tenant '%s'", u->log_id,
		         u->addr_text, t->name);
	const char *verify = t->skip_verification ? NULL : h->verify_name;
	session_key(u, u->session_key, sizeof(u->session_key));
	tls_session *resume = u->p.sessions ? tls_session_cache_get(u->p.sessions, u->session_key) : NULL;
	if (stream_start_tls_client(u->stream, u->p.ctx, h->sni, verify, resume) < 0)
		attempt_failed(u, UPSTREAM_VALIDATION_FAILURE, "cannot start TLS with relay %s", u->addr_text);
}

/* By now a TLS 1.3 ticket has come with the EHLO reply, and a TLS 1.2 session is set. */
static void remember_session(struct upstream *u)
{
	tls_session *sess = u->p.sessions && u->tls_done ? stream_tls_session(u->stream) : NULL;

	if (sess)
		tls_session_cache_put(u->p.sessions, u->session_key, sess);
}

static void enter_ready(struct upstream *u)
{
	u->info.failure = UPSTREAM_OK;
	u->info.ready = true;
	stream_set_timer(u->stream, 0);
	remember_session(u);
	log_debug("%s: relay %s ready (%s %s%s)", u->log_id, u->addr_text, stream_tls_version(u->stream),
	          stream_tls_cipher(u->stream), stream_tls_resumed(u->stream) ? ", resumed" : "");
	u->ops->on_ready(u->owner);
}

static void reply_banner(struct upstream *u, const struct smtp_reply *r)
{
	if (r->code != 220)
		return attempt_failed(u, UPSTREAM_REFUSED, "relay %s greeted with %d", u->addr_text, r->code);
	enter_state(u, U_EHLO);
}

/* Sends an AUTH line or response without ever logging it; the buffer is wiped. */
static void send_secret(struct upstream *u, const char *prefix, const char *b64)
{
	char buf[2 * SASL_FIELD_MAX + 64];
	int n = snprintf(buf, sizeof(buf), "%s%s\r\n", prefix, b64);

	stream_write(u->stream, buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
}

static void enter_auth(struct upstream *u)
{
	char b64[2 * SASL_FIELD_MAX + 8];

	u->auth_step = 0;
	stream_set_timer(u->stream, u->p.setup_timeout_ms);
	if (u->caps.auth_plain && sasl_plain_encode(u->p.auth_user, u->p.auth_password, b64, sizeof(b64)))
		send_secret(u, "AUTH PLAIN ", b64);
	else if (u->caps.auth_login)
		send_line(u, "AUTH LOGIN");
	else
		fail(u, UPSTREAM_AUTH, "relay %s offers neither AUTH PLAIN nor AUTH LOGIN for tenant '%s'", u->addr_text,
		     u->p.tenant->name);
	explicit_bzero(b64, sizeof(b64));
}

/* LOGIN: the first 334 asks for the user name, the second for the password. */
static void answer_login(struct upstream *u)
{
	char b64[2 * SASL_FIELD_MAX + 8];

	if (!sasl_b64_encode(u->auth_step++ == 0 ? u->p.auth_user : u->p.auth_password, b64, sizeof(b64)))
		return fail(u, UPSTREAM_AUTH, "relay_user or its password is too long for AUTH LOGIN");
	send_secret(u, "", b64);
	explicit_bzero(b64, sizeof(b64));
	stream_set_timer(u->stream, u->p.setup_timeout_ms);
}

/* A refusal of livery's own credentials is the operator's to fix, and loud: the client only
 * hears of a temporary failure. A 4xx may be a busy host: the next one is tried. */
static void reply_auth(struct upstream *u, const struct smtp_reply *r)
{
	if (r->code == 334 && !u->caps.auth_plain && u->auth_step < 2)
		return answer_login(u);
	if (r->code == 235)
		return enter_state(u, U_READY);
	if (r->code / 100 == 4)
		return attempt_failed(u, UPSTREAM_REFUSED, "relay %s refused AUTH for now (%d)", u->addr_text, r->code);
	log_error("%s: relay %s REFUSED livery's AUTH as '%s' for tenant '%s' (%d): check the tenant's relay_user and "
	          "relay_password_file; clients get 454 4.7.0 meanwhile",
	          u->log_id, u->addr_text, u->p.auth_user, u->p.tenant->name, r->code);
	fail(u, UPSTREAM_AUTH, "relay %s refused livery's AUTH (%d)", u->addr_text, r->code);
}

static void reply_ehlo(struct upstream *u, const struct smtp_reply *r)
{
	if (r->code != 250)
		return attempt_failed(u, UPSTREAM_REFUSED, "relay %s rejected EHLO with %d", u->addr_text, r->code);
	smtp_caps_parse(r, &u->caps);
	if (u->tls_done)
		return enter_state(u, u->p.auth_user ? U_AUTH : U_READY);
	if (u->caps.starttls)
		return enter_state(u, U_STARTTLS);
	if (u->p.tenant->require_tls)
		return attempt_failed(u, UPSTREAM_STARTTLS_MISSING, "relay %s does not offer STARTTLS and tenant '%s' requires TLS",
		                      u->addr_text, u->p.tenant->name);
	log_warn("%s: relay %s does not offer STARTTLS: relaying in plaintext (require_tls = false)",
	         u->log_id, u->addr_text);
	enter_state(u, u->p.auth_user ? U_AUTH : U_READY);
}

/* CVE-2011-0411: anything the relay sent after its 220 arrived in plaintext and would be
 * taken as a reply inside TLS; a relay (or a man in the middle) doing that is not trusted. */
static void reply_starttls(struct upstream *u, const struct smtp_reply *r)
{
	if (r->code != 220)
		return attempt_failed(u, UPSTREAM_STARTTLS_MISSING, "relay %s refused STARTTLS with %d", u->addr_text, r->code);
	if (iobuf_avail(&u->in) > 0)
		return attempt_failed(u, UPSTREAM_VALIDATION_FAILURE, "relay %s sent data after its STARTTLS reply (injection attempt)",
		                      u->addr_text);
	enter_state(u, U_TLS);
}

static void reply_ready(struct upstream *u, const struct smtp_reply *r)
{
	if (u->awaiting == 0)
		return fail(u, UPSTREAM_PROTOCOL, "relay %s sent an unexpected reply %d", u->addr_text, r->code);
	if (--u->awaiting == 0)
		stream_set_timer(u->stream, 0);
	else
		stream_set_timer(u->stream, u->reply_timeout_ms);
	u->ops->on_reply(u->owner, r);
}

static const struct state_entry states[] = {
        [U_RESOLVE] = {"resolve", NULL, NULL},
        [U_CONNECT] = {"connect", NULL, NULL},
        [U_TLS] = {"tls", enter_tls, NULL},
        [U_BANNER] = {"banner", enter_banner, reply_banner},
        [U_EHLO] = {"ehlo", enter_ehlo, reply_ehlo},
        [U_STARTTLS] = {"starttls", enter_starttls, reply_starttls},
        [U_AUTH] = {"auth", enter_auth, reply_auth},
        [U_READY] = {"ready", enter_ready, reply_ready},
        [U_DEAD] = {"dead", NULL, NULL},
};

static void enter_state(struct upstream *u, enum ustate next)
{
	log_debug("%s: relay leg %s -> %s", u->log_id, states[u->state].name, states[next].name);
	u->state = next;
	if (states[next].enter)
		states[next].enter(u);
}

static void on_line(struct upstream *u, const char *line, size_t len)
{
	enum smtp_reply_status st = smtp_reply_feed(&u->reply, line, len);

	if (st == SMTP_REPLY_BAD)
		return setup_fail(u, UPSTREAM_PROTOCOL, "relay %s sent a malformed reply", u->addr_text);
	if (st == SMTP_REPLY_MORE)
		return;
	if (states[u->state].reply)
		states[u->state].reply(u, &u->reply);
	else
		setup_fail(u, UPSTREAM_PROTOCOL, "relay %s replied %d out of turn", u->addr_text, u->reply.code);
	smtp_reply_clear(&u->reply);
}

static void up_on_data(void *owner, const char *buf, size_t len)
{
	struct upstream *u = owner;
	size_t n;

	iobuf_append(&u->in, buf, len);
	while (u->state != U_DEAD && !u->closing && (n = iobuf_line_len(&u->in)) > 0) {
		char *line = xstrndup(iobuf_peek(&u->in), n);
		iobuf_consume(&u->in, n);
		on_line(u, line, smtp_line_strip(line, n));
		free(line);
	}
	if (u->state != U_DEAD && !u->closing && iobuf_avail(&u->in) > SMTP_REPLY_LINE_MAX)
		setup_fail(u, UPSTREAM_PROTOCOL, "relay %s sent an over-long reply line", u->addr_text);
}

static void up_on_connect(void *owner, int status)
{
	struct upstream *u = owner;

	if (status < 0)
		return attempt_failed(u, UPSTREAM_UNREACHABLE, "connect to relay %s: %s", u->addr_text, uv_strerror(status));
	u->info.connect_ms = (double)(uv_hrtime() - u->t_attempt) / 1e6;
	log_debug("%s: connected to relay %s", u->log_id, u->addr_text);
	enter_state(u, u->region->tls == TLS_MODE_IMPLICIT ? U_TLS : U_BANNER);
}

static enum upstream_failure tls_failure_kind(const struct upstream *u)
{
	switch (stream_tls_failure(u->stream)) {
	case TLS_FAIL_HOST_MISMATCH:
		return UPSTREAM_CERT_HOST_MISMATCH;
	case TLS_FAIL_EXPIRED:
		return UPSTREAM_CERT_EXPIRED;
	case TLS_FAIL_NOT_TRUSTED:
		return UPSTREAM_CERT_NOT_TRUSTED;
	case TLS_FAIL_OTHER:
		break;
	}
	return UPSTREAM_VALIDATION_FAILURE;
}

static void note_tls(struct upstream *u)
{
	struct upstream_info *i = &u->info;

	i->handshake_ms = (double)(uv_hrtime() - u->t_tls) / 1e6;
	i->tls = true;
	i->verified = !u->p.tenant->skip_verification;
	i->resumed = stream_tls_resumed(u->stream);
	snprintf(i->tls_version, sizeof(i->tls_version), "%s", stream_tls_version(u->stream));
	snprintf(i->cipher, sizeof(i->cipher), "%s", stream_tls_cipher(u->stream));
}

static void up_on_tls(void *owner, int status)
{
	struct upstream *u = owner;

	if (status < 0)
		return attempt_failed(u, tls_failure_kind(u), "TLS with relay %s failed: %s", u->addr_text,
		                      stream_tls_error(u->stream));
	u->tls_done = true;
	note_tls(u);
	/* After STARTTLS the relay's state is reset and it must be asked for EHLO again. */
	enter_state(u, u->region->tls == TLS_MODE_IMPLICIT ? U_BANNER : U_EHLO);
}

static void up_on_error(void *owner, int status)
{
	struct upstream *u = owner;

	setup_fail(u, UPSTREAM_LOST, "relay %s closed the connection (%s)", u->addr_text,
	           status == UV_EOF ? "end of stream" : uv_strerror(status));
}

static void up_on_timeout(void *owner)
{
	struct upstream *u = owner;

	if (u->state == U_READY && u->awaiting == 0)
		return fail(u, UPSTREAM_TIMEOUT, "relay %s stopped reading", u->addr_text);
	setup_fail(u, UPSTREAM_TIMEOUT, "relay %s timed out in state %s", u->addr_text, states[u->state].name);
}

static void up_on_drain(void *owner)
{
	struct upstream *u = owner;

	if (u->awaiting == 0 && u->stream)
		stream_set_timer(u->stream, 0); /* the relay reads again */
	if (u->ops->on_drain && !u->closing)
		u->ops->on_drain(u->owner);
}

static void release(struct upstream *u)
{
	if (--u->live > 0 || !u->closing)
		return;
	void *owner = u->owner;
	const struct upstream_ops *ops = u->ops;
	if (u->addrs)
		uv_freeaddrinfo(u->addrs);
	iobuf_free(&u->in);
	smtp_reply_clear(&u->reply);
	free(u->log_id);
	free(u);
	ops->on_closed(owner);
}

static void up_on_close(void *owner)
{
	release(owner);
}

static const struct stream_ops stream_ops = {
        .on_connect = up_on_connect,
        .on_tls = up_on_tls,
        .on_data = up_on_data,
        .on_error = up_on_error,
        .on_timeout = up_on_timeout,
        .on_drain = up_on_drain,
        .on_close = up_on_close,
};

static void note_bytes(struct upstream *u)
{
	if (!u->stream)
		return;
	u->info.bytes_in = stream_bytes_in(u->stream) - u->base_in;
	u->info.bytes_out = stream_bytes_out(u->stream) - u->base_out;
}

static void drop_stream(struct upstream *u)
{
	if (!u->stream)
		return;
	note_bytes(u);
	stream_close(u->stream, false);
	u->stream = NULL;
}

static void addr_to_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port;

	if (sa->sa_family == AF_INET6) {
		uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
		snprintf(buf, len, "[%s]:%d", ip, port);
	} else {
		uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		snprintf(buf, len, "%s:%d", ip, port);
	}
}

static void resolve_host(struct upstream *u);

/* A new attempt's record: what the last one found is forgotten but its failure. */
static void start_attempt_info(struct upstream *u)
{
	struct upstream_info *i = &u->info;
	enum upstream_failure last = i->failure;

	*i = (struct upstream_info){.region = u->region->name, .host = cur_host(u)->host, .failure = last};
	snprintf(i->addr, sizeof(i->addr), "%s", u->addr_text);
	u->t_attempt = uv_hrtime();
}

/* Each address gets its own stream and the connect timeout; the old stream is closed first.
 * When a host's addresses are used up, the next host is resolved. */
static void try_next(struct upstream *u)
{
	drop_stream(u);
	iobuf_clear(&u->in);
	smtp_reply_clear(&u->reply);
	u->tls_done = false;
	if (!u->next_addr) {
		if (++u->host < u->region->nhosts)
			return resolve_host(u);
		return fail(u, u->info.failure, "no relay of region '%s' could be used; last error: %s", u->region->name,
		            u->last_error);
	}
	struct addrinfo *ai = u->next_addr;
	u->next_addr = ai->ai_next;
	addr_to_text(ai->ai_addr, u->addr_text, sizeof(u->addr_text));
	start_attempt_info(u);
	u->state = U_CONNECT;
	u->stream = stream_new(u->p.loop, &stream_ops, u);
	u->live++;
	stream_set_timer(u->stream, u->region->connect_timeout_ms);
	stream_connect(u->stream, ai->ai_addr); /* the outcome comes through up_on_connect */
}

static void attempt_failed(struct upstream *u, enum upstream_failure why, const char *fmt, ...)
{
	va_list ap;

	if (u->state == U_DEAD || u->closing)
		return;
	u->info.failure = why;
	va_start(ap, fmt);
	vsnprintf(u->last_error, sizeof(u->last_error), fmt, ap);
	va_end(ap);
	log_warn("%s: %s", u->log_id, u->last_error);
	try_next(u);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct upstream *u = container_of(req, struct upstream, gai);

	u->resolving = false;
	if (u->addrs)
		uv_freeaddrinfo(u->addrs);
	u->addrs = res;
	u->next_addr = res;
	if (!u->closing && status < 0)
		attempt_failed(u, UPSTREAM_UNREACHABLE, "cannot resolve relay %s: %s", cur_host(u)->host, uv_strerror(status));
	else if (!u->closing)
		try_next(u);
	release(u); /* the resolver's reference; streams hold their own */
}

/* True (with u->next_addr set) when the current host is an IPv4 or IPv6 address literal. */
static bool use_literal(struct upstream *u)
{
	const char *host = cur_host(u)->host;
	struct sockaddr *sa = (struct sockaddr *)&u->literal_addr;

	if (uv_ip4_addr(host, u->region->port, (struct sockaddr_in *)sa) == 0)
		u->literal.ai_addrlen = sizeof(struct sockaddr_in);
	else if (uv_ip6_addr(host, u->region->port, (struct sockaddr_in6 *)sa) == 0)
		u->literal.ai_addrlen = sizeof(struct sockaddr_in6);
	else
		return false;
	u->literal.ai_family = sa->sa_family;
	u->literal.ai_socktype = SOCK_STREAM;
	u->literal.ai_addr = sa;
	u->literal.ai_next = NULL;
	u->next_addr = &u->literal;
	return true;
}

static void resolve_host(struct upstream *u)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char port[8];

	snprintf(port, sizeof(port), "%d", u->region->port);
	snprintf(u->addr_text, sizeof(u->addr_text), "%s:%d", cur_host(u)->host, u->region->port);
	u->state = U_RESOLVE;
	u->next_addr = NULL;
	if (use_literal(u))
		return try_next(u);
	int rc = uv_getaddrinfo(u->p.loop, &u->gai, on_resolved, cur_host(u)->host, port, &hints);
	if (rc < 0)
		return attempt_failed(u, UPSTREAM_UNREACHABLE, "cannot resolve relay %s: %s", cur_host(u)->host, uv_strerror(rc));
	u->resolving = true;
	u->live++; /* held across the resolve, released in on_resolved even when closed meanwhile */
}

static void on_kick(uv_idle_t *h)
{
	struct upstream *u = container_of(h, struct upstream, kick);

	uv_idle_stop(h);
	if (!u->closing)
		resolve_host(u); /* failures reach the owner from here, a loop callback */
}

static void on_kick_closed(uv_handle_t *h)
{
	release(container_of((uv_idle_t *)h, struct upstream, kick));
}

struct upstream *upstream_start(const struct upstream_params *p, const struct upstream_ops *ops, void *owner)
{
	struct upstream *u = xcalloc(1, sizeof(*u));

	u->p = *p;
	u->region = p->tenant->region;
	u->ops = ops;
	u->owner = owner;
	u->log_id = xstrdup(p->log_id);
	u->info.region = u->region->name;
	u->info.host = u->region->hosts[0].host;
	u->reply_timeout_ms = p->reply_timeout_ms;
	iobuf_init(&u->in);
	smtp_reply_init(&u->reply);
	u->live = 2; /* the owner's reference, dropped by upstream_close, and the kick handle's */
	uv_idle_init(p->loop, &u->kick);
	uv_idle_start(&u->kick, on_kick);
	return u;
}

const struct upstream_info *upstream_info(struct upstream *u)
{
	note_bytes(u);
	return &u->info;
}

const char *upstream_failure_name(enum upstream_failure f)
{
	static const char *const names[] = {
	        [UPSTREAM_OK] = "ok",
	        [UPSTREAM_UNREACHABLE] = "relay_unreachable",
	        [UPSTREAM_TIMEOUT] = "relay_timeout",
	        [UPSTREAM_LOST] = "relay_lost",
	        [UPSTREAM_REFUSED] = "relay_refused",
	        [UPSTREAM_PROTOCOL] = "relay_protocol_error",
	        [UPSTREAM_STARTTLS_MISSING] = "starttls-not-supported",
	        [UPSTREAM_CERT_HOST_MISMATCH] = "certificate-host-mismatch",
	        [UPSTREAM_CERT_EXPIRED] = "certificate-expired",
	        [UPSTREAM_CERT_NOT_TRUSTED] = "certificate-not-trusted",
	        [UPSTREAM_VALIDATION_FAILURE] = "validation-failure",
	        [UPSTREAM_AUTH] = "relay_auth_failed",
	};
	return names[f];
}

bool upstream_is_ready(const struct upstream *u)
{
	return u->state == U_READY;
}

void upstream_set_reply_timeout(struct upstream *u, unsigned ms)
{
	u->reply_timeout_ms = ms;
	if (u->awaiting > 0 && u->stream)
		stream_set_timer(u->stream, ms);
}

const struct smtp_caps *upstream_caps(const struct upstream *u)
{
	return &u->caps;
}

void upstream_send(struct upstream *u, const char *buf, size_t len, unsigned nreplies)
{
	if (u->state != U_READY)
		return;
	u->used = true;
	stream_write(u->stream, buf, len);
	if (nreplies > 0) {
		if (u->awaiting == 0)
			stream_set_timer(u->stream, u->reply_timeout_ms);
		u->awaiting += nreplies;
	} else if (u->awaiting == 0 && stream_write_blocked(u->stream)) {
		/* Message content and no reply owed: a relay that stops reading it is timed too
		 * (the owner stops reading its client meanwhile, so nobody else would notice). */
		stream_set_timer(u->stream, u->reply_timeout_ms);
	}
}

bool upstream_write_blocked(const struct upstream *u)
{
	return u->stream && stream_write_blocked(u->stream);
}

void upstream_pause(struct upstream *u)
{
	if (u->stream)
		stream_pause(u->stream);
}

void upstream_resume(struct upstream *u)
{
	if (u->stream)
		stream_resume(u->stream);
}

void upstream_close(struct upstream *u, bool quit)
{
	if (u->closing)
		return;
	bool ready = u->state == U_READY;
	u->closing = true;
	if (u->resolving)
		uv_cancel((uv_req_t *)&u->gai);
	uv_close((uv_handle_t *)&u->kick, on_kick_closed);
	if (u->stream) {
		if (quit && ready)
			send_line(u, "QUIT");
		stream_close(u->stream, quit && ready);
		u->stream = NULL;
	}
	release(u); /* the owner's reference */
}

void upstream_rebind(struct upstream *u, const struct upstream_ops *ops, void *owner, const char *log_id)
{
	u->ops = ops;
	u->owner = owner;
	free(u->log_id);
	u->log_id = xstrdup(log_id);
	u->used = false;
	/* A pooled connection's bytes are counted per holder: each session's record and metrics
	 * get its own, the pool's RSETs between them go to nobody. */
	if (u->stream) {
		u->base_in = stream_bytes_in(u->stream);
		u->base_out = stream_bytes_out(u->stream);
	}
	note_bytes(u);
}

bool upstream_used(const struct upstream *u)
{
	return u->used;
}

unsigned upstream_awaiting(const struct upstream *u)
{
	return u->awaiting;
}

void upstream_set_reused(struct upstream *u)
{
	u->info.reused = true;
}

bool upstream_is_dead(const struct upstream *u)
{
	return u->state == U_DEAD || u->closing;
}

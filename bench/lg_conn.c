/* lg_conn: one load-generator session (TCP on libuv, TLS through wolfSSL memory callbacks, the SMTP
 * client state machine: banner, EHLO, STARTTLS, EHLO, AUTH PLAIN, k x MAIL/RCPT/DATA, QUIT). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadgen.h"

enum state {
	S_CONNECTING,
	S_TLS,    /* handshake in progress */
	S_BANNER, /* waiting for 220 */
	S_EHLO1,  /* plaintext EHLO */
	S_STARTTLS,
	S_EHLO2, /* EHLO inside TLS */
	S_AUTH,
	S_MAIL, /* MAIL [RCPT DATA pipelined] */
	S_RCPT,
	S_DATA,
	S_DOT,  /* waiting for the end-of-data reply */
	S_IDLE, /* hold mode: authenticated, nothing to do */
	S_QUIT,
	S_DONE,
};

static const char *const state_names[] = {
        [S_CONNECTING] = "connect", [S_TLS] = "tls",    [S_BANNER] = "banner", [S_EHLO1] = "EHLO",
        [S_STARTTLS] = "STARTTLS",  [S_EHLO2] = "EHLO", [S_AUTH] = "AUTH",     [S_MAIL] = "MAIL",
        [S_RCPT] = "RCPT",          [S_DATA] = "DATA",  [S_DOT] = "DOT",       [S_IDLE] = "idle",
        [S_QUIT] = "QUIT",          [S_DONE] = "done",
};

struct lg_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct lg *lg;
	struct lg_conn *prev, *next; /* lg->live */
	enum state state;
	WOLFSSL *ssl;
	bool tls_up, pipelining, ehlo_pipelining, closing, failed;
	int closes_pending;
	unsigned sni;
	unsigned msgs_done;
	int replies_left;  /* replies owed in S_MAIL when pipelining */
	struct bu_buf cin; /* ciphertext received, not yet taken by wolfSSL */
	struct bu_buf out; /* ciphertext wolfSSL produced, not yet written */
	struct bu_buf lin; /* plaintext received, not yet parsed into lines */
	double t0, t_tls0;
	bool banner_seen;
	bool eof; /* the server closed (close_notify or EOF): replies already received still count */
};

struct write_req {
	uv_write_t req;
	char *data;
};

static char read_buf[65536]; /* one thread: each read is consumed before the next */

static void conn_fail(struct lg_conn *c, const char *kind);
static void handle_input(struct lg_conn *c);

struct lg_conn *lg_conn_next(struct lg_conn *c)
{
	return c->next;
}

/* ---- lifetime ---- */

static void on_handle_closed(uv_handle_t *h)
{
	struct lg_conn *c = h->data;

	if (--c->closes_pending > 0)
		return;
	struct lg *lg = c->lg;
	if (c->ssl)
		wolfSSL_free(c->ssl);
	bu_buf_free(&c->cin);
	bu_buf_free(&c->out);
	bu_buf_free(&c->lin);
	free(c);
	lg_session_closed(lg);
}

/* Unlinks and closes; c is freed from the close callbacks, so callers must not touch it after. */
static void conn_close(struct lg_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	struct lg *lg = c->lg;
	if (c->prev)
		c->prev->next = c->next;
	else
		lg->live = c->next;
	if (c->next)
		c->next->prev = c->prev;
	lg->active--;
	if (c->state == S_IDLE)
		lg->held--;
	c->closes_pending = 2;
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void conn_fail(struct lg_conn *c, const char *kind)
{
	if (c->closing)
		return;
	c->failed = true;
	c->lg->failed++;
	lg_count_error(c->lg, kind);
	conn_close(c);
}

static void conn_fail_state(struct lg_conn *c, const char *what)
{
	char kind[48];

	snprintf(kind, sizeof(kind), "%s %s", what, state_names[c->state]);
	conn_fail(c, kind);
}

void lg_conn_abort(struct lg_conn *c, const char *kind)
{
	conn_fail(c, kind);
}

static void on_timeout(uv_timer_t *t)
{
	conn_fail_state(t->data, "timeout");
}

static void arm_timer(struct lg_conn *c)
{
	uv_timer_start(&c->timer, on_timeout, (uint64_t)(c->lg->o.timeout * 1000), 0);
}

static void enter_state(struct lg_conn *c, enum state s)
{
	c->state = s;
	if (s == S_IDLE)
		uv_timer_stop(&c->timer);
	else
		arm_timer(c);
}

/* ---- output ---- */

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct lg_conn *c = req->handle->data;

	free(w->data);
	free(w);
	if (status < 0 && status != UV_ECANCELED)
		conn_fail_state(c, "write");
}

/* Queues the bytes of b (taking over its memory). */
static void write_buf(struct lg_conn *c, struct bu_buf *b)
{
	if (b->len == b->off || c->closing) {
		bu_buf_consume(b, b->len - b->off);
		return;
	}
	struct write_req *w = bu_xmalloc(sizeof(*w));
	uv_buf_t ub = uv_buf_init(b->data + b->off, (unsigned)(b->len - b->off));
	w->data = b->data;
	memset(b, 0, sizeof(*b));
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written) < 0) {
		free(w->data);
		free(w);
		conn_fail_state(c, "write");
	}
}

static void flush_tls(struct lg_conn *c)
{
	write_buf(c, &c->out);
}

static void send_bytes(struct lg_conn *c, const char *p, size_t n)
{
	if (c->tls_up) {
		if (wolfSSL_write(c->ssl, p, (int)n) != (int)n) {
			conn_fail_state(c, "tls-write");
			return;
		}
		flush_tls(c);
		return;
	}
	struct bu_buf b = {0};
	bu_buf_append(&b, p, n);
	write_buf(c, &b);
}

static void send_line(struct lg_conn *c, const char *line)
{
	send_bytes(c, line, strlen(line));
}

/* ---- TLS ---- */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct lg_conn *c = arg;
	size_t avail = c->cin.len - c->cin.off;

	(void)ssl;
	if (avail == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = avail < (size_t)sz ? avail : (size_t)sz;
	memcpy(buf, c->cin.data + c->cin.off, n);
	bu_buf_consume(&c->cin, n);
	return (int)n;
}

/* Never WANT_WRITE: the write queue takes everything, flushed after each wolfSSL call. */
static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct lg_conn *c = arg;

	(void)ssl;
	bu_buf_append(&c->out, buf, (size_t)sz);
	return sz;
}

static void tls_report(struct lg_conn *c, int err)
{
	struct lg *lg = c->lg;
	char msg[WOLFSSL_MAX_ERROR_SZ];

	if (lg->error_reports++ < 5)
		fprintf(stderr, "livery-loadgen: TLS handshake with %s failed: %d %s\n", lg->o.sni[c->sni],
		        err, wolfSSL_ERR_error_string((unsigned long)err, msg));
}

static void start_tls(struct lg_conn *c)
{
	struct lg *lg = c->lg;
	const char *name = lg->o.sni[c->sni];

	c->ssl = wolfSSL_new(lg->ctx);
	if (!c->ssl)
		return conn_fail(c, "tls");
	wolfSSL_SSLSetIORecv(c->ssl, io_recv);
	wolfSSL_SSLSetIOSend(c->ssl, io_send);
	wolfSSL_SetIOReadCtx(c->ssl, c);
	wolfSSL_SetIOWriteCtx(c->ssl, c);
	wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)strlen(name));
	wolfSSL_check_domain_name(c->ssl, lg->o.verify_name ? lg->o.verify_name : name);
	if (strcmp(lg->o.groups, "x25519") == 0)
		wolfSSL_UseKeyShare(c->ssl, WOLFSSL_ECC_X25519);
	else if (strcmp(lg->o.groups, "p256") == 0)
		wolfSSL_UseKeyShare(c->ssl, WOLFSSL_ECC_SECP256R1);
	if (lg->o.resume && lg->sessions[c->sni])
		wolfSSL_set_session(c->ssl, lg->sessions[c->sni]);
	c->t_tls0 = bu_now();
	c->ehlo_pipelining = false; /* only what the server offers inside TLS counts */
	enter_state(c, S_TLS);
	handle_input(c); /* sends the ClientHello */
}

static void tls_done(struct lg_conn *c)
{
	struct lg *lg = c->lg;

	c->tls_up = true;
	bu_samples_add(&lg->tls_ms, (bu_now() - c->t_tls0) * 1e3);
	if (wolfSSL_session_reused(c->ssl) == 1)
		lg->resumed++;
	if (lg->o.implicit) {
		enter_state(c, S_BANNER);
	} else {
		enter_state(c, S_EHLO2);
		char line[300];
		snprintf(line, sizeof(line), "EHLO %s\r\n", lg->o.ehlo);
		send_line(c, line);
	}
}

/* Advances the handshake; false when the connection failed. */
static bool tls_step(struct lg_conn *c)
{
	int rc = wolfSSL_connect(c->ssl);

	flush_tls(c);
	if (rc == WOLFSSL_SUCCESS) {
		tls_done(c);
		return !c->closing;
	}
	int err = wolfSSL_get_error(c->ssl, rc);
	if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
		return true;
	tls_report(c, err);
	conn_fail(c, "tls");
	return false;
}

/* Decrypts everything available into lin; false when the connection failed. */
static bool tls_read_all(struct lg_conn *c)
{
	char buf[16384];

	for (;;) {
		int n = wolfSSL_read(c->ssl, buf, sizeof(buf));
		if (n > 0) {
			bu_buf_append(&c->lin, buf, (size_t)n);
			continue;
		}
		flush_tls(c);
		int err = wolfSSL_get_error(c->ssl, n);
		if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
			return true;
		if (err == WOLFSSL_ERROR_ZERO_RETURN) {
			c->eof = true;
			return true;
		}
		conn_fail_state(c, "tls-read");
		return false;
	}
}

/* ---- SMTP ---- */

static void base64(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < n ? in[i + 2] : 0);
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? a[v & 63] : '=';
	}
	out[o] = '\0';
}

void lg_auth_line(struct lg *lg)
{
	unsigned char plain[300];
	char b64[420];
	size_t ul = strlen(lg->o.user), pl = strlen(lg->o.password);

	if (ul + pl + 2 > sizeof(plain))
		bu_die("user name and password too long");
	plain[0] = '\0';
	memcpy(plain + 1, lg->o.user, ul);
	plain[1 + ul] = '\0';
	memcpy(plain + 2 + ul, lg->o.password, pl);
	base64(plain, ul + pl + 2, b64);
	snprintf(lg->auth_line, sizeof(lg->auth_line), "AUTH PLAIN %s\r\n", b64);
}

static void start_message(struct lg_conn *c)
{
	enter_state(c, S_MAIL);
	if (c->pipelining) {
		c->replies_left = 3;
		send_line(c, "MAIL FROM:<loadgen@bench.test>\r\nRCPT TO:<sink@bench.test>\r\nDATA\r\n");
	} else {
		c->replies_left = 1;
		send_line(c, "MAIL FROM:<loadgen@bench.test>\r\n");
	}
}

static void session_ok(struct lg_conn *c)
{
	struct lg *lg = c->lg;

	lg->ok++;
	bu_samples_add(&lg->session_ms, (bu_now() - c->t0) * 1e3);
	enter_state(c, S_DONE);
	conn_close(c);
}

static void keep_session(struct lg_conn *c)
{
	struct lg *lg = c->lg;

	if (!lg->o.resume || !c->ssl)
		return;
	WOLFSSL_SESSION *s = wolfSSL_get1_session(c->ssl);
	if (!s)
		return;
	wolfSSL_SESSION_free(lg->sessions[c->sni]);
	lg->sessions[c->sni] = s;
}

static void after_auth(struct lg_conn *c)
{
	keep_session(c);
	if (c->lg->o.hold) {
		enter_state(c, S_IDLE);
		lg_session_held(c->lg);
		if (c->lg->stopping) /* told to stop while this session was still starting */
			lg_conn_release(c);
	} else {
		start_message(c);
	}
}

static void after_dot(struct lg_conn *c)
{
	c->lg->messages++;
	if (++c->msgs_done < c->lg->o.messages)
		return start_message(c);
	enter_state(c, S_QUIT);
	send_line(c, "QUIT\r\n");
}

/* A reply to MAIL, RCPT or DATA (pipelined or one at a time). */
static void on_txn_reply(struct lg_conn *c, int code)
{
	static const char rcpt[] = "RCPT TO:<sink@bench.test>\r\n", data[] = "DATA\r\n";

	if (c->state == S_DATA || (c->state == S_MAIL && c->pipelining && c->replies_left == 1)) {
		if (code != 354)
			return conn_fail_state(c, "smtp-code");
		enter_state(c, S_DOT);
		send_bytes(c, c->lg->msg, c->lg->msglen);
		return;
	}
	if (code != 250)
		return conn_fail_state(c, "smtp-code");
	if (c->pipelining) {
		c->replies_left--;
		arm_timer(c);
	} else if (c->state == S_MAIL) {
		enter_state(c, S_RCPT);
		send_line(c, rcpt);
	} else {
		enter_state(c, S_DATA);
		send_line(c, data);
	}
}

static void fail_code(struct lg_conn *c, int code)
{
	char kind[48];

	snprintf(kind, sizeof(kind), "smtp %d %s", code, state_names[c->state]);
	conn_fail(c, kind);
}

static void on_reply(struct lg_conn *c, int code)
{
	char line[300];
	int want[] = {[S_BANNER] = 220, [S_EHLO1] = 250, [S_STARTTLS] = 220, [S_EHLO2] = 250,
	              [S_AUTH] = 235,   [S_DOT] = 250,   [S_QUIT] = 221};

	switch (c->state) {
	case S_BANNER:
	case S_EHLO1:
	case S_STARTTLS:
	case S_EHLO2:
	case S_AUTH:
	case S_DOT:
	case S_QUIT:
		if (code != want[c->state])
			return fail_code(c, code);
		break;
	case S_MAIL:
	case S_RCPT:
	case S_DATA:
		if (code != 250 && code != 354)
			return fail_code(c, code);
		return on_txn_reply(c, code);
	default:
		return fail_code(c, code);
	}
	switch (c->state) {
	case S_BANNER:
		snprintf(line, sizeof(line), "EHLO %s\r\n", c->lg->o.ehlo);
		enter_state(c, c->tls_up ? S_EHLO2 : S_EHLO1);
		send_line(c, line);
		break;
	case S_EHLO1:
		enter_state(c, S_STARTTLS);
		send_line(c, "STARTTLS\r\n");
		break;
	case S_STARTTLS:
		/* Anything after the 220 arrived in plaintext (CVE-2011-0411): a broken server. */
		if (c->lin.len > c->lin.off)
			return conn_fail_state(c, "starttls-injection");
		start_tls(c);
		break;
	case S_EHLO2:
		c->pipelining = c->ehlo_pipelining;
		enter_state(c, S_AUTH);
		send_line(c, c->lg->auth_line);
		break;
	case S_AUTH:
		after_auth(c);
		break;
	case S_DOT:
		after_dot(c);
		break;
	case S_QUIT:
		session_ok(c);
		break;
	default:
		break;
	}
}

/* Parses complete reply lines out of lin; a final line ("ddd " or "ddd") completes a reply. */
static void parse_replies(struct lg_conn *c)
{
	while (!c->closing && c->state != S_TLS) {
		char *p = c->lin.data + c->lin.off;
		size_t avail = c->lin.len - c->lin.off;
		char *nl = avail ? memchr(p, '\n', avail) : NULL;
		if (!nl) {
			if (avail > 4096)
				conn_fail_state(c, "reply-too-long");
			return;
		}
		size_t n = (size_t)(nl - p) + 1;
		if (n < 4 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
			return conn_fail_state(c, "bad-reply");
		bool last = p[3] != '-';
		int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		if ((c->state == S_EHLO1 || c->state == S_EHLO2) && n >= 14 &&
		    strncasecmp(p + 4, "PIPELINING", 10) == 0)
			c->ehlo_pipelining = true;
		if (!c->banner_seen) {
			c->banner_seen = true;
			bu_samples_add(&c->lg->banner_ms, (bu_now() - c->t0) * 1e3);
		}
		bu_buf_consume(&c->lin, n);
		if (last)
			on_reply(c, code);
	}
}

static void handle_input(struct lg_conn *c)
{
	if (c->state == S_TLS && !tls_step(c))
		return;
	if (c->tls_up && !tls_read_all(c))
		return;
	parse_replies(c);
	if (c->eof && !c->closing)
		return conn_fail_state(c, "closed");
	/* A TLS handshake started by a reply may already have its first answer buffered. */
	if (!c->closing && c->state == S_TLS && c->cin.len > c->cin.off)
		handle_input(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct lg_conn *c = s->data;

	if (c->closing)
		return;
	if (n < 0)
		return conn_fail_state(c, "closed");
	if (n == 0)
		return;
	if (c->ssl)
		bu_buf_append(&c->cin, buf->base, (size_t)n);
	else
		bu_buf_append(&c->lin, buf->base, (size_t)n);
	handle_input(c);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct lg_conn *c = req->handle->data;

	free(req);
	if (c->closing)
		return;
	if (status < 0) {
		if (c->lg->error_reports++ < 5)
			fprintf(stderr, "livery-loadgen: connect: %s\n", uv_strerror(status));
		return conn_fail(c, "connect");
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (c->lg->o.implicit)
		start_tls(c);
	else
		enter_state(c, S_BANNER);
}

void lg_conn_start(struct lg *lg)
{
	struct lg_conn *c = bu_xcalloc(1, sizeof(*c));
	struct sockaddr_in sa;

	c->lg = lg;
	c->sni = lg->o.nsni > 1 ? (unsigned)(random() % lg->o.nsni) : 0;
	c->t0 = bu_now();
	uv_tcp_init(lg->loop, &c->tcp);
	uv_timer_init(lg->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->next = lg->live;
	if (lg->live)
		lg->live->prev = c;
	lg->live = c;
	lg->active++;
	lg->started++;
	enter_state(c, S_CONNECTING);
	uv_ip4_addr(lg->o.host, lg->o.port, &sa);
	uv_connect_t *req = bu_xmalloc(sizeof(*req));
	int rc = uv_tcp_connect(req, &c->tcp, (const struct sockaddr *)&sa, on_connect);
	if (rc < 0) {
		free(req);
		if (lg->error_reports++ < 5)
			fprintf(stderr, "livery-loadgen: connect: %s\n", uv_strerror(rc));
		conn_fail(c, "connect");
	}
}

void lg_conn_release(struct lg_conn *c)
{
	if (c->state != S_IDLE || c->closing)
		return;
	c->lg->held--;
	enter_state(c, S_QUIT);
	send_line(c, "QUIT\r\n");
}

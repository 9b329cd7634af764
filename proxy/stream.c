/* stream: the one connection abstraction both legs use (TCP plus optional TLS, byte events, one write queue,
 * a timer, backpressure, close); no SMTP semantics. */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "log.h"
#include "util.h"

/* A ClientHello larger than this is not one we want to buffer before choosing a context:
 * the largest hello tls_peek_sni reads, fragmented over several records. */
#define PEEK_MAX TLS_PEEK_MAX
/* How long a closing stream may wait for its queued writes before it is cut. */
#define CLOSE_FLUSH_MS 5000
/* Writes are gathered until the loop is about to poll, so that what one event produces (the
 * replies to a pipelined group, a relayed command flight) leaves as one TLS record and one
 * system call; past this much (a record's worth) they are flushed at once. */
#define COALESCE_MAX 16384

enum tls_state { TS_NONE, TS_PEEK, TS_HANDSHAKE, TS_UP, TS_FAILED };

struct stream {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_prepare_t flusher; /* active while writes wait in pout/cout */
	/* Active while an event waits to be reported: the owner's callbacks never run inside
	 * the call (stream_write, stream_connect, stream_start_tls_client) that caused them,
	 * so a caller can never find its stream or itself torn down under it. */
	uv_idle_t notifier;
	uv_connect_t connect_req;
	const struct stream_ops *ops;
	void *owner;
	int pending_closes;
	bool closing, close_when_flushed, reading, paused, errored, above_high;
	/* Events waiting for the notifier, reported in this order. */
	bool connect_due, handshake_due, error_due, unread_due;
	int connect_status, error_status;
	enum tls_state tls_state;
	uint64_t tls_started; /* uv_hrtime() when a server handshake began, for metrics */
	struct tls_conn *tls;
	struct iobuf cin;  /* ciphertext received, not yet consumed by wolfSSL */
	struct iobuf cout; /* bytes to send (ciphertext once TLS is up), in wire order */
	struct iobuf pout; /* TLS up: plaintext written and not yet sealed into cout */
	struct iobuf unread; /* stream_unread's bytes, then any read after them, until the notifier */
	size_t queued;     /* bytes handed to uv_write and not yet completed */
	uint64_t bytes_in, bytes_out; /* application bytes delivered to the owner / written by it */
	char sni[256];
};

struct write_req {
	uv_write_t req;
	struct stream *s;
	size_t len;
	char data[];
};

static _Thread_local char read_buf[65536];

static void tls_pump(struct stream *s);
static void do_close(struct stream *s, bool reset);
static void on_notify(uv_idle_t *h);

struct stream *stream_new(uv_loop_t *loop, const struct stream_ops *ops, void *owner)
{
	struct stream *s = xcalloc(1, sizeof(*s));

	s->ops = ops;
	s->owner = owner;
	uv_tcp_init(loop, &s->tcp);
	uv_timer_init(loop, &s->timer);
	uv_prepare_init(loop, &s->flusher);
	uv_idle_init(loop, &s->notifier);
	iobuf_init(&s->cin);
	iobuf_init(&s->cout);
	iobuf_init(&s->pout);
	iobuf_init(&s->unread);
	return s;
}

/* An idle handle (unlike the prepare handle) keeps the loop from blocking in poll, so the
 * event is reported on the next loop turn even when raised from another handle's callback. */
static void notify_later(struct stream *s)
{
	uv_idle_start(&s->notifier, on_notify);
}

/* The first failure ends the stream's I/O at once; the owner hears of it on the next loop
 * turn, never from inside the call that failed (a write that fails with EPIPE must not tear
 * the relay leg down under the session that is still using it). */
static void emit_error(struct stream *s, int status)
{
	if (s->closing || s->errored)
		return;
	s->errored = true;
	s->error_status = status;
	s->error_due = true;
	uv_read_stop((uv_stream_t *)&s->tcp);
	s->reading = false;
	iobuf_clear(&s->pout);
	uv_prepare_stop(&s->flusher);
	notify_later(s);
}

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = container_of(req, struct write_req, req);
	struct stream *s = w->s;

	s->queued -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED)
		emit_error(s, status);
	if (s->closing) {
		if (s->close_when_flushed && s->queued == 0)
			do_close(s, false);
		return;
	}
	if (s->above_high && s->queued < STREAM_WRITE_LOW && !s->errored) {
		s->above_high = false;
		if (s->ops->on_drain)
			s->ops->on_drain(s->owner);
	}
}

/* Hands everything in cout to libuv as one write; the request owns its copy until on_write. */
static void flush_out(struct stream *s)
{
	size_t n = iobuf_avail(&s->cout);

	if (n == 0 || uv_is_closing((uv_handle_t *)&s->tcp))
		return;
	/* Most writes complete at once: uv_try_write spares the request, the copy, and the
	 * epoll_ctl that libuv 1.44 makes for every uv_write. It declines (UV_EAGAIN) while
	 * earlier writes are queued, so the order of bytes is kept. */
	uv_buf_t now = uv_buf_init((char *)iobuf_peek(&s->cout), (unsigned)n);
	int done = uv_try_write((uv_stream_t *)&s->tcp, &now, 1);
	if (done > 0) {
		iobuf_consume(&s->cout, (size_t)done);
		n -= (size_t)done;
		if (n == 0)
			return;
	} else if (done < 0 && done != UV_EAGAIN) {
		iobuf_clear(&s->cout);
		emit_error(s, done);
		return;
	}
	struct write_req *w = xmalloc(sizeof(*w) + n);
	w->s = s;
	w->len = n;
	memcpy(w->data, iobuf_peek(&s->cout), n);
	iobuf_clear(&s->cout);
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)n);
	int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, on_write);
	if (rc < 0) {
		free(w);
		emit_error(s, rc);
		return;
	}
	s->queued += n;
	if (s->queued > STREAM_WRITE_HIGH)
		s->above_high = true;
}

static void tls_send(void *arg, const char *buf, size_t len)
{
	struct stream *s = arg;
	iobuf_append(&s->cout, buf, len);
}

/* Encrypts the gathered plaintext as one record (or a few, past 16 KiB) into cout. Records
 * wolfSSL makes itself go to cout as they are made, so cout always holds them in key order. */
static bool seal(struct stream *s)
{
	size_t n = iobuf_avail(&s->pout);

	if (n == 0)
		return true;
	enum tls_status st = tls_conn_write(s->tls, iobuf_peek(&s->pout), n);
	iobuf_clear(&s->pout);
	if (st == TLS_OK)
		return true;
	flush_out(s);
	emit_error(s, UV_EPROTO);
	return false;
}

static void flush_now(struct stream *s)
{
	uv_prepare_stop(&s->flusher);
	if (seal(s))
		flush_out(s);
}

static void on_prepare(uv_prepare_t *p)
{
	/* A write that fails here is reported through the notifier, like any other. */
	flush_now(container_of(p, struct stream, flusher));
}

void stream_write(struct stream *s, const char *buf, size_t len)
{
	if (s->closing || s->errored || len == 0)
		return;
	struct iobuf *b = s->tls_state == TS_UP ? &s->pout : &s->cout;
	s->bytes_out += len;
	iobuf_append(b, buf, len);
	if (iobuf_avail(b) >= COALESCE_MAX)
		flush_now(s);
	else
		uv_prepare_start(&s->flusher, on_prepare);
}

bool stream_write_blocked(const struct stream *s)
{
	return s->above_high;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
	struct stream *s = container_of((uv_tcp_t *)h, struct stream, tcp);

	if (s->closing || nread == 0)
		return;
	if (nread < 0) {
		if (s->tls)
			tls_conn_set_eof(s->tls);
		if (s->tls_state == TS_HANDSHAKE)
			tls_pump(s);
		emit_error(s, (int)nread);
		return;
	}
	if (s->unread_due) { /* bytes handed back go first: these wait behind them */
		iobuf_append(&s->unread, buf->base, (size_t)nread);
		return;
	}
	if (s->tls_state == TS_NONE) {
		s->bytes_in += (size_t)nread;
		s->ops->on_data(s->owner, buf->base, (size_t)nread);
		return;
	}
	iobuf_append(&s->cin, buf->base, (size_t)nread);
	tls_pump(s);
}

static void start_reading(struct stream *s)
{
	if (s->reading || s->paused || s->closing || s->errored)
		return;
	if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
		s->reading = true;
}

void stream_pause(struct stream *s)
{
	s->paused = true;
	if (s->reading)
		uv_read_stop((uv_stream_t *)&s->tcp);
	s->reading = false;
}

void stream_resume(struct stream *s)
{
	s->paused = false;
	start_reading(s);
}

int stream_accept(struct stream *s, uv_stream_t *server)
{
	int rc = uv_accept(server, (uv_stream_t *)&s->tcp);

	if (rc == 0) {
		uv_tcp_nodelay(&s->tcp, 1);
		start_reading(s);
	}
	return rc;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct stream *s = container_of(req, struct stream, connect_req);

	if (s->closing)
		return;
	if (status == 0) {
		uv_tcp_nodelay(&s->tcp, 1);
		start_reading(s);
	}
	s->ops->on_connect(s->owner, status);
}

void stream_connect(struct stream *s, const struct sockaddr *addr)
{
	int rc = uv_tcp_connect(&s->connect_req, &s->tcp, addr, on_connect);

	if (rc < 0) { /* reported like any other connect failure, on the next loop turn */
		s->connect_status = rc;
		s->connect_due = true;
		notify_later(s);
	}
}

static void tls_failed(struct stream *s)
{
	s->tls_state = TS_FAILED;
	flush_out(s); /* the alert, if wolfSSL produced one */
	uv_read_stop((uv_stream_t *)&s->tcp);
	s->reading = false;
	s->ops->on_tls(s->owner, -1);
}

/* Waits for the whole ClientHello (its records are left in cin for wolfSSL to read as they
 * came), then lets the owner pick a context by SNI. */
static bool tls_peek(struct stream *s)
{
	enum tls_peek r = tls_peek_sni(iobuf_peek(&s->cin), iobuf_avail(&s->cin), s->sni, sizeof(s->sni));

	if (r == TLS_PEEK_NEED_MORE && iobuf_avail(&s->cin) < PEEK_MAX)
		return false;
	tls_ctx *ctx = r == TLS_PEEK_DONE ? s->ops->select_ctx(s->owner, s->sni) : NULL;
	if (s->closing)
		return false;
	if (ctx && (s->tls = tls_conn_new(ctx, &s->cin, tls_send, s)) != NULL)
		tls_conn_set_server_name(s->tls, s->sni);
	if (!s->tls) {
		tls_failed(s);
		return false;
	}
	s->tls_state = TS_HANDSHAKE;
	return true;
}

static bool tls_handshake(struct stream *s)
{
	enum tls_status st = tls_conn_handshake(s->tls);

	/* The flush may fail (the peer reset) and the owner close us through on_error: then
	 * the handshake's outcome is no longer news to anyone. */
	flush_out(s);
	if (s->closing || s->errored || st == TLS_WANT_READ)
		return false;
	if (st != TLS_OK) {
		tls_failed(s);
		return false;
	}
	s->tls_state = TS_UP;
	s->ops->on_tls(s->owner, 0);
	return !s->closing && !s->errored;
}

/* Decrypted data raises no socket event, so read until wolfSSL wants more ciphertext. */
static void tls_read_all(struct stream *s)
{
	char buf[16384];

	while (!s->closing && !s->errored && s->tls_state == TS_UP) {
		size_t n;
		enum tls_status st = tls_conn_read(s->tls, buf, sizeof(buf), &n);
		flush_out(s);
		if (st == TLS_OK) {
			s->bytes_in += n;
			s->ops->on_data(s->owner, buf, n);
		} else if (st == TLS_WANT_READ) {
			return;
		} else {
			emit_error(s, st == TLS_CLOSED ? UV_EOF : UV_EPROTO);
			return;
		}
	}
}

static void tls_pump(struct stream *s)
{
	if (s->tls_state == TS_PEEK && !tls_peek(s))
		return;
	if (s->tls_state == TS_HANDSHAKE && !tls_handshake(s))
		return;
	tls_read_all(s);
}

void stream_start_tls_server(struct stream *s)
{
	s->tls_state = TS_PEEK;
	s->tls_started = uv_hrtime();
	iobuf_clear(&s->cin);
}

int stream_start_tls_client(struct stream *s, tls_ctx *ctx, const char *sni, const char *verify_name,
                            tls_session *resume)
{
	s->tls = tls_conn_new(ctx, &s->cin, tls_send, s);
	if (!s->tls)
		return -1;
	tls_conn_set_client_names(s->tls, sni, verify_name);
	tls_conn_set_session(s->tls, resume);
	iobuf_clear(&s->cin);
	s->tls_state = TS_HANDSHAKE;
	/* The ClientHello goes out from the notifier: a handshake that fails at once is then
	 * reported through on_tls on a later loop turn, like every other outcome. */
	s->handshake_due = true;
	notify_later(s);
	return 0;
}

bool stream_is_tls(const struct stream *s)
{
	return s->tls_state == TS_UP;
}

tls_session *stream_tls_session(const struct stream *s)
{
	return s->tls_state == TS_UP ? tls_conn_get_session(s->tls) : NULL;
}

uint64_t stream_tls_started(const struct stream *s)
{
	return s->tls_started;
}

bool stream_tls_resumed(const struct stream *s)
{
	return s->tls_state == TS_UP && tls_conn_resumed(s->tls);
}

const char *stream_sni(const struct stream *s)
{
	return s->sni;
}

const char *stream_tls_version(const struct stream *s)
{
	return s->tls_state == TS_UP ? tls_conn_version(s->tls) : "plaintext";
}

const char *stream_tls_cipher(const struct stream *s)
{
	return s->tls_state == TS_UP ? tls_conn_cipher(s->tls) : "none";
}

const char *stream_tls_error(const struct stream *s)
{
	return s->tls ? tls_conn_error(s->tls) : "not a TLS handshake";
}

enum tls_failure stream_tls_failure(const struct stream *s)
{
	return s->tls ? tls_conn_failure(s->tls) : TLS_FAIL_OTHER;
}

uint64_t stream_bytes_in(const struct stream *s)
{
	return s->bytes_in;
}

uint64_t stream_bytes_out(const struct stream *s)
{
	return s->bytes_out;
}

static void on_timer(uv_timer_t *t)
{
	struct stream *s = container_of(t, struct stream, timer);

	if (s->closing) {
		do_close(s, true); /* the flush on close took too long: the peer stopped reading */
		return;
	}
	s->ops->on_timeout(s->owner);
}

void stream_set_timer(struct stream *s, unsigned ms)
{
	if (s->closing)
		return;
	if (ms == 0)
		uv_timer_stop(&s->timer);
	else
		uv_timer_start(&s->timer, on_timer, ms, 0);
}

int stream_peer_port(const struct stream *s)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sslen) != 0)
		return 0;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                      : ((struct sockaddr_in *)&ss)->sin_port);
}

void stream_peer_name(const struct stream *s, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	snprintf(buf, len, "?");
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sslen) != 0)
		return;
	if (ss.ss_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)&ss, buf, len);
	else
		uv_ip4_name((struct sockaddr_in *)&ss, buf, len);
}

void stream_unread(struct stream *s, const char *buf, size_t len)
{
	if (s->closing || s->errored || len == 0)
		return;
	if (s->tls_state == TS_NONE)
		s->bytes_in -= len; /* counted again when delivered again */
	iobuf_append(&s->unread, buf, len);
	s->unread_due = true;
	notify_later(s);
}

void stream_uncount_in(struct stream *s, size_t n)
{
	s->bytes_in -= n < s->bytes_in ? n : s->bytes_in;
}

/* The bytes stream_unread handed back (and any read behind them), as if just read. */
static void deliver_unread(struct stream *s)
{
	struct iobuf b = s->unread;

	s->unread_due = false;
	iobuf_init(&s->unread);
	if (s->tls_state == TS_NONE) {
		s->bytes_in += iobuf_avail(&b);
		s->ops->on_data(s->owner, iobuf_peek(&b), iobuf_avail(&b)); /* may close us */
	} else {
		iobuf_append(&s->cin, iobuf_peek(&b), iobuf_avail(&b));
		tls_pump(s); /* may call the owner, which may close us */
	}
	iobuf_free(&b);
}

static void on_notify(uv_idle_t *h)
{
	struct stream *s = container_of(h, struct stream, notifier);

	uv_idle_stop(h);
	if (s->closing)
		return;
	if (s->connect_due) {
		s->connect_due = false;
		s->ops->on_connect(s->owner, s->connect_status);
		return; /* a failed connect is the stream's last event */
	}
	if (s->handshake_due && !s->errored) {
		s->handshake_due = false;
		tls_pump(s); /* may call the owner, which may close us */
	}
	if (s->unread_due && !s->closing && !s->errored)
		deliver_unread(s);
	if (s->error_due && !s->closing) {
		s->error_due = false;
		s->ops->on_error(s->owner, s->error_status);
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	struct stream *s = h->data;

	if (--s->pending_closes > 0)
		return;
	s->ops->on_close(s->owner);
	tls_conn_free(s->tls);
	iobuf_free(&s->cin);
	iobuf_free(&s->cout);
	iobuf_free(&s->pout);
	iobuf_free(&s->unread);
	free(s);
}

/* reset: the peer gets a RST at once, and what is still unsent is dropped instead of
 * holding the socket (and its kernel buffers) until a peer that stopped reading takes it. */
static void do_close(struct stream *s, bool reset)
{
	if (uv_is_closing((uv_handle_t *)&s->tcp))
		return;
	s->tcp.data = s;
	s->timer.data = s;
	s->flusher.data = s;
	s->notifier.data = s;
	s->pending_closes = 4;
	if (!reset || uv_tcp_close_reset(&s->tcp, on_handle_closed) != 0)
		uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&s->timer, on_handle_closed);
	uv_close((uv_handle_t *)&s->flusher, on_handle_closed);
	uv_close((uv_handle_t *)&s->notifier, on_handle_closed);
}

void stream_close(struct stream *s, bool flush)
{
	if (s->closing)
		return;
	s->closing = true;
	uv_prepare_stop(&s->flusher);
	uv_read_stop((uv_stream_t *)&s->tcp);
	if (flush && !s->errored) {
		/* What was written goes first, then the close_notify. */
		if (s->tls_state == TS_UP && seal(s))
			tls_conn_shutdown(s->tls);
		flush_out(s);
	}
	if (flush && !s->errored && s->queued > 0) {
		s->close_when_flushed = true;
		uv_timer_start(&s->timer, on_timer, CLOSE_FLUSH_MS, 0);
		return;
	}
	do_close(s, s->queued > 0);
}

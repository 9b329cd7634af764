/* stream: the one connection abstraction both legs use (TCP plus optional TLS, byte events, one write queue,
 * a timer, backpressure, close); no SMTP semantics. */
#ifndef LIVERY_STREAM_H
#define LIVERY_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tls.h"

/* Write-queue marks for backpressure: above HIGH the owner should stop feeding this stream
 * (stream_write_blocked), and on_drain fires once it falls below LOW. */
#define STREAM_WRITE_HIGH (256 * 1024)
#define STREAM_WRITE_LOW  (64 * 1024)

struct stream;

/* Callbacks go to the owner, always from a libuv callback: never from inside a stream_*
 * call the owner made (as libuv itself reports errors), so no call here can free the
 * owner or the stream under its caller. After stream_close() only on_close is ever called,
 * and the stream is freed right after on_close returns. After on_error the stream does no
 * more I/O: writes are dropped until the owner closes it. */
struct stream_ops {
	void (*on_connect)(void *owner, int status);
	void (*on_tls)(void *owner, int status); /* 0: handshake done; <0: failed */
	void (*on_data)(void *owner, const char *buf, size_t len);
	void (*on_error)(void *owner, int status); /* UV_EOF, a read/write error, or a TLS error */
	void (*on_timeout)(void *owner);
	void (*on_drain)(void *owner);
	void (*on_close)(void *owner);
	/* Server TLS only: the context for this SNI name ("" when none was sent). */
	tls_ctx *(*select_ctx)(void *owner, const char *sni);
};

struct stream *stream_new(uv_loop_t *loop, const struct stream_ops *ops, void *owner);
/* Accepts a pending connection from server and starts reading. */
int stream_accept(struct stream *s, uv_stream_t *server);
/* Hands back bytes on_data delivered that the owner did not consume (what follows a PROXY
 * header): they are read again before anything received later, on a later loop turn, as
 * TLS input once stream_start_tls_server was called, else through on_data. */
void stream_unread(struct stream *s, const char *buf, size_t len);
/* The first n octets on_data delivered were not the peer's data but a header about it (PROXY
 * protocol): stream_bytes_in no longer counts them. */
void stream_uncount_in(struct stream *s, size_t n);
/* Connects; the outcome, a failure to start included, comes through ops->on_connect. */
void stream_connect(struct stream *s, const struct sockaddr *addr);
void stream_write(struct stream *s, const char *buf, size_t len);
/* True once the write queue went above STREAM_WRITE_HIGH and has not yet drained. */
bool stream_write_blocked(const struct stream *s);
void stream_pause(struct stream *s);
void stream_resume(struct stream *s);
/* Starts a server handshake: the ClientHello's SNI picks the context via ops->select_ctx. */
void stream_start_tls_server(struct stream *s);
/* Starts a client handshake; verify_name NULL skips the name check (and ctx may not verify).
 * resume, when not NULL, is a session offered for resumption. */
int stream_start_tls_client(struct stream *s, tls_ctx *ctx, const char *sni, const char *verify_name,
                            tls_session *resume);
/* Client side, once TLS is up: a new reference to the session, and whether it was resumed. */
tls_session *stream_tls_session(const struct stream *s);
bool stream_tls_resumed(const struct stream *s);
/* uv_hrtime() when the server handshake began (stream_start_tls_server), 0 before. */
uint64_t stream_tls_started(const struct stream *s);
bool stream_is_tls(const struct stream *s);
/* The SNI a TLS client sent us ("" if none). */
const char *stream_sni(const struct stream *s);
/* "TLSv1.3 TLS13-CHACHA20-POLY1305-SHA256" style description, or "plaintext". */
const char *stream_tls_version(const struct stream *s);
const char *stream_tls_cipher(const struct stream *s);
const char *stream_tls_error(const struct stream *s);
enum tls_failure stream_tls_failure(const struct stream *s);
/* Application bytes (plaintext) received and written so far. */
uint64_t stream_bytes_in(const struct stream *s);
uint64_t stream_bytes_out(const struct stream *s);
/* (Re)arms the one timer: ops->on_timeout after ms; 0 disarms it. */
void stream_set_timer(struct stream *s, unsigned ms);
/* Peer address as text into buf. */
void stream_peer_name(const struct stream *s, char *buf, size_t len);
int stream_peer_port(const struct stream *s);
/* Closes; with flush, queued writes (and a TLS close_notify) go out first (for at most 5 s).
 * Without flush, writes still queued are dropped and the peer gets a reset. */
void stream_close(struct stream *s, bool flush);

#endif

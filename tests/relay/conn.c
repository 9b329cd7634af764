/* conn.c: one relay connection's byte I/O (plain or TLS), input buffering, recording and closing. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "relay.h"

struct conn *conn_new(int fd, unsigned n)
{
    struct conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->n = n;
    c->raw_fd = record_open_raw(n);
    return c;
}

void conn_free(struct conn *c)
{
    if (c->ssl)
        wolfSSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    if (c->raw_fd >= 0)
        close(c->raw_fd);
    buf_free(&c->env);
    buf_free(&c->payload);
    free(c);
}

/* Reads one batch of bytes from the peer into p; returns 0 on EOF or error. */
static size_t conn_recv(struct conn *c, char *p, size_t cap)
{
    if (c->ssl) {
        int r = wolfSSL_read(c->ssl, p, (int)cap);
        return r > 0 ? (size_t)r : 0;
    }
    for (;;) {
        ssize_t r = recv(c->fd, p, cap, 0);
        if (r < 0 && errno == EINTR)
            continue;
        return r > 0 ? (size_t)r : 0;
    }
}

/* --idle-close: nothing arrived for that long (and nothing decrypted is waiting). */
static bool idle_too_long(struct conn *c)
{
    if (opts.idle_close <= 0 || (c->ssl && wolfSSL_pending(c->ssl) > 0))
        return false;
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
    return poll(&pfd, 1, opts.idle_close * 1000) == 0;
}

size_t conn_fill(struct conn *c)
{
    if (c->dead)
        return 0;
    if (c->off > 0) {
        memmove(c->in, c->in + c->off, c->len);
        c->off = 0;
    }
    if (c->len == sizeof c->in)
        return 0;
    if (idle_too_long(c)) {
        record_event("conn %u idle-close", c->n);
        c->dead = true;
        return 0;
    }
    size_t r = conn_recv(c, c->in + c->len, sizeof c->in - c->len);
    if (r == 0) {
        c->dead = true;
        return 0;
    }
    record_raw(c->raw_fd, c->in + c->len, r);
    c->len += r;
    return r;
}

size_t conn_chunk(struct conn *c, size_t max)
{
    for (;;) {
        const char *nl = memchr(c->in + c->off, '\n', c->len);
        if (nl)
            return (size_t)(nl - (c->in + c->off)) + 1;
        if (c->len >= max || c->len == sizeof c->in)
            return c->len;
        if (!conn_fill(c))
            return 0;
    }
}

void conn_consume(struct conn *c, size_t n)
{
    c->off += n;
    c->len -= n;
    if (c->len == 0)
        c->off = 0;
}

enum line_status conn_read_line(struct conn *c, char *out)
{
    size_t n = conn_chunk(c, IN_CAP);
    if (n == 0)
        return LINE_EOF;
    const char *p = c->in + c->off;
    if (p[n - 1] != '\n') {
        /* Longer than the buffer: drop the rest of the line too. */
        do {
            conn_consume(c, n);
            n = conn_chunk(c, IN_CAP);
        } while (n > 0 && c->in[c->off + n - 1] != '\n');
        if (n == 0)
            return LINE_EOF;
        conn_consume(c, n);
        return LINE_LONG;
    }
    size_t len = n - 1;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    memcpy(out, p, len);
    out[len] = '\0';
    conn_consume(c, n);
    return LINE_OK;
}

bool conn_write(struct conn *c, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0 && !c->was_reset) {
        ssize_t w;
        if (c->ssl)
            w = wolfSSL_write(c->ssl, s, (int)n);
        else
            w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && !c->ssl && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        s += w;
        n -= (size_t)w;
    }
    if (n > 0)
        c->dead = true;
    return n == 0;
}

/* "conn <n> tls-info <version> sni=<name>": the protocol version and the SNI host name the
 * client sent ("-" when it sent none; kept by the servername callback set in relay.c). */
static void record_tls_info(struct conn *c)
{
    void *name = NULL;
    unsigned short len = wolfSSL_SNI_GetRequest(c->ssl, WOLFSSL_SNI_HOST_NAME, &name);
    record_event("conn %u tls-info %s sni=%.*s", c->n, wolfSSL_get_version(c->ssl),
                 len > 0 ? (int)len : 1, len > 0 ? (const char *)name : "-");
}

unsigned long tls_handshakes, tls_resumed;

bool conn_tls_accept(struct conn *c)
{
    c->ssl = wolfSSL_new(tls_ctx);
    if (!c->ssl || wolfSSL_set_fd(c->ssl, c->fd) != WOLFSSL_SUCCESS) {
        warnx_relay("conn %u: cannot create the TLS session", c->n);
        c->dead = true;
        return false;
    }
    int r = wolfSSL_accept(c->ssl);
    if (r != WOLFSSL_SUCCESS) {
        char msg[WOLFSSL_MAX_ERROR_SZ];
        int err = wolfSSL_get_error(c->ssl, r);
        warnx_relay("conn %u: TLS handshake failed: %d %s", c->n, err,
                    wolfSSL_ERR_error_string((unsigned long)err, msg));
        wolfSSL_free(c->ssl);
        c->ssl = NULL;
        c->dead = true;
        return false;
    }
    record_event("conn %u tls", c->n);
    record_tls_info(c);
    __atomic_add_fetch(&tls_handshakes, 1, __ATOMIC_RELAXED);
    if (wolfSSL_session_reused(c->ssl))
        __atomic_add_fetch(&tls_resumed, 1, __ATOMIC_RELAXED);
    return true;
}

void conn_sink(struct conn *c)
{
    while (conn_fill(c) > 0)
        conn_consume(c, c->len);
}

/* Neither reads nor writes until the peer has closed (or reset) the connection, so what it
 * sends piles up in the socket buffers and then in the peer's. A FIN queued behind data we
 * never read cannot arrive: a peer that closes with unsent data is only seen once it resets. */
void conn_wait_peer_close(struct conn *c)
{
    struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };
    for (;;) {
        int r = poll(&p, 1, -1);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
            break;
    }
    c->dead = true;
}

void conn_reset(struct conn *c)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    c->was_reset = true;
}

void conn_cut(struct conn *c, bool reset)
{
    if (c->was_reset)
        return;
    if (reset) {
        conn_reset(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    c->was_reset = true; /* nothing more to close */
}

/* Half-closes and drains briefly, so that replies still in flight are not lost to an RST. */
void conn_close(struct conn *c)
{
    if (c->was_reset)
        return;
    if (c->ssl)
        wolfSSL_shutdown(c->ssl);
    shutdown(c->fd, SHUT_WR);
    struct timeval tv = { .tv_sec = 2, .tv_usec = 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char scratch[4096];
    while (recv(c->fd, scratch, sizeof scratch, 0) > 0)
        ;
}

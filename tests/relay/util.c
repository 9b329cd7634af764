/* util.c: small helpers of livery-test-relay (growable buffers, base64, allocation, warnings). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (!q) {
        warnx_relay("out of memory");
        abort();
    }
    return q;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        warnx_relay("out of memory");
        abort();
    }
    return p;
}

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *data, size_t n)
{
    buf_reserve(b, n + 1);
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void buf_keep_tail(struct buf *b, size_t n)
{
    if (b->len <= n)
        return;
    memmove(b->p, b->p + b->len - n, n);
    b->len = n;
    b->p[n] = '\0';
}

bool buf_ends_crlf(const struct buf *b)
{
    return b->len >= 2 && b->p[b->len - 2] == '\r' && b->p[b->len - 1] == '\n';
}

static int b64_value(char ch)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = ch ? strchr(alphabet, ch) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

long base64_decode(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in), len = 0;
    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int pad = (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=');
        if (pad && i + 4 != n)
            return -1;
        unsigned v = 0;
        for (int k = 0; k < 4; k++) {
            int d = (k >= 4 - pad) ? 0 : b64_value(in[i + (size_t)k]);
            if (d < 0)
                return -1;
            v = v << 6 | (unsigned)d;
        }
        for (int k = 0; k < 3 - pad; k++) {
            if (len + 1 >= cap)
                return -1;
            out[len++] = (char)(v >> (16 - 8 * k) & 0xff);
        }
    }
    out[len] = '\0';
    return (long)len;
}

void warnx_relay(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "livery-test-relay: %s\n", msg);
}

/* tls_peek: the pure ClientHello reader that finds the SNI host name before a TLS context is chosen
 * (reassembling a hello fragmented over several records); no I/O, no wolfSSL. */
#ifndef LIVERY_TLS_PEEK_H
#define LIVERY_TLS_PEEK_H

#include <stddef.h>

/* The largest ClientHello body read (RFC 8446 5.1 allows a handshake message to span
 * records; one record's worth of hello is far beyond what any client sends). */
#define TLS_PEEK_HELLO_MAX 16384
/* The most bytes buffered before choosing: a hello of TLS_PEEK_HELLO_MAX with its header,
 * fragmented over up to 64 records. */
#define TLS_PEEK_MAX (TLS_PEEK_HELLO_MAX + 4 + 64 * 5)

enum tls_peek { TLS_PEEK_NEED_MORE, TLS_PEEK_DONE, TLS_PEEK_NOT_TLS, TLS_PEEK_TOO_BIG };

/* Reads the ClientHello at the start of buf (len bytes of TLS records, left untouched). On
 * DONE, sni holds the host_name the client sent, or "" when it sent none, the hello is
 * malformed (wolfSSL will say so), or the name is not a valid host name in the sense of
 * RFC 6066 3 (ASCII letters, digits, '-' and '_' in dot-separated labels, no trailing dot,
 * no NUL): the default certificate is then the answer. NEED_MORE: the hello is not
 * complete yet; NOT_TLS: the first byte is not a handshake record; TOO_BIG: the hello is
 * longer than TLS_PEEK_HELLO_MAX (known from its header), not worth a handshake. */
enum tls_peek tls_peek_sni(const char *buf, size_t len, char *sni, size_t snicap);

#endif

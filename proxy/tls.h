/* tls: wolfSSL glue (contexts, memory-buffer I/O callbacks, a step API returning OK/WANT_READ/CLOSED/ERR);
 * knows nothing of libuv or SMTP. */
#ifndef LIVERY_TLS_H
#define LIVERY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "iobuf.h"
#include "ticketkeys.h"
#include "tls_peek.h" /* tls_peek_sni, which picks the context a server connection gets */

typedef struct WOLFSSL_CTX tls_ctx;
typedef struct WOLFSSL_SESSION tls_session;
struct tls_conn;
struct tls_session_cache;

enum tls_status { TLS_OK, TLS_WANT_READ, TLS_CLOSED, TLS_ERR };

/* Receives ciphertext that wolfSSL wants sent; must accept all of it. */
typedef void (*tls_send_fn)(void *arg, const char *buf, size_t len);

void tls_global_init(void);
/* The cipher suites livery offers and accepts, in its order of preference. */
const char *tls_cipher_list(void);
void tls_global_cleanup(void);
/* Frees what wolfSSL keeps per thread; each worker thread calls it before it ends. */
void tls_thread_cleanup(void);

/* A server context for one certificate chain + key, proven to match by a handshake in
 * memory. NULL with a message in err on failure; *key_at_fault then says whether the key
 * (rather than the certificate) is what failed. */
tls_ctx *tls_server_ctx_new(const char *cert, const char *key, bool *key_at_fault, char *err, size_t errlen);
/* A client context: verify=true checks the chain against ca_file (required then). */
tls_ctx *tls_client_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen);
/* Session tickets of the server context ctx: derived from keys (ticket_key_file's, the first
 * encrypting), instead of the process's own daily keys. Set before ctx serves anyone. */
void tls_ctx_set_ticket_keys(tls_ctx *ctx, const struct ticketkeys *keys);
/* The process's own ticket keys (for contexts without a key file), one per UTC day, shared
 * with the workers forked after tls_global_init: makes the keys of yesterday, today and
 * tomorrow that are missing. tls_global_init calls it; the master then at least hourly. */
void tls_tickets_rotate(long long now);
void tls_ctx_free(tls_ctx *ctx);

/* What a certificate (the first in a PEM file) says about itself. */
struct tls_cert_info {
	char **names; /* normalised DNS names it serves: its SAN dNSNames, else its CN */
	size_t nnames;
	bool from_cn; /* names came from the CN because it has no SAN dNSName (RFC 9525 6.4.4) */
	bool rsa;     /* an RSA key (else ECDSA) */
	long long not_before, not_after; /* Unix times */
	char subject[256];
};
/* What the certificate a server context presents says. False when it has none. */
bool tls_server_ctx_cert_info(tls_ctx *ctx, struct tls_cert_info *ci);
void tls_cert_info_free(struct tls_cert_info *ci);
/* Checks a PEM chain's order: each certificate's issuer is the next one's subject. Returns the
 * number of certificates, or -1 with the first fault in err. */
int tls_chain_check(const char *path, char *err, size_t errlen);

/* The connection reads ciphertext from in (owned by the caller) and sends through send. */
struct tls_conn *tls_conn_new(tls_ctx *ctx, struct iobuf *in, tls_send_fn send, void *arg);
void tls_conn_free(struct tls_conn *c);
/* Client side: the SNI to send, and the name the certificate must match (NULL: none). */
void tls_conn_set_client_names(struct tls_conn *c, const char *sni, const char *verify_name);
/* Server side, before the handshake: the host name the client asked for by SNI ("" for
 * none). A session is only resumed under the context and name it was made for (RFC 6066 3). */
void tls_conn_set_server_name(struct tls_conn *c, const char *name);
/* Tells the connection the peer closed its side: reads then fail instead of wanting more. */
void tls_conn_set_eof(struct tls_conn *c);
enum tls_status tls_conn_handshake(struct tls_conn *c);
/* Reads decrypted bytes into buf; TLS_OK with *n > 0, or a status when nothing is available. */
enum tls_status tls_conn_read(struct tls_conn *c, char *buf, size_t cap, size_t *n);
enum tls_status tls_conn_write(struct tls_conn *c, const char *buf, size_t len);
/* Sends close_notify (best effort). */
void tls_conn_shutdown(struct tls_conn *c);
/* A human-readable reason for the last failure. */
const char *tls_conn_error(struct tls_conn *c);
/* Why a client handshake failed, in RFC 8460's terms where the certificate was the cause. */
enum tls_failure { TLS_FAIL_HOST_MISMATCH, TLS_FAIL_EXPIRED, TLS_FAIL_NOT_TRUSTED, TLS_FAIL_OTHER };
enum tls_failure tls_conn_failure(const struct tls_conn *c);
const char *tls_conn_version(struct tls_conn *c);
const char *tls_conn_cipher(struct tls_conn *c);

/* Client side: offer this session for resumption (before the handshake). */
void tls_conn_set_session(struct tls_conn *c, tls_session *session);
/* A new reference to the connection's session (ticket or ID), or NULL. */
tls_session *tls_conn_get_session(struct tls_conn *c);
bool tls_conn_resumed(struct tls_conn *c);

/* Client sessions kept per key (context, relay address, name), so that repeat connections to
 * a relay resume instead of doing a full handshake. Bounded; oldest entries go first. */
struct tls_session_cache *tls_session_cache_new(void);
void tls_session_cache_free(struct tls_session_cache *cache);
/* The cached session for key (still owned by the cache), or NULL. */
tls_session *tls_session_cache_get(struct tls_session_cache *cache, const char *key);
/* Stores session under key, taking over the reference. */
void tls_session_cache_put(struct tls_session_cache *cache, const char *key, tls_session *session);

/* True when buf starts with a whole TLS record holding a ClientHello that cannot use an ECDSA
 * certificate: its signature_algorithms list no ECDSA scheme, or it offers neither a TLS 1.3
 * suite nor one of livery's ECDHE-ECDSA suites. False when the hello is not whole in this
 * record, or says nothing against ECDSA. */
bool tls_hello_rejects_ecdsa(const char *buf, size_t len);
/* Makes tls_conn_new use rsa instead of the server context ecdsa for clients that reject
 * ECDSA (seen in the ClientHello waiting in its input). rsa must outlive ecdsa. */
void tls_ctx_set_rsa_fallback(tls_ctx *ecdsa, tls_ctx *rsa);
tls_ctx *tls_ctx_rsa_fallback(tls_ctx *ctx);

#endif

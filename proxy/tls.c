/* tls: wolfSSL glue (contexts, memory-buffer I/O callbacks, a step API returning OK/WANT_READ/CLOSED/ERR);
 * knows nothing of libuv or SMTP. */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "names.h"
#include "util.h"

#ifdef WOLFSSL_AESNI
/* With AES-NI (the optimised build), AES-GCM is the fastest AEAD. */
static const char cipher_list[] =
        "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
#else
/* ChaCha20 first: Debian's wolfSSL has no AES-NI, and ChaCha20-Poly1305 is faster there. */
static const char cipher_list[] =
        "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
#endif

const char *tls_cipher_list(void)
{
	return cipher_list;
}

struct tls_conn {
	WOLFSSL *ssl;
	struct iobuf *in;
	tls_send_fn send;
	void *arg;
	bool eof;
	int last_error;
	char errbuf[160];
};

static int rsa_fallback_index = -1; /* a context's ex_data slot for its RSA fallback */

void tls_global_init(void)
{
	wolfSSL_Init();
	rsa_fallback_index = wolfSSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

void tls_global_cleanup(void)
{
	wolfSSL_Cleanup();
}

void tls_thread_cleanup(void)
{
#ifdef FP_ECC
	/* Debian's build caches fixed-point ECC tables per thread; wolfSSL_Cleanup only frees
	 * the calling thread's. */
	wc_ecc_fp_free();
#endif
}

static void set_err(char *err, size_t errlen, const char *what, const char *path, int code)
{
	char buf[80] = "not valid PEM, or unsupported";

	/* WOLFSSL_FAILURE (0) carries no detail, and the library would call it "ok". */
	if (code != WOLFSSL_FAILURE)
		wolfSSL_ERR_error_string_n((unsigned long)code, buf, sizeof(buf));
	snprintf(err, errlen, "cannot load %s %s (%s)", what, path, buf);
}

/* wolfSSL says little about a file it cannot open: check that first, with errno's words. */
static bool readable(const char *path, const char *what, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (f) {
		fclose(f);
		return true;
	}
	snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
	return false;
}

static tls_ctx *ctx_common(WOLFSSL_METHOD *method)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(method);

	if (!ctx)
		return NULL;
	/* X25519 first: with Debian's generic math a P-256 key exchange costs twice as much. */
	int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};

	/* Without this the library would still accept TLS 1.0/1.1 in this build. */
	if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_cipher_list(ctx, cipher_list) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_groups(ctx, groups, (int)ARRAY_LEN(groups)) != WOLFSSL_SUCCESS) {
		wolfSSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void pipe_send(void *arg, const char *buf, size_t len)
{
	iobuf_append(arg, buf, len);
}

/* wolfSSL_CTX_check_private_key only compares key types and sizes for ECC in this build, so
 * a P-256 key of another certificate passes it. A handshake in memory against the context
 * proves the key signs what the certificate's public key verifies. */
static bool handshake_selftest(tls_ctx *server)
{
	WOLFSSL_CTX *client = ctx_common(wolfSSLv23_client_method());
	struct iobuf to_server, to_client;
	bool ok = false;

	if (!client)
		return false;
	wolfSSL_CTX_set_verify(client, WOLFSSL_VERIFY_NONE, NULL);
	iobuf_init(&to_server);
	iobuf_init(&to_client);
	struct tls_conn *c = tls_conn_new(client, &to_client, pipe_send, &to_server);
	struct tls_conn *s = tls_conn_new(server, &to_server, pipe_send, &to_client);
	for (int round = 0; c && s && round < 8 && !ok; round++) {
		enum tls_status cs = tls_conn_handshake(c), ss = tls_conn_handshake(s);
		if (cs == TLS_ERR || ss == TLS_ERR || cs == TLS_CLOSED || ss == TLS_CLOSED)
			break;
		ok = cs == TLS_OK && ss == TLS_OK;
	}
	tls_conn_free(c);
	tls_conn_free(s);
	iobuf_free(&to_server);
	iobuf_free(&to_client);
	wolfSSL_CTX_free(client);
	return ok;
}

tls_ctx *tls_server_ctx_new(const char *cert, const char *key, bool *key_at_fault, char *err, size_t errlen)
{
	WOLFSSL_CTX *ctx = ctx_common(wolfSSLv23_server_method());
	int rc;

	*key_at_fault = false;
	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS server context");
		return NULL;
	}
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	if (!readable(cert, "certificate", err, errlen))
		;
	else if ((rc = wolfSSL_CTX_use_certificate_chain_file(ctx, cert)) != WOLFSSL_SUCCESS)
		set_err(err, errlen, "certificate chain", cert, rc);
	else if ((*key_at_fault = true) && !readable(key, "key", err, errlen))
		;
	else if ((rc = wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM)) != WOLFSSL_SUCCESS)
		set_err(err, errlen, "private key", key, rc);
	else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS || !handshake_selftest(ctx))
		snprintf(err, errlen, "private key %s does not match certificate %s", key, cert);
	else
		return ctx;
	wolfSSL_CTX_free(ctx);
	return NULL;
}

tls_ctx *tls_client_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
	WOLFSSL_CTX *ctx = ctx_common(wolfSSLv23_client_method());
	int rc;

	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS client context");
		return NULL;
	}
	/* A new context does not verify peers in this build: say so explicitly either way. */
	wolfSSL_CTX_set_verify(ctx, verify ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE, NULL);
	if (!verify)
		return ctx;
	if (!readable(ca_file, "CA file", err, errlen)) {
		wolfSSL_CTX_free(ctx);
		return NULL;
	}
	rc = wolfSSL_CTX_load_verify_locations(ctx, ca_file, NULL);
	if (rc == WOLFSSL_SUCCESS)
		return ctx;
	set_err(err, errlen, "CA file", ca_file, rc);
	wolfSSL_CTX_free(ctx);
	return NULL;
}

void tls_ctx_free(tls_ctx *ctx)
{
	wolfSSL_CTX_free(ctx);
}

/* ---- certificate inspection (cert_dir, expiry, `livery check`) ---- */

#define PEM_FILE_MAX (1 << 20)
static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";
static const char pem_end[] = "-----END CERTIFICATE-----";

/* The whole file, NUL-terminated; NULL with errno's words in err. */
static char *read_small_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = xmalloc(PEM_FILE_MAX + 1);

	*len = f ? fread(buf, 1, PEM_FILE_MAX, f) : 0;
	if (!f || ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

/* The certificate whose PEM block starts at or after *pos, advancing *pos past it. */
static WOLFSSL_X509 *next_pem_cert(const char **pos)
{
	const char *b = strstr(*pos, pem_begin);
	const char *e = b ? strstr(b, pem_end) : NULL;

	if (!e)
		return NULL;
	e += sizeof(pem_end) - 1;
	*pos = e;
	return wolfSSL_X509_load_certificate_buffer((const unsigned char *)b, (int)(e - b),
	                                            WOLFSSL_FILETYPE_PEM);
}

static long long asn1_time_unix(const WOLFSSL_ASN1_TIME *t)
{
	struct tm tm = {0};

	if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS)
		return 0;
	return (long long)timegm(&tm);
}

static void add_name(struct tls_cert_info *ci, const char *name, size_t len)
{
	char norm[NAME_MAX_LEN + 1];

	if (!name_normalize(name, len, norm, true))
		return; /* not a host name we could ever be asked for (e.g. an IDN in UTF-8) */
	ci->names = xrealloc(ci->names, (ci->nnames + 1) * sizeof(char *));
	ci->names[ci->nnames++] = xstrdup(norm);
}

/* RFC 9525: the SAN dNSNames (DNS-IDs) are the names; the CN counts only when there are none. */
static void collect_names(WOLFSSL_X509 *x, struct tls_cert_info *ci)
{
	WOLFSSL_STACK *sans = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = sans ? wolfSSL_sk_GENERAL_NAME_num(sans) : 0;
	bool dns_id = false; /* even one we cannot use (6.4.4): then the CN is not a name */

	for (int i = 0; i < n; i++) {
		WOLFSSL_GENERAL_NAME *g = wolfSSL_sk_GENERAL_NAME_value(sans, i);
		if (!g || g->type != GEN_DNS || !g->d.dNSName)
			continue;
		dns_id = true;
		add_name(ci, (const char *)wolfSSL_ASN1_STRING_data(g->d.dNSName),
		         (size_t)wolfSSL_ASN1_STRING_length(g->d.dNSName));
	}
	if (sans)
		wolfSSL_sk_GENERAL_NAME_pop_free(sans, wolfSSL_GENERAL_NAME_free);
	if (dns_id)
		return;
	char cn[NAME_MAX_LEN + 2];
	int len = wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn,
	                                            (int)sizeof(cn));
	if (len > 0) {
		add_name(ci, cn, (size_t)len);
		ci->from_cn = ci->nnames > 0;
	}
}

static void info_from_x509(WOLFSSL_X509 *x, struct tls_cert_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	collect_names(x, ci);
	ci->rsa = wolfSSL_X509_get_pubkey_type(x) == RSAk;
	ci->not_before = asn1_time_unix(wolfSSL_X509_get_notBefore(x));
	ci->not_after = asn1_time_unix(wolfSSL_X509_get_notAfter(x));
	wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(x), ci->subject, (int)sizeof(ci->subject));
}

/* From the context, not the file: the file may have been replaced since (a renewal). */
bool tls_server_ctx_cert_info(tls_ctx *ctx, struct tls_cert_info *ci)
{
	WOLFSSL_X509 *x = wolfSSL_CTX_get0_certificate(ctx); /* owned by ctx */

	if (!x)
		return false;
	info_from_x509(x, ci);
	return true;
}

void tls_cert_info_free(struct tls_cert_info *ci)
{
	for (size_t i = 0; i < ci->nnames; i++)
		free(ci->names[i]);
	free(ci->names);
	ci->names = NULL;
	ci->nnames = 0;
}

int tls_chain_check(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *buf = read_small_file(path, &len, err, errlen);
	const char *pos = buf;
	WOLFSSL_X509 *prev = NULL, *x;
	int n = 0;

	if (!buf)
		return -1;
	for (; (x = next_pem_cert(&pos)) != NULL; n++) {
		bool ordered = !prev || wolfSSL_X509_NAME_cmp(wolfSSL_X509_get_issuer_name(prev),
		                                              wolfSSL_X509_get_subject_name(x)) == 0;
		if (!ordered) {
			char want[256];
			wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_issuer_name(prev), want,
			                          (int)sizeof(want));
			snprintf(err, errlen, "certificate %d's issuer (%s) is not certificate %d's subject",
			         n, want, n + 1);
			n = -1;
		}
		wolfSSL_X509_free(prev);
		prev = x;
		if (n < 0)
			break;
	}
	wolfSSL_X509_free(prev);
	free(buf);
	if (n == 0)
		snprintf(err, errlen, "%s holds no readable PEM certificate", path);
	return n == 0 ? -1 : n;
}

void tls_ctx_set_rsa_fallback(tls_ctx *ecdsa, tls_ctx *rsa)
{
	if (rsa_fallback_index >= 0)
		wolfSSL_CTX_set_ex_data(ecdsa, rsa_fallback_index, rsa);
}

tls_ctx *tls_ctx_rsa_fallback(tls_ctx *ctx)
{
	return rsa_fallback_index >= 0 && ctx ? wolfSSL_CTX_get_ex_data(ctx, rsa_fallback_index) : NULL;
}

/* ---- the ClientHello's signature_algorithms, for choosing ECDSA or RSA (pure) ---- */

struct hello_reader {
	const unsigned char *p, *end;
	bool ok;
};

static size_t hr_take(struct hello_reader *r, size_t nbytes)
{
	size_t v = 0;

	if (!r->ok || (size_t)(r->end - r->p) < nbytes) {
		r->ok = false;
		return 0;
	}
	for (size_t i = 0; i < nbytes; i++)
		v = v << 8 | *r->p++;
	return v;
}

static void hr_skip(struct hello_reader *r, size_t nbytes)
{
	if (!r->ok || (size_t)(r->end - r->p) < nbytes)
		r->ok = false;
	else
		r->p += nbytes;
}

/* A SignatureScheme (RFC 8446 4.2.3), or a TLS 1.2 (hash, signature) pair (RFC 5246
 * 7.4.1.4.1): ECDSA is signature 3 with hashes sha1 (2) to sha512 (6). */
static bool scheme_is_ecdsa(size_t scheme)
{
	return (scheme & 0xff) == 3 && (scheme >> 8) >= 2 && (scheme >> 8) <= 6;
}

/* The parts of a ClientHello that tell whether a client can use an ECDSA certificate. */
struct hello_parts {
	struct hello_reader suites; /* cipher_suites, two bytes each */
	struct hello_reader exts;   /* the extensions block (empty when there is none) */
};

/* Finds the parts of the ClientHello in the record at buf; false if there is none whole
 * there, or its lengths do not add up. */
static bool hello_parse(const char *buf, size_t len, struct hello_parts *h)
{
	struct hello_reader r = {(const unsigned char *)buf, (const unsigned char *)buf + len, true};

	if (hr_take(&r, 1) != 0x16)
		return false;
	hr_skip(&r, 2); /* record version */
	size_t rec = hr_take(&r, 2);
	if (!r.ok || (size_t)(r.end - r.p) < rec)
		return false;
	r.end = r.p + rec;
	if (hr_take(&r, 1) != 1)
		return false; /* not a ClientHello */
	size_t body = hr_take(&r, 3);
	if (!r.ok || (size_t)(r.end - r.p) < body)
		return false; /* split across records: leave the choice to the default */
	r.end = r.p + body;
	hr_skip(&r, 2 + 32);         /* client_version, random */
	hr_skip(&r, hr_take(&r, 1)); /* session_id */
	size_t ns = hr_take(&r, 2);
	h->suites = (struct hello_reader){r.p, r.p + ns, ns >= 2 && ns % 2 == 0};
	hr_skip(&r, ns);
	hr_skip(&r, hr_take(&r, 1)); /* compression_methods */
	size_t ext = r.ok && r.p < r.end ? hr_take(&r, 2) : 0;
	if (!r.ok || !h->suites.ok || (size_t)(r.end - r.p) < ext)
		return false;
	h->exts = (struct hello_reader){r.p, r.p + ext, true};
	return true;
}

/* Whether a suite livery accepts could carry an ECDSA certificate: any TLS 1.3 suite, or one
 * of cipher_list's ECDHE-ECDSA suites (AES128-GCM, AES256-GCM, CHACHA20-POLY1305). */
static bool suites_allow_ecdsa(struct hello_reader s)
{
	while (s.ok && s.p < s.end) {
		size_t id = hr_take(&s, 2);
		if ((id >> 8) == 0x13 || id == 0xc02b || id == 0xc02c || id == 0xcca9)
			return true;
	}
	return false;
}

/* Whether signature_algorithms lists no ECDSA scheme; false when the extension is absent
 * (RFC 5246 7.4.1.4.1: then the suite decides) or malformed. */
static bool sigalgs_reject_ecdsa(struct hello_reader r)
{
	while (r.ok && r.p < r.end) {
		size_t type = hr_take(&r, 2), elen = hr_take(&r, 2);
		if (!r.ok || (size_t)(r.end - r.p) < elen)
			return false;
		if (type != 13) { /* signature_algorithms */
			hr_skip(&r, elen);
			continue;
		}
		struct hello_reader list = {r.p, r.p + elen, true};
		size_t n = hr_take(&list, 2);
		if (!list.ok || n % 2 != 0 || n > elen - 2)
			return false;
		list.end = list.p + n;
		while (list.p < list.end) {
			if (scheme_is_ecdsa(hr_take(&list, 2)))
				return false;
		}
		return true;
	}
	return false;
}

bool tls_hello_rejects_ecdsa(const char *buf, size_t len)
{
	struct hello_parts h;

	if (!hello_parse(buf, len, &h))
		return false;
	return !suites_allow_ecdsa(h.suites) || sigalgs_reject_ecdsa(h.exts);
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct tls_conn *c = arg;
	size_t avail = iobuf_avail(c->in);

	(void)ssl;
	if (avail == 0)
		return c->eof ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = avail < (size_t)sz ? avail : (size_t)sz;
	memcpy(buf, iobuf_peek(c->in), n);
	iobuf_consume(c->in, n);
	return (int)n;
}

/* Never returns WANT_WRITE: the caller's write queue takes everything. */
static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct tls_conn *c = arg;

	(void)ssl;
	c->send(c->arg, buf, (size_t)sz);
	return sz;
}

/* A server context with an RSA fallback gives it to a client whose ClientHello, still whole in
 * in, says it cannot verify ECDSA. One context per key type, not both in one context: Debian's
 * wolfSSL 5.5.4 keeps one certificate and key per context. */
static tls_ctx *pick_ctx(tls_ctx *ctx, const struct iobuf *in)
{
	tls_ctx *rsa = tls_ctx_rsa_fallback(ctx);

	if (rsa && tls_hello_rejects_ecdsa(iobuf_peek(in), iobuf_avail(in)))
		return rsa;
	return ctx;
}

struct tls_conn *tls_conn_new(tls_ctx *ctx, struct iobuf *in, tls_send_fn send, void *arg)
{
	struct tls_conn *c = xcalloc(1, sizeof(*c));

	ctx = pick_ctx(ctx, in);

	c->ssl = wolfSSL_new(ctx);
	if (!c->ssl) {
		free(c);
		return NULL;
	}
	c->in = in;
	c->send = send;
	c->arg = arg;
	wolfSSL_SSLSetIORecv(c->ssl, io_recv);
	wolfSSL_SSLSetIOSend(c->ssl, io_send);
	wolfSSL_SetIOReadCtx(c->ssl, c);
	wolfSSL_SetIOWriteCtx(c->ssl, c);
	return c;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	wolfSSL_free(c->ssl);
	free(c);
}

void tls_conn_set_client_names(struct tls_conn *c, const char *sni, const char *verify_name)
{
	wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni));
	/* The first ClientHello carries an X25519 share, so no HelloRetryRequest round trip. */
	wolfSSL_UseKeyShare(c->ssl, WOLFSSL_ECC_X25519);
	if (verify_name)
		wolfSSL_check_domain_name(c->ssl, verify_name);
}

void tls_conn_set_eof(struct tls_conn *c)
{
	c->eof = true;
}

static enum tls_status status_of(struct tls_conn *c, int ret)
{
	int e = wolfSSL_get_error(c->ssl, ret);

	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return TLS_WANT_READ;
	if (e == WOLFSSL_ERROR_ZERO_RETURN)
		return TLS_CLOSED;
	c->last_error = e;
	return TLS_ERR;
}

enum tls_status tls_conn_handshake(struct tls_conn *c)
{
	int ret = wolfSSL_is_server(c->ssl) ? wolfSSL_accept(c->ssl) : wolfSSL_connect(c->ssl);

	return ret == WOLFSSL_SUCCESS ? TLS_OK : status_of(c, ret);
}

enum tls_status tls_conn_read(struct tls_conn *c, char *buf, size_t cap, size_t *n)
{
	int ret = wolfSSL_read(c->ssl, buf, (int)cap);

	*n = 0;
	if (ret > 0) {
		*n = (size_t)ret;
		return TLS_OK;
	}
	return status_of(c, ret);
}

enum tls_status tls_conn_write(struct tls_conn *c, const char *buf, size_t len)
{
	while (len > 0) {
		int chunk = len > 16384 ? 16384 : (int)len;
		int ret = wolfSSL_write(c->ssl, buf, chunk);
		if (ret <= 0)
			return status_of(c, ret);
		buf += ret;
		len -= (size_t)ret;
	}
	return TLS_OK;
}

void tls_conn_shutdown(struct tls_conn *c)
{
	wolfSSL_shutdown(c->ssl);
}

const char *tls_conn_error(struct tls_conn *c)
{
	char buf[100];

	if (c->last_error == 0)
		return "connection closed during handshake";
	wolfSSL_ERR_error_string_n((unsigned long)c->last_error, buf, sizeof(buf));
	snprintf(c->errbuf, sizeof(c->errbuf), "%s (%d)", buf, c->last_error);
	return c->errbuf;
}

const char *tls_conn_version(struct tls_conn *c)
{
	return wolfSSL_get_version(c->ssl);
}

const char *tls_conn_cipher(struct tls_conn *c)
{
	return wolfSSL_get_cipher_name(c->ssl);
}

void tls_conn_set_session(struct tls_conn *c, tls_session *session)
{
	wolfSSL_UseSessionTicket(c->ssl);
	if (session)
		wolfSSL_set_session(c->ssl, session);
}

tls_session *tls_conn_get_session(struct tls_conn *c)
{
	return wolfSSL_get1_session(c->ssl);
}

bool tls_conn_resumed(struct tls_conn *c)
{
	return wolfSSL_session_reused(c->ssl) == 1;
}

#define SESSION_CACHE_MAX 64

struct cached_session {
	struct cached_session *next;
	char *key;
	tls_session *session;
};

struct tls_session_cache {
	struct cached_session *head; /* most recently stored first */
	size_t n;
};

struct tls_session_cache *tls_session_cache_new(void)
{
	return xcalloc(1, sizeof(struct tls_session_cache));
}

static void cached_free(struct cached_session *e)
{
	wolfSSL_SESSION_free(e->session);
	free(e->key);
	free(e);
}

void tls_session_cache_free(struct tls_session_cache *cache)
{
	if (!cache)
		return;
	for (struct cached_session *e = cache->head, *next; e; e = next) {
		next = e->next;
		cached_free(e);
	}
	free(cache);
}

tls_session *tls_session_cache_get(struct tls_session_cache *cache, const char *key)
{
	for (struct cached_session *e = cache->head; e; e = e->next) {
		if (strcmp(e->key, key) == 0)
			return e->session;
	}
	return NULL;
}

/* Unlinks the entry for key, or with key NULL the oldest one. */
static void cache_drop(struct tls_session_cache *cache, const char *key)
{
	struct cached_session **p = &cache->head, **victim = NULL;

	for (; *p; p = &(*p)->next) {
		if (key ? strcmp((*p)->key, key) == 0 : (*p)->next == NULL) {
			victim = p;
			break;
		}
	}
	if (!victim)
		return;
	struct cached_session *e = *victim;
	*victim = e->next;
	cached_free(e);
	cache->n--;
}

void tls_session_cache_put(struct tls_session_cache *cache, const char *key, tls_session *session)
{
	struct cached_session *e = xcalloc(1, sizeof(*e));

	cache_drop(cache, key);
	if (cache->n == SESSION_CACHE_MAX)
		cache_drop(cache, NULL);
	e->key = xstrdup(key);
	e->session = session;
	e->next = cache->head;
	cache->head = e;
	cache->n++;
}

enum tls_peek tls_peek_sni(const char *buf, size_t len, char *sni, size_t snicap)
{
	const unsigned char *u = (const unsigned char *)buf;
	byte out[256];
	word32 outlen = sizeof(out) - 1;

	sni[0] = '\0';
	if (len >= 1 && u[0] != 0x16)
		return TLS_PEEK_NOT_TLS;
	if (len < 5)
		return TLS_PEEK_NEED_MORE;
	size_t rec = ((size_t)u[3] << 8 | u[4]) + 5;
	if (len < rec)
		return TLS_PEEK_NEED_MORE;
	if (wolfSSL_SNI_GetFromBuffer(u, (word32)rec, WOLFSSL_SNI_HOST_NAME, out, &outlen) ==
	            WOLFSSL_SUCCESS &&
	    outlen < snicap) {
		memcpy(sni, out, outlen);
		sni[outlen] = '\0';
	}
	return TLS_PEEK_DONE;
}

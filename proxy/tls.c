/* tls: wolfSSL glue (contexts, memory-buffer I/O callbacks, a step API returning OK/WANT_READ/CLOSED/ERR);
 * knows nothing of libuv or SMTP. */
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "asn1time.h"
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
	char server_name[256]; /* server side: the SNI host name, lower-cased ("" for none) */
};

/* Memory for secrets (sessions' master secrets, ticket keys) mapped before the fork and
 * shared by the master and its workers; NULL when mmap failed (no resumption of that kind
 * then). Only its maker erases it: a worker that exits must not take the secrets from the
 * workers still serving. */
struct shared_secrets {
	void *mem;
	size_t len;
	pid_t owner;
};

static void *shared_secrets_map(struct shared_secrets *s, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	s->mem = p == MAP_FAILED ? NULL : p;
	s->len = len;
	s->owner = getpid();
	return s->mem;
}

static void shared_secrets_unmap(struct shared_secrets *s)
{
	if (!s->mem)
		return;
	if (getpid() == s->owner)
		explicit_bzero(s->mem, s->len);
	munmap(s->mem, s->len);
	s->mem = NULL;
}

static bool resumption_bind(WOLFSSL_CTX *ctx);
static void auto_keys_map(void);
static void sessions_map(void);
static void sessions_unmap(void);
static void auto_keys_unmap(void);
static void resumption_unbind(WOLFSSL_CTX *ctx);
static void resumption_cleanup(void);
static int rsa_fallback_index = -1; /* a context's ex_data slot for its RSA fallback */

void tls_global_init(void)
{
	wolfSSL_Init();
	auto_keys_map();
	sessions_map();
	tls_tickets_rotate((long long)time(NULL));
	rsa_fallback_index = wolfSSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

void tls_global_cleanup(void)
{
	resumption_cleanup();
	auto_keys_unmap();
	sessions_unmap();
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
	const char *why;
	FILE *f = util_fopen_regular(path, &why);

	if (f) {
		fclose(f);
		return true;
	}
	snprintf(err, errlen, "cannot read %s %s: %s", what, path, why);
	return false;
}

/* The key-exchange groups, X25519 first: with Debian's generic math a P-256 key exchange costs
 * twice as much. wolfSSL_CTX_set_groups alone only governs TLS 1.3 key shares; a TLS 1.2
 * server then takes any curve the client names (P-521, X448, brainpool, secp256k1). The
 * curves list also disables every other curve for TLS 1.2's ECDHE, and sets the same groups
 * for TLS 1.3. */
static bool set_groups(WOLFSSL_CTX *ctx)
{
	return wolfSSL_CTX_set1_curves_list(ctx, "X25519:P-256:P-384") == WOLFSSL_SUCCESS;
}

static tls_ctx *ctx_common(WOLFSSL_METHOD *method)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(method);

	if (!ctx)
		return NULL;
	/* Without this the library would still accept TLS 1.0/1.1 in this build. */
	if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_cipher_list(ctx, cipher_list) != WOLFSSL_SUCCESS || !set_groups(ctx)) {
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
	else if (!resumption_bind(ctx))
		snprintf(err, errlen, "cannot set up TLS session resumption");
	else
		return ctx;
	tls_ctx_free(ctx);
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
	if (!ctx)
		return;
	resumption_unbind(ctx);
	wolfSSL_CTX_free(ctx);
}

/* ---- certificate inspection (cert_dir, expiry, `livery check`) ---- */

#define PEM_FILE_MAX (1 << 20)
static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";
static const char pem_end[] = "-----END CERTIFICATE-----";

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

/* Parsed by asn1time, not wolfSSL_ASN1_TIME_to_tm(): that one shifts the hour by the local DST. */
static long long asn1_time_unix(const WOLFSSL_ASN1_TIME *t)
{
	WOLFSSL_ASN1_TIME *mt = (WOLFSSL_ASN1_TIME *)t; /* the getters take no const */
	long long v;
	int len = mt ? wolfSSL_ASN1_TIME_get_length(mt) : 0;

	if (len <= 0 || !asn1time_parse(wolfSSL_ASN1_TIME_get_data(mt), (size_t)len, &v))
		return 0;
	return v;
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
	const char *why;
	char *buf = util_read_file(path, PEM_FILE_MAX, &len, &why);
	const char *pos = buf;
	WOLFSSL_X509 *prev = NULL, *x;
	int n = 0;

	if (!buf) {
		snprintf(err, errlen, "cannot read %s: %s", path, why);
		return -1;
	}
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

void tls_conn_set_server_name(struct tls_conn *c, const char *name)
{
	size_t i = 0;

	for (; name[i] && i + 1 < sizeof(c->server_name); i++)
		c->server_name[i] = (char)tolower((unsigned char)name[i]);
	c->server_name[i] = '\0';
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

	if (ret != WOLFSSL_SUCCESS)
		return status_of(c, ret);
	/* The handshake's secrets and randoms (3.4 KiB): wolfSSL frees them itself after a TLS
	 * 1.2 handshake, but keeps them for TLS 1.3 in builds with post-handshake
	 * authentication (Debian's), which livery never uses. The resumption secret is already
	 * in the session, and wolfSSL takes post-handshake messages (tickets, key updates)
	 * without them. */
	wolfSSL_FreeArrays(c->ssl);
	return TLS_OK;
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

enum tls_failure tls_conn_failure(const struct tls_conn *c)
{
	switch (c->last_error) {
	case DOMAIN_NAME_MISMATCH:
		return TLS_FAIL_HOST_MISMATCH;
	case ASN_AFTER_DATE_E:
		return TLS_FAIL_EXPIRED;
	case ASN_NO_SIGNER_E:
	case ASN_SELF_SIGNED_E:
	case NOT_CA_ERROR:
		return TLS_FAIL_NOT_TRUSTED;
	default:
		return TLS_FAIL_OTHER;
	}
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

/* ---- server-side resumption, bound to the tenant's context and the server name ----
 *
 * RFC 6066 3: a server must not resume a session for a server name other than the one it
 * was made for. wolfSSL keeps one session-ID cache for the whole process and checks no
 * name or context on lookup, so a TLS 1.2 session made under one tenant would resume under
 * another, authenticated by the first tenant's certificate; and a ticket is good for every
 * name a context serves. So each server context gets its own ticket keys (see "ticket keys"
 * below), with the server name in the ticket's authenticated data (TLS 1.2 tickets and TLS
 * 1.3 alike), and the
 * session IDs go to a cache of ours that is keyed by ID and answers only for the same
 * certificate (the context's identity, as for tickets) and name. Any mismatch means a full
 * handshake, never a failed one.
 *
 * The cache is shared memory, mapped by tls_global_init in the master before it forks, so a
 * TLS 1.2 client resumes on whichever worker of the instance accepts it (SO_REUSEPORT spreads
 * connections by address and port, not by client). Each slot is a sequence lock: a writer
 * claims it by moving its counter from even to odd (skipping the slot if another writer holds
 * it: this is a cache), a reader copies it and keeps the copy only if the counter was even and
 * unchanged around the copy. No process ever waits for another, so a worker killed while
 * writing costs that one slot (left odd), never a stuck lock. */

/* Direct-mapped by session ID (random, so any four bytes spread well). A stored session is
 * its serialised form (about 100 to 200 octets here, no client certificates); larger ones are
 * not cached. */
#define SERVER_SESSIONS 8192
#define SESSION_DER_MAX 768
/* wolfSSL's server always makes 32-octet session IDs, the most TLS 1.2 allows. */
#define SESSION_ID_LEN 32

struct server_session {
	_Atomic uint32_t seq; /* odd while a writer fills the slot */
	uint16_t der_len;     /* 0: a free slot */
	unsigned char ident[WC_SHA256_DIGEST_SIZE]; /* the context's certificate (ticket_key.ident) */
	unsigned char id[SESSION_ID_LEN];
	char name[NAME_MAX_LEN + 1];
	unsigned char der[SESSION_DER_MAX];
};

/* Each server context's ticket state, found again by the registry at tls_ctx_free. It is
 * also the context's identity for stored sessions: unlike the context's address, it is
 * never reused, because tls_ctx_free only retires it (a connection still handshaking may
 * hold the context, which wolfSSL frees with its last user) and tls_global_cleanup frees it. */
struct ticket_key {
	struct ticket_key *next;
	const WOLFSSL_CTX *ctx; /* NULL once retired */
	bool retired;           /* its context is gone: no tickets, no sessions */
	/* What the context's ticket keys are derived for: the SHA-256 of its certificate, the
	 * same in every process that loads the same certificate. */
	unsigned char ident[WC_SHA256_DIGEST_SIZE];
	struct ticketkeys file; /* ticket_key_file's keys; none: the process's daily keys */
};

/* Worker threads share the contexts, and so these. */
static pthread_mutex_t resume_lock = PTHREAD_MUTEX_INITIALIZER;
static struct server_session *server_sessions; /* SERVER_SESSIONS slots, shared (see above) */
static struct shared_secrets server_sessions_mem;
static struct ticket_key *ticket_keys;

static struct ticket_key *key_of(WOLFSSL *ssl)
{
	return wolfSSL_CTX_get_TicketEncCtx(wolfSSL_get_SSL_CTX(ssl));
}

static const char *server_name_of(WOLFSSL *ssl)
{
	struct tls_conn *c = wolfSSL_GetIOReadCtx(ssl);
	return c ? c->server_name : "";
}

static struct server_session *session_slot(const unsigned char *id)
{
	uint32_t h;

	memcpy(&h, id, sizeof(h));
	return &server_sessions[h % SERVER_SESSIONS];
}

static void sessions_map(void)
{
	server_sessions =
	        shared_secrets_map(&server_sessions_mem, SERVER_SESSIONS * sizeof(struct server_session));
}

static void sessions_unmap(void)
{
	shared_secrets_unmap(&server_sessions_mem);
	server_sessions = NULL;
}

/* Stores a session in its slot unless a writer holds it. */
static void session_store(const unsigned char *ident, const unsigned char *id, const char *name,
                          const unsigned char *der, size_t der_len)
{
	struct server_session *e = session_slot(id);
	uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);

	if ((seq & 1) || !atomic_compare_exchange_strong_explicit(&e->seq, &seq, seq + 1, memory_order_acquire,
	                                                          memory_order_relaxed))
		return;
	atomic_thread_fence(memory_order_release); /* the odd count is seen before the new bytes */
	memcpy(e->ident, ident, sizeof(e->ident));
	memcpy(e->id, id, SESSION_ID_LEN);
	size_t name_len = strnlen(name, sizeof(e->name) - 1);
	memcpy(e->name, name, name_len);
	e->name[name_len] = '\0';
	memcpy(e->der, der, der_len);
	e->der_len = (uint16_t)der_len;
	atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
}

/* Copies the session stored for (ident, id, name) into der; its length, or 0 for none. */
static size_t session_load(const unsigned char *ident, const unsigned char *id, const char *name,
                           unsigned char der[SESSION_DER_MAX])
{
	struct server_session *e = session_slot(id);
	uint32_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);
	size_t n = e->der_len;
	bool match = !(seq & 1) && n > 0 && n <= SESSION_DER_MAX &&
	             memcmp(e->ident, ident, sizeof(e->ident)) == 0 && memcmp(e->id, id, SESSION_ID_LEN) == 0 &&
	             strncmp(e->name, name, sizeof(e->name)) == 0;

	if (match)
		memcpy(der, e->der, n);
	atomic_thread_fence(memory_order_acquire); /* the copy is done before the count is read again */
	if (match && atomic_load_explicit(&e->seq, memory_order_relaxed) == seq)
		return n;
	explicit_bzero(der, SESSION_DER_MAX);
	return 0;
}

/* wolfSSL hands over each new server session (with a reference it frees if we return 0). */
static int session_new_cb(WOLFSSL *ssl, WOLFSSL_SESSION *sess)
{
	unsigned int id_len = 0;
	const unsigned char *id = wolfSSL_SESSION_get_id(sess, &id_len);
	int n = wolfSSL_i2d_SSL_SESSION(sess, NULL);
	const struct ticket_key *owner = key_of(ssl);

	/* TLS 1.3 resumes by ticket only; its session ID is the client's to echo. */
	if (!server_sessions || id_len != SESSION_ID_LEN || n <= 0 || n > SESSION_DER_MAX ||
	    wolfSSL_version(ssl) == TLS1_3_VERSION || !owner)
		return 0;
	unsigned char der[SESSION_DER_MAX], *p = der;
	pthread_mutex_lock(&resume_lock);
	bool live = !owner->retired;
	pthread_mutex_unlock(&resume_lock);
	if (live && wolfSSL_i2d_SSL_SESSION(sess, &p) == n)
		session_store(owner->ident, id, server_name_of(ssl), der, (size_t)n);
	explicit_bzero(der, sizeof(der)); /* it holds the master secret */
	return 0;
}

/* A session ID the client offers: ours only for the certificate and name it was made under. */
static WOLFSSL_SESSION *session_get_cb(WOLFSSL *ssl, const unsigned char *id, int id_len, int *copy)
{
	const struct ticket_key *owner = key_of(ssl);
	WOLFSSL_SESSION *sess = NULL;
	unsigned char der[SESSION_DER_MAX];

	*copy = 0; /* wolfSSL frees what we return */
	if (!server_sessions || id_len != SESSION_ID_LEN || !owner)
		return NULL;
	pthread_mutex_lock(&resume_lock);
	bool live = !owner->retired;
	pthread_mutex_unlock(&resume_lock);
	size_t n = live ? session_load(owner->ident, id, server_name_of(ssl), der) : 0;
	if (n > 0) {
		const unsigned char *p = der;
		sess = wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)n);
	}
	explicit_bzero(der, sizeof(der));
	return sess;
}

/* What a ticket is bound to: its key's name, the IV and length (as wolfSSL's own scheme
 * does), and the server name. */
static size_t ticket_aad(unsigned char *aad, const unsigned char *key_name, const unsigned char *iv, int len,
                         const char *name)
{
	size_t n = strlen(name), k = 0;

	memcpy(aad, key_name, WOLFSSL_TICKET_NAME_SZ);
	k += WOLFSSL_TICKET_NAME_SZ;
	memcpy(aad + k, iv, WOLFSSL_TICKET_IV_SZ);
	k += WOLFSSL_TICKET_IV_SZ;
	aad[k++] = (unsigned char)(len >> 8);
	aad[k++] = (unsigned char)len;
	memcpy(aad + k, name, n);
	return k + n;
}

/* ---- ticket keys ----
 *
 * A context's ticket keys are derived (HKDF-SHA256) from master keys and the context's
 * identity (its certificate's hash): the key name (16 octets, sent in the clear in each
 * ticket) and the ChaCha20-Poly1305 key (32). So two contexts never share a key, and two
 * instances that load the same certificate and the same master keys derive the same ones:
 * a ticket made by one resumes on the other. The name also tells which master key made a
 * ticket, so a previous key is found without trying each.
 *
 * The master keys are ticket_key_file's when the configuration has one (read by the master
 * as root, re-read on reload: rotating is replacing the file and reloading; the first key
 * encrypts, all of them decrypt). Without it, each livery process makes its own, one per
 * UTC day: every worker of every generation shares them, so a client resumes on any worker
 * and across reloads, and a key is erased two days after its day.
 *
 * Rotating those daily keys across workers that are already forked needs either shared
 * memory the master writes or a derivation from one secret and the date. A derivation would
 * keep that one secret for the process's whole life: whoever reads a worker's memory once
 * could open every ticket made before and after. So the master writes random keys into
 * shared memory mapped before any fork: slot (day % 4) holds day's key, tagged with the day.
 * A worker reads today's and yesterday's slots (checking each tag), and the master writes
 * the slot for tomorrow (erasing the key of three days ago) during today, at start and
 * hourly (tls_tickets_rotate): no slot is ever written on a day a worker reads it, so the
 * readers need no lock. */

#define AUTO_SLOTS  4
#define AUTO_KEY_SZ 32
#define DAY_SECONDS 86400

struct auto_key {
	long long day; /* the UTC day (Unix time / 86400) the key is for; 0: none */
	unsigned char key[AUTO_KEY_SZ];
};

static struct auto_key *auto_keys; /* AUTO_SLOTS, shared by the master and its workers */
static struct shared_secrets auto_keys_mem;

static void auto_keys_map(void)
{
	auto_keys = shared_secrets_map(&auto_keys_mem, AUTO_SLOTS * sizeof(struct auto_key));
}

static void auto_keys_unmap(void)
{
	shared_secrets_unmap(&auto_keys_mem);
	auto_keys = NULL;
}

void tls_tickets_rotate(long long now)
{
	long long today = now / DAY_SECONDS;

	for (long long day = today - 1; auto_keys && day <= today + 1; day++) {
		struct auto_key *k = &auto_keys[day % AUTO_SLOTS];
		if (k->day == day)
			continue;
		if (wolfSSL_RAND_bytes(k->key, sizeof(k->key)) != WOLFSSL_SUCCESS) {
			explicit_bzero(k, sizeof(*k));
			continue;
		}
		k->day = day;
	}
}

/* Today's key, then yesterday's (those that are there). */
static void auto_keys_get(struct ticketkeys *out)
{
	long long today = (long long)time(NULL) / DAY_SECONDS;

	out->n = 0;
	for (long long day = today; auto_keys && day >= today - 1; day--) {
		const struct auto_key *k = &auto_keys[day % AUTO_SLOTS];
		if (k->day != day)
			continue;
		memcpy(out->key[out->n].octets, k->key, AUTO_KEY_SZ);
		out->key[out->n++].len = AUTO_KEY_SZ;
	}
}

/* The master keys for the context of k and its identity; false once it is retired. */
static bool master_keys(const struct ticket_key *k, struct ticketkeys *keys, unsigned char *ident)
{
	bool ok;

	pthread_mutex_lock(&resume_lock); /* tls_ctx_free may be retiring it */
	ok = !k->retired;
	if (ok && k->file.n > 0)
		*keys = k->file;
	memcpy(ident, k->ident, sizeof(k->ident));
	pthread_mutex_unlock(&resume_lock);
	if (ok && k->file.n == 0)
		auto_keys_get(keys);
	return ok && keys->n > 0;
}

/* The key name and the AEAD key that master key m gives the context ident. */
static bool derive(const struct ticketkeys *keys, unsigned i, const unsigned char *ident,
                   unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                   unsigned char key[CHACHA20_POLY1305_AEAD_KEYSIZE])
{
	static const char salt[] = "livery session ticket keys v1";
	unsigned char out[WOLFSSL_TICKET_NAME_SZ + CHACHA20_POLY1305_AEAD_KEYSIZE];
	int rc = wc_HKDF(WC_SHA256, keys->key[i].octets, (word32)keys->key[i].len, (const byte *)salt,
	                 sizeof(salt) - 1, ident, WC_SHA256_DIGEST_SIZE, out, sizeof(out));

	memcpy(name, out, WOLFSSL_TICKET_NAME_SZ);
	memcpy(key, out + WOLFSSL_TICKET_NAME_SZ, CHACHA20_POLY1305_AEAD_KEYSIZE);
	explicit_bzero(out, sizeof(out));
	return rc == 0;
}

/* Seals (enc) or opens the ticket in place under key, bound to the server name. */
static bool ticket_crypt(WOLFSSL *ssl, const unsigned char *key, const unsigned char *key_name,
                         const unsigned char *iv, unsigned char *mac, int enc, unsigned char *ticket, int len)
{
	unsigned char aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ + 2 + 256];
	size_t aad_len = ticket_aad(aad, key_name, iv, len, server_name_of(ssl));

	if (enc)
		return wc_ChaCha20Poly1305_Encrypt(key, iv, aad, (word32)aad_len, ticket, (word32)len, ticket,
		                                   mac) == 0;
	return wc_ChaCha20Poly1305_Decrypt(key, iv, aad, (word32)aad_len, ticket, (word32)len, mac, ticket) ==
	       0;
}

/* Opens a ticket with the master key whose derived name it carries. One made under a
 * previous key is accepted, and renewal asked for: CREATE for TLS 1.2 (wolfSSL 5.5.4 then
 * resumes, but sends no new ticket in the abbreviated handshake: such a client gets its next
 * ticket from the full handshake once the old key has left the file). TLS 1.3 gets OK: a
 * TLS 1.3 server sends a new ticket after every handshake anyway, and wolfSSL 5.5.4 would
 * not resume a TLS 1.3 ticket the callback answers CREATE for. */
static int ticket_open(WOLFSSL *ssl, const struct ticketkeys *keys, const unsigned char *ident,
                       const unsigned char *key_name, const unsigned char *iv, unsigned char *mac,
                       unsigned char *ticket, int len)
{
	unsigned char name[WOLFSSL_TICKET_NAME_SZ], key[CHACHA20_POLY1305_AEAD_KEYSIZE];
	int rc = WOLFSSL_TICKET_RET_REJECT;

	for (unsigned i = 0; i < keys->n; i++) {
		if (!derive(keys, i, ident, name, key) || memcmp(name, key_name, sizeof(name)) != 0)
			continue;
		if (ticket_crypt(ssl, key, key_name, iv, mac, 0, ticket, len))
			rc = i == 0 || wolfSSL_version(ssl) == TLS1_3_VERSION ? WOLFSSL_TICKET_RET_OK
			                                                      : WOLFSSL_TICKET_RET_CREATE;
		break;
	}
	explicit_bzero(key, sizeof(key));
	return rc;
}

/* Seals (enc) or opens a ticket in place with ChaCha20-Poly1305 under the context's key. A
 * ticket of another context, name or key file fails to open: REJECT, and the handshake goes
 * full. */
static int ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                     int enc, unsigned char *ticket, int len, int *out_len, void *arg)
{
	struct ticketkeys keys;
	unsigned char ident[WC_SHA256_DIGEST_SIZE], key[CHACHA20_POLY1305_AEAD_KEYSIZE];
	int rc = WOLFSSL_TICKET_RET_REJECT;

	if (!master_keys(arg, &keys, ident))
		return rc;
	if (!enc)
		rc = ticket_open(ssl, &keys, ident, key_name, iv, mac, ticket, len);
	else if (derive(&keys, 0, ident, key_name, key) &&
	         wolfSSL_RAND_bytes(iv, WOLFSSL_TICKET_IV_SZ) == WOLFSSL_SUCCESS &&
	         ticket_crypt(ssl, key, key_name, iv, mac, 1, ticket, len))
		rc = WOLFSSL_TICKET_RET_OK;
	explicit_bzero(key, sizeof(key));
	ticketkeys_wipe(&keys);
	if (rc != WOLFSSL_TICKET_RET_REJECT)
		*out_len = len;
	return rc;
}

/* The SHA-256 of the context's certificate. */
static bool ctx_ident(WOLFSSL_CTX *ctx, unsigned char *ident)
{
	WOLFSSL_X509 *x = wolfSSL_CTX_get0_certificate(ctx); /* owned by ctx */
	int len = 0;
	const unsigned char *der = x ? wolfSSL_X509_get_der(x, &len) : NULL;

	return der && len > 0 && wc_Sha256Hash(der, (word32)len, ident) == 0;
}

void tls_ctx_set_ticket_keys(tls_ctx *ctx, const struct ticketkeys *keys)
{
	pthread_mutex_lock(&resume_lock);
	for (struct ticket_key *k = ticket_keys; k; k = k->next) {
		if (k->ctx == ctx)
			k->file = *keys;
	}
	pthread_mutex_unlock(&resume_lock);
}

static bool resumption_bind(WOLFSSL_CTX *ctx)
{
	struct ticket_key *k = xcalloc(1, sizeof(*k));

	k->ctx = ctx;
	if (!ctx_ident(ctx, k->ident) || wolfSSL_CTX_set_TicketEncCb(ctx, ticket_cb) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_TicketEncCtx(ctx, k) != WOLFSSL_SUCCESS) {
		free(k);
		return false;
	}
	/* Sessions neither stored in nor looked up from wolfSSL's process-wide cache: ours. */
	wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_SERVER | WOLFSSL_SESS_CACHE_NO_INTERNAL);
	wolfSSL_CTX_sess_set_new_cb(ctx, session_new_cb);
	wolfSSL_CTX_sess_set_get_cb(ctx, session_get_cb);
	pthread_mutex_lock(&resume_lock);
	k->next = ticket_keys;
	ticket_keys = k;
	pthread_mutex_unlock(&resume_lock);
	return true;
}

/* Retires the context's key: this process makes and resumes nothing more under it. (Stored
 * session IDs are keyed by certificate, like tickets: a later generation's context with the
 * same certificate and name may resume them, as it does their tickets.) */
static void resumption_unbind(WOLFSSL_CTX *ctx)
{
	pthread_mutex_lock(&resume_lock);
	struct ticket_key *k = ticket_keys;
	while (k && k->ctx != ctx)
		k = k->next;
	if (k) {
		ticketkeys_wipe(&k->file);
		k->retired = true;
		k->ctx = NULL;
	}
	pthread_mutex_unlock(&resume_lock);
}

/* At exit, once no context is left: drops every stored session, the cache and the keys. */
static void resumption_cleanup(void)
{
	pthread_mutex_lock(&resume_lock);
	while (ticket_keys) {
		struct ticket_key *k = ticket_keys;
		ticket_keys = k->next;
		explicit_bzero(k, sizeof(*k));
		free(k);
	}
	pthread_mutex_unlock(&resume_lock);
}

/* hsbench: the in-process cost of TLS handshakes with this build's wolfSSL (server side and a verifying
 * client side, over memory buffers, no network): the "crypto ceiling" of a proxy that terminates one TLS
 * leg and originates another. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "benchutil.h"
#include "tls.h" /* livery's own cipher preference, so the server side costs what livery's does */

/* One direction of the in-memory wire. */
struct pipe {
	struct bu_buf b;
};

struct side {
	WOLFSSL *ssl;
	struct pipe *in, *out;
	double cpu; /* seconds spent inside wolfSSL for this side */
};

enum group { G_DEFAULT, G_X25519, G_P256 };

struct hs_case {
	const char *name;
	bool rsa; /* RSA-2048 certificate, else ECDSA P-256 */
	enum group group;
	bool tls12;
	bool resume;  /* measure resumed handshakes (ticket from a previous full one) */
	bool ceiling; /* the case the ceiling is quoted from */
};

static const struct hs_case cases[] = {
        {"ecdsa-p256 x25519 tls1.3", false, G_X25519, false, false, true},
        {"rsa-2048 x25519 tls1.3", true, G_X25519, false, false, false},
        {"ecdsa-p256 p256 tls1.3", false, G_P256, false, false, false},
        {"ecdsa-p256 default-group tls1.3", false, G_DEFAULT, false, false, false},
        {"ecdsa-p256 tls1.2", false, G_X25519, true, false, false},
        {"ecdsa-p256 x25519 tls1.3 resumed", false, G_X25519, false, true, false},
        {"ecdsa-p256 default-group tls1.3 resumed", false, G_DEFAULT, false, true, false},
};

struct result {
	double server_ms, client_ms;
	char version[32], cipher[64], group[32];
	bool resumed;
	int failures;
};

static struct {
	const char *ecdsa_cert, *ecdsa_key, *ecdsa_name;
	const char *rsa_cert, *rsa_key, *rsa_name;
	const char *ca;
	int iterations;
	bool json;
} opt = {.iterations = 400};

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct side *s = arg;
	size_t avail = s->in->b.len - s->in->b.off;

	(void)ssl;
	if (avail == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = avail < (size_t)sz ? avail : (size_t)sz;
	memcpy(buf, s->in->b.data + s->in->b.off, n);
	bu_buf_consume(&s->in->b, n);
	return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct side *s = arg;

	(void)ssl;
	bu_buf_append(&s->out->b, buf, (size_t)sz);
	return sz;
}

static WOLFSSL_CTX *ctx_new(WOLFSSL_METHOD *m)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(m);

	if (!ctx || wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_cipher_list(ctx, tls_cipher_list()) != WOLFSSL_SUCCESS)
		bu_die("cannot create a TLS context");
	wolfSSL_SetIORecv(ctx, io_recv);
	wolfSSL_SetIOSend(ctx, io_send);
	return ctx;
}

static WOLFSSL_CTX *server_ctx(const char *cert, const char *key)
{
	WOLFSSL_CTX *ctx = ctx_new(wolfSSLv23_server_method());

	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		bu_die("%s / %s: cannot load the certificate or key", cert, key);
	return ctx;
}

static WOLFSSL_CTX *client_ctx(bool tls12)
{
	WOLFSSL_CTX *ctx = ctx_new(tls12 ? wolfTLSv1_2_client_method() : wolfSSLv23_client_method());

	/* A new context does not verify peers in this build: verification is asked for. */
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	if (wolfSSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != WOLFSSL_SUCCESS)
		bu_die("%s: cannot load the CA file", opt.ca);
	return ctx;
}

static void client_setup(WOLFSSL *ssl, const struct hs_case *c, const char *name)
{
	int groups[2];

	wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)strlen(name));
	wolfSSL_check_domain_name(ssl, name);
	if (c->group == G_DEFAULT)
		return;
	groups[0] = c->group == G_X25519 ? WOLFSSL_ECC_X25519 : WOLFSSL_ECC_SECP256R1;
	groups[1] = c->group == G_X25519 ? WOLFSSL_ECC_SECP256R1 : WOLFSSL_ECC_X25519;
	wolfSSL_set_groups(ssl, groups, 2);
	if (!c->tls12)
		wolfSSL_UseKeyShare(ssl, (word16)groups[0]);
}

/* Runs one side's handshake step; true once it is complete. Fails hard on errors. */
static bool step(struct side *s, bool server, bool *failed)
{
	double t0 = cpu_now();
	int rc = server ? wolfSSL_accept(s->ssl) : wolfSSL_connect(s->ssl);

	s->cpu += cpu_now() - t0;
	if (rc == WOLFSSL_SUCCESS)
		return true;
	int err = wolfSSL_get_error(s->ssl, rc);
	if (err != WOLFSSL_ERROR_WANT_READ && err != WOLFSSL_ERROR_WANT_WRITE) {
		char msg[WOLFSSL_MAX_ERROR_SZ];
		if (!*failed)
			fprintf(stderr, "hsbench: %s handshake failed: %d %s\n", server ? "server" : "client",
			        err, wolfSSL_ERR_error_string((unsigned long)err, msg));
		*failed = true;
	}
	return false;
}

/* Lets the client take in what the server sent after its Finished (a TLS 1.3 ticket). */
static void drain_client(struct side *cl)
{
	char buf[64];
	double t0 = cpu_now();

	while (cl->in->b.len > cl->in->b.off && wolfSSL_read(cl->ssl, buf, sizeof(buf)) > 0)
		;
	cl->cpu += cpu_now() - t0;
}

/* One complete handshake between fresh objects; the sessions' costs include new/free. Returns the
 * client's session when keep_session, for resumption. */
static WOLFSSL_SESSION *handshake(WOLFSSL_CTX *sctx, WOLFSSL_CTX *cctx, const struct hs_case *c,
                                  const char *name, WOLFSSL_SESSION *resume, struct result *r, double *scpu,
                                  double *ccpu, bool keep_session)
{
	struct pipe c2s = {0}, s2c = {0};
	struct side sv = {.in = &c2s, .out = &s2c}, cl = {.in = &s2c, .out = &c2s};
	bool sdone = false, cdone = false, failed = false;
	WOLFSSL_SESSION *out = NULL;
	double t0 = cpu_now();

	sv.ssl = wolfSSL_new(sctx);
	sv.cpu += cpu_now() - t0;
	t0 = cpu_now();
	cl.ssl = wolfSSL_new(cctx);
	client_setup(cl.ssl, c, name);
	if (resume)
		wolfSSL_set_session(cl.ssl, resume);
	cl.cpu += cpu_now() - t0;
	if (!sv.ssl || !cl.ssl)
		bu_die("wolfSSL_new failed");
	wolfSSL_SetIOReadCtx(sv.ssl, &sv);
	wolfSSL_SetIOWriteCtx(sv.ssl, &sv);
	wolfSSL_SetIOReadCtx(cl.ssl, &cl);
	wolfSSL_SetIOWriteCtx(cl.ssl, &cl);
	for (int round = 0; round < 12 && !(sdone && cdone) && !failed; round++) {
		if (!cdone)
			cdone = step(&cl, false, &failed);
		if (!sdone && !failed)
			sdone = step(&sv, true, &failed);
	}
	if (sdone && cdone) {
		drain_client(&cl);
		snprintf(r->version, sizeof(r->version), "%s", wolfSSL_get_version(cl.ssl));
		snprintf(r->cipher, sizeof(r->cipher), "%s", wolfSSL_get_cipher_name(cl.ssl));
		const char *g = wolfSSL_get_curve_name(cl.ssl);
		snprintf(r->group, sizeof(r->group), "%s", g ? g : "?");
		r->resumed = wolfSSL_session_reused(cl.ssl) == 1;
		if (keep_session)
			out = wolfSSL_get1_session(cl.ssl);
	} else {
		r->failures++;
	}
	t0 = cpu_now();
	wolfSSL_free(sv.ssl);
	sv.cpu += cpu_now() - t0;
	t0 = cpu_now();
	wolfSSL_free(cl.ssl);
	cl.cpu += cpu_now() - t0;
	bu_buf_free(&c2s.b);
	bu_buf_free(&s2c.b);
	*scpu += sv.cpu;
	*ccpu += cl.cpu;
	return out;
}

static struct result run_case(const struct hs_case *c)
{
	const char *cert = c->rsa ? opt.rsa_cert : opt.ecdsa_cert;
	const char *key = c->rsa ? opt.rsa_key : opt.ecdsa_key;
	const char *name = c->rsa ? opt.rsa_name : opt.ecdsa_name;
	WOLFSSL_CTX *sctx = server_ctx(cert, key), *cctx = client_ctx(c->tls12);
	struct result r = {0};
	double scpu = 0, ccpu = 0, junk_s = 0, junk_c = 0;
	WOLFSSL_SESSION *sess = NULL;

	for (int i = 0; i < 20; i++) { /* warm-up; for resumption, also the first full handshake */
		WOLFSSL_SESSION *s = handshake(sctx, cctx, c, name, c->resume ? sess : NULL, &r, &junk_s,
		                               &junk_c, c->resume);
		if (s) {
			wolfSSL_SESSION_free(sess);
			sess = s;
		}
	}
	r.failures = 0;
	for (int i = 0; i < opt.iterations; i++) {
		WOLFSSL_SESSION *s =
		        handshake(sctx, cctx, c, name, c->resume ? sess : NULL, &r, &scpu, &ccpu, c->resume);
		if (s) {
			wolfSSL_SESSION_free(sess);
			sess = s;
		}
	}
	wolfSSL_SESSION_free(sess);
	wolfSSL_CTX_free(sctx);
	wolfSSL_CTX_free(cctx);
	r.server_ms = scpu * 1e3 / opt.iterations;
	r.client_ms = ccpu * 1e3 / opt.iterations;
	return r;
}

static const char *build_kind(void)
{
#if defined(WOLFSSL_SP_X86_64_ASM) || defined(WOLFSSL_SP_ASM)
	return "sp-asm";
#else
	return "generic";
#endif
}

static void print_table(const struct result *rs, size_t n)
{
	printf("wolfSSL %s (%s math), %d handshakes per case, CPU time per handshake:\n\n",
	       wolfSSL_lib_version(), build_kind(), opt.iterations);
	printf("| case | server ms | verifying client ms | sum ms | ceiling sessions/s/core | negotiated "
	       "|\n");
	printf("|---|---:|---:|---:|---:|---|\n");
	for (size_t i = 0; i < n; i++) {
		const struct result *r = &rs[i];
		double sum = r->server_ms + r->client_ms;
		printf("| %s | %.3f | %.3f | %.3f | %.0f | %s %s %s%s%s |\n", cases[i].name, r->server_ms,
		       r->client_ms, sum, sum > 0 ? 1e3 / sum : 0, r->version, r->cipher, r->group,
		       r->resumed ? " resumed" : "", r->failures ? " (FAILURES)" : "");
	}
	for (size_t i = 0; i < n; i++)
		if (cases[i].ceiling)
			printf("\nCrypto ceiling (%s): 1 / (server + verifying client handshake) = %.0f "
			       "sessions/s per core\n",
			       cases[i].name, 1e3 / (rs[i].server_ms + rs[i].client_ms));
}

static void print_json(const struct result *rs, size_t n)
{
	printf("{\"wolfssl\":\"%s\",\"math\":\"%s\",\"iterations\":%d,\"cases\":[", wolfSSL_lib_version(),
	       build_kind(), opt.iterations);
	for (size_t i = 0; i < n; i++) {
		const struct result *r = &rs[i];
		printf("%s{\"case\":\"%s\",\"server_ms\":%.4f,\"client_ms\":%.4f,\"version\":\"%s\","
		       "\"cipher\":\"%s\",\"group\":\"%s\",\"resumed\":%s,\"failures\":%d}",
		       i ? "," : "", cases[i].name, r->server_ms, r->client_ms, r->version, r->cipher,
		       r->group, r->resumed ? "true" : "false", r->failures);
	}
	printf("]");
	for (size_t i = 0; i < n; i++)
		if (cases[i].ceiling)
			printf(",\"ceiling_case\":\"%s\",\"ceiling_sessions_per_sec\":%.1f", cases[i].name,
			       1e3 / (rs[i].server_ms + rs[i].client_ms));
	printf("}\n");
}

static void usage(FILE *f)
{
	fputs("usage: livery-hsbench --ca CA.pem --ecdsa CERT,KEY,NAME --rsa CERT,KEY,NAME [-n N] [--json]\n"
	      "  Server (livery's cipher list) and verifying client (CA + SNI + name check) handshakes in\n"
	      "  memory; CPU time per handshake for each side, and the ceiling 1/(server+client).\n"
	      "  CERT is a full chain, NAME a DNS name in it. -n: handshakes per case (default 400).\n",
	      f);
}

static void split3(char *spec, const char **a, const char **b, const char **c)
{
	char *p1 = strchr(spec, ','), *p2 = p1 ? strchr(p1 + 1, ',') : NULL;

	if (!p2)
		bu_die("want CERT,KEY,NAME, got %s", spec);
	*p1 = *p2 = '\0';
	*a = spec;
	*b = p1 + 1;
	*c = p2 + 1;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"ca", required_argument, NULL, 'C'},  {"ecdsa", required_argument, NULL, 'E'},
	        {"rsa", required_argument, NULL, 'R'}, {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'C':
			opt.ca = optarg;
			break;
		case 'E':
			split3(optarg, &opt.ecdsa_cert, &opt.ecdsa_key, &opt.ecdsa_name);
			break;
		case 'R':
			split3(optarg, &opt.rsa_cert, &opt.rsa_key, &opt.rsa_name);
			break;
		case 'n':
			opt.iterations = atoi(optarg);
			break;
		case 'j':
			opt.json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (!opt.ca || !opt.ecdsa_cert || !opt.rsa_cert || opt.iterations < 1) {
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	enum { NCASES = sizeof(cases) / sizeof(cases[0]) };
	struct result rs[NCASES];

	parse_args(argc, argv);
	wolfSSL_Init();
	for (size_t i = 0; i < NCASES; i++)
		rs[i] = run_case(&cases[i]);
	if (opt.json)
		print_json(rs, NCASES);
	else
		print_table(rs, NCASES);
	wolfSSL_Cleanup();
	for (size_t i = 0; i < NCASES; i++)
		if (rs[i].failures)
			return 1;
	return 0;
}

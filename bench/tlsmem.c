/* tlsmem: the heap one idle proxied session's two TLS objects hold with this build's wolfSSL, counted with
 * mallinfo2 around N in-memory handshakes through livery's own tls module (client leg: a server object
 * chosen like livery's; relay leg: a verifying client object), with a few SMTP lines exchanged, then idle. */
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "benchutil.h"
#include "iobuf.h"
#include "tls.h"

/* One side of the in-memory wire: the ciphertext it has to read, and its connection. */
struct end {
	struct iobuf in;
	struct tls_conn *conn;
};

struct pair {
	struct end server, client; /* the client leg's object, the relay leg's object */
};

static struct {
	const char *cert, *key, *ca, *name;
	int n;
	bool resume; /* the relay legs resume the first one's session, as livery's do */
} opt = {.n = 200};

static tls_session *resume_from; /* the first relay leg's session, with --resume */

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static void pair_send_to_client(void *arg, const char *buf, size_t len)
{
	iobuf_append(&((struct pair *)arg)->client.in, buf, len);
}

static void pair_send_to_server(void *arg, const char *buf, size_t len)
{
	iobuf_append(&((struct pair *)arg)->server.in, buf, len);
}

/* Reads whatever decrypted bytes wait at e; false on a failure. */
static bool drain(struct end *e)
{
	char buf[4096];
	size_t n;
	enum tls_status st;

	while ((st = tls_conn_read(e->conn, buf, sizeof(buf), &n)) == TLS_OK)
		;
	return st == TLS_WANT_READ;
}

static bool handshake(struct pair *p)
{
	for (int round = 0; round < 12; round++) {
		enum tls_status c = tls_conn_handshake(p->client.conn);
		enum tls_status s = tls_conn_handshake(p->server.conn);
		if (c == TLS_OK && s == TLS_OK)
			return true;
		if (c == TLS_ERR || s == TLS_ERR || c == TLS_CLOSED || s == TLS_CLOSED)
			return false;
	}
	return false;
}

/* A greeting and an EHLO each way, as a session's legs carry before they go idle. */
static bool converse(struct pair *p)
{
	static const char reply[] = "250-smtp.acme.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n";
	static const char cmd[] = "EHLO client.example\r\n";

	return drain(&p->client) && tls_conn_write(p->client.conn, cmd, sizeof(cmd) - 1) == TLS_OK &&
	       drain(&p->server) && tls_conn_write(p->server.conn, reply, sizeof(reply) - 1) == TLS_OK &&
	       drain(&p->client);
}

static void pair_open(struct pair *p, tls_ctx *sctx, tls_ctx *cctx)
{
	iobuf_init(&p->server.in);
	iobuf_init(&p->client.in);
	p->client.conn = tls_conn_new(cctx, &p->client.in, pair_send_to_server, p);
	tls_conn_set_client_names(p->client.conn, opt.name, opt.name);
	tls_conn_set_session(p->client.conn, resume_from);
	/* The server object is made once the ClientHello is there, as livery makes it. */
	tls_conn_handshake(p->client.conn);
	p->server.conn = tls_conn_new(sctx, &p->server.in, pair_send_to_client, p);
	tls_conn_set_server_name(p->server.conn, opt.name);
	if (!handshake(p) || !converse(p))
		bu_die("handshake failed: %s / %s", tls_conn_error(p->client.conn),
		       tls_conn_error(p->server.conn));
	if (opt.resume && !resume_from)
		resume_from = tls_conn_get_session(p->client.conn);
	else if (opt.resume && !tls_conn_resumed(p->client.conn))
		bu_die("the relay leg did not resume");
	/* livery's buffers are its own to count (bench/run's RSS has them): only wolfSSL's here. */
	iobuf_free(&p->server.in);
	iobuf_free(&p->client.in);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: livery-tlsmem --cert PEM --key KEY --ca CA --name HOST [-n N] [--resume]\n"
	           "Heap (mallinfo2) per idle TLS object of each leg, over N in-memory sessions;\n"
	           "--resume: the relay legs resume a session (livery's default), else full handshakes.\n");
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {{"cert", 1, 0, 'c'}, {"key", 1, 0, 'k'},    {"ca", 1, 0, 'a'},
	                                   {"name", 1, 0, 'N'}, {"resume", 0, 0, 'r'}, {"help", 0, 0, 'h'},
	                                   {0, 0, 0, 0}};
	int ch;

	while ((ch = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'c':
			opt.cert = optarg;
			break;
		case 'k':
			opt.key = optarg;
			break;
		case 'a':
			opt.ca = optarg;
			break;
		case 'N':
			opt.name = optarg;
			break;
		case 'n':
			opt.n = atoi(optarg);
			break;
		case 'r':
			opt.resume = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (!opt.cert || !opt.key || !opt.ca || !opt.name || opt.n <= 0) {
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	char err[512];
	bool key_fault;

	parse_args(argc, argv);
	tls_global_init();
	tls_ctx *sctx = tls_server_ctx_new(opt.cert, opt.key, &key_fault, err, sizeof(err));
	tls_ctx *cctx = tls_client_ctx_new(opt.ca, true, err, sizeof(err));
	if (!sctx || !cctx)
		bu_die("%s", err);
	struct pair *pairs = bu_xcalloc((size_t)opt.n, sizeof(*pairs));
	pair_open(&pairs[0], sctx, cctx); /* first use: per-process tables, not per session */
	size_t h0 = heap_in_use();
	for (int i = 1; i < opt.n; i++)
		pair_open(&pairs[i], sctx, cctx);
	size_t h1 = heap_in_use();
	for (int i = 1; i < opt.n; i++)
		tls_conn_free(pairs[i].client.conn);
	size_t h2 = heap_in_use();
	double per = (double)(opt.n - 1);
	printf("client leg (server object): %.0f bytes\n", (double)(h2 - h0) / per);
	printf("relay leg (client object):  %.0f bytes\n", (double)(h1 - h2) / per);
	printf("both:                       %.0f bytes (%.1f KiB)\n", (double)(h1 - h0) / per,
	       (double)(h1 - h0) / per / 1024);
	for (int i = 1; i < opt.n; i++)
		tls_conn_free(pairs[i].server.conn);
	tls_conn_free(pairs[0].server.conn);
	tls_conn_free(pairs[0].client.conn);
	free(pairs);
	if (resume_from)
		wolfSSL_SESSION_free(resume_from);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
	tls_global_cleanup();
	return 0;
}

/* loadgen: livery-loadgen's entry point (options, scheduling of sessions under the concurrency, count,
 * duration and connect-rate bounds, hold mode, signals, the report). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loadgen.h"

static struct lg G;

static void usage(FILE *f)
{
	fputs("usage: livery-loadgen --port P --ca CA.pem --sni NAME[,NAME...] [options]\n"
	      "  --host IPV4          server address (default 127.0.0.1)\n"
	      "  -c, --concurrency N  sessions in flight (default 10)\n"
	      "  -n, --sessions N     stop after N sessions (default 0: bounded by --duration only)\n"
	      "  -d, --duration S     stop starting sessions after S seconds (default 60; always a bound)\n"
	      "  -k, --messages K     messages per session (default 1)\n"
	      "  -s, --size BYTES     bytes per message (default 2048)\n"
	      "  --mode starttls|implicit  STARTTLS after the banner, or TLS on connect (465)\n"
	      "  --sni LIST           SNI names, one drawn at random per session\n"
	      "  --ca FILE            CA bundle the server certificate must chain to (always verified)\n"
	      "  --verify-name NAME   name the certificate must match (default: the session's SNI)\n"
	      "  --user U --password P  AUTH PLAIN credentials (default user@acme.test / secret)\n"
	      "  --resume             offer the previous TLS session per SNI name (default: full "
	      "handshakes)\n"
	      "  --rate R             at most R new connections per second (default: no cap)\n"
	      "  --timeout S          a session fails after S seconds without progress (default 30)\n"
	      "  --groups x25519|p256|default  key share offered first (default x25519, like browsers)\n"
	      "  --ehlo NAME          EHLO argument (default loadgen.bench.test)\n"
	      "  --hold               open -c sessions up to AUTH, keep them idle until SIGINT/SIGTERM or\n"
	      "                       --duration, then QUIT them (for memory per live session)\n"
	      "  --ready-file F       hold mode: written (\"held N\") once every session is up or failed\n"
	      "  --json               one JSON object instead of the table\n",
	      f);
}

static void split_sni(char *list)
{
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		if (G.o.nsni == LG_MAX_SNI)
			bu_die("at most %d SNI names", LG_MAX_SNI);
		G.o.sni[G.o.nsni++] = tok;
	}
}

static void parse_args(int argc, char **argv)
{
	enum {
		O_HOST = 256,
		O_PORT,
		O_MODE,
		O_SNI,
		O_CA,
		O_VERIFY,
		O_USER,
		O_PASS,
		O_RESUME,
		O_RATE,
		O_TIMEOUT,
		O_GROUPS,
		O_EHLO,
		O_HOLD,
		O_READY,
		O_JSON
	};
	static const struct option lo[] = {
	        {"host", required_argument, NULL, O_HOST},
	        {"port", required_argument, NULL, O_PORT},
	        {"concurrency", required_argument, NULL, 'c'},
	        {"sessions", required_argument, NULL, 'n'},
	        {"duration", required_argument, NULL, 'd'},
	        {"messages", required_argument, NULL, 'k'},
	        {"size", required_argument, NULL, 's'},
	        {"mode", required_argument, NULL, O_MODE},
	        {"sni", required_argument, NULL, O_SNI},
	        {"ca", required_argument, NULL, O_CA},
	        {"verify-name", required_argument, NULL, O_VERIFY},
	        {"user", required_argument, NULL, O_USER},
	        {"password", required_argument, NULL, O_PASS},
	        {"resume", no_argument, NULL, O_RESUME},
	        {"rate", required_argument, NULL, O_RATE},
	        {"timeout", required_argument, NULL, O_TIMEOUT},
	        {"groups", required_argument, NULL, O_GROUPS},
	        {"ehlo", required_argument, NULL, O_EHLO},
	        {"hold", no_argument, NULL, O_HOLD},
	        {"ready-file", required_argument, NULL, O_READY},
	        {"json", no_argument, NULL, O_JSON},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int ch;

	G.o = (struct lg_opts){.host = "127.0.0.1",
	                       .concurrency = 10,
	                       .duration = 60,
	                       .messages = 1,
	                       .size = 2048,
	                       .user = "user@acme.test",
	                       .password = "secret",
	                       .timeout = 30,
	                       .groups = "x25519",
	                       .ehlo = "loadgen.bench.test"};
	while ((ch = getopt_long(argc, argv, "c:n:d:k:s:h", lo, NULL)) != -1) {
		switch (ch) {
		case O_HOST:
			G.o.host = optarg;
			break;
		case O_PORT:
			G.o.port = atoi(optarg);
			break;
		case 'c':
			G.o.concurrency = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			G.o.sessions = strtoul(optarg, NULL, 10);
			break;
		case 'd':
			G.o.duration = atof(optarg);
			break;
		case 'k':
			G.o.messages = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			G.o.size = strtoul(optarg, NULL, 10);
			break;
		case O_MODE:
			if (strcmp(optarg, "implicit") != 0 && strcmp(optarg, "starttls") != 0)
				bu_die("--mode is starttls or implicit");
			G.o.implicit = strcmp(optarg, "implicit") == 0;
			break;
		case O_SNI:
			split_sni(optarg);
			break;
		case O_CA:
			G.o.ca = optarg;
			break;
		case O_VERIFY:
			G.o.verify_name = optarg;
			break;
		case O_USER:
			G.o.user = optarg;
			break;
		case O_PASS:
			G.o.password = optarg;
			break;
		case O_RESUME:
			G.o.resume = true;
			break;
		case O_RATE:
			G.o.rate = atof(optarg);
			break;
		case O_TIMEOUT:
			G.o.timeout = atof(optarg);
			break;
		case O_GROUPS:
			G.o.groups = optarg;
			break;
		case O_EHLO:
			G.o.ehlo = optarg;
			break;
		case O_HOLD:
			G.o.hold = true;
			break;
		case O_READY:
			G.o.ready_file = optarg;
			break;
		case O_JSON:
			G.o.json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc || G.o.port <= 0 || !G.o.ca || G.o.nsni == 0 || G.o.concurrency == 0 ||
	    G.o.duration <= 0 || G.o.timeout <= 0) {
		usage(stderr);
		exit(2);
	}
	if (strcmp(G.o.groups, "x25519") && strcmp(G.o.groups, "p256") && strcmp(G.o.groups, "default"))
		bu_die("--groups is x25519, p256 or default");
	if (G.o.hold)
		G.o.sessions = G.o.concurrency;
}

/* One message of exactly size bytes (headers, then 78-character lines), then "." CRLF. */
static void build_message(void)
{
	struct bu_buf b = {0};
	static const char head[] = "From: <loadgen@bench.test>\r\nTo: <sink@bench.test>\r\n"
	                           "Subject: livery bench\r\nMessage-ID: <bench@loadgen.bench.test>\r\n\r\n";
	char line[80];

	bu_buf_append(&b, head, sizeof(head) - 1);
	memset(line, 'x', sizeof(line));
	while (b.len + 2 < G.o.size) {
		size_t n = G.o.size - b.len - 2;
		if (n > 78)
			n = 78;
		if (G.o.size - b.len - 2 - n > 0 && G.o.size - b.len - 2 - n < 3)
			n -= 3; /* leave room for a last line of at least one character */
		bu_buf_append(&b, line, n);
		bu_buf_append(&b, "\r\n", 2);
	}
	bu_buf_append(&b, ".\r\n", 3);
	G.msg = b.data;
	G.msglen = b.len;
}

static void tls_setup(void)
{
	wolfSSL_Init();
	G.ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	if (!G.ctx || wolfSSL_CTX_SetMinVersion(G.ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS)
		bu_die("cannot create the TLS context");
	/* A new context does not verify peers in this build: verifying is the point here. */
	wolfSSL_CTX_set_verify(G.ctx, WOLFSSL_VERIFY_PEER, NULL);
	if (wolfSSL_CTX_load_verify_locations(G.ctx, G.o.ca, NULL) != WOLFSSL_SUCCESS)
		bu_die("%s: cannot load the CA file", G.o.ca);
	if (strcmp(G.o.groups, "default") != 0) {
		int x = strcmp(G.o.groups, "x25519") == 0;
		int groups[2] = {x ? WOLFSSL_ECC_X25519 : WOLFSSL_ECC_SECP256R1,
		                 x ? WOLFSSL_ECC_SECP256R1 : WOLFSSL_ECC_X25519};
		wolfSSL_CTX_set_groups(G.ctx, groups, 2);
	}
}

void lg_count_error(struct lg *lg, const char *kind)
{
	for (unsigned i = 0; i < lg->nerrors; i++) {
		if (strcmp(lg->errors[i].kind, kind) == 0) {
			lg->errors[i].count++;
			return;
		}
	}
	if (lg->nerrors == LG_MAX_ERRORS)
		kind = "other";
	struct lg_error *e = &lg->errors[lg->nerrors < LG_MAX_ERRORS ? lg->nerrors++ : LG_MAX_ERRORS - 1];
	snprintf(e->kind, sizeof(e->kind), "%s", kind);
	e->count++;
}

/* ---- scheduling ---- */

static bool may_start(void)
{
	if (G.stopping || G.active >= G.o.concurrency || (G.o.sessions && G.started >= G.o.sessions))
		return false;
	return G.o.rate <= 0 || (double)G.started < G.o.rate * (bu_now() - G.t_start) + 1;
}

static void close_loop_handles(void)
{
	if (G.closing_handles)
		return;
	G.closing_handles = true;
	uv_close((uv_handle_t *)&G.tick, NULL);
	uv_close((uv_handle_t *)&G.sigint, NULL);
	uv_close((uv_handle_t *)&G.sigterm, NULL);
}

static bool all_started(void)
{
	return G.stopping || (G.o.sessions && G.started >= G.o.sessions);
}

static void fill(void)
{
	while (may_start())
		lg_conn_start(&G);
	if (all_started() && G.active == 0) {
		if (G.t_end == 0)
			G.t_end = bu_now();
		close_loop_handles();
	}
}

static void write_ready(void)
{
	char tmp[4096];

	fprintf(stderr, "livery-loadgen: holding %u sessions (%lu failed)\n", G.held, G.failed);
	if (!G.o.ready_file)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", G.o.ready_file);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "held %u\n", G.held) < 0 || fclose(f) != 0 || rename(tmp, G.o.ready_file) != 0)
		bu_die("%s: cannot write the ready file", G.o.ready_file);
}

static void check_ready(void)
{
	if (G.o.hold && !G.ready_reported && G.started >= G.o.sessions && G.active == G.held) {
		G.ready_reported = true;
		write_ready();
	}
}

void lg_session_held(struct lg *lg)
{
	lg->held++;
	check_ready();
}

void lg_session_closed(struct lg *lg)
{
	(void)lg;
	if (!G.stopping)
		check_ready();
	fill();
}

/* Stops starting sessions; hold mode QUITs the idle ones. Sessions in flight get --timeout. */
static void begin_stop(void)
{
	if (G.stopping)
		return;
	G.stopping = true;
	G.stop_at = bu_now() + G.o.timeout;
	if (G.o.hold) {
		for (struct lg_conn *c = G.live, *next; c; c = next) {
			next = lg_conn_next(c);
			lg_conn_release(c);
		}
	}
	fill();
}

static void abort_all(void)
{
	for (struct lg_conn *c = G.live, *next; c; c = next) {
		next = lg_conn_next(c);
		lg_conn_abort(c, "aborted");
	}
}

static void on_tick(uv_timer_t *t)
{
	double now = bu_now();

	(void)t;
	if (!G.stopping && now - G.t_start >= G.o.duration)
		begin_stop();
	if (G.stopping && now >= G.stop_at)
		abort_all();
	fill();
}

static void on_signal(uv_signal_t *s, int sig)
{
	(void)s;
	(void)sig;
	if (G.stopping)
		abort_all();
	else
		begin_stop();
}

/* ---- report ---- */

struct pct {
	double p50, p90, p99;
};

static struct pct pcts(struct bu_samples *s)
{
	return (struct pct){bu_percentile(s, 50), bu_percentile(s, 90), bu_percentile(s, 99)};
}

/* Three decimals, as the table shows: the JSON then reads like the table, not like %.17g. A
 * rate over no elapsed time is 0, not NaN (which JSON cannot hold, so json_real would refuse it). */
static double r3(double x)
{
	return isfinite(x) ? round(x * 1000.0) / 1000.0 : 0.0;
}

static json_t *pct_json(struct pct p)
{
	return json_pack("{s:f,s:f,s:f}", "p50", r3(p.p50), "p90", r3(p.p90), "p99", r3(p.p99));
}

static json_t *errors_json(void)
{
	json_t *e = json_object();

	for (unsigned i = 0; e && i < G.nerrors; i++)
		json_object_set_new(e, G.errors[i].kind, json_integer((json_int_t)G.errors[i].count));
	return e;
}

/* One object: bench/run and bench/report.py read these fields. "o" steals the sub-objects, and a
 * NULL among them makes json_pack fail as a whole (out of memory), reported below. */
static void print_json(double elapsed)
{
	char target[300];
	json_t *j;

	snprintf(target, sizeof(target), "%s:%d", G.o.host, G.o.port);
	j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:o,s:o,s:o,s:o}",
	              "target", target, "mode", G.o.implicit ? "implicit" : "starttls", "concurrency",
	              (json_int_t)G.o.concurrency, "messages_per_session", (json_int_t)G.o.messages,
	              "message_size", (json_int_t)G.o.size, "resume", G.o.resume, "hold", G.o.hold, "held",
	              (json_int_t)G.held, "started", (json_int_t)G.started, "sessions_ok", (json_int_t)G.ok,
	              "sessions_failed", (json_int_t)G.failed, "messages", (json_int_t)G.messages,
	              "tls_resumed", (json_int_t)G.resumed, "elapsed_s", r3(elapsed), "sessions_per_s",
	              r3(G.ok / elapsed), "messages_per_s", r3(G.messages / elapsed), "mb_per_s",
	              r3((double)G.messages * (double)G.o.size / elapsed / 1e6), "banner_ms",
	              pct_json(pcts(&G.banner_ms)), "tls_handshake_ms", pct_json(pcts(&G.tls_ms)),
	              "session_ms", pct_json(pcts(&G.session_ms)), "errors", errors_json());
	if (!j || json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15)) != 0 || putchar('\n') == EOF)
		fputs("livery-loadgen: cannot write the JSON report\n", stderr);
	json_decref(j);
}

static void print_table(double elapsed)
{
	struct pct b = pcts(&G.banner_ms), t = pcts(&G.tls_ms), s = pcts(&G.session_ms);

	printf("livery-loadgen: %s:%d %s, concurrency %u, %u message(s) of %zu bytes, TLS resumption %s\n",
	       G.o.host, G.o.port, G.o.implicit ? "implicit TLS" : "STARTTLS", G.o.concurrency, G.o.messages,
	       G.o.size, G.o.resume ? "on" : "off");
	printf("sessions: %lu ok, %lu failed in %.2f s; %lu TLS sessions resumed\n", G.ok, G.failed, elapsed,
	       G.resumed);
	printf("throughput: %.1f sessions/s, %.1f messages/s, %.2f MB/s\n", G.ok / elapsed,
	       G.messages / elapsed, (double)G.messages * (double)G.o.size / elapsed / 1e6);
	printf("%-16s %9s %9s %9s\n", "latency (ms)", "p50", "p90", "p99");
	printf("%-16s %9.2f %9.2f %9.2f\n", "banner", b.p50, b.p90, b.p99);
	printf("%-16s %9.2f %9.2f %9.2f\n", "TLS handshake", t.p50, t.p90, t.p99);
	printf("%-16s %9.2f %9.2f %9.2f\n", "session", s.p50, s.p90, s.p99);
	if (G.o.hold)
		printf("held: %u sessions after AUTH at the peak\n", G.held);
	printf("errors:%s\n", G.nerrors ? "" : " none");
	for (unsigned i = 0; i < G.nerrors; i++)
		printf("  %-28s %lu\n", G.errors[i].kind, G.errors[i].count);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	unsigned held_peak = 0;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	srandom(12345);
	build_message();
	tls_setup();
	lg_auth_line(&G);
	G.loop = uv_default_loop();
	uv_timer_init(G.loop, &G.tick);
	uv_signal_init(G.loop, &G.sigint);
	uv_signal_init(G.loop, &G.sigterm);
	uv_signal_start(&G.sigint, on_signal, SIGINT);
	uv_signal_start(&G.sigterm, on_signal, SIGTERM);
	G.t_start = bu_now();
	uv_timer_start(&G.tick, on_tick, 5, G.o.rate > 0 ? 2 : 20);
	fill();
	while (uv_run(G.loop, UV_RUN_ONCE))
		if (G.held > held_peak)
			held_peak = G.held;
	G.held = held_peak;
	double elapsed = (G.t_end ? G.t_end : bu_now()) - G.t_start;
	if (elapsed <= 0)
		elapsed = 1e-9;
	if (G.o.json)
		print_json(elapsed);
	else
		print_table(elapsed);
	for (unsigned i = 0; i < G.o.nsni; i++)
		wolfSSL_SESSION_free(G.sessions[i]);
	wolfSSL_CTX_free(G.ctx);
	wolfSSL_Cleanup();
	free(G.msg);
	return G.failed > 0 && G.ok == 0 && G.held == 0 ? 1 : 0;
}

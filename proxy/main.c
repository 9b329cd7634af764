/* main: command line, configuration loading, signals, the event loop, and drain on shutdown; no SMTP and no wolfSSL here. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "certstore.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "tls.h"
#include "util.h"

#define LIVERY_VERSION "0.1.0"
/* How long sessions may go on after SIGTERM before they are ended with a 421. */
#define DRAIN_TIMEOUT_MS 10000

static const char usage[] =
	"Usage: livery -c FILE [--check] [--log-level LEVEL]\n"
	"\n"
	"livery is an SMTP submission proxy: it answers under branded host names with the\n"
	"certificate chosen by SNI, passes the client's AUTH through, and relays each session\n"
	"over verified TLS to the tenant's upstream relay.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE      configuration file (see config/livery.conf)\n"
	"      --check            validate the configuration (including certificates and\n"
	"                         keys), print \"FILE: OK\" and exit\n"
	"  -l, --log-level LEVEL  error, warn, info or debug (overrides log_level)\n"
	"  -h, --help             show this help\n"
	"  -V, --version          show the version\n"
	"\n"
	"Exit status: 0 on success, 1 on a runtime error (e.g. a port cannot be bound),\n"
	"2 on a usage or configuration error. SIGTERM or SIGINT stops accepting, lets\n"
	"sessions finish for up to 10 seconds, then ends them with 421.\n";

struct options {
	const char *config;
	const char *log_level;
	bool check;
};

struct app {
	uv_loop_t loop;
	struct server srv;
	struct listeners *listeners;
	uv_signal_t sigterm, sigint;
	uv_timer_t drain_timer;
};

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
		{"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:l:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'k': o->check = true; break;
		case 'l': o->log_level = optarg; break;
		case 'h': fputs(usage, stdout); exit(0);
		case 'V': puts("livery " LIVERY_VERSION); exit(0);
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind < argc || !o->config) {
		fprintf(stderr, "livery: %s\n\n%s", optind < argc ? "unexpected argument" : "-c FILE is required", usage);
		return 2;
	}
	return 0;
}

static void close_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void on_drained(struct server *srv)
{
	struct app *app = container_of(srv, struct app, srv);

	log_info("all sessions ended; exiting");
	uv_walk(&app->loop, close_handle, NULL);
}

static void end_all_sessions(struct app *app)
{
	struct session *s = app->srv.sessions;

	while (s) {
		struct session *next = session_next(s);
		session_shutdown(s); /* may not free s now: it frees itself once its handles close */
		s = next;
	}
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct app *app = container_of(t, struct app, drain_timer);

	log_warn("drain timeout: ending %zu sessions", app->srv.nsessions);
	end_all_sessions(app);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct app *app = sig->data;

	if (app->srv.draining) {
		log_warn("second signal: ending %zu sessions now", app->srv.nsessions);
		end_all_sessions(app);
		return;
	}
	log_info("signal %d: no longer accepting; draining %zu sessions", signum, app->srv.nsessions);
	app->srv.draining = true;
	listeners_close(app->listeners);
	app->listeners = NULL;
	if (app->srv.nsessions == 0) {
		on_drained(&app->srv);
		return;
	}
	uv_timer_start(&app->drain_timer, on_drain_timeout, DRAIN_TIMEOUT_MS, 0);
}

static int run(struct app *app)
{
	char err[512];

	app->listeners = listeners_open(&app->srv, err, sizeof(err));
	if (!app->listeners) {
		log_error("%s", err);
		uv_walk(&app->loop, close_handle, NULL);
		uv_run(&app->loop, UV_RUN_DEFAULT);
		return 1;
	}
	uv_signal_init(&app->loop, &app->sigterm);
	uv_signal_init(&app->loop, &app->sigint);
	uv_timer_init(&app->loop, &app->drain_timer);
	app->sigterm.data = app->sigint.data = app;
	uv_signal_start(&app->sigterm, on_signal, SIGTERM);
	uv_signal_start(&app->sigint, on_signal, SIGINT);
	log_info("ready");
	uv_run(&app->loop, UV_RUN_DEFAULT);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	char err[1024];
	enum log_level level;

	int rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc;
	if (o.log_level && !log_level_parse(o.log_level, &level)) {
		fprintf(stderr, "livery: unknown log level '%s'\n", o.log_level);
		return 2;
	}
	struct config *cfg = config_load(o.config, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	log_set_level(o.log_level ? level : cfg->log_level);
	tls_global_init();
	struct certstore *certs = certstore_new(cfg, err, sizeof(err));
	if (!certs) {
		fprintf(stderr, "%s\n", err);
		rc = 2;
	} else if (o.check) {
		printf("%s: OK\n", o.config);
	} else {
		/* libuv does not ignore SIGPIPE, and a peer closing mid-write must not kill us. */
		signal(SIGPIPE, SIG_IGN);
		static struct app app;
		uv_loop_init(&app.loop);
		app.srv = (struct server){.loop = &app.loop, .cfg = cfg, .certs = certs, .on_drained = on_drained,
					  .per_ip = iptable_new(), .relay_sessions = tls_session_cache_new()};
		rc = run(&app);
		uv_loop_close(&app.loop);
		iptable_free(app.srv.per_ip);
		tls_session_cache_free(app.srv.relay_sessions);
	}
	certstore_free(certs);
	config_free(cfg);
	tls_global_cleanup();
	return rc;
}

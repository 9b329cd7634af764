/* main: command line, configuration loading, signals, worker threads (one event loop each), and drain on
 * shutdown; no SMTP and no wolfSSL here. */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "certmon.h"
#include "certstore.h"
#include "check.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "tls.h"
#include "util.h"

#ifndef LIVERY_VERSION
#error "LIVERY_VERSION comes from CMakeLists.txt (project VERSION)"
#endif

static const char usage[] =
        "Usage: livery -c FILE [--check] [--log-level LEVEL]\n"
        "       livery check -c FILE [--dns]   (a report: livery check --help)\n"
        "\n"
        "livery is an SMTP submission proxy: it answers under branded host names with the\n"
        "certificate chosen by SNI, passes the client's AUTH through, and relays each session\n"
        "over verified TLS to the tenant's upstream relay.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE      configuration file (see config/livery.conf)\n"
        "      --check            validate the configuration (including certificates, keys\n"
        "                         and their dates), print \"FILE: OK\" and exit\n"
        "  -l, --log-level LEVEL  error, warn, info or debug (overrides log_level)\n"
        "  -h, --help             show this help\n"
        "  -V, --version          show the version\n"
        "\n"
        "Exit status: 0 on success, 1 on a runtime error (e.g. a port cannot be bound),\n"
        "2 on a usage or configuration error. SIGTERM or SIGINT stops accepting, lets\n"
        "sessions finish for up to limits.shutdown_timeout seconds (default 10), then ends\n"
        "them with 421; a second signal ends them at once.\n";

struct options {
	const char *config;
	const char *log_level;
	bool check;
};

enum worker_command { CMD_NONE, CMD_DRAIN, CMD_END_SESSIONS };

/* One event loop and everything on it; the main thread only watches signals. */
struct worker {
	uv_loop_t loop;
	struct server srv;
	struct listeners *listeners;
	uv_async_t wake;
	uv_timer_t drain_timer;
	uv_thread_t thread;
	atomic_int command;
	bool wake_closed; /* under app->wake_lock: no uv_async_send once the handle closes */
	struct app *app;
};

struct app {
	uv_loop_t loop;
	uv_signal_t sigterm, sigint;
	uv_async_t worker_done;
	atomic_int workers_running;
	bool signalled;
	uv_mutex_t wake_lock;
	struct worker *workers;
	unsigned nworkers;
	struct certmon *certmon;
};

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},    {"check", no_argument, NULL, 'k'},
	        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:l:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'k':
			o->check = true;
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case 'V':
			puts("livery " LIVERY_VERSION);
			exit(0);
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc || !o->config) {
		fprintf(stderr, "livery: %s\n\n%s",
		        optind < argc ? "unexpected argument" : "-c FILE is required", usage);
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

/* ---- in a worker's thread ---- */

static void on_drained(struct server *srv)
{
	struct worker *w = container_of(srv, struct worker, srv);

	uv_mutex_lock(&w->app->wake_lock);
	w->wake_closed = true;
	uv_walk(&w->loop, close_handle, NULL); /* the loop, and so the thread, then ends */
	uv_mutex_unlock(&w->app->wake_lock);
}

static void end_all_sessions(struct worker *w)
{
	struct session *s = w->srv.sessions;

	while (s) {
		struct session *next = session_next(s);
		session_shutdown(s); /* does not free s now: it frees itself once its handles close */
		s = next;
	}
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct worker *w = container_of(t, struct worker, drain_timer);

	log_warn("drain timeout: ending %zu sessions", w->srv.nsessions);
	end_all_sessions(w);
}

static void start_drain(struct worker *w)
{
	if (w->srv.draining)
		return;
	w->srv.draining = true;
	listeners_close(w->listeners);
	w->listeners = NULL;
	if (w->srv.nsessions == 0)
		on_drained(&w->srv);
	else
		uv_timer_start(&w->drain_timer, on_drain_timeout, w->srv.cfg->limits.shutdown_timeout_ms, 0);
}

static void on_wake(uv_async_t *a)
{
	struct worker *w = container_of(a, struct worker, wake);
	int cmd = atomic_exchange(&w->command, CMD_NONE);

	if (cmd == CMD_END_SESSIONS) {
		start_drain(w);
		end_all_sessions(w);
	} else if (cmd == CMD_DRAIN) {
		start_drain(w);
	}
}

static void worker_run(void *arg)
{
	struct worker *w = arg;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	tls_thread_cleanup();
	atomic_fetch_sub(&w->app->workers_running, 1);
	uv_async_send(&w->app->worker_done);
}

/* Runs in the main thread before the worker's thread starts, so bind errors are reported
 * before livery says it is ready. */
static int worker_init(struct worker *w, struct app *app, int index, const struct config *cfg,
                       const struct certstore *certs)
{
	char err[512];

	w->app = app;
	uv_loop_init(&w->loop);
	w->srv = (struct server){.loop = &w->loop,
	                         .cfg = cfg,
	                         .certs = certs,
	                         .on_drained = on_drained,
	                         .worker = index,
	                         .reuse_port = cfg->workers > 1,
	                         .per_ip = iptable_new(),
	                         .relay_sessions = tls_session_cache_new()};
	uv_async_init(&w->loop, &w->wake, on_wake);
	uv_timer_init(&w->loop, &w->drain_timer);
	w->listeners = listeners_open(&w->srv, err, sizeof(err));
	if (w->listeners)
		return 0;
	log_error("%s", err);
	return -1;
}

static void worker_free(struct worker *w)
{
	uv_walk(&w->loop, close_handle, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
	iptable_free(w->srv.per_ip);
	tls_session_cache_free(w->srv.relay_sessions);
}

/* ---- in the main thread ---- */

static void tell_workers(struct app *app, enum worker_command cmd)
{
	uv_mutex_lock(&app->wake_lock);
	for (unsigned i = 0; i < app->nworkers; i++) {
		atomic_store(&app->workers[i].command, cmd);
		if (!app->workers[i].wake_closed)
			uv_async_send(&app->workers[i].wake);
	}
	uv_mutex_unlock(&app->wake_lock);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct app *app = sig->data;

	if (app->signalled) {
		log_warn("second signal: ending all sessions now");
		tell_workers(app, CMD_END_SESSIONS);
		return;
	}
	app->signalled = true;
	log_info("signal %d: no longer accepting; draining sessions", signum);
	tell_workers(app, CMD_DRAIN);
}

static void on_worker_done(uv_async_t *a)
{
	struct app *app = container_of(a, struct app, worker_done);

	if (atomic_load(&app->workers_running) == 0) {
		log_info("all sessions ended; exiting");
		uv_walk(&app->loop, close_handle, NULL);
		/* Closing the watchers restored the default actions: a late signal must not kill
		 * a process that is already exiting cleanly. */
		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
	}
}

static int run(struct app *app, const struct config *cfg, const struct certstore *certs)
{
	app->nworkers = cfg->workers;
	app->workers = xcalloc(app->nworkers, sizeof(struct worker));
	uv_loop_init(&app->loop);
	uv_mutex_init(&app->wake_lock);
	int rc = 0;
	unsigned n = 0;
	for (; n < app->nworkers && rc == 0; n++)
		rc = worker_init(&app->workers[n], app, (int)n, cfg, certs);
	if (rc == 0) {
		uv_signal_init(&app->loop, &app->sigterm);
		uv_signal_init(&app->loop, &app->sigint);
		uv_async_init(&app->loop, &app->worker_done, on_worker_done);
		app->sigterm.data = app->sigint.data = app;
		uv_signal_start(&app->sigterm, on_signal, SIGTERM);
		uv_signal_start(&app->sigint, on_signal, SIGINT);
		atomic_store(&app->workers_running, (int)n);
		for (unsigned i = 0; i < n; i++)
			uv_thread_create(&app->workers[i].thread, worker_run, &app->workers[i]);
		app->certmon = certmon_start(&app->loop, cfg, certs, NULL, NULL); /* closes with the loop */
		log_info("ready (%u worker%s)", n, n == 1 ? "" : "s");
		uv_run(&app->loop, UV_RUN_DEFAULT);
		for (unsigned i = 0; i < n; i++)
			uv_thread_join(&app->workers[i].thread);
	}
	for (unsigned i = 0; i < n; i++)
		worker_free(&app->workers[i]);
	uv_walk(&app->loop, close_handle, NULL);
	uv_run(&app->loop, UV_RUN_DEFAULT);
	uv_loop_close(&app->loop);
	certmon_free_closed(app->certmon);
	uv_mutex_destroy(&app->wake_lock);
	free(app->workers);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	char err[1024];
	enum log_level level;

	if (argc > 1 && strcmp(argv[1], "check") == 0)
		return check_main(argc - 1, argv + 1); /* the report: proxy/check.c */
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
		/* An expired or not yet valid certificate fails the check. */
		rc = certstore_log_expiry(certs, (long long)time(NULL)) > 0 ? 2 : 0;
		if (rc == 0)
			printf("%s: OK\n", o.config);
	} else {
		/* libuv does not ignore SIGPIPE, and a peer closing mid-write must not kill us. */
		signal(SIGPIPE, SIG_IGN);
		static struct app app;
		rc = run(&app, cfg, certs);
	}
	certstore_free(certs);
	config_free(cfg);
	tls_global_cleanup();
	return rc;
}

/* main: the command line (run, reload, --check); everything after that is master.c's and worker.c's; no SMTP
 * and no wolfSSL here. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certstore.h"
#include "check.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "passwd_cmd.h"
#include "tls.h"

#ifndef LIVERY_VERSION
#error "LIVERY_VERSION comes from CMakeLists.txt (project VERSION)"
#endif

static const char usage[] =
        "Usage: livery [run] -c FILE [--log-level LEVEL]\n"
        "       livery reload -c FILE\n"
        "       livery --check -c FILE\n"
        "       livery check -c FILE [--dns]   (a report: livery check --help)\n"
        "       livery passwd [USER]           (a users_file line: livery passwd --help)\n"
        "\n"
        "livery is an SMTP submission proxy: it answers under branded host names with the\n"
        "certificate chosen by SNI, passes the client's AUTH through (or, for a tenant with\n"
        "auth = \"local\", checks it against the tenant's users_file and relays with the\n"
        "tenant's own credentials over pooled connections), and relays each session over\n"
        "verified TLS to the tenant's upstream relay.\n"
        "\n"
        "Commands:\n"
        "  run                    (the default) start: a master process that keeps the\n"
        "                         configuration, keys and listening sockets, and `workers`\n"
        "                         worker processes, running as `user`/`group`, that serve\n"
        "  reload                 ask the running livery (the pid in the configuration's\n"
        "                         pid_file) to reload its configuration: the same as SIGHUP\n"
        "  passwd [USER]          read a password (terminal without echo, or stdin) and print\n"
        "                         its yescrypt hash (as USER:HASH) for a users_file\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE      configuration file (see config/livery.conf, livery(8))\n"
        "      --check            validate the configuration (including certificates, keys,\n"
        "                         their dates, ticket_key_file, and the user and group), print\n"
        "                         \"FILE: OK\" and exit\n"
        "  -l, --log-level LEVEL  error, warn, info or debug (overrides log_level)\n"
        "  -h, --help             show this help\n"
        "  -V, --version          show the version\n"
        "\n"
        "Signals to the master: SIGHUP reloads: the new configuration is loaded completely\n"
        "and, if good, new workers start with it while the old ones stop accepting and finish\n"
        "their sessions; if bad, it is rejected (the log says FILE:LINE) and nothing changes.\n"
        "A reload also re-reads ticket_key_file: session-ticket keys rotate that way.\n"
        "SIGTERM or SIGINT stops accepting, lets sessions finish for up to\n"
        "limits.shutdown_timeout seconds (default 10), then ends them with 421; a second signal\n"
        "(or SIGQUIT) ends them at once. SIGUSR1 reopens log_file (after logrotate). A worker\n"
        "that dies is replaced within a second.\n"
        "\n"
        "Sending limits (a tenant's limits group: messages and recipients per hour, per tenant,\n"
        "user or client address) are counted per instance, or in Redis with limits.backend =\n"
        "\"redis://host:port/db\" so that several instances share one budget.\n"
        "\n"
        "Exit status: 0 on success, 1 on a runtime error (e.g. a port cannot be bound, or no\n"
        "livery runs for `reload`), 2 on a usage or configuration error.\n";

struct options {
	const char *command;
	const char *config;
	const char *log_level;
	bool check;
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
	o->command = optind < argc ? argv[optind++] : "run";
	const char *problem = optind < argc ? "unexpected argument"
	                      : !o->config  ? "-c FILE is required"
	                      : strcmp(o->command, "run") != 0 && strcmp(o->command, "reload") != 0
	                              ? "unknown command"
	                              : NULL;
	if (problem) {
		fprintf(stderr, "livery: %s\n\n%s", problem, usage);
		return 2;
	}
	return 0;
}

/* --check: everything the master would load, nothing bound. */
static int check(const char *path)
{
	char err[1024];
	struct config *cfg = config_load(path, err, sizeof(err));
	struct certstore *certs = NULL;

	if (cfg) {
		tls_global_init();
		certs = certstore_new(cfg, err, sizeof(err));
	}
	/* An expired or not yet valid certificate fails the check too. */
	int rc = !certs ? 2 : certstore_log_expiry(certs, (long long)time(NULL)) > 0 ? 2 : 0;
	if (rc == 0)
		printf("%s: OK\n", path);
	else if (!certs)
		fprintf(stderr, "%s\n", err);
	certstore_free(certs);
	if (cfg)
		tls_global_cleanup();
	config_free(cfg);
	return rc;
}

/* `livery reload`: the configuration names the pid file; the running master does the rest. */
static int reload(const char *path)
{
	char err[1024], buf[32] = "";
	struct config *cfg = config_load(path, err, sizeof(err));
	int rc = 2;

	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		return rc;
	}
	FILE *f = cfg->process.pid_file ? fopen(cfg->process.pid_file, "re") : NULL;
	long pid = f && fgets(buf, sizeof(buf), f) ? strtol(buf, NULL, 10) : 0;
	if (!cfg->process.pid_file)
		fprintf(stderr, "livery: %s sets no pid_file: send SIGHUP to the master instead\n", path);
	else if (pid <= 0)
		fprintf(stderr, "livery: no livery pid in %s\n", cfg->process.pid_file), rc = 1;
	else if (kill((pid_t)pid, SIGHUP) != 0)
		fprintf(stderr, "livery: cannot signal pid %ld: %s\n", pid, strerror(errno)), rc = 1;
	else
		printf("livery: asked pid %ld to reload\n", pid), rc = 0;
	if (f)
		fclose(f);
	config_free(cfg);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct master_options mo = {0};

	if (argc > 1 && strcmp(argv[1], "check") == 0)
		return check_main(argc - 1, argv + 1); /* the report: proxy/check.c */
	if (argc > 1 && strcmp(argv[1], "passwd") == 0)
		return passwd_cmd_main(argc - 1, argv + 1); /* a users_file line: proxy/passwd_cmd.c */
	int rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc;
	if (o.log_level && !log_level_parse(o.log_level, &mo.log_level)) {
		fprintf(stderr, "livery: unknown log level '%s'\n", o.log_level);
		return 2;
	}
	if (o.check)
		return check(o.config);
	if (strcmp(o.command, "reload") == 0)
		return reload(o.config);
	/* libuv does not ignore SIGPIPE, and a peer closing mid-write must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	mo.config_path = o.config;
	mo.log_level_forced = o.log_level != NULL;
	tls_global_init();
	rc = master_run(&mo);
	tls_global_cleanup();
	return rc;
}

/* check: `livery check -c FILE [--dns]`, a report on a configuration for the operator: config errors,
 * and per branded host name its certificate, key, chain, names, expiry, ACME state and (with --dns) the DNS
 * records a brand must publish against what the resolver returns today. */
#include "check.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "acme_state.h"
#include "certstore.h"
#include "check_dns.h"
#include "config.h"
#include "log.h"
#include "names.h"
#include "tls.h"
#include "util.h"

static const char check_usage[] =
        "Usage: livery check -c FILE [--dns] [--dns-server ADDR[:PORT]]\n"
        "\n"
        "Prints a report on the configuration and exits 0 when it holds no error, 1 when it\n"
        "does, 2 on a usage error. For every branded host name: the certificate serving it,\n"
        "whether the key matches, the chain's order, the names it covers and the days until\n"
        "it expires (a warning under 21 days, an error once expired or not yet valid).\n"
        "With an acme block, also each ACME-managed name's state from the running livery\n"
        "(state_dir/state.json): valid until its renewal date, due, ordering, or backing off\n"
        "after failures (a warning, with the last error); a name still waiting for its first\n"
        "certificate is a warning, not an error.\n"
        "\n"
        "  -c, --config FILE        the configuration to check\n"
        "      --dns                also query DNS: each brand's CNAME (or A/AAAA) to the\n"
        "                           listener's host name, its SRV records (RFC 6186) and CAA\n"
        "      --dns-server ADDR[:PORT]  ask this server instead of /etc/resolv.conf's (IPv4)\n"
        "  -h, --help               show this help\n";

struct check_opts {
	const char *config;
	bool dns;
	const char *dns_server;
};

void check_say(struct check_report *r, const char *level, const char *fmt, ...)
{
	va_list ap;

	if (strcmp(level, "error") == 0)
		r->errors++;
	else if (strcmp(level, "warn") == 0)
		r->warnings++;
	fprintf(r->out, "    %-5s ", level);
	va_start(ap, fmt);
	vfprintf(r->out, fmt, ap);
	va_end(ap);
	fputc('\n', r->out);
}

static int parse_check_args(int argc, char **argv, struct check_opts *o)
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"dns", no_argument, NULL, 'd'},
	        {"dns-server", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (c == 'c')
			o->config = optarg;
		else if (c == 'd')
			o->dns = true;
		else if (c == 's')
			o->dns_server = optarg;
		else if (c == 'h') {
			fputs(check_usage, stdout);
			exit(0);
		} else
			return 2;
	}
	if (optind < argc || !o->config) {
		fprintf(stderr, "livery check: %s\n\n%s",
		        optind < argc ? "unexpected argument" : "-c FILE is required", check_usage);
		return 2;
	}
	return 0;
}

static void fmt_day(long long t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, cap, "%Y-%m-%d", &tm);
}

static void report_expiry(struct check_report *r, const struct certstore_cert *c)
{
	char day[16];
	long long days = certstore_days_left(c->info.not_after, r->now);

	fmt_day(c->info.not_after, day, sizeof(day));
	if (r->now < c->info.not_before) {
		fmt_day(c->info.not_before, day, sizeof(day));
		check_say(r, "error", "not valid before %s", day);
	} else if (days < 0 || r->now >= c->info.not_after) {
		check_say(r, "error", "expired on %s", day);
	} else if (days < CERTSTORE_WARN_DAYS) {
		check_say(r, "warn", "expires %s, in %lld days: renew it", day, days);
	} else {
		check_say(r, "ok", "expires %s, in %lld days", day, days);
	}
}

static bool cert_covers(const struct certstore_cert *c, const char *hostname)
{
	for (size_t i = 0; i < c->info.nnames; i++) {
		if (strcmp(c->info.names[i], hostname) == 0 ||
		    (!name_is_wildcard(hostname) && name_match(c->info.names[i], hostname)))
			return true;
	}
	return false;
}

static void report_names(struct check_report *r, const struct certstore_cert *c, const char *hostname)
{
	char list[512] = "";
	size_t used = 0;

	for (size_t i = 0; i < c->info.nnames && used < sizeof(list); i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
		                         c->info.names[i]);
	const char *src = c->info.from_cn ? "CN, no SAN" : "SAN";
	if (cert_covers(c, hostname))
		check_say(r, "ok", "names (%s): %s", src, list);
	else
		check_say(r, "error", "names (%s): %s: none covers %s", src, list, hostname);
}

static void report_key(struct check_report *r, const struct certstore_cert *c)
{
	struct stat st;

	/* certstore loaded it only after a handshake in memory proved the pair. */
	check_say(r, "ok", "key %s matches the certificate", c->key);
	if (stat(c->key, &st) == 0 && (st.st_mode & 077))
		check_say(r, "warn", "key %s is readable by group or others (mode %04o): chmod 600 it",
		          c->key, (unsigned)(st.st_mode & 07777));
}

static void report_chain(struct check_report *r, const struct certstore_cert *c)
{
	char why[512];
	int n = tls_chain_check(c->cert, why, sizeof(why));

	if (n < 0)
		check_say(r, "error", "chain: %s", why);
	else if (n == 1)
		check_say(r, "warn", "chain: the leaf alone, no intermediate (use certbot's fullchain.pem)");
	else
		check_say(r, "ok", "chain: %d certificates, each issued by the next", n);
}

static void report_cert(struct check_report *r, const struct certstore_cert *c, const char *hostname)
{
	report_key(r, c);
	report_chain(r, c);
	report_names(r, c, hostname);
	report_expiry(r, c);
}

/* What the running livery's ACME orders say about hostname (its state.json). */
static void report_acme(struct check_report *r, const struct config *cfg, const struct tenant_cfg *t,
                        const char *hostname)
{
	char line[1024];

	if (!certstore_acme_manages(cfg, t, hostname))
		return;
	if (!r->acme_state)
		check_say(r, "ok", "acme: no order yet (%s/state.json not written yet)", cfg->acme.state_dir);
	else if (!acme_state_describe(r->acme_state, hostname, line, sizeof(line)))
		check_say(r, "ok", "acme: not in %s/state.json yet (reload livery)", cfg->acme.state_dir);
	else
		check_say(r, strncmp(line, "backoff", 7) == 0 ? "warn" : "ok", "acme: %s", line);
}

static void report_hostname(struct check_report *r, const struct certstore *cs, const struct tenant_cfg *t,
                            const char *hostname)
{
	const struct certstore_cert *c = certstore_cert_for(cs, t, hostname);
	const struct certstore_cert *rsa = certstore_rsa_for(cs, t, hostname);

	fprintf(r->out, "  %s\n", hostname);
	report_acme(r, r->cfg, t, hostname);
	if (!c && certstore_acme_manages(r->cfg, t, hostname)) {
		check_say(
		        r, "warn",
		        "no certificate yet: ACME obtains one; the default certificate is served meanwhile");
		return;
	}
	if (!c) {
		check_say(r, "error", "no certificate serves it");
		return;
	}
	check_say(r, "ok", "certificate %s (%s)%s", c->cert, c->info.rsa ? "RSA" : "ECDSA",
	          c->dir ? ", from cert_dir" : "");
	report_cert(r, c, hostname);
	if (!rsa)
		return;
	check_say(r, "ok", "and certificate %s (RSA) for clients without ECDSA", rsa->cert);
	report_cert(r, rsa, hostname);
}

static void report_tenants(struct check_report *r, const struct config *cfg, const struct certstore *cs,
                           const struct check_opts *o)
{
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cfg->tenants[i];
		fprintf(r->out, "\ntenant %s (region %s)\n", t->name, t->region->name);
		for (size_t h = 0; h < t->nhostnames; h++) {
			report_hostname(r, cs, t, t->hostnames[h]);
			if (o->dns)
				check_dns_hostname(r, cfg, t->hostnames[h]);
		}
	}
}

/* A certificate no name uses still fails --check when it is out of date: say so here too. */
static void report_unused(struct check_report *r, const struct certstore *cs)
{
	bool header = false;

	for (size_t i = 0; i < certstore_ncerts(cs); i++) {
		const struct certstore_cert *c = certstore_cert(cs, i);
		if (certstore_cert_in_use(cs, c))
			continue;
		if (!header)
			fprintf(r->out, "\ncertificates that serve no host name\n");
		header = true;
		fprintf(r->out, "  %s\n", c->cert);
		report_expiry(r, c);
	}
}

static int finish(struct check_report *r)
{
	fprintf(r->out, "\n%u error%s, %u warning%s\n", r->errors, r->errors == 1 ? "" : "s", r->warnings,
	        r->warnings == 1 ? "" : "s");
	return r->errors > 0 ? 1 : 0;
}

/* The running livery's ACME state (NULL when it has written none yet). */
static json_t *load_acme_state(const struct config *cfg)
{
	char *path = xasprintf("%s/state.json", cfg->acme.state_dir);
	json_t *j = json_load_file(path, 0, NULL);

	free(path);
	return j;
}

static int check_run(const struct check_opts *o, struct check_report *r)
{
	char err[1024];
	struct config *cfg = config_load(o->config, err, sizeof(err));

	fprintf(r->out, "livery check %s\n", o->config);
	if (!cfg) {
		fprintf(r->out, "  error %s\n", err);
		r->errors++;
		return finish(r);
	}
	struct certstore *cs = certstore_new(cfg, err, sizeof(err));
	r->cfg = cfg;
	if (cfg->acme.enabled)
		r->acme_state = load_acme_state(cfg);
	if (!cs) {
		fprintf(r->out, "  error %s\n", err);
		r->errors++;
	} else {
		fprintf(r->out,
		        "  ok    configuration: %zu tenant%s, %zu listener%s, %zu certificate%s loaded\n",
		        cfg->ntenants, cfg->ntenants == 1 ? "" : "s", cfg->nlisteners,
		        cfg->nlisteners == 1 ? "" : "s", certstore_ncerts(cs),
		        certstore_ncerts(cs) == 1 ? "" : "s");
		for (size_t i = 0; i < certstore_nrefused(cs); i++) {
			fprintf(r->out, "  warn  %s\n", certstore_refused(cs, i));
			r->warnings++;
		}
		report_tenants(r, cfg, cs, o);
		report_unused(r, cs);
		if (o->dns)
			check_dns_note(r, cfg);
	}
	certstore_free(cs);
	json_decref(r->acme_state);
	config_free(cfg);
	return finish(r);
}

int check_main(int argc, char **argv)
{
	struct check_opts o = {0};
	struct check_report r = {.out = stdout, .now = (long long)time(NULL)};

	int rc = parse_check_args(argc, argv, &o);
	if (rc != 0)
		return rc;
	if (o.dns && !check_dns_init(o.dns_server)) {
		fprintf(stderr, "livery check: --dns-server wants an IPv4 address and an optional port: %s\n",
		        o.dns_server);
		return 2;
	}
	/* The report says what matters; certstore's own log lines (refused pairs) go to stderr. */
	log_set_level(LOG_WARN);
	tls_global_init();
	rc = check_run(&o, &r);
	tls_global_cleanup();
	return rc;
}

/* check_dns: the DNS part of `livery check --dns`: asks the resolver (libresolv) what each brand publishes
 * today and compares it with what livery needs: a CNAME (or the same A/AAAA) to the listener's host name,
 * RFC 6186 SRV records, CAA. */
#include "check_dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "names.h"
#include "util.h"

#define RR_MAX 16

/* The answers of one query, as text: names lower case without the trailing dot. */
struct rrset {
	char v[RR_MAX][300];
	size_t n;
	bool failed; /* the resolver had no answer (timeout, SERVFAIL): not the same as no record */
};

bool check_dns_init(const char *server)
{
	res_init();
	if (!server)
		return true;
	char host[64];
	unsigned port = 53;
	const char *colon = strchr(server, ':');
	size_t hl = colon ? (size_t)(colon - server) : strlen(server);
	struct in_addr a;
	if (hl >= sizeof(host) ||
	    (colon && (sscanf(colon + 1, "%u", &port) != 1 || port == 0 || port > 65535)))
		return false;
	memcpy(host, server, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, &a) != 1)
		return false;
	/* glibc honours the port of nsaddr_list, which is how tests point it at a responder. */
	_res.nsaddr_list[0] =
	        (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = a};
	_res.nscount = 1;
	_res.retrans = 2; /* seconds */
	_res.retry = 1;
	return true;
}

static void lower_name(char *s)
{
	size_t n = strlen(s);

	if (n > 0 && s[n - 1] == '.')
		s[--n] = '\0';
	for (; *s; s++)
		*s = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
}

/* One record's data as text; false for data that does not parse. */
static bool rr_text(const ns_msg *m, const ns_rr *rr, int type, char *out, size_t cap)
{
	const unsigned char *d = ns_rr_rdata(*rr), *eom = ns_msg_end(*m);
	size_t len = ns_rr_rdlen(*rr);
	char name[NS_MAXDNAME];

	if (type == ns_t_a && len == 4)
		return inet_ntop(AF_INET, d, out, (socklen_t)cap) != NULL;
	if (type == ns_t_aaaa && len == 16)
		return inet_ntop(AF_INET6, d, out, (socklen_t)cap) != NULL;
	if (type == ns_t_cname && ns_name_uncompress(ns_msg_base(*m), eom, d, name, sizeof(name)) >= 0) {
		lower_name(name);
		return snprintf(out, cap, "%s", name) < (int)cap;
	}
	if (type == ns_t_srv && len > 6 &&
	    ns_name_uncompress(ns_msg_base(*m), eom, d + 6, name, sizeof(name)) >= 0) {
		lower_name(name);
		return snprintf(out, cap, "%u %u %u %s", ns_get16(d), ns_get16(d + 2), ns_get16(d + 4),
		                name) < (int)cap;
	}
	if (type == ns_t_caa && len >= 2 && (size_t)d[1] + 2 <= len)
		return snprintf(out, cap, "%u %.*s \"%.*s\"", d[0], d[1], (const char *)d + 2,
		                (int)(len - 2 - d[1]), (const char *)d + 2 + d[1]) < (int)cap;
	return false;
}

/* The records of type for name (following none of the CNAMEs the answer may carry first). */
static void query(const char *name, int type, struct rrset *out)
{
	unsigned char ans[4096];
	ns_msg m;
	ns_rr rr;

	out->n = 0;
	int len = res_query(name, ns_c_in, type, ans, sizeof(ans));
	out->failed = len < 0 && (h_errno == TRY_AGAIN || h_errno == NO_RECOVERY);
	if (len < 0 || ns_initparse(ans, len, &m) < 0)
		return; /* NXDOMAIN or no data: nothing published */
	for (int i = 0; i < ns_msg_count(m, ns_s_an) && out->n < RR_MAX; i++) {
		if (ns_parserr(&m, ns_s_an, i, &rr) == 0 && (int)ns_rr_type(rr) == type &&
		    rr_text(&m, &rr, type, out->v[out->n], sizeof(out->v[0])))
			out->n++;
	}
}

static bool rrset_has(const struct rrset *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcasecmp(s->v[i], v) == 0)
			return true;
	}
	return false;
}

static bool rrset_within(const struct rrset *a, const struct rrset *b)
{
	for (size_t i = 0; i < a->n; i++) {
		if (!rrset_has(b, a->v[i]))
			return false;
	}
	return true;
}

static void rrset_join(const struct rrset *s, char *out, size_t cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < s->n && used < cap; i++)
		used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "", s->v[i]);
	if (s->n == 0)
		snprintf(out, cap, "none");
}

/* The service name clients reach livery under: the first listener's host name. */
static const char *service_name(const struct config *cfg)
{
	return cfg->listeners[0].hostname;
}

static bool is_service(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		if (strcasecmp(cfg->listeners[i].hostname, name) == 0)
			return true;
	}
	return false;
}

/* Without a CNAME, the brand's addresses must all be the service name's. */
static void check_addresses(struct check_report *r, const struct config *cfg, const char *hostname)
{
	struct rrset a, aaaa, sa, saaaa;
	char have[600], want[600];
	const char *svc = service_name(cfg);

	query(hostname, ns_t_a, &a);
	query(hostname, ns_t_aaaa, &aaaa);
	if (a.n + aaaa.n == 0) {
		check_say(r, "error", "dns: no CNAME, A or AAAA record; publish: %s. CNAME %s.", hostname,
		          svc);
		return;
	}
	query(svc, ns_t_a, &sa);
	query(svc, ns_t_aaaa, &saaaa);
	rrset_join(&a, have, sizeof(have));
	rrset_join(&sa, want, sizeof(want));
	if (rrset_within(&a, &sa) && rrset_within(&aaaa, &saaaa))
		check_say(r, "ok", "dns: A/AAAA %s are %s's (a CNAME to %s is easier to keep right)", have,
		          svc, svc);
	else
		check_say(r, "error", "dns: A/AAAA %s are not %s's (%s); publish: %s. CNAME %s.", have, svc,
		          want, hostname, svc);
}

/* False when the resolver did not answer at all: the other queries would wait as long. */
static bool check_target(struct check_report *r, const struct config *cfg, const char *hostname)
{
	struct rrset cname;

	query(hostname, ns_t_cname, &cname);
	if (cname.failed) {
		check_say(r, "error", "dns: the resolver gave no answer for %s", hostname);
		return false;
	}
	if (cname.n == 0) {
		check_addresses(r, cfg, hostname);
		return true;
	}
	if (is_service(cfg, cname.v[0]))
		check_say(r, "ok", "dns: CNAME %s", cname.v[0]);
	else
		check_say(r, "error", "dns: CNAME %s, not the service name; publish: %s. CNAME %s.",
		          cname.v[0], hostname, service_name(cfg));
	return true;
}

/* The domain a brand host name serves mail for: smtp.acme.example -> acme.example. */
static const char *mail_domain(const char *hostname)
{
	const char *dot = strchr(hostname, '.');
	return dot && strchr(dot + 1, '.') ? dot + 1 : hostname;
}

static int listener_port(const struct config *cfg, enum tls_mode mode)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		if (cfg->listeners[i].tls == mode)
			return cfg->listeners[i].port;
	}
	return 0;
}

/* RFC 6186 (and 8314 for _submissions): lets mail clients find the brand's server. */
static void check_srv(struct check_report *r, const struct config *cfg, const char *hostname,
                      const char *service, enum tls_mode mode)
{
	int port = listener_port(cfg, mode);
	char name[NAME_MAX_LEN + 32], want[300];
	struct rrset srv;

	if (port == 0)
		return; /* no such listener: nothing to advertise */
	snprintf(name, sizeof(name), "%s._tcp.%s", service, mail_domain(hostname));
	snprintf(want, sizeof(want), "%d %s", port, hostname);
	query(name, ns_t_srv, &srv);
	for (size_t i = 0; i < srv.n; i++) {
		const char *rest = strchr(strchr(srv.v[i], ' ') + 1, ' ') + 1; /* past priority, weight */
		if (strcasecmp(rest, want) == 0) {
			check_say(r, "ok", "dns: SRV %s %s", name, srv.v[i]);
			return;
		}
	}
	char have[600];
	rrset_join(&srv, have, sizeof(have));
	check_say(r, "warn", "dns: SRV %s: %s; publish: %s. SRV 0 1 %d %s.", name, have, name, port,
	          hostname);
}

static void check_caa(struct check_report *r, const char *hostname)
{
	struct rrset caa;
	char have[600];
	const char *domain = mail_domain(hostname);

	query(domain, ns_t_caa, &caa);
	rrset_join(&caa, have, sizeof(have));
	if (caa.n == 0)
		check_say(r, "info", "dns: no CAA at %s (optional, e.g. %s. CAA 0 issue \"letsencrypt.org\")",
		          domain, domain);
	else
		check_say(r, "info", "dns: CAA at %s: %s (it must allow the CA that issues %s)", domain, have,
		          hostname);
}

void check_dns_hostname(struct check_report *r, const struct config *cfg, const char *hostname)
{
	if (name_is_wildcard(hostname)) {
		check_say(r, "info", "dns: a wildcard is not queried; publish: %s. CNAME %s.", hostname,
		          service_name(cfg));
		return;
	}
	if (!check_target(r, cfg, hostname))
		return;
	check_srv(r, cfg, hostname, "_submission", TLS_MODE_STARTTLS);
	check_srv(r, cfg, hostname, "_submissions", TLS_MODE_IMPLICIT);
	check_caa(r, hostname);
}

void check_dns_note(struct check_report *r, const struct config *cfg)
{
	(void)cfg;
	fprintf(r->out,
	        "\nnote: sender authentication (SPF, DKIM, DMARC) stays with the upstream relay's sending\n"
	        "domain: the brand host names above carry no SPF, DKIM or DMARC records for livery.\n");
}

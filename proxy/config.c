/* config: the only user of libconfig; parses and validates a file into an immutable struct, reporting errors
 * as "file:line: message". */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "names.h"
#include "users.h"
#include "util.h"

struct parse {
	struct config *cfg;
	const char *dir; /* directory of the main file, for relative paths */
	char *err;
	size_t errlen;
	bool failed;
};

static const char *const top_keys[] = {
        "log_level", "workers", "bare_line_endings", "listeners", "regions", "tenants", "limits",
        "user",      "group",   "pid_file",          "log_format", "log_file", "admin_listen", "admin_token",
        "cert_dir", /* certificates by name: certbot's live/ layout or flat pairs */
        "ticket_key_file", /* session-ticket keys shared by instances (issue 13) */
        "pool",     /* the relay connection pool of local-mode tenants */
        "acme",     /* certificates obtained over ACME into the cert_dirs */
        NULL};
static const char *const listener_keys[] = {
        "address", "port", "tls", "hostname", "default_tenant", "allow_plaintext_auth",
        "proxy_protocol", "proxy_trusted", "proxy_timeout", /* a load balancer in front (PROXY protocol) */
        NULL};
static const char *const region_keys[] = {
        "name",    "host",      "hosts",           "port",           "tls",   "verify_name",
        "ca_file", "ehlo_name", "connect_timeout", "tls_resumption", "scrub", NULL};
static const char *const tenant_keys[] = {
        "name",        "hostnames",         "cert",     "key", "region",
        "require_tls", "skip_verification", "cert_dir", /* this tenant's own certificate directory */
        /* authentication: passthrough (+ auth_domains) or local */
        "auth", "auth_domains", "users_file", "relay_user", "relay_password_file", "auth_cache_ttl",
        "limits", /* sending limits */
        NULL};
static const char *const limits_keys[] = {"max_message_size",  "max_connections",  "max_connections_per_ip",
                                          "max_auth_failures", "max_bad_commands", "command_timeout",
                                          "data_timeout",      "relay_timeout",    "relay_data_timeout",
                                          "tls_timeout",       "shutdown_timeout", "max_unauthenticated_relay_legs",
                                          "max_unauthenticated_relay_legs_per_ip",
                                          /* sending limits: where they are counted */
                                          "backend", "redis_failure", "redis_timeout_ms", NULL};

/* The file a setting came from. libconfig names an @include'd file as written, relative to
 * the include directory (the main file's), so it is made relative to where we run instead. */
static char *source_file(const struct parse *p, const config_setting_t *s)
{
	const char *file = s ? config_setting_source_file(s) : NULL;

	if (!file || strcmp(file, p->cfg->path) == 0)
		return xstrdup(p->cfg->path);
	if (file[0] == '/')
		return xstrdup(file);
	return xasprintf("%s/%s", p->dir, file);
}

/* Records the first error only: later ones are usually consequences of it. */
static bool fail(struct parse *p, const config_setting_t *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->failed)
		return false;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *file = source_file(p, s);
	int line = s ? (int)config_setting_source_line(s) : 0;
	snprintf(p->err, p->errlen, "%s:%d: %s", file, line, msg);
	free(file);
	return false;
}

const char *config_tls_mode_name(enum tls_mode mode)
{
	return mode == TLS_MODE_IMPLICIT ? "implicit" : "starttls";
}

static bool check_keys(struct parse *p, const config_setting_t *group, const char *const *allowed,
                       const char *what)
{
	if (!config_setting_is_group(group))
		return fail(p, group, "%s must be a group { ... }", what);
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		size_t k = 0;
		while (allowed[k] && strcmp(allowed[k], name) != 0)
			k++;
		if (!allowed[k])
			return fail(p, s, "unknown key '%s' in %s", name, what);
	}
	return true;
}

static bool get_string(struct parse *p, const config_setting_t *g, const char *key, const char *def,
                       char **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (!s) {
		if (!def)
			return fail(p, g, "missing required key '%s'", key);
		*out = xstrdup(def);
		return true;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(p, s, "'%s' must be a string", key);
	const char *v = config_setting_get_string(s);
	if (v[0] == '\0')
		return fail(p, s, "'%s' must not be empty", key);
	*out = xstrdup(v);
	return true;
}

static bool get_int(struct parse *p, const config_setting_t *g, const char *key, long long def, long long min,
                    long long max, long long *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (!s) {
		if (def < 0)
			return fail(p, g, "missing required key '%s'", key);
		*out = def;
		return true;
	}
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return fail(p, s, "'%s' must be an integer", key);
	long long v = config_setting_get_int64(s);
	if (v < min || v > max)
		return fail(p, s, "'%s' must be between %lld and %lld", key, min, max);
	*out = v;
	return true;
}

static bool get_bool(struct parse *p, const config_setting_t *g, const char *key, bool def, bool *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	*out = def;
	if (!s)
		return true;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(p, s, "'%s' must be true or false", key);
	*out = config_setting_get_bool(s);
	return true;
}

static bool get_tls_mode(struct parse *p, const config_setting_t *g, enum tls_mode *out)
{
	char *v = NULL;

	if (!get_string(p, g, "tls", "starttls", &v))
		return false;
	bool ok = true;
	if (strcmp(v, "starttls") == 0)
		*out = TLS_MODE_STARTTLS;
	else if (strcmp(v, "implicit") == 0)
		*out = TLS_MODE_IMPLICIT;
	else
		ok = fail(p, config_setting_get_member(g, "tls"),
		          "'tls' must be \"starttls\" or \"implicit\"");
	free(v);
	return ok;
}

static bool get_seconds(struct parse *p, const config_setting_t *g, const char *key, long long def,
                        unsigned *out_ms)
{
	long long v;

	if (!get_int(p, g, key, def, 1, 86400, &v))
		return false;
	*out_ms = (unsigned)(v * 1000);
	return true;
}

/* Reads an array or list of strings; a missing key gives an empty list unless required. */
static void free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* On failure nothing stays allocated in *out. */
static bool get_string_list(struct parse *p, const config_setting_t *g, const char *key, bool required,
                            char ***out, size_t *n)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	*out = NULL;
	*n = 0;
	if (!s)
		return required ? fail(p, g, "missing required key '%s'", key) : true;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return fail(p, s, "'%s' must be a list of strings [ \"...\" ]", key);
	int len = config_setting_length(s);
	if (required && len == 0)
		return fail(p, s, "'%s' must not be empty", key);
	*out = xcalloc((size_t)len + 1, sizeof(char *));
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING || !config_setting_get_string(e)[0]) {
			free_list(*out, *n);
			*out = NULL;
			*n = 0;
			return fail(p, s, "'%s' must hold non-empty strings", key);
		}
		(*out)[(*n)++] = xstrdup(config_setting_get_string(e));
	}
	return true;
}

static char *resolve_path(struct parse *p, const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	return xasprintf("%s/%s", p->dir, path);
}

static bool get_path(struct parse *p, const config_setting_t *g, const char *key, const char *def, char **out)
{
	char *raw = NULL;

	if (!get_string(p, g, key, def, &raw))
		return false;
	*out = resolve_path(p, raw);
	free(raw);
	return true;
}

/* An optional path setting: *out stays NULL when the key is absent. */
static bool get_opt_path(struct parse *p, const config_setting_t *g, const char *key, char **out)
{
	*out = NULL;
	return !config_setting_get_member(g, key) || get_path(p, g, key, NULL, out);
}

static const config_setting_t *get_group_list(struct parse *p, const config_t *lc, const char *key)
{
	const config_setting_t *s = config_lookup(lc, key);

	if (!s)
		return NULL;
	if (!config_setting_is_list(s)) {
		fail(p, s, "'%s' must be a list of groups ( { ... }, ... )", key);
		return NULL;
	}
	return s;
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void region_free(struct region_cfg *r)
{
	free(r->name);
	for (size_t i = 0; i < r->nhosts; i++) {
		free(r->hosts[i].host);
		free(r->hosts[i].verify_name);
		free(r->hosts[i].sni);
	}
	free(r->hosts);
	free(r->ca_file);
	free(r->ehlo_name);
	free(r->src_file);
	free_list(r->scrub, r->nscrub);
}

static struct region_cfg *find_region(struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nregions; i++) {
		if (strcmp(cfg->regions[i].name, name) == 0)
			return &cfg->regions[i];
	}
	return NULL;
}

static struct tenant_cfg *find_tenant(struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ntenants; i++) {
		if (strcmp(cfg->tenants[i].name, name) == 0)
			return &cfg->tenants[i];
	}
	return NULL;
}

static void add_scrub_word(struct region_cfg *r, const char *word)
{
	r->scrub = xrealloc(r->scrub, (r->nscrub + 2) * sizeof(char *));
	r->scrub[r->nscrub++] = xstrdup(word);
	r->scrub[r->nscrub] = NULL;
}

/* Fills in what the built-in regions default to when the file does not say otherwise. */
static const char *builtin_host(const char *name)
{
	if (strcmp(name, "us") == 0)
		return "smtp.mailgun.org";
	if (strcmp(name, "eu") == 0)
		return "smtp.eu.mailgun.org";
	return NULL;
}

static void add_host(struct region_cfg *r, const char *host, const char *verify_name)
{
	struct relay_host *h;

	r->hosts = xrealloc(r->hosts, (r->nhosts + 1) * sizeof(*r->hosts));
	h = &r->hosts[r->nhosts++];
	h->host = xstrdup(host);
	h->verify_name = xstrdup(verify_name ? verify_name : host);
	h->sni = xstrdup(is_ip_literal(host) ? h->verify_name : host);
}

/* "host" names one relay, "hosts" several tried in order; verify_name, when given, is what
 * every host's certificate must match, else each host's own name. */
static bool parse_region_hosts(struct parse *p, const config_setting_t *g, struct region_cfg *r)
{
	const config_setting_t *one = config_setting_get_member(g, "host");
	char **hosts = NULL, *verify = NULL;
	size_t n = 0;
	char norm[NAME_MAX_LEN + 1];

	if (one && config_setting_get_member(g, "hosts"))
		return fail(p, one, "set either 'host' or 'hosts', not both");
	if (!one && !get_string_list(p, g, "hosts", false, &hosts, &n))
		return false;
	if (n == 0) {
		hosts = xcalloc(1, sizeof(char *));
		if (!get_string(p, g, "host", builtin_host(r->name), &hosts[0])) {
			free(hosts);
			return false;
		}
		n = 1;
	}
	const config_setting_t *vs = config_setting_get_member(g, "verify_name");
	if (get_string(p, g, "verify_name", "", &verify) && vs &&
	    !name_normalize(verify, strlen(verify), norm, false))
		fail(p, vs, "'verify_name' is not a valid host name: %s", verify);
	for (size_t i = 0; i < n && !p->failed; i++) {
		if (!is_ip_literal(hosts[i]) && !name_normalize(hosts[i], strlen(hosts[i]), norm, false))
			fail(p, one ? one : config_setting_get_member(g, "hosts"),
			     "'%s' is not a valid host name or IP literal", hosts[i]);
		else if (!vs && is_ip_literal(hosts[i]))
			fail(p, g, "'verify_name' is required when a relay host is an IP literal (%s)",
			     hosts[i]);
		else
			add_host(r, hosts[i], vs ? verify : NULL);
	}
	free(verify);
	free_list(hosts, n);
	return !p->failed;
}

/* The EHLO argument goes on the relay leg as it is: a domain, or an address literal in
 * brackets (RFC 5321 4.1.3), never anything that could end the line. */
static bool valid_ehlo_name(const char *name)
{
	char norm[NAME_MAX_LEN + 1];
	size_t len = strlen(name);

	if (len > 2 && name[0] == '[' && name[len - 1] == ']') {
		char inner[64];
		if (len - 2 >= sizeof(inner))
			return false;
		memcpy(inner, name + 1, len - 2);
		inner[len - 2] = '\0';
		return is_ip_literal(strncasecmp(inner, "IPv6:", 5) == 0 ? inner + 5 : inner);
	}
	return name_normalize(name, len, norm, false);
}

static bool parse_region_names(struct parse *p, const config_setting_t *g, struct region_cfg *r)
{
	if (!parse_region_hosts(p, g, r) || !get_path(p, g, "ca_file", CONFIG_DEFAULT_CA_FILE, &r->ca_file) ||
	    !get_string(p, g, "ehlo_name", "livery.localdomain", &r->ehlo_name))
		return false;
	if (!valid_ehlo_name(r->ehlo_name))
		fail(p, config_setting_get_member(g, "ehlo_name"),
		     "'ehlo_name' is not a host name or an address literal like [192.0.2.1]: %s",
		     r->ehlo_name);
	return !p->failed;
}

static bool parse_region(struct parse *p, const config_setting_t *g, struct region_cfg *r)
{
	long long port;
	char **words;
	size_t nwords;

	r->src_file = source_file(p, g);
	r->line = (int)config_setting_source_line(g);
	if (!check_keys(p, g, region_keys, "region") || !get_string(p, g, "name", NULL, &r->name))
		return false;
	if (!parse_region_names(p, g, r) || !get_tls_mode(p, g, &r->tls) ||
	    !get_int(p, g, "port", r->tls == TLS_MODE_IMPLICIT ? 465 : 587, 1, 65535, &port) ||
	    !get_seconds(p, g, "connect_timeout", 10, &r->connect_timeout_ms) ||
	    !get_bool(p, g, "tls_resumption", true, &r->tls_resumption))
		return false;
	r->port = (int)port;
	if (!config_setting_get_member(g, "scrub") && builtin_host(r->name))
		add_scrub_word(r, "mailgun");
	if (!get_string_list(p, g, "scrub", false, &words, &nwords))
		return false;
	for (size_t i = 0; i < nwords; i++)
		add_scrub_word(r, words[i]);
	free_list(words, nwords);
	for (size_t i = 0; i < r->nhosts; i++) {
		add_scrub_word(r, r->hosts[i].host);
		add_scrub_word(r, r->hosts[i].verify_name);
	}
	return true;
}

static void add_builtin_region(struct config *cfg, const char *name)
{
	if (find_region(cfg, name))
		return;
	struct region_cfg *r = &cfg->regions[cfg->nregions++];
	memset(r, 0, sizeof(*r));
	r->name = xstrdup(name);
	r->src_file = xstrdup(cfg->path);
	add_host(r, builtin_host(name), NULL);
	r->port = 587;
	r->tls = TLS_MODE_STARTTLS;
	r->ca_file = xstrdup(CONFIG_DEFAULT_CA_FILE);
	r->ehlo_name = xstrdup("livery.localdomain");
	r->connect_timeout_ms = 10000;
	r->tls_resumption = true;
	add_scrub_word(r, "mailgun");
	add_scrub_word(r, r->hosts[0].host);
}

static bool parse_regions(struct parse *p, const config_t *lc)
{
	const config_setting_t *list = get_group_list(p, lc, "regions");
	int n = list ? config_setting_length(list) : 0;
	struct config *cfg = p->cfg;

	if (p->failed)
		return false;
	cfg->regions = xcalloc((size_t)n + 2, sizeof(struct region_cfg));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct region_cfg *r = &cfg->regions[cfg->nregions++];
		if (!parse_region(p, g, r))
			return false;
		if (find_region(cfg, r->name) != r)
			return fail(p, g, "region '%s' is defined twice", r->name);
	}
	add_builtin_region(cfg, "us");
	add_builtin_region(cfg, "eu");
	return true;
}

static bool parse_hostnames(struct parse *p, const config_setting_t *g, struct tenant_cfg *t)
{
	const config_setting_t *s = config_setting_get_member(g, "hostnames");

	if (!get_string_list(p, g, "hostnames", true, &t->hostnames, &t->nhostnames))
		return false;
	for (size_t i = 0; i < t->nhostnames; i++) {
		char norm[NAME_MAX_LEN + 1];
		if (!name_normalize(t->hostnames[i], strlen(t->hostnames[i]), norm, true))
			return fail(p, s, "'%s' is not a valid host name or wildcard", t->hostnames[i]);
		strcpy(t->hostnames[i], norm);
	}
	return true;
}

/* Two tenants (or one tenant twice) must never claim the same name: SNI would be ambiguous. */
static bool check_hostname_unique(struct parse *p, const config_setting_t *g, size_t upto)
{
	struct config *cfg = p->cfg;
	const struct tenant_cfg *t = &cfg->tenants[upto];

	for (size_t h = 0; h < t->nhostnames; h++) {
		for (size_t i = 0; i <= upto; i++) {
			const struct tenant_cfg *o = &cfg->tenants[i];
			size_t end = i == upto ? h : o->nhostnames;
			for (size_t k = 0; k < end; k++) {
				if (strcmp(o->hostnames[k], t->hostnames[h]) == 0)
					return fail(p, config_setting_get_member(g, "hostnames"),
					            "host name '%s' is already claimed by tenant '%s'",
					            t->hostnames[h], o->name);
			}
		}
	}
	return true;
}

/* cert and key go together; without them the certificates come from a cert_dir. */
static bool parse_tenant_certs(struct parse *p, const config_setting_t *g, struct tenant_cfg *t)
{
	const config_setting_t *cert = config_setting_get_member(g, "cert");
	const config_setting_t *key = config_setting_get_member(g, "key");

	if (!get_opt_path(p, g, "cert_dir", &t->cert_dir))
		return false;
	if (!cert && !key && !t->cert_dir && !p->cfg->cert_dir)
		return fail(
		        p, g,
		        "tenant '%s' needs 'cert' and 'key', or a 'cert_dir' (its own or the top level's)",
		        t->name);
	if ((cert || key) &&
	    (!get_path(p, g, "cert", NULL, &t->cert) || !get_path(p, g, "key", NULL, &t->key)))
		return false;
	t->src_file = source_file(p, cert);
	t->cert_line = cert ? (int)config_setting_source_line(cert) : 0;
	t->key_src_file = source_file(p, key);
	t->key_line = key ? (int)config_setting_source_line(key) : 0;
	const config_setting_t *names = config_setting_get_member(g, "hostnames");
	t->names_src_file = source_file(p, names);
	t->names_line = (int)config_setting_source_line(names);
	return true;
}

static bool parse_tenant_auth(struct parse *p, const config_setting_t *g, struct tenant_cfg *t);
/* ---- sending limits: the tenant's limits group, and where they are counted ---- */

/* Its keys are quota_limit_names, in [scope][kind] order. */
static bool parse_tenant_limits(struct parse *p, const config_setting_t *tg, struct tenant_cfg *t)
{
	const config_setting_t *g = config_setting_get_member(tg, "limits");
	long long v;

	if (!g)
		return true;
	if (!check_keys(p, g, quota_limit_names, "a tenant's limits"))
		return false;
	for (int scope = 0; scope < QUOTA_NSCOPES; scope++) {
		for (int kind = 0; kind < QUOTA_NKINDS; kind++) {
			if (!get_int(p, g, quota_limit_names[scope * QUOTA_NKINDS + kind], 0, 1, QUOTA_LIMIT_MAX, &v))
				return false;
			t->per_hour[scope][kind] = (unsigned)v;
		}
	}
	return true;
}

/* The Redis host as an address: resolved here, at load (blocking is fine in the master), so
 * that a worker never resolves a name on its event loop. */
static bool resolve_redis_host(struct parse *p, const config_setting_t *s, struct quota_url *u)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(u->host, NULL, &hints, &res);

	if (rc != 0)
		return fail(p, s, "cannot resolve the Redis host '%s': %s", u->host, gai_strerror(rc));
	const void *a = res->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
	                                           : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
	inet_ntop(res->ai_family, a, u->host, sizeof(u->host));
	freeaddrinfo(res);
	return true;
}

static bool parse_backend(struct parse *p, const config_setting_t *g, struct sending_cfg *sc)
{
	const config_setting_t *s = config_setting_get_member(g, "backend");
	char *v = NULL, err[256];

	if (!get_string(p, g, "backend", "memory", &v))
		return false;
	sc->redis = strcmp(v, "memory") != 0;
	bool ok = !sc->redis || quota_url_parse(v, &sc->url, err, sizeof(err));
	free(v);
	if (!ok)
		return fail(p, s, "'backend' must be \"memory\" or \"redis://host:port/db\": %s", err);
	return !sc->redis || resolve_redis_host(p, s, &sc->url);
}

static bool parse_sending(struct parse *p, const config_setting_t *g)
{
	struct sending_cfg *sc = &p->cfg->sending;
	char *v = NULL;
	long long ms;

	if (!parse_backend(p, g, sc) || !get_int(p, g, "redis_timeout_ms", 500, 10, 60000, &ms) ||
	    !get_string(p, g, "redis_failure", "open", &v))
		return false;
	sc->timeout_ms = (unsigned)ms;
	sc->fail_closed = strcmp(v, "closed") == 0;
	bool ok = sc->fail_closed || strcmp(v, "open") == 0;
	free(v);
	if (!ok)
		return fail(p, config_setting_get_member(g, "redis_failure"),
		            "'redis_failure' must be \"open\" or \"closed\"");
	return true;
}

static bool parse_tenant(struct parse *p, const config_setting_t *g, struct tenant_cfg *t)
{
	char *region = NULL;

	if (!check_keys(p, g, tenant_keys, "tenant") || !get_string(p, g, "name", NULL, &t->name) ||
	    !parse_hostnames(p, g, t) || !parse_tenant_certs(p, g, t) ||
	    !get_string(p, g, "region", NULL, &region))
		return false;
	t->region = find_region(p->cfg, region);
	free(region);
	if (!t->region)
		return fail(p, config_setting_get_member(g, "region"),
		            "tenant '%s' names unknown region '%s'", t->name,
		            config_setting_get_string(config_setting_get_member(g, "region")));
	/* A built-in region is written nowhere: its errors (such as a CA bundle that does not
	 * load) point at the first tenant line that uses it. */
	if (t->region->line == 0) {
		const config_setting_t *rs = config_setting_get_member(g, "region");
		free(t->region->src_file);
		t->region->src_file = source_file(p, rs);
		t->region->line = (int)config_setting_source_line(rs);
	}
	return get_bool(p, g, "require_tls", true, &t->require_tls) &&
	       get_bool(p, g, "skip_verification", false, &t->skip_verification) && parse_tenant_limits(p, g, t) &&
	       parse_tenant_auth(p, g, t);
}

static bool parse_tenants(struct parse *p, const config_t *lc)
{
	const config_setting_t *list = get_group_list(p, lc, "tenants");
	struct config *cfg = p->cfg;

	if (p->failed)
		return false;
	if (!list || config_setting_length(list) == 0)
		return fail(p, list, "at least one tenant is required in 'tenants'");
	int n = config_setting_length(list);
	cfg->tenants = xcalloc((size_t)n, sizeof(struct tenant_cfg));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct tenant_cfg *t = &cfg->tenants[cfg->ntenants++];
		if (!parse_tenant(p, g, t))
			return false;
		if (find_tenant(cfg, t->name) != t)
			return fail(p, g, "tenant '%s' is defined twice", t->name);
		if (!check_hostname_unique(p, g, cfg->ntenants - 1))
			return false;
	}
	return true;
}

/* ---- a listener behind a load balancer: proxy_protocol, proxy_trusted, proxy_timeout ---- */

static bool parse_trusted(struct parse *p, const config_setting_t *g, struct listener_cfg *l)
{
	char **list;
	size_t n;
	const char *why;

	if (!get_string_list(p, g, "proxy_trusted", false, &list, &n))
		return false;
	l->proxy_trusted = xcalloc(n ? n : 1, sizeof(struct cidr));
	for (size_t i = 0; i < n && !p->failed; i++) {
		if (!cidr_parse(list[i], &l->proxy_trusted[i], &why))
			fail(p, config_setting_get_member(g, "proxy_trusted"), "'proxy_trusted': \"%s\" %s", list[i],
			     why);
		l->nproxy_trusted++;
	}
	free_list(list, n);
	return !p->failed;
}

/* A PROXY header can claim any address: only the balancers named in proxy_trusted may send
 * one, so proxy_protocol without them is an error, not an open door. */
static bool parse_listener_proxy(struct parse *p, const config_setting_t *g, struct listener_cfg *l)
{
	if (!get_bool(p, g, "proxy_protocol", false, &l->proxy_protocol) || !parse_trusted(p, g, l) ||
	    !get_seconds(p, g, "proxy_timeout", 5, &l->proxy_timeout_ms))
		return false;
	if (l->proxy_protocol && l->nproxy_trusted == 0)
		return fail(p, config_setting_get_member(g, "proxy_protocol"),
		            "'proxy_protocol' needs 'proxy_trusted': the addresses (CIDR) of the load balancers "
		            "that may send the PROXY header");
	const config_setting_t *stray = config_setting_get_member(g, "proxy_trusted");
	if (!stray)
		stray = config_setting_get_member(g, "proxy_timeout");
	if (!l->proxy_protocol && stray)
		return fail(p, stray, "'%s' only applies with 'proxy_protocol = true'", config_setting_name(stray));
	return true;
}

/* ---- listeners ---- */

static bool parse_listener(struct parse *p, const config_setting_t *g, struct listener_cfg *l)
{
	long long port;
	char *tenant = NULL;
	char norm[NAME_MAX_LEN + 1];

	if (!check_keys(p, g, listener_keys, "listener") || !get_string(p, g, "address", NULL, &l->address) ||
	    !get_int(p, g, "port", -1, 1, 65535, &port) || !get_tls_mode(p, g, &l->tls) ||
	    !get_string(p, g, "hostname", NULL, &l->hostname) ||
	    !get_string(p, g, "default_tenant", NULL, &tenant) ||
	    !get_bool(p, g, "allow_plaintext_auth", false, &l->allow_plaintext_auth) ||
	    !parse_listener_proxy(p, g, l))
		goto out;
	l->port = (int)port;
	if (!is_ip_literal(l->address))
		fail(p, config_setting_get_member(g, "address"), "'address' must be an IPv4 or IPv6 literal");
	else if (!name_normalize(l->hostname, strlen(l->hostname), norm, false))
		fail(p, config_setting_get_member(g, "hostname"), "'hostname' is not a valid host name");
	else if (!(l->default_tenant = find_tenant(p->cfg, tenant)))
		fail(p, config_setting_get_member(g, "default_tenant"), "unknown tenant '%s'", tenant);
	else
		strcpy(l->hostname, norm); /* as the greeting shows it: lower case, no trailing dot */
out:
	free(tenant);
	return !p->failed;
}

static bool parse_listeners(struct parse *p, const config_t *lc)
{
	const config_setting_t *list = get_group_list(p, lc, "listeners");
	struct config *cfg = p->cfg;

	if (p->failed)
		return false;
	if (!list || config_setting_length(list) == 0)
		return fail(p, list, "at least one listener is required in 'listeners'");
	int n = config_setting_length(list);
	cfg->listeners = xcalloc((size_t)n, sizeof(struct listener_cfg));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct listener_cfg *l = &cfg->listeners[cfg->nlisteners++];
		if (!parse_listener(p, g, l))
			return false;
		for (size_t k = 0; k + 1 < cfg->nlisteners; k++) {
			if (cfg->listeners[k].port == l->port &&
			    strcmp(cfg->listeners[k].address, l->address) == 0)
				return fail(p, g, "listener %s port %d is defined twice", l->address,
				            l->port);
		}
	}
	return true;
}

static bool get_count(struct parse *p, const config_setting_t *g, const char *key, long long def,
                      unsigned *out)
{
	long long v;

	if (!get_int(p, g, key, def, 1, 1000000, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

/* Defaults follow RFC 5321 4.5.3.2 for the SMTP timeouts. */
static bool parse_limits(struct parse *p, const config_t *lc)
{
	const config_setting_t *g = config_lookup(lc, "limits");
	struct limits_cfg *l = &p->cfg->limits;
	long long size;

	if (g && !check_keys(p, g, limits_keys, "limits"))
		return false;
	if (!g) /* the root has none of these keys (check_keys saw to it): all take defaults */
		g = config_root_setting(lc);
	if (!get_int(p, g, "max_message_size", 52428800, 1024, (long long)1 << 40, &size) ||
	    !get_count(p, g, "max_connections", 4096, &l->max_connections) ||
	    !get_count(p, g, "max_connections_per_ip", 64, &l->max_connections_per_ip) ||
	    !get_count(p, g, "max_unauthenticated_relay_legs", 256, &l->max_unauth_legs) ||
	    !get_count(p, g, "max_unauthenticated_relay_legs_per_ip", 8, &l->max_unauth_legs_per_ip) ||
	    !get_count(p, g, "max_auth_failures", 3, &l->max_auth_failures) ||
	    !get_count(p, g, "max_bad_commands", 20, &l->max_bad_commands) ||
	    !get_seconds(p, g, "command_timeout", 300, &l->command_timeout_ms) ||
	    !get_seconds(p, g, "data_timeout", 180, &l->data_timeout_ms) ||
	    !get_seconds(p, g, "relay_timeout", 300, &l->relay_timeout_ms) ||
	    !get_seconds(p, g, "relay_data_timeout", 600, &l->relay_data_timeout_ms) ||
	    !get_seconds(p, g, "tls_timeout", 30, &l->tls_timeout_ms) ||
	    !get_seconds(p, g, "shutdown_timeout", 10, &l->shutdown_timeout_ms))
		return false;
	l->max_message_size = (uint64_t)size;
	return parse_sending(p, g);
}

/* ---- authentication and the relay pool (issue 12) ---- */

/* users_file: errors point into the users file itself ("users:3: ..."). */
static bool load_users(struct parse *p, const config_setting_t *g, struct tenant_cfg *t)
{
	size_t len = 0;
	const char *cause;
	char *text = util_read_file(t->auth.users_file, (size_t)16 << 20, &len, &cause);
	char why[300];

	if (!text)
		return fail(p, config_setting_get_member(g, "users_file"), "cannot read users_file %s: %s",
		            t->auth.users_file, cause);
	t->auth.users = users_parse(text, len, why, sizeof(why));
	free(text);
	if (!t->auth.users && !p->failed) {
		p->failed = true;
		snprintf(p->err, p->errlen, "%s:%s", t->auth.users_file, why + strlen("line "));
	}
	return t->auth.users != NULL;
}

/* The relay password is the file's first line, without its line end. */
static bool load_relay_password(struct parse *p, const config_setting_t *g, struct tenant_cfg *t)
{
	const config_setting_t *s = config_setting_get_member(g, "relay_password_file");
	size_t len = 0;
	const char *cause;
	char *text = util_read_file(t->auth.relay_password_file, 4096, &len, &cause);

	if (!text)
		return fail(p, s, "cannot read relay_password_file %s: %s", t->auth.relay_password_file, cause);
	text[strcspn(text, "\r\n")] = '\0';
	t->auth.relay_password = text;
	if (!text[0])
		return fail(p, s, "relay_password_file %s holds no password on its first line",
		            t->auth.relay_password_file);
	return true;
}

static bool parse_auth_domains(struct parse *p, const config_setting_t *g, struct tenant_auth_cfg *a)
{
	char norm[NAME_MAX_LEN + 1];

	if (!get_string_list(p, g, "auth_domains", false, &a->domains, &a->ndomains))
		return false;
	for (size_t i = 0; i < a->ndomains; i++) {
		if (!name_normalize(a->domains[i], strlen(a->domains[i]), norm, false))
			return fail(p, config_setting_get_member(g, "auth_domains"), "'%s' is not a valid domain",
			            a->domains[i]);
		strcpy(a->domains[i], norm);
	}
	return true;
}

/* Local mode needs all three of users_file, relay_user and relay_password_file; passthrough
 * takes none of them (a stray one would suggest credentials are checked when they are not). */
static bool parse_auth_local(struct parse *p, const config_setting_t *g, struct tenant_cfg *t)
{
	static const char *const local_only[] = {"users_file", "relay_user", "relay_password_file"};
	struct tenant_auth_cfg *a = &t->auth;

	for (size_t i = 0; i < ARRAY_LEN(local_only); i++) {
		const config_setting_t *s = config_setting_get_member(g, local_only[i]);
		if (a->mode == TENANT_AUTH_PASSTHROUGH && s)
			return fail(p, s, "'%s' is only used with auth = \"local\"", local_only[i]);
		if (a->mode == TENANT_AUTH_LOCAL && !s)
			return fail(p, config_setting_get_member(g, "auth"),
			            "tenant '%s': auth = \"local\" needs '%s'", t->name, local_only[i]);
	}
	if (a->mode == TENANT_AUTH_PASSTHROUGH)
		return true;
	return get_path(p, g, "users_file", NULL, &a->users_file) && get_string(p, g, "relay_user", NULL, &a->relay_user) &&
	       get_path(p, g, "relay_password_file", NULL, &a->relay_password_file) && load_users(p, g, t) &&
	       load_relay_password(p, g, t);
}

static bool parse_tenant_auth(struct parse *p, const config_setting_t *g, struct tenant_cfg *t)
{
	char *mode = NULL;
	long long ttl;

	if (!get_string(p, g, "auth", "passthrough", &mode))
		return false;
	bool local = strcmp(mode, "local") == 0, ok = local || strcmp(mode, "passthrough") == 0;
	free(mode);
	if (!ok)
		return fail(p, config_setting_get_member(g, "auth"), "'auth' must be \"passthrough\" or \"local\"");
	t->auth.mode = local ? TENANT_AUTH_LOCAL : TENANT_AUTH_PASSTHROUGH;
	if (!get_int(p, g, "auth_cache_ttl", 300, 0, 86400, &ttl))
		return false;
	t->auth.cache_ttl_ms = (unsigned)(ttl * 1000);
	return parse_auth_domains(p, g, &t->auth) && parse_auth_local(p, g, t);
}

static void tenant_auth_free(struct tenant_auth_cfg *a)
{
	free_list(a->domains, a->ndomains);
	free(a->users_file);
	users_free(a->users);
	free(a->relay_user);
	free(a->relay_password_file);
	if (a->relay_password)
		explicit_bzero(a->relay_password, strlen(a->relay_password));
	free(a->relay_password);
}

static const char *const pool_keys[] = {"max_idle", "idle_timeout", "max_messages", "max_age", "min_idle", NULL};

/* pool { ... }: every key optional. idle_timeout stays below common relays' own idle
 * timeouts (Postfix: 300 s, many providers: 30-60 s). */
static bool parse_pool(struct parse *p, const config_t *lc)
{
	const config_setting_t *g = config_lookup(lc, "pool");
	struct pool_cfg *pc = &p->cfg->pool;
	long long max_idle, min_idle;

	if (g && !check_keys(p, g, pool_keys, "pool"))
		return false;
	if (!g)
		g = config_root_setting(lc); /* none of the keys are there: all defaults */
	if (!get_int(p, g, "max_idle", 8, 0, 10000, &max_idle) || !get_int(p, g, "min_idle", 0, 0, 10000, &min_idle) ||
	    !get_seconds(p, g, "idle_timeout", 20, &pc->idle_timeout_ms) ||
	    !get_count(p, g, "max_messages", 100, &pc->max_messages) || !get_seconds(p, g, "max_age", 300, &pc->max_age_ms))
		return false;
	pc->max_idle = (unsigned)max_idle;
	pc->min_idle = (unsigned)min_idle;
	if (pc->min_idle > pc->max_idle)
		return fail(p, config_setting_get_member(g, "min_idle"), "'min_idle' must not exceed 'max_idle'");
	return true;
}

/* Where the session and message records go, and in which form. */
static bool parse_records(struct parse *p, const config_setting_t *root)
{
	char *format = NULL;

	if (!get_string(p, root, "log_format", "json", &format) ||
	    (config_setting_get_member(root, "log_file") && !get_path(p, root, "log_file", NULL, &p->cfg->log_file)))
		return false;
	static const char *const names[] = {[CONFIG_LOG_JSON] = "json", [CONFIG_LOG_TEXT] = "text",
	                                    [CONFIG_LOG_NONE] = "none"};
	size_t i = 0;
	while (i < ARRAY_LEN(names) && strcmp(format, names[i]) != 0)
		i++;
	free(format);
	if (i == ARRAY_LEN(names))
		return fail(p, config_setting_get_member(root, "log_format"),
		            "'log_format' must be \"json\", \"text\" or \"none\"");
	p->cfg->log_format = (enum config_log_format)i;
	return true;
}

/* "address:port" or "[v6address]:port" into *admin; false when it is not that shape. */
static bool split_admin_listen(const char *v, struct admin_cfg *admin)
{
	const char *colon = strrchr(v, ':');
	char *end;
	char buf[INET6_ADDRSTRLEN + 2];
	unsigned char addr[sizeof(struct in6_addr)];

	if (!colon || (size_t)(colon - v) >= sizeof(buf))
		return false;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || port < 1 || port > 65535)
		return false;
	bool v6 = v[0] == '[';
	if (v6 && colon[-1] != ']')
		return false;
	snprintf(buf, sizeof(buf), "%.*s", (int)(colon - v) - 2 * v6, v + v6);
	if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, addr) != 1)
		return false;
	admin->address = xstrdup(buf);
	admin->port = (int)port;
	admin->loopback = v6 ? memcmp(addr, &in6addr_loopback, sizeof(in6addr_loopback)) == 0 : addr[0] == 127;
	return true;
}

/* The admin listener (metrics and health): off unless admin_listen is set. Off loopback it
 * needs admin_token, since /metrics names every tenant. */
static bool parse_admin(struct parse *p, const config_setting_t *root)
{
	const config_setting_t *s = config_setting_get_member(root, "admin_listen");
	char *v = NULL;

	if ((config_setting_get_member(root, "admin_token") &&
	     !get_string(p, root, "admin_token", NULL, &p->cfg->admin.token)) ||
	    (s && !get_string(p, root, "admin_listen", NULL, &v)))
		return false;
	if (p->cfg->admin.token && !p->cfg->admin.token[0])
		return fail(p, config_setting_get_member(root, "admin_token"), "'admin_token' must not be empty");
	if (!s)
		return true;
	bool ok = split_admin_listen(v, &p->cfg->admin);
	free(v);
	if (!ok)
		return fail(p, s, "'admin_listen' must be \"address:port\" with an IP address, e.g. \"127.0.0.1:9025\"");
	if (!p->cfg->admin.loopback && !p->cfg->admin.token)
		return fail(p, s, "'admin_listen' off loopback needs 'admin_token'");
	return true;
}

/* One worker per online CPU, as nginx's "worker_processes auto". */
static long long default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : n;
}

/* The user is looked up now, so that a missing one is a configuration error with its line,
 * found by --check and by a reload, not a worker failing after the fork. */
static bool parse_user(struct parse *p, const config_setting_t *root, struct process_cfg *pc)
{
	char buf[4096];
	struct passwd pw, *found = NULL;

	if (!get_string(p, root, "user", "nobody", &pc->user))
		return false;
	if (getpwnam_r(pc->user, &pw, buf, sizeof(buf), &found) != 0 || !found)
		return fail(p, config_setting_get_member(root, "user"), "no such user '%s'", pc->user);
	pc->uid = pw.pw_uid;
	pc->gid = pw.pw_gid; /* the user's primary group, unless group says otherwise */
	return true;
}

static bool parse_group(struct parse *p, const config_setting_t *root, struct process_cfg *pc)
{
	char buf[4096];
	struct group gr, *found = NULL;
	const config_setting_t *s = config_setting_get_member(root, "group");

	if (!s) {
		if (getgrgid_r(pc->gid, &gr, buf, sizeof(buf), &found) == 0 && found)
			pc->group = xstrdup(gr.gr_name);
		else
			pc->group = xasprintf("%u", (unsigned)pc->gid);
		return true;
	}
	if (!get_string(p, root, "group", NULL, &pc->group))
		return false;
	if (getgrnam_r(pc->group, &gr, buf, sizeof(buf), &found) != 0 || !found)
		return fail(p, s, "no such group '%s'", pc->group);
	pc->gid = gr.gr_gid;
	return true;
}

static bool parse_pid_file(struct parse *p, const config_setting_t *root, struct process_cfg *pc)
{
	char *v = NULL;

	if (!config_setting_get_member(root, "pid_file"))
		return true;
	if (!get_string(p, root, "pid_file", NULL, &v))
		return false;
	pc->pid_file = resolve_path(p, v);
	free(v);
	return true;
}

static bool parse_process(struct parse *p, const config_setting_t *root)
{
	struct process_cfg *pc = &p->cfg->process;
	return parse_user(p, root, pc) && parse_group(p, root, pc) && parse_pid_file(p, root, pc);
}

static bool parse_cert_dir(struct parse *p, const config_setting_t *root)
{
	const config_setting_t *s = config_setting_get_member(root, "cert_dir");

	p->cfg->cert_dir_src_file = source_file(p, s);
	p->cfg->cert_dir_line = s ? (int)config_setting_source_line(s) : 0;
	return get_opt_path(p, root, "cert_dir", &p->cfg->cert_dir);
}

/* ---- ticket_key_file: the session-ticket keys (certstore reads the file) ---- */

static bool parse_ticket_key_file(struct parse *p, const config_setting_t *root)
{
	const config_setting_t *s = config_setting_get_member(root, "ticket_key_file");

	if (!s)
		return true;
	p->cfg->ticket_key_file_src_file = source_file(p, s);
	p->cfg->ticket_key_file_line = (int)config_setting_source_line(s);
	return get_path(p, root, "ticket_key_file", NULL, &p->cfg->ticket_key_file);
}

static void free_ticket_key_file(struct config *cfg)
{
	free(cfg->ticket_key_file);
	free(cfg->ticket_key_file_src_file);
}

/* ---- end of ticket_key_file ---- */

const char *config_tenant_cert_dir(const struct config *cfg, const struct tenant_cfg *t)
{
	return t->cert_dir ? t->cert_dir : cfg->cert_dir;
}

/* ---- acme ---- */

static const char *const acme_keys[] = {"directory",   "email",      "ca_file",  "challenge",
                                        "http_listen", "renew_days", "key_type", "state_dir",
                                        "backoff",     "client",     NULL};

/* lego takes "interface:port" or ":port"; the interface must be an IP literal. */
static bool valid_http_listen(const char *v)
{
	struct admin_cfg a = {0};

	if (v[0] == ':') {
		char *end;
		long port = strtol(v + 1, &end, 10);
		return v[1] && !*end && port >= 1 && port <= 65535;
	}
	bool ok = split_admin_listen(v, &a);
	free(a.address);
	return ok;
}

static bool parse_acme_key_type(struct parse *p, const config_setting_t *g, struct acme_cfg *a)
{
	char *v = NULL;

	if (!get_string(p, g, "key_type", "ecdsa", &v))
		return false;
	a->key_type = strcmp(v, "ecdsa") == 0  ? CONFIG_ACME_ECDSA
	              : strcmp(v, "rsa") == 0  ? CONFIG_ACME_RSA
	              : strcmp(v, "both") == 0 ? CONFIG_ACME_BOTH
	                                       : 0;
	free(v);
	if (!a->key_type)
		return fail(p, config_setting_get_member(g, "key_type"),
		            "'key_type' must be \"ecdsa\", \"rsa\" or \"both\"");
	return true;
}

static bool parse_acme_strings(struct parse *p, const config_setting_t *g, struct acme_cfg *a)
{
	char *challenge = NULL;

	if (!get_string(p, g, "directory", NULL, &a->directory) ||
	    (config_setting_get_member(g, "email") && !get_string(p, g, "email", NULL, &a->email)) ||
	    !get_opt_path(p, g, "ca_file", &a->ca_file) ||
	    !get_string(p, g, "challenge", "http-01", &challenge) ||
	    !get_string(p, g, "http_listen", ":80", &a->http_listen) ||
	    !get_string(p, g, "client", "lego", &a->client))
		goto out;
	if (strncmp(a->directory, "https://", 8) != 0)
		fail(p, config_setting_get_member(g, "directory"), "'directory' must be an https:// URL");
	else if (a->email && (!strchr(a->email, '@') || strpbrk(a->email, " \t\r\n")))
		fail(p, config_setting_get_member(g, "email"), "'email' is not an e-mail address: %s",
		     a->email);
	else if (strcmp(challenge, "http-01") != 0)
		fail(p, config_setting_get_member(g, "challenge"),
		     "'challenge' must be \"http-01\" (wildcard names need DNS-01, which livery does not "
		     "do)");
	else if (!valid_http_listen(a->http_listen))
		fail(p, config_setting_get_member(g, "http_listen"),
		     "'http_listen' must be \"address:port\" with an IP address, or \":port\", e.g. "
		     "\"0.0.0.0:80\"");
out:
	free(challenge);
	return !p->failed;
}

/* The state directory defaults to a hidden one in the top-level cert_dir (certdir skips it). */
static bool parse_acme_state_dir(struct parse *p, const config_setting_t *g, struct acme_cfg *a)
{
	if (config_setting_get_member(g, "state_dir"))
		return get_path(p, g, "state_dir", NULL, &a->state_dir);
	a->state_dir =
	        p->cfg->cert_dir ? xasprintf("%s/.acme", p->cfg->cert_dir) : xstrdup("/var/lib/livery/acme");
	return true;
}

static bool parse_acme(struct parse *p, const config_t *lc)
{
	const config_setting_t *g = config_lookup(lc, "acme");
	struct acme_cfg *a = &p->cfg->acme;
	long long days, backoff;

	if (!g)
		return true;
	if (!check_keys(p, g, acme_keys, "acme"))
		return false;
	a->enabled = true;
	a->src_file = source_file(p, g);
	a->line = (int)config_setting_source_line(g);
	if (!parse_acme_strings(p, g, a) || !parse_acme_key_type(p, g, a) || !parse_acme_state_dir(p, g, a) ||
	    !get_int(p, g, "renew_days", 30, 1, 3650, &days) ||
	    !get_int(p, g, "backoff", 60, 1, 86400, &backoff))
		return false;
	a->renew_days = (unsigned)days;
	a->backoff_s = (unsigned)backoff;
	return true;
}

static void acme_cfg_free(struct acme_cfg *a)
{
	free(a->directory);
	free(a->email);
	free(a->ca_file);
	free(a->http_listen);
	free(a->state_dir);
	free(a->client);
	free(a->src_file);
}

/* ---- the top level ---- */

static bool parse_top(struct parse *p, const config_t *lc)
{
	const config_setting_t *root = config_root_setting(lc);
	char *level = NULL;

	if (!check_keys(p, root, top_keys, "the top level") ||
	    !get_string(p, root, "log_level", "info", &level))
		return false;
	bool ok = log_level_parse(level, &p->cfg->log_level);
	free(level);
	if (!ok)
		return fail(p, config_setting_get_member(root, "log_level"),
		            "'log_level' must be \"error\", \"warn\", \"info\" or \"debug\"");
	long long workers;
	if (!get_int(p, root, "workers", default_workers(), 1, 64, &workers) || !parse_process(p, root) ||
	    !get_string(p, root, "bare_line_endings", "reject", &level))
		return false;
	p->cfg->workers = (unsigned)workers;
	p->cfg->bare_line_endings = strcmp(level, "normalize") == 0 ? SMTP_BARE_NORMALIZE : SMTP_BARE_REJECT;
	ok = strcmp(level, "normalize") == 0 || strcmp(level, "reject") == 0;
	free(level);
	if (!ok)
		return fail(p, config_setting_get_member(root, "bare_line_endings"),
		            "'bare_line_endings' must be \"reject\" or \"normalize\"");
	return parse_records(p, root) && parse_admin(p, root) && parse_cert_dir(p, root) &&
	       parse_ticket_key_file(p, root) && parse_limits(p, lc) && parse_pool(p, lc) &&
	       parse_regions(p, lc) && parse_tenants(p, lc) && parse_listeners(p, lc) && parse_acme(p, lc);
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return xstrdup(".");
	return slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	config_t lc;
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	char *dir = dir_of(path);
	struct parse p = {.cfg = cfg, .dir = dir, .err = err, .errlen = errlen};

	cfg->path = xstrdup(path);
	config_init(&lc);
	config_set_include_dir(&lc, dir);
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		const char *file = config_error_file(&lc);
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s:0: cannot read file", file ? file : path);
		else
			snprintf(err, errlen, "%s:%d: %s", file ? file : path, config_error_line(&lc),
			         config_error_text(&lc));
		p.failed = true;
	} else {
		parse_top(&p, &lc);
	}
	config_destroy(&lc);
	free(dir);
	if (p.failed) {
		config_free(cfg);
		return NULL;
	}
	for (size_t i = 0; i < cfg->ntenants; i++)
		cfg->tenants[i].origin = &cfg->tenants[i];
	return cfg;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].address);
		free(cfg->listeners[i].hostname);
		free(cfg->listeners[i].proxy_trusted);
	}
	for (size_t i = 0; i < cfg->ntenants; i++) {
		struct tenant_cfg *t = &cfg->tenants[i];
		free_list(t->hostnames, t->nhostnames);
		free(t->name);
		free(t->cert);
		free(t->key);
		free(t->src_file);
		free(t->key_src_file);
		free(t->cert_dir);
		free(t->names_src_file);
		tenant_auth_free(&t->auth);
	}
	for (size_t i = 0; i < cfg->nregions; i++)
		region_free(&cfg->regions[i]);
	free(cfg->listeners);
	free(cfg->tenants);
	free(cfg->regions);
	free(cfg->log_file);
	free(cfg->process.user);
	free(cfg->process.group);
	free(cfg->process.pid_file);
	free(cfg->admin.address);
	free(cfg->admin.token);
	free(cfg->path);
	free(cfg->cert_dir);
	free(cfg->cert_dir_src_file);
	free_ticket_key_file(cfg);
	acme_cfg_free(&cfg->acme);
	free(cfg);
}

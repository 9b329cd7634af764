/* certstore: the TLS material loaded from a config (server contexts by host name, from tenants' cert/key
 * lines or from cert_dir directories; client contexts per region), immutable once built: a reload builds a
 * new one. */
#include "certstore.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "certdir.h"
#include "log.h"
#include "names.h"
#include "util.h"

/* One tenant host name and the certificate serving it. The view is a copy of the tenant's
 * settings that certstore_lookup hands out for this name, so that certstore_server_ctx can
 * tell the names of one tenant apart without the caller passing the name again. */
struct binding {
	struct tenant_cfg view; /* first: a view pointer is a binding pointer */
	const struct tenant_cfg *tenant;
	const char *hostname;
	const struct certstore_cert *cert;
	const struct certstore_cert *rsa; /* for clients that reject ECDSA when cert is ECDSA, or NULL */
	tls_ctx *own_ctx; /* cert's own copy, when cert's context already falls back to another RSA one */
};

struct certstore {
	const struct config *cfg;
	struct certstore_cert *certs; /* every chain + key loaded */
	size_t ncerts;
	struct binding *bindings; /* one per tenant host name, in config order */
	size_t nbindings;
	tls_ctx **verify; /* by region index, NULL when no tenant needs it */
	tls_ctx **noverify;
	struct name_entry *names; /* every tenant's host names, to its binding's view, sorted */
	size_t nnames;
	char **refused; /* why each pair under a cert_dir that did not load was refused */
	size_t nrefused;
};

/* certbot keeps keys 0600; a key others can read is worth a word at start-up. */
static void warn_key_mode(const char *what, const char *key)
{
	struct stat st;

	if (stat(key, &st) == 0 && (st.st_mode & 077))
		log_warn("%s %s is readable by group or others (mode %04o); chmod 600 it", what, key,
		         (unsigned)(st.st_mode & 07777));
}

/* Loads a chain + key, proven to match; false with the reason in why. */
static bool load_pair(struct certstore *cs, const char *cert, const char *key, const char *dir,
                      bool *key_at_fault, char *why, size_t whylen)
{
	struct certstore_cert c = {.dir = dir};

	*key_at_fault = false;
	c.ctx = tls_server_ctx_new(cert, key, key_at_fault, why, whylen);
	if (!c.ctx)
		return false;
	if (!tls_server_ctx_cert_info(c.ctx, &c.info)) {
		snprintf(why, whylen, "cannot read back the certificate of %s", cert);
		tls_ctx_free(c.ctx);
		return false;
	}
	warn_key_mode("private key", key);
	c.cert = xstrdup(cert);
	c.key = xstrdup(key);
	cs->certs = xrealloc(cs->certs, (cs->ncerts + 1) * sizeof(*cs->certs));
	cs->certs[cs->ncerts++] = c;
	return true;
}

/* Whether a tenant before upto (or the top level) already had dir loaded. */
static bool dir_loaded(const struct certstore *cs, const struct tenant_cfg *upto, const char *dir)
{
	if (cs->cfg->cert_dir && strcmp(cs->cfg->cert_dir, dir) == 0)
		return true;
	for (const struct tenant_cfg *t = cs->cfg->tenants; t < upto; t++) {
		if (!t->cert && t->cert_dir && strcmp(t->cert_dir, dir) == 0)
			return true;
	}
	return false;
}

/* A pair that does not load (half written, key and certificate not matching, not PEM) is
 * skipped with a log line: the names it would have served keep their other certificates. */
static bool load_dir(struct certstore *cs, const char *dir, const char *file, int line, char *err,
                     size_t errlen)
{
	struct certdir_list l;
	char why[512];
	bool key_at_fault;

	if (!certdir_scan(dir, &l, why, sizeof(why))) {
		snprintf(err, errlen, "%s:%d: cert_dir: %s", file, line, why);
		return false;
	}
	size_t before = cs->ncerts;
	for (size_t i = 0; i < l.n; i++) {
		if (load_pair(cs, l.pairs[i].cert, l.pairs[i].key, dir, &key_at_fault, why, sizeof(why)))
			continue;
		log_warn("cert_dir %s: refusing %s + %s: %s", dir, l.pairs[i].cert, l.pairs[i].key, why);
		cs->refused = xrealloc(cs->refused, (cs->nrefused + 1) * sizeof(char *));
		cs->refused[cs->nrefused++] =
		        xasprintf("refusing %s + %s: %s", l.pairs[i].cert, l.pairs[i].key, why);
	}
	log_info("cert_dir %s: %zu certificate%s loaded", dir, cs->ncerts - before,
	         cs->ncerts - before == 1 ? "" : "s");
	certdir_list_free(&l);
	return true;
}

static bool load_dirs(struct certstore *cs, char *err, size_t errlen)
{
	const struct config *cfg = cs->cfg;

	if (cfg->cert_dir &&
	    !load_dir(cs, cfg->cert_dir, cfg->cert_dir_src_file, cfg->cert_dir_line, err, errlen))
		return false;
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cfg->tenants[i];
		if (t->cert || !t->cert_dir || dir_loaded(cs, t, t->cert_dir))
			continue;
		if (!load_dir(cs, t->cert_dir, t->names_src_file, t->names_line, err, errlen))
			return false;
	}
	return true;
}

/* A tenant's own cert/key lines: failing to load them is a configuration error. */
static bool load_tenant_pairs(struct certstore *cs, char *err, size_t errlen)
{
	char why[512];
	bool key_at_fault;

	for (size_t i = 0; i < cs->cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cs->cfg->tenants[i];
		if (t->cert && !load_pair(cs, t->cert, t->key, NULL, &key_at_fault, why, sizeof(why))) {
			snprintf(err, errlen, "%s:%d: tenant '%s': %s",
			         key_at_fault ? t->key_src_file : t->src_file,
			         key_at_fault ? t->key_line : t->cert_line, t->name, why);
			return false;
		}
	}
	return true;
}

static bool valid_at(const struct certstore_cert *c, long long now)
{
	return c->info.not_before <= now && now < c->info.not_after;
}

/* An exact host name is covered by an equal name or a one-label wildcard; a wildcard host
 * name only by the same wildcard. */
static bool covers(const struct certstore_cert *c, const char *hostname)
{
	for (size_t i = 0; i < c->info.nnames; i++) {
		if (strcmp(c->info.names[i], hostname) == 0 ||
		    (!name_is_wildcard(hostname) && name_match(c->info.names[i], hostname)))
			return true;
	}
	return false;
}

/* Valid beats not valid; then the one that expires last. */
static bool better(const struct certstore_cert *a, const struct certstore_cert *b, long long now)
{
	if (valid_at(a, now) != valid_at(b, now))
		return valid_at(a, now);
	return a->info.not_after > b->info.not_after;
}

static void fmt_date(long long t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

static void log_choice(const char *hostname, const struct certstore_cert *win,
                       const struct certstore_cert *lose)
{
	char a[32], b[32];

	fmt_date(win->info.not_after, a, sizeof(a));
	fmt_date(lose->info.not_after, b, sizeof(b));
	log_info("%s: %s (expires %s) chosen over %s (expires %s)", hostname, win->cert, a, lose->cert, b);
}

/* The best certificate under dir for hostname, and in *rsa a valid RSA one for clients that
 * cannot verify ECDSA when the best is ECDSA. ECDSA is preferred: it is the faster handshake
 * and every current client accepts it. */
static const struct certstore_cert *choose(const struct certstore *cs, const char *dir, const char *hostname,
                                           long long now, const struct certstore_cert **rsa)
{
	const struct certstore_cert *best[2] = {NULL, NULL}; /* ECDSA, RSA */

	for (size_t i = 0; i < cs->ncerts; i++) {
		const struct certstore_cert *c = &cs->certs[i];
		if (!c->dir || strcmp(c->dir, dir) != 0 || !covers(c, hostname))
			continue;
		const struct certstore_cert **slot = &best[c->info.rsa];
		if (*slot && better(c, *slot, now))
			log_choice(hostname, c, *slot);
		else if (*slot)
			log_choice(hostname, *slot, c);
		if (!*slot || better(c, *slot, now))
			*slot = c;
	}
	*rsa = NULL;
	if (best[0] && (valid_at(best[0], now) || !best[1] || !valid_at(best[1], now))) {
		*rsa = best[1] && valid_at(best[1], now) ? best[1] : NULL;
		return best[0];
	}
	return best[1];
}

static const struct certstore_cert *explicit_cert(const struct certstore *cs, const struct tenant_cfg *t)
{
	for (size_t i = 0; i < cs->ncerts; i++) {
		if (!cs->certs[i].dir && strcmp(cs->certs[i].cert, t->cert) == 0 &&
		    strcmp(cs->certs[i].key, t->key) == 0)
			return &cs->certs[i];
	}
	abort(); /* load_tenant_pairs loaded it or failed */
}

/* The ECDSA context hands clients that reject ECDSA to the RSA one. A context shared by names
 * whose RSA certificates differ cannot point at both: such a name gets its own copy. */
static bool attach_rsa(struct binding *b, char *err, size_t errlen)
{
	tls_ctx *ctx = b->cert->ctx, *have = tls_ctx_rsa_fallback(ctx);
	char why[512];
	bool key_at_fault;

	if (have == b->rsa->ctx)
		return true;
	if (have) {
		b->own_ctx = tls_server_ctx_new(b->cert->cert, b->cert->key, &key_at_fault, why, sizeof(why));
		if (!b->own_ctx) { /* it loaded a moment ago: the files changed under us */
			snprintf(err, errlen, "%s: %s", b->cert->cert, why);
			return false;
		}
		ctx = b->own_ctx;
	}
	tls_ctx_set_rsa_fallback(ctx, b->rsa->ctx);
	log_info("%s: %s, and %s for clients without ECDSA", b->hostname, b->cert->cert, b->rsa->cert);
	return true;
}

static bool bind_tenant(struct certstore *cs, const struct tenant_cfg *t, long long now, char *err,
                        size_t errlen)
{
	const char *dir = config_tenant_cert_dir(cs->cfg, t);

	for (size_t h = 0; h < t->nhostnames; h++) {
		struct binding *b = &cs->bindings[cs->nbindings++];
		b->view = *t;
		b->tenant = t;
		b->hostname = t->hostnames[h];
		b->cert = t->cert ? explicit_cert(cs, t) : choose(cs, dir, t->hostnames[h], now, &b->rsa);
		if (!b->cert && certstore_acme_manages(cs->cfg, t, b->hostname)) {
			log_info("%s: no certificate under %s yet: served the default one"
			         " until ACME obtains it",
			         b->hostname, dir);
		} else if (!b->cert) {
			snprintf(err, errlen,
			         "%s:%d: tenant '%s': no certificate under %s covers host name '%s'",
			         t->names_src_file, t->names_line, t->name, dir, t->hostnames[h]);
			return false;
		}
		cs->names[cs->nnames++] = (struct name_entry){b->hostname, &b->view};
		if (b->rsa && !attach_rsa(b, err, errlen))
			return false;
	}
	return true;
}

static bool bind_names(struct certstore *cs, char *err, size_t errlen)
{
	const struct config *cfg = cs->cfg;
	size_t n = 0;
	long long now = (long long)time(NULL);

	for (size_t t = 0; t < cfg->ntenants; t++)
		n += cfg->tenants[t].nhostnames;
	cs->bindings = xcalloc(n, sizeof(*cs->bindings));
	cs->names = xcalloc(n, sizeof(*cs->names));
	for (size_t t = 0; t < cfg->ntenants; t++) {
		if (!bind_tenant(cs, &cfg->tenants[t], now, err, errlen))
			return false;
	}
	name_table_sort(cs->names, cs->nnames);
	return true;
}

static size_t region_index(const struct certstore *cs, const struct region_cfg *r)
{
	return (size_t)(r - cs->cfg->regions);
}

static bool load_clients(struct certstore *cs, char *err, size_t errlen)
{
	char why[256];

	for (size_t i = 0; i < cs->cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cs->cfg->tenants[i];
		size_t r = region_index(cs, t->region);
		tls_ctx **slot = t->skip_verification ? &cs->noverify[r] : &cs->verify[r];
		if (*slot)
			continue;
		*slot = tls_client_ctx_new(t->region->ca_file, !t->skip_verification, why, sizeof(why));
		if (!*slot) {
			snprintf(err, errlen, "%s:%d: region '%s': %s", t->region->src_file, t->region->line,
			         t->region->name, why);
			return false;
		}
	}
	return true;
}

/* A key file holds at most TICKETKEYS_MAX lines of base64 and some comments. */
#define TICKET_KEY_FILE_MAX 8192

/* Reads ticket_key_file (as root, in the master) into keys; false with the reason in why. */
static bool read_ticket_keys(const char *path, struct ticketkeys *keys, char *why, size_t whylen)
{
	char buf[TICKET_KEY_FILE_MAX + 1], msg[256];
	const char *cause = NULL;
	FILE *f = util_fopen_regular(path, &cause);
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	int line = 0;
	bool ok = false;

	if (!f || ferror(f))
		snprintf(why, whylen, "cannot read %s: %s", path, cause ? cause : strerror(errno));
	else if (n > TICKET_KEY_FILE_MAX)
		snprintf(why, whylen, "%s: larger than %d bytes: not a key file", path, TICKET_KEY_FILE_MAX);
	else if (!ticketkeys_parse(buf, n, keys, &line, msg, sizeof(msg)) && line > 0)
		snprintf(why, whylen, "%s:%d: %s", path, line, msg);
	else if (keys->n == 0)
		snprintf(why, whylen, "%s: %s", path, msg);
	else
		ok = true;
	if (f)
		fclose(f);
	explicit_bzero(buf, sizeof(buf));
	if (ok)
		warn_key_mode("ticket_key_file", path);
	return ok;
}

/* Every server context derives its tickets' keys from ticket_key_file's, when there is one. */
static bool load_ticket_keys(struct certstore *cs, char *err, size_t errlen)
{
	const struct config *cfg = cs->cfg;
	struct ticketkeys keys;
	char why[512];

	if (!cfg->ticket_key_file)
		return true;
	if (!read_ticket_keys(cfg->ticket_key_file, &keys, why, sizeof(why))) {
		snprintf(err, errlen, "%s:%d: ticket_key_file %s", cfg->ticket_key_file_src_file,
		         cfg->ticket_key_file_line, why);
		return false;
	}
	for (size_t i = 0; i < cs->ncerts; i++)
		tls_ctx_set_ticket_keys(cs->certs[i].ctx, &keys);
	for (size_t i = 0; i < cs->nbindings; i++) {
		if (cs->bindings[i].own_ctx)
			tls_ctx_set_ticket_keys(cs->bindings[i].own_ctx, &keys);
	}
	log_info("ticket_key_file %s: %u key%s", cfg->ticket_key_file, keys.n, keys.n == 1 ? "" : "s");
	ticketkeys_wipe(&keys);
	return true;
}

struct certstore *certstore_new(const struct config *cfg, char *err, size_t errlen)
{
	struct certstore *cs = xcalloc(1, sizeof(*cs));

	cs->cfg = cfg;
	cs->verify = xcalloc(cfg->nregions, sizeof(tls_ctx *));
	cs->noverify = xcalloc(cfg->nregions, sizeof(tls_ctx *));
	if (!load_tenant_pairs(cs, err, errlen) || !load_dirs(cs, err, errlen) ||
	    !bind_names(cs, err, errlen) || !load_clients(cs, err, errlen) ||
	    !load_ticket_keys(cs, err, errlen)) {
		certstore_free(cs);
		return NULL;
	}
	return cs;
}

void certstore_free(struct certstore *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < cs->ncerts; i++) {
		tls_ctx_free(cs->certs[i].ctx);
		tls_cert_info_free(&cs->certs[i].info);
		free(cs->certs[i].cert);
		free(cs->certs[i].key);
	}
	for (size_t i = 0; i < cs->cfg->nregions; i++) {
		tls_ctx_free(cs->verify[i]);
		tls_ctx_free(cs->noverify[i]);
	}
	for (size_t i = 0; i < cs->nbindings; i++)
		tls_ctx_free(cs->bindings[i].own_ctx);
	for (size_t i = 0; i < cs->nrefused; i++)
		free(cs->refused[i]);
	free(cs->refused);
	free(cs->certs);
	free(cs->bindings);
	free(cs->verify);
	free(cs->noverify);
	free(cs->names);
	free(cs);
}

const struct tenant_cfg *certstore_lookup(const struct certstore *cs, const char *sni)
{
	return name_table_lookup(cs->names, cs->nnames, sni);
}

/* The binding t is the view of, or NULL when t is a configured tenant itself. */
static const struct binding *binding_of(const struct certstore *cs, const struct tenant_cfg *t)
{
	uintptr_t p = (uintptr_t)t, lo = (uintptr_t)cs->bindings,
	          hi = (uintptr_t)(cs->bindings + cs->nbindings);

	if (p < lo || p >= hi)
		return NULL;
	return &cs->bindings[(p - lo) / sizeof(struct binding)];
}

/* A configured tenant (the listener's default, when the client sent no SNI) is served with
 * the certificate of its first host name that has one (names waiting for ACME have none). */
static const struct binding *first_binding(const struct certstore *cs, const struct tenant_cfg *t)
{
	for (size_t i = 0; i < cs->nbindings; i++) {
		if (cs->bindings[i].tenant == t && cs->bindings[i].cert)
			return &cs->bindings[i];
	}
	return NULL;
}

static tls_ctx *binding_ctx(const struct binding *b)
{
	return !b || !b->cert ? NULL : b->own_ctx ? b->own_ctx : b->cert->ctx;
}

tls_ctx *certstore_server_ctx(const struct certstore *cs, const struct tenant_cfg *t)
{
	const struct binding *b = binding_of(cs, t);

	return binding_ctx(b ? b : first_binding(cs, t));
}

tls_ctx *certstore_default_ctx(const struct certstore *cs, const struct tenant_cfg *t)
{
	tls_ctx *ctx = binding_ctx(first_binding(cs, t));

	for (size_t i = 0; !ctx && i < cs->nbindings; i++)
		ctx = binding_ctx(&cs->bindings[i]);
	return ctx;
}

bool certstore_acme_manages(const struct config *cfg, const struct tenant_cfg *t, const char *hostname)
{
	return cfg->acme.enabled && !t->cert && config_tenant_cert_dir(cfg, t) && !name_is_wildcard(hostname);
}

bool certstore_acme_pending(const struct certstore *cs, const struct tenant_cfg *t)
{
	const struct binding *b = binding_of(cs, t);

	return b && !b->cert;
}

tls_ctx *certstore_client_ctx(const struct certstore *cs, const struct tenant_cfg *t)
{
	size_t r = region_index(cs, t->region);
	return t->skip_verification ? cs->noverify[r] : cs->verify[r];
}

size_t certstore_ncerts(const struct certstore *cs)
{
	return cs->ncerts;
}

const struct certstore_cert *certstore_cert(const struct certstore *cs, size_t i)
{
	return &cs->certs[i];
}

static const struct binding *find_binding(const struct certstore *cs, const struct tenant_cfg *t,
                                          const char *hostname)
{
	for (size_t i = 0; i < cs->nbindings; i++) {
		if (cs->bindings[i].tenant == t && strcmp(cs->bindings[i].hostname, hostname) == 0)
			return &cs->bindings[i];
	}
	return NULL;
}

const struct certstore_cert *certstore_cert_for(const struct certstore *cs, const struct tenant_cfg *t,
                                                const char *hostname)
{
	const struct binding *b = find_binding(cs, t, hostname);

	return b ? b->cert : NULL;
}

const struct certstore_cert *certstore_rsa_for(const struct certstore *cs, const struct tenant_cfg *t,
                                               const char *hostname)
{
	const struct binding *b = find_binding(cs, t, hostname);

	return b ? b->rsa : NULL;
}

bool certstore_cert_in_use(const struct certstore *cs, const struct certstore_cert *c)
{
	for (size_t i = 0; i < cs->nbindings; i++) {
		if (cs->bindings[i].cert == c || cs->bindings[i].rsa == c)
			return true;
	}
	return false;
}

size_t certstore_nrefused(const struct certstore *cs)
{
	return cs->nrefused;
}

const char *certstore_refused(const struct certstore *cs, size_t i)
{
	return cs->refused[i];
}

long long certstore_days_left(long long t, long long now)
{
	long long d = t - now;
	return d >= 0 ? d / 86400 : -((-d + 86399) / 86400);
}

unsigned certstore_log_expiry(const struct certstore *cs, long long now)
{
	unsigned bad = 0;
	char date[32];

	for (size_t i = 0; i < cs->ncerts; i++) {
		const struct certstore_cert *c = &cs->certs[i];
		long long days = certstore_days_left(c->info.not_after, now);
		if (now < c->info.not_before) {
			fmt_date(c->info.not_before, date, sizeof(date));
			log_error("certificate %s is not valid until %s", c->cert, date);
			bad++;
		} else if (now >= c->info.not_after) {
			fmt_date(c->info.not_after, date, sizeof(date));
			log_error("certificate %s expired on %s", c->cert, date);
			bad++;
		} else if (days < CERTSTORE_WARN_DAYS) {
			fmt_date(c->info.not_after, date, sizeof(date));
			log_warn("certificate %s expires in %lld day%s (%s)", c->cert, days,
			         days == 1 ? "" : "s", date);
		}
	}
	return bad;
}

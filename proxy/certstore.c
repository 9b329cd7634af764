/* certstore: the TLS material loaded from a config (a server context per tenant, chosen by SNI; client
 * contexts per region), immutable once built. */
#include "certstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "util.h"

struct certstore {
	const struct config *cfg;
	tls_ctx **server; /* by tenant index */
	tls_ctx **verify; /* by region index, NULL when no tenant needs it */
	tls_ctx **noverify;
	struct name_entry *names; /* every tenant's host names, to tenant_cfg, sorted */
	size_t nnames;
};

static void index_names(struct certstore *cs)
{
	const struct config *cfg = cs->cfg;

	for (size_t t = 0; t < cfg->ntenants; t++)
		cs->nnames += cfg->tenants[t].nhostnames;
	cs->names = xcalloc(cs->nnames, sizeof(*cs->names));
	size_t k = 0;
	for (size_t t = 0; t < cfg->ntenants; t++) {
		for (size_t h = 0; h < cfg->tenants[t].nhostnames; h++)
			cs->names[k++] = (struct name_entry){cfg->tenants[t].hostnames[h], &cfg->tenants[t]};
	}
	name_table_sort(cs->names, cs->nnames);
}

static bool load_servers(struct certstore *cs, char *err, size_t errlen)
{
	char why[256];

	for (size_t i = 0; i < cs->cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cs->cfg->tenants[i];
		bool key_at_fault;
		cs->server[i] = tls_server_ctx_new(t->cert, t->key, &key_at_fault, why, sizeof(why));
		if (!cs->server[i]) {
			snprintf(err, errlen, "%s:%d: tenant '%s': %s",
			         key_at_fault ? t->key_src_file : t->src_file,
			         key_at_fault ? t->key_line : t->cert_line, t->name, why);
			return false;
		}
	}
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

struct certstore *certstore_new(const struct config *cfg, char *err, size_t errlen)
{
	struct certstore *cs = xcalloc(1, sizeof(*cs));

	cs->cfg = cfg;
	cs->server = xcalloc(cfg->ntenants, sizeof(tls_ctx *));
	cs->verify = xcalloc(cfg->nregions, sizeof(tls_ctx *));
	cs->noverify = xcalloc(cfg->nregions, sizeof(tls_ctx *));
	index_names(cs);
	if (!load_servers(cs, err, errlen) || !load_clients(cs, err, errlen)) {
		certstore_free(cs);
		return NULL;
	}
	return cs;
}

void certstore_free(struct certstore *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < cs->cfg->ntenants; i++)
		tls_ctx_free(cs->server[i]);
	for (size_t i = 0; i < cs->cfg->nregions; i++) {
		tls_ctx_free(cs->verify[i]);
		tls_ctx_free(cs->noverify[i]);
	}
	free(cs->server);
	free(cs->verify);
	free(cs->noverify);
	free(cs->names);
	free(cs);
}

const struct tenant_cfg *certstore_lookup(const struct certstore *cs, const char *sni)
{
	return name_table_lookup(cs->names, cs->nnames, sni);
}

tls_ctx *certstore_server_ctx(const struct certstore *cs, const struct tenant_cfg *t)
{
	return cs->server[t - cs->cfg->tenants];
}

tls_ctx *certstore_client_ctx(const struct certstore *cs, const struct tenant_cfg *t)
{
	size_t r = region_index(cs, t->region);
	return t->skip_verification ? cs->noverify[r] : cs->verify[r];
}

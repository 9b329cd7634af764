/* certstore: the TLS material loaded from a config (server contexts by host name, from tenants' cert/key
 * lines or from cert_dir directories; client contexts per region), immutable once built: a reload builds a
 * new one. */
#ifndef LIVERY_CERTSTORE_H
#define LIVERY_CERTSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "tls.h"

/* A certificate that expires within this many days is warned about. */
#define CERTSTORE_WARN_DAYS 21

struct certstore;

/* One loaded certificate chain + key, as `livery check` reports it. */
struct certstore_cert {
	char *cert, *key;
	const char *dir; /* the cert_dir it was found in, or NULL for a tenant's cert/key lines */
	struct tls_cert_info info;
	tls_ctx *ctx;
};

/* Loads every tenant's certificate and key (cert/key lines, else the certificates under its
 * cert_dir matched to its host names) and every used region's CA file. A pair under a
 * cert_dir that does not load is logged and skipped; a host name no certificate covers is an
 * error, unless ACME manages it (certstore_acme_manages). On failure, returns NULL with
 * "file:line: message" in err. */
struct certstore *certstore_new(const struct config *cfg, char *err, size_t errlen);
void certstore_free(struct certstore *cs);
/* The tenant claiming the SNI name (exact names first, then "*.rest" wildcards), or NULL. The
 * pointer may be a per-name copy of the tenant's settings: pass it back to
 * certstore_server_ctx to get that name's certificate. */
const struct tenant_cfg *certstore_lookup(const struct certstore *cs, const char *sni);
/* NULL for a name waiting for its first certificate over ACME: see certstore_default_ctx. */
tls_ctx *certstore_server_ctx(const struct certstore *cs, const struct tenant_cfg *t);
/* The default certificate, for a name that has none yet: tenant t's (the listener's default
 * tenant), else any loaded one; NULL when no certificate is loaded at all. */
tls_ctx *certstore_default_ctx(const struct certstore *cs, const struct tenant_cfg *t);
/* Whether ACME obtains hostname's certificates: acme is configured, the tenant takes its
 * certificates from a cert_dir, and the name is no wildcard (those need DNS-01). Such a name
 * without a certificate is no error: it waits for ACME and is served the default one. */
bool certstore_acme_manages(const struct config *cfg, const struct tenant_cfg *t, const char *hostname);
/* Whether the name certstore_lookup gave t for waits for its first certificate. */
bool certstore_acme_pending(const struct certstore *cs, const struct tenant_cfg *t);
/* The context for the relay leg of tenant t: verifying unless t skips verification. */
tls_ctx *certstore_client_ctx(const struct certstore *cs, const struct tenant_cfg *t);

/* Every certificate loaded, and the one serving a tenant's host name (NULL if none). */
size_t certstore_ncerts(const struct certstore *cs);
const struct certstore_cert *certstore_cert(const struct certstore *cs, size_t i);
const struct certstore_cert *certstore_cert_for(const struct certstore *cs, const struct tenant_cfg *t,
                                                const char *hostname);
/* The RSA certificate for clients that reject hostname's ECDSA one, or NULL. */
const struct certstore_cert *certstore_rsa_for(const struct certstore *cs, const struct tenant_cfg *t,
                                               const char *hostname);
/* Whether c serves some host name (as its certificate or its RSA fallback). */
bool certstore_cert_in_use(const struct certstore *cs, const struct certstore_cert *c);
/* Why each pair under a cert_dir that did not load was refused ("refusing CERT + KEY: why"). */
size_t certstore_nrefused(const struct certstore *cs);
const char *certstore_refused(const struct certstore *cs, size_t i);
/* Logs a warning for each certificate that expires within CERTSTORE_WARN_DAYS of now, or has
 * expired, or is not yet valid. Returns the number of expired or not yet valid ones. */
unsigned certstore_log_expiry(const struct certstore *cs, long long now);
/* Days from now until t (negative once past), rounded down. */
long long certstore_days_left(long long t, long long now);

#endif

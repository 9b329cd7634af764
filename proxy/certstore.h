/* certstore: the TLS material loaded from a config (a server context per tenant, chosen by SNI; client
 * contexts per region), immutable once built. */
#ifndef LIVERY_CERTSTORE_H
#define LIVERY_CERTSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "tls.h"

struct certstore;

/* Loads every tenant's certificate and key and every used region's CA file. On failure,
 * returns NULL with "file:line: message" in err. */
struct certstore *certstore_new(const struct config *cfg, char *err, size_t errlen);
void certstore_free(struct certstore *cs);
/* The tenant claiming the SNI name (exact names first, then "*.rest" wildcards), or NULL. */
const struct tenant_cfg *certstore_lookup(const struct certstore *cs, const char *sni);
tls_ctx *certstore_server_ctx(const struct certstore *cs, const struct tenant_cfg *t);
/* The context for the relay leg of tenant t: verifying unless t skips verification. */
tls_ctx *certstore_client_ctx(const struct certstore *cs, const struct tenant_cfg *t);

#endif

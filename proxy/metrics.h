/* metrics: the Prometheus counters, gauges and histograms: one slot of shared memory per worker (written with
 * relaxed atomics by that worker only), summed and rendered as text at scrape; no protocol decisions. */
#ifndef LIVERY_METRICS_H
#define LIVERY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "certstore.h"
#include "config.h"
#include "localauth.h"
#include "pool.h"
#include "upstream.h"

/* Distinct label values kept per kind, over the life of the master (all generations): a
 * tenant, listener or region named past this is counted under "_other". */
#define METRICS_MAX_TENANTS   1024
#define METRICS_MAX_LISTENERS 64
#define METRICS_MAX_REGIONS   64
/* Worker slots: one per entry of the master's process table (IPTABLE_REGIONS). */
#define METRICS_SLOTS 128

/* The shared mapping, made by the master before any fork. */
struct metrics_shm;

/* Where a generation's tenants, listeners and regions are counted: the index of each (in
 * config order) in the shared label table. Made by the master; read-only after. */
struct metrics_labels {
	unsigned *tenant, *listener, *region;
	/* Per tenant, per host name: the certificate serving it (certstore's; NULL: none). */
	const struct certstore_cert ***served;
};

struct metrics_shm *metrics_shm_new(void);
void metrics_shm_free(struct metrics_shm *shm);
/* Adds cfg's names to the shared label table and returns where each is counted, with the
 * certificate serving each host name (certs: the generation's store, which must outlive the
 * labels; NULL: no certificate series). */
struct metrics_labels *metrics_labels_new(struct metrics_shm *shm, const struct config *cfg,
                                          const struct certstore *certs);
void metrics_labels_free(struct metrics_labels *l);
/* A worker has exited: its counters move into the retired totals (so sums never go back) and
 * its gauges are dropped; the slot is then empty for the next worker. */
void metrics_shm_retire(struct metrics_shm *shm, unsigned slot);
/* Master-side facts: the serving generation, reload outcomes, and whether livery is stopping
 * (a draining worker then keeps answering /readyz with 503). */
void metrics_shm_generation(struct metrics_shm *shm, unsigned id);
void metrics_shm_reload(struct metrics_shm *shm, bool ok);
/* An ACME order ended (ok: a certificate installed). */
void metrics_shm_acme_order(struct metrics_shm *shm, bool ok);
void metrics_shm_stopping(struct metrics_shm *shm);
bool metrics_shm_is_stopping(const struct metrics_shm *shm);


/* One worker's handle: the shared mapping, its slot, its generation's labels. */
struct metrics;

struct metrics *metrics_new(struct metrics_shm *shm, unsigned slot, const struct config *cfg,
                            const struct metrics_labels *labels);
void metrics_free(struct metrics *m);

/* Hooks, one call per event; cheap (a few relaxed atomic adds), never blocking. m may be NULL. */
void metrics_accepted(struct metrics *m, const struct listener_cfg *l);
void metrics_closed(struct metrics *m, const struct listener_cfg *l);
void metrics_refused(struct metrics *m, const struct listener_cfg *l, bool per_ip);
enum metrics_tls_result { METRICS_TLS_OK, METRICS_TLS_FAILED, METRICS_TLS_TIMEOUT };
/* A client-leg handshake ended; started_ns: uv_hrtime() when it began (0: unknown). */
void metrics_client_tls(struct metrics *m, const struct listener_cfg *l, enum metrics_tls_result result,
                        uint64_t started_ns);
/* end: the session record's end name. */
void metrics_session_end(struct metrics *m, const struct tenant_cfg *t, const char *end, uint64_t bytes_in,
                         uint64_t bytes_out, uint64_t started_ns);
void metrics_auth(struct metrics *m, const struct tenant_cfg *t, bool ok);
/* Local mode: a password check's result; the pool: checkouts, connections opened and retired. */
void metrics_local_auth(struct metrics *m, const struct tenant_cfg *t, enum localauth_result r);
void metrics_pool_checkout(struct metrics *m, const struct tenant_cfg *t, bool hit);
void metrics_pool_opened(struct metrics *m, const struct tenant_cfg *t);
void metrics_pool_retired(struct metrics *m, const struct tenant_cfg *t, enum pool_retire why);
/* A message's verdict: by "relay" (code is the relay's), "livery" (refused here) or NULL
 * (none: the session or leg ended first). dot_ns: uv_hrtime() at the end of data, or 0. */
void metrics_message(struct metrics *m, const struct tenant_cfg *t, int code, const char *by,
                     uint64_t dot_ns);
/* A sending-limit check refused (QUOTA_OVER: limit is the index in quota_limit_names) or got
 * no answer (QUOTA_UNAVAILABLE, then accepted or refused as fail_closed says). */
void metrics_sending_limit(struct metrics *m, const struct tenant_cfg *t, enum quota_result r, size_t limit,
                           bool fail_closed);
/* A relay leg is over (closed or failed): its outcome, TLS, timings and bytes. */
void metrics_relay_leg(struct metrics *m, const struct tenant_cfg *t, const struct upstream_info *i);

/* Writes every metric, summed over all workers, in the text exposition format 0.0.4. Safe
 * from any thread. Returns false on a write error. */
bool metrics_render(struct metrics *m, FILE *out);

#endif

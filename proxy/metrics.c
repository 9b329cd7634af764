/* metrics: the Prometheus counters, gauges and histograms: one slot of shared memory per worker (written with
 * relaxed atomics by that worker only), summed and rendered as text at scrape; no protocol decisions. */
#include "metrics.h"

#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <uv.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "pool.h"
#include "util.h"

/* Histograms: fixed buckets (counted singly, made cumulative at render), then the count and
 * the sum in microseconds. */
#define NB 12
enum { H_COUNT = NB, H_SUM_US, H_FIELDS };
static const double short_bounds[NB] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30};
static const double long_bounds[NB] = {.1, .5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

/* Session ends: the records' vocabulary (session.c's end_name), the relay failures, "other". */
static const char *const local_ends[] = {
        "quit",        "client_timeout", "client_reset",   "client_tls_failed",
        "auth_failed", "limit",          "protocol_error", "drain", "proxy_refused"};
#define NLOCAL_ENDS ARRAY_LEN(local_ends)
#define NFAIL       UPSTREAM_AUTH /* upstream failures 1..NFAIL */
#define NEND        (NLOCAL_ENDS + NFAIL + 1)
/* Relay legs: 0 ok (TLS up), 1..NFAIL a failure, then closed before TLS was up. */
#define NLEG (NFAIL + 2)
static const char *const msg_classes[] = {"2xx", "4xx", "5xx", "refused_by_livery", "no_verdict"};
#define NCLASS ARRAY_LEN(msg_classes)

enum {
	T_END = 0,
	T_AUTH_OK = T_END + NEND,
	T_AUTH_FAILED,
	T_MSG,
	T_LOCAL_AUTH = T_MSG + NCLASS, /* by enum localauth_result */
	T_CLIENT_IN = T_LOCAL_AUTH + 3,
	T_CLIENT_OUT,
	T_DURATION,
	T_LIMIT_REFUSED = T_DURATION + H_FIELDS, /* by quota_limit_names */
	T_LIMIT_UNANSWERED = T_LIMIT_REFUSED + QUOTA_NSCOPES * QUOTA_NKINDS, /* accepted, refused */
	T_FIELDS = T_LIMIT_UNANSWERED + 2
};
enum {
	L_ACCEPTED,
	L_ACTIVE,
	L_REFUSED,
	L_REFUSED_PER_IP,
	L_TLS, /* by enum metrics_tls_result */
	L_HANDSHAKE = L_TLS + 3,
	L_FIELDS = L_HANDSHAKE + H_FIELDS
};
enum {
	R_LEG = 0,
	R_FULL = R_LEG + NLEG,
	R_RESUMED,
	R_RELAY_IN,
	R_RELAY_OUT,
	R_SETUP,
	R_VERDICT = R_SETUP + H_FIELDS,
	R_POOL_HIT = R_VERDICT + H_FIELDS,
	R_POOL_MISS,
	R_POOL_OPENED,
	R_POOL_RETIRED, /* by enum pool_retire */
	R_FIELDS = R_POOL_RETIRED + POOL_RETIRE_COUNT
};

typedef _Atomic uint64_t counter;

/* Tenants last: only the rows of names in use are ever touched, so the mapping's untouched
 * pages never become resident. */
struct slot {
	counter used; /* a worker counts here */
	counter l[METRICS_MAX_LISTENERS + 1][L_FIELDS];
	counter r[METRICS_MAX_REGIONS + 1][R_FIELDS];
	counter t[METRICS_MAX_TENANTS + 1][T_FIELDS];
};

#define NAME_LEN 256
/* Label values, appended by the master only (index 0 is "_other"); n is published after the
 * name is written, so a reader never sees a half-written name. */
struct names {
	_Atomic unsigned n;
	char v[METRICS_MAX_TENANTS + 1][NAME_LEN];
};

enum kind { K_TENANT, K_LISTENER, K_REGION, NKINDS };
static const unsigned kind_max[NKINDS] = {METRICS_MAX_TENANTS, METRICS_MAX_LISTENERS, METRICS_MAX_REGIONS};

struct metrics_shm {
	_Atomic uint64_t fold_seq; /* odd while the master folds a slot into the retired one */
	_Atomic uint64_t generation, reloads_ok, reloads_failed, stopping;
	_Atomic uint64_t acme_orders_ok, acme_orders_failed; /* the master's ACME orders */
	struct names names[NKINDS];
	struct slot slots[METRICS_SLOTS + 1]; /* the last one: retired workers' totals */
};
#define RETIRED METRICS_SLOTS

struct metrics {
	struct metrics_shm *shm;
	struct slot *mine;
	const struct config *cfg;
	const struct metrics_labels *labels;
};

static inline void add(counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t get(const counter *c)
{
	return atomic_load_explicit((counter *)c, memory_order_relaxed);
}

/* ---- the master's side ---- */

struct metrics_shm *metrics_shm_new(void)
{
	struct metrics_shm *shm =
	        mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (shm == MAP_FAILED)
		abort(); /* like x*alloc: no memory at startup */
	for (int k = 0; k < NKINDS; k++) {
		strcpy(shm->names[k].v[0], "_other");
		atomic_store(&shm->names[k].n, 1);
	}
	return shm;
}

void metrics_shm_free(struct metrics_shm *shm)
{
	if (shm)
		munmap(shm, sizeof(*shm));
}

static unsigned intern(struct metrics_shm *shm, enum kind k, const char *name)
{
	struct names *ns = &shm->names[k];
	unsigned n = atomic_load(&ns->n);

	for (unsigned i = 1; i < n; i++) {
		if (strcmp(ns->v[i], name) == 0)
			return i;
	}
	if (n > kind_max[k] || strlen(name) >= NAME_LEN)
		return 0; /* "_other" */
	memcpy(ns->v[n], name, strlen(name) + 1);
	atomic_store_explicit(&ns->n, n + 1, memory_order_release);
	return n;
}

static void listener_name(const struct listener_cfg *l, char *buf, size_t len)
{
	snprintf(buf, len, strchr(l->address, ':') ? "[%s]:%d" : "%s:%d", l->address, l->port);
}

struct metrics_labels *metrics_labels_new(struct metrics_shm *shm, const struct config *cfg,
                                          const struct certstore *certs)
{
	struct metrics_labels *l = xcalloc(1, sizeof(*l));
	char name[NAME_LEN];

	l->tenant = xcalloc(cfg->ntenants + 1, sizeof(unsigned));
	l->served = xcalloc(cfg->ntenants + 1, sizeof(*l->served));
	l->listener = xcalloc(cfg->nlisteners + 1, sizeof(unsigned));
	l->region = xcalloc(cfg->nregions + 1, sizeof(unsigned));
	for (size_t i = 0; i < cfg->ntenants; i++) {
		l->tenant[i] = intern(shm, K_TENANT, cfg->tenants[i].name);
		const struct tenant_cfg *t = &cfg->tenants[i];
		l->served[i] = xcalloc(t->nhostnames + 1, sizeof(**l->served));
		for (size_t h = 0; certs && h < t->nhostnames; h++)
			l->served[i][h] = certstore_cert_for(certs, t, t->hostnames[h]);
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		listener_name(&cfg->listeners[i], name, sizeof(name));
		l->listener[i] = intern(shm, K_LISTENER, name);
	}
	for (size_t i = 0; i < cfg->nregions; i++)
		l->region[i] = intern(shm, K_REGION, cfg->regions[i].name);
	return l;
}

void metrics_labels_free(struct metrics_labels *l)
{
	if (!l)
		return;
	for (size_t i = 0; l->served && l->served[i]; i++)
		free(l->served[i]);
	free(l->tenant);
	free(l->served);
	free(l->listener);
	free(l->region);
	free(l);
}

/* Moves rows [0, n) of src into dst, but for the fields skip says are gauges. */
static void fold_rows(counter *dst, counter *src, size_t n, size_t fields, int gauge)
{
	for (size_t i = 0; i < n * fields; i++) {
		uint64_t v = atomic_exchange_explicit(&src[i], 0, memory_order_relaxed);
		if ((int)(i % fields) != gauge)
			add(&dst[i], v);
	}
}

/* Readers retry while fold_seq is odd or moved, so they never see a count in both slots (a
 * counter that went up then down would read as a reset to Prometheus). */
void metrics_shm_retire(struct metrics_shm *shm, unsigned slot)
{
	struct slot *s = &shm->slots[slot], *r = &shm->slots[RETIRED];

	if (!atomic_load(&s->used))
		return;
	atomic_fetch_add(&shm->fold_seq, 1);
	fold_rows(&r->l[0][0], &s->l[0][0], atomic_load(&shm->names[K_LISTENER].n), L_FIELDS, L_ACTIVE);
	fold_rows(&r->r[0][0], &s->r[0][0], atomic_load(&shm->names[K_REGION].n), R_FIELDS, -1);
	fold_rows(&r->t[0][0], &s->t[0][0], atomic_load(&shm->names[K_TENANT].n), T_FIELDS, -1);
	atomic_store(&s->used, 0);
	atomic_fetch_add(&shm->fold_seq, 1);
}

void metrics_shm_generation(struct metrics_shm *shm, unsigned id)
{
	atomic_store(&shm->generation, id);
}

void metrics_shm_reload(struct metrics_shm *shm, bool ok)
{
	atomic_fetch_add(ok ? &shm->reloads_ok : &shm->reloads_failed, 1);
}

void metrics_shm_acme_order(struct metrics_shm *shm, bool ok)
{
	atomic_fetch_add(ok ? &shm->acme_orders_ok : &shm->acme_orders_failed, 1);
}

void metrics_shm_stopping(struct metrics_shm *shm)
{
	atomic_store(&shm->stopping, 1);
}

bool metrics_shm_is_stopping(const struct metrics_shm *shm)
{
	return atomic_load(&((struct metrics_shm *)shm)->stopping) != 0;
}

/* ---- a worker's side: the hooks ---- */

struct metrics *metrics_new(struct metrics_shm *shm, unsigned slot, const struct config *cfg,
                            const struct metrics_labels *labels)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	m->shm = shm;
	m->mine = &shm->slots[slot];
	m->cfg = cfg;
	m->labels = labels;
	atomic_store(&m->mine->used, 1);
	return m;
}

void metrics_free(struct metrics *m)
{
	free(m);
}

/* The row of a config entry: its index in the generation's config, mapped to its label. */
static counter *lrow(struct metrics *m, const struct listener_cfg *l)
{
	size_t i = (size_t)(l - m->cfg->listeners);
	return m->mine->l[i < m->cfg->nlisteners ? m->labels->listener[i] : 0];
}

static counter *trow(struct metrics *m, const struct tenant_cfg *t)
{
	/* t may be certstore's per-name copy; a config not made by config_load has no origin. */
	size_t i = (size_t)((t->origin ? t->origin : t) - m->cfg->tenants);
	return m->mine->t[i < m->cfg->ntenants ? m->labels->tenant[i] : 0];
}

static counter *rrow(struct metrics *m, const struct region_cfg *r)
{
	size_t i = (size_t)(r - m->cfg->regions);
	return m->mine->r[i < m->cfg->nregions ? m->labels->region[i] : 0];
}

static void observe(counter *h, const double *bounds, uint64_t us)
{
	size_t b = 0;

	while (b < NB && (double)us > bounds[b] * 1e6)
		b++;
	if (b < NB)
		add(&h[b], 1);
	add(&h[H_COUNT], 1);
	add(&h[H_SUM_US], us);
}

static uint64_t us_since(uint64_t started_ns)
{
	return (uv_hrtime() - started_ns) / 1000;
}

void metrics_accepted(struct metrics *m, const struct listener_cfg *l)
{
	if (!m)
		return;
	counter *row = lrow(m, l);
	add(&row[L_ACCEPTED], 1);
	add(&row[L_ACTIVE], 1);
}

void metrics_closed(struct metrics *m, const struct listener_cfg *l)
{
	if (m)
		add(&lrow(m, l)[L_ACTIVE], (uint64_t)-1); /* a gauge: summed modulo 2^64 */
}

void metrics_refused(struct metrics *m, const struct listener_cfg *l, bool per_ip)
{
	if (m)
		add(&lrow(m, l)[per_ip ? L_REFUSED_PER_IP : L_REFUSED], 1);
}

void metrics_client_tls(struct metrics *m, const struct listener_cfg *l, enum metrics_tls_result result,
                        uint64_t started_ns)
{
	if (!m)
		return;
	counter *row = lrow(m, l);
	add(&row[L_TLS + result], 1);
	if (result == METRICS_TLS_OK && started_ns)
		observe(&row[L_HANDSHAKE], short_bounds, us_since(started_ns));
}

static size_t end_index(const char *end)
{
	for (size_t i = 0; i < NLOCAL_ENDS; i++) {
		if (strcmp(end, local_ends[i]) == 0)
			return i;
	}
	for (int f = 1; f <= NFAIL; f++) {
		if (strcmp(end, upstream_failure_name((enum upstream_failure)f)) == 0)
			return NLOCAL_ENDS + (size_t)f - 1;
	}
	return NEND - 1;
}

static const char *end_label(size_t i)
{
	if (i < NLOCAL_ENDS)
		return local_ends[i];
	if (i < NEND - 1)
		return upstream_failure_name((enum upstream_failure)(i - NLOCAL_ENDS + 1));
	return "other";
}

void metrics_session_end(struct metrics *m, const struct tenant_cfg *t, const char *end, uint64_t bytes_in,
                         uint64_t bytes_out, uint64_t started_ns)
{
	if (!m)
		return;
	counter *row = trow(m, t);
	add(&row[T_END + end_index(end)], 1);
	add(&row[T_CLIENT_IN], bytes_in);
	add(&row[T_CLIENT_OUT], bytes_out);
	observe(&row[T_DURATION], long_bounds, us_since(started_ns));
}

void metrics_auth(struct metrics *m, const struct tenant_cfg *t, bool ok)
{
	if (m)
		add(&trow(m, t)[ok ? T_AUTH_OK : T_AUTH_FAILED], 1);
}

void metrics_local_auth(struct metrics *m, const struct tenant_cfg *t, enum localauth_result r)
{
	if (m)
		add(&trow(m, t)[T_LOCAL_AUTH + (size_t)r], 1);
}

void metrics_pool_checkout(struct metrics *m, const struct tenant_cfg *t, bool hit)
{
	if (m)
		add(&rrow(m, t->region)[hit ? R_POOL_HIT : R_POOL_MISS], 1);
}

void metrics_pool_opened(struct metrics *m, const struct tenant_cfg *t)
{
	if (m)
		add(&rrow(m, t->region)[R_POOL_OPENED], 1);
}

void metrics_pool_retired(struct metrics *m, const struct tenant_cfg *t, enum pool_retire why)
{
	if (m)
		add(&rrow(m, t->region)[R_POOL_RETIRED + (size_t)why], 1);
}

void metrics_message(struct metrics *m, const struct tenant_cfg *t, int code, const char *by, uint64_t dot_ns)
{
	if (!m)
		return;
	size_t c = !by ? 4 : strcmp(by, "relay") != 0 ? 3 : code / 100 == 2 ? 0 : code / 100 == 4 ? 1 : 2;
	add(&trow(m, t)[T_MSG + c], 1);
	if (c < 3 && dot_ns)
		observe(&rrow(m, t->region)[R_VERDICT], short_bounds, us_since(dot_ns));
}

void metrics_sending_limit(struct metrics *m, const struct tenant_cfg *t, enum quota_result r, size_t limit,
                           bool fail_closed)
{
	if (m && r == QUOTA_OVER)
		add(&trow(m, t)[T_LIMIT_REFUSED + limit], 1);
	else if (m && r == QUOTA_UNAVAILABLE)
		add(&trow(m, t)[T_LIMIT_UNANSWERED + fail_closed], 1);
}

void metrics_relay_leg(struct metrics *m, const struct tenant_cfg *t, const struct upstream_info *i)
{
	if (!m)
		return;
	counter *row = rrow(m, t->region);
	size_t leg = i->failure != UPSTREAM_OK ? (size_t)i->failure : i->tls ? 0 : NLEG - 1;
	add(&row[R_RELAY_IN], i->bytes_in);
	add(&row[R_RELAY_OUT], i->bytes_out);
	if (i->reused)
		return; /* the connection and its setup were counted by the session that opened it */
	add(&row[R_LEG + leg], 1);
	if (!i->tls)
		return;
	add(&row[i->resumed ? R_RESUMED : R_FULL], 1);
	observe(&row[R_SETUP], short_bounds, (uint64_t)((i->connect_ms + i->handshake_ms) * 1000));
}

/* ---- scrape ---- */

/* Every slot's rows summed, per kind: sums[k][row * fields + field]. */
struct totals {
	unsigned n[NKINDS];
	uint64_t *sums[NKINDS];
	bool *shown[NKINDS]; /* per row: rendered */
};

static const size_t kind_fields[NKINDS] = {T_FIELDS, L_FIELDS, R_FIELDS};

static counter *slot_rows(struct slot *s, enum kind k)
{
	return k == K_TENANT ? &s->t[0][0] : k == K_LISTENER ? &s->l[0][0] : &s->r[0][0];
}

static void sum_slots(struct metrics_shm *shm, struct totals *t)
{
	for (int k = 0; k < NKINDS; k++)
		memset(t->sums[k], 0, t->n[k] * kind_fields[k] * sizeof(uint64_t));
	for (size_t s = 0; s <= METRICS_SLOTS; s++) {
		if (s != RETIRED && !atomic_load(&shm->slots[s].used))
			continue;
		for (int k = 0; k < NKINDS; k++) {
			counter *rows = slot_rows(&shm->slots[s], (enum kind)k);
			for (size_t i = 0; i < t->n[k] * kind_fields[k]; i++)
				t->sums[k][i] += get(&rows[i]);
		}
	}
}

/* A consistent sum: not taken across a fold (bounded retries; a fold takes microseconds). */
static void collect(struct metrics_shm *shm, struct totals *t)
{
	for (int k = 0; k < NKINDS; k++) {
		t->n[k] = atomic_load_explicit(&shm->names[k].n, memory_order_acquire);
		t->sums[k] = xcalloc(t->n[k] * kind_fields[k], sizeof(uint64_t));
	}
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t seq = atomic_load(&shm->fold_seq);
		if (seq % 2 == 0) {
			sum_slots(shm, t);
			if (atomic_load(&shm->fold_seq) == seq)
				return;
		}
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
}

static void free_totals(struct totals *t)
{
	for (int k = 0; k < NKINDS; k++) {
		free(t->sums[k]);
		free(t->shown[k]);
	}
}

static void put_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* name{label="value"<extra>} */
static void put_series(FILE *f, const char *name, const char *label, const char *value, const char *extra)
{
	fprintf(f, "%s{%s=\"", name, label);
	put_value(f, value);
	fprintf(f, "\"%s}", extra);
}

static const char *ok_failed(size_t i)
{
	return i == 0 ? "ok" : "failed";
}

static const char *tls_result(size_t i)
{
	return i == METRICS_TLS_OK ? "ok" : i == METRICS_TLS_FAILED ? "failed" : "timeout";
}

static const char *limit_label(size_t i)
{
	return i == 0 ? "max_connections" : "max_connections_per_ip";
}

static const char *sending_limit_label(size_t i)
{
	return quota_limit_names[i];
}

static const char *accepted_refused(size_t i)
{
	return i == 0 ? "accepted" : "refused";
}

static const char *leg_label(size_t i)
{
	return i == 0         ? "ok"
	       : i < NLEG - 1 ? upstream_failure_name((enum upstream_failure)i)
	                      : "closed_before_tls";
}

static const char *class_label(size_t i)
{
	return msg_classes[i];
}

static const char *direction(size_t i)
{
	return i == 0 ? "in" : "out";
}

static const char *local_auth_label(size_t i)
{
	return i == LOCALAUTH_OK ? "ok" : i == LOCALAUTH_CACHED ? "cached" : "failed";
}

static const char *hit_miss(size_t i)
{
	return i == 0 ? "hit" : "miss";
}

static const char *retire_label(size_t i)
{
	return pool_retire_name((enum pool_retire)i);
}

static const char *false_true(size_t i)
{
	return i == 0 ? "false" : "true";
}

/* A family of series over one kind's label, optionally with a second, fixed dimension (n
 * adjacent fields named by value()), or a histogram (bounds set). */
struct family {
	const char *name, *type, *help;
	enum kind kind;
	size_t field, n;
	const char *dim;
	const char *(*value)(size_t i);
	const double *bounds;
};

static const char *const kind_label[NKINDS] = {"tenant", "listener", "region"};

static const struct family families[] = {
        {"livery_connections_accepted_total", "counter", "Client connections accepted.", K_LISTENER,
         L_ACCEPTED, 1, NULL, NULL, NULL},
        {"livery_connections_active", "gauge", "Client connections open now.", K_LISTENER, L_ACTIVE, 1, NULL,
         NULL, NULL},
        {"livery_connections_refused_total", "counter", "Client connections refused by a connection limit.",
         K_LISTENER, L_REFUSED, 2, "limit", limit_label, NULL},
        {"livery_client_tls_handshakes_total", "counter", "Client-leg TLS handshakes by result.", K_LISTENER,
         L_TLS, 3, "result", tls_result, NULL},
        {"livery_client_tls_handshake_seconds", "histogram",
         "Client-leg TLS handshake time, from STARTTLS (or accept on implicit TLS) to done.", K_LISTENER,
         L_HANDSHAKE, 0, NULL, NULL, short_bounds},
        {"livery_sessions_total", "counter", "Sessions ended, by the end reason of their record.", K_TENANT,
         T_END, NEND, "end", end_label, NULL},
        {"livery_session_duration_seconds", "histogram", "Session duration, accept to close.", K_TENANT,
         T_DURATION, 0, NULL, NULL, long_bounds},
        {"livery_auth_total", "counter", "AUTH verdicts: the relay's, or livery's for local-mode tenants.",
         K_TENANT, T_AUTH_OK, 2, "result", ok_failed, NULL},
        {"livery_local_auth_total", "counter",
         "Local-mode password checks: ok (hashed), cached (within auth_cache_ttl, no hash), failed.", K_TENANT,
         T_LOCAL_AUTH, 3, "result", local_auth_label, NULL},
        {"livery_messages_total", "counter",
         "Messages by verdict: the relay's reply class, refused by livery, or none (cut short).", K_TENANT,
         T_MSG, NCLASS, "result", class_label, NULL},
        {"livery_client_bytes_total", "counter", "Client-leg bytes on the wire.", K_TENANT, T_CLIENT_IN, 2,
         "direction", direction, NULL},
        {"livery_sending_limit_refusals_total", "counter",
         "MAIL (messages) and RCPT (recipients) commands refused with 451 4.7.1 by a sending limit.", K_TENANT,
         T_LIMIT_REFUSED, QUOTA_NSCOPES * QUOTA_NKINDS, "limit", sending_limit_label, NULL},
        {"livery_sending_limit_unanswered_total", "counter",
         "Sending-limit checks the counters did not answer (Redis unreachable or slow), accepted or refused "
         "as redis_failure says.",
         K_TENANT, T_LIMIT_UNANSWERED, 2, "outcome", accepted_refused, NULL},
        {"livery_relay_legs_total", "counter",
         "Relay legs by outcome: ok (TLS up), a failure (RFC 8460 result types for TLS), or closed before "
         "TLS.",
         K_REGION, R_LEG, NLEG, "result", leg_label, NULL},
        {"livery_relay_tls_handshakes_total", "counter", "Relay-leg TLS handshakes done, resumed or full.",
         K_REGION, R_FULL, 2, "resumed", false_true, NULL},
        {"livery_relay_bytes_total", "counter", "Relay-leg application bytes.", K_REGION, R_RELAY_IN, 2,
         "direction", direction, NULL},
        {"livery_relay_setup_seconds", "histogram", "Relay leg connect plus TLS handshake time.", K_REGION,
         R_SETUP, 0, NULL, NULL, short_bounds},
        {"livery_relay_verdict_seconds", "histogram", "Time from the end of data to the relay's verdict.",
         K_REGION, R_VERDICT, 0, NULL, NULL, short_bounds},
        {"livery_relay_pool_checkouts_total", "counter",
         "Relay legs asked of the pool by local-mode sessions: hit (an idle connection reused), miss (a new one).",
         K_REGION, R_POOL_HIT, 2, "result", hit_miss, NULL},
        {"livery_relay_pool_opened_total", "counter", "Relay connections the pool opened (misses and pre-warming).",
         K_REGION, R_POOL_OPENED, 1, NULL, NULL, NULL},
        {"livery_relay_pool_retired_total", "counter", "Pooled relay connections closed, by reason.", K_REGION,
         R_POOL_RETIRED, POOL_RETIRE_COUNT, "reason", retire_label, NULL},
};

static void put_histogram(FILE *f, const struct family *fa, const char *value, const uint64_t *h)
{
	char le[48], name[128];
	uint64_t cum = 0;

	snprintf(name, sizeof(name), "%.100s_bucket", fa->name);
	for (size_t b = 0; b < NB; b++) {
		cum += h[b];
		snprintf(le, sizeof(le), ",le=\"%g\"", fa->bounds[b]);
		put_series(f, name, kind_label[fa->kind], value, le);
		fprintf(f, " %" PRIu64 "\n", cum);
	}
	/* The fields are read one by one while workers count: +Inf must not be below a bucket. */
	uint64_t count = h[H_COUNT] > cum ? h[H_COUNT] : cum;
	put_series(f, name, kind_label[fa->kind], value, ",le=\"+Inf\"");
	fprintf(f, " %" PRIu64 "\n", count);
	snprintf(name, sizeof(name), "%.100s_sum", fa->name);
	put_series(f, name, kind_label[fa->kind], value, "");
	fprintf(f, " %.6f\n", (double)h[H_SUM_US] / 1e6);
	snprintf(name, sizeof(name), "%.100s_count", fa->name);
	put_series(f, name, kind_label[fa->kind], value, "");
	fprintf(f, " %" PRIu64 "\n", count);
}

static void put_row(FILE *f, const struct family *fa, const char *value, const uint64_t *row)
{
	char extra[96];

	if (fa->bounds) {
		put_histogram(f, fa, value, row + fa->field);
		return;
	}
	for (size_t i = 0; i < fa->n; i++) {
		extra[0] = '\0';
		if (fa->dim)
			snprintf(extra, sizeof(extra), ",%s=\"%s\"", fa->dim, fa->value(i));
		put_series(f, fa->name, kind_label[fa->kind], value, extra);
		if (strcmp(fa->type, "gauge") == 0)
			fprintf(f, " %" PRId64 "\n", (int64_t)row[fa->field + i]);
		else
			fprintf(f, " %" PRIu64 "\n", row[fa->field + i]);
	}
}

/* Rows shown: every label of the scraping worker's configuration (at 0 before any event, so
 * rate() sees the first one), and others (older generations, "_other") once they counted. */
static void mark_shown(const struct metrics *m, struct totals *t)
{
	const struct config *c = m->cfg;
	const unsigned *maps[NKINDS] = {m->labels->tenant, m->labels->listener, m->labels->region};
	const size_t n[NKINDS] = {c->ntenants, c->nlisteners, c->nregions};

	for (int k = 0; k < NKINDS; k++) {
		t->shown[k] = xcalloc(t->n[k], sizeof(bool));
		for (size_t i = 0; i < n[k]; i++) {
			if (maps[k][i] < t->n[k])
				t->shown[k][maps[k][i]] = true;
		}
		for (size_t i = 0; i < t->n[k] * kind_fields[k]; i++) {
			if (t->sums[k][i])
				t->shown[k][i / kind_fields[k]] = true;
		}
	}
}

static void put_family(FILE *f, struct metrics *m, const struct totals *t, const struct family *fa)
{
	const struct names *ns = &m->shm->names[fa->kind];

	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fa->name, fa->help, fa->name, fa->type);
	for (unsigned row = 0; row < t->n[fa->kind]; row++) {
		if (t->shown[fa->kind][row])
			put_row(f, fa, ns->v[row], t->sums[fa->kind] + row * kind_fields[fa->kind]);
	}
}

static void put_master(FILE *f, struct metrics_shm *shm)
{
	fprintf(f,
	        "# HELP livery_config_generation The configuration generation serving now.\n"
	        "# TYPE livery_config_generation gauge\nlivery_config_generation %" PRIu64 "\n",
	        (uint64_t)atomic_load(&shm->generation));
	fprintf(f,
	        "# HELP livery_config_reloads_total Configuration reloads by result.\n"
	        "# TYPE livery_config_reloads_total counter\n"
	        "livery_config_reloads_total{result=\"ok\"} %" PRIu64 "\n"
	        "livery_config_reloads_total{result=\"rejected\"} %" PRIu64 "\n",
	        (uint64_t)atomic_load(&shm->reloads_ok), (uint64_t)atomic_load(&shm->reloads_failed));
}

/* Seconds from now to each certificate's notAfter (negative once expired), one series per
 * name it serves. */
static void put_certificates(FILE *f, const struct metrics *m)
{
	int64_t now = (int64_t)time(NULL);
	char extra[NAME_LEN + 16];

	fprintf(f, "# HELP livery_certificate_expiry_seconds Seconds until notAfter of the certificate serving "
	           "each tenant host name.\n"
	           "# TYPE livery_certificate_expiry_seconds gauge\n");
	for (size_t i = 0; i < m->cfg->ntenants; i++) {
		const struct tenant_cfg *t = &m->cfg->tenants[i];
		for (size_t h = 0; h < t->nhostnames; h++) {
			const struct certstore_cert *c = m->labels->served[i][h];
			if (!c)
				continue;
			snprintf(extra, sizeof(extra), ",name=\"%s\"", t->hostnames[h]); /* normalised names */
			put_series(f, "livery_certificate_expiry_seconds", "tenant", t->name, extra);
			fprintf(f, " %" PRId64 "\n", (int64_t)c->info.not_after - now);
		}
	}
}

/* ACME: orders by result, and when each managed name's certificate is due for renewal (its
 * notAfter less renew_days; names still waiting for their first certificate are due now). */
static void put_acme(FILE *f, const struct metrics *m)
{
	const struct config *cfg = m->cfg;
	int64_t now = (int64_t)time(NULL);
	char extra[NAME_LEN + 16];

	if (!cfg->acme.enabled)
		return;
	fprintf(f,
	        "# HELP livery_acme_orders_total ACME certificate orders by result.\n"
	        "# TYPE livery_acme_orders_total counter\n"
	        "livery_acme_orders_total{result=\"ok\"} %" PRIu64 "\n"
	        "livery_acme_orders_total{result=\"failed\"} %" PRIu64 "\n",
	        (uint64_t)atomic_load(&m->shm->acme_orders_ok),
	        (uint64_t)atomic_load(&m->shm->acme_orders_failed));
	fprintf(f, "# HELP livery_acme_renewal_timestamp_seconds When each ACME-managed host name's "
	           "certificate is "
	           "due for renewal (Unix time).\n"
	           "# TYPE livery_acme_renewal_timestamp_seconds gauge\n");
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cfg->tenants[i];
		for (size_t h = 0; h < t->nhostnames; h++) {
			const struct certstore_cert *c = m->labels->served[i][h];
			if (!certstore_acme_manages(cfg, t, t->hostnames[h]))
				continue;
			snprintf(extra, sizeof(extra), ",name=\"%s\"", t->hostnames[h]);
			put_series(f, "livery_acme_renewal_timestamp_seconds", "tenant", t->name, extra);
			fprintf(f, " %" PRId64 "\n",
			        c ? (int64_t)c->info.not_after - (int64_t)cfg->acme.renew_days * 86400 : now);
		}
	}
}

bool metrics_render(struct metrics *m, FILE *out)
{
	struct totals t;

	collect(m->shm, &t);
	mark_shown(m, &t);
	for (size_t i = 0; i < ARRAY_LEN(families); i++)
		put_family(out, m, &t, &families[i]);
	put_master(out, m->shm);
	put_certificates(out, m);
	put_acme(out, m);
	free_totals(&t);
	return !ferror(out);
}

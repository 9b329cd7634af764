/* test_metrics: the shared-memory counters: sums over worker slots, the fold of an exited worker
 * (counters never go back, gauges go), label bounds ("_other"), escaping, histograms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "metrics.h"

#define NT (METRICS_MAX_TENANTS + 6)

static char *render(struct metrics *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_true(metrics_render(m, f));
	fclose(f);
	return buf;
}

/* The value of the sample whose name and labels are exactly series; -1 when absent. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return atof(l + n + 1);
	}
	return -1;
}

struct fixture {
	struct config cfg;
	struct region_cfg region;
	struct listener_cfg listener;
	struct tenant_cfg tenants[NT];
	char names[NT][32];
	struct metrics_shm *shm;
	struct metrics_labels *labels;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->region = (struct region_cfg){.name = "us"};
	f->listener = (struct listener_cfg){.address = "127.0.0.1", .port = 587};
	for (size_t i = 0; i < NT; i++) {
		snprintf(f->names[i], sizeof(f->names[i]), i == 1 ? "qu\"o\\te" : "t%zu", i);
		f->tenants[i] = (struct tenant_cfg){
		        .name = f->names[i], .cert = "/nonexistent.pem", .region = &f->region};
	}
	f->cfg = (struct config){.regions = &f->region,
	                         .nregions = 1,
	                         .listeners = &f->listener,
	                         .nlisteners = 1,
	                         .tenants = f->tenants,
	                         .ntenants = NT};
	f->shm = metrics_shm_new();
	f->labels = metrics_labels_new(f->shm, &f->cfg, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	metrics_labels_free(f->labels);
	metrics_shm_free(f->shm);
	free(f);
	return 0;
}

static void session(struct metrics *m, const struct fixture *f, size_t tenant, const char *end)
{
	metrics_accepted(m, &f->listener);
	metrics_session_end(m, &f->tenants[tenant], end, 100, 200, uv_hrtime() - 2000000000ULL);
	metrics_closed(m, &f->listener);
}

static void sums_over_workers_and_survive_exits(void **state)
{
	struct fixture *f = *state;
	struct metrics *a = metrics_new(f->shm, 0, &f->cfg, f->labels);
	struct metrics *b = metrics_new(f->shm, 5, &f->cfg, f->labels);

	session(a, f, 0, "quit");
	session(b, f, 0, "quit");
	session(b, f, 0, "certificate-expired");
	metrics_accepted(a, &f->listener); /* still open when its worker dies */
	metrics_refused(b, &f->listener, true);
	char *t = render(b);
	assert_true(sample(t, "livery_sessions_total{tenant=\"t0\",end=\"quit\"}") == 2);
	assert_true(sample(t, "livery_sessions_total{tenant=\"t0\",end=\"certificate-expired\"}") == 1);
	assert_true(sample(t, "livery_connections_accepted_total{listener=\"127.0.0.1:587\"}") == 4);
	assert_true(sample(t, "livery_connections_active{listener=\"127.0.0.1:587\"}") == 1);
	assert_true(sample(t, "livery_connections_refused_total{listener=\"127.0.0.1:587\",limit=\"max_"
	                      "connections_per_ip\"}") == 1);
	assert_true(sample(t, "livery_connections_refused_total{listener=\"127.0.0.1:587\",limit=\"max_"
	                      "connections\"}") == 0);
	assert_true(sample(t, "livery_client_bytes_total{tenant=\"t0\",direction=\"out\"}") == 600);
	free(t);
	metrics_free(a);
	metrics_shm_retire(f->shm, 0); /* worker a exited */
	t = render(b);
	assert_true(sample(t, "livery_sessions_total{tenant=\"t0\",end=\"quit\"}") == 2);
	assert_true(sample(t, "livery_connections_accepted_total{listener=\"127.0.0.1:587\"}") == 4);
	assert_true(sample(t, "livery_connections_active{listener=\"127.0.0.1:587\"}") == 0);
	free(t);
	a = metrics_new(f->shm, 0, &f->cfg, f->labels); /* its replacement, in the same slot */
	session(a, f, 0, "quit");
	t = render(a);
	assert_true(sample(t, "livery_sessions_total{tenant=\"t0\",end=\"quit\"}") == 3);
	free(t);
	metrics_free(a);
	metrics_free(b);
}

static void histogram_buckets_are_cumulative(void **state)
{
	struct fixture *f = *state;
	struct metrics *m = metrics_new(f->shm, 1, &f->cfg, f->labels);

	session(m, f, 2, "quit"); /* 2 s */
	char *t = render(m);
	assert_true(sample(t, "livery_session_duration_seconds_bucket{tenant=\"t2\",le=\"1\"}") == 0);
	assert_true(sample(t, "livery_session_duration_seconds_bucket{tenant=\"t2\",le=\"5\"}") == 1);
	assert_true(sample(t, "livery_session_duration_seconds_bucket{tenant=\"t2\",le=\"3600\"}") == 1);
	assert_true(sample(t, "livery_session_duration_seconds_bucket{tenant=\"t2\",le=\"+Inf\"}") == 1);
	assert_true(sample(t, "livery_session_duration_seconds_count{tenant=\"t2\"}") == 1);
	double sum = sample(t, "livery_session_duration_seconds_sum{tenant=\"t2\"}");
	assert_true(sum >= 2 && sum < 3);
	free(t);
	metrics_free(m);
}

static void labels_are_bounded_and_escaped(void **state)
{
	struct fixture *f = *state;
	struct metrics *m = metrics_new(f->shm, 2, &f->cfg, f->labels);

	session(m, f, NT - 1, "quit"); /* past METRICS_MAX_TENANTS */
	session(m, f, 1, "no-such-end");
	char *t = render(m);
	assert_true(sample(t, "livery_sessions_total{tenant=\"_other\",end=\"quit\"}") == 1);
	assert_true(sample(t, "livery_sessions_total{tenant=\"qu\\\"o\\\\te\",end=\"other\"}") == 1);
	assert_true(sample(t, "livery_sessions_total{tenant=\"t1000\",end=\"quit\"}") == 0); /* shown at 0 */
	assert_true(sample(t, "livery_sessions_total{tenant=\"t1029\",end=\"quit\"}") == -1);
	free(t);
	metrics_free(m);
}

static void messages_by_verdict(void **state)
{
	struct fixture *f = *state;
	struct metrics *m = metrics_new(f->shm, 3, &f->cfg, f->labels);
	const struct tenant_cfg *t3 = &f->tenants[3];

	metrics_message(m, t3, 250, "relay", uv_hrtime());
	metrics_message(m, t3, 451, "relay", uv_hrtime());
	metrics_message(m, t3, 554, "relay", 0);
	metrics_message(m, t3, 554, "livery", 0);
	metrics_message(m, t3, 0, NULL, 0);
	char *t = render(m);
	const char *classes[] = {"2xx", "4xx", "5xx", "refused_by_livery", "no_verdict"};
	for (size_t i = 0; i < 5; i++) {
		char series[128];
		snprintf(series, sizeof(series), "livery_messages_total{tenant=\"t3\",result=\"%s\"}",
		         classes[i]);
		assert_true(sample(t, series) == 1);
	}
	assert_true(sample(t, "livery_relay_verdict_seconds_count{region=\"us\"}") == 2);
	free(t);
	metrics_free(m);
}

static void relay_legs_and_master_facts(void **state)
{
	struct fixture *f = *state;
	struct metrics *m = metrics_new(f->shm, 4, &f->cfg, f->labels);
	struct upstream_info ok = {
	        .tls = true, .resumed = true, .connect_ms = 1, .handshake_ms = 2, .bytes_out = 9};
	struct upstream_info bad = {.failure = UPSTREAM_CERT_NOT_TRUSTED};

	metrics_relay_leg(m, &f->tenants[0], &ok);
	metrics_relay_leg(m, &f->tenants[0], &bad);
	metrics_shm_generation(f->shm, 7);
	metrics_shm_reload(f->shm, false);
	char *t = render(m);
	assert_true(sample(t, "livery_relay_legs_total{region=\"us\",result=\"ok\"}") == 1);
	assert_true(sample(t, "livery_relay_legs_total{region=\"us\",result=\"certificate-not-trusted\"}") ==
	            1);
	assert_true(sample(t, "livery_relay_tls_handshakes_total{region=\"us\",resumed=\"true\"}") == 1);
	assert_true(sample(t, "livery_relay_setup_seconds_bucket{region=\"us\",le=\"0.005\"}") == 1);
	assert_true(sample(t, "livery_relay_bytes_total{region=\"us\",direction=\"out\"}") == 9);
	assert_true(sample(t, "livery_config_generation") == 7);
	assert_true(sample(t, "livery_config_reloads_total{result=\"rejected\"}") == 1);
	free(t);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(sums_over_workers_and_survive_exits),
	        cmocka_unit_test(histogram_buckets_are_cumulative),
	        cmocka_unit_test(labels_are_bounded_and_escaped),
	        cmocka_unit_test(messages_by_verdict),
	        cmocka_unit_test(relay_legs_and_master_facts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/* certmon: the running daemon's certificate upkeep: watches the configured cert_dirs and warns once a day
 * about certificates near or past expiry. */
#include "certmon.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certdir_watch.h"
#include "log.h"
#include "util.h"

struct certmon {
	uv_timer_t daily;
	const struct config *cfg;
	const struct certstore *cs;
	struct certdir_watch *watch;
	void (*on_change)(void *arg);
	void *arg;
};

static void on_daily(uv_timer_t *t)
{
	struct certmon *m = container_of(t, struct certmon, daily);

	certstore_log_expiry(m->cs, (long long)time(NULL));
}

static void on_dirs_changed(void *arg)
{
	struct certmon *m = arg;

	m->on_change(m->arg);
}

/* The distinct cert_dirs of cfg (top level and per tenant), borrowed from cfg. */
static size_t config_dirs(const struct config *cfg, const char **dirs)
{
	size_t n = 0;

	for (size_t i = 0; i <= cfg->ntenants; i++) {
		const char *d = i == 0 ? cfg->cert_dir : cfg->tenants[i - 1].cert_dir;
		bool seen = !d;
		for (size_t k = 0; k < n && !seen; k++)
			seen = strcmp(dirs[k], d) == 0;
		if (!seen)
			dirs[n++] = d;
	}
	return n;
}

struct certmon *certmon_start(uv_loop_t *loop, const struct config *cfg, const struct certstore *cs,
                              void (*on_change)(void *arg), void *arg)
{
	struct certmon *m = xcalloc(1, sizeof(*m));
	const char **dirs = xcalloc(cfg->ntenants + 1, sizeof(char *));
	size_t n = config_dirs(cfg, dirs);

	m->cfg = cfg;
	m->cs = cs;
	m->on_change = on_change;
	m->arg = arg;
	uv_timer_init(loop, &m->daily);
	uv_timer_start(&m->daily, on_daily, 0, CERTMON_EXPIRY_INTERVAL_MS);
	if (n > 0)
		m->watch = certdir_watch_start(loop, dirs, n, on_dirs_changed, m);
	free(dirs);
	return m;
}

static void on_daily_closed(uv_handle_t *h)
{
	free(container_of((uv_timer_t *)h, struct certmon, daily));
}

void certmon_stop(struct certmon *m)
{
	if (m->watch)
		certdir_watch_stop(m->watch); /* frees itself once closed */
	uv_close((uv_handle_t *)&m->daily, on_daily_closed);
}

void certmon_free_closed(struct certmon *m)
{
	if (!m)
		return;
	certdir_watch_free_closed(m->watch);
	free(m);
}

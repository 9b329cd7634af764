/* acme: the master's certificate orders: which tenant host names need a certificate (none yet, or one
 * expiring within renew_days), lego run for one name at a time (uv_spawn), the result installed into the
 * cert_dir (whose watcher then reloads), backoff after failures, and state.json for `livery check`. */
#include "acme.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acme_state.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "util.h"

/* One lego run: its process, its stderr (lego logs there), and a timeout. */
struct acme_job {
	struct acme *a;
	uv_process_t proc;
	uv_pipe_t err;
	uv_timer_t timeout;
	int closes; /* handles still to close before the job is freed */
	char *name;
	char *lego_dir; /* lego's --path, where it leaves the certificate */
	unsigned key;   /* CONFIG_ACME_ECDSA or CONFIG_ACME_RSA */
	char line[512]; /* the line being read */
	size_t linelen;
	char last[512]; /* lego's last complete line: the reason when it fails */
	int wstatus;
	bool exited, eof, timed_out;
};

struct acme {
	uv_loop_t *loop;
	uv_timer_t timer; /* the next backoff end, renewal or hourly check */
	const struct config *cfg;
	const struct certstore *cs;
	unsigned gen;
	struct acme_table names;
	struct acme_job *job;       /* the running order, or NULL */
	char req[NAME_MAX_LEN + 2]; /* a request line from the workers, as far as it came */
	size_t reqlen;
	bool req_skip; /* the line is too long: dropped up to its end */
	bool stopped;
	struct metrics_shm *metrics;
};

static void check(struct acme *a);

static long long now_s(void)
{
	return (long long)time(NULL);
}

static const char *key_name(unsigned key)
{
	return key == CONFIG_ACME_RSA ? "rsa" : "ecdsa";
}

struct acme *acme_new(uv_loop_t *loop, struct metrics_shm *metrics)
{
	struct acme *a = xcalloc(1, sizeof(*a));

	a->loop = loop;
	a->metrics = metrics;
	uv_timer_init(loop, &a->timer);
	return a;
}

/* ---- files ---- */

static bool mkdirs(const char *path, mode_t mode)
{
	char *p = xstrdup(path);
	bool ok = true;

	for (char *s = p + 1; ok && (s = strchr(s, '/')); s++) {
		*s = '\0';
		ok = mkdir(p, mode) == 0 || errno == EEXIST;
		*s = '/';
	}
	ok = ok && (mkdir(p, mode) == 0 || errno == EEXIST);
	free(p);
	return ok;
}

/* Writes data to path through a hidden temporary file and rename(2): a reader (the cert_dir
 * scan, livery check) sees the old file or the new one, never half of one. */
static bool write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
	const char *slash = strrchr(path, '/');
	char *tmp = xasprintf("%.*s/.%s.tmp", (int)(slash - path), path, slash + 1);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;

	if (fd >= 0 && close(fd) != 0)
		ok = false;
	ok = ok && rename(tmp, path) == 0;
	if (!ok)
		unlink(tmp);
	free(tmp);
	return ok;
}

static void save(struct acme *a)
{
	if (!a->cfg || !a->cfg->acme.enabled || !mkdirs(a->cfg->acme.state_dir, 0700))
		return;
	json_t *j = acme_state_to_json(&a->names);
	char *text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
	char *path = xasprintf("%s/state.json", a->cfg->acme.state_dir);

	if (!text || !write_atomic(path, text, strlen(text), 0644))
		log_error("acme: cannot write %s: %s", path, strerror(errno));
	free(path);
	free(text);
	json_decref(j);
}

/* lego's result (its certificates/NAME.crt, the chain, and NAME.key) copied into the cert_dir
 * as NAME.acme.pem + NAME.acme.key (NAME.acme-rsa.* for RSA): flat pairs certdir finds. The
 * key goes first, so that the pair is never a new certificate with an old key. */
static bool install(const struct acme_job *j, struct acme_entry *e, char *why, size_t whylen)
{
	unsigned key = j->key;
	const char *suffix = key == CONFIG_ACME_RSA ? "acme-rsa" : "acme";
	char *src[2] = {xasprintf("%s/certificates/%s.key", j->lego_dir, e->name),
	                xasprintf("%s/certificates/%s.crt", j->lego_dir, e->name)};
	char *dst[2] = {xasprintf("%s/%s.%s.key", e->dir, e->name, suffix),
	                xasprintf("%s/%s.%s.pem", e->dir, e->name, suffix)};
	bool ok = true;

	why[0] = '\0';
	for (int i = 0; i < 2 && ok; i++) {
		size_t len;
		const char *cause;
		/* Certificates and keys: a few KB. */
		char *data = util_read_file(src[i], 65535, &len, &cause);
		if (!data || len == 0)
			snprintf(why, whylen, "lego left no %s", src[i]);
		else if (!write_atomic(dst[i], data, len, i == 0 ? 0600 : 0644))
			snprintf(why, whylen, "cannot write %s: %s", dst[i], strerror(errno));
		ok = data && !why[0];
		free(data);
	}
	if (ok)
		log_info("acme: %s: certificate obtained (%s) and installed as %s", e->name, key_name(key),
		         dst[1]);
	for (int i = 0; i < 2; i++) {
		free(src[i]);
		free(dst[i]);
	}
	return ok;
}

static void failed(struct acme *a, struct acme_entry *e, const char *why)
{
	e->failures++;
	long long wait = acme_state_backoff(a->cfg->acme.backoff_s, e->failures);
	e->next_try = now_s() + wait;
	e->state = ACME_BACKOFF;
	e->asked = false;
	free(e->last_error);
	e->last_error = xstrdup(why);
	log_error("acme: %s: order failed (%u in a row): %s; next try in %lld s", e->name, e->failures, why,
	          wait);
}

/* ---- which names need what ---- */

static const struct certstore_cert *served(const struct certstore *cs, const struct tenant_cfg *t,
                                           const char *name, unsigned key)
{
	const struct certstore_cert *c = certstore_cert_for(cs, t, name);

	if (key == CONFIG_ACME_ECDSA)
		return c && !c->info.rsa ? c : NULL;
	return c && c->info.rsa ? c : certstore_rsa_for(cs, t, name);
}

/* The key types name needs a certificate of, and when the ones it has are due for renewal. */
#define ACME_MIN_RENEW_S 86400
static unsigned needs(const struct acme *a, const struct tenant_cfg *t, const char *name,
                      struct acme_entry *e)
{
	long long now = now_s(), margin = (long long)a->cfg->acme.renew_days * 86400;
	unsigned need = 0;

	e->not_after = e->renew_at = 0;
	for (unsigned key = CONFIG_ACME_ECDSA; key <= CONFIG_ACME_RSA; key <<= 1) {
		if (!(a->cfg->acme.key_type & key))
			continue;
		const struct certstore_cert *c = served(a->cs, t, name, key);
		bool valid = c && c->info.not_before <= now && now < c->info.not_after;
		/* A renew_days longer than the CA's certificates live would order again at
		 * once after every renewal: a valid one is renewed at most once a day. */
		if (!valid || (c->info.not_after - now < margin && now - e->last_success >= ACME_MIN_RENEW_S))
			need |= key;
		if (c && (!e->not_after || c->info.not_after < e->not_after))
			e->not_after = c->info.not_after;
	}
	e->renew_at = e->not_after ? e->not_after - margin : 0;
	if (e->renew_at && e->last_success && e->renew_at < e->last_success + ACME_MIN_RENEW_S)
		e->renew_at = e->last_success + ACME_MIN_RENEW_S;
	return need;
}

/* A certificate installed under an earlier generation that the current one does not serve
 * did not load (the cert_dir log says why): a failure, not a reason to order at once again. */
static void apply(struct acme *a, struct acme_entry *e, unsigned need)
{
	if (e->installed && e->installed_gen != a->gen) {
		if (need & e->installed)
			failed(a, e, "the installed certificate was not loaded (see the cert_dir log lines)");
		e->installed = 0;
	}
	e->need = need & ~e->installed; /* installed ones wait for the reload the watcher makes */
	if (e->state == ACME_ORDERING)
		return;
	if (!e->need) {
		if (!(need & e->installed)) /* really valid, not only waiting for the reload */
			e->failures = 0;
		e->state = ACME_VALID;
		e->asked = false;
	} else if (e->state == ACME_VALID) {
		e->state = ACME_DUE;
	}
}

static void evaluate(struct acme *a)
{
	const struct config *cfg = a->cfg;

	for (size_t i = 0; i < a->names.n; i++)
		a->names.v[i].wanted = false;
	for (size_t i = 0; cfg && cfg->acme.enabled && i < cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cfg->tenants[i];
		for (size_t h = 0; h < t->nhostnames; h++) {
			if (!certstore_acme_manages(cfg, t, t->hostnames[h]))
				continue;
			struct acme_entry *e =
			        acme_state_get(&a->names, t->hostnames[h], config_tenant_cert_dir(cfg, t));
			e->wanted = true;
			apply(a, e, needs(a, t, t->hostnames[h], e));
		}
	}
	acme_state_prune(&a->names, false);
}

/* ---- a lego run ---- */

static void job_closed(uv_handle_t *h)
{
	struct acme_job *j = h->data;

	if (--j->closes == 0) {
		free(j->name);
		free(j->lego_dir);
		free(j);
	}
}

static void job_close(struct acme_job *j)
{
	uv_handle_t *hs[] = {(uv_handle_t *)&j->proc, (uv_handle_t *)&j->err, (uv_handle_t *)&j->timeout};

	for (size_t i = 0; i < ARRAY_LEN(hs); i++) {
		if (!uv_is_closing(hs[i])) {
			hs[i]->data = j;
			j->closes++;
			uv_close(hs[i], job_closed);
		}
	}
}

static void describe_exit(const struct acme_job *j, char *buf, size_t len)
{
	const char *last = j->last[0] ? j->last : "no output";

	if (j->timed_out)
		snprintf(buf, len, "lego took longer than %u s and was stopped: %s",
		         ACME_ORDER_TIMEOUT_MS / 1000, last);
	else if (WIFSIGNALED(j->wstatus))
		snprintf(buf, len, "lego was killed by signal %d: %s", WTERMSIG(j->wstatus), last);
	else
		snprintf(buf, len, "lego exited with status %d: %s", WEXITSTATUS(j->wstatus), last);
}

/* Both the exit status and the end of lego's output are in: the order's outcome. */
static void job_done(struct acme_job *j)
{
	struct acme *a = j->a;
	struct acme_entry *e = acme_state_find(&a->names, j->name);
	char why[768] = "";
	bool ok = WIFEXITED(j->wstatus) && WEXITSTATUS(j->wstatus) == 0 && !j->timed_out;

	a->job = NULL;
	job_close(j);
	if (!a->cfg || !a->cfg->acme.enabled) { /* acme left the configuration meanwhile */
		log_info("acme: %s: order ended after acme was removed; nothing installed", j->name);
		return;
	}
	if (!ok)
		describe_exit(j, why, sizeof(why));
	if (e && ok && !install(j, e, why, sizeof(why)))
		ok = false;
	if (e) {
		e->state = ACME_VALID;
		if (ok) {
			e->last_success = now_s();
			e->installed |= j->key;
			e->installed_gen = a->gen;
			e->need &= ~j->key;
			e->state = e->need ? ACME_DUE : ACME_VALID;
		} else {
			failed(a, e, why);
		}
	}
	metrics_shm_acme_order(a->metrics, ok);
	acme_state_prune(&a->names, false);
	check(a);
}

/* lego's stderr, line by line: at debug level, and the last line kept as the failure reason
 * (what lego says last is its error: "... acme: error: 400 ... Connection refused"). */
static void job_line(struct acme_job *j)
{
	j->line[j->linelen] = '\0';
	for (char *c = j->line; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	if (j->linelen > 0) {
		log_debug("acme: lego %s: %s", j->name, j->line);
		snprintf(j->last, sizeof(j->last), "%s", j->line);
	}
	j->linelen = 0;
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	(void)h;
	buf->base = xmalloc(size);
	buf->len = size;
}

static void on_output(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct acme_job *j = container_of((uv_pipe_t *)s, struct acme_job, err);

	for (ssize_t i = 0; i < n; i++) {
		if (buf->base[i] == '\n' || j->linelen == sizeof(j->line) - 1)
			job_line(j);
		if (buf->base[i] != '\n')
			j->line[j->linelen++] = buf->base[i];
	}
	free(buf->base);
	if (n >= 0)
		return;
	job_line(j);
	uv_read_stop(s);
	j->eof = true;
	if (j->exited)
		job_done(j);
}

static void on_timeout(uv_timer_t *t)
{
	struct acme_job *j = container_of(t, struct acme_job, timeout);

	j->timed_out = true;
	/* SIGKILL: an order cut short has nothing worth saving (the next one starts afresh), and
	 * nothing in lego can hold it up. */
	uv_process_kill(&j->proc, SIGKILL);
}

bool acme_child_exited(struct acme *a, pid_t pid, int wstatus)
{
	struct acme_job *j = a->job;

	if (!j || j->exited || j->proc.pid != pid)
		return false;
	j->exited = true;
	j->wstatus = wstatus;
	uv_timer_stop(&j->timeout);
	if (j->eof)
		job_done(j);
	return true;
}

/* lego's environment: livery's own, with LEGO_CA_CERTIFICATES for a private ACME CA (NULL:
 * inherit as it is). */
static char **lego_env(const struct acme_cfg *c)
{
	extern char **environ;
	size_t n = 0;

	if (!c->ca_file)
		return NULL;
	while (environ[n])
		n++;
	char **env = xcalloc(n + 2, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], "LEGO_CA_CERTIFICATES=", 21) != 0)
			env[k++] = environ[i];
	}
	env[k] = xasprintf("LEGO_CA_CERTIFICATES=%s", c->ca_file);
	return env;
}

/* Only the last entry is lego_env's own. */
static void free_env(char **env)
{
	size_t n = 0;

	while (env && env[n])
		n++;
	if (env)
		free(env[n - 1]);
	free(env);
}

/* One certificate, one name: lego's HTTP-01 server answers on http_listen while it runs. */
static int spawn_lego(struct acme *a, struct acme_job *j)
{
	const struct acme_cfg *c = &a->cfg->acme;
	char *argv[20] = {
	        c->client, "--accept-tos", "--server",     c->directory,
	        "--path",  j->lego_dir,    "--key-type",   j->key == CONFIG_ACME_RSA ? "rsa2048" : "ec256",
	        "--http",  "--http.port",  c->http_listen, "--domains",
	        j->name};
	size_t n = 13;
	if (c->email) {
		argv[n++] = "--email";
		argv[n++] = c->email;
	}
	argv[n++] = "run";
	char **env = lego_env(c);
	uv_stdio_container_t stdio[3] = {
	        {.flags = UV_IGNORE},
	        {.flags = UV_IGNORE},
	        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&j->err}};
	uv_process_options_t o = {
	        .file = c->client, .args = argv, .env = env, .stdio = stdio, .stdio_count = 3};
	int rc = mkdirs(c->state_dir, 0700) ? uv_spawn(a->loop, &j->proc, &o) : -errno;
	free_env(env);
	return rc;
}

static void start_job(struct acme *a, struct acme_entry *e)
{
	struct acme_job *j = xcalloc(1, sizeof(*j));
	char why[256];

	j->a = a;
	j->name = xstrdup(e->name);
	j->lego_dir = xasprintf("%s/lego", a->cfg->acme.state_dir);
	j->key = e->need & CONFIG_ACME_ECDSA ? CONFIG_ACME_ECDSA : CONFIG_ACME_RSA;
	uv_pipe_init(a->loop, &j->err, 0);
	uv_timer_init(a->loop, &j->timeout);
	e->state = ACME_ORDERING;
	e->last_order = now_s();
	e->asked = false;
	log_info("acme: ordering a certificate for %s (%s) from %s", e->name, key_name(j->key),
	         a->cfg->acme.directory);
	int rc = spawn_lego(a, j);
	if (rc != 0) {
		snprintf(why, sizeof(why), "cannot run %s: %s", a->cfg->acme.client, uv_strerror(rc));
		j->proc.data = j; /* uv_spawn initialised the handle even when it failed */
		job_close(j);
		failed(a, e, why);
		metrics_shm_acme_order(a->metrics, false);
		return;
	}
	a->job = j;
	uv_read_start((uv_stream_t *)&j->err, on_alloc, on_output);
	uv_timer_start(&j->timeout, on_timeout, ACME_ORDER_TIMEOUT_MS, 0);
}

/* ---- scheduling ---- */

/* The next name to order: one a client asked for, else any due one, else one whose backoff
 * has ended. */
static struct acme_entry *next_due(struct acme *a, long long now)
{
	struct acme_entry *due = NULL;

	for (size_t i = 0; i < a->names.n; i++) {
		struct acme_entry *e = &a->names.v[i];
		bool ready = e->state == ACME_DUE || (e->state == ACME_BACKOFF && e->next_try <= now);
		if (ready && e->asked)
			return e;
		if (ready && !due)
			due = e;
	}
	return due;
}

static void on_timer(uv_timer_t *t)
{
	struct acme *a = container_of(t, struct acme, timer);

	evaluate(a);
	check(a);
}

/* The timer for whatever comes first: a backoff's end, a renewal, the hourly check. */
static void arm(struct acme *a, long long now)
{
	long long next = now + ACME_CHECK_INTERVAL_MS / 1000;

	for (size_t i = 0; i < a->names.n; i++) {
		const struct acme_entry *e = &a->names.v[i];
		if (e->state == ACME_BACKOFF && e->next_try < next)
			next = e->next_try;
		/* One already past waits for the reload an installed certificate brings. */
		if (e->state == ACME_VALID && e->renew_at > now && e->renew_at < next)
			next = e->renew_at;
	}
	uv_timer_start(&a->timer, on_timer, next > now ? (uint64_t)(next - now) * 1000 : 0, 0);
}

/* One lego at a time: lego's standalone HTTP-01 server binds http_listen for each run, and
 * one order per name at a time is the CA's rule anyway. */
static void check(struct acme *a)
{
	long long now = now_s();

	if (a->stopped || !a->cfg || !a->cfg->acme.enabled) {
		uv_timer_stop(&a->timer);
		save(a);
		return;
	}
	struct acme_entry *e = a->job ? NULL : next_due(a, now);
	if (e)
		start_job(a, e);
	save(a);
	if (!a->job)
		arm(a, now);
}

void acme_update(struct acme *a, const struct config *cfg, const struct certstore *cs, unsigned gen)
{
	if (a->stopped)
		return;
	a->cfg = cfg;
	a->cs = cs;
	a->gen = gen;
	evaluate(a);
	check(a);
}

/* ---- requests from the workers ---- */

/* The worker is unprivileged and its input comes from the network: the name counts only if
 * the serving configuration has a tenant claim it and it has no certificate yet. */
void acme_request(struct acme *a, const char *name)
{
	char norm[NAME_MAX_LEN + 1];
	const struct tenant_cfg *t;
	struct acme_entry *e;

	if (a->stopped || !a->cs || !a->cfg->acme.enabled ||
	    !name_normalize(name, strlen(name), norm, false) || !(t = certstore_lookup(a->cs, norm)) ||
	    !certstore_acme_pending(a->cs, t) || !(e = acme_state_find(&a->names, norm))) {
		log_debug("acme: a worker asked for a certificate for a name no tenant waits for; ignored");
		return;
	}
	/* Each worker asks at most once a minute per name (acme_ask): this line stays rare. */
	log_info("acme: %s asked for on demand (a client's SNI): %s", norm,
	         e->state == ACME_DUE ? "ordered next" : acme_state_kind_name(e->state));
	if (e->state != ACME_DUE)
		return; /* ordering already, valid (a reload is coming), or backing off */
	e->asked = true;
	check(a);
}

void acme_feed(struct acme *a, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n') {
			if (a->reqlen < NAME_MAX_LEN)
				a->req[a->reqlen++] = data[i];
			else
				a->req_skip = true;
			continue;
		}
		a->req[a->reqlen] = '\0';
		if (!a->req_skip)
			acme_request(a, a->req);
		a->reqlen = 0;
		a->req_skip = false;
	}
}

/* ---- end ---- */

void acme_stop(struct acme *a)
{
	if (a->stopped)
		return;
	a->stopped = true;
	if (a->job && !a->job->exited)
		uv_process_kill(&a->job->proc, SIGKILL); /* as on_timeout; not waited for: livery stops */
	if (a->job)
		job_close(a->job);
	a->job = NULL;
	if (!uv_is_closing((uv_handle_t *)&a->timer))
		uv_close((uv_handle_t *)&a->timer, NULL);
	a->cfg = NULL;
	a->cs = NULL;
}

void acme_free(struct acme *a)
{
	if (!a)
		return;
	acme_state_prune(&a->names, true);
	free(a);
}

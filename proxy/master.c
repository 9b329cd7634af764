/* master: the privileged process: loads configuration generations (config, certificates, listening
 * sockets), forks and supervises the workers, reloads, and drains on SIGTERM; never reads network input. */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "acme.h"
#include "certmon.h"
#include "certstore.h"
#include "iptable.h"
#include "listener.h"
#include "metrics.h"
#include "quota_mem.h"
#include "records.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

/* A dead worker is replaced at once, but a generation forks replacements no more often than
 * this, so workers that crash at once cannot make the master fork in a tight loop. */
#define RESPAWN_DELAY_MS 1000

enum gen_state { GEN_STARTING, GEN_SERVING, GEN_DRAINING };

/* One loaded configuration and the workers serving it. */
struct gen {
	unsigned id;
	enum gen_state state;
	struct config *cfg;
	struct certstore *certs;
	int *fds;               /* the master's copies, one per cfg->listeners; -1 once closed */
	int admin_fd;           /* the admin listener (cfg->admin), or -1 */
	struct metrics_labels *labels;
	unsigned live;          /* forked, not yet reaped */
	unsigned ready;         /* reported that they accept */
	uint64_t t0;            /* uv_hrtime() when loading began */
	uint64_t last_replaced; /* uv_now() of the last replacement, 0 for none */
	struct gen *next;
};

/* A worker process; its index in master.procs is its region in the shared iptable. */
struct proc {
	pid_t pid; /* 0: a free slot */
	struct gen *gen;
	unsigned index; /* 0 .. workers-1 within its generation */
	bool ready;
	bool told; /* sent SIGTERM: its exit is expected */
};

/* A worker's slot in metrics is its index in procs, like its region in iptable. */
_Static_assert(METRICS_SLOTS >= IPTABLE_REGIONS, "a metrics slot per worker slot");

struct master {
	struct master_options opt;
	uv_loop_t loop;
	uv_poll_t signals, readiness, acme_requests;
	uv_timer_t respawn;
	uv_timer_t tickets; /* makes the next day's session-ticket key (tls_tickets_rotate) */
	int signal_fd;
	int ready_pipe[2];
	int acme_pipe[2];  /* workers write the names clients asked for that wait for ACME */
	struct acme *acme; /* certificate orders; idle without an acme block */
	struct gen *gens; /* newest first */
	struct gen *current;
	unsigned last_gen;
	struct proc procs[IPTABLE_REGIONS];
	struct iptable_shm *shm;
	struct iptable_shm *unauth_shm; /* relay legs of unauthenticated sessions, like shm */
	struct certmon *certmon;        /* the serving generation's cert_dir watch and expiry warnings */
	struct metrics_shm *metrics;    /* counters, one slot per entry of procs */
	struct quota_mem *quota_mem;    /* the sending limits' counters (memory backend) */
	char *pid_file;
	bool root;
	bool stopping;
	int status;
};

/* Static: in a forked worker, everything the master allocated stays reachable from here, so
 * LeakSanitizer does not report it as the worker's leak. */
static struct master master;

uv_loop_t *master_loop(struct master *m)
{
	return &m->loop;
}

const struct config *master_config(const struct master *m)
{
	return m->gens ? m->gens->cfg : NULL;
}

static double ms_since(uint64_t t0)
{
	return (double)(uv_hrtime() - t0) / 1e6;
}

/* ---- generations ---- */

static int dup_kept(struct master *m, const struct listener_cfg *l)
{
	for (struct gen *g = m->gens; g; g = g->next) {
		if (g->state == GEN_DRAINING)
			continue;
		for (size_t i = 0; i < g->cfg->nlisteners; i++) {
			if (g->fds[i] >= 0 && listener_same_address(&g->cfg->listeners[i], l))
				return fcntl(g->fds[i], F_DUPFD_CLOEXEC, 3);
		}
	}
	return -1;
}

/* The admin listener is bound like the others (the master never reads from it; each worker
 * serves it) and kept across reloads the same way. */
static bool open_admin(struct master *m, struct gen *g, char *err, size_t errlen)
{
	const struct admin_cfg *a = &g->cfg->admin;
	struct listener_cfg l = {.address = a->address, .port = a->port};

	if (!a->address)
		return true;
	for (struct gen *o = m->gens; o && g->admin_fd < 0; o = o->next) {
		struct listener_cfg ol = {.address = o->cfg->admin.address, .port = o->cfg->admin.port};
		if (o->state != GEN_DRAINING && o->admin_fd >= 0 && listener_same_address(&ol, &l))
			g->admin_fd = fcntl(o->admin_fd, F_DUPFD_CLOEXEC, 3);
	}
	if (g->admin_fd >= 0)
		return true;
	g->admin_fd = listener_bind(&l, err, errlen);
	if (g->admin_fd < 0)
		return false;
	log_info("admin listener on %s port %d", a->address, a->port);
	return true;
}

/* A listener whose address and port a live generation already has keeps that socket (a copy
 * of the fd): it is never closed across a reload, so no connection is refused meanwhile. */
static bool open_listeners(struct master *m, struct gen *g, char *err, size_t errlen)
{
	const struct config *cfg = g->cfg;

	g->fds = xmalloc(cfg->nlisteners * sizeof(int));
	for (size_t i = 0; i < cfg->nlisteners; i++)
		g->fds[i] = -1;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_cfg *l = &cfg->listeners[i];
		g->fds[i] = dup_kept(m, l);
		if (g->fds[i] >= 0)
			continue;
		g->fds[i] = listener_bind(l, err, errlen);
		if (g->fds[i] < 0)
			return false;
		log_info("listening on %s port %d (%s, %s)", l->address, l->port,
		         config_tls_mode_name(l->tls), l->hostname);
	}
	return open_admin(m, g, err, errlen);
}

static void close_fds(struct gen *g)
{
	for (size_t i = 0; g->fds && i < g->cfg->nlisteners; i++) {
		if (g->fds[i] >= 0)
			close(g->fds[i]);
		g->fds[i] = -1;
	}
	if (g->admin_fd >= 0)
		close(g->admin_fd);
	g->admin_fd = -1;
}

static void gen_free(struct gen *g)
{
	close_fds(g);
	free(g->fds);
	metrics_labels_free(g->labels);
	certstore_free(g->certs);
	config_free(g->cfg);
	free(g);
}

/* Everything a worker needs, loaded before any fork. *config_error tells a bad configuration
 * (exit status 2 at startup) from a runtime failure such as a port in use. */
static struct gen *gen_load(struct master *m, char *err, size_t errlen, bool *config_error)
{
	struct gen *g = xcalloc(1, sizeof(*g));

	g->t0 = uv_hrtime();
	g->admin_fd = -1;
	*config_error = true;
	g->cfg = config_load(m->opt.config_path, err, errlen);
	if (g->cfg)
		g->certs = certstore_new(g->cfg, err, errlen);
	if (g->certs) {
		*config_error = false;
		g->labels = metrics_labels_new(m->metrics, g->cfg, g->certs);
		if (open_listeners(m, g, err, errlen)) {
			g->id = ++m->last_gen;
			return g;
		}
	}
	gen_free(g);
	return NULL;
}

static void unlink_gen(struct master *m, struct gen *g)
{
	for (struct gen **p = &m->gens; *p; p = &(*p)->next) {
		if (*p == g) {
			*p = g->next;
			break;
		}
	}
	if (m->current == g)
		m->current = NULL;
}

static void signal_gen(struct master *m, struct gen *g, int signo)
{
	for (size_t i = 0; i < IPTABLE_REGIONS; i++) {
		struct proc *p = &m->procs[i];
		if (p->pid > 0 && p->gen == g && (signo != SIGTERM || !p->told)) {
			p->told = true;
			kill(p->pid, signo);
		}
	}
}

/* The generation stops accepting (its workers close their copies of the sockets, and the
 * master its own) and its workers exit once their sessions end. It is freed later, by
 * collect_gens, so that no caller is left holding a freed generation. */
static void gen_drain(struct master *m, struct gen *g)
{
	if (g->state == GEN_DRAINING)
		return;
	g->state = GEN_DRAINING;
	close_fds(g);
	signal_gen(m, g, SIGTERM);
}

/* Frees the draining generations whose last worker has exited; called at the end of each
 * event handler that may have drained or reaped one. */
static void collect_gens(struct master *m)
{
	for (struct gen *g = m->gens, *next; g; g = next) {
		next = g->next;
		if (g->state == GEN_DRAINING && g->live == 0) {
			unlink_gen(m, g);
			gen_free(g);
		}
	}
}

/* ---- workers ---- */

static void spawn(struct master *m, struct gen *g, unsigned index);

static unsigned count_live(const struct master *m)
{
	unsigned n = 0;
	for (const struct gen *g = m->gens; g; g = g->next)
		n += g->live;
	return n;
}

/* Forks the workers the generation lacks (at start, or to replace one that died). */
static void fill_gen(struct master *m, struct gen *g)
{
	for (unsigned index = 0; index < g->cfg->workers && !m->stopping; index++) {
		bool have = false;
		for (size_t i = 0; i < IPTABLE_REGIONS && !have; i++)
			have = m->procs[i].pid > 0 && m->procs[i].gen == g && m->procs[i].index == index;
		if (!have)
			spawn(m, g, index);
	}
}

static void on_respawn(uv_timer_t *t)
{
	struct master *m = container_of(t, struct master, respawn);

	if (m->current && !m->stopping) {
		m->current->last_replaced = uv_now(&m->loop);
		fill_gen(m, m->current);
	}
	collect_gens(m);
}

static struct proc *free_slot(struct master *m)
{
	for (size_t i = 0; i < IPTABLE_REGIONS; i++) {
		if (m->procs[i].pid == 0)
			return &m->procs[i];
	}
	return NULL;
}

static void fork_failed(struct master *m, struct gen *g, const char *why);

static void spawn(struct master *m, struct gen *g, unsigned index)
{
	struct proc *p = free_slot(m);

	if (!p) {
		fork_failed(m, g, "too many worker processes (old generations still draining)");
		return;
	}
	struct worker_args args = {.cfg = g->cfg,
	                           .certs = g->certs,
	                           .fds = g->fds,
	                           .shm = m->shm,
	                           .unauth_shm = m->unauth_shm,
	                           .metrics = m->metrics,
	                           .quota_mem = m->quota_mem,
	                           .labels = g->labels,
	                           .admin_fd = g->admin_fd,
	                           .region = (unsigned)(p - m->procs),
	                           .ready_fd = m->ready_pipe[1],
	                           .acme_fd = m->acme_pipe[1],
	                           .master = getpid(),
	                           .drop_privileges = m->root};
	pid_t pid = fork();
	if (pid == 0)
		worker_main(&args);
	if (pid < 0) {
		fork_failed(m, g, strerror(errno));
		return;
	}
	*p = (struct proc){.pid = pid, .gen = g, .index = index};
	g->live++;
	log_debug("worker %d started (generation %u)", (int)pid, g->id);
}

/* ---- state changes ---- */

static void begin_stop(struct master *m, const char *why);

static void notify(const char *state)
{
	sd_notify(0, state);
}

/* A generation whose workers could not all start: the first one ends livery, a reload's is
 * dropped and the serving generation goes on. */
static void gen_failed(struct master *m, struct gen *g, const char *why)
{
	if (!m->current) {
		log_error("generation %u: %s; exiting", g->id, why);
		m->status = 1;
		begin_stop(m, "startup failed");
		return;
	}
	metrics_shm_reload(m->metrics, false);
	log_error("reload rejected (generation %u: %s); generation %u goes on serving", g->id, why,
	          m->current->id);
	gen_drain(m, g);
	notify("READY=1\nSTATUS=reload rejected");
}

static void fork_failed(struct master *m, struct gen *g, const char *why)
{
	log_error("cannot start a worker: %s", why);
	if (g->state == GEN_STARTING)
		gen_failed(m, g, "a worker could not be started");
	else if (!uv_is_active((uv_handle_t *)&m->respawn))
		uv_timer_start(&m->respawn, on_respawn, RESPAWN_DELAY_MS, 0);
}

/* Certificates renewed under a cert_dir (certbot rewrote live/'s links) reach the workers
 * the way a reload does: a new generation loads them, and a bad renewal is rejected. */
static void on_certs_changed(void *arg)
{
	master_reload(arg, "certificates changed under cert_dir");
}

static void watch_certs(struct master *m, struct gen *g)
{
	if (m->certmon)
		certmon_stop(m->certmon);
	m->certmon = g ? certmon_start(&m->loop, g->cfg, g->certs, on_certs_changed, m) : NULL;
}

static void gen_serving(struct master *m, struct gen *g)
{
	bool first = m->current == NULL;

	g->state = GEN_SERVING;
	m->current = g;
	watch_certs(m, g);
	acme_update(m->acme, g->cfg, g->certs, g->id);
	metrics_shm_generation(m->metrics, g->id);
	if (!first)
		metrics_shm_reload(m->metrics, true);
	for (struct gen *o = m->gens, *next; o; o = next) {
		next = o->next;
		if (o != g)
			gen_drain(m, o);
	}
	if (first) {
		log_info("ready (%u worker%s)", g->cfg->workers, g->cfg->workers == 1 ? "" : "s");
		notify("READY=1\nSTATUS=serving");
	} else {
		log_info("reloaded: generation %u serving (%u worker%s) %.1f ms after the reload began",
		         g->id, g->cfg->workers, g->cfg->workers == 1 ? "" : "s", ms_since(g->t0));
		notify("READY=1\nSTATUS=serving");
	}
}

static void on_ready(struct master *m, pid_t pid)
{
	for (size_t i = 0; i < IPTABLE_REGIONS; i++) {
		struct proc *p = &m->procs[i];
		if (p->pid != pid || p->ready)
			continue;
		p->ready = true;
		p->gen->ready++;
		log_info("worker %d ready (generation %u)", (int)pid, p->gen->id);
		if (p->gen->state == GEN_STARTING && p->gen->ready >= p->gen->cfg->workers)
			gen_serving(m, p->gen);
		return;
	}
}

static void on_readiness(uv_poll_t *h, int status, int events)
{
	struct master *m = container_of(h, struct master, readiness);
	pid_t pid;

	(void)events;
	if (status < 0)
		return;
	/* Each report is one write of sizeof(pid_t) bytes: atomic on a pipe. */
	while (read(m->ready_pipe[0], &pid, sizeof(pid)) == (ssize_t)sizeof(pid))
		on_ready(m, pid);
	collect_gens(m);
}

/* ---- exits ---- */

static void describe(int wstatus, char *buf, size_t len)
{
	if (WIFSIGNALED(wstatus))
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(wstatus),
		         strsignal(WTERMSIG(wstatus)), WCOREDUMP(wstatus) ? ", core dumped" : "");
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(wstatus));
}

static void maybe_finish(struct master *m)
{
	if (m->stopping && count_live(m) == 0) {
		log_info("all workers exited; exiting");
		uv_stop(&m->loop);
	}
}

/* A worker of the serving generation that ends unasked is replaced, within a second; the
 * other workers (other processes) never notice. */
static void replace(struct master *m, struct proc *p, const char *how)
{
	struct gen *g = p->gen;
	uint64_t now = uv_now(&m->loop);

	log_error("worker %d (generation %u) %s; replacing it", (int)p->pid, g->id, how);
	if (!g->last_replaced || now - g->last_replaced >= RESPAWN_DELAY_MS) {
		g->last_replaced = now;
		spawn(m, g, p->index);
	} else if (!uv_is_active((uv_handle_t *)&m->respawn)) {
		uv_timer_start(&m->respawn, on_respawn, g->last_replaced + RESPAWN_DELAY_MS - now, 0);
	}
}

static void on_worker_exit(struct master *m, struct proc *p, int wstatus)
{
	struct gen *g = p->gen;
	char how[128];
	struct proc dead = *p;

	describe(wstatus, how, sizeof(how));
	iptable_shm_clear(m->shm, (unsigned)(p - m->procs)); /* its counts died with it */
	iptable_shm_clear(m->unauth_shm, (unsigned)(p - m->procs));
	metrics_shm_retire(m->metrics, (unsigned)(p - m->procs)); /* its counts stay in the sums */
	*p = (struct proc){0};
	g->live--;
	if (!dead.ready && g->state == GEN_STARTING) {
		char why[192];
		snprintf(why, sizeof(why), "worker %d %s before it was ready", (int)dead.pid, how);
		gen_failed(m, g, why);
	} else if ((g == m->current || g->state == GEN_STARTING) && !m->stopping && !dead.told) {
		replace(m, &dead, how);
	} else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
		log_info("worker %d (generation %u) drained and exited", (int)dead.pid, g->id);
	} else {
		log_warn("worker %d (generation %u) %s", (int)dead.pid, g->id, how);
	}
}

static void reap(struct master *m)
{
	int wstatus;
	pid_t pid;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		/* lego, when it is not a worker: libuv never sees SIGCHLD here (the signalfd reads it). */
		if (acme_child_exited(m->acme, pid, wstatus))
			continue;
		for (size_t i = 0; i < IPTABLE_REGIONS; i++) {
			if (m->procs[i].pid == pid) {
				on_worker_exit(m, &m->procs[i], wstatus);
				break;
			}
		}
	}
	maybe_finish(m);
}

/* ---- signals ---- */

/* SIGTERM/SIGINT: every generation drains, as a single process would; a second one ends the
 * remaining sessions at once (SIGQUIT to the workers). */
static void begin_stop(struct master *m, const char *why)
{
	if (m->stopping) {
		log_warn("%s again: ending all sessions now", why);
		for (struct gen *g = m->gens; g; g = g->next)
			signal_gen(m, g, SIGQUIT);
		return;
	}
	m->stopping = true;
	watch_certs(m, NULL);
	acme_stop(m->acme);
	metrics_shm_stopping(m->metrics); /* before the workers hear it: /readyz answers 503 */
	log_info("%s: no longer accepting; draining sessions", why);
	notify("STOPPING=1");
	uv_timer_stop(&m->respawn);
	for (struct gen *g = m->gens, *next; g; g = next) {
		next = g->next;
		gen_drain(m, g);
	}
	m->current = NULL;
	maybe_finish(m);
}

/* logrotate moved log_file away: the master makes the new file (root may be needed to create
 * it) and gives it to the workers' user, and the workers, told with SIGUSR1, reopen it. */
static void reopen_records(struct master *m)
{
	const struct config *cfg = m->gens ? m->gens->cfg : NULL;

	if (!cfg || !cfg->log_file)
		return;
	char err[512];
	if (!records_prepare(cfg->log_file, m->root ? (int)cfg->process.uid : -1,
	                     m->root ? (int)cfg->process.gid : -1, err, sizeof(err)))
		log_error("log_file %s", err);
	for (size_t i = 0; i < ARRAY_LEN(m->procs); i++) {
		if (m->procs[i].pid > 0)
			kill(m->procs[i].pid, SIGUSR1);
	}
}

static void on_signal(struct master *m, int signo)
{
	switch (signo) {
	case SIGCHLD:
		reap(m);
		break;
	case SIGHUP:
		master_reload(m, "SIGHUP");
		break;
	case SIGUSR1:
		reopen_records(m);
		break;
	case SIGQUIT: /* stop at once: a drain, and at once what a second SIGTERM does */
		if (!m->stopping)
			begin_stop(m, "SIGQUIT");
		begin_stop(m, "SIGQUIT");
		break;
	default:
		begin_stop(m, signo == SIGINT ? "SIGINT" : signo == SIGQUIT ? "SIGQUIT" : "SIGTERM");
		break;
	}
}

static void on_signal_fd(uv_poll_t *h, int status, int events)
{
	struct master *m = container_of(h, struct master, signals);
	struct signalfd_siginfo si;

	(void)events;
	if (status < 0)
		return;
	while (read(m->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		on_signal(m, (int)si.ssi_signo);
	collect_gens(m);
}

/* The signals are blocked and read from a signalfd rather than watched with uv_signal: libuv
 * keeps uv_signal state process-wide (a handler writing into the watching loop's pipe), which a
 * forked worker would inherit and share with the master. Workers inherit the mask and open a
 * signalfd of their own. */
static int watch_signals(struct master *m)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -errno;
	m->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->signal_fd < 0)
		return -errno;
	int rc = uv_poll_init(&m->loop, &m->signals, m->signal_fd);
	return rc ? rc : uv_poll_start(&m->signals, UV_READABLE, on_signal_fd);
}

/* ---- reload ---- */

static void apply_log_level(const struct master *m, const struct config *cfg)
{
	log_set_level(m->opt.log_level_forced ? m->opt.log_level : cfg->log_level);
}

static void start_gen(struct master *m, struct gen *g)
{
	if (m->root && g->cfg->process.uid == 0)
		log_warn("workers run as root (user = \"root\" in %s)", g->cfg->path);
	else if (!m->root && g->cfg->process.uid != geteuid())
		log_info("not started as root: workers keep user id %u (user \"%s\" not applied)",
		         (unsigned)geteuid(), g->cfg->process.user);
	apply_log_level(m, g->cfg);
	g->next = m->gens;
	m->gens = g;
	fill_gen(m, g);
}

int master_reload(struct master *m, const char *why)
{
	char err[1024];
	bool config_error;

	if (m->stopping)
		return -1;
	log_info("reloading the configuration (%s)", why);
	notify("RELOADING=1\nSTATUS=reloading");
	struct gen *g = gen_load(m, err, sizeof(err), &config_error);
	if (!g) {
		metrics_shm_reload(m->metrics, false);
		log_error("reload rejected, generation %u goes on serving: %s",
		          m->current ? m->current->id : 0, err);
		notify("READY=1\nSTATUS=serving (reload rejected)");
		return -1;
	}
	/* A generation still starting from an earlier reload is superseded by this one. */
	for (struct gen *o = m->gens, *next; o; o = next) {
		next = o->next;
		if (o->state == GEN_STARTING)
			gen_drain(m, o);
	}
	start_gen(m, g);
	collect_gens(m);
	return 0;
}

/* ---- start and end ---- */

/* The process's own ticket keys (tls_tickets_rotate): tomorrow's is made during today, so
 * checking hourly is plenty. */
#define TICKET_ROTATION_MS (3600 * 1000)

static void on_tickets(uv_timer_t *t)
{
	(void)t;
	tls_tickets_rotate((long long)time(NULL));
}

/* Each session holds two descriptors (client and relay): the soft limit (1024 under systemd)
 * would cap a worker at about 500 sessions, so it goes up to the hard limit, as nginx's
 * worker_rlimit_nofile does. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("cannot raise the open files limit: %s", strerror(errno));
}

static bool write_pid_file(struct master *m, const char *path)
{
	char *tmp = xasprintf("%s.%d.tmp", path, (int)getpid());
	FILE *f = fopen(tmp, "we");
	bool ok = f && fprintf(f, "%d\n", (int)getpid()) > 0;

	if (f && fclose(f) != 0)
		ok = false;
	/* rename(2): a reader never sees a half-written file. */
	if (!ok || rename(tmp, path) != 0) {
		log_error("cannot write pid_file %s: %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return false;
	}
	free(tmp);
	m->pid_file = xstrdup(path);
	return true;
}

/* Removed only while it still names this process (a newer instance may have replaced it). */
static void remove_pid_file(struct master *m)
{
	char buf[32] = "";
	FILE *f = m->pid_file ? fopen(m->pid_file, "re") : NULL;

	if (f) {
		if (fgets(buf, sizeof(buf), f) && atoi(buf) == (int)getpid())
			unlink(m->pid_file);
		fclose(f);
	}
	free(m->pid_file);
	m->pid_file = NULL;
}

static void on_acme_requests(uv_poll_t *h, int status, int events)
{
	struct master *m = container_of(h, struct master, acme_requests);
	char buf[4096];
	ssize_t n;

	(void)events;
	if (status < 0)
		return;
	while ((n = read(m->acme_pipe[0], buf, sizeof(buf))) > 0)
		acme_feed(m->acme, buf, (size_t)n);
}

/* The workers' requests for names waiting for ACME: a pipe made before any fork. */
static int watch_acme_requests(struct master *m)
{
	if (pipe2(m->acme_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return -errno;
	int rc = uv_poll_init(&m->loop, &m->acme_requests, m->acme_pipe[0]);
	return rc ? rc : uv_poll_start(&m->acme_requests, UV_READABLE, on_acme_requests);
}

static int setup(struct master *m)
{
	int rc = uv_loop_init(&m->loop);

	m->signal_fd = m->ready_pipe[0] = m->ready_pipe[1] = m->acme_pipe[0] = m->acme_pipe[1] = -1;
	if (rc == 0)
		rc = watch_signals(m);
	if (rc == 0 && pipe2(m->ready_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		rc = -errno;
	if (rc == 0)
		rc = uv_poll_init(&m->loop, &m->readiness, m->ready_pipe[0]);
	if (rc == 0)
		rc = uv_poll_start(&m->readiness, UV_READABLE, on_readiness);
	if (rc == 0)
		rc = uv_timer_init(&m->loop, &m->respawn);
	if (rc == 0)
		rc = uv_timer_init(&m->loop, &m->tickets);
	if (rc == 0)
		rc = uv_timer_start(&m->tickets, on_tickets, TICKET_ROTATION_MS, TICKET_ROTATION_MS);
	if (rc == 0)
		rc = watch_acme_requests(m);
	if (rc != 0)
		log_error("cannot set up the master: %s", uv_strerror(rc));
	m->shm = iptable_shm_new();
	m->unauth_shm = iptable_shm_new();
	m->metrics = metrics_shm_new();
	m->quota_mem = quota_mem_new(); /* one budget for all workers, kept across reloads */
	m->acme = acme_new(&m->loop, m->metrics);
	m->root = geteuid() == 0;
	raise_nofile();
	return rc;
}

static void close_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void teardown(struct master *m)
{
	watch_certs(m, NULL);
	acme_stop(m->acme);
	while (m->gens) {
		struct gen *g = m->gens;
		m->gens = g->next;
		gen_free(g);
	}
	uv_walk(&m->loop, close_handle, NULL);
	uv_run(&m->loop, UV_RUN_DEFAULT);
	uv_loop_close(&m->loop);
	acme_free(m->acme);
	for (int i = 0; i < 2; i++) {
		if (m->ready_pipe[i] >= 0)
			close(m->ready_pipe[i]);
		if (m->acme_pipe[i] >= 0)
			close(m->acme_pipe[i]);
	}
	if (m->signal_fd >= 0)
		close(m->signal_fd);
	iptable_shm_free(m->shm);
	iptable_shm_free(m->unauth_shm);
	metrics_shm_free(m->metrics);
	quota_mem_free(m->quota_mem);
	remove_pid_file(m);
}

static int start(struct master *m)
{
	char err[1024];
	bool config_error;
	struct gen *g = gen_load(m, err, sizeof(err), &config_error);

	if (!g) {
		fprintf(stderr, "%s\n", err);
		return config_error ? 2 : 1;
	}
	if (g->cfg->process.pid_file && !write_pid_file(m, g->cfg->process.pid_file)) {
		gen_free(g);
		return 1;
	}
	start_gen(m, g);
	return 0;
}

int master_run(const struct master_options *o)
{
	struct master *m = &master;

	m->opt = *o;
	int rc = setup(m) == 0 ? start(m) : 1;
	if (rc == 0) {
		uv_run(&m->loop, UV_RUN_DEFAULT);
		rc = m->status;
	}
	teardown(m);
	return rc;
}

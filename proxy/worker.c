/* worker: one worker process after the fork: drops privileges, runs its own event loop over the listening
 * sockets it inherited, drains on SIGTERM and exits; no SMTP and no wolfSSL here. */
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <uv.h>

#include "acme_ask.h"
#include "admin.h"
#include "listener.h"
#include "localauth.h"
#include "log.h"
#include "pool.h"
#include "quota.h"
#include "records.h"
#include "server.h"
#include "session.h"
#include "tls.h"
#include "util.h"

struct worker {
	uv_loop_t loop;
	struct server srv;
	struct listeners *listeners;
	uv_poll_t signals;
	int signal_fd;
	uv_timer_t drain_timer;
	uv_prepare_t records; /* writes the turn's records before the loop polls */
	struct admin *admin;
	const struct metrics_shm *metrics_shm;
};

/* The worker's state lives in static storage: what the master allocated before the fork stays
 * reachable from the master's statics, so LeakSanitizer in a worker reports only the worker's
 * own leaks. */
static struct worker worker;

static bool is_kept(int fd, const struct worker_args *a)
{
	if (fd <= STDERR_FILENO || fd == a->ready_fd || fd == a->admin_fd || fd == a->acme_fd)
		return true;
	for (size_t i = 0; i < a->cfg->nlisteners; i++) {
		if (fd == a->fds[i])
			return true;
	}
	return false;
}

/* Everything else the master had open (its event loop's epoll, its signalfd, other
 * generations' listeners, a certificate-directory watch) goes, so that a worker never holds a
 * socket the master closed, nor touches the master's loop. */
static void close_other_fds(const struct worker_args *a)
{
	DIR *d = opendir("/proc/self/fd");
	int fds[1024];
	size_t n = 0;

	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d)) && n < ARRAY_LEN(fds);) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd != dirfd(d) && !is_kept(fd, a))
			fds[n++] = fd;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* All three are checked: a worker that could not give up root must not serve. */
static bool drop_privileges(const struct process_cfg *pc)
{
	gid_t gid = pc->gid;

	if (setgroups(1, &gid) != 0 || setgid(pc->gid) != 0 || setuid(pc->uid) != 0) {
		log_error("worker: cannot run as user %s, group %s: %s", pc->user, pc->group,
		          strerror(errno));
		return false;
	}
	if (getuid() != pc->uid || geteuid() != pc->uid || getgid() != pc->gid || getegid() != pc->gid) {
		log_error("worker: still privileged after setuid(%u)", (unsigned)pc->uid);
		return false;
	}
	return true;
}

static enum records_format records_format_of(enum config_log_format f)
{
	return f == CONFIG_LOG_TEXT ? RECORDS_TEXT : f == CONFIG_LOG_NONE ? RECORDS_NONE : RECORDS_JSON;
}

static bool open_records(const struct worker_args *a)
{
	const struct config *cfg = a->cfg;
	char err[512];
	bool own = a->drop_privileges && cfg->log_file;

	if ((own && !records_prepare(cfg->log_file, (int)cfg->process.uid, (int)cfg->process.gid, err,
	                             sizeof(err))) ||
	    !records_open(cfg->log_file, records_format_of(cfg->log_format), err, sizeof(err))) {
		log_error("worker: log_file %s", err);
		return false;
	}
	return true;
}

static void close_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* The sending limits' counters close their own handles (hiredis's among them) first. */
static void close_all(struct worker *w)
{
	quota_close(w->srv.quota);
	w->srv.quota = NULL;
	uv_walk(&w->loop, close_handle, NULL);
}

/* Closing every handle ends uv_run, and with it the worker. */
static void on_drained(struct server *srv)
{
	close_all(container_of(srv, struct worker, srv));
}

/* The pool closed its last connection (it only says so while draining). */
static void on_pool_empty(void *arg)
{
	struct worker *w = arg;

	if (w->srv.draining && w->srv.nsessions == 0)
		on_drained(&w->srv);
}

/* What the relay pool and the local password checks did, for operators and benchmarks. */
static void log_auth_pool_stats(const struct worker *w)
{
	struct pool_stats ps;
	struct localauth_stats ls;

	pool_stats(w->srv.pool, &ps);
	localauth_stats(w->srv.localauth, &ls);
	if (ps.hits + ps.misses + ps.prewarmed == 0 && ls.ok + ls.failed == 0)
		return;
	log_info("worker: relay pool: %llu hits, %llu misses, %llu opened (%llu pre-warmed), retired: %llu dirty, %llu "
	         "error, %llu idle_timeout, %llu max_age, %llu max_messages, %llu full, %llu rset_refused; local auth: "
	         "%llu ok, %llu failed, %llu hashed, %llu cache hits",
	         ps.hits, ps.misses, ps.opened, ps.prewarmed, ps.retired[POOL_RETIRE_DIRTY], ps.retired[POOL_RETIRE_ERROR],
	         ps.retired[POOL_RETIRE_IDLE_TIMEOUT], ps.retired[POOL_RETIRE_MAX_AGE],
	         ps.retired[POOL_RETIRE_MAX_MESSAGES], ps.retired[POOL_RETIRE_FULL], ps.retired[POOL_RETIRE_RSET], ls.ok,
	         ls.failed, ls.hashed, ls.cache_hits);
}

static void end_all_sessions(struct worker *w)
{
	struct session *s = w->srv.sessions;

	while (s) {
		struct session *next = session_next(s);
		session_shutdown(s); /* does not free s now: it frees itself once its handles close */
		s = next;
	}
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct worker *w = container_of(t, struct worker, drain_timer);

	log_warn("drain timeout: ending %zu sessions", w->srv.nsessions);
	end_all_sessions(w);
}

static void start_drain(struct worker *w)
{
	if (w->srv.draining)
		return;
	w->srv.draining = true;
	listeners_close(w->listeners);
	w->listeners = NULL;
	/* At a reload the next generation answers the admin listener; when livery stops, this
	 * worker answers /readyz with 503 until it exits (then nobody accepts: not ready either). */
	if (metrics_shm_is_stopping(w->metrics_shm))
		admin_set_draining(w->admin);
	else
		admin_quiesce(w->admin);
	log_auth_pool_stats(w);
	pool_close(w->srv.pool); /* idle relay connections go now, lent ones when their session ends */
	if (w->srv.nsessions == 0 && pool_is_empty(w->srv.pool))
		on_drained(&w->srv);
	else
		uv_timer_start(&w->drain_timer, on_drain_timeout, w->srv.cfg->limits.shutdown_timeout_ms, 0);
}

/* "End now" is SIGQUIT only, never a repeated SIGTERM: a Ctrl-C reaches the whole process
 * group, so a worker may get SIGINT from the terminal and SIGTERM from the master for one and
 * the same drain. The master turns a second SIGTERM into SIGQUIT. */
static void on_signal(struct worker *w, int signo)
{
	if (signo == SIGHUP)
		return; /* reloads are the master's business; a terminal hangup must not end us */
	if (signo == SIGUSR1) {
		records_reopen(); /* the master made the new log_file ours */
		return;
	}
	if (signo == SIGQUIT) {
		log_debug("worker: SIGQUIT: ending %zu sessions now", w->srv.nsessions);
		start_drain(w);
		end_all_sessions(w);
		return;
	}
	log_debug("worker: signal %d: draining %zu sessions", signo, w->srv.nsessions);
	start_drain(w);
}

static void on_signal_fd(uv_poll_t *p, int status, int events)
{
	struct worker *w = container_of(p, struct worker, signals);
	struct signalfd_siginfo si;

	(void)events;
	if (status < 0)
		return;
	while (read(w->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		on_signal(w, (int)si.ssi_signo);
}

/* The master blocked these signals before forking (see master.c); the worker reads them from
 * a signalfd of its own on its own loop. */
static bool watch_signals(struct worker *w)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	w->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (w->signal_fd < 0 || uv_poll_init(&w->loop, &w->signals, w->signal_fd) != 0)
		return false;
	/* The master's uv_spawn (lego) installed libuv's SIGCHLD handler, which writes into the
	 * master's loop: not ours. */
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	return uv_poll_start(&w->signals, UV_READABLE, on_signal_fd) == 0;
}

/* A worker must not outlive its master (killed, or crashed): it then gets SIGTERM and drains,
 * like at a normal stop, while a new master (systemd's Restart=) may already bind the ports
 * beside it. Set after the privilege drop, which clears it; the master may have died before. */
static void follow_master(struct worker *w, pid_t master)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master) {
		log_warn("worker: the master has exited; draining");
		start_drain(w);
	}
}

static void flush_records(uv_prepare_t *p)
{
	(void)p;
	records_flush();
}

static bool start(struct worker *w, const struct worker_args *a)
{
	char err[512];

	uv_loop_init(&w->loop);
	w->srv = (struct server){.loop = &w->loop,
	                         .cfg = a->cfg,
	                         .certs = a->certs,
	                         .on_drained = on_drained,
	                         .worker = (int)getpid(),
	                         .per_ip = iptable_new(a->shm, a->region),
	                         .unauth_legs = iptable_new(a->unauth_shm, a->region),
	                         .relay_sessions = tls_session_cache_new(),
	                         .metrics = metrics_new(a->metrics, a->region, a->cfg, a->labels),
	                         .quota = quota_new(&w->loop, &a->cfg->sending, a->quota_mem)};
	w->metrics_shm = a->metrics;
	w->srv.localauth = localauth_new(&w->loop);
	w->srv.pool = pool_new(&w->loop, &a->cfg->pool, w->srv.metrics, on_pool_empty, w);
	acme_ask_init(a->acme_fd);
	uv_timer_init(&w->loop, &w->drain_timer);
	uv_prepare_init(&w->loop, &w->records);
	uv_prepare_start(&w->records, flush_records);
	if (!watch_signals(w)) {
		log_error("worker: cannot watch signals: %s", strerror(errno));
		return false;
	}
	w->listeners = listeners_open(&w->srv, a->fds, err, sizeof(err));
	if (!w->listeners) {
		log_error("worker: %s", err);
		return false;
	}
	if (a->admin_fd >= 0 && !(w->admin = admin_start(a->admin_fd, a->cfg->admin.token, w->srv.metrics, err,
	                                                  sizeof(err)))) {
		log_error("worker: %s", err);
		return false;
	}
	session_prewarm(&w->srv);
	return true;
}

static void finish(struct worker *w)
{
	close_all(w);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
	if (w->signal_fd >= 0)
		close(w->signal_fd);
	iptable_free(w->srv.per_ip);
	iptable_free(w->srv.unauth_legs);
	admin_stop(w->admin); /* its thread reads the metrics */
	metrics_free(w->srv.metrics);
	records_close();
	tls_session_cache_free(w->srv.relay_sessions);
	pool_free(w->srv.pool);
	localauth_free(w->srv.localauth);
	tls_thread_cleanup();
}

void worker_main(const struct worker_args *a)
{
	struct worker *w = &worker;
	pid_t pid = getpid();

	w->signal_fd = -1;
	prctl(PR_SET_NAME, "livery-worker"); /* what ps -L, top and the kernel's messages show */
	close_other_fds(a);
	/* log_file is opened (made and given to the workers' user) before root is given up, so a
	 * file in a root-only directory works, and SIGUSR1 can reopen it later. */
	if (!open_records(a))
		_exit(1);
	if (a->drop_privileges && !drop_privileges(&a->cfg->process))
		_exit(1);
	bool ok = start(w, a);
	/* Exits through exit(), not _exit(): in a sanitizer build LeakSanitizer then checks the
	 * worker's own allocations, which finish() has all released. */
	if (ok && write(a->ready_fd, &pid, sizeof(pid)) == (ssize_t)sizeof(pid)) {
		close(a->ready_fd);
		follow_master(w, a->master);
		uv_run(&w->loop, UV_RUN_DEFAULT);
	}
	finish(w);
	exit(ok ? 0 : 1);
}

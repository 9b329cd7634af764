/* worker: one worker process after the fork: drops privileges, runs its own event loop over the listening
 * sockets it inherited, drains on SIGTERM and exits; no SMTP and no wolfSSL here. */
#ifndef LIVERY_WORKER_H
#define LIVERY_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "certstore.h"
#include "config.h"
#include "iptable.h"
#include "metrics.h"
#include "quota_mem.h"

/* What the master hands a worker it forks; everything is loaded already (the worker may no
 * longer be able to read keys once it dropped privileges). */
struct worker_args {
	const struct config *cfg;
	const struct certstore *certs;
	const int *fds; /* one listening socket per cfg->listeners */
	struct iptable_shm *shm;
	struct iptable_shm *unauth_shm; /* relay legs of unauthenticated sessions */
	struct metrics_shm *metrics;
	struct quota_mem *quota_mem; /* the sending limits' counters (memory backend) */
	const struct metrics_labels *labels; /* where this generation's names are counted */
	int admin_fd;    /* the admin listener to serve, or -1 */
	unsigned region; /* the worker's region in shm (and its slot in metrics) */
	int ready_fd;    /* the worker writes its pid here once it accepts connections */
	int acme_fd;     /* the master's ACME request pipe (acme_ask), or -1 */
	pid_t master;    /* the master's pid: a worker whose master died drains and exits */
	bool drop_privileges;
};

/* Runs a worker in the child of a fork and exits the process: status 0 after a drain, 1 when
 * it could not start. Signals: SIGTERM or SIGINT stop accepting and let sessions finish for up
 * to shutdown_timeout (then 421); SIGQUIT ends the sessions at once; SIGHUP is ignored. */
_Noreturn void worker_main(const struct worker_args *args);

#endif

/* master: the privileged process: loads configuration generations (config, certificates, listening
 * sockets), forks and supervises the workers, reloads, and drains on SIGTERM; never reads network input. */
#ifndef LIVERY_MASTER_H
#define LIVERY_MASTER_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "log.h"

struct master;

struct master_options {
	const char *config_path;
	bool log_level_forced; /* --log-level given: it wins over every generation's log_level */
	enum log_level log_level;
};

/* Runs livery until SIGTERM/SIGINT and the drain that follows. Returns the exit status: 0
 * after a clean drain, 1 on a runtime error (a port cannot be bound, the first workers
 * cannot start), 2 on a configuration error at startup. */
int master_run(const struct master_options *o);

/* Loads the configuration file again, completely (config, certificates, listeners), and if
 * it is good starts a new generation of workers with it; once they serve, the previous
 * generation stops accepting and drains. A bad configuration is rejected as a whole (logged
 * with file:line) and the serving generation goes on. SIGHUP calls this; so may other
 * master-side code (e.g. a certificate-directory watcher). why is logged. Returns 0 when the
 * new generation is starting, -1 when it was rejected. */
int master_reload(struct master *m, const char *why);
/* The master's event loop, for master-side watchers. */
uv_loop_t *master_loop(struct master *m);
/* The configuration of the newest generation (serving or starting). */
const struct config *master_config(const struct master *m);

#endif

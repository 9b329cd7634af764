/* server: what one worker process's sessions share (its generation's config and certificates, the session
 * list, drain state); plain data, owned by worker.c. */
#ifndef LIVERY_SERVER_H
#define LIVERY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "certstore.h"
#include "config.h"
#include "iptable.h"
#include "tls.h"

struct session;
struct metrics;
struct pool;
struct localauth;
struct quota;

struct server {
	uv_loop_t *loop;
	const struct config *cfg;
	const struct certstore *certs;
	struct session *sessions; /* doubly linked through session->next/prev */
	size_t nsessions;
	struct iptable *per_ip; /* live sessions, per client address and in total, across workers */
	/* Relay legs of sessions not yet authenticated, per client address and in total, across
	 * workers. */
	struct iptable *unauth_legs;
	struct tls_session_cache *relay_sessions; /* relay-leg TLS sessions for resumption */
	struct metrics *metrics;                  /* this worker's counters (NULL: none) */
	struct pool *pool;                        /* relay connections of local-mode tenants */
	struct localauth *localauth;              /* local users' password checks */
	struct quota *quota;                      /* the sending limits' counters */
	uint64_t next_id;
	int worker; /* the worker's pid: session ids ("w<pid>s<n>") stay unique across processes */
	bool draining;
	/* Called when draining and the last session has ended. */
	void (*on_drained)(struct server *srv);
};

#endif

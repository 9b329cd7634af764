/* server: what one event loop's sessions share (config, certificates, the session list, drain state); plain
 * data, owned by listener.c. */
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

struct server {
	uv_loop_t *loop;
	const struct config *cfg;
	const struct certstore *certs;
	struct session *sessions; /* doubly linked through session->next/prev */
	size_t nsessions;
	struct iptable *per_ip;                   /* live sessions per client address */
	struct iptable *unauth_legs_per_ip;       /* relay legs of unauthenticated sessions, per address */
	unsigned unauth_legs;                     /* and in all */
	struct tls_session_cache *relay_sessions; /* relay-leg TLS sessions for resumption */
	uint64_t next_id;
	int worker;      /* index of the worker (event loop) this server runs in */
	bool reuse_port; /* several workers bind the same ports */
	bool draining;
	/* Called when draining and the last session has ended. */
	void (*on_drained)(struct server *srv);
};

#endif

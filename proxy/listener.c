/* listener: bound listening sockets for one event loop; accepts connections and hands each to a new session. */
#include "listener.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session.h"
#include "util.h"

#define BACKLOG 511

struct listener {
	uv_tcp_t tcp;
	struct server *srv;
	const struct listener_cfg *cfg;
	struct listeners *owner;
};

struct listeners {
	struct listener *items;
	size_t n;
	size_t open; /* handles not yet closed */
};

static void on_connection(uv_stream_t *h, int status)
{
	struct listener *l = container_of((uv_tcp_t *)h, struct listener, tcp);

	if (status < 0) {
		log_warn("accept on %s port %d: %s", l->cfg->address, l->cfg->port, uv_strerror(status));
		return;
	}
	if (l->srv->draining)
		return;
	session_start(l->srv, l->cfg, h);
}

static int bind_one(struct listener *l, uv_loop_t *loop)
{
	struct sockaddr_storage ss;
	bool v6 = strchr(l->cfg->address, ':') != NULL;
	int rc = v6 ? uv_ip6_addr(l->cfg->address, l->cfg->port, (struct sockaddr_in6 *)&ss)
		    : uv_ip4_addr(l->cfg->address, l->cfg->port, (struct sockaddr_in *)&ss);

	if (rc == 0)
		rc = uv_tcp_init_ex(loop, &l->tcp, v6 ? AF_INET6 : AF_INET);
	if (rc < 0)
		return rc;
	/* An IPv6 wildcard must not take the IPv4 port that another listener may bind. */
	rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, v6 ? UV_TCP_IPV6ONLY : 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->tcp, BACKLOG, on_connection);
	return rc;
}

static void on_closed(uv_handle_t *h)
{
	struct listener *l = container_of((uv_tcp_t *)h, struct listener, tcp);
	struct listeners *ls = l->owner;

	if (--ls->open == 0) {
		free(ls->items);
		free(ls);
	}
}

struct listeners *listeners_open(struct server *srv, char *err, size_t errlen)
{
	struct listeners *ls = xcalloc(1, sizeof(*ls));

	ls->items = xcalloc(srv->cfg->nlisteners, sizeof(struct listener));
	for (size_t i = 0; i < srv->cfg->nlisteners; i++) {
		struct listener *l = &ls->items[i];
		l->srv = srv;
		l->cfg = &srv->cfg->listeners[i];
		l->owner = ls;
		int rc = bind_one(l, srv->loop);
		ls->n++;
		if (l->tcp.loop) /* set once the handle exists, and then it must be closed */
			ls->open++;
		if (rc < 0) {
			snprintf(err, errlen, "cannot listen on %s port %d: %s", l->cfg->address, l->cfg->port,
				 uv_strerror(rc));
			listeners_close(ls);
			return NULL;
		}
		log_info("listening on %s port %d (%s, %s)", l->cfg->address, l->cfg->port,
			 config_tls_mode_name(l->cfg->tls), l->cfg->hostname);
	}
	return ls;
}

void listeners_close(struct listeners *ls)
{
	if (!ls)
		return;
	if (ls->open == 0) {
		free(ls->items);
		free(ls);
		return;
	}
	for (size_t i = 0; i < ls->n; i++) {
		if (ls->items[i].tcp.loop)
			uv_close((uv_handle_t *)&ls->items[i].tcp, on_closed);
	}
}

/* listener: bound listening sockets for one event loop; accepts connections and hands each to a new session.
 */
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
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

/* libuv 1.44 has no UV_TCP_REUSEPORT: each worker's socket gets SO_REUSEPORT itself, and the
 * kernel spreads connections over the workers. */
static int set_reuse_port(uv_tcp_t *tcp)
{
	uv_os_fd_t fd;
	int one = 1;

	if (uv_fileno((uv_handle_t *)tcp, &fd) != 0)
		return UV_EINVAL;
	return setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0
	               ? 0
	               : uv_translate_sys_error(errno);
}

static int bind_one(struct listener *l, uv_loop_t *loop)
{
	struct sockaddr_storage ss;
	bool v6 = strchr(l->cfg->address, ':') != NULL;
	int rc = v6 ? uv_ip6_addr(l->cfg->address, l->cfg->port, (struct sockaddr_in6 *)&ss)
	            : uv_ip4_addr(l->cfg->address, l->cfg->port, (struct sockaddr_in *)&ss);

	if (rc == 0)
		rc = uv_tcp_init_ex(loop, &l->tcp, v6 ? AF_INET6 : AF_INET);
	if (rc == 0 && l->srv->reuse_port)
		rc = set_reuse_port(&l->tcp);
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
			snprintf(err, errlen, "cannot listen on %s port %d: %s", l->cfg->address,
			         l->cfg->port, uv_strerror(rc));
			listeners_close(ls);
			return NULL;
		}
		if (srv->worker == 0)
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

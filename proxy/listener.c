/* listener: listening sockets; the master binds them (listener_bind), a worker accepts on the ones it
 * inherits and hands each connection to a new session. */
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static int parse_address(const struct listener_cfg *l, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(l->address, ':'))
		return uv_ip6_addr(l->address, l->port, (struct sockaddr_in6 *)ss);
	return uv_ip4_addr(l->address, l->port, (struct sockaddr_in *)ss);
}

bool listener_same_address(const struct listener_cfg *a, const struct listener_cfg *b)
{
	struct sockaddr_storage x, y;

	if (a->port != b->port || parse_address(a, &x) != 0 || parse_address(b, &y) != 0)
		return false;
	if (x.ss_family != y.ss_family)
		return false;
	if (x.ss_family == AF_INET6)
		return memcmp(&((struct sockaddr_in6 *)&x)->sin6_addr,
		              &((struct sockaddr_in6 *)&y)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return ((struct sockaddr_in *)&x)->sin_addr.s_addr == ((struct sockaddr_in *)&y)->sin_addr.s_addr;
}

/* Plain sockets, not libuv handles: the master never accepts, it only keeps the bound sockets
 * for its workers and for the next generation. SO_REUSEPORT on every socket (libuv 1.44 has no
 * UV_TCP_REUSEPORT) lets a second livery bind the same port and take over (blue/green). */
static int bind_socket(int fd, const struct listener_cfg *l, const struct sockaddr_storage *ss)
{
	int one = 1;
	bool v6 = ss->ss_family == AF_INET6;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		return -errno;
	/* An IPv6 wildcard must not take the IPv4 port that another listener may bind. */
	if (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)ss,
	         v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0 ||
	    listen(fd, BACKLOG) != 0)
		return -errno;
	return 0;
}

int listener_bind(const struct listener_cfg *l, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int rc = parse_address(l, &ss);
	int fd = -1;

	if (rc == 0) {
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		rc = fd < 0 ? -errno : bind_socket(fd, l, &ss);
	}
	if (rc == 0)
		return fd;
	snprintf(err, errlen, "cannot listen on %s port %d: %s", l->address, l->port, uv_strerror(rc));
	if (fd >= 0)
		close(fd);
	return -1;
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

static int open_one(struct listener *l, uv_loop_t *loop, int fd)
{
	int rc = uv_tcp_init(loop, &l->tcp);

	if (rc < 0) {
		close(fd);
		return rc;
	}
	rc = uv_tcp_open(&l->tcp, fd); /* the handle owns fd from here on, even on failure */
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->tcp, BACKLOG, on_connection);
	return rc;
}

struct listeners *listeners_open(struct server *srv, const int *fds, char *err, size_t errlen)
{
	struct listeners *ls = xcalloc(1, sizeof(*ls));
	int rc = 0;

	ls->items = xcalloc(srv->cfg->nlisteners, sizeof(struct listener));
	for (size_t i = 0; i < srv->cfg->nlisteners; i++) {
		struct listener *l = &ls->items[i];
		l->srv = srv;
		l->cfg = &srv->cfg->listeners[i];
		l->owner = ls;
		if (rc < 0) { /* an earlier one failed: the rest of the fds are still ours to close */
			close(fds[i]);
			continue;
		}
		rc = open_one(l, srv->loop, fds[i]);
		ls->n++;
		if (l->tcp.loop) /* set once the handle exists, and then it must be closed */
			ls->open++;
		if (rc < 0)
			snprintf(err, errlen, "cannot accept on %s port %d: %s", l->cfg->address,
			         l->cfg->port, uv_strerror(rc));
	}
	if (rc == 0)
		return ls;
	listeners_close(ls);
	return NULL;
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

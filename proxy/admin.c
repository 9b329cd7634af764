/* admin: the admin HTTP listener of one worker (GET /metrics, /healthz, /readyz), served by libmicrohttpd in
 * a thread of its own on the listening socket the master bound, with a watchdog thread for its deadlines; it
 * reads counters, it decides nothing. */
#include "admin.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "util.h"

/* Bounds: a scrape is one short request; nobody needs more at once, and an idle connection
 * is dropped soon. libmicrohttpd's timeout is for silence only, so a client that sent a byte
 * now and then held a connection for ever, and ADMIN_MAX_CONNECTIONS of them shut /healthz
 * out: each request must also be read and answered within ADMIN_TIMEOUT_S of the connection
 * being free for it (accepted, or done with the previous request), and one client address
 * holds at most ADMIN_PER_ADDRESS connections. */
#define ADMIN_MAX_CONNECTIONS 16
#define ADMIN_PER_ADDRESS     4
#define ADMIN_TIMEOUT_S       10
/* How long an exiting worker lets requests under way finish. */
#define ADMIN_LINGER_MS 2000

/* A connection libmicrohttpd serves, as the watchdog sees it. */
struct admin_conn {
	struct admin_conn *next;
	int fd;
	uint64_t since_ms; /* accepted, or done with its last request */
	bool cut;
};

struct admin {
	struct MHD_Daemon *d;
	struct metrics *m;
	char *token;
	atomic_bool draining;
	atomic_bool quiesced; /* no longer accepting: answers close their connection */
	/* The watchdog thread cuts connections past their deadline. The lock also keeps a socket
	 * from being shut down after libmicrohttpd closed it (its number may be reused by then):
	 * libmicrohttpd reports a connection closed before it closes the socket. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t watchdog;
	bool stopping;
	struct admin_conn *conns;
};

/* Compares in time independent of where the first difference is; every octet counts (a NUL
 * in a header does not end the comparison). */
static bool same_secret(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
	return diff == 0;
}

/* The request's Authorization headers: how many, and the last one's value. */
struct auth_header {
	unsigned count;
	const char *value;
	size_t len;
};

static enum MHD_Result find_auth(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                 const char *value, size_t value_size)
{
	struct auth_header *h = cls;

	(void)kind, (void)key_size;
	if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0) {
		h->count++;
		h->value = value ? value : "";
		h->len = value ? value_size : 0;
	}
	return MHD_YES;
}

/* One Authorization header with the token. Two would be ambiguous (a proxy in front may read
 * the other one): refused whatever they hold. */
static bool authorized(const struct admin *a, struct MHD_Connection *c)
{
	struct auth_header h = {0};

	if (!a->token)
		return true;
	MHD_get_connection_values_n(c, MHD_HEADER_KIND, find_auth, &h);
	if (h.count != 1 || h.len < 7 || strncasecmp(h.value, "Bearer ", 7) != 0)
		return false;
	size_t i = 7;
	while (i < h.len && h.value[i] == ' ')
		i++;
	return same_secret(h.value + i, h.len - i, a->token);
}

static enum MHD_Result reply(struct admin *a, struct MHD_Connection *c, unsigned status, char *body,
                             size_t len, const char *type, bool owned)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);

	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"livery\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (atomic_load(&a->quiesced)) /* a kept-alive scraper reconnects, to a worker that accepts */
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result text(struct admin *a, struct MHD_Connection *c, unsigned status, const char *body)
{
	return reply(a, c, status, (char *)body, strlen(body), "text/plain; charset=utf-8", false);
}

static enum MHD_Result serve_metrics(struct admin *a, struct MHD_Connection *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return text(a, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
	bool ok = metrics_render(a->m, f);
	if (fclose(f) != 0 || !ok) {
		free(buf);
		return text(a, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
	}
	return reply(a, c, MHD_HTTP_OK, buf, len, "text/plain; version=0.0.4; charset=utf-8", true);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state)
{
	struct admin *a = cls;

	(void)version, (void)upload, (void)state;
	if (*upload_size != 0)
		return MHD_NO; /* a GET carries no body */
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return text(a, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (!authorized(a, c))
		return text(a, c, MHD_HTTP_UNAUTHORIZED, "unauthorized\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(a, c);
	if (strcmp(url, "/healthz") == 0)
		return text(a, c, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0)
		return atomic_load(&a->draining) ? text(a, c, MHD_HTTP_SERVICE_UNAVAILABLE, "draining\n")
		                                 : text(a, c, MHD_HTTP_OK, "ready\n");
	return text(a, c, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* ---- the watchdog: a deadline per request ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void conn_started(struct admin *a, struct MHD_Connection *c, void **socket_context)
{
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct admin_conn *n;

	if (!i)
		return;
	n = xcalloc(1, sizeof(*n));
	n->fd = i->connect_fd;
	n->since_ms = now_ms();
	pthread_mutex_lock(&a->lock);
	n->next = a->conns;
	a->conns = n;
	pthread_mutex_unlock(&a->lock);
	*socket_context = n;
}

/* Called by libmicrohttpd's thread as a connection starts and ends. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct admin *a = cls;
	struct admin_conn *n = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		conn_started(a, c, socket_context);
		return;
	}
	if (!n)
		return;
	pthread_mutex_lock(&a->lock);
	struct admin_conn **pp = &a->conns;
	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	pthread_mutex_unlock(&a->lock);
	free(n);
	*socket_context = NULL;
}

/* A request answered: the connection's next request has its own ADMIN_TIMEOUT_S. */
static void on_completed(void *cls, struct MHD_Connection *c, void **req, enum MHD_RequestTerminationCode toe)
{
	struct admin *a = cls;
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct admin_conn *n = i ? i->socket_context : NULL;

	(void)req, (void)toe;
	if (!n)
		return;
	pthread_mutex_lock(&a->lock);
	n->since_ms = now_ms();
	pthread_mutex_unlock(&a->lock);
}

/* Shuts a late connection's socket down: libmicrohttpd then reads its end and closes it. */
static void *watchdog(void *arg)
{
	struct admin *a = arg;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		uint64_t now = now_ms();
		for (struct admin_conn *n = a->conns; n; n = n->next) {
			if (!n->cut && now - n->since_ms >= ADMIN_TIMEOUT_S * 1000) {
				shutdown(n->fd, SHUT_RDWR);
				n->cut = true;
			}
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&a->wake, &a->lock, &ts);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static bool watchdog_start(struct admin *a)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->wake, &ca);
	pthread_condattr_destroy(&ca);
	return pthread_create(&a->watchdog, NULL, watchdog, a) == 0;
}

static void watchdog_stop(struct admin *a)
{
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->watchdog, NULL);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
}

/* Several workers accept on the one socket; libmicrohttpd copes with an accept that another
 * process won (EAGAIN on the non-blocking socket). ITC: so that quiesce can wake the thread. */
struct admin *admin_start(int fd, const char *token, struct metrics *m, char *err, size_t errlen)
{
	struct admin *a = xcalloc(1, sizeof(*a));

	a->m = m;
	a->token = token ? xstrdup(token) : NULL;
	bool thread = watchdog_start(a);
	a->d = thread ? MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL,
	                                 on_request, a, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
	                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)ADMIN_PER_ADDRESS,
	                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_TIMEOUT_S,
	                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, a,
	                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_END)
	              : NULL;
	if (!a->d) {
		snprintf(err, errlen, "cannot serve the admin listener");
		if (thread)
			watchdog_stop(a);
		close(fd);
		free(a->token);
		free(a);
		return NULL;
	}
	return a;
}

void admin_quiesce(struct admin *a)
{
	if (!a || atomic_exchange(&a->quiesced, true))
		return;
	MHD_socket fd = MHD_quiesce_daemon(a->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd); /* ours again after quiesce; the other workers keep their copies */
}

void admin_set_draining(struct admin *a)
{
	if (a)
		atomic_store(&a->draining, true);
}

static unsigned connections(const struct admin *a)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return i ? i->num_connections : 0;
}

/* A request accepted just before the worker stopped accepting is answered, not cut: the
 * worker (whose loop is over) waits for it, within ADMIN_LINGER_MS. */
void admin_stop(struct admin *a)
{
	if (!a)
		return;
	admin_quiesce(a);
	for (int ms = 0; ms < ADMIN_LINGER_MS && connections(a) > 0; ms += 10) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(a->d); /* closes every connection: the watchdog's list is empty */
	watchdog_stop(a);
	free(a->token);
	free(a);
}

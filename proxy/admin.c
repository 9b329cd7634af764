/* admin: the admin HTTP listener of one worker (GET /metrics, /healthz, /readyz), served by libmicrohttpd in
 * a thread of its own on the listening socket the master bound; it reads counters, it decides nothing. */
#include "admin.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "util.h"

/* Bounds: a scrape is one short request; nobody needs more at once, and an idle connection
 * is dropped soon. */
#define ADMIN_MAX_CONNECTIONS 16
#define ADMIN_TIMEOUT_S       10
/* How long an exiting worker lets requests under way finish. */
#define ADMIN_LINGER_MS 2000

struct admin {
	struct MHD_Daemon *d;
	struct metrics *m;
	char *token;
	atomic_bool draining;
	atomic_bool quiesced; /* no longer accepting: answers close their connection */
};

/* Compares in time independent of where the first difference is. */
static bool same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
	return diff == 0;
}

static bool authorized(const struct admin *a, struct MHD_Connection *c)
{
	if (!a->token)
		return true;
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	for (h += 7; *h == ' '; h++)
		;
	return same_secret(h, a->token);
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

/* Several workers accept on the one socket; libmicrohttpd copes with an accept that another
 * process won (EAGAIN on the non-blocking socket). ITC: so that quiesce can wake the thread. */
struct admin *admin_start(int fd, const char *token, struct metrics *m, char *err, size_t errlen)
{
	struct admin *a = xcalloc(1, sizeof(*a));

	a->m = m;
	a->token = token ? xstrdup(token) : NULL;
	a->d = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL, on_request, a,
	                        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
	                        (unsigned)ADMIN_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
	                        (unsigned)ADMIN_TIMEOUT_S, MHD_OPTION_END);
	if (!a->d) {
		snprintf(err, errlen, "cannot serve the admin listener");
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
	MHD_stop_daemon(a->d);
	free(a->token);
	free(a);
}

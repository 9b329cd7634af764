/* session_proxy: a session's first state behind a load balancer (SS_PROXY): only a trusted balancer may
 * connect, and the PROXY header it sends first names the real client, whose address the session uses from
 * then on (connection limits, relay-leg bounds, logs, records, metrics). */
/* It lives with the session, not in listener.c: waiting for the header is a session state, with
 * the session's timer, its close and its record (a refused connection is recorded like any other),
 * and the parsing itself is proxyproto.c's. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cidr.h"
#include "log.h"
#include "proxyproto.h"
#include "session_int.h"
#include "stream.h"

/* A header can claim any address, so it is taken only from the balancers in proxy_trusted;
 * anyone else is cut before a byte is read (and before any limit counts them). */
void session_proxy_start(struct session *s)
{
	const struct listener_cfg *l = s->lcfg;

	if (!cidr_match(l->proxy_trusted, l->nproxy_trusted, s->peer)) {
		log_warn("%s: refusing %s on %s port %d: not a trusted PROXY protocol source (proxy_trusted)",
		         s->id, s->peer, l->address, l->port);
		session_close(s, SE_PROXY, "not a trusted PROXY protocol source");
		return;
	}
	session_enter_state(s, SS_PROXY);
	/* The whole header must arrive within proxy_timeout: a deadline, not an idle timer (bytes
	 * that arrive do not re-arm it). */
	stream_set_timer(s->client, l->proxy_timeout_ms);
}

static void take_client(struct session *s, const struct proxyproto_header *h)
{
	if (h->local) { /* a health check (v2 LOCAL) or no address to tell: the balancer's own */
		log_debug(
		        "%s: PROXY v%d header from %s without a client address: served as the balancer's own",
		        s->id, h->version, s->peer);
		return;
	}
	log_info("%s: client %s port %u via the load balancer %s (PROXY v%d)", s->id, h->src, h->src_port,
	         s->peer, h->version);
	snprintf(s->peer, sizeof(s->peer), "%s", h->src);
	s->peer_port = h->src_port;
}

/* Waits for the whole header; what follows it in the same reads is the client's own (an
 * eager client's ClientHello), handed back to the stream to be read again once the session
 * has begun. */
bool session_input_proxy(struct session *s)
{
	struct proxyproto_header h;
	enum proxyproto_status st =
	        proxyproto_parse((const uint8_t *)iobuf_peek(&s->in), iobuf_avail(&s->in), &h);

	if (st == PROXYPROTO_NEED_MORE)
		return false;
	if (st == PROXYPROTO_INVALID) {
		char detail[160];
		snprintf(detail, sizeof(detail), "malformed PROXY header: %s", h.error);
		log_warn("%s: closing the connection from %s: %s", s->id, s->peer, detail);
		session_close(s, SE_PROXY, detail);
		return false;
	}
	iobuf_consume(&s->in, h.len);
	stream_uncount_in(s->client, h.len); /* the records count the client's bytes, not the balancer's */
	take_client(s, &h);
	stream_unread(s->client, iobuf_peek(&s->in), iobuf_avail(&s->in));
	iobuf_clear(&s->in);
	session_begin(s);
	return false;
}

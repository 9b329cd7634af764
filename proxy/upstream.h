/* upstream: the relay-facing SMTP client state machine (resolve, connect, banner, EHLO, STARTTLS, verified
 * TLS, EHLO, then relay); never sees the client's stream or reply texts. */
#ifndef LIVERY_UPSTREAM_H
#define LIVERY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "smtp_proto.h"
#include "tls.h"

struct upstream;

/* Callbacks to the owner, always from a libuv callback, never from inside an upstream_*
 * call the owner made. on_failed is final: the upstream closes itself right after it
 * (calling upstream_close then is harmless). on_closed comes once the upstream is freed. */
struct upstream_ops {
	void (*on_ready)(void *owner);
	void (*on_reply)(void *owner, const struct smtp_reply *r);
	void (*on_failed)(void *owner, const char *why);
	void (*on_drain)(void *owner);
	void (*on_closed)(void *owner);
};

struct upstream_params {
	uv_loop_t *loop;
	const struct tenant_cfg *tenant;
	tls_ctx *ctx;
	struct tls_session_cache *sessions; /* NULL: no resumption */
	unsigned setup_timeout_ms;          /* TLS handshake and each setup reply */
	unsigned reply_timeout_ms;          /* each reply while relaying */
	const char *log_id;                 /* the session's id, for log lines */
};

/* Starts resolving the region's first host on the next loop turn; failures are reported
 * through ops, never before this returns. */
struct upstream *upstream_start(const struct upstream_params *p, const struct upstream_ops *ops, void *owner);
bool upstream_is_ready(const struct upstream *u);
const struct smtp_caps *upstream_caps(const struct upstream *u);
/* Sends bytes verbatim; nreplies is how many replies they call for (0 for body bytes). */
void upstream_send(struct upstream *u, const char *buf, size_t len, unsigned nreplies);
/* Sets the timeout for the replies owed from now on (e.g. longer after the end of data). */
void upstream_set_reply_timeout(struct upstream *u, unsigned ms);
bool upstream_write_blocked(const struct upstream *u);
void upstream_pause(struct upstream *u);
void upstream_resume(struct upstream *u);
/* Closes (sending QUIT first when ready and quit is set); on_closed follows. Only
 * on_closed is called after this. */
void upstream_close(struct upstream *u, bool quit);

#endif
